"""h264.py: NAL header, parameter sets, slice headers, SEI messages (one home for H.264 syntax)."""

from _support import h, raises
from _syntax_writer import H264_HEADER_CASES, B, BitWriter, H264Stream, I, P, stored_bytes

from segbind_core import h264
from segbind_core.nal import escaped_length

# A real SPS and PPS from libx264 through PyAV (192x112, 25 fps, no B-frames: POC type 2),
# and the first bytes of its IDR slice.
SPS = h("6764100bacb861f42000000300200000064080")
PPS = h("68ee0fcb")
IDR = h("65888417ffa975067e08")


def test_nal_type_and_vcl():
    assert h264.nal_type(0x65) == h264.NAL_IDR
    assert h264.nal_type(0x06) == h264.NAL_SEI
    assert h264.nal_type(0x67) == h264.NAL_SPS
    assert h264.nal_type(0xE8) == h264.NAL_PPS
    assert [k for k in range(32) if h264.is_vcl(k)] == [1, 2, 3, 4, 5]


def test_first_slice_of_picture_reads_the_first_bit_of_first_mb_in_slice():
    assert h264.first_slice_of_picture(h("6588"))      # ue(v) 0 is the single bit 1
    assert not h264.first_slice_of_picture(h("6540"))  # first_mb_in_slice = 1
    assert not h264.first_slice_of_picture(h("65"))    # no slice header at all


def test_bit_reader_exp_golomb():
    bits = h264.BitReader(h("a6 42"))  # 1 010 011 0 0100 0010: ue 0, 1, 2; then 0 bit; 4 bits 4
    assert [bits.ue(), bits.ue(), bits.ue()] == [0, 1, 2]
    assert bits.u(1) == 0 and bits.u(4) == 4
    e = raises(IndexError, h264.BitReader(b"").u, 1)
    assert e is not None
    assert [h264.BitReader(h(x)).se() for x in ("40", "60", "20")] == [1, -1, 2]


def test_sps_and_pps_ids_and_the_tracker():
    info = h264.parse_sps(SPS)
    assert info.sps_id == 0 and info.complete and info.poc_type == 2 and info.frame_mbs_only
    assert info.fps == 25
    assert h264.parse_pps_ids(PPS) == (0, 0)
    assert h264.parameter_set_key(SPS) == (7, 0) and h264.parameter_set_key(PPS) == (8, 0)
    raises(ValueError, h264.parameter_set_key, h("6588"))
    params = h264.ParameterSets()
    assert not params.add(h("6588")) and len(params) == 0
    assert params.add(PPS) and params.sps_of_pps(0) is None  # PPS before its SPS
    assert params.add(SPS) and len(params) == 2
    assert params.sps_of_pps(0).sps_id == 0 and params.sps_of_pps(1) is None
    assert params.units() == [SPS, PPS]
    assert not params.add(h("67"))  # unreadable: ignored, the old one stays
    assert params.units() == [SPS, PPS]


# Real units of libx264 (32x32, CABAC, 2 slices a picture, B-pyramid, weightp=2) and where
# FFmpeg's trace_headers says each slice's data begins (bits, NAL header included).
TINY_SPS = h("6764000aacd9496c0440000003004000000c83c4896580")
TINY_PPS = h("68ebe3cb22c0")
TINY_SLICES = [
    (h("6562210027ec445804749ff676388ca78e7188f9cf3690645f0a9abdb87e591ff12b48e0fe5504ec04ed2c6b"
       "033487773b527f00b3f552dfd79a368ec4d678a62b06f68c0cbbd9157a8680df81"), 40),  # IDR, 2nd slice
    (h("419a236c477f9080"), 48),  # P
    (h("019e626a42dfdd80"), 48),  # B, not a reference
    (h("419a6649a84168994c08efc437fdc386cebf821fd1ef81f0e1283af3c2450f84fa3a5a911b96d67362af5c"
       "fa00c09f62716aaafbdc7e69a77ab20d1ccdbf71"), 88),  # P with a weight table
    (h("416699926a105a2653022bff7ec1"), 96),  # its second slice
    (h("419e8445112c2dfff86da1"), 64),  # B used as a reference (B-pyramid)
]


def tiny_params():
    params = h264.ParameterSets()
    assert params.add(TINY_SPS) and params.add(TINY_PPS)
    return params


