"""Every command and pairing field at its bounds, against the real agent process (issue 20, item 3).

The camera is the real agent (``python3 -S``, no ``hmac``, no ``segbind`` library, the camera
image's packages only) on a real Mosquitto; the owner's side writes commands with any number in
any field (``tests.support.agent.raw_command``: authentic, MAC'd under the pairing's key) and
reads the camera's authenticated results. Done when: the camera is pairable after any sequence
of authenticated commands and a reset, and the process never dies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from host_sim.broker import Broker
from host_sim.transport import MqttTransport
from segbind import StreamVerifier, verify_segment
from segbind.owner import Owner, explain
from segbind_core import control, topics
from segbind_core.keys import command_key
from segbind_core.tag import MAX_EPOCH, MAX_U64, decode_tag
from tests.support import ROOT
from tests.support.agent import Owner as Remote
from tests.support.agent import agent_camera, raw_command, raw_offer, ring_of, wait_until
from tests.support.tagged import body_of

pytestmark = pytest.mark.broker

CAM = "cam-1"


def now_ms() -> int:
    return int(time.time() * 1000)


class Rig:
    """A broker, the real agent process for cam-1, and the owner's side of it."""

    def __init__(self, broker: Broker, workdir: Path, **camera) -> None:
        self.broker = broker
        self.cam = agent_camera(CAM, workdir, broker.host, broker.port, **camera)
        self.remote = Remote(broker.host, broker.port, CAM, client_id="owner-%d" % id(self))
        self.segments: List[bytes] = []
        self.tap = MqttTransport(broker.host, broker.port, "tap-%d" % id(self))
        self.tap.subscribe(topics.camera_topic(CAM, topics.SEG), lambda m: self.segments.append(m.payload))
        self.tap.start()
        self.names = 0
        self.claimed = False

    def start(self, **kw) -> "Rig":
        self.cam.start(**kw)
        wait_until(lambda: self.remote.status.get("state") == "online" and self.cam.running, 30, "the agent online")
        return self

    def restart(self) -> None:
        assert self.cam.stop() == 0, self.cam.log()[-2000:]
        self.remote.status = {}
        self.start()

    def owner(self, prefix: str = "o") -> Owner:
        self.names += 1
        return Owner.new("%s%d" % (prefix, self.names), test_only=True)

    def offer(self, owner: Owner, wire: bytes, secret: bytes = b"") -> control.Result:
        """Hand ``wire`` over out of band; the camera's result, opened under the offer's key."""
        before = len(self.remote.results)
        self.cam.handover(wire)
        payload = self.remote.next_result(before)
        if owner.name and owner.cameras.get(CAM) and not secret:
            return owner.on_result(CAM, payload)
        return control.open_result(command_key(secret, owner.name, CAM), CAM, payload)

    def pair(self, owner: Owner, **kw) -> control.Result:
        return self.offer(owner, owner.pairing_offer(CAM, now_ms(), **kw))

    def command(self, key: bytes, wire: bytes) -> control.Result:
        return control.open_result(key, CAM, self.remote.ask(wire))

    def close(self) -> None:
        self.cam.kill()
        self.remote.stop()
        self.tap.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with Broker() as broker:
        r = Rig(broker, tmp_path_factory.mktemp("agent") / "cam", input_mode="file", on_eof="idle")
        r.cam.write_file(b"")
        r.start()
        yield r
        r.close()


def edges(low: int, high: int):
    return st.one_of(st.sampled_from(sorted({max(0, low - 1), low, low + 1, high - 1, high, high + 1})),
                     st.integers(0, MAX_U64))


COMMAND = st.tuples(st.sampled_from([control.ROTATE, control.ROTATE, control.ROTATE, control.RELEASE]),
                    st.sampled_from(["next", "same", "max", "over", "any"]), edges(1, MAX_EPOCH),
                    edges(60, 86400), edges(0, control.MAX_TIME_MS), st.sampled_from([0, 1, 7, 8]))
