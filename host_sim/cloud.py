"""The reference cloud: camera registry, control commands, the relay, viewer grants.

The cloud and the display run on a small transport interface, so the same
code runs over a real MQTT broker (``MqttTransport``, paho-mqtt, MQTT 5) and
over an in-process bus with no broker at all (``InProcessBus``), for fleet
simulations::

    transport.start(); transport.stop(); transport.connected
    transport.publish(topic, payload, qos=1, retain=False, user_properties=None) -> token
    transport.subscribe(pattern, callback, qos=1)      # callback(Message)
    transport.on_ack(callback(token, ok)); transport.on_connection(callback(up))
    transport.wait_ready(timeout); transport.wait_acked(token, timeout)

The cloud is deliberately *not* trusted by the viewers: it routes segments to
accounts (``router``, pluggable, so a simulation can switch on a 2020-style
cache bug), but a display shows only what verifies under its own grants.

Topics (docs/AGENT.md): cameras publish on ``segbind/v1/cam/<camera>/...``;
the cloud relays to ``segbind/v1/acct/<account>/seg`` and hands each account
its keyring, retained, on ``segbind/v1/acct/<account>/grants``.

``python3 -m host_sim.cloud --broker 127.0.0.1:1883 --registry cloud.json`` runs
the service; tools/segbind_ops.py provisions cameras and changes bindings.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from segbind import Keyring
from segbind.errors import InvalidSegment
from segbind.verifier import find_tag
from segbind_core import control
from segbind_core.keys import KEY_SIZE, derive_binding_key, derive_control_key
from segbind_core.nal import annexb_units

log = logging.getLogger("segbind.cloud")

PREFIX = control.TOPIC_PREFIX


# ------------------------------------------------------------------------------------------
# Transports
# ------------------------------------------------------------------------------------------

class Message:
    """A received message. ``ack`` is a no-op except on transports with manual acks."""

    __slots__ = ("topic", "payload", "user_properties", "retain", "_ack")

    def __init__(self, topic: str, payload: bytes, user_properties: Optional[dict] = None,
                 retain: bool = False, ack: Optional[Callable[[], None]] = None) -> None:
        self.topic = topic
        self.payload = payload
        self.user_properties = user_properties or {}
        self.retain = retain
        self._ack = ack

    def ack(self) -> None:
        if self._ack is not None:
            ack, self._ack = self._ack, None
            ack()


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard matching: ``+`` one level, ``#`` the rest."""
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