def test_slice_header_against_its_parameter_sets():
    params = h264.ParameterSets()
    raises(h264.SliceHeaderError, h264.parse_slice_header, TINY_SLICES[1][0], params)  # unknown PPS
    params.add(TINY_PPS)
    e = raises(h264.SliceHeaderError, h264.parse_slice_header, TINY_SLICES[1][0], params)
    assert "unknown SPS 0" in str(e) and isinstance(e, ValueError)
    params.add(TINY_SPS)
    for unit, end in TINY_SLICES:
        header = h264.parse_slice_header(unit, params)
        assert header.header_bits == end, (unit[:4], header.header_bits, end)
        assert header.header_bytes == end // 8  # CABAC: a byte boundary, no emulation prevention here
        assert header.sps is params.sps[0][0] and header.pps is params.pps[0][0]
    idr = h264.parse_slice_header(TINY_SLICES[0][0], params)
    assert idr.idr and idr.nal_ref_idc == 3 and idr.slice_kind == h264.SLICE_I and idr.first_mb_in_slice == 2
    assert not idr.first_in_picture and idr.frame_num == 0 and idr.poc_lsb == 0
    p = h264.parse_slice_header(TINY_SLICES[3][0], params)
    assert p.slice_type == 5 and p.slice_kind == h264.SLICE_P and p.first_in_picture
    assert p.num_ref_idx_l0_active == 4 and p.poc_lsb == 12 and not p.mmco5  # trace_headers' values
    b = h264.parse_slice_header(TINY_SLICES[5][0], params)
    assert b.slice_kind == h264.SLICE_B and b.nal_ref_idc == 2 and b.direct_spatial_mv_pred
    assert [h264.parse_slice_header(u, params).nal_ref_idc for u, _ in TINY_SLICES] == [3, 2, 0, 2, 2, 2]
    # a CAVLC SPS/PPS of libx264 (192x112, no B-frames: POC type 2)
    info = h264.parse_sps(SPS)
    assert info.poc_type == 2 and info.pic_width_in_mbs == 12 and info.pic_height_in_map_units == 7
    assert h264.parse_pps(PPS).entropy_coding_mode  # x264's high profile: CABAC


def test_parameter_set_fields_slice_headers_need():
    sps = h264.parse_sps(TINY_SPS)
    assert (sps.profile_idc, sps.chroma_array_type, sps.log2_max_frame_num, sps.poc_type) == (100, 1, 4, 0)
    assert (sps.log2_max_poc_lsb, sps.max_num_ref_frames, sps.frame_mbs_only) == (6, 4, True)
    pps = h264.parse_pps(TINY_PPS)
    assert pps.complete and pps.entropy_coding_mode and pps.weighted_pred and pps.weighted_bipred_idc == 2
    assert (pps.num_ref_idx_l0_default_active, pps.num_ref_idx_l1_default_active) == (3, 1)
    assert pps.deblocking_filter_control_present and not pps.redundant_pic_cnt_present
    assert pps.num_slice_groups == 1 and pps.pic_init_qp == 26 - 3
    stream = H264Stream(poc_type=1, offset_for_non_ref_pic=-3, offset_for_top_to_bottom_field=1,
                        offsets_for_ref_frame=(2, 4, -1), frame_mbs_only=0, slice_groups=3,
                        slice_group_map_type=5, slice_group_change_rate=3, redundant_pic_cnt_present=1)
    sps = h264.parse_sps(stream.sps())
    assert sps.complete and sps.poc_type == 1 and not sps.delta_pic_order_always_zero
    assert (sps.offset_for_non_ref_pic, sps.offset_for_top_to_bottom_field) == (-3, 1)
    assert sps.offsets_for_ref_frame == [2, 4, -1] and not sps.frame_mbs_only and not sps.mb_adaptive_frame_field
    pps = h264.parse_pps(stream.pps())
    assert (pps.num_slice_groups, pps.slice_group_map_type, pps.slice_group_change_rate) == (3, 5, 3)
    assert pps.redundant_pic_cnt_present and not pps.entropy_coding_mode
    assert not h264.parse_sps(H264Stream(poc_type=3).sps()).complete  # out of range: unusable
    assert h264.parse_pps(h("68ce")).pps_id == 0 and not h264.parse_pps(h("68ce")).complete  # ids only


