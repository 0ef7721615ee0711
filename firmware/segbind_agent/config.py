"""The agent's configuration file (JSON) and the device secret file it points to.

Relative paths in the configuration are taken from the configuration file's
directory. See docs/AGENT.md for every key.
"""

import json
import os
import stat

from segbind_core.device import DeviceFileError, parse_device
from segbind_core.topics import TOPIC_PREFIX

from .core import AgentSettings
from .rtsp import RtspSettings, display_name, is_rtsp

DEFAULTS = {
    "topic_prefix": TOPIC_PREFIX,
    "on_eof": None,                # "exit", "reopen" (FIFO default) or "idle"
    "segment": {"max_duration_s": 4.0, "fps": None, "codec": "auto"},
    "spool": {"max_bytes": 64 * 1024 * 1024, "max_segments": 2000, "fsync": False},
    "publish_window": 8,
    "health_interval_s": 10.0,
    "exit_drain_timeout_s": 10.0,
    "log_level": "INFO",
    "broker": {"host": "127.0.0.1", "port": 1883, "keepalive": 30, "client_id": None,
               "username": None, "password_file": None, "tls_ca": None,
               "reconnect_min_s": 0.5, "reconnect_max_s": 10.0,
               "session_expiry_s": 7 * 24 * 3600},
    # An rtsp:// source (the streamer's RTSP, docs/AGENT.md); ignored for other sources.
    "rtsp": {"transport": "tcp", "timeout_s": 10.0, "reconnect_min_s": 0.5, "reconnect_max_s": 10.0,
             "reorder_packets": 32, "max_access_unit_bytes": 4 * 1024 * 1024, "password_file": None},
}
MAX_ACCESS_UNIT_BYTES = 16 * 1024 * 1024


class ConfigError(Exception):
    """A configuration or device secret file the agent cannot start from."""


def _merge(defaults: dict, given: dict, where: str) -> dict:
    out = {}
    for key, value in defaults.items():
        if isinstance(value, dict):
            sub = given.get(key, {})
            if not isinstance(sub, dict):
                raise ConfigError("%s%s must be an object" % (where, key))
            out[key] = _merge(value, sub, where + key + ".")
        else:
            out[key] = given.get(key, value)
    for key, value in given.items():
        if key not in defaults:
            out[key] = value
    return out


