"""Verifying segments: a one-shot check that raises, and a per-stream state machine.

Sans-I/O: bytes in, verdicts out. The clock is a parameter, so tests and
simulations decide what "now" is.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from segbind_core.crypto import constant_time_equal
from segbind_core.h264 import SeiError
from segbind_core.nal import annexb_units, leading_garbage, length_prefixed_units
from segbind_core.sei import SEI_NAL_HEADER, is_segbind_sei, segbind_payload
from segbind_core.tag import (
    DIGEST_HINT_SIZE,
    GENESIS_LINK,
    LINK_SIZE,
    UNKNOWN_VERSION,
    Tag,
    TagError,
    compute_mac,
    content_digest,
    decode_tag,
)

from .errors import InvalidSegment
from .keyring import Keyring
from .verdict import Reason, TagInfo, Verdict

Buffer = Union[bytes, bytearray, memoryview]
Units = Sequence[Tuple[int, int]]

# How many accepted sequence numbers per camera are remembered to tell an
# exact duplicate (QoS-1 redelivery) from a replay; libsrtp keeps 128 too.
REPLAY_WINDOW = 128


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


def _info(tag: Tag) -> TagInfo:
    return TagInfo(tag.owner, tag.camera, tag.epoch, tag.stream_id, tag.seq, tag.capture_ms)


def _as_searchable(segment: Buffer) -> Union[bytes, bytearray]:
    if isinstance(segment, (bytes, bytearray)):
        return segment
    if isinstance(segment, memoryview):
        return segment.tobytes()
    raise TypeError("a segment is bytes, bytearray or memoryview, not %s" % type(segment).__name__)


def annexb_segment_units(buf: Union[bytes, bytearray]) -> List[Tuple[int, int]]:
    """The NAL units of an Annex-B segment; bytes before its first start code are refused.

    A decoder would skip such bytes, but a verifier that skipped them would let
    them be changed unseen.
    """
    if leading_garbage(buf):
        raise InvalidSegment(Reason.CONTENT_MISMATCH, "bytes before the first NAL unit")
    return annexb_units(buf)


def find_tag(buf: Buffer, units: Units) -> Tuple[Tag, bytes, List[Tuple[int, int]]]:
    """(tag, signed fields, covered units) of a segment; InvalidSegment if it has no usable tag."""
    view = memoryview(buf)
    tag_units = [u for u in units if buf[u[0]] == SEI_NAL_HEADER and is_segbind_sei(view[u[0]:u[1]])]
    if not tag_units:
        raise InvalidSegment(Reason.NO_TAG, "segment carries no segbind tag"
                             if units else "no H.264 NAL units in segment")
    if len(tag_units) > 1:
        raise InvalidSegment(Reason.MALFORMED_TAG, "segment carries %d segbind tags" % len(tag_units))
    s, e = tag_units[0]
    try:
        tag, signed = decode_tag(segbind_payload(view[s:e]))
    except SeiError as exc:
        raise InvalidSegment(Reason.MALFORMED_TAG, str(exc)) from None
    except TagError as exc:
        reason = Reason.UNKNOWN_VERSION if exc.reason == UNKNOWN_VERSION else Reason.MALFORMED_TAG
        raise InvalidSegment(reason, str(exc)) from None
    return tag, signed, [u for u in units if u[0] != s]


def authenticate(buf: Buffer, units: Units, keyring: Keyring,
                 window: Optional[TimeWindow] = None, now_s: Optional[float] = None,
                 prefixed: bool = False) -> Tag:
    """The checks that need no stream state: tag, grant, MAC, content, capture time.

    ``prefixed``: every unit follows its own 4-byte length in ``buf``.
    """
    tag, signed, covered = find_tag(buf, units)
    info = _info(tag)
    try:
        key = keyring.key_for(tag.owner, tag.camera, tag.epoch)
    except InvalidSegment as exc:
        raise InvalidSegment(exc.reason, exc.detail, info) from None
    digest = content_digest(buf, covered, prefixed)
    if not constant_time_equal(compute_mac(key, signed, digest), tag.mac):
        if not constant_time_equal(digest[:DIGEST_HINT_SIZE], tag.digest_hint):
            raise InvalidSegment(Reason.CONTENT_MISMATCH,
                                 "video content differs from what the camera tagged", info)
        raise InvalidSegment(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key",
                             info)
    if window is not None:
        window.check(tag, time.time() if now_s is None else now_s)
    return tag


def verify_segment(segment: Buffer, keyring: Keyring, *, window: Optional[TimeWindow] = None,
                   now_s: Optional[float] = None) -> TagInfo:
    """Check one Annex-B segment on its own; return its tag or raise InvalidSegment.

    No stream state: replay, order and chain need ``StreamVerifier``.
    """
    buf = _as_searchable(segment)
    return _info(authenticate(buf, annexb_segment_units(buf), keyring, window, now_s))


class _CameraState:
    __slots__ = ("stream_id", "epoch", "highest", "last_mac", "recent")

    def __init__(self, tag: Tag) -> None:
        self.stream_id = tag.stream_id
        self.epoch = tag.epoch
        self.highest = tag.seq
        self.last_mac = tag.mac
        self.recent: "OrderedDict[int, bytes]" = OrderedDict()
        self.accept(tag)

    def accept(self, tag: Tag) -> None:
        self.epoch = tag.epoch
        self.highest = tag.seq
        self.last_mac = tag.mac
        self.recent[tag.seq] = tag.mac
        while len(self.recent) > REPLAY_WINDOW:
            self.recent.popitem(last=False)


class StreamVerifier:
    """Verifies segments in arrival order, keeping the stream state of each camera.

    With ``camera`` set, the stream is that camera's alone and a segment of
    any other camera spliced into it is a ``chain_break``; without it, one
    verifier serves a viewer that watches several cameras, each with its own
    state. ``verify`` never raises, whatever bytes it is given.
    """

    def __init__(self, keyring: Keyring, *, camera: Optional[str] = None,
                 window: Optional[TimeWindow] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.camera = camera
        self.window = window
        self.clock = clock
        self._cameras: Dict[str, _CameraState] = {}

    def verify(self, segment: Buffer) -> Verdict:
        """Verdict for one Annex-B segment (start codes, one segbind SEI)."""
        buf = _as_searchable(segment)
        try:
            units = annexb_segment_units(buf)
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail)
        return self.verify_units(buf, units)

    def verify_length_prefixed(self, sample: Buffer, length_size: int = 4) -> Verdict:
        """Verdict for one segment in MP4 framing (each NAL unit after a big-endian length)."""
        try:
            units = length_prefixed_units(sample, length_size)
        except ValueError as exc:
            return Verdict(Reason.NO_TAG, "not length-prefixed H.264: %s" % exc)
        return self.verify_units(sample, units, prefixed=length_size == 4)

    def verify_units(self, buf: Buffer, units: Units, prefixed: bool = False) -> Verdict:
        """Verdict for a segment given as NAL unit offsets into ``buf``.

        ``prefixed``: each unit follows its own 4-byte length in ``buf``, which
        lets the digest hash runs of units in one call.
        """
        try:
            now = self.clock() if self.window is not None else None
            tag = authenticate(buf, units, self.keyring, self.window, now, prefixed)
            return self._sequence(tag)
        except InvalidSegment as exc:
            return Verdict(exc.reason, exc.detail, exc.tag)

    def _sequence(self, tag: Tag) -> Verdict:
        info = _info(tag)
        if self.camera is not None and tag.camera != self.camera:
            return Verdict(Reason.CHAIN_BREAK, "segment of camera %r in the stream of camera %r"
                           % (tag.camera, self.camera), info)
        state = self._cameras.get(tag.camera)
        if state is None:
            if tag.seq == 0 and tag.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "first segment of a stream without the genesis link", info)
            self._cameras[tag.camera] = _CameraState(tag)
            return Verdict(Reason.OK, "first segment seen of stream %d" % tag.stream_id, info)
        if tag.stream_id < state.stream_id:
            return Verdict(Reason.CHAIN_BREAK, "stream %d is older than stream %d already seen"
                           % (tag.stream_id, state.stream_id), info)
        if tag.stream_id > state.stream_id:
            if tag.seq == 0 and tag.link != GENESIS_LINK:
                return Verdict(Reason.CHAIN_BREAK, "new stream does not start with the genesis link", info)
            self._cameras[tag.camera] = _CameraState(tag)
            if tag.seq:
                return Verdict(Reason.GAP, "new stream %d joined at segment %d" % (tag.stream_id, tag.seq),
                               info, missing=tag.seq)
            return Verdict(Reason.OK, "new stream %d" % tag.stream_id, info)
        if tag.epoch < state.epoch:
            return Verdict(Reason.CHAIN_BREAK, "epoch went back from %d to %d" % (state.epoch, tag.epoch),
                           info)
        if tag.seq <= state.highest:
            seen = state.recent.get(tag.seq)
            if seen is not None and constant_time_equal(seen, tag.mac):
                return Verdict(Reason.DUPLICATE, "segment %d already accepted" % tag.seq, info)
            if seen is not None or tag.seq < state.highest - REPLAY_WINDOW:
                return Verdict(Reason.REPLAY, "sequence number %d already used" % tag.seq, info)
            return Verdict(Reason.OUT_OF_ORDER, "segment %d arrived after %d" % (tag.seq, state.highest),
                           info)
        if tag.seq == state.highest + 1:
            if not constant_time_equal(tag.link, state.last_mac[:LINK_SIZE]):
                return Verdict(Reason.CHAIN_BREAK, "segment %d does not follow segment %d"
                               % (tag.seq, state.highest), info)
            state.accept(tag)
            return Verdict(Reason.OK, "", info)
        missing = tag.seq - state.highest - 1
        state.accept(tag)
        return Verdict(Reason.GAP, "%d segment(s) lost before segment %d" % (missing, tag.seq), info,
                       missing=missing)
