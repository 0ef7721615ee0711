"""A display client: one screen of one account. It trusts its owner's signed grants, never the cloud.

It was enrolled out of band (it pinned its owner's account key), takes its keyring
only from grants its owner signed and sealed to it (``segbind.grants``), verifies
every segment with the segbind library and keeps one tile and one output per stream,
that is per (owner, camera) as its owner's grants name the segment's key id, never by
what the relay says: a contact's camera that carries the id of another owner's camera
gets a tile of its own, under its own owner. A segment is shown live when it is
accepted and was captured within the live window (``segbind.LIVE``); an accepted
segment too old for live is kept for the recording only. A feed that goes stale or
freezes raises an alarm (``segbind.freshness``), as do a rotation its owner's grants
say is still pending past its deadline, and video still tagged under an epoch the owner
superseded (such segments are also flagged). A display decodes only what the verifier
accepted, decrypted (``StreamVerifier.verified``: ``Accepted.plaintext()``); a refused
segment is never decrypted. Stills (events' thumbnails, made and encrypted by the cameras)
arrive on their own topic and are judged alone: an accepted one is the stream's thumbnail.

``python3 -m host_sim.display --broker 127.0.0.1:1883 --display DISPLAY.json --account alice``
prints one line per verdict and appends each stream's shown segments to its own
Annex-B file, ``OUT/<owner>/<camera>.h264`` (play one with ``ffplay``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from host_sim.transport import Message, MqttTransport, Transport, parse_broker, wait_for_sigterm
from segbind import LIVE, Reason, StreamVerifier, TagInfo, TimeWindow, Verdict
from segbind.errors import InvalidSegment, KeyringError
from segbind.freshness import Alarm, FeedWatch, Stream
from segbind.grants import Display as DisplayIdentity
from segbind.grants import DisplayGrants, GrantError
from segbind_agent.link import wait_until
from segbind_core import topics

log = logging.getLogger("segbind.display")


class Display:
    """``identity`` is the display's own key and pinned owner (``segbind.grants.Display``);
    ``grants_path`` its store for grants across restarts."""

    def __init__(self, transport: Transport, account: str, identity: DisplayIdentity, *,
                 grants_path: Optional[str] = None, window: Optional[TimeWindow] = LIVE,
                 clock: Callable[[], float] = time.time, keep_segments: bool = False,
                 on_verdict: Optional[Callable[[Verdict, bytes], None]] = None,
                 stale_s: float = 10.0, prefix: str = topics.TOPIC_PREFIX) -> None:
        self.transport = transport
        self.account = account
        self.identity = identity
        self.prefix = prefix
        self.grants = DisplayGrants(identity, grants_path)
        self.verifier = StreamVerifier(self.grants.keyring)  # the live window is applied on showing
        self.window = window
        self.clock = clock
        self.watch = FeedWatch(stale_s=stale_s, frozen_s=stale_s)
        self.counts: collections.Counter = collections.Counter()   # reason value -> segments
        self.grant_refusals: collections.Counter = collections.Counter()
        # Tiles, recordings and outputs by stream, (owner, camera): what the key id stands for.
        self.shown: Dict[Stream, List[TagInfo]] = collections.defaultdict(list)      # live
        self.recorded: Dict[Stream, List[TagInfo]] = collections.defaultdict(list)   # too old for live
        self.output: Dict[Stream, List[bytes]] = collections.defaultdict(list)       # verified bytes
        self.flagged: Dict[Stream, List[TagInfo]] = collections.defaultdict(list)    # superseded epoch
        self.thumbnails: Dict[Stream, TagInfo] = {}                                  # the newest still shown
        self.thumbnail_pictures: Dict[Stream, bytes] = {}   # ... decrypted, with keep_segments
        self.still_counts: collections.Counter = collections.Counter()  # reason value -> stills
        # Stills are judged alone, by a verifier of their own: nothing on the still topic ever
        # touches the state of a video stream.
        self.still_verifier = StreamVerifier(self.grants.keyring)
        self.refused: List[Verdict] = []
        self.last_verdict: Optional[Verdict] = None
        self.verdicts: List[Verdict] = []  # every verdict, with keep_segments (tests, tools)
        self.keep_segments = keep_segments
        self.on_verdict = on_verdict
        self.grant_updates = 0
        self._cond = threading.Condition()

    @property
    def name(self) -> str:
        return self.identity.display

    def start(self) -> "Display":
        self.transport.subscribe(topics.display_topic(self.name, topics.GRANTS, self.prefix), self._on_grants)
        self.transport.subscribe(topics.account_topic(self.account, topics.SEG, self.prefix), self._on_segment)
        self.transport.subscribe(topics.account_topic(self.account, topics.STILL, self.prefix), self._on_still)
        self.transport.start()
        self.transport.wait_ready(10)
        self._owner_says()
        return self

    def stop(self) -> None:
        self.transport.stop()

    def _granted_streams(self) -> List[Stream]:
        return sorted({(owner, camera) for owner, camera, _epoch in self.grants.keyring.grants()})

    def _owner_says(self) -> None:
        now = self.clock()
        self.watch.watch(self._granted_streams(), now)
        self.watch.owner_says(self.grants.cameras.values(), self.grants.alarm_after_ms)

    def _on_grants(self, msg: Message) -> None:
        try:
            sealed = json.loads(msg.payload)
            ring = self.grants.accept(sealed)
        except (ValueError, GrantError, KeyringError) as exc:
            reason = getattr(exc, "reason", None)
            with self._cond:
                self.grant_refusals[str(reason.value) if reason is not None else "malformed"] += 1
            log.warning("%s: grants refused: %s", self.name, exc)
            return
        with self._cond:
            self.verifier.keyring = ring  # the stream state (sequence, chain) is kept
            self.still_verifier.keyring = ring
            self._owner_says()
            self.grant_updates += 1
            self._cond.notify_all()

    def _on_segment(self, msg: Message) -> None:
        with self._cond:
            verdict = self.verifier.verify(msg.payload)
            self.last_verdict = verdict
            self.counts[verdict.reason.value] += 1
            if self.keep_segments:
                self.verdicts.append(verdict)
            if verdict.accepted and verdict.tag is not None:
                tag, now = verdict.tag, self.clock()
                stream = tag.stream  # (owner, camera) of the key id in the owner's grants decides the tile
                if self._live(verdict, now):
                    self.shown[stream].append(tag)
                else:
                    self.recorded[stream].append(tag)
                if self.watch.accepted(tag, now):
                    self.flagged[stream].append(tag)
                if self.keep_segments and self.verifier.verified is not None:
                    self.output[stream].append(self.verifier.verified)
            else:
                self.refused.append(verdict)
                if verdict.reason is Reason.NO_GRANT:
                    self.watch.ungranted(self._said_to_be(msg), self.clock())
            self._cond.notify_all()
        if self.on_verdict:
            self.on_verdict(verdict, msg.payload)

    def _on_still(self, msg: Message) -> None:
        """An event's thumbnail: shown as its stream's thumbnail when it verifies and is a still."""
        with self._cond:
            verdict = self.still_verifier.verify(msg.payload)
            if verdict.accepted and verdict.tag is not None and not verdict.tag.still:
                verdict = Verdict(Reason.FRAMING, "a segment on the still topic: not a still", verdict.tag)
            self.still_counts[verdict.reason.value] += 1
            if verdict.accepted and verdict.tag is not None:
                stream = verdict.tag.stream
                self.thumbnails[stream] = verdict.tag
                if self.keep_segments and self.still_verifier.verified is not None:
                    self.thumbnail_pictures[stream] = self.still_verifier.verified
            self._cond.notify_all()
        self.on_still(verdict, msg)

    def on_still(self, verdict: Verdict, msg: Message) -> None:
        """Every still's verdict, after it was judged (for subclasses that count)."""

    @staticmethod
    def _said_to_be(msg: Message) -> Stream:
        """What the carrier says a segment no grant opens is: ("", its camera property), for an
        alarm only. Nothing authenticated names its owner, so it never reaches a tile."""
        said = (msg.user_properties or {}).get("camera")
        return "", said if isinstance(said, str) else "?"

    def _live(self, verdict: Verdict, now_s: float) -> bool:
        if self.window is None or verdict.tag is None:
            return True
        try:
            self.window.check(verdict.tag, now_s)  # type: ignore[arg-type]
        except InvalidSegment:
            return False
        return True

    def alarms(self) -> List[Alarm]:
        with self._cond:
            return self.watch.check(self.clock())

    # -- for tests and tools -------------------------------------------------------------------

    @property
    def rejected(self) -> int:
        return sum(n for reason, n in self.counts.items() if not Reason(reason).accepted)

    def shown_total(self) -> int:
        return sum(len(v) for v in self.shown.values())

    def wait_for(self, predicate: Callable[["Display"], bool], timeout: float = 10.0) -> bool:
        return wait_until(self._cond, lambda: predicate(self), timeout)

    def has_grant(self, camera: str, epoch: Optional[int] = None, owner: Optional[str] = None) -> bool:
        return any(c == camera and (epoch is None or e == epoch) and (owner is None or o == owner)
                   for o, c, e in self.grants.keyring.grants())

    def shown_of(self, camera: str, owner: Optional[str] = None) -> List[TagInfo]:
        """What was shown live of ``camera`` (of ``owner``, or of the display's own account)."""
        return list(self.shown.get((owner or self.account, camera), []))

    def summary(self) -> dict:
        def label(stream: Tuple[str, str]) -> str:
            return "%s/%s" % stream

        with self._cond:
            return {"display": self.name, "account": self.account,
                    "shown": {label(s): len(v) for s, v in sorted(self.shown.items())},
                    "recorded": {label(s): len(v) for s, v in sorted(self.recorded.items())},
                    "flagged": {label(s): len(v) for s, v in sorted(self.flagged.items())},
                    "counts": dict(self.counts), "grant_refusals": dict(self.grant_refusals),
                    "alarms": [a._asdict() for a in self.watch.check(self.clock())]}


