"""``python3 -m host_sim.fleet``: every fault, with segbind and without (docs/FLEET.md)."""

from host_sim.fleet.scenarios import run

run()
