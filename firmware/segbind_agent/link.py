"""The transport interface every segbind party speaks, and its MQTT implementation (paho-mqtt 2.x).

The camera agent, the reference cloud, the displays and the operator tools
all talk through this small interface, so the same code runs over a real
broker (``MqttTransport``: MQTT 5, QoS 1, persistent sessions) and over the
host simulation's in-process bus (``host_sim.transport.InProcessBus``)::

    transport.start(); transport.stop(); transport.connected
    transport.publish(topic, payload, qos=1, retain=False, user_properties=None) -> token
    transport.subscribe(pattern, callback, qos=1)      # callback(Message)
    transport.on_ack(callback(token, ok)); transport.on_connection(callback(up))
    transport.wait_ready(timeout); transport.wait_acked(token, timeout)

Callbacks run on the transport's thread (paho's network thread); a handler
that must do real work queues it for its own thread.
"""

import collections
import logging
import threading
import time
import uuid

log = logging.getLogger("segbind_agent.link")


def wait_until(cond, predicate, timeout: float, step: float = 0.2) -> bool:
    """Wait on ``cond`` (a threading.Condition) until ``predicate()`` holds; False after ``timeout``
    seconds. Waits at most ``step`` at a time, for predicates no one notifies about."""
    deadline = time.time() + timeout
    with cond:
        while not predicate():
            left = deadline - time.time()
            if left <= 0:
                return False
            cond.wait(min(left, step))
        return True


class Message:
    """One received message; call ``ack()`` once it has been acted on (manual QoS 1 acks)."""

    __slots__ = ("topic", "payload", "user_properties", "retain", "_ack")

    def __init__(self, topic, payload, user_properties=None, retain=False, ack=None) -> None:
        self.topic = topic
        self.payload = payload
        self.user_properties = user_properties or {}
        self.retain = retain
        self._ack = ack

    def ack(self) -> None:
        if self._ack is not None:
            ack, self._ack = self._ack, None
            ack()


class Transport:
    """Base class: the callbacks and the acknowledgement bookkeeping both transports share."""

    def __init__(self) -> None:
        self._ack_cb = None
        self._conn_cb = None
        self._acked = collections.deque(maxlen=4096)
        self._acked_set = set()
        self._cond = threading.Condition()
        self.connected = False

    def on_ack(self, callback) -> None:
        """``callback(token, ok)`` when the broker acknowledges a QoS-1 publish."""
        self._ack_cb = callback

    def on_connection(self, callback) -> None:
        """``callback(connected: bool)`` on every connect and disconnect."""
        self._conn_cb = callback

    def _note_ack(self, token, ok: bool) -> None:
        with self._cond:
            if len(self._acked) == self._acked.maxlen:
                self._acked_set.discard(self._acked[0])
            self._acked.append(token)
            self._acked_set.add(token)
            self._cond.notify_all()
        if self._ack_cb:
            self._ack_cb(token, ok)

    def _note_connection(self, up: bool) -> None:
        with self._cond:
            self.connected = up
            self._cond.notify_all()
        if self._conn_cb:
            self._conn_cb(up)

    def wait_acked(self, token, timeout: float = 10.0) -> bool:
        return self._wait(lambda: token in self._acked_set, timeout)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._wait(self._ready, timeout)

    def _wait(self, predicate, timeout: float) -> bool:
        return wait_until(self._cond, predicate, timeout)

    def _ready(self) -> bool:
        return self.connected


