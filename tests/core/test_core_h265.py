"""h265.py and the segmenter on H.265: NAL header, parameter sets, slice headers, SEI, POC, cuts.

Parameter sets and slice header bytes are real x265 output (192x112, 25 fps,
PyAV's libx265); two SPS come from another encoder, with the values the h265nal
project's tests read from them. Streams for the segmenter are made of such
units, so every cut decision is checked on bytes a real H.265 camera sends.
"""

from _support import h, raises

from segbind_core import h265, sei
from segbind_core.h264 import SEI_RECOVERY_POINT
from segbind_core.nal import START_CODE, annexb_units, to_annexb
from segbind_core.segment import UNDECIDED_UNITS, Segment, Segmenter, codec_of_unit, detect_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, decode_tag
from segbind_core.tagger import Tagger

VPS = h("40010c01ffff01600000030090000003000003001eba0240")
SPS = h("42010101600000030090000003000003001ea018207165ba924cae6808000003000800000300c840")
PPS = h("4401c172b46240")
# x265's interlaced SPS (interlace=tff): field_seq_flag 1, 25 fields per second
SPS_FIELDS = h("42010101600000030040000003000003001ea01820716595924932b9a1a000000300200000030321")
# x265 with ctu=16: 12x7 coding tree blocks, several slices per picture
SPS_CTU16 = h("42010101600000030090000003000003001ea018207165baabcae68080000003008000000c84")
PPS_CTU16 = h("4401c173d109")
IDR = h("2801af1d42b378b3a7a535df")         # IDR_N_LP, first slice segment
TRAIL = h("0201d0097e10c20ea11350af")       # TRAIL_R, first slice segment
TRAIL_2 = h("0201d011ffd443020e2110f0")
NEXT_SLICE = h("02014c2012fc21841c8b68ed")  # TRAIL_R, a slice segment that is not the first
CRA = h("2a01ac60590889c650b945b0")
RASL = h("1201e2c2255257d4204a8f76")
BLA = h("2001ac60590889c650b945b0")         # the CRA's slice as BLA_W_LP (same header syntax)
RECOVERY_SEI = h("4e010601d080")            # x265's recovery point (idr-recovery-sei=1)
USER_DATA_SEI = h("4e010514") + h("2ca2de09b51747dbbb55a4fe7fc2fc4e") + b"x265" + h("80")
SUFFIX_SEI = h("5001840d") + bytes(range(1, 14)) + h("80")  # decoded picture hash (type 40)
END_OF_SEQUENCE = h("4801")
AUD = h("460110")                           # an encoder's own AUD (pic_type 0: I slices)

# Two SPS of another encoder (h265nal's unit tests, NAL header added): a 1280x736 camera
# capture, and a 1920x1088 one with twelve short-term reference picture sets, nine of them
# predicted from the one before (inter_ref_pic_set_prediction_flag).
SPS_CAMERA = h("4201 010160000003 00b0000003000003005d a0028080 2e1f1396bb9324bb958283030176850940")
SPS_RPS = h("4201 01016000000000000000000099a003c0801107f96526491b61a588aa93130cbecfaf37e5"
            "9f5e1446272edac0ffff")


def units_of(data):
    return [data[s:e] for s, e in annexb_units(data)]


def kinds_of(data):
    return [h265.nal_type(u[0]) for u in units_of(data)]


def segments(units, **kw):
    seg = Segmenter(**kw)
    out = []
    for unit in units:
        out += seg.push_unit(unit, 1000)
    return [s for s in out + seg.finish() if isinstance(s, Segment)], seg


