#!/usr/bin/env python3
"""Tagging throughput on emulated ARM, as a ratio to raw SHA-256 in the same emulation.

    python3 tools/bench_arm.py [--arch armhf] [--rounds N] [--size BYTES] [--json]

The core is installed in the camera image from the flashable bundle
(tools/bundle.py), exactly as the QEMU tests do, and a ~1 MB segment of real
x264 H.264 (an IDR and the pictures after it) is tagged inside the guest:

* ``tag, units given``: ``Tagger.tag_units`` over NAL units an encoder API
  already delimits (digest + MAC + SEI);
* ``tag, Annex-B scan``: ``annexb_units`` then ``tag_units`` (bytes from a pipe);
* ``tag + tagged output``: scan, tag and emit the tagged Annex-B segment
  (``tag_annexb``, one more copy of the segment).

Each is timed against ``hashlib.sha256(segment).digest()`` in the same guest
process: best of interleaved rounds, ratio = SHA-256 time / tagging time (1.0
means tagging costs exactly one hash pass). Absolute MB/s under qemu-user
mean little (they depend on the host CPU and QEMU's translation); the ratios
say how close the core is to the hash floor on that CPU architecture.
Every row runs twice: with the interpreter's ``hmac`` (OpenSSL) and with
``hmac`` made unimportable (the core's pure path, as on MicroPython or a
python3-minimal-only camera).

``--agent`` adds the agent's peak memory (VmHWM of the agent process in the
guest) while it tags and publishes a real clip to a Mosquitto broker on the
host: see tests/test_qemu_agent.py, which measures the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GUEST_BENCH = r'''
import hashlib, json, platform, sys, time
if sys.argv[2] == "pure":
    sys.modules["hmac"] = None
from segbind_core.nal import annexb_units
from segbind_core.tagger import Tagger
rounds = int(sys.argv[1])
data = open("/mnt/bench/segment.h264", "rb").read()
units = annexb_units(data)
tagger = Tagger(b"k" * 32, "acct-0001044", "cam-00f3a9c2", 1, 1)
jobs = {
    "sha256": lambda: hashlib.sha256(data).digest(),
    "tag_units": lambda: tagger.tag_units(data, units, 0),
    "scan_tag": lambda: tagger.tag_units(data, annexb_units(data), 0),
    "scan_tag_emit": lambda: tagger.tag_annexb(data, annexb_units(data), 0),
}
for job in jobs.values():  # warm up (QEMU translates each code path once)
    job()
best = {k: float("inf") for k in jobs}
for _ in range(rounds):  # interleaved: slow phases of a noisy host hit every job alike
    for name, job in jobs.items():
        t0 = time.perf_counter()
        job()
        best[name] = min(best[name], time.perf_counter() - t0)
try:
    import hmac
    path = "hmac"
except ImportError:
    path = "pure"
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                  "path": path, "bytes": len(data), "units": len(units), "best_s": best}))
'''

ROWS = (("tag_units", "tag, units given"), ("scan_tag", "tag, Annex-B scan"),
        ("scan_tag_emit", "tag + tagged output"))


def segment(size: int) -> bytes:
    """Whole NAL units of one real x264 segment, about ``size`` bytes."""
    from bench_core import segment_of_size  # tools/bench_core.py: the host benchmark's segment

    return segment_of_size(size)


def run_guest(arch: str, workdir: Path, rounds: int, mode: str) -> dict:
    from camera_guest import ci, install_bundle

    layer = workdir / f"layer-{arch}"
    if not (layer / "upper" / "opt" / "segbind").is_dir():
        install_bundle(arch, layer)  # the bundle, built once, extracted by the guest's tar
    res = ci.run_in_image(arch, ["python3", "-c", GUEST_BENCH, str(rounds), mode],
                          binds=[(str(workdir / "bench"), "/mnt/bench", True)],
                          env={"PYTHONPATH": "/opt/segbind/lib", "PYTHONDONTWRITEBYTECODE": "1"},
                          capture=True, timeout=1800, overlay=layer)
    if res.returncode != 0:
        raise SystemExit(f"bench_arm: guest failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout)


def agent_peak_memory(arch: str, work: Path) -> dict:
    """VmHWM of the bundle's agent in the image while it tags and publishes 720p video."""
    from camera_guest import GuestCamera, bare_python_peak_kb

    from host_sim import clips
    from host_sim.broker import Broker
    from host_sim.cloud import Cloud
    from host_sim.transport import MqttTransport
    from segbind_core.segment import cut

    clip = clips.encode_pyav(frames=250, gop=50, width=1280, height=720, seed=5)
    sizes = [len(seg.data) for seg in cut(clip)]
    camera = "cam-bench"
    secret = os.urandom(32)
    with Broker() as broker:
        cloud = Cloud(MqttTransport(broker.host, broker.port, "bench-cloud")).start()
        cam = GuestCamera(arch, work / "agent", camera, secret, broker.host, broker.port)
        try:
            cloud.provision(camera, secret)
            cam.start()
            if not cloud.wait_status(camera, lambda s: s["state"] == "online", 120):
                raise SystemExit("bench_arm: the agent never came online: " + cam.log()[-500:])
            cloud.claim(camera, "alice", wait=120)
            cam.feed(clip, speed=1.0)  # real time, as the encoder delivers it
            done = cloud.wait_status(camera, lambda s: s.get("counts", {}).get(
                "segments_delivered") == len(sizes), 300)
            if not done:
                raise SystemExit("bench_arm: the agent did not deliver the clip: " + cam.log()[-500:])
            peak = cam.peak_memory_kb()
            cam.stop()
        finally:
            cam.close()
            cloud.stop()
    return {"vmhwm_kb": peak, "bare_python_kb": bare_python_peak_kb(arch),
            "segments": len(sizes), "max_segment_bytes": max(sizes),
            "clip": "1280x720 x264, 10 s at 25 fps, an IDR every 2 s"}


