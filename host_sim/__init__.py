"""Host-side simulation: real H.264 and H.265 clips, cameras, the reference cloud, owners' apps,
displays, live HLS, and the fleet that runs the incidents' faults.

Its modules form layers: each imports only from the layers below it, never from its own or
above (tests/sim/test_layers.py walks every import, lazy ones included, and checks it):
a server thread, the leaves (options, the network model, clips, the broker, the NATS cluster,
the ledger, the display's own origin ...), then time, transports and the recording service's
deployment, the plan and the cameras, the cloud and
its HTTP front end, the owners' apps and the displays, the demo households, the browser and
the demo server, the report, and the fleet (its engines, parties, faults, metrics, world and
scenarios, in that order).
"""

# The layers, lowest first (module names under host_sim). Standard library only: this package
# is imported by ``host_sim.fleet_options`` on a bare python3 (``bash tools/run.sh --help``).
LAYERS = (
    ("app_thread",),
    ("fleet_options", "netem", "clips", "broker", "nats_cluster", "live", "ledger", "streamer", "stranger", "tagview",
     "display_host"),
    ("scenes", "transport", "scheduler", "service_host"),
    ("plan", "camera", "cache"),
    ("fleet_camera", "cloud", "web"),
    ("app", "display"),
    ("households",),
    ("browser", "demo"),
    ("report",),
    ("fleet.engines",),
    ("fleet.parties",),
    ("fleet.faults",),
    ("fleet.metrics",),
    ("fleet.world",),
    ("fleet.scenarios",),
    ("fleet", "fleet.__main__"),
)
