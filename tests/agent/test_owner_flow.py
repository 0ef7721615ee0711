"""The owner's app and the camera's core, end to end without a network: pairing out of band,
shares, revocation, release and a new owner, periods, what the app shows for each result; the
viewers hold their slot of each epoch they are in (as the grants carry it: ``ring_of``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import List

import pytest

from host_sim import clips
from segbind import Keyring, Reason, StreamVerifier, verify_segment
from segbind.errors import InvalidSegment, KeyringError
from segbind.grants import GrantError, GrantRefusal
from segbind.owner import RESULT_TEXT, OwnedCamera, Owner, OwnerError, exchange_contacts, explain
from segbind_core import control
from segbind_core.keys import command_key
from segbind_core.tag import MAX_EPOCH
from tests.support.agent import CoreRunner, ring_of

T0 = 1_795_000_000_000


@lru_cache(maxsize=None)
def video() -> bytes:
    """Real libx264, an IDR every 5 frames: a segment every 200 ms."""
    return clips.encode_pyav(frames=20, gop=5, width=128, height=96, seed=5)


def granted(owner: Owner, holder: str = "") -> Keyring:
    """What ``holder``'s displays (the owner's by default) hold of cam-1 now."""
    return ring_of(owner, "cam-1", holder or None, around_ms=T0)


def reasons(keyring: Keyring, segments: List[bytes]) -> List[str]:
    verifier = StreamVerifier(keyring)
    return [str(verifier.verify(s).reason) for s in segments]


@pytest.fixture()
def paired():
    """alice's camera cam-1, paired out of band."""
    alice = Owner.new("alice", test_only=True)
    cam = CoreRunner("cam-1").start(T0)
    result = alice.on_result("cam-1", cam.pair(alice.pairing_offer("cam-1", T0), T0 + 1))
    assert (result.status, result.op, result.epoch) == (control.OK, control.PAIR, 1)
    return alice, cam, "alice-tv"


def test_pairing_out_of_band_then_the_owners_display_shows_it(paired) -> None:
    alice, cam, tv = paired
    segments = cam.feed(video(), T0 + 10) + cam.end(T0 + 20)
    assert len(segments) == 4
    ring = granted(alice)
    assert reasons(ring, segments) == ["ok"] * 4
    assert verify_segment(segments[-1], ring).end_of_stream  # the encoder ended: a clean end


def test_a_camera_video_before_pairing_is_never_tagged_for_anyone() -> None:
    cam = CoreRunner("cam-1").start(T0)
    assert cam.feed(video(), T0) + cam.end(T0) == []
    assert cam.core.counts["segments_unclaimed"] == 4


def test_share_then_revoke(paired) -> None:
    alice, cam, tv = paired
    bob = Owner.new("bob", test_only=True)
    exchange_contacts(alice, bob)
    # share: grants first (both displays hold epoch 2 before the camera tags with it)
    command = alice.share("cam-1", "bob", T0 + 100)
    ring, bob_ring = granted(alice), granted(alice, "bob")
    result = alice.on_result("cam-1", cam.command(command, T0 + 101))
    assert (result.status, result.epoch) == (control.OK, 2) and alice.cameras["cam-1"].shares == ["bob"]
    shared = cam.feed(video(), T0 + 200)
    assert reasons(ring, shared) == reasons(bob_ring, shared) == ["ok"] * 3
    assert {b.slot for b in bob_ring.bindings()} == {1}
    # revoke: a new epoch without bob; his keys open nothing of it
    command = alice.revoke("cam-1", "bob", T0 + 300)
    ring = granted(alice)
    assert alice.on_result("cam-1", cam.command(command, T0 + 301)).epoch == 3
    after = cam.feed(video(), T0 + 400)
    epochs = [verify_segment(s, ring).epoch for s in after]
    assert epochs == [2, 3, 3, 3]  # the segment in progress at the command is epoch 2's
    assert reasons(ring, after) == ["ok"] * 4
    # bob keeps what was shared with him (captured while shared) and gets nothing after
    assert reasons(bob_ring, after) == ["ok", "no_grant", "no_grant", "no_grant"]


def test_a_rotation_closes_the_segment_in_progress_under_the_old_epoch(paired) -> None:
    alice, cam, tv = paired
    half = len(video()) // 2
    first = cam.feed(video()[:half], T0 + 10)
    command = alice.rotate("cam-1", [], T0 + 20)
    ring = granted(alice)
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
    alice_before = granted(alice)
    alice.on_result("cam-1", cam.command(alice.release("cam-1", T0 + 20), T0 + 21))
    assert "cam-1" not in alice.cameras and not cam.core.state.claimed
    eve = Owner.new("eve", test_only=True)
    result = eve.on_result("cam-1", cam.pair(eve.pairing_offer("cam-1", T0 + 30), T0 + 31))
    assert result.status == control.OK and result.epoch == 1  # a fresh pairing: epochs count from 1
    after = cam.feed(video()[half:], T0 + 40) + cam.end(T0 + 50)
    eve_ring, alice_ring = granted(eve), alice_before
    for segment in after:
        tag = verify_segment(segment, eve_ring)
        assert tag.owner == "eve" and tag.capture_ms >= T0 + 40   # captured after the pairing
        with pytest.raises(InvalidSegment) as info:
            verify_segment(segment, alice_ring)
        assert info.value.reason is Reason.NO_GRANT
    # what was in progress at the release was dropped: nobody's tag is on those pictures
    assert before and all(verify_segment(s, alice_before).capture_ms < T0 + 20 for s in before)


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


@pytest.mark.xfail(strict=True, raises=TypeError,
                   reason="share offers are grants (Owner.share_offer): not on format 3 yet; drop with the rewrite")
def test_a_share_offer_from_a_stranger_or_a_replayed_one_is_refused(paired) -> None:
    alice, _cam, _tv = paired
    bob, carol = Owner.new("bob", test_only=True), Owner.new("carol", test_only=True)
    exchange_contacts(alice, bob)
    alice.share("cam-1", "bob", T0)
    offer = alice.share_offer("cam-1", "bob")
    with pytest.raises(OwnerError):
        carol.accept_offer(offer, "alice")              # not a contact of carol
    exchange_contacts(alice, carol)
    with pytest.raises(GrantError) as info:
        carol.accept_offer(offer, "alice")              # the cloud hands bob's offer to carol
    assert info.value.reason is GrantRefusal.NOT_FOR_THIS_ACCOUNT
    bob.accept_offer(offer, "alice")
    with pytest.raises(GrantError) as info:
        bob.accept_offer(offer, "alice")
    assert info.value.reason is GrantRefusal.STALE


@pytest.mark.xfail(strict=True, raises=KeyringError,
                   reason="the account's file (grants.Account) is not on format 3 yet; drop with the rewrite")
def test_the_owner_file_round_trips_without_showing_secrets(paired, tmp_path) -> None:
    alice, _cam, _tv = paired
    path = tmp_path / "alice.owner"
    alice.save(path)
    again = Owner.load(path)
    assert again.cameras["cam-1"].pairing == alice.cameras["cam-1"].pairing
    assert again.cameras["cam-1"].to_json() == alice.cameras["cam-1"].to_json()
    assert [b.key for b in ring_of(again).bindings()] == [b.key for b in ring_of(alice).bindings()]
    assert alice.cameras["cam-1"].pairing.hex() not in repr(alice) + repr(alice.cameras)
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
