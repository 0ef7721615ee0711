"""The camera agent without a broker: bindings, commands, stream ids, the spool, durability."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from host_sim import clips
from host_sim.broker import free_port
from host_sim.camera import FIRMWARE
from segbind import Epoch, Keyring, StreamVerifier, verify_segment
from segbind.errors import InvalidSegment
from segbind.owner import Owner
from segbind_agent import daemon as agent_mod
from segbind_agent.config import Config, ConfigError
from segbind_agent.core import BindingState, SpoolQueue
from segbind_agent.spool import SpoolFiles
from segbind_agent.state import StateStore
from segbind_core import control, topics
from segbind_core.keys import command_key
from segbind_core.segment import Segmenter
from tests.support.agent import agent_camera, camera_vendor_dir, raw_command, ring_of

CAM = "cam-1"


class FakeMsg:
    def __init__(self, payload: bytes) -> None:
        self.topic = topics.camera_topic(CAM, topics.CTL)
        self.payload = payload
        self.user_properties = {}
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class FakeLink:
    """The agent's link interface, in memory; acknowledges at once while connected."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.published: List[tuple] = []
        self._token = 0
        self._ack = None
        self._conn = None
        self.subs = {}

    def on_ack(self, cb) -> None:
        self._ack = cb

    def on_connection(self, cb) -> None:
        self._conn = cb

    def subscribe(self, topic, cb, qos=1) -> None:
        self.subs[topic] = cb

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def publish(self, topic, payload, qos=1, retain=False, user_properties=None):
        self._token += 1
        self.published.append((self._token, topic, payload, retain, user_properties))
        if self.connected:
            self._ack(self._token, True)
        return self._token

    def set_connected(self, up: bool) -> None:
        self.connected = up
        self._conn(up)

    def connected_now(self) -> bool:
        return self.connected

    def leaf(self, leaf: str) -> list:
        topic = topics.camera_topic(CAM, leaf)
        return [p for _t, tp, p, _r, _u in self.published if tp == topic]


@pytest.fixture()
def secret() -> bytes:
    return os.urandom(32)


def make_agent(tmp_path: Path, secret: bytes, link=None, clock=time.time, state_stream_id=None,
               **overrides) -> "agent_mod.Agent":
    """The daemon on files in ``tmp_path``; ``secret`` is its device secret (its identity only)."""
    device = tmp_path / "device.json"
    if not device.exists():
        fd = os.open(str(device), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, json.dumps({"segbind": "device", "version": 1, "device_id": CAM,
                                 "secret": secret.hex()}).encode())
        os.close(fd)
    cfg = {"camera_id": CAM, "device_secret_file": str(device),
           "state_dir": str(tmp_path / "state"), "input": str(tmp_path / "in.h264")}
    cfg.update(overrides)
    if state_stream_id is not None:
        store = StateStore(cfg["state_dir"], CAM)
        state = store.load() or BindingState(CAM)
        state.stream_id = state_stream_id
        store.save(state)
    agent = agent_mod.Agent(Config(cfg, str(tmp_path)), link=link or FakeLink(), clock=clock)
    agent.begin()
    return agent


def segments_of(clip: bytes) -> List[bytes]:
    seg = Segmenter(max_duration_s=4.0)
    out = []
    for i in range(0, len(clip), 4096):
        out += seg.feed(clip[i:i + 4096])
    return out + seg.flush()


def on_segment(agent, segment: bytes) -> None:
    """An encoder that delivers one whole segment, then ends it: it closes at once."""
    agent.feed(segment)
    agent.end_of_input()


def send(agent, payload: bytes) -> FakeMsg:
    msg = FakeMsg(payload)
    agent.on_command_message(msg)
    agent.drain_events()
    return msg


def pair(agent, owner: Owner, camera: str = CAM) -> control.Result:
    """The owner's pairing offer, handed to the camera out of band (its inbox)."""
    agent.inbox.put_offer(owner.pairing_offer(camera, agent.now_ms()))
    agent.local_handover()
    return owner.on_result(camera, agent.link.leaf(topics.CTL_RESULT)[-1])


def result_of(agent, owner: Owner) -> control.Result:
    return owner.on_result(CAM, agent.link.leaf(topics.CTL_RESULT)[-1])


