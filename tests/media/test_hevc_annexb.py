"""H.265 Annex-B end to end, on real x265 output (PyAV's libx265 and Debian's ffmpeg).

The segmenter cuts H.265 streams of the shapes cameras emit (closed and open
GOP, B-frames with leading pictures, several slices, encoder AUDs, parameter
sets once, field coding, intra refresh with and without recovery points);
``segbind tag`` encrypts and tags them; the tagged stream decodes, without keys, to pictures
none of which is the camera's, and what the owner's verifier hands a decoder decodes exactly
as the untagged one, in PyAV and in Debian's ffmpeg; the owner's keyring accepts every segment
and a stranger's refuses it; the adversarial properties of tests/lib/test_verifier.py hold on
H.265 segments.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind import Epoch, InvalidSegment, Keyring, Reason, StreamVerifier, verify_segment
from segbind.verifier import tags_in
from segbind_core import h265
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter, detect_codec
from segbind_core.sei import SEGBIND_UUID, segbind_payload, tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, MAC_SIZE, decode_tag
from segbind_core.tagger import Tagger
from tests.support import ROOT, run_cli
from tests.support.media import decrypted, keyless_garbage, keyless_hashes, rings, tag
from tests.support.tagged import (
    flip_mac_bit,
    keyring_of,
    refused_by_owner_or_share,
    replace_tag_body,
    strip_tag,
    tag_unit,
)

pytestmark = pytest.mark.slow

KINDS = sorted(clips.HEVC_KINDS)
X265_UUID = bytes.fromhex("2ca2de09b51747dbbb55a4fe7fc2fc4e")
RUNNER = ROOT / "tests" / "micropython" / "run.mjs"


def units(data: bytes) -> List[bytes]:
    return [data[s:e] for s, e in annexb_units(data)]


def kind(unit: bytes) -> int:
    return h265.nal_type(unit[0])


def first_slices(data: bytes) -> List[bytes]:
    return [u for u in units(data) if h265.is_vcl(kind(u)) and h265.first_slice_of_picture(u)]


def cut(data: bytes, chunks: List[bytes] | None = None, **kw) -> List[Segment]:
    """The segments a camera makes of ``data`` (delimiters inserted, as the agent does)."""
    seg = Segmenter(delimit=True, **kw)
    out = []
    for chunk in chunks if chunks is not None else [data]:
        out += seg.push(chunk)
    return [s for s in out + seg.finish() if isinstance(s, Segment)]


def keeps_units(original: List[bytes], out: List[bytes]) -> bool:
    """``out`` is ``original`` in order, plus only inserted AUDs and VPS/SPS/PPS copies."""
    i = 0
    for unit in out:
        if i < len(original) and unit == original[i]:
            i += 1
        elif kind(unit) not in (h265.NAL_AUD, h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS):
            return False
    return i == len(original)


def has_random_access(kind_name: str) -> str:
    """How a kind's streams may be entered after their first picture."""
    if "recovery-points" in kind_name:
        return "recovery points"
    if "intra-refresh" in kind_name or "no-irap" in kind_name:
        return "none"  # x265's intra refresh marks no recovery point: cut at the bound
    return "irap"


# -- the segmenter on every kind ---------------------------------------------------------------

