"""protect.py: the protected form of a segment (docs/FORMAT.md section 4).

What is encrypted (picture units after the clear lead, but their last byte), the clear lead
(the largest slice header, the NAL header alone when one cannot be read), the escape that
keeps ciphertext free of start codes (against emulation prevention written out byte by byte
here), the keystream (each access unit from a fresh counter block, against AES-CTR computed
independently: OpenSSL on CPython, the mode's definition over the FIPS-197 AES on MicroPython),
and the way back (unprotect, and the Common Encryption bytes).

Slices come from _syntax_writer (an independent writer of H.264 and H.265 syntax that knows
where each slice header ends).
"""

from _support import aes_ctr_reference, generated, h, raises
from _syntax_writer import EXPLICIT, H264Stream, H265Stream, I, P, stored_bytes

from segbind_core import protect
from segbind_core.nal import annexb_units, to_annexb
from segbind_core.tag import CODEC_H264, CODEC_H265

KEY = h("000102030405060708090a0b0c0d0e0f")
STREAM_ID = 1795000000000
SEQ = 41
H264_AUD = h("09f0")
H265_AUD = h("460150")
H264_SEI = h("0605") + bytes((17,)) + bytes(range(1, 18)) + h("80")  # an ordinary SEI: stays clear
FILLER = h("0cffffff80")


def _zero_heavy(seed, n):
    """n bytes where zeros and 01..03 are common: what emulation prevention is about."""
    out = bytearray()
    for r in generated(seed, n):
        out.append(0 if r % 4 == 0 else (r >> 6) if r % 4 == 1 else r)
    return bytes(out)


def _escape_by_definition(zeros_before, data, next_byte):
    """H.264 7.4.1 emulation prevention, a byte at a time: a 03 after every two zero bytes that
    are followed by a byte 00 to 03; ``zeros_before`` zeros precede, ``next_byte`` follows."""
    out = bytearray()
    zeros = zeros_before
    for b in data:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    if zeros >= 2 and next_byte <= 3:
        out.append(3)
    return bytes(out)


def _start_code_emulations(unit):
    """Where a NAL unit holds 00 00 00, 00 00 01 or 00 00 02, or a 00 00 03 not followed by 00
    to 03 (H.264 7.4.1, H.265 7.4.2: none may occur in a NAL unit)."""
    found = []
    for i in range(len(unit) - 2):
        if unit[i] == 0 and unit[i + 1] == 0:
            if unit[i + 2] <= 2 or (unit[i + 2] == 3 and i + 3 < len(unit) and unit[i + 3] > 3):
                found.append(i)
    return found


# ---- the escape ------------------------------------------------------------------------------


def test_escape_is_emulation_prevention_and_unescape_inverts_it_in_every_zero_context():
    for i in range(60):
        data = _zero_heavy(b"escape %d" % i, 1 + i % 23)
        for zeros_before in (0, 1, 2):
            for next_byte in (0, 1, 2, 3, 4, 0x80, 0xFF):
                escaped = protect.escape(data, zeros_before, next_byte)
                assert escaped == _escape_by_definition(zeros_before, data, next_byte), (data, zeros_before, next_byte)
                assert protect.unescape(escaped, zeros_before) == data, (data, zeros_before, next_byte)
                assert protect.unescape(memoryview(escaped), zeros_before) == data


def test_escape_of_every_short_zero_pattern():
    """Every string of up to four bytes over 00, 01, 02, 03, 04: exhaustively."""
    alphabet = (0, 1, 2, 3, 4)
    strings = [b""]
    for _ in range(4):
        strings = [s + bytes((b,)) for s in strings for b in alphabet] + ([] if strings == [b""] else strings)
    strings = [s for s in set(strings) if s]
    assert len(strings) == 5 + 25 + 125 + 625
    for data in strings:
        for zeros_before in (0, 1, 2):
            for next_byte in (1, 2, 3, 4):
                escaped = protect.escape(data, zeros_before, next_byte)
                assert escaped == _escape_by_definition(zeros_before, data, next_byte)
                assert protect.unescape(escaped, zeros_before) == data
                unit = b"\x41" + b"\x00" * zeros_before + escaped + bytes((next_byte,))
                assert _start_code_emulations(unit) == [], unit


