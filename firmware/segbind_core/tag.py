"""The segbind tag, format version 3: fields, byte layout, MACs.

docs/FORMAT.md is the normative text; this module is its one implementation,
shared by the camera's tagger and the viewers' verifier. The content digest
is SHA-256 over the segment's canonical form (``canonical``): as the camera
emits a segment, its own bytes without the tag.
"""

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import List, Optional

    from .crypto import MacKey
    from .nal import Buffer
except ImportError:
    pass

VERSION = 3
ALG_HMAC_SHA256_128_AES128_CTR = 2  # MACs HMAC-SHA256/16, digest SHA-256, picture data AES-128-CTR
CODEC_H264 = 1
CODEC_H265 = 2
CODECS = (CODEC_H264, CODEC_H265)
CODEC_NAMES = {CODEC_H264: "H.264", CODEC_H265: "H.265"}
FLAG_END_OF_STREAM = 1
FLAG_STILL = 2  # a one-picture segment taken for an event (a thumbnail): FORMAT.md section 10
KNOWN_FLAGS = FLAG_END_OF_STREAM | FLAG_STILL

MAC_SIZE = 16
LINK_SIZE = 8
DIGEST_SIZE = 32
DIGEST_HINT_SIZE = 4
KEY_ID_SIZE = 16
MAX_SLOTS = 8
MAX_ID_BYTES = 32
MAX_EPOCH = 0x7FFFFFFF       # epochs count from 1 in each pairing, below 2^31
MAX_STREAM_ID = (1 << 48) - 1
MAX_U32 = 0xFFFFFFFF
MAX_U53 = (1 << 53) - 1      # times and counters: exact as JavaScript numbers
MAX_U64 = 0xFFFFFFFFFFFFFFFF
MAX_PICTURES = 0xFFFF        # a segment spans seconds: 65535 pictures is 18 minutes at 60 per second
MAX_CLEAR_LEAD = 4096

# The link carried by the first segment (seq 0) of every stream.
GENESIS_LINK = b"\xff" * LINK_SIZE

