"""The fleet simulation, in-process (simulated time): every incident's fault reaches displays
without segbind and never with it, and what a stranger is handed shows it nothing of the scene
with segbind; a dropped revocation ends with the revoked viewer's last period; a colliding
camera reaches no other owner's tile; deterministic; every number accounted for."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from host_sim import report
from host_sim.cache import StreamingQualityCache
from host_sim.fleet import BASE_MS, FAULTS, FleetConfig, Progress, main, make_plan, run_fleet
from host_sim.netem import LinkProfile
from tests.support import ROOT

pytestmark = pytest.mark.slow

SMALL = dict(cameras=8, seconds=30, seed=3)
LONG = dict(cameras=8, seconds=50, seed=3)  # past the first period boundary (30 s in) by 20 s


@lru_cache(maxsize=None)
def scenario(fault: str, defended: bool, **extra):
    faults = tuple(FAULTS) if fault == "all" else ((fault,) if fault else ())
    return run_fleet(FleetConfig(faults=faults, defended=defended, **dict(SMALL, **extra)))


def downlink_arrivals(results: dict) -> int:
    links = results["results"]["links"]["downlink"].values()
    return sum(s["sent"] - s["lost"] + s["duplicated"] for s in links)


# -- the cache itself ------------------------------------------------------------------------

def test_the_buggy_cache_serves_another_cameras_segment_the_correct_one_never_does() -> None:
    for bug in (False, True):
        cache = StreamingQualityCache(slots=1, bug=bug)  # one slot: every camera collides
        cache.put("cam-a", 10, 5, b"A5")
        cache.put("cam-b", 20, 5, b"B5")
        entry = cache.get("cam-a", 10, 5)
        if bug:
            assert entry.camera == "cam-b" and entry.payload == b"B5"
        else:
            assert entry.camera == "cam-a" and entry.payload == b"A5"
        assert cache.get("cam-a", 10, 6) is None


def test_the_cache_evicts_the_oldest_entries_beyond_its_capacity() -> None:
    cache = StreamingQualityCache(slots=4, capacity=3)
    for seq in range(5):
        cache.put("cam-a", 1, seq, b"%d" % seq)
    assert len(cache) == 3 and cache.get("cam-a", 1, 1) is None and cache.get("cam-a", 1, 4).payload == b"4"


# -- the plan and the set-up -------------------------------------------------------------------

def test_plan_owners_shares_and_faults() -> None:
    plan = make_plan(FleetConfig(faults=tuple(FAULTS), **SMALL))
    assert len(plan.cameras) == 9 and len(plan.accounts) == 8        # eight households and a colliding camera
    assert len({c.owner for c in plan.cameras[:8]}) == 8             # one owner per camera
    assert plan.shares >= 1 and all(v != c.owner for c in plan.cameras for v in c.viewers)
    assert [c.name for c in plan.cameras if c.buyer] == ["cam-0004"] and plan.cameras[3].rolled_back
    assert plan.cameras[5].identity == "factory-cam-0005"            # made with cam-0005's secret
    forged = [c for c in plan.cameras if c.forger]
    assert forged and all(c.forger in c.viewers for c in forged)
    revoked = [c for c in plan.cameras if c.revoked]
    assert revoked and all(c.revoked in c.viewers for c in revoked)
    colliding = plan.cameras[8]
    victim = next(c for c in plan.cameras[:8] if c.name == colliding.name)
    assert colliding.colliding and colliding.device != victim.device and colliding.owner != victim.owner
    assert colliding.viewers == victim.viewers and colliding.owner not in victim.viewers
    assert (colliding.codec, colliding.clip) != (victim.codec, victim.clip)  # it looks at another scene
    assert make_plan(FleetConfig(**SMALL)).cameras[3].buyer is None  # no fault, no resale
    assert not any(c.colliding or c.revoked for c in make_plan(FleetConfig(**SMALL)).cameras)


def test_every_display_holds_exactly_its_owners_grants_and_the_cloud_no_key() -> None:
    results, fleet = scenario("", True)
    for display, acct in zip(fleet.displays, fleet.plan.accounts):
        granted = {(o, c) for o, c, _e in display.grants.keyring.grants()}
        expected = {(fleet.camera_plan[c].owner, c) for c in acct.cameras + acct.shared_in}
        assert granted == expected, display.name
        assert display.grants.serial >= 1 and display.identity.owner.account == acct.name
        # renewed across the period boundary 30 s into the run: it holds the period then in progress
        assert {b.period for b in display.grants.keyring.bindings()} >= {(fleet.cameras[0].now() - 1) // 60_000}
    routing = json.dumps(fleet.cloud.routing.to_json())
    for app in fleet.owners.values():                                # not one pairing secret there
        for cam in app.owner.cameras.values():
            assert cam.pairing.hex() not in routing
    assert results["results"]["grant_refusals"] == {}


# -- each fault, with segbind and without --------------------------------------------------------

FOREIGN_FAULTS = ["relay_cache_2020", "ids_swapped", "share_to_wrong_account", "resale_without_reset",
                  "duplicate_device_secret", "state_rollback", "colliding_camera"]


@pytest.mark.parametrize("fault", FOREIGN_FAULTS)
def test_each_fault_shows_strangers_video_without_segbind_never_with_it(fault: str) -> None:
    without = scenario(fault, False)[0]["results"]
    with_ = scenario(fault, True)[0]["results"]
    assert without["off"]["foreign_shown"] > 0, fault
    # what a stranger's decoder makes of the bytes it was handed: the scene, without; nothing, with
    assert without["stranger"]["readable"] == without["off"]["foreign_shown"]
    assert with_["on"]["foreign_shown"] == 0 and with_["on"]["forged_shown"] == 0
    assert with_["stranger"]["readable"] == 0 and with_["stranger"]["thumbnails_readable"] == 0
    assert with_["other_owners_tile"] == 0
    assert with_["own_lost_to_verification"] == 0


@pytest.mark.parametrize("fault", ["ids_swapped", "share_to_wrong_account"])
def test_a_strangers_thumbnails_show_it_the_scene_without_segbind_never_with_it(fault: str) -> None:
    """Wyze 2024 leaked through thumbnails the cloud made of the video it held. Now the cameras make
    their stills, encrypted; the cloud routes them and can decode none. The cloud's own mix-up still
    sends some to strangers (share_to_wrong_account: its records are wrong): they show nothing."""
    without = scenario(fault, False)[0]["results"]
    with_ = scenario(fault, True)[0]["results"]
    assert without["stills_made"] > 0 and without["stranger"]["thumbnails_readable"] > 0
    assert without["stranger"]["thumbnails_readable"] == without["stranger"]["thumbnails"]
    assert with_["stranger"]["thumbnails_readable"] == 0 and with_["stranger"]["thumbnails_shown"] == 0
    if fault == "share_to_wrong_account":
        assert with_["stranger"]["thumbnails"] > 0       # handed over, and unreadable


def test_a_restart_during_claims_misroutes_until_the_camera_or_its_owner_corrects_it() -> None:
    # The restart loses the buyer's new route: until the camera's next status or the owner's app
    # notices, the video goes to the seller (foreign) and never to the buyer (own, lost).
    baseline = scenario("resale_without_reset", True)[0]["results"]  # the same resale, no restart...
    clean = run_fleet(FleetConfig(faults=(), **SMALL))[0]["results"]
    for defended in (True, False):
        r = scenario("restart_during_claim", defended)[0]["results"]
        assert r["cloud"]["restarts"] == 1
        assert r["off"]["foreign_shown"] > 0 or r["own_never_delivered"] > clean["own_never_delivered"]
        assert r["on"]["foreign_shown"] == 0 or not defended
        assert r["own_lost_to_verification"] == 0 or not defended
    assert baseline["on"]["foreign_shown"] == 0


def test_a_forging_viewer_fools_nobody_but_itself() -> None:
    without = scenario("viewer_forgery", False)[0]["results"]
    results, fleet = scenario("viewer_forgery", True)
    r = results["results"]
    assert r["forged_made"] > 0 and without["off"]["forged_shown"] > 0
    assert r["on"]["forged_shown"] == 0 and r["on"]["refused"].get("mac_mismatch", 0) > 0
    from segbind import Keyring, Reason, verify_segment
    from segbind.errors import InvalidSegment

    forger = fleet.forgers[0]
    victim_owner = fleet.owners[forger.victim.owner].owner
    own = victim_owner.keyring(BASE_MS, BASE_MS + 120_000)          # every period of the run
    for forged in forger.samples:   # its own slot's key accepts what it made; nobody else's: it holds no other
        assert verify_segment(forged, Keyring(forger.owner.shared_with_me.values())).owner == victim_owner.name
        with pytest.raises(InvalidSegment) as info:
            verify_segment(forged, own)
        assert info.value.reason is Reason.MAC_MISMATCH


def test_a_rolled_back_camera_would_be_believed_so_it_refuses_to_run() -> None:
    # Without the camera's check, the restored state tags the buyer's home for the seller, with
    # the seller's real keys: verification alone accepts it. With it, the camera stops.
    believed = scenario("state_rollback", True, rollback_check=False)[0]["results"]
    assert believed["on"]["foreign_shown"] > 0 and believed["cameras_halted"] == 0
    with_ = scenario("state_rollback", True)[0]["results"]
    assert with_["cameras_halted"] == 1 and with_["on"]["foreign_shown"] == 0


def test_grants_sent_to_the_wrong_display_are_refused_and_the_owner_recovers() -> None:
    results, fleet = scenario("grants_to_wrong_display", True)
    r = results["results"]
    assert r["grant_refusals"].get("not_for_this_display", 0) > 0
    assert r["on"]["foreign_shown"] == 0 and r["off"]["foreign_shown"] == 0
    assert r["owner_resyncs"] > 0
    # every display ends holding its own grants, whatever the cloud delivered
    for display, acct in zip(fleet.displays, fleet.plan.accounts):
        assert {c for _o, c, _e in display.grants.keyring.grants()} == set(acct.cameras + acct.shared_in)


def test_a_dropped_revocation_ends_with_the_revoked_viewers_last_period() -> None:
    """Issue 20: the owner revokes a contact 15 % into the run; the cloud drops the rotation (and every
    retry) and keeps routing the camera to the contact. Without segbind the contact watches on. With
    it, the contact's display accepts nothing captured after the end of the last period it was granted
    (30 s into the run, within one period and the lead of the revocation); the owner's app sends the
    rotation again and raises the alarm; the owner's display flags the video still tagged under the
    superseded epoch."""
    without = run_fleet(FleetConfig(faults=("dropped_rotate",), defended=False, **LONG))[0]["results"]
    results, fleet = run_fleet(FleetConfig(faults=("dropped_rotate",), **LONG))
    r = results["results"]
    assert without["revoked_late"] > 0 and without["off"]["foreign_shown"] >= without["revoked_late"]
    assert r["revoked_late"] == 0 and r["on"]["foreign_shown"] == 0
    assert r["rotations"]["dropped_by_cloud"] > 1                     # the command, then its retries
    assert r["rotations"]["retries"] > 0 and r["rotations"]["alarms"] > 0
    assert r["rotations"]["flagged_superseded"] > 0
    assert r["own_lost_to_verification"] == 0
    (device, viewer), bound = next(iter(fleet.revocations.items()))
    revoked_at = fleet.revoked_at[(device, viewer)]
    assert revoked_at < bound <= revoked_at + 60_000 + 10_000         # at most one period and the lead
    display = next(d for d in fleet.displays if d.account == viewer)
    name = fleet.camera_plan[device]
    stream = (name.owner, name.name)
    shown = display.shown.get(stream, []) + display.recorded.get(stream, [])
    assert shown and max(t.capture_ms for t in shown) < bound         # it saw the camera, up to its last period
    assert display.refused_other.get("no_grant", 0) > 0               # and after it, nothing opens
    app = fleet.owners[name.owner]
    assert app.alarms and app.alarms[0].camera == name.name
    owner_display = next(d for d in fleet.displays if d.account == name.owner)
    assert any(a.kind == "rotation_pending" for a in owner_display.alarms())


def test_a_colliding_camera_reaches_no_other_owners_tile() -> None:
    """Issue 20: a contact pairs its own camera under another owner's camera id and shares it with an
    account that holds that camera from its real owner. Without segbind the recipient's display goes
    by the cloud's label and shows it in the real camera's tile. With segbind the recipient's app does
    not take the offer, so its display refuses every segment of it (no_grant), and the real camera's
    chain is untouched there; the contact's own display shows it in a tile of its own."""
    without = scenario("colliding_camera", False)[0]["results"]
    results, fleet = scenario("colliding_camera", True)
    r = results["results"]
    assert without["other_owners_tile"] > 0
    assert r["other_owners_tile"] == 0 and r["on"]["foreign_shown"] == 0
    assert r["refused_shares"].get("held_from_another_owner", 0) > 0
    colliding = next(c for c in fleet.plan.cameras if c.colliding)
    victim = next(c for c in fleet.plan.cameras if c.name == colliding.name and not c.colliding)
    viewer = next(d for d in fleet.displays if d.account == colliding.viewers[0])
    assert set(viewer.shown) <= {(victim.owner, victim.name)} | {(c.owner, c.name) for c in fleet.plan.cameras
                                                                 if viewer.account in c.viewers + [c.owner]
                                                                 and not c.colliding}
    assert viewer.shown[(victim.owner, victim.name)] and "chain_break" not in viewer.refused_own
    assert viewer.refused_other.get("no_grant", 0) > 0
    hostile = next(d for d in fleet.displays if d.account == colliding.owner)
    assert hostile.shown[(colliding.owner, colliding.name)]          # its own tile, under its own owner


