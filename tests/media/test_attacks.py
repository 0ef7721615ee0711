"""Every attack class of issue 10 ("Verify what is decoded"), built here on real encoder
output, and refused with its reason (docs/FORMAT.md 7.3, docs/CONTAINERS.md).

Each attack is first shown to work on a decoder (what FFmpeg decodes is not what the
camera tagged), then shown to be refused by ``segbind verify`` and by ``segbind.open``,
which never hands a refused segment's bytes on, nor decrypts it (format 3: the camera's
picture data is encrypted; an attacker's own pictures need no key to show).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, List

import pytest

import segbind
from host_sim import clips
from segbind import Epoch, Keyring
from segbind.write import remux_annexb, write_hls
from segbind_core import h265
from segbind_core.nal import START_CODE, annexb_units
from tests.support import run_cli
from tests.support.media import (
    decoded_frames,
    ffmpeg,
    frame_hashes,
    length_prefixed_units,
    prefixed,
    rewrite_packets,
    rings,
    tag,
    tag_recording,
)
from tests.support.tagged import keyring_of

FRAG = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


@pytest.fixture(scope="module")
def work(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice's camera's tagged stream (4 segments, one IDR each) as Annex-B and as MP4 remuxed
    with PyAV; a stranger's clip of the same size; bob's tagged stream as HLS-TS."""
    d = tmp_path_factory.mktemp("attacks")
    tag(keys, clips.make_kind("pyav-every"), d / "alice.h264")
    remux_annexb(str(d / "alice.h264"), str(d / "alice.mp4"), "mp4")
    (d / "stranger.h264").write_bytes(clips.encode_pyav(frames=25, gop=25, seed=9))
    result = run_cli("tag", "--epoch", str(keys / "bob.json"), "--stream-id", "7", "-", "-",
                     stdin=clips.encode_pyav(frames=50, gop=25, seed=5))
    assert result.returncode == 0, result.stderr
    (d / "bob.h264").write_bytes(result.stdout)
    (d / "bob").mkdir()
    write_hls(str(d / "bob.h264"), str(d / "bob" / "bob.m3u8"), "ts", 1.0)
    return d


def reasons(keys: Path, *files: Path, ring: str = "alice-ring.json", extra: tuple = ()) -> List[str]:
    result = run_cli("verify", "--keyring", str(keys / ring), "--json", *extra, *[str(f) for f in files])
    assert result.returncode in (0, 1), result.stderr
    import json
    return [json.loads(line)["reason"] for line in result.stdout.splitlines()[:-1]]


def camera_segments(work: Path) -> List[bytes]:
    return segbind.tagged_segments((work / "alice.h264").read_bytes())


def opened(source, keys: Path, **options) -> list:
    """(reason, the camera's segment handed on) per segment, through the library; a segment is
    decrypted for a decoder exactly when it is handed on."""
    out = []
    with segbind.open(source, rings(keys)[0], **options) as media:
        for r in media:
            assert (r.data is None) == (r.protected is None) == (not r.accepted), r
            out.append((r.reason.value, r.protected))
    return out


def dangling_length(index: int, data: bytes) -> bytes:
    """A packet edit: the last unit's length prefix in packet 30 (segment 1) runs 100 bytes past
    the end of its sample."""
    if index != 30:
        return data
    units = length_prefixed_units(data)
    body = prefixed(units)
    last = len(body) - len(units[-1]) - 4
    return body[:last] + (len(units[-1]) + 100).to_bytes(4, "big") + body[last + 4:]


def hidden_picture(work: Path) -> bytes:
    """The stranger's parameter sets and IDR picture behind start codes: what a filler, delimiter
    or end-of-sequence unit can carry in a length-prefixed sample."""
    data = (work / "stranger.h264").read_bytes()
    units = [data[s:e] for s, e in annexb_units(data)]
    first_idr = next(i for i, u in enumerate(units) if u[0] & 0x1F == 5)
    return b"".join(b"\x00\x00\x01" + u for u in units[:first_idr + 1] if u[0] & 0x1F in (7, 8, 5))


