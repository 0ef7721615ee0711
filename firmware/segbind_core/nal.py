"""NAL unit framing: Annex-B scanning and emulation prevention.

Codec-neutral: what a NAL unit means is the codec module's business
(``segbind_core.h264``). NAL units are handled as (start, end) offsets into
one buffer, so nothing is copied while scanning; callers slice a
``memoryview`` when they need bytes.
"""

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Callable, Iterable, Iterator, Optional, Union

    Buffer = Union[bytes, bytearray, memoryview]  # any bytes-like object
except ImportError:
    pass

START_CODE = b"\x00\x00\x00\x01"


_start_code_positions: Optional[Callable[[Buffer, int, int], Iterator[Any]]]
try:  # CPython's regex engine finds start codes about twice as fast as bytes.find
    import re as _re

    _start_code_positions = _re.compile(b"\x00\x00\x01").finditer
except (ImportError, AttributeError, TypeError, ValueError):  # MicroPython: no finditer
    _start_code_positions = None


_codes_and_escapes: Optional[Callable[[Buffer], Iterator[Any]]]
try:
    _codes_and_escapes = _re.compile(b"\x00\x00[\x01\x03]").finditer
except (NameError, AttributeError, TypeError, ValueError):  # MicroPython: no finditer
    _codes_and_escapes = None


def _start_codes(buf: Union[bytes, bytearray], start: int, end: int) -> list[int]:
    """Offsets of every 00 00 01 in buf[start:end]."""
    if _start_code_positions is not None:
        return [m.start() for m in _start_code_positions(buf, start, end)]
    found = []
    find = buf.find
    pos = find(b"\x00\x00\x01", start, end)
    while pos >= 0:
        found.append(pos)
        pos = find(b"\x00\x00\x01", pos + 3, end)
    return found


def annexb_units(buf: Union[bytes, bytearray], start: int = 0,
                 end: int = -1) -> list[tuple[int, int]]:
    """Offsets ``(s, e)`` of each NAL unit in an Annex-B byte stream.

    Start codes (3 or 4 bytes) and trailing zero bytes are excluded from each
    unit; empty units (consecutive start codes) are skipped. Bytes before the
    first start code are not a NAL unit and are ignored by this function;
    ``leading_garbage`` tells whether there were any.
    """
    if end < 0:
        end = len(buf)
    return _units_between(buf, _start_codes(buf, start, end), end)


def _units_between(buf: Union[bytes, bytearray], codes: list[int], end: int) -> list[tuple[int, int]]:
    """The units between start codes at ``codes`` (then ``end``), as ``annexb_units`` gives them."""
    codes.append(end)
    units = []
    for i in range(len(codes) - 1):
        s = codes[i] + 3
        e = codes[i + 1]
        while e > s and buf[e - 1] == 0:
            e -= 1
        if e > s:
            units.append((s, e))
    return units


def annexb_units_and_escapes(buf: Union[bytes, bytearray]) -> "tuple[list[tuple[int, int]], list[int]]":
    """(``annexb_units(buf)``, the offset of every 00 00 03 in ``buf``, ascending), read in one
    pass where the regular expression engine can: occurrences of 00 00 01 and of 00 00 03 never
    overlap one another, so one left-to-right search finds every one of each."""
    if _codes_and_escapes is None:
        escapes = []
        find = buf.find
        pos = find(b"\x00\x00\x03")
        while pos >= 0:
            escapes.append(pos)
            pos = find(b"\x00\x00\x03", pos + 3)
        return annexb_units(buf), escapes
    codes = []
    escapes = []
    for match in _codes_and_escapes(buf):
        at = match.start()
        if buf[at + 2] == 1:
            codes.append(at)
        else:
            escapes.append(at)
    return _units_between(buf, codes, len(buf)), escapes


def leading_garbage(buf: Union[bytes, bytearray]) -> bool:
    """True when a buffer has bytes other than zeros before its first start code."""
    pos = buf.find(b"\x00\x00\x01")
    head = len(buf) if pos < 0 else pos
    for i in range(head):
        if buf[i] != 0:
            return True
    return False


def to_annexb(units: Iterable[Buffer]) -> bytes:
    """Join NAL units (bytes-like, without start codes) into Annex-B."""
    out = bytearray()
    for unit in units:
        out += START_CODE
        out += unit
    return bytes(out)


