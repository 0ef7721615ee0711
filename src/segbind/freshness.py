"""Is each stream's feed alive, and is it what its owner says it should be? A live display
raises an alarm for a stream that is stale (nothing accepted for a while) or frozen (segments
keep being accepted but their capture time stands still), for segments no grant opens, for
a rotation its owner says the camera has not confirmed (``rotation_pending``), and flags
video still tagged under an epoch its owner superseded (``superseded_epoch``).

A stream is (owner, camera), as the keyring names a segment's key id: two owners' cameras
that share an id are two streams, two tiles, two alarms.

Sans-I/O: fed the verdicts' tags, what the owner's grants say of its cameras
(``segbind.grants.CameraState``) and the display's clock, it says which alarms stand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Tuple

from .verdict import TagInfo

if TYPE_CHECKING:
    from .grants import CameraState

__all__ = ["Alarm", "FeedWatch", "Stream"]

Stream = Tuple[str, str]  # (owner, camera)

STALE = "stale"
FROZEN = "frozen"
NO_GRANT = "no_grant"                  # segments arrive, but this display holds no key for them
ROTATION_PENDING = "rotation_pending"  # the owner's grants: a rotation unconfirmed past its deadline
SUPERSEDED_EPOCH = "superseded_epoch"  # video tagged under an epoch the owner has superseded

# A segment of the old epoch may be captured after the owner issued the new one: the segment
# in progress when the camera took the command (at most 4 s), the command's way through the
# cloud, and the two clocks' difference. Past this, old-epoch video is flagged.
SUPERSEDED_GRACE_MS = 10_000


class Alarm(NamedTuple):
    camera: str
    kind: str        # one of the kinds above
    since_s: float   # the display clock's time from which the feed is judged so
    detail: str
    owner: str = ""  # "" for segments no grant opens: nothing authenticated names their owner

    @property
    def stream(self) -> Stream:
        return self.owner, self.camera


class _Feed:
    __slots__ = ("since_s", "last_accept_s", "newest_capture_ms", "advanced_s", "ungranted_s", "superseded_s")

    def __init__(self, now_s: float) -> None:
        self.since_s = now_s               # watched from
        self.last_accept_s: Optional[float] = None
        self.newest_capture_ms = -1
        self.advanced_s = now_s            # when the newest capture time last moved forward
        self.ungranted_s: Optional[float] = None  # when a segment last came that no grant opens
        self.superseded_s: Optional[float] = None  # since when accepted video is of a superseded epoch


class FeedWatch:
    """Alarms for the streams a display is granted: ``stale_s`` without an accepted segment
    (from when it started watching, or from the last one), or ``frozen_s`` with segments
    accepted but no capture time newer than the newest seen; plus what the owner's grants
    say (``owner_says``)."""

    def __init__(self, stale_s: float = 10.0, frozen_s: float = 10.0) -> None:
        self.stale_s = stale_s
        self.frozen_s = frozen_s
        self._feeds: Dict[Stream, _Feed] = {}
        self._cameras: Dict[Stream, "CameraState"] = {}
        self._alarm_after_ms = 60_000

    def watch(self, streams: Iterable[Stream], now_s: float) -> None:
        """Watch ``streams`` (the keyring's, as grants change); others are kept only while
        their segments arrive without a grant."""
        wanted = set(streams)
        for stream in wanted:
            if stream not in self._feeds:
                self._feeds[stream] = _Feed(now_s)
        for stream in [s for s, f in self._feeds.items() if s not in wanted and f.ungranted_s is None]:
            del self._feeds[stream]

    def owner_says(self, cameras: Iterable["CameraState"], alarm_after_ms: int) -> None:
        """What the owner's last grants said of its cameras: each one's newest epoch, since when,
        and whether the camera has confirmed it; and how long a rotation may stay pending."""
        self._cameras = {c.stream: c for c in cameras}
        self._alarm_after_ms = alarm_after_ms

    def superseded(self, tag: TagInfo) -> Optional["CameraState"]:
        """The owner's word on the tag's camera when the tag's epoch is one the owner has
        superseded (and its capture is past the grace): the segment is to be flagged."""
        state = self._cameras.get(tag.stream)
        if state is not None and tag.epoch < state.epoch and tag.capture_ms >= state.since_ms + SUPERSEDED_GRACE_MS:
            return state
        return None

    def accepted(self, tag: TagInfo, now_s: float) -> bool:
        """An accepted segment; True when it is to be flagged (``superseded``)."""
        feed = self._feeds.get(tag.stream)
        if feed is None:
            feed = self._feeds[tag.stream] = _Feed(now_s)
        feed.last_accept_s = now_s
        if tag.capture_ms > feed.newest_capture_ms:
            feed.newest_capture_ms = tag.capture_ms
            feed.advanced_s = now_s
        flagged = self.superseded(tag) is not None
        if flagged:
            if feed.superseded_s is None:
                feed.superseded_s = now_s
        elif not tag.still:
            feed.superseded_s = None
        return flagged

    def ungranted(self, stream: Stream, now_s: float) -> None:
        """A segment arrived that no key of this display opens (``no_grant``); ``stream`` is
        what the carrier said of it (("", camera) at most: nothing authenticated names it)."""
        feed = self._feeds.get(stream)
        if feed is None:
            feed = self._feeds[stream] = _Feed(now_s)
        feed.ungranted_s = now_s

    def check(self, now_s: float, now_ms: Optional[int] = None) -> List[Alarm]:
        """The alarms that stand at ``now_s``; ``now_ms`` (default ``now_s``) is the time the
        owner's pending rotations are judged at."""
        alarms = []
        for (owner, camera), feed in sorted(self._feeds.items()):
            if feed.ungranted_s is not None and (feed.last_accept_s is None or feed.last_accept_s < feed.ungranted_s):
                alarms.append(Alarm(camera, NO_GRANT, feed.ungranted_s,
                                    "segments arrive that this display holds no key for", owner))
                continue
            if feed.superseded_s is not None:
                state = self._cameras.get((owner, camera))
                epoch = state.epoch if state is not None else 0
                alarms.append(Alarm(camera, SUPERSEDED_EPOCH, feed.superseded_s,
                                    "video still tagged under an epoch its owner superseded (epoch %d is the "
                                    "owner's)" % epoch, owner))
            last = feed.last_accept_s if feed.last_accept_s is not None else feed.since_s
            if now_s - last > self.stale_s:
                alarms.append(Alarm(camera, STALE, last, "nothing accepted for %.0f s" % (now_s - last), owner))
            elif feed.last_accept_s is not None and now_s - feed.advanced_s > self.frozen_s:
                alarms.append(Alarm(camera, FROZEN, feed.advanced_s,
                                    "segments accepted, but none captured after %d ms for %.0f s"
                                    % (feed.newest_capture_ms, now_s - feed.advanced_s), owner))
        at_ms = int(now_s * 1000) if now_ms is None else now_ms
        for (owner, camera), state in sorted(self._cameras.items()):
            if state.pending and at_ms - state.since_ms >= self._alarm_after_ms:
                alarms.append(Alarm(camera, ROTATION_PENDING, state.since_ms / 1000.0,
                                    "the camera has not confirmed epoch %d for %.0f s: a viewer it revokes may "
                                    "still be watching" % (state.epoch, (at_ms - state.since_ms) / 1000.0), owner))
        return alarms
