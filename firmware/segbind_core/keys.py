"""The key hierarchy (docs/FORMAT.md section 2): everything grows from a pairing secret.

    pairing secret P   fresh at every claim, made by the owner's app, handed to the camera
                       out of band; the cloud never sees it
    epoch root  R(E)   = HKDF(P, "segbind/v3", "segbind/v3 epoch" 00 | owner | camera | u32 E | u32 T)
    period root Q(E,p) = HKDF(R(E), "segbind/v3", "segbind/v3 period" 00 | u64 p)
    slot key  K(E,p,s) = HKDF(Q(E,p), "segbind/v3", "segbind/v3 slot" 00 | u8 s | holder)
    content key CK(E,p) = HKDF(Q(E,p), "segbind/v3", "segbind/v3 content" 00), 16 bytes (AES-128)
    key id    KID(E,p) = HKDF(Q(E,p), "segbind/v3", "segbind/v3 key id" 00), 16 bytes
    command key  C     = HKDF(P, "segbind/v3", "segbind/v3 command" 00 | owner | camera)

(The epoch id EID(E) = HKDF(R(E), "segbind/v3", "segbind/v3 epoch id" 00), how grants name an
epoch of a pairing, is the owner's app's: ``segbind.keyring.epoch_id``. The camera never needs it.)

T is the epoch's period length in seconds; period p holds the capture times
[p T, (p + 1) T) seconds since 1970. Slot 0's holder is the owner, slots 1.. the accounts
the epoch is shared with. A holder is granted, period by period, its slot key, the
content key and the key id, and nothing that derives another period's keys: a holder the
owner stops renewing loses access when its last period ends, whatever the camera heard.
The device secret is the camera's identity toward the cloud and enters none of these keys.
"""

from .crypto import hkdf_sha256
from .tag import KEY_ID_SIZE, MAX_EPOCH, MAX_SLOTS, encode_id

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import List, Optional, Tuple
except ImportError:
    pass

KEY_SIZE = 32
CONTENT_KEY_SIZE = 16
SALT = b"segbind/v3"
EPOCH_LABEL = b"segbind/v3 epoch\x00"
PERIOD_LABEL = b"segbind/v3 period\x00"
SLOT_LABEL = b"segbind/v3 slot\x00"
CONTENT_LABEL = b"segbind/v3 content\x00"
KEY_ID_LABEL = b"segbind/v3 key id\x00"
COMMAND_LABEL = b"segbind/v3 command\x00"

MIN_PERIOD_S = 60
MAX_PERIOD_S = 86400
DEFAULT_PERIOD_S = 1800  # half an hour: a revoked holder loses access within it (and the renewal lead)


def _check_key(secret: bytes, what: str) -> None:
    if len(secret) != KEY_SIZE:
        raise ValueError("a %s is %d bytes" % (what, KEY_SIZE))


def check_period_s(period_s: int) -> None:
    """ValueError unless ``period_s`` is a period length the format allows (60 s to a day)."""
    if not isinstance(period_s, int) or not MIN_PERIOD_S <= period_s <= MAX_PERIOD_S:
        raise ValueError("a period is %d to %d seconds" % (MIN_PERIOD_S, MAX_PERIOD_S))


def epoch_root(pairing_secret: bytes, owner: str, camera: str, epoch: int,
               period_s: int = DEFAULT_PERIOD_S) -> bytes:
    """R(E): the root of every key of one epoch of one pairing."""
    _check_key(pairing_secret, "pairing secret")
    if not 1 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch out of range")
    check_period_s(period_s)
    info = (EPOCH_LABEL + encode_id(owner, "owner") + encode_id(camera, "camera")
            + epoch.to_bytes(4, "big") + period_s.to_bytes(4, "big"))
    return hkdf_sha256(pairing_secret, SALT, info, KEY_SIZE)


def period_root(root: bytes, period: int) -> bytes:
    """Q(E, p): the root of one period's keys (never handed out: it derives every slot's key)."""
    _check_key(root, "epoch root")
    if not 0 <= period < 1 << 64:
        raise ValueError("period out of range")
    return hkdf_sha256(root, SALT, PERIOD_LABEL + period.to_bytes(8, "big"), KEY_SIZE)


