"""How a fleet's parties talk and how its time runs: the engine seam.

An engine gives the fleet (``host_sim.fleet.world.Fleet``) a scheduler (``now_ms``, ``at``,
``send``), a topic prefix and a transport for each party (the cloud, each camera, each
display, each owner's app), then runs it: until the last camera's last segment, and until
what is in flight has settled. The fleet builds the same households, faults and ledger on
every engine, so their results mean the same.

- ``in-process`` (the embedded default): a ``netem.Clock`` (simulated time: fast and
  deterministic) and an ``InProcessBus`` (no broker).
- ``mqtt``: real time (``RealTimeScheduler``) over a real broker (``--broker``, or ``local``: a
  private Mosquitto), each party an MQTT client.

- ``nats``: as ``mqtt``, and the owners' recording service on a local 3-node NATS cluster
  (``host_sim.service_host``): every owner enrolls it and grants it its cameras through the
  cloud; its workers judge every segment the cameras publish, and ``report`` audits them.

Every engine has the same duties: ``open`` (the wiring), ``make_cloud``, ``join`` (the
households are built), ``settle`` (wait until the parties are set up), ``run``, ``report``
(what the engine adds to the results) and ``close``.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Protocol, Type

from host_sim.netem import Clock
from host_sim.scheduler import RealTimeScheduler
from host_sim.transport import InProcessBus, MqttTransport, Transport, parse_broker
from segbind_core import topics

log = logging.getLogger("segbind.fleet")

PartyTransport = Callable[[int, str], Transport]  # (index, name) -> the transport of that party


class Runnable(Protocol):
    """What an engine needs of a fleet (``host_sim.fleet.world.Fleet`` is one)."""

    end_ms: float
    incomplete: bool

    def build(self, wiring: "Wiring") -> None:
        """Make every party on ``wiring``'s transports and scheduler."""

    def start(self, start_ms: float) -> None:
        """Start the cameras' video and schedule the run's events from ``start_ms`` (scheduler time)."""

    def set_up(self) -> bool:
        """Whether every display holds what it should and the cloud routes every camera."""

    def renew(self) -> None:
        """Every owner's app sends its grants and offers again (a set-up that stalled)."""

    def done(self) -> bool:
        """Whether every camera sent its last segment."""

    def settled(self) -> bool:
        """Whether nothing is in flight (relayed and refilled segments arrived, receipts came back)."""

    def verified(self) -> int:
        """Segments verified so far (for the progress line)."""


class Wiring:
    """What an engine hands the fleet to build on."""

    def __init__(self, scheduler: Any, prefix: str, cloud: Transport, camera: PartyTransport,
                 display: PartyTransport, app: PartyTransport, shared_displays: bool) -> None:
        self.scheduler = scheduler
        self.prefix = prefix
        self.cloud = cloud
        self.camera = camera
        self.display = display
        self.app = app
        self.shared_displays = shared_displays  # a display transport serves several displays


