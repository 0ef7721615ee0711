"""Test-only fault injection for ``segbind serve worker`` (docs/SERVICE.md, "Faults"), named and
switched by one environment variable, never set in production (unset, each point costs a string
comparison):

    SEGBIND_SERVE_FAULT=kill@verdicts:3   SIGKILL itself the 3rd time it reaches the point
    SEGBIND_SERVE_FAULT=stop@states:2     SIGSTOP itself there (whoever runs it sends SIGCONT)
    SEGBIND_SERVE_FAULT=keys_mixup        its key memo hands out another account's keys

Points, in the order a batch of segments passes them:

    judged          every segment of the batch judged in memory; nothing published
    verdicts        the batch's verdicts (and recordings) durable; the stream states not written
    states_sending  the lease checked, the state writes about to go out (a worker stopped here
                    and resumed past its lease sends writes that compare-and-set must refuse)
    states          the stream states written; the partition's checkpoint not renewed
"""

from __future__ import annotations

import os
import signal
from typing import Dict, Optional, Tuple

POINTS = ("judged", "verdicts", "states_sending", "states")


def _parse(spec: str) -> Optional[Tuple[str, str, int]]:
    if "@" not in spec:
        return None
    action, _, rest = spec.partition("@")
    point, _, count = rest.partition(":")
    if action not in ("kill", "stop") or point not in POINTS:
        raise ValueError("SEGBIND_SERVE_FAULT: %r is not kill|stop@%s[:N]" % (spec, "|".join(POINTS)))
    return action, point, int(count or 1)


class Faults:
    def __init__(self, spec: Optional[str] = None) -> None:
        self.spec = os.environ.get("SEGBIND_SERVE_FAULT", "") if spec is None else spec
        self.keys_mixup = self.spec == "keys_mixup"
        self._at = _parse(self.spec) if self.spec and not self.keys_mixup else None
        self._seen: Dict[str, int] = {}

    def point(self, name: str) -> None:
        at = self._at
        if at is None or at[1] != name:
            return
        self._seen[name] = self._seen.get(name, 0) + 1
        if self._seen[name] == at[2]:
            os.kill(os.getpid(), signal.SIGKILL if at[0] == "kill" else signal.SIGSTOP)