def slot_key(period_root_key: bytes, slot: int, holder: str) -> bytes:
    """K(E, p, s): the key of slot ``slot`` in one period, held by account ``holder`` (the owner
    for slot 0)."""
    _check_key(period_root_key, "period root")
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError("slot out of range")
    return hkdf_sha256(period_root_key, SALT, SLOT_LABEL + bytes((slot,)) + encode_id(holder, "holder"),
                       KEY_SIZE)


def content_key(period_root_key: bytes) -> bytes:
    """CK(E, p): the AES-128 key of one period's picture data."""
    _check_key(period_root_key, "period root")
    return hkdf_sha256(period_root_key, SALT, CONTENT_LABEL, CONTENT_KEY_SIZE)


def key_id(period_root_key: bytes) -> bytes:
    """KID(E, p): the name a tag gives its keys (and the Common Encryption default_KID)."""
    _check_key(period_root_key, "period root")
    return hkdf_sha256(period_root_key, SALT, KEY_ID_LABEL, KEY_ID_SIZE)


def command_key(pairing_secret: bytes, owner: str, camera: str) -> bytes:
    """C: authenticates the owner's commands to the camera and the camera's results."""
    _check_key(pairing_secret, "pairing secret")
    return hkdf_sha256(pairing_secret, SALT,
                       COMMAND_LABEL + encode_id(owner, "owner") + encode_id(camera, "camera"),
                       KEY_SIZE)


class PeriodKeys:
    """One period's keys of one epoch: its key id, its content key, each slot's key (in slot
    order, with its holder), and the capture times it covers (``start_ms`` to ``end_ms``)."""

    __slots__ = ("period", "start_ms", "end_ms", "key_id", "content_key", "slot_keys")

    def __init__(self, period: int, period_s: int, key_id_: bytes, content_key_: bytes,
                 slot_keys: "List[Tuple[str, bytes]]") -> None:
        self.period = period
        self.start_ms = period * period_s * 1000
        self.end_ms = self.start_ms + period_s * 1000
        self.key_id = key_id_
        self.content_key = content_key_
        self.slot_keys = slot_keys

    def __repr__(self) -> str:
        return "PeriodKeys(period %d, key id %s, %d slots, keys=<hidden>)" % (
            self.period, self.key_id.hex(), len(self.slot_keys))


class Epoch:
    """One epoch of one pairing: who may watch (the owner, then the shares), its period
    length, and its keys.

    What a camera tags with: ``period_keys(period_of(capture_ms))`` gives a period's key id,
    content key and every slot's key, in slot order.
    """

    def __init__(self, owner: str, camera: str, epoch: int, shares: "List[str]", root: bytes,
                 period_s: int = DEFAULT_PERIOD_S) -> None:
        if len(shares) > MAX_SLOTS - 1:
            raise ValueError("at most %d shares" % (MAX_SLOTS - 1))
        _check_key(root, "epoch root")
        check_period_s(period_s)
        self.owner = owner
        self.camera = camera
        self.epoch = epoch
        self.shares = list(shares)
        self.root = root
        self.period_s = period_s
        self._cached: "Optional[PeriodKeys]" = None

    @classmethod
    def of_pairing(cls, pairing_secret: bytes, owner: str, camera: str, epoch: int,
                   shares: "List[str]", period_s: int = DEFAULT_PERIOD_S) -> "Epoch":
        return cls(owner, camera, epoch, shares, epoch_root(pairing_secret, owner, camera, epoch, period_s),
                   period_s)

    def holders(self) -> "List[str]":
        """The holder of each slot, in slot order."""
        return [self.owner] + self.shares

    def period_of(self, capture_ms: int) -> int:
        """The period a capture time (ms since 1970) falls in."""
        if capture_ms < 0:
            raise ValueError("capture time out of range")
        return capture_ms // (self.period_s * 1000)

    def period_keys(self, period: int) -> PeriodKeys:
        """Period ``period``'s keys (the latest asked for is kept: a camera asks for each
        period once, when its first segment is tagged)."""
        cached = self._cached
        if cached is not None and cached.period == period:
            return cached
        root = period_root(self.root, period)
        keys = PeriodKeys(period, self.period_s, key_id(root), content_key(root),
                          [(holder, slot_key(root, slot, holder)) for slot, holder in enumerate(self.holders())])
        self._cached = keys
        return keys

    def __repr__(self) -> str:
        return "Epoch(owner=%r, camera=%r, epoch=%d, shares=%r, period %d s, root=<hidden>)" % (
            self.owner, self.camera, self.epoch, self.shares, self.period_s)
