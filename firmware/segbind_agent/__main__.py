"""``segbind-agent --config agent.json`` (or ``python3 -m segbind_agent``): run the camera agent.

    segbind-agent --config agent.json              run it
    segbind-agent --config agent.json pair OFFER   hand it the owner's pairing offer (its QR code)
    segbind-agent --config agent.json reset        press its reset button
    segbind-agent --config agent.json event KIND   a camera event (motion, doorbell...): a still

``pair``, ``reset`` and ``event`` are the local hand-over (``segbind_agent.inbox``): they never
touch the broker; a running agent acts on them at once, a stopped one when it starts.

Exit status: 0 after a clean stop (SIGTERM, SIGINT, or the end of the input in
"exit" mode), 2 when the configuration, the device secret or the state file
cannot be used, or the state rolled back (one line on stderr).
"""

import argparse
import logging
import sys

from .config import Config, ConfigError
from .core import StateError, check_event_kind
from .daemon import Agent, install_signal_handlers
from .inbox import MAX_OFFER_BYTES, Inbox


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="segbind-agent",
                                     description="segbind camera agent: tag and publish H.264 segments")
    parser.add_argument("--config", required=True, metavar="AGENT.json")
    parser.add_argument("--log-level", help="override the configuration's log level")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("run", help="run the agent (the default)")
    pair = sub.add_parser("pair", help="hand over the owner's pairing offer (a file, - for stdin)")
    pair.add_argument("offer", metavar="OFFER")
    sub.add_parser("reset", help="the reset button: forget the owner and the pairing")
    event = sub.add_parser("event", help="a camera event (motion, doorbell...): publish a still of it")
    event.add_argument("kind", metavar="KIND", help="1 to 32 of a-z, 0-9, '_', '-'")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
    except ConfigError as exc:
        print("segbind-agent: error: %s" % exc, file=sys.stderr)
        return 2
    if args.action in ("pair", "reset", "event"):
        return handover(config, args)
    logging.basicConfig(level=getattr(logging, (args.log_level or config.log_level).upper(),
                                      logging.INFO),
                        format="%(asctime)s segbind-agent[" + config.camera_id
                               + "] %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("paho").setLevel(logging.WARNING)
    try:
        agent = Agent(config)
    except (ConfigError, StateError, ValueError, OSError) as exc:
        print("segbind-agent: error: %s" % exc, file=sys.stderr)
        return 2
    install_signal_handlers(agent)
    return agent.run()


def handover(config: Config, args: argparse.Namespace) -> int:
    inbox = Inbox(config.inbox_dir)
    if args.action == "event":
        try:
            inbox.put_event(check_event_kind(args.kind))
        except ValueError as exc:
            print("segbind-agent: error: %s" % exc, file=sys.stderr)
            return 2
        print("event %s handed to camera %s" % (args.kind, config.camera_id), file=sys.stderr)
        return 0
    if args.action == "reset":
        inbox.put_reset()
        print("reset requested for camera %s" % config.camera_id, file=sys.stderr)
        return 0
    try:
        if args.offer == "-":
            offer = sys.stdin.buffer.read(MAX_OFFER_BYTES + 1)
        else:
            with open(args.offer, "rb") as f:
                offer = f.read(MAX_OFFER_BYTES + 1)
    except OSError as exc:
        print("segbind-agent: error: %s: %s" % (args.offer, exc.strerror or exc), file=sys.stderr)
        return 2
    if not offer or len(offer) > MAX_OFFER_BYTES:
        print("segbind-agent: error: %s is not a pairing offer" % args.offer, file=sys.stderr)
        return 2
    inbox.put_offer(offer)
    print("pairing offer handed to camera %s" % config.camera_id, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
