"""The core reproduces tests/vectors/segbind_v3.json (made on MicroPython's unix port, with its
cryptolib AES) byte for byte: here on CPython (OpenSSL's AES) and on the WebAssembly VM (the
pure AES). tests/lib/test_vectors.py checks the same file with an independent implementation."""

from _support import h, load_vectors, raises

from segbind_core import control, nal, protect, sei
from segbind_core import tag as T
from segbind_core.crypto import MacKey
from segbind_core.keys import Epoch, command_key, epoch_root, period_root, slot_key
from segbind_core.tagger import Tagger


def _doc():
    return load_vectors("segbind_v3.json")


def _all_segments(doc):
    out = list(doc["segments"])
    for chain in doc["chains"]:
        out.extend(chain["segments"])
    return out


def _epoch(v):
    return Epoch.of_pairing(h(v["pairing_secret"]), v["owner"], v["camera"], v["epoch"], v["shares"], v["period_s"])


def test_vector_file_is_complete():
    doc = _doc()
    assert doc["provenance"]["interpreter"]["name"] == "micropython"
    assert doc["provenance"]["generator"] == "tools/make_vectors.py"
    assert len(doc["keys"]) >= 4 and all(len(v["periods"]) >= 1 for v in doc["keys"])
    segments = _all_segments(doc)
    assert len(segments) >= 7
    assert len(doc["chains"][0]["segments"]) == 2
    assert {v["codec"] for v in segments} == {T.CODEC_H264, T.CODEC_H265}
    assert {v["still"] for v in segments} == {True, False}


def test_keys():
    for v in _doc()["keys"]:
        epoch = _epoch(v)
        assert epoch.root == h(v["epoch_root"]), v["name"]
        for entry in v["periods"]:
            keys = epoch.period_keys(entry["period"])
            assert period_root(epoch.root, entry["period"]) == h(entry["period_root"]), v["name"]
            assert (keys.key_id, keys.content_key) == (h(entry["key_id"]), h(entry["content_key"])), v["name"]
            assert [k.hex() for _holder, k in keys.slot_keys] == entry["slot_keys"], v["name"]
        assert command_key(h(v["pairing_secret"]), v["owner"], v["camera"]) == h(v["command_key"])


def test_keys_depend_on_every_input():
    v = _doc()["keys"][0]
    secret = h(v["pairing_secret"])
    base = h(v["epoch_root"])
    args = (v["owner"], v["camera"], v["epoch"], v["period_s"])
    assert epoch_root(secret, *args) == base
    assert epoch_root(secret, v["owner"] + "x", v["camera"], v["epoch"], v["period_s"]) != base
    assert epoch_root(secret, v["owner"], v["camera"] + "x", v["epoch"], v["period_s"]) != base
    assert epoch_root(secret, v["owner"], v["camera"], v["epoch"] + 1, v["period_s"]) != base
    assert epoch_root(secret, v["owner"], v["camera"], v["epoch"], v["period_s"] + 1) != base
    assert epoch_root(bytes(32), *args) != base
    # the length bytes keep ("ab", "c") and ("a", "bc") apart
    assert epoch_root(secret, "ab", "c", 1) != epoch_root(secret, "a", "bc", 1)
    root = period_root(base, 0)
    assert period_root(base, 1) != root
    assert slot_key(root, 1, "bob") != slot_key(root, 2, "bob") != slot_key(root, 1, "bo")
    assert command_key(secret, v["owner"], v["camera"]) != base


def test_keys_reject_bad_inputs():
    secret = bytes(32)
    raises(ValueError, epoch_root, bytes(31), "a", "c", 1)
    raises(ValueError, epoch_root, bytes(33), "a", "c", 1)
    raises(ValueError, command_key, bytes(16), "a", "c")
    raises(ValueError, epoch_root, secret, "a", "c", 0)
    raises(ValueError, epoch_root, secret, "a", "c", 1 << 31)
    raises(ValueError, epoch_root, secret, "a", "c", 1, 59)
    raises(ValueError, epoch_root, secret, "", "c", 1)
    raises(ValueError, epoch_root, secret, "a", "c" * 33, 1)
    raises(ValueError, period_root, bytes(16), 0)
    raises(ValueError, slot_key, secret, 8, "a")
    raises(ValueError, Epoch, "a", "c", 1, ["s"] * 8, secret)


