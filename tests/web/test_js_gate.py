"""The browser gate (FragmentGate in src/segbind/web/segbind-verify.js) against the Python library
on the same fMP4 bytes, verdict for verdict and, where a rule refuses, text for text.

The gate reads fragments through segbind-mp4.js, cuts them by the rules of read.cut and checks
timing as verifier.py does (docs/FORMAT.md 7.3, 7.5). The material: real x264 and x265 streams
with B-frames (host_sim.clips), cut and tagged as the camera does by alice's camera; packaged by
the owner's own ``segbind hls --type fmp4``, by ffmpeg's HLS muxer from the owner's MP4, by an
attacker who reverses or freezes the pictures of every segment, and by hand, sample by sample,
to break each rule a sample obeys. Each is judged by alice (the owner) and eve (a stranger).
"""

from __future__ import annotations

import random
import re
import struct
import sys
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from host_sim import clips
from segbind.web import fmp4
from segbind_core.nal import START_CODE, annexb_units, to_annexb
from segbind_core.protect import protected_bytes
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, decode_tag
from segbind_core.tagger import Tagger
from tests.support import ROOT
from tests.support.media import by_segment, rewrite_packets, sample_has_tag
from tests.support.tagged import T0, body_of, epoch, raw_segments
from tests.support.web import (
    CAMERA_KINDS,
    RINGS,
    agree,
    case,
    ffmpeg_hls_of,
    fmp4_chunks,
    fmp4_inputs,
    hls_chunks,
    js_results,
    owner_remux,
    segbind_hls_of,
    segments_of,
    tagged,
)

KINDS = CAMERA_KINDS
FRAG = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
ACCEPTED = ("ok", "gap", "late")
RULES = ["framing", "timing"]  # the verdicts whose texts are the reading's


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate")


def owner_mp4(codec: str, work: Path) -> Path:
    return owner_remux(KINDS[codec], work)


def segbind_hls(codec: str, work: Path) -> List[bytes]:
    """``segbind hls --type fmp4`` of the tagged stream: its init segment, then its media segments."""
    return hls_chunks(segbind_hls_of(KINDS[codec], work))


def ffmpeg_hls(codec: str, work: Path) -> List[bytes]:
    """ffmpeg's own HLS fMP4 of the owner's MP4 (``-c copy -f hls -hls_segment_type fmp4``)."""
    return hls_chunks(ffmpeg_hls_of(KINDS[codec], work))


def owner_and_stranger(name: str, chunks: List[bytes]) -> List[dict]:
    inputs = fmp4_inputs(*chunks)
    return [case(name + ", owner", inputs, plaintext=True), case(name + ", stranger", inputs, "eve", plaintext=True)]


def reasons(verdicts: List[str]) -> List[str]:
    """A case's verdicts without the digests of what accepted segments decrypt to."""
    return [v for v in verdicts if not v.startswith("plaintext ")]


@pytest.mark.parametrize("codec", sorted(KINDS))
def test_hls_fmp4_of_the_owner_and_of_ffmpeg_passes_for_its_owner_alone(codec: str, work: Path,
                                                                        tmp_path: Path) -> None:
    """``segbind hls --type fmp4`` (whose init segment's parameter sets keep the encoder's zero
    byte) and ffmpeg's HLS muxer: every fragment passes the owner's gate, none a stranger's."""
    outputs = {"segbind hls": segbind_hls(codec, work), "ffmpeg hls": ffmpeg_hls(codec, work)}
    assert all(len(chunks) > 2 for chunks in outputs.values())
    cases = [c for name, chunks in outputs.items() for c in owner_and_stranger(name, chunks)]
    init, *fragments = outputs["segbind hls"]  # a loader may hand the gate several fragments at once
    cases.append(case("segbind hls, all at once", [{"init": init.hex()}, {"fragments": [f.hex() for f in fragments]}],
                      plaintext=True))
    both = agree(cases, tmp_path)
    py = {name: reasons(verdicts) for name, verdicts in both.items()}
    count = len(segments_of(tagged(KINDS[codec])))
    # what the owner's gate decrypts: the same plaintext from either packaging ('cenc', and the protected form
    # in a clear track), and the same as Python's
    decrypted = {name: [v for v in both[name + ", owner"] if v.startswith("plaintext ")] for name in outputs}
    assert decrypted["segbind hls"] == decrypted["ffmpeg hls"] and len(decrypted["segbind hls"]) == count
    for name, chunks in outputs.items():
        own, stranger = py[name + ", owner"], py[name + ", stranger"]
        assert own.count("pass") == len(chunks) - 1 and "held" not in own, (name, own)
        assert [v for v in own if v != "pass"] == ["ok"] * count, (name, own)
        assert stranger.count("held") == len(chunks) - 1 and "pass" not in stranger, (name, stranger)
        assert {v for v in stranger if v != "held"} == {"no_grant"}, (name, stranger)
    assert py["segbind hls, all at once"] == py["segbind hls, owner"]


