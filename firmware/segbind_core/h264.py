"""H.264 syntax: the one place segbind reads H.264 beyond NAL unit boundaries.

NAL header and unit types, an Exp-Golomb bit reader, sequence and picture
parameter sets, whole slice headers (7.3.3) and where each ends in its NAL unit
(the bytes a subsample encryption keeps in clear), picture order counts (8.2.1)
and output order, the SEI message walk and a tracker of the parameter sets in
force. Everything else (the segmenter, the verifier's readers, the HLS writer's
clock, the simulated encoder) calls here.

Pure code: bytes in, values out; the same file runs on CPython and MicroPython.
NAL units are passed as escaped bytes (emulation prevention kept), header byte
first, as they are in the bitstream.
"""

from .nal import ParameterSetTables, escaped_length, last_one_bit, unescape_rbsp

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Callable, Optional

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


def _leading_zeros_table() -> bytes:
    """For each byte value, how many of its bits are 0 before the first 1 (8 for 0)."""
    table = bytearray(256)
    table[0] = 8
    for value in range(1, 256):
        zeros = 0
        while not (value << zeros) & 0x80:
            zeros += 1
        table[value] = zeros
    return bytes(table)


_LEADING_ZEROS = _leading_zeros_table()


class BitReader:
    """An Exp-Golomb bit reader over RBSP bytes; raises IndexError past the end.

    Whole bytes at a time (a few operations per syntax element, none per bit): the camera
    reads a slice header for every slice it sends.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        """n bits, most significant first (0 bits read as 0)."""
        if n <= 0:
            return 0
        pos = self.pos
        end = pos + n
        data = self.data
        i = pos >> 3
        last = (end - 1) >> 3
        value = data[i]
        while i < last:
            i += 1
            value = (value << 8) | data[i]
        self.pos = end
        return (value >> ((-end) & 7)) & ((1 << n) - 1)

    def bit(self) -> int:
        """One bit, 0 or 1."""
        pos = self.pos
        byte = self.data[pos >> 3]
        self.pos = pos + 1
        return (byte >> (7 - (pos & 7))) & 1

    def ue(self) -> int:
        """ue(v): up to 31 leading zero bits, then as many bits of value (ValueError beyond)."""
        pos = self.pos
        data = self.data
        i = pos >> 3
        byte = data[i] & (0xFF >> (pos & 7))
        while not byte:
            i += 1
            if (i << 3) - pos > 32:
                raise ValueError("Exp-Golomb code too long")
            byte = data[i]
        zeros = (i << 3) + _LEADING_ZEROS[byte] - pos
        if not zeros:
            self.pos = pos + 1
            return 0
        if zeros > 31:
            raise ValueError("Exp-Golomb code too long")
        end = pos + 2 * zeros + 1  # the code: its zeros, a 1, as many bits again
        last = (end - 1) >> 3
        value = byte
        while i < last:
            i += 1
            value = (value << 8) | data[i]
        self.pos = end
        return ((value >> ((-end) & 7)) & ((2 << zeros) - 1)) - 1

    def se(self) -> int:
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        if nxt:
            last = nxt


class Sps:
    """What segbind reads from a sequence parameter set (7.3.2.1.1)."""

    def __init__(self, sps_id: int) -> None:
        self.sps_id = sps_id
        self.profile_idc = 0
        self.separate_colour_plane = False
        self.chroma_array_type = 1  # ChromaArrayType: chroma_format_idc, 0 with separate colour planes
        self.log2_max_frame_num = 4
        self.frame_mbs_only = True
        self.mb_adaptive_frame_field = False
        self.poc_type = 0
        self.log2_max_poc_lsb = 4
        # POC type 1 (8.2.1.2)
        self.delta_pic_order_always_zero = False
        self.offset_for_non_ref_pic = 0
        self.offset_for_top_to_bottom_field = 0
        self.offsets_for_ref_frame: list[int] = []
        self.max_num_ref_frames = 0
        self.pic_width_in_mbs = 0
        self.pic_height_in_map_units = 0  # map units: macroblock pairs when frame_mbs_only is 0
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
    """The id (always), what slice headers need and frame timing (when readable) of an escaped
    SPS NAL unit.

    Raises ValueError or IndexError when not even the id can be read. A value out of its
    range before the VUI leaves ``complete`` False: slice headers under it are refused.
    """
    bits = BitReader(unescape_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    info = Sps(bits.ue())
    info.profile_idc = profile
    if info.sps_id > 31:
        raise ValueError("seq_parameter_set_id out of range")
    try:
        chroma = 1
        if profile in _HIGH_PROFILES:
            info.high_profile = True
            chroma = info.chroma_format = bits.ue()
            if chroma > 3:
                raise ValueError("chroma_format_idc out of range")
            if chroma == 3:
                info.separate_colour_plane = bool(bits.bit())
            info.bit_depth_luma = bits.ue() + 8
            info.bit_depth_chroma = bits.ue() + 8
            if info.bit_depth_luma > 14 or info.bit_depth_chroma > 14:
                raise ValueError("bit depth out of range")
            bits.bit()  # qpprime_y_zero_transform_bypass_flag
            if bits.bit():  # seq_scaling_matrix_present_flag
                for i in range(12 if chroma == 3 else 8):
                    if bits.bit():
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        info.chroma_array_type = 0 if info.separate_colour_plane else chroma
        info.log2_max_frame_num = bits.ue() + 4
        poc_type = info.poc_type = bits.ue()
        if info.log2_max_frame_num > 16 or poc_type > 2:
            raise ValueError("log2_max_frame_num_minus4 or pic_order_cnt_type out of range")
        if poc_type == 0:
            info.log2_max_poc_lsb = bits.ue() + 4
            if info.log2_max_poc_lsb > 16:
                raise ValueError("log2_max_pic_order_cnt_lsb_minus4 out of range")
        elif poc_type == 1:
            info.delta_pic_order_always_zero = bool(bits.bit())
            info.offset_for_non_ref_pic = bits.se()
            info.offset_for_top_to_bottom_field = bits.se()
            cycle = bits.ue()
            if cycle > 255:
                raise ValueError("num_ref_frames_in_pic_order_cnt_cycle out of range")
            info.offsets_for_ref_frame = [bits.se() for _ in range(cycle)]
        info.max_num_ref_frames = bits.ue()
        bits.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = info.pic_width_in_mbs = bits.ue() + 1
        height_units = info.pic_height_in_map_units = bits.ue() + 1
        info.frame_mbs_only = bool(bits.bit())
        if not info.frame_mbs_only:
            info.mb_adaptive_frame_field = bool(bits.bit())
        bits.bit()  # direct_8x8_inference_flag
        fields = 1 if info.frame_mbs_only else 2
        info.width, info.height = width_mbs * 16, fields * height_units * 16
        if bits.bit():  # frame_cropping_flag (7.4.2.1.1: crop units by chroma format)
            left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
            plain = chroma == 0 or info.separate_colour_plane
            info.width -= (1 if plain or chroma == 3 else 2) * (left + right)
            info.height -= fields * (1 if plain or chroma != 1 else 2) * (top + bottom)
        info.complete = True  # what cutting and slice headers need; the VUI below is optional
        if bits.bit():  # vui_parameters_present_flag
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


class Pps:
    """What segbind reads from a picture parameter set (7.3.2.2): what slice headers need."""

    def __init__(self, pps_id: int, sps_id: int) -> None:
        self.pps_id = pps_id
        self.sps_id = sps_id
        self.entropy_coding_mode = False  # CABAC: the slice header ends at a byte boundary
        self.bottom_field_pic_order_in_frame_present = False
        self.num_slice_groups = 1
        self.slice_group_map_type = 0
        self.slice_group_change_rate = 1
        self.num_ref_idx_l0_default_active = 1
        self.num_ref_idx_l1_default_active = 1
        self.weighted_pred = False
        self.weighted_bipred_idc = 0
        self.pic_init_qp = 26
        self.pic_init_qs = 26
        self.deblocking_filter_control_present = False
        self.redundant_pic_cnt_present = False
        self.complete = False  # False when only the ids could be read


def parse_pps_ids(nal: Buffer) -> tuple[int, int]:
    """(pic_parameter_set_id, seq_parameter_set_id) of an escaped PPS NAL unit."""
    bits = BitReader(unescape_rbsp(nal[1:12]))
    pps_id = bits.ue()
    sps_id = bits.ue()
    if pps_id > 255 or sps_id > 31:
        raise ValueError("parameter set id out of range")
    return pps_id, sps_id


def parse_pps(nal: Buffer) -> Pps:
    """The ids (always) and the fields slice headers depend on (when readable) of an escaped
    PPS NAL unit.

    Raises ValueError or IndexError when not even the ids can be read; a value out of range
    after them leaves ``complete`` False. Nothing read here depends on the SPS.
    """
    bits = BitReader(unescape_rbsp(nal[1:]))
    info = Pps(bits.ue(), bits.ue())
    if info.pps_id > 255 or info.sps_id > 31:
        raise ValueError("parameter set id out of range")
    try:
        info.entropy_coding_mode = bool(bits.bit())
        info.bottom_field_pic_order_in_frame_present = bool(bits.bit())
        groups = info.num_slice_groups = bits.ue() + 1
        if groups > 8:
            raise ValueError("num_slice_groups_minus1 out of range")
        if groups > 1:
            map_type = info.slice_group_map_type = bits.ue()
            if map_type == 0:
                for _ in range(groups):
                    bits.ue()  # run_length_minus1
            elif map_type == 2:
                for _ in range(2 * (groups - 1)):
                    bits.ue()  # top_left, bottom_right
            elif 3 <= map_type <= 5:
                bits.bit()  # slice_group_change_direction_flag
                info.slice_group_change_rate = bits.ue() + 1
            elif map_type == 6:
                id_bits = 1 if groups <= 2 else 2 if groups <= 4 else 3  # Ceil(Log2(groups))
                bits.pos += id_bits * (bits.ue() + 1)  # slice_group_id[] of every map unit
            elif map_type != 1:
                raise ValueError("slice_group_map_type out of range")
        info.num_ref_idx_l0_default_active = bits.ue() + 1
        info.num_ref_idx_l1_default_active = bits.ue() + 1
        if info.num_ref_idx_l0_default_active > 32 or info.num_ref_idx_l1_default_active > 32:
            raise ValueError("num_ref_idx_default_active_minus1 out of range")
        info.weighted_pred = bool(bits.bit())
        info.weighted_bipred_idc = bits.u(2)
        info.pic_init_qp = 26 + bits.se()
        info.pic_init_qs = 26 + bits.se()
        if info.weighted_bipred_idc > 2 or not 0 <= info.pic_init_qs <= 51 or info.pic_init_qp > 51:
            raise ValueError("weighted_bipred_idc or an initial QP out of range")
        if not -12 <= bits.se() <= 12:
            raise ValueError("chroma_qp_index_offset out of range")
        info.deblocking_filter_control_present = bool(bits.bit())
        bits.bit()  # constrained_intra_pred_flag
        info.redundant_pic_cnt_present = bool(bits.bit())
        info.complete = True  # the rest (8x8 transform, scaling matrices) is the slice data's
    except (ValueError, IndexError):
        pass
    return info


def _read_sps(unit: bytes) -> "tuple[int, Sps]":
    info = parse_sps(unit)
    return info.sps_id, info


def _read_pps(unit: bytes) -> "tuple[int, Pps]":
    info = parse_pps(unit)
    return info.pps_id, info


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
        self.pps: dict[int, tuple[Pps, bytes]] = self.tables[NAL_PPS]  # id -> (Pps, NAL bytes)

    def add(self, nal: Buffer) -> bool:
        """Keep a parameter set; False for anything else, an empty unit included."""
        return bool(nal) and self.add_kind(nal[0] & 0x1F, nal)

    def key(self, nal: Buffer) -> tuple[int, int]:
        """(7, sps id) or (8, pps id) of an SPS or PPS (read once); ValueError if unreadable."""
        return self.key_of(nal[0] & 0x1F, nal)

    def sps_of_pps(self, pps_id: int) -> Optional[Sps]:
        """The Sps a PPS refers to, or None when either is unknown."""
        pps = self.pps.get(pps_id)
        if pps is None:
            return None
        entry = self.sps.get(pps[0].sps_id)
        return entry[0] if entry is not None else None


# slice_type % 5 (table 7-6)
SLICE_P = 0
SLICE_B = 1
SLICE_I = 2
SLICE_SP = 3
SLICE_SI = 4

# How many escaped bytes after the NAL header a slice header parse reads first; a header
# that runs past them is read again from four times as many (rare: long weight tables).
_SLICE_WINDOW = 48
# At most this many memory management control operations before the ending 0 (as FFmpeg).
_MAX_MMCO = 66
# Slices of kinds segbind refuses to read, and why.
_REFUSED_SLICES = {
    2: "slice data partition A (Extended profile) is not read",
    3: "slice data partition B has no slice header",
    4: "slice data partition C has no slice header",
    19: "auxiliary coded pictures are not read",
    20: "SVC and MVC slice extensions (NAL unit type 20) are not read",
    21: "3D-AVC slice extensions (NAL unit type 21) are not read",
}


class SliceHeaderError(ValueError):
    """A slice header that cannot be read: unknown or unusable parameter sets, a value out of
    range, a header that runs past its NAL unit, a kind of slice segbind does not read."""


class SliceHeader:
    """A whole slice header (H.264 7.3.3) and where it ends in its NAL unit.

    Fields a slice does not carry keep the values H.264 infers (class defaults).
    ``first_in_picture`` is first_mb_in_slice == 0 (with arbitrary slice order, baseline
    profile's, a picture's first slice in decoding order may start elsewhere).
    ``header_bits``: the NAL header and slice header in RBSP bits, that is where
    slice_data() begins; ``header_bytes``: how many bytes of the NAL unit as stored
    (emulation prevention included) hold them: with CABAC a byte boundary, with CAVLC
    the byte holding the first bit of slice_data() too. Everything after is slice data.
    """

    nal_unit_type = NAL_SLICE
    nal_ref_idc = 0
    idr = False
    first_mb_in_slice = 0
    first_in_picture = True  # first_mb_in_slice == 0
    slice_type = 0  # as coded, 0-9; slice_kind is slice_type % 5 (SLICE_P ... SLICE_SI)
    slice_kind = 0
    pps_id = 0
    sps: Optional[Sps] = None  # the parameter sets in force
    pps: Optional[Pps] = None
    colour_plane_id = 0
    frame_num = 0
    field_pic = False
    bottom_field = False
    idr_pic_id = 0
    poc_lsb: Optional[int] = None  # pic_order_cnt_lsb (POC type 0)
    delta_poc_bottom = 0  # delta_pic_order_cnt_bottom (type 0)
    delta_poc_0 = 0  # delta_pic_order_cnt[0] and [1] (type 1)
    delta_poc_1 = 0
    redundant_pic_cnt = 0
    direct_spatial_mv_pred = False
    num_ref_idx_l0_active = 0  # reference indexes in use (0 for I and SI slices)
    num_ref_idx_l1_active = 0
    no_output_of_prior_pics = False  # IDR pictures
    long_term_reference = False  # IDR pictures
    adaptive_ref_pic_marking = False
    mmco5 = False  # a memory_management_control_operation 5: the picture order restarts
    cabac_init_idc = 0
    slice_qp_delta = 0
    sp_for_switch = False
    slice_qs_delta = 0
    disable_deblocking_filter_idc = 0
    slice_alpha_c0_offset_div2 = 0
    slice_beta_offset_div2 = 0
    slice_group_change_cycle = 0
    header_bits = 0
    header_bytes = 0


def read_slice_header_span(nal: Buffer, header_size: int, read: "Callable[[BitReader], None]",
                           window: int) -> "tuple[int, int]":
    """Run ``read`` (it reads a slice header's fields, raising SliceHeaderError when it must)
    over the RBSP after a NAL unit's header; returns (header_bits, header_bytes) as in
    ``SliceHeader``, the NAL header included.

    The RBSP is made from the first ``window`` escaped bytes, and again from four times as
    many each time the header runs past them, up to the whole unit: the bytes of a long
    slice are never all copied. The header must leave at least one bit of slice data before
    the RBSP's stop bit. Shared with ``h265``.
    """
    size = len(nal)
    while True:
        end = min(size, header_size + window)
        ebsp = bytes(nal[header_size:end])
        rbsp = ebsp.replace(b"\x00\x00\x03", b"\x00\x00")  # unescape_rbsp, without a copy
        bits = BitReader(rbsp)
        try:
            read(bits)
        except IndexError:
            if end < size:
                window *= 4
                continue
            raise SliceHeaderError("slice header runs past the end of the NAL unit") from None
        except SliceHeaderError:
            raise
        except ValueError as e:  # an Exp-Golomb code too long
            raise SliceHeaderError(str(e)) from None
        break
    used = bits.pos
    header_bytes = header_size + escaped_length(ebsp, (used + 7) >> 3)
    # The stop bit is in the last byte that is neither 0 nor an emulation prevention 03 (as
    # in trailing cabac_zero_words). Four bytes or more after the header's hold at least two
    # of slice data; nearer, the bits are counted.
    last = size - 1
    while last >= header_size and (not nal[last] or (nal[last] == 3 and last - 2 >= header_size
                                                     and not nal[last - 1] and not nal[last - 2])):
        last -= 1
    if last < header_bytes + 4 and last_one_bit(unescape_rbsp(nal[header_size:last + 1])) <= used:
        raise SliceHeaderError("no slice data after the slice header")
    return 8 * header_size + used, header_bytes


def parse_slice_header(nal: Buffer, params: ParameterSets) -> SliceHeader:
    """The whole slice header of an escaped slice NAL unit (types 1 and 5), read against the
    parameter sets in force in ``params``.

    Raises SliceHeaderError (a ValueError) when it cannot be read: unknown PPS or SPS (or
    one whose fields could not be read), a value out of range, a header that runs past the
    unit or leaves no slice data, or a unit of another kind (data partitions, MVC, SVC and
    3D-AVC slice extensions, auxiliary pictures are refused).
    """
    if len(nal) < 2:
        raise SliceHeaderError("no slice header")
    kind = nal[0] & 0x1F
    if kind != NAL_SLICE and kind != NAL_IDR:
        raise SliceHeaderError(_REFUSED_SLICES.get(kind, "NAL unit type %d is no slice" % kind))
    header = SliceHeader()
    header.nal_unit_type = kind
    header.nal_ref_idc = nal[0] >> 5 & 3
    header.idr = kind == NAL_IDR

    def read(bits: BitReader) -> None:
        _read_slice_header(bits, header, params)

    header.header_bits, header.header_bytes = read_slice_header_span(nal, 1, read, _SLICE_WINDOW)
    return header


def _read_slice_header(bits: BitReader, header: SliceHeader, params: ParameterSets) -> None:
    """slice_header() (7.3.3) into ``header``, up to the first bit of slice_data()."""
    idr = header.idr
    ref_idc = header.nal_ref_idc
    if idr and not ref_idc:
        raise SliceHeaderError("an IDR picture with nal_ref_idc 0")
    first_mb = header.first_mb_in_slice = bits.ue()
    header.first_in_picture = first_mb == 0
    slice_type = header.slice_type = bits.ue()
    if slice_type > 9:
        raise SliceHeaderError("slice_type out of range")
    kind = header.slice_kind = slice_type % 5
    if idr and kind != SLICE_I and kind != SLICE_SI:
        raise SliceHeaderError("an IDR picture with P or B slices")
    pps_id = header.pps_id = bits.ue()
    pps, sps = params.picture_sets(NAL_PPS, NAL_SPS, pps_id)
    header.pps = pps
    header.sps = sps
    if not pps.complete or not sps.complete:
        raise SliceHeaderError("PPS %d or its SPS could not be read" % pps_id)
    if sps.separate_colour_plane:
        header.colour_plane_id = bits.u(2)
        if header.colour_plane_id > 2:
            raise SliceHeaderError("colour_plane_id out of range")
    frame_num = header.frame_num = bits.u(sps.log2_max_frame_num)
    if idr and frame_num:
        raise SliceHeaderError("an IDR picture with frame_num other than 0")
    field_pic = False
    mbaff = 0
    if not sps.frame_mbs_only:
        field_pic = header.field_pic = bool(bits.bit())
        if field_pic:
            header.bottom_field = bool(bits.bit())
        else:
            mbaff = int(sps.mb_adaptive_frame_field)
    map_units = sps.pic_width_in_mbs * sps.pic_height_in_map_units
    pic_size_in_mbs = map_units if field_pic or sps.frame_mbs_only else 2 * map_units
    if first_mb * (1 + mbaff) >= pic_size_in_mbs:
        raise SliceHeaderError("first_mb_in_slice out of range")
    if idr:
        header.idr_pic_id = bits.ue()
        if header.idr_pic_id > 65535:
            raise SliceHeaderError("idr_pic_id out of range")
    both_fields = pps.bottom_field_pic_order_in_frame_present and not field_pic
    if sps.poc_type == 0:
        header.poc_lsb = bits.u(sps.log2_max_poc_lsb)
        if both_fields:
            header.delta_poc_bottom = bits.se()
    elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
        header.delta_poc_0 = bits.se()
        if both_fields:
            header.delta_poc_1 = bits.se()
    if pps.redundant_pic_cnt_present:
        header.redundant_pic_cnt = bits.ue()
        if header.redundant_pic_cnt > 127:
            raise SliceHeaderError("redundant_pic_cnt out of range")
    b_slice = kind == SLICE_B
    if b_slice:
        header.direct_spatial_mv_pred = bool(bits.bit())
    l0 = l1 = 0
    if kind == SLICE_P or kind == SLICE_SP or b_slice:
        l0 = pps.num_ref_idx_l0_default_active
        if b_slice:
            l1 = pps.num_ref_idx_l1_default_active
        if bits.bit():  # num_ref_idx_active_override_flag
            l0 = bits.ue() + 1
            if b_slice:
                l1 = bits.ue() + 1
        most = 32 if field_pic else 16
        if l0 > most or l1 > most:
            raise SliceHeaderError("num_ref_idx_active_minus1 out of range")
        header.num_ref_idx_l0_active = l0
        header.num_ref_idx_l1_active = l1
        max_pic_num = (2 if field_pic else 1) << sps.log2_max_frame_num
        _skip_ref_pic_list_modification(bits, l0, max_pic_num)
        if b_slice:
            _skip_ref_pic_list_modification(bits, l1, max_pic_num)
        if (pps.weighted_bipred_idc == 1) if b_slice else pps.weighted_pred:  # explicit weights
            _skip_pred_weight_table(bits, sps.chroma_array_type != 0, l0, l1)
    if ref_idc:
        if idr:
            header.no_output_of_prior_pics = bool(bits.bit())
            header.long_term_reference = bool(bits.bit())
        elif bits.bit():  # adaptive_ref_pic_marking_mode_flag
            header.adaptive_ref_pic_marking = True
            header.mmco5 = _read_mmcos(bits)
    if pps.entropy_coding_mode and kind != SLICE_I and kind != SLICE_SI:
        header.cabac_init_idc = bits.ue()
        if header.cabac_init_idc > 2:
            raise SliceHeaderError("cabac_init_idc out of range")
    qp_delta = header.slice_qp_delta = bits.se()
    if not -6 * (sps.bit_depth_luma - 8) <= pps.pic_init_qp + qp_delta <= 51:
        raise SliceHeaderError("slice QP out of range")
    if kind == SLICE_SP or kind == SLICE_SI:
        if kind == SLICE_SP:
            header.sp_for_switch = bool(bits.bit())
        header.slice_qs_delta = bits.se()
        if not 0 <= pps.pic_init_qs + header.slice_qs_delta <= 51:
            raise SliceHeaderError("slice QS out of range")
    if pps.deblocking_filter_control_present:
        idc = header.disable_deblocking_filter_idc = bits.ue()
        if idc > 2:
            raise SliceHeaderError("disable_deblocking_filter_idc out of range")
        if idc != 1:
            alpha = header.slice_alpha_c0_offset_div2 = bits.se()
            beta = header.slice_beta_offset_div2 = bits.se()
            if not (-6 <= alpha <= 6 and -6 <= beta <= 6):
                raise SliceHeaderError("deblocking filter offset out of range")
    if pps.num_slice_groups > 1 and 3 <= pps.slice_group_map_type <= 5:
        rate = pps.slice_group_change_rate
        cycles = (map_units + rate - 1) // rate  # Ceil(PicSizeInMapUnits / SliceGroupChangeRate)
        size = 0
        while (1 << size) <= cycles:  # Ceil(Log2(PicSizeInMapUnits / SliceGroupChangeRate + 1))
            size += 1
        header.slice_group_change_cycle = bits.u(size)
        if header.slice_group_change_cycle > cycles:
            raise SliceHeaderError("slice_group_change_cycle out of range")
    if pps.entropy_coding_mode:
        while bits.pos & 7:
            if not bits.bit():
                raise SliceHeaderError("cabac_alignment_one_bit is 0")


def _skip_ref_pic_list_modification(bits: BitReader, active: int, max_pic_num: int) -> None:
    """One list's part of ref_pic_list_modification() (7.3.3.1)."""
    if not bits.bit():  # ref_pic_list_modification_flag_lX
        return
    for _ in range(active + 1):  # at most one operation per index in use, then the end
        idc = bits.ue()
        if idc == 3:
            return
        if idc > 3:
            raise SliceHeaderError("modification_of_pic_nums_idc out of range")
        value = bits.ue()  # abs_diff_pic_num_minus1 or long_term_pic_num
        if idc < 2 and value >= max_pic_num:
            raise SliceHeaderError("abs_diff_pic_num_minus1 out of range")
    raise SliceHeaderError("more reference list modifications than references")


def _skip_pred_weight_table(bits: BitReader, chroma: bool, l0: int, l1: int) -> None:
    """pred_weight_table() (7.3.3.2) for l0 + l1 references; ``chroma``: ChromaArrayType != 0."""
    if bits.ue() > 7 or (chroma and bits.ue() > 7):
        raise SliceHeaderError("log2 weight denominator out of range")
    for _ in range(l0 + l1):
        if bits.bit():  # luma_weight_lX_flag: weight, offset
            _skip_weights(bits, 2)
        if chroma and bits.bit():  # chroma_weight_lX_flag: Cb and Cr weight, offset
            _skip_weights(bits, 4)


def _skip_weights(bits: BitReader, count: int) -> None:
    for _ in range(count):
        if not -128 <= bits.se() <= 127:
            raise SliceHeaderError("prediction weight or offset out of range")


def _read_mmcos(bits: BitReader) -> bool:
    """The memory management control operations of dec_ref_pic_marking() (7.3.3.3); True when
    one is 5 (every reference picture dropped, the picture order restarts)."""
    mmco5 = False
    for _ in range(_MAX_MMCO):
        op = bits.ue()
        if op == 0:
            return mmco5
        if op > 6:
            raise SliceHeaderError("memory_management_control_operation out of range")
        if op == 5:
            mmco5 = True
        if op == 1 or op == 3 or op == 2 or op == 4:
            bits.ue()  # difference_of_pic_nums_minus1, long_term_pic_num, max_long_term_frame_idx_plus1
        if op == 3 or op == 6:
            bits.ue()  # long_term_frame_idx
    raise SliceHeaderError("too many memory management control operations")


class PocCounter:
    """Picture order counts of a stream's pictures, in decoding order (H.264 8.2.1).

    ``count(header)`` takes the first slice header of each picture (a frame or a field), in
    decoding order, and gives its PicOrderCnt as the decoder derives it while decoding it
    (types 0, 1 and 2; IDR pictures and memory_management_control_operation 5 restart the
    count). It also sets ``top`` and ``bottom`` (the field order counts the picture has,
    None for a field it has not) and ``order_key``: (run, count) where a run begins at each
    IDR picture or MMCO 5 (every picture before it is output first) and count is the one
    the picture is output with (0 for a picture with MMCO 5: H.264 resets it after
    decoding). ``output_ranks`` orders pictures by these keys. The stream is assumed to
    begin at an IDR picture. ``poc(nal)`` reads the slice header itself and returns None
    when it cannot (callers then keep decoding order).
    """

    def __init__(self, params: ParameterSets) -> None:
        self.params = params
        self.sps: Optional[Sps] = None  # the SPS of the last picture read
        self.top: Optional[int] = None
        self.bottom: Optional[int] = None
        self.order_key: "Optional[tuple[int, int]]" = None
        self._run = -1
        self._prev_msb = 0  # type 0: of the previous reference picture
        self._prev_lsb = 0
        self._prev_frame_num = 0  # types 1 and 2: of the previous picture
        self._prev_frame_num_offset = 0

    def poc(self, nal: Buffer) -> Optional[int]:
        """The PicOrderCnt of the picture whose first slice is ``nal``; None when unreadable."""
        try:
            header = parse_slice_header(nal, self.params)
        except ValueError:
            self.sps = None
            return None
        return self.count(header)

    def count(self, header: SliceHeader) -> int:
        sps = header.sps
        if sps is None:
            raise SliceHeaderError("a slice header without its SPS")
        self.sps = sps
        idr = header.idr
        ref = header.nal_ref_idc != 0
        field = header.field_pic
        bottom_field = header.bottom_field
        frame_num = header.frame_num
        top: Optional[int] = None
        bottom: Optional[int] = None
        if sps.poc_type == 0:  # 8.2.1.1
            prev_msb, prev_lsb = (0, 0) if idr else (self._prev_msb, self._prev_lsb)
            lsb = header.poc_lsb or 0
            half = 1 << (sps.log2_max_poc_lsb - 1)
            if lsb < prev_lsb and prev_lsb - lsb >= half:
                msb = prev_msb + 2 * half
            elif lsb > prev_lsb and lsb - prev_lsb > half:
                msb = prev_msb - 2 * half
            else:
                msb = prev_msb
            if not bottom_field:
                top = msb + lsb
                if not field:
                    bottom = top + header.delta_poc_bottom
            else:
                bottom = msb + lsb
        else:
            if idr:
                offset = 0
            elif self._prev_frame_num > frame_num:
                offset = self._prev_frame_num_offset + (1 << sps.log2_max_frame_num)
            else:
                offset = self._prev_frame_num_offset
            if sps.poc_type == 1:  # 8.2.1.2
                cycle = sps.offsets_for_ref_frame
                absolute = offset + frame_num if cycle else 0
                if not ref and absolute > 0:
                    absolute -= 1
                expected = 0
                if absolute > 0:
                    rounds, within = divmod(absolute - 1, len(cycle))
                    expected = rounds * sum(cycle) + sum(cycle[:within + 1])
                if not ref:
                    expected += sps.offset_for_non_ref_pic
                if not field:
                    top = expected + header.delta_poc_0
                    bottom = top + sps.offset_for_top_to_bottom_field + header.delta_poc_1
                elif not bottom_field:
                    top = expected + header.delta_poc_0
                else:
                    bottom = expected + sps.offset_for_top_to_bottom_field + header.delta_poc_0
            else:  # 8.2.1.3
                value = 0 if idr else 2 * (offset + frame_num) - (0 if ref else 1)
                if not bottom_field:
                    top = value
                if not field or bottom_field:
                    bottom = value
        if top is None:
            poc = bottom
        elif bottom is None:
            poc = top
        else:
            poc = min(top, bottom)
        assert poc is not None
        mmco5 = header.mmco5
        if mmco5:  # after decoding, the picture's counts are relative to its own
            top = None if top is None else top - poc
            bottom = None if bottom is None else bottom - poc
        if sps.poc_type == 0:
            if ref:
                if mmco5:
                    self._prev_msb, self._prev_lsb = 0, (0 if bottom_field else top or 0)
                else:
                    self._prev_msb, self._prev_lsb = msb, lsb
        else:
            self._prev_frame_num_offset = 0 if mmco5 else offset
        self._prev_frame_num = 0 if mmco5 else frame_num
        self.top, self.bottom = top, bottom
        if idr or mmco5 or self._run < 0:
            self._run += 1
        self.order_key = (self._run, 0 if mmco5 else poc)
        return poc


def output_ranks(keys: "list[Optional[tuple[int, int]]]") -> "list[Optional[int]]":
    """Each picture's rank in output order, from the ``order_key`` of each picture of a run of
    pictures given in decoding order; None for a picture that is not output (a key of None).

    Ties (the two fields of a frame with one count) keep decoding order.
    """
    order = sorted((key[0], key[1], index) for index, key in enumerate(keys) if key is not None)
    ranks: "list[Optional[int]]" = [None] * len(keys)
    for rank, entry in enumerate(order):
        ranks[entry[2]] = rank
    return ranks


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
