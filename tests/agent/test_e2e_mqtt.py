"""End to end against a real Mosquitto: the agent process, the cloud, owners' apps, displays.

Every test starts its own broker on a free loopback port. Cameras are the real agent
(``python3 -S``, no ``hmac``, no ``segbind`` library) fed real libx264 video through a
FIFO and paired out of band (``segbind-agent``'s inbox); displays take keys only from
their owner's sealed grants and verify with the segbind library.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import List

import pytest

from host_sim import clips
from host_sim.broker import Broker
from host_sim.cloud import CloudFaults
from host_sim.display import Display
from host_sim.transport import MqttTransport
from segbind.owner import Owner
from segbind_core import control, topics
from tests.support.world import World, until

pytestmark = pytest.mark.broker

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


@pytest.fixture()
def world(broker, tmp_path):
    w = World(broker, tmp_path)
    yield w
    w.close()


def seqs(display: Display, camera: str = "cam-1", owner: str = "") -> List[int]:
    """The seqs shown live of ``camera`` of ``owner`` (by default the display's own account)."""
    return [t.seq for t in display.shown_of(camera, owner or None)]


def test_camera_to_cloud_to_display(world: World, clip: bytes) -> None:
    _app, alice = world.account("alice")
    _bob_app, bob = world.account("bob")
    cam = world.camera("cam-1", "alice")
    cam.feed(clip, speed=4, repeat=2)
    total = 2 * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: d.shown_total() >= total, 30), (alice.summary(), cam.log())
    time.sleep(0.3)
    assert seqs(alice) == list(range(total)) and dict(alice.counts) == {"ok": total}
    assert bob.shown_total() == 0 and sum(bob.counts.values()) == 0
    assert alice.alarms() == []
    # the shown video is the camera's video: it decodes, every picture of it
    import av

    codec = av.CodecContext.create("h264", "r")
    frames = 0
    for packet in codec.parse(b"".join(alice.output[("alice", "cam-1")])) + codec.parse(None):
        frames += len(codec.decode(packet))
    frames += len(codec.decode(None))
    assert frames == 2 * 50
    status = world.cloud.status["cam-1"]
    until(lambda: world.cloud.status["cam-1"].get("counts", {}).get("segments_delivered") == total, 10)
    assert status["owner"] == "alice"
    assert cam.stop() == 0
    until(lambda: world.cloud.status["cam-1"].get("reason") == "stopped", 10, "the goodbye")
    # the last segment of a clean stop ends the stream: a recording of it is complete
    assert alice.wait_for(lambda d: d.shown[("alice", "cam-1")][-1].end_of_stream, 10)
    # and the feed, stopped, goes stale on the display
    alice.watch.stale_s = 0.5
    time.sleep(0.8)
    assert [a.kind for a in alice.alarms()] == ["stale"]


def test_broker_restart_mid_stream_loses_nothing_shows_nothing_twice(world: World, broker: Broker,
                                                                    clip: bytes) -> None:
    _app, alice = world.account("alice")
    cam = world.camera("cam-1", "alice")
    reps = 4
    cam.feed(clip, speed=2, repeat=reps)  # 40 segments over 4 s
    assert alice.wait_for(lambda d: d.shown_total() >= 8, 20)
    broker.restart(down_s=1.0)
    total = reps * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: d.shown_total() >= total, 40), (alice.summary(), cam.log()[-3000:])
    time.sleep(1.0)  # late redeliveries, if any, would show up now
    assert seqs(alice) == list(range(total))            # nothing lost, in order, once
    assert "gap" not in alice.counts
    assert alice.rejected == alice.counts.get("duplicate", 0)  # a redelivery is never shown
    assert "disconnected" in cam.log()                  # the camera really lost the broker


