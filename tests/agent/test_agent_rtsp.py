"""The camera agent process (``segbind-agent``, as on a camera: no site-packages, no hmac) with
``"source": "rtsp://user:password@127.0.0.1:PORT/live"``: it pulls a live x264enc stream from
a real gst-rtsp-server behind Basic authentication, tags it for its owner and publishes it
over Mosquitto; the streamer's restart is a gap the owner's display reports; the password
is in no log line, status or event."""

from __future__ import annotations

import json

import pytest

from host_sim.broker import Broker
from segbind import Reason
from segbind_core.tag import CODEC_H264
from tests.support.rtsp import RtspServer, live_launch
from tests.support.world import World, until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

USER, PASSWORD = "cam-agent", "pw-Zq81-never-logged"


@pytest.fixture()
def broker():
    with Broker() as b:
        yield b


def test_the_agent_takes_an_rtsp_source_and_a_streamer_restart_is_a_gap(broker, tmp_path):
    auth = {"user": USER, "password": PASSWORD, "method": "basic"}
    with RtspServer({"/live": live_launch(CODEC_H264, gop=12)}, auth=auth) as server:
        world = World(broker, tmp_path)
        try:
            _app, display = world.account("alice")
            cam = world.camera("cam-1", "alice", config={
                "source": server.url("/live", USER, PASSWORD),
                "rtsp": {"reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "timeout_s": 5.0},
                "segment": {"max_duration_s": 2.0}})
            until(lambda: display.shown_total() >= 3, 60, "three segments shown")
            server.restart()  # the streamer restarts (killed): its session dies with it
            shown = display.shown_total()
            until(lambda: display.shown_total() >= shown + 3, 60, "segments after the restart")
            status = world.cloud.status["cam-1"]
            assert cam.stop() == 0
        finally:
            world.close()
    reasons = [v.reason for v in display.verdicts]
    assert set(reasons) <= {Reason.OK, Reason.GAP} and reasons.count(Reason.GAP) == 1, reasons
    assert display.verdicts[-1].tag.end_of_stream  # SIGTERM: the last segment closed cleanly
    log = cam.log()
    assert "rtsp://***@127.0.0.1:%d/live" % server.port in log and "video lost before the agent" in log
    assert PASSWORD not in log and USER + ":" not in log
    assert status["counts"]["input_gaps"] >= 1 and PASSWORD not in json.dumps(status)
    events = [e for e in display.verdicts if e.tag is not None]
    assert all(e.tag.camera == "cam-1" and e.tag.owner == "alice" for e in events)
