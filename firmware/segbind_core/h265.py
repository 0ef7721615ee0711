"""H.265/HEVC syntax: the one place segbind reads H.265 beyond NAL unit boundaries.

The two-byte NAL header and unit types, video/sequence/picture parameter sets
(their ids, and what segmenting reads: frame rate and field coding from the
VUI, picture order count sizes), the slice segment header up to the picture
order count, IRAP pictures, the SEI message walk, the non-VCL units that open
an access unit, a tracker of the parameter sets in force and picture order
counts. Shaped like ``segbind_core.h264`` (same names where the idea is the
same), so a caller can hold either module and ask the same questions.

Pure code: bytes in, values out; the same file runs on CPython and MicroPython.
NAL units are passed as escaped bytes (emulation prevention kept), header
first, as they are in the bitstream. Section numbers are ITU-T H.265's.
"""

from .h264 import SEI_RECOVERY_POINT, BitReader, SeiError, skip_vui_head
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

# How many bytes of a slice segment NAL unit hold every header field segbind reads.
_SLICE_HEADER_BYTES = 48
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


def _read_st_ref_pic_sets(bits: BitReader, count: int) -> "list[tuple[list[int], list[int]]]":
    """The SPS's st_ref_pic_set(i) for i < count (7.3.7), as (negative, positive) delta POCs.

    A set predicted from another is derived from that one's delta POCs (7.4.8),
    so each set's are kept: reading the next set needs their number.
    """
    sets: list[tuple[list[int], list[int]]] = []
    for idx in range(count):
        if idx and bits.u(1):  # inter_ref_pic_set_prediction_flag
            sign = bits.u(1)
            delta_rps = (1 - 2 * sign) * (bits.ue() + 1)
            neg_ref, pos_ref = sets[idx - 1]  # delta_idx_minus1 is only in slice headers: 0 here
            # use_delta_flag per entry of the reference set, then for the reference itself
            use = []
            for _ in range(len(neg_ref) + len(pos_ref) + 1):
                used = bits.u(1)
                use.append(True if used else bool(bits.u(1)))
            negative = []
            for j in range(len(pos_ref) - 1, -1, -1):
                d = pos_ref[j] + delta_rps
                if d < 0 and use[len(neg_ref) + j]:
                    negative.append(d)
            if delta_rps < 0 and use[-1]:
                negative.append(delta_rps)
            for j in range(len(neg_ref)):
                d = neg_ref[j] + delta_rps
                if d < 0 and use[j]:
                    negative.append(d)
            positive = []
            for j in range(len(neg_ref) - 1, -1, -1):
                d = neg_ref[j] + delta_rps
                if d > 0 and use[j]:
                    positive.append(d)
            if delta_rps > 0 and use[-1]:
                positive.append(delta_rps)
            for j in range(len(pos_ref)):
                d = pos_ref[j] + delta_rps
                if d > 0 and use[len(neg_ref) + j]:
                    positive.append(d)
            sets.append((negative, positive))
            continue
        num_negative = bits.ue()
        num_positive = bits.ue()
        if num_negative > 16 or num_positive > 16:
            raise ValueError("too many pictures in a short-term reference picture set")
        negative = []
        poc = 0
        for _ in range(num_negative):
            poc -= bits.ue() + 1
            bits.u(1)
            negative.append(poc)
        positive = []
        poc = 0
        for _ in range(num_positive):
            poc += bits.ue() + 1
            bits.u(1)
            positive.append(poc)
        sets.append((negative, positive))
    return sets


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
    """What segbind reads from a sequence parameter set."""

    def __init__(self, sps_id: int, vps_id: int) -> None:
        self.sps_id = sps_id
        self.vps_id = vps_id
        self.width = 0
        self.height = 0
        self.separate_colour_plane = False
        self.log2_max_poc_lsb = 4
        self.pic_size_in_ctbs = 1
        self.st_rps: list[tuple[list[int], list[int]]] = []  # (negative, positive) delta POCs per set
        self.max_num_reorder: Optional[int] = None  # sps_max_num_reorder_pics, highest sub-layer
        self.field_seq = False  # VUI field_seq_flag: every picture is a field
        self.fps: Optional[float] = None  # frames per second from VUI timing info, when present
        self.complete = False  # False when only the ids could be read


