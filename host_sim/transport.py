"""The transports the host simulation runs on, beside ``segbind_agent.link.MqttTransport``.

- ``InProcessBus``: a broker in a Python object (QoS-1-like, retained messages,
  wildcard subscriptions), for fleet simulations with no broker at all.
- ``ImpairedTransport``: a display's transport behind a weak downlink (``netem``).

Both implement the interface of ``segbind_agent.link`` (the same ``Message``
and ``Transport`` base), so the cloud, the displays and the agent run over any of them.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
from typing import Callable, Dict, List, Optional, Tuple

from paho.mqtt.client import topic_matches_sub
from paho.mqtt.matcher import MQTTMatcher

from host_sim.netem import Link
from segbind_agent.link import Message, MqttTransport, Transport, parse_broker

log = logging.getLogger("segbind.transport")

__all__ = ["ImpairedTransport", "InProcessBus", "InProcessTransport", "Message", "MqttTransport",
           "Transport", "parse_broker", "wait_for_sigterm"]


class InProcessBus:
    """A broker in a Python object: QoS-1-like, retained messages, wildcard subscriptions.

    Delivery is FIFO and happens on the publishing thread (a trampoline, so a
    handler that publishes does not recurse). A transport taken ``offline``
    keeps what it publishes and what is sent to it until it comes back, like
    a persistent MQTT session; nothing is lost or duplicated.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # Subscriptions indexed by topic (exact) or kept for matching (wildcards), each with
        # its order of arrival: publishing costs the same with 2 displays or 2,000.
        self._exact: Dict[str, List[Tuple[int, "InProcessTransport", Callable]]] = {}
        self._wild = MQTTMatcher()  # pattern -> [(order, transport, callback)], paho's trie
        self._subscriptions = 0
        self._retained: Dict[str, Message] = {}
        self._queue: "collections.deque" = collections.deque()
        self._draining = False
        self.published = 0

    def transport(self, name: str = "") -> "InProcessTransport":
        return InProcessTransport(self, name)

    def _publish(self, sender: "InProcessTransport", topic: str, payload: bytes, retain: bool,
                 props: Optional[dict]) -> None:
        msg = Message(topic, bytes(payload), dict(props or {}), False)
        with self._lock:
            self.published += 1
            if retain:
                if payload:
                    self._retained[topic] = Message(topic, msg.payload, msg.user_properties, True)
                else:
                    self._retained.pop(topic, None)
            targets = list(self._exact.get(topic, ()))
            for subscribers in self._wild.iter_match(topic):
                targets += subscribers
            if len(targets) > 1:
                targets.sort(key=lambda target: target[0])  # in subscription order
            for _n, transport, cb in targets:
                self._queue.append((transport, cb, msg))
        self._drain()

    def _subscribe(self, transport: "InProcessTransport", pattern: str, cb: Callable) -> None:
        with self._lock:
            self._subscriptions += 1
            if "+" in pattern or "#" in pattern:
                try:
                    subscribers = self._wild[pattern]
                except KeyError:
                    subscribers = self._wild[pattern] = []
                subscribers.append((self._subscriptions, transport, cb))
                retained = [m for t, m in self._retained.items() if topic_matches_sub(pattern, t)]
            else:  # an exact topic: one look-up, whatever the number of retained messages
                self._exact.setdefault(pattern, []).append((self._subscriptions, transport, cb))
                msg = self._retained.get(pattern)
                retained = [msg] if msg is not None else []
            for msg in retained:
                self._queue.append((transport, cb, msg))
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            if self._draining:
                return
            self._draining = True
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                transport, cb, msg = self._queue.popleft()
            transport._deliver(cb, msg)


class InProcessTransport(Transport):
    def __init__(self, bus: InProcessBus, name: str = "") -> None:
        super().__init__()
        self.bus = bus
        self.name = name
        self._token = 0
        self._outbox: "collections.deque" = collections.deque()
        self._inbox: "collections.deque" = collections.deque()
        self._lock = threading.Lock()

    def start(self) -> "InProcessTransport":
        self.set_online(True)
        return self

    def stop(self) -> None:
        self._note_connection(False)

    def set_online(self, up: bool) -> None:
        """Take this client off the network (``False``) and back; queued traffic then flows."""
        self._note_connection(up)
        if up:
            while self._outbox:
                token, args = self._outbox.popleft()
                self.bus._publish(self, *args)
                self._note_ack(token, True)
            while self._inbox:
                cb, msg = self._inbox.popleft()
                self._deliver(cb, msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties: Optional[dict] = None):
        with self._lock:
            self._token += 1
            token = self._token
        args = (topic, payload, retain, user_properties)
        if not self.connected:
            self._outbox.append((token, args))
            return token
        self.bus._publish(self, *args)
        self._note_ack(token, True)
        return token

    def subscribe(self, pattern: str, callback: Callable, qos: int = 1) -> None:
        self.bus._subscribe(self, pattern, callback)

    def _deliver(self, cb: Callable, msg: Message) -> None:
        if not self.connected:
            self._inbox.append((cb, msg))
            return
        try:
            cb(msg)
        except Exception:
            log.exception("in-process handler for %s failed", msg.topic)


def wait_for_sigterm() -> None:
    """Block a service's main thread until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass


class ImpairedTransport:
    """A display's transport with its segments arriving over ``downlink`` and its
    receipts leaving over ``back`` (the grants, the account API, are not impaired).
    ``shared``: the inner transport serves several displays and is started and
    stopped by its owner."""

    def __init__(self, inner: Transport, scheduler, downlink: Link, back: Link, seg_topic: str,
                 rx_topic: str, shared: bool = False) -> None:
        self.inner = inner
        self.scheduler = scheduler
        self.downlink = downlink
        self.back = back
        self.seg_topic = seg_topic
        self.rx_topic = rx_topic
        self.shared = shared
        self.arrived = 0  # segment messages handed to the downlink

    def subscribe(self, pattern: str, callback: Callable, qos: int = 1) -> None:
        if pattern != self.seg_topic:
            self.inner.subscribe(pattern, callback, qos)
            return

        def through_link(msg: Message) -> None:
            self.arrived += 1
            self.scheduler.send(self.downlink, callback, msg)

        self.inner.subscribe(pattern, through_link, qos)

    def ack(self, d: bytes) -> None:
        """The player's receipt for a segment it received."""
        self.scheduler.send(self.back, self.inner.publish, self.rx_topic, d, 1)

    def start(self) -> "ImpairedTransport":
        if not self.shared:
            self.inner.start()
        return self

    def stop(self) -> None:
        if not self.shared:
            self.inner.stop()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self.inner.wait_ready(timeout)

    @property
    def connected(self) -> bool:
        return self.inner.connected

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
