"""tag.py: varints, ids, the tag body layout, every malformed case, digest and MAC."""

import hashlib

from _support import h, raises

from segbind_core import tag as T
from segbind_core.crypto import hmac_sha256_pure
from segbind_core.tag import MALFORMED, UNKNOWN_VERSION, TagError

LINK = h("0102030405060708")
HINT = h("a1b2c3d4")
MAC = bytes(range(0x10, 0x20))


def _body(version=1, alg=1, owner=b"alice", camera=b"cam-1", varints=h("01 02 03 04"),
          tail=LINK + HINT + MAC) -> bytes:
    """A tag body assembled field by field, so tests can break any one of them."""
    return (bytes((version, alg, len(owner))) + owner + bytes((len(camera),)) + camera
            + varints + tail)


def _malformed(body, reason=MALFORMED) -> str:
    e = raises(TagError, T.decode_tag, body)
    assert e.reason == reason, (body, e.reason, str(e))
    assert isinstance(e, ValueError)
    return str(e)


# ---- varints ------------------------------------------------------------------------

VARINTS = [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"),
    (16384, "808001"), (0xFFFFFFFF, "ffffffff0f"), (1 << 32, "8080808010"),
    (1 << 63, "80808080808080808001"), ((1 << 64) - 1, "ffffffffffffffffff01"),
]


def test_uvarint_encoding():
    for value, enc in VARINTS:
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
    assert _malformed(h("0101 05") + b"ali") == "owner id has a bad length"   # runs off the end
    assert _malformed(_body(owner=b"a\x00b")) == "owner id contains a zero byte"
    assert _malformed(_body(camera=b"\x00")) == "camera id contains a zero byte"
    tag, _ = T.decode_tag(_body(owner=b"o" * 32, camera=b"c" * 32))
    assert (tag.owner, tag.camera) == ("o" * 32, "c" * 32)


# ---- the body ----------------------------------------------------------------------

def _tag(**kw):
    args = dict(owner="alice", camera="cam-1", epoch=1, stream_id=2, seq=3, capture_ms=4,
                link=LINK, digest_hint=HINT, mac=MAC)
    args.update(kw)
    return T.Tag(**args)


def test_encode_layout_by_hand():
    body = _tag().encode()
    assert body == _body()
    assert _tag().signed_fields() == body[:-16]
    big = _tag(owner="o" * 32, camera="c" * 32, epoch=0xFFFFFFFF, stream_id=(1 << 64) - 1,
               seq=(1 << 64) - 1, capture_ms=(1 << 64) - 1).encode()
    assert len(big) == 131  # the longest body (docs/FORMAT.md section 5)
    assert big == _body(owner=b"o" * 32, camera=b"c" * 32, varints=h(
        "ffffffff0f" + "ffffffffffffffffff01" * 3))


def test_decode_round_trip():
    for kw in ({}, {"epoch": 0, "stream_id": 0, "seq": 0, "capture_ms": 0},
               {"owner": "zoë", "camera": "カメラ-1"},
               {"epoch": 0xFFFFFFFF, "seq": (1 << 64) - 1, "capture_ms": 1767225600000}):
        t = _tag(**kw)
        body = t.encode()
        got, signed = T.decode_tag(body)
        assert signed == body[:-16]
        for name in ("version", "alg", "owner", "camera", "epoch", "stream_id", "seq",
                     "capture_ms", "link", "digest_hint", "mac"):
            assert getattr(got, name) == getattr(t, name), (kw, name)
    got, _ = T.decode_tag(memoryview(_body()))
    assert got.owner == "alice" and got.mac == MAC
    got, _ = T.decode_tag(bytearray(_body(owner=b"zo\xc3\xab")))
    assert got.owner == "zoë"


def test_decode_truncated_at_every_byte():
    body = _body()
    for cut in range(len(body)):
        _malformed(body[:cut])
    assert _malformed(b"") == "empty tag"
    assert _malformed(h("01")) == "tag truncated after the version"
    assert _malformed(h("0101")) == "tag truncated before the owner id"
    assert _malformed(_body()[:-1]) == "tag truncated (1 bytes short)"
    assert _malformed(_body(tail=b"")) == "tag truncated (28 bytes short)"


