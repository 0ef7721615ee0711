"""End to end against a real Mosquitto: the agent process, the cloud, displays.

Every test starts its own broker on a free loopback port. Cameras are the
real agent (``python3 -S``, no ``hmac``, no ``segbind`` library) fed real
libx264 video through a FIFO; displays verify with the segbind library.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Dict, List

import pytest

from host_sim import clips
from host_sim.broker import Broker
from host_sim.camera import Camera
from host_sim.cloud import Cloud, LeakyRouter
from host_sim.display import Display
from host_sim.transport import MqttTransport
from segbind_core import control
from segbind_core.keys import derive_control_key
from tests.support import ROOT

pytestmark = pytest.mark.broker

KEYS = ROOT / "keys" / "test"
SEGS_PER_CLIP = 10
CRASH_POINTS = ("ctl:received", "ctl:state_tmp", "ctl:state_renamed", "ctl:persisted", "ctl:applied")


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Two seconds of libx264 at 25 fps with an IDR every 5 pictures: ten segments."""
    return clips.encode_pyav(frames=50, gop=5)


@pytest.fixture()
def broker():
    with Broker() as b:
        yield b


def secret_of(camera: str) -> bytes:
    return bytes.fromhex(json.loads((KEYS / ("%s.device.json" % camera)).read_text())["secret"])


class World:
    def __init__(self, broker: Broker, tmp_path: Path, router=None) -> None:
        self.broker = broker
        self.tmp = tmp_path
        self.cloud = Cloud(MqttTransport(broker.host, broker.port, "segbind-cloud"),
                           router=router).start()
        self.displays: Dict[str, Display] = {}
        self.cameras: List[Camera] = []

    def display(self, account: str) -> Display:
        d = Display(MqttTransport(self.broker.host, self.broker.port, "display-" + account),
                    account, keep_segments=True).start()
        self.displays[account] = d
        return d

    def camera(self, camera: str, owner: str = "", **kw) -> Camera:
        self.cloud.provision(camera, secret_of(camera))
        cam = Camera(camera, str(KEYS / ("%s.device.json" % camera)), self.tmp / camera,
                     self.broker.host, self.broker.port, **kw).start()
        self.cameras.append(cam)
        assert self.cloud.wait_status(camera, lambda s: s["state"] == "online", 20), cam.log()
        if owner:
            self.cloud.claim(camera, owner, wait=20)
            d = self.displays.get(owner)
            if d is not None:
                assert d.wait_for(lambda d: d.has_grant(camera), 10)
        return cam

    def close(self) -> None:
        for cam in self.cameras:
            cam.kill()
        for d in self.displays.values():
            d.stop()
        self.cloud.stop()


@pytest.fixture()
def world(broker, tmp_path):
    w = World(broker, tmp_path)
    yield w
    w.close()


def seqs(display: Display, camera: str = "cam-1") -> List[int]:
    return [t.seq for t in display.shown if t.camera == camera]


def shown_streams(display: Display) -> List[tuple]:
    return [(t.stream_id, t.seq) for t in display.shown]


def test_camera_to_cloud_to_display(world: World, clip: bytes) -> None:
    alice, bob = world.display("alice"), world.display("bob")
    cam = world.camera("cam-1", "alice")
    cam.feed(clip, speed=4, repeat=2)
    total = 2 * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: len(d.shown) >= total, 30), (alice.summary(), cam.log())
    time.sleep(0.3)
    assert seqs(alice) == list(range(total)) and dict(alice.counts) == {"ok": total}
    assert bob.shown == [] and sum(bob.counts.values()) == 0
    # the shown video is the camera's video: it decodes, every picture of it
    import av

    codec = av.CodecContext.create("h264", "r")
    frames = 0
    for packet in codec.parse(b"".join(alice.shown_segments)) + codec.parse(None):
        frames += len(codec.decode(packet))
    frames += len(codec.decode(None))
    assert frames == 2 * 50
    # status and health, then a clean stop that says goodbye
    status = world.cloud.wait_status("cam-1", lambda s: s.get("counts", {}).get(
        "segments_delivered") == total, 10)
    assert status and status["owner"] == "alice" and status["spool"]["segments"] == 0
    assert cam.stop() == 0
    assert world.cloud.wait_status("cam-1", lambda s: s["state"] == "offline"
                                   and s.get("reason") == "stopped", 10)


def test_broker_restart_mid_stream_loses_nothing_shows_nothing_twice(world: World, broker: Broker,
                                                                    clip: bytes) -> None:
    alice = world.display("alice")
    cam = world.camera("cam-1", "alice")
    reps = 4
    cam.feed(clip, speed=2, repeat=reps)  # 40 segments over 4 s
    assert alice.wait_for(lambda d: len(d.shown) >= 8, 20)
    broker.restart(down_s=1.0)
    total = reps * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: len(d.shown) >= total, 40), (alice.summary(), cam.log()[-3000:])
    time.sleep(1.0)  # late redeliveries, if any, would show up now
    assert seqs(alice) == list(range(total))            # nothing lost, in order, once
    assert "gap" not in alice.counts
    assert alice.rejected == alice.counts.get("duplicate", 0)  # a redelivery is never shown
    assert "disconnected" in cam.log()                  # the camera really lost the broker


