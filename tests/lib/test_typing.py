"""The verifier library and the camera's core are typed: ``python3 -m mypy`` (strict, per
pyproject.toml) passes.

The targets and options come from ``[tool.mypy]`` in pyproject.toml (src/segbind,
firmware/segbind_core and firmware/segbind_agent/core.py, strict, firmware/ on the
path). The firmware core is also checked against MicroPython's stubs
(tests/test_firmware_static.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_library_passes_strict_mypy(tmp_path: Path) -> None:
    # A private cache: concurrent runs do not share one, and the tree stays clean.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, "mypy failed (exit %d):\n%s" % (result.returncode, output)
    assert "no issues found" in output, output
