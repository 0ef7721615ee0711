#!/usr/bin/env python3
"""Media benchmark: the readers on a 1080p stream, and on adversarial inputs.

    python3 tools/bench_media.py            # full run
    python3 tools/bench_media.py --quick    # smaller adversarial inputs

Every figure is a ratio against a baseline measured in the same run (CPU time, interleaved,
best round kept), or a ratio between two sizes of the same input:

- throughput: tagging a 1080p stream as it arrives (Segmenter + Tagger), and verifying it
  end to end through ``segbind.open`` (read, parse, hash, MAC) as Annex-B, MPEG-TS, MP4,
  fMP4 HLS and Matroska, against raw HMAC-SHA256 over the same file's bytes; for x264
  (H.264) and x265 (H.265); target 0.8 each, with the cost of each step per picture;
- linear time: a tag, then N access unit delimiters, then a tag (quadratic in N before
  format 2's readers), N tiny NAL units in one segment, in Annex-B and in an MP4 sample:
  time per input byte at 4N over that at N (1.0 is linear);
- bounded memory: peak resident memory of ``segbind verify`` on one 64 MiB segment of 4-byte
  NAL units, in Annex-B and in MP4, over the same command on a small segment (target: at most
  the segment plus 32 MiB); peak allocation per input byte while verifying a segment of tiny
  NAL units (Python's tracemalloc); peak resident memory of ``segbind verify -`` on a stream
  four times longer, tagged or holding no tag at all (1.0 is bounded).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from bench_core import best_ratio  # tools/ is on the path: one way of timing ratios

import segbind
from host_sim import clips
from segbind import Binding, Canonical, Epoch, Keyring, StreamVerifier
from segbind.read.split import MAX_SEGMENT_BYTES
from segbind.write import remux_annexb, write_hls
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger

CHUNK = 1 << 16
EPOCH = Epoch.of_pairing(hashlib.sha256(b"bench").digest(), "alice", "cam-1", 1, [])
T0 = 1_795_000_000_000
# The owner's keys for every period from an hour before T0 for two days (format 3: a key per period).
RING = Keyring(Binding.periods_of_epoch(EPOCH, T0 - 3_600_000, T0 + 48 * 3_600_000))
KEY = Binding.of_epoch(EPOCH, EPOCH.period_of(T0)).key


def best_time(run: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best


def tag_stream(video: bytes) -> bytes:
    """What a camera does: segment the encoder's bytes as they arrive, tag each segment."""
    segmenter = Segmenter(delimit=True)
    tagger: Optional[Tagger] = None
    out = bytearray()
    view = memoryview(video)
    at = T0
    for i in range(0, len(video) + CHUNK, CHUNK):  # the last round: the end of the stream
        closed = segmenter.push(view[i:i + CHUNK]) if i < len(video) else segmenter.finish()
        for s in closed:
            if isinstance(s, Segment):
                tagger = tagger or Tagger(EPOCH, T0, codec=s.codec)
                for part in tagger.tag_parts(s.data, s.units, at, s.duration_ms, s.pictures)[0]:
                    out += part
                at += s.duration_ms
    return bytes(out)


def hmac_over(data: bytes) -> Callable[[], None]:
    return lambda: hmac.digest(KEY, data, "sha256") and None


def _hls_bytes(folder: Path) -> bytes:
    """An fMP4 HLS stream's bytes as one stream: the init segment, then the media segments."""
    files = sorted(folder.iterdir())
    return b"".join(p.read_bytes() for p in [p for p in files if p.suffix == ".mp4"] +
                    [p for p in files if p.suffix == ".m4s"])


def verify_with_open(source: object, decrypt: bool = False) -> Callable[[], None]:
    """segbind.open end to end; with ``decrypt``, each accepted segment's plaintext too (what a
    decoder is handed: ``SegmentResult.data``)."""
    def run() -> None:
        with segbind.open(source, RING) as media:  # type: ignore[arg-type]
            for result in media:
                if not result.accepted:
                    raise SystemExit("benchmark segment refused (%s): the benchmark is broken" % result.reason)
                if decrypt and not result.data:
                    raise SystemExit("benchmark segment without plaintext: the benchmark is broken")
    return run


