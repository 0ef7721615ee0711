"""The viewer's keyring: the slot keys it was granted, and nothing else; and the key files.

Keys enter a verifier only from here, never from a stream. A display fills its
keyring from grants its owner signed and sealed to it (``segbind.grants``); a
keyring file is for tools and tests. Files are JSON, written atomically and
0600; key bytes never appear in ``repr`` or error messages.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple, Union

from segbind_core.keys import KEY_SIZE, Epoch, slot_key
from segbind_core.tag import MAX_SLOTS

from .errors import InvalidSegment, KeyringError
from .verdict import Reason

if TYPE_CHECKING:
    from os import PathLike

PathText = Union[str, "PathLike[str]"]

GrantId = Tuple[str, str, int]  # (owner, camera, epoch)
FILE_VERSION = 2


def _hex_key(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyringError("%s: key is not a hex string" % what)
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise KeyringError("%s: key is not valid hex" % what) from None
    if len(key) != KEY_SIZE:
        raise KeyringError("%s: key must be %d bytes" % (what, KEY_SIZE))
    return key


def read_json(path: PathText, kind: str) -> Dict[str, Any]:
    """A segbind JSON file of the given kind ("device", "binding", "keyring")."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise KeyringError("%s: no such file" % path) from None
    except (OSError, UnicodeError) as exc:
        raise KeyringError("%s: cannot read (%s)" % (path, exc.__class__.__name__)) from None
    if not text.strip():
        raise KeyringError("%s: file is empty" % path)
    try:
        data = json.loads(text)
    except ValueError:
        raise KeyringError("%s: not valid JSON" % path) from None
    if not isinstance(data, dict) or data.get("segbind") != kind:
        raise KeyringError("%s: not a segbind %s file" % (path, kind))
    if data.get("version") != FILE_VERSION:
        raise KeyringError("%s: unsupported %s file version" % (path, kind))
    return data


