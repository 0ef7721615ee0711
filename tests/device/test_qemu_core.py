"""segbind_core on emulated ARM (armhf and arm64 under qemu-user), installed from the bundle.

Tags made inside the guest equal segbind's vectors byte for byte, on the
OpenSSL ``hmac`` path and on the pure path the core takes when the
interpreter has no ``hmac`` module (MicroPython, a python3-minimal-only
camera); a real clip tagged in the guest is accepted on the host by the
``segbind`` verifier for its owner and refused for every other viewer, and
equals what the host's own tagger makes of it.
"""

from __future__ import annotations

import json
import os

import pytest

from host_sim import clips
from segbind import Binding, Keyring, Reason, StreamVerifier, derive_binding_key, tagged_segments
from segbind_core.nal import annexb_units
from segbind_core.segment import cut
from segbind_core.tagger import Tagger
from tests.support import ROOT as REPO
from tests.support.qemu import guest_python, install_bundle

pytestmark = pytest.mark.qemu

ARCHES = ["armhf", "arm64"]
VECTORS = REPO / "tests" / "vectors"

# Runs in the guest: recompute every segbind vector with the bundle's core.
# argv[1] = "hmac" (CPython's OpenSSL path) or "pure" (no hmac module at all).
GUEST_VECTORS = r'''
import json, platform, sys
mode = sys.argv[1]
if mode == "pure":
    sys.modules["hmac"] = None  # as on a camera without the hmac module: import fails
import segbind_core
from segbind_core import crypto
from segbind_core.keys import derive_binding_key, derive_control_key
from segbind_core.nal import annexb_units
from segbind_core.sei import build_sei_nal
from segbind_core.tag import Tag, compute_mac, content_digest, DIGEST_HINT_SIZE, MAC_SIZE
from segbind_core.tagger import Tagger

V = json.load(open("/mnt/vectors/segbind_v1.json"))
R4231 = json.load(open("/mnt/vectors/rfc4231_hmac_sha256.json"))
R5869 = json.load(open("/mnt/vectors/rfc5869_hkdf_sha256.json"))
u = bytes.fromhex

try:
    import hmac
    have_hmac = True
except ImportError:
    have_hmac = False

def segment(v, tagger=None):
    buf = u(v["segment"])
    units = annexb_units(buf)
    key = derive_binding_key(u(v["device_secret"]), v["owner"], v["camera"], v["epoch"])
    digest = content_digest(buf, units)
    tag = Tag(v["owner"], v["camera"], v["epoch"], v["stream_id"], v["seq"], v["capture_ms"],
              u(v["link"]), digest[:DIGEST_HINT_SIZE])
    signed = tag.signed_fields()
    tag.mac = compute_mac(key, signed, digest)
    pure_mac = crypto.hmac_sha256_pure(key, signed + digest)[:MAC_SIZE]
    if tagger is None:
        tagger = Tagger(key, v["owner"], v["camera"], v["epoch"], v["stream_id"], v["seq"],
                        u(v["link"]))
    tagged, _ = tagger.tag_annexb(buf, units, v["capture_ms"])
    return {"binding_key": key.hex(), "units": [buf[s:e].hex() for s, e in units],
            "content_digest": digest.hex(), "signed_fields": signed.hex(),
            "mac": tag.mac.hex(), "pure_mac": pure_mac.hex(), "tag_body": tag.encode().hex(),
            "sei_nal": build_sei_nal(tag.encode()).hex(), "tagged_segment": tagged.hex()}, tagger

out = {"machine": platform.machine(), "mode": mode, "have_hmac": have_hmac,
       "core_file": segbind_core.__file__, "keys": [], "segments": [], "chains": [],
       "rfc4231": [], "rfc5869": []}
for k in V["keys"]:
    s = u(k["device_secret"])
    out["keys"].append({"binding_key": derive_binding_key(s, k["owner"], k["camera"], k["epoch"]).hex(),
                        "control_key": derive_control_key(s, k["camera"]).hex()})
for v in V["segments"]:
    out["segments"].append(segment(v)[0])
for chain in V["chains"]:
    tagger, got = None, []
    for v in chain["segments"]:
        res, tagger = segment(v, tagger)  # one tagger: seq and link carried along the chain
        got.append(res)
    out["chains"].append(got)
for c in R4231["cases"]:
    out["rfc4231"].append([crypto.hmac_sha256(u(c["key"]), u(c["data"])).hex(),
                           crypto.hmac_sha256_pure(u(c["key"]), u(c["data"])).hex()])
for c in R5869["cases"]:
    out["rfc5869"].append(crypto.hkdf_sha256(u(c["ikm"]), u(c.get("salt", "")), u(c.get("info", "")),
                                             c["length"]).hex())
print(json.dumps(out))
'''