class Progress:
    """A one-line bar on a terminal, a line every 10 % otherwise."""

    def __init__(self, total_ms: float, label: str, stream=None, enabled: bool = True) -> None:
        self.total_ms = max(1.0, total_ms)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_wall = 0.0
        self._last_decile = -1

    def update(self, now_ms: float, verified: int) -> None:
        if not self.enabled:
            return
        frac = min(1.0, max(0.0, now_ms / self.total_ms))
        if self.tty:
            wall = time.monotonic()
            if wall - self._last_wall < 0.1 and frac < 1.0:
                return
            self._last_wall = wall
            n = int(frac * 30)
            self.stream.write("\r%s [%s%s] %3d%%  %5.0f/%.0f s  %d segments verified " % (
                self.label, "#" * n, "." * (30 - n), frac * 100, now_ms / 1000,
                self.total_ms / 1000, verified))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                print("%s %3d%%  %.0f/%.0f s, %d segments verified" % (
                    self.label, decile * 10, now_ms / 1000, self.total_ms / 1000, verified),
                    file=self.stream, flush=True)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Engine:
    """The seam (see the module's text). ``run`` returns (wall s, CPU s, simulated ms)."""

    name = ""
    realtime = False

    def __init__(self, cfg: Any, progress: Progress) -> None:
        self.cfg = cfg
        self.progress = progress

    def open(self) -> Wiring:
        raise NotImplementedError

    def make_cloud(self, wiring: Wiring, faults: Any, second_line: bool) -> Any:
        """The cloud the fleet runs against: the reference cloud, on the engine's cloud transport."""
        from host_sim.cloud import Cloud, RoutingStore

        return Cloud(wiring.cloud, RoutingStore(), faults=faults, second_line=second_line, prefix=wiring.prefix)

    def join(self, fleet: Any) -> None:
        """The fleet's households are built (``host_sim.fleet.world.Fleet``): what the engine adds to them."""

    def settle(self, fleet: Runnable) -> None:
        """Wait until the fleet is set up (an engine whose deliveries are instant needs nothing)."""

    def run(self, fleet: Runnable) -> "tuple[float, float, float]":
        raise NotImplementedError

    def report(self, fleet: Any) -> Optional[dict]:
        """What the engine adds to the run's results (None: nothing)."""
        return None

    def close(self) -> None:
        pass


class InProcessEngine(Engine):
    """Simulated time on a ``netem.Clock``, every party on one ``InProcessBus``."""

    name = "in-process"

    def open(self) -> Wiring:
        self.clock = Clock()
        self.bus = bus = InProcessBus()
        self.wall0, self.cpu0 = time.monotonic(), time.process_time()
        return Wiring(self.clock, topics.TOPIC_PREFIX, bus.transport("cloud"),
                      lambda i, name: bus.transport(name).start(),
                      lambda i, name: bus.transport("display-" + name),
                      lambda i, name: bus.transport("app-" + name), shared_displays=False)

    def run(self, fleet: Runnable) -> "tuple[float, float, float]":
        clock, progress = self.clock, self.progress
        start_ms = 1000.0  # the cameras start at 1 s
        fleet.end_ms = self.cfg.seconds * 1000.0 + start_ms
        progress.total_ms = fleet.end_ms

        def tick() -> None:
            progress.update(clock.now_ms, fleet.verified())
            if clock.now_ms < fleet.end_ms:
                clock.at(clock.now_ms + 1000, tick)

        fleet.start(start_ms)
        clock.at(0, tick)
        clock.run()
        progress.update(fleet.end_ms, fleet.verified())
        progress.finish()
        return time.monotonic() - self.wall0, time.process_time() - self.cpu0, clock.now_ms


