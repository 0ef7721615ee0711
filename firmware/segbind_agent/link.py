"""The agent's MQTT link: paho-mqtt 2.x, MQTT 5, a persistent session, QoS 1.

Callbacks run on paho's network thread; the agent only queues what they
report and does every piece of work on its own thread. The interface is the
small transport the host simulation also implements (``publish`` with an
acknowledgement callback, ``subscribe`` with a message callback that can
acknowledge later), so the agent can run over an in-process bus too.
"""

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("segbind_agent.link")


class Message:
    """One received message; call ``ack()`` once it has been acted on (QoS 1)."""

    __slots__ = ("topic", "payload", "user_properties", "retain", "_ack")

    def __init__(self, topic, payload, user_properties, retain, ack) -> None:
        self.topic = topic
        self.payload = payload
        self.user_properties = user_properties
        self.retain = retain
        self._ack = ack

    def ack(self) -> None:
        if self._ack is not None:
            ack, self._ack = self._ack, None
            ack()


class MqttLink:
    def __init__(self, client_id: str, host: str, port: int, *, keepalive: int = 30,
                 will=None, username=None, password=None, tls_ca=None,
                 session_expiry_s: int = 7 * 24 * 3600, reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 10.0, max_inflight: int = 20) -> None:
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.session_expiry_s = session_expiry_s
        self._subs = {}  # topic -> (callback, qos)
        self._on_ack = None
        self._on_connection = None
        self._lock = threading.Lock()
        self.connected = False
        self.connects = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if will is not None:
            topic, payload, retain = will
            self.client.will_set(topic, payload, qos=1, retain=retain)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_publish = self._published
        self.client.on_message = self._message
        self.client.on_subscribe = self._subscribed

    # -- interface -----------------------------------------------------------------------

    def on_ack(self, callback) -> None:
        """``callback(token, ok)`` when the broker acknowledges a QoS-1 publish."""
        self._on_ack = callback

    def on_connection(self, callback) -> None:
        """``callback(connected: bool)`` on every connect and disconnect."""
        self._on_connection = callback

    def subscribe(self, topic: str, callback, qos: int = 1) -> None:
        """``callback(Message)`` for each message; subscriptions survive reconnects."""
        with self._lock:
            self._subs[topic] = (callback, qos)
        if self.connected:
            self.client.subscribe(topic, qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties=None):
        """Queue a message (also while disconnected); returns its token (the MQTT message id)."""
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(str(k), str(v)) for k, v in user_properties.items()]
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise OSError("publish to %s failed: %s" % (topic, mqtt.error_string(info.rc)))
        return info.mid

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(self.host, self.port, self.keepalive, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def stop(self, timeout: float = 2.0) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self.connected = False


    # -- paho callbacks (network thread) -------------------------------------------------------

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connected = True
        self.connects += 1
        log.info("connected to %s:%d (session %s)", self.host, self.port,
                 "resumed" if flags.session_present else "new")
        with self._lock:
            subs = list(self._subs.items())
        for topic, (_cb, qos) in subs:
            client.subscribe(topic, qos)
        if self._on_connection:
            self._on_connection(True)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        if was:
            log.warning("disconnected from %s:%d: %s", self.host, self.port, reason_code)
        if self._on_connection:
            self._on_connection(False)

    def _subscribed(self, client, userdata, mid, reason_codes, properties) -> None:
        for rc in reason_codes:
            if rc.is_failure:
                log.error("subscription refused: %s", rc)

    def _published(self, client, userdata, mid, reason_code, properties) -> None:
        if self._on_ack:
            self._on_ack(mid, not reason_code.is_failure)

    def _message(self, client, userdata, msg) -> None:
        with self._lock:
            entry = None
            for topic, value in self._subs.items():
                if mqtt.topic_matches_sub(topic, msg.topic):
                    entry = value
                    break
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos:
                client.ack(mid, qos)

        if entry is None:
            ack()
            return
        props = {}
        for key, value in getattr(msg.properties, "UserProperty", None) or []:
            props[key] = value
        entry[0](Message(msg.topic, bytes(msg.payload), props, msg.retain, ack))
