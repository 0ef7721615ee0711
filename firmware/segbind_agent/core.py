"""The camera agent's decisions: one object fed events, returning actions (sans-I/O, like h11).

``AgentCore`` holds everything the camera decides: its binding state, the
segmenter, the tagger, the spool's policy (what is kept, dropped, sent next),
what to publish and what to persist. It does no I/O and reads no clock: each
event carries the time, and each call returns the actions to carry out, in
order. The daemon (``segbind_agent.daemon``: threads, signals, paho, files),
the fleet simulation and ``segbind tag`` all drive this one core.

Events (methods): ``start``, ``encoder_bytes``, ``encoder_unit``,
``encoder_end``, ``command``, ``delivered``, ``connection``, ``tick``,
``input_status``, ``stop``.

Actions: ``Persist`` (write the state durably before going on), ``Store``
and ``Delete`` (spool entries), ``Send`` (publish a spooled segment; answer
with ``delivered``), ``Publish`` (status, events, command results), ``Log``.

Pure code on the camera's CPython and on MicroPython (it uses only
``segbind_core`` and ``json``).
"""

import hashlib
import json
from binascii import hexlify

from segbind_core import control, topics
from segbind_core.keys import derive_binding_key, derive_control_key
from segbind_core.nal import annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Iterable, Optional, Protocol, Union

    from segbind_core.nal import Buffer
    from segbind_core.segment import SegmentOrCut

    Action = Union["Persist", "Store", "Delete", "Send", "Publish", "Log"]

    class Keys(Protocol):
        """What AgentCore needs of its keys (``DeviceKeys`` has it)."""

        @property
        def control(self) -> Optional[bytes]:
            """The control key; None where no command is accepted."""

        def binding(self, owner: str, epoch: int) -> bytes:
            """The binding key of (owner, epoch)."""
except ImportError:
    pass

STATE_KIND = "agent-state"
STATE_VERSION = 1
MAX_GAPS_IN_STATUS = 8

# Log levels of ``Log`` actions (the logging module's numbers).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40


# -- actions ----------------------------------------------------------------------------------

class Persist:
    """Write ``state`` durably (atomically) before carrying out the next action."""

    def __init__(self, state: "BindingState", crash_tag: str) -> None:
        self.state = state
        self.crash_tag = crash_tag


class Store:
    """Keep ``payload`` in the spool as ``entry`` (it must survive a restart)."""

    def __init__(self, entry: "Entry", payload: bytes) -> None:
        self.entry = entry
        self.payload = payload


class Delete:
    """Remove spool entry ``index`` (delivered, evicted or purged)."""

    def __init__(self, index: int) -> None:
        self.index = index


class Send:
    """Publish spooled ``entry`` on the segment topic, QoS 1; report ``delivered(index, ok)``."""

    def __init__(self, entry: "Entry") -> None:
        self.entry = entry


class Publish:
    """Publish ``payload`` on this camera's topic ``leaf`` (``topics.STATUS``, ...)."""

    def __init__(self, leaf: str, payload: bytes, retain: bool = False) -> None:
        self.leaf = leaf
        self.payload = payload
        self.retain = retain


class Log:
    def __init__(self, level: int, message: str) -> None:
        self.level = level
        self.message = message


# -- the binding state -------------------------------------------------------------------------

class StateError(Exception):
    """A state file that exists but cannot be trusted (corrupt, other camera)."""


