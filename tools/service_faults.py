#!/usr/bin/env python3
"""The verifying service's faults (issue 21, docs/SERVICE.md "Faults"), each named and switchable,
each run against a real 3-node nats-server cluster with real workers, and counted:

    worker_kill        kill -9 a worker in the middle of a batch: its verdicts out, its states not
    node_restart       stop the segment stream's leader node, then start it again, under load
    worker_pause       SIGSTOP a worker past its lease as its state writes go out; SIGCONT it
    reconnect_storm    every camera reconnects at once after its broker went away (the Wyze 2024
                       trigger): through Mosquitto and the MQTT bridge, with backlogs and repeats
    keys_mixup         a worker's key memo hands out another account's keys (a routing mix-up)

Each run says: segments published, verdicts, segments judged twice (with the same verdict, and
with different ones), segments lost, foreign segments accepted, chain breaks, writes refused by
compare-and-set, judgements made again when the keys disagreed; and checks the owners'
recordings. The tests (tests/service/test_faults.py) assert the zeros.

    python3 tools/service_faults.py                         # every fault
    python3 tools/service_faults.py --faults worker_kill,node_restart --cameras 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from service_load import Camera, Fleet, raw_segments  # noqa: E402

from host_sim.nats_cluster import NatsCluster, term_when_parent_exits  # noqa: E402
from segbind.service.admin import ensure, read_verdicts  # noqa: E402
from segbind.service.names import Names, token  # noqa: E402
from segbind.verifier import tags_in  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its own, not its children's)."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_state(pid: int) -> str:
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(step)


class WorkerProc:
    """``segbind serve worker`` as a process of its own (its log and stats in the run's directory)."""

    def __init__(self, dep: "Deployment", name: str, fault: Optional[str] = None, batch: int = 256) -> None:
        self.name = name
        self.log_path = dep.dir / ("%s.log" % name)
        self.stats_path = dep.dir / ("%s.stats.json" % name)
        env = dict(os.environ)
        env.pop("SEGBIND_SERVE_FAULT", None)
        if fault:
            env["SEGBIND_SERVE_FAULT"] = fault
        cmd = [sys.executable, "-m", "segbind.cli", "serve", "worker", "--nats", dep.servers, "--prefix", dep.prefix,
               "--service", str(dep.service_path), "--recording", str(dep.recording), "--stats", str(self.stats_path),
               "--id", name, "--lease", str(dep.lease_s), "--batch", str(batch), "-v"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, preexec_fn=term_when_parent_exits)
        self.pid = self.proc.pid

    def stats(self) -> Dict[str, Any]:
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def count(self, name: str) -> int:
        stats = self.stats()
        return int(stats.get("counts", {}).get(name, 0) or stats.get("leases", {}).get(name, 0))

    def partitions(self) -> List[int]:
        return list(self.stats().get("partitions", []))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def state(self) -> str:
        return process_state(self.pid) if self.alive else "X"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def kill(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def resume(self) -> None:
        if self.alive:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive:
            return
        os.kill(self.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, size: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""


class Deployment:
    """One service deployment (its own prefix: streams, buckets) on a cluster, its fleet and workers."""

    def __init__(self, cluster: NatsCluster, prefix: str, directory: Path, fleet: Fleet, partitions: int = 8,
                 lease_s: float = 1.5) -> None:
        self.cluster = cluster
        self.servers = cluster.servers
        self.prefix = prefix
        self.names = Names(prefix)
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.recording = self.dir / "recording"
        self.service_path = self.dir / "service.json"
        self.fleet = fleet
        fleet.service.save(self.service_path)
        self.partitions = partitions
        self.lease_s = lease_s
        self.workers: List[WorkerProc] = []
        self.published: Dict[int, Tuple[Camera, int]] = {}  # stream seq -> (camera, segment index)
        self.run(self._init)

    def run(self, make: Callable[[Any], Any]) -> Any:
        """``make(nc)`` on a fresh connection to the cluster."""
        async def go() -> Any:
            import nats

            nc = await nats.connect(servers=self.servers.split(","), max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.3)
            try:
                return await make(nc)
            finally:
                await nc.close()

        return asyncio.run(go())

    async def _init(self, nc: Any) -> None:
        js = nc.jetstream(timeout=10.0)
        await ensure(js, self.names, self.partitions, 3, seg_max_age_s=3600.0)
        await self.fleet.grant(js, self.names)

    def worker(self, fault: Optional[str] = None, name: Optional[str] = None) -> WorkerProc:
        w = WorkerProc(self, name or "w%d" % (len(self.workers) + 1), fault)
        self.workers.append(w)
        return w

    def publish(self, items: Optional[List[Tuple[Camera, int]]] = None) -> List[int]:
        items = self.fleet.order() if items is None else items
        seqs = self.run(lambda nc: self.fleet.publish(nc, self.names, self.partitions, items))
        for seq, item in zip(seqs, items):
            self.published[seq] = item
        return list(seqs)

    def verdicts(self) -> List[Dict[str, Any]]:
        return list(self.run(lambda nc: read_verdicts(nc.jetstream(timeout=10.0), self.names)))

    def judged(self) -> Set[int]:
        return {v["stream_seq"] for v in self.verdicts()}

    def wait_judged(self, seqs: Sequence[int], timeout: float = 60.0) -> List[Dict[str, Any]]:
        want = set(seqs)
        found: List[Dict[str, Any]] = []

        def done() -> bool:
            found[:] = self.verdicts()
            return want <= {v["stream_seq"] for v in found}

        until(done, timeout, "verdicts on %d segments" % len(want), step=0.3)
        return found

    def close(self) -> None:
        for w in self.workers:
            w.stop()


class Counts(NamedTuple):
    fault: str
    published: int
    verdicts: int
    judged_twice: int                # segments judged more than once, to the same verdict
    judged_twice_differently: int
    lost: int                        # segments the cameras sent that no accepted verdict holds
    foreign_accepted: int
    chain_breaks: int                # chain_break or replay verdicts, or a camera whose accepted seqs have a hole
    reordered: int                   # gap and late verdicts (accepted: the chain is whole in the end)
    duplicates: int                  # copies refused as duplicates (never accepted twice)
    refused_writes: int              # stream state writes refused by compare-and-set
    rejudged: int                    # judgements made again when the keys disagreed with the grants
    recording_faults: int            # accepted segments whose recording is missing or not the camera's video
    note: str = ""

    def clean(self) -> bool:
        return not (self.judged_twice_differently or self.lost or self.foreign_accepted or self.chain_breaks
                    or self.recording_faults)


HEADER = ("fault", "published", "verdicts", "judged twice", "twice, differently", "lost", "foreign accepted",
          "chain breaks", "gap/late", "duplicates", "writes refused", "re-judged", "recording faults")


def table(rows: Sequence[Counts]) -> str:
    widths = [max(len(h), 4) for h in HEADER]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(16) for i, (h, w) in enumerate(zip(HEADER, widths)))]
    for r in rows:
        cells = [r.fault.ljust(16)] + [str(v).rjust(w) for v, w in zip(r[1:13], widths[1:])]
        lines.append("  ".join(cells) + ("   " + r.note if r.note else ""))
    return "\n".join(lines)


def untag(plaintext: bytes) -> bytes:
    """A decrypted segment without its tag: the camera's video as it left the encoder."""
    units = tags_in(plaintext)
    if len(units) != 1:
        return b""
    s, e = units[0]
    return plaintext[:s - 4] + plaintext[e:]


def audit(dep: Deployment, fault: str, verdicts: List[Dict[str, Any]], expected: Dict[str, Set[int]],
          note: str = "") -> Counts:
    """What the verdicts (and the recording) say against what the cameras sent (``expected``:
    camera -> the segment indexes it sent, at least once)."""
    owners = dep.fleet.owner_of()
    by_seq: Dict[int, Set[Tuple[str, int]]] = {}
    accepted: Dict[str, Set[int]] = {}
    foreign = breaks = reordered = duplicates = 0
    for v in verdicts:
        by_seq.setdefault(v["stream_seq"], set()).add((v["reason"], v["missing"]))
    first: Dict[int, Dict[str, Any]] = {}
    for v in verdicts:
        first.setdefault(v["stream_seq"], v)
    for v in first.values():
        tag = v.get("tag") or {}
        reason = v["reason"]
        if v["accepted"]:
            owner = owners.get(v["camera"])
            if v["account"] != owner or tag.get("owner") != owner or tag.get("camera") != v["camera"]:
                foreign += 1
                continue
            accepted.setdefault(v["camera"], set()).add(int(tag["seq"]))
        if reason in ("chain_break", "replay"):
            breaks += 1
        elif reason in ("gap", "late"):
            reordered += 1
        elif reason == "duplicate":
            duplicates += 1
    lost = 0
    for camera, indexes in expected.items():
        got = accepted.get(camera, set())
        lost += len(indexes - got)
        if got and got != set(range(max(got) + 1)):
            breaks += 1
    counts_by_seq: Dict[int, int] = {}
    for v in verdicts:
        counts_by_seq[v["stream_seq"]] = counts_by_seq.get(v["stream_seq"], 0) + 1
    twice = sum(1 for seq, n in counts_by_seq.items() if n > 1 and len(by_seq[seq]) == 1)
    differently = sum(1 for reasons in by_seq.values() if len(reasons) > 1)
    raws = {r.data for r in raw_segments()}
    recording_faults = 0
    cams = {c.camera: c for c in dep.fleet.cameras}
    for camera, seqs in accepted.items():
        cam = cams[camera]
        for seq in seqs:
            path = dep.recording / token(cam.owner) / token(camera) / str(cam.stream_id) / ("%010d.h264" % seq)
            try:
                if untag(path.read_bytes()) not in raws:
                    recording_faults += 1
            except OSError:
                recording_faults += 1
    refused = sum(w.count("state_refused") for w in dep.workers)
    rejudged = sum(w.count("rejudged") for w in dep.workers)
    return Counts(fault, sum(len(i) for i in expected.values()), len(verdicts), twice, differently, lost, foreign,
                  breaks, reordered, duplicates, refused, rejudged, recording_faults, note)


Outcome = Tuple[List[Dict[str, Any]], Dict[str, Set[int]], str]  # verdicts, what the cameras sent, a note


def everything(dep: Deployment, rounds: Optional[Sequence[int]] = None) -> Dict[str, Set[int]]:
    out: Dict[str, Set[int]] = {}
    for cam, k in dep.fleet.order(rounds):
        out.setdefault(cam.camera, set()).add(k)
    return out


# -- the faults --------------------------------------------------------------------------------------

def fault_worker_kill(dep: Deployment) -> Outcome:
    """A worker kills itself (SIGKILL) once its second batch's verdicts are durable and before it
    writes the batch's stream states: the next holder judges that batch again from the records."""
    victim = dep.worker("kill@verdicts:2", name="victim")
    dep.worker(name="survivor")
    until(lambda: victim.partitions(), 30, "partitions for the workers")
    seqs = dep.publish(dep.fleet.order(range(0, 3)))
    until(lambda: not victim.alive, 30, "the victim's kill")
    killed_at = time.monotonic()
    seqs += dep.publish(dep.fleet.order(range(3, len(dep.fleet.cameras[0].segments))))
    verdicts = dep.wait_judged(seqs)
    recovered = time.monotonic() - killed_at
    return verdicts, everything(dep), "all judged %.1f s after the kill" % recovered


def fault_node_restart(dep: Deployment) -> Outcome:
    """The node leading the segment stream stops (SIGTERM) while cameras publish and workers judge;
    it starts again a few seconds later and catches up."""
    dep.worker(name="w1")
    dep.worker(name="w2")
    until(lambda: all(w.partitions() for w in dep.workers), 30, "partitions for the workers")
    rounds = len(dep.fleet.cameras[0].segments)

    async def leader(nc: Any) -> str:
        info = await nc.jetstream().stream_info(dep.names.seg_stream)
        return str(info.cluster.leader)

    name = dep.run(leader)
    index = next(i for i, n in enumerate(dep.cluster.nodes) if n.name == name)
    seqs = dep.publish(dep.fleet.order(range(0, 2)))
    dep.cluster.stop_node(index)
    seqs += dep.publish(dep.fleet.order(range(2, 4)))
    time.sleep(2.0)
    dep.cluster.start_node(index)
    seqs += dep.publish(dep.fleet.order(range(4, rounds)))
    verdicts = dep.wait_judged(seqs, timeout=90)
    return verdicts, everything(dep), "node %s (the stream's leader) down 2 s" % name


def fault_worker_pause(dep: Deployment) -> Outcome:
    """A worker stops (SIGSTOP) as it sends its second batch's stream states, stays stopped until
    another worker has taken its partitions and judged past that batch, then resumes: what it
    sends is refused by compare-and-set, and it judges again only what it is given back."""
    paused = dep.worker("stop@states_sending:2", name="paused")
    other = dep.worker(name="other")
    until(lambda: paused.partitions() and other.partitions(), 30, "partitions for the workers")
    rounds = len(dep.fleet.cameras[0].segments)
    seqs = dep.publish(dep.fleet.order(range(0, 3)))
    until(lambda: paused.state() == "T", 30, "the worker's pause")
    stopped_at = time.monotonic()
    seqs += dep.publish(dep.fleet.order(range(3, rounds - 1)))
    dep.wait_judged(seqs)  # the other worker took everything over
    held_for = time.monotonic() - stopped_at
    paused.resume()
    until(lambda: paused.count("state_refused") >= 1, 20, "the resumed worker's refused writes")
    until(lambda: paused.partitions(), 30, "partitions handed back to the resumed worker")
    seqs += dep.publish(dep.fleet.order(range(rounds - 1, rounds)))
    verdicts = dep.wait_judged(seqs)
    return verdicts, everything(dep), "stopped %.1f s (lease %.1f s)" % (held_for, dep.lease_s)


def fault_reconnect_storm(dep: Deployment) -> Outcome:
    """Every camera publishes through Mosquitto (MQTT 5, QoS 1, persistent sessions: the agent's
    own transport) and the bridge carries the segments into the stream. The broker goes away; the
    cameras go on recording (their MQTT client queues), and when it is back they all reconnect at
    once with their backlogs, and each sends its last segment once more (an agent restarted from
    its spool): the Wyze 2024 trigger."""
    import logging

    from host_sim.broker import Broker
    from segbind_agent.link import MqttTransport
    from segbind_core import topics

    logging.getLogger("segbind_agent.link").setLevel(logging.ERROR)  # 48 cameras say they lost the broker
    dep.worker(name="w1")
    dep.worker(name="w2")
    rounds = len(dep.fleet.cameras[0].segments)
    broker = Broker(workdir=str(dep.dir / "mosquitto")).start()
    bridge_log = open(dep.dir / "bridge.log", "ab")
    bridge = subprocess.Popen([sys.executable, "-m", "segbind.cli", "serve", "bridge", "--nats", dep.servers,
                               "--prefix", dep.prefix, "--mqtt", "%s:%d" % (broker.host, broker.port),
                               "--client-id", "bridge-%s" % dep.prefix, "-v"],
                              stdout=bridge_log, stderr=subprocess.STDOUT, preexec_fn=term_when_parent_exits)
    cams = {}
    try:
        for cam in dep.fleet.cameras:
            t = MqttTransport(broker.host, broker.port, "camera-%s" % cam.camera, reconnect_max_s=1.0)
            t.start()
            cams[cam.camera] = t
        until(lambda: all(t.connected for t in cams.values()), 30, "the cameras' connections")
        # the bridge's session subscribed: from then on the broker keeps its segments for it
        until(lambda: b"subscribed" in (dep.dir / "bridge.log").read_bytes(), 30, "the bridge's subscription")

        def send(k: int) -> None:
            for cam in dep.fleet.cameras:
                cams[cam.camera].publish(topics.camera_topic(cam.camera, topics.SEG), cam.segments[k], qos=1)

        for k in range(0, 2):
            send(k)
        broker.stop()
        until(lambda: not any(t.connected for t in cams.values()), 20, "the cameras to notice")
        for k in range(2, 4):  # recorded while the broker is away: queued by each camera
            send(k)
        broker.start()
        until(lambda: all(t.connected for t in cams.values()), 30, "every camera back at once")
        send(3)  # each camera's last segment again, as a restarted agent's spool sends it: the bridge
        # stores it once (the stream's duplicate window)
        for k in range(4, rounds):
            send(k)
        total = len(dep.fleet.cameras) * rounds

        def judged_all() -> List[Dict[str, Any]]:
            found = dep.verdicts()
            done = {(v["camera"], (v.get("tag") or {}).get("seq")) for v in found if v["accepted"]}
            return found if len(done) >= total else []

        verdicts = until(judged_all, 90, "every camera's segments judged", step=0.5)
        # and segment 3 of every camera once more, after the duplicate window: only the verifier
        # can tell it is a copy
        again = dep.run(lambda nc: dep.fleet.publish(nc, dep.names, dep.partitions, dep.fleet.order([3]),
                                                     dedup=False))
        verdicts = dep.wait_judged(again)
    finally:
        for t in cams.values():
            t.stop()
        bridge.terminate()
        bridge.wait(10)
        bridge_log.close()
        broker.close()
    return verdicts, everything(dep), "%d cameras reconnected at once through Mosquitto and the bridge" % len(cams)


def fault_keys_mixup(dep: Deployment) -> Outcome:
    """Both workers' key memos hand out another account's keys for every camera they meet: each
    refusal is checked against the signed grants before it is final."""
    dep.worker("keys_mixup", name="w1")
    dep.worker("keys_mixup", name="w2")
    seqs = dep.publish()
    verdicts = dep.wait_judged(seqs)
    return verdicts, everything(dep), ""


FAULTS: Dict[str, Callable[[Deployment], Outcome]] = {
    "worker_kill": fault_worker_kill,
    "node_restart": fault_node_restart,
    "worker_pause": fault_worker_pause,
    "reconnect_storm": fault_reconnect_storm,
    "keys_mixup": fault_keys_mixup,
}


def run_fault(cluster: NatsCluster, name: str, directory: Path, cameras: int = 48, segments: int = 6,
              fleet: Optional[Fleet] = None) -> Tuple[Counts, Deployment]:
    fleet = fleet or Fleet(cameras, segments)
    dep = Deployment(cluster, name.replace("_", "-"), directory / name, fleet)
    try:
        verdicts, expected, note = FAULTS[name](dep)
    finally:
        dep.close()  # every worker's last counts written
    return audit(dep, name, verdicts, expected, note), dep


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="run the verifying service's faults on a local NATS cluster")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, of: %s" % ", ".join(FAULTS))
    parser.add_argument("--cameras", type=int, default=48)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--dir", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    names = [n for n in args.faults.split(",") if n]
    unknown = [n for n in names if n not in FAULTS]
    if unknown or args.segments < 6:
        parser.error("unknown fault %s (known: %s)" % (unknown[0], ", ".join(FAULTS)) if unknown
                     else "--segments must be at least 6")
    base = Path(args.dir or tempfile.mkdtemp(prefix="segbind-faults-"))
    rows = []
    with NatsCluster(str(base / "nats")) as cluster:
        for name in names:
            counts, _ = run_fault(cluster, name, base, args.cameras, args.segments)
            rows.append(counts)
            print(table([counts]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    return 0 if all(r.clean() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
