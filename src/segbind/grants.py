"""Owner-held keys: accounts, displays, services, grants and share offers (docs/GRANTS.md,
normative, format 3).

A display or a service verifies only what its owner granted it, period by period. The
owner's app signs each grant set and seals it to its recipient, so the cloud that stores
and carries it can neither read it nor change it; a grant the cloud delivers to the wrong
recipient, or one made by anyone but the pinned owner, is refused and changes nothing.

    owner = Account.new("alice");  screen = Display.new("tv-1")
    code = OutOfBand.enroll(owner, screen)            # both sides show it; the owner compares
    sealed = owner.grants_for(screen.card(), 1, bindings, cameras=[...])   # carried by the cloud
    keyring = DisplayGrants(screen).accept(sealed)    # or GrantError(reason)

A grant carries, for each period, the key id, the holder's slot key and the content key
(``segbind.keyring.Binding``), and nothing that derives another period's keys: a holder
the owner stops renewing verifies nothing captured after its last period ends.

Every primitive is the ``cryptography`` package's (Ed25519, X25519, HKDF-SHA256,
AES-256-GCM). Secret keys never appear in ``repr``, in logs or in error messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from segbind_core.keys import CONTENT_KEY_SIZE, KEY_SIZE, MAX_PERIOD_S, MIN_PERIOD_S
from segbind_core.tag import KEY_ID_SIZE, MAX_EPOCH, MAX_SLOTS, encode_id

from .errors import KeyringError, SegbindError
from .keyring import EPOCH_ID_SIZE, FILE_VERSION, Binding, EpochName, Keyring, read_json, write_json

if TYPE_CHECKING:
    from .verifier import StreamVerifier

VERSION = 3
GRANTS = "grants"
SHARE_OFFER = "share-offer"
SERVICE_GRANTS = "service-grants"
KINDS = (GRANTS, SHARE_OFFER, SERVICE_GRANTS)

SIGN_LABEL = b"segbind/v3 "
SEAL_LABEL = b"segbind/v3 seal\x00"
AAD_LABEL = b"segbind/v3 sealed\x00"
ENROLL_LABEL = b"segbind/v3 enroll\x00"
CARD_LABEL = b"segbind/v3 account-card\x00"
NONCE = bytes(12)  # safe: every message has a fresh ephemeral key, so each AES key is used once
SIGNATURE_SIZE = 64
MAX_U64 = (1 << 64) - 1
MAX_MS = (1 << 53) - 1
MAX_KEYS = 4096         # period grants in one message (GRANTS.md section 5)
MAX_ENTRIES = 1024      # camera and revoked entries in one message
DEFAULT_KEEP_MS = 24 * 3600 * 1000   # a holder keeps period keys a day after their period ended
DEFAULT_ALARM_AFTER_MS = 60_000      # a rotation unconfirmed this long raises an alarm

_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_SEALED_FIELDS = ("segbind", "version", "kind", "to", "to_pub", "from", "eph", "ciphertext")
_KEY_FIELDS = ("key_id", "owner", "camera", "epoch", "epoch_id", "period", "period_s", "slot", "key", "content_key")
_REVOKED_FIELDS = ("owner", "epoch_id")
_CAMERA_FIELDS = ("owner", "camera", "epoch", "since_ms", "pending")


class GrantRefusal(str, Enum):
    """Why a sealed message was refused: GRANTS.md section 7 (displays, services) and 9 (accounts)."""

    MALFORMED = "malformed"
    NOT_ENROLLED = "not_enrolled"
    NOT_FOR_THIS_DISPLAY = "not_for_this_display"
    CANNOT_OPEN = "cannot_open"
    NOT_FROM_OWNER = "not_from_owner"
    STALE = "stale"
    # Service grants (section 10): the same checks, named for a service.
    NOT_FOR_THIS_SERVICE = "not_for_this_service"
    # Share offers (section 9): the same checks, named for an account and its contact.
    NOT_FOR_THIS_ACCOUNT = "not_for_this_account"
    NOT_FROM_CONTACT = "not_from_contact"


class GrantError(SegbindError):
    """A sealed message, or a grant set, that is refused; ``reason`` says why, in one line."""

    def __init__(self, reason: GrantRefusal, detail: str) -> None:
        super().__init__("%s: %s" % (reason.value, detail))
        self.reason = reason
        self.detail = detail


# Per kind, the refusals for "addressed to someone else" and "not made by the expected issuer".
_REFUSALS = {
    GRANTS: (GrantRefusal.NOT_FOR_THIS_DISPLAY, GrantRefusal.NOT_FROM_OWNER),
    SERVICE_GRANTS: (GrantRefusal.NOT_FOR_THIS_SERVICE, GrantRefusal.NOT_FROM_OWNER),
    SHARE_OFFER: (GrantRefusal.NOT_FOR_THIS_ACCOUNT, GrantRefusal.NOT_FROM_CONTACT),
}


# -- validation: ValueError with a message naming the field, never the value -------------------

def _check_id(value: object, what: str, topic: bool = False) -> str:
    """A segbind id (FORMAT.md section 2); ``topic``: account and camera ids are MQTT levels too."""
    if not isinstance(value, str):
        raise ValueError("%s must be a string" % what)
    try:
        encode_id(value, what)
    except (ValueError, UnicodeError):
        raise ValueError("%s must be 1 to 32 bytes of UTF-8 without NUL" % what) from None
    if topic and any(c in value for c in "/+#"):
        raise ValueError("%s must not contain '/', '+' or '#'" % what)
    return value


def _unhex(value: object, what: str, size: Optional[int] = None) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError("%s must be lowercase hex" % what)
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise ValueError("%s must be %d bytes" % (what, size))
    return raw


def _uint(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError("%s must be an integer from %d to %d" % (what, low, high))
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError("%s must be true or false" % what)
    return value


def _object(data: object, kind: str, fields: Sequence[str], optional: Sequence[str] = ()) -> Dict[str, Any]:
    """``data`` as a segbind object of ``kind``, version 3, with exactly these fields."""
    if not isinstance(data, dict):
        raise ValueError("a %s is a JSON object" % kind)
    if data.get("segbind") != kind:
        raise ValueError("not a segbind %s" % kind)
    if type(data.get("version")) is not int or data["version"] != VERSION:
        raise ValueError("%s: unsupported version" % kind)
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError("%s: missing %s" % (kind, ", ".join(missing)))
    if any(f not in fields and f not in optional for f in data):
        raise ValueError("%s: unknown field" % kind)  # not named: a stray name could be key bytes
    return data


def _test_only(data: Dict[str, Any], what: str) -> bool:
    flag = data.get("test_only", False)
    if not isinstance(flag, bool):
        raise ValueError("%s: test_only must be true or false" % what)
    return flag


def _ed25519_pub(raw: bytes, what: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValueError("%s is not an Ed25519 public key" % what) from None


def _pub_bytes(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _secret_bytes(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _check_pub(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != KEY_SIZE:
        raise ValueError("%s must be %d bytes" % (what, KEY_SIZE))
    return value


# -- cards -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccountCard:
    """An account's public identity: what its displays and services pin, and its contacts seal
    offers to."""

    account: str
    signing_pub: bytes
    sealing_pub: bytes

    def __post_init__(self) -> None:
        try:
            _check_id(self.account, "account", topic=True)
            _check_pub(self.signing_pub, "signing_pub")
            _check_pub(self.sealing_pub, "sealing_pub")
            _ed25519_pub(self.signing_pub, "signing_pub")
        except ValueError as exc:
            raise KeyringError("account card: %s" % exc) from None

    def __repr__(self) -> str:
        return "AccountCard(account=%r, fingerprint=%s)" % (self.account, self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """32 hex digits naming the card (id and both keys), for people and logs."""
        return hashlib.sha256(CARD_LABEL + encode_id(self.account, "account")
                              + self.signing_pub + self.sealing_pub).hexdigest()[:32]

    def to_json(self) -> Dict[str, Any]:
        return {"segbind": "account-card", "version": VERSION, "account": self.account,
                "signing_pub": self.signing_pub.hex(), "sealing_pub": self.sealing_pub.hex()}

    @classmethod
    def from_json(cls, data: object, where: str = "account card") -> "AccountCard":
        """The card in ``data``, or KeyringError saying what is wrong with it."""
        try:
            obj = _object(data, "account-card", ("segbind", "version", "account", "signing_pub", "sealing_pub"))
            account = _check_id(obj["account"], "account", topic=True)
            signing_pub = _unhex(obj["signing_pub"], "signing_pub", KEY_SIZE)
            _ed25519_pub(signing_pub, "signing_pub")
            sealing_pub = _unhex(obj["sealing_pub"], "sealing_pub", KEY_SIZE)
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        return cls(account, signing_pub, sealing_pub)


@dataclass(frozen=True)
class DisplayCard:
    """A display's public identity: what its owner's app seals grants to."""

    display: str
    sealing_pub: bytes

    def __post_init__(self) -> None:
        try:
            _check_id(self.display, "display")
            _check_pub(self.sealing_pub, "sealing_pub")
        except ValueError as exc:
            raise KeyringError("display card: %s" % exc) from None

    def __repr__(self) -> str:
        return "DisplayCard(display=%r, sealing_pub=%s)" % (self.display, self.sealing_pub.hex())

    def to_json(self) -> Dict[str, Any]:
        return {"segbind": "display-card", "version": VERSION, "display": self.display,
                "sealing_pub": self.sealing_pub.hex()}

    @classmethod
    def from_json(cls, data: object, where: str = "display card") -> "DisplayCard":
        """The card in ``data``, or KeyringError saying what is wrong with it."""
        try:
            obj = _object(data, "display-card", ("segbind", "version", "display", "sealing_pub"))
            display = _check_id(obj["display"], "display")
            sealing_pub = _unhex(obj["sealing_pub"], "sealing_pub", KEY_SIZE)
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        return cls(display, sealing_pub)


@dataclass(frozen=True)
class ServiceCard:
    """A service's public identity (a cloud recording or event service that verifies and
    decrypts on its owners' behalf): what an owner's app seals service grants to."""

    service: str
    sealing_pub: bytes

    def __post_init__(self) -> None:
        try:
            _check_id(self.service, "service", topic=True)
            _check_pub(self.sealing_pub, "sealing_pub")
        except ValueError as exc:
            raise KeyringError("service card: %s" % exc) from None

    def __repr__(self) -> str:
        return "ServiceCard(service=%r, sealing_pub=%s)" % (self.service, self.sealing_pub.hex())

    def to_json(self) -> Dict[str, Any]:
        return {"segbind": "service-card", "version": VERSION, "service": self.service,
                "sealing_pub": self.sealing_pub.hex()}

    @classmethod
    def from_json(cls, data: object, where: str = "service card") -> "ServiceCard":
        try:
            obj = _object(data, "service-card", ("segbind", "version", "service", "sealing_pub"))
            service = _check_id(obj["service"], "service", topic=True)
            sealing_pub = _unhex(obj["sealing_pub"], "sealing_pub", KEY_SIZE)
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        return cls(service, sealing_pub)


def enrollment_code(holder_card: DisplayCard | ServiceCard, account_card: AccountCard) -> str:
    """The eight characters both sides show at enrollment (section 3): a swapped card changes them."""
    digest = hashlib.sha256(ENROLL_LABEL + holder_card.sealing_pub + account_card.signing_pub).digest()
    return base64.b32encode(digest[:5]).decode("ascii")


# -- messages (section 5) -----------------------------------------------------------------------

class CameraState(NamedTuple):
    """What the owner's grants say of one of its cameras (section 5): ``epoch`` is the newest
    epoch the owner issued, since ``since_ms`` (the app's clock); ``pending`` while the camera
    has not confirmed it. A display flags video still tagged under an older epoch, and raises
    an alarm when a rotation stays pending past the grants' ``alarm_after_ms``."""

    owner: str
    camera: str
    epoch: int
    since_ms: int
    pending: bool

    @property
    def stream(self) -> Tuple[str, str]:
        return self.owner, self.camera

    def to_json(self) -> Dict[str, Any]:
        return {"owner": self.owner, "camera": self.camera, "epoch": self.epoch, "since_ms": self.since_ms,
                "pending": self.pending}

    @classmethod
    def from_json(cls, data: object) -> "CameraState":
        e = _entry(data, _CAMERA_FIELDS, "a camera entry")
        return cls(_check_id(e["owner"], "a camera entry's owner", topic=True),
                   _check_id(e["camera"], "a camera entry's camera", topic=True),
                   _uint(e["epoch"], "a camera entry's epoch", 1, MAX_EPOCH),
                   _uint(e["since_ms"], "a camera entry's since_ms", 0, MAX_MS),
                   _bool(e["pending"], "a camera entry's pending"))


def _entry(data: object, fields: Sequence[str], what: str) -> Dict[str, Any]:
    if not isinstance(data, dict) or sorted(data) != sorted(fields):
        raise ValueError("%s must be an object with exactly %s" % (what, ", ".join(fields)))
    return data


def _binding_of(data: object) -> Binding:
    """One period grant (section 5), strictly: exactly its fields, each in range."""
    e = _entry(data, _KEY_FIELDS, "a key")
    period_s = _uint(e["period_s"], "a key's period_s", MIN_PERIOD_S, MAX_PERIOD_S)
    return Binding(_unhex(e["key_id"], "a key id", KEY_ID_SIZE),
                   _check_id(e["owner"], "a key's owner", topic=True),
                   _check_id(e["camera"], "a key's camera", topic=True),
                   _uint(e["epoch"], "a key's epoch", 1, MAX_EPOCH),
                   _unhex(e["epoch_id"], "an epoch id", EPOCH_ID_SIZE),
                   _uint(e["period"], "a key's period", 0, MAX_MS // (period_s * 1000)),
                   period_s,
                   _uint(e["slot"], "a key's slot", 0, MAX_SLOTS - 1),
                   _unhex(e["key"], "a slot key", KEY_SIZE),
                   _unhex(e["content_key"], "a content key", CONTENT_KEY_SIZE))


def _check_keys(keys: Sequence[Binding]) -> None:
    """Every field in range; a key id granted once; an epoch's period granted once; every period
    of one epoch (one (owner, epoch id)) of one camera, epoch number and period length."""
    if len(keys) > MAX_KEYS:
        raise ValueError("at most %d keys in one message" % MAX_KEYS)
    ids: Set[bytes] = set()
    periods: Set[Tuple[EpochName, int]] = set()
    facts: Dict[EpochName, Tuple[str, int, int]] = {}
    for b in keys:
        if not isinstance(b, Binding):
            raise ValueError("keys must be Bindings")
        if not isinstance(b.key_id, bytes) or len(b.key_id) != KEY_ID_SIZE:
            raise ValueError("a key id must be %d bytes" % KEY_ID_SIZE)
        _check_id(b.owner, "a key's owner", topic=True)
        _check_id(b.camera, "a key's camera", topic=True)
        _uint(b.epoch, "a key's epoch", 1, MAX_EPOCH)
        if not isinstance(b.epoch_id, bytes) or len(b.epoch_id) != EPOCH_ID_SIZE:
            raise ValueError("an epoch id must be %d bytes" % EPOCH_ID_SIZE)
        _uint(b.period_s, "a key's period_s", MIN_PERIOD_S, MAX_PERIOD_S)
        _uint(b.period, "a key's period", 0, MAX_MS // (b.period_s * 1000))
        _uint(b.slot, "a key's slot", 0, MAX_SLOTS - 1)
        if not isinstance(b.key, bytes) or len(b.key) != KEY_SIZE:
            raise ValueError("a slot key must be %d bytes" % KEY_SIZE)
        if not isinstance(b.content_key, bytes) or len(b.content_key) != CONTENT_KEY_SIZE:
            raise ValueError("a content key must be %d bytes" % CONTENT_KEY_SIZE)
        if b.key_id in ids:
            raise ValueError("a key id is granted twice")
        ids.add(b.key_id)
        if (b.epoch_name, b.period) in periods:
            raise ValueError("period %d of epoch %d of camera %r is granted twice" % (b.period, b.epoch, b.camera))
        periods.add((b.epoch_name, b.period))
        if facts.setdefault(b.epoch_name, b.epoch_facts) != b.epoch_facts:
            raise ValueError("epoch id %s names two cameras, epochs or period lengths" % b.epoch_id.hex())


def _check_revoked(revoked: Sequence[EpochName], keys: Sequence[Binding]) -> None:
    if len(revoked) > MAX_ENTRIES:
        raise ValueError("at most %d revoked entries" % MAX_ENTRIES)
    granted = {b.epoch_name for b in keys}
    gone: Set[EpochName] = set()
    for entry in revoked:
        if not isinstance(entry, EpochName):
            raise ValueError("a revoked entry is an EpochName (owner, epoch id)")
        _check_id(entry.owner, "a revoked owner", topic=True)
        if not isinstance(entry.epoch_id, bytes) or len(entry.epoch_id) != EPOCH_ID_SIZE:
            raise ValueError("a revoked epoch id must be %d bytes" % EPOCH_ID_SIZE)
        if entry in granted:
            raise ValueError("epoch id %s is both granted and revoked" % entry.epoch_id.hex())
        if entry in gone:
            raise ValueError("epoch id %s is revoked twice" % entry.epoch_id.hex())
        gone.add(entry)


def _check_cameras(cameras: Sequence[CameraState], issuer: str) -> None:
    if len(cameras) > MAX_ENTRIES:
        raise ValueError("at most %d camera entries" % MAX_ENTRIES)
    seen: Set[Tuple[str, str]] = set()
    for entry in cameras:
        if not isinstance(entry, CameraState):
            raise ValueError("cameras must be CameraStates")
        CameraState.from_json(entry.to_json())  # every field in range
        if entry.owner != issuer:
            raise ValueError("a camera entry names only the issuer's own cameras")
        if entry.stream in seen:
            raise ValueError("camera %r has two entries" % entry.camera)
        seen.add(entry.stream)


def _parse_keys(value: object) -> List[Binding]:
    if not isinstance(value, list):
        raise ValueError("keys must be a list")
    if len(value) > MAX_KEYS:
        raise ValueError("at most %d keys in one message" % MAX_KEYS)
    return [_binding_of(item) for item in value]


def _parse_revoked(value: object) -> List[EpochName]:
    if not isinstance(value, list):
        raise ValueError("revoked must be a list")
    if len(value) > MAX_ENTRIES:
        raise ValueError("at most %d revoked entries" % MAX_ENTRIES)
    out = []
    for item in value:
        e = _entry(item, _REVOKED_FIELDS, "a revoked entry")
        out.append(EpochName(_check_id(e["owner"], "a revoked owner", topic=True),
                             _unhex(e["epoch_id"], "a revoked epoch id", EPOCH_ID_SIZE)))
    return out


def _parse_cameras(value: object) -> List[CameraState]:
    if not isinstance(value, list):
        raise ValueError("cameras must be a list")
    if len(value) > MAX_ENTRIES:
        raise ValueError("at most %d camera entries" % MAX_ENTRIES)
    return [CameraState.from_json(item) for item in value]


def _revoked_json(revoked: Sequence[EpochName]) -> List[Dict[str, Any]]:
    return [entry.to_json() for entry in revoked]


def _canonical(obj: Dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("a field appears twice")
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError("%s is not JSON" % name)


def _json_payload(payload: bytes, kind: str, fields: Sequence[str]) -> Dict[str, Any]:
    if not isinstance(payload, bytes):
        raise ValueError("a payload is bytes")
    try:
        data = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=_refuse_constant)
    except (UnicodeError, RecursionError):
        raise ValueError("%s: not UTF-8 JSON" % kind) from None
    except ValueError:
        raise ValueError("%s: not valid JSON" % kind) from None
    return _object(data, kind, fields)


@dataclass(frozen=True)
class GrantSet:
    """What an owner grants one of its displays: the payload of a ``grants`` message.

    ``keys``: period grants (its own cameras' slot 0, and the slots its contacts shared with
    it); ``cameras``: each of its own cameras' newest epoch and whether it is still pending;
    ``alarm_after_ms``: how long a pending rotation may last before the display raises an
    alarm; ``revoked``: epochs never to be held again.
    """

    issuer: str
    display: str
    display_pub: bytes
    serial: int
    issued_ms: int
    keys: List[Binding]
    revoked: List[EpochName]
    cameras: List[CameraState]
    alarm_after_ms: int = DEFAULT_ALARM_AFTER_MS

    _FIELDS = ("segbind", "version", "issuer", "display", "display_pub", "serial", "issued_ms", "keys",
               "revoked", "cameras", "alarm_after_ms")

    def __post_init__(self) -> None:
        try:
            _check_id(self.issuer, "issuer", topic=True)
            _check_id(self.display, "display")
            _check_pub(self.display_pub, "display_pub")
            _uint(self.serial, "serial", 1, MAX_U64)
            _uint(self.issued_ms, "issued_ms", 0, MAX_MS)
            _uint(self.alarm_after_ms, "alarm_after_ms", 0, MAX_MS)
            _check_keys(self.keys)
            _check_revoked(self.revoked, self.keys)
            _check_cameras(self.cameras, self.issuer)
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, "grants: %s" % exc) from None

    def __repr__(self) -> str:
        return "GrantSet(issuer=%r, display=%r, serial=%d, %d keys, %d cameras, %d revoked)" % (
            self.issuer, self.display, self.serial, len(self.keys), len(self.cameras), len(self.revoked))

    def to_payload(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, UTF-8): the bytes that are signed and sealed."""
        return _canonical({"segbind": GRANTS, "version": VERSION, "issuer": self.issuer, "display": self.display,
                           "display_pub": self.display_pub.hex(), "serial": self.serial,
                           "issued_ms": self.issued_ms, "keys": [b.to_json() for b in self.keys],
                           "revoked": _revoked_json(self.revoked), "cameras": [c.to_json() for c in self.cameras],
                           "alarm_after_ms": self.alarm_after_ms})

    @classmethod
    def from_payload(cls, payload: bytes) -> "GrantSet":
        """The grant set in ``payload``, or GrantError(malformed) saying what is wrong."""
        try:
            obj = _json_payload(payload, GRANTS, cls._FIELDS)
            return cls(obj["issuer"], obj["display"], _unhex(obj["display_pub"], "display_pub", KEY_SIZE),
                       obj["serial"], obj["issued_ms"], _parse_keys(obj["keys"]), _parse_revoked(obj["revoked"]),
                       _parse_cameras(obj["cameras"]), obj["alarm_after_ms"])
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None


@dataclass(frozen=True)
class ServiceGrantSet:
    """What an owner grants a service: the payload of a ``service-grants`` message. Only the
    issuer's own cameras, in its own slot (0): a contact shared a camera with the issuer's
    displays, not with the cloud services it uses."""

    issuer: str
    service: str
    service_pub: bytes
    serial: int
    issued_ms: int
    keys: List[Binding]
    revoked: List[EpochName]

    _FIELDS = ("segbind", "version", "issuer", "service", "service_pub", "serial", "issued_ms", "keys", "revoked")

    def __post_init__(self) -> None:
        try:
            _check_id(self.issuer, "issuer", topic=True)
            _check_id(self.service, "service", topic=True)
            _check_pub(self.service_pub, "service_pub")
            _uint(self.serial, "serial", 1, MAX_U64)
            _uint(self.issued_ms, "issued_ms", 0, MAX_MS)
            _check_keys(self.keys)
            _check_revoked(self.revoked, self.keys)
            if any(b.owner != self.issuer or b.slot != 0 for b in self.keys) or any(
                    r.owner != self.issuer for r in self.revoked):
                raise ValueError("a service is granted only the issuer's own cameras, in slot 0")
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, "service-grants: %s" % exc) from None

    def __repr__(self) -> str:
        return "ServiceGrantSet(issuer=%r, service=%r, serial=%d, %d keys, %d revoked)" % (
            self.issuer, self.service, self.serial, len(self.keys), len(self.revoked))

    def to_payload(self) -> bytes:
        return _canonical({"segbind": SERVICE_GRANTS, "version": VERSION, "issuer": self.issuer,
                           "service": self.service, "service_pub": self.service_pub.hex(), "serial": self.serial,
                           "issued_ms": self.issued_ms, "keys": [b.to_json() for b in self.keys],
                           "revoked": _revoked_json(self.revoked)})

    @classmethod
    def from_payload(cls, payload: bytes) -> "ServiceGrantSet":
        try:
            obj = _json_payload(payload, SERVICE_GRANTS, cls._FIELDS)
            return cls(obj["issuer"], obj["service"], _unhex(obj["service_pub"], "service_pub", KEY_SIZE),
                       obj["serial"], obj["issued_ms"], _parse_keys(obj["keys"]), _parse_revoked(obj["revoked"]))
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None


@dataclass(frozen=True)
class ShareOffer:
    """Period keys one account offers another: the payload of a ``share-offer`` message.

    An offer carries only the issuer's own cameras, and never slot 0 (the owner's key):
    with it the receiver could make tags the issuer's own displays take as the owner's.
    """

    issuer: str
    to: str
    serial: int
    issued_ms: int
    keys: List[Binding]
    revoked: List[EpochName]

    _FIELDS = ("segbind", "version", "issuer", "to", "serial", "issued_ms", "keys", "revoked")

    def __post_init__(self) -> None:
        try:
            _check_id(self.issuer, "issuer", topic=True)
            _check_id(self.to, "to", topic=True)
            _uint(self.serial, "serial", 1, MAX_U64)
            _uint(self.issued_ms, "issued_ms", 0, MAX_MS)
            _check_keys(self.keys)
            _check_revoked(self.revoked, self.keys)
            owners = {b.owner for b in self.keys} | {r.owner for r in self.revoked}
            if owners - {self.issuer}:
                raise ValueError("an offer carries only the issuer's own cameras")
            if any(b.slot == 0 for b in self.keys):
                raise ValueError("an offer never carries slot 0, the owner's")
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, "share-offer: %s" % exc) from None

    def __repr__(self) -> str:
        return "ShareOffer(issuer=%r, to=%r, serial=%d, %d keys, %d revoked)" % (
            self.issuer, self.to, self.serial, len(self.keys), len(self.revoked))

    def to_payload(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, UTF-8): the bytes that are signed and sealed."""
        return _canonical({"segbind": SHARE_OFFER, "version": VERSION, "issuer": self.issuer, "to": self.to,
                           "serial": self.serial, "issued_ms": self.issued_ms,
                           "keys": [b.to_json() for b in self.keys], "revoked": _revoked_json(self.revoked)})

    @classmethod
    def from_payload(cls, payload: bytes) -> "ShareOffer":
        """The offer in ``payload``, or GrantError(malformed) saying what is wrong."""
        try:
            obj = _json_payload(payload, SHARE_OFFER, cls._FIELDS)
            return cls(obj["issuer"], obj["to"], obj["serial"], obj["issued_ms"], _parse_keys(obj["keys"]),
                       _parse_revoked(obj["revoked"]))
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None


# -- the parties that hold secrets ---------------------------------------------------------------

def _now_ms() -> int:
    return int(time.time() * 1000)


class Account:
    """An owner's account, as its app holds it: it signs what it issues, and opens what is sealed to it."""

    def __init__(self, account: str, signing_key: Ed25519PrivateKey, sealing_key: X25519PrivateKey,
                 test_only: bool = False) -> None:
        try:
            self.account = _check_id(account, "account", topic=True)
        except ValueError as exc:
            raise KeyringError("account: %s" % exc) from None
        self._signing_key = signing_key
        self._sealing_key = sealing_key
        self.test_only = test_only

    @classmethod
    def new(cls, account_id: str, test_only: bool = False) -> "Account":
        """Fresh keys: made on the owner's device, they never leave it but in a 0600 file."""
        return cls(account_id, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), test_only)

    def __repr__(self) -> str:
        return "Account(%r, fingerprint=%s%s)" % (
            self.account, self.card().fingerprint, ", test_only" if self.test_only else "")

    @property
    def sealing_pub(self) -> bytes:
        return _pub_bytes(self._sealing_key.public_key())

    def card(self) -> AccountCard:
        return AccountCard(self.account, _pub_bytes(self._signing_key.public_key()), self.sealing_pub)

    def sign(self, kind: str, payload: bytes) -> bytes:
        """Ed25519 over "segbind/v3 " || kind || 00 || payload: a signature for one kind only."""
        return self._signing_key.sign(_signed(kind, payload))

    @classmethod
    def from_json(cls, data: object, where: str = "account") -> "Account":
        try:
            obj = _object(data, "account", ("segbind", "version", "account", "signing_key", "sealing_key"),
                          ("test_only",))
            return cls(_check_id(obj["account"], "account", topic=True),
                       Ed25519PrivateKey.from_private_bytes(_unhex(obj["signing_key"], "signing_key", KEY_SIZE)),
                       X25519PrivateKey.from_private_bytes(_unhex(obj["sealing_key"], "sealing_key", KEY_SIZE)),
                       _test_only(obj, "account"))
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None

    def to_json(self) -> Dict[str, Any]:
        """The account file's content, secret keys included: only for a 0600 file of its own device."""
        data: Dict[str, Any] = {"segbind": "account", "version": FILE_VERSION, "account": self.account,
                                "signing_key": _secret_bytes(self._signing_key).hex(),
                                "sealing_key": _secret_bytes(self._sealing_key).hex()}
        if self.test_only:
            data["test_only"] = True
        return data

    @classmethod
    def load(cls, path: Path | str) -> "Account":
        return cls.from_json(read_json(path, "account"), str(path))

    def save(self, path: Path | str) -> None:
        """Written atomically, 0600: this file is the account."""
        write_json(path, self.to_json())

    def grants_for(self, display_card: DisplayCard, serial: int, keys: Iterable[Binding],
                   revoked: Iterable[EpochName] = (), issued_ms: Optional[int] = None,
                   cameras: Iterable[CameraState] = (),
                   alarm_after_ms: int = DEFAULT_ALARM_AFTER_MS) -> Dict[str, Any]:
        """A sealed ``grants`` message to one of the account's displays, above every serial it holds."""
        grant_set = GrantSet(self.account, display_card.display, display_card.sealing_pub, serial,
                             _now_ms() if issued_ms is None else issued_ms, list(keys), list(revoked),
                             list(cameras), alarm_after_ms)
        return seal(self, GRANTS, display_card.display, display_card.sealing_pub, grant_set.to_payload())

    def service_grants_for(self, service_card: ServiceCard, serial: int, keys: Iterable[Binding],
                           revoked: Iterable[EpochName] = (), issued_ms: Optional[int] = None) -> Dict[str, Any]:
        """A sealed ``service-grants`` message to a service the account enrolled."""
        grant_set = ServiceGrantSet(self.account, service_card.service, service_card.sealing_pub, serial,
                                    _now_ms() if issued_ms is None else issued_ms, list(keys), list(revoked))
        return seal(self, SERVICE_GRANTS, service_card.service, service_card.sealing_pub, grant_set.to_payload())

    def offer_share(self, to_card: AccountCard, serial: int, keys: Iterable[Binding],
                    revoked: Iterable[EpochName] = (), issued_ms: Optional[int] = None) -> Dict[str, Any]:
        """A sealed ``share-offer`` to a contact: the period keys of its slot in the issuer's cameras."""
        offer = ShareOffer(self.account, to_card.account, serial, _now_ms() if issued_ms is None else issued_ms,
                           list(keys), list(revoked))
        return seal(self, SHARE_OFFER, to_card.account, to_card.sealing_pub, offer.to_payload())

    def open_offer(self, sealed: object, from_card: AccountCard, after_serial: int = 0) -> ShareOffer:
        """A contact's offer, checked like a display checks grants (section 9), or GrantError.

        ``from_card`` is the contact's card from the out-of-band exchange, never from the
        cloud. An offer with a serial at or below ``after_serial`` (the last one taken from
        this contact) is ``stale``. Taking the keys is the owner's app's decision, then its grants.
        """
        payload = open_sealed(sealed, SHARE_OFFER, self.account, self._sealing_key, self.sealing_pub, from_card)
        offer = ShareOffer.from_payload(payload)
        if offer.issuer != from_card.account:
            raise GrantError(GrantRefusal.NOT_FROM_CONTACT, "the offer names another issuer than its signer")
        if offer.to != self.account:
            raise GrantError(GrantRefusal.NOT_FOR_THIS_ACCOUNT, "the offer is addressed to another account")
        if offer.serial <= after_serial:
            raise GrantError(GrantRefusal.STALE, "offer serial %d is not above %d" % (offer.serial, after_serial))
        return offer


