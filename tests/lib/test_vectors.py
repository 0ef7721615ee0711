"""Test vectors checked against an implementation written from docs/FORMAT.md.

tests/vectors/segbind_v3.json is made by segbind's core on MicroPython (tools/make_vectors.py).
Nothing below uses segbind_core for the computation it checks: tests/support/format_v3.py
derives the keys with ``cryptography``'s HKDF, encrypts with ``cryptography``'s AES-CTR, MACs
with ``hmac``, hashes with ``hashlib``, and writes the Annex-B scan, emulation prevention, the
escape, the counter blocks, the tag body, the SEI and the tagged segment out by hand; the clear
lead comes from FFmpeg's trace_headers (where each slice header ends). Separately, the CPython
core (OpenSSL) must give the same bytes, and the RFC vectors must hold on the core's pure path
and on ``cryptography``, so a typo in a vector file cannot pass.
"""

from __future__ import annotations

import json
from typing import List

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.support import VECTORS
from tests.support import format_v3 as F
from tests.support.trace_headers import lead_by_ffmpeg


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = c_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


# ---- RFC vectors: pure path, default path and cryptography ----------------------------

RFC4231 = load("rfc4231_hmac_sha256.json")
RFC5869 = load("rfc5869_hkdf_sha256.json")
SEGBIND = load("segbind_v3.json")


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


# ---- segbind_v3.json: the independent implementation ------------------------------------------

def all_segments(doc: dict) -> List[dict]:
    return doc["segments"] + [s for c in doc["chains"] for s in c["segments"]]


def test_segbind_provenance():
    from tests.support import ROOT
    p = SEGBIND["provenance"]
    assert p["generator"] == "tools/make_vectors.py"
    assert (ROOT / p["generator"]).is_file()
    assert p["interpreter"]["name"] == "micropython"
    assert p["interpreter"]["version"].count(".") == 2
    assert p["interpreter"]["aes_backend"].startswith("cryptolib")  # the port's own AES, not CPython's
    assert len(p["date"]) == 10


@pytest.mark.parametrize("v", SEGBIND["keys"], ids=lambda v: v["name"])
def test_keys(v):
    pairing = h(v["pairing_secret"])
    root = F.epoch_root(pairing, v["owner"], v["camera"], v["epoch"], v["period_s"])
    assert root == h(v["epoch_root"])
    for entry in v["periods"]:
        q = F.period_root(root, entry["period"])
        assert q == h(entry["period_root"])
        assert F.key_id(q) == h(entry["key_id"]) and F.content_key(q) == h(entry["content_key"])
        holders = [v["owner"], *v["shares"]]
        assert [F.slot_key(q, s, a) for s, a in enumerate(holders)] == [h(k) for k in entry["slot_keys"]]
    assert F.command_key(pairing, v["owner"], v["camera"]) == h(v["command_key"])


def test_key_vectors_cover_the_edges():
    keys = SEGBIND["keys"]
    ids = [v[k] for v in keys for k in ("owner", "camera")]
    assert any(len(i.encode()) == 32 for i in ids)
    assert any(len(i.encode()) != len(i) for i in ids)             # multi-byte UTF-8
    assert any(len(i.encode()) == 32 and len(i) < 32 for i in ids)
    assert {1, 2**31 - 1} <= {v["epoch"] for v in keys}
    assert {60, 86400} <= {v["period_s"] for v in keys}
    assert {0, 7} <= {len(v["shares"]) for v in keys}               # one slot to eight
    assert 0 in {p["period"] for v in keys for p in v["periods"]}
    flat = [k for v in keys for p in v["periods"] for k in [p["key_id"], p["content_key"]] + p["slot_keys"]]
    assert len(set(flat)) == len(flat)                              # every key of every period differs


