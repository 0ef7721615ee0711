"""The service as a key holder (docs/GRANTS.md section 10) and a worker's judging, without NATS:
owners' apps enroll a service and grant it their cameras through sealed grants; the service
judges each camera's segments, as the real agent core tags them, with that owner's keys alone;
a camera never granted is ``no_grant``; a removed service verifies nothing captured after its
last period; a released camera's epochs are dropped at once; a stream's record in the KV bucket
lets another worker continue its chain exactly; a key memo mixed up with another account's keys
costs a second look, never a segment."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import pytest

from host_sim import clips
from segbind.errors import StateError
from segbind.grants import Service
from segbind.owner import Owner, OwnerError
from segbind.service.judge import Judge, NeedState, Outcome, decode_record, encode_record
from segbind.service.keys import MixedUpKeys, ServiceKeys
from segbind.verdict import Reason
from tests.support.agent import CoreRunner

T0 = 1_795_000_000_000
PERIOD_S = 600


@lru_cache(maxsize=None)
def video() -> bytes:
    return clips.encode_pyav(frames=40, gop=5, width=128, height=96, seed=3)


class Household:
    """An owner's app with cameras running the real agent core."""

    def __init__(self, name: str, cameras: List[str]) -> None:
        self.owner = Owner.new(name, test_only=True, period_s=PERIOD_S, lead_ms=60_000)
        self.cams: Dict[str, CoreRunner] = {}
        for camera in cameras:
            cam = CoreRunner(camera).start(T0)
            self.owner.on_result(camera, cam.pair(self.owner.pairing_offer(camera, T0), T0 + 1))
            self.cams[camera] = cam

    def segments(self, camera: str, at_ms: int) -> List[bytes]:
        """Eight segments of real x264 video, captured from ``at_ms`` on."""
        cam = self.cams[camera]
        return cam.feed(video(), at_ms) + cam.end(at_ms + 1000)


def service_for(*households: Household, keys_class: type = ServiceKeys) -> Tuple[Service, ServiceKeys]:
    service = Service.new("recorder", test_only=True)
    keys = keys_class(service)
    for h in households:
        assert h.owner.enroll_service(service.card()) == service.enroll(h.owner.account.card())
        assert keys.take(h.owner.service_grants_for("recorder", T0)) == h.owner.name
    return service, keys


def judge_all(judge: Judge, items: List[Tuple[int, str, bytes]]) -> List[Outcome]:
    out = []
    for seq, camera, segment in items:
        try:
            out.append(judge.judge(seq, camera, segment))
        except NeedState as need:
            for account, cam in need.streams:
                judge.load(account, cam, None, 0)
            out.append(judge.judge(seq, camera, segment))
    return out


def test_each_owner_s_cameras_are_judged_with_its_keys_and_a_camera_never_granted_is_no_grant() -> None:
    alice, bob = Household("alice", ["cam-1", "cam-2"]), Household("bob", ["cam-3"])
    carol = Household("carol", ["cam-4"])
    _, keys = service_for(alice, bob)  # carol never enrolled the service
    assert keys.cameras() == ["cam-1", "cam-2", "cam-3"] and keys.accounts() == ["alice", "bob"]
    judge = Judge(keys)
    items = []
    for h, camera in ((alice, "cam-1"), (alice, "cam-2"), (bob, "cam-3"), (carol, "cam-4")):
        items += [(len(items) + i + 1, camera, s) for i, s in enumerate(h.segments(camera, T0 + 5000))]
    outcomes = judge_all(judge, items)
    by_camera: Dict[str, List[Outcome]] = {}
    for o in outcomes:
        by_camera.setdefault(o.camera, []).append(o)
    for camera, owner in (("cam-1", "alice"), ("cam-2", "alice"), ("cam-3", "bob")):
        assert [o.verdict.reason for o in by_camera[camera]] == [Reason.OK] * 8
        assert {o.account for o in by_camera[camera]} == {owner}
        assert all(o.verdict.tag is not None and o.verdict.tag.owner == owner for o in by_camera[camera])
        assert all(o.plaintext and o.plaintext != s for o, (_, _, s) in zip(by_camera[camera], items))
    assert [o.verdict.reason for o in by_camera["cam-4"]] == [Reason.NO_GRANT] * 8
    assert all(o.account == "" and o.plaintext is None for o in by_camera["cam-4"])


