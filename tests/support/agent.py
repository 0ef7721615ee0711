"""Drive an agent core by hand in tests, write commands and offers with any field at any value,
and run the real agent process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from segbind_agent.core import AgentCore, AgentSettings, BindingState, Delete, Log, Persist, Publish, Send, Store
from segbind_core import control, topics
from segbind_core.tag import encode_uvarint

from . import ROOT


class CoreRunner:
    """One camera's ``AgentCore`` with its actions carried out in memory: ``segments`` holds the
    tagged segments in the order they were sent, ``results`` the command results it published,
    ``stills`` its stills; ``spent`` is the monotonic counter's store of spent offers."""

    def __init__(self, camera: str = "cam-1", state: Optional[BindingState] = None, spent: Sequence[str] = (),
                 **settings) -> None:
        settings.setdefault("health_interval_s", 10 ** 9)
        self.spent: List[str] = list(spent)
        self.core = AgentCore(camera, state or BindingState(camera), AgentSettings(**settings), spent=self.spent)
        self.stored: dict = {}
        self.segments: List[bytes] = []
        self.results: List[bytes] = []
        self.events: List[bytes] = []
        self.stills: List[bytes] = []
        self.persisted: List[BindingState] = []
        self.logs: List[str] = []

    def run(self, actions) -> "CoreRunner":
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Store):
                self.stored[action.entry.index] = action.payload
            elif isinstance(action, Delete):
                self.stored.pop(action.index, None)
            elif isinstance(action, Send):
                self.segments.append(self.stored[action.entry.index])
                pending += self.core.delivered(action.entry.index, True)
            elif isinstance(action, Publish):
                if action.leaf == topics.CTL_RESULT:
                    self.results.append(action.payload)
                elif action.leaf == topics.EVENT:
                    self.events.append(action.payload)
                elif action.leaf == topics.STILL:
                    self.stills.append(action.payload)
            elif isinstance(action, Persist):
                if action.spend:
                    self.spent.append(action.spend)
                self.persisted.append(action.state.copy())
            elif isinstance(action, Log):
                self.logs.append(action.message)
        return self

    def start(self, now_ms: int) -> "CoreRunner":
        self.run(self.core.start(now_ms))
        return self.run(self.core.connection(True, now_ms))

    def feed(self, data: bytes, now_ms: int) -> List[bytes]:
        """Encoder bytes in; the segments sent because of them out."""
        before = len(self.segments)
        self.run(self.core.encoder_bytes(data, now_ms))
        return self.segments[before:]

    def end(self, now_ms: int) -> List[bytes]:
        before = len(self.segments)
        self.run(self.core.encoder_end(now_ms))
        return self.segments[before:]

    def pair(self, offer: bytes, now_ms: int) -> bytes:
        """The offer handed over; the result it published (the last one)."""
        self.run(self.core.pair(offer, now_ms))
        return self.results[-1]

    def command(self, payload: bytes, now_ms: int) -> bytes:
        self.run(self.core.command(payload, now_ms))
        return self.results[-1]

    def event(self, kind: str, now_ms: int) -> List[bytes]:
        """A camera event; the stills it published."""
        before = len(self.stills)
        self.run(self.core.event(kind, now_ms))
        return self.stills[before:]


# -- commands and offers with any field at any value (a buggy or hostile app) --------------------

def raw_id(name: str | bytes) -> bytes:
    raw = name.encode("utf-8") if isinstance(name, str) else name
    return bytes((len(raw) & 0xFF,)) + raw


def raw_command(key: bytes, op: int, camera: str, owner: str, counter: int, epoch: int, *, period_s: int = 1800,
                shares: Sequence[str | bytes] = (), issued_ms: int = 0, count: Optional[int] = None,
                version: int = control.VERSION) -> bytes:
    """A command laid out as FORMAT.md 8 says, whatever its numbers, MAC'd under ``key``: what the
    library refuses to make, for testing what the camera does with it."""
    body = bytes((version, control.KIND_COMMAND, op)) + raw_id(camera) + raw_id(owner)
    body += encode_uvarint(counter) + encode_uvarint(epoch)
    if op == control.ROTATE:
        body += encode_uvarint(period_s) + bytes((len(shares) if count is None else count,))
        body += b"".join(raw_id(s) for s in shares)
    body += encode_uvarint(issued_ms)
    return body + control.mac_of(key, body)


