"""Helpers shared by the test suites (no tests here). Test modules import from here, never
from each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"


def run_cli(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed ``segbind`` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "segbind.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120)


def provision_keys(directory: Path, camera: str) -> Path:
    """Through the CLI, in ``directory``: a device (dev.json), alice's binding and keyring
    (the owner: alice.json, alice-ring.json) and bob's (a stranger: bob.json, bob-ring.json)."""
    for args in (
        ["keys", "device", "--device-id", camera, "--out", "dev.json", "--test-only"],
        ["keys", "bind", "--device", "dev.json", "--owner", "alice", "--out", "alice.json"],
        ["keys", "grant", "--binding", "alice.json", "--keyring", "alice-ring.json"],
        ["keys", "bind", "--device", "dev.json", "--owner", "bob", "--out", "bob.json"],
        ["keys", "grant", "--binding", "bob.json", "--keyring", "bob-ring.json"],
    ):
        result = run_cli(*args, cwd=directory)
        assert result.returncode == 0, result.stderr
    return directory