OFFER = st.tuples(st.sampled_from([1, "soon", control.MAX_TIME_MS, control.MAX_TIME_MS + 1, MAX_U64]),
                  edges(60, 86400))


def expected(op: int, counter: int, epoch: int, period_s: int, issued_ms: int, shares: int,
             camera: Dict[str, int]) -> str:
    """What the camera answers an authentic command (FORMAT.md 8; docs/AGENT.md's order)."""
    if op == control.ROTATE and shares > 7:
        return control.TOO_MANY_SHARES
    if (counter > control.MAX_COUNTER or not 1 <= epoch <= MAX_EPOCH or issued_ms > control.MAX_TIME_MS
            or (op == control.ROTATE and not 60 <= period_s <= 86400)):
        return control.OUT_OF_RANGE
    if counter <= camera["counter"]:
        return control.REPLAY
    if op == control.ROTATE and epoch <= camera["hwm"]:
        return control.STALE_EPOCH
    return control.OK


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(OFFER, st.lists(COMMAND, min_size=1, max_size=6), st.booleans())
def test_every_field_at_its_bounds_and_a_reset_always_pairs(rig: Rig, offer, sequence, reset_first: bool) -> None:
    if reset_first:
        rig.cam.press_reset()
        rig.claimed = False
    # a pairing offer with its numbers at their bounds (the camera may be claimed: then that says so)
    owner = rig.owner()
    expires, period_s = offer
    expires = now_ms() + 600_000 if expires == "soon" else expires
    secret = os.urandom(32)
    result = rig.offer(owner, raw_offer(owner.name, CAM, secret, expires, period_s), secret)
    if not (expires <= control.MAX_TIME_MS and 60 <= period_s <= 86400):
        assert result.status == control.OUT_OF_RANGE, explain(result)
    elif rig.claimed:
        assert result.status == control.ALREADY_CLAIMED, explain(result)
    else:
        assert result.status == (control.EXPIRED if expires == 1 else control.OK), explain(result)
    if result.status != control.OK:    # the reset button; then the owner's own offer
        rig.cam.press_reset()
        owner = rig.owner()
        result = rig.pair(owner)
        assert (result.status, result.epoch) == (control.OK, 1), explain(result)
        key = command_key(owner.cameras[CAM].pairing, owner.name, CAM)
    else:
        assert (result.epoch, period_s) == (1, period_s)
        key = command_key(secret, owner.name, CAM)
    camera: Dict[str, Any] = {"counter": 0, "hwm": 1}
    for op, which, epoch, period_s, issued_ms, shares in sequence:
        counter = {"next": camera["counter"] + 1, "same": camera["counter"], "max": control.MAX_COUNTER,
                   "over": control.MAX_COUNTER + 1, "any": epoch}[which]
        wire = raw_command(key, op, CAM, owner.name, counter, epoch, period_s=period_s, issued_ms=issued_ms,
                           shares=["s%d" % i for i in range(shares)] if op == control.ROTATE else ())
        want = expected(op, counter, epoch, period_s, issued_ms, shares, camera)
        if wire == camera.get("last_wire"):  # a redelivery of the last command it took: the same answer
            want = control.ALREADY_APPLIED if camera["last_status"] == control.OK else camera["last_status"]
        got = rig.command(key, wire)
        assert got.status == want, (explain(got), op, counter, epoch, period_s, issued_ms, shares, camera)
        assert "\n" not in got.detail and len(explain(got)) < 300
        if want in (control.OK, control.STALE_EPOCH):
            camera["counter"] = counter
            camera["last_wire"], camera["last_status"] = wire, want
        if want == control.OK and op == control.ROTATE:
            camera["hwm"] = epoch
            assert got.epoch == epoch
        if want == control.OK and op == control.RELEASE:
            break    # unclaimed: commands find no key now
        assert rig.cam.running
    # done when: the camera is pairable after any sequence of authenticated commands and a reset
    rig.cam.press_reset()
    buyer = rig.owner("buyer")
    sold = rig.pair(buyer)
    assert (sold.status, sold.epoch) == (control.OK, 1), explain(sold)
    rig.claimed = True
    assert rig.cam.running and "Traceback" not in rig.cam.log()


