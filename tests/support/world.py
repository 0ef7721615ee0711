"""A whole segbind world over a real Mosquitto, for end-to-end tests: the reference cloud,
owners' apps, their enrolled displays, and cameras running the real agent process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from host_sim.app import OwnerApp
from host_sim.broker import Broker
from host_sim.camera import Camera
from host_sim.cloud import Cloud, CloudFaults, RoutingStore
from host_sim.display import Display
from host_sim.transport import MqttTransport
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner, exchange_contacts
from segbind_core import control
from tests.support import ROOT

KEYS = ROOT / "keys" / "test"


def until(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % (what or predicate))
        time.sleep(0.05)


class World:
    def __init__(self, broker: Broker, tmp_path: Path, faults: Optional[CloudFaults] = None,
                 second_line: bool = True) -> None:
        self.broker = broker
        self.tmp = tmp_path
        self.cloud = Cloud(self._transport("segbind-cloud"), RoutingStore(str(tmp_path / "routing.json")),
                           faults=faults, second_line=second_line).start()
        self.apps: Dict[str, OwnerApp] = {}
        self.displays: Dict[str, Display] = {}
        self.cameras: List[Camera] = []

    def _transport(self, client_id: str) -> MqttTransport:
        return MqttTransport(self.broker.host, self.broker.port, client_id)

    def account(self, name: str) -> Tuple[OwnerApp, Display]:
        """An owner's app and one display it enrolled (out of band), both connected."""
        app = OwnerApp(self._transport("app-" + name), Owner.new(name, test_only=True)).start()
        identity = DisplayIdentity.new(name + "-tv", test_only=True)
        app.enroll(identity)
        display = Display(self._transport("display-" + name), name, identity,
                          grants_path=str(self.tmp / ("%s-tv.grants.json" % name)), keep_segments=True).start()
        self.apps[name], self.displays[name] = app, display
        until(lambda: name + "-tv" in self.cloud.routing.displays.get(name, []), 10, "the display registered")
        return app, display

    def display(self, name: str) -> Display:
        return self.account(name)[1]

    def camera(self, camera: str, owner: str = "", **kw) -> Camera:
        cam = Camera(camera, str(KEYS / ("%s.device.json" % camera)), self.tmp / camera,
                     self.broker.host, self.broker.port, **kw).start()
        self.cameras.append(cam)
        until(lambda: self.cloud.status.get(camera, {}).get("state") == "online", 20, "%s online" % camera)
        if owner:
            self.pair(cam, owner)
        return cam

    def pair(self, cam: Camera, owner: str) -> control.Result:
        app = self.apps[owner]
        before = len(app.results)
        app.pair(cam.camera_id, cam.handover)
        until(lambda: any(r.op == control.PAIR and r.camera == cam.camera_id for r in app.results[before:]),
              20, "the pairing of %s" % cam.camera_id)
        result = app.result_for(cam.camera_id, control.PAIR)
        assert result is not None
        if result.status == control.OK:
            until(lambda: self.cloud.routing.owner.get(cam.camera_id) == owner, 10, "routing to %s" % owner)
            until(lambda: self.displays[owner].has_grant(cam.camera_id, result.epoch), 10, "the grants")
        return result

    def share(self, camera: str, owner: str, viewer: str) -> control.Result:
        a, b = self.apps[owner], self.apps[viewer]
        if viewer not in a.owner.contacts:
            exchange_contacts(a.owner, b.owner)   # cards shown to each other, never via the cloud
        before = len(a.results)
        a.share(camera, viewer)
        return self._command_done(a, camera, before, viewer)

    def revoke(self, camera: str, owner: str, viewer: str) -> control.Result:
        a = self.apps[owner]
        before = len(a.results)
        a.revoke(camera, viewer)
        return self._command_done(a, camera, before)

    def rotate(self, camera: str, owner: str) -> control.Result:
        a = self.apps[owner]
        before = len(a.results)
        a.rotate(camera)
        return self._command_done(a, camera, before)

    def _command_done(self, app: OwnerApp, camera: str, before: int, viewer: str = "") -> control.Result:
        until(lambda: any(r.camera == camera and r.op == control.ROTATE for r in app.results[before:]), 20,
              "the camera's result")
        result = [r for r in app.results[before:] if r.camera == camera][-1]
        if viewer and result.status == control.OK:
            until(lambda: self.displays[viewer].has_grant(camera, result.epoch), 10, "the viewer's grants")
        return result

    def close(self) -> None:
        for cam in self.cameras:
            cam.kill()
        for d in self.displays.values():
            d.stop()
        for app in self.apps.values():
            app.transport.stop()
        self.cloud.stop()
