"""Cutting a tagged Annex-B stream back into the segments the camera tagged."""

from __future__ import annotations

from typing import List, Tuple, Union

from segbind_core.nal import NAL_AUD, annexb_units, leading_garbage
from segbind_core.sei import is_segbind_sei

from .errors import InputError

Unit = Tuple[int, int]


def tagged_segments(buf: Union[bytes, bytearray]) -> List[List[Unit]]:
    """The NAL units of each segment: a segment begins at its segbind SEI (or the AUD just before it).

    Units before the first tag form a segment of their own, which a verifier
    then refuses as untagged: nothing in the stream goes unjudged.
    Raises InputError when the bytes hold no H.264 NAL units at all.
    """
    units = annexb_units(buf)
    if not units or leading_garbage(buf):
        raise InputError("not an H.264 Annex-B stream (no start code at the beginning)")
    view = memoryview(buf)
    starts = [0]
    for i, (s, e) in enumerate(units):
        if is_segbind_sei(view[s:e]):
            start = i - 1 if i > 0 and buf[units[i - 1][0]] & 0x1F == NAL_AUD else i
            if start > starts[-1]:
                starts.append(start)
    bounds = starts + [len(units)]
    return [units[bounds[k]:bounds[k + 1]] for k in range(len(starts))]
