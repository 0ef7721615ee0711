"""From a container's samples to the segments the camera tagged (sans-I/O: events in, segments
out), with the rules on NAL units every container shares (docs/CONTAINERS.md).

A reader (``read.mp4``, ``read.mpegts``, ``read.matroska``...) says how the container holds
its samples; this says what the samples hold, once, for every container:

- **a sample is one whole access unit as the camera emitted it**: it begins with its access
  unit delimiter (the camera puts one in every access unit) and holds no other, but for the
  two fields of one frame (H.264: a frame is one picture of the tag's count). FFmpeg cuts
  access units at a delimiter, Chromium hands a sample to the decoder as one picture, hls.js
  regroups NAL units at delimiters: with this rule they all see the same pictures;
- the length prefixes tile each sample exactly, and every unit of the decoder configuration
  record is one the camera tagged (``Canonical.required``);
- each picture's presentation time, and its place in the camera's picture order (its
  picture order count, from the slice header the digest covers), go to the verifier, which
  checks them against the tag (``verifier.Timing``);
- a Common Encryption ('cenc') sample's subsamples and IV are exactly what FORMAT.md 4.4
  derives from its units and its segment's tag (clear lead, stream id, seq, still flag), the
  track's default_KID is the tag's key id, and its ciphertext goes back into the protected
  form before hashing (``CencSamples``); any other scheme is refused.

Each sample is put into canonical form once (length-prefixed samples of 4-byte lengths in
place, when the reader gave a bytearray: nothing copied), and a segment's bytes are the views
of its samples: memory is one segment and a constant, whatever its NAL units.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from segbind_core import h264, h265
from segbind_core.protect import protected_form
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, CODEC_NAMES

from ..framing import START_CODE, canonical_annexb, head_parameter_sets, repeated_sets
from ..verifier import Canonical, Timing
from ..web.fmp4 import (
    IV_SIZE,
    PackagingError,
    TagFields,
    blocks_used,
    counter_block_after,
    iter_subsamples,
    protected_size,
    segment_fields,
)
from .events import FRAMING, TIMING, Defect, Event, Protection, Sample, TrackInfo
from .split import MAX_SEGMENT_BYTES, units_in_tag

_START3 = b"\x00\x00\x01"
_find_start_codes = re.compile(_START3).finditer

# What each NAL header byte is, per codec: 0 other, 1 delimiter, 2 picture (VCL), 3 parameter
# set, 4 SEI, 5 end of sequence. A tag is looked for behind either codec's SEI header whatever
# the track's codec (a tag of the other codec in a track is found, and refused).
_OTHER, _DELIMITER, _PICTURE, _SET, _SEI, _END_OF_SEQUENCE = range(6)


def _classes(codec: int) -> bytes:
    table = bytearray(256)
    for byte in range(256):
        if codec == CODEC_H264:
            kind = byte & 0x1F
            table[byte] = (_DELIMITER if kind == h264.NAL_AUD else _PICTURE if 1 <= kind <= 5
                           else _SET if kind in (h264.NAL_SPS, h264.NAL_PPS) else _SEI if byte == 0x06
                           else _END_OF_SEQUENCE if kind == h264.NAL_END_OF_SEQUENCE else _OTHER)
        else:
            kind = (byte >> 1) & 0x3F
            table[byte] = (_DELIMITER if kind == h265.NAL_AUD else _PICTURE if kind <= 31
                           else _SET if kind in (h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS)
                           else _SEI if byte == 0x4E
                           else _END_OF_SEQUENCE if kind == h265.NAL_END_OF_SEQUENCE else _OTHER)
    return bytes(table)


_CLASSES = {CODEC_H264: _classes(CODEC_H264), CODEC_H265: _classes(CODEC_H265)}
_TAG_HEADERS = (0x06, 0x4E)  # the tag's NAL header byte, H.264 and H.265 (docs/FORMAT.md 3)


class PictureClock:
    """Each picture's place in the camera's picture order, in decoding order, from its first
    slice (H.264 8.2.1, H.265 8.3.1) and the parameter sets in force: its ``order_key`` (run,
    picture order count), a run beginning where the order starts afresh (an IDR picture, MMCO
    5, an IRAP picture that restarts it), so pictures sort by their keys (``output_ranks``)."""

    def __init__(self, codec: int, config_units: Sequence[bytes] = ()) -> None:
        self.codec = codec
        self.syntax: Any = h265 if codec == CODEC_H265 else h264
        self.params = self.syntax.ParameterSets()
        self.counter = self.syntax.PocCounter(self.params)
        for unit in config_units:
            self.params.add(bytes(unit).rstrip(b"\x00"))

    def parameter_set(self, unit: Any) -> None:
        self.params.add(bytes(unit))

    def end_of_sequence(self) -> None:
        if self.codec == CODEC_H265:
            self.counter.end_of_sequence()

    def picture(self, first_slice: Any) -> Tuple[Any, int]:
        """(order key: (run, count), None for a picture that is not output, UNREADABLE when its
        header cannot be read; field: 0 a frame, 1 a top field, 2 a bottom field) of a picture
        whose first slice this is."""
        try:
            header = self.syntax.parse_slice_header(first_slice, self.params)
            self.counter.count(header)
        except (ValueError, IndexError):
            return UNREADABLE, 0
        field = 0
        if self.codec == CODEC_H264 and header.field_pic:
            field = 2 if header.bottom_field else 1
        return self.counter.order_key, field


UNREADABLE = "unreadable"  # a picture whose slice header cannot be read: its place is unknown


class SampleScan:
    """What one sample holds, read once: its canonical form as ``parts``, its ``units``, where
    tags begin (``tags``: offsets in the joined parts, after the start code), its pictures
    (reset, POC, field flags), whether picture units come before its first tag, a ``defect``
    when its units cannot be told apart, and the first ``rule`` it breaks ("" when none)."""

    __slots__ = ("parts", "size", "units", "tags", "pictures", "delimiters", "before_tag", "defect", "rule")

    def __init__(self) -> None:
        self.parts: List[Any] = []
        self.size = 0
        self.units = 0
        self.tags: List[int] = []
        self.pictures: List[Tuple[Any, int]] = []
        self.delimiters = 0
        self.before_tag = False
        self.defect = ""  # its units cannot be told apart
        self.rule = ""    # it breaks a rule on what a sample holds (one access unit, no hidden start code)


def _unit(scan: SampleScan, data: Any, begin: int, end: int, at: int, classes: bytes, clock: PictureClock,
          state: List[int]) -> None:
    """One unit data[begin:end] (no start code, no trailing zeros), at offset ``at`` of the
    sample's canonical form (after its start code). ``state``: [picture units so far in the
    current access unit]."""
    header = data[begin]
    if header in _TAG_HEADERS and end - begin > 20 and data[begin + (1 if header == 0x06 else 2)] == 5 \
            and tag_codec(data[begin:begin + 24]):
        if scan.pictures and not scan.tags:
            scan.before_tag = True
        if scan.units == 0:
            scan.rule = scan.rule or "a sample begins with a tag, not with the delimiter the camera puts first"
        scan.tags.append(at)
        scan.units += 1
        return
    cls = classes[header]
    if scan.units == 0 and cls != _DELIMITER:
        scan.rule = scan.rule or ("a sample does not begin with an access unit delimiter: it is not one whole "
                                  "access unit as the camera emitted it")
    scan.units += 1
    if cls == _PICTURE:
        if state[0] == 0:
            scan.pictures.append(clock.picture(memoryview(data)[begin:end]))
        state[0] += 1
        return
    # Units other than pictures are small: a start code hidden in one (which emulation prevention
    # keeps out of every valid unit) would be split there by a decoder, or a transmuxer to Annex-B.
    if _hidden_start_code(data, begin, end):
        scan.rule = scan.rule or ("a NAL unit holds a start code (00 00 0%d): a decoder splits it there"
                                  % data[_hidden_start_code(data, begin, end) + 2])
    if cls == _DELIMITER:
        scan.delimiters += 1
        state[0] = 0
        if end - begin != (2 if clock.codec == CODEC_H264 else 3):
            scan.rule = scan.rule or "an access unit delimiter of %d bytes" % (end - begin)
    elif cls == _SET:
        clock.parameter_set(data[begin:end])
    elif cls == _END_OF_SEQUENCE:
        clock.end_of_sequence()


_search_start_code = re.compile(b"\x00\x00[\x00-\x02]").search


def _hidden_start_code(data: Any, begin: int, end: int) -> int:
    """Where 00 00 00, 00 00 01 or 00 00 02 occurs in data[begin:end] (0 when nowhere: a unit
    never begins with a zero byte)."""
    found = _search_start_code(data, begin, end)
    return found.start() if found else 0


def scan_prefixed(data: Any, length_size: int, classes: bytes, clock: PictureClock) -> SampleScan:
    """A length-prefixed sample (MP4, fMP4, Matroska, FLV). The lengths must tile it exactly:
    no length past its end, no bytes after the last unit, no empty unit nor one of zero bytes
    only. Zero bytes ending a unit are framing (a NAL unit never ends with one; FFmpeg 5.1's
    H.265 MP4 has one): the canonical form leaves them out. With 4-byte lengths and a
    bytearray, the lengths are overwritten with start codes in place."""
    scan = SampleScan()
    n = len(data)
    view = memoryview(data)
    in_place = length_size == 4 and isinstance(data, bytearray)
    parts = scan.parts
    state = [0, 0]
    pos = 0
    run = 0           # in place: where the current run of canonical bytes began
    at = 0            # bytes of canonical form so far
    glue = bytearray()  # not in place: start codes and units, copied
    from_bytes = int.from_bytes
    while pos < n:
        begin = pos + length_size
        if begin > n:
            scan.defect = "a sample ends inside a NAL length prefix"
            return scan
        size = from_bytes(data[pos:begin], "big")
        end = begin + size
        if size == 0:
            scan.defect = "a sample holds an empty NAL unit"
            return scan
        if end > n:
            scan.defect = "a NAL length runs %d bytes past the end of its sample" % (end - n)
            return scan
        last = end
        while data[last - 1] == 0:
            last -= 1
            if last == begin:
                scan.defect = "a sample holds a NAL unit of zero bytes only"
                return scan
        if in_place:
            data[pos:begin] = START_CODE
            if last < end:  # a unit ending in zero bytes: the run ends before them
                parts.append(view[run:last])
                run = end
        else:
            glue += START_CODE
            glue += view[begin:last]
        _unit(scan, data, begin, last, at + 4, classes, clock, state)
        at += 4 + last - begin
        pos = end
    if in_place:
        if run < n:
            parts.append(view[run:n])
    elif glue:
        parts.append(glue)
    scan.size = at
    return scan


def scan_annexb(data: Any, classes: bytes, clock: PictureClock) -> SampleScan:
    """An Annex-B sample (an MPEG-TS PES payload). Bytes before its first start code are
    refused; 3-byte start codes and zero bytes between units are framing. As the camera emits
    it (4-byte start codes, nothing between units) it is its own canonical form: not copied."""
    scan = SampleScan()
    buf = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    starts = [m.start() for m in _find_start_codes(buf)]
    if not starts:
        scan.defect = "a sample holds no start code"
        return scan
    if buf[:starts[0]].count(0) != starts[0]:
        scan.defect = "a sample holds bytes before its first start code"
        return scan
    state = [0, 0]
    canonical = starts[0] == 1  # it begins 00 00 00 01
    at = 0
    for k, start in enumerate(starts):
        begin = start + 3
        end = starts[k + 1] if k + 1 < len(starts) else len(buf)
        last = end
        while last > begin and buf[last - 1] == 0:
            last -= 1
        # as emitted, a unit ends right before the next 4-byte start code, and the last at the end
        canonical = canonical and last == (end - 1 if k + 1 < len(starts) else end) and last > begin
        if last == begin:
            continue
        _unit(scan, buf, begin, last, at + 4, classes, clock, state)
        at += 4 + last - begin
    if not scan.units:
        scan.defect = "a sample holds no NAL unit"
        return scan
    if canonical:
        scan.parts = [buf]
    else:
        out = bytearray()
        canonical_annexb(buf, out)
        scan.parts = [out]
    scan.size = at
    return scan


class CencSamples:
    """Common Encryption ('cenc') samples of one track put back into the camera's protected form,
    each checked against what FORMAT.md 4.4 derives from its units and its segment's tag (read
    without a key: the clear lead, stream id, seq and still flag), one sample at a time.

    ``read(sample)`` gives the sample's units in protected form (4-byte lengths: each picture
    unit's ciphertext escaped as the camera carries it, ``protect.protected_form``) and what is
    wrong with its encryption ("" when nothing): subsamples or an IV other than derived, a
    default_KID other than the tag's key id. Samples before the first tag, or of a segment
    whose tag cannot be read, are left as they are (that segment is refused for its tag)."""

    def __init__(self, protection: Protection, length_size: int) -> None:
        self.protection = protection
        self.length_size = length_size
        self.fields: Optional[TagFields] = None  # the current segment's tag
        self.blocks = 0                          # keystream blocks its samples so far took

    @staticmethod
    def track_problem(protection: Protection) -> str:
        """Why a track protected this way cannot carry segbind's ciphertext ("" when it can)."""
        if protection.scheme != "cenc":
            return ("the track is protected with scheme '%s': segbind's ciphertext is AES-CTR, carried as 'cenc' "
                    "only (FORMAT.md 4.4)" % protection.scheme)
        if protection.crypt_byte_block or protection.skip_byte_block:
            # 'cenc' has no pattern (ISO/IEC 23001-7 10.1): a player that applied one would decrypt
            # other bytes than the verifier put back
            return "a 'cenc' track with an encryption pattern (%d:%d): 'cenc' encrypts every protected byte" % (
                protection.crypt_byte_block, protection.skip_byte_block)
        if protection.iv_size != IV_SIZE:
            return ("the track's 'tenc' gives %s: a 'cenc' sample of segbind's carries the 16-byte counter block "
                    "its access unit begins at (FORMAT.md 4.4)" % (
                        "%d-byte IVs" % protection.iv_size if protection.iv_size
                        else "a constant %d-byte IV" % len(protection.constant_iv)))
        return ""

    def read(self, sample: Sample) -> Tuple[Any, int, str]:
        """(the sample's bytes for ``scan_prefixed``, their NAL length size, what is wrong with its
        encryption). The units are walked a few times, none kept (memory: the sample, whatever
        its units); the bytes are the sample's own unless a picture unit's ciphertext needs
        emulation prevention in its protected form (rare), when the units are copied out."""
        data = sample.data
        size = self.length_size
        if not _prefixed_tile(data, size):
            return data, size, ""
        found: Optional[TagFields] = None
        for begin, end in _prefixed_walk(data, size):
            if data[begin] in _TAG_HEADERS and tag_codec(data[begin:begin + 24]):
                try:
                    found = segment_fields([bytes(data[begin:end])])
                except PackagingError:
                    found = None
                self.fields, self.blocks = found, 0
                break
        fields = self.fields
        if fields is None:
            return data, size, ""
        lead, codec = fields.clear_lead, fields.codec
        problem = ""
        if found is not None and self.protection.default_kid != fields.key_id:
            problem = ("the track's default_KID ('tenc') %s is not the tag's key id %s: a ClearKey player asks "
                       "for another key" % (self.protection.default_kid.hex(), fields.key_id.hex()))
        given = sample.subsamples or ()
        derived = 0   # subsamples derived
        protected = 0  # their protected bytes
        differ = -1    # the first subsample that differs from the one derived
        for k, pair in enumerate(iter_subsamples(((data[b], e - b) for b, e in _prefixed_walk(data, size)),
                                                 codec, lead, size)):
            derived += 1
            protected += pair[1]
            if differ < 0 and (k >= len(given) or tuple(given[k]) != pair):
                differ = k
        if not problem and (differ >= 0 or len(given) != derived):
            problem = _subsample_difference(given, data, size, codec, lead, derived, differ)
        iv = counter_block_after(fields.initial_counter_block(), self.blocks)
        if not problem and sample.iv != iv:
            problem = ("a sample's IV %s is not %s, the counter block its access unit begins at (FORMAT.md 4.3)"
                       % (bytes(sample.iv).hex(), iv.hex()))
        self.blocks += blocks_used(protected)
        # The protected form is the sample's units, each picture unit's ciphertext escaped: the
        # sample itself unless some ciphertext holds 00 00 0x (x <= 3) with the zero bytes ending
        # the clear lead before it and the unit's last byte after it (what ``escape`` reads).
        escaped = False
        for begin, end in _prefixed_walk(data, size):
            if protected_size(data[begin], end - begin, codec, lead):
                zeros = _trailing_zeros(data, begin, begin + lead)
                if _search_escape(data, begin + lead - zeros, end):
                    escaped = True
                    break
        if not escaped:
            return data, size, problem
        out = bytearray()
        view = memoryview(data)
        for begin, end in _prefixed_walk(data, size):
            unit: Any = view[begin:end]
            if protected_size(data[begin], end - begin, codec, lead):
                unit = protected_form(unit, lead, view[begin + lead:end - 1])
            out += len(unit).to_bytes(4, "big")
            out += unit
        return out, 4, problem


