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
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from segbind_core.crypto import MacKey, constant_time_equal
from segbind_core.h264 import SeiError
from segbind_core.nal import START_CODE, annexb_units, leading_garbage, unescape_rbsp
from segbind_core.sei import SEGBIND_UUID, segbind_payload, tag_codec
from segbind_core.tag import (
    CODEC_H264,
    CODEC_NAMES,
    DIGEST_HINT_SIZE,
    GENESIS_LINK,
    LINK_SIZE,
    MAC_SIZE,
    UNKNOWN_VERSION,
    Tag,
    TagError,
    decode_rest,
    decode_tag,
)

from .errors import InvalidSegment
from .keyring import Keyring
from .verdict import Reason, TagInfo, Verdict

Buffer = Union[bytes, bytearray, memoryview]

# How many sequence numbers per camera are remembered, to tell a redelivery (duplicate)
# from a replay and to take late segments; libsrtp keeps 128 too.
REPLAY_WINDOW = 128
# Recording mode: how far a segment's capture time may be from where the previous one ended.
CONTINUITY_MS = 1000


@dataclass(frozen=True)
class TimeWindow:
    """Accept capture times from ``max_age_s`` in the past to ``max_future_s`` ahead of now."""

    max_age_s: Optional[float] = None
    max_future_s: Optional[float] = None

    def check(self, tag: Tag, now_s: float) -> None:
        age = now_s - tag.capture_ms / 1000.0
        if self.max_age_s is not None and age > self.max_age_s:
            raise InvalidSegment(Reason.TIME_WINDOW, "captured %.1f s ago, more than %.1f s"
                                 % (age, self.max_age_s), _info(tag))
        if self.max_future_s is not None and -age > self.max_future_s:
            raise InvalidSegment(Reason.TIME_WINDOW, "captured %.1f s in the future, more than %.1f s"
                                 % (-age, self.max_future_s), _info(tag))


LIVE = TimeWindow(max_age_s=30.0, max_future_s=5.0)
"""The window a live display uses: video captured in the last 30 s (or 5 s ahead of a slow clock)."""


def _info(tag: Tag) -> TagInfo:
    return TagInfo(tag.owner, tag.camera, tag.epoch, tag.stream_id, tag.seq, tag.capture_ms,
                   tag.duration_ms, tag.pictures, tag.codec, tag.end_of_stream)


class Timing(NamedTuple):
    """What a container says of a segment's timing (readers fill it; Annex-B has none)."""

    samples: int         # samples (access units) the container holds for the segment
    duration_ms: float   # their presentation span plus the last one's duration
    hidden: int = 0      # samples the container marks as not to be presented (edit lists)
    frame_ms: float = 0  # the container's duration of one sample


class Canonical:
    """A segment in canonical form: ``data`` is Annex-B with 4-byte start codes, the tag included.

    ``tag_start``/``tag_end`` delimit the tag's NAL unit with its start code;
    ``units`` is the number of NAL units other than the tag, when the framing
    told (None for a segment taken as is: its bytes are then hashed as they are).
    A reader attaches what it learned about the container: ``timing``, and a
    ``problem`` (a framing defect that refuses the segment whatever its tag).
    """

    __slots__ = ("data", "tag_start", "tag_end", "units", "timing", "problem", "variants")

    def __init__(self, data: bytes, tag_start: int, tag_end: int, units: Optional[int] = None,
                 timing: Optional[Timing] = None, problem: str = "",
                 variants: Sequence["Canonical"] = ()) -> None:
        self.data = data
        self.tag_start = tag_start
        self.tag_end = tag_end
        self.units = units
        self.timing = timing
        self.problem = problem
        self.variants = variants  # other heads to try when the digest does not match

    @classmethod
    def of_units(cls, units: Sequence[Buffer], timing: Optional[Timing] = None, problem: str = "",
                 variants: Sequence["Canonical"] = ()) -> "Canonical":
        """From NAL units (as found in any framing): joined with 4-byte start codes.

        Raises InvalidSegment when there is not exactly one tag among them.
        """
        tags = [i for i, u in enumerate(units) if len(u) and tag_codec(u)]
        if not tags:
            raise InvalidSegment(Reason.NO_TAG, "segment carries no segbind tag" if units
                                 else "no NAL units in segment")
        if len(tags) > 1:
            raise InvalidSegment(Reason.MALFORMED_TAG, "segment carries %d segbind tags" % len(tags))
        at = tags[0]
        head = b"".join(START_CODE + bytes(u) for u in units[:at])
        tag = START_CODE + bytes(units[at])
        rest = b"".join(START_CODE + bytes(u) for u in units[at + 1:])
        return cls(head + tag + rest, len(head), len(head) + len(tag), len(units) - 1, timing,
                   problem, variants)

    @classmethod
    def of_annexb(cls, buf: Buffer) -> "Canonical":
        """From Annex-B bytes in any framing (3-byte start codes, trailing zeros): refused
        when bytes other than zeros come before the first start code."""
        buf = bytes(buf)
        if leading_garbage(buf):
            raise InvalidSegment(Reason.FRAMING, "bytes before the first NAL unit")
        return cls.of_units([buf[s:e] for s, e in annexb_units(buf)])


