"""The verifying service on a real 3-node nats-server cluster, with real worker processes
(``segbind serve worker``): owners' cameras judged with their owners' keys alone, verdicts each
owner reads, recordings of the camera's own video; workers that join and leave hand partitions
over without judging anything twice; an owner's app enrolls the service, grants it through the
cloud, and revokes a released camera's epochs; a camera no owner granted, and segments the cloud
routed to another camera, are refused there. And why the cameras' MQTT reaches it through a
bridge: NATS's own MQTT listener refuses the agent's MQTT 5."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from host_sim import clips
from host_sim.nats_cluster import NatsCluster
from segbind.grants import Service
from segbind.owner import Owner
from segbind.service.admin import publish_grants
from segbind.service.names import partition_of
from segbind.service.worker import Acks
from tests.support import ROOT
from tests.support.agent import CoreRunner
from tests.support.service import tool

pytestmark = pytest.mark.nats

faults = tool("service_faults")
load = tool("service_load")


def deployment(cluster: Any, tmp: Path, prefix: str, cameras: int = 24, segments: int = 4, **kw: Any) -> Any:
    return faults.Deployment(cluster, prefix, tmp / prefix, load.Fleet(cameras, segments, **kw))


def test_workers_judge_every_camera_with_its_owner_s_keys_and_each_owner_reads_its_own(cluster: Any,
                                                                                      tmp_path: Path) -> None:
    dep = deployment(cluster, tmp_path, "basic")
    try:
        dep.worker()
        dep.worker()
        seqs = dep.publish()
        verdicts = dep.wait_judged(seqs)
        mine = dep.run(lambda nc: faults.read_verdicts(nc.jetstream(), dep.names, "acct-00002"))
    finally:
        dep.close()
    counts = faults.audit(dep, "basic", verdicts, faults.everything(dep))
    assert counts.clean() and counts.verdicts == counts.published == 96 and counts.judged_twice == 0, counts
    assert {v["camera"] for v in mine} == {"cam-00006", "cam-00007", "cam-00008"} and len(mine) == 12
    assert all(v["accepted"] and v["account"] == "acct-00002" for v in mine)
    assert sum(w.count("judged") for w in dep.workers) == 96
    assert all(w.stats()["leases"]["acquired"] >= 1 for w in dep.workers)  # both held partitions


def test_workers_that_join_and_leave_hand_partitions_over_judging_nothing_twice(cluster: Any,
                                                                             tmp_path: Path) -> None:
    dep = deployment(cluster, tmp_path, "handoff", segments=6)
    try:
        first = dep.worker()
        faults.until(lambda: len(first.partitions()) == dep.partitions, 30, "every partition for the first")
        seqs = dep.publish(dep.fleet.order(range(0, 2)))
        dep.wait_judged(seqs)
        second = dep.worker()
        faults.until(lambda: len(second.partitions()) == dep.partitions // 2, 30, "half for the second")
        seqs += dep.publish(dep.fleet.order(range(2, 4)))
        dep.wait_judged(seqs)
        first.stop()  # SIGTERM: it finishes its batch and releases its partitions with their checkpoints
        faults.until(lambda: len(second.partitions()) == dep.partitions, 30, "every partition for the second")
        seqs += dep.publish(dep.fleet.order(range(4, 6)))
        verdicts = dep.wait_judged(seqs)
    finally:
        dep.close()
    counts = faults.audit(dep, "handoff", verdicts, faults.everything(dep))
    assert counts.clean() and counts.judged_twice == 0 and counts.verdicts == 144, counts
    assert first.count("released") == dep.partitions // 2 + dep.partitions // 2  # handed over twice
    assert first.count("state_refused") == second.count("state_refused") == 0


def test_a_camera_no_owner_granted_and_segments_routed_to_another_camera_are_refused(cluster: Any,
                                                                                  tmp_path: Path) -> None:
    dep = deployment(cluster, tmp_path, "refused", cameras=9, segments=3)
    stranger = load.Fleet(3, 3)  # cameras of an owner who never enrolled this service
    try:
        dep.worker()
        seqs = dep.publish()
        strays = dep.run(lambda nc: stranger.publish(nc, dep.names, dep.partitions))
        # the cloud mixes device ids up: cam-00000's segments on cam-00004's subject (another owner's)
        mixed = dep.run(lambda nc: dep.fleet.publish(
            nc, dep.names, dep.partitions, [(dep.fleet.cameras[0], k) for k in range(3)],
            subject_of=lambda camera: dep.names.seg_subject("cam-00004", dep.partitions), dedup=False))
        verdicts = dep.wait_judged(seqs + strays + mixed)
    finally:
        dep.close()
    by_seq: Dict[int, Dict[str, Any]] = {v["stream_seq"]: v for v in verdicts}
    # the stranger's cameras have ids of this fleet's (cam-00000...): keys, not names, decide
    for seq in strays:
        assert not by_seq[seq]["accepted"] and by_seq[seq]["reason"] in ("no_grant", "mac_mismatch")
    for seq in mixed:
        v = by_seq[seq]
        assert not v["accepted"] and v["reason"] == "no_grant" and v["account"] == "acct-00001"
    counts = faults.audit(dep, "refused", [by_seq[s] for s in seqs], faults.everything(dep))
    assert counts.clean() and counts.foreign_accepted == 0, counts
    lone = load.Fleet(1, 1)
    lone.cameras[0] = lone.cameras[0]._replace(camera="nobody-s-camera")
    dep2 = deployment(cluster, tmp_path, "refused2", cameras=3, segments=1)
    try:
        dep2.worker()
        seq = dep2.run(lambda nc: lone.publish(nc, dep2.names, dep2.partitions))
        verdict = dep2.wait_judged(seq)[-1]
    finally:
        dep2.close()
    assert verdict["reason"] == "no_grant" and verdict["account"] == "" and "no account granted" in verdict["detail"]


def test_an_owner_s_app_enrolls_grants_and_revokes_through_the_cloud(cluster: Any, tmp_path: Path) -> None:
    """Item 1 end to end: the provider makes the service's identity, pins an owner's card (the
    enrollment code matches the app's), the owner's app grants it its camera through the cloud,
    the workers (running before the owner enrolled) take the grants once the service file names
    the owner, and a camera the owner releases is refused from the next grants on."""
    cli = [sys.executable, "-m", "segbind.cli", "serve"]
    svc_path, card_path = tmp_path / "svc.json", tmp_path / "svc-card.json"
    done = subprocess.run(cli + ["identity", "--service-id", "recorder", "--out", str(svc_path), "--card",
                                 str(card_path), "--test-only"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fleet = load.Fleet(3, 2)  # another owner, enrolled already
    service = Service.load(svc_path)
    for account in fleet.accounts.values():
        service.enroll(account.card())
    service.save(svc_path)
    fleet.service = service
    dep = faults.Deployment(cluster, "owner", tmp_path / "owner", fleet)
    dep.service_path = svc_path  # the provider's file, as it changes
    t0 = fleet.t0_ms
    alice = Owner.new("alice", test_only=True)
    cams = {}
    for camera in ("alice-cam", "alice-door"):
        cam = CoreRunner(camera).start(t0)
        alice.on_result(camera, cam.pair(alice.pairing_offer(camera, t0), t0 + 1))
        cams[camera] = cam
    video = clips.encode_pyav(frames=20, gop=5, width=128, height=96, seed=5)
    try:
        dep.worker()
        app_code = alice.enroll_service(Service.load(svc_path).card())
        (tmp_path / "alice-card.json").write_text(json.dumps(alice.account.card().to_json()))
        sealed = alice.service_grants_for("recorder", t0)
        dep.run(lambda nc: publish_grants(nc.jetstream(), dep.names, sealed))  # before the provider pins alice
        done = subprocess.run(cli + ["enroll", "--service", str(svc_path), str(tmp_path / "alice-card.json")],
                              capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == app_code, done.stderr
        time.sleep(2.5)  # the workers read the service file again
        segs = {c: cams[c].feed(video, t0 + 5000) for c in cams}
        seqs = publish_raw(dep, [(c, s) for c in cams for s in segs[c]])
        verdicts = dep.wait_judged(seqs)
        assert [v["reason"] for v in verdicts if v["stream_seq"] in seqs] == ["ok"] * len(seqs)
        assert {v["account"] for v in verdicts if v["stream_seq"] in seqs} == {"alice"}
        alice.forget("alice-door")  # reset by its button: its epochs are revoked entries from now on
        dep.run(lambda nc: publish_grants(nc.jetstream(), dep.names, alice.service_grants_for("recorder", t0 + 6000)))
        time.sleep(1.0)
        later = {c: cams[c].feed(video, t0 + 9000) for c in cams}
        seqs2 = publish_raw(dep, [(c, s) for c in cams for s in later[c]])
        verdicts = {v["stream_seq"]: v for v in dep.wait_judged(seqs2)}
    finally:
        dep.close()
    for seq in seqs2:
        v = verdicts[seq]
        if v["camera"] == "alice-cam":
            assert v["accepted"], v
        else:
            assert not v["accepted"] and v["reason"] == "no_grant", v
    assert (tmp_path / "owner" / "recording" / "alice" / "alice-cam").is_dir()


def publish_raw(dep: Any, items: List[Any]) -> List[int]:
    """Segments as the bridge puts them in the stream: (camera, bytes) in order."""
    async def go(nc: Any) -> List[int]:
        acks = await Acks(nc).start()
        futures = [await acks.publish(dep.names.seg_subject(camera, dep.partitions), data) for camera, data in items]
        return [int(r) for r in await Acks.settle(futures, 10.0)]

    return list(dep.run(go))


def test_nats_s_mqtt_listener_refuses_the_agent_s_mqtt_5(tmp_path: Path) -> None:
    """Why the cameras reach the service through Mosquitto and a bridge (docs/SERVICE.md): the
    agent speaks MQTT 5 (persistent sessions with an expiry, user properties), and NATS 2.9's MQTT
    listener takes MQTT 3.1.1 only."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from segbind_agent.link import MqttTransport

    with NatsCluster(str(tmp_path / "nats"), nodes=1, mqtt=True) as single:
        port = single.nodes[0].mqtt_port
        agent = MqttTransport("127.0.0.1", port, "camera-1")  # the agent's own transport
        agent.start()
        time.sleep(1.0)
        assert not agent.connected
        agent.stop()
        assert b"unacceptable protocol version of 5" in (single.nodes[0].dir / "nats.log").read_bytes()
        answers: List[Any] = []
        old = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="v311", protocol=mqtt.MQTTv311)
        old.on_connect = lambda c, u, f, rc, p: answers.append(rc)
        old.connect("127.0.0.1", port, 5)
        old.loop_start()
        faults.until(lambda: answers, 10, "the 3.1.1 answer")
        old.loop_stop()
        assert not answers[0].is_failure


