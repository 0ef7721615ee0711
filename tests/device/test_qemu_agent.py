"""The camera agent from the bundle, on emulated ARMv7 (armhf under qemu-user), end to end.

The bundle is installed into a throwaway layer of the armhf image; the agent is
started and stopped by the bundle's init script, reads real x264 video from a
FIFO, and publishes to a real Mosquitto broker on the host. The host side is the
reference cloud (here with a fault that also hands every segment to accounts that
must not see it), owners' apps and their enrolled displays, which take keys only
from their owner's sealed grants and verify with the segbind library.

The owner pairs the camera out of band, as format 3 wants: the app's pairing
offer reaches the camera through its lens, and the camera's firmware hands it to
``segbind-agent pair`` in the guest; the broker never carries it. Shares and
revokes are the owner's rotations, authenticated under the command key, carried
by the cloud while the video flows. A state restored from a backup stops the ARM
agent (exit 2) until ``segbind-agent reset``.
"""

from __future__ import annotations

import os
import time
from typing import Callable, List

import pytest

from host_sim import clips
from host_sim.app import OwnerApp
from host_sim.broker import Broker
from host_sim.cloud import CloudFaults
from host_sim.transport import MqttTransport
from segbind import Epoch, Reason, StreamVerifier
from segbind.owner import exchange_contacts
from segbind_core import control, topics
from tests.support.agent import ring_of
from tests.support.qemu import GuestCamera, bare_python_peak_kb
from tests.support.tagged import keyring_of
from tests.support.world import World

pytestmark = [pytest.mark.qemu, pytest.mark.broker]

CAMERA = "cam-arm7"
SEGMENTS_PER_CLIP = 10
REPEAT = 3
WAIT = 90  # seconds: generous limits for emulated ARM on a loaded CI machine (never asserted on)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Two seconds of libx264, an IDR every 5 pictures: ten segments."""
    return clips.encode_pyav(frames=50, gop=5, seed=11)


@pytest.fixture()
def broker():
    with Broker() as b:
        yield b


def answer(app: OwnerApp, cam: GuestCamera, op: int, send: Callable[[], None]) -> control.Result:
    """Do ``send`` (a pairing handed to the lens, a command through the cloud); the camera's
    result, checked by the app under the command key."""
    before = len(app.results)
    send()
    assert app.wait_for(lambda a: any(r.camera == CAMERA and r.op == op for r in a.results[before:]),
                        WAIT), (cam.output(), cam.log()[-3000:])
    return [r for r in app.results[before:] if r.camera == CAMERA and r.op == op][-1]


def pair(app: OwnerApp, cam: GuestCamera) -> control.Result:
    return answer(app, cam, control.PAIR, lambda: app.pair(CAMERA, cam.handover))


def status(world: World) -> dict:
    return world.cloud.status.get(CAMERA, {})


class SegmentTap:
    """Every segment the camera published, as it left the camera (a raw MQTT subscriber)."""

    def __init__(self, broker: Broker) -> None:
        self.segments: List[bytes] = []
        self.transport = MqttTransport(broker.host, broker.port, "tap-" + CAMERA)
        self.transport.subscribe(topics.camera_topic(CAMERA, topics.SEG),
                                 lambda msg: self.segments.append(bytes(msg.payload)))
        self.transport.start()
        assert self.transport.wait_ready(10)


