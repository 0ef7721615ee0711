"""The 2020 incident, reproduced and defeated: a fleet of cameras, a relay with a
"streaming quality" cache, and one display per account, over a weak network.

    python3 -m host_sim.fleet                       # 24 cameras, 60 s, in-process, simulated time
    python3 -m host_sim.fleet --cameras 1044        # the incident's scale
    python3 -m host_sim.fleet --broker local        # the same over a private Mosquitto, real time
    python3 -m host_sim.fleet --broker mqtt://127.0.0.1:1883 --seconds 20

Every camera is bound to its own owner (some are shared with a second
account) and tags its own copy of real H.264 (a few libx264 clips, encoded
once and cached) with its own ``Tagger``. Camera uplinks and display
downlinks are seeded ``netem`` links (loss, delay, jitter, reordering,
duplication, outages); a camera holds what it cannot send in a bounded spool.
The cloud (``host_sim.cloud.Cloud``) relays each segment to the accounts
granted it, and its quality relay (``host_sim.cache``) refills viewers whose
receipts do not come back in time, from a cache that, with ``--bug``, is
keyed the 2020 way and serves some viewers a stranger's segments.

Each display (``host_sim.display.Display``) verifies every segment it
receives with the segbind library and shows only what is bound to it. The
same deliveries are also counted as a display without verification would
show them, so one run gives both columns of the table. The ground truth (which
camera really produced each delivered byte string) comes from a ledger the
cameras fill as they tag, never from the tag itself. docs/FLEET.md defines
every number.

In-process (the default) runs in simulated time on a ``netem.Clock``: fast
and deterministic (the same seed gives the same results, byte for byte).
``--broker`` runs the same fleet over MQTT in real time (``--speed`` scales
it), through Mosquitto, with the same invariants but not the same numbers.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import heapq
import logging
import random
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from host_sim import clips
from host_sim.cache import CacheRouter, QualityRelay, StreamingQualityCache
from host_sim.cloud import Cloud
from host_sim.display import Display
from host_sim.netem import Clock, Link, LinkProfile
from host_sim.transport import ImpairedTransport, InProcessBus, Message, MqttTransport
from segbind import Keyring, Reason, StreamVerifier
from segbind.controlplane import CameraRecord, Registry
from segbind_agent.core import (
    AgentCore,
    AgentSettings,
    BindingState,
    Delete,
    DeviceKeys,
    Publish,
    Send,
    Store,
)
from segbind_core import topics
from segbind_core.segment import cut

log = logging.getLogger("segbind.fleet")

# 2020-01-01T00:00:00Z: capture times and stream ids of the simulated cameras start here.
BASE_MS = 1_577_836_800_000
# Over MQTT one process carries every camera, the cloud and every display: on two cores it
# keeps up in real time with about this many cameras (larger fleets run slower by default).
REALTIME_CAMERAS = 300

GOOD = LinkProfile(loss=0.002, delay_ms=30, jitter_ms=40, duplicate=0.002)
WEAK = LinkProfile.weak()


@dataclass
class FleetConfig:
    cameras: int = 24
    seconds: int = 60
    seed: int = 1
    bug: bool = True
    share: float = 0.25           # fraction of cameras shared with a second account
    weak_cameras: float = 0.3     # fraction of camera uplinks on a weak link
    weak_displays: float = 0.35   # fraction of display downlinks on a weak link
    segment_ms: int = 1000
    clips: int = 24               # distinct scenes (at most one per camera), one clip each
    clip_segments: int = 10       # each clip is this many segments long, looped
    width: int = 128
    height: int = 72
    fps: int = 25
    spool: int = 30               # segments a camera holds while its uplink is down
    retry_ms: float = 1500.0      # the quality relay's receipt timeout
    cache_slots: int = 0          # 0: half the number of cameras (at least 2)
    cache_capacity: int = 0       # 0: 16 entries per camera (at least 1024)
    good: LinkProfile = GOOD
    weak: LinkProfile = WEAK
    broker: Optional[str] = None  # None: in-process, simulated time; "host:port" or "local"
    speed: float = 1.0            # real-time runs: simulated ms per wall ms
    pool: int = 8                 # real-time runs: MQTT connections for cameras, and for displays
    samples: int = 4              # segments each display keeps for the picture

    @property
    def slots(self) -> int:
        return self.cache_slots or max(2, self.cameras // 2)

    @property
    def capacity(self) -> int:
        return self.cache_capacity or max(1024, 16 * self.cameras)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cache_slots"], d["cache_capacity"] = self.slots, self.capacity
        d["transport"] = "mqtt" if self.broker else "in-process"
        return d


# ------------------------------------------------------------------------------------------
# The plan: who owns what, who shares what, who is on a weak link
# ------------------------------------------------------------------------------------------

@dataclass
class CameraPlan:
    name: str
    owner: str
    viewers: List[str]
    secret: bytes
    clip: int
    phase_ms: float
    stream_id: int
    weak: bool
    link_seed: int


@dataclass
class AccountPlan:
    name: str
    cameras: List[str]            # every camera the account is granted (owned or shared)
    weak: bool
    link_seed: int
    back_seed: int


@dataclass
class Plan:
    cameras: List[CameraPlan]
    accounts: List[AccountPlan]

    @property
    def shares(self) -> int:
        return sum(len(c.viewers) for c in self.cameras)


def make_plan(cfg: FleetConfig) -> Plan:
    if cfg.cameras < 1 or cfg.seconds < 1:
        raise ValueError("a fleet needs at least one camera and one second")
    rng = random.Random(cfg.seed)
    width = max(4, len(str(cfg.cameras)))
    names = ["cam-%0*d" % (width, i + 1) for i in range(cfg.cameras)]
    owners = ["acct-%0*d" % (width, i + 1) for i in range(cfg.cameras)]
    shared = set(rng.sample(range(cfg.cameras), round(cfg.share * cfg.cameras))) if cfg.cameras > 1 else set()
    cameras = []
    for i, name in enumerate(names):
        viewers = [owners[(i + 1) % cfg.cameras]] if i in shared else []
        secret = hashlib.sha256(b"segbind fleet simulation only/%d/%s" % (cfg.seed, name.encode())).digest()
        cameras.append(CameraPlan(name, owners[i], viewers, secret, i % min(cfg.clips, cfg.cameras),
                                  rng.uniform(0, cfg.segment_ms), BASE_MS + i,
                                  rng.random() < cfg.weak_cameras, rng.getrandbits(32)))
    granted: Dict[str, List[str]] = {a: [] for a in owners}
    for cam in cameras:
        for account in [cam.owner] + cam.viewers:
            granted[account].append(cam.name)
    accounts = [AccountPlan(a, granted[a], rng.random() < cfg.weak_displays, rng.getrandbits(32),
                            rng.getrandbits(32)) for a in owners]
    return Plan(cameras, accounts)


def registry_for(plan: Plan) -> Registry:
    """The cloud's registry: every camera claimed by its owner at epoch 1, shares granted."""
    reg = Registry()
    for cam in plan.cameras:
        rec = CameraRecord(cam.name, cam.secret)
        rec.owner, rec.viewers = cam.owner, list(cam.viewers)
        rec.epoch = rec.epoch_hwm = rec.counter = 1
        rec.history = [{"owner": cam.owner, "epoch": 1, "audience": rec.audience}]
        reg.cameras[cam.name] = rec
    return reg


