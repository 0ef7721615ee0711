"""``segbind.open``: verified segments out of a file, an http(s) URL, a pipe or bytes, in the
spirit of PyAV's ``av.open``.

    with segbind.open("https://cloud.example/alice/cam-1/live.m3u8", keyring) as media:
        for segment in media:                # as segments arrive (a live playlist is polled)
            if segment.accepted:
                decoder.feed(segment.data)   # exactly the verified NAL units, Annex-B
            else:
                print(segment.index, segment.reason, segment.detail)

The input's type is told by content (Annex-B, MPEG-TS, MP4, fragmented MP4, Matroska,
FLV, an HLS playlist), never by name. Each result says whether to show the segment;
an accepted one carries the segment in canonical form (docs/FORMAT.md section 7.4):
what a decoder is handed, never the container it came in. A refused one carries
no bytes at all.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any, Iterator, List, Optional, Sequence, Union

from .errors import InputError
from .keyring import Keyring
from .read.annexb import CHUNK, annexb_segments
from .read.sniff import ANNEXB, HLS, MP4, SNIFF_BYTES, sniff
from .read.sources import ConcatReader, Prefixed, as_stream, is_url, open_range, read_head
from .read.split import MAX_SEGMENT_BYTES
from .verdict import Reason, TagInfo, Verdict
from .verifier import Accepted, Canonical, StreamVerifier, TimeWindow

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Sequence[str]]


class SegmentResult:
    """One segment's result: its place in the input, the verdict, and (accepted only) its bytes."""

    __slots__ = ("index", "verdict", "_accepted")

    def __init__(self, index: int, verdict: Verdict, accepted: Optional[Accepted]) -> None:
        self.index = index
        self.verdict = verdict
        self._accepted = accepted if verdict.accepted else None

    @property
    def accepted(self) -> bool:
        return self.verdict.accepted

    @property
    def reason(self) -> Reason:
        return self.verdict.reason

    @property
    def detail(self) -> str:
        return self.verdict.detail

    @property
    def tag(self) -> Optional[TagInfo]:
        return self.verdict.tag

    @property
    def data(self) -> Optional[bytes]:
        """The verified NAL units, decrypted, in canonical form (Annex-B, 4-byte start codes,
        the tag included): what the camera's encoder made. Decrypted when first asked for;
        None for a refused segment, which is never decrypted."""
        return self._accepted.plaintext() if self._accepted is not None else None

    @property
    def protected(self) -> Optional[bytes]:
        """The verified segment still encrypted, exactly as the camera emitted it (what a keyless
        recorder keeps); None for a refused segment."""
        return self._accepted.protected() if self._accepted is not None else None

    @property
    def capture_ms(self) -> Optional[int]:
        """When its first picture was captured (ms since 1970), as the camera tagged it."""
        return self.verdict.tag.capture_ms if self.verdict.tag is not None else None

    @property
    def duration_ms(self) -> Optional[int]:
        return self.verdict.tag.duration_ms if self.verdict.tag is not None else None

    def __repr__(self) -> str:
        return "SegmentResult(%d, %s%s)" % (self.index, self.verdict.reason.value,
                                            ", %d bytes" % len(self._accepted) if self._accepted is not None else "")


class Input:
    """An opened input: iterate it for one ``SegmentResult`` per segment, as they arrive.

    ``kind`` is what the input was found to be ("annexb", "mpegts", "mp4", "matroska",
    "flv", "hls"); ``verifier`` the stream verifier judging it. In recording mode the
    iteration ends with a refusal (``incomplete``) when the recording does not end cleanly.
    """

    def __init__(self, segments: Iterator[Canonical], kind: str, verifier: StreamVerifier,
                 lock_camera: bool, closers: Sequence[Any] = ()) -> None:
        self.kind = kind
        self.verifier = verifier
        self._segments = segments
        self._lock = lock_camera
        self._closers = list(closers)

    def segments(self) -> Iterator[Canonical]:
        """The segments as the reader found them, unverified (for tools that read tags)."""
        return self._segments

    def __iter__(self) -> Iterator[SegmentResult]:
        verifier = self.verifier
        index = -1
        for index, segment in enumerate(self._segments):
            verdict, accepted = verifier.judge(segment)
            if self._lock and verifier.camera is None and verdict.accepted and verdict.tag is not None:
                verifier.camera, verifier.owner = verdict.tag.camera, verdict.tag.owner  # one stream per input
            yield SegmentResult(index, verdict, accepted)
        final = verifier.finish()
        if final is not None:
            yield SegmentResult(index + 1, final, None)

    def close(self) -> None:
        close = getattr(self._segments, "close", None)
        if close is not None:
            close()
        for closer in self._closers:
            closer.close()
        self._closers = []

    def __enter__(self) -> "Input":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open(source: Source, keyring: Keyring, *, camera: Optional[str] = None, any_camera: bool = False,
         recording: bool = False, window: Optional[TimeWindow] = None, video_only: bool = False,
         idle_s: Optional[float] = None, poll_s: Optional[float] = None,
         max_segment_bytes: int = MAX_SEGMENT_BYTES, name: Optional[str] = None) -> Input:
    """Open an input to verify: a path, an http(s) URL (a playlist or a media file), a binary
    file object (a pipe: read as it arrives), bytes, or a list of paths read as one stream
    (an fMP4 init segment then its media segments).

    ``camera``: the stream's camera (else the camera of the first accepted segment, unless
    ``any_camera``: then each camera is its own stream). ``recording``: a finished
    recording, in which gaps, a missing end and timing contradictions are refused.
    ``window``: the capture times accepted (``segbind.LIVE`` for a live display).
    ``video_only``: verify a container's video and drop its other tracks (else refused).
    ``idle_s``/``poll_s``: how long a live playlist may list nothing new, how often it is
    polled. InputError when the input cannot be read as video at all.

    One way through for every input: the bytes (``_Bytes``), what they are (``sniff``), the
    one reader of that kind, the cut into segments, the verifier.
    """
    verifier = StreamVerifier(keyring, camera=camera, window=window, recording=recording)
    lock = camera is None and not any_camera
    found = _Bytes.of(source, name)
    try:
        kind = found.kind()
        if kind == HLS:
            if found.location is None:
                raise InputError("%s: an HLS playlist is opened by its path or URL (its segments are "
                                 "relative to it)" % found.name)
            found.close()
            from .read.hls import hls_segments  # http(s) and playlists: imported when needed

            segments = hls_segments(found.location, video_only=video_only, idle_s=idle_s, poll_s=poll_s,
                                    max_segment_bytes=max_segment_bytes)
        elif kind == ANNEXB:
            segments = annexb_segments(found.whole if found.whole is not None else found.stream, found.name,
                                       max_segment_bytes)
        else:
            if kind == MP4 and found.head[4:8] in (b"styp", b"moof", b"sidx"):
                raise InputError("%s: a fragmented MP4 media segment without its init segment; give the "
                                 "init segment first (init.mp4 seg1.m4s ...) or the .m3u8" % found.name)
            if kind == MP4 and not found.seekable and _index_after_media(found.head):
                found.spool()  # its index comes last: read it from disk, not memory
            from .read.containers import container_segments

            segments = container_segments(found.stream, kind, found.name, video_only=video_only,
                                          max_segment_bytes=max_segment_bytes, seekable=found.seekable)
    except BaseException:
        found.close()
        raise
    return Input(segments, kind, verifier, lock, found.closers)