class BindingState:
    """What the camera must never forget (the agent state file, docs/AGENT.md).

    counter    the highest command counter accepted (replay protection)
    owner      the owner the camera tags for, or None when unclaimed
    epoch      the epoch it tags under (0 when unclaimed)
    epoch_hwm  the highest epoch ever used: a new binding must be above it
    stream_id  the id of the stream begun most recently
    last_command, last_result   digest of the last accepted command and its
               result (``control.Result.to_json``), to answer a redelivery the same way
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.counter = 0
        self.owner: Optional[str] = None
        self.epoch = 0
        self.epoch_hwm = 0
        self.stream_id = 0
        self.last_command = ""
        self.last_result = ""

    @property
    def claimed(self) -> bool:
        return self.owner is not None

    def copy(self) -> "BindingState":
        other = BindingState(self.camera)
        for name in ("counter", "owner", "epoch", "epoch_hwm", "stream_id", "last_command",
                     "last_result"):
            setattr(other, name, getattr(self, name))
        return other

    def to_json(self) -> dict[str, Any]:
        return {"segbind": STATE_KIND, "version": STATE_VERSION, "camera": self.camera,
                "counter": self.counter, "owner": self.owner, "epoch": self.epoch,
                "epoch_hwm": self.epoch_hwm, "stream_id": self.stream_id,
                "last_command": self.last_command, "last_result": self.last_result}

    def encode(self) -> bytes:
        return json.dumps(self.to_json()).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: object, camera: str) -> "BindingState":
        if not isinstance(data, dict) or data.get("segbind") != STATE_KIND:
            raise StateError("not a segbind agent state file")
        if data.get("version") != STATE_VERSION:
            raise StateError("unsupported state file version")
        if data.get("camera") != camera:
            raise StateError("state file belongs to camera %r" % data.get("camera"))
        state = cls(camera)
        try:
            for name in ("counter", "epoch", "epoch_hwm", "stream_id"):
                value = data[name]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise StateError("%s is not a non-negative integer" % name)
                setattr(state, name, value)
            owner = data["owner"]
            if owner is not None and (not isinstance(owner, str) or not owner):
                raise StateError("owner is not a string")
            state.owner = owner
            state.last_command = str(data.get("last_command", ""))
            state.last_result = str(data.get("last_result", ""))
        except KeyError as exc:
            raise StateError("state file lacks %s" % exc) from None
        if (state.owner is None) != (state.epoch == 0) or state.epoch > state.epoch_hwm:
            raise StateError("state file is inconsistent")
        return state


# -- the spool's policy ------------------------------------------------------------------------

class Entry:
    """One spooled segment: where it sits in the spool and in its stream."""

    __slots__ = ("index", "size", "stream_id", "seq", "epoch")

    def __init__(self, index: int, size: int, stream_id: int, seq: int, epoch: int) -> None:
        self.index = index
        self.size = size
        self.stream_id = stream_id
        self.seq = seq
        self.epoch = epoch

    def __repr__(self) -> str:
        return "Entry(#%d, stream %d seq %d, %d bytes)" % (self.index, self.stream_id, self.seq,
                                                           self.size)


class Gap:
    """Segments dropped together: ``count`` of them, from (stream, seq) to (stream, seq)."""

    def __init__(self, entries: list[Entry], why: str) -> None:
        self.count = len(entries)
        self.bytes = sum(e.size for e in entries)
        self.first = (entries[0].stream_id, entries[0].seq)
        self.last = (entries[-1].stream_id, entries[-1].seq)
        self.why = why

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "bytes": self.bytes, "why": self.why,
                "first": {"stream_id": self.first[0], "seq": self.first[1]},
                "last": {"stream_id": self.last[0], "seq": self.last[1]}}


class SpoolQueue:
    """Which tagged segments the camera keeps, drops and sends next; the bytes live elsewhere.

    Bounded in bytes and in segments: when a new segment does not fit, the
    oldest segments not handed to the MQTT client yet are dropped, and the gap
    is reported (never a crash). Segments leave when the broker acknowledges them.
    """

    def __init__(self, max_bytes: int, max_segments: int, entries: Iterable[Entry] = ()) -> None:
        if max_bytes <= 0 or max_segments <= 0:
            raise ValueError("spool bounds must be positive")
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.entries = sorted(entries, key=lambda e: e.index)  # oldest first
        # index -> True: handed to the MQTT client, not acknowledged
        self.inflight: dict[int, bool] = {}
        self.bytes = sum(e.size for e in self.entries)
        self.next_index = self.entries[-1].index + 1 if self.entries else 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, size: int, stream_id: int, seq: int,
            epoch: int) -> tuple[Optional[Entry], list[Entry], list[Gap]]:
        """(entry or None when it cannot be kept, evicted entries, gaps) for a new segment."""
        entry = Entry(self.next_index, size, stream_id, seq, epoch)
        if size > self.max_bytes:
            self.dropped_total += 1
            return None, [], [Gap([entry], "segment larger than the whole spool")]
        evicted = []
        while self.entries and (self.bytes + size > self.max_bytes
                                or len(self.entries) + 1 > self.max_segments):
            victim = self._oldest_not_inflight()
            if victim is None:
                break
            self.remove(victim.index)
            evicted.append(victim)
        self.next_index += 1
        self.entries.append(entry)
        self.bytes += size
        self.dropped_total += len(evicted)
        return entry, evicted, [Gap(evicted, "spool full")] if evicted else []

    def _oldest_not_inflight(self) -> Optional[Entry]:
        for entry in self.entries:
            if entry.index not in self.inflight:
                return entry
        return None

    def remove(self, index: int) -> Optional[Entry]:
        """Take entry ``index`` out (delivered or evicted); None when it is not there."""
        self.inflight.pop(index, None)
        for i, entry in enumerate(self.entries):
            if entry.index == index:
                del self.entries[i]
                self.bytes -= entry.size
                return entry
        return None

    def to_send(self, limit: int) -> list[Entry]:
        """Up to ``limit`` of the oldest entries not yet handed to the MQTT client."""
        out: list[Entry] = []
        for entry in self.entries:
            if len(out) >= limit:
                break
            if entry.index not in self.inflight:
                out.append(entry)
        return out

    def stats(self) -> dict[str, int]:
        return {"segments": len(self.entries), "bytes": self.bytes, "inflight": len(self.inflight),
                "max_bytes": self.max_bytes, "max_segments": self.max_segments,
                "dropped_total": self.dropped_total}


# -- the core ----------------------------------------------------------------------------------

def new_stream_id(previous: int, now_ms: int) -> int:
    """A stream id that orders after every earlier one: max(previous + 1, now in ms)."""
    return max(previous + 1, now_ms)


class AgentSettings:
    """What the core needs of the agent's configuration (``segbind_agent.config.Config`` has it)."""

    def __init__(self, max_duration_s: float = 4.0, fps: Optional[float] = None,
                 spool_max_bytes: int = 64 * 1024 * 1024, spool_max_segments: int = 2000,
                 publish_window: int = 8, health_interval_s: float = 10.0) -> None:
        self.max_duration_s = max_duration_s
        self.fps = fps
        self.spool_max_bytes = spool_max_bytes
        self.spool_max_segments = spool_max_segments
        self.publish_window = publish_window
        self.health_interval_s = health_interval_s


