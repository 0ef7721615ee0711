"""The demo households served as live HLS (``host_sim.web``, on a world of its own), and the
browser display from an origin of its own (``host_sim.display_host``: the cloud serves data only):
``python3 -m host_sim.demo --port 8080 [--display-port 8081] [--bug]``."""

from __future__ import annotations

import argparse
import json
import time
from typing import List, Optional

from host_sim.display_host import DisplayHost
from host_sim.households import Households
from host_sim.scheduler import RealTimeScheduler
from host_sim.web import Faults, WebCloud


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.demo",
                                     description="Serve the demo households as live HLS, and the browser display "
                                     "from an origin of its own")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--display-port", type=int, default=0, help="the display's origin (default: any free port)")
    parser.add_argument("--bug", action="store_true", help="switch on the 2020 cache fault")
    args = parser.parse_args(argv)
    world = Households(RealTimeScheduler().start()).start()
    try:
        with WebCloud(world.cloud, Faults(cache_2020=args.bug), args.host, args.port) as web, \
                DisplayHost(host=args.host, port=args.display_port) as site:
            print("serving %s (accounts: %s); the display at %s needs an enrolled owner: see docs/DISPLAYS.md"
                  % (web.url, ", ".join(world.cloud.accounts()), site.page(web.url, "alice", "alice-tv")),
                  flush=True)
            print(json.dumps({"url": web.url, "display": site.url}), flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        world.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