def test_a_zero_byte_after_a_parameter_set_of_the_init_segment_is_not_part_of_it(tmp_path: Path) -> None:
    """What made the browser refuse every fragment of format 2's ``segbind hls``: its init segment's
    record kept the zero byte after each parameter set (as the encoder wrote it). Such a record is
    read as the camera tagged its units, by both."""
    segment = segments_of(tagged(KINDS["h264"]))[0]
    codec, sets = fmp4.parameter_sets(segment)
    init = fmp4.movie(codec, [u + b"\x00" for u in sets], fmp4.segment_fields(_units(segment)).key_id)
    assert all(len(u + b"\x00").to_bytes(2, "big") + u + b"\x00" in init for u in sets)
    py = agree([case("a zero byte after each set", fmp4_inputs(init, fmp4.fragment(segment, 0)), plaintext=True)],
               tmp_path)
    assert [v for v in py["a zero byte after each set"] if not v.startswith("plaintext")] == ["ok", "pass"]


# ---- timing: each picture where the camera put it (FORMAT.md 7.5) ------------------------------------------


Times = List[Tuple[int, int]]


def reversed_in_segments(starts: List[int]) -> Callable[[Times], Times]:
    """Each segment's pictures presented in reverse (the attack of tests/media/test_timing.py)."""
    def retime(times: Times) -> Times:
        out = list(times)
        shift = max(p for p, _ in times) - min(p for p, _ in times)
        for seg in by_segment(starts, len(times)):
            low, high = min(times[i][0] for i in seg), max(times[i][0] for i in seg)
            for i in seg:
                out[i] = (low + high - times[i][0], times[i][1] - shift)
        return out
    return retime


def frozen_in_segments(starts: List[int], freeze: int) -> Callable[[Times], Times]:
    """In each segment long enough, the third picture held ``freeze`` ticks longer and the rest
    squeezed into what is left (the attack of tests/media/test_timing.py)."""
    def retime(times: Times) -> Times:
        out = list(times)
        for seg in by_segment(starts, len(times)):
            order = sorted(seg, key=lambda i: times[i][0])
            t = [times[i][0] for i in order]
            after, rest = t[2] + freeze, len(t) - 4
            if rest < 1 or t[-1] - after < 2 * freeze // 5:
                continue
            for j, i in enumerate(order):
                if j > 2:
                    out[i] = (round(after + (j - 3) * (t[-1] - after) / rest), times[i][1])
        return out
    return retime