@pytest.mark.parametrize("v", all_segments(SEGBIND), ids=lambda v: v["name"])
def test_segment(v):
    codec = v["codec"]
    units = F.split_annexb(h(v["segment"]))
    assert [u.hex() for u in units] == v["units"]
    assert F.canonical(units) == h(v["segment"])                    # the camera cuts canonical form
    for u in units:  # every plaintext unit is a well-escaped NAL unit
        assert F.start_code_emulations(u) == [], u.hex()
    keys = F.period_keys(h(v["pairing_secret"]), v["owner"], v["camera"], v["epoch"], v["period_s"], v["shares"],
                         v["capture_ms"])
    assert (keys.period, keys.key_id, keys.content_key) == (v["period"], h(v["key_id"]), h(v["content_key"]))
    assert keys.slot_keys == [h(k) for k in v["slot_keys"]]
    lead = lead_by_ffmpeg(units, codec)
    assert lead == v["clear_lead"]
    flags = (1 if v["end_of_stream"] else 0) | (2 if v["still"] else 0)
    made = F.tag(units, codec, lead, keys, v["stream_id"], v["seq"], v["capture_ms"], v["duration_ms"],
                 v["pictures"], h(v["link"]), flags)
    assert [u.hex() for u in made.protected] == v["protected_units"]
    assert [c.to_bytes(16, "big").hex() for c in made.counters] == v["counter_blocks"]
    assert made.digest == h(v["content_digest"])
    assert made.fields.signed() == h(v["signed_fields"])
    assert made.fields.macs == [h(m) for m in v["macs"]]
    assert made.fields.body() == h(v["tag_body"])
    assert F.sei_nal(made.fields.body(), codec) == h(v["sei_nal"])
    assert made.segment == h(v["tagged_segment"])
    # what a stranger holds: the protected form is a valid byte stream, of the same units
    tagged_units = F.split_annexb(h(v["tagged_segment"]))
    assert [F.is_tag(u, codec) for u in tagged_units].count(True) == 1
    assert [u for u in tagged_units if not F.is_tag(u, codec)] == made.protected
    for u in made.protected:
        assert F.start_code_emulations(u) == [], u.hex()
    # what a holder gets back: exactly the encoder's units
    domain = F.DOMAIN_STILL if v["still"] else F.DOMAIN_SEGMENT
    assert F.unprotect(made.protected, codec, lead, keys.content_key, domain, v["stream_id"], v["seq"]) == units
    # the tag as a reader parses it: every bound of section 5 holds
    parsed = F.parse_body(F.body_of(next(u for u in tagged_units if F.is_tag(u, codec)), codec))
    assert (parsed.key_id, parsed.seq, parsed.units, parsed.clear_lead) == (keys.key_id, v["seq"], len(units), lead)
    lengths = [sum(len(F.ciphertext(made.protected[i], lead)) for i in group if F.is_picture(made.protected[i], codec))
               for group in F.access_units(made.protected, codec)]
    assert lengths == v["protected_lengths"]


def test_segment_vectors_cover_the_edges():
    segs = all_segments(SEGBIND)
    h264 = {h(u)[0] & 0x1F for v in segs if v["codec"] == 1 for u in v["units"]}
    assert {1, 5, 6, 7, 8, 9, 12} <= h264                           # P/I, IDR, SEI, SPS, PPS, AUD, filler
    h265 = {(h(u)[0] >> 1) & 0x3F for v in segs if v["codec"] == 2 for u in v["units"]}
    assert {35, 32, 33, 34, 39, 19, 1} <= h265                      # AUD, VPS, SPS, PPS, SEI, IDR, TRAIL
    assert max(len(h(v["tag_body"])) for v in segs) == 191          # eight slots, the widest varints but units
    assert any(v["seq"] == 2**32 - 1 and v["stream_id"] == 2**48 - 1 and v["capture_ms"] == 2**53 - 1
               for v in segs)
    assert {True, False} == {v["end_of_stream"] for v in segs} == {v["still"] for v in segs}
    leads = {v["clear_lead"] for v in segs}
    assert 1 in leads and max(leads) > 2                             # a NAL header alone, slice headers
    # an access unit with nothing protected, one of whole blocks, one whose last block is cut short
    lengths = [n for v in segs for n in v["protected_lengths"]]
    assert 0 in lengths and any(n and n % 16 == 0 for n in lengths) and any(n % 16 for n in lengths)
    # a picture unit within the clear lead, left whole
    assert any(F.is_picture(h(u), v["codec"]) and len(h(u)) - 1 <= v["clear_lead"]
               and h(u).hex() in v["protected_units"] for v in segs for u in v["units"])
    # escapes: inside, at the end, and after a clear lead ending in 00 00
    escaped = [(h(p), v["clear_lead"]) for v in segs for p, u in zip(v["protected_units"], v["units"]) if p != u]
    inserted = [p for p, lead in escaped if len(F.ciphertext(p, lead)) < len(p) - lead - 1]
    assert any(b"\x00\x00\x03\x00" in p for p in inserted) and any(b"\x00\x00\x03\x01" in p for p in inserted)
    assert any(b"\x00\x00\x03\x02" in p for p in inserted) and any(b"\x00\x00\x03\x03" in p for p in inserted)
    assert any(p[-4:-1] == b"\x00\x00\x03" for p in inserted)
    assert any(p[lead - 2:lead + 1] == b"\x00\x00\x03" for p, lead in inserted_with_leads(segs))
    # at least one SEI needed emulation prevention; one segment opens with an AUD, another does not
    assert any(len(h(v["sei_nal"])) > len(F.epb_remove(h(v["sei_nal"]))) for v in segs)
    assert {F.is_delimiter(h(v["units"][0]), v["codec"]) for v in segs} == {True, False}


def inserted_with_leads(segs: List[dict]) -> List[tuple]:
    return [(h(p), v["clear_lead"]) for v in segs for p, u in zip(v["protected_units"], v["units"]) if p != u]


