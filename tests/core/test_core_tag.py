"""tag.py: varints, ids, the tag body layout, every malformed case, digest and MAC."""

import hashlib

from _support import h, raises

from segbind_core import tag as T
from segbind_core.crypto import MacKey, hmac_sha256_pure
from segbind_core.tag import MALFORMED, UNKNOWN_VERSION, TagError

LINK = h("0102030405060708")
HINT = h("a1b2c3d4")
MAC = bytes(range(0x10, 0x20))
MAC2 = bytes(range(0x20, 0x30))
# epoch 1, stream 2, seq 3, capture 4 ms, 1000 ms, 25 pictures, 31 units
VARINTS = h("01 02 03 04 e807 19 1f")


def _body(version=2, alg=1, codec=1, owner=b"alice", camera=b"cam-1", varints=VARINTS, flags=0,
          tail=LINK + HINT + h("01") + MAC) -> bytes:
    """A tag body assembled field by field, so tests can break any one of them."""
    return (bytes((version, alg, codec, len(owner))) + owner + bytes((len(camera),)) + camera
            + varints + bytes((flags,)) + tail)


def _malformed(body, reason=MALFORMED) -> str:
    e = raises(TagError, T.decode_tag, body)
    assert e.reason == reason, (body, e.reason, str(e))
    assert isinstance(e, ValueError)
    return str(e)


# ---- varints ------------------------------------------------------------------------

VARINT_CASES = [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"),
    (16384, "808001"), (0xFFFFFFFF, "ffffffff0f"), (1 << 32, "8080808010"),
    (1 << 63, "80808080808080808001"), ((1 << 64) - 1, "ffffffffffffffffff01"),
]


def test_uvarint_encoding():
    for value, enc in VARINT_CASES:
        assert T.encode_uvarint(value) == h(enc), value
        assert T.decode_uvarint(h(enc), 0, T.MAX_U64) == (value, len(h(enc)))
    raises(ValueError, T.encode_uvarint, -1)


def test_uvarint_decode_at_offset_and_limit():
    buf = h("ff ac02 ff")
    assert T.decode_uvarint(buf, 1, 300) == (300, 3)
    assert raises(TagError, T.decode_uvarint, buf, 1, 299).reason == MALFORMED
    assert T.decode_uvarint(h("ffffffff0f"), 0, T.MAX_EPOCH) == (0xFFFFFFFF, 5)
    raises(TagError, T.decode_uvarint, h("8080808010"), 0, T.MAX_EPOCH)


def test_uvarint_rejects_bad_encodings():
    cases = [
        ("", "tag truncated inside an integer field"),
        ("80", "tag truncated inside an integer field"),
        ("ffff", "tag truncated inside an integer field"),
        ("8000", "integer field is not minimally encoded"),
        ("ff00", "integer field is not minimally encoded"),
        ("808000", "integer field is not minimally encoded"),
        ("80808080808080808002", "integer field out of range"),       # 2^64
        ("ffffffffffffffffff7f", "integer field out of range"),
        ("8080808080808080808001", "integer field too long"),         # 11 bytes
    ]
    for enc, message in cases:
        e = raises(TagError, T.decode_uvarint, h(enc), 0, T.MAX_U64)
        assert e.reason == MALFORMED
        assert str(e) == message, (enc, str(e))


# ---- ids ------------------------------------------------------------------------------

def test_encode_id():
    assert T.encode_id("alice", "owner") == h("05") + b"alice"
    assert T.encode_id("zoë", "owner") == h("04 7a 6f c3 ab")
    assert T.encode_id("é" * 16, "owner") == h("20") + h("c3a9") * 16
    for bad in ("", "a" * 33, "é" * 17, "a\x00b"):
        raises(ValueError, T.encode_id, bad, "owner")


def test_encode_id_rejects_lone_surrogates():
    # CPython refuses to encode them; MicroPython would emit ED A0 80: both must refuse.
    raises(ValueError, T.encode_id, "a\ud800", "owner")


GOOD_UTF8 = ["c3a9", "e382ab", "f09f9880", "efbfbf", "f48fbfbf", "ed9fbf", "ee8080", "7f",
             "c280", "e0a080", "f0908080", "7a6fc3ab"]
BAD_UTF8 = ["c080", "c1bf", "e08080", "e09fbf", "eda080", "edbfbf", "f0808080", "f08fbfbf",
            "f4908080", "f5808080", "f8888080 80", "80", "bf", "c3", "e282", "f09f98", "ff",
            "fe", "c328", "e228a1", "61c3", "c3a9 80"]


