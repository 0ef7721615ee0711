"""The simulation's ground truth: what each camera really produced, and who may rightly see it.

Filled as cameras tag, by a digest of the exact bytes each published; used only to count
results (no party ever reads it: displays judge by their keys, the cloud by its routing).
"""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import Dict, NamedTuple, Optional, Set, Tuple

Position = Tuple[str, int, int]  # (device, stream id, seq)


class Origin(NamedTuple):
    """Where a published byte string came from, and who may rightly watch it."""

    camera: str                  # the device that made it (the cloud's id for it)
    owner: str                   # its real owner when it was captured
    stream_id: int
    seq: int
    capture_ms: int
    audience: Tuple[str, ...]    # the accounts that may rightly see it: the owner and its viewers then
    grace: Tuple[str, ...] = ()  # revoked viewers whose last granted period still covers it: neither
                                 # theirs nor a stranger's (the bound of GRANTS.md 8)
    still: bool = False          # an event's thumbnail
    scene: Tuple[int, int] = (1, 0)  # what it shows: (codec, the scene's clip)

    @property
    def position(self) -> Position:
        return self.camera, self.stream_id, self.seq


class Ledger:
    """Every published byte string's origin, by ``digest``; the segments (not stills) each
    account may rightly see, by ``produced_for``. Thread-safe."""

    def __init__(self) -> None:
        self._origin: Dict[bytes, Origin] = {}
        self.produced_for: Dict[str, Set[Position]] = collections.defaultdict(set)
        self._lock = threading.Lock()

    @staticmethod
    def digest(payload: bytes) -> bytes:
        return hashlib.sha256(payload).digest()[:16]

    def record(self, payload: bytes, origin: Origin) -> None:
        with self._lock:
            self._origin[self.digest(payload)] = origin
            if not origin.still:
                for account in origin.audience:
                    self.produced_for[account].add(origin.position)

    def origin(self, d: bytes) -> Optional[Origin]:
        return self._origin.get(d)