def test_nal_header_fields_and_unit_classes():
    assert h265.nal_type(VPS[0]) == h265.NAL_VPS and h265.nal_type(PPS[0]) == h265.NAL_PPS
    assert h265.nal_type(AUD[0]) == h265.NAL_AUD and h265.nal_type(CRA[0]) == h265.NAL_CRA
    assert h265.layer_id(h("4e01")) == 0 and h265.layer_id(h("4f09")) == 33
    assert h265.temporal_id(h("0201")) == 0 and h265.temporal_id(h("0003")) == 2
    assert [k for k in range(64) if h265.is_vcl(k)] == list(range(32))
    assert [k for k in range(64) if h265.is_irap(k)] == list(range(16, 24))
    assert [k for k in range(64) if h265.is_idr(k)] == [19, 20]
    assert [k for k in range(64) if h265.is_bla(k)] == [16, 17, 18]
    assert [k for k in range(64) if h265.is_rasl(k)] == [8, 9]
    assert [k for k in range(32) if h265.is_sub_layer_non_reference(k)] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert h265.first_slice_of_picture(TRAIL) and not h265.first_slice_of_picture(NEXT_SLICE)
    assert not h265.first_slice_of_picture(h("0201"))  # no slice header at all


def test_access_unit_openers_are_the_specs():
    # 7.4.2.4.4: AUD, VPS, SPS, PPS, prefix SEI, 41..44, 48..55 open an access unit;
    # end of sequence/bitstream, filler, suffix SEI, 45..47 and 56..63 do not.
    assert sorted(h265.AU_OPENERS) == [32, 33, 34, 35, 39, 41, 42, 43, 44] + list(range(48, 56))
    aud = h265.DELIMITER
    assert h265.nal_type(aud[0]) == h265.NAL_AUD and h265.layer_id(aud) == 0
    assert h265.temporal_id(aud) == 0 and aud[2] >> 5 == 2 and aud[2] & 0x1F == 0x10


def test_parameter_sets_of_x265():
    assert h265.parse_vps(VPS).vps_id == 0
    raises(ValueError, h265.parse_vps, h("40010c01fffe01"))  # vps_reserved_0xffff_16bits broken
    raises(ValueError, h265.parse_vps, SPS)
    info = h265.parse_sps(SPS)
    assert (info.sps_id, info.vps_id, info.width, info.height) == (0, 0, 192, 112)
    assert info.complete and info.fps == 25 and not info.field_seq
    assert info.log2_max_poc_lsb == 8 and info.max_num_reorder == 0 and info.pic_size_in_ctbs == 6
    fields = h265.parse_sps(SPS_FIELDS)
    assert fields.field_seq and fields.fps == 12.5  # 25 fields a second are 12.5 frames
    assert fields.max_num_reorder == 2
    assert h265.parse_sps(SPS_CTU16).pic_size_in_ctbs == 12 * 7
    pps = h265.parse_pps(PPS)
    assert (pps.pps_id, pps.sps_id, pps.dependent_slice_segments, pps.output_flag_present,
            pps.extra_slice_header_bits) == (0, 0, False, False, 0)
    assert h265.parse_pps_ids(PPS) == (0, 0)
    assert [h265.parameter_set_key(u) for u in (VPS, SPS, PPS)] == [(32, 0), (33, 0), (34, 0)]
    raises(ValueError, h265.parameter_set_key, IDR)
    raises(IndexError, h265.parse_sps, h("4201"))


def test_sps_of_another_encoder_with_predicted_reference_picture_sets():
    camera = h265.parse_sps(SPS_CAMERA)
    assert (camera.width, camera.height, camera.pic_size_in_ctbs) == (1280, 736, 920)
    assert camera.complete and camera.fps is None and camera.max_num_reorder == 0
    assert camera.st_rps == [([-1], [])]
    rps = h265.parse_sps(SPS_RPS)
    assert (rps.width, rps.height, rps.pic_size_in_ctbs, rps.max_num_reorder) == (1920, 1088, 510, 3)
    assert rps.complete and rps.log2_max_poc_lsb == 8
    # h265nal reads 12 sets; a predicted set carries one flag per picture of the set it is
    # predicted from, plus one: the sizes below follow from its flag counts (5, 4, 5, 5, 5,
    # 5, 5 for sets 1-7; 2 and 3 for sets 9 and 10) and its explicit sets 0, 8 and 11.
    sizes = [len(n) + len(p) for n, p in rps.st_rps]
    assert len(sizes) == 12
    assert sizes[:7] == [4, 3, 4, 4, 4, 4, 4] and sizes[8:10] == [1, 2] and sizes[11] == 0
    assert rps.st_rps[0] == ([-8, -10, -12, -16], []) and rps.st_rps[8] == ([-8], [])
    assert rps.st_rps[1] == ([-4, -6], [4])  # set 0 moved by +4: -8+4, -10+4 and +4 itself


