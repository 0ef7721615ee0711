"""The fleet simulation, in-process (simulated time): the 2020 cache bug reaches displays
without verification and never reaches them with it; deterministic; every number accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_sim import report
from host_sim.cache import StreamingQualityCache
from host_sim.cloud import InProcessBus, Message
from host_sim.fleet import (BASE_MS, FleetConfig, FleetDisplay, Ledger, Progress, make_plan, main,
                            run_fleet)
from host_sim.netem import LinkProfile
from segbind import Binding, Keyring, derive_binding_key
from segbind_core.nal import annexb_units
from segbind_core.segment import split_segments
from segbind_core.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(cameras=8, seconds=40, seed=3)


@pytest.fixture(scope="module")
def bug_run():
    return run_fleet(FleetConfig(bug=True, **SMALL))


@pytest.fixture(scope="module")
def fixed_run():
    return run_fleet(FleetConfig(bug=False, **SMALL))


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


# -- the fleet: items 1 to 3 -------------------------------------------------------------------

def test_plan_owners_shares_and_weak_links(bug_run) -> None:
    results, fleet = bug_run
    plan = fleet.plan
    assert len(plan.cameras) == 8 and len(plan.accounts) == 8
    assert len({c.owner for c in plan.cameras}) == 8                 # one owner per camera
    assert plan.shares == 2 and all(v != c.owner for c in plan.cameras for v in c.viewers)
    for acct in plan.accounts:                                        # grants follow ownership and shares
        expected = {c.name for c in plan.cameras if acct.name == c.owner or acct.name in c.viewers}
        assert set(acct.cameras) == expected
        assert fleet.registry.keyring(acct.name).grants() == sorted(("%s" % c.owner, c.name, 1)
                                                                    for c in plan.cameras if c.name in expected)
    assert results["fleet"]["weak_downlinks"] == sum(a.weak for a in plan.accounts) > 0


def test_with_the_bug_foreign_video_is_shown_only_without_verification(bug_run) -> None:
    r = bug_run[0]["results"]
    assert r["off"]["foreign_shown"] > 0
    assert r["on"]["foreign_shown"] == 0
    assert r["on"]["own_falsely_rejected"] == 0 and r["false_rejects"] == []
    # every foreign delivery was refused, for the one reason that fits: not granted
    assert r["on"]["foreign_refused"] == r["off"]["foreign_shown"] == r["on"]["rejected"]["no_grant"]
    assert r["relay"]["fills_other_camera"] > 0 and r["delivered_unknown"] == 0


def test_what_each_display_showed_is_bound_to_it_and_shown_once(bug_run) -> None:
    results, fleet = bug_run
    granted = {a.name: set(a.cameras) for a in fleet.plan.accounts}
    for display in fleet.displays:
        assert display.shown, display.account
        assert {t.camera for t in display.shown} <= granted[display.account]
        assert {t.owner for t in display.shown} <= {c.owner for c in fleet.plan.cameras
                                                   if c.name in granted[display.account]}
        positions = [(t.camera, t.stream_id, t.seq) for t in display.shown]
        assert len(positions) == len(set(positions))                  # nothing shown twice
    victims = [a for a in results["accounts"] if a["off"]["foreign_shown"]]
    assert victims and all(a["on"]["foreign_shown"] == 0 for a in victims)
    assert all(a["on"]["refused"].get("no_grant", 0) >= a["delivered_foreign"] for a in victims)


def test_every_segment_is_accounted_for(bug_run) -> None:
    results, fleet = bug_run
    r = results["results"]
    assert r["sent"] == 8 * 40 == sum(c.produced for c in fleet.cameras)
    uplinks = r["links"]["uplink"].values()
    assert r["at_cloud"] == sum(s["sent"] - s["lost"] + s["duplicated"] for s in uplinks)
    assert sum(s["sent"] for s in uplinks) == r["sent"] - r["spool_dropped"]
    downlinks = r["links"]["downlink"].values()
    assert sum(s["sent"] for s in downlinks) == r["relayed"] + r["relay"]["fills"]
    assert r["delivered"] == downlink_arrivals(results)
    # the same deliveries, judged twice
    assert r["off"]["shown"] == r["delivered"] == r["on"]["shown"] + r["on"]["rejected_total"]
    assert r["off"]["would_refuse"] == r["on"]["rejected"]
    assert r["relay"]["timeouts"] == r["relay"]["fills"] + r["relay"]["misses"]
    # gaps: own segments never shown; verification on also misses those that arrived too late
    assert 0 <= r["off"]["gaps"] <= r["on"]["gaps"]
    late = sum(n for reason, n in r["on"]["own_refused"].items() if reason != "duplicate")
    assert r["on"]["gaps"] <= r["off"]["gaps"] + late


def test_without_the_bug_the_cache_refills_but_never_with_a_strangers_video(fixed_run) -> None:
    r = fixed_run[0]["results"]
    assert r["relay"]["fills"] > 0 and r["relay"]["fills_other_camera"] == 0
    assert r["off"]["foreign_shown"] == 0 and r["on"]["foreign_shown"] == 0
    assert r["on"]["own_falsely_rejected"] == 0 and "no_grant" not in r["on"]["rejected"]


def test_the_bug_needs_a_weak_network(tmp_path: Path) -> None:
    perfect = LinkProfile(delay_ms=20)
    results, _ = run_fleet(FleetConfig(cameras=6, seconds=20, seed=3, bug=True, good=perfect, weak=perfect))
    r = results["results"]
    assert r["relay"]["timeouts"] == 0 and r["off"]["foreign_shown"] == 0
    assert r["on"]["gaps"] == r["off"]["gaps"] == 0 and r["on"]["rejected_total"] == 0
    assert r["on"]["shown"] == r["delivered"] == sum(len(a["cameras"]) for a in results["accounts"]) * 20


def test_duplicates_are_refused_and_never_shown_twice() -> None:
    dup = LinkProfile(delay_ms=20, duplicate=0.2)
    results, _ = run_fleet(FleetConfig(cameras=4, seconds=30, seed=5, bug=False, good=dup, weak=dup,
                                       retry_ms=60_000))
    r = results["results"]
    assert r["on"]["rejected"]["duplicate"] > 0 and set(r["on"]["rejected"]) == {"duplicate"}
    assert r["on"]["gaps"] == 0 and r["off"]["shown"] > r["on"]["shown"]
    assert r["on"]["shown"] == sum(len(a["cameras"]) for a in results["accounts"]) * 30


@pytest.mark.parametrize("spool", [30, 1])
def test_cameras_hold_segments_through_outages_in_a_bounded_spool(spool: int) -> None:
    flapping = LinkProfile(delay_ms=20, outage_every_ms=6_000, outage_ms=3_500)
    steady = LinkProfile(delay_ms=20)
    results, fleet = run_fleet(FleetConfig(cameras=4, seconds=40, seed=7, bug=True, weak=flapping,
                                           good=steady, weak_cameras=1.0, weak_displays=0.0, spool=spool))
    r = results["results"]
    audience = {c.name: 1 + len(c.plan.viewers) for c in fleet.cameras}
    dropped = sum(c.spool_dropped * audience[c.name] for c in fleet.cameras)
    assert r["relay"]["timeouts"] == 0 and r["off"]["foreign_shown"] == 0
    if spool == 30:
        assert r["spool_max"] >= 3 and r["spool_dropped"] == 0
        assert r["on"]["gaps"] == r["off"]["gaps"] == 0                # held, not lost
    else:
        assert r["spool_dropped"] > 0
        assert r["on"]["gaps"] == r["off"]["gaps"] == dropped          # exactly what the spool dropped


def test_same_seed_same_results_other_seed_other_results() -> None:
    cfg = dict(cameras=6, seconds=25, bug=True)
    a, _ = run_fleet(FleetConfig(seed=11, **cfg))
    b, _ = run_fleet(FleetConfig(seed=11, **cfg))
    c, _ = run_fleet(FleetConfig(seed=12, **cfg))
    dump = lambda res: json.dumps({k: res[k] for k in ("config", "fleet", "results", "accounts")},
                                  sort_keys=True)
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    assert make_plan(FleetConfig(seed=11, **cfg)).cameras == make_plan(FleetConfig(seed=11, **cfg)).cameras


# -- the ground truth behind "own segments falsely rejected" -----------------------------------

def test_false_rejection_is_counted_when_an_own_segment_is_refused_for_no_network_reason(clip: bytes) -> None:
    secret = os.urandom(32)
    key = derive_binding_key(secret, "alice", "cam-1", 1)
    tagger = Tagger(key, "alice", "cam-1", 1, BASE_MS)
    ledger = Ledger()
    tagged = []
    for units in split_segments(clip, annexb_units(clip)) * 2:
        data = b"".join(b"\x00\x00\x00\x01" + clip[s:e] for s, e in units)
        payload, tag = tagger.tag_annexb(data, annexb_units(data), BASE_MS + 1000 * len(tagged))
        ledger.record(payload, "cam-1", tag.stream_id, tag.seq)
        tagged.append(payload)
    assert len(tagged) == 4
    bus = InProcessBus()
    display = FleetDisplay(bus.transport("d"), "alice", ["cam-1"], ledger, "segbind/v1")

    def deliver(payload: bytes) -> None:
        display._on_segment(Message("segbind/v1/acct/alice/seg", payload))

    deliver(tagged[0])                      # no grant yet: an own, authentic segment refused
    assert display.false_rejects and display.false_rejects[0]["reason"] == "no_grant"
    display.verifier.keyring = Keyring([Binding("alice", "cam-1", 1, key)])
    deliver(tagged[1])                      # shown (the first segment it accepts)
    deliver(tagged[1])                      # a duplicate: refused, justified
    deliver(tagged[3])                      # shown (gap)
    deliver(tagged[2])                      # out of order: refused, justified
    assert [v.reason.value for v in display.verdicts] == ["no_grant", "ok", "duplicate", "gap", "out_of_order"]
    assert len(display.false_rejects) == 1 and display.shown_foreign == 0
    assert display.gaps({"cam-1": 4}) == 2 and display.gaps({"cam-1": 4}, off=True) == 0


# -- the report: table, Markdown, JSON, PNG ----------------------------------------------------

def red_pixels(img, box, color) -> int:
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

    assert main(["--cameras", "8", "--seconds", "30", "--seed", "3", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "verification on" in table and "foreign segments shown" in table
    doc = json.loads((tmp_path / "fleet.json").read_text())
    md = (tmp_path / "fleet.md").read_text()
    r = doc["results"]
    assert r["off"]["foreign_shown"] > 0 and r["on"]["foreign_shown"] == 0
    line = next(l for l in table.splitlines() if l.startswith("foreign segments shown"))
    assert line.split()[-2:] == ["0", "{:,}".format(r["off"]["foreign_shown"])]
    assert "| foreign segments shown | 0 | %s |" % "{:,}".format(r["off"]["foreign_shown"]) in md
    assert "![what each display showed](fleet.png)" in md

    pic = doc["picture"]
    img = Image.open(tmp_path / "fleet.png").convert("RGB")
    rows = len(pic["rows"])
    assert rows == 8 and img.size == report.png_size(rows) == tuple(pic["size"])
    by_account = {a["account"]: a for a in doc["accounts"]}
    victims = [row["account"] for row in pic["rows"] if by_account[row["account"]]["on"]["foreign_refused"]]
    assert victims and pic["rows"][0]["account"] in victims      # the displays sent a stranger's video first
    red, orange = pic["colors"]["refused"], pic["colors"]["foreign_shown"]
    for row in pic["rows"]:
        tiles = [t for t in pic["tiles"] if t["account"] == row["account"]]
        refused = [t for t in tiles if t["kind"] == "refused"]
        assert len(refused) == min(report.REFUSED_TILES, by_account[row["account"]]["on"]["foreign_refused"])
        for t in refused:
            assert red_pixels(img, t["box"], red) > 200              # border and X, in red
        for t in (t for t in tiles if t["kind"] == "foreign_shown"):
            assert red_pixels(img, t["box"], orange) > 200
        for t in (t for t in tiles if t["kind"] == "own"):
            assert red_pixels(img, t["box"], red) == 0
            assert colours(img, t["box"]) > 50                       # a decoded picture, not a blank


def test_without_the_bug_the_picture_has_no_red_marks(tmp_path: Path, capsys) -> None:
    from PIL import Image

    assert main(["--cameras", "6", "--seconds", "20", "--seed", "3", "--no-bug", "--rows", "4",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "fleet.json").read_text())
    img = Image.open(tmp_path / "fleet.png").convert("RGB")
    assert img.size == report.png_size(4)
    assert not [t for t in doc["picture"]["tiles"] if t["kind"] in ("refused", "foreign_shown")]
    red = tuple(doc["picture"]["colors"]["refused"])
    assert all(red_pixels(img, t["box"], red) == 0 for t in doc["picture"]["tiles"])


def test_the_command_line_runs_as_a_user_runs_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "host_sim.fleet", "--cameras", "5", "--seconds", "15",
                           "--out", str(tmp_path), "--no-png"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fleet 100%" in proc.stderr                       # progress lines when stderr is not a terminal
    assert "segments verified" in proc.stdout and "verifier took" in proc.stdout
    assert (tmp_path / "fleet.md").exists() and (tmp_path / "fleet.json").exists()
    assert not (tmp_path / "fleet.png").exists()


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
    lines = [l.strip() for l in (ROOT / "tools" / "run.sh").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    setup = [i for i, l in enumerate(lines) if l.startswith("bash tools/setup.sh run")]
    assert len(setup) == 1
    assert lines[-1] == 'exec .venv/bin/python -m host_sim.fleet "$@"'
    assert all(l.startswith("export ") for l in lines[setup[0] + 1:-1])
    assert not (ROOT / "host_sim" / "demo.py").exists()
