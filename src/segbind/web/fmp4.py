"""Tagged segments as Common Encryption ('cenc') CMAF fragments: what a cloud serves to HLS
players, and what ``segbind hls --type fmp4`` writes, without keys (docs/FORMAT.md 4.4).

A tagged segment (as the camera published it: Annex-B, picture data in the protected form
of FORMAT.md 4.2) becomes one fMP4 fragment (moof + mdat) of one sample per access unit.
Each sample holds the access unit's NAL units, length-prefixed: every unit other than a
picture unit as it is (the tag stays in-band, in clear, in the first sample), each picture
unit as its first ``L`` bytes (the tag's clear lead), its ciphertext (recovered from the
protected form: ``protect.protected_bytes``) and its last byte. The fragment's 'senc' (with
'saiz'/'saio') says which bytes are ciphertext (the subsamples) and where each sample's
keystream begins (its 16-byte IV: the counter block of FORMAT.md 4.3). A ClearKey player
given the period's content key for the tag's key id (the 'tenc' default_KID) decrypts each
sample into exactly the units the camera's encoder made; a segbind verifier puts the
ciphertext back into the protected form (``read.cut``) and checks the tag, then decrypts.

The packager reads only the tag's public fields (key id, stream id, seq, clear lead, the
still flag, capture time, duration, pictures) and the bytes in clear: it holds no key and
proves nothing. The init segment ('encv' + 'sinf': 'frma', 'schm' 'cenc' 1.0, 'tenc'; a
ClearKey 'pssh' listing the key id) carries the segment's own parameter sets in
``avcC``/``hvcC`` (a decoder reads them too: the verifier checks they are the camera's) and
the key id: a new key id (a new period or epoch) needs a new init segment, as do new
parameter sets (``init_key`` names what an init segment depends on).

Written here rather than muxed with PyAV: FFmpeg cannot package ciphertext it did not make,
and a cloud packages one fragment per segment the moment the segment arrives, with the
decode time taken from the capture time, so any server can package any segment on its own.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from segbind_core import h264, h265
from segbind_core.h264 import BitReader, parse_sps
from segbind_core.nal import annexb_units, unescape_rbsp
from segbind_core.protect import DOMAIN_SEGMENT, DOMAIN_STILL, counter_block, protected_bytes
from segbind_core.sei import segbind_payload, tag_codec
from segbind_core.tag import CODEC_H265, TagError, decode_tag

TIMESCALE = 90000
TRACK_ID = 1
SCHEME = b"cenc"
SCHEME_VERSION = 0x00010000
IV_SIZE = 16
LENGTH_SIZE = 4
CLEARKEY_SYSTEM_ID = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")  # W3C Clear Key ('pssh')
MAX_CLEAR_BYTES = 0xFFFF  # BytesOfClearData is 16 bits: a longer clear run is split (n x (65535, 0) first)
_H264_SETS = (7, 8)
_H265_SETS = (32, 33, 34)
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_SYNC = 0x02000000      # sample_depends_on = 2: a random access point
_NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample

Subsamples = Tuple[Tuple[int, int], ...]


class PackagingError(ValueError):
    """A segment that cannot be packaged (no NAL units, no readable tag, no parameter sets for an
    init segment)."""


class TagFields(NamedTuple):
    """What the packager reads from a segment's tag: public fields only (no key: nothing here is
    proven). Timing for the fragment; key id, stream id, seq, clear lead and the still flag for
    Common Encryption (FORMAT.md 4.4)."""

    codec: int
    capture_ms: int
    duration_ms: int
    pictures: int
    key_id: bytes = b""
    stream_id: int = 0
    seq: int = 0
    clear_lead: int = 0
    still: bool = False

    def initial_counter_block(self) -> bytes:
        """The counter block the segment's keystream begins at (FORMAT.md 4.3)."""
        return counter_block(DOMAIN_STILL if self.still else DOMAIN_SEGMENT, self.stream_id, self.seq)


SegmentTiming = TagFields  # the name the packager's callers and tests knew it by


class Sample(NamedTuple):
    """One sample of a fragment: its bytes, duration and composition offset (ticks of
    ``TIMESCALE``), whether it is a random access point, and its Common Encryption: the IV and
    the (clear, protected) byte counts."""

    data: bytes
    duration: int
    offset: int
    sync: bool
    iv: bytes
    subsamples: Subsamples


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