def test_agent_in_armhf_image_paired_out_of_band_tags_for_its_owner_and_obeys_share_and_revoke(
        broker, tmp_path, clip):
    device_secret = os.urandom(32)  # the camera's identity toward the cloud, never a key's root
    world = World(broker, tmp_path, faults=CloudFaults(leak_to=("bob", "mallory")), second_line=False)
    alice_app, alice = world.account("alice")
    bob_app, bob = world.account("bob")
    _mallory_app, mallory = world.account("mallory")
    tap = SegmentTap(broker)
    cam = GuestCamera("armhf", tmp_path / "cam", CAMERA, device_secret, broker.host, broker.port)
    try:
        cam.start()
        assert world.cloud.wait_for(lambda: status(world).get("state") == "online", WAIT), \
            cam.output() + cam.log()
        assert status(world)["claimed"] is False  # unclaimed out of the factory

        # alice pairs it through its lens, then shares it with bob: epoch 2, bob in slot 1
        paired = pair(alice_app, cam)
        assert (paired.status, paired.owner, paired.epoch) == (control.OK, "alice", 1)
        assert alice.wait_for(lambda d: d.has_grant(CAMERA, 1), WAIT)
        exchange_contacts(alice_app.owner, bob_app.owner)  # cards shown to each other, never via the cloud
        shared = answer(alice_app, cam, control.ROTATE, lambda: alice_app.share(CAMERA, "bob"))
        assert (shared.status, shared.epoch) == (control.OK, 2)
        assert alice.wait_for(lambda d: d.has_grant(CAMERA, 2), WAIT)
        assert bob.wait_for(lambda d: d.has_grant(CAMERA, 2), WAIT)

        cam.feed(clip, speed=2, repeat=REPEAT)
        assert bob.wait_for(lambda d: d.shown_total() >= 5, WAIT), (bob.summary(), cam.log())
        # revoke bob: the camera rotates to epoch 3 between two segments
        revoked = answer(alice_app, cam, control.ROTATE, lambda: alice_app.revoke(CAMERA, "bob"))
        assert (revoked.status, revoked.owner, revoked.epoch) == (control.OK, "alice", 3)
        rotated_at = revoked.seq

        total = SEGMENTS_PER_CLIP * REPEAT
        assert alice.wait_for(lambda d: d.shown_total() >= total, WAIT), (alice.summary(), cam.log())
        # The rotation closes the segment in progress at its instant: one more segment,
        # unless the next picture to begin was an IDR picture anyway.
        time.sleep(2.0)
        assert alice.shown_total() in (total, total + 1)
        total = alice.shown_total()
        assert world.cloud.wait_for(
            lambda: status(world).get("counts", {}).get("segments_delivered") == total, WAIT)
        assert (status(world)["owner"], status(world)["epoch"], status(world)["shares"]) == ("alice", 3, [])
        peak_kb = cam.peak_memory_kb()
        assert mallory.wait_for(lambda d: d.counts["no_grant"] >= total, WAIT), mallory.summary()
        rc = cam.stop()
    finally:
        cam.close()
        tap.transport.stop()
        world.close()

    out = cam.output()
    assert rc == 0, out
    assert "pair-rc=0" in out  # the offer went through the init script's `segbind-agent pair`
    assert "stop-rc=0" in out and "status-rc=3" in out, out  # stopped by the init script
    log = cam.log()
    assert "Traceback" not in log, log
    assert "paired with owner alice: epoch 1" in log
    assert cam.agent_pid() is None  # the init script removed its pidfile

    # the owner saw every segment, once, in order, as one chain across the rotation
    shown = alice.shown_of(CAMERA)
    assert [t.seq for t in shown] == list(range(total))
    assert {t.camera for t in shown} == {CAMERA} and {t.owner for t in shown} == {"alice"}
    assert [t.epoch for t in shown] == [2] * rotated_at + [3] * (total - rotated_at)
    assert alice.rejected == 0
    # bob saw the segments of his share and nothing tagged after the revoke
    assert bob.shown_of(CAMERA, "alice") and max(t.seq for t in bob.shown_of(CAMERA, "alice")) < rotated_at
    assert {t.epoch for t in bob.shown_of(CAMERA, "alice")} == {2}
    assert bob.counts["no_grant"] >= total - rotated_at
    # mallory (never granted) was handed every segment by the leaky cloud and showed none
    assert mallory.shown_total() == 0 and mallory.counts["no_grant"] == total

    # Independently of the displays, on the bytes as they left the ARM camera: they verify
    # under the owner's keys (from the pairing secret only her app and the camera hold)...
    assert len(tap.segments) == total
    verifier = StreamVerifier(ring_of(alice_app.owner, CAMERA))
    verdicts = [verifier.verify(s) for s in tap.segments]
    assert [v.reason for v in verdicts] == [Reason.OK] * total
    # ... bob's slot key verifies his share's segments and nothing after the revoke ...
    bob_verifier = StreamVerifier(ring_of(alice_app.owner, CAMERA, holder="bob"))
    assert [bob_verifier.verify(s).accepted for s in tap.segments] == \
        [True] * rotated_at + [False] * (total - rotated_at)
    # ... and no key anyone else can compute opens them: not from the device secret (the
    # camera's identity, which the cloud knows), not from another pairing of the camera. The
    # key id comes from the pairing secret too (format 3): such keys do not even name them.
    since = int(time.time() * 1000) - 3_600_000
    for name, secret, owner in (("device secret", device_secret, "alice"),
                                ("another pairing", os.urandom(32), "alice"),
                                ("mallory's pairing", os.urandom(32), "mallory")):
        ring = keyring_of(*(Epoch.of_pairing(secret, owner, CAMERA, e, shares)
                            for e, shares in ((2, ["bob"]), (3, []))), start_ms=since)
        stranger = StreamVerifier(ring)
        reasons = {stranger.verify(s).reason for s in tap.segments}
        assert reasons == {Reason.NO_GRANT}, name

    # the agent's peak memory in the image (QEMU included), next to an idle interpreter's
    bare_kb = bare_python_peak_kb("armhf")
    print(f"\nagent VmHWM in the armhf image: {peak_kb} kB; idle python3: {bare_kb} kB")
    assert bare_kb < peak_kb < bare_kb + 64 * 1024  # bounded: tens of MB over the interpreter