def test_the_escape_inserts_nothing_where_nothing_is_needed():
    data = generated(b"no zero pairs", 500).replace(b"\x00", b"\x01")
    assert protect.escape(data, 0, 0x80) == data
    assert protect.escape(b"\x04" + data, 2, 0x80) == b"\x04" + data
    assert protect.unescape(data, 0) == data
    assert protect.escape(h("0000"), 0, 0x80) == h("0000")     # two zeros before a byte over 03
    assert protect.escape(h("0000"), 0, 0x01) == h("000003")   # before the unit's last byte 01
    assert protect.escape(h("00"), 1, 0x02) == h("0003")       # one zero of the clear lead before it
    assert protect.escape(h("01"), 2, 0x80) == h("0301")       # both zeros in the clear lead


# ---- the clear lead ------------------------------------------------------------------------


def _h264():
    """An H.264 stream writer's parameter sets, an IDR I slice, and two P slices (the second with
    a longer header), each with its header's length in bits."""
    s = H264Stream()
    idr = s.slice(I, idr=True)
    p1 = s.slice(P, frame_num=1, poc_lsb=2)
    p2 = s.slice(P, frame_num=2, poc_lsb=4, qp_delta=-20)
    return s.sps(), s.pps(), idr, p1, p2


def _h265(**settings):
    s = H265Stream(log2_max_poc_lsb=16, st_rps=(EXPLICIT,), **settings)
    return s, [s.vps(), s.sps(), s.pps()]


def test_clear_lead_is_the_largest_slice_header_of_the_segment():
    sps, pps, idr, p1, p2 = _h264()
    sizes = [stored_bytes(unit, bits) for unit, bits in (idr, p1, p2)]  # the writer's own count
    assert sizes == [4, 4, 5]
    segment = to_annexb([H264_AUD, sps, pps, idr[0], H264_AUD, p1[0], H264_AUD, p2[0]])
    assert protect.clear_lead(segment, CODEC_H264) == 5
    assert protect.clear_lead(to_annexb([H264_AUD, sps, pps, idr[0], H264_AUD, p1[0]]), CODEC_H264) == 4
    s, params = _h265()
    i_slice, i_bits = s.slice(kind=2, nal_type=19)
    p_slice, p_bits = s.slice(kind=1, poc_lsb=5, rps_idx=0)
    assert (stored_bytes(i_slice, i_bits), stored_bytes(p_slice, p_bits)) == (4, 6)
    segment = to_annexb([H265_AUD] + params + [i_slice, H265_AUD, p_slice])
    assert protect.clear_lead(segment, CODEC_H265) == 6


def test_clear_lead_is_the_nal_header_alone_when_a_slice_header_cannot_be_read():
    sps, pps, idr, p1, _ = _h264()
    no_pps = to_annexb([H264_AUD, sps, idr[0], H264_AUD, p1[0]])
    assert protect.clear_lead(no_pps, CODEC_H264) == 1
    damaged = to_annexb([H264_AUD, sps, pps, idr[0], H264_AUD, h("41ff")])  # a P slice cut short
    assert protect.clear_lead(damaged, CODEC_H264) == 1
    s, params = _h265()
    i_slice, _ = s.slice(kind=2, nal_type=19)
    assert protect.clear_lead(to_annexb([H265_AUD, i_slice]), CODEC_H265) == 2
    assert protect.clear_lead(to_annexb([H265_AUD] + params + [i_slice, h("0201ff")]), CODEC_H265) == 2


# ---- what is encrypted -----------------------------------------------------------------------


def _units(data):
    return [bytes(data[s:e]) for s, e in annexb_units(data)]


def _joined(parts):
    return b"".join(bytes(p) for p in parts)


