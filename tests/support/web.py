"""Shared pieces of the web tests: running the JavaScript verifier under Node on cases made in
Python (tests/web/harness.mjs), and the Python verifier on the same cases."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

from segbind import Binding, Keyring, StreamVerifier, TimeWindow
from segbind.errors import InputError
from segbind.read.annexb import annexb_segments
from segbind.read.containers import container_segments
from tests.support import ROOT

NODE = shutil.which("node") or "node"
HARNESS = ROOT / "tests" / "web" / "harness.mjs"


def run_node(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def js_results(mode: str, cases: List[Dict[str, Any]], tmp_path: Path) -> Dict[str, List[str]]:
    """What the JavaScript side says of each case (harness.mjs ``verdicts`` or ``grants``)."""
    path = tmp_path / ("%s-cases.json" % mode)
    path.write_text(json.dumps(cases))
    proc = run_node(str(HARNESS), mode, str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def python_verdicts(case: Dict[str, Any]) -> List[str]:
    """The Python verifier's reasons for a ``verdicts`` case, in the harness's terms (fragments
    read with the container reader; "pass" when every segment of a fragment is accepted)."""
    keyring = Keyring([Binding(g["owner"], g["camera"], g["epoch"], bytes.fromhex(g["key"]), g["slot"])
                       for g in case["keyring"]])
    for owner, camera, number in case.get("revoked", []):
        keyring.mark_revoked(owner, camera, number)
    window = case.get("window")
    verifier = StreamVerifier(keyring, camera=case.get("camera"), recording=case.get("recording", False),
                              window=TimeWindow(window["maxAgeS"], window["maxFutureS"]) if window else None,
                              clock=lambda: case["now"])
    out: List[str] = []
    init = b""
    for item in case["inputs"]:
        if "annexb" in item:
            out.append(str(verifier.verify(bytes.fromhex(item["annexb"])).reason))
        elif "stream" in item:
            out += [str(verifier.verify_canonical(s).reason) for s in annexb_segments(bytes.fromhex(item["stream"]))]
        elif "init" in item:
            init = bytes.fromhex(item["init"])
        elif "fragment" in item:
            data = io.BytesIO(init + bytes.fromhex(item["fragment"]))
            try:
                found = [verifier.verify_canonical(s) for s in container_segments(data, "mp4", "fragment")]
            except InputError:  # a fragment that cannot be read at all: refused, as the gate refuses it
                out += ["framing", "held"]
                continue
            out += [str(v.reason) for v in found]
            out.append("pass" if found and all(v.accepted for v in found) else "held")
        elif item.get("finish"):
            last = verifier.finish()
            if last is not None:
                out.append(str(last.reason))
    return out
