"""The camera agent's decisions: one object fed events, returning actions (sans-I/O, like h11).

``AgentCore`` holds everything the camera decides: its pairing and binding
state, the segmenter, the tagger, the spool's policy (what is kept, dropped,
sent next), what to publish and what to persist. It does no I/O and reads no
clock: each event carries the time, and each call returns the actions to carry
out, in order. The daemon (``segbind_agent.daemon``: threads, signals, paho,
files), the fleet simulation and ``segbind tag`` all drive this one core.

Events (methods): ``start``, ``encoder_bytes``, ``encoder_unit``,
``encoder_gap`` (video lost before it reached the agent), ``encoder_end``, ``pair`` and
``physical_reset`` (local, out of band), ``command`` (the owner's, through the cloud),
``event`` (a camera event that wants a thumbnail: a still), ``delivered``, ``connection``,
``tick``, ``input_status``, ``stop``.

No entry point raises: whatever the input (an offer, a command, the encoder's bytes), an
error is caught at the entry point, the camera's state stays what it was, and the error
becomes a ``Log`` action (never with key material) and a count in the status.

Actions: ``Persist`` (write the state durably before going on; with ``spend``, first record
a pairing offer as spent in the monotonic counter's store), ``Store`` and ``Delete`` (spool
entries), ``Send`` (publish a spooled segment; answer with ``delivered``), ``Publish``
(status, events, results, stills), ``Log``.

Pure code on the camera's CPython and on MicroPython (it uses only
``segbind_core`` and ``json``).
"""

import hashlib
import json
from binascii import hexlify, unhexlify

from segbind_core import control, h264, h265, topics
from segbind_core.keys import MAX_PERIOD_S, MIN_PERIOD_S, Epoch, command_key
from segbind_core.segment import Segment, Segmenter
from segbind_core.tag import CODEC_H264, MAX_EPOCH, MAX_STREAM_ID, MAX_U32, MAX_U53
from segbind_core.tagger import Tagger

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

    from segbind_core.nal import Buffer
    from segbind_core.segment import SegmentOrCut

    Action = Union["Persist", "Store", "Delete", "Send", "Publish", "Log"]
except ImportError:
    pass

STATE_KIND = "agent-state"
STATE_VERSION = 3
MAX_GAPS_IN_STATUS = 8
MAX_SPENT = 8  # pairing offers remembered as taken (with the monotonic counter: no reset forgets them)
SPENT_HEX = 16  # a spent offer's digest: the first 8 bytes of SHA-256 over its pairing secret, in hex
MAX_EVENT_KIND = 32
SPENT_LABEL = b"segbind/v3 spent offer\x00"

# Log levels of ``Log`` actions (the logging module's numbers).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40


# -- actions ----------------------------------------------------------------------------------

class Persist:
    """Write ``state`` durably (atomically) before carrying out the next action. ``spend``, when
    set, is a pairing offer's digest to record in the monotonic counter's store first
    (``counter.spend``): an offer is spent before it is taken, so no crash, wipe or reset can
    let it claim the camera twice."""

    def __init__(self, state: "BindingState", crash_tag: str, spend: str = "") -> None:
        self.state = state
        self.crash_tag = crash_tag
        self.spend = spend


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


