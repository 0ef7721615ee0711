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

from segbind_core.keys import CONTENT_KEY_SIZE, KEY_SIZE, Epoch, check_period_s
from segbind_core.tag import KEY_ID_SIZE, MAX_EPOCH, MAX_SLOTS

from .errors import InvalidSegment, KeyringError
from .verdict import Reason

if TYPE_CHECKING:
    from os import PathLike

PathText = Union[str, "PathLike[str]"]

GrantId = Tuple[str, str, int]  # (owner, camera, epoch)
FILE_VERSION = 3


def _hex_key(value: object, what: str, size: int = KEY_SIZE) -> bytes:
    if not isinstance(value, str):
        raise KeyringError("%s: key is not a hex string" % what)
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise KeyringError("%s: key is not valid hex" % what) from None
    if len(key) != size:
        raise KeyringError("%s: key must be %d bytes" % (what, size))
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
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_EPOCH:
        raise KeyringError("%s: epoch must be an integer from 1 to 2^31-1" % where)
    return value


def _int(value: object, where: str, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise KeyringError("%s: %s must be an integer from %d to %d" % (where, what, low, high))
    return value


class Binding(NamedTuple):
    """What a holder is granted for one period of one epoch of one camera: the key id that
    names it in tags, whose it is (owner, camera, epoch), the period and its length, the
    holder's slot and slot key, and the period's content key. (A named tuple: immutable, and
    cheap to make.)

    Slot 0 is the owner's; slots from 1 are the accounts the epoch is shared with.
    """

    key_id: bytes
    owner: str
    camera: str
    epoch: int
    period: int
    period_s: int
    slot: int
    key: bytes
    content_key: bytes

    def __repr__(self) -> str:
        return "Binding(owner=%r, camera=%r, epoch=%d, period=%d, slot=%d, key id %s, keys=<hidden>)" % (
            self.owner, self.camera, self.epoch, self.period, self.slot, self.key_id.hex())

    @property
    def start_ms(self) -> int:
        """The first capture time (ms since 1970) the period holds."""
        return self.period * self.period_s * 1000

    @property
    def end_ms(self) -> int:
        """The capture time (ms) the next period begins at."""
        return (self.period + 1) * self.period_s * 1000

    @property
    def stream(self) -> Tuple[str, str]:
        """(owner, camera): what a display keys a stream, a tile and its state by."""
        return self.owner, self.camera

    def to_json(self) -> Dict[str, Any]:
        return {"key_id": self.key_id.hex(), "owner": self.owner, "camera": self.camera, "epoch": self.epoch,
                "period": self.period, "period_s": self.period_s, "slot": self.slot, "key": self.key.hex(),
                "content_key": self.content_key.hex()}

    @classmethod
    def of_epoch(cls, epoch: Epoch, period: int, holder: Optional[str] = None) -> "Binding":
        """The slot of ``holder`` (default: the owner) in one period of ``epoch``, with its keys;
        KeyringError when ``holder`` holds no slot."""
        holders = epoch.holders()
        holder = epoch.owner if holder is None else holder
        if holder not in holders:
            raise KeyringError("%s holds no slot of epoch %d (slots: %s)" % (holder, epoch.epoch, ", ".join(holders)))
        slot = holders.index(holder)
        keys = epoch.period_keys(period)
        return cls(keys.key_id, epoch.owner, epoch.camera, epoch.epoch, period, epoch.period_s, slot,
                   keys.slot_keys[slot][1], keys.content_key)

    @classmethod
    def periods_of_epoch(cls, epoch: Epoch, from_ms: int, to_ms: int,
                         holder: Optional[str] = None) -> List["Binding"]:
        """``holder``'s bindings for every period of ``epoch`` that holds a capture time in
        [from_ms, to_ms)."""
        first, last = epoch.period_of(from_ms), epoch.period_of(max(from_ms, to_ms - 1))
        return [cls.of_epoch(epoch, p, holder) for p in range(first, last + 1)]

    @classmethod
    def from_json(cls, data: Any, what: str = "grant") -> "Binding":
        if not isinstance(data, dict):
            raise KeyringError("%s: a grant is not an object" % what)
        period_s = _int(data.get("period_s"), what, "period_s", 60, 86400)
        try:
            check_period_s(period_s)
        except ValueError as exc:
            raise KeyringError("%s: %s" % (what, exc)) from None
        return cls(_hex_key(data.get("key_id"), what, KEY_ID_SIZE), _id(data.get("owner"), "owner", what),
                   _id(data.get("camera"), "camera", what), _epoch(data.get("epoch"), what),
                   _int(data.get("period"), what, "period", 0, (1 << 53) // (period_s * 1000)), period_s,
                   _int(data.get("slot", 0), what, "slot", 0, MAX_SLOTS - 1), _hex_key(data.get("key"), what),
                   _hex_key(data.get("content_key"), what, CONTENT_KEY_SIZE))


class EpochFile:
    """An epoch file: one epoch's root, its period length and who holds its slots (``segbind
    keys epoch``).

    What ``segbind tag`` tags with, standing in for a camera: it can make every
    slot's MAC, so it is the owner's secret, like the pairing it comes from.
    """

    @staticmethod
    def to_json(epoch: Epoch) -> Dict[str, Any]:
        return {"segbind": "epoch", "version": FILE_VERSION, "owner": epoch.owner,
                "camera": epoch.camera, "epoch": epoch.epoch, "shares": list(epoch.shares),
                "period_s": epoch.period_s, "root": epoch.root.hex()}

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
                         _hex_key(data.get("root"), where), _int(data.get("period_s"), where, "period_s", 60, 86400))
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None

    @staticmethod
    def save(epoch: Epoch, path: PathText) -> None:
        write_json(path, EpochFile.to_json(epoch))


class Keyring:
    """A holder's grants: key id -> the binding it names (owner, camera, epoch, period, slot,
    keys), plus the (owner, camera, epoch) it was told are revoked."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._keys: Dict[bytes, Binding] = {}
        self._revoked: Set[GrantId] = set()
        for binding in bindings:
            self.grant(binding)

    def __repr__(self) -> str:
        return "Keyring(%d grants, %d revoked)" % (len(self._keys), len(self._revoked))

    def __len__(self) -> int:
        return len(self._keys)

    def grant(self, binding: Binding) -> None:
        """Hold ``binding``'s keys; granting a revoked epoch again is refused."""
        gid = (binding.owner, binding.camera, binding.epoch)
        if gid in self._revoked:
            raise KeyringError("epoch %d of camera %r (owner %r) was revoked"
                               % (binding.epoch, binding.camera, binding.owner))
        self._keys[binding.key_id] = binding

    def grant_all(self, bindings: Iterable[Binding]) -> "Keyring":
        for binding in bindings:
            self.grant(binding)
        return self

    def mark_revoked(self, owner: str, camera: str, epoch: int) -> None:
        """Remember (owner, camera, epoch) as revoked: none of its periods can be granted again here."""
        for kid in [k for k, b in self._keys.items() if (b.owner, b.camera, b.epoch) == (owner, camera, epoch)]:
            del self._keys[kid]
        self._revoked.add((owner, camera, epoch))

    def revoke(self, owner: str, camera: str, below_epoch: int) -> None:
        """Drop every epoch of (owner, camera) below ``below_epoch``, and remember them."""
        for b in [b for b in self._keys.values() if (b.owner, b.camera) == (owner, camera) and b.epoch < below_epoch]:
            self.mark_revoked(b.owner, b.camera, b.epoch)

    def revoke_camera(self, camera: str) -> None:
        """Drop every grant for ``camera`` (the holder lost access to it)."""
        for b in [b for b in self._keys.values() if b.camera == camera]:
            self.mark_revoked(b.owner, b.camera, b.epoch)

    def drop_before(self, end_ms: int) -> int:
        """Forget periods that ended before ``end_ms`` (a display keeps a bounded keyring); how
        many were dropped."""
        old = [k for k, b in self._keys.items() if b.end_ms <= end_ms]
        for kid in old:
            del self._keys[kid]
        return len(old)

    def grants(self) -> List[GrantId]:
        """The (owner, camera, epoch) held, each once, sorted."""
        return sorted({(b.owner, b.camera, b.epoch) for b in self._keys.values()})

    def revoked_ids(self) -> List[GrantId]:
        """The revoked (owner, camera, epoch) entries, sorted."""
        return sorted(self._revoked)

    def binding(self, key_id: bytes) -> Binding:
        """The binding a key id names, or InvalidSegment(NO_GRANT) saying what is missing. A
        holder cannot tell a stranger's key id from one it was not granted: both are no grant."""
        found = self._keys.get(bytes(key_id))
        if found is not None:
            return found
        raise InvalidSegment(Reason.NO_GRANT, "no grant for key id %s (%d periods held)"
                             % (bytes(key_id).hex(), len(self._keys)))

    def binding_or_none(self, key_id: bytes) -> Optional[Binding]:
        return self._keys.get(key_id)

    def bindings(self) -> List[Binding]:
        return sorted(self._keys.values(), key=lambda b: (b.owner, b.camera, b.epoch, b.period, b.key_id))

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
