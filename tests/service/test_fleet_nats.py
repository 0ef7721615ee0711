"""The fleet over NATS (``--engine nats``): the same households and faults as over MQTT, and the
owners' recording service deployed as docs/SERVICE.md says (a 3-node nats-server cluster, the
bridge from the fleet's Mosquitto, worker processes), every owner enrolling it and granting it
through the reference cloud. The service judges every segment that reached the broker, to one
verdict, accepts each camera's segments for its owner of the moment only, and no forgery."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_sim.fleet import FleetConfig, run_fleet
from tests.support import ROOT

pytestmark = pytest.mark.nats


def test_the_recording_service_judges_every_segment_and_accepts_each_for_its_owner_alone() -> None:
    faults = ("relay_cache_2020", "viewer_forgery", "resale_without_reset", "colliding_camera", "ids_swapped")
    cfg = FleetConfig(cameras=6, seconds=16, seed=2, faults=faults, engine="nats", broker="local", speed=4.0,
                      share=0.5, weak_cameras=0.5)
    results, fleet = run_fleet(cfg)
    r = results["results"]
    s = r["service"]
    assert not r["incomplete"]
    # the displays' invariants hold as over MQTT
    assert r["on"]["foreign_shown"] == 0 and r["on"]["forged_shown"] == 0 and r["stranger"]["readable"] == 0
    # every segment that reached the broker was stored and judged, once or to the same verdict
    assert s["at_broker"] == s["stored"] == s["judged"] > 0 and s["lost"] == 0, s
    assert s["judged_twice_different"] == 0
    # none accepted for an account that did not own the camera then, no forgery accepted ...
    assert s["foreign_accepted"] == 0 and s["forged_accepted"] == 0
    # ... and the faults bit: forgeries were on the cameras' topics, a camera was resold
    assert r["forged_made"] > 0 and sum(s["refused"].values()) >= 1, s
    assert results["fleet"]["resold"] >= 1 and results["fleet"]["colliding"] >= 1
    # every owner's own video was recorded: what it refused is only what came before its grants
    assert s["own_accepted"] > 0.8 * r["sent"] and set(s["own_refused"]) <= {"no_grant"}, s
    owners_then = {fleet.true_owner[c.device] for c in fleet.plan.cameras} | {c.owner for c in fleet.plan.cameras}
    assert s["accounts_recorded"] == len(owners_then), (s, owners_then)
    assert s["recorded_files"] == s["own_accepted"] and s["grants_carried"] >= len(fleet.owners)
    assert s["grants_not_carried"] == 0
    assert r["cloud"]["requests"].get("service-grants", 0) == s["grants_carried"]


def test_the_command_line_runs_the_fleet_with_its_service(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--engine", "nats", "--workers", "1",
                           "--cameras", "3", "--seconds", "8", "--speed", "4", "--faults", "none",
                           "--out", str(tmp_path), "--no-png", "--no-progress"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "recording service" in proc.stdout and "ERROR" not in proc.stderr
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["config"]["engine"] == "nats" and doc["config"]["workers"] == 1
    service = doc["picture_run"]["results"]["service"]
    assert service["workers"] == 1 and service["lost"] == 0 and service["judged"] == service["stored"] > 0
    assert [r["with"]["service"]["foreign_accepted"] for r in doc["scenarios"]] == [0]
    assert "## The owners' recording service" in (tmp_path / "fleet.md").read_text()