class Display:
    """A display's identity (its sealing key) and the owner it pinned at enrollment."""

    def __init__(self, display: str, sealing_key: X25519PrivateKey, owner: Optional[AccountCard] = None,
                 test_only: bool = False) -> None:
        try:
            self.display = _check_id(display, "display")
        except ValueError as exc:
            raise KeyringError("display: %s" % exc) from None
        self._sealing_key = sealing_key
        self._owner = owner
        self.test_only = test_only

    @classmethod
    def new(cls, display_id: str, test_only: bool = False) -> "Display":
        """A fresh key and no owner: what a display is after a reset, until it is enrolled."""
        return cls(display_id, X25519PrivateKey.generate(), None, test_only)

    def __repr__(self) -> str:
        owner = self._owner.account if self._owner is not None else None
        return "Display(%r, owner=%r%s)" % (self.display, owner, ", test_only" if self.test_only else "")

    @property
    def sealing_pub(self) -> bytes:
        return _pub_bytes(self._sealing_key.public_key())

    @property
    def owner(self) -> Optional[AccountCard]:
        """The pinned owner's card, or None: a display that was never enrolled."""
        return self._owner

    def card(self) -> DisplayCard:
        return DisplayCard(self.display, self.sealing_pub)

    def pin(self, owner_card: AccountCard) -> None:
        """Pin the owner for good: grants are taken from this key only, until the display is reset."""
        if self._owner is not None and self._owner != owner_card:
            raise KeyringError("display %r is enrolled to another account: reset it first" % self.display)
        self._owner = owner_card

    def open(self, sealed: object) -> bytes:
        """The payload of a ``grants`` message sealed to this display by its pinned owner
        (checks 1 to 4 of section 7), or GrantError."""
        if self._owner is None:
            raise GrantError(GrantRefusal.NOT_ENROLLED, "display %r has no owner: enroll it first" % self.display)
        return open_sealed(sealed, GRANTS, self.display, self._sealing_key, self.sealing_pub, self._owner)

    @classmethod
    def load(cls, path: Path | str) -> "Display":
        data = read_json(path, "display")
        try:
            obj = _object(data, "display", ("segbind", "version", "display", "sealing_key", "owner"), ("test_only",))
            owner = None if obj["owner"] is None else AccountCard.from_json(obj["owner"], "owner")
            return cls(_check_id(obj["display"], "display"),
                       X25519PrivateKey.from_private_bytes(_unhex(obj["sealing_key"], "sealing_key", KEY_SIZE)),
                       owner, _test_only(obj, "display"))
        except (ValueError, KeyringError) as exc:
            raise KeyringError("%s: %s" % (path, exc)) from None

    def save(self, path: Path | str) -> None:
        """Written atomically, 0600: the sealing key is the display's secret."""
        data: Dict[str, Any] = {"segbind": "display", "version": FILE_VERSION, "display": self.display,
                                "sealing_key": _secret_bytes(self._sealing_key).hex(),
                                "owner": None if self._owner is None else self._owner.to_json()}
        if self.test_only:
            data["test_only"] = True
        write_json(path, data)