@pytest.mark.parametrize("buggy", [False, True], ids=["correct-cloud", "cloud-keeps-the-former-owner"])
def test_resale_release_then_the_buyer_pairs(broker: Broker, tmp_path: Path, clip: bytes, buggy: bool) -> None:
    # the cloud's second line would catch its own bug: off, so that the display alone is tested
    world = World(broker, tmp_path, faults=CloudFaults(resale_without_reset=buggy), second_line=not buggy)
    try:
        alice_app, alice = world.account("alice")
        _bob_app, bob = world.account("bob")
        cam = world.camera("cam-1", "alice")
        cam.feed(clip, speed=2, repeat=3)
        assert alice.wait_for(lambda d: d.shown_total() >= 6, 20)
        alice_app.release("cam-1")
        until(lambda: (alice_app.result_for("cam-1", control.RELEASE) or control.Result("", "", 0, 0, "x")).status
              == control.OK, 20, "the release")
        result = world.pair(cam, "bob")
        assert result.status == control.OK and result.epoch == 1  # a fresh pairing: epochs count from 1
        # The release dropped the pictures in progress, and bob's video starts at the next
        # random access point: nothing captured before bob's pairing is tagged for him.
        assert bob.wait_for(lambda d: d.shown_total() >= 5, 30), bob.summary()
        time.sleep(1.0)
        assert all(t.owner == "bob" and t.epoch == 1 and t.capture_ms >= result.stream_id
                   for t in bob.shown[("bob", "cam-1")])
        assert all(t.owner == "alice" for t in alice.shown[("alice", "cam-1")])
        assert not any(camera == "cam-1" for _owner, camera in set(alice.shown) - {("alice", "cam-1")})
        if buggy:  # the cloud still sends alice the camera: the keys refuse all of it
            assert alice.counts["no_grant"] >= 5
        else:
            assert alice.rejected == 0 and bob.rejected == 0
    finally:
        world.close()


@pytest.mark.parametrize("leaky", [False, True], ids=["correct-cloud", "leaky-cloud"])
def test_share_and_revoke(broker: Broker, tmp_path: Path, clip: bytes, leaky: bool) -> None:
    world = World(broker, tmp_path, faults=CloudFaults(leak_to=("bob",) if leaky else ()),
                  second_line=not leaky)
    try:
        _a, alice = world.account("alice")
        _b, bob = world.account("bob")
        _c, carol = world.account("carol")
        world.camera("cam-1", "alice")
        world.share("cam-1", "alice", "bob")
        shared = world.share("cam-1", "alice", "carol")
        assert shared.epoch == 3 and world.apps["alice"].owner.cameras["cam-1"].shares == ["bob", "carol"]
        cam = world.cameras[0]
        cam.feed(clip, speed=2, repeat=3)
        assert bob.wait_for(lambda d: d.shown_total() >= 5, 20), bob.summary()
        revoked = world.revoke("cam-1", "alice", "bob")
        assert revoked.status == control.OK and revoked.epoch == 4
        assert alice.wait_for(lambda d: d.shown_total() >= 3 * SEGS_PER_CLIP, 30), alice.summary()
        time.sleep(1.0)
        # The rotation closes the segment in progress at its instant: one more segment,
        # unless the next picture to begin was an IDR picture anyway.
        total = alice.shown_total()
        assert total in (3 * SEGS_PER_CLIP, 3 * SEGS_PER_CLIP + 1)
        assert carol.wait_for(lambda d: d.shown_total() >= total, 10), carol.summary()
        for d in (alice, carol):  # the owner and the remaining viewer: all of it, one chain
            assert seqs(d, owner="alice") == list(range(total)) and d.rejected == 0
            assert {t.epoch for t in d.shown[("alice", "cam-1")]} == {3, 4}
        assert carol.has_grant("cam-1", 4) and not bob.has_grant("cam-1", 4)
        assert 5 <= bob.shown_total() and max(seqs(bob, owner="alice")) < revoked.seq   # nothing after the revoke
        assert {t.epoch for t in bob.shown[("alice", "cam-1")]} == {3}
        if leaky:
            assert bob.counts["no_grant"] >= total - revoked.seq
    finally:
        world.close()


