"""The monotonic counter kept apart from the camera's state (docs/AGENT.md, "State that cannot
roll back"), and the pairing offers the camera took, kept with it.

The state file counts its writes (``BindingState.generation``); after every write the agent
advances this counter to that generation. At start, a state older than the counter (restored
from a backup) or missing while the counter says it existed is refused
(``core.check_rollback``). The counter must live where restoring or deleting the state does
not reach it: in production an eMMC RPMB partition or a secure element's monotonic counter
with a few bytes beside it, behind this one small interface; here, a file on another
partition (or directory).

Beside the counter live the digests of the last pairing offers the camera took
(``core.MAX_SPENT``; 8 bytes each): a pairing offer is recorded here (``spend``) before the
state that takes it is written, so no reset, release or wipe of the state lets a
photographed offer claim the camera again. Nothing here is a key.
"""

import os

from .core import MAX_SPENT, is_spent_digest, merge_spent
from .state import atomic_write

__all__ = ["CounterFile", "MemoryCounter"]


class CounterFile:
    """A counter (and the spent offers' digests) in one small file, replaced atomically; the
    counter only ever goes up, and a spent offer stays until 8 newer ones were spent.

    The file: the counter in decimal on its first line; then, when any offer was spent, a line
    ``spent`` followed by the digests, oldest first.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                text = f.read(4096).decode("ascii")
        except FileNotFoundError:
            return 0, []
        except (OSError, UnicodeError) as exc:
            raise ValueError("monotonic counter %s unreadable: %s" % (self.path, exc)) from None
        lines = text.split("\n")
        first = lines[0].strip()
        if not first.isdigit():
            raise ValueError("monotonic counter %s is corrupt" % self.path)
        spent = []
        for line in lines[1:]:
            words = line.split()
            if not words:
                continue
            if words[0] != "spent" or not all(is_spent_digest(w) for w in words[1:]):
                raise ValueError("monotonic counter %s is corrupt" % self.path)
            spent = words[1:][-MAX_SPENT:]
        return int(first), spent

    def _save(self, value: int, spent) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        body = b"%d\n" % value
        if spent:
            body += ("spent %s\n" % " ".join(spent)).encode("ascii")
        atomic_write(self.path, body)

    def read(self) -> int:
        return self._load()[0]

    def spent(self) -> list:
        """The digests of the last pairing offers taken, oldest first."""
        return self._load()[1]

    def advance(self, value: int) -> None:
        """Raise the counter to ``value`` (never lowers it)."""
        current, spent = self._load()
        if value <= current:
            return
        self._save(value, spent)

    def spend(self, digest: str) -> None:
        """Record a pairing offer as taken (before the state that takes it is written)."""
        if not is_spent_digest(digest):
            raise ValueError("not a spent offer's digest")
        current, spent = self._load()
        if spent and spent[-1] == digest:
            return
        self._save(current, merge_spent(spent, [digest]))


class MemoryCounter:
    """The same interface in memory (the fleet simulation's cameras)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self._spent = []

    def read(self) -> int:
        return self.value

    def spent(self) -> list:
        return list(self._spent)

    def advance(self, value: int) -> None:
        self.value = max(self.value, value)

    def spend(self, digest: str) -> None:
        self._spent = merge_spent(self._spent, [digest])