class Service:
    """A service's identity (its sealing key) and the accounts that enrolled it, each pinned
    by its card (section 10). A service works for many owners and keeps each one's grants
    apart (``ServiceGrants``)."""

    def __init__(self, service: str, sealing_key: X25519PrivateKey,
                 accounts: Optional[Dict[str, AccountCard]] = None, test_only: bool = False) -> None:
        try:
            self.service = _check_id(service, "service", topic=True)
        except ValueError as exc:
            raise KeyringError("service: %s" % exc) from None
        self._sealing_key = sealing_key
        self._accounts: Dict[str, AccountCard] = dict(accounts or {})
        self.test_only = test_only

    @classmethod
    def new(cls, service_id: str, test_only: bool = False) -> "Service":
        return cls(service_id, X25519PrivateKey.generate(), None, test_only)

    def __repr__(self) -> str:
        return "Service(%r, %d accounts%s)" % (self.service, len(self._accounts),
                                               ", test_only" if self.test_only else "")

    @property
    def sealing_pub(self) -> bytes:
        return _pub_bytes(self._sealing_key.public_key())

    def card(self) -> ServiceCard:
        return ServiceCard(self.service, self.sealing_pub)

    @property
    def accounts(self) -> Dict[str, AccountCard]:
        """The enrolled accounts' pinned cards, by account id (a copy)."""
        return dict(self._accounts)

    def enroll(self, account_card: AccountCard) -> str:
        """Pin ``account_card`` for its account id (section 10); the code the owner's app compares.
        Another card for an account already enrolled is refused until that account leaves."""
        known = self._accounts.get(account_card.account)
        if known is not None and known != account_card:
            raise KeyringError("account %r is enrolled here with another key: it must leave first"
                               % account_card.account)
        self._accounts[account_card.account] = account_card
        return enrollment_code(self.card(), account_card)

    def leave(self, account: str) -> None:
        """Forget an account (it unenrolled, or closed): nothing it granted is taken again."""
        self._accounts.pop(account, None)

    def open(self, sealed: object) -> Tuple[str, bytes]:
        """(account, payload) of a ``service-grants`` message sealed here by an enrolled account
        (checks 1 to 4 of section 10), or GrantError. The envelope's ``from`` only picks the
        pinned card the signature must verify under."""
        issuer = sealed.get("from") if isinstance(sealed, dict) else None
        card = self._accounts.get(issuer) if isinstance(issuer, str) else None
        if card is None:
            raise GrantError(GrantRefusal.NOT_ENROLLED, "the issuer has not enrolled service %r" % self.service)
        return card.account, open_sealed(sealed, SERVICE_GRANTS, self.service, self._sealing_key,
                                         self.sealing_pub, card)

    @classmethod
    def load(cls, path: Path | str) -> "Service":
        data = read_json(path, "service")
        try:
            obj = _object(data, "service", ("segbind", "version", "service", "sealing_key", "accounts"),
                          ("test_only",))
            if not isinstance(obj["accounts"], list):
                raise ValueError("accounts must be a list of account cards")
            cards = [AccountCard.from_json(c, "an enrolled account") for c in obj["accounts"]]
            return cls(_check_id(obj["service"], "service", topic=True),
                       X25519PrivateKey.from_private_bytes(_unhex(obj["sealing_key"], "sealing_key", KEY_SIZE)),
                       {c.account: c for c in cards}, _test_only(obj, "service"))
        except (ValueError, KeyringError) as exc:
            raise KeyringError("%s: %s" % (path, exc)) from None

    def save(self, path: Path | str) -> None:
        """Written atomically, 0600."""
        data: Dict[str, Any] = {"segbind": "service", "version": FILE_VERSION, "service": self.service,
                                "sealing_key": _secret_bytes(self._sealing_key).hex(),
                                "accounts": [c.to_json() for _, c in sorted(self._accounts.items())]}
        if self.test_only:
            data["test_only"] = True
        write_json(path, data)


