"""The browser gate's H.264 and H.265 syntax (src/segbind/web/segbind-syntax.js) against its
reference, segbind_core.h264 and h265, under Node, on the same bytes.

Both read every NAL unit of a stream in decoding order, as read.cut's PictureClock does: the
parameter sets in force, every slice's whole header (where its slice data begins, in bits and
stored bytes), and for the first slice of each picture its order key (run, picture order count;
None for a picture not output). The streams: real x264 and x265 output in many configurations
(B-frames, pyramids, slices, MBAFF, fields, open GOPs with RASL pictures, temporal layers,
weighted prediction, 4:4:4, 10 bits...), the camera kinds of host_sim.clips, the core's own
hand-made streams of what no encoder writes (POC types 1 and 2, MMCO 5, field pairs, long-term
references, slice groups, dependent slice segments, tiles), and seeded mutations of the real
ones, whose refusals must agree text for text.
"""

from __future__ import annotations

import json
import random
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from host_sim import clips
from segbind_core import h264, h265
from segbind_core.nal import annexb_units, to_annexb
from tests.support import ROOT
from tests.support.web import run_node

sys.path.insert(0, str(ROOT / "tests" / "core"))
import _syntax_writer as writer  # noqa: E402  (the core tests' writer of what no encoder writes)

I, P, B = writer.I, writer.P, writer.B

MODULE = ROOT / "src" / "segbind" / "web" / "segbind-syntax.js"

# Node reads each case's units in turn, exactly as reference() below does in Python.
HARNESS = """
import fs from "node:fs";
import { h264, h265 } from %(module)s;
const cases = JSON.parse(fs.readFileSync(%(cases)s, "utf8"));
const out = {};
for (const c of cases) {
  const syntax = c.codec === "h264" ? h264 : h265;
  const params = new syntax.ParameterSets();
  const counter = new syntax.PocCounter(params);
  const events = [];
  for (const hex of c.units) {
    const unit = new Uint8Array(Buffer.from(hex, "hex"));
    const kind = c.codec === "h264" ? unit[0] & 0x1f : (unit[0] >> 1) & 0x3f;
    const slice = c.codec === "h264" ? kind === 1 || kind === 5 : kind < 32;
    if (!slice) {
      if (c.codec === "hevc" && kind === 36) counter.endOfSequence();
      else events.push(["unit", kind, params.add(unit)]);
      continue;
    }
    let header;
    try {
      header = syntax.parseSliceHeader(unit, params);
    } catch (exc) {
      if (exc.constructor.name !== "SliceHeaderError") throw exc;
      events.push(["slice", "refused", exc.message]);
      continue;
    }
    const event = ["slice", header.headerBits, header.headerBytes];
    const first = c.codec === "h264" ? header.firstMbInSlice === 0 : header.firstInPicture;
    if (first) {
      try {
        counter.count(header);
        event.push(counter.orderKey);
      } catch (exc) {
        if (exc.constructor.name !== "SliceHeaderError") throw exc;
        event.push("refused: " + exc.message);
      }
    }
    events.push(event);
  }
  out[c.name] = events;
}
process.stdout.write(JSON.stringify(out));
"""


def reference(codec: str, units: Sequence[bytes]) -> List[List[Any]]:
    """segbind_core's reading of the units, in the harness's terms."""
    syntax: Any = h264 if codec == "h264" else h265
    params = syntax.ParameterSets()
    counter = syntax.PocCounter(params)
    events: List[List[Any]] = []
    for unit in units:
        kind = syntax.nal_type(unit[0])
        if not ((kind in (1, 5)) if codec == "h264" else kind < 32):
            if codec == "hevc" and kind == h265.NAL_END_OF_SEQUENCE:
                counter.end_of_sequence()
            else:
                events.append(["unit", kind, params.add(unit)])
            continue
        try:
            header = syntax.parse_slice_header(unit, params)
        except h264.SliceHeaderError as exc:
            events.append(["slice", "refused", str(exc)])
            continue
        event: List[Any] = ["slice", header.header_bits, header.header_bytes]
        first = header.first_mb_in_slice == 0 if codec == "h264" else header.first_in_picture
        if first:
            try:
                counter.count(header)
                event.append(list(counter.order_key) if counter.order_key is not None else None)
            except h264.SliceHeaderError as exc:
                event.append("refused: " + str(exc))
        events.append(event)
    return events


