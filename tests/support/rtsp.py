"""A real RTSP server (gst-rtsp-server from Debian) for the tests, and a fault proxy before it.

    with RtspServer({"/h264": file_launch(mkv, CODEC_H264)}) as server:
        url = server.url("/h264")                    # rtsp://127.0.0.1:PORT/h264
        with FaultProxy(server.port, drop=lambda n, packet: n == 40) as proxy:
            url = proxy.url("/h264")                 # the same stream, RTP packet 40 dropped
        server.restart()                             # the streamer restarts, same port

The server runs in Debian's own python3 (python3-gi is not in the venv:
tests/support/gst_rtsp_server.py), on a free loopback port, and dies with the test.
It serves what real encoders made: a clip from GStreamer's x264enc/x265enc (``encode``,
in Matroska so the server paces it at its frame rate), or the same encoders live
(``live_launch``). ``FaultProxy`` is the network between the
streamer and the agent: it passes RTSP through and drops, holds back (reorders) or
duplicates interleaved RTP packets as the test decides.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from host_sim.broker import _die_with_parent, free_port, port_open
from segbind_core.tag import CODEC_H264

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")


def encode(path: Path, codec: int, frames: int, gop: int, bframes: int = 2, width: int = 320, height: int = 240,
           fps: int = 25) -> Path:
    """A clip from GStreamer's own encoders (x264enc, x265enc), B-frames, an IDR every ``gop``
    pictures (closed GOPs), in Matroska: its timestamps pace the server's stream."""
    source = ("videotestsrc num-buffers=%d pattern=smpte horizontal-speed=5 ! video/x-raw,width=%d,height=%d,"
              "framerate=%d/1"
              % (frames, width, height, fps))
    if codec == CODEC_H264:
        encoder = "x264enc bframes=%d b-adapt=false key-int-max=%d ! h264parse" % (bframes, gop)
    else:
        encoder = ("x265enc key-int-max=%d option-string=bframes=%d:open-gop=0:b-adapt=0 ! h265parse"
                   % (gop, bframes))
    launch = "%s ! %s ! matroskamux ! filesink location=%s" % (source, encoder, path)
    result = subprocess.run([SYSTEM_PYTHON, str(SERVER_SCRIPT), "encode", launch], capture_output=True,
                            timeout=300, env=_system_env())
    if result.returncode:
        raise RuntimeError("GStreamer could not encode %s: %s" % (path.name, result.stdout.decode()[-300:]))
    return path


def file_launch(path: Path, codec: int) -> str:
    """A media factory's pipeline: the clip's video, paced, packetized by GStreamer's own
    rtph264pay / rtph265pay (single NAL units, STAP-A/AP, FU-A/FU as their sizes need)."""
    parse, pay = ("h264parse", "rtph264pay") if codec == CODEC_H264 else ("h265parse", "rtph265pay")
    return "( filesrc location=%s ! matroskademux ! %s ! %s name=pay0 pt=96 )" % (path, parse, pay)


def live_launch(codec: int, width: int = 320, height: int = 240, fps: int = 25, bitrate_kbps: int = 500,
                gop: int = 25, pattern: str = "ball") -> str:
    """A live camera: GStreamer's test source encoded as it plays by x264enc or x265enc.
    ``pattern`` "smpte" (colour bars moving) gives every picture detail: the encoder spends
    its whole bitrate."""
    motion = " horizontal-speed=4" if pattern == "smpte" else ""
    source = ("videotestsrc is-live=true pattern=%s%s ! video/x-raw,width=%d,height=%d,framerate=%d/1"
              % (pattern, motion, width, height, fps))
    if codec == CODEC_H264:
        encoder = ("x264enc tune=zerolatency speed-preset=ultrafast bitrate=%d key-int-max=%d ! h264parse "
                   "! rtph264pay name=pay0 pt=96" % (bitrate_kbps, gop))
    else:
        encoder = ("x265enc tune=zerolatency speed-preset=ultrafast bitrate=%d key-int-max=%d ! h265parse "
                   "! rtph265pay name=pay0 pt=96" % (bitrate_kbps, gop))
    return "( %s ! videoconvert ! %s )" % (source, encoder)


