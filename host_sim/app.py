"""The owner's app on the network: ``segbind.owner.Owner`` behind a transport to the cloud.

The decisions and the keys are the library's (``segbind.owner``); this module
carries them: requests to the reference cloud (``host_sim.cloud.request``), the
cameras' results and contacts' share offers back. The pairing offer never goes
through it: ``pair`` hands it to a callable standing in for the camera's lens
(the local hand-over: ``FleetCamera.handover``, or ``segbind-agent pair``).

Order matters and is kept here: grants go to the owner's displays before the
command that needs them is sent, so a display holds a new epoch's key before the
camera tags with it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Dict, List, Optional

from host_sim.cloud import request
from host_sim.transport import Message, Transport
from segbind.grants import Display as DisplayIdentity
from segbind.grants import GrantError
from segbind.owner import Owner, OwnerError
from segbind_core import control, topics

log = logging.getLogger("segbind.app")


class OwnerApp:
    """``clock`` gives seconds (the simulation's clock in the fleet). ``accept_shares``: take
    every contact's share offer at once (a person would confirm it in the app)."""

    def __init__(self, transport: Transport, owner: Owner, *, clock: Callable[[], float] = time.time,
                 accept_shares: bool = True, prefix: str = topics.TOPIC_PREFIX) -> None:
        self.transport = transport
        self.owner = owner
        self.clock = clock
        self.accept_shares = accept_shares
        self.prefix = prefix
        self.results: List[control.Result] = []
        self.refused_results: Dict[str, int] = {}
        self.refused_offers: Dict[str, int] = {}
        self.on_change: Optional[Callable[[str, control.Result], None]] = None
        self._cond = threading.Condition()

    @property
    def name(self) -> str:
        return self.owner.name

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> "OwnerApp":
        t, p = self.transport, self.prefix
        t.subscribe(topics.account_topic(self.name, topics.RESULTS, p), self._on_result)
        t.subscribe(topics.account_topic(self.name, topics.OFFERS, p), self._on_offer)
        t.start()
        t.wait_ready(10)
        return self

    def _request(self, op: str, **params) -> None:
        self.transport.publish(topics.account_topic(self.name, topics.REQUESTS, self.prefix),
                               request(op, **params), qos=1)

    # -- what the owner does -----------------------------------------------------------------

    def pair(self, camera: str, handover: Callable[[bytes], None]) -> None:
        """Claim ``camera``: a fresh pairing offer, handed over out of band (never the cloud)."""
        handover(self.owner.pairing_offer(camera, self.now_ms()))

    def enroll(self, display: DisplayIdentity) -> str:
        """Enroll one of the owner's displays (out of band); the cloud learns only its id."""
        code = self.owner.enroll(display)
        self._request("display", display=display.display)
        return code

    def push_grants(self) -> None:
        """Every display of the owner gets its whole keyring again, sealed to it."""
        for display in sorted(self.owner.displays):
            self._request("grants", display=display, sealed=self.owner.grants_for(display, self.now_ms()))

    def _new_epoch(self, camera: str, command: bytes) -> None:
        """Keys first: the owner's displays, and every viewer of the new epoch (its slot's key),
        then the command that makes the camera tag with them."""
        self.push_grants()
        epochs = self.owner.cameras[camera].epochs
        for viewer in epochs[max(epochs)]:
            self._request("offer", to=viewer, sealed=self.owner.share_offer(camera, viewer, self.now_ms()))
        self._request("command", camera=camera, payload=command.hex())

    def share(self, camera: str, viewer: str) -> None:
        command = self.owner.share(camera, viewer, self.now_ms())
        self._request("share", camera=camera, viewer=viewer)
        self._new_epoch(camera, command)

    def revoke(self, camera: str, viewer: str) -> None:
        self._new_epoch(camera, self.owner.revoke(camera, viewer, self.now_ms()))
        self._request("unshare", camera=camera, viewer=viewer)

    def rotate(self, camera: str) -> None:
        self._new_epoch(camera, self.owner.rotate(camera, self.owner.cameras[camera].shares, self.now_ms()))

    def release(self, camera: str) -> None:
        self._request("command", camera=camera, payload=self.owner.release(camera, self.now_ms()).hex())

    def forget(self, camera: str) -> None:
        """The camera was reset by its button, or sold: stop granting its keys."""
        self.owner.forget(camera)
        self._request("forget", camera=camera)
        self.push_grants()

    # -- what comes back ---------------------------------------------------------------------

    def _on_result(self, msg: Message) -> None:
        camera = topics.id_of_topic(msg.topic, self.prefix) and (msg.user_properties or {}).get("camera")
        if not isinstance(camera, str):
            try:
                camera = control.decode_result(msg.payload)[0].camera
            except control.ControlError:
                return
        try:
            result = self.owner.on_result(camera, msg.payload)
        except control.ControlError as exc:
            with self._cond:
                self.refused_results[exc.reason] = self.refused_results.get(exc.reason, 0) + 1
            log.warning("%s: a result for %s refused: %s", self.name, camera, exc)
            return
        if result.status == control.OK and result.op == control.PAIR:
            self._request("claim", camera=camera)
            self.push_grants()
        elif result.status == control.OK and result.op == control.RELEASE:
            self._request("forget", camera=camera)
            self.push_grants()
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()
        if self.on_change is not None:
            self.on_change(camera, result)

    def _on_offer(self, msg: Message) -> None:
        try:
            wrapped = json.loads(msg.payload)
            sender, sealed = wrapped["from"], wrapped["sealed"]
        except (ValueError, KeyError, TypeError):
            return
        if not self.accept_shares:
            return
        try:
            self.owner.accept_offer(sealed, sender)
        except (GrantError, OwnerError) as exc:
            reason = str(getattr(exc, "reason", "not_a_contact"))
            with self._cond:
                self.refused_offers[reason] = self.refused_offers.get(reason, 0) + 1
            log.warning("%s: a share offer from %s refused: %s", self.name, sender, exc)
            return
        self.push_grants()

    # -- for tests and tools -----------------------------------------------------------------

    def wait_for(self, predicate: Callable[["OwnerApp"], bool], timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def result_for(self, camera: str, op: int) -> Optional[control.Result]:
        with self._cond:
            for result in reversed(self.results):
                if result.camera == camera and result.op == op:
                    return result
        return None