def units_of(data: bytes) -> List[bytes]:
    return [data[s:e] for s, e in annexb_units(data)]


def agree(cases: Dict[str, Tuple[str, List[bytes]]], tmp_path: Path) -> Dict[str, List[List[Any]]]:
    """Both readings of every case (name -> (codec, units)); asserts they agree event for event."""
    listing = [{"name": name, "codec": codec, "units": [u.hex() for u in units]}
               for name, (codec, units) in cases.items()]
    path = tmp_path / "syntax-cases.json"
    path.write_text(json.dumps(listing))
    script = HARNESS % {"module": json.dumps(MODULE.as_uri()), "cases": json.dumps(str(path))}
    proc = run_node("--input-type=module", "-e", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    js = json.loads(proc.stdout)
    py = {name: reference(codec, units) for name, (codec, units) in cases.items()}
    differ = {}
    for name in py:
        theirs = js.get(name) or []
        if py[name] != theirs:
            at = next((k for k, (a, b) in enumerate(zip(py[name], theirs)) if a != b), min(len(py[name]), len(theirs)))
            differ[name] = {"at": at, "python": py[name][at:at + 2], "javascript": theirs[at:at + 2]}
    assert not differ, "the readings differ: %s" % json.dumps(differ, indent=1)[:6000]
    return py


# Encoder settings: x264 and x265 through Debian's ffmpeg (host_sim.clips), beyond the camera kinds.
X264 = [
    ("cabac b-pyramid", ("-x264-params", "bframes=3:b-pyramid=normal:ref=4")),
    ("cavlc b-frames", ("-x264-params", "cabac=0:bframes=2:b-pyramid=strict")),
    ("weighted", ("-x264-params", "weightp=2:weightb=1:bframes=3:ref=6")),
    ("four slices", ("-x264-params", "slices=4:bframes=2")),
    ("mbaff", ("-x264-params", "interlaced=1:bframes=2")),
    ("bff cavlc", ("-x264-params", "bff=1:cabac=0:bframes=1")),
    ("16 references", ("-x264-params", "ref=16:bframes=0")),
    ("baseline", ("-profile:v", "baseline")),
]
X265 = [
    ("closed gop", dict(gop=10, bframes=4)),
    ("open gop", dict(gop=10, bframes=4, open_gop=True)),
    ("wpp and slices", dict(slices=2, ctu=16, x265="wpp=1")),
    ("weighted", dict(bframes=3, x265="weightp=1:weightb=1")),
    ("b-pyramid", dict(gop=10, bframes=3, x265="b-pyramid=1:ref=4")),
    ("temporal layers", dict(bframes=3, x265="temporal-layers=1")),
    ("poc lsb of 16 bits", dict(bframes=2, x265="log2-max-poc-lsb=16")),
    ("fields", dict(bframes=2, x265="interlace=tff")),
    ("hrd in the vui", dict(bframes=2, x265="hrd=1:vbv-bufsize=500:vbv-maxrate=500")),
]

# The camera kinds the fleet and the media tests use (host_sim.clips), both codecs.
CAMERA_KINDS = ["pyav-every", "pyav-once", "pyav-bframes-slices-aud", "pyav-interlaced", "pyav-intra-refresh",
                "ffmpeg-bframes-slices-aud", "x265-pyav-closed", "x265-pyav-open-gop",
                "x265-pyav-bframes-radl-slices-aud", "x265-pyav-interlaced", "x265-ffmpeg-open-gop",
                "x265-ffmpeg-once-slices", "x265-ffmpeg-temporal-layers-no-irap"]


@lru_cache(maxsize=None)
def real_cases() -> Dict[str, Tuple[str, List[bytes]]]:
    cases = {}
    for name, extra in X264:
        cases["h264 " + name] = ("h264", units_of(clips.encode_ffmpeg(frames=30, extra=extra)))
    for name, settings in X265:
        cases["hevc " + name] = ("hevc", units_of(clips.encode_ffmpeg_h265(**dict(dict(frames=30), **settings))))
    for kind in CAMERA_KINDS:
        cases["camera " + kind] = ("hevc" if kind.startswith("x265") else "h264", units_of(clips.make_kind(kind)))
    # read from a CRA on, as the gate reads a segment of an open GOP: its RASL pictures are not output
    units = cases["hevc open gop"][1]
    cra = [k for k, u in enumerate(units) if (u[0] >> 1) & 0x3F == h265.NAL_CRA and u[2] & 0x80][1]
    sets = [u for u in units[:cra] if 32 <= (u[0] >> 1) & 0x3F <= 34]
    cases["hevc open gop from a CRA"] = ("hevc", sets + units[cra:])
    return cases


def keys_of(events: List[List[Any]]) -> List[Any]:
    return [e[3] for e in events if e[0] == "slice" and len(e) > 3]


def test_real_streams_read_alike(tmp_path: Path) -> None:
    events = agree(real_cases(), tmp_path)
    for name, found in events.items():
        slices = [e for e in found if e[0] == "slice"]
        assert slices and not [e for e in slices if e[1] == "refused"], name  # every real slice is read
        assert all(isinstance(k, list) or k is None for k in keys_of(found)), name
    # what the port had to get right: reordering (B-frames), pictures not output (RASL of an
    # open GOP's first CRA), several runs (IDR pictures), slices after the first of a picture
    def reorders(keys: List[Any]) -> bool:
        shown = [k for k in keys if k]
        return any(a[0] == b[0] and a[1] > b[1] for a, b in zip(shown, shown[1:]))

    reordered = [n for n, found in events.items() if reorders(keys_of(found))]
    assert len(reordered) > 15, reordered
    assert None in keys_of(events["hevc open gop from a CRA"])
    assert all(len({k[0] for k in keys_of(found) if k}) > 1 for n, found in events.items()
               if n in ("h264 cabac b-pyramid", "hevc closed gop"))
    assert sum(len([e for e in found if e[0] == "slice"]) - len(keys_of(found)) for found in events.values()) > 500


# Picture order no encoder in reach writes: POC types 0, 1 and 2, field pairs, MMCO 5 (a run of
# its own), wraps of frame_num and of the POC's low bits. Each picture: (kind, slice fields).
SEQUENCES = [
    ("type 0, fields and MMCO 5", dict(frame_mbs_only=0, log2_max_poc_lsb=5), [
        (I, dict(idr=True, field="top", poc_lsb=0, ref_idc=3)),
        (P, dict(field="bottom", poc_lsb=1, ref_idc=3)),
        (P, dict(frame_num=1, field="top", poc_lsb=8)),
        (P, dict(frame_num=1, field="bottom", poc_lsb=9)),
        (B, dict(frame_num=2, field="bottom", poc_lsb=5, ref_idc=0)),
        (B, dict(frame_num=2, field="top", poc_lsb=4, ref_idc=0)),
        (P, dict(frame_num=2, poc_lsb=16)),
        (P, dict(frame_num=3, poc_lsb=24, mmcos=((5,),))),
        (P, dict(frame_num=1, poc_lsb=4)),
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0)),
        (I, dict(idr=True, poc_lsb=0, idr_pic_id=1)),
        (P, dict(frame_num=1, poc_lsb=2)),
    ]),
    ("type 0, bottom counts and a wrap", dict(log2_max_poc_lsb=4, bottom_field_pic_order_in_frame_present=1), [
        (I, dict(idr=True, poc_lsb=0, delta_bottom=1)),
        (P, dict(frame_num=1, poc_lsb=6, delta_bottom=1)),
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0, delta_bottom=-1)),
        (P, dict(frame_num=2, poc_lsb=12)),
        (P, dict(frame_num=3, poc_lsb=2)),
        (B, dict(frame_num=4, poc_lsb=15, ref_idc=0)),
    ]),
    ("type 1", dict(poc_type=1, frame_mbs_only=0, offsets_for_ref_frame=(4,), offset_for_non_ref_pic=-2,
                    offset_for_top_to_bottom_field=1, delta_pic_order_always_zero=1), [
        (I, dict(idr=True)),
        (P, dict(frame_num=1)),
        (B, dict(frame_num=2, ref_idc=0)),
        (P, dict(frame_num=2)),
        (P, dict(frame_num=3, field="top")),
        (P, dict(frame_num=3, field="bottom")),
        (B, dict(frame_num=4, field="top", ref_idc=0)),
        (B, dict(frame_num=4, field="bottom", ref_idc=0)),
        (P, dict(frame_num=4, mmcos=((5,),))),
        (P, dict(frame_num=1)),
    ]),
    ("type 1, deltas", dict(poc_type=1, offsets_for_ref_frame=(2, 6, 1), offset_for_non_ref_pic=-1,
                            offset_for_top_to_bottom_field=2, bottom_field_pic_order_in_frame_present=1), [
        (I, dict(idr=True, delta1=-2)),
        (P, dict(frame_num=1, delta0=5)),
        (B, dict(frame_num=2, ref_idc=0, delta0=1)),
        (P, dict(frame_num=2, delta0=2, delta1=1)),
    ] + [(P, dict(frame_num=n % 16)) for n in range(3, 20)]),
    ("type 2", dict(poc_type=2, frame_mbs_only=0, log2_max_frame_num=4), [
        (I, dict(idr=True, field="bottom")),
        (P, dict(field="top")),
        (P, dict(frame_num=1)),
        (P, dict(frame_num=2, ref_idc=0)),
        (P, dict(frame_num=2, field="top")),
        (P, dict(frame_num=3, mmcos=((5,),))),
        (P, dict(frame_num=1)),
    ] + [(P, dict(frame_num=n % 16)) for n in range(2, 20)]),
]