def raw_offer(owner: str | bytes, camera: str | bytes, secret: bytes, expires_ms: int, period_s: int) -> bytes:
    """A pairing offer laid out as FORMAT.md 8 says, whatever its numbers."""
    return (control.PAIRING_MAGIC + raw_id(owner) + raw_id(camera) + secret + encode_uvarint(expires_ms)
            + encode_uvarint(period_s))


# -- the real agent process ---------------------------------------------------------------------

def camera_vendor_dir(base: Path) -> Path:
    """What the camera image puts beside the standard library: paho-mqtt and the cryptography
    package (Debian's python3-cryptography on the image, for OpenSSL's AES-CTR), as symlinks."""
    import _cffi_backend
    import cryptography
    import paho

    vendor = base / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    for name, target in (("paho", Path(paho.__file__).resolve().parent),
                         ("cryptography", Path(cryptography.__file__).resolve().parent),
                         (Path(_cffi_backend.__file__).name, Path(_cffi_backend.__file__).resolve())):
        link = vendor / name
        if not link.exists():
            link.symlink_to(target)
    return vendor


def agent_camera(camera: str, workdir: Path, broker_host: str, broker_port: int, **kw):
    """``host_sim.camera.Camera``, the real agent process (``python3 -S``, no ``hmac``, no ``segbind``),
    with the camera image's packages on its path."""
    from host_sim.camera import FIRMWARE, Camera

    workdir = Path(workdir)
    env = dict(kw.pop("env", {}) or {})
    env["PYTHONPATH"] = os.pathsep.join([str(FIRMWARE), str(camera_vendor_dir(workdir))])
    return Camera(camera, str(ROOT / "keys" / "test" / ("%s.device.json" % camera)), workdir, broker_host,
                  broker_port, env=env, **kw)


class Owner:
    """The owner's side of a real agent over a real broker: commands in, results out, raw bytes
    allowed (``send``), and the camera's retained status."""

    def __init__(self, broker_host: str, broker_port: int, camera: str, client_id: str = "test-owner") -> None:
        from host_sim.transport import MqttTransport

        self.camera = camera
        self.results: List[bytes] = []
        self.stills: List[bytes] = []
        self.events: List[dict] = []
        self.status: dict = {}
        self.transport = MqttTransport(broker_host, broker_port, client_id)
        self.transport.subscribe(topics.camera_topic(camera, topics.CTL_RESULT),
                                 lambda m: self.results.append(m.payload))
        self.transport.subscribe(topics.camera_topic(camera, topics.STILL),
                                 lambda m: self.stills.append(m.payload))
        self.transport.subscribe(topics.camera_topic(camera, topics.EVENT),
                                 lambda m: self.events.append(json.loads(m.payload)))
        self.transport.subscribe(topics.camera_topic(camera, topics.STATUS), self._on_status)
        self.transport.start()

    def _on_status(self, msg) -> None:
        self.status = json.loads(msg.payload)

    def send(self, payload: bytes) -> None:
        self.transport.publish(topics.camera_topic(self.camera, topics.CTL), payload, 1, False)

    def next_result(self, before: int, timeout: float = 20.0) -> bytes:
        wait_until(lambda: len(self.results) > before, timeout, "a result from %s" % self.camera)
        return self.results[before]

    def ask(self, payload: bytes, timeout: float = 20.0) -> bytes:
        before = len(self.results)
        self.send(payload)
        return self.next_result(before, timeout)

    def stop(self) -> None:
        self.transport.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % (what or predicate))
        time.sleep(0.02)


__all__ = ["CoreRunner", "Owner", "agent_camera", "camera_vendor_dir", "raw_command", "raw_offer", "ring_of",
           "wait_until"]


def ring_of(owner, camera: str = "cam-1", holder: Optional[str] = None, around_ms: Optional[int] = None,
            hours: float = 48.0):
    """What ``holder``'s displays (the owner's by default) hold of ``camera`` as ``owner``'s app knows it:
    their slot of every epoch of its pairing they are in, every period from an hour before
    ``around_ms`` (now by default) for ``hours``. Built from the pairing secret, as the grants
    carry it (GRANTS.md), without the grants' sealing."""
    from .tagged import keyring_of

    cam = owner.cameras[camera]
    epochs = [cam.epoch_keys(owner.name, e) for e in sorted(cam.epochs)
              if holder is None or holder in cam.epochs[e]]
    start = (int(time.time() * 1000) if around_ms is None else around_ms) - 3_600_000
    return keyring_of(*epochs, holder=holder, start_ms=start, hours=hours)
