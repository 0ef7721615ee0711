"""tagger.py: sequence numbers, the MAC chain, SEI placement, refusals that change nothing."""

import hashlib

from _support import h, raises

from segbind_core import nal, sei
from segbind_core import tag as T
from segbind_core.crypto import hmac_sha256_pure
from segbind_core.tagger import Tagger

KEY = bytes(range(100, 132))
AUD = h("09f0")
SPS = h("6742c01e")
PPS = h("68ce3c80")
IDR = h("65888400000301ff")
P = h("419a0203")


def _segment(*units):
    buf = nal.to_annexb(units)
    return buf, nal.annexb_units(buf)


def _decode(sei_nal):
    return T.decode_tag(sei.segbind_payload(sei_nal))


def _digest(units):
    d = hashlib.sha256()
    for u in units:
        if u[0] & 0x1F not in (9, 10, 11, 12):
            d.update(len(u).to_bytes(4, "big") + u)
    return d.digest()


def test_first_tag_and_its_mac():
    tagger = Tagger(KEY, "alice", "cam-1", 3, 77)
    buf, units = _segment(AUD, SPS, PPS, IDR)
    sei_nal, tag = tagger.tag_units(buf, units, 1234)
    assert sei.is_segbind_sei(sei_nal)
    got, signed = _decode(sei_nal)
    assert (got.owner, got.camera, got.epoch, got.stream_id, got.seq, got.capture_ms) == \
        ("alice", "cam-1", 3, 77, 0, 1234)
    assert got.link == T.GENESIS_LINK == h("ffffffffffffffff")
    digest = _digest([AUD, SPS, PPS, IDR])
    assert got.digest_hint == digest[:4]
    assert got.mac == tag.mac == hmac_sha256_pure(KEY, signed + digest)[:16]


def test_chain_and_sequence_numbers():
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5)
    macs = []
    for i in range(4):
        buf, units = _segment(SPS, PPS, IDR + bytes((i + 1,)), P)
        sei_nal, tag = tagger.tag_units(buf, units, 1000 * i)
        got, _ = _decode(sei_nal)
        assert got.seq == i
        assert got.link == (T.GENESIS_LINK if i == 0 else macs[-1][:8])
        macs.append(got.mac)
        assert tagger.seq == i + 1
        assert tagger.link == got.mac[:8]
    assert len(set(macs)) == 4


def test_resume_from_given_seq_and_link():
    link = h("0011223344556677")
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5, seq=41, link=link)
    got, _ = _decode(tagger.tag_units(*_segment(IDR), 0)[0])
    assert (got.seq, got.link) == (41, link)


def test_rebind_applies_from_next_segment_and_keeps_the_chain():
    key2 = bytes(32)
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5)
    first, _ = _decode(tagger.tag_units(*_segment(IDR), 0)[0])
    tagger.rebind(key2, "bob", 2)
    sei_nal, _ = tagger.tag_units(*_segment(IDR), 0)
    second, signed = _decode(sei_nal)
    assert (second.owner, second.epoch, second.seq, second.camera) == ("bob", 2, 1, "cam-1")
    assert second.link == first.mac[:8]
    assert second.mac == hmac_sha256_pure(key2, signed + _digest([IDR]))[:16]


def test_sei_placement():
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5)
    out, tag = tagger.tag_annexb(*_segment(AUD, SPS, PPS, IDR), 0)
    units = [bytes(out[s:e]) for s, e in nal.annexb_units(out)]
    assert units[0] == AUD and sei.is_segbind_sei(units[1]) and units[2:] == [SPS, PPS, IDR]
    assert out.startswith(h("00000001") + AUD + h("00000001") + units[1])
    out, tag = tagger.tag_annexb(*_segment(SPS, PPS, IDR), 0)
    units = [bytes(out[s:e]) for s, e in nal.annexb_units(out)]
    assert sei.is_segbind_sei(units[0]) and units[1:] == [SPS, PPS, IDR]
    out, tag = tagger.tag_annexb(*_segment(AUD), 0)   # only a delimiter: tag after it
    units = [bytes(out[s:e]) for s, e in nal.annexb_units(out)]
    assert units[0] == AUD and sei.is_segbind_sei(units[1]) and len(units) == 2


def test_tagged_segment_digest_excludes_the_tag():
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5)
    out, tag = tagger.tag_annexb(*_segment(AUD, SPS, PPS, IDR, P), 0)
    view = memoryview(out)
    kept = [(s, e) for s, e in nal.annexb_units(out) if not sei.is_segbind_sei(view[s:e])]
    digest = T.content_digest(out, kept)
    assert digest[:4] == tag.digest_hint
    assert T.compute_mac(KEY, tag.signed_fields(), digest) == tag.mac


def test_refusals_change_no_state():
    tagger = Tagger(KEY, "alice", "cam-1", 1, 5)
    tagger.tag_units(*_segment(IDR), 0)
    seq, link = tagger.seq, tagger.link
    raises(ValueError, tagger.tag_units, b"", [], 0)
    tagged, _ = Tagger(KEY, "alice", "cam-1", 1, 5).tag_annexb(*_segment(SPS, IDR), 0)
    e = raises(ValueError, tagger.tag_units, tagged, nal.annexb_units(tagged), 0)
    assert "already carries" in str(e)
    raises(ValueError, tagger.tag_annexb, tagged, nal.annexb_units(tagged), 0)
    assert (tagger.seq, tagger.link) == (seq, link)


def test_seq_at_the_top_of_the_range():
    tagger = Tagger(KEY, "alice", "cam-1", 0xFFFFFFFF, (1 << 64) - 1, seq=(1 << 64) - 1)
    got, _ = _decode(tagger.tag_units(*_segment(IDR), (1 << 64) - 1)[0])
    assert got.seq == (1 << 64) - 1 and got.stream_id == (1 << 64) - 1
    assert got.capture_ms == (1 << 64) - 1 and got.epoch == 0xFFFFFFFF
    link = tagger.link
    raises(ValueError, tagger.tag_units, *(_segment(IDR) + (0,)))   # seq 2^64 cannot be carried
    assert tagger.link == link
