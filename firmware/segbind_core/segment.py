"""Where segments start: cutting an H.264 stream into segments that decode on their own.

A segment is a run of whole access units. segbind cuts one at every random
access point: an IDR picture, or an access unit carrying a recovery-point SEI
(what encoders with intra refresh and no periodic IDR emit), and never lets
one run longer than a maximum duration (counted in pictures). An access
unit's leading non-VCL units (AUD, SPS, PPS, SEI) belong with the picture they
precede.

``Segmenter`` is the one segmenter: the camera agent, ``segbind tag``, the
fleet simulation, the tests and the benchmarks all cut with it. It takes
Annex-B bytes as they arrive from an encoder's pipe (``push``) or whole NAL
units from an encoder SDK (``push_unit``). Pure code: no I/O, no
dependencies, runs on MicroPython.
"""

from .h264 import (
    AU_OPENERS,
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SEI,
    NAL_SPS,
    ParameterSets,
    Sps,
    first_slice_of_picture,
    has_recovery_point,
    is_vcl,
    parse_slice_header,
)
from .nal import START_CODE

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional, Union

    from .nal import Buffer

    SegmentOrCut = Union["Segment", "_CutMarker"]  # what a Segmenter returns: Segments, CUT
except ImportError:
    pass

DEFAULT_FPS = 25.0


class Segment:
    """One closed segment: Annex-B ``data`` (4-byte start codes) and what the cut knew.

    ``pictures``   access units with a picture (a field pair counts twice)
    ``fields``     its duration in fields (a frame is 2)
    ``first_ms``   the time given with the bytes of its first picture, or None
    ``rap``        True when it begins at a random access point (IDR or recovery point)
    """

    __slots__ = ("data", "pictures", "fields", "first_ms", "rap")

    def __init__(self, data: bytes, pictures: int, fields: int, first_ms: Optional[int],
                 rap: bool) -> None:
        self.data = data
        self.pictures = pictures
        self.fields = fields
        self.first_ms = first_ms
        self.rap = rap

    def __repr__(self) -> str:
        return "Segment(%d bytes, %d pictures%s)" % (len(self.data), self.pictures,
                                                      "" if self.rap else ", no RAP")


class _CutMarker:
    def __repr__(self) -> str:
        return "CUT"


CUT = _CutMarker()
"""Among ``push``'s results: where a cut asked for with ``Segmenter.cut`` took effect.

Every segment before it holds only pictures begun before the cut, every
segment after it only pictures begun after."""


