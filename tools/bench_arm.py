#!/usr/bin/env python3
"""The camera's costs on emulated ARM, with and without the ``hmac`` module; the agent's memory.

    python3 tools/bench_arm.py [--arch armhf] [--rounds N] [--size BYTES] [--agent] [--json]

The core is installed in the camera image from the flashable bundle
(tools/bundle.py), exactly as the QEMU tests do, and tools/bench_camera.py's
script runs inside the guest twice: with the interpreter's ``hmac`` (OpenSSL) and
with ``hmac`` made unimportable (the core's pure HMAC, as on MicroPython or a
python3-minimal-only camera). Per segment, over one segment of real x264 of about
``--size`` bytes, each figure is a ratio to ``hashlib.sha256`` over the same bytes
in the same guest process (best of interleaved rounds; 1.0 means the work costs
exactly one hash pass):

* ``tag, 1 slot``: ``Tagger.tag`` for the owner alone (digest, MAC, SEI, tagged copy);
* ``tag, 4 slots``: the owner and three shares;
* ``cut + tag, 4 slots``: the agent's ``Segmenter`` (start-code scan, access unit
  delimiters) then ``Tagger.tag``.

Per pairing: ``AgentCore.pair`` taking an offer and ``AgentCore.command`` taking a
rotation to three shares, in milliseconds. Absolute figures under qemu-user mean
little (they depend on the host CPU and QEMU's translation); the ratios say how
close the camera is to the hash floor on that CPU architecture. tools/bench_camera.py
gives the same figures for real MicroPython beside the armhf image.

``--agent`` adds the agent's peak memory (VmHWM of the agent process in the guest)
while it tags and publishes a real clip to a Mosquitto broker on the host, paired
out of band by an owner's app: see tests/device/test_qemu_agent.py, which measures
the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import bench_camera  # a sibling in tools/: the script the guest runs, its inputs and runner

ROOT = Path(__file__).resolve().parent.parent

ROWS = (("tag_1_slot", "tag, 1 slot"), ("tag_4_slots", "tag, 4 slots"),
        ("cut_and_tag_4_slots", "cut + tag, 4 slots"))


def agent_peak_memory(arch: str, work: Path) -> dict:
    """VmHWM of the bundle's agent in the image while it tags and publishes 720p video."""
    from camera_guest import GuestCamera, bare_python_peak_kb

    from host_sim import clips
    from host_sim.app import OwnerApp
    from host_sim.broker import Broker
    from host_sim.cloud import Cloud, RoutingStore
    from host_sim.transport import MqttTransport
    from segbind.owner import Owner
    from segbind_core import control
    from segbind_core.segment import cut

    clip = clips.encode_pyav(frames=250, gop=50, width=1280, height=720, seed=5)
    sizes = [len(seg.data) for seg in cut(clip)]
    camera = "cam-bench"
    with Broker() as broker:
        cloud = Cloud(MqttTransport(broker.host, broker.port, "bench-cloud"),
                      RoutingStore(str(work / "routing.json"))).start()
        app = OwnerApp(MqttTransport(broker.host, broker.port, "bench-app"),
                       Owner.new("alice", test_only=True)).start()
        cam = GuestCamera(arch, work / "agent", camera, os.urandom(32), broker.host, broker.port)
        try:
            cam.start()
            if not cloud.wait_for(lambda: cloud.status.get(camera, {}).get("state") == "online", 120):
                raise SystemExit("bench_arm: the agent never came online: " + cam.log()[-500:])
            app.pair(camera, cam.handover)  # through the camera's lens, never the broker
            if not app.wait_for(lambda a: (a.result_for(camera, control.PAIR) or control.Result(
                    "", "", 0, 0, "")).status == control.OK, 120):
                raise SystemExit("bench_arm: the camera did not take the pairing: " + cam.log()[-500:])
            cam.feed(clip, speed=1.0)  # real time, as the encoder delivers it
            done = cloud.wait_for(lambda: cloud.status.get(camera, {}).get("counts", {}).get(
                "segments_delivered") == len(sizes), 300)
            if not done:
                raise SystemExit("bench_arm: the agent did not deliver the clip: " + cam.log()[-500:])
            peak = cam.peak_memory_kb()
            cam.stop()
        finally:
            cam.close()
            app.transport.stop()
            cloud.stop()
    return {"vmhwm_kb": peak, "bare_python_kb": bare_python_peak_kb(arch),
            "segments": len(sizes), "max_segment_bytes": max(sizes),
            "clip": "1280x720 x264, 10 s at 25 fps, an IDR every 2 s"}


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
        inputs = bench_camera.write_inputs(work / "bench", [args.size])
        layer = work / ("layer-" + args.arch)  # one install of the bundle for both runs
        results = {mode: bench_camera.run_arm(args.arch, inputs, args.rounds, mode, layer)
                   for mode in ("hmac", "pure")}
        segment = results["hmac"]["segments"][0]
        report = {"arch": args.arch, "machine": results["hmac"]["machine"],
                  "python": results["hmac"]["version"], "segment_bytes": segment["bytes"],
                  "nal_units": segment["units"], "rounds": args.rounds,
                  "sha256_MBps": {m: r["segments"][0]["bytes"] / r["segments"][0]["sha256_us"]
                                  for m, r in results.items()},
                  "ratios": {m: {key: bench_camera.derived(r)["segments"][0][key] for key, _ in ROWS}
                             for m, r in results.items()},
                  "pairing_ms": {m: {"pair": r["pair_us"] / 1000, "rotate_3_shares": r["rotate_3_shares_us"] / 1000}
                                 for m, r in results.items()},
                  "tag_bytes": results["hmac"]["tag_bytes"]}
        if args.agent:
            report["agent"] = agent_peak_memory(args.arch, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    print(f"segbind on {report['arch']} ({report['machine']}, CPython {report['python']}, qemu-user), "
          f"one {report['segment_bytes']:,}-byte segment of real x264, {report['nal_units']} NAL units, "
          f"best of {args.rounds} interleaved rounds")
    print(f"raw hashlib.sha256 in the guest: {report['sha256_MBps']['hmac']:.1f} MB/s")
    print()
    print(f"{'':24}{'ratio to SHA-256':>18}{'ratio, no hmac':>16}")
    for key, label in ROWS:
        print(f"{label:24}{report['ratios']['hmac'][key]:>18.3f}{report['ratios']['pure'][key]:>16.3f}")
    for key, label in (("pair", "take a pairing offer"), ("rotate_3_shares", "rotate to 3 shares")):
        print(f"{label:24}{report['pairing_ms']['hmac'][key]:>15.2f} ms{report['pairing_ms']['pure'][key]:>13.2f} ms")
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
    for where in (ROOT, ROOT / "firmware", ROOT / "src"):  # run from a checkout, as the tests do
        sys.path.insert(0, str(where))
    sys.exit(main())
