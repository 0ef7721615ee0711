"""The segbind v1 tag: fields, byte layout, content digest and MAC.

docs/FORMAT.md is the normative text; this module is its one implementation,
shared by the camera's tagger and the viewers' verifier.
"""

import hashlib
import sys

from .crypto import hmac_sha256
from .h264 import NAL_AUD, NAL_END_OF_SEQUENCE, NAL_END_OF_STREAM, NAL_FILLER

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Iterable, Union

    from .nal import Buffer
except ImportError:
    pass

VERSION = 1
ALG_HMAC_SHA256_128 = 1

MAC_SIZE = 16
LINK_SIZE = 8
DIGEST_HINT_SIZE = 4
MAX_ID_BYTES = 32
MAX_EPOCH = 0xFFFFFFFF
MAX_U64 = 0xFFFFFFFFFFFFFFFF

# The link carried by the first segment (seq 0) of every stream.
GENESIS_LINK = b"\xff" * LINK_SIZE

# NAL unit types left out of the content digest: framing that remuxers add or
# drop (access unit delimiters, end of sequence/stream, filler data).
UNCOVERED_NAL_TYPES = (NAL_AUD, NAL_END_OF_SEQUENCE, NAL_END_OF_STREAM, NAL_FILLER)

# On CPython a small copy costs less than a hash call, so units under 16 KiB
# are joined and hashed together; MicroPython keeps copy-free updates.
_JOIN_SMALL = sys.implementation.name == "cpython"
_SMALL_UNIT = 16384

MALFORMED = "malformed_tag"
UNKNOWN_VERSION = "unknown_version"


class TagError(ValueError):
    """A tag body that cannot be decoded; ``reason`` is MALFORMED or UNKNOWN_VERSION."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low group first, high bit = more follows."""
    if value < 0:
        raise ValueError("uvarint must not be negative")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_uvarint(buf: bytes, pos: int, limit: int) -> tuple[int, int]:
    """(value, new_pos); rejects truncated, non-minimal and out-of-range varints."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise TagError(MALFORMED, "tag truncated inside an integer field")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise TagError(MALFORMED, "integer field is not minimally encoded")
            if value > limit:
                raise TagError(MALFORMED, "integer field out of range")
            return value, pos
        shift += 7
        if shift > 63:
            raise TagError(MALFORMED, "integer field too long")


def _is_utf8(raw: bytes) -> bool:
    """Strict UTF-8 (RFC 3629; Unicode table 3-7), as CPython's decoder checks it.

    MicroPython's ``str(raw, "utf-8")`` accepts overlong forms, surrogates and
    code points above U+10FFFF, so both interpreters check ids with this.
    """
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            i += 1
            continue
        lo, hi = 0x80, 0xBF  # range of the first continuation byte
        if 0xC2 <= b <= 0xDF:
            more = 1
        elif 0xE0 <= b <= 0xEF:
            more = 2
            if b == 0xE0:
                lo = 0xA0  # no overlong 3-byte forms
            elif b == 0xED:
                hi = 0x9F  # no surrogates
        elif 0xF0 <= b <= 0xF4:
            more = 3
            if b == 0xF0:
                lo = 0x90  # no overlong 4-byte forms
            elif b == 0xF4:
                hi = 0x8F  # nothing above U+10FFFF
        else:
            return False
        if i + more >= n or not lo <= raw[i + 1] <= hi:
            return False
        for j in range(i + 2, i + more + 1):
            if not 0x80 <= raw[j] <= 0xBF:
                return False
        i += more + 1
    return True


def encode_id(name: str, what: str) -> bytes:
    """A length byte then the UTF-8 id; ``what`` names the field in errors."""
    raw = name.encode("utf-8")  # CPython raises on lone surrogates; MicroPython encodes them
    if not 1 <= len(raw) <= MAX_ID_BYTES or 0 in raw or not _is_utf8(raw):
        raise ValueError("%s id must be 1 to %d bytes of UTF-8 without NUL" % (what, MAX_ID_BYTES))
    return bytes((len(raw),)) + raw


def _decode_id(buf: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos >= len(buf):
        raise TagError(MALFORMED, "tag truncated before the %s id" % what)
    size = buf[pos]
    pos += 1
    if not 1 <= size <= MAX_ID_BYTES or pos + size > len(buf):
        raise TagError(MALFORMED, "%s id has a bad length" % what)
    raw = bytes(buf[pos:pos + size])  # MicroPython: `int in` works on bytes only
    if 0 in raw:
        raise TagError(MALFORMED, "%s id contains a zero byte" % what)
    if max(raw) >= 0x80 and not _is_utf8(raw):  # ASCII ids skip the byte loop
        raise TagError(MALFORMED, "%s id is not UTF-8" % what)
    return str(raw, "utf-8"), pos + size


class Tag:
    """One segment's tag: who it is bound to, where it sits in the stream, its MAC."""

    def __init__(self, owner: str, camera: str, epoch: int, stream_id: int, seq: int,
                 capture_ms: int, link: bytes, digest_hint: bytes = b"", mac: bytes = b"",
                 version: int = VERSION, alg: int = ALG_HMAC_SHA256_128) -> None:
        self.version = version
        self.alg = alg
        self.owner = owner
        self.camera = camera
        self.epoch = epoch
        self.stream_id = stream_id
        self.seq = seq
        self.capture_ms = capture_ms
        self.link = link
        self.digest_hint = digest_hint
        self.mac = mac

    def signed_fields(self) -> bytes:
        """Every carried byte before the MAC; the MAC covers these and the digest."""
        if not 0 <= self.epoch <= MAX_EPOCH:
            raise ValueError("epoch out of range")
        for value in (self.stream_id, self.seq, self.capture_ms):
            if not 0 <= value <= MAX_U64:
                raise ValueError("stream id, sequence number or capture time out of range")
        if len(self.link) != LINK_SIZE or len(self.digest_hint) != DIGEST_HINT_SIZE:
            raise ValueError("link or digest hint has the wrong size")
        return (
            bytes((self.version, self.alg))
            + encode_id(self.owner, "owner")
            + encode_id(self.camera, "camera")
            + encode_uvarint(self.epoch)
            + encode_uvarint(self.stream_id)
            + encode_uvarint(self.seq)
            + encode_uvarint(self.capture_ms)
            + self.link
            + self.digest_hint
        )

    def encode(self) -> bytes:
        """The tag body as carried in the SEI (signed fields, then the MAC)."""
        if len(self.mac) != MAC_SIZE:
            raise ValueError("tag has no MAC yet")
        return self.signed_fields() + self.mac

    def __repr__(self) -> str:
        return "Tag(owner=%r, camera=%r, epoch=%d, stream_id=%d, seq=%d, capture_ms=%d)" % (
            self.owner, self.camera, self.epoch, self.stream_id, self.seq, self.capture_ms)