@pytest.mark.parametrize("name", KINDS)
def test_segments_start_at_random_access_points_and_keep_every_unit(name: str) -> None:
    data = clips.make_kind(name)
    assert detect_codec(data[:1024]) == CODEC_H265
    segs = cut(data, max_duration_s=1.0)
    access = has_random_access(name)
    assert len(segs) >= 3 and all(s.codec == CODEC_H265 for s in segs)
    pictures_in = len(first_slices(data))
    for index, seg in enumerate(segs):
        us = units(seg.data)
        kinds = [kind(u) for u in us]
        first_vcl = next(i for i, k in enumerate(kinds) if h265.is_vcl(k))
        head = us[:first_vcl]
        assert kinds[0] == h265.NAL_AUD  # every segment, and every access unit, is delimited
        assert kinds.count(h265.NAL_AUD) == len(first_slices(seg.data))
        # the parameter sets in force, in decoding order, before the first picture
        assert kinds.index(32) < kinds.index(33) < kinds.index(34) < first_vcl
        irap = h265.is_irap(kinds[first_vcl])
        recovery = any(kind(u) == h265.NAL_PREFIX_SEI and h265.has_recovery_point(u) for u in head)
        assert seg.rap == (irap or recovery)
        if index == 0 or access == "irap":
            assert irap, (index, kinds[first_vcl])
        elif access == "recovery points":
            assert recovery and not irap
        else:
            assert not seg.rap
        # A picture of temporal layer 0 first: the only access units that may carry a VPS and SPS
        assert h265.temporal_id(us[first_vcl]) == 0
        if access != "irap" and index < len(segs) - 1:
            # the bound, 1 s, and at most the pictures of higher temporal layers after it
            assert seg.pictures == 25 or ("temporal" in name and 25 < seg.pictures <= 28), seg.pictures
    assert keeps_units(units(data), units(b"".join(s.data for s in segs)))
    assert sum(s.fields for s in segs) == pictures_in * (1 if "interlaced" in name else 2)


@pytest.mark.parametrize("name", KINDS)
def test_decoders_see_the_same_frames(name: str) -> None:
    """The segmented stream (delimiters and parameter sets added) decodes to the input's frames."""
    data = clips.make_kind(name)
    joined = b"".join(s.data for s in cut(data, max_duration_s=1.0))
    reference = clips.decode_hashes_pyav(data, "hevc")
    assert len(reference) == len(first_slices(data))  # fields come out one by one
    assert clips.decode_hashes_pyav(joined, "hevc") == reference
    assert clips.decode_hashes_ffmpeg(joined, "hevc") == clips.decode_hashes_ffmpeg(data, "hevc")


@pytest.mark.parametrize("name", KINDS)
def test_every_segment_decodes_on_its_own(name: str) -> None:
    """Each segment alone gives exactly its frames of the whole stream, but the RASL pictures of an
    open GOP's CRA (which refer to the segment before). Segments without an IRAP picture decode
    once the decoder is told to show what it has (FFmpeg starts H.265 only at IRAP pictures);
    x265's refresh is not clean, so those frames are not exact."""
    data = clips.make_kind(name)
    full = clips.decode_hashes_pyav(data, "hevc")
    full_ffmpeg = clips.decode_hashes_ffmpeg(data, "hevc")
    at = 0
    for seg in cut(data, max_duration_s=1.0):
        pictures = [kind(u) for u in first_slices(seg.data)]
        rasl = sum(1 for k in pictures if h265.is_rasl(k))
        if h265.is_irap(pictures[0]):
            alone = clips.decode_hashes_pyav(seg.data, "hevc")
            assert alone == full[at + rasl:at + len(pictures)]
            assert clips.decode_hashes_ffmpeg(seg.data, "hevc") == full_ffmpeg[at + rasl:at + len(pictures)]
        else:
            assert clips.decode_hashes_pyav(seg.data, "hevc") == []
            assert len(clips.decode_hashes_pyav(seg.data, "hevc", show_all=True)) == len(pictures)
        at += len(pictures)
    assert at == len(full)
    if "open-gop" in name:
        assert any(h265.is_rasl(kind(u)) for u in first_slices(data))  # the case is exercised


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_any_chunking_gives_the_same_segments(name: str, seed: int) -> None:
    data = clips.make_kind(name)
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 5, 64, 1000, 4096])
        chunks.append(data[i:i + n])
        i += n
    assert [s.data for s in cut(data, chunks)] == [s.data for s in cut(data)]