def hand_made_cases() -> Dict[str, Tuple[str, List[bytes]]]:
    """Hand-made streams: the sequences above and every header case of the core tests' writer
    (slice groups, SP/SI, long-term references, dependent slice segments, tiles, extensions...)."""
    cases = {}
    for name, settings, pictures in SEQUENCES:
        stream = writer.H264Stream(**settings)
        cases["sequence " + name] = ("h264", [stream.sps(), stream.pps()] + [stream.slice(kind, **fields)[0]
                                                                             for kind, fields in pictures])
    plain = writer.H264Stream(sps_id=1, pps_id=1)
    for k, (settings, fields) in enumerate(writer.H264_HEADER_CASES):
        stream = writer.H264Stream(**settings)
        fields = dict(fields)
        kind = fields.pop("kind")
        units = [plain.sps(), plain.pps(), plain.slice(writer.I, idr=True)[0], stream.sps(), stream.pps()]
        if not fields.get("idr"):
            units.append(stream.slice(writer.I, idr=True, colour_plane=fields.get("colour_plane", 0))[0])
        units.append(stream.slice(kind, **fields)[0])
        cases["h264 header case %d" % k] = ("h264", units)
    for k, (settings, fields) in enumerate(writer.H265_HEADER_CASES):
        stream = writer.H265Stream(**settings)
        fields = dict(fields)
        kind = fields.pop("kind")
        units = [stream.vps(), stream.sps(), stream.pps()]
        if fields.get("nal_type", 1) not in (19, 20):
            units.append(stream.slice(2, nal_type=19)[0])
        if fields.get("first") is False:
            first = dict(fields, first=True, address=0, dependent=False, entry_points=())
            if kind != 2:
                first.setdefault("rps", ("explicit", [(-1, 1)], []))
            units.append(stream.slice(kind, **first)[0])
        units.append(stream.slice(kind, **fields)[0])
        cases["h265 header case %d" % k] = ("hevc", units)
    return cases


