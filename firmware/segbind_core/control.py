"""Control messages: the cloud's commands to one camera and the camera's results.

Pure code like the rest of the core (CPython and MicroPython, no I/O), used by
the camera agent and by the cloud. Both kinds of message share one binary
layout and are authenticated with HMAC-SHA256 under the camera's control key
(``keys.derive_control_key``), which only the camera and the cloud's registry
can derive from the device secret::

    version    u8   1
    kind       u8   0x43 'C' command, 0x52 'R' result
    op         u8   1 claim, 2 rotate, 3 transfer, 4 reset (0 in a result for an unreadable command)
    camera     u8 length (1-32) + UTF-8
    counter    uvarint (< 2^64)   the command's counter, strictly increasing per camera
    owner      u8 length (0-32) + UTF-8 (empty: none)
    epoch      uvarint (< 2^32)
    command:   issued_ms uvarint   the cloud's clock, diagnostic only
    result:    status    u8 length (1-32) + ASCII   "ok" or why the command was refused
               stream_id uvarint, seq uvarint       where the camera's stream stood after it
               detail    uvarint length (< 256) + UTF-8, for people
    mac        32 bytes  HMAC-SHA256(control key, LABEL || every byte above)

Commands: ``claim(owner, epoch)`` binds an unclaimed camera, ``rotate(owner,
epoch)`` moves the current owner to a new epoch (revoking every viewer not
granted the new one), ``transfer(owner, epoch)`` hands the camera to another
owner, ``reset()`` clears the binding (owner empty, epoch 0). A camera accepts
a command only when its MAC verifies and its counter is above every counter
it accepted before; every epoch must be above every epoch the camera used.
"""

from .crypto import constant_time_equal, hmac_sha256
from .tag import MAX_EPOCH, MAX_ID_BYTES, MAX_U64, TagError, decode_uvarint, encode_uvarint

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, TypeVar

    from .nal import Buffer

    _Message = TypeVar("_Message", "Command", "Result")
except ImportError:
    pass

VERSION = 1
KIND_COMMAND = 0x43
KIND_RESULT = 0x52
MAC_SIZE = 32
LABEL = b"segbind/v1 control message\x00"
MAX_DETAIL_BYTES = 255

CLAIM = 1
ROTATE = 2
TRANSFER = 3
RESET = 4
OP_NAMES = {CLAIM: "claim", ROTATE: "rotate", TRANSFER: "transfer", RESET: "reset"}
OPS = {"claim": CLAIM, "rotate": ROTATE, "transfer": TRANSFER, "reset": RESET}

# Result statuses (stable strings for logs, JSON and tests).
OK = "ok"
ALREADY_APPLIED = "already_applied"  # a redelivery of the last command accepted
MALFORMED = "malformed"
UNKNOWN_VERSION = "unknown_version"
WRONG_CAMERA = "wrong_camera"
BAD_MAC = "bad_mac"                  # forged or altered
REPLAY = "replay"                    # counter not above the last one accepted
NOT_CLAIMED = "not_claimed"
ALREADY_CLAIMED = "already_claimed"
STALE_EPOCH = "stale_epoch"          # epoch not above every epoch used before
OWNER_MISMATCH = "owner_mismatch"    # rotate for an owner the camera does not have

ACCEPTED_STATUSES = (OK, ALREADY_APPLIED)


class ControlError(ValueError):
    """A control message that must not be acted on; ``reason`` is one of the statuses."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _enc_name(name: str, what: str, allow_empty: bool) -> bytes:
    raw = name.encode("utf-8")
    if len(raw) > MAX_ID_BYTES or (not raw and not allow_empty):
        raise ValueError("%s must be %d to %d bytes of UTF-8"
                         % (what, 0 if allow_empty else 1, MAX_ID_BYTES))
    return bytes((len(raw),)) + raw


def _dec_name(buf: bytes, pos: int, what: str, allow_empty: bool) -> tuple[str, int]:
    if pos >= len(buf):
        raise ControlError(MALFORMED, "message truncated before the %s" % what)
    size = buf[pos]
    pos += 1
    if size > MAX_ID_BYTES or (size == 0 and not allow_empty) or pos + size > len(buf):
        raise ControlError(MALFORMED, "%s has a bad length" % what)
    try:
        name = str(bytes(buf[pos:pos + size]), "utf-8")
    except UnicodeError:
        raise ControlError(MALFORMED, "%s is not UTF-8" % what) from None
    return name, pos + size


def _dec_uint(buf: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    try:
        return decode_uvarint(buf, pos, limit)
    except TagError:
        raise ControlError(MALFORMED, "%s is not a valid integer" % what) from None


def _check_fields(op: int, owner: str, epoch: int) -> None:
    """The rules every command of ``op`` obeys, whoever reads it."""
    if op not in OP_NAMES:
        raise ControlError(MALFORMED, "unknown command %d" % op)
    if op == RESET:
        if owner or epoch:
            raise ControlError(MALFORMED, "reset carries no owner and no epoch")
    elif not owner or not 1 <= epoch <= MAX_EPOCH:
        raise ControlError(MALFORMED, "%s needs an owner and an epoch from 1" % OP_NAMES[op])


def mac_of(control_key: bytes, signed: bytes) -> bytes:
    return hmac_sha256(control_key, LABEL + signed)


class _Signed:
    """What commands and results share: an op, a name for it, MAC'd wire bytes."""

    op = 0

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, "op%d" % self.op)

    def signed_bytes(self) -> bytes:
        raise NotImplementedError

    def encode(self, control_key: bytes) -> bytes:
        """The wire bytes: the fields, then their MAC under ``control_key``."""
        signed = self.signed_bytes()
        return signed + mac_of(control_key, signed)


