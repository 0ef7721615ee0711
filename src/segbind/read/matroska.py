"""segbind's own Matroska and WebM reader: the one H.264 or H.265 video track's samples, as
events (``events.TrackInfo``, ``Sample``, ``Defect``), read once, front to back, from a file or
a pipe.

It accepts the form every reader reads one way (RFC 9559, RFC 8794 and FFmpeg's
libavformat/matroskadec.c agree on it) and refuses the rest; docs/readers/matroska.md lists
every rule and where it comes from. Before the track is described (``TrackInfo``), a refusal
is an ``InputError``; after it, a ``Defect``: fatal where FFmpeg would resync (scan the bytes
for the next element ID, so that it could read what this reader never saw), else the block
it touches is skipped.

Matroska stores no decoding time: a sample's ``dts`` is its ``pts`` (its block's time), and
samples come in the file's order, which is decoding order.
"""

from __future__ import annotations

import re
import struct
from array import array
from bisect import bisect_left
from heapq import heappop, heappush
from math import gcd
from typing import IO, Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple, Union

from segbind_core.tag import CODEC_H264, CODEC_H265

from ..errors import InputError
from .decoder_config import parse_avcc, parse_hvcc
from .events import FRAMING, MAX_INDEX_BYTES, MAX_SAMPLE_BYTES, TIMING, Defect, Event, Sample, TrackInfo

# -- element IDs (RFC 9559 section 5, RFC 8794 section 11), with their length marker ----------

EBML, SEGMENT = 0x1A45DFA3, 0x18538067
VOID, CRC32 = 0xEC, 0xBF
SEEKHEAD, INFO, TRACKS, CLUSTER = 0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1F43B675
CUES, TAGS, CHAPTERS, ATTACHMENTS = 0x1C53BB6B, 0x1254C367, 0x1043A770, 0x1941A469
LEVEL1 = {SEEKHEAD: "SeekHead", INFO: "Info", TRACKS: "Tracks", CLUSTER: "Cluster", CUES: "Cues",
          TAGS: "Tags", CHAPTERS: "Chapters", ATTACHMENTS: "Attachments"}

DOCTYPE, DOCTYPE_READ_VERSION, DOCTYPE_VERSION = 0x4282, 0x4285, 0x4287
EBML_VERSION, EBML_READ_VERSION, EBML_MAX_ID_LENGTH, EBML_MAX_SIZE_LENGTH = 0x4286, 0x42F7, 0x42F2, 0x42F3
TIMESTAMP_SCALE = 0x2AD7B1
TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, CODEC_ID, CODEC_PRIVATE = 0xAE, 0xD7, 0x83, 0x86, 0x63A2
CODEC_DELAY, DEFAULT_DURATION, TRACK_TIMESTAMP_SCALE, FLAG_ENABLED = 0x56AA, 0x23E383, 0x23314F, 0xB9
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT, FRAME_RATE = 0xE0, 0xB0, 0xBA, 0x2383E3
CROP_BOTTOM, CROP_TOP, CROP_LEFT, CROP_RIGHT = 0x54AA, 0x54BB, 0x54CC, 0x54DD
TRACK_OPERATION, CONTENT_ENCODINGS, BLOCK_ADDITION_MAPPING = 0xE2, 0x6D80, 0x41E4
SEEK, SEEK_ID, SEEK_POSITION = 0x4DBB, 0x53AB, 0x53AC
ATTACHED_FILE, FILE_MIME_TYPE = 0x61A7, 0x4660
EDITION_ENTRY, EDITION_FLAG_ORDERED = 0x45B9, 0x45DD
CUE_POINT, CUE_TRACK_POSITIONS, CUE_CLUSTER_POSITION = 0xBB, 0xB7, 0xF1
TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xE7, 0xA3, 0xA0, 0xA1
BLOCK_DURATION, REFERENCE_BLOCK, CODEC_STATE, BLOCK_ADDITIONS = 0x9B, 0xFB, 0xA4, 0x75A1

CODECS = {b"V_MPEG4/ISO/AVC": (CODEC_H264, "h264"), b"V_MPEGH/ISO/HEVC": (CODEC_H265, "hevc")}
TRACK_TYPES = {1: "video", 2: "audio", 3: "complex", 0x10: "logo", 0x11: "subtitle", 0x12: "buttons",
               0x20: "control", 0x21: "metadata"}

# -- what FFmpeg's matroskadec.c knows, where (its EbmlSyntax tables), and how it reads it -----
# A leaf's kind: how FFmpeg reads it (ebml_parse's max_lengths: integers at most 8 bytes, floats
# 0, 4 or 8, strings 16 MiB, binaries 256 MiB) or NONE (known, skipped). TOLERATED: defined by
# RFC 9559 in that place, changes nothing a player shows, unknown to FFmpeg (skipped by it like
# any unknown element). A master's kind is the table of its children.

UINT, SINT, FLOAT, STRING, BINARY, NONE, TOLERATED = range(7)
Table = Dict[int, Any]

MAX_STRING = 0x1000000
MAX_BINARY = 0x10000000
# FFmpeg's SKIP_THRESHOLD and UNKNOWN_EQUIV (ebml_parse): on a pipe it refuses, then resyncs past,
# an unknown element when its size plus 50 KiB per unknown element before it in a row passes
# 1 MiB. At most 3 in a row of at most 64 KiB each never come near it.
MAX_UNKNOWN_BYTES = 64 * 1024
MAX_UNKNOWN_RUN = 3
# FFmpeg's EBML_MAX_DEPTH: a deeper master element fails the file.
MAX_DEPTH = 16
# Level-1 elements (other than Clusters) whose place is kept, and SeekHead entries, to check them.
MAX_LEVEL1 = 1024
MAX_SEEK_ENTRIES = 1024
# What is kept of one level-1 element (its TrackEntries, Seek entries, attachment types): values
# at most, and the leading bytes of a kept string (CodecID, DocType, FileMimeType are short).
MAX_KEPT = 1 << 16
KEEP_STRING = 256
MAX_SEEKHEAD_BYTES = 1 << 16
# Cluster positions kept to check the Cues against (8 bytes each): past it, Cues are refused.
MAX_CLUSTERS_KEPT = 1 << 20
CHUNK = 1 << 20

