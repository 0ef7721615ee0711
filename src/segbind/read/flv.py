"""segbind's own FLV reader: the H.264 (codec 7) or H.265 (enhanced RTMP 'hvc1') video tags of
an FLV stream, as events (``events.TrackInfo``, ``Sample``, ``Defect``), read once, front to
back, from a file or a pipe.

It accepts the form the FLV specification (Adobe FLV 10.1, Annex E; Enhanced RTMP v1 for
'hvc1') and FFmpeg's libavformat/flvdec.c read one way, and refuses the rest;
docs/readers/matroska.md lists every rule and where it comes from. Before the track is
described (``TrackInfo``), a refusal is an ``InputError``; after it, a ``Defect``: fatal where
FFmpeg would resync (scan the bytes for something that looks like a tag) or the stream's
description changes, else the tag it touches is skipped.

Times are milliseconds (timescale 1000): ``dts`` is the tag's timestamp, ``pts`` adds the
composition time.
"""

from __future__ import annotations

import struct
from array import array
from typing import IO, Iterator, List, Optional, Tuple

from segbind_core.tag import CODEC_H264, CODEC_H265

from ..errors import InputError
from .decoder_config import parse_avcc, parse_hvcc
from .events import FRAMING, MAX_INDEX_BYTES, TIMING, Defect, Event, Sample, TrackInfo
from .matroska import ChunkedInput

AUDIO, VIDEO, SCRIPT = 8, 9, 18
LEGACY_AVC, LEGACY_HEVC = 7, 12
FOURCCS = {b"avc1": (CODEC_H264, "h264"), b"hvc1": (CODEC_H265, "hevc")}
KEY, INTER, COMMAND = 1, 2, 5
LEGACY_UNDEFINED = 0x100  # an AVCPacketType past 2, kept apart from the enhanced packet types
# Enhanced RTMP packet types
SEQUENCE_START, CODED_FRAMES, SEQUENCE_END, CODED_FRAMES_X, METADATA, MULTITRACK, MOD_EX = 0, 1, 2, 3, 4, 6, 7
SOUND_FORMATS = {0: "pcm", 1: "adpcm", 2: "mp3", 3: "pcm_le", 4: "nellymoser", 5: "nellymoser", 6: "nellymoser",
                 7: "alaw", 8: "mulaw", 9: "enhanced", 10: "aac", 11: "speex", 14: "mp3", 15: "device-specific"}
VIDEO_CODECS = {2: "h263", 3: "screen", 4: "vp6", 5: "vp6a", 6: "screen2", 7: "h264", 8: "h263", 9: "mpeg4",
                12: "hevc (non-standard codec id 12)"}
# Script tags FFmpeg's flv_read_packet skips (at time 0, named so, more than 13 + 1 + 4 bytes);
# any other becomes a packet of a subtitle or data stream.
SKIPPED_SCRIPTS = (b"onMetaData", b"onCuePoint", b"|RtmpSampleAccess")
# FFmpeg drops the timestamps of a frame whose composition time passes 15 minutes.
MAX_COMPOSITION_MS = 1000 * 60 * 15
TAG_HEADER = 11
# Keyframe positions kept to check a metadata keyframes index against (8 bytes each).
MAX_INDEX_POSITIONS = 1 << 20
MAX_OTHERS = 64  # other streams reported (each script tag name once)


AMF_MAX_DEPTH = 16  # flvdec.c MAX_DEPTH
AMF_KEY_BYTES, AMF_STRING_BYTES = 32, 1024  # the buffers amf_parse_object reads keys and strings into


