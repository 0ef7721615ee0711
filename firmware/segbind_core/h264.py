"""H.264 syntax: the one place segbind reads H.264 beyond NAL unit boundaries.

NAL header and unit types, an Exp-Golomb bit reader, sequence and picture
parameter sets, the slice header fields segbind needs (first slice of a
picture, frame or field, picture order count), the SEI message walk and a
tracker of the parameter sets in force. Everything else (the segmenter, the
verifier's readers, the HLS writer's clock, the simulated encoder) calls here.

Pure code: bytes in, values out; the same file runs on CPython and MicroPython.
NAL units are passed as escaped bytes (emulation prevention kept), header byte
first, as they are in the bitstream.
"""

from .nal import ParameterSetTables, unescape_rbsp

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional

    from .nal import Buffer
except ImportError:
    pass

# nal_unit_type values (ITU-T H.264 table 7-1) that segbind needs by name.
NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_END_OF_SEQUENCE = 10
NAL_END_OF_STREAM = 11
NAL_FILLER = 12

# Non-VCL NAL unit types that begin a new access unit when they follow a
# picture's slices (H.264 7.4.1.2.3): SEI, SPS, PPS, AUD and types 14 to 18.
AU_OPENERS = (6, 7, 8, 9, 14, 15, 16, 17, 18)

# SEI payloadType values segbind needs by name (H.264 annex D).
SEI_RECOVERY_POINT = 6
SEI_USER_DATA_UNREGISTERED = 5

# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)

# How many bytes of a slice NAL unit hold every slice header field segbind reads.
_SLICE_HEADER_BYTES = 32
# How many bytes of an SEI NAL unit are examined for a recovery point message.
_SEI_SCAN_BYTES = 4096


def nal_type(header_byte: int) -> int:
    return header_byte & 0x1F


def is_vcl(kind: int) -> bool:
    """Slices of a coded picture (types 1-5), the units that carry video."""
    return 1 <= kind <= 5


def first_slice_of_picture(nal: Buffer) -> bool:
    """True for the first slice of a picture: first_mb_in_slice == 0.

    first_mb_in_slice is the slice header's first ue(v); it is 0 exactly when
    its first bit is 1. Only meaningful for VCL units.
    """
    return len(nal) > 1 and bool(nal[1] & 0x80)


