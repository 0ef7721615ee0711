"""Owner-held keys (docs/GRANTS.md, format 3): cards and files, enrollment, sealed grants of
period keys, every refusal of section 7 produced by the attack it names, what a display keeps
from one message to the next, share offers, services, and secrets kept out of sight.

The wire format is also checked independently: a sealed message is opened, and another
made, here with the ``cryptography`` primitives written out from the spec, not grants.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from segbind import Binding, Keyring, KeyringError, SegbindError
from segbind.errors import GrantConflict
from segbind.grants import (
    Account,
    AccountCard,
    CameraState,
    Display,
    DisplayCard,
    DisplayGrants,
    GrantError,
    GrantRefusal,
    GrantSet,
    OutOfBand,
    Service,
    ServiceCard,
    ServiceGrants,
    ServiceGrantSet,
    ShareOffer,
    enrollment_code,
    open_sealed,
    seal,
)
from segbind.keyring import EpochName, epoch_id
from segbind_core.keys import Epoch

R = GrantRefusal
T = int(time.time() * 1000)   # messages issued without a time are issued now: keys of now's period
PERIOD = T // 1_800_000


# -- the spec, written out here (independent of grants.py) ---------------------------------------

def spec_id(name: str) -> bytes:
    raw = name.encode("utf-8")
    return bytes([len(raw)]) + raw


def spec_key(shared: bytes, eph_pub: bytes, to_pub: bytes, kind: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + to_pub,
                info=b"segbind/v3 seal\x00" + kind.encode()).derive(shared)


def spec_aad(kind: str, to: str, issuer: str) -> bytes:
    return b"segbind/v3 sealed\x00" + kind.encode() + b"\x00" + spec_id(to) + spec_id(issuer)


def spec_epoch_id(root: bytes) -> bytes:
    """FORMAT.md section 2: EID(E) = HKDF(R(E), salt "segbind/v3", info "segbind/v3 epoch id" || 00, L = 16)."""
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=b"segbind/v3", info=b"segbind/v3 epoch id\x00").derive(root)


def spec_open(sealed: Dict[str, Any], recipient_secret: bytes, issuer_signing_pub: bytes) -> bytes:
    """GRANTS.md section 4 backwards: X25519, HKDF, AES-256-GCM, then the Ed25519 signature."""
    kind = sealed["kind"]
    eph_pub, to_pub = bytes.fromhex(sealed["eph"]), bytes.fromhex(sealed["to_pub"])
    shared = X25519PrivateKey.from_private_bytes(recipient_secret).exchange(
        X25519PublicKey.from_public_bytes(eph_pub))
    plaintext = AESGCM(spec_key(shared, eph_pub, to_pub, kind)).decrypt(
        bytes(12), bytes.fromhex(sealed["ciphertext"]), spec_aad(kind, sealed["to"], sealed["from"]))
    size = int.from_bytes(plaintext[:4], "big")
    payload, signature = plaintext[4:4 + size], plaintext[4 + size:]
    assert len(signature) == 64
    Ed25519PublicKey.from_public_bytes(issuer_signing_pub).verify(
        signature, b"segbind/v3 " + kind.encode() + b"\x00" + payload)
    return payload


def spec_seal(kind: str, to: str, to_pub: bytes, issuer: str, payload: bytes, signature: bytes) -> Dict[str, Any]:
    """GRANTS.md section 4 forwards, with any ``issuer`` named in the envelope."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(to_pub))
    plaintext = len(payload).to_bytes(4, "big") + payload + signature
    ciphertext = AESGCM(spec_key(shared, eph_pub, to_pub, kind)).encrypt(
        bytes(12), plaintext, spec_aad(kind, to, issuer))
    return {"segbind": "sealed", "version": 3, "kind": kind, "to": to, "to_pub": to_pub.hex(),
            "from": issuer, "eph": eph_pub.hex(), "ciphertext": ciphertext.hex()}


# -- a small world: alice owns cam-1 and shares it with bob; tv-1 is alice's display ---------------

@dataclass
class World:
    tmp: Path
    alice: Account
    bob: Account
    mallory: Account
    tv: Display
    other_tv: Display
    epoch: Epoch
    grants: DisplayGrants
    pairing: bytes
    secrets: List[str] = field(default_factory=list, repr=False)
    first: Dict[str, Any] = field(default_factory=dict)   # grants serial 1 and 2 (the ``held`` fixture)
    second: Dict[str, Any] = field(default_factory=dict)

    def key(self, slot: int, epoch: int = 1, period: int = PERIOD) -> Binding:
        """Slot ``slot`` (0 alice, 1 bob) of one period of an epoch of alice's cam-1."""
        ep = self.epoch if epoch == 1 else Epoch.of_pairing(self.pairing, "alice", "cam-1", epoch, ["bob"])
        return Binding.of_epoch(ep, period, ep.holders()[slot])

    def name(self, epoch: int = 1) -> EpochName:
        """How revoked entries name an epoch of alice's cam-1 in this pairing."""
        return self.key(0, epoch).epoch_name


def some_binding(owner: str, camera: str, epoch: int, slot: int = 0, period: int = PERIOD) -> Binding:
    """A period grant of someone's camera, with random keys (what a contact could offer); its
    epoch id stands for one pairing of that camera."""
    eid = hashlib.sha256(("test pairing of %s/%s, epoch %d" % (owner, camera, epoch)).encode()).digest()[:16]
    return Binding(os.urandom(16), owner, camera, epoch, eid, period, 1800, slot, os.urandom(32), os.urandom(16))


@pytest.fixture()
def world(tmp_path: Path) -> World:
    alice, bob, mallory = Account.new("alice", test_only=True), Account.new("bob"), Account.new("mallory")
    tv, other_tv = Display.new("tv-1", test_only=True), Display.new("tv-2")
    OutOfBand.enroll(alice, tv)
    OutOfBand.enroll(alice, other_tv)
    pairing = os.urandom(32)
    w = World(tmp_path, alice, bob, mallory, tv, other_tv,
              Epoch.of_pairing(pairing, "alice", "cam-1", 1, ["bob"]), DisplayGrants(tv), pairing)
    for name, party in (("alice", alice), ("bob", bob), ("mallory", mallory), ("tv", tv), ("tv2", other_tv)):
        party.save(tmp_path / (name + ".json"))
        data = json.loads((tmp_path / (name + ".json")).read_text())
        w.secrets += [data[k] for k in ("signing_key", "sealing_key") if k in data]
    keys = w.epoch.period_keys(PERIOD)
    w.secrets += [key.hex() for _, key in keys.slot_keys] + [keys.content_key.hex(), w.epoch.root.hex()]
    w.secrets.append(w.pairing.hex())
    return w


def secret_of(path: Path, name: str) -> bytes:
    return bytes.fromhex(json.loads(path.read_text())[name])


# -- cards and files ---------------------------------------------------------------------------

def test_account_and_display_files_round_trip_and_are_owner_only(world: World) -> None:
    for name in ("alice", "tv"):
        assert stat.S_IMODE((world.tmp / (name + ".json")).stat().st_mode) == 0o600
    alice = Account.load(world.tmp / "alice.json")
    assert alice.account == "alice" and alice.test_only and alice.card() == world.alice.card()
    assert Account.load(world.tmp / "bob.json").test_only is False
    tv = Display.load(world.tmp / "tv.json")
    assert tv.card() == world.tv.card() and tv.owner == world.alice.card() and tv.test_only
    # A loaded display opens what was sealed to the saved one.
    assert DisplayGrants(tv).accept(world.alice.grants_for(world.tv.card(), 1, [world.key(0)])) is not None
    # An unenrolled display saves "owner": null and loads without one.
    fresh = Display.new("tv-3")
    fresh.save(world.tmp / "tv3.json")
    assert json.loads((world.tmp / "tv3.json").read_text())["owner"] is None
    assert Display.load(world.tmp / "tv3.json").owner is None


