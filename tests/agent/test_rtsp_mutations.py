"""Hypothesis over what the network and the streamer can do to the agent's RTSP input.

RTP: a real x264 (B-frames) or x265 stream, packetized as a streamer does (single units,
STAP-A/AP, FU-A/FU; small MTU for many fragments), then packets dropped, duplicated,
reordered, and foreign or garbage packets inserted. Through ``VideoReceiver`` and the
agent's own core (segmenting and tagging), whatever the mutant:

- nothing raises, and what the receiver holds stays under its bound;
- every access unit handed to the core is one the encoder made, byte for byte;
- every tagged segment verifies for the owner, and each picture in it has every slice the
  encoder made for it: no picture is tagged without all of its packets;
- a mutant that loses nothing gives back every access unit.

Packets whose bytes are changed (bits flipped, cut short) cannot be told from good ones
at the RTP layer (RTP carries no checksum): there, nothing raises, memory stays bounded
and what is tagged verifies.

RTSP: a server's real answers (OPTIONS to PLAY, then interleaved media) mutated and cut at
random points: ``ClientSession`` either goes on or raises RtspError with one line; it never
raises anything else and never holds more than its bounds.
"""

from __future__ import annotations

import random
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from host_sim import clips, streamer
from segbind import Epoch, Reason, StreamVerifier
from segbind_agent.core import AgentCore, AgentSettings, BindingState
from segbind_core import h264, h265, rtsp
from segbind_core.nal import annexb_units
from segbind_core.rtp import AccessUnit, Loss, VideoReceiver
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265
from tests.support.agent import CoreRunner
from tests.support.tagged import keyring_of

pytestmark = pytest.mark.slow

T0 = 1_790_000_000_000
MTU = 500
REORDER = 16
MAX_AU = 256 * 1024
EPOCH = Epoch.of_pairing(bytes(range(32)), "alice", "cam-1", 1, [])
# The owner's periods around T0. Capture times follow the RTP clock: a mutated 32-bit timestamp
# moves one by at most 2^31 ticks of 90 kHz (6.6 hours), each of up to 8 mutations, so the
# owner's keyring covers T0 +- 56 hours: every capture time the agent can be made to tag.
RING = keyring_of(EPOCH, start_ms=T0 - 56 * 3_600_000, hours=112)


def _stream(codec: int):
    if codec == CODEC_H264:
        video = clips.encode_pyav(frames=36, gop=12, bframes=2, width=256, height=144, seed=31)
    else:
        video = clips.encode_pyav_h265(frames=36, gop=12, bframes=2, width=256, height=144, seed=31)
    packets, aus = streamer.rtp_stream(video, codec, seq=65500, ts=2**32 - 9000, mtu=MTU)
    return packets, aus


STREAMS: Dict[int, Tuple[List[bytes], List[List[bytes]]]] = {}


def stream(codec: int):
    if codec not in STREAMS:
        STREAMS[codec] = _stream(codec)
    return STREAMS[codec]


# mutations: (kind, position, argument)
DETECTABLE = ["drop", "drop_run", "dup", "swap", "late", "foreign", "garbage"]
CONTENT = ["flip", "cut", "header"]


