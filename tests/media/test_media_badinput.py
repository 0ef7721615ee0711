"""Bad input (issue item 4): truncated files, segments cut mid-NAL, garbage between NAL
units, empty files, files with no H.264 or H.265 video (audio only, MPEG-2). Each gives a
clear one-line error (exit 2) or a per-segment rejection (exit 1, untagged H.265 too); never
a traceback, never a hang (every command runs under a timeout).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import List, Tuple

import pytest

from host_sim import clips
from segbind import tagged_segments
from segbind_core.nal import annexb_units
from segbind_core.sei import tag_codec
from tests.support import run_cli
from tests.support.media import ffmpeg, tag


@pytest.fixture(scope="module")
def media(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tagged stream in each container, and files that hold no H.264 at all."""
    d = tmp_path_factory.mktemp("bad")
    for name in ("alice.json", "alice-ring.json"):
        shutil.copy(keys / name, d / name)
    tagged = tag(keys, clips.make_kind("ffmpeg-every"), d / "good.h264")
    ffmpeg("-i", str(tagged), "-c", "copy", str(d / "good.mp4"))
    ffmpeg("-i", str(d / "good.mp4"), "-c", "copy", str(d / "good.ts"))
    ffmpeg("-i", str(d / "good.mp4"), "-c", "copy", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
           "-f", "mp4", str(d / "good.fmp4"))
    ffmpeg("-i", str(d / "good.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
           "-hls_segment_filename", str(d / "seg_%03d.ts"), str(d / "good.m3u8"))
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    ffmpeg(*tone, "-c:a", "libmp3lame", str(d / "audio.mp3"))
    ffmpeg(*tone, "-c:a", "aac", "-f", "adts", str(d / "audio.aac"))
    ffmpeg(*tone, "-c:a", "aac", str(d / "audio.m4a"))
    ffmpeg(*tone, "-c:a", "aac", "-f", "mpegts", str(d / "audio.ts"))
    ffmpeg(*tone, str(d / "audio.wav"))
    video = ["-f", "lavfi", "-i", "testsrc2=size=192x112:rate=25", "-frames:v", "30", "-pix_fmt", "yuv420p"]
    x265 = ["-c:v", "libx265", "-x265-params", "log-level=none"]
    ffmpeg(*video, *x265, "-f", "hevc", str(d / "hevc.h265"))
    ffmpeg(*video, *x265, str(d / "hevc.mp4"))
    ffmpeg(*video, *x265, "-f", "mpegts", str(d / "hevc.ts"))
    ffmpeg(*video, "-c:v", "mpeg2video", "-f", "mpegts", str(d / "mpeg2.ts"))
    return d


def run(media: Path, command: str, *files: str, stdin: bytes = b""):
    """Run a command on files of ``media``; check the exit-code contract; return the result."""
    if command == "verify":
        args = ["verify", "--keyring", "alice-ring.json", "--json"]
    elif command == "inspect":
        args = ["inspect", "--json"]
    else:
        args = ["tag", "--epoch", "alice.json"]
    result = run_cli(*args, *files, *(["-", "-"] if command == "tag" else []), stdin=stdin, cwd=media)
    assert b"Traceback" not in result.stderr
    assert result.returncode in (0, 1, 2), result
    if result.returncode == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(b"segbind: error: ")
    return result


def reasons(result) -> List[str]:
    return [json.loads(line)["reason"] for line in result.stdout.splitlines()[:-1]]


@pytest.mark.parametrize("name, why", [
    ("audio.mp3", b"audio only"), ("audio.aac", b"audio only"), ("audio.wav", b"audio only"),
    ("audio.m4a", b"audio only: mp4a"),
    ("audio.ts", b"no H.264 or H.265 video stream in the MPEG-TS (streams: audio (aac"),
    ("mpeg2.ts", b"no H.264 or H.265 video stream in the MPEG-TS (streams: video (mpeg2video"),
])
def test_files_with_no_h264_or_h265_are_one_line_errors(media: Path, name: str, why: bytes) -> None:
    for command in ("verify", "inspect"):
        result = run(media, command, name)
        assert result.returncode == 2 and why in result.stderr, result.stderr
    result = run(media, "tag", stdin=(media / name).read_bytes())
    assert result.returncode == 2 and result.stdout == b""


@pytest.mark.parametrize("name", ["hevc.h265", "hevc.mp4", "hevc.ts"])
def test_untagged_h265_is_read_and_refused_per_segment(media: Path, name: str) -> None:
    """H.265 is read like H.264: untagged, every segment is refused as no_tag (exit 1)."""
    result = run(media, "verify", name)
    assert result.returncode == 1 and set(reasons(result)) == {"no_tag"}, result.stdout
    result = run(media, "inspect", name)
    assert result.returncode == 0
    assert {json.loads(line)["problem"] for line in result.stdout.splitlines()} == {"no_tag"}


NOISE = random.Random(20261128).randbytes  # the same bytes in every process (test ids must match)


@pytest.mark.parametrize("content, why", [
    (b"", b"empty"),
    (NOISE(5000), b"not an H.264"),
    (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n", b"master playlist"),
    (b"#EXTM3U\n#EXTINF:1,\nhttp://example.com/a.ts\n", b"must be local files"),
    (b"#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:1,\nseg_000.ts\n", b"encrypted"),
    (b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nmissing.ts\n", b"no such file"),
    (b"#EXTM3U\n#EXT-X-ENDLIST\n", b"no media segments"),
    (b"\x00\x00\x00\x18styp" + NOISE(200), b"without its init segment"),
    (b"\x00\x00\x00\x20ftypisom" + NOISE(300), b"box before the movie header"),
], ids=lambda value: value.decode() if isinstance(value, bytes) and len(value) < 40 else "")
def test_unreadable_inputs_are_one_line_errors(media: Path, tmp_path: Path, content: bytes, why: bytes) -> None:
    (media / "x.bin").write_bytes(content)
    for command in ("verify", "inspect"):
        result = run(media, command, "x.bin")
        assert result.returncode == 2 and why in result.stderr, result.stderr
        result = run(media, command, "-", stdin=content)
        assert result.returncode == 2


def test_playlist_with_a_segment_missing_is_a_one_line_error(media: Path) -> None:
    text = (media / "good.m3u8").read_text().replace("seg_002.ts", "seg_404.ts")
    (media / "holes.m3u8").write_text(text)
    result = run(media, "verify", "holes.m3u8")
    assert result.returncode == 2 and b"seg_404.ts: no such file" in result.stderr


def segment_units(data: bytes) -> List[List[Tuple[int, int]]]:
    """The (start, end) offsets in ``data`` of the NAL units of each tagged segment."""
    out, at = [], 0
    for segment in tagged_segments(data):
        out.append([(at + s, at + e) for s, e in annexb_units(segment)])
        at += len(segment)
    return out


def test_annexb_cut_mid_nal_refuses_only_the_cut_segment(media: Path) -> None:
    data = (media / "good.h264").read_bytes()
    segments = segment_units(data)
    s, e = segments[-1][-1]
    for cut in (e - 7, (s + e) // 2):
        (media / "cut.h264").write_bytes(data[:cut])
        result = run(media, "verify", "cut.h264")
        assert result.returncode == 1
        assert reasons(result) == ["ok"] * (len(segments) - 1) + ["content_mismatch"]
    # A segment cut mid-NAL in the middle of the stream (the rest of the NAL lost).
    s, e = [u for u in segments[1] if data[u[0]] & 0x1F == 1][2]
    (media / "hole.h264").write_bytes(data[:(s + e) // 2] + data[e:])
    result = run(media, "verify", "hole.h264")
    assert reasons(result) == ["ok", "content_mismatch", "gap", "ok"][:len(segments)]
    # Cut inside the last segment's tag.
    t = segments[-1][1]
    assert tag_codec(data[t[0]:t[1]])
    (media / "tagcut.h264").write_bytes(data[:t[0] + 20])
    result = run(media, "verify", "tagcut.h264")
    assert result.returncode == 1 and reasons(result)[-1] == "malformed_tag"
    assert run(media, "inspect", "tagcut.h264").returncode == 0


@pytest.mark.parametrize("garbage", [b"\xde\xad\xbe\xef" * 8, b"\x00\x00\x01\x65" + bytes(range(1, 200)),
                                     b"\x00\x00\x01\xff\xff", b"\x00\x00\x00\x01\x09\xf0"])
def test_garbage_between_nal_units_refuses_that_segment(media: Path, garbage: bytes) -> None:
    """Any bytes put between two units of a segment refuse it, an access unit delimiter
    too (format 2 covers every unit: a delimiter between slices makes decoders split a
    picture)."""
    data = (media / "good.h264").read_bytes()
    segments = segment_units(data)
    s, e = [u for u in segments[2] if data[u[0]] & 0x1F == 1][4]
    (media / "garbage.h264").write_bytes(data[:e] + garbage + data[e:])
    result = run(media, "verify", "garbage.h264")
    assert reasons(result) == ["ok", "ok", "content_mismatch", "gap"][:len(segments)]
    # Garbage before the first start code is not a stream at all.
    (media / "lead.h264").write_bytes(b"\x13\x37" + data)
    assert b"not an H.264" in run(media, "verify", "lead.h264").stderr


@pytest.mark.parametrize("name", ["good.ts", "good.fmp4", "good.mp4", "seg_001.ts"])
def test_truncated_containers_refuse_or_error_in_one_line(media: Path, name: str) -> None:
    data = (media / name).read_bytes()
    total = len(reasons(run(media, "verify", "good.h264")))
    for fraction in (0.3, 0.55, 0.8, 0.97):
        (media / "trunc.bin").write_bytes(data[:int(len(data) * fraction)])
        result = run(media, "verify", "trunc.bin")
        if result.returncode == 2:
            # Plain MP4 keeps its index (moov) at the end: nothing to read before it.
            assert name == "good.mp4" and b"cut short inside 'mdat'" in result.stderr
            continue
        got = reasons(result)
        assert 1 <= len(got) <= total
        # The cut segment is refused: as changed content, or (a sample cut inside a unit) as framing.
        assert all(r in ("ok", "gap", "no_tag") for r in got[:-1]) and got[-1] in ("ok", "content_mismatch",
                                                                                   "framing")
        if name != "seg_001.ts" and len(got) > 1:
            assert got[0] == "ok"
        if fraction == 0.97:
            assert len(got) == total or name == "seg_001.ts"


def test_corrupted_ts_packets_refuse_only_their_segment(media: Path) -> None:
    data = bytearray((media / "good.ts").read_bytes())
    rng = random.Random(7)
    middle = len(data) // 2 // 188 * 188
    for k in range(middle + 4, middle + 188 * 3, 188):  # payloads of three packets, headers intact
        for i in range(k + 20, k + 180):
            data[i] = rng.randrange(256)
    (media / "noisy.ts").write_bytes(bytes(data))
    got = reasons(run(media, "verify", "noisy.ts"))
    refused = [r for r in got if r not in ("ok", "gap")]
    assert refused and set(refused) <= {"content_mismatch", "malformed_tag", "no_tag", "framing"}, got
    assert got[0] == "ok" and "mac_mismatch" not in got


def test_tag_rejects_containers_and_keeps_one_line(media: Path) -> None:
    for name in ("good.ts", "good.mp4", "good.m3u8"):
        result = run(media, "tag", stdin=(media / name).read_bytes())
        assert result.returncode == 2 and b"segbind tag reads H.264 or H.265 Annex-B" in result.stderr
    result = run(media, "tag", stdin=(media / "good.h264").read_bytes())
    assert result.returncode == 2 and b"already carries a segbind tag" in result.stderr
    # Start codes but no picture at all.
    result = run(media, "tag", stdin=b"\x00\x00\x00\x01\x06\x05\x01\x80" * 3)
    assert result.returncode == 2 and b"no H.264 pictures" in result.stderr
