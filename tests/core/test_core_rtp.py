"""rtp.py: RTP and RTCP, H.264 (RFC 6184) and H.265 (RFC 7798) depacketization, reordering,
losses (never an access unit that lost a packet), capture times, bounds."""

import struct

from _support import raises

from segbind_core import rtp
from segbind_core.rtp import AccessUnit, Loss, VideoReceiver
from segbind_core.tag import CODEC_H264, CODEC_H265

# H.264 units: an AUD, SPS, PPS, an IDR slice (first_mb_in_slice 0), a P slice, a second slice
AUD = b"\x09\xf0"
SPS = b"\x67\x42\xc0\x1e\x95\xa8\x28\x0f\x69\xb8"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88" + bytes(range(1, 200))
P1 = b"\x41\x9a" + bytes(range(3, 90))
P1_SECOND_SLICE = b"\x41\x5a" + bytes(range(5, 60))  # first_mb_in_slice > 0
# H.265 units: VPS, SPS, PPS, AUD, an IDR_W_RADL picture, a TRAIL_R picture
VPS5 = b"\x40\x01\x0c\x01\xff\xff"
SPS5 = b"\x42\x01\x01\x01\x60\x00"
PPS5 = b"\x44\x01\xc1\x72\xb4"
AUD5 = b"\x46\x01\x50"
IDR5 = b"\x26\x01\xaf" + bytes(range(7, 180))
TRAIL5 = b"\x02\x01\xd0" + bytes(range(9, 70))


def packet(seq, ts, payload, marker=False, pt=96, ssrc=0x1234ABCD):
    return bytes([0x80, (0x80 if marker else 0) | pt]) + struct.pack("!HII", seq & 0xFFFF, ts & 0xFFFFFFFF,
                                                                     ssrc) + payload


def stap_a(units):
    out = bytes([0x18 | (units[0][0] & 0x60)])
    for u in units:
        out += struct.pack("!H", len(u)) + u
    return out


def fu_a(unit, pieces):
    """``unit`` cut into ``pieces`` FU-A payloads."""
    body = unit[1:]
    step = (len(body) + pieces - 1) // pieces
    out = []
    for k in range(pieces):
        chunk = body[k * step:(k + 1) * step]
        flags = (0x80 if k == 0 else 0) | (0x40 if k == pieces - 1 else 0)
        out.append(bytes([(unit[0] & 0xE0) | 28, flags | (unit[0] & 0x1F)]) + chunk)
    return out


def ap(units):
    out = bytes([48 << 1, 1])
    for u in units:
        out += struct.pack("!H", len(u)) + u
    return out


def fu5(unit, pieces):
    body = unit[2:]
    step = (len(body) + pieces - 1) // pieces
    out = []
    for k in range(pieces):
        flags = (0x80 if k == 0 else 0) | (0x40 if k == pieces - 1 else 0)
        out.append(bytes([(unit[0] & 0x81) | (49 << 1), unit[1], flags | ((unit[0] >> 1) & 0x3F)])
                   + body[k * step:(k + 1) * step])
    return out


def picture_packets(seq, ts, payloads):
    """Packets of one access unit, the marker on the last."""
    return [packet(seq + k, ts, p, marker=(k == len(payloads) - 1)) for k, p in enumerate(payloads)]


def h264_stream(seq=100, ts=90000):
    """Three access units: IDR (AUD+SPS+PPS in a STAP-A, the slice in 3 FU-A), P, P (two slices)."""
    pictures = [
        [stap_a([AUD, SPS, PPS])] + fu_a(IDR, 3),
        [stap_a([AUD, P1])],
        [AUD, P1, P1_SECOND_SLICE],
    ]
    units = [[AUD, SPS, PPS, IDR], [AUD, P1], [AUD, P1, P1_SECOND_SLICE]]
    packets = []
    for k, payloads in enumerate(pictures):
        packets += picture_packets(seq + len(packets), ts + 3600 * k, payloads)
    return packets, units


