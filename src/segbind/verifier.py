"""Verifying segments: a one-shot check that raises, and a per-stream state machine.

Sans-I/O: bytes in, verdicts out; the clock is a parameter. Every segment is
judged in its canonical form (docs/FORMAT.md section 4): Annex-B with 4-byte
start codes, which is how the camera emits it. Such a segment is hashed in two
calls (the bytes before the tag, the bytes after it) with no parsing; any other
framing is put into canonical form first (``Canonical.of_annexb``, and the
readers in ``segbind.read``), and what a decoder then gets is exactly what was
verified.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from segbind_core.crypto import MacKey, constant_time_equal
from segbind_core.h264 import SeiError
from segbind_core.nal import annexb_units
from segbind_core.protect import DOMAIN_SEGMENT, DOMAIN_STILL, unprotect
from segbind_core.sei import SEGBIND_UUID, segbind_payload, tag_codec
from segbind_core.tag import (
    CODEC_H264,
    CODEC_H265,
    CODEC_NAMES,
    DIGEST_HINT_SIZE,
    DIGEST_SIZE,
    FLAG_END_OF_STREAM,
    FLAG_STILL,
    GENESIS_LINK,
    KEY_ID_SIZE,
    LINK_SIZE,
    MAC_SIZE,
    PREFIX_SIZE,
    UNKNOWN_VERSION,
    Tag,
    TagError,
    decode_fields,
    decode_tag,
    decode_tail,
    decode_uvarint,
    encode_uvarint,
)

from .errors import InvalidSegment, StateError
from .framing import (
    START_CODE,
    canonical_annexb,
    head_units,
    head_variants,
    is_delimiter,
    leading_garbage,
    prefixed_parts,
    tag_units,
)
from .keyring import Binding, Keyring
from .verdict import _ACCEPTED, Reason, TagInfo, Verdict

Buffer = Union[bytes, bytearray, memoryview]

# How many sequence numbers per camera are remembered, to tell a redelivery (duplicate)
# from a replay and to take late segments; libsrtp keeps 128 too.
REPLAY_WINDOW = 128
# A tag NAL unit is under 600 bytes (docs/FORMAT.md section 5).
MAX_TAG_NAL = 1024
# Recording mode: how far a segment's capture time may be from where the previous one ended.
CONTINUITY_MS = 1000


class TimeWindow(NamedTuple):
    """Accept capture times from ``max_age_s`` in the past to ``max_future_s`` ahead of now."""

    max_age_s: Optional[float] = None
    max_future_s: Optional[float] = None

    def check(self, tag: Union[Tag, TagInfo], now_s: float) -> None:
        age = now_s - tag.capture_ms / 1000.0
        if self.max_age_s is not None and age > self.max_age_s:
            raise InvalidSegment(Reason.TIME_WINDOW, "captured %.1f s ago, more than %.1f s"
                                 % (age, self.max_age_s), _info(tag))
        if self.max_future_s is not None and -age > self.max_future_s:
            raise InvalidSegment(Reason.TIME_WINDOW, "captured %.1f s in the future, more than %.1f s"
                                 % (-age, self.max_future_s), _info(tag))


LIVE = TimeWindow(max_age_s=30.0, max_future_s=5.0)
"""The window a live display uses: video captured in the last 30 s (or 5 s ahead of a slow clock)."""


def _info(tag: Union[Tag, TagInfo], binding: Optional[Binding] = None) -> TagInfo:
    """A tag's public fields, with the owner, camera and epoch its key id stands for when the
    viewer holds a grant for it."""
    if isinstance(tag, TagInfo):
        return tag
    owner, camera, epoch = (binding.owner, binding.camera, binding.epoch) if binding is not None else ("", "", 0)
    return _make(TagInfo, (owner, camera, epoch, tag.stream_id, tag.seq, tag.capture_ms, tag.duration_ms,
                           tag.pictures, tag.codec, tag.end_of_stream, bytes(tag.key_id), tag.still))


class Timing:
    """What a container says of a segment's timing (readers fill it; Annex-B has none): its
    ``samples`` (pictures), their presentation span plus the last one's duration
    (``duration_ms``), how many it hides (an edit list), the duration of one; and, per picture
    in decoding order, its presentation time (``times_ms``) and its place in the camera's
    picture order (``order``: an order key (run, picture order count); None for a picture
    the decoder does not output; ``read.cut.UNREADABLE`` when its slice header cannot be read)."""

    __slots__ = ("samples", "duration_ms", "hidden", "frame_ms", "times_ms", "order")

    def __init__(self, samples: int, duration_ms: float, hidden: int = 0, frame_ms: float = 0.0,
                 times_ms: Sequence[float] = (), order: Sequence[Any] = ()) -> None:
        self.samples = samples
        self.duration_ms = duration_ms
        self.hidden = hidden
        self.frame_ms = frame_ms
        self.times_ms = tuple(times_ms)
        self.order = tuple(order)

    @classmethod
    def of_pictures(cls, pictures: Sequence[Any], timescale: int) -> "Timing":
        """From a segment's pictures (``read.cut.Picture``: pts and duration in ticks of
        ``timescale``, hidden, order key), in decoding order."""
        scale = 1000.0 / timescale if timescale else 0.0
        times = [p.pts * scale for p in pictures]
        frame = next((p.duration for p in reversed(pictures) if p.duration), 0) * scale
        if not frame and len(times) > 1:
            frame = (max(times) - min(times)) / (len(times) - 1)
        last = max(range(len(times)), key=times.__getitem__)
        span = times[last] - min(times) + ((pictures[last].duration * scale) or frame)
        return cls(len(pictures), span, sum(1 for p in pictures if p.hidden), frame, times,
                   [p.key for p in pictures])

    def __repr__(self) -> str:
        return "Timing(%d pictures, %.1f ms%s)" % (self.samples, self.duration_ms,
                                                  ", %d hidden" % self.hidden if self.hidden else "")


class Canonical:
    """A segment to verify: ``data`` holds its bytes, the tag included, at
    ``data[tag_start:tag_end]`` (with its start code); ``tag_start`` is -1 when a reader
    found bytes holding no tag (refused: ``no_tag``, or ``framing`` with a ``problem``).

    ``exact``: the bytes are in canonical form (docs/FORMAT.md section 4), as a reader
    built them. A segment taken as it arrived (``exact`` False) is hashed as it is, which is
    right when it is as the camera emits it, and read into canonical form when not.
    ``units`` is the number of NAL units other than the tag as its framing delimits them
    (None when unknown). A reader adds what it learned: ``timing``, a ``problem`` (a
    framing defect that refuses the segment whatever its tag), ``restore`` (the parameter
    sets in force, to put back where a packager stripped them), ``digest`` (the content
    digest when the reader hashed the bytes as they arrived) and ``codec``; ``required``
    are units a container gives decoders apart from the samples (the parameter sets of an
    ``avcC``): each must be one the camera tagged in the segment's head. The bytes may be
    given as ``parts`` (joined when first needed).
    """

    __slots__ = ("_data", "_parts", "tag_start", "tag_end", "units", "timing", "problem", "problem_reason",
                 "restore", "digest", "exact", "codec", "required", "_tag_nal")

    def __init__(self, data: Optional[bytes], tag_start: int, tag_end: int, units: Optional[int] = None,
                 timing: Optional[Timing] = None, problem: str = "", restore: Sequence[bytes] = (),
                 digest: Optional[bytes] = None, exact: bool = True, codec: int = 0,
                 parts: Optional[Sequence[Buffer]] = None) -> None:
        self._data = data
        self._parts = parts
        self.tag_start = tag_start
        self.tag_end = tag_end
        self.units = units
        self.timing = timing
        self.problem = problem
        self.problem_reason = "framing"  # or "timing": what a problem refuses the segment as
        self.restore = restore
        self.digest = digest
        self.exact = exact
        self.codec = codec
        self.required: Sequence[bytes] = ()
        self._tag_nal: Optional[bytes] = None

    @property
    def data(self) -> bytes:
        data = self._data
        if data is None:
            parts = self._parts or ()
            data = self._data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
            self._parts = None
        return data

    def __len__(self) -> int:
        if self._data is not None:
            return len(self._data)
        return sum(len(p) for p in self._parts or ())

    def _range(self, start: int, end: int) -> bytes:
        """data[start:end], without joining the parts."""
        if self._data is not None:
            return self._data[start:end]
        out = []
        at = 0
        for part in self._parts or ():
            if at >= end:
                break
            size = len(part)
            if at + size > start:
                out.append(bytes(part[start - at if start > at else 0:end - at]))
            at += size
        return b"".join(out)

    def head(self, limit: int = 65536) -> bytes:
        """The first bytes (where the parameter sets of the segment's head are)."""
        return self._range(0, limit)

    def content_digest(self) -> bytes:
        """SHA-256 of every byte but the tag's (the content digest when in canonical form)."""
        start, end = self.tag_start, self.tag_end
        if self._data is not None:
            view = memoryview(self._data)
            h = hashlib.sha256(view[:start])
            h.update(view[end:])
            return h.digest()
        h = hashlib.sha256()
        at = 0
        for part in self._parts or ():
            view = memoryview(part)
            stop = at + len(part)
            if start > at:
                h.update(view[:min(len(part), start - at)])
            if stop > end:
                h.update(view[max(0, end - at):])
            at = stop
        return h.digest()

    @property
    def tag_nal(self) -> bytes:
        """The tag's NAL unit, without its start code and any zero bytes after it."""
        if self._tag_nal is not None:
            return self._tag_nal
        unit = self._range(self.tag_start, self.tag_end)
        nal = unit[4:] if unit.startswith(START_CODE) else unit[3:]
        return nal.rstrip(b"\x00") if nal[-1:] == b"\x00" else nal

    def output(self) -> bytes:
        """The segment in canonical form, the tag included where the camera puts it (right
        after the first unit when that is a delimiter, else first): what a decoder is handed.
        The digest leaves the tag out, so a remuxer that moved units across it changed nothing
        else; this puts it back."""
        data = self.data
        if self.tag_start < 0:
            return data
        tag = START_CODE + self.tag_nal
        codec = self.codec or tag_codec(self.tag_nal)
        exact_tag = self.tag_end - self.tag_start == len(tag) and data.startswith(tag, self.tag_start)
        if exact_tag and self.tag_start and data.find(START_CODE, 4, self.tag_start + 4) == self.tag_start \
                and is_delimiter(data[4:self.tag_start], codec):
            return data  # as the camera emits it: the tag right after the delimiter
        rest = data[:self.tag_start] + data[self.tag_end:]  # every unit but the tag: as the camera's
        first = rest.find(START_CODE, 4)
        first = first if first >= 0 else len(rest)
        place = first if is_delimiter(rest[4:first], codec) else 0
        if place == self.tag_start and exact_tag:
            return data
        return rest[:place] + tag + rest[place:]

    @classmethod
    def of_units(cls, units: Sequence[Buffer], timing: Optional[Timing] = None,
                 problem: str = "") -> "Canonical":
        """From NAL units (as found in any framing): joined with 4-byte start codes.

        Raises InvalidSegment when there is not exactly one tag among them.
        """
        out = bytearray()
        for unit in units:
            out += START_CODE
            out += unit
        return cls.located(out, len(units), tag_units(out), timing, problem)

    @classmethod
    def of_annexb(cls, buf: Buffer) -> "Canonical":
        """From Annex-B bytes in any framing (3-byte start codes, zero bytes between units):
        refused (``framing``) when bytes other than zeros come before the first start code."""
        if leading_garbage(buf):
            raise InvalidSegment(Reason.FRAMING, "bytes before the first NAL unit")
        out = bytearray()
        tags: List[int] = []
        units = canonical_annexb(buf, out, tags)
        return cls.located(out, units, tags)

    @classmethod
    def of_prefixed(cls, sample: Buffer, length_size: int = 4) -> "Canonical":
        """From length-prefixed NAL units (an MP4 sample, or several samples one after the
        other); refused (``framing``) when the lengths do not tile the bytes exactly. Large
        units are not copied: the segment keeps views of ``sample``."""
        tags: List[int] = []
        parts, units, defect = prefixed_parts(sample, length_size, tags)
        if defect:
            raise InvalidSegment(Reason.FRAMING, defect)
        return cls.located(parts, units, tags)

    @classmethod
    def located(cls, data: Union[bytes, bytearray, Sequence[Buffer]], units: int, tags: Sequence[int],
                timing: Optional[Timing] = None, problem: str = "",
                restore: Sequence[bytes] = ()) -> "Canonical":
        """Canonical bytes (or parts of them, not joined) holding ``units`` units, among them
        the tags beginning at ``tags``: InvalidSegment when they hold no tag or several."""
        if not tags:
            if problem:
                raise InvalidSegment(Reason.FRAMING, problem)
            raise InvalidSegment(Reason.NO_TAG, "segment carries no segbind tag" if units
                                 else "no NAL units in segment")
        if len(tags) > 1:
            raise InvalidSegment(Reason.MALFORMED_TAG, "segment carries %d segbind tags" % len(tags))
        if isinstance(data, bytes):
            seg = cls(data, -1, -1, units - 1, timing, problem, restore)
        else:
            seg = cls(None, -1, -1, units - 1, timing, problem, restore,
                      parts=[data] if isinstance(data, bytearray) else data)
        seg.locate(tags[0])
        return seg

    def locate(self, begin: int) -> None:
        """The tag is the unit beginning at ``begin`` (after its start code)."""
        near = self._range(begin, begin + 256)  # most tags end within (then the next start code)
        end = near.find(START_CODE)
        if end < 0:
            near = self._range(begin, begin + MAX_TAG_NAL + 4)
            end = near.find(START_CODE)
        self.tag_start = begin - 4
        self.tag_end = begin + (end if end >= 0 else len(near))
        self.codec = tag_codec(near[:24])
        self._tag_nal = near[:end] if end >= 0 else near

def _tag_body(nal: bytes, codec: int) -> bytes:
    """The tag body of a tag NAL unit: read directly when the unit has its usual shape (one
    message, a one-byte size, no emulation prevention), else through the strict SEI parser."""
    header = 1 if codec == CODEC_H264 else 2
    if b"\x00\x00\x03" not in nal:
        n = len(nal)
        if (n > header + 19 and nal[header] == 5 and nal[header + 1] == n - header - 3
                and nal[-1] == 0x80 and nal[header + 2:header + 18] == SEGBIND_UUID):
            return nal[header + 18:-1]
    return segbind_payload(nal)


# A segment as the camera emits it, per codec: (its delimiter's first bytes, where its tag's
# start code is, the tag's NAL header and payloadType 5). Then come a one-byte payload size
# and the UUID.
_AS_EMITTED = {CODEC_H264: (START_CODE + b"\x09", 6, START_CODE + b"\x06\x05"),
               CODEC_H265: (START_CODE + b"\x46\x01", 7, START_CODE + b"\x4e\x01\x05")}


# A NamedTuple made without its Python-level __new__: a third of a microsecond less for each of
# the few objects a verifier makes per segment (the fields are given in full, in order).
_make = tuple.__new__


def _camera_shape(buf: bytes) -> Optional[Tuple[int, int]]:
    """Where the tag is (its start code, the next start code) when ``buf`` looks as the camera
    emits a segment: 4-byte start codes, the tag first or right after a delimiter; else None."""
    if len(buf) < 28 or not buf.startswith(START_CODE):
        return None
    start = 0
    if not tag_codec(buf[4:28]):  # a delimiter first? (H.264 09 xx, H.265 46 01 xx)
        first = buf[4]
        if first & 0x1F != 9 and (first >> 1) & 0x3F != 35:
            return None
        start = buf.find(START_CODE, 5, 12)
        if start < 0 or not tag_codec(buf[start + 4:start + 28]):
            return None
    end = buf.find(START_CODE, start + 4)
    return start, end if end >= 0 else len(buf)


class Authentic(NamedTuple):
    """A segment whose tag authenticated: its public fields, its link, its digest, the MAC of
    the viewer's slot, the binding its key id names (whose content key decrypts it, once
    accepted) and its clear lead."""

    tag: TagInfo
    link: bytes
    digest: bytes
    mac: bytes
    binding: Binding
    clear_lead: int
    note: str = ""  # what an accepted verdict says besides (a container that hides pictures)


class Authenticator:
    """Checks 1 to 8 of docs/FORMAT.md 7.1 on segments (no stream state).

    Keeps what can be kept between segments: the key schedules, and the decoded tag
    fields every segment of one stream shares (up to the stream id). Keys are looked up
    in the keyring for every segment, so a grant revoked in place stops verifying at once.
    """

    def __init__(self, keyring: Keyring, window: Optional[TimeWindow] = None) -> None:
        self._keyring = keyring
        self.window = window
        self._macs: Dict[bytes, Tuple[Binding, MacKey]] = {}
        self._prefix = b""
        self._prefix_fields: Tuple[int, bytes, int] = (0, b"", 0)

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @keyring.setter
    def keyring(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._macs = {}

    def _decode(self, body: bytes) -> Tuple[Tag, bytes]:
        prefix = self._prefix
        if prefix and body.startswith(prefix):
            codec, key_id, stream_id = self._prefix_fields
            return decode_tail(body, len(prefix), codec, key_id, stream_id)
        tag, signed = decode_tag(body)
        self._prefix = body[:PREFIX_SIZE + len(encode_uvarint(tag.stream_id))]
        self._prefix_fields = (tag.codec, bytes(tag.key_id), tag.stream_id)
        return tag, signed

    def tag_of(self, seg: Canonical) -> Tuple[Tag, bytes]:
        """(tag, signed fields) of a segment; InvalidSegment when it has none or it is unusable."""
        if seg.tag_start < 0:
            if seg.problem:
                raise InvalidSegment(Reason.TIMING if seg.problem_reason == "timing" else Reason.FRAMING,
                                     seg.problem)
            raise InvalidSegment(Reason.NO_TAG, "segment carries no segbind tag")
        return self._tag(seg.tag_nal)

    def _tag(self, nal: bytes) -> Tuple[Tag, bytes]:
        codec = tag_codec(nal)
        try:
            if not codec:
                raise SeiError("not a segbind SEI NAL unit")
            tag, signed = self._decode(_tag_body(nal, codec))
        except SeiError as exc:
            raise InvalidSegment(Reason.MALFORMED_TAG, str(exc)) from None
        except TagError as exc:
            reason = Reason.UNKNOWN_VERSION if exc.reason == UNKNOWN_VERSION else Reason.MALFORMED_TAG
            raise InvalidSegment(reason, str(exc)) from None
        if tag.codec != codec:
            raise InvalidSegment(Reason.MALFORMED_TAG, "a %s tag in an %s SEI" % (
                CODEC_NAMES[tag.codec], CODEC_NAMES.get(codec, "unknown")), _info(tag))
        return tag, signed

    def _key(self, tag: Tag) -> Tuple[Binding, MacKey]:
        """The binding the tag's key id names in the keyring, and its MAC key; NO_GRANT when the
        keyring holds none, the tag carries no MAC for the holder's slot, or the key's period
        does not hold the segment's capture time."""
        key_id = bytes(tag.key_id)
        found = self._macs.get(key_id)
        try:
            binding = self._keyring.binding(key_id)
        except InvalidSegment as exc:
            raise InvalidSegment(exc.reason, exc.detail, _info(tag)) from None
        if found is None or found[0] is not binding:
            found = self._macs[key_id] = (binding, MacKey(binding.key))
        if binding.slot >= tag.slots:
            raise InvalidSegment(Reason.NO_GRANT, "the tag has no slot %d for this viewer (%d slots)"
                                 % (binding.slot, tag.slots), _info(tag, binding))
        if not binding.start_ms <= tag.capture_ms < binding.end_ms:
            raise InvalidSegment(Reason.NO_GRANT, "the key of period %d does not cover a capture time of %d ms"
                                 % (binding.period, tag.capture_ms), _info(tag, binding))
        return binding, found[1]

    def authenticate(self, seg: Canonical, now_s: Optional[float] = None) -> Authentic:
        """Checks 1 to 8 on the segment as it is; InvalidSegment with the first that fails."""
        tag, signed = self.tag_of(seg)
        binding, key = self._key(tag)
        info = _info(tag, binding)
        if seg.problem:
            raise InvalidSegment(Reason.TIMING if seg.problem_reason == "timing" else Reason.FRAMING, seg.problem,
                                 info)
        digest = seg.digest
        if digest is None:
            digest = seg.content_digest()
        if seg.units is not None and seg.units != tag.units:
            if constant_time_equal(digest[:DIGEST_HINT_SIZE], tag.digest_hint):
                raise InvalidSegment(Reason.FRAMING, "the framing delimits %d NAL units where the "
                                     "camera tagged %d" % (seg.units, tag.units), info)
            raise InvalidSegment(Reason.CONTENT_MISMATCH, "%d NAL units where the camera tagged %d"
                                 % (seg.units, tag.units), info)
        mac = key.mac(signed, digest)[:MAC_SIZE]
        if not constant_time_equal(mac, tag.macs[binding.slot]):
            if not constant_time_equal(digest[:DIGEST_HINT_SIZE], tag.digest_hint):
                raise InvalidSegment(Reason.CONTENT_MISMATCH,
                                     "video content differs from what the camera tagged", info)
            raise InvalidSegment(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key", info)
        if seg.required:
            _check_required(info, seg)
        note = _check_timing(tag, seg.timing, info) if seg.timing is not None else ""
        if self.window is not None:
            self.window.check(info, time.time() if now_s is None else now_s)
        return Authentic(info, tag.link, digest, mac, binding, tag.clear_lead, note)

    def judge(self, seg: Canonical, now_s: Optional[float] = None) -> Tuple[Authentic, Canonical]:
        """``authenticate``, and when only the content mismatched: the segment read into
        canonical form (when it was taken as it arrived), then with its parameter sets put
        back where the camera put them (docs/CONTAINERS.md). Returns the form that passed."""
        try:
            return self.authenticate(seg, now_s), seg
        except InvalidSegment as exc:
            if exc.reason is not Reason.CONTENT_MISMATCH:
                raise
            first = exc
        tried = seg
        if not seg.exact:
            tried = Canonical.of_annexb(seg.data)  # several tags, once split, are malformed_tag
            tried.timing, tried.problem, tried.restore = seg.timing, seg.problem, seg.restore
            tried.problem_reason = seg.problem_reason
            tried.required = seg.required
            if tried.data != seg.data:
                try:
                    return self.authenticate(tried, now_s), tried
                except InvalidSegment as exc:
                    if exc.reason is not Reason.CONTENT_MISMATCH:
                        raise
        for data, start, end, added in head_variants(tried.data, tried.tag_start, tried.tag_end,
                                                     tried.restore, tried.codec or tag_codec(tried.tag_nal)):
            units = None if tried.units is None else tried.units + added
            other = Canonical(data, start, end, units, tried.timing, tried.problem, (), None, True, tried.codec)
            other.required, other.problem_reason = tried.required, tried.problem_reason
            try:
                return self.authenticate(other, now_s), other
            except InvalidSegment as exc:
                if exc.reason is not Reason.CONTENT_MISMATCH:
                    raise
        raise first

    def authenticate_bytes(self, buf: Buffer, now_s: Optional[float] = None) -> Tuple[Authentic, Canonical]:
        """A segment given as Annex-B bytes: hashed as it is when it looks as the camera emits
        it, else read into canonical form. Returns the form that authenticated."""
        data = buf if isinstance(buf, bytes) else bytes(buf)
        shape = _camera_shape(data)
        seg = Canonical(data, shape[0], shape[1], exact=False) if shape else Canonical.of_annexb(data)
        return self.judge(seg, now_s)

    def as_emitted(self, data: bytes, now_s: Optional[float] = None) -> Optional[Authentic]:
        """The common case, kept short (docs/FORMAT.md section 4): a segment as the camera
        emits it (a delimiter, then the tag: one size byte, no emulation prevention), of a
        stream whose tag prefix was decoded before, in the codec of that prefix. None for
        anything else, which the general path then judges; an authentic result only when
        every check passes."""
        prefix = self._prefix
        shape = _AS_EMITTED.get(self._prefix_fields[0])
        if not prefix or shape is None:
            return None
        delimiter, tag_at, tag_head = shape
        size_at = tag_at + len(tag_head)
        body_at = size_at + 17
        if not data.startswith(delimiter) or not data.startswith(tag_head, tag_at) \
                or not data.startswith(prefix, body_at) or data[size_at + 1:body_at] != SEGBIND_UUID:
            return None
        end = data.find(START_CODE, body_at + len(prefix))
        if end < 0 or data[end - 1] != 0x80 or data[size_at] != end - size_at - 2 \
                or data.find(b"\x00\x00\x03", tag_at + 4, end) >= 0:
            return None
        body = data[body_at:end - 1]
        try:
            seq, capture_ms, duration_ms, pictures, _units, lead, flags, link, _hint, slots, macs_at = \
                decode_fields(body, len(prefix))
        except TagError:
            return None
        if flags & FLAG_STILL:
            return None  # a still: the general path
        codec, key_id, stream_id = self._prefix_fields
        found = self._macs.get(key_id)
        binding = self._keyring.binding_or_none(key_id)
        if binding is None or found is None or found[0] is not binding or binding.slot >= slots \
                or not binding.start_ms <= capture_ms < binding.end_ms:
            return None  # the general path says why (or makes the MAC key)
        h = hashlib.sha256(data[:tag_at])
        h.update(memoryview(data)[end:])
        digest = h.digest()
        slot = binding.slot
        mac = found[1].mac(body[:macs_at] + digest)[:MAC_SIZE]
        if not constant_time_equal(mac, body[macs_at + MAC_SIZE * slot:macs_at + MAC_SIZE * (slot + 1)]):
            return None  # the general path says why
        info = _make(TagInfo, (binding.owner, binding.camera, binding.epoch, stream_id, seq, capture_ms,
                               duration_ms, pictures, codec, bool(flags & FLAG_END_OF_STREAM), key_id, False))
        if self.window is not None:
            self.window.check(info, time.time() if now_s is None else now_s)
        return _make(Authentic, (info, link, digest, mac, binding, lead, ""))


def _check_required(tag: TagInfo, seg: Canonical) -> None:
    head = head_units(seg.head(), tag.codec)
    untagged = sum(1 for unit in seg.required if bytes(unit) not in head)
    if untagged:
        raise InvalidSegment(Reason.FRAMING, "the container's sample description holds %d unit(s) "
                             "the camera did not tag in this segment's head" % untagged, _info(tag))


def _check_timing(tag: Tag, timing: Timing, info: TagInfo) -> str:
    """docs/FORMAT.md 7.5: the container presents the tagged number of pictures over the tagged
    duration, each at its place in the camera's picture order; a note ("" when none) when it
    hides pictures (an edit list), which shows nothing that is not the camera's."""
    if timing.samples != tag.pictures:
        raise InvalidSegment(Reason.TIMING, "%d pictures where the camera tagged %d"
                             % (timing.samples, tag.pictures), info)
    slack = max(timing.frame_ms, tag.duration_ms / tag.pictures if tag.pictures else 0,
                0.1 * tag.duration_ms) + 1
    if abs(timing.duration_ms - tag.duration_ms) > slack:
        raise InvalidSegment(Reason.TIMING, "the container plays it in %.0f ms; the camera captured %d ms"
                             % (timing.duration_ms, tag.duration_ms), info)
    unreadable = sum(1 for key in timing.order if isinstance(key, str))
    if unreadable:
        raise InvalidSegment(Reason.TIMING, "the picture order of %d picture(s) cannot be read: where the "
                             "container presents them cannot be checked" % unreadable, info)
    misplaced = picture_displacement(timing)
    if misplaced is not None:
        picture, off_ms, allowed_ms = misplaced
        raise InvalidSegment(Reason.TIMING, "the container presents picture %d of the camera's order %.0f ms from "
                             "its place (%.0f ms allowed)" % (picture, off_ms, allowed_ms), info)
    if timing.hidden:
        return "the container hides %d of its %d pictures (an edit list)" % (timing.hidden, timing.samples)
    return ""


def picture_displacement(timing: Timing) -> Optional[Tuple[int, float, float]]:
    """The picture the container presents farthest from its place, when beyond the tolerance:
    (its rank in the camera's picture order, how far in ms, the tolerance); None when every
    picture is in place. Picture k of the camera's order belongs at k frame intervals after the
    first (the container's frame interval: its span over its pictures), give or take one offset
    for the whole segment. A decoder may show a picture as far from its place as the segment's
    own reordering (how far its decoding order strays from its picture order: a file that gives
    each picture its decoding time, as ffmpeg 5.1 does for raw B-frame video, is shown that way
    by every player), and half a frame of rounding more. Pictures the decoder does not output
    take no place."""
    times = [t for t, key in zip(timing.times_ms, timing.order) if key is not None]
    keys = [key for key in timing.order if key is not None]
    n = len(times)
    if n < 2:
        return None
    ranked = sorted(range(n), key=lambda i: (keys[i], i))
    rank = [0] * n
    for position, index in enumerate(ranked):
        rank[index] = position
    depth = max(abs(i - rank[i]) for i in range(n))
    step = (max(times) - min(times)) / (n - 1)
    allowed = depth * step + max(step / 2, 1.0)
    offsets = [times[i] - rank[i] * step for i in range(n)]  # where each puts the segment's start
    center = (max(offsets) + min(offsets)) / 2
    worst = max(range(n), key=lambda i: abs(offsets[i] - center))
    off = abs(offsets[worst] - center)
    return (rank[worst], off, allowed) if off > allowed else None


def verify_segment(segment: Buffer, keyring: Keyring, *, window: Optional[TimeWindow] = None,
                   now_s: Optional[float] = None) -> TagInfo:
    """Check one Annex-B segment on its own; return its tag or raise InvalidSegment.

    No stream state: replay, order and chain need ``StreamVerifier``.
    """
    if not isinstance(segment, (bytes, bytearray, memoryview)):
        raise TypeError("a segment is bytes, bytearray or memoryview, not %s" % type(segment).__name__)
    found, _canonical = Authenticator(keyring, window).authenticate_bytes(segment, now_s)
    return found.tag


class _Accepted(NamedTuple):
    digest: bytes
    link: bytes
    mac: bytes


class _StreamState:
    __slots__ = ("stream_id", "epoch", "highest", "recent", "last", "tip")

    def __init__(self, found: Authentic) -> None:
        self.stream_id = found.tag.stream_id
        self.epoch = found.tag.epoch
        self.highest = found.tag.seq
        self.recent: Dict[int, _Accepted] = {}  # by seq; entries below the window are ignored
        self.last = found.tag  # the latest accepted in stream order (its public fields)
        self.tip = found.digest[:LINK_SIZE]  # the link the next segment must carry
        self.accept(found)

    def accept(self, found: Authentic) -> None:
        tag = found.tag
        recent = self.recent
        recent[tag.seq] = _make(_Accepted, (found.digest, found.link, found.mac))
        if tag.seq >= self.highest:
            self.highest = tag.seq
            self.epoch = tag.epoch
            self.last = tag
            self.tip = found.digest[:LINK_SIZE]
        if len(recent) > 2 * REPLAY_WINDOW:  # forget what fell out of the window, now and then
            floor = self.highest - REPLAY_WINDOW
            self.recent = {seq: entry for seq, entry in recent.items() if seq >= floor}

    def seen(self, seq: int) -> Optional[_Accepted]:
        """What was accepted at ``seq``, when it lies in the window."""
        return self.recent.get(seq) if seq >= self.highest - REPLAY_WINDOW else None

    # -- export and import (StreamVerifier.export_state and import_state) ------------------------
    # Version 1. Every integer an unsigned LEB128 varint:
    #   "SBst" 01 | stream_id | epoch | highest | the latest segment's capture_ms, duration_ms,
    #   pictures, codec, flags (1: end of stream), key id (16 bytes) | n | n entries by rising seq:
    #   the first's distance below highest, then each one's distance above the one before; a
    #   flags byte (1: its link is the digest of the seq before, left out); digest (32); MAC (16);
    #   link (8) unless left out.
    # Only the entries the window still consults (seq >= highest - REPLAY_WINDOW) are written: at
    # most REPLAY_WINDOW + 1, so a state is at most STATE_MAX_BYTES. The tip is the highest
    # entry's digest, and the latest segment's seq, stream and epoch are the state's own: neither
    # is written.

    def to_bytes(self) -> bytes:
        last = self.last
        highest = self.highest
        out = bytearray(_STATE_MAGIC)
        for value in (self.stream_id, self.epoch, highest, last.capture_ms, last.duration_ms,
                      last.pictures, last.codec, 1 if last.end_of_stream else 0):
            out += encode_uvarint(value)
        out += last.key_id
        recent = self.recent
        floor = highest - REPLAY_WINDOW
        seqs = sorted(seq for seq in recent if seq >= floor)
        out += encode_uvarint(len(seqs))
        previous = -1
        for seq in seqs:
            entry = recent[seq]
            out += encode_uvarint(highest - seq if previous < 0 else seq - previous)
            elided = previous >= 0 and previous == seq - 1 and entry.link == recent[previous].digest[:LINK_SIZE]
            out.append(1 if elided else 0)
            out += entry.digest
            out += entry.mac
            if not elided:
                out += entry.link
            previous = seq
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, owner: str, camera: str) -> "_StreamState":
        if not isinstance(data, (bytes, bytearray)):
            raise StateError("a stream state is bytes, not %s" % type(data).__name__)
        if len(data) > STATE_MAX_BYTES:
            raise StateError("a stream state of %d bytes is over its bound (%d)" % (len(data), STATE_MAX_BYTES))
        if not data.startswith(_STATE_MAGIC[:4]) or len(data) < len(_STATE_MAGIC):
            raise StateError("not a segbind stream state")
        if data[4] != STATE_VERSION:
            raise StateError("stream state version %d, not %d" % (data[4], STATE_VERSION))
        data = bytes(data)
        try:
            pos = len(_STATE_MAGIC)
            fields = []
            for limit in _STATE_LIMITS:
                value, pos = decode_uvarint(data, pos, limit)
                fields.append(value)
            stream_id, epoch, highest, capture_ms, duration_ms, pictures, codec, eos = fields
            if codec not in CODEC_NAMES:
                raise StateError("stream state: unknown codec %d" % codec)
            key_id = data[pos:pos + KEY_ID_SIZE]
            pos += KEY_ID_SIZE
            count, pos = decode_uvarint(data, pos, REPLAY_WINDOW + 1)
            recent: Dict[int, _Accepted] = {}
            previous = -1
            for _ in range(count):
                step, pos = decode_uvarint(data, pos, REPLAY_WINDOW)
                seq = highest - step if previous < 0 else previous + step
                if previous >= 0 and not step:
                    raise StateError("stream state: entries out of order")
                if seq < 0 or seq > highest:
                    raise StateError("stream state: an entry outside the window")
                flags = data[pos] if pos < len(data) else 255
                if flags > 1:
                    raise StateError("stream state: bad entry flags")
                digest = data[pos + 1:pos + 1 + DIGEST_SIZE]
                pos += 1 + DIGEST_SIZE
                mac = data[pos:pos + MAC_SIZE]
                pos += MAC_SIZE
                if flags:
                    if previous < 0 or previous != seq - 1:
                        raise StateError("stream state: a link left out with no entry before it")
                    link = recent[previous].digest[:LINK_SIZE]
                else:
                    link = data[pos:pos + LINK_SIZE]
                    pos += LINK_SIZE
                if len(digest) != DIGEST_SIZE or len(mac) != MAC_SIZE or len(link) != LINK_SIZE:
                    raise StateError("stream state truncated in an entry")
                recent[seq] = _make(_Accepted, (digest, link, mac))
                previous = seq
        except TagError as exc:
            raise StateError("stream state: %s" % exc) from None
        if len(key_id) != KEY_ID_SIZE or pos != len(data):
            raise StateError("stream state: %s" % ("truncated" if pos > len(data) else
                                                   "%d bytes after its end" % (len(data) - pos)))
        top = recent.get(highest)
        if top is None:
            raise StateError("stream state: no entry for its highest segment")
        state = cls.__new__(cls)
        state.stream_id, state.epoch, state.highest, state.recent = stream_id, epoch, highest, recent
        state.last = _make(TagInfo, (owner, camera, epoch, stream_id, highest, capture_ms, duration_ms, pictures,
                                     codec, bool(eos), key_id, False))
        state.tip = top.digest[:LINK_SIZE]
        return state


STATE_VERSION = 1
"""The version of ``StreamVerifier.export_state``'s bytes (import refuses any other)."""
_STATE_MAGIC = b"SBst" + bytes((STATE_VERSION,))
# stream_id, epoch, highest seq, capture_ms, duration_ms, pictures, codec, flags
_STATE_LIMITS = ((1 << 48) - 1, 0x7FFFFFFF, 0xFFFFFFFF, (1 << 53) - 1, 0xFFFFFFFF, 0xFFFF, 2, 1)
STATE_MAX_BYTES = 5 + 8 + 5 + 9 + 5 + 3 + 2 + 1 + KEY_ID_SIZE + 2 + (REPLAY_WINDOW + 1) * (
    2 + 1 + DIGEST_SIZE + MAC_SIZE + LINK_SIZE)
"""The bound of an exported stream state, in bytes (its header, and REPLAY_WINDOW + 1 entries)."""


class Accepted:
    """An accepted segment: what may be handed on, built only when asked for. ``plaintext()``
    is what a decoder gets (docs/FORMAT.md 7.4: decrypted, in canonical form, the tag where
    the camera puts it); ``protected()`` the same bytes still encrypted, as the camera emitted
    them (what a keyless recorder or relay keeps)."""

    __slots__ = ("_form", "found", "_protected")

    def __init__(self, form: Union[bytes, Canonical], found: Authentic) -> None:
        self._form = form
        self.found = found
        self._protected: Optional[bytes] = None

    def protected(self) -> bytes:
        if self._protected is None:
            form = self._form
            self._protected = form.output() if isinstance(form, Canonical) else form
        return self._protected

    def plaintext(self) -> bytes:
        found = self.found
        tag = found.tag
        return unprotect(self.protected(), tag.codec, found.clear_lead, found.binding.content_key, tag.stream_id,
                         tag.seq, DOMAIN_STILL if tag.still else DOMAIN_SEGMENT)

    def __len__(self) -> int:
        form = self._form
        return len(form)


class StreamVerifier:
    """Verifies segments in arrival order, keeping the stream state of each stream: an
    (owner, camera), as the keyring names the tag's key id.

    With ``camera`` (and ``owner``) set, the stream is that one alone and a segment of any
    other is a ``chain_break``; without them, each (owner, camera) is its own stream.
    With ``recording`` (a finished recording, not a live feed), gaps, streams
    that do not follow a clean end and discontinuous capture times are refused,
    and ``finish()`` says whether the recording ends cleanly. ``verify`` never
    raises, whatever bytes it is given. An accepted segment is decrypted only when asked
    for (``verified``); a refused one never is.
    """

    def __init__(self, keyring: Keyring, *, camera: Optional[str] = None, owner: Optional[str] = None,
                 window: Optional[TimeWindow] = None, recording: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.auth = Authenticator(keyring, window)
        self.camera = camera
        self.owner = owner
        self.recording = recording
        self.clock = clock
        self._streams: Dict[Tuple[str, str], _StreamState] = {}
        self._accepted: Optional[Accepted] = None

    @property
    def verified(self) -> Optional[bytes]:
        """The segment accepted last, decrypted, as a decoder may be given it; None after a
        refusal. Decrypted only when asked for."""
        return self._accepted.plaintext() if self._accepted is not None else None

    @property
    def accepted(self) -> Optional[Accepted]:
        """The segment accepted last (``Accepted``), or None after a refusal."""
        return self._accepted

    @property
    def keyring(self) -> Keyring:
        return self.auth.keyring

    @keyring.setter
    def keyring(self, keyring: Keyring) -> None:
        """A new keyring (grants changed); the stream state is kept."""
        self.auth.keyring = keyring

    @property
    def window(self) -> Optional[TimeWindow]:
        return self.auth.window

    @window.setter
    def window(self, window: Optional[TimeWindow]) -> None:
        self.auth.window = window

    def streams(self) -> List[Tuple[str, str]]:
        """The (owner, camera) streams this verifier keeps a state for, sorted."""
        return sorted(self._streams)

    def export_state(self, owner: str, camera: str) -> Optional[bytes]:
        """The state kept for the stream (owner, camera) as bytes: versioned, at most
        ``STATE_MAX_BYTES``, no key material (the digests, MACs and links of what the window still
        holds, and the public fields of the latest segment); None when no segment of it was
        accepted. ``import_state`` on another verifier with the same keys and options then gives
        the verdicts this one would have given: a service that hands a stream to another process
        continues its chain exactly (docs/SERVICE.md)."""
        state = self._streams.get((owner, camera))
        return state.to_bytes() if state is not None else None

    def import_state(self, owner: str, camera: str, data: Optional[bytes]) -> None:
        """Take the state of the stream (owner, camera) from ``export_state``'s bytes, replacing
        the one kept; None forgets it. StateError, and nothing changed, when the bytes are not a
        state this version wrote."""
        if data is None:
            self._streams.pop((owner, camera), None)
            return
        self._streams[(owner, camera)] = _StreamState.from_bytes(data, owner, camera)

    def verify(self, segment: Buffer) -> Verdict:
        """Verdict for one Annex-B segment (as the camera emits it, or any Annex-B framing)."""
        if not isinstance(segment, (bytes, bytearray, memoryview)):
            return Verdict(Reason.FRAMING, "a segment is bytes, not %s" % type(segment).__name__)
        self._accepted = None
        auth = self.auth
        try:
            data = segment if type(segment) is bytes else bytes(segment)
            now = self.clock() if auth.window is not None else None
            found = auth.as_emitted(data, now)
            form: Union[bytes, Canonical] = data
            if found is None:
                found, form = auth.authenticate_bytes(data, now)
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail, exc.tag)
        verdict = self._sequence(found)
        if verdict.reason in _ACCEPTED:
            self._accepted = Accepted(form, found)
        return verdict

    def verify_canonical(self, seg: Canonical) -> Verdict:
        """Verdict for a segment a reader found (containers, streams)."""
        return self.judge(seg)[0]

    def judge(self, seg: Canonical) -> Tuple[Verdict, Optional[Accepted]]:
        """(verdict, the accepted segment when accepted): what a decoder may be handed is its
        ``plaintext()``, and nothing else."""
        self._accepted = None
        try:
            found, form = self.auth.judge(seg, self._now())
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail, exc.tag), None
        verdict = self._sequence(found)
        if verdict.reason not in _ACCEPTED:
            return verdict, None
        if found.note:
            verdict = verdict._replace(detail="; ".join(d for d in (verdict.detail, found.note) if d))
        self._accepted = Accepted(form, found)
        return verdict, self._accepted

    def _now(self) -> Optional[float]:
        return self.clock() if self.auth.window is not None else None

    def finish(self) -> Optional[Verdict]:
        """Recording mode, at the end of the input: a refusal when a stream did not end cleanly."""
        if not self.recording:
            return None
        for (owner, camera), state in sorted(self._streams.items()):
            if not state.last.end_of_stream:
                return Verdict(Reason.INCOMPLETE, "the recording of camera %r of %r ends at segment %d of "
                               "stream %d, without its end of stream" % (camera, owner, state.highest,
                                                                         state.stream_id),
                               state.last)
        if not self._streams:
            return Verdict(Reason.INCOMPLETE, "no segment was accepted")
        return None

    def _foreign(self, tag: TagInfo) -> bool:
        return (self.camera is not None and tag.camera != self.camera) or \
            (self.owner is not None and tag.owner != self.owner)

    def _sequence(self, found: Authentic) -> Verdict:
        tag = info = found.tag
        key = (tag.owner, tag.camera)
        state = self._streams.get(key)
        if (state is not None and tag.seq == state.highest + 1 and tag.stream_id == state.stream_id
                and tag.epoch >= state.epoch and not self.recording and not tag.still
                and not self._foreign(tag)):  # the next one: most segments
            if not constant_time_equal(found.link, state.tip):
                return Verdict(Reason.CHAIN_BREAK, "segment %d does not follow segment %d"
                               % (tag.seq, state.highest), info)
            state.accept(found)
            return _make(Verdict, (Reason.OK, "", info, 0))
        if self._foreign(tag):
            return Verdict(Reason.CHAIN_BREAK, "segment of camera %r of %r in the stream of camera %r of %r"
                           % (tag.camera, tag.owner, self.camera, self.owner or "its owner"), info)
        if tag.still:  # a thumbnail: judged alone, chained to nothing (docs/FORMAT.md 10)
            return Verdict(Reason.OK, "a still (an event's thumbnail) of segment %d of stream %d"
                           % (tag.seq, tag.stream_id), info)
        state = self._streams.get(key)
        if state is None:
            if tag.seq == 0 and found.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "first segment of a stream without the genesis link",
                               info)
            if self.recording and tag.seq:
                return Verdict(Reason.MISSING, "the recording starts at segment %d of stream %d"
                               % (tag.seq, tag.stream_id), info, tag.seq)
            self._streams[key] = _StreamState(found)
            return Verdict(Reason.OK, "first segment seen of stream %d" % tag.stream_id, info)
        if tag.stream_id < state.stream_id:
            return Verdict(Reason.CHAIN_BREAK, "stream %d is older than stream %d already seen"
                           % (tag.stream_id, state.stream_id), info)
        if tag.stream_id > state.stream_id:
            if tag.seq == 0 and found.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "new stream does not start with the genesis link", info)
            if self.recording and (tag.seq or not state.last.end_of_stream):
                return Verdict(Reason.MISSING, "stream %d begins before stream %d ended cleanly"
                               % (tag.stream_id, state.stream_id), info, tag.seq)
            self._streams[key] = _StreamState(found)
            if tag.seq:
                return Verdict(Reason.GAP, "new stream %d joined at segment %d" % (tag.stream_id, tag.seq),
                               info, tag.seq)
            return Verdict(Reason.OK, "new stream %d" % tag.stream_id, info)
        if tag.epoch < state.epoch and tag.seq > state.highest:
            return Verdict(Reason.CHAIN_BREAK, "epoch went back from %d to %d" % (state.epoch, tag.epoch),
                           info)
        if tag.seq <= state.highest:
            return self._earlier(state, found, info)
        if tag.seq == state.highest + 1:
            if not constant_time_equal(found.link, state.tip):
                return Verdict(Reason.CHAIN_BREAK, "segment %d does not follow segment %d"
                               % (tag.seq, state.highest), info)
            if self.recording:
                refused = self._discontinuous(state.last, tag, info)
                if refused is not None:
                    return refused
            state.accept(found)
            return Verdict(Reason.OK, "", info)
        missing = tag.seq - state.highest - 1
        if self.recording:
            return Verdict(Reason.MISSING, "%d segment(s) missing before segment %d"
                           % (missing, tag.seq), info, missing)
        state.accept(found)
        return Verdict(Reason.GAP, "%d segment(s) lost before segment %d" % (missing, tag.seq), info,
                       missing=missing)

    @staticmethod
    def _discontinuous(previous: TagInfo, tag: TagInfo, info: TagInfo) -> Optional[Verdict]:
        expected = previous.capture_ms + previous.duration_ms
        if abs(tag.capture_ms - expected) > CONTINUITY_MS:
            return Verdict(Reason.TIMING, "captured at %d ms, %d ms from where segment %d ended"
                           % (tag.capture_ms, tag.capture_ms - expected, previous.seq), info)
        return None

    def _earlier(self, state: _StreamState, found: Authentic, info: TagInfo) -> Verdict:
        """A segment at or below the highest seq: a copy, a replay, or an intact late one."""
        tag = found.tag
        if tag.seq < state.highest - REPLAY_WINDOW:
            return Verdict(Reason.REPLAY, "segment %d is older than the window (%d)"
                           % (tag.seq, REPLAY_WINDOW), info)
        seen = state.seen(tag.seq)
        if seen is not None:
            if constant_time_equal(seen.digest, found.digest) and constant_time_equal(seen.mac, found.mac):
                return Verdict(Reason.DUPLICATE, "segment %d already accepted" % tag.seq, info)
            return Verdict(Reason.REPLAY, "sequence number %d already used" % tag.seq, info)
        before = state.seen(tag.seq - 1)
        if tag.seq == 0:
            if found.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "segment 0 without the genesis link", info)
        elif before is not None and not constant_time_equal(found.link, before.digest[:LINK_SIZE]):
            return Verdict(Reason.CHAIN_BREAK, "late segment %d does not follow segment %d"
                           % (tag.seq, tag.seq - 1), info)
        after = state.seen(tag.seq + 1)
        if after is not None and not constant_time_equal(after.link, found.digest[:LINK_SIZE]):
            return Verdict(Reason.CHAIN_BREAK, "segment %d does not lead to segment %d"
                           % (tag.seq, tag.seq + 1), info)
        if tag.epoch > state.epoch:
            return Verdict(Reason.CHAIN_BREAK, "a late segment of epoch %d after epoch %d"
                           % (tag.epoch, state.epoch), info)
        if self.recording:
            return Verdict(Reason.MISSING, "segment %d arrived after segment %d" % (tag.seq, state.highest),
                           info)
        state.accept(found)
        return Verdict(Reason.LATE, "segment %d arrived after segment %d" % (tag.seq, state.highest), info)


def tags_in(buf: Union[bytes, bytearray]) -> List[Tuple[int, int]]:
    """Offsets of the segbind tag NAL units in an Annex-B buffer (for tools)."""
    return [(s, e) for s, e in annexb_units(buf) if tag_codec(memoryview(buf)[s:e])]


__all__ = ["Accepted", "Authentic", "Authenticator", "Canonical", "LIVE", "REPLAY_WINDOW", "STATE_MAX_BYTES",
           "STATE_VERSION", "StreamVerifier", "TimeWindow", "Timing", "tags_in", "verify_segment"]
