"""The key hierarchy (docs/FORMAT.md section 2): everything grows from a pairing secret.

    pairing secret P   fresh at every claim, made by the owner's app, handed to the camera
                       out of band; the cloud never sees it
    epoch root  R(E)   = HKDF(P, "segbind/v2", "segbind/v2 epoch" 00 | owner | camera | u32 E)
    slot key  K(E, s)  = HKDF(R(E), "segbind/v2", "segbind/v2 slot" 00 | u8 s | holder)
    command key  C     = HKDF(P, "segbind/v2", "segbind/v2 command" 00 | owner | camera)

Slot 0's holder is the owner, slots 1.. the accounts the epoch is shared with. A
viewer holds only its own slot key: it verifies that slot's MAC and can make no
other. The device secret is the camera's identity toward the cloud and enters
none of these keys.
"""

from .crypto import hkdf_sha256
from .tag import MAX_EPOCH, MAX_SLOTS, encode_id

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import List, Tuple
except ImportError:
    pass

KEY_SIZE = 32
SALT = b"segbind/v2"
EPOCH_LABEL = b"segbind/v2 epoch\x00"
SLOT_LABEL = b"segbind/v2 slot\x00"
COMMAND_LABEL = b"segbind/v2 command\x00"


def _check_key(secret: bytes, what: str) -> None:
    if len(secret) != KEY_SIZE:
        raise ValueError("a %s is %d bytes" % (what, KEY_SIZE))


def epoch_root(pairing_secret: bytes, owner: str, camera: str, epoch: int) -> bytes:
    """R(E): the root of every slot key of one epoch of one pairing."""
    _check_key(pairing_secret, "pairing secret")
    if not 1 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch out of range")
    info = (EPOCH_LABEL + encode_id(owner, "owner") + encode_id(camera, "camera")
            + epoch.to_bytes(4, "big"))
    return hkdf_sha256(pairing_secret, SALT, info, KEY_SIZE)


def slot_key(root: bytes, slot: int, holder: str) -> bytes:
    """K(E, s): the key of slot ``slot``, held by account ``holder`` (the owner for slot 0)."""
    _check_key(root, "epoch root")
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError("slot out of range")
    return hkdf_sha256(root, SALT, SLOT_LABEL + bytes((slot,)) + encode_id(holder, "holder"),
                       KEY_SIZE)


def command_key(pairing_secret: bytes, owner: str, camera: str) -> bytes:
    """C: authenticates the owner's commands to the camera and the camera's results."""
    _check_key(pairing_secret, "pairing secret")
    return hkdf_sha256(pairing_secret, SALT,
                       COMMAND_LABEL + encode_id(owner, "owner") + encode_id(camera, "camera"),
                       KEY_SIZE)


class Epoch:
    """One epoch of one pairing: who may watch (the owner, then the shares) and its keys.

    What a camera tags with: ``slot_keys()`` gives every slot's key, in slot order.
    """

    def __init__(self, owner: str, camera: str, epoch: int, shares: "List[str]",
                 root: bytes) -> None:
        if len(shares) > MAX_SLOTS - 1:
            raise ValueError("at most %d shares" % (MAX_SLOTS - 1))
        _check_key(root, "epoch root")
        self.owner = owner
        self.camera = camera
        self.epoch = epoch
        self.shares = list(shares)
        self.root = root

    @classmethod
    def of_pairing(cls, pairing_secret: bytes, owner: str, camera: str, epoch: int,
                   shares: "List[str]") -> "Epoch":
        return cls(owner, camera, epoch, shares,
                   epoch_root(pairing_secret, owner, camera, epoch))

    def holders(self) -> "List[str]":
        """The holder of each slot, in slot order."""
        return [self.owner] + self.shares

    def slot_keys(self) -> "List[Tuple[str, bytes]]":
        """(holder, key) of each slot, in slot order."""
        return [(holder, slot_key(self.root, slot, holder))
                for slot, holder in enumerate(self.holders())]

    def __repr__(self) -> str:
        return "Epoch(owner=%r, camera=%r, epoch=%d, shares=%r, root=<hidden>)" % (
            self.owner, self.camera, self.epoch, self.shares)