def command_of(owner: Owner, op: int, counter: int, epoch: int = 1, shares=(), as_owner: str = "",
               camera: str = CAM, period_s: int = 1800) -> bytes:
    """A command with chosen fields under ``owner``'s command key (replays, reused counters, any
    number out of its bounds...)."""
    key = command_key(owner.cameras[CAM].pairing, owner.name, camera)
    return raw_command(key, op, camera, as_owner or owner.name, counter, epoch, shares=list(shares),
                       period_s=period_s if op == control.ROTATE else 0)


def owners_ring(*owners: Owner) -> Keyring:
    """Each owner's slot of every epoch of its pairing of cam-1, as its displays are granted."""
    return Keyring([b for o in owners for b in ring_of(o).bindings()])


@pytest.fixture(scope="module")
def short_clip() -> bytes:
    return clips.encode_pyav(frames=50, gop=5)  # ten segments of 0.2 s


def test_bindings_change_only_between_segments(tmp_path: Path, secret: bytes, short_clip: bytes) -> None:
    agent = make_agent(tmp_path, secret)
    segs = segments_of(short_clip)
    assert len(segs) == 10
    alice, bob = Owner.new("alice", test_only=True), Owner.new("bob", test_only=True)
    effective = {}
    for i, seg in enumerate(segs):
        if i == 0:
            effective[i] = pair(agent, alice)
        elif i == 3:
            assert send(agent, alice.rotate(CAM, [], 0)).acked
            effective[i] = result_of(agent, alice)
        elif i == 6:  # a resale: alice releases it, bob pairs it
            alice_ring = owners_ring(alice)  # what alice's displays hold, before she lets go
            send(agent, alice.release(CAM, 0))
            assert result_of(agent, alice).status == control.OK
            effective[i] = pair(agent, bob)
        elif i == 8:
            agent.inbox.put_reset()  # the button
            agent.local_handover()
        on_segment(agent, seg)
    assert {i: (r.status, r.epoch, r.seq) for i, r in effective.items()} == {
        0: ("ok", 1, 0), 3: ("ok", 2, 3), 6: ("ok", 1, 0)}  # epochs count from 1 in each pairing
    published = agent.link.leaf(topics.SEG)
    assert len(published) == 8  # nothing after the reset
    rings = {"alice": alice_ring, "bob": owners_ring(bob)}
    owners = []
    for payload in published:  # each segment verifies for exactly one owner
        fits = []
        for who, ring in rings.items():
            try:
                info = verify_segment(payload, ring)
                fits.append((info.owner, info.epoch))
            except InvalidSegment:
                pass
        assert len(fits) == 1
        owners.append(fits[0])
    assert owners == [("alice", 1)] * 3 + [("alice", 2)] * 3 + [("bob", 1)] * 2
    # one chained stream across the rotation; bob's pairing began a new stream
    verifier = StreamVerifier(Keyring(alice_ring.bindings() + owners_ring(bob).bindings()))
    assert [str(verifier.verify(p).reason) for p in published] == ["ok"] * 8
    state = agent.store.load()
    assert (state.owner, state.epoch, state.epoch_hwm, state.pairing) == (None, 0, 0, None)
    assert agent.counts["segments_unclaimed"] == 2
    assert agent.counter.read() == state.generation  # the monotonic counter followed every write