def test_decode_accepts_valid_utf8_ids():
    for raw in GOOD_UTF8:
        tag, _ = T.decode_tag(_body(owner=h(raw), camera=h(raw)))
        assert tag.owner.encode("utf-8") == h(raw), raw
        assert tag.camera == tag.owner


def test_decode_rejects_invalid_utf8_ids_like_cpython():
    # overlong forms, surrogates, > U+10FFFF, stray and missing continuation bytes
    for raw in BAD_UTF8:
        assert _malformed(_body(owner=h(raw))) == "owner id is not UTF-8", raw
        assert _malformed(_body(camera=h(raw))) == "camera id is not UTF-8", raw


def test_decode_rejects_bad_id_lengths_and_nul():
    assert _malformed(_body(owner=b"")) == "owner id has a bad length"
    assert _malformed(_body(camera=b"")) == "camera id has a bad length"
    assert _malformed(_body(owner=b"a" * 33)) == "owner id has a bad length"
    assert _malformed(_body(camera=b"c" * 33)) == "camera id has a bad length"
    assert _malformed(h("020101 05") + b"ali") == "owner id has a bad length"   # runs off the end
    assert _malformed(_body(owner=b"a\x00b")) == "owner id contains a zero byte"
    assert _malformed(_body(camera=b"\x00")) == "camera id contains a zero byte"
    tag, _ = T.decode_tag(_body(owner=b"o" * 32, camera=b"c" * 32))
    assert (tag.owner, tag.camera) == ("o" * 32, "c" * 32)


# ---- the body ----------------------------------------------------------------------

def _tag(**kw):
    args = dict(codec=1, owner="alice", camera="cam-1", epoch=1, stream_id=2, seq=3, capture_ms=4,
                duration_ms=1000, pictures=25, units=31, link=LINK, digest_hint=HINT, slots=1,
                macs=[MAC])
    args.update(kw)
    return T.Tag(**args)


def test_encode_layout_by_hand():
    body = _tag().encode()
    assert body == _body()
    assert _tag().signed_fields() == body[:-16]
    two = _tag(slots=2, macs=[MAC, MAC2], flags=T.FLAG_END_OF_STREAM, codec=T.CODEC_H265).encode()
    assert two == _body(codec=2, flags=1, tail=LINK + HINT + h("02") + MAC + MAC2)
    big = _tag(owner="o" * 32, camera="c" * 32, epoch=0xFFFFFFFF, stream_id=(1 << 64) - 1,
               seq=(1 << 64) - 1, capture_ms=(1 << 64) - 1, duration_ms=0xFFFFFFFF,
               pictures=0xFFFFFFFF, units=0xFFFFFFFF, slots=8, macs=[MAC] * 8).encode()
    assert len(big) == 261  # the longest body (sei.MAX_BODY)
    assert big == _body(owner=b"o" * 32, camera=b"c" * 32, varints=h(
        "ffffffff0f" + "ffffffffffffffffff01" * 3 + "ffffffff0f" * 3),
        tail=LINK + HINT + h("08") + MAC * 8)


def test_four_slots_with_12_byte_ids_fit_in_160_bytes():
    """The size FORMAT.md promises: owner and three shares, 12-byte ids, today's clock."""
    from segbind_core.sei import build_sei_nal
    t = _tag(owner="acct-0001044", camera="cam-00f3a9c2", epoch=3, stream_id=1795000000000,
             seq=86400, capture_ms=1795000123456, duration_ms=4000, pictures=100, units=150,
             slots=4, macs=[MAC] * 4)
    for codec in (T.CODEC_H264, T.CODEC_H265):
        t.codec = codec
        carried = 4 + len(build_sei_nal(t.encode(), codec))
        assert carried == (152 if codec == T.CODEC_H264 else 153), carried


def test_decode_round_trip():
    for kw in ({}, {"stream_id": 0, "seq": 0, "capture_ms": 0, "duration_ms": 0},
               {"owner": "zoë", "camera": "カメラ-1"}, {"codec": T.CODEC_H265, "flags": 1},
               {"slots": 3, "macs": [MAC, MAC2, MAC]},
               {"epoch": 0xFFFFFFFF, "seq": (1 << 64) - 1, "capture_ms": 1767225600000}):
        t = _tag(**kw)
        body = t.encode()
        got, signed = T.decode_tag(body)
        assert signed == body[:-16 * t.slots]
        for name in ("version", "alg", "codec", "owner", "camera", "epoch", "stream_id", "seq",
                     "capture_ms", "duration_ms", "pictures", "units", "flags", "link",
                     "digest_hint", "slots", "macs"):
            assert getattr(got, name) == getattr(t, name), (kw, name)
    got, _ = T.decode_tag(memoryview(_body()))
    assert got.owner == "alice" and got.macs == [MAC] and not got.end_of_stream
    got, _ = T.decode_tag(bytearray(_body(owner=b"zo\xc3\xab", flags=1)))
    assert got.owner == "zoë" and got.end_of_stream