def test_parameter_set_tracker_keeps_the_latest_of_each_id_in_decoding_order():
    params = h265.ParameterSets()
    assert not params.add(IDR) and len(params) == 0
    assert params.add(PPS) and params.sps_of_pps(0) is None  # PPS before its SPS
    assert params.add(SPS) and params.add(VPS) and len(params) == 3
    assert params.units() == [VPS, SPS, PPS]  # VPS, then SPS, then PPS
    assert params.sps_of_pps(0).width == 192 and params.sps_of_pps(1) is None
    assert params.add(SPS_FIELDS) and params.units() == [VPS, SPS_FIELDS, PPS]  # same id: replaced
    assert params.key(SPS) == (33, 0) and params.key(SPS_FIELDS) == (33, 0)
    assert not params.add(h("4201")) and params.units() == [VPS, SPS_FIELDS, PPS]


def test_slice_segment_header_start():
    params = h265.ParameterSets()
    header = h265.parse_slice_header(IDR, params)
    assert header.first_in_picture and not header.no_output_of_prior_pics
    assert header.pps_id == 0 and header.sps is None and header.poc_lsb is None  # SPS unknown
    for unit in (VPS, SPS, PPS):
        params.add(unit)
    header = h265.parse_slice_header(IDR, params)
    assert header.sps is not None and header.slice_type == 2 and header.poc_lsb == 0  # I, IDR
    header = h265.parse_slice_header(TRAIL, params)
    assert header.slice_type == 1 and header.poc_lsb == 1  # P, the picture after the IDR
    raises(ValueError, h265.parse_slice_header, PPS, params)
    small = h265.ParameterSets()
    for unit in (VPS, SPS_CTU16, PPS_CTU16):
        small.add(unit)
    header = h265.parse_slice_header(NEXT_SLICE, small)
    assert not header.first_in_picture and header.address == 24  # the third row of 12 blocks


class BitWriter:
    """Just enough to write slice headers for POC tests."""

    def __init__(self):
        self.bits = ""

    def u(self, n, value):
        for k in range(n - 1, -1, -1):
            self.bits += "1" if value >> k & 1 else "0"

    def ue(self, value):
        code = value + 1
        n = 0
        while code >> n > 1:
            n += 1
        self.u(n, 0)
        self.u(n + 1, code)

    def unit(self, header):
        bits = self.bits + "1"
        bits += "0" * (-len(bits) % 8)
        return header + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def picture(kind, poc_lsb, tid=0):
    w = BitWriter()
    w.u(1, 1)  # first_slice_segment_in_pic_flag
    if 16 <= kind <= 23:
        w.u(1, 0)  # no_output_of_prior_pics_flag
    w.ue(0)  # slice_pic_parameter_set_id
    w.ue(1)  # slice_type P
    if kind not in (19, 20):
        w.u(8, poc_lsb)  # log2_max_pic_order_cnt_lsb is 8 in x265's SPS
    return w.unit(bytes((kind << 1, tid + 1)))