def test_refused_commands_are_reported_and_change_nothing(tmp_path: Path, secret: bytes) -> None:
    agent = make_agent(tmp_path, secret)
    alice = Owner.new("alice", test_only=True)
    assert pair(agent, alice).status == control.OK
    good = command_of(alice, control.ROTATE, 5, 2)
    assert send(agent, good).acked and result_of(agent, alice).status == control.OK
    before = agent.store.load().to_json()
    mallory = Owner.new("mallory", test_only=True)
    mallory.pairing_offer(CAM, 0)                      # mallory's own pairing secret for cam-1
    altered = bytearray(command_of(alice, control.ROTATE, 6, 3, ["mallory"]))
    altered[altered.index(b"mallory")] ^= 0x20         # "mallory" -> "Mallory": the MAC no longer fits
    cases = [
        (command_of(mallory, control.RELEASE, 6), control.BAD_MAC),                     # forged
        (bytes(altered), control.BAD_MAC),                                               # altered
        (good, control.ALREADY_APPLIED),                                                 # redelivered
        (command_of(alice, control.ROTATE, 4, 7), control.REPLAY),                      # replayed
        (command_of(alice, control.ROTATE, 5, 7), control.REPLAY),                      # counter reused
        (command_of(alice, control.RELEASE, 9, camera="cam-2"), control.WRONG_CAMERA),
        (b"\x03C\x02garbage", control.MALFORMED),
        (b"\x02C\x02" + bytes(40), control.UNKNOWN_VERSION),                              # format 2
        (command_of(alice, control.ROTATE, 1 << 53, 3), control.OUT_OF_RANGE),           # authentic, out of
        (command_of(alice, control.ROTATE, 6, 1 << 31), control.OUT_OF_RANGE),           # its bounds: nothing
        (command_of(alice, control.ROTATE, 6, 3, period_s=59), control.OUT_OF_RANGE),    # changes, not even
        (command_of(alice, control.RELEASE, 6, 0), control.OUT_OF_RANGE),                # the counter
    ]
    for payload, status in cases:
        msg = send(agent, payload)
        assert msg.acked
        assert control.decode_result(agent.link.leaf(topics.CTL_RESULT)[-1])[0].status == status, payload
    assert agent.store.load().to_json() == dict(before, generation=agent.store.load().generation)
    events = [json.loads(e) for e in agent.link.leaf(topics.EVENT)]
    refused = [e["status"] for e in events if e["event"] == "command_refused"]
    assert refused == [control.BAD_MAC, control.BAD_MAC, control.REPLAY, control.REPLAY,
                       control.WRONG_CAMERA, control.MALFORMED, control.UNKNOWN_VERSION] + [control.OUT_OF_RANGE] * 4
    assert agent.core.refused == {"bad_mac": 2, "replay": 2, "wrong_camera": 1, "malformed": 1,
                                  "unknown_version": 1, "out_of_range": 4}
    # authentic but not applicable: refused, and the counter is used up
    send(agent, command_of(alice, control.ROTATE, 10, 1))
    assert result_of(agent, alice).status == control.STALE_EPOCH
    send(agent, command_of(alice, control.ROTATE, 11, 5, as_owner="bob"))
    assert result_of(agent, alice).status == control.OWNER_MISMATCH
    # eight shares cannot even be encoded by the library: written out here, MAC and all
    send(agent, command_of(alice, control.ROTATE, 12, 5, ["s%d" % i for i in range(8)]))
    assert control.decode_result(agent.link.leaf(topics.CTL_RESULT)[-1])[0].status == control.TOO_MANY_SHARES
    state = agent.store.load()
    assert (state.owner, state.epoch, state.counter) == ("alice", 2, 11)
    status = json.loads(agent.link.leaf(topics.STATUS)[-1])
    assert status["commands_refused"]["bad_mac"] == 2 and status["counter"] == 11


def test_reset_drops_the_spool_and_no_old_claim_or_epoch_comes_back(tmp_path: Path, secret: bytes,
                                                                   short_clip) -> None:
    link = FakeLink(connected=False)
    agent = make_agent(tmp_path, secret, link=link)
    alice = Owner.new("alice", test_only=True)
    offer = alice.pairing_offer(CAM, agent.now_ms())
    agent.inbox.put_offer(offer)
    agent.local_handover()
    alice.on_result(CAM, link.leaf(topics.CTL_RESULT)[-1])
    send(agent, alice.rotate(CAM, [], 0))                    # epoch 2
    for seg in segments_of(short_clip)[:3]:
        on_segment(agent, seg)
    assert len(agent.core.spool) == 3
    agent.inbox.put_reset()
    agent.local_handover()
    assert len(agent.core.spool) == 0  # nothing of the old owner stays on the camera
    for seg in segments_of(short_clip)[3:5]:
        on_segment(agent, seg)
    assert len(agent.core.spool) == 0 and agent.counts["segments_unclaimed"] == 2
    # a recorded old command finds no key; the old offer (photographed) cannot claim it again
    assert send(agent, alice.rotate(CAM, [], 0)).acked and not agent.state.claimed
    agent.inbox.put_offer(offer)
    agent.local_handover()
    assert not agent.state.claimed and agent.core.refused.get(control.REPLAY) == 1
    carol = Owner.new("carol", test_only=True)
    result = pair(agent, carol)
    assert result.status == control.OK and result.epoch == 1 and result.seq == 0   # a fresh pairing, from 1
    assert result.stream_id == agent.store.load().stream_id   # a new stream for the new owner


