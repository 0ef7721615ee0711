"""h265.py and the segmenter on H.265: NAL header, parameter sets, slice headers, SEI, POC, cuts.

Parameter sets and slice header bytes are real x265 output (192x112, 25 fps,
PyAV's libx265); two SPS come from another encoder, with the values the h265nal
project's tests read from them. Streams for the segmenter are made of such
units, so every cut decision is checked on bytes a real H.265 camera sends.
"""

from _support import h, raises
from _syntax_writer import EXPLICIT, H265_HEADER_CASES, H265Stream, stored_bytes

from segbind_core import h265, sei
from segbind_core.h264 import SEI_RECOVERY_POINT
from segbind_core.nal import START_CODE, annexb_units, to_annexb, unescape_rbsp
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


# Real units of libx265 (64x32, coding tree blocks of 16, WPP, 2 slices a picture, open GOP,
# B-frames) and where FFmpeg's trace_headers says each slice's data begins (bits, NAL header
# included).
TINY_VPS = h("40010c01ffff01600000030090000003000003001e959409")
TINY_SPS = h("42010101600000030090000003000003001ea020821659596af2bc05a02000000300200000030321")
TINY_PPS = h("4401c173d109")
TINY_SLICES = [
    (h("280131e3b0f00d8ea37aaeb37f17afd9e44dae74c4fbaa6beead77692553f96af0f086688c09b1dc0868fe6b9f2ccd4d"
       "009b09c1526e22a61496247e5e346e83901cda3f31845367b545d42c7fc2a35426"), 40),  # IDR_N_LP, 2nd slice
    (h("0201d0115784318ec0f98af8"), 72),  # TRAIL_R
    (h("0001e024bf8614c08c6a"), 64),  # TRAIL_N
    (h("2a0131831c84e330eff15aeeb1d983fe266fe0ed4f90c931e96a2810ab9572ddf706362624ff2484b46c2193bdf8d7"
       "247934e6755ced59061a018ef549312e670e37c3b430f1f81cc9a8a50bd3619cc5b2b95cb0"), 64),  # CRA, 2nd slice
    (h("1201e0869557d4612cdaf1fff9ae3f701094b0e1ff64f1f7e6d013ed33fd369d"), 72),  # RASL_R
    (h("12016410d2aafa8c25808dce"), 80),  # its second slice
    (h("1001e066f5d7d22c2980332fbf60"), 80),  # RASL_N
]


def tiny_params():
    params = h265.ParameterSets()
    for unit in (TINY_VPS, TINY_SPS, TINY_PPS):
        assert params.add(unit)
    return params


def test_slice_segment_headers_of_x265():
    params = h265.ParameterSets()
    raises(h265.SliceHeaderError, h265.parse_slice_header, IDR, params)  # unknown PPS
    params.add(PPS)
    e = raises(h265.SliceHeaderError, h265.parse_slice_header, IDR, params)
    assert "unknown SPS 0" in str(e) and isinstance(e, ValueError)
    raises(h265.SliceHeaderError, h265.parse_slice_header, PPS, params)  # not a slice segment
    params = tiny_params()
    for unit, end in TINY_SLICES:
        header = h265.parse_slice_header(unit, params)
        assert header.header_bits == end, (unit[:4], header.header_bits, end)
        assert header.header_bytes == end // 8
    sps = params.sps[0][0]
    assert sps.unsupported == "" and sps.sample_adaptive_offset and sps.temporal_mvp
    assert (sps.pic_size_in_ctbs, sps.pic_height_in_ctbs, sps.max_dec_pic_buffering) == (8, 2, 5)
    pps = params.pps[0][0]
    assert pps.unsupported == "" and pps.entropy_coding_sync and not pps.tiles
    idr = h265.parse_slice_header(TINY_SLICES[0][0], params)
    assert not idr.first_in_picture and idr.address == 4 and idr.slice_type == h265.SLICE_I
    assert idr.poc_lsb == 0 and idr.num_entry_points == 0 and not idr.dependent
    trail = h265.parse_slice_header(TINY_SLICES[1][0], params)
    assert trail.first_in_picture and trail.slice_type == h265.SLICE_P and trail.poc_lsb == 2  # trace_headers' values
    assert trail.num_entry_points == 0 and trail.st_rps_idx is None and trail.st_rps == ([-2], [])
    assert trail.num_pic_total_curr == 1 and trail.temporal_mvp and trail.sao_luma
    rasl = h265.parse_slice_header(TINY_SLICES[4][0], params)
    assert rasl.nal_unit_type == h265.NAL_RASL_R and rasl.temporal_id == 0 and rasl.poc_lsb == 4