class MqttTransport(Transport):
    """paho-mqtt 2.x, MQTT 5, QoS 1.

    A persistent session (``clean=False``) keeps subscriptions and queued QoS-1
    messages across reconnects and broker restarts; ``clean=True`` is for
    one-shot tools. With ``manual_ack`` a received QoS-1 message is
    acknowledged only when its handler calls ``Message.ack()`` (the camera acts
    on a command before the broker forgets it).
    """

    def __init__(self, host: str, port: int, client_id=None, *, clean: bool = False,
                 session_expiry_s: int = 7 * 24 * 3600, keepalive: int = 30, username=None,
                 password=None, tls_ca=None, will=None, reconnect_min_s: float = 0.2,
                 reconnect_max_s: float = 10.0, max_inflight: int = 50,
                 manual_ack: bool = False) -> None:
        super().__init__()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._mqtt = mqtt
        self.host, self.port = host, port
        self.clean = clean
        self.session_expiry_s = 0 if clean else session_expiry_s
        self.keepalive = keepalive
        self.client_id = client_id or "segbind-%s" % uuid.uuid4().hex[:12]
        self.manual_ack = manual_ack
        self._subs = {}  # pattern -> (callback, qos)
        from paho.mqtt.matcher import MQTTMatcher

        self._matcher = MQTTMatcher()  # pattern -> callback, to dispatch each message
        self._pending_subs = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._started = False
        self.connects = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if will is not None:
            topic, payload, retain = will
            self.client.will_set(topic, payload, qos=1, retain=retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda c, u, mid, rc, p: self._note_ack(mid, not rc.is_failure)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _ready(self) -> bool:
        return self.connected and not self._pending_subs

    def start(self) -> "MqttTransport":
        """Connect (in the background) and keep connected; a transport started already, as one
        shared by several parties, is left as it is."""
        if self._started:
            return self
        self._started = True
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(self.host, self.port, self.keepalive,
                                  clean_start=self.clean, properties=props)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stopping = True  # a disconnection asked for is not worth a warning
        self._started = False
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self._note_connection(False)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties=None):
        """Queue a message (also while disconnected); returns its token (the MQTT message id)."""
        props = None
        if user_properties:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(str(k), str(v)) for k, v in user_properties.items()]
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            raise OSError("publish to %s failed: %s" % (topic, self._mqtt.error_string(info.rc)))
        if qos == 0:
            self._note_ack(info.mid, True)
        return info.mid

    def subscribe(self, pattern: str, callback, qos: int = 1) -> None:
        """``callback(Message)`` for each message; subscriptions survive reconnects."""
        with self._lock:
            self._subs[pattern] = (callback, qos)
            self._matcher[pattern] = callback
        if self.connected:
            self._send_subscribe(pattern, qos)

    def unsubscribe(self, pattern: str) -> None:
        with self._lock:
            if self._subs.pop(pattern, None) is not None:
                del self._matcher[pattern]
        self.client.unsubscribe(pattern)

    def _send_subscribe(self, pattern: str, qos: int) -> None:
        with self._cond:
            rc, mid = self.client.subscribe(pattern, qos)
            if rc == self._mqtt.MQTT_ERR_SUCCESS:
                self._pending_subs.add(mid)

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: %s:%d refused the connection: %s", self.client_id, self.host,
                        self.port, reason_code)
            return
        self.connects += 1
        self._stopping = False
        log.info("%s: connected to %s:%d (session %s)", self.client_id, self.host, self.port,
                 "resumed" if flags.session_present else "new")
        with self._lock:
            subs = list(self._subs.items())
        for pattern, (_cb, qos) in subs:
            self._send_subscribe(pattern, qos)
        self._note_connection(True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._stopping:
            log.warning("%s: disconnected from %s:%d: %s", self.client_id, self.host, self.port,
                        reason_code)
        self._note_connection(False)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        for rc in reason_codes:
            if rc.is_failure:
                log.error("%s: subscription refused: %s", self.client_id, rc)
        with self._cond:
            self._pending_subs.discard(mid)
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            callbacks = list(self._matcher.iter_match(msg.topic))
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos and self.manual_ack:
                client.ack(mid, qos)

        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        message = Message(msg.topic, bytes(msg.payload), props, bool(msg.retain), ack)
        if not callbacks:
            message.ack()
        for cb in callbacks:
            try:
                cb(message)
            except Exception:  # a handler bug must not kill paho's thread
                log.exception("handler for %s failed", msg.topic)


def parse_broker(text: str):
    """(host, port) of "HOST:PORT" or "HOST" (port 1883)."""
    host, _, port = text.rpartition(":")
    if not host:
        return text, 1883
    return host, int(port)
