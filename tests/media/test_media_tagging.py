"""`segbind tag` on every kind of stream cameras emit, from both real encoders (issue items 1, 2).

A decoder without keys gets nothing: the tagged stream (format 3: encrypted) decodes, in PyAV
and in the ffmpeg CLI, to pictures none of which is the camera's. What the owner's verifier hands
a decoder (``segbind.open``'s ``SegmentResult.data``) decodes to exactly the untagged stream's
frames; every tagged segment, verified, decodes on its own; no stretch goes untagged for longer
than the bound; the owner accepts every segment, a stranger none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from host_sim import clips
from segbind import StreamVerifier, tagged_segments
from segbind_core.h264 import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, is_vcl
from segbind_core.nal import annexb_units
from segbind_core.sei import tag_codec
from tests.support.media import decrypted, keyless_garbage, keyless_hashes, rings, tag

KINDS = sorted(clips.KINDS)


def pictures(segment: bytes) -> int:
    return sum(1 for s, e in annexb_units(segment) if is_vcl(segment[s] & 0x1F) and segment[s + 1] & 0x80)


@pytest.mark.parametrize("kind", KINDS)
def test_tagged_stream_decodes_keyless_to_garbage_and_verified_to_the_same_frames(kind: str, keys: Path,
                                                                                   tmp_path: Path) -> None:
    data = clips.make_kind(kind)
    tagged_path = tag(keys, data, tmp_path / "tagged.h264")
    tagged = tagged_path.read_bytes()
    assert tagged != data and len(tagged) > len(data)
    reference = clips.decode_hashes_pyav(data)
    assert len(reference) >= 60
    keyless_garbage(keyless_hashes(tagged), reference)
    keyless_garbage(clips.decode_hashes_ffmpeg(tagged), clips.decode_hashes_ffmpeg(data))
    verified = decrypted(tagged_path, rings(keys)[0])
    assert clips.decode_hashes_pyav(verified) == reference
    assert clips.decode_hashes_ffmpeg(verified) == clips.decode_hashes_ffmpeg(data)


@pytest.mark.parametrize("kind", KINDS)
def test_every_tagged_segment_is_bound_and_decodes_on_its_own(kind: str, keys: Path, tmp_path: Path) -> None:
    data = clips.make_kind(kind)
    tagged = tag(keys, data, tmp_path / "tagged.h264").read_bytes()
    alice, bob = rings(keys)
    owner, stranger = StreamVerifier(alice), StreamVerifier(bob)
    full = clips.decode_hashes_pyav(data)
    segments = tagged_segments(tagged)
    assert len(segments) >= 3 and b"".join(segments) == tagged
    at = 0
    for index, segment in enumerate(segments):
        assert stranger.verify(segment).reason.value == "no_grant" and stranger.verified is None
        assert owner.verify(segment).reason.value == "ok"
        segment = owner.verified or b""  # what a decoder is handed: decrypted
        units = annexb_units(segment)
        kinds = [segment[s] & 0x1F for s, _ in units]
        first_vcl = next(i for i, k in enumerate(kinds) if is_vcl(k))
        # A delimiter, the tag, and the parameter sets in force lead every segment.
        assert kinds[0] == NAL_AUD and tag_codec(segment[units[1][0]:units[1][1]])
        assert NAL_SPS in kinds[:first_vcl] and NAL_PPS in kinds[:first_vcl]
        # Every access unit begins with a delimiter (the camera inserts those the encoder left out).
        for i in range(first_vcl + 1, len(units)):
            if is_vcl(kinds[i]) and segment[units[i][0] + 1] & 0x80:  # a picture's first slice
                j = i - 1
                while not is_vcl(kinds[j]):
                    j -= 1
                assert kinds[j + 1] == NAL_AUD, (index, i)
        alone = clips.decode_hashes_pyav(segment, show_all=True)
        expected = full[at:at + len(alone)]
        at += len(alone)
        if kinds[first_vcl] == NAL_IDR:
            assert alone == expected
        else:  # a recovery point (intra refresh): exact once the refresh has swept the picture
            assert "intra-refresh" in kind
            assert len(alone) == pictures(segment)
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
        counts = [pictures(segment) for segment in tagged_segments(tagged)]
        assert max(counts) == most and sum(counts) == 260, counts
        verifier = StreamVerifier(rings(keys)[0])
        assert all(verifier.verify(segment).accepted for segment in tagged_segments(tagged))
    verified = decrypted(tmp_path / "t.h264", rings(keys)[0])
    assert clips.decode_hashes_ffmpeg(verified) == clips.decode_hashes_ffmpeg(data)
