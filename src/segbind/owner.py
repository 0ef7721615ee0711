"""The owner's app: pairings, commands to cameras, grants to displays, shares with contacts.

Everything that decides who may watch lives here, on the owner's own device, and
nowhere in the cloud (docs/FORMAT.md section 8, docs/GRANTS.md). The app

- pairs a camera out of band: ``pairing_offer`` makes a fresh pairing secret P and
  the bytes to hand to the camera (its lens reads them as a QR code);
- commands the camera under the command key C derived from P: ``share``,
  ``revoke``, ``rotate``, ``release`` return the command bytes to send through the
  cloud, and ``on_result`` checks what the camera answers;
- grants its displays the owner's slot key of every epoch it holds, plus the keys
  its contacts shared with it, sealed to each display (``grants_for``);
- offers a contact the keys of that contact's slot (``share_offer``), and takes a
  contact's offer only when the contact's own key signed it (``accept_offer``).

Sans-I/O: methods return bytes or sealed messages to send; the caller carries
them (``host_sim.app`` over MQTT, or anything else). Grants go out before the
command that needs them: a display holds a new epoch's key before the camera tags
with it. Secret material never appears in ``repr``, logs or errors; the app's
file is written 0600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from segbind_core import control
from segbind_core.keys import DEFAULT_PERIOD_S, Epoch, check_period_s, command_key
from segbind_core.tag import MAX_EPOCH, MAX_SLOTS

from .errors import KeyringError
from .grants import Account, AccountCard, Display, DisplayCard, OutOfBand, ShareOffer, enrollment_code
from .keyring import FILE_VERSION, Binding, GrantId, read_json, write_json

__all__ = ["OwnedCamera", "Owner", "OwnerError", "RESULT_TEXT", "exchange_contacts", "explain"]

KIND = "owner"
PAIRING_TTL_MS = 10 * 60 * 1000  # an offer shown on the phone is good for ten minutes
KEPT_EPOCHS = 16                 # epochs of a pairing the owner's displays keep keys for

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
class OwnedCamera:
    """One camera as its owner's app knows it. ``epochs`` maps every epoch issued in this pairing
    (newest last, at most ``KEPT_EPOCHS``) to its shares; ``epoch`` is the one the camera confirmed."""

    camera: str
    pairing: bytes
    paired: bool = False
    epoch: int = 0
    epochs: Dict[int, List[str]] = field(default_factory=dict)
    counter: int = 0
    stream_id: int = 0
    periods: Dict[int, int] = field(default_factory=dict)  # epoch -> its period length (s)

    def __repr__(self) -> str:
        return "OwnedCamera(%r, paired=%s, epoch=%d, shares=%r, pairing=<hidden>)" % (
            self.camera, self.paired, self.epoch, self.shares)

    @property
    def shares(self) -> List[str]:
        return list(self.epochs.get(self.epoch, []))

    @property
    def epoch_hwm(self) -> int:
        return max(self.epochs) if self.epochs else 0

    def period_s(self, epoch: int) -> int:
        """The period length of ``epoch`` (from the pairing offer or the rotate that made it)."""
        return self.periods.get(epoch, DEFAULT_PERIOD_S)

    def epoch_keys(self, owner: str, epoch: int) -> Epoch:
        return Epoch.of_pairing(self.pairing, owner, self.camera, epoch, self.epochs[epoch], self.period_s(epoch))

    def to_json(self) -> Dict[str, Any]:
        return {"camera": self.camera, "pairing": self.pairing.hex(), "paired": self.paired,
                "epoch": self.epoch, "epochs": [[e, list(s)] for e, s in sorted(self.epochs.items())],
                "counter": self.counter, "stream_id": self.stream_id,
                "periods": [[e, p] for e, p in sorted(self.periods.items())]}

    @classmethod
    def from_json(cls, data: Any) -> "OwnedCamera":
        try:
            pairing = bytes.fromhex(data["pairing"])
            if len(pairing) != 32:
                raise ValueError("pairing must be 32 bytes")
            epochs = {int(e): [control.check_account(a, "share") for a in s] for e, s in data["epochs"]}
            periods = {int(e): int(p) for e, p in data.get("periods", [])}
            for period_s in periods.values():
                check_period_s(period_s)
            return cls(control.check_account(data["camera"], "camera"), pairing, bool(data["paired"]),
                       int(data["epoch"]), epochs, int(data["counter"]), int(data["stream_id"]), periods)
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError("owner file: a camera entry is unusable (%s)" % exc.__class__.__name__) from None


class Owner:
    """The owner's app state: its account, its cameras, its displays, its contacts."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.cameras: Dict[str, OwnedCamera] = {}
        self.displays: Dict[str, DisplayCard] = {}
        self.display_serials: Dict[str, int] = {}
        self.contacts: Dict[str, AccountCard] = {}
        self.offer_serials: Dict[str, int] = {}     # contact -> last serial offered to it
        self.taken_serials: Dict[str, int] = {}     # contact -> last serial taken from it
        self.shared_with_me: Dict[GrantId, Binding] = {}
        self.revoked: List[GrantId] = []            # epochs never to grant again (released, revoked)
        self.results: List[control.Result] = []     # every result the cameras sent, checked

    @classmethod
    def new(cls, account_id: str, test_only: bool = False) -> "Owner":
        return cls(Account.new(account_id, test_only))

    @property
    def name(self) -> str:
        return self.account.account

    def __repr__(self) -> str:
        return "Owner(%r, %d cameras, %d displays, %d contacts)" % (
            self.name, len(self.cameras), len(self.displays), len(self.contacts))

    # -- pairing ------------------------------------------------------------------------------

    def pairing_offer(self, camera: str, now_ms: int, ttl_ms: int = PAIRING_TTL_MS,
                      period_s: int = DEFAULT_PERIOD_S) -> bytes:
        """The bytes to hand to ``camera`` out of band: a fresh pairing secret for this claim, and
        the period length of its epoch 1 (60 s to a day).

        A camera already paired by this app is paired again only after a release or a reset.
        """
        control.check_account(camera, "camera")
        known = self.cameras.get(camera)
        if known is not None and known.paired:
            raise OwnerError("camera %r is paired: release it first" % camera)
        try:
            offer = control.PairingOffer(self.name, camera, os.urandom(32), now_ms + ttl_ms, period_s)
            wire = offer.encode()
        except ValueError as exc:
            raise OwnerError("no pairing offer: %s" % exc) from None
        self.cameras[camera] = OwnedCamera(camera, offer.secret, periods={1: period_s})
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
        if result.op == control.PAIR:
            period_s = cam.period_s(1)
            cam.paired, cam.epoch, cam.counter, cam.stream_id = True, result.epoch, 0, result.stream_id
            cam.epochs, cam.periods = {result.epoch: []}, {result.epoch: period_s}
        elif result.op == control.ROTATE and result.epoch in cam.epochs:
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
        """
        cam = self._paired(camera)
        shares = [control.check_account(a, "share") for a in shares]
        if len(shares) > MAX_SLOTS - 1 or len(set(shares)) != len(shares) or self.name in shares:
            raise OwnerError("at most %d distinct shares, never the owner" % (MAX_SLOTS - 1))
        period_s = cam.period_s(cam.epoch) if period_s is None else period_s
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
        for old in sorted(cam.epochs)[:-KEPT_EPOCHS]:
            del cam.epochs[old]
            cam.periods.pop(old, None)
            self.revoked.append((self.name, camera, old))
        cam.counter = counter
        return wire

    def share(self, camera: str, account: str, now_ms: int) -> bytes:
        shares = self._paired(camera).shares
        if account in shares:
            raise OwnerError("camera %r is already shared with %s" % (camera, account))
        return self.rotate(camera, shares + [account], now_ms)

    def revoke(self, camera: str, account: str, now_ms: int) -> bytes:
        """Sharing ends with a new epoch without ``account``; its old keys open nothing new."""
        shares = self._paired(camera).shares
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
        self.revoked.extend((self.name, cam.camera, e) for e in sorted(cam.epochs))
        del self.cameras[cam.camera]

    # -- displays -----------------------------------------------------------------------------

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

    def keys(self) -> List[Binding]:
        """What the owner's displays are granted: its slot of every epoch it holds, and what
        contacts shared with it."""
        out = [Binding.of_epoch(cam.epoch_keys(self.name, e))
               for cam in self.cameras.values() for e in sorted(cam.epochs)]
        revoked = set(self.revoked)
        out += [b for gid, b in sorted(self.shared_with_me.items()) if gid not in revoked]
        return out

    def grants_for(self, display: str, now_ms: Optional[int] = None) -> Dict[str, Any]:
        """The sealed ``grants`` message for one of the owner's displays (its whole keyring)."""
        card = self.displays.get(display)
        if card is None:
            raise OwnerError("display %r is not enrolled with %s" % (display, self.name))
        serial = self.display_serials.get(display, 0) + 1
        self.display_serials[display] = serial
        revoked = sorted(set(self.revoked))
        return self.account.grants_for(card, serial, self.keys(), revoked, now_ms)

    # -- contacts -----------------------------------------------------------------------------

    def add_contact(self, card: AccountCard) -> None:
        """A contact's card, from an out-of-band exchange (never from the cloud)."""
        known = self.contacts.get(card.account)
        if known is not None and known != card:
            raise OwnerError("contact %r already has another key" % card.account)
        self.contacts[card.account] = card

    def share_offer(self, camera: str, to: str, now_ms: Optional[int] = None) -> Dict[str, Any]:
        """The sealed offer of the slot keys ``to`` holds in ``camera``'s epochs.

        Revoking a share needs no message: the next epoch has no slot for ``to``, and keys
        of the epochs it was shared stay valid only for what was captured then.
        """
        cam = self._paired(camera)
        card = self.contacts.get(to)
        if card is None:
            raise OwnerError("%s is not a contact of %s" % (to, self.name))
        keys = [Binding.of_epoch(cam.epoch_keys(self.name, epoch), to)
                for epoch, shares in sorted(cam.epochs.items()) if to in shares]
        serial = self.offer_serials.get(to, 0) + 1
        self.offer_serials[to] = serial
        return self.account.offer_share(card, serial, keys, [], now_ms)

    def accept_offer(self, sealed: object, contact: str) -> ShareOffer:
        """A contact's offer, opened and checked (GrantError when refused); its keys are granted to
        this owner's displays from the next ``grants_for``."""
        card = self.contacts.get(contact)
        if card is None:
            raise OwnerError("%s is not a contact of %s" % (contact, self.name))
        offer = self.account.open_offer(sealed, card, self.taken_serials.get(contact, 0))
        self.taken_serials[contact] = offer.serial
        for gid in offer.revoked:
            self.shared_with_me.pop(gid, None)
            if gid not in self.revoked:
                self.revoked.append(gid)
        for binding in offer.keys:
            self.shared_with_me[(binding.owner, binding.camera, binding.epoch)] = binding
        return offer

    # -- the app's file -----------------------------------------------------------------------

    def to_json(self) -> Dict[str, Any]:
        return {
            "segbind": KIND, "version": FILE_VERSION, "account": self.account.to_json(),
            "cameras": [c.to_json() for _, c in sorted(self.cameras.items())],
            "displays": [c.to_json() for _, c in sorted(self.displays.items())],
            "display_serials": dict(sorted(self.display_serials.items())),
            "contacts": [c.to_json() for _, c in sorted(self.contacts.items())],
            "offer_serials": dict(sorted(self.offer_serials.items())),
            "taken_serials": dict(sorted(self.taken_serials.items())),
            "shared_with_me": [b.to_json() for _, b in sorted(self.shared_with_me.items())],
            "revoked": [list(g) for g in self.revoked],
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any], where: str = "owner file") -> "Owner":
        try:
            owner = cls(Account.from_json(data["account"], where))
            for item in data["cameras"]:
                cam = OwnedCamera.from_json(item)
                owner.cameras[cam.camera] = cam
            for item in data["displays"]:
                card = DisplayCard.from_json(item, where)
                owner.displays[card.display] = card
            for item in data["contacts"]:
                contact = AccountCard.from_json(item, where)
                owner.contacts[contact.account] = contact
            owner.display_serials = {str(k): int(v) for k, v in data["display_serials"].items()}
            owner.offer_serials = {str(k): int(v) for k, v in data["offer_serials"].items()}
            owner.taken_serials = {str(k): int(v) for k, v in data["taken_serials"].items()}
            for item in data["shared_with_me"]:
                binding = Binding.from_json(item, where)
                owner.shared_with_me[(binding.owner, binding.camera, binding.epoch)] = binding
            owner.revoked = [(str(o), str(c), int(e)) for o, c, e in data["revoked"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyringError("%s: unusable (%s)" % (where, exc.__class__.__name__)) from None
        return owner

    @classmethod
    def load(cls, path: Path | str) -> "Owner":
        return cls.from_json(read_json(path, KIND), str(path))

    def save(self, path: Path | str) -> None:
        """Atomically, 0600: the file holds the account's keys and every pairing secret."""
        write_json(path, self.to_json())


def exchange_contacts(a: Owner, b: Owner) -> Tuple[AccountCard, AccountCard]:
    """Two owners become contacts out of band (cards shown to each other, never via the cloud)."""
    a.add_contact(b.account.card())
    b.add_contact(a.account.card())
    return a.account.card(), b.account.card()