def delimited_access_units(units: Sequence[bytes], codec: int) -> List[List[bytes]]:
    """The segment's NAL units cut before every access unit delimiter: the camera begins every
    access unit with one, and each access unit's keystream at a fresh counter block after it
    (FORMAT.md 4.3; ``protect.protect``), which is what a 'cenc' sample's IV can express."""
    aud = h265.NAL_AUD if codec == CODEC_H265 else h264.NAL_AUD
    out: List[List[bytes]] = []
    for unit in units:
        if not out or (_kind(unit, codec) == aud and out[-1]):
            out.append([])
        out[-1].append(unit)
    return out


# ---- Common Encryption: what FORMAT.md 4.4 derives from the tag and the units -------------------

def protected_size(header: int, size: int, codec: int, lead: int) -> int:
    """How many bytes of a NAL unit 'cenc' protects: for a picture unit of ``size`` bytes (as a
    decoder reads it: the encoder's unit, or its ciphertext form) ``size - 1 - lead`` when that
    is positive (FORMAT.md 4.1), else 0; every other unit stays in clear."""
    kind = (header >> 1) & 0x3F if codec == CODEC_H265 else header & 0x1F
    if not _is_vcl(kind, codec) or size - 1 <= lead:
        return 0
    return size - 1 - lead


def subsamples_of(units: Iterable[Tuple[int, int]], codec: int, lead: int,
                  length_size: int = LENGTH_SIZE) -> Subsamples:
    """The (clear, protected) byte counts of a sample whose NAL units are ``units`` ((first
    header byte, size) each, in order, every one behind a ``length_size``-byte length): each
    picture unit's length prefix and first ``lead`` bytes clear, its ciphertext protected, its
    last byte clear (counted with the next subsample's clear bytes); every other unit clear. A
    clear run longer than 65535 bytes begins with (65535, 0) subsamples (as Shaka Packager
    writes it). The one derivation both the packager and the verifier use (``iter_subsamples``
    gives them one at a time)."""
    return tuple(iter_subsamples(units, codec, lead, length_size))


def iter_subsamples(units: Iterable[Tuple[int, int]], codec: int, lead: int,
                    length_size: int = LENGTH_SIZE) -> Iterator[Tuple[int, int]]:
    """``subsamples_of``, one subsample at a time (memory: one, whatever the sample holds)."""
    clear = 0
    none = True
    h265 = codec == CODEC_H265
    for header, size in units:
        kind = (header >> 1) & 0x3F if h265 else header & 0x1F
        if (kind <= 31 if h265 else 1 <= kind <= 5) and size - 1 > lead:  # protected_size
            clear += length_size + lead
            while clear > MAX_CLEAR_BYTES:
                yield MAX_CLEAR_BYTES, 0
                clear -= MAX_CLEAR_BYTES
            yield clear, size - 1 - lead
            none = False
            clear = 1
        else:
            clear += length_size + size
    while clear > MAX_CLEAR_BYTES:
        yield MAX_CLEAR_BYTES, 0
        clear -= MAX_CLEAR_BYTES
        none = False
    if clear or none:
        yield clear, 0


def counter_block_after(initial: bytes, blocks: int) -> bytes:
    """The counter block ``blocks`` blocks after ``initial`` (a 128-bit big-endian counter)."""
    return ((int.from_bytes(initial, "big") + blocks) % (1 << 128)).to_bytes(16, "big")


def blocks_used(protected: int) -> int:
    """Keystream blocks an access unit of ``protected`` ciphertext bytes takes: the next access
    unit begins at a fresh block (FORMAT.md 4.3)."""
    return (protected + 15) // 16


def cenc_samples(samples: Sequence[Sequence[bytes]], fields: TagFields) -> List[Tuple[bytes, bytes, Subsamples]]:
    """(sample bytes, IV, subsamples) of each sample, whose NAL units (in the camera's protected
    form, without start codes) are given: picture units hold their ciphertext where the
    protected form holds it escaped. The IVs follow the segment's keystream: each sample (an
    access unit) begins at the counter block after the blocks of the samples before it."""
    lead = fields.clear_lead
    codec = fields.codec
    initial = fields.initial_counter_block()
    blocks = 0
    out = []
    for units in samples:
        data = bytearray()
        sizes = []
        for unit in units:
            if protected_size(unit[0], len(unit), codec, lead):
                unit = bytes(unit[:lead]) + protected_bytes(unit, lead) + bytes(unit[-1:])
            data += struct.pack(">I", len(unit))
            data += unit
            sizes.append((unit[0], len(unit)))
        subsamples = subsamples_of(sizes, codec, lead)
        out.append((bytes(data), counter_block_after(initial, blocks), subsamples))
        blocks += blocks_used(sum(p for _c, p in subsamples))
    return out