def spent_digest(secret: bytes) -> str:
    """What the camera remembers of a pairing offer it took: 8 bytes of a hash of its secret
    (hex), never the secret."""
    return str(hexlify(hashlib.sha256(SPENT_LABEL + secret).digest()[:SPENT_HEX // 2]), "ascii")


def merge_spent(older: "Iterable[str]", newer: "Iterable[str]") -> "List[str]":
    """The spent digests of both lists, each once, ``newer``'s last, the last MAX_SPENT kept."""
    out = []  # type: List[str]
    for digest in list(older) + list(newer):
        if digest in out:
            out.remove(digest)
        out.append(digest)
    return out[-MAX_SPENT:]


def is_spent_digest(value: object) -> bool:
    if not isinstance(value, str) or len(value) != SPENT_HEX:
        return False
    for c in value:
        if c not in "0123456789abcdef":
            return False
    return True


def redact(text: str) -> str:
    """``text`` with every run of 16 or more hex digits replaced: an error message logged from
    an unexpected exception can never carry a key."""
    out = []  # type: List[str]
    run = []  # type: List[str]
    for c in text + " ":
        if c in "0123456789abcdefABCDEF":
            run.append(c)
            continue
        out.append("<hex>" if len(run) >= 16 else "".join(run))
        run = []
        out.append(c)
    return "".join(out)[:-1]


# -- the binding state -------------------------------------------------------------------------

class StateError(Exception):
    """A state file that cannot be trusted (corrupt, another camera's, missing, rolled back)."""


def _int_field(data: "Dict[str, Any]", name: str, low: int, high: int) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StateError("%s is not an integer from %d to %d" % (name, low, high))
    return value


class BindingState:
    """What the camera must never forget (the agent's state file, docs/AGENT.md).

    pairing     the pairing secret P of the current claim (hex), or None when unclaimed
    owner       the owner it tags for, or None
    epoch, shares, period_s   the epoch in force (1 .. 2^31-1), the accounts it is shared with
                (slots 1..) and its period length in seconds; 0, [], 0 when unclaimed
    epoch_hwm   the highest epoch used in this pairing: a new epoch must be above it (epochs
                count from 1 in each pairing: a new pairing has a fresh secret, and new keys)
    counter     the highest command counter accepted in this pairing (< 2^53)
    stream_id   the id of the stream begun most recently (< 2^48), persisted before first use
    generation  counts every write; a monotonic counter kept apart from the file must not
                be above it (a state restored from a backup, or deleted, is refused)
    last_command, last_result   the last accepted command's digest and its result
                (``control.Result.to_json``), to answer its redelivery the same way
    spent       digests of the pairing offers taken most recently (also kept with the monotonic
                counter, which no reset or wipe removes): an old pairing offer, photographed or
                recorded, cannot claim the camera again
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.pairing = None  # type: Optional[str]
        self.owner = None  # type: Optional[str]
        self.epoch = 0
        self.shares = []  # type: List[str]
        self.period_s = 0
        self.epoch_hwm = 0
        self.counter = 0
        self.stream_id = 0
        self.generation = 0
        self.last_command = ""
        self.last_result = ""
        self.spent = []  # type: List[str]

    @property
    def claimed(self) -> bool:
        return self.owner is not None

    def copy(self) -> "BindingState":
        other = BindingState(self.camera)
        for name in ("pairing", "owner", "epoch", "period_s", "epoch_hwm", "counter", "stream_id",
                     "generation", "last_command", "last_result"):
            setattr(other, name, getattr(self, name))
        other.shares = list(self.shares)
        other.spent = list(self.spent)
        return other

    def secret(self) -> bytes:
        if self.pairing is None:
            raise ValueError("not paired")
        return unhexlify(self.pairing)

    def to_json(self) -> "Dict[str, Any]":
        return {"segbind": STATE_KIND, "version": STATE_VERSION, "camera": self.camera,
                "pairing": self.pairing, "owner": self.owner, "epoch": self.epoch,
                "shares": list(self.shares), "period_s": self.period_s, "epoch_hwm": self.epoch_hwm,
                "counter": self.counter, "stream_id": self.stream_id, "generation": self.generation,
                "last_command": self.last_command, "last_result": self.last_result,
                "spent": list(self.spent)}

    def encode(self) -> bytes:
        return json.dumps(self.to_json()).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: object, camera: str) -> "BindingState":
        """The state in ``data``, every field checked against its bounds (a state the agent can
        always start from), or StateError. A format 2 state (``version`` 2) is read as unclaimed:
        its pairing belongs to format 2, whose keys format 3 never uses; its owner pairs again."""
        if not isinstance(data, dict) or data.get("segbind") != STATE_KIND:
            raise StateError("not a segbind agent state file")
        version = data.get("version")
        if version not in (2, STATE_VERSION):
            raise StateError("unsupported state file version")
        if data.get("camera") != camera:
            raise StateError("state file belongs to camera %r" % data.get("camera"))
        state = cls(camera)
        try:
            state.generation = _int_field(data, "generation", 0, MAX_U53)
            state.stream_id = _int_field(data, "stream_id", 0, MAX_STREAM_ID)
            spent = data.get("spent", [])
            if not isinstance(spent, list) or not all(is_spent_digest(d) for d in spent):
                raise StateError("spent is not a list of pairing digests")
            state.spent = list(spent[-MAX_SPENT:])
            if version == 2:
                return state
            state.epoch = _int_field(data, "epoch", 0, MAX_EPOCH)
            state.epoch_hwm = _int_field(data, "epoch_hwm", 0, MAX_EPOCH)
            state.counter = _int_field(data, "counter", 0, MAX_U53)
            state.period_s = _int_field(data, "period_s", 0, MAX_PERIOD_S)
            owner, pairing, shares = data["owner"], data["pairing"], data["shares"]
            if owner is not None:
                if not isinstance(owner, str):
                    raise StateError("owner is not an id")
                control.check_account(owner, "owner")
            if pairing is not None and (not isinstance(pairing, str) or len(pairing) != 64):
                raise StateError("pairing is not 32 bytes of hex")
            if not isinstance(shares, list) or len(shares) > control.MAX_SHARES:
                raise StateError("shares is not a list of at most %d accounts" % control.MAX_SHARES)
            for share in shares:
                if not isinstance(share, str):
                    raise StateError("a share is not an id")
                control.check_account(share, "share")
            state.owner, state.pairing, state.shares = owner, pairing, list(shares)
            last_command, last_result = data.get("last_command", ""), data.get("last_result", "")
            if not isinstance(last_command, str) or not isinstance(last_result, str):
                raise StateError("last_command or last_result is not text")
            state.last_command, state.last_result = last_command, last_result
        except KeyError as exc:
            raise StateError("state file lacks %s" % exc) from None
        except control.ControlError as exc:
            raise StateError("state file: %s" % exc) from None
        except (TypeError, AttributeError, ValueError) as exc:
            raise StateError("state file has a field of the wrong kind (%s)" % type(exc).__name__) from None
        claimed = state.owner is not None
        if (claimed != (state.pairing is not None)
                or (claimed and not (1 <= state.epoch <= state.epoch_hwm
                                     and MIN_PERIOD_S <= state.period_s <= MAX_PERIOD_S))
                or (not claimed and (state.epoch or state.shares or state.period_s or state.epoch_hwm
                                     or state.counter))):
            raise StateError("state file is inconsistent")
        if state.pairing is not None:
            try:
                unhexlify(state.pairing)
            except ValueError:
                raise StateError("pairing is not hex") from None
        if state.last_result:
            try:
                control.Result.from_json(json.loads(state.last_result)).signed_bytes()
            except (ValueError, KeyError, TypeError, AttributeError):
                raise StateError("last_result is not a result") from None
        return state


def check_rollback(state: "Optional[BindingState]", counter: int, camera: str) -> BindingState:
    """The state to run with, given the state file (None when there is none) and the monotonic
    counter kept apart from it (the highest generation ever written); StateError when the
    camera must not run: its state was lost, or restored from an older copy.

    The state is written before the counter is advanced, so a state one or more generations
    ahead of the counter is a write the counter missed (a power cut between the two): fine.
    """
    if state is None:
        if counter:
            raise StateError("the state file is missing but the camera has written %d generations of "
                             "it (deleted or lost): reset the camera to claim it again" % counter)
        return BindingState(camera)
    if state.generation < counter:
        raise StateError("the state file is generation %d but generation %d was written (restored "
                         "from an older copy): reset the camera to claim it again"
                         % (state.generation, counter))
    return state


def state_after_reset(camera: str, counter: int, previous: "Optional[BindingState]" = None,
                      spent: "Iterable[str]" = ()) -> BindingState:
    """The state a physical reset leaves: unclaimed, one generation above every one written,
    keeping (when the old state is readable) the stream order, and the spent pairing offers of
    the old state and of the monotonic counter's store (``spent``), which a wiped state does not
    touch. Whatever came before, it takes a new pairing: epochs count from 1 in each pairing."""
    state = BindingState(camera)
    if previous is not None:
        state.stream_id = previous.stream_id
        state.generation = previous.generation
        state.spent = list(previous.spent)
    state.spent = merge_spent(state.spent, spent)
    state.generation = max(state.generation, counter) + 1
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

def next_stream_id(previous: int, now_ms: int) -> "Optional[int]":
    """A stream id that orders after every earlier one, max(previous + 1, now in ms), or None
    when that is not below 2^48 (the tag's bound: the camera's clock is past the year 10889, or
    its ids are used up)."""
    sid = max(previous + 1, now_ms)
    return sid if 0 <= sid <= MAX_STREAM_ID else None


def new_stream_id(previous: int, now_ms: int) -> int:
    """``next_stream_id``, ValueError when there is none."""
    sid = next_stream_id(previous, now_ms)
    if sid is None:
        raise ValueError("no stream id below 2^48 after %d" % previous)
    return sid


def first_access_unit(data: "Buffer", codec: int) -> "Tuple[int, int]":
    """(bytes, NAL units) of the first access unit of a segment as the segmenter cuts it (Annex-B,
    4-byte start codes, every access unit opened by its delimiter)."""
    syntax = h264 if codec == CODEC_H264 else h265
    start = b"\x00\x00\x00\x01"
    units = 0
    pos = 0
    while True:
        at = data.find(start, pos) if isinstance(data, (bytes, bytearray)) else bytes(data).find(start, pos)
        if at < 0 or at + 4 >= len(data):
            return len(data), units
        if units and syntax.nal_type(data[at + 4]) == syntax.NAL_AUD:
            return at, units
        units += 1
        pos = at + 4


def check_event_kind(kind: object) -> str:
    """An event's kind as the camera publishes it: 1 to 32 of a-z, 0-9, '_' and '-'."""
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_EVENT_KIND:
        raise ValueError("an event kind is 1 to %d characters" % MAX_EVENT_KIND)
    for c in kind:
        if c not in "abcdefghijklmnopqrstuvwxyz0123456789_-":
            raise ValueError("an event kind is made of a-z, 0-9, '_' and '-'")
    return kind


class _Head:
    """The first access unit of the last segment tagged from a random access point: what a
    still is made of (FORMAT.md 10)."""

    __slots__ = ("data", "units", "capture_ms", "stream_id", "seq", "codec")

    def __init__(self, data: bytes, units: int, capture_ms: int, stream_id: int, seq: int, codec: int) -> None:
        self.data = data
        self.units = units
        self.capture_ms = capture_ms
        self.stream_id = stream_id
        self.seq = seq
        self.codec = codec


class AgentSettings:
    """What the core needs of the agent's configuration (``segbind_agent.config.Config`` has it)."""

    def __init__(self, max_duration_s: float = 4.0, fps: Optional[float] = None,
                 spool_max_bytes: int = 64 * 1024 * 1024, spool_max_segments: int = 2000,
                 publish_window: int = 8, health_interval_s: float = 10.0, codec: int = 0) -> None:
        self.codec = codec  # 0: read from the stream; 1 H.264; 2 H.265
        self.max_duration_s = max_duration_s
        self.fps = fps
        self.spool_max_bytes = spool_max_bytes
        self.spool_max_segments = spool_max_segments
        self.publish_window = publish_window
        self.health_interval_s = health_interval_s


class AgentCore:
    """One camera's decisions. Every method takes an event and returns a list of actions.

    Keys come from the pairing secret in ``state`` (docs/FORMAT.md section 2).
    ``fixed_epoch`` (``segbind tag``, a camera stand-in) tags with one epoch and
    takes no pairing and no command. ``spent``: the pairing offers the monotonic counter's
    store says were taken (``counter.spent()``), whatever the state file says.
    """

    def __init__(self, camera: str, state: BindingState, settings: "Optional[AgentSettings]" = None,
                 spooled: "Iterable[Entry]" = (), version: str = "",
                 fixed_epoch: "Optional[Epoch]" = None, spent: "Iterable[str]" = ()) -> None:
        control.check_account(camera, "camera")
        self.camera = camera
        self.settings = settings or AgentSettings()
        self.version = version
        self.state = state
        state.spent = merge_spent(state.spent, spent)
        self.fixed_epoch = fixed_epoch
        self.spool = SpoolQueue(self.settings.spool_max_bytes, self.settings.spool_max_segments,
                                spooled)
        self.segmenter = self._new_segmenter()
        self.tagger = None  # type: Optional[Tagger]
        self.halted = ""  # why a claimed camera tags nothing (no stream id left): a release or reset ends it
        self._end_next = False  # the next segment that closes ends the stream
        self._switch_pending = False  # the tagger follows ``state`` once the cut takes effect
        self._next_epoch = None  # type: Optional[Epoch]  # its keys, derived before the change was written
        self._head = None  # type: Optional[_Head]
        self._still_wanted = []  # type: List[str]  # event kinds waiting for the next random access point
        self._last_still = (-1, -1)  # (stream id, seq) of the segment the last still was taken from
        self.connected = False
        self.counts = {"segments_in": 0, "segments_tagged": 0, "segments_delivered": 0,
                       "segments_unclaimed": 0, "segments_refused": 0, "publish_refused": 0,
                       "commands_applied": 0, "commands_refused": 0, "gaps": 0,
                       "pictures_dropped": 0, "stills": 0, "errors": 0, "input_gaps": 0}
        self.refused = {}  # type: Dict[str, int]  # status -> count
        self.gaps = []  # type: List[Dict[str, Any]]  # the latest spool gaps, as dicts
        self.input = {"bytes": 0, "done": False, "error": None}  # type: Dict[str, Any]
        self._started_ms = 0
        self._next_health_ms = 0
        self._gap_at = None  # type: Optional[Tuple[int, int]]  # (stream, seq) skipped for the last input gap

    def _new_segmenter(self) -> Segmenter:
        return Segmenter(max_duration_s=self.settings.max_duration_s, fps=self.settings.fps,
                         delimit=True, codec=self.settings.codec)

    # -- the boundary: no exception leaves an entry point ---------------------------------------

    def _guarded(self, what: str, fn: "Callable[..., List[Action]]", *args: "Any") -> "List[Action]":
        """``fn(*args)``'s actions; when it raises, none of them (so nothing it decided is
        written or published), the state it began with, and one log line without key material."""
        state, tagger, pending, next_epoch, halted = (self.state, self.tagger, self._switch_pending,
                                                      self._next_epoch, self.halted)
        try:
            return fn(*args)
        except Exception as exc:  # the boundary: the agent's loop must never see it
            self.state, self.tagger, self._switch_pending, self._next_epoch, self.halted = (
                state, tagger, pending, next_epoch, halted)
            self.counts["errors"] += 1
            return [Log(ERROR, "%s failed and changed nothing: %s: %s"
                        % (what, type(exc).__name__, redact(str(exc))[:160]))]

    # -- the stream --------------------------------------------------------------------------

    def start(self, now_ms: int, stream_id: "Optional[int]" = None) -> "List[Action]":
        """The agent starts: a new stream, ordered after every earlier one (or ``stream_id``),
        persisted before its first segment."""
        return self._guarded("start", self._start, now_ms, stream_id)

    def _start(self, now_ms: int, stream_id: "Optional[int]") -> "List[Action]":
        self._started_ms = now_ms
        self._next_health_ms = now_ms + int(self.settings.health_interval_s * 1000)
        state = self.state.copy()
        sid = next_stream_id(state.stream_id, now_ms) if stream_id is None else stream_id
        actions = []  # type: List[Action]
        self._head, self._still_wanted = None, []
        if sid is None or not 0 <= sid <= MAX_STREAM_ID:
            self.halted = "no stream id below 2^48 is left under this pairing: release or reset the camera"
            self.tagger = None
            actions.append(Log(ERROR, "camera %s tags nothing: %s" % (self.camera, self.halted)))
        else:
            self.halted = ""
            state.stream_id = sid
            actions.append(self._persist(state, "start"))
            self._make_tagger()
        if not state.claimed and len(self.spool):
            # Only a claimed camera spools: these are a previous owner's, and a release
            # was cut short before it could delete them.
            count = len(self.spool)
            actions += self._purge()
            actions.append(Log(INFO, "unclaimed: %d spooled segment(s) of a previous owner deleted"
                               % count))
        actions.append(Log(INFO, "camera %s starts stream %d (%s)" % (
            self.camera, self.state.stream_id, "owner %s, epoch %d" % (state.owner, state.epoch)
            if state.claimed else "unclaimed: no video is tagged or published")))
        return actions

    def _persist(self, state: BindingState, crash_tag: str, spend: str = "") -> Persist:
        """``state`` becomes the camera's, one generation on (kept durably before anything else)."""
        state.generation += 1
        self.state = state
        return Persist(state, crash_tag, spend)

    def _epoch(self) -> "Optional[Epoch]":
        """The epoch in force (its keys), or None when unclaimed."""
        if self.fixed_epoch is not None:
            return self.fixed_epoch
        s = self.state
        if s.owner is None:
            return None
        return Epoch.of_pairing(s.secret(), s.owner, self.camera, s.epoch, s.shares, s.period_s)

    def _command_key(self) -> "Optional[bytes]":
        s = self.state
        if self.fixed_epoch is not None or s.owner is None:
            return None
        return command_key(s.secret(), s.owner, self.camera)

    def _make_tagger(self) -> None:
        epoch = self._epoch()
        self.tagger = Tagger(epoch, self.state.stream_id) if epoch is not None and not self.halted else None

    # -- video in ----------------------------------------------------------------------------

    def encoder_bytes(self, data: "Buffer", now_ms: int) -> "List[Action]":
        """The encoder's next Annex-B bytes."""
        self.input["bytes"] += len(data)
        return self._guarded("video", self._video, self.segmenter.push, data, now_ms)

    def encoder_unit(self, nal: "Buffer", now_ms: int, capture_ms: "Optional[int]" = None) -> "List[Action]":
        """One whole NAL unit from an encoder SDK or an RTP stream; ``capture_ms`` is when its
        picture was captured, where the source says (else now)."""
        self.input["bytes"] += len(nal)
        return self._guarded("video", self._unit, nal, now_ms, capture_ms)

    def _unit(self, nal: "Buffer", now_ms: int, capture_ms: "Optional[int]") -> "List[Action]":
        return self._segments(self.segmenter.push_unit(nal, now_ms if capture_ms is None else capture_ms), now_ms)

    def _video(self, push: "Callable[[Buffer, int], List[SegmentOrCut]]", data: "Buffer",
               now_ms: int) -> "List[Action]":
        return self._segments(push(data, now_ms), now_ms)

    def encoder_gap(self, now_ms: int, detail: str = "") -> "List[Action]":
        """Video was lost before it reached the agent (RTP packets, a streamer's restart); every
        unit fed so far arrived whole.

        The segment in progress closes at the last whole picture and is tagged: its pictures
        refer only to pictures before them in decoding order, all of them in it or before it.
        Pictures after the loss are dropped until the next random access point, where the
        next segment starts; its sequence number leaves one out, so every verifier reports a
        gap there. Losses before the next segment is tagged leave out no more numbers.
        """
        return self._guarded("video", self._encoder_gap, now_ms, detail)

    def _encoder_gap(self, now_ms: int, detail: str) -> "List[Action]":
        segmenter = self.segmenter
        closed = segmenter.finish() if segmenter.codec else []  # an undecided codec: nothing whole yet
        actions = self._segments(closed + segmenter.cut(fresh_start=True), now_ms)
        self.counts["input_gaps"] += 1
        tagger = self.tagger
        skipped = None
        if tagger is not None and self._gap_at != (tagger.stream_id, tagger.seq):
            skipped = tagger.seq
            tagger.seq += 1  # the verifier's gap: one sequence number left out (past 2^32: a new stream)
            self._gap_at = (tagger.stream_id, tagger.seq)
        actions.append(Log(WARNING, "video lost before the agent (%s): %s" % (
            detail or "input gap", "segment %d left out; the next segment starts at a random access point"
            % skipped if skipped is not None else "the next segment starts at a random access point")))
        actions.append(self._event("input_gap", {"detail": detail, "seq_skipped": skipped}, now_ms))
        return actions + self._pump()

    def encoder_end(self, now_ms: int) -> "List[Action]":
        """The encoder's output ended (or restarts): the last segment closes, and ends the stream."""
        return self._guarded("end of video", self._encoder_end, now_ms)

    def _encoder_end(self, now_ms: int) -> "List[Action]":
        self._end_next = True
        try:
            actions = self._segments(self.segmenter.finish(), now_ms)
        finally:
            self._end_next = False
            self.segmenter = self._new_segmenter()
        return actions

    def _segments(self, segments: "List[SegmentOrCut]", now_ms: int) -> "List[Action]":
        actions = []  # type: List[Action]
        last = len(segments) - 1
        while last >= 0 and not isinstance(segments[last], Segment):
            last -= 1
        for i, segment in enumerate(segments):
            if not isinstance(segment, Segment):  # CUT, a command's instant
                if self._switch_pending:
                    try:
                        actions += self._switch_binding()
                    except Exception as exc:  # never tag under a binding that is not the one in force
                        self.tagger, self._switch_pending, self._next_epoch = None, False, None
                        self.counts["errors"] += 1
                        actions.append(Log(ERROR, "the binding could not be switched, nothing is tagged until "
                                           "the next change: %s: %s" % (type(exc).__name__, redact(str(exc))[:160])))
                continue
            if segment.pictures:
                try:
                    actions += self._tag(segment, now_ms, self._end_next and i == last)
                except Exception as exc:  # one segment the tagger cannot take: it is dropped, fail closed
                    self.counts["segments_refused"] += 1
                    self.counts["errors"] += 1
                    actions.append(Log(ERROR, "segment not tagged (dropped): %s: %s"
                                       % (type(exc).__name__, redact(str(exc))[:160])))
            else:  # only units before the first picture (a stream cut short): nothing to show
                actions.append(Log(WARNING, "%d bytes without a picture: not tagged"
                                   % len(segment.data)))
            actions += self._pump()
        self.counts["pictures_dropped"] = self.segmenter.dropped_pictures
        return actions

    def _switch_binding(self) -> "List[Action]":
        """Make the tagger follow the binding state (after a change's cut)."""
        self._switch_pending = False
        self._head = None  # a still is made only of video tagged under the binding in force
        s = self.state
        epoch, self._next_epoch = self._next_epoch or self._epoch(), None
        if epoch is None:
            self.tagger = None
            self._still_wanted = []
            count = len(self.spool)
            actions = self._purge()
            if count:
                actions.append(Log(INFO, "unclaimed: %d spooled segment(s) of the old owner deleted"
                                   % count))
            return actions
        if self.halted:
            self.tagger = None
        elif self.tagger is None or self.tagger.stream_id != s.stream_id:
            self.tagger = Tagger(epoch, s.stream_id)
        else:
            self.tagger.rebind(epoch)
        return []

    def _next_seq(self, closes_one_more: bool) -> int:
        """The seq of the first segment tagged under ``state``'s binding."""
        s = self.state
        if s.owner is None or self.tagger is None or self.tagger.stream_id != s.stream_id:
            return 0
        return self.tagger.seq + (1 if closes_one_more else 0)

    def _tag(self, segment: Segment, now_ms: int, end: bool) -> "List[Action]":
        """Tag one closed segment under the binding in force now, and spool it."""
        self.counts["segments_in"] += 1
        tagger = self.tagger
        if tagger is None:
            self.counts["segments_unclaimed"] += 1
            return []
        if segment.tagged:
            self.counts["segments_refused"] += 1
            return [Log(ERROR, "segment not tagged: it already carries a segbind tag")]
        actions = []  # type: List[Action]
        if tagger.seq > MAX_U32:  # 2^32 segments in one stream: the next one begins a new stream
            actions += self._new_stream(now_ms)
            tagger = self.tagger
            if tagger is None:
                return actions
        capture = segment.first_ms if segment.first_ms is not None else now_ms
        tagger.codec = segment.codec  # the codec the segmenter read the stream as
        tagged, tag = tagger.tag(segment.data, segment.units, capture, segment.duration_ms,
                                 segment.pictures, end, segment.bounds)
        self.counts["segments_tagged"] += 1
        if segment.rap:
            size, units = first_access_unit(segment.data, segment.codec)
            self._head = _Head(bytes(segment.data[:size]), units, capture, tag.stream_id, tag.seq, segment.codec)
        entry, evicted, gaps = self.spool.add(len(tagged), tag.stream_id, tag.seq, tagger.epoch)
        actions += [Delete(e.index) for e in evicted]
        if entry is not None:
            actions.append(Store(entry, tagged))
        for gap in gaps:
            actions += self._gap(gap, now_ms)
        if self._still_wanted and self._head is not None and self._head.seq == tag.seq:
            wanted, self._still_wanted = self._still_wanted, []
            for kind in wanted:
                actions += self._still(kind, now_ms)
        return actions

    def _new_stream(self, now_ms: int) -> "List[Action]":
        """A new stream within the binding in force (its seq ran out), persisted before use."""
        state = self.state.copy()
        sid = next_stream_id(state.stream_id, now_ms)
        if sid is None:
            self.halted = "no stream id below 2^48 is left under this pairing: release or reset the camera"
            self.tagger = None
            return [Log(ERROR, "camera %s tags nothing: %s" % (self.camera, self.halted))]
        state.stream_id = sid
        actions = [self._persist(state, "stream")]  # type: List[Action]
        self._make_tagger()
        self._head = None
        return actions + [Log(INFO, "stream %d begins (the last one used every seq)" % sid)]

    def _gap(self, gap: Gap, now_ms: int) -> "List[Action]":
        self.counts["gaps"] += 1
        info = gap.as_dict()
        self.gaps = (self.gaps + [info])[-MAX_GAPS_IN_STATUS:]
        return [Log(WARNING, "spool gap: dropped %d segment(s), stream %d seq %d to stream %d seq %d"
                    " (%s)" % (gap.count, gap.first[0], gap.first[1], gap.last[0], gap.last[1],
                               gap.why)),
                self._event("spool_gap", info, now_ms)]

    # -- stills: an event's thumbnail, made by the camera ----------------------------------------

    def event(self, kind: str, now_ms: int) -> "List[Action]":
        """Something happened that wants a thumbnail (``kind``: motion, doorbell, ...): a still
        of the first picture of the last segment tagged from a random access point, tagged and
        encrypted as FORMAT.md section 10 says, published on its own topic; or of the next such
        segment when there is none yet. An unclaimed camera makes none."""
        return self._guarded("event", self._on_event, kind, now_ms)

    def _on_event(self, kind: str, now_ms: int) -> "List[Action]":
        try:
            kind = check_event_kind(kind)
        except ValueError as exc:
            return [Log(WARNING, "event refused: %s" % exc)]
        if (self.fixed_epoch is None and not self.state.claimed) or self.halted:
            return [Log(INFO, "event %s: no still (%s)" % (kind, self.halted or "not claimed"))]
        if self._head is None or self.tagger is None:
            if kind not in self._still_wanted:
                self._still_wanted.append(kind)
            return [Log(INFO, "event %s: its still comes from the next random access point" % kind)]
        return self._still(kind, now_ms)

    def _still(self, kind: str, now_ms: int) -> "List[Action]":
        head, tagger = self._head, self.tagger
        if head is None or tagger is None:
            return []
        info = {"kind": kind, "still": {"stream_id": head.stream_id, "seq": head.seq,
                                        "capture_ms": head.capture_ms}}  # type: Dict[str, Any]
        if self._last_still == (head.stream_id, head.seq):
            # one still per segment: the one already published stands for this event too
            return [self._event("camera_event", info, now_ms)]
        codec, tagger.codec = tagger.codec, head.codec
        try:
            still, _tag = tagger.tag_still(head.data, head.units, head.capture_ms, head.seq)
        finally:
            tagger.codec = codec
        self._last_still = (head.stream_id, head.seq)
        self.counts["stills"] += 1
        return [Publish(topics.STILL, still),
                self._event("camera_event", info, now_ms),
                Log(INFO, "event %s: still of stream %d seq %d" % (kind, head.stream_id, head.seq))]

    # -- delivery ----------------------------------------------------------------------------

    def _pump(self) -> "List[Action]":
        """Hand the oldest spooled segments to the MQTT client, ``publish_window`` at once."""
        if not self.connected:
            return []
        room = self.settings.publish_window - len(self.spool.inflight)
        if room <= 0:
            return []
        actions = []  # type: List[Action]
        for entry in self.spool.to_send(room):
            self.spool.inflight[entry.index] = True
            actions.append(Send(entry))
        return actions

    def delivered(self, index: int, ok: bool, now_ms: int = 0) -> "List[Action]":
        """The broker acknowledged (``ok``) or refused spooled entry ``index``; or it was unreadable."""
        return self._guarded("delivery", self._delivered, index, ok)

    def _delivered(self, index: int, ok: bool) -> "List[Action]":
        if self.spool.remove(index) is None:
            return []
        actions = [Delete(index)]  # type: List[Action]
        if ok:
            self.counts["segments_delivered"] += 1
        else:
            self.counts["publish_refused"] += 1
            actions.append(Log(ERROR, "spooled segment %d refused or unreadable: dropped" % index))
        return actions + self._pump()

    def connection(self, up: bool, now_ms: int) -> "List[Action]":
        """The MQTT client connected (``up``) or lost the connection."""
        self.connected = up
        if not up:
            # What was handed to the client stays in its session and is retransmitted by it.
            return []
        return self._guarded("connection", lambda: [self.status(now_ms)] + self._pump())

    def tick(self, now_ms: int) -> "List[Action]":
        """Time passes: health status when due, and delivery."""
        return self._guarded("tick", self._tick, now_ms)

    def _tick(self, now_ms: int) -> "List[Action]":
        actions = []  # type: List[Action]
        if now_ms >= self._next_health_ms:
            self._next_health_ms = now_ms + int(self.settings.health_interval_s * 1000)
            actions.append(self.status(now_ms))
        return actions + self._pump()

    def input_status(self, done: bool, error: "Optional[str]" = None) -> None:
        """What the input reader knows (for the status); no actions."""
        self.input["done"] = done
        self.input["error"] = error

    # -- the owner's control -----------------------------------------------------------------

    def pair(self, offer_bytes: bytes, now_ms: int) -> "List[Action]":
        """A pairing offer, handed over out of band (the camera read the owner's QR code).

        An unclaimed camera takes it: a fresh pairing secret, epoch 1 with the offer's period
        length, a new stream. Its result goes to the owner's app under the new command key;
        refusals too, whenever the offer names an owner a key can be made for.
        """
        return self._guarded("pairing", self._pair, offer_bytes, now_ms)

    def _pair(self, offer_bytes: bytes, now_ms: int) -> "List[Action]":
        try:
            offer = control.decode_pairing(offer_bytes)
        except control.ControlError as exc:
            return self._refused_locally("pairing", exc.reason, str(exc), now_ms)
        if offer.camera != self.camera:
            return self._refused_locally("pairing", control.WRONG_CAMERA,
                                         "an offer for camera %r" % offer.camera, now_ms)
        key = command_key(offer.secret, offer.owner, self.camera)  # ids checked by decode_pairing
        spent = spent_digest(offer.secret)
        status, detail = control.OK, ""
        sid = None  # type: Optional[int]
        try:
            offer.check()
        except control.ControlError as exc:
            status, detail = exc.reason, str(exc)
        if status != control.OK:
            pass
        elif self.fixed_epoch is not None or self.state.claimed:
            status, detail = control.ALREADY_CLAIMED, "claimed: release or reset it first"
        elif spent in self.state.spent:
            status, detail = control.REPLAY, "this pairing offer was used before"
        elif now_ms > offer.expires_ms:
            status, detail = control.EXPIRED, "the offer expired at %d" % offer.expires_ms
        else:
            # a new pairing has new keys: when the stream order is used up, it starts again
            sid = next_stream_id(self.state.stream_id, now_ms)
            if sid is None:
                sid = next_stream_id(0, now_ms)
            if sid is None:
                status, detail = control.OUT_OF_RANGE, "the camera's clock (%d ms) is out of range" % now_ms
        if status != control.OK or sid is None:
            self._count_refusal(status)
            # epoch 0, stream 0: whoever made the offer learns nothing of the binding in force
            return [Log(WARNING, "pairing refused: %s (%s)" % (status, detail)),
                    self._event("pairing_refused", {"status": status, "detail": detail}, now_ms),
                    Publish(topics.CTL_RESULT, control.Result(
                        self.camera, offer.owner, 0, control.PAIR, status, 0, 0, 0, detail).encode(key))]
        new = self.state.copy()
        new.pairing = str(hexlify(offer.secret), "ascii")
        new.owner, new.shares, new.counter = offer.owner, [], 0
        new.epoch = new.epoch_hwm = 1
        new.period_s = offer.period_s
        new.spent = merge_spent(new.spent, [spent])
        new.stream_id = sid
        new.last_command, new.last_result = "", ""
        result = control.Result(self.camera, offer.owner, 0, control.PAIR, control.OK, new.epoch,
                                new.stream_id, 0, "")
        # its keys, derived before anything is written: a failure here changes nothing
        self._next_epoch = Epoch.of_pairing(offer.secret, offer.owner, self.camera, 1, [], offer.period_s)
        self.halted = ""
        actions = [self._persist(new, "pair", spend=spent)]  # type: List[Action]
        actions += self._change(control.PAIR, now_ms)
        self.counts["commands_applied"] += 1
        actions.append(Log(INFO, "paired with owner %s: epoch %d (periods of %d s), stream %d"
                           % (new.owner, new.epoch, new.period_s, new.stream_id)))
        actions.append(Publish(topics.CTL_RESULT, result.encode(key)))
        actions.append(self.status(now_ms))
        return actions + self._pump()

    def physical_reset(self, now_ms: int) -> "List[Action]":
        """The reset button: the binding and the pairing are forgotten, as by a release. Whatever
        came before, the camera takes a new pairing afterwards."""
        return self._guarded("reset", self._physical_reset, now_ms)

    def _physical_reset(self, now_ms: int) -> "List[Action]":
        if not self.state.claimed and not self.halted:
            return [Log(INFO, "reset: the camera is not claimed")]
        new = self._released()
        self.halted = ""
        actions = [self._persist(new, "reset")]  # type: List[Action]
        actions += self._change(control.RELEASE, now_ms)
        actions.append(Log(INFO, "reset by its button: no owner, waiting for a pairing"))
        actions.append(self._event("reset", {}, now_ms))
        actions.append(self.status(now_ms))
        return actions

    def _released(self) -> BindingState:
        new = self.state.copy()
        new.pairing, new.owner, new.epoch, new.shares, new.period_s = None, None, 0, [], 0
        new.epoch_hwm, new.counter = 0, 0
        new.last_command, new.last_result = "", ""
        return new

    def _change(self, op: int, now_ms: int) -> "List[Action]":
        """The binding changes at this instant. A rotation (the same owner) closes the segment
        in progress, tagged for the epoch it was captured under. A pairing, a release or a reset
        drops the pictures in progress, and the new binding's video starts at the next random
        access point: nothing captured before a change of owner is tagged, for the old owner
        or the new."""
        self._switch_pending = True
        if op != control.ROTATE:
            self._head, self._still_wanted = None, []  # no still crosses a change of owner
        return self._segments(self.segmenter.cut(fresh_start=op != control.ROTATE), now_ms)

    def command(self, payload: bytes, now_ms: int) -> "List[Action]":
        """One command from the owner (through the cloud): authenticate, check, persist, act.

        Every outcome is reported: a result under the command key, an event, the status.
        """
        return self._guarded("command", self._command, payload, now_ms)

    def _command(self, payload: bytes, now_ms: int) -> "List[Action]":
        digest = str(hexlify(hashlib.sha256(payload).digest()[:16]), "ascii")
        key = self._command_key()
        if key is None:
            return self._refused_locally("command", control.NOT_CLAIMED,
                                         "no pairing: commands are not accepted", now_ms)
        state = self.state
        try:
            cmd = control.open_command(key, self.camera, payload)
        except control.ControlError as exc:
            counter, op = 0, 0
            try:
                parsed = control.decode_command(payload)[0]
                counter, op = parsed.counter, parsed.op
            except control.ControlError:
                pass
            return self._refuse(exc.reason, str(exc), counter, op, key, now_ms)
        if cmd.counter <= state.counter:
            if cmd.counter == state.counter and digest == state.last_command and state.last_result:
                # A QoS-1 redelivery of the command accepted last (the agent died before acking it)
                again = control.Result.from_json(json.loads(state.last_result))
                if again.status == control.OK:
                    again.status = control.ALREADY_APPLIED
                return [Publish(topics.CTL_RESULT, again.encode(key)),
                        Log(INFO, "command %s #%d delivered again: already applied"
                            % (cmd.name, cmd.counter))]
            return self._refuse(control.REPLAY, "counter %d is not above %d"
                                % (cmd.counter, state.counter), cmd.counter, cmd.op, key, now_ms)
        status, detail = control.OK, ""
        if cmd.owner != state.owner:
            status, detail = control.OWNER_MISMATCH, "a command naming owner %r" % cmd.owner
        elif cmd.op == control.ROTATE and cmd.epoch <= state.epoch_hwm:
            status, detail = control.STALE_EPOCH, "epoch %d is not above %d" % (cmd.epoch,
                                                                               state.epoch_hwm)
        if status == control.OK and cmd.op == control.ROTATE:
            new = state.copy()
            new.epoch = new.epoch_hwm = cmd.epoch
            new.shares = list(cmd.shares)
            new.period_s = cmd.period_s
            # its keys, derived before anything is written: a failure here changes nothing
            next_epoch = Epoch.of_pairing(state.secret(), cmd.owner, self.camera, cmd.epoch, new.shares,
                                          cmd.period_s)  # type: Optional[Epoch]
        else:
            new = state.copy()
        if not (status == control.OK and cmd.op == control.ROTATE):
            next_epoch = None
        new.counter = cmd.counter
        new.last_command = digest
        if status == control.OK and cmd.op == control.RELEASE:
            new = self._released()  # nothing of the pairing stays, not even its counter
        closes_one_more = cmd.op == control.ROTATE and self.segmenter.in_progress
        result = control.Result(self.camera, state.owner or "", cmd.counter, cmd.op, status,
                                new.epoch, new.stream_id, 0, detail)
        actions = []  # type: List[Action]
        if status == control.OK:
            result.seq = self._next_seq(closes_one_more) if cmd.op == control.ROTATE else 0
            new.last_result = json.dumps(result.to_json()) if cmd.op == control.ROTATE else ""
            actions.append(self._persist(new, "ctl"))  # the counter is durable before anything
            self._next_epoch = next_epoch
            if cmd.op == control.RELEASE:
                self.halted = ""
            actions += self._change(cmd.op, now_ms)
            self.counts["commands_applied"] += 1
            actions.append(Log(INFO, "command %s #%d applied: %s" % (
                cmd.name, cmd.counter, "epoch %d (periods of %d s) shared with %s, from seq %d" % (
                    new.epoch, new.period_s, ", ".join(new.shares) or "nobody", result.seq)
                if cmd.op == control.ROTATE else "released: no owner, waiting for a pairing")))
        else:
            new.last_result = json.dumps(result.to_json())
            actions.append(self._persist(new, "ctl"))
            self._count_refusal(status)
            actions.append(Log(WARNING, "command %s #%d refused: %s (%s)"
                               % (cmd.name, cmd.counter, status, detail)))
            actions.append(self._event("command_refused", {
                "status": status, "counter": cmd.counter, "command": cmd.name, "detail": detail},
                now_ms))
        actions.append(Publish(topics.CTL_RESULT, result.encode(key)))
        actions.append(self.status(now_ms))
        return actions + self._pump()

    def _purge(self) -> "List[Action]":
        """Drop every spooled segment (nothing of an old owner stays on the camera)."""
        actions = [Delete(e.index) for e in self.spool.entries]  # type: List[Action]
        self.spool.entries = []
        self.spool.inflight = {}
        self.spool.bytes = 0
        return actions

    def _refuse(self, status: str, detail: str, counter: int, op: int, key: bytes,
                now_ms: int) -> "List[Action]":
        """A command refused before any rule (it changes nothing, not even the counter): an
        authenticated result saying why, an event, a log line."""
        self._count_refusal(status)
        s = self.state
        counter = counter if 0 <= counter <= control.MAX_COUNTER else 0
        op = op if 0 <= op <= 255 else 0
        seq = self.tagger.seq if self.tagger is not None and self.tagger.seq <= MAX_U32 else 0
        result = control.Result(self.camera, s.owner or "", counter, op, status, s.epoch, s.stream_id, seq,
                                detail)
        return [Log(WARNING, "command refused: %s (%s)" % (status, detail)),
                self._event("command_refused", {"status": status, "counter": counter,
                                                "command": control.OP_NAMES.get(op, "unknown"),
                                                "detail": detail}, now_ms),
                Publish(topics.CTL_RESULT, result.encode(key))]

    def _refused_locally(self, what: str, status: str, detail: str, now_ms: int) -> "List[Action]":
        """A refusal no result can carry (no key to authenticate it): an event and a log line."""
        self._count_refusal(status)
        return [Log(WARNING, "%s refused: %s (%s)" % (what, status, detail)),
                self._event(what + "_refused", {"status": status, "detail": detail}, now_ms)]

    def _count_refusal(self, status: str) -> None:
        self.counts["commands_refused"] += 1
        self.refused[status] = self.refused.get(status, 0) + 1

    # -- status and events -------------------------------------------------------------------

    def status_json(self, state: str, now_ms: int, reason: str = "") -> bytes:
        """The retained status; ``state`` "offline" with reason "connection lost" is the will."""
        s = self.state
        body = {"camera": self.camera, "state": state, "agent": self.version,
                "time_ms": now_ms}  # type: Dict[str, Any]
        if reason:
            body["reason"] = reason
        if state != "offline" or reason != "connection lost":
            body.update({
                "claimed": s.claimed, "owner": s.owner, "epoch": s.epoch, "shares": list(s.shares),
                "period_s": s.period_s, "epoch_hwm": s.epoch_hwm, "counter": s.counter,
                "stream_id": s.stream_id, "next_seq": self.tagger.seq if self.tagger else None,
                "halted": self.halted or None,
                "uptime_s": round((now_ms - self._started_ms) / 1000.0, 1),
                "counts": dict(self.counts), "commands_refused": dict(self.refused),
                "spool": self.spool.stats(), "gaps": list(self.gaps),
                "input": dict(self.input),
            })
        return json.dumps(body).encode("utf-8")

    def status(self, now_ms: int, state: str = "online", reason: str = "") -> Publish:
        return Publish(topics.STATUS, self.status_json(state, now_ms, reason), retain=True)

    def _event(self, name: str, info: "Dict[str, Any]", now_ms: int) -> Publish:
        body = dict(info)
        body["event"] = name
        body["camera"] = self.camera
        body["time_ms"] = now_ms
        return Publish(topics.EVENT, json.dumps(body).encode("utf-8"))

    def stop(self, now_ms: int) -> "List[Action]":
        """Stopping: tag what the encoder sent so far; the stream ends cleanly."""
        return self.encoder_end(now_ms)