def test_restart_begins_a_stream_that_orders_after(tmp_path: Path, secret: bytes, monkeypatch) -> None:
    first = make_agent(tmp_path, secret)
    sid = first.state.stream_id
    assert abs(sid - time.time() * 1000) < 5000
    second = make_agent(tmp_path, secret)
    assert second.state.stream_id > sid
    # a camera clock that went backwards still gives a later stream
    store = StateStore(str(tmp_path / "state"), CAM)
    state = store.load()
    state.stream_id = int(time.time() * 1000) + 10 ** 9
    state.generation += 1
    store.save(state)
    third = make_agent(tmp_path, secret)
    assert third.state.stream_id == state.stream_id + 1
    assert store.load().stream_id == state.stream_id + 1


def test_a_lost_or_rolled_back_state_is_refused_and_a_reset_recovers(tmp_path: Path, secret: bytes) -> None:
    from segbind_agent.core import StateError

    agent = make_agent(tmp_path, secret)
    alice = Owner.new("alice", test_only=True)
    store = StateStore(str(tmp_path / "state"), CAM)
    backup = (tmp_path / "state" / "state.json").read_bytes()     # before the claim
    pair(agent, alice)
    assert agent.counter.read() == store.load().generation
    (tmp_path / "state" / "state.json").write_bytes(backup)        # restored from the backup
    with pytest.raises(StateError, match="older copy"):
        make_agent(tmp_path, secret)
    (tmp_path / "state" / "state.json").unlink()                   # or lost
    with pytest.raises(StateError, match="missing"):
        make_agent(tmp_path, secret)
    agent.inbox.put_reset()                                        # the button, held at power-on
    again = make_agent(tmp_path, secret)
    assert not again.state.claimed and again.state.generation == again.counter.read()
    assert pair(again, Owner.new("bob", test_only=True)).status == control.OK
    # the counter file lives apart from the state directory: wiping that does not reset it
    assert not Path(again.cfg.counter_file).is_relative_to(tmp_path / "state")


def test_unclaimed_camera_publishes_no_video(tmp_path: Path, secret: bytes, short_clip) -> None:
    agent = make_agent(tmp_path, secret)
    for seg in segments_of(short_clip):
        on_segment(agent, seg)
    assert agent.link.leaf(topics.SEG) == [] and len(agent.core.spool) == 0
    assert agent.counts["segments_unclaimed"] == 10


class Spool:
    """The spool's policy (core.SpoolQueue) and its files (spool.SpoolFiles), as the daemon
    combines them."""

    def __init__(self, directory: str, max_bytes: int, max_segments: int) -> None:
        self.files = SpoolFiles(directory)
        self.queue = SpoolQueue(max_bytes, max_segments, self.files.load())

    def append(self, payload: bytes, stream_id: int, seq: int, epoch: int) -> list:
        entry, evicted, gaps = self.queue.add(len(payload), stream_id, seq, epoch)
        for e in evicted:
            self.files.delete(e.index)
        if entry is not None:
            self.files.write(entry, payload)
        return gaps


def test_spool_keeps_order_and_reports_gaps(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), max_bytes=10 ** 6, max_segments=3)
    gaps = []
    for seq in range(6):
        gaps += spool.append(b"\x00\x00\x00\x01\x65seg%d" % seq, 77, seq, 1)
    assert [g.count for g in gaps] == [1, 1, 1] and spool.queue.dropped_total == 3
    assert [e.seq for e in spool.queue.to_send(10)] == [3, 4, 5]
    # in-flight segments are never the ones dropped
    spool.queue.inflight[spool.queue.to_send(1)[0].index] = True
    gaps = spool.append(b"x" * 10, 77, 6, 1)
    assert gaps[0].first == (77, 4)
    # survives a restart; torn or foreign files are ignored
    (tmp_path / "spool" / ("%020d.seg" % 999)).write_bytes(b"SBS1\x00\x00\x00\x09short")
    (tmp_path / "spool" / "00000000000000001000.seg.tmp").write_bytes(b"partial")
    again = Spool(str(tmp_path / "spool"), max_bytes=10 ** 6, max_segments=3)
    assert [e.seq for e in again.queue.to_send(10)] == [3, 5, 6]
    assert again.files.corrupt_total == 1
    assert again.files.read(again.queue.to_send(1)[0]) == b"\x00\x00\x00\x01\x65seg3"
    # bounded in bytes too
    small = Spool(str(tmp_path / "small"), max_bytes=100, max_segments=100)
    for seq in range(10):
        small.append(b"y" * 30, 1, seq, 1)
    assert small.queue.bytes <= 100 and small.queue.dropped_total == 7
    assert small.append(b"z" * 101, 1, 10, 1)[0].why.startswith("segment larger")