class BitReader:
    """An Exp-Golomb bit reader over RBSP bytes; raises IndexError past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        if nxt:
            last = nxt


class Sps:
    """What segbind reads from a sequence parameter set."""

    def __init__(self, sps_id: int) -> None:
        self.sps_id = sps_id
        self.separate_colour_plane = False
        self.log2_max_frame_num = 4
        self.frame_mbs_only = True
        self.poc_type = 0
        self.log2_max_poc_lsb = 4
        self.high_profile = False
        self.chroma_format = 1  # and the bit depths below: what an avcC's high-profile fields say
        self.bit_depth_luma = 8
        self.bit_depth_chroma = 8
        self.width = 0   # the picture size, cropping applied (a container's sample entry)
        self.height = 0
        self.fps: Optional[float] = None  # from VUI timing_info, when present
        self.max_num_reorder: Optional[int] = None  # from VUI bitstream_restriction
        self.complete = False  # False when only the id could be read (VUI fields optional)


def parse_sps(nal: Buffer) -> Sps:
    """The id (always) and frame timing (when readable) of an escaped SPS NAL unit.

    Raises ValueError or IndexError when not even the id can be read.
    """
    bits = BitReader(unescape_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    info = Sps(bits.ue())
    if info.sps_id > 31:
        raise ValueError("seq_parameter_set_id out of range")
    try:
        chroma = 1
        if profile in _HIGH_PROFILES:
            info.high_profile = True
            chroma = info.chroma_format = bits.ue()
            if chroma == 3:
                info.separate_colour_plane = bool(bits.u(1))
            info.bit_depth_luma = bits.ue() + 8
            info.bit_depth_chroma = bits.ue() + 8
            bits.u(1)
            if bits.u(1):  # seq_scaling_matrix_present_flag
                for i in range(12 if chroma == 3 else 8):
                    if bits.u(1):
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        info.log2_max_frame_num = bits.ue() + 4
        poc_type = info.poc_type = bits.ue()
        if poc_type == 0:
            info.log2_max_poc_lsb = bits.ue() + 4
        elif poc_type == 1:
            bits.u(1)
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.u(1)
        width_mbs = bits.ue() + 1
        height_units = bits.ue() + 1
        info.frame_mbs_only = bool(bits.u(1))
        if not info.frame_mbs_only:
            bits.u(1)
        bits.u(1)
        fields = 1 if info.frame_mbs_only else 2
        info.width, info.height = width_mbs * 16, fields * height_units * 16
        if bits.u(1):  # frame_cropping_flag (7.4.2.1.1: crop units by chroma format)
            left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
            plain = chroma == 0 or info.separate_colour_plane
            info.width -= (1 if plain or chroma == 3 else 2) * (left + right)
            info.height -= fields * (1 if plain or chroma != 1 else 2) * (top + bottom)
        info.complete = True  # what cutting needs; the VUI below is optional
        if bits.u(1):  # vui_parameters_present_flag
            _read_vui(bits, info)
    except (ValueError, IndexError):
        pass
    return info


def skip_vui_head(bits: BitReader) -> None:
    """The start of vui_parameters() that H.264 (E.1.1) and H.265 (E.2.1) share: aspect ratio,
    overscan, video signal type and chroma location."""
    if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_info_present_flag, Extended_SAR
        bits.u(32)
    if bits.u(1):  # overscan_info_present_flag
        bits.u(1)
    if bits.u(1):  # video_signal_type_present_flag
        bits.u(4)
        if bits.u(1):  # colour_description_present_flag
            bits.u(24)
    if bits.u(1):  # chroma_loc_info_present_flag
        bits.ue()
        bits.ue()


def _read_vui(bits: BitReader, info: Sps) -> None:
    skip_vui_head(bits)
    if bits.u(1):  # timing_info_present_flag
        units = bits.u(32)
        scale = bits.u(32)
        if units and scale:
            fps = scale / (2.0 * units)
            if 0.5 <= fps <= 1000:
                info.fps = fps
        bits.u(1)
    hrd = False
    for _ in range(2):  # NAL then VCL hrd_parameters
        if bits.u(1):
            hrd = True
            count = bits.ue() + 1
            bits.u(8)  # bit_rate_scale, cpb_size_scale
            for _ in range(count):
                bits.ue()
                bits.ue()
                bits.u(1)
            bits.u(20)  # four delay/offset lengths
    if hrd:
        bits.u(1)  # low_delay_hrd_flag
    bits.u(1)  # pic_struct_present_flag
    if bits.u(1):  # bitstream_restriction_flag
        bits.u(1)
        for _ in range(4):
            bits.ue()
        info.max_num_reorder = bits.ue()


def parse_pps_ids(nal: Buffer) -> tuple[int, int]:
    """(pic_parameter_set_id, seq_parameter_set_id) of an escaped PPS NAL unit."""
    bits = BitReader(unescape_rbsp(nal[1:12]))
    pps_id = bits.ue()
    sps_id = bits.ue()
    if pps_id > 255 or sps_id > 31:
        raise ValueError("parameter set id out of range")
    return pps_id, sps_id


def _read_sps(unit: bytes) -> "tuple[int, Sps]":
    info = parse_sps(unit)
    return info.sps_id, info


def _read_pps(unit: bytes) -> "tuple[int, int]":
    return parse_pps_ids(unit)  # (pps id, the id of the SPS it refers to)


def parameter_set_key(nal: Buffer) -> tuple[int, int]:
    """(7, sps id) or (8, pps id) for an SPS or PPS unit; ValueError/IndexError if unreadable."""
    kind = nal[0] & 0x1F
    if kind == NAL_SPS:
        return (NAL_SPS, parse_sps(nal).sps_id)
    if kind == NAL_PPS:
        return (NAL_PPS, parse_pps_ids(nal)[0])
    raise ValueError("not a parameter set")


_READERS = ((NAL_SPS, _read_sps), (NAL_PPS, _read_pps))


class ParameterSets(ParameterSetTables):
    """The SPS and PPS in force in a stream, by id, as they were last seen.

    ``add`` takes any NAL unit (others are ignored) and returns True for a
    readable SPS or PPS. ``units()`` gives the NAL units in force, every SPS
    (by id) then every PPS (by id): what a segment needs at its start to
    decode on its own.
    """

    def __init__(self) -> None:
        super().__init__(_READERS)
        self.sps: dict[int, tuple[Sps, bytes]] = self.tables[NAL_SPS]  # id -> (Sps, NAL bytes)
        self.pps: dict[int, tuple[int, bytes]] = self.tables[NAL_PPS]  # id -> (sps id, NAL bytes)

    def add(self, nal: Buffer) -> bool:
        return self.add_kind(nal[0] & 0x1F, nal)

    def key(self, nal: Buffer) -> tuple[int, int]:
        """(7, sps id) or (8, pps id) of an SPS or PPS (read once); ValueError if unreadable."""
        return self.key_of(nal[0] & 0x1F, nal)

    def sps_of_pps(self, pps_id: int) -> Optional[Sps]:
        """The Sps a PPS refers to, or None when either is unknown."""
        pps = self.pps.get(pps_id)
        if pps is None:
            return None
        entry = self.sps.get(pps[0])
        return entry[0] if entry is not None else None


class SliceHeader:
    """The first fields of a slice header, as far as segbind reads them."""

    def __init__(self) -> None:
        self.slice_type = 0
        self.pps_id = 0
        self.sps: Optional[Sps] = None  # the SPS in force, when known
        self.frame_num = 0
        self.field_pic = False
        self.bottom_field = False
        self.idr_pic_id = 0
        self.poc_lsb: Optional[int] = None  # pic_order_cnt_lsb (POC type 0)


def parse_slice_header(nal: Buffer, params: ParameterSets) -> SliceHeader:
    """Slice header fields of an escaped slice NAL unit, read against ``params``.

    Fields after pic_parameter_set_id are read only when the SPS in force is
    known (``header.sps`` is then set). Raises ValueError or IndexError when
    not even the parameter set id can be read.
    """
    bits = BitReader(unescape_rbsp(nal[1:_SLICE_HEADER_BYTES]))
    bits.ue()  # first_mb_in_slice
    header = SliceHeader()
    header.slice_type = bits.ue()
    header.pps_id = bits.ue()
    sps = params.sps_of_pps(header.pps_id)
    if sps is None or not sps.complete:
        return header
    header.sps = sps
    if sps.separate_colour_plane:
        bits.u(2)
    header.frame_num = bits.u(sps.log2_max_frame_num)
    if not sps.frame_mbs_only:
        header.field_pic = bool(bits.u(1))
        if header.field_pic:
            header.bottom_field = bool(bits.u(1))
    if nal[0] & 0x1F == NAL_IDR:
        header.idr_pic_id = bits.ue()
    if sps.poc_type == 0:
        header.poc_lsb = bits.u(sps.log2_max_poc_lsb)
    return header


class PocCounter:
    """Picture order counts of a stream's pictures, in decoding order (H.264 8.2.1).

    ``poc(nal)`` takes the first slice of each picture; it returns None when
    the order cannot be read (unknown SPS, POC type 1), and callers then keep
    decoding order.
    """

    def __init__(self, params: ParameterSets) -> None:
        self.params = params
        self.sps: Optional[Sps] = None  # the SPS of the last picture read
        self._prev_msb = 0
        self._prev_lsb = 0
        self._prev_frame_num = 0
        self._frame_num_offset = 0

    def poc(self, nal: Buffer) -> Optional[int]:
        try:
            header = parse_slice_header(nal, self.params)
        except (ValueError, IndexError):
            return None
        sps = self.sps = header.sps
        if sps is None:
            return None
        idr = nal[0] & 0x1F == NAL_IDR
        ref_idc = nal[0] >> 5 & 3
        if sps.poc_type == 0 and header.poc_lsb is not None:
            lsb = header.poc_lsb
            top = 1 << sps.log2_max_poc_lsb
            if idr:
                self._prev_msb = self._prev_lsb = 0
            if lsb < self._prev_lsb and self._prev_lsb - lsb >= top // 2:
                msb = self._prev_msb + top
            elif lsb > self._prev_lsb and lsb - self._prev_lsb > top // 2:
                msb = self._prev_msb - top
            else:
                msb = self._prev_msb
            if ref_idc:
                self._prev_msb, self._prev_lsb = msb, lsb
            return msb + lsb
        if sps.poc_type == 2:
            frame_num = header.frame_num
            if idr:
                self._frame_num_offset = 0
            elif self._prev_frame_num > frame_num:
                self._frame_num_offset += 1 << sps.log2_max_frame_num
            self._prev_frame_num = frame_num
            return 2 * (self._frame_num_offset + frame_num) - (0 if ref_idc else 1)
        return None


class SeiError(ValueError):
    """An SEI NAL unit that cannot be parsed."""


def _read_ff(rbsp: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    while True:
        if pos >= end:
            raise SeiError("SEI message header runs past the end of the NAL unit")
        b = rbsp[pos]
        pos += 1
        value += b
        if b != 0xFF:
            return value, pos


def sei_messages(nal: Buffer, header_size: int = 1) -> list[tuple[int, bytes]]:
    """The (payloadType, payload) pairs of an escaped SEI NAL unit, strictly.

    Raises SeiError when a message runs past the unit or the unit does not end
    with rbsp_trailing_bits. ``header_size`` is the NAL header's length (1 in
    H.264; H.265 shares the SEI message syntax with a 2-byte header).
    """
    if len(nal) < header_size + 1 or (header_size == 1 and nal[0] & 0x1F != NAL_SEI):
        raise SeiError("not an SEI NAL unit")
    rbsp = unescape_rbsp(bytes(nal[header_size:]))
    if not rbsp or rbsp[-1] != 0x80:
        raise SeiError("SEI NAL unit does not end with rbsp_trailing_bits")
    end = len(rbsp) - 1
    messages = []
    pos = 0
    while pos < end:
        kind, pos = _read_ff(rbsp, pos, end)
        size, pos = _read_ff(rbsp, pos, end)
        if pos + size > end:
            raise SeiError("SEI payload runs past the end of the NAL unit")
        messages.append((kind, rbsp[pos:pos + size]))
        pos += size
    return messages


def sei_payload_types(nal: Buffer, header_size: int = 1, limit: int = _SEI_SCAN_BYTES) -> list[int]:
    """The payloadType of each SEI message in the first ``limit`` bytes, leniently.

    For cutting decisions (is there a recovery point?): a message cut off by
    the limit or malformed ends the walk instead of raising.
    """
    rbsp = unescape_rbsp(nal[header_size:header_size + limit])
    kinds = []
    pos = 0
    end = len(rbsp)
    while pos < end and not (pos == end - 1 and rbsp[pos] == 0x80):
        try:
            kind, pos = _read_ff(rbsp, pos, end)
            size, pos = _read_ff(rbsp, pos, end)
        except SeiError:
            break
        kinds.append(kind)
        pos += size
    return kinds


def has_recovery_point(nal: Buffer) -> bool:
    """True when an escaped SEI NAL unit holds a recovery point message (payloadType 6)."""
    return SEI_RECOVERY_POINT in sei_payload_types(nal)