def test_decode_trailing_bytes():
    assert _malformed(_body() + h("00")) == "tag has 1 unexpected trailing bytes"
    assert _malformed(_body(tail=LINK + HINT + MAC + MAC)) == "tag has 16 unexpected trailing bytes"


def test_decode_unknown_version_and_alg():
    for v in (0, 2, 255):
        _malformed(_body(version=v), UNKNOWN_VERSION)
        _malformed(bytes((v,)), UNKNOWN_VERSION)
    for a in (0, 2, 255):
        assert _malformed(_body(alg=a), UNKNOWN_VERSION) == "tag algorithm %d is not supported" % a
    assert str(raises(TagError, T.decode_tag, _body(version=2))) == \
        "tag format version 2 is not supported"


def test_decode_bad_varint_fields():
    assert _malformed(_body(varints=h("8000 02 03 04"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("01 02 03 8400"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("8080808010 02 03 04"))) == "integer field out of range"
    assert _malformed(_body(varints=h("01 02 80808080808080808002 04"))) == \
        "integer field out of range"
    assert _malformed(_body(varints=h("01 02 03"), tail=h("ff"))) == \
        "tag truncated inside an integer field"


def test_signed_fields_range_checks():
    for kw in ({"epoch": 1 << 32}, {"epoch": -1}, {"stream_id": 1 << 64}, {"seq": 1 << 64},
               {"capture_ms": 1 << 64}, {"seq": -1}, {"link": LINK[:7]}, {"digest_hint": HINT + b"!"},
               {"owner": ""}, {"camera": "c" * 33}):
        raises(ValueError, _tag(**kw).signed_fields)
    raises(ValueError, _tag(mac=b"").encode)
    raises(ValueError, _tag(mac=MAC[:15]).encode)


# ---- content digest and MAC ------------------------------------------------------------

def _annexb(units):
    buf = b""
    offsets = []
    for u in units:
        buf += h("00000001")
        offsets.append((len(buf), len(buf) + len(u)))
        buf += u
    return buf, offsets


UNITS = [h("09f0"), h("6742c01e"), h("68ce3c80"), h("06 05 02 abcd 80"), h("0c ffff 80"),
         h("65888400000301"), h("0a"), h("0b"), h("419a0203")]


def test_content_digest_covers_all_but_framing_units():
    buf, offsets = _annexb(UNITS)
    expect = hashlib.sha256()
    for u in UNITS:
        if u[0] & 0x1F not in (9, 10, 11, 12):
            expect.update(len(u).to_bytes(4, "big") + u)
    expect = expect.digest()  # once: MicroPython's digest() finalizes the object
    assert T.content_digest(buf, offsets) == expect
    assert T.content_digest(memoryview(buf), offsets) == expect
    # a changed covered unit changes the digest; an uncovered one does not
    changed = UNITS[:5] + [h("65888400000302")] + UNITS[6:]
    assert T.content_digest(*_annexb(changed)) != expect
    no_framing = [u for u in UNITS if u[0] & 0x1F not in (9, 10, 11, 12)]
    assert T.content_digest(*_annexb(no_framing)) == expect
    assert T.content_digest(b"", []) == hashlib.sha256(b"").digest()


def test_content_digest_length_prefixed_fast_path_agrees():
    buf = b""
    offsets = []
    for u in UNITS:
        buf += len(u).to_bytes(4, "big")
        offsets.append((len(buf), len(buf) + len(u)))
        buf += u
    annexb = T.content_digest(*_annexb(UNITS))
    assert T.content_digest(buf, offsets) == annexb
    assert T.content_digest(buf, offsets, True) == annexb


def test_compute_mac():
    key = bytes(range(32))
    signed = _tag().signed_fields()
    digest = hashlib.sha256(b"segment").digest()
    mac = T.compute_mac(key, signed, digest)
    assert len(mac) == 16
    assert mac == hmac_sha256_pure(key, signed + digest)[:16]
    assert T.compute_mac(key, signed, digest[:31] + b"\x00") != mac
