"""The owner's app on the network: ``segbind.owner.Owner`` behind a transport to the cloud.

The decisions and the keys are the library's (``segbind.owner``); this module
carries them: requests to the reference cloud (``host_sim.cloud.request``), the
cameras' results and contacts' share offers back. The pairing offer never goes
through it: ``pair`` hands it to a callable standing in for the camera's lens
(the local hand-over: ``FleetCamera.handover``, or ``segbind-agent pair``).

Order matters and is kept here: grants go to the owner's displays before the
command that needs them is sent, so a display holds a new epoch's key before the
camera tags with it.

Time matters too (``tick``, every ``tick_s`` when given): every holder is renewed ahead
of each period (``segbind.owner.Owner.renewal_due``), so a revoked one loses access
whether or not the cloud forwards the rotation; a rotation the camera has not confirmed
is sent again with a bounded backoff, and raises an alarm (here, and on the owner's
displays through the grants) once it is pending past the owner's deadline.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from host_sim.cloud import request
from host_sim.transport import Message, Transport
from segbind.grants import Display as DisplayIdentity
from segbind.grants import DisplayCard, GrantError, ServiceCard
from segbind.owner import Owner, OwnerError, Renewal, RotationAlarm
from segbind_agent.link import wait_until
from segbind_core import control, topics

log = logging.getLogger("segbind.app")


class OwnerApp:
    """``clock`` gives seconds (the simulation's clock in the fleet). ``accept_shares``: take
    every contact's share offer at once (a person would confirm it in the app). ``tick_s``:
    run ``tick`` that often on a thread of its own (else the caller calls it)."""

    def __init__(self, transport: Transport, owner: Owner, *, clock: Callable[[], float] = time.time,
                 accept_shares: bool = True, prefix: str = topics.TOPIC_PREFIX,
                 tick_s: Optional[float] = None) -> None:
        self.transport = transport
        self.owner = owner
        self.clock = clock
        self.accept_shares = accept_shares
        self.prefix = prefix
        self.tick_s = tick_s
        self.results: List[control.Result] = []
        self.refused_results: Dict[str, int] = {}
        self.refused_offers: Dict[str, int] = {}
        self.alarms: List[RotationAlarm] = []      # the rotations pending past the deadline now
        self.retries = 0                           # commands sent again
        self.renewals = 0
        self.on_change: Optional[Callable[[str, control.Result], None]] = None
        self.on_alarm: Optional[Callable[[List[RotationAlarm]], None]] = None
        self._cond = threading.Condition()
        self._lock = threading.RLock()             # the Owner is used from the transport's thread and the ticker's
        # requests leave in the order they were made: a message is queued in the same critical
        # section that gave it its serial, and one thread at a time sends the queue (see _flush)
        self._outbox: Deque[Tuple[str, Dict[str, Any]]] = collections.deque()
        self._sending = False
        self._stopped = threading.Event()

    @property
    def name(self) -> str:
        return self.owner.name

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> "OwnerApp":
        t, p = self.transport, self.prefix
        t.subscribe(topics.account_topic(self.name, topics.RESULTS, p), self._on_result)
        t.subscribe(topics.account_topic(self.name, topics.OFFERS, p) + "/+", self._on_offer)
        t.start()
        t.wait_ready(10)
        if self.tick_s is not None:
            threading.Thread(target=self._ticker, name="owner-app-%s" % self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.transport.stop()

    def _ticker(self) -> None:
        assert self.tick_s is not None
        while not self._stopped.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the app keeps running; the next tick tries again
                log.exception("%s: tick failed", self.name)

    def _request(self, op: str, **params) -> None:
        with self._lock:
            self._outbox.append((op, params))
        self._flush()

    def _flush(self) -> None:
        """Send the queued requests, oldest first. Two threads each sending what they sealed could
        deliver an older grants message after a newer one, and the cloud keeps the last message it
        got for a display: a display that restarts would then read stale grants. A thread that
        finds another sending leaves its requests to it (publishing never blocks: paho queues, the
        in-process bus drains on one thread), as does a callback that runs inside a send."""
        with self._lock:
            if self._sending:
                return
            self._sending = True
        try:
            while True:
                with self._lock:
                    if not self._outbox:
                        return
                    op, params = self._outbox.popleft()
                self.transport.publish(topics.account_topic(self.name, topics.REQUESTS, self.prefix),
                                       request(op, **params), qos=1)
        finally:
            with self._lock:
                self._sending = False

    # -- what the owner does -----------------------------------------------------------------

    def pair(self, camera: str, handover: Callable[[bytes], None]) -> None:
        """Claim ``camera``: a fresh pairing offer, handed over out of band (never the cloud)."""
        handover(self.owner.pairing_offer(camera, self.now_ms()))

    def enroll(self, display: DisplayIdentity) -> str:
        """Enroll one of the owner's displays (out of band); the cloud learns only its id."""
        code = self.owner.enroll(display)
        self._request("display", display=display.display)
        return code

    def enroll_card(self, card: DisplayCard) -> str:
        """Enroll a remote display by its card (it pins the owner itself); the cloud learns its id."""
        code = self.owner.enroll_card(card)
        self._request("display", display=card.display)
        return code

    def enroll_service(self, card: ServiceCard) -> str:
        """Enroll a service by its card (the service pins this account's card on its side and
        shows the same code); its grants go through the cloud, which carries them to the service."""
        with self._lock:
            code = self.owner.enroll_service(card)
        self.push_grants()
        return code

    def push_grants(self) -> None:
        """Every display and service of the owner gets its keys for now, sealed to it."""
        with self._lock:
            now = self.now_ms()
            for display in sorted(self.owner.displays):
                self._outbox.append(("grants", {"display": display, "sealed": self.owner.grants_for(display, now)}))
            for service in sorted(self.owner.services):
                self._outbox.append(("service-grants", {"service": service,
                                                        "sealed": self.owner.service_grants_for(service, now)}))
        self._flush()

    def _offers(self) -> None:
        """Every contact still shared with gets its period keys for now."""
        with self._lock:
            now = self.now_ms()
            for contact in self.owner.sharing_with():
                sealed = self.owner.offer_for(contact, now)
                if sealed is not None:
                    self._outbox.append(("offer", {"to": contact, "sealed": sealed}))
        self._flush()

    def renew(self) -> None:
        """Every holder's keys for now, sent again: each display's grants, each contact's
        offer, each service's grants (what ``tick`` does ahead of each period; a message
        the cloud lost is replaced, since serials only grow)."""
        with self._lock:
            renewal: Renewal = self.owner.renew(self.now_ms())
            self.renewals += 1
            self._outbox.extend(("grants", {"display": d, "sealed": sealed}) for d, sealed in renewal.grants.items())
            self._outbox.extend(("offer", {"to": c, "sealed": sealed}) for c, sealed in renewal.offers.items())
            self._outbox.extend(("service-grants", {"service": s, "sealed": sealed})
                                for s, sealed in renewal.services.items())
        self._flush()

    def tick(self) -> None:
        """What the app does as time passes: renew every holder ahead of each period, send
        pending rotations again when due, and raise (and push to the displays) the alarms of
        rotations pending past the deadline."""
        now = self.now_ms()
        with self._lock:
            due = self.owner.renewal_due(now)
            retries = self.owner.due_retries(now)
            alarms = self.owner.rotation_alarms(now)
        if due:
            self.renew()
        for camera, command in retries:
            log.warning("%s: the rotation of %s is unconfirmed: sent again", self.name, camera)
            self._request("command", camera=camera, payload=command.hex())
        with self._cond:
            self.retries += len(retries)
            standing = {(a.camera, a.epoch) for a in self.alarms}
            new = [a for a in alarms if (a.camera, a.epoch) not in standing]
            self.alarms = alarms
            self._cond.notify_all()
        if new:
            for alarm in new:
                log.warning("%s: ALARM: camera %s has not confirmed epoch %d for %.0f s (%d attempts): the cloud "
                            "may be dropping it; a revoked viewer keeps its keys until its last period ends",
                            self.name, alarm.camera, alarm.epoch, (now - alarm.since_ms) / 1000.0, alarm.attempts)
            if not due:
                self.push_grants()  # the displays show it too (they also judge it on their own clock)
            if self.on_alarm is not None:
                self.on_alarm(new)

    def _new_epoch(self, camera: str, command: bytes) -> None:
        """Keys first: the owner's displays and services, and every contact still shared with
        (its slot in the new epoch), then the command that makes the camera tag with them."""
        self.push_grants()
        self._offers()
        self._request("command", camera=camera, payload=command.hex())

    def share(self, camera: str, viewer: str) -> None:
        with self._lock:
            command = self.owner.share(camera, viewer, self.now_ms())
        self._request("share", camera=camera, viewer=viewer)
        self._new_epoch(camera, command)

    def revoke(self, camera: str, viewer: str) -> None:
        with self._lock:
            command = self.owner.revoke(camera, viewer, self.now_ms())
        self._new_epoch(camera, command)
        self._request("unshare", camera=camera, viewer=viewer)

    def rotate(self, camera: str) -> None:
        with self._lock:
            command = self.owner.rotate(camera, self.owner.cameras[camera].newest_shares, self.now_ms())
        self._new_epoch(camera, command)

    def release(self, camera: str) -> None:
        with self._lock:
            command = self.owner.release(camera, self.now_ms())
        self._request("command", camera=camera, payload=command.hex())

    def forget(self, camera: str) -> None:
        """The camera was reset by its button, or sold: stop granting its keys."""
        with self._lock:
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
            with self._lock:
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
        elif result.accepted and result.op == control.ROTATE:
            self.push_grants()  # the rotation is confirmed: the displays' alarm ends
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
            with self._lock:
                before = dict(self.owner.refused_shares)
                self.owner.accept_offer(sealed, sender, self.now_ms())
                refused = {k: v for k, v in self.owner.refused_shares.items() if before.get(k) != v}
        except (GrantError, OwnerError) as exc:
            reason = str(getattr(exc, "reason", "not_a_contact"))
            with self._cond:
                self.refused_offers[reason] = self.refused_offers.get(reason, 0) + 1
            if reason != "stale":  # the retained offer of a contact, taken before
                log.warning("%s: a share offer from %s refused: %s", self.name, sender, exc)
            return
        for (contact, camera), why in sorted(refused.items()):
            with self._cond:
                self.refused_offers[why] = self.refused_offers.get(why, 0) + 1
            log.warning("%s: %s offers camera %s, which this app holds from someone else: not taken (%s)",
                        self.name, contact, camera, why)
        self.push_grants()

    # -- for tests and tools -----------------------------------------------------------------

    def wait_for(self, predicate: Callable[["OwnerApp"], bool], timeout: float = 10.0) -> bool:
        return wait_until(self._cond, lambda: predicate(self), timeout)

    def result_for(self, camera: str, op: int) -> Optional[control.Result]:
        with self._cond:
            for result in reversed(self.results):
                if result.camera == camera and result.op == op:
                    return result
        return None


# -- the owner's app as a command (docs/AGENT.md walkthrough) ---------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    """``python3 -m host_sim.app --owner alice.owner COMMAND``: the owner's app, one action a run.

    The owner file (0600) holds the account's keys and every pairing secret; cards and the
    pairing offer are handed over locally (files, the camera's inbox), never through the cloud.
    """
    from segbind.errors import KeyringError
    from segbind.grants import AccountCard
    from segbind_agent.inbox import Inbox
    from segbind_agent.link import MqttTransport, parse_broker

    parser = argparse.ArgumentParser(prog="python3 -m host_sim.app", description="the owner's app (reference)")
    parser.add_argument("--owner", required=True, metavar="OWNER.json", help="the app's file (0600)")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds to wait for the camera's answer")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("new", help="a new account (its keys are made here and stay here)")
    p.add_argument("--account", required=True)
    p.add_argument("--test-only", action="store_true")
    p = sub.add_parser("card", help="write this account's card (to show a contact, out of band)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("contact", help="take a contact's card (shown out of band)")
    p.add_argument("--card", required=True)
    p = sub.add_parser("enroll", help="enroll a display next to you: it pins this account (out of band)")
    p.add_argument("--display", required=True, metavar="DISPLAY.json")
    p = sub.add_parser("pair", help="claim a camera: hand it a fresh pairing offer, wait for its answer")
    p.add_argument("--camera", required=True)
    p.add_argument("--inbox", help="the camera's hand-over directory (standing in for its lens)")
    p.add_argument("--offer-out", help="or write the offer here (give it to `segbind-agent pair`)")
    for name, helptext in (("share", "share a camera with a contact"), ("revoke", "end a share")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--camera", required=True)
        p.add_argument("--viewer", required=True)
    for name, helptext in (("rotate", "a new epoch, same shares"), ("release", "give the camera up (resale)"),
                           ("forget", "the camera was reset by its button: stop granting it")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--camera", required=True)
    sub.add_parser("sync", help="take the contacts' share offers and send every display its grants")
    p = sub.add_parser("keyring", help="write this account's keys as a keyring file (for `segbind verify`)")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="segbind-app %(levelname)s %(message)s")
    path = Path(args.owner)

    def fail(message: str) -> int:
        print("segbind-app: error: %s" % message, file=sys.stderr)
        return 2

    try:
        if args.command == "new":
            if path.exists():
                return fail("%s exists" % path)
            Owner.new(args.account, args.test_only).save(path)
            print("account %s created in %s" % (args.account, path))
            return 0
        owner = Owner.load(path)
        if args.command == "card":
            Path(args.out).write_text(json.dumps(owner.account.card().to_json(), indent=1) + "\n")
            print("card of %s (fingerprint %s) in %s" % (owner.name, owner.account.card().fingerprint, args.out))
            return 0
        if args.command == "contact":
            card = AccountCard.from_json(json.loads(Path(args.card).read_text()), args.card)
            owner.add_contact(card)
            owner.save(path)
            print("contact %s (fingerprint %s)" % (card.account, card.fingerprint))
            return 0
        if args.command == "keyring":
            now = int(time.time() * 1000)  # the last day and the next period
            ring = owner.keyring(now - 24 * 3600 * 1000, now + owner.period_s * 1000)
            ring.save(args.out)
            print("wrote %d key(s) to %s" % (len(ring), args.out))
            return 0
        host, port = parse_broker(args.broker)
    except (KeyringError, OwnerError, ValueError, OSError) as exc:
        return fail(str(exc))
    app = OwnerApp(MqttTransport(host, port, "segbind-app-%s" % owner.name), owner).start()
    try:
        return _online(app, args, path, Inbox)
    except (OwnerError, KeyringError, ValueError, OSError) as exc:
        return fail(str(exc))
    finally:
        owner.save(path)
        time.sleep(0.3)  # let the last requests leave
        app.transport.stop()


def _online(app: OwnerApp, args: argparse.Namespace, path: Path, inbox_class) -> int:
    owner = app.owner
    if args.command == "enroll":
        screen = DisplayIdentity.load(args.display)
        code = app.enroll(screen)
        screen.save(args.display)
        app.push_grants()
        print("display %s enrolled; code %s (the display shows the same)" % (screen.display, code))
        return 0
    if args.command == "sync":
        time.sleep(1.0)  # retained share offers arrive on connecting
        app.push_grants()
        print("%d key(s) granted to %d display(s)" % (len(owner.keys(app.now_ms())), len(owner.displays)))
        return 0
    if args.command == "forget":
        app.forget(args.camera)
        print("camera %s forgotten" % args.camera)
        return 0
    before = len(app.results)
    if args.command == "pair":
        if not args.inbox and not args.offer_out:
            raise ValueError("give --inbox or --offer-out: the offer goes to the camera out of band")

        def handover(offer: bytes) -> None:
            if args.inbox:
                inbox_class(args.inbox).put_offer(offer)
            else:
                with open(os.open(args.offer_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                    f.write(offer)

        app.pair(args.camera, handover)
        op = control.PAIR
    elif args.command in ("share", "revoke"):
        getattr(app, args.command)(args.camera, args.viewer)
        op = control.ROTATE
    elif args.command == "rotate":
        app.rotate(args.camera)
        op = control.ROTATE
    else:
        app.release(args.camera)
        op = control.RELEASE
    owner.save(path)
    if not app.wait_for(lambda a: any(r.camera == args.camera and r.op == op for r in a.results[before:]),
                        args.wait):
        print("segbind-app: camera %s did not answer within %.0f s" % (args.camera, args.wait), file=sys.stderr)
        return 1
    result = [r for r in app.results[before:] if r.camera == args.camera and r.op == op][-1]
    time.sleep(0.3)  # the requests that follow a result (claim, grants) leave
    print("%s: %s; owner %s epoch %d, stream %d from seq %d%s" % (
        result.name, result.status, result.owner, result.epoch, result.stream_id, result.seq,
        " (%s)" % result.detail if result.detail else ""))
    return 0 if result.status in control.ACCEPTED_STATUSES else 1


if __name__ == "__main__":
    sys.exit(main())
