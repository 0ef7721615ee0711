"""rtsp.py: URLs and their credentials, messages and interleaved frames, session descriptions,
Basic and Digest, and the client's session from OPTIONS to PLAY (sans-I/O)."""

import binascii

from _support import raises

from segbind_core import rtsp
from segbind_core.tag import CODEC_H264, CODEC_H265

SPS_B64 = "Z0LAHpWoKA9puAgICBA="
PPS_B64 = "aM48gA=="

# What gst-rtsp-server answers for an x264 mount (trimmed), and for an x265 one.
SDP_H264 = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\nt=0 0\r\n"
            "a=tool:GStreamer\r\na=type:broadcast\r\na=control:*\r\na=range:npt=now-\r\n"
            "m=audio 0 RTP/AVP 0\r\na=control:stream=1\r\n"
            "m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:2000\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=%s,%s\r\n"
            "a=control:stream=0\r\n" % (SPS_B64, PPS_B64))
SDP_H265 = ("v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\n"
            "a=fmtp:97 sprop-vps=QAEMAf//;sprop-sps=QgEBAWAA;sprop-pps=RAHBcrQ=\r\n"
            "a=control:rtsp://127.0.0.1:8554/h265/trackID=1\r\n")


def test_urls_keep_credentials_apart():
    u = rtsp.parse_url("rtsp://admin:p%40ss%3Aword@192.168.1.10:8554/stream0?channel=1#x")
    assert (u.host, u.port, u.path, u.username, u.password) == ("192.168.1.10", 8554, "/stream0?channel=1",
                                                                  "admin", "p@ss:word")
    assert u.request_url() == "rtsp://192.168.1.10:8554/stream0?channel=1"
    assert u.redacted() == "rtsp://***@192.168.1.10:8554/stream0?channel=1"
    assert "p@ss" not in repr(u)
    u = rtsp.parse_url("RTSP://[::1]/ch0")
    assert (u.host, u.port, u.path, u.username) == ("::1", 554, "/ch0", None)
    assert u.request_url() == "rtsp://[::1]/ch0" and u.redacted() == u.request_url()
    assert rtsp.parse_url("rtsp://user@cam").password is None and rtsp.parse_url("rtsp://cam").path == "/"
    for bad in ("http://cam/x", "rtsp://", "rtsp://u:secret@cam:99999/x", "rtsp://u:secret@cam:x/y",
                "rtsp://[::1/x", "rtsp://u:secret@cam/a b", 7):
        err = raises(rtsp.RtspError, rtsp.parse_url, bad)
        assert err.reason == rtsp.BAD_URL and "secret" not in str(err)


def test_redact_takes_credentials_out_of_any_text():
    text = "failed: rtsp://admin:hunter2@cam/x; see http://u:p/q@host/ and rtsp://cam/y"
    out = rtsp.redact(text)
    assert "hunter2" not in out and "u:p" not in out
    assert out == "failed: rtsp://***@cam/x; see http://***@host/ and rtsp://cam/y"


def test_demux_splits_responses_bodies_and_interleaved_frames_fed_in_any_pieces():
    wire = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello"
            b"$\x00\x00\x03abc" b"$\x01\x00\x00"
            b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n"
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"
            b"WWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n\r\n")
    for step in (1, 3, 7, len(wire)):
        d = rtsp.Demux()
        items = []
        for k in range(0, len(wire), step):
            items += d.feed(wire[k:k + step])
        kinds = [(type(i).__name__, i.status if isinstance(i, rtsp.Message) else i.channel) for i in items]
        assert kinds == [("Message", 200), ("Frame", 0), ("Frame", 1), ("Message", 0), ("Message", 401)], step
        assert items[0].body == b"hello" and items[0].cseq == 2 and items[1].data == b"abc"
        assert items[3].method == "OPTIONS" and items[3].cseq == 9
        assert len(items[4].all("www-authenticate")) == 2 and d.buffered == 0


