"""The service's faults (issue 21), each against the real 3-node cluster with real worker
processes (tools/service_faults.py): kill -9 a worker mid-batch, stop and restart the segment
stream's leader node, pause a worker past its lease (its writes refused), every camera
reconnecting at once through Mosquitto and the bridge, a worker's keys mixed up with another
account's. Each: 0 segments lost, 0 judged twice with different verdicts, 0 foreign accepted, the
chain unbroken, every accepted segment in its owner's recording as the camera's own video; and
each shows its fault happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.service import tool

pytestmark = [pytest.mark.nats, pytest.mark.slow]

faults = tool("service_faults")


@pytest.mark.parametrize("name", sorted(faults.FAULTS))
def test_fault(name: str, cluster: Any, tmp_path: Path) -> None:
    counts, dep = faults.run_fault(cluster, name, tmp_path, cameras=48, segments=6)
    print()
    print(faults.table([counts]))
    assert counts.published == 48 * 6
    assert (counts.lost, counts.judged_twice_differently, counts.foreign_accepted, counts.chain_breaks,
            counts.recording_faults) == (0, 0, 0, 0, 0), faults.table([counts])
    # ... and the fault did bite
    if name == "worker_kill":
        assert not dep.workers[0].alive and counts.judged_twice >= 1  # a batch judged again, the same
    elif name == "worker_pause":
        assert counts.refused_writes >= 1
        assert dep.workers[0].count("lost") + dep.workers[0].count("expired") >= 1
    elif name == "reconnect_storm":
        assert counts.duplicates == 48  # every copy refused as one, none shown twice
    elif name == "keys_mixup":
        assert counts.rejudged >= 48  # every camera's first segment looked at again
    elif name == "node_restart":
        assert sorted(n.starts for n in cluster.nodes)[-1] >= 2 and all(n.running for n in cluster.nodes)
