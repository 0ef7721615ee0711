"""SEI NAL units carrying segbind tags (H.264 user_data_unregistered, payloadType 5).

A segbind SEI NAL unit holds exactly one SEI message: user_data_unregistered
with ``SEGBIND_UUID`` followed by the tag body. Decoders skip unregistered user
data they do not know, so the video decodes exactly as without it.
"""

from .h264 import SEI_USER_DATA_UNREGISTERED as USER_DATA_UNREGISTERED
from .h264 import SeiError, sei_messages
from .nal import escape_rbsp

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from .nal import Buffer
except ImportError:
    pass

SEGBIND_UUID = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
SEI_NAL_HEADER = 0x06  # forbidden_zero_bit 0, nal_ref_idc 0, nal_unit_type 6

# Longest SEI payload segbind ever parses; anything longer is oversized.
MAX_SEGBIND_PAYLOAD = 255


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes((value % 255,))


def build_sei_nal(body: bytes) -> bytes:
    """The escaped SEI NAL unit (header included, start code excluded) for a tag body."""
    payload = SEGBIND_UUID + body
    rbsp = (
        _ff_coded(USER_DATA_UNREGISTERED)
        + _ff_coded(len(payload))
        + payload
        + b"\x80"  # rbsp_trailing_bits
    )
    return bytes((SEI_NAL_HEADER,)) + escape_rbsp(rbsp)


def is_segbind_sei(nal: Buffer) -> bool:
    """True when an SEI NAL unit's first message is segbind's user data.

    Cheap: reads only the first bytes, so verifiers can test every NAL unit.
    The header byte must be exactly 0x06 (nal_ref_idc 0, as H.264 requires of
    SEI): any other value makes the unit a foreign SEI, covered by the digest.
    The header bytes before the UUID (type 5, an ff-coded size) and the UUID
    itself contain no two zero bytes in a row, so no emulation-prevention byte
    can sit among them and the escaped bytes are compared directly.
    """
    if len(nal) < 19 or nal[0] != SEI_NAL_HEADER or nal[1] != USER_DATA_UNREGISTERED:
        return False
    pos = 2
    while pos < len(nal) and nal[pos] == 0xFF:
        pos += 1
    pos += 1
    return bytes(nal[pos:pos + 16]) == SEGBIND_UUID


def segbind_payload(nal: Buffer) -> bytes:
    """The tag body of a segbind SEI NAL unit (the bytes after the UUID).

    Raises SeiError when the NAL unit is not exactly one segbind message.
    """
    messages = sei_messages(nal)
    if len(messages) != 1:
        raise SeiError("a segbind SEI NAL unit must hold exactly one SEI message")
    kind, payload = messages[0]
    if kind != USER_DATA_UNREGISTERED or payload[:16] != SEGBIND_UUID:
        raise SeiError("SEI message is not segbind user data")
    if len(payload) > MAX_SEGBIND_PAYLOAD:
        raise SeiError("segbind SEI payload is oversized")
    return payload[16:]