def test_demux_refuses_what_is_not_rtsp_and_bounds_what_it_holds():
    for bad in (b"HTTP/1.1 200 OK\r\n\r\n", b"\x00\x01\x02\x03\x04\x05", b"RTSP/1.0 2x0 OK\r\n\r\n",
                b"RTSP/1.0 200 OK\r\nno colon here\r\n\r\n",
                b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
                b"RTSP/1.0 200 OK\r\nContent-Length: 999999\r\n\r\n",
                b"RTSP/1.0 200 OK\r\n" + b"X: y\r\n" * (rtsp.MAX_HEADERS + 1) + b"\r\n",
                b"RTSP/1.0 200 OK\r\nX: \xff\xfe\r\n\r\n",
                b"RTSP/1.0 200 OK\r\nX: " + b"y" * rtsp.MAX_HEAD_BYTES):
        assert raises(rtsp.RtspError, rtsp.Demux().feed, bad).reason == rtsp.MALFORMED, bad[:30]


def test_session_description_h264_with_sprop_and_control():
    track = rtsp.video_track(SDP_H264, "rtsp://127.0.0.1:8554/h264/")
    assert (track.codec, track.payload_type, track.clock_rate) == (CODEC_H264, 96, 90000)
    assert track.control == "rtsp://127.0.0.1:8554/h264/stream=0"
    assert track.parameter_sets == [binascii.a2b_base64(SPS_B64.encode()), binascii.a2b_base64(PPS_B64.encode())]
    assert rtsp.video_track(SDP_H264.replace("a=control:stream=0", "a=control:/abs/track"),
                            "rtsp://h:1/x/").control == "rtsp://h:1/abs/track"


def test_session_description_h265_and_what_is_refused():
    track = rtsp.video_track(SDP_H265, "rtsp://127.0.0.1:8554/h265")
    assert (track.codec, track.payload_type) == (CODEC_H265, 97)
    assert track.control == "rtsp://127.0.0.1:8554/h265/trackID=1"
    assert [u[0] >> 1 & 0x3F for u in track.parameter_sets] == [32, 33, 34]
    refused = [
        (SDP_H264.replace("packetization-mode=1", "packetization-mode=2"), "packetization-mode 2"),
        (SDP_H265.replace("sprop-vps", "sprop-max-don-diff=2;sprop-vps"), "DONL"),
        (SDP_H264.replace("H264/90000", "MP4V-ES/90000"), "MP4V-ES"),
        ("v=0\r\nm=audio 0 RTP/AVP 0\r\n", "no video at all"),
    ]
    for sdp, words in refused:
        err = raises(rtsp.RtspError, rtsp.video_track, sdp, "rtsp://h/")
        assert err.reason == rtsp.UNSUPPORTED and words in str(err), str(err)
    err = raises(rtsp.RtspError, rtsp.video_track, SDP_H264.replace(SPS_B64, "!!!"), "rtsp://h/")
    assert err.reason in (rtsp.MALFORMED,)


def test_md5_computed_here_matches_rfc_1321():
    vectors = {b"": "d41d8cd98f00b204e9800998ecf8427e", b"abc": "900150983cd24fb0d6963f7d28e17f72",
               b"message digest": "f96b697d7cb7938d525a2f31aaf161d0",
               b"12345678901234567890123456789012345678901234567890123456789012345678901234567890":
               "57edf4a22be3c955ac49da2e2107b67a"}
    for data, digest in vectors.items():
        assert binascii.hexlify(rtsp.md5(data)).decode() == digest
        assert rtsp.md5_hex(data) == digest


def test_basic_and_digest_authorization():
    assert rtsp.basic_authorization("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    # RFC 2617 section 3.5
    challenge = rtsp.parse_challenges(['Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                       'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                       'opaque="5ccc069c403ebaf9f0171e9517f40e41"'])[0]
    header = rtsp.digest_authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                                       "0a4f113b", 1)
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "qop=auth, nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "Circle" not in header
    both = rtsp.parse_challenges(['Basic realm="a, b", Digest realm="c", nonce="d", stale=TRUE'])
    assert [(c.scheme, c.params) for c in both] == [("basic", {"realm": "a, b"}),
                                                      ("digest", {"realm": "c", "nonce": "d", "stale": "TRUE"})]
    sha = rtsp.Challenge("digest", {"realm": "r", "nonce": "n", "algorithm": "SHA-512"})
    assert raises(rtsp.RtspError, rtsp.digest_authorization, sha, "M", "u", "a", "b", "c", 1).reason == rtsp.AUTH


