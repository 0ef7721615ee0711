"""The agent core when video is lost before it (``AgentCore.encoder_gap``): what arrived whole is
tagged, nothing after the loss is until a random access point, and every verifier sees a gap."""

from __future__ import annotations

import json

import pytest

from host_sim import clips, streamer
from segbind import Epoch, Reason, StreamVerifier
from segbind_agent.core import AgentCore, AgentSettings, BindingState
from segbind_core import control
from segbind_core.keys import command_key
from segbind_core.tag import CODEC_H264, CODEC_H265
from tests.support.agent import CoreRunner
from tests.support.tagged import keyring_of

T0 = 1_790_000_000_000
GOP = 10


@pytest.fixture(scope="module", params=[CODEC_H264, CODEC_H265], ids=["h264", "h265"])
def clip(request):
    if request.param == CODEC_H264:
        video = clips.encode_pyav(frames=40, gop=GOP, bframes=2, seed=5)
    else:
        video = clips.encode_pyav_h265(frames=40, gop=GOP, seed=5)
    return request.param, video, streamer.access_units(video, request.param)


def tagging_runner(epoch: Epoch) -> CoreRunner:
    runner = CoreRunner(epoch.camera)
    runner.core = AgentCore(epoch.camera, BindingState(epoch.camera), AgentSettings(health_interval_s=1e9),
                            fixed_epoch=epoch)
    runner.run(runner.core.start(T0, stream_id=T0))
    runner.run(runner.core.connection(True, T0))
    return runner


def feed_units(runner: CoreRunner, aus, first: int = 0) -> None:
    for n, au in enumerate(aus):
        for unit in au:
            runner.run(runner.core.encoder_unit(unit, T0 + 1000, T0 + 40 * (first + n)))


def owners_ring(*epochs: Epoch):
    """The owner's keyring: every period from an hour before T0, for two hours."""
    return keyring_of(*epochs, start_ms=T0 - 3_600_000, hours=2)


def verdicts(epoch: Epoch, segments, plaintexts=None):
    """Each segment's verdict, by the owner's verifier; the accepted ones decrypted into
    ``plaintexts`` when given (what the owner's decoder gets)."""
    verifier = StreamVerifier(owners_ring(epoch))
    out = []
    for s in segments:
        out.append(verifier.verify(s))
        if plaintexts is not None and out[-1].accepted:
            plaintexts.append(verifier.verified)
    return out


def test_a_loss_closes_the_segment_at_its_last_whole_picture_and_leaves_a_gap(clip, epoch):
    codec, video, aus = clip
    fmt = "h264" if codec == CODEC_H264 else "hevc"
    source = clips.decode_hashes_pyav(video, fmt)
    runner = tagging_runner(epoch)
    feed_units(runner, aus[:15])                      # pictures 0-14: segment 0 closed at 10
    runner.run(runner.core.encoder_gap(T0 + 2000, "3 RTP packet(s) missing"))  # pictures 15-16 lost
    runner.run(runner.core.encoder_gap(T0 + 2001, "a second loss before anything was tagged"))
    feed_units(runner, aus[17:], first=17)            # 17-19 depend on the lost: dropped; 20 is an IDR
    runner.run(runner.core.encoder_end(T0 + 5000))
    segments = runner.segments
    plaintexts: list = []
    results = verdicts(epoch, segments, plaintexts)
    assert [v.reason for v in results] == [Reason.OK, Reason.OK, Reason.GAP, Reason.OK]
    assert [v.tag.seq for v in results] == [0, 1, 3, 4]  # one number left out for both losses
    assert [v.tag.pictures for v in results] == [10, 5, 10, 10]
    assert results[1].tag.capture_ms == T0 + 400 and results[2].tag.capture_ms == T0 + 800
    # what was tagged decodes to exactly the source's first 15 pictures in decoding order (in
    # display order: B-frames come out between them) and every picture from the IDR at 20 on
    decoded = clips.decode_hashes_pyav(b"".join(plaintexts), fmt)
    assert len(decoded) == 35 and decoded[15:] == source[20:]
    assert set(decoded[:15]) <= set(source[:20]) and sorted(decoded[:15], key=source.index) == decoded[:15]
    assert runner.core.counts["input_gaps"] == 2 and runner.core.counts["pictures_dropped"] == 3
    events = [json.loads(e) for e in runner.events]
    assert [e["event"] for e in events] == ["input_gap", "input_gap"]
    assert events[0]["seq_skipped"] == 2 and events[1]["seq_skipped"] is None
    assert any("left out" in line for line in runner.logs)


def test_a_loss_right_after_a_segment_closed_and_before_anything(epoch, clip):
    codec, _video, aus = clip
    runner = tagging_runner(epoch)
    runner.run(runner.core.encoder_gap(T0, "lost before the first picture"))
    feed_units(runner, aus[3:])  # from mid-GOP: nothing until the IDR at 10
    runner.run(runner.core.encoder_end(T0 + 5000))
    results = verdicts(epoch, runner.segments)
    assert results[0].tag.seq == 1 and results[0].tag.pictures == GOP  # segment 0 is the lost one
    assert runner.core.counts["pictures_dropped"] == 7


def test_a_rotation_waiting_for_its_cut_takes_effect_at_the_loss():
    secret = bytes(range(32))
    offer = control.PairingOffer("alice", "cam-1", secret, T0 + 600_000, 1800).encode()
    video = clips.encode_pyav(frames=30, gop=GOP, seed=6)
    aus = streamer.access_units(video, CODEC_H264)
    runner = CoreRunner("cam-1")
    runner.start(T0)
    runner.pair(offer, T0)
    feed_units(runner, aus[:5])
    key = command_key(secret, "alice", "cam-1")
    rotate = control.Command(control.ROTATE, "cam-1", "alice", 1, 2, ["bob"], T0, period_s=1800).encode(key)
    result = control.open_result(key, "cam-1", runner.command(rotate, T0 + 100))
    assert result.status == control.OK
    runner.run(runner.core.encoder_gap(T0 + 200, "lost"))
    feed_units(runner, aus[6:], first=6)
    runner.run(runner.core.encoder_end(T0 + 3000))
    epoch1 = Epoch.of_pairing(secret, "alice", "cam-1", 1, [])
    epoch2 = Epoch.of_pairing(secret, "alice", "cam-1", 2, ["bob"])
    verifier = StreamVerifier(owners_ring(epoch1, epoch2))
    results = [verifier.verify(s) for s in runner.segments]
    assert [(v.reason, v.tag.epoch, v.tag.seq) for v in results] == [
        (Reason.OK, 1, 0), (Reason.GAP, 2, 2), (Reason.OK, 2, 3)]
    assert result.seq == 1  # the rotation said epoch 2 starts at 1; 1 was the lost segment's


def test_an_unclaimed_camera_tags_nothing_and_counts_the_loss():
    video = clips.encode_pyav(frames=20, gop=GOP, seed=7)
    runner = CoreRunner("cam-1")
    runner.start(T0)
    feed_units(runner, streamer.access_units(video, CODEC_H264)[:12])
    runner.run(runner.core.encoder_gap(T0 + 100, "lost"))
    assert runner.segments == [] and runner.core.counts["input_gaps"] == 1
