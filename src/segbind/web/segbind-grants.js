// A display's keys, from its owner's sealed grants (docs/GRANTS.md format 3, sections 3 to 8).
//
// The display holds an X25519 sealing key (made here, in WebCrypto, never exported) and
// the owner's account card, pinned at enrollment through an out-of-band hand-over (a
// code or QR on the screen, never the cloud). It takes a `grants` message only when it
// is sealed to it, opens with its key, carries the pinned owner's Ed25519 signature and
// a serial above the one it holds: then, and only then, its keyring is exactly the
// message's period keys, added to those it holds. X25519, HKDF-SHA256, AES-256-GCM and
// Ed25519 are WebCrypto's; the keys it takes are imported non-extractable.

import { concatBytes, constantTimeEqual, fromHex, sha256, toHex } from "./segbind-verify.js";

// Browsers and Node 19+ have WebCrypto as a global; Node 18 has it in node:crypto.
const subtle = globalThis.crypto?.subtle ?? (await import("node:crypto")).webcrypto.subtle;
const VERSION = 3n;
const KIND = "grants";
const MAX_U64 = 0xffffffffffffffffn;
const MAX_EPOCH = 0x7fffffffn;  // epochs count from 1 in each pairing, below 2^31 (FORMAT.md 8)
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

/**
 * `data` as a segbind object of `kind`, version 3, with exactly these fields. `strict`: it came
 * from parseStrictJson (a sealed message, a payload), where the version must be the integer 3,
 * as in Python (3.0 and 3e0 are not); a card handed over as a JS object may say 3 as a Number.
 */
