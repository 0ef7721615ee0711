"""Reading tagged segments out of an H.264 Annex-B stream (as cameras and ``segbind tag`` write it)."""

from __future__ import annotations

from typing import Iterator, List, Tuple, Union

from segbind_core.nal import annexb_units, leading_garbage

from ..errors import InputError
from .regroup import Segment, segments_of_units

Unit = Tuple[int, int]


def annexb_segments(data: Union[bytes, bytearray]) -> Iterator[Segment]:
    """The tagged segments of an Annex-B buffer, as offsets into it (nothing is copied).

    InputError when the buffer holds no NAL unit.
    """
    units = annexb_units(data)
    if not units:
        raise InputError("not an H.264 Annex-B stream (no start code)")
    yield from segments_of_units(data, units)


def tagged_segments(buf: Union[bytes, bytearray]) -> List[List[Unit]]:
    """The NAL units of each segment, as (start, end) offsets into ``buf``.

    A segment begins at its segbind SEI (``segbind.read.regroup``). Raises
    InputError when the bytes hold no H.264 NAL units at all, or do not begin
    with a start code.
    """
    if leading_garbage(buf):
        raise InputError("not an H.264 Annex-B stream (no start code at the beginning)")
    return [segment.units for segment in annexb_segments(buf)]