def test_the_cluster_tool_starts_stops_and_restarts_nodes_for_people(tmp_path: Path) -> None:
    tool_path = str(ROOT / "tools" / "nats_cluster.py")
    d = str(tmp_path / "c")

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, tool_path, *args, "--dir", d], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        servers = run("start").strip()
        assert servers.count("nats://127.0.0.1:") == 3
        run("stop-node", "2")
        assert "n2 nats://127.0.0.1" in run("status") and "stopped" in run("status")
        run("start-node", "2")
        assert run("status").count("running") == 3
    finally:
        run("stop")
    assert "stopped" in run("status") and "running" not in run("status")


def test_serve_commands_fail_in_one_line(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "segbind.cli", "serve"]
    svc = tmp_path / "svc.json"
    Service.new("recorder", test_only=True).save(svc)
    for args in (["init", "--nats", "nats://127.0.0.1:1"],
                 ["worker", "--nats", "nats://127.0.0.1:1", "--service", str(svc)],
                 ["worker", "--nats", "nats://127.0.0.1:1", "--service", str(tmp_path / "missing.json")],
                 ["init", "--nats", "nats://127.0.0.1:1", "--prefix", "Bad.Prefix"],
                 ["grant", "--nats", "nats://127.0.0.1:1", str(tmp_path / "missing.json")],
                 ["enroll", "--service", str(svc), str(tmp_path / "missing.json")]):
        done = subprocess.run(cli + args, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("segbind: error: "), (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_serve_init_against_another_partition_count_is_refused(cluster: Any) -> None:
    cli = [sys.executable, "-m", "segbind.cli", "serve", "init", "--nats", cluster.servers, "--prefix", "parts"]
    assert subprocess.run(cli + ["--partitions", "4"], capture_output=True).returncode == 0
    assert subprocess.run(cli + ["--partitions", "4"], capture_output=True).returncode == 0  # kept
    done = subprocess.run(cli + ["--partitions", "8"], capture_output=True, text=True)
    assert done.returncode == 2 and "has 4 partitions, not 8" in done.stderr


def test_names_are_one_to_one_and_partitions_spread() -> None:
    from segbind.service.names import Names, token, untoken

    for name in ("cam-1", "a.b", "x*y>z", "café", "=3D", "sp ace", "\u00e9" * 16):
        assert untoken(token(name)) == name
    assert token("a.b") != token("a=2Eb") and untoken("a=2eb") is None
    names = Names("segbind")
    assert names.camera_of(names.seg_subject("a.b", 16)) == "a.b"
    spread = [partition_of("cam-%05d" % i, 16) for i in range(1600)]
    assert min(spread.count(p) for p in range(16)) > 60
