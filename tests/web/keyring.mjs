// A PeriodKeyring (segbind-grants.js: what a display's grants give its verifier) from bindings
// as segbind.Keyring writes them ({key_id, owner, camera, epoch, epoch_id, period, period_s, slot,
// key, content_key}, hex keys) and revoked entries ([owner, epoch id hex], as GRANTS.md names an
// epoch of one pairing): for the tests and benchmarks that hand the JavaScript verifier the same
// keys as the Python one, without sealing grants first.

import { PeriodKeyring } from "../../src/segbind/web/segbind-grants.js";
import { fromHex, toHex } from "../../src/segbind/web/segbind-verify.js";

const bytes = (v) => (typeof v === "string" ? fromHex(v) : v);

export async function keyringOf(bindings, revoked = []) {
  const ring = new PeriodKeyring();
  for (const [owner, epochId] of revoked) ring.markRevoked(owner, toHex(bytes(epochId)));
  for (const b of bindings) {
    await ring.grant({
      keyId: bytes(b.key_id), owner: b.owner, camera: b.camera, epoch: BigInt(b.epoch), epochId: toHex(bytes(b.epoch_id)),
      period: BigInt(b.period), periodS: BigInt(b.period_s), slot: BigInt(b.slot), key: bytes(b.key),
      contentKey: bytes(b.content_key),
    });
  }
  return ring;
}