GOAL = 0.8  # issue 18: segbind.open end to end at least 0.8 of raw HMAC-SHA256 of the same bytes


def throughput(work: Path, rounds: int, hevc: bool = False) -> List[tuple]:
    """(what, ratio, goal, bytes) rows: tagging a 1080p stream, then verifying it end to end in
    every container users store it in."""
    if hevc:
        # 6.5 Mb/s: about as many bytes as the x264 stream (x265 packs these frames much tighter)
        video = clips.encode_pyav_h265(frames=250, width=1920, height=1080, fps=25, gop=50, seed=3,
                                       x265="bitrate=6500")
    else:
        video = clips.encode_pyav(frames=250, width=1920, height=1080, fps=25, gop=50, seed=3)
    name, ext, mark = ("h", ".h265", " (H.265)") if hevc else ("t", ".h264", " (H.264)")
    tagged = tag_stream(video)
    annexb = work / (name + ext)
    annexb.write_bytes(tagged)
    mp4 = work / (name + ".mp4")
    remux_annexb(str(annexb), str(mp4), "mp4")
    for other in (".ts", ".mkv"):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", str(work / (name + other))],
                       check=True)
    (work / (name + "hls")).mkdir()
    playlist = work / (name + "hls") / "t.m3u8"
    write_hls(str(annexb), str(playlist), "fmp4", 2.0)
    hls_bytes = _hls_bytes(playlist.parent)
    rows = [("tag as it arrives (Segmenter + Tagger)" + mark,
             best_ratio(hmac_over(video), lambda: tag_stream(video) and None, rounds), None, len(video))]
    for label, path, data in (("Annex-B", annexb, tagged), ("MPEG-TS", work / (name + ".ts"), None),
                              ("MP4", mp4, None), ("fMP4 HLS", playlist, hls_bytes),
                              ("Matroska", work / (name + ".mkv"), None)):
        data = path.read_bytes() if data is None else data
        rows.append(("verify %s, segbind.open end to end%s" % (label, mark),
                     best_ratio(hmac_over(data), verify_with_open(str(path)), rounds), GOAL, len(data)))
    for label, path, data in (("Annex-B", annexb, tagged), ("MPEG-TS", work / (name + ".ts"), None),
                              ("MP4", mp4, None), ("fMP4 HLS", playlist, hls_bytes),
                              ("Matroska", work / (name + ".mkv"), None)):
        data = path.read_bytes() if data is None else data
        rows.append(("verify + decrypt %s (SegmentResult.data)%s" % (label, mark),
                     best_ratio(hmac_over(data), verify_with_open(str(path), decrypt=True), rounds), None,
                     len(data)))
    return rows