def test_all_faults_together_and_the_displays_alone() -> None:
    r = scenario("all", True, second_line=False)[0]["results"]
    assert r["off"]["foreign_shown"] > 0 and r["on"]["foreign_shown"] == 0
    assert r["on"]["forged_shown"] == 0 and r["own_lost_to_verification"] == 0
    assert r["stranger"]["readable"] == 0 and r["stranger"]["thumbnails_readable"] == 0
    assert r["other_owners_tile"] == 0 and r["revoked_late"] == 0
    assert r["cloud"]["refused"] == {} or not any(k.startswith("second_line") for k in r["cloud"]["refused"])
    with_line = scenario("all", True)[0]["results"]
    assert sum(n for k, n in with_line["cloud"]["refused"].items() if k.startswith("second_line")) > 0
    assert with_line["stranger"]["thumbnails"] < r["stranger"]["thumbnails"]
    without = scenario("all", False)[0]["results"]
    assert without["stranger"]["readable"] > 0 and without["stranger"]["thumbnails_readable"] > 0


# -- accounting ----------------------------------------------------------------------------------

def test_every_segment_is_accounted_for() -> None:
    results, fleet = scenario("relay_cache_2020", True)
    r = results["results"]
    assert r["sent"] == 8 * 30 == sum(c.produced for c in fleet.cameras)
    uplinks = r["links"]["uplink"].values()
    assert r["at_cloud"] == sum(s["sent"] - s["lost"] + s["duplicated"] for s in uplinks)
    assert sum(s["sent"] for s in uplinks) == r["sent"] - r["spool_dropped"]
    downlinks = r["links"]["downlink"].values()
    assert sum(s["sent"] for s in downlinks) == r["relayed"] + r["refilled"] == r["cloud"]["delivered"]
    assert r["delivered"] == downlink_arrivals(results)
    assert r["relay"]["timeouts"] == r["relay"]["fills"] + r["relay"]["misses"]
    # own segments: every one delivered was accepted (late ones too); none lost to verification
    assert r["on"]["own_accepted"] == r["off"]["own_delivered"] <= r["own_produced"]
    assert r["own_never_delivered"] == r["own_produced"] - r["off"]["own_delivered"]
    # every still a camera made went to its audience, and every one delivered was shown
    assert r["stills_made"] == 8 * 30 // 10 and r["cloud"]["stills"]["delivered"] == sum(r["thumbnails"].values())
    assert sum(a["stills_shown"].get("own", 0) for a in results["accounts"]) == r["thumbnails"]["own"]