EBML_HEADER: Table = {EBML_READ_VERSION: UINT, EBML_MAX_SIZE_LENGTH: UINT, EBML_MAX_ID_LENGTH: UINT,
                      DOCTYPE: STRING, DOCTYPE_READ_VERSION: UINT, EBML_VERSION: UINT, DOCTYPE_VERSION: UINT}
INFO_TABLE: Table = {TIMESTAMP_SCALE: UINT, 0x4489: FLOAT, 0x7BA9: STRING, 0x5741: NONE, 0x4D80: STRING,
                     0x4461: BINARY, 0x73A4: NONE}
MASTERING: Table = {i: FLOAT for i in range(0x55D1, 0x55DB)}
COLOUR: Table = {i: UINT for i in range(0x55B1, 0x55BE)}
COLOUR[0x55D0] = MASTERING
PROJECTION: Table = {0x7671: UINT, 0x7672: BINARY, 0x7673: FLOAT, 0x7674: FLOAT, 0x7675: FLOAT}
VIDEO_TABLE: Table = {FRAME_RATE: FLOAT, 0x54B0: UINT, 0x54BA: UINT, PIXEL_WIDTH: UINT, PIXEL_HEIGHT: UINT,
                      0x2EB524: BINARY, 0x53C0: UINT, 0x55B0: COLOUR, 0x7670: PROJECTION, CROP_BOTTOM: UINT,
                      CROP_TOP: UINT, CROP_LEFT: UINT, CROP_RIGHT: UINT, 0x54B2: UINT, 0x9A: UINT, 0x9D: UINT,
                      0x53B8: UINT, 0x54B3: NONE}
AUDIO_TABLE: Table = {0xB5: FLOAT, 0x78B5: FLOAT, 0x6264: UINT, 0x9F: UINT}
ENCODING: Table = {0x5032: UINT, 0x5033: UINT, 0x5031: NONE,
                   0x5034: {0x4254: UINT, 0x4255: BINARY},
                   0x5035: {0x47E1: UINT, 0x47E2: BINARY, 0x47E7: NONE, 0x47E5: NONE, 0x47E6: NONE, 0x47E4: NONE,
                            0x47E3: NONE}}
TRACK_ENTRY_TABLE: Table = {
    TRACK_NUMBER: UINT, 0x536E: STRING, 0x73C5: UINT, TRACK_TYPE: UINT, CODEC_ID: STRING, CODEC_PRIVATE: BINARY,
    CODEC_DELAY: UINT, 0x22B59C: STRING, DEFAULT_DURATION: UINT, TRACK_TIMESTAMP_SCALE: FLOAT, 0x55AF: UINT,
    0x88: UINT, 0x55AA: UINT, 0x55AB: UINT, 0x55AC: UINT, 0x55AD: UINT, 0x55AE: UINT, VIDEO: VIDEO_TABLE,
    0xE1: AUDIO_TABLE, TRACK_OPERATION: {0xE3: {0xE4: {0xE5: UINT, 0xE6: UINT}}},
    CONTENT_ENCODINGS: {0x6240: ENCODING}, 0x55EE: UINT,
    BLOCK_ADDITION_MAPPING: {0x41F0: UINT, 0x41A4: STRING, 0x41E7: UINT, 0x41ED: BINARY},
    0x56BB: UINT, FLAG_ENABLED: UINT, 0x9C: NONE, 0x258688: NONE, 0xAA: NONE, 0x3B4040: NONE, 0x26B240: NONE,
    0x6DE7: NONE, 0x6DF8: NONE,
    0x22B59D: TOLERATED,  # LanguageBCP47
}
TRACKS_TABLE: Table = {TRACK_ENTRY: TRACK_ENTRY_TABLE}
SEEKHEAD_TABLE: Table = {SEEK: {SEEK_ID: UINT, SEEK_POSITION: UINT}}
ATTACHMENTS_TABLE: Table = {ATTACHED_FILE: {0x46AE: UINT, 0x466E: STRING, FILE_MIME_TYPE: STRING, 0x465C: BINARY,
                                            0x467E: STRING}}
CHAPTER_ATOM: Table = {0x91: UINT, 0x92: UINT, 0x73C4: UINT, 0x98: NONE, 0x4598: NONE, 0x63C3: NONE,
                       0xB6: NONE,  # nested atoms: FFmpeg skips them
                       0x80: {0x85: STRING, 0x437C: NONE, 0x437E: NONE, 0x437D: TOLERATED}}
CHAPTERS_TABLE: Table = {EDITION_ENTRY: {0xB6: CHAPTER_ATOM, 0x45BC: NONE, 0x45BD: NONE, 0x45DB: NONE,
                                         EDITION_FLAG_ORDERED: UINT}}
CUES_TABLE: Table = {CUE_POINT: {0xB3: UINT, CUE_TRACK_POSITIONS: {
    0xF7: UINT, CUE_CLUSTER_POSITION: UINT, 0xF0: NONE, 0xB2: NONE, 0x5378: NONE,
    0xEA: TOLERATED, 0xDB: TOLERATED}}}  # CueCodecState, CueReference
SIMPLE_TAG: Table = {0x45A3: STRING, 0x4487: STRING, 0x447A: STRING, 0x4484: UINT, 0x44B4: UINT,
                     0x4485: TOLERATED, 0x447B: TOLERATED}  # TagBinary, TagLanguageBCP47
SIMPLE_TAG[0x67C8] = SIMPLE_TAG
TAGS_TABLE: Table = {0x7373: {0x67C8: SIMPLE_TAG, 0x63C0: {
    0x63CA: STRING, 0x68CA: UINT, 0x63C5: UINT, 0x63C4: UINT, 0x63C6: UINT, 0x63C9: TOLERATED}}}
BLOCK_ADDITIONS_TABLE: Table = {0xA6: {0xEE: UINT, 0xA5: BINARY}}
LEVEL1_TABLES: Table = {SEEKHEAD: SEEKHEAD_TABLE, INFO: INFO_TABLE, TRACKS: TRACKS_TABLE, CUES: CUES_TABLE,
                        TAGS: TAGS_TABLE, CHAPTERS: CHAPTERS_TABLE, ATTACHMENTS: ATTACHMENTS_TABLE}

_FF_RUN = re.compile(rb"\xff*")
Header = Tuple[int, int, int]  # (element ID, data size or -1 when unknown, header length)
Kept = List[Tuple[int, Any]]


