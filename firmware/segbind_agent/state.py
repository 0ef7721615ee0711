"""The camera's binding state (``core.BindingState``) on its own storage, durable through kill -9.

One small JSON file, replaced atomically: write a temporary file in the same
directory, fsync it, rename it over the state file, fsync the directory. A
reader therefore finds either the old state or the new one, whole, at any
instant. The state holds the pairing secret of the current claim (the root of
every key the camera tags with), so it is written 0600 and never logged.
"""

import json
import os

from .core import BindingState, StateError
from .faults import crashpoint

__all__ = ["BindingState", "StateError", "StateStore", "atomic_write"]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, crash_tag: str = "") -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if crash_tag:
        crashpoint(crash_tag + ":state_tmp")
    os.replace(tmp, path)
    if crash_tag:
        crashpoint(crash_tag + ":state_renamed")
    fsync_dir(directory)


class StateStore:
    """Loads and saves the BindingState of one camera in ``state_dir/state.json``."""

    def __init__(self, state_dir: str, camera: str) -> None:
        self.dir = state_dir
        self.path = os.path.join(state_dir, "state.json")
        self.camera = camera

    def load(self):
        """The saved state, or None when there is none (``core.check_rollback`` decides).

        Leftover temporary files of an interrupted write are removed: the
        rename never happened, so the state file is the truth.
        """
        os.makedirs(self.dir, exist_ok=True)
        for name in os.listdir(self.dir):
            if name.startswith("state.json.tmp"):
                os.unlink(os.path.join(self.dir, name))
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeError):
            raise StateError("%s is not valid JSON" % self.path) from None
        return BindingState.from_json(data, self.camera)

    def save(self, state: BindingState, crash_tag: str = "") -> None:
        atomic_write(self.path, state.encode(), crash_tag)

    def wipe(self) -> None:
        """Forget the state (a reset); the monotonic counter is what remembers it existed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
