"""Each fault alone, then all together, with segbind and without, on the same seed; and the
command line (``python3 -m host_sim.fleet``)."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Tuple

from host_sim import fleet_options, report
from host_sim.fleet.world import Fleet, run_fleet
from host_sim.fleet_options import FAULTS, REALTIME_CAMERAS
from host_sim.plan import FleetConfig, clip_templates


def scenarios(faults: List[str]) -> List[Tuple[str, Tuple[str, ...]]]:
    """(name, faults) for each fault alone, then every one of them together."""
    out = [(f, (f,)) for f in faults]
    if len(faults) > 1:
        out.append(("all together", tuple(faults)))
    return out


def run_scenarios(cfg: FleetConfig, faults: List[str], progress: bool = False,
                  progress_stream=None) -> Tuple[dict, Fleet, Optional[Fleet]]:
    """Every scenario twice on the same seed, with segbind and without; plus all faults with the
    cloud's second line off (the displays alone). Returns the matrix, the displays-alone fleet
    and the fleet without segbind with every fault on (the two sides of the picture)."""
    templates = clip_templates(replace(cfg, faults=tuple(FAULTS)))
    rows = []
    without_all: Optional[Fleet] = None
    for name, chosen in scenarios(faults):
        with_ = run_fleet(replace(cfg, faults=chosen, defended=True), progress, progress_stream, templates)[0]
        without, fleet = run_fleet(replace(cfg, faults=chosen, defended=False), progress, progress_stream, templates)
        if chosen == tuple(faults):
            without_all = fleet
        rows.append(row(name, chosen, with_, without))
    alone, picture_fleet = run_fleet(replace(cfg, faults=tuple(faults), defended=True, second_line=False),
                                     progress, progress_stream, templates)
    rows.append(row("all together, cloud second line off", tuple(faults), alone, None))
    if without_all is None:  # no fault at all: the picture's right side is the plain run of that
        without_all = run_fleet(replace(cfg, faults=(), defended=False), progress, progress_stream, templates)[1]
    return {"segbind_fleet_scenarios": 2, "config": cfg.as_dict(), "scenarios": rows,
            "picture_run": alone}, picture_fleet, without_all


def row(name: str, faults: Tuple[str, ...], with_: dict, without: Optional[dict]) -> dict:
    """One line of the table: what each side of a scenario showed, and to whom."""
    w = with_["results"]
    out = {
        "scenario": name, "faults": list(faults),
        "with": {"foreign_shown": w["on"]["foreign_shown"], "forged_shown": w["on"]["forged_shown"],
                 "own_lost_to_verification": w["own_lost_to_verification"],
                 "own_without_grant": w["own_without_grant"], "own_never_delivered": w["own_never_delivered"],
                 "own_produced": w["own_produced"],
                 "own_accepted": w["on"]["own_accepted"], "own_delivered": w["off"]["own_delivered"],
                 **_seen_by_strangers(w),
                 "rotation_retries": w["rotations"]["retries"], "rotation_alarms": w["rotations"]["alarms"],
                 "superseded_flagged": w["rotations"]["flagged_superseded"],
                 "refused_shares": w["refused_shares"],
                 "cloud_refused": sum(n for k, n in w["cloud"]["refused"].items() if k.startswith("second_line")),
                 "display_refused": w["on"]["refused"], "grant_refusals": w["grant_refusals"],
                 "cameras_halted": w["cameras_halted"], "sent": w["sent"]},
    }
    service = w.get("service")
    if service is not None:  # --engine nats: the owners' recording service
        out["with"]["service"] = {k: service[k] for k in SERVICE_KEYS}
    if without is not None:
        o = without["results"]
        out["without"] = {"foreign_shown": o["off"]["foreign_shown"], "forged_shown": o["off"]["forged_shown"],
                          "own_delivered": o["off"]["own_delivered"], "own_produced": o["own_produced"],
                          "own_never_delivered": o["own_never_delivered"],
                          **_seen_by_strangers(o), "sent": o["sent"]}
    return out


def _seen_by_strangers(r: dict) -> dict:
    """What reached a stranger, and what a stranger's decoder made of it."""
    return {"readable_by_stranger": r["stranger"]["readable"],
            "stranger_thumbnails": r["stranger"]["thumbnails"],
            "readable_thumbnails": r["stranger"]["thumbnails_readable"],
            "other_owners_tile": r["other_owners_tile"],
            "revoked_late": r["revoked_late"]}


