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
from .aes import ZERO_PAIR, CtrKey
from .nal import START_CODE, annexb_units, annexb_units_and_escapes
from .tag import CODEC_H264, MAX_CLEAR_LEAD

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, List, Optional, Sequence, Tuple, Union

    from .nal import Buffer
except ImportError:
    pass


def _compiled(pattern: bytes) -> "Any":
    """A compiled regular expression over bytes, where the interpreter's engine reads NUL bytes
    and positions as CPython's does; else None (MicroPython's engine stops a pattern at its
    first NUL: the slower paths below then serve)."""
    try:
        import re

        found = re.compile(pattern)
        hit = found.search(b"\x07\x00\x00\x03\x07", 1, 4)
        if (found.search(b"\x00\x01\x00\x04") is None and found.search(b"\x07\x00\x00\x03\x07", 2) is None
                and hit is not None and hit.start() == 1):
            return found
    except Exception:  # no re module, no pos arguments, NUL bytes refused
        pass
    return None


# MicroPython's ports with the native emitter: where the next two zero bytes are, in native
# code (aes.py compiles the core's viper kernels); None elsewhere.
_ZERO_PAIR = ZERO_PAIR

# Two bytes 00 followed by 00 to 03: where escaped ciphertext needs an emulation-prevention byte.
# CPython's engine finds it at several GB/s; a loop of bytes.find is several times slower.
_EMULATION = _compiled(b"\x00\x00[\x00-\x03]")

DOMAIN_SEGMENT = 0
DOMAIN_STILL = 1

_ZEROS = b"\x00\x00"
_ESCAPED = b"\x00\x00\x03"
_ESCAPE = b"\x03"


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


def clear_lead(data: "Union[bytes, bytearray]", codec: int,
               units: "Optional[Sequence[Tuple[int, int]]]" = None) -> int:
    """L for a segment (Annex-B, its parameter sets in its head): the most bytes any of its
    picture units needs to keep its NAL header and whole slice header in clear; the NAL
    header's size alone when a slice header cannot be read (then everything after it is
    encrypted: confidentiality first). ``units``: the segment's ``annexb_units``, when the
    caller has them."""
    syntax = _syntax(codec)
    params = syntax.ParameterSets()
    lead = header_size(codec)
    view = memoryview(data)
    for s, e in annexb_units(data) if units is None else units:
        kind = syntax.nal_type(data[s])
        if syntax.is_vcl(kind):
            try:
                header = syntax.parse_slice_header(view[s:e], params)
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


def _next_emulation(buf: "Any", pos: int, end: int) -> int:
    """The first k >= pos with buf[k] = buf[k + 1] = 0 and buf[k + 2] <= 3 (k + 2 < end), or -1:
    the fastest way this interpreter has."""
    if _EMULATION is not None:
        found = _EMULATION.search(buf, pos, end)
        return -1 if found is None else int(found.start())
    k: int = _ZERO_PAIR(buf, pos, end) if _ZERO_PAIR is not None else buf.find(_ZEROS, pos, end)
    while 0 <= k and k + 2 < end:
        if buf[k + 2] <= 3:
            return k
        k = _ZERO_PAIR(buf, k + 1, end) if _ZERO_PAIR is not None else buf.find(_ZEROS, k + 1, end)
    return -1


def _escape_points(buf: "Any", pos: int, n: int, zeros_before: int, next_byte: int) -> "List[int]":
    """Where ``escape`` puts a 03 into ``buf[pos:pos + n]`` in its context: the offsets
    (0 to n) it goes before, in order (n may be 0: the zeros before meet the next byte).
    Nothing is copied: the context (``zeros_before`` zeros, then the data, then ``next_byte``)
    is read where it lies."""
    size = zeros_before + n + 1  # the context, k in it: k < zeros_before is a zero before the data

    def at(k: int) -> int:
        return 0 if k < zeros_before else buf[pos + k - zeros_before] if k < size - 1 else next_byte

    points: "List[int]" = []
    start = 0
    while True:  # the next k >= start with at(k) = at(k + 1) = 0 and at(k + 2) <= 3
        found = -1
        for k in range(start, zeros_before if zeros_before < size - 2 else size - 2):  # the zeros before
            if at(k) == 0 and at(k + 1) == 0 and at(k + 2) <= 3:
                found = k
                break
        if found < 0:
            first = start if start > zeros_before else zeros_before
            if first + 2 < size - 1:  # all three within the data
                k = _next_emulation(buf, pos + first - zeros_before, pos + n)
                if k >= 0:
                    found = k - pos + zeros_before
        if found < 0:
            k = size - 3  # the last two bytes of the data and the next byte
            if k >= start and k >= zeros_before and at(k) == 0 and at(k + 1) == 0 and next_byte <= 3:
                found = k
        if found < 0:
            return points
        points.append(found + 2 - zeros_before)
        start = found + 2  # the byte after a 03 may begin the next two zeros


