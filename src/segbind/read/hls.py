"""HLS media playlists, local or over http(s), finished (VOD) or live (EVENT, sliding window),
and several files read as one stream.

Every media segment a playlist lists is read and judged, in order. Consecutive
segments that share an init segment and a container type, with no discontinuity
between them, are read as one stream (a run), so tagged segments may straddle media
segment files; a segment of another container type, or after a discontinuity,
begins a run of its own. A live playlist is polled until it ends (``EXT-X-ENDLIST``)
or lists nothing new for ``idle_s`` seconds; the readers pull media segments as the
demuxer needs them, so verdicts come as segments arrive. A listed segment that cannot
be read refuses the playlist (InputError, after the verdicts so far).
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import InputError
from ..verifier import Canonical
from .containers import container_segments
from .sniff import MP4, MPEGTS, NAMES, sniff
from .sources import (
    HTTP_TIMEOUT_S,
    PartsReader,
    Prefixed,
    Range,
    as_stream,
    fetch_text,
    is_url,
    open_range,
    read_head,
)
from .split import MAX_SEGMENT_BYTES

# -- playlists ----------------------------------------------------------------------------------

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(text: str) -> Dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


def _byterange(text: str, last_end: int) -> Tuple[int, int]:
    length, _, offset = text.partition("@")
    try:
        n = int(length)
        off = int(offset) if offset else last_end
    except ValueError:
        raise InputError("bad BYTERANGE %r" % text) from None
    if n < 0 or off < 0:
        raise InputError("bad BYTERANGE %r" % text)
    return off, n


class Entry(NamedTuple):
    """One media segment a playlist lists."""

    media: Range
    init: Optional[Range]
    discontinuity: bool  # EXT-X-DISCONTINUITY before it
    sequence: int        # its media sequence number


class Playlist(NamedTuple):
    entries: List[Entry]
    ended: bool          # EXT-X-ENDLIST, or a VOD playlist
    target_s: float      # EXT-X-TARGETDURATION


def parse_playlist(text: str, location: str) -> Playlist:
    """A media playlist's segments, resolved against ``location`` (a path or a URL).

    Master playlists, encrypted segments, and remote segments in a local playlist are
    refused with InputError.
    """
    remote = is_url(location)
    base = location if remote else (os.path.dirname(os.path.abspath(location)) if location != "-"
                                    else os.getcwd())

    def resolve(uri: str) -> str:
        if remote:
            found = urllib.parse.urljoin(base, uri)
            if not is_url(found):
                raise InputError("%s: %s is not an http(s) URL" % (location, uri))
            return found
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
            raise InputError("%s: %s is remote; a local playlist's segments must be local files"
                             % (location, uri))
        return uri if os.path.isabs(uri) else os.path.join(base, uri)

    lines = [line.strip() for line in text.splitlines()]
    if not lines or not lines[0].lstrip("\ufeff").startswith("#EXTM3U"):
        raise InputError("%s: not an HLS playlist (no #EXTM3U)" % location)
    entries: List[Entry] = []
    init: Optional[Range] = None
    pending_range: Optional[str] = None
    discontinuity = False
    last_end: Dict[str, int] = {}
    variants: List[Optional[str]] = []
    sequence = 0
    ended = False
    target = 0.0
    for line in lines[1:]:
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-STREAM-INF":
            variants.append(None)
        elif tag == "#EXT-X-KEY":
            method = _attrs(value).get("METHOD", "NONE")
            if method != "NONE":
                raise InputError("%s: encrypted HLS (%s) is not supported" % (location, method))
        elif tag == "#EXT-X-MAP":
            attrs = _attrs(value)
            if "URI" not in attrs:
                raise InputError("%s: EXT-X-MAP without URI" % location)
            off, n = _byterange(attrs["BYTERANGE"], 0) if "BYTERANGE" in attrs else (0, None)
            init = (resolve(attrs["URI"]), off, n)
        elif tag == "#EXT-X-BYTERANGE":
            pending_range = value
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            try:
                sequence = int(value)
            except ValueError:
                raise InputError("%s: bad EXT-X-MEDIA-SEQUENCE %r" % (location, value)) from None
        elif tag == "#EXT-X-TARGETDURATION":
            try:
                target = float(value)
            except ValueError:
                raise InputError("%s: bad EXT-X-TARGETDURATION %r" % (location, value)) from None
        elif tag == "#EXT-X-ENDLIST" or (tag == "#EXT-X-PLAYLIST-TYPE" and value.strip() == "VOD"):
            ended = True
        elif line.startswith("#"):
            continue
        elif variants and variants[-1] is None:
            variants[-1] = line
        else:
            where = resolve(line)
            if pending_range is not None:
                off, n = _byterange(pending_range, last_end.get(where, 0))
                last_end[where] = off + n
                media: Range = (where, off, n)
                pending_range = None
            else:
                media = (where, 0, None)
            entries.append(Entry(media, init, discontinuity, sequence))
            sequence += 1
            discontinuity = False
    if variants:
        raise InputError("%s: master playlist; verify one of its media playlists: %s"
                         % (location, ", ".join(v for v in variants if v)))
    if not entries and ended:
        raise InputError("%s: playlist lists no media segments" % location)
    return Playlist(entries, ended, target)


class _Opened(NamedTuple):
    entry: Entry
    kind: str
    head: bytes
    stream: IO[bytes]


class PlaylistFeed:
    """The media segments of a playlist, in order, polling a live one until it ends or lists
    nothing new for ``idle_s`` seconds (default: three target durations, at least 10 s).

    ``runs()`` gives (container type, reader) for each run of segments read as one stream.
    """

    def __init__(self, location: str, idle_s: Optional[float] = None, poll_s: Optional[float] = None,
                 timeout_s: float = HTTP_TIMEOUT_S, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location
        self.idle_s = idle_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock
        self.listed = 0          # media segments listed so far
        self.skipped = 0         # listed segments that left a sliding window before they were read
        self._pending: Deque[Entry] = deque()
        self._next_sequence: Optional[int] = None
        self._ended = False
        self._target = 0.0
        self._held: Optional[_Opened] = None
        self._refresh()

    def _refresh(self) -> bool:
        """Fetch the playlist again; True when it lists something new."""
        playlist = parse_playlist(fetch_text(self.location, self.timeout_s), self.location)
        self._ended = playlist.ended
        self._target = playlist.target_s or self._target
        new = [e for e in playlist.entries if self._next_sequence is None or e.sequence >= self._next_sequence]
        if new:
            if self._next_sequence is not None and new[0].sequence > self._next_sequence:
                self.skipped += new[0].sequence - self._next_sequence
            self._next_sequence = new[-1].sequence + 1
            self._pending.extend(new)
            self.listed += len(new)
        elif self._next_sequence is None and playlist.ended:
            raise InputError("%s: playlist lists no media segments" % self.location)
        return bool(new)

    def _entry(self) -> Optional[Entry]:
        """The next listed segment, polling a live playlist; None at its end."""
        if self._pending:
            return self._pending.popleft()
        idle = self.idle_s if self.idle_s is not None else max(10.0, 3 * self._target)
        poll = self.poll_s if self.poll_s is not None else min(5.0, max(0.2, self._target / 2 or 1.0))
        waited_since = self.clock()
        while not self._ended:
            if self.clock() - waited_since >= idle:
                return None
            self.sleep(poll)
            if self._refresh():
                return self._pending.popleft()
        return None

    def _open(self) -> Optional[_Opened]:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        entry = self._entry()
        if entry is None:
            return None
        stream = open_range(entry.media, self.timeout_s)
        head = read_head(stream, entry.media[0])
        if not head:
            stream.close()
            raise InputError("%s: listed media segment %s is empty" % (self.location, entry.media[0]))
        try:
            kind = sniff(head)
        except InputError as exc:
            stream.close()
            raise InputError("%s: listed media segment %s: %s" % (self.location, entry.media[0], exc)) from None
        if kind not in (MPEGTS, MP4):
            stream.close()
            raise InputError("%s: media segment %s is %s; HLS segments are MPEG-TS or fMP4"
                             % (self.location, entry.media[0], NAMES.get(kind, kind)))
        return _Opened(entry, kind, head, as_stream(Prefixed(head, stream)))

    def runs(self) -> Iterator[Tuple[str, PartsReader]]:
        while True:
            first = self._open()
            if first is None:
                return
            parts: Deque[IO[bytes]] = deque()
            if first.kind == MP4 and first.entry.init is not None:
                parts.append(open_range(first.entry.init, self.timeout_s))
            parts.append(first.stream)
            run = (first.kind, first.entry.init)

            def next_part(parts: Deque[IO[bytes]] = parts, run: Tuple[str, Optional[Range]] = run
                          ) -> Optional[IO[bytes]]:
                if parts:
                    return parts.popleft()
                following = self._open()
                if following is None:
                    return None
                if (following.entry.discontinuity or following.kind != run[0]
                        or (run[0] == MP4 and following.entry.init != run[1])):
                    self._held = following  # it begins a run of its own
                    return None
                return following.stream

            yield first.kind, PartsReader(next_part)


def hls_segments(location: str, stats: Optional[Dict[str, Any]] = None, video_only: bool = False,
                 idle_s: Optional[float] = None, poll_s: Optional[float] = None,
                 max_segment_bytes: int = MAX_SEGMENT_BYTES) -> Iterator[Canonical]:
    """Each tagged segment of an HLS media playlist (a path or an http(s) URL), as it arrives.

    A listed media segment that cannot be read to its end refuses the playlist
    (InputError, after the segments read so far).
    """
    feed = PlaylistFeed(location, idle_s, poll_s)
    for kind, reader in feed.runs():
        run_stats: Dict[str, Any] = {}
        try:
            yield from container_segments(reader, kind, location, run_stats, video_only, max_segment_bytes)
        finally:
            reader.close()
        if "error" in run_stats:
            raise InputError("%s: the media segments cannot be read to their end (%s): the rest of "
                             "the playlist is never judged" % (location, run_stats["error"]))
    if stats is not None:
        stats.update(listed=feed.listed, skipped=feed.skipped)