class Transport:
    """Base class: acknowledgement bookkeeping shared by both implementations."""

    def __init__(self) -> None:
        self._ack_cb: Optional[Callable] = None
        self._conn_cb: Optional[Callable] = None
        self._acked: "collections.deque" = collections.deque(maxlen=4096)
        self._acked_set: set = set()
        self._cond = threading.Condition()
        self.connected = False

    def on_ack(self, callback: Callable) -> None:
        self._ack_cb = callback

    def on_connection(self, callback: Callable) -> None:
        self._conn_cb = callback

    def _note_ack(self, token, ok: bool) -> None:
        with self._cond:
            if len(self._acked) == self._acked.maxlen:
                self._acked_set.discard(self._acked[0])
            self._acked.append(token)
            self._acked_set.add(token)
            self._cond.notify_all()
        if self._ack_cb:
            self._ack_cb(token, ok)

    def _note_connection(self, up: bool) -> None:
        with self._cond:
            self.connected = up
            self._cond.notify_all()
        if self._conn_cb:
            self._conn_cb(up)

    def wait_acked(self, token, timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while token not in self._acked_set:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while not self._ready():
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _ready(self) -> bool:
        return self.connected


class MqttTransport(Transport):
    """paho-mqtt 2.x, MQTT 5; a persistent session unless ``clean`` (for one-shot tools)."""

    def __init__(self, host: str, port: int, client_id: Optional[str] = None, *,
                 clean: bool = False, session_expiry_s: int = 24 * 3600, keepalive: int = 30,
                 username: Optional[str] = None, password: Optional[str] = None,
                 will: Optional[Tuple[str, bytes, bool]] = None) -> None:
        super().__init__()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._mqtt = mqtt
        self.host, self.port = host, port
        self.clean = clean
        self.session_expiry_s = 0 if clean else session_expiry_s
        self.keepalive = keepalive
        self.client_id = client_id or "segbind-%s" % uuid.uuid4().hex[:12]
        self._subs: Dict[str, Tuple[Callable, int]] = {}
        self._pending_subs: set = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(50)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2.0)
        if username:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda c, u, mid, rc, p: self._note_ack(mid, not rc.is_failure)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _ready(self) -> bool:
        return self.connected and not self._pending_subs

    def start(self) -> "MqttTransport":
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(self.host, self.port, self.keepalive,
                                  clean_start=self.clean, properties=props)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self._note_connection(False)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties: Optional[dict] = None):
        props = None
        if user_properties:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(str(k), str(v)) for k, v in user_properties.items()]
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            raise OSError("publish to %s failed: %s" % (topic, self._mqtt.error_string(info.rc)))
        if qos == 0:
            self._note_ack(info.mid, True)
        return info.mid

    def subscribe(self, pattern: str, callback: Callable, qos: int = 1) -> None:
        with self._lock:
            self._subs[pattern] = (callback, qos)
        if self.connected:
            self._send_subscribe(pattern, qos)

    def unsubscribe(self, pattern: str) -> None:
        with self._lock:
            self._subs.pop(pattern, None)
        self.client.unsubscribe(pattern)

    def _send_subscribe(self, pattern: str, qos: int) -> None:
        with self._cond:
            rc, mid = self.client.subscribe(pattern, qos)
            if rc == self._mqtt.MQTT_ERR_SUCCESS:
                self._pending_subs.add(mid)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: connection refused: %s", self.client_id, reason_code)
            return
        with self._lock:
            subs = list(self._subs.items())
        for pattern, (_cb, qos) in subs:
            self._send_subscribe(pattern, qos)
        self._note_connection(True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._note_connection(False)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._cond:
            self._pending_subs.discard(mid)
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            callbacks = [cb for pattern, (cb, _q) in self._subs.items()
                         if topic_matches(pattern, msg.topic)]
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        message = Message(msg.topic, bytes(msg.payload), props, bool(msg.retain))
        for cb in callbacks:
            try:
                cb(message)
            except Exception:  # a handler bug must not kill paho's thread
                log.exception("handler for %s failed", msg.topic)


class InProcessBus:
    """A broker in a Python object: QoS-1-like, retained messages, wildcard subscriptions.

    Delivery is FIFO and happens on the publishing thread (a trampoline, so a
    handler that publishes does not recurse). A transport taken ``offline``
    keeps what it publishes and what is sent to it until it comes back, like
    a persistent MQTT session; nothing is lost or duplicated.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # Subscriptions indexed by topic (exact) or kept for matching (wildcards), each with
        # its order of arrival: publishing costs the same with 2 displays or 2,000.
        self._exact: Dict[str, List[Tuple[int, "InProcessTransport", Callable]]] = {}
        self._wild: List[Tuple[int, "InProcessTransport", str, Callable]] = []
        self._subscriptions = 0
        self._retained: Dict[str, Message] = {}
        self._queue: "collections.deque" = collections.deque()
        self._draining = False
        self.published = 0

    def transport(self, name: str = "") -> "InProcessTransport":
        return InProcessTransport(self, name)

    def _publish(self, sender: "InProcessTransport", topic: str, payload: bytes, retain: bool,
                 props: Optional[dict]) -> None:
        msg = Message(topic, bytes(payload), dict(props or {}), False)
        with self._lock:
            self.published += 1
            if retain:
                if payload:
                    self._retained[topic] = Message(topic, msg.payload, msg.user_properties, True)
                else:
                    self._retained.pop(topic, None)
            targets = list(self._exact.get(topic, ()))
            targets += [(n, transport, cb) for n, transport, pattern, cb in self._wild
                        if topic_matches(pattern, topic)]
            if len(targets) > 1:
                targets.sort(key=lambda target: target[0])  # in subscription order
            for _n, transport, cb in targets:
                self._queue.append((transport, cb, msg))
        self._drain()

    def _subscribe(self, transport: "InProcessTransport", pattern: str, cb: Callable) -> None:
        with self._lock:
            self._subscriptions += 1
            if "+" in pattern or "#" in pattern:
                self._wild.append((self._subscriptions, transport, pattern, cb))
            else:
                self._exact.setdefault(pattern, []).append((self._subscriptions, transport, cb))
            for topic, msg in self._retained.items():
                if topic_matches(pattern, topic):
                    self._queue.append((transport, cb, msg))
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            if self._draining:
                return
            self._draining = True
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                transport, cb, msg = self._queue.popleft()
            transport._deliver(cb, msg)


class InProcessTransport(Transport):
    def __init__(self, bus: InProcessBus, name: str = "") -> None:
        super().__init__()
        self.bus = bus
        self.name = name
        self._token = 0
        self._outbox: "collections.deque" = collections.deque()
        self._inbox: "collections.deque" = collections.deque()
        self._lock = threading.Lock()

    def start(self) -> "InProcessTransport":
        self.set_online(True)
        return self

    def stop(self) -> None:
        self._note_connection(False)

    def set_online(self, up: bool) -> None:
        """Take this client off the network (``False``) and back; queued traffic then flows."""
        self._note_connection(up)
        if up:
            while self._outbox:
                token, args = self._outbox.popleft()
                self.bus._publish(self, *args)
                self._note_ack(token, True)
            while self._inbox:
                cb, msg = self._inbox.popleft()
                self._deliver(cb, msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties: Optional[dict] = None):
        with self._lock:
            self._token += 1
            token = self._token
        args = (topic, payload, retain, user_properties)
        if not self.connected:
            self._outbox.append((token, args))
            return token
        self.bus._publish(self, *args)
        self._note_ack(token, True)
        return token

    def subscribe(self, pattern: str, callback: Callable, qos: int = 1) -> None:
        self.bus._subscribe(self, pattern, callback)

    def _deliver(self, cb: Callable, msg: Message) -> None:
        if not self.connected:
            self._inbox.append((cb, msg))
            return
        try:
            cb(msg)
        except Exception:
            log.exception("in-process handler for %s failed", msg.topic)


def wait_for_sigterm() -> None:
    """Block a service's main thread until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass


def parse_broker(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, 1883
    return host, int(port)


# ------------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------------

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
        self.history: List[dict] = []

    def __repr__(self) -> str:
        return "CameraRecord(%r, owner=%r, epoch=%d, viewers=%r, secret=<hidden>)" % (
            self.camera, self.owner, self.epoch, self.viewers)

    @property
    def audience(self) -> List[str]:
        return ([self.owner] + [v for v in self.viewers if v != self.owner]) if self.owner else []

    def control_key(self) -> bytes:
        return derive_control_key(self.secret, self.camera)

    def binding_key(self, owner: str, epoch: int) -> bytes:
        return derive_binding_key(self.secret, owner, self.camera, epoch)

    def to_json(self) -> dict:
        return {"camera": self.camera, "secret": self.secret.hex(), "owner": self.owner,
                "epoch": self.epoch, "epoch_hwm": self.epoch_hwm, "counter": self.counter,
                "viewers": list(self.viewers), "history": [dict(h) for h in self.history]}

    @classmethod
    def from_json(cls, data: dict) -> "CameraRecord":
        rec = cls(data["camera"], bytes.fromhex(data["secret"]))
        rec.owner = data.get("owner")
        rec.epoch = int(data.get("epoch", 0))
        rec.epoch_hwm = int(data.get("epoch_hwm", 0))
        rec.counter = int(data.get("counter", 0))
        rec.viewers = list(data.get("viewers", []))
        rec.history = [dict(h) for h in data.get("history", [])]
        return rec


class Registry:
    """Cameras, their device secrets, owners and shares. In memory, or in a JSON file
    (mode 0600, locked and re-read for every change, so the service and the operator
    tool can share it). Production keeps device secrets in a KMS/HSM instead."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = Path(path) if path else None
        self.cameras: Dict[str, CameraRecord] = {}
        self.version = 0
        self._mtime = None
        self._lock = threading.RLock()
        if self.path and self.path.exists():
            self._load()

    def _load(self) -> None:
        data = json.loads(self.path.read_text())
        if data.get("segbind") != "cloud-registry":
            raise ValueError("%s is not a segbind cloud registry" % self.path)
        self.cameras = {c["camera"]: CameraRecord.from_json(c) for c in data.get("cameras", [])}
        self._mtime = self.path.stat().st_mtime_ns
        self.version += 1

    def _save(self) -> None:
        data = {"segbind": "cloud-registry", "version": 1,
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
    def transaction(self):
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

    def keyring_json(self, account: str) -> dict:
        """The account's keyring: every epoch of its current access, revoked entries for the rest."""
        grants, revoked = [], []
        for camera, rec in sorted(self.cameras.items()):
            current = account in rec.audience
            for entry in reversed(rec.history):
                gid = {"owner": entry["owner"], "camera": camera, "epoch": entry["epoch"]}
                if account not in entry["audience"]:
                    current = False  # the run of access that is still going ended here
                    continue
                if current:
                    grants.append(dict(gid, key=rec.binding_key(entry["owner"], entry["epoch"]).hex()))
                else:
                    revoked.append(gid)
        return {"segbind": "keyring", "version": 1, "grants": grants, "revoked": revoked}

    def keyring(self, account: str) -> Keyring:
        return Keyring.from_json(self.keyring_json(account), "account %s" % account)

    def accounts(self) -> List[str]:
        seen = set()
        for rec in self.cameras.values():
            for entry in rec.history:
                seen.update(entry["audience"])
        return sorted(seen)

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


# ------------------------------------------------------------------------------------------
# Routing: which accounts get a camera's segment
# ------------------------------------------------------------------------------------------

class Router:
    """Correct routing: a segment goes to the accounts granted the binding its tag names."""

    def route(self, cloud: "Cloud", camera: str, tag, payload: bytes) -> List[str]:
        return cloud.registry.granted(camera, tag.owner, tag.epoch)


class LeakyRouter(Router):
    """A broken cloud: also sends every segment to ``extra`` accounts (a mixed-up cache)."""

    def __init__(self, extra: Iterable[str]) -> None:
        self.extra = list(extra)

    def route(self, cloud: "Cloud", camera: str, tag, payload: bytes) -> List[str]:
        right = super().route(cloud, camera, tag, payload)
        return right + [a for a in self.extra if a not in right]


# ------------------------------------------------------------------------------------------
# The cloud service
# ------------------------------------------------------------------------------------------

class CommandFailed(RuntimeError):
    pass


class Cloud:
    """Registry + control plane + relay. Thread-safe; handlers run on the transport's thread."""

    def __init__(self, transport: Transport, registry: Optional[Registry] = None, *,
                 router: Optional[Router] = None, relay: bool = True, prefix: str = PREFIX) -> None:
        self.transport = transport
        self.registry = registry or Registry()
        self.router = router or Router()
        self.relay_enabled = relay
        self.prefix = prefix
        self.status: Dict[str, dict] = {}
        self.events: List[dict] = []
        self.results: Dict[Tuple[str, int], control.Result] = {}
        self.refusals: List[control.Result] = []
        self.relayed: collections.Counter = collections.Counter()  # (camera, account) -> segments
        self.dropped: collections.Counter = collections.Counter()  # reason -> segments not relayed
        self.on_relay: Optional[Callable[[str, object, List[str]], None]] = None
        self._cond = threading.Condition()

    # -- wiring -----------------------------------------------------------------------------

    def start(self, publish_grants: bool = True) -> "Cloud":
        t, p = self.transport, self.prefix
        if self.relay_enabled:
            t.subscribe("%s/cam/+/%s" % (p, control.SEG), self._on_segment)
        t.subscribe("%s/cam/+/%s" % (p, control.STATUS), self._on_status)
        t.subscribe("%s/cam/+/%s" % (p, control.EVENT), self._on_event)
        t.subscribe("%s/cam/+/%s" % (p, control.CTL_RESULT), self._on_result)
        t.start()
        t.wait_ready(10)
        if publish_grants:
            for account in self.registry.accounts():
                self.publish_grants(account)
        return self

    def stop(self) -> None:
        self.transport.stop()

    # -- registry operations (the operator's and the app's requests) ------------------------------

    def provision(self, camera: str, secret: bytes) -> None:
        control.check_topic_id(camera, "camera")
        if len(secret) != KEY_SIZE:
            raise ValueError("a device secret is %d bytes" % KEY_SIZE)
        with self.registry.transaction() as reg:
            if camera in reg.cameras and reg.cameras[camera].secret != secret:
                raise ValueError("camera %r is already provisioned with another secret" % camera)
            reg.cameras.setdefault(camera, CameraRecord(camera, secret))

    def claim(self, camera: str, owner: str, wait: float = 0) -> control.Command:
        control.check_topic_id(owner, "account")
        with self.registry.transaction() as reg:
            rec = reg.get(camera)
            if rec.owner is not None:
                raise CommandFailed("camera %s is already claimed by %s" % (camera, rec.owner))
            rec.owner, rec.viewers = owner, []
            cmd = self._next(rec, control.CLAIM, owner)
        return self._send(rec, cmd, {owner}, wait)

    def share(self, camera: str, viewer: str) -> None:
        """Give ``viewer`` the current epoch's key (no command: the binding does not change)."""
        control.check_topic_id(viewer, "account")
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
            cmd = self._next(rec, control.ROTATE, rec.owner)
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
        control.check_topic_id(new_owner, "account")
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
        token = self.transport.publish(control.camera_topic(rec.camera, control.CTL, self.prefix),
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

    def send_raw(self, camera: str, payload: bytes):
        """Publish arbitrary bytes as a command (tests: forged, altered, replayed)."""
        return self.transport.publish(control.camera_topic(camera, control.CTL, self.prefix),
                                      payload, qos=1)

    def publish_grants(self, account: str, wait: float = 0) -> None:
        self.registry.refresh()
        body = json.dumps(self.registry.keyring_json(account), sort_keys=True).encode()
        token = self.transport.publish(control.account_topic(account, "grants", self.prefix), body,
                                       qos=1, retain=True)
        if wait:
            self.transport.wait_acked(token, wait)

    # -- what the cameras send -------------------------------------------------------------------

    @staticmethod
    def _camera_of(topic: str) -> str:
        return topic.split("/")[-2] if not topic.endswith(control.CTL_RESULT) else topic.split("/")[-3]

    def _on_segment(self, msg: Message) -> None:
        camera = self._camera_of(msg.topic)
        self.registry.refresh()
        try:
            tag = find_tag(msg.payload, annexb_units(msg.payload))[0]
        except InvalidSegment as exc:
            self.dropped[exc.reason.value] += 1
            return
        if tag.camera != camera:
            self.dropped["camera_mismatch"] += 1
            return
        accounts = self.router.route(self, camera, tag, msg.payload)
        if not accounts:
            self.dropped["no_audience"] += 1
        for account in accounts:
            self.transport.publish(control.account_topic(account, control.SEG, self.prefix),
                                   msg.payload, qos=1, user_properties={"camera": camera})
            self.relayed[(camera, account)] += 1
        if self.on_relay:
            self.on_relay(camera, tag, accounts)

    def _on_status(self, msg: Message) -> None:
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        camera = self._camera_of(msg.topic)
        with self._cond:
            self.status[camera] = status
            self._cond.notify_all()

    def _on_event(self, msg: Message) -> None:
        try:
            event = json.loads(msg.payload)
        except ValueError:
            return
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        log.warning("camera %s reports %s", event.get("camera"), event.get("event"))

    def _on_result(self, msg: Message) -> None:
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

    def wait_result(self, camera: str, counter: int, timeout: float = 10.0) -> Optional[control.Result]:
        self.wait_for(lambda: (camera, counter) in self.results, timeout)
        return self.results.get((camera, counter))

    def wait_status(self, camera: str, predicate: Callable[[dict], bool],
                    timeout: float = 10.0) -> Optional[dict]:
        ok = self.wait_for(lambda: camera in self.status and predicate(self.status[camera]), timeout)
        return self.status.get(camera) if ok else None


# ------------------------------------------------------------------------------------------
# Command line: run the service
# ------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.cloud",
                                     description="segbind reference cloud: relay, grants, control")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--registry", required=True, metavar="CLOUD.json")
    parser.add_argument("--client-id", default="segbind-cloud")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s segbind-cloud %(levelname)s %(message)s")
    host, port = parse_broker(args.broker)
    if not Path(args.registry).exists():
        print("no registry at %s: provision a camera first (tools/segbind_ops.py provision)"
              % args.registry, file=sys.stderr)
        return 2
    cloud = Cloud(MqttTransport(host, port, args.client_id), Registry(args.registry))
    cloud.on_relay = lambda camera, tag, accounts: log.info(
        "relayed %s stream %d seq %d epoch %d to %s", camera, tag.stream_id, tag.seq, tag.epoch,
        ", ".join(accounts) or "nobody")
    cloud.start()
    log.info("cloud running on %s:%d with %d camera(s)", host, port, len(cloud.registry.cameras))
    wait_for_sigterm()
    cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
