#!/usr/bin/env python3
"""The verifying service on NATS JetStream against issue 21's targets, each a ratio or a figure
measured in this run (never a timed test): a local 3-node nats-server cluster, `segbind serve
worker` processes, and a synthetic fleet of cameras whose segments are real x264 video tagged and
encrypted by each camera's own core tagger (tools/service_load.py), made first, then published.

  engine cost     CPU per verified segment, workers and servers together, over the single-process
                  verifier's (verify + decrypt, the same segments, this process): <= 2.0, and flat
                  (growing by 25 % at most) from 1,044 to 13,000 cameras; the same ratio with 720p segments
                  (a camera's real size, fewer cameras: every segment is held in memory first),
                  and the workers' share alone (what the servers cost is the rest)
  scaling         CPU per segment with 1, 2 and 4 workers (flat: at most 25 % above 1 worker's);
                  replaying a stored stream, throughput with 2 workers over 1: >= 1.5 ("flat" is
                  judged as not growing by more than 25 %: a lower cost per segment is no failure)
  memory          bytes per camera a worker holds at 13,000 cameras (printed), and a stream's
                  bound at a full replay window
  recovery        after kill -9 of a worker, the time until each partition it held is judged
                  again (<= 10 s), with the default 3 s lease

CPU is read from /proc (user + system) of the workers and the servers over the segments that
follow a first round per camera (which reads each camera's record and makes its verifier: a
takeover's cost, not a segment's). The load generator's own CPU is not counted: it stands for the
cameras and the MQTT bridge.

    python3 tools/bench_service.py             # the targets (a few minutes on 2 cores)
    python3 tools/bench_service.py --quick     # tiny sizes: every row, no meaning
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from service_faults import Deployment, cpu_seconds, rss_bytes, until  # noqa: E402
from service_load import Fleet  # noqa: E402

from host_sim.nats_cluster import NatsCluster  # noqa: E402
from segbind import Keyring, StreamVerifier  # noqa: E402
from segbind.keyring import Binding  # noqa: E402
from segbind.service.names import partition_of  # noqa: E402
from segbind.verifier import REPLAY_WINDOW  # noqa: E402

PARTITIONS = 16


def keyrings(fleet: Fleet) -> Dict[str, Keyring]:
    start, end = fleet.t0_ms - 3_600_000, fleet.t0_ms + 7_200_000
    return {c.camera: Keyring(Binding.periods_of_epoch(fleet.epochs[c.camera], start, end)) for c in fleet.cameras}


def baseline(fleet: Fleet) -> float:
    """CPU seconds per segment of one process verifying and decrypting the same segments, a
    verifier per camera (as a worker keeps them), after a first round per camera."""
    rings = keyrings(fleet)
    verifiers = {c.camera: StreamVerifier(rings[c.camera], camera=c.camera, owner=c.owner) for c in fleet.cameras}
    order = fleet.order()
    first = len(fleet.cameras)
    for cam, k in order[:first]:
        v = verifiers[cam.camera]
        v.verify(cam.segments[k])
        _ = v.verified
    gc.collect()
    t = time.process_time()
    for cam, k in order[first:]:
        v = verifiers[cam.camera]
        if v.verify(cam.segments[k]).accepted:
            _ = v.verified
    return (time.process_time() - t) / max(1, len(order) - first)


class Run:
    """A deployment with N workers on the cluster, measured."""

    def __init__(self, cluster: NatsCluster, base: Path, name: str, fleet: Fleet, workers: int,
                 lease_s: float = 3.0) -> None:
        self.cluster = cluster
        self.dep = Deployment(cluster, name, base / name, fleet, PARTITIONS, lease_s)
        self.workers = [self.dep.worker() for _ in range(workers)]
        until(lambda: self.settled(), 60, "the partitions shared among %d workers" % workers, step=0.2)

    def settled(self) -> bool:
        held = [w.partitions() for w in self.workers]
        share = PARTITIONS // len(self.workers)
        return sorted(p for h in held for p in h) == list(range(PARTITIONS)) and all(len(h) >= share for h in held)

    def cpu(self) -> Tuple[float, float]:
        return sum(w.cpu() for w in self.workers), sum(cpu_seconds(pid) for pid in self.cluster.pids())

    def verdict_count(self) -> int:
        async def count(nc: Any) -> int:
            info = await nc.jetstream(timeout=10.0).stream_info(self.dep.names.verdict_stream)
            return int(info.state.messages)

        return int(self.dep.run(count))

    def wait_verdicts(self, n: int, timeout: float = 600.0) -> None:
        until(lambda: self.verdict_count() >= n, timeout, "%d verdicts" % n, step=0.1)

    def publish(self, rounds: Optional[range] = None) -> int:
        items = self.dep.fleet.order(rounds)
        self.dep.run(lambda nc: self.dep.fleet.publish(nc, self.dep.names, PARTITIONS, items, window=4000))
        return len(items)

    def close(self) -> None:
        self.dep.close()

        async def drop(nc: Any) -> None:
            js = nc.jetstream(timeout=30.0)
            names = self.dep.names
            for stream in (names.seg_stream, names.verdict_stream, names.grants_stream,
                           "KV_" + names.state_bucket, "KV_" + names.lease_bucket):
                try:
                    await js.delete_stream(stream)
                except Exception:
                    pass

        self.dep.run(drop)


def steady(cluster: NatsCluster, base: Path, name: str, fleet: Fleet, workers: int) -> Dict[str, float]:
    """CPU per segment over every round after the first, and the workers' memory."""
    run = Run(cluster, base, name, fleet, workers)
    try:
        rss_ready = [rss_bytes(w.pid) for w in run.workers]
        cameras = len(fleet.cameras)
        rounds = len(fleet.cameras[0].segments)
        run.publish(range(0, 1))
        run.wait_verdicts(cameras)
        w0, s0 = run.cpu()
        t0 = time.monotonic()
        count = run.publish(range(1, rounds))
        run.wait_verdicts(cameras * rounds)
        wall = time.monotonic() - t0
        w1, s1 = run.cpu()
        until(lambda: sum(w.count("judged") for w in run.workers) >= cameras * rounds, 30,
              "the workers' statistics", step=0.2)
        streams = [int(w.stats().get("streams", 0)) for w in run.workers]
        rss_end = [rss_bytes(w.pid) for w in run.workers]
        per_camera = [(e - r) / s for e, r, s in zip(rss_end, rss_ready, streams) if s]
        return {"segments": count, "wall": wall, "workers_cpu": (w1 - w0) / count, "servers_cpu": (s1 - s0) / count,
                "per_segment": ((w1 - w0) + (s1 - s0)) / count, "rss_ready": max(rss_ready), "rss_end": max(rss_end),
                "bytes_per_camera": max(per_camera) if per_camera else 0.0, "streams": max(streams) if streams else 0}
    finally:
        run.close()


