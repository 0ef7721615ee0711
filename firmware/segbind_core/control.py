"""The owner's commands to a camera, the camera's results, and the pairing offer (docs/FORMAT.md 8).

Pure code like the rest of the core (CPython and MicroPython, no I/O), used by
the camera's agent and by the owner's app. Commands and results share one
layout, authenticated with HMAC-SHA256 under the pairing's command key C
(``keys.command_key``), which only the owner's app and the camera hold: the
cloud carries them and can neither make nor alter one::

    version  u8 2 | kind u8 'C' or 'R' | op u8 (1 pair, 2 rotate, 3 release)
    camera id | owner id | counter uvarint | epoch uvarint
    rotate command: u8 count (0..7), then id(account) per share, in slot order from 1
    command: issued_ms uvarint
    result: status (u8 length + ASCII) | stream_id uvarint | seq uvarint | detail (uvarint length + UTF-8)
    mac 32 bytes = HMAC-SHA256(C, "segbind/v2 command" 00 || every byte above)

The pairing offer (a claim) travels out of band, never through the cloud:
``"SBP2" || id(owner) || id(camera) || P (32) || expires_ms uvarint``.
"""

from .crypto import constant_time_equal, hmac_sha256
from .tag import MAX_EPOCH, MAX_ID_BYTES, MAX_SLOTS, MAX_U64, TagError, decode_uvarint, encode_id, encode_uvarint
from .topics import check_topic_id

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Dict, List, Optional, Tuple

    from .nal import Buffer
except ImportError:
    pass

VERSION = 2
KIND_COMMAND = 0x43
KIND_RESULT = 0x52
MAC_SIZE = 32
LABEL = b"segbind/v2 command\x00"
MAX_DETAIL_BYTES = 255
PAIRING_MAGIC = b"SBP2"
SECRET_SIZE = 32

PAIR = 1
ROTATE = 2
RELEASE = 3
OP_NAMES = {PAIR: "pair", ROTATE: "rotate", RELEASE: "release"}

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
OWNER_MISMATCH = "owner_mismatch"    # a command naming another owner than the camera's
TOO_MANY_SHARES = "too_many_shares"
EXPIRED = "expired"                  # a pairing offer past its time

ACCEPTED_STATUSES = (OK, ALREADY_APPLIED)


