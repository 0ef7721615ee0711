"""segbind's own MPEG-TS reader: the one video elementary stream's PES packets as samples.

It accepts the one reading of a transport stream that FFmpeg (libavformat/mpegts.c), hls.js
(src/demux/tsdemuxer.ts) and Chromium (media/formats/mp2t/) share, and refuses, with a
``Defect``, every packet, table or PES header that one of them reads differently (different
bytes, different times, or a different stream); docs/readers/mpegts.md gives each rule and
the client code behind it. A sample is one PES packet's payload of the video stream, as
Annex-B bytes, with its PTS and DTS (90 kHz, unwrapped).

Speed: a transport stream is mostly packets that are nothing but a 4-byte header and 184
bytes of video. Those are checked in bulk (sync bytes, PIDs, flags and continuity counters
through strided slices, ``bytes.translate`` and big-integer masks) and their payloads taken
in bulk (the read as 4-byte words, every packet's header deleted by one strided ``del``); the
packet that ends a PES (stuffing, then payload) goes with them. Only the packets that differ
(PES starts, other adaptation fields, tables, streams the classifier does not know) go
through the per-packet path, which holds every rule; the tests check that both paths give the
same events. Memory: one read, its payload slots, the sample in progress and the tables.
"""

from __future__ import annotations

import re
from array import array
from typing import IO, Iterator, List, Optional, Set, Tuple

from segbind_core.tag import CODEC_H264, CODEC_H265, CODEC_NAMES

from ..errors import InputError
from .events import FRAMING, MAX_SAMPLE_BYTES, TIMING, Buffer, Defect, Event, Sample, TrackInfo, read_exactly

PACKET = 188
PAYLOAD = 184
SYNC = 0x47
# Packets per read: 96,256 bytes, a multiple of the packet size (no tail on a file), and under
# glibc's first mmap threshold (128 KiB), so that reads and their payload slots come from the heap,
# not from fresh pages: on 1080p H.264, reads of 192 KB and more cost more in page faults than
# in work (docs/readers/mpegts.md, speed).
READ_PACKETS = 512

PAT_PID, CAT_PID, SDT_PID, NULL_PID = 0x0000, 0x0001, 0x0011, 0x1FFF
# PIDs a PMT may give its streams and itself: ISO 13818-1 reserves 0x0001-0x000F, DVB 0x0010-0x001F
# (FFmpeg opens its own SDT and EIT filters on 0x11 and 0x12), 0x1FFF is the null packet.
FIRST_FREE_PID, LAST_FREE_PID = 0x0020, 0x1FFE

STREAM_H264, STREAM_H265 = 0x1B, 0x24
VIDEO_CODECS = {STREAM_H264: (CODEC_H264, "h264"), STREAM_H265: (CODEC_H265, "hevc")}
# Stream types FFmpeg (ISO_types, HLS_SAMPLE_ENC_types) and hls.js read as video.
OTHER_VIDEO_TYPES = {0x01: "mpeg1video", 0x02: "mpeg2video", 0x10: "mpeg4", 0x1B: "h264", 0x20: "h264 (mvc)",
                     0x21: "jpeg2000", 0x24: "hevc", 0x33: "vvc", 0x42: "cavs", 0xD1: "dirac", 0xD2: "avs2",
                     0xD4: "avs3", 0xDB: "h264 (sample-aes)", 0xEA: "vc1"}
AUDIO_TYPES = {0x03: "mp3", 0x04: "mp3", 0x0F: "aac", 0x11: "aac_latm", 0x1C: "aac", 0x81: "ac3", 0x87: "eac3",
               0xC1: "ac3 (sample-aes)", 0xC2: "eac3 (sample-aes)", 0xCF: "aac (sample-aes)"}
STREAM_METADATA = 0x15
ID3 = b"ID3 "

# PES: PTS - DTS beyond this, hls.js's parsePES sets PTS = DTS (60 s at 90 kHz).
MAX_PTS_DELAY = 60 * 90000
WRAP = 1 << 33
HALF_WRAP = 1 << 32

# The regular expression that walks a read's packet classes (``_TsReader.bulk``): a run of plain video
# packets and the packet with an adaptation field that usually ends a PES, or one packet for the
# per-packet path; packets of the other streams (classes 8-128) are passed over.
_WALK = re.compile(rb"\x01+\x04?|[\x00\x02\x04]")
# Continuity counters of video packets in a row, from any start, and the table that keeps only the
# counter of a packet's fourth byte.
_CC_LOW = bytes(i & 15 for i in range(READ_PACKETS + 32))
_LOW_NIBBLE = bytes(i & 15 for i in range(256))
_SYNCS = b"\x47" * (READ_PACKETS + 1)


def _crc32_table() -> Tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc32_table()


