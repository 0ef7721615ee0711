"""Cutting a tagged Annex-B stream back into the segments the camera tagged."""

from __future__ import annotations

from typing import List, Tuple, Union

from segbind_core.nal import leading_garbage

from .containers import annexb_segments
from .errors import InputError

Unit = Tuple[int, int]


def tagged_segments(buf: Union[bytes, bytearray]) -> List[List[Unit]]:
    """The NAL units of each segment, as (start, end) offsets into ``buf``.

    A segment begins at its segbind SEI; AUDs and parameter sets between the
    previous segment's last picture and the tag belong to it. Units before the
    first tag form a segment of their own, which a verifier then refuses as
    untagged: nothing in the stream goes unjudged. (``segbind.containers``
    reads every container the same way, and undoes what remuxers change.)
    Raises InputError when the bytes hold no H.264 NAL units at all.
    """
    if leading_garbage(buf):
        raise InputError("not an H.264 Annex-B stream (no start code at the beginning)")
    return [segment.units for segment in annexb_segments(buf)]