# Runs in the guest: tag a real clip, segment by segment, as a camera does.
GUEST_TAG_CLIP = r'''
import json, platform, sys
from segbind_core.keys import derive_binding_key
from segbind_core.nal import annexb_units
from segbind_core.segment import cut
from segbind_core.tagger import Tagger
p = json.load(open("/mnt/work/params.json"))
secret = bytes.fromhex(open("/mnt/work/secret.hex").read().strip())
clip = open("/mnt/work/clip.h264", "rb").read()
key = derive_binding_key(secret, p["owner"], p["camera"], p["epoch"])
tagger = Tagger(key, p["owner"], p["camera"], p["epoch"], p["stream_id"])
out = bytearray()
segments = cut(clip)
for i, seg in enumerate(segments):
    tagged, tag = tagger.tag_annexb(seg.data, annexb_units(seg.data), p["capture_ms"] + 1000 * i)
    out += tagged
with open("/mnt/out/tagged.h264", "wb") as f:
    f.write(out)
print(platform.machine(), len(segments))
'''


def _load(name):
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="module", params=ARCHES)
def installed(request, tmp_path_factory):
    """(arch, overlay): the bundle extracted into a throwaway layer over the *arch* image."""
    overlay = tmp_path_factory.mktemp(f"overlay-{request.param}")
    assert install_bundle(request.param, overlay) == ""
    return request.param, overlay


def _expected_machine(arch):
    return "aarch64" if arch == "arm64" else "armv7l"


def _check_segment(got, want, where):
    for field in ("binding_key", "units", "content_digest", "signed_fields", "mac", "tag_body",
                  "sei_nal", "tagged_segment"):
        assert got[field] == want[field], (where, field)
    assert got["pure_mac"] == want["mac"], where


@pytest.mark.parametrize("mode", ["hmac", "pure"])
def test_guest_tags_equal_the_vectors_byte_for_byte(installed, mode):
    arch, overlay = installed
    vec = _load("segbind_v1.json")
    res = guest_python(arch, GUEST_VECTORS, mode, overlay=overlay,
                       binds=[(str(VECTORS), "/mnt/vectors", True)])
    got = json.loads(res.stdout)
    assert got["machine"] == _expected_machine(arch) and got["mode"] == mode
    assert got["core_file"] == "/opt/segbind/lib/segbind_core/__init__.py"  # from the bundle
    assert got["have_hmac"] is (mode == "hmac")
    assert len(got["keys"]) == len(vec["keys"]) > 0
    for g, w in zip(got["keys"], vec["keys"]):
        assert g == {"binding_key": w["binding_key"], "control_key": w["control_key"]}, w["name"]
    assert len(got["segments"]) == len(vec["segments"]) > 0
    for g, w in zip(got["segments"], vec["segments"]):
        _check_segment(g, w, w["name"])
    assert len(got["chains"]) == len(vec["chains"]) > 0
    for gchain, wchain in zip(got["chains"], vec["chains"]):
        assert len(gchain) == len(wchain["segments"]) >= 2
        for g, w in zip(gchain, wchain["segments"]):
            _check_segment(g, w, w["name"])
    rfc4231 = _load("rfc4231_hmac_sha256.json")["cases"]
    for (fast, pure), case in zip(got["rfc4231"], rfc4231):
        n = len(case["mac"]) // 2  # case 5 is truncated to 128 bits in the RFC
        assert fast[:2 * n] == pure[:2 * n] == case["mac"], case["case"]
    rfc5869 = _load("rfc5869_hkdf_sha256.json")["cases"]
    assert [c["okm"] for c in rfc5869] == got["rfc5869"]


