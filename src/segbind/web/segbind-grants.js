// A display's keys, from its owner's sealed grants (docs/GRANTS.md, sections 3 to 6).
//
// The display holds an X25519 sealing key (made here, in WebCrypto, never exported) and
// the owner's account card, pinned at enrollment through an out-of-band hand-over (a
// code or QR on the screen, never the cloud). It takes a `grants` message only when it
// is sealed to it, opens with its key, carries the pinned owner's Ed25519 signature and
// a serial above the one it holds: then, and only then, its keyring is exactly the
// message's keys. X25519, HKDF-SHA256, AES-256-GCM and Ed25519 are WebCrypto's.

import { Keyring, concatBytes, constantTimeEqual, fromHex, sha256, toHex } from "./segbind-verify.js";

// Browsers and Node 19+ have WebCrypto as a global; Node 18 has it in node:crypto.
const subtle = globalThis.crypto?.subtle ?? (await import("node:crypto")).webcrypto.subtle;
const VERSION = 2n;
const KIND = "grants";
const MAX_U64 = 0xffffffffffffffffn;
const MAX_EPOCH = 0xffffffffn;
const SIGNATURE_SIZE = 64;
const text = new TextEncoder();
// PKCS #8 for an X25519 private key (RFC 8410): the prefix before its 32 bytes.
const X25519_PKCS8 = fromHex("302e020100300506032b656e04220420");

export const GrantRefusal = Object.freeze({
  MALFORMED: "malformed",
  NOT_ENROLLED: "not_enrolled",
  NOT_FOR_THIS_DISPLAY: "not_for_this_display",
  CANNOT_OPEN: "cannot_open",
  NOT_FROM_OWNER: "not_from_owner",
  STALE: "stale",
});

/** A sealed message that is refused: `reason` is one of GrantRefusal; the keyring is unchanged. */
export class GrantError extends Error {
  constructor(reason, detail) { super(`${reason}: ${detail}`); this.reason = reason; this.detail = detail; }
}

const malformed = (detail) => new GrantError(GrantRefusal.MALFORMED, detail);

// ---- strict JSON: no duplicate names, integers kept exact (BigInt) -------------------------

/**
 * JSON.parse as GRANTS.md needs it: a name that appears twice in an object is refused
 * (JSON.parse would keep the last silently), and integers become BigInts, so a 64-bit
 * serial is read exactly. Other numbers are Numbers (and then refused where an integer
 * is due).
 */
export function parseStrictJson(source) {
  let pos = 0;
  const fail = (what) => { throw new SyntaxError(`${what} at ${pos}`); };
  const ws = () => { while (pos < source.length && " \t\n\r".includes(source[pos])) pos++; };
  const value = (depth) => {
    if (depth > 64) fail("nested too deeply");
    ws();
    const c = source[pos];
    if (c === "{") {
      pos++;
      const obj = Object.create(null);
      ws();
      if (source[pos] === "}") { pos++; return obj; }
      for (;;) {
        ws();
        if (source[pos] !== "\"") fail("a name expected");
        const name = string();
        if (Object.prototype.hasOwnProperty.call(obj, name)) fail("a name appears twice");
        ws();
        if (source[pos++] !== ":") fail("':' expected");
        obj[name] = value(depth + 1);
        ws();
        const sep = source[pos++];
        if (sep === "}") return obj;
        if (sep !== ",") fail("',' or '}' expected");
      }
    }
    if (c === "[") {
      pos++;
      const arr = [];
      ws();
      if (source[pos] === "]") { pos++; return arr; }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        const sep = source[pos++];
        if (sep === "]") return arr;
        if (sep !== ",") fail("',' or ']' expected");
      }
    }
    if (c === "\"") return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (source.startsWith(word, pos)) { pos += word.length; return v; }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(source.slice(pos, pos + 400));
    if (!m) fail("a value expected");
    pos += m[0].length;
    return m[2] || m[3] ? Number(m[0]) : BigInt(m[0]);
  };
  const string = () => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(source.slice(pos));
    if (!m) fail("a string expected");
    pos += m[0].length;
    return JSON.parse(m[0]);
  };
  const result = value(0);
  ws();
  if (pos !== source.length) fail("text after the value");
  return result;
}

// ---- field checks (GRANTS.md 2, 5): errors name the field, never its value ----------------

const HEX = /^(?:[0-9a-f]{2})*$/;
const utf8 = new TextEncoder();

function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