def mutate(packets: List[bytes], ops, seed: int) -> List[bytes]:
    out = list(packets)
    rnd = random.Random(seed)
    for kind, where, arg in ops:
        if not out:
            break
        k = where % len(out)
        if kind == "drop":
            del out[k]
        elif kind == "drop_run":
            del out[k:k + 1 + arg % 40]
        elif kind == "dup":
            out.insert(k, out[k])
        elif kind == "swap":
            j = min(len(out) - 1, k + 1 + arg % 6)
            out[k], out[j] = out[j], out[k]
        elif kind == "late":  # one packet arrives far behind where it belongs
            packet = out.pop(k)
            out.insert(min(len(out), k + 1 + arg % 80), packet)
        elif kind == "foreign":  # another source, or another payload type
            p = bytearray(out[k])
            if len(p) < 12:
                pass  # too short for an RTP header (garbage inserted before): inserted as it is
            elif arg % 2:
                p[8:12] = b"\x0b\xad\xf0\x0d"
            else:
                p[1] = (p[1] & 0x80) | 97
            out.insert(k, bytes(p))
        elif kind == "garbage":
            out.insert(k, bytes(rnd.getrandbits(8) for _ in range(arg % 60)))
        elif kind == "flip" and out[k]:  # (an empty packet has no bit to flip)
            p = bytearray(out[k])
            bit = arg % (8 * len(p))
            p[bit // 8] ^= 1 << (bit % 8)
            out[k] = bytes(p)
        elif kind == "cut":
            out[k] = out[k][:arg % (len(out[k]) + 1)]
        elif kind == "header":  # sequence number, timestamp or marker rewritten
            p = bytearray(out[k])
            if len(p) >= 12:
                p[1 + arg % 7] = rnd.getrandbits(8)
            out[k] = bytes(p)
    return out


def run(codec: int, packets: List[bytes]):
    """The mutant through the receiver and the agent's core: (access units given, losses,
    tagged segments, the receiver)."""
    # RTP-Info's sequence number and Transport's SSRC, as RTSP gives them
    receiver = VideoReceiver(codec, 96, first_seq=65500, ssrc=streamer.SSRC, reorder_packets=REORDER,
                             max_access_unit_bytes=MAX_AU)
    runner = CoreRunner(EPOCH.camera)
    runner.core = AgentCore(EPOCH.camera, BindingState(EPOCH.camera), AgentSettings(health_interval_s=1e9),
                            fixed_epoch=EPOCH)
    runner.run(runner.core.start(T0, stream_id=T0))
    runner.run(runner.core.connection(True, T0))
    given, losses = [], []
    bound = REORDER * (MTU + 64) + MAX_AU + 2 * MTU

    def take(events):
        for event in events:
            if isinstance(event, AccessUnit):
                given.append(event.units)
                for unit in event.units:
                    runner.run(runner.core.encoder_unit(unit, T0, event.capture_ms))
            else:
                assert isinstance(event, Loss)
                losses.append(event)
                runner.run(runner.core.encoder_gap(T0, event.detail))

    for n, packet in enumerate(packets):
        take(receiver.rtp(packet, T0 + n))
        assert receiver.buffered_bytes <= bound and receiver.held_packets <= REORDER
    take(receiver.end())
    runner.run(runner.core.encoder_end(T0 + 10_000))
    return given, losses, runner.segments, receiver


def check_tagged(codec: int, aus: List[List[bytes]], segments: List[bytes]) -> None:
    """Every segment verifies; each picture in it (as the owner decrypts it) has all of its
    slices, in the encoder's order."""
    verifier = StreamVerifier(RING)
    syntax = h264 if codec == CODEC_H264 else h265
    kind = (lambda u: u[0] & 0x1F) if codec == CODEC_H264 else (lambda u: (u[0] >> 1) & 0x3F)
    picture_of: Dict[bytes, int] = {}
    slices: Dict[int, List[bytes]] = {}
    for n, au in enumerate(aus):
        slices[n] = [u for u in au if syntax.is_vcl(kind(u))]
        for u in slices[n]:
            picture_of[u] = n
    for segment in segments:
        assert verifier.verify(segment).reason in (Reason.OK, Reason.GAP)
        plain = verifier.verified
        assert plain is not None
        view = memoryview(plain)
        units = [bytes(view[s:e]) for s, e in annexb_units(plain)]
        vcl = [u for u in units if syntax.is_vcl(kind(u)) and not tag_codec(u)]
        pictures: Dict[int, List[bytes]] = {}
        for u in vcl:
            assert u in picture_of, "a slice the encoder never made"
            pictures.setdefault(picture_of[u], []).append(u)
        order = list(pictures)
        assert order == sorted(order)
        for n, got in pictures.items():
            assert got == slices[n], "picture %d tagged without all of its slices" % n


mutations = st.lists(st.tuples(st.sampled_from(DETECTABLE), st.integers(0, 10**6), st.integers(0, 10**6)),
                     min_size=0, max_size=6)


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_H265], ids=["h264", "h265"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=mutations, seed=st.integers(0, 2**32))
def test_lost_duplicated_reordered_foreign_packets_never_get_a_partial_picture_tagged(codec, ops, seed):
    packets, aus = stream(codec)
    given, losses, segments, _receiver = run(codec, mutate(packets, ops, seed))
    for units in given:
        assert units in aus, "an access unit the encoder never made"
    assert [aus.index(u) for u in given] == sorted(aus.index(u) for u in given)
    check_tagged(codec, aus, segments)
    if not any(kind in ("drop", "drop_run") for kind, _w, _a in ops) and not losses:
        assert given == aus  # nothing lost: everything given back


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_H265], ids=["h264", "h265"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(DETECTABLE + CONTENT), st.integers(0, 10**6), st.integers(0, 10**6)),
                    min_size=1, max_size=8), seed=st.integers(0, 2**32))
