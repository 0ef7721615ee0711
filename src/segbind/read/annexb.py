"""Reading tagged segments out of an H.264 Annex-B stream (as cameras and ``segbind tag`` write it).

Read as it arrives, a piece at a time: memory holds one segment, whatever the
length of the stream; each segment is handed on as soon as the next tag ends it.
"""

from __future__ import annotations

from typing import IO, Iterable, Iterator, Union

from segbind_core.nal import AnnexBScanner

from ..errors import InputError
from .regroup import Regrouper, Segment

CHUNK = 1 << 16


def _pieces(source: Union[bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]]) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    read = getattr(source, "read1", None) or getattr(source, "read", None)
    if read is not None:
        while True:
            piece = read(CHUNK)
            if not piece:
                return
            yield piece
    else:
        yield from source


def annexb_segments(source: Union[bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]],
                    name: str = "input") -> Iterator[Segment]:
    """The tagged segments of an Annex-B stream: bytes, a binary file, or pieces of bytes.

    Bytes other than zeros before the first start code refuse the first segment
    (``framing``). InputError when the stream holds no NAL unit at all.
    """
    scanner = AnnexBScanner()
    rule = Regrouper()
    seen = False
    for piece in _pieces(source):
        for unit, _index, _t in scanner.push(piece):
            if not seen and scanner.discarded:
                rule.problem("%d bytes before the first start code" % scanner.discarded)
            seen = True
            closed = rule.add(unit)
            if closed is not None:
                yield closed
    for unit, _index, _t in scanner.finish():
        seen = True
        closed = rule.add(unit)
        if closed is not None:
            yield closed
    if not seen:
        raise InputError("%s: not an H.264 Annex-B stream (no NAL unit)" % name)
    last = rule.finish()
    if last is not None:
        yield last


def tagged_segments(buf: Union[bytes, bytearray]) -> list[list[bytes]]:
    """The NAL units of each segment of an Annex-B buffer (a segment begins at its tag)."""
    return [segment.units for segment in annexb_segments(buf)]