def mpeg2_crc32(data: bytes) -> int:
    """CRC-32/MPEG-2 (ISO 13818-1 Annex A) of ``data``: 0 over a whole section with its CRC."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _timestamp(header: bytes, at: int, prefix: int) -> Optional[int]:
    """A 33-bit PES timestamp at ``header[at:at + 5]``, or None when its 4-bit prefix or one of
    its three marker bits is wrong (Chromium's IsTimestampSectionValid refuses the stream then;
    FFmpeg and hls.js read the bits anyway)."""
    first = header[at]
    middle = (header[at + 1] << 8) | header[at + 2]
    last = (header[at + 3] << 8) | header[at + 4]
    if first >> 4 != prefix or not first & middle & last & 1:
        return None
    return ((first >> 1) & 7) << 30 | (middle >> 1) << 15 | last >> 1


def _descriptors_tile(data: bytes, start: int, end: int) -> bool:
    """Whether descriptors (tag, length, body) fill ``data[start:end]`` exactly (Chromium's
    Descriptors::Read refuses a descriptor that runs past its loop, FFmpeg stops reading the PMT)."""
    at = start
    while at < end:
        if at + 2 > end:
            return False
        at += 2 + data[at + 1]
    return at == end


def _id3_described(data: bytes, start: int, end: int) -> bool:
    """Whether a stream's descriptors name it timed ID3 the way FFmpeg reads them
    (registration descriptor 'ID3 ', or a metadata descriptor whose format is 'ID3 ')."""
    at = start
    while at + 2 <= end:
        tag, length = data[at], data[at + 1]
        body = data[at + 2:at + 2 + length]
        if tag == 0x05 and body[:4] == ID3:
            return True
        if tag == 0x26 and len(body) >= 3:
            rest = body[6:] if body[:2] == b"\xff\xff" else body[2:]
            if rest[:1] == b"\xff" and rest[1:5] == ID3:
                return True
        at += 2 + length
    return False


def _head(pkt: bytes) -> bytes:
    """A packet's header without its continuity counter."""
    return pkt[1:3] + bytes((pkt[3] & 0xF0,))


def _stream_id_problem(stream_id: int) -> str:
    """Why a video PES with this stream_id (not 0xE0-0xEF) is refused."""
    text = "stream_id 0x%02x, not a video stream id (0xE0-0xEF): " % stream_id
    if stream_id == 0xBE:
        return text + "a padding stream, which FFmpeg and Chromium drop and hls.js reads as video"
    if stream_id in (0xBC, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF):
        return text + ("FFmpeg reads the 3 header bytes such streams lack as payload, hls.js reads them as a "
                       "header, Chromium drops the PES")
    if 0xC0 <= stream_id <= 0xDF or stream_id == 0xBD:
        return text + ("FFmpeg, hls.js and Chromium read it as video all the same, but ISO 13818-1 gives it to "
                       "audio or private data: refused as malformed")
    return text + "FFmpeg and hls.js read it as video, Chromium drops the PES"


# PES states of the video stream
_WAIT, _HEADER, _BODY, _SKIP = 0, 1, 2, 3


class _Program:
    """The one program as its first PAT and PMT describe it."""

    __slots__ = ("pat", "pat_head", "pat_section", "pmt", "pmt_head", "pmt_section", "program", "pmt_pid",
                 "video_pid", "codec", "codec_name", "others", "other_video", "listed")

    def __init__(self) -> None:
        # each table's first packet (its bytes after the header, and its header without the
        # continuity counter), to pass over unchanged repeats at once; and its section
        self.pat = b""
        self.pat_head = b""
        self.pat_section = b""
        self.pmt = b""
        self.pmt_head = b""
        self.pmt_section = b""
        self.program = 0
        self.pmt_pid = -1
        self.video_pid = -1
        self.codec = 0
        self.codec_name = ""
        self.others: List[str] = []
        self.other_video = False
        self.listed: Set[int] = set()  # the other streams' PIDs and the PCR's


