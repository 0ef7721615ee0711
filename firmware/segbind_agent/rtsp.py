"""The streamer's RTSP as the agent's input: sessions, keep-alives, reconnects (the I/O edge).

On cameras whose streamer owns the encoder (thingino's prudynt, OpenIPC's majestic) the
encoder's output is served over RTSP on loopback. ``RtspReader`` pulls it: one session
at a time over blocking sockets (``socket`` and ``select.poll`` only, no asyncio; what
MicroPython's unix port has: its thread, logging and monotonic clock are used where they
exist), the protocol in ``segbind_core.rtsp`` and
the packets turned into whole access units by ``segbind_core.rtp.VideoReceiver``. It
hands ``sink`` what the agent's core needs, in order:

- ``AccessUnit``: whole access units with their capture times;
- ``Loss``: video that did not arrive whole (lost, reordered beyond repair or malformed
  packets, an access unit over the bound), and a connection that dropped while playing
  (the streamer restarted): the agent closes its segment and leaves a gap;
- ``EOF``: the streamer ended its stream (an RTCP BYE); with ``reopen`` it is asked again.

A session that fails (refused, timed out, closed) is tried again after a backoff that
doubles from ``reconnect_min_s`` to ``reconnect_max_s``. Credentials are used only in the
Authorization header: logs, errors and ``error`` show the URL as ``rtsp://***@host/path``.
"""

import binascii
import errno
import os
import random
import select
import socket
import time

from segbind_core import rtsp
from segbind_core.rtp import AccessUnit, Loss, VideoReceiver

try:  # CPython: the agent reads on a thread of its own; MicroPython: serve() in the caller's
    import threading
except ImportError:
    threading = None  # type: ignore[assignment]
try:
    import logging

    log = logging.getLogger("segbind_agent")
except ImportError:  # MicroPython without micropython-lib's logging: one line on stderr
    class _Log:
        def _say(self, level: str, message: str, *args: object) -> None:
            print("segbind-agent %s %s" % (level, message % args))

        def info(self, message: str, *args: object) -> None:
            self._say("INFO", message, *args)

        def warning(self, message: str, *args: object) -> None:
            self._say("WARNING", message, *args)

    log = _Log()  # type: ignore[assignment]

_monotonic = getattr(time, "monotonic", time.time)  # MicroPython has no monotonic(): its time()

try:  # for annotations only
    from typing import Any, Callable, List, Optional, Union

    Item = Union[AccessUnit, Loss, None]  # what the sink gets; None is EOF
    Sink = Callable[[Item], None]
    StopCheck = Optional[Callable[[], bool]]
except ImportError:
    pass

EOF = None
POLL_MS = 200
# A non-blocking socket with nothing to read (MicroPython's errno has neither EWOULDBLOCK nor EINTR).
_WOULD_BLOCK = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN), getattr(errno, "EINTR", errno.EAGAIN))
RECV_BYTES = 64 * 1024


class RtspSettings:
    """The ``rtsp`` section of the agent's configuration."""

    def __init__(self, transport: str = "tcp", timeout_s: float = 10.0, reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 10.0, reorder_packets: int = 32,
                 max_access_unit_bytes: int = 4 * 1024 * 1024, password: "Optional[str]" = None) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError("rtsp.transport is tcp or udp")
        if not timeout_s > 0 or not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("rtsp timeouts must be positive, reconnect_min_s <= reconnect_max_s")
        if reorder_packets < 0 or max_access_unit_bytes < 64 * 1024:
            raise ValueError("rtsp.reorder_packets >= 0 and rtsp.max_access_unit_bytes >= 65536")
        self.transport = transport
        self.timeout_s = timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.reorder_packets = reorder_packets
        self.max_access_unit_bytes = max_access_unit_bytes
        self.password = password  # overrides the URL's (from a password file)


def is_rtsp(source: str) -> bool:
    return isinstance(source, str) and source[:7].lower() == "rtsp://"


def display_name(source: str) -> str:
    """What logs and the status may say of a source: an RTSP URL without its credentials."""
    if not is_rtsp(source):
        return source
    try:
        return rtsp.parse_url(source).redacted()
    except rtsp.RtspError:
        return "an unreadable rtsp:// URL"


class _SessionOver(Exception):
    """The session ended: ``ended`` True when the streamer ended its stream cleanly (BYE)."""

    def __init__(self, message: str, ended: bool = False) -> None:
        super().__init__(message)
        self.ended = ended
        self.played = False  # video flowed in the session