def _tag_body(nal: bytes, codec: int) -> bytes:
    """The tag body of a tag NAL unit: read directly when the unit has its usual shape (one
    message, a one-byte size), else through the strict SEI parser."""
    if codec:
        header = 1 if codec == CODEC_H264 else 2
        rbsp = unescape_rbsp(nal)
        size = rbsp[header + 1] if len(rbsp) > header + 18 else 255
        if (rbsp[header] == 5 and size < 255 and len(rbsp) == header + 3 + size
                and rbsp[-1] == 0x80 and rbsp[header + 2:header + 18] == SEGBIND_UUID):
            return rbsp[header + 18:-1]
    return segbind_payload(nal)


def _as_camera_emits(buf: bytes) -> Optional[Canonical]:
    """The tag's place, when ``buf`` looks as the camera emits a segment: the tag first, or
    right after a delimiter, with 4-byte start codes; else None."""
    if not buf.startswith(START_CODE) or len(buf) < 24:
        return None
    start = 0
    if not tag_codec(buf[4:48]):  # a delimiter first? (H.264 09, H.265 type 35)
        first = buf[4]
        if first & 0x1F != 9 and (first >> 1) & 0x3F != 35:
            return None
        start = buf.find(START_CODE, 5, 12)
        if start < 0 or not tag_codec(buf[start + 4:start + 48]):
            return None
    end = buf.find(START_CODE, start + 4)
    return Canonical(buf, start, end if end >= 0 else len(buf))


class _Keys:
    """MacKey schedules of the keyring's slot keys, made once per (owner, camera, epoch)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._cache: Dict[Tuple[str, str, int], Tuple[int, MacKey]] = {}

    def slot(self, owner: str, camera: str, epoch: int) -> Tuple[int, MacKey]:
        gid = (owner, camera, epoch)
        found = self._cache.get(gid)
        if found is None:
            binding = self.keyring.binding(owner, camera, epoch)  # NO_GRANT when missing
            found = self._cache[gid] = (binding.slot, MacKey(binding.key))
        return found


class Authentic(NamedTuple):
    """A segment whose tag authenticated: the tag, its digest, the MAC of the viewer's slot."""

    tag: Tag
    digest: bytes
    mac: bytes


