"""The camera agent from the bundle, on emulated ARMv7 (armhf under qemu-user), end to end.

The bundle is installed into a throwaway layer of the armhf image; the
agent is started and stopped by the bundle's init script, reads real x264
video from a FIFO, and publishes to a real Mosquitto broker on the host. The
host side is the reference cloud (with a leaky router that also hands every
segment to accounts that must not see it) and displays that verify with the
segbind library. Claim, share and revoke (an epoch rotation) are sent as
authenticated control commands over MQTT while the video flows.
"""

from __future__ import annotations

import os
import time

import pytest

from host_sim import clips
from host_sim.broker import Broker
from host_sim.cloud import Cloud, LeakyRouter
from host_sim.display import Display
from host_sim.transport import MqttTransport
from segbind import Binding, Keyring, StreamVerifier, derive_binding_key
from tests.support.qemu import GuestCamera, bare_python_peak_kb

pytestmark = [pytest.mark.qemu, pytest.mark.broker]

CAMERA = "cam-arm7"
SEGMENTS_PER_CLIP = 10
REPEAT = 3
WAIT = 90  # seconds: generous limits for emulated ARM on a loaded CI machine (never asserted on)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Two seconds of libx264, an IDR every 5 pictures: ten segments."""
    return clips.encode_pyav(frames=50, gop=5, seed=11)


def test_agent_in_armhf_image_tags_for_its_owner_and_obeys_claim_and_rotation(tmp_path, clip):
    secret = os.urandom(32)
    total = SEGMENTS_PER_CLIP * REPEAT
    with Broker() as broker:
        cloud = Cloud(MqttTransport(broker.host, broker.port, "segbind-cloud"),
                      router=LeakyRouter(["bob", "mallory"])).start()
        displays = {name: Display(MqttTransport(broker.host, broker.port, "display-" + name),
                                  name, keep_segments=True).start()
                    for name in ("alice", "bob", "mallory")}
        alice, bob, mallory = displays["alice"], displays["bob"], displays["mallory"]
        cam = GuestCamera("armhf", tmp_path / "cam", CAMERA, secret, broker.host, broker.port)
        try:
            cloud.provision(CAMERA, secret)
            cam.start()
            online = cloud.wait_status(CAMERA, lambda s: s["state"] == "online", WAIT)
            assert online, cam.output() + cam.log()
            assert online["owner"] in (None, "")  # unclaimed out of the factory

            # claim, then share with bob: both hold epoch 1
            cloud.claim(CAMERA, "alice", wait=WAIT)
            cloud.share(CAMERA, "bob")
            assert alice.wait_for(lambda d: d.has_grant(CAMERA, 1), WAIT)
            assert bob.wait_for(lambda d: d.has_grant(CAMERA, 1), WAIT)

            cam.feed(clip, speed=2, repeat=REPEAT)
            assert bob.wait_for(lambda d: len(d.shown) >= 5, WAIT), (bob.summary(), cam.log())
            # revoke bob: the camera rotates to epoch 2 between two segments
            cmd = cloud.revoke(CAMERA, "bob", wait=WAIT)
            result = cloud.results[(CAMERA, cmd.counter)]
            assert result.accepted and result.owner == "alice" and result.epoch == 2
            rotated_at = result.seq

            assert alice.wait_for(lambda d: len(d.shown) >= total, WAIT), (alice.summary(),
                                                                          cam.log())
            # The rotation closes the segment in progress at its instant: one more segment,
            # unless the next picture to begin was an IDR picture anyway.
            time.sleep(2.0)
            assert len(alice.shown) in (total, total + 1)
            total = len(alice.shown)
            status = cloud.wait_status(
                CAMERA, lambda s: s.get("counts", {}).get("segments_delivered") == total, WAIT)
            assert status and status["owner"] == "alice" and status["epoch"] == 2
            peak_kb = cam.peak_memory_kb()
            assert mallory.wait_for(lambda d: d.counts["no_grant"] >= total, WAIT), \
                mallory.summary()
            rc = cam.stop()
        finally:
            cam.close()
            for d in displays.values():
                d.stop()
            cloud.stop()

    out = cam.output()
    assert rc == 0, out
    assert "stop-rc=0" in out and "status-rc=3" in out, out  # stopped by the init script
    log = cam.log()
    assert "Traceback" not in log, log
    assert cam.agent_pid() is None  # the init script removed its pidfile

    # the owner saw every segment, once, in order, as one chain across the rotation
    assert [t.seq for t in alice.shown] == list(range(total))
    assert {t.camera for t in alice.shown} == {CAMERA} and {t.owner for t in alice.shown} == {"alice"}
    assert [t.epoch for t in alice.shown] == [1] * rotated_at + [2] * (total - rotated_at)
    assert alice.rejected == 0
    # bob saw the segments of his share and nothing tagged after the revoke
    assert bob.shown and max(t.seq for t in bob.shown) < rotated_at
    assert bob.counts["no_grant"] >= total - rotated_at
    # mallory (never granted) was handed every segment by the leaky cloud and showed none
    assert mallory.shown == [] and mallory.counts["no_grant"] == total

    # independently of the displays: the ARM-tagged segments verify under the owner's keys only
    ring = Keyring([Binding("alice", CAMERA, e, derive_binding_key(secret, "alice", CAMERA, e))
                    for e in (1, 2)])
    verifier = StreamVerifier(ring)
    assert all(verifier.verify(s).accepted for s in alice.shown_segments)
    stranger = StreamVerifier(Keyring([Binding("mallory", CAMERA, 2,
                                               derive_binding_key(secret, "mallory", CAMERA, 2))]))
    assert not any(stranger.verify(s).accepted for s in alice.shown_segments)

    # the agent's peak memory in the image (QEMU included), next to an idle interpreter's
    bare_kb = bare_python_peak_kb("armhf")
    print(f"\nagent VmHWM in the armhf image: {peak_kb} kB; idle python3: {bare_kb} kB")
    assert bare_kb < peak_kb < bare_kb + 64 * 1024  # bounded: tens of MB over the interpreter