class Segmenter:
    """Cuts an H.264 stream, fed as it arrives, into self-contained segments.

    ``push(data, t_ms)`` takes Annex-B bytes and ``push_unit(nal, t_ms)`` one
    NAL unit (escaped, without start code); both return the ``Segment``\\ s
    that closed (and ``CUT`` markers). ``finish()`` returns the rest at the
    end of the stream. ``feed``/``flush`` are the same with the segments' bytes
    only. Each segment is made of whole access units and begins at an IDR
    picture, at a recovery point, where the ``max_duration_s`` bound forced a
    cut, or at a ``cut()``. When a segment does not itself carry the parameter
    sets in force, the latest SPS and PPS of every id are inserted at its
    start (after any AUD), so it decodes on its own. Bytes before the first
    start code are not H.264: they are counted in ``discarded`` (zero padding
    is not counted).

    Memory: the current segment, the non-VCL units of the next access unit
    and the incomplete NAL unit at the end of the input.
    """

    def __init__(self, max_duration_s: float = 4.0, fps: Optional[float] = None) -> None:
        if not max_duration_s > 0:
            raise ValueError("max_duration_s must be positive")
        if fps is not None and not fps > 0:
            raise ValueError("fps must be positive")
        self.max_duration_s = max_duration_s
        self.fixed_fps = fps
        self.discarded = 0
        self.dropped_pictures = 0
        self.segments = 0
        self.params = ParameterSets()
        self._nal: Optional[bytearray] = None  # the incomplete NAL unit, after its start code
        self._nal_t: Optional[int] = None  # the time given with the bytes that began it
        self._begun = 0  # NAL units begun so far (the incomplete one included)
        self._carry = b""  # the last two input bytes, for start codes split across feeds
        self._seg = bytearray()  # the current segment, Annex-B
        self._seg_fields = 0  # pictures in the current segment, in fields (a frame is 2)
        self._seg_pictures = 0
        self._seg_has_vcl = False
        self._seg_first_ms: Optional[int] = None
        self._seg_rap = False
        # non-VCL units since the last slice: the next AU's head
        self._pending: list[Buffer] = []
        self._pending_rap = False  # a recovery point SEI among them
        self._cut_from = -1  # the first unit after a cut asked for, until it takes effect
        self._cut_fresh = False  # that cut drops what it interrupts and waits for a RAP
        self._wait_rap = False  # drop pictures until a random access point
        self._dropping = False  # the picture being read is dropped
        self._active_sps: Optional[Sps] = None
        self._out: list[SegmentOrCut] = []

    @property
    def fps(self) -> float:
        """The frame rate used for the duration bound."""
        if self.fixed_fps is not None:
            return float(self.fixed_fps)
        if self._active_sps is not None and self._active_sps.fps:
            return self._active_sps.fps
        return DEFAULT_FPS

    # -- input ------------------------------------------------------------------------

    def push(self, data: Buffer, t_ms: Optional[int] = None) -> list[SegmentOrCut]:
        """Take the next Annex-B bytes of the stream; return the Segments that closed."""
        if not hasattr(data, "find"):
            data = bytes(data)
        n = len(data)
        if n == 0:
            return []
        carry = self._carry
        pos = 0  # where the current NAL unit's bytes start in data
        if carry:
            # A start code that begins in the previous feed and ends in this one.
            i = (carry + bytes(data[:2])).find(b"\x00\x00\x01")
            if 0 <= i < len(carry):
                cut = len(carry) - i  # bytes of that start code already taken
                if self._nal is not None:
                    keep = len(self._nal) - cut
                    self._nal = self._nal[:keep] if keep > 0 else bytearray()
                    self._end_nal(None, 0, 0)
                self._begin_nal(t_ms)
                pos = 3 - cut
        find = data.find
        while True:
            i = find(b"\x00\x00\x01", pos)
            if i < 0:
                break
            if self._nal is None:
                self._leading(data, pos, i)
            else:
                self._end_nal(data, pos, i)
            self._begin_nal(t_ms)
            pos = i + 3
        if pos < n:
            if self._nal is None:
                self._leading(data, pos, n)
            else:
                self._nal += data[pos:n] if pos else data
        self._carry = bytes(data[n - 2:]) if n >= 2 else bytes(carry[-1:]) + bytes(data)
        return self._take_out()

    def push_unit(self, nal: Buffer,
                  t_ms: Optional[int] = None) -> list[SegmentOrCut]:
        """Take one whole NAL unit (an encoder SDK's output); return the Segments that closed."""
        if self._nal is not None:  # Annex-B bytes came before: their last unit is complete now
            self._end_nal(None, 0, 0)
            self._nal = None
            self._carry = b""
        if len(nal):
            self._begun += 1
            self._unit(bytes(nal), t_ms, self._begun - 1)
        return self._take_out()

    def finish(self) -> list[SegmentOrCut]:
        """End of stream: the remaining Segment(s), and a pending cut's marker."""
        if self._nal is not None:
            self._end_nal(None, 0, 0)
            self._nal = None
        self._carry = b""
        self._take_pending()
        if self._seg:
            self._close()
        if self._cut_from >= 0:
            self._cut_takes_effect()
        return self._take_out()

    def cut(self, fresh_start: bool = False) -> list[SegmentOrCut]:
        """Cut the stream here: every unit begun so far stays before the cut, the rest after.

        For a change that must take effect at an instant (a camera's binding).
        When pictures from before the cut are still in progress, the cut takes
        effect at the first picture begun after it (or at ``finish``): the
        segment in progress closes there, then ``CUT`` comes out of ``push``;
        ``cut_pending`` is True meanwhile. Otherwise it takes effect at once and
        ``[CUT]`` is returned. With ``fresh_start``, the pictures in progress are
        dropped instead of closed, and so are the pictures after the cut until a
        random access point (counted in ``dropped_pictures``): the next segment
        decodes on its own and holds nothing from before the cut.
        """
        self._cut_from = self._begun
        self._cut_fresh = self._cut_fresh or fresh_start
        incomplete = self._nal
        if self._seg_has_vcl or bool(incomplete and is_vcl(incomplete[0] & 0x1F)):
            return []
        self._cut_takes_effect()
        return self._take_out()

    @property
    def cut_pending(self) -> bool:
        """True between a ``cut()`` and the point where it takes effect."""
        return self._cut_from >= 0

    def feed(self, data: Buffer) -> list[bytes]:
        """``push`` without times, giving each closed segment's bytes."""
        return [s.data for s in self.push(data) if isinstance(s, Segment)]  # all but CUT

    def flush(self) -> list[bytes]:
        """``finish``, giving each remaining segment's bytes."""
        return [s.data for s in self.finish() if isinstance(s, Segment)]

    # -- scanning ---------------------------------------------------------------------

    def _take_out(self) -> list[SegmentOrCut]:
        out = self._out
        self._out = []
        return out

    def _begin_nal(self, t_ms: Optional[int]) -> None:
        self._nal = bytearray()
        self._nal_t = t_ms
        self._begun += 1

    def _leading(self, data: Buffer, s: int, e: int) -> None:
        for k in range(s, e):
            if data[k]:
                self.discarded += 1

    def _end_nal(self, data: Optional[Buffer], s: int, e: int) -> None:
        """The NAL unit made of self._nal then data[s:e] is complete."""
        index = self._begun - 1
        if data is not None and not self._nal:
            while e > s and data[e - 1] == 0:
                e -= 1
            if e > s:
                self._unit(data[s:e], self._nal_t, index)
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
            self._unit(bytes(nal[:k]) if k < len(nal) else bytes(nal), self._nal_t, index)

    # -- access units and cuts ------------------------------------------------------------

    def _unit(self, nal: Buffer, t_ms: Optional[int], index: int) -> None:
        kind = nal[0] & 0x1F
        if is_vcl(kind):
            self._picture_unit(nal, kind, t_ms, index)
            return
        self.params.add(nal)
        # Units that open an access unit, and everything before the first
        # picture, wait for the next picture (its type decides the cut);
        # end of sequence/stream, filler and the like end the current one.
        if self._pending or kind in AU_OPENERS or not self._seg_has_vcl:
            if kind == NAL_SEI and not self._pending_rap and has_recovery_point(nal):
                self._pending_rap = True
            self._pending.append(nal)
        else:
            self._append(nal)

    def _picture_unit(self, nal: Buffer, kind: int, t_ms: Optional[int], index: int) -> None:
        if not first_slice_of_picture(nal):
            if self._dropping:
                return
            self._take_pending()
            self._append(nal)
            self._seg_has_vcl = True
            return
        fields = self._read_picture(nal)
        rap = kind == NAL_IDR or self._pending_rap
        if self._cut_from >= 0 and index >= self._cut_from:
            self._cut_takes_effect()
        elif self._seg_has_vcl:
            limit = int(self.max_duration_s * self.fps * 2 + 1e-6)
            if limit < 2:
                limit = 2
            too_long = self._seg_fields + fields > limit and self._seg_fields % 2 == 0
            if rap or too_long:
                self._close()
        if self._wait_rap:
            if not rap:
                self._drop_picture()
                return
            self._wait_rap = False
        self._dropping = False
        if not self._seg_has_vcl:
            if self.params:
                self._carry_parameter_sets()
            self._seg_first_ms = t_ms
            self._seg_rap = rap
        self._take_pending()
        self._append(nal)
        self._seg_has_vcl = True
        self._seg_pictures += 1
        self._seg_fields += fields

    def _read_picture(self, nal: Buffer) -> int:
        """The picture's duration in fields (2 for a frame); notes the SPS in force.

        Reading the slice header is needed only where fields are possible or
        several SPS exist; a stream of frames under one SPS skips it.
        """
        sps = self.params.sps
        if len(sps) == 1:
            only = next(iter(sps.values()))[0]
            if only.complete and only.frame_mbs_only:
                self._active_sps = only
                return 2
        try:
            header = parse_slice_header(nal, self.params)
        except (ValueError, IndexError):
            return 2
        if header.sps is not None:
            self._active_sps = header.sps
        return 1 if header.field_pic else 2

    def _cut_takes_effect(self) -> None:
        if self._cut_fresh:
            self.dropped_pictures += self._seg_pictures
            self._pending = []
            self._pending_rap = False
            self._reset_segment()
            self._wait_rap = True
        elif self._seg_has_vcl:
            self._close()
        self._out.append(CUT)
        self._cut_from = -1
        self._cut_fresh = False

    def _drop_picture(self) -> None:
        """A picture (and its head) that must not be kept: dropped until the next RAP."""
        self._pending = []
        self._pending_rap = False
        self.dropped_pictures += 1
        self._dropping = True

    def _carry_parameter_sets(self) -> None:
        """Put the SPS/PPS in force that the new segment's head lacks at its start."""
        head = self._pending
        have: dict[tuple[int, int], bool] = {}
        for nal in head:
            try:
                have[self.params.key(nal)] = True
            except (ValueError, IndexError):
                pass
        add_sps = [u for k, (_i, u) in sorted(self.params.sps.items()) if (NAL_SPS, k) not in have]
        add_pps = [u for k, (_s, u) in sorted(self.params.pps.items()) if (NAL_PPS, k) not in have]
        if not add_sps and not add_pps:
            return
        at = 1 if head and head[0][0] & 0x1F == NAL_AUD else 0
        head[at:at] = add_sps
        # PPS after the last SPS of the head: a decoder reads a PPS against its SPS.
        last_sps = at + len(add_sps)
        for k in range(len(head)):
            if head[k][0] & 0x1F == NAL_SPS:
                last_sps = k + 1
        head[last_sps:last_sps] = add_pps

    def _take_pending(self) -> None:
        for nal in self._pending:
            self._append(nal)
        self._pending = []
        self._pending_rap = False

    def _append(self, nal: Buffer) -> None:
        self._seg += START_CODE
        self._seg += nal

    def _close(self) -> None:
        self._out.append(Segment(bytes(self._seg), self._seg_pictures, self._seg_fields,
                                 self._seg_first_ms, self._seg_rap))
        self.segments += 1
        self._reset_segment()

    def _reset_segment(self) -> None:
        self._seg = bytearray()
        self._seg_fields = 0
        self._seg_pictures = 0
        self._seg_has_vcl = False
        self._seg_first_ms = None
        self._seg_rap = False


def cut(data: Buffer, max_duration_s: float = 4.0, fps: Optional[float] = None) -> list[Segment]:
    """Every segment of a whole Annex-B buffer (a Segmenter fed once, then finished)."""
    segmenter = Segmenter(max_duration_s, fps)
    return [s for s in segmenter.push(data) + segmenter.finish() if isinstance(s, Segment)]
