"""Byte sources the readers share: byte ranges of local files and http(s) resources, several
of them read as one stream, and streams whose first bytes were read to tell what they are.
"""

from __future__ import annotations

import io
from collections import deque
from typing import IO, Any, Callable, Optional, Sequence, Tuple, cast

from ..errors import InputError
from .sniff import SNIFF_BYTES

Range = Tuple[str, int, Optional[int]]  # (path or URL, offset, length or None: to the end)
HTTP_TIMEOUT_S = 30.0
MAX_PLAYLIST_BYTES = 4 * 1024 * 1024


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


# -- byte ranges of files and URLs -------------------------------------------------------------

def open_file(path: str) -> IO[bytes]:
    """A local file, open for reading; InputError (one line) when it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError("%s: no such file" % path) from None
    except IsADirectoryError:
        raise InputError("%s: is a directory" % path) from None
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None


def open_range(where: Range, timeout_s: float = HTTP_TIMEOUT_S) -> IO[bytes]:
    """A readable stream of one byte range of a local file or an http(s) resource."""
    uri, offset, length = where
    if is_url(uri):
        import urllib.error  # only for what comes over http(s)
        import urllib.request

        headers = {"User-Agent": "segbind"}
        if offset or length is not None:
            headers["Range"] = "bytes=%d-%s" % (offset, "" if length is None else offset + length - 1)
        try:
            response = urllib.request.urlopen(urllib.request.Request(uri, headers=headers), timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            raise InputError("%s: HTTP %d %s" % (uri, exc.code, exc.reason)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise InputError("%s: cannot fetch (%s)" % (uri, getattr(exc, "reason", exc))) from None
        stream: IO[bytes] = response
        if offset and response.status != 206:  # the server ignored the range
            _skip(stream, offset, uri)
    else:
        stream = open_file(uri)
        stream.seek(offset)
    return as_stream(_Limited(stream, length)) if length is not None else stream


def as_stream(raw: io.RawIOBase) -> IO[bytes]:
    """A raw stream of ours (which always reads what it can, never None) as a binary stream."""
    return cast(IO[bytes], raw)


def _skip(stream: IO[bytes], count: int, uri: str) -> None:
    while count:
        got = stream.read(min(count, 1 << 16))
        if not got:
            raise InputError("%s: shorter than its byte range" % uri)
        count -= len(got)


class _Limited(io.RawIOBase):
    """At most ``left`` bytes of a stream."""

    def __init__(self, stream: IO[bytes], left: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = left

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[:min(len(b), self._left)]
        data = self._stream.read(len(view))
        view[:len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def fetch_playlist(uri: str, timeout_s: float = HTTP_TIMEOUT_S) -> Tuple[bytes, str]:
    """A playlist's raw bytes, and where they came from: its final URL after redirects (players
    resolve its segments against that), or the local path. A server that says the text is in a
    charset other than UTF-8 is refused: browsers decode by that header, segbind by RFC 8216."""
    stream = open_range((uri, 0, None), timeout_s)
    where = uri
    try:
        if is_url(uri):
            where = str(getattr(stream, "geturl", lambda: uri)())
            headers = getattr(stream, "headers", None)
            charset = headers.get_content_charset() if headers is not None else None
            if charset is not None and charset.lower() not in ("utf-8", "utf8"):
                raise InputError("%s: the server sends the playlist as %s, not UTF-8 (RFC 8216 4.1)" % (uri, charset))
        raw = stream.read(MAX_PLAYLIST_BYTES + 1)
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (uri, exc)) from None
    finally:
        stream.close()
    if len(raw) > MAX_PLAYLIST_BYTES:
        raise InputError("%s: playlist larger than %d MiB" % (uri, MAX_PLAYLIST_BYTES >> 20))
    return raw, where


class PartsReader(io.RawIOBase):
    """Read-only, forward-only stream over byte streams given one after the other by ``next_part``
    (None: the end). Files and URLs read as one stream."""

    def __init__(self, next_part: Callable[[], Optional[IO[bytes]]]) -> None:
        super().__init__()
        self._next_part = next_part
        self._part: Optional[IO[bytes]] = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # any writable buffer with len(): bytearray, memoryview
        view = memoryview(b)
        while not self._done:
            if self._part is None:
                self._part = self._next_part()
                if self._part is None:
                    self._done = True
                    return 0
            read1 = getattr(self._part, "read1", None)
            try:
                data = read1(len(view)) if read1 is not None else self._part.read(len(view))
            except OSError as exc:
                raise InputError("cannot read a media segment (%s)" % exc) from None
            if data:
                view[:len(data)] = data
                return len(data)
            self._part.close()
            self._part = None
        return 0

    def close(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None
        super().close()


class ConcatReader(PartsReader):
    """Byte ranges of several files (or URLs), in order, as one stream."""

    def __init__(self, parts: Sequence[Range]) -> None:
        todo = deque(parts)
        super().__init__(lambda: open_range(todo.popleft()) if todo else None)


def read_head(stream: IO[bytes], name: str) -> bytes:
    """The first bytes of a stream (enough to tell what it is), as a pipe gives them."""
    head = b""
    read = getattr(stream, "read1", None) or stream.read
    try:
        while len(head) < SNIFF_BYTES:
            piece = read(SNIFF_BYTES - len(head))
            if not piece:
                break
            head += piece
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (name, exc)) from None
    return head


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to tell what it is); reads as a pipe
    delivers (``read1``), so a demuxer gets what has arrived."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        self.name = getattr(rest, "name", "stream")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        read1 = getattr(self._rest, "read1", None)
        data = read1(len(view)) if read1 is not None else self._rest.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


