"""The camera agent: input -> segmenter -> tagger -> spool -> MQTT, and the control plane.

One thread (``run``) owns all state: the binding, the tagger, the spool. The
input reader and paho's network thread only hand it work through queues, so a
command takes effect between two segments and no segment is ever tagged
under a mix of bindings.
"""

import hashlib
import json
import logging
import os
import queue
import signal
import time

from segbind_core import control
from segbind_core.keys import derive_binding_key, derive_control_key
from segbind_core.nal import annexb_units
from segbind_core.segment import Segmenter
from segbind_core.tagger import Tagger

from . import __version__
from .config import load_device_secret
from .faults import crashpoint
from .source import EOF, InputReader, is_fifo
from .spool import Spool
from .state import StateStore

log = logging.getLogger("segbind_agent")

MAX_GAPS_IN_STATUS = 8


def now_ms() -> int:
    return int(time.time() * 1000)


def new_stream_id(previous: int) -> int:
    """A stream id that orders after every earlier one: max(previous + 1, now in ms)."""
    return max(previous + 1, now_ms())


class Agent:
    def __init__(self, config, link=None) -> None:
        self.cfg = config
        self.camera = config.camera_id
        control.check_topic_id(self.camera, "camera")
        secret, test_only, exposed = load_device_secret(config.device_secret_file, self.camera)
        if test_only:
            log.warning("camera %s runs on a TEST-ONLY device secret: never ship this",
                        self.camera)
        if exposed:
            log.warning("device secret file %s is readable by other users",
                        config.device_secret_file)
        self._secret = secret
        self._control_key = derive_control_key(secret, self.camera)
        self.store = StateStore(config.state_dir, self.camera)
        self.state = self.store.load()
        self.spool = Spool(os.path.join(config.state_dir, "spool"), config.spool_max_bytes,
                           config.spool_max_segments, config.spool_fsync)
        self.topic = {leaf: control.camera_topic(self.camera, leaf, config.topic_prefix)
                      for leaf in (control.SEG, control.STATUS, control.EVENT, control.CTL,
                                   control.CTL_RESULT)}
        self.events = queue.Queue()
        if link is None:
            from .link import MqttLink
            will = (self.topic[control.STATUS], self._status_json("offline", "connection lost"),
                    True)
            link = MqttLink(config.client_id, config.broker_host, config.broker_port,
                            keepalive=config.keepalive, will=will, username=config.username,
                            password=config.password(), tls_ca=config.tls_ca,
                            session_expiry_s=config.session_expiry_s,
                            reconnect_min_s=config.reconnect_min_s,
                            reconnect_max_s=config.reconnect_max_s)
        self.link = link
        self.link.on_ack(lambda token, ok: self.events.put(("ack", token, ok)))
        self.link.on_connection(lambda up: self.events.put(("conn", up, None)))
        self.tagger = None
        self._inflight = {}  # MQTT token -> spool index
        self._acked_token = None
        self._stopping = False
        self._started = time.time()
        self._gaps = []
        self.counts = {"segments_in": 0, "segments_tagged": 0, "segments_delivered": 0,
                       "segments_unclaimed": 0, "publish_refused": 0, "commands_applied": 0,
                       "commands_refused": 0, "gaps": 0}
        self.refused = {}  # status -> count
        self.input_done = False
        self.reader = None
        self.exit_code = 0

    # -- streams and bindings ----------------------------------------------------------------

    def begin(self) -> None:
        """Start a new stream (ordered after every earlier one) and the tagger for it."""
        state = self.state.copy()
        state.stream_id = new_stream_id(state.stream_id)
        self.store.save(state, crash_tag="start")
        self.state = state
        self._make_tagger()
        if not state.claimed and len(self.spool):
            # only a claimed camera spools: these are a previous owner's, and a reset
            # was cut short before it could delete them
            log.info("unclaimed: %d spooled segment(s) of a previous owner deleted",
                     self.spool.purge())
        log.info("camera %s starts stream %d (%s)", self.camera, state.stream_id,
                 "owner %s, epoch %d" % (state.owner, state.epoch) if state.claimed
                 else "unclaimed: no video is tagged or published")

    def _binding_key(self, owner: str, epoch: int) -> bytes:
        return derive_binding_key(self._secret, owner, self.camera, epoch)

    def _make_tagger(self) -> None:
        s = self.state
        self.tagger = (Tagger(self._binding_key(s.owner, s.epoch), s.owner, self.camera, s.epoch,
                              s.stream_id) if s.claimed else None)

    # -- segments ----------------------------------------------------------------------------

    def on_segment(self, segment: bytes) -> None:
        """Tag one closed segment under the binding in force now, and spool it."""
        self.drain_events()  # a pending command takes effect here, between two segments
        self.counts["segments_in"] += 1
        if self.tagger is None:
            self.counts["segments_unclaimed"] += 1
            return
        units = annexb_units(segment)
        if not units:
            return
        try:
            tagged, tag = self.tagger.tag_annexb(segment, units, now_ms())
        except ValueError as exc:
            log.error("segment not tagged: %s", exc)
            return
        self.counts["segments_tagged"] += 1
        for gap in self.spool.append(tagged, tag.stream_id, tag.seq, tag.epoch):
            self._report_gap(gap)
        self.pump()

    def _report_gap(self, gap) -> None:
        self.counts["gaps"] += 1
        info = gap.as_dict()
        self._gaps = (self._gaps + [info])[-MAX_GAPS_IN_STATUS:]
        log.warning("spool gap: dropped %d segment(s), stream %d seq %d to stream %d seq %d (%s)",
                    gap.count, gap.first[0], gap.first[1], gap.last[0], gap.last[1], gap.why)
        self._event("spool_gap", info)

    def pump(self) -> None:
        """Hand the oldest spooled segments to the MQTT client, at most ``publish_window`` at once."""
        if not self.link.connected:
            return
        room = self.cfg.publish_window - self.spool.inflight
        if room <= 0:
            return
        for entry in self.spool.to_send(room):
            try:
                payload = self.spool.read(entry)
            except OSError as exc:
                log.error("spooled segment %d unreadable (%s): dropped", entry.index, exc)
                self.spool.delivered(entry.index)
                continue
            token = self.link.publish(self.topic[control.SEG], payload, qos=1, retain=False,
                                      user_properties={"stream": entry.stream_id,
                                                       "seq": entry.seq, "epoch": entry.epoch})
            self._inflight[token] = entry.index
            self.spool.mark_inflight(entry.index)

    # -- events from other threads ----------------------------------------------------------------

    def drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle_event(*event)

    def _handle_event(self, kind, a, b) -> None:
        if kind == "ack":
            self._acked_token = a
            index = self._inflight.pop(a, None)
            if index is not None:
                if not b:
                    self.counts["publish_refused"] += 1
                    log.error("broker refused spooled segment %d: dropped", index)
                else:
                    self.counts["segments_delivered"] += 1
                self.spool.delivered(index)
        elif kind == "cmd":
            self.handle_command(a)
        elif kind == "conn":
            if a:
                self.publish_status()
                self.pump()

    def on_command_message(self, msg) -> None:  # paho's thread
        self.events.put(("cmd", msg, None))

    # -- the control plane ------------------------------------------------------------------------

    def handle_command(self, msg) -> None:
        """Authenticate, check the counter, persist, then act; report every outcome."""
        crashpoint("ctl:received")
        payload = msg.payload
        try:
            cmd = control.open_command(self._control_key, self.camera, payload)
        except control.ControlError as exc:
            counter, op = 0, 0
            try:
                parsed = control.decode_command(payload)[0]
                counter, op = parsed.counter, parsed.op
            except control.ControlError:
                pass
            self._refuse(exc.reason, str(exc), counter, op)
            msg.ack()
            return
        digest = hashlib.sha256(payload).hexdigest()[:32]
        state = self.state
        if cmd.counter <= state.counter:
            if cmd.counter == state.counter and digest == state.last_command and state.last_result:
                # QoS-1 redelivery of the command accepted last (the agent died before acking it)
                again = json.loads(state.last_result)
                if again["status"] == control.OK:
                    again["status"] = control.ALREADY_APPLIED
                self._send_result(control.Result(**again))
                log.info("command %s #%d delivered again: already applied", cmd.name, cmd.counter)
            else:
                self._refuse(control.REPLAY, "counter %d is not above %d"
                             % (cmd.counter, state.counter), cmd.counter, cmd.op)
            msg.ack()
            return
        new = state.copy()
        new.counter = cmd.counter
        new.last_command = digest
        status, detail = self._plan(cmd, new)
        next_seq = self.tagger.seq if self.tagger is not None else 0
        if status == control.OK and cmd.op == control.CLAIM:
            new.stream_id = new_stream_id(new.stream_id)
            next_seq = 0
        result = control.Result(self.camera, cmd.counter, cmd.op, status, new.owner or "",
                                new.epoch, new.stream_id, next_seq if new.claimed else 0, detail)
        new.last_result = json.dumps({
            "camera": result.camera, "counter": result.counter, "op": result.op,
            "status": result.status, "owner": result.owner, "epoch": result.epoch,
            "stream_id": result.stream_id, "seq": result.seq, "detail": result.detail})
        self.store.save(new, crash_tag="ctl")  # the counter is durable before anything is done
        crashpoint("ctl:persisted")
        self.state = new
        if status == control.OK:
            self._apply(cmd)
            self.counts["commands_applied"] += 1
            if new.claimed:
                log.info("command %s #%d applied: owner %s, epoch %d, from stream %d seq %d",
                         cmd.name, cmd.counter, new.owner, new.epoch, new.stream_id, result.seq)
            else:
                log.info("command %s #%d applied: binding cleared, no video is tagged",
                         cmd.name, cmd.counter)
        else:
            self._count_refusal(status)
            log.warning("command %s #%d refused: %s (%s)", cmd.name, cmd.counter, status, detail)
            self._event("command_refused", {"status": status, "counter": cmd.counter,
                                            "command": cmd.name, "detail": detail})
        crashpoint("ctl:applied")
        self._send_result(result)
        self.publish_status()
        msg.ack()

    def _plan(self, cmd, new):
        """(status, detail); on OK, ``new`` holds the binding after the command."""
        if cmd.op == control.CLAIM:
            if new.claimed:
                return control.ALREADY_CLAIMED, "claimed by another owner or epoch"
        elif cmd.op in (control.ROTATE, control.TRANSFER):
            if not new.claimed:
                return control.NOT_CLAIMED, "camera is not claimed"
            if cmd.op == control.ROTATE and cmd.owner != new.owner:
                return control.OWNER_MISMATCH, "rotate names another owner"
        elif cmd.op == control.RESET:
            new.owner, new.epoch = None, 0
            return control.OK, "binding cleared"
        if cmd.epoch <= new.epoch_hwm:
            return control.STALE_EPOCH, "epoch %d is not above %d" % (cmd.epoch, new.epoch_hwm)
        new.owner, new.epoch, new.epoch_hwm = cmd.owner, cmd.epoch, cmd.epoch
        return control.OK, ""

    def _apply(self, cmd) -> None:
        s = self.state
        if cmd.op == control.CLAIM:
            self._make_tagger()
        elif cmd.op in (control.ROTATE, control.TRANSFER):
            self.tagger.rebind(self._binding_key(s.owner, s.epoch), s.owner, s.epoch)
        elif cmd.op == control.RESET:
            self.tagger = None
            purged = self.spool.purge()
            self._inflight.clear()
            if purged:
                log.info("factory reset: %d spooled segment(s) of the old owner deleted", purged)

    def _refuse(self, status: str, detail: str, counter: int, op: int) -> None:
        self._count_refusal(status)
        log.warning("command refused: %s (%s)", status, detail)
        self._event("command_refused", {"status": status, "counter": counter,
                                        "command": control.OP_NAMES.get(op, "unknown"),
                                        "detail": detail})
        s = self.state
        self._send_result(control.Result(self.camera, counter, op if 0 <= op <= 255 else 0, status,
                                         s.owner or "", s.epoch, s.stream_id,
                                         self.tagger.seq if self.tagger else 0, detail))

    def _count_refusal(self, status: str) -> None:
        self.counts["commands_refused"] += 1
        self.refused[status] = self.refused.get(status, 0) + 1

    def _send_result(self, result) -> None:
        self.link.publish(self.topic[control.CTL_RESULT], result.encode(self._control_key), qos=1)

    # -- status, health, events --------------------------------------------------------------------

    def _status_json(self, state: str, reason: str = "") -> bytes:
        s = self.state
        body = {"camera": self.camera, "state": state, "agent": __version__, "time_ms": now_ms()}
        if reason:
            body["reason"] = reason
        if state != "offline" or reason != "connection lost":
            body.update({
                "claimed": s.claimed, "owner": s.owner, "epoch": s.epoch, "epoch_hwm": s.epoch_hwm,
                "counter": s.counter, "stream_id": s.stream_id,
                "next_seq": self.tagger.seq if self.tagger else None,
                "uptime_s": round(time.time() - self._started, 1),
                "counts": dict(self.counts), "commands_refused": dict(self.refused),
                "spool": self.spool.stats(), "gaps": list(self._gaps),
                "input": {"bytes": self.reader.bytes_read if self.reader else 0,
                          "done": self.input_done,
                          "error": self.reader.error if self.reader else None},
            })
        return json.dumps(body, sort_keys=True).encode("utf-8")

    def publish_status(self, state: str = "online", reason: str = ""):
        return self.link.publish(self.topic[control.STATUS], self._status_json(state, reason),
                                 qos=1, retain=True)

    def _event(self, name: str, info: dict) -> None:
        body = dict(info, event=name, camera=self.camera, time_ms=now_ms())
        self.link.publish(self.topic[control.EVENT], json.dumps(body, sort_keys=True).encode(),
                          qos=1)

    # -- the main loop --------------------------------------------------------------------------

    def stop(self, *_args) -> None:
        self._stopping = True

    def connect(self) -> None:
        """Subscribe to this camera's commands and start the link (it reconnects by itself)."""
        self.link.subscribe(self.topic[control.CTL], self.on_command_message, qos=1)
        self.link.start()

    def run(self) -> int:
        cfg = self.cfg
        self.begin()
        self.connect()
        fifo = cfg.input != "-" and is_fifo(cfg.input)
        on_eof = cfg.on_eof or ("reopen" if fifo else "exit")
        self.reader = InputReader(cfg.input, reopen=(on_eof == "reopen"))
        self.reader.start()
        segmenter = Segmenter(max_duration_s=cfg.max_duration_s, fps=cfg.fps)
        next_health = time.time() + cfg.health_interval_s
        drain_until = None
        log.info("camera %s reads %s (at end of input: %s), publishes to %s:%d",
                 self.camera, cfg.input, on_eof, cfg.broker_host, cfg.broker_port)
        while not self._stopping:
            self.drain_events()
            try:
                chunk = self.reader.chunks.get(timeout=0.05)
            except queue.Empty:
                chunk = b""
            if chunk is EOF:
                for segment in segmenter.flush():
                    self.on_segment(segment)
                segmenter = Segmenter(max_duration_s=cfg.max_duration_s, fps=cfg.fps)
                if self.reader.error:
                    log.error("input failed: %s", self.reader.error)
                if on_eof != "reopen":
                    self.input_done = True
                    log.info("end of input after %d bytes", self.reader.bytes_read)
                    self.publish_status()
                    if on_eof == "exit":
                        drain_until = time.time() + cfg.exit_drain_timeout_s
            elif chunk:
                for segment in segmenter.feed(chunk):
                    self.on_segment(segment)
            self.pump()
            if drain_until is not None and (not len(self.spool) or time.time() > drain_until):
                if len(self.spool):
                    log.warning("%d segment(s) left in the spool for the next start",
                                len(self.spool))
                break
            if time.time() >= next_health:
                next_health = time.time() + cfg.health_interval_s
                self.publish_status()
        if self._stopping:
            log.info("stopping: tagging what the encoder sent so far")
            for segment in segmenter.flush():
                self.on_segment(segment)
        self.shutdown()
        return self.exit_code

    def shutdown(self, drain_s: float = 2.0) -> None:
        """Deliver what can be delivered quickly, say goodbye, disconnect."""
        if self.reader is not None:
            self.reader.stop()
        deadline = time.time() + drain_s
        while len(self.spool) and self.link.connected and time.time() < deadline:
            self.drain_events()
            self.pump()
            time.sleep(0.02)
        self.drain_events()
        token = self.publish_status("offline", "stopped")
        deadline = time.time() + 1.0
        while self.link.connected and time.time() < deadline and self._acked_token != token:
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event[0] != "cmd":  # a command arriving now stays with the broker for next time
                self._handle_event(*event)
        self.link.stop()
        log.info("stopped: %d segment(s) tagged, %d delivered, %d left in the spool",
                 self.counts["segments_tagged"], self.counts["segments_delivered"], len(self.spool))


def install_signal_handlers(agent: Agent) -> None:
    signal.signal(signal.SIGTERM, agent.stop)
    signal.signal(signal.SIGINT, agent.stop)
