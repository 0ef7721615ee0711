"""Shared fixtures (real H.264 clips, key material made fresh for each session) and the tiers.

Tiers are markers. A test that needs the ARM images is marked ``qemu``, one that
starts Mosquitto ``broker``, one that starts a nats-server cluster ``nats``, one that drives a
browser ``browser``, one that takes minutes ``slow``; every other test is ``quick`` (added here), so
``pytest -m quick`` runs the core, the verifier and the CLI in under two minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import segbind
from host_sim import clips
from segbind import Binding, Epoch, Keyring
from tests.support import ROOT, provision_keys

HEAVY = ("qemu", "broker", "browser", "slow", "nats")


def pytest_configure(config: pytest.Config) -> None:
    here = Path(segbind.__file__).resolve()
    if ROOT not in here.parents:
        raise pytest.UsageError(
            "the segbind package imported is %s, not this checkout's (%s): run the tests with "
            "bash tools/test.sh, which installs this checkout" % (here.parent, ROOT))


# Real-time runs that a loaded machine can fail (a browser playing live HLS, a fleet over a
# broker in real time) go to one xdist worker, one after another (tools/test.sh runs
# --dist loadgroup): two of them at once on two cores starve each other.
REALTIME_MODULES = ("test_fleet_mqtt", "test_fleet_nats")


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in HEAVY):
            item.add_marker(pytest.mark.quick)
        if item.get_closest_marker("browser") or item.module.__name__.rsplit(".", 1)[-1] in REALTIME_MODULES:
            item.add_marker(pytest.mark.xdist_group("realtime"))


@pytest.fixture(scope="session")
def clip() -> bytes:
    """Two seconds of real libx264 Annex-B, an IDR every second (two segments)."""
    return clips.encode_pyav(frames=50, gop=25)


@pytest.fixture(scope="session")
def pairing_secret() -> bytes:
    return os.urandom(32)


@pytest.fixture()
def epoch(pairing_secret: bytes) -> Epoch:
    """Epoch 1 of alice's camera cam-1, shared with nobody."""
    return Epoch.of_pairing(pairing_secret, "alice", "cam-1", 1, [])


@pytest.fixture()
def binding(epoch: Epoch) -> Binding:
    """The owner's slot of that epoch: what alice's displays hold."""
    return Binding.of_epoch(epoch)


@pytest.fixture()
def keyring(binding: Binding) -> Keyring:
    return Keyring([binding])


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera, alice's binding and keyring (the owner), bob's (a stranger), made by the CLI."""
    return provision_keys(tmp_path_factory.mktemp("keys"), "cam-9")
