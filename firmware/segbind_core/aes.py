"""AES-128 in counter mode, as MPEG Common Encryption's 'cenc' scheme uses it with 16-byte IVs.

The camera encrypts the slice data of every picture and the verifiers decrypt it: one initial
counter block (the picture's IV) and one keystream that every protected byte range of the
picture consumes in order. The counter is the whole 128-bit block, incremented as a big-endian
integer modulo 2**128 after each block (NIST SP 800-38A, appendix B.1 with m = 128).

One API everywhere, its backend chosen once, at import (``BACKEND``; ``BACKENDS`` lists every
one this interpreter can run, fastest first):

- ``cryptography``: OpenSSL's AES-CTR (CPython);
- ``cryptolib+viper``: MicroPython's ``cryptolib`` AES in ECB mode over a buffer of counter
  blocks, the counter blocks and the XOR written by viper code (ports with the native emitter);
- ``cryptolib``: the same, the counter blocks and the XOR done with big integers (ports
  without the native emitter);
- ``pure``: FIPS-197 in Python, for an interpreter with neither (the WebAssembly VM, a
  python3-minimal camera): correct and slow, for test vectors and interoperability.

Usage::

    key = CtrKey(content_key)                   # once per key: the key schedule
    stream = key.keystream(iv)                  # once per picture (a few microseconds on CPython)
    stream.xor_into(slice_data, slice_data)     # in place, range after range
    next_iv = stream.next_counter_block()       # or: the next picture's IV, the same keystream

``xor_into`` allocates nothing on CPython and with viper; the big-integer and pure paths build
their output in integers, then copy it into ``out``.
"""

import sys

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Callable, Optional, Tuple, Union

    from .nal import Buffer

    WritableBuffer = Union[bytearray, memoryview]
except ImportError:
    pass

try:  # CPython: OpenSSL through the cryptography package
    from cryptography.hazmat.primitives.ciphers import (  # type: ignore[import-not-found, unused-ignore]
        Cipher,
        algorithms,
        modes,
    )

    _HAVE_CRYPTOGRAPHY = True
except ImportError:  # MicroPython, python3-minimal
    _HAVE_CRYPTOGRAPHY = False

try:  # MicroPython ports with AES (mbedTLS or axTLS); its CTR mode is usually compiled out
    import cryptolib  # type: ignore[import-not-found, unused-ignore]

    _HAVE_CRYPTOLIB = True
except ImportError:
    _HAVE_CRYPTOLIB = False

KEY_SIZE = 16
BLOCK_SIZE = 16
_COUNTER_MASK = (1 << 128) - 1
_ECB = 1  # cryptolib's mode number for ECB (PEP 272); MODE_ECB exists only on some ports
# Counter blocks encrypted per ECB call, a trade between memory and per-call overhead: viper's
# path allocates nothing but its scratch; the big-integer one makes several transient integers
# the size of a chunk, and gets slower past 4 KB on MicroPython (measured on the unix port).
CHUNK_BLOCKS_VIPER = 1024
CHUNK_BLOCKS_INTEGERS = 256

