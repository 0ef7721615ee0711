"""The relay's "streaming quality" cache, with the January 2020 bug behind a switch.

What the relay does for viewers on weak networks: every segment it relays to
an account is also kept in a cache of recent segments, and each delivery to a
viewer is tracked until the viewer's player acknowledges it (a small receipt
on ``<prefix>/acct/<account>/rx``). When no receipt comes within ``retry_ms``
(the segment was lost, or is stuck behind latency, an outage or a reordering),
the relay refills the viewer from the cache instead of waiting: the "streaming
quality" feature.

The bug (``bug=True``) is in how the cache is keyed. The correct key names
the segment completely: ``(camera, stream id, seq)``. The buggy key is what a
careless optimisation produces: the camera id hashed into a small table of
slots, plus the segment's position in the stream, ``(crc32(camera) % slots,
seq)``, with no check of which camera the entry belongs to. Two cameras of
two households that share a slot overwrite each other's entries at the same
position, and a refill for one serves the other's segment. Nothing goes wrong
while the network is good (no refills are needed); under loss and latency
the refills begin, and some of them are a stranger's video: the Xiaomi / Nest
Hub mix-up of January 2020, deterministic from the simulation's seed.

The relay never looks inside what it serves (it has no keys): only the
viewer's verifier can tell.
"""

from __future__ import annotations

import collections
import threading
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from host_sim.transport import Message


@dataclass(frozen=True)
class CacheEntry:
    camera: str
    stream_id: int
    seq: int
    payload: bytes


class StreamingQualityCache:
    """Recent relayed segments, least recently stored dropped first."""

    def __init__(self, slots: int, capacity: int = 4096, bug: bool = False) -> None:
        if slots < 1 or capacity < 1:
            raise ValueError("slots and capacity must be positive")
        self.slots = slots
        self.capacity = capacity
        self.bug = bug
        self._entries: "collections.OrderedDict[tuple, CacheEntry]" = collections.OrderedDict()

    def slot_of(self, camera: str) -> int:
        return zlib.crc32(camera.encode()) % self.slots

    def key(self, camera: str, stream_id: int, seq: int) -> tuple:
        if self.bug:
            return (self.slot_of(camera), seq)   # 2020: the camera is hashed away
        return (camera, stream_id, seq)

    def put(self, camera: str, stream_id: int, seq: int, payload: bytes) -> None:
        key = self.key(camera, stream_id, seq)
        entries = self._entries
        if key in entries:
            del entries[key]
        entries[key] = CacheEntry(camera, stream_id, seq, payload)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def get(self, camera: str, stream_id: int, seq: int) -> Optional[CacheEntry]:
        """What the cache serves for this segment (with the bug: whatever shares its key)."""
        return self._entries.get(self.key(camera, stream_id, seq))

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class RelayStats:
    tracked: int = 0          # deliveries to viewers that waited for a receipt
    receipts: int = 0         # receipts that arrived in time
    late_receipts: int = 0    # receipts for deliveries already refilled (or unknown)
    timeouts: int = 0         # deliveries with no receipt within retry_ms
    fills: int = 0            # refills served from the cache
    fills_other_camera: int = 0   # ... of a segment of another camera than the one missing
    misses: int = 0           # timeouts the cache could not serve (evicted)
    by_account: Dict[str, int] = field(default_factory=dict)  # account -> foreign fills

    def as_dict(self) -> dict:
        return {"tracked": self.tracked, "receipts": self.receipts,
                "late_receipts": self.late_receipts, "timeouts": self.timeouts,
                "fills": self.fills, "fills_other_camera": self.fills_other_camera,
                "misses": self.misses}


class QualityRelay:
    """Receipt tracking and cache refills for the cloud's relay.

    ``scheduler`` has ``now_ms`` and ``at(t_ms, callback, *args)`` (a
    ``netem.Clock`` or the fleet's real-time scheduler). ``publish(account,
    camera, payload)`` sends a refill to an account, as a segment of ``camera``
    (the cloud's ``deliver``, through its second line).
    ``digest(payload)`` names a delivery in receipts. Thread-safe.
    """

    def __init__(self, cache: StreamingQualityCache, scheduler, publish: Callable[[str, str, bytes], None],
                 digest: Callable[[bytes], bytes], retry_ms: float = 1500.0) -> None:
        self.cache = cache
        self.scheduler = scheduler
        self.publish = publish
        self.digest = digest
        self.retry_ms = retry_ms
        self.stats = RelayStats()
        self._outstanding: Dict[Tuple[str, bytes], Tuple[str, int, int]] = {}
        self._lock = threading.Lock()

    def relayed(self, camera: str, tag, payload: bytes, accounts) -> None:
        """The cloud is about to send ``payload`` (tagged ``tag``) of ``camera`` to ``accounts``."""
        d = self.digest(payload)
        with self._lock:
            self.cache.put(camera, tag.stream_id, tag.seq, payload)
            for account in accounts:
                self._outstanding[(account, d)] = (camera, tag.stream_id, tag.seq)
                self.stats.tracked += 1
        due = self.scheduler.now_ms + self.retry_ms
        for account in accounts:
            self.scheduler.at(due, self._check, account, d)

    def receipt(self, account: str, d: bytes) -> None:
        with self._lock:
            if self._outstanding.pop((account, bytes(d)), None) is None:
                self.stats.late_receipts += 1
            else:
                self.stats.receipts += 1

    def on_receipt_message(self, msg: Message) -> None:
        """Transport callback for ``<prefix>/acct/+/rx``."""
        self.receipt(msg.topic.split("/")[-2], msg.payload)

    def _check(self, account: str, d: bytes) -> None:
        with self._lock:
            missing = self._outstanding.pop((account, d), None)
            if missing is None:
                return
            self.stats.timeouts += 1
            entry = self.cache.get(*missing)
            if entry is None:
                self.stats.misses += 1
                return
            self.stats.fills += 1
            if entry.camera != missing[0]:
                self.stats.fills_other_camera += 1
                self.stats.by_account[account] = self.stats.by_account.get(account, 0) + 1
        self.publish(account, missing[0], entry.payload)

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._outstanding)