def test_only_picture_units_are_encrypted_after_the_lead_and_before_their_last_byte():
    sps, pps, idr, p1, p2 = _h264()
    plain = [H264_AUD, sps, pps, H264_SEI, idr[0], FILLER, H264_AUD, p1[0], H264_AUD, p2[0], h("0b")]
    segment = to_annexb(plain)
    lead = protect.clear_lead(segment, CODEC_H264)
    protected = _units(_joined(protect.protect(segment, CODEC_H264, lead, KEY, STREAM_ID, SEQ)))
    assert len(protected) == len(plain)
    changed = 0
    for before, after in zip(plain, protected):
        picture = 1 <= before[0] & 0x1F <= 5
        if not picture or len(before) - 1 <= lead:  # in clear: other units, units within the lead
            assert after == before
            continue
        changed += 1
        assert after[:lead] == before[:lead] and after[-1] == before[-1]
        assert after[0] == before[0]  # the same NAL type: a valid unit of the same kind
        cipher = protect.protected_bytes(after, lead)
        assert len(cipher) == len(before) - 1 - lead and cipher != before[lead:-1]
    assert changed == 1  # the P slices are shorter than lead + 2 bytes: they stay clear
    assert len(p1[0]) - 1 <= lead and len(p2[0]) - 1 <= lead


def _h265_segment(plan, zeros_at_lead=False, zero_heavy=False, seed=b"h265 data"):
    """(an H.265 segment, its clear lead): access units (AUD first; the first an IDR with its
    parameter sets, the others P pictures of one or more slices), each picture unit with as
    many protected bytes as ``plan`` says (a list per access unit; None: a unit within the
    lead). Slice data: bytes without two zeros in a row, or (``zero_heavy``) full of them, so
    that lengths then vary with the escape. With ``zeros_at_lead``, the IDR's slice data puts
    two zero bytes at the end of its clear lead."""
    s, params = _h265()

    def picture(a, u, data, within_lead=False):
        if a == 0 and u == 0:
            return s.slice(kind=2, nal_type=19, data=data)
        if within_lead:  # an IDR_N_LP: a shorter header than a P slice's
            return s.slice(kind=2, nal_type=20, data=data)
        return s.slice(kind=1, poc_lsb=a, rps_idx=0, first=u == 0, address=u, data=data)

    heads = [[stored_bytes(*picture(a, u, b"\x80", au[u] is None)) for u in range(len(au))]
             for a, au in enumerate(plan)]
    lead = max(max(row) for row in heads)
    out = []
    for a, au in enumerate(plan):
        out.append(H265_AUD)
        if a == 0:
            out += params
        for u, protected in enumerate(au):
            size = 1 if protected is None else protected + lead - heads[a][u]
            raw = generated(seed + b" %d %d" % (a, u), size)
            data = (_zero_heavy(seed + b" %d %d" % (a, u), size) if zero_heavy
                    else raw.replace(b"\x00", b"\x5a")) + b"\x80"
            if a == 0 and u == 0 and zeros_at_lead:
                pad = lead - heads[a][u]
                assert pad >= 2
                data = b"\x55" * (pad - 2) + h("000055") + data[pad + 1:]
            out.append(picture(a, u, data, protected is None)[0])
            assert (len(out[-1]) - 1 <= lead) == (protected is None)
    return to_annexb(out), lead


def _access_units(units, codec):
    """Units grouped by access unit (each begins at a delimiter)."""
    aud = 9 if codec == CODEC_H264 else 35
    groups = []
    for unit in units:
        kind = unit[0] & 0x1F if codec == CODEC_H264 else (unit[0] >> 1) & 0x3F
        if kind == aud or not groups:
            groups.append([])
        groups[-1].append(unit)
    return groups