function object(data, kind, fields, strict = false) {
  if (!isObject(data)) throw malformed(`a ${kind} is a JSON object`);
  if (data.segbind !== kind) throw malformed(`not a segbind ${kind}`);
  if (!(data.version === VERSION || (!strict && data.version === Number(VERSION)))) throw malformed(`${kind}: unsupported version`);
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

const MAX_MS = (1n << 53n) - 1n;
const MAX_KEYS = 4096;
const MAX_ENTRIES = 1024;
const KEY_FIELDS = ["key_id", "owner", "camera", "epoch", "epoch_id", "period", "period_s", "slot", "key", "content_key"];
const EPOCH_ID_SIZE = 16;

function bool(value, what) {
  if (typeof value !== "boolean") throw malformed(`${what} must be true or false`);
  return value;
}

function parseList(value, what, limit) {
  if (!Array.isArray(value)) throw malformed(`${what} must be a list`);
  if (value.length > limit) throw malformed(`at most ${limit} ${what} in one message`);
  return value;
}

/** One period grant (GRANTS.md 5), strictly: exactly its fields, each in range; key bytes raw. */
function periodKey(item) {
  const e = entry(item, KEY_FIELDS, "a key");
  const periodS = uint(e.period_s, "a key's period_s", 60n, 86400n);
  return {
    keyId: unhex(e.key_id, "a key id", 16),
    owner: checkId(e.owner, "a key's owner", true),
    camera: checkId(e.camera, "a key's camera", true),
    epoch: uint(e.epoch, "a key's epoch", 1n, MAX_EPOCH),
    epochId: toHex(unhex(e.epoch_id, "an epoch id", EPOCH_ID_SIZE)),
    period: uint(e.period, "a key's period", 0n, MAX_MS / (periodS * 1000n)),
    periodS,
    slot: uint(e.slot, "a key's slot", 0n, 7n),
    key: unhex(e.key, "a slot key", 32),
    contentKey: unhex(e.content_key, "a content key", 16),
  };
}

/** How revoked entries and a holder's revoked set name one epoch of one pairing: (owner, epoch id). */
function epochName(owner, epochIdHex) { return JSON.stringify([owner, epochIdHex]); }

/** What one epoch id stands for: every period of it agrees (camera, epoch, period length). */
function epochFacts(b) { return JSON.stringify([b.camera, String(b.epoch), String(b.periodS)]); }

function checkKeys(keys) {
  const ids = new Set();
  const periods = new Set();
  const facts = new Map();
  for (const b of keys) {
    const id = toHex(b.keyId);
    if (ids.has(id)) throw malformed("a key id is granted twice");
    ids.add(id);
    const name = epochName(b.owner, b.epochId);
    const where = JSON.stringify([name, String(b.period)]);
    if (periods.has(where)) throw malformed(`period ${b.period} of epoch ${b.epoch} of a camera is granted twice`);
    periods.add(where);
    if (facts.has(name) && facts.get(name) !== epochFacts(b)) throw malformed(`epoch id ${b.epochId} names two cameras, epochs or period lengths`);
    facts.set(name, epochFacts(b));
  }
}

function parseRevoked(value, keys) {
  const granted = new Set(keys.map((b) => epochName(b.owner, b.epochId)));
  const gone = new Set();
  return parseList(value, "revoked entries", MAX_ENTRIES).map((item) => {
    const e = entry(item, ["owner", "epoch_id"], "a revoked entry");
    const r = [checkId(e.owner, "a revoked owner", true), toHex(unhex(e.epoch_id, "a revoked epoch id", EPOCH_ID_SIZE))];
    const name = epochName(...r);
    if (granted.has(name)) throw malformed(`epoch id ${r[1]} is both granted and revoked`);
    if (gone.has(name)) throw malformed(`epoch id ${r[1]} is revoked twice`);
    gone.add(name);
    return r;
  });
}

function parseCameras(value, issuer) {
  const seen = new Set();
  return parseList(value, "camera entries", MAX_ENTRIES).map((item) => {
    const e = entry(item, ["owner", "camera", "epoch", "since_ms", "pending"], "a camera entry");
    const c = {
      owner: checkId(e.owner, "a camera entry's owner", true), camera: checkId(e.camera, "a camera entry's camera", true),
      epoch: uint(e.epoch, "a camera entry's epoch", 1n, MAX_EPOCH), sinceMs: uint(e.since_ms, "a camera entry's since_ms", 0n, MAX_MS),
      pending: bool(e.pending, "a camera entry's pending"),
    };
    if (c.owner !== issuer) throw malformed("a camera entry names only the issuer's own cameras");
    const id = JSON.stringify([c.owner, c.camera]);
    if (seen.has(id)) throw malformed("a camera has two entries");
    seen.add(id);
    return c;
  });
}

/** The grant set in a payload (GRANTS.md 5), or GrantError(malformed). */
function grantSet(payload) {
  let data;
  try {
    data = parseStrictJson(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw malformed("grants: not valid UTF-8 JSON");
  }
  const obj = object(data, KIND, ["segbind", "version", "issuer", "display", "display_pub", "serial", "issued_ms", "keys",
    "revoked", "cameras", "alarm_after_ms"], true);
  const displayPub = unhex(obj.display_pub, "display_pub", 32);
  const keys = parseList(obj.keys, "keys", MAX_KEYS).map(periodKey);
  const issuer = checkId(obj.issuer, "issuer", true);
  const grants = {
    issuer, display: checkId(obj.display, "display"), displayPub,
    serial: uint(obj.serial, "serial", 1n, MAX_U64), issuedMs: uint(obj.issued_ms, "issued_ms", 0n, MAX_MS),
    alarmAfterMs: uint(obj.alarm_after_ms, "alarm_after_ms", 0n, MAX_MS), keys,
  };
  checkKeys(keys);
  grants.revoked = parseRevoked(obj.revoked, keys);
  grants.cameras = parseCameras(obj.cameras, issuer);
  return grants;
}

// ---- the keys a display holds (GRANTS.md 7, 8) ---------------------------------------------

/**
 * Period keys by key id, as the verifier looks them up: each with its owner, camera, epoch,
 * epoch id, period, slot and the capture times it covers, its slot key as a WebCrypto HMAC
 * key and its content key as an AES-CTR key, neither extractable. (A tag names its keys by
 * key id alone: GRANTS.md 7.) What it holds is consistent, or `grant` refuses: a key id names
 * one grant, an epoch id one camera, epoch and period length, and a revoked epoch (by
 * [owner, epoch id]: an epoch of one pairing) is held no more.
 */
/** What tells two grants of one key id apart without keeping their keys as bytes: a digest of the whole binding. */
export async function grantFingerprint(b) {
  return toHex(await sha256(concatBytes([text.encode(JSON.stringify([b.owner, b.camera, String(b.epoch), b.epochId,
    String(b.period), String(b.periodS), String(b.slot)])), b.key, b.contentKey])));
}

export class PeriodKeyring {
  constructor() {
    this._keys = new Map();      // key id hex -> binding
    this._epochs = new Map();    // epochName -> {facts, count}
    this._revoked = new Map();   // epochName -> [owner, epoch id hex]
  }

  get size() { return this._keys.size; }

  /** Why `b` cannot be held with what is held (a line, no key bytes), or null. */
  conflict(b) {
    const name = epochName(b.owner, b.epochId);
    if (this._revoked.has(name)) return `epoch ${b.epoch} of camera ${JSON.stringify(b.camera)} (epoch id ${b.epochId}) was revoked here: never held again`;
    const held = this._keys.get(typeof b.keyId === "string" ? b.keyId : toHex(b.keyId));
    if (held && held.fingerprint !== b.fingerprint) return `key id ${held.keyId} is held here for another grant`;
    const facts = this._epochs.get(name);
    if (facts && facts.facts !== epochFacts(b)) return `epoch id ${b.epochId} is held here for another camera, epoch or period length`;
    return null;
  }

  /** Hold a period grant parsed from a message (its keys imported here, not extractable); an Error when it conflicts. */
  async grant(b) {
    if (b.fingerprint === undefined) b.fingerprint = await grantFingerprint(b);
    const why = this.conflict(b);
    if (why) throw new Error(why);
    const id = toHex(b.keyId);
    if (this._keys.has(id)) return;
    const hmac = await subtle.importKey("raw", b.key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const content = await subtle.importKey("raw", b.contentKey, "AES-CTR", false, ["decrypt"]);
    const size = b.periodS * 1000n;
    this._hold({
      keyId: id, owner: b.owner, camera: b.camera, epoch: Number(b.epoch), epochId: b.epochId, period: b.period,
      periodS: Number(b.periodS), slot: Number(b.slot), startMs: b.period * size, endMs: (b.period + 1n) * size,
      fingerprint: b.fingerprint, hmac, content,
    });
  }

  /** Hold an entry of another PeriodKeyring as it is (its keys already imported). */
  _hold(entry) {
    this._keys.set(entry.keyId, entry);
    const name = epochName(entry.owner, entry.epochId);
    const facts = this._epochs.get(name);
    this._epochs.set(name, { facts: epochFacts(entry), count: facts ? facts.count + 1 : 1 });
  }

  _drop(keyIdHex) {
    const entry = this._keys.get(keyIdHex);
    this._keys.delete(keyIdHex);
    const name = epochName(entry.owner, entry.epochId);
    const facts = this._epochs.get(name);
    if (facts.count > 1) facts.count -= 1; else this._epochs.delete(name);
  }

  isRevoked(owner, epochIdHex) { return this._revoked.has(epochName(owner, epochIdHex)); }

  /** The epoch (owner, epoch id hex) is revoked: its periods dropped, none held here again. */
  markRevoked(owner, epochIdHex) {
    const name = epochName(owner, epochIdHex);
    for (const [k, b] of [...this._keys]) if (epochName(b.owner, b.epochId) === name) this._drop(k);
    this._revoked.set(name, [owner, epochIdHex]);
  }

  /** Forget the periods that ended at or before `endMs`. */
  dropBefore(endMs) {
    for (const [k, b] of [...this._keys]) if (b.endMs <= endMs) this._drop(k);
  }

  /** The binding a key id names, or null: a stranger's key id and one never granted look alike. */
  binding(keyIdHex) { return this._keys.get(keyIdHex) ?? null; }

  /** Every period held: [{keyId, owner, camera, epoch, epochId, period, slot}] (no keys). */
  grants() {
    return [...this._keys.values()].map(({ keyId, owner, camera, epoch, epochId, period, slot }) => ({ keyId, owner, camera, epoch, epochId, period, slot }));
  }

  /** The streams held, each once: [[owner, camera], ...]. A stream is (owner, camera), never a camera id alone. */
  streams() {
    const seen = new Map();
    for (const b of this._keys.values()) seen.set(JSON.stringify([b.owner, b.camera]), [b.owner, b.camera]);
    return [...seen.values()];
  }

  /** The epochs revoked here: [[owner, epoch id hex], ...]. */
  revoked() { return [...this._revoked.values()]; }

  _entries() { return [...this._keys.values()]; }
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
  const digest = await sha256(concatBytes([text.encode("segbind/v3 enroll\0"), displaySealingPub, accountSigningPub]));
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
    return { segbind: "display-card", version: 3, display: this.display, sealing_pub: toHex(this.sealingPub) };
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
 * The payload of a sealed grants message, after checks 1 to 4 of GRANTS.md 7, in order;
 * else GrantError.
 */
async function openSealed(sealed, identity) {
  const owner = identity.owner;
  // 1. it parses: version 3, kind grants
  const env = object(sealed, "sealed", ["segbind", "version", "kind", "to", "to_pub", "from", "eph", "ciphertext"], true);
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
    const key = await hkdf(shared, concatBytes([ephPub, identity.sealingPub]), text.encode(`segbind/v3 seal\0${KIND}`));
    const aes = await subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
    const aad = concatBytes([text.encode(`segbind/v3 sealed\0${KIND}\0`), encodeId(identity.display), encodeId(issuer)]);
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
  const signed = concatBytes([text.encode(`segbind/v3 ${KIND}\0`), payload]);
  if (!(await subtle.verify({ name: "Ed25519" }, signingKey, signature, signed))) {
    throw new GrantError(GrantRefusal.NOT_FROM_OWNER, `the signature is not ${owner.account}'s`);
  }
  if (issuer !== owner.account) throw new GrantError(GrantRefusal.NOT_FROM_OWNER, "the message says it is from another account");
  return payload;
}

/**
 * What a display holds (GRANTS.md 6, 7, 8): the period keys it was granted (each message adds
 * its periods; a revoked epoch drops all of its own; periods that ended `keepMs` before a
 * message was issued are dropped), the serial of the last message, the epochs revoked here
 * (by [owner, epoch id]: never granted again), and what the owner says of its cameras
 * (`cameras`: newest epoch, since when, pending or not; `alarmAfterMs`). Keep `state()`
 * across restarts for replay protection and revocation to hold (the keys themselves come
 * again with the next renewal).
 */
export class DisplayGrants {
  constructor(identity, { serial = 0n, revoked = [], keepMs = 24n * 3600n * 1000n } = {}) {
    this.identity = identity;
    this.serial = BigInt(serial);
    this.keepMs = BigInt(keepMs);
    this.keyring = new PeriodKeyring();
    for (const r of revoked) {
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== "string" || typeof r[1] !== "string"
          || !HEX.test(r[1]) || r[1].length !== 2 * EPOCH_ID_SIZE) {
        throw new Error("a kept revoked entry is [owner, epoch id]");  // a store of another format: refuse it, never drop it
      }
      this.keyring.markRevoked(r[0], r[1]);
    }
    this.cameras = [];
    this.alarmAfterMs = 60000n;
  }

  state() { return { serial: this.serial.toString(), revoked: this.keyring.revoked() }; }

  /** The keyring after a sealed grants message (as parseStrictJson reads it); GrantError (and nothing changed) otherwise. */
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
    // What is kept after the message's drops (revoked epochs, periods ended keep before it was
    // issued), then the message's keys, each checked against it (GRANTS.md 6).
    const keyring = new PeriodKeyring();
    for (const r of this.keyring.revoked()) keyring.markRevoked(...r);
    for (const r of grants.revoked) keyring.markRevoked(...r);
    const oldest = grants.issuedMs - this.keepMs;
    for (const b of this.keyring._entries()) if (!keyring.isRevoked(b.owner, b.epochId) && b.endMs > oldest) keyring._hold(b);
    for (const b of grants.keys) {
      b.fingerprint = await grantFingerprint(b);
      const why = keyring.conflict(b);
      if (why) throw malformed(why);
      await keyring.grant(b);
    }
    keyring.dropBefore(oldest);
    this.keyring = keyring;
    this.serial = grants.serial;
    this.cameras = grants.cameras;
    this.alarmAfterMs = grants.alarmAfterMs;
    return keyring;
  }

  /**
   * The alarms the owner's grants raise at `nowMs` (the display's clock): each rotation still
   * pending `alarmAfterMs` after it was issued (GRANTS.md 8).
   */
  rotationAlarms(nowMs) {
    const now = BigInt(nowMs);
    return this.cameras.filter((c) => c.pending && now - c.sinceMs >= this.alarmAfterMs)
      .map((c) => ({ owner: c.owner, camera: c.camera, epoch: Number(c.epoch), sinceMs: Number(c.sinceMs) }));
  }

  /** Whether a segment of (owner, camera) tagged under `epoch` and captured at `captureMs` is to be flagged: its owner superseded that epoch. */
  superseded(owner, camera, epoch, captureMs, graceMs = 10000n) {
    const c = this.cameras.find((x) => x.owner === owner && x.camera === camera);
    return Boolean(c && BigInt(epoch) < c.epoch && BigInt(captureMs) >= c.sinceMs + BigInt(graceMs));
  }
}
