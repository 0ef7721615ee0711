"""The SEI NAL unit that carries a segbind tag (user_data_unregistered, payloadType 5).

H.264: an SEI NAL unit (header ``06``); H.265: a prefix SEI NAL unit (header
``4e 01``). It holds exactly one SEI message: user_data_unregistered with
``SEGBIND_UUID`` followed by the tag body. Decoders skip unregistered user data
they do not know, so the video decodes exactly as without it.
"""

from .h264 import SEI_USER_DATA_UNREGISTERED as USER_DATA_UNREGISTERED
from .h264 import SeiError, sei_messages
from .nal import escape_rbsp
from .tag import CODEC_H264, CODEC_H265, DIGEST_HINT_SIZE, LINK_SIZE, MAC_SIZE, MAX_ID_BYTES, MAX_SLOTS

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from .nal import Buffer
except ImportError:
    pass

__all__ = ["SEGBIND_UUID", "SeiError", "build_sei_nal", "sei_messages", "segbind_payload",
           "tag_codec"]

SEGBIND_UUID = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
# The tag's NAL header for each codec: H.264 SEI (nal_ref_idc 0), H.265 prefix SEI
# (type 39, layer 0, temporal id plus 1 = 1).
SEI_HEADERS = {CODEC_H264: b"\x06", CODEC_H265: b"\x4e\x01"}

# The longest tag body of any version, so that an earlier version's tag is still found (and
# refused as such): format 2's, 3 + two 33-byte ids + its varints at their longest
# (5+10+10+10+5+5+5) + flags, link, hint, slot count + 8 MACs; format 3's is shorter (196
# bytes: a 16-byte key id instead of the ids). Anything longer is not a segbind tag.
MAX_BODY = 3 + 2 * (1 + MAX_ID_BYTES) + 50 + 1 + LINK_SIZE + DIGEST_HINT_SIZE + 1 + MAX_SLOTS * MAC_SIZE
MAX_SEGBIND_PAYLOAD = 16 + MAX_BODY


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes((value % 255,))


def build_sei_nal(body: bytes, codec: int = CODEC_H264) -> bytes:
    """The escaped SEI NAL unit (header included, start code excluded) for a tag body."""
    payload = SEGBIND_UUID + body
    rbsp = (
        _ff_coded(USER_DATA_UNREGISTERED)
        + _ff_coded(len(payload))
        + payload
        + b"\x80"  # rbsp_trailing_bits
    )
    return SEI_HEADERS[codec] + escape_rbsp(rbsp)


def tag_codec(nal: Buffer) -> int:
    """The codec of a segbind tag NAL unit (CODEC_H264, CODEC_H265), or 0 when it is none.

    Cheap: reads only the first bytes, so readers can test every NAL unit. The
    header must be exactly the codec's (any other value makes the unit a foreign
    SEI, covered by the digest). The bytes before the UUID (type 5, an ff-coded
    size) and the UUID itself hold no two zero bytes in a row, so no
    emulation-prevention byte can sit among them.
    """
    n = len(nal)
    if n < 19:
        return 0
    first = nal[0]
    if first == 0x06:
        codec, pos = CODEC_H264, 1
    elif first == 0x4E and nal[1] == 0x01:
        codec, pos = CODEC_H265, 2
    else:
        return 0
    if nal[pos] != USER_DATA_UNREGISTERED:
        return 0
    pos += 1
    while pos < n and nal[pos] == 0xFF:
        pos += 1
    pos += 1
    return codec if bytes(nal[pos:pos + 16]) == SEGBIND_UUID else 0


def segbind_payload(nal: Buffer) -> bytes:
    """The tag body of a segbind SEI NAL unit (the bytes after the UUID).

    Raises SeiError when the NAL unit is not exactly one segbind message.
    """
    codec = tag_codec(nal)
    if not codec:
        raise SeiError("not a segbind SEI NAL unit")
    messages = sei_messages(nal, len(SEI_HEADERS[codec]))
    if len(messages) != 1:
        raise SeiError("a segbind SEI NAL unit must hold exactly one SEI message")
    kind, payload = messages[0]
    if kind != USER_DATA_UNREGISTERED or payload[:16] != SEGBIND_UUID:
        raise SeiError("SEI message is not segbind user data")
    if len(payload) > MAX_SEGBIND_PAYLOAD:
        raise SeiError("segbind SEI payload is oversized")
    return bytes(payload[16:])