# -- sealed, signed messages (section 4) ----------------------------------------------------------

def _signed(kind: str, payload: bytes) -> bytes:
    return SIGN_LABEL + kind.encode("ascii") + b"\x00" + payload


def _seal_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes, kind: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=SEAL_LABEL + kind.encode("ascii")).derive(shared)


def _aad(kind: str, recipient_id: str, issuer_id: str) -> bytes:
    return (AAD_LABEL + kind.encode("ascii") + b"\x00" + encode_id(recipient_id, "recipient")
            + encode_id(issuer_id, "issuer"))


def seal(issuer: Account, kind: str, recipient_id: str, recipient_pub: bytes, payload: bytes,
         _ephemeral: Optional[X25519PrivateKey] = None) -> Dict[str, Any]:
    """Sign ``payload`` as ``issuer`` and seal it to the recipient's key: only it can open it.

    ``_ephemeral`` is for the test vectors alone (tools/make_grant_vectors.py): a sealed
    message's ephemeral key is fresh every time, or its AES key would be used twice.
    """
    if kind not in KINDS:
        raise GrantError(GrantRefusal.MALFORMED, "unknown message kind")
    if len(payload) > 0xFFFFFFFF:
        raise GrantError(GrantRefusal.MALFORMED, "payload too large")
    try:
        _check_id(recipient_id, "recipient")
        _check_pub(recipient_pub, "recipient sealing_pub")
        eph = _ephemeral if _ephemeral is not None else X25519PrivateKey.generate()
        eph_pub = _pub_bytes(eph.public_key())
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_pub))
    except ValueError as exc:  # includes a low-order recipient key (an all-zero shared secret)
        raise GrantError(GrantRefusal.MALFORMED, "cannot seal: %s" % exc) from None
    plaintext = len(payload).to_bytes(4, "big") + payload + issuer.sign(kind, payload)
    ciphertext = AESGCM(_seal_key(shared, eph_pub, recipient_pub, kind)).encrypt(
        NONCE, plaintext, _aad(kind, recipient_id, issuer.account))
    return {"segbind": "sealed", "version": VERSION, "kind": kind, "to": recipient_id,
            "to_pub": recipient_pub.hex(), "from": issuer.account, "eph": eph_pub.hex(),
            "ciphertext": ciphertext.hex()}