class _Bytes:
    """An input's bytes as one stream, and what is known of it: its name, its first bytes
    (``head``, read to tell what it is), whether it can be read out of order, where it is (a
    path or URL: an HLS playlist's segments are relative to it), or the bytes themselves."""

    def __init__(self, stream: IO[bytes], name: str, head: bytes, seekable: bool,
                 location: Optional[str] = None, whole: Optional[bytes] = None) -> None:
        self.stream = stream
        self.name = name
        self.head = head
        self.seekable = seekable
        self.location = location
        self.whole = whole
        self.closers: List[Any] = [stream]

    @classmethod
    def of(cls, source: Source, name: Optional[str]) -> "_Bytes":
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return cls(io.BytesIO(data), name or "input", data[:SNIFF_BYTES], True, whole=data)
        if isinstance(source, (str, os.PathLike)):
            where = os.fspath(source)
            stream = open_range((where, 0, None))
            head = read_head(stream, name or where)
            if is_url(where):
                return cls(as_stream(Prefixed(head, stream)), name or where, head, False, where)
            stream.seek(0)
            return cls(stream, name or where, head, True, where)
        if isinstance(source, (list, tuple)):
            paths = [os.fspath(p) for p in source]
            if not paths:
                raise InputError("no input")
            if len(paths) == 1:
                return cls.of(paths[0], name)
            reader = as_stream(ConcatReader([(path, 0, None) for path in paths]))
            head = read_head(reader, paths[0])
            if head.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"#EXTM3U"):
                raise InputError("give one HLS playlist at a time")
            return cls(as_stream(Prefixed(head, reader)), name or paths[0], head, False)
        if hasattr(source, "read"):
            given: IO[bytes] = source  # type: ignore[assignment]
            label = str(name or getattr(source, "name", None) or "stream")
            if _seekable(given) and given.tell() == 0:  # a file: read again from its start
                head = read_head(given, label)
                given.seek(0)
                return cls(given, label, head, True)
            head = read_head(given, label)
            return cls(as_stream(Prefixed(head, given)), label, head, False)
        raise TypeError("segbind.open reads a path, a URL, a binary file object or bytes, not %s"
                        % type(source).__name__)

    def kind(self) -> str:
        if not self.head:
            raise InputError("%s: no input" % self.name if self.name == "stdin" else "%s: file is empty" % self.name)
        try:
            return sniff(self.head[:SNIFF_BYTES])
        except InputError as exc:
            raise InputError("%s: %s" % (self.name, exc)) from None

    def spool(self) -> None:
        """Copy what is left of a pipe to a temporary file and read that instead."""
        self.stream = _spooled(self.stream, self.name)
        self.closers.append(self.stream)
        self.seekable = True

    def close(self) -> None:
        for closer in self.closers:
            closer.close()
        self.closers = []


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _index_after_media(head: bytes) -> bool:
    """True when an MP4's top-level boxes reach its media ('mdat') before its index ('moov')."""
    pos = 0
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos:pos + 4], "big")
        box = head[pos + 4:pos + 8]
        if box in (b"moov", b"moof"):
            return False
        if box == b"mdat":
            return True
        if size == 1 and pos + 16 <= len(head):
            size = int.from_bytes(head[pos + 8:pos + 16], "big")
        if size < 8:
            return True
        pos += size
    return True  # not known from the head: read it from disk to be safe


def _spooled(stream: IO[bytes], name: str) -> IO[bytes]:
    import tempfile

    spool = tempfile.TemporaryFile()
    try:
        while True:
            piece = stream.read(CHUNK)
            if not piece:
                break
            spool.write(piece)
    except OSError as exc:
        spool.close()
        raise InputError("%s: cannot read (%s)" % (name, exc.strerror or exc)) from None
    spool.seek(0)
    return spool


__all__ = ["Input", "SegmentResult", "Source", "is_url", "open"]