def stream_params(stream):
    params = h265.ParameterSets()
    for unit in (stream.vps(), stream.sps(), stream.pps()):
        assert params.add(unit), unit.hex()
    return params


def test_slice_segment_headers_end_where_the_writer_ended_them():
    for settings, fields in H265_HEADER_CASES:
        stream = H265Stream(**settings)
        params = stream_params(stream)
        fields = dict(fields)
        kind = fields.pop("kind")
        unit, bits = stream.slice(kind, **fields)
        header = h265.parse_slice_header(unit, params)
        assert header.header_bits == bits, (settings, fields, header.header_bits, bits)
        assert header.header_bytes == stored_bytes(unit, bits), (settings, fields)
        assert header.dependent == fields.get("dependent", False)
        assert header.address == fields.get("address", 0)
        assert header.num_entry_points == len(fields.get("entry_points", ()))
        assert header.extension_length == len(fields.get("extension", b""))
        if header.dependent:
            assert header.slice_type is None and header.poc_lsb is None
            continue
        assert header.slice_type == kind and header.pic_output_flag == bool(fields.get("output", 1))
        assert header.num_long_term == len(fields.get("long_term", ()))
        assert header.temporal_id == fields.get("tid", 0)


def test_reference_picture_sets_and_the_pictures_a_slice_may_use():
    rps = h265.parse_sps(SPS_RPS)
    assert rps.st_rps_used[0] == 4 and len(rps.st_rps_used) == 12
    stream = H265Stream(st_rps=(EXPLICIT, ("predicted", 1, 1, [(1, 1), (1, 1), (0, 0), (1, 1)])),
                        long_term=[(7, 1), (9, 0)], max_dec_pic_buffering=8)
    params = stream_params(stream)
    sps = params.sps[0][0]
    # set 1: set 0 (-1, -3, +2) moved by +1: 0 (never a reference), -2, +3 (its flags drop it),
    # and +1 (the reference picture itself)
    assert sps.st_rps == [([-1, -3], [2]), ([-2], [1])] and sps.st_rps_used == [2, 2]
    assert sps.lt_ref_pics_used == [1, 0] and sps.long_term_ref_pics_present
    header = h265.parse_slice_header(stream.slice(1, rps_idx=1, long_term=(("sps", 0, None), ("sps", 1, None)))[0],
                                     params)
    assert header.st_rps_idx == 1 and header.st_rps == ([-2], [1]) and header.num_pic_total_curr == 3
    # a set of the header predicted from the SPS's set 0, moved by -1: -2, -4 (kept, unused), +1,
    # and -1 (the reference picture itself)
    header = h265.parse_slice_header(stream.slice(0, rps=("predicted", 2, -1, [(1, 1), (0, 1), (1, 1), (1, 1)]))[0],
                                     params)
    assert header.st_rps == ([-1, -2, -4], [1]) and header.num_pic_total_curr == 3