class ControlError(ValueError):
    """A message that must not be acted on; ``reason`` is one of the statuses."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_account(name: str, what: str) -> str:
    """An account or camera id as commands carry it: a tag id and an MQTT topic level."""
    try:
        encode_id(name, what)
        check_topic_id(name, what)
    except ValueError as exc:
        raise ControlError(MALFORMED, str(exc)) from None
    return name


def _dec_id(buf: bytes, pos: int, what: str) -> "Tuple[str, int]":
    if pos >= len(buf):
        raise ControlError(MALFORMED, "message truncated before the %s" % what)
    size = buf[pos]
    pos += 1
    if not 1 <= size <= MAX_ID_BYTES or pos + size > len(buf):
        raise ControlError(MALFORMED, "%s has a bad length" % what)
    try:
        name = str(bytes(buf[pos:pos + size]), "utf-8")
    except UnicodeError:
        raise ControlError(MALFORMED, "%s is not UTF-8" % what) from None
    return check_account(name, what), pos + size


def _dec_uint(buf: bytes, pos: int, limit: int, what: str) -> "Tuple[int, int]":
    try:
        return decode_uvarint(buf, pos, limit)
    except TagError:
        raise ControlError(MALFORMED, "%s is not a valid integer" % what) from None


def _dec_text(buf: bytes, pos: int, what: str, limit: int) -> "Tuple[str, int]":
    if pos >= len(buf):
        raise ControlError(MALFORMED, "message truncated before the %s" % what)
    size = buf[pos]
    pos += 1
    if not 1 <= size <= limit or pos + size > len(buf):
        raise ControlError(MALFORMED, "%s has a bad length" % what)
    try:
        return str(bytes(buf[pos:pos + size]), "utf-8"), pos + size
    except UnicodeError:
        raise ControlError(MALFORMED, "%s is not UTF-8" % what) from None


def mac_of(command_key: bytes, signed: bytes) -> bytes:
    return hmac_sha256(command_key, LABEL + signed)


def _head(kind: int, op: int, camera: str, owner: str, counter: int, epoch: int) -> bytes:
    if not 0 <= counter <= MAX_U64 or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError("counter or epoch out of range")
    return (bytes((VERSION, kind, op)) + encode_id(camera, "camera") + encode_id(owner, "owner")
            + encode_uvarint(counter) + encode_uvarint(epoch))


def _dec_head(data: "Buffer", kind: int) -> "Tuple[int, str, str, int, int, int, bytes, bytes]":
    """(op, camera, owner, counter, epoch, pos, body, mac) of a command or result."""
    data = bytes(data)
    if len(data) < 3 + MAC_SIZE:
        raise ControlError(MALFORMED, "control message is too short")
    if data[0] != VERSION:
        raise ControlError(UNKNOWN_VERSION, "control message version %d is not supported" % data[0])
    if data[1] != kind:
        raise ControlError(MALFORMED, "not a %s" % ("command" if kind == KIND_COMMAND else "result"))
    op = data[2]
    end = len(data) - MAC_SIZE
    body = data[:end]
    camera, pos = _dec_id(body, 3, "camera")
    owner, pos = _dec_id(body, pos, "owner")
    counter, pos = _dec_uint(body, pos, MAX_U64, "counter")
    epoch, pos = _dec_uint(body, pos, MAX_EPOCH, "epoch")
    return op, camera, owner, counter, epoch, pos, body, data[end:]


def _authentic(camera: str, expected: str, body: bytes, mac: bytes, key: bytes, what: str) -> None:
    if camera != expected:
        raise ControlError(WRONG_CAMERA, "%s for camera %r" % (what, camera))
    if not constant_time_equal(mac_of(key, body), mac):
        raise ControlError(BAD_MAC, "%s does not authenticate under this pairing's key" % what)


class Command:
    """One command from the owner to one camera: ``rotate`` (a new epoch and its shares) or ``release``."""

    def __init__(self, op: int, camera: str, owner: str, counter: int, epoch: int = 0,
                 shares: "Optional[List[str]]" = None, issued_ms: int = 0) -> None:
        self.op = op
        self.camera = camera
        self.owner = owner
        self.counter = counter
        self.epoch = epoch
        self.shares = list(shares or [])
        self.issued_ms = issued_ms

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, "op%d" % self.op)

    def signed_bytes(self) -> bytes:
        if self.op == ROTATE:
            if not 1 <= self.epoch or len(self.shares) > MAX_SLOTS - 1:
                raise ValueError("rotate needs an epoch from 1 and at most %d shares"
                                 % (MAX_SLOTS - 1))
            tail = bytes((len(self.shares),)) + b"".join(encode_id(a, "share") for a in self.shares)
        elif self.op == RELEASE:
            if self.epoch or self.shares:
                raise ValueError("release carries no epoch and no shares")
            tail = b""
        else:
            raise ValueError("not a command: %s" % self.name)
        if not 0 <= self.issued_ms <= MAX_U64:
            raise ValueError("issued_ms out of range")
        return (_head(KIND_COMMAND, self.op, self.camera, self.owner, self.counter, self.epoch)
                + tail + encode_uvarint(self.issued_ms))

    def encode(self, command_key: bytes) -> bytes:
        signed = self.signed_bytes()
        return signed + mac_of(command_key, signed)

    def __repr__(self) -> str:
        return "Command(%s, camera=%r, owner=%r, counter=%d, epoch=%d, shares=%r)" % (
            self.name, self.camera, self.owner, self.counter, self.epoch, self.shares)


def decode_command(data: "Buffer") -> "Tuple[Command, bytes, bytes]":
    """(Command, signed bytes, mac) without checking the MAC. Never act on it: ``open_command``."""
    op, camera, owner, counter, epoch, pos, body, mac = _dec_head(data, KIND_COMMAND)
    shares = []  # type: List[str]
    if op == ROTATE:
        if pos >= len(body):
            raise ControlError(MALFORMED, "rotate truncated before its shares")
        count = body[pos]
        pos += 1
        if count > MAX_SLOTS - 1:
            raise ControlError(TOO_MANY_SHARES, "%d shares; at most %d" % (count, MAX_SLOTS - 1))
        for _ in range(count):
            share, pos = _dec_id(body, pos, "share")
            shares.append(share)
        if epoch < 1:
            raise ControlError(MALFORMED, "rotate needs an epoch from 1")
    elif op == RELEASE:
        if epoch:
            raise ControlError(MALFORMED, "release carries no epoch")
    else:
        raise ControlError(MALFORMED, "unknown command %d" % op)
    issued_ms, pos = _dec_uint(body, pos, MAX_U64, "issued_ms")
    if pos != len(body):
        raise ControlError(MALFORMED, "command has %d unexpected bytes" % (len(body) - pos))
    return Command(op, camera, owner, counter, epoch, shares, issued_ms), body, mac


def open_command(command_key: bytes, camera: str, data: "Buffer") -> Command:
    """The Command in ``data`` if it is well formed, for ``camera`` and authentic.

    Raises ControlError (MALFORMED, UNKNOWN_VERSION, TOO_MANY_SHARES,
    WRONG_CAMERA or BAD_MAC). The counter and the camera's state are the
    caller's to check.
    """
    cmd, body, mac = decode_command(data)
    _authentic(cmd.camera, camera, body, mac, command_key, "command")
    return cmd


class Result:
    """What a camera did with a pairing or a command, and where its stream stood after it."""

    def __init__(self, camera: str, owner: str, counter: int, op: int, status: str,
                 epoch: int = 0, stream_id: int = 0, seq: int = 0, detail: str = "") -> None:
        self.camera = camera
        self.owner = owner
        self.counter = counter
        self.op = op
        self.status = status
        self.epoch = epoch
        self.stream_id = stream_id
        self.seq = seq
        self.detail = detail

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, "op%d" % self.op)

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
        status = self.status.encode()
        if not 1 <= len(status) <= MAX_ID_BYTES or not 0 <= self.op <= 255:
            raise ValueError("status or op out of range")
        return (_head(KIND_RESULT, self.op, self.camera, self.owner, self.counter, self.epoch)
                + bytes((len(status),)) + status + encode_uvarint(self.stream_id)
                + encode_uvarint(self.seq) + encode_uvarint(len(detail)) + detail)

    def encode(self, command_key: bytes) -> bytes:
        signed = self.signed_bytes()
        return signed + mac_of(command_key, signed)

    def as_dict(self) -> "Dict[str, Any]":
        """For people and logs: the op by name."""
        return {"camera": self.camera, "owner": self.owner, "counter": self.counter,
                "command": self.name, "status": self.status, "epoch": self.epoch,
                "stream_id": self.stream_id, "seq": self.seq, "detail": self.detail}

    def to_json(self) -> "Dict[str, Any]":
        """Every field, for storage (the agent keeps its last result to answer a redelivery)."""
        return {"camera": self.camera, "owner": self.owner, "counter": self.counter, "op": self.op,
                "status": self.status, "epoch": self.epoch, "stream_id": self.stream_id,
                "seq": self.seq, "detail": self.detail}

    @classmethod
    def from_json(cls, data: "Dict[str, Any]") -> "Result":
        return cls(data["camera"], data["owner"], data["counter"], data["op"], data["status"],
                   data["epoch"], data["stream_id"], data["seq"], data["detail"])

    def __repr__(self) -> str:
        return "Result(%s #%d: %s, owner=%r, epoch=%d, stream %d from seq %d)" % (
            self.name, self.counter, self.status, self.owner, self.epoch, self.stream_id, self.seq)


def decode_result(data: "Buffer") -> "Tuple[Result, bytes, bytes]":
    """(Result, signed bytes, mac) without checking the MAC."""
    op, camera, owner, counter, epoch, pos, body, mac = _dec_head(data, KIND_RESULT)
    status, pos = _dec_text(body, pos, "status", MAX_ID_BYTES)
    stream_id, pos = _dec_uint(body, pos, MAX_U64, "stream_id")
    seq, pos = _dec_uint(body, pos, MAX_U64, "seq")
    size, pos = _dec_uint(body, pos, MAX_DETAIL_BYTES, "detail length")
    if pos + size != len(body):
        raise ControlError(MALFORMED, "result detail has a bad length")
    try:
        detail = str(body[pos:], "utf-8")
    except UnicodeError:
        raise ControlError(MALFORMED, "result detail is not UTF-8") from None
    return Result(camera, owner, counter, op, status, epoch, stream_id, seq, detail), body, mac


def open_result(command_key: bytes, camera: str, data: "Buffer") -> Result:
    """The Result in ``data`` if it is well formed, from ``camera`` and authentic."""
    result, body, mac = decode_result(data)
    _authentic(result.camera, camera, body, mac, command_key, "result")
    return result


class PairingOffer:
    """What the owner's app hands the camera out of band to claim it (a QR code on the phone's
    screen): the owner, the camera, a fresh pairing secret, and until when it may be used."""

    def __init__(self, owner: str, camera: str, secret: bytes, expires_ms: int) -> None:
        self.owner = owner
        self.camera = camera
        self.secret = secret
        self.expires_ms = expires_ms

    def encode(self) -> bytes:
        if len(self.secret) != SECRET_SIZE or not 0 <= self.expires_ms <= MAX_U64:
            raise ValueError("a pairing secret is %d bytes" % SECRET_SIZE)
        return (PAIRING_MAGIC + encode_id(self.owner, "owner") + encode_id(self.camera, "camera")
                + self.secret + encode_uvarint(self.expires_ms))

    def __repr__(self) -> str:
        return "PairingOffer(owner=%r, camera=%r, secret=<hidden>, expires_ms=%d)" % (
            self.owner, self.camera, self.expires_ms)


def decode_pairing(data: "Buffer") -> PairingOffer:
    data = bytes(data)
    if not data.startswith(PAIRING_MAGIC):
        raise ControlError(MALFORMED, "not a segbind pairing offer")
    owner, pos = _dec_id(data, len(PAIRING_MAGIC), "owner")
    camera, pos = _dec_id(data, pos, "camera")
    if pos + SECRET_SIZE > len(data):
        raise ControlError(MALFORMED, "pairing offer truncated in its secret")
    secret = data[pos:pos + SECRET_SIZE]
    expires_ms, pos = _dec_uint(data, pos + SECRET_SIZE, MAX_U64, "expires_ms")
    if pos != len(data):
        raise ControlError(MALFORMED, "pairing offer has %d unexpected bytes" % (len(data) - pos))
    return PairingOffer(owner, camera, secret, expires_ms)