def test_hand_made_streams_read_alike(tmp_path: Path) -> None:
    cases = hand_made_cases()
    assert len(cases) > 40
    events = agree(cases, tmp_path)
    for name, found in events.items():
        assert not [e for e in found if e[0] == "slice" and e[1] == "refused"], name
    # MMCO 5 starts a run of its own, with count 0; POC types 1 and 2 give their counts
    assert [1, 0] in keys_of(events["sequence type 1"]) and [1, 0] in keys_of(events["sequence type 2"])
    assert len({k[0] for k in keys_of(events["sequence type 0, fields and MMCO 5"])}) == 3


def _mutated(units: List[bytes], rng: random.Random) -> List[bytes]:
    """A few changes, most where the syntax is read: a parameter set's or a slice header's first
    bytes flipped, set to 0 or FF, or cut short."""
    out = list(units)
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(out))
        unit = bytearray(out[k])
        choice = rng.random()
        if choice < 0.15 and len(unit) > 3:
            del unit[rng.randrange(3, len(unit)):]
        else:
            at = rng.randrange(1, min(len(unit), 40)) if len(unit) > 1 else 0
            if choice < 0.8:
                unit[at] ^= 1 << rng.randrange(8)
            else:
                unit[at] = rng.choice([0, 0xFF, 3])
        out[k] = bytes(unit)
    return out


