"""Owner-held keys: accounts, displays, grants and share offers (docs/GRANTS.md, normative).

A display shows only what its owner granted it. The owner's app signs the display's
whole keyring and seals it to that display, so the cloud that stores and carries it
can neither read it nor change it, and a grant the cloud delivers to the wrong
display, or one made by anyone but the pinned owner, is refused and changes nothing.

    owner = Account.new("alice");  screen = Display.new("tv-1")
    code = OutOfBand.enroll(owner, screen)            # both sides show it; the owner compares
    sealed = owner.grants_for(screen.card(), 1, [binding])      # carried by the cloud
    keyring = DisplayGrants(screen).accept(sealed)    # or GrantError(reason)

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
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from segbind_core.keys import KEY_SIZE
from segbind_core.tag import MAX_EPOCH, MAX_SLOTS, encode_id

from .errors import KeyringError, SegbindError
from .keyring import FILE_VERSION, Binding, GrantId, Keyring, read_json, write_json

VERSION = 2
GRANTS = "grants"
SHARE_OFFER = "share-offer"
KINDS = (GRANTS, SHARE_OFFER)

SIGN_LABEL = b"segbind/v2 "
SEAL_LABEL = b"segbind/v2 seal\x00"
AAD_LABEL = b"segbind/v2 sealed\x00"
ENROLL_LABEL = b"segbind/v2 enroll\x00"
NONCE = bytes(12)  # safe: every message has a fresh ephemeral key, so each AES key is used once
SIGNATURE_SIZE = 64
MAX_U64 = (1 << 64) - 1

_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_SEALED_FIELDS = ("segbind", "version", "kind", "to", "to_pub", "from", "eph", "ciphertext")


class GrantRefusal(str, Enum):
    """Why a sealed message was refused: GRANTS.md section 6 (displays) and 7 (accounts)."""

    MALFORMED = "malformed"
    NOT_ENROLLED = "not_enrolled"
    NOT_FOR_THIS_DISPLAY = "not_for_this_display"
    CANNOT_OPEN = "cannot_open"
    NOT_FROM_OWNER = "not_from_owner"
    STALE = "stale"
    # Share offers (section 7): the same checks, named for an account and its contact.
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


def _object(data: object, kind: str, fields: Sequence[str], optional: Sequence[str] = ()) -> Dict[str, Any]:
    """``data`` as a segbind object of ``kind``, version 2, with exactly these fields."""
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


# -- cards -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccountCard:
    """An account's public identity: what its displays pin and its contacts seal offers to."""

    account: str
    signing_pub: bytes
    sealing_pub: bytes

    def __post_init__(self) -> None:
        try:
            _check_id(self.account, "account", topic=True)
            if not isinstance(self.signing_pub, bytes) or len(self.signing_pub) != KEY_SIZE:
                raise ValueError("signing_pub must be %d bytes" % KEY_SIZE)
            if not isinstance(self.sealing_pub, bytes) or len(self.sealing_pub) != KEY_SIZE:
                raise ValueError("sealing_pub must be %d bytes" % KEY_SIZE)
            _ed25519_pub(self.signing_pub, "signing_pub")
        except ValueError as exc:
            raise KeyringError("account card: %s" % exc) from None

    def __repr__(self) -> str:
        return "AccountCard(account=%r, fingerprint=%s)" % (self.account, self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """32 hex digits naming the card (id and both keys), for people and logs; not in the spec."""
        return hashlib.sha256(b"segbind/v2 account-card\x00" + encode_id(self.account, "account")
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
            if not isinstance(self.sealing_pub, bytes) or len(self.sealing_pub) != KEY_SIZE:
                raise ValueError("sealing_pub must be %d bytes" % KEY_SIZE)
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


def enrollment_code(display_card: DisplayCard, account_card: AccountCard) -> str:
    """The eight characters both sides show at enrollment (section 3): a swapped card changes them."""
    digest = hashlib.sha256(ENROLL_LABEL + display_card.sealing_pub + account_card.signing_pub).digest()
    return base64.b32encode(digest[:5]).decode("ascii")


# -- the two parties that hold secrets ---------------------------------------------------------

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
        """Ed25519 over "segbind/v2 " || kind || 00 || payload: a signature for one kind only."""
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
                   revoked: Iterable[GrantId] = (), issued_ms: Optional[int] = None) -> Dict[str, Any]:
        """A sealed ``grants`` message: the display's whole keyring, above every serial it holds."""
        grant_set = GrantSet(self.account, display_card.display, display_card.sealing_pub, serial,
                             _now_ms() if issued_ms is None else issued_ms, list(keys), list(revoked))
        return seal(self, GRANTS, display_card.display, display_card.sealing_pub, grant_set.to_payload())

    def offer_share(self, to_card: AccountCard, serial: int, keys: Iterable[Binding],
                    revoked: Iterable[GrantId] = (), issued_ms: Optional[int] = None) -> Dict[str, Any]:
        """A sealed ``share-offer`` to a contact: the slot keys of the epochs shared with it."""
        offer = ShareOffer(self.account, to_card.account, serial, _now_ms() if issued_ms is None else issued_ms,
                           list(keys), list(revoked))
        return seal(self, SHARE_OFFER, to_card.account, to_card.sealing_pub, offer.to_payload())

    def open_offer(self, sealed: object, from_card: AccountCard, after_serial: int = 0) -> ShareOffer:
        """A contact's offer, checked like a display checks grants (section 7), or GrantError.

        ``from_card`` is the contact's card from the out-of-band exchange, never from the
        cloud. An offer with a serial at or below ``after_serial`` (the last one taken from
        this contact) is ``stale``. Taking the keys is the owner's decision, then its grants.
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


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- sealed, signed messages (section 4) ----------------------------------------------------------

def _signed(kind: str, payload: bytes) -> bytes:
    return SIGN_LABEL + kind.encode("ascii") + b"\x00" + payload


def _seal_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes, kind: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=SEAL_LABEL + kind.encode("ascii")).derive(shared)


def _aad(kind: str, recipient_id: str, issuer_id: str) -> bytes:
    return (AAD_LABEL + kind.encode("ascii") + b"\x00" + encode_id(recipient_id, "recipient")
            + encode_id(issuer_id, "issuer"))


def seal(issuer: Account, kind: str, recipient_id: str, recipient_pub: bytes, payload: bytes) -> Dict[str, Any]:
    """Sign ``payload`` as ``issuer`` and seal it to the recipient's key: only it can open it."""
    if kind not in KINDS:
        raise GrantError(GrantRefusal.MALFORMED, "unknown message kind")
    if len(payload) > 0xFFFFFFFF:
        raise GrantError(GrantRefusal.MALFORMED, "payload too large")
    try:
        _check_id(recipient_id, "recipient")
        if not isinstance(recipient_pub, bytes) or len(recipient_pub) != KEY_SIZE:
            raise ValueError("recipient sealing_pub must be %d bytes" % KEY_SIZE)
        eph = X25519PrivateKey.generate()
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
    """The payload of a sealed message, after checks 1 to 4 of section 6 in order; else GrantError.

    The refusals are named for ``kind``: a display's (``grants``) or an account's (``share-offer``).
    """
    not_for, not_from = _REFUSALS.get(kind, (GrantRefusal.MALFORMED, GrantRefusal.MALFORMED))
    # 1. it parses: version 2, the expected kind
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


# -- messages (section 5) -----------------------------------------------------------------------

_GRANT_FIELDS = ("owner", "camera", "epoch", "slot", "key")
_REVOKED_FIELDS = ("owner", "camera", "epoch")


def _entry(data: object, fields: Sequence[str], what: str) -> Dict[str, Any]:
    if not isinstance(data, dict) or sorted(data) != sorted(fields):
        raise ValueError("%s must be an object with exactly %s" % (what, ", ".join(fields)))
    return data


def _parse_lists(obj: Dict[str, Any]) -> Tuple[List[Binding], List[GrantId]]:
    if not isinstance(obj["keys"], list) or not isinstance(obj["revoked"], list):
        raise ValueError("keys and revoked must be lists")
    keys = []
    for item in obj["keys"]:
        e = _entry(item, _GRANT_FIELDS, "a key")
        keys.append(Binding(e["owner"], e["camera"], e["epoch"], _unhex(e["key"], "a key", KEY_SIZE), e["slot"]))
    revoked = []
    for item in obj["revoked"]:
        e = _entry(item, _REVOKED_FIELDS, "a revoked entry")
        revoked.append((e["owner"], e["camera"], e["epoch"]))
    return keys, revoked


def _check_lists(keys: Sequence[Binding], revoked: Sequence[GrantId]) -> None:
    """Every id and number in range; no epoch granted twice, none both granted and revoked."""
    seen: Set[GrantId] = set()
    for b in keys:
        if not isinstance(b, Binding):
            raise ValueError("keys must be Bindings")
        _check_id(b.owner, "a key's owner", topic=True)
        _check_id(b.camera, "a key's camera", topic=True)
        _uint(b.epoch, "a key's epoch", 1, MAX_EPOCH)
        _uint(b.slot, "a key's slot", 0, MAX_SLOTS - 1)
        if not isinstance(b.key, bytes) or len(b.key) != KEY_SIZE:
            raise ValueError("a key must be %d bytes" % KEY_SIZE)
        gid = (b.owner, b.camera, b.epoch)
        if gid in seen:
            raise ValueError("epoch %d of camera %r is granted twice" % (b.epoch, b.camera))
        seen.add(gid)
    gone: Set[GrantId] = set()
    for entry in revoked:
        if not isinstance(entry, tuple) or len(entry) != 3:
            raise ValueError("a revoked entry is (owner, camera, epoch)")
        owner, camera, epoch = entry
        _check_id(owner, "a revoked owner", topic=True)
        _check_id(camera, "a revoked camera", topic=True)
        _uint(epoch, "a revoked epoch", 1, MAX_EPOCH)
        if entry in seen:
            raise ValueError("epoch %d of camera %r is both granted and revoked" % (epoch, camera))
        if entry in gone:
            raise ValueError("epoch %d of camera %r is revoked twice" % (epoch, camera))
        gone.add(entry)


def _lists_json(keys: Sequence[Binding], revoked: Sequence[GrantId]) -> Dict[str, Any]:
    return {"keys": [b.to_json() for b in keys],
            "revoked": [{"owner": o, "camera": c, "epoch": e} for o, c, e in revoked]}


def _canonical(obj: Dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


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
    """A display's whole keyring as its owner issues it: the payload of a ``grants`` message."""

    issuer: str
    display: str
    display_pub: bytes
    serial: int
    issued_ms: int
    keys: List[Binding]
    revoked: List[GrantId]

    _FIELDS = ("segbind", "version", "issuer", "display", "display_pub", "serial", "issued_ms", "keys", "revoked")

    def __post_init__(self) -> None:
        try:
            _check_id(self.issuer, "issuer", topic=True)
            _check_id(self.display, "display")
            if not isinstance(self.display_pub, bytes) or len(self.display_pub) != KEY_SIZE:
                raise ValueError("display_pub must be %d bytes" % KEY_SIZE)
            _uint(self.serial, "serial", 1, MAX_U64)
            _uint(self.issued_ms, "issued_ms", 0, MAX_U64)
            _check_lists(self.keys, self.revoked)
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, "grants: %s" % exc) from None

    def __repr__(self) -> str:
        return "GrantSet(issuer=%r, display=%r, serial=%d, %d keys, %d revoked)" % (
            self.issuer, self.display, self.serial, len(self.keys), len(self.revoked))

    def to_payload(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the bytes that are signed and sealed."""
        return _canonical({"segbind": GRANTS, "version": VERSION, "issuer": self.issuer, "display": self.display,
                           "display_pub": self.display_pub.hex(), "serial": self.serial,
                           "issued_ms": self.issued_ms, **_lists_json(self.keys, self.revoked)})

    @classmethod
    def from_payload(cls, payload: bytes) -> "GrantSet":
        """The grant set in ``payload``, or GrantError(malformed) saying what is wrong."""
        try:
            obj = _json_payload(payload, GRANTS, cls._FIELDS)
            keys, revoked = _parse_lists(obj)
            return cls(obj["issuer"], obj["display"], _unhex(obj["display_pub"], "display_pub", KEY_SIZE),
                       obj["serial"], obj["issued_ms"], keys, revoked)
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None


@dataclass(frozen=True)
class ShareOffer:
    """Slot keys one account offers another: the payload of a ``share-offer`` message.

    An offer carries only the issuer's own cameras, and never slot 0 (the owner's key):
    with it the receiver could make tags the issuer's own displays take as the owner's.
    """

    issuer: str
    to: str
    serial: int
    issued_ms: int
    keys: List[Binding]
    revoked: List[GrantId]

    _FIELDS = ("segbind", "version", "issuer", "to", "serial", "issued_ms", "keys", "revoked")

    def __post_init__(self) -> None:
        try:
            _check_id(self.issuer, "issuer", topic=True)
            _check_id(self.to, "to", topic=True)
            _uint(self.serial, "serial", 1, MAX_U64)
            _uint(self.issued_ms, "issued_ms", 0, MAX_U64)
            _check_lists(self.keys, self.revoked)
            owners = {b.owner for b in self.keys} | {r[0] for r in self.revoked}
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
        """Canonical JSON (sorted keys, no spaces): the bytes that are signed and sealed."""
        return _canonical({"segbind": SHARE_OFFER, "version": VERSION, "issuer": self.issuer, "to": self.to,
                           "serial": self.serial, "issued_ms": self.issued_ms,
                           **_lists_json(self.keys, self.revoked)})

    @classmethod
    def from_payload(cls, payload: bytes) -> "ShareOffer":
        """The offer in ``payload``, or GrantError(malformed) saying what is wrong."""
        try:
            obj = _json_payload(payload, SHARE_OFFER, cls._FIELDS)
            keys, revoked = _parse_lists(obj)
            return cls(obj["issuer"], obj["to"], obj["serial"], obj["issued_ms"], keys, revoked)
        except ValueError as exc:
            raise GrantError(GrantRefusal.MALFORMED, str(exc)) from None


# -- what a display holds (section 6) --------------------------------------------------------------

class DisplayGrants:
    """A display's keyring, changed only by a grants message that passes every check of section 6.

    With ``path`` it is kept in the display's own store (0600, written atomically after
    every accepted message, read back at start), so the serial and the revoked epochs
    hold across restarts: an old grants message replayed to a restarted display is
    ``stale``. Without it, replay protection lasts as long as this object.
    """

    def __init__(self, display: Display, path: Optional[Path | str] = None) -> None:
        self._display = display
        self._keyring = Keyring()
        self._serial = 0
        self._revoked: Set[GrantId] = set()
        self._path = path
        if path is not None and Path(path).exists():
            self._restore(read_json(path, "display-grants"), str(path))

    def _restore(self, data: Dict[str, Any], where: str) -> None:
        try:
            obj = _object(data, "display-grants", ("segbind", "version", "display", "serial", "keyring"))
            if obj["display"] != self._display.display:
                raise ValueError("kept by display %r" % obj["display"])
            serial = _uint(obj["serial"], "serial", 0, MAX_U64)
            keyring = Keyring.from_json(obj["keyring"], where)
        except (ValueError, KeyringError) as exc:
            raise KeyringError("%s: %s" % (where, exc)) from None
        self._keyring, self._serial = keyring, serial
        self._revoked = set(keyring.revoked_ids())

    def _save(self) -> None:
        if self._path is not None:
            write_json(self._path, {"segbind": "display-grants", "version": FILE_VERSION,
                                    "display": self._display.display, "serial": self._serial,
                                    "keyring": self._keyring.to_json()})

    def __repr__(self) -> str:
        return "DisplayGrants(%r, serial=%d, %r)" % (self._display.display, self._serial, self._keyring)

    @property
    def keyring(self) -> Keyring:
        """The keyring held now: the one of the last accepted grants (empty before the first)."""
        return self._keyring

    @property
    def serial(self) -> int:
        """The serial of the last accepted grants; 0 before the first."""
        return self._serial

    def accept(self, sealed: object) -> Keyring:
        """The new keyring of a ``grants`` message, or GrantError(reason) and the old keyring kept."""
        display = self._display
        owner = display.owner
        if owner is None:
            raise GrantError(GrantRefusal.NOT_ENROLLED, "display %r has no owner: enroll it first" % display.display)
        payload = open_sealed(sealed, GRANTS, display.display, display._sealing_key, display.sealing_pub, owner)
        grants = GrantSet.from_payload(payload)
        if grants.issuer != owner.account:
            raise GrantError(GrantRefusal.NOT_FROM_OWNER, "the grants name another issuer than the owner")
        if grants.display != display.display or grants.display_pub != display.sealing_pub:
            raise GrantError(GrantRefusal.NOT_FOR_THIS_DISPLAY, "the grants are for another display")
        if grants.serial <= self._serial:
            raise GrantError(GrantRefusal.STALE, "serial %d is not above %d" % (grants.serial, self._serial))
        revoked = self._revoked | set(grants.revoked)
        keyring = Keyring()
        for owner_id, camera, epoch in sorted(revoked):
            keyring.mark_revoked(owner_id, camera, epoch)
        for binding in grants.keys:
            if (binding.owner, binding.camera, binding.epoch) in revoked:
                raise GrantError(GrantRefusal.MALFORMED, "epoch %d of camera %r was revoked here: never granted again"
                                 % (binding.epoch, binding.camera))
            keyring.grant(binding)
        self._keyring, self._serial, self._revoked = keyring, grants.serial, revoked
        self._save()
        return keyring


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
