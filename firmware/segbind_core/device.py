"""The device file: one camera's id and device secret, as provisioned at manufacture.

    {"segbind": "device", "version": 1, "device_id": "cam-1", "secret": "<64 hex digits>",
     "test_only": true}      # test_only only on secrets that must never ship

Defined here once: the camera agent reads it, ``segbind keys device`` and the
operator tool write it, ``segbind keys bind`` reads it. The secret is never
put in an error message.
"""

from .keys import KEY_SIZE
from .tag import encode_id
from .topics import check_topic_id

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Optional
except ImportError:
    pass

KIND = "device"
VERSION = 1


class DeviceFileError(ValueError):
    """Not a usable device file; the message never holds key material."""


def device_json(camera: str, secret: bytes, test_only: bool = False) -> dict[str, Any]:
    """The device file's content for ``camera`` (whose id is checked)."""
    check_id(camera)
    if len(secret) != KEY_SIZE:
        raise DeviceFileError("a device secret is %d bytes" % KEY_SIZE)
    data = {"segbind": KIND, "version": VERSION, "device_id": camera, "secret": secret.hex()}
    if test_only:
        data["test_only"] = True
    return data


def check_id(camera: str) -> str:
    """A camera id must fit the tag (1-32 bytes of UTF-8, no NUL) and an MQTT topic level."""
    encode_id(camera, "camera")
    check_topic_id(camera, "camera")
    return camera


def parse_device(data: object, camera: Optional[str] = None) -> tuple[str, bytes, bool]:
    """(camera id, secret, test_only) from a device file's parsed JSON.

    With ``camera``, the file must belong to that camera.
    """
    if not isinstance(data, dict) or data.get("segbind") != KIND or data.get("version") != VERSION:
        raise DeviceFileError("not a segbind device file")
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise DeviceFileError("device_id is required")
    if camera is not None and device_id != camera:
        raise DeviceFileError("device secret belongs to %r, not %r" % (device_id, camera))
    text = data.get("secret")
    try:
        secret = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raise DeviceFileError("secret is not hex") from None
    if len(secret) != KEY_SIZE:
        raise DeviceFileError("secret must be %d bytes of hex" % KEY_SIZE)
    return device_id, secret, bool(data.get("test_only"))
