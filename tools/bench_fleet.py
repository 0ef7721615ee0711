#!/usr/bin/env python3
"""The fleet's cost per camera at two fleet sizes, measured in one run: does it grow linearly?

    python3 tools/bench_fleet.py                       # 1,044 and 13,000 cameras x 60 s
    python3 tools/bench_fleet.py --small 200 --large 2000 --seconds 20

Each size runs in its own process (so its peak memory is its own), in-process
and in simulated time, after the clips are cached. It prints CPU seconds and
peak memory per camera at each size and their ratios, large over small,
against the targets: CPU per camera at most 1.25 times, memory per camera
flat (at most 1.25 times too; the interpreter and the clips are fixed costs,
measured as an empty run of the same process and taken out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Dict

CHILD = r"""
import json, resource, sys, time
from host_sim.fleet import FleetConfig, clip_templates, run_fleet
cameras, seconds = int(sys.argv[1]), int(sys.argv[2])
cfg = FleetConfig(cameras=cameras, seconds=seconds, seed=1, faults=("relay_cache_2020",))
# Encode (or load) the clips before measuring; the empty run loads those of a small fleet of
# both codecs, so that the fixed cost taken out holds the same clips.
clip_templates(cfg if cameras else FleetConfig(cameras=16, seconds=seconds, seed=1))
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0 = time.process_time()
if cameras:
    results, fleet = run_fleet(cfg)
    verified = results["performance"]["segments_verified"]
    foreign_on = results["results"]["on"]["foreign_shown"]
else:
    verified = foreign_on = 0
cpu = time.process_time() - cpu0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"cameras": cameras, "cpu_s": cpu, "base_kb": base_rss, "peak_kb": peak,
                  "verified": verified, "foreign_shown_on": foreign_on}))
"""


def measure(cameras: int, seconds: int) -> Dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cameras), str(seconds)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("fleet of %d cameras failed:\n%s" % (cameras, proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1044, help="cameras in the small fleet (1044)")
    parser.add_argument("--large", type=int, default=13000, help="cameras in the large fleet (13000)")
    parser.add_argument("--seconds", type=int, default=60, help="seconds of video per camera (60)")
    args = parser.parse_args(argv)
    empty = measure(0, args.seconds)
    rows = {}
    for n in (args.small, args.large):
        print("running %d cameras x %d s ..." % (n, args.seconds), file=sys.stderr, flush=True)
        rows[n] = measure(n, args.seconds)
    print("| cameras | CPU s | CPU ms per camera | peak MiB | KiB per camera | segments verified |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    per: Dict[int, Dict[str, float]] = {}
    for n, r in rows.items():
        cpu_per = r["cpu_s"] * 1000.0 / n
        mem_per = max(0.0, r["peak_kb"] - empty["peak_kb"]) / n
        per[n] = {"cpu": cpu_per, "mem": mem_per}
        print("| {:,} | {:.1f} | {:.2f} | {:.0f} | {:.1f} | {:,} |".format(
            n, r["cpu_s"], cpu_per, r["peak_kb"] / 1024.0, mem_per, r["verified"]))
        assert r["foreign_shown_on"] == 0, "a display showed a stranger's segment"
    cpu_ratio = per[args.large]["cpu"] / per[args.small]["cpu"]
    mem_ratio = per[args.large]["mem"] / per[args.small]["mem"] if per[args.small]["mem"] else 0.0
    print()
    print("CPU per camera, %d over %d cameras: %.2fx (target <= 1.25x): %s"
          % (args.large, args.small, cpu_ratio, "met" if cpu_ratio <= 1.25 else "NOT MET"))
    print("memory per camera, %d over %d cameras: %.2fx (target <= 1.25x, flat): %s"
          % (args.large, args.small, mem_ratio, "met" if mem_ratio <= 1.25 else "NOT MET"))
    return 0 if cpu_ratio <= 1.25 and mem_ratio <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