def test_segments_reproduced():
    for chain in [[v] for v in _doc()["segments"]] + [c["segments"] for c in _doc()["chains"]]:
        first = chain[0]
        epoch = _epoch(first)
        tagger = Tagger(epoch, first["stream_id"], codec=first["codec"], seq=first["seq"], link=h(first["link"]))
        for v in chain:
            data = h(v["segment"])
            units = nal.annexb_units(data)
            assert [data[s:e].hex() for s, e in units] == v["units"], v["name"]
            assert nal.to_annexb([data[s:e] for s, e in units]) == data   # canonical
            lead = protect.clear_lead(data, v["codec"])
            assert lead == v["clear_lead"], v["name"]
            keys = epoch.period_keys(epoch.period_of(v["capture_ms"]))
            assert keys.key_id == h(v["key_id"]) and keys.content_key == h(v["content_key"]), v["name"]
            domain = protect.DOMAIN_STILL if v["still"] else protect.DOMAIN_SEGMENT
            parts = protect.protect(data, v["codec"], lead, keys.content_key, v["stream_id"], v["seq"], domain)
            protected = b"".join(bytes(p) for p in parts)
            assert protected == nal.to_annexb([h(u) for u in v["protected_units"]]), v["name"]
            assert protect.unprotect(protected, v["codec"], lead, keys.content_key, v["stream_id"], v["seq"],
                                     domain) == data
            if v["still"]:
                tagged, tag = tagger.tag_still(data, len(units), v["capture_ms"], v["seq"])
            else:
                assert (tagger.seq, tagger.link) == (v["seq"], h(v["link"])), v["name"]
                tagged, tag = tagger.tag(data, len(units), v["capture_ms"], v["duration_ms"], v["pictures"],
                                         v["end_of_stream"])
            assert tag.signed_fields() == h(v["signed_fields"]), v["name"]
            assert [m.hex() for m in tag.macs] == v["macs"], v["name"]
            assert tag.encode() == h(v["tag_body"]), v["name"]
            assert sei.build_sei_nal(tag.encode(), v["codec"]) == h(v["sei_nal"]), v["name"]
            assert tagged == h(v["tagged_segment"]), v["name"]


def test_tags_in_vectors_decode_and_every_slot_verifies():
    for v in _all_segments(_doc()):
        sei_nal = h(v["sei_nal"])
        assert sei.tag_codec(sei_nal) == v["codec"]
        assert sei.segbind_payload(sei_nal) == h(v["tag_body"])
        tag, signed = T.decode_tag(h(v["tag_body"]))
        assert signed == h(v["signed_fields"])
        assert (tag.key_id, tag.stream_id, tag.seq, tag.capture_ms, tag.clear_lead) == \
            (h(v["key_id"]), v["stream_id"], v["seq"], v["capture_ms"], v["clear_lead"])
        assert (tag.duration_ms, tag.pictures, tag.units, tag.end_of_stream, tag.still) == \
            (v["duration_ms"], v["pictures"], len(v["units"]), v["end_of_stream"], v["still"])
        assert tag.link == h(v["link"]) and [m.hex() for m in tag.macs] == v["macs"]
        assert tag.digest_hint == h(v["content_digest"])[:4]
        for key, mac in zip(v["slot_keys"], tag.macs):
            assert T.compute_mac(MacKey(h(key)), signed, h(v["content_digest"])) == mac, v["name"]


def test_chain_links():
    for chain in _doc()["chains"]:
        segs = chain["segments"]
        assert segs[0]["seq"] == 0 and segs[0]["link"] == "ff" * 8
        for prev, cur in zip(segs, segs[1:]):
            assert cur["seq"] == prev["seq"] + 1
            assert cur["link"] == prev["content_digest"][:16]
            assert cur["key_id"] != prev["key_id"]


def test_commands_results_and_pairing_offer():
    c = _doc()["commands"]
    key = command_key(h(c["pairing_secret"]), c["owner"], c["camera"])
    assert key == h(c["command_key"])
    for name, op in (("rotate", control.ROTATE), ("release", control.RELEASE)):
        v = c[name]
        command = control.open_command(key, c["camera"], h(v["encoded"]))
        assert (command.op, command.counter, command.epoch, command.period_s, command.shares, command.issued_ms) == \
            (op, v["counter"], v["epoch"], v["period_s"], v["shares"], v["issued_ms"])
        assert control.Command(op, c["camera"], c["owner"], v["counter"], v["epoch"], v["shares"], v["issued_ms"],
                               v["period_s"]).encode(key) == h(v["encoded"])
    for name in ("result", "refused_pairing_result"):
        v = c[name]
        result = control.open_result(key, c["camera"], h(v["encoded"]))
        assert (control.OP_NAMES[result.op], result.status, result.counter, result.epoch, result.stream_id,
                result.seq, result.detail) == (v["op"], v["status"], v["counter"], v["epoch"], v["stream_id"],
                                               v["seq"], v["detail"])
    offer = control.decode_pairing(h(c["pairing_offer"]["encoded"]))
    assert (offer.owner, offer.camera, offer.secret, offer.expires_ms, offer.period_s) == \
        (c["owner"], c["camera"], h(c["pairing_secret"]), c["pairing_offer"]["expires_ms"],
         c["pairing_offer"]["period_s"])
    assert raises(control.ControlError, control.open_command, bytes(32), c["camera"],
                  h(c["rotate"]["encoded"])).reason == control.BAD_MAC