def test_picture_order_count_follows_8_3_1():
    params = h265.ParameterSets()
    for unit in (VPS, SPS, PPS):
        params.add(unit)
    counter = h265.PocCounter(params)
    pocs = [counter.poc(u) for u in (
        picture(19, 0), picture(1, 100), picture(1, 200),
        picture(1, 40),         # lsb wrapped (200 - 40 >= 128): 256 + 40
        picture(0, 200, 1),     # a sub-layer picture (200 - 40 > 128: back to 0 + 200) ...
        picture(1, 100),        # ... that does not move prevTid0Pic: read against 296
        picture(21, 110),       # a CRA inside the stream continues the count
        picture(9, 105),        # its RASL_R picture: a reference, but not prevTid0Pic
        picture(1, 236),        # 236 - 110 <= 128 (against 105 it would be > 128)
        picture(20, 0),         # an IDR starts again
        picture(1, 3))]
    assert pocs == [0, 100, 200, 296, 200, 356, 366, 361, 492, 0, 3]
    first = h265.PocCounter(params)
    assert first.poc(picture(21, 40)) == 40  # a CRA that starts the stream: its lsb alone
    first.end_of_sequence()
    assert first.poc(picture(21, 200)) == 200  # after an end of sequence, a CRA starts afresh
    assert h265.PocCounter(h265.ParameterSets()).poc(TRAIL) is None  # unknown PPS


def test_sei_messages_and_recovery_points():
    assert h265.sei_messages(RECOVERY_SEI) == [(SEI_RECOVERY_POINT, h("d0"))]
    assert h265.has_recovery_point(RECOVERY_SEI)
    assert not h265.has_recovery_point(USER_DATA_SEI)
    assert h265.sei_payload_types(USER_DATA_SEI) == [5]
    two = h("4e01") + h("0514") + USER_DATA_SEI[4:-1] + h("0601d0") + h("80")
    assert h265.sei_payload_types(two) == [5, 6] and h265.has_recovery_point(two)
    assert not h265.has_recovery_point(h("5001") + RECOVERY_SEI[2:])  # a suffix SEI: no RAP
    assert [k for k, _ in h265.sei_messages(SUFFIX_SEI)] == [132]
    raises(h265.SeiError, h265.sei_messages, TRAIL)
    raises(h265.SeiError, h265.sei_messages, h("4e01 05 09 aa 80"))  # runs past the unit