# The counter blocks and the XOR in viper code, compiled by the port's own compiler at import:
# mpy-cross and ports without a native emitter cannot compile the decorator, so it lives in a
# string, and its absence (a SyntaxError here) leaves the big-integer path.
_VIPER_SOURCE = """
import micropython


@micropython.viper
def fill_counters(blocks, count: int, prefix, low: uint):
    # Block i of blocks = prefix (12 bytes) || big-endian 32-bit (low + i); low + count <= 2**32.
    words = ptr32(blocks)
    head = ptr32(prefix)
    out = ptr8(blocks)
    p0 = head[0]
    p1 = head[1]
    p2 = head[2]
    i = 0
    while i < count:
        w = i << 2
        words[w] = p0
        words[w + 1] = p1
        words[w + 2] = p2
        v = low + uint(i)
        b = (i << 4) + 12
        out[b] = v >> 24
        out[b + 1] = v >> 16
        out[b + 2] = v >> 8
        out[b + 3] = v
        i += 1


@micropython.viper
def xor_buffers(dst, a, b, n: int):
    # dst[:n] = a[:n] XOR b[:n]; by words when all three are word-aligned (some CPUs fault otherwise).
    d8 = ptr8(dst)
    a8 = ptr8(a)
    b8 = ptr8(b)
    i = 0
    if ((uint(d8) | uint(a8) | uint(b8)) & 3) == uint(0):
        d32 = ptr32(dst)
        a32 = ptr32(a)
        b32 = ptr32(b)
        words = n >> 2
        while i < words:
            d32[i] = a32[i] ^ b32[i]
            i += 1
        i = words << 2
    while i < n:
        d8[i] = a8[i] ^ b8[i]
        i += 1


@micropython.viper
def zero_pair(buf, start: int, end: int) -> int:
    # The first i in [start, end - 1) with buf[i] == buf[i + 1] == 0, else -1: where ciphertext
    # may need an emulation-prevention byte (segbind_core.protect). A word at a time: most words
    # of ciphertext hold no zero byte.
    p = ptr8(buf)
    i = start
    while i < end - 1 and (uint(p) + uint(i)) & 3:
        if p[i] == 0 and p[i + 1] == 0:
            return i
        i += 1
    words = ptr32(uint(p) + uint(i))
    n = (end - 1 - i) >> 2
    j = 0
    while j < n:
        v = words[j]
        if ((v - 0x01010101) & (~v) & 0x80808080) != 0:
            k = i + (j << 2)
            m = k + 4
            while k < m:
                if p[k] == 0 and p[k + 1] == 0:
                    return k
                k += 1
        j += 1
    k = i + (n << 2)
    while k < end - 1:
        if p[k] == 0 and p[k + 1] == 0:
            return k
        k += 1
    return -1
"""


def _viper_kernels() -> "Optional[Tuple[Any, Any, Any]]":
    """(fill_counters, xor_buffers, zero_pair) where this MicroPython port compiles viper code,
    else None."""
    if sys.implementation.name != "micropython":
        return None
    scope: "dict[str, Any]" = {}
    try:
        exec(_VIPER_SOURCE, scope)
    except Exception:  # no native emitter (SyntaxError), no exec: the big-integer path is the answer
        return None
    return scope["fill_counters"], scope["xor_buffers"], scope["zero_pair"]


# ---- FIPS-197 AES-128 encryption in Python ---------------------------------------------------


def _xtime(b: int) -> int:
    """b times x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197 section 4.2.1)."""
    return ((b << 1) ^ 0x1B) & 0xFF if b & 0x80 else b << 1


_TABLES: "Optional[Tuple[bytes, bytes, bytes]]" = None


def _tables() -> "Tuple[bytes, bytes, bytes]":
    """The S-box (FIPS-197 section 5.1.1: inverse in GF(2^8), then the affine map), and the
    S-box times 2 and times 3 (MixColumns' coefficients); computed once, on first use."""
    global _TABLES
    if _TABLES is None:
        exp = bytearray(256)
        log = bytearray(256)
        x = 1
        for i in range(255):  # 3 generates GF(2^8)'s multiplicative group
            exp[i] = x
            log[x] = i
            x ^= _xtime(x)
        sbox = bytearray(256)
        for a in range(256):
            inverse = exp[(255 - log[a]) % 255] if a else 0
            s = inverse
            for shift in (1, 2, 3, 4):
                s ^= ((inverse << shift) | (inverse >> (8 - shift))) & 0xFF
            sbox[a] = s ^ 0x63
        _TABLES = (bytes(sbox), bytes(_xtime(s) for s in sbox), bytes(_xtime(s) ^ s for s in sbox))
    return _TABLES


def _expand_key(key: bytes) -> bytes:
    """The 11 round keys (176 bytes) of an AES-128 key (FIPS-197 section 5.2)."""
    sbox = _tables()[0]
    w = bytearray(key)
    rcon = 1
    for i in range(4, 44):
        n = len(w)
        t = w[n - 4:n]
        if i % 4 == 0:  # RotWord, SubWord, Rcon
            t = bytearray((sbox[t[1]] ^ rcon, sbox[t[2]], sbox[t[3]], sbox[t[0]]))
            rcon = _xtime(rcon)
        w.extend(bytes(w[n - 16 + j] ^ t[j] for j in range(4)))
    return bytes(w)