def test_the_agent_restarts_after_all_that(rig: Rig) -> None:
    """Whatever the examples above left in its state, the agent starts again and takes a pairing."""
    rig.restart()
    rig.cam.press_reset()
    assert rig.pair(rig.owner("after")).status == control.OK
    assert "failed" not in rig.cam.log() and "Traceback" not in rig.cam.log()


@pytest.fixture()
def fifo_rig(tmp_path):
    with Broker() as broker:
        r = Rig(broker, tmp_path / "cam")
        yield r
        r.close()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return clips.encode_pyav(frames=25, gop=5)  # five segments


def feed(rig: Rig, clip: bytes, count: int) -> List[bytes]:
    before = len(rig.segments)
    rig.cam.feed(clip, speed=8).join(30)
    wait_until(lambda: len(rig.segments) >= before + count, 30, "%d segments" % count)
    return rig.segments[before:]


def agent_cli(rig: Rig, *args: str) -> str:
    from host_sim.camera import FIRMWARE
    env = {"PYTHONPATH": str(FIRMWARE), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "segbind_agent", "--config", str(rig.cam.config_path), *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_sellers_scenario_on_the_real_agent(fifo_rig: Rig, clip: bytes) -> None:
    """The issue's review, as a seller would try it: a rotate to the top epoch, a release, and the
    buyer's pairing then works, at every start after it; the buyer's video and stills verify."""
    rig = fifo_rig.start()
    seller = rig.owner("seller")
    assert rig.pair(seller).status == control.OK
    key = command_key(seller.cameras[CAM].pairing, seller.name, CAM)
    top = rig.command(key, raw_command(key, control.ROTATE, CAM, seller.name, 1, MAX_EPOCH))
    assert (top.status, top.epoch) == (control.OK, MAX_EPOCH)
    assert rig.command(key, raw_command(key, control.RELEASE, CAM, seller.name, 2, MAX_EPOCH)).status == control.OK
    rig.restart()
    buyer = rig.owner("buyer")
    sold = rig.pair(buyer)
    assert (sold.status, sold.epoch) == (control.OK, 1), explain(sold)
    rig.restart()                             # and it starts again, claimed by the buyer
    assert rig.remote.status["owner"] == buyer.name and rig.remote.status["epoch"] == 1
    segments = feed(rig, clip, 5)
    ring = ring_of(buyer)
    assert [str(v.reason) for v in map(StreamVerifier(ring).verify, segments)] == ["ok"] * 5
    # a camera event, handed over locally like the button: a still of the last random access point
    assert "event motion handed to camera" in agent_cli(rig, "event", "motion")
    wait_until(lambda: rig.remote.stills, 20, "a still")
    still = verify_segment(rig.remote.stills[0], ring)
    assert still.still and (still.owner, still.epoch) == (buyer.name, 1)
    assert (still.stream_id, still.seq) == (decode_tag(body_of(segments[-1]))[0].stream_id, 4)
    assert rig.cam.stop() == 0
    log = rig.cam.log()
    assert "Traceback" not in log and seller.cameras[CAM].pairing.hex() not in log
    assert buyer.cameras[CAM].pairing.hex() not in log


def test_a_spent_offer_stays_spent_across_a_wiped_state(fifo_rig: Rig) -> None:
    rig = fifo_rig.start()
    alice = rig.owner("alice")
    offer = alice.pairing_offer(CAM, now_ms())
    secret = alice.cameras[CAM].pairing
    assert rig.offer(alice, offer).status == control.OK
    assert rig.cam.stop() == 0
    counter_file = Path(str(rig.cam.state_dir) + ".counter")
    assert counter_file.read_text().splitlines()[1].startswith("spent ")
    shutil.rmtree(rig.cam.state_dir)                         # the state is wiped
    rig.cam.start()
    assert rig.cam.wait(30) == 2 and "missing" in rig.cam.log()   # refused: the counter says it existed
    rig.cam.press_reset()                                    # the button, held at power-on
    rig.start()
    assert rig.remote.status["claimed"] is False
    again = rig.offer(alice, offer, secret)                  # the photographed offer, still unexpired
    assert again.status == control.REPLAY, explain(again)
    assert rig.remote.status.get("claimed") is False
    bob = rig.owner("bob")
    assert rig.pair(bob).status == control.OK


def test_counter_blocks_never_repeat_across_restart_crash_and_restore(fifo_rig: Rig, clip: bytes) -> None:
    """(key id, stream id, seq) never repeats: a restart, a crash at every step of choosing a new
    stream id, a kill -9 mid-stream, a state restored from a backup (refused) and the latest copy
    of it (runs, on a later stream)."""
    rig = fifo_rig.start()
    alice = rig.owner("alice")
    assert rig.pair(alice).status == control.OK
    backup = (rig.cam.state_dir / "state.json").read_bytes()
    feed(rig, clip, 5)
    rig.restart()                                            # a restart
    feed(rig, clip, 5)
    assert rig.cam.stop() == 0
    for point in ("start:state_tmp", "start:state_renamed", "start:persisted"):
        rig.cam.start(crash_at=point)                        # a crash right after choosing a stream id
        assert rig.cam.wait(30) == -9, rig.cam.log()[-2000:]
    rig.start()
    feed(rig, clip, 5)
    rig.cam.kill()                                           # a power cut, mid-stream
    latest = (rig.cam.state_dir / "state.json").read_bytes()
    (rig.cam.state_dir / "state.json").write_bytes(backup)   # restored from the backup: refused
    rig.cam.start()
    assert rig.cam.wait(30) == 2 and "older copy" in rig.cam.log()
    (rig.cam.state_dir / "state.json").write_bytes(latest)   # the latest copy: runs, on a later stream
    rig.start()
    feed(rig, clip, 5)
    assert rig.cam.stop() == 0
    distinct = list(dict.fromkeys(rig.segments))             # QoS 1 may deliver a segment twice
    seen: List[Tuple[bytes, int, int]] = []
    for payload in distinct:
        tag = decode_tag(body_of(payload))[0]
        seen.append((bytes(tag.key_id), tag.stream_id, tag.seq))
    assert len(seen) == len(set(seen)) >= 20
    streams = [s for _k, s, _q in seen]
    assert streams == sorted(streams) and len(set(streams)) == 4
    ring = ring_of(alice)
    assert all(verify_segment(p, ring).owner == alice.name for p in distinct)
    assert json.loads((rig.cam.state_dir / "state.json").read_text())["stream_id"] == streams[-1]


def test_an_offer_is_spent_before_the_state_that_takes_it(fifo_rig: Rig) -> None:
    """A power cut between spending the offer and writing the pairing: the camera comes back
    unclaimed, and that offer is spent (fail closed: the owner shows a new one)."""
    rig = fifo_rig
    rig.cam.start(crash_at="pair:state_tmp")
    wait_until(lambda: rig.remote.status.get("state") == "online", 30, "the agent online")
    alice = rig.owner("alice")
    offer = alice.pairing_offer(CAM, now_ms())
    rig.cam.handover(offer)
    assert rig.cam.wait(30) == -9
    rig.remote.status = {}
    rig.start()
    assert rig.remote.status["claimed"] is False
    assert rig.offer(alice, offer, alice.cameras[CAM].pairing).status == control.REPLAY
    assert rig.pair(rig.owner("alice-again")).status == control.OK
