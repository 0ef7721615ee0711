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
    """Through the CLI, in ``directory``: a device (dev.json); alice's pairing of it, its epoch 1
    (alice.json, what ``segbind tag --epoch`` takes) and her keyring (alice-ring.json); and
    bob's, a stranger who paired the same camera once (bob.json, bob-ring.json)."""
    for args in (
        ["keys", "device", "--device-id", camera, "--out", "dev.json", "--test-only"],
        ["keys", "pair", "--owner", "alice", "--camera", camera, "--out", "alice.pairing", "--test-only"],
        ["keys", "epoch", "--pairing", "alice.pairing", "--epoch", "1", "--out", "alice.json"],
        ["keys", "grant", "--epoch", "alice.json", "--keyring", "alice-ring.json"],
        ["keys", "pair", "--owner", "bob", "--camera", camera, "--out", "bob.pairing", "--test-only"],
        ["keys", "epoch", "--pairing", "bob.pairing", "--epoch", "1", "--out", "bob.json"],
        ["keys", "grant", "--epoch", "bob.json", "--keyring", "bob-ring.json"],
    ):
        result = run_cli(*args, cwd=directory)
        assert result.returncode == 0, result.stderr
    return directory