class PureAes:
    """AES-128 encryption in Python (FIPS-197): correct and slow, about a thousand times slower
    than a C implementation. It exists for interpreters without any AES (the WebAssembly VM, a
    python3-minimal camera) and as an independent check of the others; never for real video."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("AES-128 takes a 16-byte key")
        self._round_keys = _expand_key(bytes(key))

    def encrypt(self, src: "Buffer", dst: "WritableBuffer") -> None:
        """ECB over the whole blocks of ``src`` into ``dst`` (which may be ``src``): the contract
        of MicroPython's ``cryptolib.aes(key, 1).encrypt(src, dst)``."""
        if len(src) % BLOCK_SIZE or len(dst) < len(src):
            raise ValueError("whole blocks in, as many out")
        rk = self._round_keys
        S, M2, M3 = _tables()
        for off in range(0, len(src), BLOCK_SIZE):
            # The state in input order (column by column); each line below is one output byte
            # of SubBytes, ShiftRows, MixColumns and AddRoundKey together, alternately from the
            # s variables into the t variables and back, so no round allocates.
            s0, s1, s2, s3 = src[off] ^ rk[0], src[off + 1] ^ rk[1], src[off + 2] ^ rk[2], src[off + 3] ^ rk[3]
            s4, s5, s6, s7 = src[off + 4] ^ rk[4], src[off + 5] ^ rk[5], src[off + 6] ^ rk[6], src[off + 7] ^ rk[7]
            s8, s9, s10, s11 = (src[off + 8] ^ rk[8], src[off + 9] ^ rk[9], src[off + 10] ^ rk[10],
                                src[off + 11] ^ rk[11])
            s12, s13, s14, s15 = (src[off + 12] ^ rk[12], src[off + 13] ^ rk[13], src[off + 14] ^ rk[14],
                                  src[off + 15] ^ rk[15])
            k = 16
            while True:
                t0 = M2[s0] ^ M3[s5] ^ S[s10] ^ S[s15] ^ rk[k]
                t1 = S[s0] ^ M2[s5] ^ M3[s10] ^ S[s15] ^ rk[k + 1]
                t2 = S[s0] ^ S[s5] ^ M2[s10] ^ M3[s15] ^ rk[k + 2]
                t3 = M3[s0] ^ S[s5] ^ S[s10] ^ M2[s15] ^ rk[k + 3]
                t4 = M2[s4] ^ M3[s9] ^ S[s14] ^ S[s3] ^ rk[k + 4]
                t5 = S[s4] ^ M2[s9] ^ M3[s14] ^ S[s3] ^ rk[k + 5]
                t6 = S[s4] ^ S[s9] ^ M2[s14] ^ M3[s3] ^ rk[k + 6]
                t7 = M3[s4] ^ S[s9] ^ S[s14] ^ M2[s3] ^ rk[k + 7]
                t8 = M2[s8] ^ M3[s13] ^ S[s2] ^ S[s7] ^ rk[k + 8]
                t9 = S[s8] ^ M2[s13] ^ M3[s2] ^ S[s7] ^ rk[k + 9]
                t10 = S[s8] ^ S[s13] ^ M2[s2] ^ M3[s7] ^ rk[k + 10]
                t11 = M3[s8] ^ S[s13] ^ S[s2] ^ M2[s7] ^ rk[k + 11]
                t12 = M2[s12] ^ M3[s1] ^ S[s6] ^ S[s11] ^ rk[k + 12]
                t13 = S[s12] ^ M2[s1] ^ M3[s6] ^ S[s11] ^ rk[k + 13]
                t14 = S[s12] ^ S[s1] ^ M2[s6] ^ M3[s11] ^ rk[k + 14]
                t15 = M3[s12] ^ S[s1] ^ S[s6] ^ M2[s11] ^ rk[k + 15]
                if k == 144:  # round 9 done: the last round has no MixColumns
                    break
                k += 16
                s0 = M2[t0] ^ M3[t5] ^ S[t10] ^ S[t15] ^ rk[k]
                s1 = S[t0] ^ M2[t5] ^ M3[t10] ^ S[t15] ^ rk[k + 1]
                s2 = S[t0] ^ S[t5] ^ M2[t10] ^ M3[t15] ^ rk[k + 2]
                s3 = M3[t0] ^ S[t5] ^ S[t10] ^ M2[t15] ^ rk[k + 3]
                s4 = M2[t4] ^ M3[t9] ^ S[t14] ^ S[t3] ^ rk[k + 4]
                s5 = S[t4] ^ M2[t9] ^ M3[t14] ^ S[t3] ^ rk[k + 5]
                s6 = S[t4] ^ S[t9] ^ M2[t14] ^ M3[t3] ^ rk[k + 6]
                s7 = M3[t4] ^ S[t9] ^ S[t14] ^ M2[t3] ^ rk[k + 7]
                s8 = M2[t8] ^ M3[t13] ^ S[t2] ^ S[t7] ^ rk[k + 8]
                s9 = S[t8] ^ M2[t13] ^ M3[t2] ^ S[t7] ^ rk[k + 9]
                s10 = S[t8] ^ S[t13] ^ M2[t2] ^ M3[t7] ^ rk[k + 10]
                s11 = M3[t8] ^ S[t13] ^ S[t2] ^ M2[t7] ^ rk[k + 11]
                s12 = M2[t12] ^ M3[t1] ^ S[t6] ^ S[t11] ^ rk[k + 12]
                s13 = S[t12] ^ M2[t1] ^ M3[t6] ^ S[t11] ^ rk[k + 13]
                s14 = S[t12] ^ S[t1] ^ M2[t6] ^ M3[t11] ^ rk[k + 14]
                s15 = M3[t12] ^ S[t1] ^ S[t6] ^ M2[t11] ^ rk[k + 15]
                k += 16
            dst[off] = S[t0] ^ rk[160]
            dst[off + 1] = S[t5] ^ rk[161]
            dst[off + 2] = S[t10] ^ rk[162]
            dst[off + 3] = S[t15] ^ rk[163]
            dst[off + 4] = S[t4] ^ rk[164]
            dst[off + 5] = S[t9] ^ rk[165]
            dst[off + 6] = S[t14] ^ rk[166]
            dst[off + 7] = S[t3] ^ rk[167]
            dst[off + 8] = S[t8] ^ rk[168]
            dst[off + 9] = S[t13] ^ rk[169]
            dst[off + 10] = S[t2] ^ rk[170]
            dst[off + 11] = S[t7] ^ rk[171]
            dst[off + 12] = S[t12] ^ rk[172]
            dst[off + 13] = S[t1] ^ rk[173]
            dst[off + 14] = S[t6] ^ rk[174]
            dst[off + 15] = S[t11] ^ rk[175]