class _Refusal(Exception):
    """The input cannot be read one way from here on: an InputError before the track is
    described, a fatal Defect after."""


class ChunkedInput:
    """A binary stream read a chunk at a time: headers are parsed from ``buf`` at ``at``;
    payloads are taken (copied out) or skipped, never kept beyond one chunk. A pipe may give
    a few bytes per read: ``fill`` reads until it has what it was asked for."""

    __slots__ = ("_read", "buf", "at", "base")

    def __init__(self, stream: IO[bytes]) -> None:
        self._read = stream.read
        self.buf = b""
        self.at = 0
        self.base = 0  # stream offset of buf[0]

    @property
    def pos(self) -> int:
        return self.base + self.at

    def fill(self, count: int) -> bool:
        """At least ``count`` bytes from ``at`` in ``buf``; False when the stream ends first."""
        have = len(self.buf) - self.at
        if have >= count:
            return True
        parts = [self.buf[self.at:]] if have else []
        while have < count:
            data = self._read(CHUNK)
            if not data:
                break
            parts.append(data)
            have += len(data)
        self.base += self.at
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)  # a chunk alone is not copied
        self.at = 0
        return have >= count

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes (fewer only at the end of the stream)."""
        at = self.at
        if len(self.buf) - at >= count:
            self.at = at + count
            return self.buf[at:at + count]
        parts = [self.buf[at:]]
        have = len(parts[0])
        self.base += len(self.buf)
        self.buf, self.at = b"", 0
        while have < count:
            data = self._read(min(count - have, CHUNK))
            if not data:
                break
            parts.append(data)
            have += len(data)
        self.base += have - len(parts[0])
        return b"".join(parts)

    def skip(self, count: int) -> bool:
        """Past the next ``count`` bytes, read and dropped; False when the stream ends first."""
        have = len(self.buf) - self.at
        if have >= count:
            self.at += count
            return True
        self.base += len(self.buf)
        self.buf, self.at = b"", 0
        count -= have
        while count:
            data = self._read(min(count, CHUNK))
            if not data:
                return False
            self.base += len(data)
            count -= len(data)
        return True

    def header(self, max_size_length: int) -> Optional[Header]:
        """The EBML element header at ``at`` (not consumed); None at the end of the stream."""
        if not self.fill(2):
            if len(self.buf) == self.at:
                return None
            raise _Refusal("the input ends inside an element header at byte %d" % self.pos)
        buf, at = self.buf, self.at
        first = buf[at]
        if first >= 0x80:
            id_length = 1
        elif first >= 0x40:
            id_length = 2
        elif first >= 0x20:
            id_length = 3
        elif first >= 0x10:
            id_length = 4
        else:
            raise _Refusal("no element ID at byte %d (a first byte of 0x%02X: FFmpeg resyncs, scanning for one)"
                           % (self.pos, first))
        if not self.fill(id_length + 1):
            raise _Refusal("the input ends inside an element header at byte %d" % self.pos)
        buf, at = self.buf, self.at
        lead = buf[at + id_length]
        if not lead:
            raise _Refusal("an element size longer than 8 bytes at byte %d" % self.pos)
        size_length = 9 - lead.bit_length()
        if size_length > max_size_length:
            raise _Refusal("an element size of %d bytes at byte %d, over the EBMLMaxSizeLength %d of the header "
                           "(FFmpeg reads it, RFC 8794 forbids it)" % (size_length, self.pos, max_size_length))
        length = id_length + size_length
        if not self.fill(length):
            raise _Refusal("the input ends inside an element header at byte %d" % self.pos)
        buf, at = self.buf, self.at
        element = int.from_bytes(buf[at:at + id_length], "big")
        mask = (1 << (7 * size_length)) - 1
        size = int.from_bytes(buf[at + id_length:at + length], "big") & mask
        return element, (-1 if size == mask else size), length


def _name(element: int) -> str:
    return LEVEL1.get(element) or {EBML: "EBML header", SEGMENT: "Segment", VOID: "Void", CRC32: "CRC-32",
                                   SIMPLE_BLOCK: "SimpleBlock", BLOCK_GROUP: "BlockGroup", BLOCK: "Block",
                                   TIMESTAMP: "Timestamp"}.get(element, "element 0x%X" % element)


def _id_valid(element: int) -> bool:
    """FFmpeg's is_ebml_id_valid: the length marker where the ID's length puts it."""
    bits = element.bit_length() - 1
    return element > 0 and (bits + 7) // 8 == 8 - bits % 8


def lace_problem(data: bytes, lacing: int) -> str:
    """Why FFmpeg's matroska_parse_laces fails on a laced block's payload ("" when it reads it):
    it then resyncs, scanning the block's bytes for an element ID."""
    size = len(data)
    if size <= 0:
        return "an empty laced block"
    laces = data[0] + 1
    pos, size = 1, size - 1
    if lacing == 1:  # Xiph: each size a run of 0xFF bytes and one byte below 0xFF
        total = 0
        for _ in range(laces - 1):
            run_end = _FF_RUN.match(data, pos).end()  # type: ignore[union-attr]
            if run_end >= len(data):
                return "Xiph lace sizes run past the block"
            total += 255 * (run_end - pos) + data[run_end]
            pos = run_end + 1
        return "" if len(data) - pos >= total else "Xiph lace sizes add up past the block"
    if lacing == 2:
        return "" if size % laces == 0 else "fixed-size laces that do not divide the block"
    # EBML lacing: the first size, then signed differences (RFC 9559 10.3.3)
    values: List[int] = []
    for index in range(max(laces - 1, 1)):
        if pos >= len(data) or not data[pos]:
            return "EBML lace sizes run past the block"
        length = 9 - data[pos].bit_length()
        if pos + length > len(data):
            return "EBML lace sizes run past the block"
        raw = int.from_bytes(data[pos:pos + length], "big") & ((1 << (7 * length)) - 1)
        pos += length
        if index == 0:
            if raw > 0x7FFFFFFF:
                return "an EBML lace size over 2^31"
            values.append(raw)
        else:
            value = values[-1] + raw - ((1 << (7 * length - 1)) - 1)
            if value < 0 or value > 0x7FFFFFFF:
                return "an EBML lace size out of range"
            values.append(value)
    total = sum(values) if laces > 1 else values[0]
    return "" if len(data) - pos >= total else "EBML lace sizes add up past the block"