def closed(packets, units):
    """The stream with the next access unit's first packet after it: every access unit in it
    ends at a timestamp change, whatever the sender's marker bits are worth."""
    last = packets[-1]
    seq = ((last[2] << 8) | last[3]) + 1
    ts = int.from_bytes(last[4:8], "big") + 3600
    return packets + [packet(seq, ts, AUD)]


def feed(receiver, packets, now_ms=1000):
    events = []
    for p in packets:
        events += receiver.rtp(p, now_ms)
    return events


def units_of(events):
    return [e.units for e in events if isinstance(e, AccessUnit)]


def losses(events):
    return [e for e in events if isinstance(e, Loss)]


# -- packets ----------------------------------------------------------------------------------

def test_parse_rtp_header_fields_csrc_extension_padding():
    p = rtp.parse_rtp(packet(7, 0xDEADBEEF, b"\x41\x9a", marker=True))
    assert (p.seq, p.timestamp, p.marker, p.payload_type, p.ssrc) == (7, 0xDEADBEEF, True, 96, 0x1234ABCD)
    assert bytes(p.payload) == b"\x41\x9a"
    # two CSRCs, a one-word extension, two bytes of padding
    raw = bytes([0xB2, 96]) + struct.pack("!HII", 1, 2, 3) + bytes(8) + b"\xbe\xde\x00\x01" + bytes(4) \
        + b"\x65\x88" + b"\x00\x02"
    assert bytes(rtp.parse_rtp(raw).payload) == b"\x65\x88"


def test_parse_rtp_refuses_what_is_not_rtp():
    for bad in (b"", bytes(11), bytes([0x40, 96]) + bytes(10),              # short, version 1
                bytes([0xA0, 96]) + bytes(10),                               # padding count 0
                bytes([0xA0, 96]) + bytes(9) + b"\x20",                      # padding past the header
                bytes([0x90, 96]) + bytes(10) + b"\x00\x00",                 # extension cut short
                bytes([0x8F, 96]) + bytes(10)):                              # 15 CSRCs missing
        assert raises(rtp.RtpError, rtp.parse_rtp, bad).reason == rtp.MALFORMED


def test_parse_rtcp_sender_report_and_bye():
    ntp_seconds = 1_700_000_000 + rtp.NTP_UNIX_OFFSET_S
    sr = bytes([0x80, 200]) + struct.pack("!HIIIIII", 6, 0x1234ABCD, ntp_seconds, 0x80000000, 4242, 10, 1000)
    bye = bytes([0x81, 203]) + struct.pack("!HI", 1, 0x1234ABCD)
    reports, byes = rtp.parse_rtcp(sr + bye)
    assert [(r.ssrc, r.ntp_ms, r.rtp_timestamp) for r in reports] == [(0x1234ABCD, 1_700_000_000_500, 4242)]
    assert byes == [0x1234ABCD]
    for bad in (b"\x80", sr[:-4] + b"", bytes([0x40, 200, 0, 0]), bytes([0x82, 203, 0, 1, 0, 0, 0, 0])):
        assert raises(rtp.RtpError, rtp.parse_rtcp, bad).reason == rtp.MALFORMED


# -- H.264 --------------------------------------------------------------------------------------

def test_h264_single_stap_a_fu_a_give_whole_access_units_at_the_next_timestamp():
    packets, units = h264_stream()
    r = VideoReceiver(CODEC_H264, 96)
    events = feed(r, packets)
    # the last access unit is given when the next one begins, or at the end of the session
    assert units_of(events) == units[:2]
    assert units_of(r.end()) == [units[2]]  # its marker proved trustworthy in a multi-packet unit
    assert r.lost == 0 and not losses(events)


