"""The one rule that cuts a stream of NAL units back into the segments the camera tagged.

A segment begins at its segbind SEI (the tag). Access unit delimiters and
parameter sets that come after the previous segment's last picture and
before the tag belong to the tag's segment: the camera's segmenter never
leaves them behind, and muxers (MPEG-TS's extradata insertion, delimiters)
put them there. Units before the first tag form a segment of their own, which
a verifier refuses as untagged: nothing in the stream goes unjudged.

``Regrouper`` applies the rule to any unit "token" the reader chooses (an
offset pair into an Annex-B buffer, or the unit's bytes); ``Segment`` is what
readers hand the verifier, with the one retry policy that undoes what
remuxers are seen to do to a segment's head (docs/CONTAINERS.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, List, Optional, Sequence, Tuple, TypeVar

from segbind_core.h264 import NAL_AUD, NAL_PPS, NAL_SEI, NAL_SPS, ParameterSets, is_vcl
from segbind_core.sei import is_segbind_sei

from ..verdict import Reason

if TYPE_CHECKING:
    from ..verdict import Verdict
    from ..verifier import Buffer, StreamVerifier

Unit = Tuple[int, int]
T = TypeVar("T")
_HEAD_KINDS = (NAL_SPS, NAL_PPS, NAL_AUD)


class Segment:
    """One tagged segment read from any input: its NAL units as (start, end) offsets in ``buf``.

    ``units`` are the NAL units as found, in order; with ``prefixed`` each follows
    its own 4-byte length in ``buf`` (containers), else ``buf`` is Annex-B. When
    they do not match the tag's content digest, ``verify`` also tries what undoes
    the changes remuxers are seen to make to a segment's head (docs/CONTAINERS.md):
    the SPS/PPS moved behind other SEIs or before the tag, or stripped into
    ``avcC`` (``restore``: the parameter sets in force, put back after the tag).
    """

    __slots__ = ("buf", "units", "prefixed", "restore")

    def __init__(self, buf: Buffer, units: List[Unit], prefixed: bool,
                 restore: Sequence[bytes] = ()) -> None:
        self.buf = buf
        self.units = units
        self.prefixed = prefixed
        self.restore = restore

    def verify(self, verifier: StreamVerifier) -> Verdict:
        """The verifier's verdict on this segment (a ``StreamVerifier``)."""
        verdict = verifier.verify_units(self.buf, self.units, prefixed=self.prefixed)
        if verdict.reason is Reason.CONTENT_MISMATCH:
            for buf, units, prefixed in self.variants():
                other = verifier.verify_units(buf, units, prefixed=prefixed)
                if other.reason is not Reason.CONTENT_MISMATCH:
                    return other
        return verdict

    def variants(self) -> List[Tuple[Buffer, List[Unit], bool]]:
        """(buf, units, prefixed) of the other heads to try, in order."""
        buf, units = self.buf, self.units
        kinds = [buf[s] & 0x1F for s, _ in units]
        first_vcl = next((i for i, k in enumerate(kinds) if is_vcl(k)), -1)
        view = memoryview(buf)
        tag = next((i for i in range(max(first_vcl, 0)) if kinds[i] == NAL_SEI
                    and is_segbind_sei(view[units[i][0]:units[i][1]])), -1)
        if tag < 0:
            return []
        head, rest = units[:first_vcl], units[first_vcl:]
        sets = [u for u, k in zip(head, kinds) if k in (NAL_SPS, NAL_PPS)]
        others = [u for u, k in zip(head, kinds) if k not in (NAL_SPS, NAL_PPS)]
        at = others.index(units[tag]) + 1
        if sets:
            moved = others[:at] + sets + others[at:] + rest
            return [(buf, moved, self.prefixed)] if moved != units else []
        if not self.restore:
            return []
        framed = FramedUnits()
        for s, e in others[:at]:
            framed.put(view[s:e])
        for unit in self.restore:
            framed.put(unit)
        for s, e in others[at:] + rest:
            framed.put(view[s:e])
        return [(framed.buf, framed.units, True)]