@pytest.mark.parametrize("codec", sorted(KINDS))
def test_pictures_out_of_the_cameras_order_are_refused_alike(codec: str, work: Path, tmp_path: Path) -> None:
    import av

    own = owner_mp4(codec, work)
    with av.open(str(own)) as container:
        stream = container.streams.video[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
        half_second = int(0.5 / stream.time_base)
    starts = [i for i, data in enumerate(packets) if sample_has_tag(data)]
    files = {
        "honest": rewrite_packets(own, tmp_path / "honest.mp4", "mp4", options=FRAG),
        "reversed": rewrite_packets(own, tmp_path / "reversed.mp4", "mp4", options=FRAG,
                                    retime=reversed_in_segments(starts)),
        "frozen": rewrite_packets(own, tmp_path / "frozen.mp4", "mp4", options=FRAG,
                                  retime=frozen_in_segments(starts, half_second)),
    }
    def served(path: Path) -> List[dict]:  # as HLS serves them: the init segment, then each moof + mdat
        return fmp4_inputs(*[c for c in fmp4_chunks(path.read_bytes()) if c[4:8] != b"mfra"])

    cases = [case("%s %s" % (codec, name), served(path), details=True) for name, path in files.items()]
    cases.append(case("%s reversed, stranger" % codec, served(files["reversed"]), "eve"))
    py = agree(cases, tmp_path)
    judged = {name: [v.split(":")[0] for v in verdicts if v not in ("pass", "held")] for name, verdicts in py.items()}
    assert judged["%s honest" % codec] == ["ok"] * len(starts)
    assert judged["%s reversed" % codec].count("timing") == len(starts)
    assert judged["%s frozen" % codec].count("timing") >= len(starts) - 1  # the last may be too short to freeze in
    for name in ("reversed", "frozen"):
        assert all("from its place" in v for v in py["%s %s" % (codec, name)] if v.startswith("timing")), py
    assert set(judged["%s reversed, stranger" % codec]) == {"no_grant"}


# ---- the rules on what a sample holds, sample by sample ------------------------------------------------------

def _units(segment: bytes) -> List[bytes]:
    return [segment[s:e] for s, e in annexb_units(segment)]


def _kind(unit: bytes, codec: int) -> int:
    return (unit[0] >> 1) & 0x3F if codec == CODEC_H265 else unit[0] & 0x1F


def _packaged(segment: bytes, number: int, edit: Callable[[List[List[bytes]]], List[List[bytes]]]) -> bytes:
    """The segment as one fragment (the cloud's packaging), its access units edited first."""
    units = _units(segment)
    timing = fmp4.segment_timing(units)
    return fmp4.fragment_of_samples(edit(fmp4.access_units(units, timing.codec)), number, timing)


def _first(edit: Callable[[List[bytes]], List[bytes]]) -> Callable[[List[List[bytes]]], List[List[bytes]]]:
    return lambda samples: [edit(list(samples[0]))] + samples[1:]


def _hidden_start_code(codec: int) -> Callable[[List[bytes]], List[bytes]]:
    """The first two parameter sets joined into one unit, a start code between them."""
    def edit(au: List[bytes]) -> List[bytes]:
        k = next(i for i, u in enumerate(au) if _kind(u, codec) in ((7,) if codec == CODEC_H264 else (32,)))
        return au[:k] + [au[k] + START_CODE + au[k + 1]] + au[k + 2:]
    return edit


def _slices_joined(samples: List[List[bytes]]) -> List[List[bytes]]:
    """In the first sample with two slices, the second hidden in the first behind a start code:
    the same canonical bytes, one unit less (every reader of Annex-B splits it again)."""
    out = [list(s) for s in samples]
    for sample in out:
        slices = [i for i, u in enumerate(sample) if 1 <= u[0] & 0x1F <= 5]
        if len(slices) > 1:
            k = slices[0]
            sample[k:k + 2] = [sample[k] + START_CODE + sample[k + 1]]
            return out
    raise AssertionError("no picture of several slices")


def _sets_repeated(codec: int) -> Callable[[List[bytes]], List[bytes]]:
    """The head's parameter sets added again before the first picture (as hevc_mp4toannexb does)."""
    wanted = (7, 8) if codec == CODEC_H264 else (32, 33, 34)

    def edit(au: List[bytes]) -> List[bytes]:
        sets = [u for u in au if _kind(u, codec) in wanted]
        first = next(i for i, u in enumerate(au) if (1 <= _kind(u, codec) <= 5 if codec == CODEC_H264
                                                      else _kind(u, codec) <= 31))
        return au[:first] + sets + au[first:]
    return edit


def _h265_segment() -> bytes:
    return segments_of(tagged(KINDS["h265"]))[1]


def _with_edit_list(init: bytes, media_time: int) -> bytes:
    """The init segment with an edit list that starts the presentation at ``media_time`` (track
    ticks): the pictures before it are decoded, not shown (ffmpeg's B-frame delay, ``-ss``)."""
    elst = fmp4.full_box(b"elst", 1, 0, struct.pack(">IQqI", 1, 0, media_time, 0x10000))
    edts = fmp4.box(b"edts", elst)
    moov = init.index(b"moov") - 4
    trak = init.index(b"trak") - 4
    tkhd_end = init.index(b"tkhd") - 4 + int.from_bytes(init[init.index(b"tkhd") - 4:init.index(b"tkhd")], "big")
    grown = bytearray(init[:tkhd_end] + edts + init[tkhd_end:])
    for at in (moov, trak):
        grown[at:at + 4] = (int.from_bytes(grown[at:at + 4], "big") + len(edts)).to_bytes(4, "big")
    return bytes(grown)


def _clear_init(init: bytes) -> bytes:
    """A 'cenc' init segment as a clear track of the same sample entry ('encv' back to its original
    format, 'sinf' and 'pssh' made 'free'): what a keyless remux of the protected form (ffmpeg's
    HLS muxer of the owner's MP4) describes. Its samples carry the protected form as it is."""
    original = init[init.index(b"frma") + 4:init.index(b"frma") + 8]
    return init.replace(b"encv", original, 1).replace(b"sinf", b"free", 1).replace(b"pssh", b"free", 1)


def _clear_fragment(samples: List[List[bytes]], number: int, fields: fmp4.TagFields,
                    offsets: Optional[List[int]] = None) -> bytes:
    """A clear fragment (no 'senc') whose samples hold these units, length-prefixed as they are
    (the protected form), timed by the tag's fields, with these composition offsets (trun v0)."""
    data = [b"".join(struct.pack(">I", len(u)) + u for u in sample) for sample in samples]
    offsets = offsets or [0] * len(data)
    step = fields.duration_ms * fmp4.TIMESCALE // 1000 // len(data)
    entries = b"".join(struct.pack(">IIII", step, len(d), 0x02000000 if k == 0 else 0x01010000, offsets[k])
                       for k, d in enumerate(data))

    def moof(data_offset: int) -> bytes:
        trun = fmp4.full_box(b"trun", 0, 0x000F01, struct.pack(">Ii", len(data), data_offset), entries)
        traf = fmp4.box(b"traf", fmp4.full_box(b"tfhd", 0, 0x020000, struct.pack(">I", fmp4.TRACK_ID)),
                        fmp4.full_box(b"tfdt", 1, 0, struct.pack(">Q", fields.capture_ms * fmp4.TIMESCALE // 1000)),
                        trun)
        return fmp4.box(b"moof", fmp4.full_box(b"mfhd", 0, 0, struct.pack(">I", number)), traf)

    return moof(len(moof(0)) + 8) + fmp4.box(b"mdat", *data)


def _cenc_fragment(samples: List[List[bytes]], number: int, fields: fmp4.TagFields, offsets: List[int]) -> bytes:
    """The cloud's 'cenc' fragment of these samples, with these composition offsets."""
    protected = fmp4.cenc_samples(samples, fields)
    step = fields.duration_ms * fmp4.TIMESCALE // 1000 // len(protected)
    return fmp4.movie_fragment(number, fields.capture_ms * fmp4.TIMESCALE // 1000, [
        fmp4.Sample(data, step, offsets[k], k == 0, iv, subsamples)
        for k, (data, iv, subsamples) in enumerate(protected)])


def _hidden_cases(h264: bytes) -> Dict[str, Tuple[bytes, bytes]]:
    """An edit list hiding the first picture, and one picture hidden after the presentation began:
    in a fragment, both refused (FFmpeg shows what the edit list hides from Chromium), 'cenc' or clear."""
    units = _units(h264)
    fields = fmp4.segment_timing(units)
    samples = fmp4.access_units(units, CODEC_H264)
    count = len(samples)
    step = fields.duration_ms * fmp4.TIMESCALE // 1000 // count
    base = fields.capture_ms * fmp4.TIMESCALE // 1000
    init = fmp4.init_segment(h264)
    later = [2 * step, 0] + [2 * step] * (count - 2)
    return {
        "an edit list hiding the first picture": (_with_edit_list(init, base + step),
                                                  _cenc_fragment(samples, 1, fields, [0] * count)),
        "a picture hidden after the presentation began": (_with_edit_list(init, base + 2 * step),
                                                          _cenc_fragment(samples, 1, fields, later)),
        "clear: an edit list hiding the first picture": (_clear_init(_with_edit_list(init, base + step)),
                                                         _clear_fragment(samples, 1, fields)),
    }


@lru_cache(maxsize=None)
def _field_segment() -> bytes:
    """A tagged segment of H.264 field pictures (no encoder in reach writes them: tests/core's
    writer does, decodable), five frames of two fields each, delimited and tagged by the camera."""
    sys.path.insert(0, str(ROOT / "tests" / "core"))
    import _syntax_writer as writer  # the core tests' writer of what no encoder writes

    stream = writer.H264Stream(frame_mbs_only=0, log2_max_poc_lsb=6)
    units = [stream.sps(), stream.pps()]
    for frame in range(5):
        kind, idr = (writer.I, True) if frame == 0 else (writer.P, False)
        units.append(stream.slice(kind, frame_num=frame, idr=idr, field="top", poc_lsb=4 * frame, ref_idc=3)[0])
        units.append(stream.slice(writer.P, frame_num=frame, field="bottom", poc_lsb=4 * frame + 1, ref_idc=3)[0])
    segmenter = Segmenter(delimit=True)
    segment = next(x for x in segmenter.push(to_annexb(units)) + segmenter.finish() if isinstance(x, Segment))
    assert segment.pictures == 5  # a frame's two fields count once
    return Tagger(epoch(), T0, codec=CODEC_H264).tag(segment.data, segment.units, T0, 200, segment.pictures)[0]


def _field_cases() -> Dict[str, Tuple[bytes, bytes]]:
    """In a clear track (the protected form, as a keyless remux carries it): the two fields of each
    frame in one sample (as FFmpeg's parser joins them: accepted), the same top field twice (not a
    frame: refused), and one field per sample (ten pictures where the camera tagged five: timing).
    In 'cenc', field-coded H.264 gives way (FORMAT.md 4.4): both fields in one sample are two
    access units in one 'cenc' sample (framing), a field per sample counts ten pictures (timing)."""
    segment = _field_segment()
    init = fmp4.init_segment(segment)
    fields = fmp4.segment_timing(_units(segment))
    aus = fmp4.delimited_access_units(_units(segment), CODEC_H264)
    pairs = lambda k: lambda s: [s[i] + s[i + k] for i in range(0, len(s), 2)]  # noqa: E731
    return {
        "clear: the two fields of a frame in one sample": (_clear_init(init),
                                                           _clear_fragment(pairs(1)(aus), 0, fields)),
        "clear: a top field twice in one sample": (_clear_init(init), _clear_fragment(
            [aus[0] + aus[1]] + pairs(0)(aus[2:]), 0, fields)),
        "clear: a field per sample": (_clear_init(init), _clear_fragment(aus, 0, fields)),
        "the two fields of a frame in one sample": (init, _packaged(segment, 0, pairs(1))),
        "a field per sample": (init, fmp4.fragment(segment, 0)),
    }


def rule_cases() -> Dict[str, Tuple[bytes, bytes]]:
    """name -> (init segment, fragment): one rule broken in each, or a remux the rules accept."""
    h264 = segments_of(tagged(KINDS["h264"]))[1]
    h265 = _h265_segment()
    init264, init265 = fmp4.init_segment(h264), fmp4.init_segment(h265)
    not_sets = _first(lambda au: [u for u in au if _kind(u, CODEC_H264) not in (7, 8)])
    h264_fields = fmp4.segment_timing(_units(h264))
    return {
        "as packaged": (init264, fmp4.fragment(h264, 1)),
        "clear: as a keyless remux carries it": (_clear_init(init264), _clear_fragment(
            fmp4.delimited_access_units(_units(h264), CODEC_H264), 1, h264_fields)),
        "clear: two access units in one sample": (_clear_init(init264), _clear_fragment(
            (lambda s: [s[0] + s[1]] + s[2:])(fmp4.delimited_access_units(_units(h264), CODEC_H264)), 1, h264_fields)),
        "two access units in one sample": (init264, _packaged(h264, 1, lambda s: [s[0] + s[1]] + s[2:])),
        "a start code hidden in a parameter set": (init264, _packaged(h264, 1, _first(_hidden_start_code(CODEC_H264)))),
        "a start code hidden in a slice": (init264, _packaged(h264, 1, _slices_joined)),
        "a delimiter of three bytes": (init264, _packaged(h264, 1, _first(lambda au: [au[0] + b"\x01"] + au[1:]))),
        "a sample beginning with the tag": (init264, _packaged(h264, 1, _first(lambda au: au[1:]))),
        "a sample holding nothing but a delimiter": (init264, _packaged(h264, 1, lambda s: [s[0], s[1][:1]] + s[2:])),
        "an H.265 segment in an H.264 track": (init264, fmp4.fragment(h265, 1)),
        "parameter sets repeated": (init264, _packaged(h264, 1, _first(_sets_repeated(CODEC_H264)))),
        "parameter sets stripped": (init264, _packaged(h264, 1, not_sets)),
        "H.265 as packaged": (init265, fmp4.fragment(h265, 1)),
        "H.265 parameter sets repeated": (init265, _packaged(h265, 1, _first(_sets_repeated(CODEC_H265)))),
        "H.265 a start code hidden in a parameter set": (init265, _packaged(h265, 1,
                                                                            _first(_hidden_start_code(CODEC_H265)))),
        "a tag after a picture of its sample": (init264, _packaged(h264, 1, _first(
            lambda au: [au[0]] + au[2:] + [au[1]]))),
        **_hidden_cases(h264),
        **_field_cases(),
    }


def test_each_rule_on_samples_refuses_alike_with_the_same_text(tmp_path: Path) -> None:
    cases = []
    for name, (init, fragment) in rule_cases().items():
        cases.append(case(name, fmp4_inputs(init, fragment), details=True, plaintext=True))
        cases.append(case(name + ", stranger", fmp4_inputs(init, fragment), "eve"))
    py = {name: [v for v in verdicts if not v.startswith("plaintext ")]
          for name, verdicts in agree(cases, tmp_path).items()}
    first = lambda name: py[name][0]  # noqa: E731
    for name in ("as packaged", "clear: as a keyless remux carries it", "parameter sets repeated",
                 "parameter sets stripped", "H.265 as packaged", "H.265 parameter sets repeated",
                 "clear: the two fields of a frame in one sample"):
        assert first(name).split(":")[0] in ACCEPTED and py[name][-1] == "pass", (name, py[name])
    cenc_aus = ("framing: a Common Encryption sample holds 2 access units: the camera begins each one's keystream at a "
                "fresh counter block, 'cenc' continues it across a sample")
    two_aus = "framing: a sample holds 2 access units (a sample is one access unit, or the two fields of one frame)"
    hidden = "timing: an edit list hides a picture of a fragment (FFmpeg shows it)"
    expected = {
        "two access units in one sample": cenc_aus,
        "clear: two access units in one sample": two_aus,
        "a start code hidden in a parameter set": "framing: a NAL unit holds a start code (00 00 00): a decoder "
                                                  "splits it there",
        "a delimiter of three bytes": "framing: an access unit delimiter of 3 bytes",
        "a sample beginning with the tag": "framing: a sample begins with a tag, not with the delimiter the camera "
                                           "puts first",
        "an H.265 segment in an H.264 track": "framing: an H.265 segment in an H.264 track (a decoder reads it as "
                                              "H.264)",
        "H.265 a start code hidden in a parameter set": "framing: a NAL unit holds a start code (00 00 00): a decoder "
                                                        "splits it there",
        # FFmpeg shows what an edit list hides in a fragment (read.mp4, from main 7b1d245 on; segbind-mp4.js too)
        "an edit list hiding the first picture": hidden,
        "a picture hidden after the presentation began": hidden,
        "clear: an edit list hiding the first picture": hidden,
        # field-coded H.264 gives way in 'cenc' (FORMAT.md 4.4), and is read as FFmpeg joins it in a clear track
        "the two fields of a frame in one sample": cenc_aus,
        "a field per sample": "timing: 10 pictures where the camera tagged 5",
        "clear: a top field twice in one sample": two_aus,
        "clear: a field per sample": "timing: 10 pictures where the camera tagged 5",
    }
    for name, text in expected.items():
        assert py[name] == [text, "held"], (name, py[name])
    # hidden behind a start code in a 'cenc' slice, the next slice is ciphertext: escaped, one unit fewer
    assert re.fullmatch(r"content_mismatch: \d+ NAL units where the camera tagged \d+",
                        first("a start code hidden in a slice"))
    assert py["a tag after a picture of its sample"][0].startswith(
        "framing: a sample holds picture units before its segment's tag")
    assert first("a sample holding nothing but a delimiter").startswith("framing: a sample holds 0 pictures")
    for name in rule_cases():  # a stranger's gate refuses all; the key decides unless the tag's sample is not read
        unread = "an edit list hiding the first picture" in name
        assert py[name + ", stranger"] == ["timing" if unread else "no_grant", "held"], (name, py[name + ", stranger"])


def _unit_starts(chunk: bytes, mdat: int) -> List[int]:
    """Where the NAL units of an 'mdat' of 4-byte length-prefixed samples begin (their lengths)."""
    starts, pos = [], mdat
    while pos + 4 <= len(chunk):
        starts.append(pos)
        pos += 4 + int.from_bytes(chunk[pos:pos + 4], "big")
    return starts


def _mutant(chunk: bytes, rng: random.Random) -> bytes:
    """A few bytes changed: in the 'moof', in a NAL unit's length, header or first bytes (its
    slice header, its delimiter: where readings differ), or anywhere; sometimes cut short."""
    out = bytearray(chunk)
    mdat = chunk.find(b"mdat") + 4
    units = _unit_starts(chunk, mdat)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.35:
            at = rng.randrange(mdat)
        elif choice < 0.85 and units:
            at = min(len(out) - 1, rng.choice(units) + rng.choice([2, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 12]))
        else:
            at = rng.randrange(len(out))
        out[at] = rng.choice([out[at] ^ (1 << rng.randrange(8)), 0, 1, 3, 0xFF, rng.randrange(256)])
    if rng.random() < 0.1:
        del out[rng.randrange(mdat, len(out)):]
    return bytes(out)


@pytest.mark.parametrize("codec", sorted(KINDS))
def test_mutated_fragments_are_judged_alike(codec: str, work: Path, tmp_path: Path) -> None:
    """Seeded mutants of the owner's fragments (segbind hls and ffmpeg's HLS): whatever the
    change, both verifiers give the same verdicts, and the same texts for what the reading
    refuses (framing, timing; the tag's own texts are the tag decoder's)."""
    rng = random.Random(20261206 + len(codec))
    cases = []
    for name, chunks in (("segbind hls", segbind_hls(codec, work)), ("ffmpeg hls", ffmpeg_hls(codec, work))):
        for k in range(100):
            at = rng.randrange(1, len(chunks))
            fragments = [_mutant(c, rng) if i == at else c for i, c in enumerate(chunks[1:], 1)]
            cases.append(case("%s #%d" % (name, k), fmp4_inputs(chunks[0], *fragments), details=RULES, plaintext=True))
    py = agree(cases, tmp_path)
    refused = {v.split(":")[0] for verdicts in py.values() for v in reasons(verdicts)} - {"pass", "held", "ok", "gap"}
    assert len(refused) >= 3, refused


# ---- Common Encryption: what FORMAT.md 4.4 derives, and every other reading refused alike -------------------

def _cenc(samples: List[Tuple[bytes, bytes, Tuple[Tuple[int, int], ...]]], number: int, fields: fmp4.TagFields,
          iv_size: int = 16, subsampled: bool = True) -> bytes:
    """A 'cenc' fragment of these (sample bytes, IV, subsamples), as fmp4.movie_fragment writes it but
    with any IV size and with or without subsamples ('senc' flag 2), 'saiz'/'saio' describing it."""
    count = len(samples)
    step = fields.duration_ms * fmp4.TIMESCALE // 1000 // count
    entries = b"".join(struct.pack(">IIII", step, len(d), 0x02000000 if k == 0 else 0x01010000, 0)
                       for k, (d, _iv, _s) in enumerate(samples))
    items = [iv[:iv_size] + (struct.pack(">H", len(sub)) + b"".join(struct.pack(">HI", c, p) for c, p in sub)
                             if subsampled else b"") for _d, iv, sub in samples]
    senc = fmp4.full_box(b"senc", 0, 2 if subsampled else 0, struct.pack(">I", count), *items)
    mfhd = fmp4.full_box(b"mfhd", 0, 0, struct.pack(">I", number))
    tfhd = fmp4.full_box(b"tfhd", 0, 0x020000, struct.pack(">I", fmp4.TRACK_ID))
    tfdt = fmp4.full_box(b"tfdt", 1, 0, struct.pack(">Q", fields.capture_ms * fmp4.TIMESCALE // 1000))

    def moof(data_offset: int) -> bytes:
        trun = fmp4.full_box(b"trun", 0, 0x000F01, struct.pack(">Ii", count, data_offset), entries)
        saiz = fmp4.full_box(b"saiz", 0, 0, bytes([0]), struct.pack(">I", count), bytes(len(i) for i in items))
        at = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + len(trun) + 16
        saio = fmp4.full_box(b"saio", 0, 0, struct.pack(">II", 1, at))
        return fmp4.box(b"moof", mfhd, fmp4.box(b"traf", tfhd, tfdt, trun, senc, saiz, saio))

    return moof(len(moof(0)) + 8) + fmp4.box(b"mdat", *(d for d, _iv, _s in samples))


def _tenc(init: bytes, version: int = 0, pattern: int = 0, iv_size: int = 16, kid: Optional[bytes] = None) -> bytes:
    """The init segment with its 'tenc' rewritten (version, crypt:skip pattern byte, IV size, default_KID)."""
    at = init.index(b"tenc") + 4
    body = bytes([version, 0, 0, 0, 0, pattern, 1, iv_size]) + (kid or init[at + 8:at + 24])
    return init[:at] + body + init[at + 24:]


def _cbcs(init: bytes) -> bytes:
    at = init.index(b"schm") + 8
    return _tenc(init[:at] + b"cbcs" + init[at + 4:], version=1, pattern=0x19)


def _escaped_segment() -> bytes:
    """A segment of real x264 video whose ciphertext holds 00 00 00, 00 00 01, 00 00 02 and 00 00 03
    inside its first picture (its protected form needs every escape; a 'cenc' sample stores the
    ciphertext as it is): that picture's slice data chosen, with the content key, so that its
    ciphertext does (the picture decodes to noise; the verifiers do not decode)."""
    raw = raw_segments()[1]
    tagged_once = Tagger(epoch(), T0, seq=0).tag(raw.data, raw.units, T0, raw.duration_ms, raw.pictures)[0]
    lead = decode_tag(body_of(tagged_once))[0].clear_lead
    plain = [raw.data[b:e] for b, e in annexb_units(raw.data)]
    protected = [u for u in (tagged_once[b:e] for b, e in annexb_units(tagged_once)) if not tag_codec(u)]
    k = next(i for i, u in enumerate(plain) if 1 <= u[0] & 0x1F <= 5 and len(u) > lead + 64)
    cipher = protected_bytes(protected[k], lead)
    stream = bytes(a ^ b for a, b in zip(cipher, plain[k][lead:-1]))
    wanted = bytearray(cipher)
    for at, pattern in ((8, b"\x00\x00\x00"), (20, b"\x00\x00\x01"), (32, b"\x00\x00\x02"), (44, b"\x00\x00\x03"),
                        (56, b"\x00" * 6)):
        wanted[at:at + len(pattern)] = pattern
    plain[k] = plain[k][:lead] + bytes(a ^ b for a, b in zip(wanted, stream)) + plain[k][-1:]
    data = b"".join(START_CODE + u for u in plain)
    assert len(annexb_units(data)) == len(plain)  # the chosen bytes made no start code in the plaintext
    out = Tagger(epoch(), T0, seq=0).tag(data, raw.units, T0, raw.duration_ms, raw.pictures)[0]
    picture_units = [u for u in (out[b:e] for b, e in annexb_units(out)) if not tag_codec(u)]
    assert protected_bytes(picture_units[k], lead) == bytes(wanted)
    return out


def cenc_cases() -> Dict[str, Tuple[bytes, bytes]]:
    """name -> (init segment, fragment): the cloud's 'cenc' packaging of a real segment, and each way
    its encryption information can differ from what FORMAT.md 4.4 derives."""
    segment = segments_of(tagged(KINDS["h264"]))[1]
    units = _units(segment)
    fields = fmp4.segment_timing(units)
    samples = fmp4.cenc_samples(fmp4.delimited_access_units(units, CODEC_H264), fields)
    init = fmp4.init_segment(segment)
    other_kid = bytes([fields.key_id[0] ^ 1]) + fields.key_id[1:]

    def sample(k: int, iv: Optional[bytes] = None, sub: Optional[Tuple[Tuple[int, int], ...]] = None) -> List:
        out = list(samples)
        data, old_iv, old_sub = out[k]
        out[k] = (data, old_iv if iv is None else iv, old_sub if sub is None else sub)
        return out

    (c, p), *rest = samples[0][2]
    flipped = bytearray(fmp4.fragment(segment, 1))
    mdat = flipped.rindex(b"mdat") + 4
    flipped[mdat + (len(flipped) - mdat) // 2] ^= 0x20
    escaped = _escaped_segment()
    return {
        "a ciphertext that needs every escape": (fmp4.init_segment(escaped), fmp4.fragment(escaped, 0)),
        "as packaged": (init, _cenc(samples, 1, fields)),
        "a subsample with one byte moved into the clear": (init, _cenc(sample(0, sub=((c + 1, p - 1), *rest)), 1,
                                                                       fields)),
        "subsamples merged into one": (init, _cenc(sample(0, sub=((sum(x for x, _ in samples[0][2]),
                                                                    sum(y for _, y in samples[0][2])),)), 1, fields)),
        "whole-sample encryption (no subsamples)": (init, _cenc(samples, 1, fields, subsampled=False)),
        "an IV one block further": (init, _cenc(sample(1, iv=fmp4.counter_block_after(samples[1][1], 1)), 1, fields)),
        "the keystream restarted at the second access unit": (init, _cenc(sample(1, iv=samples[0][1]), 1, fields)),
        "the IVs of another segment": (init, _cenc(
            [(d, fmp4.counter_block_after(iv, 1 << 40), s) for d, iv, s in samples], 1, fields)),
        "scheme 'cbcs'": (_cbcs(init), _cenc(samples, 1, fields)),
        "a pattern on 'cenc'": (_tenc(init, version=1, pattern=0x19), _cenc(samples, 1, fields)),
        "8-byte IVs": (_tenc(init, iv_size=8), _cenc(samples, 1, fields, iv_size=8)),
        "another default_KID": (_tenc(init, kid=other_kid), _cenc(samples, 1, fields)),
        "a ciphertext bit flipped": (init, bytes(flipped)),
    }


def test_common_encryption_is_read_alike(tmp_path: Path) -> None:
    """'cenc' fragments (the cloud's packaging, FORMAT.md 4.4) and each change to their encryption
    information: both verifiers refuse alike, text for text, and decrypt what they accept alike;
    a stranger is told no_grant whatever the encryption information says (the key check comes first)."""
    cases = []
    for name, (init, fragment) in cenc_cases().items():
        cases.append(case(name, fmp4_inputs(init, fragment), details=True, plaintext=True))
        cases.append(case(name + ", stranger", fmp4_inputs(init, fragment), "eve"))
    py = agree(cases, tmp_path)
    assert reasons(py["as packaged"]) == ["ok: first segment seen of stream %d" % T0, "pass"]
    assert reasons(py["a ciphertext that needs every escape"]) == ["ok: first segment seen of stream %d" % T0, "pass"]
    texts = {
        "a subsample with one byte moved into the clear": "framing: a sample's subsample 0 is (",
        "subsamples merged into one": "framing: a sample has 1 subsamples where its units and the tag's clear lead",
        "whole-sample encryption (no subsamples)": "framing: a sample has 1 subsamples where its units",
        "an IV one block further": "framing: a sample's IV ",
        "the keystream restarted at the second access unit": "framing: a sample's IV ",
        "the IVs of another segment": "framing: a sample's IV ",
        "scheme 'cbcs'": "framing: the track is protected with scheme 'cbcs'",
        "a pattern on 'cenc'": "framing: a 'cenc' track with an encryption pattern (1:9)",
        "8-byte IVs": "framing: the track's 'tenc' gives 8-byte IVs",
        "another default_KID": "framing: the track's default_KID ('tenc') ",
        "a ciphertext bit flipped": "content_mismatch: video content differs",
    }
    for name, text in texts.items():
        assert len(py[name]) == 2 and py[name][0].startswith(text) and py[name][1] == "held", (name, py[name])
        assert py[name + ", stranger"] == ["no_grant", "held"], (name, py[name + ", stranger"])


# ---- what a display that decrypts hands its decoder -----------------------------------------------------------

@pytest.mark.parametrize("codec", sorted(KINDS))
def test_what_the_gate_decrypts_decodes_to_the_encoders_pictures(codec: str, work: Path, tmp_path: Path) -> None:
    """A display that decrypts (FragmentGate's ``decrypt``) hands its decoder the init segment, its
    protection renamed away, and for each fragment that passed a clear fMP4 of the verified segments
    decrypted: FFmpeg decodes it to exactly the pictures the camera's encoder made, whether the
    cloud packaged 'cenc' (segbind hls) or a keyless remux carried the protected form in a clear
    track (ffmpeg's HLS muxer); nothing is handed on for a stranger."""
    from tests.support.media import decoded_frames

    source = tmp_path / ("source.%s" % ("h264" if codec == "h264" else "hevc"))
    source.write_bytes(clips.make_kind(KINDS[codec]))
    expected = decoded_frames(source)
    assert len(expected) > 30
    outputs = {"segbind hls": segbind_hls(codec, work), "ffmpeg hls": ffmpeg_hls(codec, work)}
    cases = [{"name": name + ring, "keyring": RINGS[ring.strip(", ") or "alice"](), "inputs": fmp4_inputs(*chunks)}
             for name, chunks in outputs.items() for ring in ("", ", eve")]
    media = js_results("media", cases, tmp_path)
    for name, chunks in outputs.items():
        own, stranger = media[name], media[name + ", eve"]
        assert len(own["fragments"]) == len(chunks) - 1 and all(own["fragments"]), name
        assert stranger["fragments"] == [None] * (len(chunks) - 1), name
        init = bytes.fromhex(own["init"])
        assert b"encv" not in init and b"sinf" not in init and b"pssh" not in init  # renamed: a clear track
        clear = [bytes.fromhex(f) for f in own["fragments"]]
        assert not any(b"senc" in f for f in clear)
        path = tmp_path / ("%s.mp4" % name.replace(" ", "-"))
        path.write_bytes(init + b"".join(clear))
        assert decoded_frames(path) == expected, name
        # and the keyless bytes the cloud served decode to none of the camera's pictures
        served = tmp_path / ("%s-served.mp4" % name.replace(" ", "-"))
        served.write_bytes(b"".join(chunks))
        assert not set(decoded_frames(served)) & set(expected), name
