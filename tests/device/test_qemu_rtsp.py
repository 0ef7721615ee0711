"""The camera agent in the armhf image (qemu-user) pulling the streamer's RTSP from the host.

The bundle's agent, started by its init script with ``"source": "rtsp://user:pw@127.0.0.1:PORT/live"``
(the way it reads prudynt's or majestic's stream on a camera), pulls a live 1080p stream at
4 Mbit/s (x264enc in gst-rtsp-server on the host, behind Digest authentication), is paired
by its owner out of band, and publishes to Mosquitto on the host: the owner's display shows
every segment; nothing is lost (no gap: it keeps up with the stream); the password is in no
log line. Its CPU share is printed (never asserted); ``tools/bench_camera.py`` measures the
same input in the image without MQTT.
"""

from __future__ import annotations

import os
import time

import pytest

from host_sim.broker import Broker
from segbind import Reason, StreamVerifier
from segbind_core import control, topics
from segbind_core.tag import CODEC_H264
from tests.support.agent import ring_of
from tests.support.qemu import GuestCamera, load_tool
from tests.support.rtsp import RtspServer, live_launch
from tests.support.world import World

pytestmark = [pytest.mark.qemu, pytest.mark.broker]

CAMERA = "cam-arm7"
USER, PASSWORD = "streamer", "Dg7-never-in-a-log"
WAIT = 120  # seconds: generous limits for emulated ARM on a loaded machine (never asserted on)
FPS, SECONDS = 25, 16


@pytest.fixture()
def broker():
    with Broker() as b:
        yield b


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_arm_agent_pulls_1080p_rtsp_from_the_host_and_keeps_up(broker, tmp_path):
    auth = {"user": USER, "password": PASSWORD, "method": "digest"}
    launch = live_launch(CODEC_H264, 1920, 1080, FPS, 4000, gop=2 * FPS, pattern="smpte")
    with RtspServer({"/live": launch}, auth=auth) as server:
        world = World(broker, tmp_path)
        app, display = world.account("alice")
        tap = []
        from host_sim.transport import MqttTransport

        listener = MqttTransport(broker.host, broker.port, "tap-" + CAMERA)
        listener.subscribe(topics.camera_topic(CAMERA, topics.SEG), lambda msg: tap.append(bytes(msg.payload)))
        listener.start()
        cam = GuestCamera("armhf", tmp_path / "cam", CAMERA, os.urandom(32), broker.host, broker.port, config={
            "source": server.url("/live", USER, PASSWORD), "segment": {"max_duration_s": 2.0, "fps": None}})
        try:
            cam.start()
            assert world.cloud.wait_for(lambda: world.cloud.status.get(CAMERA, {}).get("state") == "online", WAIT), \
                cam.output() + cam.log()
            before = len(app.results)
            app.pair(CAMERA, cam.handover)
            assert app.wait_for(lambda a: any(r.camera == CAMERA and r.op == control.PAIR for r in a.results[before:]),
                                WAIT), cam.log()
            assert display.wait_for(lambda d: d.shown_total() >= 1, WAIT), (display.summary(), cam.log())
            pid = cam.agent_pid()
            shown, cpu, start = display.shown_total(), cpu_seconds(pid), time.monotonic()
            time.sleep(SECONDS)
            cpu, wall = cpu_seconds(pid) - cpu, time.monotonic() - start
            status = world.cloud.status[CAMERA]
            peak_kb = cam.peak_memory_kb()
            rc = cam.stop()
        finally:
            cam.close()
            listener.stop()
            world.close()
    assert rc == 0, cam.output()
    log = cam.log()
    assert "Traceback" not in log and PASSWORD not in log and USER + ":" not in log, log
    assert "plays H.264 over TCP" in log and "rtsp://***@127.0.0.1" in log
    # every segment the camera published verifies for its owner, one chain with no gap: the
    # agent took every picture the streamer sent while it ran
    verifier = StreamVerifier(ring_of(app.owner, CAMERA))
    verdicts = [verifier.verify(s) for s in tap]
    assert verdicts and {v.reason for v in verdicts} == {Reason.OK}, [v.reason for v in verdicts]
    assert [v.tag.seq for v in verdicts] == list(range(len(verdicts)))
    # (the pairing dropped the pictures up to the next random access point, as a pairing does)
    assert status["counts"]["input_gaps"] == 0 and status["counts"]["pictures_dropped"] <= 2 * FPS
    pictures = sum(v.tag.pictures for v in verdicts)
    run_s = (verdicts[-1].tag.capture_ms + verdicts[-1].tag.duration_ms - verdicts[0].tag.capture_ms) / 1000
    assert pictures >= 0.96 * run_s * FPS, (pictures, run_s)
    assert display.shown_total() >= shown + SECONDS // 2 - 2  # 2-s segments while it was watched
    print("\nthe armhf agent on live 1080p at 4 Mbit/s: CPU share %.1f%% of one core (QEMU included) over "
          "%.0f s; %d pictures in %d segments; VmHWM %d kB" % (100 * cpu / wall, wall, pictures, len(verdicts),
                                                              peak_kb))


def test_bench_camera_prints_the_rtsp_input_cpu_share():
    """tools/bench_camera.py's RTSP figures for the armhf image (printed, never a speed asserted):
    a live 1080p 4 Mbit/s stream pulled without a gap, every picture taken."""
    bench = load_tool("bench_camera")
    results = bench.run_rtsp("armhf", 10.0)
    print("\n" + "\n".join(bench.rtsp_lines(results)))
    for name in ("host", "armhf"):
        figures = bench.rtsp_figures(results[name])
        assert figures["gaps"] == 0 and results[name]["lost"] == 0, (name, figures)
        assert figures["access_units"] >= 0.96 * figures["expected"], (name, figures)
        assert 3.0 < figures["mbit_s"] < 6.0 and figures["cpu_share"] > 0
    assert results["armhf"]["machine"] == "armv7l"