class FramedUnits:
    """NAL units copied into one length-prefixed buffer (MP4 framing, 4-byte lengths)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.units: List[Unit] = []

    def put(self, unit: Buffer) -> None:
        start = len(self.buf) + 4
        self.buf += len(unit).to_bytes(4, "big")
        self.buf += unit
        self.units.append((start, len(self.buf)))


class Regrouper(Generic[T]):
    """Applies the regrouping rule to a stream of units, given in order.

    ``add(token, nal)``: ``token`` is what the caller wants back (offsets or
    bytes), ``nal`` the unit's bytes. It returns ``(tokens, restore)`` of the
    segment the unit closed, or None. ``restore`` is the parameter sets in
    force at that segment's start (the stream's latest, else ``initial``: a
    container's ``avcC``), empty for units before the first tag.
    """

    def __init__(self, initial: Sequence[bytes] = ()) -> None:
        self.params = ParameterSets()
        self._initial = [bytes(u) for u in initial if u and u[0] & 0x1F in (NAL_SPS, NAL_PPS)]
        self._tokens: List[T] = []
        self._kinds: List[int] = []
        self._last_vcl = -1
        self._restore: List[bytes] = []
        self._tagged = False

    def add(self, token: T, nal: Buffer) -> Optional[Tuple[List[T], List[bytes]]]:
        kind = nal[0] & 0x1F
        closed = None
        if kind == NAL_SEI and is_segbind_sei(nal):
            tail = self._last_vcl + 1
            after = list(zip(self._tokens[tail:], self._kinds[tail:]))
            del self._tokens[tail:], self._kinds[tail:]
            for t, k in after:
                if k not in _HEAD_KINDS:
                    self._tokens.append(t)
                    self._kinds.append(k)
            closed = self.finish()
            for t, k in after:
                if k in _HEAD_KINDS:
                    self._tokens.append(t)
                    self._kinds.append(k)
            self._tagged = True
            self._restore = self.params.units() or self._initial
        elif is_vcl(kind):
            self._last_vcl = len(self._tokens)
        elif kind in (NAL_SPS, NAL_PPS):
            self.params.add(nal)
        self._tokens.append(token)
        self._kinds.append(kind)
        return closed

    def finish(self) -> Optional[Tuple[List[T], List[bytes]]]:
        """The segment in progress (at the end of the input), or None when there is none."""
        if not self._tokens:
            return None
        out = (self._tokens, self._restore if self._tagged else [])
        self._tokens, self._kinds, self._last_vcl = [], [], -1
        return out


class SegmentBuilder:
    """Regroups NAL units given as bytes into length-prefixed ``Segment``\\ s (containers).

    ``add(unit)`` returns the previous segment when a unit starts a new one (a
    segbind SEI). ``restore`` are parameter sets (SPS then PPS) a muxer may
    have moved out of the samples (the container's ``avcC`` or extradata).
    """

    def __init__(self, restore: Sequence[bytes] = ()) -> None:
        self._rule: Regrouper[bytes] = Regrouper(restore)

    def add(self, unit: Buffer) -> Optional[Segment]:
        unit = bytes(unit)
        closed = self._rule.add(unit, unit)
        return self._segment(closed)

    def finish(self) -> Optional[Segment]:
        return self._segment(self._rule.finish())

    @staticmethod
    def _segment(closed: Optional[Tuple[List[bytes], List[bytes]]]) -> Optional[Segment]:
        if closed is None:
            return None
        units, restore = closed
        framed = FramedUnits()
        for unit in units:
            framed.put(unit)
        return Segment(framed.buf, framed.units, True, restore)


def segments_of_units(buf: Any, units: Sequence[Unit]) -> List[Segment]:
    """Regroup NAL units given as offsets into ``buf`` (Annex-B; nothing is copied)."""
    rule: Regrouper[Unit] = Regrouper()
    view = memoryview(buf)
    out = []
    for s, e in units:
        closed = rule.add((s, e), view[s:e])
        if closed is not None:
            out.append(Segment(buf, closed[0], False, closed[1]))
    last = rule.finish()
    if last is not None:
        out.append(Segment(buf, last[0], False, last[1]))
    return out
