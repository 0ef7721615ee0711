"""The owner's app: pairings, commands to cameras, grants to displays and services, shares with
contacts, and the renewal that makes revocation hold without the cloud.

Everything that decides who may watch lives here, on the owner's own device, and
nowhere in the cloud (docs/FORMAT.md section 8, docs/GRANTS.md). The app

- pairs a camera out of band: ``pairing_offer`` makes a fresh pairing secret P and
  the bytes to hand to the camera (its lens reads them as a QR code);
- commands the camera under the command key C derived from P: ``share``,
  ``revoke``, ``rotate``, ``release`` return the command bytes to send through the
  cloud, and ``on_result`` checks what the camera answers; a rotation stays pending
  until the camera's authenticated result confirms it: ``due_retries`` says when to send
  it again (bounded backoff), ``rotation_alarms`` when it has been pending too long;
- grants its displays, period by period, the owner's slot of every epoch in force, plus
  the keys its contacts shared with it, and each camera's newest epoch (pending or not),
  sealed to each display (``grants_for``); its services the same for its own cameras
  (``service_grants_for``);
- offers a contact the period keys of that contact's slot (``offer_for``), and takes a
  contact's offer only when the contact's own key signed it and it names no camera the
  app already holds from someone else (``accept_offer``);
- renews every holder ahead of each period (``renewal_due``, ``renew``), and never renews
  a revoked one: a revoked holder decrypts nothing captured after its last period,
  whether or not the camera heard of the revocation (GRANTS.md section 8).

Sans-I/O: methods take the app's clock (``now_ms``) and return bytes or sealed messages
to send; the caller carries them (``host_sim.app`` over MQTT, or anything else). Grants
go out before the command that needs them: a display holds a new epoch's keys before the
camera tags with it. Secret material never appears in ``repr``, logs or errors; the
app's file is written 0600.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from segbind_core import control
from segbind_core.keys import DEFAULT_PERIOD_S, Epoch, check_period_s, command_key, epoch_root
from segbind_core.tag import MAX_EPOCH, MAX_SLOTS

from .errors import KeyringError
from .grants import (
    DEFAULT_ALARM_AFTER_MS,
    DEFAULT_KEEP_MS,
    MAX_ENTRIES,
    MAX_KEYS,
    Account,
    AccountCard,
    CameraState,
    Display,
    DisplayCard,
    OutOfBand,
    ServiceCard,
    ShareOffer,
    enrollment_code,
)
from .keyring import FILE_VERSION, Binding, EpochName, Keyring, epoch_id, read_json, write_json

__all__ = ["OwnedCamera", "Owner", "OwnerError", "RESULT_TEXT", "Renewal", "RotationAlarm", "exchange_contacts",
           "explain"]

KIND = "owner"
PAIRING_TTL_MS = 10 * 60 * 1000  # an offer shown on the phone is good for ten minutes
KEPT_EPOCHS = 16                 # epochs of a pairing the owner's app remembers
DEFAULT_LEAD_MS = 120_000        # renew this long before each period: app -> contact's app -> its displays
RETRY_FIRST_MS = 5_000           # a pending rotation is sent again after 5 s, 10 s, 20 s ... at most
RETRY_MAX_MS = 300_000           # every 5 minutes, for as long as it is pending

# Why a contact's offer of one camera was not taken (``Owner.refused_shares``).
HELD_FROM_ANOTHER_OWNER = "held_from_another_owner"
OWN_CAMERA = "own_camera"
KEY_ID_HELD = "key_id_held"          # the key id names another grant this app or its displays hold
EPOCH_ID_HELD = "epoch_id_held"      # the contact named one epoch id for two cameras, epochs or period lengths
NOT_YET = "not_yet"                  # a period that begins more than a period ahead: no app grants it yet
CLOCK_SLACK_MS = 60_000              # how far a contact's clock may run ahead of this app's

# What the owner's app shows for each result a camera can send (docs/AGENT.md, "What the owner sees").
RESULT_TEXT = {
    control.OK: "done",
    control.ALREADY_APPLIED: "done (the camera had applied it already)",
    control.MALFORMED: "the camera could not read the command: update the app",
    control.UNKNOWN_VERSION: "the camera speaks another format version: update the app or the camera",
    control.WRONG_CAMERA: "the message was meant for another camera",
    control.BAD_MAC: "the camera did not recognise this app's key: pair the camera again",
    control.REPLAY: "the camera has seen this command or this pairing code before: try again with a new one",
    control.NOT_CLAIMED: "the camera is not paired",
    control.ALREADY_CLAIMED: "the camera belongs to someone: its owner must release it, or press its reset button",
    control.STALE_EPOCH: "the camera is ahead of this app: the app caught up, try again",
    control.OWNER_MISMATCH: "the camera belongs to another account",
    control.TOO_MANY_SHARES: "a camera can be shared with at most 7 accounts",
    control.OUT_OF_RANGE: "a number in the command is outside what the camera accepts: nothing was changed",
    control.EXPIRED: "the pairing code expired: show a new one to the camera",
}


def explain(result: control.Result) -> str:
    """One line for people: what the camera did with a command or a pairing, and what to do next."""
    text = RESULT_TEXT.get(result.status, "refused (%s)" % result.status)
    return "%s: %s%s" % (result.name, text, " (%s)" % result.detail if result.detail and not result.accepted else "")


class OwnerError(ValueError):
    """Something the owner's app will not do (not its camera, not paired yet, too many shares)."""


