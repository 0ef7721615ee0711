"""``segbind.open`` and ``segbind verify`` on every kind of source (issue 12 item 6, issue 10
item 2): a path, an http(s) URL (HLS, finished or live, and media files), a pipe, bytes, several
files; verdicts as segments arrive; accepted segments hand on exactly the camera's bytes with
their time span, refused ones nothing.

The live tests publish a playlist one media segment at a time and wait for the verdict of
each before publishing the next: a verifier that held verdicts back would hang them (every
wait is bounded).
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

import segbind
from host_sim import clips
from segbind import Epoch, InputError, Keyring, Reason
from segbind.write import remux_annexb, write_hls
from tests.support import run_cli
from tests.support.media import cut, ffmpeg, http_server, live_playlist, publish, tag_recording
from tests.support.tagged import keyring_of, strip_tag

WAIT_S = 60
T0 = 1_795_000_000_000


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory):
    """A recording of 6 one-second segments, encrypted and tagged as the camera does; its keyring
    file; the segments; their plaintexts (the encoder's, cut by the camera's segmenter); the same
    stream as fMP4 HLS, MPEG-TS HLS and MP4 written by segbind's own writer."""
    d = tmp_path_factory.mktemp("open")
    epoch = Epoch.of_pairing(os.urandom(32), "alice", "cam-5", 1, [])
    keyring_of(epoch).save(d / "ring.json")
    video = clips.encode_pyav(frames=150, gop=25, seed=6)
    segments = tag_recording(epoch, video, T0, T0)
    (d / "rec.h264").write_bytes(b"".join(segments))
    for kind in ("fmp4", "ts"):
        (d / kind).mkdir()
        write_hls(str(d / "rec.h264"), str(d / kind / "vod.m3u8"), kind, 1.0)
    remux_annexb(str(d / "rec.h264"), str(d / "rec.mp4"), "mp4")
    remux_annexb(str(d / "rec.h264"), str(d / "rec.mkv"), "matroska")
    ffmpeg("-i", str(d / "rec.mp4"), "-c", "copy", str(d / "rec.flv"))
    return d, Keyring.load(d / "ring.json"), segments, [s.data for s in cut(video)]


def results(source, ring: Keyring, **options) -> List[tuple]:
    """(verdict, the segment as the camera emitted it, what a decoder is handed without the tag,
    its capture time and duration) for each segment ``segbind.open`` finds."""
    with segbind.open(source, ring, **options) as media:
        return [(r.reason, r.protected, r.data and strip_tag(r.data), r.capture_ms, r.duration_ms) for r in media]


def test_every_source_gives_the_camera_segments_and_their_time_span(camera) -> None:
    d, ring, segments, plaintexts = camera
    spans = []
    at = T0
    for segment in segments:
        spans.append(at)
        at += 1000
    expected = [(Reason.OK, segment, plain, start, 1000) for segment, plain, start in zip(segments, plaintexts, spans)]
    assert all(strip_tag(s) != p for s, p in zip(segments, plaintexts))  # encrypted in every source
    init = d / "fmp4" / "vod_init.mp4"
    media = sorted((d / "fmp4").glob("vod_0*.m4s"))
    sources = {
        "annexb path": str(d / "rec.h264"), "bytes": (d / "rec.h264").read_bytes(),
        "pipe": io.BufferedReader(io.BytesIO((d / "rec.h264").read_bytes())),
        "mp4 path": d / "rec.mp4", "mp4 pipe": io.BytesIO((d / "rec.mp4").read_bytes()),
        "matroska path": d / "rec.mkv", "flv path": str(d / "rec.flv"),
        "fmp4 hls": str(d / "fmp4" / "vod.m3u8"), "ts hls": str(d / "ts" / "vod.m3u8"),
        "init and media segments": [str(init)] + [str(m) for m in media],
    }
    for name, source in sources.items():
        assert results(source, ring, recording=True) == expected, name
    with http_server(d) as base:
        for path in ("fmp4/vod.m3u8", "ts/vod.m3u8", "rec.h264", "rec.mp4", "ts/vod_00002.ts"):
            got = results(base + "/" + path, ring)
            want = expected[2:3] if path.endswith(".ts") else expected
            assert got == want, path
    # The kind is told by content; a refused segment hands on nothing.
    with segbind.open(str(d / "rec.mp4"), Keyring()) as opened:
        assert opened.kind == "mp4"
        assert [(r.reason, r.data, r.protected) for r in opened] == [(Reason.NO_GRANT, None, None)] * 6
    assert str(Reason.OK) == "ok"