def test_mutated_streams_are_refused_alike(tmp_path: Path) -> None:
    """Seeded mutations of real streams (their first pictures, every parameter set): whatever
    each reader refuses, the other refuses with the same text, and reads the rest the same."""
    rng = random.Random(20261205)
    cases = {}
    for name, (codec, units) in sorted(real_cases().items()):
        head = units[:40]
        for k in range(25):
            cases["%s #%d" % (name, k)] = (codec, _mutated(head, rng))
    events = agree(cases, tmp_path)
    refusals = {e[2] for found in events.values() for e in found if e[0] == "slice" and e[1] == "refused"}
    assert len(refusals) > 25, sorted(refusals)  # the mutants reach many of the checks


def test_a_camera_stream_through_the_picture_clock(tmp_path: Path) -> None:
    """The gate's PictureClock (read.cut's, ported) gives each access unit's picture its key: the
    same as the core's counter, decoding order kept, over the camera's own segmented stream."""
    from segbind_core.segment import Segment, Segmenter

    data = clips.make_kind("x265-pyav-open-gop")
    segmenter = Segmenter(delimit=True)
    stream = to_annexb(u for s in segmenter.push(data) + segmenter.finish() if isinstance(s, Segment)
                       for u in units_of(s.data))
    script = """
    import fs from "node:fs";
    import { PictureClock } from %s;
    const units = fs.readFileSync(%s, "utf8").trim().split(" ").map((h) => new Uint8Array(Buffer.from(h, "hex")));
    const clock = new PictureClock(2);
    const out = [];
    let first = true;
    for (const u of units) {
      const kind = (u[0] >> 1) & 0x3f;
      if (kind === 35) first = true;
      else if (kind >= 32 && kind <= 34) clock.parameterSet(u);
      else if (kind === 36) clock.endOfSequence();
      else if (kind < 32 && first) { out.push(clock.picture(u)); first = false; }
    }
    process.stdout.write(JSON.stringify(out));
    """ % (json.dumps(MODULE.as_uri()), json.dumps(str(tmp_path / "units.txt")))
    (tmp_path / "units.txt").write_text(" ".join(u.hex() for u in units_of(stream)))
    proc = run_node("--input-type=module", "-e", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    js = json.loads(proc.stdout)
    from segbind.read.cut import PictureClock

    clock = PictureClock(2)
    py, first = [], True
    for unit in units_of(stream):
        kind = (unit[0] >> 1) & 0x3F
        if kind == 35:
            first = True
        elif 32 <= kind <= 34:
            clock.parameter_set(unit)
        elif kind < 32 and first:
            key, field = clock.picture(unit)
            py.append([list(key) if isinstance(key, tuple) else key, field])
            first = False
    assert js == py and len(py) == 80
    keys = [key for key, _ in py]
    assert keys != sorted(keys)  # B-frames: decoding order is not the camera's order