def test_forged_altered_replayed_and_foreign_commands_are_refused(world: World, clip: bytes) -> None:
    alice_app, alice = world.account("alice")
    cam = world.camera("cam-1", "alice")
    owner = alice_app.owner
    first = owner.rotate("cam-1", [], int(time.time() * 1000))     # a real command, recorded
    alice_app.push_grants()                                   # its keys to alice's display first
    cam.feed(clip, speed=2, repeat=2)
    assert alice.wait_for(lambda d: d.shown_total() >= 3, 20)
    mallory = Owner.new("mallory", test_only=True)
    mallory.pairing_offer("cam-1", 0)
    mallory.cameras["cam-1"].paired = True
    forged = mallory.release("cam-1", 0)                      # under another pairing's key
    altered = bytearray(owner.release("cam-1", 0))
    altered[-40] ^= 0x01                                      # a bit of the counter's neighbourhood
    attacker = MqttTransport(world.broker.host, world.broker.port, "attacker")  # on the broker itself
    attacker.start()
    attacker.wait_ready(10)
    ctl = topics.camera_topic("cam-1", topics.CTL)
    attacker.publish(ctl, first, qos=1)                       # once: applied
    until(lambda: alice_app.result_for("cam-1", control.ROTATE) is not None, 20)
    for payload in (forged, bytes(altered), first, b"\x00garbage"):
        attacker.publish(ctl, payload, qos=1)
    def statuses() -> List[str]:
        return sorted(r.status for r in alice_app.owner.results if r.op != control.PAIR)

    until(lambda: len(statuses()) >= 5, 20, "five results")
    assert statuses() == sorted([control.OK, control.BAD_MAC, control.BAD_MAC, control.ALREADY_APPLIED,
                                 control.MALFORMED])
    until(lambda: world.cloud.status["cam-1"].get("commands_refused", {}).get(control.BAD_MAC) == 2, 20,
          "the camera's refusals")
    state = cam.state()
    assert (state["owner"], state["epoch"]) == ("alice", 2)   # the first rotation, and nothing else
    attacker.stop()
    # the stream never stopped, and the owner's next command still works
    assert world.rotate("cam-1", "alice").status == control.OK
    total = 2 * SEGS_PER_CLIP
    assert alice.wait_for(lambda d: d.shown_total() >= total, 30)
    assert seqs(alice) == list(range(total)) and alice.rejected == 0


def test_kill_9_during_rotation_leaves_a_consistent_binding(world: World, clip: bytes) -> None:
    alice_app, alice = world.account("alice")
    cam = world.camera("cam-1", "alice")
    rng = random.Random(2020)
    trials = [(p, None) for p in CRASH_POINTS] + [(None, rng.uniform(0.0, 0.08)) for _ in range(4)]
    cam.feed(clip, speed=2, repeat=50)
    for point, delay in trials:
        if point:  # the same camera, restarted to die at this point of the next command
            cam.stop()
            before = cam.state()
            cam.start(crash_at=point)
            cam.feed(clip, speed=2, repeat=50)
            until(lambda: world.cloud.status["cam-1"].get("state") == "online"
                  and world.cloud.status["cam-1"].get("stream_id", 0) > before["stream_id"], 20)
        before = cam.state()
        n = len(alice_app.results)
        alice_app.rotate("cam-1")
        epoch = alice_app.owner.cameras["cam-1"].epoch_hwm
        if point:
            assert cam.wait(20) == -9, "the agent did not reach %s" % point
        else:
            time.sleep(delay)
            cam.kill()
        after = cam.state()  # whole and consistent: the old binding or the new, never a mix
        got = (after["owner"], after["epoch"])
        assert got in (("alice", before["epoch"]), ("alice", epoch)), (point, delay, got)
        assert after["epoch_hwm"] == after["epoch"] and after["generation"] >= before["generation"]
        if point in ("ctl:received", "ctl:state_tmp"):
            assert got[1] == before["epoch"]
        elif point:
            assert got[1] == epoch
        # restarted, the agent finishes the rotation (QoS-1 redelivery) and tags under it
        cam.start()
        cam.feed(clip, speed=2, repeat=50)
        until(lambda: any(r.op == control.ROTATE and r.epoch == epoch and r.status in control.ACCEPTED_STATUSES
                          for r in alice_app.results[n:]), 20, "the rotation's result (%s)" % point)
        assert cam.state()["epoch"] == epoch
        assert alice.wait_for(lambda d: any(t.epoch == epoch for t in d.shown[("alice", "cam-1")]), 20), point
    assert "chain_break" not in alice.counts and "mac_mismatch" not in alice.counts
    streams = [t.stream_id for t in alice.shown[("alice", "cam-1")]]
    assert streams == sorted(streams)  # every restart began a stream that orders after