def parse_sps(nal: Buffer) -> Sps:
    """The ids (always) and picture timing (when readable) of an escaped SPS NAL unit (7.3.2.2).

    Raises ValueError or IndexError when not even the ids can be read.
    """
    if nal_type(nal[0]) != NAL_SPS:
        raise ValueError("not a sequence parameter set")
    bits = BitReader(_rbsp(nal))
    vps_id = bits.u(4)
    max_sub_layers_minus1 = bits.u(3)
    bits.u(1)  # sps_temporal_id_nesting_flag
    if max_sub_layers_minus1 > 6:
        raise ValueError("sps_max_sub_layers_minus1 out of range")
    _skip_profile_tier_level(bits, max_sub_layers_minus1)
    info = Sps(bits.ue(), vps_id)
    if info.sps_id > 15:
        raise ValueError("sps_seq_parameter_set_id out of range")
    try:
        chroma = bits.ue()
        if chroma == 3:
            info.separate_colour_plane = bool(bits.u(1))
        info.width = bits.ue()
        info.height = bits.ue()
        if bits.u(1):  # conformance_window_flag
            for _ in range(4):
                bits.ue()
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        info.log2_max_poc_lsb = bits.ue() + 4
        if info.log2_max_poc_lsb > 16:
            raise ValueError("log2_max_pic_order_cnt_lsb_minus4 out of range")
        ordering_all = bits.u(1)  # sps_sub_layer_ordering_info_present_flag
        for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
            bits.ue()  # sps_max_dec_pic_buffering_minus1
            info.max_num_reorder = bits.ue()
            bits.ue()  # sps_max_latency_increase_plus1
        log2_min_cb = bits.ue() + 3
        log2_ctb = log2_min_cb + bits.ue()
        if log2_ctb > 6:
            raise ValueError("coding tree block larger than 64")
        ctb = 1 << log2_ctb
        info.pic_size_in_ctbs = (((info.width + ctb - 1) >> log2_ctb)
                                 * ((info.height + ctb - 1) >> log2_ctb)) or 1
        for _ in range(4):  # transform block sizes, transform hierarchy depths
            bits.ue()
        if bits.u(1) and bits.u(1):  # scaling_list_enabled_flag, sps_scaling_list_data_present
            _skip_scaling_list_data(bits)
        bits.u(1)  # amp_enabled_flag
        bits.u(1)  # sample_adaptive_offset_enabled_flag
        if bits.u(1):  # pcm_enabled_flag
            bits.u(8)
            bits.ue()
            bits.ue()
            bits.u(1)
        sets = bits.ue()
        if sets > 64:
            raise ValueError("num_short_term_ref_pic_sets out of range")
        info.st_rps = _read_st_ref_pic_sets(bits, sets)
        if bits.u(1):  # long_term_ref_pics_present_flag
            for _ in range(bits.ue()):
                bits.u(info.log2_max_poc_lsb)
                bits.u(1)
        bits.u(1)  # sps_temporal_mvp_enabled_flag
        bits.u(1)  # strong_intra_smoothing_enabled_flag
        info.complete = True  # what cutting and slice headers need; the VUI below is optional
        if bits.u(1):  # vui_parameters_present_flag
            _read_vui(bits, info)
    except (ValueError, IndexError):
        pass
    return info


def _read_vui(bits: BitReader, info: Sps) -> None:
    """vui_parameters() (E.2.1) up to the timing info: field coding and the picture rate."""
    skip_vui_head(bits)
    bits.u(1)  # neutral_chroma_indication_flag
    info.field_seq = bool(bits.u(1))
    bits.u(1)  # frame_field_info_present_flag
    if bits.u(1):  # default_display_window_flag
        for _ in range(4):
            bits.ue()
    if bits.u(1):  # vui_timing_info_present_flag
        units = bits.u(32)
        scale = bits.u(32)
        if units and scale:
            fps = scale / float(units)  # pictures per second: fields, when field_seq
            if info.field_seq:
                fps /= 2
            if 0.5 <= fps <= 1000:
                info.fps = fps


class Pps:
    """What segbind reads from a picture parameter set: enough for the slice header's start."""

    def __init__(self, pps_id: int, sps_id: int) -> None:
        self.pps_id = pps_id
        self.sps_id = sps_id
        self.dependent_slice_segments = False
        self.output_flag_present = False
        self.extra_slice_header_bits = 0


def parse_pps(nal: Buffer) -> Pps:
    """The ids and slice header flags of an escaped PPS NAL unit (7.3.2.3.1)."""
    if nal_type(nal[0]) != NAL_PPS:
        raise ValueError("not a picture parameter set")
    bits = BitReader(_rbsp(nal, 16))
    info = Pps(bits.ue(), bits.ue())
    if info.pps_id > 63 or info.sps_id > 15:
        raise ValueError("parameter set id out of range")
    info.dependent_slice_segments = bool(bits.u(1))
    info.output_flag_present = bool(bits.u(1))
    info.extra_slice_header_bits = bits.u(3)
    return info


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
        return self.add_kind(nal_type(nal[0]), nal)

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


