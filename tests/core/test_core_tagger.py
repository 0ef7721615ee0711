"""tagger.py, format 3: a segment is encrypted under its period's content key, then tagged
(key id, clear lead, the digest of the protected form, a MAC per slot); the chain, the
sequence, the tag's place; the period of the capture time chooses the keys; stills.

Slices come from _syntax_writer (real, decodable H.264 syntax; H.265 slice segment headers)."""

import hashlib

from _support import h, raises
from _syntax_writer import EXPLICIT, H264Stream, H265Stream, I, P

from segbind_core import nal, protect, sei
from segbind_core import tag as T
from segbind_core.crypto import hmac_sha256_pure
from segbind_core.keys import Epoch, period_root, slot_key
from segbind_core.tagger import Tagger

PAIRING = bytes(range(100, 132))
AUD = h("09f0")
T0 = 1795000000000  # ms since 1970: period 2991666 of 600 s
STREAM = H264Stream()
SPS, PPS = STREAM.sps(), STREAM.pps()
IDR = STREAM.slice(I, idr=True)[0]


def _p(n, qp_delta=0):
    return STREAM.slice(P, frame_num=n % 16, poc_lsb=2 * n % 32, qp_delta=qp_delta)[0]


def _epoch(epoch=3, shares=(), period_s=600, camera="cam-1"):
    return Epoch.of_pairing(PAIRING, "alice", camera, epoch, list(shares), period_s)


def _segment(*units):
    return nal.to_annexb(units)


GOP = _segment(AUD, SPS, PPS, IDR, AUD, _p(1), AUD, _p(2, -20))  # 8 units, 3 pictures


def _tag_of(tagged):
    """(Tag, signed fields, the segment without its tag: the protected form) of a tagged segment."""
    units = [tagged[s:e] for s, e in nal.annexb_units(tagged)]
    tags = [u for u in units if sei.tag_codec(u)]
    assert len(tags) == 1
    tag, signed = T.decode_tag(sei.segbind_payload(tags[0]))
    rest = nal.to_annexb([u for u in units if not sei.tag_codec(u)])
    return tag, signed, rest


def _plaintext(tagged, ep, domain=protect.DOMAIN_SEGMENT):
    """The tagged segment decrypted with the keys of its tag's period: the units the encoder made."""
    tag, _, rest = _tag_of(tagged)
    keys = ep.period_keys(ep.period_of(tag.capture_ms))
    assert keys.key_id == tag.key_id
    return protect.unprotect(rest, tag.codec, tag.clear_lead, keys.content_key, tag.stream_id, tag.seq, domain)


def test_a_segment_is_encrypted_then_tagged_with_a_mac_per_slot():
    ep = _epoch(3, ["bob", "carol"])
    tagger = Tagger(ep, 77)
    tagged, tag = tagger.tag(GOP, 8, T0 + 1234, 1000, 3)
    got, signed, rest = _tag_of(tagged)
    keys = ep.period_keys(ep.period_of(T0 + 1234))
    lead = protect.clear_lead(GOP, T.CODEC_H264)
    assert lead == 5  # the longest slice header here (the writer's P slice with a qp delta)
    assert (got.version, got.alg, got.codec, got.key_id, got.stream_id, got.seq, got.capture_ms) == \
        (3, 2, T.CODEC_H264, keys.key_id, 77, 0, T0 + 1234)
    assert (got.duration_ms, got.pictures, got.units, got.clear_lead, got.flags) == (1000, 3, 8, lead, 0)
    assert got.link == T.GENESIS_LINK == h("ffffffffffffffff")
    # the tagged segment is the protected form with the tag in it; the protected form decrypts to the input
    protected = b"".join(bytes(p) for p in protect.protect(GOP, T.CODEC_H264, lead, keys.content_key, 77, 0))
    assert rest == protected != GOP
    assert _plaintext(tagged, ep) == GOP
    # encrypt, then MAC: the digest is over the protected form
    digest = hashlib.sha256(protected).digest()
    assert got.digest_hint == digest[:4] and got.slots == 3
    root = period_root(ep.root, ep.period_of(T0 + 1234))
    for slot, holder in enumerate(["alice", "bob", "carol"]):
        key = slot_key(root, slot, holder)
        assert got.macs[slot] == tag.macs[slot] == hmac_sha256_pure(key, signed + digest)[:16]
    assert tag.encode() == sei.segbind_payload([tagged[s:e] for s, e in nal.annexb_units(tagged)][1])


def test_the_tag_follows_the_delimiter_or_leads():
    tagger = Tagger(_epoch(), 1)
    tagged, _ = tagger.tag(GOP, 8, T0, 40, 1)
    kinds = [tagged[s] & 0x1F for s, _ in nal.annexb_units(tagged)]
    assert kinds == [9, 6, 7, 8, 5, 9, 1, 9, 1]
    tagged, _ = tagger.tag(_segment(SPS, PPS, IDR), 3, T0, 40, 1)
    kinds = [tagged[s] & 0x1F for s, _ in nal.annexb_units(tagged)]
    assert kinds == [6, 7, 8, 5]


