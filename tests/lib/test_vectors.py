"""Test vectors checked against an implementation written here from docs/FORMAT.md.

Nothing below imports segbind_core for the computation it checks: HKDF and HMAC
come from the ``cryptography`` package, and the Annex-B scan, emulation
prevention, content digest, tag layout, SEI and tagged segment are re-encoded
by hand. Separately, the CPython core (OpenSSL fast path) must give the same
bytes, and the RFC vectors must hold on the core's pure path and on
``cryptography``, so a typo in a vector file cannot pass.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.support import ROOT

VECTORS = ROOT / "tests" / "vectors"
UUID = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
UNCOVERED = {9, 10, 11, 12}


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# ---- the independent implementation ----------------------------------------------------

def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = c_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def ident(text: str) -> bytes:
    raw = text.encode("utf-8")
    assert 1 <= len(raw) <= 32 and b"\x00" not in raw
    return bytes([len(raw)]) + raw


def binding_key(secret: bytes, owner: str, camera: str, epoch: int) -> bytes:
    info = b"segbind/v1 binding\x00" + ident(owner) + ident(camera) + epoch.to_bytes(4, "big")
    return hkdf_sha256(secret, b"segbind/v1", info, 32)


def control_key(secret: bytes, camera: str) -> bytes:
    return hkdf_sha256(secret, b"segbind/v1", b"segbind/v1 control\x00" + ident(camera), 32)


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def split_annexb(buf: bytes) -> list[bytes]:
    """NAL units between start codes (00 00 01, optionally preceded by zeros)."""
    units, i, start = [], 0, None
    while i + 3 <= len(buf):
        if buf[i:i + 3] == b"\x00\x00\x01":
            if start is not None:
                units.append(buf[start:i].rstrip(b"\x00"))
            start = i = i + 3
        else:
            i += 1
    if start is not None:
        units.append(buf[start:].rstrip(b"\x00"))
    return [u for u in units if u]


def epb_insert(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros == 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def epb_remove(data: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in data:
        if zeros == 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def is_segbind_sei(unit: bytes) -> bool:
    if len(unit) < 19 or unit[0] != 0x06 or unit[1] != 5:
        return False
    i = 2
    while unit[i] == 0xFF:
        i += 1
    return unit[i + 1:i + 17] == UUID


def digest_of(units: list[bytes]) -> bytes:
    d = hashlib.sha256()
    for u in units:
        if (u[0] & 0x1F) in UNCOVERED or is_segbind_sei(u):
            continue
        d.update(len(u).to_bytes(4, "big") + u)
    return d.digest()


def signed_fields(v: dict, digest: bytes) -> bytes:
    return (bytes([1, 1]) + ident(v["owner"]) + ident(v["camera"]) + leb128(v["epoch"])
            + leb128(v["stream_id"]) + leb128(v["seq"]) + leb128(v["capture_ms"])
            + h(v["link"]) + digest[:4])


def ff_coded(n: int) -> bytes:
    return b"\xff" * (n // 255) + bytes([n % 255])


def sei_nal(body: bytes) -> bytes:
    payload = UUID + body
    return b"\x06" + epb_insert(ff_coded(5) + ff_coded(len(payload)) + payload + b"\x80")


def tagged_segment(units: list[bytes], sei: bytes) -> bytes:
    at = 1 if units[0][0] & 0x1F == 9 else 0
    out = units[:at] + [sei] + units[at:]
    return b"".join(b"\x00\x00\x00\x01" + u for u in out)


def all_segments(doc: dict) -> list[dict]:
    return doc["segments"] + [s for c in doc["chains"] for s in c["segments"]]


# ---- RFC vectors: pure path, default path and cryptography ----------------------------

RFC4231 = load("rfc4231_hmac_sha256.json")
RFC5869 = load("rfc5869_hkdf_sha256.json")
SEGBIND = load("segbind_v1.json")


def test_rfc_provenance():
    assert "RFC 4231" in RFC4231["provenance"] and "section 4" in RFC4231["provenance"]
    assert "RFC 5869" in RFC5869["provenance"] and "appendix A" in RFC5869["provenance"]
    assert [c["case"] for c in RFC4231["cases"]] == [1, 2, 3, 4, 5, 6, 7]
    assert [c["case"] for c in RFC5869["cases"]] == [1, 2, 3]
    assert RFC4231["cases"][4]["truncate_to"] == 16
    assert len(h(RFC4231["cases"][5]["key"])) == 131 == len(h(RFC4231["cases"][6]["key"]))


@pytest.mark.parametrize("case", RFC4231["cases"], ids=lambda c: "case%d" % c["case"])
def test_rfc4231(case):
    from segbind_core import crypto
    key, data, n = h(case["key"]), h(case["data"]), case.get("truncate_to", 32)
    assert len(h(case["mac"])) == n
    assert hmac_sha256(key, data)[:n] == h(case["mac"])               # cryptography
    assert crypto.hmac_sha256_pure(key, data)[:n] == h(case["mac"])   # the MicroPython path
    assert crypto.hmac_sha256(key, data)[:n] == h(case["mac"])        # OpenSSL via hmac.digest


@pytest.mark.parametrize("case", RFC5869["cases"], ids=lambda c: "case%d" % c["case"])
def test_rfc5869(case, monkeypatch):
    from segbind_core import crypto
    ikm, salt, info, n = h(case["ikm"]), h(case["salt"]), h(case["info"]), case["length"]
    assert hkdf_sha256(ikm, salt, info, n) == h(case["okm"])
    assert hmac_sha256(salt or bytes(32), ikm) == h(case["prk"])
    assert crypto.hkdf_sha256(ikm, salt, info, n) == h(case["okm"])
    monkeypatch.setattr(crypto, "_openssl_hmac_digest", None)        # force the pure path
    assert crypto.hmac_sha256(b"k", b"d") == crypto.hmac_sha256_pure(b"k", b"d")
    assert crypto.hkdf_sha256(ikm, salt, info, n) == h(case["okm"])


# ---- segbind_v1.json: independent implementation ----------------------------------------

def test_segbind_provenance():
    p = SEGBIND["provenance"]
    assert p["generator"] == "tools/make_vectors.py"
    assert (ROOT / p["generator"]).is_file()
    assert p["interpreter"]["name"] == "micropython"
    assert p["interpreter"]["version"].count(".") == 2
    assert len(p["date"]) == 10


@pytest.mark.parametrize("v", SEGBIND["keys"], ids=lambda v: v["name"])
def test_keys(v):
    secret = h(v["device_secret"])
    assert binding_key(secret, v["owner"], v["camera"], v["epoch"]) == h(v["binding_key"])
    assert control_key(secret, v["camera"]) == h(v["control_key"])


def test_key_vectors_cover_the_edges():
    ids = [v[k] for v in SEGBIND["keys"] for k in ("owner", "camera")]
    assert any(len(i.encode()) == 32 for i in ids)
    assert any(len(i.encode()) != len(i) for i in ids)             # multi-byte UTF-8
    assert any(len(i.encode()) == 32 and len(i) < 32 for i in ids)
    assert {0, 0xFFFFFFFF} <= {v["epoch"] for v in SEGBIND["keys"]}


@pytest.mark.parametrize("v", all_segments(SEGBIND), ids=lambda v: v["name"])
def test_segment(v):
    secret = h(v["device_secret"])
    key = binding_key(secret, v["owner"], v["camera"], v["epoch"])
    assert key == h(v["binding_key"])
    units = split_annexb(h(v["segment"]))
    assert [u.hex() for u in units] == v["units"]
    for u in units:  # every unit is a well-escaped NAL unit
        assert epb_insert(epb_remove(u[1:])) == u[1:]
    digest = digest_of(units)
    assert digest == h(v["content_digest"])
    signed = signed_fields(v, digest)
    assert signed == h(v["signed_fields"])
    mac = hmac_sha256(key, signed + digest)[:16]
    assert mac == h(v["mac"])
    body = signed + mac
    assert body == h(v["tag_body"])
    sei = sei_nal(body)
    assert sei == h(v["sei_nal"])
    assert tagged_segment(units, sei) == h(v["tagged_segment"])
    # the tagged segment's digest, recomputed without the tag, is the same digest
    assert digest_of(split_annexb(h(v["tagged_segment"]))) == digest


def test_segment_vectors_cover_the_edges():
    segs = all_segments(SEGBIND)
    kinds = {h(u)[0] & 0x1F for v in segs for u in v["units"]}
    assert {5, 6, 7, 8, 9, 12, 1} <= kinds                         # IDR, SEI, SPS, PPS, AUD, filler, P
    assert any(len(h(v["tag_body"])) == 131 for v in segs)         # the longest body
    assert any(v["seq"] == 2**64 - 1 and v["stream_id"] == 2**64 - 1 for v in segs)
    # at least one SEI needed emulation prevention, and the IDR needed it
    assert any(len(h(v["sei_nal"])) > len(epb_remove(h(v["sei_nal"]))) for v in segs)
    idr = next(h(u) for u in segs[0]["units"] if h(u)[0] & 0x1F == 5)
    assert epb_remove(idr[1:]) == h(SEGBIND["idr_rbsp"]) != idr[1:]
    # one segment opens with an AUD (tag second), another does not (tag first)
    assert {h(v["units"][0])[0] & 0x1F == 9 for v in segs} == {True, False}


def test_chain():
    for chain in SEGBIND["chains"]:
        segs = chain["segments"]
        assert len(segs) >= 2
        assert segs[0]["seq"] == 0 and h(segs[0]["link"]) == b"\xff" * 8
        for prev, cur in zip(segs, segs[1:]):
            assert (cur["stream_id"], cur["seq"]) == (prev["stream_id"], prev["seq"] + 1)
            assert h(cur["link"]) == h(prev["mac"])[:8]


# ---- the CPython core gives the same bytes ----------------------------------------------

@pytest.mark.parametrize("chain", [[v] for v in SEGBIND["segments"]]
                         + [c["segments"] for c in SEGBIND["chains"]],
                         ids=lambda c: c[0]["name"])
def test_cpython_core_reproduces(chain):
    from segbind_core import crypto
    from segbind_core.keys import derive_binding_key
    from segbind_core.nal import annexb_units
    from segbind_core.tagger import Tagger
    assert crypto._openssl_hmac_digest is not None     # the OpenSSL path, not the pure one
    first = chain[0]
    key = derive_binding_key(h(first["device_secret"]), first["owner"], first["camera"],
                             first["epoch"])
    tagger = Tagger(key, first["owner"], first["camera"], first["epoch"], first["stream_id"],
                    seq=first["seq"], link=h(first["link"]))
    for v in chain:
        buf = h(v["segment"])
        tagged, tag = tagger.tag_annexb(buf, annexb_units(buf), v["capture_ms"])
        assert tag.encode() == h(v["tag_body"])
        assert tagged == h(v["tagged_segment"])


def test_cpython_core_keys():
    from segbind_core.keys import derive_binding_key, derive_control_key
    for v in SEGBIND["keys"]:
        secret = h(v["device_secret"])
        assert derive_binding_key(secret, v["owner"], v["camera"], v["epoch"]) == h(v["binding_key"])
        assert derive_control_key(secret, v["camera"]) == h(v["control_key"])
