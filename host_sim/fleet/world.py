"""One fleet: its households (an owner's app and a display per account, cameras), the cloud with
the faults switched on, the ground truth, and the events of the run (resales, restored backups,
revocations, forgeries, a colliding camera). An engine (``host_sim.fleet.engines``) carries it.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Dict, List, Optional, Tuple

from host_sim.cache import QualityRelay, StreamingQualityCache
from host_sim.cloud import CloudFaults
from host_sim.fleet.engines import Engine, Progress, Wiring, engine_for
from host_sim.fleet.faults import CollidingCamera, Forger
from host_sim.fleet.metrics import results
from host_sim.fleet.parties import FOREIGN, FORGED, GRACE, OWN, FleetDisplay, FleetOwner
from host_sim.fleet_camera import FleetCamera
from host_sim.ledger import Ledger, Origin
from host_sim.netem import Link
from host_sim.plan import BASE_MS, FleetConfig, clip_templates, make_plan
from host_sim.stranger import StrangersEye
from host_sim.transport import ImpairedTransport
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner, exchange_contacts
from segbind_core import control, topics

log = logging.getLogger("segbind.fleet")

CLOUD_FAULTS = set(CloudFaults.__dataclass_fields__)  # type: ignore[attr-defined]


class Fleet:
    """Builds and runs one fleet; ``run()`` returns the result dictionary (``host_sim.fleet.metrics``)."""

    def __init__(self, cfg: FleetConfig, progress: bool = False, progress_stream=None,
                 templates: Optional[Dict[Tuple[int, int], List[bytes]]] = None) -> None:
        self.cfg = cfg
        self.show_progress = progress
        self.progress_stream = progress_stream
        self.plan = make_plan(cfg)
        self.camera_plan = {c.device: c for c in self.plan.cameras}
        self.ledger = Ledger()
        self.cameras: List[FleetCamera] = []
        self.displays: List[FleetDisplay] = []
        self.owners: Dict[str, FleetOwner] = {}
        self.forgers: List[Forger] = []
        self.colliding: List[CollidingCamera] = []
        self.impaired: List[ImpairedTransport] = []
        self.links: Dict[str, List[Tuple[bool, Link]]] = {"uplink": [], "downlink": [], "receipts": []}
        self.true_owner = {c.device: c.owner for c in self.plan.cameras}
        self.revocations: Dict[Tuple[str, str], int] = {}   # (device, viewer) -> end of its last granted period
        self.revoked_at: Dict[Tuple[str, str], int] = {}    # (device, viewer) -> when its owner revoked it
        self._tiles = self._known_tiles()
        self.incomplete = False
        self.end_ms = 0.0
        self.prefix = topics.TOPIC_PREFIX
        self.templates = templates
        self.eye: Optional[StrangersEye] = None
        self.setup_s = self.wall_s = self.cpu_s = self.sim_ms = 0.0

    def clock_s(self) -> float:
        return (BASE_MS + self.scheduler.now_ms) / 1000.0

    # -- the ground truth ------------------------------------------------------------------------

    def audience(self, device: str, capture_ms: int) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """Who may rightly watch what ``device`` captures at ``capture_ms`` (the ground truth, not
        the cloud's): its real owner then and its viewers, and the revoked viewers whose last
        granted period still holds it (grace)."""
        owner = self.true_owner[device]
        plan = self.camera_plan[device]
        viewers = list(plan.viewers) if owner == plan.owner and not plan.colliding else []
        grace = []
        for viewer in list(viewers):
            revoked = self.revoked_at.get((device, viewer))
            if revoked is not None and capture_ms >= revoked:
                viewers.remove(viewer)
                if capture_ms < self.revocations[(device, viewer)]:
                    grace.append(viewer)
        return (owner,) + tuple(viewers), tuple(grace)

    def kind_of(self, account: str, origin: Optional[Origin]) -> str:
        if origin is None:
            return FORGED
        if account in origin.audience:
            return OWN
        if account in origin.grace:
            return GRACE
        return FOREIGN

    def _known_tiles(self) -> Dict[str, Dict[str, str]]:
        """account -> {camera label: the owner the account knows that camera as}: its own cameras,
        those shared with it, and those it buys; what a display without segbind goes by."""
        tiles: Dict[str, Dict[str, str]] = collections.defaultdict(dict)
        for cam in self.plan.cameras:
            if cam.colliding:
                tiles[cam.owner][cam.name] = cam.owner
                continue
            for account in [cam.owner] + cam.viewers:
                tiles[account][cam.name] = cam.owner
            if cam.buyer:
                tiles[cam.buyer][cam.name] = cam.buyer
        return tiles

    def tile_owner(self, account: str, label: str) -> Optional[str]:
        """The owner whose camera a display without verification shows a delivery as: the one its
        account knows the cloud's label by (None: a camera it does not know, a tile of its own)."""
        return self._tiles.get(account, {}).get(label)

    def revoked_late(self, account: str, origin: Origin) -> bool:
        """Captured by a camera that revoked ``account``, after the last period it was granted."""
        bound = self.revocations.get((origin.camera, account))
        return bound is not None and origin.capture_ms >= bound

    def stranger_sees(self, payload: bytes, origin: Origin, digest: bytes) -> bool:
        return self.eye is not None and self.eye.shows_scene(payload, origin.scene, digest)

    # -- building ------------------------------------------------------------------------------

    def build(self, wiring: Wiring) -> None:
        cfg, plan = self.cfg, self.plan
        self.wiring = wiring
        self.scheduler = scheduler = wiring.scheduler
        self.prefix = prefix = wiring.prefix
        faults = CloudFaults(**{f: True for f in cfg.faults if f in CLOUD_FAULTS})
        self.cloud = self.engine.make_cloud(wiring, faults, cfg.defended and cfg.second_line)
        for c in plan.cameras:                   # the operator provisions their identities
            self.cloud.provision(c.device, c.identity)
        self.cache = StreamingQualityCache(cfg.slots, cfg.capacity, bug=cfg.has("relay_cache_2020"))
        self.relay = QualityRelay(self.cache, scheduler,
                                  lambda account, camera, payload: self.cloud.deliver(account, camera, payload,
                                                                                      "quality-cache"),
                                  Ledger.digest, cfg.retry_ms)
        self.cloud.relay = self.relay
        wiring.cloud.subscribe(topics.every_account(topics.RECEIPTS, prefix), self.relay.on_receipt_message)
        self.cloud.start()

        for i, acct in enumerate(plan.accounts):
            profile = cfg.weak if acct.weak else cfg.good
            down, back = Link(profile, acct.link_seed), Link(profile, acct.back_seed)
            self.links["downlink"].append((acct.weak, down))
            self.links["receipts"].append((acct.weak, back))
            transport = ImpairedTransport(
                wiring.display(i, acct.name), scheduler, down, back,
                topics.account_topic(acct.name, topics.SEG, prefix),
                topics.account_topic(acct.name, topics.RECEIPTS, prefix), shared=wiring.shared_displays)
            self.impaired.append(transport)
            owner = Owner.new(acct.name, test_only=True, period_s=cfg.period_s, lead_ms=cfg.lead_ms,
                              alarm_after_ms=cfg.alarm_after_ms)
            identity = DisplayIdentity.new(acct.display, test_only=True)
            app = FleetOwner(wiring.app(i, acct.name), owner, self, acct)
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

        templates = self.templates or {}
        for i, cam in enumerate(plan.cameras):
            uplink = Link(cfg.weak if cam.weak else cfg.good, cam.link_seed)
            self.links["uplink"].append((cam.weak, uplink))
            camera = FleetCamera(cam, cfg, templates[(cam.codec, cam.clip)], wiring.camera(i, cam.device), scheduler,
                                 uplink, prefix, ledger=self.ledger, audience=self.audience,
                                 stream_id=BASE_MS + i, protected=cfg.defended and cfg.rollback_check,
                                 plain=not cfg.defended)
            self.cameras.append(camera)
            camera.begin()
        for camera in self.cameras:              # each owner claims its camera: the offer goes by the lens
            if camera.plan.colliding:
                colliding = CollidingCamera(self, camera, self.owners[camera.plan.owner], camera.plan.viewers[0])
                self.colliding.append(colliding)
                colliding.pair()
            else:
                self.owners[camera.plan.owner].pair(camera.name, camera.handover)
        for cam in plan.cameras:
            if cam.forger is not None:
                forger_app = self.owners[cam.forger]
                own = self.camera_plan[forger_app.plan.cameras[0]] if forger_app.plan.cameras else cam
                self.forgers.append(Forger(self, cam, forger_app.display, forger_app.owner,  # type: ignore[arg-type]
                                           templates[(own.codec, own.clip)], wiring.camera(0, "forger")))
        self.engine.join(self)

    def _on_change(self, camera: str, result: control.Result) -> None:
        """An owner's app learned its camera's pairing: share it as planned."""
        plan = self.camera_plan.get(camera)
        if plan is None or plan.colliding or result.op != control.PAIR or result.status != control.OK:
            return
        app = self.owners[result.owner]
        if app.name == plan.owner:
            for viewer in plan.viewers:
                app.share(camera, viewer)

    # -- what engines ask ------------------------------------------------------------------------

    def _expected(self) -> Dict[str, set]:
        return {a.name: {(self.camera_plan[c].owner, self.camera_plan[c].name) for c in a.cameras + a.shared_in}
                for a in self.plan.accounts}

    def set_up_progress(self) -> Tuple[int, int]:
        want = self._expected()
        held = sum(len(want[d.account] & {(o, c) for o, c, _e in d.grants.keyring.grants()}) for d in self.displays)
        routed = sum(1 for c in self.plan.cameras if self.cloud.routing.owner.get(c.device) == c.owner)
        return held, routed

    def set_up(self) -> bool:
        held, routed = self.set_up_progress()
        if held == sum(len(w) for w in self._expected().values()) and routed == len(self.plan.cameras):
            self.cloud.flush()
            return True
        return False

    def renew(self) -> None:
        for app in self.owners.values():
            app.renew()

    def start(self, start_ms: float) -> None:
        """The cameras' video starts at ``start_ms``; the run's events are scheduled from it."""
        self.cloud.flush()
        for cam in self.cameras:
            cam.start_video(start_ms)
        cfg = self.cfg
        run_ms = cfg.seconds * 1000.0
        at = self.scheduler.at
        if any(c.buyer for c in self.plan.cameras):
            at(start_ms + cfg.event_at * run_ms, self._resale)
        if cfg.has("state_rollback"):
            at(start_ms + (cfg.event_at + 0.2) * run_ms, self._rollback)
        if any(c.revoked for c in self.plan.cameras):
            at(start_ms + cfg.revoke_at * run_ms, self._revoke)
        for colliding in self.colliding:
            at(start_ms + cfg.collide_at * run_ms, colliding.share)
        for forger in self.forgers:
            forger.start(start_ms + 0.25 * run_ms)
        at(start_ms + 1000, self._tick)
        at(start_ms + 5000, self._periodic)

    def done(self) -> bool:
        return all(c.done for c in self.cameras)

    def settled(self) -> bool:
        arrived = sum(t.arrived for t in self.impaired)
        return self.relay.outstanding == 0 and arrived == sum(self.cloud.delivered.values())

    def verified(self) -> int:
        return sum(d.verify_calls for d in self.displays)

    # -- events during the run -------------------------------------------------------------------

    def _resale(self) -> None:
        """Each planned camera is sold: its buyer presses the reset button and pairs it."""
        for camera in self.cameras:
            buyer = camera.plan.buyer
            if buyer is None:
                continue
            camera.backup = camera.core.state.copy()   # a backup of the state, made before the sale
            self.true_owner[camera.device] = buyer
            camera.press_reset()
            self.owners[buyer].pair(camera.name, camera.handover)
        if self.cfg.has("restart_during_claim"):
            self.cloud.restart()

    def _rollback(self) -> None:
        for camera in self.cameras:
            if camera.plan.rolled_back:
                camera.restore_backup()

    def _revoke(self) -> None:
        """Owners revoke the contacts planned (``dropped_rotate``): a new epoch without them. From
        now on the contact may rightly see nothing; what its last granted period covers is its
        grace (GRANTS.md 8: at most one period and the lead)."""
        now = BASE_MS + int(self.scheduler.now_ms)
        size, lead = self.cfg.period_s * 1000, self.cfg.lead_ms
        current = now // size
        last = current + 1 if now >= (current + 1) * size - lead else current
        for cam in self.plan.cameras:
            if cam.revoked is None or self.true_owner[cam.device] != cam.owner:
                continue
            self.revoked_at[(cam.device, cam.revoked)] = now
            self.revocations[(cam.device, cam.revoked)] = (last + 1) * size
            self.owners[cam.owner].revoke(cam.name, cam.revoked)

    def _tick(self) -> None:
        """Every second of the run, each owner's app does what time asks: renewals ahead of each
        period, pending rotations sent again, alarms."""
        for app in self.owners.values():
            app.tick()
        if self.scheduler.now_ms < self.end_ms:
            self.scheduler.at(self.scheduler.now_ms + 1000, self._tick)

    def _periodic(self) -> None:
        for app in self.owners.values():
            app.check()
        if self.scheduler.now_ms < self.end_ms:
            self.scheduler.at(self.scheduler.now_ms + 5000, self._periodic)

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> dict:
        t_setup = time.monotonic()
        if self.templates is None:
            self.templates = clip_templates(self.cfg)
        if self.cfg.stranger_eye:
            self.eye = StrangersEye(self.templates)
        self.setup_s = time.monotonic() - t_setup
        label = "fleet" if self.cfg.engine_name == "in-process" else "fleet (%s)" % self.cfg.engine_name
        self.engine: Engine = engine_for(self.cfg, Progress(1.0, label, self.progress_stream, self.show_progress))
        try:
            self.build(self.engine.open())
            self.wall_s, self.cpu_s, self.sim_ms = self.engine.run(self)
            out = results(self)
            service = self.engine.report(self)
            if service is not None:
                out["results"]["service"] = service
            clear = getattr(self.engine, "clear_retained", None)
            if clear is not None:  # leave the broker as found (displays gone first)
                clear([topics.display_topic(a.display, topics.GRANTS, self.prefix) for a in self.plan.accounts]
                      + [topics.camera_topic(c.device, topics.STATUS, self.prefix) for c in self.plan.cameras])
            return out
        finally:
            self.engine.close()


def run_fleet(cfg: FleetConfig, progress: bool = False, progress_stream=None,
              templates: Optional[Dict[Tuple[int, int], List[bytes]]] = None) -> Tuple[dict, Fleet]:
    fleet = Fleet(cfg, progress, progress_stream, templates)
    return fleet.run(), fleet