@pytest.mark.parametrize("carrier", [0x0C, 0x09, 0x0A])  # filler, delimiter, end of sequence
@pytest.mark.parametrize("container", ["mp4", "fmp4", "mkv", "hls-fmp4"])
def test_a_picture_hidden_in_a_unit_that_decoders_split_is_refused(carrier: int, container: str, work: Path,
                                                                    keys: Path, tmp_path: Path) -> None:
    """A filler, delimiter or end-of-sequence unit whose bytes are a stranger's parameter sets and
    picture behind start codes: in place of the camera's delimiter (before the tag), or added
    after the picture's slices. Refused as framing: a unit other than a picture never holds a
    start code (emulation prevention keeps them out), and a decoder splits it there."""
    hidden = bytes([carrier]) + hidden_picture(work)
    fmt, options, name = {"mp4": ("mp4", {}, "x.mp4"), "fmp4": ("mp4", FRAG, "x.mp4"),
                          "mkv": ("matroska", {}, "x.mkv"),
                          "hls-fmp4": ("hls", {"hls_time": "1", "hls_playlist_type": "vod",
                                               "hls_segment_type": "fmp4",
                                               "hls_segment_filename": str(tmp_path / "x_%03d.m4s")},
                                       "x.m3u8")}[container]
    stranger = set(clips.decode_hashes_ffmpeg((work / "stranger.h264").read_bytes()))
    # Transmuxed, the hidden units before the tag are a picture of their own, which the rule
    # "a segment begins with its tag's access unit" leaves at the end of segment 0.
    for where, reason, transmuxed in (
            ("before the tag", "framing", ["content_mismatch", "content_mismatch", "ok", "ok"]),
            ("after the slices", "framing", ["ok", "content_mismatch", "gap", "ok"])):
        def edit(index: int, data: bytes) -> bytes:
            if index != 25:  # the first picture of segment 1
                return data
            units = length_prefixed_units(data)
            assert units[0] == b"\x09\xf0"  # the camera's delimiter
            return prefixed([hidden] + units[1:] if where == "before the tag" else units + [hidden])

        attack = rewrite_packets(work / "alice.mp4", tmp_path / name, fmt, edit, options)
        # The attack works: once transmuxed to Annex-B (as HLS-TS packagers and players do), a
        # decoder shows the stranger's picture.
        ffmpeg("-i", str(attack), "-c", "copy", "-f", "h264", str(tmp_path / "transmuxed.h264"))
        assert stranger & set(frame_hashes(tmp_path / "transmuxed.h264")), where
        # Refused, in the container and once transmuxed; the other segments are alice's.
        assert reasons(keys, attack) == ["ok", reason, "gap", "ok"], where
        assert reasons(keys, tmp_path / "transmuxed.h264") == transmuxed, where
        handed = opened(str(attack), keys)
        assert [r for r, _ in handed] == ["ok", reason, "gap", "ok"]
        assert [data for _, data in handed] == [camera_segments(work)[0], None] + camera_segments(work)[2:]


def test_a_length_past_the_end_of_its_sample_is_refused(work: Path, keys: Path, tmp_path: Path) -> None:
    attack = rewrite_packets(work / "alice.mp4", tmp_path / "x.mp4", "mp4", dangling_length)
    assert len(decoded_frames(attack)) < len(decoded_frames(work / "alice.mp4"))  # a picture vanishes
    assert reasons(keys, attack) == ["ok", "framing", "gap", "ok"]
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(attack))
    assert b"runs 100 bytes past the end of its sample" in result.stdout