def _expected_ciphertexts(plain_units, codec, lead, key, domain, stream_id, seq):
    """FORMAT.md 4.3 computed here: access unit a's protected bytes (its picture units' ranges,
    joined) from counter block initial + sum of ceil(protected bytes / 16) of those before it,
    by the reference AES-CTR. Returns each picture unit's ciphertext, in order."""
    initial = int.from_bytes(bytes((domain,)) + stream_id.to_bytes(6, "big") + seq.to_bytes(4, "big")
                             + bytes(5), "big")
    vcl = (lambda u: 1 <= u[0] & 0x1F <= 5) if codec == CODEC_H264 else (lambda u: (u[0] >> 1) & 0x3F < 32)
    blocks = 0
    out = []
    for group in _access_units(plain_units, codec):
        ranges = [u[lead:-1] for u in group if vcl(u) and len(u) - 1 > lead]
        joined = b"".join(ranges)
        cipher = aes_ctr_reference(key, initial + blocks, joined)
        at = 0
        for r in ranges:
            out.append(cipher[at:at + len(r)])
            at += len(r)
        blocks += (len(joined) + 15) // 16
    return out


def test_each_access_unit_begins_at_a_fresh_counter_block():
    # protected bytes per access unit: 40 (a partial last block), 16 + 7 across two slices (the
    # keystream continues from one to the next), none (a unit within the lead), 32 (whole
    # blocks: nothing skipped), 5
    segment, lead = _h265_segment([[40], [16, 7], [None], [32], [5]])
    assert protect.clear_lead(segment, CODEC_H265) == lead
    plain = _units(segment)
    for domain in (protect.DOMAIN_SEGMENT, protect.DOMAIN_STILL):
        protected = _units(_joined(protect.protect(segment, CODEC_H265, lead, KEY, STREAM_ID, SEQ, domain)))
        got = [protect.protected_bytes(u, lead) for u in protected if (u[0] >> 1) & 0x3F < 32 and len(u) - 1 > lead]
        expected = _expected_ciphertexts(plain, CODEC_H265, lead, KEY, domain, STREAM_ID, SEQ)
        assert [len(c) for c in expected] == [40, 16, 7, 32, 5]
        assert got == expected, domain
    # the counter blocks' domains keep a still's keystream apart from its segment's
    segment_form = _joined(protect.protect(segment, CODEC_H265, lead, KEY, STREAM_ID, SEQ))
    still_form = _joined(protect.protect(segment, CODEC_H265, lead, KEY, STREAM_ID, SEQ, protect.DOMAIN_STILL))
    assert segment_form != still_form


def test_counter_block_layout():
    assert protect.counter_block(0, 0x010203040506, 0x0708090A) == h("00 010203040506 0708090a 0000000000")
    assert protect.counter_block(1, (1 << 48) - 1, 0xFFFFFFFF) == h("01 ffffffffffff ffffffff 0000000000")
    assert protect.counter_block(protect.DOMAIN_STILL, 0, 0)[0] == 1 and protect.DOMAIN_SEGMENT == 0
    for stream_id, seq in ((1 << 48, 0), (0, 1 << 32), (-1, 0), (0, -1)):  # the tag's ranges
        raises(ValueError, protect.counter_block, 0, stream_id, seq)


def _crafted_idr_segment():
    """(segment, lead, where the protected range begins in the IDR): an H.265 segment whose IDR
    slice data is chosen so that, under KEY, its ciphertext needs every escape: a first byte 01
    after the two zero bytes that end the clear lead, 00 00 00, 00 00 01, 00 00 02 and 00 00 03
    inside, and 00 00 at its end before the unit's last byte 01 (a stop bit)."""
    segment, lead = _h265_segment([[60], [20]], zeros_at_lead=True)
    units = _units(segment)
    at = next(i for i, u in enumerate(units) if (u[0] >> 1) & 0x3F == 19)
    idr = bytearray(units[at])
    idr[-1] = 0x01
    n = len(idr)
    keystream = aes_ctr_reference(KEY, int.from_bytes(protect.counter_block(0, STREAM_ID, SEQ), "big"),
                                  bytes(n - 1 - lead))
    targets = {0: 0x01, n - 3 - lead: 0, n - 2 - lead: 0}
    for start, third in ((10, 0), (20, 1), (30, 2), (40, 3)):
        targets.update({start: 0, start + 1: 0, start + 2: third})
    for offset, cipher in targets.items():
        idr[lead + offset] = keystream[offset] ^ cipher
    assert idr[lead - 2:lead] == h("0000") and idr[lead] > 3
    assert _start_code_emulations(bytes(idr)) == []  # the plaintext unit itself is valid
    units[at] = bytes(idr)
    return to_annexb(units), lead


