"""The incidents, reproduced and defeated: a fleet of cameras, their owners' apps, a cloud with
the incidents' bugs switchable, and one display per account, over a weak network.

    python3 -m host_sim.fleet                        # 24 cameras, 60 s, every fault, in-process
    python3 -m host_sim.fleet --cameras 1044         # the 2020 incident's scale
    python3 -m host_sim.fleet --faults relay_cache_2020,viewer_forgery
    python3 -m host_sim.fleet --engine mqtt          # over a private Mosquitto, real time
    python3 -m host_sim.fleet --engine nats          # ... and the owners' recording service on NATS

Every camera runs the real agent core (``segbind_agent.core.AgentCore``) and is claimed by its
owner's app (``segbind.owner`` behind ``host_sim.app``) with a pairing offer handed over out of
band; some are shared with a second account (a new epoch, a share offer the other account
accepts, grants to its display). Every display was enrolled by its owner out of band and takes
keys only from grants its owner signed and sealed to it, period by period. The cloud
(``host_sim.cloud``) routes, relays and carries; it holds no key and reads no picture.

Each fault of ``FAULTS`` can be switched on alone or with the others. A scenario runs twice on
the same seed: **with segbind** (cameras encrypt and tag, displays verify, cameras refuse a
rolled-back state, the cloud's second line checks routing and key ids) and **without** (plain
video, shown as routed). The ground truth (which camera really produced each delivered byte
string, and who may watch it) comes from a ledger the fleet fills as cameras tag, never from a
tag; what a stranger could see is measured by decoding what it was handed
(``host_sim.stranger``). docs/FLEET.md defines every number.

The package, by job: ``engines`` (how parties talk and time runs: in-process, MQTT, and MQTT with
the owners' recording service on NATS JetStream), ``parties`` (the counting display and owner's
app), ``faults`` (the hostile parties), ``world`` (one fleet: households, cloud, ground truth,
events), ``metrics`` (its numbers), ``scenarios`` (fault by fault, with and without; the command
line).
"""

from host_sim.fleet.engines import (
           ENGINES,
           Engine,
           InProcessEngine,
           MqttEngine,
           NatsEngine,
           Progress,
           Wiring,
           engine_for,
)
from host_sim.fleet.scenarios import main, passed, row, run_scenarios, scenarios
from host_sim.fleet.world import Fleet, run_fleet
from host_sim.fleet_camera import FleetCamera
from host_sim.fleet_options import FAULTS, REALTIME_CAMERAS
from host_sim.ledger import Ledger, Origin
from host_sim.plan import BASE_MS, AccountPlan, CameraPlan, FleetConfig, Plan, clip_templates, make_plan
from host_sim.scenes import SCENES, scene_clip, scene_frame
from host_sim.scheduler import RealTimeScheduler

__all__ = ["AccountPlan", "BASE_MS", "CameraPlan", "ENGINES", "Engine", "FAULTS", "Fleet", "FleetCamera", "FleetConfig",
           "InProcessEngine", "Ledger", "MqttEngine", "NatsEngine", "Origin", "Plan", "Progress", "REALTIME_CAMERAS",
           "RealTimeScheduler", "SCENES", "Wiring", "clip_templates", "engine_for", "main", "make_plan", "passed",
           "row", "run_fleet", "run_scenarios", "scene_clip", "scene_frame", "scenarios"]
