"""HLS media playlists read by RFC 8216, strictly, and successive versions of a live one.

A playlist that a player reads one way and segbind another is how a verdict of "accepted" ends
up in front of someone else's video. So every construct is either read exactly as both hls.js
(src/loader/m3u8-parser.ts) and FFmpeg (libavformat/hls.c) read it, or refused with a one-line
reason (InputError); nothing is skipped. The rules, and the reader code behind each, are in
docs/readers/hls.md.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import InputError
from .sniff import MPEGTS
from .sources import MAX_PLAYLIST_BYTES, Range, is_url

# FFmpeg reads each line into MAX_URL_SIZE (4096) bytes and drops what does not fit
# (aviobuf.c ff_get_line): a longer line is another line to it.
MAX_LINE_BYTES = 4095
# hls.js reads numbers as JavaScript doubles (parseInt, parseFloat): exact up to 2^53 - 1.
MAX_SAFE_INTEGER = (1 << 53) - 1
# FFmpeg refuses a target duration of INT64_MAX / AV_TIME_BASE seconds or more.
MAX_TARGET_DURATION_S = ((1 << 63) - 1) // 1000000 - 1
# FFmpeg copies EXT-X-MAP's BYTERANGE into a 32-byte buffer (hls.c init_section_info).
MAX_MAP_BYTERANGE_CHARS = 31

_BOM = b"\xef\xbb\xbf"
# RFC 8216 4.1: no control characters but CR and LF; U+2028 and U+2029 end a line for hls.js's
# regular expressions (JavaScript's `.`) and for no one else.
_FORBIDDEN_CHAR = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]|\r(?!\n)")
# hls.js's variable reference (utils/variable-substitution.ts VARIABLE_REPLACEMENT_REGEX).
_VARIABLE_REFERENCE = re.compile(r"\{\$[a-zA-Z0-9_-]+\}")
_DIGITS = re.compile(r"[0-9]+\Z")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?),")
_SIGNED_FLOAT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
_BYTERANGE = re.compile(r"([0-9]+)(?:@([0-9]+))?\Z")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                        r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)\Z")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=(?:"([^"]*)"|([^",\s]+))(,|\Z)')
# URIs: RFC 3986 characters only, without "'" (browsers percent-encode it in a query, others
# send it as it is) and "\" (browsers read it as "/"); "#" (a fragment) is refused on its own.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/?%\[\]]+\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENT = re.compile(r"(?:\.|%2e){1,2}\Z", re.IGNORECASE)
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\Z")
_PORT = re.compile(r"[1-9][0-9]{0,4}\Z")
_DEFAULT_PORT = {"http": "80", "https": "443"}

# Tags that hls.js or FFmpeg match by prefix (m3u8-parser.ts LEVEL_PLAYLIST_REGEX_SLOW, hls.c
# av_strstart "#EXT-X-ENDLIST"): a longer name is read as these.
_PREFIX_MATCHED = ("EXT-X-DISCONTINUITY", "EXT-X-ENDLIST", "EXT-X-GAP", "EXT-X-INDEPENDENT-SEGMENTS",
                   "EXT-X-I-FRAMES-ONLY")

_MASTER_TAGS = ("EXT-X-STREAM-INF", "EXT-X-I-FRAME-STREAM-INF", "EXT-X-MEDIA", "EXT-X-SESSION-DATA",
                "EXT-X-SESSION-KEY", "EXT-X-CONTENT-STEERING")

# Tags a player acts on and segbind does not: refused, with the reason.
_REFUSED = {
    "EXT-X-DEFINE": "variables: hls.js substitutes {$name} references, FFmpeg reads them as they are",
    "EXT-X-PART": "low-latency partial segments: hls.js plays the parts, segbind reads whole segments",
    "EXT-X-PART-INF": "low-latency partial segments: hls.js plays the parts, segbind reads whole segments",
    "EXT-X-PRELOAD-HINT": "low-latency preload hint: hls.js loads the hinted resource, segbind does not",
    "EXT-X-SKIP": "a delta update: hls.js fills the skipped segments from an earlier version, segbind "
                  "reads whole playlists",
    "EXT-X-SERVER-CONTROL": "low-latency server control: hls.js asks for blocking and delta playlists "
                            "segbind never reads",
    "EXT-X-RENDITION-REPORT": "low-latency rendition reports: hls.js reads other renditions' state from them",
    "EXT-X-GAP": "a gap segment: hls.js skips it, FFmpeg plays it",
    "EXT-X-DATERANGE": "date ranges: hls.js acts on them (an interstitial plays other media in place of "
                       "the segments), segbind does not",
    "EXT-X-I-FRAMES-ONLY": "an I-frame playlist: players read it for trick play with implicit init "
                           "sections, segbind reads whole segments",
}

# Tags accepted but not acted on: the playlist reports each one it holds (MediaPlaylist.notes).
_NOTED = {
    "EXT-X-VERSION": "EXT-X-VERSION: compatibility version not checked (neither hls.js nor FFmpeg acts on it)",
    "EXT-X-INDEPENDENT-SEGMENTS": "EXT-X-INDEPENDENT-SEGMENTS: a hint; segbind reads every segment whole",
    "EXT-X-PROGRAM-DATE-TIME": "EXT-X-PROGRAM-DATE-TIME: dates are metadata; segbind judges the tags' "
                               "capture times",
    "EXT-X-START": "EXT-X-START: players may start at its offset, a subset of the segments segbind reads",
    "EXT-X-BITRATE": "EXT-X-BITRATE: a bandwidth hint, not acted on",
    "EXT-X-ALLOW-CACHE": "EXT-X-ALLOW-CACHE: removed from the protocol (version 7); ignored by hls.js and FFmpeg",
}


# The tags read, each by the _Reader method named.
_HANDLERS = {
    "EXTM3U": "_extm3u",
    "EXTINF": "_extinf",
    "EXT-X-BYTERANGE": "_byterange",
    "EXT-X-DISCONTINUITY": "_discontinuity",
    "EXT-X-MAP": "_map",
    "EXT-X-KEY": "_key",
    "EXT-X-TARGETDURATION": "_targetduration",
    "EXT-X-MEDIA-SEQUENCE": "_media_sequence",
    "EXT-X-DISCONTINUITY-SEQUENCE": "_discontinuity_sequence_tag",
    "EXT-X-PLAYLIST-TYPE": "_playlist_type",
    "EXT-X-ENDLIST": "_endlist",
    "EXT-X-VERSION": "_version",
    "EXT-X-INDEPENDENT-SEGMENTS": "_independent_segments",
    "EXT-X-PROGRAM-DATE-TIME": "_program_date_time",
    "EXT-X-START": "_start",
    "EXT-X-BITRATE": "_bitrate",
    "EXT-X-ALLOW-CACHE": "_allow_cache",
}


class MediaSegment(NamedTuple):
    """One media segment a playlist lists."""

    media: Range                 # its URI (an absolute http(s) URL, or a path), offset, length (None: whole)
    init: Optional[Range]        # its init segment (EXT-X-MAP), or None
    discontinuity: bool          # EXT-X-DISCONTINUITY before it
    sequence: int                # its media sequence number
    discontinuity_sequence: int  # its discontinuity sequence number (hls.js's cc)
    duration_s: float            # its EXTINF duration


class MediaPlaylist(NamedTuple):
    """A media playlist as read: its segments in order, and what a live reader needs."""

    segments: Tuple[MediaSegment, ...]
    target_duration_s: int       # EXT-X-TARGETDURATION
    ended: bool                  # EXT-X-ENDLIST (VOD without it is refused: players reload it)
    playlist_type: Optional[str]  # "VOD", "EVENT", or None
    media_sequence: int          # the first segment's media sequence number
    discontinuity_sequence: int  # EXT-X-DISCONTINUITY-SEQUENCE
    notes: Tuple[str, ...]       # tags held but not acted on, one line each

    @property
    def next_sequence(self) -> int:
        """The media sequence number after the last segment listed."""
        return self.media_sequence + len(self.segments)


def parse_media_playlist(raw: bytes, location: str) -> MediaPlaylist:
    """A media playlist's segments, resolved against ``location`` (its final URL after redirects,
    or a local path; "-" for standard input).

    Anything hls.js or FFmpeg would read differently, or act on when segbind does not, raises
    InputError with one line: where, what, and why.
    """
    return _Reader(location).read(raw)


def check_init_for(segment: MediaSegment, container: str, location: str) -> None:
    """Refuse an EXT-X-MAP before an MPEG-TS segment (``container`` as ``sniff`` names it).

    FFmpeg feeds the map's bytes to the TS demuxer before the segment (hls.c read_data), and
    hls.js demuxes them too (tsdemuxer.ts resetInitSegment); segbind's readers would not.
    """
    if container == MPEGTS and segment.init is not None:
        raise InputError("%s: media segment %d (%s) is MPEG-TS after an EXT-X-MAP (%s): FFmpeg and hls.js "
                         "read the map's bytes as part of the stream" % (location, segment.sequence,
                                                                        segment.media[0], segment.init[0]))


class _Reader:
    """One pass over a playlist's lines; every rule is checked where its line is read."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.remote = is_url(location)
        if self.remote:
            why = _uri_problem(location)
            try:
                self.scheme, self.authority, path = _split_url(location)
            except ValueError as exc:
                why = why or str(exc)
                path = "/"
            why = why or _dot_segment_problem(path)
            if why is not None:
                raise InputError("%s: playlist URL: %s" % (location, why))
            self.directory = path[:path.rfind("/") + 1]
        else:
            # As given, not normalised: FFmpeg leaves "dir/.." to the kernel (through symbolic links).
            self.directory = os.getcwd() if location == "-" else os.path.join(os.getcwd(), os.path.dirname(location))
        self.line_number = 0
        self.segments: List[MediaSegment] = []
        self.seen: Dict[str, int] = {}           # single-occurrence tags: line of each
        self.notes: Dict[str, str] = {}
        self.target: Optional[int] = None
        self.longest: Tuple[float, int] = (0.0, 0)  # (duration, line) of the longest EXTINF
        self.media_sequence = 0
        self.discontinuity_sequence = 0
        self.discontinuities = 0
        self.playlist_type: Optional[str] = None
        self.ended = False
        self.init: Optional[Range] = None
        # FFmpeg makes its playlist (hls.c ensure_playlist) at the first segment or one of a few tags.
        self.opened = False
        self.early_end = 0
        # Tags waiting for their segment's URI: EXTINF duration, EXT-X-BYTERANGE, the others.
        self.duration: Optional[float] = None
        self.byterange: Optional[Tuple[int, Optional[int]]] = None
        self.discontinuity = False
        self.pending: Dict[str, int] = {}         # tag name -> line, for those applying to the next URI

    # -- errors ---------------------------------------------------------------------------------

    def fail(self, why: str) -> InputError:
        if self.line_number:
            return InputError("%s line %d: %s" % (self.location, self.line_number, why))
        return InputError("%s: %s" % (self.location, why))

    # -- the text -------------------------------------------------------------------------------

    def read(self, raw: bytes) -> MediaPlaylist:
        if len(raw) > MAX_PLAYLIST_BYTES:
            raise self.fail("playlist larger than %d MiB" % (MAX_PLAYLIST_BYTES >> 20))
        if raw.startswith(_BOM):
            raise self.fail("the playlist starts with a byte order mark (RFC 8216 4.1: FFmpeg does not "
                            "read it as a playlist, hls.js drops it)")
        if not (raw.startswith(b"#EXTM3U") and raw[7:8] in (b"", b"\n") or raw.startswith(b"#EXTM3U\r\n")):
            raise self.fail("not an HLS playlist (its first line is not #EXTM3U)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.line_number = raw.count(b"\n", 0, exc.start) + 1
            raise self.fail("not UTF-8 (RFC 8216 4.1: browsers replace such bytes, FFmpeg keeps them)") from None
        self._check_characters(text)
        lines = text.split("\n")
        for index, line in enumerate(lines):
            self.line_number = index + 1
            if line.endswith("\r"):
                line = line[:-1]
            if len(line) > MAX_LINE_BYTES // 4 and len(line.encode("utf-8")) > MAX_LINE_BYTES:
                raise self.fail("a line longer than %d bytes (FFmpeg cuts it there, hls.js does not)"
                                % MAX_LINE_BYTES)
            if not line:
                continue
            if line[0] == " " or line[-1] == " ":
                raise self.fail("white space at the start or end of a line (RFC 8216 4.1: hls.js reads a line "
                                "after spaces as a URI and trims URIs, FFmpeg keeps them at the start)")
            if line.startswith("#EXT"):
                name, colon, value = line[1:].partition(":")
                self._tag(name, value if colon else None, lines)
            elif line[0] != "#":  # other lines that start with "#" are comments
                self._uri(line)
        self.line_number = 0
        return self._finish()

    def _check_characters(self, text: str) -> None:
        found = _FORBIDDEN_CHAR.search(text)
        if found is not None:
            self.line_number = text.count("\n", 0, found.start()) + 1
            char = found.group()
            if char == "\r":
                raise self.fail("a carriage return not followed by a line feed (hls.js and FFmpeg end a line "
                                "there, RFC 8216 4.1 does not)")
            if char == "\x00":
                raise self.fail("a NUL character (FFmpeg ends the line there, hls.js does not)")
            if char in "\u2028\u2029":
                raise self.fail("U+%04X (hls.js ends a tag's line there, FFmpeg does not)" % ord(char))
            raise self.fail("control character U+%04X (RFC 8216 4.1)" % ord(char))
        found = _VARIABLE_REFERENCE.search(text)
        if found is not None:
            self.line_number = text.count("\n", 0, found.start()) + 1
            raise self.fail("variable reference %s (hls.js substitutes EXT-X-DEFINE variables, FFmpeg does not)"
                            % found.group()[:40])

    # -- tags -----------------------------------------------------------------------------------

    def _tag(self, name: str, value: Optional[str], lines: List[str]) -> None:
        method = _HANDLERS.get(name)
        if method is not None:
            getattr(self, method)(value)  # no table of bound methods: a reader holds no cycle
            return
        if name in _MASTER_TAGS:
            raise self.fail("master playlist (%s); verify one of its media playlists%s"
                            % (name, _variants(lines, self.line_number - 1)))
        if name in _REFUSED:
            raise self.fail("%s: %s" % (name, _REFUSED[name]))
        for known in _PREFIX_MATCHED:
            if name.startswith(known):
                raise self.fail("unknown tag %s: hls.js reads it as %s" % (name, known))
        raise self.fail("unknown tag %s: a player may act on it (some load LHLS #EXT-X-PREFETCH segments), "
                        "segbind would not" % name)

    def _once(self, name: str) -> None:
        if name in self.seen:
            raise self.fail("%s again (first on line %d): RFC 8216 4.3.3 allows it once, hls.js refuses the "
                            "playlist" % (name, self.seen[name]))
        self.seen[name] = self.line_number

    def _no_value(self, name: str, value: Optional[str]) -> None:
        if value is not None:
            raise self.fail("%s takes no value" % name)

    def _value(self, name: str, value: Optional[str]) -> str:
        if not value:
            raise self.fail("%s without a value" % name)
        return value

    def _integer(self, name: str, text: str, least: int = 0, most: int = MAX_SAFE_INTEGER) -> int:
        if not _DIGITS.match(text) or len(text.lstrip("0")) > 16:
            raise self.fail("%s: %r is not a decimal integer up to %d" % (name, text, most))
        number = int(text)
        if not least <= number <= most:
            raise self.fail("%s: %d is not within %d to %d" % (name, number, least, most))
        return number

    def _before_segments(self, name: str) -> None:
        if self.segments:
            raise self.fail("%s after the first media segment (RFC 8216 4.3.3; FFmpeg applies it to the "
                            "segments before it, hls.js refuses the playlist)" % name)

    def _note(self, name: str) -> None:
        self.notes.setdefault(name, _NOTED[name])

    def _extm3u(self, value: Optional[str]) -> None:
        if self.line_number != 1:
            raise self.fail("EXTM3U again (it is the first line only)")

    def _extinf(self, value: Optional[str]) -> None:
        text = self._value("EXTINF", value)
        if "EXTINF" in self.pending:
            raise self.fail("a second EXTINF for one media segment (first on line %d)" % self.pending["EXTINF"])
        found = _DURATION.match(text)
        if found is None:
            raise self.fail("EXTINF %r: not <duration>,[<title>] with a decimal duration (hls.js reads what "
                            "follows a duration it does not read as a URI)" % text[:40])
        duration = float(found.group(1))
        if duration == 0:
            raise self.fail("EXTINF duration %s: a segment must last more than 0 s (hls.js reads 0 as no "
                            "EXTINF in places, FFmpeg as 1 ms)" % found.group(1)[:40])
        if duration == math.inf:
            raise self.fail("EXTINF duration %s...: hls.js reads it as Infinity and drops the segment"
                            % found.group(1)[:40])
        self.duration = duration
        self.pending["EXTINF"] = self.line_number
        if duration > self.longest[0]:
            self.longest = (duration, self.line_number)

    def _byterange(self, value: Optional[str]) -> None:
        text = self._value("EXT-X-BYTERANGE", value)
        if "EXT-X-BYTERANGE" in self.pending:
            raise self.fail("a second EXT-X-BYTERANGE for one media segment (first on line %d)"
                            % self.pending["EXT-X-BYTERANGE"])
        self.byterange = self._range("EXT-X-BYTERANGE", text)
        self.pending["EXT-X-BYTERANGE"] = self.line_number

    def _range(self, name: str, text: str) -> Tuple[int, Optional[int]]:
        found = _BYTERANGE.match(text)
        if found is None:
            raise self.fail("%s %r: not <length>[@<offset>]" % (name, text[:40]))
        length = self._integer(name + " length", found.group(1), least=1)
        offset = None if found.group(2) is None else self._integer(name + " offset", found.group(2))
        if offset is not None and offset + length > MAX_SAFE_INTEGER:
            raise self.fail("%s %s ends past byte %d (hls.js reads offsets as doubles)"
                            % (name, text, MAX_SAFE_INTEGER))
        return length, offset

    def _discontinuity(self, value: Optional[str]) -> None:
        self._no_value("EXT-X-DISCONTINUITY", value)
        if self.discontinuity:
            raise self.fail("a second EXT-X-DISCONTINUITY for one media segment (first on line %d)"
                            % self.pending["EXT-X-DISCONTINUITY"])
        self.discontinuity = True
        self.pending["EXT-X-DISCONTINUITY"] = self.line_number
        self.discontinuities += 1

    def _map(self, value: Optional[str]) -> None:
        self.opened = True
        attributes = self._attributes("EXT-X-MAP", self._value("EXT-X-MAP", value), {"URI": True, "BYTERANGE": True})
        for tag in ("EXTINF", "EXT-X-BYTERANGE"):
            if tag in self.pending:
                raise self.fail("EXT-X-MAP between a media segment's %s (line %d) and its URI: hls.js rebuilds "
                                "the segment around the map; write the map first" % (tag, self.pending[tag]))
        if "URI" not in attributes:
            raise self.fail("EXT-X-MAP without URI")
        uri = self._resolve(attributes["URI"])
        if "BYTERANGE" in attributes:
            text = attributes["BYTERANGE"]
            if len(text) > MAX_MAP_BYTERANGE_CHARS:
                raise self.fail("EXT-X-MAP BYTERANGE longer than %d characters (FFmpeg cuts it there)"
                                % MAX_MAP_BYTERANGE_CHARS)
            length, offset = self._range("EXT-X-MAP BYTERANGE", text)
            if offset is None:
                raise self.fail("EXT-X-MAP BYTERANGE without an offset (RFC 8216 4.3.2.5 leaves it undefined; "
                                "hls.js and FFmpeg read 0)")
            self.init = (uri, offset, length)
        else:
            self.init = (uri, 0, None)

    def _key(self, value: Optional[str]) -> None:
        attributes = self._attributes("EXT-X-KEY", self._value("EXT-X-KEY", value), None)
        method = attributes.get("METHOD")
        if method is None:
            raise self.fail("EXT-X-KEY without METHOD")
        if method != "NONE":
            raise self.fail("encrypted segments (EXT-X-KEY METHOD=%s) are not read" % method[:40])
        if value != "METHOD=NONE":
            raise self.fail("EXT-X-KEY METHOD=NONE with other attributes, or quoted (RFC 8216 4.3.2.4)")

    def _targetduration(self, value: Optional[str]) -> None:
        self.opened = True
        self._once("EXT-X-TARGETDURATION")
        if value == "0":
            raise self.fail("EXT-X-TARGETDURATION 0 (hls.js reads it as 1, FFmpeg as 0)")
        self.target = self._integer("EXT-X-TARGETDURATION", self._value("EXT-X-TARGETDURATION", value),
                                    least=1, most=MAX_TARGET_DURATION_S)

    def _media_sequence(self, value: Optional[str]) -> None:
        self.opened = True
        self._once("EXT-X-MEDIA-SEQUENCE")
        self._before_segments("EXT-X-MEDIA-SEQUENCE")
        self.media_sequence = self._integer("EXT-X-MEDIA-SEQUENCE", self._value("EXT-X-MEDIA-SEQUENCE", value))

    def _discontinuity_sequence_tag(self, value: Optional[str]) -> None:
        self._once("EXT-X-DISCONTINUITY-SEQUENCE")
        self._before_segments("EXT-X-DISCONTINUITY-SEQUENCE")
        if self.discontinuities:
            raise self.fail("EXT-X-DISCONTINUITY-SEQUENCE after an EXT-X-DISCONTINUITY (RFC 8216 4.3.3.3)")
        self.discontinuity_sequence = self._integer("EXT-X-DISCONTINUITY-SEQUENCE",
                                                    self._value("EXT-X-DISCONTINUITY-SEQUENCE", value))

    def _playlist_type(self, value: Optional[str]) -> None:
        self.opened = True
        self._once("EXT-X-PLAYLIST-TYPE")
        text = self._value("EXT-X-PLAYLIST-TYPE", value)
        if text not in ("EVENT", "VOD"):
            raise self.fail("EXT-X-PLAYLIST-TYPE %r: EVENT or VOD (hls.js upper-cases it, FFmpeg does not)"
                            % text[:40])
        self.playlist_type = text

    def _endlist(self, value: Optional[str]) -> None:
        self._no_value("EXT-X-ENDLIST", value)
        self._once("EXT-X-ENDLIST")
        if not self.opened:
            self.early_end = self.line_number  # refused at the end, after what the playlist lacks
        self.ended = True

    def _version(self, value: Optional[str]) -> None:
        self._once("EXT-X-VERSION")
        self._integer("EXT-X-VERSION", self._value("EXT-X-VERSION", value), least=1)
        self._note("EXT-X-VERSION")

    def _independent_segments(self, value: Optional[str]) -> None:
        self._no_value("EXT-X-INDEPENDENT-SEGMENTS", value)
        self._once("EXT-X-INDEPENDENT-SEGMENTS")
        self._note("EXT-X-INDEPENDENT-SEGMENTS")

    def _program_date_time(self, value: Optional[str]) -> None:
        text = self._value("EXT-X-PROGRAM-DATE-TIME", value)
        if not _DATE_TIME.match(text):
            raise self.fail("EXT-X-PROGRAM-DATE-TIME %r is not an ISO 8601 date and time with a zone" % text[:40])
        if "EXT-X-PROGRAM-DATE-TIME" in self.pending:
            raise self.fail("a second EXT-X-PROGRAM-DATE-TIME for one media segment")
        self.pending["EXT-X-PROGRAM-DATE-TIME"] = self.line_number
        self._note("EXT-X-PROGRAM-DATE-TIME")

    def _start(self, value: Optional[str]) -> None:
        self.opened = True
        self._once("EXT-X-START")
        attributes = self._attributes("EXT-X-START", self._value("EXT-X-START", value),
                                      {"TIME-OFFSET": False, "PRECISE": False})
        if not _SIGNED_FLOAT.match(attributes.get("TIME-OFFSET", "")):
            raise self.fail("EXT-X-START without a decimal TIME-OFFSET")
        if attributes.get("PRECISE", "NO") not in ("YES", "NO"):
            raise self.fail("EXT-X-START PRECISE is YES or NO")
        self._note("EXT-X-START")

    def _bitrate(self, value: Optional[str]) -> None:
        self._integer("EXT-X-BITRATE", self._value("EXT-X-BITRATE", value))
        self._note("EXT-X-BITRATE")

    def _allow_cache(self, value: Optional[str]) -> None:
        self._once("EXT-X-ALLOW-CACHE")
        if value not in ("YES", "NO"):
            raise self.fail("EXT-X-ALLOW-CACHE is YES or NO")
        self._note("EXT-X-ALLOW-CACHE")

    def _attributes(self, name: str, text: str, known: Optional[Dict[str, bool]]) -> Dict[str, str]:
        """An attribute list (RFC 8216 4.2) read the one way hls.js (utils/attr-list.ts) and FFmpeg
        (utils.c ff_parse_key_value) agree on: ``known`` names each attribute and whether its
        value must be quoted (None: any name, any form)."""
        found: Dict[str, str] = {}
        at = 0
        while at < len(text):
            match = _ATTRIBUTE.match(text, at)
            if match is None:
                raise self.fail("%s: attribute list %r is not NAME=value,... without white space (RFC 8216 4.2)"
                                % (name, text[at:at + 40]))
            key, quoted, plain, comma = match.groups()
            if key in found:
                raise self.fail("%s: attribute %s twice (RFC 8216 4.2; hls.js and FFmpeg keep the last)"
                                % (name, key))
            if quoted is not None and "\\" in quoted:
                raise self.fail("%s: a backslash in %s (FFmpeg reads it as an escape, hls.js does not)"
                                % (name, key))
            if known is not None:
                if key not in known:
                    raise self.fail("%s: unknown attribute %s" % (name, key))
                if known[key] != (quoted is not None):
                    raise self.fail("%s: %s must %sbe quoted (RFC 8216)" % (name, key, "" if known[key] else "not "))
            found[key] = quoted if quoted is not None else plain
            at = match.end()
            if comma and at == len(text):
                raise self.fail("%s: attribute list ends with a comma" % name)
        return found

    # -- URIs -----------------------------------------------------------------------------------

    def _resolve(self, uri: str) -> str:
        """``uri`` resolved against the playlist (RFC 3986 section 5), or InputError for a form
        that browsers, hls.js's URL toolkit (RFC 1808), FFmpeg (url.c ff_make_absolute_url2)
        and Python would not all resolve and request the same way."""
        why = _uri_problem(uri)
        if why is not None:
            raise self.fail("URI %r: %s" % (uri[:80], why))
        path, question, query = uri.partition("?")
        first_segment = path.split("/", 1)[0]
        if self.remote:
            if ":" in first_segment:  # a scheme, to FFmpeg (url.c ff_url_decompose) and hls.js alike
                if not path.startswith(("http://", "https://")):
                    raise self.fail("%s is not an http(s) URL (segbind reads segments over http(s) only)" % uri[:80])
                absolute = uri
            elif path.startswith("//"):
                absolute = self.scheme + ":" + uri
            elif not path:
                raise self.fail("URI %r has no path" % uri[:80])
            else:
                merged = path if path.startswith("/") else self.directory + path
                absolute = "%s://%s%s%s" % (self.scheme, self.authority, merged, question + query)
            try:
                _scheme, _authority, absolute_path = _split_url(absolute)
            except ValueError as exc:
                raise self.fail("URI %r: %s" % (uri[:80], exc)) from None
            why = _dot_segment_problem(absolute_path)
            if why is not None:
                raise self.fail("URI %r: %s" % (uri[:80], why))
            return absolute
        if ":" in first_segment:
            if path.startswith(("http://", "https://")):
                raise self.fail("%s is remote; a local playlist's segments must be local files" % uri[:80])
            raise self.fail("URI %r has a scheme (%s:); a local playlist's segments must be local files, "
                            "named by relative paths" % (uri[:80], first_segment.split(":", 1)[0][:20]))
        if question:
            raise self.fail("URI %r has a query; a local playlist's segments are relative paths" % uri[:80])
        if path.startswith("/"):
            raise self.fail("%s is an absolute path; a local playlist's segments are paths relative to it"
                            % uri[:80])
        why = _dot_segment_problem(path)
        if why is not None:
            raise self.fail("URI %r: %s" % (uri[:80], why))
        return os.path.join(self.directory, path)

    # -- segments -------------------------------------------------------------------------------

    def _uri(self, line: str) -> None:
        if self.duration is None:
            raise self.fail("URI %r without EXTINF (RFC 8216 4.3.2.1; hls.js plays it, FFmpeg skips it)" % line[:80])
        uri = self._resolve(line)
        media: Range = (uri, 0, None)
        if self.byterange is not None:
            length, offset = self.byterange
            if offset is None:
                offset = self._implicit_offset(uri)
                if offset + length > MAX_SAFE_INTEGER:
                    raise self.fail("EXT-X-BYTERANGE ends past byte %d (hls.js reads offsets as doubles)"
                                    % MAX_SAFE_INTEGER)
            media = (uri, offset, length)
        sequence = self.media_sequence + len(self.segments)
        discontinuity_sequence = self.discontinuity_sequence + self.discontinuities
        if sequence > MAX_SAFE_INTEGER or discontinuity_sequence > MAX_SAFE_INTEGER:
            raise self.fail("media or discontinuity sequence number past %d (hls.js reads them as doubles)"
                            % MAX_SAFE_INTEGER)
        self.opened = True
        self.segments.append(MediaSegment(media, self.init, self.discontinuity, sequence,
                                          discontinuity_sequence, self.duration))
        self.duration = None
        self.byterange = None
        self.discontinuity = False
        self.pending.clear()

    def _implicit_offset(self, uri: str) -> int:
        """An EXT-X-BYTERANGE without an offset continues the previous segment's range: hls.js
        (Fragment.setByteRange) and FFmpeg (parse_playlist, seg_offset) whatever its URI, RFC 8216
        4.3.2.2 only when it is a sub-range of the same resource. Both readings agree then."""
        if not self.segments:
            raise self.fail("EXT-X-BYTERANGE without an offset on the first media segment (RFC 8216 4.3.2.2; "
                            "hls.js and FFmpeg read 0)")
        previous_uri, previous_offset, previous_length = self.segments[-1].media
        if previous_length is None:
            raise self.fail("EXT-X-BYTERANGE without an offset after a segment without a byte range (RFC 8216 "
                            "4.3.2.2; hls.js and FFmpeg read 0)")
        if previous_uri != uri:
            raise self.fail("EXT-X-BYTERANGE without an offset after a range of another resource (%s): hls.js "
                            "and FFmpeg continue after it whatever its URI, RFC 8216 4.3.2.2 requires the same "
                            "one" % previous_uri[:80])
        return previous_offset + previous_length

    def _finish(self) -> MediaPlaylist:
        if self.pending:
            name, line = min(self.pending.items(), key=lambda item: item[1])
            raise self.fail("%s on line %d applies to no media segment (no URI follows it)" % (name, line))
        if self.ended and not self.segments:
            raise self.fail("playlist lists no media segments")
        if self.target is None:
            raise self.fail("no EXT-X-TARGETDURATION (RFC 8216 4.3.3.1; hls.js refuses the playlist)")
        if self.early_end:
            raise self.fail("EXT-X-ENDLIST on line %d comes before any media segment, EXT-X-TARGETDURATION, "
                            "-MEDIA-SEQUENCE, -PLAYLIST-TYPE, -MAP or -START: FFmpeg ignores it there and reads a "
                            "live playlist (hls.c parse_playlist has no playlist yet), hls.js an ended one"
                            % self.early_end)
        duration, line = self.longest
        if math.floor(duration + 0.5) > self.target:
            raise self.fail("EXTINF %.17g on line %d rounds above EXT-X-TARGETDURATION %d (RFC 8216 4.3.3.1; "
                            "players time their reloads by it)" % (duration, line, self.target))
        if self.playlist_type == "VOD" and not self.ended:
            raise self.fail("EXT-X-PLAYLIST-TYPE:VOD without EXT-X-ENDLIST (hls.js and FFmpeg reload it as a "
                            "live playlist)")
        return MediaPlaylist(tuple(self.segments), self.target, self.ended, self.playlist_type,
                             self.media_sequence, self.discontinuity_sequence, tuple(self.notes.values()))


def _uri_problem(uri: str) -> Optional[str]:
    """Why a URI's characters would not reach the server the same way from every client (None:
    they would)."""
    if "#" in uri:
        return "a fragment (clients request the URI without it: a segment URI has no use for one)"
    if not uri:
        return "empty"
    if not _URI_CHARS.match(uri):
        bad = next(c for c in uri if not _URI_CHARS.match(c))
        return "%r is not allowed: RFC 3986 characters only, and no \"'\" (browsers escape it in a query, " \
               "others do not)" % bad
    if _BAD_PERCENT.search(uri):
        return "%% not followed by two hexadecimal digits"
    after_authority = uri
    for prefix in ("http://", "https://", "//"):
        if uri.startswith(prefix):
            rest = uri[len(prefix):]
            ends = [at for at in (rest.find("/"), rest.find("?")) if at != -1]
            after_authority = rest[min(ends):] if ends else ""
            break
    if "[" in after_authority or "]" in after_authority:
        return "\"[\" or \"]\" outside an IPv6 host"
    return None


def _dot_segment_problem(path: str) -> Optional[str]:
    for segment in path.split("/"):
        if segment and _DOT_SEGMENT.match(segment):
            return "a dot segment %r (hls.js's URL toolkit, browsers, FFmpeg, and local paths through " \
                   "symbolic links each remove them their own way)" % segment
    return None


def _split_url(url: str) -> Tuple[str, str, str]:
    """(scheme, authority, path) of an absolute http(s) URL whose host and port every client
    sends the same way; ValueError (why) otherwise."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    cut = len(rest)
    for mark in "/?":
        found = rest.find(mark)
        if found != -1:
            cut = min(cut, found)
    authority, path = rest[:cut], rest[cut:].partition("?")[0]
    why = _authority_problem(scheme, authority)
    if why is not None:
        raise ValueError(why)
    if not path.startswith("/"):
        raise ValueError("no path")
    return scheme, authority, path


def _authority_problem(scheme: str, authority: str) -> Optional[str]:
    """Why browsers (WHATWG URL), FFmpeg and Python would not send this host and port the same
    way (None: they would)."""
    if "@" in authority:
        return "user information in the URL (browsers refuse or strip it, others send it)"
    host, port = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        host, port = authority[:end + 1], authority[end + 1:]
        if end == -1 or (port and not port.startswith(":")):
            return "a malformed IPv6 host"
        try:
            canonical = ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            return "a malformed IPv6 host"
        if host[1:-1] != canonical:
            return "IPv6 host not in its canonical form %s (browsers rewrite it)" % canonical
        port = port[1:]
    elif ":" in authority:
        host, _, port = authority.partition(":")
        if not port:
            return "an empty port"
    if port:
        if not _PORT.match(port) or int(port) > 65535:
            return "port %r is not a number from 1 to 65535 without leading zeros" % port
        if port == _DEFAULT_PORT[scheme]:
            return "the default port written out (browsers drop it from Host, Python sends it)"
    if not host.startswith("["):
        if not _HOST.match(host):
            return "host %r: lowercase letters, digits, \"-\" and \".\" only (browsers lowercase and " \
                   "rewrite the rest)" % host[:80]
        last = host.rsplit(".", 1)[-1]
        if last.isdigit() or last.startswith("0x"):
            parts = host.split(".")
            if len(parts) != 4 or not all(p.isdigit() and str(int(p)) == p and int(p) < 256 for p in parts):
                return "host %r is not a dotted-decimal IPv4 address (browsers read octal, hex and short " \
                       "forms their own way)" % host[:80]
    return None


def _variants(lines: List[str], start: int, most: int = 4) -> str:
    """A few of the variant playlists a master playlist lists, for the refusal."""
    found: List[str] = []
    after_variant = False
    for line in lines[start:]:
        line = line.rstrip("\r")
        if line.startswith("#EXT-X-STREAM-INF"):
            after_variant = True
        elif line and not line.startswith("#") and after_variant:
            found.append(line[:80])
            after_variant = False
            if len(found) == most:
                break
    return (": " + ", ".join(found)) if found else ""


# -- live playlists ---------------------------------------------------------------------------


class PlaylistMovedBackwards(InputError):
    """A new version of a live playlist that contradicts an earlier one (RFC 8216 6.2.1 allows
    appending segments, removing the oldest, and ending it, nothing else)."""


class PlaylistUpdate(NamedTuple):
    new: Tuple[MediaSegment, ...]  # segments not listed before, in order
    missed: range                  # media sequence numbers that left the window before they were listed here
    ended: bool


class PlaylistTracker:
    """Successive versions of one live playlist in, what is new out.

    It remembers the latest version only (its segments, in sequence order). That is enough:
    every segment a new version may list again was in the latest one, since a version that
    brings back one the latest had already dropped moves the window backwards, and that is
    refused without looking at the segment. So memory is one parsed playlist (a playlist is
    at most 4 MiB), and each version costs time linear in its size.
    """

    def __init__(self, location: str) -> None:
        self.location = location
        self.latest: Optional[MediaPlaylist] = None

    def fail(self, why: str) -> PlaylistMovedBackwards:
        return PlaylistMovedBackwards("%s: the live playlist moved backwards: %s" % (self.location, why))

    def update(self, playlist: MediaPlaylist) -> PlaylistUpdate:
        """The segments of ``playlist`` not listed by earlier versions, and the media sequence
        numbers missed between; PlaylistMovedBackwards (one line) when it contradicts the latest
        version."""
        latest = self.latest
        if latest is None:
            self.latest = playlist
            return PlaylistUpdate(playlist.segments, range(0), playlist.ended)
        self._check(latest, playlist)
        # _check makes sure playlist.next_sequence >= latest.next_sequence: the new ones are after.
        first_new = max(latest.next_sequence, playlist.media_sequence)
        new = playlist.segments[first_new - playlist.media_sequence:]
        if new and latest.segments and new[0].discontinuity_sequence < latest.segments[-1].discontinuity_sequence:
            raise self.fail("discontinuity sequence %d at media sequence %d, after %d"
                            % (new[0].discontinuity_sequence, new[0].sequence,
                               latest.segments[-1].discontinuity_sequence))
        self.latest = playlist
        return PlaylistUpdate(new, range(latest.next_sequence, first_new), playlist.ended)

    def _check(self, latest: MediaPlaylist, playlist: MediaPlaylist) -> None:
        if playlist.target_duration_s != latest.target_duration_s:
            raise self.fail("EXT-X-TARGETDURATION changed from %d to %d (RFC 8216 6.2.1)"
                            % (latest.target_duration_s, playlist.target_duration_s))
        if latest.ended:
            if not playlist.ended:
                raise self.fail("it had ended (EXT-X-ENDLIST) and is no longer ended")
            if playlist.segments != latest.segments or playlist.media_sequence != latest.media_sequence:
                raise self.fail("it changed after it ended (EXT-X-ENDLIST)")
        if playlist.playlist_type != latest.playlist_type:
            raise self.fail("EXT-X-PLAYLIST-TYPE changed from %s to %s"
                            % (latest.playlist_type, playlist.playlist_type))
        if playlist.media_sequence < latest.media_sequence:
            raise self.fail("EXT-X-MEDIA-SEQUENCE went down from %d to %d"
                            % (latest.media_sequence, playlist.media_sequence))
        if playlist.playlist_type == "EVENT" and playlist.media_sequence != latest.media_sequence:
            raise self.fail("an EVENT playlist removed segments (EXT-X-MEDIA-SEQUENCE %d, then %d)"
                            % (latest.media_sequence, playlist.media_sequence))
        if playlist.discontinuity_sequence < latest.discontinuity_sequence:
            raise self.fail("EXT-X-DISCONTINUITY-SEQUENCE went down from %d to %d"
                            % (latest.discontinuity_sequence, playlist.discontinuity_sequence))
        if playlist.next_sequence < latest.next_sequence:
            raise self.fail("it ends before media sequence %d, which it listed before" % (latest.next_sequence - 1))
        for sequence in range(playlist.media_sequence, latest.next_sequence):
            before = latest.segments[sequence - latest.media_sequence]
            now = playlist.segments[sequence - playlist.media_sequence]
            if (now.media, now.init, now.discontinuity, now.discontinuity_sequence) != \
                    (before.media, before.init, before.discontinuity, before.discontinuity_sequence):
                raise self.fail("media sequence %d changed from %s to %s" % (sequence, _describe(before),
                                                                            _describe(now)))


def _describe(segment: MediaSegment) -> str:
    uri, offset, length = segment.media
    text = uri[:80] if length is None else "%s [%d@%d]" % (uri[:80], length, offset)
    if segment.init is not None:
        text += " (map %s)" % segment.init[0][:80]
    return text + " discontinuity sequence %d%s" % (segment.discontinuity_sequence,
                                                    ", discontinuity" if segment.discontinuity else "")
