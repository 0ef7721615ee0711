"""HMAC-SHA256, HKDF-SHA256 and constant-time comparison over ``hashlib.sha256``.

MicroPython has no ``hmac`` module and its hash objects can neither ``copy()``
nor be read twice, so HMAC is written out here (RFC 2104). On CPython the same
bytes come from ``hmac.digest`` (OpenSSL), which is faster; the test vectors
prove both paths equal.
"""

import hashlib

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Callable, Optional

    from .nal import Buffer
except ImportError:
    pass

try:
    from hmac import compare_digest as _hmac_compare_digest
    from hmac import digest as _hmac_digest

    # Assigned, not imported, under these names: they are Optional (None without hmac).
    _c_compare_digest: Optional[Callable[[bytes, bytes], bool]] = _hmac_compare_digest
    _openssl_hmac_digest: Optional[Callable[[bytes, Buffer, str], bytes]] = _hmac_digest
except ImportError:  # MicroPython, python3-minimal
    _c_compare_digest = None
    _openssl_hmac_digest = None

BLOCK_SIZE = 64
DIGEST_SIZE = 32

_IPAD = bytes(0x36 for _ in range(BLOCK_SIZE))
_OPAD = bytes(0x5C for _ in range(BLOCK_SIZE))


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad))


def _block_key(key: bytes) -> bytes:
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    return key + bytes(BLOCK_SIZE - len(key))


class HmacSha256:
    """Incremental HMAC-SHA256 whose key schedule is computed once.

    ``update`` then ``digest`` once: like MicroPython's own hash objects, an
    instance cannot be reused after ``digest``.
    """

    def __init__(self, key: bytes) -> None:
        block = _block_key(key)
        self._outer_key = _xor(block, _OPAD)
        self._inner = hashlib.sha256(_xor(block, _IPAD))

    def update(self, data: Buffer) -> None:
        self._inner.update(data)

    def digest(self) -> bytes:
        outer = hashlib.sha256(self._outer_key)
        outer.update(self._inner.digest())
        return outer.digest()


def hmac_sha256_pure(key: bytes, data: Buffer) -> bytes:
    """HMAC-SHA256 with nothing but ``hashlib.sha256`` (the MicroPython path)."""
    mac = HmacSha256(key)
    mac.update(data)
    return mac.digest()


def hmac_sha256(key: bytes, data: Buffer) -> bytes:
    """HMAC-SHA256; OpenSSL's when the interpreter has it, else the pure path."""
    if _openssl_hmac_digest is not None:
        return _openssl_hmac_digest(key, data, "sha256")
    return hmac_sha256_pure(key, data)


class MacKey:
    """HMAC-SHA256 under one key, its key schedule done once (a key that MACs many segments).

    Where hash objects can be copied (CPython), the inner and outer states are
    computed once and copied per message; elsewhere (MicroPython) the padded
    keys are kept, so no byte loop runs per message.
    """

    def __init__(self, key: bytes) -> None:
        block = _block_key(key)
        self._ipad = _xor(block, _IPAD)
        self._opad = _xor(block, _OPAD)
        # The keyed states' own copy methods where hash objects have one (CPython), else None;
        # looked up, not called by name, since MicroPython's hash objects have none.
        self._inner_copy = getattr(hashlib.sha256(self._ipad), "copy", None)
        self._outer_copy = getattr(hashlib.sha256(self._opad), "copy", None)

    def mac(self, *parts: Buffer) -> bytes:
        """HMAC-SHA256(key, the parts concatenated)."""
        if self._inner_copy is not None and self._outer_copy is not None:
            inner = self._inner_copy()
            for part in parts:
                inner.update(part)
            outer = self._outer_copy()
            outer.update(inner.digest())
            digest: bytes = outer.digest()
            return digest
        message = self._ipad
        for part in parts:  # one buffer, one call: MicroPython's calls cost more than the copy
            message += bytes(part)
        return hashlib.sha256(self._opad + hashlib.sha256(message).digest()).digest()


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract then expand to ``length`` bytes."""
    if length < 0 or length > 255 * DIGEST_SIZE:
        raise ValueError("HKDF length out of range")
    if not salt:
        salt = bytes(DIGEST_SIZE)
    prk = hmac_sha256(salt, ikm)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_sha256(prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time that depends only on their lengths.

    CPython's ``hmac.compare_digest`` when present; MicroPython has none, so
    the portable loop visits every byte whatever it finds.
    """
    if _c_compare_digest is not None:
        return _c_compare_digest(a, b)
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0