def replay(cluster: NatsCluster, base: Path, name: str, fleet: Fleet, workers: int) -> float:
    """Segments per second judged from a stored stream: the workers settle, stop (SIGSTOP), the
    whole fleet's segments are stored, the workers go on (SIGCONT) together."""
    run = Run(cluster, base, name, fleet, workers, lease_s=120.0)
    try:
        for w in run.workers:
            os.kill(w.pid, signal.SIGSTOP)
        count = run.publish()
        t0 = time.monotonic()
        for w in run.workers:
            os.kill(w.pid, signal.SIGCONT)
        run.wait_verdicts(count)
        return count / (time.monotonic() - t0)
    finally:
        for w in run.workers:
            w.resume()
        run.close()


def recovery(cluster: NatsCluster, base: Path, fleet: Fleet, rounds_before: int = 4, pace_s: float = 1.0) -> float:
    """With the default lease: cameras publish a round every ``pace_s``; a worker is killed
    (SIGKILL); the longest time, over the partitions it held, from the kill to the first verdict
    another worker gave there."""
    run = Run(cluster, base, "recovery", fleet, 2, lease_s=3.0)
    try:
        victim = run.workers[0]
        used = {partition_of(c.camera, PARTITIONS) for c in fleet.cameras}
        held = set(victim.partitions()) & used
        rounds = len(fleet.cameras[0].segments)
        for k in range(rounds_before):
            run.publish(range(k, k + 1))
            time.sleep(pace_s)
        run.wait_verdicts(len(fleet.cameras) * rounds_before)
        victim.kill()
        killed = time.time()
        for k in range(rounds_before, rounds):
            run.publish(range(k, k + 1))
            time.sleep(pace_s)
        run.wait_verdicts(len(fleet.cameras) * rounds)

        async def first_after(nc: Any) -> Dict[int, float]:
            import json

            from segbind.service.admin import read_stream
            out: Dict[int, float] = {}
            for msg in await read_stream(nc.jetstream(timeout=30.0), run.dep.names.verdict_stream,
                                         run.dep.names.prefix + ".>"):
                v = json.loads(msg.data)
                p = partition_of(v["camera"], PARTITIONS)
                at = msg.metadata.timestamp.timestamp()
                if p in held and v["worker"] != victim.name and at > killed:
                    out[p] = min(out.get(p, at), at)
            return out

        firsts = run.dep.run(first_after)
        missing = held - set(firsts)
        if missing:
            return float("inf")
        return max(at - killed for at in firsts.values())
    finally:
        run.close()


