"""RTP video in: packets to whole access units, losses seen, capture times (pure code).

A streamer that owns the encoder (prudynt, majestic, live555, gst-rtsp-server) sends
each access unit as RTP packets: H.264 per RFC 6184 (single NAL unit, STAP-A, FU-A;
packetization modes 0 and 1) and H.265 per RFC 7798 (single NAL unit, AP, FU; without
DONL). ``VideoReceiver`` is fed those packets (and RTCP) as bytes, in the order they
arrive, and gives back, in order:

- ``AccessUnit``: every NAL unit of one access unit (escaped, without start codes), its
  RTP timestamp and its capture time in ms since 1970. An access unit is given only when
  it is known whole: the next packet in sequence carries another timestamp, or, where the
  sender's marker bits have proved trustworthy, its last packet carries the marker bit
  and nothing of it can be missing;
- ``Loss``: packets missing from the sequence (or malformed, or an access unit over the
  memory bound). The access unit in progress is dropped, and so are the packets after
  the loss until the next access unit begins (the first packets after a gap may be the
  tail of an access unit whose head was lost). What depends on the lost pictures is not
  this module's business: the agent's segmenter waits for a random access point.

So an access unit given is never one that lost a packet, whatever the loss, reordering,
duplication or garbage. Packets are put back in sequence order within ``reorder_packets``;
a missing packet not filled by then is lost. Capture times come from the RTP timestamp
(90 kHz), anchored to the wall clock by the server's RTCP sender reports (NTP time of a
given RTP timestamp) where they come and are plausible, else to the arrival time of the
session's first packet.

Memory: the packets held for reordering (at most ``reorder_packets``, each at most 64
KiB) and the access unit in progress (at most ``max_access_unit_bytes``).
"""

import struct

from . import h264, h265
from .tag import CODEC_H264, CODEC_H265

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional, Sequence, Union

    from .nal import Buffer

    Event = Union["AccessUnit", "Loss"]
except ImportError:
    pass

RTP_VERSION = 2
VIDEO_CLOCK_RATE = 90000
NTP_UNIX_OFFSET_S = 2208988800  # 1900-01-01 to 1970-01-01
# A sender report whose wall clock is further than this from the camera's own is not
# believed (a streamer whose NTP field counts from its start, not from 1900).
MAX_SENDER_CLOCK_SKEW_MS = 10 * 60 * 1000
REORDER_PACKETS = 32
MAX_ACCESS_UNIT_BYTES = 4 * 1024 * 1024
MAX_UNITS_PER_ACCESS_UNIT = 4096

# Packets behind the sequence in a row that mean the sender started its numbering again.
LATE_RUN_RESTART = 64

# Why a Loss was reported (``Loss.why``).
LOST = "lost"                    # sequence numbers missing
RESTARTED = "restarted"          # the sender's sequence numbers started again
MALFORMED = "malformed"          # a packet of the access unit could not be read
TOO_LARGE = "too_large"          # an access unit over max_access_unit_bytes (or units)
ENDED = "ended"                  # the session ended with an access unit not known whole

# H.264 payload structures (RFC 6184 section 5.2) and H.265 ones (RFC 7798 section 4.4).
_H264_STAP_A = 24
_H264_FU_A = 28
_H265_AP = 48
_H265_FU = 49


