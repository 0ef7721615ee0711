"""Tagged segments of real x264 video, cut as the camera cuts them, and the edits attacks make
to their tags: the material of the Python and JavaScript verifier tests (one home)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from host_sim import clips
from segbind import Epoch, InvalidSegment, Keyring, Reason, verify_segment
from segbind_core.nal import annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import build_sei_nal, segbind_payload, tag_codec
from segbind_core.tag import MAC_SIZE, decode_tag
from segbind_core.tagger import Tagger

# Test-only pairing secrets, fresh per run.
PAIRING, PAIRING_CAM2, PAIRING_EVE = os.urandom(32), os.urandom(32), os.urandom(32)
T0 = 1_795_000_000_000


def epoch(owner: str = "alice", camera: str = "cam-1", number: int = 1, shares: Sequence[str] = ("bob",),
          pairing: bytes = PAIRING) -> Epoch:
    return Epoch.of_pairing(pairing, owner, camera, number, list(shares))


@lru_cache(maxsize=None)
def raw_segments() -> Tuple[Segment, ...]:
    """Eight untagged segments of real libx264 video (an IDR every 5 frames), delimited as the
    camera emits them."""
    video = clips.encode_pyav(frames=40, gop=5, width=128, height=96, seed=3)
    segmenter = Segmenter(delimit=True)
    return tuple(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))


def tag_stream(ep: Optional[Epoch] = None, stream_id: int = T0, count: int = 8, start: int = 0,
               end: bool = False, t0: int = T0) -> List[bytes]:
    """Segments ``start`` .. ``start + count - 1`` of a stream (the raw ones over again), the
    last marked as the stream's end when ``end``."""
    tagger = Tagger(ep or epoch(), stream_id, seq=start)
    out = []
    for i in range(start, start + count):
        raw = raw_segments()[i % len(raw_segments())]
        out.append(tagger.tag(raw.data, raw.units, t0 + 200 * i, raw.duration_ms, raw.pictures,
                              end and i == start + count - 1)[0])
    return out


@lru_cache(maxsize=None)
def streams() -> Dict[str, Tuple[bytes, ...]]:
    """Alice's camera (shared with bob), her second camera, the stream after a restart, the
    same camera claimed by eve, and alice's next epoch."""
    return {
        "": tuple(tag_stream()),
        "cam2": tuple(tag_stream(epoch(camera="cam-2", pairing=PAIRING_CAM2, shares=()))),
        "new": tuple(tag_stream(stream_id=T0 + 60_000)),
        "eve": tuple(tag_stream(epoch(owner="eve", pairing=PAIRING_EVE, shares=()))),
        "e2": tuple(tag_stream(epoch(number=2), start=8)),
    }


def tag_unit(segment: bytes) -> Tuple[int, int]:
    return next(u for u in annexb_units(segment) if tag_codec(memoryview(segment)[u[0]:u[1]]))


def body_of(segment: bytes) -> bytes:
    return segbind_payload(memoryview(segment)[slice(*tag_unit(segment))])


def replace_tag_body(segment: bytes, edit: Callable[[bytes], bytes], codec: Optional[int] = None) -> bytes:
    """The segment with its SEI rebuilt around ``edit(body)`` (emulation prevention redone), in
    ``codec``'s SEI header (by default the tag's own)."""
    s, e = tag_unit(segment)
    codec = codec or tag_codec(memoryview(segment)[s:e])
    return segment[:s] + build_sei_nal(edit(body_of(segment)), codec) + segment[e:]


def flip_mac_bit(segment: bytes, slot: int = 0) -> bytes:
    def edit(body: bytes) -> bytes:
        tag, _ = decode_tag(body)
        at = len(body) - MAC_SIZE * (tag.slots - slot)
        return body[:at] + bytes([body[at] ^ 1]) + body[at + 1:]
    return replace_tag_body(segment, edit)


def last_mac_bytes(segment: bytes) -> range:
    """Where the tag's last MAC (a share's slot) lies in the segment: a verifier of another slot
    cannot judge it. (The tag's body is escaped inside the SEI; these segments need no escape there.)"""
    s, e = tag_unit(segment)
    assert segment[e - 1] == 0x80 and body_of(segment) in segment[s:e]
    return range(e - 1 - MAC_SIZE, e - 1)


def refused_by_owner_or_share(flipped: bytes, at: int, original: bytes, owner: Keyring, share: Keyring) -> None:
    """The owner refuses every flip except in the share's MAC (the last); there the share refuses
    it (and the owner need not care: a decoder reads nothing in a MAC)."""
    try:
        verify_segment(flipped, owner)
    except InvalidSegment:
        return
    assert at in last_mac_bytes(original), "a flip at byte %d was accepted" % at
    try:
        verify_segment(flipped, share)
    except InvalidSegment as exc:
        assert exc.reason is Reason.MAC_MISMATCH
    else:
        raise AssertionError("a flip at byte %d of the share's MAC was accepted" % at)


def strip_tag(segment: bytes) -> bytes:
    s, e = tag_unit(segment)
    return segment[:s - 4] + segment[e:]


def first_access_unit(data: bytes) -> Tuple[bytes, int]:
    """(the first access unit of a segment cut as the camera cuts it, its number of units): up to
    its second delimiter."""
    units = annexb_units(data)
    ends = [s - 4 for s, _ in units[1:] if data[s] & 0x1F == 9]
    end = ends[0] if ends else len(data)
    return data[:end], sum(1 for s, _ in units if s < end)


def still_of(index: int, ep: Optional[Epoch] = None, stream_id: int = T0, t0: int = T0) -> bytes:
    """A still (FORMAT.md section 10) of the first access unit of segment ``index`` of a stream
    as ``tag_stream`` tags it: the seq of that segment, its capture time."""
    raw = raw_segments()[index % len(raw_segments())]
    head, units = first_access_unit(raw.data)
    return Tagger(ep or epoch(), stream_id).tag_still(head, units, t0 + 200 * index, index)[0]


def keyring_of(*epochs: Epoch, holder: Optional[str] = None, start_ms: int = T0 - 3_600_000,
               hours: float = 48.0) -> Keyring:
    """A holder's keyring for ``epochs`` (its slot in each; the owner's by default), every period
    from an hour before T0 for ``hours``."""
    from segbind import Binding

    ring = Keyring()
    for ep in epochs:
        ring.grant_all(Binding.periods_of_epoch(ep, start_ms, start_ms + int(hours * 3_600_000), holder))
    return ring
