// A PeriodKeyring (segbind-grants.js: what a display's grants give its verifier) from bindings
// as segbind.Keyring writes them ({key_id, owner, camera, epoch, period, period_s, slot, key,
// content_key}, hex keys): for the tests and benchmarks that hand the JavaScript verifier the
// same keys as the Python one, without sealing grants first.

import { PeriodKeyring } from "../../src/segbind/web/segbind-grants.js";
import { fromHex } from "../../src/segbind/web/segbind-verify.js";

const bytes = (v) => (typeof v === "string" ? fromHex(v) : v);

export async function keyringOf(bindings, revoked = []) {
  const ring = new PeriodKeyring();
  for (const [owner, camera, epoch] of revoked) ring.markRevoked(owner, camera, BigInt(epoch));
  for (const b of bindings) {
    await ring.grant({
      keyId: bytes(b.key_id), owner: b.owner, camera: b.camera, epoch: BigInt(b.epoch), period: BigInt(b.period),
      periodS: BigInt(b.period_s), slot: BigInt(b.slot), key: bytes(b.key), contentKey: bytes(b.content_key),
    });
  }
  return ring;
}
