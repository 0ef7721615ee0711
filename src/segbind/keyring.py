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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from segbind_core.keys import CONTENT_KEY_SIZE, KEY_SIZE, SALT, Epoch, check_period_s
from segbind_core.tag import KEY_ID_SIZE, MAX_EPOCH, MAX_SLOTS

from .errors import GrantConflict, InvalidSegment, KeyringError
from .verdict import Reason

if TYPE_CHECKING:
    from os import PathLike

PathText = Union[str, "PathLike[str]"]

GrantId = Tuple[str, str, int]  # (owner, camera, epoch): for people; two pairings may share one
FILE_VERSION = 3
EPOCH_ID_SIZE = 16
EPOCH_ID_LABEL = b"segbind/v3 epoch id\x00"


def epoch_id(root: bytes) -> bytes:
    """EID(E) = HKDF(R(E), "segbind/v3", "segbind/v3 epoch id" 00, 16): the public name of one
    epoch of one pairing (FORMAT.md section 2).

    Epoch numbers restart at 1 in every pairing, so (owner, camera, epoch) does not name an
    epoch for good; EID does, as the root it comes from is fresh at every claim. It is
    one-way: it tells a holder nothing of the root or of any key. Only the owner's app makes
    it (it holds the root); holders and revoked entries carry it. The camera never needs it.
    """
    if len(root) != KEY_SIZE:
        raise ValueError("an epoch root is %d bytes" % KEY_SIZE)
    return HKDF(algorithm=hashes.SHA256(), length=EPOCH_ID_SIZE, salt=SALT, info=EPOCH_ID_LABEL).derive(root)