def window_bound(fleet: Fleet, cameras: int = 40) -> float:
    """Bytes a worker holds per stream at a full replay window (the most a stream keeps: the
    window's entries, twice over before it forgets the older half), measured in this process."""
    rings = keyrings(fleet)
    chosen = fleet.cameras[:cameras]
    from service_load import raw_segments

    from segbind_core.tagger import Tagger

    raws = raw_segments()
    streams = []
    for cam in chosen:
        epoch = fleet.epochs[cam.camera]
        tagger = Tagger(epoch, cam.stream_id + 10)
        segs = [tagger.tag(raws[k % len(raws)].data, raws[k % len(raws)].units, fleet.t0_ms + 200 * k,
                           raws[k % len(raws)].duration_ms, raws[k % len(raws)].pictures, False)[0]
                for k in range(2 * REPLAY_WINDOW)]
        streams.append((cam, segs))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    verifiers = []
    for cam, segs in streams:
        v = StreamVerifier(rings[cam.camera], camera=cam.camera, owner=cam.owner)
        for s in segs:
            v.verify(s)
        verifiers.append(v)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(chosen)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="segbind's verifying service against issue 21's targets")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prints every row, measures nothing")
    parser.add_argument("--small", type=int, default=1044, help="cameras in the small fleet (default 1,044)")
    parser.add_argument("--large", type=int, default=13000, help="cameras in the large fleet (default 13,000)")
    parser.add_argument("--segments", type=int, default=6, help="segments per camera (default 6)")
    parser.add_argument("--hd", type=int, default=150, help="cameras in the 720p fleet (default 150)")
    parser.add_argument("--dir", help="keep the cluster and the runs here (default: a temporary directory, "
                        "removed at the end)")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large, args.segments, args.hd = 24, 60, 3, 6
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segbind-bench-service-"))
    try:
        return bench(args, base)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