def _prefixed_tile(data: Any, length_size: int) -> bool:
    """Whether the lengths of a length-prefixed sample tile it exactly, with no empty unit
    (``scan_prefixed`` says how they do not)."""
    n = len(data)
    pos = 0
    from_bytes = int.from_bytes
    while pos < n:
        begin = pos + length_size
        if begin > n:
            return False
        end = begin + from_bytes(data[pos:begin], "big")
        if end == begin or end > n:
            return False
        pos = end
    return True


def _prefixed_walk(data: Any, length_size: int) -> Iterator[Tuple[int, int]]:
    """(begin, end) of each unit of a length-prefixed sample whose lengths tile it."""
    n = len(data)
    pos = 0
    from_bytes = int.from_bytes
    while pos < n:
        begin = pos + length_size
        pos = begin + from_bytes(data[pos:begin], "big")
        yield begin, pos


def _trailing_zeros(data: Any, begin: int, end: int) -> int:
    """How many zero bytes end data[begin:end] (0, 1 or 2: what emulation prevention counts)."""
    if end <= begin or data[end - 1]:
        return 0
    return 2 if end - 1 > begin and not data[end - 2] else 1


_search_escape = re.compile(b"\x00\x00[\x00-\x03]").search


def _subsample_difference(given: Sequence[Any], data: Any, length_size: int, codec: int, lead: int,
                          derived: int, differ: int) -> str:
    """One line: where a sample's subsamples differ from FORMAT.md 4.4's (``derived`` of them, the
    first different at ``differ``)."""
    if len(given) != derived:
        return ("a sample has %d subsamples where its units and the tag's clear lead %d give %d (FORMAT.md 4.4)"
                % (len(given), lead, derived))
    pair = next(p for k, p in enumerate(iter_subsamples(((data[b], e - b) for b, e in
                                                          _prefixed_walk(data, length_size)), codec, lead,
                                                         length_size)) if k == differ)
    return ("a sample's subsample %d is (%d clear, %d protected) where its units and the tag's clear lead %d give "
            "(%d, %d) (FORMAT.md 4.4)" % (differ, given[differ][0], given[differ][1], lead, pair[0], pair[1]))