def _enc_head(kind: int, op: int, camera: str, counter: int, owner: str, epoch: int) -> bytes:
    """The fields every command and result starts with."""
    return (bytes((VERSION, kind, op))
            + _enc_name(camera, "camera", False)
            + encode_uvarint(counter)
            + _enc_name(owner, "owner", True)
            + encode_uvarint(epoch))


def _dec_head(data: Buffer, kind: int) -> tuple[int, str, int, str, int, int, bytes, bytes]:
    """(op, camera, counter, owner, epoch, pos, body, mac) of a command or result."""
    data = bytes(data)
    op, pos = _dec_header(data, kind)
    end = len(data) - MAC_SIZE
    body = data[:end]
    camera, pos = _dec_name(body, pos, "camera", False)
    counter, pos = _dec_uint(body, pos, MAX_U64, "counter")
    owner, pos = _dec_name(body, pos, "owner", True)
    epoch, pos = _dec_uint(body, pos, MAX_EPOCH, "epoch")
    return op, camera, counter, owner, epoch, pos, body, data[end:]


def _authentic(message: _Message, body: bytes, mac: bytes, control_key: bytes, camera: str,
               what: str, relation: str) -> _Message:
    """``message`` when it names ``camera`` and its MAC is right; else ControlError."""
    if message.camera != camera:
        raise ControlError(WRONG_CAMERA, "%s %s camera %r" % (what, relation, message.camera))
    if not constant_time_equal(mac_of(control_key, body), mac):
        raise ControlError(BAD_MAC, "%s does not authenticate under this camera's key" % what)
    return message


class Command(_Signed):
    """One command to one camera. ``name`` is "claim", "rotate", "transfer" or "reset"."""

    def __init__(self, op: int, camera: str, counter: int, owner: str = "", epoch: int = 0,
                 issued_ms: int = 0) -> None:
        self.op = op
        self.camera = camera
        self.counter = counter
        self.owner = owner
        self.epoch = epoch
        self.issued_ms = issued_ms

    def signed_bytes(self) -> bytes:
        _check_fields(self.op, self.owner, self.epoch)
        if not 0 <= self.counter <= MAX_U64 or not 0 <= self.issued_ms <= MAX_U64:
            raise ValueError("counter or issued_ms out of range")
        return (_enc_head(KIND_COMMAND, self.op, self.camera, self.counter, self.owner, self.epoch)
                + encode_uvarint(self.issued_ms))

    def __repr__(self) -> str:
        return "Command(%s, camera=%r, counter=%d, owner=%r, epoch=%d)" % (
            self.name, self.camera, self.counter, self.owner, self.epoch)


def _dec_header(data: bytes, kind: int) -> tuple[int, int]:
    if len(data) < 3 + MAC_SIZE:
        raise ControlError(MALFORMED, "control message is too short")
    if data[0] != VERSION:
        raise ControlError(UNKNOWN_VERSION, "control message version %d is not supported" % data[0])
    if data[1] != kind:
        raise ControlError(MALFORMED, "not a control %s" % ("command" if kind == KIND_COMMAND
                                                             else "result"))
    return data[2], 3