def _file_name(segbind_id: str) -> str:
    """An owner or camera id as one file name: percent-escaped, never "." or ".." or hidden."""
    name = urllib.parse.quote(segbind_id, safe="-_@")
    return "%2E" + name[1:] if name.startswith(".") else name


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m host_sim.display",
                                     description="a segbind display: shows only what its owner granted it")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT")
    parser.add_argument("--display", required=True, metavar="DISPLAY.json",
                        help="the display's identity file (its key and pinned owner)")
    parser.add_argument("--new", metavar="ID", help="make a fresh identity in DISPLAY.json and exit (then "
                        "enroll it: python3 -m host_sim.app ... enroll --display DISPLAY.json)")
    parser.add_argument("--test-only", action="store_true", help="with --new: mark its key test-only")
    parser.add_argument("--account", help="the account whose feeds it shows (default: its owner's)")
    parser.add_argument("--grants", metavar="GRANTS.json", help="where it keeps its grants (default: beside "
                        "the display file)")
    parser.add_argument("--out", metavar="DIR", help="append each stream's shown segments to "
                        "DIR/<owner>/<camera>.h264")
    parser.add_argument("--json", action="store_true", help="one JSON verdict per line")
    args = parser.parse_args(argv)
    try:
        if args.new:
            if Path(args.display).exists():
                raise ValueError("%s exists" % args.display)
            fresh = DisplayIdentity.new(args.new, args.test_only)
            fresh.save(args.display)
            print("display %s: a fresh key in %s; enroll it with its owner's app" % (args.new, args.display))
            return 0
        host, port = parse_broker(args.broker)
        identity = DisplayIdentity.load(args.display)
        if identity.owner is None:
            raise ValueError("%s is not enrolled: its owner's app must enroll it first" % args.display)
        account = args.account or identity.owner.account
    except (ValueError, KeyringError) as exc:
        print("host_sim.display: error: %s" % exc, file=sys.stderr)
        return 2
    grants_path = args.grants or str(Path(args.display).with_suffix(".grants.json"))
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def show(verdict: Verdict, segment: bytes) -> None:
        if args.json:
            print(json.dumps(verdict.as_dict(), sort_keys=True), flush=True)
        else:
            t = verdict.tag
            where = ("%s of %s stream %d seq %d epoch %d" % (t.camera, t.owner, t.stream_id, t.seq, t.epoch)
                     if t and t.owner else "?")
            print("%-7s %s %s" % ("SHOW" if verdict.accepted else "REFUSE", where,
                                  verdict.reason.value + (" - " + verdict.detail if verdict.detail
                                                          and not verdict.accepted else "")), flush=True)
        if out is not None and verdict.accepted and verdict.tag is not None and display.verifier.verified:
            folder = out / _file_name(verdict.tag.owner)
            folder.mkdir(exist_ok=True)
            with open(folder / ("%s.h264" % _file_name(verdict.tag.camera)), "ab") as f:
                f.write(display.verifier.verified)

    display = Display(MqttTransport(host, port, "segbind-display-%s" % identity.display), account,
                      identity, grants_path=grants_path, on_verdict=show)
    display.start()
    print("display %s of %s on %s:%d; Ctrl-C stops it" % (identity.display, account, host, port),
          file=sys.stderr)
    wait_for_sigterm()
    display.stop()
    print(json.dumps(display.summary(), sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