class _Track:
    __slots__ = ("number", "kind", "codec_id", "line")

    def __init__(self, number: int, kind: int, codec_id: bytes, line: str) -> None:
        self.number = number
        self.kind = kind
        self.codec_id = codec_id
        self.line = line


class _Reader:
    """One pass over one Matroska stream."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.src = ChunkedInput(stream)
        self.name = name
        self.max_size_length = 8
        self.unknown_run = 0
        self.kept_left = MAX_KEPT
        self.segment_data = 0
        self.segment_end: Optional[int] = None
        self.described = False
        self.timestamp_scale: Optional[int] = None
        self.tracks_seen = False
        self.video_number = -1
        self.track_numbers: Dict[int, _Track] = {}
        self.info: Optional[TrackInfo] = None
        self.ticks = 1  # the timescale's units per Matroska tick
        self.default_duration = 0
        self.level1_at: Dict[int, int] = {}  # position -> ID of each level-1 element (not Clusters)
        self.seek_targets: List[Tuple[int, int]] = []  # a heap of (position, ID) of SeekHead entries ahead
        self.seek_entries = 0
        self.image_attachment = ""
        self.cluster_at = array("Q")  # Segment positions of the Clusters, in order
        self.cues_ahead = array("Q")  # positions Cues before the Clusters point at, sorted
        self.cues_next = 0  # the first of them not yet checked off

    # -- the whole stream ----------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        try:
            yield from self._segment()
        except _Refusal as refusal:
            if not self.described:
                raise InputError("%s: %s" % (self.name, refusal)) from None
            yield Defect(str(refusal), fatal=True)

    def _segment(self) -> Iterator[Event]:
        self._ebml_header()
        header = self.src.header(self.max_size_length)
        if header is None or header[0] != SEGMENT:
            what = "nothing" if header is None else _name(header[0])
            raise _Refusal("%s after the EBML header, not a Segment (FFmpeg resyncs, scanning for a level-1 ID)"
                           % what)
        _, size, length = header
        self.src.at += length
        self.segment_data = self.src.pos
        self.segment_end = None if size < 0 else self.segment_data + size
        pending: Optional[Header] = None
        while True:
            start = self.src.pos
            if self.segment_end is not None and start >= self.segment_end:
                break
            header = pending or self.src.header(self.max_size_length)
            pending = None
            if header is None:
                if self.segment_end is not None:
                    raise _Refusal("the input ends %d bytes before the end of its Segment"
                                   % (self.segment_end - start))
                break
            element, size, length = header
            self._check_seek_targets(start, element)
            if element == CLUSTER:
                if not self.described:
                    yield self._describe()
                self._remember_cluster(start - self.segment_data)
                pending = yield from self._cluster(size, length)
                continue
            self._level1(element, size, length, start)
        self._check_seek_targets(1 << 64, 0)
        if self.cues_next < len(self.cues_ahead):
            raise _Refusal("a CuePoint points at Segment position %d, where this reading saw no Cluster (a player "
                           "seeking there reads what this reading never saw)" % self.cues_ahead[self.cues_next])
        if self.segment_end is not None and self.src.fill(1):
            raise _Refusal("bytes after the end of the Segment (FFmpeg resyncs there and reads Clusters)")
        if not self.described:
            raise _Refusal("the input ends before its first Cluster")

    def _ebml_header(self) -> None:
        header = self.src.header(8)
        if header is None or header[0] != EBML:
            raise _Refusal("no EBML header")
        _, size, length = header
        if size < 0 or size > MAX_INDEX_BYTES:
            raise _Refusal("an EBML header of %s" % ("unknown size" if size < 0 else "%d bytes" % size))
        self.src.at += length
        values = dict(self._walk(EBML_HEADER, self.src.pos + size, 1,
                                 {DOCTYPE, DOCTYPE_READ_VERSION, EBML_READ_VERSION, EBML_VERSION,
                                  EBML_MAX_ID_LENGTH, EBML_MAX_SIZE_LENGTH}))
        doctype = values.get(DOCTYPE, b"")
        if doctype.rstrip(b"\x00") not in (b"matroska", b"webm"):
            raise _Refusal("DocType %r is neither matroska nor webm" % doctype.decode("latin-1"))
        for element, wanted, what in ((EBML_VERSION, 1, "EBMLVersion"), (EBML_READ_VERSION, 1, "EBMLReadVersion"),
                                      (EBML_MAX_ID_LENGTH, 4, "EBMLMaxIDLength")):
            if values.get(element, wanted) != wanted:
                raise _Refusal("%s %d, not %d (RFC 9559 section 4)" % (what, values[element], wanted))
        read_version = values.get(DOCTYPE_READ_VERSION, 1)
        if not 1 <= read_version <= 3:
            raise _Refusal("DocTypeReadVersion %d (FFmpeg reads 1 to 3)" % read_version)
        max_size_length = values.get(EBML_MAX_SIZE_LENGTH, 8)
        if not 1 <= max_size_length <= 8:
            raise _Refusal("EBMLMaxSizeLength %d (RFC 9559: 1 to 8)" % max_size_length)
        self.max_size_length = max_size_length

    # -- level 1 -------------------------------------------------------------------------------

    def _level1(self, element: int, size: int, length: int, start: int) -> None:
        """A child of the Segment other than a Cluster."""
        if size < 0:
            raise _Refusal("a %s of unknown size (RFC 9559 allows it for Segment and Cluster only)"
                           % _name(element))
        end = self.src.pos + length + size
        if self.segment_end is not None and end > self.segment_end:
            raise _Refusal("a %s running past the end of its Segment" % _name(element))
        if element in (VOID, CRC32):
            if element == CRC32 and (start != self.segment_data or size != 4):
                raise _Refusal("a CRC-32 that is not 4 bytes and its Segment's first element (RFC 8794 11.3.1)")
            self.src.at += length
            self._skip(size)
            return
        if element not in LEVEL1_TABLES:
            raise _Refusal("%s in the Segment (unknown to RFC 9559 and FFmpeg there)" % _name(element)
                           if element not in (EBML, SEGMENT) else
                           "a second %s inside the Segment" % _name(element))
        self._remember_level1(start, element)
        self.unknown_run = 0  # FFmpeg counts unknown elements in a row: a known one ends the run
        self.kept_left = MAX_KEPT
        self.src.at += length
        if element in (INFO, TRACKS):
            if self.described:
                raise _Refusal("a %s after the first Cluster (FFmpeg skips it; a player that reads it "
                               "describes the track anew)" % _name(element))
            if (element == INFO and self.timestamp_scale is not None) or (element == TRACKS and self.tracks_seen):
                raise _Refusal("a second %s (FFmpeg merges them)" % _name(element))
            if size > MAX_INDEX_BYTES:
                raise _Refusal("a %s of %d bytes, over the %d bytes an index may take" % (
                    _name(element), size, MAX_INDEX_BYTES))
            kept = self._walk(LEVEL1_TABLES[element], end, 2,
                              {TIMESTAMP_SCALE} if element == INFO else _TRACK_KEEP)
            if element == INFO:
                self._info(kept)
            else:
                self._tracks(kept)
        elif element == SEEKHEAD:
            if size > MAX_SEEKHEAD_BYTES:
                raise _Refusal("a SeekHead of %d bytes (at most %d)" % (size, MAX_SEEKHEAD_BYTES))
            self._seekhead(self._walk(SEEKHEAD_TABLE, end, 2, {SEEK, SEEK_ID, SEEK_POSITION}))
        elif element == ATTACHMENTS:
            self._attachments(self._walk(ATTACHMENTS_TABLE, end, 2, {ATTACHED_FILE, FILE_MIME_TYPE}))
        elif element == CHAPTERS:
            for _, edition in self._walk(CHAPTERS_TABLE, end, 2, {EDITION_ENTRY, EDITION_FLAG_ORDERED}):
                if dict(edition).get(EDITION_FLAG_ORDERED):
                    raise _Refusal("an ordered edition in Chapters (players that honour it play other "
                                   "parts or files than FFmpeg does)")
        elif element == CUES:
            self._cues(end)
        elif not self.described:  # Tags: FFmpeg parses them before the first Cluster
            self._walk(TAGS_TABLE, end, 2, set())
        else:  # after it, FFmpeg skips them whole
            self._skip(size)

    def _remember_level1(self, start: int, element: int) -> None:
        if len(self.level1_at) >= MAX_LEVEL1:
            raise _Refusal("more than %d level-1 elements other than Clusters" % MAX_LEVEL1)
        self.level1_at[start] = element

    def _info(self, kept: Kept) -> None:
        scale = dict(kept).get(TIMESTAMP_SCALE, 1000000)
        if not 1 <= scale <= 0xFFFFFFFF:
            raise _Refusal("TimestampScale %d (FFmpeg takes 0 as 1000000 and refuses more than 2^32 - 1)" % scale)
        self.timestamp_scale = scale

    def _tracks(self, kept: Kept) -> None:
        self.tracks_seen = True
        video: Optional[Table] = None
        others: List[str] = []
        other_video = False
        for _, entry_kept in kept:
            entry = dict(entry_kept)
            number = entry.get(TRACK_NUMBER, 0)
            kind = entry.get(TRACK_TYPE, 0)
            codec_id = entry.get(CODEC_ID, b"").rstrip(b"\x00")
            if not number:
                raise _Refusal("a TrackEntry without a TrackNumber")
            if number in self.track_numbers:
                raise _Refusal("two TrackEntries numbered %d (FFmpeg takes the first)" % number)
            line = "%s (%s)" % (TRACK_TYPES.get(kind, "type %d" % kind),
                                codec_id.decode("latin-1") or "no CodecID")
            self.track_numbers[number] = _Track(number, kind, codec_id, line)
            if video is None and kind == 1 and codec_id in CODECS:
                video = entry
                continue
            others.append(line)
            other_video = other_video or kind in (1, 3, 0x10) or codec_id.startswith(b"V_") or kind not in TRACK_TYPES
        if video is None:
            if not others:
                raise _Refusal("no tracks")
            raise _Refusal("no H.264 or H.265 video track (tracks: %s)" % ", ".join(others))
        self.video_number = video[TRACK_NUMBER]
        self._video_track(video, others, other_video)

    def _video_track(self, entry: Table, others: List[str], other_video: bool) -> None:
        codec, codec_name = CODECS[entry[CODEC_ID].rstrip(b"\x00")]
        for element, what in ((CONTENT_ENCODINGS, "ContentEncodings (compression, header stripping or "
                                                  "encryption: FFmpeg undoes some, other players none)"),
                              (TRACK_OPERATION, "a TrackOperation (a track made of other tracks)"),
                              (BLOCK_ADDITION_MAPPING, "a BlockAdditionMapping (FFmpeg reads it as Dolby "
                                                       "Vision or other configuration)")):
            if element in entry:
                raise _Refusal("the video track has %s" % what)
        if entry.get(FLAG_ENABLED, 1) != 1:
            raise _Refusal("the video track is marked disabled (FlagEnabled 0: FFmpeg plays it, RFC 9559 not)")
        if entry.get(CODEC_DELAY, 0):
            raise _Refusal("the video track has a CodecDelay (FFmpeg takes it off every timestamp)")
        track_scale = entry.get(TRACK_TIMESTAMP_SCALE)
        if track_scale is not None and track_scale != 1.0:
            raise _Refusal("TrackTimestampScale %r (deprecated by RFC 9559; FFmpeg scales timestamps by it)"
                           % track_scale)
        picture = dict(entry.get(VIDEO, []))
        width, height = picture.get(PIXEL_WIDTH, 0), picture.get(PIXEL_HEIGHT, 0)
        if not width or not height or picture.get(CROP_LEFT, 0) + picture.get(CROP_RIGHT, 0) >= width \
                or picture.get(CROP_TOP, 0) + picture.get(CROP_BOTTOM, 0) >= height:
            raise _Refusal("the video track's PixelWidth/PixelHeight are missing or its crop covers the "
                           "picture (FFmpeg refuses the file)")
        private = entry.get(CODEC_PRIVATE)
        if not private:
            raise _Refusal("the %s track has no CodecPrivate (FFmpeg then reads its blocks as Annex-B)" % codec_name)
        try:
            if codec == CODEC_H265:
                length_size, units = parse_hvcc(private)
            else:
                length_size, sets, more = parse_avcc(private)
                units = sets + more
        except InputError as error:
            raise _Refusal("the video track's CodecPrivate: %s" % error) from None
        if length_size not in (1, 2, 4):
            raise _Refusal("a NAL length size of %d bytes (ISO/IEC 14496-15 allows 1, 2 or 4)" % length_size)
        duration = entry.get(DEFAULT_DURATION, 0)
        rate = picture.get(FRAME_RATE)
        if not duration and rate and rate > 0 and 1e9 / rate < 2.0 ** 64:
            duration = int(1e9 / rate)  # FFmpeg's matroska_parse_tracks
        self.default_duration = duration
        self.info = TrackInfo(codec, codec_name, length_size, units, 0, others, other_video)

    def _describe(self) -> TrackInfo:
        """The track, at the first Cluster: Info and Tracks must have come before it."""
        if self.timestamp_scale is None:
            raise _Refusal("no Info before the first Cluster")
        if self.info is None:
            raise _Refusal("no Tracks before the first Cluster")
        scale = self.timestamp_scale
        common = gcd(scale, 1000000000)
        self.ticks = scale // common
        self.info.timescale = 1000000000 // common
        self.default_duration = self.default_duration // scale * self.ticks  # FFmpeg's integer division
        if self.image_attachment:
            self.info.others += ("video (attached picture, %s)" % self.image_attachment,)
            self.info.other_video = True
        self.described = True
        return self.info

    def _seekhead(self, kept: Kept) -> None:
        """Each entry FFmpeg follows (matroska_execute_seekhead: a valid ID other than Cluster) must
        point at a level-1 element of that ID that this reading sees: FFmpeg, on a file, reads
        whatever is there (a Tracks, Attachments hidden in a Void...)."""
        self.seek_entries += len(kept)
        if self.seek_entries > MAX_SEEK_ENTRIES:
            raise _Refusal("more than %d SeekHead entries" % MAX_SEEK_ENTRIES)
        for _, entry_kept in kept:
            entry = dict(entry_kept)
            element, offset = entry.get(SEEK_ID, 0), entry.get(SEEK_POSITION, -1)
            if not _id_valid(element) or element == CLUSTER or element > 0xFFFFFFFF:
                continue
            if offset < 0 or offset >= (1 << 63) - self.segment_data:
                continue  # FFmpeg's position wraps below the Segment: ignored
            target = self.segment_data + offset
            if target < self.src.pos:
                if self.level1_at.get(target) != element:
                    raise _Refusal("a SeekHead entry points at byte %d for %s, where this reading saw none"
                                   % (target, _name(element)))
            else:
                heappush(self.seek_targets, (target, element))

    def _check_seek_targets(self, start: int, element: int) -> None:
        targets = self.seek_targets
        while targets and targets[0][0] <= start:
            target, wanted = heappop(targets)
            if target != start or wanted != element:
                where = "past the end of the input" if start == 1 << 64 else "at byte %d" % target
                raise _Refusal("a SeekHead entry points %s for %s, where this reading saw none"
                               % (where, _name(wanted)))

    def _attachments(self, kept: Kept) -> None:
        """FFmpeg makes an attached picture (a video stream) of every image attachment."""
        for _, attached in kept:
            mime = dict(attached).get(FILE_MIME_TYPE, b"")
            if mime.lower().startswith(b"image/"):
                kind = mime[:64].decode("latin-1")
                if self.described:
                    raise _Refusal("an attached picture (%s) after the first Cluster: FFmpeg shows it as "
                                   "another video stream" % kind)
                self.image_attachment = kind

    def _cues(self, end: int) -> None:
        """Every CueClusterPosition must be a Cluster this reading sees: a player seeking through
        the Cues (FFmpeg's index, matroska_add_index_entries) starts reading there."""
        clusters = self.cluster_at
        ahead: List[int] = []

        def check(_: int, position: Any) -> None:
            if clusters and position <= clusters[-1]:
                at = bisect_left(clusters, position)
                if at == len(clusters) or clusters[at] != position:
                    raise _Refusal("a CuePoint points at Segment position %d, where this reading saw no Cluster (a "
                                   "player seeking there reads what this reading never saw)" % position)
            elif len(ahead) + len(self.cues_ahead) - self.cues_next < MAX_CLUSTERS_KEPT:
                ahead.append(position)
            else:
                raise _Refusal("more than %d CuePoints ahead of the Clusters" % MAX_CLUSTERS_KEPT)

        if len(clusters) >= MAX_CLUSTERS_KEPT:
            raise _Refusal("Cues after more than %d Clusters (too many to check them against)" % MAX_CLUSTERS_KEPT)
        self._walk(CUES_TABLE, end, 2, {CUE_CLUSTER_POSITION}, check)
        if ahead:
            self.cues_ahead = array("Q", sorted(set(self.cues_ahead[self.cues_next:].tolist() + ahead)))
            self.cues_next = 0

    def _remember_cluster(self, position: int) -> None:
        """A Cluster's Segment position: kept for the Cues that come after it, checked off those before."""
        ahead, index = self.cues_ahead, self.cues_next
        while index < len(ahead) and ahead[index] <= position:
            if ahead[index] != position:
                raise _Refusal("a CuePoint points at Segment position %d, where this reading saw no Cluster (a "
                               "player seeking there reads what this reading never saw)" % ahead[index])
            index += 1
        self.cues_next = index
        if len(self.cluster_at) < MAX_CLUSTERS_KEPT:
            self.cluster_at.append(position)

    # -- masters read through FFmpeg's tables ---------------------------------------------------

    def _walk(self, table: Table, end: int, depth: int, keep: Any,
              visit: Optional[Callable[[int, Any], None]] = None) -> Kept:
        """Every child up to ``end`` checked against ``table`` as FFmpeg reads it; the values of
        the children whose ID is in ``keep`` (of masters: their own kept children), in order, or
        handed to ``visit`` as they come (numbers only: nothing kept)."""
        if depth > MAX_DEPTH:
            raise _Refusal("elements nested deeper than %d (FFmpeg's EBML_MAX_DEPTH)" % MAX_DEPTH)
        src = self.src
        kept: Kept = []
        first = True
        while src.pos < end:
            header = src.header(self.max_size_length)
            if header is None:
                raise _Refusal("the input ends inside an element")
            element, size, length = header
            if size < 0:
                raise _Refusal("an %s of unknown size (RFC 9559 allows it for Segment and Cluster only)"
                               % _name(element))
            if src.pos + length + size > end:
                raise _Refusal("%s running past its parent (FFmpeg resyncs)" % _name(element))
            src.at += length
            kind = table.get(element)
            if kind is None and element not in (VOID, CRC32):
                raise _Refusal("%s where neither FFmpeg nor RFC 9559 has it" % _name(element))
            if kind == TOLERATED:
                self.unknown_run += 1
                if size > MAX_UNKNOWN_BYTES or self.unknown_run > MAX_UNKNOWN_RUN:
                    raise _Refusal("%s of %d bytes, %d in a row unknown to FFmpeg (on a pipe it refuses, then "
                                   "resyncs past, what passes its SKIP_THRESHOLD)" % (
                                       _name(element), size, self.unknown_run))
                self._skip(size)
                continue
            self.unknown_run = 0
            if element == CRC32:
                if not first or size != 4:
                    raise _Refusal("a CRC-32 that is not 4 bytes and its parent's first element (RFC 8794 11.3.1)")
                self._skip(4)
            elif isinstance(kind, dict):
                children = self._walk(kind, src.pos + size, depth + 1, keep, visit)
                if element in keep:
                    self._keep(kept, element, children)
            elif kind in (UINT, SINT, FLOAT):
                if size > 8 or (kind == FLOAT and size not in (0, 4, 8)):
                    raise _Refusal("%s of %d bytes (FFmpeg refuses it)" % (_name(element), size))
                data = src.take(size)
                if len(data) < size:
                    raise _Refusal("the input ends inside an element")
                if element in keep:
                    if visit is not None:
                        visit(element, _number(kind, data))
                    else:
                        self._keep(kept, element, _number(kind, data))
            elif kind in (STRING, BINARY) and size > (MAX_STRING if kind == STRING else MAX_BINARY):
                raise _Refusal("%s of %d bytes (FFmpeg refuses it)" % (_name(element), size))
            elif element in keep:
                wanted = size if kind == BINARY else min(size, KEEP_STRING)
                data = src.take(wanted)
                if len(data) < wanted:
                    raise _Refusal("the input ends inside an element")
                self._skip(size - len(data))
                self._keep(kept, element, data)
            else:
                self._skip(size)
            first = False
        return kept

    def _keep(self, kept: Kept, element: int, value: Any) -> None:
        if not self.kept_left:
            raise _Refusal("a level-1 element with more than %d values to keep" % MAX_KEPT)
        self.kept_left -= 1
        kept.append((element, value))

    def _skip(self, size: int) -> None:
        if not self.src.skip(size):
            raise _Refusal("the input ends inside an element")

    # -- clusters and blocks --------------------------------------------------------------------

    def _cluster(self, size: int, length: int) -> Generator[Event, None, Optional[Header]]:
        """A Cluster's blocks; returns the header that ended a Cluster of unknown size."""
        src = self.src
        if size < 0 and self.segment_end is not None:
            raise _Refusal("a Cluster of unknown size in a Segment of known size (FFmpeg refuses it, "
                           "RFC 8794 allows it)")
        if size >= 0 and self.segment_end is not None and src.pos + length + size > self.segment_end:
            raise _Refusal("a Cluster running past the end of its Segment")
        src.at += length
        end = src.pos + size if size >= 0 else -1
        timestamp = -1
        first = True
        max_size_length = self.max_size_length
        while end < 0 or src.pos < end:
            header = src.header(max_size_length)
            if header is None:
                if end < 0:
                    return None
                raise _Refusal("the input ends inside a Cluster")
            element, size, length = header
            if end < 0 and (element in LEVEL1 or element in (EBML, SEGMENT)):
                if element in (EBML, SEGMENT):
                    raise _Refusal("a %s inside a Cluster of unknown size" % _name(element))
                return header
            if size < 0:
                raise _Refusal("%s of unknown size in a Cluster" % _name(element))
            if end >= 0 and src.pos + length + size > end:
                raise _Refusal("%s running past its Cluster (FFmpeg resyncs)" % _name(element))
            src.at += length
            if element == SIMPLE_BLOCK:
                yield from self._block(size, timestamp, True)
            elif element == BLOCK_GROUP:
                yield from self._block_group(size, timestamp)
            elif element == TIMESTAMP:
                if timestamp >= 0:
                    raise _Refusal("a second Timestamp in a Cluster (FFmpeg takes the later one for the blocks "
                                   "after it)")
                if size > 8:
                    raise _Refusal("a Cluster Timestamp of %d bytes (FFmpeg refuses it)" % size)
                data = src.take(size)
                if len(data) < size:
                    raise _Refusal("the input ends inside a Cluster")
                timestamp = int.from_bytes(data, "big")
                if timestamp >= 1 << 53:
                    raise _Refusal("a Cluster Timestamp of %d (FFmpeg reads it through a double: exact below 2^53)"
                                   % timestamp)
            elif element == CRC32:
                if not first or size != 4:
                    raise _Refusal("a CRC-32 that is not 4 bytes and its Cluster's first element (RFC 8794 11.3.1)")
                self._skip(4)
            elif element in (VOID, 0xA7, 0xAB):  # Void, Position, PrevSize
                self._skip(size)
            elif element in LEVEL1 or element in (EBML, SEGMENT):
                raise _Refusal("a %s inside a Cluster" % _name(element))
            else:
                raise _Refusal("%s in a Cluster (unknown to FFmpeg there: it skips it, other players may "
                               "read a frame in it)" % _name(element))
            first = False
        return None

    def _block_head(self, size: int) -> Tuple[int, int]:
        """(track number, header length) of the block whose payload (``size`` bytes) is next; not consumed."""
        src = self.src
        if size < 4:
            raise _Refusal("a block of %d bytes, too short for its header (FFmpeg resyncs inside it)" % size)
        if not src.fill(min(size, 11)):
            raise _Refusal("the input ends inside a block")
        lead = src.buf[src.at]
        length = 9 - lead.bit_length()
        if not lead or length + 3 > size:
            raise _Refusal("a block whose track number does not fit it (FFmpeg resyncs inside it)")
        track = int.from_bytes(src.buf[src.at:src.at + length], "big") & ((1 << (7 * length)) - 1)
        if track not in self.track_numbers:
            raise _Refusal("a block of track %d, which no TrackEntry has (FFmpeg resyncs inside it)" % track)
        return track, length

    def _block(self, size: int, timestamp: int, simple: bool) -> Iterator[Event]:
        """A SimpleBlock, or a BlockGroup's Block (``simple`` False: ``_block_group`` then sets
        the Sample's sync and duration): the video track's frame as a Sample, or a Defect."""
        track, length = self._block_head(size)
        src = self.src
        at = src.at
        flags = src.buf[at + length + 2]
        lacing = (flags >> 1) & 3
        if track != self.video_number:
            if lacing:
                self._check_laces(size, length, lacing)
            else:
                self._skip(size)
            return
        offset = int.from_bytes(src.buf[at + length:at + length + 2], "big", signed=True)
        payload = size - length - 3
        reason = FRAMING
        if lacing:
            problem = "lacing on the video track (several frames in one block)"
        elif flags & (0x70 if simple else 0xF0):
            problem = "reserved block flag bits set (0x%02X)" % flags
        elif flags & 0x08:
            problem = "an invisible frame (FFmpeg shows it, RFC 9559 says a player does not)"
        elif timestamp < 0:
            problem, reason = "a block before its Cluster's Timestamp (FFmpeg times it from 0)", TIMING
        elif timestamp + offset < 0:
            problem, reason = "a block before time 0 (FFmpeg gives it no timestamp)", TIMING
        elif payload > MAX_SAMPLE_BYTES:
            problem = "a frame of %d bytes, over %d" % (payload, MAX_SAMPLE_BYTES)
        else:
            src.at = at + length + 3
            data = src.take(payload)
            if len(data) < payload:
                raise _Refusal("the input ends inside a block")
            pts = (timestamp + offset) * self.ticks
            yield Sample(data, pts, pts, self.default_duration, sync=bool(flags & 0x80))
            return
        if lacing:
            self._check_laces(size, length, lacing)
        else:
            self._skip(size)
        yield Defect(problem, reason)

    def _check_laces(self, size: int, length: int, lacing: int) -> None:
        """A laced block's sizes as FFmpeg's matroska_parse_laces reads them: where it fails, it
        resyncs inside the block."""
        if size > MAX_SAMPLE_BYTES:
            raise _Refusal("a laced block of %d bytes" % size)
        data = self.src.take(size)
        if len(data) < size:
            raise _Refusal("the input ends inside a block")
        problem = lace_problem(data[length + 3:], lacing)
        if problem:
            raise _Refusal("%s (FFmpeg resyncs inside it)" % problem)

    def _block_group(self, size: int, timestamp: int) -> Iterator[Event]:
        """A BlockGroup: one Block, its BlockDuration and ReferenceBlocks, as FFmpeg reads them
        (the whole group before the block)."""
        src = self.src
        end = src.pos + size
        sample: Optional[Sample] = None
        blocks = 0
        references = 0
        duration = -1
        problems: List[Defect] = []
        video = False
        first = True
        while src.pos < end:
            header = src.header(self.max_size_length)
            if header is None:
                raise _Refusal("the input ends inside a BlockGroup")
            element, child_size, length = header
            if child_size < 0 or src.pos + length + child_size > end:
                raise _Refusal("%s running past its BlockGroup (FFmpeg resyncs)" % _name(element))
            src.at += length
            if element == BLOCK:
                blocks += 1
                track, _ = self._block_head(child_size)
                video = video or track == self.video_number
                for event in self._block(child_size, timestamp, False):
                    if isinstance(event, Sample):
                        sample = event
                    elif isinstance(event, Defect):
                        problems.append(event)
            elif element in (BLOCK_DURATION, REFERENCE_BLOCK, 0x75A2):
                if child_size > 8:
                    raise _Refusal("%s of %d bytes (FFmpeg refuses it)" % (_name(element), child_size))
                data = src.take(child_size)
                if len(data) < child_size:
                    raise _Refusal("the input ends inside a BlockGroup")
                if element == BLOCK_DURATION:
                    duration = int.from_bytes(data, "big")
                elif element == REFERENCE_BLOCK:
                    references += 1
            elif element == BLOCK_ADDITIONS:
                self._walk(BLOCK_ADDITIONS_TABLE, src.pos + child_size, 4, set())
                problems.append(Defect("BlockAdditions (FFmpeg hands them to players as side data: HDR "
                                       "metadata, alpha)"))
            elif element == CODEC_STATE:
                self._skip(child_size)
                problems.append(Defect("a CodecState (a new codec configuration FFmpeg ignores)"))
            elif element == CRC32:
                if not first or child_size != 4:
                    raise _Refusal("a CRC-32 that is not 4 bytes and its BlockGroup's first element")
                self._skip(4)
            elif element == VOID:
                self._skip(child_size)
            else:
                raise _Refusal("%s in a BlockGroup (unknown to FFmpeg there)" % _name(element))
            first = False
        if not video:
            return
        if blocks != 1:
            problems.append(Defect("a BlockGroup with %d Blocks (FFmpeg takes the last)" % blocks))
        if duration == 0:
            problems.append(Defect("a BlockDuration of 0 (FFmpeg takes the DefaultDuration instead)", TIMING))
        if problems:
            yield problems[0]
            return
        if sample is not None:
            sample.sync = not references
            if duration > 0:
                sample.duration = duration * self.ticks
            yield sample


_TRACK_KEEP = {TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, CODEC_ID, CODEC_PRIVATE, CODEC_DELAY, DEFAULT_DURATION,
               TRACK_TIMESTAMP_SCALE, FLAG_ENABLED, VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT, FRAME_RATE, CROP_BOTTOM,
               CROP_TOP, CROP_LEFT, CROP_RIGHT, TRACK_OPERATION, CONTENT_ENCODINGS, BLOCK_ADDITION_MAPPING}


def _number(kind: int, data: bytes) -> Union[int, float, None]:
    if kind == UINT:
        return int.from_bytes(data, "big")
    if kind == SINT:
        return int.from_bytes(data, "big", signed=True)
    if not data:
        return None
    return float(struct.unpack(">f" if len(data) == 4 else ">d", data)[0])


def matroska_events(stream: IO[bytes], name: str) -> Iterator[Event]:
    """The events of a Matroska or WebM stream (events.py): its one H.264 or H.265 video track
    described, then each of its blocks' frames in the file's order, and a Defect wherever the
    stream could be read more than one way. InputError when it cannot be read as such video."""
    return _Reader(stream, name).events()


__all__ = ["ChunkedInput", "lace_problem", "matroska_events"]
