"""``segbind tag`` stops cleanly on a pipe too: Ctrl-C while it waits for the encoder, or
``--seconds``, closes the segment in progress (marked as the stream's end) and every closed
segment is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from host_sim import clips
from segbind import Keyring
from tests.support import run_cli
from tests.support.media import decrypted, verify
from tests.support.rtsp import wait_until


def tags_of(path) -> list:
    result = run_cli("inspect", "--json", str(path))
    return [json.loads(line)["tag"] for line in result.stdout.splitlines() if json.loads(line).get("tag")]


def writer(fifo, data: bytes, release: threading.Event) -> threading.Thread:
    """An encoder that writes ``data`` and then keeps its end open until ``release``."""
    def run() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        try:
            os.write(fd, data)
            release.wait(60)
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_on_a_fifo_closes_and_writes_every_segment(keys, tmp_path):
    video = clips.encode_pyav(frames=60, gop=20, seed=12)
    fifo, out = tmp_path / "encoder.fifo", tmp_path / "tagged.h264"
    os.mkfifo(fifo)
    release = threading.Event()
    thread = writer(fifo, video, release)
    proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "tag", "--epoch", str(keys / "alice.json"),
                             str(fifo), str(out)], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: out.exists() and len(tags_of(out)) >= 2, 60, "two segments written")
        proc.send_signal(signal.SIGINT)  # the encoder is still there, silent: tag waits on its pipe
        _out, stderr = proc.communicate(timeout=30)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
        thread.join(10)
    assert proc.returncode == 0 and b"(stopped)" in stderr, stderr.decode()
    tags = tags_of(out)
    assert [t["pictures"] for t in tags] == [20, 20, 20] and tags[-1]["end_of_stream"]
    code, verdicts = verify(keys, "alice-ring.json", str(out))
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * 3
    owner = Keyring.load(keys / "alice-ring.json")  # what the owner's decoder gets: verified, decrypted
    assert clips.decode_hashes_pyav(decrypted(out.read_bytes(), owner)) == clips.decode_hashes_pyav(video)


def test_seconds_ends_a_pipe_that_stays_open(keys, tmp_path):
    video = clips.encode_pyav(frames=30, gop=10, seed=13)
    fifo, out = tmp_path / "encoder.fifo", tmp_path / "tagged.h264"
    os.mkfifo(fifo)
    release = threading.Event()
    thread = writer(fifo, video, release)
    try:
        result = run_cli("tag", "--epoch", str(keys / "alice.json"), "--seconds", "2", str(fifo), str(out))
    finally:
        release.set()
        thread.join(10)
    assert result.returncode == 0, result.stderr.decode()
    tags = tags_of(out)
    assert sum(t["pictures"] for t in tags) == 30 and tags[-1]["end_of_stream"]
    assert run_cli("tag", "--epoch", str(keys / "alice.json"), "--seconds", "0", str(fifo), "x").returncode == 2
