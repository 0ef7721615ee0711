"""The JavaScript verifier (src/segbind/web/segbind-verify.js) under Node, against the Python one.

Its own tests (tests/web/*.test.mjs: the format's vectors) run under ``node --test``.
Then every attack below, made here from real x264 (and x265) output, is fed as the
same bytes to both verifiers, and their verdicts must be the same, reason for reason:
bit flips, stripped and doubled tags, a foreign owner, forged fields, a wrong slot,
replays, reordering, restarts, rotations, framings, time windows, recordings, and fMP4
fragments (through the gate a browser display puts in front of its decoder).
"""

from __future__ import annotations

import json
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from host_sim import clips
from segbind import Epoch
from segbind.web import fmp4
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, decode_tag
from segbind_core.tagger import Tagger
from tests.support import ROOT, VECTORS
from tests.support.tagged import (
    PAIRING_EVE,
    T0,
    body_of,
    epoch,
    raw_segments,
    replace_tag_body,
    streams,
    strip_tag,
    tag_stream,
    tag_unit,
)
from tests.support.web import agree, annexb, case, run_node

# ---- attacks on one tagged Annex-B segment ---------------------------------------------------------



def with_body(segment: bytes, body: bytes, codec: int = CODEC_H264) -> bytes:
    return replace_tag_body(segment, lambda _old: body, codec)


def forge(segment: bytes, **fields) -> bytes:
    """The segment with tag fields rewritten and the tag re-encoded (the MACs kept), whatever the
    format allows of the fields."""
    tag, _ = decode_tag(body_of(segment))
    for name, value in fields.items():
        setattr(tag, name, value)
    return with_body(segment, tag.stream_prefix() + tag.segment_fields() + b"".join(tag.macs))



def flip(segment: bytes, pos: int, bit: int = 0x10) -> bytes:
    return segment[:pos] + bytes([segment[pos] ^ bit]) + segment[pos + 1:]


def units_of(segment: bytes) -> List[bytes]:
    return [segment[s:e] for s, e in annexb_units(segment)]


def join(units: Sequence[bytes]) -> bytes:
    return b"".join(START_CODE + u for u in units)


def reframe(segment: bytes) -> bytes:
    return b"".join(b"\x00\x00\x01" + u + b"\x00" for u in units_of(segment))


def flip_mac(segment: bytes, slot: int) -> bytes:
    tag, _ = decode_tag(body_of(segment))
    tag.macs = [m if i != slot else bytes([m[0] ^ 1]) + m[1:] for i, m in enumerate(tag.macs)]
    return with_body(segment, tag.encode())


