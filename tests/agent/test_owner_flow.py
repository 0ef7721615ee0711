"""The owner's app and the camera's core, end to end without a network: pairing out of band,
shares, revocation, release and a new owner, with displays holding only what their owner granted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import List

import pytest

from host_sim import clips
from segbind import Keyring, Reason, StreamVerifier, verify_segment
from segbind.errors import InvalidSegment
from segbind.grants import Display, DisplayGrants, GrantError, GrantRefusal
from segbind.owner import Owner, OwnerError, exchange_contacts
from segbind_core import control
from tests.support.agent import CoreRunner

T0 = 1_795_000_000_000


@lru_cache(maxsize=None)
def video() -> bytes:
    """Real libx264, an IDR every 5 frames: a segment every 200 ms."""
    return clips.encode_pyav(frames=20, gop=5, width=128, height=96, seed=5)


def display_of(owner: Owner, name: str) -> DisplayGrants:
    screen = Display.new(name, test_only=True)
    owner.enroll(screen)
    return DisplayGrants(screen)


def granted(owner: Owner, grants: DisplayGrants) -> Keyring:
    return grants.accept(owner.grants_for(grants._display.display))


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


def test_pairing_out_of_band_then_the_owners_display_shows_it(paired) -> None:
    alice, cam, tv = paired
    segments = cam.feed(video(), T0 + 10) + cam.end(T0 + 20)
    assert len(segments) == 4
    ring = granted(alice, tv)
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
    bob_tv = display_of(bob, "bob-tv")
    # share: grants first (both displays hold epoch 2 before the camera tags with it)
    command = alice.share("cam-1", "bob", T0 + 100)
    bob.accept_offer(alice.share_offer("cam-1", "bob"), "alice")
    ring, bob_ring = granted(alice, tv), granted(bob, bob_tv)
    result = alice.on_result("cam-1", cam.command(command, T0 + 101))
    assert (result.status, result.epoch) == (control.OK, 2) and alice.cameras["cam-1"].shares == ["bob"]
    shared = cam.feed(video(), T0 + 200)
    assert reasons(ring, shared) == reasons(bob_ring, shared) == ["ok"] * 3
    assert [b.slot for b in bob_ring.bindings()] == [1]
    # revoke: a new epoch without bob; his keys open nothing of it
    command = alice.revoke("cam-1", "bob", T0 + 300)
    ring = granted(alice, tv)
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
    ring = granted(alice, tv)
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
    alice_before = granted(alice, tv)
    alice.on_result("cam-1", cam.command(alice.release("cam-1", T0 + 20), T0 + 21))
    assert "cam-1" not in alice.cameras and not cam.core.state.claimed
    eve = Owner.new("eve", test_only=True)
    eve_tv = display_of(eve, "eve-tv")
    result = eve.on_result("cam-1", cam.pair(eve.pairing_offer("cam-1", T0 + 30), T0 + 31))
    assert result.status == control.OK and result.epoch == 2  # above every epoch the camera used
    after = cam.feed(video()[half:], T0 + 40) + cam.end(T0 + 50)
    eve_ring, alice_ring = granted(eve, eve_tv), granted(alice, tv)
    for segment in after:
        tag = verify_segment(segment, eve_ring)
        assert tag.owner == "eve" and tag.capture_ms >= T0 + 40   # captured after the pairing
        with pytest.raises(InvalidSegment) as info:
            verify_segment(segment, alice_ring)
        assert info.value.reason is Reason.NO_GRANT
    assert alice_ring.revoked_ids() == [("alice", "cam-1", 1)]
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


def test_the_owner_file_round_trips_without_showing_secrets(paired, tmp_path) -> None:
    alice, _cam, _tv = paired
    path = tmp_path / "alice.owner"
    alice.save(path)
    again = Owner.load(path)
    assert again.cameras["cam-1"].pairing == alice.cameras["cam-1"].pairing
    assert [b.key for b in again.keys()] == [b.key for b in alice.keys()]
    assert alice.cameras["cam-1"].pairing.hex() not in repr(alice) + repr(alice.cameras)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