def test_slice_headers_end_where_the_writer_ended_them():
    for settings, fields in H264_HEADER_CASES:
        stream = H264Stream(**settings)
        params = h264.ParameterSets()
        assert params.add(stream.sps()) and params.add(stream.pps())
        fields = dict(fields)
        kind = fields.pop("kind")
        unit, bits = stream.slice(kind, **fields)
        header = h264.parse_slice_header(unit, params)
        assert header.header_bits == bits, (settings, fields, header.header_bits, bits)
        assert header.header_bytes == stored_bytes(unit, bits), (settings, fields)
        assert header.slice_kind == kind and header.idr == fields.get("idr", False)
        assert header.frame_num == fields.get("frame_num", 0)
        assert header.field_pic == ("field" in fields) and header.bottom_field == (fields.get("field") == "bottom")
        assert header.mmco5 == ((5,) in fields.get("mmcos", ()))
        assert header.adaptive_ref_pic_marking == bool(fields.get("mmcos"))
        assert header.long_term_reference == bool(fields.get("long_term_reference"))
        assert header.redundant_pic_cnt == fields.get("redundant_pic_cnt", 0)
        assert header.slice_group_change_cycle == fields.get("change_cycle", 0)
        assert header.colour_plane_id == fields.get("colour_plane", 0)
        if stream.s["poc_type"] == 0:
            assert header.poc_lsb == fields.get("poc_lsb", 0)
            assert header.delta_poc_bottom == fields.get("delta_bottom", 0)
        else:
            assert header.poc_lsb is None
            assert (header.delta_poc_0, header.delta_poc_1) == (fields.get("delta0", 0), fields.get("delta1", 0))
        if "l0" in fields:
            assert header.num_ref_idx_l0_active == fields["l0"]
        if "deblocking" in fields:
            assert (header.disable_deblocking_filter_idc, header.slice_alpha_c0_offset_div2,
                    header.slice_beta_offset_div2) == fields["deblocking"]


def test_header_bytes_count_emulation_prevention_inside_the_header():
    # frame_num and pic_order_cnt_lsb of 16 bits, both 0: the header holds 00 00 0x runs
    stream = H264Stream(log2_max_frame_num=16, log2_max_poc_lsb=16)
    params = h264.ParameterSets()
    params.add(stream.sps())
    params.add(stream.pps())
    for fields in (dict(kind=P), dict(kind=P, frame_num=512, poc_lsb=1), dict(kind=I, poc_lsb=3)):
        kind = fields.pop("kind")
        unit, bits = stream.slice(kind, **fields)
        header = h264.parse_slice_header(unit, params)
        assert b"\x00\x00\x03" in unit[:header.header_bytes]  # escaped inside the header
        assert header.header_bits == bits and header.header_bytes == stored_bytes(unit, bits)
        assert header.header_bytes > (bits + 7) // 8
    assert escaped_length(h("0000030000030000"), 4) == 5  # 00 00 03 00 | 00 03 ...: one 03 inside
    assert escaped_length(h("0000030000030000"), 5) == 7  # the second 03 precedes the fifth byte
    assert escaped_length(h("000003"), 2) == 2  # an 03 right after the last byte is not counted


def test_unreadable_slice_headers_raise():
    def header_of(settings, kind, **fields):
        stream = H264Stream(**settings)
        params = h264.ParameterSets()
        params.add(stream.sps())
        params.add(stream.pps())
        return stream.slice(kind, **fields)[0], params

    cases = [
        header_of({}, P, frame_num=1, type_offset=5 + 10),  # slice_type 10
        header_of({}, P, idr=True),  # an IDR picture of P slices
        header_of({}, I, idr=True, frame_num=1),  # IDR with frame_num 1
        header_of({}, I, idr=True, ref_idc=0),  # IDR with nal_ref_idc 0
        header_of({}, I, idr=True, idr_pic_id=65536),
        header_of({}, P, first_mb=4),  # past the picture's 4 macroblocks
        header_of({}, P, frame_num=1, l0=17),  # 17 references for a frame
        header_of({}, P, frame_num=1, modifications=(((4, 0),), ())),  # idc 4: MVC only
        header_of({}, P, frame_num=1, modifications=(((0, 16),), ())),  # abs_diff_pic_num_minus1 16 >= 16
        header_of({}, P, frame_num=1, modifications=(((0, 0), (0, 0)), ())),  # 2 changes for 1 reference
        header_of({}, P, frame_num=1, mmcos=((7,),)),
        header_of({}, P, frame_num=1, qp_delta=26),  # QP 52
        header_of({"redundant_pic_cnt_present": 1}, P, frame_num=1, redundant_pic_cnt=128),
        header_of({"deblocking_control": 1}, P, frame_num=1, deblocking=(3, 0, 0)),
        header_of({"deblocking_control": 1}, P, frame_num=1, deblocking=(0, 7, 0)),
        header_of({"slice_groups": 2, "slice_group_map_type": 4}, P, frame_num=1, change_cycle=5),
    ]
    for number, (unit, params) in enumerate(cases):
        try:
            h264.parse_slice_header(unit, params)
        except h264.SliceHeaderError:
            continue
        raise AssertionError("case %d was read" % number)
    unit, params = header_of({}, P, frame_num=1)
    assert h264.parse_slice_header(unit, params).header_bits == 8 + 1 + 5 + 1 + 4 + 5 + 1 + 1 + 1 + 1
    raises(h264.SliceHeaderError, h264.parse_slice_header, unit[:2], params)  # runs past the unit
    bits = h264.BitReader(unit[1:])
    cut = BitWriter()
    cut.u(20, bits.u(20))  # the slice header alone, then rbsp_stop_one_bit
    e = raises(h264.SliceHeaderError, h264.parse_slice_header, unit[:1] + cut.trailing(), params)
    assert "no slice data" in str(e)
    for kind in (2, 3, 4, 19, 20, 21, 6):  # data partitions, auxiliary, MVC/SVC, 3D-AVC, SEI
        e = raises(h264.SliceHeaderError, h264.parse_slice_header, bytes((0x40 | kind,)) + unit[1:], params)
        assert ("MVC" in str(e)) == (kind == 20)
    raises(h264.SliceHeaderError, h264.parse_slice_header, unit[:1], params)
    # a CABAC slice whose alignment bits are not all 1
    params = tiny_params()
    bad = bytearray(TINY_SLICES[1][0])
    bad[5] &= 0xFE  # the last cabac_alignment_one_bit
    e = raises(h264.SliceHeaderError, h264.parse_slice_header, bytes(bad), params)
    assert "cabac_alignment_one_bit" in str(e)


