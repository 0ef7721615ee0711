"""What a verifier says about one segment: a reason and whether to show it."""

from __future__ import annotations

import enum
from typing import Any, Dict, NamedTuple, Optional


class Reason(str, enum.Enum):
    """Why a segment was accepted or refused. Values are stable strings for logs and JSON;
    ``str(reason)`` is the value."""

    OK = "ok"
    GAP = "gap"                      # accepted; segments before it were lost
    LATE = "late"                    # accepted; an intact segment that arrived after a newer one
    DUPLICATE = "duplicate"          # an exact copy of a segment already accepted
    NO_TAG = "no_tag"
    NO_GRANT = "no_grant"            # owner, camera or epoch not in the viewer's keyring
    MAC_MISMATCH = "mac_mismatch"
    CONTENT_MISMATCH = "content_mismatch"
    MALFORMED_TAG = "malformed_tag"  # also truncated or oversized tags
    UNKNOWN_VERSION = "unknown_version"
    FRAMING = "framing"              # bytes a decoder could read that the tag does not cover
    TIMING = "timing"                # a container's timing contradicts the tag
    REPLAY = "replay"
    CHAIN_BREAK = "chain_break"
    TIME_WINDOW = "time_window"
    MISSING = "missing"              # recording mode: segments before this one are missing
    INCOMPLETE = "incomplete"        # recording mode: the recording does not end cleanly

    def __str__(self) -> str:
        return self.value

    @property
    def accepted(self) -> bool:
        return self in _ACCEPTED


_ACCEPTED = (Reason.OK, Reason.GAP, Reason.LATE)


class TagInfo(NamedTuple):
    """The public fields of a tag (never key material), and whose segment it is: the owner,
    camera and epoch its key id stands for in the viewer's keyring ("" and 0 when the
    viewer holds no grant for it)."""

    owner: str
    camera: str
    epoch: int
    stream_id: int
    seq: int
    capture_ms: int
    duration_ms: int = 0
    pictures: int = 0
    codec: int = 1
    end_of_stream: bool = False
    key_id: bytes = b""
    still: bool = False

    @property
    def stream(self) -> "tuple[str, str]":
        """(owner, camera): what a stream is known by."""
        return self.owner, self.camera

    def as_dict(self) -> Dict[str, Any]:
        return {
            "owner": self.owner, "camera": self.camera, "epoch": self.epoch,
            "stream_id": self.stream_id, "seq": self.seq, "capture_ms": self.capture_ms,
            "duration_ms": self.duration_ms, "pictures": self.pictures,
            "codec": "H.264" if self.codec == 1 else "H.265", "end_of_stream": self.end_of_stream,
            "key_id": self.key_id.hex(), "still": self.still,
        }


class Verdict(NamedTuple):
    """One segment's result. Show the segment only when ``accepted`` is true.

    (Named tuples: a verifier makes one of each per segment, cheaply.)
    """

    reason: Reason
    detail: str = ""
    tag: Optional[TagInfo] = None
    missing: int = 0  # segments lost just before this one (reason GAP or MISSING)

    @property
    def accepted(self) -> bool:
        return self.reason in _ACCEPTED

    def __str__(self) -> str:
        return self.reason.value + (": " + self.detail if self.detail else "")

    def as_dict(self) -> Dict[str, Any]:
        return {
            "accepted": self.accepted, "reason": self.reason.value, "detail": self.detail,
            "missing": self.missing, "tag": self.tag.as_dict() if self.tag else None,
        }