def test_h264_interleaved_mode_and_reserved_types():
    r = VideoReceiver(CODEC_H264)
    events = feed(r, [packet(1, 0, AUD + b""), packet(2, 0, b"\x1a\x00", marker=True),   # MTAP16: refused
                      packet(3, 3600, AUD), packet(4, 3600, b"\x1e\x00"), packet(5, 3600, P1, marker=True),
                      packet(6, 7200, AUD)])
    assert [e.why for e in losses(events)] == [rtp.MALFORMED]
    assert units_of(events) == [[AUD, P1]]  # type 30 is reserved: ignored


def test_h264_damaged_and_broken_payloads_lose_their_access_unit():
    bad_payloads = [
        b"\xe5\x88",                                  # forbidden bit set
        stap_a([AUD])[:-1],                           # an aggregated unit cut short
        b"\x18\x00\x00",                              # an aggregated unit of 0 bytes
        b"\x1c",                                      # FU-A without its header
        b"\x1c\x1c\x00",                              # FU-A of an FU-A
        fu_a(IDR, 3)[1],                              # a middle fragment without its start
    ]
    for bad in bad_payloads:
        r = VideoReceiver(CODEC_H264)
        events = feed(r, [packet(1, 0, AUD), packet(2, 0, bad), packet(3, 0, P1, marker=True),
                          packet(4, 3600, AUD), packet(5, 3600, P1, marker=True), packet(6, 7200, AUD)])
        assert [e.why for e in losses(events)] == [rtp.MALFORMED], bad
        assert units_of(events) == [[AUD, P1]], bad  # only the access unit after it


def test_h264_fragment_not_ended_before_the_next_timestamp_is_a_loss():
    frags = fu_a(IDR, 3)
    r = VideoReceiver(CODEC_H264)
    events = feed(r, [packet(1, 0, AUD), packet(2, 0, frags[0]), packet(3, 0, frags[1]),
                      packet(4, 3600, AUD), packet(5, 3600, P1, marker=True), packet(6, 7200, AUD)])
    assert [e.why for e in losses(events)] == [rtp.MALFORMED]
    assert units_of(events) == [[AUD, P1]]


# -- H.265 --------------------------------------------------------------------------------------

def test_h265_single_ap_fu():
    r = VideoReceiver(CODEC_H265, 96)
    packets = picture_packets(10, 0, [ap([AUD5, VPS5, SPS5, PPS5])] + fu5(IDR5, 4))
    packets += picture_packets(15, 3000, [AUD5, TRAIL5])
    packets += [packet(17, 6000, AUD5)]
    events = feed(r, packets)
    assert units_of(events) == [[AUD5, VPS5, SPS5, PPS5, IDR5], [AUD5, TRAIL5]]
    assert not losses(events)


def test_h265_refuses_paci_damage_and_bad_fragments():
    for bad in (bytes([50 << 1, 1, 0, 0]), b"\xa6\x01\xaf", b"\x26\x00\xaf", bytes([49 << 1, 1, 0x80 | 48]),
                fu5(IDR5, 3)[2], ap([AUD5])[:-1]):
        r = VideoReceiver(CODEC_H265)
        events = feed(r, [packet(1, 0, AUD5), packet(2, 0, bad), packet(3, 0, TRAIL5, marker=True),
                          packet(4, 3000, AUD5), packet(5, 3000, TRAIL5, marker=True), packet(6, 6000, AUD5)])
        assert [e.why for e in losses(events)] == [rtp.MALFORMED], bad
        assert units_of(events) == [[AUD5, TRAIL5]], bad
    r = VideoReceiver(CODEC_H265)  # reserved types 51-63 are ignored
    events = feed(r, [packet(1, 0, AUD5), packet(2, 0, bytes([55 << 1, 1, 9])), packet(3, 0, TRAIL5, marker=True),
                      packet(4, 3000, AUD5)])
    assert units_of(events) == [[AUD5, TRAIL5]] and not losses(events)


# -- losses -------------------------------------------------------------------------------------

