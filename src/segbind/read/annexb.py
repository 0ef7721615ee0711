"""Reading tagged segments out of an Annex-B stream (as cameras and ``segbind tag`` write it).

Read as it arrives, a piece at a time (``split.AnnexBSplitter``): memory holds one
segment, whatever the length of the stream, and each segment is handed on as soon
as it is complete.
"""

from __future__ import annotations

from typing import IO, Iterable, Iterator, List, Union

from ..errors import InputError
from ..verifier import Canonical
from .split import MAX_SEGMENT_BYTES, AnnexBSplitter

CHUNK = 1 << 20  # a file is read a MiB at a time; a pipe gives what has arrived (read1)

AnnexBSource = Union[bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]]


def pieces(source: AnnexBSource, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of a source, as they can be read: bytes whole, a file a piece at a time
    (``read1`` where there is one: a pipe gives what has arrived), or an iterable of pieces."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    read = getattr(source, "read1", None) or getattr(source, "read", None)
    if read is not None:
        while True:
            piece = read(chunk)
            if not piece:
                return
            yield piece
    else:
        yield from source


def annexb_segments(source: AnnexBSource, name: str = "input",
                    max_segment_bytes: int = MAX_SEGMENT_BYTES) -> Iterator[Canonical]:
    """The tagged segments of an Annex-B stream: bytes, a binary file, or pieces of bytes.

    Bytes before the first tag come out as a segment of their own (refused: ``no_tag``,
    or ``framing`` when they do not even begin with a start code). InputError when the
    input is empty.
    """
    splitter = AnnexBSplitter(max_segment_bytes)
    seen = False
    for piece in pieces(source):
        seen = seen or bool(piece)
        yield from splitter.push(piece)
    if not seen:
        raise InputError("%s: empty input" % name)
    yield from splitter.finish()


def tagged_segments(buf: Union[bytes, bytearray]) -> List[bytes]:
    """The bytes of each segment of an Annex-B buffer, as a verifier takes them (for tools and
    tests; a display uses ``segbind.open``)."""
    return [segment.data for segment in annexb_segments(bytes(buf))]
