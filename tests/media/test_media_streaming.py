"""Streaming (issue item 5): `segbind tag - -` is a pipe filter that writes each tagged
segment as soon as it closes (at most one segment of added latency) and whose peak
memory does not grow with the stream's length.

No timing is measured: waits below only guard against a hang.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from host_sim import clips
from segbind import StreamVerifier, tagged_segments
from segbind_core.h264 import NAL_IDR
from segbind_core.nal import annexb_units
from tests.support.media import decrypted, rings

HANG_GUARD_S = 120


def read_until_segments(proc: subprocess.Popen, received: bytearray, count: int, ring) -> None:
    """Read the filter's output until ``count`` whole tagged segments have arrived."""
    fd = proc.stdout.fileno()
    while True:
        if received:
            buf = bytes(received)
            segs = tagged_segments(buf)
            assert len(segs) <= count, "more segments than the input allowed"
            # Whole when the last one authenticates (a part of it would not).
            if len(segs) == count and StreamVerifier(ring).verify(segs[-1]).accepted:
                return
        ready, _, _ = select.select([fd], [], [], HANG_GUARD_S)
        assert ready, "segbind tag held back a closed segment"
        chunk = os.read(fd, 1 << 16)
        assert chunk, "segbind tag ended early"
        received += chunk


def test_each_segment_is_written_as_soon_as_it_closes(keys: Path) -> None:
    data = clips.make_kind("pyav-bframes-slices-aud")
    units = annexb_units(data)
    idr_first_slices = [i for i, (s, _) in enumerate(units) if data[s] & 0x1F == NAL_IDR and data[s + 1] & 0x80]
    assert len(idr_first_slices) == 4
    proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "tag", "--epoch", str(keys / "alice.json"),
                             "-", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received = bytearray()
    verifier = StreamVerifier(rings(keys)[0])
    sent = 0
    try:
        for k, i in enumerate(idr_first_slices[1:], start=1):
            # Up to the start code that ends the first slice of segment k's IDR picture:
            # segment k-1 is then closed, and only it may come out.
            upto = units[i + 1][0]
            proc.stdin.write(data[sent:upto])
            proc.stdin.flush()
            sent = upto
            read_until_segments(proc, received, k, rings(keys)[0])
            buf = bytes(received)
            segs = tagged_segments(buf)
            assert len(segs) == k
            assert verifier.verify(segs[-1]).reason.value == "ok"
            # The output holds exactly the pictures of the first k segments.
            assert b"".join(segs) == buf
        proc.stdin.write(data[sent:])
        proc.stdin.close()
        rest, err = proc.stdout.read(), proc.stderr.read()
        assert proc.wait(timeout=HANG_GUARD_S) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    out = bytes(received) + rest
    assert [verifier.verify(s).reason.value for s in tagged_segments(out)][3:] == ["ok"]
    assert clips.decode_hashes_pyav(decrypted(out, rings(keys)[0])) == clips.decode_hashes_pyav(data)


PEAK = r"""
import resource, subprocess, sys
copies, clip, binding = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3]  # an epoch file
proc = subprocess.Popen([sys.executable, "-m", "segbind.cli", "tag", "--epoch", binding, "-", "-"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
import threading
out = [0, 0]
def drain():
    carry = b""  # a UUID may straddle two reads
    while True:
        chunk = proc.stdout.read(1 << 16)
        if not chunk:
            return
        out[0] += len(chunk)
        out[1] += (carry + chunk).count(b"\xb5\x31\xd1\xf0\x07\xfb\x84\x25")  # segbind's UUID
        carry = chunk[-7:]
t = threading.Thread(target=drain); t.start()
for _ in range(copies):
    proc.stdin.write(clip)
proc.stdin.close(); t.join(); assert proc.wait() == 0
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, out[0], out[1])
"""


def test_peak_memory_does_not_grow_with_the_stream(keys: Path, tmp_path: Path) -> None:
    clip = clips.make_kind("pyav-every")
    (tmp_path / "clip.h264").write_bytes(clip)

    def peak(copies: int):
        result = subprocess.run([sys.executable, "-c", PEAK, str(copies), str(tmp_path / "clip.h264"),
                                 str(keys / "alice.json")], capture_output=True, timeout=600)
        assert result.returncode == 0, result.stderr
        rss_kib, out_bytes, tags = map(int, result.stdout.split())
        assert out_bytes > copies * len(clip) and tags == 4 * copies
        return rss_kib

    short, long = peak(40), peak(800)  # 2 MB against 40 MB of video
    grown_kib = long - short
    print("peak RSS KiB", short, long)
    assert grown_kib < 6 * 1024, (short, long)
    assert grown_kib < (800 - 40) * len(clip) // 1024 // 5