def test_a_second_video_track_is_refused_even_for_the_video_alone(work: Path, keys: Path, tmp_path: Path) -> None:
    remux_annexb(str(work / "stranger.h264"), str(tmp_path / "stranger.mp4"), "mp4")
    for fmt, name in (("mp4", "x.mp4"), ("matroska", "x.mkv")):
        attack = rewrite_packets(work / "alice.mp4", tmp_path / name, fmt, extra_video=tmp_path / "stranger.mp4")
        import av
        with av.open(str(attack)) as container:
            assert len(container.streams.video) == 2  # a player may pick either
        for extra in ((), ("--video-only",)):
            assert reasons(keys, attack, extra=extra) == ["framing"] * 4
        assert all(data is None for _, data in opened(str(attack), keys, video_only=True))


def test_an_audio_track_is_refused_unless_the_video_alone_is_asked_for(work: Path, keys: Path,
                                                                        tmp_path: Path) -> None:
    for fmt, options, name in (("mp4", {}, "x.mp4"), ("mp4", FRAG, "f.mp4"), ("matroska", {}, "x.mkv")):
        attack = rewrite_packets(work / "alice.mp4", tmp_path / name, fmt, options=options, audio=True)
        import av
        with av.open(str(attack)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"]
        assert reasons(keys, attack) == ["framing"] * 4
        result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(attack))
        assert b"other tracks, never verified: audio (" in result.stdout
        assert reasons(keys, attack, extra=("--video-only",)) == ["ok"] * 4
        # Asked for the video alone: exactly the camera's segments are handed on, nothing else.
        handed = opened(str(attack), keys, video_only=True)
        assert [data for _, data in handed] == camera_segments(work)


def test_an_hls_ts_segment_after_fmp4_ones_refuses_the_playlist(work: Path, keys: Path, tmp_path: Path) -> None:
    """A stranger's (or an untagged) MPEG-TS segment appended to alice's fMP4 playlist: the
    EXT-X-MAP stays in force over it (HLS has no way to end one), and FFmpeg and hls.js feed the
    map's bytes to the TS demuxer. The playlist is refused, one line, after alice's verdicts."""
    d = tmp_path / "hls"
    d.mkdir()
    write_hls(str(work / "alice.h264"), str(d / "alice.m3u8"), "fmp4", 1.0)
    for f in (work / "bob").iterdir():
        shutil.copy(f, d / f.name)
    ffmpeg("-i", str(work / "stranger.h264"), "-c", "copy", "-f", "mpegts", str(d / "untagged.ts"))
    alice = (d / "alice.m3u8").read_text().replace("#EXT-X-ENDLIST\n", "")
    bob_segment = sorted(p.name for p in d.glob("bob_*.ts"))[0]
    for extra in (bob_segment, "untagged.ts"):
        for discontinuity in ("#EXT-X-DISCONTINUITY\n", ""):
            text = alice + discontinuity + "#EXTINF:1.0,\n%s\n#EXT-X-ENDLIST\n" % extra
            (d / "attack.m3u8").write_text(text)
            result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(d / "attack.m3u8"))
            assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
            assert b"is MPEG-TS after an EXT-X-MAP" in result.stderr
            assert result.stdout.count(b": ok") == 4  # alice's segments, judged before


def test_delimiters_put_between_the_slices_of_a_picture_are_refused(keys: Path, tmp_path: Path) -> None:
    tagged = tag(keys, clips.make_kind("pyav-bframes-slices-aud"), tmp_path / "t.h264").read_bytes()
    segments = segbind.tagged_segments(tagged)

    def split_first_picture(segment: bytes) -> bytes:
        units = annexb_units(segment)
        slices = [i for i, (s, _) in enumerate(units) if segment[s] & 0x1F in (1, 5)]
        cut = units[slices[1]][0] - 4  # between the first and second slice of the segment's first picture
        assert not segment[units[slices[1]][0] + 1] & 0x80  # not a first slice: the same picture
        return segment[:cut] + START_CODE + b"\x09\xf0" + segment[cut:]

    stream = segments[0] + split_first_picture(segments[1]) + b"".join(segments[2:])
    (tmp_path / "x.h264").write_bytes(stream)
    # the attack works on a decoder: done to the video the camera encoded, the picture is split
    with segbind.open(tagged, rings(keys)[0]) as media:
        plain = [r.data or b"" for r in media]
    split = plain[0] + split_first_picture(plain[1]) + b"".join(plain[2:])
    assert clips.decode_hashes_pyav(split) != clips.decode_hashes_pyav(b"".join(plain))
    assert reasons(keys, tmp_path / "x.h264") == ["ok", "content_mismatch", "gap", "ok"]


