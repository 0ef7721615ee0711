#!/usr/bin/env python3
"""Operator commands for a segbind deployment: provision, claim, share, revoke, transfer, reset.

They act on the cloud's registry file (shared with a running ``python3 -m
host_sim.cloud``) and send the control commands over MQTT, exactly as the
reference cloud does::

    python3 tools/segbind_ops.py --registry run/cloud.json provision --camera cam-1 --dir run
    python3 tools/segbind_ops.py --registry run/cloud.json --broker 127.0.0.1:1883 claim --camera cam-1 --owner alice
    python3 tools/segbind_ops.py ... share    --camera cam-1 --viewer bob
    python3 tools/segbind_ops.py ... revoke   --camera cam-1 --viewer bob     # rotates the epoch
    python3 tools/segbind_ops.py ... transfer --camera cam-1 --owner carol    # resale
    python3 tools/segbind_ops.py ... reset    --camera cam-1                  # factory reset
    python3 tools/segbind_ops.py ... status   [--camera cam-1]                # the cameras' retained status
    python3 tools/segbind_ops.py ... keyring  --account alice --out alice.json  # for `segbind verify`
    python3 tools/segbind_ops.py ... list                                     # the registry, no secrets

Exit status: 0 done, 1 the camera refused or did not answer, 2 usage or input error.
Key material is written only to files created 0600 and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from segbind.controlplane import CommandFailed, ControlPlane, Registry
from segbind_agent.link import MqttTransport, parse_broker
from segbind_core.device import DeviceFileError, device_json, parse_device
from segbind_core.keys import KEY_SIZE


def write_private(path: Path, data: dict) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def cmd_provision(args, registry: Registry) -> int:
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    camera = args.camera
    if args.secret_file:
        try:
            _, secret, _ = parse_device(json.loads(Path(args.secret_file).read_text()), camera)
        except (ValueError, DeviceFileError):
            print("segbind_ops: %s is not the device file of %s" % (args.secret_file, camera),
                  file=sys.stderr)
            return 2
        device_path = Path(args.secret_file).resolve()
    else:
        device_path = out / ("%s.device.json" % camera)
        if device_path.exists():
            print("segbind_ops: %s exists; pass --secret-file to reuse it" % device_path,
                  file=sys.stderr)
            return 2
        secret = os.urandom(KEY_SIZE)
        write_private(device_path, device_json(camera, secret, args.test_only))
    ControlPlane(None, registry).provision(camera, secret)
    host, port = parse_broker(args.broker)
    config = {
        "camera_id": camera,
        "device_secret_file": str(device_path),
        "state_dir": str((out / ("%s-state" % camera)).resolve()),
        "input": args.input or str((out / ("%s.fifo" % camera)).resolve()),
        "broker": {"host": host, "port": port},
    }
    config_path = out / ("%s.agent.json" % camera)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    print("provisioned %s: device secret %s (keep it private), agent config %s, registry %s"
          % (camera, device_path, config_path, registry.path))
    return 0


def _cloud(args, registry: Registry) -> ControlPlane:
    host, port = parse_broker(args.broker)
    transport = MqttTransport(host, port, "segbind-ops-%d" % os.getpid(), clean=True)
    cloud = ControlPlane(transport, registry)
    cloud.subscribe()
    transport.start()
    if not transport.wait_ready(10):
        transport.stop()
        raise CommandFailed("cannot reach the broker at %s:%d" % (host, port))
    return cloud


def _report(cloud: ControlPlane, cmd) -> None:
    result = cloud.results.get((cmd.camera, cmd.counter))
    if result is None:
        print("sent %s #%d to %s (not waiting for the camera)" % (cmd.name, cmd.counter, cmd.camera))
    else:
        print("%s %s #%d: %s; owner %s epoch %d from stream %d seq %d"
              % (cmd.camera, cmd.name, cmd.counter, result.status, result.owner or "-",
                 result.epoch, result.stream_id, result.seq))


def cmd_control(args, registry: Registry) -> int:
    cloud = _cloud(args, registry)
    try:
        if args.command == "share":
            cloud.share(args.camera, args.viewer)
            print("%s shared with %s (grant published)" % (args.camera, args.viewer))
            return 0
        wait = args.wait
        if args.command == "claim":
            cmd = cloud.claim(args.camera, args.owner, wait=wait)
        elif args.command == "revoke":
            cmd = cloud.revoke(args.camera, args.viewer, wait=wait)
        elif args.command == "rotate":
            cmd = cloud.rotate(args.camera, wait=wait)
        elif args.command == "transfer":
            cmd = cloud.transfer(args.camera, args.owner, wait=wait)
        else:
            cmd = cloud.reset(args.camera, wait=wait)
        if not wait:
            cloud.transport.wait_ready(5)
            time.sleep(0.3)  # let paho hand the command to the broker
        _report(cloud, cmd)
        return 0
    finally:
        cloud.transport.stop()


def cmd_status(args, registry: Registry) -> int:
    cloud = _cloud(args, registry)
    try:
        cameras = [args.camera] if args.camera else sorted(registry.cameras)
        cloud.wait_for(lambda: all(c in cloud.status for c in cameras), args.wait or 2)
        for camera in cameras:
            print(json.dumps(cloud.status.get(camera, {"camera": camera, "state": "unknown"}),
                             sort_keys=True))
        return 0
    finally:
        cloud.transport.stop()


def cmd_keyring(args, registry: Registry) -> int:
    ring = registry.keyring(args.account)
    ring.save(args.out)
    print("wrote the keyring of %s (%d grants) to %s" % (args.account, len(ring), args.out))
    return 0


def cmd_list(args, registry: Registry) -> int:
    for camera, rec in sorted(registry.cameras.items()):
        print(json.dumps({"camera": camera, "owner": rec.owner, "epoch": rec.epoch,
                          "viewers": rec.viewers, "counter": rec.counter}, sort_keys=True))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="segbind_ops", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", required=True, metavar="CLOUD.json",
                        help="the cloud's registry file (created by provision)")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("provision", help="factory: a device secret, an agent config, a registry entry")
    p.add_argument("--camera", required=True)
    p.add_argument("--dir", required=True, help="where the device secret and agent config go")
    p.add_argument("--secret-file", help="register an existing device file instead of a new secret")
    p.add_argument("--input", help="the agent's video input (default DIR/<camera>.fifo)")
    p.add_argument("--test-only", action="store_true", help="mark a new secret as test material")
    p.set_defaults(func=cmd_provision)
    for name, extra, helptext in (
            ("claim", "owner", "bind an unclaimed camera to its owner"),
            ("share", "viewer", "grant another account the camera's current epoch"),
            ("revoke", "viewer", "take a share away (rotates the epoch)"),
            ("rotate", None, "move the camera to a new epoch"),
            ("transfer", "owner", "hand the camera to a new owner (resale)"),
            ("reset", None, "factory reset: clear the binding")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--camera", required=True)
        if extra:
            p.add_argument("--" + extra, required=True)
        p.add_argument("--wait", type=float, default=10.0,
                       help="seconds to wait for the camera's result (0: do not wait)")
        p.set_defaults(func=cmd_control)
    p = sub.add_parser("status", help="print the cameras' retained status")
    p.add_argument("--camera")
    p.add_argument("--wait", type=float, default=2.0)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("keyring", help="write an account's keyring file (for segbind verify)")
    p.add_argument("--account", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_keyring)
    p = sub.add_parser("list", help="the registry's cameras (never their secrets)")
    p.set_defaults(func=cmd_list)

    args = parser.parse_args(argv)
    if args.command != "provision" and not Path(args.registry).exists():
        print("segbind_ops: no registry at %s (provision a camera first)" % args.registry,
              file=sys.stderr)
        return 2
    registry = Registry(args.registry)
    try:
        return args.func(args, registry)
    except CommandFailed as exc:
        print("segbind_ops: %s" % exc, file=sys.stderr)
        return 1
    except (KeyError, ValueError) as exc:
        print("segbind_ops: error: %s" % (exc.args[0] if exc.args else exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