# ---- the tag's public fields ------------------------------------------------------------------------

def segment_fields(units: Sequence[bytes]) -> TagFields:
    """The public fields of the segment's tag; PackagingError when it has no readable tag."""
    for unit in units:
        codec = tag_codec(unit)
        if codec:
            try:
                tag, _signed = decode_tag(segbind_payload(unit))
            except (TagError, ValueError) as exc:
                raise PackagingError("the segment's tag cannot be read: %s" % exc) from None
            return TagFields(codec, tag.capture_ms, tag.duration_ms, tag.pictures, bytes(tag.key_id),
                             tag.stream_id, tag.seq, tag.clear_lead, tag.still)
    raise PackagingError("the segment carries no segbind tag")


segment_timing = segment_fields  # the name the packager's callers and tests knew it by


def _units(segment: bytes) -> List[bytes]:
    units = [bytes(segment[s:e]) for s, e in annexb_units(segment)]
    if not units:
        raise PackagingError("the segment holds no NAL units")
    return units


# ---- fragments ------------------------------------------------------------------------------------

def fragment(segment: bytes, number: int, timing: Optional[TagFields] = None) -> bytes:
    """One 'cenc' fragment (moof + mdat) holding the segment's access units, one sample each.

    ``number`` is the fragment's sequence number (mfhd); the decode time of its first sample is
    its capture time at 90 kHz, and its pictures share its duration (``timing``: the tag's
    fields, for tests that change them).
    """
    units = _units(segment)
    fields = segment_fields(units)
    return fragment_of_samples(delimited_access_units(units, fields.codec), number, timing or fields)


def fragment_of_samples(samples: Sequence[Sequence[bytes]], number: int, fields: TagFields) -> bytes:
    """A fragment whose samples hold these NAL units (one sample per access unit, as ``fragment``
    groups them; tests group them otherwise to see them refused), timed by the tag's fields."""
    protected = cenc_samples(samples, fields)
    total = fields.duration_ms * TIMESCALE // 1000
    count = len(protected)
    durations = [(i + 1) * total // count - i * total // count for i in range(count)]
    return movie_fragment(number, fields.capture_ms * TIMESCALE // 1000, [
        Sample(data, duration, 0, i == 0, iv, subsamples)
        for i, ((data, iv, subsamples), duration) in enumerate(zip(protected, durations))])


def movie_fragment(number: int, decode_time: int, samples: Sequence[Sample]) -> bytes:
    """moof + mdat: one 'traf' (default-base-is-moof) with one 'trun' (data_offset, and each
    sample's duration, size, flags and composition offset), its 'senc' (16-byte IVs, subsamples)
    and, when every entry fits the 8-bit sizes of 'saiz', 'saiz' and 'saio' pointing at it."""
    count = len(samples)
    entries = b"".join(struct.pack(">IIII", s.duration, len(s.data), _SYNC if s.sync else _NON_SYNC, s.offset)
                       for s in samples)
    senc_entries = b"".join(s.iv + struct.pack(">H", len(s.subsamples))
                            + b"".join(struct.pack(">HI", c, p) for c, p in s.subsamples) for s in samples)
    sizes = [IV_SIZE + 2 + 6 * len(s.subsamples) for s in samples]
    senc = full_box(b"senc", 0, 0x2, struct.pack(">I", count), senc_entries)
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", number & 0xFFFFFFFF))
    tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", TRACK_ID))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time))

    def moof(data_offset: int) -> bytes:
        trun = full_box(b"trun", 0, 0x000F01, struct.pack(">Ii", count, data_offset), entries)
        aux = b""
        if max(sizes, default=0) <= 0xFF:
            same = sizes[0] if sizes and all(size == sizes[0] for size in sizes) else 0
            saiz = full_box(b"saiz", 0, 0, bytes([same]), struct.pack(">I", count), b"" if same else bytes(sizes))
            # the first 'senc' entry, from the moof's start: moof, mfhd, traf, tfhd, tfdt, trun, senc headers
            at = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + len(trun) + 16
            aux = saiz + full_box(b"saio", 0, 0, struct.pack(">II", 1, at))
        return box(b"moof", mfhd, box(b"traf", tfhd, tfdt, trun, senc, aux))

    head = moof(0)
    return moof(len(head) + 8) + box(b"mdat", *(s.data for s in samples))


# ---- init segments ---------------------------------------------------------------------------------

