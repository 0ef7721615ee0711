"""The agent's RTSP input against a real RTSP server: gst-rtsp-server from Debian, serving what
real encoders made (libx264 and libx265 clips, GStreamer's live x264enc), packetized by
GStreamer's own rtph264pay / rtph265pay, pulled by ``segbind tag rtsp://...`` (the agent's
core and its RTSP input, standing in for a camera).

What it shows: the tagged output verifies for the owner (and not for a stranger) and
decodes to the very frames of the server's source (framemd5); TCP and UDP; Basic and
Digest, credentials in no message; loss injected between server and agent by a fault
proxy (dropped, reordered, duplicated RTP packets) and a server restart give gap verdicts
and never a tagged picture that did not arrive whole; Ctrl-C and --seconds stop cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_sim import clips
from segbind_core.tag import CODEC_H264, CODEC_H265
from tests.support import run_cli
from tests.support.media import verify
from tests.support.rtsp import (
    DROP,
    PASS,
    FaultProxy,
    RtspServer,
    encode,
    file_launch,
    hold,
    live_launch,
    rtp_header,
    wait_until,
)

pytestmark = pytest.mark.slow

FRAMES, GOP = 100, 20
USER, PASSWORD = "viewer", "s3cret-Pa55"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Clips from real encoders (x264enc, x265enc; B-frames), 4 s each, an IDR every 20
    pictures, and their frames as ffmpeg decodes them (framemd5): codec -> (file, frames)."""
    directory = tmp_path_factory.mktemp("sources")
    out = {}
    for codec, name in ((CODEC_H264, "h264.mkv"), (CODEC_H265, "h265.mkv")):
        path = encode(directory / name, codec, FRAMES, GOP)
        out[codec] = (path, clips.decode_hashes_ffmpeg(b"", path=str(path)))
    return out


def mounts(sources):
    return {"/h264": file_launch(sources[CODEC_H264][0], CODEC_H264),
            "/h265": file_launch(sources[CODEC_H265][0], CODEC_H265),
            "/live": live_launch(CODEC_H264)}


@pytest.fixture(scope="module")
def server(sources, tmp_path_factory):
    with RtspServer(mounts(sources), log=tmp_path_factory.mktemp("server") / "gst.log") as s:
        yield s


FMT = {CODEC_H264: "h264", CODEC_H265: "hevc"}
PATH = {CODEC_H264: "/h264", CODEC_H265: "/h265"}


def tag(keys: Path, url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    result = run_cli("tag", "--epoch", str(keys / "alice.json"), *extra, url, str(out))
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def inspect(path: Path) -> list:
    result = run_cli("inspect", "--json", str(path))
    return [json.loads(line)["tag"] for line in result.stdout.splitlines() if json.loads(line).get("tag")]


def each_segment_decodes_to_source_pictures(segments: list, source_frames: list, fmt: str) -> list:
    """Every tagged segment, decoded on its own, gives pictures of the source and nothing else:
    a picture tagged without all of its packets would decode to other pixels (or not at all)."""
    decoded = []
    for data in segments:
        frames = clips.decode_hashes_ffmpeg(data, fmt)
        assert frames and set(frames) <= set(source_frames)
        decoded += frames
    return decoded


def tagged_segments(keys: Path, path: Path) -> list:
    """The owner's view of each tagged segment: verified, then decrypted (format 3 encrypts
    every picture; a segment the owner refuses fails the test)."""
    import segbind

    with segbind.open(path.read_bytes(), segbind.Keyring.load(keys / "alice-ring.json")) as media:
        results = list(media)
    assert results and all(r.accepted for r in results), [r.verdict.reason.value for r in results]
    return [r.data for r in results]


def plaintext(keys: Path, path: Path) -> bytes:
    return b"".join(tagged_segments(keys, path))


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_H265], ids=["h264", "h265"])
def test_tcp_stream_verifies_for_the_owner_and_decodes_to_the_source_frames(server, sources, keys, tmp_path, codec):
    out = tmp_path / "tagged"
    started_ms = time.time() * 1000
    result = tag(keys, server.url(PATH[codec]), out)
    assert result.returncode == 0, result.stderr.decode()
    segments = FRAMES // GOP
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * segments, verdicts
    code, verdicts = verify(keys, "bob-ring.json", str(out))
    assert code == 1 and {v["reason"] for v in verdicts} == {"no_grant"}
    assert clips.decode_hashes_ffmpeg(plaintext(keys, out), FMT[codec]) == sources[codec][1]
    assert not set(clips.decode_hashes_ffmpeg(out.read_bytes(), FMT[codec])) & set(sources[codec][1])  # encrypted
    tags = inspect(out)
    assert [t["pictures"] for t in tags] == [GOP] * segments and tags[-1]["end_of_stream"]
    # capture times: the encoder's clock (RTP timestamps, 40 ms a picture), anchored to the wall
    # clock (the first packet's arrival, then the server's sender reports: a step of a few ms)
    captures = [t["capture_ms"] for t in tags]
    assert started_ms - 1000 < captures[0] < started_ms + 5000
    assert all(abs((b - a) - GOP * 40) <= 200 for a, b in zip(captures, captures[1:])), captures
    assert b"0 lost, 0 gap(s)" in result.stderr