def test_frame_rate_and_field_coding_come_from_the_sps() -> None:
    data = clips.encode_pyav_h265(frames=70, gop=1000, fps=10)
    sps = h265.parse_sps(next(u for u in units(data) if kind(u) == h265.NAL_SPS))
    assert sps.fps == 10 and not sps.field_seq
    seg = Segmenter(max_duration_s=3.0)
    segs = [s for s in seg.push(data) + seg.finish() if isinstance(s, Segment)]
    assert seg.fps == 10 and [s.pictures for s in segs] == [30, 30, 10]
    assert [s.duration_ms for s in segs] == [3000, 3000, 1000]
    # x265 codes each field as a picture of its own: two make a frame.
    fields = clips.make_kind("x265-pyav-interlaced")
    sps = h265.parse_sps(next(u for u in units(fields) if kind(u) == h265.NAL_SPS))
    assert sps.field_seq and sps.fps == 12.5
    segs = cut(fields)
    assert [s.fields for s in segs] == [24, 24, 12] and [s.pictures for s in segs] == [12, 12, 6]
    assert [s.duration_ms for s in segs] == [960, 960, 480]


def test_picture_order_counts_are_the_encoders_presentation_order() -> None:
    """h265.PocCounter against x265's own pts (frame i is given pts i), open and closed GOP."""
    for gop, open_gop in ((8, True), (8, False)):
        extradata, packets = clips.pyav_packets(
            "libx265", 40, 128, 96, 25, {"x265-params": clips.x265_params(gop, 3, open_gop, 1, 64, ""),
                                         "preset": "veryfast"}, "every",
            lambda i: clips._frame_rgb(i, 128, 96, 1))
        params = h265.ParameterSets()
        counter = h265.PocCounter(params)
        start = 0  # the pts of the last IDR picture: counts restart there
        seen = []
        for pts, packet in packets:
            for unit in units(packet):
                params.add(unit)
                if h265.is_vcl(kind(unit)) and h265.first_slice_of_picture(unit):
                    if h265.is_idr(kind(unit)):
                        start = pts
                    assert counter.poc(unit) == pts - start, (gop, open_gop, pts)
                    seen.append(kind(unit))
        assert len(seen) == 40 and sorted(pts for pts, _ in packets) == list(range(40))
        assert (h265.NAL_CRA in seen) == open_gop


# -- segbind tag, and what decoders see ---------------------------------------------------------

@lru_cache(maxsize=None)
def tagged_by_cli(name: str, keys: Path) -> bytes:
    return tag(keys, clips.make_kind(name), keys / ("%s.tagged.h265" % name), "--max-duration", "1").read_bytes()


def split(stream: bytes) -> List[bytes]:
    """A tagged stream's segments, as FORMAT.md section 3 says: each from the delimiter before its
    tag to the delimiter before the next tag."""
    starts = []
    for s, _e in tags_in(stream):
        before = [u for u in annexb_units(stream, 0, s - 4)]
        starts.append(before[-1][0] - 4)  # the 4-byte start code of the delimiter before the tag
    assert starts and starts[0] == 0
    return [stream[a:b] for a, b in zip(starts, starts[1:] + [len(stream)])]


@pytest.mark.parametrize("name", KINDS)
def test_tagged_stream_decodes_keyless_to_garbage_and_verified_exactly_as_the_untagged_one(name: str,
                                                                                          keys: Path) -> None:
    data = clips.make_kind(name)
    tagged = tagged_by_cli(name, keys)
    reference = clips.decode_hashes_pyav(data, "hevc")
    keyless_garbage(keyless_hashes(tagged, "hevc"), reference)
    keyless_garbage(clips.decode_hashes_ffmpeg(tagged, "hevc"), clips.decode_hashes_ffmpeg(data, "hevc"))
    verified = decrypted(tagged, rings(keys)[0])
    assert clips.decode_hashes_pyav(verified, "hevc") == reference
    assert clips.decode_hashes_ffmpeg(verified, "hevc") == clips.decode_hashes_ffmpeg(data, "hevc")


