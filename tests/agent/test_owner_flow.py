"""The owner's app and the camera's core, end to end without a network: pairing out of band,
shares, revocation (with the camera hearing of it, and with a cloud that drops it), release and
a new owner, renewal period by period, pending rotations retried and alarmed, a contact's camera
that carries another owner's camera id, and services; displays and services hold only what their
owner granted, for the periods it granted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import List, Tuple

import pytest

from host_sim import clips
from segbind import Keyring, Reason, StreamVerifier, verify_segment
from segbind.errors import InvalidSegment
from segbind.freshness import ROTATION_PENDING, SUPERSEDED_EPOCH, FeedWatch
from segbind.grants import Display, DisplayGrants, GrantError, GrantRefusal, Service, ServiceGrants
from segbind.owner import (
    EPOCH_ID_HELD,
    HELD_FROM_ANOTHER_OWNER,
    KEY_ID_HELD,
    NOT_YET,
    OWN_CAMERA,
    RESULT_TEXT,
    OwnedCamera,
    Owner,
    OwnerError,
    exchange_contacts,
    explain,
)
from segbind_core import control
from segbind_core.tag import MAX_EPOCH
from tests.support.agent import CoreRunner, ring_of

T0 = 1_795_000_000_000          # 400 s into a 1800 s period
PERIOD_MS = 1_800_000
LEAD_MS = 120_000
PERIOD_END = (T0 // PERIOD_MS + 1) * PERIOD_MS   # the end of the period T0 is in


@lru_cache(maxsize=None)
def video() -> bytes:
    """Real libx264, an IDR every 5 frames: a segment every 200 ms."""
    return clips.encode_pyav(frames=20, gop=5, width=128, height=96, seed=5)


def display_of(owner: Owner, name: str) -> DisplayGrants:
    screen = Display.new(name, test_only=True)
    owner.enroll(screen)
    return DisplayGrants(screen)


def granted(owner: Owner, grants: DisplayGrants, now_ms: int) -> Keyring:
    return grants.accept(owner.grants_for(grants.display.display, now_ms))


def reasons(keyring: Keyring, segments: List[bytes]) -> List[str]:
    verifier = StreamVerifier(keyring)
    return [str(verifier.verify(s).reason) for s in segments]


@pytest.fixture()
def paired():
    """alice's camera cam-1, paired out of band, and alice's display holding its keys."""
    alice = Owner.new("alice", test_only=True)
    cam = CoreRunner("cam-1").start(T0)
    result = alice.on_result("cam-1", cam.pair(alice.pairing_offer("cam-1", T0), T0 + 1))
    assert (result.status, result.op, result.epoch) == (control.OK, control.PAIR, 1)
    tv = display_of(alice, "alice-tv")
    return alice, cam, tv


class Household:
    """alice (camera cam-1, display alice-tv) shares with bob (display bob-tv); time passes in
    steps, and at every step each app does what its clock says: alice renews every holder
    when due, bob takes what alice offers and grants his display at once."""

    def __init__(self, alice: Owner, cam: CoreRunner, tv: DisplayGrants) -> None:
        self.alice, self.cam, self.tv = alice, cam, tv
        self.bob = Owner.new("bob", test_only=True)
        exchange_contacts(alice, self.bob)
        self.bob_tv = display_of(self.bob, "bob-tv")
        self.bob_ring = Keyring()
        self.ring = Keyring()
        self.now = T0
        self.renewals = 0

    def deliver_to_bob(self, sealed: object, now: int) -> None:
        self.bob.accept_offer(sealed, "alice", now)
        self.bob_ring = granted(self.bob, self.bob_tv, now)

    def share(self, now: int) -> None:
        command = self.alice.share("cam-1", "bob", now)
        offer = self.alice.offer_for("bob", now)
        assert offer is not None
        self.deliver_to_bob(offer, now)
        self.ring = granted(self.alice, self.tv, now)
        result = self.alice.on_result("cam-1", self.cam.command(command, now + 1))
        assert (result.status, result.epoch) == (control.OK, 2)

    def run_until(self, end: int, step_ms: int = 10_000) -> None:
        """The apps' clocks run to ``end``: renewals when due (what host_sim.app.OwnerApp.tick does)."""
        while self.now < end:
            self.now = min(self.now + step_ms, end)
            if self.alice.renewal_due(self.now):
                renewal = self.alice.renew(self.now)
                self.renewals += 1
                self.ring = self.tv.accept(renewal.grants["alice-tv"])
                if "bob" in renewal.offers:
                    self.deliver_to_bob(renewal.offers["bob"], self.now)


