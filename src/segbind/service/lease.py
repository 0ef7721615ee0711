"""Which worker judges which partition: leases in a JetStream KV bucket, written only with
compare-and-set on their revision. Sans-I/O: events in (heartbeats heard, lease keys read,
writes that landed or were refused, the clock), actions out (write a lease, start or stop
judging a partition). ``segbind.service.worker`` carries them out over NATS.

The rules (docs/SERVICE.md, "Partitions and leases"):

- Every worker sends a heartbeat; the members are the workers heard within ``lease_s``. Each
  partition has one target: the members sorted, partition p goes to member p mod their count.
- A lease is a KV key per partition whose value names its holder, a token (one more at every
  acquisition) and a checkpoint (the stream sequence up to which every segment of the partition
  is judged and its state written). A worker writes a lease only with the revision it read
  (compare-and-set): of two workers that read the same revision, one write lands.
- A worker acquires its target partitions when their lease is free (released, or never
  written) or stale: its revision unchanged for ``lease_s`` on the worker's own clock (no clock
  is compared across machines). It renews its leases every ``renew_s`` with their checkpoint.
- A holder judges and writes only while its last renewal began less than ``valid_s`` ago
  (half of ``lease_s``): a worker paused past its lease stops before another can take it, and
  what it writes after it resumes is refused by compare-and-set (the stream states too).
- A partition whose target is another member is handed over: the holder stops judging, then
  releases the lease with its final checkpoint (holder "").
"""

from __future__ import annotations

import json
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

LEASE_S = 3.0