@pytest.mark.parametrize("name", ["x265-pyav-open-gop", "x265-ffmpeg-once-slices", "x265-pyav-recovery-points"])
def test_owner_accepts_every_segment_and_a_stranger_refuses_them(name: str, keys: Path) -> None:
    tagged = tagged_by_cli(name, keys)
    alice, bob = rings(keys)
    segments = split(tagged)
    expected = cut(clips.make_kind(name), max_duration_s=1.0)
    assert len(segments) == len(expected)
    owner, stranger = StreamVerifier(alice), StreamVerifier(bob)
    for seq, (segment, raw) in enumerate(zip(segments, expected)):
        verdict = owner.verify(segment)
        assert verdict.reason is Reason.OK, verdict
        assert (verdict.tag.seq, verdict.tag.stream_id, verdict.tag.pictures) == (seq, 42, raw.pictures)
        info = verify_segment(segment, alice)
        assert info.codec == CODEC_H265 and info.duration_ms == raw.duration_ms
        assert stranger.verify(segment).reason is Reason.NO_GRANT and stranger.verified is None
        # the camera's segment, encrypted, with the tag right after its delimiter; decrypted, the encoder's
        tag_at = tags_in(segment)[0][0]
        assert segment[:tag_at - 4] == START_CODE + h265.DELIMITER
        assert strip_tag(segment) != raw.data
        assert strip_tag(owner.verified or b"") == raw.data
    assert owner.finish() is None


def test_segbind_tag_reads_the_codec_and_verify_and_inspect_read_h265(keys: Path) -> None:
    data = clips.make_kind("x265-pyav-closed")
    result = run_cli("tag", "--epoch", str(keys / "alice.json"), "--stream-id", "7", "-", "-", stdin=data)
    assert result.returncode == 0 and b"tagged 4 segments" in result.stderr
    assert all(decode_tag(segbind_payload(memoryview(result.stdout)[s:e]))[0].codec == CODEC_H265
               for s, e in tags_in(result.stdout))
    tagged = tagged_by_cli("x265-pyav-closed", keys)
    # verify and inspect read H.265 Annex-B, from a pipe and from a file
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), "--json", "-", stdin=tagged)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and [v["reason"] for v in lines[:-1]] == ["ok"] * 4, result.stderr
    assert [v["tag"]["seq"] for v in lines[:-1]] == [0, 1, 2, 3]
    result = run_cli("verify", "--keyring", str(keys / "bob-ring.json"), "-", stdin=tagged)
    assert result.returncode == 1 and b"REFUSED: 4 no_grant" in result.stdout
    result = run_cli("inspect", "--json", "-", stdin=tagged)
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and [e["tag"]["codec"] for e in entries] == [CODEC_H265] * 4
    held = {g.key_id.hex() for g in rings(keys)[0].bindings()}
    assert all(e["tag"]["key_id"] in held and "owner" not in e["tag"] for e in entries)
    assert b"alice" not in result.stdout
    # untagged H.265 is read, and refused segment by segment, as untagged H.264 is
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), "-", stdin=data)
    assert result.returncode == 1 and b"REFUSED: 1 no_tag" in result.stdout, result.stdout
    # H.264 goes on as before
    result = run_cli("tag", "--epoch", str(keys / "alice.json"), "-", "-", stdin=clips.encode_pyav(frames=30))
    assert result.returncode == 0
    assert decode_tag(segbind_payload(memoryview(result.stdout)[slice(*tags_in(result.stdout)[0])]))[0].codec \
        == CODEC_H264


