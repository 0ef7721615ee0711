"""nal.py: Annex-B scanning, length-prefixed framing, emulation prevention."""

from _support import h

from segbind_core import nal


def _units(buf, *args):
    return [bytes(buf[s:e]) for s, e in nal.annexb_units(buf, *args)]


def test_annexb_four_byte_start_codes():
    buf = h("00000001 09f0 00000001 6742c01e 00000001 68ce3c80")
    assert nal.annexb_units(buf) == [(4, 6), (10, 14), (18, 22)]
    assert _units(buf) == [h("09f0"), h("6742c01e"), h("68ce3c80")]


def test_annexb_three_byte_start_codes_and_mixed():
    buf = h("000001 6588 000001 419a 00000001 0c ff80")
    assert _units(buf) == [h("6588"), h("419a"), h("0cff80")]


def test_annexb_trailing_zero_bytes_are_not_part_of_a_unit():
    assert _units(h("000001 658800 0000")) == [h("6588")]
    assert _units(h("000001 6588 00000000 000001 41")) == [h("6588"), h("41")]
    assert _units(h("000001 650088 00")) == [h("650088")]


def test_annexb_empty_units_are_skipped():
    assert _units(h("000001 000001 67")) == [h("67")]
    assert _units(h("000001 00000001 67 000001")) == [h("67")]
    assert _units(h("000001")) == []
    assert _units(h("00000001 0000")) == []


def test_annexb_leading_garbage():
    buf = h("fffe 000001 67 000001 68")
    assert _units(buf) == [h("67"), h("68")]
    assert nal.leading_garbage(buf)
    assert not nal.leading_garbage(h("00000001 67"))
    assert not nal.leading_garbage(h("0000000000 000001 67"))
    assert nal.leading_garbage(h("1234"))  # no start code at all
    assert nal.annexb_units(h("1234")) == []
    assert not nal.leading_garbage(b"")
    assert nal.annexb_units(b"") == []


def test_annexb_start_and_end_bounds():
    buf = h("000001 6742 000001 68ce 000001 6588")
    assert nal.annexb_units(buf, 5) == [(8, 10), (13, 15)]
    assert nal.annexb_units(buf, 0, 10) == [(3, 5), (8, 10)]
    assert nal.annexb_units(bytearray(buf)) == nal.annexb_units(buf)


def test_to_annexb_round_trip():
    units = [h("09f0"), h("6742c01e"), memoryview(h("65888400"))[0:3]]
    buf = nal.to_annexb(units)
    assert buf == h("00000001 09f0 00000001 6742c01e 00000001 658884")
    assert _units(buf) == [h("09f0"), h("6742c01e"), h("658884")]


def test_escape_edge_cases():
    esc = nal.escape_rbsp
    assert esc(h("000000")) == h("00000300")
    assert esc(h("000001")) == h("00000301")
    assert esc(h("000002")) == h("00000302")
    assert esc(h("000003")) == h("00000303")  # a 03 already present is escaped too
    assert esc(h("000004")) == h("000004")
    assert esc(h("00000000")) == h("0000030000")
    assert esc(h("000000000000")) == h("0000030000030000")
    assert esc(h("0000")) == h("0000")          # trailing zeros: nothing follows them
    assert esc(h("ab0000")) == h("ab0000")
    assert esc(h("00ff00000180")) == h("00ff0000030180")
    assert esc(b"") == b""


def test_unescape_edge_cases():
    un = nal.unescape_rbsp
    assert un(h("00000300")) == h("000000")
    assert un(h("00000303")) == h("000003")
    assert un(h("0003")) == h("0003")                 # one zero: not an EP byte
    assert un(h("000003")) == h("0000")               # trailing EP byte
    assert un(h("0000030000030000")) == h("000000000000")
    assert un(h("0000000003")) == h("00000000")       # zeros run longer than two
    assert un(h("0000030303")) == h("00000303")       # zero count restarts after removal
    assert un(memoryview(h("ff00000301"))[1:]) == h("000001")
    assert un(b"") == b""


def _reference_unescape(data) -> bytes:
    """H.264 7.3.1 read loop: drop a 03 that follows two zeros (counted since the last drop)."""
    out = []
    zeros = 0
    for b in data:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _all_sequences(alphabet, max_len):
    seqs = [b""]
    frontier = [b""]
    for _ in range(max_len):
        frontier = [s + bytes((a,)) for s in frontier for a in alphabet]
        seqs.extend(frontier)
    return seqs


def test_escape_unescape_exhaustive_short_sequences():
    for x in _all_sequences((0, 1, 3, 4, 0xFF), 6):
        y = nal.escape_rbsp(x)
        assert nal.unescape_rbsp(y) == x, x
        assert _reference_unescape(y) == x, x
        # no start-code emulation survives, and every 00 00 03 is an inserted byte
        for i in range(len(y) - 2):
            if y[i] == 0 and y[i + 1] == 0 and y[i + 2] <= 3:
                assert y[i + 2] == 3, (x, y)
                assert i + 3 < len(y) and y[i + 3] <= 3, (x, y)


def test_unescape_agrees_with_reference_on_arbitrary_input():
    for y in _all_sequences((0, 3, 1), 7):
        assert nal.unescape_rbsp(y) == _reference_unescape(y), y


def test_escaped_length_and_the_last_one_bit():
    escaped_length, last_one_bit = nal.escaped_length, nal.last_one_bit
    # 00 00 03 01: the 03 is emulation prevention; RBSP 00 00 01
    assert [escaped_length(h("00000301"), n) for n in range(4)] == [0, 1, 2, 4]
    assert escaped_length(h("aa0000030000030001"), 6) == 8  # both 03 before the sixth RBSP byte
    assert escaped_length(b"", 0) == 0
    assert last_one_bit(h("0080")) == 8 and last_one_bit(h("0301")) == 15 and last_one_bit(h("a00000")) == 2
    assert last_one_bit(b"") == -1 and last_one_bit(h("0000")) == -1
