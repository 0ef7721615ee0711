"""The fleet's counting parties: a display that also counts what it was handed against the
ground truth, and an owner's app that also watches its display.

The counting never changes what a display does: with segbind it verifies with the library and
shows only what its grants accept (``host_sim.display.Display``); without segbind (the
baseline) it shows whatever the cloud delivers, in the tile the cloud's label names.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

from host_sim.app import OwnerApp
from host_sim.display import Display
from host_sim.ledger import Ledger, Origin, Position
from host_sim.tagview import peek_tag
from host_sim.transport import Message
from segbind import Reason, TimeWindow, Verdict
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner, RotationAlarm

if TYPE_CHECKING:
    from host_sim.fleet.world import Fleet
    from host_sim.plan import AccountPlan

OWN, FOREIGN, FORGED, GRACE = "own", "foreign", "forged", "grace"


class FleetDisplay(Display):
    """A ``Display`` that also counts, against the ledger's ground truth, what it was handed, what
    it showed and what a stranger could make of the bytes.

    Kinds of delivery: ``own`` (its account may rightly see it), ``foreign`` (someone else's),
    ``forged`` (bytes no camera made), ``grace`` (a camera that revoked this account, captured
    before the end of the last period it was granted: neither its own nor a stranger's).
    """

    def __init__(self, transport, account: str, identity: DisplayIdentity, fleet: "Fleet", samples: int = 4,
                 stale_s: float = 8.0) -> None:
        super().__init__(transport, account, identity, clock=fleet.clock_s, stale_s=stale_s,
                         window=TimeWindow(max_age_s=30.0, max_future_s=5.0), prefix=fleet.prefix)
        self.fleet = fleet
        self.verifying = fleet.cfg.defended
        self.max_samples = samples
        self.verify_calls = 0
        self.verify_cpu_s = 0.0
        self.delivered: collections.Counter = collections.Counter()  # kind -> deliveries
        self.accepted: collections.Counter = collections.Counter()   # kind -> shown (with segbind: accepted)
        self.own_delivered: Set[Position] = set()   # distinct own segments delivered
        self.own_accepted: Set[Position] = set()    # ... shown
        self.own_refused_no_grant: Set[Position] = set()  # ... refused: the display held no grant for it
        self.own_refused_after_forging: Set[Position] = set()  # ... refused where its account's own forgery
                                                               # (its own slot's key fools itself) took the place
        self.refused_own: collections.Counter = collections.Counter()   # reason -> own segments refused
        self.refused_other: collections.Counter = collections.Counter()
        self.forged_own_slot = 0       # forgeries this display's own account made (its own key fools itself)
        self.readable = 0              # foreign deliveries a stranger's decoder turns into the camera's scene
        self.other_owners_tile = 0     # segments shown in a tile of another owner than the camera's
        self.revoked_late = 0          # shown to a revoked viewer, captured after its last granted period
        self.stills_delivered: collections.Counter = collections.Counter()  # kind -> stills delivered
        self.stills_shown: collections.Counter = collections.Counter()      # kind -> stills shown
        self.stills_readable = 0       # foreign stills a stranger's decoder turns into the camera's scene
        self.last_verified: Dict[Tuple[str, str], Tuple[object, bytes, int]] = {}  # stream -> (tag, digest, slots)
        self.samples_own: List[tuple] = []         # (decodable bytes, camera, seq)
        self.samples_foreign: List[tuple] = []     # (bytes as handed, camera, seq, reason)

    # -- segments ----------------------------------------------------------------------------------

    def _on_segment(self, msg: Message) -> None:
        payload = msg.payload
        d = Ledger.digest(payload)
        origin = self.fleet.ledger.origin(d)
        kind = self.fleet.kind_of(self.account, origin)
        self.delivered[kind] += 1
        if kind == OWN and origin is not None:
            self.own_delivered.add(origin.position)
        if self.verifying:
            t0 = time.thread_time()
            super()._on_segment(msg)
            self.verify_cpu_s += time.thread_time() - t0
            self.verify_calls += 1
            verdict = self.last_verdict
            assert verdict is not None
            self._count_verdict(verdict, payload, origin, kind)
        else:  # no verification: every delivery is shown, in the tile the cloud's label names
            self._shown(kind, origin, payload, payload, self.fleet.tile_owner(self.account, self._label(msg)))
        if kind == FOREIGN and origin is not None and self.fleet.stranger_sees(payload, origin, d):
            self.readable += 1
        ack = getattr(self.transport, "ack", None)
        if ack is not None:
            ack(d)

    def _count_verdict(self, verdict: Verdict, payload: bytes, origin: Optional[Origin], kind: str) -> None:
        tag = verdict.tag
        if verdict.accepted and tag is not None:
            accepted = self.verifier.accepted
            plain = self.verifier.verified or b""
            self._shown(kind, origin, payload, plain, tag.owner)
            if kind == FORGED and self._forged_by_me(tag):
                self.forged_own_slot += 1
            if accepted is not None:
                fields = peek_tag(payload)
                self.last_verified[tag.stream] = (tag, accepted.found.digest, fields.slots if fields else 1)
        elif kind == OWN:
            self.refused_own[verdict.reason.value] += 1
            if verdict.reason is Reason.NO_GRANT and origin is not None:
                self.own_refused_no_grant.add(origin.position)
            elif origin is not None and self.forged_own_slot and self._forged_by_me_camera(origin.camera):
                self.own_refused_after_forging.add(origin.position)  # its own forgery took that place
        else:
            self.refused_other[verdict.reason.value] += 1
            if len(self.samples_foreign) < self.max_samples - 1 and origin is not None:
                self.samples_foreign.append((payload, origin.camera, origin.seq, verdict.reason.value))

    def _shown(self, kind: str, origin: Optional[Origin], payload: bytes, decodable: bytes,
               tile_owner: Optional[str]) -> None:
        """A delivery shown (``decodable``: what the display's decoder got), in a tile of ``tile_owner``."""
        self.accepted[kind] += 1
        if origin is None:
            return
        if kind == OWN:
            self.own_accepted.add(origin.position)
            if len(self.samples_own) < self.max_samples and origin.seq % 3 == 2:
                self.samples_own.append((decodable, origin.camera, origin.seq))
        elif kind == FOREIGN and not self.verifying and len(self.samples_foreign) < self.max_samples - 1:
            self.samples_foreign.append((payload, origin.camera, origin.seq, "shown"))
        if tile_owner is not None and tile_owner != origin.owner:
            self.other_owners_tile += 1
        if self.fleet.revoked_late(self.account, origin):
            self.revoked_late += 1

    @staticmethod
    def _label(msg: Message) -> str:
        label = (msg.user_properties or {}).get("camera")
        return label if isinstance(label, str) else ""

    def _forged_by_me(self, tag) -> bool:
        return self._forged_by_me_camera(tag.camera)

    def _forged_by_me_camera(self, camera: str) -> bool:
        plan = self.fleet.camera_plan.get(camera)
        return plan is not None and plan.forger == self.account

    # -- stills ------------------------------------------------------------------------------------

    def _on_still(self, msg: Message) -> None:
        payload = msg.payload
        d = Ledger.digest(payload)
        origin = self.fleet.ledger.origin(d)
        kind = self.fleet.kind_of(self.account, origin)
        self.stills_delivered[kind] += 1
        if self.verifying:
            super()._on_still(msg)
        else:
            self.stills_shown[kind] += 1
        if kind == FOREIGN and origin is not None and self.fleet.stranger_sees(payload, origin, d):
            self.stills_readable += 1

    def on_still(self, verdict: Verdict, msg: Message) -> None:
        if verdict.accepted:
            origin = self.fleet.ledger.origin(Ledger.digest(msg.payload))
            self.stills_shown[self.fleet.kind_of(self.account, origin)] += 1

    @property
    def flagged_total(self) -> int:
        return sum(len(v) for v in self.flagged.values())


class FleetOwner(OwnerApp):
    """An owner's app that also watches its display: when a feed it should see goes stale, it
    asks the cloud again for its routing (claims, shares) and re-sends its grants. ``devices``
    maps a camera's id to the cloud's id for it where they differ."""

    def __init__(self, transport, owner: Owner, fleet: "Fleet", plan: "AccountPlan") -> None:
        super().__init__(transport, owner, clock=fleet.clock_s, prefix=fleet.prefix)
        self.fleet = fleet
        self.plan = plan
        self.display: Optional[FleetDisplay] = None
        self.devices: Dict[str, str] = {}
        self.resyncs = 0
        self.alarms_raised = 0
        self._last_resync = -1e18
        self.on_alarm = self._count_alarms

    def _count_alarms(self, alarms: List[RotationAlarm]) -> None:
        self.alarms_raised += len(alarms)

    def check(self) -> None:
        if self.display is None or not self.fleet.cfg.defended:
            return  # without segbind no display raises an alarm
        stale = {a.camera for a in self.display.alarms()}
        mine = set(self.owner.cameras) | {b.camera for b in self.owner.shared_with_me.values()}
        if not stale & mine or self.fleet.scheduler.now_ms - self._last_resync < 10_000:
            return
        self._last_resync = self.fleet.scheduler.now_ms
        self.resyncs += 1
        for camera, cam in sorted(self.owner.cameras.items()):
            if cam.paired:
                device = self.devices.get(camera, camera)
                self._request("claim", camera=device)
                for viewer in cam.newest_shares:
                    self._request("share", camera=device, viewer=viewer)
        self.push_grants()
