"""NAL unit framings and the canonical form every reader hands the verifier.

docs/FORMAT.md sections 4 and 7.3 define the canonical form (4-byte start codes, no
zero bytes between units) and what each framing may carry; docs/CONTAINERS.md gives
the rules per container. This module is their one home in the library:

- ``canonical_annexb`` and ``canonical_prefixed`` turn Annex-B bytes in any framing and
  length-prefixed samples (MP4, fMP4, Matroska) into the canonical form, counting the
  units as the framing delimits them, with no object per unit (memory stays linear in
  the bytes whatever the size of the units);
- ``tag_units`` finds segbind tags by their UUID with ``bytes.find`` instead of scanning
  every start code, and ``access_unit_start`` says where the access unit holding a tag
  begins: a segment starts there;
- ``head_variants`` puts parameter sets back where the camera put them, the one change
  remuxers are seen to make (docs/CONTAINERS.md).

Codec-specific bits are the small ``_kind``/``is_picture``/``opens_access_unit``
functions below, one line per codec.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from segbind_core import h264, h265
from segbind_core.sei import SEGBIND_UUID, tag_codec
from segbind_core.tag import CODEC_H264

Buffer = Union[bytes, bytearray, memoryview]
Bytes = Union[bytes, bytearray]  # what has find/rfind

START_CODE = b"\x00\x00\x00\x01"
_START3 = b"\x00\x00\x01"
_find_start_codes = re.compile(_START3).finditer

# -- unit types, per codec -------------------------------------------------------------------

# The units that open an access unit after a picture: H.264 7.4.1.2.3 (SEI, SPS, PPS, AUD,
# types 14-18), H.265 7.4.2.4.4 (VPS, SPS, PPS, AUD, prefix SEI, types 41-44 and 48-55).
_H264_OPENERS = frozenset(h264.AU_OPENERS)
_H265_OPENERS = frozenset(h265.AU_OPENERS)
_H264_SETS = (h264.NAL_SPS, h264.NAL_PPS)
_H265_SETS = (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS)


def _kind(header: int, codec: int) -> int:
    return header & 0x1F if codec == CODEC_H264 else (header >> 1) & 0x3F


def is_picture(header: int, codec: int) -> bool:
    """A unit that carries coded picture data (H.264 slices 1-5, H.265 VCL types 0-31)."""
    kind = _kind(header, codec)
    return 1 <= kind <= 5 if codec == CODEC_H264 else kind <= 31


def opens_access_unit(header: int, codec: int) -> bool:
    """A non-picture unit that, after a picture's units, begins the next access unit."""
    return _kind(header, codec) in (_H264_OPENERS if codec == CODEC_H264 else _H265_OPENERS)


def is_parameter_set(header: int, codec: int) -> bool:
    return _kind(header, codec) in (_H264_SETS if codec == CODEC_H264 else _H265_SETS)


def is_delimiter(unit: Buffer, codec: int) -> bool:
    """An access unit delimiter: H.264 ``09 xx`` (2 bytes), H.265 ``46 01 xx`` (3 bytes)."""
    if codec == CODEC_H264:
        return len(unit) == 2 and unit[0] & 0x1F == 9
    return len(unit) == 3 and (unit[0] >> 1) & 0x3F == 35


# -- canonical form ----------------------------------------------------------------------------

def leading_garbage(buf: Buffer, end: Optional[int] = None) -> int:
    """How many bytes other than zeros come before the first start code (in ``buf[:end]``)."""
    view = bytes(buf[:end]) if end is not None or isinstance(buf, memoryview) else buf
    first = view.find(_START3)
    head = view[:first] if first >= 0 else view
    return len(head) - head.count(0)


def _is_tag(buf: Buffer, begin: int) -> bool:
    """Whether the unit beginning at ``begin`` is a segbind tag (only SEI headers are looked at)."""
    return buf[begin] in (0x06, 0x4E) and bool(tag_codec(buf[begin:begin + 24]))


def canonical_annexb(buf: Buffer, out: bytearray, tags: Optional[List[int]] = None) -> int:
    """Append the canonical form of Annex-B bytes (3- or 4-byte start codes, zero bytes between
    units, empty units) to ``out``; return how many units it holds. With ``tags``, the
    positions in ``out`` where tag units begin are appended to it.

    Bytes before the first start code are skipped: callers refuse them (``leading_garbage``).
    """
    view = memoryview(buf)
    count = 0
    begin = -1
    for match in _find_start_codes(buf):
        at = match.start()
        if begin >= 0:
            count += _append_unit(buf, view, begin, at, out, tags)
        begin = at + 3
    if begin >= 0:
        count += _append_unit(buf, view, begin, len(buf), out, tags)
    return count


