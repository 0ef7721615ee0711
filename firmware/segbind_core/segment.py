"""Where segments start: cutting an H.264 or H.265 stream into segments that decode on their own.

A segment is a run of whole access units. segbind cuts one at every random
access point: an IDR picture (H.264) or an IRAP picture (H.265: IDR, CRA,
BLA), or an access unit carrying a recovery-point SEI (what encoders with
intra refresh and no periodic IDR emit), and never lets one run longer than a
maximum duration (counted in pictures). An access unit's leading non-VCL units
(AUD, parameter sets, SEI) belong with the picture they precede.

``Segmenter`` is the one segmenter: the camera agent, ``segbind tag``, the
fleet simulation, the tests and the benchmarks all cut with it. It takes
Annex-B bytes as they arrive from an encoder's pipe (``push``) or whole NAL
units from an encoder SDK (``push_unit``), of the codec it is given or the one
``codec_of_unit`` reads from the stream's first units. Pure code: no I/O, no
dependencies, runs on MicroPython.
"""

from . import h264, h265
from .nal import START_CODE, AnnexBScanner, annexb_units
from .sei import tag_codec
from .tag import CODEC_H264, CODEC_H265

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Callable, Mapping, Optional, Union

    from .nal import Buffer

    SegmentOrCut = Union["Segment", "_CutMarker"]  # what a Segmenter returns: Segments, CUT
    AnyParameterSets = Union[h264.ParameterSets, h265.ParameterSets]
    AnySps = Union[h264.Sps, h265.Sps]
except ImportError:
    pass

DEFAULT_FPS = 25.0
# The access unit delimiter inserted where an H.264 access unit has none (primary_pic_type 7: any).
DELIMITER = b"\x09\xf0"
# A stream's codec is read from its first unit that tells the codecs apart; units that do
# not are held until one does, at most this many (then the stream is taken as H.264).
UNDECIDED_UNITS = 64


def codec_of_unit(nal: Buffer) -> int:
    """The codec a stream's NAL unit shows (CODEC_H264, CODEC_H265), or 0 when it does not tell.

    H.265 headers are two bytes, the second ``00000 ttt`` for the base layer
    (layer 0, temporal id plus 1 in 1..7); its first byte is even (layer id's high
    bit 0). An H.264 header is one byte: an odd one (NAL types 1, 5, 7, 9: slices,
    SPS, AUD) or an SEI (06) can only be H.264, and so can any unit whose second
    byte is not a base-layer H.265 header. An even first byte before such a second
    byte is H.265 when it is a unit an H.265 stream or segment begins with: VPS,
    SPS, PPS, AUD, prefix SEI or an IRAP picture, all at temporal id 0 (``xx 01``);
    other such units (an H.265 slice, an H.264 PPS with id 31 or more) tell nothing.
    """
    if len(nal) < 2 or nal[0] & 0x80:
        return 0
    first = nal[0]
    if first & 1 or first == 0x06 or not 1 <= nal[1] <= 7:
        return CODEC_H264
    kind = (first >> 1) & 0x3F
    if nal[1] == 1 and (kind in (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS, h265.NAL_AUD,
                                 h265.NAL_PREFIX_SEI) or h265.is_irap(kind)):
        return CODEC_H265
    return 0


def detect_codec(head: Union[bytes, bytearray]) -> int:
    """The codec a Segmenter will read an Annex-B stream beginning with ``head`` as.

    0 when ``head`` does not tell yet (read more); a stream whose first
    ``UNDECIDED_UNITS`` units tell nothing is H.264. A last unit of fewer than two
    bytes may be cut short by the end of ``head`` and is not counted.
    """
    units = annexb_units(head)
    for i, (s, e) in enumerate(units):
        if e - s < 2 and i == len(units) - 1:
            break
        codec = codec_of_unit(memoryview(head)[s:e])
        if codec:
            return codec
        if i + 1 >= UNDECIDED_UNITS:
            return CODEC_H264
    return 0


def _flags(kinds: "list[int]") -> bytes:
    table = bytearray(64)
    for kind in kinds:
        table[kind] = 1
    return bytes(table)


