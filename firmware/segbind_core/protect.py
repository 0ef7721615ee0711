"""Picture data encrypted per period, in a form every byte stream carries (docs/FORMAT.md 4).

Pure code, the same on CPython and MicroPython: the camera encrypts a segment before it
tags it (``protect``), a verifier decrypts an accepted one (``unprotect``); a packager
without keys moves between the protected form and Common Encryption's (``protected_bytes``).

A picture unit u of n bytes keeps ``u[:L]`` (its NAL header and slice header: keyless tools
read them) and its last byte in clear; ``u[L:n-1]`` is AES-128-CTR encrypted under the
period's content key (one keystream a segment, each access unit's bytes from a fresh block),
and carried with emulation prevention
(the 03 byte after two zeros) so that Annex-B and MPEG-TS stay valid byte streams. Every
other unit stays in clear.
"""

from . import h264, h265
from .aes import CtrKey
from .nal import START_CODE, annexb_units, annexb_units_and_escapes
from .tag import CODEC_H264, MAX_CLEAR_LEAD

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, List, Union

    from .nal import Buffer
except ImportError:
    pass

DOMAIN_SEGMENT = 0
DOMAIN_STILL = 1

_ZEROS = b"\x00\x00"
_ESCAPED = b"\x00\x00\x03"


def counter_block(domain: int, stream_id: int, seq: int) -> bytes:
    """The initial counter block of a segment's keystream (FORMAT.md 4.3): u8 domain, u48
    stream id, u32 seq, then a 40-bit block counter from zero. Each access unit's protected
    bytes begin at a fresh block of it."""
    if not 0 <= stream_id < 1 << 48 or not 0 <= seq < 1 << 32:  # a ValueError, as the tag's own checks
        raise ValueError("stream id or sequence number out of range")
    return bytes((domain,)) + stream_id.to_bytes(6, "big") + seq.to_bytes(4, "big") + bytes(5)


def header_size(codec: int) -> int:
    return 1 if codec == CODEC_H264 else 2


def _syntax(codec: int) -> "Any":
    return h264 if codec == CODEC_H264 else h265


def clear_lead(data: "Union[bytes, bytearray]", codec: int) -> int:
    """L for a segment (Annex-B, its parameter sets in its head): the most bytes any of its
    picture units needs to keep its NAL header and whole slice header in clear; the NAL
    header's size alone when a slice header cannot be read (then everything after it is
    encrypted: confidentiality first)."""
    syntax = _syntax(codec)
    params = syntax.ParameterSets()
    lead = header_size(codec)
    for s, e in annexb_units(data):
        kind = syntax.nal_type(data[s])
        if syntax.is_vcl(kind):
            try:
                header = syntax.parse_slice_header(memoryview(data)[s:e], params)
            except (ValueError, IndexError):
                return header_size(codec)
            if header.header_bytes > lead:
                lead = header.header_bytes
        else:
            params.add(data[s:e])
    return lead if lead <= MAX_CLEAR_LEAD else header_size(codec)


def _trailing_zeros(prefix: "Buffer") -> int:
    """How many zero bytes end ``prefix`` (0, 1 or 2: what emulation prevention counts)."""
    if not prefix or prefix[-1]:
        return 0
    return 2 if len(prefix) > 1 and not prefix[-2] else 1


def escape(data: "Buffer", zeros_before: int, next_byte: int) -> bytes:
    """``data`` with a 03 byte inserted after every two zero bytes followed by a byte 00 to 03
    (H.264 7.4.1), ``zeros_before`` zero bytes counted as preceding it and ``next_byte`` as
    following it (FORMAT.md 4.2)."""
    body = bytes(data)
    if _ZEROS not in body and not (zeros_before and body[:2 - zeros_before] == bytes(2 - zeros_before)) \
            and not (next_byte <= 3 and body.endswith(_ZEROS)):
        return body
    padded = bytes(zeros_before) + body + bytes((next_byte,))
    out = bytearray()
    start = pos = 0
    find = padded.find
    while True:
        k = find(_ZEROS, pos)
        if k < 0 or k + 2 >= len(padded):
            break
        if padded[k + 2] <= 3:
            out += padded[start:k + 2]
            out.append(3)
            start = pos = k + 2
        else:
            pos = k + 1
    out += padded[start:]
    return bytes(out[zeros_before:len(out) - 1])


def unescape(data: "Buffer", zeros_before: int) -> bytes:
    """``escape`` undone: every 03 after two zero bytes removed, ``zeros_before`` zero bytes
    counted as preceding ``data`` (what every decoder does to a NAL unit). ``replace`` reads
    left to right without overlap, which is exactly the rule: after a removed 03 the zero count
    starts again."""
    body = bytes(data)
    if b"\x03" not in body:
        return body
    if not zeros_before:
        return body.replace(_ESCAPED, _ZEROS)
    return (bytes(zeros_before) + body).replace(_ESCAPED, _ZEROS)[zeros_before:]


