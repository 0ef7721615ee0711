"""A real nats-server cluster (three nodes on loopback) for the service's tests: one per test
process, each test with its own deployment (a prefix: its own streams and buckets)."""

from __future__ import annotations

import shutil
from typing import Any, Iterator

import pytest

from host_sim.nats_cluster import NatsCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if shutil.which("nats-server") is None and shutil.which("nats-server", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("nats-server is not installed (bash tools/setup.sh test installs it)")
    with NatsCluster(str(tmp_path_factory.mktemp("nats"))) as c:
        yield c