@pytest.mark.parametrize("leaky", [False, True], ids=["correct-cloud", "leaky-cloud"])
def test_transfer_mid_stream(broker: Broker, tmp_path: Path, clip: bytes, leaky: bool) -> None:
    world = World(broker, tmp_path, router=LeakyRouter(["alice", "bob"]) if leaky else None)
    try:
        alice, bob = world.display("alice"), world.display("bob")
        cam = world.camera("cam-1", "alice")
        cam.feed(clip, speed=2, repeat=3)
        assert alice.wait_for(lambda d: len(d.shown) >= 6, 20)
        cmd = world.cloud.transfer("cam-1", "bob", wait=20)
        result = world.cloud.results[("cam-1", cmd.counter)]
        first_bobs = result.seq  # the first segment tagged for bob
        assert result.owner == "bob" and result.epoch == 2
        # The transfer drops the pictures in progress and bob's video starts at the next
        # random access point: one segment (an IDR every 5 pictures) is never tagged.
        total = 3 * SEGS_PER_CLIP - 1
        assert bob.wait_for(lambda d: len(d.shown) >= total - first_bobs, 30), bob.summary()
        time.sleep(0.5)
        assert seqs(alice) == list(range(first_bobs))         # nothing after the transfer
        assert seqs(bob) == list(range(first_bobs, total))     # everything after it
        assert all(t.owner == "bob" and t.epoch == 2 for t in bob.shown)
        if leaky:  # the cloud sent alice bob's video (and bob alice's): the keys refused it
            assert alice.counts["no_grant"] == total - first_bobs
            assert bob.counts["no_grant"] >= 1
        else:
            assert alice.rejected == 0 and bob.rejected == 0
    finally:
        world.close()


@pytest.mark.parametrize("leaky", [False, True], ids=["correct-cloud", "leaky-cloud"])
def test_share_and_revoke(broker: Broker, tmp_path: Path, clip: bytes, leaky: bool) -> None:
    world = World(broker, tmp_path, router=LeakyRouter(["bob"]) if leaky else None)
    try:
        alice, bob, carol = world.display("alice"), world.display("bob"), world.display("carol")
        cam = world.camera("cam-1", "alice")
        world.cloud.share("cam-1", "bob")
        world.cloud.share("cam-1", "carol")
        assert bob.wait_for(lambda d: d.has_grant("cam-1", 1), 10)
        assert carol.wait_for(lambda d: d.has_grant("cam-1", 1), 10)
        cam.feed(clip, speed=2, repeat=3)
        assert bob.wait_for(lambda d: len(d.shown) >= 5, 20)
        cmd = world.cloud.revoke("cam-1", "bob", wait=20)
        rotated_at = world.cloud.results[("cam-1", cmd.counter)].seq
        assert alice.wait_for(lambda d: len(d.shown) >= 3 * SEGS_PER_CLIP, 30), alice.summary()
        time.sleep(1.0)
        # The rotation closes the segment in progress at its instant: one more segment,
        # unless the next picture to begin was an IDR picture anyway.
        total = len(alice.shown)
        assert total in (3 * SEGS_PER_CLIP, 3 * SEGS_PER_CLIP + 1)
        assert carol.wait_for(lambda d: len(d.shown) >= total, 10), carol.summary()
        for d in (alice, carol):  # the owner and the remaining viewer: all of it, one chain
            assert seqs(d) == list(range(total)) and d.rejected == 0
            assert {t.epoch for t in d.shown} == {1, 2}
        assert carol.has_grant("cam-1", 2) and not bob.has_grant("cam-1", 2)
        assert 5 <= len(bob.shown) and max(seqs(bob)) < rotated_at   # nothing after the revoke
        assert not bob.has_grant("cam-1")
        if leaky:
            assert bob.counts["no_grant"] >= total - rotated_at
    finally:
        world.close()


