"""H.265/HEVC syntax: the one place segbind reads H.265 beyond NAL unit boundaries.

The two-byte NAL header and unit types, video/sequence/picture parameter sets
(their ids, and what segmenting and slice headers read: frame rate and field
coding from the VUI, picture order count sizes, reference picture sets, tools
that add slice header fields), whole slice segment headers (7.3.6.1) and where
each ends in its NAL unit, IRAP pictures, the SEI message walk, the non-VCL
units that open an access unit, a tracker of the parameter sets in force and
picture order counts (8.3.1) and output order. Shaped like ``segbind_core.h264``
(same names where the idea is the same), so a caller can hold either module and
ask the same questions.

Pure code: bytes in, values out; the same file runs on CPython and MicroPython.
NAL units are passed as escaped bytes (emulation prevention kept), header
first, as they are in the bitstream. Section numbers are ITU-T H.265's.
"""

from .h264 import SEI_RECOVERY_POINT, BitReader, SeiError, SliceHeaderError, read_slice_header_span, skip_vui_head
from .h264 import output_ranks as output_ranks  # one ordering for both codecs: h265.output_ranks
from .h264 import sei_messages as _sei_messages
from .h264 import sei_payload_types as _sei_payload_types
from .nal import ParameterSetTables, unescape_rbsp

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional

    from .nal import Buffer
except ImportError:
    pass

HEADER_SIZE = 2  # forbidden_zero_bit, nal_unit_type(6), nuh_layer_id(6), nuh_temporal_id_plus1(3)

# nal_unit_type values (table 7-1) that segbind needs by name.
NAL_TRAIL_N = 0
NAL_TRAIL_R = 1
NAL_RADL_N = 6
NAL_RADL_R = 7
NAL_RASL_N = 8
NAL_RASL_R = 9
NAL_BLA_W_LP = 16
NAL_BLA_W_RADL = 17
NAL_BLA_N_LP = 18
NAL_IDR_W_RADL = 19
NAL_IDR_N_LP = 20
NAL_CRA = 21
NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34
NAL_AUD = 35
NAL_END_OF_SEQUENCE = 36
NAL_END_OF_BITSTREAM = 37
NAL_FILLER = 38
NAL_PREFIX_SEI = 39
NAL_SUFFIX_SEI = 40

# Non-VCL NAL unit types that begin a new access unit when they follow a picture's
# slices (7.4.2.4.4): AUD, VPS, SPS, PPS, prefix SEI, types 41-44 and 48-55.
# End of sequence/bitstream, filler, suffix SEI and types 45-47, 56-63 end the current one.
AU_OPENERS = (32, 33, 34, 35, 39, 41, 42, 43, 44, 48, 49, 50, 51, 52, 53, 54, 55)

# The access unit delimiter the camera inserts where the encoder wrote none: type 35,
# layer 0, pic_type 2 (I, P and B slices may follow), temporal id plus 1 = 1 (an AUD has
# its access unit's temporal id: 46 0t 50 before pictures of temporal id t - 1).
DELIMITER = b"\x46\x01\x50"

# How many bytes of an SEI NAL unit are examined for a recovery point message.
_SEI_SCAN_BYTES = 4096


def nal_type(header_byte: int) -> int:
    """nal_unit_type, from the first byte of the NAL header."""
    return (header_byte >> 1) & 0x3F


def layer_id(nal: Buffer) -> int:
    """nuh_layer_id (0 for the base layer, the only one segbind's cameras send)."""
    return ((nal[0] & 1) << 5) | (nal[1] >> 3)


def temporal_id(nal: Buffer) -> int:
    """TemporalId: nuh_temporal_id_plus1 - 1 (-1 for a malformed header)."""
    return (nal[1] & 7) - 1


def is_vcl(kind: int) -> bool:
    """Slice segments of a coded picture (types 0-31), the units that carry video."""
    return kind < 32


def is_irap(kind: int) -> bool:
    """An intra random access point picture: BLA, IDR, CRA (and the reserved 22, 23)."""
    return 16 <= kind <= 23


def is_idr(kind: int) -> bool:
    return kind == NAL_IDR_W_RADL or kind == NAL_IDR_N_LP


def is_bla(kind: int) -> bool:
    return NAL_BLA_W_LP <= kind <= NAL_BLA_N_LP


def is_rasl(kind: int) -> bool:
    """A random access skipped leading picture: not decodable when its CRA starts decoding."""
    return kind == NAL_RASL_N or kind == NAL_RASL_R


def is_sub_layer_non_reference(kind: int) -> bool:
    """TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N and the reserved _N types (even types below 15)."""
    return kind <= 14 and not kind & 1


def first_slice_of_picture(nal: Buffer) -> bool:
    """True for the first slice segment of a picture: first_slice_segment_in_pic_flag.

    It is the first bit after the two-byte header. Only meaningful for VCL units.
    """
    return len(nal) > 2 and bool(nal[2] & 0x80)


def _rbsp(nal: Buffer, limit: int = 0) -> bytes:
    """The RBSP after the two-byte header (at most ``limit`` escaped bytes of it, when given)."""
    return unescape_rbsp(nal[HEADER_SIZE:HEADER_SIZE + limit] if limit else nal[HEADER_SIZE:])


