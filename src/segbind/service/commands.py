"""``segbind serve``: the verifying service's commands (docs/SERVICE.md). Imported only when
``segbind serve`` runs; nats-py and paho-mqtt only by the commands that use them."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List

# Nothing heavier at import: ``segbind --help`` and ``--version`` build every command's parser.

EXIT_OK = 0


def _error(message: str) -> Exception:
    """A one-line error for ``segbind`` to print (exit status 2)."""
    from .admin import ServiceSetupError

    return ServiceSetupError(message)


def _servers(text: str) -> List[str]:
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise _error("--nats: no server given")
    return servers


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _names(prefix: str) -> Any:
    from .names import Names

    try:
        return Names(prefix)
    except ValueError as exc:
        raise _error(str(exc)) from None


async def _quiet(exc: Exception) -> None:
    """nats-py prints every connection error with its traceback unless told otherwise."""


async def _connect(servers: List[str]) -> Any:
    try:
        import nats
    except ImportError:
        raise _error("segbind serve needs nats-py: pip install 'segbind[service]'") from None
    from .admin import reachable

    reachable(servers)
    try:
        return await nats.connect(servers=servers, connect_timeout=5, max_reconnect_attempts=2,
                                  allow_reconnect=False, error_cb=_quiet)
    except Exception as exc:
        raise _error("cannot reach NATS at %s (%s)" % (",".join(servers), type(exc).__name__)) from None


def _run(coro: Callable[[], Any]) -> Any:
    import asyncio

    from .admin import ServiceSetupError

    try:
        return asyncio.run(coro())
    except ServiceSetupError as exc:
        raise _error(str(exc)) from None


def cmd_init(args: argparse.Namespace) -> int:
    from .admin import ensure

    names = _names(args.prefix)

    async def go() -> Any:
        nc = await _connect(_servers(args.nats))
        try:
            return await ensure(nc.jetstream(timeout=10.0), names, args.partitions, args.replicas,
                                seg_max_age_s=args.keep_segments * 3600.0)
        finally:
            await nc.close()

    layout = _run(go)
    print("service %r on NATS: %d partitions, %d replicas; streams %s, %s, %s; buckets %s, %s"
          % (names.prefix, layout.partitions, layout.replicas, names.seg_stream, names.verdict_stream,
             names.grants_stream, names.state_bucket, names.lease_bucket), file=sys.stderr)
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from ..errors import KeyringError
    from .admin import ServiceSetupError
    from .worker import Settings, serve

    _logging(args.verbose)
    _names(args.prefix)
    try:
        import nats  # noqa: F401
    except ImportError:
        raise _error("segbind serve needs nats-py: pip install 'segbind[service]'") from None
    settings = Settings(_servers(args.nats), args.service, args.prefix, args.recording, args.id or "", args.batch,
                        args.lease, args.stats, args.creds)
    try:
        serve(settings)
    except (KeyringError, ServiceSetupError):
        raise
    except OSError as exc:
        raise _error("%s (%s)" % (exc.strerror or "cannot read or reach", type(exc).__name__)) from None
    return EXIT_OK


def cmd_bridge(args: argparse.Namespace) -> int:
    from .admin import ServiceSetupError
    from .bridge import BridgeSettings, bridge

    _logging(args.verbose)
    _names(args.prefix)
    host, _, port = args.mqtt.rpartition(":")
    try:
        mqtt_host, mqtt_port = (host, int(port)) if host else (args.mqtt, 1883)
    except ValueError:
        raise _error("--mqtt: HOST:PORT, not %r" % args.mqtt) from None
    try:
        bridge(BridgeSettings(mqtt_host, mqtt_port, _servers(args.nats), args.prefix, args.client_id or "",
                              args.group, args.topic_prefix))
    except ServiceSetupError:
        raise
    except OSError as exc:
        raise _error("cannot reach NATS at %s (%s)" % (args.nats, type(exc).__name__)) from None
    return EXIT_OK


def cmd_grant(args: argparse.Namespace) -> int:
    import json

    from .admin import publish_grants

    names = _names(args.prefix)
    messages = []
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as f:
                messages.append(json.load(f))
        except (OSError, ValueError) as exc:
            raise _error("%s: not a sealed message (%s)" % (path, type(exc).__name__)) from None

    async def go() -> List[int]:
        nc = await _connect(_servers(args.nats))
        try:
            js = nc.jetstream(timeout=10.0)
            return [await publish_grants(js, names, m) for m in messages]
        finally:
            await nc.close()

    for path, seq in zip(args.files, _run(go)):
        print("%s: carried to the service (stream sequence %d)" % (path, seq), file=sys.stderr)
    return EXIT_OK


def cmd_verdicts(args: argparse.Namespace) -> int:
    import json

    from .admin import read_verdicts

    names = _names(args.prefix)

    async def go() -> List[Any]:
        nc = await _connect(_servers(args.nats))
        try:
            return await read_verdicts(nc.jetstream(timeout=10.0), names, args.account)
        finally:
            await nc.close()

    for verdict in _run(go):
        print(json.dumps(verdict, sort_keys=True))
    return EXIT_OK


def cmd_identity(args: argparse.Namespace) -> int:
    from ..grants import Service
    from ..keyring import write_json

    try:
        service = Service.new(args.service_id, test_only=args.test_only)
    except Exception as exc:
        raise _error(str(exc)) from None
    service.save(args.out)
    if args.card:
        write_json(args.card, service.card().to_json())
    print("wrote service %s to %s (keep it private)%s" % (args.service_id, args.out,
                                                          "; its card to %s" % args.card if args.card else ""),
          file=sys.stderr)
    return EXIT_OK


def cmd_enroll(args: argparse.Namespace) -> int:
    import json

    from ..errors import KeyringError
    from ..grants import AccountCard, Service

    try:
        service = Service.load(args.service)
        with open(args.account_card, encoding="utf-8") as f:
            card = AccountCard.from_json(json.load(f), args.account_card)
        code = service.enroll(card)
    except (OSError, ValueError) as exc:
        raise _error("%s: %s" % (args.account_card, type(exc).__name__)) from None
    except KeyringError as exc:
        raise _error(str(exc)) from None
    service.save(args.service)
    print(code)
    print("account %s enrolled in %s: compare the code with the one the owner's app shows" % (
        card.account, args.service), file=sys.stderr)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """``segbind serve`` and its commands, on the ``segbind`` parser's subparsers."""
    from segbind_core import topics

    serve = sub.add_parser("serve", help="the verifying service on NATS JetStream: workers, the MQTT bridge, "
                           "setup (docs/SERVICE.md)")
    ssub = serve.add_subparsers(dest="serve_command", metavar="SERVE_COMMAND")
    ssub.required = True

    def common(p: argparse.ArgumentParser, nats: bool = True) -> None:
        if nats:
            p.add_argument("--nats", required=True, metavar="URLS",
                           help="the NATS servers, comma-separated (nats://host:4222,...)")
        p.add_argument("--prefix", default="segbind",
                       help="the deployment's name on NATS: subjects, streams and buckets (default segbind)")

    p = ssub.add_parser("init", help="create the service's streams and KV buckets (what exists is kept)")
    common(p)
    p.add_argument("--partitions", type=int, help="how many partitions the cameras are split into (default 16; "
                   "fixed once created)")
    p.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5), help="stream replicas (default 3)")
    p.add_argument("--keep-segments", type=float, default=24.0, metavar="HOURS",
                   help="how long the segment stream keeps segments (default 24)")
    p.set_defaults(func=cmd_init)

    p = ssub.add_parser("worker", help="verify and decrypt segments, with any number of other workers")
    common(p)
    p.add_argument("--service", required=True, metavar="SERVICE.json",
                   help="the service's identity and its enrolled accounts (segbind serve identity); read again "
                        "when it changes")
    p.add_argument("--recording", metavar="DIR", help="write each accepted segment, decrypted, under DIR/<account>/"
                   "<camera>/<stream>/ (shared storage when workers run on several machines)")
    p.add_argument("--id", help="this worker's name (default: host, pid and a random suffix)")
    p.add_argument("--batch", type=int, default=256, help="segments fetched at once (default 256)")
    p.add_argument("--lease", type=float, default=3.0, metavar="S",
                   help="lease length: a dead worker's partitions move after about this long (default 3)")
    p.add_argument("--stats", metavar="FILE", help="write counts (JSON) to FILE every half second")
    p.add_argument("--creds", metavar="FILE", help="NATS user credentials")
    p.add_argument("-v", "--verbose", action="store_true", help="log leases, partitions and grants")
    p.set_defaults(func=cmd_worker)

    p = ssub.add_parser("bridge", help="carry the cameras' MQTT segments into the service's stream")
    common(p)
    p.add_argument("--mqtt", required=True, metavar="HOST:PORT", help="the broker the cameras publish to")
    p.add_argument("--client-id", help="MQTT client id (default: random; keep it to keep the session)")
    p.add_argument("--group", help="share the cameras with other bridges (an MQTT shared subscription)")
    p.add_argument("--topic-prefix", default=topics.TOPIC_PREFIX,
                   help="the cameras' MQTT topic prefix (default %(default)s: <prefix>/cam/<camera>/seg)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_bridge)

    p = ssub.add_parser("grant", help="carry owners' sealed service-grants messages to the service")
    common(p)
    p.add_argument("files", nargs="+", metavar="SEALED.json")
    p.set_defaults(func=cmd_grant)

    p = ssub.add_parser("verdicts", help="print the verdicts (JSON lines), all or one account's")
    common(p)
    p.add_argument("--account", help="only this account's cameras")
    p.set_defaults(func=cmd_verdicts)

    p = ssub.add_parser("identity", help="make a service's identity (its sealing key) and card")
    p.add_argument("--service-id", required=True, help="the service's id (1-32 bytes)")
    p.add_argument("--out", required=True, metavar="SERVICE.json")
    p.add_argument("--card", metavar="CARD.json", help="also write its public card (what owners enroll)")
    p.add_argument("--test-only", action="store_true", help="mark the secret as test material")
    p.set_defaults(func=cmd_identity)

    p = ssub.add_parser("enroll", help="pin an account's card in the service's file; print the enrollment code")
    p.add_argument("--service", required=True, metavar="SERVICE.json")
    p.add_argument("account_card", metavar="ACCOUNT-CARD.json")
    p.set_defaults(func=cmd_enroll)