def test_an_edit_list_that_hides_the_first_pictures_is_accepted_and_says_so(work: Path, keys: Path,
                                                                             tmp_path: Path) -> None:
    """An edit list that starts the presentation at a picture after the first hides some of the
    camera's own pictures: it shows nothing that is not the camera's (docs/FORMAT.md 7.5), so the
    segment is accepted, and its verdict says how many pictures the container hides. One that
    starts between two pictures is refused: FFmpeg moves the whole timeline to the first picture
    it shows, other players keep it (the readers disagree: docs/readers/mp4.md)."""
    ffmpeg("-ss", "1.52", "-i", str(work / "alice.mp4"), "-c", "copy", str(tmp_path / "x.mp4"))  # picture 38
    shown = decoded_frames(tmp_path / "x.mp4")
    assert len(shown) < 55  # starts at the IDR at 1 s, shows from 1.52 s: pictures hidden
    with segbind.open(str(tmp_path / "x.mp4"), Keyring.load(keys / "alice-ring.json")) as media:
        results = list(media)
    assert [r.reason.value for r in results] in (["ok", "ok", "ok"], ["ok", "ok", "gap"], ["ok", "gap", "ok"])
    assert "the container hides" in results[0].detail and "(an edit list)" in results[0].detail
    assert not any("hides" in r.detail for r in results[1:])
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(tmp_path / "x.mp4"))
    assert result.returncode == 0 and b"the container hides" in result.stdout
    ffmpeg("-ss", "1.5", "-i", str(work / "alice.mp4"), "-c", "copy", str(tmp_path / "between.mp4"))
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(tmp_path / "between.mp4"))
    assert result.returncode == 1 and b"timing - the first picture shown is at" in result.stdout


def test_timestamps_divided_by_20_are_refused(work: Path, keys: Path, tmp_path: Path) -> None:
    for fmt, options, name in (("mp4", {}, "x.mp4"), ("mp4", FRAG, "f.mp4"), ("matroska", {}, "x.mkv"),
                               ("mpegts", {}, "x.ts")):
        attack = rewrite_packets(work / "alice.mp4", tmp_path / name, fmt, options=options, time_scale=1 / 20)
        assert len(decoded_frames(attack)) == 80  # the same pictures, played 20 times too fast
        assert reasons(keys, attack) == ["timing"] * 4, name
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(tmp_path / "x.mp4"))
    assert b"the container plays it in 50 ms; the camera captured 1000 ms" in result.stdout


def test_a_recording_cut_in_the_middle_or_at_the_tail_is_refused(tmp_path: Path) -> None:
    pairing = os.urandom(32)
    epoch = Epoch.of_pairing(pairing, "alice", "cam-3", 1, [])
    keyring_of(epoch).save(tmp_path / "ring.json")
    video = clips.encode_pyav(frames=150, gop=25, seed=4)
    recording = tag_recording(epoch, video, stream_id=1_795_000_000_000, t0_ms=1_795_000_000_000)
    assert len(recording) == 6
    cases: Dict[str, tuple] = {
        "whole": (recording, ["ok"] * 6),
        "middle": (recording[:2] + recording[4:], ["ok", "ok", "missing", "missing", "incomplete"]),
        "tail": (recording[:4], ["ok"] * 4 + ["incomplete"]),
        "head": (recording[1:], ["missing"] * 5 + ["incomplete"]),
    }
    for name, (segments, expected) in cases.items():
        (tmp_path / (name + ".h264")).write_bytes(b"".join(segments))
        hls = tmp_path / name
        hls.mkdir()
        write_hls(str(tmp_path / (name + ".h264")), str(hls / "r.m3u8"), "fmp4", 1.0)
        for source in (tmp_path / (name + ".h264"), hls / "r.m3u8"):
            result = run_cli("verify", "--keyring", str(tmp_path / "ring.json"), "--recording", "--json",
                             str(source))
            import json
            got = [json.loads(line)["reason"] for line in result.stdout.splitlines()[:-1]]
            assert got == expected, (name, source.name, got)
            assert result.returncode == (0 if name == "whole" else 1)
            live = run_cli("verify", "--keyring", str(tmp_path / "ring.json"), str(source))
            assert live.returncode == 0  # as a live feed, gaps are fine


