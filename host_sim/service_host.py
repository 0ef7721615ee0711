"""The owners' recording service, for a fleet run over NATS (``--engine nats``): the verifying
service of docs/SERVICE.md as it is deployed, on this machine.

- a 3-node nats-server cluster (``host_sim.nats_cluster``), the service's streams and buckets
  on it (R3);
- ``segbind serve bridge``, carrying the cameras' segments from the fleet's Mosquitto into the
  segment stream (the cameras publish exactly as they do without a service);
- N ``segbind serve worker`` processes judging them in partitions, with leases;
- the provider's side of enrollment (``enroll``: it pins an owner's account card) and the
  carrier of the owners' sealed grants (``carry``: what the reference cloud hands it).

``audit`` then says what the service did with what reached the broker, against the fleet's
ledger (the ground truth): every segment stored and judged, none judged twice to different
verdicts, none accepted for an account that does not own the camera, no forgery accepted.
Test material only: the service's identity is made fresh and marked test-only.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from host_sim.ledger import Ledger
from host_sim.nats_cluster import NatsCluster, term_when_parent_exits

log = logging.getLogger("segbind.fleet.service")

SERVICE_ID = "recorder"


class ServiceHost:
    """One service deployment for one fleet run (its own cluster, prefix and directory)."""

    def __init__(self, mqtt_host: str, mqtt_port: int, topic_prefix: str, workers: int = 2,
                 partitions: int = 8, lease_s: float = 1.5) -> None:
        from segbind.grants import Service
        from segbind.service.names import Names

        self.mqtt = "%s:%d" % (mqtt_host, mqtt_port)
        self.topic_prefix = topic_prefix
        self.workers_wanted = workers
        self.partitions = partitions
        self.lease_s = lease_s
        self.dir = Path(tempfile.mkdtemp(prefix="segbind-fleet-service-"))
        self.names = Names("fleet%s" % uuid.uuid4().hex[:8])
        self.service = Service.new(SERVICE_ID, test_only=True)
        self.service_path = self.dir / "service.json"
        self.recording = self.dir / "recording"
        self.cluster: Optional[NatsCluster] = None
        self.procs: Dict[str, subprocess.Popen] = {}
        self.carried = 0
        self.carry_retries = 0
        self.carry_failed = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="service-host", daemon=True)
        self._nc: Any = None
        self._js: Any = None

    # -- running -----------------------------------------------------------------------------

    def start(self) -> "ServiceHost":
        """Everything up, the bridge subscribed; on any failure, everything started is stopped."""
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> "ServiceHost":
        self.cluster = NatsCluster(str(self.dir / "nats")).start()
        self.service.save(self.service_path)
        self._thread.start()
        self._call(self._connect(), 60.0)
        self._spawn("bridge", ["bridge", "--mqtt", self.mqtt, "--topic-prefix", self.topic_prefix,
                               "--client-id", "bridge-%s" % self.names.prefix])
        for k in range(self.workers_wanted):
            self._spawn("worker-%d" % (k + 1), [
                "worker", "--service", str(self.service_path), "--recording", str(self.recording),
                "--id", "worker-%d" % (k + 1), "--lease", str(self.lease_s), "--stats",
                str(self.dir / ("worker-%d.stats.json" % (k + 1)))])
        self._until(lambda: b"subscribed" in self._log("bridge"), 60.0, "the bridge's subscription")
        return self

    async def _connect(self) -> None:
        import nats

        from segbind.service.admin import ensure

        self._nc = await nats.connect(servers=self.cluster.urls, max_reconnect_attempts=-1,  # type: ignore[union-attr]
                                      reconnect_time_wait=0.3)
        self._js = self._nc.jetstream(timeout=10.0)
        await ensure(self._js, self.names, self.partitions, 3)

    def _spawn(self, name: str, args: List[str]) -> None:
        assert self.cluster is not None
        cmd = [sys.executable, "-m", "segbind.cli", "serve"] + args[:1] + [
            "--nats", self.cluster.servers, "--prefix", self.names.prefix] + args[1:] + ["-v"]
        with open(self.dir / ("%s.log" % name), "ab") as out:
            self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                preexec_fn=term_when_parent_exits)

    def _log(self, name: str) -> bytes:
        try:
            return (self.dir / ("%s.log" % name)).read_bytes()
        except OSError:
            return b""

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _until(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError("the service's %s exited: %s" % (
                    dead[0], self._log(dead[0])[-600:].decode(errors="replace")))
            if time.monotonic() > deadline:
                raise RuntimeError("the service: timed out after %.0f s waiting for %s" % (timeout, what))
            time.sleep(0.1)

    # -- the owners' side ----------------------------------------------------------------------

    def card(self) -> Any:
        return self.service.card()

    def enroll(self, account_card: Any) -> str:
        """The provider pins an owner's account card; returns the enrollment code (the owner's app
        shows the same). ``publish`` hands the changed file to the workers."""
        return str(self.service.enroll(account_card))

    def publish(self) -> None:
        """Write the service's file again: the workers read it within a couple of seconds."""
        tmp = self.dir / "service.json.tmp"
        self.service.save(tmp)
        os.replace(tmp, self.service_path)

    def carry(self, sealed: Dict[str, Any]) -> None:
        """An owner's sealed service-grants message, into the grants stream (from any thread; in
        the order given), retried until JetStream stores it, as the bridge does with segments: a
        message lost here would leave the service without the period's keys until the owner's
        next renewal."""
        asyncio.run_coroutine_threadsafe(self._carry(sealed), self._loop)

    async def _carry(self, sealed: Dict[str, Any], tries: int = 60) -> None:
        from segbind.service.admin import publish_grants

        for attempt in range(tries):
            try:
                await publish_grants(self._js, self.names, sealed)
            except Exception as exc:  # noqa: BLE001 - nats-py: timeouts, no responders, a leader moving
                with self._lock:
                    self.carry_retries += 1
                if attempt + 1 == tries:
                    log.warning("a sealed grants message was not stored: %s", type(exc).__name__)
                    with self._lock:
                        self.carry_failed += 1
                    return
                await asyncio.sleep(0.5)
            else:
                with self._lock:
                    self.carried += 1
                return

    def cameras_held(self) -> List[int]:
        """Per worker, how many cameras' grants it holds (its stats file; 0 before the first)."""
        held = []
        for k in range(self.workers_wanted):
            try:
                stats = json.loads((self.dir / ("worker-%d.stats.json" % (k + 1))).read_text())
                held.append(int(stats.get("keys", {}).get("cameras", 0)))
            except (OSError, ValueError):
                held.append(0)
        return held

    # -- what it did ---------------------------------------------------------------------------

    def settle(self, timeout: float = 60.0) -> bool:
        """Wait until every stored segment has a verdict (True), or until nothing has moved for
        ``timeout`` (False: ``audit`` counts what is left unjudged)."""
        last, moved = -1, time.monotonic()
        while True:
            segments, verdicts = self._read()
            judged = {int(v["stream_seq"]) for v in verdicts}
            left = sum(1 for seq, _ in segments if seq not in judged)
            if not left:
                return True
            if left != last:
                last, moved = left, time.monotonic()
            elif time.monotonic() - moved > timeout:
                return False
            time.sleep(0.5)

    def _read(self) -> "tuple[List[tuple], List[dict]]":
        """Every stored segment (stream sequence, bytes) and every verdict."""
        from segbind.service.admin import read_stream, read_verdicts

        async def read() -> "tuple[list, list]":
            msgs = await read_stream(self._js, self.names.seg_stream, self.names.seg_all())
            return [(m.metadata.sequence.stream, bytes(m.data)) for m in msgs], \
                await read_verdicts(self._js, self.names)

        return self._call(read(), 120.0)

    def audit(self, witnessed: Set[bytes], origin_of: Callable[[bytes], Any]) -> dict:
        """What the service did with every segment that reached the broker (``witnessed``: their
        digests). ``origin_of(digest)``: the ledger's origin (None: not a camera's, a forgery)."""
        segments, verdicts = self._read()
        by_seq: Dict[int, List[dict]] = collections.defaultdict(list)
        for v in verdicts:
            by_seq[int(v["stream_seq"])].append(v)
        stored = {seq: Ledger.digest(data) for seq, data in segments}
        counts = collections.Counter()
        own_refused: collections.Counter = collections.Counter()
        refused: collections.Counter = collections.Counter()
        accepted_by: Dict[str, int] = collections.Counter()
        for seq, digest in stored.items():
            judged = by_seq.get(seq, [])
            if not judged:
                counts["unjudged"] += 1
                continue
            outcomes = {(v["accepted"], v["reason"], v["account"]) for v in judged}
            counts["judged"] += 1
            if len(judged) > 1:
                counts["judged_twice_same" if len(outcomes) == 1 else "judged_twice_different"] += 1
            origin = origin_of(digest)
            for accepted, reason, account in outcomes:
                if not accepted:
                    (own_refused if origin is not None else refused)[reason] += 1
                elif origin is None:
                    counts["forged_accepted"] += 1
                elif account != origin.owner:
                    counts["foreign_accepted"] += 1
                else:
                    counts["own_accepted"] += 1
                    accepted_by[account] += 1
        missing = witnessed - set(stored.values())
        return {
            "workers": self.workers_wanted, "partitions": self.partitions, "nats_nodes": 3,
            "at_broker": len(witnessed), "stored": len(stored), "not_stored": len(missing),
            "judged": counts["judged"], "unjudged": counts["unjudged"], "lost": len(missing) + counts["unjudged"],
            "judged_twice_same": counts["judged_twice_same"],
            "judged_twice_different": counts["judged_twice_different"],
            "own_accepted": counts["own_accepted"], "foreign_accepted": counts["foreign_accepted"],
            "forged_accepted": counts["forged_accepted"],
            "own_refused": dict(sorted(own_refused.items())), "refused": dict(sorted(refused.items())),
            "accounts_recorded": len(accepted_by), "grants_carried": self.carried,
            "grants_carry_retries": self.carry_retries, "grants_not_carried": self.carry_failed,
            "recorded_files": sum(1 for _ in self.recording.rglob("*.h264")) if self.recording.exists() else 0,
        }

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._nc is not None:
            try:
                self._call(self._nc.close(), 10.0)
            except Exception:  # noqa: BLE001 - closing what the cluster may have closed
                pass
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if self.cluster is not None:
            self.cluster.close()
        shutil.rmtree(self.dir, ignore_errors=True)
