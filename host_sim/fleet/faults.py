"""The fleet's hostile parties (fault injection, named so): a viewer that forges the camera it
was shared, and a contact that passes its own camera off under another owner's camera id.

The cloud's own bugs are ``host_sim.cloud.CloudFaults``; the events that set the others off
(a resale, a restored backup, a revocation) are scheduled by ``host_sim.fleet.world.Fleet``.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, List, Optional

from host_sim.fleet_camera import FleetCamera
from host_sim.transport import Message
from segbind.keyring import Binding
from segbind.owner import Owner
from segbind_core import control, topics
from segbind_core.crypto import MacKey
from segbind_core.nal import START_CODE
from segbind_core.protect import DOMAIN_SEGMENT, clear_lead, protect
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import build_sei_nal
from segbind_core.tag import LINK_SIZE, MAC_SIZE, Tag, compute_mac

if TYPE_CHECKING:
    from host_sim.fleet.parties import FleetDisplay, FleetOwner
    from host_sim.fleet.world import Fleet
    from host_sim.plan import CameraPlan


class Forger:
    """A viewer a camera is shared with, turned hostile (``viewer_forgery``): it holds the keys
    of its own slot for the periods it was granted (slot key, content key, key id), sees the
    stream, and injects segments of its own video tagged as the owner's camera, encrypted under
    the period's content key, continuing the chain (its slot's MAC right, the others guessed),
    as if from the camera's uplink."""

    def __init__(self, fleet: "Fleet", victim: "CameraPlan", display: "FleetDisplay", owner: Owner,
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
        last = self.display.last_verified.get((self.victim.owner, self.victim.name))
        if not self.fleet.cfg.defended and self.raw:  # without segbind there is nothing to forge: it sends
            self._send(self.raw[self.forged % len(self.raw)].data)  # its own video as the camera's
        elif last is not None and self.raw:
            tag, digest, slots = last
            capture = tag.capture_ms + tag.duration_ms  # type: ignore[attr-defined]
            binding = self._binding(tag, capture)
            if binding is not None and binding.slot < slots:
                self._inject(tag, digest, slots, binding, capture)
        if sched.now_ms < self.fleet.end_ms - 2000:
            sched.at(sched.now_ms + self.every_ms, self._forge)

    def _binding(self, tag, capture_ms: int) -> Optional[Binding]:
        """The forger's own slot for the victim's epoch, in the period of the forged capture time."""
        epoch = (tag.owner, tag.camera, tag.epoch)
        for b in self.owner.shared_with_me.values():
            if (b.owner, b.camera, b.epoch) == epoch and b.start_ms <= capture_ms < b.end_ms:
                return b
        return None

    def _inject(self, tag, previous_digest: bytes, slots: int, binding: Binding, capture_ms: int) -> None:
        raw = self.raw[self.forged % len(self.raw)]
        seq = tag.seq + 1
        lead = clear_lead(raw.data, raw.codec)
        protected = b"".join(bytes(p) for p in protect(raw.data, raw.codec, lead, binding.content_key,
                                                       tag.stream_id, seq, DOMAIN_SEGMENT))
        digest = hashlib.sha256(protected).digest()
        forged_tag = Tag(raw.codec, binding.key_id, tag.stream_id, seq, capture_ms, raw.duration_ms, raw.pictures,
                         raw.units, lead, previous_digest[:LINK_SIZE], digest[:4], slots)
        macs = [os.urandom(MAC_SIZE) for _ in range(slots)]   # the other slots' keys: guessed
        macs[binding.slot] = compute_mac(MacKey(binding.key), forged_tag.signed_fields(), digest)
        forged_tag.macs = macs
        sei = START_CODE + build_sei_nal(forged_tag.encode(), raw.codec)
        at = protected.find(START_CODE, 4)  # the tag goes right after the delimiter, as the camera puts it
        self._send(protected[:at] + sei + protected[at:])

    def _send(self, forged: bytes) -> None:
        self.forged += 1
        if len(self.samples) < 4:
            self.samples.append(forged)
        self.transport.publish(topics.camera_topic(self.victim.device, topics.SEG, self.fleet.prefix), forged, 1)


class CollidingCamera:
    """A contact passing its own camera off under another owner's camera id (``colliding_camera``,
    issue 20): its device, known to the cloud by an id of its own, is paired by the contact's
    app under the victim camera's id, and shared with an account that already holds the victim
    camera from its real owner. The contact commands it on its own network (the cloud carries
    none of it) and asks the cloud to route it to that account; its app offers that account the
    keys, period by period, like any share.

    What must hold: the colliding camera's video never reaches the victim camera's tile on any
    display (the recipient's app does not take such an offer, and displays key every tile by
    (owner, camera)). Without segbind the display goes by the cloud's label, which is whatever
    the camera calls itself."""

    def __init__(self, fleet: "Fleet", camera: FleetCamera, app: "FleetOwner", viewer: str) -> None:
        self.fleet = fleet
        self.camera = camera
        self.app = app
        self.viewer = viewer
        self.results: List[control.Result] = []
        app.devices[camera.name] = camera.device
        self.local = fleet.wiring.camera(len(fleet.plan.cameras), "lan-" + camera.device)
        self.local.subscribe(topics.camera_topic(camera.device, topics.CTL_RESULT, fleet.prefix), self._on_result)

    def pair(self) -> None:
        """The contact pairs its device out of band, under the other owner's camera id. Only once
        the broker has its subscription to the device's results: the result is not retained, and
        over MQTT it would otherwise race the subscription (a lost result stalled the set-up)."""
        self.local.wait_ready(10)
        self.app.pair(self.camera.name, self.camera.handover)

    def _on_result(self, msg: Message) -> None:
        with self.app._lock:
            try:
                result = self.app.owner.on_result(self.camera.name, msg.payload)
            except control.ControlError:
                return
        self.results.append(result)
        if result.op == control.PAIR and result.status == control.OK:
            self.app._request("claim", camera=self.camera.device)
            self.app.push_grants()
        elif result.op == control.ROTATE and result.accepted:
            self.app.push_grants()

    def share(self) -> None:
        """The contact shares it: a rotation with the viewer in slot 1, carried on its own network,
        the viewer's keys offered through the cloud, and the cloud asked to route it to the viewer."""
        app, name = self.app, self.camera.name
        cam = app.owner.cameras.get(name)
        if cam is None or not cam.paired:
            return
        with app._lock:
            command = app.owner.share(name, self.viewer, app.now_ms())
            offer = app.owner.offer_for(self.viewer, app.now_ms())
        app.push_grants()
        if offer is not None:
            app._request("offer", to=self.viewer, sealed=offer)
        app._request("share", camera=self.camera.device, viewer=self.viewer)
        self.camera.command(command)
