"""tagger.py: the canonical digest, slot MACs, the chain, the tag's place, timing fields."""

import hashlib

from _support import h, raises

from segbind_core import nal, sei
from segbind_core import tag as T
from segbind_core.crypto import hmac_sha256_pure
from segbind_core.keys import Epoch, slot_key
from segbind_core.tagger import Tagger

PAIRING = bytes(range(100, 132))
AUD = h("09f0")
SPS = h("6742c01e")
PPS = h("68ce3c80")
IDR = h("65888400000301ff")
P = h("419a0203")


def _epoch(epoch=3, shares=()):
    return Epoch.of_pairing(PAIRING, "alice", "cam-1", epoch, list(shares))


def _segment(*units):
    return nal.to_annexb(units)


def _tag_of(tagged):
    """(Tag, signed fields, the canonical form without the tag) of a tagged segment."""
    units = [tagged[s:e] for s, e in nal.annexb_units(tagged)]
    tags = [u for u in units if sei.tag_codec(u)]
    assert len(tags) == 1
    tag, signed = T.decode_tag(sei.segbind_payload(tags[0]))
    rest = nal.to_annexb([u for u in units if not sei.tag_codec(u)])
    return tag, signed, rest


def test_first_tag_its_fields_and_every_slot_mac():
    epoch = _epoch(3, ["bob", "carol"])
    tagger = Tagger(epoch, 77)
    data = _segment(AUD, SPS, PPS, IDR)
    tagged, tag = tagger.tag(data, 4, 1234, 1000, 25)
    got, signed, rest = _tag_of(tagged)
    assert rest == data  # the tag goes in; nothing else changes
    assert (got.codec, got.owner, got.camera, got.epoch, got.stream_id, got.seq, got.capture_ms) == \
        (T.CODEC_H264, "alice", "cam-1", 3, 77, 0, 1234)
    assert (got.duration_ms, got.pictures, got.units, got.end_of_stream) == (1000, 25, 4, False)
    assert got.link == T.GENESIS_LINK == h("ffffffffffffffff")
    digest = hashlib.sha256(data).digest()  # the canonical form: the segment as cut
    assert got.digest_hint == digest[:4] and got.slots == 3
    for slot, holder in enumerate(["alice", "bob", "carol"]):
        key = slot_key(epoch.root, slot, holder)
        assert got.macs[slot] == tag.macs[slot] == hmac_sha256_pure(key, signed + digest)[:16]


def test_the_tag_follows_the_delimiter_or_leads():
    tagger = Tagger(_epoch(), 1)
    tagged, _ = tagger.tag(_segment(AUD, SPS, PPS, IDR), 4, 0, 40, 1)
    kinds = [tagged[s] & 0x1F for s, _ in nal.annexb_units(tagged)]
    assert kinds == [9, 6, 7, 8, 5]
    tagged, _ = tagger.tag(_segment(SPS, PPS, IDR), 3, 0, 40, 1)
    kinds = [tagged[s] & 0x1F for s, _ in nal.annexb_units(tagged)]
    assert kinds == [6, 7, 8, 5]


def test_chain_sequence_numbers_and_the_end_of_stream():
    tagger = Tagger(_epoch(), 5)
    digests = []
    for i in range(4):
        data = _segment(AUD, SPS, PPS, IDR + bytes((i + 1,)), AUD, P)
        tagged, _ = tagger.tag(data, 6, 1000 * i, 1000, 2, end_of_stream=i == 3)
        got, _, _ = _tag_of(tagged)
        assert got.seq == i and got.end_of_stream == (i == 3)
        assert got.link == (T.GENESIS_LINK if i == 0 else digests[-1][:8])
        digests.append(hashlib.sha256(data).digest())
    assert tagger.seq == 4 and tagger.link == digests[-1][:8]


def test_resume_from_given_seq_and_link():
    tagger = Tagger(_epoch(), 9, seq=41, link=h("0102030405060708"))
    got, _, _ = _tag_of(tagger.tag(_segment(SPS, PPS, IDR), 3, 0, 40, 1)[0])
    assert got.seq == 41 and got.link == h("0102030405060708")


def test_rebind_applies_from_next_segment_and_keeps_the_chain():
    tagger = Tagger(_epoch(3), 9)
    first, _ = tagger.tag(_segment(SPS, PPS, IDR), 3, 0, 40, 1)
    tagger.rebind(_epoch(4, ["bob"]))
    second, _ = tagger.tag(_segment(SPS, PPS, IDR + h("02")), 3, 40, 40, 1)
    a, _, rest_a = _tag_of(first)
    b, _, _ = _tag_of(second)
    assert (a.epoch, a.slots, b.epoch, b.slots) == (3, 1, 4, 2)
    assert b.seq == 1 and b.link == hashlib.sha256(rest_a).digest()[:8]
    raises(ValueError, tagger.rebind, Epoch.of_pairing(PAIRING, "alice", "cam-2", 5, []))


def test_h265_tags():
    tagger = Tagger(_epoch(), 1, codec=T.CODEC_H265)
    hevc_aud, vps = h("460150"), h("40010c01")
    tagged, _ = tagger.tag(_segment(hevc_aud, vps, h("2601af")), 3, 0, 40, 1)
    units = [tagged[s:e] for s, e in nal.annexb_units(tagged)]
    assert units[0] == hevc_aud and units[1][:2] == h("4e01") and sei.tag_codec(units[1]) == 2
    got, _, _ = _tag_of(tagged)
    assert got.codec == T.CODEC_H265


def test_refusals_change_no_state():
    tagger = Tagger(_epoch(), 1)
    raises(ValueError, tagger.tag, b"", 1, 0, 40, 1)
    raises(ValueError, tagger.tag, h("000001") + IDR, 1, 0, 40, 1)   # not 4-byte start codes
    raises(ValueError, tagger.tag, _segment(IDR), 1, 0, 40, 0)       # no picture
    raises(ValueError, tagger.tag, _segment(IDR), 0, 0, 40, 1)       # no unit
    assert tagger.seq == 0 and tagger.link == T.GENESIS_LINK


def test_seq_at_the_top_of_the_range():
    tagger = Tagger(_epoch(), 1, seq=(1 << 64) - 1)
    got, _, _ = _tag_of(tagger.tag(_segment(IDR), 1, 0, 40, 1)[0])
    assert got.seq == (1 << 64) - 1
    raises(ValueError, tagger.tag, _segment(IDR), 1, 0, 40, 1)
