"""The camera's local hand-over: pairing offers, reset requests and camera events that never
touch the broker.

On a real camera the pairing offer is a QR code on the owner's phone, read by the
camera's lens, a reset is its button, and an event comes from its motion detector or its
doorbell. Here all arrive as files in a directory only the camera's own user can write
(``segbind-agent pair OFFER``, ``segbind-agent reset``, ``segbind-agent event KIND``):
each is written under a temporary name and renamed, so the agent never reads half a file;
the agent takes them in arrival order and deletes each once acted on.
"""

import os
import time

__all__ = ["EVENT", "Inbox", "PAIR", "RESET"]

PAIR = "pair"
RESET = "reset"
EVENT = "event"
MAX_OFFER_BYTES = 4096  # an offer is under 100 bytes: anything bigger is not one


class Inbox:
    def __init__(self, path: str) -> None:
        self.path = path

    def _put(self, kind: str, data: bytes) -> str:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        name = "%020d-%d.%s" % (time.time_ns(), os.getpid(), kind)
        tmp = os.path.join(self.path, "." + name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        final = os.path.join(self.path, name)
        os.replace(tmp, final)
        return final

    def put_offer(self, offer: bytes) -> str:
        return self._put(PAIR, offer)

    def put_reset(self) -> str:
        return self._put(RESET, b"")

    def put_event(self, kind: str) -> str:
        return self._put(EVENT, kind.encode("ascii"))

    def take(self, kinds=(PAIR, RESET, EVENT)):
        """[(kind, bytes)] of the waiting requests of ``kinds``, oldest first; each file is deleted."""
        try:
            names = sorted(n for n in os.listdir(self.path) if not n.startswith("."))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            kind = name.rsplit(".", 1)[-1]
            if kind not in kinds:
                continue
            full = os.path.join(self.path, name)
            try:
                with open(full, "rb") as f:
                    data = f.read(MAX_OFFER_BYTES + 1)
                os.unlink(full)
            except OSError:
                continue
            out.append((kind, data))
        return out