def test_cards_round_trip_through_json(world: World) -> None:
    card, dcard = world.alice.card(), world.tv.card()
    assert AccountCard.from_json(json.loads(json.dumps(card.to_json()))) == card
    assert DisplayCard.from_json(json.loads(json.dumps(dcard.to_json()))) == dcard
    assert card.to_json()["segbind"] == "account-card" and dcard.to_json()["segbind"] == "display-card"
    assert len(card.fingerprint) == 32 and card.fingerprint != world.bob.card().fingerprint


def _mutations(good: Dict[str, Any], key_field: str, id_field: str) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for change in ({"segbind": "account"}, {"version": 2}, {"version": "3"}, {"version": 3.0}, {"version": True},
                   {key_field: good[key_field].upper()}, {key_field: good[key_field][:-2]},
                   {key_field: "zz" + good[key_field][2:]}, {key_field: " " + good[key_field][1:]},
                   {key_field: 7}, {id_field: ""}, {id_field: "a/b"}, {id_field: "x" * 33}, {id_field: "a\x00b"},
                   {id_field: 12}, {"extra": 1}):
        out.append({**good, **change})
    for name in good:
        out.append({k: v for k, v in good.items() if k != name})
    return out


def test_bad_cards_are_refused_with_a_clear_error(world: World) -> None:
    good = world.alice.card().to_json()
    for bad in _mutations(good, "signing_pub", "account") + [[good], None, "card"]:
        with pytest.raises(KeyringError, match=r"^account card: "):
            AccountCard.from_json(bad)
    dgood = world.tv.card().to_json()
    for bad in _mutations(dgood, "sealing_pub", "display"):
        if bad.get("display") == "a/b":
            continue  # a display id is not an MQTT level: "/" is allowed
        with pytest.raises(KeyringError, match=r"^display card: "):
            DisplayCard.from_json(bad)
    with pytest.raises(KeyringError, match="signing_pub must be 32 bytes"):
        AccountCard("alice", b"\x01" * 31, world.alice.card().sealing_pub)


def test_bad_files_are_refused_with_a_clear_error(world: World) -> None:
    path = world.tmp / "bad.json"
    with pytest.raises(KeyringError, match="no such file"):
        Account.load(world.tmp / "missing.json")
    for text, message in (("", "empty"), ("{", "not valid JSON"), ('{"segbind": "keyring", "version": 3}',
                                                                   "not a segbind account file")):
        path.write_text(text)
        with pytest.raises(KeyringError, match=message):
            Account.load(path)
    good = json.loads((world.tmp / "alice.json").read_text())
    for change, message in (({"signing_key": good["signing_key"][:-2]}, "signing_key must be 32 bytes"),
                            ({"sealing_key": good["sealing_key"].upper()}, "sealing_key must be lowercase hex"),
                            ({"test_only": "yes"}, "test_only"), ({"account": "a+b"}, "account must not contain"),
                            ({"extra": 1}, "unknown field")):
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(KeyringError, match=message) as info:
            Account.load(path)
        assert str(info.value).startswith(str(path))
    dgood = json.loads((world.tmp / "tv.json").read_text())
    path.write_text(json.dumps({**dgood, "owner": {**dgood["owner"], "signing_pub": "00"}}))
    with pytest.raises(KeyringError, match="owner: signing_pub must be 32 bytes"):
        Display.load(path)
    path.write_text(json.dumps({k: v for k, v in dgood.items() if k != "owner"}))
    with pytest.raises(KeyringError, match="missing owner"):
        Display.load(path)


# -- enrollment ------------------------------------------------------------------------------------

def test_enrollment_code_is_the_spec_formula_and_changes_with_either_card(world: World) -> None:
    alice, tv = world.alice.card(), world.tv.card()
    digest = hashlib.sha256(b"segbind/v3 enroll\x00" + tv.sealing_pub + alice.signing_pub).digest()
    expected = base64.b32encode(digest[:5]).decode()
    code = enrollment_code(tv, alice)
    assert code == expected and len(code) == 8 and "=" not in code
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert enrollment_code(world.other_tv.card(), alice) != code   # the cloud swapped the display's card
    assert enrollment_code(tv, world.mallory.card()) != code        # or the account's
    assert enrollment_code(tv, AccountCard("alice", world.mallory.card().signing_pub, alice.sealing_pub)) != code
    # Both sides compute the same code from the cards they were handed.
    fresh = Display.new("tv-9")
    assert OutOfBand.enroll(world.alice, fresh) == enrollment_code(fresh.card(), alice)


def test_a_pinned_display_keeps_its_owner_until_reset(world: World) -> None:
    assert world.tv.owner == world.alice.card()
    OutOfBand.enroll(world.alice, world.tv)  # the same owner again: nothing changes
    with pytest.raises(KeyringError, match="enrolled to another account"):
        OutOfBand.enroll(world.mallory, world.tv)
    assert world.tv.owner == world.alice.card()


def test_exchange_cards_gives_each_contact_the_other_card(world: World) -> None:
    a_card, b_card = OutOfBand.exchange_cards(world.alice, world.bob)
    assert a_card == world.alice.card() and b_card == world.bob.card()


# -- grants ------------------------------------------------------------------------------------

def test_grants_open_on_the_display_and_give_the_keyring(world: World) -> None:
    shared_in = some_binding("carol", "cam-7", 3, 2)  # a camera carol shares with alice
    state = CameraState("alice", "cam-1", 2, T - 5, True)
    sealed = world.alice.grants_for(world.tv.card(), 5, [world.key(0), shared_in],
                                    [world.name(9)], issued_ms=T, cameras=[state], alarm_after_ms=30_000)
    keyring = world.grants.accept(sealed)
    assert isinstance(keyring, Keyring) and world.grants.keyring is keyring and world.grants.serial == 5
    keys = world.epoch.period_keys(PERIOD)
    held = keyring.binding(keys.key_id)
    assert (held.owner, held.camera, held.epoch, held.period, held.slot) == ("alice", "cam-1", 1, PERIOD, 0)
    assert held.key == keys.slot_keys[0][1] and held.content_key == keys.content_key
    assert keyring.binding(shared_in.key_id) == shared_in
    assert keyring.revoked_ids() == [world.name(9)]
    assert world.grants.cameras == {("alice", "cam-1"): state} and world.grants.alarm_after_ms == 30_000
    # The next grants add their periods to what is held; revoked epochs stay revoked and drop
    # every period of theirs; periods a day past their end are dropped.
    keyring = world.grants.accept(world.alice.grants_for(world.tv.card(), 6, [world.key(0, 2)], issued_ms=T))
    assert keyring.grants() == [("alice", "cam-1", 1), ("alice", "cam-1", 2), ("carol", "cam-7", 3)]
    keyring = world.grants.accept(world.alice.grants_for(world.tv.card(), 7, [world.key(0, 2, PERIOD + 1)],
                                                         [shared_in.epoch_name], issued_ms=T + 1_800_000))
    assert keyring.grants() == [("alice", "cam-1", 1), ("alice", "cam-1", 2)] and len(keyring) == 3
    assert sorted(keyring.to_json()["revoked"], key=lambda r: r["owner"]) == [
        {"owner": "alice", "epoch_id": world.name(9).epoch_id.hex()},
        {"owner": "carol", "epoch_id": shared_in.epoch_id.hex()}]
    assert world.grants.cameras == {}  # each message says it anew
    day_later = world.grants.accept(world.alice.grants_for(world.tv.card(), 8, [world.key(0, 2, PERIOD + 49)],
                                                           issued_ms=(PERIOD + 49) * 1_800_000))
    assert [b.period for b in day_later.bindings()] == [PERIOD + 1, PERIOD + 49]