def single_segment_attacks() -> Dict[str, bytes]:
    s = streams()[""][1]
    units = units_of(s)
    tag_at = next(i for i, u in enumerate(units) if tag_codec(u))
    x264_sei = next(u for u in units_of(streams()[""][0]) if u[0] & 0x1F == 6 and not tag_codec(u))
    slice_at = max(range(len(units)), key=lambda i: len(units[i]))
    body = body_of(s)
    tag, _ = decode_tag(body)
    attacks = {
        "intact": s,
        "reframed": reframe(s),
        "trailing zeros": s + b"\x00\x00",
        "garbage before": b"\x17" + s,
        "zeros before": b"\x00\x00" + s,
        "tag stripped": strip_tag(s),
        "tag doubled": join(units[:tag_at + 1] + [units[tag_at]] + units[tag_at + 1:]),
        "tag moved last": join(units[:tag_at] + units[tag_at + 1:] + [units[tag_at]]),
        "unit dropped": join(units[:-1]),
        "unit added": join(units + [x264_sei]),
        "units swapped": join(units[:-2] + [units[-1], units[-2]]),
        "sps dropped": join([u for u in units if u[0] & 0x1F != 7]),
        "slice bit flipped": join(units[:slice_at] + [flip(units[slice_at], len(units[slice_at]) // 2)]
                                  + units[slice_at + 1:]),
        "owner mac flipped": flip_mac(s, 0),
        "bob's mac flipped": flip_mac(s, 1),
        "version 2": with_body(s, b"\x02" + body[1:]),
        "version 4": with_body(s, b"\x04" + body[1:]),
        "alg 1": with_body(s, body[:1] + b"\x01" + body[2:]),
        "codec 3": with_body(s, body[:2] + b"\x03" + body[3:]),
        "an H.264 tag in an H.265 SEI": with_body(s, body, CODEC_H265),
        "body trailing byte": with_body(s, body + b"\x00"),
        "body truncated": with_body(s, body[:-1]),
        "body empty": with_body(s, b""),
        "slots: one MAC dropped": forge(s, slots=1, macs=tag.macs[:1]),
        "no MACs": with_body(s, body[:len(body) - 16 * tag.slots - 1] + b"\x00"),
        "two messages in the SEI": s[:tag_unit(s)[0]] + units[tag_at][:-1] + b"\x05\x01\x00\x80"
                                   + s[tag_unit(s)[1]:],
    }
    attacks["forged key id"] = forge(s, key_id=bytes([tag.key_id[0] ^ 1]) + tag.key_id[1:])
    period = epoch().period_of(tag.capture_ms)
    attacks["another period's key id"] = forge(s, key_id=epoch().period_keys(period + 1).key_id)
    attacks["another epoch's key id"] = forge(s, key_id=epoch(number=2).period_keys(period).key_id)
    for name in ("stream_id", "seq", "capture_ms", "duration_ms", "pictures", "units", "clear_lead"):
        attacks["forged " + name] = forge(s, **{name: getattr(tag, name) + 1})
    attacks["captured in the next period"] = forge(s, capture_ms=(epoch().period_of(tag.capture_ms) + 1) * 1800_000)
    attacks["forged end of stream"] = forge(s, flags=1)
    attacks["forged still"] = forge(s, flags=2, pictures=1)
    attacks["a still of five pictures"] = forge(s, flags=2)
    attacks["unknown flag"] = forge(s, flags=4)
    attacks["clear lead 0"] = forge(s, clear_lead=0)
    attacks["clear lead 4097"] = forge(s, clear_lead=4097)
    attacks["stream id 2^48"] = forge(s, stream_id=1 << 48)
    attacks["forged link"] = forge(s, link=bytes(8))
    attacks["forged digest hint"] = forge(s, digest_hint=bytes(4))
    start, end = tag_unit(s)
    for pos in range(start - 4, end):  # every byte of the tag unit and its start code
        attacks["tag byte %d flipped" % (pos - start)] = flip(s, pos, 1 << (pos % 8))
    for k, pos in enumerate(range(end, len(s), max(1, (len(s) - end) // 40))):
        attacks["video byte %d flipped" % pos] = flip(s, pos, 1 << (k % 8))
    return attacks


# ---- streams in a small language (as in tests/lib/test_verifier.py) ---------------------------------
#   3  segment 3 of alice's cam-1;  3-  its tag stripped;  3*  a bit of its video flipped;
#   3^ a bit of the owner's MAC flipped;  3@cam2 / @new / @eve / @e2  segment 3 of another stream

def deliver(script: str) -> List[bytes]:
    out = []
    for word in script.split():
        index, _, source = word.partition("@")
        mark = index[-1] if index[-1] in "-*^" else ""
        segment = streams()[source][int(index.rstrip("-*^")) - (8 if source == "e2" else 0)]
        edit: Callable[[bytes], bytes] = {
            "": lambda b: b, "-": strip_tag, "^": lambda b: flip_mac(b, 0),
            "*": lambda b: flip(b, len(b) - 40),
        }[mark]
        out.append(edit(segment))
    return out


SCRIPTS = [
    "0 1 2 3 4 5 6 7", "0 1 3 4", "0 1 1 2", "0 1 2 0", "0 2 1 3", "0 3 1 2 4", "1 2 0", "3 2 1 0",
    "0 1 2- 3", "0 1* 2", "0 1^ 1 2", "0 1 2@new 3@new", "0@new 1@new 2", "0 1@eve 2",
    "0 0@cam2 1 1@cam2 2@cam2 2", "0 1 2 3 4 5 6 7 8@e2 9@e2", "0 1 8@e2 2", "0 1 2 3 8@e2 9@e2 4",
    "0@eve 1@eve 2@eve", "2 2^ 2* 2- 2",
]


# ---- H.265: real x265 output, cut at IRAP pictures, delimited, tagged ------------------------------------

@lru_cache(maxsize=None)
def h265_segments() -> Tuple[Tuple[bytes, int, int], ...]:
    """(data, units, pictures) of each segment of a libx265 clip (an IRAP every 5 pictures)."""
    import av
    import numpy as np

    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 128, 96, "yuv420p"
    ctx.time_base = __import__("fractions").Fraction(1, 25)
    ctx.framerate = 25
    ctx.options = {"x265-params": "keyint=5:min-keyint=5:scenecut=0:bframes=0:aud=1:repeat-headers=1:log-level=error",
                   "preset": "ultrafast"}
    ctx.open()
    out = bytearray()
    for i in range(20):
        rgb = np.full((96, 128, 3), (40, 90 + i * 5, 200), dtype=np.uint8)
        rgb[(i * 3) % 80:(i * 3) % 80 + 16, 20:40] = 255
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in ctx.encode(frame):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    units = [bytes(out[s:e]) for s, e in annexb_units(bytes(out))]
    segments: List[List[List[bytes]]] = []
    for au in fmp4.access_units(units, CODEC_H265):
        irap = any(16 <= (u[0] >> 1) & 0x3F <= 21 for u in au)
        if irap or not segments:
            segments.append([])
        segments[-1].append(au)
    return tuple((join([u for au in seg for u in au]), sum(len(au) for au in seg), len(seg)) for seg in segments)


def h265_stream(ep: Epoch, stream_id: int = T0) -> List[bytes]:
    tagger = Tagger(ep, stream_id, codec=CODEC_H265)
    return [tagger.tag(data, units, T0 + 200 * i, 40 * pictures, pictures)[0]
            for i, (data, units, pictures) in enumerate(h265_segments())]



# ---- tests ------------------------------------------------------------------------------------------

def test_node_tests_pass_the_format_vectors() -> None:
    proc = run_node("--test", "--test-reporter=tap", str(ROOT / "tests" / "web"))
    vectors = json.loads((VECTORS / "segbind_v3.json").read_text())
    robustness = (ROOT / "tests" / "web" / "robustness.test.mjs").read_text().count("\ntest(")
    mp4 = (ROOT / "tests" / "web" / "mp4.test.mjs").read_text().count("\ntest(")
    segments = len(vectors["segments"]) + sum(len(chain["segments"]) for chain in vectors["chains"])
    expected = 2 + 2 * segments + len(vectors["chains"]) + robustness + mp4
    counts = dict(re.findall(r"^# (pass|fail|tests) (\d+)$", proc.stdout, re.M))
    assert counts == {"tests": str(expected), "pass": str(expected), "fail": "0"}, proc.stdout[-3000:]
    assert proc.returncode == 0


def test_every_attack_on_one_segment_gets_the_same_verdict(tmp_path: Path) -> None:
    attacks = single_segment_attacks()
    cases = [case("alice: " + name, annexb(data), details=True, plaintext=True) for name, data in attacks.items()]
    cases += [case("bob: " + name, annexb(data), "bob", details=True, plaintext=True) for name, data in attacks.items()
              if not name.startswith("video byte")]
    py = {name: [v.split(":")[0] for v in verdicts if not v.startswith("plaintext ")]
          for name, verdicts in agree(cases, tmp_path).items()}
    seen = {v for verdicts in py.values() for v in verdicts}
    assert seen >= {"ok", "no_tag", "malformed_tag", "unknown_version", "no_grant", "framing",
                    "content_mismatch", "mac_mismatch"}, seen
    assert py["alice: intact"] == py["alice: reframed"] == py["alice: bob's mac flipped"] == ["ok"]
    assert py["bob: owner mac flipped"] == ["ok"] and py["bob: bob's mac flipped"] == ["mac_mismatch"]
    # every flipped bit is refused by someone: by alice, except in slot 1's MAC (bob's, opaque
    # to her), which bob refuses
    flips = [name.split(": ", 1)[1] for name in py if name.startswith("alice: tag byte")]
    assert len(flips) > 100
    opaque = [f for f in flips if py["alice: " + f] == ["ok"]]
    assert len(opaque) == 16 and all(py["bob: " + f] == ["mac_mismatch"] for f in opaque)
    assert all(py[name] != ["ok"] for name in py if name.startswith("alice: video byte"))


def test_streams_reordered_replayed_restarted_and_rotated_get_the_same_verdicts(tmp_path: Path) -> None:
    cases = [case("%s: %s" % (ring, script), annexb(*deliver(script)), ring)
             for script in SCRIPTS for ring in ("alice", "bob")]
    cases.append(case("locked to cam-1", annexb(*deliver("0 0@cam2 1")), camera="cam-1"))
    long_run = tag_stream(count=140)
    cases.append(case("beyond the window", annexb(*long_run, long_run[3], long_run[135])))
    replay = [  # seq 2 again, with other content: same seq, another digest
Tagger(epoch(), T0, seq=2).tag(raw_segments()[5].data, raw_segments()[5].units, T0 + 999,
                                             raw_segments()[5].duration_ms, raw_segments()[5].pictures)[0]]
    cases.append(case("a used sequence number with other content", annexb(*deliver("0 1 2"), *replay)))
    revoked = case("revoked epoch 2", annexb(*deliver("0 1 8@e2")))
    revoked["revoked"] = sorted({(g["owner"], g["epoch_id"]) for g in revoked["keyring"] if g["epoch"] == 2})
    assert len(revoked["revoked"]) == 1                              # (owner, epoch id): one epoch of one pairing
    revoked["keyring"] = [g for g in revoked["keyring"] if g["epoch"] != 2]
    cases.append(revoked)
    py = agree(cases, tmp_path)
    assert py["alice: 0 2 1 3"] == ["ok", "gap", "late", "ok"]
    assert py["beyond the window"][-2:] == ["replay", "duplicate"]
    assert py["a used sequence number with other content"][-1] == "replay"


def test_time_windows_and_recordings_get_the_same_verdicts(tmp_path: Path) -> None:
    window = {"maxAgeS": 30, "maxFutureS": 5}
    stream = deliver("0 1 2 3")
    cases = [
        case("live, on time", annexb(*stream), window=window),
        case("live, too old", annexb(*stream), window=window, now=T0 / 1000 + 60),
        case("live, from the future", annexb(*stream), window=window, now=T0 / 1000 - 30),
        case("live, old age only", annexb(*stream), window={"maxAgeS": 5, "maxFutureS": None}),
    ]
    whole = tag_stream(count=4, end=True)
    spliced = tag_stream(count=2, end=True) + tag_stream(stream_id=T0 + 1, count=2, t0=T0 + 800)
    late = tag_stream(count=4, end=True, t0=T0)
    late[2] = tag_stream(count=4, end=True, t0=T0 + 5000)[2]
    recordings = {"whole": whole, "cut short": whole[:3], "missing middle": whole[:1] + whole[2:],
                  "missing start": whole[1:], "spliced streams": spliced, "reordered": [whole[1], whole[0]],
                  "a jump in capture time": late, "nothing": []}
    for name, segments in recordings.items():
        cases.append(case("recording, " + name, annexb(*segments) + [{"finish": True}], recording=True))
    py = agree(cases, tmp_path)
    assert py["live, too old"] == ["time_window"] * 4
    assert py["recording, whole"] == ["ok"] * 4
    assert py["recording, cut short"][-1] == "incomplete"


def test_streams_read_back_into_segments_get_the_same_verdicts(tmp_path: Path) -> None:
    alice, eve = streams()[""], streams()["eve"]
    inputs = {
        "whole": b"".join(alice),
        "a stripped tag inside": b"".join([alice[0], strip_tag(alice[1]), *alice[2:5]]),
        "a stranger's segments spliced in": b"".join([alice[0], eve[1], alice[2], eve[3]]),
        "garbage before": b"\x42" + b"".join(alice[:3]),
        "units before the first tag": join(units_of(alice[0])[2:4]) + b"".join(alice[1:3]),
        "reframed": b"".join(reframe(s) for s in alice[:4]),
    }
    cases = [case("stream: " + name, [{"stream": data.hex()}]) for name, data in inputs.items()]
    py = agree(cases, tmp_path)
    assert py["stream: whole"] == ["ok"] * 8
    assert "no_grant" in py["stream: a stranger's segments spliced in"]


def _boxes(data: bytes, start: int = 0, end: Optional[int] = None) -> List[Tuple[bytes, int, int]]:
    end = len(data) if end is None else end
    out = []
    while start < end:
        size = struct.unpack(">I", data[start:start + 4])[0]
        out.append((data[start + 4:start + 8], start, start + size))
        start += size
    return out


def _two_video_tracks(init: bytes) -> bytes:
    """The init segment with its track copied as a second track (track id 2, its own 'trex')."""
    (_, fs, fe), (_, ms, me) = _boxes(init)
    moov = init[ms:me]
    kids = _boxes(moov, 8)
    trak = next(moov[s:e] for kind, s, e in kids if kind == b"trak")
    at = trak.index(b"tkhd") + 4 + 4 + 8
    second = trak[:at] + struct.pack(">I", 2) + trak[at + 4:]
    mvex = next(moov[s:e] for kind, s, e in kids if kind == b"mvex")
    trex = mvex[8:]
    trex2 = trex[:12] + struct.pack(">I", 2) + trex[16:]
    mvex2 = struct.pack(">I", 8 + 2 * len(trex)) + b"mvex" + trex + trex2
    body = b"".join(moov[s:e] + (second if kind == b"trak" else b"") if kind != b"mvex" else mvex2
                    for kind, s, e in kids)
    return init[fs:fe] + struct.pack(">I", 8 + len(body)) + b"moov" + body


def fragment_cases() -> List[dict]:
    alice, eve, cam2 = streams()[""], streams()["eve"], streams()["cam2"]
    init = fmp4.init_segment(alice[0])

    def frags(*segments: bytes) -> List[dict]:
        """Each segment as a fragment, after the init segment of its key id when that changes (as
        HLS names a new EXT-X-MAP: a 'cenc' track's default_KID is the tag's key id)."""
        out, current = [], fmp4.init_key(segments[0])
        for i, s in enumerate(segments):
            if fmp4.init_key(s) != current:
                current = fmp4.init_key(s)
                out.append({"init": fmp4.init_segment(s).hex()})
            out.append({"fragment": fmp4.fragment(s, i).hex()})
        return out

    def first_au_edit(segment: bytes, edit: Callable[[List[bytes]], List[bytes]]) -> bytes:
        aus = fmp4.access_units(units_of(segment), CODEC_H264)
        timing = fmp4.segment_timing(units_of(segment))
        return fmp4.fragment_of_samples([edit(list(aus[0]))] + aus[1:], 0, timing)

    def sets_moved(au: List[bytes]) -> List[bytes]:
        sets = [u for u in au if u[0] & 0x1F in (7, 8)]
        rest = [u for u in au if u[0] & 0x1F not in (7, 8)]
        return rest[:-1] + sets + rest[-1:]

    timing = fmp4.segment_timing(units_of(alice[1]))
    aus = fmp4.access_units(units_of(alice[1]), CODEC_H264)
    merged = fmp4.fragment_of_samples([aus[0] + aus[1]] + aus[2:], 1, timing)
    stretched = fmp4.fragment(alice[1], 1, timing._replace(duration_ms=timing.duration_ms * 3))
    good = fmp4.fragment(alice[1], 1)
    mdat = good.rindex(b"mdat") + 4
    overrun = good[:mdat] + struct.pack(">I", struct.unpack(">I", good[mdat:mdat + 4])[0] + 3) + good[mdat + 4:]
    flipped = flip(good, len(good) - 30)
    return [
        case("fmp4: in order", [{"init": init.hex()}, *frags(*alice[:4])], plaintext=True),
        case("fmp4: another camera's fragment under this init segment", [{"init": init.hex()},
             {"fragment": fmp4.fragment(alice[0], 0).hex()}, {"fragment": fmp4.fragment(cam2[1], 1).hex()}],
             details=True),
        case("fmp4: a stranger's fragment", [{"init": init.hex()}, *frags(alice[0], eve[1], alice[2])]),
        case("fmp4: another own camera in a locked feed", [{"init": init.hex()}, *frags(alice[0], cam2[1], alice[1])],
             camera="cam-1"),
        case("fmp4: a fragment appended twice", [{"init": init.hex()}, *frags(alice[0], alice[1], alice[1])]),
        case("fmp4: reordered", [{"init": init.hex()}, *frags(alice[0], alice[2], alice[1])]),
        case("fmp4: parameter sets stripped from the samples", [
            {"init": init.hex()},
            {"fragment": first_au_edit(alice[0], lambda au: [u for u in au if u[0] & 0x1F not in (7, 8)]).hex()}]),
        case("fmp4: parameter sets moved behind the SEIs", [{"init": init.hex()},
                                                             {"fragment": first_au_edit(alice[0], sets_moved).hex()}]),
        case("fmp4: two pictures in one sample", [{"init": init.hex()}, *frags(alice[0]), {"fragment": merged.hex()}]),
        case("fmp4: timing stretched", [{"init": init.hex()}, *frags(alice[0]), {"fragment": stretched.hex()}]),
        case("fmp4: a length prefix overruns its sample", [{"init": init.hex()}, *frags(alice[0]),
                                                            {"fragment": overrun.hex()}]),
        case("fmp4: a video bit flipped", [{"init": init.hex()}, *frags(alice[0]), {"fragment": flipped.hex()}]),
        case("fmp4: a second video track", [{"init": _two_video_tracks(init).hex()}, *frags(*alice[:2])]),
        case("fmp4: stranger, for bob", [{"init": init.hex()}, *frags(*alice[:2])], "eve"),
    ]


def test_fmp4_fragments_through_the_gate_get_the_same_verdicts(tmp_path: Path) -> None:
    py = agree(fragment_cases(), tmp_path)
    assert [v for v in py["fmp4: in order"] if not v.startswith("plaintext ")] == ["ok", "pass"] * 4
    assert py["fmp4: another camera's fragment under this init segment"][2].startswith(
        "framing: the track's default_KID ('tenc') ")
    assert py["fmp4: a stranger's fragment"] == ["ok", "pass", "no_grant", "held", "gap", "pass"]
    assert py["fmp4: another own camera in a locked feed"][2:4] == ["chain_break", "held"]
    assert py["fmp4: a fragment appended twice"][-2:] == ["duplicate", "held"]
    assert py["fmp4: parameter sets stripped from the samples"] == ["ok", "pass"]
    assert py["fmp4: two pictures in one sample"][-2:] == ["framing", "held"]  # two access units in one sample
    assert py["fmp4: a length prefix overruns its sample"][-2:] == ["framing", "held"]
    assert py["fmp4: a second video track"] == ["framing", "held"] * 2


def test_the_gate_refuses_an_init_segment_whose_parameter_sets_are_not_the_cameras(tmp_path: Path) -> None:
    """A decoder reads the init segment's SPS/PPS too: they must be among the verified units."""
    alice = streams()[""]
    other = clips.encode_pyav(frames=10, gop=5, width=160, height=96, seed=4)  # another picture size
    segmenter = Segmenter(delimit=True)
    raw = next(s for s in segmenter.push(other) + segmenter.finish() if isinstance(s, Segment))
    foreign_init = fmp4.init_segment(Tagger(epoch(), 5).tag(raw.data, raw.units, T0, 200, raw.pictures)[0])
    first = {"fragment": fmp4.fragment(alice[0], 0).hex()}
    cases = [case("foreign init", [{"init": foreign_init.hex()}, first], details=True),
             case("own init", [{"init": fmp4.init_segment(alice[0]).hex()}, first]),
             case("no init", [first]),
             case("garbage init", [{"init": "00000010667479700000000000000000"}, first])]
    py = agree(cases, tmp_path)
    assert py["foreign init"] == ["framing: the container's sample description holds 1 unit(s) the camera did not tag "
                                  "in this segment's head", "held"]
    assert py["own init"] == ["ok", "pass"]
    assert py["no init"] == ["framing", "held"]
    assert py["garbage init"] == ["init refused", "framing", "held"]


def test_h265_segments_get_the_same_verdicts_and_pass_the_gate_as_fmp4(tmp_path: Path) -> None:
    own = h265_stream(epoch())
    eve = h265_stream(epoch(owner="eve", pairing=PAIRING_EVE, shares=()))
    assert len(own) >= 3 and all(tag_codec(units_of(s)[1]) == CODEC_H265 for s in own)
    body = body_of(own[1])
    cases = [
        case("h265: in order", annexb(*own)),
        case("h265: reordered and a stranger", annexb(own[0], own[2], eve[1], own[1])),
        case("h265: a bit flipped", annexb(own[0], flip(own[1], len(own[1]) - 20))),
        case("h265: an H.265 tag in an H.264 SEI", annexb(with_body(own[0], body, CODEC_H264))),
        case("h265: read back from a stream", [{"stream": b"".join(own).hex()}]),
    ]
    init = fmp4.init_segment(own[0])
    assert b"hvcC" in init
    cases.append(case("h265: fmp4", [{"init": init.hex()}] + [{"fragment": fmp4.fragment(s, i).hex()}
                                                              for i, s in enumerate(own)]))
    cases.append(case("h265: fmp4, a stranger's fragment", [{"init": init.hex()}, {"fragment": fmp4.fragment(
        own[0], 0).hex()}, {"fragment": fmp4.fragment(eve[1], 1).hex()}]))
    py = agree(cases, tmp_path)
    assert py["h265: in order"] == ["ok"] * len(own)
    assert py["h265: reordered and a stranger"] == ["ok", "gap", "no_grant", "late"]
    assert py["h265: fmp4"] == ["ok", "pass"] * len(own)
    assert py["h265: fmp4, a stranger's fragment"] == ["ok", "pass", "no_grant", "held"]
    assert py["h265: read back from a stream"] == ["ok"] * len(own)


def test_the_gate_survives_corrupted_fmp4(tmp_path: Path) -> None:
    """Corrupted init segments and fragments made from real ones: the JavaScript gate gives a
    verdict for each (the harness would exit with an error on any exception), the Python
    library's, text for text, and passes none."""
    import random

    rng = random.Random(7)
    alice = streams()[""]
    init, good = fmp4.init_segment(alice[0]), fmp4.fragment(alice[0], 0)

    def mutated(data: bytes) -> bytes:
        out = bytearray(data[:rng.randrange(1, len(data) + 1)])
        for _ in range(rng.randrange(1, 5)):
            at = rng.randrange(len(out))
            out[at] = rng.randrange(256)
        return bytes(out)

    cases = [case("fragment %d" % i, [{"init": init.hex()}, {"fragment": mutated(good).hex()}], details=True)
             for i in range(150)]
    cases += [case("init %d" % i, [{"init": mutated(init).hex()}, {"fragment": good.hex()}]) for i in range(100)]
    js = {name: [r.split(":")[0] for r in results] for name, results in agree(cases, tmp_path).items()}
    known = {"ok", "gap", "late", "duplicate", "no_tag", "no_grant", "mac_mismatch", "content_mismatch",
             "malformed_tag", "unknown_version", "framing", "timing", "replay", "chain_break", "time_window",
             "pass", "held"}
    assert len(js) == 250
    for name, results in js.items():
        assert all(r in known or r.startswith("init refused") for r in results), (name, results)
    # a fragment whose bytes changed never passes, unless the change is outside what the gate reads
    passed = [name for name, results in js.items() if name.startswith("fragment") and results[-1] == "pass"]
    assert len(passed) < 15, passed
