"""segbind_core on emulated ARM (armhf and arm64 under qemu-user), installed from the bundle.

Keys, tags and commands made inside the guest equal segbind's format v2 vectors
byte for byte, on the OpenSSL ``hmac`` path and on the pure path the core takes
when the interpreter has no ``hmac`` module (MicroPython, a python3-minimal-only
camera); a real clip segmented and tagged in the guest as the camera does it
equals what the host's own core makes of it, and the host's ``segbind`` verifier
accepts it for the owner and the account it is shared with, and for no one else.
"""

from __future__ import annotations

import json
import os

import pytest

from host_sim import clips
from segbind import Binding, Epoch, Keyring, Reason, StreamVerifier
from tests.support import ROOT as REPO
from tests.support.qemu import guest_python, install_bundle
from tests.support.tagged import keyring_of

pytestmark = pytest.mark.qemu

ARCHES = ["armhf", "arm64"]
VECTORS = REPO / "tests" / "vectors"

# Runs in the guest: recompute every segbind v3 vector with the bundle's core.
# argv[1] = "openssl" (CPython's hmac, and cryptography's AES-CTR) or "pure" (neither module at all).
GUEST_VECTORS = r'''
import hashlib, json, platform, sys
mode = sys.argv[1]
if mode == "pure":
    sys.modules["hmac"] = None  # as on a camera without the hmac module: import fails
    sys.modules["cryptography"] = None  # ... nor the cryptography package: the core's pure AES
import segbind_core
from segbind_core import aes, control, crypto, protect
from segbind_core.keys import Epoch, command_key, period_root
from segbind_core.nal import annexb_units, to_annexb
from segbind_core.sei import build_sei_nal
from segbind_core.tag import MAC_SIZE
from segbind_core.tagger import Tagger

V = json.load(open("/mnt/vectors/segbind_v3.json"))
R4231 = json.load(open("/mnt/vectors/rfc4231_hmac_sha256.json"))
R5869 = json.load(open("/mnt/vectors/rfc5869_hkdf_sha256.json"))
NIST = json.load(open("/mnt/vectors/nist_sp800_38a_aes128_ctr.json"))
u = bytes.fromhex

try:
    import hmac
    have_hmac = True
except ImportError:
    have_hmac = False

def epoch_of(v):
    return Epoch.of_pairing(u(v["pairing_secret"]), v["owner"], v["camera"], v["epoch"], v["shares"], v["period_s"])

def chain(vectors):
    # one tagger along a chain: seq and link carried from segment to segment
    first = vectors[0]
    epoch = epoch_of(first)
    tagger = Tagger(epoch, first["stream_id"], codec=first["codec"], seq=first["seq"], link=u(first["link"]))
    out = []
    for v in vectors:
        buf = u(v["segment"])
        units = annexb_units(buf)
        keys = epoch.period_keys(epoch.period_of(v["capture_ms"]))
        lead = protect.clear_lead(buf, v["codec"])
        domain = protect.DOMAIN_STILL if v["still"] else protect.DOMAIN_SEGMENT
        protected = b"".join(bytes(p) for p in protect.protect(buf, v["codec"], lead, keys.content_key,
                                                                v["stream_id"], v["seq"], domain))
        if v["still"]:
            at = (v["seq"], "ff" * 8)
            tagged, tag = tagger.tag_still(buf, len(units), v["capture_ms"], v["seq"])
        else:
            at = (tagger.seq, tagger.link.hex())
            tagged, tag = tagger.tag(buf, len(units), v["capture_ms"], v["duration_ms"], v["pictures"],
                                     v["end_of_stream"])
        digest = hashlib.sha256(protected).digest()
        signed = tag.signed_fields()
        out.append({"units": [buf[s:e].hex() for s, e in units], "seq": at[0], "link": at[1],
                    "clear_lead": lead, "key_id": keys.key_id.hex(), "content_key": keys.content_key.hex(),
                    "slot_keys": [k.hex() for _holder, k in keys.slot_keys],
                    "protected_units": [protected[s:e].hex() for s, e in annexb_units(protected)],
                    "decrypted": protect.unprotect(protected, v["codec"], lead, keys.content_key, v["stream_id"],
                                                   v["seq"], domain) == buf,
                    "content_digest": digest.hex(), "signed_fields": signed.hex(),
                    "macs": [m.hex() for m in tag.macs],
                    "pure_macs": [crypto.hmac_sha256_pure(k, signed + digest)[:MAC_SIZE].hex()
                                  for _holder, k in keys.slot_keys],
                    "tag_body": tag.encode().hex(), "sei_nal": build_sei_nal(tag.encode(), v["codec"]).hex(),
                    "tagged_segment": tagged.hex()})
    return out

out = {"machine": platform.machine(), "mode": mode, "have_hmac": have_hmac, "aes_backend": aes.BACKEND,
       "core_file": segbind_core.__file__, "keys": [], "segments": [], "chains": [],
       "rfc4231": [], "rfc5869": [], "nist_ctr": []}
for k in V["keys"]:
    epoch = epoch_of(k)
    periods = []
    for entry in k["periods"]:
        keys = epoch.period_keys(entry["period"])
        periods.append({"period": entry["period"], "period_root": period_root(epoch.root, entry["period"]).hex(),
                        "key_id": keys.key_id.hex(), "content_key": keys.content_key.hex(),
                        "slot_keys": [key.hex() for _h, key in keys.slot_keys]})
    out["keys"].append({"epoch_root": epoch.root.hex(), "periods": periods,
                        "command_key": command_key(u(k["pairing_secret"]), k["owner"], k["camera"]).hex()})
for v in V["segments"]:
    out["segments"].append(chain([v])[0])
for c in V["chains"]:
    out["chains"].append(chain(c["segments"]))
c = V["commands"]
key = command_key(u(c["pairing_secret"]), c["owner"], c["camera"])
ops = {"rotate": control.ROTATE, "release": control.RELEASE}
out["commands"] = {"command_key": key.hex()}
for name, op in ops.items():
    v = c[name]
    cmd = control.open_command(key, c["camera"], u(v["encoded"]))
    out["commands"][name] = {
        "opened": [cmd.op, cmd.counter, cmd.epoch, cmd.period_s, cmd.shares, cmd.issued_ms],
        "encoded": control.Command(op, c["camera"], c["owner"], v["counter"], v["epoch"], v["shares"],
                                   v["issued_ms"], v["period_s"]).encode(key).hex()}
ops["pair"] = control.PAIR
for name in ("result", "refused_pairing_result"):
    v = c[name]
    res = control.open_result(key, c["camera"], u(v["encoded"]))
    out["commands"][name] = {
        "opened": [control.OP_NAMES[res.op], res.status, res.counter, res.epoch, res.stream_id, res.seq, res.detail],
        "encoded": control.Result(c["camera"], c["owner"], v["counter"], ops[v["op"]], v["status"], v["epoch"],
                                  v["stream_id"], v["seq"], v["detail"]).encode(key).hex()}
offer = control.decode_pairing(u(c["pairing_offer"]["encoded"]))
out["commands"]["pairing_offer"] = {
    "opened": [offer.owner, offer.camera, offer.secret.hex(), offer.expires_ms, offer.period_s],
    "encoded": control.PairingOffer(c["owner"], c["camera"], u(c["pairing_secret"]),
                                    c["pairing_offer"]["expires_ms"], c["pairing_offer"]["period_s"]).encode().hex()}
try:
    control.open_command(bytes(32), c["camera"], u(c["rotate"]["encoded"]))
    out["commands"]["wrong_key"] = "accepted"
except control.ControlError as exc:
    out["commands"]["wrong_key"] = exc.reason
for case in R4231["cases"]:
    out["rfc4231"].append([crypto.hmac_sha256(u(case["key"]), u(case["data"])).hex(),
                           crypto.hmac_sha256_pure(u(case["key"]), u(case["data"])).hex()])
for case in R5869["cases"]:
    out["rfc5869"].append(crypto.hkdf_sha256(u(case["ikm"]), u(case.get("salt", "")), u(case.get("info", "")),
                                             case["length"]).hex())
for case in NIST["ctr"]:
    data = u("".join(b["plaintext"] for b in case["blocks"]))
    stream = aes.CtrKey(u(case["key"])).keystream(u(case["initial_counter"]))
    out["nist_ctr"].append(stream.xor(data[:5]).hex() + stream.xor(data[5:]).hex())  # a split mid-block too
print(json.dumps(out))
'''