def _skip_profile_tier_level(bits: BitReader, max_sub_layers_minus1: int) -> None:
    """profile_tier_level(1, max_sub_layers_minus1) (7.3.3)."""
    bits.u(32)
    bits.u(32)
    bits.u(32)  # general profile (space, tier, idc, compatibility, constraint flags) and level
    present = []
    for _ in range(max_sub_layers_minus1):
        present.append((bits.u(1), bits.u(1)))  # sub_layer profile, level present
    if max_sub_layers_minus1 > 0:
        bits.u(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile, level in present:
        if profile:
            bits.u(32)
            bits.u(32)
            bits.u(24)
        if level:
            bits.u(8)


def _skip_scaling_list_data(bits: BitReader) -> None:
    """scaling_list_data() (7.3.4)."""
    for size_id in range(4):
        for _matrix in range(0, 6, 3 if size_id == 3 else 1):
            if not bits.u(1):  # scaling_list_pred_mode_flag
                bits.ue()  # scaling_list_pred_matrix_id_delta
                continue
            if size_id > 1:
                bits.se()  # scaling_list_dc_coef_minus8
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                bits.se()


def _read_st_ref_pic_set(bits: BitReader, sets: "list[tuple[list[int], list[int]]]", index: int,
                         count: int) -> "tuple[list[int], list[int], int]":
    """st_ref_pic_set(index) (7.3.7): its (negative, positive) delta POCs and how many of its
    pictures the current picture uses (UsedByCurrPicS0/S1).

    ``sets``: the SPS's sets before it; ``count``: num_short_term_ref_pic_sets, which a
    slice header's own set has as its index. A set predicted from another is derived
    from that one's delta POCs (7.4.8).
    """
    if index and bits.bit():  # inter_ref_pic_set_prediction_flag
        ref_index = index - (bits.ue() + 1 if index == count else 1)  # delta_idx_minus1
        if ref_index < 0:
            raise ValueError("delta_idx_minus1 out of range")
        neg_ref, pos_ref = sets[ref_index]
        sign = bits.bit()
        magnitude = bits.ue() + 1  # abs_delta_rps_minus1 + 1
        if magnitude > 1 << 15:
            raise ValueError("abs_delta_rps_minus1 out of range")
        delta_rps = -magnitude if sign else magnitude
        n_neg = len(neg_ref)
        total = n_neg + len(pos_ref)
        # per picture of the reference set, then the reference itself:
        # 2 used by the current picture, 1 kept for later pictures, 0 dropped
        use = []
        for _ in range(total + 1):
            use.append(2 if bits.bit() else bits.bit())  # used_by_curr_pic_flag, use_delta_flag
        negative = []
        positive = []
        used = 0
        for j in range(len(pos_ref) - 1, -1, -1):
            d = pos_ref[j] + delta_rps
            if d < 0 and use[n_neg + j]:
                negative.append(d)
                used += use[n_neg + j] >> 1
        if delta_rps < 0 and use[total]:
            negative.append(delta_rps)
            used += use[total] >> 1
        for j in range(n_neg):
            d = neg_ref[j] + delta_rps
            if d < 0 and use[j]:
                negative.append(d)
                used += use[j] >> 1
        for j in range(n_neg - 1, -1, -1):
            d = neg_ref[j] + delta_rps
            if d > 0 and use[j]:
                positive.append(d)
                used += use[j] >> 1
        if delta_rps > 0 and use[total]:
            positive.append(delta_rps)
            used += use[total] >> 1
        for j in range(len(pos_ref)):
            d = pos_ref[j] + delta_rps
            if d > 0 and use[n_neg + j]:
                positive.append(d)
                used += use[n_neg + j] >> 1
        if len(negative) + len(positive) > 15:
            raise ValueError("too many pictures in a short-term reference picture set")
        return negative, positive, used
    num_negative = bits.ue()
    num_positive = bits.ue()
    if num_negative > 15 or num_positive > 15 - num_negative:
        raise ValueError("too many pictures in a short-term reference picture set")
    negative = []
    positive = []
    used = 0
    poc = 0
    for _ in range(num_negative):
        step = bits.ue() + 1
        if step > 1 << 15:
            raise ValueError("delta_poc_s0_minus1 out of range")
        poc -= step
        used += bits.bit()
        negative.append(poc)
    poc = 0
    for _ in range(num_positive):
        step = bits.ue() + 1
        if step > 1 << 15:
            raise ValueError("delta_poc_s1_minus1 out of range")
        poc += step
        used += bits.bit()
        positive.append(poc)
    return negative, positive, used


def _skip_hrd_parameters(bits: BitReader, max_sub_layers_minus1: int) -> None:
    """hrd_parameters(1, max_sub_layers_minus1) (E.2.2)."""
    nal = bits.bit()
    vcl = bits.bit()
    sub_pic = 0
    if nal or vcl:
        sub_pic = bits.bit()
        if sub_pic:
            bits.u(19)  # tick_divisor_minus2, du_cpb_removal_delay_increment_length_minus1, ...
        bits.u(12 if sub_pic else 8)  # bit_rate_scale, cpb_size_scale (and cpb_size_du_scale)
        bits.u(15)  # three delay lengths
    for _ in range(max_sub_layers_minus1 + 1):
        fixed = bits.bit() or bits.bit()  # fixed_pic_rate_general_flag, ..._within_cvs_flag
        low_delay = 0
        if fixed:
            bits.ue()  # elemental_duration_in_tc_minus1
        else:
            low_delay = bits.bit()
        cpb_count = 1 if low_delay else bits.ue() + 1
        if cpb_count > 32:
            raise ValueError("cpb_cnt_minus1 out of range")
        for present in (nal, vcl):
            if present:
                for _ in range(cpb_count):  # sub_layer_hrd_parameters()
                    bits.ue()
                    bits.ue()
                    if sub_pic:
                        bits.ue()
                        bits.ue()
                    bits.bit()


class Vps:
    """What segbind reads from a video parameter set: its id."""

    def __init__(self, vps_id: int) -> None:
        self.vps_id = vps_id


def parse_vps(nal: Buffer) -> Vps:
    """The id of an escaped VPS NAL unit; ValueError when it is not a VPS (7.3.2.1)."""
    rbsp = _rbsp(nal, 8)
    if len(rbsp) < 4 or nal_type(nal[0]) != NAL_VPS:
        raise ValueError("not a video parameter set")
    if rbsp[2] != 0xFF or rbsp[3] != 0xFF:  # vps_reserved_0xffff_16bits
        raise ValueError("video parameter set without its reserved 0xffff")
    return Vps(rbsp[0] >> 4)


class Sps:
    """What segbind reads from a sequence parameter set (7.3.2.2)."""

    def __init__(self, sps_id: int, vps_id: int) -> None:
        self.sps_id = sps_id
        self.vps_id = vps_id
        self.max_sub_layers = 1
        self.width = 0
        self.height = 0
        self.separate_colour_plane = False
        self.chroma_array_type = 1  # ChromaArrayType: chroma_format_idc, 0 with separate colour planes
        self.bit_depth_luma = 8
        self.bit_depth_chroma = 8
        self.log2_max_poc_lsb = 4
        self.max_dec_pic_buffering = 1  # sps_max_dec_pic_buffering_minus1 + 1, highest sub-layer
        self.pic_size_in_ctbs = 1
        self.pic_height_in_ctbs = 1
        self.sample_adaptive_offset = False
        self.st_rps: list[tuple[list[int], list[int]]] = []  # (negative, positive) delta POCs per set
        self.st_rps_used: list[int] = []  # per set: how many of its pictures the current one uses
        self.long_term_ref_pics_present = False
        self.lt_ref_pics_used: list[int] = []  # used_by_curr_pic_lt_sps_flag of each lt_ref_pic_poc_lsb_sps
        self.temporal_mvp = False
        self.high_precision_offsets = False  # range extension: weighted prediction offsets
        self.max_num_reorder: Optional[int] = None  # sps_max_num_reorder_pics, highest sub-layer
        self.field_seq = False  # VUI field_seq_flag: every picture is a field
        self.fps: Optional[float] = None  # frames per second from VUI timing info, when present
        self.complete = False  # False when only the ids could be read
        # Why slice headers under this SPS cannot be read ("" when they can): the VUI and the
        # extension flags must be read to know, and SCC and 3D extensions change the syntax.
        self.unsupported = "SPS not read to its end"


def parse_sps(nal: Buffer) -> Sps:
    """The ids (always), picture timing and what slice headers need (when readable) of an
    escaped SPS NAL unit (7.3.2.2).

    Raises ValueError or IndexError when not even the ids can be read.
    """
    if nal_type(nal[0]) != NAL_SPS:
        raise ValueError("not a sequence parameter set")
    bits = BitReader(_rbsp(nal))
    vps_id = bits.u(4)
    max_sub_layers_minus1 = bits.u(3)
    bits.bit()  # sps_temporal_id_nesting_flag
    if max_sub_layers_minus1 > 6:
        raise ValueError("sps_max_sub_layers_minus1 out of range")
    _skip_profile_tier_level(bits, max_sub_layers_minus1)
    info = Sps(bits.ue(), vps_id)
    info.max_sub_layers = max_sub_layers_minus1 + 1
    if info.sps_id > 15:
        raise ValueError("sps_seq_parameter_set_id out of range")
    if layer_id(nal):
        info.unsupported = "an SPS of a layer other than the base layer"
        return info
    try:
        chroma = bits.ue()
        if chroma > 3:
            raise ValueError("chroma_format_idc out of range")
        if chroma == 3:
            info.separate_colour_plane = bool(bits.bit())
        info.chroma_array_type = 0 if info.separate_colour_plane else chroma
        info.width = bits.ue()
        info.height = bits.ue()
        if bits.bit():  # conformance_window_flag
            for _ in range(4):
                bits.ue()
        info.bit_depth_luma = bits.ue() + 8
        info.bit_depth_chroma = bits.ue() + 8
        if info.bit_depth_luma > 16 or info.bit_depth_chroma > 16:
            raise ValueError("bit depth out of range")
        info.log2_max_poc_lsb = bits.ue() + 4
        if info.log2_max_poc_lsb > 16:
            raise ValueError("log2_max_pic_order_cnt_lsb_minus4 out of range")
        ordering_all = bits.bit()  # sps_sub_layer_ordering_info_present_flag
        for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
            info.max_dec_pic_buffering = bits.ue() + 1
            info.max_num_reorder = bits.ue()
            bits.ue()  # sps_max_latency_increase_plus1
        if info.max_dec_pic_buffering > 16:
            raise ValueError("sps_max_dec_pic_buffering_minus1 out of range")
        log2_min_cb = bits.ue() + 3
        log2_ctb = log2_min_cb + bits.ue()
        if log2_ctb > 6:
            raise ValueError("coding tree block larger than 64")
        ctb = 1 << log2_ctb
        info.pic_height_in_ctbs = (info.height + ctb - 1) >> log2_ctb
        info.pic_size_in_ctbs = (((info.width + ctb - 1) >> log2_ctb) * info.pic_height_in_ctbs) or 1
        for _ in range(4):  # transform block sizes, transform hierarchy depths
            bits.ue()
        if bits.bit() and bits.bit():  # scaling_list_enabled_flag, sps_scaling_list_data_present
            _skip_scaling_list_data(bits)
        bits.bit()  # amp_enabled_flag
        info.sample_adaptive_offset = bool(bits.bit())
        if bits.bit():  # pcm_enabled_flag
            bits.u(8)
            bits.ue()
            bits.ue()
            bits.bit()
        count = bits.ue()
        if count > 64:
            raise ValueError("num_short_term_ref_pic_sets out of range")
        sets = info.st_rps
        for index in range(count):
            negative, positive, used = _read_st_ref_pic_set(bits, sets, index, count)
            sets.append((negative, positive))
            info.st_rps_used.append(used)
        if bits.bit():  # long_term_ref_pics_present_flag
            info.long_term_ref_pics_present = True
            count = bits.ue()
            if count > 32:
                raise ValueError("num_long_term_ref_pics_sps out of range")
            for _ in range(count):
                bits.u(info.log2_max_poc_lsb)  # lt_ref_pic_poc_lsb_sps
                info.lt_ref_pics_used.append(bits.bit())
        info.temporal_mvp = bool(bits.bit())
        bits.bit()  # strong_intra_smoothing_enabled_flag
        info.complete = True  # what cutting needs; the VUI below is optional for it
        if bits.bit():  # vui_parameters_present_flag
            _read_vui(bits, info, max_sub_layers_minus1)
        info.unsupported = _read_sps_extension_flags(bits, info)
    except (ValueError, IndexError):
        pass
    return info


def _read_vui(bits: BitReader, info: Sps, max_sub_layers_minus1: int) -> None:
    """vui_parameters() (E.2.1): field coding and the picture rate kept, the rest skipped."""
    skip_vui_head(bits)
    bits.bit()  # neutral_chroma_indication_flag
    info.field_seq = bool(bits.bit())
    bits.bit()  # frame_field_info_present_flag
    if bits.bit():  # default_display_window_flag
        for _ in range(4):
            bits.ue()
    if bits.bit():  # vui_timing_info_present_flag
        units = bits.u(32)
        scale = bits.u(32)
        if units and scale:
            fps = scale / float(units)  # pictures per second: fields, when field_seq
            if info.field_seq:
                fps /= 2
            if 0.5 <= fps <= 1000:
                info.fps = fps
        if bits.bit():  # vui_poc_proportional_to_timing_flag
            bits.ue()
        if bits.bit():  # vui_hrd_parameters_present_flag
            _skip_hrd_parameters(bits, max_sub_layers_minus1)
    if bits.bit():  # bitstream_restriction_flag
        bits.u(3)
        for _ in range(5):
            bits.ue()


def _read_sps_extension_flags(bits: BitReader, info: Sps) -> str:
    """The SPS extension flags (and the range extension's): what slice headers cannot be read
    under this SPS, or ""."""
    if not bits.bit():  # sps_extension_present_flag
        return ""
    range_extension = bits.bit()
    bits.bit()  # sps_multilayer_extension_flag: nothing in a base layer slice header
    if bits.bit():
        return "3D-HEVC extension"
    if bits.bit():
        return "screen content coding extension"
    bits.u(4)  # sps_extension_4bits
    if range_extension:
        bits.u(6)  # transform_skip_rotation ... intra_smoothing_disabled
        info.high_precision_offsets = bool(bits.bit())
    return ""


class Pps:
    """What segbind reads from a picture parameter set (7.3.2.3.1): what slice headers need."""

    def __init__(self, pps_id: int, sps_id: int) -> None:
        self.pps_id = pps_id
        self.sps_id = sps_id
        self.dependent_slice_segments = False
        self.output_flag_present = False
        self.extra_slice_header_bits = 0
        self.cabac_init_present = False
        self.num_ref_idx_l0_default_active = 1
        self.num_ref_idx_l1_default_active = 1
        self.init_qp = 26
        self.cb_qp_offset = 0
        self.cr_qp_offset = 0
        self.slice_chroma_qp_offsets_present = False
        self.weighted_pred = False
        self.weighted_bipred = False
        self.tiles = False
        self.entropy_coding_sync = False  # wavefront parallel processing
        self.num_tile_columns = 1
        self.num_tile_rows = 1
        self.loop_filter_across_slices = False
        self.deblocking_filter_override_enabled = False
        self.deblocking_filter_disabled = False
        self.beta_offset_div2 = 0
        self.tc_offset_div2 = 0
        self.lists_modification_present = False
        self.slice_segment_header_extension_present = False
        self.chroma_qp_offset_list_enabled = False  # range extension
        self.unsupported = "PPS not read to its end"  # as for Sps: "" when slice headers can be read


def parse_pps(nal: Buffer) -> Pps:
    """The ids and the fields slice headers depend on of an escaped PPS NAL unit (7.3.2.3.1).

    Raises ValueError or IndexError when not even the ids can be read; a value out of range
    after them leaves ``unsupported`` set. Nothing read here depends on the SPS.
    """
    if nal_type(nal[0]) != NAL_PPS:
        raise ValueError("not a picture parameter set")
    bits = BitReader(_rbsp(nal))
    info = Pps(bits.ue(), bits.ue())
    if info.pps_id > 63 or info.sps_id > 15:
        raise ValueError("parameter set id out of range")
    info.dependent_slice_segments = bool(bits.bit())
    info.output_flag_present = bool(bits.bit())
    info.extra_slice_header_bits = bits.u(3)
    if layer_id(nal):
        info.unsupported = "a PPS of a layer other than the base layer"
        return info
    try:
        bits.bit()  # sign_data_hiding_enabled_flag
        info.cabac_init_present = bool(bits.bit())
        info.num_ref_idx_l0_default_active = bits.ue() + 1
        info.num_ref_idx_l1_default_active = bits.ue() + 1
        if info.num_ref_idx_l0_default_active > 15 or info.num_ref_idx_l1_default_active > 15:
            raise ValueError("num_ref_idx_default_active_minus1 out of range")
        info.init_qp = 26 + bits.se()
        bits.bit()  # constrained_intra_pred_flag
        transform_skip = bits.bit()
        if bits.bit():  # cu_qp_delta_enabled_flag
            bits.ue()  # diff_cu_qp_delta_depth
        info.cb_qp_offset = bits.se()
        info.cr_qp_offset = bits.se()
        if info.init_qp > 51 or not (-12 <= info.cb_qp_offset <= 12 and -12 <= info.cr_qp_offset <= 12):
            raise ValueError("a QP or QP offset out of range")
        info.slice_chroma_qp_offsets_present = bool(bits.bit())
        info.weighted_pred = bool(bits.bit())
        info.weighted_bipred = bool(bits.bit())
        bits.bit()  # transquant_bypass_enabled_flag
        info.tiles = bool(bits.bit())
        info.entropy_coding_sync = bool(bits.bit())
        if info.tiles:
            info.num_tile_columns = bits.ue() + 1
            info.num_tile_rows = bits.ue() + 1
            if info.num_tile_columns > 20 or info.num_tile_rows > 22:
                raise ValueError("too many tiles")
            if not bits.bit():  # uniform_spacing_flag
                for _ in range(info.num_tile_columns + info.num_tile_rows - 2):
                    bits.ue()  # column_width_minus1, row_height_minus1
            bits.bit()  # loop_filter_across_tiles_enabled_flag
        info.loop_filter_across_slices = bool(bits.bit())
        if bits.bit():  # deblocking_filter_control_present_flag
            info.deblocking_filter_override_enabled = bool(bits.bit())
            info.deblocking_filter_disabled = bool(bits.bit())
            if not info.deblocking_filter_disabled:
                info.beta_offset_div2 = bits.se()
                info.tc_offset_div2 = bits.se()
        if bits.bit():  # pps_scaling_list_data_present_flag
            _skip_scaling_list_data(bits)
        info.lists_modification_present = bool(bits.bit())
        bits.ue()  # log2_parallel_merge_level_minus2
        info.slice_segment_header_extension_present = bool(bits.bit())
        info.unsupported = _read_pps_extension_flags(bits, info, transform_skip)
    except (ValueError, IndexError):
        pass
    return info


def _read_pps_extension_flags(bits: BitReader, info: Pps, transform_skip: int) -> str:
    """The PPS extension flags (and the range extension's first fields): what slice headers
    cannot be read under this PPS, or ""."""
    if not bits.bit():  # pps_extension_present_flag
        return ""
    range_extension = bits.bit()
    if bits.bit():
        return "multilayer extension"
    if bits.bit():
        return "3D-HEVC extension"
    if bits.bit():
        return "screen content coding extension"
    bits.u(4)  # pps_extension_4bits
    if range_extension:  # pps_range_extension() up to chroma_qp_offset_list_enabled_flag
        if transform_skip:
            bits.ue()  # log2_max_transform_skip_block_size_minus2
        bits.bit()  # cross_component_prediction_enabled_flag
        info.chroma_qp_offset_list_enabled = bool(bits.bit())
    return ""


def parse_pps_ids(nal: Buffer) -> tuple[int, int]:
    """(pps_pic_parameter_set_id, pps_seq_parameter_set_id) of an escaped PPS NAL unit."""
    info = parse_pps(nal)
    return info.pps_id, info.sps_id


def parameter_set_key(nal: Buffer) -> tuple[int, int]:
    """(32, vps id), (33, sps id) or (34, pps id); ValueError/IndexError when unreadable."""
    kind = nal_type(nal[0])
    if kind == NAL_VPS:
        return (NAL_VPS, parse_vps(nal).vps_id)
    if kind == NAL_SPS:
        return (NAL_SPS, parse_sps(nal).sps_id)
    if kind == NAL_PPS:
        return (NAL_PPS, parse_pps(nal).pps_id)
    raise ValueError("not a parameter set")


def _read_vps(unit: bytes) -> "tuple[int, Vps]":
    info = parse_vps(unit)
    return info.vps_id, info


def _read_sps(unit: bytes) -> "tuple[int, Sps]":
    info = parse_sps(unit)
    return info.sps_id, info


def _read_pps(unit: bytes) -> "tuple[int, Pps]":
    info = parse_pps(unit)
    return info.pps_id, info


_READERS = ((NAL_VPS, _read_vps), (NAL_SPS, _read_sps), (NAL_PPS, _read_pps))


class ParameterSets(ParameterSetTables):
    """The VPS, SPS and PPS in force in a stream, by id, as they were last seen.

    ``add`` takes any NAL unit (others are ignored) and returns True for a
    readable parameter set. ``units()`` gives the NAL units in force, every VPS
    (by id), then every SPS, then every PPS: what a segment needs at its start
    to decode on its own, in the order a decoder reads them.
    """

    def __init__(self) -> None:
        super().__init__(_READERS)
        self.vps: dict[int, tuple[Vps, bytes]] = self.tables[NAL_VPS]  # id -> (Vps, NAL bytes)
        self.sps: dict[int, tuple[Sps, bytes]] = self.tables[NAL_SPS]
        self.pps: dict[int, tuple[Pps, bytes]] = self.tables[NAL_PPS]

    def add(self, nal: Buffer) -> bool:
        """Keep a parameter set; False for anything else, an empty unit included."""
        return bool(nal) and self.add_kind(nal_type(nal[0]), nal)

    def key(self, nal: Buffer) -> tuple[int, int]:
        """(kind, id) of a parameter set (read once); ValueError if unreadable."""
        return self.key_of(nal_type(nal[0]), nal)

    def sps_of_pps(self, pps_id: int) -> Optional[Sps]:
        """The Sps a PPS refers to, or None when either is unknown."""
        pps = self.pps.get(pps_id)
        if pps is None:
            return None
        entry = self.sps.get(pps[0].sps_id)
        return entry[0] if entry is not None else None


# slice_type (table 7-7)
SLICE_B = 0
SLICE_P = 1
SLICE_I = 2

# How many escaped bytes after the NAL header a slice segment header parse reads first; a
# header that runs past them is read again from four times as many (entry points, weights).
_SLICE_WINDOW = 64


def _ceil_log2(value: int) -> int:
    """Ceil(Log2(value)) for value >= 1: the bits that index ``value`` things."""
    size = 0
    while (1 << size) < value:
        size += 1
    return size


class SliceHeader:
    """A whole slice segment header (H.265 7.3.6.1) and where it ends in its NAL unit.

    A dependent slice segment (``dependent``) carries only first_slice_segment_in_pic_flag,
    no_output_of_prior_pics_flag (IRAP), the PPS id, its address, its entry points and
    header extension: every other field is its slice's, in the independent slice segment
    before it, and keeps its class default here (None for slice_type and poc_lsb). Fields
    a slice does not carry keep the values H.265 infers. ``header_bits``: the NAL header
    and slice segment header in RBSP bits, up to byte_alignment() included: where
    slice_segment_data() begins, a byte boundary; ``header_bytes``: how many bytes of the
    NAL unit as stored (emulation prevention included) hold them.
    """

    nal_unit_type = NAL_TRAIL_R
    temporal_id = 0
    first_in_picture = False
    no_output_of_prior_pics = False
    pps_id = 0
    sps: Optional[Sps] = None  # the parameter sets in force
    pps: Optional[Pps] = None
    dependent = False  # a dependent slice segment
    address = 0  # slice_segment_address: the first coding tree block of the segment
    slice_type: Optional[int] = None  # SLICE_B, SLICE_P, SLICE_I
    pic_output_flag = True
    colour_plane_id = 0
    poc_lsb: Optional[int] = None  # slice_pic_order_cnt_lsb (0 for IDR pictures)
    st_rps_idx: Optional[int] = None  # the SPS's set in use, None when the header codes its own
    st_rps: Optional[tuple[list[int], list[int]]] = None  # the set in use: (negative, positive)
    num_long_term = 0  # num_long_term_sps + num_long_term_pics
    num_pic_total_curr = 0  # NumPicTotalCurr: reference pictures the current picture may use
    temporal_mvp = False
    sao_luma = False
    sao_chroma = False
    num_ref_idx_l0_active = 0  # reference indexes in use (0 for I slices)
    num_ref_idx_l1_active = 0
    mvd_l1_zero = False
    cabac_init = False
    collocated_from_l0 = True
    collocated_ref_idx = 0
    max_num_merge_cand = 5
    slice_qp_delta = 0
    slice_cb_qp_offset = 0
    slice_cr_qp_offset = 0
    cu_chroma_qp_offset_enabled = False
    deblocking_filter_disabled = False
    beta_offset_div2 = 0
    tc_offset_div2 = 0
    loop_filter_across_slices = False
    num_entry_points = 0  # num_entry_point_offsets
    offset_len = 0  # offset_len_minus1 + 1: the bits of each entry point offset
    extension_length = 0  # slice_segment_header_extension_length, in bytes
    header_bits = 0
    header_bytes = 0


def parse_slice_header(nal: Buffer, params: ParameterSets) -> SliceHeader:
    """The whole slice segment header of an escaped VCL NAL unit, read against the parameter
    sets in force in ``params``.

    Raises SliceHeaderError (a ValueError) when it cannot be read: unknown PPS or SPS (or
    one whose fields could not be read, or that uses SCC, 3D or multilayer extensions), a
    value out of range, a header that runs past the unit or leaves no slice data, a layer
    other than the base layer, or a unit that is no slice segment.
    """
    header = _slice_header_of(nal)

    def read(bits: BitReader) -> None:
        if _read_slice_head(bits, header, params):
            _read_slice_rest(bits, header)
        _read_slice_tail(bits, header)

    header.header_bits, header.header_bytes = read_slice_header_span(nal, HEADER_SIZE, read, _SLICE_WINDOW)
    return header


def _slice_header_of(nal: Buffer) -> SliceHeader:
    """A SliceHeader with the NAL header's fields, or SliceHeaderError."""
    if len(nal) < HEADER_SIZE + 1:
        raise SliceHeaderError("no slice segment header")
    kind = nal_type(nal[0])
    if not is_vcl(kind):
        raise SliceHeaderError("not a slice segment")
    if kind in (22, 23) or 10 <= kind <= 15 or kind >= 24:
        raise SliceHeaderError("reserved NAL unit type %d" % kind)
    if layer_id(nal):
        raise SliceHeaderError("a slice segment of a layer other than the base layer")
    header = SliceHeader()
    header.nal_unit_type = kind
    header.temporal_id = temporal_id(nal)
    if header.temporal_id < 0 or (header.temporal_id and is_irap(kind)) or (not header.temporal_id and 2 <= kind <= 5):
        raise SliceHeaderError("nuh_temporal_id_plus1 out of range")  # IRAP in layer 0, TSA and STSA above it
    return header


def _read_slice_head(bits: BitReader, header: SliceHeader, params: ParameterSets) -> bool:
    """slice_segment_header() up to slice_pic_order_cnt_lsb: what the picture order needs.
    False for a dependent slice segment (whose next fields are its entry points)."""
    kind = header.nal_unit_type
    first = header.first_in_picture = bool(bits.bit())
    if 16 <= kind <= 23:
        header.no_output_of_prior_pics = bool(bits.bit())
    pps_id = header.pps_id = bits.ue()
    pps, sps = params.picture_sets(NAL_PPS, NAL_SPS, pps_id)
    header.pps = pps
    header.sps = sps
    if pps.unsupported:
        raise SliceHeaderError("PPS %d: %s" % (pps_id, pps.unsupported))
    if sps.unsupported or not sps.complete:
        raise SliceHeaderError("SPS %d: %s" % (sps.sps_id, sps.unsupported or "unreadable"))
    if not first:
        if pps.dependent_slice_segments:
            header.dependent = bool(bits.bit())
        address = header.address = bits.u(_ceil_log2(sps.pic_size_in_ctbs))
        if address >= sps.pic_size_in_ctbs:
            raise SliceHeaderError("slice_segment_address out of range")
        if header.dependent:
            return False
    bits.u(pps.extra_slice_header_bits)  # slice_reserved_flag[]
    slice_type = header.slice_type = bits.ue()
    if slice_type > 2 or (16 <= kind <= 23 and slice_type != SLICE_I):
        raise SliceHeaderError("slice_type out of range")
    if pps.output_flag_present:
        header.pic_output_flag = bool(bits.bit())
    if sps.separate_colour_plane:
        header.colour_plane_id = bits.u(2)
        if header.colour_plane_id > 2:
            raise SliceHeaderError("colour_plane_id out of range")
    if is_idr(kind):
        header.poc_lsb = 0
    else:
        header.poc_lsb = bits.u(sps.log2_max_poc_lsb)
    return True


def _read_slice_rest(bits: BitReader, header: SliceHeader) -> None:
    """slice_segment_header() after slice_pic_order_cnt_lsb, for an independent slice segment."""
    sps = header.sps
    pps = header.pps
    assert sps is not None and pps is not None
    slice_type = header.slice_type
    used = 0  # NumPicTotalCurr
    if not is_idr(header.nal_unit_type):
        sets = sps.st_rps
        if bits.bit():  # short_term_ref_pic_set_sps_flag
            if not sets:
                raise SliceHeaderError("no short-term reference picture set in the SPS")
            index = bits.u(_ceil_log2(len(sets)))
            if index >= len(sets):
                raise SliceHeaderError("short_term_ref_pic_set_idx out of range")
            header.st_rps_idx = index
            header.st_rps = sets[index]
            used = sps.st_rps_used[index]
        else:
            negative, positive, used = _read_st_ref_pic_set(bits, sets, len(sets), len(sets))
            header.st_rps = (negative, positive)
        pictures = len(header.st_rps[0]) + len(header.st_rps[1])
        if sps.long_term_ref_pics_present:
            in_sps = sps.lt_ref_pics_used
            from_sps = bits.ue() if in_sps else 0  # num_long_term_sps
            coded = bits.ue()  # num_long_term_pics
            if from_sps > len(in_sps) or pictures + from_sps + coded >= sps.max_dec_pic_buffering:
                raise SliceHeaderError("too many long-term reference pictures")
            header.num_long_term = from_sps + coded
            index_bits = _ceil_log2(len(in_sps))
            for i in range(from_sps + coded):
                if i < from_sps:
                    index = bits.u(index_bits)  # lt_idx_sps
                    if index >= len(in_sps):
                        raise SliceHeaderError("lt_idx_sps out of range")
                    used += in_sps[index]
                else:
                    bits.u(sps.log2_max_poc_lsb)  # poc_lsb_lt
                    used += bits.bit()  # used_by_curr_pic_lt_flag
                if bits.bit():  # delta_poc_msb_present_flag
                    bits.ue()  # delta_poc_msb_cycle_lt
        elif pictures >= sps.max_dec_pic_buffering:
            raise SliceHeaderError("too many short-term reference pictures")
        if sps.temporal_mvp:
            header.temporal_mvp = bool(bits.bit())
    header.num_pic_total_curr = used
    if sps.sample_adaptive_offset:
        header.sao_luma = bool(bits.bit())
        if sps.chroma_array_type:
            header.sao_chroma = bool(bits.bit())
    if slice_type != SLICE_I:
        b_slice = slice_type == SLICE_B
        if not used:
            raise SliceHeaderError("a P or B slice without reference pictures")
        l0 = pps.num_ref_idx_l0_default_active
        l1 = pps.num_ref_idx_l1_default_active if b_slice else 0
        if bits.bit():  # num_ref_idx_active_override_flag
            l0 = bits.ue() + 1
            if b_slice:
                l1 = bits.ue() + 1
            if l0 > 15 or l1 > 15:
                raise SliceHeaderError("num_ref_idx_active_minus1 out of range")
        header.num_ref_idx_l0_active = l0
        header.num_ref_idx_l1_active = l1
        if pps.lists_modification_present and used > 1:  # ref_pic_lists_modification()
            entry_bits = _ceil_log2(used)
            for count in (l0, l1):
                if count and bits.bit():  # ref_pic_list_modification_flag_lX
                    for _ in range(count):
                        if bits.u(entry_bits) >= used:
                            raise SliceHeaderError("list_entry out of range")
        if b_slice:
            header.mvd_l1_zero = bool(bits.bit())
        if pps.cabac_init_present:
            header.cabac_init = bool(bits.bit())
        if header.temporal_mvp:
            from_l0 = header.collocated_from_l0 = bool(bits.bit()) if b_slice else True
            count = l0 if from_l0 else l1
            if count > 1:
                header.collocated_ref_idx = bits.ue()
                if header.collocated_ref_idx >= count:
                    raise SliceHeaderError("collocated_ref_idx out of range")
        if pps.weighted_bipred if b_slice else pps.weighted_pred:  # explicit weights
            _skip_pred_weight_table(bits, sps, l0, l1)
        five_minus = bits.ue()
        if five_minus > 4:
            raise SliceHeaderError("five_minus_max_num_merge_cand out of range")
        header.max_num_merge_cand = 5 - five_minus
    qp_delta = header.slice_qp_delta = bits.se()
    if not -6 * (sps.bit_depth_luma - 8) <= pps.init_qp + qp_delta <= 51:
        raise SliceHeaderError("slice QP out of range")
    if pps.slice_chroma_qp_offsets_present:
        cb = header.slice_cb_qp_offset = bits.se()
        cr = header.slice_cr_qp_offset = bits.se()
        if not (-12 <= cb <= 12 and -12 <= cr <= 12 and -12 <= pps.cb_qp_offset + cb <= 12
                and -12 <= pps.cr_qp_offset + cr <= 12):
            raise SliceHeaderError("slice chroma QP offset out of range")
    if pps.chroma_qp_offset_list_enabled:
        header.cu_chroma_qp_offset_enabled = bool(bits.bit())
    disabled = pps.deblocking_filter_disabled
    if pps.deblocking_filter_override_enabled and bits.bit():  # deblocking_filter_override_flag
        disabled = bool(bits.bit())
        if not disabled:
            beta = header.beta_offset_div2 = bits.se()
            tc = header.tc_offset_div2 = bits.se()
            if not (-6 <= beta <= 6 and -6 <= tc <= 6):
                raise SliceHeaderError("deblocking filter offset out of range")
    else:
        header.beta_offset_div2 = pps.beta_offset_div2
        header.tc_offset_div2 = pps.tc_offset_div2
    header.deblocking_filter_disabled = disabled
    across = pps.loop_filter_across_slices
    if across and (header.sao_luma or header.sao_chroma or not disabled):
        across = bool(bits.bit())
    header.loop_filter_across_slices = across


def _skip_pred_weight_table(bits: BitReader, sps: Sps, l0: int, l1: int) -> None:
    """pred_weight_table() (7.3.6.3). Every reference of a single-layer picture without SCC
    has another picture order count than the current one, so every flag is present."""
    chroma = sps.chroma_array_type != 0
    luma_denom = bits.ue()
    if luma_denom > 7 or (chroma and not 0 <= luma_denom + bits.se() <= 7):
        raise SliceHeaderError("log2 weight denominator out of range")
    luma_half = (1 << (sps.bit_depth_luma - 1)) if sps.high_precision_offsets else 128
    chroma_half = (1 << (sps.bit_depth_chroma - 1)) if sps.high_precision_offsets else 128
    for count in (l0, l1):
        luma = [bits.bit() for _ in range(count)]
        colour = [bits.bit() for _ in range(count)] if chroma else [0] * count
        for i in range(count):
            if luma[i]:
                if not -128 <= bits.se() <= 127 or not -luma_half <= bits.se() < luma_half:
                    raise SliceHeaderError("luma weight or offset out of range")
            if colour[i]:
                for _ in range(2):
                    if not -128 <= bits.se() <= 127 or not -4 * chroma_half <= bits.se() < 4 * chroma_half:
                        raise SliceHeaderError("chroma weight or offset out of range")


def _read_slice_tail(bits: BitReader, header: SliceHeader) -> None:
    """Entry points, the header extension and byte_alignment(): every slice segment has them."""
    sps = header.sps
    pps = header.pps
    assert sps is not None and pps is not None
    if pps.tiles or pps.entropy_coding_sync:
        count = bits.ue()  # num_entry_point_offsets
        if not pps.tiles:
            most = sps.pic_height_in_ctbs - 1
        elif not pps.entropy_coding_sync:
            most = pps.num_tile_columns * pps.num_tile_rows - 1
        else:
            most = pps.num_tile_columns * sps.pic_height_in_ctbs - 1
        if count > most:
            raise SliceHeaderError("num_entry_point_offsets out of range")
        header.num_entry_points = count
        if count:
            length = header.offset_len = bits.ue() + 1
            if length > 32:
                raise SliceHeaderError("offset_len_minus1 out of range")
            bits.pos += count * length  # entry_point_offset_minus1[]
    if pps.slice_segment_header_extension_present:
        length = header.extension_length = bits.ue()
        if length > 256:
            raise SliceHeaderError("slice_segment_header_extension_length out of range")
        bits.pos += 8 * length  # slice_segment_header_extension_data_byte[]
    if not bits.bit():
        raise SliceHeaderError("alignment_bit_equal_to_one is 0")
    while bits.pos & 7:
        if bits.bit():
            raise SliceHeaderError("alignment_bit_equal_to_zero is 1")


class PocCounter:
    """Picture order counts of a stream's pictures, in decoding order (8.3.1).

    ``count(header)`` takes the first slice segment header of each picture, in decoding
    order, and gives its PicOrderCntVal. Counts restart at 0 with every IRAP picture whose
    NoRaslOutputFlag is 1: IDR and BLA pictures, and a CRA picture that starts the stream
    or follows an end of sequence (``end_of_sequence()``). It also sets ``order_key``:
    (run, count), where a run begins at each such IRAP picture (every picture before it is
    output first), or None for a picture that is not output: pic_output_flag 0, or a RASL
    picture of a CRA that starts a run (a decoder skips it). ``output_ranks`` orders
    pictures by these keys. The stream is assumed to begin at an IRAP picture.
    ``poc(nal)`` reads the header's beginning itself (nothing after slice_pic_order_cnt_lsb
    matters to the count) and returns None when it cannot (callers then keep decoding order).
    """

    def __init__(self, params: ParameterSets) -> None:
        self.params = params
        self.sps: Optional[Sps] = None  # the SPS of the last picture read
        self.order_key: "Optional[tuple[int, int]]" = None
        self._run = -1
        self._prev_tid0 = 0  # PicOrderCntVal of the previous TemporalId-0 reference picture
        self._restart = True  # the next IRAP picture begins a coded video sequence
        self._skip_rasl = False  # NoRaslOutputFlag of the last IRAP picture

    def end_of_sequence(self) -> None:
        """An end of sequence NAL unit: the next picture (an IRAP) starts afresh."""
        self._restart = True

    def poc(self, nal: Buffer) -> Optional[int]:
        """The PicOrderCntVal of the picture whose first slice segment is ``nal``; None when
        its header's beginning cannot be read."""
        try:
            header = _slice_header_of(nal)
            bits = BitReader(_rbsp(nal, 64))
            if not _read_slice_head(bits, header, self.params):
                raise SliceHeaderError("a dependent slice segment")
        except (ValueError, IndexError):
            self.sps = None
            return None
        return self.count(header)

    def count(self, header: SliceHeader) -> int:
        sps = header.sps
        lsb = header.poc_lsb
        if sps is None or lsb is None:
            raise SliceHeaderError("not the first slice segment of a picture")
        self.sps = sps
        kind = header.nal_unit_type
        irap = 16 <= kind <= 23
        if irap:
            self._skip_rasl = self._restart or is_idr(kind) or is_bla(kind)
            self._restart = False
        if irap and self._skip_rasl:
            msb = 0
            self._run += 1
        else:
            top = 1 << sps.log2_max_poc_lsb
            prev_lsb = self._prev_tid0 & (top - 1)
            prev_msb = self._prev_tid0 - prev_lsb
            if lsb < prev_lsb and prev_lsb - lsb >= top // 2:
                msb = prev_msb + top
            elif lsb > prev_lsb and lsb - prev_lsb > top // 2:
                msb = prev_msb - top
            else:
                msb = prev_msb
            if self._run < 0:
                self._run = 0
        poc = msb + lsb
        if header.temporal_id == 0 and not (6 <= kind <= 9 or is_sub_layer_non_reference(kind)):
            self._prev_tid0 = poc
        if not header.pic_output_flag or (is_rasl(kind) and self._skip_rasl):
            self.order_key = None
        else:
            self.order_key = (self._run, poc)
        return poc


def sei_messages(nal: Buffer) -> list[tuple[int, bytes]]:
    """The (payloadType, payload) pairs of an escaped prefix or suffix SEI NAL unit, strictly.

    Raises SeiError when it is no SEI unit, a message runs past it, or it does
    not end with rbsp_trailing_bits. The message syntax is H.264's (7.3.5).
    """
    if len(nal) < HEADER_SIZE + 1 or nal_type(nal[0]) not in (NAL_PREFIX_SEI, NAL_SUFFIX_SEI):
        raise SeiError("not an SEI NAL unit")
    return _sei_messages(nal, HEADER_SIZE)


def sei_payload_types(nal: Buffer, limit: int = _SEI_SCAN_BYTES) -> list[int]:
    """The payloadType of each SEI message in the first ``limit`` bytes, leniently."""
    return _sei_payload_types(nal, HEADER_SIZE, limit)


def has_recovery_point(nal: Buffer) -> bool:
    """True when an escaped prefix SEI NAL unit holds a recovery point message (payloadType 6)."""
    return (len(nal) > HEADER_SIZE and nal_type(nal[0]) == NAL_PREFIX_SEI
            and SEI_RECOVERY_POINT in sei_payload_types(nal))
