"""The benchmark commands keep working: they run (one round, small sizes) and print every row
they promise. Their figures are ratios for a person to read on a quiet machine (README,
Benchmarks): nothing here asserts a speed. The tag's size is not a speed, and is checked."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


def run_tool(*argv: str) -> str:
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 or "NOT met" in result.stdout, result.stderr[-2000:]
    return result.stdout


def test_bench_core_prints_every_figure_for_both_codecs_and_the_tag_size() -> None:
    out = run_tool("tools/bench_core.py", "--rounds", "1")
    for size in ("1 MB", "20 KB"):
        for what in ("Annex-B as the camera emits it", "MP4 samples (length-prefixed)"):
            assert re.search(r"verify %s, %s +\d+\.\d\d" % (size, re.escape(what)), out), out
            assert re.search(r"verify %s, %s \(H\.265\) +\d+\.\d\d" % (size, re.escape(what)), out), out
        assert re.search(r"MicroPython tag %s, from NAL units +\d+\.\d\d" % size, out), out
    # FORMAT.md section 5 (format 3: a key id, no names): the owner and three shares, today's clock,
    # 4-second segments: 141 bytes for H.264, at most 150 with emulation-prevention bytes
    found = re.search(r"tag bytes \(owner \+ 3 shares, max of 200\) +(\d+)", out)
    assert found, out
    assert 130 < int(found.group(1)) <= 150
    for row in ("segbind --version", "segbind verify, one 20 KB segment"):  # start-up, judged
        assert re.search(re.escape(row) + r" +\d+\.\d\d +<=2\.0 +(met|NOT met)", out), out


def test_bench_media_prints_throughput_linearity_and_memory() -> None:
    out = run_tool("tools/bench_media.py", "--quick")
    for row in ("a tag, N delimiters, a tag (Annex-B reader)", "Annex-B reader (segbind.open)",
                "no tag at all (Annex-B noise)"):
        assert re.search(re.escape(row) + r" +\d+\.\d\d", out), out
    for container in ("Annex-B", "MPEG-TS", "MP4", "fMP4 HLS", "Matroska"):  # issue 18's targets, each judged
        for codec in ("H.264", "H.265"):
            row = "verify %s, segbind.open end to end (%s)" % (container, codec)
            assert re.search(re.escape(row) + r" +\d+\.\d\d +>=0\.8 +(met|NOT met)", out), out
    for container in ("Annex-B", "MP4"):
        assert re.search(r"  %s +\d+\.\d MiB for a \d+ MiB segment  \(target <= segment \+ 32 MiB: (met|NOT met)\)"
                         % container, out), out
    assert re.search(r"MP4 +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+", out), out  # the cost of each step
