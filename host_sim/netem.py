"""A seeded weak-network model, in simulated time: loss, delay, jitter, reordering,
duplication and disconnects.

Like Linux netem, but deterministic: the same seed and the same sends give the
same deliveries, so a simulation's results can be asserted and reproduced.
Pure code: a ``Link`` decides when (and how often) each message arrives; the
``Clock`` runs the resulting events in time order.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any, Callable, List, Tuple


@dataclass(frozen=True)
class LinkProfile:
    """How bad one direction of a link is. Times in milliseconds."""

    loss: float = 0.0            # chance a message is lost outright
    delay_ms: float = 0.0        # base one-way latency
    jitter_ms: float = 0.0       # extra latency, uniform in [0, jitter)
    reorder: float = 0.0         # chance a message is held back by reorder_ms (overtaken)
    reorder_ms: float = 0.0
    duplicate: float = 0.0       # chance a message arrives twice (a retransmission)
    outage_every_ms: float = 0.0  # mean time between disconnects (0: never)
    outage_ms: float = 0.0       # how long a disconnect lasts

    @classmethod
    def weak(cls) -> "LinkProfile":
        """A congested home uplink, as in the 2020 incident: lossy, slow, flapping."""
        return cls(loss=0.03, delay_ms=120, jitter_ms=400, reorder=0.05, reorder_ms=1500,
                   duplicate=0.03, outage_every_ms=20_000, outage_ms=3_000)


@dataclass
class LinkStats:
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    held_by_outage: int = 0


class Link:
    """One direction of a network path, deciding each message's fate from a seeded RNG.

    During an outage a message is held until the link is back when
    ``hold_during_outage`` (an MQTT client with a session or a spool resends
    it), else it is lost.
    """

    def __init__(self, profile: LinkProfile, seed: int, hold_during_outage: bool = True) -> None:
        self.profile = profile
        self.hold_during_outage = hold_during_outage
        self.stats = LinkStats()
        self._rng = random.Random(seed)
        self._outages: List[Tuple[float, float]] = []
        self._outages_until = 0.0

    def _outage_at(self, t_ms: float) -> Tuple[float, float] | None:
        p = self.profile
        if p.outage_every_ms <= 0 or p.outage_ms <= 0:
            return None
        while self._outages_until <= t_ms:  # lay out outages lazily, in order
            start = self._outages_until + self._rng.expovariate(1.0 / p.outage_every_ms)
            self._outages.append((start, start + p.outage_ms))
            self._outages_until = start + p.outage_ms
        for start, end in self._outages:
            if start <= t_ms < end:
                return start, end
        return None

    def is_up(self, t_ms: float) -> bool:
        return self._outage_at(t_ms) is None

    def deliveries(self, t_ms: float) -> List[float]:
        """Arrival times of a message sent at ``t_ms``: none (lost), one, or two (duplicated)."""
        p, rng = self.profile, self._rng
        self.stats.sent += 1
        outage = self._outage_at(t_ms)
        if outage is not None:
            if not self.hold_during_outage:
                self.stats.lost += 1
                return []
            self.stats.held_by_outage += 1
            t_ms = outage[1]
        if rng.random() < p.loss:
            self.stats.lost += 1
            return []
        arrival = t_ms + p.delay_ms + rng.random() * p.jitter_ms
        if rng.random() < p.reorder:
            self.stats.reordered += 1
            arrival += p.reorder_ms
        times = [arrival]
        if rng.random() < p.duplicate:
            self.stats.duplicated += 1
            times.append(arrival + p.delay_ms + rng.random() * (p.jitter_ms + 1))
        return times


class Clock:
    """Simulated time: callbacks run in time order (ties in the order they were scheduled)."""

    def __init__(self) -> None:
        self.now_ms = 0.0
        self._queue: List[Tuple[float, int, Callable[..., Any], tuple]] = []
        self._counter = 0

    def at(self, t_ms: float, callback: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._queue, (max(t_ms, self.now_ms), self._counter, callback, args))
        self._counter += 1

    def send(self, link: Link, callback: Callable[..., Any], *args: Any) -> None:
        """Send over ``link`` now: ``callback(*args)`` runs at each arrival."""
        for t in link.deliveries(self.now_ms):
            self.at(t, callback, *args)

    def run(self, until_ms: float = float("inf")) -> None:
        while self._queue and self._queue[0][0] <= until_ms:
            self.now_ms, _, callback, args = heapq.heappop(self._queue)
            callback(*args)
        if until_ms != float("inf"):
            self.now_ms = max(self.now_ms, until_ms)

    def __len__(self) -> int:
        return len(self._queue)
