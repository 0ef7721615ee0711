#!/usr/bin/env python3
"""Operator commands for a segbind deployment: provision cameras, look at what the cloud sees.

The operator (the factory, the cloud's staff) holds no key that decides who may watch:
a camera's device secret is its identity toward the broker and the cloud, never the
root of a binding key. Claims, shares and resales are the owners' (their apps:
``python3 -m host_sim.app``), checked on the camera itself::

    python3 tools/segbind_ops.py provision --camera cam-1 --dir run [--test-only]
    python3 tools/segbind_ops.py --broker 127.0.0.1:1883 status [--camera cam-1]   # retained statuses
    python3 tools/segbind_ops.py routing --store run/routing.json                  # the cloud's routing

Exit status: 0 done, 2 usage or input error. The device secret is written only to a
file created 0600 and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from segbind_agent.link import MqttTransport, parse_broker
from segbind_core import topics
from segbind_core.device import DeviceFileError, device_json, parse_device
from segbind_core.keys import KEY_SIZE


def write_private(path: Path, data: dict) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def cmd_provision(args: argparse.Namespace) -> int:
    """At the factory: the camera's identity (device file) and its agent configuration."""
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    camera = args.camera
    if args.secret_file:
        try:
            parse_device(json.loads(Path(args.secret_file).read_text()), camera)
        except (OSError, ValueError, DeviceFileError):
            raise ValueError("%s is not the device file of %s" % (args.secret_file, camera)) from None
        device_path = Path(args.secret_file).resolve()
    else:
        device_path = out / ("%s.device.json" % camera)
        if device_path.exists():
            raise ValueError("%s exists; pass --secret-file to reuse it" % device_path)
        write_private(device_path, device_json(camera, os.urandom(KEY_SIZE), args.test_only))
    host, port = parse_broker(args.broker)
    state = (out / ("%s-state" % camera)).resolve()
    config = {
        "camera_id": camera,
        "device_secret_file": str(device_path),
        "state_dir": str(state),
        "counter_file": str(out.resolve() / ("%s.counter" % camera)),
        "input": args.input or str((out / ("%s.fifo" % camera)).resolve()),
        "broker": {"host": host, "port": port},
    }
    config_path = out / ("%s.agent.json" % camera)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    print("provisioned %s: device identity %s (keep it private), agent config %s; its owner pairs it "
          "(a pairing offer into %s)" % (camera, device_path, config_path, state / "inbox"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The cameras' retained statuses, as the broker holds them."""
    host, port = parse_broker(args.broker)
    seen: dict = {}
    transport = MqttTransport(host, port, "segbind-ops-%d" % os.getpid(), clean=True)
    pattern = (topics.camera_topic(args.camera, topics.STATUS) if args.camera
               else topics.every_camera(topics.STATUS))
    transport.subscribe(pattern, lambda m: seen.__setitem__(m.topic, m.payload))
    transport.start()
    try:
        if not transport.wait_ready(10):
            raise ValueError("cannot reach the broker at %s:%d" % (host, port))
        deadline = time.time() + args.wait
        while time.time() < deadline and not (args.camera and seen):
            time.sleep(0.05)
    finally:
        transport.stop()
    if args.camera and not seen:
        print(json.dumps({"camera": args.camera, "state": "unknown"}))
    for _topic, payload in sorted(seen.items()):
        print(payload.decode("utf-8", errors="replace"))
    return 0


def cmd_routing(args: argparse.Namespace) -> int:
    """The reference cloud's routing store: owners, shares, displays (and no key: it has none)."""
    try:
        data = json.loads(Path(args.store).read_text())
    except (OSError, ValueError):
        raise ValueError("%s is not a routing store" % args.store) from None
    for camera, owner in sorted(data.get("owner", {}).items()):
        print(json.dumps({"camera": camera, "owner": owner, "shares": data.get("shares", {}).get(camera, [])},
                         sort_keys=True))
    for account, displays in sorted(data.get("displays", {}).items()):
        print(json.dumps({"account": account, "displays": displays}, sort_keys=True))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="segbind_ops", description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("provision", help="factory: a device identity and an agent config")
    p.add_argument("--camera", required=True)
    p.add_argument("--dir", required=True, help="where the device file and agent config go")
    p.add_argument("--secret-file", help="reuse an existing device file instead of a new identity")
    p.add_argument("--input", help="the agent's video input (default DIR/<camera>.fifo)")
    p.add_argument("--test-only", action="store_true", help="mark a new secret as test material")
    p.set_defaults(func=cmd_provision)
    p = sub.add_parser("status", help="print the cameras' retained statuses")
    p.add_argument("--camera")
    p.add_argument("--wait", type=float, default=2.0)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("routing", help="print the cloud's routing store")
    p.add_argument("--store", required=True)
    p.set_defaults(func=cmd_routing)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print("segbind_ops: error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
