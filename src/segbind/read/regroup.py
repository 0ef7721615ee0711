"""The one rule that cuts a stream of NAL units back into the segments the camera tagged.

A segment begins at its segbind tag. Access unit delimiters and parameter sets
that come after the previous segment's last picture and before the tag belong
to the tag's segment: the camera's segmenter never leaves them behind, and
muxers (MPEG-TS's extradata insertion) put them there. Units before the first
tag form a segment of their own, which a verifier refuses as untagged: nothing
in the stream goes unjudged.

``Regrouper`` applies the rule to NAL units given in order, whatever their
framing; ``Segment`` is what readers hand the verifier: the units, and what the
framing told (timing, defects), put into canonical form on demand with the one
retry policy that undoes what remuxers are seen to do to a segment's head
(docs/CONTAINERS.md).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from segbind_core.h264 import NAL_AUD, NAL_PPS, NAL_SPS, is_vcl
from segbind_core.sei import tag_codec

from ..errors import InvalidSegment
from ..verdict import Reason, Verdict
from ..verifier import Canonical, StreamVerifier, Timing

_HEAD_KINDS = (NAL_SPS, NAL_PPS, NAL_AUD)
# Bounds on one segment (a 4K camera's 4-second segment is about 25 MB): beyond them the
# segment is refused, and its units are not kept.
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
MAX_SEGMENT_UNITS = 1 << 17


class Segment:
    """One tagged segment as a reader found it: its NAL units, in order, and what the framing told.

    ``restore`` are the parameter sets in force at its start (to put back where a
    packager stripped them); ``timing`` what a container says of its samples;
    ``problem`` a framing defect that refuses it whatever its tag says.
    """

    __slots__ = ("units", "restore", "timing", "problem")

    def __init__(self, units: List[bytes], restore: Sequence[bytes] = (),
                 timing: Optional[Timing] = None, problem: str = "") -> None:
        self.units = units
        self.restore = restore
        self.timing = timing
        self.problem = problem

    def canonical(self) -> Canonical:
        """The segment in canonical form, with the heads to try when its digest does not
        match; InvalidSegment when it holds no tag, or several."""
        variants = [Canonical.of_units(units, self.timing, self.problem) for units in self._heads()]
        return Canonical.of_units(self.units, self.timing, self.problem, variants)

    def verify(self, verifier: StreamVerifier) -> Verdict:
        """The verifier's verdict on this segment (never raises)."""
        try:
            canonical = self.canonical()
        except InvalidSegment as exc:
            if self.problem:
                return Verdict(Reason.FRAMING, self.problem)
            return Verdict(exc.reason, exc.detail, exc.tag)
        return verifier.verify_canonical(canonical)

    def _heads(self) -> List[List[bytes]]:
        """The segment with the other heads remuxers are seen to make undone, at most one."""
        units = self.units
        kinds = [u[0] & 0x1F for u in units]
        first_vcl = next((i for i, k in enumerate(kinds) if is_vcl(k)), -1)
        tag = next((i for i in range(max(first_vcl, 0)) if tag_codec(units[i])), -1)
        if tag < 0:
            return []
        head, rest = units[:first_vcl], units[first_vcl:]
        sets = [u for u, k in zip(head, kinds) if k in (NAL_SPS, NAL_PPS)]
        others = [u for u, k in zip(head, kinds) if k not in (NAL_SPS, NAL_PPS)]
        at = next(i for i, u in enumerate(others) if u is units[tag]) + 1
        if sets:
            moved = others[:at] + sets + others[at:] + rest
            return [moved] if moved != units else []
        if not self.restore:
            return []
        return [others[:at] + list(self.restore) + others[at:] + rest]


class Regrouper:
    """Applies the regrouping rule to a stream of NAL units, given in order.

    ``add(unit)`` returns the segment the unit closed, or None; ``finish()`` the
    last. ``meta`` is a dict the reader fills for the segment in progress (its
    timing); a closed segment's ``meta`` comes back with it. ``initial`` are the
    parameter sets a container holds apart from its samples (``avcC``).
    """

    def __init__(self, initial: Sequence[bytes] = ()) -> None:
        self._initial = [bytes(u) for u in initial if u and u[0] & 0x1F in (NAL_SPS, NAL_PPS)]
        self._latest: Dict[Tuple[int, int], bytes] = {}
        self._units: List[bytes] = []
        self._kinds: List[int] = []
        self._size = 0
        self._problem = ""
        self._last_vcl = -1
        self._restore: List[bytes] = []
        self._tagged = False
        self.meta: Dict[str, Any] = {}
        self.closed_meta: Dict[str, Any] = {}

    def problem(self, text: str) -> None:
        """A framing defect in the segment in progress: it will be refused."""
        if not self._problem:
            self._problem = text

    def add(self, unit: bytes) -> Optional[Segment]:
        kind = unit[0] & 0x1F if unit else 0
        closed = None
        if unit and tag_codec(unit):
            tail = self._last_vcl + 1
            after = list(zip(self._units[tail:], self._kinds[tail:]))
            del self._units[tail:], self._kinds[tail:]
            moved = []
            for u, k in after:
                if k in _HEAD_KINDS:
                    moved.append((u, k))
                else:
                    self._units.append(u)
                    self._kinds.append(k)
            closed = self._close()
            for u, k in moved:
                self._keep(u, k)
            self._tagged = True
            self._restore = [self._latest[k] for k in sorted(self._latest)] or self._initial
        elif is_vcl(kind):
            self._last_vcl = len(self._units)
        elif kind in (NAL_SPS, NAL_PPS):
            self._track(unit, kind)
        self._keep(unit, kind)
        return closed

    def _track(self, unit: bytes, kind: int) -> None:
        from segbind_core.h264 import parameter_set_key

        try:
            self._latest[parameter_set_key(unit)] = unit
        except (ValueError, IndexError):
            pass

    def _keep(self, unit: bytes, kind: int) -> None:
        self._size += len(unit) + 4
        if self._size > MAX_SEGMENT_BYTES or len(self._units) >= MAX_SEGMENT_UNITS:
            self.problem("segment larger than %d MiB or %d NAL units"
                         % (MAX_SEGMENT_BYTES >> 20, MAX_SEGMENT_UNITS))
            return  # not kept: the segment is refused anyway
        self._units.append(unit)
        self._kinds.append(kind)

    def _close(self) -> Optional[Segment]:
        if not self._units and not self._problem:
            return None
        segment = Segment(self._units, self._restore if self._tagged else (), None, self._problem)
        self.closed_meta, self.meta = self.meta, {}
        self._units, self._kinds, self._size, self._problem, self._last_vcl = [], [], 0, "", -1
        return segment

    def finish(self) -> Optional[Segment]:
        """The segment in progress (at the end of the input), or None when there is none."""
        return self._close()