def test_a_packet_lost_inside_a_picture_loses_it_and_resumes_at_the_next_access_unit():
    packets, units = h264_stream()
    stream = closed(packets + picture_packets(108, 90000 + 3 * 3600, [P1]), units)
    expected = units + [[P1]]
    starts = [0, 4, 5, 8, 9]  # each access unit's first packet in ``stream``
    for lost in range(len(stream) - 1):
        r = VideoReceiver(CODEC_H264, first_seq=100)
        events = feed(r, stream[:lost] + stream[lost + 1:]) + r.end()
        given = units_of(events)
        # every access unit given is one of the stream's, whole, in order
        assert all(u in expected for u in given), lost
        assert [expected.index(u) for u in given] == sorted(expected.index(u) for u in given), lost
        hit = max(k for k in range(len(expected)) if starts[k] <= lost)
        assert expected[hit] not in given, lost  # the picture that lost a packet never comes out
        assert losses(events)[0].why == rtp.LOST and losses(events)[0].packets == 1, lost
        # what comes before the loss is given; after it, from the next delimiter on
        assert given[:hit] == expected[:hit] or hit and given[:hit - 1] == expected[:hit - 1], lost


def test_marker_bits_believed_only_once_proven():
    packets, units = h264_stream()
    # The IDR (4 packets, marker on the last) proves the markers: a loss just after the
    # second picture's marker keeps that picture.
    r = VideoReceiver(CODEC_H264, first_seq=100)
    events = feed(r, packets[:5] + packets[6:]) + r.end()  # the third picture's first packet lost
    assert units_of(events) == units[:2]
    # Before any proof, a picture that ended at its marker is not believed whole at a loss.
    r = VideoReceiver(CODEC_H264, first_seq=100)
    events = feed(r, packets[:4] + packets[5:6]) + r.end()  # IDR (its end not yet proven), then a loss
    assert units_of(events) == [] and losses(events)[0].why == rtp.LOST


def test_a_sender_that_marks_every_unit_is_never_believed():
    r = VideoReceiver(CODEC_H264, first_seq=1)
    stream = [packet(1, 0, AUD, True), packet(2, 0, SPS, True), packet(3, 0, PPS, True), packet(4, 0, IDR, True),
              packet(5, 3600, AUD, True), packet(6, 3600, P1, True),
              # the second slice of the next picture is lost: its first slice must not come out
              packet(7, 7200, SPS, True), packet(8, 7200, P1, True),
              packet(10, 10800, SPS, True), packet(11, 10800, P1, True), packet(12, 14400, SPS, True)]
    events = feed(r, stream) + r.end()
    # The picture at 7200 goes with the loss; so does the one at 10800 (the lost packet might
    # have been its head), and the last one (its end is never known).
    assert units_of(events) == [[AUD, SPS, PPS, IDR], [AUD, P1]]
    assert [e.why for e in losses(events)] == [rtp.LOST, rtp.ENDED]


def test_reordering_within_the_window_is_repaired_beyond_it_is_a_loss():
    packets, units = h264_stream()
    swapped = packets[:2] + [packets[3], packets[2]] + packets[4:]
    r = VideoReceiver(CODEC_H264, first_seq=100)
    events = feed(r, swapped) + r.end()
    assert units_of(events) == units and not losses(events)
    r = VideoReceiver(CODEC_H264, first_seq=100, reorder_packets=2)
    late = packets[:1] + packets[2:6] + [packets[1]] + packets[6:]  # packet 1 arrives 4 packets late
    events = feed(r, closed(late, units)) + r.end()
    assert [e.why for e in losses(events)] == [rtp.LOST, rtp.ENDED]
    assert units_of(events) == units[1:] and r.late == 1


def test_duplicates_are_ignored():
    packets, units = h264_stream()
    doubled = []
    for p in packets:
        doubled += [p, p]
    r = VideoReceiver(CODEC_H264, first_seq=100)
    events = feed(r, doubled) + r.end()
    assert units_of(events) == units and not losses(events) and r.late == len(packets)


