"""Where segments start: cutting a NAL unit sequence at IDR pictures.

A segment is a run of whole access units that decodes on its own; segbind
cuts one at every IDR picture. An access unit's leading non-VCL units (AUD,
SPS, PPS, SEI) belong with the picture they precede.
"""

from .nal import NAL_IDR, is_vcl


def starts_picture(buf, unit) -> bool:
    """True for the first slice of a picture (first_mb_in_slice == 0).

    first_mb_in_slice is the first ue(v) of the slice header; it is 0 exactly
    when its first bit is 1.
    """
    s, e = unit
    return e - s > 1 and bool(buf[s + 1] & 0x80)


def segment_starts(buf, units) -> list:
    """Indexes into ``units`` where each segment begins.

    A segment begins with the first non-VCL unit after the previous picture's
    last slice, when the next picture is an IDR picture. Units before the first
    IDR picture form a segment of their own (index 0), so nothing is dropped.
    """
    starts = [0] if units else []
    pending = -1  # first non-VCL unit since the last slice
    for i, unit in enumerate(units):
        if not is_vcl(buf[unit[0]] & 0x1F):
            if pending < 0:
                pending = i
            continue
        if buf[unit[0]] & 0x1F == NAL_IDR and starts_picture(buf, unit):
            start = i if pending < 0 else pending
            if start > starts[-1]:
                starts.append(start)
        pending = -1
    return starts


def split_segments(buf, units) -> list:
    """The units of each segment, as lists of (start, end) offsets."""
    starts = segment_starts(buf, units)
    bounds = starts + [len(units)]
    return [units[bounds[i]:bounds[i + 1]] for i in range(len(starts))]
