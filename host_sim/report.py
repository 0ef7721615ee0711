"""The fleet simulation's outputs: the table, a Markdown report, JSON, and a PNG of
what each display showed (decoded frames) and refused (a stranger's camera, marked in red).

    table(results) -> str
    write(results, fleet, out_dir, png=True, rows=10) -> [paths]   # fleet.md, fleet.json, fleet.png
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# The picture's geometry (pixels) and its marking colours.
TILE_W, TILE_H = 160, 90
CAP_H = 26
PAD = 6
LABEL_W = 230
HEADER_H = 70
SECTION_GAP = 18
OWN_TILES, REFUSED_TILES, OFF_TILES = 4, 3, 4
ROW_H = TILE_H + CAP_H + 2 * PAD

REFUSED_RED = (220, 0, 0)      # a refused foreign segment: border, X and caption
SHOWN_ORANGE = (255, 150, 0)   # verification off: a foreign segment shown
OWN_GREEN = (0, 150, 60)
BACKGROUND = (250, 250, 250)
EMPTY = (232, 232, 232)
INK = (30, 30, 30)
GREY = (120, 120, 120)


def _on_x0() -> int:
    return PAD + LABEL_W + PAD


def _off_x0() -> int:
    return _on_x0() + (OWN_TILES + REFUSED_TILES) * (TILE_W + PAD) + SECTION_GAP


def png_size(rows: int) -> Tuple[int, int]:
    """Width and height of the picture for ``rows`` displays."""
    width = _off_x0() + OFF_TILES * (TILE_W + PAD) + PAD
    return width, HEADER_H + rows * ROW_H + PAD


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------

def _rows(results: dict) -> List[Tuple[str, str, str]]:
    r = results["results"]
    on, off = r["on"], r["off"]
    rows = [("segments sent by the cameras", r["sent"], r["sent"]),
            ("segments delivered to the displays", r["delivered"], r["delivered"]),
            ("segments shown", on["shown"], off["shown"]),
            ("segments rejected", on["rejected_total"], off["rejected_total"])]
    for reason, n in on["rejected"].items():
        rows.append(("  rejected: %s" % reason, n, off["rejected"].get(reason, 0)))
    rows += [("gaps (own segments never shown)", on["gaps"], off["gaps"]),
             ("foreign segments shown", on["foreign_shown"], off["foreign_shown"]),
             ("own segments falsely rejected", on["own_falsely_rejected"], off["own_falsely_rejected"])]
    return [(a, "{:,}".format(b), "{:,}".format(c)) for a, b, c in rows]


def table(results: dict) -> str:
    cfg, fleet, r, perf = results["config"], results["fleet"], results["results"], results["performance"]
    where = ("over MQTT (%s), real time x%g" % (cfg["broker"], cfg["speed"]) if cfg["broker"]
             else "in-process, simulated time")
    lines = ["",
             "segbind fleet: %d cameras x %d s, %d accounts (%d shared cameras), seed %d, cache bug %s, %s"
             % (fleet["cameras"], cfg["seconds"], fleet["accounts"], fleet["shares"], cfg["seed"],
                "ON" if cfg["bug"] else "off", where),
             "weak links: %d of %d camera uplinks, %d of %d display downlinks (loss, latency, jitter, "
             "reordering, duplicates, outages)" % (fleet["weak_uplinks"], fleet["cameras"],
                                                   fleet["weak_downlinks"], fleet["accounts"]),
             ""]
    rows = _rows(results)
    w = max(len(a) for a, _, _ in rows) + 2
    lines.append("%-*s %18s %18s" % (w, "", "verification on", "verification off"))
    for a, b, c in rows:
        lines.append("%-*s %18s %18s" % (w, a, b, c))
    relay = r["relay"]
    lines += ["",
              "relay: %s deliveries tracked, %s receipt timeouts, %s refills from the quality cache, "
              "%s of them another camera's segment" % tuple("{:,}".format(relay[k]) for k in (
                  "tracked", "timeouts", "fills", "fills_other_camera")),
              "cameras: %s segments held in spools at worst per camera, %s dropped from full spools"
              % (r["spool_max"], r["spool_dropped"])]
    foreign_displays = sum(1 for a in results["accounts"] if a["off"]["foreign_shown"])
    if r["off"]["foreign_shown"]:
        lines.append("without verification, %s foreign segments would have been shown on %d displays; "
                     "with it, %s were shown" % ("{:,}".format(r["off"]["foreign_shown"]), foreign_displays,
                                                 "{:,}".format(r["on"]["foreign_shown"])))
    else:
        lines.append("no foreign segment reached any display in this run")
    lines.append("performance: %s segments verified in %.1f s (%s verified/s); the verifier took %.2f s "
                 "of CPU (%s segments/s), %.1f %% of the run's %.1f s of CPU; %s segments tagged"
                 % ("{:,}".format(perf["segments_verified"]), perf["wall_s"],
                    "{:,.0f}".format(perf["verified_per_s"] or 0), perf["verifier_cpu_s"],
                    "{:,.0f}".format(perf["verifier_segments_per_cpu_s"] or 0),
                    100 * (perf["verifier_cpu_share"] or 0), perf["cpu_s"],
                    "{:,}".format(perf["segments_tagged"])))
    if r["incomplete"]:
        lines.append("WARNING: the run did not settle; some segments were still in flight")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Markdown and JSON
# ------------------------------------------------------------------------------------------

def markdown(results: dict, picture: Optional[dict]) -> str:
    cfg, fleet, r, perf = results["config"], results["fleet"], results["results"], results["performance"]
    out = ["# segbind fleet simulation", "",
           "%d cameras x %d s of real H.264, %d accounts (%d shared cameras), seed %d, relay cache bug **%s**, %s."
           % (fleet["cameras"], cfg["seconds"], fleet["accounts"], fleet["shares"], cfg["seed"],
              "on" if cfg["bug"] else "off",
              "over MQTT (%s)" % cfg["broker"] if cfg["broker"] else "in-process, simulated time"),
           "Weak links: %d of %d camera uplinks and %d of %d display downlinks; the cache has %d slots."
           % (fleet["weak_uplinks"], fleet["cameras"], fleet["weak_downlinks"], fleet["accounts"],
              fleet["cache_slots"]),
           "", "| | verification on | verification off |", "| --- | ---: | ---: |"]
    for a, b, c in _rows(results):
        out.append("| %s | %s | %s |" % (a.strip(), b, c))
    relay = r["relay"]
    out += ["", "Definitions are in docs/FLEET.md. *Verification off* is the same deliveries shown as a "
            "display without segbind would show them; the verifier's verdicts on them are: %s."
            % (", ".join("%s %s" % (n, k) for k, n in r["off"]["would_refuse"].items()) or "none"),
            "", "## The relay", "",
            "| deliveries tracked | receipts | timeouts | cache refills | of another camera | misses |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            "| %d | %d | %d | %d | %d | %d |" % (relay["tracked"], relay["receipts"], relay["timeouts"],
                                                relay["fills"], relay["fills_other_camera"], relay["misses"]),
            "", "Cameras: %d segments sent, %d reached the cloud, %d relayed; spools held at most %d "
            "segments and dropped %d." % (r["sent"], r["at_cloud"], r["relayed"], r["spool_max"],
                                           r["spool_dropped"]),
            "", "## The network", "",
            "| links | kind | count | sent | lost | duplicated | reordered | held by outage |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, by in r["links"].items():
        for quality, s in by.items():
            out.append("| %s | %s | %d | %d | %d | %d | %d | %d |" % (
                kind, quality, s["links"], s["sent"], s["lost"], s["duplicated"], s["reordered"],
                s["held_by_outage"]))
    victims = sorted((a for a in results["accounts"] if a["delivered_foreign"]),
                     key=lambda a: (-a["delivered_foreign"], a["account"]))
    out += ["", "## Displays that were sent a stranger's video", ""]
    if victims:
        out += ["%d displays. The first of them:" % len(victims), "",
                "| account | its cameras | downlink | foreign delivered | from | shown, verification off "
                "| shown, verification on | refused as |",
                "| --- | --- | --- | ---: | --- | ---: | ---: | --- |"]
        for a in victims[:15]:
            out.append("| %s | %s | %s | %d | %s | %d | %d | %s |" % (
                a["account"], ", ".join(a["cameras"]), a["downlink"], a["delivered_foreign"],
                ", ".join(sorted(a["foreign_from"])), a["off"]["foreign_shown"], a["on"]["foreign_shown"],
                ", ".join("%s %d" % kv for kv in a["on"]["refused"].items())))
    else:
        out.append("None.")
    out += ["", "## Performance", "",
            "- %s segments verified in %.2f s of wall time: %s per second." % (
                "{:,}".format(perf["segments_verified"]), perf["wall_s"],
                "{:,.0f}".format(perf["verified_per_s"] or 0)),
            "- The verifier used %.2f s of CPU (%s segments per CPU second): %.1f %% of the run's %.2f s."
            % (perf["verifier_cpu_s"], "{:,.0f}".format(perf["verifier_segments_per_cpu_s"] or 0),
               100 * (perf["verifier_cpu_share"] or 0), perf["cpu_s"]),
            "- %s segments tagged by the cameras; clips prepared in %.2f s." % (
                "{:,}".format(perf["segments_tagged"]), perf["clips_setup_s"])]
    if picture:
        out += ["", "## What the displays showed", "",
                "Each row is one display. Left, verification on: frames it decoded from segments it "
                "showed (green), then segments of a stranger's camera it refused (red X). Right, "
                "verification off: what the same display would have shown, a stranger's video in orange.",
                "", "![what each display showed](%s)" % picture["file"]]
    return "\n".join(out) + "\n"


def write(results: dict, fleet, out_dir, png: bool = True, rows: int = 10) -> List[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    picture = None
    if png:
        try:
            import PIL  # noqa: F401  (tools/setup.sh installs Pillow with the test extras)
        except ImportError:
            print("no picture: Pillow is not installed (pip install Pillow)", file=sys.stderr)
        else:
            picture = write_png(fleet, results, out / "fleet.png", rows)
            paths.append(out / "fleet.png")
    doc = dict(results, picture=picture)
    (out / "fleet.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (out / "fleet.md").write_text(markdown(results, picture))
    return [out / "fleet.md", out / "fleet.json"] + paths


# ------------------------------------------------------------------------------------------
# The picture
# ------------------------------------------------------------------------------------------

def first_frame(payload: bytes):
    """The first picture PyAV decodes from an Annex-B segment, as a PIL image (None if none)."""
    import av

    try:
        with av.open(io.BytesIO(payload), format="h264") as container:
            for frame in container.decode(video=0):
                return frame.to_image()
    except Exception:  # noqa: BLE001 - a tile then says it could not be decoded
        return None
    return None


def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def choose_displays(fleet, rows: int) -> list:
    """Displays that were sent a stranger's video first, then the others, in account order."""
    ds = fleet.displays
    first = [d for d in ds if d.delivered_foreign]
    rest = [d for d in ds if not d.delivered_foreign]
    return (first + rest)[:max(0, rows)]