class DeviceKeys:
    """The camera's keys, derived from its device secret (never stored, never logged)."""

    def __init__(self, device_secret: bytes, camera: str) -> None:
        self._secret = device_secret
        self.camera = camera
        self.control = derive_control_key(device_secret, camera)

    def binding(self, owner: str, epoch: int) -> bytes:
        return derive_binding_key(self._secret, owner, self.camera, epoch)


class AgentCore:
    """One camera's decisions. Every method takes an event and returns a list of actions.

    ``keys`` gives the binding key of (owner, epoch) and the control key
    (``DeviceKeys``; ``control`` may be None where no command is accepted).
    """

    def __init__(self, camera: str, keys: Keys, state: BindingState,
                 settings: Optional[AgentSettings] = None, spooled: Iterable[Entry] = (),
                 version: str = "") -> None:
        topics.check_topic_id(camera, "camera")
        self.camera = camera
        self.settings = settings or AgentSettings()
        self.version = version
        self.keys = keys
        self.state = state
        self.spool = SpoolQueue(self.settings.spool_max_bytes, self.settings.spool_max_segments,
                                spooled)
        self.segmenter = self._new_segmenter()
        self.tagger: Optional[Tagger] = None
        self._switch_pending = False  # the tagger follows ``state`` once the cut segment closes
        self.connected = False
        self.counts = {"segments_in": 0, "segments_tagged": 0, "segments_delivered": 0,
                       "segments_unclaimed": 0, "publish_refused": 0, "commands_applied": 0,
                       "commands_refused": 0, "gaps": 0}
        self.refused: dict[str, int] = {}  # status -> count
        self.gaps: list[dict[str, Any]] = []  # the latest spool gaps, as dicts
        self.input: dict[str, Any] = {"bytes": 0, "done": False, "error": None}
        self._started_ms = 0
        self._next_health_ms = 0

    def _new_segmenter(self) -> Segmenter:
        return Segmenter(max_duration_s=self.settings.max_duration_s, fps=self.settings.fps)

    # -- the stream --------------------------------------------------------------------------

    def start(self, now_ms: int, stream_id: Optional[int] = None) -> list[Action]:
        """The agent starts: a new stream, ordered after every earlier one (or ``stream_id``)."""
        self._started_ms = now_ms
        self._next_health_ms = now_ms + int(self.settings.health_interval_s * 1000)
        state = self.state.copy()
        state.stream_id = new_stream_id(state.stream_id, now_ms) if stream_id is None else stream_id
        actions: list[Action] = [Persist(state, "start")]
        self.state = state
        self._make_tagger()
        if not state.claimed and len(self.spool):
            # Only a claimed camera spools: these are a previous owner's, and a reset
            # was cut short before it could delete them.
            count = len(self.spool)
            actions += self._purge()
            actions.append(Log(INFO, "unclaimed: %d spooled segment(s) of a previous owner deleted"
                               % count))
        actions.append(Log(INFO, "camera %s starts stream %d (%s)" % (
            self.camera, state.stream_id, "owner %s, epoch %d" % (state.owner, state.epoch)
            if state.claimed else "unclaimed: no video is tagged or published")))
        return actions

    def _make_tagger(self) -> None:
        s = self.state
        self.tagger = (Tagger(self._binding_key(s.owner, s.epoch), s.owner, self.camera, s.epoch,
                              s.stream_id) if s.owner is not None else None)  # claimed

    def _binding_key(self, owner: str, epoch: int) -> bytes:
        return self.keys.binding(owner, epoch)

    # -- video in ----------------------------------------------------------------------------

    def encoder_bytes(self, data: Buffer, now_ms: int) -> list[Action]:
        """The encoder's next Annex-B bytes."""
        self.input["bytes"] += len(data)
        return self._segments(self.segmenter.push(data, now_ms), now_ms)

    def encoder_unit(self, nal: Buffer, now_ms: int) -> list[Action]:
        """One NAL unit from an encoder SDK."""
        return self._segments(self.segmenter.push_unit(nal, now_ms), now_ms)

    def encoder_end(self, now_ms: int) -> list[Action]:
        """The encoder's output ended (or restarts): the last segment closes."""
        actions = self._segments(self.segmenter.finish(), now_ms)
        self.segmenter = self._new_segmenter()
        return actions

    def _segments(self, segments: list[SegmentOrCut], now_ms: int) -> list[Action]:
        actions: list[Action] = []
        for segment in segments:
            # CUT, a command's instant: the tagger follows the new binding
            if not isinstance(segment, Segment):
                if self._switch_pending:
                    actions += self._switch_binding()
                continue
            if segment.pictures:
                actions += self._tag(segment.data, now_ms)
            else:  # only units before the first picture (a stream cut short): nothing to show
                actions.append(Log(WARNING, "%d bytes without a picture: not tagged"
                                   % len(segment.data)))
            actions += self._pump()
        return actions

    def _switch_binding(self) -> list[Action]:
        """Make the tagger follow the binding state (after a command's cut)."""
        self._switch_pending = False
        s = self.state
        if s.owner is None:  # not claimed (spelled out for the type checker)
            self.tagger = None
            count = len(self.spool)
            actions = self._purge()
            if count:
                actions.append(Log(INFO, "binding cleared: %d spooled segment(s) of the old owner"
                                   " deleted" % count))
            return actions
        if self.tagger is None or self.tagger.stream_id != s.stream_id:
            self._make_tagger()
        else:
            self.tagger.rebind(self._binding_key(s.owner, s.epoch), s.owner, s.epoch)
        return []

    def _next_seq(self, closes_one_more: bool) -> int:
        """The seq of the first segment tagged under ``state``'s binding."""
        s = self.state
        if not s.claimed:
            return 0
        if self.tagger is None or self.tagger.stream_id != s.stream_id:
            return 0
        return self.tagger.seq + (1 if closes_one_more else 0)

    def _tag(self, data: bytes, now_ms: int) -> list[Action]:
        """Tag one closed segment under the binding in force now, and spool it."""
        self.counts["segments_in"] += 1
        if self.tagger is None:
            self.counts["segments_unclaimed"] += 1
            return []
        units = annexb_units(data)
        if not units:
            return []
        try:
            tagged, tag = self.tagger.tag_annexb(data, units, now_ms)
        except ValueError as exc:
            return [Log(ERROR, "segment not tagged: %s" % exc)]
        self.counts["segments_tagged"] += 1
        entry, evicted, gaps = self.spool.add(len(tagged), tag.stream_id, tag.seq, tag.epoch)
        actions: list[Action] = [Delete(e.index) for e in evicted]
        if entry is not None:
            actions.append(Store(entry, tagged))
        for gap in gaps:
            actions += self._gap(gap, now_ms)
        return actions

    def _gap(self, gap: Gap, now_ms: int) -> list[Action]:
        self.counts["gaps"] += 1
        info = gap.as_dict()
        self.gaps = (self.gaps + [info])[-MAX_GAPS_IN_STATUS:]
        return [Log(WARNING, "spool gap: dropped %d segment(s), stream %d seq %d to stream %d seq %d"
                    " (%s)" % (gap.count, gap.first[0], gap.first[1], gap.last[0], gap.last[1],
                               gap.why)),
                self._event("spool_gap", info, now_ms)]

    # -- delivery ----------------------------------------------------------------------------

    def _pump(self) -> list[Action]:
        """Hand the oldest spooled segments to the MQTT client, ``publish_window`` at once."""
        if not self.connected:
            return []
        room = self.settings.publish_window - len(self.spool.inflight)
        if room <= 0:
            return []
        actions: list[Action] = []
        for entry in self.spool.to_send(room):
            self.spool.inflight[entry.index] = True
            actions.append(Send(entry))
        return actions

    def delivered(self, index: int, ok: bool, now_ms: int = 0) -> list[Action]:
        """The broker acknowledged (``ok``) or refused spooled entry ``index``; or it was unreadable."""
        if self.spool.remove(index) is None:
            return []
        actions: list[Action] = [Delete(index)]
        if ok:
            self.counts["segments_delivered"] += 1
        else:
            self.counts["publish_refused"] += 1
            actions.append(Log(ERROR, "spooled segment %d refused or unreadable: dropped" % index))
        return actions + self._pump()

    def connection(self, up: bool, now_ms: int) -> list[Action]:
        """The MQTT client connected (``up``) or lost the connection."""
        self.connected = up
        if not up:
            # What was handed to the client stays in its session and is retransmitted by it.
            return []
        return [self.status(now_ms)] + self._pump()

    def tick(self, now_ms: int) -> list[Action]:
        """Time passes: health status when due, and delivery."""
        actions = []
        if now_ms >= self._next_health_ms:
            self._next_health_ms = now_ms + int(self.settings.health_interval_s * 1000)
            actions.append(self.status(now_ms))
        return actions + self._pump()

    def input_status(self, done: bool, error: Optional[str] = None) -> None:
        """What the input reader knows (for the status); no actions."""
        self.input["done"] = done
        self.input["error"] = error

    # -- the control plane -------------------------------------------------------------------

    def command(self, payload: bytes, now_ms: int) -> list[Action]:
        """One control message from the cloud.

        Authenticate, check the counter, persist, cut the stream, then act;
        every outcome is reported (result, event, status).
        """
        digest = hexlify(hashlib.sha256(payload).digest()[:16]).decode()
        if self.keys.control is None:
            return [Log(WARNING, "a control message arrived, but this tagger takes no commands")]
        try:
            cmd = control.open_command(self.keys.control, self.camera, payload)
        except control.ControlError as exc:
            counter, op = 0, 0
            try:
                parsed = control.decode_command(payload)[0]
                counter, op = parsed.counter, parsed.op
            except control.ControlError:
                pass
            return self._refuse(exc.reason, str(exc), counter, op, now_ms)
        state = self.state
        if cmd.counter <= state.counter:
            if cmd.counter == state.counter and digest == state.last_command and state.last_result:
                # QoS-1 redelivery of the command accepted last (the agent died before acking it)
                again = control.Result.from_json(json.loads(state.last_result))
                if again.status == control.OK:
                    again.status = control.ALREADY_APPLIED
                return [self._result(again),
                        Log(INFO, "command %s #%d delivered again: already applied"
                            % (cmd.name, cmd.counter))]
            return self._refuse(control.REPLAY, "counter %d is not above %d"
                                % (cmd.counter, state.counter), cmd.counter, cmd.op, now_ms)
        new = state.copy()
        new.counter = cmd.counter
        new.last_command = digest
        status, detail = self._plan(cmd, new)
        if status == control.OK and cmd.op == control.CLAIM:
            new.stream_id = new_stream_id(new.stream_id, now_ms)
        now_cut: list[SegmentOrCut] = []
        if status == control.OK:
            # The command takes effect at this instant. A rotation (same owner) closes the
            # segment in progress, tagged for the epoch it was captured under. A claim,
            # transfer or reset drops the pictures in progress, and the new binding's
            # video starts at the next random access point: nothing captured before a
            # change of owner is ever tagged, for the old owner or the new.
            now_cut = self.segmenter.cut(fresh_start=cmd.op != control.ROTATE)
        closes_one_more = self.segmenter.cut_pending and cmd.op == control.ROTATE
        self.state = new
        result = control.Result(self.camera, cmd.counter, cmd.op, status, new.owner or "",
                                new.epoch, new.stream_id, self._next_seq(closes_one_more), detail)
        new.last_result = json.dumps(result.to_json())
        # The counter is durable before anything is done.
        actions: list[Action] = [Persist(new, "ctl")]
        if status == control.OK:
            self._switch_pending = True  # at the cut: now, or where the segmenter says
            actions += self._segments(now_cut, now_ms)
            self.counts["commands_applied"] += 1
            if new.claimed:
                actions.append(Log(INFO, "command %s #%d applied: owner %s, epoch %d, from stream %d"
                                   " seq %d" % (cmd.name, cmd.counter, new.owner, new.epoch,
                                                new.stream_id, result.seq)))
            else:
                actions.append(Log(INFO, "command %s #%d applied: binding cleared, no video is"
                                   " tagged" % (cmd.name, cmd.counter)))
        else:
            self._count_refusal(status)
            actions.append(Log(WARNING, "command %s #%d refused: %s (%s)"
                               % (cmd.name, cmd.counter, status, detail)))
            actions.append(self._event("command_refused", {
                "status": status, "counter": cmd.counter, "command": cmd.name, "detail": detail},
                now_ms))
        actions.append(self._result(result))
        actions.append(self.status(now_ms))
        return actions + self._pump()

    def _plan(self, cmd: control.Command, new: BindingState) -> tuple[str, str]:
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

    def _purge(self) -> list[Action]:
        """Drop every spooled segment (nothing of an old owner stays on the camera)."""
        actions: list[Action] = [Delete(e.index) for e in self.spool.entries]
        self.spool.entries = []
        self.spool.inflight = {}
        self.spool.bytes = 0
        return actions

    def _refuse(self, status: str, detail: str, counter: int, op: int,
                now_ms: int) -> list[Action]:
        self._count_refusal(status)
        s = self.state
        result = control.Result(self.camera, counter, op if 0 <= op <= 255 else 0, status,
                                s.owner or "", s.epoch, s.stream_id,
                                self.tagger.seq if self.tagger else 0, detail)
        return [Log(WARNING, "command refused: %s (%s)" % (status, detail)),
                self._event("command_refused", {"status": status, "counter": counter,
                                                "command": control.OP_NAMES.get(op, "unknown"),
                                                "detail": detail}, now_ms),
                self._result(result)]

    def _count_refusal(self, status: str) -> None:
        self.counts["commands_refused"] += 1
        self.refused[status] = self.refused.get(status, 0) + 1

    def _result(self, result: control.Result) -> Publish:
        key = self.keys.control
        assert key is not None  # ``command`` answers only when there is a control key
        return Publish(topics.CTL_RESULT, result.encode(key))

    # -- status and events -------------------------------------------------------------------

    def status_json(self, state: str, now_ms: int, reason: str = "") -> bytes:
        """The retained status; ``state`` "offline" with reason "connection lost" is the will."""
        s = self.state
        body = {"camera": self.camera, "state": state, "agent": self.version, "time_ms": now_ms}
        if reason:
            body["reason"] = reason
        if state != "offline" or reason != "connection lost":
            body.update({
                "claimed": s.claimed, "owner": s.owner, "epoch": s.epoch, "epoch_hwm": s.epoch_hwm,
                "counter": s.counter, "stream_id": s.stream_id,
                "next_seq": self.tagger.seq if self.tagger else None,
                "uptime_s": round((now_ms - self._started_ms) / 1000.0, 1),
                "counts": dict(self.counts), "commands_refused": dict(self.refused),
                "spool": self.spool.stats(), "gaps": list(self.gaps),
                "input": dict(self.input),
            })
        return json.dumps(body).encode("utf-8")

    def status(self, now_ms: int, state: str = "online", reason: str = "") -> Publish:
        return Publish(topics.STATUS, self.status_json(state, now_ms, reason), retain=True)

    def _event(self, name: str, info: dict[str, Any], now_ms: int) -> Publish:
        body = dict(info)
        body["event"] = name
        body["camera"] = self.camera
        body["time_ms"] = now_ms
        return Publish(topics.EVENT, json.dumps(body).encode("utf-8"))

    def stop(self, now_ms: int) -> list[Action]:
        """Stopping: tag what the encoder sent so far."""
        return self.encoder_end(now_ms)