def test_state_restored_from_a_backup_stops_the_arm_agent_until_its_reset(broker, tmp_path, clip):
    world = World(broker, tmp_path)
    alice_app, alice = world.account("alice")
    bob_app, bob = world.account("bob")
    cam = GuestCamera("armhf", tmp_path / "cam", CAMERA, os.urandom(32), broker.host, broker.port)
    try:
        cam.start()
        assert world.cloud.wait_for(lambda: status(world).get("state") == "online", WAIT), \
            cam.output() + cam.log()
        assert pair(alice_app, cam).status == control.OK
        backup = cam.state_file.read_bytes()  # a backup of alice's camera
        released = answer(alice_app, cam, control.RELEASE, lambda: alice_app.release(CAMERA))
        assert released.status == control.OK
        sold = pair(bob_app, cam)  # sold, and paired by bob
        assert (sold.status, sold.owner, sold.epoch) == (control.OK, "bob", 1)   # epochs count from 1 per pairing
        assert cam.stop() == 0

        # restored from the backup: alice's pairing again. The agent refuses to start.
        cam.state_file.write_bytes(backup)
        boot = cam.run_agent()
        assert boot.returncode == 2, (boot.stdout, boot.stderr)
        error = boot.stderr.strip().splitlines()[-1]  # after the test-only secret's warning
        assert error.startswith("segbind-agent: error: ") and "older copy" in error, boot.stderr
        assert "Traceback" not in boot.stderr
        assert cam.state_file.read_bytes() == backup  # refused: nothing written
        cam.state_file.unlink()  # deleted instead: refused too
        boot = cam.run_agent()
        error = boot.stderr.strip().splitlines()[-1]
        assert boot.returncode == 2 and error.startswith("segbind-agent: error: ") and "missing" in error, \
            boot.stderr

        # the owner presses the reset button (the camera is off): it boots unclaimed
        reset = cam.run_agent("reset")
        assert reset.returncode == 0, reset.stderr
        cam.start()
        assert world.cloud.wait_for(lambda: status(world).get("state") == "online"
                                    and status(world).get("claimed") is False, WAIT), cam.output() + cam.log()
        assert "was reset: no owner" in cam.log()
        bob_app.forget(CAMERA)  # and tells the app
        again = pair(bob_app, cam)
        assert (again.status, again.owner) == (control.OK, "bob")
        assert bob.wait_for(lambda d: d.has_grant(CAMERA, again.epoch), WAIT)
        cam.feed(clip, speed=4)
        assert bob.wait_for(lambda d: d.shown_total() >= 5, WAIT), (bob.summary(), cam.log())
        assert cam.stop() == 0
    finally:
        cam.close()
        world.close()
    assert alice.shown_total() == 0
    assert {t.owner for t in bob.shown_of(CAMERA)} == {"bob"}
    assert {t.epoch for t in bob.shown_of(CAMERA)} == {again.epoch}
    assert "Traceback" not in cam.log()