class Server:
    """Answers a ClientSession's requests as a scripted server would."""

    def __init__(self, client):
        self.client = client
        self.requests = []

    def request(self, data):
        text = data.decode()
        self.requests.append(text)
        return text

    def answer(self, status, headers="", body=b"", cseq=None, now_ms=0):
        last = self.requests[-1]
        seq = cseq if cseq is not None else int(last.split("CSeq: ")[1].split("\r\n")[0])
        head = "RTSP/1.0 %s\r\nCSeq: %d\r\n%s" % (status, seq, headers)
        if body:
            head += "Content-Length: %d\r\n" % len(body)
        events = self.client.receive((head + "\r\n").encode() + body, now_ms)
        for e in events:
            if isinstance(e, rtsp.Send):
                self.request(e.data)
        return events

    def sent(self, events):
        """The one request the client sent in answer."""
        out = [e for e in events if isinstance(e, rtsp.Send)]
        assert len(out) == 1, events
        return self.requests[-1]


def play_over_tcp(client, server, auth="digest"):
    server.request(client.start())
    assert server.requests[0].startswith("OPTIONS rtsp://127.0.0.1:8554/cam RTSP/1.0\r\nCSeq: 1\r\n")
    describe = server.sent(server.answer("200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER\r\n"))
    assert describe.startswith("DESCRIBE rtsp://127.0.0.1:8554/cam RTSP/1.0") and "Authorization" not in describe
    challenge = ('WWW-Authenticate: Digest realm="cam", nonce="abc123"\r\n' if auth == "digest"
                 else 'WWW-Authenticate: Basic realm="cam"\r\n')
    again = server.sent(server.answer("401 Unauthorized", challenge))
    assert again.startswith("DESCRIBE ") and ("Authorization: Digest " if auth == "digest"
                                              else "Authorization: Basic ") in again
    setup = server.sent(server.answer("200 OK", "Content-Base: rtsp://127.0.0.1:8554/cam/\r\n"
                                      "Content-Type: application/sdp\r\n", SDP_H264.encode()))
    assert setup.startswith("SETUP rtsp://127.0.0.1:8554/cam/stream=0 RTSP/1.0")
    assert "Transport: RTP/AVP/TCP;unicast;interleaved=0-1" in setup
    play = server.sent(server.answer("200 OK", "Transport: RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=0A0B0C0D\r\n"
                                     "Session: 9f8e7d;timeout=30\r\n"))
    assert play.startswith("PLAY rtsp://127.0.0.1:8554/cam RTSP/1.0") and "Session: 9f8e7d\r\n" in play
    events = server.answer("200 OK", "RTP-Info: url=rtsp://127.0.0.1:8554/cam/stream=0;seq=4242;rtptime=77\r\n"
                           "Session: 9f8e7d\r\n", now_ms=1000)
    assert len(events) == 1 and isinstance(events[0], rtsp.Playing)
    return events[0]


def test_client_session_digest_then_interleaved_media_and_keepalives():
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://admin:s3cret@127.0.0.1:8554/cam"))
    server = Server(client)
    playing = play_over_tcp(client, server)
    assert (playing.first_seq, playing.rtptime, playing.ssrc, playing.interleaved) == (4242, 77, 0x0A0B0C0D, (2, 3))
    assert playing.track.codec == CODEC_H264 and playing.timeout_s == 30
    assert not any("s3cret" in r for r in server.requests)  # only its digest travels
    media = client.receive(b"$\x02\x00\x02ab$\x03\x00\x01c$\x00\x00\x01d", 1000)
    assert [(type(m).__name__, m.rtcp, m.data) for m in media] == [("Media", False, b"ab"), ("Media", True, b"c")]
    assert client.tick(10_000) == b""
    keepalive = server.request(client.tick(16_000))  # half the session's timeout after PLAY
    assert keepalive.startswith("GET_PARAMETER rtsp://127.0.0.1:8554/cam") and "Session: 9f8e7d" in keepalive
    assert "Authorization: Digest" in keepalive and "nc=" not in keepalive  # no qop: no count
    assert server.answer("451 Parameter Not Understood") == []  # the session lives on
    assert client.receive(b"GET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 5\r\n\r\n", 0)[0].data.startswith(
        b"RTSP/1.0 200 OK\r\nCSeq: 5")
    teardown = server.request(client.teardown())
    assert teardown.startswith("TEARDOWN ") and client.teardown() == b""