# seq, capture time, duration, pictures, units, clear lead
_TAIL_LIMITS = (MAX_U32, MAX_U53, MAX_U32, MAX_PICTURES, MAX_U32, MAX_CLEAR_LEAD)

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
    if value < 0x80:
        return bytes((value,))
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
    if pos < len(buf) and buf[pos] < 0x80:  # one byte: most fields of most tags
        value = buf[pos]
        if value > limit:
            raise TagError(MALFORMED, "integer field out of range")
        return value, pos + 1
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
    """One segment's tag: the keys it is under (``key_id``), where it sits, what it holds,
    its MACs.

    ``macs`` holds one MAC per slot (the owner first); ``slots`` is their number
    (set before the MACs are made: it is a signed field).
    """

    # A verifier makes one per segment: no instance dict (MicroPython ignores this).
    __slots__ = ("version", "alg", "codec", "key_id", "stream_id", "seq", "capture_ms", "duration_ms",
                 "pictures", "units", "clear_lead", "flags", "link", "digest_hint", "slots", "macs")

    def __init__(self, codec: int, key_id: bytes, stream_id: int, seq: int, capture_ms: int, duration_ms: int,
                 pictures: int, units: int, clear_lead: int, link: bytes, digest_hint: bytes = b"",
                 slots: int = 1, macs: "Optional[List[bytes]]" = None, flags: int = 0,
                 version: int = VERSION, alg: int = ALG_HMAC_SHA256_128_AES128_CTR) -> None:
        self.version = version
        self.alg = alg
        self.codec = codec
        self.key_id = key_id
        self.stream_id = stream_id
        self.seq = seq
        self.capture_ms = capture_ms
        self.duration_ms = duration_ms
        self.pictures = pictures
        self.units = units
        self.clear_lead = clear_lead
        self.flags = flags
        self.link = link
        self.digest_hint = digest_hint
        self.slots = slots
        self.macs = macs if macs is not None else []

    @property
    def end_of_stream(self) -> bool:
        return bool(self.flags & FLAG_END_OF_STREAM)

    @property
    def still(self) -> bool:
        return bool(self.flags & FLAG_STILL)

    def signed_fields(self) -> bytes:
        """Every carried byte before the MACs; each MAC covers these and the digest."""
        self.check()
        return self.stream_prefix() + self.segment_fields()

    def check(self) -> None:
        """ValueError when a field is out of the range the format allows."""
        if self.codec not in CODECS:
            raise ValueError("unknown codec")
        if len(self.key_id) != KEY_ID_SIZE:
            raise ValueError("a key id is %d bytes" % KEY_ID_SIZE)
        if not 0 <= self.stream_id <= MAX_STREAM_ID:
            raise ValueError("stream id out of range")
        self.check_segment()

    def check_segment(self) -> None:
        """``check`` for the fields after the stream id (a tagger checks the others once per period)."""
        if self.flags & ~KNOWN_FLAGS:
            raise ValueError("unknown flags")
        if not 0 <= self.seq <= MAX_U32 or not 0 <= self.capture_ms <= MAX_U53:
            raise ValueError("sequence number or capture time out of range")
        if not 0 <= self.duration_ms <= MAX_U32 or not 1 <= self.pictures <= MAX_PICTURES \
                or not 1 <= self.units <= MAX_U32:
            raise ValueError("duration, pictures or units out of range")
        if not 1 <= self.clear_lead <= MAX_CLEAR_LEAD:
            raise ValueError("clear lead out of range")
        if self.still and self.pictures != 1:
            raise ValueError("a still is one picture")
        if len(self.link) != LINK_SIZE or len(self.digest_hint) != DIGEST_HINT_SIZE:
            raise ValueError("link or digest hint has the wrong size")
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ValueError("1 to %d slots" % MAX_SLOTS)

    def stream_prefix(self) -> bytes:
        """The signed fields up to the stream id: the same for every segment of a stream in one
        period (a tagger encodes them once per period)."""
        return bytes((self.version, self.alg, self.codec)) + self.key_id + encode_uvarint(self.stream_id)

    def segment_fields(self) -> bytes:
        """The signed fields after the stream id (``check`` them first)."""
        out = bytearray()
        for value in (self.seq, self.capture_ms, self.duration_ms, self.pictures, self.units, self.clear_lead):
            while value >= 0x80:  # encode_uvarint, inline: once per segment on the camera
                out.append((value & 0x7F) | 0x80)
                value >>= 7
            out.append(value)
        out.append(self.flags)
        out += self.link
        out += self.digest_hint
        out.append(self.slots)
        return bytes(out)

    def encode(self) -> bytes:
        """The tag body as carried in the SEI (signed fields, then the MACs)."""
        if len(self.macs) != self.slots or any(len(m) != MAC_SIZE for m in self.macs):
            raise ValueError("tag has no MACs yet")
        return self.signed_fields() + b"".join(self.macs)

    def __repr__(self) -> str:
        return ("Tag(key id %s, stream_id=%d, seq=%d, capture_ms=%d, %d pictures%s%s)" % (
            self.key_id.hex(), self.stream_id, self.seq, self.capture_ms, self.pictures,
            ", end of stream" if self.end_of_stream else "", ", still" if self.still else ""))


PREFIX_SIZE = 3 + KEY_ID_SIZE  # version, alg, codec, key id: then the stream id


def decode_tag(body: Buffer) -> "tuple[Tag, bytes]":
    """(Tag, signed fields) from a tag body; raises TagError on any defect."""
    body = bytes(body)
    if len(body) < 1:
        raise TagError(MALFORMED, "empty tag")
    if body[0] != VERSION:
        if body[0] in (1, 2):
            raise TagError(UNKNOWN_VERSION, "a format %d tag (unencrypted video, names in clear): this verifier "
                           "reads format %d only; the camera needs its format %d agent"
                           % (body[0], VERSION, VERSION))
        raise TagError(UNKNOWN_VERSION, "tag format version %d is not supported" % body[0])
    if len(body) < 3:
        raise TagError(MALFORMED, "tag truncated after the version")
    if body[1] != ALG_HMAC_SHA256_128_AES128_CTR:
        raise TagError(UNKNOWN_VERSION, "tag algorithm %d is not supported" % body[1])
    if body[2] not in CODECS:
        raise TagError(UNKNOWN_VERSION, "tag codec %d is not supported" % body[2])
    if len(body) < PREFIX_SIZE + 1:
        raise TagError(MALFORMED, "tag truncated inside its key id")
    key_id = body[3:PREFIX_SIZE]
    stream_id, pos = decode_uvarint(body, PREFIX_SIZE, MAX_STREAM_ID)
    return decode_tail(body, pos, body[2], key_id, stream_id)