def picture_costs(work: Path, rounds: int, hevc: bool = False) -> List[tuple]:
    """Where the time of each container goes, per picture (µs, best of rounds, interleaved): the
    reader alone (Annex-B: the splitter, which hashes as it reads), the reader and the cut (units,
    rules, picture order), the whole of segbind.open (hash, MAC, timing), and with each accepted
    segment decrypted; of the cut, the picture order alone (slice headers and picture order counts,
    ``read.cut.PictureClock``); and HMAC-SHA256 of the same bytes, the floor."""
    import io

    from segbind.read.annexb import annexb_segments
    from segbind.read.containers import reader
    from segbind.read.cut import PictureClock, SampleCutter
    from segbind.read.sniff import sniff

    name, ext = ("h", ".h265") if hevc else ("t", ".h264")
    hls = work / (name + "hls")
    hls_bytes = _hls_bytes(hls)
    rows = []
    for label, path, data in (("Annex-B", work / (name + ext), None), ("MPEG-TS", work / (name + ".ts"), None),
                              ("MP4", work / (name + ".mp4"), None), ("fMP4 HLS", hls / "t.m3u8", hls_bytes),
                              ("Matroska", work / (name + ".mkv"), None)):
        data = path.read_bytes() if data is None else data
        kind = sniff(data[:1024])
        protected = []
        with segbind.open(str(path), RING) as media:
            for result in media:
                protected.append(result.protected)
        codec = 2 if hevc else 1
        pictures, order = _pictures_of(protected, codec)

        if kind == "annexb":
            def read_only(data: bytes = data) -> None:
                for _ in annexb_segments(io.BytesIO(data)):
                    pass
            read_and_cut = read_only
        else:
            def read_only(kind: str = kind, data: bytes = data) -> None:
                for _ in reader(kind)(io.BytesIO(data), "x", True):
                    pass

            def read_and_cut(kind: str = kind, data: bytes = data) -> None:
                cutter = SampleCutter()
                for event in reader(kind)(io.BytesIO(data), "x", True):
                    cutter.feed(event)
                cutter.finish()

        def picture_order(order: List[Tuple[bool, memoryview]] = order, codec: int = codec) -> None:
            clock = PictureClock(codec)
            for is_set, unit in order:
                if is_set:
                    clock.parameter_set(unit)
                else:
                    clock.picture(unit)

        per = 1e6 / pictures
        steps = [lambda data=data: hmac.digest(KEY, data, "sha256") and None, read_only, read_and_cut,
                 verify_with_open(str(path)), verify_with_open(str(path), decrypt=True), picture_order]
        best = [float("inf")] * len(steps)
        for _ in range(rounds):
            for i, step in enumerate(steps):
                t0 = time.process_time()
                step()
                best[i] = min(best[i], time.process_time() - t0)
        hashing, read, cut, whole, decrypted, poc = (b * per for b in best)
        rows.append((label, pictures, read, cut, whole, decrypted, poc, hashing))
    return rows


def _pictures_of(segments: List[bytes], codec: int) -> Tuple[int, List[Tuple[bool, memoryview]]]:
    """(pictures, the parameter sets and each picture's first slice in decoding order) of Annex-B
    segments: what ``PictureClock`` reads."""
    from segbind_core import h264, h265

    syntax = h265 if codec == 2 else h264
    order = []
    pictures = 0
    for segment in segments:
        view = memoryview(segment)
        for s, e in annexb_units(segment):
            kind = syntax.nal_type(segment[s])
            if kind in ((32, 33, 34) if codec == 2 else (7, 8)):
                order.append((True, view[s:e]))
            elif syntax.is_vcl(kind) and segment[s + (2 if codec == 2 else 1)] & 0x80:
                order.append((False, view[s:e]))
                pictures += 1
    return pictures, order


# -- adversarial inputs ------------------------------------------------------------------------

def one_tagged_segment() -> bytes:
    video = clips.encode_pyav(frames=5, gop=5, seed=2)
    segmenter = Segmenter(delimit=True)
    segment = next(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))
    return Tagger(EPOCH, T0).tag(segment.data, segment.units, T0, segment.duration_ms, segment.pictures)[0]


def delimiters_between_tags(n: int, segment: bytes) -> bytes:
    """A tag, then ``n`` access unit delimiters, then a tag (and so on): the quadratic case."""
    return segment + (START_CODE + b"\x09\xf0") * n + segment


def tiny_units_annexb(n: int, segment: bytes) -> bytes:
    """One segment whose picture is followed by ``n`` two-byte filler units (3-byte start codes)."""
    return segment + b"\x00\x00\x01\x0c\x80" * n


def tiny_units_sample(n: int, segment: bytes) -> bytes:
    """The same as an MP4 sample: 4-byte lengths, ``n`` one-byte filler units."""
    units = []
    pos = segment.find(START_CODE)
    while pos >= 0:
        nxt = segment.find(START_CODE, pos + 4)
        units.append(segment[pos + 4:nxt if nxt >= 0 else len(segment)])
        pos = nxt
    return b"".join(len(u).to_bytes(4, "big") + u for u in units) + b"\x00\x00\x00\x01\x0c" * n


def judge_all(data: bytes) -> None:
    with segbind.open(data, RING) as media:
        for _ in media:
            pass


def linear(build: Callable[[int], bytes], run: Callable[[bytes], None], n: int, rounds: int) -> float:
    """Time per input byte at 4n over time per input byte at n (1.0: linear)."""
    small, large = build(n), build(4 * n)
    t_small = best_time(lambda: run(small), rounds) / len(small)
    t_large = best_time(lambda: run(large), rounds) / len(large)
    return t_large / t_small


