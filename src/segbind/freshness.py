"""Is each camera's feed alive? Stale (nothing accepted for a while) or frozen (segments keep
being accepted but their capture time stands still): a live display raises an alarm.

Sans-I/O: fed the verdicts' tags and the display's clock, it says which alarms stand.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from .verdict import TagInfo

__all__ = ["Alarm", "FeedWatch"]

STALE = "stale"
FROZEN = "frozen"
NO_GRANT = "no_grant"  # segments of the camera arrive, but this display holds no key for them


class Alarm(NamedTuple):
    camera: str
    kind: str        # "stale" or "frozen"
    since_s: float   # the display clock's time from which the feed is judged so
    detail: str


class _Feed:
    __slots__ = ("since_s", "last_accept_s", "newest_capture_ms", "advanced_s", "ungranted_s")

    def __init__(self, now_s: float) -> None:
        self.since_s = now_s               # watched from
        self.last_accept_s: Optional[float] = None
        self.newest_capture_ms = -1
        self.advanced_s = now_s            # when the newest capture time last moved forward
        self.ungranted_s: Optional[float] = None  # when a segment last came that no grant opens


class FeedWatch:
    """Alarms for the cameras a display is granted: ``stale_s`` without an accepted segment
    (from when it started watching, or from the last one), or ``frozen_s`` with segments
    accepted but no capture time newer than the newest seen."""

    def __init__(self, stale_s: float = 10.0, frozen_s: float = 10.0) -> None:
        self.stale_s = stale_s
        self.frozen_s = frozen_s
        self._feeds: Dict[str, _Feed] = {}

    def watch(self, cameras: List[str], now_s: float) -> None:
        """Watch ``cameras`` (the keyring's, as grants change); others are kept only while
        their segments arrive without a grant."""
        for camera in cameras:
            if camera not in self._feeds:
                self._feeds[camera] = _Feed(now_s)
        for camera in [c for c, f in self._feeds.items() if c not in cameras and f.ungranted_s is None]:
            del self._feeds[camera]

    def accepted(self, tag: TagInfo, now_s: float) -> None:
        feed = self._feeds.get(tag.camera)
        if feed is None:
            feed = self._feeds[tag.camera] = _Feed(now_s)
        feed.last_accept_s = now_s
        if tag.capture_ms > feed.newest_capture_ms:
            feed.newest_capture_ms = tag.capture_ms
            feed.advanced_s = now_s

    def ungranted(self, camera: str, now_s: float) -> None:
        """A segment of ``camera`` arrived that no key of this display opens (``no_grant``)."""
        feed = self._feeds.get(camera)
        if feed is None:
            feed = self._feeds[camera] = _Feed(now_s)
        feed.ungranted_s = now_s

    def check(self, now_s: float) -> List[Alarm]:
        alarms = []
        for camera, feed in sorted(self._feeds.items()):
            if feed.ungranted_s is not None and (feed.last_accept_s is None or feed.last_accept_s < feed.ungranted_s):
                alarms.append(Alarm(camera, NO_GRANT, feed.ungranted_s,
                                    "segments arrive that this display holds no key for"))
                continue
            last = feed.last_accept_s if feed.last_accept_s is not None else feed.since_s
            if now_s - last > self.stale_s:
                alarms.append(Alarm(camera, STALE, last, "nothing accepted for %.0f s" % (now_s - last)))
            elif feed.last_accept_s is not None and now_s - feed.advanced_s > self.frozen_s:
                alarms.append(Alarm(camera, FROZEN, feed.advanced_s,
                                    "segments accepted, but none captured after %d ms for %.0f s"
                                    % (feed.newest_capture_ms, now_s - feed.advanced_s)))
        return alarms
