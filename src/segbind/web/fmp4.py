"""Tagged segments as CMAF fragments: what a cloud serves to HLS players, keyless.

One tagged Annex-B segment (as the camera published it) becomes one fMP4 fragment
(moof + mdat) whose samples are its access units, each NAL unit length-prefixed
and unchanged: the tag stays in-band in the first sample, and nothing is added,
dropped or moved. The init segment carries the segment's own parameter sets in
``avcC``/``hvcC`` (a decoder reads them too: the display checks they are the
camera's). Timing comes from the tag's public fields (capture time, duration,
pictures), read without a key: the packager trusts nothing and proves nothing;
the display's verifier does that.

Written here rather than muxed with PyAV: one fragment per segment, made the
moment the segment arrives, with the decode time taken from the capture time,
so any server can package any segment on its own, in any order.
"""

from __future__ import annotations

import struct
from typing import List, NamedTuple, Optional, Sequence, Tuple

from segbind_core.h264 import BitReader, parse_sps
from segbind_core.nal import annexb_units, unescape_rbsp
from segbind_core.sei import segbind_payload, tag_codec
from segbind_core.tag import CODEC_H265, TagError, decode_tag

TIMESCALE = 90000
TRACK_ID = 1
_H264_SETS = (7, 8)
_H265_SETS = (32, 33, 34)
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_SYNC = 0x02000000      # sample_depends_on = 2: a random access point
_NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample


class PackagingError(ValueError):
    """A segment that cannot be packaged (no NAL units, no parameter sets for an init segment)."""


class SegmentTiming(NamedTuple):
    """What the packager reads from a tag's public fields (no key: nothing here is proven)."""

    codec: int
    capture_ms: int
    duration_ms: int
    pictures: int


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _kind(unit: bytes, codec: int) -> int:
    return (unit[0] >> 1) & 0x3F if codec == CODEC_H265 else unit[0] & 0x1F


def _is_vcl(kind: int, codec: int) -> bool:
    return kind <= 31 if codec == CODEC_H265 else 1 <= kind <= 5


def _opens_access_unit(kind: int, codec: int) -> bool:
    """Non-VCL units that begin a new access unit after a picture (H.264 7.4.1.2.3, H.265 7.4.2.4.4)."""
    if codec == CODEC_H265:
        return kind in (32, 33, 34, 35, 39) or 41 <= kind <= 44 or 48 <= kind <= 55
    return kind in (6, 7, 8, 9, 14, 15, 16, 17, 18)


def _first_slice(unit: bytes, codec: int) -> bool:
    """first_mb_in_slice == 0 (H.264) / first_slice_segment_in_pic_flag (H.265)."""
    at = 2 if codec == CODEC_H265 else 1
    return len(unit) > at and bool(unit[at] & 0x80)


def access_units(units: Sequence[bytes], codec: int) -> List[List[bytes]]:
    """The segment's NAL units grouped into access units (decoding order), each unit kept as is."""
    out: List[List[bytes]] = []
    current: List[bytes] = []
    seen_vcl = False
    for unit in units:
        kind = _kind(unit, codec)
        vcl = _is_vcl(kind, codec)
        starts = seen_vcl and ((vcl and _first_slice(unit, codec)) or (not vcl and _opens_access_unit(kind, codec)))
        if starts and current:
            out.append(current)
            current, seen_vcl = [], False
        current.append(unit)
        seen_vcl = seen_vcl or vcl
    if current:
        out.append(current)
    return out


def segment_timing(units: Sequence[bytes]) -> SegmentTiming:
    """The public timing fields of the segment's tag; PackagingError when it has no readable tag."""
    for unit in units:
        codec = tag_codec(unit)
        if codec:
            try:
                tag, _signed = decode_tag(segbind_payload(unit))
            except (TagError, ValueError) as exc:
                raise PackagingError("the segment's tag cannot be read: %s" % exc) from None
            return SegmentTiming(codec, tag.capture_ms, tag.duration_ms, tag.pictures)
    raise PackagingError("the segment carries no segbind tag")


def fragment(segment: bytes, number: int, timing: Optional[SegmentTiming] = None) -> bytes:
    """One fMP4 fragment (moof + mdat) holding the segment's access units, unchanged.

    ``number`` is the fragment's sequence number (mfhd); the decode time of its first
    sample is its capture time at 90 kHz, and its pictures share its duration.
    """
    units = [bytes(segment[s:e]) for s, e in annexb_units(segment)]
    if not units:
        raise PackagingError("the segment holds no NAL units")
    timing = timing or segment_timing(units)
    return fragment_of_samples(access_units(units, timing.codec), number, timing)


