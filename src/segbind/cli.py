"""The ``segbind`` command: provision keys, tag streams, verify and inspect them.

Exit status: 0 success (verify: every segment accepted), 1 verify refused a
segment, 2 usage or input error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Callable, Iterator, List, Optional, Sequence

from segbind_core.keys import KEY_SIZE, derive_binding_key
from segbind_core.tagger import Tagger

from .errors import InvalidSegment, SegbindError
from .keyring import Binding, Keyring, read_json, write_json
from .stream import tagged_segments
from .verdict import Reason, Verdict
from .verifier import StreamVerifier, TimeWindow, find_tag

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line error for the user; exit status 2."""


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CliError("%s: no such file" % path) from None
    except IsADirectoryError:
        raise CliError("%s: is a directory" % path) from None
    except OSError as exc:
        raise CliError("%s: cannot read (%s)" % (path, exc.strerror)) from None
    if not data:
        raise CliError("%s: file is empty" % path)
    return data


def _open_output(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise CliError("%s: cannot write (%s)" % (path, exc.strerror)) from None


def _load_device(path: str) -> tuple:
    data = read_json(path, "device")
    device_id, secret = data.get("device_id"), data.get("secret")
    if not isinstance(device_id, str) or not device_id or not isinstance(secret, str):
        raise CliError("%s: device_id and secret are required" % path)
    try:
        raw = bytes.fromhex(secret)
    except ValueError:
        raise CliError("%s: secret is not valid hex" % path) from None
    if len(raw) != KEY_SIZE:
        raise CliError("%s: secret must be %d bytes" % (path, KEY_SIZE))
    return device_id, raw


def cmd_keys_device(args: argparse.Namespace) -> int:
    secret = os.urandom(KEY_SIZE)
    data = {"segbind": "device", "version": 1, "device_id": args.device_id, "secret": secret.hex()}
    if args.test_only:
        data["test_only"] = True
    try:
        derive_binding_key(secret, "check", args.device_id, 0)  # validates the id
    except ValueError as exc:
        raise CliError(str(exc)) from None
    write_json(args.out, data)
    print("wrote device secret for %s to %s" % (args.device_id, args.out), file=sys.stderr)
    return EXIT_OK


def cmd_keys_bind(args: argparse.Namespace) -> int:
    device_id, secret = _load_device(args.device)
    try:
        key = derive_binding_key(secret, args.owner, device_id, args.epoch)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    Binding(args.owner, device_id, args.epoch, key).save(args.out)
    print("wrote binding %s/%s epoch %d to %s" % (args.owner, device_id, args.epoch, args.out),
          file=sys.stderr)
    return EXIT_OK


def cmd_keys_grant(args: argparse.Namespace) -> int:
    binding = Binding.load(args.binding)
    ring = Keyring.load(args.keyring) if os.path.exists(args.keyring) else Keyring()
    ring.grant(binding)
    ring.save(args.keyring)
    print("granted %s/%s epoch %d in %s (%d grants)"
          % (binding.owner, binding.camera, binding.epoch, args.keyring, len(ring)), file=sys.stderr)
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    from segbind_core.nal import annexb_units, leading_garbage
    from segbind_core.segment import split_segments

    binding = Binding.load(args.binding)
    data = _read_input(args.input)
    units = annexb_units(data)
    if not units or leading_garbage(data):
        raise CliError("%s: not an H.264 Annex-B stream" % args.input)
    stream_id = args.stream_id if args.stream_id is not None else int(time.time() * 1000)
    tagger = Tagger(binding.key, binding.owner, binding.camera, binding.epoch, stream_id)
    try:
        segments = [tagger.tag_annexb(data, seg, int(time.time() * 1000))[0]
                    for seg in split_segments(data, units)]
    except ValueError as exc:
        raise CliError("%s: %s" % (args.input, exc)) from None
    out = _open_output(args.output)
    try:
        for segment in segments:
            out.write(segment)
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print("tagged %d segments (stream %d)" % (len(segments), stream_id), file=sys.stderr)
    return EXIT_OK


def _segments(path: str) -> Iterator[tuple]:
    """(index, buffer, units) of each tagged segment of an input file."""
    data = _read_input(path)
    try:
        segments = tagged_segments(data)
    except SegbindError as exc:
        raise CliError("%s: %s" % (path, exc)) from None
    for index, units in enumerate(segments):
        yield index, data, units


def _describe(index: int, verdict: Verdict) -> str:
    where = "segment %d" % index
    if verdict.tag is not None:
        t = verdict.tag
        where += " (camera %s, owner %s, epoch %d, stream %d, seq %d)" % (
            t.camera, t.owner, t.epoch, t.stream_id, t.seq)
    text = "%s: %s" % (where, verdict.reason.value)
    return text + (" - " + verdict.detail if verdict.detail else "")


def cmd_verify(args: argparse.Namespace) -> int:
    keyring = Keyring.load(args.keyring)
    window = None
    if args.max_age is not None or args.max_future is not None:
        window = TimeWindow(args.max_age, args.max_future)
    verifier = StreamVerifier(keyring, window=window)
    counts: dict = {}
    worst = EXIT_OK
    for index, buf, units in _segments(args.file):
        verdict = verifier.verify_units(buf, units)
        counts[verdict.reason.value] = counts.get(verdict.reason.value, 0) + 1
        if not verdict.accepted:
            worst = EXIT_REFUSED
        if args.json:
            print(json.dumps(dict(verdict.as_dict(), segment=index), sort_keys=True))
        else:
            print(_describe(index, verdict))
    summary = ", ".join("%d %s" % (n, r) for r, n in sorted(counts.items()))
    if args.json:
        print(json.dumps({"summary": counts, "ok": worst == EXIT_OK}, sort_keys=True))
    else:
        print("%s: %s" % ("ACCEPTED" if worst == EXIT_OK else "REFUSED", summary))
    return worst


def cmd_inspect(args: argparse.Namespace) -> int:
    for index, buf, units in _segments(args.file):
        try:
            tag, _signed, covered = find_tag(buf, units)
            entry = {"segment": index, "tag": {
                "version": tag.version, "alg": tag.alg, "owner": tag.owner, "camera": tag.camera,
                "epoch": tag.epoch, "stream_id": tag.stream_id, "seq": tag.seq,
                "capture_ms": tag.capture_ms, "link": tag.link.hex(), "mac": tag.mac.hex()},
                "nal_units": len(covered) + 1}
        except InvalidSegment as exc:
            entry = {"segment": index, "tag": None, "problem": exc.reason.value,
                     "detail": exc.detail, "nal_units": len(units)}
        if args.json:
            print(json.dumps(entry, sort_keys=True))
        elif entry["tag"] is None:
            print("segment %d: %s (%s)" % (index, entry["problem"], entry["detail"]))
        else:
            t = entry["tag"]
            print("segment %d: v%d camera %s owner %s epoch %d stream %d seq %d capture_ms %d mac %s"
                  % (index, t["version"], t["camera"], t["owner"], t["epoch"], t["stream_id"],
                     t["seq"], t["capture_ms"], t["mac"]))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segbind",
        description="Bind camera video to its owner: tag H.264 segments on the camera, "
                    "refuse every segment not bound to the viewer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    keys = sub.add_parser("keys", help="provision device secrets, bindings and keyrings")
    ksub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND")
    ksub.required = True
    p = ksub.add_parser("device", help="factory: make a new device secret for a camera")
    p.add_argument("--device-id", required=True, help="the camera's id (1-32 bytes)")
    p.add_argument("--out", required=True, metavar="DEVICE.json")
    p.add_argument("--test-only", action="store_true", help="mark the secret as test material")
    p.set_defaults(func=cmd_keys_device)
    p = ksub.add_parser("bind", help="derive the binding key of (owner, camera, epoch)")
    p.add_argument("--device", required=True, metavar="DEVICE.json")
    p.add_argument("--owner", required=True, metavar="ACCOUNT", help="owner account id (1-32 bytes)")
    p.add_argument("--epoch", type=int, default=1, help="binding epoch (default 1)")
    p.add_argument("--out", required=True, metavar="BINDING.json")
    p.set_defaults(func=cmd_keys_bind)
    p = ksub.add_parser("grant", help="add a binding to a viewer's keyring (created if missing)")
    p.add_argument("--binding", required=True, metavar="BINDING.json")
    p.add_argument("--keyring", required=True, metavar="KEYRING.json")
    p.set_defaults(func=cmd_keys_grant)

    p = sub.add_parser("tag", help="tag an Annex-B H.264 stream, one segment per IDR picture")
    p.add_argument("--binding", required=True, metavar="BINDING.json")
    p.add_argument("--stream-id", type=int, help="stream id (default: now in ms)")
    p.add_argument("input", metavar="IN", help="Annex-B input, - for stdin")
    p.add_argument("output", metavar="OUT", help="tagged Annex-B output, - for stdout")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("verify", help="verify every segment against a viewer's keyring")
    p.add_argument("--keyring", required=True, metavar="KEYRING.json")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--max-age", type=float, metavar="S", help="refuse segments captured over S seconds ago")
    p.add_argument("--max-future", type=float, metavar="S",
                   help="refuse segments captured over S seconds in the future")
    p.add_argument("file", metavar="FILE", help="tagged Annex-B stream, - for stdin")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="list the tags in a stream (never key material)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, SegbindError) as exc:
        print("segbind: error: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
