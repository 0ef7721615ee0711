"""Every container (issue item 3): a stream tagged as Annex-B (format 3: encrypted), remuxed by
PyAV or by `ffmpeg -c copy` into MPEG-TS, MP4, fragmented MP4 and HLS (TS and fMP4 segments),
verifies for its owner and is refused for every other viewer. A decoder without keys gets from
it as many pictures as from the same remux of the untagged stream, none of them the camera's;
what ``segbind.open`` hands the owner's decoder decodes to exactly the untagged stream's
pictures. docs/CONTAINERS.md says what each remux keeps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest

from host_sim import clips
from segbind import InvalidSegment, Reason, StreamVerifier, tagged_segments
from segbind.read import container_segments
from segbind.write import remux_annexb, write_hls
from segbind_core.nal import annexb_units
from tests.support import run_cli
from tests.support.media import (
    RAW_CHAIN,
    SINE,
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

KINDS = ["pyav-every", "pyav-once", "pyav-intra-refresh", "pyav-bframes-slices-aud",
         "ffmpeg-every", "ffmpeg-once", "ffmpeg-intra-refresh", "ffmpeg-bframes-slices-aud"]
FRAG = "frag_keyframe+empty_moov+default_base_moof"


def has_bframes(kind: str) -> bool:
    """ffmpeg's libx264 uses B-frames unless told otherwise."""
    return kind not in ("pyav-every", "pyav-intra-refresh")


# Each remux: (source Annex-B, output directory, kind) -> (files to verify, file to decode).
def _ffmpeg_mp4(src: Path, d: Path, kind: str):
    ffmpeg("-i", str(src), "-c", "copy", str(d / "out.mp4"))
    return [d / "out.mp4"], d / "out.mp4"


def _ffmpeg_ts(src: Path, d: Path, kind: str):
    if has_bframes(kind):
        # ffmpeg 5.1 cannot give raw B-frame H.264 the timestamps MPEG-TS needs: via MP4.
        ffmpeg("-i", str(src), "-c", "copy", str(d / "mid.mp4"))
        src = d / "mid.mp4"
    ffmpeg("-i", str(src), "-c", "copy", str(d / "out.ts"))
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


def _ffmpeg_back_to_annexb(src: Path, d: Path, kind: str):
    ffmpeg("-i", str(src), "-c", "copy", str(d / "mid.mp4"))
    ffmpeg("-i", str(d / "mid.mp4"), "-c", "copy", "-f", "h264", str(d / "back.h264"))
    return [d / "back.h264"], d / "back.h264"


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


def _pyav_fmp4_files(src: Path, d: Path, kind: str):
    """fMP4 as separate files: the init segment then the media segments, given in order."""
    write_hls(str(src), str(d / "out.m3u8"), "fmp4", 1.0)
    files = [d / "out_init.mp4"] + sorted(d.glob("out_*.m4s"))
    return files, d / "out.m3u8"


REMUXES: Dict[str, Callable] = {
    "ffmpeg-mp4": _ffmpeg_mp4,
    "ffmpeg-ts": _ffmpeg_ts,
    "ffmpeg-fmp4": _ffmpeg_fmp4,
    "ffmpeg-hls-ts": _ffmpeg_hls("mpegts"),
    "ffmpeg-hls-fmp4": _ffmpeg_hls("fmp4"),
    "ffmpeg-mp4-to-annexb": _ffmpeg_back_to_annexb,
    "pyav-mp4": _pyav("mp4", {}, "mp4"),
    "pyav-ts": _pyav("mpegts", {}, "ts"),
    "pyav-fmp4": _pyav("mp4", {"movflags": FRAG}, "mp4"),
    "pyav-mkv": _pyav("matroska", {}, "mkv"),
    "pyav-hls-ts": _pyav_hls("ts"),
    "pyav-hls-fmp4": _pyav_hls("fmp4"),
    "pyav-fmp4-init-and-segments": _pyav_fmp4_files,
}


