"""Test vectors checked against an implementation written here from docs/FORMAT.md.

Nothing below imports segbind_core for the computation it checks: HKDF and HMAC
come from the ``cryptography`` package, and the Annex-B scan, emulation
prevention, canonical form, tag layout, SEI (H.264 and H.265), tagged segment,
commands and pairing offer are re-encoded by hand. Separately, the CPython core
(OpenSSL fast path) must give the same bytes, and the RFC vectors must hold on
the core's pure path and on ``cryptography``, so a typo in a vector file cannot pass.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.support import VECTORS

UUID = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
SALT = b"segbind/v2"
GENESIS = b"\xff" * 8
SEI_HEADER = {1: b"\x06", 2: b"\x4e\x01"}


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


def epoch_root(pairing: bytes, owner: str, camera: str, epoch: int) -> bytes:
    info = b"segbind/v2 epoch\x00" + ident(owner) + ident(camera) + epoch.to_bytes(4, "big")
    return hkdf_sha256(pairing, SALT, info, 32)


def slot_key(root: bytes, slot: int, holder: str) -> bytes:
    return hkdf_sha256(root, SALT, b"segbind/v2 slot\x00" + bytes([slot]) + ident(holder), 32)


def command_key(pairing: bytes, owner: str, camera: str) -> bytes:
    return hkdf_sha256(pairing, SALT, b"segbind/v2 command\x00" + ident(owner) + ident(camera), 32)


def slot_keys(v: dict) -> list[bytes]:
    root = epoch_root(h(v["pairing_secret"]), v["owner"], v["camera"], v["epoch"])
    return [slot_key(root, s, holder) for s, holder in enumerate([v["owner"]] + v["shares"])]


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


def header_size(unit: bytes, codec: int) -> int:
    return 1 if codec == 1 else 2


def is_aud(unit: bytes, codec: int) -> bool:
    return (unit[0] & 0x1F) == 9 if codec == 1 else ((unit[0] >> 1) & 0x3F) == 35


def is_segbind_tag(unit: bytes, codec: int) -> bool:
    head = SEI_HEADER[codec]
    if not unit.startswith(head):
        return False
    rbsp = epb_remove(unit[len(head):])
    if rbsp[:1] != b"\x05":
        return False
    i = 1
    while rbsp[i] == 0xFF:
        i += 1
    return rbsp[i + 1:i + 17] == UUID


def canonical(units: list[bytes], codec: int) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units if not is_segbind_tag(u, codec))


def signed_fields(v: dict, digest: bytes) -> bytes:
    return (bytes([2, 1, v["codec"]]) + ident(v["owner"]) + ident(v["camera"]) + leb128(v["epoch"])
            + leb128(v["stream_id"]) + leb128(v["seq"]) + leb128(v["capture_ms"])
            + leb128(v["duration_ms"]) + leb128(v["pictures"]) + leb128(len(v["units"]))
            + bytes([1 if v["end_of_stream"] else 0]) + h(v["link"]) + digest[:4]
            + bytes([1 + len(v["shares"])]))


def ff_coded(n: int) -> bytes:
    return b"\xff" * (n // 255) + bytes([n % 255])


def sei_nal(body: bytes, codec: int) -> bytes:
    payload = UUID + body
    return SEI_HEADER[codec] + epb_insert(ff_coded(5) + ff_coded(len(payload)) + payload + b"\x80")


def tagged_segment(units: list[bytes], sei: bytes, codec: int) -> bytes:
    at = 1 if is_aud(units[0], codec) else 0
    return b"".join(b"\x00\x00\x00\x01" + u for u in units[:at] + [sei] + units[at:])


def command_bytes(kind: int, op: int, c: dict, v: dict, key: bytes) -> bytes:
    body = bytes([2, kind, op]) + ident(c["camera"]) + ident(c["owner"]) + leb128(v["counter"]) \
        + leb128(v["epoch"])
    if kind == 0x43:
        if op == 2:
            body += bytes([len(v["shares"])]) + b"".join(ident(a) for a in v["shares"])
        body += leb128(v["issued_ms"])
    else:
        status, detail = v["status"].encode("ascii"), v["detail"].encode("utf-8")
        body += bytes([len(status)]) + status + leb128(v["stream_id"]) + leb128(v["seq"]) \
            + leb128(len(detail)) + detail
    return body + hmac_sha256(key, b"segbind/v2 command\x00" + body)


def all_segments(doc: dict) -> list[dict]:
    return doc["segments"] + [s for c in doc["chains"] for s in c["segments"]]


# ---- RFC vectors: pure path, default path and cryptography ----------------------------

RFC4231 = load("rfc4231_hmac_sha256.json")
RFC5869 = load("rfc5869_hkdf_sha256.json")
SEGBIND = load("segbind_v2.json")


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


# ---- segbind_v2.json: independent implementation ----------------------------------------

def test_segbind_provenance():
    from tests.support import ROOT
    p = SEGBIND["provenance"]
    assert p["generator"] == "tools/make_vectors.py"
    assert (ROOT / p["generator"]).is_file()
    assert p["interpreter"]["name"] == "micropython"
    assert p["interpreter"]["version"].count(".") == 2
    assert len(p["date"]) == 10


@pytest.mark.parametrize("v", SEGBIND["keys"], ids=lambda v: v["name"])
def test_keys(v):
    pairing = h(v["pairing_secret"])
    assert epoch_root(pairing, v["owner"], v["camera"], v["epoch"]) == h(v["epoch_root"])
    assert slot_keys(v) == [h(k) for k in v["slot_keys"]]
    assert command_key(pairing, v["owner"], v["camera"]) == h(v["command_key"])


def test_key_vectors_cover_the_edges():
    keys = SEGBIND["keys"]
    ids = [v[k] for v in keys for k in ("owner", "camera")]
    assert any(len(i.encode()) == 32 for i in ids)
    assert any(len(i.encode()) != len(i) for i in ids)             # multi-byte UTF-8
    assert any(len(i.encode()) == 32 and len(i) < 32 for i in ids)
    assert {1, 0xFFFFFFFF} <= {v["epoch"] for v in keys}
    assert {0, 7} <= {len(v["shares"]) for v in keys}               # one slot to eight
    # a slot key depends on its holder and its slot, and the epoch roots differ per pairing
    flat = [k for v in keys for k in v["slot_keys"]]
    assert len(set(flat)) == len(flat)


@pytest.mark.parametrize("v", all_segments(SEGBIND), ids=lambda v: v["name"])
def test_segment(v):
    codec = v["codec"]
    units = split_annexb(h(v["segment"]))
    assert [u.hex() for u in units] == v["units"]
    for u in units:  # every unit is a well-escaped NAL unit
        n = header_size(u, codec)
        assert epb_insert(epb_remove(u[n:])) == u[n:]
    data = canonical(units, codec)
    assert data == h(v["segment"])                               # the camera emits canonical form
    digest = hashlib.sha256(data).digest()
    assert digest == h(v["content_digest"])
    # another framing of the same units has the same canonical form
    assert canonical(split_annexb(h(v["reframed_segment"])), codec) == data != h(v["reframed_segment"])
    signed = signed_fields(v, digest)
    assert signed == h(v["signed_fields"])
    macs = [hmac_sha256(k, signed + digest)[:16] for k in slot_keys(v)]
    assert macs == [h(m) for m in v["macs"]]
    body = signed + b"".join(macs)
    assert body == h(v["tag_body"])
    sei = sei_nal(body, codec)
    assert sei == h(v["sei_nal"])
    tagged = tagged_segment(units, sei, codec)
    assert tagged == h(v["tagged_segment"])
    # the tagged segment's canonical form without the tag is the same bytes
    assert canonical(split_annexb(tagged), codec) == data
    assert [is_segbind_tag(u, codec) for u in split_annexb(tagged)].count(True) == 1


def test_segment_vectors_cover_the_edges():
    segs = all_segments(SEGBIND)
    h264 = {h(u)[0] & 0x1F for v in segs if v["codec"] == 1 for u in v["units"]}
    assert {5, 6, 7, 8, 9, 12, 1} <= h264                           # IDR, SEI, SPS, PPS, AUD, filler, P
    h265 = {(h(u)[0] >> 1) & 0x3F for v in segs if v["codec"] == 2 for u in v["units"]}
    assert {35, 32, 33, 34, 39, 19, 1} <= h265                      # AUD, VPS, SPS, PPS, SEI, IDR, TRAIL
    assert max(len(h(v["tag_body"])) for v in segs) == 257          # eight slots, the widest varints
    assert any(v["seq"] == 2**64 - 1 and v["stream_id"] == 2**64 - 1 for v in segs)
    assert {True, False} == {v["end_of_stream"] for v in segs}
    # at least one SEI needed emulation prevention, and the IDR needed it
    assert any(len(h(v["sei_nal"])) > len(epb_remove(h(v["sei_nal"]))) for v in segs)
    idr = next(h(u) for u in segs[0]["units"] if h(u)[0] & 0x1F == 5)
    assert epb_remove(idr[1:]) == h(SEGBIND["idr_rbsp"]) != idr[1:]
    # one segment opens with an AUD (tag second), another does not (tag first)
    assert {is_aud(h(v["units"][0]), v["codec"]) for v in segs} == {True, False}


def test_chain():
    for chain in SEGBIND["chains"]:
        segs = chain["segments"]
        assert len(segs) >= 2
        assert segs[0]["seq"] == 0 and h(segs[0]["link"]) == GENESIS
        for prev, cur in zip(segs, segs[1:]):
            assert (cur["stream_id"], cur["seq"]) == (prev["stream_id"], prev["seq"] + 1)
            assert h(cur["link"]) == h(prev["content_digest"])[:8]


def test_commands_and_pairing_offer():
    c = SEGBIND["commands"]
    pairing = h(c["pairing_secret"])
    key = command_key(pairing, c["owner"], c["camera"])
    assert key == h(c["command_key"])
    assert command_bytes(0x43, 2, c, c["rotate"], key) == h(c["rotate"]["encoded"])
    assert command_bytes(0x43, 3, c, c["release"], key) == h(c["release"]["encoded"])
    assert c["result"]["op"] == "rotate"
    assert command_bytes(0x52, 2, c, c["result"], key) == h(c["result"]["encoded"])
    offer = b"SBP2" + ident(c["owner"]) + ident(c["camera"]) + pairing + leb128(c["pairing_offer"]["expires_ms"])
    assert offer == h(c["pairing_offer"]["encoded"])


# ---- the CPython core gives the same bytes ----------------------------------------------

@pytest.mark.parametrize("chain", [[v] for v in SEGBIND["segments"]]
                         + [c["segments"] for c in SEGBIND["chains"]],
                         ids=lambda c: c[0]["name"])
def test_cpython_core_reproduces(chain):
    from segbind_core import crypto
    from segbind_core.keys import Epoch
    from segbind_core.tagger import Tagger
    assert crypto._openssl_hmac_digest is not None     # the OpenSSL path, not the pure one
    first = chain[0]
    epoch = Epoch.of_pairing(h(first["pairing_secret"]), first["owner"], first["camera"], first["epoch"],
                             first["shares"])
    tagger = Tagger(epoch, first["stream_id"], codec=first["codec"], seq=first["seq"], link=h(first["link"]))
    for v in chain:
        tagged, tag = tagger.tag(h(v["segment"]), len(v["units"]), v["capture_ms"], v["duration_ms"],
                                 v["pictures"], v["end_of_stream"])
        assert tag.encode() == h(v["tag_body"])
        assert tagged == h(v["tagged_segment"])


def test_cpython_core_keys():
    from segbind_core.keys import Epoch
    from segbind_core.keys import command_key as core_command_key
    for v in SEGBIND["keys"]:
        pairing = h(v["pairing_secret"])
        epoch = Epoch.of_pairing(pairing, v["owner"], v["camera"], v["epoch"], v["shares"])
        assert epoch.root == h(v["epoch_root"])
        assert core_command_key(pairing, v["owner"], v["camera"]) == h(v["command_key"])