# ---- keystreams -------------------------------------------------------------------------------


class Keystream:
    """The keystream of one initial counter block, consumed in order: each call continues where
    the previous one stopped, whatever the lengths (several ranges of one picture)."""

    def xor(self, data: "Buffer") -> bytes:
        """The next ``len(data)`` keystream bytes XOR ``data``."""
        raise NotImplementedError

    def xor_into(self, data: "Buffer", out: "WritableBuffer") -> None:
        """The same into ``out[:len(data)]`` (``out`` may be ``data`` itself: in place)."""
        raise NotImplementedError

    def pending(self) -> int:
        """Keystream bytes left in the current block (0 to 15): where the next call starts
        within a block. A caller that places its data so that it plus ``pending()`` is a
        multiple of 4 bytes gets the ECB backends' XOR a word at a time."""
        raise NotImplementedError

    def next_counter_block(self) -> bytes:
        """Drop the unused rest of the current block; the counter block the keystream goes on
        from. A fresh keystream from it equals this one from here on: a camera that gives its
        next picture this IV encrypts a whole segment with one keystream (counters that never
        overlap), without a new cipher context per picture."""
        raise NotImplementedError


def _check_counter_block(counter_block: "Buffer") -> None:
    if len(counter_block) != BLOCK_SIZE:
        raise ValueError("the initial counter block is 16 bytes")


def _check_out(data: "Buffer", out: "WritableBuffer") -> None:
    if len(out) < len(data):
        raise ValueError("out is shorter than data")


def _exporter(buffer: "Buffer") -> "Any":
    """The object whose memory ``buffer`` is: a memoryview's (a slice's too) is the object it
    was made from."""
    return getattr(buffer, "obj", buffer)


def _update_into_takes_exact_buffers() -> bool:
    """cryptography before 42 wants 15 spare bytes after the output of ``update_into``."""
    encryptor = Cipher(algorithms.AES(bytes(KEY_SIZE)), modes.CTR(bytes(BLOCK_SIZE))).encryptor()
    try:
        encryptor.update_into(bytes(BLOCK_SIZE), bytearray(BLOCK_SIZE))
    except ValueError:
        return False
    return True


def _openssl_usable() -> bool:
    """True when cryptography's OpenSSL backend loads: it does on first use, not on import, and
    its load needs modules a camera may lack (Debian's imports ``hmac``: a python3 without it
    takes the pure AES, as it takes the pure HMAC)."""
    try:
        Cipher(algorithms.AES(bytes(KEY_SIZE)), modes.CTR(bytes(BLOCK_SIZE))).encryptor()
    except ImportError:
        return False
    return True


