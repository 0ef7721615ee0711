"""tag.py, format 3: varints, ids, the tag body layout field by field, every bound, every
refusal (format 2 tags among them: unknown_version, saying so), the MAC."""

import hashlib

from _support import h, raises

from segbind_core import tag as T
from segbind_core.crypto import MacKey, hmac_sha256_pure
from segbind_core.tag import MALFORMED, UNKNOWN_VERSION, TagError

KEY_ID = bytes(range(0xA0, 0xB0))
LINK = h("0102030405060708")
HINT = h("a1b2c3d4")
MAC = bytes(range(0x10, 0x20))
MAC2 = bytes(range(0x20, 0x30))
# stream 2, seq 3, capture 4 ms, 1000 ms, 25 pictures, 31 units, clear lead 5
VARINTS = h("02 03 04 e807 19 1f 05")


def _body(version=3, alg=2, codec=1, key_id=KEY_ID, varints=VARINTS, flags=0,
          tail=LINK + HINT + h("01") + MAC) -> bytes:
    """A tag body assembled field by field (FORMAT.md section 5), so tests can break any one."""
    return bytes((version, alg, codec)) + key_id + varints + bytes((flags,)) + tail


def _malformed(body, reason=MALFORMED) -> str:
    e = raises(TagError, T.decode_tag, body)
    assert e.reason == reason, (body, e.reason, str(e))
    assert isinstance(e, ValueError)
    return str(e)


# ---- varints ------------------------------------------------------------------------

