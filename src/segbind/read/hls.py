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

import time
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, Iterator, NamedTuple, Optional, Tuple

from ..errors import InputError
from ..verifier import Canonical
from .containers import container_segments
from .playlist import MediaPlaylist, MediaSegment, PlaylistTracker, check_init_for, parse_media_playlist
from .sniff import MP4, MPEGTS, NAMES, sniff
from .sources import HTTP_TIMEOUT_S, PartsReader, Prefixed, Range, as_stream, fetch_playlist, open_range, read_head
from .split import MAX_SEGMENT_BYTES

Entry = MediaSegment  # one media segment a playlist lists (read.playlist)


def parse_playlist(raw: bytes, location: str) -> MediaPlaylist:
    """A media playlist, read strictly (``read.playlist``: RFC 8216, refusing what hls.js or
    FFmpeg would read differently)."""
    return parse_media_playlist(raw, location)


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
        self._tracker = PlaylistTracker(location)
        self._ended = False
        self._target = 0.0
        self._held: Optional[_Opened] = None
        self._refresh()

    def _refresh(self) -> bool:
        """Fetch the playlist again; True when it lists something new. A version that moves
        backwards (read.playlist.PlaylistTracker) is an InputError."""
        raw, where = fetch_playlist(self.location, self.timeout_s)
        update = self._tracker.update(parse_media_playlist(raw, where))
        self._ended = update.ended
        self._target = float(self._tracker.latest.target_duration_s) if self._tracker.latest else self._target
        self.skipped += len(update.missed)
        if update.new:
            self._pending.extend(update.new)
            self.listed += len(update.new)
        elif not self.listed and update.ended:
            raise InputError("%s: playlist lists no media segments" % self.location)
        return bool(update.new)

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
        try:
            check_init_for(entry, kind, self.location)
        except InputError:
            stream.close()
            raise
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