def write_json(path: PathText, data: Dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename) with owner-only permissions."""
    import tempfile

    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".segbind-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _id(value: object, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise KeyringError("%s: %s must be a non-empty string" % (where, what))
    return value


def _epoch(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 0xFFFFFFFF:
        raise KeyringError("%s: epoch must be an integer from 1 to 2^32-1" % where)
    return value


class Binding(NamedTuple):
    """One slot of one (owner, camera, epoch) and its key: what a viewer is granted.

    Slot 0 is the owner's; slots from 1 are the accounts the epoch is shared with. (A named
    tuple: immutable, and cheap to make.)
    """

    owner: str
    camera: str
    epoch: int
    key: bytes
    slot: int = 0

    def __repr__(self) -> str:
        return "Binding(owner=%r, camera=%r, epoch=%d, slot=%d, key=<hidden>)" % (
            self.owner, self.camera, self.epoch, self.slot)

    def to_json(self) -> Dict[str, Any]:
        return {"owner": self.owner, "camera": self.camera, "epoch": self.epoch,
                "slot": self.slot, "key": self.key.hex()}

    @classmethod
    def of_epoch(cls, epoch: Epoch, holder: Optional[str] = None) -> "Binding":
        """The slot of ``holder`` (default: the owner) in ``epoch``, with its key; KeyringError when
        ``holder`` holds no slot."""
        holders = epoch.holders()
        holder = epoch.owner if holder is None else holder
        if holder not in holders:
            raise KeyringError("%s holds no slot of epoch %d (slots: %s)" % (holder, epoch.epoch, ", ".join(holders)))
        slot = holders.index(holder)
        return cls(epoch.owner, epoch.camera, epoch.epoch, slot_key(epoch.root, slot, holder), slot)

    @classmethod
    def from_json(cls, data: Any, what: str = "grant") -> "Binding":
        if not isinstance(data, dict):
            raise KeyringError("%s: a grant is not an object" % what)
        slot = data.get("slot", 0)
        if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < MAX_SLOTS:
            raise KeyringError("%s: slot must be an integer from 0 to %d" % (what, MAX_SLOTS - 1))
        return cls(_id(data.get("owner"), "owner", what), _id(data.get("camera"), "camera", what),
                   _epoch(data.get("epoch"), what), _hex_key(data.get("key"), what), slot)


class EpochFile:
    """An epoch file: one epoch's root and who holds its slots (``segbind keys epoch``).

    What ``segbind tag`` tags with, standing in for a camera: it can make every
    slot's MAC, so it is the owner's secret, like the pairing it comes from.
    """

    @staticmethod
    def to_json(epoch: Epoch) -> Dict[str, Any]:
        return {"segbind": "epoch", "version": FILE_VERSION, "owner": epoch.owner,
                "camera": epoch.camera, "epoch": epoch.epoch, "shares": list(epoch.shares),
                "root": epoch.root.hex()}

    @staticmethod
    def load(path: PathText) -> Epoch:
        data = read_json(path, "epoch")
        where = str(path)
        shares = data.get("shares", [])
        if not isinstance(shares, list) or len(shares) > MAX_SLOTS - 1:
            raise KeyringError("%s: shares must be a list of at most %d accounts"
                               % (where, MAX_SLOTS - 1))
        try:
            return Epoch(_id(data.get("owner"), "owner", where), _id(data.get("camera"), "camera", where),
                         _epoch(data.get("epoch"), where),
                         [_id(a, "a share", where) for a in shares],
                         _hex_key(data.get("root"), where))
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None

    @staticmethod
    def save(epoch: Epoch, path: PathText) -> None:
        write_json(path, EpochFile.to_json(epoch))


class Keyring:
    """A viewer's grants: (owner, camera, epoch) -> its slot and key, plus revoked epochs."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._keys: Dict[GrantId, Binding] = {}
        self._revoked: Set[GrantId] = set()
        for binding in bindings:
            self.grant(binding)

    def __repr__(self) -> str:
        return "Keyring(%d grants, %d revoked)" % (len(self._keys), len(self._revoked))

    def __len__(self) -> int:
        return len(self._keys)

    def grant(self, binding: Binding) -> None:
        """Hold ``binding``'s key; granting a revoked epoch again is refused."""
        gid = (binding.owner, binding.camera, binding.epoch)
        if gid in self._revoked:
            raise KeyringError("epoch %d of camera %r (owner %r) was revoked"
                               % (binding.epoch, binding.camera, binding.owner))
        self._keys[gid] = binding

    def mark_revoked(self, owner: str, camera: str, epoch: int) -> None:
        """Remember (owner, camera, epoch) as revoked: it can never be granted again here."""
        self._keys.pop((owner, camera, epoch), None)
        self._revoked.add((owner, camera, epoch))

    def revoke(self, owner: str, camera: str, below_epoch: int) -> None:
        """Drop every epoch of (owner, camera) below ``below_epoch``, and remember them."""
        for gid in [g for g in self._keys if g[0] == owner and g[1] == camera and g[2] < below_epoch]:
            del self._keys[gid]
            self._revoked.add(gid)

    def revoke_camera(self, camera: str) -> None:
        """Drop every grant for ``camera`` (the viewer lost access to it)."""
        for gid in [g for g in self._keys if g[1] == camera]:
            del self._keys[gid]
            self._revoked.add(gid)

    def grants(self) -> List[GrantId]:
        return sorted(self._keys)

    def revoked_ids(self) -> List[GrantId]:
        """The revoked (owner, camera, epoch) entries, sorted."""
        return sorted(self._revoked)

    def binding(self, owner: str, camera: str, epoch: int) -> Binding:
        """The slot and key held for it, or InvalidSegment(NO_GRANT) saying precisely what is missing."""
        found = self._keys.get((owner, camera, epoch))
        if found is not None:
            return found
        raise InvalidSegment(Reason.NO_GRANT, self._why_not(owner, camera, epoch))

    def bindings(self) -> List[Binding]:
        return [self._keys[g] for g in sorted(self._keys)]

    def _why_not(self, owner: str, camera: str, epoch: int) -> str:
        if (owner, camera, epoch) in self._revoked:
            return "epoch %d of camera %r (owner %r) was revoked" % (epoch, camera, owner)
        epochs = sorted(g[2] for g in self._keys if g[0] == owner and g[1] == camera)
        if epochs:
            return "epoch %d of camera %r (owner %r) is not granted (granted: %s)" % (
                epoch, camera, owner, ", ".join(str(e) for e in epochs))
        if any(g[1] == camera for g in self._keys):
            return "camera %r is not granted for owner %r" % (camera, owner)
        return "no grant for camera %r of owner %r" % (camera, owner)

    def to_json(self) -> Dict[str, Any]:
        return {
            "segbind": "keyring", "version": FILE_VERSION,
            "grants": [b.to_json() for b in self.bindings()],
            "revoked": [{"owner": o, "camera": c, "epoch": e} for o, c, e in sorted(self._revoked)],
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any], what: str = "keyring") -> "Keyring":
        grants, revoked = data.get("grants", []), data.get("revoked", [])
        if not isinstance(grants, list) or not isinstance(revoked, list):
            raise KeyringError("%s: grants and revoked must be lists" % what)
        ring = cls()
        for item in revoked:
            if not isinstance(item, dict):
                raise KeyringError("%s: a revoked entry is not an object" % what)
            try:
                ring.mark_revoked(str(item["owner"]), str(item["camera"]), int(item["epoch"]))
            except (KeyError, TypeError, ValueError):
                raise KeyringError("%s: a revoked entry lacks owner, camera or epoch" % what) from None
        for item in grants:
            ring.grant(Binding.from_json(item, what))
        return ring

    @classmethod
    def load(cls, path: PathText) -> "Keyring":
        return cls.from_json(read_json(path, "keyring"), str(path))

    def save(self, path: PathText) -> None:
        write_json(path, self.to_json())