def open_sealed(sealed: object, kind: str, recipient_id: str, recipient_private_key: X25519PrivateKey,
                recipient_pub: bytes, issuer_card: AccountCard) -> bytes:
    """The payload of a sealed message, after checks 1 to 4 of section 7 in order; else GrantError.

    The refusals are named for ``kind``: a display's (``grants``), a service's
    (``service-grants``) or an account's (``share-offer``).
    """
    not_for, not_from = _REFUSALS.get(kind, (GrantRefusal.MALFORMED, GrantRefusal.MALFORMED))
    # 1. it parses: version 3, the expected kind
    try:
        env = _object(sealed, "sealed", _SEALED_FIELDS)
        if env["kind"] != kind:
            raise ValueError("sealed: a %s message is expected here" % kind)
        to = _check_id(env["to"], "to")
        to_pub = _unhex(env["to_pub"], "to_pub", KEY_SIZE)
        issuer = _check_id(env["from"], "from")
        eph_pub = _unhex(env["eph"], "eph", KEY_SIZE)
        ciphertext = _unhex(env["ciphertext"], "ciphertext")
    except ValueError as exc:
        raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None
    # 2. addressed to this recipient
    if to != recipient_id or to_pub != recipient_pub:
        raise GrantError(not_for, "sealed to another recipient")
    # 3. it opens with the recipient's key (the plaintext's framing is part of opening)
    try:
        shared = recipient_private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        plaintext = AESGCM(_seal_key(shared, eph_pub, recipient_pub, kind)).decrypt(
            NONCE, ciphertext, _aad(kind, recipient_id, issuer))
    except (InvalidTag, ValueError):
        raise GrantError(GrantRefusal.CANNOT_OPEN, "the message does not open with this recipient's key") from None
    size = int.from_bytes(plaintext[:4], "big")
    if len(plaintext) < 4 + SIGNATURE_SIZE or len(plaintext) != 4 + size + SIGNATURE_SIZE:
        raise GrantError(GrantRefusal.CANNOT_OPEN, "the opened message is not length, payload, signature")
    payload, signature = plaintext[4:4 + size], plaintext[4 + size:]
    # 4. signed by the expected issuer
    try:
        _ed25519_pub(issuer_card.signing_pub, "signing_pub").verify(signature, _signed(kind, payload))
    except (InvalidSignature, ValueError):
        raise GrantError(not_from, "the signature is not %r's" % issuer_card.account) from None
    if issuer != issuer_card.account:
        raise GrantError(not_from, "the message says it is from another account")
    return payload


