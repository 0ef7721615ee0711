"""host_sim's owner's app and display over the in-process bus, with a carrier standing in for the
cloud (it forwards grants and offers, and can drop commands): a display's tiles, outputs and stream
state are keyed by (owner, camera), so a contact's camera that carries another owner's camera id
never lands in that owner's tile; and the app, ticking, renews its holders, sends an unconfirmed
rotation again and raises the alarm, which the owner's display raises too."""

from __future__ import annotations

import json
from typing import Dict, List

from host_sim.app import OwnerApp
from host_sim.display import Display
from host_sim.transport import InProcessBus, Message
from segbind import Binding
from segbind.freshness import ROTATION_PENDING, SUPERSEDED_EPOCH
from segbind.grants import Account, OutOfBand
from segbind.grants import Display as DisplayIdentity
from segbind.owner import Owner
from segbind_core import topics
from tests.support.tagged import PAIRING_EVE, T0, epoch, tag_stream


class Carrier:
    """What the cloud does for these tests: grants to displays, offers to accounts, segments to
    an account's displays (labelled with whatever camera it likes); commands kept, or dropped."""

    def __init__(self, bus: InProcessBus, accounts: List[str]) -> None:
        self.transport = bus.transport("carrier")
        self.commands: List[Dict[str, str]] = []
        for account in accounts:
            self.transport.subscribe(topics.account_topic(account, topics.REQUESTS),
                                     lambda msg, a=account: self._request(a, msg))
        self.transport.start()

    def _request(self, account: str, msg: Message) -> None:
        req = json.loads(msg.payload)
        if req["op"] == "grants":
            self.transport.publish(topics.display_topic(req["display"], topics.GRANTS),
                                   json.dumps(req["sealed"]).encode(), qos=1, retain=True)
        elif req["op"] == "offer":
            self.transport.publish(topics.account_topic(req["to"], topics.OFFERS) + "/" + account,
                                   json.dumps({"from": account, "sealed": req["sealed"]}).encode(), qos=1)
        elif req["op"] == "command":
            self.commands.append(req)   # and dropped: the camera never hears of it

    def segment(self, account: str, camera_label: str, payload: bytes) -> None:
        self.transport.publish(topics.account_topic(account, topics.SEG), payload, qos=1,
                               user_properties={"camera": camera_label, "source": "test"})


def test_a_contacts_camera_with_another_owners_id_gets_its_own_tile_and_output(tmp_path) -> None:
    """Issue 20 item 2, on the display: bob's display holds alice's cam-1 and carol's camera that
    also says cam-1 (an owner's app that let it through, or a resale whose keys overlap); the
    cloud labels both "cam-1" and interleaves them. With format 2 the display kept one tile and one
    stream state per camera id: carol's video showed in alice's tile and alice's real segments were
    refused as chain breaks. Now each is a stream of its own, whole, under its own owner."""
    bus = InProcessBus()
    carrier = Carrier(bus, ["bob"])
    bob = Account.new("bob", test_only=True)
    identity = DisplayIdentity.new("bob-tv", test_only=True)
    OutOfBand.enroll(bob, identity)
    display = Display(bus.transport("bob-tv"), "bob", identity, window=None, keep_segments=True).start()
    alice_cam = epoch(owner="alice", camera="cam-1", shares=("bob",))
    carol_cam = epoch(owner="carol", camera="cam-1", shares=("bob",), pairing=PAIRING_EVE)
    keys = [b for ep in (alice_cam, carol_cam) for b in Binding.periods_of_epoch(ep, T0, T0 + 60_000, "bob")]
    carrier.transport.publish(topics.display_topic("bob-tv", topics.GRANTS),
                              json.dumps(bob.grants_for(identity.card(), 1, keys, issued_ms=T0)).encode(), qos=1)
    assert display.wait_for(lambda d: d.grant_updates == 1, 5)
    alice_segments, carol_segments = tag_stream(alice_cam), tag_stream(carol_cam, stream_id=T0 + 5)
    for a, c in zip(alice_segments, carol_segments):
        carrier.segment("bob", "cam-1", a)
        carrier.segment("bob", "cam-1", c)
    assert display.wait_for(lambda d: sum(d.counts.values()) == 16, 5)
    assert display.counts == {"ok": 16}                   # no chain break: two streams, two chains
    assert set(display.shown) == {("alice", "cam-1"), ("carol", "cam-1")}
    assert [t.seq for t in display.shown[("alice", "cam-1")]] == list(range(8))
    assert {t.stream_id for t in display.shown[("alice", "cam-1")]} == {T0}
    assert {t.stream_id for t in display.shown[("carol", "cam-1")]} == {T0 + 5}
    assert len(display.output[("alice", "cam-1")]) == len(display.output[("carol", "cam-1")]) == 8
    assert display.shown_of("cam-1", "alice") == display.shown[("alice", "cam-1")]
    summary = display.summary()
    assert summary["shown"] == {"alice/cam-1": 8, "carol/cam-1": 8}
    display.stop()