def test_an_epoch_id_is_the_spec_formula_and_names_one_epoch_of_one_pairing(world: World) -> None:
    """Epochs count from 1 in every pairing: (owner, camera, epoch) names an epoch only until the
    camera is paired again. The epoch id comes from the epoch root, fresh at every claim."""
    again = Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, ["bob"])     # released, paired again
    ids = {epoch_id(ep.root) for ep in (world.epoch, again, Epoch.of_pairing(world.pairing, "alice", "cam-1", 2, []),
                                        Epoch.of_pairing(world.pairing, "alice", "cam-1", 1, [], 900))}
    assert len(ids) == 4 and all(len(i) == 16 for i in ids)
    assert epoch_id(world.epoch.root) == spec_epoch_id(world.epoch.root) == world.key(0).epoch_id
    assert world.key(1).epoch_id == world.key(0).epoch_id                        # every slot of the epoch
    assert world.key(0, period=PERIOD + 1).epoch_id == world.key(0).epoch_id   # every period of the epoch
    keys = world.epoch.period_keys(PERIOD)
    assert world.key(0).epoch_id not in (keys.key_id, keys.content_key, world.epoch.root[:16])
    assert world.key(0).epoch_name == EpochName("alice", world.key(0).epoch_id)
    with pytest.raises(ValueError):
        epoch_id(world.epoch.root[:31])


def test_a_keyring_refuses_a_grant_that_contradicts_what_it_holds(world: World) -> None:
    """Keyring.grant: the same binding twice is one grant; a key id held for another binding, an
    epoch id held for another camera, epoch or period length, or a revoked epoch is GrantConflict
    (a KeyringError), and nothing changes."""
    mine = world.key(0)
    ring = Keyring([mine, mine])
    assert len(ring) == 1
    snapshot = ring.to_json()
    other_epoch = world.key(0, 2)
    changes: Dict[str, Any] = {"owner": "carol", "camera": "cam-2", "epoch": 2, "epoch_id": other_epoch.epoch_id,
                               "period": PERIOD + 1, "period_s": 900, "slot": 1, "key": os.urandom(32),
                               "content_key": os.urandom(16)}
    assert set(changes) == set(Binding._fields) - {"key_id"}
    for name, value in changes.items():
        with pytest.raises(GrantConflict, match="key id .* is held here for another grant"):
            ring.grant(mine._replace(**{name: value}))
    for name, value in (("camera", "cam-2"), ("epoch", 2), ("period_s", 900)):   # another period, one epoch id
        with pytest.raises(GrantConflict, match="epoch id .* for another camera, epoch or period length"):
            ring.grant(world.key(0, period=PERIOD + 1)._replace(**{name: value}))
    assert ring.to_json() == snapshot and isinstance(GrantConflict("x"), KeyringError)
    ring.grant(world.key(0, period=PERIOD + 1))
    ring.mark_revoked(world.name(1))
    assert len(ring) == 0 and ring.revoked_ids() == [world.name(1)]
    with pytest.raises(GrantConflict, match="revoked here"):
        ring.grant(world.key(0, period=PERIOD + 2))
    # the same owner, camera and epoch number in a new pairing is another epoch: granted
    repaired = Binding.of_epoch(Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, []), PERIOD)
    ring.grant(repaired)
    assert ring.grants() == [("alice", "cam-1", 1)] and ring.binding(repaired.key_id) == repaired
    # a keyring file that contradicts itself is refused
    data = Keyring([mine]).to_json()
    data["grants"].append(world.key(0, period=PERIOD + 1)._replace(camera="cam-2").to_json())
    with pytest.raises(KeyringError, match="another camera"):
        Keyring.from_json(data)
    assert Keyring.from_json(ring.to_json()).to_json() == ring.to_json()


def test_a_display_takes_a_new_pairings_epoch_1_and_never_the_old_ones_again(world: World) -> None:
    """alice released cam-1 (its pairing's epochs revoked at her display) and paired it again:
    epoch 1 of the new pairing is granted; no period of the old one is ever held again."""
    old = world.key(0)
    world.grants.accept(world.alice.grants_for(world.tv.card(), 1, [old], issued_ms=T))
    world.grants.accept(world.alice.grants_for(world.tv.card(), 2, [], [world.name(1)], issued_ms=T))
    assert len(world.grants.keyring) == 0
    new = Binding.of_epoch(Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, []), PERIOD)
    ring = world.grants.accept(world.alice.grants_for(world.tv.card(), 3, [new], [world.name(1)], issued_ms=T))
    assert ring.bindings() == [new] and ring.revoked_ids() == [world.name(1)]
    with pytest.raises(GrantError) as info:
        world.grants.accept(world.alice.grants_for(world.tv.card(), 4, [new, world.key(0, period=PERIOD + 1)],
                                                   issued_ms=T))
    assert info.value.reason is R.MALFORMED and "never held again" in info.value.detail
    assert world.grants.keyring.bindings() == [new] and world.grants.serial == 3


def test_a_key_id_held_only_in_a_period_the_message_drops_is_no_conflict(world: World) -> None:
    """A display checks a message's keys against what it keeps after the message's drops: a key
    id whose period ended a day (``keep``) before the message was issued is gone, not held."""
    mine = world.key(0)
    world.grants.accept(world.alice.grants_for(world.tv.card(), 1, [mine], issued_ms=T))
    reused = some_binding("carol", "cam-7", 3, 1, PERIOD + 49)._replace(key_id=mine.key_id)
    day_later = mine.end_ms + 24 * 3600 * 1000
    with pytest.raises(GrantError):
        world.grants.accept(world.alice.grants_for(world.tv.card(), 2, [reused], issued_ms=day_later - 1))
    ring = world.grants.accept(world.alice.grants_for(world.tv.card(), 2, [reused], issued_ms=day_later))
    assert ring.bindings() == [reused]


def test_a_key_id_held_for_another_grant_is_refused(world: World) -> None:
    """Key ids are the only name a tag carries: a message that binds a held key id to another
    camera (a contact passing off the key id of a camera it saw in the clear) changes nothing."""
    world.grants.accept(world.alice.grants_for(world.tv.card(), 1, [world.key(0)], issued_ms=T))
    mine = world.key(0)
    forged = some_binding("carol", "cam-1", 1, 1)._replace(key_id=mine.key_id)
    with pytest.raises(GrantError) as info:
        world.grants.accept(world.alice.grants_for(world.tv.card(), 2, [forged], issued_ms=T))
    assert info.value.reason is R.MALFORMED and "key id" in info.value.detail
    assert world.grants.keyring.binding(mine.key_id) == mine and world.grants.serial == 1
    with pytest.raises(GrantError) as info:  # within one message too
        world.alice.grants_for(world.tv.card(), 3, [mine, forged])
    assert info.value.reason is R.MALFORMED


