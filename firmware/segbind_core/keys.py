"""The key hierarchy: one device secret per camera, binding keys derived from it.

binding key = HKDF-SHA256(device secret, salt "segbind/v1",
                          info "segbind/v1 binding" 00 || owner || camera || epoch)
control key = HKDF-SHA256(device secret, salt "segbind/v1",
                          info "segbind/v1 control" 00 || camera)

Ids enter the info as a length byte then UTF-8, so no two (owner, camera)
pairs share an info string. A camera holds only its own device secret; a
viewer holds only the binding keys it was granted.
"""

from .crypto import hkdf_sha256
from .tag import MAX_EPOCH, encode_id

KEY_SIZE = 32
SALT = b"segbind/v1"
BINDING_LABEL = b"segbind/v1 binding\x00"
CONTROL_LABEL = b"segbind/v1 control\x00"


def _check_secret(device_secret: bytes) -> None:
    if len(device_secret) != KEY_SIZE:
        raise ValueError("a device secret is %d bytes" % KEY_SIZE)


def derive_binding_key(device_secret: bytes, owner: str, camera: str, epoch: int) -> bytes:
    """The key that tags (and verifies) one camera's video for one owner in one epoch."""
    _check_secret(device_secret)
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("epoch out of range")
    info = (BINDING_LABEL + encode_id(owner, "owner")
            + encode_id(camera, "camera") + epoch.to_bytes(4, "big"))
    return hkdf_sha256(device_secret, SALT, info, KEY_SIZE)


def derive_control_key(device_secret: bytes, camera: str) -> bytes:
    """The key that authenticates control commands (claim, rotate, reset) to one camera."""
    _check_secret(device_secret)
    return hkdf_sha256(device_secret, SALT, CONTROL_LABEL + encode_id(camera, "camera"),
                       KEY_SIZE)