def bench(args: argparse.Namespace, base: Path) -> int:
    replay_cameras = max(args.small, 2000) if not args.quick else 40
    t_start = time.monotonic()
    small = Fleet(args.small, args.segments)
    large = Fleet(args.large, args.segments)
    replay_fleet = Fleet(replay_cameras, 6 if not args.quick else 3)
    recovery_fleet = Fleet(args.small if not args.quick else 24, 12 if not args.quick else 7)
    hd = Fleet(args.hd, 4 if not args.quick else 3, size="720p")
    print("fleets made in %.0f s: %d and %d cameras, %d segments each (%.0f bytes per segment, real x264, "
          "tagged and encrypted)" % (time.monotonic() - t_start, args.small, args.large, args.segments,
                                     small.segment_bytes / small.segment_count), flush=True)
    base_cpu = baseline(small)
    base_large = baseline(large)
    base_hd = baseline(hd)
    print("single-process verifier (verify + decrypt): %.1f us per segment at %d cameras, %.1f us at %d; "
          "%.1f us per 720p segment (%.0f bytes)" % (base_cpu * 1e6, args.small, base_large * 1e6, args.large,
                                                     base_hd * 1e6, hd.segment_bytes / hd.segment_count),
          flush=True)
    rows: List[Tuple[str, str, str, str]] = []
    with NatsCluster(str(base / "nats")) as cluster:
        by_workers: Dict[int, Dict[str, float]] = {}
        for n in (1, 2, 4):
            by_workers[n] = steady(cluster, base, "small-w%d" % n, small, n)
            r = by_workers[n]
            print("  %d cameras, %d worker(s): %.0f us per segment (workers %.0f, servers %.0f), %.0f segments/s"
                  % (args.small, n, r["per_segment"] * 1e6, r["workers_cpu"] * 1e6, r["servers_cpu"] * 1e6,
                     r["segments"] / r["wall"]), flush=True)
        big = steady(cluster, base, "large-w2", large, 2)
        print("  %d cameras, 2 workers: %.0f us per segment (workers %.0f, servers %.0f), %.0f segments/s"
              % (args.large, big["per_segment"] * 1e6, big["workers_cpu"] * 1e6, big["servers_cpu"] * 1e6,
                 big["segments"] / big["wall"]), flush=True)
        hd_run = steady(cluster, base, "hd-w2", hd, 2)
        print("  %d cameras of 720p, 2 workers: %.0f us per segment (workers %.0f, servers %.0f), %.0f segments/s"
              % (args.hd, hd_run["per_segment"] * 1e6, hd_run["workers_cpu"] * 1e6, hd_run["servers_cpu"] * 1e6,
                 hd_run["segments"] / hd_run["wall"]), flush=True)
        one = replay(cluster, base, "replay-w1", replay_fleet, 1)
        two = replay(cluster, base, "replay-w2", replay_fleet, 2)
        print("  replay of %d stored segments: %.0f segments/s with 1 worker, %.0f with 2"
              % (replay_fleet.segment_count, one, two), flush=True)
        recovered = recovery(cluster, base, recovery_fleet, rounds_before=3 if args.quick else 4,
                             pace_s=0.5 if args.quick else 1.0)
    bound = window_bound(small, 10 if args.quick else 40)

    mid = by_workers[2]
    cost_small = mid["per_segment"] / base_cpu
    cost_large = big["per_segment"] / base_large
    flat_cams = big["per_segment"] / mid["per_segment"]
    rows.append(("engine CPU per segment / single-process verifier's, %d cameras" % args.small,
                 "%.2f" % cost_small, "<=2.0", verdict(cost_small <= 2.0)))
    rows.append(("engine CPU per segment / single-process verifier's, %d cameras" % args.large,
                 "%.2f" % cost_large, "<=2.0", verdict(cost_large <= 2.0)))
    cost_hd = hd_run["per_segment"] / base_hd
    rows.append(("engine CPU per segment / single-process verifier's, 720p, %d cameras" % args.hd,
                 "%.2f" % cost_hd, "<=2.0", verdict(cost_hd <= 2.0)))
    rows.append(("  of which the workers' (%d / %d / 720p cameras)" % (args.small, args.large),
                 "%.1f/%.1f/%.1f" % (mid["workers_cpu"] / base_cpu, big["workers_cpu"] / base_large,
                                     hd_run["workers_cpu"] / base_hd), "", "printed"))
    rows.append(("CPU per segment, %d cameras / %d cameras" % (args.large, args.small),
                 "%.2f" % flat_cams, "<=1.25", verdict(flat_cams <= 1.25)))
    for n in (2, 4):
        ratio = by_workers[n]["per_segment"] / by_workers[1]["per_segment"]
        rows.append(("CPU per segment, %d workers / 1 worker (%d cameras)" % (n, args.small), "%.2f" % ratio,
                     "<=1.25", verdict(ratio <= 1.25)))
    rows.append(("replay throughput, 2 workers / 1 worker (%d segments)" % replay_fleet.segment_count,
                 "%.2f" % (two / one), ">=1.5", verdict(two / one >= 1.5)))
    rows.append(("worker memory per camera at %d cameras (bytes, %d segments each)" % (args.large, args.segments),
                 "%.0f" % big["bytes_per_camera"], "", "printed"))
    rows.append(("a stream at a full replay window (bytes, in process)", "%.0f" % bound, "", "printed"))
    rows.append(("worker RSS holding %d cameras (MiB)" % big["streams"], "%.0f" % (big["rss_end"] / 2 ** 20), "",
                 "printed"))
    rows.append(("recovery after kill -9 of a worker: its partitions judged again (s)",
                 "%.1f" % recovered, "<=10", verdict(recovered <= 10.0)))
    print()
    print("%-72s %9s %7s" % ("figure (this run)", "value", "target"))
    for name, value, target, judged in rows:
        print("%-72s %9s %7s  %s" % (name, value, target, judged))
    print("\n(%.0f s in all%s)" % (time.monotonic() - t_start, "; cluster and runs in %s" % base if args.dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