class MqttEngine(Engine):
    """Real time over a real broker: the cloud, a pool of connections for cameras, for displays
    and for apps, each party an MQTT client; the weak links applied at the edges."""

    name = "mqtt"
    realtime = True

    def open(self) -> Wiring:
        cfg = self.cfg
        self.broker = None
        target = cfg.broker or "local"
        if target == "local":
            from host_sim.broker import Broker

            self.broker = Broker(persistence=False).start()  # a throwaway broker: no disk writes
            target = "%s:%d" % (self.broker.host, self.broker.port)
        if "://" in target:
            scheme, _, target = target.partition("://")
            if scheme != "mqtt":
                raise ValueError("only mqtt:// brokers are supported")
        self.address = host, port = parse_broker(target)
        run_id = uuid.uuid4().hex[:8]
        self.prefix = "segbind/fleet-%s" % run_id
        self.sched = RealTimeScheduler(cfg.speed)
        self.pools: List[MqttTransport] = []

        def pool(kind: str, n: int) -> List[MqttTransport]:
            made = [MqttTransport(host, port, "segbind-fleet-%s-%s-%d" % (run_id, kind, k), clean=True)
                    for k in range(max(1, min(n, cfg.pool)))]
            for t in made:
                t.start()
            for t in made:
                if not t.wait_ready(10):
                    raise RuntimeError("no MQTT connection to %s:%d" % (host, port))
            self.pools.extend(made)
            return made

        self.cloud_t = MqttTransport(host, port, "segbind-fleet-%s-cloud" % run_id, clean=True)
        cams, disps, apps = pool("cam", cfg.cameras), pool("display", cfg.cameras), pool("app", cfg.cameras)
        self.wall0, self.cpu0 = time.monotonic(), time.process_time()
        self.sched.start()
        return Wiring(self.sched, self.prefix, self.cloud_t, lambda i, name: cams[i % len(cams)],
                      lambda i, name: disps[i % len(disps)], lambda i, name: apps[i % len(apps)],
                      shared_displays=True)

    def settle(self, fleet: Runnable, stall_s: float = 60.0, renew_s: float = 10.0) -> None:
        """Over MQTT the claims, shares and grants take a moment: wait until the fleet says it is
        set up. A busy machine only makes this slower, so the wait ends on the condition, or when
        nothing has moved for ``stall_s`` (a real failure), never at a fixed time. While nothing
        moves, the owners' apps renew their grants and offers every ``renew_s``, as an app does
        now and then: a message lost on the way is sent again."""
        last, moved, renewed = None, time.monotonic(), time.monotonic()
        while not fleet.set_up():
            progress = getattr(fleet, "set_up_progress", lambda: None)()
            now = time.monotonic()
            if progress != last:
                last, moved, renewed = progress, now, now
            elif now - moved > stall_s:
                raise RuntimeError("the fleet's set-up stalled for %.0f s at %s" % (stall_s, progress))
            elif now - renewed > renew_s:
                renewed = now
                log.warning("the fleet's set-up has not moved for %.0f s: the owners' apps renew", renew_s)
                fleet.renew()
            time.sleep(0.1)

    def run(self, fleet: Runnable) -> "tuple[float, float, float]":
        sched, progress = self.sched, self.progress
        self.settle(fleet)
        start_ms = sched.now_ms + 500.0
        fleet.end_ms = start_ms + self.cfg.seconds * 1000.0
        progress.total_ms = fleet.end_ms
        fleet.start(start_ms)
        deadline = None
        while True:
            time.sleep(0.05)
            progress.update(sched.now_ms, fleet.verified())
            if sched.now_ms < fleet.end_ms or not fleet.done():
                continue
            if deadline is None:
                deadline = time.monotonic() + 60.0
            if self._quiet(fleet):
                time.sleep(0.3)
                if self._quiet(fleet):
                    break
            if time.monotonic() > deadline:
                fleet.incomplete = True
                log.warning("the fleet did not settle within 60 s of the last segment (results are partial): "
                            "the process did not keep up; try a lower --speed")
                break
        progress.update(fleet.end_ms, fleet.verified())
        progress.finish()
        return time.monotonic() - self.wall0, time.process_time() - self.cpu0, sched.now_ms

    def _quiet(self, fleet: Runnable) -> bool:
        return self.sched.idle() and fleet.settled()

    def clear_retained(self, topics_: List[str]) -> None:
        """Leave the broker as found: empty the retained messages this run left."""
        for t in self.pools:
            t.stop()
        token = None
        for topic in topics_:
            token = self.cloud_t.publish(topic, b"", qos=1, retain=True)
        if token is not None:
            self.cloud_t.wait_acked(token, 5)

    def close(self) -> None:
        self.sched.stop()
        for t in [self.cloud_t] + self.pools:
            try:
                t.stop()
            except Exception:  # noqa: BLE001 - closing what may be closed already
                pass
        if self.broker is not None:
            self.broker.close()


