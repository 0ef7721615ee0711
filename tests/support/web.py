"""Shared pieces of the web tests: running the JavaScript verifier under Node on cases made in
Python (tests/web/harness.mjs), the Python verifier on the same cases, and the keyrings,
cases and fMP4 chunks they are made of."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

from segbind import Binding, Epoch, Keyring, StreamVerifier, TimeWindow
from segbind.errors import InputError
from segbind.read.annexb import annexb_segments
from segbind.read.containers import container_segments
from segbind.read.events import TrackInfo
from segbind.read.mp4 import mp4_events
from tests.support import ROOT
from tests.support.tagged import PAIRING_CAM2, PAIRING_EVE, T0, epoch

NODE = shutil.which("node") or "node"
HARNESS = ROOT / "tests" / "web" / "harness.mjs"


def run_node(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def grant(ep: Epoch, holder: Optional[str] = None) -> dict:
    b = Binding.of_epoch(ep, holder)
    return {"owner": b.owner, "camera": b.camera, "epoch": b.epoch, "slot": b.slot, "key": b.key.hex()}


# The viewers of the tests' streams (tests.support.tagged): alice (her two cameras, two epochs),
# bob (a share of cam-1) and eve (a stranger: her own camera only).
RINGS = {
    "alice": lambda: [grant(epoch()), grant(epoch(camera="cam-2", pairing=PAIRING_CAM2, shares=())),
                      grant(epoch(number=2))],
    "bob": lambda: [grant(epoch(), "bob")],
    "eve": lambda: [grant(epoch(owner="eve", pairing=PAIRING_EVE, shares=()))],
}


def case(name: str, inputs: List[dict], ring: str = "alice", **options: Any) -> dict:
    """A ``verdicts`` case: ``inputs`` given to a StreamVerifier holding ``ring``'s grants
    (options: camera, window, now, recording, revoked; details: True for every verdict's text,
    or the reasons whose texts are compared)."""
    return dict(name=name, keyring=RINGS[ring](), inputs=inputs, now=options.pop("now", T0 / 1000 + 10),
                **options)


def annexb(*segments: bytes) -> List[dict]:
    return [{"annexb": s.hex()} for s in segments]


def fmp4_chunks(data: bytes) -> List[bytes]:
    """A fragmented MP4 as HLS or DASH delivers it: the init segment (to its 'moov'), then media
    segments; a 'moof' always with the box after it. A stream that does not parse is one chunk."""
    pos, cuts, moov_seen = 0, [0], False
    kinds = []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if size < 8:
            return [data]
        kinds.append((kind, pos, pos + size))
        pos += size
    if pos != len(data):
        return [data]
    for k, (kind, start, end) in enumerate(kinds):
        if kind == b"moov" and not moov_seen:
            moov_seen = True
            cuts.append(end)
        elif moov_seen and k > 0 and kinds[k - 1][0] == b"moof":
            cuts.append(end)
    cuts = sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    return [data[a:b] for a, b in zip([0] + cuts[:-1], cuts)] if moov_seen else [data]


def fmp4_inputs(init: bytes, *fragments: bytes) -> List[dict]:
    """A case's inputs: the init segment, then each fragment through the gate."""
    return [{"init": init.hex()}] + [{"fragment": f.hex()} for f in fragments]


def js_results(mode: str, cases: List[Dict[str, Any]], tmp_path: Path) -> Dict[str, List[str]]:
    """What the JavaScript side says of each case (harness.mjs ``verdicts`` or ``grants``)."""
    path = tmp_path / ("%s-cases.json" % mode)
    path.write_text(json.dumps(cases))
    proc = run_node(str(HARNESS), mode, str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def agree(cases: List[dict], tmp_path: Path) -> Dict[str, List[str]]:
    """Both verifiers' verdicts on every case; asserts they are the same and returns them."""
    assert len({c["name"] for c in cases}) == len(cases)
    js = js_results("verdicts", cases, tmp_path)
    py = {c["name"]: python_verdicts(c) for c in cases}
    differ = {name: (py[name], js.get(name)) for name in py if py[name] != js.get(name)}
    assert not differ, "verdicts differ (python, javascript): %s" % json.dumps(differ, indent=1)[:4000]
    return py


def _init_readable(init: bytes) -> bool:
    """Whether segbind.read.mp4 reads an init segment alone as a video track (the gate's init())."""
    try:
        for event in mp4_events(io.BytesIO(init), "init", seekable=False):
            if isinstance(event, TrackInfo):
                return True
    except InputError:
        return False
    return False


def python_verdicts(case: Dict[str, Any]) -> List[str]:
    """The Python verifier's reasons for a ``verdicts`` case, in the harness's terms (fragments
    read with the container reader, each as the init segment followed by that fragment; "pass"
    when every segment of a fragment is accepted)."""
    keyring = Keyring([Binding(g["owner"], g["camera"], g["epoch"], bytes.fromhex(g["key"]), g["slot"])
                       for g in case["keyring"]])
    for owner, camera, number in case.get("revoked", []):
        keyring.mark_revoked(owner, camera, number)
    window = case.get("window")
    verifier = StreamVerifier(keyring, camera=case.get("camera"), recording=case.get("recording", False),
                              window=TimeWindow(window["maxAgeS"], window["maxFutureS"]) if window else None,
                              clock=lambda: case["now"])

    details = case.get("details")

    def say(verdict: Any) -> str:
        shown = details is True or (isinstance(details, list) and str(verdict.reason) in details)
        return "%s: %s" % (verdict.reason, verdict.detail) if shown else str(verdict.reason)

    out: List[str] = []
    init = b""
    for item in case["inputs"]:
        if "annexb" in item:
            out.append(say(verifier.verify(bytes.fromhex(item["annexb"]))))
        elif "stream" in item:
            out += [say(verifier.verify_canonical(s)) for s in annexb_segments(bytes.fromhex(item["stream"]))]
        elif "init" in item:
            init = bytes.fromhex(item["init"])
            if not _init_readable(init):
                out.append("init refused")
        elif "fragment" in item:
            data = io.BytesIO(init + bytes.fromhex(item["fragment"]))
            try:
                found = [verifier.verify_canonical(s) for s in container_segments(data, "mp4", "fragment")]
            except InputError as exc:  # a fragment that cannot be read at all: refused, as the gate refuses it
                text = str(exc)[len("fragment: "):]
                shown = details is True or (isinstance(details, list) and "framing" in details)
                out += ["framing: " + text if shown else "framing", "held"]
                continue
            out += [say(v) for v in found]
            out.append("pass" if found and all(v.accepted for v in found) else "held")
        elif item.get("finish"):
            last = verifier.finish()
            if last is not None:
                out.append(say(last))
    return out