def test_codec_of_a_unit_and_of_a_stream_head():
    h264_units = [h("6764001f"), h("09f0"), h("0605ff"), h("65888400"), h("68ee3c80"), h("419a")]
    assert [codec_of_unit(u) for u in h264_units] == [CODEC_H264] * 6
    h265_units = [VPS, SPS, PPS, AUD, USER_DATA_SEI, IDR, CRA, BLA, h("2601af")]
    assert [codec_of_unit(u) for u in h265_units] == [CODEC_H265] * 9
    # H.265 slices that are not IRAP pictures could be an H.264 PPS with a large id: no answer
    assert [codec_of_unit(u) for u in (TRAIL, RASL, h("0001e0"), h("65"), h("e501"))] == [0] * 5
    assert detect_codec(to_annexb([VPS, SPS])) == CODEC_H265
    assert detect_codec(to_annexb([TRAIL, TRAIL_2, CRA])) == CODEC_H265
    assert detect_codec(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x67") == CODEC_H264
    assert detect_codec(to_annexb([TRAIL])) == 0 and detect_codec(b"\x00\x00\x01\x46") == 0
    assert detect_codec(to_annexb([TRAIL] * UNDECIDED_UNITS + [VPS])) == CODEC_H264


def test_cuts_at_every_irap_picture_and_carries_vps_sps_pps():
    stream = [VPS, SPS, PPS, USER_DATA_SEI, IDR, TRAIL, TRAIL_2, CRA, RASL, TRAIL, BLA, TRAIL]
    segs, seg = segments(stream, delimit=True)
    assert seg.codec == CODEC_H265 and [s.codec for s in segs] == [CODEC_H265] * 3
    assert [(s.pictures, s.rap) for s in segs] == [(3, True), (3, True), (2, True)]
    assert kinds_of(segs[0].data) == [35, 32, 33, 34, 39, 20, 35, 1, 35, 1]
    # Later segments get the parameter sets in force, after their delimiter, in decoding order.
    assert kinds_of(segs[1].data) == [35, 32, 33, 34, 21, 35, 9, 35, 1]
    assert kinds_of(segs[2].data) == [35, 32, 33, 34, 16, 35, 1]
    assert units_of(segs[2].data)[:4] == [h265.DELIMITER, VPS, SPS, PPS]
    assert all(s.duration_ms == 40 * s.pictures for s in segs)  # 25 fps from the SPS
    assert not any(s.tagged for s in segs)


def test_a_recovery_point_cuts_and_a_suffix_sei_stays_with_its_picture():
    stream = [VPS, SPS, PPS, IDR, TRAIL, SUFFIX_SEI, RECOVERY_SEI, TRAIL_2, TRAIL, END_OF_SEQUENCE,
              h("5001") + RECOVERY_SEI[2:], TRAIL]
    segs, _ = segments(stream)
    assert [(s.pictures, s.rap) for s in segs] == [(2, True), (3, True)]
    assert kinds_of(segs[0].data) == [32, 33, 34, 20, 1, 40]  # the suffix SEI closes its picture
    # The recovery point opens the next segment; parameter sets go before it; the end of
    # sequence and a suffix SEI (with a recovery point message) belong to the picture before.
    assert kinds_of(segs[1].data) == [32, 33, 34, 39, 1, 1, 36, 40, 1]


def test_delimiters_inserted_only_where_the_encoder_wrote_none():
    segs, _ = segments([AUD, VPS, SPS, PPS, IDR, TRAIL, AUD, TRAIL_2], delimit=True)
    units = units_of(segs[0].data)
    assert [u for u in units if h265.nal_type(u[0]) == 35] == [AUD, h265.DELIMITER, AUD]
    assert units[:2] == [AUD, VPS]


def test_without_irap_pictures_the_duration_bound_cuts():
    segs, seg = segments([VPS, SPS, PPS, IDR] + [TRAIL] * 59, max_duration_s=1.0)
    assert [(s.pictures, s.rap) for s in segs] == [(25, True), (25, False), (10, False)]
    assert seg.fps == 25 and [s.duration_ms for s in segs] == [1000, 1000, 400]
    assert all(kinds_of(s.data)[:3] == [32, 33, 34] for s in segs)


def test_field_pictures_count_as_halves_of_frames():
    segs, seg = segments([VPS, SPS_FIELDS, PPS, IDR] + [TRAIL] * 29 + [IDR] + [TRAIL] * 9,
                         max_duration_s=1.0)
    assert seg.fps == 12.5  # frames: 25 fields a second
    # Never cut between two fields of a frame: 26 fields, then the 4 left before the IDR.
    assert [(s.fields, s.pictures, s.duration_ms) for s in segs] == [
        (26, 13, 1040), (4, 2, 160), (10, 5, 400)]


def test_the_codec_is_read_from_the_stream_or_given():
    # Units that do not tell the codec are held, in order, until one does.
    segs, seg = segments([TRAIL, TRAIL_2, VPS, SPS, PPS, CRA, TRAIL])
    assert seg.codec == CODEC_H265 and [(s.pictures, s.rap) for s in segs] == [(2, False), (2, True)]
    assert units_of(segs[0].data) == [TRAIL, TRAIL_2]
    segs, seg = segments([TRAIL, TRAIL_2, TRAIL])  # never told: H.264, as segbind always read
    assert seg.codec == CODEC_H264 and b"".join(s.data for s in segs) == to_annexb([TRAIL, TRAIL_2, TRAIL])
    segs, seg = segments([TRAIL, TRAIL_2, TRAIL], codec=CODEC_H265)
    assert seg.codec == CODEC_H265 and [s.pictures for s in segs] == [3]
    h264_idr = [h("6764000aacb6"), h("68ee3cb0"), h("65888400"), h("419a"), h("65888400")]
    segs, seg = segments(h264_idr)
    assert seg.codec == CODEC_H264 and [s.codec for s in segs] == [CODEC_H264] * 2
    raises(ValueError, Segmenter, 4.0, None, False, 3)


def test_a_held_unit_keeps_a_cut_pending():
    seg = Segmenter()
    assert seg.push(to_annexb([TRAIL, TRAIL_2]) + START_CODE) == []
    assert seg.codec == 0 and seg.in_progress
    assert seg.cut() == [] and seg.cut_pending
    out = seg.push(to_annexb([VPS, SPS, PPS, IDR])) + seg.finish()
    assert [type(s).__name__ for s in out] == ["Segment", "_CutMarker", "Segment"]


def test_a_picture_begun_before_a_cut_joins_the_segment_in_progress():
    """A cut waiting to take effect closes one segment, the one in progress, also when a picture
    begun before the cut (an IRAP that would open a segment) completes after it: a rotation's
    result says where the new epoch begins, one segment on."""
    seg = Segmenter()
    assert seg.push(to_annexb([VPS, SPS, PPS, IDR, TRAIL])) == []
    head = to_annexb([VPS, SPS, PPS, IDR])
    assert seg.push(head[:-4]) == []  # the next IRAP picture's first slice, half read
    assert seg.in_progress and seg.cut() == [] and seg.cut_pending
    out = seg.push(head[-4:] + to_annexb([TRAIL])) + seg.finish()  # it completes; a picture after the cut
    assert [type(s).__name__ for s in out] == ["Segment", "_CutMarker", "Segment"]
    assert (out[0].pictures, out[2].pictures) == (3, 1)


def test_an_h265_segment_is_tagged_after_its_delimiter():
    from segbind_core.keys import Epoch

    segs, _ = segments([VPS, SPS, PPS, USER_DATA_SEI, IDR, TRAIL], delimit=True)
    raw = segs[0]
    epoch = Epoch.of_pairing(bytes(range(32)), "alice", "cam-1", 1, [])
    tagged, tag = Tagger(epoch, 7, codec=raw.codec).tag(raw.data, raw.units, 5, raw.duration_ms,
                                                       raw.pictures)
    units = units_of(tagged)
    assert units[0] == h265.DELIMITER and units[1][:2] == h("4e01")
    assert sei.tag_codec(units[1]) == CODEC_H265 and decode_tag(sei.segbind_payload(units[1]))[0].codec == 2
    assert tagged.replace(START_CODE + units[1], b"") == raw.data and tag.units == raw.units == 8
    # The segmenter sees a segment that already holds a tag, in either codec's SEI.
    again, _ = segments(units)
    assert again[0].tagged


def test_temporal_layers_get_their_own_delimiters_and_no_cut():
    # TRAIL_N pictures of temporal id 1 (x265 --temporal-layers): their AUD has that temporal
    # id, and a VPS or SPS may not go into their access units, so the bound waits for layer 0.
    upper = h("0002") + TRAIL[2:]
    segs, _ = segments([VPS, SPS, PPS, IDR] + [upper, TRAIL] * 20, max_duration_s=0.2, delimit=True)
    assert [s.pictures for s in segs] == [6, 6, 6, 6, 6, 6, 5]  # 5 frames, and the one of layer 1 after
    for s in segs:
        us = units_of(s.data)
        first = next(u for u in us if h265.is_vcl(h265.nal_type(u[0])))
        assert h265.temporal_id(first) == 0
        for i, u in enumerate(us):
            if h265.nal_type(u[0]) == h265.NAL_AUD:
                assert us[i + 1][1] == (u[1] if h265.is_vcl(h265.nal_type(us[i + 1][0])) else 1)
    assert h("460250") in units_of(segs[0].data) and h("460150") in units_of(segs[0].data)