class NatsEngine(MqttEngine):
    """``mqtt``, and the owners' recording service (docs/SERVICE.md) on a local 3-node NATS
    cluster: a bridge from the fleet's broker into JetStream, ``cfg.workers`` worker processes.
    Every owner's app enrolls it (the provider pins the owner's card; both show one code) and
    grants it its own cameras, through the cloud, period by period. A witness on the broker
    notes every segment that reached it: ``report`` audits the service's verdicts against it
    and the fleet's ledger. Without segbind there is nothing a service could verify: those runs
    are ``mqtt`` runs."""

    name = "nats"

    def open(self) -> Wiring:
        wiring = super().open()
        self.host: Optional[Any] = None
        self.seen: "set[bytes]" = set()
        if self.cfg.defended:
            from host_sim.ledger import Ledger
            from host_sim.service_host import ServiceHost

            host, port = self.address
            self.host = ServiceHost(host, port, self.prefix, workers=self.cfg.workers).start()
            self.witness = MqttTransport(host, port, "%s-witness" % self.prefix.replace("/", "-"), clean=True)
            self.witness.subscribe(topics.every_camera(topics.SEG, self.prefix),
                                   lambda msg: self.seen.add(Ledger.digest(msg.payload)))
            self.witness.start()
            if not self.witness.wait_ready(10):
                raise RuntimeError("no MQTT connection to %s:%d" % (host, port))
        return wiring

    def make_cloud(self, wiring: Wiring, faults: Any, second_line: bool) -> Any:
        cloud = super().make_cloud(wiring, faults, second_line)
        if self.host is not None:
            from host_sim.service_host import SERVICE_ID

            cloud.services[SERVICE_ID] = self.host.carry
        return cloud

    def join(self, fleet: Any) -> None:
        """The provider pins every owner's card, then each owner's app enrolls the service (the
        codes must agree) and sends it its grants through the cloud."""
        if self.host is None:
            return
        codes = {name: self.host.enroll(app.owner.account.card()) for name, app in fleet.owners.items()}
        self.host.publish()
        for name, app in fleet.owners.items():
            if app.enroll_service(self.host.card()) != codes[name]:
                raise RuntimeError("%s: the service's enrollment code is not the app's" % name)

    def settle(self, fleet: Any, stall_s: float = 60.0, renew_s: float = 10.0) -> None:
        """As ``mqtt``; then until every worker holds the grants of every camera (or nothing has
        moved for 15 s: what it lacks is counted as refused, ``no_grant``)."""
        super().settle(fleet, stall_s, renew_s)
        if self.host is None:
            return
        wanted = len({c.name for c in fleet.plan.cameras})  # the ids the owners grant (a colliding camera reuses one)
        last, moved = None, time.monotonic()
        while True:
            held = self.host.cameras_held()
            if min(held) >= wanted:
                return
            if held != last:
                last, moved = held, time.monotonic()
            elif time.monotonic() - moved > 15.0:
                log.warning("the service's workers hold the grants of %s of %d cameras", held, wanted)
                return
            time.sleep(0.2)

    def run(self, fleet: Runnable) -> "tuple[float, float, float]":
        wall, cpu, sim_ms = super().run(fleet)
        if self.host is not None and not self.host.settle():
            log.warning("the service did not judge every stored segment (counted as unjudged)")
        return wall, cpu, sim_ms

    def report(self, fleet: Any) -> Optional[dict]:
        if self.host is None:
            return None
        return self.host.audit(set(self.seen), fleet.ledger.origin)

    def close(self) -> None:
        if self.host is not None:
            self.witness.stop()
        try:
            super().close()
        finally:
            if self.host is not None:
                self.host.close()


ENGINES: Dict[str, Type[Engine]] = {InProcessEngine.name: InProcessEngine, MqttEngine.name: MqttEngine,
                                    NatsEngine.name: NatsEngine}


def engine_for(cfg: Any, progress: Optional[Progress] = None) -> Engine:
    """The engine ``cfg`` names (``FleetConfig.engine_name``)."""
    kind = ENGINES.get(cfg.engine_name)
    if kind is None:
        raise ValueError("unknown engine %r (known: %s)" % (cfg.engine_name, ", ".join(ENGINES)))
    return kind(cfg, progress or Progress(1.0, "fleet", enabled=False))
