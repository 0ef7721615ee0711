"""The cloud's control plane: the camera registry, control commands, results, viewer grants.

Used by the reference cloud (``host_sim.cloud``) and by the operator tool
(``tools/segbind_ops.py``), over any transport of ``segbind_agent.link``'s
interface. The registry is kept in memory or in a JSON file (mode 0600,
locked and re-read for every change, so a running cloud and the operator tool
can share it). Production keeps device secrets in a KMS or HSM instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from segbind_core import control, topics
from segbind_core.keys import KEY_SIZE, derive_binding_key, derive_control_key

from .keyring import Binding, Keyring

log = logging.getLogger("segbind.controlplane")

REGISTRY_KIND = "cloud-registry"


class CameraRecord:
    """What the cloud knows of one camera. ``history`` lists every binding it had:
    ``{"owner", "epoch", "audience": [accounts granted that epoch]}``, oldest first."""

    def __init__(self, camera: str, secret: bytes) -> None:
        self.camera = camera
        self.secret = secret
        self.owner: Optional[str] = None
        self.epoch = 0
        self.epoch_hwm = 0
        self.counter = 0
        self.viewers: List[str] = []
        self.history: List[Dict[str, Any]] = []

    def __repr__(self) -> str:
        return "CameraRecord(%r, owner=%r, epoch=%d, viewers=%r, secret=<hidden>)" % (
            self.camera, self.owner, self.epoch, self.viewers)

    @property
    def audience(self) -> List[str]:
        return ([self.owner] + [v for v in self.viewers if v != self.owner]) if self.owner else []

    def control_key(self) -> bytes:
        return derive_control_key(self.secret, self.camera)

    def binding(self, owner: str, epoch: int) -> Binding:
        return Binding(owner, self.camera, epoch,
                       derive_binding_key(self.secret, owner, self.camera, epoch))

    def to_json(self) -> Dict[str, Any]:
        return {"camera": self.camera, "secret": self.secret.hex(), "owner": self.owner,
                "epoch": self.epoch, "epoch_hwm": self.epoch_hwm, "counter": self.counter,
                "viewers": list(self.viewers), "history": [dict(h) for h in self.history]}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "CameraRecord":
        rec = cls(data["camera"], bytes.fromhex(data["secret"]))
        rec.owner = data.get("owner")
        rec.epoch = int(data.get("epoch", 0))
        rec.epoch_hwm = int(data.get("epoch_hwm", 0))
        rec.counter = int(data.get("counter", 0))
        rec.viewers = list(data.get("viewers", []))
        rec.history = [dict(h) for h in data.get("history", [])]
        return rec


class Registry:
    """Cameras, their device secrets, owners and shares; in memory or in a JSON file."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = Path(path) if path else None
        self.cameras: Dict[str, CameraRecord] = {}
        self.version = 0
        self._by_account: Dict[str, List[str]] = {}  # account -> cameras in its history
        self._indexed = -1  # the version the index was built for
        self._mtime: Optional[int] = None
        self._lock = threading.RLock()
        if self.path and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        data = json.loads(self.path.read_text())
        if data.get("segbind") != REGISTRY_KIND:
            raise ValueError("%s is not a segbind cloud registry" % self.path)
        self.cameras = {c["camera"]: CameraRecord.from_json(c) for c in data.get("cameras", [])}
        self._mtime = self.path.stat().st_mtime_ns
        self.version += 1

    def _save(self) -> None:
        assert self.path is not None
        data = {"segbind": REGISTRY_KIND, "version": 1,
                "cameras": [r.to_json() for _, r in sorted(self.cameras.items())]}
        tmp = self.path.with_name(self.path.name + ".tmp%d" % os.getpid())
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns

    def refresh(self) -> None:
        """Re-read the file when another process changed it."""
        if not self.path:
            return
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                return
            if mtime != self._mtime:
                self._load()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Registry"]:
        """Lock, re-read, let the caller change records, save."""
        with self._lock:
            if not self.path:
                yield self
                self.version += 1
                return
            lock_path = self.path.with_name(self.path.name + ".lock")
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if self.path.exists():
                    self._load()
                yield self
                self._save()
                self.version += 1

    def get(self, camera: str) -> CameraRecord:
        self.refresh()
        try:
            return self.cameras[camera]
        except KeyError:
            raise KeyError("camera %r is not provisioned" % camera) from None

    def _index(self) -> Dict[str, List[str]]:
        """Which cameras each account ever had access to (rebuilt once per change)."""
        if self._indexed != self.version:
            index: Dict[str, List[str]] = {}
            for camera, rec in sorted(self.cameras.items()):
                seen = {a for entry in rec.history for a in entry["audience"]}
                for account in seen:
                    index.setdefault(account, []).append(camera)
            self._by_account, self._indexed = index, self.version
        return self._by_account

    def keyring(self, account: str) -> Keyring:
        """The account's keyring: every epoch of its current access, revoked entries for the rest."""
        ring = Keyring()
        for camera in self._index().get(account, []):
            rec = self.cameras[camera]
            current = account in rec.audience
            for entry in reversed(rec.history):
                if account not in entry["audience"]:
                    current = False  # the run of access that is still going ended here
                    continue
                if current:
                    ring.grant(rec.binding(entry["owner"], entry["epoch"]))
                else:
                    ring.mark_revoked(entry["owner"], camera, entry["epoch"])
        return ring

    def accounts(self) -> List[str]:
        return sorted(self._index())

    def granted(self, camera: str, owner: str, epoch: int) -> List[str]:
        """Accounts that hold the key of (owner, camera, epoch) now."""
        rec = self.cameras.get(camera)
        if rec is None:
            return []
        out = []
        for account in rec.audience:
            for entry in reversed(rec.history):
                if account not in entry["audience"]:
                    break
                if entry["owner"] == owner and entry["epoch"] == epoch:
                    out.append(account)
                    break
        return out