def _append_unit(buf: Buffer, view: memoryview, begin: int, end: int, out: bytearray,
                 tags: Optional[List[int]]) -> int:
    while end > begin and buf[end - 1] == 0:
        end -= 1
    if end <= begin:
        return 0
    out += START_CODE
    if tags is not None and _is_tag(buf, begin):
        tags.append(len(out))
    out += view[begin:end]
    return 1


_LENGTH = {1: struct.Struct(">B").unpack_from, 2: struct.Struct(">H").unpack_from,
           4: struct.Struct(">I").unpack_from}


def _length_reader(length_size: int) -> Callable[[Buffer, int], Tuple[int, ...]]:
    reader = _LENGTH.get(length_size)
    if reader is None:
        raise ValueError("NAL length size %d (1, 2 or 4)" % length_size)
    return reader


def canonical_prefixed(sample: Buffer, length_size: int, out: bytearray,
                       tags: Optional[List[int]] = None) -> Tuple[int, str]:
    """Append the canonical form of one length-prefixed sample to ``out``: (units, defect).

    The lengths must tile the sample exactly: no length running past its end, no bytes
    after the last unit, no empty unit (nor one of zero bytes only). Zero bytes ending a
    unit are dropped, as in Annex-B: a NAL unit never ends with one (H.264 7.4.1, H.265
    7.4.2.4.1), decoders skip them (trailing_zero_8bits, cabac_zero_words), and FFmpeg 5.1
    copies the next start code's zero byte into MP4 samples of H.265. With a defect (""
    when none) nothing is appended. With ``tags``, the positions in ``out`` where tag units
    begin are appended to it.
    """
    length = _length_reader(length_size)
    n = len(sample)
    base = len(out)
    found = len(tags) if tags is not None else 0
    count = 0
    pos = 0
    in_place = length_size == 4
    if in_place:
        out += sample  # one copy; the prefixes are overwritten with start codes in place
    view = memoryview(sample)
    while pos < n:
        begin = pos + length_size
        if begin > n:
            return _undo(out, base, tags, found, "a sample ends inside a NAL length prefix")
        size = length(sample, pos)[0]
        end = begin + size
        if size == 0 or end > n:
            return _undo(out, base, tags, found, _unit_defect(sample, size, end, n))
        last = end
        while last > begin and sample[last - 1] == 0:
            last -= 1
        if last == begin:
            return _undo(out, base, tags, found, "a sample holds a NAL unit of zero bytes only")
        if in_place and last < end:
            del out[base + pos:]  # the units so far are in place; the rest is copied
            in_place = False
        if in_place:
            out[base + pos:base + begin] = START_CODE
            if tags is not None and sample[begin] in (0x06, 0x4E) and _is_tag(sample, begin):
                tags.append(base + begin)
        else:
            out += START_CODE
            if tags is not None and sample[begin] in (0x06, 0x4E) and _is_tag(sample, begin):
                tags.append(len(out))
            out += view[begin:last]
        pos = end
        count += 1
    return count, ""


# Units at least this long on average are handed on as views of the sample, not copied: a
# copy of large units costs more than hashing them a view at a time.
VIEWS_FROM = 4096


def prefixed_parts(sample: Buffer, length_size: int, tags: List[int]) -> Tuple[List[Buffer], int, str]:
    """The canonical form of one length-prefixed sample as parts to read one after the other
    (start codes and views of the sample when its units are large, else one copy): (parts,
    units, defect). The positions where tag units begin in the joined parts are appended to
    ``tags``. Same checks as ``canonical_prefixed``; with a defect, no parts."""
    n = len(sample)
    if length_size == 4:  # views of the large units, the small ones copied together; else one copy
        length = _length_reader(4)
        view = memoryview(sample)
        parts: List[Buffer] = []
        glue = bytearray()  # start codes and small units, between two large units
        most = n // VIEWS_FROM + 1
        found = len(tags)
        units = pos = 0
        while pos < n and units <= most:
            begin = pos + 4
            if begin > n:
                break
            end = begin + length(sample, pos)[0]
            if end > n or end == begin or sample[end - 1] == 0:
                break
            glue += START_CODE
            if sample[begin] in (0x06, 0x4E) and _is_tag(sample, begin):
                tags.append(begin)
            if end - begin >= VIEWS_FROM:
                parts += (glue, view[begin:end])
                glue = bytearray()
            else:
                glue += view[begin:end]
            units += 1
            pos = end
        if pos == n and units:
            if glue:
                parts.append(glue)
            return parts, units, ""
        del tags[found:]
    out = bytearray()
    units, defect = canonical_prefixed(sample, length_size, out, tags)
    return ([out] if not defect else []), units, defect


