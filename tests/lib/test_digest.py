"""The content digest is one value whatever the framing and whichever hashing path runs."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from segbind_core import tag as tagmod
from segbind_core.nal import START_CODE, annexb_units, length_prefixed_units

# NAL units as an encoder could emit them: a header byte then bytes free of start codes.
NAL = st.builds(lambda kind, body: bytes([kind]) + body.replace(b"\x00\x00", b"\x00\x07") + b"\x80",
                st.sampled_from([0x01, 0x05, 0x06, 0x67, 0x68, 0x09, 0x0A, 0x0C, 0x41, 0x65]),
                st.binary(max_size=40_000))


def reference_digest(units) -> bytes:
    """FORMAT.md section 4, written out plainly."""
    covered = [u for u in units if u[0] & 0x1F not in (9, 10, 11, 12)]
    return hashlib.sha256(b"".join(len(u).to_bytes(4, "big") + u for u in covered)).digest()


@settings(max_examples=150, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=12), four_byte=st.booleans())
def test_annexb_and_length_prefixed_framings_give_the_reference_digest(units, four_byte) -> None:
    start = START_CODE if four_byte else b"\x00\x00\x01"
    annexb = b"".join(start + u for u in units)
    prefixed = b"".join(len(u).to_bytes(4, "big") + u for u in units)
    expected = reference_digest(units)
    assert tagmod.content_digest(annexb, annexb_units(annexb)) == expected
    assert tagmod.content_digest(prefixed, length_prefixed_units(prefixed), prefixed=True) == expected


@settings(max_examples=50, deadline=None)
@given(units=st.lists(NAL, min_size=1, max_size=8))
def test_the_copy_free_path_of_micropython_gives_the_same_digest(units) -> None:
    annexb = b"".join(START_CODE + u for u in units)
    joined = tagmod.content_digest(annexb, annexb_units(annexb))
    saved = tagmod._JOIN_SMALL
    tagmod._JOIN_SMALL = False
    try:
        assert tagmod.content_digest(annexb, annexb_units(annexb)) == joined == reference_digest(units)
    finally:
        tagmod._JOIN_SMALL = saved
