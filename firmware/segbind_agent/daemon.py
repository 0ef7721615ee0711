"""The camera daemon: the I/O around ``core.AgentCore`` (threads, signals, MQTT, files, the clock).

One thread (``run``) owns the core. The input reader thread and paho's
network thread only put events on one queue, in the order they happen: the
bytes the encoder wrote before a command arrived are fed to the core before
the command, so a command takes effect at an instant. Every action the core
returns is carried out here, in order: the state is durable before anything
that follows it is done.
"""

import logging
import queue
import signal
import threading
import time

from segbind_core import topics
from segbind_core.rtp import AccessUnit, Loss

from . import __version__
from .config import load_device_secret
from .core import (
    AgentCore,
    Delete,
    Log,
    Persist,
    Publish,
    Send,
    StateError,
    Store,
    check_rollback,
    redact,
    state_after_reset,
)
from .counter import CounterFile
from .faults import crashpoint
from .inbox import EVENT, PAIR, RESET, Inbox
from .rtsp import RtspReader, is_rtsp
from .source import CHUNK, EOF, InputReader, is_fifo
from .spool import SpoolFiles
from .state import StateStore

log = logging.getLogger("segbind_agent")

class StorageError(Exception):
    """The camera's state or its monotonic counter cannot be written: the agent stops."""


# Encoder chunks waiting for the agent's thread at most (backpressure on the reader); an
# access unit from RTSP counts as many chunks as its size fills.
MAX_QUEUED_CHUNKS = 256