class SliceHeader:
    """The first fields of a slice segment header (7.3.6.1), as far as segbind reads them."""

    def __init__(self) -> None:
        self.first_in_picture = False
        self.no_output_of_prior_pics = False
        self.pps_id = 0
        self.sps: Optional[Sps] = None  # the SPS in force, when known
        self.address = 0  # slice_segment_address: the first coding tree block of the segment
        self.dependent = False  # a dependent slice segment: the fields below are its slice's
        self.slice_type: Optional[int] = None  # 0 B, 1 P, 2 I
        self.poc_lsb: Optional[int] = None  # slice_pic_order_cnt_lsb (0 for IDR pictures)


def parse_slice_header(nal: Buffer, params: ParameterSets) -> SliceHeader:
    """Slice segment header fields of an escaped VCL NAL unit, read against ``params``.

    The fields after slice_pic_parameter_set_id are read only when the PPS and
    its SPS are known (``header.sps`` is then set). Raises ValueError or
    IndexError when not even the parameter set id can be read.
    """
    kind = nal_type(nal[0])
    if not is_vcl(kind):
        raise ValueError("not a slice segment")
    bits = BitReader(_rbsp(nal, _SLICE_HEADER_BYTES))
    header = SliceHeader()
    header.first_in_picture = bool(bits.u(1))
    if is_irap(kind):
        header.no_output_of_prior_pics = bool(bits.u(1))
    header.pps_id = bits.ue()
    if header.pps_id > 63:
        raise ValueError("slice_pic_parameter_set_id out of range")
    entry = params.pps.get(header.pps_id)
    sps = params.sps_of_pps(header.pps_id)
    if entry is None or sps is None or not sps.complete:
        return header
    pps = entry[0]
    header.sps = sps
    if not header.first_in_picture:
        if pps.dependent_slice_segments:
            header.dependent = bool(bits.u(1))
        size = 0
        while (1 << size) < sps.pic_size_in_ctbs:
            size += 1
        header.address = bits.u(size)
    if header.dependent:
        return header
    bits.u(pps.extra_slice_header_bits)
    header.slice_type = bits.ue()
    if pps.output_flag_present:
        bits.u(1)
    if sps.separate_colour_plane:
        bits.u(2)
    header.poc_lsb = 0 if is_idr(kind) else bits.u(sps.log2_max_poc_lsb)
    return header


class PocCounter:
    """Picture order counts of a stream's pictures, in decoding order (8.3.1).

    ``poc(nal)`` takes the first slice segment of each picture; it returns None
    when the order cannot be read (unknown parameter sets), and callers then
    keep decoding order. Counts restart at 0 with every IDR or BLA picture (and
    a CRA picture that starts the stream or follows an end of sequence).
    """

    def __init__(self, params: ParameterSets) -> None:
        self.params = params
        self.sps: Optional[Sps] = None  # the SPS of the last picture read
        self._prev_tid0 = 0  # PicOrderCntVal of the previous TemporalId-0 reference picture
        self._restart = True  # the next IRAP picture begins a coded video sequence

    def end_of_sequence(self) -> None:
        """An end of sequence NAL unit: the next picture (an IRAP) starts afresh."""
        self._restart = True

    def poc(self, nal: Buffer) -> Optional[int]:
        try:
            header = parse_slice_header(nal, self.params)
        except (ValueError, IndexError):
            return None
        sps = self.sps = header.sps
        if sps is None or header.poc_lsb is None:
            return None
        kind = nal_type(nal[0])
        lsb = header.poc_lsb
        top = 1 << sps.log2_max_poc_lsb
        if is_irap(kind) and (self._restart or is_idr(kind) or is_bla(kind)):
            msb = 0
        else:
            prev_lsb = self._prev_tid0 & (top - 1)
            prev_msb = self._prev_tid0 - prev_lsb
            if lsb < prev_lsb and prev_lsb - lsb >= top // 2:
                msb = prev_msb + top
            elif lsb > prev_lsb and lsb - prev_lsb > top // 2:
                msb = prev_msb - top
            else:
                msb = prev_msb
        if is_irap(kind):
            self._restart = False
        poc = msb + lsb
        if temporal_id(nal) == 0 and not (6 <= kind <= 9 or is_sub_layer_non_reference(kind)):
            self._prev_tid0 = poc
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
