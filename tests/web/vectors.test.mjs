// The JavaScript verifier (src/segbind/web/segbind-verify.js) against the format's test
// vectors (tests/vectors/segbind_v3.json, made by the core on MicroPython), under Node's own
// test runner:
//     node --test tests/web/
// (tests/web/test_js_verifier.py runs this from pytest). Keys are derived here with WebCrypto's
// HKDF from the vectors' pairing secrets, picture data encrypted here with WebCrypto's AES-CTR
// and escaped byte by byte, as FORMAT.md 2 and 4 say; nothing is taken from the Python
// implementation. The verifier then accepts each tagged segment for every slot holder, decrypts
// it into exactly the encoder's units, and refuses it to a stranger.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { parseStrictJson } from "../../src/segbind/web/segbind-grants.js";
import {
  Reason, StreamVerifier, annexbSegments, annexbUnits, concatBytes, decodeTag, fromHex, sha256, tagCodec, toHex,
} from "../../src/segbind/web/segbind-verify.js";
import { keyringOf } from "./keyring.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = parseStrictJson(fs.readFileSync(path.join(HERE, "..", "vectors", "segbind_v3.json"), "utf8"));
const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();
const SALT = enc.encode("segbind/v3");

async function hkdf(ikm, info, bytes = 32) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: SALT, info }, key, 8 * bytes));
}

const id = (s) => { const raw = enc.encode(s); return concatBytes([Uint8Array.of(raw.length), raw]); };
const be = (value, size) => {
  const out = new Uint8Array(size);
  let v = BigInt(value);
  for (let i = size - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
};
const label = (text) => enc.encode(text + "\0");

/** FORMAT.md 2: the epoch root, and a period's root, key id, content key and slot keys. */
async function periodKeys(v, period) {
  const root = await hkdf(fromHex(v.pairing_secret), concatBytes([label("segbind/v3 epoch"), id(v.owner), id(v.camera),
    be(v.epoch, 4), be(v.period_s, 4)]));
  const q = await hkdf(root, concatBytes([label("segbind/v3 period"), be(period, 8)]));
  const holders = [v.owner, ...v.shares];
  const slotKeys = [];
  for (let s = 0; s < holders.length; s++) {
    slotKeys.push(await hkdf(q, concatBytes([label("segbind/v3 slot"), Uint8Array.of(s), id(holders[s])])));
  }
  return { root, q, keyId: await hkdf(q, label("segbind/v3 key id"), 16), contentKey: await hkdf(q, label("segbind/v3 content"), 16), slotKeys };
}

/** EID(E) = HKDF(R(E), "segbind/v3", "segbind/v3 epoch id" 00, 16): how grants name the vector's epoch (FORMAT.md 2). */
async function epochIdOf(v) {
  const root = await hkdf(fromHex(v.pairing_secret), concatBytes([label("segbind/v3 epoch"), id(v.owner), id(v.camera),
    be(v.epoch, 4), be(v.period_s, 4)]));
  return hkdf(root, label("segbind/v3 epoch id"), 16);
}

/** A keyring holding slot `slot` of the vector's period (as a display's grants would give it). */
async function keyringFor(v, slot, keys = null) {
  return keyringOf([{ key_id: keys ? keys.keyId : v.key_id, owner: v.owner, camera: v.camera, epoch: v.epoch,
    epoch_id: keys ? await hkdf(keys.root, label("segbind/v3 epoch id"), 16) : await epochIdOf(v), period: v.period,
    period_s: v.period_s, slot, key: keys ? keys.slotKeys[slot] : v.slot_keys[slot], content_key: keys ? keys.contentKey : v.content_key }]);
}

// ---- the protected form, written out from FORMAT.md 4 -------------------------------------------

const isPicture = (u, codec) => (codec === 1 ? (u[0] & 0x1f) >= 1 && (u[0] & 0x1f) <= 5 : ((u[0] >> 1) & 0x3f) <= 31);
const isDelimiter = (u, codec) => (codec === 1 ? (u[0] & 0x1f) === 9 : ((u[0] >> 1) & 0x3f) === 35);

/** 4.2: a 03 after every two zero bytes followed by 00..03, the bytes around counted. */
function escape(before, cipher, after) {
  const out = [];
  let zeros = before.length >= 2 && !before[before.length - 1] && !before[before.length - 2] ? 2 : before.length && !before[before.length - 1] ? 1 : 0;
  const all = [...cipher, after];
  all.forEach((b, i) => {
    if (zeros >= 2 && b <= 3) { out.push(3); zeros = 0; }
    if (i < cipher.length) out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  });
  return Uint8Array.from(out);
}

/** 4.1 to 4.3: each picture unit's u[L..n-2] encrypted, one keystream a segment, each access unit from a fresh block. */
async function protect(units, codec, lead, contentKey, domain, streamId, seq) {
  const key = await subtle.importKey("raw", contentKey, "AES-CTR", false, ["encrypt"]);
  let counter = (BigInt(domain) << 120n) | (BigInt(streamId) << 72n) | (BigInt(seq) << 40n);
  const counters = [];
  const lengths = [];
  const out = [];
  let used = 0;
  for (const u of units) {
    if (isDelimiter(u, codec)) {
      if (counters.length) { counter += BigInt(Math.ceil(used / 16)); lengths.push(used); }
      counters.push(counter);
      used = 0;
    } else if (!counters.length) {
      counters.push(counter);
    }
    if (!isPicture(u, codec) || u.length - 1 <= lead) { out.push(u); continue; }
    const plain = u.subarray(lead, u.length - 1);
    const block = (counter + BigInt(Math.floor(used / 16))) % (1n << 128n);
    const pad = new Uint8Array(used % 16);
    const cipher = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter: be(block, 16), length: 128 }, key,
      concatBytes([pad, plain]))).subarray(pad.length);
    used += plain.length;
    out.push(concatBytes([u.subarray(0, lead), escape(u.subarray(0, lead), cipher, u[u.length - 1]), u.subarray(u.length - 1)]));
  }
  lengths.push(used);
  return { protectedUnits: out, counters: counters.map((c) => toHex(be(c, 16))), lengths };
}