class Lease(NamedTuple):
    """A lease's value: who holds the partition ("" when free), the acquisition's token, and
    the checkpoint (a stream sequence)."""

    holder: str
    token: int
    checkpoint: int

    def to_bytes(self) -> bytes:
        return json.dumps({"holder": self.holder, "token": self.token, "checkpoint": self.checkpoint},
                          separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Optional["Lease"]:
        """The lease in ``data``; None when it is not one (then it counts as free)."""
        try:
            obj = json.loads(data)
            holder, tok, checkpoint = obj["holder"], obj["token"], obj["checkpoint"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(holder, str) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in (tok, checkpoint)):
            return None
        return cls(holder, tok, checkpoint)


class Acquire(NamedTuple):
    partition: int
    revision: int  # the revision read (0: the key was never written)
    lease: Lease


class Renew(NamedTuple):
    partition: int
    revision: int
    lease: Lease


class Release(NamedTuple):
    partition: int
    revision: int
    lease: Lease


class Start(NamedTuple):
    """Begin judging the partition from ``lease.checkpoint + 1``."""

    partition: int
    lease: Lease


class Stop(NamedTuple):
    """Stop judging the partition now (``why``: lost, expired, handoff); for a handoff, call
    ``Coordinator.stopped`` once nothing is in flight, and the lease is released."""

    partition: int
    why: str


Write = Union[Acquire, Renew, Release]
Action = Union[Acquire, Renew, Release, Start, Stop]


class _Held:
    __slots__ = ("revision", "lease", "renewed_at", "attempt_at", "handing_over", "stopped")

    def __init__(self, revision: int, lease: Lease, renewed_at: float) -> None:
        self.revision = revision
        self.lease = lease
        self.renewed_at = renewed_at  # when the last write that landed began
        self.attempt_at = renewed_at  # when the last write began
        self.handing_over = False
        self.stopped = False


class _Seen(NamedTuple):
    revision: int
    lease: Optional[Lease]
    since: float  # when this revision was first read here


class Coordinator:
    """One worker's view of the partitions and their leases."""

    def __init__(self, worker: str, partitions: int, lease_s: float = LEASE_S,
                 renew_s: Optional[float] = None) -> None:
        if not worker or partitions < 1:
            raise ValueError("a worker id and at least one partition")
        self.worker = worker
        self.partitions = partitions
        self.lease_s = lease_s
        self.valid_s = lease_s / 2
        self.renew_s = renew_s if renew_s is not None else lease_s / 6
        self._members: Dict[str, float] = {}
        self._seen: Dict[int, _Seen] = {}
        self._held: Dict[int, _Held] = {}
        self._pending: Dict[int, float] = {}  # partitions with a lease write in flight: when it was sent
        self._attempted: Dict[int, Tuple[Lease, float]] = {}  # acquisitions whose outcome is unknown
        self.counts = {"acquired": 0, "renewed": 0, "released": 0, "lost": 0, "expired": 0, "refused": 0}

    # -- events ------------------------------------------------------------------------------------

    def heard(self, worker: str, now: float, leaving: bool = False) -> None:
        """A heartbeat (``leaving``: the worker says it is stopping)."""
        if leaving:
            self._members.pop(worker, None)
        else:
            self._members[worker] = now

    def observed(self, partition: int, revision: int, lease: Optional[Lease], now: float) -> List[Action]:
        """The lease key of ``partition`` read: its revision (0: never written) and value."""
        seen = self._seen.get(partition)
        if seen is None or seen.revision != revision:
            self._seen[partition] = _Seen(revision, lease, now)
        held = self._held.get(partition)
        if held is not None and revision > held.revision and partition not in self._pending:
            ours = lease is not None and lease.token == held.lease.token
            if ours and lease is not None and lease.holder == self.worker:
                held.revision = revision  # a renewal whose answer was lost did land
                held.renewed_at = held.attempt_at
            elif ours and held.handing_over and lease is not None and lease.holder == "":
                del self._held[partition]  # a release whose answer was lost did land
                self.counts["released"] += 1
            else:
                return self._lose(partition, "lost")
        attempted = self._attempted.get(partition)
        if held is None and attempted is not None and partition not in self._pending:
            tried, at = attempted
            if lease is not None and lease == tried:  # an acquisition whose answer was lost did land
                del self._attempted[partition]
                self._held[partition] = _Held(revision, lease, at)
                self.counts["acquired"] += 1
                return [Start(partition, lease)]
            if (seen is not None and seen.revision != revision) or now - at >= self.lease_s:
                del self._attempted[partition]
        return []

    def succeeded(self, write: Write, revision: int, began: float) -> List[Action]:
        """A lease write landed at ``revision``; ``began``: when it was sent."""
        self._pending.pop(write.partition, None)
        p = write.partition
        self._seen[p] = _Seen(revision, write.lease, began)
        if isinstance(write, Acquire):
            self._attempted.pop(p, None)
            self._held[p] = _Held(revision, write.lease, began)
            self.counts["acquired"] += 1
            return [Start(p, write.lease)]
        held = self._held.get(p)
        if isinstance(write, Release):
            self._held.pop(p, None)
            self.counts["released"] += 1
            return []
        if held is not None:
            held.revision, held.renewed_at = revision, began
            self.counts["renewed"] += 1
        return []

    def refused(self, write: Write, now: float) -> List[Action]:
        """A lease write was refused: the revision moved (another worker wrote)."""
        self._pending.pop(write.partition, None)
        self._attempted.pop(write.partition, None)
        self.counts["refused"] += 1
        if isinstance(write, Acquire):
            self._seen.pop(write.partition, None)
            return []
        return self._lose(write.partition, "lost")

    def failed(self, write: Write, now: float) -> List[Action]:
        """A lease write got no answer (a timeout, no server): it may or may not have landed."""
        sent = self._pending.pop(write.partition, now)
        if isinstance(write, Acquire):
            self._attempted[write.partition] = (write.lease, sent)
        return []

    def progress(self, partition: int, checkpoint: int) -> None:
        """Every segment of the partition up to ``checkpoint`` is judged and its state written."""
        held = self._held.get(partition)
        if held is not None and checkpoint > held.lease.checkpoint:
            held.lease = held.lease._replace(checkpoint=checkpoint)

    def stopped(self, partition: int) -> None:
        """After Stop(handoff): nothing is in flight for the partition any more."""
        held = self._held.get(partition)
        if held is not None:
            held.stopped = True

    def lost(self, partition: int) -> List[Action]:
        """A stream state write of the partition was refused: another worker judges it now."""
        return self._lose(partition, "lost")

    def abandoned(self, partition: int) -> List[Action]:
        """The partition's judging ended on its own (it found its lease no longer valid while a
        renewal was on its way, or it failed): the partition is not held here any more, so its
        lease is not renewed with nothing judging it. The next ``plan`` takes it again if it is
        still this worker's (a new token, from the lease's checkpoint), or it moves after a lease."""
        held = self._held.get(partition)
        if held is None or held.handing_over:
            return []
        return self._lose(partition, "expired")

    # -- decisions ---------------------------------------------------------------------------------

    def members(self, now: float) -> List[str]:
        live = {w for w, t in self._members.items() if now - t < self.lease_s}
        live.add(self.worker)
        return sorted(live)

    def target(self, partition: int, now: float) -> str:
        members = self.members(now)
        return members[partition % len(members)]

    def may_write(self, partition: int, now: float) -> bool:
        """Whether this worker may still write for ``partition`` (while it hands a partition over,
        until the release: the batch in flight is finished, none is begun)."""
        held = self._held.get(partition)
        return held is not None and now - held.renewed_at < self.valid_s

    def holding(self) -> List[int]:
        return sorted(p for p, h in self._held.items() if not h.handing_over)

    def release_all(self, now: float) -> List[Release]:
        """At a worker's end, once it judges nothing any more: every lease it still may write,
        released with its checkpoint (another worker takes each at once)."""
        out = []
        for p, held in sorted(self._held.items()):
            if now - held.renewed_at < self.valid_s and p not in self._pending:
                held.handing_over = True
                out.append(self._send(Release(p, held.revision, held.lease._replace(holder="")), now))
        return [w for w in out if isinstance(w, Release)]

    def checkpoint(self, partition: int) -> Optional[int]:
        held = self._held.get(partition)
        return held.lease.checkpoint if held is not None else None

    def plan(self, now: float) -> List[Action]:
        """What to do now: lease writes to send (each with the revision it expects) and
        partitions to stop judging."""
        actions: List[Action] = []
        members = self.members(now)
        for p in range(self.partitions):
            if p in self._pending:
                continue
            target = members[p % len(members)]
            held = self._held.get(p)
            if held is not None:
                if now - held.renewed_at >= self.valid_s:
                    actions += self._lose(p, "expired")
                elif held.handing_over:
                    if held.stopped:
                        actions.append(self._send(Release(p, held.revision, held.lease._replace(holder="")), now))
                    elif now - held.attempt_at >= self.renew_s:
                        # the batch in flight is finished under a valid lease, then released:
                        # a slow batch does not let the lease lapse (the target would wait a
                        # whole lease for it to go stale)
                        actions.append(self._send(Renew(p, held.revision, held.lease), now))
                elif target != self.worker:
                    held.handing_over = True
                    actions.append(Stop(p, "handoff"))
                elif now - held.attempt_at >= self.renew_s:
                    actions.append(self._send(Renew(p, held.revision, held.lease), now))
                continue
            if target != self.worker or p in self._attempted:
                continue
            seen = self._seen.get(p)
            if seen is None:
                continue
            lease = seen.lease
            # its own lease (it expired here, nobody took it) is taken back at once: the write
            # lands only if the revision did not move
            if lease is None or lease.holder in ("", self.worker) or now - seen.since >= self.lease_s:
                token = (lease.token if lease is not None else 0) + 1
                checkpoint = lease.checkpoint if lease is not None else 0
                actions.append(self._send(Acquire(p, seen.revision, Lease(self.worker, token, checkpoint)), now))
        return actions

    def _send(self, write: Write, now: float) -> Write:
        self._pending[write.partition] = now
        held = self._held.get(write.partition)
        if held is not None:
            held.attempt_at = now
        return write

    def _lose(self, partition: int, why: str) -> List[Action]:
        held = self._held.pop(partition, None)
        if held is None:
            return []
        self.counts[why] += 1
        return [Stop(partition, why)]