def test_udp_transport(server, sources, keys, tmp_path):
    out = tmp_path / "udp.h264"
    result = tag(keys, server.url("/h264"), out, "--transport", "udp")
    assert result.returncode == 0, result.stderr.decode()
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and {v["reason"] for v in verdicts} <= {"ok", "gap"}, verdicts
    source = sources[CODEC_H264][1]
    decoded = each_segment_decodes_to_source_pictures(tagged_segments(keys, out), source, "h264")
    if b" 0 gap(s)" in result.stderr:  # loopback UDP usually loses nothing: then every frame is there
        assert decoded == source


@pytest.mark.parametrize("method", ["basic", "digest"])
def test_credentials_basic_and_digest_and_never_in_a_message(sources, keys, tmp_path, method):
    auth = {"user": USER, "password": PASSWORD, "method": method}
    with RtspServer({"/h264": file_launch(sources[CODEC_H264][0], CODEC_H264)}, auth=auth) as s:
        out = tmp_path / "ok.h264"
        result = tag(keys, s.url("/h264", USER, PASSWORD), out, "--seconds", "1.5")
        assert result.returncode == 0, result.stderr.decode()
        assert PASSWORD.encode() not in result.stderr and b"rtsp://***@127.0.0.1" in result.stderr
        assert verify(keys, "alice-ring.json", str(out))[0] == 0
        for url, words in ((s.url("/h264", USER, "wrong-" + PASSWORD), b"refused the credentials"),
                           (s.url("/h264"), b"needs credentials")):
            result = tag(keys, url, tmp_path / "refused.h264")
            assert result.returncode == 2 and words in result.stderr, result.stderr
            assert PASSWORD.encode() not in result.stderr and len(result.stderr.strip().splitlines()) == 2
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD + "\n")
        result = tag(keys, s.url("/h264", USER), tmp_path / "file.h264", "--seconds", "1",
                     "--password-file", str(password_file))
        assert result.returncode == 0, result.stderr.decode()


class AccessUnitFaults:
    """A proxy's decisions by access unit (counted by RTP timestamp, in sending order):
    ``faults`` maps (access unit, packet in it) to DROP, "dup" or hold(n)."""

    def __init__(self, faults: dict) -> None:
        self.faults = faults
        self.access_unit, self.timestamp, self.packet = -1, None, 0
        self.done = []

    def __call__(self, number: int, packet: bytes):
        _seq, ts, _marker = rtp_header(packet)
        if ts != self.timestamp:
            self.access_unit, self.timestamp, self.packet = self.access_unit + 1, ts, 0
        else:
            self.packet += 1
        decision = self.faults.get((self.access_unit, self.packet), PASS)
        if decision != PASS:
            self.done.append((self.access_unit, self.packet))
        return decision


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_H265], ids=["h264", "h265"])
def test_dropped_packets_give_a_gap_and_no_picture_tagged_without_all_its_packets(server, sources, keys, tmp_path,
                                                                                 codec):
    # A P picture loses its first packet (45); then the IDR at 60 loses one of its fragments:
    # the segment in progress closes at picture 44, and tagging resumes at the IDR at 80.
    faults = AccessUnitFaults({(45, 0): DROP, (60, 1): DROP})
    out = tmp_path / "lossy"
    with FaultProxy(server.port, faults) as proxy:
        result = tag(keys, proxy.url(PATH[codec]), out)
    assert result.returncode == 0, result.stderr.decode()
    assert faults.done == [(45, 0), (60, 1)] and len(proxy.dropped) == 2
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok", "ok", "ok", "gap"], verdicts
    assert [v["tag"]["seq"] for v in verdicts] == [0, 1, 2, 4]
    assert [v["tag"]["pictures"] for v in verdicts] == [GOP, GOP, 5, GOP]
    source = sources[codec][1]
    decoded = each_segment_decodes_to_source_pictures(tagged_segments(keys, out), source, FMT[codec])
    assert len(decoded) == 2 * GOP + 5 + GOP and decoded[-GOP:] == source[-GOP:]
    assert b"2 lost, 2 gap(s)" in result.stderr or b"2 lost, 1 gap(s)" in result.stderr, result.stderr