def test_real_clip_tagged_on_arm_verifies_on_the_host_for_its_owner_only(installed, tmp_path):
    arch, overlay = installed
    clip = clips.encode_pyav(frames=75, gop=25, seed=3)  # three segments of real x264
    secret = os.urandom(32)
    params = {"owner": "alice", "camera": "cam-arm", "epoch": 3, "stream_id": 1_767_225_600_000,
              "capture_ms": 1_767_225_600_123}
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    (work / "clip.h264").write_bytes(clip)
    (work / "secret.hex").write_text(secret.hex())
    (work / "params.json").write_text(json.dumps(params))
    res = guest_python(arch, GUEST_TAG_CLIP, overlay=overlay,
                       binds=[(str(work), "/mnt/work", True), (str(out), "/mnt/out")])
    machine, count = res.stdout.split()
    assert machine == _expected_machine(arch) and int(count) == 3
    tagged = (out / "tagged.h264").read_bytes()

    # the host's tagger makes the very same bytes
    key = derive_binding_key(secret, "alice", "cam-arm", 3)
    host = Tagger(key, "alice", "cam-arm", 3, params["stream_id"])
    expected = b"".join(host.tag_annexb(seg.data, annexb_units(seg.data), params["capture_ms"] + 1000 * i)[0]
                        for i, seg in enumerate(cut(clip)))
    assert tagged == expected

    view = memoryview(tagged)
    segments = [b"".join(b"\x00\x00\x00\x01" + view[s:e] for s, e in seg)
                for seg in tagged_segments(tagged)]
    assert len(segments) == 3
    owner = StreamVerifier(Keyring([Binding("alice", "cam-arm", 3, key)]))
    verdicts = [owner.verify(s) for s in segments]
    assert [v.reason for v in verdicts] == [Reason.OK] * 3
    assert [v.tag.seq for v in verdicts] == [0, 1, 2]
    # another viewer: bob's own binding of the same camera, and alice's revoked epoch 2
    others = {
        "bob": Keyring([Binding("bob", "cam-arm", 3, derive_binding_key(secret, "bob", "cam-arm", 3))]),
        "old-epoch": Keyring([Binding("alice", "cam-arm", 2,
                                      derive_binding_key(secret, "alice", "cam-arm", 2))]),
        "other-camera": Keyring([Binding("alice", "cam-x", 3,
                                         derive_binding_key(secret, "alice", "cam-x", 3))]),
    }
    for name, keyring in others.items():
        verifier = StreamVerifier(keyring)
        reasons = [verifier.verify(s).reason for s in segments]
        assert reasons == [Reason.NO_GRANT] * 3, name
    # a viewer holding a wrong key under alice's grant is refused on the MAC
    forged = StreamVerifier(Keyring([Binding("alice", "cam-arm", 3, os.urandom(32))]))
    assert [forged.verify(s).reason for s in segments] == [Reason.MAC_MISMATCH] * 3


def test_bench_arm_runs_both_paths_in_the_guest():
    """tools/bench_arm.py works (its figures are for reading, not asserted: no timed tests)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(REPO / "tools" / "bench_arm.py"), "--size", "100000",
                        "--rounds", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["arch"] == "armhf" and report["machine"] == "armv7l"
    assert report["segment_bytes"] > 10_000 and report["nal_units"] > 2
    for mode in ("hmac", "pure"):
        assert set(report["ratios"][mode]) == {"tag_units", "scan_tag", "scan_tag_emit"}
        assert all(v > 0 for v in report["ratios"][mode].values())