def test_unreadable_slice_segment_headers_raise():
    def header_of(settings, kind, **fields):
        stream = H265Stream(**settings)
        return stream.slice(kind, **fields)[0], stream_params(stream)

    explicit = ("explicit", [(-1, 1)], [])
    cases = [
        header_of({}, 3, nal_type=19),  # slice_type 3
        header_of({}, 1, nal_type=19),  # an IRAP picture of P slices
        header_of({}, 2, nal_type=19, tid=1),  # an IRAP picture in a sub-layer
        header_of({}, 1, nal_type=2, rps=("explicit", [(-1, 1)], [])),  # a TSA picture in sub-layer 0
        header_of({}, 2, nal_type=22),  # reserved IRAP type
        header_of({"width": 48}, 2, nal_type=19, first=False, address=6),  # 6 coding tree blocks: 0-5
        header_of({}, 1, rps=("explicit", [(-1, 0)], [])),  # a P slice that may use no picture
        header_of({}, 1, rps=explicit, l0=16),
        header_of({}, 1, rps=("explicit", [(-1, 1)] * 6, [])),  # 6 pictures in a DPB of 6 with the current
        header_of({"st_rps": (EXPLICIT,)}, 1, rps=("predicted", 2, 1, [(1, 1)] * 4)),  # from set -1
        header_of({"l0_default": 2}, 1, rps=explicit, collocated=(1, 2)),
        header_of({}, 1, rps=explicit, merge=0),
        header_of({}, 1, rps=explicit, qp_delta=26),
        header_of({"slice_chroma_qp_offsets_present": 1}, 1, rps=explicit, chroma_offsets=(13, 0)),
        header_of({"deblocking": (1, 0)}, 1, rps=explicit, deblocking=(0, 7, 0)),
        header_of({"entropy_coding_sync": 1}, 2, nal_type=19, entry_points=(1, 2)),  # 2 rows: 1 entry point
        header_of({"entropy_coding_sync": 1}, 2, nal_type=19, entry_points=(1,), offset_len=33),
        header_of({"header_extension_present": 1}, 2, nal_type=19, extension=bytes(257)),
        header_of({"long_term": [(7, 1)]}, 1, rps=explicit, long_term=(("sps", 1, None), ("sps", 0, None))),
        header_of({"long_term": [(7, 1), (8, 1), (9, 0)], "max_dec_pic_buffering": 8}, 1, rps=explicit,
                  long_term=(("sps", 3, None),)),  # lt_idx_sps 3 of 3
        header_of({"pps_scc": 1}, 2, nal_type=19),
        header_of({"sps_scc": 1}, 2, nal_type=19),
        header_of({"pps_multilayer": 1}, 2, nal_type=19),
        header_of({"weighted_pred": 1}, 1, rps=explicit, weights=([(1, 1)],), data=b""),  # runs past the unit
    ]
    for number, (unit, params) in enumerate(cases):
        try:
            h265.parse_slice_header(unit, params)
        except h265.SliceHeaderError:
            continue
        raise AssertionError("case %d was read" % number)
    stream = H265Stream()
    params = stream_params(stream)
    unit, bits = stream.slice(2, nal_type=19)
    assert h265.parse_slice_header(unit, params).header_bits == bits
    bad = bytearray(unit)
    bad[bits // 8 - 1] ^= 1  # the last alignment_bit_equal_to_zero
    e = raises(h265.SliceHeaderError, h265.parse_slice_header, bytes(bad), params)
    assert "alignment_bit_equal_to_zero" in str(e)
    # the stop bit at once, and cabac_zero_words after it (stored as 00 00 03 ...)
    for data in (b"\x00", b"\x80", b"\x80\x00\x00", b"\x80" + bytes(120)):
        e = raises(h265.SliceHeaderError, h265.parse_slice_header, stream.slice(2, nal_type=19, data=data)[0], params)
        assert "no slice data" in str(e)
    for data in (b"\x01", b"\x00\x00\x01", bytes(7) + b"\x80" + bytes(120)):  # a bit of data, or more
        assert h265.parse_slice_header(stream.slice(2, nal_type=19, data=data)[0], params).header_bits == bits
    layered = bytes((unit[0] | 1,)) + unit[1:]
    raises(h265.SliceHeaderError, h265.parse_slice_header, layered, params)  # nuh_layer_id 32
    raises(h265.SliceHeaderError, h265.parse_slice_header, unit[:2], params)


def test_header_bytes_count_emulation_prevention_inside_the_header():
    stream = H265Stream(log2_max_poc_lsb=16, header_extension_present=1)
    params = stream_params(stream)
    for fields in (dict(poc_lsb=1, extension=bytes(4)), dict(poc_lsb=256, extension=h("000001000002"))):
        unit, bits = stream.slice(1, rps=("explicit", [(-1, 1)], []), **fields)
        header = h265.parse_slice_header(unit, params)
        prefix = unit[:header.header_bytes]
        assert h("000003") in prefix and header.header_bits == bits
        assert len(unescape_rbsp(prefix)) * 8 == bits and len(unescape_rbsp(prefix[:-1])) * 8 < bits


def test_picture_order_counts_runs_and_pictures_not_output():
    stream = H265Stream(log2_max_poc_lsb=4, output_flag_present=1)
    params = stream_params(stream)
    counter = h265.PocCounter(params)
    one = ("explicit", [(-1, 1)], [])
    pictures = [
        dict(kind=2, nal_type=21, rps=("explicit", [], []), poc_lsb=3),  # a CRA starts the stream: 3
        dict(kind=1, nal_type=9, rps=one, poc_lsb=1),                  # its RASL pictures: not output
        dict(kind=1, nal_type=8, rps=one, poc_lsb=2),
        dict(kind=1, nal_type=7, rps=one, poc_lsb=0),                  # a RADL picture is
        dict(kind=1, nal_type=1, rps=one, poc_lsb=6),
        dict(kind=1, nal_type=1, rps=one, poc_lsb=12, output=0),       # pic_output_flag 0
        dict(kind=1, nal_type=1, rps=one, poc_lsb=2),                  # 12 -> 2 wraps: 18
        dict(kind=2, nal_type=21, rps=one, poc_lsb=5),                 # a CRA inside: 21, same run
        dict(kind=1, nal_type=9, rps=one, poc_lsb=4),                  # its RASL picture is output
        "end of sequence",
        dict(kind=2, nal_type=21, rps=("explicit", [], []), poc_lsb=7),  # after it, a CRA restarts: 7
        dict(kind=1, nal_type=8, rps=one, poc_lsb=6),                  # not output
        dict(kind=2, nal_type=16, rps=("explicit", [], []), poc_lsb=9),  # a BLA restarts: 9
        dict(kind=2, nal_type=20),                                     # an IDR: 0
        dict(kind=1, nal_type=1, rps=one, poc_lsb=1),
    ]
    pocs, keys = [], []
    for fields in pictures:
        if fields == "end of sequence":
            counter.end_of_sequence()
            continue
        fields = dict(fields)
        kind = fields.pop("kind")
        pocs.append(counter.count(h265.parse_slice_header(stream.slice(kind, **fields)[0], params)))
        keys.append(counter.order_key)
    assert pocs == [3, 1, 2, 0, 6, 12, 18, 21, 20, 7, 6, 9, 0, 1]
    assert keys == [(0, 3), None, None, (0, 0), (0, 6), None, (0, 18), (0, 21), (0, 20), (1, 7), None,
                    (2, 9), (3, 0), (3, 1)]
    assert h265.output_ranks(keys) == [1, None, None, 0, 2, None, 3, 5, 4, 6, None, 7, 8, 9]
    assert counter.sps is params.sps[0][0]
    dependent = H265Stream(dependent_slice_segments=1)
    unit = dependent.slice(1, first=False, address=2, dependent=True)[0]
    header = h265.parse_slice_header(unit, stream_params(dependent))
    raises(h265.SliceHeaderError, counter.count, header)  # a dependent slice segment has no order
    assert h265.PocCounter(stream_params(dependent)).poc(unit) is None


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