# Runs in the guest, and on the host: segment and tag a real clip as the camera's agent does
# (the segmenter inserting access unit delimiters, one tagger, the last segment ending the stream).
TAG_CLIP = r'''
import json, platform, sys
from segbind_core.keys import Epoch
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger

def tag_clip(clip, p):
    epoch = Epoch.of_pairing(bytes.fromhex(p["pairing_secret"]), p["owner"], p["camera"], p["epoch"],
                             p["shares"], p["period_s"])
    tagger = Tagger(epoch, p["stream_id"])
    segmenter = Segmenter(max_duration_s=4.0, delimit=True)
    segments = [s for s in segmenter.push(clip, p["capture_ms"]) + segmenter.finish() if isinstance(s, Segment)]
    return [tagger.tag(s.data, s.units, p["capture_ms"] + 1000 * i, s.duration_ms, s.pictures,
                       i == len(segments) - 1)[0] for i, s in enumerate(segments)]

if __name__ == "__main__":
    p = json.load(open("/mnt/work/params.json"))
    tagged = tag_clip(open("/mnt/work/clip.h264", "rb").read(), p)
    with open("/mnt/out/tagged.h264", "wb") as f:
        f.write(b"".join(tagged))
    print(platform.machine(), json.dumps([len(t) for t in tagged]))
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
    for field in ("units", "seq", "link", "clear_lead", "key_id", "content_key", "slot_keys", "protected_units",
                  "content_digest", "signed_fields", "macs", "tag_body", "sei_nal", "tagged_segment"):
        assert got[field] == want[field], (where, field)
    assert got["decrypted"], where
    assert got["pure_macs"] == want["macs"] and len(want["macs"]) == len(want["shares"]) + 1, where


@pytest.mark.parametrize("mode", ["openssl", "pure"])
def test_guest_keys_tags_and_commands_equal_the_vectors_byte_for_byte(installed, mode):
    arch, overlay = installed
    vec = _load("segbind_v3.json")
    res = guest_python(arch, GUEST_VECTORS, mode, overlay=overlay,
                       binds=[(str(VECTORS), "/mnt/vectors", True)])
    got = json.loads(res.stdout)
    assert got["machine"] == _expected_machine(arch) and got["mode"] == mode
    assert got["core_file"] == "/opt/segbind/lib/segbind_core/__init__.py"  # from the bundle
    assert got["have_hmac"] is (mode == "openssl")
    assert got["aes_backend"] == ("cryptography" if mode == "openssl" else "pure")  # the image ships OpenSSL's
    assert len(got["keys"]) == len(vec["keys"]) >= 4
    for g, w in zip(got["keys"], vec["keys"]):
        assert g == {"epoch_root": w["epoch_root"], "periods": w["periods"], "command_key": w["command_key"]}, \
            w["name"]
    assert len(got["segments"]) == len(vec["segments"]) > 0
    for g, w in zip(got["segments"], vec["segments"]):
        _check_segment(g, w, w["name"])
    assert {w["codec"] for w in vec["segments"]} == {1, 2}  # H.264 and H.265 both
    assert {w["still"] for w in vec["segments"]} == {True, False}  # and a still
    assert len(got["chains"]) == len(vec["chains"]) > 0
    for gchain, wchain in zip(got["chains"], vec["chains"]):
        assert len(gchain) == len(wchain["segments"]) >= 2
        for g, w in zip(gchain, wchain["segments"]):
            _check_segment(g, w, w["name"])
    c, gc = vec["commands"], got["commands"]
    assert gc["command_key"] == c["command_key"]
    for name in ("rotate", "release"):
        v = c[name]
        assert gc[name]["opened"] == [{"rotate": 2, "release": 3}[name], v["counter"], v["epoch"], v["period_s"],
                                      v["shares"], v["issued_ms"]], name
        assert gc[name]["encoded"] == v["encoded"], name
    for name in ("result", "refused_pairing_result"):
        v = c[name]
        assert gc[name]["opened"] == [v["op"], v["status"], v["counter"], v["epoch"], v["stream_id"], v["seq"],
                                      v["detail"]], name
        assert gc[name]["encoded"] == v["encoded"], name
    assert gc["pairing_offer"]["opened"] == [c["owner"], c["camera"], c["pairing_secret"],
                                             c["pairing_offer"]["expires_ms"], c["pairing_offer"]["period_s"]]
    assert gc["pairing_offer"]["encoded"] == c["pairing_offer"]["encoded"]
    assert gc["wrong_key"] == "bad_mac"
    rfc4231 = _load("rfc4231_hmac_sha256.json")["cases"]
    assert len(got["rfc4231"]) == len(rfc4231) > 0
    for (fast, pure), case in zip(got["rfc4231"], rfc4231):
        n = len(case["mac"]) // 2  # case 5 is truncated to 128 bits in the RFC
        assert fast[:2 * n] == pure[:2 * n] == case["mac"], case["case"]
    rfc5869 = _load("rfc5869_hkdf_sha256.json")["cases"]
    assert [c["okm"] for c in rfc5869] == got["rfc5869"]
    nist = _load("nist_sp800_38a_aes128_ctr.json")["ctr"]
    assert got["nist_ctr"] == ["".join(b["ciphertext"] for b in case["blocks"]) for case in nist] and nist


def _split(data: bytes, sizes: list) -> list:
    out, at = [], 0
    for size in sizes:
        out.append(data[at:at + size])
        at += size
    assert at == len(data)
    return out


def test_real_clip_tagged_on_arm_verifies_on_the_host_for_its_owner_and_share_only(installed, tmp_path):
    arch, overlay = installed
    clip = clips.encode_pyav(frames=75, gop=25, seed=3)  # three segments of real x264
    secret = os.urandom(32)
    # one-minute periods, the clip's third segment in the next one: the guest changes keys mid-stream
    params = {"pairing_secret": secret.hex(), "owner": "alice", "camera": "cam-arm", "epoch": 3,
              "shares": ["bob"], "period_s": 60, "stream_id": 1_767_225_600_000, "capture_ms": 1_767_225_598_500}
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    (work / "clip.h264").write_bytes(clip)
    (work / "params.json").write_text(json.dumps(params))
    res = guest_python(arch, TAG_CLIP, overlay=overlay,
                       binds=[(str(work), "/mnt/work", True), (str(out), "/mnt/out")])
    machine, sizes = res.stdout.split(" ", 1)
    assert machine == _expected_machine(arch)
    segments = _split((out / "tagged.h264").read_bytes(), json.loads(sizes))
    assert len(segments) == 3

    # the host's core, given the same clip and pairing, makes the very same bytes
    scope: dict = {"__name__": "on the host"}
    exec(TAG_CLIP, scope)
    assert scope["tag_clip"](clip, params) == segments

    epoch = Epoch.of_pairing(secret, "alice", "cam-arm", 3, ["bob"], 60)
    around = params["capture_ms"] - 3_600_000

    def ring(ep: Epoch, holder=None) -> Keyring:
        return keyring_of(ep, holder=holder, start_ms=around, hours=2)

    for holder in ("alice", "bob"):  # the owner (slot 0) and the share (slot 1)
        verifier = StreamVerifier(ring(epoch, holder))
        verdicts, plain = [], []
        for s in segments:
            verdicts.append(verifier.verify(s))
            plain.append(verifier.verified)
        assert [v.reason for v in verdicts] == [Reason.OK] * 3, holder
        assert [v.tag.seq for v in verdicts] == [0, 1, 2]
        assert verdicts[-1].tag.end_of_stream and not verdicts[0].tag.end_of_stream
        assert len({v.tag.key_id for v in verdicts}) == 2  # two periods, two key ids
        assert clips.decode_hashes_pyav(b"".join(plain)) == clips.decode_hashes_pyav(clip), holder  # decrypted
    # other viewers: another pairing of the same camera, alice's epoch 2, another camera
    others = {
        "mallory": ring(Epoch.of_pairing(os.urandom(32), "mallory", "cam-arm", 3, [], 60)),
        "old-epoch": ring(Epoch.of_pairing(secret, "alice", "cam-arm", 2, ["bob"], 60)),
        "other-camera": ring(Epoch.of_pairing(secret, "alice", "cam-x", 3, ["bob"], 60)),
    }
    for name, keyring in others.items():
        verifier = StreamVerifier(keyring)
        assert [verifier.verify(s).reason for s in segments] == [Reason.NO_GRANT] * 3, name
    # a key that is not the slot's, under alice's grant, is refused on the MAC: a random one,
    # and bob's own slot key presented as the owner's (a grantee cannot pass for the owner)
    window = (around, around + 7_200_000)
    alice = Binding.periods_of_epoch(epoch, *window)
    bob = Binding.periods_of_epoch(epoch, *window, holder="bob")
    for name, keys in (("random", [os.urandom(32) for _ in alice]), ("bob's key as slot 0", [b.key for b in bob])):
        forged = StreamVerifier(Keyring([a._replace(key=k) for a, k in zip(alice, keys)]))
        assert [forged.verify(s).reason for s in segments] == [Reason.MAC_MISMATCH] * 3, name


def test_bench_arm_runs_both_paths_in_the_guest():
    """tools/bench_arm.py works (its timings are for reading, not asserted: no timed tests)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(REPO / "tools" / "bench_arm.py"), "--size", "100000",
                        "--rounds", "1", "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["arch"] == "armhf" and report["machine"] == "armv7l"
    assert report["segment_bytes"] > 10_000 and report["nal_units"] > 2
    for mode in ("hmac", "pure"):
        assert set(report["ratios"][mode]) == {"tag_1_slot", "tag_4_slots", "cut_and_tag_4_slots"}
        assert all(v > 0 for v in report["ratios"][mode].values())
        assert all(v > 0 for v in report["pairing_ms"][mode].values())
    # the tag's size is no timing: docs/FORMAT.md section 5's figures, measured in the guest
    # (141 bytes for H.264, 142 for H.265, at most 150 with emulation-prevention bytes; the tag's own unit)
    both = report["tag_bytes"]["owner_and_3_shares"]
    assert 141 <= both["h264"] <= 150 and both["h265"] == both["h264"] + 1, both