def _undo(out: bytearray, base: int, tags: Optional[List[int]], found: int, defect: str) -> Tuple[int, str]:
    del out[base:]
    if tags is not None:
        del tags[found:]
    return 0, defect


def _unit_defect(sample: Buffer, size: int, end: int, n: int) -> str:
    if size == 0:
        return "a sample holds an empty NAL unit"
    return "a NAL length runs %d bytes past the end of its sample" % (end - n)


def split_canonical(data: bytes) -> List[Tuple[int, int]]:
    """Offsets (start, end) of the units of canonical bytes (for tools and tests)."""
    units = []
    pos = data.find(START_CODE)
    while pos >= 0:
        nxt = data.find(START_CODE, pos + 4)
        units.append((pos + 4, nxt if nxt >= 0 else len(data)))
        pos = nxt
    return units


# -- tags and access units ----------------------------------------------------------------------

def tag_unit_before(buf: Bytes, uuid_at: int) -> int:
    """Where the tag NAL unit whose UUID is at ``uuid_at`` begins (after its start code), or -1
    when those bytes are not a tag (the UUID inside some other unit)."""
    # header (1 or 2 bytes), payloadType 05, payloadSize (1 or 2 bytes: a tag is under 510 bytes)
    for begin in range(uuid_at - 3, uuid_at - 6, -1):
        if begin >= 3 and buf[begin - 3:begin] == _START3 and tag_codec(buf[begin:uuid_at + 16]):
            return begin
    return -1


def tag_units(buf: Bytes, start: int = 0, end: Optional[int] = None) -> List[int]:
    """The start (after the start code) of every tag NAL unit whose UUID lies in buf[start:end]."""
    found = []
    stop = len(buf) if end is None else end
    find = buf.find
    at = find(SEGBIND_UUID, start, stop)
    while at >= 0:
        begin = tag_unit_before(buf, at)
        if begin >= 0:
            found.append(begin)
        at = find(SEGBIND_UUID, at + 1, stop)
    return found


def code_start(buf: Bytes, begin: int, floor: int = 0) -> int:
    """Where the start code of the unit beginning at ``begin`` starts: 4 bytes before it when a
    zero byte leads the code, else 3."""
    at = begin - 3
    return at - 1 if at > floor and buf[at - 1] == 0 else at


def unit_end(buf: Bytes, begin: int, end: Optional[int] = None) -> int:
    """Where the unit beginning at ``begin`` ends: the next start code (its zero byte
    included), or ``end``; -1 when no start code follows before ``end`` and ``end`` is None."""
    stop = len(buf) if end is None else end
    nxt = buf.find(_START3, begin, stop)
    if nxt < 0:
        return stop if end is not None else -1
    while nxt > begin and buf[nxt - 1] == 0:
        nxt -= 1
    return nxt


def delimiter_before(buf: Bytes, floor: int, tag_code: int, codec: int) -> int:
    """Where the access unit delimiter right before a tag (the tag's start code at
    ``tag_code``) begins, its start code included, as the camera emits it; -1 when there is
    none. ``floor``: nothing before it is looked at."""
    back = buf.rfind(_START3, max(floor, tag_code - 16), tag_code)
    if back >= 0 and is_delimiter(bytes(buf[back + 3:tag_code]).rstrip(b"\x00"), codec):
        return back - 1 if back > floor and buf[back - 1] == 0 else back
    return -1