def parameter_sets(segment: bytes) -> Tuple[int, List[bytes]]:
    """(codec, the parameter sets of the segment's head) of a tagged segment."""
    units = _units(segment)
    codec = segment_fields(units).codec
    return codec, head_parameter_sets(units, codec)


def head_parameter_sets(units: Sequence[bytes], codec: int) -> List[bytes]:
    """The parameter sets before the first picture unit, each once; PackagingError without an SPS."""
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
    return sets


def init_key(segment: bytes) -> bytes:
    """What a segment's init segment depends on (its codec, parameter sets and key id): segments
    with the same key share one init segment."""
    units = _units(segment)
    fields = segment_fields(units)
    sets = head_parameter_sets(units, fields.codec)
    return bytes([fields.codec]) + fields.key_id + b"".join(len(s).to_bytes(4, "big") + s for s in sets)


def init_segment(segment: bytes) -> bytes:
    """The init segment for a tagged segment: one 'cenc' video track whose configuration holds
    the segment's own parameter sets (so a decoder reads nothing the camera did not send) and
    whose default_KID is the segment's key id."""
    units = _units(segment)
    fields = segment_fields(units)
    return movie(fields.codec, head_parameter_sets(units, fields.codec), fields.key_id)


def movie(codec: int, sets: Sequence[bytes], key_id: bytes, media_time: int = 0) -> bytes:
    """ftyp + moov of one 'encv' video track: 'avc1' (H.264) or 'hev1' (H.265: its parameter sets
    stay in-band too, which 'hvc1' forbids) protected as 'cenc' under ``key_id``, with a ClearKey
    'pssh' (EME's init data). ``media_time`` > 0 writes an edit list that starts the presentation
    at that composition time (the delay B-frames add)."""
    if codec == CODEC_H265:
        original, config, (width, height) = b"hev1", _hvcc(sets), _h265_size(_first(sets, 33, codec))
    else:
        original, config, (width, height) = b"avc1", _avcc(sets), _h264_size(_first(sets, 7, codec))
    tenc = full_box(b"tenc", 0, 0, bytes([0, 0, 1, IV_SIZE]), key_id)
    sinf = box(b"sinf", box(b"frma", original), full_box(b"schm", 0, 0, SCHEME, struct.pack(">I", SCHEME_VERSION)),
               box(b"schi", tenc))
    entry = box(b"encv", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
                struct.pack(">II", 0x00480000, 0x00480000), bytes(4), struct.pack(">H", 1),
                bytes([7]) + b"segbind".ljust(31, b"\0"), struct.pack(">Hh", 0x18, -1), config, sinf)
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
               full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
               full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
    minf = box(b"minf", full_box(b"vmhd", 0, 1, bytes(8)),
               box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1))), stbl)
    mdia = box(b"mdia", full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0)),
               full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"segbind video\0"), minf)
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, TRACK_ID, 0, 0), bytes(8),
                    struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    edts = b""
    if media_time:
        edts = box(b"edts", full_box(b"elst", 0, 0, struct.pack(">IIiHH", 1, 0, media_time, 1, 0)))
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, 1000, 0, 0x00010000, 0x0100), bytes(10),
                    _MATRIX, bytes(24), struct.pack(">I", TRACK_ID + 1))
    mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 0, 0, 0)))
    pssh = full_box(b"pssh", 1, 0, CLEARKEY_SYSTEM_ID, struct.pack(">I", 1), key_id, struct.pack(">I", 0))
    brand = b"hev1" if codec == CODEC_H265 else b"avc1"
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"isom", brand)
    return ftyp + box(b"moov", mvhd, box(b"trak", tkhd, edts, mdia), mvex, pssh)


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
        raise PackagingError("the SPS cannot be read up to its picture size")
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
    """hvcC for 'hev1': array_completeness 0 (the samples carry the camera's sets too)."""
    general, sub_layers, nesting, chroma, _w, _h, depths = _h265_sps_fields(_first(sets, 33, CODEC_H265))
    out = bytes([1]) + general + bytes([0xF0, 0x00, 0xFC, 0xFC | chroma, 0xF8 | (depths >> 4), 0xF8 | (depths & 15)])
    out += struct.pack(">H", 0) + bytes([((sub_layers + 1) & 7) << 3 | nesting << 2 | 3])
    arrays = []
    for kind in _H265_SETS:
        units = [u for u in sets if _kind(u, CODEC_H265) == kind]
        if units:
            arrays.append(bytes([kind]) + struct.pack(">H", len(units))
                          + b"".join(struct.pack(">H", len(u)) + u for u in units))
    return box(b"hvcC", out, bytes([len(arrays)]), *arrays)
