"""A tag's public fields, as anyone who holds no key reads them (docs/FORMAT.md section 5).

Format 3 tags name no owner and no camera: a carrier sees a key id (which segments share
keys, not whose), the stream id, the seq, the times, the flags. Never authenticated: for
routing checks and bookkeeping only, never for deciding what anyone may see.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from segbind_core.nal import annexb_units
from segbind_core.sei import segbind_payload, tag_codec
from segbind_core.tag import TagError, decode_tag


class TagFields(NamedTuple):
    """What a tag says in clear. NOT authenticated."""

    key_id: bytes
    stream_id: int
    seq: int
    capture_ms: int
    end_of_stream: bool = False
    still: bool = False
    codec: int = 1
    clear_lead: int = 1
    slots: int = 1


def peek_tag(segment: bytes) -> Optional[TagFields]:
    """The first tag's public fields, or None when there is no readable tag (never verified)."""
    view = memoryview(segment)
    for start, end in annexb_units(segment):
        if tag_codec(view[start:end]):
            try:
                tag, _signed = decode_tag(segbind_payload(view[start:end]))
            except (TagError, ValueError):
                return None
            return TagFields(bytes(tag.key_id), tag.stream_id, tag.seq, tag.capture_ms, tag.end_of_stream,
                             tag.still, tag.codec, tag.clear_lead, tag.slots)
    return None