class CommandFailed(RuntimeError):
    pass


class ControlPlane:
    """Registry operations, control commands and their results, grants, camera status.

    Handlers run on the transport's thread; the ``wait_*`` methods block the caller's.
    """

    def __init__(self, transport: Any, registry: Optional[Registry] = None, *,
                 prefix: str = topics.TOPIC_PREFIX) -> None:
        self.transport = transport
        self.registry = registry or Registry()
        self.prefix = prefix
        self.status: Dict[str, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self.results: Dict[Tuple[str, int], control.Result] = {}
        self.refusals: List[control.Result] = []
        self._cond = threading.Condition()

    def subscribe(self) -> None:
        """Listen to every camera's status, events and command results."""
        t, p = self.transport, self.prefix
        t.subscribe(topics.every_camera(topics.STATUS, p), self._on_status)
        t.subscribe(topics.every_camera(topics.EVENT, p), self._on_event)
        t.subscribe(topics.every_camera(topics.CTL_RESULT, p), self._on_result)

    # -- registry operations (the operator's and the app's requests) ------------------------------

    def provision(self, camera: str, secret: bytes) -> None:
        topics.check_topic_id(camera, "camera")
        if len(secret) != KEY_SIZE:
            raise ValueError("a device secret is %d bytes" % KEY_SIZE)
        with self.registry.transaction() as reg:
            if camera in reg.cameras and reg.cameras[camera].secret != secret:
                raise ValueError("camera %r is already provisioned with another secret" % camera)
            reg.cameras.setdefault(camera, CameraRecord(camera, secret))

    def claim(self, camera: str, owner: str, wait: float = 0) -> control.Command:
        topics.check_topic_id(owner, "account")
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if rec.owner is not None:
                raise CommandFailed("camera %s is already claimed by %s" % (camera, rec.owner))
            rec.owner, rec.viewers = owner, []
            cmd = self._next(rec, control.CLAIM, owner)
        return self._send(rec, cmd, {owner}, wait)

    def share(self, camera: str, viewer: str) -> None:
        """Give ``viewer`` the current epoch's key (no command: the binding does not change)."""
        topics.check_topic_id(viewer, "account")
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if rec.owner is None:
                raise CommandFailed("camera %s is not claimed" % camera)
            if viewer != rec.owner and viewer not in rec.viewers:
                rec.viewers.append(viewer)
                rec.history[-1]["audience"] = rec.audience
        self.publish_grants(viewer, wait=10)

    def revoke(self, camera: str, viewer: str, wait: float = 0) -> control.Command:
        """Take the share away: rotate the epoch; everyone else is granted the new one first."""
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if viewer not in rec.viewers:
                raise CommandFailed("%s has no share of camera %s" % (viewer, camera))
            rec.viewers.remove(viewer)
            cmd = self._next(rec, control.ROTATE, rec.owner or "")
        return self._send(rec, cmd, set(rec.audience) | {viewer}, wait)

    def rotate(self, camera: str, wait: float = 0) -> control.Command:
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if rec.owner is None:
                raise CommandFailed("camera %s is not claimed" % camera)
            cmd = self._next(rec, control.ROTATE, rec.owner)
        return self._send(rec, cmd, set(rec.audience), wait)

    def transfer(self, camera: str, new_owner: str, wait: float = 0) -> control.Command:
        """Resale: the new owner gets the camera; the old owner and every share lose it."""
        topics.check_topic_id(new_owner, "account")
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if rec.owner is None:
                raise CommandFailed("camera %s is not claimed" % camera)
            before = set(rec.audience)
            rec.owner, rec.viewers = new_owner, []
            cmd = self._next(rec, control.TRANSFER, new_owner)
        return self._send(rec, cmd, before | {new_owner}, wait)

    def reset(self, camera: str, wait: float = 0) -> control.Command:
        """Factory reset: the binding is cleared on the camera; every account loses access."""
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            before = set(rec.audience)
            rec.owner, rec.viewers, rec.epoch = None, [], 0
            rec.counter += 1
            cmd = control.Command(control.RESET, camera, rec.counter, "", 0, int(time.time() * 1000))
        return self._send(rec, cmd, before, wait)

    def _next(self, rec: CameraRecord, op: int, owner: str) -> control.Command:
        rec.epoch_hwm += 1
        rec.epoch = rec.epoch_hwm
        rec.counter += 1
        rec.history.append({"owner": owner, "epoch": rec.epoch, "audience": rec.audience})
        return control.Command(op, rec.camera, rec.counter, owner, rec.epoch,
                               int(time.time() * 1000))

    def _send(self, rec: CameraRecord, cmd: control.Command, accounts: Iterable[str],
              wait: float) -> control.Command:
        # Grants first: the viewers hold the new key before the camera tags with it.
        for account in sorted(accounts):
            self.publish_grants(account, wait=10)
        token = self.transport.publish(topics.camera_topic(rec.camera, topics.CTL, self.prefix),
                                       cmd.encode(rec.control_key()), qos=1)
        log.info("sent %r", cmd)
        if wait:
            if not self.transport.wait_acked(token, wait):
                raise CommandFailed("the broker did not take the command within %.0f s" % wait)
            result = self.wait_result(rec.camera, cmd.counter, wait)
            if result is None:
                raise CommandFailed("camera %s did not answer command #%d within %.0f s"
                                    % (rec.camera, cmd.counter, wait))
            if not result.accepted:
                raise CommandFailed("camera %s refused %s #%d: %s (%s)" % (
                    rec.camera, cmd.name, cmd.counter, result.status, result.detail))
        return cmd

    def send_raw(self, camera: str, payload: bytes) -> Any:
        """Publish arbitrary bytes as a command (tests: forged, altered, replayed)."""
        return self.transport.publish(topics.camera_topic(camera, topics.CTL, self.prefix),
                                      payload, qos=1)

    def publish_grants(self, account: str, wait: float = 0) -> None:
        self.registry.refresh()
        body = json.dumps(self.registry.keyring(account).to_json(), sort_keys=True).encode()
        token = self.transport.publish(topics.account_topic(account, topics.GRANTS, self.prefix),
                                       body, qos=1, retain=True)
        if wait:
            self.transport.wait_acked(token, wait)

    # -- what the cameras send -------------------------------------------------------------------

    def _camera_of(self, topic: str) -> str:
        return topics.id_of_topic(topic, self.prefix) or ""

    def _on_status(self, msg: Any) -> None:
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        with self._cond:
            self.status[self._camera_of(msg.topic)] = status
            self._cond.notify_all()

    def _on_event(self, msg: Any) -> None:
        try:
            event = json.loads(msg.payload)
        except ValueError:
            return
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        log.warning("camera %s reports %s", event.get("camera"), event.get("event"))

    def _on_result(self, msg: Any) -> None:
        camera = self._camera_of(msg.topic)
        try:
            rec = self.registry.get(camera)
            result = control.open_result(rec.control_key(), camera, msg.payload)
        except (KeyError, control.ControlError) as exc:
            log.warning("unusable command result from %s: %s", camera, exc)
            return
        with self._cond:
            self.results[(camera, result.counter)] = result
            if not result.accepted:
                self.refusals.append(result)
            self._cond.notify_all()
        if not result.accepted:
            log.warning("camera %s refused command #%d: %s (%s)", camera, result.counter,
                        result.status, result.detail)

    # -- waiting (tests, tools) -------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def wait_result(self, camera: str, counter: int,
                    timeout: float = 10.0) -> Optional[control.Result]:
        self.wait_for(lambda: (camera, counter) in self.results, timeout)
        return self.results.get((camera, counter))

    def wait_status(self, camera: str, predicate: Callable[[Dict[str, Any]], bool],
                    timeout: float = 10.0) -> Optional[Dict[str, Any]]:
        ok = self.wait_for(lambda: camera in self.status and predicate(self.status[camera]),
                           timeout)
        return self.status.get(camera) if ok else None