class RtspReader:
    """Pulls one RTSP source into ``sink`` (AccessUnit, Loss, EOF), reconnecting as needed.

    ``start()`` runs it on its own thread (the agent); ``serve()`` runs it in the caller's
    (``segbind tag``) until ``stop()`` or, without ``reopen``, the end of the stream (an
    RTCP BYE; a session that fails is tried again). With ``give_up_before_video`` it
    returns, ``error`` set, when a session fails before any video ever flowed.
    ``sink`` may block: the reader then stops reading, and TCP holds the server back.
    """

    def __init__(self, url: str, settings: RtspSettings, sink: "Sink", reopen: bool = True,
                 clock: "Callable[[], float]" = time.time, give_up_before_video: bool = False) -> None:
        self.url = rtsp.parse_url(url)  # RtspError (BAD_URL) at once for a URL that cannot work
        if settings.password is not None:
            self.url.password = settings.password
            if self.url.username is None:
                self.url.username = ""
        self.name_for_logs = self.url.redacted()
        self.settings = settings
        self.sink = sink
        self.reopen = reopen
        self.clock = clock
        self.give_up_before_video = give_up_before_video  # a first session that fails is an error
        self.video_flowed = False
        self.error: "Optional[str]" = None  # the last session's failure, redacted
        self.sessions = 0
        self.playing = False
        self.packets = 0
        self.lost = 0
        self.bytes_read = 0
        self._stopping = False
        self._thread: "Optional[Any]" = None

    def start(self) -> None:
        """``serve()`` on a thread of its own (the agent's reader)."""
        thread = threading.Thread(target=self.serve, name="segbind-rtsp", daemon=True)
        thread.start()
        self._thread = thread

    def stop(self) -> None:
        self._stopping = True

    def join(self, timeout: "Optional[float]" = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def serve(self, should_stop: "StopCheck" = None) -> None:
        """Sessions one after the other until stopped (or, without ``reopen``, the stream's end)."""
        backoff = self.settings.reconnect_min_s
        while not self._stop_asked(should_stop):
            try:
                self._session(should_stop)
                return  # asked to stop
            except _SessionOver as over:
                self.video_flowed = self.video_flowed or over.played
                if over.played:
                    backoff = self.settings.reconnect_min_s
                if over.ended:
                    self.error = None
                    log.info("%s ended its stream", self.name_for_logs)
                    self.sink(EOF)
                    if not self.reopen:
                        return
                else:
                    self.error = rtsp.redact(str(over))
                    if self.give_up_before_video and not self.video_flowed:
                        return  # the caller says why (``error``)
                    log.warning("%s: %s (trying again in %.1f s)", self.name_for_logs, self.error, backoff)
            if self._pause(backoff, should_stop):
                return
            backoff = min(backoff * 2, self.settings.reconnect_max_s)

    def _stop_asked(self, should_stop: "StopCheck") -> bool:
        return self._stopping or (should_stop is not None and should_stop())

    def _pause(self, seconds: float, should_stop: "StopCheck") -> bool:
        """Wait before the next try; True when asked to stop meanwhile."""
        deadline = _monotonic() + seconds
        while not self._stop_asked(should_stop):
            left = deadline - _monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_MS / 1000.0))
        return True

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- one session ------------------------------------------------------------------------

    def _session(self, should_stop: "StopCheck") -> None:
        """One RTSP session, connect to end. Returns when asked to stop; raises _SessionOver
        otherwise."""
        settings = self.settings
        sock: "Optional[socket.socket]" = None
        udp: "List[socket.socket]" = []
        receiver: "Optional[VideoReceiver]" = None
        state = {"played": False}
        self.sessions += 1
        try:
            try:
                sock, peer = _connect(self.url.host, self.url.port, settings.timeout_s)
                ports = None
                if settings.transport == "udp":
                    udp, ports = _udp_pair()
                client = rtsp.ClientSession(self.url, settings.transport, ports,
                                            cnonce=binascii.hexlify(os.urandom(8)).decode())
                _send(sock, client.start())
                poller = select.poll()
                for s in [sock] + udp:
                    poller.register(s, select.POLLIN)
                started = _monotonic()
                last_media = started
                taken = 0
                while True:
                    if self._stop_asked(should_stop):
                        if receiver is not None:  # what is known whole; a picture cut short by the stop is not
                            self._deliver([e for e in receiver.end() if isinstance(e, AccessUnit)], state)
                        try:
                            _send(sock, client.teardown())
                        except OSError:
                            pass
                        return
                    ready = poller.poll(POLL_MS)
                    now = _monotonic()
                    for obj, _event in ready:
                        if _is(obj, sock):
                            data = sock.recv(RECV_BYTES)
                            if not data:
                                raise _SessionOver("the server closed the connection")
                            self.bytes_read += len(data)
                            for event in client.receive(data, self.now_ms()):
                                if isinstance(event, rtsp.Send):
                                    _send(sock, event.data)
                                elif isinstance(event, rtsp.Media):
                                    receiver = self._media(receiver, event.rtcp, event.data, state)
                                elif isinstance(event, rtsp.Playing):
                                    receiver = self._playing(event)
                                    last_media = now
                    if udp and ready:  # every datagram waiting, RTP before RTCP (a BYE comes last)
                        for k, s in enumerate(udp):
                            for data, source in _datagrams(s):
                                if receiver is not None and _host_of(source) == peer:
                                    self.bytes_read += len(data)
                                    receiver = self._media(receiver, k == 1, data, state)
                    if receiver is not None and receiver.packets != taken:
                        taken = receiver.packets  # packets of the stream's own source and payload type:
                        last_media = now          # what else a server sends keeps no session alive
                    if receiver is not None and receiver.ended:
                        raise _SessionOver("the server ended its stream", ended=True)
                    keepalive = client.tick(self.now_ms())
                    if keepalive:
                        _send(sock, keepalive)
                    if receiver is None and now - started > settings.timeout_s:
                        raise _SessionOver("no answer to the session's set-up within %.0f s" % settings.timeout_s)
                    if receiver is not None and now - last_media > settings.timeout_s:
                        raise _SessionOver("no video for %.0f s" % settings.timeout_s)
            except rtsp.RtspError as exc:
                raise _SessionOver(str(exc)) from None
            except OSError as exc:
                reason = getattr(exc, "strerror", None) or errno.errorcode.get(exc.args[0] if exc.args else 0, "") \
                    or type(exc).__name__
                raise _SessionOver("connection failed (%s)" % reason) from None
        except _SessionOver as over:
            over.played = state["played"]
            if receiver is not None and not over.ended:
                self._deliver(receiver.end(), state)
                if state["played"]:
                    self._deliver([Loss(0, "disconnected", "the RTSP session ended: %s" % rtsp.redact(str(over)))],
                                  state)
            raise
        finally:
            self.playing = False
            for opened in ([sock] if sock is not None else []) + udp:
                try:
                    opened.close()
                except OSError:
                    pass

    def _playing(self, playing: "rtsp.Playing") -> VideoReceiver:
        track = playing.track
        s = self.settings
        self.playing = True
        log.info("%s plays %s over %s (payload type %d, %d parameter set(s) in its description)",
                 self.name_for_logs, "H.264" if track.codec == 1 else "H.265", s.transport.upper(),
                 track.payload_type, len(track.parameter_sets))
        return VideoReceiver(track.codec, track.payload_type, track.parameter_sets, playing.first_seq,
                             playing.ssrc, track.clock_rate, s.reorder_packets, s.max_access_unit_bytes)

    def _media(self, receiver: "Optional[VideoReceiver]", rtcp: bool, data: bytes,
               state: "dict[str, bool]") -> "Optional[VideoReceiver]":
        if receiver is None:
            return None
        now_ms = self.now_ms()
        events = receiver.rtcp(data, now_ms) if rtcp else receiver.rtp(data, now_ms)
        if not rtcp:
            self.packets += 1
        if events:
            self._deliver(events, state)
        return receiver

    def _deliver(self, events: "List[Any]", state: "dict[str, bool]") -> None:
        for event in events:
            if isinstance(event, Loss):
                self.lost += event.packets
            else:
                state["played"] = True
            self.sink(event)