function object(data, kind, fields) {
  if (!isObject(data)) throw malformed(`a ${kind} is a JSON object`);
  if (data.segbind !== kind) throw malformed(`not a segbind ${kind}`);
  if (!(data.version === VERSION || data.version === Number(VERSION))) throw malformed(`${kind}: unsupported version`);
  const missing = fields.filter((f) => !(f in data));
  if (missing.length) throw malformed(`${kind}: missing ${missing.join(", ")}`);
  if (Object.keys(data).some((f) => !fields.includes(f))) throw malformed(`${kind}: unknown field`);
  return data;
}

/** A segbind id (FORMAT.md 2): 1 to 32 bytes of UTF-8 without NUL; account and camera ids are MQTT levels too. */
function checkId(value, what, topic = false) {
  if (typeof value !== "string") throw malformed(`${what} must be a string`);
  if (/[\ud800-\udfff]/u.test(value)) throw malformed(`${what} must be 1 to 32 bytes of UTF-8 without NUL`);
  const raw = utf8.encode(value);
  if (raw.length < 1 || raw.length > 32 || raw.includes(0)) throw malformed(`${what} must be 1 to 32 bytes of UTF-8 without NUL`);
  if (topic && /[/+#]/.test(value)) throw malformed(`${what} must not contain '/', '+' or '#'`);
  return value;
}

function encodeId(value) {
  const raw = utf8.encode(value);
  return concatBytes([Uint8Array.of(raw.length), raw]);
}

function unhex(value, what, size = null) {
  if (typeof value !== "string" || !HEX.test(value)) throw malformed(`${what} must be lowercase hex`);
  const raw = fromHex(value);
  if (size !== null && raw.length !== size) throw malformed(`${what} must be ${size} bytes`);
  return raw;
}

function uint(value, what, low, high) {
  if (typeof value !== "bigint" || value < low || value > high) throw malformed(`${what} must be an integer from ${low} to ${high}`);
  return value;
}

function entry(data, fields, what) {
  if (!isObject(data) || Object.keys(data).sort().join() !== [...fields].sort().join()) {
    throw malformed(`${what} must be an object with exactly ${fields.join(", ")}`);
  }
  return data;
}

/** The grant set in a payload (GRANTS.md 5), or GrantError(malformed). */
function grantSet(payload) {
  let data;
  try {
    data = parseStrictJson(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw malformed("grants: not valid UTF-8 JSON");
  }
  const obj = object(data, KIND, ["segbind", "version", "issuer", "display", "display_pub", "serial", "issued_ms", "keys", "revoked"]);
  if (!Array.isArray(obj.keys) || !Array.isArray(obj.revoked)) throw malformed("keys and revoked must be lists");
  const keys = obj.keys.map((item) => {
    const e = entry(item, ["owner", "camera", "epoch", "slot", "key"], "a key");
    return { owner: e.owner, camera: e.camera, epoch: e.epoch, slot: e.slot, key: unhex(e.key, "a key", 32) };
  });
  const revoked = obj.revoked.map((item) => {
    const e = entry(item, ["owner", "camera", "epoch"], "a revoked entry");
    return [e.owner, e.camera, e.epoch];
  });
  const grants = {
    issuer: obj.issuer, display: obj.display, displayPub: unhex(obj.display_pub, "display_pub", 32),
    serial: obj.serial, issuedMs: obj.issued_ms, keys, revoked,
  };
  checkId(grants.issuer, "issuer", true);
  checkId(grants.display, "display");
  uint(grants.serial, "serial", 1n, MAX_U64);
  uint(grants.issuedMs, "issued_ms", 0n, MAX_U64);
  const seen = new Set();
  for (const b of keys) {
    checkId(b.owner, "a key's owner", true);
    checkId(b.camera, "a key's camera", true);
    uint(b.epoch, "a key's epoch", 1n, MAX_EPOCH);
    uint(b.slot, "a key's slot", 0n, 7n);
    const id = Keyring.id(b.owner, b.camera, b.epoch);
    if (seen.has(id)) throw malformed(`epoch ${b.epoch} of a camera is granted twice`);
    seen.add(id);
  }
  const gone = new Set();
  for (const [owner, camera, epoch] of revoked) {
    checkId(owner, "a revoked owner", true);
    checkId(camera, "a revoked camera", true);
    uint(epoch, "a revoked epoch", 1n, MAX_EPOCH);
    const id = Keyring.id(owner, camera, epoch);
    if (seen.has(id)) throw malformed(`epoch ${epoch} of a camera is both granted and revoked`);
    if (gone.has(id)) throw malformed(`epoch ${epoch} of a camera is revoked twice`);
    gone.add(id);
  }
  return grants;
}

// ---- cards and the enrollment code (GRANTS.md 2, 3) ----------------------------------------

/** The owner's account card, checked as a display pins it: {account, signingPub, sealingPub}. */
export async function accountCard(data) {
  const obj = object(data, "account-card", ["segbind", "version", "account", "signing_pub", "sealing_pub"]);
  const card = {
    account: checkId(obj.account, "account", true),
    signingPub: unhex(obj.signing_pub, "signing_pub", 32),
    sealingPub: unhex(obj.sealing_pub, "sealing_pub", 32),
  };
  try {
    await subtle.importKey("raw", card.signingPub, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw malformed("signing_pub is not an Ed25519 public key");
  }
  return card;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** The eight characters both sides show at enrollment: a card swapped by the cloud changes them. */
export async function enrollmentCode(displaySealingPub, accountSigningPub) {
  const digest = await sha256(concatBytes([text.encode("segbind/v2 enroll\0"), displaySealingPub, accountSigningPub]));
  let bits = 0n;
  for (const b of digest.subarray(0, 5)) bits = (bits << 8n) | BigInt(b);
  let code = "";
  for (let i = 7; i >= 0; i--) code += BASE32[Number((bits >> BigInt(5 * i)) & 31n)];
  return code;
}

// ---- the display ---------------------------------------------------------------------------

/**
 * A display's identity: its id, its X25519 sealing key pair (WebCrypto keys: the private
 * one is not extractable when made here) and, once enrolled, its pinned owner's card.
 */
export class DisplayIdentity {
  constructor(display, privateKey, sealingPub, owner = null) {
    this.display = checkId(display, "display");
    this.privateKey = privateKey;
    this.sealingPub = sealingPub;
    this.owner = owner;
  }

  /** A fresh key pair, made in WebCrypto; the private key never leaves it. */
  static async generate(display) {
    const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    const pub = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    return new DisplayIdentity(display, pair.privateKey, pub);
  }

  /** From a display file's secret key bytes (GRANTS.md 2): for displays made elsewhere, and the tests. */
  static async fromSecret(display, secret) {
    const pkcs8 = concatBytes([X25519_PKCS8, secret]);
    const extractable = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
    const { x } = await subtle.exportKey("jwk", extractable);
    const pub = Uint8Array.from(atob(x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const key = await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
    return new DisplayIdentity(display, key, pub);
  }

  /** The display card the owner's app takes out of band. */
  card() {
    return { segbind: "display-card", version: 2, display: this.display, sealing_pub: toHex(this.sealingPub) };
  }

  /** Pin the owner for good (until reset); returns the enrollment code to compare. */
  async pin(cardJson) {
    const card = await accountCard(cardJson);
    if (this.owner && (this.owner.account !== card.account || !constantTimeEqual(this.owner.signingPub, card.signingPub))) {
      throw new Error(`display ${this.display} is enrolled to another account: reset it first`);
    }
    this.owner = card;
    return enrollmentCode(this.sealingPub, card.signingPub);
  }
}

async function hkdf(ikm, salt, info) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, 256));
}

/**
 * The payload of a sealed grants message, after checks 1 to 4 of GRANTS.md 6, in order;
 * else GrantError.
 */
async function openSealed(sealed, identity) {
  const owner = identity.owner;
  // 1. it parses: version 2, kind grants
  const env = object(sealed, "sealed", ["segbind", "version", "kind", "to", "to_pub", "from", "eph", "ciphertext"]);
  if (env.kind !== KIND) throw malformed(`sealed: a ${KIND} message is expected here`);
  const to = checkId(env.to, "to");
  const toPub = unhex(env.to_pub, "to_pub", 32);
  const issuer = checkId(env.from, "from");
  const ephPub = unhex(env.eph, "eph", 32);
  const ciphertext = unhex(env.ciphertext, "ciphertext");
  // 2. addressed to this display
  if (to !== identity.display || !constantTimeEqual(toPub, identity.sealingPub)) {
    throw new GrantError(GrantRefusal.NOT_FOR_THIS_DISPLAY, "sealed to another recipient");
  }
  // 3. it opens with this display's key
  let plaintext;
  try {
    const eph = await subtle.importKey("raw", ephPub, { name: "X25519" }, false, []);
    const shared = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: eph }, identity.privateKey, 256));
    if (shared.every((b) => b === 0)) throw new Error("a low-order ephemeral key");
    const key = await hkdf(shared, concatBytes([ephPub, identity.sealingPub]), text.encode(`segbind/v2 seal\0${KIND}`));
    const aes = await subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
    const aad = concatBytes([text.encode(`segbind/v2 sealed\0${KIND}\0`), encodeId(identity.display), encodeId(issuer)]);
    plaintext = new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(12), additionalData: aad, tagLength: 128 }, aes, ciphertext));
  } catch {
    throw new GrantError(GrantRefusal.CANNOT_OPEN, "the message does not open with this display's key");
  }
  const size = ((plaintext[0] << 24) >>> 0) + (plaintext[1] << 16) + (plaintext[2] << 8) + plaintext[3];
  if (plaintext.length < 4 + SIGNATURE_SIZE || plaintext.length !== 4 + size + SIGNATURE_SIZE) {
    throw new GrantError(GrantRefusal.CANNOT_OPEN, "the opened message is not length, payload, signature");
  }
  const payload = plaintext.subarray(4, 4 + size);
  const signature = plaintext.subarray(4 + size);
  // 4. signed by the pinned owner
  const signingKey = await subtle.importKey("raw", owner.signingPub, { name: "Ed25519" }, false, ["verify"]);
  const signed = concatBytes([text.encode(`segbind/v2 ${KIND}\0`), payload]);
  if (!(await subtle.verify({ name: "Ed25519" }, signingKey, signature, signed))) {
    throw new GrantError(GrantRefusal.NOT_FROM_OWNER, `the signature is not ${owner.account}'s`);
  }
  if (issuer !== owner.account) throw new GrantError(GrantRefusal.NOT_FROM_OWNER, "the message says it is from another account");
  return payload;
}

