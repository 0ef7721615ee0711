"""The fleet simulation's outputs: the scenario table, a Markdown report, JSON, and a PNG of
what each display showed (decoded frames) and refused (a stranger's camera, marked in red).

    table(matrix) -> str
    write(matrix, fleet, out_dir, png=True, rows=10) -> [paths]   # fleet.md, fleet.json, fleet.png
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

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

# The numbers that must be 0 with segbind in every scenario (host_sim.fleet.scenarios.passed).
MUST_BE_ZERO = ("foreign_shown", "forged_shown", "own_lost_to_verification", "readable_by_stranger",
                "readable_thumbnails", "other_owners_tile", "revoked_late")

PAIRS = [
    # (heading, key): a cell reads "without segbind / with segbind"
    ("foreign shown", "foreign_shown"),
    ("forged shown", "forged_shown"),
    ("a stranger's decoder sees the scene", "readable_by_stranger"),
    ("thumbnails sent to strangers", "stranger_thumbnails"),
    ("thumbnails a stranger sees", "readable_thumbnails"),
    ("in another owner's tile", "other_owners_tile"),
    ("a revoked viewer shown past its last period", "revoked_late"),
    ("own never delivered", "own_never_delivered"),
]
WITH_ONLY = [
    # (heading, key): with segbind only
    ("own lost to verification", "own_lost_to_verification"),
    ("own not shown: grants lost", "own_without_grant"),
    ("rotations sent again by owners' apps", "rotation_retries"),
    ("rotation alarms raised by owners' apps", "rotation_alarms"),
    ("superseded-epoch video flagged by owners' displays", "superseded_flagged"),
    ("contacts' cameras not taken by owners' apps", "refused_shares"),
    ("refused by the cloud's second line", "cloud_refused"),
    ("grants refused by displays", "grant_refusals"),
    ("cameras refusing a rolled-back state", "cameras_halted"),
]


def _value(row: dict, where: str, key: str) -> Optional[int]:
    side = row.get(where)
    if side is None:
        return None
    value = side.get(key, 0)
    return sum(value.values()) if isinstance(value, dict) else int(value)


def _cell(row: dict, where: str, key: str) -> str:
    value = _value(row, where, key)
    return "-" if value is None else "{:,}".format(value)


TABLE = [  # the terminal's columns: (two-line heading, key); each cell "without / with"
    (("foreign", "shown"), "foreign_shown"),
    (("forged", "shown"), "forged_shown"),
    (("a stranger sees", "the scene"), "readable_by_stranger"),
    (("a stranger sees", "thumbnails"), "readable_thumbnails"),
    (("in another", "owner's tile"), "other_owners_tile"),
    (("revoked viewer", "past its period"), "revoked_late"),
]
SINGLE = [  # with segbind only
    (("own lost to", "verification"), "own_lost_to_verification"),
    (("own unshown:", "grants lost"), "own_without_grant"),
    (("second line", "refused"), "cloud_refused"),
]
CELL = 17
SERVICE_COLUMNS = [  # the recording service's audit (--engine nats): (heading, key)
    ("stored", "stored"), ("judged", "judged"), ("own accepted", "own_accepted"),
    ("own refused", "own_refused"), ("foreign accepted", "foreign_accepted"),
    ("forged accepted", "forged_accepted"), ("lost", "lost"), ("judged 2x diff.", "judged_twice_different"),
]
SERVICE_MUST_BE_ZERO = ("foreign_accepted", "forged_accepted", "lost", "judged_twice_different")


def _total(value: Any) -> int:
    return sum(value.values()) if isinstance(value, dict) else int(value)


def table(matrix: dict) -> str:
    cfg = matrix["config"]
    engine = cfg.get("engine", "mqtt" if cfg["broker"] else "in-process")
    where = ("in-process, simulated time" if engine == "in-process"
             else "over MQTT (%s), real time x%g" % (cfg["broker"], cfg["speed"]))
    if engine == "nats":
        where += ", and the owners' recording service on NATS (%d workers)" % cfg.get("workers", 2)
    lines = ["", "segbind fleet: %d cameras x %d s, seed %d, %s; each scenario ran with segbind and without, "
             "on the same seed; each pair reads: without segbind / with segbind" % (
                 cfg["cameras"], cfg["seconds"], cfg["seed"], where), ""]
    w = max(len(r["scenario"]) for r in matrix["scenarios"]) + 2
    for line in (0, 1):
        lines.append("%-*s" % (w, "") + "".join("%*s" % (CELL, c[0][line]) for c in TABLE + SINGLE))
    for r in matrix["scenarios"]:
        pairs = ["%s / %s" % (_cell(r, "without", key), _cell(r, "with", key)) for _h, key in TABLE]
        singles = [_cell(r, "with", key) for _h, key in SINGLE]
        lines.append("%-*s" % (w, r["scenario"]) + "".join("%*s" % (CELL, c) for c in pairs + singles))
    served = [r for r in matrix["scenarios"] if "service" in r["with"]]
    if served:
        lines += ["", "the owners' recording service (NATS JetStream workers), with segbind:", ""]
        lines.append("%-*s" % (w, "") + "".join("%*s" % (CELL, h) for h, _k in SERVICE_COLUMNS))
        for r in served:
            lines.append("%-*s" % (w, r["scenario"]) + "".join(
                "%*s" % (CELL, "{:,}".format(_total(r["with"]["service"][k]))) for _h, k in SERVICE_COLUMNS))
    bad = [r["scenario"] for r in matrix["scenarios"] if any(r["with"].get(k, 0) for k in MUST_BE_ZERO)
           or any(r["with"].get("service", {}).get(k, 0) for k in SERVICE_MUST_BE_ZERO)]
    lines.append("")
    lines.append("with segbind, in every scenario: no foreign or forged segment shown, nothing a stranger's decoder "
                 "could see, nothing in another owner's tile, nothing a revoked viewer was not granted, no own "
                 "segment lost to verification" if not bad else "FAILED in: %s" % ", ".join(bad))
    return "\n".join(lines)


def markdown(matrix: dict, picture: Optional[dict]) -> str:
    from host_sim.fleet_options import FAULTS

    cfg = matrix["config"]
    engine = cfg.get("engine", "mqtt" if cfg["broker"] else "in-process")
    out = ["# segbind fleet simulation", "",
           "%d cameras x %d s of real H.264 and H.265 (seed %d, %s). Every scenario ran twice on the same seed: "
           "**with segbind** (cameras encrypt and tag, displays verify under their owners' grants, cameras refuse a "
           "rolled-back state, the cloud's second line checks its routing and the key ids) and **without** (plain "
           "video, shown as routed). A stranger's decoder is FFmpeg's, given the bytes the stranger was handed "
           "(host_sim.stranger). Definitions are in docs/FLEET.md." % (
               cfg["cameras"], cfg["seconds"], cfg["seed"],
               "in-process, simulated time" if engine == "in-process" else "over MQTT%s, real time" % (
                   " with the owners' recording service on NATS" if engine == "nats" else "")), "",
           "## What reached the wrong people: without segbind / with segbind", "",
           "| scenario | " + " | ".join(h for h, _k in PAIRS) + " |",
           "| --- |" + " ---: |" * len(PAIRS)]
    for r in matrix["scenarios"]:
        out.append("| %s | %s |" % (r["scenario"], " | ".join(
            "%s / %s" % (_cell(r, "without", k), _cell(r, "with", k)) for _h, k in PAIRS)))
    out += ["", "## With segbind: what it cost the owners, and what they were told", "",
            "| scenario | " + " | ".join(h for h, _k in WITH_ONLY) + " |",
            "| --- |" + " ---: |" * len(WITH_ONLY)]
    for r in matrix["scenarios"]:
        out.append("| %s | %s |" % (r["scenario"], " | ".join(_cell(r, "with", k) for _h, k in WITH_ONLY)))
    served = [r for r in matrix["scenarios"] if "service" in r["with"]]
    if served:
        out += ["", "## The owners' recording service (NATS JetStream workers), with segbind", "",
                "Every segment that reached the broker, as the service judged it (docs/FLEET.md, \"The owners' "
                "recording service\").", "",
                "| scenario | " + " | ".join(h for h, _k in SERVICE_COLUMNS) + " |",
                "| --- |" + " ---: |" * len(SERVICE_COLUMNS)]
        for r in served:
            out.append("| %s | %s |" % (r["scenario"], " | ".join(
                "{:,}".format(_total(r["with"]["service"][k])) for _h, k in SERVICE_COLUMNS)))
    out += ["", "## The faults", ""]
    for name, what in FAULTS.items():
        out.append("- `%s`: %s." % (name, what))
    run = matrix["picture_run"]
    r, perf = run["results"], run["performance"]
    out += ["", "## All faults together, the cloud's second line off: the displays alone", "",
            "Foreign segments delivered: %s; shown: %s. Forged segments delivered: %s; shown to anyone but the "
            "forger: %s. Own segments delivered %s, accepted %s." % (
                "{:,}".format(r["off"]["foreign_shown"]), r["on"]["foreign_shown"],
                "{:,}".format(r["off"]["forged_shown"]), r["on"]["forged_shown"],
                "{:,}".format(r["off"]["own_delivered"]), "{:,}".format(r["on"]["own_accepted"])),
            "Refused by the displays: %s." % (", ".join("%s %s" % (n, k) for k, n in r["on"]["refused"].items())
                                              or "nothing"),
            "", "Performance of that run: %s segments verified, %.2f s of CPU for the whole run, %.2f s in "
            "the verifier." % ("{:,}".format(perf["segments_verified"]), perf["cpu_s"], perf["verifier_cpu_s"])]
    if picture:
        out += ["", "## What the displays showed", "",
                "Each row is one account's display. Left, with segbind (that run): frames it decoded from own "
                "segments it accepted and decrypted (green), then what a stranger's decoder makes of the segments "
                "of a stranger's camera it refused (red X: encrypted, nothing of the scene). Right, without "
                "segbind, every fault on: what the same account's display showed, a stranger's video in orange.",
                "", "![what each display showed](%s)" % picture["file"]]
    return "\n".join(out) + "\n"


def write(matrix: dict, fleet, out_dir, png: bool = True, rows: int = 10, plain=None) -> List[Path]:
    """The report's files; ``fleet`` is the displays-alone run (with segbind), ``plain`` the run
    without segbind with every fault on (the picture's right side)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    picture = None
    if png:
        try:
            import PIL  # noqa: F401  (the set-up installs Pillow with the sim extras)
        except ImportError:
            print("no picture: Pillow is not installed (pip install Pillow)", file=sys.stderr)
        else:
            picture = write_png(fleet, matrix["picture_run"], out / "fleet.png", rows, plain)
            paths.append(out / "fleet.png")
    doc = dict(matrix, picture=picture)
    (out / "fleet.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (out / "fleet.md").write_text(markdown(matrix, picture))
    return [out / "fleet.md", out / "fleet.json"] + paths


# ------------------------------------------------------------------------------------------
# The picture
# ------------------------------------------------------------------------------------------

def first_frame(payload: bytes):
    """The first picture PyAV decodes from an Annex-B segment (H.264 or H.265), as a PIL image
    (None if none)."""
    import av

    from segbind_core.segment import detect_codec

    try:
        with av.open(io.BytesIO(payload), format="hevc" if detect_codec(payload[:4096]) == 2 else "h264") \
                as container:
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


def choose_displays(fleet, rows: int, plain=None) -> list:
    """Displays that were sent a stranger's video first (with segbind or, in ``plain``, without),
    then the others, in account order."""
    ds = fleet.displays
    sent = {d.account: d.delivered["foreign"] for d in ds}
    for d in (plain.displays if plain is not None else []):
        sent[d.account] = sent.get(d.account, 0) + d.delivered["foreign"]
    first = [d for d in ds if sent[d.account]]
    rest = [d for d in ds if not sent[d.account]]
    return (first + rest)[:max(0, rows)]


def write_png(fleet, results: dict, path, rows: int = 10, plain=None) -> dict:
    """Draw the picture; return its description (size, rows, each tile's kind and box). Left, the
    run with segbind (``fleet``); right, the same accounts' displays without segbind (``plain``;
    without it, what the left's displays were handed, decoded as a display without verification
    would)."""
    from PIL import Image, ImageDraw

    chosen = choose_displays(fleet, rows, plain)
    plain_of = {d.account: d for d in plain.displays} if plain is not None else {}
    size = png_size(len(chosen))
    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    font, small, big = _font(11), _font(10), _font(15)
    cfg = results["config"]
    r = results["results"]
    shown_without = sum(d.accepted["foreign"] for d in plain.displays) if plain is not None \
        else r["off"]["foreign_shown"]
    seen_without = sum(d.readable + d.stills_readable for d in plain.displays) if plain is not None \
        else r["stranger"]["readable"] + r["stranger"]["thumbnails_readable"]
    draw.text((PAD, 6), "segbind fleet: %d cameras, seed %d, %d faults on -- a stranger's video shown: "
              "%s with segbind (%s delivered, encrypted), %s without" % (
                  results["fleet"]["cameras"], cfg["seed"], len(cfg["faults"]), r["on"]["foreign_shown"],
                  "{:,}".format(r["off"]["foreign_shown"]), "{:,}".format(shown_without)), fill=INK, font=big)
    draw.text((PAD, 26), "what a stranger's decoder made of what it was handed, pictures and thumbnails of the "
              "scene: %s with segbind, %s without" % (
                  "{:,}".format(r["stranger"]["readable"] + r["stranger"]["thumbnails_readable"]),
                  "{:,}".format(seen_without)), fill=INK, font=_font(12))
    y_head = HEADER_H - 24
    draw.text((_on_x0(), y_head), "WITH SEGBIND: frames shown (own cameras)", fill=OWN_GREEN, font=font)
    draw.text((_on_x0() + OWN_TILES * (TILE_W + PAD), y_head), "refused, as a stranger's decoder sees it",
              fill=REFUSED_RED, font=font)
    draw.text((_off_x0(), y_head), "WITHOUT SEGBIND: what it showed", fill=INK, font=font)
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

    owner_of = dict(fleet.true_owner)
    if plain is not None:
        owner_of.update(plain.true_owner)
    row_info = []
    for row, d in enumerate(chosen):
        y = HEADER_H + row * ROW_H + PAD
        acct = next(a for a in fleet.plan.accounts if a.name == d.account)
        draw.text((PAD, y), d.account, fill=INK, font=big)
        foreign = d.delivered["foreign"] + d.delivered["forged"]
        p = plain_of.get(d.account)
        shown_off = p.accepted["foreign"] + p.accepted["forged"] if p is not None else foreign
        seen_off = (p.readable + p.stills_readable) if p is not None else 0
        lines = ["cameras: %s" % ", ".join(sorted(acct.cameras + acct.shared_in)),
                 "downlink: %s" % ("weak" if acct.weak else "good"),
                 "delivered %d, shown %d" % (sum(d.delivered.values()), d.shown_total()),
                 "a stranger's video: %d delivered" % foreign,
                 "shown: %d (with), %d (without)" % (d.accepted["foreign"], shown_off),
                 "a stranger sees: %d (with), %d (without)" % (d.readable + d.stills_readable, seen_off)]
        for k, text in enumerate(lines):
            draw.text((PAD, y + 20 + 13 * k), text, fill=INK if k < 3 else
                      (REFUSED_RED if foreign and k == 3 else INK), font=small)
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
        source = p if p is not None else d
        off = [("foreign_shown", b, c, s) for b, c, s, _r in source.samples_foreign]
        off += [("own", b, c, s) for b, c, s in source.samples_own]
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