class Picture:
    """One picture of a segment as the container presents it: its times (track ticks), whether
    the container hides it, and its place in the camera's picture order (``PictureClock``)."""

    __slots__ = ("pts", "duration", "hidden", "key")

    def __init__(self, pts: int, duration: int, hidden: bool, key: Any) -> None:
        self.pts = pts
        self.duration = duration
        self.hidden = hidden
        self.key = key


class SampleCutter:
    """Cuts the events of one container reader into segments (``Canonical``, in canonical form,
    with their timing), checking the rules of this module; ``feed(event)`` returns the
    segments it completed, ``finish()`` the rest. A segment in length-prefixed samples is
    complete when it holds as many units as its tag says (copies of its head's parameter sets a
    remuxer added not counted); in Annex-B samples (MPEG-TS), when the next tag begins. Samples
    before the first tag form a segment of their own (refused: no tag), so nothing goes
    unjudged."""

    def __init__(self, max_segment_bytes: int = MAX_SEGMENT_BYTES, video_only: bool = False) -> None:
        self.max_segment_bytes = max_segment_bytes
        self.video_only = video_only
        self.track: Optional[TrackInfo] = None
        self._classes = b""
        self._clock: Optional[PictureClock] = None
        self._track_problem = ""
        self._required: Sequence[bytes] = ()
        self._sets: Sequence[bytes] = ()     # the parameter sets in force (to restore a stripped head)
        self._presented = False              # a sample of this track was presented (not hidden) already
        self._cenc: Optional[CencSamples] = None  # the track's 'cenc' samples, back into protected form
        self._out: List[Canonical] = []
        self._reset_pending()

    def _reset_pending(self) -> None:
        self._parts: List[Any] = []
        self._size = 0
        self._units = 0
        self._pictures: List[Picture] = []
        self._samples = 0
        self._tag = -1
        self._tag_end = -1
        self._codec = 0
        self._expect = -1
        self._repeats = 0
        self._problem = ""
        self._problem_reason = FRAMING
        self._oversized = False

    # -- events -------------------------------------------------------------------------------

    def feed(self, event: Event) -> List[Canonical]:
        if isinstance(event, Sample):
            self._sample(event)
        elif isinstance(event, TrackInfo):
            self._track(event)
        elif isinstance(event, Defect):
            self.defect(event.text, event.reason)
        out, self._out = self._out, []
        return out

    def defect(self, text: str, reason: str = FRAMING) -> None:
        """The pending segment is refused, whatever its tag (``reason``: framing or timing)."""
        if not self._problem:
            self._problem, self._problem_reason = text, reason

    def finish(self) -> List[Canonical]:
        if self._parts or self._problem or self._samples:
            self._close()
        out, self._out = self._out, []
        return out

    def _track(self, info: TrackInfo) -> None:
        if self._parts or self._samples:
            self._close()
        self.track = info
        self._presented = False
        if not info.codec:
            raise_text = "the video track is %s, not H.264 or H.265" % info.codec_name
            self._track_problem = raise_text
        elif info.other_video:
            self._track_problem = "the container holds another video track, never verified: %s" % ", ".join(
                o for o in info.others if o.startswith("video"))
        elif info.others and not self.video_only:
            self._track_problem = "the container holds other tracks, never verified: %s" % ", ".join(info.others)
        elif info.protection is not None:
            self._track_problem = CencSamples.track_problem(info.protection)
        else:
            self._track_problem = ""
        self._cenc = None
        if info.protection is not None and info.length_size and not self._track_problem:
            self._cenc = CencSamples(info.protection, info.length_size)
        codec = info.codec or CODEC_H264
        self._classes = _CLASSES[codec]
        config = [bytes(u).rstrip(b"\x00") for u in info.config_units]
        self._clock = PictureClock(codec, config)
        # a decoder reads the record's units before any sample: each must be one the camera tagged
        self._required = config if info.length_size else ()
        sets = [u for u in config if u and _CLASSES[codec][u[0]] == _SET]
        if sets:
            self._sets = sets

    def _sample(self, sample: Sample) -> None:
        info = self.track
        clock = self._clock
        if info is None or clock is None:
            raise ValueError("a Sample before its TrackInfo")
        data = sample.data
        encryption = ""
        if self._cenc is not None:
            data, length_size, encryption = self._cenc.read(sample)
            scan = scan_prefixed(data, length_size, self._classes, clock)
        elif info.length_size:
            scan = scan_prefixed(data, info.length_size, self._classes, clock)
        else:
            scan = scan_annexb(data, self._classes, clock)
        if scan.defect:
            self.defect(scan.defect)  # its units cannot be told apart: not kept
            return
        if scan.tags:
            self._tag_in_sample(scan)
        if self._tag >= 0:  # a run before the first tag is refused as untagged, whatever it holds
            if encryption:
                self.defect(encryption)
            elif self._cenc is not None and scan.delimiters > 1:
                self.defect("a Common Encryption sample holds %d access units: the camera begins each one's "
                            "keystream at a fresh counter block, 'cenc' continues it across a sample"
                            % scan.delimiters)
            if scan.rule:
                self.defect(scan.rule)
            elif scan.delimiters > 1 and not self._field_pair(scan):
                self.defect("a sample holds %d access units (a sample is one access unit, or the two fields of one "
                            "frame)" % scan.delimiters)
            elif len(scan.pictures) != max(1, scan.delimiters):
                self.defect("a sample holds %d pictures in %d access unit(s)" % (len(scan.pictures),
                                                                                  scan.delimiters))
        if self._size + scan.size > self.max_segment_bytes:
            if not self._oversized:
                self.defect("segment larger than %d MiB" % (self.max_segment_bytes >> 20))
            self._oversized = True
        else:
            self._parts += scan.parts
            self._size += scan.size
        self._units += scan.units
        self._samples += 1
        if sample.hidden and self._presented:
            # An edit list hides the pictures before the presentation starts (the B-frame delay,
            # a cut): those are the camera's, decoded and not shown. Hidden after a shown one, a
            # picture vanishes from the middle of what the camera captured.
            self.defect("the container hides a picture after its presentation began", TIMING)
        self._presented = self._presented or not sample.hidden
        key = scan.pictures[0][0] if scan.pictures else UNREADABLE
        self._pictures.append(Picture(sample.pts, sample.duration, sample.hidden, key))
        # Complete when it holds as many units as its tag says: at once for a container of
        # samples. An Annex-B elementary stream (MPEG-TS) is read by FFmpeg's and hls.js's parsers
        # across PES boundaries, so bytes of a later PES the reader refuses can still join this
        # segment's last picture in a player: it closes when the next tag (or the end) comes, so
        # that such a refusal refuses it too.
        if self._tag >= 0 and 0 <= self._expect < self._units - self._repeats and info.length_size:
            self._close()

    def _field_pair(self, scan: SampleScan) -> bool:
        """Two access units of H.264 fields of opposite parity in one sample: FFmpeg's parser
        joins the two fields of a frame into one packet, and a frame counts once in the tag."""
        return (self.track is not None and self.track.codec == CODEC_H264 and scan.delimiters == 2
                and len(scan.pictures) == 2 and {scan.pictures[0][1], scan.pictures[1][1]} == {1, 2})

    def _tag_in_sample(self, scan: SampleScan) -> None:
        first = scan.tags[0]
        if self._parts or self._samples:
            self._close()
        if scan.before_tag:
            self.defect("a sample holds picture units before its segment's tag (two access units in one "
                        "sample, or units hidden behind start codes)")
        if len(scan.tags) > 1:
            self.defect("a sample holds %d segbind tags" % len(scan.tags))
        head = _joined(scan.parts, first + 1024)
        nxt = head.find(START_CODE, first)
        self._tag, self._tag_end = first - 4, nxt if nxt >= 0 else len(head)
        self._codec = tag_codec(head[first:first + 24])
        self._expect = units_in_tag(head[first:self._tag_end])
        self._repeats = repeated_sets(_joined(scan.parts, 65536), self._codec)

    def _close(self) -> None:
        parts = self._parts
        problem = self._problem or self._track_problem
        reason = self._problem_reason if self._problem else FRAMING
        timing = None
        if self._pictures and self.track is not None:
            timing = Timing.of_pictures(self._pictures, self.track.timescale)
        info = self.track
        if self._tag >= 0:
            head = _joined(parts, 65536)
            restore = self._sets
            found = head_parameter_sets(head, self._codec)
            if found:
                self._sets = found
            seg = Canonical(None, self._tag, self._tag_end, self._units - 1, timing, problem, restore, None, True,
                            self._codec, parts)
            seg.problem_reason = reason
            seg.required = self._required
            if info is not None and info.codec and self._codec and self._codec != info.codec:
                seg.problem_reason = FRAMING  # the root of whatever else was found in its samples
                seg.problem = "an %s segment in an %s track (a decoder reads it as %s)" % (
                    CODEC_NAMES[self._codec], CODEC_NAMES[info.codec], CODEC_NAMES[info.codec])
        else:
            seg = Canonical(None, -1, -1, self._units, timing, problem, parts=parts)
            seg.problem_reason = reason
        if parts or problem:
            self._out.append(seg)
        self._reset_pending()


def _joined(parts: Sequence[Any], limit: int) -> bytes:
    """The first ``limit`` bytes of parts read one after the other."""
    out = bytearray()
    for part in parts:
        if len(out) >= limit:
            break
        out += part[:limit - len(out)]
    return bytes(out)


def cut(events: Any, max_segment_bytes: int = MAX_SEGMENT_BYTES, video_only: bool = False) -> Any:
    """The segments of a reader's events, as they complete (a generator)."""
    cutter = SampleCutter(max_segment_bytes, video_only)
    for event in events:
        yield from cutter.feed(event)
    yield from cutter.finish()


__all__ = ["MAX_SEGMENT_BYTES", "UNREADABLE", "Picture", "PictureClock", "SampleCutter", "SampleScan", "cut",
           "scan_annexb", "scan_prefixed"]