@dataclass
class PendingRotation:
    """The newest rotate command sent to a camera and not yet confirmed by its result."""

    epoch: int
    command: bytes
    issued_ms: int
    attempts: int
    next_retry_ms: int

    def __repr__(self) -> str:
        return "PendingRotation(epoch %d, since %d ms, %d attempts)" % (self.epoch, self.issued_ms, self.attempts)

    def to_json(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "command": self.command.hex(), "issued_ms": self.issued_ms,
                "attempts": self.attempts, "next_retry_ms": self.next_retry_ms}

    @classmethod
    def from_json(cls, data: Any) -> "PendingRotation":
        return cls(int(data["epoch"]), bytes.fromhex(data["command"]), int(data["issued_ms"]),
                   int(data["attempts"]), int(data["next_retry_ms"]))


class RotationAlarm(NamedTuple):
    """A rotation the camera has not confirmed for longer than the owner's deadline."""

    camera: str
    epoch: int
    since_ms: int
    attempts: int


@dataclass
class Renewal:
    """What one renewal sends (sealed, by recipient): every display's grants, every contact's
    offer, every service's grants."""

    grants: Dict[str, Dict[str, Any]]
    offers: Dict[str, Dict[str, Any]]
    services: Dict[str, Dict[str, Any]]


@dataclass
class OwnedCamera:
    """One camera as its owner's app knows it. ``epochs`` maps every epoch issued in this pairing
    (newest last, at most ``KEPT_EPOCHS``) to its shares; ``epoch`` is the one the camera
    confirmed; ``periods`` each epoch's period length (``period_s`` when not listed);
    ``issued`` when each epoch was issued (the app's clock); ``rotation`` the newest rotate
    command sent, kept while it may need sending again."""

    camera: str
    pairing: bytes
    paired: bool = False
    epoch: int = 0
    epochs: Dict[int, List[str]] = field(default_factory=dict)
    counter: int = 0
    stream_id: int = 0
    period_s: int = DEFAULT_PERIOD_S
    periods: Dict[int, int] = field(default_factory=dict)
    issued: Dict[int, int] = field(default_factory=dict)
    rotation: Optional[PendingRotation] = None

    def __repr__(self) -> str:
        return "OwnedCamera(%r, paired=%s, epoch=%d, shares=%r, pending=%r, pairing=<hidden>)" % (
            self.camera, self.paired, self.epoch, self.shares, self.pending)

    @property
    def shares(self) -> List[str]:
        return list(self.epochs.get(self.epoch, []))

    @property
    def epoch_hwm(self) -> int:
        return max(self.epochs) if self.epochs else 0

    @property
    def newest_shares(self) -> List[str]:
        """The shares of the newest epoch issued (confirmed or not): what the next rotation
        starts from."""
        return list(self.epochs.get(self.epoch_hwm, []))

    @property
    def pending(self) -> Optional[PendingRotation]:
        """The rotation sent and not yet confirmed (None when the camera confirmed the newest)."""
        rotation = self.rotation
        return rotation if rotation is not None and self.paired and rotation.epoch > self.epoch else None

    def period_s_of(self, epoch: int) -> int:
        return self.periods.get(epoch, self.period_s)

    def epoch_keys(self, owner: str, epoch: int) -> Epoch:
        return Epoch.of_pairing(self.pairing, owner, self.camera, epoch, self.epochs[epoch], self.period_s_of(epoch))

    def epoch_name(self, owner: str, epoch: int) -> EpochName:
        """How grants name ``epoch`` of this pairing: (owner, its epoch id)."""
        return EpochName(owner, epoch_id(epoch_root(self.pairing, owner, self.camera, epoch, self.period_s_of(epoch))))

    def in_force(self) -> List[int]:
        """The epochs the camera may be tagging with now: the confirmed one and every one issued
        after it (a rotation not yet confirmed)."""
        if not self.paired:
            return []
        return sorted(e for e in self.epochs if e >= self.epoch)

    def renewed_holder(self, holder: str, epoch: int) -> bool:
        """Whether ``holder`` (a contact) is renewed in ``epoch``: it holds a slot of it and of
        the newest epoch issued. An epoch that revoked it ends its renewals in every older
        epoch too, though the camera may not have heard of it."""
        return holder in self.epochs.get(epoch, []) and holder in self.epochs.get(self.epoch_hwm, [])

    def to_json(self) -> Dict[str, Any]:
        return {"camera": self.camera, "pairing": self.pairing.hex(), "paired": self.paired,
                "epoch": self.epoch, "epochs": [[e, list(s)] for e, s in sorted(self.epochs.items())],
                "counter": self.counter, "stream_id": self.stream_id, "period_s": self.period_s,
                "periods": [[e, p] for e, p in sorted(self.periods.items())],
                "issued": [[e, t] for e, t in sorted(self.issued.items())],
                "rotation": None if self.rotation is None else self.rotation.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> "OwnedCamera":
        try:
            pairing = bytes.fromhex(data["pairing"])
            if len(pairing) != 32:
                raise ValueError("pairing must be 32 bytes")
            epochs = {int(e): [control.check_account(a, "share") for a in s] for e, s in data["epochs"]}
            periods = {int(e): int(p) for e, p in data["periods"]}
            for period_s in [int(data["period_s"])] + list(periods.values()):
                check_period_s(period_s)
            rotation = None if data["rotation"] is None else PendingRotation.from_json(data["rotation"])
            return cls(control.check_account(data["camera"], "camera"), pairing, bool(data["paired"]),
                       int(data["epoch"]), epochs, int(data["counter"]), int(data["stream_id"]),
                       int(data["period_s"]), periods, {int(e): int(t) for e, t in data["issued"]}, rotation)
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError("owner file: a camera entry is unusable (%s)" % exc.__class__.__name__) from None


def _periods_granted(period_s: int, now_ms: int, lead_ms: int) -> List[int]:
    """The periods a holder is granted at ``now_ms``: the one in progress, and the next once
    its start is ``lead_ms`` away or less (GRANTS.md section 8)."""
    size = period_s * 1000
    current = now_ms // size
    return [current, current + 1] if now_ms >= (current + 1) * size - lead_ms else [current]


class Owner:
    """The owner's app state: its account, its cameras, its displays, its services, its contacts,
    and its settings: ``period_s`` (the period length of the epochs it issues), ``lead_ms``
    (how long before a period its keys go out), ``alarm_after_ms`` (how long a rotation may
    stay unconfirmed before the app and its displays raise an alarm), ``retry_first_ms`` and
    ``retry_max_ms`` (the backoff of a pending rotation's retries)."""

    def __init__(self, account: Account, *, period_s: int = DEFAULT_PERIOD_S, lead_ms: int = DEFAULT_LEAD_MS,
                 alarm_after_ms: int = DEFAULT_ALARM_AFTER_MS, retry_first_ms: int = RETRY_FIRST_MS,
                 retry_max_ms: int = RETRY_MAX_MS) -> None:
        self.account = account
        self.cameras: Dict[str, OwnedCamera] = {}
        self.displays: Dict[str, DisplayCard] = {}
        self.display_serials: Dict[str, int] = {}
        self.services: Dict[str, ServiceCard] = {}
        self.service_serials: Dict[str, int] = {}
        self.contacts: Dict[str, AccountCard] = {}
        self.offer_serials: Dict[str, int] = {}     # contact -> last serial offered to it
        self.taken_serials: Dict[str, int] = {}     # contact -> last serial taken from it
        self.shared_with_me: Dict[bytes, Binding] = {}   # key id -> a period a contact shared
        self.refused_shares: Dict[Tuple[str, str], str] = {}  # (contact, camera) -> why not taken
        self.revoked: List[EpochName] = []          # epochs never to grant again (released, pruned, a
        #                                             contact's revoked), oldest first, the newest MAX_ENTRIES
        self.granted_own: Dict[bytes, int] = {}     # key id -> end_ms of each own period a display may hold
        self.results: List[control.Result] = []     # every result the cameras sent, checked
        self.renewed_ms = 0                         # when every holder was last renewed
        self.set_timing(period_s, lead_ms, alarm_after_ms, retry_first_ms, retry_max_ms)

    def set_timing(self, period_s: int, lead_ms: int, alarm_after_ms: int = DEFAULT_ALARM_AFTER_MS,
                   retry_first_ms: int = RETRY_FIRST_MS, retry_max_ms: int = RETRY_MAX_MS) -> None:
        """The owner's settings; OwnerError when they cannot work (a lead of a whole period or
        more would grant two periods ahead)."""
        try:
            check_period_s(period_s)
        except ValueError as exc:
            raise OwnerError(str(exc)) from None
        if not 0 <= lead_ms < period_s * 1000:
            raise OwnerError("the renewal lead must be shorter than the period")
        if alarm_after_ms < 0 or not 0 < retry_first_ms <= retry_max_ms:
            raise OwnerError("alarm and retry times must be positive, the first retry no later than the longest")
        self.period_s, self.lead_ms, self.alarm_after_ms = period_s, lead_ms, alarm_after_ms
        self.retry_first_ms, self.retry_max_ms = retry_first_ms, retry_max_ms

    @classmethod
    def new(cls, account_id: str, test_only: bool = False, **settings: int) -> "Owner":
        return cls(Account.new(account_id, test_only), **settings)

    @property
    def name(self) -> str:
        return self.account.account

    def __repr__(self) -> str:
        return "Owner(%r, %d cameras, %d displays, %d services, %d contacts)" % (
            self.name, len(self.cameras), len(self.displays), len(self.services), len(self.contacts))

    # -- pairing ------------------------------------------------------------------------------

    def pairing_offer(self, camera: str, now_ms: int, ttl_ms: int = PAIRING_TTL_MS,
                      period_s: Optional[int] = None) -> bytes:
        """The bytes to hand to ``camera`` out of band: a fresh pairing secret for this claim, and
        the period length of its epoch 1 (60 s to a day; by default the app's ``period_s``).

        A camera already paired by this app is paired again only after a release or a reset.
        """
        control.check_account(camera, "camera")
        known = self.cameras.get(camera)
        if known is not None and known.paired:
            raise OwnerError("camera %r is paired: release it first" % camera)
        period_s = self.period_s if period_s is None else period_s
        try:
            offer = control.PairingOffer(self.name, camera, os.urandom(32), now_ms + ttl_ms, period_s)
            wire = offer.encode()
        except ValueError as exc:
            raise OwnerError("no pairing offer: %s" % exc) from None
        self.cameras[camera] = OwnedCamera(camera, offer.secret, period_s=period_s, periods={1: period_s})
        return wire

    def on_result(self, camera: str, payload: bytes) -> control.Result:
        """A camera's result, checked under its command key; the app's view of the camera follows it.

        Raises ControlError when it is not this camera's (a forgery, another pairing's, garbage).
        """
        cam = self.cameras.get(camera)
        if cam is None:
            raise control.ControlError(control.WRONG_CAMERA, "not a camera of %s" % self.name)
        result = control.open_result(command_key(cam.pairing, self.name, camera), camera, payload)
        if result.owner != self.name:
            raise control.ControlError(control.OWNER_MISMATCH, "a result for owner %r" % result.owner)
        self.results.append(result)
        if result.status not in control.ACCEPTED_STATUSES:
            if result.op == control.ROTATE and result.status == control.STALE_EPOCH:
                cam.epochs.setdefault(result.epoch, cam.shares)  # learn the camera's epoch
            return result
        if result.op == control.PAIR and not cam.paired:
            # Only the pairing this app waits for: the cloud may replay the pair result of this
            # very pairing later, and it must not undo the rotations since.
            period_s = cam.period_s_of(1)
            cam.paired, cam.epoch, cam.counter, cam.stream_id = True, result.epoch, 0, result.stream_id
            cam.epochs, cam.periods = {result.epoch: []}, {result.epoch: period_s}
        elif result.op == control.ROTATE and result.epoch in cam.epochs and result.epoch > cam.epoch:
            # Forward only: an older result replayed must not take the app back to an older epoch.
            cam.epoch, cam.stream_id = result.epoch, result.stream_id
        elif result.op == control.RELEASE:
            self._forget(cam)
        return result

    # -- commands -----------------------------------------------------------------------------

    def _paired(self, camera: str) -> OwnedCamera:
        cam = self.cameras.get(camera)
        if cam is None or not cam.paired:
            raise OwnerError("camera %r is not paired with %s" % (camera, self.name))
        return cam

    def _next_counter(self, cam: OwnedCamera) -> int:
        if cam.counter >= control.MAX_COUNTER:
            raise OwnerError("camera %r has used every command counter: release it and pair it again" % cam.camera)
        return cam.counter + 1

    def rotate(self, camera: str, shares: List[str], now_ms: int, period_s: Optional[int] = None) -> bytes:
        """A new epoch with slot 0 for the owner and slots 1.. for ``shares``, with periods of
        ``period_s`` seconds (by default the current epoch's): the command bytes.

        The new epoch's keys are granted from now on (``grants_for``): send the grants first.
        The rotation is pending until the camera's result confirms it (``due_retries``).
        """
        cam = self._paired(camera)
        shares = [control.check_account(a, "share") for a in shares]
        if len(shares) > MAX_SLOTS - 1 or len(set(shares)) != len(shares) or self.name in shares:
            raise OwnerError("at most %d distinct shares, never the owner" % (MAX_SLOTS - 1))
        period_s = cam.period_s_of(cam.epoch) if period_s is None else period_s
        epoch = cam.epoch_hwm + 1
        if epoch > MAX_EPOCH:
            raise OwnerError("camera %r has used every epoch: release it and pair it again" % camera)
        counter = self._next_counter(cam)
        try:
            wire = control.Command(control.ROTATE, camera, self.name, counter, epoch, shares, now_ms,
                                   period_s).encode(command_key(cam.pairing, self.name, camera))
        except ValueError as exc:
            raise OwnerError("no rotate command: %s" % exc) from None
        cam.epochs[epoch], cam.periods[epoch] = shares, period_s
        # Forget the oldest epochs beyond KEPT_EPOCHS, never one in force (the camera may be
        # tagging with it while the rotations after it are pending): they are revoked.
        for old in [e for e in sorted(cam.epochs) if e < cam.epoch][:max(0, len(cam.epochs) - KEPT_EPOCHS)]:
            self._revoke([cam.epoch_name(self.name, old)])
            del cam.epochs[old]
            cam.periods.pop(old, None)
            cam.issued.pop(old, None)
        cam.counter = counter
        cam.issued[epoch] = now_ms
        cam.rotation = PendingRotation(epoch, wire, now_ms, 1, now_ms + self.retry_first_ms)
        return wire

    def share(self, camera: str, account: str, now_ms: int) -> bytes:
        shares = self._paired(camera).newest_shares
        if account in shares:
            raise OwnerError("camera %r is already shared with %s" % (camera, account))
        return self.rotate(camera, shares + [account], now_ms)

    def revoke(self, camera: str, account: str, now_ms: int) -> bytes:
        """Sharing ends with a new epoch without ``account``. Its renewals end at once, in every
        epoch: it decrypts nothing captured after its last period, whether or not the camera
        ever takes this command."""
        shares = self._paired(camera).newest_shares
        if account not in shares:
            raise OwnerError("camera %r is not shared with %s" % (camera, account))
        return self.rotate(camera, [a for a in shares if a != account], now_ms)

    def release(self, camera: str, now_ms: int) -> bytes:
        """Give the camera up (before a resale): it forgets the pairing once it takes this."""
        cam = self._paired(camera)
        counter = self._next_counter(cam)
        try:
            wire = control.Command(control.RELEASE, camera, self.name, counter, max(cam.epoch, 1), [],
                                   now_ms).encode(command_key(cam.pairing, self.name, camera))
        except ValueError as exc:
            raise OwnerError("no release command: %s" % exc) from None
        cam.counter = counter
        return wire

    def forget(self, camera: str) -> None:
        """The camera was reset by its button (or sold): its keys are granted no more."""
        cam = self.cameras.get(camera)
        if cam is not None:
            self._forget(cam)

    def _forget(self, cam: OwnedCamera) -> None:
        """The camera is no longer this app's (released, reset, sold): every epoch of its pairing
        is revoked, and the next grants drop them from every display and service at once."""
        self._revoke([cam.epoch_name(self.name, e) for e in sorted(cam.epochs)])
        del self.cameras[cam.camera]

    def _revoke(self, names: List[EpochName]) -> None:
        """Remember epochs never to grant again, in the order they were revoked; only the newest
        MAX_ENTRIES are kept (and sent): a holder keeps every revoked entry it was sent, and
        the periods of an older one have left every holder (``keep``) or were never granted."""
        known = set(self.revoked)
        self.revoked += [n for n in names if n not in known]
        del self.revoked[:-MAX_ENTRIES]

    # -- pending rotations: retries and alarms --------------------------------------------------

    def due_retries(self, now_ms: int) -> List[Tuple[str, bytes]]:
        """(camera, command) for every pending rotation whose retry is due: the same bytes
        again (a camera that took it answers ``already_applied``), then the next retry
        after twice the wait, at most ``retry_max_ms``."""
        out = []
        for camera, cam in sorted(self.cameras.items()):
            pending = cam.pending
            if pending is None or pending.next_retry_ms > now_ms:
                continue
            wait = min(self.retry_first_ms << min(pending.attempts, 30), self.retry_max_ms)
            pending.attempts += 1
            pending.next_retry_ms = now_ms + wait
            out.append((camera, pending.command))
        return out

    def rotation_alarms(self, now_ms: int) -> List[RotationAlarm]:
        """The rotations pending for ``alarm_after_ms`` or longer: the owner must know that a
        revoked viewer may still be watching, and that the cloud may be dropping commands."""
        out = []
        for camera, cam in sorted(self.cameras.items()):
            pending = cam.pending
            if pending is not None and now_ms - pending.issued_ms >= self.alarm_after_ms:
                out.append(RotationAlarm(camera, pending.epoch, pending.issued_ms, pending.attempts))
        return out

    def camera_states(self) -> List[CameraState]:
        """What the grants say of each paired camera: its newest epoch, since when, pending or not."""
        out = []
        for camera, cam in sorted(self.cameras.items()):
            if not cam.paired or not cam.epochs:
                continue
            newest = cam.epoch_hwm
            out.append(CameraState(self.name, camera, newest, cam.issued.get(newest, 0), newest > cam.epoch))
        return out

    # -- displays and services ------------------------------------------------------------------

    def enroll(self, display: Display) -> str:
        """Enroll one of the owner's displays (out of band: the display shows a code, the owner
        confirms it); returns the code."""
        code = OutOfBand.enroll(self.account, display)
        self.displays[display.display] = display.card()
        return code

    def enroll_card(self, card: DisplayCard) -> str:
        """Enroll a display known only by its card, read off its screen (a browser display: it
        pins this account on its own side, from the account card handed to it); returns the code
        both sides show, for the owner to compare."""
        self.displays[card.display] = card
        return enrollment_code(card, self.account.card())

    def enroll_service(self, card: ServiceCard) -> str:
        """Enroll a service by its card (from the service's provider, checked by the owner: the
        code it shows must be the one the service returns); returns the code."""
        known = self.services.get(card.service)
        if known is not None and known != card:
            raise OwnerError("service %r is enrolled with another key: remove it first" % card.service)
        self.services[card.service] = card
        return enrollment_code(card, self.account.card())

    def remove_display(self, display: str) -> None:
        """Stop granting a display (lost, sold, stolen): it decrypts nothing captured after the
        last period it was granted."""
        self.displays.pop(display, None)

    def remove_service(self, service: str) -> None:
        """Stop granting a service: it verifies nothing captured after its last period."""
        self.services.pop(service, None)

    def keys(self, now_ms: int) -> List[Binding]:
        """What the owner's displays are granted at ``now_ms``: its slot of every epoch in force,
        for the period in progress (and the next within the lead), and the periods contacts
        shared with it that have not ended."""
        return self._with_shared(self.own_keys(now_ms), now_ms)

    def _with_shared(self, own: List[Binding], now_ms: int) -> List[Binding]:
        """``own``, then the shared periods not ended, as many as one message holds (taken first, first)."""
        shared = [b for b in self._shared_in_step(own) if b.end_ms > now_ms]
        return own + shared[:max(0, MAX_KEYS - len(own))]

    def _held_with(self, own: List[Binding]) -> Keyring:
        """What this app's displays may hold besides ``own``: the revoked epochs, and what
        contacts shared (taken first, first), as a keyring that refuses what contradicts it."""
        ring = Keyring()
        for name in self.revoked:
            ring.mark_revoked(name)
        ring.grant_all(own)
        for b in self.shared_with_me.values():
            if b.key_id not in self.granted_own and ring.conflict(b) is None:
                ring.grant(b)
        return ring

    def _shared_in_step(self, own: List[Binding]) -> List[Binding]:
        """The periods contacts shared that agree with the owner's own keys (those granted now
        and those its displays may still hold) and with each other. ``accept_offer`` takes no
        other; this keeps every grants message one a display takes, whatever changed since
        (a display refuses a whole message that rebinds a key id it holds)."""
        ring = self._held_with(own)
        return [b for b in self.shared_with_me.values() if ring.binding_or_none(b.key_id) == b]

    def _note_granted(self, own: List[Binding], now_ms: int) -> None:
        """Remember the own periods a display was granted, for as long as it may keep them."""
        for b in own:
            self.granted_own[b.key_id] = b.end_ms
        for key_id in [k for k, end_ms in self.granted_own.items() if end_ms <= now_ms - DEFAULT_KEEP_MS]:
            del self.granted_own[key_id]

    def own_keys(self, now_ms: int) -> List[Binding]:
        """The owner's slot of its own cameras' epochs in force, in the periods granted at ``now_ms``."""
        out = []
        for _, cam in sorted(self.cameras.items()):
            for epoch in cam.in_force():
                keys = cam.epoch_keys(self.name, epoch)
                out += [Binding.of_epoch(keys, p) for p in _periods_granted(keys.period_s, now_ms, self.lead_ms)]
        return out

    def keyring(self, from_ms: int, to_ms: int) -> Keyring:
        """The owner's own keys for every epoch it holds over [from_ms, to_ms), and what contacts
        shared for that time: for tools (``segbind verify``) on the owner's own device."""
        own = [b for _, cam in sorted(self.cameras.items()) for epoch in sorted(cam.epochs)
               for b in Binding.periods_of_epoch(cam.epoch_keys(self.name, epoch), from_ms, to_ms)]
        return Keyring(own).grant_all(b for b in self._shared_in_step(own) if b.end_ms > from_ms and b.start_ms < to_ms)

    def grants_for(self, display: str, now_ms: Optional[int] = None) -> Dict[str, Any]:
        """The sealed ``grants`` message for one of the owner's displays at ``now_ms``."""
        card = self.displays.get(display)
        if card is None:
            raise OwnerError("display %r is not enrolled with %s" % (display, self.name))
        now = _now_ms() if now_ms is None else now_ms
        serial = self.display_serials.get(display, 0) + 1
        own = self.own_keys(now)
        sealed = self.account.grants_for(card, serial, self._with_shared(own, now), self.revoked, now,
                                         self.camera_states(), self.alarm_after_ms)
        self.display_serials[display] = serial
        self._note_granted(own, now)
        return sealed

    def service_grants_for(self, service: str, now_ms: Optional[int] = None) -> Dict[str, Any]:
        """The sealed ``service-grants`` message for an enrolled service: the owner's own cameras only."""
        card = self.services.get(service)
        if card is None:
            raise OwnerError("service %r is not enrolled with %s" % (service, self.name))
        now = _now_ms() if now_ms is None else now_ms
        serial = self.service_serials.get(service, 0) + 1
        self.service_serials[service] = serial
        revoked = [r for r in self.revoked if r.owner == self.name]
        return self.account.service_grants_for(card, serial, self.own_keys(now), revoked, now)

    # -- contacts -----------------------------------------------------------------------------

    def add_contact(self, card: AccountCard) -> None:
        """A contact's card, from an out-of-band exchange (never from the cloud)."""
        if card.account == self.name:
            raise OwnerError("a contact cannot have this account's own id %r" % card.account)
        known = self.contacts.get(card.account)
        if known is not None and known != card:
            raise OwnerError("contact %r already has another key" % card.account)
        self.contacts[card.account] = card

    def contact_keys(self, to: str, now_ms: int, camera: Optional[str] = None) -> List[Binding]:
        """``to``'s slot in the owner's cameras (or one of them), for the periods granted at
        ``now_ms``, in every epoch in force that still shares with it."""
        out = []
        for name, cam in sorted(self.cameras.items()):
            if camera is not None and name != camera:
                continue
            for epoch in cam.in_force():
                if cam.renewed_holder(to, epoch):
                    keys = cam.epoch_keys(self.name, epoch)
                    out += [Binding.of_epoch(keys, p, to)
                            for p in _periods_granted(keys.period_s, now_ms, self.lead_ms)]
        return out

    def offer_for(self, to: str, now_ms: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """The sealed offer of every period key ``to`` holds now in the owner's cameras; None
        when nothing is shared with it (a revoked contact is offered nothing more)."""
        card = self.contacts.get(to)
        if card is None:
            raise OwnerError("%s is not a contact of %s" % (to, self.name))
        now = _now_ms() if now_ms is None else now_ms
        keys = self.contact_keys(to, now)
        if not keys:
            return None
        return self._offer(card, keys, now)

    def share_offer(self, camera: str, to: str, now_ms: Optional[int] = None) -> Dict[str, Any]:
        """The sealed offer of the period keys ``to`` holds now in ``camera`` (possibly none)."""
        self._paired(camera)
        card = self.contacts.get(to)
        if card is None:
            raise OwnerError("%s is not a contact of %s" % (to, self.name))
        now = _now_ms() if now_ms is None else now_ms
        return self._offer(card, self.contact_keys(to, now, camera), now)

    def _offer(self, card: AccountCard, keys: List[Binding], now_ms: int) -> Dict[str, Any]:
        serial = self.offer_serials.get(card.account, 0) + 1
        self.offer_serials[card.account] = serial
        return self.account.offer_share(card, serial, keys, [], now_ms)

    def sharing_with(self) -> List[str]:
        """The contacts some camera is still shared with (in its newest epoch)."""
        return sorted({a for cam in self.cameras.values() if cam.paired for a in cam.epochs.get(cam.epoch_hwm, [])}
                      & set(self.contacts))

    def accept_offer(self, sealed: object, contact: str, now_ms: Optional[int] = None) -> ShareOffer:
        """A contact's offer, opened and checked (GrantError when refused); its keys are granted to
        this owner's displays from the next ``grants_for``.

        A camera is known by (owner, camera), but people read its id: the keys of a camera
        whose id this app already holds from someone else (its own camera, or another
        contact's with periods not yet ended) are not taken, and ``refused_shares`` says so.
        Camera ids are the cameras' own ids in one cloud, so two owners at once is never a
        real camera: it is a contact passing off someone else's camera, or a resale whose
        old keys have not run out (the new owner's next renewal is taken once they have).
        Nothing is asked of the owner: a question a person cannot judge is one they learn
        to answer yes.
        """
        card = self.contacts.get(contact)
        if card is None:
            raise OwnerError("%s is not a contact of %s" % (contact, self.name))
        now = _now_ms() if now_ms is None else now_ms
        offer = self.account.open_offer(sealed, card, self.taken_serials.get(contact, 0))
        self.taken_serials[contact] = offer.serial
        self._revoke(offer.revoked)  # the contact's own epochs only (a ShareOffer names no other owner)
        revoked = set(self.revoked)
        for key_id in [k for k, b in self.shared_with_me.items()
                       if b.epoch_name in revoked or b.end_ms <= now - DEFAULT_KEEP_MS]:
            del self.shared_with_me[key_id]  # revoked, or kept as long as a display keeps it, no longer
        held_elsewhere = {b.camera: b.owner for b in self.shared_with_me.values() if b.owner != contact
                          and b.end_ms > now}
        own = self.own_keys(now)
        held = self._held_with(own)
        own_ids = {b.key_id for b in own} | set(self.granted_own)
        for binding in offer.keys:
            if binding.epoch_name in revoked:
                continue  # never granted again
            why = ""
            same_key_id = held.binding_or_none(binding.key_id)
            if binding.start_ms > now + binding.period_s * 1000 + CLOCK_SLACK_MS:
                why = NOT_YET
            elif binding.camera in self.cameras:
                why = OWN_CAMERA
            elif binding.camera in held_elsewhere:
                why = HELD_FROM_ANOTHER_OWNER
            elif binding.key_id in own_ids or (same_key_id is not None and same_key_id != binding):
                why = KEY_ID_HELD
            elif held.conflict(binding) is not None:
                why = EPOCH_ID_HELD
            if why:
                self.refused_shares[(contact, binding.camera)] = why
                continue
            self.refused_shares.pop((contact, binding.camera), None)
            self.shared_with_me[binding.key_id] = binding
            held.grant(binding)
        return offer

    # -- renewal --------------------------------------------------------------------------------

    def next_renewal_ms(self) -> Optional[int]:
        """When the next period of an epoch in force is ``lead_ms`` away, after the last renewal;
        None when no camera is paired."""
        times = []
        for cam in self.cameras.values():
            for epoch in cam.in_force():
                size = cam.period_s_of(epoch) * 1000
                start = ((self.renewed_ms + self.lead_ms) // size + 1) * size
                times.append(start - self.lead_ms)
        return min(times) if times else None

    def renewal_due(self, now_ms: int) -> bool:
        due = self.next_renewal_ms()
        return due is not None and due <= now_ms

    def renew(self, now_ms: int) -> Renewal:
        """Every holder's keys at ``now_ms``: each display's grants, each contact's offer (those
        still shared with), each service's grants. Send them all."""
        self.renewed_ms = now_ms
        return Renewal({d: self.grants_for(d, now_ms) for d in sorted(self.displays)},
                       {c: offer for c in self.sharing_with() if (offer := self.offer_for(c, now_ms)) is not None},
                       {s: self.service_grants_for(s, now_ms) for s in sorted(self.services)})

    # -- the app's file -----------------------------------------------------------------------

    def to_json(self) -> Dict[str, Any]:
        return {
            "segbind": KIND, "version": FILE_VERSION, "account": self.account.to_json(),
            "settings": {"period_s": self.period_s, "lead_ms": self.lead_ms, "alarm_after_ms": self.alarm_after_ms,
                         "retry_first_ms": self.retry_first_ms, "retry_max_ms": self.retry_max_ms},
            "cameras": [c.to_json() for _, c in sorted(self.cameras.items())],
            "displays": [c.to_json() for _, c in sorted(self.displays.items())],
            "display_serials": dict(sorted(self.display_serials.items())),
            "services": [c.to_json() for _, c in sorted(self.services.items())],
            "service_serials": dict(sorted(self.service_serials.items())),
            "contacts": [c.to_json() for _, c in sorted(self.contacts.items())],
            "offer_serials": dict(sorted(self.offer_serials.items())),
            "taken_serials": dict(sorted(self.taken_serials.items())),
            "shared_with_me": [b.to_json() for b in self.shared_with_me.values()],   # in the order taken
            "revoked": [name.to_json() for name in self.revoked],
            "granted_own": [[key_id.hex(), end_ms] for key_id, end_ms in sorted(self.granted_own.items())],
            "renewed_ms": self.renewed_ms,
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any], where: str = "owner file") -> "Owner":
        try:
            settings = data["settings"]
            owner = cls(Account.from_json(data["account"], where), **{k: int(settings[k]) for k in (
                "period_s", "lead_ms", "alarm_after_ms", "retry_first_ms", "retry_max_ms")})
            for item in data["cameras"]:
                cam = OwnedCamera.from_json(item)
                owner.cameras[cam.camera] = cam
            for item in data["displays"]:
                card = DisplayCard.from_json(item, where)
                owner.displays[card.display] = card
            for item in data["services"]:
                service = ServiceCard.from_json(item, where)
                owner.services[service.service] = service
            for item in data["contacts"]:
                contact = AccountCard.from_json(item, where)
                owner.contacts[contact.account] = contact
            owner.display_serials = {str(k): int(v) for k, v in data["display_serials"].items()}
            owner.service_serials = {str(k): int(v) for k, v in data["service_serials"].items()}
            owner.offer_serials = {str(k): int(v) for k, v in data["offer_serials"].items()}
            owner.taken_serials = {str(k): int(v) for k, v in data["taken_serials"].items()}
            for item in data["shared_with_me"]:
                binding = Binding.from_json(item, where)
                owner.shared_with_me[binding.key_id] = binding
            owner.revoked = [EpochName.from_json(item, "%s: a revoked entry" % where) for item in data["revoked"]]
            owner.granted_own = {bytes.fromhex(k): int(end_ms) for k, end_ms in data["granted_own"]}
            owner.renewed_ms = int(data["renewed_ms"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyringError("%s: unusable (%s)" % (where, exc.__class__.__name__)) from None
        return owner

    @classmethod
    def load(cls, path: Path | str) -> "Owner":
        return cls.from_json(read_json(path, KIND), str(path))

    def save(self, path: Path | str) -> None:
        """Atomically, 0600: the file holds the account's keys and every pairing secret."""
        write_json(path, self.to_json())


def _now_ms() -> int:
    return int(time.time() * 1000)


def exchange_contacts(a: Owner, b: Owner) -> Tuple[AccountCard, AccountCard]:
    """Two owners become contacts out of band (cards shown to each other, never via the cloud)."""
    a.add_contact(b.account.card())
    b.add_contact(a.account.card())
    return a.account.card(), b.account.card()