def test_agent_spools_while_offline_then_delivers_in_order(tmp_path: Path, secret: bytes,
                                                           short_clip) -> None:
    link = FakeLink(connected=False)
    agent = make_agent(tmp_path, secret, link=link, spool={"max_segments": 6},
                       publish_window=3)
    alice = Owner.new("alice", test_only=True)
    agent.inbox.put_offer(alice.pairing_offer(CAM, agent.now_ms()))
    agent.local_handover()
    for seg in segments_of(short_clip):
        on_segment(agent, seg)
    assert link.leaf(topics.SEG) == []
    assert len(agent.core.spool) == 6 and agent.core.spool.dropped_total == 4
    gaps = [json.loads(e) for e in link.leaf(topics.EVENT) if b"spool_gap" in e]
    assert sum(g["count"] for g in gaps) == 4 and gaps[0]["first"]["seq"] == 0
    link.set_connected(True)
    for _ in range(10):
        agent.drain_events()
    alice.on_result(CAM, link.leaf(topics.CTL_RESULT)[-1])
    delivered = link.leaf(topics.SEG)
    verifier = StreamVerifier(owners_ring(alice))
    verdicts = [verifier.verify(p) for p in delivered]
    assert [v.tag.seq for v in verdicts] == [4, 5, 6, 7, 8, 9]
    assert all(v.accepted for v in verdicts)
    assert len(agent.core.spool) == 0 and agent.counts["segments_delivered"] == 6


ATOMIC_WRITER = r"""
import sys
from segbind_agent.state import atomic_write
path = sys.argv[1]
i = 0
print("ready", flush=True)
while True:
    i += 1
    body = (b'{"version": %d, "pad": "' % i) + (b"x" * (i % 5000)) + b'"}'
    atomic_write(path, body)
"""


