"""The fleet's command line and its named faults: standard library only, so that
``bash tools/run.sh --help`` answers on any python3 before anything is installed."""

from __future__ import annotations

import argparse
import sys

# Over MQTT one process carries every camera, the cloud and every display: on two cores it
# keeps up in real time with about this many cameras (larger fleets run slower by default).
REALTIME_CAMERAS = 300

# Every fault the fleet can switch on (docs/FLEET.md), the incident it stands for, and where it lives.
FAULTS = {
    "relay_cache_2020": "Xiaomi/Nest Hub 2020: the relay's quality cache, keyed without the camera, "
                        "refills a viewer with a stranger's segment",
    "ids_swapped": "Wyze 2024: a cache mixes device and user ids; some cameras go to another account",
    "grants_to_wrong_display": "a display's sealed grants are delivered to another account's display",
    "share_to_wrong_account": "a share is recorded for the wrong account (the router itself is right)",
    "restart_during_claim": "the cloud restarts during claims and loses the routing it had not flushed",
    "resale_without_reset": "Nest/Wink 2019, Arlo 2016: after a resale the former owner keeps the route",
    "duplicate_device_secret": "Swann 2018: two cameras made with one factory identity",
    "viewer_forgery": "a viewer a camera is shared with tags its own video as the owner's camera",
    "state_rollback": "a sold camera's state is restored from a backup made before the sale",
    "dropped_rotate": "the cloud drops the owner's rotation that revokes a contact, and keeps routing to it",
    "colliding_camera": "a contact shares a camera that carries the id of another owner's camera",
}

# How the fleet's parties talk and how its time runs (host_sim.fleet.engines).
ENGINES = ("in-process", "mqtt", "nats")

def parser() -> argparse.ArgumentParser:
    """The fleet's command line (``python3 -m host_sim.fleet``)."""
    parser = argparse.ArgumentParser(
        prog="python3 -m host_sim.fleet",
        description="A fleet of cameras, owners' apps, a cloud with the incidents' bugs, and a display per "
                    "account: what the displays show with segbind and without, fault by fault.")
    parser.add_argument("--cameras", type=int, default=24, help="cameras, one owner account each (24)")
    parser.add_argument("--seconds", type=int, default=None,
                        help="seconds of video per camera (60 in-process, 20 over MQTT)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default="all", metavar="NAME,...",
                        help="faults to switch on, one by one then together: 'all' (default), 'none', or "
                             "names from: %s" % ", ".join(FAULTS))
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="in-process (default: simulated time, no server), mqtt (real time over a broker) or "
                             "nats (mqtt, and the owners' recording service on a local 3-node NATS cluster)")
    parser.add_argument("--broker", metavar="mqtt://HOST:PORT",
                        help="the broker of --engine mqtt (implies it) or nats; 'local' (the default) starts a "
                             "private Mosquitto")
    parser.add_argument("--workers", type=int, default=2,
                        help="--engine nats: the recording service's worker processes (2)")
    parser.add_argument("--speed", type=float, default=None,
                        help="over MQTT: simulated seconds per real second (1; 300/cameras above 300 "
                             "cameras, what one process keeps up with)")
    parser.add_argument("--share", type=float, default=0.25, help="fraction of cameras shared (0.25)")
    parser.add_argument("--weak", type=float, default=None, metavar="FRACTION",
                        help="fraction of uplinks and downlinks on a weak link (0.3 / 0.35)")
    parser.add_argument("--out", default="out", help="directory for the report (./out)")
    parser.add_argument("--rows", type=int, default=10, help="displays in the picture (10)")
    parser.add_argument("--no-png", action="store_true", help="skip the picture")
    parser.add_argument("--browser", action="store_true",
                        help="also open the browser display (chromium) on live HLS from the reference cloud, "
                             "with the 2020 cache fault in its edge, and write its screenshot to OUT/display.png")
    parser.add_argument("--no-progress", action="store_true")
    return parser


if __name__ == "__main__":  # tools/run.sh --help, before set-up
    parser().parse_args(sys.argv[1:])
