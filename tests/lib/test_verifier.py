"""The verifier against an adversary, on real x264 segments.

Streams are written in a small language (as in Axis's signed-video tests):
the segments a viewer receives, in arrival order, separated by spaces.

    3      segment 3 of the camera's stream, as tagged
    3-     segment 3 with its tag stripped
    3*     segment 3 with one bit of its video flipped
    3^     segment 3 with one bit of its MAC flipped
    3@cam2 segment 3 of another camera of the same owner (all granted)
    3@new  segment 3 of the stream the camera began after a restart
    3@bob  segment 3 tagged by the same camera for another owner

``run`` returns the reasons, one word per segment, to compare with a string.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind import (
    Binding,
    InvalidSegment,
    Keyring,
    Reason,
    StreamVerifier,
    TimeWindow,
    derive_binding_key,
    verify_segment,
)
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import cut
from segbind_core.sei import build_sei_nal, is_segbind_sei, segbind_payload
from segbind_core.tag import decode_tag
from segbind_core.tagger import Tagger

SECRET = os.urandom(32)
SECRET_2 = os.urandom(32)
T0 = 1_795_000_000_000


def _key(owner: str, camera: str, epoch: int, secret: bytes = SECRET) -> bytes:
    return derive_binding_key(secret, owner, camera, epoch)


@lru_cache(maxsize=None)
def raw_segments() -> Tuple[bytes, ...]:
    """Eight untagged segments of real libx264 video (an IDR every 5 frames)."""
    video = clips.encode_pyav(frames=40, gop=5, width=128, height=96, seed=3)
    return tuple(segment.data for segment in cut(video))


def tag_stream(owner: str = "alice", camera: str = "cam-1", epoch: int = 1, stream_id: int = T0,
               secret: bytes = SECRET, count: int = 8) -> List[bytes]:
    tagger = Tagger(_key(owner, camera, epoch, secret), owner, camera, epoch, stream_id)
    out = []
    for i in range(count):
        raw = raw_segments()[i % len(raw_segments())]
        out.append(tagger.tag_annexb(raw, annexb_units(raw), T0 + 1000 * i)[0])
    return out


@lru_cache(maxsize=None)
def streams() -> Dict[str, Tuple[bytes, ...]]:
    return {
        "": tuple(tag_stream()),
        "cam2": tuple(tag_stream(camera="cam-2", secret=SECRET_2)),
        "new": tuple(tag_stream(stream_id=T0 + 60_000)),
        "bob": tuple(tag_stream(owner="bob")),
    }


def alice_keyring() -> Keyring:
    return Keyring([Binding("alice", "cam-1", 1, _key("alice", "cam-1", 1)),
                    Binding("alice", "cam-2", 1, _key("alice", "cam-2", 1, SECRET_2))])


def tag_unit(segment: bytes) -> Tuple[int, int]:
    view = memoryview(segment)
    return next(u for u in annexb_units(segment) if is_segbind_sei(view[u[0]:u[1]]))


def replace_tag_body(segment: bytes, edit) -> bytes:
    """The segment with its SEI rebuilt around ``edit(body)`` (emulation prevention redone)."""
    s, e = tag_unit(segment)
    body = segbind_payload(memoryview(segment)[s:e])
    return segment[:s] + build_sei_nal(edit(body)) + segment[e:]


def strip_tag(segment: bytes) -> bytes:
    s, e = tag_unit(segment)
    return segment[:s - 4] + segment[e:]


def flip_video_bit(segment: bytes) -> bytes:
    units = annexb_units(segment)
    s, e = max(units, key=lambda u: u[1] - u[0])  # the largest slice
    pos = (s + e) // 2
    return segment[:pos] + bytes([segment[pos] ^ 0x10]) + segment[pos + 1:]


def flip_mac_bit(segment: bytes) -> bytes:
    return replace_tag_body(segment, lambda body: body[:-1] + bytes([body[-1] ^ 1]))


def deliver(script: str) -> List[bytes]:
    out = []
    for word in script.split():
        index, _, source = word.partition("@")
        mark = index[-1] if index[-1] in "-*^" else ""
        segment = streams()[source][int(index.rstrip("-*^"))]
        out.append({"": lambda s: s, "-": strip_tag, "*": flip_video_bit, "^": flip_mac_bit}[mark](segment))
    return out


def run(script: str, keyring: Keyring | None = None, **options) -> str:
    verifier = StreamVerifier(keyring or alice_keyring(), **options)
    return " ".join(verifier.verify(segment).reason.value for segment in deliver(script))


@pytest.mark.parametrize("script, expected", [
    ("0 1 2 3 4 5 6 7", "ok ok ok ok ok ok ok ok"),
    ("0 1 3 4", "ok ok gap ok"),                             # a lost segment is a gap, checking resumes
    ("0 1 1 2", "ok ok duplicate ok"),                       # QoS 1 redelivery: not shown twice
    ("0 1 2 0", "ok ok ok duplicate"),
    ("0 2 1 3", "ok gap out_of_order ok"),                   # late after a gap: refused
    ("0 1 2- 3", "ok ok no_tag gap"),                        # stripped tag: fail closed
    ("0 1* 2", "ok content_mismatch gap"),
    ("0 1^ 1 2", "ok mac_mismatch ok ok"),                   # a refused segment disturbs nothing
    ("0 1 2@new 3@new", "ok ok gap ok"),                     # restart: a newer stream
    ("0@new 1@new 2", "ok ok chain_break"),                  # the older stream is refused after
    ("0 1@bob 2", "ok no_grant gap"),                        # bound to another owner
])
def test_stream_language(script: str, expected: str) -> None:
    assert run(script) == expected


def test_other_camera_spliced_into_a_locked_stream_is_a_chain_break() -> None:
    assert run("0 1@cam2 1", camera="cam-1") == "ok chain_break ok"
    assert run("0 1@cam2 1") == "ok ok ok"  # a multi-camera viewer keeps each camera apart


def mac_of(segment: bytes) -> bytes:
    return decode_tag(segbind_payload(memoryview(segment)[slice(*tag_unit(segment))]))[0].mac


def test_a_second_segment_with_a_used_sequence_number_is_a_replay() -> None:
    # Authentic for seq 1 (right key, stream and link) but not the segment accepted as seq 1,
    # as a camera that lost its state would tag it, or a recording replayed into the stream.
    stream = streams()[""]
    verifier = StreamVerifier(alice_keyring())
    assert [verifier.verify(s).reason.value for s in stream[:3]] == ["ok", "ok", "ok"]
    tagger = Tagger(_key("alice", "cam-1", 1), "alice", "cam-1", 1, T0, seq=1,
                    link=mac_of(stream[0])[:8])
    raw = raw_segments()[1]
    second = tagger.tag_annexb(raw, annexb_units(raw), T0 + 999)[0]
    assert verify_segment(second, alice_keyring()).seq == 1
    assert verifier.verify(second).reason is Reason.REPLAY


def test_sequence_older_than_the_replay_window_is_a_replay() -> None:
    verifier = StreamVerifier(alice_keyring())
    long_stream = tag_stream(count=140)
    assert {verifier.verify(s).reason for s in long_stream} == {Reason.OK}
    assert verifier.verify(long_stream[3]).reason is Reason.REPLAY
    assert verifier.verify(long_stream[139]).reason is Reason.DUPLICATE


def test_chain_link_must_match_the_previous_segment() -> None:
    verifier = StreamVerifier(alice_keyring())
    stream = streams()[""]
    assert verifier.verify(stream[0]).accepted
    # seq 1 carrying a wrong link, correctly MAC'd by a camera-side bug or a spliced session:
    tagger = Tagger(_key("alice", "cam-1", 1), "alice", "cam-1", 1, T0, seq=1, link=b"\x01" * 8)
    raw = raw_segments()[1]
    assert verifier.verify(tagger.tag_annexb(raw, annexb_units(raw), T0)[0]).reason is Reason.CHAIN_BREAK


def test_epoch_rotation_and_revocation() -> None:
    ring = Keyring([Binding("alice", "cam-1", 2, _key("alice", "cam-1", 2))])
    assert run("0 1", ring) == "no_grant no_grant"  # epoch 1 not granted
    ring = alice_keyring()
    ring.grant(Binding("alice", "cam-1", 2, _key("alice", "cam-1", 2)))
    ring.revoke("alice", "cam-1", below_epoch=2)
    verdict = StreamVerifier(ring).verify(streams()[""][0])
    assert verdict.reason is Reason.NO_GRANT and "revoked" in verdict.detail


def test_epoch_going_back_within_a_stream_is_a_chain_break() -> None:
    ring = alice_keyring()
    ring.grant(Binding("alice", "cam-1", 2, _key("alice", "cam-1", 2)))
    tagger = Tagger(_key("alice", "cam-1", 2), "alice", "cam-1", 2, T0)
    raw = raw_segments()
    first = tagger.tag_annexb(raw[0], annexb_units(raw[0]), T0)[0]
    tagger.rebind(_key("alice", "cam-1", 1), "alice", 1)
    second = tagger.tag_annexb(raw[1], annexb_units(raw[1]), T0)[0]
    verifier = StreamVerifier(ring)
    assert [verifier.verify(s).reason.value for s in (first, second)] == ["ok", "chain_break"]


@pytest.mark.parametrize("field", ["owner", "camera", "epoch"])
def test_rewriting_a_bound_field_is_refused(field: str) -> None:
    # The cloud rewrites bob's tag to claim alice's binding: alice holds that key, the MAC fails.
    segment = streams()["bob"][0]
    tag, _ = decode_tag(segbind_payload(memoryview(segment)[slice(*tag_unit(segment))]))
    forged_tag = {"owner": ("alice", "cam-1", 1), "camera": ("bob", "cam-2", 1),
                  "epoch": ("bob", "cam-1", 2)}[field]
    tag.owner, tag.camera, tag.epoch = forged_tag
    forged = replace_tag_body(segment, lambda body: tag.encode())
    ring = Keyring([Binding(o, c, e, _key(o, c, e)) for o, c, e in
                    [("alice", "cam-1", 1), ("bob", "cam-2", 1), ("bob", "cam-1", 2)]])
    with pytest.raises(InvalidSegment) as info:
        verify_segment(forged, ring)
    assert info.value.reason is Reason.MAC_MISMATCH


def test_version_downgrade_and_unknown_algorithm_are_refused() -> None:
    segment = streams()[""][0]
    for forged in (replace_tag_body(segment, lambda b: b"\x00" + b[1:]),
                   replace_tag_body(segment, lambda b: b"\x02" + b[1:]),
                   replace_tag_body(segment, lambda b: b[:1] + b"\x07" + b[2:])):
        with pytest.raises(InvalidSegment) as info:
            verify_segment(forged, alice_keyring())
        assert info.value.reason is Reason.UNKNOWN_VERSION


@pytest.mark.parametrize("edit", [
    lambda b: b[:-1],                      # truncated MAC
    lambda b: b[:10],                      # truncated mid-field
    lambda b: b + b"\x00",                 # trailing byte
    lambda b: b"",                         # empty body
    lambda b: b + os.urandom(120),         # oversized
    lambda b: b[:2] + b"\x00" + b[3:],     # zero-length owner id
])
def test_garbage_tags_are_malformed(edit) -> None:
    with pytest.raises(InvalidSegment) as info:
        verify_segment(replace_tag_body(streams()[""][0], edit), alice_keyring())
    assert info.value.reason is Reason.MALFORMED_TAG


def test_two_tags_in_one_segment_are_malformed() -> None:
    segment = streams()[""][1]
    s, e = tag_unit(segment)
    doubled = segment[:e] + START_CODE + segment[s:e] + segment[e:]
    with pytest.raises(InvalidSegment) as info:
        verify_segment(doubled, alice_keyring())
    assert info.value.reason is Reason.MALFORMED_TAG


def test_a_foreign_sei_added_or_a_unit_dropped_or_moved_is_a_content_mismatch() -> None:
    segment = streams()[""][2]
    units = annexb_units(segment)
    view = memoryview(segment)
    parts = [bytes(view[s:e]) for s, e in units]
    foreign = b"\x06\x05\x11" + bytes(range(1, 17)) + b"x\x80"
    tagged_at = next(i for i, p in enumerate(parts) if is_segbind_sei(p))
    variants = [
        parts[:tagged_at + 1] + [foreign] + parts[tagged_at + 1:],   # added
        parts[:-1],                                                  # dropped
        parts[:-2] + [parts[-1], parts[-2]],                         # moved
    ]
    for variant in variants:
        with pytest.raises(InvalidSegment) as info:
            verify_segment(b"".join(START_CODE + p for p in variant), alice_keyring())
        assert info.value.reason is Reason.CONTENT_MISMATCH


def test_capture_time_window() -> None:
    stream = streams()[""]
    now = (T0 + 3000) / 1000
    window = TimeWindow(max_age_s=2.5, max_future_s=1.0)
    verifier = StreamVerifier(alice_keyring(), window=window, clock=lambda: now)
    assert [verifier.verify(s).reason.value for s in stream[:6]] == [
        "time_window", "ok", "ok", "ok", "ok", "time_window"]


def test_one_shot_check_returns_the_tag_and_raises_with_a_reason() -> None:
    info = verify_segment(streams()[""][4], alice_keyring())
    assert (info.owner, info.camera, info.epoch, info.seq) == ("alice", "cam-1", 1, 4)
    with pytest.raises(InvalidSegment) as err:
        verify_segment(raw_segments()[0], alice_keyring())
    assert err.value.reason is Reason.NO_TAG


# Property tests: no tampering is ever accepted.

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_bit_flip_is_refused(data) -> None:
    segment = streams()[""][data.draw(st.integers(0, 7))]
    bit = data.draw(st.integers(0, len(segment) * 8 - 1))
    flipped = bytearray(segment)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(InvalidSegment):
        verify_segment(bytes(flipped), alice_keyring())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_verdict_never_an_exception(data: bytes) -> None:
    verdict = StreamVerifier(alice_keyring()).verify(data)
    assert not verdict.accepted
    with pytest.raises(InvalidSegment):
        verify_segment(data, alice_keyring())


@settings(max_examples=200, deadline=None)
@given(tail=st.binary(max_size=64), cut=st.integers(0, 200))
def test_corrupted_tags_never_escape_as_other_exceptions(tail: bytes, cut: int) -> None:
    original = streams()[""][0]
    body = segbind_payload(memoryview(original)[slice(*tag_unit(original))])
    edited = body[:cut] + tail
    verdict = StreamVerifier(alice_keyring()).verify(replace_tag_body(original, lambda b: edited))
    assert verdict.accepted == (edited == body)


ACTIONS = st.lists(st.tuples(st.sampled_from(["deliver", "drop", "dup", "flip", "strip", "bob"]),
                             st.integers(0, 7)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(actions=ACTIONS)
def test_whatever_the_network_does_only_authentic_segments_show_once_in_order(actions) -> None:
    stream, bob = streams()[""], streams()["bob"]
    verifier = StreamVerifier(alice_keyring())
    shown: List[int] = []
    for action, index in actions:
        segment = {"deliver": stream[index], "dup": stream[index], "drop": None,
                   "flip": flip_video_bit(stream[index]), "strip": strip_tag(stream[index]),
                   "bob": bob[index]}[action]
        if segment is None:
            continue
        verdict = verifier.verify(segment)
        if verdict.accepted:
            assert action in ("deliver", "dup")
            shown.append(verdict.tag.seq)
    assert shown == sorted(set(shown))  # each at most once, in stream order


def test_every_single_bit_of_the_tag_and_its_framing_is_covered() -> None:
    segment = streams()[""][5]
    s, e = tag_unit(segment)
    for bit in range((e + 1) * 8):  # the start code, the SEI, and the next start code
        flipped = bytearray(segment)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidSegment):
            verify_segment(bytes(flipped), alice_keyring())