def fragment_of_samples(samples: Sequence[Sequence[bytes]], number: int, timing: SegmentTiming) -> bytes:
    """A fragment whose samples hold these NAL units (one sample per access unit, as
    ``fragment`` groups them; tests group them otherwise to see timing refused)."""
    data = [b"".join(struct.pack(">I", len(u)) + u for u in sample) for sample in samples]
    total = timing.duration_ms * TIMESCALE // 1000
    count = len(data)
    durations = [(i + 1) * total // count - i * total // count for i in range(count)]
    entries = b"".join(struct.pack(">III", d, len(s), _SYNC if i == 0 else _NON_SYNC)
                       for i, (d, s) in enumerate(zip(durations, data)))

    def moof(data_offset: int) -> bytes:
        trun = full_box(b"trun", 0, 0x000701, struct.pack(">Ii", count, data_offset), entries)
        traf = box(b"traf", full_box(b"tfhd", 0, 0x020000, struct.pack(">I", TRACK_ID)),
                   full_box(b"tfdt", 1, 0, struct.pack(">Q", timing.capture_ms * TIMESCALE // 1000)), trun)
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", number & 0xFFFFFFFF)), traf)

    head = moof(0)
    return moof(len(head) + 8) + box(b"mdat", *data)


def parameter_sets(segment: bytes) -> Tuple[int, List[bytes]]:
    """(codec, the parameter sets of the segment's head) of a tagged segment."""
    units = [bytes(segment[s:e]) for s, e in annexb_units(segment)]
    codec = segment_timing(units).codec
    wanted = _H265_SETS if codec == CODEC_H265 else _H264_SETS
    sets: List[bytes] = []
    for unit in units:
        kind = _kind(unit, codec)
        if _is_vcl(kind, codec):
            break
        if kind in wanted and unit not in sets:
            sets.append(unit)
    if not any(_kind(u, codec) == wanted[-2] for u in sets):
        raise PackagingError("the segment's head carries no sequence parameter set")
    return codec, sets


def init_segment(segment: bytes) -> bytes:
    """The init segment for a tagged segment: one video track whose configuration holds the
    segment's own parameter sets (so a decoder reads nothing the camera did not send)."""
    codec, sets = parameter_sets(segment)
    if codec == CODEC_H265:
        entry_kind, config, (width, height) = b"hvc1", _hvcc(sets), _h265_size(_first(sets, 33, codec))
    else:
        entry_kind, config, (width, height) = b"avc1", _avcc(sets), _h264_size(_first(sets, 7, codec))
    entry = box(entry_kind, bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
                struct.pack(">II", 0x00480000, 0x00480000), bytes(4), struct.pack(">H", 1),
                bytes([7]) + b"segbind".ljust(31, b"\0"), struct.pack(">Hh", 0x18, -1), config)
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
               full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
               full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
    minf = box(b"minf", full_box(b"vmhd", 0, 1, bytes(8)),
               box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1))), stbl)
    mdia = box(b"mdia", full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0)),
               full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"segbind video\0"), minf)
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, TRACK_ID, 0, 0), bytes(8),
                    struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, 1000, 0, 0x00010000, 0x0100), bytes(10),
                    _MATRIX, bytes(24), struct.pack(">I", TRACK_ID + 1))
    mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 0, 0, 0)))
    brand = b"hvc1" if codec == CODEC_H265 else b"avc1"
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"isom", brand)
    return ftyp + box(b"moov", mvhd, box(b"trak", tkhd, mdia), mvex)


def _first(sets: Sequence[bytes], kind: int, codec: int) -> bytes:
    return next(u for u in sets if _kind(u, codec) == kind)


def _avcc(sets: Sequence[bytes]) -> bytes:
    sps = [u for u in sets if u[0] & 0x1F == 7]
    pps = [u for u in sets if u[0] & 0x1F == 8]
    first = sps[0]
    out = bytes([1, first[1], first[2], first[3], 0xFF, 0xE0 | len(sps)])
    out += b"".join(struct.pack(">H", len(u)) + u for u in sps)
    out += bytes([len(pps)]) + b"".join(struct.pack(">H", len(u)) + u for u in pps)
    info = parse_sps(first)
    if info.high_profile:
        out += bytes([0xFC | info.chroma_format, 0xF8 | (info.bit_depth_luma - 8),
                      0xF8 | (info.bit_depth_chroma - 8), 0])
    return box(b"avcC", out)


def _h264_size(sps: bytes) -> Tuple[int, int]:
    """The picture size an H.264 SPS gives (cropping applied): for the sample entry and tkhd."""
    info = parse_sps(sps)
    if not info.complete:
        raise ValueError("the SPS cannot be read up to its picture size")
    return info.width, info.height


def _h265_sps_fields(sps: bytes) -> Tuple[bytes, int, int, int, int, int, int]:
    """(profile_tier_level general bytes, sub-layers - 1, temporal id nesting, chroma format,
    width, height, luma and chroma bit depths - 8 packed as luma << 4 | chroma) of an H.265 SPS."""
    rbsp = unescape_rbsp(sps[2:])
    bits = BitReader(rbsp)
    bits.u(4)
    sub_layers = bits.u(3)
    nesting = bits.u(1)
    general = rbsp[1:13]
    bits.u(96)
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))
    for profile, level in present:
        bits.u(88 if profile else 0)
        bits.u(8 if level else 0)
    bits.ue()
    chroma = bits.ue()
    if chroma == 3:
        bits.u(1)
    width, height = bits.ue(), bits.ue()
    if bits.u(1):
        sub_x = 2 if chroma in (1, 2) else 1
        sub_y = 2 if chroma == 1 else 1
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width -= sub_x * (left + right)
        height -= sub_y * (top + bottom)
    depths = (bits.ue() << 4) | bits.ue()
    return general, sub_layers, nesting, chroma, width, height, depths


def _h265_size(sps: bytes) -> Tuple[int, int]:
    fields = _h265_sps_fields(sps)
    return fields[4], fields[5]


def _hvcc(sets: Sequence[bytes]) -> bytes:
    general, sub_layers, nesting, chroma, _w, _h, depths = _h265_sps_fields(_first(sets, 33, CODEC_H265))
    out = bytes([1]) + general + bytes([0xF0, 0x00, 0xFC, 0xFC | chroma, 0xF8 | (depths >> 4), 0xF8 | (depths & 15)])
    out += struct.pack(">H", 0) + bytes([((sub_layers + 1) & 7) << 3 | nesting << 2 | 3])
    arrays = []
    for kind in _H265_SETS:
        units = [u for u in sets if _kind(u, CODEC_H265) == kind]
        if units:
            arrays.append(bytes([0x80 | kind]) + struct.pack(">H", len(units))
                          + b"".join(struct.pack(">H", len(u)) + u for u in units))
    return box(b"hvcC", out, bytes([len(arrays)]), *arrays)