const annexb = (units) => concatBytes(units.flatMap((u) => [Uint8Array.of(0, 0, 0, 1), u]));
const reframed = (bytes) => {  // the same units with 3-byte start codes and zero bytes between them
  const { units } = annexbUnits(bytes);
  return concatBytes(units.flatMap((u) => [Uint8Array.of(0, 0, 1), u, Uint8Array.of(0)]));
};

// ---- tests ------------------------------------------------------------------------------------

test("keys: epoch roots, period roots, key ids, content keys, slot keys and command keys derive as the vectors say", async () => {
  assert.ok(VECTORS.keys.length >= 2);
  for (const v of VECTORS.keys) {
    for (const p of v.periods) {
      const keys = await periodKeys(v, p.period);
      assert.equal(toHex(keys.root), v.epoch_root, v.name);
      assert.equal(toHex(keys.q), p.period_root, v.name);
      assert.equal(toHex(keys.keyId), p.key_id, v.name);
      assert.equal(toHex(keys.contentKey), p.content_key, v.name);
      assert.deepEqual(keys.slotKeys.map(toHex), p.slot_keys, v.name);
    }
    const command = await hkdf(fromHex(v.pairing_secret), concatBytes([label("segbind/v3 command"), id(v.owner), id(v.camera)]));
    assert.equal(toHex(command), v.command_key, v.name);
  }
});

test("format 1 and 2 tags are refused as unknown_version, saying which", () => {
  for (const version of [1, 2]) {
    assert.throws(() => decodeTag(Uint8Array.of(version, 1, 1, 5, 65)), (e) => e.reason === Reason.UNKNOWN_VERSION
      && e.message === `a format ${version} tag (unencrypted video, names in clear): this verifier reads format 3 only; the camera needs its format 3 agent`);
  }
});