def test_client_session_basic_and_udp():
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://admin:s3cret@127.0.0.1:8554/cam"))
    play_over_tcp(client, Server(client), auth="basic")
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://127.0.0.1:8554/cam"), "udp", (50000, 50001))
    server = Server(client)
    server.request(client.start())
    server.sent(server.answer("200 OK"))
    setup = server.sent(server.answer("200 OK", "Content-Type: application/sdp\r\n", SDP_H264.encode()))
    assert "Transport: RTP/AVP;unicast;client_port=50000-50001" in setup
    server.sent(server.answer("200 OK", "Transport: RTP/AVP;unicast;client_port=50000-50001;server_port=6970-6971\r\n"
                              "Session: 1\r\n"))
    playing = server.answer("200 OK", "Session: 1\r\n")[0]
    assert playing.server_ports == (6970, 6971) and playing.first_seq is None and playing.interleaved is None


def test_client_session_errors_say_why_without_credentials():
    def refused(status, headers="", url="rtsp://admin:s3cret@127.0.0.1:8554/cam", at="DESCRIBE"):
        client = rtsp.ClientSession(rtsp.parse_url(url))
        server = Server(client)
        server.request(client.start())
        try:
            if at == "DESCRIBE":
                server.answer("200 OK")
                server.answer(status, headers)
                server.answer(status, headers)
            else:
                server.answer(status, headers)
        except rtsp.RtspError as exc:
            assert "s3cret" not in str(exc)
            return exc
        raise AssertionError("not refused")

    assert "404" in str(refused("404 Not Found")) and "check the path" in str(refused("404 Not Found"))
    err = refused("401 Unauthorized", 'WWW-Authenticate: Digest realm="r", nonce="n"\r\n')
    assert err.reason == rtsp.AUTH and "refused the credentials" in str(err)
    err = refused("401 Unauthorized", 'WWW-Authenticate: Digest realm="r", nonce="n"\r\n', url="rtsp://h/cam")
    assert err.reason == rtsp.AUTH and "needs credentials" in str(err)
    err = refused("401 Unauthorized", "WWW-Authenticate: Bearer x\r\n")
    assert err.reason == rtsp.AUTH
    err = refused("454 Session Not Found", at="OPTIONS")
    assert err.reason == rtsp.REFUSED and "OPTIONS answered 454" in str(err)


def test_client_session_takes_a_stale_nonce_and_ignores_unasked_answers():
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://admin:s3cret@127.0.0.1:8554/cam"))
    server = Server(client)
    server.request(client.start())
    server.sent(server.answer("200 OK"))
    server.sent(server.answer("401 Unauthorized", 'WWW-Authenticate: Digest realm="r", nonce="n1"\r\n'))
    retry = server.sent(server.answer("401 Unauthorized", 'WWW-Authenticate: Digest realm="r", nonce="n2", '
                                      'stale=true\r\n'))
    assert 'nonce="n2"' in retry
    assert server.answer("200 OK", cseq=77) == []  # an answer to nothing asked


def test_what_the_server_says_reaches_an_error_on_one_line_without_credentials():
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://127.0.0.1/cam"))
    client.start()
    answer = b"RTSP/1.0 503 Busy\x1b[31m rtsp://admin:hunter2@cam/ \x07\r\nCSeq: 1\r\n\r\n"
    err = raises(rtsp.RtspError, client.receive, answer, 0)
    assert str(err) == "OPTIONS answered 503 Busy?[31m rtsp://***@cam/ ?"


def test_numbers_are_ascii_digits_only():
    assert rtsp.number(" 42 ") == 42 and rtsp.number("4 2") == -1 and rtsp.number("") == -1
    assert rtsp.number("\u00b2") == -1 and rtsp.number("\u0663") == -1 and rtsp.number("1" * 19) == -1
    err = raises(rtsp.RtspError, rtsp.Demux().feed, "RTSP/1.0 200 OK\r\nContent-Length: \u00b3\r\n\r\n".encode())
    assert err.reason == rtsp.MALFORMED
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://127.0.0.1/cam"))
    client.start()
    assert client.receive("RTSP/1.0 200 OK\r\nCSeq: \u00b9\r\n\r\n".encode(), 0) == []  # answers nothing asked
