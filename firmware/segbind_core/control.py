"""The owner's commands to a camera, the camera's results, and the pairing offer (docs/FORMAT.md 8).

Pure code like the rest of the core (CPython and MicroPython, no I/O), used by
the camera's agent and by the owner's app. Commands and results share one
layout, authenticated with HMAC-SHA256 under the pairing's command key C
(``keys.command_key``), which only the owner's app and the camera hold: the
cloud carries them and can neither make nor alter one::

    version  u8 3 | kind u8 'C' or 'R' | op u8 (1 pair, 2 rotate, 3 release)
    camera id | owner id | counter uvarint < 2^53 | epoch uvarint 1 .. 2^31-1
    rotate command: period_s uvarint (60..86400) | u8 count (0..7), then id(account) per share
    command: issued_ms uvarint < 2^53
    result: status (u8 length + ASCII) | stream_id uvarint < 2^48 | seq uvarint < 2^32
            | detail (uvarint length <= 255 + UTF-8)
    mac 32 bytes = HMAC-SHA256(C, "segbind/v3 command" 00 || every byte above)

The pairing offer (a claim) travels out of band, never through the cloud:
``"SBP3" || id(owner) || id(camera) || P (32) || expires_ms uvarint < 2^53 || period_s uvarint``.

Reading is in two steps, so that a refusal says what was wrong: ``decode_*`` reads the
layout (``malformed``, ``unknown_version``, ``too_many_shares``; an id whose length is out of
1..32 is ``out_of_range``), and ``check`` puts every number against its bounds
(``out_of_range``). ``open_command`` checks the camera and the MAC between the two: a
forgery is ``bad_mac`` whatever its numbers say. Nothing here raises anything but
ControlError on any input, and nothing here derives a key.
"""

from .crypto import constant_time_equal, hmac_sha256
from .keys import MAX_PERIOD_S, MIN_PERIOD_S
from .tag import MAX_EPOCH, MAX_ID_BYTES, MAX_SLOTS, MAX_STREAM_ID, MAX_U32, MAX_U53, MAX_U64, encode_id, encode_uvarint
from .tag import _is_utf8 as is_utf8
from .topics import check_topic_id

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Any, Dict, List, Optional, Tuple

    from .nal import Buffer
except ImportError:
    pass

VERSION = 3
KIND_COMMAND = 0x43
KIND_RESULT = 0x52
MAC_SIZE = 32
LABEL = b"segbind/v3 command\x00"
MAX_DETAIL_BYTES = 255
PAIRING_MAGIC = b"SBP3"
SECRET_SIZE = 32

# Bounds of every number a command, a result or an offer carries (FORMAT.md 8).
MAX_COUNTER = MAX_U53          # counters: exact as JavaScript numbers
MAX_TIME_MS = MAX_U53          # issued_ms, expires_ms
MIN_EPOCH = 1                  # epochs count from 1 in each pairing ...
# ... up to MAX_EPOCH (2^31 - 1), from segbind_core.tag
MAX_SHARES = MAX_SLOTS - 1

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
REPLAY = "replay"                    # counter not above the last one accepted; an offer taken before
NOT_CLAIMED = "not_claimed"
ALREADY_CLAIMED = "already_claimed"
STALE_EPOCH = "stale_epoch"          # epoch not above every epoch used in this pairing
OWNER_MISMATCH = "owner_mismatch"    # a command naming another owner than the camera's
TOO_MANY_SHARES = "too_many_shares"
OUT_OF_RANGE = "out_of_range"        # a number or an id outside the bounds FORMAT.md 8 gives it
EXPIRED = "expired"                  # a pairing offer past its time

ACCEPTED_STATUSES = (OK, ALREADY_APPLIED)
STATUSES = (OK, ALREADY_APPLIED, MALFORMED, UNKNOWN_VERSION, WRONG_CAMERA, BAD_MAC, REPLAY, NOT_CLAIMED,
            ALREADY_CLAIMED, STALE_EPOCH, OWNER_MISMATCH, TOO_MANY_SHARES, OUT_OF_RANGE, EXPIRED)


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


