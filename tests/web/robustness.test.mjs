// Whatever bytes arrive, the JavaScript verifier gives a verdict and never throws: arbitrary
// bytes, and the vectors' segment cut, padded and corrupted, as one segment, as a stream,
// and as fMP4 init segments and fragments (a display's gate must not be crashed by a cloud).
//     node --test tests/web/

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { FragmentGate, Reason, StreamVerifier, annexbSegments, fromHex } from "../../src/segbind/web/segbind-verify.js";
import { keyringOf } from "./keyring.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = JSON.parse(fs.readFileSync(path.join(HERE, "..", "vectors", "segbind_v3.json"), "utf8"));
const REASONS = new Set(Object.values(Reason));
// a keyring holding the vector's key id, with keys that verify nothing: every path up to the MAC is walked
const VECTOR = VECTORS.segments[0];
const ring = () => keyringOf([{ key_id: VECTOR.key_id, owner: "alice", camera: "cam-1", epoch: 1, epoch_id: "00".repeat(16), period: VECTOR.period,
  period_s: VECTOR.period_s, slot: 0, key: new Uint8Array(32), content_key: new Uint8Array(16) }]);

let seed = 12345;
const random = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
const bytes = (n) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));

function mutations(base) {
  const out = [bytes(0), bytes(1), bytes(7), bytes(64), bytes(4096)];
  for (let i = 0; i < 300; i++) {
    const m = base.slice(0, 1 + Math.floor(random() * base.length));
    for (let k = 0; k < 1 + Math.floor(random() * 4); k++) m[Math.floor(random() * m.length)] = Math.floor(random() * 256);
    out.push(m);
  }
  return out;
}

// A minimal box, for hand-made fMP4.
const box = (type, ...parts) => {
  const size = 8 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, size);
  out.set([...type].map((c) => c.charCodeAt(0)), 4);
  let at = 8;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

test("arbitrary and corrupted bytes give a verdict, never an exception", async () => {
  const tagged = fromHex(VECTORS.segments[0].tagged_segment);
  const verifier = new StreamVerifier(await ring(), { window: { maxAgeS: 30, maxFutureS: 5 } });
  let verdicts = 0;
  for (const input of mutations(tagged)) {
    const v = await verifier.verifyAnnexB(input);
    assert.ok(REASONS.has(v.reason), v.reason);
    assert.notEqual(v.reason, Reason.OK);
    for (const segment of annexbSegments(input)) {
      assert.ok(REASONS.has((await verifier.verifySegment(segment)).reason));
    }
    verdicts++;
  }
  assert.ok(verdicts > 300);
});

test("corrupted fMP4 init segments and fragments are refused, never an exception", async () => {
  const gate = new FragmentGate(new StreamVerifier(await ring()), { decrypt: true });
  const moof = box("moof", box("mfhd", new Uint8Array(8)), box("traf", box("tfhd", Uint8Array.of(0, 2, 0, 0, 0, 0, 0, 1)),
    box("trun", Uint8Array.of(0, 0, 2, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9))));
  const fragment = new Uint8Array([...moof, ...box("mdat", Uint8Array.of(0, 0, 0, 5, 0x65, 1, 2, 3, 4))]);
  const init = box("moov", box("trak", box("tkhd", new Uint8Array(84))));
  for (const candidate of [bytes(0), bytes(100), init, ...mutations(init).slice(0, 50)]) {
    const problem = gate.init(candidate);
    assert.equal(typeof problem, "string");
    assert.ok(problem.length > 0, "an unusable init segment is reported");
    for (const frag of [fragment, ...mutations(fragment).slice(0, 40)]) {
      const { pass, verdicts, media } = await gate.fragment(frag);
      assert.equal(pass, false);
      assert.equal(media, null);
      assert.ok(verdicts.every((v) => REASONS.has(v.reason)));
    }
  }
});

test("fragments given at once are judged one after the other, in the order given", async () => {
  const gate = new FragmentGate(new StreamVerifier(await ring()), { decrypt: true });
  const order = [];
  const pending = [0, 1, 2].map((k) => gate.fragment(bytes(64 + k)).then((result) => { order.push(k); return result; }));
  const results = await Promise.all(pending);
  assert.deepEqual(order, [0, 1, 2]);
  assert.ok(results.every((r) => r.pass === false && r.verdicts[0].reason === Reason.FRAMING));
});
