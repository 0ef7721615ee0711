#!/usr/bin/env python3
"""A local NATS cluster for segbind's verifying service (three nats-servers on loopback): the
command line of ``host_sim.nats_cluster``, which says how to use it (start, status, stop-node,
start-node, stop, run)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from host_sim.nats_cluster import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