def test_same_segments_on_real_micropython(tmp_path: Path) -> None:
    data = clips.make_kind("x265-pyav-once")[:30000] + clips.make_kind("x265-pyav-open-gop")
    (tmp_path / "clip.h265").write_bytes(data)
    script = tmp_path / "cut.py"
    script.write_text(
        "import hashlib, json\n"
        "from segbind_core.segment import Segmenter, Segment\n"
        "data = open('/data/clip.h265', 'rb').read()\n"
        "res = {}\n"
        "for step in (len(data), 1, 997):\n"
        "    seg = Segmenter(max_duration_s=0.5, delimit=True)\n"
        "    out = []\n"
        "    for i in range(0, len(data), step):\n"
        "        out += seg.push(data[i:i + step])\n"
        "    out += seg.finish()\n"
        "    res[str(step)] = [hashlib.sha256(s.data).digest().hex() for s in out if isinstance(s, Segment)]\n"
        "res['codec'] = seg.codec\n"
        "print(json.dumps(res))\n")
    import subprocess
    proc = subprocess.run(["node", str(RUNNER), "exec", str(script), "--file", "/data/clip.h265=%s"
                           % (tmp_path / "clip.h265")], capture_output=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    got = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    expected = [hashlib.sha256(s.data).hexdigest() for s in cut(data, max_duration_s=0.5)]
    assert len(expected) >= 6 and got["codec"] == CODEC_H265
    for step in ("1", "997", str(len(data))):
        assert got[step] == expected


# -- the adversary, on H.265 segments (as tests/lib/test_verifier.py on H.264) ------------------

PAIRING = os.urandom(32)
PAIRING_EVE = os.urandom(32)
T0 = 1_795_000_000_000


def epoch(owner: str = "alice", pairing: bytes = PAIRING, shares=("bob",)) -> Epoch:
    return Epoch.of_pairing(pairing, owner, "cam-1", 1, list(shares))


def refused_by_alice_or_bob(flipped: bytes, at: int, original: bytes) -> None:
    refused_by_owner_or_share(flipped, at, original, alice_keyring(), bob_keyring())


def alice_keyring() -> Keyring:
    return keyring_of(epoch())


def bob_keyring() -> Keyring:
    return keyring_of(epoch(), holder="bob")


@lru_cache(maxsize=None)
def raw_segments() -> Tuple[Segment, ...]:
    """Eight untagged segments of real x265 video (open GOP: a CRA every 5 frames, B-frames)."""
    video = clips.encode_pyav_h265(frames=40, gop=5, bframes=2, open_gop=True, width=128, height=96, seed=3)
    return tuple(cut(video))


@lru_cache(maxsize=None)
def streams() -> Dict[str, Tuple[bytes, ...]]:
    def tagged(ep: Epoch, stream_id: int) -> Tuple[bytes, ...]:
        tagger = Tagger(ep, stream_id, codec=raw_segments()[0].codec)
        return tuple(tagger.tag(r.data, r.units, T0 + 200 * i, r.duration_ms, r.pictures)[0]
                     for i, r in enumerate(raw_segments()))
    return {"": tagged(epoch(), T0), "new": tagged(epoch(), T0 + 60_000),
            "eve": tagged(epoch("eve", PAIRING_EVE, ()), T0)}





def flip_video_bit(segment: bytes) -> bytes:
    s, e = max(((s, e) for s, e in annexb_units(segment) if h265.is_vcl(kind(segment[s:e]))),
               key=lambda u: u[1] - u[0])
    pos = (s + e) // 2
    return segment[:pos] + bytes([segment[pos] ^ 0x10]) + segment[pos + 1:]



def run(script: str, keyring: Keyring | None = None) -> str:
    verifier = StreamVerifier(keyring or alice_keyring())
    out = []
    for word in script.split():
        index, _, source = word.partition("@")
        mark = index[-1] if index[-1] in "-*^" else ""
        segment = streams()[source][int(index.rstrip("-*^"))]
        segment = {"": segment, "-": strip_tag(segment), "*": flip_video_bit(segment),
                   "^": flip_mac_bit(segment)}[mark]
        out.append(str(verifier.verify(segment).reason))
    return " ".join(out)


@pytest.mark.parametrize("script, expected", [
    ("0 1 2 3 4 5 6 7", "ok ok ok ok ok ok ok ok"),
    ("0 1 3 4", "ok ok gap ok"),
    ("0 1 1 2", "ok ok duplicate ok"),
    ("0 2 1 3", "ok gap late ok"),
    ("0 1 2- 3", "ok ok no_tag gap"),
    ("0 1* 2", "ok content_mismatch gap"),
    ("0 1^ 1 2", "ok mac_mismatch ok ok"),
    ("0 1 2@new 3@new", "ok ok gap ok"),
    ("0@new 1@new 2", "ok ok chain_break"),
    ("0 1@eve 2", "ok no_grant gap"),
])
def test_stream_language(script: str, expected: str) -> None:
    assert run(script) == expected
    assert run("0 1 2", bob_keyring()) == "ok ok ok"


def test_x265s_own_sei_is_covered_and_never_taken_for_the_tag() -> None:
    segment = streams()[""][0]
    foreign = [(s, e) for s, e in annexb_units(segment) if X265_UUID in segment[s:e]]
    assert len(foreign) == 1 and foreign[0][1] - foreign[0][0] > 1000  # about 2 KB of settings
    s, e = foreign[0]
    assert segment[s:s + 2] == b"\x4e\x01" and not tag_codec(memoryview(segment)[s:e])
    assert len(tags_in(segment)) == 1 and SEGBIND_UUID in segment[slice(*tag_unit(segment))]
    edited = segment[:e - 10] + bytes([segment[e - 10] ^ 0x20]) + segment[e - 9:]
    with pytest.raises(InvalidSegment) as info:
        verify_segment(edited, alice_keyring())
    assert info.value.reason is Reason.CONTENT_MISMATCH


EPOCH_2 = Epoch.of_pairing(PAIRING, "alice", "cam-1", 2, ["bob"])
FIELD_EDITS = {
    # the key id of alice's next epoch, for the same period: held by the viewer, covering the capture time
    "key_id": ("key_id", EPOCH_2.period_keys(EPOCH_2.period_of(T0)).key_id),
    "stream_id": ("stream_id", T0 + 1), "seq": ("seq", 5), "capture_ms": ("capture_ms", T0 + 1),
    "duration_ms": ("duration_ms", 999), "pictures": ("pictures", 9), "units": ("units", 3),
    "clear_lead": ("clear_lead", 2), "flags": ("flags", 1), "link": ("link", b"\x00" * 8),
}


@pytest.mark.parametrize("field", sorted(FIELD_EDITS))
def test_rewriting_any_signed_field_is_refused(field: str) -> None:
    segment = streams()[""][1]
    tag, _ = decode_tag(segbind_payload(memoryview(segment)[slice(*tag_unit(segment))]))
    setattr(tag, *FIELD_EDITS[field])
    ring = alice_keyring()
    ring.grant_all(keyring_of(EPOCH_2).bindings())
    with pytest.raises(InvalidSegment) as info:
        verify_segment(replace_tag_body(segment, lambda body: tag.encode()), ring)
    assert info.value.reason is Reason.MAC_MISMATCH, info.value.detail


def test_an_h265_segment_cannot_be_read_as_h264() -> None:
    segment = streams()[""][2]
    # Its tag in an H.264 SEI: the SEI's codec and the tag's disagree.
    with pytest.raises(InvalidSegment) as info:
        verify_segment(replace_tag_body(segment, lambda b: b, codec=CODEC_H264), alice_keyring())
    assert info.value.reason is Reason.MALFORMED_TAG
    # Relabelled H.264 throughout (codec byte and SEI header): the MACs cover the codec.
    with pytest.raises(InvalidSegment) as info:
        verify_segment(replace_tag_body(segment, lambda b: b[:2] + b"\x01" + b[3:], codec=CODEC_H264),
                       alice_keyring())
    assert info.value.reason is Reason.MAC_MISMATCH


def test_every_unit_is_covered_added_dropped_moved_or_changed() -> None:
    parts = units(streams()[""][3])
    at = next(i for i, p in enumerate(parts) if tag_codec(p))
    sets = [i for i, p in enumerate(parts) if kind(p) in (32, 33, 34)]
    variants = {
        "prefix sei added": parts[:at + 1] + [b"\x4e\x01\x05\x11" + bytes(range(1, 17)) + b"x\x80"] + parts[at + 1:],
        "suffix sei added": parts + [b"\x50\x01\x05\x11" + bytes(range(1, 17)) + b"x\x80"],
        "end of sequence added": parts + [b"\x48\x01"],
        "delimiter dropped": parts[1:],
        "last unit dropped": parts[:-1],
        "sps and pps swapped": [parts[sets[2]] if i == sets[1] else parts[sets[1]] if i == sets[2] else p
                                for i, p in enumerate(parts)],
        "pictures reordered": parts[:-2] + [parts[-1], parts[-2]],
        "vps changed": [p[:-1] + bytes([p[-1] ^ 2]) if kind(p) == 32 else p for p in parts],
        "temporal id changed": parts[:-1] + [parts[-1][:1] + bytes([parts[-1][1] + 1]) + parts[-1][2:]],
    }
    for name, variant in variants.items():
        with pytest.raises(InvalidSegment) as info:
            verify_segment(b"".join(START_CODE + p for p in variant), alice_keyring())
        assert info.value.reason is Reason.CONTENT_MISMATCH, name



@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_bit_flip_is_refused(data) -> None:
    segment = streams()[""][data.draw(st.integers(0, 7))]
    bit = data.draw(st.integers(0, len(segment) * 8 - 1))
    flipped = bytearray(segment)
    flipped[bit // 8] ^= 1 << (bit % 8)
    refused_by_alice_or_bob(bytes(flipped), bit // 8, segment)


def test_every_single_bit_of_the_tag_and_its_framing_is_covered() -> None:
    segment = streams()[""][5]
    s, e = tag_unit(segment)
    for bit in range((s - 4 - 3) * 8, (e + 4) * 8):  # the AUD, the tag's start code, the tag, the next
        flipped = bytearray(segment)
        flipped[bit // 8] ^= 1 << (bit % 8)
        refused_by_alice_or_bob(bytes(flipped), bit // 8, segment)


@settings(max_examples=200, deadline=None)
@given(tail=st.binary(max_size=64), cut_at=st.integers(0, 300))
@example(tail=bytes(9), cut_at=70)  # bob's MAC zeroed from its 8th byte: alice accepts
def test_corrupted_tags_never_escape_as_other_exceptions(tail: bytes, cut_at: int) -> None:
    original = streams()[""][0]
    body = segbind_payload(memoryview(original)[slice(*tag_unit(original))])
    edited = body[:cut_at] + tail
    verdict = StreamVerifier(alice_keyring()).verify(replace_tag_body(original, lambda b: edited))
    # Alice judges every byte but bob's MAC, the last 16: that is bob's to judge.
    assert verdict.accepted == (len(edited) == len(body) and edited[:-MAC_SIZE] == body[:-MAC_SIZE])


ACTIONS = st.lists(st.tuples(st.sampled_from(["deliver", "drop", "dup", "flip", "strip", "eve", "swap"]),
                             st.integers(0, 7)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(actions=ACTIONS)
def test_whatever_the_network_does_only_authentic_segments_show_and_each_once(actions) -> None:
    stream, eve = streams()[""], streams()["eve"]
    verifier = StreamVerifier(alice_keyring())
    shown: List[int] = []
    for action, index in actions:
        if action == "drop":
            continue
        if action == "swap":  # two of its pictures' slices swapped: reordered inside the segment
            parts = units(stream[index])
            vcl = [i for i, p in enumerate(parts) if h265.is_vcl(kind(p))]
            parts[vcl[-1]], parts[vcl[-2]] = parts[vcl[-2]], parts[vcl[-1]]
            segment = b"".join(START_CODE + p for p in parts)
        else:
            segment = {"deliver": stream[index], "dup": stream[index], "flip": flip_video_bit(stream[index]),
                       "strip": strip_tag(stream[index]), "eve": eve[index]}[action]
        verdict = verifier.verify(segment)
        if verdict.accepted:
            assert action in ("deliver", "dup")
            assert verdict.tag is not None and verdict.tag.owner == "alice" and verdict.tag.codec == CODEC_H265
            assert strip_tag(verifier.verified or b"") == raw_segments()[index].data
            shown.append(verdict.tag.seq)
        else:
            assert verifier.verified is None
    assert len(shown) == len(set(shown))