class Config:
    def __init__(self, data: dict, base_dir: str = ".") -> None:
        if not isinstance(data, dict):
            raise ConfigError("configuration must be a JSON object")
        known = set(DEFAULTS) | {"camera_id", "device_secret_file", "state_dir", "source", "input",
                                 "counter_file", "inbox_dir"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("unknown configuration keys: %s" % ", ".join(unknown))
        if ("source" in data) == ("input" in data):
            raise ConfigError("source is required (a path, - or an rtsp:// URL; input is its older name), once")
        source_key = "source" if "source" in data else "input"
        for key in ("camera_id", "device_secret_file", "state_dir", source_key):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ConfigError("%s is required (a string)" % key)
        merged = _merge(DEFAULTS, data, "")

        def path(p):
            return p if p is None or p == "-" or is_rtsp(p) or os.path.isabs(p) else os.path.join(base_dir, p)

        self._path = path
        self.camera_id = merged["camera_id"]
        self.device_secret_file = path(merged["device_secret_file"])
        self.state_dir = path(merged["state_dir"])
        self.input = path(merged[source_key])  # the source: a path, - (stdin) or an rtsp:// URL
        # What logs, errors and the status may say of the source: never its credentials.
        self.source_name = display_name(self.input)
        self._rtsp = merged["rtsp"]
        if is_rtsp(self.input):
            self.rtsp_settings()  # a bad URL or rtsp section fails at load
        self.on_eof = merged["on_eof"]
        if self.on_eof not in (None, "exit", "reopen", "idle"):
            raise ConfigError("on_eof must be exit, reopen or idle")
        self.topic_prefix = merged["topic_prefix"].rstrip("/")
        seg = merged["segment"]
        self.max_duration_s = float(seg["max_duration_s"])
        self.fps = None if seg["fps"] is None else float(seg["fps"])
        codecs = {"auto": 0, "h264": 1, "h265": 2}
        if seg["codec"] not in codecs:
            raise ConfigError("segment.codec must be auto, h264 or h265")
        self.codec = codecs[seg["codec"]]
        sp = merged["spool"]
        self.spool_max_bytes = int(sp["max_bytes"])
        self.spool_max_segments = int(sp["max_segments"])
        self.spool_fsync = bool(sp["fsync"])
        self.publish_window = max(1, int(merged["publish_window"]))
        self.health_interval_s = float(merged["health_interval_s"])
        self.exit_drain_timeout_s = float(merged["exit_drain_timeout_s"])
        self.log_level = str(merged["log_level"]).upper()
        b = merged["broker"]
        self.broker_host = b["host"]
        self.broker_port = int(b["port"])
        self.keepalive = int(b["keepalive"])
        self.client_id = b["client_id"] or "segbind-cam-" + self.camera_id
        self.username = b["username"]
        self.password_file = path(b["password_file"])
        self.tls_ca = path(b["tls_ca"])
        self.reconnect_min_s = float(b["reconnect_min_s"])
        self.reconnect_max_s = float(b["reconnect_max_s"])
        self.session_expiry_s = int(b["session_expiry_s"])
        if self.spool_max_bytes <= 0 or self.spool_max_segments <= 0:
            raise ConfigError("spool bounds must be positive")
        self.spool_dir = os.path.join(self.state_dir, "spool")
        # Apart from the state: wiping or restoring the state directory must not reach it.
        self.counter_file = path(merged.get("counter_file") or self.state_dir.rstrip("/") + ".counter")
        # The local hand-over (a pairing offer read by the lens, the reset button): never the broker.
        self.inbox_dir = path(merged.get("inbox_dir") or os.path.join(self.state_dir, "inbox"))

    def rtsp_settings(self) -> RtspSettings:
        """The rtsp section (with the password from its password_file, if any); ConfigError when unusable."""
        from segbind_core.rtsp import RtspError, parse_url

        r = self._rtsp
        try:
            parse_url(self.input)
            size = int(r["max_access_unit_bytes"])
            if size > MAX_ACCESS_UNIT_BYTES:
                raise ValueError("rtsp.max_access_unit_bytes is at most %d" % MAX_ACCESS_UNIT_BYTES)
            password = None
            if r["password_file"]:
                with open(self._path(r["password_file"]), "r") as f:
                    password = f.read().strip()
            return RtspSettings(str(r["transport"]), float(r["timeout_s"]), float(r["reconnect_min_s"]),
                                float(r["reconnect_max_s"]), int(r["reorder_packets"]), size, password)
        except RtspError as exc:
            raise ConfigError("source: %s" % exc) from None
        except OSError as exc:
            raise ConfigError("rtsp.password_file: %s" % (exc.strerror or exc)) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None

    def settings(self) -> AgentSettings:
        """What the agent's core needs of this configuration."""
        return AgentSettings(self.max_duration_s, self.fps, self.spool_max_bytes,
                             self.spool_max_segments, self.publish_window, self.health_interval_s, self.codec)

    @classmethod
    def load(cls, path: str) -> "Config":
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError("%s: no such file" % path) from None
        except (ValueError, UnicodeError):
            raise ConfigError("%s: not valid JSON" % path) from None
        return cls(data, os.path.dirname(os.path.abspath(path)))

    def password(self):
        if not self.password_file:
            return None
        with open(self.password_file, "r") as f:
            return f.read().strip()


def load_device_secret(path: str, camera_id: str):
    """(secret, test_only, readable by others) from a device file; never logs or returns it in errors."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError("%s: no such device secret file" % path) from None
    except (ValueError, UnicodeError):
        raise ConfigError("%s: not valid JSON" % path) from None
    try:
        _camera, secret, test_only = parse_device(data, camera_id)
    except DeviceFileError as exc:
        raise ConfigError("%s: %s" % (path, exc)) from None
    world_readable = bool(mode & (stat.S_IROTH | stat.S_IWOTH))
    return secret, test_only, world_readable