class Authenticator:
    """Checks 1 to 8 of docs/FORMAT.md 7.1 on canonical segments (no stream state).

    Keeps what can be kept between segments: the key schedules, and the decoded
    tag fields every segment of one stream shares (owner and camera).
    """

    def __init__(self, keyring: Keyring, window: Optional[TimeWindow] = None) -> None:
        self.keys = _Keys(keyring)
        self.window = window
        self._prefix = b""
        self._prefix_fields: Tuple[int, str, str] = (0, "", "")

    @property
    def keyring(self) -> Keyring:
        return self.keys.keyring

    @keyring.setter
    def keyring(self, keyring: Keyring) -> None:
        self.keys = _Keys(keyring)

    def _decode(self, body: bytes) -> Tuple[Tag, bytes]:
        prefix = self._prefix
        if prefix and body.startswith(prefix):
            codec, owner, camera = self._prefix_fields
            return decode_rest(body, len(prefix), codec, owner, camera)
        tag, signed = decode_tag(body)
        size = 3 + 2 + len(tag.owner.encode()) + len(tag.camera.encode())
        self._prefix, self._prefix_fields = body[:size], (tag.codec, tag.owner, tag.camera)
        return tag, signed

    def tag_of(self, seg: Canonical) -> Tuple[Tag, bytes]:
        """(tag, signed fields) of a canonical segment; InvalidSegment when unusable."""
        nal = seg.data[seg.tag_start + 4:seg.tag_end]
        codec = tag_codec(nal)
        try:
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

    def authenticate(self, seg: Canonical, now_s: Optional[float] = None) -> Authentic:
        tag, signed = self.tag_of(seg)
        try:
            slot, key = self.keys.slot(tag.owner, tag.camera, tag.epoch)
        except InvalidSegment as exc:
            raise InvalidSegment(exc.reason, exc.detail, _info(tag)) from None
        if slot >= tag.slots:
            raise InvalidSegment(Reason.NO_GRANT, "the tag has no slot %d for this viewer (%d slots)"
                                 % (slot, tag.slots), _info(tag))
        if seg.problem:
            raise InvalidSegment(Reason.FRAMING, seg.problem, _info(tag))
        if seg.units is not None and seg.units != tag.units:
            raise InvalidSegment(Reason.CONTENT_MISMATCH, "%d NAL units where the camera tagged %d"
                                 % (seg.units, tag.units), _info(tag))
        data = memoryview(seg.data)
        h = hashlib.sha256(data[:seg.tag_start])
        h.update(data[seg.tag_end:])
        digest = h.digest()
        mac = key.mac(signed, digest)[:MAC_SIZE]
        theirs = tag.macs[slot]
        if not constant_time_equal(mac, theirs):
            if not constant_time_equal(digest[:DIGEST_HINT_SIZE], tag.digest_hint):
                raise InvalidSegment(Reason.CONTENT_MISMATCH,
                                     "video content differs from what the camera tagged", _info(tag))
            raise InvalidSegment(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key",
                                 _info(tag))
        if seg.timing is not None:
            _check_timing(tag, seg.timing)
        if self.window is not None:
            self.window.check(tag, time.time() if now_s is None else now_s)
        return Authentic(tag, digest, mac)

    def authenticate_any(self, seg: Canonical, now_s: Optional[float] = None) -> Authentic:
        """``authenticate``, then the segment's other heads (undoing what remuxers do) when
        only its content mismatched."""
        try:
            return self.authenticate(seg, now_s)
        except InvalidSegment as exc:
            if exc.reason is not Reason.CONTENT_MISMATCH or not seg.variants:
                raise
            for other in seg.variants:
                try:
                    return self.authenticate(other, now_s)
                except InvalidSegment as again:
                    if again.reason is not Reason.CONTENT_MISMATCH:
                        raise
            raise

    def authenticate_bytes(self, buf: Buffer, now_s: Optional[float] = None) -> Tuple[Authentic, Canonical]:
        """A segment given as Annex-B bytes: as the camera emits it (no parsing), else read
        into canonical form. Returns the canonical segment that authenticated."""
        data = buf if isinstance(buf, bytes) else bytes(buf)
        fast = _as_camera_emits(data)
        if fast is not None:
            try:
                return self.authenticate(fast, now_s), fast
            except InvalidSegment as exc:
                if exc.reason is not Reason.CONTENT_MISMATCH:
                    raise
                slow = Canonical.of_annexb(data)
                if slow.data == data:
                    raise
                return self.authenticate(slow, now_s), slow
        slow = Canonical.of_annexb(data)
        return self.authenticate(slow, now_s), slow