def write_png(fleet, results: dict, path, rows: int = 10) -> dict:
    """Draw the picture; return its description (size, rows, each tile's kind and box)."""
    from PIL import Image, ImageDraw

    chosen = choose_displays(fleet, rows)
    size = png_size(len(chosen))
    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    font, small, big = _font(11), _font(10), _font(15)
    cfg = results["config"]
    r = results["results"]
    draw.text((PAD, 6), "segbind fleet: %d cameras, seed %d, relay cache bug %s -- %s foreign segments "
              "delivered; shown: %s with verification on, %s with it off" % (
                  results["fleet"]["cameras"], cfg["seed"], "ON" if cfg["bug"] else "off",
                  "{:,}".format(r["off"]["foreign_shown"]), r["on"]["foreign_shown"],
                  "{:,}".format(r["off"]["foreign_shown"])), fill=INK, font=big)
    y_head = HEADER_H - 24
    draw.text((_on_x0(), y_head), "VERIFICATION ON: frames shown (own cameras)", fill=OWN_GREEN, font=font)
    draw.text((_on_x0() + OWN_TILES * (TILE_W + PAD), y_head), "refused: not bound to this account",
              fill=REFUSED_RED, font=font)
    draw.text((_off_x0(), y_head), "VERIFICATION OFF: what it would have shown", fill=INK, font=font)
    draw.line([(_off_x0() - SECTION_GAP // 2, HEADER_H - 28), (_off_x0() - SECTION_GAP // 2, size[1] - PAD)],
              fill=GREY, width=1)
    tiles = []
    cache: Dict[int, object] = {}

    def frame_of(payload: bytes):
        key = id(payload)
        if key not in cache:
            cache[key] = first_frame(payload)
        return cache[key]

    def tile(x: int, y: int, payload: Optional[bytes], kind: str, line1: str, line2: str, account: str) -> None:
        box = (x, y, x + TILE_W, y + TILE_H)
        if payload is None:
            draw.rectangle(box, fill=EMPTY)
            draw.text((x + 8, y + TILE_H // 2 - 6), line1, fill=GREY, font=small)
            tiles.append({"kind": kind, "account": account, "box": list(box)})
            return
        frame = frame_of(payload)
        if frame is None:
            draw.rectangle(box, fill=EMPTY)
            draw.text((x + 8, y + 8), "(no picture decoded)", fill=GREY, font=small)
        else:
            img.paste(frame.convert("RGB").resize((TILE_W, TILE_H)), (x, y))
        color = {"own": OWN_GREEN, "refused": REFUSED_RED, "foreign_shown": SHOWN_ORANGE}[kind]
        width = 2 if kind == "own" else 4
        draw.rectangle(box, outline=color, width=width)
        if kind == "refused":
            draw.line([(x + 4, y + 4), (x + TILE_W - 5, y + TILE_H - 5)], fill=REFUSED_RED, width=4)
            draw.line([(x + 4, y + TILE_H - 5), (x + TILE_W - 5, y + 4)], fill=REFUSED_RED, width=4)
        draw.text((x, y + TILE_H + 2), line1, fill=color if kind != "own" else INK, font=small)
        draw.text((x, y + TILE_H + 13), line2, fill=GREY, font=small)
        tiles.append({"kind": kind, "account": account, "box": list(box)})

    owner_of = {c.name: c.plan.owner for c in fleet.cameras}
    row_info = []
    for row, d in enumerate(chosen):
        y = HEADER_H + row * ROW_H + PAD
        acct = next(a for a in fleet.plan.accounts if a.name == d.account)
        draw.text((PAD, y), d.account, fill=INK, font=big)
        lines = ["cameras: %s" % ", ".join(sorted(d.granted)),
                 "downlink: %s" % ("weak" if acct.weak else "good"),
                 "delivered %d, shown %d" % (d.delivered, len(d.shown)),
                 "a stranger's video: %d delivered" % d.delivered_foreign,
                 "shown: %d (on), %d (off)" % (d.shown_foreign, d.delivered_foreign)]
        for k, text in enumerate(lines):
            draw.text((PAD, y + 20 + 13 * k), text, fill=INK if k < 3 else
                      (REFUSED_RED if d.delivered_foreign and k == 3 else INK), font=small)
        x = _on_x0()
        for k in range(OWN_TILES):
            if k < len(d.samples_own):
                payload, camera, seq = d.samples_own[k]
                tile(x, y, payload, "own", "%s seg %d" % (camera, seq), "shown", d.account)
            else:
                tile(x, y, None, "empty", "nothing shown", "", d.account)
            x += TILE_W + PAD
        for k in range(REFUSED_TILES):
            if k < len(d.samples_foreign):
                payload, camera, seq, reason = d.samples_foreign[k]
                tile(x, y, payload, "refused", "REFUSED: %s" % reason,
                     "%s of %s" % (camera, owner_of.get(camera, "?")), d.account)
            else:
                tile(x, y, None, "empty", "nothing refused", "", d.account)
            x += TILE_W + PAD
        x = _off_x0()
        off = [("foreign_shown", p, c, s) for p, c, s, _r in d.samples_foreign]
        off += [("own", p, c, s) for p, c, s in d.samples_own]
        for k in range(OFF_TILES):
            if k < len(off):
                kind, payload, camera, seq = off[k]
                if kind == "foreign_shown":
                    tile(x, y, payload, kind, "SHOWN: a stranger's camera",
                         "%s of %s" % (camera, owner_of.get(camera, "?")), d.account)
                else:
                    tile(x, y, payload, kind, "%s seg %d" % (camera, seq), "shown", d.account)
            else:
                tile(x, y, None, "empty", "nothing shown", "", d.account)
            x += TILE_W + PAD
        row_info.append({"account": d.account, "y": y})
    img.save(str(path), optimize=True)
    return {"file": Path(path).name, "size": list(size), "rows": row_info, "tiles": tiles,
            "colors": {"refused": list(REFUSED_RED), "foreign_shown": list(SHOWN_ORANGE),
                       "own": list(OWN_GREEN)}}