def test_what_each_display_showed_is_its_own_and_shown_once() -> None:
    _results, fleet = scenario("all", True)
    for display, acct in zip(fleet.displays, fleet.plan.accounts):
        mine = {(c.owner, c.name) for c in fleet.plan.cameras if acct.name in [c.owner] + c.viewers}
        mine |= {(acct.name, c.name) for c in fleet.plan.cameras if c.buyer == acct.name}
        tags = [t for ts in list(display.shown.values()) + list(display.recorded.values()) for t in ts]
        assert {t.stream for t in tags} <= mine, display.name
        assert set(display.shown) <= mine and set(display.recorded) <= mine  # one output per stream
        positions = [(t.owner, t.camera, t.stream_id, t.seq) for t in tags]
        assert len(positions) == len(set(positions))                    # nothing shown twice


def test_the_relay_bug_needs_a_weak_network() -> None:
    perfect = LinkProfile(delay_ms=20)
    results, _ = run_fleet(FleetConfig(cameras=6, seconds=20, seed=3, faults=("relay_cache_2020",),
                                       defended=False, good=perfect, weak=perfect))
    r = results["results"]
    assert r["relay"]["timeouts"] == 0 and r["off"]["foreign_shown"] == 0
    assert r["off"]["own_delivered"] == r["own_produced"]