def test_first_sequence_number_from_rtp_info():
    packets, units = h264_stream()
    r = VideoReceiver(CODEC_H264, first_seq=100)
    events = feed(r, [packet(99, 0, AUD)] + packets)  # before the session's start: ignored
    assert units_of(events) == units[:2] and r.late == 1
    r = VideoReceiver(CODEC_H264, first_seq=98, reorder_packets=4)  # its first two packets never come
    events = feed(r, closed(packets, units))
    assert [e.why for e in losses(events)] == [rtp.LOST] and losses(events)[0].packets == 2
    assert units_of(events) == units  # the first packet that came begins with a delimiter


def test_a_session_joined_inside_an_access_unit_starts_at_the_next_one():
    packets, units = h264_stream()
    r = VideoReceiver(CODEC_H264)  # no RTP-Info: the first packet is a middle FU-A fragment
    events = feed(r, closed(packets[2:], units))
    assert units_of(events) == units[1:] and not losses(events)
    r = VideoReceiver(CODEC_H264)  # the first packet begins an access unit: taken
    events = feed(r, closed(packets, units))
    assert units_of(events) == units
    r = VideoReceiver(CODEC_H264)  # a first slice that is not a picture's first: not taken
    events = feed(r, closed([packet(1, 0, P1_SECOND_SLICE), packet(2, 0, P1_SECOND_SLICE, True),
                             packet(3, 3600, SPS), packet(4, 3600, P1, True)], units))
    assert units_of(events) == [[SPS, P1]]


def test_sequence_numbers_and_timestamps_wrap():
    packets, units = h264_stream(seq=0xFFFE, ts=0xFFFFF000)
    r = VideoReceiver(CODEC_H264, first_seq=0xFFFE)
    events = feed(r, packets) + r.end()
    assert units_of(events) == units and not losses(events)
    stamps = [e.timestamp for e in events if isinstance(e, AccessUnit)]
    assert stamps == [0xFFFFF000, 0xFFFFF000 + 3600, 0xFFFFF000 + 7200]  # past 2**32, in order
    captures = [e.capture_ms for e in events if isinstance(e, AccessUnit)]
    assert captures == [1000, 1040, 1080]


def test_a_sender_that_numbers_again_is_followed_after_a_run_of_late_packets():
    r = VideoReceiver(CODEC_H264, first_seq=5000)
    events = feed(r, [packet(5000, 0, AUD), packet(5001, 0, P1, marker=True)])
    restarted = []
    for k in range(rtp.LATE_RUN_RESTART + 4):
        restarted += picture_packets(10 + 2 * k, 3600 * (k + 1), [AUD, P1])
    events += feed(r, restarted)
    assert [e.why for e in losses(events)] == [rtp.RESTARTED]
    assert len(units_of(events)) >= 2


def test_other_sources_payload_types_and_garbage_are_ignored():
    packets, units = h264_stream()
    r = VideoReceiver(CODEC_H264, 96, first_seq=100, ssrc=0x1234ABCD)
    noise = [packet(101, 0, P1, pt=97), packet(101, 0, P1, ssrc=7), b"\x00" * 20, b"\x80"]
    events = feed(r, packets[:1] + noise + packets[1:]) + r.end()
    assert units_of(events) == units and r.ignored == len(noise)


# -- parameter sets, time, bounds, the end -------------------------------------------------------

def test_description_parameter_sets_go_into_the_first_access_unit_where_missing():
    r = VideoReceiver(CODEC_H264, parameter_sets=[SPS, PPS], first_seq=1)
    events = feed(r, picture_packets(1, 0, [AUD, IDR]) + picture_packets(3, 3600, [AUD, P1]) + [packet(5, 7200, AUD)])
    assert units_of(events) == [[AUD, SPS, PPS, IDR], [AUD, P1]]  # after the delimiter, once
    r = VideoReceiver(CODEC_H264, parameter_sets=[SPS, PPS], first_seq=1)
    events = feed(r, picture_packets(1, 0, [SPS, PPS, IDR]) + [packet(4, 3600, AUD)])
    assert units_of(events) == [[SPS, PPS, IDR]]  # the stream's own: nothing added
    r = VideoReceiver(CODEC_H265, parameter_sets=[VPS5, SPS5, PPS5], first_seq=1)
    events = feed(r, picture_packets(1, 0, [VPS5, IDR5]) + [packet(3, 3000, AUD5)])
    assert units_of(events) == [[SPS5, PPS5, VPS5, IDR5]]


