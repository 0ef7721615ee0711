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


@pytest.mark.parametrize("bug", [True, False])
def test_a_tiny_fleet_over_mosquitto_keeps_the_invariants(broker: Broker, bug: bool) -> None:
    cfg = FleetConfig(cameras=4, seconds=16, seed=2, bug=bug, broker="mqtt://%s:%d" % (broker.host, broker.port),
                      speed=4.0, weak_displays=1.0, weak_cameras=0.5)
    results, fleet = run_fleet(cfg)
    r = results["results"]
    assert not r["incomplete"]
    assert r["sent"] == 4 * 16
    # every message crossed the real broker: what the links let through is what arrived
    assert r["at_cloud"] == arrivals(results, "uplink")
    assert r["delivered"] == arrivals(results, "downlink")
    assert sum(s["sent"] for s in r["links"]["downlink"].values()) == r["relayed"] + r["relay"]["fills"]
    assert r["relay"]["fills"] > 0                                     # the weak links made the cache work
    assert r["on"]["foreign_shown"] == 0
    assert r["on"]["own_falsely_rejected"] == 0
    assert r["off"]["shown"] == r["delivered"] == r["on"]["shown"] + r["on"]["rejected_total"]
    if bug:
        assert r["off"]["foreign_shown"] > 0
        assert r["on"]["foreign_refused"] == r["off"]["foreign_shown"]
    else:
        assert r["off"]["foreign_shown"] == 0 and r["relay"]["fills_other_camera"] == 0
    granted = {a.name: set(a.cameras) for a in fleet.plan.accounts}
    for display in fleet.displays:
        assert display.shown and {t.camera for t in display.shown} <= granted[display.account]


def test_the_command_line_over_a_broker(broker: Broker, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--broker", "mqtt://%s:%d" % (
        broker.host, broker.port), "--cameras", "3", "--seconds", "8", "--speed", "4", "--out", str(tmp_path),
        "--no-png", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "over MQTT" in proc.stdout and "ERROR" not in proc.stderr
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["config"]["transport"] == "mqtt" and doc["results"]["on"]["foreign_shown"] == 0
    assert doc["results"]["sent"] == 3 * 8 and doc["performance"]["segments_verified"] == doc["results"]["delivered"]
