"""The spool's bytes on the camera's storage (its policy is ``core.SpoolQueue``).

Every tagged segment is written here before it is published and removed when
the broker acknowledges it (QoS 1 PUBACK), so segments wait on the camera's
storage while the broker is unreachable and go out in order once it is back,
also after the agent restarts.

One file per segment, ``<index>.seg`` (a 20-digit, ever-increasing index),
written to a temporary name and renamed, so a file is whole or absent::

    magic "SBS1" | u32 payload length | u64 stream id | u64 seq | u32 epoch | payload
"""

import os

from .core import Entry

MAGIC = b"SBS1"
HEADER_SIZE = 4 + 4 + 8 + 8 + 4
SUFFIX = ".seg"


class SpoolFiles:
    def __init__(self, directory: str, fsync: bool = False) -> None:
        self.dir = directory
        self.fsync = fsync
        self.corrupt_total = 0

    def _path(self, index: int) -> str:
        return os.path.join(self.dir, "%020d%s" % (index, SUFFIX))

    def load(self) -> list:
        """The entries an earlier run left, oldest first; torn or foreign files are dropped."""
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
        return found

    @staticmethod
    def _parse_header(index: int, head: bytes, file_size: int):
        if len(head) != HEADER_SIZE or head[:4] != MAGIC:
            return None
        size = int.from_bytes(head[4:8], "big")
        if size + HEADER_SIZE != file_size or size == 0:
            return None
        return Entry(index, size, int.from_bytes(head[8:16], "big"),
                     int.from_bytes(head[16:24], "big"), int.from_bytes(head[24:28], "big"))

    def write(self, entry: Entry, payload: bytes) -> None:
        path = self._path(entry.index)
        tmp = path + ".tmp"
        header = (MAGIC + len(payload).to_bytes(4, "big") + entry.stream_id.to_bytes(8, "big")
                  + entry.seq.to_bytes(8, "big") + entry.epoch.to_bytes(4, "big"))
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    def read(self, entry: Entry) -> bytes:
        with open(self._path(entry.index), "rb") as f:
            f.seek(HEADER_SIZE)
            return f.read()

    def delete(self, index: int) -> None:
        try:
            os.unlink(self._path(index))
        except FileNotFoundError:
            pass

    def count(self) -> int:
        """Segment files on storage (for tests and tools)."""
        return len([n for n in os.listdir(self.dir) if n.endswith(SUFFIX)]) if os.path.isdir(self.dir) else 0