def amf_end(data: bytes, pos: int, depth: int) -> int:
    """Where the AMF0 value at ``pos`` ends, read as FFmpeg's amf_parse_object reads it, inside
    ``data``; ValueError where FFmpeg fails on it or would read past ``data``."""
    if depth > AMF_MAX_DEPTH or pos >= len(data):
        raise ValueError("AMF nested too deep or cut short")
    kind = data[pos]
    pos += 1
    if kind == 0:
        pos += 8
    elif kind == 1:
        pos += 1
    elif kind == 2:
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length >= AMF_STRING_BYTES:
            raise ValueError("an AMF string of %d bytes" % length)
        pos += 2 + length
    elif kind in (3, 8):  # object, ECMA array: key/value pairs up to an empty key and 0x09
        if kind == 8:
            pos += 4
        while pos < len(data) - 2:
            length = int.from_bytes(data[pos:pos + 2], "big")
            if length >= AMF_KEY_BYTES:
                raise ValueError("an AMF key of %d bytes" % length)
            pos += 2 + length
            if not length:
                break
            pos = amf_end(data, pos, depth + 1)
        if pos >= len(data) or data[pos] != 9:
            raise ValueError("an AMF object without its end marker")
        pos += 1
    elif kind == 10:  # strict array
        count = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        for _ in range(count):
            if pos >= len(data) - 1:
                break
            pos = amf_end(data, pos, depth + 1)
    elif kind == 11:
        pos += 10
    elif kind not in (5, 6, 13):
        raise ValueError("AMF type %d" % kind)
    if pos > len(data):
        raise ValueError("an AMF value cut short")
    return pos


def amf_pairs(data: bytes, pos: int) -> Iterator[Tuple[bytes, int, int]]:
    """(key, value start, value end) of each pair of the AMF0 object or ECMA array at ``pos``,
    which ``amf_end`` has found whole."""
    kind = data[pos]
    pos += 5 if kind == 8 else 1
    while pos < len(data) - 2:
        length = int.from_bytes(data[pos:pos + 2], "big")
        if not length:
            return
        key = data[pos + 2:pos + 2 + length]
        start = pos + 2 + length
        pos = amf_end(data, start, 1)
        yield key, start, pos


def keyframe_positions(data: bytes, pos: int) -> List[int]:
    """The file positions of a metadata value's keyframes index (its ``keyframes`` object's
    ``filepositions`` numbers): where FFmpeg's seeking starts reading (parse_keyframes_index)."""
    if data[pos] not in (3, 8):
        return []
    positions: List[int] = []
    for key, start, _ in amf_pairs(data, pos):
        if key != b"keyframes" or data[start] != 3:
            continue
        for inner, value, end in amf_pairs(data, start):
            if inner != b"filepositions" or data[value] != 10:
                continue
            for at in range(value + 5, end, 9):
                if data[at] != 0:
                    raise ValueError("a keyframes file position that is not a number")
                number = struct.unpack(">d", data[at + 1:at + 9])[0]
                if not 0 <= number < 1 << 62:
                    raise ValueError("a keyframes file position of %r" % number)
                positions.append(int(number))
    return positions


def colour_info_problem(body: bytes) -> str:
    """Why FFmpeg's flv_parse_video_color_info fails on an enhanced metadata tag's body ("" when
    it reads it, or ignores it without failing)."""
    if body[:1] != b"\x02" or len(body) < 3:
        return ""  # not a string: FFmpeg ignores it
    length = int.from_bytes(body[1:3], "big")
    if length >= AMF_KEY_BYTES or 3 + length > len(body):
        return "its name does not fit"
    if body[3:3 + length] != b"colorInfo":
        return ""
    try:
        amf_end(body, 3 + length, 0)
    except ValueError as exc:
        return str(exc)
    return ""


class _Refusal(Exception):
    """The stream cannot be read one way from here on."""