def test_the_wire_format_is_the_specs(world: World) -> None:
    """Opened here with the primitives written out from section 4, not by grants.py."""
    sealed = world.alice.grants_for(world.tv.card(), 1, [world.key(0)], issued_ms=123)
    assert set(sealed) == {"segbind", "version", "kind", "to", "to_pub", "from", "eph", "ciphertext"}
    assert (sealed["segbind"], sealed["version"], sealed["kind"], sealed["to"], sealed["from"]) == (
        "sealed", 3, "grants", "tv-1", "alice")
    assert sealed["to_pub"] == world.tv.card().sealing_pub.hex()
    payload = spec_open(sealed, secret_of(world.tmp / "tv.json", "sealing_key"), world.alice.card().signing_pub)
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":")).encode()
    keys = world.epoch.period_keys(PERIOD)
    assert json.loads(payload) == {
        "segbind": "grants", "version": 3, "issuer": "alice", "display": "tv-1",
        "display_pub": world.tv.card().sealing_pub.hex(), "serial": 1, "issued_ms": 123,
        "keys": [{"key_id": keys.key_id.hex(), "owner": "alice", "camera": "cam-1", "epoch": 1,
                  "epoch_id": spec_epoch_id(world.epoch.root).hex(), "period": PERIOD,
                  "period_s": 1800, "slot": 0, "key": keys.slot_keys[0][1].hex(),
                  "content_key": keys.content_key.hex()}],
        "revoked": [], "cameras": [], "alarm_after_ms": 60_000}
    again = world.alice.grants_for(world.tv.card(), 1, [world.key(0)], issued_ms=123)
    assert again["eph"] != sealed["eph"] and again["ciphertext"] != sealed["ciphertext"]  # a fresh key each time


def test_a_message_sealed_from_the_spec_is_accepted(world: World) -> None:
    payload = GrantSet("alice", "tv-1", world.tv.card().sealing_pub, 1, 0, [world.key(0)], [], []).to_payload()
    signature = world.alice.sign("grants", payload)
    Ed25519PublicKey.from_public_bytes(world.alice.card().signing_pub).verify(
        signature, b"segbind/v3 grants\x00" + payload)
    sealed = spec_seal("grants", "tv-1", world.tv.card().sealing_pub, "alice", payload, signature)
    assert world.grants.accept(sealed).binding(world.key(0).key_id).key == world.key(0).key


# -- every refusal of section 6, by the attack it names --------------------------------------------

def _grant_payload(w: World, **change: Any) -> bytes:
    data = json.loads(GrantSet("alice", "tv-1", w.tv.card().sealing_pub, 9, 0, [w.key(0)], [], []).to_payload())
    data.update(change)
    return json.dumps(data).encode()


def _edit(sealed: Dict[str, Any], **change: Any) -> Dict[str, Any]:
    out = copy.deepcopy(sealed)
    out.update(change)
    return out


def _flip(hex_text: str, at: int = -1) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[at] ^= 1
    return raw.hex()


def _flipped(sealed: Dict[str, Any], name: str, at: int = -1) -> Dict[str, Any]:
    """``sealed`` with one bit of one field flipped (the rest of that very message kept)."""
    return _edit(sealed, **{name: _flip(sealed[name], at)})


def _truncated(sealed: Dict[str, Any]) -> Dict[str, Any]:
    return _edit(sealed, ciphertext=sealed["ciphertext"][:-2])


def _grants(w: World, serial: int = 9, by: Account | None = None, to: Display | None = None) -> Dict[str, Any]:
    return (by or w.alice).grants_for((to or w.tv).card(), serial, [w.key(0, epoch=3)])


ATTACKS: Dict[str, tuple[GrantRefusal, Callable[[World], Any]]] = {
    # 1. malformed
    "not an object": (R.MALFORMED, lambda w: [_grants(w)]),
    "version 2": (R.MALFORMED, lambda w: _edit(_grants(w), version=2)),
    "a share offer sent to a display": (
        R.MALFORMED, lambda w: _edit(seal(w.alice, "share-offer", "tv-1", w.tv.card().sealing_pub, b"{}"))),
    "no ciphertext": (R.MALFORMED, lambda w: {k: v for k, v in _grants(w).items() if k != "ciphertext"}),
    "an extra envelope field": (R.MALFORMED, lambda w: _edit(_grants(w), note="hi")),
    "ciphertext not hex": (R.MALFORMED, lambda w: _edit(_grants(w), ciphertext="xyz")),
    "signed junk from the owner": (R.MALFORMED, lambda w: seal(w.alice, "grants", "tv-1", w.tv.card().sealing_pub,
                                                                 b"not json")),
    "a payload field added": (R.MALFORMED, lambda w: seal(w.alice, "grants", "tv-1", w.tv.card().sealing_pub,
                                                            _grant_payload(w, extra=1))),
    "a payload of version 2": (R.MALFORMED, lambda w: seal(w.alice, "grants", "tv-1", w.tv.card().sealing_pub,
                                                             _grant_payload(w, version=2))),
    "a camera entry for another owner's camera": (R.MALFORMED, lambda w: seal(
        w.alice, "grants", "tv-1", w.tv.card().sealing_pub,
        _grant_payload(w, cameras=[CameraState("carol", "cam-1", 2, 0, True).to_json()]))),
    "service grants sent to a display": (R.MALFORMED, lambda w: seal(
        w.alice, "service-grants", "tv-1", w.tv.card().sealing_pub, b"{}")),
    "a duplicated payload field": (R.MALFORMED, lambda w: seal(
        w.alice, "grants", "tv-1", w.tv.card().sealing_pub, _grant_payload(w)[:-1] + b', "serial": 99}')),
    "a revoked epoch granted again": (R.MALFORMED, lambda w: w.alice.grants_for(w.tv.card(), 9, [w.key(0, 2)])),
    "a held epoch id for another camera": (R.MALFORMED, lambda w: w.alice.grants_for(w.tv.card(), 9, [
        some_binding("alice", "cam-2", 1)._replace(epoch_id=w.name(1).epoch_id)])),
    # 2. not for this display
    "a grant sealed to another display": (R.NOT_FOR_THIS_DISPLAY, lambda w: _grants(w, to=w.other_tv)),
    "this display's name with another display's key": (
        R.NOT_FOR_THIS_DISPLAY, lambda w: _edit(_grants(w), to_pub=w.other_tv.card().sealing_pub.hex())),
    "another display's grant renamed to this one": (
        R.NOT_FOR_THIS_DISPLAY, lambda w: _edit(_grants(w, to=w.other_tv), to="tv-1")),
    # 3. cannot open
    "a tampered ciphertext (its tag)": (R.CANNOT_OPEN, lambda w: _flipped(_grants(w), "ciphertext")),
    "a tampered ciphertext (the length)": (R.CANNOT_OPEN, lambda w: _flipped(_grants(w), "ciphertext", 0)),
    "a tampered ciphertext (the payload)": (R.CANNOT_OPEN, lambda w: _flipped(_grants(w), "ciphertext", 10)),
    "a truncated ciphertext": (R.CANNOT_OPEN, lambda w: _truncated(_grants(w))),
    "another display's grant readdressed here": (R.CANNOT_OPEN, lambda w: _edit(
        _grants(w, to=w.other_tv), to="tv-1", to_pub=w.tv.card().sealing_pub.hex())),
    "a changed sender": (R.CANNOT_OPEN, lambda w: _edit(_grants(w), **{"from": "mallory"})),
    "a changed ephemeral key": (R.CANNOT_OPEN, lambda w: _flipped(_grants(w), "eph", 0)),
    "a low-order ephemeral key": (R.CANNOT_OPEN, lambda w: _edit(_grants(w), eph="00" * 32)),
    "a bad plaintext framing": (R.CANNOT_OPEN, lambda w: spec_seal(
        "grants", "tv-1", w.tv.card().sealing_pub, "alice", b"", b"\x00" * 10)),
    # 4. not from the owner
    "grants signed by another account": (R.NOT_FROM_OWNER, lambda w: _grants(w, by=w.mallory)),
    "an impostor with the owner's name": (R.NOT_FROM_OWNER, lambda w: _grants(w, by=Account.new("alice"))),
    "the owner's signature in another's envelope": (R.NOT_FROM_OWNER, lambda w: spec_seal(
        "grants", "tv-1", w.tv.card().sealing_pub, "mallory", _grant_payload(w),
        w.alice.sign("grants", _grant_payload(w)))),
    "the owner's share-offer signature reused": (R.NOT_FROM_OWNER, lambda w: spec_seal(
        "grants", "tv-1", w.tv.card().sealing_pub, "alice", _grant_payload(w),
        w.alice.sign("share-offer", _grant_payload(w)))),
    # 5. the payload names another issuer or display
    "a payload naming another issuer": (R.NOT_FROM_OWNER, lambda w: seal(
        w.alice, "grants", "tv-1", w.tv.card().sealing_pub, _grant_payload(w, issuer="mallory"))),
    "a payload naming another display": (R.NOT_FOR_THIS_DISPLAY, lambda w: seal(
        w.alice, "grants", "tv-1", w.tv.card().sealing_pub, _grant_payload(w, display="tv-2"))),
    "a payload naming another display key": (R.NOT_FOR_THIS_DISPLAY, lambda w: seal(
        w.alice, "grants", "tv-1", w.tv.card().sealing_pub,
        _grant_payload(w, display_pub=w.other_tv.card().sealing_pub.hex()))),
    # 6. stale
    "a replayed older serial": (R.STALE, lambda w: w.first),
    "the held grants replayed": (R.STALE, lambda w: w.second),
}