def _keystream(key: bytes, domain: int, stream_id: int, seq: int) -> "Any":
    return CtrKey(key).keystream(counter_block(domain, stream_id, seq))


def protect(data: "Union[bytes, bytearray]", codec: int, lead: int, key: bytes, stream_id: int, seq: int,
            domain: int = DOMAIN_SEGMENT) -> "List[Buffer]":
    """A segment's plaintext (Annex-B, 4-byte start codes, no tag yet) as parts of its
    protected form: each picture unit's bytes after ``lead`` but its last encrypted and
    escaped, the rest as it is (views of ``data``, nothing copied but the ciphertext). One
    keystream for the segment; each access unit's protected bytes begin at a fresh block."""
    syntax = _syntax(codec)
    view = memoryview(data)
    parts: "List[Buffer]" = []
    at = 0  # data[at:] not yet in parts
    stream = _keystream(key, domain, stream_id, seq)
    opened = False  # keystream used since the access unit began
    for s, e in annexb_units(data):
        kind = syntax.nal_type(data[s])
        if kind == syntax.NAL_AUD:
            if opened:
                stream.next_counter_block()
                opened = False
            continue
        if not syntax.is_vcl(kind) or e - s - 1 <= lead:
            continue
        cipher = stream.xor(view[s + lead:e - 1])
        opened = True
        parts.append(view[at:s + lead])
        parts.append(escape(cipher, _trailing_zeros(view[s:s + lead]), data[e - 1]))
        at = e - 1
    parts.append(view[at:])
    return parts


def unprotect(data: "Union[bytes, bytearray]", codec: int, lead: int, key: bytes, stream_id: int, seq: int,
              domain: int = DOMAIN_SEGMENT) -> bytes:
    """A segment's protected form (Annex-B, 4-byte start codes, the tag included or not)
    decrypted: each picture unit as the encoder made it. Only for a segment already
    accepted (FORMAT.md 7.1: encrypt, then MAC; a refused segment is never decrypted).

    One pass finds the units and the emulation prevention bytes; the plaintext is written
    once into one buffer: clear bytes copied, each protected range decrypted straight into
    place (``xor_into``), unescaped first when it holds an emulation prevention byte (rare in
    ciphertext)."""
    syntax = _syntax(codec)
    aud = syntax.NAL_AUD
    units, escapes = annexb_units_and_escapes(data)
    view = memoryview(data)
    out = bytearray(len(data))  # decryption only removes bytes (the 03s of emulation prevention)
    dst = memoryview(out)
    written = 0
    at = 0
    stream = _keystream(key, domain, stream_id, seq)
    xor_into = stream.xor_into
    opened = False
    k = 0  # escapes[k:] lie at or after the current range
    for s, e in units:
        kind = syntax.nal_type(data[s])
        if kind == aud:
            if opened:
                stream.next_counter_block()
                opened = False
            continue
        if not syntax.is_vcl(kind) or e - s - 1 <= lead:
            continue
        begin = s + lead
        stop = e - 1
        size = begin - at
        dst[written:written + size] = view[at:begin]
        written += size
        # the zero bytes ending the clear lead count before the range, as for every decoder:
        # an emulation prevention 00 00 03 anywhere in them and the range is unescaped
        zeros = _trailing_zeros(view[s:begin])
        while k < len(escapes) and escapes[k] < begin - zeros:
            k += 1
        if k < len(escapes) and escapes[k] + 3 <= stop:
            plain = unescape(view[begin:stop], zeros)
            size = len(plain)
            xor_into(plain, dst[written:written + size])
        else:
            size = stop - begin
            xor_into(view[begin:stop], dst[written:written + size])
        written += size
        opened = True
        at = stop
    size = len(data) - at
    dst[written:written + size] = view[at:]
    written += size
    return bytes(dst[:written])


def protected_bytes(unit: "Buffer", lead: int) -> bytes:
    """The ciphertext a picture unit in protected form carries (what a Common Encryption
    sample stores in its protected range): ``unescape`` of its bytes from ``lead`` to its last."""
    n = len(unit)
    if n - 1 <= lead:
        return b""
    return unescape(memoryview(unit)[lead:n - 1], _trailing_zeros(memoryview(unit)[:lead]))


def protected_form(unit: "Buffer", lead: int, cipher: "Buffer") -> bytes:
    """A picture unit's protected form from its clear bytes (``unit[:lead]`` and its last byte,
    as a Common Encryption sample stores them) and its ``cipher`` (the protected range)."""
    n = len(unit)
    if n - 1 <= lead:  # nothing protected (FORMAT.md 4.1): the unit is its own protected form
        return bytes(unit)
    return bytes(unit[:lead]) + escape(cipher, _trailing_zeros(unit[:lead]), unit[n - 1]) + bytes(unit[n - 1:])


__all__ = ["DOMAIN_SEGMENT", "DOMAIN_STILL", "START_CODE", "clear_lead", "counter_block", "escape",
           "protect", "protected_bytes", "protected_form", "unescape", "unprotect"]
