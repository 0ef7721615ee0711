"""The demo's households on the reference cloud: alice, and a stranger, eve.

What the browser display's demo and tests run, every part the real one: an
in-process broker (``host_sim.transport.InProcessBus``), the reference cloud
(``host_sim.cloud.Cloud``: routing, relay, second line, the displays' sealed
grants; no key), each account's owner's app (``host_sim.app.OwnerApp`` over
``segbind.owner.Owner``) and cameras running the agent core
(``host_sim.fleet_camera.FleetCamera``) on one scheduler, each paired by its owner's app
out of band. A camera looks at a scene of its own colour (real libx264) and sends
one segment a second: alice's are red and blue, eve's green and yellow, and each
of eve's shares a slot of the buggy edge cache (``host_sim.web.Faults``) with one
of alice's. Each camera first records a short stream and ends it (the cloud keeps
it as the camera's recording), then streams live.

    world = Households(RealTimeScheduler().start()).start()    # or a netem.Clock: simulated time
    with WebCloud(world.cloud, Faults(cache_2020=True)) as web:
        print(web.url + "/a/alice/display?display=alice-tv")
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from host_sim.app import OwnerApp
from host_sim.cloud import Cloud, CloudFaults, RoutingStore
from host_sim.fleet_camera import FleetCamera
from host_sim.netem import Link, LinkProfile
from host_sim.plan import CameraPlan, FleetConfig
from host_sim.transport import InProcessBus
from segbind.grants import Account
from segbind.owner import Owner
from segbind_core import control, topics
from segbind_core.segment import Segment, Segmenter

RGB = Tuple[int, int, int]
RED, BLUE, GREEN, YELLOW = (200, 30, 30), (30, 60, 200), (30, 170, 60), (210, 190, 30)
RECORDING = 4      # segments each camera records (and ends) before it streams live
RECENT = 30        # segments the cloud keeps of each camera for live HLS
SLOTS = 4          # the buggy edge cache's slots the cameras are picked for (host_sim.web.Faults)
DAY_S = 24 * 3600  # how long the cameras stream live
TICK_MS = 1000     # how often the owners' apps look at the time


def colour_scene(colour: RGB, width: int = 320, height: int = 192, frames: int = 100, fps: int = 25,
                 gop: int = 25) -> List[bytes]:
    """A camera's scene as its encoder writes it, one second a piece: a flat colour with a white
    square moving across it (real libx264, an IDR every second; encoded once, cached)."""
    import numpy as np

    from host_sim import clips

    def frame(i: int) -> Any:
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[:] = colour
        x = (i * 6) % (width - 32)
        rgb[height // 2 - 16:height // 2 + 16, x:x + 32] = 255
        return rgb

    video = clips.encode_pyav(frames=frames, width=width, height=height, fps=fps, gop=gop,
                              frame_source=frame, source_id="scene-%02x%02x%02x" % colour)
    segmenter = Segmenter()
    return [s.data for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment)]


def colliding_camera(slots: int, camera: str, prefix: str = "cam-") -> str:
    """A camera id that shares ``camera``'s slot in the buggy edge cache."""
    want = zlib.crc32(camera.encode()) % slots
    for i in range(10_000):
        name = "%s%d" % (prefix, i)
        if name != camera and zlib.crc32(name.encode()) % slots == want:
            return name
    raise ValueError("no colliding id found")


@dataclass
class Household:
    """An account: its owner's app (which holds its keys) and its cameras, each with its scene's colour."""

    app: OwnerApp
    cameras: List[FleetCamera]
    colours: Dict[str, RGB]

    @property
    def name(self) -> str:
        return self.app.name

    @property
    def account(self) -> Account:
        return self.app.owner.account