SERVICE_KEYS = ("stored", "judged", "own_accepted", "foreign_accepted", "forged_accepted", "lost",
                "judged_twice_different", "own_refused")


def passed(matrix: dict) -> bool:
    """With segbind, in every scenario: nothing foreign or forged shown, nothing a stranger could
    see, nothing in another owner's tile, nothing a revoked viewer was not granted, no own segment
    lost to verification; and where the owners' recording service ran (``--engine nats``), no
    segment lost, judged twice to different verdicts, or accepted for another account or forged."""
    return all(r["with"][k] == 0 for r in matrix["scenarios"] for k in report.MUST_BE_ZERO) and \
        all(r["with"]["service"][k] == 0 for r in matrix["scenarios"] if "service" in r["with"]
            for k in report.SERVICE_MUST_BE_ZERO)


def main(argv=None) -> int:
    parser = fleet_options.parser()
    args = parser.parse_args(argv)
    if args.cameras < 1:
        parser.error("--cameras must be at least 1")
    engine = args.engine or ("mqtt" if args.broker else "in-process")
    if engine == "in-process" and args.broker:
        parser.error("--broker is for --engine mqtt or nats")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    realtime = engine != "in-process"
    seconds = args.seconds if args.seconds is not None else (20 if realtime else 60)
    if seconds < 1:
        parser.error("--seconds must be at least 1")
    speed = args.speed if args.speed is not None else min(1.0, round(REALTIME_CAMERAS / args.cameras, 3))
    if speed <= 0:
        parser.error("--speed must be positive")
    if args.faults == "all":
        faults = list(FAULTS)
    elif args.faults == "none":
        faults = []
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            parser.error("unknown fault %s (known: %s)" % (", ".join(unknown), ", ".join(FAULTS)))
    cfg = FleetConfig(cameras=args.cameras, seconds=seconds, seed=args.seed, share=args.share, engine=engine,
                      broker=args.broker or ("local" if realtime else None), speed=speed, workers=args.workers)
    if args.weak is not None:
        cfg.weak_cameras = cfg.weak_displays = args.weak
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    where = "in-process, simulated time" if engine == "in-process" else "over MQTT at %s, real time x%g" % (
        cfg.broker, speed)
    if engine == "nats":
        where += ", and the owners' recording service on a local NATS cluster (%d workers)" % cfg.workers
    print("segbind fleet: %d cameras x %d s, seed %d, %s; faults: %s" % (
        cfg.cameras, cfg.seconds, cfg.seed, where, ", ".join(faults) or "none"), file=sys.stderr, flush=True)
    matrix, fleet, plain = run_scenarios(cfg, faults, progress=not args.no_progress)
    print(report.table(matrix))
    paths = report.write(matrix, fleet, Path(args.out), png=not args.no_png, rows=args.rows, plain=plain)
    print("report: %s" % ", ".join(str(p) for p in paths))
    if args.browser:
        from host_sim.browser import demo_screenshot

        shown = demo_screenshot(Path(args.out) / "display.png")
        print("browser display: %s (%s)" % (shown["screenshot"], "; ".join(
            "%s: %d shown, refused %s" % (t["camera"], t["shown"], t["refused"] or "nothing") for t in shown["tiles"])))
    return 0 if passed(matrix) else 1


def run(argv=None) -> None:
    """``python3 -m host_sim.fleet``."""
    sys.exit(main(argv))