def decode_tail(body: bytes, pos: int, codec: int, key_id: bytes, stream_id: int) -> "tuple[Tag, bytes]":
    """The fields after the stream id (``pos``): what changes from one segment of a stream to
    the next. A verifier that decoded a tag with the same bytes up to ``pos`` decodes only these.
    """
    seq, capture_ms, duration_ms, pictures, units, clear_lead, flags, link, hint, slots, end = \
        decode_fields(body, pos)
    macs = [body[at:at + MAC_SIZE] for at in range(end, len(body), MAC_SIZE)]
    tag = Tag(codec, key_id, stream_id, seq, capture_ms, duration_ms, pictures, units, clear_lead, link, hint,
              slots, macs, flags)
    return tag, body[:end]


def decode_fields(body: bytes, pos: int) -> "tuple[int, int, int, int, int, int, int, bytes, bytes, int, int]":
    """``decode_tail`` without making a Tag: (seq, capture_ms, duration_ms, pictures, units,
    clear_lead, flags, link, digest_hint, slots, where the MACs begin), every field checked."""
    n = len(body)
    values = []
    for limit in _TAIL_LIMITS:  # decode_uvarint, inline
        if pos >= n:
            raise TagError(MALFORMED, "tag truncated inside an integer field")
        b = body[pos]
        pos += 1
        if b < 0x80:  # one byte
            if b > limit:
                raise TagError(MALFORMED, "integer field out of range")
            values.append(b)
            continue
        value = b & 0x7F
        shift = 7
        while True:
            if pos >= n:
                raise TagError(MALFORMED, "tag truncated inside an integer field")
            b = body[pos]
            pos += 1
            if b < 0x80:
                break
            value |= (b & 0x7F) << shift
            shift += 7
            if shift > 63:
                raise TagError(MALFORMED, "integer field too long")
        if b == 0:
            raise TagError(MALFORMED, "integer field is not minimally encoded")
        value |= b << shift
        if value > limit:
            raise TagError(MALFORMED, "integer field out of range")
        values.append(value)
    seq, capture_ms, duration_ms, pictures, units, clear_lead = values
    if not pictures or not units or not clear_lead:
        raise TagError(MALFORMED, "a segment has at least one picture and one NAL unit, and a clear lead")
    if n < pos + 1 + LINK_SIZE + DIGEST_HINT_SIZE + 1:
        raise TagError(MALFORMED, "tag truncated before its MACs")
    flags = body[pos]
    if flags & ~KNOWN_FLAGS:
        raise TagError(MALFORMED, "unknown flags %02x" % flags)
    if flags & FLAG_STILL and pictures != 1:
        raise TagError(MALFORMED, "a still of %d pictures" % pictures)
    link = body[pos + 1:pos + 1 + LINK_SIZE]
    pos += 1 + LINK_SIZE
    hint = body[pos:pos + DIGEST_HINT_SIZE]
    slots = body[pos + DIGEST_HINT_SIZE]
    pos += DIGEST_HINT_SIZE + 1
    if not 1 <= slots <= MAX_SLOTS:
        raise TagError(MALFORMED, "tag has %d slots" % slots)
    if n - pos != slots * MAC_SIZE:
        raise TagError(MALFORMED, "tag has %d bytes of MACs for %d slots" % (n - pos, slots))
    return seq, capture_ms, duration_ms, pictures, units, clear_lead, flags, link, hint, slots, pos


def compute_mac(key: "MacKey", signed_fields: bytes, digest: bytes) -> bytes:
    """A slot's MAC: HMAC-SHA256 over the signed fields and the content digest, first 16 bytes."""
    return key.mac(signed_fields, digest)[:MAC_SIZE]
