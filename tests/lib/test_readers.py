"""The readers' sans-I/O cores and ``segbind.open`` on bytes: whatever the bytes and however
they arrive, the same verdicts, only documented exceptions, and each segment handed on as
soon as it is complete (issue 10 items 2 and 5)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segbind
from host_sim import clips
from segbind import Canonical, Epoch, InputError, InvalidSegment, Reason, StreamVerifier
from segbind.framing import canonical_prefixed, prefixed_parts
from segbind.read import AnnexBSplitter
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger
from tests.support.tagged import keyring_of, strip_tag

EPOCH = Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, [])
T0 = 1_795_000_000_000
RING = keyring_of(EPOCH)


@lru_cache(maxsize=None)
def cut() -> Tuple[Segment, ...]:
    segmenter = Segmenter(delimit=True)
    video = clips.encode_pyav(frames=30, gop=5, width=128, height=96, seed=8)
    return tuple(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))


@lru_cache(maxsize=None)
def stream() -> Tuple[bytes, ...]:
    """Six encrypted, tagged segments of real x264 video, as the camera emits them."""
    tagger = Tagger(EPOCH, T0)
    return tuple(tagger.tag(s.data, s.units, T0 + 200 * i, s.duration_ms, s.pictures)[0] for i, s in enumerate(cut()))


def results(data: bytes) -> List[tuple]:
    """(verdict, the segment as the camera emitted it) for each segment ``segbind.open`` finds."""
    with segbind.open(data, RING) as media:
        return [(r.reason, r.protected) for r in media]


def test_open_hands_on_exactly_the_camera_segments() -> None:
    segments = stream()
    assert results(b"".join(segments)) == [(Reason.OK, s) for s in segments]
    assert segbind.tagged_segments(b"".join(segments)) == list(segments)
    with segbind.open(b"".join(segments), RING) as media:  # what a decoder gets: the encoder's units
        assert [strip_tag(r.data or b"") for r in media] == [s.data for s in cut()]


@settings(max_examples=120, deadline=None)
@given(cuts=st.lists(st.integers(0, 60_000), max_size=40))
def test_any_chunking_gives_the_same_segments(cuts: List[int]) -> None:
    data = b"".join(stream())
    splitter = AnnexBSplitter()
    got = []
    at = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        got += splitter.push(data[at:cut])
        at = cut
    got += splitter.finish()
    assert [s.data for s in got] == list(stream())
    verifier = StreamVerifier(RING)
    assert [verifier.verify_canonical(s).reason for s in got] == [Reason.OK] * len(stream())


def test_a_complete_segment_comes_out_before_the_next_arrives() -> None:
    """As ``segbind tag - -`` writes them, a segment at a time: each is judged at once."""
    splitter = AnnexBSplitter()
    for segment in stream():
        mid = len(segment) // 2
        assert splitter.push(segment[:mid]) == []          # a part of it: not yet
        (whole,) = splitter.push(segment[mid:])            # all of it: at once
        assert whole.data == segment
    assert splitter.finish() == []


def test_reframed_annexb_is_judged_in_canonical_form() -> None:
    """3-byte start codes and zero bytes between units (as mp4toannexb writes): accepted, and
    what is handed on is the camera's canonical bytes."""
    segments = stream()
    reframed = b""
    for segment in segments:
        units = annexb_units(segment)
        reframed += b"".join((b"\x00\x00\x01" if k % 2 else START_CODE) + segment[s:e] + b"\x00" * (k % 3)
                             for k, (s, e) in enumerate(units))
    assert results(reframed) == [(Reason.OK, s) for s in segments]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), head=st.sampled_from([b"", b"\x00\x00\x00\x01", b"\x00\x00\x01\x09\xf0"]))
def test_arbitrary_bytes_give_verdicts_or_input_error(data: bytes, head: bytes) -> None:
    try:
        got = results(head + data)
    except InputError:
        return
    assert all(not accepted for accepted, _ in [(r is Reason.OK, d) for r, d in got])


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), value=st.integers(1, 255))
def test_a_damaged_stream_refuses_only_what_it_touches(cut: int, flip: int, value: int) -> None:
    data = bytearray(b"".join(stream()))
    flip %= len(data)
    data[flip] ^= value
    data = data[:len(data) - cut % 2000]
    try:
        got = results(bytes(data))
    except InputError:  # not even the start of a stream (its first bytes damaged)
        return
    camera = set(stream())
    assert all(d in camera for r, d in got if r is Reason.OK)


@settings(max_examples=300, deadline=None)
@given(sample=st.binary(max_size=400), size=st.sampled_from([1, 2, 4]))
def test_length_prefixed_parsing_never_raises_and_agrees(sample: bytes, size: int) -> None:
    out = bytearray()
    tags: List[int] = []
    units, defect = canonical_prefixed(sample, size, out, tags)
    parts, units2, defect2 = prefixed_parts(sample, size, [])
    assert (units, defect) == (units2, defect2)
    assert bytes(out) == b"".join(bytes(p) for p in parts)
    if not defect:
        assert out.count(START_CODE) >= units
    try:
        Canonical.of_prefixed(sample, size)
    except InvalidSegment as exc:
        assert exc.reason in (Reason.FRAMING, Reason.NO_TAG, Reason.MALFORMED_TAG)


def test_a_dangling_length_is_framing_never_an_index_error() -> None:
    segment = stream()[0]
    units = [segment[s:e] for s, e in annexb_units(segment)]
    sample = b"".join(len(u).to_bytes(4, "big") + u for u in units)
    for tail in (b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x07\x41", b"\xff\xff\xff\xff"):
        with pytest.raises(InvalidSegment) as refused:
            Canonical.of_prefixed(sample + tail)
        assert refused.value.reason is Reason.FRAMING
    assert StreamVerifier(RING).verify_canonical(Canonical.of_prefixed(sample)).reason is Reason.OK


def test_bytes_holding_no_tag_are_refused_as_they_come() -> None:
    """A stream that never carries a tag is refused a MiB at a time: memory stays bounded."""
    noise = (b"\x00\x00\x00\x01\x65" + os.urandom(65531)) * 48
    splitter = AnnexBSplitter()
    refused = 0
    for k in range(0, len(noise), 1 << 16):
        refused += len(splitter.push(noise[k:k + (1 << 16)]))
        assert sum(len(c) for c in splitter._chunks) < 2 * 1024 * 1024
    refused += len(splitter.finish())
    assert refused >= 2
    assert {r for r, _ in results(noise)} == {Reason.NO_TAG}