def decode_command(data: Buffer) -> tuple[Command, bytes, bytes]:
    """(Command, signed bytes, mac) from wire bytes, without checking the MAC.

    Raises ControlError (MALFORMED or UNKNOWN_VERSION) for anything not exactly
    one well-formed command. Never act on the result: use ``open_command``.
    """
    op, camera, counter, owner, epoch, pos, body, mac = _dec_head(data, KIND_COMMAND)
    issued_ms, pos = _dec_uint(body, pos, MAX_U64, "issued_ms")
    if pos != len(body):
        raise ControlError(MALFORMED, "command has %d unexpected bytes" % (len(body) - pos))
    _check_fields(op, owner, epoch)
    return Command(op, camera, counter, owner, epoch, issued_ms), body, mac


def open_command(control_key: bytes, camera: str, data: Buffer) -> Command:
    """The Command in ``data`` if it is well formed, for ``camera`` and authentic.

    Raises ControlError with reason MALFORMED, UNKNOWN_VERSION, WRONG_CAMERA or
    BAD_MAC. The counter (replay) and the camera's state are the caller's to check.
    """
    cmd, body, mac = decode_command(data)
    return _authentic(cmd, body, mac, control_key, camera, "command", "is for")


class Result(_Signed):
    """What a camera did with one command: ``status`` and where its binding stood after it."""

    def __init__(self, camera: str, counter: int, op: int, status: str, owner: str = "",
                 epoch: int = 0, stream_id: int = 0, seq: int = 0, detail: str = "") -> None:
        self.camera = camera
        self.counter = counter
        self.op = op
        self.status = status
        self.owner = owner
        self.epoch = epoch
        self.stream_id = stream_id
        self.seq = seq
        self.detail = detail

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED_STATUSES

    def signed_bytes(self) -> bytes:
        detail = self.detail.encode("utf-8")[:MAX_DETAIL_BYTES]
        while detail:  # never cut a UTF-8 sequence in half
            try:
                str(detail, "utf-8")
                break
            except UnicodeError:
                detail = detail[:-1]
        if not 0 <= self.op <= 255 or not 0 <= self.epoch <= MAX_EPOCH:
            raise ValueError("op or epoch out of range")
        return (_enc_head(KIND_RESULT, self.op, self.camera, self.counter, self.owner, self.epoch)
                + _enc_name(self.status, "status", False)
                + encode_uvarint(self.stream_id)
                + encode_uvarint(self.seq)
                + encode_uvarint(len(detail)) + detail)

    def as_dict(self) -> dict[str, Any]:
        """For people and logs: the command by name."""
        return {"camera": self.camera, "counter": self.counter, "command": self.name,
                "status": self.status, "owner": self.owner, "epoch": self.epoch,
                "stream_id": self.stream_id, "seq": self.seq, "detail": self.detail}

    def to_json(self) -> dict[str, Any]:
        """Every field, for storage (the agent keeps its last result to answer a redelivery)."""
        return {"camera": self.camera, "counter": self.counter, "op": self.op,
                "status": self.status, "owner": self.owner, "epoch": self.epoch,
                "stream_id": self.stream_id, "seq": self.seq, "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Result":
        return cls(data["camera"], data["counter"], data["op"], data["status"], data["owner"],
                   data["epoch"], data["stream_id"], data["seq"], data["detail"])

    def __repr__(self) -> str:
        return "Result(%s #%d: %s, owner=%r, epoch=%d, stream %d from seq %d)" % (
            self.name, self.counter, self.status, self.owner, self.epoch, self.stream_id, self.seq)


def decode_result(data: Buffer) -> tuple[Result, bytes, bytes]:
    """(Result, signed bytes, mac) from wire bytes, without checking the MAC."""
    op, camera, counter, owner, epoch, pos, body, mac = _dec_head(data, KIND_RESULT)
    end = len(body)
    status, pos = _dec_name(body, pos, "status", False)
    stream_id, pos = _dec_uint(body, pos, MAX_U64, "stream_id")
    seq, pos = _dec_uint(body, pos, MAX_U64, "seq")
    size, pos = _dec_uint(body, pos, MAX_DETAIL_BYTES, "detail length")
    if pos + size != end:
        raise ControlError(MALFORMED, "result detail has a bad length")
    try:
        detail = str(body[pos:end], "utf-8")
    except UnicodeError:
        raise ControlError(MALFORMED, "result detail is not UTF-8") from None
    return Result(camera, counter, op, status, owner, epoch, stream_id, seq, detail), body, mac


def open_result(control_key: bytes, camera: str, data: Buffer) -> Result:
    """The Result in ``data`` if it is well formed, from ``camera`` and authentic."""
    result, body, mac = decode_result(data)
    return _authentic(result, body, mac, control_key, camera, "result", "is from")