class _Syntax:
    """What the segmenter asks of one codec, as tables for the per-unit path.

    A unit's type is ``(nal[0] >> shift) & mask``; ``vcl``, ``irap`` and
    ``opens_au`` are indexed by type; the first-slice flag is the first bit after
    the ``header_size``-byte header; ``sets`` are the parameter set types in the
    order a decoder reads them.
    """

    def __init__(self, codec: int, header_size: int, shift: int, mask: int, vcl: "list[int]",
                 irap: "list[int]", opens_au: "list[int]", sei: int, aud: int, delimiter: bytes,
                 sets: "tuple[int, ...]",
                 has_recovery_point: "Callable[[Buffer], bool]") -> None:
        self.codec = codec
        self.header_size = header_size
        self.shift = shift
        self.mask = mask
        self.vcl = _flags(vcl)
        self.irap = _flags(irap)
        self.opens_au = _flags(opens_au)
        self.sei = sei
        self.aud = aud
        self.delimiter = delimiter
        self.sets = sets
        self.has_recovery_point = has_recovery_point


_SYNTAX = {
    CODEC_H264: _Syntax(CODEC_H264, 1, 0, 0x1F, [1, 2, 3, 4, 5], [h264.NAL_IDR], list(h264.AU_OPENERS),
                        h264.NAL_SEI, h264.NAL_AUD, DELIMITER, (h264.NAL_SPS, h264.NAL_PPS),
                        h264.has_recovery_point),
    CODEC_H265: _Syntax(CODEC_H265, 2, 1, 0x3F, list(range(32)), list(range(16, 24)),
                        list(h265.AU_OPENERS), h265.NAL_PREFIX_SEI, h265.NAL_AUD, h265.DELIMITER,
                        (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS), h265.has_recovery_point),
}


