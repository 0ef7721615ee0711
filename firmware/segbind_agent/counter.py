"""The monotonic counter kept apart from the camera's state (docs/AGENT.md, "State that cannot
roll back").

The state file counts its writes (``BindingState.generation``); after every write the agent
advances this counter to that generation. At start, a state older than the counter (restored
from a backup) or missing while the counter says it existed is refused
(``core.check_rollback``). The counter must live where restoring or deleting the state does
not reach it: in production an eMMC RPMB partition or a secure element's monotonic counter,
behind this one small interface; here, a file on another partition (or directory).
"""

import os

from .state import atomic_write

__all__ = ["CounterFile", "MemoryCounter"]


class CounterFile:
    """A counter in one small file, replaced atomically; it only ever goes up."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> int:
        try:
            with open(self.path, "rb") as f:
                text = f.read().decode("ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeError) as exc:
            raise ValueError("monotonic counter %s unreadable: %s" % (self.path, exc)) from None
        if not text.isdigit():
            raise ValueError("monotonic counter %s is corrupt" % self.path)
        return int(text)

    def advance(self, value: int) -> None:
        """Raise the counter to ``value`` (never lowers it)."""
        if value <= self.read():
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        atomic_write(self.path, b"%d\n" % value)


class MemoryCounter:
    """The same interface in memory (the fleet simulation's cameras)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def read(self) -> int:
        return self.value

    def advance(self, value: int) -> None:
        self.value = max(self.value, value)
