"""The canonical form (docs/FORMAT.md section 4) is one byte string whatever the framing.

The digest is SHA-256 of the canonical form, so these properties are what make a segment's
digest the same when it arrives as the camera emitted it, reframed in Annex-B, or
length-prefixed in a container.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segbind.read.containers import prefixed_units
from segbind_core.nal import START_CODE, annexb_units

# NAL units as an encoder could emit them: a header byte, then escaped bytes (no 00 00 0x
# with x <= 3), ending in a non-zero byte (rbsp_trailing_bits).
NAL = st.builds(lambda kind, body: bytes([kind]) + body.replace(b"\x00\x00", b"\x00\x00\x03") + b"\x80",
                st.sampled_from([0x01, 0x05, 0x06, 0x67, 0x68, 0x09, 0x0A, 0x0C, 0x41, 0x65]),
                st.binary(max_size=4_000))


def canonical(units) -> bytes:
    return b"".join(START_CODE + u for u in units)


def split(buf: bytes):
    return [buf[s:e] for s, e in annexb_units(buf)]


@settings(max_examples=150, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=12), data=st.data())
def test_every_annexb_framing_splits_into_the_same_units(units, data) -> None:
    framed = b"".join(b"\x00" * data.draw(st.integers(0, 3)) + b"\x00\x00\x01" + u
                      + b"\x00" * data.draw(st.integers(0, 2)) for u in units)
    assert split(framed) == units
    assert split(canonical(units)) == units          # canonical form splits back the same way


@settings(max_examples=150, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=12), size=st.sampled_from([1, 2, 4]))
def test_length_prefixed_samples_give_the_same_units(units, size) -> None:
    units = [u for u in units if len(u) < 256 ** size]
    sample = b"".join(len(u).to_bytes(size, "big") + u for u in units)
    found, problem = prefixed_units(sample, size)
    assert (found, problem) == (units, "")


@settings(max_examples=150, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=6), extra=st.binary(min_size=1, max_size=4))
def test_length_prefixes_that_do_not_tile_a_sample_are_a_framing_problem(units, extra) -> None:
    sample = b"".join(len(u).to_bytes(4, "big") + u for u in units)
    _, problem = prefixed_units(sample + extra, 4)               # bytes after the last unit
    assert problem
    _, problem = prefixed_units(sample[:-1], 4)                   # the last length runs past
    assert problem
    _, problem = prefixed_units(b"\x00\x00\x00\x02\x00\x00", 4)  # a unit of zero bytes only
    assert "zero bytes only" in problem


@settings(max_examples=100, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=6), zeros=st.integers(1, 3), size=st.sampled_from([1, 2, 4]))
def test_zero_bytes_ending_a_unit_are_framing(units, zeros, size) -> None:
    """As trailing_zero_8bits in Annex-B (FFmpeg 5.1 copies one into MP4 samples of H.265):
    dropped, so the units are the same as without them."""
    padded = [u + b"\x00" * zeros for u in units if len(u) + zeros < 256 ** size]
    sample = b"".join(len(u).to_bytes(size, "big") + u for u in padded)
    assert prefixed_units(sample, size) == ([u.rstrip(b"\x00") for u in padded], "")


def test_length_prefixed_edge_cases() -> None:
    h = bytes.fromhex
    assert prefixed_units(h("00000002 09f0 00000004 6742c01e 00000001 68"), 4) == \
        ([h("09f0"), h("6742c01e"), h("68")], "")
    assert prefixed_units(h("02 09f0 01 68"), 1) == ([h("09f0"), h("68")], "")
    assert prefixed_units(h("0002 09f0"), 2) == ([h("09f0")], "")
    for sample, size in ((h("000000"), 4), (h("00000002 09f0 0000"), 4), (h("00000003 09f0"), 4),
                         (h("00000000 09f0"), 4), (h("ffffffff 09f0"), 4), (h("03 09f0"), 1)):
        assert prefixed_units(sample, size)[1], sample.hex()
