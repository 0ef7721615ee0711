"""tools/bench_js_gate.mjs runs and prints its one line (a smoke test: the figure itself is the
benchmark's to print, never a timed test's to assert)."""

from __future__ import annotations

import re
import sys

import pytest

from tests.support import ROOT
from tests.support.web import run_node


def test_the_gate_benchmark_prints_its_ratio_and_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGBIND_PYTHON", sys.executable)  # the material is made by this checkout's library
    proc = run_node(str(ROOT / "tools" / "bench_js_gate.mjs"), "--seconds", "1", "--size", "320x180", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    assert re.fullmatch(r"JavaScript gate on fMP4 \(H\.264 320x180, 1 s, .*\): \d+\.\d\d of node:crypto HMAC-SHA256 "
                        r"over the same bytes \(.*\); target 0\.5: (met|not met); decrypting for the decoder too: "
                        r"\d+\.\d\d \(\d+ MB/s; the decryption alone \d+ MB/s, node:crypto AES-128-CTR \d+ MB/s\)",
                        lines[0]), lines[0]
