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


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera, alice's binding and keyring (the owner), bob's (a stranger), made by the CLI."""
    return provision_keys(tmp_path_factory.mktemp("keys"), "cam-9")