/**
 * What a display holds: the keyring of the last grants it accepted, their serial, and the
 * epochs revoked here (never granted again). Keep `serial` and `revoked` across restarts
 * (state() / restore) for replay protection to hold.
 */
export class DisplayGrants {
  constructor(identity, { serial = 0n, revoked = [] } = {}) {
    this.identity = identity;
    this.serial = BigInt(serial);
    this.revoked = new Set(revoked.map(([o, c, e]) => Keyring.id(o, c, e)));
    this._revoked = revoked.map(([o, c, e]) => [o, c, Number(e)]);
    this.keyring = new Keyring();
  }

  state() { return { serial: this.serial.toString(), revoked: this._revoked }; }

  /** The new keyring of a sealed grants message; GrantError (and the old keyring kept) otherwise. */
  async accept(sealed) {
    const identity = this.identity;
    if (!identity.owner) throw new GrantError(GrantRefusal.NOT_ENROLLED, `display ${identity.display} has no owner: enroll it first`);
    const payload = await openSealed(sealed, identity);
    const grants = grantSet(payload);
    if (grants.issuer !== identity.owner.account) throw new GrantError(GrantRefusal.NOT_FROM_OWNER, "the grants name another issuer than the owner");
    if (grants.display !== identity.display || !constantTimeEqual(grants.displayPub, identity.sealingPub)) {
      throw new GrantError(GrantRefusal.NOT_FOR_THIS_DISPLAY, "the grants are for another display");
    }
    if (grants.serial <= this.serial) throw new GrantError(GrantRefusal.STALE, `serial ${grants.serial} is not above ${this.serial}`);
    const revoked = new Map(this._revoked.map((r) => [Keyring.id(...r), r]));
    for (const [o, c, e] of grants.revoked) revoked.set(Keyring.id(o, c, e), [o, c, Number(e)]);
    for (const b of grants.keys) {
      if (revoked.has(Keyring.id(b.owner, b.camera, b.epoch))) {
        throw malformed(`epoch ${b.epoch} of camera ${b.camera} was revoked here: never granted again`);
      }
    }
    const keyring = new Keyring();
    for (const r of revoked.values()) keyring.markRevoked(...r);
    for (const b of grants.keys) {
      await keyring.grant({ owner: b.owner, camera: b.camera, epoch: Number(b.epoch), slot: Number(b.slot), key: b.key });
    }
    this.keyring = keyring;
    this.serial = grants.serial;
    this._revoked = [...revoked.values()];
    this.revoked = new Set(revoked.keys());
    return keyring;
  }
}