class _Reader:
    """One pass over one FLV stream."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.src = ChunkedInput(stream)
        self.name = name
        self.announces_audio = False
        self.codec = 0
        self.codec_name = ""
        self.config = b""
        self.info: Optional[TrackInfo] = None
        self.others: List[str] = []
        self.audio_seen = False
        self.index_ahead = array("Q")  # keyframe positions a metadata index points at, sorted
        self.index_next = 0
        self.last_dts = -1  # the decoding time of the last frame yielded

    def events(self) -> Iterator[Event]:
        try:
            yield from self._tags()
        except _Refusal as refusal:
            if self.info is None:
                raise InputError("%s: %s" % (self.name, refusal)) from None
            yield Defect(str(refusal), fatal=True)

    def _tags(self) -> Iterator[Event]:
        src = self.src
        head = src.take(13)
        if len(head) < 13 or head[:4] != b"FLV\x01":
            raise _Refusal("not an FLV version 1 header")
        if head[4] & 0xFA:
            raise _Refusal("reserved FLV header flag bits set (0x%02X)" % head[4])
        if int.from_bytes(head[5:9], "big") != 9:
            raise _Refusal("an FLV DataOffset of %d, not 9 (FFmpeg skips to it, hiding the bytes between)"
                           % int.from_bytes(head[5:9], "big"))
        if head[9:13] != b"\x00\x00\x00\x00":
            raise _Refusal("a first PreviousTagSize that is not 0")
        self.announces_audio = bool(head[4] & 4)
        while True:
            if not src.fill(TAG_HEADER):
                if len(src.buf) != src.at:
                    raise _Refusal("the input ends inside a tag header")
                break
            buf, at = src.buf, src.at
            if self.index_next < len(self.index_ahead):
                self._check_index(src.pos, buf[at])
            first = buf[at]
            size = int.from_bytes(buf[at + 1:at + 4], "big")
            timestamp = int.from_bytes(buf[at + 4:at + 7], "big")
            extended = buf[at + 7]
            stream_id = int.from_bytes(buf[at + 8:at + 11], "big")
            src.at = at + TAG_HEADER
            kind = first & 0x1F
            problem = ""
            if first & 0xE0:
                problem = ("a tag marked filtered (encrypted: FFmpeg ignores the mark)" if first & 0x20 else
                           "reserved tag header bits set (0x%02X)" % first)
            elif stream_id:
                problem = "a tag with StreamID %d (always 0 in FLV)" % stream_id
            elif extended:
                problem = "a timestamp with the extended byte (FFmpeg reads it unsigned, FLV 10.1 signed)"
            if problem or kind not in (AUDIO, VIDEO, SCRIPT) or not size:
                self._skip(size)
                self._trailer(size)
                if problem or kind not in (AUDIO, VIDEO, SCRIPT):
                    event = Defect(problem or "a tag of type %d (FFmpeg skips it)" % kind,
                                   TIMING if problem.startswith("a timestamp") else FRAMING)
                    if self.info is None:
                        raise _Refusal(event.text)
                    yield event
                continue
            if kind == VIDEO:
                yield from self._video(size, timestamp)
            elif kind == AUDIO:
                yield from self._audio(size)
            else:
                yield from self._script(size, timestamp)
        if self.index_next < len(self.index_ahead):
            self._check_index(1 << 63, 0)
        if self.info is None:
            raise _Refusal("the input ends before its first video frame" if self.config else
                           "no H.264 or H.265 video tags")

    def _check_index(self, start: int, first: int) -> None:
        """A metadata keyframes index must point at video tags this reading sees: FFmpeg, on a
        file, starts reading there when a player seeks."""
        ahead, index = self.index_ahead, self.index_next
        while index < len(ahead) and ahead[index] <= start:
            if ahead[index] != start or first & 0x1F != VIDEO:
                raise _Refusal("the metadata's keyframes index points at byte %d, where this reading saw no video "
                               "tag (a player seeking there reads what this reading never saw)" % ahead[index])
            index += 1
        self.index_next = index

    def _trailer(self, size: int) -> None:
        """The PreviousTagSize after a tag: FFmpeg resyncs (scans for something like a tag) where
        it is not the tag's size plus 11, and drops the tag it follows."""
        data = self.src.take(4)
        if len(data) < 4:
            raise _Refusal("the input ends before a tag's PreviousTagSize")
        if int.from_bytes(data, "big") != size + TAG_HEADER:
            raise _Refusal("a PreviousTagSize of %d after a tag of %d bytes (FFmpeg resyncs there)"
                           % (int.from_bytes(data, "big"), size + TAG_HEADER))

    def _skip(self, size: int) -> None:
        if not self.src.skip(size):
            raise _Refusal("the input ends inside a tag")

    def _describe(self) -> TrackInfo:
        if self.announces_audio and not self.audio_seen:
            self.others.append("audio (flv)")
        length_size, units = self._config_units(self.config)
        if length_size not in (1, 2, 4):
            raise _Refusal("a NAL length size of %d bytes (ISO/IEC 14496-15 allows 1, 2 or 4)" % length_size)
        self.info = TrackInfo(self.codec, self.codec_name, length_size, units, 1000, self.others)
        return self.info

    def _config_units(self, record: bytes) -> Tuple[int, List[bytes]]:
        """(NAL length size, every unit) of the sequence header's avcC or hvcC."""
        try:
            if self.codec == CODEC_H265:
                return parse_hvcc(record)
            length_size, sets, more = parse_avcc(record)
            return length_size, sets + more
        except InputError as error:
            raise _Refusal("the sequence header: %s" % error) from None

    def _index(self, positions: List[int], after: int) -> None:
        """Keep a keyframes index's positions, to check off as the tags come."""
        if not positions:
            return
        if min(positions) < after:
            raise _Refusal("the metadata's keyframes index points behind it, at byte %d" % min(positions))
        pending = self.index_ahead[self.index_next:].tolist() + positions
        if len(pending) > MAX_INDEX_POSITIONS:
            raise _Refusal("a keyframes index of more than %d positions" % MAX_INDEX_POSITIONS)
        self.index_ahead = array("Q", sorted(set(pending)))
        self.index_next = 0

    def _late(self, text: str, fatal: bool = True, reason: str = FRAMING) -> Iterator[Event]:
        """A problem: before the track is described the input is refused; after, a Defect."""
        if self.info is None or fatal:
            raise _Refusal(text)
        yield Defect(text, reason)

    # -- video ---------------------------------------------------------------------------------

    def _video(self, size: int, timestamp: int) -> Iterator[Event]:
        src = self.src
        head = src.take(min(size, 8))
        if len(head) < min(size, 8):
            raise _Refusal("the input ends inside a tag")
        flags = head[0]
        if size == 1:  # FFmpeg skips a video tag of its flags byte alone
            self._trailer(size)
            return
        enhanced = bool(flags & 0x80)
        frame_type = (flags >> 4) & 7
        if enhanced and size < 5:
            raise _Refusal("an enhanced video tag of %d bytes, too short for its FourCC (FFmpeg resyncs)" % size)
        if enhanced and frame_type == COMMAND and head[0] & 0x0F == METADATA:
            body = head[5:] + src.take(size - len(head))
            self._trailer(size)
            problem = colour_info_problem(body)
            if problem:
                raise _Refusal("an enhanced video metadata tag FFmpeg cannot read (%s: it resyncs)" % problem)
            return  # colour description, as FFmpeg's muxer writes it (flv_parse_video_color_info)
        if enhanced:
            parsed = self._enhanced_head(head, size)
        else:
            parsed = self._legacy_head(head, size, frame_type)
        if parsed is None:  # a command frame: FFmpeg skips it
            self._skip(size - len(head))
            self._trailer(size)
            return
        codec, name, packet, header_length, composition = parsed
        if self.codec and codec != self.codec:
            raise _Refusal("video tags of another codec (%s after %s: FFmpeg opens another video stream)"
                           % (name, self.codec_name))
        self.codec, self.codec_name = codec, name
        # the payload: what follows the header, part of it already in ``head``
        payload = head[header_length:] + src.take(size - len(head))
        if len(payload) < size - header_length:
            raise _Refusal("the input ends inside a tag")
        self._trailer(size)
        if frame_type not in (KEY, INTER):
            yield from self._late("a video frame type of %d (FLV 10.1 gives H.264 and H.265 only 1 and 2)"
                                  % frame_type, fatal=False)
            return
        if packet == SEQUENCE_START:
            yield from self._sequence_header(payload)
            return
        if packet == SEQUENCE_END:
            if payload:
                yield from self._late("an end of sequence tag carrying %d bytes (FFmpeg passes them on as a "
                                      "frame)" % len(payload), fatal=False)
            return
        if packet not in (CODED_FRAMES, CODED_FRAMES_X):
            yield from self._late("a video packet type of %d (FFmpeg passes its bytes on as a frame)"
                                  % (packet & 0xFF), fatal=False)
            return
        if not self.config:
            raise _Refusal("a coded frame before the sequence header (FFmpeg then reads it as Annex-B)")
        if not payload:
            return  # FFmpeg skips an empty frame
        if composition > MAX_COMPOSITION_MS:
            yield from self._late("a composition time of %d ms (FFmpeg drops the frame's timestamps past 15 "
                                  "minutes)" % composition, fatal=False)
            return
        if timestamp <= self.last_dts:
            # FFmpeg rewrites the decoding times that follow one going back (or repeating):
            # its frames are timed otherwise than the tags say
            yield from self._late("a frame's decoding time of %d ms, not after the one before (%d ms: FFmpeg "
                                  "rewrites the ones that follow)" % (timestamp, self.last_dts), fatal=False,
                                  reason=TIMING)
            return
        self.last_dts = timestamp
        if self.info is None:
            yield self._describe()
        yield Sample(payload, timestamp + composition, timestamp, sync=frame_type == KEY)

    def _legacy_head(self, head: bytes, size: int, frame_type: int) -> Optional[Tuple[int, str, int, int, int]]:
        """(codec, name, packet type, header length, composition time) of a legacy video tag:
        flags, AVCPacketType, CompositionTime SI24 (FLV 10.1 E.4.3.1)."""
        if frame_type == COMMAND:
            return None
        codec_id = head[0] & 0x0F
        if codec_id != LEGACY_AVC:
            if self.codec:
                raise _Refusal("video tags of another codec (%s after %s: FFmpeg opens another video stream)"
                               % (VIDEO_CODECS.get(codec_id, "codec %d" % codec_id), self.codec_name))
            raise _Refusal("no H.264 or H.265 video (FLV video codec %s)" % VIDEO_CODECS.get(codec_id, str(codec_id)))
        if size < 5:
            raise _Refusal("an H.264 tag of %d bytes, too short for its header (FFmpeg resyncs)" % size)
        composition = int.from_bytes(head[2:5], "big", signed=True)
        packet = head[1] if head[1] <= SEQUENCE_END else LEGACY_UNDEFINED + head[1]  # AVCPacketType 0 to 2
        return CODEC_H264, "h264", packet, 5, composition

    def _enhanced_head(self, head: bytes, size: int) -> Optional[Tuple[int, str, int, int, int]]:
        """The same of an enhanced RTMP video tag: flags with the packet type, a FourCC, then
        for CodedFrames a CompositionTime SI24."""
        packet = head[0] & 0x0F
        frame_type = (head[0] >> 4) & 7
        if packet in (MOD_EX, MULTITRACK):
            raise _Refusal("an enhanced video tag of packet type %s (FFmpeg reads it; others may not)" % (
                "ModEx" if packet == MOD_EX else "Multitrack"))
        if frame_type == COMMAND:
            return None
        fourcc = bytes(head[1:5])
        if fourcc not in FOURCCS:
            if self.codec:
                raise _Refusal("video tags of another codec (%r after %s: FFmpeg opens another video stream)"
                               % (fourcc, self.codec_name))
            raise _Refusal("no H.264 or H.265 video (FLV video FourCC %r)" % fourcc)
        codec, name = FOURCCS[fourcc]
        if packet == CODED_FRAMES:
            if size < 8:
                raise _Refusal("an enhanced video tag of %d bytes, too short for its header (FFmpeg resyncs)" % size)
            return codec, name, packet, 8, int.from_bytes(head[5:8], "big", signed=True)
        return codec, name, packet, 5, 0

    def _sequence_header(self, payload: bytes) -> Iterator[Event]:
        """The decoder configuration record (avcC, hvcC): once; the same bytes again are harmless,
        others change what every later frame decodes as (FFmpeg hands them on as new extradata)."""
        if not payload:
            yield from self._late("an empty sequence header (FFmpeg ignores it)", fatal=False)
            return
        if not self.config:
            self._config_units(payload)
            self.config = payload
            return
        if payload != self.config:
            raise _Refusal("the sequence header changes mid-stream (FFmpeg hands the new one to the decoder)")

    # -- audio and script data -------------------------------------------------------------------

    def _audio(self, size: int) -> Iterator[Event]:
        first = self.src.take(1)
        if not first:
            raise _Refusal("the input ends inside a tag")
        self._skip(size - 1)
        self._trailer(size)
        line = "audio (%s)" % SOUND_FORMATS.get(first[0] >> 4, "codec %d" % (first[0] >> 4))
        if self.info is None:
            if not self.audio_seen:
                self.others.append(line)
            self.audio_seen = True
        elif not self.audio_seen and not self.announces_audio:
            raise _Refusal("an audio tag after the video began, in an FLV whose header announces no audio")
        self.audio_seen = True
        return iter(())

    def _script(self, size: int, timestamp: int) -> Iterator[Event]:
        """A script data tag: FFmpeg skips the ones named so at time 0 (their value must read
        whole, as its amf_parse_object reads it: where it fails, FFmpeg may move its next tag to
        where a keyframes index points); any other becomes a packet of a subtitle or data
        stream, another track."""
        start = self.src.pos
        head = self.src.take(min(size, 64))
        name = b""
        if len(head) >= 3 and head[0] == 2:
            length = int.from_bytes(head[1:3], "big")
            name = head[3:3 + length] if 3 + length <= len(head) else b""
        if name in SKIPPED_SCRIPTS and timestamp == 0 and size > 13 + 1 + 4:
            if size > MAX_INDEX_BYTES:
                raise _Refusal("a script tag of %d bytes" % size)
            body = head + self.src.take(size - len(head))
            self._trailer(size)
            try:
                amf_end(body, 3 + len(name), 0)
                positions = keyframe_positions(body, 3 + len(name))
            except ValueError as error:
                raise _Refusal("a %s tag FFmpeg cannot read (%s)" % (name.decode("latin-1"), error)) from None
            self._index(positions, start + len(body) + 4)
            return iter(())
        self._skip(size - len(head))
        self._trailer(size)
        line = "data (script tag %r)" % name.decode("latin-1")[:32]
        if self.info is None:
            if line not in self.others:
                if len(self.others) >= MAX_OTHERS:
                    raise _Refusal("more than %d other streams" % MAX_OTHERS)
                self.others.append(line)
            return iter(())
        raise _Refusal("a script tag FFmpeg reads as a stream of its own, after the video began: %s at %d ms"
                       % (line, timestamp))


def flv_events(stream: IO[bytes], name: str) -> Iterator[Event]:
    """The events of an FLV stream (events.py): its H.264 or H.265 video described, then each
    video frame in the file's order, and a Defect wherever the stream could be read more than
    one way. InputError when it cannot be read as such video."""
    return _Reader(stream, name).events()


__all__ = ["amf_end", "colour_info_problem", "flv_events", "keyframe_positions"]