class EpochName(NamedTuple):
    """What names one epoch of one pairing, as a holder keeps it: the owner the issuer says it
    is, and its epoch id. Revoked entries are EpochNames; so is the key of a holder's revoked
    set. The owner is part of the name so that a contact can only ever name (and revoke) an
    epoch of its own, whatever epoch id it copies."""

    owner: str
    epoch_id: bytes

    def __repr__(self) -> str:
        return "EpochName(owner=%r, epoch id %s)" % (self.owner, self.epoch_id.hex())

    def to_json(self) -> Dict[str, Any]:
        return {"owner": self.owner, "epoch_id": self.epoch_id.hex()}

    @classmethod
    def from_json(cls, data: Any, what: str = "a revoked entry") -> "EpochName":
        if not isinstance(data, dict) or sorted(data) != ["epoch_id", "owner"]:
            raise KeyringError("%s must be an object with exactly owner, epoch_id" % what)
        return cls(_id(data["owner"], "owner", what), _hex_key(data["epoch_id"], what, EPOCH_ID_SIZE))


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
    names it in tags, whose it is (owner, camera, epoch, and the epoch id that names that
    epoch of that pairing), the period and its length, the holder's slot and slot key, and
    the period's content key. (A named tuple: immutable, and cheap to make.)

    Slot 0 is the owner's; slots from 1 are the accounts the epoch is shared with.
    """

    key_id: bytes
    owner: str
    camera: str
    epoch: int
    epoch_id: bytes
    period: int
    period_s: int
    slot: int
    key: bytes
    content_key: bytes

    def __repr__(self) -> str:
        return "Binding(owner=%r, camera=%r, epoch=%d, period=%d, slot=%d, key id %s, epoch id %s, keys=<hidden>)" % (
            self.owner, self.camera, self.epoch, self.period, self.slot, self.key_id.hex(), self.epoch_id.hex())

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

    @property
    def epoch_name(self) -> EpochName:
        """(owner, epoch id): the epoch of the pairing this period belongs to, as revoked entries name it."""
        return EpochName(self.owner, self.epoch_id)

    @property
    def epoch_facts(self) -> Tuple[str, int, int]:
        """(camera, epoch, period_s): what one epoch id stands for; every period of it agrees."""
        return self.camera, self.epoch, self.period_s

    def to_json(self) -> Dict[str, Any]:
        return {"key_id": self.key_id.hex(), "owner": self.owner, "camera": self.camera, "epoch": self.epoch,
                "epoch_id": self.epoch_id.hex(), "period": self.period, "period_s": self.period_s,
                "slot": self.slot, "key": self.key.hex(), "content_key": self.content_key.hex()}

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
        return cls(keys.key_id, epoch.owner, epoch.camera, epoch.epoch, epoch_id(epoch.root), period,
                   epoch.period_s, slot, keys.slot_keys[slot][1], keys.content_key)

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
                   _hex_key(data.get("epoch_id"), what, EPOCH_ID_SIZE),
                   _int(data.get("period"), what, "period", 0, ((1 << 53) - 1) // (period_s * 1000)), period_s,
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
    """A holder's grants: key id -> the binding it names (owner, camera, epoch, epoch id,
    period, slot, keys), plus the epochs it was told are revoked (by EpochName: an epoch of
    one pairing, never to be held again).

    What it holds is consistent, or ``grant`` refuses (``GrantConflict``): a key id names one
    binding (it is the only name a tag carries: rebinding it would move a camera's segments
    to another name), an epoch id names one camera, epoch and period length, and a revoked
    epoch is held no more.
    """

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._keys: Dict[bytes, Binding] = {}
        self._epochs: Dict[EpochName, Tuple[Tuple[str, int, int], int]] = {}  # -> (its facts, periods held)
        self._revoked: Set[EpochName] = set()
        for binding in bindings:
            self.grant(binding)

    def __repr__(self) -> str:
        return "Keyring(%d grants, %d revoked)" % (len(self._keys), len(self._revoked))

    def __len__(self) -> int:
        return len(self._keys)

    def conflict(self, binding: Binding) -> Optional[str]:
        """Why ``grant(binding)`` would be refused (one line, no key bytes), or None."""
        if binding.epoch_name in self._revoked:
            return "epoch %d of camera %r (owner %r, epoch id %s) was revoked here: never held again" % (
                binding.epoch, binding.camera, binding.owner, binding.epoch_id.hex())
        held = self._keys.get(binding.key_id)
        if held is not None and held != binding:
            return "key id %s is held here for another grant" % binding.key_id.hex()
        facts = self._epochs.get(binding.epoch_name)
        if facts is not None and facts[0] != binding.epoch_facts:
            return "epoch id %s of owner %r is held here for another camera, epoch or period length" % (
                binding.epoch_id.hex(), binding.owner)
        return None

    def grant(self, binding: Binding) -> None:
        """Hold ``binding``'s keys (again: the same binding twice is one grant). GrantConflict
        when it contradicts what is held (``conflict``): nothing changes then."""
        why = self.conflict(binding)
        if why is not None:
            raise GrantConflict(why)
        if binding.key_id in self._keys:
            return
        self._keys[binding.key_id] = binding
        facts = self._epochs.get(binding.epoch_name)
        self._epochs[binding.epoch_name] = (binding.epoch_facts, 1 if facts is None else facts[1] + 1)

    def grant_all(self, bindings: Iterable[Binding]) -> "Keyring":
        for binding in bindings:
            self.grant(binding)
        return self

    def _drop(self, key_id: bytes) -> None:
        binding = self._keys.pop(key_id)
        facts, count = self._epochs[binding.epoch_name]
        if count > 1:
            self._epochs[binding.epoch_name] = (facts, count - 1)
        else:
            del self._epochs[binding.epoch_name]

    def mark_revoked(self, name: EpochName) -> None:
        """Remember the epoch ``name`` as revoked: its periods are dropped, and none can be granted here again."""
        for kid in [k for k, b in self._keys.items() if b.epoch_name == name]:
            self._drop(kid)
        self._revoked.add(EpochName(*name))

    def revoke(self, owner: str, camera: str, below_epoch: int) -> None:
        """Revoke every epoch held of (owner, camera) below ``below_epoch`` (as ``mark_revoked``)."""
        for name in {b.epoch_name for b in self._keys.values()
                     if (b.owner, b.camera) == (owner, camera) and b.epoch < below_epoch}:
            self.mark_revoked(name)

    def revoke_camera(self, camera: str) -> None:
        """Revoke every epoch held of ``camera`` (the holder lost access to it)."""
        for name in {b.epoch_name for b in self._keys.values() if b.camera == camera}:
            self.mark_revoked(name)

    def drop_before(self, end_ms: int) -> int:
        """Forget periods that ended before ``end_ms`` (a display keeps a bounded keyring); how
        many were dropped."""
        old = [k for k, b in self._keys.items() if b.end_ms <= end_ms]
        for kid in old:
            self._drop(kid)
        return len(old)

    def grants(self) -> List[GrantId]:
        """The (owner, camera, epoch) held, each once, sorted (for people: two pairings of one
        camera may both have an epoch 1)."""
        return sorted({(b.owner, b.camera, b.epoch) for b in self._keys.values()})

    def revoked_ids(self) -> List[EpochName]:
        """The epochs revoked here, sorted."""
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
        return sorted(self._keys.values(), key=lambda b: (b.owner, b.camera, b.epoch, b.epoch_id, b.period, b.key_id))

    def to_json(self) -> Dict[str, Any]:
        return {
            "segbind": "keyring", "version": FILE_VERSION,
            "grants": [b.to_json() for b in self.bindings()],
            "revoked": [name.to_json() for name in sorted(self._revoked)],
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any], what: str = "keyring") -> "Keyring":
        grants, revoked = data.get("grants", []), data.get("revoked", [])
        if not isinstance(grants, list) or not isinstance(revoked, list):
            raise KeyringError("%s: grants and revoked must be lists" % what)
        ring = cls()
        for item in revoked:
            ring.mark_revoked(EpochName.from_json(item, "%s: a revoked entry" % what))
        for item in grants:
            binding = Binding.from_json(item, what)
            why = ring.conflict(binding)
            if why is not None:
                raise KeyringError("%s: %s" % (what, why))
            ring.grant(binding)
        return ring

    @classmethod
    def load(cls, path: PathText) -> "Keyring":
        return cls.from_json(read_json(path, "keyring"), str(path))

    def save(self, path: PathText) -> None:
        write_json(path, self.to_json())