@pytest.fixture(scope="module")
def streams(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[Path, Path, int]]:
    """kind -> (untagged Annex-B, tagged Annex-B, number of tagged segments)."""
    return tagged_kinds(keys, tmp_path_factory.mktemp("streams"), KINDS, "h264")


@pytest.mark.parametrize("remux", sorted(REMUXES))
@pytest.mark.parametrize("kind", KINDS)
def test_remuxed_stream_verifies_for_its_owner_only_and_decodes_the_same(
        kind: str, remux: str, streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams[kind]
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    files, decodable = REMUXES[remux](tagged, tmp_path / "t", kind)
    # The same stream unencrypted (what the owner's verifier hands on: format 2's form, its tags
    # in clear, which decoders skip), remuxed the same way (segbind's own writer needs the tags)
    unencrypted = tmp_path / "unencrypted.h264"
    unencrypted.write_bytes(decrypted(tagged, rings(keys)[0]))
    _, plain_decodable = REMUXES[remux](unencrypted, tmp_path / "p", kind)
    # Without keys, a decoder gets as many pictures as from the same remux unencrypted, none of
    # them the camera's.
    frames, pictures = frame_hashes(plain_decodable), decoded_frames(plain_decodable)
    keyless = decoded_frames(decodable)
    assert len(keyless) == len(pictures)
    keyless_garbage(keyless, pictures)
    keyless_garbage(frame_hashes(decodable), frames)
    # With them, what segbind.open hands the owner's decoder decodes to the untagged stream's pictures.
    source = [str(f) for f in files] if len(files) > 1 else files[0]
    assert clips.decode_hashes_pyav(decrypted(source, rings(keys)[0])) == clips.decode_hashes_pyav(plain.read_bytes())
    code, verdicts = verify(keys, "bob-ring.json", *[str(f) for f in files])
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * count, verdicts
    if pictures == clips.decode_hashes_pyav(plain.read_bytes()):
        # A decoder outputs every picture, in order: every segment verifies for its owner.
        owner_accepts_stranger_refuses(keys, *[str(f) for f in files], segments=count)
        if remux.startswith("pyav") or not has_bframes(kind):
            assert frames == clips.decode_hashes_ffmpeg(plain.read_bytes())
        else:  # ffmpeg 5.1 gives raw B-frame H.264 pts = dts: its CLI's framemd5 drops a frame or two
            assert len(frames) >= 50
    else:
        # ffmpeg 5.1 gives raw B-frame H.264 pts = dts when it remuxes; its MP4 edit list then
        # hides the first pictures from decoders, tagged or not.
        assert remux.startswith("ffmpeg") and has_bframes(kind)
        # Those pictures are the camera's: accepted, and the verdict says the container hides them.
        code, verdicts = verify(keys, "alice-ring.json", *[str(f) for f in files])
        assert code == 0 and {v["reason"] for v in verdicts} == {"ok"}, verdicts
        assert "the container hides" in verdicts[0]["detail"]


@pytest.mark.parametrize("kind", ["pyav-every", "pyav-once", "ffmpeg-intra-refresh", "ffmpeg-bframes-slices-aud"])
def test_parameter_sets_stripped_into_avcc_are_restored(kind: str, streams, keys: Path, tmp_path: Path) -> None:
    """A packager that keeps SPS/PPS only in avcC (ffmpeg's filter_units bsf does so): still verifies,
    also after mp4toannexb puts them back at another place (behind the SEIs) in TS and Annex-B."""
    plain, tagged, count = streams[kind]
    # Through PyAV's remux, which gives raw H.264 its timestamps from the picture order.
    remux_annexb(str(tagged), str(tmp_path / "mid.mp4"), "mp4")
    ffmpeg("-i", str(tmp_path / "mid.mp4"), "-c", "copy", "-bsf:v", "filter_units=remove_types=7|8",
           str(tmp_path / "stripped.mp4"))
    ffmpeg("-i", str(tmp_path / "stripped.mp4"), "-c", "copy", str(tmp_path / "stripped.ts"))
    ffmpeg("-i", str(tmp_path / "stripped.mp4"), "-c", "copy", "-f", "h264", str(tmp_path / "stripped.h264"))
    # The remuxed files really lack in-band parameter sets where the camera put them.
    alice = rings(keys)[0]
    segs = list(container_segments(str(tmp_path / "stripped.mp4"), "mp4", "x"))
    assert len(segs) == count
    assert all(not any(s.data[a] & 0x1F in (7, 8) for a, _ in annexb_units(s.data)) for s in segs)
    plain_verifier = StreamVerifier(alice)
    for seg in segs:  # as found, the segments are not the camera's
        with pytest.raises(InvalidSegment) as refused:
            plain_verifier.auth.authenticate(seg)
        assert refused.value.reason is Reason.CONTENT_MISMATCH
    for name in ("stripped.mp4", "stripped.ts", "stripped.h264"):
        owner_accepts_stranger_refuses(keys, str(tmp_path / name), segments=count)


@pytest.mark.parametrize("remux", ["ffmpeg-mp4", "ffmpeg-ts", "pyav-hls-fmp4", "ffmpeg-mp4-to-annexb"])
def test_changed_video_is_refused_after_any_remux(remux: str, streams, keys: Path, tmp_path: Path) -> None:
    """Alter one slice of segment 2 before remuxing: only segment 2 is refused, as changed content."""
    plain, tagged, count = streams["pyav-every"]
    data = bytearray(tagged.read_bytes())
    segments = tagged_segments(bytes(data))
    at = sum(len(seg) for seg in segments[:2])
    s, e = [(at + s, at + e) for s, e in annexb_units(segments[2]) if segments[2][s] & 0x1F == 1][3]
    data[(s + e) // 2] ^= 0x55
    changed = tmp_path / "changed.h264"
    changed.write_bytes(bytes(data))
    (tmp_path / "t").mkdir()
    files, _ = REMUXES[remux](changed, tmp_path / "t", "pyav-every")
    code, verdicts = verify(keys, "alice-ring.json", *[str(f) for f in files])
    assert code == 1
    assert [v["reason"] for v in verdicts] == ["ok", "ok", "content_mismatch", "gap"][:count]


def test_verify_reads_several_ts_segments_and_stdin(streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams["ffmpeg-every"]
    files, _ = _ffmpeg_hls("mpegts")(tagged, tmp_path, "ffmpeg-every")
    segments = sorted(tmp_path.glob("seg_*.ts"))
    assert len(segments) >= 3
    owner_accepts_stranger_refuses(keys, *[str(f) for f in segments], segments=count)
    remux_annexb(str(tagged), str(tmp_path / "x.mp4"), "mp4")
    ffmpeg("-i", str(tmp_path / "x.mp4"), "-c", "copy", str(tmp_path / "x.ts"))
    for name in ("x.ts", "x.mp4"):
        result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), "-",
                         stdin=(tmp_path / name).read_bytes())
        assert result.returncode == 0 and ("ACCEPTED: %d ok" % count).encode() in result.stdout


def test_inspect_reads_containers(streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams["pyav-once"]
    _pyav_hls("ts")(tagged, tmp_path, "pyav-once")
    result = run_cli("inspect", str(tmp_path / "out.m3u8"))
    assert result.returncode == 0
    assert [line.split()[1] for line in result.stdout.decode().splitlines()] == ["%d:" % i for i in range(count)]
    held = {b.key_id.hex().encode() for b in rings(keys)[0].bindings()}
    assert all(b" key id " in line and line.split(b" key id ")[1].split()[0] in held
               for line in result.stdout.splitlines())
    assert b"alice" not in result.stdout  # the key id is the only name a tag carries


def test_hls_command_writes_playlists_that_verify(streams, keys: Path, tmp_path: Path) -> None:
    plain, tagged, count = streams["pyav-bframes-slices-aud"]
    for kind, ext in (("fmp4", "m4s"), ("ts", "ts")):
        d = tmp_path / kind
        d.mkdir()
        result = run_cli("hls", "--type", kind, "--segment-duration", "1", str(tagged), str(d / "live.m3u8"))
        assert result.returncode == 0, result.stderr
        playlist = (d / "live.m3u8").read_text()
        media = sorted(d.glob("live_*." + ext))
        assert len(media) == count and all(m.name in playlist for m in media)
        assert ("live_init.mp4" in playlist) == (kind == "fmp4")
        owner_accepts_stranger_refuses(keys, str(d / "live.m3u8"), segments=count)
        keyless_garbage(frame_hashes(d / "live.m3u8"), clips.decode_hashes_ffmpeg(plain.read_bytes()))
        assert clips.decode_hashes_ffmpeg(decrypted(str(d / "live.m3u8"), rings(keys)[0])) == \
            clips.decode_hashes_ffmpeg(plain.read_bytes())
        # Each media segment starts with a tagged segment: it verifies on its own (after the init).
        for m in media:
            files = ([str(d / "live_init.mp4")] if kind == "fmp4" else []) + [str(m)]
            code, verdicts = verify(keys, "alice-ring.json", *files)
            assert code == 0 and len(verdicts) == 1
    # From stdin too; an untagged stream is refused with one line.
    result = run_cli("hls", "-", str(tmp_path / "s.m3u8"), stdin=tagged.read_bytes())
    assert result.returncode == 0 and (tmp_path / "s.m3u8").exists()
    result = run_cli("hls", str(plain), str(tmp_path / "u.m3u8"))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and b"no segbind tag" in result.stderr


def test_pyav_remux_timestamps_follow_display_order(streams, tmp_path: Path) -> None:
    """Raw H.264 has no timestamps; the POC gives them: frames come out of a decoder with
    strictly increasing timestamps, one frame duration apart, for B-frame streams too."""
    import av

    for kind in ("pyav-bframes-slices-aud", "ffmpeg-bframes-slices-aud", "pyav-intra-refresh"):
        plain, tagged, count = streams[kind]
        remux_annexb(str(tagged), str(tmp_path / "o.mp4"), "mp4")
        with av.open(str(tmp_path / "o.mp4")) as c:
            stream = c.streams.video[0]
            pts = [f.pts for f in c.decode(stream)]
            step = int(1 / (25 * stream.time_base))
        assert len(pts) == 80
        assert [b - a for a, b in zip(pts, pts[1:])] == [step] * 79
        packets_units = []
        with av.open(str(tmp_path / "o.mp4")) as c:
            packets_units = [bool(p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
        assert sum(packets_units) >= count


@pytest.mark.parametrize("step", RAW_CHAIN)
@pytest.mark.parametrize("kind", [k for k in KINDS if has_bframes(k)])
def test_ffmpeg_remux_of_raw_bframe_h264_then_to_other_containers(kind: str, step: str, streams, keys: Path,
                                                                   tmp_path: Path) -> None:
    """The remux users make most: `ffmpeg -r 25 -i tagged.h264 -c copy x.mp4` (ffmpeg 5.1 writes
    pts = dts and an edit list hiding the B-frame delay), then that MP4 to MPEG-TS, Matroska and
    ffmpeg's default HLS fMP4. Accepted for the owner, refused for a stranger, decoded as the same
    remux of the untagged stream; in the MP4 the first segment says how many pictures the edit
    list hides, and decoders show every other picture; the remuxes of that MP4 keep no edit list
    and show them all."""
    plain, tagged, count = streams[kind]
    hidden, pictures = raw_remux_verifies_for_its_owner_only(keys, step, plain, tagged, count, tmp_path)
    every = clips.decode_hashes_pyav(plain.read_bytes())
    if step == "mp4":
        assert hidden in (1, 2) and len(pictures) == len(every) - hidden
    else:
        assert hidden == 0 and pictures == every


@pytest.mark.parametrize("kind", ["pyav-once", "ffmpeg-bframes-slices-aud"])
def test_ffmpeg_51_cannot_write_raw_bframe_h264_into_ts_or_mkv(kind: str, streams, keys: Path, tmp_path: Path) -> None:
    """Why the chain goes through MP4: ffmpeg 5.1 has no timestamps for raw B-frame H.264, and its
    MPEG-TS and Matroska muxers refuse the packets; its HLS muxer writes one media segment of
    duration 0, a playlist segbind refuses (EXT-X-TARGETDURATION 0, docs/readers/hls.md)."""
    plain, tagged, count = streams[kind]
    assert "first pts and dts value must be set" in ffmpeg_fails("-r", "25", "-i", str(tagged), "-c", "copy",
                                                                 str(tmp_path / "x.ts"))
    assert "unknown timestamp" in ffmpeg_fails("-r", "25", "-i", str(tagged), "-c", "copy", str(tmp_path / "x.mkv"))
    ffmpeg("-r", "25", "-i", str(tagged), "-c", "copy", "-f", "hls", "-hls_segment_type", "fmp4",
           "-hls_playlist_type", "vod", "-hls_segment_filename", str(tmp_path / "seg_%03d.m4s"),
           str(tmp_path / "raw.m3u8"))
    assert "#EXT-X-TARGETDURATION:0" in (tmp_path / "raw.m3u8").read_text()
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(tmp_path / "raw.m3u8"))
    assert result.returncode == 2 and b"EXT-X-TARGETDURATION 0" in result.stderr


@pytest.mark.parametrize("kind", ["pyav-every", "ffmpeg-bframes-slices-aud"])
def test_ffmpeg_hls_fmp4_with_aac_added_and_the_variant_users_can_make(kind: str, streams, keys: Path,
                                                                        tmp_path: Path) -> None:
    """ffmpeg's HLS fMP4 of the raw remux with an AAC track added while packaging. Without
    B-frames, the muxer delays the video by the AAC priming with an empty edit: read.mp4 refuses
    it (docs/readers/mp4.md: FFmpeg shifts the video by it, Chromium ignores it), and the playlist
    cannot be read to its end (exit 2, the reason in one line). `-hls_segment_options
    use_editlist=0` writes no edit list: accepted, the video alone. With B-frames the video's edit
    list absorbs the delay: ffmpeg's default is accepted as it is."""
    plain, tagged, count = streams[kind]
    ffmpeg("-r", "25", "-i", str(tagged), "-c", "copy", str(tmp_path / "raw.mp4"))

    def package(name: str, *extra: str) -> Path:
        (tmp_path / name).mkdir()
        ffmpeg("-i", str(tmp_path / "raw.mp4"), *SINE, "-c:v", "copy", "-c:a", "aac", "-f", "hls",
               "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod", *extra, "-hls_segment_filename",
               str(tmp_path / name / "seg_%03d.m4s"), str(tmp_path / name / "out.m3u8"))
        return tmp_path / name / "out.m3u8"

    default, variant = package("default"), package("variant", "-hls_segment_options", "use_editlist=0")
    every = clips.decode_hashes_pyav(plain.read_bytes())
    assert len(decoded_frames(variant)) == len(decoded_frames(default)) == len(every)
    keyless_garbage(decoded_frames(variant) + decoded_frames(default), every)
    for playlist in ([variant, default] if has_bframes(kind) else [variant]):
        code, verdicts = verify(keys, "alice-ring.json", "--video-only", str(playlist))
        assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * count, verdicts
        code, verdicts = verify(keys, "bob-ring.json", "--video-only", str(playlist))
        assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * count, verdicts
    if not has_bframes(kind):
        result = run_cli("verify", "--video-only", "--keyring", str(keys / "alice-ring.json"), str(default))
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
        assert re.search(rb"an empty edit of \d+ ticks before media time 0", result.stderr), result.stderr