def access_unit_start(buf: Bytes, floor: int, tag_code: int, codec: int) -> int:
    """Where the access unit that holds a tag begins (the tag's start code at ``tag_code``),
    not before ``floor``: at the delimiter right before the tag, as the camera emits it;
    else at the first of the units that open an access unit after the last picture unit
    (H.264 7.4.1.2.3, H.265 7.4.2.4.4); else at the tag."""
    found = delimiter_before(buf, floor, tag_code, codec)
    if found >= 0:
        return found
    begin = tag_code
    limit = tag_code
    while True:
        back = buf.rfind(_START3, floor, limit)
        if back < 0 or back + 3 >= limit:
            return begin
        header = buf[back + 3]
        if is_picture(header, codec) or not opens_access_unit(header, codec):
            return begin
        begin = back - 1 if back > floor and buf[back - 1] == 0 else back
        limit = back


def head_variants(data: bytes, tag_start: int, tag_end: int, restore: Sequence[bytes],
                  codec: int) -> List[Tuple[bytes, int, int, int]]:
    """The segment (canonical, the tag at data[tag_start:tag_end]) with its parameter sets put
    back where the camera puts them, right after the tag: moved there when a remuxer moved
    them elsewhere in the head (the units before the first picture), copies identical to a
    set earlier in the head dropped when no other set shares their kind and id
    (``hevc_mp4toannexb`` adds ``hvcC``'s sets before every IRAP slice, present or not), or
    ``restore`` (the sets in force: the stream's latest,
    else the container's) when the head has none. At most one variant, as (data,
    tag_start, tag_end, units added: negative when copies were dropped); nothing else is
    ever inserted or moved, and a copy's removal changes nothing a decoder sees."""
    head: List[Tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        nxt = data.find(START_CODE, pos + 4)
        end = nxt if nxt >= 0 else len(data)
        if pos + 4 < end and is_picture(data[pos + 4], codec):
            break
        head.append((pos, end))
        pos = end
    else:
        return []
    body = pos  # the first picture unit (with its start code)
    if not any(s == tag_start for s, _ in head):
        return []
    sets = [data[s:e] for s, e in head if e > s + 4 and is_parameter_set(data[s + 4], codec)]
    others = [(s, e) for s, e in head if not (e > s + 4 and is_parameter_set(data[s + 4], codec))]
    at = next(i for i, (s, _) in enumerate(others) if s == tag_start) + 1
    if _copies_droppable([u[4:] for u in sets], codec):
        unique = list(dict.fromkeys(sets))
        added, sets = len(unique) - len(sets), unique
    else:
        added = 0
    if not sets:
        if not restore:
            return []
        sets = [START_CODE + bytes(u) for u in restore]
        added = len(sets)
    before = b"".join(data[s:e] for s, e in others[:at])
    moved = before + b"".join(sets) + b"".join(data[s:e] for s, e in others[at:]) + data[body:]
    if moved == data:
        return []
    start = len(before) - (tag_end - tag_start)
    return [(moved, start, start + tag_end - tag_start, added)]


def head_units(data: Bytes, codec: int, limit: int = 64) -> List[bytes]:
    """The units in the head (before the first picture) of Annex-B bytes in any framing."""
    units = []
    pos = data.find(_START3)
    count = 0
    while pos >= 0 and count < limit:
        begin = pos + 3
        nxt = data.find(_START3, begin)
        end = nxt if nxt >= 0 else len(data)
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            if is_picture(data[begin], codec):
                break
            units.append(bytes(data[begin:end]))
        pos = nxt
        count += 1
    return units


def _copies_droppable(sets: Sequence[bytes], codec: int) -> bool:
    """Whether the exact copies among a head's parameter sets can be dropped with nothing a
    decoder sees changed: every set of one kind and id in the head is the same bytes (with
    two different sets of one id, which comes last matters: nothing is dropped)."""
    unique = set(sets)
    if len(unique) == len(sets):
        return False
    syntax: Any = h265 if codec != CODEC_H264 else h264
    keys = set()
    for unit in unique:
        try:
            keys.add(syntax.parameter_set_key(unit))
        except (ValueError, IndexError):
            return False
    return len(keys) == len(unique)


def repeated_sets(data: Bytes, codec: int) -> int:
    """How many parameter sets in the head of Annex-B bytes are copies of one before them
    that ``head_variants`` drops."""
    sets = [u for u in head_units(data, codec) if is_parameter_set(u[0], codec)]
    return len(sets) - len(set(sets)) if _copies_droppable(sets, codec) else 0


def head_parameter_sets(data: Bytes, codec: int, limit: int = 64) -> List[bytes]:
    """The parameter sets in the head (the units before the first picture) of Annex-B bytes
    in any framing."""
    return [u for u in head_units(data, codec, limit) if is_parameter_set(u[0], codec)]
