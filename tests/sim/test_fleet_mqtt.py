"""The fleet simulation over a real Mosquitto, in real time: the cloud (host_sim.cloud.Cloud),
cameras and displays as MQTT clients, the weak links applied at the edges. Not the same
numbers as in-process (real time is not deterministic), the same invariants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_sim.broker import Broker
from host_sim.fleet import FleetConfig, run_fleet
from tests.support import ROOT

pytestmark = pytest.mark.broker



@pytest.fixture(scope="module")
def broker():
    with Broker(persistence=False) as b:
        yield b


def arrivals(results: dict, kind: str) -> int:
    return sum(s["sent"] - s["lost"] + s["duplicated"] for s in results["results"]["links"][kind].values())


@pytest.mark.parametrize("defended", [True, False], ids=["with-segbind", "without"])
def test_a_tiny_fleet_over_mosquitto_keeps_the_invariants(broker: Broker, defended: bool) -> None:
    cfg = FleetConfig(cameras=4, seconds=16, seed=2, faults=("relay_cache_2020", "viewer_forgery"),
                      defended=defended, broker="mqtt://%s:%d" % (broker.host, broker.port), speed=4.0,
                      weak_displays=1.0, weak_cameras=0.5, share=0.5)
    results, fleet = run_fleet(cfg)
    r = results["results"]
    assert not r["incomplete"]
    assert r["sent"] == 4 * 16
    # every message crossed the real broker: what the links let through is what arrived
    assert r["at_cloud"] == arrivals(results, "uplink") + r["forged_made"]
    assert r["delivered"] == arrivals(results, "downlink")
    assert sum(s["sent"] for s in r["links"]["downlink"].values()) == r["relayed"] + r["refilled"]
    assert r["relay"]["fills"] > 0                                     # the weak links made the cache work
    if defended:
        assert r["on"]["foreign_shown"] == 0 and r["on"]["forged_shown"] == 0
        assert r["own_lost_to_verification"] == 0 and r["stranger"]["readable"] == 0
    else:  # plain video, shown as routed: the strangers' segments and the forgeries too
        assert r["off"]["foreign_shown"] + r["off"]["forged_shown"] > 0
    for display, acct in zip(fleet.displays, fleet.plan.accounts):
        if not defended:  # plain video has no tags: what was shown is what was delivered, counted above
            assert sum(display.delivered.values()) > 0
            continue
        mine = {(fleet.camera_plan[c].owner, fleet.camera_plan[c].name) for c in acct.cameras + acct.shared_in}
        assert display.shown_total() and set(display.shown) <= mine   # streams by (owner, camera)


def test_the_command_line_over_a_broker(broker: Broker, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--broker", "mqtt://%s:%d" % (
        broker.host, broker.port), "--cameras", "3", "--seconds", "8", "--speed", "4", "--faults",
        "relay_cache_2020", "--out", str(tmp_path), "--no-png", "--no-progress"], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "over MQTT" in proc.stdout and "ERROR" not in proc.stderr
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["config"]["transport"] == "mqtt"
    assert all(r["with"]["foreign_shown"] == 0 for r in doc["scenarios"])
    run = doc["picture_run"]
    assert run["results"]["sent"] == 3 * 8 and run["performance"]["segments_verified"] == run["results"]["delivered"]