VARINT_CASES = [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"),
    (16384, "808001"), (0xFFFFFFFF, "ffffffff0f"), (1 << 32, "8080808010"),
    ((1 << 48) - 1, "ffffffffffff3f"), ((1 << 53) - 1, "ffffffffffffff0f"),
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
    assert T.decode_uvarint(h("ffffffff0f"), 0, T.MAX_U32) == (0xFFFFFFFF, 5)
    raises(TagError, T.decode_uvarint, h("8080808010"), 0, T.MAX_U32)
    # epochs are below 2^31 in format 3
    assert T.MAX_EPOCH == 0x7FFFFFFF
    assert T.decode_uvarint(h("ffffffff07"), 0, T.MAX_EPOCH) == (0x7FFFFFFF, 5)
    raises(TagError, T.decode_uvarint, h("8080808008"), 0, T.MAX_EPOCH)


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


# ---- ids (the key schedule's and the commands': a format 3 tag carries none) ------------

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


def _id_accepted(raw: bytes) -> bool:
    """What a reader of an id does with raw bytes: decode them, then encode_id (MicroPython's
    decoder takes overlong forms and surrogates; encode_id must refuse them on both)."""
    try:
        T.encode_id(str(raw, "utf-8"), "owner")
    except ValueError:  # UnicodeError is a ValueError on both interpreters
        return False
    return True


def test_ids_are_strict_utf8_like_cpython():
    # overlong forms, surrogates, > U+10FFFF, stray and missing continuation bytes
    for raw in GOOD_UTF8:
        assert _id_accepted(h(raw)), raw
    for raw in BAD_UTF8:
        assert not _id_accepted(h(raw)), raw


# ---- the body ----------------------------------------------------------------------

def _tag(**kw):
    args = dict(codec=1, key_id=KEY_ID, stream_id=2, seq=3, capture_ms=4, duration_ms=1000, pictures=25,
                units=31, clear_lead=5, link=LINK, digest_hint=HINT, slots=1, macs=[MAC])
    args.update(kw)
    return T.Tag(**args)


def test_encode_layout_by_hand():
    body = _tag().encode()
    assert body == _body()
    assert body[:3] == h("03 02 01") and body[3:19] == KEY_ID  # version, alg, codec, key id
    assert _tag().signed_fields() == body[:-16]
    assert _tag().stream_prefix() == body[:20] and T.PREFIX_SIZE == 19
    two = _tag(slots=2, macs=[MAC, MAC2], flags=T.FLAG_END_OF_STREAM, codec=T.CODEC_H265).encode()
    assert two == _body(codec=2, flags=1, tail=LINK + HINT + h("02") + MAC + MAC2)
    still = _tag(pictures=1, flags=T.FLAG_STILL, duration_ms=0).encode()
    assert still == _body(varints=h("02 03 04 00 01 1f 05"), flags=2)


def test_the_longest_body_every_field_at_its_bound():
    big = _tag(stream_id=(1 << 48) - 1, seq=0xFFFFFFFF, capture_ms=(1 << 53) - 1, duration_ms=0xFFFFFFFF,
               pictures=0xFFFF, units=0xFFFFFFFF, clear_lead=4096, slots=8, macs=[MAC] * 8,
               flags=T.FLAG_END_OF_STREAM)
    body = big.encode()
    # 3 + 16 + 7 + 5 + 8 + 5 + 3 + 5 + 2 + 1 + 8 + 4 + 1 + 8 * 16 (FORMAT.md: 196 bytes)
    assert len(body) == 196
    assert body == _body(varints=h("ffffffffffff3f ffffffff0f ffffffffffffff0f ffffffff0f ffff03 ffffffff0f 8020"),
                         flags=1, tail=LINK + HINT + h("08") + MAC * 8)
    got, _ = T.decode_tag(body)
    assert (got.stream_id, got.seq, got.capture_ms, got.pictures, got.units, got.clear_lead) == \
        ((1 << 48) - 1, 0xFFFFFFFF, (1 << 53) - 1, 0xFFFF, 0xFFFFFFFF, 4096)
    from segbind_core.sei import MAX_BODY
    assert len(body) <= MAX_BODY


def test_tag_size_as_carried_with_the_owner_and_three_shares():
    """FORMAT.md section 5: four MACs, today's clock, a 4-second segment of 100 pictures and 150
    units, a clear lead under 128: 141 bytes for H.264 and 142 for H.265 with a seq under 2^14
    (a stream's first 4.5 hours at 4 s); a byte more from seq 2^14 on (each share adds 16)."""
    from segbind_core.sei import build_sei_nal
    for seq, size in ((1000, 141), (86400, 142)):
        t = _tag(stream_id=1795000000000, seq=seq, capture_ms=1795000123456, duration_ms=4000, pictures=100,
                 units=150, clear_lead=40, slots=4, macs=[MAC] * 4)
        for codec in (T.CODEC_H264, T.CODEC_H265):
            t.codec = codec
            carried = 4 + len(build_sei_nal(t.encode(), codec))
            assert carried == size + (codec == T.CODEC_H265), (seq, codec, carried)
        t.slots, t.macs = 5, [MAC] * 5
        assert 4 + len(build_sei_nal(t.encode(), T.CODEC_H265)) == size + 1 + 16


def test_decode_round_trip():
    for kw in ({}, {"stream_id": 0, "seq": 0, "capture_ms": 0, "duration_ms": 0},
               {"codec": T.CODEC_H265, "flags": 1}, {"slots": 3, "macs": [MAC, MAC2, MAC]},
               {"pictures": 1, "flags": T.FLAG_STILL}, {"pictures": 1, "flags": 3},
               {"clear_lead": 1}, {"clear_lead": 4096}, {"key_id": bytes(16)},
               {"seq": 0xFFFFFFFF, "capture_ms": 1767225600000}):
        t = _tag(**kw)
        body = t.encode()
        got, signed = T.decode_tag(body)
        assert signed == body[:-16 * t.slots]
        for name in ("version", "alg", "codec", "key_id", "stream_id", "seq", "capture_ms", "duration_ms",
                     "pictures", "units", "clear_lead", "flags", "link", "digest_hint", "slots", "macs"):
            assert getattr(got, name) == getattr(t, name), (kw, name)
        assert got.end_of_stream == bool(t.flags & 1) and got.still == bool(t.flags & 2)
    got, _ = T.decode_tag(memoryview(_body()))
    assert got.key_id == KEY_ID and got.macs == [MAC] and not got.end_of_stream and not got.still
    got, _ = T.decode_tag(bytearray(_body(flags=1)))
    assert got.end_of_stream


def test_decode_tail_reads_only_what_follows_the_stream_id():
    body = _tag(seq=77, slots=2, macs=[MAC, MAC2]).encode()
    tag, signed = T.decode_tail(body, 20, 1, KEY_ID, 2)
    assert (tag.seq, tag.key_id, tag.stream_id, tag.macs) == (77, KEY_ID, 2, [MAC, MAC2])
    assert signed == body[:-32]
    fields = T.decode_fields(body, 20)
    assert fields[:7] == (77, 4, 1000, 25, 31, 5, 0) and fields[7:10] == (LINK, HINT, 2)
    assert fields[10] == len(body) - 32


def test_decode_truncated_at_every_byte():
    body = _body()
    for cut in range(len(body)):
        _malformed(body[:cut])
    assert _malformed(b"") == "empty tag"
    assert _malformed(h("03")) == "tag truncated after the version"
    assert _malformed(h("0302")) == "tag truncated after the version"
    assert _malformed(h("030201") + KEY_ID[:15]) == "tag truncated inside its key id"
    assert _malformed(h("030201") + KEY_ID) == "tag truncated inside its key id"  # no stream id
    assert _malformed(_body()[:-1]) == "tag has 15 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=b"")) == "tag truncated before its MACs"


def test_decode_trailing_bytes_and_slot_counts():
    assert _malformed(_body() + h("00")) == "tag has 17 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=LINK + HINT + h("01") + MAC + MAC)) == "tag has 32 bytes of MACs for 1 slots"
    assert _malformed(_body(tail=LINK + HINT + h("00"))) == "tag has 0 slots"
    assert _malformed(_body(tail=LINK + HINT + h("09") + MAC * 9)) == "tag has 9 slots"
    assert T.decode_tag(_body(tail=LINK + HINT + h("08") + MAC * 8))[0].slots == 8


def _format2_body(owner=b"alice", camera=b"cam-1"):
    """A well-formed format 2 tag body (version 2, alg 1: owner and camera in clear, an epoch)."""
    return (h("020101") + bytes((len(owner),)) + owner + bytes((len(camera),)) + camera
            + h("01 02 03 04 e807 19 1f") + h("00") + LINK + HINT + h("01") + MAC)


def test_format_2_and_1_tags_are_unknown_version_saying_why():
    for version in (1, 2):
        body = _format2_body()
        body = bytes((version,)) + body[1:]
        message = _malformed(body, UNKNOWN_VERSION)
        assert message.startswith("a format %d tag (unencrypted video, names in clear)" % version), message
        assert "format 3" in message
        assert _malformed(bytes((version,)), UNKNOWN_VERSION) == message  # the version byte alone says it


def test_decode_unknown_version_alg_codec_and_flags():
    for v in (0, 4, 255):
        assert _malformed(_body(version=v), UNKNOWN_VERSION) == "tag format version %d is not supported" % v
        _malformed(bytes((v,)), UNKNOWN_VERSION)
    for a in (0, 1, 3, 255):  # alg 1 was format 2's (no encryption)
        assert _malformed(_body(alg=a), UNKNOWN_VERSION) == "tag algorithm %d is not supported" % a
    for c in (0, 3, 255):
        assert _malformed(_body(codec=c), UNKNOWN_VERSION) == "tag codec %d is not supported" % c
    assert _malformed(_body(flags=4)) == "unknown flags 04"
    assert _malformed(_body(flags=0x81)) == "unknown flags 81"


def test_a_still_holds_exactly_one_picture():
    assert _malformed(_body(flags=T.FLAG_STILL)) == "a still of 25 pictures"
    assert _malformed(_body(varints=h("02 03 04 00 02 01 05"), flags=3)) == "a still of 2 pictures"
    assert T.decode_tag(_body(varints=h("02 03 04 00 01 01 05"), flags=3))[0].still


def test_every_field_bound_is_enforced_on_decode():
    """Each field one past its bound (FORMAT.md section 5), the others valid."""
    fields = ["02", "03", "04", "e807", "19", "1f", "05"]  # stream id .. clear lead
    past = {
        0: "80808080808040",      # stream id 2^48
        1: "8080808010",          # seq 2^32
        2: "8080808080808010",    # capture 2^53
        3: "8080808010",          # duration 2^32
        4: "808004",              # pictures 2^16
        6: "8120",                # clear lead 4097
    }
    at_bound = {0: "ffffffffffff3f", 1: "ffffffff0f", 2: "ffffffffffffff0f", 3: "ffffffff0f", 4: "ffff03",
                5: "ffffffff0f", 6: "8020"}
    for i, enc in past.items():
        varints = fields[:i] + [enc] + fields[i + 1:]
        assert _malformed(_body(varints=h(" ".join(varints)))) == "integer field out of range", i
        varints = fields[:i] + [at_bound[i]] + fields[i + 1:]
        T.decode_tag(_body(varints=h(" ".join(varints))))
    varints = fields[:5] + ["8080808010"] + fields[6:]  # units 2^32
    assert _malformed(_body(varints=h(" ".join(varints)))) == "integer field out of range"


def test_decode_bad_varint_fields():
    assert _malformed(_body(varints=h("8000 03 04 e807 19 1f 05"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("02 03 8400 e807 19 1f 05"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("02 03 04 e807 19 1f 8500"))) == "integer field is not minimally encoded"
    assert _malformed(_body(varints=h("02 03 04 e807 19 1f 8080808080808080808001"))) == \
        "integer field too long"
    zero = "a segment has at least one picture and one NAL unit, and a clear lead"
    assert _malformed(_body(varints=h("02 03 04 e807 00 1f 05"))) == zero
    assert _malformed(_body(varints=h("02 03 04 e807 19 00 05"))) == zero
    assert _malformed(_body(varints=h("02 03 04 e807 19 1f 00"))) == zero


def test_signed_fields_range_checks():
    for kw in ({"stream_id": 1 << 48}, {"stream_id": -1}, {"seq": 1 << 32}, {"seq": -1},
               {"capture_ms": 1 << 53}, {"link": LINK[:7]}, {"digest_hint": HINT + b"!"},
               {"key_id": KEY_ID[:15]}, {"key_id": KEY_ID + b"!"}, {"pictures": 0}, {"pictures": 1 << 16},
               {"units": 0}, {"units": 1 << 32}, {"clear_lead": 0}, {"clear_lead": 4097},
               {"duration_ms": 1 << 32}, {"codec": 3}, {"flags": 4}, {"flags": T.FLAG_STILL},
               {"slots": 0}, {"slots": 9}):
        raises(ValueError, _tag(**kw).signed_fields)
    _tag(pictures=1, flags=T.FLAG_STILL).signed_fields()
    raises(ValueError, _tag(macs=[]).encode)
    raises(ValueError, _tag(macs=[MAC[:15]]).encode)
    raises(ValueError, _tag(slots=2, macs=[MAC]).encode)


def test_repr_names_the_key_id_and_never_key_material():
    text = repr(_tag(flags=T.FLAG_END_OF_STREAM))
    assert KEY_ID.hex() in text and "end of stream" in text
    assert MAC.hex() not in text


# ---- the MAC ---------------------------------------------------------------------------

def test_compute_mac_is_hmac_sha256_over_the_signed_fields_and_the_digest():
    key = bytes(range(32))
    signed = _tag().signed_fields()
    digest = hashlib.sha256(b"segment").digest()
    mac = T.compute_mac(MacKey(key), signed, digest)
    assert len(mac) == 16
    assert mac == hmac_sha256_pure(key, signed + digest)[:16]
    assert T.compute_mac(MacKey(key), signed, digest[:31] + b"\x00") != mac
