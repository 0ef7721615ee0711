"""The camera's binding state (``core.BindingState``) on its own storage, durable through kill -9.

One small JSON file, replaced atomically: write a temporary file in the same
directory, fsync it, rename it over the state file, fsync the directory. A
reader therefore finds either the old state or the new one, whole, at any
instant. The state holds no key material: binding keys are derived again from
the device secret (a separate, read-only, provisioned file) when loaded.
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

    def load(self) -> BindingState:
        """The saved state, or a fresh unclaimed one when there is none yet.

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
            return BindingState(self.camera)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeError):
            raise StateError("%s is not valid JSON" % self.path) from None
        return BindingState.from_json(data, self.camera)

    def save(self, state: BindingState, crash_tag: str = "") -> None:
        atomic_write(self.path, state.encode(), crash_tag)
