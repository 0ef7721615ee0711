"""A display client: one account's screen. It trusts its keyring, never the cloud.

It subscribes to its account's segment topic and its grants (retained, from
the cloud), verifies every segment with the segbind library (one
``StreamVerifier`` per account, so duplicates, replays and reordering are
caught), shows only accepted segments and counts every verdict by reason.
"Shown" means accepted and not a duplicate: a QoS-1 redelivery is never
shown twice.

``python3 -m host_sim.display --broker 127.0.0.1:1883 --account alice --out alice.h264``
prints one line per verdict and appends the shown segments to an Annex-B file
(play it with ``ffplay alice.h264``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import threading
import time
from typing import Callable, List, Optional

from host_sim.transport import Message, MqttTransport, Transport, parse_broker, wait_for_sigterm
from segbind import Keyring, KeyringError, Reason, StreamVerifier, TagInfo, Verdict
from segbind_core import topics

log = logging.getLogger("segbind.display")


class Display:
    def __init__(self, transport: Transport, account: str, *, keep_segments: bool = False,
                 on_verdict: Optional[Callable[[Verdict, bytes], None]] = None,
                 prefix: str = topics.TOPIC_PREFIX) -> None:
        self.transport = transport
        self.account = account
        self.prefix = prefix
        self.keyring = Keyring()
        self.verifier = StreamVerifier(self.keyring)
        self.counts: collections.Counter = collections.Counter()  # reason value -> segments
        self.shown: List[TagInfo] = []
        self.shown_segments: List[bytes] = []
        self.refused: List[Verdict] = []
        self.verdicts: List[Verdict] = []
        self.keep_segments = keep_segments
        self.on_verdict = on_verdict
        self.grant_updates = 0
        self._cond = threading.Condition()

    def start(self) -> "Display":
        self.transport.subscribe(topics.account_topic(self.account, topics.GRANTS, self.prefix),
                                 self._on_grants)
        self.transport.subscribe(topics.account_topic(self.account, topics.SEG, self.prefix),
                                 self._on_segment)
        self.transport.start()
        self.transport.wait_ready(10)
        return self

    def stop(self) -> None:
        self.transport.stop()

    def _on_grants(self, msg: Message) -> None:
        try:
            ring = Keyring.from_json(json.loads(msg.payload), "grants for %s" % self.account)
        except (ValueError, KeyringError) as exc:
            log.error("%s: unusable grants: %s", self.account, exc)
            return
        with self._cond:
            self.keyring = ring
            self.verifier.keyring = ring  # the stream state (sequence, chain) is kept
            self.grant_updates += 1
            self._cond.notify_all()

    def _on_segment(self, msg: Message) -> None:
        with self._cond:
            verdict = self.verifier.verify(msg.payload)
            self.counts[verdict.reason.value] += 1
            self.verdicts.append(verdict)
            if verdict.accepted:
                self.shown.append(verdict.tag)
                if self.keep_segments:
                    self.shown_segments.append(msg.payload)
            else:
                self.refused.append(verdict)
            self._cond.notify_all()
        if self.on_verdict:
            self.on_verdict(verdict, msg.payload)

    # -- for tests and tools -------------------------------------------------------------------

    @property
    def rejected(self) -> int:
        return sum(n for reason, n in self.counts.items() if not Reason(reason).accepted)

    def wait_for(self, predicate: Callable[["Display"], bool], timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def has_grant(self, camera: str, epoch: Optional[int] = None) -> bool:
        return any(c == camera and (epoch is None or e == epoch) for _o, c, e in self.keyring.grants())

    def summary(self) -> dict:
        with self._cond:
            return {"account": self.account, "shown": len(self.shown), "counts": dict(self.counts)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.display",
                                     description="a segbind display: shows only segments bound to it")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--account", required=True)
    parser.add_argument("--out", metavar="FILE.h264", help="append shown segments (Annex-B)")
    parser.add_argument("--json", action="store_true", help="one JSON verdict per line")
    args = parser.parse_args(argv)
    host, port = parse_broker(args.broker)
    out = open(args.out, "ab") if args.out else None

    def show(verdict: Verdict, segment: bytes) -> None:
        if args.json:
            print(json.dumps(verdict.as_dict(), sort_keys=True), flush=True)
        else:
            t = verdict.tag
            where = ("%s stream %d seq %d epoch %d" % (t.camera, t.stream_id, t.seq, t.epoch)
                     if t else "?")
            print("%-9s %s %s" % ("SHOW" if verdict.accepted else "REFUSE", where,
                                  verdict.reason.value + (" - " + verdict.detail if verdict.detail
                                                          and not verdict.accepted else "")),
                  flush=True)
        if out is not None and verdict.accepted:
            out.write(segment)
            out.flush()

    display = Display(MqttTransport(host, port, "segbind-display-%s" % args.account),
                      args.account, on_verdict=show)
    display.start()
    print("display of %s on %s:%d; Ctrl-C stops it" % (args.account, host, port), file=sys.stderr)
    wait_for_sigterm()
    display.stop()
    print(json.dumps(display.summary(), sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
