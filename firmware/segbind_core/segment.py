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
from .nal import START_CODE, AnnexBScanner
from .sei import tag_codec

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional, Union

    from .nal import Buffer

    SegmentOrCut = Union["Segment", "_CutMarker"]  # what a Segmenter returns: Segments, CUT
except ImportError:
    pass

DEFAULT_FPS = 25.0
# The access unit delimiter inserted where an access unit has none (primary_pic_type 7: any).
DELIMITER = b"\x09\xf0"


class Segment:
    """One closed segment: Annex-B ``data`` (4-byte start codes) and what the cut knew.

    ``units``        its NAL units
    ``pictures``     its frames (a pair of fields counts once)
    ``fields``       its duration in fields (a frame is 2)
    ``duration_ms``  that duration at the stream's frame rate
    ``first_ms``     the time given with the bytes of its first picture, or None
    ``rap``          True when it begins at a random access point (IDR or recovery point)
    ``tagged``       True when it already holds a segbind tag
    """

    __slots__ = ("data", "units", "pictures", "fields", "duration_ms", "first_ms", "rap", "tagged")

    def __init__(self, data: bytes, units: int, pictures: int, fields: int, duration_ms: int,
                 first_ms: Optional[int], rap: bool, tagged: bool = False) -> None:
        self.data = data
        self.units = units
        self.pictures = pictures
        self.fields = fields
        self.duration_ms = duration_ms
        self.first_ms = first_ms
        self.rap = rap
        self.tagged = tagged

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

    def __init__(self, max_duration_s: float = 4.0, fps: Optional[float] = None,
                 delimit: bool = False) -> None:
        if not max_duration_s > 0:
            raise ValueError("max_duration_s must be positive")
        if fps is not None and not fps > 0:
            raise ValueError("fps must be positive")
        self.max_duration_s = max_duration_s
        self.fixed_fps = fps
        self.delimit = delimit
        self.dropped_pictures = 0
        self.segments = 0
        self.params = ParameterSets()
        self._scanner = AnnexBScanner()
        self._seg = bytearray()  # the current segment, Annex-B
        self._seg_units = 0
        self._seg_tagged = False
        self._seg_fields = 0  # pictures in the current segment, in fields (a frame is 2)
        self._seg_pictures = 0
        self._seg_has_vcl = False
        self._seg_first_ms: Optional[int] = None
        self._seg_rap = False
        # non-VCL units since the last slice: the next AU's head
        self._pending: list[Buffer] = []
        self._pending_rap = False  # a recovery point SEI among them
        self._cut_from = -1  # the first unit after a cut asked for, until it takes effect
        self._drop_below = 0  # units begun before a fresh cut are dropped when they complete
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
        """Take the next Annex-B bytes of the stream; return the Segments that closed.

        ``t_ms`` is when these bytes were read: a picture's capture time is that
        of the bytes its first NAL unit began in.
        """
        for unit, index, t in self._scanner.push(data, t_ms):
            self._unit(unit, t, index)
        return self._take_out()

    def push_unit(self, nal: Buffer, t_ms: Optional[int] = None) -> list[SegmentOrCut]:
        """Take one whole NAL unit (an encoder SDK's output); return the Segments that closed."""
        for unit, index, t in self._scanner.finish():  # Annex-B bytes before: now complete
            self._unit(unit, t, index)
        if len(nal):
            self._scanner.begun += 1
            self._unit(bytes(nal), t_ms, self._scanner.begun - 1)
        return self._take_out()

    def finish(self) -> list[SegmentOrCut]:
        """End of stream: the remaining Segment(s), and a pending cut's marker."""
        for unit, index, t in self._scanner.finish():
            self._unit(unit, t, index)
        self._take_pending()
        if self._seg:
            self._close()
        if self._cut_from >= 0:
            self._cut_takes_effect()
        return self._take_out()

    @property
    def discarded(self) -> int:
        """Bytes other than zeros before the first start code (not H.264)."""
        return self._scanner.discarded

    def cut(self, fresh_start: bool = False) -> list[SegmentOrCut]:
        """Cut the stream here: every unit begun so far stays before the cut, the rest after.

        For a change that must take effect at an instant (a camera's binding).
        When pictures from before the cut are still in progress, the cut takes
        effect at the first picture begun after it (or at ``finish``): the
        segment in progress closes there, then ``CUT`` comes out of ``push``;
        ``cut_pending`` is True meanwhile. Otherwise it takes effect at once and
        ``[CUT]`` is returned. With ``fresh_start`` it takes effect at once: the
        segment in progress and every unit begun before the cut are dropped (even
        those that complete later), and so are the pictures after the cut until a
        random access point (counted in ``dropped_pictures``): the next segment
        decodes on its own and holds nothing from before the cut.
        """
        self._cut_from = self._scanner.begun
        if fresh_start:
            self._drop_below = self._cut_from
            self._dropping = True
            self._cut_takes_effect(fresh=True)
        elif not self.in_progress:
            self._cut_takes_effect()
        return self._take_out()

    @property
    def in_progress(self) -> bool:
        """True while pictures wait in a segment not closed yet (or in a unit not complete)."""
        incomplete = self._scanner.pending
        return self._seg_has_vcl or (incomplete is not None and is_vcl(incomplete & 0x1F))

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

    # -- access units and cuts ------------------------------------------------------------

    def _unit(self, nal: Buffer, t_ms: Optional[int], index: int) -> None:
        kind = nal[0] & 0x1F
        if index < self._drop_below:  # begun before a fresh cut: never in a segment
            if is_vcl(kind) and first_slice_of_picture(nal):
                self.dropped_pictures += 1
            return
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
        if self.delimit and not (self._pending and self._pending[0][0] & 0x1F == NAL_AUD):
            self._pending.insert(0, DELIMITER)
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

    def _cut_takes_effect(self, fresh: bool = False) -> None:
        if fresh:
            self.dropped_pictures += self._seg_pictures
            self._pending = []
            self._pending_rap = False
            self._reset_segment()
            self._wait_rap = True
        elif self._seg_has_vcl:
            self._close()
        self._out.append(CUT)
        self._cut_from = -1

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
        self._seg_units += 1
        if nal[0] == 0x06 and tag_codec(nal):
            self._seg_tagged = True

    def _close(self) -> None:
        fields = self._seg_fields
        self._out.append(Segment(bytes(self._seg), self._seg_units, (fields + 1) // 2, fields,
                                 int(fields * 500.0 / self.fps + 0.5), self._seg_first_ms,
                                 self._seg_rap, self._seg_tagged))
        self.segments += 1
        self._reset_segment()

    def _reset_segment(self) -> None:
        self._seg = bytearray()
        self._seg_units = 0
        self._seg_tagged = False
        self._seg_fields = 0
        self._seg_pictures = 0
        self._seg_has_vcl = False
        self._seg_first_ms = None
        self._seg_rap = False


def cut(data: Buffer, max_duration_s: float = 4.0, fps: Optional[float] = None) -> list[Segment]:
    """Every segment of a whole Annex-B buffer (a Segmenter fed once, then finished)."""
    segmenter = Segmenter(max_duration_s, fps)  # no delimiters inserted: the stream as it was
    return [s for s in segmenter.push(data) + segmenter.finish() if isinstance(s, Segment)]
