"""h264.py: NAL header, parameter sets, slice headers, SEI messages (one home for H.264 syntax)."""

from _support import h, raises

from segbind_core import h264

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


def test_slice_header_against_its_parameter_sets():
    params = h264.ParameterSets()
    idr = IDR
    header = h264.parse_slice_header(idr, params)
    assert header.pps_id == 0 and header.sps is None  # unknown SPS: only the ids
    params.add(SPS)
    params.add(PPS)
    header = h264.parse_slice_header(idr, params)
    assert header.sps is not None and header.frame_num == 0 and not header.field_pic
    assert h264.PocCounter(params).poc(idr) == 0


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