def test_duplicates_are_refused_and_never_shown_twice() -> None:
    dup = LinkProfile(delay_ms=20, duplicate=0.2)
    results, fleet = run_fleet(FleetConfig(cameras=4, seconds=30, seed=5, good=dup, weak=dup, retry_ms=60_000))
    r = results["results"]
    assert r["on"]["own_refused"].get("duplicate", 0) > 0 and set(r["on"]["own_refused"]) == {"duplicate"}
    assert r["on"]["own_accepted"] == r["own_produced"]
    assert sum(d.shown_total() + sum(len(v) for v in d.recorded.values()) for d in fleet.displays) \
        == r["own_produced"]


@pytest.mark.parametrize("spool", [30, 1])
def test_cameras_hold_segments_through_outages_in_a_bounded_spool(spool: int) -> None:
    flapping = LinkProfile(delay_ms=20, outage_every_ms=6_000, outage_ms=3_500)
    steady = LinkProfile(delay_ms=20)
    results, fleet = run_fleet(FleetConfig(cameras=4, seconds=40, seed=7, weak=flapping, good=steady,
                                           weak_cameras=1.0, weak_displays=0.0, spool=spool))
    r = results["results"]
    assert r["relay"]["timeouts"] == 0 and r["off"]["foreign_shown"] == 0
    if spool == 30:
        assert r["spool_max"] >= 3 and r["spool_dropped"] == 0
        assert r["own_never_delivered"] == 0                            # held, not lost
    else:
        assert r["spool_dropped"] > 0
        audience = {c.name: 1 + len(c.viewers) for c in fleet.plan.cameras}
        dropped = sum(c.core.spool.dropped_total * audience[c.name] for c in fleet.cameras)
        assert r["own_never_delivered"] == dropped                      # exactly what the spools dropped
    assert r["own_lost_to_verification"] == 0