def count_pictures(stream, pictures, **parse):
    """Write each picture (kind, fields) with ``stream``; their POCs and output order keys."""
    params = h264.ParameterSets()
    params.add(stream.sps())
    params.add(stream.pps())
    counter = h264.PocCounter(params)
    pocs, keys = [], []
    for kind, fields in pictures:
        unit, _ = stream.slice(kind, **fields)
        pocs.append(counter.count(h264.parse_slice_header(unit, params)))
        keys.append(counter.order_key)
    return pocs, keys, counter


def test_picture_order_count_type_0_frames_fields_and_mmco5():
    stream = H264Stream(frame_mbs_only=0, log2_max_poc_lsb=4, bottom_field_pic_order_in_frame_present=1)
    pocs, keys, _ = count_pictures(stream, [
        (I, dict(idr=True, poc_lsb=0, delta_bottom=1)),
        (P, dict(frame_num=1, poc_lsb=6, delta_bottom=1)),
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0)),                 # bottom = top + 0
        (P, dict(frame_num=2, poc_lsb=12, field="top")),              # a field pair ...
        (P, dict(frame_num=2, poc_lsb=13, field="bottom")),
        (B, dict(frame_num=3, poc_lsb=9, field="bottom", ref_idc=0)),  # bottom field first
        (B, dict(frame_num=3, poc_lsb=8, field="top", ref_idc=0)),
        (P, dict(frame_num=3, poc_lsb=2)),                            # 13 -> 2 wraps: 16 + 2
        (P, dict(frame_num=4, poc_lsb=6, mmcos=((5,),))),              # MMCO 5: 22, then 0
        (P, dict(frame_num=1, poc_lsb=4)),                            # after it: 4 (prev lsb 0)
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0)),
        (P, dict(frame_num=2, poc_lsb=12, field="top", mmcos=((5,),))),  # a top field with MMCO 5
        (P, dict(frame_num=1, poc_lsb=1, field="bottom")),            # a new pair: prev lsb 0
        (I, dict(idr=True, poc_lsb=0, idr_pic_id=1)),
    ])
    assert pocs == [0, 6, 2, 12, 13, 9, 8, 18, 22, 4, 2, 12, 1, 0]
    assert keys == [(0, 0), (0, 6), (0, 2), (0, 12), (0, 13), (0, 9), (0, 8), (0, 18),
                    (1, 0), (1, 4), (1, 2), (2, 0), (2, 1), (3, 0)]
    assert h264.output_ranks(keys) == [0, 2, 1, 5, 6, 4, 3, 7, 8, 10, 9, 11, 12, 13]