def in_range(value: int, low: int, high: int, what: str) -> int:
    """``value`` when low <= value <= high; else ControlError(OUT_OF_RANGE) naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError(OUT_OF_RANGE, "%s %s is out of range (%d to %d)" % (what, _short(value), low, high))
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _dec_id(buf: bytes, pos: int, what: str) -> "Tuple[str, int]":
    if pos >= len(buf):
        raise ControlError(MALFORMED, "message truncated before the %s" % what)
    size = buf[pos]
    pos += 1
    if pos + size > len(buf):
        raise ControlError(MALFORMED, "%s runs past the message" % what)
    if not 1 <= size <= MAX_ID_BYTES:
        raise ControlError(OUT_OF_RANGE, "%s is %d bytes (1 to %d)" % (what, size, MAX_ID_BYTES))
    raw = bytes(buf[pos:pos + size])
    if 0 in raw or not is_utf8(raw):  # MicroPython's decoder accepts what RFC 3629 does not
        raise ControlError(MALFORMED, "%s is not UTF-8 without NUL" % what)
    return check_account(str(raw, "utf-8"), what), pos + size


def _dec_uint(buf: bytes, pos: int, what: str) -> "Tuple[int, int]":
    """A minimal uvarint of at most 64 bits (its bounds are ``check``'s to judge)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ControlError(MALFORMED, "message truncated inside the %s" % what)
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise ControlError(MALFORMED, "%s is not minimally encoded" % what)
            if value > MAX_U64:
                raise ControlError(OUT_OF_RANGE, "%s is above 2^64" % what)
            return value, pos
        shift += 7
        if shift > 63:
            raise ControlError(OUT_OF_RANGE, "%s is above 2^64" % what)


def _dec_text(buf: bytes, pos: int, what: str, limit: int) -> "Tuple[str, int]":
    if pos >= len(buf):
        raise ControlError(MALFORMED, "message truncated before the %s" % what)
    size = buf[pos]
    pos += 1
    if not 1 <= size <= limit or pos + size > len(buf):
        raise ControlError(MALFORMED, "%s has a bad length" % what)
    raw = bytes(buf[pos:pos + size])
    if not is_utf8(raw):
        raise ControlError(MALFORMED, "%s is not UTF-8" % what)
    return str(raw, "utf-8"), pos + size


def mac_of(command_key: bytes, signed: bytes) -> bytes:
    return hmac_sha256(command_key, LABEL + signed)


def _head(kind: int, op: int, camera: str, owner: str, counter: int, epoch: int) -> bytes:
    """The fields every command and result begins with; ValueError (ControlError) out of bounds."""
    in_range(counter, 0, MAX_COUNTER, "counter")
    in_range(epoch, 0 if kind == KIND_RESULT else MIN_EPOCH, MAX_EPOCH, "epoch")
    return (bytes((VERSION, kind, op)) + encode_id(camera, "camera") + encode_id(owner, "owner")
            + encode_uvarint(counter) + encode_uvarint(epoch))


def _dec_head(data: "Buffer", kind: int) -> "Tuple[int, str, str, int, int, int, bytes, bytes]":
    """(op, camera, owner, counter, epoch, pos, body, mac) of a command or result; the numbers
    are not checked against their bounds yet."""
    data = bytes(data)
    if len(data) < 3 + MAC_SIZE:
        raise ControlError(MALFORMED, "control message is too short")
    if data[0] != VERSION:
        raise ControlError(UNKNOWN_VERSION, "control message version %d is not supported (format %d)"
                           % (data[0], VERSION))
    if data[1] != kind:
        raise ControlError(MALFORMED, "not a %s" % ("command" if kind == KIND_COMMAND else "result"))
    op = data[2]
    end = len(data) - MAC_SIZE
    body = data[:end]
    camera, pos = _dec_id(body, 3, "camera")
    owner, pos = _dec_id(body, pos, "owner")
    counter, pos = _dec_uint(body, pos, "counter")
    epoch, pos = _dec_uint(body, pos, "epoch")
    return op, camera, owner, counter, epoch, pos, body, data[end:]


def _authentic(camera: str, expected: str, body: bytes, mac: bytes, key: bytes, what: str) -> None:
    if camera != expected:
        raise ControlError(WRONG_CAMERA, "%s for camera %r" % (what, camera))
    if not constant_time_equal(mac_of(key, body), mac):
        raise ControlError(BAD_MAC, "%s does not authenticate under this pairing's key" % what)


class Command:
    """One command from the owner to one camera: ``rotate`` (a new epoch, its period length and
    its shares) or ``release``. ``epoch`` of a release is the epoch the owner's app knows in force
    (diagnostic: the camera checks only its bounds)."""

    def __init__(self, op: int, camera: str, owner: str, counter: int, epoch: int = 1,
                 shares: "Optional[List[str]]" = None, issued_ms: int = 0, period_s: int = 0) -> None:
        self.op = op
        self.camera = camera
        self.owner = owner
        self.counter = counter
        self.epoch = epoch
        self.shares = list(shares or [])
        self.issued_ms = issued_ms
        self.period_s = period_s

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, "op%d" % self.op)

    def check(self) -> "Command":
        """Every number against its bounds (FORMAT.md 8): ControlError(OUT_OF_RANGE) when one is
        not, (TOO_MANY_SHARES) for more than seven shares, (MALFORMED) for what no command is."""
        if self.op not in (ROTATE, RELEASE):
            raise ControlError(MALFORMED, "not a command: %s" % self.name)
        in_range(self.counter, 0, MAX_COUNTER, "counter")
        in_range(self.epoch, MIN_EPOCH, MAX_EPOCH, "epoch")
        in_range(self.issued_ms, 0, MAX_TIME_MS, "issued_ms")
        if self.op == ROTATE:
            in_range(self.period_s, MIN_PERIOD_S, MAX_PERIOD_S, "period_s")
            if len(self.shares) > MAX_SHARES:
                raise ControlError(TOO_MANY_SHARES, "%d shares; at most %d" % (len(self.shares), MAX_SHARES))
        elif self.period_s or self.shares:
            raise ControlError(MALFORMED, "release carries no period and no shares")
        return self

    def signed_bytes(self) -> bytes:
        self.check()
        head = _head(KIND_COMMAND, self.op, self.camera, self.owner, self.counter, self.epoch)
        if self.op == ROTATE:
            head += encode_uvarint(self.period_s) + bytes((len(self.shares),))
            head += b"".join(encode_id(check_account(a, "share"), "share") for a in self.shares)
        return head + encode_uvarint(self.issued_ms)

    def encode(self, command_key: bytes) -> bytes:
        signed = self.signed_bytes()
        return signed + mac_of(command_key, signed)

    def __repr__(self) -> str:
        return "Command(%s, camera=%r, owner=%r, counter=%d, epoch=%d, period %d s, shares=%r)" % (
            self.name, self.camera, self.owner, self.counter, self.epoch, self.period_s, self.shares)