def test_same_seed_same_results_other_seed_other_results() -> None:
    cfg = dict(cameras=6, seconds=25, faults=("relay_cache_2020", "viewer_forgery"))
    a, _ = run_fleet(FleetConfig(seed=11, **cfg))
    b, _ = run_fleet(FleetConfig(seed=11, **cfg))
    c, _ = run_fleet(FleetConfig(seed=12, **cfg))
    keep = ("sent", "at_cloud", "delivered", "on", "off", "relay", "links", "thumbnails", "stranger")
    dump = lambda res: json.dumps({k: res["results"][k] for k in keep}, sort_keys=True)  # noqa: E731
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    assert make_plan(FleetConfig(seed=11, **cfg)).cameras == make_plan(FleetConfig(seed=11, **cfg)).cameras


# -- the report: table, Markdown, JSON, PNG ----------------------------------------------------

def pixels(img, box, color) -> int:
    """How many pixels of ``box`` have exactly ``color``."""
    import numpy as np

    region = np.asarray(img.crop(tuple(box)))
    return int((region == np.array(color, dtype=region.dtype)).all(axis=-1).sum())


def colours(img, box) -> int:
    import numpy as np

    region = np.asarray(img.crop(tuple(box))).reshape(-1, 3)
    return len(np.unique(region, axis=0))