def ratios(result: dict) -> dict:
    base = result["best_s"]["sha256"]
    return {key: base / result["best_s"][key] for key, _ in ROWS}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_arm.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="armhf", choices=("armhf", "arm64"))
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best of)")
    p.add_argument("--size", type=int, default=1_000_000, help="segment size in bytes")
    p.add_argument("--agent", action="store_true",
                   help="also run the agent in the image and report its peak memory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.size < 10_000:
        p.error("--rounds must be >= 1 and --size >= 10000")
    work = Path(tempfile.mkdtemp(prefix="segbind-bench-arm-"))
    try:
        (work / "bench").mkdir()
        seg = segment(args.size)
        (work / "bench" / "segment.h264").write_bytes(seg)
        results = {mode: run_guest(args.arch, work, args.rounds, mode) for mode in ("hmac", "pure")}
        report = {"arch": args.arch, "machine": results["hmac"]["machine"],
                  "python": results["hmac"]["python"], "segment_bytes": len(seg),
                  "nal_units": results["hmac"]["units"], "rounds": args.rounds,
                  "sha256_MBps": {m: len(seg) / r["best_s"]["sha256"] / 1e6
                                  for m, r in results.items()},
                  "ratios": {m: ratios(r) for m, r in results.items()}}
        for mode, r in results.items():
            if r["path"] != mode:
                raise SystemExit(f"bench_arm: guest ran the {r['path']} path, asked for {mode}")
        if args.agent:
            report["agent"] = agent_peak_memory(args.arch, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    print(f"segbind tagging on {report['arch']} ({report['machine']}, CPython "
          f"{report['python']}, qemu-user), one {len(seg):,}-byte segment of real x264, "
          f"{report['nal_units']} NAL units, best of {args.rounds} interleaved rounds")
    print(f"raw hashlib.sha256 in the guest: {report['sha256_MBps']['hmac']:.1f} MB/s")
    print()
    print(f"{'':24}{'ratio to SHA-256':>18}{'ratio, no hmac':>16}")
    for key, label in ROWS:
        print(f"{label:24}{report['ratios']['hmac'][key]:>18.3f}"
              f"{report['ratios']['pure'][key]:>16.3f}")
    if args.agent:
        a = report["agent"]
        print()
        print(f"agent peak memory in the image (VmHWM, QEMU included): "
              f"{a['vmhwm_kb'] / 1024:.1f} MiB; idle python3 in the same image: "
              f"{a['bare_python_kb'] / 1024:.1f} MiB")
        print(f"  ({a['segments']} segments of {a['clip']}, up to "
              f"{a['max_segment_bytes']:,} bytes each, tagged and published to Mosquitto)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