class Households:
    """alice (a red and a blue camera) and eve (green, yellow) on one reference cloud.

    ``scheduler``: a started ``host_sim.scheduler.RealTimeScheduler`` (capture times are the
    wall clock's) or a ``netem.Clock`` (simulated time from ``base_ms``, by default now).
    ``faults`` and ``second_line`` are the cloud's. ``recording``: segments of the stream
    each camera records first (0: none).
    """

    def __init__(self, scheduler: Any, *, faults: Optional[CloudFaults] = None, second_line: bool = True,
                 recording: int = RECORDING, base_ms: Optional[int] = None) -> None:
        self.scheduler = scheduler
        self.recording = recording
        self.base_ms = int(time.time() * 1000 - scheduler.now_ms) if base_ms is None else base_ms
        self.bus = InProcessBus()
        self.cloud = Cloud(self.bus.transport("cloud"), RoutingStore(), faults=faults, second_line=second_line,
                           recent=RECENT, recording_max=recording).start()
        self.config = FleetConfig(cameras=4, seconds=DAY_S, segment_ms=1000)
        self.cameras: List[FleetCamera] = []
        front = "alice-front"
        garden = next(name for name in ("alice-garden", "alice-door", "alice-back", "alice-hall")
                      if zlib.crc32(name.encode()) % SLOTS != zlib.crc32(front.encode()) % SLOTS)
        self.alice = self._household("alice", [(front, RED), (garden, BLUE)])
        self.eve = self._household("eve", [(colliding_camera(SLOTS, c, "eve-cam-"), colour)
                                           for c, colour in ((front, GREEN), (garden, YELLOW))])

    def clock_s(self) -> float:
        return (self.base_ms + self.scheduler.now_ms) / 1000.0

    def _household(self, name: str, cameras: Sequence[Tuple[str, RGB]]) -> Household:
        app = OwnerApp(self.bus.transport("app-" + name), Owner.new(name, test_only=True), clock=self.clock_s).start()
        household = Household(app, [], {})
        for camera, colour in cameras:
            household.cameras.append(self._camera(app, camera, colour))
            household.colours[camera] = colour
        return household

    def _camera(self, app: OwnerApp, camera: str, colour: RGB) -> FleetCamera:
        """A camera running the agent core, paired by ``app`` out of band."""
        seed = len(self.cameras) + 1
        plan = CameraPlan(camera, app.name, [], 0, 0.0, False, seed, "factory-" + camera)
        cam = FleetCamera(plan, self.config, colour_scene(colour), self.bus.transport(camera).start(),
                          self.scheduler, Link(LinkProfile(), seed), topics.TOPIC_PREFIX,
                          base_ms=self.base_ms, first_stream=self.recording)
        self.cloud.provision(camera, plan.identity)
        cam.begin()
        app.pair(camera, cam.handover)  # the offer goes by the camera's lens, never the cloud
        self._until(lambda: (app.result_for(camera, control.PAIR) is not None
                             and self.cloud.routing.owner.get(camera) == app.name), "%s paired" % camera)
        result = app.result_for(camera, control.PAIR)
        if result is None or result.status != control.OK:
            raise RuntimeError("%s refused its pairing: %s" % (camera, result))
        self.cameras.append(cam)
        return cam

    @staticmethod
    def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for %s" % what)
            time.sleep(0.05)

    def start(self) -> "Households":
        """Every camera starts its video now (all in step: one segment each, every second), and
        each owner's app ticks every second of the scheduler's time (renewals ahead of each
        period, pending rotations sent again): a day's run keeps its keys."""
        for cam in self.cameras:
            cam.start_video(self.scheduler.now_ms)
        self.scheduler.at(self.scheduler.now_ms + TICK_MS, self._tick)
        return self

    def _tick(self) -> None:
        for household in (self.alice, self.eve):
            household.app.tick()
        if not all(cam.done for cam in self.cameras):
            self.scheduler.at(self.scheduler.now_ms + TICK_MS, self._tick)

    def live(self, household: Household, camera: str) -> int:
        """Segments of the camera's live stream the cloud holds for its owner (up to its window)."""
        if self.recording and not self.cloud.recording(household.name, camera):
            return 0
        return len(self.cloud.segments(household.name, camera)) - self.recording

    def wait_live(self, segments: int = 3, timeout: float = 60.0) -> "Households":
        """Wait (real time) until every camera's recording is at the cloud and ``segments`` of its
        live stream after it."""
        self._until(lambda: all(self.live(h, c.name) >= segments for h in (self.alice, self.eve) for c in h.cameras),
                    "%d live segments of every camera" % segments, timeout)
        return self

    def stop(self) -> None:
        stop = getattr(self.scheduler, "stop", None)
        if stop is not None:
            stop()
        self.cloud.stop()
