// The JavaScript verifier (src/segbind/web/segbind-verify.js) against the format's test
// vectors (tests/vectors/segbind_v2.json), under Node's own test runner:
//     node --test tests/web/
// (tests/web/test_js_verifier.py runs this from pytest). Keys are derived here with
// WebCrypto's HKDF from the vectors' pairing secrets, as FORMAT.md 2 says; nothing is
// taken from the Python implementation.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { parseStrictJson } from "../../src/segbind/web/segbind-grants.js";
import {
  Keyring, Reason, StreamVerifier, annexbSegments, annexbUnits, concatBytes, decodeTag, fromHex,
  sha256, tagCodec, toHex, unescapeRbsp,
} from "../../src/segbind/web/segbind-verify.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = parseStrictJson(fs.readFileSync(path.join(HERE, "..", "vectors", "segbind_v2.json"), "utf8"));
const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();

async function hkdf(ikm, info) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: enc.encode("segbind/v2"), info }, key, 256);
  return new Uint8Array(bits);
}

const id = (s) => { const raw = enc.encode(s); return concatBytes([Uint8Array.of(raw.length), raw]); };
const u32 = (n) => Uint8Array.of((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);

async function slotKeys(v) {
  const root = await hkdf(fromHex(v.pairing_secret),
    concatBytes([enc.encode("segbind/v2 epoch\0"), id(v.owner), id(v.camera), u32(Number(v.epoch))]));
  const holders = [v.owner, ...v.shares];
  const keys = [];
  for (let s = 0; s < holders.length; s++) {
    keys.push(await hkdf(root, concatBytes([enc.encode("segbind/v2 slot\0"), Uint8Array.of(s), id(holders[s])])));
  }
  return { root, keys };
}

async function keyringFor(v, slot) {
  const { keys } = await slotKeys(v);
  return Keyring.of([{ owner: v.owner, camera: v.camera, epoch: Number(v.epoch), slot, key: keys[slot] }]);
}

const reframed = (bytes) => {  // the same units with 3-byte start codes and zero bytes between them
  const { units } = annexbUnits(bytes);
  return concatBytes(units.flatMap((u) => [Uint8Array.of(0, 0, 1), u, Uint8Array.of(0)]));
};

test("keys: epoch roots, slot keys and command keys derive as the vectors say", async () => {
  assert.ok(VECTORS.keys.length >= 2);
  for (const v of VECTORS.keys) {
    const { root, keys } = await slotKeys(v);
    assert.equal(toHex(root), v.epoch_root, v.name);
    assert.deepEqual(keys.map(toHex), v.slot_keys, v.name);
    const command = await hkdf(fromHex(v.pairing_secret), concatBytes([enc.encode("segbind/v2 command\0"), id(v.owner), id(v.camera)]));
    assert.equal(toHex(command), v.command_key, v.name);
  }
});

test("emulation prevention: the vectors' IDR unescapes to its RBSP, and an escaped SEI to fewer bytes", () => {
  const first = VECTORS.segments[0];
  const idr = first.units.map(fromHex).find((u) => (u[0] & 0x1f) === 5);
  const rbsp = unescapeRbsp(idr.subarray(1));
  assert.equal(toHex(rbsp), VECTORS.idr_rbsp);
  assert.notEqual(rbsp.length, idr.length - 1);
  assert.ok(VECTORS.segments.some((v) => unescapeRbsp(fromHex(v.sei_nal)).length < fromHex(v.sei_nal).length)
    || VECTORS.chains[0].segments.some((v) => unescapeRbsp(fromHex(v.sei_nal)).length < fromHex(v.sei_nal).length));
  assert.deepEqual(unescapeRbsp(Uint8Array.of(0, 0, 3, 1, 0, 0, 0, 3, 0, 0, 3, 3)), Uint8Array.of(0, 0, 1, 0, 0, 0, 0, 0, 3));
});

for (const v of VECTORS.segments) {
  test(`segment vector ${v.name}: digest, SEI, tag fields, MACs`, async () => {
    const segment = fromHex(v.segment);
    assert.equal(toHex(await sha256(segment)), v.content_digest, "the camera's bytes are the canonical form");
    const { units } = annexbUnits(fromHex(v.reframed_segment));
    assert.deepEqual(units.map(toHex), v.units);
    const canonical = concatBytes(units.flatMap((u) => [Uint8Array.of(0, 0, 0, 1), u]));
    assert.equal(toHex(await sha256(canonical)), v.content_digest, "another framing, the same canonical form");
    const sei = fromHex(v.sei_nal);
    assert.equal(tagCodec(sei), Number(v.codec));
    const { tag, signed } = decodeTag(fromHex(v.tag_body));
    assert.equal(toHex(signed), v.signed_fields);
    assert.equal(tag.owner, v.owner);
    assert.equal(tag.camera, v.camera);
    assert.equal(tag.epoch, Number(v.epoch));
    assert.equal(tag.streamId, BigInt(v.stream_id));
    assert.equal(tag.seq, BigInt(v.seq));
    assert.equal(tag.captureMs, BigInt(v.capture_ms));
    assert.equal(tag.durationMs, Number(v.duration_ms));
    assert.equal(tag.pictures, Number(v.pictures));
    assert.equal(tag.units, units.length);
    assert.equal(tag.endOfStream, v.end_of_stream);
    assert.equal(toHex(tag.link), v.link);
    assert.deepEqual(tag.macs.map(toHex), v.macs);
    const { keys } = await slotKeys(v);
    const digest = fromHex(v.content_digest);
    for (let s = 0; s < keys.length; s++) {
      const key = await subtle.importKey("raw", keys[s], { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const mac = new Uint8Array(await subtle.sign("HMAC", key, concatBytes([signed, digest]))).subarray(0, 16);
      assert.equal(toHex(mac), v.macs[s], `slot ${s}`);
    }
  });

  test(`segment vector ${v.name}: every slot holder accepts it, as tagged and reframed; a stranger does not`, async () => {
    const tagged = fromHex(v.tagged_segment);
    for (let s = 0; s <= v.shares.length; s++) {
      const ring = await keyringFor(v, s);
      assert.equal((await new StreamVerifier(ring).verifyAnnexB(tagged)).reason, Reason.OK, `slot ${s}`);
      assert.equal((await new StreamVerifier(ring).verifyAnnexB(reframed(tagged))).reason, Reason.OK, `slot ${s}, reframed`);
      const [segment] = annexbSegments(tagged);
      assert.equal((await new StreamVerifier(ring).verifySegment(segment)).reason, Reason.OK, `slot ${s}, read as a stream`);
    }
    const other = { ...v, pairing_secret: "00".repeat(32) };
    assert.equal((await new StreamVerifier(await keyringFor(other, 0)).verifyAnnexB(tagged)).reason, Reason.MAC_MISMATCH);
    const stranger = await Keyring.of([{ owner: "mallory", camera: v.camera, epoch: 1, key: new Uint8Array(32) }]);
    assert.equal((await new StreamVerifier(stranger).verifyAnnexB(tagged)).reason, Reason.NO_GRANT);
  });
}

for (const chain of VECTORS.chains) {
  test(`chain ${chain.name}: in order ok, swapped late, repeated duplicate`, async () => {
    const [first] = chain.segments;
    const ring = await keyringFor(first, 0);
    const segments = chain.segments.map((s) => fromHex(s.tagged_segment));
    const inOrder = new StreamVerifier(ring);
    const reasons = [];
    for (const s of [...segments, segments[0]]) reasons.push((await inOrder.verifyAnnexB(s)).reason);
    assert.deepEqual(reasons, [...segments.map(() => Reason.OK), Reason.DUPLICATE]);
    const swapped = new StreamVerifier(ring);
    assert.equal((await swapped.verifyAnnexB(segments[1])).reason, Reason.OK);
    assert.equal((await swapped.verifyAnnexB(segments[0])).reason, Reason.LATE);
    const joined = annexbSegments(concatBytes(segments));
    assert.equal(joined.length, segments.length);
    const stream = new StreamVerifier(ring);
    for (const s of joined) assert.equal((await stream.verifySegment(s)).reason, Reason.OK);
  });
}