def test_the_app_renews_retries_an_unconfirmed_rotation_and_alarms_and_so_does_its_display() -> None:
    bus = InProcessBus()
    carrier = Carrier(bus, ["alice", "bob"])
    now = [T0 / 1000.0]
    clock = lambda: now[0]  # noqa: E731
    alice = OwnerApp(bus.transport("app-alice"), Owner.new("alice", test_only=True), clock=clock).start()
    bob = OwnerApp(bus.transport("app-bob"), Owner.new("bob", test_only=True), clock=clock).start()
    alice.owner.add_contact(bob.owner.account.card())
    bob.owner.add_contact(alice.owner.account.card())
    displays = {}
    for app in (alice, bob):
        identity = DisplayIdentity.new(app.name + "-tv", test_only=True)
        app.enroll(identity)
        displays[app.name] = Display(bus.transport(app.name + "-tv"), app.name, identity, window=None,
                                     clock=clock).start()
    # a camera alice paired (its pairing result as the app would have seen it)
    from tests.support.agent import CoreRunner

    cam = CoreRunner("cam-1").start(T0)
    alice.owner.on_result("cam-1", cam.pair(alice.owner.pairing_offer("cam-1", T0), T0 + 1))
    alice.share("cam-1", "bob")
    alice.owner.on_result("cam-1", cam.command(bytes.fromhex(carrier.commands[-1]["payload"]), T0 + 2))
    assert displays["bob"].has_grant("cam-1", 2, owner="alice")
    # alice revokes bob; the carrier drops the command, and every retry of it
    now[0] += 100
    alice.revoke("cam-1", "bob")
    sent = len(carrier.commands)
    alarms: List[str] = []
    alice.on_alarm = lambda new: alarms.extend(a.camera for a in new)
    for _ in range(200):                     # 200 s of the app's ticks, one a second
        now[0] += 1
        alice.tick()
    assert len(carrier.commands) - sent == 5 == alice.retries   # at 5, 15, 35, 75, 155 s (the next at 315 s)
    assert {c["payload"] for c in carrier.commands[sent - 1:]} == {carrier.commands[sent - 1]["payload"]}
    assert alarms == ["cam-1"] and [a.epoch for a in alice.alarms] == [3]
    tv = displays["alice"]
    assert ROTATION_PENDING in {a.kind for a in tv.alarms()}
    # the camera keeps tagging epoch 2 (bob's slot in it): alice's display flags it
    tv.verifier.keyring = tv.grants.keyring
    carrier.segment("alice", "cam-1", cam.feed(tag_free_video(), int(now[0] * 1000))[0])
    assert tv.wait_for(lambda d: sum(len(v) for v in d.flagged.values()) == 1, 5)
    assert SUPERSEDED_EPOCH in {a.kind for a in tv.alarms()}
    # bob's keys are renewed no more: past his last period, his display holds nothing new
    bob_periods = {b.period for b in displays["bob"].grants.keyring.bindings()}
    now[0] = (T0 // 1_800_000 + 3) * 1800.0
    alice.tick()
    assert alice.renewals >= 1 and {b.period for b in displays["bob"].grants.keyring.bindings()} == bob_periods
    assert max(b.period for b in displays["alice"].grants.keyring.bindings()) > max(bob_periods)
    for d in displays.values():
        d.stop()
    alice.stop()
    bob.stop()


def tag_free_video() -> bytes:
    from tests.agent.test_owner_flow import video

    return video()
