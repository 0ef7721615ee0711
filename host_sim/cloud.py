"""The reference cloud: routing, relay, and a carrier of what it cannot read.

The cloud holds no key. It routes each camera's segments, and its stills (an event's
thumbnail, made and encrypted by the camera), to the accounts it believes may watch (the
owner and the accounts it is shared with), forwards the owner's commands to cameras and the
cameras' results back, stores each display's sealed grants (retained on the display's topic)
and hands share offers between accounts. Displays trust none of it: they show only what
verifies under grants their owner signed (docs/GRANTS.md, docs/THREAT_MODEL.md). It makes no
thumbnail of its own: it cannot decode a picture.

It keeps, for the HTTP front end (``host_sim.web``, which reads it as a
``host_sim.live.LiveSource``), each camera's recent segments and its last finished stream (the
recording), as received and unchanged; what it serves an account passes the same routing and
second line as what it relays. The cloud holds no key for this either.

It is also a second line, without keys. A format 3 tag names no owner and no camera, only a
key id (docs/FORMAT.md 5); the cloud learns nobody's name from it. Before delivering a
segment of a camera to an account, the cloud checks its own routing store (the account is in
the camera's audience there, whatever a cache or a buggy path answered) and the key id's
provenance (a key id first seen on another camera's uplink is not this camera's: a key id
names one period of one camera). That catches some of its own mix-ups early; the displays
stay the defence.

The incidents' bugs can be switched on one by one (``CloudFaults``), so the
fleet simulation (``host_sim.fleet``) can show each reproduced and defeated.

Topics (``segbind_core.topics``, docs/AGENT.md): cameras publish on
``segbind/v2/cam/<camera>/{seg,still,status,event,ctl/result}`` and take commands on
``.../ctl``; an owner's app sends requests on ``segbind/v2/acct/<account>/req``
and hears on ``.../results`` and ``.../offers``; the account's displays get
segments on ``.../seg``, stills on ``.../still`` and their grants on
``segbind/v2/disp/<display>/grants``.

``python3 -m host_sim.cloud --broker 127.0.0.1:1883 --store cloud.json`` runs it.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import threading
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

from host_sim.live import Published
from host_sim.tagview import TagFields, peek_tag
from host_sim.transport import Message, MqttTransport, Transport, wait_for_sigterm
from segbind_agent.link import parse_broker, wait_until
from segbind_core import control, topics

log = logging.getLogger("segbind.cloud")

__all__ = ["Cloud", "CloudFaults", "Kept", "REQUESTS", "Routing", "RoutingStore", "TagFields", "peek_tag", "request"]

STORE_KIND = "cloud-routing"
KEY_IDS_PER_CAMERA = 64  # key ids the second line remembers per camera (a few periods of a few epochs)

# Requests from an owner's app (JSON on <prefix>/acct/<account>/req), and what each carries.
REQUESTS = {
    "claim": ("camera",),               # route this camera to me (its status must name me)
    "share": ("camera", "viewer"),      # also route it to that account
    "unshare": ("camera", "viewer"),
    "forget": ("camera",),              # I released it, or it was reset: stop routing it to me
    "command": ("camera", "payload"),   # forward these command bytes (hex) to my camera
    "display": ("display",),            # this display is mine: its grants are mine to store
    "grants": ("display", "sealed"),    # store this sealed grants message for my display
    "offer": ("to", "sealed"),          # hand this sealed share offer to another account
    "service-grants": ("service", "sealed"),  # carry this sealed grants message to a service I enrolled
}


def request(op: str, **params: Any) -> bytes:
    """One request's bytes (the owner's app sends them; ``Cloud`` reads them)."""
    if op not in REQUESTS or sorted(params) != sorted(REQUESTS[op]):
        raise ValueError("request %s takes %s" % (op, ", ".join(REQUESTS.get(op, ()))))
    return json.dumps(dict(params, op=op), sort_keys=True).encode()


@dataclass
class CloudFaults:
    """The incidents' server-side bugs, each switchable (docs/FLEET.md says what each does)."""

    relay_cache_2020: bool = False        # Xiaomi / Nest Hub 2020: the quality cache serves a stranger's segment
    ids_swapped: bool = False             # Wyze 2024: a cache mixes device and user ids for some cameras
    grants_to_wrong_display: bool = False  # a display's grants delivered to another account's display
    share_to_wrong_account: bool = False  # a share recorded for the wrong account (routing is right)
    restart_during_claim: bool = False    # the cloud restarts during a claim and loses unflushed routing
    resale_without_reset: bool = False    # Nest/Wink 2019, Arlo 2016: a former owner keeps the route
    duplicate_device_secret: bool = False  # Swann 2018: two cameras with one factory identity
    dropped_rotate: bool = False          # issue 20: the owner's rotate that revokes a contact is dropped, and
                                          # the unshare ignored: the revoked account keeps getting the video
    leak_to: Tuple[str, ...] = ()         # fault injection for tests: every segment also goes to these
    displays_unchecked: bool = False      # fault injection for tests: any account may register (and leave
                                          # grants for) a display another account registered

    def on(self) -> List[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass
class Routing:
    """What the cloud believes: owners, shares, displays. Plain data, no key material."""

    owner: Dict[str, str] = field(default_factory=dict)            # camera -> account
    shares: Dict[str, List[str]] = field(default_factory=dict)     # camera -> accounts
    former: Dict[str, List[str]] = field(default_factory=dict)     # camera -> former owners (a bug keeps them)
    displays: Dict[str, List[str]] = field(default_factory=dict)   # account -> displays
    grants: Dict[str, Any] = field(default_factory=dict)           # display -> sealed grants (opaque)
    identity: Dict[str, str] = field(default_factory=dict)         # camera -> device identity it connects with

    def audience(self, camera: str) -> List[str]:
        owner = self.owner.get(camera)
        if owner is None:
            return []
        return [owner] + [a for a in self.shares.get(camera, []) if a != owner]


    def to_json(self) -> Dict[str, Any]:
        return dict(asdict(self), segbind=STORE_KIND, version=2)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Routing":
        if data.get("segbind") != STORE_KIND:
            raise ValueError("not a segbind cloud routing store")
        return cls(**{f.name: data.get(f.name, {}) for f in fields(cls)})


class RoutingStore:
    """Where the routing survives the cloud's restarts: a JSON file (0600, rewritten whole at each
    change: the reference store, for small deployments), or memory (the simulations). Changes are
    put record by record, so a change costs the size of its record, not of the whole routing."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = Path(path) if path else None
        if self.path is not None and self.path.exists():
            self._data = Routing.from_json(json.loads(self.path.read_text())).to_json()
        else:
            self._data = Routing().to_json()

    def load(self) -> Routing:
        return Routing.from_json(json.loads(json.dumps(self._data)))

    def put(self, kind: str, key: str, value: Any) -> None:
        """Set (or, with None, delete) one record: ``kind`` is a field of ``Routing``."""
        table = self._data[kind]
        if value is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(json.dumps(value))
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self._data, f, sort_keys=True)
            os.replace(tmp, self.path)


class Kept(NamedTuple):
    """A segment the cloud keeps for the HTTP front end, with its tag's readable fields."""

    published: Published
    fields: Optional[TagFields]


class Cloud:
    """Routing, relay, carrier. Thread-safe; handlers run on the transport's thread.

    ``relay`` (``host_sim.cache.QualityRelay``) refills viewers from a cache; its
    deliveries pass the same second line. Stills (events' thumbnails, made by the cameras)
    go where the camera's segments go, through the same second line.

    For the HTTP front end it keeps the last ``recent`` segments of each camera and its
    last finished stream of at most ``recording_max`` segments (0, the default: it keeps
    no video, as a cloud that only relays). Both are bounded per camera, and keeping a
    segment costs the same whatever the number of cameras.
    """

    def __init__(self, transport: Transport, store: Optional[RoutingStore] = None, *,
                 faults: Optional[CloudFaults] = None, second_line: bool = True,
                 prefix: str = topics.TOPIC_PREFIX, recent: int = 0, recording_max: int = 0) -> None:
        self.transport = transport
        self.store = store or RoutingStore()
        self.routing = self.store.load()
        self.faults = faults or CloudFaults()
        self.second_line = second_line
        self.prefix = prefix
        self.relay: Any = None
        self.status: Dict[str, Dict[str, Any]] = {}
        self.received = 0                                             # segments that reached the cloud
        self.delivered: collections.Counter = collections.Counter()   # (camera, account) -> segments
        self.delivered_by_source: collections.Counter = collections.Counter()  # live / quality-cache
        self.refused: collections.Counter = collections.Counter()     # why -> segments not delivered
        self.requests: collections.Counter = collections.Counter()    # op or refusal -> requests
        self.stills: collections.Counter = collections.Counter()      # delivered / refused:<why> -> stills
        self.dropped_commands = 0                                     # rotations dropped (dropped_rotate)
        self.on_delivery: Optional[Callable[[str, str, bytes], None]] = None
        # The services this cloud carries owners' sealed grants to: service id -> its carrier.
        self.services: Dict[str, Callable[[Dict[str, Any]], None]] = {}
        self.restarts = 0
        self._unflushed: List[Tuple[str, str, Any]] = []  # routing records changed since the last flush
        self._display_owner: Dict[str, str] = {d: a for a, ds in self.routing.displays.items() for d in ds}
        self._sorted_cameras: Optional[List[str]] = None  # for the faults that pick a neighbour
        self._grants_sent: collections.Counter = collections.Counter()  # display -> grants messages
        self.recent = recent
        self.recording_max = recording_max
        self._recent: Dict[str, Deque[Kept]] = {}          # camera -> its last segments, oldest first
        self._numbered: Dict[str, int] = {}                # camera -> segments kept so far (the next number)
        self._stream: Dict[str, Tuple[int, Optional[List[Kept]]]] = {}  # camera -> (stream id, its segments
                                                                      # so far; None: ended, or too long)
        self._recording: Dict[str, List[Kept]] = {}         # camera -> its last finished stream
        self._watching: Optional[Dict[str, Dict[str, None]]] = None  # account -> cameras sent to it
        self._key_ids: "collections.OrderedDict[bytes, str]" = collections.OrderedDict()  # key id -> the camera
                                                                      # whose uplink brought it first
        self._key_id_cap = 1024
        self._forwarded_shares: Dict[str, List[str]] = {}   # camera -> the shares of the last rotate forwarded
        self._labels: Dict[str, str] = {}                   # camera -> what its status calls it (its viewers' label)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> "Cloud":
        t, p = self.transport, self.prefix
        t.subscribe(topics.every_camera(topics.SEG, p), self._on_segment)
        t.subscribe(topics.every_camera(topics.STILL, p), self._on_still)
        t.subscribe(topics.every_camera(topics.STATUS, p), self._on_status)
        t.subscribe(topics.every_camera(topics.CTL_RESULT, p), self._on_result)
        t.subscribe(topics.every_camera(topics.EVENT, p), self._on_event)
        t.subscribe(topics.every_account(topics.REQUESTS, p), self._on_request)
        t.start()
        t.wait_ready(10)
        return self

    def stop(self) -> None:
        self.transport.stop()

    def restart(self) -> None:
        """The service restarts: what it kept in memory is gone, the store is read again. With
        ``restart_during_claim`` the routing changes not yet flushed are lost (a write-behind
        cache), as a crash mid-claim loses them."""
        with self._lock:
            self.restarts += 1
            if not self.faults.restart_during_claim:
                self.flush()
            self.routing = self.store.load()
            self._unflushed = []
            self._display_owner = {d: a for a, ds in self.routing.displays.items() for d in ds}
            self._sorted_cameras = None
            self._watching = None
            self._key_ids.clear()

    def _stored(self, kind: str, key: str) -> None:
        """Record ``key`` of the routing's table ``kind`` as it is now: at once, unless the
        write-behind bug holds it back."""
        value = getattr(self.routing, kind).get(key)
        if self.faults.restart_during_claim:
            self._unflushed.append((kind, key, value))
        else:
            self.store.put(kind, key, value)

    def _changed(self, camera: str) -> None:
        for kind in ("owner", "shares", "former"):
            self._stored(kind, camera)
        self._sorted_cameras = None
        self._watching = None

    def provision(self, camera: str, identity: str) -> None:
        """The operator registers a camera's factory identity (what it connects with)."""
        with self._lock:
            self.routing.identity[camera] = identity
            self.store.put("identity", camera, identity)

    def flush(self) -> None:
        with self._lock:
            for kind, key, value in self._unflushed:
                self.store.put(kind, key, value)
            self._unflushed = []

    # -- segments ----------------------------------------------------------------------------

    def _camera_of(self, topic: str) -> str:
        return topics.id_of_topic(topic, self.prefix) or ""

    def _identity(self, camera: str) -> str:
        """Which camera the cloud takes an uplink for. Swann 2018: two cameras made with one
        factory identity are one camera to the cloud (the first registered)."""
        if self.faults.duplicate_device_secret:
            ident = self.routing.identity.get(camera)
            if ident is not None:
                for other, other_ident in sorted(self.routing.identity.items()):
                    if other_ident == ident:
                        return other
        return camera

    def _audience(self, camera: str) -> List[str]:
        r = self.routing
        accounts = r.audience(camera)
        if self.faults.ids_swapped:
            swapped = self._swapped_camera(camera)
            if swapped is not None:
                accounts = r.audience(swapped)
        if self.faults.resale_without_reset:
            accounts = accounts + [a for a in r.former.get(camera, []) if a not in accounts]
        return accounts + [a for a in self.faults.leak_to if a not in accounts]

    def _swapped_camera(self, camera: str) -> Optional[str]:
        """Wyze 2024: for one camera in four, the cache hands back another camera's user mapping
        (its neighbour in the cache's table)."""
        if self._sorted_cameras is None:
            self._sorted_cameras = sorted(self.routing.owner)
            self._camera_index = {c: i for i, c in enumerate(self._sorted_cameras)}
        names, i = self._sorted_cameras, self._camera_index.get(camera)
        if len(names) < 2 or i is None or i % 4 != 1:
            return None
        return names[(i + 1) % len(names)]

    def _on_segment(self, msg: Message) -> None:
        camera = self._identity(self._camera_of(msg.topic))
        peeked = peek_tag(msg.payload)
        with self._lock:
            self.received += 1
            self._provenance(camera, peeked)
            accounts = [a for a in self._audience(camera) if self._admit(a, camera, peeked, "live")]
        if not accounts:
            self.refused["no_route"] += 1
            return
        if self.recent:
            self._keep(camera, msg.payload, peeked)
        if self.relay is not None and peeked is not None:
            self.relay.relayed(camera, peeked, msg.payload, accounts)  # before: receipts may come at once
        for account in accounts:
            self._publish(account, camera, msg.payload, source="live")

    def _on_still(self, msg: Message) -> None:
        """An event's thumbnail, made and encrypted by the camera: routed like its segments."""
        camera = self._identity(self._camera_of(msg.topic))
        peeked = peek_tag(msg.payload)
        with self._lock:
            self._provenance(camera, peeked)
            accounts = [a for a in self._audience(camera) if self._admit(a, camera, peeked, "still")]
            self.stills["delivered"] += len(accounts)
        for account in accounts:
            self.transport.publish(topics.account_topic(account, topics.STILL, self.prefix), msg.payload, qos=1,
                                   user_properties={"camera": self._label(camera), "source": "still"})

    def deliver(self, account: str, camera: str, payload: bytes, source: str = "live") -> bool:
        """Send one segment to an account's displays, unless the second line refuses it."""
        peeked = peek_tag(payload)
        with self._lock:
            if not self._admit(account, camera, peeked, source):
                return False
        self._publish(account, camera, payload, source)
        return True

    def _provenance(self, camera: str, peeked: Optional[TagFields]) -> None:
        """Remember which camera's uplink brought a key id first (a key id names one period of one
        camera's epoch: it never rightly comes from two cameras). Bounded, oldest forgotten."""
        if peeked is None:
            return
        known = self._key_ids.get(peeked.key_id)
        if known is None:
            self._key_ids[peeked.key_id] = camera
            self._key_id_cap = max(self._key_id_cap, KEY_IDS_PER_CAMERA * max(1, len(self.routing.owner)))
            while len(self._key_ids) > self._key_id_cap:
                self._key_ids.popitem(last=False)

    def _allows(self, account: str, camera: str, peeked: Optional[TagFields]) -> Optional[str]:
        """The second line: why ``account`` may not get this segment or still of ``camera`` (None: it may).
        Its own routing store, not whatever path made this delivery, must name the account; the
        key id must not be one another camera's uplink brought."""
        if peeked is None:
            return "no_tag"
        if account not in self.routing.audience(camera):
            return "not_routed"
        known = self._key_ids.get(peeked.key_id)
        if known is not None and known != camera:
            return "key_id_of_another_camera"
        return None

    def _admit(self, account: str, camera: str, peeked: Optional[TagFields], source: str) -> bool:
        if not self.second_line:
            return True
        why = self._allows(account, camera, peeked)
        if why is None:
            return True
        if source == "still":
            self.stills["refused:" + why] += 1
        else:
            self.refused["second_line:%s:%s" % (source, why)] += 1
        return False

    def _label(self, camera: str) -> str:
        """What the camera calls itself in its status: the label its viewers' lists show. It names
        nothing authenticated (a display without segbind would go by it)."""
        return self._labels.get(camera, camera)

    def _publish(self, account: str, camera: str, payload: bytes, source: str) -> None:
        with self._lock:
            self.delivered[(camera, account)] += 1
            self.delivered_by_source[source] += 1
        self.transport.publish(topics.account_topic(account, topics.SEG, self.prefix), payload, qos=1,
                               user_properties={"camera": self._label(camera), "source": source})
        if self.on_delivery is not None:
            self.on_delivery(account, camera, payload)

    # -- what the HTTP front end serves (host_sim.web.LiveSource) ---------------------------------

    def _keep(self, camera: str, payload: bytes, peeked: Optional[TagFields]) -> None:
        """Keep a relayed segment: among the camera's recent ones (numbered by the cloud's own
        count), and in its stream, which becomes its recording when a segment ends it."""
        with self._lock:
            number = self._numbered.get(camera, 0)
            self._numbered[camera] = number + 1
            kept = Kept(Published(number, payload), peeked)
            recent = self._recent.get(camera)
            if recent is None:
                recent = self._recent[camera] = collections.deque(maxlen=self.recent)
                self._watching = None  # a camera the cloud had not kept video of
            recent.append(kept)
            if peeked is None or self.recording_max <= 0:
                return
            stream_id, stream = self._stream.get(camera, (-1, None))
            if peeked.stream_id > stream_id:  # a new stream
                stream_id, stream = peeked.stream_id, []
                self._stream[camera] = (stream_id, stream)
            if stream is None or peeked.stream_id < stream_id:
                return  # an older stream's segment, or a stream that ended or grew too long
            if stream and stream[-1].fields is not None and peeked.seq <= stream[-1].fields.seq:
                return  # redelivered, or late: the recording keeps the order it was received in
            if len(stream) >= self.recording_max:
                self._stream[camera] = (stream_id, None)  # too long to keep whole
                return
            stream.append(kept)
            if peeked.end_of_stream:
                self._recording[camera] = stream
                self._stream[camera] = (stream_id, None)

    def _watchers(self) -> Dict[str, Dict[str, None]]:
        """account -> the cameras the cloud sends it (its routing, faults included), in routing
        order; rebuilt only after the routing changed."""
        if self._watching is None:
            index: Dict[str, Dict[str, None]] = {}
            known = dict.fromkeys(list(self.routing.owner) + list(self._recent))
            for camera in known:
                for account in self._audience(camera):
                    index.setdefault(account, {})[camera] = None
            self._watching = index
        return self._watching

    def _serves(self, account: str, camera: str, kept: Kept) -> bool:
        """The second line, for a kept segment (as for a relayed one, without counting)."""
        return not self.second_line or self._allows(account, camera, kept.fields) is None

    def accounts(self) -> List[str]:
        """Every account the cloud sends a camera to, or that has a display."""
        with self._lock:
            return sorted(set(self._watchers()) | set(self.routing.displays))

    def cameras(self, account: str) -> List[str]:
        with self._lock:
            return list(self._watchers().get(account, {}))

    def segments(self, account: str, camera: str) -> List[Published]:
        with self._lock:
            if camera not in self._watchers().get(account, {}):
                return []
            return [k.published for k in self._recent.get(camera, ()) if self._serves(account, camera, k)]

    def recording(self, account: str, camera: str) -> List[Published]:
        with self._lock:
            if camera not in self._watchers().get(account, {}):
                return []
            return [k.published for k in self._recording.get(camera, ()) if self._serves(account, camera, k)]

    def sealed_grants(self, display: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            sealed: Optional[Dict[str, Any]] = self.routing.grants.get(display)
            return sealed

    # -- what cameras say --------------------------------------------------------------------

    def _on_status(self, msg: Message) -> None:
        camera = self._camera_of(msg.topic)
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(status, dict):
            return
        owner = status.get("owner")
        label = status.get("camera")
        with self._cond:
            self.status[camera] = status
            if isinstance(label, str) and label:
                self._labels[camera] = label
            if status.get("claimed") is False and camera in self.routing.owner:
                self._unroute(camera)   # reset by its button, or released
            elif status.get("claimed") and isinstance(owner, str) and self.routing.owner.get(camera) != owner:
                self._route(camera, owner)  # the camera was paired: it says by whom
            self._cond.notify_all()

    def _route(self, camera: str, owner: str) -> None:
        """``camera`` is ``owner``'s now (a pairing): nobody it was shared with before keeps it."""
        r = self.routing
        if r.owner.get(camera) not in (None, owner):
            self._unroute(camera)
        r.owner[camera] = owner
        r.shares[camera] = []
        self._changed(camera)

    def _unroute(self, camera: str) -> None:
        r = self.routing
        owner = r.owner.pop(camera, None)
        r.shares.pop(camera, None)
        if owner is not None and self.faults.resale_without_reset:
            r.former.setdefault(camera, []).append(owner)
        self._changed(camera)

    def _on_result(self, msg: Message) -> None:
        """A camera's result goes to the owner it names (readable; the app checks its MAC)."""
        camera = self._camera_of(msg.topic)
        try:
            result = control.decode_result(msg.payload)[0]
        except control.ControlError:
            self.refused["result:malformed"] += 1
            return
        if result.camera != camera or not result.owner:
            return
        self.transport.publish(topics.account_topic(result.owner, topics.RESULTS, self.prefix),
                               msg.payload, qos=1, user_properties={"camera": camera})

    def _on_event(self, msg: Message) -> None:
        try:
            event = json.loads(msg.payload)
        except ValueError:
            return
        log.info("camera %s reports %s", self._camera_of(msg.topic), event.get("event"))

    # -- what owners ask ---------------------------------------------------------------------

    def _on_request(self, msg: Message) -> None:
        account = self._camera_of(msg.topic)
        try:
            req = json.loads(msg.payload)
            op = req["op"]
            params = {k: req[k] for k in REQUESTS[op]}
        except (ValueError, KeyError, TypeError):
            self.requests["malformed"] += 1
            return
        handler = getattr(self, "_req_" + op.replace("-", "_"))
        with self._cond:
            refusal = handler(account, **params)
            self.requests[op if refusal is None else op + ":" + refusal] += 1
            self._cond.notify_all()
        if refusal is not None:
            log.warning("request %s from %s refused: %s", op, account, refusal)

    def _owns(self, account: str, camera: object) -> bool:
        return isinstance(camera, str) and self.routing.owner.get(camera) == account

    def _req_claim(self, account: str, camera: str) -> Optional[str]:
        """The owner's app saw its pairing succeed. The camera's own status has the last word:
        a claim it contradicts is refused."""
        said = self.status.get(camera, {}).get("owner")
        if said is not None and said != account:
            return "the camera says it is %s's" % said
        if self.routing.owner.get(camera) != account:
            self._route(camera, account)
        return None

    def _req_share(self, account: str, camera: str, viewer: Any) -> Optional[str]:
        if not self._owns(account, camera):
            return "not the owner"
        try:
            topics.check_topic_id(viewer, "account")
        except (TypeError, ValueError):
            return "bad account id"
        if self.faults.share_to_wrong_account:
            viewer = self._wrong_account(viewer)
        shares = self.routing.shares.setdefault(camera, [])
        if viewer not in shares:
            shares.append(viewer)
        self._changed(camera)
        return None

    def _wrong_account(self, account: str) -> str:
        """The account recorded in place of ``account``: the next one the cloud knows."""
        known = sorted(self.routing.displays)  # the accounts the cloud knows
        if account not in known or len(known) < 2:
            return account
        return known[(known.index(account) + 1) % len(known)]

    def _req_unshare(self, account: str, camera: str, viewer: Any) -> Optional[str]:
        if not self._owns(account, camera):
            return "not the owner"
        if self.faults.dropped_rotate:
            return None  # the bug: it says done, and keeps routing
        shares = self.routing.shares.get(camera, [])
        if viewer in shares:
            shares.remove(viewer)
        self._changed(camera)
        return None

    def _req_forget(self, account: str, camera: str) -> Optional[str]:
        if not self._owns(account, camera):
            return "not the owner"
        self._unroute(camera)
        return None

    def _req_command(self, account: str, camera: str, payload: Any) -> Optional[str]:
        if not self._owns(account, camera):
            return "not the owner"
        try:
            data = bytes.fromhex(payload)
        except (TypeError, ValueError):
            return "payload is not hex"
        if self.faults.dropped_rotate and self._revokes(camera, data):
            self.dropped_commands += 1
            return None  # the bug: it says done, and never sends it
        self.transport.publish(topics.camera_topic(camera, topics.CTL, self.prefix), data, qos=1)
        return None

    def _revokes(self, camera: str, command: bytes) -> bool:
        """A rotate whose shares (readable, not authenticated) leave out an account the last rotate
        forwarded to the camera named: the command that revokes it."""
        try:
            cmd = control.decode_command(command)[0]
        except control.ControlError:
            return False
        if cmd.op != control.ROTATE:
            return False
        before = self._forwarded_shares.get(camera, [])
        if set(before) - set(cmd.shares):
            return True
        self._forwarded_shares[camera] = list(cmd.shares)
        return False

    def _req_display(self, account: str, display: Any) -> Optional[str]:
        try:
            topics.check_topic_id(display, "display")
        except (TypeError, ValueError):
            return "bad display id"
        if self._display_owner.get(display, account) != account and not self.faults.displays_unchecked:
            return "another account's display"
        if display not in self.routing.displays.get(account, []):
            self._display_owner.setdefault(display, account)
            self.routing.displays.setdefault(account, []).append(display)
            self._stored("displays", account)
        return None

    def _req_grants(self, account: str, display: Any, sealed: Any) -> Optional[str]:
        if display not in self.routing.displays.get(account, []):
            return "not the account's display"
        target = display
        if self.faults.grants_to_wrong_display:
            target = self._neighbour_display(display)
        self.routing.grants[target] = sealed
        self._stored("grants", target)
        self.transport.publish(topics.display_topic(target, topics.GRANTS, self.prefix),
                               json.dumps(sealed, sort_keys=True).encode(), qos=1, retain=True)
        return None

    def _neighbour_display(self, display: str) -> str:
        """A grants cache keyed by a hash slot: for half the displays, every other grants message
        goes to the next display the cloud knows (another account's)."""
        self._grants_sent[display] += 1
        if zlib.crc32(display.encode()) % 2 or self._grants_sent[display] % 2 == 0:
            return display
        every = sorted(self._display_owner)
        if len(every) < 2:
            return display
        return every[(every.index(display) + 1) % len(every)]

    def _req_offer(self, account: str, to: Any, sealed: Any) -> Optional[str]:
        try:
            topics.check_topic_id(to, "account")
        except (TypeError, ValueError):
            return "bad account id"
        # Retained, one per sender: the contact's app takes it when it next connects.
        self.transport.publish(topics.account_topic(to, topics.OFFERS, self.prefix) + "/" + account,
                               json.dumps({"from": account, "sealed": sealed}, sort_keys=True).encode(),
                               qos=1, retain=True)
        return None

    def _req_service_grants(self, account: str, service: Any, sealed: Any) -> Optional[str]:
        """The cloud only carries it (sealed to the service, signed by the owner): to the service
        named, when this cloud runs one, and only as the account that sent it."""
        carrier = self.services.get(service) if isinstance(service, str) else None
        if carrier is None:
            return "no such service"
        if not isinstance(sealed, dict) or sealed.get("from") != account:
            return "not the account's grants"
        carrier(sealed)
        return None

    # -- waiting (tests, tools) --------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        return wait_until(self._cond, predicate, timeout)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.cloud",
                                     description="segbind reference cloud: routing, relay, carrier (no keys)")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--store", required=True, metavar="ROUTING.json",
                        help="where the routing is kept (created when missing)")
    parser.add_argument("--client-id", default="segbind-cloud")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s segbind-cloud %(levelname)s %(message)s")
    try:
        host, port = parse_broker(args.broker)
        cloud = Cloud(MqttTransport(host, port, args.client_id), RoutingStore(args.store))
    except ValueError as exc:
        print("host_sim.cloud: error: %s" % exc, file=sys.stderr)
        return 2
    cloud.start()
    log.info("cloud running on %s:%d, routing %d camera(s)", host, port, len(cloud.routing.owner))
    wait_for_sigterm()
    cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