def escape_rbsp(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: 00 00 0x (x <= 3) becomes 00 00 03 0x."""
    if b"\x00\x00" not in rbsp:  # nearly every tag: nothing to insert, no byte loop
        return rbsp
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def unescape_rbsp(ebsp: Buffer) -> bytes:
    """Remove emulation-prevention bytes (the 03 of every 00 00 03).

    ``replace`` scans left to right without overlap, which is exactly the
    rule: after a removed 03 the zero count starts again.
    """
    return bytes(ebsp).replace(b"\x00\x00\x03", b"\x00\x00")


def escaped_length(ebsp: bytes, rbsp_bytes: int) -> int:
    """How many leading bytes of escaped ``ebsp`` hold its first ``rbsp_bytes`` RBSP bytes.

    Each 00 00 03 whose 03 falls before the end of those bytes adds one; one that
    follows the last of them does not (it holds no RBSP byte). The same left-to-right,
    non-overlapping reading as ``unescape_rbsp``.
    """
    extra = 0
    find = ebsp.find
    i = find(b"\x00\x00\x03")
    while 0 <= i and i + 2 < rbsp_bytes + extra:
        extra += 1
        i = find(b"\x00\x00\x03", i + 3)
    return rbsp_bytes + extra


def last_one_bit(rbsp: bytes) -> int:
    """The position of the last bit equal to 1 in ``rbsp`` (its rbsp_stop_one_bit), -1 if none.

    Trailing zero bytes (cabac_zero_words, once unescaped) are skipped.
    """
    i = len(rbsp) - 1
    while i >= 0 and not rbsp[i]:
        i -= 1
    if i < 0:
        return -1
    byte = rbsp[i]
    bit = 7
    while not byte & 1:
        byte >>= 1
        bit -= 1
    return (i << 3) + bit


class AnnexBScanner:
    """Splits an Annex-B byte stream, fed in pieces of any size, into whole NAL units.

    ``push(data, t)`` returns the units it completed, as (unit, index, t):
    the escaped bytes (without start code or trailing zero bytes), the order in
    which the unit began (empty units count too), and the ``t`` given with the
    piece in which it began. ``finish()`` returns the last one. A unit is
    complete when the next start code arrives, even one split across pieces.
    Bytes before the first start code are not a NAL unit: counted in
    ``discarded`` (zero padding is not counted). ``begun`` counts units begun
    so far (the incomplete one included); ``pending`` is the incomplete one's
    first byte (or None). Memory: the incomplete unit and two bytes.
    """

    def __init__(self) -> None:
        self.discarded = 0
        self.begun = 0
        self._nal: Optional[bytearray] = None  # the incomplete unit, after its start code
        self._nal_t: Optional[int] = None  # the t of the piece it began in
        self._carry = b""  # the last two bytes of input, for start codes split across pieces
        self._out: list[tuple[bytes, int, Optional[int]]] = []

    @property
    def pending(self) -> Optional[int]:
        nal = self._nal
        return nal[0] if nal else None

    def push(self, data: Buffer, t: Optional[int] = None) -> list[tuple[bytes, int, Optional[int]]]:
        n = len(data)
        if n == 0:
            return []
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        carry = self._carry
        pos = 0  # where the current unit's bytes start in data
        if carry:
            # A start code that begins in the previous piece and ends in this one.
            i = (carry + bytes(data[:2])).find(b"\x00\x00\x01")
            if 0 <= i < len(carry):
                cut = len(carry) - i  # bytes of that start code already taken
                if self._nal is not None:
                    keep = len(self._nal) - cut
                    self._nal = self._nal[:keep] if keep > 0 else bytearray()
                    self._complete(None, 0, 0)
                self._begin(t)
                pos = 3 - cut
        find = data.find
        while True:
            i = find(b"\x00\x00\x01", pos)
            if i < 0:
                break
            if self._nal is None:
                self._leading(data, pos, i)
            else:
                self._complete(data, pos, i)
            self._begin(t)
            pos = i + 3
        if pos < n:
            if self._nal is None:
                self._leading(data, pos, n)
            else:
                self._nal += data[pos:n] if pos else data
        self._carry = bytes(data[n - 2:]) if n >= 2 else bytes(carry[-1:]) + bytes(data)
        out = self._out
        self._out = []
        return out

    def finish(self) -> list[tuple[bytes, int, Optional[int]]]:
        """The end of the stream: the last unit, if any."""
        if self._nal is not None:
            self._complete(None, 0, 0)
            self._nal = None
        self._carry = b""
        out = self._out
        self._out = []
        return out

    def _begin(self, t: Optional[int]) -> None:
        self._nal = bytearray()
        self._nal_t = t
        self.begun += 1

    def _leading(self, data: Union[bytes, bytearray], s: int, e: int) -> None:
        for k in range(s, e):
            if data[k]:
                self.discarded += 1

    def _complete(self, data: Optional[Union[bytes, bytearray]], s: int, e: int) -> None:
        """The unit made of self._nal then data[s:e] is complete."""
        if data is not None and not self._nal:
            while e > s and data[e - 1] == 0:
                e -= 1
            if e > s:
                self._out.append((bytes(data[s:e]), self.begun - 1, self._nal_t))
            return
        nal = self._nal
        if nal is None:
            return
        if data is not None and e > s:
            nal += data[s:e]
        k = len(nal)
        while k > 0 and nal[k - 1] == 0:
            k -= 1
        if k:
            self._out.append((bytes(nal[:k]) if k < len(nal) else bytes(nal), self.begun - 1,
                              self._nal_t))


class ParameterSetTables:
    """The parameter sets in force in a stream, by kind and id, as they were last seen (the
    codec-neutral part of ``h264.ParameterSets`` and ``h265.ParameterSets``).

    ``readers``: for each parameter set kind, in the order a decoder reads them, a function
    of the unit's bytes giving (id, what the codec keeps of it); it raises ValueError or
    IndexError on a unit it cannot read. A unit seen before is not read again: encoders
    repeat their parameter sets at every random access point.
    """

    def __init__(self, readers: "Iterable[tuple[int, Callable[[bytes], tuple[int, Any]]]]") -> None:
        readers = list(readers)
        self._readers = dict(readers)
        self._order = [kind for kind, _ in readers]
        self.tables: "dict[int, dict[int, tuple[Any, bytes]]]" = {kind: {} for kind in self._order}
        self._in_force: "dict[bytes, tuple[int, int]]" = {}  # unit -> (kind, id)

    def __len__(self) -> int:
        return sum(len(table) for table in self.tables.values())

    def add_kind(self, kind: int, nal: Buffer) -> bool:
        """Keep a unit of ``kind`` (the codec read its header); True for a readable parameter set."""
        read = self._readers.get(kind)
        if read is None:
            return False
        unit = bytes(nal)
        if unit in self._in_force:
            return True
        try:
            ident, info = read(unit)
        except (ValueError, IndexError):
            return False
        table = self.tables[kind]
        replaced = table.get(ident)
        table[ident] = (info, unit)
        if replaced is not None:
            self._in_force.pop(replaced[1], None)
        self._in_force[unit] = (kind, ident)
        return True

    def key_of(self, kind: int, nal: Buffer) -> "tuple[int, int]":
        """(kind, id) of a parameter set of ``kind`` (read once); ValueError if unreadable."""
        unit = bytes(nal)
        found = self._in_force.get(unit)
        if found is not None:
            return found
        read = self._readers.get(kind)
        if read is None:
            raise ValueError("not a parameter set")
        return (kind, read(unit)[0])

    def picture_sets(self, pps_kind: int, sps_kind: int, pps_id: int) -> "tuple[Any, Any]":
        """What the codec keeps of the PPS ``pps_id`` and of the SPS it refers to (by its
        ``sps_id``): the parameter sets in force for a slice; ValueError naming one unknown."""
        pps = self.tables[pps_kind].get(pps_id)
        if pps is None:
            raise ValueError("unknown PPS %d" % pps_id)
        sps = self.tables[sps_kind].get(pps[0].sps_id)
        if sps is None:
            raise ValueError("unknown SPS %d" % pps[0].sps_id)
        return pps[0], sps[0]

    def units(self) -> "list[bytes]":
        """Every unit in force: each kind in turn, by id."""
        out = []
        for kind in self._order:
            table = self.tables[kind]
            out += [table[ident][1] for ident in sorted(table)]
        return out
