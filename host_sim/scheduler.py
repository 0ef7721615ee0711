"""Real time with simulated time's interface: what runs the fleet over a real broker, and the
demos. ``netem.Clock`` is the simulated one (tests, the embedded default)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Any, Callable, List, Tuple

from host_sim.netem import Link

log = logging.getLogger("segbind.scheduler")


class RealTimeScheduler:
    """``netem.Clock``'s interface in wall-clock time: ``now_ms`` counts simulated
    milliseconds since ``start()``, ``speed`` of them per real millisecond.
    Callbacks run on one thread, in time order."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()
        self._queue: List[Tuple[float, int, Callable[..., Any], tuple]] = []
        self._counter = 0
        self._cond = threading.Condition()
        self._link_lock = threading.Lock()
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fleet-scheduler", daemon=True)
        self.errors = 0

    @property
    def now_ms(self) -> float:
        return (time.monotonic() - self._t0) * 1000.0 * self.speed

    def at(self, t_ms: float, callback: Callable[..., Any], *args: Any) -> None:
        with self._cond:
            heapq.heappush(self._queue, (t_ms, self._counter, callback, args))
            self._counter += 1
            self._cond.notify()

    def send(self, link: Link, callback: Callable[..., Any], *args: Any) -> None:
        with self._link_lock:
            times = link.deliveries(self.now_ms)
        for t in times:
            self.at(t, callback, *args)

    def start(self) -> "RealTimeScheduler":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(10)

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._queue:
                        wait = (self._queue[0][0] - self.now_ms) / self.speed / 1000.0
                        if wait <= 0:
                            break
                        self._cond.wait(min(wait, 0.5))
                    else:
                        self._cond.wait(0.5)
                if self._stop:
                    return
                _t, _n, callback, args = heapq.heappop(self._queue)
                self._busy = True
            try:
                callback(*args)
            except Exception:
                self.errors += 1
                log.exception("scheduled callback failed")
            finally:
                with self._cond:
                    self._busy = False