# -- the same attacks on H.265 (x265 through PyAV, hvcC samples) ---------------------------------

@pytest.fixture(scope="module")
def hevc(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice's camera's tagged H.265 stream (4 segments, an IDR each) as Annex-B and as MP4
    remuxed with PyAV (hev1); a stranger's clip of the same size, and one whose parameter sets
    differ (another resolution), as MP4."""
    d = tmp_path_factory.mktemp("hevc-attacks")
    tag(keys, clips.make_kind("x265-pyav-closed"), d / "alice.h265")
    remux_annexb(str(d / "alice.h265"), str(d / "alice.mp4"), "mp4")
    (d / "stranger.h265").write_bytes(clips.encode_pyav_h265(frames=25, gop=25, seed=9))
    remux_annexb(str(d / "stranger.h265"), str(d / "stranger.mp4"), "mp4")
    (d / "other.h265").write_bytes(clips.encode_pyav_h265(frames=25, gop=25, width=256, height=144, seed=9))
    remux_annexb(str(d / "other.h265"), str(d / "other.mp4"), "mp4")
    return d


def hevc_units(data: bytes) -> List[bytes]:
    return [data[s:e] for s, e in annexb_units(data)]


def hidden_hevc_picture(hevc: Path) -> bytes:
    """The stranger's VPS, SPS, PPS and IDR picture behind start codes."""
    units = hevc_units((hevc / "stranger.h265").read_bytes())
    first_idr = next(i for i, u in enumerate(units) if h265.is_idr(h265.nal_type(u[0])))
    return b"".join(b"\x00\x00\x01" + u for u in units[:first_idr + 1]
                    if h265.nal_type(u[0]) in (32, 33, 34) or h265.is_idr(h265.nal_type(u[0])))


@pytest.mark.slow
@pytest.mark.parametrize("carrier", [h265.NAL_FILLER, h265.NAL_AUD, h265.NAL_END_OF_SEQUENCE])
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_hevc_a_picture_hidden_in_a_unit_that_decoders_split_is_refused(carrier: int, container: str,
                                                                         hevc: Path, keys: Path,
                                                                         tmp_path: Path) -> None:
    hidden = bytes((carrier << 1, 1)) + hidden_hevc_picture(hevc)
    fmt, name = {"mp4": ("mp4", "x.mp4"), "mkv": ("matroska", "x.mkv")}[container]
    stranger = set(clips.decode_hashes_ffmpeg((hevc / "stranger.h265").read_bytes(), fmt="hevc"))
    camera = segbind.tagged_segments((hevc / "alice.h265").read_bytes())
    # Transmuxed, the hidden units before the tag are a picture of their own, which the rule
    # "a segment begins with its tag's access unit" leaves at the end of segment 0.
    for where, reason, transmuxed in (
            ("before the tag", "framing", ["content_mismatch", "content_mismatch", "ok", "ok"]),
            ("after the slices", "framing", ["ok", "content_mismatch", "gap", "ok"])):
        def edit(index: int, data: bytes) -> bytes:
            if index != 25:  # the first picture of segment 1
                return data
            units = length_prefixed_units(data)
            assert units[0] == h265.DELIMITER  # the camera's delimiter
            return prefixed([hidden] + units[1:] if where == "before the tag" else units + [hidden])

        attack = rewrite_packets(hevc / "alice.mp4", tmp_path / name, fmt, edit)
        # The attack works: once transmuxed to Annex-B, a decoder shows the stranger's picture.
        ffmpeg("-i", str(attack), "-c", "copy", "-f", "hevc", str(tmp_path / "transmuxed.h265"))
        assert stranger & set(frame_hashes(tmp_path / "transmuxed.h265")), where
        assert reasons(keys, attack) == ["ok", reason, "gap", "ok"], where
        assert reasons(keys, tmp_path / "transmuxed.h265") == transmuxed, where
        handed = opened(str(attack), keys)
        assert [data for _, data in handed] == [camera[0], None] + camera[2:]


@pytest.mark.slow
def test_hevc_dangling_lengths_extra_tracks_and_a_swapped_hvcc_are_refused(hevc: Path, keys: Path,
                                                                          tmp_path: Path) -> None:
    attack = rewrite_packets(hevc / "alice.mp4", tmp_path / "d.mp4", "mp4", dangling_length)
    assert len(decoded_frames(attack)) < len(decoded_frames(hevc / "alice.mp4"))  # a picture vanishes
    assert reasons(keys, attack) == ["ok", "framing", "gap", "ok"]
    # another video track, and an audio track
    attack = rewrite_packets(hevc / "alice.mp4", tmp_path / "v.mkv", "matroska", extra_video=hevc / "stranger.mp4")
    for extra in ((), ("--video-only",)):
        assert reasons(keys, attack, extra=extra) == ["framing"] * 4
    attack = rewrite_packets(hevc / "alice.mp4", tmp_path / "a.mp4", "mp4", audio=True)
    assert reasons(keys, attack) == ["framing"] * 4
    assert reasons(keys, attack, extra=("--video-only",)) == ["ok"] * 4
    # the camera's samples described by another stream's hvcC (its VPS, SPS, PPS): strict
    # players decode with those
    attack = rewrite_packets(hevc / "alice.mp4", tmp_path / "s.mp4", "mp4", template=hevc / "other.mp4")
    assert reasons(keys, attack) == ["framing"] * 4
    result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(attack))
    assert b"sample description holds 2 unit(s) the camera did not tag" in result.stdout  # SPS, PPS


