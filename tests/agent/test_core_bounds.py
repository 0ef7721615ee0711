"""The agent core at the edges (issue 20, item 3): every field at its bounds, nothing escapes an
entry point, a reset always leaves a camera that pairs, spent offers stay spent, stream ids and
seqs never repeat under one key, and stills (FORMAT.md 10). The same rules against the real
agent process: tests/agent/test_agent_bounds.py."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind import Epoch, StreamVerifier, verify_segment
from segbind.errors import InvalidSegment
from segbind.owner import Owner
from segbind_agent.core import (
    MAX_SPENT,
    AgentCore,
    BindingState,
    StateError,
    check_rollback,
    first_access_unit,
    redact,
    spent_digest,
    state_after_reset,
)
from segbind_core import control
from segbind_core.keys import command_key
from segbind_core.tag import MAX_EPOCH, MAX_STREAM_ID, MAX_U32, MAX_U64, decode_tag
from tests.support.agent import CoreRunner, raw_command, raw_offer, ring_of
from tests.support.tagged import body_of, keyring_of

T0 = 1_795_000_000_000
CAM = "cam-1"


@lru_cache(maxsize=None)
def video() -> bytes:
    """Real libx264, an IDR every 5 frames: a segment every 200 ms."""
    return clips.encode_pyav(frames=20, gop=5, width=128, height=96, seed=5)


def paired(owner: str = "alice", now_ms: int = T0, period_s: int = 1800, **kw):
    app = Owner.new(owner, test_only=True)
    cam = CoreRunner(CAM, **kw).start(now_ms)
    result = app.on_result(CAM, cam.pair(app.pairing_offer(CAM, now_ms, period_s=period_s), now_ms + 1))
    assert result.status == control.OK
    return app, cam


def key_of(app: Owner) -> bytes:
    return command_key(app.cameras[CAM].pairing, app.name, CAM)


def last_status(cam: CoreRunner) -> str:
    return control.decode_result(cam.results[-1])[0].status


def tags(segments: List[bytes]):
    return [decode_tag(body_of(s))[0] for s in segments]


# -- the seller's scenario, and the reset ---------------------------------------------------------

def test_a_release_after_the_top_epoch_leaves_a_camera_a_buyer_pairs() -> None:
    """The issue's scenario: rotate to the top epoch, release; the buyer's pairing works (epoch 1),
    and so does every start after it."""
    seller, cam = paired("seller")
    top = raw_command(key_of(seller), control.ROTATE, CAM, "seller", 1, MAX_EPOCH)
    assert seller.on_result(CAM, cam.command(top, T0 + 2)).epoch == MAX_EPOCH
    assert cam.feed(video(), T0 + 10)                        # tagged under the top epoch
    over = raw_command(key_of(seller), control.ROTATE, CAM, "seller", 2, MAX_EPOCH + 1)
    assert last_status(cam.run(cam.core.command(over, T0 + 11))) == control.OUT_OF_RANGE
    seller.cameras[CAM].epochs[MAX_EPOCH], seller.cameras[CAM].counter = [], 2   # what it sent by hand
    seller.on_result(CAM, cam.command(seller.release(CAM, T0 + 12), T0 + 13))
    assert not cam.core.state.claimed and cam.core.state.epoch_hwm == 0
    buyer = Owner.new("buyer", test_only=True)
    sold = buyer.on_result(CAM, cam.pair(buyer.pairing_offer(CAM, T0 + 20), T0 + 21))
    assert (sold.status, sold.epoch) == (control.OK, 1)
    # the state it wrote is one a restart takes, and the restarted camera tags for the buyer
    state = BindingState.from_json(json.loads(cam.core.state.encode()), CAM)
    again = CoreRunner(CAM, state=state).start(T0 + 30)
    segments = again.feed(video(), T0 + 40) + again.end(T0 + 50)
    ring = ring_of(buyer, around_ms=T0)
    assert [str(v.reason) for v in map(StreamVerifier(ring).verify, segments)] == ["ok"] * len(segments)
    assert not any("failed" in line for line in cam.logs + again.logs)


def commands():
    """A command with every field anywhere near its bounds (authentic: the owner's app, buggy)."""
    edge = lambda low, high: st.one_of(st.sampled_from(sorted({max(0, low - 1), low, low + 1, high - 1, high,  # noqa: E731
                                                               high + 1})), st.integers(0, MAX_U64))
    return st.tuples(st.sampled_from([control.ROTATE, control.ROTATE, control.RELEASE]),
                     edge(0, control.MAX_COUNTER), edge(1, MAX_EPOCH), edge(60, 86400),
                     edge(0, control.MAX_TIME_MS), st.sampled_from([0, 1, 7, 8]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands(), max_size=8), st.booleans())
def test_pairable_after_any_commands_and_a_reset(sequence, restart: bool) -> None:
    """Whatever authenticated commands came before (every field at or past its bounds), the core
    never raises, its state always loads again, and after the reset button a new owner pairs."""
    app, cam = paired()
    key = key_of(app)
    for op, counter, epoch, period_s, issued_ms, count in sequence:
        wire = raw_command(key, op, CAM, "alice", counter, epoch, period_s=period_s, issued_ms=issued_ms,
                           shares=["s%d" % i for i in range(count)] if op == control.ROTATE else ())
        cam.run(cam.core.command(wire, T0 + 5))
        BindingState.from_json(json.loads(cam.core.state.encode()), CAM)   # never a state it cannot start from
    if restart:
        cam = CoreRunner(CAM, state=BindingState.from_json(json.loads(cam.core.state.encode()), CAM)).start(T0 + 6)
    cam.run(cam.core.physical_reset(T0 + 7))
    assert not cam.core.state.claimed
    buyer = Owner.new("buyer", test_only=True)
    result = buyer.on_result(CAM, cam.pair(buyer.pairing_offer(CAM, T0 + 8), T0 + 9))
    assert (result.status, result.epoch) == (control.OK, 1)
    assert cam.core.counts["errors"] == 0 and not any("failed" in line for line in cam.logs)


# -- nothing escapes an entry point ---------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_no_input_makes_an_entry_point_raise(offer: bytes, command: bytes) -> None:
    app, cam = paired()
    for payload in (offer, control.PAIRING_MAGIC + offer):
        cam.run(cam.core.pair(payload, T0 + 3))
    for payload in (command, bytes((3, 0x43)) + command):
        cam.run(cam.core.command(payload, T0 + 4))
    cam.run(cam.core.event(command.decode("latin-1"), T0 + 5))
    cam.run(cam.core.encoder_bytes(offer + command, T0 + 6))
    assert cam.core.state.owner == "alice"


def test_an_error_inside_an_entry_point_changes_nothing_and_logs_no_key(monkeypatch) -> None:
    """Defence in depth: whatever raises inside (here key derivation, made to fail), the entry
    point returns one log line, the state stays as it was, nothing is published or written."""
    import segbind_agent.core as core_mod

    app, cam = paired()
    secret = app.cameras[CAM].pairing

    def broken(*_args, **_kw):
        raise ValueError("derivation failed for %s" % secret.hex())

    before = cam.core.state.to_json()
    monkeypatch.setattr(core_mod.Epoch, "of_pairing", classmethod(lambda cls, *a, **k: broken()))
    cam.feed(video()[:len(video()) // 2], T0 + 2)              # a segment in progress
    actions = cam.core.command(app.rotate(CAM, [], T0 + 2), T0 + 3)
    assert [type(a).__name__ for a in actions] == ["Log"]
    assert cam.core.state.to_json() == before and cam.core.counts["errors"] == 1
    assert "command failed and changed nothing: ValueError: derivation failed for <hex>" == actions[0].message
    monkeypatch.undo()
    # the tagger itself failing: that segment is dropped (fail closed), the next ones go on
    from segbind_core.tagger import Tagger
    monkeypatch.setattr(Tagger, "tag", lambda *a, **k: broken())
    actions = cam.core.encoder_bytes(video()[len(video()) // 2:], T0 + 4)
    assert not [a for a in actions if type(a).__name__ in ("Store", "Persist", "Publish")]
    assert any("segment not tagged (dropped): ValueError" in a.message for a in actions)
    assert secret.hex() not in " ".join(a.message for a in actions)
    monkeypatch.undo()
    assert cam.feed(video(), T0 + 5)
    assert app.on_result(CAM, cam.command(app.rotate(CAM, [], T0 + 5), T0 + 6)).status == control.OK


def test_redact_hides_every_long_hex_run() -> None:
    assert redact("key 00112233445566778899aabbccddeeff here") == "key <hex> here"
    assert redact("stream 1795000000000 seq 12 id abc") == "stream 1795000000000 seq 12 id abc"
    assert redact("AABBCCDDEEFF00112233") == "<hex>"


# -- the state: every field bounded, and a reset always recovers ---------------------------------

def test_a_state_out_of_bounds_is_refused_and_the_reset_button_recovers() -> None:
    app, cam = paired()
    good = cam.core.state.to_json()
    for field, value in (("epoch", MAX_EPOCH + 1), ("epoch_hwm", MAX_EPOCH + 1), ("counter", 1 << 53),
                         ("stream_id", MAX_STREAM_ID + 1), ("period_s", 59), ("period_s", 86401),
                         ("epoch", 0), ("owner", "a/b"), ("shares", ["x"] * 8), ("spent", ["zz"]),
                         ("last_result", "{}"), ("generation", -1), ("epoch", True)):
        with pytest.raises(StateError):
            BindingState.from_json(dict(good, **{field: value}), CAM)
    # whatever the file says, the reset leaves a state that pairs (the daemon reads it leniently)
    fresh = state_after_reset(CAM, 7, None, [spent_digest(b"x" * 32)])
    assert fresh.generation == 8 and fresh.spent == [spent_digest(b"x" * 32)]
    again = CoreRunner(CAM, state=fresh).start(T0)
    buyer = Owner.new("buyer", test_only=True)
    assert buyer.on_result(CAM, again.pair(buyer.pairing_offer(CAM, T0), T0)).epoch == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 1 << 64) | st.text(max_size=70),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_state_file_is_refused_in_one_line_or_starts(data) -> None:
    """A state file with any value in any field: StateError (one line: the daemon exits 2, the reset
    button recovers), or a state a core starts from, tags with and takes commands in."""
    app, cam = paired()
    good = cam.core.state.to_json()
    state = dict(good)
    for field in data.draw(st.lists(st.sampled_from(sorted(good)), min_size=1, max_size=3)):
        state[field] = data.draw(st.one_of(JSON, st.sampled_from([good[field], 0, 1, MAX_EPOCH, 1 << 53, None])))
    try:
        loaded = BindingState.from_json(state, CAM)
    except StateError as exc:
        assert "\n" not in str(exc)
        return
    runner = CoreRunner(CAM, state=loaded).start(T0 + 10)
    runner.feed(video(), T0 + 20)
    runner.run(runner.core.command(app.rotate(CAM, [], T0 + 30), T0 + 31))
    runner.run(runner.core.physical_reset(T0 + 40))
    assert runner.core.counts["errors"] == 0, runner.logs


def test_a_format_2_state_starts_unclaimed_keeping_its_stream_order() -> None:
    old = {"segbind": "agent-state", "version": 2, "camera": CAM, "pairing": "00" * 32, "owner": "alice",
           "epoch": 7, "shares": [], "epoch_hwm": 9, "counter": 3, "stream_id": 1234, "generation": 40,
           "last_command": "", "last_result": "", "spent": ["0123456789abcdef"]}
    state = BindingState.from_json(old, CAM)
    assert (state.owner, state.pairing, state.epoch, state.epoch_hwm) == (None, None, 0, 0)
    assert (state.stream_id, state.generation, state.spent) == (1234, 40, ["0123456789abcdef"])
    assert check_rollback(state, 40, CAM) is state


# -- stream ids and seqs: never the same counter block twice under one key ------------------------

def test_the_last_stream_id_below_2_48_and_then_none() -> None:
    app, cam = paired()
    state = cam.core.state.copy()
    state.stream_id = MAX_STREAM_ID - 1
    at_edge = CoreRunner(CAM, state=state).start(T0)
    assert at_edge.core.state.stream_id == MAX_STREAM_ID and at_edge.persisted[-1].stream_id == MAX_STREAM_ID
    segments = at_edge.feed(video(), T0 + 10)
    assert segments and {t.stream_id for t in tags(segments)} == {MAX_STREAM_ID}
    # the next start has no id left under this pairing: it tags nothing, says so, and never raises
    used_up = CoreRunner(CAM, state=at_edge.core.state.copy()).start(T0 + 20)
    assert used_up.core.tagger is None and "no stream id" in used_up.core.halted
    assert used_up.feed(video(), T0 + 30) == [] and used_up.core.counts["errors"] == 0
    assert json.loads(used_up.core.status_json("online", T0))["halted"].startswith("no stream id")
    # the owner's commands are still answered; a release or the button ends it, and a new
    # pairing (fresh keys) starts its stream order again from the clock
    assert app.on_result(CAM, used_up.command(app.rotate(CAM, [], T0 + 40), T0 + 41)).status == control.OK
    used_up.run(used_up.core.physical_reset(T0 + 50))
    buyer = Owner.new("buyer", test_only=True)
    sold = buyer.on_result(CAM, used_up.pair(buyer.pairing_offer(CAM, T0 + 60), T0 + 61))
    assert (sold.status, sold.stream_id) == (control.OK, T0 + 61)
    assert used_up.feed(video(), T0 + 70) and not used_up.core.halted


def test_a_stream_whose_seqs_ran_out_continues_as_a_new_stream_persisted_first() -> None:
    app, cam = paired()
    first = cam.feed(video(), T0 + 10)
    cam.core.tagger.seq = MAX_U32 + 1   # as if 2^32 segments had been tagged
    persisted = len(cam.persisted)
    later = cam.feed(video(), T0 + 20)
    assert len(cam.persisted) == persisted + 1
    new_id = cam.persisted[-1].stream_id
    assert new_id > tags(first)[0].stream_id and [t.stream_id for t in tags(later)] == [new_id] * len(later)
    assert [t.seq for t in tags(later)] == list(range(len(later)))


def test_restart_crash_and_restore_never_repeat_a_counter_block() -> None:
    """(key id, stream id, seq) is unique across a restart, a restart whose new stream id was never
    written (a crash right after choosing it), a rotation, and a state restored from the copy the
    counter allows; a state older than the counter is refused."""
    app, cam = paired()
    seen = tags(cam.feed(video(), T0 + 10) + cam.end(T0 + 11))
    state = cam.core.state.copy()
    # a restart
    second = CoreRunner(CAM, state=state.copy()).start(T0 + 12)
    seen += tags(second.feed(video(), T0 + 13) + second.end(T0 + 14))
    # a crash right after choosing a stream id: its Persist never ran, so the state on disk is
    # still ``second``'s; the next start orders after it whatever the clock says
    crashed = CoreRunner(CAM, state=second.core.state.copy())
    crashed.core.start(T0 - 10 ** 6)            # actions dropped: the power went
    third = CoreRunner(CAM, state=second.core.state.copy()).start(T0 - 10 ** 6)
    assert third.core.state.stream_id == second.core.state.stream_id + 1
    seen += tags(third.feed(video(), T0 + 15))
    app.on_result(CAM, third.command(app.rotate(CAM, [], T0 + 16), T0 + 17))
    seen += tags(third.feed(video(), T0 + 18) + third.end(T0 + 19))
    # a restore: the latest copy (the counter's generation) runs and orders after; an older is refused
    latest = BindingState.from_json(json.loads(third.core.state.encode()), CAM)
    restored = CoreRunner(CAM, state=check_rollback(latest, third.core.state.generation, CAM)).start(T0 + 20)
    seen += tags(restored.feed(video(), T0 + 21))
    with pytest.raises(StateError, match="older copy"):
        check_rollback(state, third.core.state.generation, CAM)
    blocks = [(bytes(t.key_id), t.stream_id, t.seq) for t in seen]
    assert len(blocks) == len(set(blocks)) > 12
    streams = [t.stream_id for t in seen]
    assert streams == sorted(streams)


# -- spent offers ---------------------------------------------------------------------------------

def test_spent_offers_survive_a_wiped_state_through_the_counters_store() -> None:
    alice = Owner.new("alice", test_only=True)
    cam = CoreRunner(CAM).start(T0)
    offer = alice.pairing_offer(CAM, T0)
    assert control.decode_result(cam.pair(offer, T0 + 1))[0].status == control.OK
    assert cam.persisted[-1].spent[-1] == cam.spent[-1]          # spent in both stores
    spent = list(cam.spent)
    # the state is wiped; the reset button; the counter's store still knows the offer
    wiped = CoreRunner(CAM, state=state_after_reset(CAM, 50, None, spent), spent=spent).start(T0 + 2)
    again = control.open_result(key_of(alice), CAM, wiped.pair(offer, T0 + 3))
    assert (again.status, again.op) == (control.REPLAY, control.PAIR) and not wiped.core.state.claimed
    # and a state without it (an old copy) is told by the store too
    blank = CoreRunner(CAM, spent=spent).start(T0 + 4)
    assert control.decode_result(blank.pair(offer, T0 + 5))[0].status == control.REPLAY
    fresh = Owner.new("bob", test_only=True)
    assert fresh.on_result(CAM, blank.pair(fresh.pairing_offer(CAM, T0 + 6), T0 + 7)).status == control.OK


def test_the_last_eight_offers_are_remembered() -> None:
    cam = CoreRunner(CAM).start(T0)
    offers = []
    for i in range(MAX_SPENT + 1):
        app = Owner.new("o%d" % i, test_only=True)
        offers.append((app, app.pairing_offer(CAM, T0 + i)))
        assert app.on_result(CAM, cam.pair(offers[-1][1], T0 + i)).status == control.OK
        cam.run(cam.core.physical_reset(T0 + i))
    assert len(cam.core.state.spent) == MAX_SPENT
    for app, offer in offers[1:]:
        assert app.on_result(CAM, cam.pair(offer, T0 + 100)).status == control.REPLAY
    app, offer = offers[0]   # the ninth back: forgotten, and stopped by its expiry instead
    assert app.on_result(CAM, cam.pair(offer, T0 + 11 * 60 * 1000)).status == control.EXPIRED


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([0, 1, 2, 10 ** 12, control.MAX_TIME_MS, control.MAX_TIME_MS + 1, MAX_U64]),
       st.sampled_from([0, 59, 60, 61, 1800, 86399, 86400, 86401, MAX_U64]),
       st.sampled_from(["alice", "", "x" * 32, "x" * 33, "a/b", "nul\x00"]))
def test_every_offer_field_at_its_bounds(expires_ms: int, period_s: int, owner: str) -> None:
    cam = CoreRunner(CAM).start(T0)
    secret = bytes(range(32))
    cam.run(cam.core.pair(raw_offer(owner, CAM, secret, expires_ms, period_s), 10 ** 12))
    owner_ok = owner in ("alice", "x" * 32)
    fits = expires_ms <= control.MAX_TIME_MS and 60 <= period_s <= 86400
    if not owner_ok:     # no key can be made for that owner: refused locally, an event and a log line
        assert cam.results == [] and not cam.core.state.claimed
        event = json.loads(cam.events[-1])
        assert event["event"] == "pairing_refused" and event["status"] in (control.MALFORMED, control.OUT_OF_RANGE)
        return
    result = control.open_result(command_key(secret, owner, CAM), CAM, cam.results[-1])
    expected = control.OK if fits and expires_ms >= 10 ** 12 else (
        control.OUT_OF_RANGE if not fits else control.EXPIRED)
    assert result.status == expected and cam.core.state.claimed == (expected == control.OK)
    if expected == control.OK:
        assert (cam.core.state.epoch, cam.core.state.period_s) == (1, period_s)


# -- stills ---------------------------------------------------------------------------------------

def test_an_event_makes_a_still_of_the_last_random_access_point() -> None:
    app, cam = paired()
    segments = cam.feed(video(), T0 + 10)
    stills = cam.event("motion", T0 + 20)
    assert len(stills) == 1
    ring = ring_of(app, around_ms=T0)
    info = verify_segment(stills[0], ring)
    last = tags(segments)[-1]
    assert info.still and info.pictures == 1 and (info.stream_id, info.seq) == (last.stream_id, last.seq)
    assert info.capture_ms == last.capture_ms and (info.owner, info.epoch) == ("alice", 1)
    still_tag = tags(stills)[0]
    assert still_tag.link == b"\xff" * 8
    # its keystream is not the segment's (domain 01): the same picture, other ciphertext
    head = segments[-1][:len(stills[0])]
    assert stills[0][-200:] not in head
    event = json.loads(cam.events[-1])
    assert event["event"] == "camera_event" and event["kind"] == "motion"
    assert event["still"] == {"stream_id": last.stream_id, "seq": last.seq, "capture_ms": last.capture_ms}
    # a stream verifier judges a still alone: the stream goes on unbroken around it
    verifier = StreamVerifier(ring)
    reasons = [str(verifier.verify(s).reason) for s in segments[:-1] + stills + segments[-1:]]
    assert reasons == ["ok"] * (len(segments) + 1)
    # one still per segment: a second event names the same still
    assert cam.event("doorbell", T0 + 21) == [] and json.loads(cam.events[-1])["still"]["seq"] == last.seq


def test_a_still_waits_for_the_next_random_access_point_and_never_crosses_an_owner() -> None:
    app, cam = paired()
    assert cam.event("motion", T0 + 5) == []              # nothing tagged yet: the next one
    first = cam.feed(video(), T0 + 10)
    assert len(cam.stills) == 1 and tags(cam.stills)[0].seq == tags(first)[0].seq
    cam.run(cam.core.command(app.release(CAM, T0 + 20), T0 + 21))
    assert cam.event("motion", T0 + 22) == [] and "not claimed" in cam.logs[-1]
    buyer = Owner.new("buyer", test_only=True)
    buyer.on_result(CAM, cam.pair(buyer.pairing_offer(CAM, T0 + 30), T0 + 31))
    assert cam.event("motion", T0 + 32) == []             # alice's pictures are never the buyer's still
    later = cam.feed(video(), T0 + 40)
    assert len(cam.stills) == 2
    info = verify_segment(cam.stills[-1], ring_of(buyer, around_ms=T0))
    assert info.owner == "buyer" and info.seq == tags(later)[0].seq
    with pytest.raises(InvalidSegment):
        verify_segment(cam.stills[-1], keyring_of(Epoch.of_pairing(app.cameras[CAM].pairing, "alice", CAM, 1, [])
                                                  if CAM in app.cameras else Epoch.of_pairing(bytes(32), "alice",
                                                                                               CAM, 1, [])))


def test_event_kinds_are_bounded() -> None:
    app, cam = paired()
    cam.feed(video(), T0 + 10)
    for kind in ("", "x" * 33, "Motion", "a b", "é", "a/b"):
        assert cam.event(kind, T0 + 20) == [] and "event refused" in cam.logs[-1]
    assert len(cam.event("x" * 32, T0 + 21)) == 1


def test_first_access_unit_is_the_random_access_point_with_its_parameter_sets() -> None:
    cam = CoreRunner(CAM)
    segments = [s for s in cam.core.segmenter.push(video(), 0) + cam.core.segmenter.finish() if hasattr(s, "data")]
    data = segments[0].data
    size, units = first_access_unit(data, segments[0].codec)
    assert 0 < size < len(data) and data[size:size + 5] == b"\x00\x00\x00\x01\x09"
    kinds = [data[i + 4] & 0x1F for i in range(size - 4) if data[i:i + 4] == b"\x00\x00\x00\x01"]
    assert kinds[0] == 9 and 7 in kinds and 8 in kinds and 5 in kinds and len(kinds) == units


def test_a_core_never_built_on_another_cameras_state() -> None:
    with pytest.raises(StateError):
        BindingState.from_json(dict(BindingState("cam-2").to_json()), CAM)
    with pytest.raises(control.ControlError):
        AgentCore("a/b", BindingState("a/b"))


def test_an_h265_camera_makes_its_stills_too() -> None:
    app = Owner.new("alice", test_only=True)
    cam = CoreRunner(CAM).start(T0)
    app.on_result(CAM, cam.pair(app.pairing_offer(CAM, T0), T0 + 1))
    segments = cam.feed(clips.encode_pyav_h265(frames=20, gop=5, width=128, height=96), T0 + 10)
    assert segments
    stills = cam.event("doorbell", T0 + 20)
    ring = ring_of(app, around_ms=T0)
    info = verify_segment(stills[0], ring)
    assert info.still and info.codec == 2 and info.seq == tags(segments)[-1].seq
    data = cam.core._head.data
    assert (data[4] >> 1) & 0x3F == 35 and {32, 33, 34} <= {(data[i + 4] >> 1) & 0x3F for i in range(len(data) - 4)
                                                           if data[i:i + 4] == b"\x00\x00\x00\x01"}
