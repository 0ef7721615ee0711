"""Shared fixtures: real H.264 clips and key material made fresh for each test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_sim import clips
from segbind import Binding, Keyring, derive_binding_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def clip() -> bytes:
    """Two seconds of real libx264 Annex-B, an IDR every second (two segments)."""
    return clips.encode_pyav(frames=50, gop=25)


@pytest.fixture(scope="session")
def device_secret() -> bytes:
    return os.urandom(32)


@pytest.fixture()
def binding(device_secret: bytes) -> Binding:
    return Binding("alice", "cam-1", 1, derive_binding_key(device_secret, "alice", "cam-1", 1))


@pytest.fixture()
def keyring(binding: Binding) -> Keyring:
    return Keyring([binding])


def run_cli(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed ``segbind`` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "segbind.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120)