class Segment:
    """One closed segment: Annex-B ``data`` (4-byte start codes) and what the cut knew.

    ``units``        its NAL units
    ``pictures``     its frames (a pair of fields counts once)
    ``fields``       its duration in fields (a frame is 2)
    ``duration_ms``  that duration at the stream's frame rate
    ``first_ms``     the time given with the bytes of its first picture, or None
    ``rap``          True when it begins at a random access point (IDR/IRAP or recovery point)
    ``tagged``       True when it already holds a segbind tag
    ``codec``        CODEC_H264 or CODEC_H265: what the tag must say
    ``bounds``       (start, end) of each NAL unit in ``data`` (``nal.annexb_units``'s form), or
                     None: the tagger need not look for them again
    """

    __slots__ = ("data", "units", "pictures", "fields", "duration_ms", "first_ms", "rap", "tagged",
                 "codec", "bounds")

    def __init__(self, data: bytes, units: int, pictures: int, fields: int, duration_ms: int,
                 first_ms: Optional[int], rap: bool, tagged: bool = False,
                 codec: int = CODEC_H264, bounds: "Optional[list[tuple[int, int]]]" = None) -> None:
        self.data = data
        self.units = units
        self.pictures = pictures
        self.fields = fields
        self.duration_ms = duration_ms
        self.first_ms = first_ms
        self.rap = rap
        self.tagged = tagged
        self.codec = codec
        self.bounds = bounds

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
    """Cuts an H.264 or H.265 stream, fed as it arrives, into self-contained segments.

    ``push(data, t_ms)`` takes Annex-B bytes and ``push_unit(nal, t_ms)`` one
    NAL unit (escaped, without start code); both return the ``Segment``\\ s
    that closed (and ``CUT`` markers). ``finish()`` returns the rest at the
    end of the stream. ``feed``/``flush`` are the same with the segments' bytes
    only. Each segment is made of whole access units and begins at an IDR or
    IRAP picture, at a recovery point, where the ``max_duration_s`` bound forced
    a cut, or at a ``cut()``. When a segment does not itself carry the parameter
    sets in force, the latest of every id (H.265: VPS, SPS, PPS; H.264: SPS,
    PPS) are inserted at its start (after any AUD), so it decodes on its own.
    ``codec`` (CODEC_H264, CODEC_H265) is read from the stream when not given
    (``codec_of_unit``); it is 0 until then. Bytes before the first start code
    are not video: they are counted in ``discarded`` (zero padding is not
    counted).

    Memory: the current segment, the non-VCL units of the next access unit
    and the incomplete NAL unit at the end of the input.
    """

    def __init__(self, max_duration_s: float = 4.0, fps: Optional[float] = None,
                 delimit: bool = False, codec: int = 0) -> None:
        if not max_duration_s > 0:
            raise ValueError("max_duration_s must be positive")
        if fps is not None and not fps > 0:
            raise ValueError("fps must be positive")
        if codec and codec not in _SYNTAX:
            raise ValueError("codec is CODEC_H264, CODEC_H265 or 0 (read from the stream)")
        self.max_duration_s = max_duration_s
        self.fixed_fps = fps
        self.delimit = delimit
        self.dropped_pictures = 0
        self.segments = 0
        self.codec = 0
        self._syntax = _SYNTAX[CODEC_H264]
        self.params: AnyParameterSets = h264.ParameterSets()
        if codec:
            self._decide(codec)
        self._undecided: list[tuple[Buffer, Optional[int], int]] = []  # units held until the codec is known
        self._scanner = AnnexBScanner()
        self._seg = bytearray()  # the current segment, Annex-B
        self._seg_bounds: list[tuple[int, int]] = []  # where each of its units is
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
        self._active_sps: Optional[AnySps] = None
        self._out: list[SegmentOrCut] = []

    def _decide(self, codec: int) -> None:
        self.codec = codec
        self._syntax = _SYNTAX[codec]
        self.params = h265.ParameterSets() if codec == CODEC_H265 else h264.ParameterSets()

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
        if self._undecided:  # nothing told the codec: H.264, as segbind has always read
            self._release_undecided(CODEC_H264)
        self._take_pending()
        if self._seg:
            self._close()
        if self._cut_from >= 0:
            self._cut_takes_effect()
        return self._take_out()

    @property
    def discarded(self) -> int:
        """Bytes other than zeros before the first start code (not video)."""
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
        if self._undecided:
            return True
        incomplete = self._scanner.pending
        syn = self._syntax
        return self._seg_has_vcl or (incomplete is not None
                                     and bool(syn.vcl[(incomplete >> syn.shift) & syn.mask]))

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

    def _release_undecided(self, codec: int) -> None:
        self._decide(codec)
        held = self._undecided
        self._undecided = []
        for nal, t_ms, index in held:
            self._unit(nal, t_ms, index)

    # -- access units and cuts ------------------------------------------------------------

    def _unit(self, nal: Buffer, t_ms: Optional[int], index: int) -> None:
        if not self.codec:
            codec = codec_of_unit(nal)
            if not codec:
                self._undecided.append((nal, t_ms, index))
                if len(self._undecided) < UNDECIDED_UNITS:
                    return
                self._release_undecided(CODEC_H264)
                return
            self._release_undecided(codec)
        syn = self._syntax
        kind = (nal[0] >> syn.shift) & syn.mask
        if index < self._drop_below:  # begun before a fresh cut: never in a segment
            if syn.vcl[kind] and len(nal) > syn.header_size and nal[syn.header_size] & 0x80:
                self.dropped_pictures += 1
            return
        if syn.vcl[kind]:
            self._picture_unit(nal, kind, t_ms, index)
            return
        self.params.add(nal)
        # Units that open an access unit, and everything before the first
        # picture, wait for the next picture (its type decides the cut);
        # end of sequence/stream, filler and the like end the current one.
        if self._pending or syn.opens_au[kind] or not self._seg_has_vcl:
            if kind == syn.sei and not self._pending_rap and syn.has_recovery_point(nal):
                self._pending_rap = True
            self._pending.append(nal)
        else:
            self._append(nal)

    def _picture_unit(self, nal: Buffer, kind: int, t_ms: Optional[int], index: int) -> None:
        syn = self._syntax
        if not (len(nal) > syn.header_size and nal[syn.header_size] & 0x80):  # not a first slice
            if self._dropping:
                return
            self._take_pending()
            self._append(nal)
            self._seg_has_vcl = True
            return
        fields = self._read_picture(nal)
        rap = bool(syn.irap[kind]) or self._pending_rap
        if self._cut_from >= 0 and index >= self._cut_from:
            self._cut_takes_effect()
        elif self._seg_has_vcl and self._cut_from < 0:
            # (While a cut waits, a picture begun before it joins the segment in progress:
            # that one segment closes where the cut takes effect, as ``cut`` promises.)
            limit = int(self.max_duration_s * self.fps * 2 + 1e-6)
            if limit < 2:
                limit = 2
            # Never between the two fields of a frame; in H.265, only before a picture of
            # temporal layer 0, the only access units that may carry a VPS and an SPS.
            too_long = (self._seg_fields + fields > limit and self._seg_fields % 2 == 0
                        and (syn.header_size == 1 or nal[1] & 7 == 1))
            if rap or too_long:
                self._close()
        if self._wait_rap:
            if not rap:
                self._drop_picture()
                return
            self._wait_rap = False
        self._dropping = False
        if self.delimit and not (self._pending and self._kind(self._pending[0]) == syn.aud):
            delimiter = syn.delimiter
            if syn.header_size == 2 and nal[1] & 7 > 1:  # H.265: an AUD has its pictures' temporal id
                delimiter = delimiter[:1] + bytes((nal[1] & 7,)) + delimiter[2:]
            self._pending.insert(0, delimiter)
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

    def _kind(self, nal: Buffer) -> int:
        syn = self._syntax
        return (nal[0] >> syn.shift) & syn.mask

    def _read_picture(self, nal: Buffer) -> int:
        """The picture's duration in fields (2 for a frame); notes the SPS in force.

        Reading the slice header is needed only where fields are possible or
        several SPS exist; a stream of frames under one SPS skips it.
        """
        params = self.params
        if isinstance(params, h265.ParameterSets):  # a field is a picture of its own (field_seq)
            sps265: Optional[h265.Sps] = None
            if len(params.sps) == 1:
                sps265 = next(iter(params.sps.values()))[0]
            else:
                try:
                    sps265 = h265.parse_slice_header(nal, params).sps
                except (ValueError, IndexError):
                    return 2
            if sps265 is None or not sps265.complete:
                return 2
            self._active_sps = sps265
            return 1 if sps265.field_seq else 2
        sps = params.sps
        if len(sps) == 1:
            only = next(iter(sps.values()))[0]
            if only.complete and only.frame_mbs_only:
                self._active_sps = only
                return 2
        try:
            header = h264.parse_slice_header(nal, params)
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

    def _parameter_set_tables(self) -> "list[tuple[int, Mapping[int, tuple[object, bytes]]]]":
        """(type, id -> (parsed, NAL bytes)) for each parameter set type, in decoding order."""
        params = self.params
        if isinstance(params, h265.ParameterSets):
            return [(h265.NAL_VPS, params.vps), (h265.NAL_SPS, params.sps), (h265.NAL_PPS, params.pps)]
        return [(h264.NAL_SPS, params.sps), (h264.NAL_PPS, params.pps)]

    def _carry_parameter_sets(self) -> None:
        """Put the parameter sets in force that the new segment's head lacks at its start."""
        head = self._pending
        have: dict[tuple[int, int], bool] = {}
        for nal in head:
            try:
                have[self.params.key(nal)] = True
            except (ValueError, IndexError):
                pass
        tables = self._parameter_set_tables()
        adds = [[u for k, (_info, u) in sorted(table.items()) if (kind, k) not in have]
                for kind, table in tables]
        if not any(adds):
            return
        at = 1 if head and self._kind(head[0]) == self._syntax.aud else 0
        # Each type after the last unit of the type before it: a decoder reads a PPS
        # against its SPS, and (H.265) an SPS against its VPS.
        previous = -1
        for (kind, _table), add in zip(tables, adds):
            if previous >= 0:
                for k in range(len(head)):
                    if self._kind(head[k]) == previous:
                        at = k + 1
            head[at:at] = add
            at += len(add)
            previous = kind

    def _take_pending(self) -> None:
        for nal in self._pending:
            self._append(nal)
        self._pending = []
        self._pending_rap = False

    def _append(self, nal: Buffer) -> None:
        self._seg += START_CODE
        start = len(self._seg)
        self._seg += nal
        self._seg_bounds.append((start, len(self._seg)))
        self._seg_units += 1
        first = nal[0]
        if (first == 0x06 or first == 0x4E) and tag_codec(nal):  # either codec's tag
            self._seg_tagged = True

    def _close(self) -> None:
        fields = self._seg_fields
        self._out.append(Segment(bytes(self._seg), self._seg_units, (fields + 1) // 2, fields,
                                 int(fields * 500.0 / self.fps + 0.5), self._seg_first_ms,
                                 self._seg_rap, self._seg_tagged, self.codec or CODEC_H264, self._seg_bounds))
        self.segments += 1
        self._reset_segment()

    def _reset_segment(self) -> None:
        self._seg = bytearray()
        self._seg_bounds = []
        self._seg_units = 0
        self._seg_tagged = False
        self._seg_fields = 0
        self._seg_pictures = 0
        self._seg_has_vcl = False
        self._seg_first_ms = None
        self._seg_rap = False


def cut(data: Buffer, max_duration_s: float = 4.0, fps: Optional[float] = None,
        codec: int = 0) -> list[Segment]:
    """Every segment of a whole Annex-B buffer (a Segmenter fed once, then finished)."""
    segmenter = Segmenter(max_duration_s, fps, codec=codec)  # no delimiters inserted: the stream as it was
    return [s for s in segmenter.push(data) + segmenter.finish() if isinstance(s, Segment)]