def _check_timing(tag: Tag, timing: Timing) -> None:
    if timing.hidden:
        raise InvalidSegment(Reason.TIMING, "the container hides %d of its pictures (an edit list)"
                             % timing.hidden, _info(tag))
    if timing.samples != tag.pictures:
        raise InvalidSegment(Reason.TIMING, "%d pictures where the camera tagged %d"
                             % (timing.samples, tag.pictures), _info(tag))
    slack = max(timing.frame_ms, tag.duration_ms / tag.pictures if tag.pictures else 0,
                0.1 * tag.duration_ms) + 1
    if abs(timing.duration_ms - tag.duration_ms) > slack:
        raise InvalidSegment(Reason.TIMING, "the container plays it in %.0f ms; the camera captured %d ms"
                             % (timing.duration_ms, tag.duration_ms), _info(tag))


def verify_segment(segment: Buffer, keyring: Keyring, *, window: Optional[TimeWindow] = None,
                   now_s: Optional[float] = None) -> TagInfo:
    """Check one Annex-B segment on its own; return its tag or raise InvalidSegment.

    No stream state: replay, order and chain need ``StreamVerifier``.
    """
    if not isinstance(segment, (bytes, bytearray, memoryview)):
        raise TypeError("a segment is bytes, bytearray or memoryview, not %s" % type(segment).__name__)
    found, _canonical = Authenticator(keyring, window).authenticate_bytes(segment, now_s)
    return _info(found.tag)


class _Accepted(NamedTuple):
    digest: bytes
    link: bytes
    mac: bytes


class _CameraState:
    __slots__ = ("stream_id", "epoch", "highest", "recent", "last")

    def __init__(self, found: Authentic) -> None:
        self.stream_id = found.tag.stream_id
        self.epoch = found.tag.epoch
        self.highest = found.tag.seq
        self.recent: "OrderedDict[int, _Accepted]" = OrderedDict()
        self.last = found.tag  # the latest accepted in stream order
        self.accept(found)

    def accept(self, found: Authentic) -> None:
        tag = found.tag
        self.recent[tag.seq] = _Accepted(found.digest, tag.link, found.mac)
        if tag.seq >= self.highest:
            self.highest = tag.seq
            self.epoch = tag.epoch
            self.last = tag
        floor = self.highest - REPLAY_WINDOW
        recent = self.recent
        while recent:
            oldest = next(iter(recent))
            if oldest >= floor:
                break
            del recent[oldest]