_HAVE_CRYPTOGRAPHY = _HAVE_CRYPTOGRAPHY and _openssl_usable()
_EXACT_UPDATE_INTO = _HAVE_CRYPTOGRAPHY and _update_into_takes_exact_buffers()


class _OpensslKeystream(Keystream):
    """OpenSSL's CTR: it keeps the counter and the unused keystream of a partial block itself."""

    def __init__(self, algorithm: "Any", counter_block: "Buffer") -> None:
        self._initial = bytes(counter_block)
        self._encryptor = Cipher(algorithm, modes.CTR(self._initial)).encryptor()
        self._used = 0  # keystream bytes consumed, for next_counter_block

    def xor(self, data: "Buffer") -> bytes:
        self._used += len(data)
        out: bytes = self._encryptor.update(data)
        return out

    def xor_into(self, data: "Buffer", out: "WritableBuffer") -> None:
        _check_out(data, out)
        n = len(data)
        self._used += n
        if _exporter(data) is _exporter(out):
            # in place (or views of one buffer): cryptography 51 refuses overlapping buffers
            # in update_into ("data and buf must not overlap"), so through a copy
            out[:n] = self._encryptor.update(data)
            return
        if _EXACT_UPDATE_INTO:
            self._encryptor.update_into(data, out)
            return
        head = n - (BLOCK_SIZE - 1)  # old versions: the head into out (15 bytes to spare), the tail after
        view = memoryview(data)
        if head > 0:
            self._encryptor.update_into(view[:head], out)
        else:
            head = 0
        out[head:n] = self._encryptor.update(view[head:])

    def pending(self) -> int:
        return -self._used % BLOCK_SIZE

    def next_counter_block(self) -> bytes:
        blocks = (self._used + BLOCK_SIZE - 1) // BLOCK_SIZE
        rest = blocks * BLOCK_SIZE - self._used
        if rest:
            self._encryptor.update(bytes(rest))  # the rest of the block, never used
            self._used += rest
        return ((int.from_bytes(self._initial, "big") + blocks) & _COUNTER_MASK).to_bytes(BLOCK_SIZE, "big")


class _EcbKeystream(Keystream):
    """CTR built on an ECB block function: a chunk of counter blocks, one ECB call over it,
    then an XOR with the data; the unused tail of the last block is kept for the next call."""

    def __init__(self, key: "CtrKey", counter_block: "Buffer") -> None:
        self._key = key
        self._counter = int.from_bytes(bytes(counter_block), "big")
        self._spare = b""  # keystream bytes generated and not used yet (fewer than a block)

    def xor(self, data: "Buffer") -> bytes:
        out = bytearray(len(data))
        self.xor_into(data, out)
        return bytes(out)

    def xor_into(self, data: "Buffer", out: "WritableBuffer") -> None:
        _check_out(data, out)
        n = len(data)
        src = memoryview(data)
        dst = memoryview(out)
        pos = 0
        spare = self._spare
        if spare and n:
            pos = len(spare) if len(spare) < n else n
            for i in range(pos):
                dst[i] = src[i] ^ spare[i]
            self._spare = spare[pos:]
        key = self._key
        xor = key._xor
        scratch = key._scratch
        most = len(scratch)
        while pos < n:
            left = n - pos
            made = self._next_blocks(((left if left < most else most) + BLOCK_SIZE - 1) >> 4) << 4
            take = left if left < made else made
            xor(dst[pos:pos + take], src[pos:pos + take], scratch, take)
            if take < made:
                self._spare = bytes(key._scratch_view[take:made])
            pos += take

    def pending(self) -> int:
        return len(self._spare)

    def next_counter_block(self) -> bytes:
        self._spare = b""
        return self._counter.to_bytes(BLOCK_SIZE, "big")

    def _next_blocks(self, count: int) -> int:
        """Encrypt up to ``count`` counter blocks into the key's scratch buffer; how many."""
        key = self._key
        counter = self._counter
        if key._fill is not None:  # viper: the low 32 bits must not carry inside one fill
            low = counter & 0xFFFFFFFF
            if count > 0x100000000 - low:
                count = 0x100000000 - low
            high = counter >> 32
            if high != key._prefix_value:
                key._prefix[0:12] = high.to_bytes(12, "big")
                key._prefix_value = high
            key._fill(key._scratch, count, key._prefix, low)
            blocks = key._scratch if count == key._chunk_blocks else key._scratch_view[:count << 4]
            key._encrypt(blocks, blocks)
        else:  # big integers: the block repeated, plus 0, 1, 2... in each block's place
            if count > _COUNTER_MASK + 1 - counter:
                count = _COUNTER_MASK + 1 - counter
            repeated = int.from_bytes(counter.to_bytes(BLOCK_SIZE, "big") * count, "big")
            ramp = _ramp(key._chunk_blocks) >> (128 * (key._chunk_blocks - count))
            key._encrypt((repeated + ramp).to_bytes(count << 4, "big"), key._scratch_view[:count << 4])
        self._counter = (counter + count) & _COUNTER_MASK
        return count


