"""The agent's RTSP input against servers that misbehave (a scripted TCP server, no media
framework): what is not RTSP, a server that never answers, one that sends only another
source's packets, one that drops the connection while playing. Each gives one clear line,
the reader goes on trying (or, for ``segbind tag``, gives up before any video), nothing
raises, and a session that played ends with a loss the agent turns into a gap."""

from __future__ import annotations

import socket
import threading
from typing import Callable, List

from host_sim import streamer
from segbind_agent.rtsp import EOF, RtspReader, RtspSettings
from segbind_core.rtp import AccessUnit, Loss
from segbind_core.tag import CODEC_H264

SDP = ("v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       "a=fmtp:96 packetization-mode=1\r\na=control:stream=0\r\n").encode()


class ScriptedServer:
    """Accepts connections; ``script(connection)`` plays the server's side of each."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.script = script
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


def answer_requests(conn: socket.socket, until: str = "PLAY") -> None:
    """Answers OPTIONS, DESCRIBE, SETUP and PLAY as a server would (RTP-Info's seq 100)."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        method = head.split(b" ", 1)[0].decode()
        cseq = [line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                if line.lower().startswith(b"cseq")][0]
        extra = ""
        body = b""
        if method == "DESCRIBE":
            extra, body = "Content-Type: application/sdp\r\nContent-Length: %d\r\n" % len(SDP), SDP
        elif method == "SETUP":
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=005E6B1D\r\nSession: 1\r\n"
        elif method == "PLAY":
            extra = "Session: 1\r\nRTP-Info: url=rtsp://127.0.0.1/x/stream=0;seq=100;rtptime=0\r\n"
        conn.sendall(("RTSP/1.0 200 OK\r\nCSeq: %s\r\n%s\r\n" % (cseq, extra)).encode() + body)
        if method == until:
            return


def interleaved(packets: List[bytes]) -> bytes:
    return b"".join(b"$\x00" + len(p).to_bytes(2, "big") + p for p in packets)


def run(script: Callable[[socket.socket], None], seconds: float = 3.0, give_up: bool = False):
    server = ScriptedServer(script)
    items: list = []
    reader = RtspReader("rtsp://viewer:hunter2@127.0.0.1:%d/x" % server.port,
                        RtspSettings(timeout_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.2), items.append,
                        reopen=False, give_up_before_video=give_up)
    stop = threading.Timer(seconds, reader.stop)
    stop.start()
    try:
        reader.serve()
    finally:
        stop.cancel()
        server.close()
    return reader, items, server


def test_what_is_not_rtsp_is_one_line_and_tried_again():
    reader, items, server = run(lambda conn: (conn.recv(4096), conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")),
                                seconds=1.5)
    assert reader.error == "neither an RTSP response nor a request"
    assert server.connections >= 2 and items == [] and "hunter2" not in reader.error
    reader, items, server = run(lambda conn: (conn.recv(4096), conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")),
                                give_up=True)
    assert server.connections == 1 and items == []  # segbind tag: an error before any video


def test_a_server_that_never_answers_or_sends_only_foreign_packets_times_out():
    reader, _items, _server = run(lambda conn: (conn.recv(4096), threading.Event().wait(3)), give_up=True)
    assert reader.error == "no answer to the session's set-up within 1 s"

    def foreign(conn: socket.socket) -> None:
        answer_requests(conn)
        aus = streamer.access_units(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x65\x88" + b"\x07" * 5000, CODEC_H264)
        packets = streamer.packetize(aus, CODEC_H264, seq=100, ssrc=0x0BADF00D)  # not the SSRC SETUP gave
        for _ in range(40):
            conn.sendall(interleaved(packets))
            threading.Event().wait(0.05)

    reader, items, _server = run(foreign, give_up=True)
    assert reader.error == "no video for 1 s" and items == []


def test_a_connection_dropped_while_playing_ends_in_a_loss():
    video = (b"\x00\x00\x00\x01\x67\x42\xc0\x1e\x95\xa8\x28\x0f\x69\xb8\x00\x00\x00\x01\x68\xce\x3c\x80"
             + b"".join(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x65\x88" + bytes([k]) * 3000 for k in range(10)))
    packets, aus = streamer.rtp_stream(video, CODEC_H264, seq=100)

    def play_then_drop(conn: socket.socket) -> None:
        answer_requests(conn)
        conn.sendall(interleaved(packets[:-1]))  # the last access unit cut short: the streamer died

    reader, items, server = run(play_then_drop, seconds=1.5)
    given = [i.units for i in items if isinstance(i, AccessUnit)]
    assert given and all(units in aus for units in given) and aus[-1] not in given
    losses = [i for i in items if isinstance(i, Loss)]
    assert losses and losses[-1].why == "disconnected" and "hunter2" not in losses[-1].detail
    assert EOF not in items and server.connections >= 2  # tried again
    assert reader.error == "the server closed the connection"