def test_the_chain_links_the_digests_of_the_protected_forms():
    tagger = Tagger(_epoch(), 5)
    digests = []
    for i in range(4):
        data = _segment(AUD, SPS, PPS, IDR, AUD, _p(i + 1))
        tagged, _ = tagger.tag(data, 6, T0 + 1000 * i, 1000, 2, end_of_stream=i == 3)
        got, _, rest = _tag_of(tagged)
        assert got.seq == i and got.end_of_stream == (i == 3)
        assert got.link == (T.GENESIS_LINK if i == 0 else digests[-1][:8])
        digests.append(hashlib.sha256(rest).digest())
        assert digests[-1] != hashlib.sha256(data).digest()  # not the plaintext's
    assert tagger.seq == 4 and tagger.link == digests[-1][:8]


def test_resume_from_given_seq_and_link():
    tagger = Tagger(_epoch(), 9, seq=41, link=h("0102030405060708"))
    got, _, _ = _tag_of(tagger.tag(GOP, 8, T0, 40, 1)[0])
    assert got.seq == 41 and got.link == h("0102030405060708")


def test_rebind_applies_from_next_segment_and_keeps_the_chain():
    tagger = Tagger(_epoch(3), 9)
    first, _ = tagger.tag(GOP, 8, T0, 40, 1)
    tagger.rebind(_epoch(4, ["bob"]))
    second, _ = tagger.tag(GOP, 8, T0 + 40, 40, 1)
    a, _, rest_a = _tag_of(first)
    b, _, _ = _tag_of(second)
    assert a.key_id == _epoch(3).period_keys(_epoch(3).period_of(T0)).key_id
    assert b.key_id == _epoch(4, ["bob"]).period_keys(_epoch(4).period_of(T0)).key_id != a.key_id
    assert (a.slots, b.slots) == (1, 2)
    assert b.seq == 1 and b.link == hashlib.sha256(rest_a).digest()[:8]
    assert _plaintext(second, _epoch(4, ["bob"])) == GOP
    raises(ValueError, tagger.rebind, Epoch.of_pairing(PAIRING, "alice", "cam-2", 5, []))