# -- what a holder keeps (sections 7, 8 and 10) -------------------------------------------------------

class HeldKeys:
    """The period keys one holder took from one issuer, and what makes them change: the serial
    of the last message taken, the epochs revoked here (by EpochName: never held again), and
    how long keys are kept after their period ended (``keep_ms``, measured on the issuer's
    clock: each message's ``issued_ms``).

    A message adds its keys to what is held (a holder keeps the periods it was granted, so a
    late segment still verifies), drops every period of a revoked epoch, and drops periods
    that ended ``keep_ms`` before it was issued. A key that contradicts what is held after
    those drops (``Keyring.conflict``: a key id held for another grant, an epoch id held for
    another camera, epoch or period length, a revoked epoch) is refused with the whole
    message (``malformed``): key ids are the only name a tag carries.
    """

    def __init__(self, keep_ms: int = DEFAULT_KEEP_MS) -> None:
        self.serial = 0
        self.keep_ms = keep_ms
        self.keyring = Keyring()
        self._revoked: Set[EpochName] = set()

    def take(self, serial: int, issued_ms: int, keys: Sequence[Binding], revoked: Sequence[EpochName]) -> Keyring:
        """The new keyring after one message (checked in full before anything changes)."""
        if serial <= self.serial:
            raise GrantError(GrantRefusal.STALE, "serial %d is not above %d" % (serial, self.serial))
        gone = self._revoked | set(revoked)
        oldest_end_ms = issued_ms - self.keep_ms
        keyring = Keyring()
        for name in sorted(gone):
            keyring.mark_revoked(name)
        keyring.grant_all(b for b in self.keyring.bindings() if b.epoch_name not in gone and b.end_ms > oldest_end_ms)
        for b in keys:
            why = keyring.conflict(b)
            if why is not None:
                raise GrantError(GrantRefusal.MALFORMED, why)
            keyring.grant(b)
        keyring.drop_before(oldest_end_ms)
        self.keyring, self.serial, self._revoked = keyring, serial, gone
        return keyring

    def to_json(self) -> Dict[str, Any]:
        return {"serial": self.serial, "keep_ms": self.keep_ms, "keyring": self.keyring.to_json()}

    @classmethod
    def from_json(cls, data: object, where: str) -> "HeldKeys":
        try:
            obj = _entry(data, ("serial", "keep_ms", "keyring"), "held keys")
            held = cls(_uint(obj["keep_ms"], "keep_ms", 0, MAX_MS))
            held.serial = _uint(obj["serial"], "serial", 0, MAX_U64)
            if not isinstance(obj["keyring"], dict):
                raise ValueError("keyring must be an object")
            held.keyring = Keyring.from_json(obj["keyring"], where)
        except (ValueError, KeyringError) as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        held._revoked = set(held.keyring.revoked_ids())
        return held