@pytest.fixture()
def held(world: World) -> World:
    """tv-1 holds serial 2 (epoch 2 revoked) after serial 1; ``first`` and ``second`` kept for replays."""
    world.first = world.alice.grants_for(world.tv.card(), 1, [world.key(0)])
    world.second = world.alice.grants_for(world.tv.card(), 2, [world.key(0)], [world.name(2)])
    world.grants.accept(world.first)
    world.grants.accept(world.second)
    return world


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_is_refused_with_its_reason_and_changes_nothing(held: World, attack: str) -> None:
    reason, make = ATTACKS[attack]
    before, snapshot = held.grants.keyring, held.grants.keyring.to_json()
    with pytest.raises(GrantError) as info:
        held.grants.accept(make(held))
    assert info.value.reason is reason, str(info.value)
    assert str(info.value).startswith(reason.value + ": ") and "\n" not in str(info.value)
    assert isinstance(info.value, SegbindError)
    assert held.grants.keyring is before and before.to_json() == snapshot and held.grants.serial == 2
    # The owner's next genuine grants are still taken.
    assert held.grants.accept(held.alice.grants_for(held.tv.card(), 10, [held.key(0, 3)])).grants() == [
        ("alice", "cam-1", 1), ("alice", "cam-1", 3)]


def test_every_refusal_of_section_6_is_exercised() -> None:
    named = {reason for reason, _ in ATTACKS.values()} | {R.NOT_ENROLLED}
    assert named == set(R) - {R.NOT_FOR_THIS_ACCOUNT, R.NOT_FROM_CONTACT, R.NOT_FOR_THIS_SERVICE}


def test_a_display_never_enrolled_refuses_everything(world: World) -> None:
    fresh = Display.new("tv-5")
    grants = DisplayGrants(fresh)
    for sealed in (world.alice.grants_for(fresh.card(), 1, [world.key(0)]), {"junk": 1}):
        with pytest.raises(GrantError) as info:
            grants.accept(sealed)
        assert info.value.reason is R.NOT_ENROLLED
        assert len(grants.keyring) == 0 and grants.serial == 0
    OutOfBand.enroll(world.alice, fresh)
    assert len(grants.accept(world.alice.grants_for(fresh.card(), 1, [world.key(0)]))) == 1


def test_open_sealed_names_the_refusals_by_kind(world: World) -> None:
    sealed = world.alice.grants_for(world.tv.card(), 1, [world.key(0)])
    tv_secret = X25519PrivateKey.from_private_bytes(secret_of(world.tmp / "tv.json", "sealing_key"))
    payload = open_sealed(sealed, "grants", "tv-1", tv_secret, world.tv.card().sealing_pub, world.alice.card())
    assert GrantSet.from_payload(payload).keys == [world.key(0)]
    with pytest.raises(GrantError) as info:
        open_sealed(sealed, "grants", "tv-1", tv_secret, world.tv.card().sealing_pub, world.bob.card())
    assert info.value.reason is R.NOT_FROM_OWNER


# -- grant sets ------------------------------------------------------------------------------------

def test_grant_set_payload_is_canonical_and_round_trips(world: World) -> None:
    gs = GrantSet("alice", "tv-1", world.tv.card().sealing_pub, 3, 42,
                  [world.key(0), some_binding("carol", "cam-ü", 4, 3)], [world.name(7)],
                  [CameraState("alice", "cam-1", 2, 40, False)], 5)
    payload = gs.to_payload()
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()
    assert "cam-ü".encode() in payload  # UTF-8 as it is, not \u escapes: one canonical form
    assert GrantSet.from_payload(payload) == gs
    offer = ShareOffer("alice", "bob", 4, 42, [world.key(1)], [world.name(7)])
    assert ShareOffer.from_payload(offer.to_payload()) == offer


def _key(**change: Any) -> Dict[str, Any]:
    good = {"key_id": "11" * 16, "owner": "alice", "camera": "cam-1", "epoch": 1, "epoch_id": "55" * 16,
            "period": PERIOD, "period_s": 1800, "slot": 0, "key": "22" * 32, "content_key": "33" * 16}
    return {k: v for k, v in {**good, **change}.items() if v is not None}