def _chunks(item) -> int:
    """How many of the queue's places an item of input takes."""
    size = len(item) if isinstance(item, (bytes, bytearray)) else getattr(item, "size", 0)
    return min(1 + size // CHUNK, MAX_QUEUED_CHUNKS)


class Agent:
    """Runs one camera's core against real I/O. ``link`` is any transport with the
    interface of ``segbind_agent.link.MqttTransport``; ``clock`` gives seconds."""

    def __init__(self, config, link=None, clock=time.time) -> None:
        self.cfg = config
        self.camera = config.camera_id
        self.clock = clock
        topics.check_topic_id(self.camera, "camera")
        # The device secret is the camera's identity toward the cloud (its broker credentials),
        # never the root of a key it tags with: those come from the owner's pairing.
        _secret, test_only, exposed = load_device_secret(config.device_secret_file, self.camera)
        if test_only:
            log.warning("camera %s runs on a TEST-ONLY device secret: never ship this",
                        self.camera)
        if exposed:
            log.warning("device secret file %s is readable by other users",
                        config.device_secret_file)
        self.store = StateStore(config.state_dir, self.camera)
        self.counter = CounterFile(config.counter_file)
        self.inbox = Inbox(config.inbox_dir)
        self.spool = SpoolFiles(config.spool_dir, config.spool_fsync)
        self.core = AgentCore(self.camera, self._boot_state(), config.settings(),
                              spooled=self.spool.load(), version=__version__, spent=self.counter.spent())
        self.topic = {leaf: topics.camera_topic(self.camera, leaf, config.topic_prefix)
                      for leaf in topics.CAMERA_LEAVES}
        self.events = queue.Queue()
        self._room = threading.Semaphore(MAX_QUEUED_CHUNKS)
        if link is None:
            from .link import MqttTransport
            will = (self.topic[topics.STATUS],
                    self.core.status_json("offline", self.now_ms(), "connection lost"), True)
            link = MqttTransport(config.broker_host, config.broker_port, config.client_id,
                                 keepalive=config.keepalive, will=will,
                                 username=config.username, password=config.password(),
                                 tls_ca=config.tls_ca, session_expiry_s=config.session_expiry_s,
                                 reconnect_min_s=config.reconnect_min_s,
                                 reconnect_max_s=config.reconnect_max_s, manual_ack=True)
        self.link = link
        self.link.on_ack(lambda token, ok: self.events.put(("ack", token, ok)))
        self.link.on_connection(lambda up: self.events.put(("conn", up, None)))
        self._inflight = {}  # MQTT token -> spool index
        self._acked_token = None
        self._stopping = False
        self.reader = None
        self.exit_code = 0

    def _boot_state(self):
        """The state to start from: a reset asked for while the camera was off (the button held
        at power-on) first; else the state file, refused when it rolled back (StateError)."""
        counter = self.counter.read()
        if self.inbox.take((RESET,)):
            try:
                previous = self.store.load()
            except StateError:
                previous = None
            if previous is not None and previous.generation < counter:
                previous = None  # a rolled-back copy: nothing of it is trusted
            state = state_after_reset(self.camera, counter, previous, self.counter.spent())
            self.store.save(state, "reset")
            self.counter.advance(state.generation)
            log.warning("camera %s was reset: no owner, waiting for a pairing", self.camera)
            return state
        state = check_rollback(self.store.load(), counter, self.camera)
        if state.generation > counter:
            self.counter.advance(state.generation)  # a write the counter missed (power cut)
        return state

    @property
    def state(self):
        return self.core.state

    @property
    def counts(self) -> dict:
        return self.core.counts

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- carrying out the core's actions ----------------------------------------------------

    def execute(self, actions) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.entry)
            elif isinstance(action, Store):
                self.spool.write(action.entry, action.payload)
            elif isinstance(action, Delete):
                self.spool.delete(action.index)
            elif isinstance(action, Publish):
                if action.leaf == topics.CTL_RESULT:
                    crashpoint("ctl:applied")
                self.link.publish(self.topic[action.leaf], action.payload, qos=1,
                                  retain=action.retain)
            elif isinstance(action, Persist):
                try:
                    if action.spend:  # the offer is spent before the state that takes it exists
                        self.counter.spend(action.spend)
                    self.store.save(action.state, crash_tag=action.crash_tag)
                    crashpoint(action.crash_tag + ":persisted")
                    self.counter.advance(action.state.generation)
                except (OSError, ValueError) as exc:
                    raise StorageError("the state cannot be written (%s): %s"
                                       % (type(exc).__name__, redact(str(exc))[:160])) from None
            elif isinstance(action, Log):
                log.log(action.level, "%s", action.message)

    def _send(self, entry) -> None:
        try:
            payload = self.spool.read(entry)
        except OSError as exc:
            log.error("spooled segment %d unreadable (%s)", entry.index, exc)
            self.execute(self.core.delivered(entry.index, False, self.now_ms()))
            return
        token = self.link.publish(self.topic[topics.SEG], payload, qos=1, retain=False,
                                  user_properties={"stream": entry.stream_id, "seq": entry.seq,
                                                   "epoch": entry.epoch})
        self._inflight[token] = entry.index

    # -- events -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Start a new stream (ordered after every earlier one)."""
        self.execute(self.core.start(self.now_ms()))
        if self.link.connected:  # a transport that is up already says so to nobody
            self.execute(self.core.connection(True, self.now_ms()))

    def feed(self, data: bytes) -> None:
        """The encoder's next bytes."""
        self.execute(self.core.encoder_bytes(data, self.now_ms()))

    def feed_input(self, item) -> None:
        """One item from the input reader: Annex-B bytes, a whole access unit with its capture
        time (RTSP), or a loss of video before the agent (RTSP)."""
        if isinstance(item, AccessUnit):
            now_ms = self.now_ms()
            for unit in item.units:
                self.execute(self.core.encoder_unit(unit, now_ms, item.capture_ms))
        elif isinstance(item, Loss):
            self.execute(self.core.encoder_gap(self.now_ms(), item.detail))
        else:
            self.feed(item)

    def end_of_input(self) -> None:
        """The encoder's output ended: its last segment closes."""
        self.execute(self.core.encoder_end(self.now_ms()))

    def command(self, msg) -> None:
        """One control message (acknowledged to the broker once acted on)."""
        crashpoint("ctl:received")
        self.execute(self.core.command(msg.payload, self.now_ms()))
        msg.ack()

    def drain_events(self, block_s: float = 0.0) -> None:
        """Handle what the other threads queued, in order; wait up to ``block_s`` for the first."""
        timeout = block_s
        while True:
            try:
                event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
            except queue.Empty:
                return
            timeout = 0
            self.handle(event)

    def handle(self, event) -> None:
        kind, a, b = event
        if kind == "data":
            self._release(a)
            if a is EOF:
                self._on_eof()
            else:
                self.feed_input(a)
        elif kind == "ack":
            self._acked_token = a
            index = self._inflight.pop(a, None)
            if index is not None:
                if not b:
                    log.error("broker refused spooled segment %d: dropped", index)
                self.execute(self.core.delivered(index, b, self.now_ms()))
        elif kind == "cmd":
            self.command(a)
        elif kind == "conn":
            self.execute(self.core.connection(a, self.now_ms()))

    def local_handover(self) -> None:
        """Pairing offers, reset requests and camera events handed over locally
        (``segbind_agent.inbox``)."""
        for kind, data in self.inbox.take():
            if kind == PAIR:
                self.execute(self.core.pair(data, self.now_ms()))
            elif kind == RESET:
                self.execute(self.core.physical_reset(self.now_ms()))
            elif kind == EVENT:
                self.event(data.decode("ascii", "replace"))

    def event(self, kind: str) -> None:
        """A camera event (motion, a doorbell press...) that wants a thumbnail: the core makes a
        still and publishes it (``topics.STILL``)."""
        self.execute(self.core.event(kind, self.now_ms()))

    def on_command_message(self, msg) -> None:  # paho's thread
        self.events.put(("cmd", msg, None))

    def _on_chunk(self, chunk) -> None:  # the reader's thread
        for _ in range(_chunks(chunk)):
            self._room.acquire()
        self.events.put(("data", chunk, None))

    def _release(self, chunk) -> None:
        for _ in range(_chunks(chunk)):
            self._room.release()

    def _on_eof(self) -> None:
        self.end_of_input()
        reader = self.reader
        self.core.input_status(self._on_eof_mode != "reopen",
                               reader.error if reader is not None else None)
        if reader is not None and reader.error:
            log.error("input failed: %s", reader.error)
        if self._on_eof_mode != "reopen":
            log.info("end of input after %d bytes", self.core.input["bytes"])
            self.execute([self.core.status(self.now_ms())])
            if self._on_eof_mode == "exit":
                self._drain_until = time.time() + self.cfg.exit_drain_timeout_s

    # -- the main loop ----------------------------------------------------------------------

    def stop(self, *_args) -> None:
        self._stopping = True

    def connect(self) -> None:
        """Subscribe to this camera's commands and start the link (it reconnects by itself)."""
        self.link.subscribe(self.topic[topics.CTL], self.on_command_message, qos=1)
        self.link.start()

    def _loop_once(self) -> None:
        self.drain_events(block_s=0.05)
        self.local_handover()
        self.execute(self.core.tick(self.now_ms()))

    def _safely(self, step) -> bool:
        """Run one turn of the main loop; False when the agent must stop. The core never raises;
        anything else that does (a broken file, a transport's error) is logged in one line and
        the loop goes on, except a state that cannot be written: then the agent stops (exit 2)
        rather than run ahead of what it could make durable."""
        try:
            step()
            return True
        except StorageError as exc:
            log.error("stopping: %s", exc)
            self.exit_code = 2
            return False
        except Exception as exc:  # the last line of defence: the loop itself never dies
            log.error("main loop: %s: %s", type(exc).__name__, redact(str(exc))[:160])
            return True

    def run(self) -> int:
        cfg = self.cfg
        self.begin()
        self.local_handover()  # what was handed over while it was off comes first
        self.connect()
        rtsp = is_rtsp(cfg.input)
        fifo = rtsp or (cfg.input != "-" and is_fifo(cfg.input))
        self._on_eof_mode = cfg.on_eof or ("reopen" if fifo else "exit")
        self._drain_until = None
        if rtsp:  # the streamer's RTSP: its end of stream is a BYE; it is asked again in "reopen"
            self.reader = RtspReader(cfg.input, cfg.rtsp_settings(), sink=self._on_chunk,
                                     reopen=(self._on_eof_mode == "reopen"))
        else:
            self.reader = InputReader(cfg.input, reopen=(self._on_eof_mode == "reopen"),
                                      sink=self._on_chunk)
        self.reader.start()
        log.info("camera %s reads %s (at end of input: %s), publishes to %s:%d",
                 self.camera, cfg.source_name, self._on_eof_mode, cfg.broker_host, cfg.broker_port)
        while not self._stopping:
            if not self._safely(self._loop_once):
                break
            if self._drain_until is not None and (not len(self.core.spool)
                                                  or time.time() > self._drain_until):
                if len(self.core.spool):
                    log.warning("%d segment(s) left in the spool for the next start",
                                len(self.core.spool))
                break
        if self._stopping:
            log.info("stopping: tagging what the encoder sent so far")
            while True:  # what the reader already queued was captured: it is tagged too
                try:
                    kind, a, _b = self.events.get_nowait()
                except queue.Empty:
                    break
                if kind == "data" and a is not EOF:
                    self._release(a)
                    self.feed_input(a)
            self.execute(self.core.stop(self.now_ms()))
        self.shutdown()
        return self.exit_code

    def shutdown(self, drain_s: float = 2.0) -> None:
        """Deliver what can be delivered quickly, say goodbye, disconnect."""
        if self.reader is not None:
            self.reader.stop()
        deadline = time.time() + drain_s
        while len(self.core.spool) and self.link.connected and time.time() < deadline:
            self._drain_acks(0.02)
        self._drain_acks(0)
        token = self.link.publish(self.topic[topics.STATUS],
                                  self.core.status_json("offline", self.now_ms(), "stopped"),
                                  qos=1, retain=True)
        deadline = time.time() + 1.0
        while self.link.connected and time.time() < deadline and self._acked_token != token:
            self._drain_acks(0.05)
        self.link.stop()
        counts = self.core.counts
        log.info("stopped: %d segment(s) tagged, %d delivered, %d left in the spool",
                 counts["segments_tagged"], counts["segments_delivered"], len(self.core.spool))

    def _drain_acks(self, block_s: float) -> None:
        """Handle acknowledgements and connection changes; a command arriving now stays with
        the broker for the next start, and input is no longer read."""
        try:
            event = self.events.get(timeout=block_s) if block_s > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        if event[0] in ("ack", "conn"):
            self.handle(event)
        elif event[0] == "data":
            self._release(event[1])


def install_signal_handlers(agent: Agent) -> None:
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)


__all__ = ["Agent", "install_signal_handlers"]
