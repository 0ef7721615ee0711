"""The reference cloud carries an owner's sealed grants to a service it runs (the ``service-grants``
request, docs/FLEET.md): only to a service it knows, only as the account that sent them, and it
reads nothing in them. The service itself checks the owner's signature (tests/service)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from host_sim.app import OwnerApp
from host_sim.cloud import Cloud, request
from host_sim.transport import InProcessBus
from segbind.grants import Service
from segbind.owner import Owner
from segbind_core import topics


def test_an_owner_s_grants_reach_the_service_through_the_cloud_and_nobody_else_s_do() -> None:
    bus = InProcessBus()
    carried: List[Dict[str, Any]] = []
    cloud = Cloud(bus.transport("cloud"))
    cloud.services["recorder"] = carried.append
    cloud.start()
    service = Service.new("recorder", test_only=True)
    alice = OwnerApp(bus.transport("alice"), Owner.new("alice", test_only=True), clock=lambda: 1_800_000_000.0)
    alice.start()
    assert alice.enroll_service(service.card()) == service.enroll(alice.owner.account.card())
    assert len(carried) == 1 and carried[0]["from"] == "alice"
    assert cloud.requests["service-grants"] == 1

    mallory = bus.transport("mallory").start()

    def ask(service_id: str, sealed: Any) -> None:
        mallory.publish(topics.account_topic("mallory", topics.REQUESTS),
                        request("service-grants", service=service_id, sealed=sealed), qos=1)

    ask("recorder", carried[0])                       # alice's grants, sent as mallory
    ask("indexer", dict(carried[0], **{"from": "mallory"}))  # a service this cloud does not run
    ask("recorder", "not a sealed message")
    assert len(carried) == 1
    assert cloud.requests["service-grants:not the account's grants"] == 2
    assert cloud.requests["service-grants:no such service"] == 1
    assert json.loads(json.dumps(carried[0])) == carried[0]  # carried as sent: JSON, opaque
