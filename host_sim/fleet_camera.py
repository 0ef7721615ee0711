"""A camera in-process: the real agent core (``segbind_agent.core.AgentCore``) on a scheduler,
fed its clip one segment's worth of encoder bytes every ``segment_ms``, behind a simulated
uplink. What the fleet and the demo households run (``host_sim.camera`` runs the agent process).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from host_sim.ledger import Ledger, Origin
from host_sim.netem import Link
from host_sim.plan import BASE_MS, CameraPlan, FleetConfig
from host_sim.tagview import TagFields, peek_tag
from host_sim.transport import Message
from segbind_agent.core import (
    AgentCore,
    AgentSettings,
    BindingState,
    Delete,
    Persist,
    Publish,
    Send,
    StateError,
    Store,
    check_rollback,
)
from segbind_agent.counter import MemoryCounter
from segbind_core import topics
from segbind_core.keys import Epoch
from segbind_core.protect import DOMAIN_SEGMENT, DOMAIN_STILL, unprotect

# Who may rightly see what a camera captures at a capture time: (audience, grace).
Audience = Callable[[str, int], Tuple[Tuple[str, ...], Tuple[str, ...]]]


class FleetCamera:
    """One camera: the real agent core fed its clip one segment's worth of encoder bytes every
    ``segment_ms``, its spool in memory, its uplink a ``netem`` link, its monotonic counter in
    memory. Pairing offers and its reset button reach it out of band (``handover``,
    ``press_reset``). ``protected``: it refuses to run from a rolled-back state.

    ``plain``: the camera without segbind. It publishes its segments and stills decrypted (the
    picture data in clear, as a camera that does not encrypt sends it): the baseline the fleet
    compares with. Everything else (pairing, commands, routing) runs the same.

    Every ``cfg.still_every`` segments an event asks for a thumbnail: the core makes a still
    (docs/FORMAT.md section 10) and publishes it on the camera's ``still`` topic.

    Its clock reads ``base_ms`` plus the scheduler's time (``BASE_MS``, 2020, in the fleet; the
    wall clock's origin for a real-time scheduler). ``first_stream``: it first records a stream
    of that many segments and ends it, then starts the stream that runs ``cfg.seconds``.
    ``stop_video`` and ``hold_clock`` are faults for the displays to flag (stale, frozen)."""

    def __init__(self, plan: CameraPlan, cfg: FleetConfig, templates: List[bytes], transport, scheduler,
                 uplink: Link, prefix: str, *, ledger: Optional[Ledger] = None,
                 audience: Optional[Audience] = None, stream_id: Optional[int] = None,
                 protected: bool = True, plain: bool = False, base_ms: int = BASE_MS,
                 first_stream: int = 0) -> None:
        self.plan = plan
        self.name = plan.name           # what its keys bind
        self.device = plan.device       # what the cloud knows it by
        self.cfg = cfg
        self.templates = templates
        self.transport = transport
        self.scheduler = scheduler
        self.uplink = uplink
        self.prefix = prefix
        self.ledger = ledger or Ledger()
        self.audience: Audience = audience or (lambda device, capture_ms: ((plan.owner,) + tuple(plan.viewers), ()))
        self.stream_id = stream_id
        self.protected = protected
        self.plain = plain
        self.topic = topics.camera_topic(self.device, topics.SEG, prefix)
        self.settings = AgentSettings(max_duration_s=4.0, spool_max_segments=cfg.spool,
                                      publish_window=cfg.spool, health_interval_s=5.0)
        self.core = AgentCore(plan.name, BindingState(plan.name), self.settings)
        self.counter = MemoryCounter()
        self.backup: Optional[BindingState] = None
        self.halted = ""        # why it refused to run, when it did
        self.stored: Dict[int, bytes] = {}
        self.base_ms = base_ms
        self.first_stream = first_stream
        self.held_clock: Optional[int] = None   # a stuck clock: every capture time repeats this one
        self.stopped = False                    # its video stopped (stop_video)
        self.total = first_stream + cfg.seconds * 1000 // cfg.segment_ms
        self.still_phase = plan.link_seed % max(1, cfg.still_every)
        self.fed = 0
        self.tagged = 0
        self.stills = 0
        self.handed = 0         # handed to the uplink
        self.published = 0      # copies that reached the broker/bus (duplicates included)
        self.spool_max = 0
        self.spool_dropped = 0
        self.done = False

    def now(self) -> int:
        return self._clock(self.scheduler.now_ms)

    def _clock(self, scheduler_ms: float) -> int:
        return self.held_clock if self.held_clock is not None else self.base_ms + int(scheduler_ms)

    def begin(self) -> None:
        self.transport.subscribe(topics.camera_topic(self.device, topics.CTL, self.prefix), self._on_command)
        self._carry_out(self.core.start(self.now(), stream_id=self.stream_id))

    def start_video(self, offset_ms: float) -> None:
        self.scheduler.at(offset_ms + self.plan.phase_ms, self._tick)

    # -- out of band ---------------------------------------------------------------------------

    def handover(self, offer: bytes) -> None:
        """The camera's lens reads the owner's pairing offer (never through the cloud)."""
        self._carry_out(self.core.pair(offer, self.now()))

    def press_reset(self) -> None:
        self._carry_out(self.core.physical_reset(self.now()))

    def command(self, payload: bytes) -> None:
        """A command that reaches the camera without the cloud (its owner on the camera's own network)."""
        if not self.halted:
            self._carry_out(self.core.command(payload, self.now()))

    def stop_video(self) -> None:
        """The camera stops sending video from its next segment on (unplugged, crashed): its
        stream just stops, with no end of stream. (Takes effect on the scheduler's thread.)"""
        self.stopped = True

    def hold_clock(self) -> None:
        """The camera's clock sticks: every segment from now on carries the same capture time."""
        self.held_clock = self.now()

    def restore_backup(self) -> None:
        """The camera restarts with its state file restored from ``backup`` (made before a sale)."""
        if self.backup is None:
            return
        self.spool_dropped += len(self.core.spool)
        self.stored.clear()
        state = self.backup.copy()
        if self.protected:
            try:
                state = check_rollback(state, self.counter.read(), self.name)
            except StateError as exc:
                self.halted = str(exc)
                self.core = AgentCore(self.name, BindingState(self.name), self.settings)  # never started
                return
        self.core = AgentCore(self.name, state, self.settings)
        self._carry_out(self.core.start(self.now()))

    # -- running -------------------------------------------------------------------------------

    def _on_command(self, msg: Message) -> None:
        self.command(msg.payload)
        msg.ack()

    def _tick(self) -> None:
        now = self.scheduler.now_ms
        clock = self._clock(now)
        if self.halted:
            self.done = True
            return
        if self.stopped:
            self.total = min(self.total, self.fed)
        up = self.uplink.is_up(now)
        if up != self.core.connected:
            self._carry_out(self.core.connection(up, clock))
        if self.fed < self.total:
            data = self.templates[self.fed % len(self.templates)]
            self.fed += 1
            self._carry_out(self.core.encoder_bytes(data, clock))
            if self.fed == self.total or self.fed == self.first_stream:
                self._carry_out(self.core.encoder_end(clock))
            if self.fed == self.first_stream < self.total:  # the recorded stream ended: the live one starts
                self._carry_out(self.core.start(clock))
            if self.cfg.still_every and self.fed % self.cfg.still_every == self.still_phase:
                self._carry_out(self.core.event("motion", clock))  # something moved: a thumbnail
        else:
            self._carry_out(self.core.tick(clock))
        if self.fed < self.total or len(self.core.spool):
            self.scheduler.at(now + self.cfg.segment_ms, self._tick)
        else:
            self.done = True

    def _carry_out(self, actions: list) -> None:
        """The core's actions, in order; what a delivery brings comes after them."""
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Store):
                payload = self._as_sent(action.payload, action.entry.epoch, DOMAIN_SEGMENT)
                self.stored[action.entry.index] = payload
                self.tagged += 1
                self._record(payload, action.entry.stream_id, action.entry.seq, False)
                self.spool_max = max(self.spool_max, len(self.core.spool))
            elif isinstance(action, Delete):
                self.stored.pop(action.index, None)
            elif isinstance(action, Send):
                # The MQTT client takes it; what the weak link does to it happens below it.
                entry = action.entry
                self.handed += 1
                self.scheduler.send(self.uplink, self._publish, self.stored[entry.index], entry)
                pending += self.core.delivered(entry.index, True)
            elif isinstance(action, Publish):
                payload = action.payload
                if action.leaf == topics.STILL:
                    payload = self._as_sent(payload, self.core.state.epoch, DOMAIN_STILL)
                    fields = peek_tag(action.payload)
                    if fields is not None:
                        self.stills += 1
                        self._record(payload, fields.stream_id, fields.seq, True, fields)
                self.transport.publish(topics.camera_topic(self.device, action.leaf, self.prefix),
                                       payload, 1, action.retain)
            elif isinstance(action, Persist):
                self.counter.advance(action.state.generation)

    def _record(self, payload: bytes, stream_id: int, seq: int, still: bool,
                fields: Optional[TagFields] = None) -> None:
        fields = fields or peek_tag(payload)
        capture = fields.capture_ms if fields is not None else self.now()
        audience, grace = self.audience(self.device, capture)
        self.ledger.record(payload, Origin(self.device, audience[0] if audience else "", stream_id, seq, capture,
                                           audience, grace, still, (self.plan.codec, self.plan.clip)))

    def _as_sent(self, tagged: bytes, epoch: int, domain: int) -> bytes:
        """What leaves the camera: the tagged, encrypted segment; the camera without segbind sends
        its picture data in clear (decrypted with its own keys: the same pictures, not encrypted)."""
        if not self.plain:
            return tagged
        fields, state = peek_tag(tagged), self.core.state
        if fields is None or state.owner is None:
            return tagged
        for candidate in (epoch, state.epoch, epoch - 1):
            if candidate < 1:
                continue
            keys = Epoch.of_pairing(state.secret(), state.owner, self.name, candidate, [], state.period_s)
            period = keys.period_keys(keys.period_of(fields.capture_ms))
            if period.key_id == fields.key_id:
                return unprotect(tagged, fields.codec, fields.clear_lead, period.content_key, fields.stream_id,
                                 fields.seq, domain)
        return tagged

    def _publish(self, payload: bytes, entry) -> None:
        self.published += 1
        self.transport.publish(self.topic, payload, 1, False,
                               {"stream": entry.stream_id, "seq": entry.seq, "epoch": entry.epoch})

    @property
    def produced(self) -> int:
        return self.tagged
