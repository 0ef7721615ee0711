"""crypto.py: HMAC-SHA256 (pure and fast paths), HKDF-SHA256, constant-time compare.

Published vectors only (RFC 4231, RFC 5869), read from tests/vectors/.
"""

import hashlib

from _support import IS_MICROPYTHON, h, load_vectors, patched, raises

from segbind_core import crypto


def _rfc4231():
    return load_vectors("rfc4231_hmac_sha256.json")["cases"]


def _rfc5869():
    return load_vectors("rfc5869_hkdf_sha256.json")["cases"]


def test_rfc4231_has_all_seven_cases():
    assert [c["case"] for c in _rfc4231()] == [1, 2, 3, 4, 5, 6, 7]


def test_hmac_pure_matches_rfc4231():
    for c in _rfc4231():
        mac = crypto.hmac_sha256_pure(h(c["key"]), h(c["data"]))
        assert len(mac) == 32
        n = c.get("truncate_to", 32)
        assert mac[:n] == h(c["mac"]), "RFC 4231 case %d" % c["case"]


def test_hmac_default_path_matches_rfc4231():
    for c in _rfc4231():
        n = c.get("truncate_to", 32)
        assert crypto.hmac_sha256(h(c["key"]), h(c["data"]))[:n] == h(c["mac"]), c["case"]


def test_hmac_incremental_updates_and_memoryview_slices():
    for c in _rfc4231():
        data = h(c["data"])
        view = memoryview(data)
        mac = crypto.HmacSha256(h(c["key"]))
        for i in range(0, len(data), 7):
            mac.update(view[i:i + 7])  # memoryview slices straight into hashlib
        n = c.get("truncate_to", 32)
        assert mac.digest()[:n] == h(c["mac"]), c["case"]


def test_hmac_key_exactly_one_block_is_not_hashed():
    # A 64-byte key is used as is; a 65-byte key is hashed first (RFC 2104).
    key64 = bytes(range(64))
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key64) + b"msg").digest()
    expect = hashlib.sha256(bytes(k ^ 0x5C for k in key64) + inner).digest()
    assert crypto.hmac_sha256_pure(key64, b"msg") == expect
    key65 = bytes(range(65))
    assert crypto.hmac_sha256_pure(key65, b"msg") == crypto.hmac_sha256_pure(
        hashlib.sha256(key65).digest(), b"msg")


def test_interpreter_takes_the_expected_hmac_path():
    # MicroPython has no hmac.digest/compare_digest: the core must use its own code.
    if IS_MICROPYTHON:
        assert crypto._openssl_hmac_digest is None
        assert crypto._c_compare_digest is None
    else:
        assert crypto._openssl_hmac_digest is not None
        assert crypto._c_compare_digest is not None


def test_hkdf_matches_rfc5869():
    cases = _rfc5869()
    assert [c["case"] for c in cases] == [1, 2, 3]
    for c in cases:
        okm = crypto.hkdf_sha256(h(c["ikm"]), h(c["salt"]), h(c["info"]), c["length"])
        assert okm == h(c["okm"]), "RFC 5869 case %d" % c["case"]


def test_hkdf_pure_path_matches_rfc5869():
    with patched(crypto, "_openssl_hmac_digest", None):
        for c in _rfc5869():
            okm = crypto.hkdf_sha256(h(c["ikm"]), h(c["salt"]), h(c["info"]), c["length"])
            assert okm == h(c["okm"]), c["case"]
            # the extract step alone (an empty salt means 32 zero bytes)
            salt = h(c["salt"]) or bytes(32)
            assert crypto.hmac_sha256_pure(salt, h(c["ikm"])) == h(c["prk"]), c["case"]


def test_hkdf_lengths():
    ikm = b"\x0b" * 22
    full = crypto.hkdf_sha256(ikm, b"salt", b"info", 255 * 32)
    assert len(full) == 255 * 32
    for n in (0, 1, 31, 32, 33, 64, 100):
        assert crypto.hkdf_sha256(ikm, b"salt", b"info", n) == full[:n]
    raises(ValueError, crypto.hkdf_sha256, ikm, b"salt", b"info", 255 * 32 + 1)
    raises(ValueError, crypto.hkdf_sha256, ikm, b"salt", b"info", -1)


def _check_constant_time_equal():
    eq = crypto.constant_time_equal
    assert eq(b"", b"")
    assert eq(b"abc", b"abc")
    assert eq(bytes(range(256)), bytes(range(256)))
    assert not eq(b"abc", b"abd")
    assert not eq(b"abc", b"bbc")
    assert not eq(b"abc", b"ab")
    assert not eq(b"", b"\x00")
    for i in range(16):
        a = bytes(16)
        b = bytes(i) + b"\x01" + bytes(15 - i)
        assert not eq(a, b)
        assert eq(b, bytes(b))


def test_constant_time_equal():
    _check_constant_time_equal()


def test_constant_time_equal_portable_loop():
    with patched(crypto, "_c_compare_digest", None):
        _check_constant_time_equal()