def test_picture_order_count_type_1():
    # a cycle of 3 reference frames (+2, +4, -1), non-reference pictures -3 from expected,
    # bottom fields +1 from top: 8.2.1.2
    stream = H264Stream(poc_type=1, frame_mbs_only=0, offsets_for_ref_frame=(2, 4, -1), offset_for_non_ref_pic=-3,
                        offset_for_top_to_bottom_field=1, bottom_field_pic_order_in_frame_present=1,
                        log2_max_frame_num=4)
    pocs, keys, counter = count_pictures(stream, [
        (I, dict(idr=True)),                                  # expected 0
        (P, dict(frame_num=1, delta0=1, delta1=2)),           # absolute 1: 2, +1 = 3; bottom 3 + 1 + 2
        (B, dict(frame_num=2, ref_idc=0)),                    # absolute 1 (non-ref): 2 - 3
        (P, dict(frame_num=2, field="top")),                  # absolute 2: 2 + 4
        (P, dict(frame_num=2, field="bottom", delta0=-2)),    # 6 + 1 - 2
        (P, dict(frame_num=3)),                               # absolute 3: 6 - 1 = 5
        (P, dict(frame_num=4)),                               # absolute 4: cycle 1, 5 + 2 = 7
        (P, dict(frame_num=15)),                              # absolute 15: 4 cycles of 5, then 2 + 4 - 1
        (P, dict(frame_num=0)),                               # wraps: absolute 16: 24 + 2
        (P, dict(frame_num=1, mmcos=((5,),))),                 # absolute 17: 25 + 2 + 4, then reset
        (P, dict(frame_num=1)),                               # offset 0 again: absolute 1: 2
    ])
    assert pocs == [0, 3, -1, 6, 5, 5, 7, 25, 27, 31, 2]
    assert (counter.top, counter.bottom) == (2, 3)
    assert [k[0] for k in keys] == [0] * 9 + [1, 1] and keys[9] == (1, 0)
    stream = H264Stream(poc_type=1, delta_pic_order_always_zero=1, offsets_for_ref_frame=(), offset_for_non_ref_pic=5)
    assert count_pictures(stream, [(I, dict(idr=True)), (P, dict(frame_num=1)), (P, dict(frame_num=2, ref_idc=0))])[0] \
        == [0, 0, 5]  # an empty cycle: every reference picture expects 0


def test_picture_order_count_type_2():
    stream = H264Stream(poc_type=2, frame_mbs_only=0, log2_max_frame_num=4)
    pocs, keys, counter = count_pictures(stream, [
        (I, dict(idr=True)),
        (P, dict(frame_num=1)),
        (P, dict(frame_num=2, ref_idc=0)),                    # a non-reference picture: 2 * 2 - 1
        (P, dict(frame_num=2, field="top")),
        (P, dict(frame_num=2, field="bottom")),               # both fields: 4
        (P, dict(frame_num=15)),
        (P, dict(frame_num=0)),                               # wraps: 2 * 16
        (P, dict(frame_num=1, mmcos=((5,),))),                 # 34, then frame_num and offset 0
        (P, dict(frame_num=1)),
    ])
    assert pocs == [0, 2, 3, 4, 4, 30, 32, 34, 2]
    assert h264.output_ranks(keys) == list(range(9))  # type 2: output order is decoding order
    assert (counter.top, counter.bottom) == (2, 2)


def test_poc_of_a_unit_and_output_ranks():
    stream = H264Stream()
    params = h264.ParameterSets()
    counter = h264.PocCounter(params)
    idr = stream.slice(I, idr=True)[0]
    assert counter.poc(idr) is None and counter.sps is None  # unknown parameter sets: no order
    params.add(stream.sps())
    params.add(stream.pps())
    assert counter.poc(idr) == 0 and counter.sps is params.sps[0][0]
    assert counter.poc(stream.slice(P, frame_num=1, poc_lsb=4)[0]) == 4
    assert h264.output_ranks([(0, 4), None, (0, 2), (1, 0), (0, 2)]) == [2, None, 0, 3, 1]
    assert h264.output_ranks([]) == []


def test_sei_messages_strict_and_lenient():
    # recovery point (type 6, 2 bytes) then user data (type 5, 17 bytes), trailing bits
    sei = h("06 06 02 8c 80 05 11") + bytes(range(1, 18)) + h("80")
    assert [k for k, _ in h264.sei_messages(sei)] == [6, 5]
    assert h264.has_recovery_point(sei)
    assert h264.sei_payload_types(sei) == [6, 5]
    assert not h264.has_recovery_point(h("06 05 01 aa 80"))
    raises(h264.SeiError, h264.sei_messages, h("06 05 09 aa 80"))   # runs past the unit
    raises(h264.SeiError, h264.sei_messages, h("06 05 01 aa"))      # no trailing bits
    raises(h264.SeiError, h264.sei_messages, h("65 05 01 aa 80"))   # not an SEI unit
    assert h264.sei_payload_types(h("06 05 09 aa 80")) == [5]      # lenient: what it can read