class DisplayGrants:
    """A display's keys, changed only by a ``grants`` message that passes every check of
    section 7, and what its owner says of its cameras (``cameras``, ``alarm_after_ms``).

    With ``path`` it is kept in the display's own store (0600, written atomically after
    every accepted message, read back at start), so the serial and the revoked epochs
    hold across restarts: an old grants message replayed to a restarted display is
    ``stale``. Without it, replay protection lasts as long as this object.
    """

    def __init__(self, display: Display, path: Optional[Path | str] = None, keep_ms: int = DEFAULT_KEEP_MS) -> None:
        self._display = display
        self._held = HeldKeys(keep_ms)
        self._cameras: Dict[Tuple[str, str], CameraState] = {}
        self._alarm_after_ms = DEFAULT_ALARM_AFTER_MS
        self._path = path
        if path is not None and Path(path).exists():
            self._restore(read_json(path, "display-grants"), str(path))

    def _restore(self, data: Dict[str, Any], where: str) -> None:
        try:
            obj = _object(data, "display-grants", ("segbind", "version", "display", "held", "cameras",
                                                   "alarm_after_ms"))
            if obj["display"] != self._display.display:
                raise ValueError("kept by display %r" % obj["display"])
            held = HeldKeys.from_json(obj["held"], where)
            cameras = _parse_cameras(obj["cameras"])
            alarm_after_ms = _uint(obj["alarm_after_ms"], "alarm_after_ms", 0, MAX_MS)
        except (ValueError, KeyringError) as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        self._held, self._alarm_after_ms = held, alarm_after_ms
        self._cameras = {c.stream: c for c in cameras}

    def _save(self) -> None:
        if self._path is not None:
            write_json(self._path, {"segbind": "display-grants", "version": FILE_VERSION,
                                    "display": self._display.display, "held": self._held.to_json(),
                                    "cameras": [c.to_json() for _, c in sorted(self._cameras.items())],
                                    "alarm_after_ms": self._alarm_after_ms})

    def __repr__(self) -> str:
        return "DisplayGrants(%r, serial=%d, %r)" % (self._display.display, self.serial, self.keyring)

    @property
    def display(self) -> Display:
        return self._display

    @property
    def keyring(self) -> Keyring:
        """The keys held now (empty before the first grants)."""
        return self._held.keyring

    @property
    def serial(self) -> int:
        """The serial of the last accepted grants; 0 before the first."""
        return self._held.serial

    @property
    def cameras(self) -> Dict[Tuple[str, str], CameraState]:
        """What the owner's last grants said of each of its cameras, by (owner, camera) (a copy)."""
        return dict(self._cameras)

    @property
    def alarm_after_ms(self) -> int:
        return self._alarm_after_ms

    def accept(self, sealed: object) -> Keyring:
        """The keyring after a ``grants`` message, or GrantError(reason) and nothing changed."""
        display = self._display
        payload = display.open(sealed)
        owner = display.owner
        assert owner is not None  # open() refuses a display that was never enrolled
        grants = GrantSet.from_payload(payload)
        if grants.issuer != owner.account:
            raise GrantError(GrantRefusal.NOT_FROM_OWNER, "the grants name another issuer than the owner")
        if grants.display != display.display or grants.display_pub != display.sealing_pub:
            raise GrantError(GrantRefusal.NOT_FOR_THIS_DISPLAY, "the grants are for another display")
        keyring = self._held.take(grants.serial, grants.issued_ms, grants.keys, grants.revoked)
        self._cameras = {c.stream: c for c in grants.cameras}
        self._alarm_after_ms = grants.alarm_after_ms
        self._save()
        return keyring


