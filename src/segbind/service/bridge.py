"""``segbind serve bridge``: the cameras' segments, from the MQTT broker they publish to as today
(Mosquitto, MQTT 5, QoS 1), into the service's JetStream stream, a subject per camera
(docs/SERVICE.md says why a bridge rather than NATS's own MQTT listener).

A segment is acknowledged to the broker only once JetStream has stored it (its publish
acknowledged by the stream's replicas): a bridge that dies leaves it with the broker, which
delivers it again; a segment published twice within the stream's duplicate window (two minutes)
is stored once (``Nats-Msg-Id``: the camera and the segment's hash). Several bridges share the
load through an MQTT shared subscription (``--group``); one camera's segments may then arrive out
of order, which the verifier takes (``late``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import uuid
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from segbind_core import topics

from .admin import ServiceSetupError, reachable, read_layout
from .names import Names, token
from .worker import Acks

log = logging.getLogger("segbind.service")


async def _quiet(exc: Exception) -> None:
    log.debug("nats: %s", type(exc).__name__)


class BridgeSettings(NamedTuple):
    mqtt_host: str
    mqtt_port: int
    servers: Sequence[str]
    prefix: str = "segbind"
    client_id: str = ""
    group: Optional[str] = None
    topic_prefix: str = topics.TOPIC_PREFIX
    username: Optional[str] = None
    password: Optional[str] = None


class Bridge:
    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)
        self.client_id = settings.client_id or "segbind-bridge-%s" % uuid.uuid4().hex[:8]
        self.counts = {"stored": 0, "retries": 0, "not_cameras": 0}
        self._stopping = False

    async def run(self) -> None:
        import nats
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        s = self.settings
        reachable(list(s.servers))
        try:
            nc = await asyncio.wait_for(nats.connect(servers=list(s.servers), name=self.client_id,
                                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                                     connect_timeout=5, error_cb=_quiet), 15.0)
        except Exception as exc:  # nats-py: NoServersError, OSError, timeouts
            raise ServiceSetupError("cannot reach NATS at %s (%s)" % (",".join(s.servers),
                                                                      type(exc).__name__)) from None
        js = nc.jetstream(timeout=5.0)
        partitions = (await read_layout(js, self.names)).partitions
        acks = await Acks(nc).start()
        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[Tuple[str, bytes, Any]]" = asyncio.Queue()
        pattern = topics.every_camera(topics.SEG, s.topic_prefix)
        subscription = "$share/%s/%s" % (s.group, pattern) if s.group else pattern

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        client.reconnect_delay_set(min_delay=1, max_delay=5)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                log.warning("bridge: the broker refused the connection: %s", reason)
                return
            c.subscribe(subscription, qos=1)
            log.info("bridge: connected to %s:%d, subscribed to %s", s.mqtt_host, s.mqtt_port, subscription)

        def on_message(c: Any, _u: Any, msg: Any) -> None:
            mid, qos = msg.mid, msg.qos

            def ack() -> None:
                if qos:
                    c.ack(mid, qos)

            loop.call_soon_threadsafe(queue.put_nowait, (msg.topic, bytes(msg.payload), ack))

        client.on_connect = on_connect
        client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 24 * 3600
        props.ReceiveMaximum = 1000
        client.connect_async(s.mqtt_host, s.mqtt_port, 30, clean_start=False, properties=props)
        client.loop_start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        try:
            while not self._stopping:
                try:
                    first = await asyncio.wait_for(queue.get(), 0.5)
                except asyncio.TimeoutError:
                    continue
                batch = [first]
                while len(batch) < 512 and not queue.empty():
                    batch.append(queue.get_nowait())
                await self._store(acks, batch, partitions)
        finally:
            client.disconnect()
            client.loop_stop()
            await nc.drain()

    def _stop(self) -> None:
        self._stopping = True

    async def _store(self, acks: Acks, batch: List[Tuple[str, bytes, Any]], partitions: int) -> None:
        """Store every segment of the batch (in order, retrying until stored), then acknowledge each."""
        pending = []
        for topic, payload, ack in batch:
            camera = topics.id_of_topic(topic, self.settings.topic_prefix)
            if camera is None:
                self.counts["not_cameras"] += 1
                ack()
                continue
            msg_id = "%s:%s" % (token(camera), hashlib.sha256(payload).hexdigest()[:32])
            pending.append((self.names.seg_subject(camera, partitions), payload, {"Nats-Msg-Id": msg_id}, ack))
        while pending:
            futures = [await acks.publish(subject, payload, headers) for subject, payload, headers, _ in pending]
            results = await Acks.settle(futures, 5.0)
            failed = []
            for item, result in zip(pending, results):
                if isinstance(result, int):
                    item[3]()
                    self.counts["stored"] += 1
                else:
                    failed.append(item)
            if failed:
                self.counts["retries"] += len(failed)
                await asyncio.sleep(0.2)
            pending = failed


def bridge(settings: BridgeSettings) -> None:
    asyncio.run(Bridge(settings).run())