def test_byte_ranges_over_http(camera, tmp_path: Path) -> None:
    """One file holding every media segment, listed by byte range (servers that ignore Range
    are read past the offset)."""
    d, ring, segments, plaintexts = camera
    parts = sorted((d / "ts").glob("vod_*.ts"))
    blob = b"".join(p.read_bytes() for p in parts)
    (tmp_path / "all.ts").write_bytes(blob)
    lines, at = ["#EXTM3U", "#EXT-X-TARGETDURATION:1"], 0
    for p in parts:
        size = p.stat().st_size
        lines += ["#EXTINF:1.0,", "#EXT-X-BYTERANGE:%d@%d" % (size, at), "all.ts"]
        at += size
    (tmp_path / "ranges.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))
    with http_server(tmp_path) as base:
        assert [r[1:3] for r in results(base + "/ranges.m3u8", ring)] == list(zip(segments, plaintexts))
    assert [r[1:3] for r in results(str(tmp_path / "ranges.m3u8"), ring)] == list(zip(segments, plaintexts))


def read_line(proc: subprocess.Popen, timeout: float = WAIT_S) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no verdict within %d s" % timeout
    line = proc.stdout.readline()
    assert line, "verify ended early: %s" % proc.stderr.read()
    return json.loads(line)


@pytest.mark.parametrize("kind, window", [("fmp4", None), ("ts", None), ("fmp4", 2)])
def test_verify_follows_a_live_playlist_over_http(camera, tmp_path: Path, kind: str, window) -> None:
    """An EVENT playlist (or a sliding window of two) grows by one media segment at a time;
    each verdict comes before the next segment is published; the end is ENDLIST."""
    d, ring, segments, plaintexts = camera
    site = tmp_path / "site"
    site.mkdir()
    for f in (d / kind).iterdir():
        if f.suffix != ".m3u8":
            os.link(f, site / f.name)
    vod = d / kind / "vod.m3u8"
    live = site / "live.m3u8"
    publish(live, live_playlist(vod, 1, window))
    with http_server(site) as base:
        proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "verify", "--keyring", str(d / "ring.json"),
                                 "--json", "--recording", "--idle", "30", base + "/live.m3u8"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # MPEG-TS packets end when the next begins: a TS segment's verdict may wait for the next.
            lag = 1 if kind == "ts" else 0
            seen = []
            for count in range(1, len(segments) + 1):
                if count > 1:
                    publish(live, live_playlist(vod, count, window))
                while len(seen) < count - lag:
                    seen.append(read_line(proc))
            publish(live, live_playlist(vod, len(segments), window, ended=True))
            while len(seen) < len(segments):
                seen.append(read_line(proc))
            summary = read_line(proc)
            assert proc.wait(timeout=WAIT_S) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert [v["reason"] for v in seen] == ["ok"] * len(segments)
    assert [v["tag"]["seq"] for v in seen] == list(range(len(segments)))
    assert summary == {"ok": True, "summary": {"ok": len(segments)}}


def test_a_live_playlist_that_stops_growing_ends_after_the_idle_time(camera, tmp_path: Path) -> None:
    d, ring, segments, plaintexts = camera
    for f in (d / "fmp4").iterdir():
        os.link(f, tmp_path / f.name)
    publish(tmp_path / "live.m3u8", live_playlist(d / "fmp4" / "vod.m3u8", 3))
    with http_server(tmp_path) as base:
        started = time.monotonic()
        got = results(base + "/live.m3u8", ring, idle_s=1.5, poll_s=0.2)
        assert time.monotonic() - started < WAIT_S
        assert [r[0] for r in got] == [Reason.OK] * 3
        # As a recording, the missing end is refused.
        got = results(base + "/live.m3u8", ring, idle_s=1.5, poll_s=0.2, recording=True)
        assert [r[0] for r in got] == [Reason.OK] * 3 + [Reason.INCOMPLETE]
        result = run_cli("verify", "--keyring", str(d / "ring.json"), "--idle", "1", base + "/live.m3u8")
        assert result.returncode == 0 and b"ACCEPTED: 3 ok" in result.stdout


def test_unreadable_remote_inputs_are_one_line_errors(camera, tmp_path: Path) -> None:
    d, ring, segments, plaintexts = camera
    (tmp_path / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n")
    (tmp_path / "holes.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nmissing.ts\n#EXT-X-ENDLIST\n")
    (tmp_path / "local.m3u8").write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    (tmp_path / "notvideo.bin").write_bytes(b"hello" * 100)
    with http_server(tmp_path) as base:
        for path, why in (("master.m3u8", b"master playlist"), ("holes.m3u8", b"HTTP 404"),
                          ("nothing.m3u8", b"HTTP 404"), ("local.m3u8", b"not an http(s) URL"),
                          ("notvideo.bin", b"not an H.264 or H.265 stream")):
            result = run_cli("verify", "--keyring", str(d / "ring.json"), base + "/" + path)
            assert result.returncode == 2, (path, result)
            assert why in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        with pytest.raises(InputError, match="master playlist"):
            results(base + "/master.m3u8", ring)
    result = run_cli("verify", "--keyring", str(d / "ring.json"), "http://127.0.0.1:9/x.m3u8")
    assert result.returncode == 2 and b"cannot fetch" in result.stderr


def test_verify_from_a_pipe_gives_each_verdict_as_its_segment_arrives(camera) -> None:
    """``segbind verify -`` fed one segment at a time (as ``segbind tag - -`` writes them): each
    verdict comes before the next segment is written, not when the next tag arrives."""
    d, ring, segments, plaintexts = camera
    proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "verify", "--keyring", str(d / "ring.json"),
                             "--json", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for index, segment in enumerate(segments):
            proc.stdin.write(segment)
            proc.stdin.flush()
            verdict = read_line(proc)
            assert (verdict["segment"], verdict["reason"]) == (index, "ok")
        proc.stdin.close()
        assert read_line(proc)["ok"] is True
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # Containers from a pipe too (an MP4 whose index comes last is read from disk, not memory).
    for name in ("rec.mp4", "ts/vod_00001.ts"):
        result = run_cli("verify", "--keyring", str(d / "ring.json"), "-", stdin=(d / name).read_bytes())
        assert result.returncode == 0 and (b"ACCEPTED: %d ok" % (6 if name == "rec.mp4" else 1)) in result.stdout
