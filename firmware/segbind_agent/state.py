"""The camera's binding state on its own storage, durable through kill -9 and power cuts.

One small JSON file, replaced atomically: write a temporary file in the same
directory, fsync it, rename it over the state file, fsync the directory. A
reader therefore finds either the old state or the new one, whole, at any
instant. The state holds no key material: binding keys are derived again from
the device secret (a separate, read-only, provisioned file) when loaded.
"""

import json
import os

from .faults import crashpoint

STATE_KIND = "agent-state"
STATE_VERSION = 1


class StateError(Exception):
    """A state file that exists but cannot be trusted (corrupt, other camera)."""


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


class BindingState:
    """What the camera must never forget.

    counter    the highest command counter accepted (replay protection)
    owner      the owner the camera tags for, or None when unclaimed
    epoch      the epoch it tags under (0 when unclaimed)
    epoch_hwm  the highest epoch ever used: a new binding must be above it
    stream_id  the id of the stream begun most recently
    last_command, last_result   digest of the last accepted command and the
               encoded result, to answer its redelivery the same way
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.counter = 0
        self.owner = None
        self.epoch = 0
        self.epoch_hwm = 0
        self.stream_id = 0
        self.last_command = ""
        self.last_result = ""

    @property
    def claimed(self) -> bool:
        return self.owner is not None

    def copy(self) -> "BindingState":
        other = BindingState(self.camera)
        other.__dict__.update(self.__dict__)
        return other

    def to_json(self) -> dict:
        return {"segbind": STATE_KIND, "version": STATE_VERSION, "camera": self.camera,
                "counter": self.counter, "owner": self.owner, "epoch": self.epoch,
                "epoch_hwm": self.epoch_hwm, "stream_id": self.stream_id,
                "last_command": self.last_command, "last_result": self.last_result}

    @classmethod
    def from_json(cls, data: dict, camera: str) -> "BindingState":
        if not isinstance(data, dict) or data.get("segbind") != STATE_KIND:
            raise StateError("not a segbind agent state file")
        if data.get("version") != STATE_VERSION:
            raise StateError("unsupported state file version")
        if data.get("camera") != camera:
            raise StateError("state file belongs to camera %r" % data.get("camera"))
        state = cls(camera)
        try:
            for name in ("counter", "epoch", "epoch_hwm", "stream_id"):
                value = data[name]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise StateError("%s is not a non-negative integer" % name)
                setattr(state, name, value)
            owner = data["owner"]
            if owner is not None and (not isinstance(owner, str) or not owner):
                raise StateError("owner is not a string")
            state.owner = owner
            state.last_command = str(data.get("last_command", ""))
            state.last_result = str(data.get("last_result", ""))
        except KeyError as exc:
            raise StateError("state file lacks %s" % exc) from None
        if (state.owner is None) != (state.epoch == 0) or state.epoch > state.epoch_hwm:
            raise StateError("state file is inconsistent")
        return state


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
        raw = json.dumps(state.to_json(), sort_keys=True).encode("utf-8") + b"\n"
        atomic_write(self.path, raw, crash_tag)
