"""The core reproduces tests/vectors/segbind_v1.json (made on MicroPython) byte for byte."""

from _support import h, load_vectors, raises

from segbind_core import h264, nal, sei
from segbind_core import tag as T
from segbind_core.keys import derive_binding_key, derive_control_key
from segbind_core.tagger import Tagger


def _doc():
    return load_vectors("segbind_v1.json")


def _all_segments(doc):
    out = list(doc["segments"])
    for chain in doc["chains"]:
        out.extend(chain["segments"])
    return out


def test_vector_file_is_complete():
    doc = _doc()
    assert doc["provenance"]["interpreter"]["name"] == "micropython"
    assert doc["provenance"]["generator"] == "tools/make_vectors.py"
    assert len(doc["keys"]) >= 4
    assert len(_all_segments(doc)) >= 4
    assert len(doc["chains"][0]["segments"]) == 2


def test_keys():
    for v in _doc()["keys"]:
        secret = h(v["device_secret"])
        assert derive_binding_key(secret, v["owner"], v["camera"], v["epoch"]) == h(v["binding_key"]), v["name"]
        assert derive_control_key(secret, v["camera"]) == h(v["control_key"]), v["name"]


def test_keys_depend_on_every_input():
    v = _doc()["keys"][0]
    secret = h(v["device_secret"])
    base = h(v["binding_key"])
    assert derive_binding_key(secret, v["owner"] + "x", v["camera"], v["epoch"]) != base
    assert derive_binding_key(secret, v["owner"], v["camera"] + "x", v["epoch"]) != base
    assert derive_binding_key(secret, v["owner"], v["camera"], v["epoch"] + 1) != base
    assert derive_binding_key(bytes(32), v["owner"], v["camera"], v["epoch"]) != base
    # the length bytes keep ("ab", "c") and ("a", "bc") apart
    assert derive_binding_key(secret, "ab", "c", 1) != derive_binding_key(secret, "a", "bc", 1)
    assert derive_control_key(secret, v["camera"]) != base


def test_keys_reject_bad_inputs():
    secret = bytes(32)
    raises(ValueError, derive_binding_key, bytes(31), "a", "c", 1)
    raises(ValueError, derive_binding_key, bytes(33), "a", "c", 1)
    raises(ValueError, derive_control_key, bytes(16), "c")
    raises(ValueError, derive_binding_key, secret, "a", "c", -1)
    raises(ValueError, derive_binding_key, secret, "a", "c", 1 << 32)
    raises(ValueError, derive_binding_key, secret, "", "c", 1)
    raises(ValueError, derive_binding_key, secret, "a", "c" * 33, 1)
    raises(ValueError, derive_control_key, secret, "")


def test_segments_reproduced():
    for chain in [[v] for v in _doc()["segments"]] + [c["segments"] for c in _doc()["chains"]]:
        first = chain[0]
        key = derive_binding_key(h(first["device_secret"]), first["owner"], first["camera"],
                                 first["epoch"])
        assert key == h(first["binding_key"])
        tagger = Tagger(key, first["owner"], first["camera"], first["epoch"], first["stream_id"],
                        seq=first["seq"], link=h(first["link"]))
        for v in chain:
            buf = h(v["segment"])
            units = nal.annexb_units(buf)
            assert [buf[s:e].hex() for s, e in units] == v["units"], v["name"]
            assert T.content_digest(buf, units) == h(v["content_digest"]), v["name"]
            assert (tagger.seq, tagger.link) == (v["seq"], h(v["link"])), v["name"]
            tagged, tag = tagger.tag_annexb(buf, units, v["capture_ms"])
            assert tag.signed_fields() == h(v["signed_fields"]), v["name"]
            assert tag.mac == h(v["mac"]), v["name"]
            assert tag.encode() == h(v["tag_body"]), v["name"]
            assert sei.build_sei_nal(tag.encode()) == h(v["sei_nal"]), v["name"]
            assert tagged == h(v["tagged_segment"]), v["name"]


def test_tags_in_vectors_decode():
    for v in _all_segments(_doc()):
        sei_nal = h(v["sei_nal"])
        assert sei.is_segbind_sei(sei_nal)
        assert sei.segbind_payload(sei_nal) == h(v["tag_body"])
        tag, signed = T.decode_tag(h(v["tag_body"]))
        assert signed == h(v["signed_fields"])
        assert (tag.owner, tag.camera, tag.epoch, tag.stream_id, tag.seq, tag.capture_ms) == \
            (v["owner"], v["camera"], v["epoch"], v["stream_id"], v["seq"], v["capture_ms"])
        assert tag.link == h(v["link"]) and tag.mac == h(v["mac"])
        assert tag.digest_hint == h(v["content_digest"])[:4]
        assert T.compute_mac(h(v["binding_key"]), signed, h(v["content_digest"])) == tag.mac


def test_chain_links():
    for chain in _doc()["chains"]:
        segs = chain["segments"]
        assert segs[0]["seq"] == 0 and segs[0]["link"] == "ff" * 8
        for prev, cur in zip(segs, segs[1:]):
            assert cur["seq"] == prev["seq"] + 1
            assert cur["link"] == prev["mac"][:16]


def test_idr_unit_carries_the_recorded_rbsp():
    doc = _doc()
    idr = [u for u in doc["segments"][0]["units"] if h(u)[0] & 0x1F == h264.NAL_IDR]
    assert len(idr) == 1
    assert nal.unescape_rbsp(h(idr[0])[1:]) == h(doc["idr_rbsp"])
    assert len(h(idr[0])) > 1 + len(h(doc["idr_rbsp"]))  # escape bytes were needed