def test_capture_times_from_arrival_then_from_sender_reports():
    r = VideoReceiver(CODEC_H264, first_seq=1, ssrc=0x1234ABCD)
    events = feed(r, picture_packets(1, 90000, [AUD, IDR]), now_ms=1_700_000_000_000)
    ntp = 1_700_000_000 + rtp.NTP_UNIX_OFFSET_S
    sr = bytes([0x80, 200]) + struct.pack("!HIIIIII", 6, 0x1234ABCD, ntp, 0, 90000 + 9000, 0, 0)
    assert r.rtcp(sr, 1_700_000_000_050) == [] and r.anchored_by_rtcp
    events += feed(r, picture_packets(3, 90000 + 3600, [AUD, P1]) + [packet(5, 90000 + 7200, AUD)])
    captures = [e.capture_ms for e in events if isinstance(e, AccessUnit)]
    # given after the report: 9000 and 5400 ticks before the report's timestamp
    assert captures == [1_700_000_000_000 - 100, 1_700_000_000_000 - 60]
    r = VideoReceiver(CODEC_H264, first_seq=1, ssrc=0x1234ABCD)  # before any report: arrival
    events = feed(r, closed(picture_packets(1, 90000, [AUD, IDR]), []), now_ms=1_700_000_000_000)
    assert [e.capture_ms for e in events if isinstance(e, AccessUnit)] == [1_700_000_000_000]
    far = bytes([0x80, 200]) + struct.pack("!HIIIIII", 6, 0x1234ABCD, ntp + 86400, 0, 0, 0, 0)
    r.rtcp(far, 1_700_000_000_100)  # a sender clock a day off is not believed
    assert r.capture_ms(90000 + 9000) == 1_700_000_000_100 and not r.anchored_by_rtcp


def test_an_access_unit_over_the_bound_is_a_loss_and_memory_stays_bounded():
    big = b"\x65\x88" + bytes(200_000)
    r = VideoReceiver(CODEC_H264, first_seq=1, max_access_unit_bytes=100_000)
    frags = fu_a(big, 150)
    events = feed(r, [packet(1, 0, AUD)] + [packet(2 + k, 0, f, marker=(k == 149)) for k, f in enumerate(frags)])
    assert [e.why for e in losses(events)] == [rtp.TOO_LARGE] and not units_of(events)
    events = feed(r, picture_packets(152, 3600, [AUD, P1]) + [packet(154, 7200, AUD)])
    assert units_of(events) == [[AUD, P1]]
    r = VideoReceiver(CODEC_H264, first_seq=1, reorder_packets=8)
    for k in range(100):  # packet 1 never comes: at most 8 are held
        r.rtp(packet(2 + k, 3600 * k, AUD), 0)
        assert r.held_packets <= 8 and r.buffered_bytes <= 8 * len(AUD) + 100_000


def test_a_bye_ends_the_session():
    packets, units = h264_stream()
    r = VideoReceiver(CODEC_H264, first_seq=100, ssrc=0x1234ABCD)
    events = feed(r, packets)
    bye = bytes([0x81, 203]) + struct.pack("!HI", 1, 0x1234ABCD)
    events += r.rtcp(bye, 2000)
    assert r.ended and units_of(events) == units
    assert r.rtp(packet(110, 0, AUD), 0) == [] and r.end() == []
    r = VideoReceiver(CODEC_H264, first_seq=100)  # ended inside an access unit: a loss
    events = feed(r, packets[:3]) + r.end()
    assert [e.why for e in losses(events)] == [rtp.ENDED] and units_of(events) == []
