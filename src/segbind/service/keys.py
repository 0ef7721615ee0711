"""The keys a verifying service holds: what each account that enrolled it granted it, from the
owners' sealed ``service-grants`` messages (docs/GRANTS.md section 10), kept per account.

A worker judges the segments on a camera's subject with the keyrings of the accounts whose
grants name that camera (``lookup``): camera ids are the cameras' own in one cloud, so that is one
account, or two for the periods a resale overlaps. Which account a camera belongs to is read
from the owners' signed grants, never from the cloud's routing: a segment the cloud put on the
wrong camera's subject finds no key there (``no_grant``).

``lookup`` answers from a memo in front of the index (what a worker consults for every segment);
``confirm`` answers from the index the signed grants built, and the judge consults it before any
refusal is final: a memo that hands out another account's keys (the cache mix-up of the Wyze
2024 incident) costs a second look, never a segment (docs/SERVICE.md, fault ``keys_mixup``).
"""

from __future__ import annotations

import collections
import logging
from typing import Deque, Dict, Iterable, List, Optional, Set, Tuple

from ..grants import DEFAULT_KEEP_MS, GrantError, GrantRefusal, Service, ServiceGrants
from ..keyring import Keyring

log = logging.getLogger("segbind.service")

Entries = Tuple[Tuple[str, Keyring], ...]

WAITING_PER_ACCOUNT = 8  # messages kept per account not yet enrolled (the newest, bounded)


class ServiceKeys:
    """The service's keys, per account, and the index camera -> accounts their grants build."""

    def __init__(self, service: Service, keep_ms: int = DEFAULT_KEEP_MS) -> None:
        self.service = service
        self.grants = ServiceGrants(service, None, keep_ms)
        self._cameras: Dict[str, Set[str]] = {}          # account -> the cameras it granted
        self._index: Dict[str, Tuple[str, ...]] = {}     # camera -> the accounts that granted it
        self._memo: Dict[str, Entries] = {}
        # account -> its last messages refused as not enrolled, in the order they came (not
        # always their serials' order: an app may send two from two threads); all are taken at
        # enrollment, and the newest serial wins, as it would have
        self._waiting: Dict[str, Deque[object]] = {}
        self.version = 0
        self.counts = {"grants_taken": 0, "grants_refused": 0}

    def take(self, sealed: object) -> Optional[str]:
        """Take a sealed ``service-grants`` message: the account whose keys changed, or None when
        it is refused (logged with its reason; nothing changed)."""
        try:
            account, keyring = self.grants.accept(sealed)
        except GrantError as exc:
            self.counts["grants_refused"] += 1
            issuer = sealed.get("from") if isinstance(sealed, dict) else None
            if exc.reason is GrantRefusal.NOT_ENROLLED and isinstance(issuer, str):
                # taken if the account enrolls (``enrolled``)
                self._waiting.setdefault(issuer, collections.deque(maxlen=WAITING_PER_ACCOUNT)).append(sealed)
            if exc.reason is not GrantRefusal.STALE:
                log.warning("service grants refused: %s", exc.reason.value)
            return None
        self.counts["grants_taken"] += 1
        self._set(account, keyring)
        return account

    def _set(self, account: str, keyring: Keyring) -> None:
        cameras = {camera for _owner, camera, _epoch in keyring.grants()}
        for camera in self._cameras.get(account, set()) ^ cameras:
            accounts = set(self._index.get(camera, ())) ^ {account}
            if accounts:
                self._index[camera] = tuple(sorted(accounts))
            else:
                self._index.pop(camera, None)
        self._cameras[account] = cameras
        self._memo.clear()
        self.version += 1

    def enrolled(self, accounts: Iterable[str]) -> List[str]:
        """The service's file changed: the accounts enrolled now. Accounts that left are granted
        nothing; messages that waited for an account to enroll are taken. Returns the accounts
        whose keys changed."""
        now = set(accounts)
        changed = []
        for account in sorted(set(self._cameras) - now):
            self._set(account, Keyring())
            changed.append(account)
        for account in sorted(now & set(self._waiting)):
            taken = [self.take(sealed) for sealed in self._waiting.pop(account)]
            if any(a is not None for a in taken):
                changed.append(account)
        return changed

    def accounts(self) -> List[str]:
        return sorted(a for a, cams in self._cameras.items() if cams)

    def cameras(self) -> List[str]:
        return sorted(self._index)

    def lookup(self, camera: str) -> Entries:
        """The (account, keyring) pairs to judge ``camera``'s segments with (memoized)."""
        entries = self._memo.get(camera)
        if entries is None:
            entries = self._memo[camera] = self._fill(camera)
        return entries

    def _fill(self, camera: str) -> Entries:
        return self.confirm(camera)

    def confirm(self, camera: str) -> Entries:
        """The same, from the index the signed grants built (not the memo)."""
        return tuple((account, self.grants.keyring(account)) for account in self._index.get(camera, ()))

    def repair(self, camera: str, entries: Entries) -> None:
        """The memo disagreed with the signed grants for ``camera``: it holds ``entries`` now."""
        self._memo[camera] = entries


class MixedUpKeys(ServiceKeys):
    """Fault injection (``SEGBIND_SERVE_FAULT=keys_mixup``), never in production: every memo entry
    this worker fills hands out another account's keyring under the right account's name, as a
    cache that mixed up device and user ids would (the Wyze 2024 incident)."""

    def _fill(self, camera: str) -> Entries:
        right = self.confirm(camera)
        others = [a for a in self.accounts() if all(a != r for r, _ in right)]
        if not right or not others:
            return tuple((account, Keyring()) for account, _ in right)
        other = others[hash(camera) % len(others)]
        return tuple((account, self.grants.keyring(other)) for account, _ in right)