class StreamVerifier:
    """Verifies segments in arrival order, keeping the stream state of each camera.

    With ``camera`` set, the stream is that camera's alone and a segment of any
    other camera is a ``chain_break``; without it, each camera is its own stream.
    With ``recording`` (a finished recording, not a live feed), gaps, streams
    that do not follow a clean end and discontinuous capture times are refused,
    and ``finish()`` says whether the recording ends cleanly. ``verify`` never
    raises, whatever bytes it is given.
    """

    def __init__(self, keyring: Keyring, *, camera: Optional[str] = None,
                 window: Optional[TimeWindow] = None, recording: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.auth = Authenticator(keyring, window)
        self.camera = camera
        self.recording = recording
        self.clock = clock
        self._cameras: Dict[str, _CameraState] = {}
        # The canonical bytes of the segment ``verify`` accepted last (None after a refusal): what a
        # decoder may be given, exactly what was verified.
        self.verified: Optional[bytes] = None

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

    def verify(self, segment: Buffer) -> Verdict:
        """Verdict for one Annex-B segment (as the camera emits it, or any Annex-B framing)."""
        if not isinstance(segment, (bytes, bytearray, memoryview)):
            return Verdict(Reason.FRAMING, "a segment is bytes, not %s" % type(segment).__name__)
        self.verified = None
        try:
            found, seg = self.auth.authenticate_bytes(segment, self._now())
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail, exc.tag)
        verdict = self._sequence(found)
        if verdict.accepted:
            self.verified = seg.data
        return verdict

    def verify_canonical(self, seg: Canonical) -> Verdict:
        """Verdict for a segment a reader put into canonical form (containers, streams)."""
        try:
            found = self.auth.authenticate_any(seg, self._now())
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail, exc.tag)
        return self._sequence(found)

    def _now(self) -> Optional[float]:
        return self.clock() if self.auth.window is not None else None

    def finish(self) -> Optional[Verdict]:
        """Recording mode, at the end of the input: a refusal when a stream did not end cleanly."""
        if not self.recording:
            return None
        for camera, state in sorted(self._cameras.items()):
            if not state.last.end_of_stream:
                return Verdict(Reason.INCOMPLETE, "the recording of camera %r ends at segment %d of "
                               "stream %d, without its end of stream" % (camera, state.highest,
                                                                         state.stream_id),
                               _info(state.last))
        if not self._cameras:
            return Verdict(Reason.INCOMPLETE, "no segment was accepted")
        return None

    def _sequence(self, found: Authentic) -> Verdict:
        tag = found.tag
        info = _info(tag)
        if self.camera is not None and tag.camera != self.camera:
            return Verdict(Reason.CHAIN_BREAK, "segment of camera %r in the stream of camera %r"
                           % (tag.camera, self.camera), info)
        state = self._cameras.get(tag.camera)
        if state is None:
            if tag.seq == 0 and tag.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "first segment of a stream without the genesis link",
                               info)
            if self.recording and tag.seq:
                return Verdict(Reason.MISSING, "the recording starts at segment %d of stream %d"
                               % (tag.seq, tag.stream_id), info, tag.seq)
            self._cameras[tag.camera] = _CameraState(found)
            return Verdict(Reason.OK, "first segment seen of stream %d" % tag.stream_id, info)
        if tag.stream_id < state.stream_id:
            return Verdict(Reason.CHAIN_BREAK, "stream %d is older than stream %d already seen"
                           % (tag.stream_id, state.stream_id), info)
        if tag.stream_id > state.stream_id:
            if tag.seq == 0 and tag.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "new stream does not start with the genesis link", info)
            if self.recording and (tag.seq or not state.last.end_of_stream):
                return Verdict(Reason.MISSING, "stream %d begins before stream %d ended cleanly"
                               % (tag.stream_id, state.stream_id), info, tag.seq)
            self._cameras[tag.camera] = _CameraState(found)
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
            if not constant_time_equal(tag.link, state.recent[state.highest].digest[:LINK_SIZE]):
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
    def _discontinuous(previous: Tag, tag: Tag, info: TagInfo) -> Optional[Verdict]:
        expected = previous.capture_ms + previous.duration_ms
        if abs(tag.capture_ms - expected) > CONTINUITY_MS:
            return Verdict(Reason.TIMING, "captured at %d ms, %d ms from where segment %d ended"
                           % (tag.capture_ms, tag.capture_ms - expected, previous.seq), info)
        return None

    def _earlier(self, state: _CameraState, found: Authentic, info: TagInfo) -> Verdict:
        """A segment at or below the highest seq: a copy, a replay, or an intact late one."""
        tag = found.tag
        seen = state.recent.get(tag.seq)
        if seen is not None:
            if constant_time_equal(seen.digest, found.digest) and constant_time_equal(seen.mac, found.mac):
                return Verdict(Reason.DUPLICATE, "segment %d already accepted" % tag.seq, info)
            return Verdict(Reason.REPLAY, "sequence number %d already used" % tag.seq, info)
        if tag.seq < state.highest - REPLAY_WINDOW:
            return Verdict(Reason.REPLAY, "segment %d is older than the window (%d)"
                           % (tag.seq, REPLAY_WINDOW), info)
        before = state.recent.get(tag.seq - 1)
        if tag.seq == 0:
            if tag.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "segment 0 without the genesis link", info)
        elif before is not None and not constant_time_equal(tag.link, before.digest[:LINK_SIZE]):
            return Verdict(Reason.CHAIN_BREAK, "late segment %d does not follow segment %d"
                           % (tag.seq, tag.seq - 1), info)
        after = state.recent.get(tag.seq + 1)
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


__all__ = ["Authentic", "Authenticator", "Canonical", "LIVE", "REPLAY_WINDOW", "StreamVerifier",
           "TimeWindow", "Timing", "tags_in", "verify_segment"]