for (const v of [...VECTORS.segments, ...VECTORS.chains.flatMap((c) => c.segments)]) {
  const codec = Number(v.codec);
  const units = v.units.map(fromHex);

  test(`segment vector ${v.name}: keys, protected form, counter blocks, digest, tag fields, MACs`, async () => {
    assert.deepEqual(annexbUnits(fromHex(v.segment)).units.map(toHex), v.units);
    const keys = await periodKeys(v, v.period);
    assert.equal(toHex(keys.keyId), v.key_id);
    assert.equal(toHex(keys.contentKey), v.content_key);
    assert.deepEqual(keys.slotKeys.map(toHex), v.slot_keys);
    const made = await protect(units, codec, Number(v.clear_lead), keys.contentKey, v.still ? 1 : 0, v.stream_id, v.seq);
    assert.deepEqual(made.protectedUnits.map(toHex), v.protected_units);
    assert.deepEqual(made.counters, v.counter_blocks);
    assert.deepEqual(made.lengths, v.protected_lengths.map(Number));
    const digest = await sha256(annexb(made.protectedUnits));
    assert.equal(toHex(digest), v.content_digest);
    const tagged = annexbUnits(fromHex(v.tagged_segment)).units;
    assert.equal(tagged.filter((u) => tagCodec(u)).length, 1);
    assert.deepEqual(tagged.filter((u) => !tagCodec(u)).map(toHex), v.protected_units);
    assert.equal(toHex(tagged.find((u) => tagCodec(u))), v.sei_nal);
    assert.equal(tagCodec(fromHex(v.sei_nal)), codec);
    const { tag, signed } = decodeTag(fromHex(v.tag_body));
    assert.equal(toHex(signed), v.signed_fields);
    assert.equal(tag.keyIdHex, v.key_id);
    assert.equal(tag.streamId, BigInt(v.stream_id));
    assert.equal(tag.seq, BigInt(v.seq));
    assert.equal(tag.captureMs, BigInt(v.capture_ms));
    assert.equal(tag.durationMs, Number(v.duration_ms));
    assert.equal(tag.pictures, Number(v.pictures));
    assert.equal(tag.units, units.length);
    assert.equal(tag.clearLead, Number(v.clear_lead));
    assert.equal(tag.endOfStream, v.end_of_stream);
    assert.equal(tag.still, v.still);
    assert.equal(toHex(tag.link), v.link);
    assert.deepEqual(tag.macs.map(toHex), v.macs);
    for (let s = 0; s < keys.slotKeys.length; s++) {
      const key = await subtle.importKey("raw", keys.slotKeys[s], { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const mac = new Uint8Array(await subtle.sign("HMAC", key, concatBytes([signed, digest]))).subarray(0, 16);
      assert.equal(toHex(mac), v.macs[s], `slot ${s}`);
    }
  });

  test(`segment vector ${v.name}: every slot holder accepts it and decrypts the encoder's units; a stranger does not`, async () => {
    const tagged = fromHex(v.tagged_segment);
    const plainUnits = (bytes) => annexbUnits(bytes).units.filter((u) => !tagCodec(u)).map(toHex);
    const at = (ms) => ({ clock: () => Number(ms) / 1000 });
    for (let s = 0; s < v.slot_keys.length; s++) {
      const ring = await keyringFor(v, s);
      for (const [how, verdict] of [
        ["as tagged", await new StreamVerifier(ring, at(v.capture_ms)).verifyAnnexB(tagged)],
        ["reframed", await new StreamVerifier(ring).verifyAnnexB(reframed(tagged))],
        ["read as a stream", await new StreamVerifier(ring).verifySegment(annexbSegments(tagged)[0])],
      ]) {
        assert.equal(verdict.reason, Reason.OK, `slot ${s}, ${how}: ${verdict}`);
        assert.equal(verdict.tag.owner, v.owner);
        assert.equal(verdict.tag.camera, v.camera);
        assert.deepEqual(plainUnits(await verdict.plaintext()), v.units, `slot ${s}, ${how}`);
      }
    }
    const other = await keyringFor(v, 0, await periodKeys({ ...v, pairing_secret: "00".repeat(32) }, v.period));
    const wrong = await keyringOf([{ key_id: v.key_id, owner: v.owner, camera: v.camera, epoch: v.epoch, epoch_id: await epochIdOf(v), period: v.period,
      period_s: v.period_s, slot: 0, key: "00".repeat(32), content_key: v.content_key }]);
    const verdict = await new StreamVerifier(wrong).verifyAnnexB(tagged);
    assert.equal(verdict.reason, Reason.MAC_MISMATCH);
    assert.equal(await verdict.plaintext(), null, "a refused segment is never decrypted");
    assert.equal((await new StreamVerifier(other).verifyAnnexB(tagged)).reason, Reason.NO_GRANT);
    const later = await keyringOf([{ key_id: v.key_id, owner: v.owner, camera: v.camera, epoch: v.epoch, epoch_id: await epochIdOf(v),
      period: Number(v.period) + 1,
      period_s: v.period_s, slot: 0, key: v.slot_keys[0], content_key: v.content_key }]);
    const outside = await new StreamVerifier(later).verifyAnnexB(tagged);
    assert.equal(outside.reason, Reason.NO_GRANT);
    assert.match(outside.detail, /^the key of period \d+ does not cover a capture time of \d+ ms$/);
  });
}

for (const chain of VECTORS.chains) {
  test(`chain ${chain.name}: in order ok, swapped late, repeated duplicate, across its periods`, async () => {
    const ring = await keyringOf(await Promise.all(chain.segments.map(async (v) => ({ key_id: v.key_id, owner: v.owner, camera: v.camera,
      epoch: v.epoch, epoch_id: await epochIdOf(v), period: v.period, period_s: v.period_s, slot: 0, key: v.slot_keys[0],
      content_key: v.content_key }))));
    assert.ok(new Set(chain.segments.map((v) => v.period)).size > 1, "the chain crosses a period boundary");
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
