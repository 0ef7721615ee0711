"""docs/FORMAT.md version 3, written again from the document for tests, sharing no code with
segbind_core: the key schedule through ``cryptography``'s HKDF, AES-128-CTR through
``cryptography``, HMAC-SHA256 through the standard library's ``hmac``, SHA-256 through
``hashlib``; the Annex-B scan, emulation prevention, the escape, the protected form, the
counter blocks, the tag body, the SEI and the tagged segment written out here byte by byte.

tests/lib/test_vectors.py checks tests/vectors/segbind_v3.json (made by the core on
MicroPython) with it; tests/lib/test_encryption.py checks the core's tagger on real encoders'
segments with it. Slice headers (the clear lead) it does not parse: the vectors say the lead,
and the encryption tests take it from FFmpeg's trace_headers.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"segbind/v3"
UUID = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
GENESIS = b"\xff" * 8
START = b"\x00\x00\x00\x01"
SEI_HEADER = {1: b"\x06", 2: b"\x4e\x01"}
DOMAIN_SEGMENT, DOMAIN_STILL = 0, 1


# ---- keys (section 2) ------------------------------------------------------------------------

def hkdf(ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=SALT, info=info).derive(ikm)


def ident(text: str) -> bytes:
    raw = text.encode("utf-8")
    assert 1 <= len(raw) <= 32 and b"\x00" not in raw
    return bytes([len(raw)]) + raw


def epoch_root(pairing: bytes, owner: str, camera: str, epoch: int, period_s: int) -> bytes:
    assert 1 <= epoch < 2**31 and 60 <= period_s <= 86400
    return hkdf(pairing, b"segbind/v3 epoch\x00" + ident(owner) + ident(camera) + epoch.to_bytes(4, "big")
                + period_s.to_bytes(4, "big"), 32)


def period_root(root: bytes, period: int) -> bytes:
    return hkdf(root, b"segbind/v3 period\x00" + period.to_bytes(8, "big"), 32)


def slot_key(period_root_key: bytes, slot: int, holder: str) -> bytes:
    return hkdf(period_root_key, b"segbind/v3 slot\x00" + bytes([slot]) + ident(holder), 32)


def content_key(period_root_key: bytes) -> bytes:
    return hkdf(period_root_key, b"segbind/v3 content\x00", 16)


def key_id(period_root_key: bytes) -> bytes:
    return hkdf(period_root_key, b"segbind/v3 key id\x00", 16)


def command_key(pairing: bytes, owner: str, camera: str) -> bytes:
    return hkdf(pairing, b"segbind/v3 command\x00" + ident(owner) + ident(camera), 32)


@dataclass
class PeriodKeys:
    period: int
    key_id: bytes
    content_key: bytes
    slot_keys: List[bytes]
    start_ms: int
    end_ms: int


def period_keys(pairing: bytes, owner: str, camera: str, epoch: int, period_s: int, shares: Sequence[str],
                capture_ms: int) -> PeriodKeys:
    """The keys of the period that holds ``capture_ms``, a slot key per holder (owner first)."""
    period = capture_ms // (1000 * period_s)
    q = period_root(epoch_root(pairing, owner, camera, epoch, period_s), period)
    holders = [owner, *shares]
    return PeriodKeys(period, key_id(q), content_key(q), [slot_key(q, s, a) for s, a in enumerate(holders)],
                      period * period_s * 1000, (period + 1) * period_s * 1000)


# ---- byte streams ---------------------------------------------------------------------------

def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_leb128(buf: bytes, pos: int, limit: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            assert byte or shift == 7, "not minimal"
            assert value <= limit, "out of range"
            return value, pos


def split_annexb(buf: bytes) -> List[bytes]:
    """NAL units between start codes (00 00 01, optionally preceded by zeros), trailing zeros off."""
    units, i, start = [], 0, None
    while i + 3 <= len(buf):
        if buf[i:i + 3] == b"\x00\x00\x01":
            if start is not None:
                units.append(buf[start:i].rstrip(b"\x00"))
            start = i = i + 3
        else:
            i += 1
    if start is not None:
        units.append(buf[start:].rstrip(b"\x00"))
    return [u for u in units if u]


def nal_type(unit: bytes, codec: int) -> int:
    return unit[0] & 0x1F if codec == 1 else (unit[0] >> 1) & 0x3F


def is_picture(unit: bytes, codec: int) -> bool:
    kind = nal_type(unit, codec)
    return 1 <= kind <= 5 if codec == 1 else kind <= 31


def is_delimiter(unit: bytes, codec: int) -> bool:
    return nal_type(unit, codec) == (9 if codec == 1 else 35)


def epb_insert(data: bytes, zeros: int = 0, next_byte: Optional[int] = None) -> bytes:
    """Emulation prevention (H.264 7.4.1): a 03 after two zero bytes before 00..03; ``zeros`` zero
    bytes counted before ``data``, ``next_byte`` after it (None: nothing follows)."""
    out = bytearray()
    for b in data:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    if next_byte is not None and zeros >= 2 and next_byte <= 3:
        out.append(3)
    return bytes(out)


def epb_remove(data: bytes, zeros: int = 0) -> bytes:
    out = bytearray()
    for b in data:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def zeros_at_end(prefix: bytes) -> int:
    return min(2, len(prefix) - len(prefix.rstrip(b"\x00")))


def start_code_emulations(unit: bytes) -> List[int]:
    """Where a unit holds 00 00 00/01/02 or a 00 00 03 followed by more than 03."""
    return [i for i in range(len(unit) - 2) if unit[i] == 0 and unit[i + 1] == 0
            and (unit[i + 2] <= 2 or (unit[i + 2] == 3 and i + 3 < len(unit) and unit[i + 3] > 3))]


# ---- encryption (section 4) --------------------------------------------------------------------

def initial_counter(domain: int, stream_id: int, seq: int) -> int:
    return int.from_bytes(bytes([domain]) + stream_id.to_bytes(6, "big") + seq.to_bytes(4, "big") + bytes(5), "big")


def aes_ctr(key: bytes, counter: int, data: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.CTR((counter % 2**128).to_bytes(16, "big"))).encryptor().update(data)


def access_units(units: Sequence[bytes], codec: int) -> List[List[int]]:
    """Unit indexes grouped by access unit: each begins at a delimiter (the first at the start)."""
    groups: List[List[int]] = []
    for i, unit in enumerate(units):
        if is_delimiter(unit, codec) or not groups:
            groups.append([])
        groups[-1].append(i)
    return groups


def _crypt_ranges(ranges: Dict[int, bytes], units: Sequence[bytes], codec: int, key: bytes, domain: int,
                  stream_id: int, seq: int) -> Tuple[Dict[int, bytes], List[int]]:
    """Each access unit's ranges through AES-CTR from its own counter block: initial + the
    blocks the access units before it used (section 4.3). Returns the ranges transformed and
    each access unit's counter block."""
    initial = initial_counter(domain, stream_id, seq)
    blocks = 0
    out: Dict[int, bytes] = {}
    counters = []
    for group in access_units(units, codec):
        counters.append(initial + blocks)
        members = [i for i in group if i in ranges]
        joined = b"".join(ranges[i] for i in members)
        stream = aes_ctr(key, initial + blocks, joined)
        at = 0
        for i in members:
            out[i] = stream[at:at + len(ranges[i])]
            at += len(ranges[i])
        blocks += -(-len(joined) // 16)
    return out, counters


def protect(units: Sequence[bytes], codec: int, lead: int, key: bytes, domain: int, stream_id: int,
            seq: int) -> Tuple[List[bytes], List[int]]:
    """(the protected form of each unit, each access unit's counter block)."""
    ranges = {i: u[lead:-1] for i, u in enumerate(units) if is_picture(u, codec) and len(u) - 1 > lead}
    cipher, counters = _crypt_ranges(ranges, units, codec, key, domain, stream_id, seq)
    out = list(units)
    for i, c in cipher.items():
        u = units[i]
        out[i] = u[:lead] + epb_insert(c, zeros_at_end(u[:lead]), u[-1]) + u[-1:]
    return out, counters


def ciphertext(unit: bytes, lead: int) -> bytes:
    """What a picture unit in protected form carries encrypted (what Common Encryption stores)."""
    return epb_remove(unit[lead:-1], zeros_at_end(unit[:lead])) if len(unit) - 1 > lead else b""


def unprotect(units: Sequence[bytes], codec: int, lead: int, key: bytes, domain: int, stream_id: int,
              seq: int) -> List[bytes]:
    ranges = {i: ciphertext(u, lead) for i, u in enumerate(units) if is_picture(u, codec) and len(u) - 1 > lead}
    plain, _ = _crypt_ranges(ranges, units, codec, key, domain, stream_id, seq)
    out = list(units)
    for i, p in plain.items():
        out[i] = units[i][:lead] + p + units[i][-1:]
    return out


# ---- the tag (sections 3, 5, 6) -------------------------------------------------------------

@dataclass
class Fields:
    codec: int
    key_id: bytes
    stream_id: int
    seq: int
    capture_ms: int
    duration_ms: int
    pictures: int
    units: int
    clear_lead: int
    flags: int
    link: bytes
    digest_hint: bytes
    slots: int
    macs: List[bytes]

    def signed(self) -> bytes:
        return (bytes([3, 2, self.codec]) + self.key_id + leb128(self.stream_id) + leb128(self.seq)
                + leb128(self.capture_ms) + leb128(self.duration_ms) + leb128(self.pictures) + leb128(self.units)
                + leb128(self.clear_lead) + bytes([self.flags]) + self.link + self.digest_hint + bytes([self.slots]))

    def body(self) -> bytes:
        return self.signed() + b"".join(self.macs)


def parse_body(body: bytes) -> Fields:
    """A version 3 tag body, every bound of section 5 asserted."""
    assert body[:2] == b"\x03\x02" and body[2] in (1, 2)
    key = body[3:19]
    pos = 19
    values = []
    for limit in (2**48 - 1, 2**32 - 1, 2**53 - 1, 2**32 - 1, 2**16 - 1, 2**32 - 1, 4096):
        value, pos = read_leb128(body, pos, limit)
        values.append(value)
    stream_id, seq, capture, duration, pictures, units, lead = values
    assert pictures >= 1 and units >= 1 and lead >= 1
    flags = body[pos]
    assert flags & ~3 == 0 and (not flags & 2 or pictures == 1)
    link, hint, slots = body[pos + 1:pos + 9], body[pos + 9:pos + 13], body[pos + 13]
    macs_at = pos + 14
    assert 1 <= slots <= 8 and len(body) == macs_at + 16 * slots
    macs = [body[macs_at + 16 * s:macs_at + 16 * (s + 1)] for s in range(slots)]
    fields = Fields(body[2], key, stream_id, seq, capture, duration, pictures, units, lead, flags, link, hint,
                    slots, macs)
    assert fields.signed() == body[:macs_at]
    return fields


def mac(slot_key_: bytes, signed: bytes, digest: bytes) -> bytes:
    return hmac.new(slot_key_, signed + digest, hashlib.sha256).digest()[:16]


def ff_coded(n: int) -> bytes:
    return b"\xff" * (n // 255) + bytes([n % 255])


def sei_nal(body: bytes, codec: int) -> bytes:
    payload = UUID + body
    return SEI_HEADER[codec] + epb_insert(ff_coded(5) + ff_coded(len(payload)) + payload + b"\x80")


def is_tag(unit: bytes, codec: int) -> bool:
    head = SEI_HEADER[codec]
    if not unit.startswith(head):
        return False
    rbsp = epb_remove(unit[len(head):])
    if rbsp[:1] != b"\x05":
        return False
    i = 1
    while rbsp[i] == 0xFF:
        i += 1
    return rbsp[i + 1:i + 17] == UUID


def body_of(unit: bytes, codec: int) -> bytes:
    """The tag body of a tag NAL unit: one message, payloadType 5, the UUID, the body, 80."""
    rbsp = epb_remove(unit[len(SEI_HEADER[codec]):])
    assert rbsp[0] == 5 and rbsp[-1] == 0x80
    i, size = 1, 0
    while rbsp[i] == 0xFF:
        size += 255
        i += 1
    size += rbsp[i]
    payload = rbsp[i + 1:-1]
    assert len(payload) == size and payload[:16] == UUID
    return payload[16:]


def with_tag(units: Sequence[bytes], sei: bytes, codec: int) -> List[bytes]:
    """The tag goes after the first unit when that is a delimiter, else first (section 3)."""
    at = 1 if is_delimiter(units[0], codec) else 0
    return [*units[:at], sei, *units[at:]]


def canonical(units: Sequence[bytes]) -> bytes:
    return b"".join(START + u for u in units)


@dataclass
class Tagged:
    """A segment tagged as section 3 to 6 say: its protected units, counter blocks, digest, tag."""

    protected: List[bytes]
    counters: List[int]
    digest: bytes
    fields: Fields
    segment: bytes


def tag(units: Sequence[bytes], codec: int, lead: int, keys: PeriodKeys, stream_id: int, seq: int,
        capture_ms: int, duration_ms: int, pictures: int, link: bytes, flags: int = 0) -> Tagged:
    """What the camera emits for ``units`` (plaintext, in stream order), its clear lead given."""
    domain = DOMAIN_STILL if flags & 2 else DOMAIN_SEGMENT
    protected, counters = protect(units, codec, lead, keys.content_key, domain, stream_id, seq)
    digest = hashlib.sha256(canonical(protected)).digest()
    fields = Fields(codec, keys.key_id, stream_id, seq, capture_ms, duration_ms, pictures, len(units), lead, flags,
                    link, digest[:4], len(keys.slot_keys), [])
    fields.macs = [mac(k, fields.signed(), digest) for k in keys.slot_keys]
    return Tagged(protected, counters, digest, fields, canonical(with_tag(protected, sei_nal(fields.body(), codec),
                                                                          codec)))