class _TsReader:
    """The reader's state over one stream; ``events`` is the generator."""

    def __init__(self, name: str, bulk: bool = True) -> None:
        self.name = name
        self.use_bulk = bulk  # False: every packet through the per-packet path (the tests compare both)
        self.out: List[Event] = []
        self.program = _Program()
        self.video_pid = -1
        self.stopped = False
        self.samples = 0
        self.defects = 0
        self.offset = 0  # byte offset of the read being processed
        self.early: Set[int] = set()  # PIDs seen before the PMT
        self.waiting: List[Defect] = []  # defects found before the PMT
        # the video PID's packets
        self.last_cc = -1
        self.state = _WAIT
        self.orphans = False  # video payload before the first PES start, reported once per stretch
        # the PES in progress
        self.header = bytearray()
        self.parts: List[Buffer] = []
        self.chunk_parts = 0  # parts[chunk_parts:] are views into the current read
        self.size = 0
        self.declared = 0  # payload bytes its PES_packet_length promises, -1 when unbounded
        self.pts = 0
        self.dts = 0
        self.sync = False
        self.pes_offset = 0
        # timing
        self.last_dts = -1  # unwrapped DTS of the last sample, -1 before the first
        self.last_raw_dts = 0
        # bulk classification tables, once the PMT is known
        self.table_hi = b""
        self.table_lo = b""
        self.table_flags = b""
        # the current read
        self.view: Optional[memoryview] = None  # the read's payload slots (184 bytes a packet)

    # -- events -------------------------------------------------------------------------------

    def defect(self, text: str, reason: str = FRAMING, fatal: bool = False) -> None:
        """A Defect; one found before the PMT waits for the TrackInfo (a fatal one cannot: the
        tables are then unreadable, an InputError)."""
        self.defects += 1
        if self.video_pid < 0:
            self.waiting.append(Defect(text, reason, fatal))
        else:
            self.out.append(Defect(text, reason, fatal))
        if fatal:
            self.stopped = True

    def at(self, index: int) -> str:
        return "at byte %d" % (self.offset + index * PACKET)

    def events(self, stream: IO[bytes]) -> Iterator[Event]:
        read = stream.read
        head = read_exactly(stream, 2 * PACKET + 8)
        self.check_start(head)
        pending = head
        size = READ_PACKETS * PACKET
        while not self.stopped:
            count = len(pending) // PACKET
            if count:
                self.chunk(pending, count)
                self.offset += count * PACKET
                pending = pending[count * PACKET:]
                if self.out:
                    yield from self.out
                    self.out = []
                if self.stopped:
                    return
            more = read(size - len(pending))
            if not more:
                break
            pending = pending + more if pending else more
        if self.stopped:
            yield from self.out
            return
        if pending:
            self.end_pes()
            self.defect("the input ends inside a TS packet (%d of 188 bytes): FFmpeg and hls.js drop it" % len(pending))
        else:
            self.end_pes()
        if not self.program.pmt:
            yield from self.out
            raise InputError("%s: no PAT and PMT describing an H.264 or H.265 stream in the MPEG-TS" % self.name)
        if not self.samples and not self.defects:
            raise InputError("%s: no %s samples in the MPEG-TS" % (self.name, CODEC_NAMES[self.program.codec]))
        yield from self.out

    def check_start(self, head: bytes) -> None:
        if len(head) < PACKET:
            raise InputError("%s: MPEG-TS cut short (%d bytes, less than one packet)" % (self.name, len(head)))
        if head[0] != SYNC or len(head) > PACKET and head[PACKET] != SYNC:
            if len(head) >= 197 and head[4] == SYNC and head[196] == SYNC:
                raise InputError("%s: M2TS (192-byte packets): hls.js cannot play it (its demuxer reads "
                                 "188-byte packets only)" % self.name)
            raise InputError("%s: not MPEG-TS (no 0x47 sync byte every 188 bytes from the start)" % self.name)

    # -- a read of whole packets --------------------------------------------------------------

    def chunk(self, buf: bytes, count: int) -> None:
        end = count * PACKET
        syncs = buf[0:end:PACKET]
        if syncs != _SYNCS[:count]:
            good = len(syncs) - len(syncs.lstrip(b"\x47"))
            self.packets(buf, 0, good)
            if not self.program.pmt:
                raise InputError("%s: MPEG-TS sync lost %s, before its PAT and PMT" % (self.name, self.at(good)))
            if not self.stopped:
                self.defect("sync lost %s (no 0x47 at a packet start): FFmpeg resynchronises, hls.js skips "
                            "the packet, they read different packets" % self.at(good), fatal=True)
            return
        self.view = None
        self.chunk_parts = len(self.parts)
        first = 0
        while self.video_pid < 0 and first < count and not self.stopped:
            self.packet(buf[first * PACKET:first * PACKET + PACKET], first)
            first += 1
        if count > READ_PACKETS or not self.use_bulk:
            self.packets(buf, first, count)
        elif first < count:
            self.bulk(buf, first, count)
        self.end_chunk()

    def end_chunk(self) -> None:
        """Copy the views the PES in progress holds into this read, so the read can go."""
        if len(self.parts) > self.chunk_parts:
            tail = b"".join(self.parts[self.chunk_parts:])
            del self.parts[self.chunk_parts:]
            self.parts.append(tail)
        self.view = None

    def packets(self, buf: bytes, first: int, last: int) -> None:
        for index in range(first, last):
            if self.stopped:
                return
            self.packet(buf[index * PACKET:index * PACKET + PACKET], index)

    def bulk(self, buf: bytes, first: int, count: int) -> None:
        """Classify the read's packets at once (``start_video`` has the tables): 1 a plain video
        packet (header only: the video PID, no start, payload only, clear), 2 a video packet that
        starts a PES, 4 a video packet with an adaptation field, 8-128 a packet of another listed
        stream (passed over), 0 anything else (the per-packet path); then walk them in order."""
        end = count * PACKET
        hi = int.from_bytes(buf[1:end:PACKET].translate(self.table_hi), "little")
        lo = int.from_bytes(buf[2:end:PACKET].translate(self.table_lo), "little")
        flags = buf[3:end:PACKET]
        classes = (hi & lo & int.from_bytes(flags.translate(self.table_flags), "little")).to_bytes(count, "little")
        for match in _WALK.finditer(classes, first):
            if self.stopped:
                return
            start, stop = match.span()
            kind = classes[start]
            if kind == 1:
                self.video_run(buf, flags, start, stop, classes[stop - 1] == 4)
            elif kind:
                self.video_packet(buf[start * PACKET:start * PACKET + PACKET], start)
            else:
                self.packet(buf[start * PACKET:start * PACKET + PACKET], start)

    def video_run(self, buf: bytes, flags: bytes, first: int, last: int, stuffed: bool) -> None:
        """Plain video packets ``first`` to ``last`` (``stuffed``: the last one has an adaptation
        field before its payload, as the packet that ends a PES has): their payloads in bulk, when
        the PES in progress is past its header and their continuity counters follow on."""
        length = last - first
        start = (self.last_cc + 1) & 15
        if self.state != _BODY or self.last_cc < 0 or flags[first:last].translate(_LOW_NIBBLE) != \
                _CC_LOW[start:start + length]:
            self.packets(buf, first, last)
            return
        field = buf[(last - 1) * PACKET + 4] if stuffed else 0
        if field and (field > 182 or buf[(last - 1) * PACKET + 5] & 0x9F):
            # an adaptation field with more than stuffing (a discontinuity, a PCR...): the packet path
            self.video_run(buf, flags, first, last - 1, False)
            self.packet(buf[(last - 1) * PACKET:last * PACKET], last - 1)
            return
        self.last_cc = (start + length - 1) & 15
        view = self.view
        if view is None:
            # every packet's 184 bytes after its 4-byte header, one after the other: the read as
            # 4-byte words, the first of every 47 deleted
            words = array("I")
            words.frombytes(memoryview(buf)[:len(buf) - len(buf) % PACKET])
            del words[0::PACKET // 4]
            view = self.view = memoryview(words).cast("B")
        if not stuffed:
            self.add(view[first * PAYLOAD:last * PAYLOAD])
            return
        if length > 1:
            self.add(view[first * PAYLOAD:(last - 1) * PAYLOAD])
        if field < 183:
            self.add(view[(last - 1) * PAYLOAD + 1 + field:last * PAYLOAD])

    # -- one packet ---------------------------------------------------------------------------

    def packet(self, pkt: bytes, index: int) -> None:
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        program = self.program
        if pkt[1] & 0x80:
            why = ("the packet holds errors, even its PID may be wrong (FFmpeg reads it marked corrupt, hls.js "
                   "reads it or drops the PES by configuration)")
            if pid == PAT_PID or pid == program.pmt_pid:
                self.table_problem("transport_error_indicator set on PID 0x%04x: %s" % (pid, why), index)
                return
            self.defect("transport_error_indicator set on PID 0x%04x %s: %s" % (pid, self.at(index), why))
            if pid == self.video_pid:
                self.drop_pes()
            return
        if pid == self.video_pid:
            self.video_packet(pkt, index)
        elif pid == PAT_PID:
            self.pat_packet(pkt, index)
        elif pid == program.pmt_pid:
            self.pmt_packet(pkt, index)
        elif pid in program.listed or pid == NULL_PID or pid == SDT_PID:
            return
        elif pid == CAT_PID:
            self.defect("a CAT (PID 0x0001) %s: Chromium reads encryption parameters (CENC ECM) from it, "
                        "FFmpeg and hls.js ignore it" % self.at(index))
        elif not program.pmt:
            self.early.add(pid)
        elif pkt[1] & 0x40 and self.payload(pkt)[:3] == b"\x00\x00\x01":
            self.defect("a PES on PID 0x%04x, which the PMT does not list, %s: FFmpeg makes a stream of it, "
                        "hls.js and Chromium ignore it" % (pid, self.at(index)))

    def payload(self, pkt: bytes) -> bytes:
        """The payload of a packet whose adaptation field is well formed."""
        control = (pkt[3] >> 4) & 3
        if not control & 1:
            return b""
        return pkt[5 + pkt[4]:] if control & 2 else pkt[4:]

    def packet_problem(self, pkt: bytes) -> str:
        """What is wrong with a video or table packet's header and adaptation field, or ""."""
        flags = pkt[3]
        if flags & 0xC0:
            return ("transport_scrambling_control %d: bytes declared scrambled, which FFmpeg, hls.js and Chromium "
                    "hand to the decoder as they are and a descrambling client would not" % (flags >> 6))
        control = (flags >> 4) & 3
        if control == 1:
            return ""
        if control == 0:
            return ("adaptation_field_control 00 (reserved): FFmpeg drops the packet, hls.js and Chromium "
                    "read 184 payload bytes")
        if control & 2:
            length = pkt[4]
            if control == 2 and length != 183:
                return ("an adaptation field of %d bytes with no payload: hls.js reads the bytes after it as "
                        "payload, FFmpeg does not, Chromium drops the packet and resynchronises" % length)
            if control == 3 and length > 182:
                return ("an adaptation field of %d bytes before a payload: FFmpeg and hls.js skip the packet, "
                        "its start flag too, Chromium drops it and resynchronises" % length)
            if length:
                field = pkt[5]
                need = 1 + (6 if field & 0x10 else 0) + (6 if field & 0x08 else 0) + (1 if field & 0x04 else 0)
                if field & 0x02 and need < length:
                    need += 1 + pkt[4 + need + 1]
                elif field & 0x02:
                    need += 1
                if field & 0x01 and need < length:
                    need += 1 + pkt[4 + need + 1]
                elif field & 0x01:
                    need += 1
                if need > length:
                    return ("an adaptation field whose flags need %d bytes in %d: Chromium drops the packet "
                            "and resynchronises, FFmpeg and hls.js skip the field by its length" % (need, length))
        return ""

    # -- the video PID ------------------------------------------------------------------------

    def video_packet(self, pkt: bytes, index: int) -> None:
        problem = self.packet_problem(pkt)
        if problem:
            self.defect("video PID 0x%04x %s: %s" % (self.video_pid, self.at(index), problem))
            self.drop_pes()
            self.last_cc = pkt[3] & 15
            return
        control = (pkt[3] >> 4) & 3
        cc = pkt[3] & 15
        discontinuity = control & 2 and pkt[4] and pkt[5] & 0x80
        if self.last_cc >= 0 and not discontinuity:
            expected = (self.last_cc + 1) & 15 if control & 1 else self.last_cc
            if cc != expected:
                what = "a repeated packet" if cc == self.last_cc else "a lost or reordered packet"
                self.defect("video PID 0x%04x %s: continuity counter %d, expected %d (%s): FFmpeg keeps its "
                            "payload marked corrupt, hls.js keeps it or drops the PES by configuration"
                            % (self.video_pid, self.at(index), cc, expected, what))
                self.last_cc = cc
                self.drop_pes()
                return
        self.last_cc = cc
        data = self.payload(pkt)
        if pkt[1] & 0x40:
            if not data:
                self.defect("video PID 0x%04x %s: payload_unit_start_indicator on a packet without payload: "
                            "FFmpeg and hls.js ignore it, Chromium ends the PES there"
                            % (self.video_pid, self.at(index)))
                self.drop_pes()
                return
            self.end_pes()
            self.orphans = False
            self.pes_offset = self.offset + index * PACKET
            self.sync = bool(control & 2 and pkt[4] and pkt[5] & 0x40)
            if len(data) < 9 or len(data) < 9 + data[8]:
                self.state = _HEADER  # the header goes on in the next packet
                self.header = bytearray()
                self.feed_header(data)
                return
            length = 9 + data[8]
            problem = self.pes_problem(data[:length])
            if problem:
                self.defect("a video PES at byte %d: %s" % (self.pes_offset, problem))
                self.state = _SKIP
                return
            self.state = _BODY
            self.parts = [data[length:]] if len(data) > length else []
            self.chunk_parts = 0
            self.size = len(data) - length
            return
        if not data:
            return
        state = self.state
        if state == _BODY:
            self.add(data)
        elif state == _HEADER:
            self.feed_header(data)
        elif state == _WAIT and not self.orphans:
            self.orphans = True
            self.defect("video payload %s before any PES start: every client drops it, hls.js joins it to the "
                        "previous segment's last PES when this is one segment of a playlist" % self.at(index))

    def add(self, data: Buffer) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size > MAX_SAMPLE_BYTES:
            self.defect("a video PES longer than %d bytes (at byte %d): not read" % (MAX_SAMPLE_BYTES, self.pes_offset))
            self.drop_pes()

    def drop_pes(self) -> None:
        """The PES in progress is refused: nothing of it is kept, the video resumes at the next start."""
        self.parts = []
        self.chunk_parts = 0
        self.size = 0
        self.header = bytearray()
        if self.state != _WAIT:
            self.state = _SKIP

    def feed_header(self, data: bytes) -> None:
        header = self.header
        header += data
        if len(header) < 9 or len(header) < 9 + header[8]:
            return
        length = 9 + header[8]
        problem = self.pes_problem(bytes(header[:length]))
        if problem:
            self.defect("a video PES at byte %d: %s" % (self.pes_offset, problem))
            self.drop_pes()
            return
        self.state = _BODY
        self.parts = []
        self.chunk_parts = 0
        self.size = 0
        rest = header[length:]
        self.header = bytearray()
        if rest:
            self.add(bytes(rest))

    def pes_problem(self, header: bytes) -> str:
        """What is wrong with a video PES header (start code to the end of its header data), or "";
        sets the PES's times and declared length when nothing is."""
        if header[:3] != b"\x00\x00\x01":
            return "no 00 00 01 start code: FFmpeg and hls.js drop the PES, Chromium refuses the stream"
        stream_id = header[3]
        if not 0xE0 <= stream_id <= 0xEF:
            return _stream_id_problem(stream_id)
        if header[6] & 0xC0 != 0x80:
            return ("no '10' marker bits before its flags (MPEG-1 syntax): Chromium refuses the stream, FFmpeg and "
                    "hls.js read the header as MPEG-2")
        if header[6] & 0x30:
            return ("PES_scrambling_control %d: bytes declared scrambled, which FFmpeg, hls.js and Chromium hand to "
                    "the decoder as they are and a descrambling client would not" % ((header[6] >> 4) & 3))
        timing = header[7] >> 6
        data_length = header[8]
        if timing == 0:
            return ("no PTS: hls.js gives the picture the previous one's times, FFmpeg guesses them, Chromium "
                    "leaves them unset")
        if timing == 1:
            return "PTS_DTS_flags 01 (forbidden): hls.js reads a PTS and a DTS, FFmpeg and Chromium read none"
        need = 5 if timing == 2 else 10
        if data_length < need:
            return ("PES_header_data_length %d, less than the %d bytes its timestamps take: hls.js reads them from "
                    "the payload, FFmpeg from stale bytes, Chromium refuses the stream" % (data_length, need))
        pts = _timestamp(header, 9, 2 if timing == 2 else 3)
        dts = _timestamp(header, 14, 1) if timing == 3 else pts
        if pts is None or dts is None:
            return ("a PTS or DTS with a wrong prefix or marker bit: Chromium refuses the stream, FFmpeg and "
                    "hls.js read the bits anyway")
        packet_length = (header[4] << 8) | header[5]
        if packet_length and packet_length < 3 + data_length:
            return "PES_packet_length %d, shorter than its own header: Chromium refuses the stream" % packet_length
        self.declared = packet_length - 3 - data_length if packet_length else -1
        self.pts = pts
        self.dts = dts
        return ""

    def end_pes(self) -> None:
        """The PES in progress ends (a new start, or the end of the input): a sample, or a defect."""
        state = self.state
        if state == _HEADER:
            self.defect("a video PES at byte %d ends inside its header: FFmpeg and hls.js drop it, Chromium "
                        "refuses the stream" % self.pes_offset)
        if state != _BODY:
            self.drop_pes()
            return
        parts = self.parts
        data = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        size = self.size
        self.parts = []
        self.chunk_parts = 0
        self.size = 0
        self.state = _SKIP
        where = "a video PES at byte %d" % self.pes_offset
        if self.declared >= 0 and size != self.declared:
            self.defect("%s: PES_packet_length promises %d payload bytes, it carries %d: %s" % (
                where, self.declared, size, "FFmpeg reads them marked corrupt, hls.js and Chromium drop the PES"
                if size < self.declared else "FFmpeg and Chromium read the first %d, hls.js all" % self.declared))
            return
        if not size:
            self.defect("%s: no payload: FFmpeg and hls.js drop it, Chromium refuses the stream" % where)
            return
        if data[:3] != b"\x00\x00\x01" and data[:4] != b"\x00\x00\x00\x01":
            self.defect("%s: its payload does not begin with a start code: hls.js and FFmpeg's parser join its "
                        "first bytes to the previous picture" % where)
            return
        if data[-3:] == b"\x00\x00\x01":
            self.defect("%s: its payload ends with a start code: hls.js and FFmpeg's parser begin a NAL unit "
                        "there that the next PES continues" % where)
            return
        raw_pts, raw_dts = self.pts, self.dts
        delay = (raw_pts - raw_dts) % WRAP
        if delay > MAX_PTS_DELAY:
            self.defect("%s: PTS %d is %s DTS %d: hls.js sets the PTS to the DTS beyond 60 s, FFmpeg keeps it"
                        % (where, raw_pts, "before" if delay >= HALF_WRAP else "more than 60 s after", raw_dts),
                        TIMING)
            return
        if self.last_dts < 0:
            dts = raw_dts
        else:
            step = (raw_dts - self.last_raw_dts) % WRAP
            if step >= HALF_WRAP:
                step -= WRAP
            dts = self.last_dts + step
            if step <= 0:
                self.last_dts, self.last_raw_dts = dts, raw_dts
                self.defect("%s: DTS %d does not follow the previous sample's (%s): FFmpeg decodes in stream "
                            "order, hls.js %s" % (where, raw_dts, "repeated" if step == 0 else "goes back %d ticks"
                                                   % -step, "gives the sample no duration" if step == 0 else
                                                   "sorts the samples by DTS"), TIMING)
                return
        self.last_dts, self.last_raw_dts = dts, raw_dts
        self.samples += 1
        self.out.append(Sample(data, dts + delay, dts, 0, False, self.sync))

    # -- tables -------------------------------------------------------------------------------

    def section(self, pkt: bytes, what: str) -> Tuple[bytes, str]:
        """The one whole section a PAT or PMT packet must hold, or a problem."""
        if not pkt[1] & 0x40:
            return b"", ("a %s packet without payload_unit_start_indicator: hls.js reads a new table from its "
                         "first payload byte, FFmpeg and Chromium continue a section" % what)
        problem = self.packet_problem(pkt)
        if problem:
            return b"", problem
        data = self.payload(pkt)
        if not data:
            return b"", "a %s packet without payload" % what
        if data[0]:
            return b"", ("pointer_field %d: each %s must be one whole section in one packet (FFmpeg adds the "
                         "bytes before it to the previous section, hls.js and Chromium skip them)" % (data[0], what))
        if len(data) < 4:
            return b"", "a %s section cut short" % what
        length = ((data[2] & 0x0F) << 8) | data[3]
        end = 4 + length
        if end > len(data):
            return b"", ("a %s section of %d bytes, longer than its packet: each table must be one section in "
                         "one packet (hls.js reads only the first packet)" % (what, length + 3))
        if data[end:].strip(b"\xff"):
            return b"", ("bytes other than 0xFF stuffing after the %s section: FFmpeg reads another section "
                         "there, hls.js and Chromium do not" % what)
        section = data[1:end]
        if length < 9:
            return b"", "a %s section of %d bytes, too short for its header and CRC" % (what, length + 3)
        if section[1] & 0xC0 != 0x80:
            return b"", ("a %s with section_syntax_indicator 0 or its '0' bit set: Chromium refuses it, FFmpeg "
                         "and hls.js read it" % what)
        if mpeg2_crc32(section):
            return b"", ("a %s whose CRC32 is wrong: hls.js never checks it, FFmpeg drops the table (and takes "
                         "them after ten bad ones on its PID), Chromium refuses the stream" % what)
        if not section[5] & 1:
            return b"", ("a %s with current_next_indicator 0 (not yet valid): FFmpeg ignores it, hls.js applies "
                         "it, Chromium %s" % (what, "ignores it" if what == "PAT" else "applies it"))
        if section[6] or section[7]:
            return b"", ("a %s in several sections (section %d of %d): hls.js reads its first packet, FFmpeg "
                         "each section as the whole table, Chromium %s" % (
                             what, section[6], section[7] + 1, "the first" if what == "PAT" else "refuses the stream"))
        return section, ""

    def table_problem(self, text: str, index: int) -> None:
        """A PAT or PMT that cannot be read one way: before the program is known the input is not
        readable at all; after, the reader cannot go on."""
        if not self.program.pmt:
            raise InputError("%s: %s (%s)" % (self.name, text, self.at(index)))
        self.defect("%s (%s)" % (text, self.at(index)), fatal=True)

    def pat_packet(self, pkt: bytes, index: int) -> None:
        program = self.program
        if pkt[4:] == program.pat and _head(pkt) == program.pat_head:
            return  # the same PAT again, the usual case
        section, problem = self.section(pkt, "PAT")
        if problem:
            self.table_problem("PAT: " + problem, index)
            return
        if program.pat:
            if section != program.pat_section:
                self.table_problem("the PAT changes inside the stream: hls.js switches to the new PMT at once, "
                                   "Chromium keeps the first program, FFmpeg adds the new one's streams", index)
            return
        if section[0] != 0x00:
            self.table_problem("PAT: table_id 0x%02x on PID 0: hls.js reads it as the PAT, FFmpeg ignores it, "
                               "Chromium refuses the stream" % section[0], index)
            return
        length = len(section) - 3
        if length != 13:
            self.table_problem("PAT: %d programs, not exactly one: hls.js takes the first entry, FFmpeg reads "
                               "them all, Chromium refuses the stream" % ((length - 9) // 4), index)
            return
        number = (section[8] << 8) | section[9]
        pmt_pid = ((section[10] & 0x1F) << 8) | section[11]
        if not number:
            self.table_problem("PAT: its one entry is program 0 (the network PID): hls.js takes it as the PMT, "
                               "FFmpeg and Chromium do not", index)
            return
        if not FIRST_FREE_PID <= pmt_pid <= LAST_FREE_PID:
            self.table_problem("PAT: PMT on reserved PID 0x%04x (0x0020-0x1FFE is free)" % pmt_pid, index)
            return
        program.pat, program.pat_head, program.pat_section = pkt[4:], _head(pkt), section
        program.program = number
        program.pmt_pid = pmt_pid

    def pmt_packet(self, pkt: bytes, index: int) -> None:
        program = self.program
        if pkt[4:] == program.pmt and _head(pkt) == program.pmt_head:
            return  # the same PMT again, the usual case
        section, problem = self.section(pkt, "PMT")
        if problem:
            self.table_problem("PMT: " + problem, index)
            return
        if program.pmt:
            if section != program.pmt_section:
                self.table_problem("the PMT changes inside the stream: hls.js switches to its PIDs at once, FFmpeg "
                                   "adds its new streams beside the old, Chromium plays the lowest video PID it has "
                                   "seen", index)
            return
        problem = self.read_pmt(section)
        if problem:
            self.table_problem("PMT: " + problem, index)
            return
        program.pmt, program.pmt_head, program.pmt_section = pkt[4:], _head(pkt), section
        self.start_video()

    def read_pmt(self, section: bytes) -> str:
        """Read the first PMT into the program; a problem when it cannot be read one way."""
        program = self.program
        if section[0] != 0x02:
            return ("table_id 0x%02x on the PMT PID: hls.js reads it as the PMT, FFmpeg ignores it, Chromium "
                    "refuses the stream" % section[0])
        number = (section[3] << 8) | section[4]
        if number != program.program:
            return "program_number %d, the PAT's is %d: FFmpeg and Chromium differ on which they use" % (
                number, program.program)
        end = len(section) - 4
        if end < 12:
            return "a section too short for its header"
        pcr_pid = ((section[8] & 0x1F) << 8) | section[9]
        info = ((section[10] & 0x0F) << 8) | section[11]
        at = 12 + info
        if at > end or not _descriptors_tile(section, 12, at):
            return "program descriptors that do not fill program_info_length exactly"
        streams: List[Tuple[int, int, int, int]] = []
        seen: Set[int] = set()
        while at < end:
            if at + 5 > end:
                return "an elementary stream entry cut short by the CRC"
            stream_type = section[at]
            pid = ((section[at + 1] & 0x1F) << 8) | section[at + 2]
            es_info = ((section[at + 3] & 0x0F) << 8) | section[at + 4]
            start, stop = at + 5, at + 5 + es_info
            if stop > end or not _descriptors_tile(section, start, stop):
                return ("the descriptors of PID 0x%04x do not fill ES_info_length exactly: hls.js reads past them, "
                        "FFmpeg stops reading the PMT, Chromium refuses it" % pid)
            if not FIRST_FREE_PID <= pid <= LAST_FREE_PID or pid == program.pmt_pid:
                return "a stream on reserved PID 0x%04x (0x0020-0x1FFE, not the PMT's, is free)" % pid
            if pid in seen:
                return ("PID 0x%04x listed twice: FFmpeg takes the last stream type, hls.js and Chromium the first"
                        % pid)
            seen.add(pid)
            streams.append((stream_type, pid, start, stop))
            at = stop
        videos = [s for s in streams if s[0] in VIDEO_CODECS]
        if not videos:
            kinds = ", ".join(self.describe(s, section)[0] for s in streams) or "none"
            raise InputError("%s: no H.264 or H.265 video stream in the MPEG-TS (streams: %s)" % (self.name, kinds))
        video = videos[0]
        program.codec, program.codec_name = VIDEO_CODECS[video[0]]
        program.video_pid = video[1]
        for stream in streams:
            if stream is video:
                continue
            text, is_video = self.describe(stream, section)
            program.others.append(text)
            program.other_video = program.other_video or is_video
            program.listed.add(stream[1])
        if FIRST_FREE_PID <= pcr_pid <= LAST_FREE_PID and pcr_pid not in (program.video_pid, program.pmt_pid):
            program.listed.add(pcr_pid)  # a PID of its own for the PCR (no other PID is passed over)
        return ""

    @staticmethod
    def describe(stream: Tuple[int, int, int, int], section: bytes) -> Tuple[str, bool]:
        """A line for a stream that is not the verified video, and whether a player could take it
        for video: a video stream type, or a stream FFmpeg identifies by probing its bytes."""
        stream_type, pid, start, stop = stream
        if stream_type in OTHER_VIDEO_TYPES:
            return "video (%s, PID 0x%04x)" % (OTHER_VIDEO_TYPES[stream_type], pid), True
        if stream_type in AUDIO_TYPES:
            return "audio (%s, PID 0x%04x)" % (AUDIO_TYPES[stream_type], pid), False
        if stream_type == STREAM_METADATA and _id3_described(section, start, stop):
            return "data (timed_id3, PID 0x%04x)" % pid, False
        return ("data (stream_type 0x%02x, PID 0x%04x, which FFmpeg identifies by probing its bytes)"
                % (stream_type, pid), True)

    def start_video(self) -> None:
        program = self.program
        self.video_pid = program.video_pid
        self.out.append(TrackInfo(program.codec, program.codec_name, 0, (), 90000, program.others,
                                  program.other_video))
        self.out.extend(self.waiting)
        self.waiting = []
        early, self.early = self.early, set()
        if early:
            self.defect("packets on PID%s %s before the PMT: FFmpeg reads them once it has the PMT, hls.js only "
                        "when the PMT comes in the same chunk, Chromium never" % (
                            "s" if len(early) > 1 else "", ", ".join("0x%04x" % p for p in sorted(early)[:8])))
        # bulk classification (``bulk``): bits 0-2 video packets, bits 3-7 up to five other listed PIDs
        vhi, vlo = self.video_pid >> 8, self.video_pid & 0xFF
        table_hi = bytearray(256)
        table_lo = bytearray(256)
        table_flags = bytearray(b"\xf8" * 256)
        table_hi[vhi] |= 1 | 4  # no TEI, no start, no priority
        table_hi[vhi | 0x40] |= 2  # a start
        table_lo[vlo] |= 1 | 2 | 4
        for value in range(256):
            if value >> 4 == 1:  # clear, payload only
                table_flags[value] |= 1 | 2
            elif value >> 4 == 3:  # clear, adaptation field and payload
                table_flags[value] |= 2 | 4
        for bit, pid in enumerate(sorted(program.listed)[:5], start=3):
            for flags in range(0, 0x80, 0x20):  # TEI clear; start and priority as they come
                table_hi[flags | (pid >> 8)] |= 1 << bit
            table_lo[pid & 0xFF] |= 1 << bit
        self.table_hi, self.table_lo, self.table_flags = bytes(table_hi), bytes(table_lo), bytes(table_flags)


def mpegts_events(stream: IO[bytes], name: str) -> Iterator[Event]:
    """The events of an MPEG-TS stream (188-byte packets): a TrackInfo, then a Sample per PES
    packet of its one H.264 or H.265 stream and a Defect wherever clients could read it
    differently (segbind.read.events). InputError when it cannot be read as video at all."""
    return _TsReader(name).events(stream)


__all__ = ["mpeg2_crc32", "mpegts_events"]
