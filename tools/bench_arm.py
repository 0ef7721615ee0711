#!/usr/bin/env python3
"""The camera's costs on emulated ARM, with and without the ``hmac`` module; the agent's memory.

    python3 tools/bench_arm.py [--arch armhf] [--rounds N] [--size BYTES] [--agent] [--aes-only] [--json]

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

AES-128-CTR (``segbind_core.aes``: 'cenc' encryption of slice data) in the same image, with
Debian's ``python3-cryptography`` (OpenSSL; the image's recipe has it) and with the pure AES a
camera without it falls back to, over a real 4-second 720p segment (100 pictures, about 1.1 MB,
tools/bench_core.py's): in MB/s, as a ratio to SHA-256 of the same bytes, and as a multiple of
a 4 Mbit/s camera's real-time rate (500 KB/s); over the whole segment, with a keystream a
picture and a call a slice, and with one keystream whose pictures' IVs come from
``next_counter_block``. "tag + encrypt" is ``Tagger.tag`` then AES-CTR over the segment, both
measured there: the ceiling of the camera's rate if encrypting costs exactly the primitive (the
format's target: at least 4 times real time). The guest checks the primitive against NIST SP
800-38A F.5.1 on each backend before timing it. ``--aes-only`` runs only these rows.

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


CAMERA_RATE = 500_000  # bytes a second: a 4 Mbit/s camera in real time

# Runs in the image's python3, the core installed from the bundle: argv SEGMENT ROUNDS.
AES_GUEST = r'''
import hashlib, json, sys, time
from segbind_core import aes
from segbind_core.keys import Epoch
from segbind_core.nal import annexb_units
from segbind_core.tagger import Tagger

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")  # NIST SP 800-38A F.5.1
IV = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
PLAIN = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                      "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
CIPHER = ("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
          "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee")
for backend in aes.BACKENDS:
    stream = aes.CtrKey(KEY, backend).keystream(IV)
    if (stream.xor(PLAIN[:21]) + stream.xor(PLAIN[21:])).hex() != CIPHER:
        raise SystemExit("AES-CTR on %s does not give SP 800-38A F.5.1" % backend)

path, rounds = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as f:
    data = f.read()
out = bytearray(len(data))
source, target = memoryview(data), memoryview(out)
units = annexb_units(data)
pictures = []  # the coded slices (VCL NAL units) of each picture; a delimiter opens a picture
for s, e in units:
    kind = data[s] & 0x1F
    if kind == 9:
        pictures.append([])
    elif 1 <= kind <= 5:
        pictures[-1].append((s, e))
key = aes.CtrKey(bytes(range(16)))
pure_key = aes.CtrKey(bytes(range(16)), "pure")
tagger = Tagger(Epoch.of_pairing(bytes(32), "acct-0001044", "cam-00f3a9c2", 1,
                                 ["acct-0002001", "acct-0002002", "acct-0002003"]), 1)
PURE_BYTES = 16384


def per_picture():
    for picture in pictures:
        stream = key.keystream(IV)
        for s, e in picture:
            stream.xor_into(source[s:e], target[s:e])


def one_keystream():
    stream = key.keystream(IV)
    for picture in pictures:
        stream.next_counter_block()
        for s, e in picture:
            stream.xor_into(source[s:e], target[s:e])


jobs = {"sha256": lambda: hashlib.sha256(data).digest(),
        "ctr": lambda: key.keystream(IV).xor_into(data, out),
        "ctr_per_picture": per_picture, "ctr_one_keystream": one_keystream,
        "tag": lambda: tagger.tag(data, len(units), 1, 4000, 100),
        "pure": lambda: pure_key.keystream(IV).xor(source[:PURE_BYTES])}
best = dict.fromkeys(jobs, float("inf"))
for r in range(rounds + 1):  # interleaved; the first round warms up (QEMU translates each path once)
    for name, job in jobs.items():
        if name == "pure" and r > 1:
            continue  # seconds a call: two are enough
        t = time.perf_counter()
        job()
        if r:
            best[name] = min(best[name], time.perf_counter() - t)
import cryptography, platform
print("RESULT " + json.dumps({"seconds": best, "bytes": len(data), "pure_bytes": PURE_BYTES,
                              "pictures": len(pictures), "slices": sum(len(p) for p in pictures),
                              "backend": aes.BACKEND, "cryptography": cryptography.__version__,
                              "machine": platform.machine(), "python": platform.python_version()}))
'''


def aes_in_image(arch: str, rounds: int, work: Path, layer: Path) -> dict:
    """AES_GUEST in the image (the bundle installed in ``layer``), on bench_core's 4-second segment."""
    from bench_core import four_second_segment
    from camera_guest import GUEST_ENV, ci, install_bundle

    segment, _units = four_second_segment()
    (work / "aes").mkdir()
    (work / "aes" / "segment.h264").write_bytes(segment)
    if not (layer / "upper" / "opt" / "segbind").is_dir():
        install_bundle(arch, layer)
    res = ci.run_in_image(arch, ["python3", "-c", AES_GUEST, "/mnt/aes/segment.h264", str(rounds)],
                          binds=[(str(work / "aes"), "/mnt/aes", True)], env=GUEST_ENV, capture=True,
                          timeout=1800, overlay=layer)
    line = next((l for l in res.stdout.splitlines() if l.startswith("RESULT ")), None)
    if res.returncode or line is None:
        raise SystemExit("bench_arm: AES in the %s guest failed: %s" % (arch, res.stderr.strip()[-600:]))
    result = json.loads(line[len("RESULT "):])
    t, size = result["seconds"], result["bytes"]
    rate = {name: size / seconds for name, seconds in t.items()}
    rate["pure"] = result["pure_bytes"] / t["pure"]
    result["MBps"] = {name: r / 1e6 for name, r in rate.items()}
    result["ratio_to_sha256"] = {name: rate[name] / rate["sha256"] for name in rate}
    result["camera_rates"] = {name: r / CAMERA_RATE for name, r in rate.items()}
    for name in ("ctr", "ctr_per_picture", "ctr_one_keystream"):  # tag, then encrypt the same bytes
        result["camera_rates"]["tag+" + name] = size / (t["tag"] + t[name]) / CAMERA_RATE
    return result