def _is(polled: object, sock: "socket.socket") -> bool:
    """poll() names a socket by its file number (CPython) or by the object (MicroPython)."""
    return polled is sock or (isinstance(polled, int) and polled == sock.fileno())


def _datagrams(sock: "socket.socket", most: int = 512) -> "List[Any]":
    """The datagrams waiting on a non-blocking UDP socket, at most ``most``."""
    out: "List[Any]" = []
    while len(out) < most:
        try:
            out.append(sock.recvfrom(RECV_BYTES))
        except OSError as exc:  # EAGAIN: nothing more (MicroPython has no BlockingIOError)
            if exc.args and exc.args[0] in _WOULD_BLOCK:
                break
            raise
    return out


def _connect(host: str, port: int, timeout_s: float) -> "tuple[socket.socket, object]":
    """A TCP connection to the server, and the address it has (UDP media must come from it)."""
    info = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    if not info:
        raise OSError(errno.EHOSTUNREACH, "no address for the host")
    family, kind, proto, _name, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout_s)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock, _host_of(address)


def _host_of(address: object) -> object:
    """The host part of a socket address: a string on CPython; on MicroPython, whose socket
    addresses are bytes, the packed IP address ``socket.sockaddr`` reads out of them."""
    if isinstance(address, tuple):
        return address[0]
    decode = getattr(socket, "sockaddr", None)
    return decode(address)[1] if decode is not None else address


def _bind_address(port: int) -> "Any":
    return socket.getaddrinfo("0.0.0.0", port)[0][-1]  # MicroPython binds only to what this gives


def _send(sock: "socket.socket", data: bytes) -> None:
    if data:
        sock.sendall(data)


def _udp_pair() -> "tuple[List[socket.socket], tuple[int, int]]":
    """Two UDP sockets on consecutive ports, the first even (RTP, then RTCP: RFC 3550), and
    their ports (chosen here: MicroPython's sockets cannot say which port they were given)."""
    for _ in range(64):
        port = 2 * random.randint(16384, 32766)
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp_sock.bind(_bind_address(port))
            rtcp_sock.bind(_bind_address(port + 1))
        except OSError:
            rtp_sock.close()
            rtcp_sock.close()
            continue
        for s in (rtp_sock, rtcp_sock):
            s.setblocking(False)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except (OSError, AttributeError):
                pass
        return [rtp_sock, rtcp_sock], (port, port + 1)
    raise OSError(errno.EADDRINUSE, "no pair of free UDP ports")