def test_the_escape_of_a_crafted_ciphertext_at_its_start_inside_and_at_its_end():
    segment, lead = _crafted_idr_segment()
    assert protect.clear_lead(segment, CODEC_H265) == lead
    form = _joined(protect.protect(segment, CODEC_H265, lead, KEY, STREAM_ID, SEQ))
    idr = [u for u in _units(form) if (u[0] >> 1) & 0x3F == 19][0]
    escaped = idr[lead:-1]
    assert escaped[:2] == h("0301")                                   # after the lead's two zeros
    for run in ("0000 03 00", "0000 03 01", "0000 03 02", "0000 03 03"):  # inside
        assert h(run) in escaped, run
    assert escaped[-3:] == h("000003") and idr[-1] == 0x01            # before the last byte
    assert len(form) - len(segment) == 6
    for unit in _units(form):
        assert _start_code_emulations(unit) == [], unit.hex()
    assert protect.unprotect(form, CODEC_H265, lead, KEY, STREAM_ID, SEQ) == segment
    assert protect.protected_bytes(idr, lead)[:1] == h("01")


def test_the_protected_form_holds_no_start_code_whatever_the_ciphertext():
    """Many keys over zero-heavy slice data, the clear lead ending in zero bytes: every unit of
    the protected form is a valid NAL unit of its type, the form splits into as many units,
    and it decrypts back."""
    segment, lead = _h265_segment([[60], [30, 20]], zeros_at_lead=True, zero_heavy=True)
    plain = _units(segment)
    assert protect.clear_lead(segment, CODEC_H265) == lead
    idr = [u for u in plain if (u[0] >> 1) & 0x3F == 19][0]
    assert idr[lead - 2:lead] == h("0000")  # the zero bytes before the ciphertext count in its escape
    for i in range(40):
        key = generated(b"key %d" % i, 16)
        form = _joined(protect.protect(segment, CODEC_H265, lead, key, i, 0))
        units = _units(form)
        assert [u[:2] for u in units] == [u[:2] for u in plain]
        for unit in units:
            assert _start_code_emulations(unit) == [], (i, unit.hex())
        assert protect.unprotect(form, CODEC_H265, lead, key, i, 0) == segment


def test_unprotect_inverts_protect_and_leaves_the_tag_and_other_units_alone():
    sps, pps, idr, p1, _ = _h264()
    segment = to_annexb([H264_AUD, sps, pps, H264_SEI, idr[0], H264_AUD, p1[0]])
    lead = 3  # any lead the tag carries: here less than the slice headers
    parts = protect.protect(segment, CODEC_H264, lead, KEY, STREAM_ID, SEQ)
    form = _joined(parts)
    assert form != segment and len(parts) >= 3
    assert protect.unprotect(form, CODEC_H264, lead, KEY, STREAM_ID, SEQ) == segment
    assert protect.unprotect(bytearray(form), CODEC_H264, lead, KEY, STREAM_ID, SEQ) == segment
    # another key, stream, seq or domain gives other bytes (a stranger's guess decrypts nothing)
    for args in ((generated(b"k", 16), STREAM_ID, SEQ, 0), (KEY, STREAM_ID + 1, SEQ, 0), (KEY, STREAM_ID, SEQ + 1, 0),
                 (KEY, STREAM_ID, SEQ, 1)):
        assert protect.unprotect(form, CODEC_H264, lead, args[0], args[1], args[2], args[3]) != segment


def test_common_encryption_bytes_and_the_protected_form_are_inverse():
    segment, lead = _h265_segment([[70], [25, 18], [None], [40]], zeros_at_lead=True, zero_heavy=True, seed=b"cenc")
    for unit in _units(_joined(protect.protect(segment, CODEC_H265, lead, KEY, 7, 9))):
        cipher = protect.protected_bytes(unit, lead)
        assert protect.protected_form(unit, lead, cipher) == unit
        if len(unit) - 1 <= lead:
            assert cipher == b""