def decode_command(data: "Buffer") -> "Tuple[Command, bytes, bytes]":
    """(Command, signed bytes, mac) as laid out, without checking the MAC or the bounds of its
    numbers. Never act on it: ``open_command``."""
    op, camera, owner, counter, epoch, pos, body, mac = _dec_head(data, KIND_COMMAND)
    shares = []  # type: List[str]
    period_s = 0
    if op == ROTATE:
        period_s, pos = _dec_uint(body, pos, "period_s")
        if pos >= len(body):
            raise ControlError(MALFORMED, "rotate truncated before its shares")
        count = body[pos]
        pos += 1
        if count > MAX_SHARES:
            raise ControlError(TOO_MANY_SHARES, "%d shares; at most %d" % (count, MAX_SHARES))
        for _ in range(count):
            share, pos = _dec_id(body, pos, "share")
            shares.append(share)
    elif op != RELEASE:
        raise ControlError(MALFORMED, "unknown command %d" % op)
    issued_ms, pos = _dec_uint(body, pos, "issued_ms")
    if pos != len(body):
        raise ControlError(MALFORMED, "command has %d unexpected bytes" % (len(body) - pos))
    return Command(op, camera, owner, counter, epoch, shares, issued_ms, period_s), body, mac


def open_command(command_key: bytes, camera: str, data: "Buffer") -> Command:
    """The Command in ``data`` if it is laid out right, for ``camera``, authentic, and every
    number of it is in bounds, in that order.

    Raises ControlError (MALFORMED, UNKNOWN_VERSION, TOO_MANY_SHARES, WRONG_CAMERA, BAD_MAC or
    OUT_OF_RANGE). The counter and the camera's state are the caller's to check.
    """
    cmd, body, mac = decode_command(data)
    _authentic(cmd.camera, camera, body, mac, command_key, "command")
    return cmd.check()