def test_a_segment_the_cloud_put_on_another_camera_s_subject_is_no_grant_there() -> None:
    alice, bob = Household("alice", ["cam-1"]), Household("bob", ["cam-3"])
    _, keys = service_for(alice, bob)
    judge = Judge(keys)
    stray = alice.segments("cam-1", T0 + 5000)
    outcomes = judge_all(judge, [(i + 1, "cam-3", s) for i, s in enumerate(stray)])  # routed to bob's camera
    assert {o.verdict.reason for o in outcomes} == {Reason.NO_GRANT}
    assert not any(o.verdict.accepted for o in outcomes)


def test_a_removed_service_verifies_nothing_captured_after_its_last_period() -> None:
    alice = Household("alice", ["cam-1"])
    _, keys = service_for(alice)
    alice.owner.remove_service("recorder")
    with pytest.raises(OwnerError):
        alice.owner.service_grants_for("recorder", T0 + 2 * PERIOD_S * 1000)  # nothing is sent to it again
    judge = Judge(keys)
    now = judge_all(judge, [(i + 1, "cam-1", s) for i, s in enumerate(alice.segments("cam-1", T0 + 5000))])
    later = judge_all(judge, [(i + 100, "cam-1", s)
                              for i, s in enumerate(alice.segments("cam-1", T0 + 3 * PERIOD_S * 1000))])
    assert all(o.verdict.accepted for o in now)
    assert {o.verdict.reason for o in later} == {Reason.NO_GRANT}


def test_a_released_camera_s_epochs_are_dropped_at_the_next_grants() -> None:
    alice = Household("alice", ["cam-1", "cam-2"])
    _, keys = service_for(alice)
    before = alice.segments("cam-2", T0 + 5000)
    alice.owner.forget("cam-2")  # reset by its button, or sold
    assert keys.take(alice.owner.service_grants_for("recorder", T0 + 6000)) == "alice"
    assert keys.cameras() == ["cam-1"]
    outcomes = judge_all(Judge(keys), [(i + 1, "cam-2", s) for i, s in enumerate(before)])
    assert {o.verdict.reason for o in outcomes} == {Reason.NO_GRANT}


def test_a_worker_that_takes_over_from_the_records_gives_the_verdicts_of_one_that_never_stopped() -> None:
    alice = Household("alice", ["cam-1", "cam-2"])
    _, keys = service_for(alice)
    one = alice.segments("cam-1", T0 + 5000)
    two = alice.segments("cam-2", T0 + 5000)
    # as the stream holds them: interleaved, with a redelivered copy and a lost one
    items = []
    for i in range(8):
        items += [(len(items) + 1, "cam-1", one[i]), (len(items) + 2, "cam-2", two[i])]
    items.insert(6, (len(items) + 1, "cam-1", one[1]))
    del items[9]
    items = [(n + 1, camera, s) for n, (_, camera, s) in enumerate(items)]
    expected = judge_all(Judge(keys), items)
    assert {o.verdict.reason for o in expected} == {Reason.OK, Reason.GAP, Reason.DUPLICATE}
    for cut in range(1, len(items)):
        first = Judge(keys)
        head = judge_all(first, items[:cut])
        assert [o.verdict for o in head] == [o.verdict for o in expected[:cut]]
        records = {c: rec for a, c, rec, _rev in first.dirty()}
        # the next worker reads the records and gets the partition again from an old checkpoint
        second = Judge(keys)
        for camera, rec in records.items():
            second.load("alice", camera, rec, 7)
        again = judge_all(second, items)
        applied = {c: decode_record(rec)[0] for c, rec in records.items()}
        assert [o.skipped for o in again] == [o.seq <= applied.get(o.camera, 0) for o in again]
        assert [o.verdict for o in again if not o.skipped] == [e.verdict for o, e in zip(again, expected)
                                                                if not o.skipped]
        assert not any(o.skipped for o in again[cut:])