def peak_per_byte(data: bytes, run: Callable[[bytes], None]) -> float:
    """Peak Python allocation while running, per input byte."""
    tracemalloc.start()
    try:
        run(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / len(data)


def tiny_units_segment(size: int) -> Tuple[bytes, List[List[bytes]]]:
    """One tagged segment of about ``size`` bytes whose first picture is followed by 4-byte filler
    NAL units (as the camera emits it, tagged over them: it verifies), and its access units."""
    video = clips.encode_pyav(frames=5, gop=5, seed=2)
    segmenter = Segmenter(delimit=True)
    segment = next(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))
    units = [segment.data[a:b] for a, b in annexb_units(segment.data)]
    first_picture = next(i for i, u in enumerate(units) if u[0] & 0x1F in (1, 5))
    fillers = max(0, (size - len(segment.data)) // 8)
    units = units[:first_picture + 1] + [b"\x0c\xff\xff\x80"] * fillers + units[first_picture + 1:]
    data = b"".join(START_CODE + u for u in units)
    tagged = Tagger(EPOCH, T0).tag(data, len(units), T0, segment.duration_ms, segment.pictures, True)[0]
    aus, current = [], []  # type: List[List[bytes]], List[bytes]
    for a, b in annexb_units(tagged):
        if tagged[a] & 0x1F == 9 and current:
            aus.append(current)
            current = []
        current.append(tagged[a:b])
    return tagged, aus + [current]


def peak_rss_kib(cmd: List[str]) -> int:
    out = subprocess.run([sys.executable, "-c", "import resource, subprocess, sys; subprocess.run(sys.argv[1:], "
                          "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
                          "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", *cmd],
                         check=True, capture_output=True).stdout
    return int(out.split()[0])


def segment_memory(work: Path, size: int) -> List[tuple]:
    """(container, extra MiB over the small segment's run, the segment's MiB) for ``segbind verify``
    of one segment of ``size`` bytes of 4-byte NAL units, as Annex-B and as (fragmented) MP4."""
    from segbind.web.fmp4 import fragment_of_samples, init_segment, segment_fields

    tagged, aus = tiny_units_segment(size)
    (work / "tiny.h264").write_bytes(tagged)
    init = init_segment(tagged[:8192] if len(aus[0]) < 64 else b"".join(START_CODE + u for u in aus[0][:5]))
    frag = fragment_of_samples(aus, 1, segment_fields(aus[0]))  # Common Encryption, as the tag says
    (work / "tiny.mp4").write_bytes(init + frag)
    small, _ = tiny_units_segment(1)
    (work / "small.h264").write_bytes(small)
    RING.save(work / "ring.json")
    verify = [sys.executable, "-m", "segbind.cli", "verify", "--keyring", str(work / "ring.json")]
    base = peak_rss_kib(verify + [str(work / "small.h264")])
    return [(label, (peak_rss_kib(verify + [str(work / name)]) - base) / 1024, len(tagged) / (1 << 20))
            for label, name in (("Annex-B", "tiny.h264"), ("MP4", "tiny.mp4"))]


PEAK = r"""
import resource, subprocess, sys, threading
copies, path, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
clip = open(path, "rb").read()
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(copies):
    proc.stdin.write(clip)
proc.stdin.close(); proc.wait()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def pipe_peak_kib(copies: int, clip: Path, cmd: List[str]) -> int:
    out = subprocess.run([sys.executable, "-c", PEAK, str(copies), str(clip), *cmd], check=True,
                         capture_output=True, env=dict(os.environ)).stdout
    return int(out.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller adversarial inputs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best is kept)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segbind-bench-"))
    try:
        print("throughput, 1080p, 10 s (ratio to raw HMAC-SHA256 over the same bytes, CPU time):")
        for name, ratio, goal, size in throughput(work, args.rounds) + throughput(work, args.rounds, hevc=True):
            met = "" if goal is None else ("met" if ratio >= goal else "NOT met")
            print("  %-61s %6.2f %6s %8s  (%.1f MB)" % (name, ratio, ">=%.1f" % goal if goal else "", met, size / 1e6))
        print("\nwhere the time goes, per picture (µs, CPU; HMAC-SHA256 of the same bytes is the floor):")
        for hevc in (False, True):
            print("  %-18s %8s %8s %10s %13s %10s %11s %7s" % (
                "H.265" if hevc else "H.264", "pictures", "reader", "reader+cut", "segbind.open", "+decrypt",
                "pic. order", "HMAC"))
            for label, pictures, read, cut, whole, decrypted, poc, hashing in picture_costs(work, args.rounds, hevc):
                print("  %-18s %8d %8.1f %10.1f %13.1f %10.1f %11.1f %7.1f" % (
                    label, pictures, read, cut, whole, decrypted, poc, hashing))

        print("\nmemory: `segbind verify` of one segment of 4-byte NAL units, peak RSS over the same "
              "command on a small segment:")
        size = (16 if args.quick else 64) << 20
        for label, extra, mib in segment_memory(work, size):
            print("  %-10s %6.1f MiB for a %.0f MiB segment  (target <= segment + 32 MiB: %s)"
                  % (label, extra, mib, "met" if extra <= mib + 32 else "NOT met"))

        segment = one_tagged_segment()
        n = 20_000 if args.quick else 100_000
        print("\nlinear time: time per input byte at 4N / at N (1.0 is linear; N = %d units):" % n)
        rows: Dict[str, float] = {
            "a tag, N delimiters, a tag (Annex-B reader)": linear(
                lambda k: delimiters_between_tags(k, segment), judge_all, n, 3),
            "N tiny units in one segment (Annex-B reader)": linear(
                lambda k: tiny_units_annexb(k, segment), judge_all, n, 3),
            "N tiny units in one segment (verify, one call)": linear(
                lambda k: tiny_units_annexb(k, segment), lambda d: StreamVerifier(RING).verify(d) and None, n, 3),
            "N tiny units in one MP4 sample (Canonical.of_prefixed)": linear(
                lambda k: tiny_units_sample(k, segment),
                lambda d: StreamVerifier(RING).verify_canonical(Canonical.of_prefixed(d)) and None, n, 3),
        }
        for name, ratio in rows.items():
            print("  %-58s %6.2f" % (name, ratio))

        print("\nbounded memory: peak Python allocation per input byte (N = %d tiny units):" % (4 * n))
        for name, data, run in (
                ("Annex-B reader (segbind.open)", tiny_units_annexb(4 * n, segment), judge_all),
                ("verify, one call (canonical form built once)", tiny_units_annexb(4 * n, segment),
                 lambda d: StreamVerifier(RING).verify(d) and None),
                ("MP4 sample (Canonical.of_prefixed + verify)", tiny_units_sample(4 * n, segment),
                 lambda d: StreamVerifier(RING).verify_canonical(Canonical.of_prefixed(d)) and None)):
            print("  %-58s %6.2f bytes" % (name, peak_per_byte(data, run)))

        print("\nbounded memory: peak RSS of `segbind verify -`, a stream 4x longer / the stream (1.0 is bounded):")
        RING.save(work / "ring.json")
        verify_cmd = [sys.executable, "-m", "segbind.cli", "verify", "--keyring", str(work / "ring.json"), "-"]
        (work / "untagged.bin").write_bytes((b"\x00\x00\x00\x01\x65" + os.urandom(65531)) * 16)  # 1 MiB, no tag
        small = 16 if args.quick else 64
        for name, clip in (("tagged 1080p stream", work / "t.h264"), ("no tag at all (Annex-B noise)",
                                                                       work / "untagged.bin")):
            a = pipe_peak_kib(small // 16 if clip.name == "t.h264" else small, clip, verify_cmd)
            b = pipe_peak_kib(small // 4 if clip.name == "t.h264" else 4 * small, clip, verify_cmd)
            print("  %-40s %6.2f   (%.0f MiB, then %.0f MiB)" % (name, b / a, a / 1024, b / 1024))
        print("  (a segment is refused, and its bytes dropped, past %d MiB without a tag)"
              % (MAX_SEGMENT_BYTES >> 20))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\npeak RSS of this run: %.0f MiB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
