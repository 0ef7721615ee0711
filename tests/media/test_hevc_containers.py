"""H.265 in every container (issue "H.265/HEVC, end to end", item 3): x265 streams tagged as
Annex-B, remuxed by PyAV or by `ffmpeg -c copy` into MPEG-TS, MP4 (`hvc1` and `hev1`),
fragmented MP4, Matroska and HLS (TS and fMP4 segments), verify for their owner and are
refused for a stranger. Without keys a decoder gets as many pictures as from the same remux of
the stream unencrypted, none of them the camera's; what ``segbind.open`` hands the owner's
decoder decodes to exactly the untagged stream's pictures. docs/CONTAINERS.md says what each
remux keeps (``hvcC``, and the parameter sets ``hevc_mp4toannexb`` adds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest

from host_sim import clips
from segbind import tagged_segments
from segbind.read import container_segments
from segbind.read.decoder_config import parse_hvcc
from segbind.write import remux_annexb, write_hls
from segbind_core import h265
from segbind_core.nal import annexb_units
from segbind_core.tag import CODEC_H265
from tests.support import run_cli
from tests.support.media import (
    RAW_CHAIN,
    decoded_frames,
    decrypted,
    ffmpeg,
    ffmpeg_fails,
    frame_hashes,
    keyless_garbage,
    owner_accepts_stranger_refuses,
    raw_remux_verifies_for_its_owner_only,
    rings,
    tagged_kinds,
    verify,
)

pytestmark = pytest.mark.slow

# open GOP (CRA with RASL pictures) and B-frames; B-frames, RADL, slices and x265's AUDs;
# parameter sets once (the segmenter copies them into every segment) and slices.
KINDS = ["x265-pyav-open-gop", "x265-pyav-bframes-radl-slices-aud", "x265-ffmpeg-once-slices"]
FRAG = "frag_keyframe+empty_moov+default_base_moof"


def has_bframes(kind: str) -> bool:
    return clips.HEVC_KINDS[kind][1].get("bframes", 0) > 0


def _ffmpeg_mp4(tag_v: str):
    def run(src: Path, d: Path, kind: str):
        ffmpeg("-i", str(src), "-c", "copy", "-tag:v", tag_v, str(d / "out.mp4"))
        return [d / "out.mp4"], d / "out.mp4"
    return run


def _via_mp4(src: Path, d: Path, kind: str) -> Path:
    """ffmpeg 5.1 cannot give raw B-frame H.265 the timestamps MPEG-TS needs: via MP4 (whose
    ``hevc_mp4toannexb`` then adds ``hvcC``'s sets before every IRAP slice)."""
    if not has_bframes(kind):
        return src
    ffmpeg("-i", str(src), "-c", "copy", str(d / "mid.mp4"))
    return d / "mid.mp4"


def _ffmpeg_ts(src: Path, d: Path, kind: str):
    ffmpeg("-i", str(_via_mp4(src, d, kind)), "-c", "copy", str(d / "out.ts"))
    return [d / "out.ts"], d / "out.ts"


def _ffmpeg_fmp4(src: Path, d: Path, kind: str):
    ffmpeg("-i", str(src), "-c", "copy", "-movflags", FRAG, str(d / "out.mp4"))
    return [d / "out.mp4"], d / "out.mp4"


def _ffmpeg_hls(segment_type: str):
    def run(src: Path, d: Path, kind: str):
        ffmpeg("-i", str(src), "-c", "copy", str(d / "mid.mp4"))
        ffmpeg("-i", str(d / "mid.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1",
               "-hls_playlist_type", "vod", "-hls_segment_type", segment_type,
               "-hls_segment_filename", str(d / ("seg_%03d." + ("m4s" if segment_type == "fmp4" else "ts"))),
               str(d / "out.m3u8"))
        return [d / "out.m3u8"], d / "out.m3u8"
    return run


def _pyav(fmt: str, options: Dict[str, str], ext: str):
    def run(src: Path, d: Path, kind: str):
        remux_annexb(str(src), str(d / ("out." + ext)), fmt, options)
        return [d / ("out." + ext)], d / ("out." + ext)
    return run


def _pyav_hls(segment_type: str):
    def run(src: Path, d: Path, kind: str):
        write_hls(str(src), str(d / "out.m3u8"), segment_type, 1.0)
        return [d / "out.m3u8"], d / "out.m3u8"
    return run


REMUXES: Dict[str, Callable] = {
    "ffmpeg-mp4-hvc1": _ffmpeg_mp4("hvc1"),
    "ffmpeg-mp4-hev1": _ffmpeg_mp4("hev1"),
    "ffmpeg-ts": _ffmpeg_ts,
    "ffmpeg-fmp4": _ffmpeg_fmp4,
    "ffmpeg-hls-ts": _ffmpeg_hls("mpegts"),
    "ffmpeg-hls-fmp4": _ffmpeg_hls("fmp4"),
    "pyav-mp4": _pyav("mp4", {}, "mp4"),
    "pyav-ts": _pyav("mpegts", {}, "ts"),
    "pyav-fmp4": _pyav("mp4", {"movflags": FRAG}, "mp4"),
    "pyav-mkv": _pyav("matroska", {}, "mkv"),
    "pyav-hls-ts": _pyav_hls("ts"),
    "pyav-hls-fmp4": _pyav_hls("fmp4"),
}


@pytest.fixture(scope="module")
def streams(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[Path, Path, int]]:
    """kind -> (untagged Annex-B, tagged Annex-B, number of tagged segments)."""
    return tagged_kinds(keys, tmp_path_factory.mktemp("hevc-streams"), KINDS, "h265")


@pytest.mark.parametrize("remux", sorted(REMUXES))
@pytest.mark.parametrize("kind", KINDS)
def test_remuxed_h265_verifies_for_its_owner_only_and_decodes_the_same(
        kind: str, remux: str, streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams[kind]
    assert count == 4
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    files, decodable = REMUXES[remux](tagged, tmp_path / "t", kind)
    # The same stream unencrypted (what the owner's verifier hands on: format 2's form, its tags in
    # clear, which decoders skip), remuxed the same way (segbind's own writer needs the tags)
    unencrypted = tmp_path / "unencrypted.h265"
    unencrypted.write_bytes(decrypted(tagged, rings(keys)[0]))
    _, plain_decodable = REMUXES[remux](unencrypted, tmp_path / "p", kind)
    # Without keys, as many pictures as from the same remux unencrypted, none of them the camera's
    pictures = decoded_frames(plain_decodable)
    keyless = decoded_frames(decodable)
    assert len(keyless) == len(pictures)
    keyless_garbage(keyless, pictures)
    # With them, what segbind.open hands the owner's decoder decodes to the untagged stream's pictures
    source = [str(f) for f in files] if len(files) > 1 else files[0]
    assert clips.decode_hashes_pyav(decrypted(source, rings(keys)[0]), "hevc") == \
        clips.decode_hashes_pyav(plain.read_bytes(), fmt="hevc")
    code, verdicts = verify(keys, "bob-ring.json", *[str(f) for f in files])
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * count, verdicts
    if pictures == clips.decode_hashes_pyav(plain.read_bytes(), fmt="hevc"):
        # A decoder outputs every picture, in order: every segment verifies for its owner.
        owner_accepts_stranger_refuses(keys, *[str(f) for f in files], segments=count)
        keyless_garbage(frame_hashes(decodable), frame_hashes(plain_decodable))
    else:
        # ffmpeg 5.1 gives raw B-frame video pts = dts when it remuxes: its MP4 edit list then
        # hides the first pictures from decoders, tagged or not (as for H.264, test_media_remux).
        assert remux.startswith("ffmpeg") and has_bframes(kind)
        # Those pictures are the camera's: accepted, and the verdict says the container hides them.
        code, verdicts = verify(keys, "alice-ring.json", *[str(f) for f in files])
        assert code == 0 and {v["reason"] for v in verdicts} == {"ok"}, verdicts
        assert "the container hides" in verdicts[0]["detail"]


def test_hvcc_and_the_sets_hevc_mp4toannexb_adds(streams, keys: Path, tmp_path: Path) -> None:
    """hvc1 and hev1 carry the camera's VPS, SPS and PPS in hvcC (the trailing zero byte
    FFmpeg copies into them, and into each sample's last unit, is not part of a unit); MP4 to
    TS adds hvcC's sets again before every IRAP slice: the copies are dropped, and counted out
    of the unit count, so each segment is complete at its last sample."""
    plain, tagged, count = streams["x265-pyav-bframes-radl-slices-aud"]
    ffmpeg("-i", str(tagged), "-c", "copy", "-tag:v", "hvc1", str(tmp_path / "a.mp4"))
    import av

    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.codec_tag == "hvc1"
        length_size, units = parse_hvcc(bytes(stream.codec_context.extradata))
    assert length_size == 4 and [h265.nal_type(u[0]) for u in units] == [32, 33, 34]
    camera = tagged_segments(tagged.read_bytes())
    heads = [[bytes(s[a:b]) for a, b in annexb_units(s)] for s in camera]
    assert all(u.rstrip(b"\x00") in head for u in units for head in heads)
    ffmpeg("-i", str(tmp_path / "a.mp4"), "-c", "copy", str(tmp_path / "a.ts"))
    segments = list(container_segments(str(tmp_path / "a.ts"), "mpegts", "a.ts"))
    assert len(segments) == count and all(s.codec == CODEC_H265 for s in segments)
    for segment in segments:
        kinds = [h265.nal_type(segment.data[a]) for a, _ in annexb_units(segment.data)]
        first = next(i for i, k in enumerate(kinds) if k < 32)
        assert kinds[:first].count(33) == 2  # the camera's SPS, and the copy before the IRAP slice
    owner_accepts_stranger_refuses(keys, str(tmp_path / "a.ts"), segments=count)


def test_inspect_and_hls_command_on_h265(streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams["x265-pyav-open-gop"]
    for kind, ext in (("fmp4", "m4s"), ("ts", "ts")):
        d = tmp_path / kind
        d.mkdir()
        # segments of 24 pictures (0.96 s): a media segment per tagged segment at 0.5 s
        result = run_cli("hls", "--type", kind, "--segment-duration", "0.5", str(tagged), str(d / "live.m3u8"))
        assert result.returncode == 0, result.stderr
        media = sorted(d.glob("live_*." + ext))
        assert len(media) == count
        for m in media:  # each starts with a tagged segment: it verifies on its own (after the init)
            files = ([str(d / "live_init.mp4")] if kind == "fmp4" else []) + [str(m)]
            code, verdicts = verify(keys, "alice-ring.json", *files)
            assert code == 0 and len(verdicts) == 1
        owner_accepts_stranger_refuses(keys, str(d / "live.m3u8"), segments=count)
        every = clips.decode_hashes_pyav(plain.read_bytes(), fmt="hevc")
        keyless_garbage(decoded_frames(d / "live.m3u8"), every)
        assert clips.decode_hashes_pyav(decrypted(str(d / "live.m3u8"), rings(keys)[0]), "hevc") == every
        result = run_cli("inspect", str(d / "live.m3u8"))
        assert result.returncode == 0 and len(result.stdout.splitlines()) == count
        held = {b.key_id.hex().encode() for b in rings(keys)[0].bindings()}
        assert all(line.split(b" key id ")[1].split()[0] in held for line in result.stdout.splitlines())
        assert b"alice" not in result.stdout
    result = run_cli("hls", str(plain), str(tmp_path / "u.m3u8"))
    assert result.returncode == 2 and b"no segbind tag" in result.stderr


def test_a_copy_is_dropped_only_when_no_other_set_shares_its_id(tmp_path: Path) -> None:
    """A camera segment whose head holds two SPS of id 0 (A, then B: B is in force): a copy of
    A put before the slices would put A in force, and is not dropped; alone, A's copy is."""
    import os

    from segbind import Epoch, Reason, StreamVerifier
    from segbind_core.nal import to_annexb
    from segbind_core.segment import Segment, Segmenter
    from segbind_core.tagger import Tagger
    from tests.support.tagged import keyring_of

    epoch = Epoch.of_pairing(os.urandom(32), "alice", "cam-5", 1, [])
    ring = keyring_of(epoch)

    def sps_of(data: bytes) -> bytes:
        return next(data[a:b] for a, b in annexb_units(data) if h265.nal_type(data[a]) == h265.NAL_SPS)

    segmenter = Segmenter(delimit=True)
    video = clips.encode_pyav_h265(frames=10, gop=10)
    raw = next(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))
    units = [raw.data[a:b] for a, b in annexb_units(raw.data)]
    last_set = max(i for i, u in enumerate(units) if h265.nal_type(u[0]) in (32, 33, 34))
    a_sps, b_sps = sps_of(video), sps_of(clips.encode_pyav_h265(frames=5, gop=5, width=256, height=144))
    assert a_sps in units and a_sps != b_sps and h265.parameter_set_key(b_sps) == h265.parameter_set_key(a_sps)
    for camera, expected in ((units, Reason.OK), (units[:last_set + 1] + [b_sps] + units[last_set + 1:],
                                                           Reason.CONTENT_MISMATCH)):
        tagger = Tagger(epoch, 1, codec=CODEC_H265)
        tagged = tagger.tag(to_annexb(camera), len(camera), 1_795_000_000_000, raw.duration_ms, raw.pictures)[0]
        verifier = StreamVerifier(ring)
        assert verifier.verify(tagged).reason is Reason.OK
        tagged_units = [tagged[a:b] for a, b in annexb_units(tagged)]
        at = next(i for i, u in enumerate(tagged_units) if h265.nal_type(u[0]) < 32)
        copied = to_annexb(tagged_units[:at] + [a_sps] + tagged_units[at:])
        assert StreamVerifier(ring).verify(copied).reason is expected


@pytest.mark.parametrize("kind", ["x265-pyav-open-gop", "x265-ffmpeg-once-slices"])
def test_parameter_sets_kept_only_in_hvcc_are_restored(kind: str, streams, keys: Path, tmp_path: Path) -> None:
    """hvc1 as a strict packager writes it: VPS/SPS/PPS only in hvcC (ffmpeg's filter_units
    bsf strips them from the samples). Still verifies, and after hevc_mp4toannexb puts them
    back before each IRAP slice (behind x265's SEI) in TS and Annex-B."""
    plain, tagged, count = streams[kind]
    remux_annexb(str(tagged), str(tmp_path / "mid.mp4"), "mp4")
    ffmpeg("-i", str(tmp_path / "mid.mp4"), "-c", "copy", "-tag:v", "hvc1", "-bsf:v",
           "filter_units=remove_types=32|33|34", str(tmp_path / "stripped.mp4"))
    ffmpeg("-i", str(tmp_path / "stripped.mp4"), "-c", "copy", str(tmp_path / "stripped.ts"))
    ffmpeg("-i", str(tmp_path / "stripped.mp4"), "-c", "copy", "-f", "hevc", str(tmp_path / "stripped.h265"))
    segments = list(container_segments(str(tmp_path / "stripped.mp4"), "mp4", "x"))
    assert len(segments) == count
    assert not any(h265.nal_type(s.data[a]) in (32, 33, 34) for s in segments for a, _ in annexb_units(s.data))
    # the stripped file decodes, without keys, as the file it was stripped from (same pictures, same garbage)
    assert decoded_frames(tmp_path / "stripped.mp4") == decoded_frames(tmp_path / "mid.mp4")
    for name in ("stripped.mp4", "stripped.ts", "stripped.h265"):
        owner_accepts_stranger_refuses(keys, str(tmp_path / name), segments=count)


@pytest.mark.parametrize("step", RAW_CHAIN)
@pytest.mark.parametrize("kind", [k for k in KINDS if has_bframes(k)])
def test_ffmpeg_remux_of_raw_bframe_h265_then_to_other_containers(kind: str, step: str, streams, keys: Path,
                                                                   tmp_path: Path) -> None:
    """As for H.264 (test_media_remux): `ffmpeg -r 25 -i tagged.h265 -c copy x.mp4` (hev1; pts = dts
    and an edit list hiding the B-frame delay), then that MP4 to MPEG-TS (hevc_mp4toannexb adds
    hvcC's sets before every IRAP slice), Matroska and ffmpeg's default HLS fMP4. Accepted for the
    owner, the first segment of the MP4 saying how many pictures the edit list hides; refused for
    a stranger; decoded as the same remux of the untagged stream."""
    plain, tagged, count = streams[kind]
    hidden, pictures = raw_remux_verifies_for_its_owner_only(keys, step, plain, tagged, count, tmp_path)
    every = clips.decode_hashes_pyav(plain.read_bytes(), fmt="hevc")
    if step == "mp4":
        assert hidden in (1, 2) and len(pictures) == len(every) - hidden
    else:
        assert hidden == 0 and pictures == every


def test_ffmpeg_51_cannot_write_raw_bframe_h265_into_ts_or_mkv(streams, tmp_path: Path) -> None:
    """Why the chain goes through MP4 (docs/CONTAINERS.md, "Not covered"): ffmpeg 5.1 has no
    timestamps for raw B-frame H.265, and its MPEG-TS and Matroska muxers refuse the packets."""
    plain, tagged, count = streams["x265-pyav-bframes-radl-slices-aud"]
    assert "first pts and dts value must be set" in ffmpeg_fails("-r", "25", "-i", str(tagged), "-c", "copy",
                                                                 str(tmp_path / "x.ts"))
    assert "unknown timestamp" in ffmpeg_fails("-r", "25", "-i", str(tagged), "-c", "copy", str(tmp_path / "x.mkv"))