@pytest.mark.slow
def test_a_segment_is_never_read_as_the_other_codec(work: Path, hevc: Path, keys: Path, tmp_path: Path) -> None:
    """H.265 samples in a track described as H.264 (avcC), and H.264 samples in an H.265 track
    (hvcC): a decoder would read each as the other codec. Every segment is refused."""
    for src, template, what in ((hevc / "alice.mp4", work / "alice.mp4", b"an H.265 segment in an H.264 track"),
                                (work / "alice.mp4", hevc / "alice.mp4", b"an H.264 segment in an H.265 track")):
        for fmt, name in (("mp4", "x.mp4"), ("matroska", "x.mkv")):
            attack = rewrite_packets(src, tmp_path / name, fmt, template=template)
            assert reasons(keys, attack) == ["framing"] * 4, (what, name)
            result = run_cli("verify", "--keyring", str(keys / "alice-ring.json"), str(attack))
            assert what in result.stdout
            assert all(data is None for _, data in opened(str(attack), keys))
    # Annex-B: an H.265 segment's tag is an H.265 SEI; given an H.264 SEI header it is no tag
    camera = segbind.tagged_segments((hevc / "alice.h265").read_bytes())
    swapped = camera[1].replace(b"\x00\x00\x00\x01\x4e\x01\x05", b"\x00\x00\x00\x01\x06\x05", 1)
    (tmp_path / "x.h265").write_bytes(camera[0] + swapped + b"".join(camera[2:]))
    got = reasons(keys, tmp_path / "x.h265")
    assert got[0] == "ok" and "ok" not in got[1:2], got