def test_reordered_and_duplicated_packets_are_repaired(server, sources, keys, tmp_path):
    faults = AccessUnitFaults({(0, 2): hold(3), (20, 1): hold(5), (33, 0): "dup", (61, 0): hold(1)})
    out = tmp_path / "reordered.h264"
    with FaultProxy(server.port, faults) as proxy:
        result = tag(keys, proxy.url("/h264"), out)
    assert result.returncode == 0, result.stderr.decode()
    assert len(faults.done) == 4 and len(proxy.held) == 3
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * (FRAMES // GOP), verdicts
    assert clips.decode_hashes_ffmpeg(plaintext(keys, out), "h264") == sources[CODEC_H264][1]


def test_a_server_restart_is_a_gap_and_the_stream_is_taken_again(sources, keys, tmp_path):
    out = tmp_path / "restart.h264"
    with RtspServer({"/h264": file_launch(sources[CODEC_H264][0], CODEC_H264)}) as s:
        proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "tag", "--epoch", str(keys / "alice.json"),
                                 s.url("/h264"), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: out.exists() and out.stat().st_size > 0, 20, "the first segment")
            s.restart()  # killed: its session dies with it; the agent reconnects and plays it again
            _stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert b"trying again" in stderr
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    reasons = [v["reason"] for v in verdicts]
    assert code == 0 and reasons.count("gap") == 1 and set(reasons) == {"ok", "gap"}, verdicts
    assert reasons[-FRAMES // GOP] == "gap"  # the second session: the clip again, from its first IDR
    source = sources[CODEC_H264][1]
    decoded = each_segment_decodes_to_source_pictures(tagged_segments(keys, out), source, "h264")
    assert decoded[-FRAMES:] == source


def test_ctrl_c_and_seconds_stop_cleanly_with_every_segment_written(server, keys, tmp_path):
    out = tmp_path / "live.h264"
    proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "tag", "--epoch", str(keys / "alice.json"),
                             server.url("/live"), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: out.exists() and len(inspect(out)) >= 2, 30, "two segments")
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"(stopped)" in stderr, stderr.decode()
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and {v["reason"] for v in verdicts} == {"ok"} and len(verdicts) >= 3
    tags = inspect(out)
    assert tags[-1]["end_of_stream"] and not any(t["end_of_stream"] for t in tags[:-1])
    assert len(clips.decode_hashes_ffmpeg(plaintext(keys, out), "h264")) == sum(t["pictures"] for t in tags)
    out = tmp_path / "seconds.h264"
    started = time.monotonic()
    result = tag(keys, server.url("/live"), out, "--seconds", "2")
    assert result.returncode == 0 and time.monotonic() - started < 20, result.stderr.decode()
    tags = inspect(out)
    assert tags and tags[-1]["end_of_stream"] and sum(t["pictures"] for t in tags) >= 25


def test_what_cannot_work_is_one_clear_line(server, keys, tmp_path):
    for url, words in ((server.url("/nothing-here"), b"404"), ("rtsp://127.0.0.1:1/x", b"connection failed"),
                       ("rtsp://u:pw@127.0.0.1:99999/x", b"bad port")):
        result = tag(keys, url, tmp_path / "none.h264")
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert result.stderr.decode().splitlines()[-1].startswith("segbind: error: ")
        assert b"pw@" not in result.stderr