@pytest.mark.parametrize("change", [
    {"serial": 0}, {"serial": 1.5}, {"serial": True}, {"serial": 2 ** 64}, {"issued_ms": -1},
    {"issued_ms": 2 ** 53}, {"issuer": ""}, {"issuer": "a#b"}, {"display_pub": "00"}, {"keys": {}},
    {"revoked": None}, {"cameras": None}, {"alarm_after_ms": -1}, {"alarm_after_ms": "60"},
    {"keys": [_key(key=None)]}, {"keys": [_key(content_key=None)]}, {"keys": [_key(x=1)]},
    {"keys": [_key(epoch=0)]}, {"keys": [_key(slot=8)]}, {"keys": [_key(key="AA" * 32)]},
    {"keys": [_key(key_id="11" * 15)]}, {"keys": [_key(content_key="33" * 32)]},
    {"keys": [_key(period_s=59)]}, {"keys": [_key(period_s=86401)]}, {"keys": [_key(period=-1)]},
    {"keys": [_key(period=2 ** 53 // 1_800_000 + 1)]}, {"keys": [_key(period=1.0)]},
    {"keys": [_key(), _key(key_id="44" * 16, slot=1)]},                 # one period granted twice
    {"keys": [_key(), _key(period=PERIOD + 1)]},                         # one key id twice
    {"keys": [_key(), _key(key_id="44" * 16, period=PERIOD + 1, period_s=900)]},  # two period lengths
    {"keys": [_key()] * 4097},
    {"keys": [_key(epoch_id=None)]}, {"keys": [_key(epoch_id="55" * 15)]}, {"keys": [_key(epoch_id="5G" * 16)]},
    {"keys": [_key(), _key(key_id="44" * 16, period=PERIOD + 1, camera="cam-2")]},  # one epoch id, two cameras
    {"keys": [_key(), _key(key_id="44" * 16, period=PERIOD + 1, epoch=2)]},         # one epoch id, two epochs
    {"revoked": [{"owner": "alice", "epoch_id": "55" * 16}]},                      # granted and revoked
    {"revoked": [{"owner": "alice", "epoch_id": "66" * 16}] * 2},                  # revoked twice
    {"revoked": [{"owner": "alice", "epoch_id": "66" * 15}]},
    {"revoked": [{"owner": "a/b", "epoch_id": "66" * 16}]},
    {"revoked": [{"owner": "alice", "epoch_id": "66" * 16, "camera": "cam-1"}]},
    {"revoked": [{"owner": "alice", "camera": "cam-1", "epoch": 1}]},              # format 3's first draft
    {"revoked": [{"owner": "alice", "camera": "cam-1"}]},
    {"cameras": [{"owner": "alice", "camera": "cam-1", "epoch": 1, "since_ms": 0}]},
    {"cameras": [{"owner": "alice", "camera": "cam-1", "epoch": 1, "since_ms": 0, "pending": 1}]},
    {"cameras": [{"owner": "alice", "camera": "cam-1", "epoch": 1, "since_ms": 0, "pending": False}] * 2},
    {"cameras": [{"owner": "bob", "camera": "cam-1", "epoch": 1, "since_ms": 0, "pending": False}]},
])
def test_grant_set_from_payload_is_strict(world: World, change: Dict[str, Any]) -> None:
    data = json.loads(GrantSet("alice", "tv-1", world.tv.card().sealing_pub, 1, 0,
                               [Binding.from_json(_key())], [], []).to_payload())
    with pytest.raises(GrantError) as info:
        GrantSet.from_payload(json.dumps({**data, **change}).encode())
    assert info.value.reason is R.MALFORMED


@pytest.mark.parametrize("payload", [b"", b"\xff", b"[]", b'{"serial": NaN}', b"[" * 100000, b"null"])
def test_grant_set_from_payload_refuses_what_is_not_an_object(payload: bytes) -> None:
    with pytest.raises(GrantError) as info:
        GrantSet.from_payload(payload)
    assert info.value.reason is R.MALFORMED


# -- sharing with another account (section 7) --------------------------------------------------------

def test_a_share_offer_is_taken_only_from_the_contact_and_only_when_addressed_here(world: World) -> None:
    alice, bob, mallory = world.alice, world.bob, world.mallory
    alice_card, bob_card = OutOfBand.exchange_cards(alice, bob)
    carol = Account.new("carol")
    sealed = alice.offer_share(bob_card, 1, [world.key(1)], issued_ms=5)
    offer = bob.open_offer(sealed, alice_card)
    assert (offer.issuer, offer.to, offer.serial, offer.keys) == ("alice", "bob", 1, [world.key(1)])

    def refused(sealed: Any, card: AccountCard, reason: GrantRefusal, by: Account = bob, after: int = 0) -> None:
        with pytest.raises(GrantError) as info:
            by.open_offer(sealed, card, after_serial=after)
        assert info.value.reason is reason, str(info.value)

    refused(sealed, mallory.card(), R.NOT_FROM_CONTACT)                           # checked against another card
    refused(Account.new("alice").offer_share(bob_card, 2, [world.key(1)]), alice_card, R.NOT_FROM_CONTACT)
    refused(mallory.offer_share(bob_card, 2, [some_binding("mallory", "cam-m", 1, 1)]), alice_card,
            R.NOT_FROM_CONTACT)
    as_mallory = ShareOffer("mallory", "bob", 2, 0, [some_binding("mallory", "cam-m", 1, 1)], []).to_payload()
    refused(seal(alice, "share-offer", "bob", bob_card.sealing_pub, as_mallory), alice_card, R.NOT_FROM_CONTACT)
    refused(alice.offer_share(carol.card(), 2, [world.key(1)]), alice_card, R.NOT_FOR_THIS_ACCOUNT)  # carol's
    refused(_edit(alice.offer_share(carol.card(), 2, [world.key(1)]), to="bob",
                  to_pub=bob_card.sealing_pub.hex()), alice_card, R.CANNOT_OPEN)
    to_carol = ShareOffer("alice", "carol", 2, 0, [world.key(1)], []).to_payload()
    refused(seal(alice, "share-offer", "bob", bob_card.sealing_pub, to_carol), alice_card, R.NOT_FOR_THIS_ACCOUNT)
    refused(sealed, alice_card, R.STALE, after=1)                                   # an offer already taken
    refused(alice.grants_for(world.tv.card(), 3, [world.key(0)]), alice_card, R.MALFORMED)  # not an offer
    refused(_edit(sealed, ciphertext=_flip(sealed["ciphertext"])), alice_card, R.CANNOT_OPEN)
    # An offer carries only the issuer's own cameras and never the owner's slot 0, on either side.
    for keys in ([world.key(0)], [some_binding("carol", "cam-c", 1, 1)]):
        with pytest.raises(GrantError) as info:
            alice.offer_share(bob_card, 3, keys)
        assert info.value.reason is R.MALFORMED
        data = json.loads(ShareOffer("alice", "bob", 3, 0, [world.key(1)], []).to_payload())
        data["keys"] = [b.to_json() for b in keys]
        refused(seal(alice, "share-offer", "bob", bob_card.sealing_pub, json.dumps(data).encode()), alice_card,
                R.MALFORMED)


def test_the_receiver_grants_shared_keys_to_its_own_displays_and_they_refuse_the_sharer(world: World) -> None:
    alice, bob = world.alice, world.bob
    alice_card, bob_card = OutOfBand.exchange_cards(alice, bob)
    bob_tv = Display.new("bob-tv")
    OutOfBand.enroll(bob, bob_tv)
    bob_grants = DisplayGrants(bob_tv)
    sealed_offer = alice.offer_share(bob_card, 1, [world.key(1)])
    offer = bob.open_offer(sealed_offer, alice_card)
    for from_alice, reason in ((alice.grants_for(bob_tv.card(), 1, [world.key(1)]), R.NOT_FROM_OWNER),
                               (sealed_offer, R.MALFORMED)):
        with pytest.raises(GrantError) as info:
            bob_grants.accept(from_alice)
        assert info.value.reason is reason
    held = bob_grants.accept(bob.grants_for(bob_tv.card(), 1, offer.keys)).binding(world.key(1).key_id)
    assert held.slot == 1 and held.key == world.epoch.period_keys(PERIOD).slot_keys[1][1]


# -- nothing secret in sight -------------------------------------------------------------------------

def test_nothing_secret_appears_in_repr_str_or_errors(held: World) -> None:
    w = held
    texts: List[str] = []
    offer = w.bob.open_offer(w.alice.offer_share(w.bob.card(), 1, [w.key(1)]), w.alice.card())
    objects: List[Any] = [w.alice, w.bob, w.tv, w.alice.card(), w.tv.card(), w.grants, w.grants.keyring, offer,
                          GrantSet("alice", "tv-1", w.tv.card().sealing_pub, 1, 0, [w.key(0)], [], []),
                          Account.load(w.tmp / "alice.json"), Display.load(w.tmp / "tv.json"), w.key(0)]
    texts += [repr(o) for o in objects] + [str(o) for o in objects]
    for reason, make in ATTACKS.values():
        try:
            w.grants.accept(make(w))
        except GrantError as exc:
            texts += [str(exc), repr(exc), exc.detail]
    # File errors near key bytes: a key with a bad byte, one too short, a stray field.
    good = json.loads((w.tmp / "alice.json").read_text())
    bad_path = w.tmp / "bad.json"
    for change in ({"signing_key": good["signing_key"].upper()}, {"sealing_key": good["sealing_key"][:-2]},
                   {good["signing_key"]: 1}):
        bad_path.write_text(json.dumps({**good, **change}))
        with pytest.raises(KeyringError) as info:
            Account.load(bad_path)
        texts.append(str(info.value))
    sealed = w.alice.grants_for(w.tv.card(), 99, [w.key(0)])
    texts.append(json.dumps(sealed))  # what the cloud carries
    assert len(w.secrets) == 13
    for secret in w.secrets:
        for text in texts:
            assert secret not in text.lower()
            assert secret.upper() not in text


def test_a_restarted_display_keeps_its_serial_and_refuses_an_old_grants_message(tmp_path) -> None:
    from segbind import Binding, Epoch
    owner = Account.new("alice", test_only=True)
    screen = Display.new("tv-1", test_only=True)
    OutOfBand.enroll(owner, screen)
    epoch = Epoch.of_pairing(bytes(range(32)), "alice", "cam-1", 1, [])
    old = owner.grants_for(screen.card(), 1, [Binding.of_epoch(epoch, PERIOD)])
    gone = Binding.of_epoch(epoch, PERIOD).epoch_name
    new = owner.grants_for(screen.card(), 2, [], revoked=[gone])
    store = tmp_path / "tv-1-grants.json"
    first = DisplayGrants(screen, store)
    first.accept(old)
    first.accept(new)
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    again = DisplayGrants(screen, store)                 # the display restarts
    assert again.serial == 2 and len(again.keyring) == 0
    with pytest.raises(GrantError) as info:
        again.accept(old)                                # the cloud replays the old message
    assert info.value.reason is GrantRefusal.STALE
    assert again.keyring.revoked_ids() == [gone]
    other = Display.new("tv-2", test_only=True)
    with pytest.raises(KeyringError):
        DisplayGrants(other, store)                      # another display's store is not taken


# -- payloads: any grant set round-trips, one canonical form ------------------------------------------

_ids = st.text(st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs",)), min_size=1,
               max_size=8).filter(lambda s: len(s.encode()) <= 32)


@st.composite
def _bindings(draw: st.DrawFn) -> Binding:
    period_s = draw(st.integers(60, 86400))
    return Binding(draw(st.binary(min_size=16, max_size=16)), draw(_ids), draw(_ids), draw(st.integers(1, 2 ** 31 - 1)),
                   draw(st.binary(min_size=16, max_size=16)),
                   draw(st.integers(0, (2 ** 53 - 1) // (period_s * 1000))), period_s, draw(st.integers(0, 7)),
                   draw(st.binary(min_size=32, max_size=32)), draw(st.binary(min_size=16, max_size=16)))


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_bindings(), max_size=4, unique_by=(lambda b: b.key_id, lambda b: b.epoch_id)),
       serial=st.integers(1, 2 ** 64 - 1), issued=st.integers(0, 2 ** 53 - 1), pending=st.booleans(),
       camera=_ids, epoch=st.integers(1, 2 ** 31 - 1))
def test_any_grant_set_round_trips_through_its_canonical_payload(keys: List[Binding], serial: int, issued: int,
                                                                  pending: bool, camera: str, epoch: int) -> None:
    pub = bytes(range(32))
    revoked = [EpochName(b.owner, hashlib.sha256(b.epoch_id).digest()[:16]) for b in keys]
    gs = GrantSet("alice", "tv-1", pub, serial, issued, keys, revoked, [CameraState("alice", camera, epoch, issued,
                                                                                    pending)])
    payload = gs.to_payload()
    assert GrantSet.from_payload(payload) == gs
    assert GrantSet.from_payload(payload).to_payload() == payload
    own = [b._replace(owner="alice", slot=0) for b in keys]
    sgs = ServiceGrantSet("alice", "recorder", pub, serial, issued, own, [])
    assert ServiceGrantSet.from_payload(sgs.to_payload()) == sgs


# -- services (section 10) -----------------------------------------------------------------------------

@pytest.fixture()
def service(world: World) -> Service:
    svc = Service.new("recorder", test_only=True)
    svc.enroll(world.alice.card())
    return svc


def test_a_service_file_and_card_round_trip_and_pin_each_account(world: World, service: Service) -> None:
    path = world.tmp / "svc.json"
    service.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Service.load(path)
    assert again.card() == service.card() and again.accounts == {"alice": world.alice.card()} and again.test_only
    assert ServiceCard.from_json(json.loads(json.dumps(service.card().to_json()))) == service.card()
    assert service.enroll(world.alice.card()) == enrollment_code(service.card(), world.alice.card())
    with pytest.raises(KeyringError, match="another key"):
        service.enroll(Account.new("alice").card())     # an impostor under alice's id
    service.enroll(world.bob.card())
    service.leave("bob")
    assert set(service.accounts) == {"alice"}
    assert world.tv.card().sealing_pub.hex() not in repr(service)


def _svc_payload(w: World, svc: Service, **change: Any) -> bytes:
    data = json.loads(ServiceGrantSet("alice", "recorder", svc.sealing_pub, 9, T, [w.key(0)], []).to_payload())
    data.update(change)
    return json.dumps(data).encode()


SERVICE_ATTACKS: Dict[str, tuple[GrantRefusal, Callable[[World, Service], Any]]] = {
    "display grants sent to the service": (R.MALFORMED, lambda w, s: w.alice.grants_for(
        DisplayCard("recorder", s.sealing_pub), 9, [w.key(0)])),
    "another owner's camera": (R.MALFORMED, lambda w, s: seal(
        w.alice, "service-grants", "recorder", s.sealing_pub,
        _svc_payload(w, s, keys=[some_binding("carol", "cam-9", 1).to_json()]))),
    "a contact's slot": (R.MALFORMED, lambda w, s: seal(
        w.alice, "service-grants", "recorder", s.sealing_pub, _svc_payload(w, s, keys=[w.key(1).to_json()]))),
    "sealed to another service": (R.NOT_FOR_THIS_SERVICE, lambda w, s: w.alice.service_grants_for(
        Service.new("recorder").card(), 9, [w.key(0)])),
    "naming another service inside": (R.NOT_FOR_THIS_SERVICE, lambda w, s: seal(
        w.alice, "service-grants", "recorder", s.sealing_pub, _svc_payload(w, s, service="events"))),
    "from an account that never enrolled it": (R.NOT_ENROLLED, lambda w, s: w.mallory.service_grants_for(
        s.card(), 9, [])),
    "an impostor with an enrolled account's name": (R.NOT_FROM_OWNER, lambda w, s: Account.new(
        "alice").service_grants_for(s.card(), 9, [w.key(0)])),
    "signed by the owner for a display": (R.NOT_FROM_OWNER, lambda w, s: spec_seal(
        "service-grants", "recorder", s.sealing_pub, "alice", _svc_payload(w, s),
        w.alice.sign("grants", _svc_payload(w, s)))),
    "tampered": (R.CANNOT_OPEN, lambda w, s: _flipped(w.alice.service_grants_for(s.card(), 9, [w.key(0)]),
                                                      "ciphertext")),
    "replayed": (R.STALE, lambda w, s: w.alice.service_grants_for(s.card(), 1, [w.key(0)])),
}


@pytest.mark.parametrize("attack", sorted(SERVICE_ATTACKS))
def test_each_attack_on_a_service_is_refused_with_its_reason(world: World, service: Service, attack: str) -> None:
    grants = ServiceGrants(service)
    grants.accept(world.alice.service_grants_for(service.card(), 1, [world.key(0)]))
    reason, make = SERVICE_ATTACKS[attack]
    before = grants.keyring("alice").to_json()
    with pytest.raises(GrantError) as info:
        grants.accept(make(world, service))
    assert info.value.reason is reason, str(info.value)
    assert grants.keyring("alice").to_json() == before and grants.serial("alice") == 1


def test_an_account_id_enrolled_again_with_another_card_takes_nothing_of_the_first(world: World, service: Service,
                                                                                  tmp_path: Path) -> None:
    """alice leaves the service; later an account enrolls under the id "alice" with another card
    (another person, once the id was free). It gets none of the first alice's keys, nor her
    serial, in memory or from the service's files."""
    grants = ServiceGrants(service, tmp_path / "held")
    grants.accept(world.alice.service_grants_for(service.card(), 5, [world.key(0)]))
    assert len(grants.keyring("alice")) == 1 and grants.serial("alice") == 5
    service.leave("alice")
    assert len(grants.keyring("alice")) == 0 and grants.serial("alice") == 0
    second = Account.new("alice")
    service.enroll(second.card())
    for held in (grants, ServiceGrants(service, tmp_path / "held")):   # as it is, and restarted
        assert len(held.keyring("alice")) == 0 and held.serial("alice") == 0
        account, ring = held.accept(second.service_grants_for(service.card(), 1, [some_binding("alice", "cam-9", 1)]))
        assert account == "alice" and ring.binding_or_none(world.key(0).key_id) is None and len(ring) == 1
    # the first alice, enrolled again: what the service keeps is the second card's, nothing of it is hers
    service.leave("alice")
    service.enroll(world.alice.card())
    assert len(ServiceGrants(service, tmp_path / "held").keyring("alice")) == 0


def test_a_service_keeps_each_accounts_keys_apart(world: World, service: Service) -> None:
    """Bob cannot shadow alice's camera at the service by naming its key id: each account's
    keys are a keyring of their own, and a worker verifies an account's segments with its own."""
    service.enroll(world.bob.card())
    grants = ServiceGrants(service)
    grants.accept(world.alice.service_grants_for(service.card(), 1, [world.key(0)]))
    forged = some_binding("bob", "cam-1", 1)._replace(key_id=world.key(0).key_id)
    account, ring = grants.accept(world.bob.service_grants_for(service.card(), 1, [forged]))
    assert account == "bob" and ring.binding(forged.key_id).owner == "bob"
    assert grants.keyring("alice").binding(forged.key_id) == world.key(0)
    assert len(grants.keyring("carol")) == 0
    service.leave("bob")
    assert len(grants.keyring("bob")) == 0     # an account that left is granted nothing here


# -- the vectors (tests/vectors/grants_v3.json) ----------------------------------------------------------

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "grants_v3.json"


def _vectors() -> Dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_the_vectors_are_what_the_generator_makes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_grant_vectors", Path(__file__).resolve().parents[2] / "tools" / "make_grant_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert VECTORS.read_text(encoding="utf-8") == module.render()


@pytest.mark.parametrize("index", range(3))
def test_each_vector_message_is_the_spec_byte_for_byte(index: int) -> None:
    """Sealed again here from the spec's primitives with the vector's ephemeral key: the same
    ciphertext; opened here: the same payload, signed by the issuer's card."""
    v = _vectors()
    m = v["messages"][index]
    issuer = v["accounts"][m["issuer"]]["card"]
    payload, signature = m["payload"].encode("utf-8"), bytes.fromhex(m["signature"])
    eph = X25519PrivateKey.from_private_bytes(bytes.fromhex(m["eph_secret"]))
    to_pub = bytes.fromhex(m["sealed"]["to_pub"])
    shared = eph.exchange(X25519PublicKey.from_public_bytes(to_pub))
    eph_pub = eph.public_key().public_bytes_raw()
    ciphertext = AESGCM(spec_key(shared, eph_pub, to_pub, m["kind"])).encrypt(
        bytes(12), len(payload).to_bytes(4, "big") + payload + signature, spec_aad(m["kind"], m["to"], m["issuer"]))
    assert m["sealed"] == {"segbind": "sealed", "version": 3, "kind": m["kind"], "to": m["to"],
                           "to_pub": to_pub.hex(), "from": m["issuer"], "eph": eph_pub.hex(),
                           "ciphertext": ciphertext.hex()}
    assert spec_open(m["sealed"], bytes.fromhex(m["recipient_secret"]),
                     bytes.fromhex(issuer["signing_pub"])) == payload
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":")).encode()


def test_the_vector_messages_are_taken_by_their_recipients(tmp_path: Path) -> None:
    v = _vectors()
    p = v["period"]
    epoch = Epoch.of_pairing(bytes.fromhex(p["pairing_secret"]), p["owner"], p["camera"], p["epoch"], p["shares"],
                             p["period_s"])
    own = [Binding.of_epoch(epoch, q).to_json() for q in (p["period"], p["period"] + 1)]
    alice = AccountCard.from_json(v["accounts"]["alice"]["card"])
    (tmp_path / "tv.json").write_text(json.dumps({
        "segbind": "display", "version": 3, "display": "tv-1", "sealing_key": v["display"]["sealing_secret"],
        "owner": alice.to_json()}))
    tv = Display.load(tmp_path / "tv.json")
    assert tv.card().to_json() == v["display"]["card"]
    assert enrollment_code(tv.card(), alice) == v["display"]["enrollment_code"]
    grants, offer, service = v["messages"]
    assert grants["expected"]["keys"] == own
    assert spec_epoch_id(epoch.root).hex() == p["epoch_id"] == own[0]["epoch_id"]
    assert epoch.root.hex() == p["epoch_root"]
    gone = v["revoked"]
    previous = Epoch.of_pairing(bytes.fromhex(gone["pairing_secret"]), gone["owner"], gone["camera"], gone["epoch"],
                                [], gone["period_s"])
    assert spec_epoch_id(previous.root).hex() == gone["epoch_id"] != p["epoch_id"]
    assert (gone["owner"], gone["camera"], gone["epoch"]) == (p["owner"], p["camera"], p["epoch"])
    assert grants["expected"]["revoked"] == [{"owner": "alice", "epoch_id": gone["epoch_id"]}]
    held = DisplayGrants(tv)
    ring = held.accept(grants["sealed"])
    assert [b.to_json() for b in ring.bindings()] == own and held.serial == 7
    assert [c.to_json() for c in held.cameras.values()] == grants["expected"]["cameras"]
    assert [r.to_json() for r in ring.revoked_ids()] == grants["expected"]["revoked"]
    bob = Account.from_json({"segbind": "account", "version": 3, "account": "bob",
                             "signing_key": v["accounts"]["bob"]["signing_secret"],
                             "sealing_key": v["accounts"]["bob"]["sealing_secret"]})
    assert [b.to_json() for b in bob.open_offer(offer["sealed"], alice).keys] == offer["expected"]["keys"]
    (tmp_path / "svc.json").write_text(json.dumps({
        "segbind": "service", "version": 3, "service": "recorder", "sealing_key": v["service"]["sealing_secret"],
        "accounts": [alice.to_json()]}))
    svc = Service.load(tmp_path / "svc.json")
    assert enrollment_code(svc.card(), alice) == v["service"]["enrollment_code"]
    account, ring = ServiceGrants(svc).accept(service["sealed"])
    assert account == "alice" and [b.to_json() for b in ring.bindings()] == service["expected"]["keys"]
