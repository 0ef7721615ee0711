"""What a verifier says about one segment: a reason and whether to show it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Dict, Optional


class Reason(str, enum.Enum):
    """Why a segment was accepted or refused. Values are stable strings for logs and JSON."""

    OK = "ok"
    GAP = "gap"                      # accepted; segments before it were lost
    DUPLICATE = "duplicate"          # an exact copy of a segment already accepted
    NO_TAG = "no_tag"
    NO_GRANT = "no_grant"            # owner, camera or epoch not in the viewer's keyring
    MAC_MISMATCH = "mac_mismatch"
    CONTENT_MISMATCH = "content_mismatch"
    MALFORMED_TAG = "malformed_tag"  # also truncated or oversized tags
    UNKNOWN_VERSION = "unknown_version"
    REPLAY = "replay"
    OUT_OF_ORDER = "out_of_order"
    CHAIN_BREAK = "chain_break"
    TIME_WINDOW = "time_window"

    @property
    def accepted(self) -> bool:
        return self in (Reason.OK, Reason.GAP)


@dataclass(frozen=True)
class TagInfo:
    """The public fields of a tag (never key material)."""

    owner: str
    camera: str
    epoch: int
    stream_id: int
    seq: int
    capture_ms: int

    def as_dict(self) -> Dict[str, Any]:
        return {
            "owner": self.owner, "camera": self.camera, "epoch": self.epoch,
            "stream_id": self.stream_id, "seq": self.seq, "capture_ms": self.capture_ms,
        }


@dataclass(frozen=True)
class Verdict:
    """One segment's result. Show the segment only when ``accepted`` is true."""

    reason: Reason
    detail: str = ""
    tag: Optional[TagInfo] = None
    missing: int = 0  # segments lost just before this one (reason GAP)

    @property
    def accepted(self) -> bool:
        return self.reason.accepted

    def as_dict(self) -> Dict[str, Any]:
        return {
            "accepted": self.accepted, "reason": self.reason.value, "detail": self.detail,
            "missing": self.missing, "tag": self.tag.as_dict() if self.tag else None,
        }