# Each household's camera looks at its own scene (numbered in the frame), so a person can
# tell them apart in the picture: (name, top colour, bottom colour, moving object's colour).
# Scenes 9 to 24 vary these eight. No pure red: the
# picture marks refused segments in red.
SCENES = [
    ("kitchen", (250, 222, 160), (196, 118, 60), (40, 60, 200)),
    ("garden", (125, 200, 255), (40, 140, 40), (255, 255, 255)),
    ("nursery", (255, 205, 225), (196, 120, 180), (60, 160, 60)),
    ("garage", (150, 160, 170), (60, 70, 80), (255, 200, 0)),
    ("porch at night", (12, 22, 64), (34, 34, 44), (255, 255, 170)),
    ("living room", (240, 240, 228), (160, 130, 100), (30, 120, 200)),
    ("office", (200, 230, 200), (90, 120, 90), (120, 0, 160)),
    ("hallway", (230, 200, 120), (120, 80, 40), (0, 170, 170)),
]
_SEGMENTS7 = {"0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd",
              "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg"}


def _digit(frame, ch: str, x: int, y: int, w: int, h: int, t: int, color) -> None:
    half = h // 2
    boxes = {"a": (x, y, x + w, y + t), "d": (x, y + h - t, x + w, y + h),
             "g": (x, y + half - t // 2, x + w, y + half - t // 2 + t),
             "f": (x, y, x + t, y + half), "b": (x + w - t, y, x + w, y + half),
             "e": (x, y + half, x + t, y + h), "c": (x + w - t, y + half, x + w, y + h)}
    for seg in _SEGMENTS7[ch]:
        x0, y0, x1, y1 = boxes[seg]
        frame[y0:y1, x0:x1] = color


def scene_frame(k: int, i: int, width: int, height: int):
    """Frame ``i`` of scene ``k``: its colours, a window, a moving object and its number."""
    import numpy as np

    _name, top, bottom, obj = SCENES[k % len(SCENES)]
    variant = (k // len(SCENES)) % 3
    if variant == 1:
        top, bottom = bottom, top
    elif variant == 2:
        bottom = SCENES[(k + 3) % len(SCENES)][2]
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    frame = (np.array(top) * (1 - ramp) + np.array(bottom) * ramp).repeat(width, axis=1)
    frame = frame.astype(np.uint8)
    wx, wy = (width * 5 // 8 if variant != 1 else width * 3 // 8), height // 8
    frame[wy:wy + height // 3, wx:wx + width // 4] = (235, 245, 255) if top != SCENES[4][1] else (60, 60, 90)
    r = max(3, height // 9)
    cx = int((i * 3 + k * 17) % (width + 2 * r)) - r
    cy = int(height * 0.65 + (height // 6) * np.sin(i / 7.0 + k))
    yy, xx = np.ogrid[0:height, 0:width]
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = obj
    dh = max(10, height // 3)
    dw, t = max(6, dh * 5 // 9), max(2, dh // 7)
    frame[2:dh + 6, 2:2 * dw + 12] = (20, 20, 20)
    for n, ch in enumerate("%02d" % (k + 1)):
        _digit(frame, ch, 5 + n * (dw + 4), 4, dw, dh, t, (255, 255, 255))
    rng = np.random.default_rng(k * 100_003 + i)
    noise = rng.integers(0, 10, size=frame.shape, dtype=np.uint8)
    return np.minimum(frame.astype(np.uint16) + noise, 255).astype(np.uint8)


def scene_clip(k: int, frames: int, width: int, height: int, fps: int, gop: int) -> bytes:
    """Annex-B H.264 of scene ``k`` from libx264 through PyAV (host_sim.clips, cached)."""
    return clips.encode_pyav(frames=frames, width=width, height=height, fps=fps, gop=gop,
                             frame_source=lambda i: scene_frame(k, i, width, height),
                             source_id="fleet-scene-v1-%d" % k)


def clip_templates(cfg: FleetConfig) -> List[List[bytes]]:
    """Each scene's clip cut into segments (Annex-B), one segment period of encoder output each."""
    gop = max(1, cfg.fps * cfg.segment_ms // 1000)
    out = []
    for k in range(min(cfg.clips, cfg.cameras)):
        video = scene_clip(k, gop * cfg.clip_segments, cfg.width, cfg.height, cfg.fps, gop)
        segments = []
        for segment in cut(video):
            segments.append(segment.data)
        out.append(segments)
    return out


# ------------------------------------------------------------------------------------------
# Ground truth
# ------------------------------------------------------------------------------------------

class Ledger:
    """What each camera really produced, by a digest of the exact bytes it published.

    The simulation's omniscient record, used only to count results (a display's
    verifier never sees it): a delivered byte string is the segment of the camera
    recorded here, whatever its tag or the relay claims.
    """

    def __init__(self) -> None:
        self._origin: Dict[bytes, Tuple[str, int, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def digest(payload: bytes) -> bytes:
        return hashlib.sha256(payload).digest()[:16]

    def record(self, payload: bytes, camera: str, stream_id: int, seq: int) -> None:
        with self._lock:
            self._origin[self.digest(payload)] = (camera, stream_id, seq)

    def origin(self, d: bytes) -> Optional[Tuple[str, int, int]]:
        return self._origin.get(d)


# ------------------------------------------------------------------------------------------
# Time: simulated (netem.Clock) or real (a scheduler thread with the same interface)
# ------------------------------------------------------------------------------------------

class RealTimeScheduler:
    """``netem.Clock``'s interface in wall-clock time: ``now_ms`` counts simulated
    milliseconds since ``start()``, ``speed`` of them per real millisecond.
    Callbacks run on one thread, in time order."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()
        self._queue: list = []
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

    def at(self, t_ms: float, callback: Callable, *args) -> None:
        with self._cond:
            heapq.heappush(self._queue, (t_ms, self._counter, callback, args))
            self._counter += 1
            self._cond.notify()

    def send(self, link: Link, callback: Callable, *args) -> None:
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


# ------------------------------------------------------------------------------------------
# Cameras
# ------------------------------------------------------------------------------------------

class FleetCamera:
    """One camera: the real agent core (``segbind_agent.core.AgentCore``) fed its clip one
    segment's worth of encoder bytes every ``segment_ms``, its spool in memory, its uplink a
    ``netem`` link. Segments the core sends go out over the link (lost, delayed, duplicated
    or held by an outage); a link outage is a lost connection, during which the core keeps
    what it tags in its spool (``spool`` segments at most, the oldest dropped first)."""

    def __init__(self, plan: CameraPlan, cfg: FleetConfig, templates: List[bytes], transport,
                 scheduler, uplink: Link, ledger: Ledger, prefix: str, claimed: bool = True) -> None:
        self.plan = plan
        self.name = plan.name
        self.cfg = cfg
        self.templates = templates
        self.transport = transport
        self.scheduler = scheduler
        self.uplink = uplink
        self.ledger = ledger
        self.prefix = prefix
        self.topic = topics.camera_topic(plan.name, topics.SEG, prefix)
        state = BindingState(plan.name)
        if claimed:  # claimed by its owner at epoch 1 before the run
            state.owner, state.epoch, state.epoch_hwm, state.counter = plan.owner, 1, 1, 1
        settings = AgentSettings(max_duration_s=4.0, spool_max_segments=cfg.spool,
                                 publish_window=cfg.spool, health_interval_s=10 ** 9)
        self.core = AgentCore(plan.name, DeviceKeys(plan.secret, plan.name), state, settings)
        self.stored: Dict[int, bytes] = {}  # the spool's bytes, by index
        self.total = cfg.seconds * 1000 // cfg.segment_ms
        self.fed = 0
        self.handed = 0         # handed to the uplink
        self.published = 0      # copies that reached the broker/bus (duplicates included)
        self.spool_max = 0
        self.done = False

    @property
    def produced(self) -> int:
        return self.core.counts["segments_tagged"]

    @property
    def spool_dropped(self) -> int:
        return self.core.spool.dropped_total

    def start(self, offset_ms: float = 0.0) -> None:
        self.transport.subscribe(topics.camera_topic(self.name, topics.CTL, self.prefix),
                                 self._on_command)
        self.scheduler.at(offset_ms + self.plan.phase_ms, self._first_tick)

    def _on_command(self, msg: Message) -> None:
        self._carry_out(self.core.command(msg.payload, BASE_MS + int(self.scheduler.now_ms)))
        msg.ack()

    def _first_tick(self) -> None:
        now = self.scheduler.now_ms
        self._carry_out(self.core.start(BASE_MS + int(now), stream_id=self.plan.stream_id))
        self._tick()

    def _tick(self) -> None:
        now = self.scheduler.now_ms
        clock = BASE_MS + int(now)
        up = self.uplink.is_up(now)
        if up != self.core.connected:
            self._carry_out(self.core.connection(up, clock))
        if self.fed < self.total:
            data = self.templates[self.fed % len(self.templates)]
            self.fed += 1
            self._carry_out(self.core.encoder_bytes(data, clock))
            if self.fed == self.total:
                self._carry_out(self.core.encoder_end(clock))
        if self.fed < self.total or len(self.core.spool):
            self.scheduler.at(now + self.cfg.segment_ms, self._tick)
        else:
            self.done = True

    def _carry_out(self, actions: list) -> None:
        """The core's actions, in order; what a delivery brings comes after them."""
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Store):
                self.stored[action.entry.index] = action.payload
                self.ledger.record(action.payload, self.name, action.entry.stream_id,
                                   action.entry.seq)
                self.spool_max = max(self.spool_max, len(self.core.spool))
            elif isinstance(action, Delete):
                self.stored.pop(action.index, None)
            elif isinstance(action, Send):
                # The MQTT client takes it; what the weak link does to it happens below it.
                entry = action.entry
                self.handed += 1
                self.scheduler.send(self.uplink, self._publish, self.stored[entry.index], entry)
                pending += self.core.delivered(entry.index, True)
            elif isinstance(action, Publish):
                self.transport.publish(topics.camera_topic(self.name, action.leaf, self.prefix),
                                       action.payload, 1, action.retain)

    def _publish(self, payload: bytes, entry) -> None:
        self.published += 1
        self.transport.publish(self.topic, payload, 1, False,
                               {"stream": entry.stream_id, "seq": entry.seq, "epoch": entry.epoch})


# ------------------------------------------------------------------------------------------
# Displays
# ------------------------------------------------------------------------------------------

class TimedVerifier(StreamVerifier):
    """A StreamVerifier that counts its calls and the CPU time (of its thread) they take."""

    def __init__(self, keyring: Keyring) -> None:
        super().__init__(keyring)
        self.calls = 0
        self.cpu_s = 0.0

    def verify(self, segment):
        t0 = time.thread_time()
        verdict = super().verify(segment)
        self.cpu_s += time.thread_time() - t0
        self.calls += 1
        return verdict


_LATE = (Reason.DUPLICATE, Reason.OUT_OF_ORDER, Reason.REPLAY, Reason.CHAIN_BREAK)


class FleetDisplay(Display):
    """A ``Display`` (verifies with the library, shows only accepted segments) that
    also counts, against the ledger's ground truth, what it showed and what a
    display without verification would have shown from the same deliveries."""

    def __init__(self, transport, account: str, granted, ledger: Ledger, prefix: str,
                 samples: int = 4) -> None:
        super().__init__(transport, account, prefix=prefix)
        self.verifier = TimedVerifier(self.keyring)
        self.granted = frozenset(granted)
        self.ledger = ledger
        self.max_samples = samples
        self.delivered = 0
        self.delivered_foreign = 0
        self.unknown = 0
        self.shown_foreign = 0            # verification on: accepted, yet not granted (must stay 0)
        self.foreign_refused = 0
        self.refused_own = collections.Counter()   # reason -> own segments refused
        self.false_rejects: List[dict] = []
        self.foreign_reasons = collections.Counter()
        self.on_seen: Dict[str, set] = {c: set() for c in self.granted}   # (stream, seq) shown, by camera
        self.on_newest: Dict[str, Tuple[int, int]] = {}
        self.off_seen: Dict[str, set] = {c: set() for c in self.granted}
        self.foreign_from: collections.Counter = collections.Counter()    # camera -> deliveries
        self.samples_own: List[tuple] = []      # (payload, camera, seq)
        self.samples_foreign: List[tuple] = []  # (payload, camera, seq, reason)

    @property
    def verify_calls(self) -> int:
        return self.verifier.calls

    def _on_segment(self, msg: Message) -> None:
        payload = msg.payload
        d = self.ledger.digest(payload)
        origin = self.ledger.origin(d)
        super()._on_segment(msg)
        verdict = self.verdicts[-1]
        self.delivered += 1
        own = origin is not None and origin[0] in self.granted
        if origin is None:
            self.unknown += 1
        if not own:
            self.delivered_foreign += 1
            if origin is not None:
                self.foreign_from[origin[0]] += 1
        else:
            self.off_seen[origin[0]].add(origin[1:])
        if verdict.accepted:
            if own:
                camera, pos = origin[0], origin[1:]
                self.on_seen[camera].add(pos)
                if pos > self.on_newest.get(camera, (-1, -1)):
                    self.on_newest[camera] = pos
                if len(self.samples_own) < self.max_samples and origin[2] % 3 == 2:
                    self.samples_own.append((payload, camera, origin[2]))
            else:
                self.shown_foreign += 1
        elif own:
            camera, pos = origin[0], origin[1:]
            self.refused_own[verdict.reason.value] += 1
            late = pos in self.on_seen[camera] or pos < self.on_newest.get(camera, (-1, -1))
            if not late:
                self.false_rejects.append({"camera": camera, "stream": pos[0], "seq": pos[1],
                                           "reason": verdict.reason.value, "detail": verdict.detail})
        else:
            self.foreign_refused += 1
            self.foreign_reasons[verdict.reason.value] += 1
            if len(self.samples_foreign) < self.max_samples - 1 and origin is not None:
                self.samples_foreign.append((payload, origin[0], origin[2], verdict.reason.value))
        ack = getattr(self.transport, "ack", None)
        if ack is not None:
            ack(d)

    def gaps(self, produced: Dict[str, int], off: bool = False) -> int:
        seen = self.off_seen if off else self.on_seen
        return sum(produced[c] - len(seen[c]) for c in self.granted)


# ------------------------------------------------------------------------------------------
# The fleet
# ------------------------------------------------------------------------------------------

class Progress:
    """A one-line bar on a terminal, a line every 10 % otherwise."""

    def __init__(self, total_ms: float, label: str, stream=None, enabled: bool = True) -> None:
        self.total_ms = max(1.0, total_ms)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_wall = 0.0
        self._last_decile = -1

    def update(self, now_ms: float, verified: int) -> None:
        if not self.enabled:
            return
        frac = min(1.0, max(0.0, now_ms / self.total_ms))
        if self.tty:
            wall = time.monotonic()
            if wall - self._last_wall < 0.1 and frac < 1.0:
                return
            self._last_wall = wall
            n = int(frac * 30)
            self.stream.write("\r%s [%s%s] %3d%%  %5.0f/%.0f s  %d segments verified " % (
                self.label, "#" * n, "." * (30 - n), frac * 100, now_ms / 1000,
                self.total_ms / 1000, verified))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                print("%s %3d%%  %.0f/%.0f s, %d segments verified" % (
                    self.label, decile * 10, now_ms / 1000, self.total_ms / 1000, verified),
                    file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Fleet:
    """Builds and runs one fleet; ``run()`` returns the result dictionary."""

    def __init__(self, cfg: FleetConfig, progress: bool = False, progress_stream=None) -> None:
        self.cfg = cfg
        self.show_progress = progress
        self.progress_stream = progress_stream
        self.plan = make_plan(cfg)
        self.ledger = Ledger()
        self.cameras: List[FleetCamera] = []
        self.displays: List[FleetDisplay] = []
        self.impaired: List[ImpairedTransport] = []
        self.links: Dict[str, List[Tuple[bool, Link]]] = {"uplink": [], "downlink": [], "receipts": []}
        self.incomplete = False

    # -- building ------------------------------------------------------------------------------

    def _build(self, scheduler, prefix: str, cloud_transport, camera_transports, display_transports,
               shared_displays: bool) -> None:
        cfg, plan = self.cfg, self.plan
        self.scheduler = scheduler
        self.prefix = prefix
        self.registry = registry_for(plan)
        self.cache = StreamingQualityCache(cfg.slots, cfg.capacity, bug=cfg.bug)
        cloud_holder: list = []

        def publish(account: str, payload: bytes, props: dict) -> None:
            cloud_holder[0].transport.publish(topics.account_topic(account, topics.SEG, prefix),
                                              payload, qos=1, user_properties=props)

        self.relay = QualityRelay(self.cache, scheduler, publish, Ledger.digest, cfg.retry_ms)
        self.router = CacheRouter(self.relay)
        self.cloud = Cloud(cloud_transport, self.registry, router=self.router, prefix=prefix)
        cloud_holder.append(self.cloud)
        cloud_transport.subscribe(topics.every_account(topics.RECEIPTS, prefix),
                                  self.relay.on_receipt_message)
        self.cloud.start()

        for i, acct in enumerate(plan.accounts):
            profile = cfg.weak if acct.weak else cfg.good
            down, back = Link(profile, acct.link_seed), Link(profile, acct.back_seed)
            self.links["downlink"].append((acct.weak, down))
            self.links["receipts"].append((acct.weak, back))
            transport = ImpairedTransport(
                display_transports(i, acct.name), scheduler, down, back,
                topics.account_topic(acct.name, topics.SEG, prefix),
                topics.account_topic(acct.name, topics.RECEIPTS, prefix), shared=shared_displays)
            self.impaired.append(transport)
            display = FleetDisplay(transport, acct.name, acct.cameras, self.ledger, prefix, cfg.samples)
            display.start()
            self.displays.append(display)

        templates = self.templates
        for i, cam in enumerate(plan.cameras):
            uplink = Link(cfg.weak if cam.weak else cfg.good, cam.link_seed)
            self.links["uplink"].append((cam.weak, uplink))
            self.cameras.append(FleetCamera(cam, cfg, templates[cam.clip], camera_transports(i, cam.name),
                                          scheduler, uplink, self.ledger, prefix))

    def verified(self) -> int:
        return sum(d.verify_calls for d in self.displays)

    # -- running -------------------------------------------------------------------------------

    def run(self) -> dict:
        cfg = self.cfg
        t_setup = time.monotonic()
        self.templates = clip_templates(cfg)
        self.setup_s = time.monotonic() - t_setup
        if cfg.broker:
            return self._run_mqtt()
        return self._run_in_process()

    def _run_in_process(self) -> dict:
        cfg = self.cfg
        clock = Clock()
        bus = InProcessBus()
        self.bus = bus
        self._build(clock, topics.TOPIC_PREFIX, bus.transport("cloud"),
                    lambda i, name: bus.transport(name).start(),
                    lambda i, name: bus.transport("display-" + name), shared_displays=False)
        end_ms = cfg.seconds * 1000.0 + 1000.0  # the cameras start at 1 s
        progress = Progress(end_ms, "fleet", self.progress_stream, self.show_progress)

        def tick() -> None:
            progress.update(clock.now_ms, self.verified())
            if clock.now_ms < end_ms:
                clock.at(clock.now_ms + 1000, tick)

        wall0, cpu0 = time.monotonic(), time.process_time()
        for cam in self.cameras:
            cam.start(1000.0)
        clock.at(0, tick)
        clock.run()
        progress.update(end_ms, self.verified())
        progress.finish()
        self.wall_s, self.cpu_s = time.monotonic() - wall0, time.process_time() - cpu0
        self.sim_ms = clock.now_ms
        return self.results()

    def _run_mqtt(self) -> dict:
        from host_sim.transport import parse_broker

        cfg = self.cfg
        broker = None
        target = cfg.broker
        if target == "local":
            from host_sim.broker import Broker

            broker = Broker(persistence=False).start()  # a throwaway broker: no disk writes
            target = "%s:%d" % (broker.host, broker.port)
        if "://" in target:
            scheme, _, target = target.partition("://")
            if scheme != "mqtt":
                raise ValueError("only mqtt:// brokers are supported")
        host, port = parse_broker(target)
        run_id = uuid.uuid4().hex[:8]
        prefix = "segbind/fleet-%s" % run_id
        sched = RealTimeScheduler(cfg.speed)
        pools: List[MqttTransport] = []

        def pool(kind: str, n: int) -> List[MqttTransport]:
            made = [MqttTransport(host, port, "segbind-fleet-%s-%s-%d" % (run_id, kind, k), clean=True)
                    for k in range(max(1, min(n, cfg.pool)))]
            for t in made:
                t.start()
            for t in made:
                if not t.wait_ready(10):
                    raise RuntimeError("no MQTT connection to %s:%d" % (host, port))
            pools.extend(made)
            return made

        cloud_t = MqttTransport(host, port, "segbind-fleet-%s-cloud" % run_id, clean=True)
        try:
            cam_pool = pool("cam", cfg.cameras)
            disp_pool = pool("display", cfg.cameras)
            self._build(sched, prefix, cloud_t, lambda i, name: cam_pool[i % len(cam_pool)],
                        lambda i, name: disp_pool[i % len(disp_pool)], shared_displays=True)
            for display in self.displays:
                if not display.wait_for(lambda d: d.grant_updates > 0, 10):
                    raise RuntimeError("display %s got no grants" % display.account)
            end_ms = cfg.seconds * 1000.0 + 500.0  # the cameras start at 0.5 s
            progress = Progress(end_ms, "fleet (MQTT)", self.progress_stream, self.show_progress)
            wall0, cpu0 = time.monotonic(), time.process_time()
            sched.start()
            for cam in self.cameras:
                cam.start(500.0)
            deadline = None
            while True:
                time.sleep(0.05)
                progress.update(sched.now_ms, self.verified())
                if not all(c.done for c in self.cameras):
                    continue
                if deadline is None:
                    deadline = time.monotonic() + 60.0
                if self._quiet(sched):
                    time.sleep(0.3)
                    if self._quiet(sched):
                        break
                if time.monotonic() > deadline:
                    self.incomplete = True
                    log.warning("the fleet did not settle within 60 s of the last segment (results are "
                                "partial): the process did not keep up; try a lower --speed")
                    break
            progress.update(end_ms, self.verified())
            progress.finish()
            self.wall_s, self.cpu_s = time.monotonic() - wall0, time.process_time() - cpu0
            self.sim_ms = sched.now_ms
            results = self.results()
            # Clean up the retained grants this run left on the broker (displays gone first).
            for t in pools:
                t.stop()
            token = None
            for acct in self.plan.accounts:
                token = cloud_t.publish(topics.account_topic(acct.name, topics.GRANTS, prefix), b"", qos=1,
                                        retain=True)
            if token is not None:
                cloud_t.wait_acked(token, 5)
            return results
        finally:
            sched.stop()
            for t in [cloud_t] + pools:
                try:
                    t.stop()
                except Exception:
                    pass
            if broker is not None:
                broker.close()

    def _quiet(self, sched: RealTimeScheduler) -> bool:
        published = sum(c.published for c in self.cameras)
        at_cloud = self.router.routed + sum(self.cloud.dropped.values())
        relayed = sum(self.cloud.relayed.values()) + self.relay.stats.fills
        arrived = sum(t.arrived for t in self.impaired)
        return (sched.idle() and published == at_cloud and relayed == arrived
                and self.relay.outstanding == 0)

    # -- results -------------------------------------------------------------------------------

    def results(self) -> dict:
        produced = {c.name: c.produced for c in self.cameras}
        displays = self.displays
        reasons_on: collections.Counter = collections.Counter()
        would_refuse: collections.Counter = collections.Counter()
        for d in displays:
            for reason, n in d.counts.items():
                if not Reason(reason).accepted:
                    reasons_on[reason] += n
                    would_refuse[reason] += n
        delivered = sum(d.delivered for d in displays)
        shown_on = sum(len(d.shown) for d in displays)
        false_rejects = [dict(f, account=d.account) for d in displays for f in d.false_rejects]
        on = {
            "shown": shown_on,
            "rejected": dict(sorted(reasons_on.items())),
            "rejected_total": sum(reasons_on.values()),
            "gaps": sum(d.gaps(produced) for d in displays),
            "foreign_shown": sum(d.shown_foreign for d in displays),
            "foreign_refused": sum(d.foreign_refused for d in displays),
            "own_falsely_rejected": len(false_rejects),
            "own_refused": dict(sorted(sum((d.refused_own for d in displays), collections.Counter()).items())),
        }
        off = {
            "shown": delivered,
            "rejected": {},
            "rejected_total": 0,
            "would_refuse": dict(sorted(would_refuse.items())),
            "gaps": sum(d.gaps(produced, off=True) for d in displays),
            "foreign_shown": sum(d.delivered_foreign for d in displays),
            "own_falsely_rejected": 0,
        }
        accounts = []
        for d, acct in zip(displays, self.plan.accounts):
            accounts.append({
                "account": d.account, "cameras": sorted(d.granted), "downlink": "weak" if acct.weak else "good",
                "delivered": d.delivered, "delivered_foreign": d.delivered_foreign,
                "foreign_from": dict(sorted(d.foreign_from.items())),
                "on": {"shown": len(d.shown), "refused": dict(sorted((r, n) for r, n in d.counts.items()
                                                                     if not Reason(r).accepted)),
                       "foreign_shown": d.shown_foreign, "foreign_refused": d.foreign_refused,
                       "own_falsely_rejected": len(d.false_rejects), "gaps": d.gaps(produced)},
                "off": {"shown": d.delivered, "foreign_shown": d.delivered_foreign,
                        "gaps": d.gaps(produced, off=True)},
            })

        def link_totals(kind: str) -> dict:
            out = {}
            for weak in (False, True):
                stats = [link.stats for w, link in self.links[kind] if w == weak]
                out["weak" if weak else "good"] = {
                    "links": len(stats),
                    **{k: sum(getattr(s, k) for s in stats)
                       for k in ("sent", "lost", "duplicated", "reordered", "held_by_outage")}}
            return out

        cams = self.cameras
        return {
            "segbind_fleet": 1,
            "config": self.cfg.as_dict(),
            "fleet": {"cameras": len(cams), "accounts": len(displays), "shares": self.plan.shares,
                      "weak_uplinks": sum(c.weak for c in self.plan.cameras),
                      "weak_downlinks": sum(a.weak for a in self.plan.accounts),
                      "cache_slots": self.cache.slots},
            "results": {
                "sent": sum(c.produced for c in cams),
                "spool_dropped": sum(c.spool_dropped for c in cams),
                "spool_max": max((c.spool_max for c in cams), default=0),
                "at_cloud": self.router.routed,
                "relayed": sum(self.cloud.relayed.values()),
                "cloud_dropped": dict(self.cloud.dropped),
                "relay": self.relay.stats.as_dict(),
                "delivered": delivered,
                "delivered_unknown": sum(d.unknown for d in displays),
                "on": on,
                "off": off,
                "false_rejects": false_rejects[:20],
                "links": {k: link_totals(k) for k in self.links},
                "incomplete": self.incomplete,
            },
            "accounts": accounts,
            "performance": self.performance(),
        }

    def performance(self) -> dict:
        verified = self.verified()
        verify_cpu = sum(d.verifier.cpu_s for d in self.displays)
        return {
            "transport": "mqtt" if self.cfg.broker else "in-process",
            "clips_setup_s": round(self.setup_s, 3),
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "simulated_s": round(self.sim_ms / 1000.0, 3),
            "segments_verified": verified,
            "verified_per_s": round(verified / self.wall_s, 1) if self.wall_s else None,
            "verifier_cpu_s": round(verify_cpu, 3),
            "verifier_segments_per_cpu_s": round(verified / verify_cpu, 1) if verify_cpu else None,
            "verifier_cpu_share": round(verify_cpu / self.cpu_s, 4) if self.cpu_s else None,
            "segments_tagged": sum(c.produced for c in self.cameras),
        }


def run_fleet(cfg: FleetConfig, progress: bool = False, progress_stream=None) -> Tuple[dict, Fleet]:
    fleet = Fleet(cfg, progress, progress_stream)
    return fleet.run(), fleet


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m host_sim.fleet",
        description="A fleet of cameras, a relay with the 2020 streaming-quality cache bug, and a "
                    "display per account: what each display shows with segbind's verification on and off.")
    parser.add_argument("--cameras", type=int, default=24, help="cameras, one owner account each (24)")
    parser.add_argument("--seconds", type=int, default=None,
                        help="seconds of video per camera (60 in-process, 20 over MQTT)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bug", dest="bug", action="store_true", default=True,
                        help="the relay's cache mixes up accounts under a weak network (default)")
    parser.add_argument("--no-bug", dest="bug", action="store_false", help="a correctly keyed cache")
    parser.add_argument("--broker", metavar="mqtt://HOST:PORT",
                        help="run over MQTT in real time; 'local' starts a private Mosquitto")
    parser.add_argument("--speed", type=float, default=None,
                        help="over MQTT: simulated seconds per real second (1; 300/cameras above 300 "
                             "cameras, what one process keeps up with)")
    parser.add_argument("--share", type=float, default=0.25, help="fraction of cameras shared (0.25)")
    parser.add_argument("--weak", type=float, default=None, metavar="FRACTION",
                        help="fraction of uplinks and downlinks on a weak link (0.3 / 0.35)")
    parser.add_argument("--out", default="out", help="directory for the report (./out)")
    parser.add_argument("--rows", type=int, default=10, help="displays in the picture (10)")
    parser.add_argument("--no-png", action="store_true", help="skip the picture")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.cameras < 1:
        parser.error("--cameras must be at least 1")
    seconds = args.seconds if args.seconds is not None else (20 if args.broker else 60)
    if seconds < 1:
        parser.error("--seconds must be at least 1")
    speed = args.speed if args.speed is not None else min(1.0, round(REALTIME_CAMERAS / args.cameras, 3))
    if speed <= 0:
        parser.error("--speed must be positive")
    cfg = FleetConfig(cameras=args.cameras, seconds=seconds, seed=args.seed, bug=args.bug,
                      share=args.share, broker=args.broker, speed=speed)
    if args.weak is not None:
        cfg.weak_cameras = cfg.weak_displays = args.weak
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from host_sim import report

    where = "over MQTT at %s, real time x%g" % (args.broker, speed) if args.broker else \
        "in-process, simulated time"
    print("segbind fleet: %d cameras x %d s, seed %d, cache bug %s, %s" % (
        cfg.cameras, cfg.seconds, cfg.seed, "ON" if cfg.bug else "off", where), file=sys.stderr, flush=True)
    results, fleet = run_fleet(cfg, progress=not args.no_progress)
    print(report.table(results))
    out = Path(args.out)
    paths = report.write(results, fleet, out, png=not args.no_png, rows=args.rows)
    print("report: %s" % ", ".join(str(p) for p in paths))
    r = results["results"]
    return 0 if r["on"]["foreign_shown"] == 0 and r["on"]["own_falsely_rejected"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
