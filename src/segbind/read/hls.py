"""HLS playlists (local media playlists) and several files read as one stream.

The init segment and media segments of a playlist are read as one stream, so
tagged segments may straddle media segment files.
"""

from __future__ import annotations

import io
import os
import re
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import InputError
from .containers import container_segments
from .regroup import Segment
from .sniff import MP4, MPEGTS, NAMES, SNIFF_BYTES, sniff

# -- several files read as one stream ---------------------------------------------------------

class ConcatReader(io.RawIOBase):
    """Read-only, forward-only stream over byte ranges of several files, in order."""

    def __init__(self, parts: Sequence[Tuple[str, int, Optional[int]]]) -> None:
        super().__init__()
        self._parts = list(parts)  # (path, offset, length or None for to the end)
        self._file: Optional[IO[bytes]] = None
        self._left: Optional[int] = None

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._parts:
            return False
        path, offset, length = self._parts.pop(0)
        try:
            self._file = open(path, "rb")
        except OSError as exc:
            raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None
        self._file.seek(offset)
        self._left = length
        return True

    def readinto(self, b: Any) -> int:  # any writable buffer with len(): bytearray, memoryview
        while True:
            if self._file is None and not self._next():
                return 0
            current = self._file
            assert current is not None
            want = len(b) if self._left is None else min(len(b), self._left)
            n = current.readinto(memoryview(b)[:want]) if want else 0  # type: ignore[attr-defined]
            if n:
                if self._left is not None:
                    self._left -= n
                return n
            current.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


# -- HLS playlists ------------------------------------------------------------------------------

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
    return off, n


def read_playlist(path: str, text: Optional[str] = None) -> List[List[Tuple[str, int, Optional[int]]]]:
    """The byte ranges to read of a local HLS media playlist, as runs sharing one init segment.

    Each run is [init segment?, media segment, ...] as (path, offset, length). Remote
    URIs, encrypted segments and master playlists are refused with InputError.
    """
    if text is None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("%s: playlist is not UTF-8 text" % path) from None
    base = os.path.dirname(os.path.abspath(path)) if path != "-" else os.getcwd()

    def local(uri: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
            raise InputError("%s: %s is remote; segbind reads local HLS files only" % (path, uri))
        return uri if os.path.isabs(uri) else os.path.join(base, uri)

    runs: List[List[Tuple[str, int, Optional[int]]]] = []
    run: List[Tuple[str, int, Optional[int]]] = []
    init: Optional[Tuple[str, int, Optional[int]]] = None
    pending_range: Optional[str] = None
    last_end: Dict[str, int] = {}
    variants: List[Optional[str]] = []
    media = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-STREAM-INF"):
            variants.append(None)
            continue
        if line.startswith("#EXT-X-KEY"):
            method = _attrs(line.partition(":")[2]).get("METHOD", "NONE")
            if method != "NONE":
                raise InputError("%s: encrypted HLS (%s) is not supported" % (path, method))
            continue
        if line.startswith("#EXT-X-MAP"):
            attrs = _attrs(line.partition(":")[2])
            if "URI" not in attrs:
                raise InputError("%s: EXT-X-MAP without URI" % path)
            where = local(attrs["URI"])
            new_init: Tuple[str, int, Optional[int]] = (where, 0, None)
            if "BYTERANGE" in attrs:
                off, n = _byterange(attrs["BYTERANGE"], 0)
                new_init = (where, off, n)
            if new_init != init:
                if run:
                    runs.append(run)
                init = new_init
                run = [init]
            continue
        if line.startswith("#EXT-X-BYTERANGE"):
            pending_range = line.partition(":")[2]
            continue
        if line.startswith("#"):
            continue
        if variants and variants[-1] is None:
            variants[-1] = line
            continue
        where = local(line)
        media += 1
        if pending_range is not None:
            off, n = _byterange(pending_range, last_end.get(where, 0))
            last_end[where] = off + n
            run.append((where, off, n))
            pending_range = None
        else:
            run.append((where, 0, None))
    if variants:
        raise InputError("%s: master playlist; verify one of its media playlists: %s"
                         % (path, ", ".join(v for v in variants if v)))
    if run:
        runs.append(run)
    if not media:
        raise InputError("%s: playlist lists no media segments" % path)
    return runs


def _head_of(part: Tuple[str, int, Optional[int]]) -> bytes:
    path, offset, length = part
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(SNIFF_BYTES if length is None else min(length, SNIFF_BYTES))
    except FileNotFoundError:
        raise InputError("%s: no such file (listed in the playlist)" % path) from None
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None


def hls_segments(path: str, stats: Optional[Dict[str, Any]] = None,
                 video_only: bool = False) -> Iterator[Segment]:
    """Each tagged segment of a local HLS playlist (MPEG-TS or fMP4 media segments).

    Every media segment the playlist lists is read and judged: one of another
    container type than its run's, or one that cannot be read to its end,
    refuses the playlist (InputError, after the segments read so far).
    """
    runs = read_playlist(path)
    for part in [part for run in runs for part in run]:
        if not os.path.isfile(part[0]):
            raise InputError("%s: no such file (listed in the playlist)" % part[0])
    for run in runs:
        kind = sniff(_head_of(run[0]))
        if kind not in (MPEGTS, MP4):
            raise InputError("%s: HLS segments are %s; expected MPEG-TS or fMP4"
                             % (path, NAMES.get(kind, kind)))
        media = run[1:] if kind == MP4 else run
        for part in media:
            try:
                other = sniff(_head_of(part))
            except InputError as exc:
                raise InputError("%s: listed media segment %s: %s" % (path, part[0], exc)) from None
            if other != kind and not (kind == MP4 and other == MP4):
                raise InputError("%s: media segment %s is %s in a run of %s segments (a segment "
                                 "that would never be judged)" % (path, part[0], NAMES.get(other, other),
                                                                 NAMES.get(kind, kind)))
        run_stats: Dict[str, Any] = {}
        yield from container_segments(ConcatReader(run), kind, path, run_stats, video_only)
        if stats is not None:
            stats.update(run_stats)
        if "error" in run_stats:
            raise InputError("%s: the media segments cannot be read to their end (%s): the rest of "
                             "the playlist is never judged" % (path, run_stats["error"]))