def test_spool_overflow_gives_a_reported_gap(world: World, broker: Broker, clip: bytes) -> None:
    _app, alice = world.account("alice")
    cam = world.camera("cam-1", "alice", config={"spool": {"max_segments": 4}})
    cam.feed(clip, speed=4).join(10)
    assert alice.wait_for(lambda d: d.shown_total() >= SEGS_PER_CLIP, 20)
    broker.stop()
    cam.feed(clip, speed=4).join(10)  # ten more segments while the broker is away
    deadline = time.time() + 10
    while "spool gap" not in cam.log() or cam.spooled() != 4:
        assert time.time() < deadline, cam.log()
        time.sleep(0.05)
    time.sleep(0.3)
    assert cam.running  # a full spool is not a crash
    broker.start()
    assert alice.wait_for(lambda d: d.shown_total() >= SEGS_PER_CLIP + 4, 30), alice.summary()
    assert seqs(alice) == list(range(10)) + [16, 17, 18, 19]
    gap = [v for v in alice.verdicts if v.reason.value == "gap"]
    assert len(gap) == 1 and gap[0].missing == 6 and gap[0].tag.seq == 16
    until(lambda: world.cloud.status["cam-1"].get("spool", {}).get("dropped_total") == 6, 20)
    assert world.cloud.status["cam-1"]["gaps"]


# bob forgets cam-1 (revoking its epoch 1 at his display) and pairs it again at epoch 1: a revoked
# entry names (owner, epoch id), and the new pairing's epoch 1 has another id.
def test_a_camera_whose_state_rolled_back_refuses_to_run_until_reset(world: World, clip: bytes) -> None:
    alice_app, alice = world.account("alice")
    world.account("bob")
    cam = world.camera("cam-1", "alice")
    backup = (cam.state_dir / "state.json").read_bytes()      # a backup of alice's camera
    alice_app.release("cam-1")
    until(lambda: world.cloud.status["cam-1"].get("claimed") is False, 20, "the release")
    world.pair(cam, "bob")                                    # sold and paired by bob
    cam.stop()
    (cam.state_dir / "state.json").write_bytes(backup)        # restored: alice's pairing again
    cam.start()
    assert cam.wait(20) == 2
    assert "rolled back" in cam.log() or "older copy" in cam.log()
    (cam.state_dir / "state.json").unlink()                   # deleted instead: refused too
    cam.start()
    assert cam.wait(20) == 2 and "missing" in cam.log()
    cam.press_reset()                                         # the owner presses the button
    world.apps["bob"].forget("cam-1")                         # and tells the app
    cam.start()
    until(lambda: world.cloud.status["cam-1"].get("state") == "online"
          and world.cloud.status["cam-1"].get("claimed") is False, 20, "a reset camera")
    assert world.pair(cam, "bob").status == control.OK
    cam.feed(clip, speed=4)
    bob = world.displays["bob"]
    assert bob.wait_for(lambda d: d.shown_total() >= 5, 30), bob.summary()
    assert not any(camera == "cam-1" for _owner, camera in alice.shown)


def test_a_transport_shared_by_several_parties_is_started_once(broker: Broker) -> None:
    """Each party starts the transport it is given; a shared one (the fleet's pools) keeps its one
    connection, its subscriptions and its queued messages: starting it again connects nothing."""
    shared = MqttTransport(broker.host, broker.port, "shared", clean=True).start()
    got: List[bytes] = []
    shared.subscribe("t/1", lambda msg: got.append(msg.payload))
    assert shared.wait_ready(10)
    for _party in range(3):
        assert shared.start() is shared and shared.wait_ready(1)
    shared.publish("t/1", b"once", qos=1)
    until(lambda: got == [b"once"], 10, "the message")
    assert shared.connects == 1
    shared.stop()
    assert not shared.connected
    shared.start()  # stopped, a transport starts again
    assert shared.wait_ready(10) and shared.connects == 2
    shared.stop()
