"""The incidents, reproduced and defeated: a fleet of cameras, their owners' apps, a cloud with
the incidents' bugs switchable, and one display per account, over a weak network.

    python3 -m host_sim.fleet                        # 24 cameras, 60 s, every fault, in-process
    python3 -m host_sim.fleet --cameras 1044         # the 2020 incident's scale
    python3 -m host_sim.fleet --faults relay_cache_2020,viewer_forgery
    python3 -m host_sim.fleet --broker local         # over a private Mosquitto, real time

Every camera runs the real agent core (``segbind_agent.core.AgentCore``) and is
claimed by its owner's app (``segbind.owner`` behind ``host_sim.app``) with a
pairing offer handed over out of band; some are shared with a second account
(a new epoch, a share offer the other account accepts, grants to its display).
Every display was enrolled by its owner out of band and takes keys only from
grants its owner signed and sealed to it. The cloud (``host_sim.cloud``) routes,
relays and carries; it holds no key.

Each fault of ``FAULTS`` can be switched on alone or with the others. A scenario
runs twice on the same seed: **with segbind** (displays verify, cameras refuse a
rolled-back state, the cloud's second line checks tags against its routing) and
**without** (none of these). The ground truth (which camera really produced each
delivered byte string, and who may watch it) comes from a ledger the fleet fills
as cameras tag, never from a tag. docs/FLEET.md defines every number.

In-process (the default) runs in simulated time on a ``netem.Clock``: fast and
deterministic. ``--broker`` runs the same fleet over MQTT in real time.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import logging
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from host_sim import fleet_options
from host_sim.app import OwnerApp
from host_sim.cache import QualityRelay, StreamingQualityCache
from host_sim.cloud import Cloud, CloudFaults, RoutingStore
from host_sim.display import Display
from host_sim.fleet_options import FAULTS, REALTIME_CAMERAS
from host_sim.netem import Clock, Link, LinkProfile
from host_sim.scenes import SCENES, scene_clip, scene_frame  # noqa: F401  (re-exported for tools)
from host_sim.transport import ImpairedTransport, InProcessBus, Message, MqttTransport
from segbind import Epoch, Reason, TimeWindow
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner, exchange_contacts
from segbind_agent.core import (
    AgentCore,
    AgentSettings,
    BindingState,
    Delete,
    Persist,
    Publish,
    Send,
    StateError,
    Store,
    check_rollback,
)
from segbind_agent.counter import MemoryCounter
from segbind_core import control, topics
from segbind_core.crypto import MacKey
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import build_sei_nal
from segbind_core.tag import compute_mac
from segbind_core.tagger import Tagger

log = logging.getLogger("segbind.fleet")

# 2020-01-01T00:00:00Z: capture times and stream ids of the simulated cameras start here.
BASE_MS = 1_577_836_800_000

GOOD = LinkProfile(loss=0.002, delay_ms=30, jitter_ms=40, duplicate=0.002)
WEAK = LinkProfile.weak()

CLOUD_FAULTS = set(FAULTS) & set(CloudFaults.__dataclass_fields__)  # type: ignore[attr-defined]
RESALE_FAULTS = {"resale_without_reset", "restart_during_claim", "state_rollback"}


@dataclass
class FleetConfig:
    cameras: int = 24
    seconds: int = 60
    seed: int = 1
    faults: Tuple[str, ...] = ()  # names from FAULTS
    defended: bool = True         # segbind on: displays verify, cameras refuse rollback, second line
    second_line: bool = True      # the cloud's second line (only when defended)
    share: float = 0.25           # fraction of cameras shared with a second account
    h265: float = 0.25            # fraction of cameras that encode H.265 (the others H.264)
    weak_cameras: float = 0.3     # fraction of camera uplinks on a weak link
    weak_displays: float = 0.35   # fraction of display downlinks on a weak link
    segment_ms: int = 1000
    clips: int = 24               # distinct scenes (at most one per camera), one clip each
    h265_clips: int = 8           # distinct scenes the H.265 cameras loop
    clip_segments: int = 10       # each clip is this many segments long, looped
    width: int = 128
    height: int = 72
    fps: int = 25
    spool: int = 30               # segments a camera holds while its uplink is down
    retry_ms: float = 1500.0      # the quality relay's receipt timeout
    cache_slots: int = 0          # 0: half the number of cameras (at least 2)
    cache_capacity: int = 0       # 0: 16 entries per camera (at least 1024)
    event_at: float = 0.4         # when resales happen (a fraction of the run); rollbacks 0.2 later
    stale_s: float = 8.0          # a display's stale-feed alarm
    good: LinkProfile = GOOD
    weak: LinkProfile = WEAK
    broker: Optional[str] = None  # None: in-process, simulated time; "host:port" or "local"
    speed: float = 1.0            # real-time runs: simulated ms per wall ms
    pool: int = 8                 # real-time runs: MQTT connections for cameras, and for displays
    samples: int = 4              # segments each display keeps for the picture

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULTS))
        if unknown:
            raise ValueError("unknown faults: %s (known: %s)" % (", ".join(unknown), ", ".join(FAULTS)))

    @property
    def slots(self) -> int:
        return self.cache_slots or max(2, self.cameras // 2)

    @property
    def capacity(self) -> int:
        return self.cache_capacity or max(1024, 16 * self.cameras)

    def has(self, fault: str) -> bool:
        return fault in self.faults

    def as_dict(self) -> dict:
        d = asdict(self)
        d["faults"] = list(self.faults)
        d["cache_slots"], d["cache_capacity"] = self.slots, self.capacity
        d["transport"] = "mqtt" if self.broker else "in-process"
        return d


# ------------------------------------------------------------------------------------------
# The plan: who owns what, who shares what, what goes wrong where
# ------------------------------------------------------------------------------------------

@dataclass
class CameraPlan:
    name: str
    owner: str
    viewers: List[str]
    clip: int
    phase_ms: float
    weak: bool
    link_seed: int
    identity: str                   # the factory identity it connects with (a device secret's name)
    codec: int = 1                  # 1 H.264, 2 H.265
    buyer: Optional[str] = None     # resold to this account at the event
    rolled_back: bool = False       # its state restored from a backup made before the sale
    forger: Optional[str] = None    # the viewer who forges it


@dataclass
class AccountPlan:
    name: str
    cameras: List[str]              # owned at the start
    shared_in: List[str]            # shared with it at the start
    weak: bool
    link_seed: int
    back_seed: int

    @property
    def display(self) -> str:
        return self.name + "-tv"


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
    n = cfg.cameras
    resold = {i for i in range(n) if i % 8 == 3 and n > 3} if RESALE_FAULTS & set(cfg.faults) else set()
    shared = set(rng.sample(range(n), round(cfg.share * n))) - resold if n > 1 else set()
    hevc = {i for i in range(n) if (i * cfg.h265) % 1 + cfg.h265 >= 1} if cfg.h265 > 0 else set()
    cameras = []
    for i, name in enumerate(names):
        viewers = [owners[(i + 1) % n]] if i in shared else []
        identity = "factory-%s" % name
        if cfg.has("duplicate_device_secret") and i % 8 == 5:
            identity = "factory-%s" % names[i - 1]   # made with the previous camera's secret
        codec = 2 if i in hevc else 1
        clip = i % min(cfg.h265_clips if codec == 2 else cfg.clips, n)
        cameras.append(CameraPlan(
            name, owners[i], viewers, clip, rng.uniform(0, cfg.segment_ms),
            rng.random() < cfg.weak_cameras, rng.getrandbits(32), identity,
            buyer=owners[(i + 2) % n] if i in resold else None,
            rolled_back=i in resold and cfg.has("state_rollback"),
            forger=viewers[0] if viewers and cfg.has("viewer_forgery") and sorted(shared).index(i) % 2 == 0
            else None, codec=codec))
    owned: Dict[str, List[str]] = {a: [] for a in owners}
    shared_in: Dict[str, List[str]] = {a: [] for a in owners}
    for cam in cameras:
        owned[cam.owner].append(cam.name)
        for viewer in cam.viewers:
            shared_in[viewer].append(cam.name)
    accounts = [AccountPlan(a, owned[a], shared_in[a], rng.random() < cfg.weak_displays, rng.getrandbits(32),
                            rng.getrandbits(32)) for a in owners]
    return Plan(cameras, accounts)


def clip_templates(cfg: FleetConfig) -> Dict[Tuple[int, int], List[bytes]]:
    """Each (codec, scene)'s clip cut into segments (Annex-B), one segment period of encoder output
    each; only the pairs the plan uses are encoded (and cached)."""
    gop = max(1, cfg.fps * cfg.segment_ms // 1000)
    out: Dict[Tuple[int, int], List[bytes]] = {}
    for cam in make_plan(cfg).cameras:
        key = (cam.codec, cam.clip)
        if key in out:
            continue
        video = scene_clip(cam.clip, gop * cfg.clip_segments, cfg.width, cfg.height, cfg.fps, gop, cam.codec)
        segmenter = Segmenter()
        out[key] = [s.data for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment)]
    return out


# ------------------------------------------------------------------------------------------
# Ground truth
# ------------------------------------------------------------------------------------------

class Ledger:
    """What each camera really produced, by a digest of the exact bytes it published, and who
    might rightly watch it when it was captured (the camera's real owner then, and its viewers).

    The simulation's omniscient record, used only to count results (a display never sees it).
    """

    def __init__(self) -> None:
        self._origin: Dict[bytes, Tuple[str, int, int, Tuple[str, ...]]] = {}
        self.produced_for: Dict[str, set] = collections.defaultdict(set)  # account -> (camera, stream, seq)
        self._lock = threading.Lock()

    @staticmethod
    def digest(payload: bytes) -> bytes:
        return hashlib.sha256(payload).digest()[:16]

    def record(self, payload: bytes, camera: str, stream_id: int, seq: int, audience: Tuple[str, ...]) -> None:
        with self._lock:
            self._origin[self.digest(payload)] = (camera, stream_id, seq, audience)
            for account in audience:
                self.produced_for[account].add((camera, stream_id, seq))

    def origin(self, d: bytes) -> Optional[Tuple[str, int, int, Tuple[str, ...]]]:
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
    """One camera: the real agent core fed its clip one segment's worth of encoder bytes every
    ``segment_ms``, its spool in memory, its uplink a ``netem`` link, its monotonic counter in
    memory. Pairing offers and its reset button reach it out of band (``handover``,
    ``press_reset``). ``protected``: it refuses to run from a rolled-back state.

    Its clock reads ``base_ms`` plus the scheduler's time (``BASE_MS``, 2020, in the fleet; the
    wall clock's origin for a real-time scheduler). ``first_stream``: it first records a stream
    of that many segments and ends it, then starts the stream that runs ``cfg.seconds``.
    ``stop_video`` and ``hold_clock`` are faults for the displays to flag (stale, frozen)."""

    def __init__(self, plan: CameraPlan, cfg: FleetConfig, templates: List[bytes], transport, scheduler,
                 uplink: Link, prefix: str, *, ledger: Optional[Ledger] = None,
                 audience: Optional[Callable[[str], Tuple[str, ...]]] = None, stream_id: Optional[int] = None,
                 protected: bool = True, base_ms: int = BASE_MS, first_stream: int = 0) -> None:
        self.plan = plan
        self.name = plan.name
        self.cfg = cfg
        self.templates = templates
        self.transport = transport
        self.scheduler = scheduler
        self.uplink = uplink
        self.prefix = prefix
        self.ledger = ledger or Ledger()
        self.audience = audience or (lambda camera: (plan.owner,) + tuple(plan.viewers))
        self.stream_id = stream_id
        self.protected = protected
        self.topic = topics.camera_topic(plan.name, topics.SEG, prefix)
        self.settings = AgentSettings(max_duration_s=4.0, spool_max_segments=cfg.spool,
                                      publish_window=cfg.spool, health_interval_s=5.0)
        self.core = AgentCore(plan.name, BindingState(plan.name), self.settings)
        self.counter = MemoryCounter()
        self.backup: Optional[BindingState] = None
        self.halted = ""        # why it refused to run, when it did
        self.stored: Dict[int, bytes] = {}
        self.base_ms = base_ms
        self.first_stream = first_stream
        self.held_clock: Optional[int] = None   # a stuck clock: every capture time repeats this one
        self.stopped = False                    # its video stopped (stop_video)
        self.total = first_stream + cfg.seconds * 1000 // cfg.segment_ms
        self.fed = 0
        self.tagged = 0
        self.handed = 0         # handed to the uplink
        self.published = 0      # copies that reached the broker/bus (duplicates included)
        self.spool_max = 0
        self.spool_dropped = 0
        self.done = False

    def now(self) -> int:
        return self._clock(self.scheduler.now_ms)

    def _clock(self, scheduler_ms: float) -> int:
        return self.held_clock if self.held_clock is not None else self.base_ms + int(scheduler_ms)

    def begin(self) -> None:
        self.transport.subscribe(topics.camera_topic(self.name, topics.CTL, self.prefix), self._on_command)
        self._carry_out(self.core.start(self.now(), stream_id=self.stream_id))

    def start_video(self, offset_ms: float) -> None:
        self.scheduler.at(offset_ms + self.plan.phase_ms, self._tick)

    # -- out of band ---------------------------------------------------------------------------

    def handover(self, offer: bytes) -> None:
        """The camera's lens reads the owner's pairing offer (never through the cloud)."""
        self._carry_out(self.core.pair(offer, self.now()))

    def press_reset(self) -> None:
        self._carry_out(self.core.physical_reset(self.now()))

    def stop_video(self) -> None:
        """The camera stops sending video from its next segment on (unplugged, crashed): its
        stream just stops, with no end of stream. (Takes effect on the scheduler's thread.)"""
        self.stopped = True

    def hold_clock(self) -> None:
        """The camera's clock sticks: every segment from now on carries the same capture time."""
        self.held_clock = self.now()

    def restore_backup(self) -> None:
        """The camera restarts with its state file restored from ``backup`` (made before a sale)."""
        if self.backup is None:
            return
        self.spool_dropped += len(self.core.spool)
        self.stored.clear()
        state = self.backup.copy()
        if self.protected:
            try:
                state = check_rollback(state, self.counter.read(), self.name)
            except StateError as exc:
                self.halted = str(exc)
                self.core = AgentCore(self.name, BindingState(self.name), self.settings)  # never started
                return
        self.core = AgentCore(self.name, state, self.settings)
        self._carry_out(self.core.start(self.now()))

    # -- running -------------------------------------------------------------------------------

    def _on_command(self, msg: Message) -> None:
        if not self.halted:
            self._carry_out(self.core.command(msg.payload, self.now()))
        msg.ack()

    def _tick(self) -> None:
        now = self.scheduler.now_ms
        clock = self._clock(now)
        if self.halted:
            self.done = True
            return
        if self.stopped:
            self.total = min(self.total, self.fed)
        up = self.uplink.is_up(now)
        if up != self.core.connected:
            self._carry_out(self.core.connection(up, clock))
        if self.fed < self.total:
            data = self.templates[self.fed % len(self.templates)]
            self.fed += 1
            self._carry_out(self.core.encoder_bytes(data, clock))
            if self.fed == self.total or self.fed == self.first_stream:
                self._carry_out(self.core.encoder_end(clock))
            if self.fed == self.first_stream < self.total:  # the recorded stream ended: the live one starts
                self._carry_out(self.core.start(clock))
        else:
            self._carry_out(self.core.tick(clock))
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
                self.tagged += 1
                self.ledger.record(action.payload, self.name, action.entry.stream_id, action.entry.seq,
                                   self.audience(self.name))
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
            elif isinstance(action, Persist):
                self.counter.advance(action.state.generation)

    def _publish(self, payload: bytes, entry) -> None:
        self.published += 1
        self.transport.publish(self.topic, payload, 1, False,
                               {"stream": entry.stream_id, "seq": entry.seq, "epoch": entry.epoch})

    @property
    def produced(self) -> int:
        return self.tagged


class Forger:
    """A viewer a camera is shared with, turned hostile: it holds the key of its own slot, sees
    the stream, and injects segments of its own video tagged as the owner's camera, continuing
    the chain (its slot's MAC right, the others guessed), as if from the camera's uplink."""

    def __init__(self, fleet: "Fleet", victim: CameraPlan, display: "FleetDisplay", owner: Owner,
                 templates: List[bytes], transport, every_ms: float = 5000.0) -> None:
        self.fleet = fleet
        self.victim = victim
        self.display = display
        self.owner = owner
        self.transport = transport
        self.every_ms = every_ms
        self.forged = 0
        self.samples: List[bytes] = []  # the first forgeries, for tests
        segmenter = Segmenter(delimit=True)
        self.raw = [s for t in templates for s in segmenter.push(t) if isinstance(s, Segment)]

    def start(self, at_ms: float) -> None:
        self.fleet.scheduler.at(at_ms, self._forge)

    def _forge(self) -> None:
        sched = self.fleet.scheduler
        last = self.display.last_verified.get(self.victim.name)
        if last is not None and self.raw:
            tag, data = last
            binding = self.owner.shared_with_me.get((tag.owner, tag.camera, tag.epoch))
            if binding is not None:
                self._inject(tag, data, binding)
        if sched.now_ms < self.fleet.end_ms - 2000:
            sched.at(sched.now_ms + self.every_ms, self._forge)

    def _inject(self, tag, data: bytes, binding) -> None:
        raw = self.raw[self.forged % len(self.raw)]
        shares = ["slot%d" % k for k in range(1, binding.slot)] + [self.owner.name]
        guess = Epoch(tag.owner, tag.camera, tag.epoch, shares, os.urandom(32))
        tagger = Tagger(guess, tag.stream_id, seq=tag.seq + 1, link=hashlib.sha256(data).digest()[:8])
        forged, forged_tag = tagger.tag(raw.data, raw.units, tag.capture_ms + tag.duration_ms, raw.duration_ms,
                                        raw.pictures)
        old_sei = build_sei_nal(forged_tag.encode())
        forged_tag.macs[binding.slot] = compute_mac(MacKey(binding.key), forged_tag.signed_fields(),
                                                    hashlib.sha256(raw.data).digest())
        forged = forged.replace(old_sei, build_sei_nal(forged_tag.encode()), 1)
        self.forged += 1
        if len(self.samples) < 4:
            self.samples.append(forged)
        self.transport.publish(topics.camera_topic(self.victim.name, topics.SEG, self.fleet.prefix), forged, 1)


# ------------------------------------------------------------------------------------------
# Displays and owners
# ------------------------------------------------------------------------------------------

class FleetDisplay(Display):
    """A ``Display`` (verifies with the library, shows only what its grants accept) that also
    counts, against the ledger's ground truth, what it accepted and what a display without
    verification would have shown from the same deliveries."""

    def __init__(self, transport, account: str, identity: DisplayIdentity, fleet: "Fleet", samples: int = 4,
                 stale_s: float = 8.0) -> None:
        super().__init__(transport, account, identity, clock=fleet.clock_s, stale_s=stale_s,
                         window=TimeWindow(max_age_s=30.0, max_future_s=5.0), prefix=fleet.prefix)
        self.fleet = fleet
        self.max_samples = samples
        self.verify_calls = 0
        self.verify_cpu_s = 0.0
        self.delivered = collections.Counter()     # own / foreign / forged -> deliveries
        self.accepted = collections.Counter()      # own / foreign / forged -> accepted by the verifier
        self.own_delivered: set = set()            # (camera, stream, seq) delivered, distinct
        self.own_accepted: set = set()             # ... accepted
        self.own_refused_no_grant: set = set()     # ... refused: the display held no grant for it
        self.refused_own = collections.Counter()   # reason -> own segments refused
        self.refused_other = collections.Counter()
        self.forged_own_slot = 0                   # forgeries this display's own account made (its own key)
        self.last_verified: Dict[str, Tuple[object, bytes]] = {}
        self.samples_own: List[tuple] = []         # (payload, camera, seq)
        self.samples_foreign: List[tuple] = []     # (payload, camera, seq, reason)

    def _on_segment(self, msg: Message) -> None:
        payload = msg.payload
        d = self.fleet.ledger.digest(payload)
        origin = self.fleet.ledger.origin(d)
        t0 = time.thread_time()
        before = sum(self.counts.values())
        super()._on_segment(msg)
        self.verify_cpu_s += time.thread_time() - t0
        self.verify_calls += 1
        verdict = self.last_verdict
        kind = "forged" if origin is None else ("own" if self.account in origin[3] else "foreign")
        self.delivered[kind] += 1
        if kind == "own":
            self.own_delivered.add(origin[:3])
        if verdict.accepted:
            self.accepted[kind] += 1
            if kind == "own":
                self.own_accepted.add(origin[:3])
                if len(self.samples_own) < self.max_samples and origin[2] % 3 == 2:
                    self.samples_own.append((payload, origin[0], origin[2]))
            elif kind == "forged" and verdict.tag is not None and self._forged_by_me(verdict.tag):
                self.forged_own_slot += 1
            if verdict.tag is not None and self.verifier.verified is not None:
                self.last_verified[verdict.tag.camera] = (verdict.tag, self.verifier.verified)
        elif kind == "own":
            self.refused_own[verdict.reason.value] += 1
            if verdict.reason is Reason.NO_GRANT:
                self.own_refused_no_grant.add(origin[:3])
        else:
            self.refused_other[verdict.reason.value] += 1
            if len(self.samples_foreign) < self.max_samples - 1 and origin is not None:
                self.samples_foreign.append((payload, origin[0], origin[2], verdict.reason.value))
        assert sum(self.counts.values()) == before + 1
        ack = getattr(self.transport, "ack", None)
        if ack is not None:
            ack(d)

    def _forged_by_me(self, tag) -> bool:
        plan = self.fleet.camera_plan.get(tag.camera)
        return plan is not None and plan.forger == self.account


class FleetOwner(OwnerApp):
    """An owner's app that also watches its display: when a feed it should see goes stale, it
    asks the cloud again for its routing (claims, shares) and re-sends its grants."""

    def __init__(self, transport, owner: Owner, fleet: "Fleet", plan: AccountPlan) -> None:
        super().__init__(transport, owner, clock=fleet.clock_s, prefix=fleet.prefix)
        self.fleet = fleet
        self.plan = plan
        self.display: Optional[FleetDisplay] = None
        self.resyncs = 0
        self._last_resync = -1e18

    def check(self) -> None:
        if self.display is None:
            return
        stale = {a.camera for a in self.display.alarms()}
        mine = set(self.owner.cameras) | {c for _o, c, _e in self.owner.shared_with_me}
        if not stale & mine or self.fleet.scheduler.now_ms - self._last_resync < 10_000:
            return
        self._last_resync = self.fleet.scheduler.now_ms
        self.resyncs += 1
        for camera, cam in sorted(self.owner.cameras.items()):
            if cam.paired:
                self._request("claim", camera=camera)
                for viewer in cam.shares:
                    self._request("share", camera=camera, viewer=viewer)
        self.push_grants()
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
        self.index = {c.name: i for i, c in enumerate(self.plan.cameras)}
        self.camera_plan = {c.name: c for c in self.plan.cameras}
        self.ledger = Ledger()
        self.cameras: List[FleetCamera] = []
        self.displays: List[FleetDisplay] = []
        self.owners: Dict[str, FleetOwner] = {}
        self.forgers: List[Forger] = []
        self.impaired: List[ImpairedTransport] = []
        self.links: Dict[str, List[Tuple[bool, Link]]] = {"uplink": [], "downlink": [], "receipts": []}
        self.true_owner = {c.name: c.owner for c in self.plan.cameras}
        self.thumbnails = collections.Counter()   # own / foreign / forged -> thumbnails the cloud made
        self.incomplete = False
        self.end_ms = 0.0
        self.prefix = topics.TOPIC_PREFIX

    def clock_s(self) -> float:
        return (BASE_MS + self.scheduler.now_ms) / 1000.0

    def audience(self, camera: str) -> Tuple[str, ...]:
        """Who may rightly watch what ``camera`` captures now (the ground truth, not the cloud's)."""
        owner = self.true_owner[camera]
        plan = self.camera_plan[camera]
        return (owner,) + (tuple(plan.viewers) if owner == plan.owner else ())

    # -- building ------------------------------------------------------------------------------

    def _build(self, scheduler, prefix: str, cloud_transport, camera_transport, display_transport,
               app_transport, shared_displays: bool) -> None:
        cfg, plan = self.cfg, self.plan
        self.scheduler = scheduler
        self.prefix = prefix
        faults = CloudFaults(**{f: True for f in cfg.faults if f in CLOUD_FAULTS})
        self.cloud = Cloud(cloud_transport, RoutingStore(), faults=faults,
                           second_line=cfg.defended and cfg.second_line, prefix=prefix)
        for c in plan.cameras:                   # the operator provisions their identities
            self.cloud.provision(c.name, c.identity)
        self.cache = StreamingQualityCache(cfg.slots, cfg.capacity, bug=cfg.has("relay_cache_2020"))
        self.relay = QualityRelay(self.cache, scheduler,
                                  lambda account, camera, payload: self.cloud.deliver(account, camera, payload,
                                                                                      "quality-cache"),
                                  Ledger.digest, cfg.retry_ms)
        self.cloud.relay = self.relay
        self.cloud.on_thumbnail = self._thumbnail
        cloud_transport.subscribe(topics.every_account(topics.RECEIPTS, prefix), self.relay.on_receipt_message)
        self.cloud.start()

        for i, acct in enumerate(plan.accounts):
            profile = cfg.weak if acct.weak else cfg.good
            down, back = Link(profile, acct.link_seed), Link(profile, acct.back_seed)
            self.links["downlink"].append((acct.weak, down))
            self.links["receipts"].append((acct.weak, back))
            transport = ImpairedTransport(
                display_transport(i, acct.name), scheduler, down, back,
                topics.account_topic(acct.name, topics.SEG, prefix),
                topics.account_topic(acct.name, topics.RECEIPTS, prefix), shared=shared_displays)
            self.impaired.append(transport)
            owner = Owner.new(acct.name, test_only=True)
            identity = DisplayIdentity.new(acct.display, test_only=True)
            app = FleetOwner(app_transport(i, acct.name), owner, self, acct)
            app.start()
            app.enroll(identity)                 # out of band: the display pins its owner
            display = FleetDisplay(transport, acct.name, identity, self, cfg.samples, cfg.stale_s)
            display.start()
            app.display = display
            app.on_change = self._on_change
            self.owners[acct.name] = app
            self.displays.append(display)
        for cam in plan.cameras:                 # contacts exchanged out of band
            for viewer in cam.viewers:
                if viewer not in self.owners[cam.owner].owner.contacts:
                    exchange_contacts(self.owners[cam.owner].owner, self.owners[viewer].owner)

        templates = self.templates
        for i, cam in enumerate(plan.cameras):
            uplink = Link(cfg.weak if cam.weak else cfg.good, cam.link_seed)
            self.links["uplink"].append((cam.weak, uplink))
            camera = FleetCamera(cam, cfg, templates[(cam.codec, cam.clip)], camera_transport(i, cam.name), scheduler,
                                 uplink, prefix, ledger=self.ledger, audience=self.audience,
                                 stream_id=BASE_MS + i, protected=cfg.defended)
            self.cameras.append(camera)
            camera.begin()
        for camera in self.cameras:              # each owner claims its camera: the offer goes by the lens
            self.owners[camera.plan.owner].pair(camera.name, camera.handover)
        for cam in plan.cameras:
            if cam.forger is not None:
                forger_app = self.owners[cam.forger]
                own = self.camera_plan[forger_app.plan.cameras[0]] if forger_app.plan.cameras else cam
                self.forgers.append(Forger(self, cam, forger_app.display, forger_app.owner,
                                           templates[(own.codec, own.clip)], camera_transport(0, "forger")))

    def _on_change(self, camera: str, result: control.Result) -> None:
        """An owner's app learned its camera's pairing: share it as planned."""
        plan = self.camera_plan.get(camera)
        if plan is None or result.op != control.PAIR or result.status != control.OK:
            return
        app = self.owners[result.owner]
        if app.name == plan.owner:
            for viewer in plan.viewers:
                app.share(camera, viewer)

    def _thumbnail(self, account: str, camera: str, payload: bytes) -> None:
        origin = self.ledger.origin(Ledger.digest(payload))
        kind = "forged" if origin is None else ("own" if account in origin[3] else "foreign")
        self.thumbnails[kind] += 1

    # -- events during the run -----------------------------------------------------------------

    def _schedule_events(self, start_ms: float) -> None:
        cfg = self.cfg
        run_ms = cfg.seconds * 1000.0
        event = start_ms + cfg.event_at * run_ms
        if any(c.buyer for c in self.plan.cameras):
            self.scheduler.at(event, self._resale)
        if cfg.has("state_rollback"):
            self.scheduler.at(event + 0.2 * run_ms, self._rollback)
        for forger in self.forgers:
            forger.start(start_ms + 0.25 * run_ms)

    def _resale(self) -> None:
        """Each planned camera is sold: its buyer presses the reset button and pairs it."""
        for camera in self.cameras:
            buyer = camera.plan.buyer
            if buyer is None:
                continue
            camera.backup = camera.core.state.copy()   # a backup of the state, made before the sale
            self.true_owner[camera.name] = buyer
            camera.press_reset()
            self.owners[buyer].pair(camera.name, camera.handover)
        if self.cfg.has("restart_during_claim"):
            self.cloud.restart()

    def _rollback(self) -> None:
        for camera in self.cameras:
            if camera.plan.rolled_back:
                camera.restore_backup()

    def _periodic(self) -> None:
        for app in self.owners.values():
            app.check()
        if self.scheduler.now_ms < self.end_ms:
            self.scheduler.at(self.scheduler.now_ms + 5000, self._periodic)

    def verified(self) -> int:
        return sum(d.verify_calls for d in self.displays)

    # -- running -------------------------------------------------------------------------------

    def run(self) -> dict:
        t_setup = time.monotonic()
        self.templates = clip_templates(self.cfg)
        self.setup_s = time.monotonic() - t_setup
        if self.cfg.broker:
            return self._run_mqtt()
        return self._run_in_process()

    def _run_in_process(self) -> dict:
        cfg = self.cfg
        clock = Clock()
        bus = InProcessBus()
        self.bus = bus
        wall0, cpu0 = time.monotonic(), time.process_time()
        self._build(clock, topics.TOPIC_PREFIX, bus.transport("cloud"),
                    lambda i, name: bus.transport(name).start(),
                    lambda i, name: bus.transport("display-" + name),
                    lambda i, name: bus.transport("app-" + name), shared_displays=False)
        self.cloud.flush()
        start_ms = 1000.0  # the cameras start at 1 s
        self.end_ms = cfg.seconds * 1000.0 + start_ms
        progress = Progress(self.end_ms, "fleet", self.progress_stream, self.show_progress)

        def tick() -> None:
            progress.update(clock.now_ms, self.verified())
            if clock.now_ms < self.end_ms:
                clock.at(clock.now_ms + 1000, tick)

        for cam in self.cameras:
            cam.start_video(start_ms)
        self._schedule_events(start_ms)
        clock.at(0, tick)
        clock.at(start_ms + 5000, self._periodic)
        clock.run()
        progress.update(self.end_ms, self.verified())
        progress.finish()
        self.wall_s, self.cpu_s = time.monotonic() - wall0, time.process_time() - cpu0
        self.sim_ms = clock.now_ms
        return self.results()

    def _run_mqtt(self) -> dict:
        from host_sim.transport import parse_broker

        cfg = self.cfg
        broker = None
        target = cfg.broker or ""
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
            app_pool = pool("app", cfg.cameras)
            wall0, cpu0 = time.monotonic(), time.process_time()
            sched.start()
            self._build(sched, prefix, cloud_t, lambda i, name: cam_pool[i % len(cam_pool)],
                        lambda i, name: disp_pool[i % len(disp_pool)],
                        lambda i, name: app_pool[i % len(app_pool)], shared_displays=True)
            self._wait_set_up(stall_s=60)
            self.cloud.flush()
            start_ms = sched.now_ms + 500.0
            self.end_ms = start_ms + cfg.seconds * 1000.0
            progress = Progress(self.end_ms, "fleet (MQTT)", self.progress_stream, self.show_progress)
            for cam in self.cameras:
                cam.start_video(start_ms)
            self._schedule_events(start_ms)
            sched.at(start_ms + 5000, self._periodic)
            deadline = None
            while True:
                time.sleep(0.05)
                progress.update(sched.now_ms, self.verified())
                if sched.now_ms < self.end_ms or not all(c.done for c in self.cameras):
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
            progress.update(self.end_ms, self.verified())
            progress.finish()
            self.wall_s, self.cpu_s = time.monotonic() - wall0, time.process_time() - cpu0
            self.sim_ms = sched.now_ms
            results = self.results()
            # Clean up the retained messages this run left on the broker (displays gone first).
            for t in pools:
                t.stop()
            token = None
            for acct in self.plan.accounts:
                token = cloud_t.publish(topics.display_topic(acct.display, topics.GRANTS, prefix), b"", qos=1,
                                        retain=True)
            for cam in self.plan.cameras:
                token = cloud_t.publish(topics.camera_topic(cam.name, topics.STATUS, prefix), b"", qos=1,
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

    def _wait_set_up(self, stall_s: float, renew_s: float = 10.0) -> None:
        """Over MQTT the claims, shares and grants take a moment: wait until every display holds
        the keys of every camera it should see, and the cloud routes every camera. A busy machine
        only makes this slower, so the wait ends on the condition, or when nothing has moved for
        ``stall_s`` (a real failure), never at a fixed time. While nothing moves, the owners'
        apps renew their grants and offers every ``renew_s``, as an app does now and then: a
        message lost on the way is sent again."""
        want = {a.name: set(a.cameras) | set(a.shared_in) for a in self.plan.accounts}
        last, moved, renewed = None, time.monotonic(), time.monotonic()
        while True:
            held = sum(len(want[d.account] & {c for _o, c, _e in d.grants.keyring.grants()}) for d in self.displays)
            routed = sum(1 for c in self.plan.cameras if self.cloud.routing.owner.get(c.name) == c.owner)
            if held == sum(len(w) for w in want.values()) and routed == len(self.plan.cameras):
                return
            now = time.monotonic()
            if (held, routed) != last:
                last, moved, renewed = (held, routed), now, now
            elif now - moved > stall_s:
                raise RuntimeError("the fleet's set-up stalled for %.0f s at %d of %d grants, %d of %d cameras "
                                   "routed" % (stall_s, held, sum(len(w) for w in want.values()), routed,
                                               len(self.plan.cameras)))
            elif now - renewed > renew_s:
                renewed = now
                log.warning("the fleet's set-up has not moved for %.0f s: the owners' apps renew their grants",
                            renew_s)
                for app in self.owners.values():
                    app.renew()
            time.sleep(0.1)

    def _quiet(self, sched: RealTimeScheduler) -> bool:
        arrived = sum(t.arrived for t in self.impaired)
        return sched.idle() and self.relay.outstanding == 0 and arrived == sum(self.cloud.delivered.values())

    # -- results -------------------------------------------------------------------------------

    def results(self) -> dict:
        displays = self.displays
        total = lambda attr, kind: sum(getattr(d, attr)[kind] for d in displays)  # noqa: E731
        own_delivered = sum(len(d.own_delivered) for d in displays)
        own_accepted = sum(len(d.own_accepted) for d in displays)
        own_produced = sum(len(self.ledger.produced_for[d.account]) for d in displays)
        # Own segments a display refused for want of a grant it should hold (its grants were lost
        # on the way): the grants path failed, not verification.
        no_grant = {(d.account, p) for d in displays for p in d.own_refused_no_grant} - \
            {(d.account, p) for d in displays for p in d.own_accepted}
        forged_made = sum(f.forged for f in self.forgers)
        forged_by_self = sum(d.forged_own_slot for d in displays)
        on = {
            "foreign_shown": total("accepted", "foreign"),
            "forged_shown": total("accepted", "forged") - forged_by_self,
            "own_accepted": own_accepted,
            "own_refused": dict(sorted(sum((d.refused_own for d in displays), collections.Counter()).items())),
            "refused": dict(sorted(sum((d.refused_other for d in displays), collections.Counter()).items())),
        }
        off = {
            "foreign_shown": total("delivered", "foreign"),
            "forged_shown": total("delivered", "forged"),
            "own_delivered": own_delivered,
        }
        accounts = []
        for d, acct in zip(displays, self.plan.accounts):
            accounts.append({
                "account": d.account, "cameras": sorted(acct.cameras), "shared_in": sorted(acct.shared_in),
                "downlink": "weak" if acct.weak else "good",
                "delivered": dict(d.delivered), "accepted": dict(d.accepted),
                "own_delivered": len(d.own_delivered), "own_accepted": len(d.own_accepted),
                "refused": dict(sorted(d.refused_other.items())), "own_refused": dict(sorted(d.refused_own.items())),
                "grant_refusals": dict(d.grant_refusals), "alarms": len(d.alarms()),
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
            "segbind_fleet": 2,
            "config": self.cfg.as_dict(),
            "fleet": {"cameras": len(cams), "accounts": len(displays), "shares": self.plan.shares,
                      "h265_cameras": sum(1 for c in self.plan.cameras if c.codec == 2),
                      "resold": sum(1 for c in self.plan.cameras if c.buyer),
                      "forgers": len(self.forgers),
                      "weak_uplinks": sum(c.weak for c in self.plan.cameras),
                      "weak_downlinks": sum(a.weak for a in self.plan.accounts),
                      "cache_slots": self.cache.slots},
            "results": {
                "sent": sum(c.produced for c in cams),
                "forged_made": forged_made,
                "spool_dropped": sum(c.spool_dropped + c.core.spool.dropped_total for c in cams),
                "spool_max": max((c.spool_max for c in cams), default=0),
                "cameras_halted": sum(1 for c in cams if c.halted),
                "at_cloud": self.cloud.received,
                "relayed": self.cloud.delivered_by_source["live"],
                "refilled": self.cloud.delivered_by_source["quality-cache"],
                "delivered": sum(sum(d.delivered.values()) for d in displays),
                "cloud": {"delivered": sum(self.cloud.delivered.values()), "refused": dict(self.cloud.refused),
                          "requests": dict(self.cloud.requests), "restarts": self.cloud.restarts},
                "thumbnails": dict(self.thumbnails),
                "relay": self.relay.stats.as_dict(),
                "grant_refusals": dict(sum((collections.Counter(d.grant_refusals) for d in displays),
                                           collections.Counter())),
                "owner_resyncs": sum(a.resyncs for a in self.owners.values()),
                "on": on,
                "off": off,
                "own_produced": own_produced,
                "own_never_delivered": own_produced - own_delivered,
                "own_without_grant": len(no_grant),
                "own_lost_to_verification": own_delivered - own_accepted - len(no_grant),
                "links": {k: link_totals(k) for k in self.links},
                "incomplete": self.incomplete,
            },
            "accounts": accounts,
            "performance": self.performance(),
        }

    def performance(self) -> dict:
        verified = self.verified()
        verify_cpu = sum(d.verify_cpu_s for d in self.displays)
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
# Scenarios: each fault alone, then all together; with segbind and without
# ------------------------------------------------------------------------------------------

def scenarios(faults: List[str]) -> List[Tuple[str, Tuple[str, ...]]]:
    """(name, faults) for each fault alone, then every one of them together."""
    out = [(f, (f,)) for f in faults]
    if len(faults) > 1:
        out.append(("all together", tuple(faults)))
    return out


def run_scenarios(cfg: FleetConfig, faults: List[str], progress: bool = False,
                  progress_stream=None) -> Tuple[dict, Fleet]:
    """Every scenario twice on the same seed, with segbind and without; plus all faults with the
    cloud's second line off (the displays alone). Returns the matrix and the fleet to picture."""
    rows = []
    picture_fleet: Optional[Fleet] = None
    for name, chosen in scenarios(faults):
        with_ = run_fleet(replace(cfg, faults=chosen, defended=True), progress, progress_stream)[0]
        without = run_fleet(replace(cfg, faults=chosen, defended=False), progress, progress_stream)[0]
        rows.append(_row(name, chosen, with_, without))
    alone, picture_fleet = run_fleet(replace(cfg, faults=tuple(faults), defended=True, second_line=False),
                                     progress, progress_stream)
    rows.append(_row("all together, cloud second line off", tuple(faults), alone, None))
    return {"segbind_fleet_scenarios": 1, "config": cfg.as_dict(), "scenarios": rows,
            "picture_run": alone}, picture_fleet


def _row(name: str, faults: Tuple[str, ...], with_: dict, without: Optional[dict]) -> dict:
    w = with_["results"]
    row = {
        "scenario": name, "faults": list(faults),
        "with": {"foreign_shown": w["on"]["foreign_shown"], "forged_shown": w["on"]["forged_shown"],
                 "own_lost_to_verification": w["own_lost_to_verification"],
                 "own_without_grant": w["own_without_grant"], "own_never_delivered": w["own_never_delivered"],
                 "own_produced": w["own_produced"],
                 "own_accepted": w["on"]["own_accepted"], "own_delivered": w["off"]["own_delivered"],
                 "foreign_thumbnails": w["thumbnails"].get("foreign", 0),
                 "forged_thumbnails": w["thumbnails"].get("forged", 0),
                 "cloud_refused": sum(n for k, n in w["cloud"]["refused"].items() if k.startswith("second_line")),
                 "display_refused": w["on"]["refused"], "grant_refusals": w["grant_refusals"],
                 "cameras_halted": w["cameras_halted"], "sent": w["sent"]},
    }
    if without is not None:
        o = without["results"]
        row["without"] = {"foreign_shown": o["off"]["foreign_shown"], "forged_shown": o["off"]["forged_shown"],
                          "own_delivered": o["off"]["own_delivered"], "own_produced": o["own_produced"],
                          "own_never_delivered": o["own_never_delivered"],
                          "foreign_thumbnails": o["thumbnails"].get("foreign", 0),
                          "forged_thumbnails": o["thumbnails"].get("forged", 0),
                          "sent": o["sent"]}
    return row


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = fleet_options.parser()
    args = parser.parse_args(argv)
    if args.cameras < 1:
        parser.error("--cameras must be at least 1")
    seconds = args.seconds if args.seconds is not None else (20 if args.broker else 60)
    if seconds < 1:
        parser.error("--seconds must be at least 1")
    speed = args.speed if args.speed is not None else min(1.0, round(REALTIME_CAMERAS / args.cameras, 3))
    if speed <= 0:
        parser.error("--speed must be positive")
    if args.faults == "all":
        faults = list(FAULTS)
    elif args.faults == "none":
        faults = []
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            parser.error("unknown fault %s (known: %s)" % (", ".join(unknown), ", ".join(FAULTS)))
    cfg = FleetConfig(cameras=args.cameras, seconds=seconds, seed=args.seed, share=args.share,
                      broker=args.broker, speed=speed)
    if args.weak is not None:
        cfg.weak_cameras = cfg.weak_displays = args.weak
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    from host_sim import report

    where = "over MQTT at %s, real time x%g" % (args.broker, speed) if args.broker else \
        "in-process, simulated time"
    print("segbind fleet: %d cameras x %d s, seed %d, %s; faults: %s" % (
        cfg.cameras, cfg.seconds, cfg.seed, where, ", ".join(faults) or "none"), file=sys.stderr, flush=True)
    matrix, fleet = run_scenarios(cfg, faults, progress=not args.no_progress)
    print(report.table(matrix))
    paths = report.write(matrix, fleet, Path(args.out), png=not args.no_png, rows=args.rows)
    print("report: %s" % ", ".join(str(p) for p in paths))
    if args.browser:
        from host_sim.browser import demo_screenshot

        shown = demo_screenshot(Path(args.out) / "display.png")
        print("browser display: %s (%s)" % (shown["screenshot"], "; ".join(
            "%s: %d shown, refused %s" % (t["camera"], t["shown"], t["refused"] or "nothing") for t in shown["tiles"])))
    ok = all(r["with"]["foreign_shown"] == 0 and r["with"]["forged_shown"] == 0
             and r["with"]["own_lost_to_verification"] == 0 for r in matrix["scenarios"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
