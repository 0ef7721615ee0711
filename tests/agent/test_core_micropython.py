"""The agent core on the real MicroPython VM (WebAssembly), byte for byte what CPython does:
pairings and commands with every field at its bounds, the seller's scenario, a reset, spent
offers, garbage, and the buyer's video and an event's still, tagged and encrypted (the VM's pure
AES)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow

RUNNER = ROOT / "tests" / "micropython" / "run.mjs"
FIRMWARE = ROOT / "firmware"

SCRIPT = r"""
import json, sys
from segbind_core import control
from segbind_core import topics
from segbind_core.keys import command_key
from segbind_core.tag import encode_uvarint
from segbind_agent.core import AgentCore, BindingState, Persist, Publish, Store, spent_digest

T0 = 1795000000000
out = {"impl": sys.implementation.name, "results": [], "events": [], "spent": [], "states": [], "segments": [],
       "stills": []}
VIDEO = open(sys.argv[1], "rb").read()


def run(actions):
    for a in actions:
        if isinstance(a, Publish) and a.leaf == "ctl/result":
            out["results"].append(a.payload.hex())
        elif isinstance(a, Publish) and a.leaf == "event":
            out["events"].append(json.loads(a.payload)["event"])
        elif isinstance(a, Publish) and a.leaf == topics.STILL:
            out["stills"].append(a.payload.hex())
        elif isinstance(a, Store):
            out["segments"].append(a.payload.hex())
        elif isinstance(a, Persist):
            out["states"].append(a.state.encode().decode())
            if a.spend:
                out["spent"].append(a.spend)


def uv(n):
    return encode_uvarint(n)


def cmd(key, op, owner, counter, epoch, period=1800, issued=0, shares=()):
    body = bytes((3, 0x43, op)) + b"\x05cam-1" + bytes((len(owner),)) + owner.encode() + uv(counter) + uv(epoch)
    if op == 2:
        body += uv(period) + bytes((len(shares),)) + b"".join(bytes((len(s),)) + s.encode() for s in shares)
    body += uv(issued)
    return body + control.mac_of(key, body)


def offer(owner, secret, expires, period):
    return b"SBP3" + bytes((len(owner),)) + owner.encode() + b"\x05cam-1" + secret + uv(expires) + uv(period)


core = AgentCore("cam-1", BindingState("cam-1"))
run(core.start(T0))
P1, P2 = bytes(range(32)), bytes(range(1, 33))
k1, k2 = command_key(P1, "seller", "cam-1"), command_key(P2, "buyer", "cam-1")
for exp, per in ((2 ** 53, 60), (T0 + 1, 59), (T0 + 1, 86401), (1, 60), (2 ** 53 - 1, 86400)):
    run(core.pair(offer("seller", P1, exp, per), T0 + 2))
for c in (cmd(k1, 2, "seller", 1, 2 ** 31 - 1), cmd(k1, 2, "seller", 2, 2 ** 31), cmd(k1, 2, "seller", 2 ** 53, 3),
          cmd(k1, 2, "seller", 2, 5, 59), cmd(k1, 2, "seller", 2, 5, issued=2 ** 53),
          cmd(k1, 2, "seller", 2, 5, shares=["s%d" % i for i in range(8)]), cmd(k1, 2, "seller", 2, 5),
          b"\x03C\x02" + bytes(40), b"\x02C\x02" + bytes(40), cmd(k1, 3, "seller", 3, 1)):
    run(core.command(c, T0 + 3))
run(core.physical_reset(T0 + 4))
run(core.pair(offer("seller", P1, 2 ** 53 - 1, 86400), T0 + 5))   # spent: replay
run(core.pair(offer("buyer", P2, 2 ** 53 - 1, 600), T0 + 6))
run(core.command(cmd(k2, 2, "buyer", 1, 2, 3600, 5, ["carol"]), T0 + 7))
run(core.event("motion", T0 + 8))
run(core.event("Not a kind", T0 + 8))
run(core.encoder_bytes(VIDEO, T0 + 8))
run(core.encoder_end(T0 + 8))
for blob in (b"", b"SBP3", b"\x03C", bytes(range(256))):
    run(core.pair(blob, T0 + 9))
    run(core.command(blob, T0 + 9))
loaded = BindingState.from_json(json.loads(core.state.encode()), "cam-1")
out["final"] = loaded.encode().decode()
out["refused"] = sorted(core.refused.items())
out["errors"] = core.counts["errors"]
out["spent_of_p1"] = spent_digest(P1)
print("RESULT " + json.dumps(out))
"""


def run_script(args: list) -> dict:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_the_agent_cores_control_path_is_the_same_on_micropython(tmp_path: Path) -> None:
    from host_sim import clips

    script = tmp_path / "core_script.py"
    script.write_text(SCRIPT)
    video = tmp_path / "video.h264"
    video.write_bytes(clips.encode_pyav(frames=10, gop=5, width=64, height=48, seed=2))   # two segments
    mp = run_script(["node", str(RUNNER), "exec", str(script), "--file", "/data/video.h264=%s" % video,
                     "--", "/data/video.h264"])
    cp = run_script([sys.executable, "-c", "import sys; sys.path.insert(0, %r); sys.argv = ['s', %r]; "
                     "exec(open(%r).read())" % (str(FIRMWARE), str(video), str(script))])
    assert mp["impl"] == "micropython" and cp["impl"] == "cpython"
    assert len(cp["segments"]) == 2 and len(cp["stills"]) == 1
    for key in ("results", "events", "spent", "refused", "errors", "spent_of_p1", "segments", "stills"):
        assert mp[key] == cp[key], key
    # the same states (MicroPython's dicts keep no order: the same JSON, keys in another order)
    def state(text: str) -> dict:
        data = json.loads(text)
        data["last_result"] = json.loads(data["last_result"] or "null")
        return data

    assert [state(s) for s in mp["states"]] == [state(s) for s in cp["states"]]
    assert state(mp["final"]) == state(cp["final"])
    from segbind_core import control
    statuses = [control.decode_result(bytes.fromhex(r))[0].status for r in cp["results"]]
    assert statuses == [
        "out_of_range", "out_of_range", "out_of_range", "expired", "ok",                # offers at their bounds
        "ok", "out_of_range", "out_of_range", "out_of_range", "out_of_range",           # rotate to the top epoch,
        "too_many_shares", "stale_epoch", "out_of_range", "unknown_version", "ok",      # then past it; release
        "replay", "ok", "ok",                                                           # reset; spent; the buyer
        "malformed", "malformed", "malformed", "unknown_version"]                       # garbage
    assert cp["errors"] == 0 and cp["spent"] == [cp["spent_of_p1"], cp["spent"][1]]
    # what MicroPython tagged, the verifier accepts under the buyer's keys: two segments, a still
    from segbind import Epoch, StreamVerifier, verify_segment
    from tests.support.tagged import keyring_of
    ring = keyring_of(Epoch.of_pairing(bytes(range(1, 33)), "buyer", "cam-1", 2, ["carol"], 3600),
                      start_ms=1795000000000 - 3_600_000)
    verifier = StreamVerifier(ring)
    assert [str(verifier.verify(bytes.fromhex(x)).reason) for x in mp["segments"]] == ["ok", "ok"]
    assert verify_segment(bytes.fromhex(mp["stills"][0]), ring).still
    assert '"owner": "buyer"' in cp["final"] and '"epoch": 2' in cp["final"] and '"period_s": 3600' in cp["final"]