def test_a_record_is_versioned_and_anything_else_is_refused() -> None:
    assert decode_record(encode_record(7, None)) == (7, None)
    assert decode_record(encode_record(2 ** 40, b"SBst")) == (2 ** 40, b"SBst")
    for bad in (b"", b"SBsv", b"SBsv\x02\x01", b"XBsv\x01\x01", b"SBsv\x01\x80"):
        with pytest.raises(StateError):
            decode_record(bad)
    alice = Household("alice", ["cam-1"])
    _, keys = service_for(alice)
    with pytest.raises(StateError):
        Judge(keys).load("alice", "cam-1", encode_record(3, b"SBst\x09"), 1)


def test_keys_mixed_up_in_the_memo_cost_a_second_look_never_a_segment() -> None:
    alice, bob = Household("alice", ["cam-1"]), Household("bob", ["cam-3"])
    _, keys = service_for(alice, bob, keys_class=MixedUpKeys)
    judge = Judge(keys)
    items = [(i + 1, "cam-1", s) for i, s in enumerate(alice.segments("cam-1", T0 + 5000))]
    items += [(i + 20, "cam-3", s) for i, s in enumerate(bob.segments("cam-3", T0 + 5000))]
    outcomes = judge_all(judge, items)
    assert [o.verdict.reason for o in outcomes] == [Reason.OK] * 16
    assert [o.account for o in outcomes] == ["alice"] * 8 + ["bob"] * 8
    assert judge.counts["rejudged"] == 2 and [o.rejudged for o in outcomes].count(True) == 2


def test_an_account_that_leaves_is_granted_nothing_and_a_message_that_came_first_waits_for_enrollment() -> None:
    alice = Household("alice", ["cam-1"])
    service = Service.new("recorder", test_only=True)
    keys = ServiceKeys(service)
    alice.owner.enroll_service(service.card())
    early = alice.owner.service_grants_for("recorder", T0)
    assert keys.take(early) is None  # the provider has not pinned alice's card yet
    service.enroll(alice.owner.account.card())
    assert keys.enrolled(service.accounts) == ["alice"] and keys.cameras() == ["cam-1"]
    service.leave("alice")
    assert keys.enrolled(service.accounts) == ["alice"] and keys.cameras() == []
    outcome: Optional[Outcome] = judge_all(Judge(keys), [(1, "cam-1", alice.segments("cam-1", T0 + 5000)[0])])[0]
    assert outcome is not None and outcome.verdict.reason is Reason.NO_GRANT


def test_messages_that_wait_for_enrollment_out_of_order_leave_the_newest_serial_in_force() -> None:
    """An app may send two grants messages from two threads (a push at enrollment, another on a
    pairing result) and the second serial may come first: both wait, and at enrollment the
    newest serial's keys are the ones held, as if they had come in order."""
    alice = Household("alice", ["cam-1"])
    service = Service.new("recorder", test_only=True)
    keys = ServiceKeys(service)
    alice.owner.enroll_service(service.card())
    older = alice.owner.service_grants_for("recorder", T0)          # serial 1: cam-1
    cam = CoreRunner("cam-2").start(T0)
    alice.owner.on_result("cam-2", cam.pair(alice.owner.pairing_offer("cam-2", T0), T0 + 1))
    newer = alice.owner.service_grants_for("recorder", T0 + 2)      # serial 2: cam-1 and cam-2
    assert keys.take(newer) is None and keys.take(older) is None   # not enrolled yet; newer came first
    service.enroll(alice.owner.account.card())
    assert keys.enrolled(service.accounts) == ["alice"]
    assert keys.cameras() == ["cam-1", "cam-2"]