def test_the_keys_are_those_of_the_period_of_the_capture_time():
    ep = _epoch(period_s=60)
    tagger = Tagger(ep, 1)
    boundary = (T0 // 60_000 + 1) * 60_000
    times = [boundary - 1, boundary, boundary + 59_999, boundary - 30_000, boundary + 60_000]
    seen = []
    for capture in times:
        tagged, _ = tagger.tag(GOP, 8, capture, 4000, 3)  # a segment may run into the next period
        got, signed, rest = _tag_of(tagged)
        keys = ep.period_keys(capture // 60_000)
        assert got.key_id == keys.key_id, capture
        assert got.macs[0] == hmac_sha256_pure(keys.slot_keys[0][1], signed + hashlib.sha256(rest).digest())[:16]
        assert _plaintext(tagged, ep) == GOP
        other = ep.period_keys(capture // 60_000 + 1)  # the next period's content key decrypts nothing
        assert protect.unprotect(rest, 1, got.clear_lead, other.content_key, 1, got.seq) != GOP
        seen.append(got.key_id)
    assert seen[0] == seen[3] and seen[1] == seen[2]
    assert len(set(seen)) == 3


def test_a_still_is_one_access_unit_tagged_alone_under_its_own_keystream():
    ep = _epoch(shares=("bob",))
    tagger = Tagger(ep, 9)
    tagger.tag(GOP, 8, T0, 1000, 3)
    head = _segment(AUD, SPS, PPS, IDR)  # the first access unit of the next segment
    still, tag = tagger.tag_still(head, 4, T0 + 1000, seq=1)
    got, signed, rest = _tag_of(still)
    assert got.still and not got.end_of_stream and got.flags == T.FLAG_STILL
    assert (got.seq, got.stream_id, got.pictures, got.duration_ms, got.units) == (1, 9, 1, 0, 4)
    assert got.link == T.GENESIS_LINK and got.slots == 2
    assert _plaintext(still, ep, protect.DOMAIN_STILL) == head
    # its keystream is not the segment's of the same seq (domain 01): no two ciphertexts share one
    segment_form, _ = Tagger(ep, 9, seq=1).tag(head, 4, T0 + 1000, 40, 1)
    assert rest != _tag_of(segment_form)[2]
    keys = ep.period_keys(ep.period_of(T0 + 1000))
    assert got.macs[1] == hmac_sha256_pure(keys.slot_keys[1][1], signed + hashlib.sha256(rest).digest())[:16]
    # it joins no chain: the stream's next segment is seq 1, linked to segment 0
    assert tagger.seq == 1
    nxt, _, _ = _tag_of(tagger.tag(GOP, 8, T0 + 1000, 1000, 3)[0])
    assert nxt.seq == 1 and nxt.link != T.GENESIS_LINK


def test_an_unreadable_slice_header_leaves_only_the_nal_header_in_clear():
    tagger = Tagger(_epoch(), 1)
    data = _segment(AUD, IDR, AUD, _p(1))  # no parameter sets: no slice header can be read
    tagged, _ = tagger.tag(data, 4, T0, 80, 2)
    got, _, rest = _tag_of(tagged)
    assert got.clear_lead == 1
    units = [rest[s:e] for s, e in nal.annexb_units(rest)]
    assert units[1][:1] == IDR[:1] and units[1][1:4] != IDR[1:4]  # the slice header itself is encrypted
    assert _plaintext(tagged, _epoch()) == data


def test_h265_tags():
    stream = H265Stream(log2_max_poc_lsb=16, st_rps=(EXPLICIT,))
    aud = h("460150")
    idr = stream.slice(kind=2, nal_type=19, data=bytes(range(1, 60)) + h("80"))[0]
    trail = stream.slice(kind=1, poc_lsb=1, rps_idx=0, data=bytes(range(7, 40)) + h("80"))[0]
    data = _segment(aud, stream.vps(), stream.sps(), stream.pps(), idr, aud, trail)
    ep = _epoch()
    tagged, _ = Tagger(ep, 1, codec=T.CODEC_H265).tag(data, 7, T0, 80, 2)
    units = [tagged[s:e] for s, e in nal.annexb_units(tagged)]
    assert units[0] == aud and units[1][:2] == h("4e01") and sei.tag_codec(units[1]) == 2
    got, _, _ = _tag_of(tagged)
    assert got.codec == T.CODEC_H265 and got.clear_lead == 6
    assert _plaintext(tagged, ep) == data
    no_params = _segment(aud, idr, aud, trail)
    tagged, _ = Tagger(ep, 2, codec=T.CODEC_H265).tag(no_params, 4, T0, 80, 2)
    assert _tag_of(tagged)[0].clear_lead == 2 and _plaintext(tagged, ep) == no_params


def test_units_and_any_annexb_framing_tag_as_the_canonical_form():
    units = [AUD, SPS, PPS, IDR, AUD, _p(1)]
    canonical, _ = Tagger(_epoch(), 3).tag(_segment(*units), 6, T0, 80, 2)
    parts, _ = Tagger(_epoch(), 3).tag_units(units, T0, 80, 2)
    assert b"".join(bytes(p) for p in parts) == canonical
    loose = b"\x00" + b"".join(b"\x00\x00\x01" + u + b"\x00" for u in units)  # 3-byte codes, zeros
    parts, tag = Tagger(_epoch(), 3).tag_annexb(loose, T0, 80, 2)
    assert b"".join(bytes(p) for p in parts) == canonical and tag.units == 6
    raises(ValueError, Tagger(_epoch(), 3).tag_units, [], T0, 80, 2)
    raises(ValueError, Tagger(_epoch(), 3).tag_annexb, b"\x00\x00", T0, 80, 2)


def test_refusals_change_no_state():
    tagger = Tagger(_epoch(), 1)
    raises(ValueError, tagger.tag, b"", 1, T0, 40, 1)
    raises(ValueError, tagger.tag, h("000001") + IDR, 1, T0, 40, 1)   # not 4-byte start codes
    raises(ValueError, tagger.tag, GOP, 8, T0, 40, 0)                 # no picture
    raises(ValueError, tagger.tag, GOP, 0, T0, 40, 1)                 # no unit
    raises(ValueError, tagger.tag, GOP, 8, -1, 40, 1)                 # before 1970
    raises(ValueError, tagger.tag, GOP, 8, 1 << 53, 40, 1)            # past the capture time's range
    assert tagger.seq == 0 and tagger.link == T.GENESIS_LINK
    assert _tag_of(tagger.tag(GOP, 8, T0, 40, 1)[0])[0].seq == 0


def test_seq_and_stream_id_at_the_top_of_their_ranges():
    tagger = Tagger(_epoch(), (1 << 48) - 1, seq=0xFFFFFFFF)
    got, _, _ = _tag_of(tagger.tag(GOP, 8, T0, 40, 1)[0])
    assert (got.seq, got.stream_id) == (0xFFFFFFFF, (1 << 48) - 1)
    raises(ValueError, tagger.tag, GOP, 8, T0, 40, 1)
    raises(ValueError, Tagger(_epoch(), 1 << 48).tag, GOP, 8, T0, 40, 1)
