"""A stream verifier's state, exported and imported (``StreamVerifier.export_state`` and
``import_state``): a verifier restored from it gives exactly the verdicts of one that never
stopped, whatever arrived before and after; the bytes are versioned, bounded, hold no key, and
anything else is refused with StateError (docs/SERVICE.md: a worker that takes a camera over)."""

from __future__ import annotations

from functools import lru_cache
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segbind import Keyring, StreamVerifier
from segbind.errors import StateError
from segbind.verifier import REPLAY_WINDOW, STATE_MAX_BYTES, STATE_VERSION
from tests.support.tagged import PAIRING_CAM2, PAIRING_EVE, T0, epoch, flip_mac_bit, keyring_of, tag_stream

LONG = 3 * REPLAY_WINDOW  # segments in the long stream: the window fills, slides and is pruned


@lru_cache(maxsize=None)
def sources() -> dict:
    """Segments by source: alice's cam-1 (a long stream), its next stream after a restart, its
    next epoch, alice's cam-2, eve's claim of cam-1 (not alice's)."""
    return {
        "a": tuple(tag_stream(count=LONG)),
        "new": tuple(tag_stream(stream_id=T0 + 60_000, count=12, end=True)),
        "e2": tuple(tag_stream(epoch(number=2), start=LONG, count=8)),
        "cam2": tuple(tag_stream(epoch(camera="cam-2", pairing=PAIRING_CAM2, shares=()), count=12)),
        "eve": tuple(tag_stream(epoch(owner="eve", pairing=PAIRING_EVE, shares=()), count=12)),
    }


def ring() -> Keyring:
    return keyring_of(epoch(), epoch(number=2), epoch(camera="cam-2", pairing=PAIRING_CAM2, shares=()))


def segment(source: str, index: int, mark: str) -> bytes:
    data = sources()[source][index % len(sources()[source])]
    return flip_mac_bit(data) if mark == "^" else data


def run(deliveries: List[Tuple[str, int, str]], cuts: Tuple[int, ...] = (), **options: object) -> List[tuple]:
    """The verdicts of one verifier; at each cut, every stream's state goes through bytes into a
    new verifier, which carries on."""
    verifier = StreamVerifier(ring(), **options)  # type: ignore[arg-type]
    out = []
    for i, (source, index, mark) in enumerate(deliveries):
        if i in cuts:
            again = StreamVerifier(ring(), **options)  # type: ignore[arg-type]
            for owner, camera in verifier.streams():
                data = verifier.export_state(owner, camera)
                assert data is not None and len(data) <= STATE_MAX_BYTES
                again.import_state(owner, camera, data)
            verifier = again
        verdict = verifier.verify(segment(source, index, mark))
        out.append((verdict.reason, verdict.detail, verdict.tag, verdict.missing,
                    verifier.verified if verdict.accepted else None))
    if options.get("recording"):
        out.append(("finish", verifier.finish()))
    return out


def walk(steps: List[Tuple[str, int, str]]) -> List[Tuple[str, int, str]]:
    """Deliveries of mostly advancing seqs of the long stream, with everything else mixed in."""
    at, out = 0, []
    for source, jump, mark in steps:
        if source == "a":
            at = max(0, min(LONG - 1, at + jump))
            out.append(("a", at, mark))
        else:
            out.append((source, abs(jump), mark))
    return out


STEPS = st.lists(st.tuples(st.sampled_from(["a"] * 6 + ["new", "e2", "cam2", "eve"]),
                           st.one_of(st.just(1), st.integers(-140, 140), st.integers(0, 3),
                                     st.sampled_from([-REPLAY_WINDOW, -REPLAY_WINDOW - 1, REPLAY_WINDOW])),
                           st.sampled_from(["", "", "", "^"])), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, cuts=st.sets(st.integers(0, 70), max_size=6), recording=st.booleans())
def test_a_restored_verifier_gives_the_verdicts_of_one_that_never_stopped(steps, cuts, recording) -> None:
    deliveries = walk(steps)
    assert run(deliveries, tuple(sorted(cuts)), recording=recording) == run(deliveries, recording=recording)


def test_through_a_long_stream_with_gaps_late_copies_and_replays_cut_at_every_segment() -> None:
    # 21 is the oldest seq the window holds once 149 arrived
    seqs = list(range(0, 150)) + [21, 140, 20, 149, 151, 150, 23] + list(range(152, 300, 3)) + [298, 297, 10]
    deliveries = [("a", s, "") for s in seqs] + [("new", i, "") for i in range(3)] + [("a", 299, "")]
    expected = run(deliveries)
    assert {v[0] for v in expected} >= {"ok", "gap", "late", "duplicate", "replay", "chain_break"}
    for cut in range(len(deliveries)):
        assert run(deliveries, (cut,)) == expected, "cut at %d" % cut


def test_the_bytes_are_bounded_versioned_and_hold_no_key() -> None:
    verifier = StreamVerifier(ring())
    for data in sources()["a"]:
        assert verifier.verify(data).accepted
    state = verifier.export_state("alice", "cam-1")
    assert state is not None and state[:4] == b"SBst" and state[4] == STATE_VERSION
    assert len(state) <= STATE_MAX_BYTES and len(state) < 50 * (REPLAY_WINDOW + 1) + 64
    for binding in ring().bindings():
        assert binding.key not in state and binding.content_key not in state
    assert verifier.export_state("alice", "cam-9") is None and verifier.export_state("eve", "cam-1") is None
    verifier.import_state("alice", "cam-1", None)
    assert verifier.streams() == []


def test_anything_but_a_state_this_version_wrote_is_refused_and_changes_nothing() -> None:
    verifier = StreamVerifier(ring())
    for data in sources()["a"][:200]:
        verifier.verify(data)
    state = verifier.export_state("alice", "cam-1")
    assert state is not None
    target = StreamVerifier(ring())
    for bad in (b"", b"SBst", b"XBst\x01" + state[5:], state[:4] + bytes([STATE_VERSION + 1]) + state[5:],
                state + b"\x00", state[:-1], state + bytes(STATE_MAX_BYTES)):
        with pytest.raises(StateError):
            target.import_state("alice", "cam-1", bad)
    for cut in range(0, len(state), 7):  # every truncation
        with pytest.raises(StateError):
            target.import_state("alice", "cam-1", state[:cut])
    assert target.streams() == []
    with pytest.raises(StateError):
        target.import_state("alice", "cam-1", "text")  # type: ignore[arg-type]


@lru_cache(maxsize=None)
def a_state() -> bytes:
    verifier = StreamVerifier(ring())
    for index in list(range(140)) + [150, 145]:  # a gap, then a late one: a link written out
        verifier.verify(sources()["a"][index])
    return verifier.export_state("alice", "cam-1") or b""


@settings(max_examples=300, deadline=None)
@given(at=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_a_flipped_bit_is_refused_or_read_never_an_other_exception(at: int, bit: int) -> None:
    state = bytearray(a_state())
    state[at % len(state)] ^= 1 << bit
    target = StreamVerifier(ring())
    try:
        target.import_state("alice", "cam-1", bytes(state))
    except StateError:
        return
    again: Optional[bytes] = target.export_state("alice", "cam-1")  # what was read is a state
    assert again is not None and len(again) <= STATE_MAX_BYTES