_RAMPS: "dict[int, int]" = {}


def _ramp(count: int) -> int:
    """0, 1, ... count - 1 as consecutive 16-byte big-endian blocks, read as one integer."""
    ramp = _RAMPS.get(count)
    if ramp is None:
        ramp = _RAMPS[count] = int.from_bytes(b"".join(i.to_bytes(BLOCK_SIZE, "big") for i in range(count)), "big")
    return ramp


def _xor_with_integers(dst: memoryview, a: memoryview, b: "WritableBuffer", n: int) -> None:
    """dst[:n] = a[:n] XOR b[:n], one big-integer XOR (no loop runs per byte)."""
    dst[0:n] = (int.from_bytes(a, "big") ^ int.from_bytes(memoryview(b)[:n], "big")).to_bytes(n, "big")


_VIPER = _viper_kernels()

ZERO_PAIR: "Optional[Callable[[Any, int, int], int]]" = _VIPER[2] if _VIPER is not None else None
"""Where the next two zero bytes of a buffer are (viper code; None where there is none): for
``segbind_core.protect``'s emulation-prevention check on MicroPython."""

BACKENDS: "Tuple[str, ...]" = tuple(name for name, present in (
    ("cryptography", _HAVE_CRYPTOGRAPHY),
    ("cryptolib+viper", _HAVE_CRYPTOLIB and _VIPER is not None),
    ("cryptolib", _HAVE_CRYPTOLIB),
    ("pure", True)) if present)
"""The backends this interpreter can run, fastest first."""

BACKEND = BACKENDS[0]
"""The backend every ``CtrKey`` uses unless told otherwise."""


class CtrKey:
    """One AES-128 key for counter mode, its key schedule done once: a camera keeps one per
    content key and makes a keystream per picture. On MicroPython's and the pure backends a
    key's keystreams share its scratch buffer: use them from one thread."""

    def __init__(self, key: "Buffer", backend: "Optional[str]" = None) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("AES-128 takes a 16-byte key")
        self.backend = BACKEND if backend is None else backend
        if self.backend not in BACKENDS:
            raise ValueError("backend %r is not available here (%s)" % (self.backend, ", ".join(BACKENDS)))
        key = bytes(key)
        self._fill: "Optional[Callable[..., None]]" = None
        self._xor: "Callable[[memoryview, memoryview, WritableBuffer, int], None]" = _xor_with_integers
        if self.backend == "cryptography":
            self._algorithm = algorithms.AES(key)
            return
        self._chunk_blocks = CHUNK_BLOCKS_INTEGERS
        if self.backend == "pure":
            self._encrypt: "Callable[[Buffer, WritableBuffer], Any]" = PureAes(key).encrypt
        else:
            self._encrypt = cryptolib.aes(key, _ECB).encrypt
            if self.backend == "cryptolib+viper" and _VIPER is not None:
                self._fill, self._xor = _VIPER[0], _VIPER[1]
                self._chunk_blocks = CHUNK_BLOCKS_VIPER
                self._prefix = bytearray(12)  # the counter's upper 96 bits, word-aligned for the fill
                self._prefix_value = -1  # what _prefix holds (none yet)
        self._scratch = bytearray(self._chunk_blocks * BLOCK_SIZE)
        self._scratch_view = memoryview(self._scratch)

    def keystream(self, counter_block: "Buffer") -> Keystream:
        """The keystream from ``counter_block`` (16 bytes: the picture's IV)."""
        _check_counter_block(counter_block)
        if self.backend == "cryptography":
            return _OpensslKeystream(self._algorithm, counter_block)
        return _EcbKeystream(self, counter_block)