class ServiceGrants:
    """What a service holds: for each account that enrolled it, the period keys that account
    granted it (a keyring per account, never merged: a key id one account names cannot
    shadow another's), changed only by a ``service-grants`` message that passes every
    check of section 10.

    What an account granted is kept with the card it was granted under: an account that left
    and an account enrolled later under the same id with another card (another person, once
    the id was free) share nothing, neither keys nor serial.

    The API a verifying worker uses::

        service = Service.load("svc.json")                 # its key and the pinned accounts
        grants = ServiceGrants(service, "svc-grants/")      # each account's keys, kept across restarts
        account, keyring = grants.accept(sealed)            # a message from an enrolled account
        verifier = grants.verifier("alice")                 # alice's segments: no_grant for any
        verdict = verifier.verify(segment)                  # camera alice never granted
    """

    def __init__(self, service: Service, directory: Optional[Path | str] = None,
                 keep_ms: int = DEFAULT_KEEP_MS) -> None:
        self._service = service
        self._dir = Path(directory) if directory is not None else None
        self._keep_ms = keep_ms
        self._held: Dict[str, Tuple[str, HeldKeys]] = {}   # account -> (its card's fingerprint, what it granted)
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for account in service.accounts:
                path = self._path(account)
                if path.exists():
                    restored = self._restore(read_json(path, "service-grants-held"), account, str(path))
                    if restored is not None:
                        self._held[account] = restored

    def _path(self, account: str) -> Path:
        assert self._dir is not None
        return self._dir / ("%s.grants.json" % hashlib.sha256(account.encode("utf-8")).hexdigest()[:32])

    def _restore(self, data: Dict[str, Any], account: str, where: str) -> Optional[Tuple[str, HeldKeys]]:
        """What ``account`` granted, from its file; None when it was granted under another card
        than the one pinned now (nothing of it is taken)."""
        try:
            obj = _object(data, "service-grants-held", ("segbind", "version", "service", "account", "card", "held"))
            if (obj["service"], obj["account"]) != (self._service.service, account):
                raise ValueError("kept for another service or account")
            fingerprint = obj["card"]
            if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{32}", fingerprint):
                raise ValueError("card must be an account card's fingerprint")
        except ValueError as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        if not self._pinned(account, fingerprint):
            return None
        return fingerprint, HeldKeys.from_json(obj["held"], where)

    def _pinned(self, account: str, fingerprint: str) -> bool:
        card = self._service.accounts.get(account)
        return card is not None and card.fingerprint == fingerprint

    def _held_now(self, account: str) -> Optional[HeldKeys]:
        """What ``account`` granted, if it is enrolled now under the card it granted it with."""
        kept = self._held.get(account)
        return kept[1] if kept is not None and self._pinned(account, kept[0]) else None

    def __repr__(self) -> str:
        return "ServiceGrants(%r, %d accounts)" % (self._service.service, len(self._held))

    def keyring(self, account: str) -> Keyring:
        """The keys ``account`` granted this service (empty when it granted none)."""
        held = self._held_now(account)
        return held.keyring if held is not None else Keyring()

    def serial(self, account: str) -> int:
        held = self._held_now(account)
        return held.serial if held is not None else 0

    def verifier(self, account: str, **options: Any) -> "StreamVerifier":
        """A stream verifier over ``account``'s keys (options as ``StreamVerifier``'s). Keep one
        per account and set its ``keyring`` to ``keyring(account)`` after each accepted message."""
        from .verifier import StreamVerifier

        return StreamVerifier(self.keyring(account), **options)

    def accept(self, sealed: object) -> Tuple[str, Keyring]:
        """(account, its keyring now) after a ``service-grants`` message; GrantError and nothing
        changed otherwise."""
        service = self._service
        account, payload = service.open(sealed)
        card = service.accounts[account]
        grants = ServiceGrantSet.from_payload(payload)
        if grants.issuer != account:
            raise GrantError(GrantRefusal.NOT_FROM_OWNER, "the grants name another issuer than their signer")
        if grants.service != service.service or grants.service_pub != service.sealing_pub:
            raise GrantError(GrantRefusal.NOT_FOR_THIS_SERVICE, "the grants are for another service")
        held = self._held_now(account)
        if held is None:
            held = HeldKeys(self._keep_ms)
        keyring = held.take(grants.serial, grants.issued_ms, grants.keys, grants.revoked)
        self._held[account] = (card.fingerprint, held)
        if self._dir is not None:
            write_json(self._path(account), {"segbind": "service-grants-held", "version": FILE_VERSION,
                                             "service": service.service, "account": account,
                                             "card": card.fingerprint, "held": held.to_json()})
        return account, keyring


# -- the out-of-band hand-over ------------------------------------------------------------------

class OutOfBand:
    """Cards handed over locally (a QR code, the local network), never through the broker or cloud.

    What the tests and simulations use in place of the owner's phone next to the display.
    """

    @staticmethod
    def enroll(account: Account, display: Display) -> str:
        """Pin ``account`` as the display's owner; the enrollment code both sides would show."""
        account_card, display_card = account.card(), display.card()
        display.pin(account_card)
        return enrollment_code(display_card, account_card)

    @staticmethod
    def exchange_cards(a: Account, b: Account) -> Tuple[AccountCard, AccountCard]:
        """Two accounts become contacts: (a's card, which b keeps; b's card, which a keeps)."""
        return a.card(), b.card()