class Result:
    """What a camera did with a pairing or a command, and where its stream stood after it.
    ``epoch`` and ``stream_id`` are 0 in a refused pairing's result (nothing of the binding in force)."""

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
        while detail and not is_utf8(detail):  # never cut a UTF-8 sequence in half
            detail = detail[:-1]
        status = self.status.encode()
        if not 1 <= len(status) <= MAX_ID_BYTES or not 0 <= self.op <= 255:
            raise ValueError("status or op out of range")
        in_range(self.stream_id, 0, MAX_STREAM_ID, "stream_id")
        in_range(self.seq, 0, MAX_U32, "seq")
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
    """(Result, signed bytes, mac) without checking the MAC; every number in its bounds."""
    op, camera, owner, counter, epoch, pos, body, mac = _dec_head(data, KIND_RESULT)
    in_range(counter, 0, MAX_COUNTER, "counter")
    in_range(epoch, 0, MAX_EPOCH, "epoch")
    status, pos = _dec_text(body, pos, "status", MAX_ID_BYTES)
    stream_id, pos = _dec_uint(body, pos, "stream_id")
    seq, pos = _dec_uint(body, pos, "seq")
    size, pos = _dec_uint(body, pos, "detail length")
    in_range(stream_id, 0, MAX_STREAM_ID, "stream_id")
    in_range(seq, 0, MAX_U32, "seq")
    in_range(size, 0, MAX_DETAIL_BYTES, "detail length")
    if pos + size != len(body):
        raise ControlError(MALFORMED, "result detail has a bad length")
    raw = bytes(body[pos:])
    if not is_utf8(raw):
        raise ControlError(MALFORMED, "result detail is not UTF-8")
    return Result(camera, owner, counter, op, status, epoch, stream_id, seq, str(raw, "utf-8")), body, mac


def open_result(command_key: bytes, camera: str, data: "Buffer") -> Result:
    """The Result in ``data`` if it is well formed, from ``camera`` and authentic."""
    result, body, mac = decode_result(data)
    _authentic(result.camera, camera, body, mac, command_key, "result")
    return result


class PairingOffer:
    """What the owner's app hands the camera out of band to claim it (a QR code on the phone's
    screen): the owner, the camera, a fresh pairing secret, until when it may be used, and the
    period length of epoch 1."""

    def __init__(self, owner: str, camera: str, secret: bytes, expires_ms: int, period_s: int) -> None:
        self.owner = owner
        self.camera = camera
        self.secret = secret
        self.expires_ms = expires_ms
        self.period_s = period_s

    def check(self) -> "PairingOffer":
        """Every number against its bounds: ControlError(OUT_OF_RANGE) when one is not."""
        in_range(self.expires_ms, 0, MAX_TIME_MS, "expires_ms")
        in_range(self.period_s, MIN_PERIOD_S, MAX_PERIOD_S, "period_s")
        return self

    def encode(self) -> bytes:
        if len(self.secret) != SECRET_SIZE:
            raise ValueError("a pairing secret is %d bytes" % SECRET_SIZE)
        self.check()
        return (PAIRING_MAGIC + encode_id(check_account(self.owner, "owner"), "owner")
                + encode_id(check_account(self.camera, "camera"), "camera")
                + self.secret + encode_uvarint(self.expires_ms) + encode_uvarint(self.period_s))

    def __repr__(self) -> str:
        return "PairingOffer(owner=%r, camera=%r, secret=<hidden>, expires_ms=%d, period %d s)" % (
            self.owner, self.camera, self.expires_ms, self.period_s)


def decode_pairing(data: "Buffer") -> PairingOffer:
    """The offer as laid out (its numbers not checked yet: ``open_pairing``)."""
    data = bytes(data)
    if not data.startswith(PAIRING_MAGIC):
        if data[:3] == PAIRING_MAGIC[:3] and data[3:4].isdigit():
            raise ControlError(UNKNOWN_VERSION, "a format %s pairing offer: this camera takes format %d"
                               % (str(data[3:4], "ascii"), VERSION))
        raise ControlError(MALFORMED, "not a segbind pairing offer")
    owner, pos = _dec_id(data, len(PAIRING_MAGIC), "owner")
    camera, pos = _dec_id(data, pos, "camera")
    if pos + SECRET_SIZE > len(data):
        raise ControlError(MALFORMED, "pairing offer truncated in its secret")
    secret = data[pos:pos + SECRET_SIZE]
    expires_ms, pos = _dec_uint(data, pos + SECRET_SIZE, "expires_ms")
    period_s, pos = _dec_uint(data, pos, "period_s")
    if pos != len(data):
        raise ControlError(MALFORMED, "pairing offer has %d unexpected bytes" % (len(data) - pos))
    return PairingOffer(owner, camera, secret, expires_ms, period_s)


def open_pairing(data: "Buffer") -> PairingOffer:
    """The offer in ``data`` if it is laid out right and every number of it is in bounds."""
    return decode_pairing(data).check()