@example(ops=[("garbage", 0, 0), ("foreign", 0, 0)], seed=0)  # an empty packet, then mutated: found by CI
@example(ops=[("garbage", 0, 0), ("flip", 0, 0)], seed=0)
def test_any_mutant_never_crashes_stays_bounded_and_what_is_tagged_verifies(codec, ops, seed):
    packets, _aus = stream(codec)
    _given, _losses, segments, _receiver = run(codec, mutate(packets, ops, seed))
    verifier = StreamVerifier(RING)
    for segment in segments:
        assert verifier.verify(segment).reason in (Reason.OK, Reason.GAP)


def test_the_unmutated_stream_comes_back_whole():
    for codec in (CODEC_H264, CODEC_H265):
        packets, aus = stream(codec)
        given, losses, segments, _receiver = run(codec, packets)
        assert given == aus and not losses
        check_tagged(codec, aus, segments)
        assert len(segments) == 3


# -- RTSP answers ----------------------------------------------------------------------------------

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\n"
       "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHpWoKA9puAgICBA=,"
       "aM48gA==\r\na=control:stream=0\r\n")


def transcript() -> bytes:
    sdp = SDP.encode()
    packets, _aus = stream(CODEC_H264)
    media = b"".join(b"$\x00" + len(p).to_bytes(2, "big") + p for p in packets[:30])
    return (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER\r\n\r\n"
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"4e6f\"\r\n\r\n"
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1/cam/\r\n"
            b"Content-Length: " + str(len(sdp)).encode() + b"\r\n\r\n" + sdp
            + b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=005E6B1D\r\n"
            b"Session: 77;timeout=60\r\n\r\n"
            b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 77\r\nRTP-Info: url=rtsp://127.0.0.1/cam/stream=0;seq=65500;"
            b"rtptime=1\r\n\r\n" + media)


TRANSCRIPT = transcript()


def test_the_transcript_plays():
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://u:p@127.0.0.1/cam"))
    client.start()
    events = client.receive(TRANSCRIPT, 0)
    assert any(isinstance(e, rtsp.Playing) for e in events)
    assert sum(isinstance(e, rtsp.Media) for e in events) == 30


@settings(max_examples=1000, deadline=None)
@example(edits=[(182, "flip", b",")], splits=[10])  # a status of "\x1e00": str.strip took \x1e for a space; found by CI
@given(edits=st.lists(st.tuples(st.integers(0, len(TRANSCRIPT)), st.sampled_from(["flip", "delete", "insert", "cut"]),
                                st.binary(min_size=1, max_size=12)), min_size=1, max_size=4),
       splits=st.lists(st.integers(1, 4000), min_size=1, max_size=6))
def test_mutated_rtsp_answers_give_an_rtsp_error_or_go_on(edits, splits):
    data = bytearray(TRANSCRIPT)
    for at, kind, blob in edits:
        at = min(at, len(data))
        if kind == "flip" and at < len(data):
            data[at] ^= blob[0] or 1
        elif kind == "delete":
            del data[at:at + len(blob)]
        elif kind == "insert":
            data[at:at] = blob
        elif kind == "cut":
            del data[at:]
    client = rtsp.ClientSession(rtsp.parse_url("rtsp://u:p@127.0.0.1/cam"))
    client.start()
    pos = 0
    try:
        for size in splits * 50:
            if pos >= len(data):
                break
            client.receive(bytes(data[pos:pos + size]), 0)
            pos += size
            assert client._demux.buffered <= rtsp.MAX_HEAD_BYTES + rtsp.MAX_BODY_BYTES + 65536 + 4
    except rtsp.RtspError as exc:
        message = str(exc)
        assert message and "\n" not in message and "u:p" not in message
