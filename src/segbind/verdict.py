"""What a verifier says about one segment: a reason and whether to show it."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, NamedTuple, Optional


class Reason(str):
    """Why a segment was accepted or refused. Values are stable strings for logs and JSON;
    ``str(reason)`` and ``reason.value`` are the value. One instance per value (``Reason("ok")``
    is ``Reason.OK``): compare with ``is`` or ``==``. (A str with named instances rather than an
    Enum: an Enum's class costs a millisecond at every start of ``segbind``.)"""

    __slots__ = ()
    _known: ClassVar[Dict[str, "Reason"]] = {}

    OK: ClassVar["Reason"]                # accepted
    GAP: ClassVar["Reason"]               # accepted; segments before it were lost
    LATE: ClassVar["Reason"]              # accepted; an intact segment that arrived after a newer one
    DUPLICATE: ClassVar["Reason"]         # an exact copy of a segment already accepted
    NO_TAG: ClassVar["Reason"]
    NO_GRANT: ClassVar["Reason"]          # owner, camera or epoch not in the viewer's keyring
    MAC_MISMATCH: ClassVar["Reason"]
    CONTENT_MISMATCH: ClassVar["Reason"]
    MALFORMED_TAG: ClassVar["Reason"]     # also truncated or oversized tags
    UNKNOWN_VERSION: ClassVar["Reason"]
    FRAMING: ClassVar["Reason"]           # bytes a decoder could read that the tag does not cover
    TIMING: ClassVar["Reason"]            # a container's timing contradicts the tag
    REPLAY: ClassVar["Reason"]
    CHAIN_BREAK: ClassVar["Reason"]
    TIME_WINDOW: ClassVar["Reason"]
    MISSING: ClassVar["Reason"]           # recording mode: segments before this one are missing
    INCOMPLETE: ClassVar["Reason"]        # recording mode: the recording does not end cleanly

    def __new__(cls, value: str) -> "Reason":
        known = cls._known.get(value)
        if known is None:
            raise ValueError("%r is not a segbind verdict reason" % (value,))
        return known

    @classmethod
    def _define(cls, name: str, value: str) -> "Reason":
        reason = str.__new__(cls, value)
        cls._known[value] = reason
        setattr(cls, name, reason)
        return reason

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def name(self) -> str:
        return self.value.upper()

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "<Reason.%s: %r>" % (self.name, self.value)

    @classmethod
    def all(cls) -> "List[Reason]":
        return list(cls._known.values())

    @property
    def accepted(self) -> bool:
        return self in _ACCEPTED


for _name, _value in (("OK", "ok"), ("GAP", "gap"), ("LATE", "late"), ("DUPLICATE", "duplicate"),
                      ("NO_TAG", "no_tag"), ("NO_GRANT", "no_grant"), ("MAC_MISMATCH", "mac_mismatch"),
                      ("CONTENT_MISMATCH", "content_mismatch"), ("MALFORMED_TAG", "malformed_tag"),
                      ("UNKNOWN_VERSION", "unknown_version"), ("FRAMING", "framing"), ("TIMING", "timing"),
                      ("REPLAY", "replay"), ("CHAIN_BREAK", "chain_break"), ("TIME_WINDOW", "time_window"),
                      ("MISSING", "missing"), ("INCOMPLETE", "incomplete")):
    Reason._define(_name, _value)

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
