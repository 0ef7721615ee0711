"""The fleet's configuration and its plan: who owns which camera, who shares what, which
scene each camera looks at, which link it has, and what goes wrong where. Pure data, made
from a seed (``make_plan``), so a run can be reproduced exactly.

A camera has two names here, as in a real product: ``name``, the id its owner's app pairs
it under and its keys bind (what people read), and ``device``, the id the cloud knows the
device by (its topic level, its broker identity). They are the same for every camera but
the ``colliding_camera`` fault's, whose owner passes it off under another owner's camera id.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from host_sim.fleet_options import FAULTS
from host_sim.netem import LinkProfile
from host_sim.scenes import scene_clip
from segbind_core.segment import Segment, Segmenter

# 2020-01-01T00:00:30Z: capture times and stream ids of the simulated cameras start here, half a
# minute into a minute, so that the first boundary of 60-second periods falls 30 s into a run:
# every run renews every holder at least once, and a revocation early in a run is followed by
# a period the revoked holder was never granted.
BASE_MS = 1_577_836_830_000

GOOD = LinkProfile(loss=0.002, delay_ms=30, jitter_ms=40, duplicate=0.002)
WEAK = LinkProfile.weak()

RESALE_FAULTS = {"resale_without_reset", "restart_during_claim", "state_rollback"}


@dataclass
class FleetConfig:
    cameras: int = 24
    seconds: int = 60
    seed: int = 1
    faults: Tuple[str, ...] = ()  # names from FAULTS
    defended: bool = True         # segbind on: cameras encrypt and tag, displays verify, the cloud's second
                                  # line, cameras refuse a rolled-back state; off: plain video, shown as routed
    second_line: bool = True      # the cloud's second line (only when defended)
    rollback_check: bool = True   # cameras refuse a rolled-back state (only when defended)
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
    revoke_at: float = 0.15       # dropped_rotate: when owners revoke a contact (a fraction of the run)
    collide_at: float = 0.1       # colliding_camera: when the contact shares its colliding camera
    still_every: int = 10         # a camera event (and its still, the event's thumbnail) every N segments
    stale_s: float = 8.0          # a display's stale-feed alarm
    period_s: int = 60            # the owners' period length (GRANTS.md 8; 60 s is the shortest)
    lead_ms: int = 10_000         # ... and how long before a period its keys go out
    alarm_after_ms: int = 20_000  # ... and how long a rotation may stay unconfirmed before the alarm
    stranger_eye: bool = True     # decode what strangers were handed and compare it with the scenes
    good: LinkProfile = GOOD
    weak: LinkProfile = WEAK
    engine: Optional[str] = None  # how the parties talk and time runs: "in-process" (default), "mqtt", "nats"
    broker: Optional[str] = None  # mqtt: "host:port", "mqtt://host:port" or "local"
    speed: float = 1.0            # real-time runs: simulated ms per wall ms
    pool: int = 8                 # real-time runs: MQTT connections for cameras, and for displays
    workers: int = 2              # nats: the recording service's worker processes
    samples: int = 4              # segments each display keeps for the picture

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULTS))
        if unknown:
            raise ValueError("unknown faults: %s (known: %s)" % (", ".join(unknown), ", ".join(FAULTS)))

    @property
    def engine_name(self) -> str:
        """The engine this run uses: the one named, else "mqtt" with a broker, else "in-process"."""
        return self.engine or ("mqtt" if self.broker else "in-process")

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
        d["engine"] = self.engine_name
        d["transport"] = "mqtt" if self.engine_name == "mqtt" else self.engine_name
        return d


@dataclass
class CameraPlan:
    name: str                       # the id its owner pairs it under, and its keys bind
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
    revoked: Optional[str] = None   # dropped_rotate: the viewer its owner revokes
    device_id: Optional[str] = None  # the cloud's id for it, when not ``name`` (colliding_camera)

    @property
    def device(self) -> str:
        """The id the cloud knows the device by: its topic level."""
        return self.device_id or self.name

    @property
    def colliding(self) -> bool:
        """A camera passed off under another owner's camera id (colliding_camera)."""
        return self.device_id is not None


@dataclass
class AccountPlan:
    name: str
    cameras: List[str]              # devices owned at the start
    shared_in: List[str]            # devices shared with it at the start
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

    def camera(self, device: str) -> CameraPlan:
        return next(c for c in self.cameras if c.device == device)


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
    order = sorted(shared)
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
            forger=viewers[0] if viewers and cfg.has("viewer_forgery") and order.index(i) % 2 == 0 else None,
            revoked=viewers[0] if viewers and cfg.has("dropped_rotate") and (order.index(i) % 2 == 1 or len(order) == 1)
            else None,
            codec=codec))
    owned: Dict[str, List[str]] = {a: [] for a in owners}
    shared_in: Dict[str, List[str]] = {a: [] for a in owners}
    for cam in cameras:
        owned[cam.owner].append(cam.device)
        for viewer in cam.viewers:
            shared_in[viewer].append(cam.device)
    accounts = [AccountPlan(a, owned[a], shared_in[a], rng.random() < cfg.weak_displays, rng.getrandbits(32),
                            rng.getrandbits(32)) for a in owners]
    if cfg.has("colliding_camera") and shared and n >= 3:
        victim = cameras[order[0]]
        viewer = victim.viewers[0]
        hostile = next(a for a in owners[order[0] + 2:] + owners[:order[0] + 2] if a not in (victim.owner, viewer))
        other = (owners.index(hostile) + 5) % n  # what its camera really looks at: another scene than the victim's
        colliding = CameraPlan(victim.name, hostile, [viewer], cameras[other].clip, rng.uniform(0, cfg.segment_ms),
                               False, rng.getrandbits(32), "factory-%s-c" % victim.name,
                               codec=cameras[other].codec, device_id="%s-c" % victim.name)
        cameras.append(colliding)
        owned[hostile].append(colliding.device)  # the hostile account's plan holds this very list
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