def escape(data: "Buffer", zeros_before: int, next_byte: int) -> bytes:
    """``data`` with a 03 byte inserted after every two zero bytes followed by a byte 00 to 03
    (H.264 7.4.1), ``zeros_before`` zero bytes counted as preceding it and ``next_byte`` as
    following it (FORMAT.md 4.2)."""
    n = len(data)
    points = _escape_points(data, 0, n, zeros_before, next_byte)
    if not points:
        return bytes(data)
    view = memoryview(data)
    out = bytearray()
    at = 0
    for point in points:
        out += view[at:point]
        out.append(3)
        at = point
    out += view[at:]
    return bytes(out)


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


def _ctr_key(key: "Union[bytes, CtrKey]") -> CtrKey:
    return key if isinstance(key, CtrKey) else CtrKey(key)


def _keystream(key: "Union[bytes, CtrKey]", domain: int, stream_id: int, seq: int) -> "Any":
    return _ctr_key(key).keystream(counter_block(domain, stream_id, seq))


def protect(data: "Union[bytes, bytearray]", codec: int, lead: int, key: "Union[bytes, CtrKey]", stream_id: int,
            seq: int, domain: int = DOMAIN_SEGMENT, units: "Optional[Sequence[Tuple[int, int]]]" = None,
            scratch: "Optional[bytearray]" = None) -> "List[Buffer]":
    """A segment's plaintext (Annex-B, 4-byte start codes, no tag yet) as parts of its
    protected form: each picture unit's bytes after ``lead`` but its last encrypted and
    escaped, the rest as it is (views of ``data``, nothing copied but the ciphertext). One
    keystream for the segment; each access unit's protected bytes begin at a fresh block.

    ``key``: the content key, or its ``CtrKey`` (a camera keeps one per period). ``units``: the
    segment's ``annexb_units``, when the caller has them (the segmenter cut them). The
    ciphertext is written into ``scratch`` (at least ``len(data)`` bytes and 4 a unit), which the
    parts then view: the caller owns it and must not reuse it while it uses the parts; by
    default a new buffer."""
    syntax = _syntax(codec)
    view = memoryview(data)
    parts: "List[Buffer]" = []
    at = 0  # data[at:] not yet in parts
    ctr = _ctr_key(key)
    stream = ctr.keystream(counter_block(domain, stream_id, seq))
    # The ECB backends XOR a word at a time only where the data, the keystream and the output
    # are word-aligned: there each unit is copied (a memcpy) into the scratch at a place that
    # makes it so, and encrypted in place. OpenSSL reads the plaintext where it is.
    in_place = ctr.backend != "cryptography"
    if units is None:
        units = annexb_units(data)
    if scratch is None or len(scratch) < len(data) + 4 * len(units):
        scratch = bytearray(len(data) + 4 * len(units))
    out = memoryview(scratch)
    pos = 0  # ciphertext written so far
    opened = False  # keystream used since the access unit began
    is_vcl = syntax.is_vcl
    for s, e in units:
        kind = syntax.nal_type(data[s])
        if kind == syntax.NAL_AUD:
            if opened:
                stream.next_counter_block()
                opened = False
            continue
        if not is_vcl(kind) or e - s - 1 <= lead:
            continue
        n = e - 1 - s - lead
        if in_place:
            pos += -(pos + stream.pending()) & 3
            cipher = out[pos:pos + n]
            cipher[:] = view[s + lead:e - 1]
            stream.xor_into(cipher, cipher)
        else:
            cipher = out[pos:pos + n]
            stream.xor_into(view[s + lead:e - 1], cipher)
        opened = True
        parts.append(view[at:s + lead])
        zeros = 0 if data[s + lead - 1] else 1 if lead < 2 or data[s + lead - 2] else 2
        last = data[e - 1]
        if not zeros and last > 3 and _EMULATION is not None and _EMULATION.search(scratch, pos, pos + n) is None:
            points = []  # the common case, in one search: nothing needs escaping
        else:
            points = _escape_points(scratch, pos, n, zeros, last)
        done = 0
        for point in points:  # rare (about one unit of ciphertext in four megabytes): 03 bytes as parts
            parts.append(cipher[done:point])
            parts.append(_ESCAPE)
            done = point
        parts.append(cipher[done:] if done else cipher)
        pos += n
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
