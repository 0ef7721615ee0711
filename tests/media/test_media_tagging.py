"""`segbind tag` on every kind of stream cameras emit, from both real encoders (issue items 1, 2).

Decoders see nothing: the tagged stream decodes to the untagged stream's frames in
PyAV and in the ffmpeg CLI, every tagged segment decodes on its own, no stretch
goes untagged for longer than the bound, and the owner accepts every segment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from host_sim import clips
from segbind import StreamVerifier, tagged_segments
from segbind_core.h264 import NAL_IDR, NAL_PPS, NAL_SPS, is_vcl
from segbind_core.nal import annexb_units
from segbind_core.sei import is_segbind_sei
from tests.support.media import rings, tag

KINDS = sorted(clips.KINDS)


def pictures(buf, units) -> int:
    return sum(1 for s, e in units if is_vcl(buf[s] & 0x1F) and buf[s + 1] & 0x80)


def segment_bytes(buf: bytes, units) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + buf[s:e] for s, e in units)


@pytest.mark.parametrize("kind", KINDS)
def test_tagged_stream_decodes_to_the_same_frames(kind: str, keys: Path, tmp_path: Path) -> None:
    data = clips.make_kind(kind)
    tagged = tag(keys, data, tmp_path / "tagged.h264").read_bytes()
    assert tagged != data and len(tagged) > len(data)
    reference = clips.decode_hashes_pyav(data)
    assert len(reference) >= 60
    assert clips.decode_hashes_pyav(tagged) == reference
    assert clips.decode_hashes_ffmpeg(tagged) == clips.decode_hashes_ffmpeg(data)


@pytest.mark.parametrize("kind", KINDS)
def test_every_tagged_segment_is_bound_and_decodes_on_its_own(kind: str, keys: Path, tmp_path: Path) -> None:
    data = clips.make_kind(kind)
    tagged = tag(keys, data, tmp_path / "tagged.h264").read_bytes()
    alice, bob = rings(keys)
    owner, stranger = StreamVerifier(alice), StreamVerifier(bob)
    full = clips.decode_hashes_pyav(data)
    segments = tagged_segments(tagged)
    assert len(segments) >= 3
    at = 0
    for index, units in enumerate(segments):
        assert owner.verify_units(tagged, units).reason.value == "ok"
        assert stranger.verify_units(tagged, units).reason.value == "no_grant"
        kinds = [tagged[s] & 0x1F for s, _ in units]
        first_vcl = next(i for i, k in enumerate(kinds) if is_vcl(k))
        # The tag and the parameter sets in force lead every segment.
        assert any(is_segbind_sei(tagged[s:e]) for s, e in units[:first_vcl])
        assert NAL_SPS in kinds[:first_vcl] and NAL_PPS in kinds[:first_vcl]
        alone = clips.decode_hashes_pyav(segment_bytes(tagged, units), show_all=True)
        expected = full[at:at + len(alone)]
        at += len(alone)
        if kinds[first_vcl] == NAL_IDR:
            assert alone == expected
        else:  # a recovery point (intra refresh): exact once the refresh has swept the picture
            assert "intra-refresh" in kind
            assert len(alone) == pictures(tagged, units)
            assert alone[-5:] == expected[-5:] or len(alone) < 20
    assert at == len(full)


@pytest.mark.parametrize("encoder", ["pyav", "ffmpeg"])
def test_no_stretch_goes_untagged_longer_than_the_bound(encoder: str, keys: Path, tmp_path: Path) -> None:
    """Intra refresh with a 10 s refresh period: `segbind tag` still tags every 4 s (default) or less."""
    if encoder == "pyav":
        data = clips.encode_pyav(frames=260, gop=250, x264="intra-refresh=1")
    else:
        data = clips.encode_ffmpeg(frames=260, gop=250, extra=("-x264-params", "intra-refresh=1"))
    assert [data[s] & 0x1F for s, _ in annexb_units(data)].count(NAL_IDR) == 1
    for extra, most in (((), 100), (("--max-duration", "1.5"), 37), (("--max-duration", "2", "--fps", "10"), 20)):
        tagged = tag(keys, data, tmp_path / "t.h264", *extra).read_bytes()
        counts = [pictures(tagged, units) for units in tagged_segments(tagged)]
        assert max(counts) == most and sum(counts) == 260, counts
        verifier = StreamVerifier(rings(keys)[0])
        assert all(verifier.verify_units(tagged, u).accepted for u in tagged_segments(tagged))
    assert clips.decode_hashes_ffmpeg(tagged) == clips.decode_hashes_ffmpeg(data)
