"""The agent's configuration for an RTSP source: ``source`` (``input`` is its older name), the
``rtsp`` section, and credentials that never reach a message."""

from __future__ import annotations

import pytest

from segbind_agent.config import Config, ConfigError

BASE = {"camera_id": "cam-1", "device_secret_file": "d.json", "state_dir": "state"}


def config(tmp_path, **data) -> Config:
    return Config(dict(BASE, **data), str(tmp_path))


def test_source_takes_a_path_stdin_or_an_rtsp_url(tmp_path):
    assert config(tmp_path, source="video.fifo").input == str(tmp_path / "video.fifo")
    assert config(tmp_path, input="video.fifo").input == str(tmp_path / "video.fifo")  # the older name
    assert config(tmp_path, source="-").input == "-"
    c = config(tmp_path, source="rtsp://admin:hunter2@127.0.0.1/stream0")
    assert c.input == "rtsp://admin:hunter2@127.0.0.1/stream0" and c.source_name == "rtsp://***@127.0.0.1/stream0"
    settings = c.rtsp_settings()
    assert (settings.transport, settings.timeout_s, settings.reorder_packets, settings.password) == ("tcp", 10.0,
                                                                                                   32, None)


def test_source_once_and_readable(tmp_path):
    for data in ({}, {"source": "a", "input": "b"}, {"source": ""}):
        with pytest.raises(ConfigError, match="source is required|is required"):
            config(tmp_path, **data)
    for url, words in (("rtsp://admin:hunter2@cam:70000/x", "bad port"), ("rtsp://admin:hunter2@/x", "host")):
        with pytest.raises(ConfigError, match=words) as err:
            config(tmp_path, source=url)
        assert "hunter2" not in str(err.value)


def test_the_rtsp_section(tmp_path):
    (tmp_path / "rtsp.password").write_text("from-a-file\n")
    c = config(tmp_path, source="rtsp://admin@127.0.0.1:8554/ch0",
               rtsp={"transport": "udp", "password_file": "rtsp.password", "reorder_packets": 64})
    settings = c.rtsp_settings()
    assert (settings.transport, settings.password, settings.reorder_packets) == ("udp", "from-a-file", 64)
    for section, words in (({"transport": "sctp"}, "tcp or udp"), ({"timeout_s": 0}, "positive"),
                           ({"max_access_unit_bytes": 1 << 30}, "at most"),
                           ({"password_file": "missing"}, "password_file"),
                           ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_min_s")):
        with pytest.raises(ConfigError, match=words):
            config(tmp_path, source="rtsp://127.0.0.1/x", rtsp=section)
    config(tmp_path, source="video.fifo", rtsp={"transport": "sctp"})  # not read for other sources