def test_atomic_write_survives_kill_9_at_any_instant(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    script = tmp_path / "writer.py"
    script.write_text(ATOMIC_WRITER)
    rng = random.Random(1)
    versions = []
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # imported, writing
        time.sleep(rng.uniform(0.02, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():
            data = json.loads(path.read_bytes())  # always whole: never torn, never empty
            versions.append(data["version"])
    assert versions and all(v >= 1 for v in versions)


def test_agent_runs_on_stdlib_paho_and_core_only(tmp_path: Path) -> None:
    """No site-packages, no ``segbind`` library, no ``hmac`` module: what a camera has."""
    code = r"""
import sys
sys.modules["hmac"] = None
import segbind_agent.__main__, segbind_agent.daemon, segbind_agent.link
from segbind_core import crypto, control
from segbind_core.keys import command_key
assert crypto._openssl_hmac_digest is None
key = command_key(bytes(32), "a", "cam-1")
control.open_command(key, "cam-1", control.Command(2, "cam-1", "a", 1, 1, period_s=60).encode(key))
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("segbind", "numpy", "av", "hypothesis"))
print("FOREIGN", bad)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(FIRMWARE), str(camera_vendor_dir(tmp_path))])
    proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "FOREIGN []" in proc.stdout


def test_config_and_secret_errors(tmp_path: Path, secret: bytes) -> None:
    with pytest.raises(ConfigError):
        Config({"camera_id": CAM}, str(tmp_path))
    with pytest.raises(ConfigError):
        Config({"camera_id": CAM, "device_secret_file": "d", "state_dir": "s", "input": "-",
                "bogus": 1}, str(tmp_path))
    make_agent(tmp_path, secret)
    device = tmp_path / "device.json"
    data = json.loads(device.read_text())
    data["device_id"] = "cam-9"
    device.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="belongs to"):
        make_agent(tmp_path, secret)
    cam = agent_camera(CAM, tmp_path / "cam", "127.0.0.1", free_port(), input_mode="file")
    cam.config_path.write_text(json.dumps(dict(cam.config, device_secret_file=str(device))))
    cam.write_file(b"")
    cam.start()
    assert cam.wait(30) == 2
    assert "error" in cam.log() and secret.hex() not in cam.log()


def test_sigterm_stops_cleanly_and_keeps_the_spool(tmp_path: Path, secret: bytes,
                                                   short_clip: bytes) -> None:
    """No broker at all: segments wait in the spool; SIGTERM tags the last one and exits 0."""
    device = tmp_path / "device.json"
    device.write_text(json.dumps({"segbind": "device", "version": 1, "device_id": CAM,
                                  "secret": secret.hex()}))
    os.chmod(device, 0o600)
    cam = agent_camera(CAM, tmp_path / "cam", "127.0.0.1", free_port(), input_mode="file", on_eof="idle")
    cam.config_path.write_text(json.dumps(dict(cam.config, device_secret_file=str(device))))
    alice = Owner.new("alice", test_only=True)
    cam.handover(alice.pairing_offer(CAM, int(time.time() * 1000)))   # paired before its first start
    cam.write_file(short_clip)
    cam.start()
    deadline = time.time() + 30
    while cam.spooled() < 10 and time.time() < deadline:
        time.sleep(0.05)
    assert cam.spooled() == 10
    assert cam.stop() == 0
    log = cam.log()
    assert "stopped: 10 segment(s) tagged, 0 delivered, 10 left in the spool" in log
    pairing = alice.cameras[CAM].pairing
    epoch = Epoch.of_pairing(pairing, "alice", CAM, 1, [])
    keys = [secret, pairing, epoch.root, command_key(pairing, "alice", CAM)]
    for b in ring_of(alice).bindings():
        keys += [b.key, b.content_key]
    for key in keys:
        assert key.hex() not in log and key.hex().upper() not in log
    # restarted, it starts a later stream and still holds the first stream's segments
    first = cam.state()["stream_id"]
    cam.start()
    time.sleep(1.0)
    assert cam.stop() == 0
    assert cam.state()["stream_id"] > first
    entries = SpoolFiles(str(cam.state_dir / "spool")).load()
    assert [e.stream_id for e in entries[:10]] == [first] * 10
    assert [e.seq for e in entries[:10]] == list(range(10))


def test_agent_cloud_and_displays_in_process(tmp_path: Path, secret: bytes, short_clip) -> None:
    """The same agent, cloud, apps and display code over the in-process bus: no broker at all."""
    from host_sim.app import OwnerApp
    from host_sim.cloud import Cloud
    from host_sim.display import Display
    from host_sim.transport import InProcessBus
    from segbind.grants import Display as DisplayIdentity
    from segbind.owner import exchange_contacts

    bus = InProcessBus()
    Cloud(bus.transport("cloud")).start()
    apps, displays = {}, {}
    for name in ("alice", "bob", "carol"):
        apps[name] = OwnerApp(bus.transport("app-" + name), Owner.new(name, test_only=True)).start()
        identity = DisplayIdentity.new(name + "-tv", test_only=True)
        apps[name].enroll(identity)
        displays[name] = Display(bus.transport(name + "-tv"), name, identity, window=None).start()
    exchange_contacts(apps["alice"].owner, apps["bob"].owner)
    agent = make_agent(tmp_path, secret, link=bus.transport(CAM))
    agent.connect()
    segs = segments_of(short_clip)

    def step(*segments) -> None:
        agent.local_handover()
        agent.drain_events()  # the agent's loop: a command takes effect at this boundary
        for seg in segments:
            on_segment(agent, seg)
            agent.drain_events()

    apps["alice"].pair(CAM, agent.inbox.put_offer)
    step(*segs[:3])
    apps["alice"].share(CAM, "bob")
    step(*segs[3:5])
    displays["bob"].transport.set_online(False)  # bob's display drops off the network for a while
    step(*segs[5:6])
    displays["bob"].transport.set_online(True)
    apps["alice"].revoke(CAM, "bob")
    step(*segs[6:8])
    apps["alice"].release(CAM)
    step()
    apps["carol"].pair(CAM, agent.inbox.put_offer)
    step(*segs[8:])
    shown = {name: [(t.owner, t.epoch, t.seq) for (_o, camera), tags in sorted(d.shown.items()) if camera == CAM
                    for t in tags] for name, d in displays.items()}
    assert shown["alice"] == [("alice", 1, 0), ("alice", 1, 1), ("alice", 1, 2), ("alice", 2, 3),
                              ("alice", 2, 4), ("alice", 2, 5), ("alice", 3, 6), ("alice", 3, 7)]
    assert shown["bob"] == [("alice", 2, 3), ("alice", 2, 4), ("alice", 2, 5)]
    assert shown["carol"] == [("carol", 1, 0), ("carol", 1, 1)]
    assert all(d.rejected == 0 for d in displays.values())
    assert not agent.core.spool.to_send(10)


def test_reset_cut_short_still_deletes_the_old_owners_spool(tmp_path: Path, secret: bytes,
                                                            short_clip) -> None:
    agent = make_agent(tmp_path, secret, link=FakeLink(connected=False))
    pair(agent, Owner.new("alice", test_only=True))
    for seg in segments_of(short_clip)[:3]:
        on_segment(agent, seg)
    # the reset's state write happened, then the power went before the spool was purged
    store = StateStore(str(tmp_path / "state"), CAM)
    state = store.load()
    state.owner, state.pairing, state.epoch, state.period_s, state.epoch_hwm, state.counter = None, None, 0, 0, 0, 0
    state.shares, state.last_command, state.last_result = [], "", ""
    state.generation += 1
    store.save(state)
    again = make_agent(tmp_path, secret, link=FakeLink(connected=False))
    assert len(again.core.spool) == 0 and again.core.tagger is None


def test_input_reader_reopens_fifos_never_files(tmp_path: Path) -> None:
    import threading

    from segbind_agent.source import EOF, InputReader

    def drain(reader, eofs: int) -> bytes:
        out, seen = b"", 0
        while seen < eofs:
            chunk = reader.chunks.get(timeout=10)
            if chunk is EOF:
                seen += 1
            else:
                out += chunk
        return out

    path = tmp_path / "in.h264"
    path.write_bytes(b"abc")
    reader = InputReader(str(path), reopen=True)
    reader.start()
    assert drain(reader, 1) == b"abc"
    reader.join(5)
    assert not reader.is_alive() and reader.chunks.empty()  # read once, not from the start again

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    reader = InputReader(str(fifo), reopen=True)
    reader.start()

    def encoder(data: bytes) -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    for data in (b"first run", b"second run"):  # the encoder restarts
        t = threading.Thread(target=encoder, args=(data,))
        t.start()
        assert drain(reader, 1) == data
        t.join(5)
    assert reader.is_alive() and reader.opens == 2
    reader.stop()
    for _ in range(200):  # wake a reader blocked in open(); never block here ourselves
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody is opening the FIFO right now
            pass
        reader.join(0.05)
        if not reader.is_alive():
            break
    assert not reader.is_alive()

    missing = InputReader(str(tmp_path / "nope"), reopen=False)
    missing.start()
    assert missing.chunks.get(timeout=5) is EOF and "nope" in missing.error


def test_the_daemon_and_a_fleet_camera_run_the_same_core(tmp_path: Path, secret: bytes,
                                                          short_clip: bytes) -> None:
    """The same clip, pairing offers and commands, at the same times, to the daemon (its own event
    handling, files and link) and to a fleet camera (simulated time, in-process bus): the very
    same tagged bytes come out of both, and the same command results."""
    from host_sim.fleet import BASE_MS, CameraPlan, FleetCamera, FleetConfig
    from host_sim.netem import Clock, Link, LinkProfile
    from host_sim.transport import InProcessBus

    pieces = segments_of(short_clip)  # what the encoder writes every 200 ms
    stream_id = BASE_MS + 10 ** 6
    alice, bob = Owner.new("alice", test_only=True), Owner.new("bob", test_only=True)
    offer_alice = alice.pairing_offer(CAM, BASE_MS + 10 ** 9)
    alice.on_result(CAM, control.Result(CAM, "alice", 0, control.PAIR, control.OK, 1).encode(
        command_key(alice.cameras[CAM].pairing, "alice", CAM)))
    events = {3: ("pair", offer_alice), 6: ("cmd", alice.rotate(CAM, [], 0)),
              8: ("cmd", alice.release(CAM, 0)), 9: ("pair", bob.pairing_offer(CAM, BASE_MS + 10 ** 9))}

    # The fleet camera, on the simulation's clock: a piece every 200 ms from t = 0.
    clock, bus = Clock(), InProcessBus()
    cfg = FleetConfig(cameras=1, seconds=2, segment_ms=200, spool=100)
    plan = CameraPlan(CAM, "alice", [], 0, 0.0, False, 1, "factory-" + CAM)
    camera = FleetCamera(plan, cfg, pieces, bus.transport(CAM).start(), clock, Link(LinkProfile(), 1),
                         topics.TOPIC_PREFIX, stream_id=stream_id)
    fleet_out, fleet_results = [], []
    tap = bus.transport("tap").start()
    tap.subscribe(topics.camera_topic(CAM, topics.SEG), lambda m: fleet_out.append(m.payload))
    tap.subscribe(topics.camera_topic(CAM, topics.CTL_RESULT), lambda m: fleet_results.append(m.payload))
    cloud = bus.transport("cloud").start()
    for i, (kind, payload) in events.items():  # just before piece i is written
        if kind == "pair":
            clock.at(200 * i - 1, camera.handover, payload)
        else:
            clock.at(200 * i - 1, cloud.publish, topics.camera_topic(CAM, topics.CTL), payload)
    camera.begin()
    camera.start_video(0)
    clock.run()
    # The pairing drops the piece in progress (captured unclaimed); the rotation closes the piece
    # in progress under epoch 1; the release drops the piece in progress, and so does bob's
    # pairing: his video starts at the next random access point.
    assert camera.done and camera.produced == 5

    # The daemon, given the same pieces, offers and commands at the same times.
    now = [0.0]
    agent = make_agent(tmp_path, secret, clock=lambda: BASE_MS / 1000.0 + now[0],
                       state_stream_id=stream_id - 1)
    for i, piece in enumerate(pieces):
        if i in events:
            now[0] = (200 * i - 1) / 1000.0
            kind, payload = events[i]
            if kind == "pair":
                agent.inbox.put_offer(payload)
                agent.local_handover()
            else:
                send(agent, payload)
        now[0] = 200 * i / 1000.0
        agent.feed(piece)
    agent.end_of_input()
    assert agent.link.leaf(topics.SEG) == fleet_out
    assert agent.link.leaf(topics.CTL_RESULT) == fleet_results
    alice.cameras[CAM].epochs[1] = []   # what alice's app knew before it let go
    alice.cameras[CAM].paired = True
    bob.on_result(CAM, fleet_results[-1])
    verifier = StreamVerifier(Keyring(ring_of(alice, around_ms=BASE_MS).bindings()
                                      + ring_of(bob, around_ms=BASE_MS).bindings()))
    assert [(v.reason.value, v.tag.owner, v.tag.epoch) for v in map(verifier.verify, fleet_out)] == [
        ("ok", "alice", 1)] * 3 + [("ok", "alice", 2), ("ok", "bob", 1)]


def test_after_a_lost_state_and_a_reset_the_camera_pairs_afresh(tmp_path: Path, secret: bytes) -> None:
    """Epochs count from 1 in each pairing: after a lost state and the reset button, the camera
    takes a new pairing at epoch 1, under a fresh secret, so no key of the old pairing opens it
    (and the old owner's recorded commands find nothing to act on)."""
    agent = make_agent(tmp_path, secret)
    alice = Owner.new("alice", test_only=True)
    pair(agent, alice)
    old_commands = [alice.rotate(CAM, [], 0) for _ in range(3)]
    for command in old_commands:
        send(agent, command)
    assert agent.state.epoch_hwm == 4
    old_ring = owners_ring(alice)
    (tmp_path / "state" / "state.json").unlink()                    # the state is lost
    agent.inbox.put_reset()
    again = make_agent(tmp_path, secret)
    alice.forget(CAM)
    result = pair(again, alice)
    assert (result.status, result.epoch) == (control.OK, 1)
    for command in old_commands:
        assert send(again, command).acked
    assert control.decode_result(again.link.leaf(topics.CTL_RESULT)[-1])[0].status == control.BAD_MAC
    assert again.state.epoch == 1
    for seg in segments_of(clips.encode_pyav(frames=10, gop=5)):
        on_segment(again, seg)
    published = again.link.leaf(topics.SEG)
    assert published and all(verify_segment(p, owners_ring(alice)).epoch == 1 for p in published)
    for payload in published:
        with pytest.raises(InvalidSegment):
            verify_segment(payload, old_ring)