AES_ROWS = (("sha256", "SHA-256"), ("ctr", "AES-CTR, the segment"),
            ("ctr_per_picture", "AES-CTR, a keystream a picture"), ("ctr_one_keystream", "AES-CTR, one keystream"),
            ("tag", "tag alone (4 slots)"), ("pure", "AES-CTR, the pure AES"))


def print_aes(a: dict, arch: str) -> None:
    print(f"AES-128-CTR on {arch} ({a['machine']}, CPython {a['python']}, cryptography {a['cryptography']}, "
          f"qemu-user): a real 4-second 720p segment, {a['bytes']:,} bytes, {a['pictures']} pictures, "
          f"{a['slices']} slices; x camera: multiples of a 4 Mbit/s camera's real time (500 KB/s)")
    print(f"{'':34}{'MB/s':>9}{'x SHA-256':>11}{'x camera':>10}")
    for key, label in AES_ROWS:
        print(f"{label:34}{a['MBps'][key]:>9.2f}{a['ratio_to_sha256'][key]:>11.3f}{a['camera_rates'][key]:>10.1f}")
    for key, label in (("tag+ctr", "tag + encrypt, the segment"), ("tag+ctr_per_picture", "  a keystream a picture"),
                       ("tag+ctr_one_keystream", "  one keystream")):
        x = a["camera_rates"][key]
        print(f"{label:34}{'':20}{x:>10.1f}  target >= 4: {'met' if x >= 4 else 'NOT met'}")


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
    p.add_argument("--aes-only", action="store_true", help="only the AES-CTR rows")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.size < 10_000:
        p.error("--rounds must be >= 1 and --size >= 10000")
    work = Path(tempfile.mkdtemp(prefix="segbind-bench-arm-"))
    if args.aes_only:
        try:
            aes = aes_in_image(args.arch, args.rounds, work, work / ("layer-" + args.arch))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.json:
            print(json.dumps({"arch": args.arch, "aes": aes}, indent=1, sort_keys=True))
        else:
            print_aes(aes, args.arch)
        return 0
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
        report["aes"] = aes_in_image(args.arch, args.rounds, work, layer)
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
    print()
    print_aes(report["aes"], report["arch"])
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
