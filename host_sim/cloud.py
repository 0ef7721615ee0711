"""The reference cloud: the control plane (``segbind.controlplane``) plus the relay.

The cloud is deliberately *not* trusted by the viewers: it routes segments to
accounts (``router``, pluggable, so a simulation can switch on a 2020-style
cache bug), but a display shows only what verifies under its own grants.

Topics (docs/AGENT.md, ``segbind_core.topics``): cameras publish on
``segbind/v1/cam/<camera>/...``; the cloud relays to
``segbind/v1/acct/<account>/seg`` and hands each account its keyring,
retained, on ``segbind/v1/acct/<account>/grants``.

``python3 -m host_sim.cloud --broker 127.0.0.1:1883 --registry cloud.json`` runs
the service; tools/segbind_ops.py provisions cameras and changes bindings.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from host_sim.transport import Message, MqttTransport, Transport, wait_for_sigterm
from segbind.controlplane import CommandFailed, ControlPlane, Registry
from segbind.errors import InvalidSegment
from segbind.verifier import find_tag
from segbind_agent.link import parse_broker
from segbind_core import topics
from segbind_core.nal import annexb_units

log = logging.getLogger("segbind.cloud")

__all__ = ["Cloud", "CommandFailed", "LeakyRouter", "Registry", "Router"]


class Router:
    """Correct routing: a segment goes to the accounts granted the binding its tag names."""

    def route(self, cloud: "Cloud", camera: str, tag, payload: bytes) -> List[str]:
        return cloud.registry.granted(camera, tag.owner, tag.epoch)


class LeakyRouter(Router):
    """A broken cloud: also sends every segment to ``extra`` accounts (a mixed-up cache)."""

    def __init__(self, extra: Iterable[str]) -> None:
        self.extra = list(extra)

    def route(self, cloud: "Cloud", camera: str, tag, payload: bytes) -> List[str]:
        right = super().route(cloud, camera, tag, payload)
        return right + [a for a in self.extra if a not in right]


class Cloud(ControlPlane):
    """Control plane + relay. Thread-safe; handlers run on the transport's thread."""

    def __init__(self, transport: Transport, registry: Optional[Registry] = None, *,
                 router: Optional[Router] = None, relay: bool = True,
                 prefix: str = topics.TOPIC_PREFIX) -> None:
        super().__init__(transport, registry, prefix=prefix)
        self.router = router or Router()
        self.relay_enabled = relay
        self.relayed: collections.Counter = collections.Counter()  # (camera, account) -> segments
        self.dropped: collections.Counter = collections.Counter()  # reason -> segments not relayed
        self.on_relay: Optional[Callable[[str, object, List[str]], None]] = None

    def start(self, publish_grants: bool = True) -> "Cloud":
        if self.relay_enabled:
            self.transport.subscribe(topics.every_camera(topics.SEG, self.prefix), self._on_segment)
        self.subscribe()
        self.transport.start()
        self.transport.wait_ready(10)
        if publish_grants:
            for account in self.registry.accounts():
                self.publish_grants(account)
        return self

    def stop(self) -> None:
        self.transport.stop()

    def _on_segment(self, msg: Message) -> None:
        camera = self._camera_of(msg.topic)
        self.registry.refresh()
        try:
            tag = find_tag(msg.payload, annexb_units(msg.payload))[0]
        except InvalidSegment as exc:
            self.dropped[exc.reason.value] += 1
            return
        if tag.camera != camera:
            self.dropped["camera_mismatch"] += 1
            return
        accounts = self.router.route(self, camera, tag, msg.payload)
        if not accounts:
            self.dropped["no_audience"] += 1
        for account in accounts:
            self.transport.publish(topics.account_topic(account, topics.SEG, self.prefix),
                                   msg.payload, qos=1, user_properties={"camera": camera})
            self.relayed[(camera, account)] += 1
        if self.on_relay:
            self.on_relay(camera, tag, accounts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.cloud",
                                     description="segbind reference cloud: relay, grants, control")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--registry", required=True, metavar="CLOUD.json")
    parser.add_argument("--client-id", default="segbind-cloud")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s segbind-cloud %(levelname)s %(message)s")
    host, port = parse_broker(args.broker)
    if not Path(args.registry).exists():
        print("no registry at %s: provision a camera first (tools/segbind_ops.py provision)"
              % args.registry, file=sys.stderr)
        return 2
    cloud = Cloud(MqttTransport(host, port, args.client_id), Registry(args.registry))
    cloud.on_relay = lambda camera, tag, accounts: log.info(
        "relayed %s stream %d seq %d epoch %d to %s", camera, tag.stream_id, tag.seq, tag.epoch,
        ", ".join(accounts) or "nobody")
    cloud.start()
    log.info("cloud running on %s:%d with %d camera(s)", host, port, len(cloud.registry.cameras))
    wait_for_sigterm()
    cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
