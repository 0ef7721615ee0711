#!/usr/bin/env python3
"""A synthetic camera load for segbind's verifying service (docs/SERVICE.md): many cameras of
many owners, each camera's segments real x264 video tagged (and encrypted) by the camera's own
core tagger under its own pairing, and each owner's sealed, signed service-grants for its
cameras. Everything is made first; ``publish`` then puts it on NATS as fast as JetStream takes it,
in the order cameras would (segment k of every camera, then k + 1), the way the MQTT bridge does:
a subject per camera, ``Nats-Msg-Id`` set.

Test material only: fresh pairing secrets, test-only accounts and service.

    fleet = Fleet(cameras=1044, segments=4)
    await fleet.grant(js, names)                    # every owner's sealed grants to the service
    await fleet.publish(js, names, partitions)      # every segment
    fleet.expected()                                # what the verdicts must say

``python3 tools/service_load.py --nats URLS --cameras N --segments K --service-out svc.json``
does the same against a running service (the service file is the one its workers take).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from functools import lru_cache
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from host_sim import clips  # noqa: E402
from segbind.grants import Account, Service  # noqa: E402
from segbind.keyring import Binding  # noqa: E402
from segbind.service.names import Names, token  # noqa: E402
from segbind_core.keys import Epoch  # noqa: E402
from segbind_core.segment import Segment, Segmenter  # noqa: E402
from segbind_core.tagger import Tagger  # noqa: E402

SIZES = {"small": (128, 96), "720p": (1280, 720)}


@lru_cache(maxsize=None)
def raw_segments(size: str = "small") -> Tuple[Segment, ...]:
    """Eight untagged segments of real libx264 video (an IDR every 5 pictures), cut as the camera
    cuts them (a delimiter first)."""
    width, height = SIZES[size]
    video = clips.encode_pyav(frames=40, gop=5, width=width, height=height, seed=7)
    segmenter = Segmenter(delimit=True)
    return tuple(s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment))


class Camera(NamedTuple):
    camera: str
    owner: str
    stream_id: int
    segments: Tuple[bytes, ...]


class Fleet:
    """``cameras`` cameras, ``per_owner`` to an owner, ``segments`` tagged segments each, captured
    from ``t0_ms`` on (200 ms apart: what matters is the order, not the rate)."""

    def __init__(self, cameras: int, segments: int = 4, per_owner: int = 3, t0_ms: Optional[int] = None,
                 size: str = "small", period_s: int = 1800, service_id: str = "recorder") -> None:
        self.t0_ms = t0_ms if t0_ms is not None else int(time.time() * 1000)
        self.period_s = period_s
        self.service = Service.new(service_id, test_only=True)
        self.accounts: Dict[str, Account] = {}
        self.epochs: Dict[str, Epoch] = {}
        self.cameras: List[Camera] = []
        raws = raw_segments(size)
        for i in range(cameras):
            owner = "acct-%05d" % (i // per_owner)
            if owner not in self.accounts:
                self.accounts[owner] = Account.new(owner, test_only=True)
                self.service.enroll(self.accounts[owner].card())
            camera = "cam-%05d" % i
            epoch = self.epochs[camera] = Epoch.of_pairing(os.urandom(32), owner, camera, 1, [], period_s)
            stream_id = self.t0_ms - 1000 + i % 997
            tagger = Tagger(epoch, stream_id)
            tagged = []
            for k in range(segments):
                raw = raws[(i + k) % len(raws)]
                tagged.append(tagger.tag(raw.data, raw.units, self.t0_ms + 200 * k, raw.duration_ms, raw.pictures,
                                         False)[0])
            self.cameras.append(Camera(camera, owner, stream_id, tuple(tagged)))
        self._serials: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def segment_count(self) -> int:
        return sum(len(c.segments) for c in self.cameras)

    @property
    def segment_bytes(self) -> int:
        return sum(len(s) for c in self.cameras for s in c.segments)

    def owner_of(self) -> Dict[str, str]:
        return {c.camera: c.owner for c in self.cameras}

    def sealed_grants(self, owners: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
        """Each owner's next sealed service-grants message: slot 0 of its cameras, the periods
        from an hour before t0 to two hours after."""
        by_owner: Dict[str, List[Binding]] = {}
        start, end = self.t0_ms - 3_600_000, self.t0_ms + 7_200_000
        for cam in self.cameras:
            by_owner.setdefault(cam.owner, []).extend(
                Binding.periods_of_epoch(self.epochs[cam.camera], start, end))
        out = []
        for owner in owners if owners is not None else sorted(by_owner):
            serial = self._serials[owner] = self._serials.get(owner, 0) + 1
            out.append(self.accounts[owner].service_grants_for(self.service.card(), serial, by_owner[owner],
                                                               issued_ms=self.t0_ms))
        return out

    async def grant(self, js: Any, names: Names) -> int:
        """Every owner's grants, into the grants stream (what the cloud carries)."""
        from segbind.service.admin import publish_grants

        messages = self.sealed_grants()
        for sealed in messages:
            await publish_grants(js, names, sealed)
        return len(messages)

    def order(self, rounds: Optional[Sequence[int]] = None) -> List[Tuple[Camera, int]]:
        """(camera, segment index) in publishing order: index k of every camera, then k + 1."""
        count = max(len(c.segments) for c in self.cameras)
        return [(cam, k) for k in (rounds if rounds is not None else range(count)) for cam in self.cameras
                if k < len(cam.segments)]

    async def publish(self, nc: Any, names: Names, partitions: int,
                      items: Optional[List[Tuple[Camera, int]]] = None, window: int = 2000,
                      subject_of: Optional[Any] = None, dedup: bool = True) -> List[int]:
        """Publish ``items`` (by default every segment, in order) and wait for JetStream to store
        each (retrying what is not answered: a server may be down). Returns each one's stream
        sequence. ``subject_of(camera)`` replaces the camera's subject (a cloud's routing fault);
        without ``dedup`` no ``Nats-Msg-Id`` is set (a copy sent again after the stream's duplicate
        window, two minutes)."""
        from segbind.service.worker import Acks

        acks = await Acks(nc).start()
        items = self.order() if items is None else items
        seqs: List[int] = [0] * len(items)
        for start in range(0, len(items), window):
            pending = []
            for n, (cam, k) in enumerate(items[start:start + window], start):
                data = cam.segments[k]
                subject = subject_of(cam.camera) if subject_of is not None else None
                msg_id = "%s:%s" % (token(cam.camera), hashlib.sha256(data).hexdigest()[:32])
                pending.append((n, subject or names.seg_subject(cam.camera, partitions), data,
                                {"Nats-Msg-Id": msg_id} if dedup else None))
            while pending:
                futures = [await acks.publish(s, d, h) for _, s, d, h in pending]
                results = await acks.settle(futures, 10.0)
                failed = []
                for item, result in zip(pending, results):
                    if isinstance(result, int):
                        seqs[item[0]] = result
                    else:
                        failed.append(item)
                pending = failed
                if pending:
                    await asyncio.sleep(0.3)
        return seqs


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="publish a synthetic camera load to segbind's service")
    parser.add_argument("--nats", required=True, help="NATS servers, comma-separated")
    parser.add_argument("--prefix", default="segbind")
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--service-out", required=True, metavar="SERVICE.json",
                        help="write the (test-only) service the grants are sealed to here: give it to the workers")
    args = parser.parse_args(argv)

    async def go() -> None:
        import nats

        from segbind.service.admin import read_layout

        names = Names(args.prefix)
        fleet = Fleet(args.cameras, args.segments)
        fleet.service.save(args.service_out)
        nc = await nats.connect(servers=args.nats.split(","))
        js = nc.jetstream(timeout=10.0)
        partitions = (await read_layout(js, names)).partitions
        print("granted %d owners" % await fleet.grant(js, names), file=sys.stderr)
        print("published %d segments" % len(await fleet.publish(nc, names, partitions)), file=sys.stderr)
        await nc.close()
        json.dump({c.camera: c.owner for c in fleet.cameras}, sys.stdout)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