class RtspServer:
    """gst-rtsp-server on 127.0.0.1 serving ``mounts`` (path -> pipeline), optionally behind
    Basic or Digest authentication (``auth``: user, password, method)."""

    def __init__(self, mounts: Dict[str, str], auth: Optional[dict] = None, port: Optional[int] = None,
                 shared: bool = False, log: Optional[Path] = None) -> None:
        self.mounts = mounts
        self.auth = auth
        self.port = port or free_port()
        self.shared = shared
        self.log = log
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def url(self, path: str, user: Optional[str] = None, password: Optional[str] = None) -> str:
        credentials = "" if user is None else "%s:%s@" % (user, password) if password is not None else user + "@"
        return "rtsp://%s127.0.0.1:%d%s" % (credentials, self.port, path)

    def start(self, timeout: float = 30.0) -> "RtspServer":
        config = {"port": self.port, "auth": self.auth,
                  "mounts": [{"path": path, "launch": launch, "shared": self.shared}
                             for path, launch in self.mounts.items()]}
        deadline = time.time() + timeout
        while True:
            err = open(self.log, "ab") if self.log else subprocess.DEVNULL
            self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER_SCRIPT), "serve", json.dumps(config)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         preexec_fn=_die_with_parent, env=_system_env())
            if err is not subprocess.DEVNULL:
                err.close()
            line = _read_line(self.proc, deadline)
            if line.startswith("READY"):
                self.starts += 1
                return self
            self.stop()
            if time.time() >= deadline:
                raise RuntimeError("gst-rtsp-server did not start on port %d: %r" % (self.port, line))
            time.sleep(0.3)  # the port may still be held by the previous instance

    def stop(self, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def restart(self, down_s: float = 0.5) -> None:
        """The streamer restarts (killed): its sessions die with it; it listens again on the same port."""
        self.stop(kill=True)
        time.sleep(down_s)
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _system_env() -> dict:
    """The environment for Debian's python3: without the venv's (it must find python3-gi)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["GST_DEBUG"] = env.get("GST_DEBUG", "1")
    return env


def _read_line(proc: subprocess.Popen, deadline: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return data.decode(errors="replace")
        chunk = os.read(fd, 256)
        if not chunk:
            return data.decode(errors="replace") or "exited with %s" % proc.wait()
        data += chunk
    return data.decode(errors="replace").strip()


# -- the network between the streamer and the agent -----------------------------------------------

Decision = Callable[[int, bytes], object]  # (RTP packet number in the connection, packet) -> action
PASS, DROP = "pass", "drop"


def hold(packets: int) -> Tuple[str, int]:
    """A decision: send this packet after the next ``packets`` RTP packets (reordering)."""
    return ("hold", packets)


class FaultProxy:
    """A TCP proxy before an RTSP server that sees the interleaved RTP it carries.

    Requests go to the server unchanged. From the server, RTSP responses pass unchanged
    and each RTP packet on interleaved channel 0 is numbered (from 0, per connection) and
    passed to ``decide(number, packet)``: PASS, DROP, ``hold(n)`` (send it after the next n
    RTP packets) or "dup" (send it twice). RTCP passes. ``dropped``, ``held`` and
    ``connections`` count what it did.
    """

    def __init__(self, upstream_port: int, decide: Optional[Decision] = None) -> None:
        self.upstream_port = upstream_port
        self.decide = decide or (lambda n, packet: PASS)
        self.port = free_port()
        self.dropped: List[int] = []
        self.held: List[int] = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(8)
        self._stopping = False
        self._threads: List[threading.Thread] = []
        self._sockets: List[socket.socket] = []

    def url(self, path: str, user: Optional[str] = None, password: Optional[str] = None) -> str:
        credentials = "" if user is None else "%s:%s@" % (user, password)
        return "rtsp://%s127.0.0.1:%d%s" % (credentials, self.port, path)

    def start(self) -> "FaultProxy":
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()
        for s in list(self._sockets):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.connections += 1
            self._sockets += [client, server]
            self._spawn(self._pipe, client, server)
            self._spawn(self._from_server, server, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close_both(source, sink)

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        buf = bytearray()
        number = 0
        waiting: List[Tuple[int, bytes]] = []  # (RTP packets still to pass before it, frame)
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                buf += data
                out = bytearray()
                while buf:
                    if buf[0] != 0x24:  # an RTSP message: up to its end, Content-Length included
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            break
                        head = bytes(buf[:end]).decode(errors="replace").lower()
                        length = 0
                        for line in head.split("\r\n"):
                            if line.startswith("content-length:"):
                                length = int(line.split(":", 1)[1])
                        if len(buf) < end + 4 + length:
                            break
                        out += buf[:end + 4 + length]
                        del buf[:end + 4 + length]
                        continue
                    if len(buf) < 4 or len(buf) < 4 + ((buf[2] << 8) | buf[3]):
                        break
                    size = (buf[2] << 8) | buf[3]
                    frame = bytes(buf[:4 + size])
                    del buf[:4 + size]
                    if frame[1] != 0:  # RTCP and other channels pass
                        out += frame
                        continue
                    decision = self.decide(number, frame[4:])
                    if decision == DROP:
                        self.dropped.append(number)
                    elif isinstance(decision, tuple) and decision[0] == "hold":
                        self.held.append(number)
                        waiting.append((int(decision[1]), frame))
                    else:
                        out += frame
                        if decision == "dup":
                            out += frame
                    number += 1
                    if decision != DROP and not (isinstance(decision, tuple)):
                        still = []
                        for left, held in waiting:
                            if left <= 1:
                                out += held
                            else:
                                still.append((left - 1, held))
                        waiting = still
                if out:
                    client.sendall(out)
        except OSError:
            pass
        _close_both(server, client)


def _close_both(a: socket.socket, b: socket.socket) -> None:
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def rtp_header(packet: bytes) -> Tuple[int, int, bool]:
    """(sequence number, timestamp, marker) of an RTP packet, for a proxy's decisions."""
    return (packet[2] << 8) | packet[3], int.from_bytes(packet[4:8], "big"), bool(packet[1] & 0x80)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % (what or predicate))
        time.sleep(0.05)


__all__ = ["RtspServer", "FaultProxy", "encode", "file_launch", "live_launch", "hold", "PASS", "DROP",
           "rtp_header", "wait_until", "port_open"]
