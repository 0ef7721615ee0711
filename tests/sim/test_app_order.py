"""The owner's app sends its requests in the order it made them, whichever thread made them: the
cloud keeps the last grants message it got for a display (retained), so a newer message overtaken
by an older one would leave a display that restarts reading stale grants."""

from __future__ import annotations

import json
import threading
from typing import Any, List

from host_sim.app import OwnerApp
from host_sim.cloud import Cloud
from host_sim.transport import InProcessBus, InProcessTransport, Message
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner
from segbind_core import topics


class FaultStalledFirstGrants(InProcessTransport):
    """A fake for fault injection: the first grants request this client publishes stalls until
    ``release`` is set (a thread descheduled between sealing its grants and sending them)."""

    def __init__(self, bus: InProcessBus, name: str) -> None:
        super().__init__(bus, name)
        self.stalled = threading.Event()
        self.release = threading.Event()
        self._first = True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                user_properties: Any = None):
        if self._first and json.loads(payload).get("op") == "grants":
            self._first = False
            self.stalled.set()
            assert self.release.wait(10)
        return super().publish(topic, payload, qos, retain, user_properties)


def test_grants_sealed_on_two_threads_reach_the_display_in_serial_order() -> None:
    bus = InProcessBus()
    Cloud(bus.transport("cloud")).start()
    transport = FaultStalledFirstGrants(bus, "alice")
    display = DisplayIdentity.new("alice-tv", test_only=True)
    app = OwnerApp(transport, Owner.new("alice", test_only=True), clock=lambda: 1_800_000_000.0)
    app.start()
    app.enroll(display)  # the cloud learns the display's id; no grants sent yet (nothing stalls)
    grants_topic = topics.display_topic("alice-tv", topics.GRANTS)
    delivered: List[int] = []
    bus.transport("watcher").start().subscribe(grants_topic, lambda msg: delivered.append(_serial(display, msg)))

    first = threading.Thread(target=app.push_grants)
    first.start()
    assert transport.stalled.wait(10)        # serial n sealed, its send stalled
    app.push_grants()                        # serial n+1 sealed on this thread meanwhile
    transport.release.set()
    first.join(10)
    assert not first.is_alive()

    assert len(delivered) == 2 and delivered == sorted(delivered), delivered
    restarted: List[int] = []   # a display that restarts reads what the cloud retained
    bus.transport("alice-tv").start().subscribe(grants_topic, lambda msg: restarted.append(_serial(display, msg)))
    assert restarted == [max(delivered)]


def _serial(display: DisplayIdentity, msg: Message) -> int:
    return int(json.loads(display.open(json.loads(msg.payload)))["serial"])
