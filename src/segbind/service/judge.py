"""A worker's judging, sans-I/O: segments in (their stream sequence, camera and bytes, in the
order of their partition), outcomes out (a verdict each, the plaintext of those accepted), and
the state of each (owner, camera) stream as bytes for the KV bucket, with the revision each
write must expect.

A stream's record in the bucket is ``"SBsv" 01 | applied (uvarint) | the verifier's state``
(``StreamVerifier.export_state``, empty before the first accepted segment): ``applied`` is the
stream sequence of the last segment whose judgement the record holds. A worker that takes a
partition over reads the records and skips what they already hold, so a segment redelivered
after a crash is never judged against a state that already took it; a segment judged and not yet
recorded is judged again from the same record, to the same verdict.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from segbind_core.tag import decode_uvarint, encode_uvarint

from ..errors import StateError
from ..verdict import Reason, Verdict
from ..verifier import STATE_MAX_BYTES, StreamVerifier, TimeWindow
from .keys import Entries, ServiceKeys
from .names import partition_of

RECORD_VERSION = 1
_RECORD_MAGIC = b"SBsv" + bytes((RECORD_VERSION,))
RECORD_MAX_BYTES = len(_RECORD_MAGIC) + 10 + STATE_MAX_BYTES


def encode_record(applied: int, state: Optional[bytes]) -> bytes:
    return _RECORD_MAGIC + encode_uvarint(applied) + (state or b"")


def decode_record(data: bytes) -> Tuple[int, Optional[bytes]]:
    """(applied, verifier state or None); StateError when ``data`` is not a record."""
    if len(data) > RECORD_MAX_BYTES or not data.startswith(_RECORD_MAGIC):
        raise StateError("not a segbind service stream record (version %d)" % RECORD_VERSION)
    try:
        applied, pos = decode_uvarint(data, len(_RECORD_MAGIC), (1 << 64) - 1)
    except ValueError as exc:
        raise StateError("service stream record: %s" % exc) from None
    return applied, (data[pos:] or None)


class Outcome(NamedTuple):
    """One segment's judgement: ``account`` is the account whose keys judged it ("" when no
    account granted the camera to this service); ``plaintext`` the decrypted segment when
    accepted; ``skipped`` when its stream's record already holds its judgement (nothing to
    publish); ``rejudged`` when the keys first consulted disagreed with the signed grants."""

    seq: int
    camera: str
    account: str
    verdict: Verdict
    plaintext: Optional[bytes] = None
    skipped: bool = False
    rejudged: bool = False


class NeedState(Exception):
    """The records of these (account, camera) streams must be read first (``Judge.load``)."""

    def __init__(self, streams: List[Tuple[str, str]]) -> None:
        super().__init__("%d stream records to read" % len(streams))
        self.streams = streams


class _Stream:
    __slots__ = ("verifier", "applied", "revision", "dirty")

    def __init__(self, verifier: StreamVerifier, applied: int, revision: int) -> None:
        self.verifier = verifier
        self.applied = applied
        self.revision = revision
        self.dirty = False


# A refusal's rank when several accounts' keys were tried: the verdict of the account whose keys
# authenticated the segment says the most.
_UNAUTHENTICATED = {Reason.NO_GRANT: 3, Reason.MAC_MISMATCH: 2, Reason.CONTENT_MISMATCH: 2}


class Judge:
    """The (account, camera) streams of the partitions a worker holds."""

    def __init__(self, keys: ServiceKeys, window: Optional[TimeWindow] = None) -> None:
        self.keys = keys
        self.window = window
        self._streams: Dict[Tuple[str, str], _Stream] = {}
        self._by_camera: Dict[str, Set[str]] = {}
        self.counts = {"judged": 0, "accepted": 0, "refused": 0, "skipped": 0, "rejudged": 0}

    def __len__(self) -> int:
        return len(self._streams)

    def wanted(self, cameras: Iterable[str]) -> List[Tuple[str, str]]:
        """The streams whose records must be read before these cameras' segments are judged."""
        out = []
        for camera in set(cameras):
            for account, _ in self.keys.lookup(camera) + self.keys.confirm(camera):
                if (account, camera) not in self._streams and (account, camera) not in out:
                    out.append((account, camera))
        return out

    def load(self, account: str, camera: str, record: Optional[bytes], revision: int) -> None:
        """A stream's record as read (None and revision 0 when there is none yet). StateError
        when it cannot be read: the stream is not judged (its segments wait) rather than
        started over."""
        applied, state = decode_record(record) if record is not None else (0, None)
        verifier = StreamVerifier(self.keys.grants.keyring(account), camera=camera, owner=account,
                                  window=self.window)
        verifier.import_state(account, camera, state)
        self._streams[(account, camera)] = _Stream(verifier, applied, revision)
        self._by_camera.setdefault(camera, set()).add(account)

    def judge(self, seq: int, camera: str, segment: bytes) -> Outcome:
        """The judgement of one segment (NeedState when a record must be read first)."""
        entries = self.keys.lookup(camera)
        outcome = self._try(entries, seq, camera, segment)
        if not outcome.skipped and not outcome.verdict.accepted:
            confirmed = self.keys.confirm(camera)
            if not _same(confirmed, entries):
                self.keys.repair(camera, confirmed)
                self.counts["rejudged"] += 1
                outcome = self._try(confirmed, seq, camera, segment)._replace(rejudged=True)
        self.counts["skipped" if outcome.skipped else "accepted" if outcome.verdict.accepted else "refused"] += 1
        self.counts["judged"] += not outcome.skipped
        return outcome

    def _try(self, entries: Entries, seq: int, camera: str, segment: bytes) -> Outcome:
        if not entries:
            return Outcome(seq, camera, "", Verdict(Reason.NO_GRANT, "no account granted camera %r to this "
                                                     "service" % camera))
        streams = []
        missing = []
        for account, keyring in entries:
            stream = self._streams.get((account, camera))
            if stream is None:
                missing.append((account, camera))
            streams.append((account, keyring, stream))
        if missing:
            raise NeedState(missing)
        if any(stream.applied >= seq for _, _, stream in streams if stream is not None):
            return Outcome(seq, camera, "", Verdict(Reason.DUPLICATE, "judged before"), skipped=True)
        best: Optional[Outcome] = None
        for account, keyring, stream in streams:
            assert stream is not None
            verifier = stream.verifier
            if verifier.keyring is not keyring:
                verifier.keyring = keyring
            verdict = verifier.verify(segment)
            if verdict.accepted:
                stream.applied = seq
                stream.dirty = True
                return Outcome(seq, camera, account, verdict, verifier.verified)
            if best is None or _UNAUTHENTICATED.get(verdict.reason, 1) < _UNAUTHENTICATED.get(best.verdict.reason, 1):
                best = Outcome(seq, camera, account, verdict)
        assert best is not None
        return best

    def dirty(self) -> List[Tuple[str, str, bytes, int]]:
        """(account, camera, record, the revision its write must expect) of every stream whose
        record changed."""
        out = []
        for (account, camera), stream in self._streams.items():
            if stream.dirty:
                out.append((account, camera, encode_record(stream.applied,
                                                           stream.verifier.export_state(account, camera)),
                            stream.revision))
        return out

    def written(self, account: str, camera: str, revision: int) -> None:
        stream = self._streams.get((account, camera))
        if stream is not None:
            stream.revision = revision
            stream.dirty = False

    def forget(self, camera: str) -> None:
        """Drop what is kept of a camera's streams (another worker may write them now)."""
        for account in self._by_camera.pop(camera, ()):
            self._streams.pop((account, camera), None)

    def forget_partition(self, partition: int, partitions: int) -> None:
        for camera in [c for c in self._by_camera if partition_of(c, partitions) == partition]:
            self.forget(camera)


def _same(a: Entries, b: Entries) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b))
