"""sei.py: building, parsing and recognising segbind's SEI NAL unit, in H.264 and H.265."""

from _support import h, raises

from segbind_core import sei
from segbind_core.nal import escape_rbsp

UUID = h("b531d1f007fb8425d19479ee862d845d")
X264_UUID = h("dc45e9bde6d948b7962cd820d923eeef")


def _sei_nal(rbsp: bytes, header: int = 0x06) -> bytes:
    return bytes((header,)) + escape_rbsp(rbsp)


def test_uuid_constant():
    assert sei.SEGBIND_UUID == UUID


def test_build_layout():
    body = h("0102030405")
    nal = sei.build_sei_nal(body)
    assert nal == h("06 05 15") + UUID + body + h("80")
    assert sei.tag_codec(nal) == 1
    hevc = sei.build_sei_nal(body, 2)
    assert hevc == h("4e 01 05 15") + UUID + body + h("80")  # a prefix SEI: type 39, layer 0, tid 1
    assert sei.tag_codec(hevc) == 2 and sei.segbind_payload(hevc) == body
    assert sei.sei_messages(nal) == [(5, UUID + body)]
    assert sei.segbind_payload(nal) == body


def test_build_applies_emulation_prevention():
    body = h("01 000000 000001 0000")
    nal = sei.build_sei_nal(body)
    assert nal == h("06 05 19") + UUID + h("01 0000 03 0000 03 00 01 0000 80")
    assert sei.tag_codec(nal)
    assert sei.segbind_payload(nal) == body


def test_round_trip_many_bodies():
    for n in (0, 1, 2, 50, 131, 239, 261):
        for fill in (0, 3, 0x80, 0xFF):
            for codec in (1, 2):
                body = bytes((fill,)) * n
                nal = sei.build_sei_nal(body, codec)
                assert sei.tag_codec(nal) == codec, (n, fill)
                assert sei.segbind_payload(nal) == body, (n, fill)
                assert sei.segbind_payload(memoryview(nal)) == body


def test_payload_size_boundary_and_ff_coding():
    body = bytes(range(1, 240))  # 239 bytes: payloadSize 255 = ff 00
    nal = sei.build_sei_nal(body)
    assert nal[:4] == h("06 05 ff 00")
    assert sei.tag_codec(nal)
    assert sei.segbind_payload(nal) == body
    longest = bytes(range(1, 250)) + bytes(range(1, 13))  # the longest body: payloadSize 277
    assert len(longest) == sei.MAX_BODY == 261
    nal = sei.build_sei_nal(longest)
    assert nal[:4] == h("06 05 ff 16") and sei.segbind_payload(nal) == longest
    big = sei.build_sei_nal(longest + b"\x01")  # one byte more: oversized for segbind
    assert sei.tag_codec(big)
    assert str(raises(sei.SeiError, sei.segbind_payload, big)) == "segbind SEI payload is oversized"


def test_foreign_and_non_sei_units_are_not_segbind():
    x264 = _sei_nal(h("05 20") + X264_UUID + b"x264 - core 164" + h("00 80"))
    assert not sei.tag_codec(x264)
    assert sei.sei_messages(x264) == [(5, X264_UUID + b"x264 - core 164\x00")]
    assert str(raises(sei.SeiError, sei.segbind_payload, x264)) == "not a segbind SEI NAL unit"
    ours = sei.build_sei_nal(b"\x01\x02")
    assert not sei.tag_codec(h("26") + ours[1:])      # nal_ref_idc != 0
    assert not sei.tag_codec(h("65") + ours[1:])      # an IDR slice
    assert not sei.tag_codec(ours[:18])               # too short for a UUID
    assert not sei.tag_codec(ours[:3] + h("b531d1f007fb8425d19479ee862d845e"))
    hevc = sei.build_sei_nal(b"\x01\x02", 2)
    assert not sei.tag_codec(h("50 01") + hevc[2:])         # a suffix SEI (type 40) is not the tag
    assert not sei.tag_codec(h("4e 02") + hevc[2:])         # temporal id 1: not the tag's header
    assert not sei.tag_codec(h("4e") + hevc[2:])            # a truncated HEVC header
    recovery = _sei_nal(h("06 01 84 80"))                  # recovery point SEI
    assert not sei.tag_codec(recovery)
    assert sei.sei_messages(recovery) == [(6, h("84"))]
    # payloadType 260 = ff 05 is not type 5
    far = _sei_nal(h("ff05 12") + UUID + h("0102 80"))
    assert not sei.tag_codec(far)
    assert sei.sei_messages(far) == [(260, UUID + h("0102"))]


def test_multiple_messages():
    two = _sei_nal(h("05 12") + UUID + h("0102") + h("06 01 84") + h("80"))
    assert sei.sei_messages(two) == [(5, UUID + h("0102")), (6, h("84"))]
    assert sei.tag_codec(two)  # first message is ours: recognised...
    e = raises(sei.SeiError, sei.segbind_payload, two)  # ...but refused when parsed
    assert str(e) == "a segbind SEI NAL unit must hold exactly one SEI message"
    two_hevc = h("4e01") + escape_rbsp(h("05 12") + UUID + h("0102") + h("06 01 84") + h("80"))
    assert sei.tag_codec(two_hevc) == 2
    raises(sei.SeiError, sei.segbind_payload, two_hevc)
    foreign_first = _sei_nal(h("06 01 84") + h("05 12") + UUID + h("0102") + h("80"))
    assert not sei.tag_codec(foreign_first)
    raises(sei.SeiError, sei.segbind_payload, foreign_first)


def test_malformed_sei_units():
    good = sei.build_sei_nal(h("0102"))
    for cut in range(1, len(good)):
        e = raises(sei.SeiError, sei.sei_messages, good[:cut])
        assert isinstance(e, ValueError)
    raises(sei.SeiError, sei.sei_messages, h("06"))
    assert sei.sei_messages(h("0680")) == []   # only trailing bits: no message
    raises(sei.SeiError, sei.sei_messages, h("65 05 01 00 80"))          # not an SEI NAL unit
    raises(sei.SeiError, sei.sei_messages, _sei_nal(h("05 12") + UUID + h("0102")))  # no trailing bits
    raises(sei.SeiError, sei.sei_messages, _sei_nal(h("05 ff ff"  "80")))  # header runs off the end
    raises(sei.SeiError, sei.sei_messages, _sei_nal(h("05 20") + UUID + h("80")))  # payload too long
    raises(sei.SeiError, sei.segbind_payload, _sei_nal(h("05 0f") + UUID[:15] + h("80")))