def decode_tag(body: bytes) -> tuple[Tag, bytes]:
    """(Tag, signed_fields) from a tag body; raises TagError on any defect."""
    if len(body) < 1:
        raise TagError(MALFORMED, "empty tag")
    if body[0] != VERSION:
        raise TagError(UNKNOWN_VERSION, "tag format version %d is not supported" % body[0])
    if len(body) < 2:
        raise TagError(MALFORMED, "tag truncated after the version")
    if body[1] != ALG_HMAC_SHA256_128:
        raise TagError(UNKNOWN_VERSION, "tag algorithm %d is not supported" % body[1])
    owner, pos = _decode_id(body, 2, "owner")
    camera, pos = _decode_id(body, pos, "camera")
    epoch, pos = decode_uvarint(body, pos, MAX_EPOCH)
    stream_id, pos = decode_uvarint(body, pos, MAX_U64)
    seq, pos = decode_uvarint(body, pos, MAX_U64)
    capture_ms, pos = decode_uvarint(body, pos, MAX_U64)
    rest = len(body) - pos
    fixed = LINK_SIZE + DIGEST_HINT_SIZE + MAC_SIZE
    if rest < fixed:
        raise TagError(MALFORMED, "tag truncated (%d bytes short)" % (fixed - rest))
    if rest > fixed:
        raise TagError(MALFORMED, "tag has %d unexpected trailing bytes" % (rest - fixed))
    link = bytes(body[pos:pos + LINK_SIZE])
    pos += LINK_SIZE
    hint = bytes(body[pos:pos + DIGEST_HINT_SIZE])
    pos += DIGEST_HINT_SIZE
    tag = Tag(owner, camera, epoch, stream_id, seq, capture_ms, link, hint,
              bytes(body[pos:]))
    return tag, bytes(body[:pos])


def content_digest(buf: Buffer, units: Iterable[tuple[int, int]], prefixed: bool = False) -> bytes:
    """SHA-256 over the covered NAL units of a segment, in order.

    ``units`` are (start, end) offsets into ``buf``; each covered unit enters
    the hash as a 4-byte big-endian length then its bytes (escaped, as in the
    bitstream). That is MP4's length-prefixed framing, so Annex-B, MPEG-TS and
    MP4 carriage of one segment give one digest. The caller leaves segbind's
    own SEI out of ``units``.

    With ``prefixed``, the caller vouches that every unit sits right after its
    own 4-byte length in ``buf`` (as ``length_prefixed_units(buf, 4)`` finds
    them): runs of adjacent covered units are then hashed straight from
    ``buf``, one call a run.
    """
    view = memoryview(buf)
    h = hashlib.sha256()
    small: list[Union[bytes, memoryview]] = []  # CPython: small units gathered, hashed in one call
    run_start = run_end = -1
    for s, e in units:
        if buf[s] & 0x1F in UNCOVERED_NAL_TYPES:
            continue
        if prefixed:
            if s - 4 != run_end:
                if run_end > run_start:
                    h.update(view[run_start:run_end])
                run_start = s - 4
            run_end = e
        elif _JOIN_SMALL and e - s < _SMALL_UNIT:
            small.append((e - s).to_bytes(4, "big"))
            small.append(view[s:e])
        else:
            if small:
                h.update(b"".join(small))
                small = []
            h.update((e - s).to_bytes(4, "big"))
            h.update(view[s:e])
    if small:
        h.update(b"".join(small))
    if run_end > run_start:
        h.update(view[run_start:run_end])
    return h.digest()


def compute_mac(binding_key: bytes, signed_fields: bytes, digest: bytes) -> bytes:
    """The tag's MAC: HMAC-SHA256 over the signed fields and the content digest, first 16 bytes."""
    return hmac_sha256(binding_key, signed_fields + digest)[:MAC_SIZE]