class RtpError(ValueError):
    """A packet or a session description this receiver cannot take; ``reason`` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RtpPacket:
    """One RTP packet's header fields and its payload (a view of the packet's bytes)."""

    __slots__ = ("seq", "timestamp", "marker", "payload_type", "ssrc", "payload")

    def __init__(self, seq: int, timestamp: int, marker: bool, payload_type: int, ssrc: int,
                 payload: "Buffer") -> None:
        self.seq = seq
        self.timestamp = timestamp
        self.marker = marker
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.payload = payload


def parse_rtp(data: "Buffer") -> RtpPacket:
    """An RTP packet (RFC 3550 section 5.1); RtpError when it is not one."""
    if len(data) < 12:
        raise RtpError(MALFORMED, "an RTP packet of %d bytes" % len(data))
    first, second, seq, timestamp, ssrc = struct.unpack_from("!BBHII", data, 0)
    start, end = _payload_range(data, first)
    view = data if isinstance(data, memoryview) else memoryview(data)
    return RtpPacket(seq, timestamp, bool(second & 0x80), second & 0x7F, ssrc, view[start:end])


def _payload_range(data: "Buffer", first: int) -> "tuple[int, int]":
    """Where an RTP packet's payload lies, past its CSRCs and extension, before its padding."""
    n = len(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(MALFORMED, "RTP version %d" % (first >> 6))
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if start + 4 > n:
            raise RtpError(MALFORMED, "RTP header extension cut short")
        start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
    end = n
    if first & 0x20:  # padding: its count is the last byte
        pad = data[n - 1]
        if pad == 0:
            raise RtpError(MALFORMED, "RTP padding of 0 bytes")
        end -= pad
    if start > end:
        raise RtpError(MALFORMED, "RTP header and padding longer than the packet")
    return start, end


class SenderReport:
    """An RTCP sender report: the sender's wall clock (``ntp_ms``, ms since 1970) at RTP
    timestamp ``rtp_timestamp``."""

    __slots__ = ("ssrc", "ntp_ms", "rtp_timestamp")

    def __init__(self, ssrc: int, ntp_ms: int, rtp_timestamp: int) -> None:
        self.ssrc = ssrc
        self.ntp_ms = ntp_ms
        self.rtp_timestamp = rtp_timestamp


def parse_rtcp(data: "Buffer") -> "tuple[list[SenderReport], list[int]]":
    """(sender reports, SSRCs saying goodbye) of a compound RTCP packet (RFC 3550 section 6);
    RtpError when it is malformed. Other packet types are skipped."""
    reports: "list[SenderReport]" = []
    byes: "list[int]" = []
    pos, n = 0, len(data)
    if n < 4:
        raise RtpError(MALFORMED, "an RTCP packet of %d bytes" % n)
    while pos < n:
        if pos + 4 > n:
            raise RtpError(MALFORMED, "RTCP packet header cut short")
        first, kind, words = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != RTP_VERSION:
            raise RtpError(MALFORMED, "RTCP version %d" % (first >> 6))
        end = pos + 4 * (words + 1)
        if end > n:
            raise RtpError(MALFORMED, "RTCP packet longer than its datagram")
        if kind == 200 and end - pos >= 28:  # SR: ssrc, NTP seconds and fraction, RTP timestamp
            ssrc, seconds, fraction, rtp_ts = struct.unpack_from("!IIII", data, pos + 4)
            ms = (seconds - NTP_UNIX_OFFSET_S) * 1000 + ((fraction * 1000) >> 32)
            reports.append(SenderReport(ssrc, ms, rtp_ts))
        elif kind == 203:  # BYE: the sources leaving
            count = first & 0x1F
            if pos + 4 + 4 * count > end:
                raise RtpError(MALFORMED, "RTCP BYE lists more sources than it holds")
            for k in range(count):
                byes.append(struct.unpack_from("!I", data, pos + 4 + 4 * k)[0])
        pos = end
    return reports, byes


class AccessUnit:
    """One whole access unit: its NAL units (escaped, no start codes), RTP timestamp (extended
    past 32 bits), capture time (ms since 1970) and size in bytes."""

    __slots__ = ("units", "timestamp", "capture_ms", "size")

    def __init__(self, units: "list[bytes]", timestamp: int, capture_ms: int, size: int) -> None:
        self.units = units
        self.timestamp = timestamp
        self.capture_ms = capture_ms
        self.size = size

    def __repr__(self) -> str:
        return "AccessUnit(%d units, %d bytes, ts %d)" % (len(self.units), self.size, self.timestamp)


class Loss:
    """Video lost before it reached the camera's agent: ``packets`` known missing (0 when
    none is missing but what arrived cannot be used), ``why`` (LOST, MALFORMED,
    TOO_LARGE, ENDED) and a ``detail`` for the log."""

    __slots__ = ("packets", "why", "detail")

    def __init__(self, packets: int, why: str, detail: str) -> None:
        self.packets = packets
        self.why = why
        self.detail = detail

    def __repr__(self) -> str:
        return "Loss(%d packets, %s: %s)" % (self.packets, self.why, self.detail)


class _Depacketizer:
    """NAL units out of one codec's RTP payloads, in order; FU fragments joined.

    ``take(data, start, end)`` returns the units the payload ``data[start:end]`` completed,
    or raises RtpError (MALFORMED) for a payload that breaks its RFC; ``reset()`` forgets a
    unit in progress (after a loss). ``fragment_open`` is True while a fragmented unit
    waits for its end.
    """

    def __init__(self, codec: int) -> None:
        if codec not in (CODEC_H264, CODEC_H265):
            raise ValueError("codec is CODEC_H264 or CODEC_H265")
        self.h264 = codec == CODEC_H264
        self._parts: "Optional[list[Buffer]]" = None  # the fragmented unit in progress, joined at its end
        self._header = 0  # its reconstructed header's size
        self.ignored = 0  # payloads of reserved types, skipped as the RFCs say

    @property
    def fragment_open(self) -> bool:
        return self._parts is not None

    def reset(self) -> None:
        self._parts = None

    def take(self, p: bytes, start: int, end: int) -> "list[bytes]":
        if self.h264:
            if end - start < 1:
                raise RtpError(MALFORMED, "an empty H.264 payload")
            b0 = p[start]
            if b0 & 0x80:
                raise RtpError(MALFORMED, "an H.264 payload with the forbidden bit set (damaged)")
            kind = b0 & 0x1F
            if kind == _H264_FU_A:
                if end - start < 2:
                    raise RtpError(MALFORMED, "an FU-A without its FU header")
                fu = p[start + 1]
                inner = fu & 0x1F
                if not 1 <= inner <= 23:
                    raise RtpError(MALFORMED, "an FU-A fragment of NAL unit type %d" % inner)
                return self._fragmented(p, start + 2, end, fu, bytes(((b0 & 0xE0) | inner,)))
            if self._parts is not None:
                raise RtpError(MALFORMED, "a fragmented NAL unit without its end fragment")
            if 1 <= kind <= 23:
                return [p[start:end]]
            if kind == _H264_STAP_A:
                return _aggregated(p, start + 1, end, 1)
            if kind in (25, 26, 27, 29):
                raise RtpError(MALFORMED, "an interleaved-mode H.264 payload (type %d): packetization-mode 2 "
                               "is not supported" % kind)
            self.ignored += 1  # 0, 30, 31: reserved; receivers ignore them (RFC 6184 section 5.4)
            return []
        if end - start < 2:
            raise RtpError(MALFORMED, "an H.265 payload of %d bytes" % (end - start))
        b0, b1 = p[start], p[start + 1]
        if b0 & 0x80:
            raise RtpError(MALFORMED, "an H.265 payload with the forbidden bit set (damaged)")
        if b1 & 0x07 == 0:
            raise RtpError(MALFORMED, "an H.265 payload header with TID 0")
        kind = (b0 >> 1) & 0x3F
        if kind == _H265_FU:
            if end - start < 3:
                raise RtpError(MALFORMED, "an H.265 FU without its FU header")
            fu = p[start + 2]
            inner = fu & 0x3F
            if inner in (_H265_AP, _H265_FU, 50):
                raise RtpError(MALFORMED, "an H.265 FU fragment of type %d" % inner)
            return self._fragmented(p, start + 3, end, fu, bytes(((b0 & 0x81) | (inner << 1), b1)))
        if self._parts is not None:
            raise RtpError(MALFORMED, "a fragmented NAL unit without its end fragment")
        if kind < _H265_AP:
            return [p[start:end]]
        if kind == _H265_AP:
            return _aggregated(p, start + 2, end, 2)
        if kind == 50:
            raise RtpError(MALFORMED, "an H.265 PACI payload: not supported")
        self.ignored += 1  # 51-63: reserved; receivers ignore them (RFC 7798 section 4.4)
        return []

    def _fragmented(self, p: bytes, start: int, end: int, fu: int, header: bytes) -> "list[bytes]":
        parts = self._parts
        if fu & 0x80:  # the start fragment
            if parts is not None:
                raise RtpError(MALFORMED, "a fragmented NAL unit begins before the previous one ended")
            parts = self._parts = [header]
            self._header = len(header)
        elif parts is None:
            raise RtpError(MALFORMED, "a middle or end fragment without its start")
        if end > start:
            # Views where bytes.join takes them (CPython: one copy, at the end), else copies.
            parts.append(memoryview(p)[start:end] if _JOIN_TAKES_VIEWS else p[start:end])
        if not fu & 0x40:
            return []
        self._parts = None
        if len(parts) == 1:
            raise RtpError(MALFORMED, "a fragmented NAL unit with no payload")
        return [b"".join(parts)]


def _aggregated(p: bytes, pos: int, n: int, min_unit: int) -> "list[bytes]":
    """The units of an STAP-A (H.264) or AP (H.265, no DONL) in ``p[pos:n]``: 16-bit size, unit, ..."""
    units = []
    if pos >= n:
        raise RtpError(MALFORMED, "an aggregation packet with no NAL unit")
    while pos < n:
        if pos + 2 > n:
            raise RtpError(MALFORMED, "an aggregation packet's unit size cut short")
        size = (p[pos] << 8) | p[pos + 1]
        pos += 2
        if size < min_unit or pos + size > n:
            raise RtpError(MALFORMED, "an aggregated NAL unit of %d bytes at %d of %d" % (size, pos, n))
        if p[pos] & 0x80:
            raise RtpError(MALFORMED, "an aggregated NAL unit with the forbidden bit set (damaged)")
        units.append(p[pos:pos + size])
        pos += size
    return units


def _join_takes_views() -> bool:
    try:
        return b"".join([memoryview(b"x")]) == b"x"
    except TypeError:  # MicroPython joins only bytes
        return False


_JOIN_TAKES_VIEWS = _join_takes_views()


def _h264_kind(unit: bytes) -> int:
    return unit[0] & 0x1F


def _h265_kind(unit: bytes) -> int:
    return (unit[0] >> 1) & 0x3F


def seq_distance(seq: int, base: int) -> int:
    """How far 16-bit sequence number ``seq`` is after ``base`` (negative: before it)."""
    d = (seq - base) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class VideoReceiver:
    """One RTP video session in: packets and RTCP as bytes, ``AccessUnit``\\ s and ``Loss``\\ es out.

    ``codec``            CODEC_H264 or CODEC_H265 (from the session description)
    ``payload_type``     the RTP payload type to take (others are ignored), or None for any
    ``parameter_sets``   the description's sprop-* units: put at the start of the session's
                         first access unit where it lacks a unit of their type
    ``first_seq``        the sequence number the session starts at (RTSP RTP-Info), when
                         known: packets before it are ignored, a gap after it is a loss, and
                         its packet begins the first access unit when its first NAL unit can
                         only begin one. Unknown, the first access unit taken is the first
                         that begins with a delimiter or after a timestamp change.
    ``ssrc``             the sender's SSRC (RTSP Transport), when known; else the first
                         packet's. Packets of other sources are ignored.
    ``clock_rate``       RTP timestamp units per second (90000 for video)

    ``rtp(packet, now_ms)`` and ``rtcp(packet, now_ms)`` take datagrams (or interleaved
    frames' payloads); ``end()`` says the session ended: what it still holds is judged
    (an access unit whose end cannot be known is a Loss). Every call returns the events
    in order. Counters: ``packets``, ``ignored`` (malformed headers, other sources or
    payload types, reserved payloads), ``late`` (duplicates and packets behind the
    sequence), ``lost`` (packets).
    """

    def __init__(self, codec: int, payload_type: "Optional[int]" = None,
                 parameter_sets: "Sequence[bytes]" = (), first_seq: "Optional[int]" = None,
                 ssrc: "Optional[int]" = None, clock_rate: int = VIDEO_CLOCK_RATE,
                 reorder_packets: int = REORDER_PACKETS,
                 max_access_unit_bytes: int = MAX_ACCESS_UNIT_BYTES) -> None:
        if reorder_packets < 0 or max_access_unit_bytes < 1 or clock_rate < 1:
            raise ValueError("reorder_packets >= 0, max_access_unit_bytes and clock_rate > 0")
        self.codec = codec
        self.payload_type = payload_type
        self.parameter_sets = [bytes(u) for u in parameter_sets]
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.reorder_packets = reorder_packets
        self.max_access_unit_bytes = max_access_unit_bytes
        self._depacketizer = _Depacketizer(codec)
        self._expected = first_seq  # the next sequence number to take
        self._first_seq = first_seq
        # packets ahead of a gap, by sequence number: (timestamp, marker, packet, payload start, end)
        self._held: "dict[int, tuple[int, int, bytes, int, int]]" = {}
        self._held_bytes = 0
        # Before the first access unit, or after a loss: packets are dropped until an access
        # unit begins (the timestamp changes, or the packet after a marker; the session's
        # first packet, when its first NAL unit can only begin an access unit).
        self._resync = True
        self._resync_ts: "Optional[int]" = None
        self._au: "list[bytes]" = []
        self._au_ts: "Optional[int]" = None
        self._au_bytes = 0
        self._au_packets = 0
        self._au_markers = 0  # packets of the access unit in progress with the marker bit
        self._au_last_marked = False
        # The sender's marker bits are believed (an access unit ends at its marker even when
        # the packet after it is lost) once an access unit of several packets ended with
        # the marker on its last packet only, and never after a packet of an access unit
        # followed its marker.
        self._markers_proven = False
        self._markers_broken = False
        self._sets_given = False  # the sprop-* units went into the first access unit
        self._started = False  # a packet was taken in sequence order
        self._late_run = 0  # packets behind the sequence in a row
        self._ts_ext: "Optional[int]" = None  # the last timestamp seen, extended past 32 bits
        self._anchor: "Optional[tuple[int, int]]" = None  # (extended timestamp, ms since 1970)
        self.anchored_by_rtcp = False
        self.ended = False
        self.packets = 0
        self.ignored = 0
        self.late = 0
        self.lost = 0
        self.byes = 0

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes held: packets waiting for their turn and the access unit in progress
        (its fragment included)."""
        return self._held_bytes + self._au_bytes

    @property
    def held_packets(self) -> int:
        return len(self._held)

    # -- input ------------------------------------------------------------------------------

    def rtp(self, data: "Buffer", now_ms: int) -> "list[Event]":
        """One RTP packet as it arrived; the events it completes."""
        out: "list[Event]" = []
        if not isinstance(data, bytes):
            data = bytes(data)
        if self.ended or len(data) < 12:
            self.ignored += 1
            return out
        first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data, 0)
        if first == 0x80:  # no CSRC, extension or padding: nearly every packet
            start, end = 12, len(data)
        else:
            try:
                start, end = _payload_range(data, first)
            except RtpError:
                # A packet with no readable header cannot be placed: if it was one of the
                # stream's, its sequence number is missing and shows as a loss.
                self.ignored += 1
                return out
        if ((self.payload_type is not None and second & 0x7F != self.payload_type)
                or (self.ssrc is not None and ssrc != self.ssrc)):
            self.ignored += 1
            return out
        self.packets += 1
        if seq == self._expected and not self._held and self._anchor is not None:  # nearly every packet
            self._late_run = 0
            self._in_order(seq, ts, second & 0x80, data, start, end, out)
            return out
        if self.ssrc is None:
            self.ssrc = ssrc
        if self._anchor is None:
            self._anchor = (self._extend(ts), now_ms)
        if self._expected is None:
            self._expected = seq
        d = seq_distance(seq, self._expected)
        if d < 0 or seq in self._held:
            self.late += 1  # a duplicate, or behind a gap already given up on
            self._late_run += 1
            if self._late_run <= LATE_RUN_RESTART:
                return out
            # The sender numbers its packets from elsewhere now (it restarted): what it sent
            # before is given up on, and the stream is taken again from this packet.
            self._held = {}
            self._held_bytes = 0
            self._loss(out, 0, RESTARTED, "the sender's sequence numbers started again at %d" % seq)
            self._expected = seq
            d = 0
        self._late_run = 0
        if d > 0:
            self._held[seq] = (ts, second & 0x80, data, start, end)
            self._held_bytes += end - start
            if (len(self._held) > self.reorder_packets or d > 0x4000
                    or self._held_bytes > self.max_access_unit_bytes):
                self._give_up(out)
            return out
        self._in_order(seq, ts, second & 0x80, data, start, end, out)
        self._release_held(out)
        return out

    def rtcp(self, data: "Buffer", now_ms: int) -> "list[Event]":
        """One RTCP packet (compound); sender reports anchor capture times, a BYE from the
        sender ends the session (as ``end``)."""
        try:
            reports, byes = parse_rtcp(data)
        except RtpError:
            self.ignored += 1
            return []
        for report in reports:
            if self.ssrc is not None and report.ssrc == self.ssrc and self._ts_ext is not None:
                if abs(report.ntp_ms - now_ms) <= MAX_SENDER_CLOCK_SKEW_MS:
                    self._anchor = (self._extend(report.rtp_timestamp, keep=False), report.ntp_ms)
                    self.anchored_by_rtcp = True
        if self.ssrc is not None and self.ssrc in byes:
            self.byes += 1
            return self.end()
        return []

    def end(self) -> "list[Event]":
        """The session ended (a BYE, a TEARDOWN, the connection closed). Packets still held
        are taken in order (their gaps lost); the access unit in progress is given when its
        marker bit says it is whole and the sender's marker bits are believed, else lost."""
        out: "list[Event]" = []
        if self.ended:
            return out
        while self._held:
            self._give_up(out)
        if self._au:
            if self._au_last_marked and self._markers_believed() and not self._depacketizer.fragment_open:
                self._emit(out)
            else:
                self._drop(out, 0, ENDED, "the session ended inside an access unit")
        self._depacketizer.reset()
        self.ended = True
        return out

    # -- sequence order ---------------------------------------------------------------------

    def _give_up(self, out: "list[Event]") -> None:
        """The packets missing before the earliest held one are lost; take from there."""
        expected = self._expected if self._expected is not None else 0
        first = min(self._held, key=lambda s: seq_distance(s, expected))
        missing = seq_distance(first, expected)
        self.lost += missing
        self._loss(out, missing, LOST, "%d RTP packet(s) missing from sequence number %d"
                   % (missing, expected))
        self._expected = first
        self._release_held(out)

    def _release_held(self, out: "list[Event]") -> None:
        held = self._held
        while held:
            seq = self._expected
            packet = held.pop(seq, None) if seq is not None else None
            if seq is None or packet is None:
                return
            ts, marker, data, start, end = packet
            self._held_bytes -= end - start
            self._in_order(seq, ts, marker, data, start, end, out)

    # -- access units -----------------------------------------------------------------------

    def _in_order(self, seq: int, ts: int, marker: int, data: bytes, start: int, end: int,
                  out: "list[Event]") -> None:
        """Take the next packet in sequence order (its payload is ``data[start:end]``)."""
        self._expected = (seq + 1) & 0xFFFF
        if self._resync:
            if not self._resynced(seq, ts, marker, memoryview(data)[start:end]):
                return
            self._started = True
        au_ts = self._au_ts
        if au_ts != ts:
            if au_ts is not None:  # the next access unit begins: the one before it is whole
                if self._depacketizer.fragment_open:
                    self._drop(out, 0, MALFORMED, "a fragmented NAL unit did not end in its access unit")
                elif self._au:
                    self._judge_markers()
                    self._emit(out)
            self._au_ts = ts
            self._au_packets = 0
            self._au_markers = 0
        elif self._au_last_marked:
            self._markers_broken = True  # more of an access unit after its marker
        self._au_packets += 1
        if marker:
            self._au_markers += 1
            self._au_last_marked = True
        else:
            self._au_last_marked = False
        try:
            units = self._depacketizer.take(data, start, end)
        except RtpError as exc:
            self._unusable(out, MALFORMED, str(exc), ts, bool(marker))
            return
        if units:
            self._au += units
        size = self._au_bytes = self._au_bytes + end - start
        if size > self.max_access_unit_bytes or len(self._au) > MAX_UNITS_PER_ACCESS_UNIT:
            self._unusable(out, TOO_LARGE, "an access unit over %d bytes or %d NAL units"
                           % (self.max_access_unit_bytes, MAX_UNITS_PER_ACCESS_UNIT), ts, bool(marker))

    def _resynced(self, seq: int, ts: int, marker: int, payload: "Buffer") -> bool:
        """After a loss (or before the first access unit): True when this packet begins an
        access unit; else it is dropped, and True comes once the timestamp changes or a
        believed marker bit ended the access unit."""
        if self._begins_with_delimiter(payload) or (
                not self._started and seq == self._first_seq and self._begins_access_unit(payload)):
            # A delimiter is always an access unit's first unit; the session's first packet
            # (RTP-Info's) is taken where its first unit can only begin one.
            self._resync = False
            self._resync_ts = None
            return True
        if self._resync_ts is None:
            self._resync_ts = ts
        if ts == self._resync_ts:
            if marker and self._markers_believed():
                self._resync_ts = None
                self._resync = False  # the next packet begins an access unit
            self._started = True
            return False
        self._resync = False  # another timestamp: this packet begins an access unit
        self._resync_ts = None
        return True

    def _begins_with_delimiter(self, payload: "Buffer") -> bool:
        """True when a payload's first NAL unit is an access unit delimiter (alone, or first in
        an aggregation packet)."""
        if self.codec == CODEC_H264:
            if len(payload) < 1:
                return False
            kind = payload[0] & 0x1F
            if kind == _H264_STAP_A:
                return len(payload) > 3 and payload[3] & 0x1F == h264.NAL_AUD
            return kind == h264.NAL_AUD
        if len(payload) < 2:
            return False
        kind = (payload[0] >> 1) & 0x3F
        if kind == _H265_AP:
            return len(payload) > 4 and (payload[4] >> 1) & 0x3F == h265.NAL_AUD
        return kind == h265.NAL_AUD

    def _begins_access_unit(self, payload: "Buffer") -> bool:
        """True when a payload's first NAL unit can only begin an access unit: a delimiter,
        parameter set or SEI, or the first slice of a picture (the whole unit, or the start
        fragment of one)."""
        if self.codec == CODEC_H264:
            if len(payload) < 2:
                return False
            kind = payload[0] & 0x1F
            head = 1
            if kind == _H264_STAP_A:
                if len(payload) < 4:
                    return False
                kind, head = payload[3] & 0x1F, 4
            elif kind == _H264_FU_A:
                if len(payload) < 3 or not payload[1] & 0x80:
                    return False
                kind, head = payload[1] & 0x1F, 2
            return kind in h264.AU_OPENERS or (h264.is_vcl(kind) and bool(payload[head] & 0x80))
        if len(payload) < 3:
            return False
        kind, head = (payload[0] >> 1) & 0x3F, 2
        if kind == _H265_AP:
            if len(payload) < 7:
                return False
            kind, head = (payload[4] >> 1) & 0x3F, 6
        elif kind == _H265_FU:
            if len(payload) < 4 or not payload[2] & 0x80:
                return False
            kind, head = payload[2] & 0x3F, 3
        return kind in h265.AU_OPENERS or (h265.is_vcl(kind) and bool(payload[head] & 0x80))

    def _markers_believed(self) -> bool:
        return self._markers_proven and not self._markers_broken

    def _judge_markers(self) -> None:
        """An access unit ended by the next one's timestamp: did its marker bit tell the end?"""
        if self._au_last_marked and self._au_markers == 1 and self._au_packets > 1:
            self._markers_proven = True
        elif self._au_markers and not self._au_last_marked:
            self._markers_broken = True

    def _loss(self, out: "list[Event]", packets: int, why: str, detail: str) -> None:
        """Packets are missing here: the access unit in progress goes unless it is known whole
        (its marker bit, believed), then packets are dropped until an access unit begins."""
        if self._au and self._au_last_marked and self._markers_believed() and not self._depacketizer.fragment_open:
            self._emit(out)  # it ended at its marker: the missing packets are the next one's
        self._drop(out, packets, why, detail)
        self._resync = True
        self._resync_ts = None
        self._started = True  # what follows a loss is never taken as the session's first packet

    def _unusable(self, out: "list[Event]", why: str, detail: str, ts: int, marker: bool) -> None:
        """A packet of the access unit in progress cannot be used: the access unit goes, and the
        rest of it (the packets of its timestamp, up to its marker) is dropped too."""
        self._drop(out, 0, why, detail)
        ended_here = marker and self._markers_believed()
        self._resync = not ended_here
        self._resync_ts = None if ended_here else ts

    def _drop(self, out: "list[Event]", packets: int, why: str, detail: str) -> None:
        self._clear_au()
        self._depacketizer.reset()
        out.append(Loss(packets, why, detail))

    def _clear_au(self) -> None:
        """No access unit in progress."""
        self._au = []
        self._au_ts = None
        self._au_bytes = 0
        self._au_packets = 0
        self._au_markers = 0
        self._au_last_marked = False

    def _emit(self, out: "list[Event]") -> None:
        units = self._au
        size = 0
        for unit in units:
            size += len(unit)
        if not self._sets_given and self.parameter_sets:
            units, size = self._with_parameter_sets(units, size)
        self._sets_given = True
        ts = self._extend(self._au_ts if self._au_ts is not None else 0)
        out.append(AccessUnit(units, ts, self.capture_ms(ts), size))
        self._clear_au()

    def _with_parameter_sets(self, units: "list[bytes]", size: int) -> "tuple[list[bytes], int]":
        """The session's first access unit with the description's parameter sets where it lacks
        a unit of their type (after its delimiter, in the description's order)."""
        kind_of = _h264_kind if self.codec == CODEC_H264 else _h265_kind
        present = [kind_of(unit) for unit in units]
        add = [unit for unit in self.parameter_sets if unit and kind_of(unit) not in present]
        if not add:
            return units, size
        aud = h264.NAL_AUD if self.codec == CODEC_H264 else h265.NAL_AUD
        at = 1 if present and present[0] == aud else 0
        return units[:at] + add + units[at:], size + sum(len(unit) for unit in add)

    # -- time -------------------------------------------------------------------------------

    def _extend(self, ts: int, keep: bool = True) -> int:
        """A 32-bit RTP timestamp extended past its wrap, next to the last one seen."""
        last = self._ts_ext
        if last is None:
            ext = ts
        else:
            d = (ts - last) & 0xFFFFFFFF
            ext = last + (d - 0x100000000 if d >= 0x80000000 else d)
        if keep:
            self._ts_ext = ext
        return ext

    def capture_ms(self, extended_ts: int) -> int:
        """When the picture of this (extended) RTP timestamp was captured, ms since 1970."""
        anchor = self._anchor
        if anchor is None:
            return 0
        return anchor[1] + ((extended_ts - anchor[0]) * 1000) // self.clock_rate
