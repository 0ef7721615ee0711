"""The camera's persistent, bounded segment spool.

Every tagged segment is written here before it is published and removed when
the broker acknowledges it (QoS 1 PUBACK), so segments wait on the camera's
storage while the broker is unreachable and go out in order once it is back,
also after the agent restarts. The spool is bounded in bytes and in
segments; when a new segment does not fit, the oldest segments not handed to
the MQTT client yet are dropped and the gap is recorded (never a crash).

One file per segment, ``<index>.seg`` (a 20-digit, ever-increasing index),
written to a temporary name and renamed, so a file is whole or absent::

    magic "SBS1" | u32 payload length | u64 stream id | u64 seq | u32 epoch | payload
"""

import os
from collections import deque

MAGIC = b"SBS1"
HEADER_SIZE = 4 + 4 + 8 + 8 + 4
SUFFIX = ".seg"


class Entry:
    __slots__ = ("index", "size", "stream_id", "seq", "epoch")

    def __init__(self, index: int, size: int, stream_id: int, seq: int, epoch: int) -> None:
        self.index = index
        self.size = size
        self.stream_id = stream_id
        self.seq = seq
        self.epoch = epoch

    def __repr__(self) -> str:
        return "Entry(#%d, stream %d seq %d, %d bytes)" % (self.index, self.stream_id, self.seq,
                                                           self.size)


class Gap:
    """Segments dropped together: ``count`` of them, from (stream, seq) to (stream, seq)."""

    def __init__(self, entries: list, why: str) -> None:
        self.count = len(entries)
        self.bytes = sum(e.size for e in entries)
        self.first = (entries[0].stream_id, entries[0].seq)
        self.last = (entries[-1].stream_id, entries[-1].seq)
        self.why = why

    def as_dict(self) -> dict:
        return {"count": self.count, "bytes": self.bytes, "why": self.why,
                "first": {"stream_id": self.first[0], "seq": self.first[1]},
                "last": {"stream_id": self.last[0], "seq": self.last[1]}}


class Spool:
    def __init__(self, directory: str, max_bytes: int, max_segments: int, fsync: bool = False) -> None:
        if max_bytes <= 0 or max_segments <= 0:
            raise ValueError("spool bounds must be positive")
        self.dir = directory
        self.max_bytes = max_bytes
        self.max_segments = max_segments
        self.fsync = fsync
        self._entries: deque = deque()  # Entry, oldest first
        self._inflight: set = set()     # indexes handed to the MQTT client, not yet acknowledged
        self._bytes = 0
        self._next_index = 0
        self.dropped_total = 0
        self.corrupt_total = 0
        self.load()

    # -- persistence -------------------------------------------------------------------

    def _path(self, index: int) -> str:
        return os.path.join(self.dir, "%020d%s" % (index, SUFFIX))

    def load(self) -> None:
        """Read the index of what an earlier run left; drop torn or foreign files."""
        os.makedirs(self.dir, exist_ok=True)
        found = []
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if not name.endswith(SUFFIX):
                if ".tmp" in name:
                    os.unlink(path)
                continue
            try:
                index = int(name[:-len(SUFFIX)])
                size = os.path.getsize(path)
                with open(path, "rb") as f:
                    head = f.read(HEADER_SIZE)
            except (ValueError, OSError):
                continue
            entry = self._parse_header(index, head, size)
            if entry is None:
                self.corrupt_total += 1
                os.unlink(path)
                continue
            found.append(entry)
        found.sort(key=lambda e: e.index)
        self._entries = deque(found)
        self._bytes = sum(e.size for e in found)
        self._next_index = found[-1].index + 1 if found else 0

    @staticmethod
    def _parse_header(index: int, head: bytes, file_size: int):
        if len(head) != HEADER_SIZE or head[:4] != MAGIC:
            return None
        size = int.from_bytes(head[4:8], "big")
        if size + HEADER_SIZE != file_size or size == 0:
            return None
        return Entry(index, size, int.from_bytes(head[8:16], "big"),
                     int.from_bytes(head[16:24], "big"), int.from_bytes(head[24:28], "big"))

    # -- the queue ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def append(self, payload: bytes, stream_id: int, seq: int, epoch: int) -> list:
        """Store one tagged segment; returns the Gaps this caused (usually none)."""
        size = len(payload)
        entry = Entry(self._next_index, size, stream_id, seq, epoch)
        if size > self.max_bytes:
            self.dropped_total += 1
            return [Gap([entry], "segment larger than the whole spool")]
        evicted = []
        while self._entries and (self._bytes + size > self.max_bytes
                                 or len(self._entries) + 1 > self.max_segments):
            victim = self._oldest_not_inflight()
            if victim is None:
                break
            self._discard(victim)
            evicted.append(victim)
        self._next_index += 1
        path = self._path(entry.index)
        tmp = path + ".tmp"
        header = (MAGIC + size.to_bytes(4, "big") + stream_id.to_bytes(8, "big")
                  + seq.to_bytes(8, "big") + epoch.to_bytes(4, "big"))
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        self._entries.append(entry)
        self._bytes += size
        if not evicted:
            return []
        self.dropped_total += len(evicted)
        return [Gap(evicted, "spool full")]

    def _oldest_not_inflight(self):
        for entry in self._entries:
            if entry.index not in self._inflight:
                return entry
        return None

    def _discard(self, entry: Entry) -> None:
        self._entries.remove(entry)
        self._bytes -= entry.size
        self._inflight.discard(entry.index)
        try:
            os.unlink(self._path(entry.index))
        except FileNotFoundError:
            pass

    def to_send(self, limit: int) -> list:
        """Up to ``limit`` of the oldest entries not yet handed to the MQTT client."""
        out = []
        for entry in self._entries:
            if len(out) >= limit:
                break
            if entry.index not in self._inflight:
                out.append(entry)
        return out

    def read(self, entry: Entry) -> bytes:
        with open(self._path(entry.index), "rb") as f:
            f.seek(HEADER_SIZE)
            return f.read()

    def mark_inflight(self, index: int) -> None:
        self._inflight.add(index)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def release_inflight(self) -> None:
        """Forget what was handed to the MQTT client (it was discarded): send it again."""
        self._inflight.clear()

    def delivered(self, index: int) -> None:
        """The broker acknowledged entry ``index``: it leaves the spool."""
        self._inflight.discard(index)
        for entry in self._entries:
            if entry.index == index:
                self._discard(entry)
                return

    def purge(self) -> int:
        """Drop every entry (factory reset: nothing of the old owner stays on the camera)."""
        count = len(self._entries)
        for entry in list(self._entries):
            self._discard(entry)
        self._inflight.clear()
        return count

    def stats(self) -> dict:
        return {"segments": len(self._entries), "bytes": self._bytes, "inflight": len(self._inflight),
                "max_bytes": self.max_bytes, "max_segments": self.max_segments,
                "dropped_total": self.dropped_total, "corrupt_total": self.corrupt_total}