def test_forged_altered_and_replayed_commands_are_refused(world: World, clip: bytes) -> None:
    alice = world.display("alice")
    cam = world.camera("cam-1", "alice")
    cloud = world.cloud
    rec = cloud.registry.get("cam-1")
    recorded_claim = control.Command(control.CLAIM, "cam-1", 1, "alice", 1).encode(rec.control_key())
    cam.feed(clip, speed=2, repeat=2)
    assert alice.wait_for(lambda d: len(d.shown) >= 3, 20)
    forged = control.Command(control.TRANSFER, "cam-1", 50, "mallory", 50).encode(
        derive_control_key(bytes(32), "cam-1"))
    altered = bytearray(control.Command(control.TRANSFER, "cam-1", 51, "bob", 51).encode(
        rec.control_key()))
    altered[altered.index(b"bob")] ^= 0x20  # the owner "bob" becomes "Bob"
    other_cam = control.Command(control.RESET, "cam-2", 52).encode(
        derive_control_key(secret_of("cam-2"), "cam-2"))
    for payload in (forged, bytes(altered), recorded_claim, other_cam, b"\x00garbage"):
        cloud.send_raw("cam-1", payload)
    assert cloud.wait_for(lambda: len(cloud.refusals) >= 5, 20), cam.log()
    assert sorted(r.status for r in cloud.refusals) == sorted(
        [control.BAD_MAC, control.BAD_MAC, control.REPLAY, control.WRONG_CAMERA, control.MALFORMED])
    assert cloud.wait_for(lambda: len([e for e in cloud.events
                                       if e["event"] == "command_refused"]) >= 5, 10)
    state = cam.state()
    assert (state["owner"], state["epoch"], state["counter"]) == ("alice", 1, 1)
    # the stream never stopped, and the real next command still works
    cloud.rotate("cam-1", wait=20)
    total = 2 * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: len(d.shown) >= total, 30)
    assert seqs(alice) == list(range(total)) and alice.rejected == 0
    status = cloud.wait_status("cam-1", lambda s: s.get("counter") == 2, 10)
    assert status["commands_refused"] == {"bad_mac": 2, "replay": 1, "wrong_camera": 1,
                                          "malformed": 1}


def test_kill_9_during_rotation_leaves_a_consistent_binding(world: World, clip: bytes) -> None:
    alice = world.display("alice")
    cam = world.camera("cam-1", "alice")
    cloud = world.cloud
    rng = random.Random(2020)
    trials = [(p, None) for p in CRASH_POINTS] + [(None, rng.uniform(0.0, 0.08)) for _ in range(4)]
    cam.feed(clip, speed=2, repeat=50)  # the encoder of this agent process
    for point, delay in trials:
        if point:  # the same camera, restarted to die at this point of the next command
            cam.stop()
            before = cam.state()
            cam.start(crash_at=point)
            cam.feed(clip, speed=2, repeat=50)
            assert cloud.wait_status("cam-1", lambda s: s["state"] == "online"
                                     and s.get("stream_id", 0) > before["stream_id"], 20)
        before = cam.state()
        cmd = cloud.rotate("cam-1")
        if point:
            assert cam.wait(20) == -9, "the agent did not reach %s" % point
        else:
            time.sleep(delay)
            cam.kill()
        after = cam.state()  # whole and consistent: the old binding or the new, never a mix
        old = (before["counter"], before["owner"], before["epoch"])
        new = (cmd.counter, "alice", cmd.epoch)
        got = (after["counter"], after["owner"], after["epoch"])
        assert got in (old, new), (point, delay, got)
        assert after["epoch_hwm"] == after["epoch"]
        if point in ("ctl:received", "ctl:state_tmp"):
            assert got == old
        elif point:
            assert got == new
        # restarted, the agent finishes the rotation (QoS-1 redelivery) and tags under it
        cam.start()
        cam.feed(clip, speed=2, repeat=50)
        result = cloud.wait_result("cam-1", cmd.counter, 20)
        assert result is not None and result.accepted, (point, delay, cam.log()[-2000:])
        assert cam.state()["epoch"] == cmd.epoch
        assert alice.wait_for(lambda d: any(t.epoch == cmd.epoch for t in d.shown), 20), point
        assert cloud.wait_status("cam-1", lambda s: s.get("epoch") == cmd.epoch, 10)
    assert "chain_break" not in alice.counts and "mac_mismatch" not in alice.counts
    streams = [t.stream_id for t in alice.shown]
    assert streams == sorted(streams)  # every restart began a stream that orders after


def test_spool_overflow_gives_a_reported_gap(world: World, broker: Broker, clip: bytes) -> None:
    alice = world.display("alice")
    cam = world.camera("cam-1", "alice", config={"spool": {"max_segments": 4}})
    cam.feed(clip, speed=4).join(10)
    assert alice.wait_for(lambda d: len(d.shown) >= SEGS_PER_CLIP, 20)
    broker.stop()
    cam.feed(clip, speed=4).join(10)  # ten more segments while the broker is away
    deadline = time.time() + 10
    while "spool gap" not in cam.log() or cam.spooled() != 4:
        assert time.time() < deadline, cam.log()
        time.sleep(0.05)
    time.sleep(0.3)
    assert cam.running  # a full spool is not a crash
    broker.start()
    assert alice.wait_for(lambda d: len(d.shown) >= SEGS_PER_CLIP + 4, 30), alice.summary()
    assert seqs(alice) == list(range(10)) + [16, 17, 18, 19]
    gap = [v for v in alice.verdicts if v.reason.value == "gap"]
    assert len(gap) == 1 and gap[0].missing == 6 and gap[0].tag.seq == 16
    cloud = world.cloud
    assert cloud.wait_for(lambda: sum(e.get("count", 0) for e in cloud.events
                                      if e["event"] == "spool_gap") == 6, 20), cloud.events
    status = cloud.wait_status("cam-1", lambda s: s.get("spool", {}).get("dropped_total") == 6, 10)
    assert status["gaps"] and status["counts"]["gaps"] >= 1