def test_pairing_out_of_band_then_the_owners_display_shows_it(paired) -> None:
    alice, cam, tv = paired
    segments = cam.feed(video(), T0 + 10) + cam.end(T0 + 20)
    assert len(segments) == 4
    ring = granted(alice, tv, T0 + 5)
    assert reasons(ring, segments) == ["ok"] * 4
    assert verify_segment(segments[-1], ring).end_of_stream  # the encoder ended: a clean end
    # keys of the period in progress only: the next one comes with the renewal, a lead before it
    assert [b.period for b in ring.bindings()] == [T0 // PERIOD_MS]
    assert alice.renewal_due(T0 + 5)          # never renewed: the first tick renews every holder
    alice.renew(T0 + 5)
    assert alice.next_renewal_ms() == PERIOD_END - LEAD_MS and not alice.renewal_due(PERIOD_END - LEAD_MS - 1)


def test_a_camera_video_before_pairing_is_never_tagged_for_anyone() -> None:
    cam = CoreRunner("cam-1").start(T0)
    assert cam.feed(video(), T0) + cam.end(T0) == []
    assert cam.core.counts["segments_unclaimed"] == 4


def test_renewal_ahead_of_each_period_keeps_the_feed_across_period_boundaries(paired) -> None:
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.ring = granted(alice, tv, T0 + 5)
    alice.renew(T0 + 5)
    house.run_until(T0 + 3 * PERIOD_MS)
    assert house.renewals == 3          # one a lead before each of the three periods that began
    verifier = StreamVerifier(house.ring)
    for at in (T0 + 10, PERIOD_END + 1_000, PERIOD_END + PERIOD_MS + 5_000, T0 + 3 * PERIOD_MS - 1):
        assert [str(verifier.verify(s).reason) for s in cam.feed(video(), at)] in (["ok"] * 3, ["ok"] * 4), at
    # the display keeps each period it was granted (a late segment still verifies), no more
    assert len(house.ring) == 4


def test_share_then_revoke_the_camera_hears_it(paired) -> None:
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    shared = cam.feed(video(), T0 + 200)
    assert reasons(house.ring, shared) == reasons(house.bob_ring, shared) == ["ok"] * 3
    assert [b.slot for b in house.bob_ring.bindings()] == [1]
    command = alice.revoke("cam-1", "bob", T0 + 300)
    house.ring = granted(alice, tv, T0 + 300)
    assert alice.offer_for("bob", T0 + 300) is None     # nothing more is offered to bob
    assert alice.on_result("cam-1", cam.command(command, T0 + 301)).epoch == 3
    after = cam.feed(video(), T0 + 400)
    assert [verify_segment(s, house.ring).epoch for s in after] == [2, 3, 3, 3]  # the segment in progress is 2's
    assert reasons(house.ring, after) == ["ok"] * 4
    assert reasons(house.bob_ring, after) == ["ok", "no_grant", "no_grant", "no_grant"]


def test_a_revoked_viewer_whose_rotation_the_cloud_drops_sees_nothing_after_its_last_period(paired) -> None:
    """Issue 20 item 1: the cloud drops the rotate (the camera keeps tagging epoch 2, bob's slot in
    it), keeps routing, and bob keeps his old keys. With format 2 he watched on for good; now he
    is never renewed, and nothing captured more than a period and the lead after the revocation
    verifies for him, while alice's own display goes on."""
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    revoked_at = T0 + 600_000
    alice.revoke("cam-1", "bob", revoked_at)      # the command goes to the cloud, which drops it
    house.ring = granted(alice, tv, revoked_at)
    bound = revoked_at + PERIOD_MS + LEAD_MS        # FORMAT.md section 2: one period and the lead
    seen: List[Tuple[int, str, str]] = []
    alice_verifier, bob_verifier = StreamVerifier(house.ring), StreamVerifier(house.bob_ring)
    for at in range(revoked_at + 60_000, revoked_at + 3 * PERIOD_MS, 240_000):
        house.run_until(at)
        alice_verifier.keyring, bob_verifier.keyring = house.ring, house.bob_ring
        for segment in cam.feed(video(), at):
            tag = verify_segment(segment, house.ring)
            assert tag.epoch == 2                     # the camera never heard of the revocation
            seen.append((tag.capture_ms, str(alice_verifier.verify(segment).reason),
                         str(bob_verifier.verify(segment).reason)))
    assert len(seen) > 30 and all(alice == "ok" for _at, alice, _bob in seen)
    assert all(bob == "no_grant" for at, _alice, bob in seen if at >= bound)
    # bob had what was captured while he was still shared: up to the end of his last period
    assert {bob for at, _alice, bob in seen if at < PERIOD_END} == {"ok"}
    assert {bob for at, _alice, bob in seen if at >= PERIOD_END} == {"no_grant"}
    assert max(b.end_ms for b in house.bob_ring.bindings()) == PERIOD_END <= bound


def test_an_unconfirmed_rotation_is_retried_with_a_bounded_backoff_then_alarmed(paired) -> None:
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    revoked_at = T0 + 600_000
    command = alice.revoke("cam-1", "bob", revoked_at)     # dropped by the cloud
    assert alice.cameras["cam-1"].pending is not None and alice.rotation_alarms(revoked_at) == []
    sent: List[int] = []
    for at in range(revoked_at, revoked_at + 1_200_000, 1_000):
        for camera, again in alice.due_retries(at):
            assert (camera, again) == ("cam-1", command)    # the same bytes: the camera takes them once
            sent.append(at - revoked_at)
    waits = [b - a for a, b in zip([0] + sent, sent)]
    assert waits[:6] == [5_000, 10_000, 20_000, 40_000, 80_000, 160_000]
    assert max(waits) == 300_000 and waits[-1] == 300_000   # bounded: every 5 minutes from then on
    # the alarm, on the app, once the deadline passed
    assert alice.rotation_alarms(revoked_at + 59_999) == []
    [alarm] = alice.rotation_alarms(revoked_at + 60_000)
    assert (alarm.camera, alarm.epoch, alarm.since_ms) == ("cam-1", 3, revoked_at)
    # and on the owner's display, from the signed grants: pending since when, and old-epoch video flagged
    ring = granted(alice, tv, revoked_at + 61_000)
    [state] = tv.cameras.values()
    assert (state.epoch, state.since_ms, state.pending) == (3, revoked_at, True)
    watch = FeedWatch(stale_s=1e9, frozen_s=1e9)
    watch.owner_says(tv.cameras.values(), tv.alarm_after_ms)
    verifier = StreamVerifier(ring)
    flags = []
    for segment in cam.feed(video(), revoked_at + 61_000):
        verdict = verifier.verify(segment)
        assert verdict.accepted and verdict.tag is not None
        flags.append(watch.accepted(verdict.tag, revoked_at / 1000 + 61))
    assert flags and all(flags)
    kinds = {a.kind: a for a in watch.check(revoked_at / 1000 + 61)}
    assert set(kinds) == {ROTATION_PENDING, SUPERSEDED_EPOCH}
    assert kinds[ROTATION_PENDING].stream == ("alice", "cam-1")
    # a retry gets through: confirmed, no alarm on the app, none on the display's next grants
    assert alice.on_result("cam-1", cam.command(command, revoked_at + 70_000)).status == control.OK
    assert alice.cameras["cam-1"].pending is None and alice.rotation_alarms(revoked_at + 70_000) == []
    assert alice.due_retries(revoked_at + 10 ** 7) == []
    granted(alice, tv, revoked_at + 71_000)
    watch.owner_says(tv.cameras.values(), tv.alarm_after_ms)
    assert [a.kind for a in watch.check(revoked_at / 1000 + 71)] == [SUPERSEDED_EPOCH]  # until new video
    for segment in cam.feed(video(), revoked_at + 72_000):
        verdict = verifier.verify(segment)
        assert verdict.tag is not None and verdict.tag.epoch in (2, 3)
        watch.accepted(verdict.tag, revoked_at / 1000 + 72)
    assert watch.check(revoked_at / 1000 + 72) == []


def test_a_rotation_closes_the_segment_in_progress_under_the_old_epoch(paired) -> None:
    alice, cam, tv = paired
    half = len(video()) // 2
    first = cam.feed(video()[:half], T0 + 10)
    command = alice.rotate("cam-1", [], T0 + 20)
    ring = granted(alice, tv, T0 + 20)
    cam.command(command, T0 + 21)
    rest = cam.feed(video()[half:], T0 + 30) + cam.end(T0 + 40)
    segments = first + rest
    epochs = [verify_segment(s, ring).epoch for s in segments]
    assert epochs == sorted(epochs) and epochs[0] == 1 and epochs[-1] == 2
    assert reasons(ring, segments) == ["ok"] * len(segments)  # one stream, the chain unbroken


def test_release_and_a_new_owner_nothing_captured_before_is_tagged_for_the_new_owner(paired) -> None:
    alice, cam, tv = paired
    half = len(video()) // 2
    before = cam.feed(video()[:half], T0 + 10)
    alice_before = granted(alice, tv, T0 + 10)
    first_epoch = alice.cameras["cam-1"].epoch_name("alice", 1)
    alice.on_result("cam-1", cam.command(alice.release("cam-1", T0 + 20), T0 + 21))
    assert "cam-1" not in alice.cameras and not cam.core.state.claimed
    eve = Owner.new("eve", test_only=True)
    eve_tv = display_of(eve, "eve-tv")
    result = eve.on_result("cam-1", cam.pair(eve.pairing_offer("cam-1", T0 + 30), T0 + 31))
    assert result.status == control.OK and result.epoch == 1  # epochs count from 1 in each pairing
    after = cam.feed(video()[half:], T0 + 40) + cam.end(T0 + 50)
    eve_ring, alice_ring = granted(eve, eve_tv, T0 + 40), granted(alice, tv, T0 + 40)
    for segment in after:
        tag = verify_segment(segment, eve_ring)
        assert tag.owner == "eve" and tag.capture_ms >= T0 + 40   # captured after the pairing
        with pytest.raises(InvalidSegment) as info:
            verify_segment(segment, alice_ring)
        assert info.value.reason is Reason.NO_GRANT
    assert alice_ring.revoked_ids() == [first_epoch] and len(alice_ring) == 0
    # what was in progress at the release was dropped: nobody's tag is on those pictures
    assert before and all(verify_segment(s, alice_before).capture_ms < T0 + 20 for s in before)


def test_a_contacts_camera_with_another_owners_camera_id_is_not_taken(paired) -> None:
    """Issue 20 item 2: carol, a contact of bob, shares a camera of hers that carries the id of
    alice's cam-1, which bob already holds from alice. With format 2 bob's app took it and his
    display showed carol's video in the cam-1 tile, under alice's name as far as he could tell,
    and refused alice's real segments as a chain break. Now bob's app does not take it: his
    display never holds carol's keys, and alice's camera stays whole in alice's tile."""
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    bob = house.bob
    carol = Owner.new("carol", test_only=True)
    exchange_contacts(carol, bob)
    fake = CoreRunner("cam-1").start(T0)   # carol's own camera, its id set to alice's camera's
    carol.on_result("cam-1", fake.pair(carol.pairing_offer("cam-1", T0 + 150), T0 + 151))
    command = carol.share("cam-1", "bob", T0 + 160)
    carol.on_result("cam-1", fake.command(command, T0 + 161))
    offer = carol.offer_for("bob", T0 + 170)
    assert offer is not None
    taken = bob.accept_offer(offer, "carol", T0 + 170)
    assert [b.camera for b in taken.keys] == ["cam-1"]      # what carol offered
    assert bob.refused_shares == {("carol", "cam-1"): HELD_FROM_ANOTHER_OWNER}
    ring = granted(bob, house.bob_tv, T0 + 170)
    assert {(b.owner, b.camera) for b in ring.bindings()} == {("alice", "cam-1")}
    verifier = StreamVerifier(ring)
    real, forged = cam.feed(video(), T0 + 200), fake.feed(video(), T0 + 200)
    mixed = [s for pair in zip(real, forged) for s in pair]
    verdicts = [verifier.verify(s) for s in mixed]
    assert [str(v.reason) for v in verdicts] == ["ok", "no_grant"] * len(real)
    assert {v.tag.stream for v in verdicts if v.accepted and v.tag is not None} == {("alice", "cam-1")}
    # carol cannot pass off a camera id bob owns either
    bob_cam = CoreRunner("bob-cam").start(T0)
    bob.on_result("bob-cam", bob_cam.pair(bob.pairing_offer("bob-cam", T0), T0 + 1))
    carol_cam = CoreRunner("bob-cam").start(T0)
    carol.on_result("bob-cam", carol_cam.pair(carol.pairing_offer("bob-cam", T0 + 2), T0 + 3))
    carol.on_result("bob-cam", carol_cam.command(carol.share("bob-cam", "bob", T0 + 4), T0 + 5))
    offer = carol.offer_for("bob", T0 + 6)
    bob.accept_offer(offer, "carol", T0 + 6)
    assert bob.refused_shares[("carol", "bob-cam")] == OWN_CAMERA
    assert all(b.owner != "carol" for b in bob.keys(T0 + 6))


def test_a_camera_id_from_a_previous_owner_is_taken_once_its_keys_ran_out(paired) -> None:
    """A resale: bob held alice's cam-1; alice revoked bob (and sold the camera); carol shares
    what is now her cam-1. Refused while alice's keys for it run, taken after."""
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    alice.revoke("cam-1", "bob", T0 + 200)
    carol = Owner.new("carol", test_only=True)
    exchange_contacts(carol, house.bob)
    resold = CoreRunner("cam-1").start(T0)
    carol.on_result("cam-1", resold.pair(carol.pairing_offer("cam-1", T0 + 300), T0 + 301))
    carol.on_result("cam-1", resold.command(carol.share("cam-1", "bob", T0 + 302), T0 + 303))
    house.bob.accept_offer(carol.offer_for("bob", T0 + 400), "carol", T0 + 400)
    assert house.bob.refused_shares == {("carol", "cam-1"): HELD_FROM_ANOTHER_OWNER}
    later = PERIOD_END + 10_000          # alice's last period for bob ended
    house.bob.accept_offer(carol.offer_for("bob", later), "carol", later)
    assert house.bob.refused_shares == {}
    assert {(b.owner, b.camera) for b in house.bob.keys(later)} == {("carol", "cam-1")}


def test_a_never_granted_service_refuses_and_a_revoked_one_verifies_nothing_new(paired, tmp_path) -> None:
    """Issue 21 item 1: a service verifies only what an owner granted it, period by period."""
    alice, cam, _tv = paired
    svc = Service.new("recorder", test_only=True)
    svc.enroll(alice.account.card())
    code = alice.enroll_service(svc.card())
    assert code == svc.enroll(alice.account.card())          # both sides show the same code
    grants = ServiceGrants(svc, tmp_path / "svc")
    segments = cam.feed(video(), T0 + 10)
    assert reasons(grants.keyring("alice"), segments) == ["no_grant"] * 3   # never granted: refused
    account, ring = grants.accept(alice.service_grants_for("recorder", T0 + 10))
    assert account == "alice" and reasons(ring, segments) == ["ok"] * 3
    assert {b.slot for b in ring.bindings()} == {0}
    # the owner renews it like a display; then removes it: no renewal, nothing new verifies
    renewal = alice.renew(PERIOD_END - LEAD_MS)
    grants.accept(renewal.services["recorder"])
    alice.remove_service("recorder")
    assert alice.renew(PERIOD_END + PERIOD_MS - LEAD_MS).services == {}
    verifier = grants.verifier("alice")
    judged = [(verify_segment(s, alice.keyring(T0, T0 + 3 * PERIOD_MS)).capture_ms, str(verifier.verify(s).reason))
              for at in (PERIOD_END + 5_000, PERIOD_END + PERIOD_MS + 5_000, PERIOD_END + 2 * PERIOD_MS)
              for s in cam.feed(video(), at)]
    assert {r for at, r in judged if at < PERIOD_END + PERIOD_MS} == {"ok"}       # its last period
    assert {r for at, r in judged if at >= PERIOD_END + PERIOD_MS} == {"no_grant"}  # nothing new
    # a restarted service keeps its keys and serial: the old message again is stale
    again = ServiceGrants(svc, tmp_path / "svc")
    assert again.serial("alice") == 2 and len(again.keyring("alice")) == len(grants.keyring("alice"))
    with pytest.raises(GrantError) as info:
        again.accept(renewal.services["recorder"])
    assert info.value.reason is GrantRefusal.STALE
    # an account that never enrolled it is refused before anything is opened
    mallory = Owner.new("mallory", test_only=True)
    mallory.enroll_service(svc.card())
    with pytest.raises(GrantError) as info:
        grants.accept(mallory.service_grants_for("recorder", T0))
    assert info.value.reason is GrantRefusal.NOT_ENROLLED


def test_a_claimed_camera_ignores_another_pairing_and_a_stale_offer_expires(paired) -> None:
    alice, cam, _tv = paired
    mallory = Owner.new("mallory", test_only=True)
    answer = cam.pair(mallory.pairing_offer("cam-1", T0), T0 + 5)
    result = control.open_result(control_key_of(mallory, "cam-1"), "cam-1", answer)
    assert result.status == control.ALREADY_CLAIMED and cam.core.state.owner == "alice"
    fresh = CoreRunner("cam-2").start(T0)
    late = fresh.pair(alice.pairing_offer("cam-2", T0), T0 + 11 * 60 * 1000)
    assert alice.on_result("cam-2", late).status == control.EXPIRED and not fresh.core.state.claimed


def control_key_of(owner: Owner, camera: str) -> bytes:
    from segbind_core.keys import command_key
    return command_key(owner.cameras[camera].pairing, owner.name, camera)


def test_commands_from_anyone_but_the_owner_are_refused(paired) -> None:
    alice, cam, _tv = paired
    mallory = Owner.new("mallory", test_only=True)
    mallory.pairing_offer("cam-1", T0)       # mallory's own pairing secret for cam-1
    mallory.cameras["cam-1"].paired = True
    forged = mallory.release("cam-1", T0)
    cam.command(forged, T0 + 1)
    assert cam.core.state.owner == "alice" and cam.core.refused == {control.BAD_MAC: 1}
    replay = alice.rotate("cam-1", [], T0 + 2)
    alice.on_result("cam-1", cam.command(replay, T0 + 3))
    again = alice.on_result("cam-1", cam.command(replay, T0 + 4))
    assert again.status == control.ALREADY_APPLIED and cam.core.state.epoch == 2


def test_a_share_offer_from_a_stranger_or_a_replayed_one_is_refused(paired) -> None:
    alice, _cam, _tv = paired
    bob, carol = Owner.new("bob", test_only=True), Owner.new("carol", test_only=True)
    exchange_contacts(alice, bob)
    alice.share("cam-1", "bob", T0)
    offer = alice.share_offer("cam-1", "bob", T0)
    with pytest.raises(OwnerError):
        carol.accept_offer(offer, "alice", T0)              # not a contact of carol
    exchange_contacts(alice, carol)
    with pytest.raises(GrantError) as info:
        carol.accept_offer(offer, "alice", T0)              # the cloud hands bob's offer to carol
    assert info.value.reason is GrantRefusal.NOT_FOR_THIS_ACCOUNT
    bob.accept_offer(offer, "alice", T0)
    with pytest.raises(GrantError) as info:
        bob.accept_offer(offer, "alice", T0)
    assert info.value.reason is GrantRefusal.STALE


def test_settings_that_cannot_work_are_refused() -> None:
    for settings in ({"period_s": 59}, {"period_s": 86401}, {"lead_ms": 1_800_000}, {"lead_ms": -1},
                     {"retry_first_ms": 0}, {"retry_first_ms": 10, "retry_max_ms": 5}):
        with pytest.raises(OwnerError):
            Owner.new("alice", **settings)
    owner = Owner.new("alice", period_s=600, lead_ms=30_000)
    assert (owner.period_s, owner.lead_ms) == (600, 30_000)


def test_the_owner_file_round_trips_without_showing_secrets(paired, tmp_path) -> None:
    alice, _cam, tv = paired
    alice.rotate("cam-1", [], T0 + 5)        # pending: its command and schedule are kept too
    alice.enroll_service(Service.new("recorder").card())
    other = CoreRunner("cam-2").start(T0)
    alice.on_result("cam-2", other.pair(alice.pairing_offer("cam-2", T0), T0 + 1))
    alice.forget("cam-2")                    # reset by its button: its epoch is revoked, by epoch id
    granted(alice, tv, T0 + 6)               # what the display may hold is remembered
    assert alice.revoked and alice.granted_own
    path = tmp_path / "alice.owner"
    alice.save(path)
    again = Owner.load(path)
    assert again.cameras["cam-1"].pairing == alice.cameras["cam-1"].pairing
    assert [b.key for b in again.keys(T0)] == [b.key for b in alice.keys(T0)] and len(again.keys(T0)) == 2
    assert again.cameras["cam-1"].pending == alice.cameras["cam-1"].pending
    assert again.services == alice.services and again.to_json() == alice.to_json()
    texts = repr(alice) + repr(alice.cameras) + repr(alice.keys(T0))
    assert alice.cameras["cam-1"].pairing.hex() not in texts
    assert all(b.key.hex() not in texts and b.content_key.hex() not in texts for b in alice.keys(T0))
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_each_epoch_has_the_period_its_offer_or_rotate_gave(paired) -> None:
    """Epoch 1 takes the offer's period length, each rotation its own; the camera's keys follow."""
    owner = Owner.new("dana", test_only=True)
    cam = CoreRunner("cam-9").start(T0)
    assert owner.on_result("cam-9", cam.pair(owner.pairing_offer("cam-9", T0, period_s=60), T0)).epoch == 1
    first = cam.feed(video(), T0 + 10)
    result = owner.on_result("cam-9", cam.command(owner.rotate("cam-9", [], T0 + 20, period_s=86400), T0 + 21))
    assert (result.status, result.epoch) == (control.OK, 2)
    second = cam.feed(video(), T0 + 30) + cam.end(T0 + 40)
    assert cam.core.state.period_s == 86400 and owner.cameras["cam-9"].periods == {1: 60, 2: 86400}
    ring = ring_of(owner, "cam-9", around_ms=T0)
    assert {(b.epoch, b.period_s) for b in ring.bindings()} == {(1, 60), (2, 86400)}
    saved = owner.cameras["cam-9"].to_json()
    assert OwnedCamera.from_json(saved).to_json() == saved and owner.cameras["cam-9"].pairing.hex() not in repr(owner)
    assert [verify_segment(s, ring).epoch for s in first + second] == [1] * len(first) + [1] + [2] * (len(second) - 1)
    # the default: the current epoch's period carries over
    owner.on_result("cam-9", cam.command(owner.rotate("cam-9", [], T0 + 50), T0 + 51))
    assert cam.core.state.period_s == 86400
    for period_s in (0, 59, 86401):
        with pytest.raises(OwnerError):
            owner.rotate("cam-9", [], T0, period_s=period_s)
        with pytest.raises(OwnerError):
            Owner.new("erin", test_only=True).pairing_offer("cam-8", T0, period_s=period_s)


def test_the_app_makes_nothing_out_of_bounds_and_says_why(paired) -> None:
    alice, cam, _tv = paired
    known = alice.cameras["cam-1"]
    known.epochs[MAX_EPOCH] = []              # the app has used every epoch of this pairing
    with pytest.raises(OwnerError, match="pair it again"):
        alice.rotate("cam-1", [], T0)
    del known.epochs[MAX_EPOCH]
    known.counter = control.MAX_COUNTER       # and every counter
    with pytest.raises(OwnerError, match="pair it again"):
        alice.release("cam-1", T0)
    assert known.counter == control.MAX_COUNTER   # nothing was used up by a refusal


def test_every_result_reads_as_one_line_for_the_owner() -> None:
    assert set(RESULT_TEXT) == set(control.STATUSES)
    for status in control.STATUSES:
        result = control.Result("cam-1", "alice", 3, control.ROTATE, status, 2, 1, 0, "epoch 0 is out of range")
        text = explain(result)
        assert text.startswith("rotate: ") and "\n" not in text and len(text) < 200
        assert ("out of range" in text) == (status not in control.ACCEPTED_STATUSES)
    assert "outside what the camera accepts" in explain(control.Result("c", "a", 0, 2, control.OUT_OF_RANGE))


def test_an_out_of_range_command_reaches_the_owner_as_a_result_and_changes_nothing(paired) -> None:
    alice, cam, _tv = paired
    from tests.support.agent import raw_command
    key = control_key_of(alice, "cam-1")
    before = cam.core.state.to_json()
    for wire in (raw_command(key, control.ROTATE, "cam-1", "alice", 1, MAX_EPOCH + 1),
                 raw_command(key, control.ROTATE, "cam-1", "alice", control.MAX_COUNTER + 1, 2),
                 raw_command(key, control.ROTATE, "cam-1", "alice", 1, 2, period_s=86401),
                 raw_command(key, control.ROTATE, "cam-1", "alice", 1, 2, issued_ms=1 << 53)):
        result = alice.on_result("cam-1", cam.command(wire, T0 + 5))
        assert result.status == control.OUT_OF_RANGE and "out of range" in result.detail
        assert result.counter in (0, 1) and result.epoch == 1
    assert cam.core.state.to_json() == before                     # not even the counter moved
    result = alice.on_result("cam-1", cam.command(alice.rotate("cam-1", [], T0 + 6), T0 + 7))
    assert (result.status, result.counter, result.epoch) == (control.OK, 1, 2)


def test_an_owner_who_pairs_her_camera_again_sees_it_again(paired) -> None:
    """Epochs count from 1 in each pairing: alice's display revoked epoch 1 of her first pairing
    when she released the camera, and must still take epoch 1 of her second (another root, other
    key ids) while the first one's keys stay gone."""
    alice, cam, tv = paired
    old = cam.feed(video(), T0 + 10) + cam.end(T0 + 11)
    assert reasons(granted(alice, tv, T0 + 12), old) == ["ok"] * len(old)
    alice.on_result("cam-1", cam.command(alice.release("cam-1", T0 + 20), T0 + 21))
    granted(alice, tv, T0 + 22)
    result = alice.on_result("cam-1", cam.pair(alice.pairing_offer("cam-1", T0 + 30), T0 + 31))
    assert (result.status, result.epoch) == (control.OK, 1)
    new = cam.feed(video(), T0 + 40) + cam.end(T0 + 41)
    ring = granted(alice, tv, T0 + 42)
    assert reasons(ring, new) == ["ok"] * len(new)
    assert set(reasons(ring, old)) == {"no_grant"}


# -- a hostile cloud replays, a hostile contact offers what it saw ---------------------------------

def test_a_replayed_pair_or_older_rotate_result_never_takes_the_app_back() -> None:
    """The cloud carries every result and can replay any of them (they are authentic: the camera
    made them). A replayed pair result used to reset the app's camera to epoch 1 with counter 0
    (its next command a replay at the camera, its displays granted epoch 1 again); an older
    rotate result moved it back to an older epoch."""
    alice = Owner.new("alice", test_only=True)
    cam = CoreRunner("cam-1").start(T0)
    paired_answer = cam.pair(alice.pairing_offer("cam-1", T0), T0 + 1)
    alice.on_result("cam-1", paired_answer)
    second = cam.command(alice.rotate("cam-1", [], T0 + 2), T0 + 3)
    assert alice.on_result("cam-1", second).epoch == 2
    third = cam.command(alice.rotate("cam-1", [], T0 + 4), T0 + 5)
    assert alice.on_result("cam-1", third).epoch == 3
    before = alice.cameras["cam-1"].to_json()
    for replayed in (paired_answer, second, paired_answer):
        assert alice.on_result("cam-1", replayed).status == control.OK   # authentic, and ignored
        assert alice.cameras["cam-1"].to_json() == before
    result = alice.on_result("cam-1", cam.command(alice.rotate("cam-1", [], T0 + 6), T0 + 7))
    assert (result.status, result.epoch) == (control.OK, 4)              # the camera takes the next command


def test_a_rotation_never_forgets_an_epoch_the_camera_may_be_tagging_with(paired) -> None:
    """The app remembers 16 epochs of a pairing; with rotations pending (a cloud dropping them)
    it used to forget, and revoke at its displays, the one the camera still tags with."""
    alice, cam, tv = paired
    commands = [alice.rotate("cam-1", [], T0 + 10 + i) for i in range(20)]   # every one dropped
    own = alice.cameras["cam-1"]
    assert own.in_force() == list(range(1, 22)) and alice.revoked == []
    segments = cam.feed(video(), T0 + 100)
    assert reasons(granted(alice, tv, T0 + 100), segments) == ["ok"] * len(segments)   # still epoch 1's
    assert alice.on_result("cam-1", cam.command(commands[-1], T0 + 200)).epoch == 21
    oldest = [own.epoch_name("alice", e) for e in range(1, 7)]
    alice.rotate("cam-1", [], T0 + 300)                       # now the oldest can go: never again granted
    assert sorted(own.epochs) == list(range(7, 23)) and alice.revoked == oldest
    ring = granted(alice, tv, T0 + 300)
    assert {b.epoch for b in ring.bindings()} == set(range(7, 23)) and ring.revoked_ids() == sorted(oldest)
    assert set(reasons(ring, segments)) == {"no_grant"}


def _forged_offer(by: Owner, to: Owner, key_id: bytes, period: int, serial_from: Owner) -> object:
    """``by`` offers ``to`` a camera of its own, "by-cam", under a key id it saw elsewhere."""
    from segbind import Binding
    forged = Binding(key_id, by.name, "by-cam", 1, bytes(16), period, 1800, 1, bytes(32), bytes(16))
    serial = by.offer_serials.get(to.name, 0) + 1
    by.offer_serials[to.name] = serial
    return by.account.offer_share(to.account.card(), serial, [forged], [], T0)


def test_a_contact_cannot_pass_off_a_key_id_of_the_owners_own_camera(paired) -> None:
    """alice shares cam-1 with bob; bob offers alice a "camera" of his under cam-1's key id, for
    the period in progress, and for the one before (alice's display still holds it). Taken, it
    made alice's app refuse to grant at all (two grants of one key id), or her display refuse
    every grants message for a day. Now it is refused (key_id_held), and alice sees her camera."""
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    bob = house.bob
    first_period = T0 // PERIOD_MS
    [now_kid] = [b.key_id for b in alice.own_keys(T0 + 200) if b.epoch == 2]
    alice.accept_offer(_forged_offer(bob, alice, now_kid, first_period, alice), "bob", T0 + 200)
    assert alice.refused_shares == {("bob", "by-cam"): KEY_ID_HELD}
    granted(alice, tv, T0 + 200)
    later = PERIOD_END + 60_000                               # the next period: the last one's key id is old
    alice.accept_offer(_forged_offer(bob, alice, now_kid, first_period + 1, alice), "bob", later)
    assert alice.refused_shares == {("bob", "by-cam"): KEY_ID_HELD}
    ring = granted(alice, tv, later)                          # the display takes it: nothing contradicts
    assert {b.owner for b in ring.bindings()} == {"alice"} and ring.binding(now_kid).owner == "alice"
    assert reasons(ring, cam.feed(video(), later)) == ["ok"] * 3
    # the same forged binding with a key id of nobody's is taken: bob may show his own cameras
    alice.accept_offer(_forged_offer(bob, alice, bytes(range(16)), first_period + 1, alice), "bob", later)
    assert ("bob", "by-cam") not in alice.refused_shares and granted(alice, tv, later).binding(bytes(range(16)))


def test_a_contact_names_one_epoch_id_once_and_grants_no_far_future_period(paired) -> None:
    alice, cam, tv = paired
    bob = Owner.new("bob", test_only=True)
    exchange_contacts(alice, bob)
    from segbind import Binding
    period = T0 // PERIOD_MS
    first = Binding(bytes([1] * 16), "bob", "bob-cam", 1, bytes([7] * 16), period, 1800, 1, bytes(32), bytes(16))
    other_camera = first._replace(key_id=bytes([2] * 16), camera="bob-cam-2", period=period + 1)
    far = first._replace(key_id=bytes([3] * 16), epoch_id=bytes([8] * 16), period=period + 3)
    alice.accept_offer(bob.account.offer_share(alice.account.card(), 1, [first], [], T0), "bob", T0 + 1)
    alice.accept_offer(bob.account.offer_share(alice.account.card(), 2, [other_camera, far], [], T0), "bob", T0 + 2)
    assert alice.refused_shares == {("bob", "bob-cam-2"): EPOCH_ID_HELD, ("bob", "bob-cam"): NOT_YET}
    assert [b.key_id for b in granted(alice, tv, T0 + 3).bindings() if b.owner == "bob"] == [first.key_id]


def test_a_contacts_revocation_reaches_its_own_epochs_only(paired) -> None:
    """carol, a contact of bob, revokes "her" epoch with the epoch id of alice's cam-1 epoch that
    bob holds (she saw it: alice shares cam-1 with carol too). Revoked entries name (owner, epoch
    id): bob's display keeps alice's epoch."""
    alice, cam, tv = paired
    house = Household(alice, cam, tv)
    house.share(T0 + 100)
    bob = house.bob
    carol = Owner.new("carol", test_only=True)
    exchange_contacts(carol, bob)
    [alices] = {b.epoch_name for b in house.bob_ring.bindings()}
    from segbind.keyring import EpochName
    sealed = carol.account.offer_share(bob.account.card(), 1, [], [EpochName("carol", alices.epoch_id)], T0 + 150)
    bob.accept_offer(sealed, "carol", T0 + 150)
    ring = granted(bob, house.bob_tv, T0 + 150)
    assert EpochName("carol", alices.epoch_id) in ring.revoked_ids() and alices not in ring.revoked_ids()
    assert reasons(ring, cam.feed(video(), T0 + 200)) == ["ok"] * 3


def test_an_account_takes_no_contact_under_its_own_id() -> None:
    alice = Owner.new("alice", test_only=True)
    with pytest.raises(OwnerError, match="own id"):
        alice.add_contact(Owner.new("alice").account.card())
