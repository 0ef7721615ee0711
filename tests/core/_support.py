"""Helpers shared by the core tests; plain Python that CPython and MicroPython both run.

The tests in this directory use no pytest feature (plain ``test_*`` functions
and ``assert``), so ``tests/micropython/run.mjs`` runs the very same files on
the real MicroPython VM and pytest collects them on CPython.
"""

import json
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

# tests/core/_support.py -> tests/vectors (the harness mirrors the repo layout)
_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0]
VECTORS_DIR = _HERE.rsplit("/", 1)[0] + "/vectors"


def load_vectors(name: str) -> dict:
    with open(VECTORS_DIR + "/" + name) as f:
        return json.load(f)


def h(text: str) -> bytes:
    """bytes from hex; spaces allowed for readability."""
    return bytes.fromhex(text.replace(" ", ""))


def raises(exc_type, fn, *args):
    """Call ``fn(*args)``; return the exception it raised, fail if it raised none."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


class patched:
    """Context manager: set ``obj.name = value`` for the block, then restore it."""

    def __init__(self, obj, name: str, value) -> None:
        self.obj = obj
        self.name = name
        self.value = value
        self.saved = None

    def __enter__(self):
        self.saved = getattr(self.obj, self.name)
        setattr(self.obj, self.name, self.value)
        return self

    def __exit__(self, *exc):
        setattr(self.obj, self.name, self.saved)
        return False


def generated(seed: bytes, n: int) -> bytes:
    """n deterministic bytes (SHA-256 in counter mode): the same on every interpreter."""
    import hashlib

    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        i += 1
    return out[:n]


def aes_ctr_reference(key: bytes, counter: int, data: bytes) -> bytes:
    """AES-128-CTR from the initial counter block ``counter`` (an integer, whole-block big-endian
    increment) sharing no code with segbind_core.aes's CTR: OpenSSL through ``cryptography`` on
    CPython; on MicroPython the mode's definition, C_i = P_i XOR AES(counter + i), block by block
    over the pure AES (FIPS-197, checked against its published vectors in test_core_aes)."""
    block = (counter % (1 << 128)).to_bytes(16, "big")
    if not IS_MICROPYTHON:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(key), modes.CTR(block)).encryptor().update(data)
    from segbind_core.aes import PureAes

    cipher = PureAes(key)
    out = bytearray()
    stream = bytearray(16)
    for off in range(0, len(data), 16):
        cipher.encrypt(((counter + off // 16) % (1 << 128)).to_bytes(16, "big"), stream)
        out += bytes(a ^ b for a, b in zip(data[off:off + 16], stream))
    return bytes(out)