def test_main_writes_the_report_and_a_picture_of_what_each_display_showed(tmp_path: Path, capsys) -> None:
    from PIL import Image

    assert main(["--cameras", "8", "--seconds", "20", "--seed", "3", "--out", str(tmp_path),
                 "--faults", "relay_cache_2020,viewer_forgery,state_rollback", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "foreign" in table and "a stranger sees" in table and "nothing a stranger's decoder could see" in table
    doc = json.loads((tmp_path / "fleet.json").read_text())
    md = (tmp_path / "fleet.md").read_text()
    rows = {r["scenario"]: r for r in doc["scenarios"]}
    assert list(rows) == ["relay_cache_2020", "viewer_forgery", "state_rollback", "all together",
                          "all together, cloud second line off"]
    for name, row in rows.items():
        assert row["with"]["foreign_shown"] == row["with"]["forged_shown"] == 0, name
        assert row["with"]["readable_by_stranger"] == 0, name
        line = next(line for line in table.splitlines() if line.startswith(name + " ") or line == name)
        cells = line[len(name):].split()
        assert cells[2] == "0" and cells[5] == "0" and cells[8] == "0"  # foreign, forged, a stranger sees: with
    assert rows["relay_cache_2020"]["without"]["foreign_shown"] > 0
    assert rows["relay_cache_2020"]["without"]["readable_by_stranger"] > 0
    assert rows["viewer_forgery"]["without"]["forged_shown"] > 0
    relay = rows["relay_cache_2020"]["without"]
    assert "| relay_cache_2020 | {:,} / 0 | 0 / 0 | {:,} / 0 |".format(relay["foreign_shown"],
                                                                     relay["readable_by_stranger"]) in md
    assert "![what each display showed](fleet.png)" in md

    pic = doc["picture"]
    img = Image.open(tmp_path / "fleet.png").convert("RGB")
    assert img.size == report.png_size(len(pic["rows"])) == tuple(pic["size"])
    red, orange = pic["colors"]["refused"], pic["colors"]["foreign_shown"]
    refused = [t for t in pic["tiles"] if t["kind"] == "refused"]
    assert refused
    for t in refused:
        assert pixels(img, t["box"], red) > 200                         # border and X, in red
    shown = [t for t in pic["tiles"] if t["kind"] == "foreign_shown"]
    assert shown
    for t in shown:
        assert pixels(img, t["box"], orange) > 200
        assert colours(img, t["box"]) > 50                              # a stranger's picture, without segbind
    for t in (t for t in pic["tiles"] if t["kind"] == "own"):
        assert pixels(img, t["box"], red) == 0
        assert colours(img, t["box"]) > 50                              # a decoded picture, not a blank


def test_without_faults_the_picture_has_no_red_marks(tmp_path: Path, capsys) -> None:
    from PIL import Image

    assert main(["--cameras", "6", "--seconds", "20", "--seed", "3", "--faults", "none", "--rows", "4",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "fleet.json").read_text())
    img = Image.open(tmp_path / "fleet.png").convert("RGB")
    assert img.size == report.png_size(4)
    assert not [t for t in doc["picture"]["tiles"] if t["kind"] in ("refused", "foreign_shown")]
    red = tuple(doc["picture"]["colors"]["refused"])
    assert all(pixels(img, t["box"], red) == 0 for t in doc["picture"]["tiles"])


def test_the_command_line_runs_as_a_user_runs_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--cameras", "5", "--seconds", "15",
                           "--faults", "relay_cache_2020", "--out", str(tmp_path), "--no-png"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fleet 100%" in proc.stderr                       # progress lines when stderr is not a terminal
    assert "relay_cache_2020" in proc.stdout
    assert (tmp_path / "fleet.md").exists() and (tmp_path / "fleet.json").exists()
    assert not (tmp_path / "fleet.png").exists()
    bad = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--faults", "nonsense"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown fault nonsense" in bad.stderr
    engine = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--engine", "kafka"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert engine.returncode == 2 and "invalid choice: 'kafka'" in engine.stderr
    workers = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--engine", "nats", "--workers", "0"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert workers.returncode == 2 and "--workers must be at least 1" in workers.stderr


def test_progress_draws_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(10_000, "fleet", stream)
        for t in range(0, 10_001, 500):
            p._last_wall = 0.0
            p.update(t, t // 100)
        p.finish()
    assert tty.getvalue().count("\r") == 21 and "[" + "#" * 30 + "] 100%" in tty.getvalue()
    assert pipe.getvalue().count("\n") == 11 and "\r" not in pipe.getvalue()


def test_run_sh_runs_setup_then_the_fleet() -> None:
    lines = [line.strip() for line in (ROOT / "tools" / "run.sh").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    setup = [i for i, line in enumerate(lines) if line.startswith("bash tools/setup.sh run")]
    assert len(setup) == 1
    assert lines[-1] == 'exec .venv/bin/python -m host_sim.fleet "$@"'
    assert all(line.startswith("export ") for line in lines[setup[0] + 1:-1])


def test_a_mixed_fleet_shows_both_codecs_and_refuses_strangers_in_both() -> None:
    results, fleet = scenario("relay_cache_2020", True)
    hevc = {c.name for c in fleet.plan.cameras if c.codec == 2}
    assert hevc and results["fleet"]["h265_cameras"] == len(hevc)
    shown = [t for d in fleet.displays for ts in d.shown.values() for t in ts]
    assert {t.codec for t in shown} == {1, 2}
    assert all((t.codec == 2) == (t.camera in hevc) for t in shown)   # the tag binds the codec
    without = scenario("relay_cache_2020", False)[0]["results"]
    assert without["off"]["foreign_shown"] > 0 and results["results"]["on"]["foreign_shown"] == 0


def test_run_sh_help_answers_on_a_bare_python_before_set_up(tmp_path: Path) -> None:
    """Debian's own python3, none of the project's packages, no venv: --help still answers."""
    bare = "/usr/bin/python3"
    assert subprocess.run([bare, "-c", "import paho"], capture_output=True).returncode != 0  # really bare
    env = {"PATH": "%s:/usr/bin:/bin" % tmp_path, "HOME": str(tmp_path)}
    (tmp_path / "python3").symlink_to(bare)
    done = subprocess.run(["bash", str(ROOT / "tools" / "run.sh"), "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python3 -m host_sim.fleet") and "--faults" in done.stdout
    assert "relay_cache_2020" in done.stdout and "--engine" in done.stdout and not done.stderr
