"""Sealed grants opened in JavaScript (src/segbind/web/segbind-grants.js, WebCrypto under Node)
against grants made by src/segbind/grants.py (format 3): the same period keys held after every
good message, and the same refusal, in GRANTS.md section 7's order, for every bad one; and the
vectors of tests/vectors/grants_v3.json opened in JavaScript, byte for byte."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List

from segbind import Binding, Epoch
from segbind.grants import Account, CameraState, Display, DisplayGrants, GrantError, OutOfBand, enrollment_code, seal
from tests.support import ROOT
from tests.support.web import NODE, js_results

MAX_U64 = (1 << 64) - 1
T = 1_795_000_000_000
PERIOD = T // 1_800_000
VECTORS = ROOT / "tests" / "vectors" / "grants_v3.json"


def binding(owner: str, camera: str, number: int, slot: int = 0, period: int = PERIOD,
            pairing: bytes = bytes(range(32))) -> Binding:
    ep = Epoch.of_pairing(pairing, owner, camera, number, ["bob"] if slot else [])
    return Binding.of_epoch(ep, period, "bob" if slot else None)


def payload(owner: Account, to: Display, serial: int, keys: List[Binding], **changes: Any) -> bytes:
    """A grants payload written by hand (canonical JSON), so it can be made wrong on purpose."""
    obj: Dict[str, Any] = {"segbind": "grants", "version": 3, "issuer": owner.account, "display": to.display,
                           "display_pub": to.sealing_pub.hex(), "serial": serial, "issued_ms": T,
                           "keys": [b.to_json() for b in keys], "revoked": [], "cameras": [],
                           "alarm_after_ms": 60_000}
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not None}, sort_keys=True,
                      separators=(",", ":")).encode()


def secret_of(display: Display, tmp_path: Path) -> str:
    display.save(tmp_path / ("%s.json" % display.display))
    return json.loads((tmp_path / ("%s.json" % display.display)).read_text())["sealing_key"]


def python_results(display: Display, messages: List[Any]) -> List[str]:
    grants = DisplayGrants(display)
    out = []
    for message in messages:
        try:
            ring = grants.accept(json.loads(message) if isinstance(message, str) else message)
            held = sorted("%s/%s/%d/%s/%d/%d" % (b.owner, b.camera, b.epoch, b.epoch_id.hex(), b.period, b.slot)
                          for b in ring.bindings())
            out.append("ok %d %s" % (grants.serial, ",".join(held)))
        except GrantError as exc:
            out.append(exc.reason.value)
    return out


def edited(sealed: Dict[str, Any], edit: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    copied = copy.deepcopy(sealed)
    edit(copied)
    return copied


def test_js_opens_what_python_seals_and_refuses_what_python_refuses(tmp_path: Path) -> None:
    alice, eve = Account.new("alice", test_only=True), Account.new("eve", test_only=True)
    tv, kitchen = Display.new("tv-1", test_only=True), Display.new("kitchen", test_only=True)
    code = OutOfBand.enroll(alice, tv)
    OutOfBand.enroll(alice, kitchen)
    cam1, cam2, shared = binding("alice", "cam-1", 1), binding("alice", "cam-2", 3), binding("carol", "cam-9", 2, 1)
    state = [CameraState("alice", "cam-2", 4, T - 1, True)]
    good = alice.grants_for(tv.card(), 1, [cam1, cam2], issued_ms=T, cameras=state)
    later = alice.grants_for(tv.card(), 5, [cam2._replace(period=PERIOD + 1, key_id=bytes(16)), shared],
                             revoked=[cam1.epoch_name], issued_ms=T)
    repaired = binding("alice", "cam-1", 1, pairing=bytes(range(1, 33)))   # cam-1 released and paired again
    day_later = alice.grants_for(tv.card(), 6, [binding("alice", "cam-2", 3, 0, PERIOD + 49)],
                                 issued_ms=(PERIOD + 49) * 1_800_000)

    def signed(body: bytes, by: Account = alice, to: Display = tv) -> Dict[str, Any]:
        return seal(by, "grants", to.display, to.sealing_pub, body)

    flip = lambda s: s[:10] + ("0" if s[10] != "0" else "1") + s[11:]  # noqa: E731
    scenarios: Dict[str, List[Any]] = {
        "good, then newer, then the old one again": [good, later, good],
        "a newer serial only": [later, good],
        "the largest serial": [alice.grants_for(tv.card(), MAX_U64, [cam1], issued_ms=T)],
        "periods kept, then dropped a day after they ended": [good, later, day_later],
        "a key id held here for another grant": [good, alice.grants_for(
            tv.card(), 2, [shared._replace(key_id=cam1.key_id)], issued_ms=T)],
        "a key id granted twice in one message": [signed(payload(alice, tv, 1, [cam1, cam2._replace(
            key_id=cam1.key_id)]))],
        "one period granted twice": [signed(payload(alice, tv, 1, [cam1, cam1._replace(key_id=bytes(16))]))],
        "two period lengths in one epoch": [signed(payload(alice, tv, 1, [cam1, cam1._replace(
            key_id=bytes(16), period_s=900, period=PERIOD * 2 + 1)]))],
        "a period out of range": [signed(payload(alice, tv, 1, [cam1._replace(period=2 ** 53)]))],
        "a content key of the wrong size": [signed(payload(alice, tv, 1, [cam1]).replace(
            cam1.content_key.hex().encode(), b"00"))],
        "a camera entry of another owner": [signed(payload(alice, tv, 1, [cam1], cameras=[
            CameraState("carol", "cam-9", 2, 0, False).to_json()]))],
        "a camera entry's pending not a boolean": [signed(payload(alice, tv, 1, [cam1], cameras=[
            {**CameraState("alice", "cam-1", 2, 0, False).to_json(), "pending": 0}]))],
        "sealed to another display": [alice.grants_for(kitchen.card(), 1, [cam1], issued_ms=T)],
        "to the right id with another key": [edited(alice.grants_for(kitchen.card(), 1, [cam1], issued_ms=T),
                                                    lambda m: m.update(to="tv-1"))],
        "ciphertext bit flipped": [edited(good, lambda m: m.update(ciphertext=flip(m["ciphertext"])))],
        "ephemeral key changed": [edited(good, lambda m: m.update(eph=flip(m["eph"])))],
        "issuer renamed": [edited(good, lambda m: m.update({"from": "eve"}))],
        "made and signed by a stranger": [eve.grants_for(tv.card(), 1, [cam1], issued_ms=T)],
        "signed by the owner, naming another issuer": [signed(payload(alice, tv, 1, [cam1], issuer="eve"))],
        "for another display inside": [signed(payload(alice, tv, 1, [cam1], display="kitchen"))],
        "serial 0": [signed(payload(alice, tv, 0, [cam1]))],
        "serial as a float": [signed(payload(alice, tv, 1, [cam1]).replace(b'"serial":1', b'"serial":1.0'))],
        "serial above 2^64": [signed(payload(alice, tv, MAX_U64 + 1, [cam1]))],
        "a duplicate name": [signed(payload(alice, tv, 1, [cam1]).replace(b'"serial":1', b'"serial":1,"serial":2'))],
        "an unknown field": [signed(payload(alice, tv, 1, [cam1], extra=1))],
        "a field missing": [signed(payload(alice, tv, 1, [cam1], issued_ms=None))],
        "a key of the wrong size": [signed(payload(alice, tv, 1, [cam1]).replace(cam1.key.hex().encode(), b"00"))],
        "a slot out of range": [signed(payload(alice, tv, 1, [cam1]).replace(b'"slot":0', b'"slot":8'))],
        "a revoked epoch granted again": [later, alice.grants_for(tv.card(), 9, [cam1], issued_ms=T)],
        "a new pairing's epoch 1 after the old one's was revoked": [
            good, later, alice.grants_for(tv.card(), 6, [repaired], [cam1.epoch_name], issued_ms=T),
            alice.grants_for(tv.card(), 7, [repaired, cam1._replace(period=PERIOD + 1, key_id=bytes(range(16)))],
                             issued_ms=T)],
        "an epoch id held for another camera": [good, alice.grants_for(tv.card(), 2, [cam1._replace(
            camera="cam-3", key_id=bytes(16), period=PERIOD + 1)], issued_ms=T)],
        "an epoch id held for another period length": [good, signed(payload(alice, tv, 2, [cam1._replace(
            period_s=900, key_id=bytes(16), period=2 * PERIOD + 2)]))],
        "one epoch id for two cameras in one message": [signed(payload(alice, tv, 1, [cam1, cam2._replace(
            epoch_id=cam1.epoch_id)]))],
        "a key id held only in a period the message drops": [good, alice.grants_for(tv.card(), 2, [
            shared._replace(key_id=cam1.key_id, period=PERIOD + 48)], issued_ms=(PERIOD + 49) * 1_800_000 - 1),
            alice.grants_for(tv.card(), 3, [shared._replace(key_id=cam1.key_id, period=PERIOD + 48)],
                             issued_ms=(PERIOD + 49) * 1_800_000)],
        "an epoch id missing": [signed(payload(alice, tv, 1, [cam1]).replace(
            b'"epoch_id":"%s",' % cam1.epoch_id.hex().encode(), b""))],
        "an epoch id of 15 bytes": [signed(payload(alice, tv, 1, [cam1]).replace(
            cam1.epoch_id.hex().encode(), cam1.epoch_id.hex()[2:].encode()))],
        "epoch 2^31": [signed(payload(alice, tv, 1, [cam1]).replace(b'"epoch":1', b'"epoch":2147483648'))],
        "epoch 2^31 - 1": [signed(payload(alice, tv, 1, [cam1]).replace(b'"epoch":1', b'"epoch":2147483647'))],
        "a revoked entry of the first draft": [signed(payload(alice, tv, 1, [cam2], revoked=[
            {"owner": "alice", "camera": "cam-1", "epoch": 1}]))],
        "an epoch revoked twice": [signed(payload(alice, tv, 1, [cam2], revoked=[cam1.epoch_name.to_json()] * 2))],
        "an epoch granted and revoked": [signed(payload(alice, tv, 1, [cam1], revoked=[cam1.epoch_name.to_json()]))],
        "a revoked entry's epoch id in capitals": [signed(payload(alice, tv, 1, [cam2], revoked=[
            {"owner": "alice", "epoch_id": cam1.epoch_id.hex().upper()}]))],
        "an MQTT wildcard in a camera id": [signed(payload(alice, tv, 1, [cam1]).replace(b'"cam-1"', b'"cam/1"'))],
        "not UTF-8": [signed(payload(alice, tv, 1, [cam1]).replace(b'"alice"', b'"al\xffce"', 1))],
        "envelope of another kind": [edited(good, lambda m: m.update(kind="share-offer"))],
        "envelope version 2": [edited(good, lambda m: m.update(version=2))],
        "envelope version 3.0": [json.dumps(good).replace('"version": 3', '"version": 3.0')],
        "payload version 3.0": [signed(payload(alice, tv, 1, [cam1]).replace(b'"version":3', b'"version":3.0'))],
        "payload version 3e0": [signed(payload(alice, tv, 1, [cam1]).replace(b'"version":3', b'"version":3e0'))],
        "envelope field missing": [edited(good, lambda m: m.pop("eph"))],
        "envelope hex in capitals": [edited(good, lambda m: m.update(eph=m["eph"].upper()))],
    }
    cases = [{"name": name, "display": {"id": "tv-1", "secret": secret_of(tv, tmp_path)},
              "owner": alice.card().to_json(), "messages": messages} for name, messages in scenarios.items()]
    cases.append({"name": "not enrolled", "display": {"id": "tv-1", "secret": secret_of(tv, tmp_path)},
                  "owner": None, "messages": [good]})
    js = js_results("grants", cases, tmp_path)
    py = {name: python_results(tv_copy(tv, tmp_path), messages) for name, messages in scenarios.items()}
    py["not enrolled"] = python_results(_unenrolled(tv, tmp_path), [good])
    differ = {n: (py[n], js.get(n)) for n in py if py[n] != js.get(n)}
    assert not differ, json.dumps(differ, indent=1)
    p = PERIOD
    e1, e2, e9, r1 = (b.epoch_id.hex() for b in (cam1, cam2, shared, repaired))
    assert py["good, then newer, then the old one again"] == [
        "ok 1 alice/cam-1/1/%s/%d/0,alice/cam-2/3/%s/%d/0" % (e1, p, e2, p),
        "ok 5 alice/cam-2/3/%s/%d/0,alice/cam-2/3/%s/%d/0,carol/cam-9/2/%s/%d/1" % (e2, p, e2, p + 1, e9, p), "stale"]
    assert py["the largest serial"] == ["ok %d alice/cam-1/1/%s/%d/0" % (MAX_U64, e1, p)]
    kept = py["periods kept, then dropped a day after they ended"][-1]
    assert kept == "ok 6 alice/cam-2/3/%s/%d/0,alice/cam-2/3/%s/%d/0" % (e2, p + 1, e2, p + 49)
    assert py["a key id held here for another grant"][-1] == "malformed"
    assert py["a new pairing's epoch 1 after the old one's was revoked"][2:] == [
        "ok 6 alice/cam-1/1/%s/%d/0,alice/cam-2/3/%s/%d/0,alice/cam-2/3/%s/%d/0,carol/cam-9/2/%s/%d/1" % (
            r1, p, e2, p, e2, p + 1, e9, p), "malformed"]
    assert py["a key id held only in a period the message drops"][1:] == [
        "malformed", "ok 3 carol/cam-9/2/%s/%d/1" % (e9, p + 48)]
    assert [py[n][-1] for n in ("an epoch id held for another camera", "an epoch id held for another period length",
                                "one epoch id for two cameras in one message", "epoch 2^31")] == ["malformed"] * 4
    assert py["epoch 2^31 - 1"][0].startswith("ok 1 alice/cam-1/2147483647/")
    reasons = {r for results in py.values() for r in results if not r.startswith("ok")}
    assert reasons == {"stale", "not_for_this_display", "cannot_open", "not_from_owner", "malformed",
                       "not_enrolled"}, reasons
    assert code == enrollment_code(tv.card(), alice.card())


def tv_copy(display: Display, tmp_path: Path) -> Display:
    """A fresh copy of the display (same key, same owner): each scenario starts from serial 0."""
    path = tmp_path / "copy.json"
    display.save(path)
    return Display.load(path)


def _unenrolled(display: Display, tmp_path: Path) -> Display:
    path = tmp_path / "unenrolled.json"
    display.save(path)
    data = json.loads(path.read_text())
    data["owner"] = None
    path.write_text(json.dumps(data))
    return Display.load(path)


def test_the_enrollment_code_and_card_agree_with_python(tmp_path: Path) -> None:
    alice = Account.new("alice", test_only=True)
    tv = Display.new("tv-1", test_only=True)
    script = """
      import { DisplayIdentity } from "%s";
      const identity = await DisplayIdentity.fromSecret("tv-1", Uint8Array.from(Buffer.from("%s", "hex")));
      const code = await identity.pin(%s);
      let again = "kept";
      try { await identity.pin(%s); } catch (e) { again = "refused"; }
      console.log(JSON.stringify({card: identity.card(), code, again}));
    """ % (ROOT / "src" / "segbind" / "web" / "segbind-grants.js", secret_of(tv, tmp_path),
           json.dumps(alice.card().to_json()), json.dumps(Account.new("eve").card().to_json()))
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["card"] == tv.card().to_json()
    assert out["code"] == enrollment_code(tv.card(), alice.card())
    assert out["again"] == "refused"  # pinned for good: another owner's card is refused


def test_js_takes_the_vector_grants_byte_for_byte(tmp_path: Path) -> None:
    """tests/vectors/grants_v3.json's grants message opened in JavaScript: the same enrollment
    code, the same periods, the same pending rotation; and the keys it imported (not
    extractable) sign and decrypt as the vectors' key bytes do."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    v = json.loads(VECTORS.read_text(encoding="utf-8"))
    message = v["messages"][0]
    script = """
      import fs from "node:fs";
      import { DisplayGrants, DisplayIdentity, parseStrictJson } from "%s";
      const v = JSON.parse(fs.readFileSync("%s", "utf8"));
      const m = v.messages[0];
      const secret = Uint8Array.from(Buffer.from(v.display.sealing_secret, "hex"));
      const identity = await DisplayIdentity.fromSecret("tv-1", secret);
      const code = await identity.pin(v.accounts.alice.card);
      const display = new DisplayGrants(identity);
      const ring = await display.accept(parseStrictJson(JSON.stringify(m.sealed)));
      const subtle = globalThis.crypto.subtle;
      const probe = new TextEncoder().encode("segbind probe");
      const keys = [];
      for (const g of ring.grants().sort((a, b) => (a.period < b.period ? -1 : 1))) {
        const b = ring.binding(g.keyId);
        const mac = Buffer.from(await subtle.sign("HMAC", b.hmac, probe)).toString("hex");
        const clear = Buffer.from(await subtle.decrypt({ name: "AES-CTR", counter: new Uint8Array(16), length: 128 },
                                                       b.content, new Uint8Array(16))).toString("hex");
        keys.push({ key_id: g.keyId, owner: g.owner, camera: g.camera, epoch: g.epoch, epoch_id: g.epochId,
                    period: Number(g.period), slot: g.slot, mac, clear });
      }
      const cameras = display.cameras.map((c) => ({ owner: c.owner, camera: c.camera, epoch: Number(c.epoch),
                                                    since_ms: Number(c.sinceMs), pending: c.pending }));
      console.log(JSON.stringify({ code, keys, cameras, serial: display.serial.toString(),
        revoked: ring.revoked().map(([owner, epochId]) => ({ owner, epoch_id: epochId })),
        alarms: display.rotationAlarms(Number(m.expected.cameras[0].since_ms) + 60000),
        early: display.rotationAlarms(Number(m.expected.cameras[0].since_ms) + 59999) }));
    """ % (ROOT / "src" / "segbind" / "web" / "segbind-grants.js", VECTORS)
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["code"] == v["display"]["enrollment_code"]
    assert out["serial"] == "7" and out["revoked"] == message["expected"]["revoked"]
    assert out["cameras"] == message["expected"]["cameras"]
    assert [(a["camera"], a["epoch"]) for a in out["alarms"]] == [("cam-1", 3)] and out["early"] == []
    expected = message["expected"]["keys"]
    fields = ("key_id", "owner", "camera", "epoch", "epoch_id", "period", "slot")
    assert [{k: b[k] for k in fields} for b in out["keys"]] == [{k: e[k] for k in fields} for e in expected]
    for got, want in zip(out["keys"], expected):
        assert got["mac"] == hmac.new(bytes.fromhex(want["key"]), b"segbind probe", hashlib.sha256).hexdigest()
        encryptor = Cipher(algorithms.AES(bytes.fromhex(want["content_key"])), modes.CTR(bytes(16))).encryptor()
        assert got["clear"] == (encryptor.update(bytes(16)) + encryptor.finalize()).hex()