def test_decode_truncated_at_every_byte():
    body = _body()
    for cut in range(len(body)):
        _malformed(body[:cut])
    assert _malformed(b"") == "empty tag"
    assert _malformed(h("02")) == "tag truncated after the version"
    assert _malformed(h("020101")) == "tag truncated before the owner id"
    assert _malformed(_body()[:-1]) == "tag has 15 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=b"")) == "tag truncated before its MACs"


def test_decode_trailing_bytes_and_slot_counts():
    assert _malformed(_body() + h("00")) == "tag has 17 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=LINK + HINT + h("01") + MAC + MAC)) == "tag has 32 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=LINK + HINT + h("00"))) == "tag has 0 slots"
    assert _malformed(_body(tail=LINK + HINT + h("09") + MAC * 9)) == "tag has 9 slots"


def test_decode_unknown_version_alg_codec_and_flags():
    for v in (0, 1, 3, 255):
        _malformed(_body(version=v), UNKNOWN_VERSION)
        _malformed(bytes((v,)), UNKNOWN_VERSION)
    for a in (0, 2, 255):
        assert _malformed(_body(alg=a), UNKNOWN_VERSION) == "tag algorithm %d is not supported" % a
    for c in (0, 3, 255):
        assert _malformed(_body(codec=c), UNKNOWN_VERSION) == "tag codec %d is not supported" % c
    assert str(raises(TagError, T.decode_tag, _body(version=1))) == \
        "tag format version 1 is not supported"
    assert _malformed(_body(flags=2)) == "unknown flags 02"
    assert _malformed(_body(flags=0x81)) == "unknown flags 81"


def test_decode_bad_varint_fields():
    assert _malformed(_body(varints=h("8000 02 03 04 e807 19 1f"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("01 02 03 8400 e807 19 1f"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("8080808010 02 03 04 e807 19 1f"))) == "integer field out of range"
    assert _malformed(_body(varints=h("01 02 80808080808080808002 04 e807 19 1f"))) == \
        "integer field out of range"
    assert _malformed(_body(varints=h("01 02 03 04 8080808010 19 1f"))) == "integer field out of range"
    assert _malformed(_body(varints=h("00 02 03 04 e807 19 1f"))) == "epoch 0 is not an epoch"
    assert _malformed(_body(varints=h("01 02 03 04 e807 00 1f"))) == \
        "a segment has at least one picture and one NAL unit"
    assert _malformed(_body(varints=h("01 02 03 04 e807 19 00"))) == \
        "a segment has at least one picture and one NAL unit"


def test_signed_fields_range_checks():
    for kw in ({"epoch": 1 << 32}, {"epoch": 0}, {"stream_id": 1 << 64}, {"seq": 1 << 64},
               {"capture_ms": 1 << 64}, {"seq": -1}, {"link": LINK[:7]}, {"digest_hint": HINT + b"!"},
               {"owner": ""}, {"camera": "c" * 33}, {"pictures": 0}, {"units": 0},
               {"duration_ms": 1 << 32}, {"codec": 3}, {"flags": 2}, {"slots": 0}, {"slots": 9}):
        raises(ValueError, _tag(**kw).signed_fields)
    raises(ValueError, _tag(macs=[]).encode)
    raises(ValueError, _tag(macs=[MAC[:15]]).encode)
    raises(ValueError, _tag(slots=2, macs=[MAC]).encode)


# ---- the MAC ---------------------------------------------------------------------------

def test_compute_mac_is_hmac_sha256_over_the_signed_fields_and_the_digest():
    key = bytes(range(32))
    signed = _tag().signed_fields()
    digest = hashlib.sha256(b"segment").digest()
    mac = T.compute_mac(MacKey(key), signed, digest)
    assert len(mac) == 16
    assert mac == hmac_sha256_pure(key, signed + digest)[:16]
    assert T.compute_mac(MacKey(key), signed, digest[:31] + b"\x00") != mac
