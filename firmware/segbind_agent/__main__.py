"""``segbind-agent --config agent.json`` (or ``python3 -m segbind_agent``): run the camera agent.

Exit status: 0 after a clean stop (SIGTERM, SIGINT, or the end of the input in
"exit" mode), 2 when the configuration, the device secret or the state file
cannot be used (one line on stderr).
"""

import argparse
import logging
import sys

from .config import Config, ConfigError
from .core import StateError
from .daemon import Agent, install_signal_handlers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="segbind-agent",
                                     description="segbind camera agent: tag and publish H.264 segments")
    parser.add_argument("--config", required=True, metavar="AGENT.json")
    parser.add_argument("--log-level", help="override the configuration's log level")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
    except ConfigError as exc:
        print("segbind-agent: error: %s" % exc, file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