def test_chain():
    for chain in SEGBIND["chains"]:
        segs = chain["segments"]
        assert len(segs) >= 2
        assert segs[0]["seq"] == 0 and h(segs[0]["link"]) == F.GENESIS
        for prev, cur in zip(segs, segs[1:]):
            assert (cur["stream_id"], cur["seq"]) == (prev["stream_id"], prev["seq"] + 1)
            assert h(cur["link"]) == h(prev["content_digest"])[:8]
            assert cur["period"] == prev["period"] + 1 and cur["key_id"] != prev["key_id"]  # across a period


def command_bytes(kind: int, op: int, c: dict, v: dict, key: bytes) -> bytes:
    """FORMAT.md section 8, written out: the signed bytes of a command or result, then its MAC."""
    body = bytes([3, kind, op]) + F.ident(c["camera"]) + F.ident(c["owner"]) + F.leb128(v["counter"]) \
        + F.leb128(v["epoch"])
    if kind == 0x43:
        if op == 2:
            body += F.leb128(v["period_s"]) + bytes([len(v["shares"])]) + b"".join(F.ident(a) for a in v["shares"])
        body += F.leb128(v["issued_ms"])
    else:
        status, detail = v["status"].encode("ascii"), v["detail"].encode("utf-8")
        body += bytes([len(status)]) + status + F.leb128(v["stream_id"]) + F.leb128(v["seq"]) \
            + F.leb128(len(detail)) + detail
    return body + hmac_sha256(key, b"segbind/v3 command\x00" + body)


def test_commands_results_and_pairing_offer():
    c = SEGBIND["commands"]
    pairing = h(c["pairing_secret"])
    key = F.command_key(pairing, c["owner"], c["camera"])
    assert key == h(c["command_key"])
    assert command_bytes(0x43, 2, c, c["rotate"], key) == h(c["rotate"]["encoded"])
    assert command_bytes(0x43, 3, c, c["release"], key) == h(c["release"]["encoded"])
    assert (c["result"]["op"], c["refused_pairing_result"]["op"]) == ("rotate", "pair")
    assert command_bytes(0x52, 2, c, c["result"], key) == h(c["result"]["encoded"])
    assert command_bytes(0x52, 1, c, c["refused_pairing_result"], key) == h(c["refused_pairing_result"]["encoded"])
    offer = c["pairing_offer"]
    assert b"SBP3" + F.ident(c["owner"]) + F.ident(c["camera"]) + pairing + F.leb128(offer["expires_ms"]) \
        + F.leb128(offer["period_s"]) == h(offer["encoded"])
    # the edges: a multi-byte UTF-8 share and detail, a refused pairing saying nothing of the binding
    assert any(len(a.encode()) != len(a) for a in c["rotate"]["shares"])
    assert c["refused_pairing_result"]["detail"].encode() != c["refused_pairing_result"]["detail"].encode("latin-1")
    assert (c["refused_pairing_result"]["epoch"], c["refused_pairing_result"]["stream_id"]) == (0, 0)


# ---- the CPython core gives the same bytes ----------------------------------------------

@pytest.mark.parametrize("chain", [[v] for v in SEGBIND["segments"]]
                         + [c["segments"] for c in SEGBIND["chains"]],
                         ids=lambda c: c[0]["name"])
def test_cpython_core_reproduces(chain):
    from segbind_core import aes, crypto, protect
    from segbind_core.keys import Epoch
    from segbind_core.tagger import Tagger
    assert crypto._openssl_hmac_digest is not None and aes.BACKEND == "cryptography"  # OpenSSL's paths
    first = chain[0]
    epoch = Epoch.of_pairing(h(first["pairing_secret"]), first["owner"], first["camera"], first["epoch"],
                             first["shares"], first["period_s"])
    tagger = Tagger(epoch, first["stream_id"], codec=first["codec"], seq=first["seq"], link=h(first["link"]))
    for v in chain:
        data = h(v["segment"])
        if v["still"]:
            tagged, tag = tagger.tag_still(data, len(v["units"]), v["capture_ms"], v["seq"])
        else:
            tagged, tag = tagger.tag(data, len(v["units"]), v["capture_ms"], v["duration_ms"], v["pictures"],
                                     v["end_of_stream"])
        assert tag.encode() == h(v["tag_body"])
        assert tagged == h(v["tagged_segment"])
        assert protect.clear_lead(data, v["codec"]) == v["clear_lead"]


def test_cpython_core_keys():
    from segbind_core.keys import Epoch
    from segbind_core.keys import command_key as core_command_key
    for v in SEGBIND["keys"]:
        pairing = h(v["pairing_secret"])
        epoch = Epoch.of_pairing(pairing, v["owner"], v["camera"], v["epoch"], v["shares"], v["period_s"])
        assert epoch.root == h(v["epoch_root"])
        for entry in v["periods"]:
            keys = epoch.period_keys(entry["period"])
            assert (keys.key_id, keys.content_key) == (h(entry["key_id"]), h(entry["content_key"]))
            assert [k for _, k in keys.slot_keys] == [h(k) for k in entry["slot_keys"]]
        assert core_command_key(pairing, v["owner"], v["camera"]) == h(v["command_key"])
