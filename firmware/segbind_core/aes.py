"""AES-128-CTR keystreams (a placeholder on CPython's `cryptography`, replaced by the full
module with MicroPython backends)."""

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class Keystream:
    """AES-128-CTR from ``counter_block`` (16 bytes) under ``key`` (16 bytes): ``xor`` consumes
    it in order, across calls of any length."""

    def __init__(self, key: bytes, counter_block: bytes) -> None:
        self._enc = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()

    def xor(self, data: bytes) -> bytes:
        return self._enc.update(data)
