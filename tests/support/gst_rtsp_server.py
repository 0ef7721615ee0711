"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, from Debian, through python3-gi.

Run with Debian's own python3 (python3-gi is not in the project's venv), never imported:

    /usr/bin/python3 tests/support/gst_rtsp_server.py serve '{"port": 0, "mounts": [...], "auth": {...}}'
    /usr/bin/python3 tests/support/gst_rtsp_server.py encode 'videotestsrc num-buffers=100 ! x264enc ! ...'

``mounts``: ``[{"path": "/h264", "launch": "( ... rtph264pay name=pay0 pt=96 )", "shared": false}]``
(gst-launch syntax, as RTSPMediaFactory takes it). ``auth`` (optional):
``{"user": "u", "password": "p", "method": "basic" | "digest"}``. It listens on 127.0.0.1,
prints ``READY <port>`` once listening, and serves until killed (or its stdin closes).
``encode`` runs a pipeline to its end (the tests' clips, from GStreamer's own encoders).
tests/support/rtsp.py starts and stops it.
"""

import json
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def encode(launch: str) -> int:
    pipeline = Gst.parse_launch(launch)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(300 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type != Gst.MessageType.EOS:
        print("FAILED %s" % (message.parse_error()[1] if message is not None else "timeout"), flush=True)
        return 1
    return 0


def main() -> int:
    Gst.init(None)
    if sys.argv[1] == "encode":
        return encode(sys.argv[2])
    config = json.loads(sys.argv[2])
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(config.get("port", 0)))
    auth_config = config.get("auth")
    if auth_config:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        if auth_config.get("method", "basic") == "digest":
            auth.add_digest(auth_config["user"], auth_config["password"], token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(auth_config["user"], auth_config["password"]), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for mount in config["mounts"]:
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(mount["launch"])
        factory.set_shared(bool(mount.get("shared", False)))
        factory.set_eos_shutdown(bool(mount.get("eos_shutdown", False)))
        if auth_config:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_role("viewer")
            permissions.add_permission_for_role("viewer", "media.factory.access", True)
            permissions.add_permission_for_role("viewer", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory(mount["path"], factory)
    if server.attach(None) == 0:
        print("FAILED to listen", flush=True)
        return 1
    print("READY %d" % server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()

    def watch_stdin() -> None:  # the test that started it went away: stop
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
