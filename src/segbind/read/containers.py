"""Containers: the one reader of each kind, then the cut into tagged segments.

    stream -> reader (events: the track, its samples, defects) -> read.cut -> segments

Every container kind has exactly one reader, the project's own (docs/CONTAINERS.md says what
each accepts and refuses); ``read.cut`` applies the rules every container shares. PyAV is not
on this path: it is the reference the readers are tested against (``read.pyav``).
"""

from __future__ import annotations

import io
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from segbind_core.tag import CODEC_NAMES

from ..errors import InputError
from ..framing import canonical_prefixed
from ..verifier import Canonical
from .cut import MAX_SEGMENT_BYTES, SampleCutter
from .events import Defect, Event, Sample, TrackInfo
from .sniff import FLV, MATROSKA, MP4, MPEGTS, NAMES
from .sources import open_file

Source = Union[str, IO[bytes], io.RawIOBase]
Reader = Callable[[Any, str, bool], Iterator[Event]]


def _mpegts(stream: Any, name: str, seekable: bool) -> Iterator[Event]:
    from .mpegts import mpegts_events

    return mpegts_events(stream, name)


def _mp4(stream: Any, name: str, seekable: bool) -> Iterator[Event]:
    from .mp4 import mp4_events

    return mp4_events(stream, name, seekable=seekable)


def _matroska(stream: Any, name: str, seekable: bool) -> Iterator[Event]:
    from .matroska import matroska_events

    return matroska_events(stream, name)


def _flv(stream: Any, name: str, seekable: bool) -> Iterator[Event]:
    from .flv import flv_events

    return flv_events(stream, name)


def reader(kind: str) -> Reader:
    """The reader of a container kind: ``reader(kind)(stream, name, seekable)`` gives its events."""
    readers: Dict[str, Reader] = {MP4: _mp4, MPEGTS: _mpegts, MATROSKA: _matroska, FLV: _flv}
    found = readers.get(kind)
    if found is None:
        raise InputError("no reader for %s" % NAMES.get(kind, kind))
    return found


def container_segments(source: Source, fmt: str, name: str, stats: Optional[Dict[str, Any]] = None,
                       video_only: bool = False, max_segment_bytes: int = MAX_SEGMENT_BYTES,
                       seekable: Optional[bool] = None) -> Iterator[Canonical]:
    """Each tagged segment of a container (``fmt``: "mp4", "mpegts", "matroska", "flv"), in stream
    order, as soon as it is complete. ``source``: a path, or a binary stream (``seekable``: it
    may be read out of order, e.g. an MP4 whose index comes last).

    Units before the first tag form a segment of their own (refused as untagged). What the
    reader found wrong refuses the segments it touches. A container cut short ends with what
    could be read: its last segment is then incomplete and refused, never dropped. InputError
    when the input cannot be read as video at all.
    """
    stream: Any = source
    opened = None
    if isinstance(source, str):
        stream = opened = open_file(source)
        seekable = True
    try:
        cutter = SampleCutter(max_segment_bytes, video_only)
        samples = 0
        codec = 0
        for event in reader(fmt)(stream, name, bool(seekable)):
            if isinstance(event, Sample):
                samples += 1
            elif isinstance(event, TrackInfo):
                codec = event.codec
            elif isinstance(event, Defect) and stats is not None and event.fatal:
                stats["error"] = event.text
            yield from cutter.feed(event)
        last = cutter.finish()
        if not last and samples == 0:
            raise InputError("%s: no %s samples in the %s" % (name, CODEC_NAMES.get(codec, "video"),
                                                             NAMES.get(fmt, fmt)))
        yield from last
        if stats is not None:
            stats["packets"] = samples
    finally:
        if opened is not None:
            opened.close()




def prefixed_units(data: bytes, length_size: int) -> Tuple[List[bytes], str]:
    """The units of a length-prefixed sample, and a defect ("" when none): the lengths must
    tile the sample exactly, with no empty unit (zero bytes ending a unit dropped)."""
    out = bytearray()
    count, defect = canonical_prefixed(data, length_size, out)
    if defect:
        return [], defect
    units = bytes(out).split(b"\x00\x00\x00\x01")[1:]
    return units if len(units) == count else [], "" if len(units) == count else "a NAL unit holds a start code"


__all__ = ["Source", "container_segments", "prefixed_units", "reader"]
