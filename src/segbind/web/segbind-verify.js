// segbind verifier for browsers and Node, written from docs/FORMAT.md (format version 2).
//
// An ES module with no dependencies and no build step: SHA-256 and HMAC come from
// WebCrypto (globalThis.crypto.subtle: Node 20, chromium). It judges segments in
// every framing a web display meets:
//
//   - Annex-B H.264 and H.265, one segment (verifyAnnexB) or a stream cut back into
//     segments (annexbSegments);
//   - fragmented MP4 (CMAF, what hls.js hands to Media Source Extensions): an init
//     segment (avcC / hvcC) and moof/mdat fragments whose samples are length-prefixed
//     NAL units (Mp4Reader), parameter sets put back where a packager moved them;
//
// and keeps the stream rules of FORMAT.md 7.2 per camera (StreamVerifier). Keys come
// only from a Keyring (filled from the owner's sealed grants: segbind-grants.js).
// Nothing here throws on bad input: every entry point that takes bytes gives a
// Verdict whose reason is one of Reason.

// Browsers and Node 19+ have WebCrypto as a global; Node 18 has it in node:crypto.
const subtle = globalThis.crypto?.subtle ?? (await import("node:crypto")).webcrypto.subtle;

export const Reason = Object.freeze({
  OK: "ok",
  GAP: "gap",                      // accepted; segments before it were lost
  LATE: "late",                    // accepted; an intact segment that arrived after a newer one
  DUPLICATE: "duplicate",          // a copy of a segment already accepted (not shown twice)
  NO_TAG: "no_tag",
  NO_GRANT: "no_grant",
  MAC_MISMATCH: "mac_mismatch",
  CONTENT_MISMATCH: "content_mismatch",
  MALFORMED_TAG: "malformed_tag",
  UNKNOWN_VERSION: "unknown_version",
  FRAMING: "framing",
  TIMING: "timing",
  REPLAY: "replay",
  CHAIN_BREAK: "chain_break",
  TIME_WINDOW: "time_window",
  MISSING: "missing",              // recording mode: segments before this one are missing
  INCOMPLETE: "incomplete",        // recording mode: the recording does not end cleanly
});
const ACCEPTED = new Set([Reason.OK, Reason.GAP, Reason.LATE]);

export const CODEC_H264 = 1;
export const CODEC_H265 = 2;
export const CODEC_NAMES = { 1: "H.264", 2: "H.265" };
export const SEGBIND_UUID = fromHex("b531d1f007fb8425d19479ee862d845d");
export const REPLAY_WINDOW = 128n;   // sequence numbers remembered per camera (libsrtp keeps 128 too)
const CONTINUITY_MS = 1000;          // recording mode: how far capture may be from the previous end
const START_CODE = Uint8Array.of(0, 0, 0, 1);
const GENESIS_LINK = new Uint8Array(8).fill(0xff);
const VERSION = 2;
const ALG = 1;
const MAC_SIZE = 16;
const LINK_SIZE = 8;
const HINT_SIZE = 4;
const MAX_SLOTS = 8;
const MAX_ID_BYTES = 32;
const MAX_U32 = 0xffffffffn;
const MAX_U64 = 0xffffffffffffffffn;
// The longest tag body: version, alg, codec, two ids, the varints at their longest,
// flags, link, hint, slot count, eight MACs. A longer payload is not a segbind tag.
const MAX_BODY = 3 + 2 * (1 + MAX_ID_BYTES) + 50 + 1 + LINK_SIZE + HINT_SIZE + 1 + MAX_SLOTS * MAC_SIZE;
const SEI_HEADER = { 1: Uint8Array.of(0x06), 2: Uint8Array.of(0x4e, 0x01) };
// Bounds on one segment read from a stream: beyond them it is refused and not kept.
const MAX_SEGMENT_BYTES = 256 * 1024 * 1024;
const MAX_SEGMENT_UNITS = 1 << 17;

/** A live display's window: captured in the last 30 s, or up to 5 s ahead of a slow clock. */
export const LIVE = Object.freeze({ maxAgeS: 30, maxFutureS: 5 });

// ---- bytes ------------------------------------------------------------------------------------

export function fromHex(text) {
  if (typeof text !== "string" || text.length % 2 || /[^0-9a-fA-F]/.test(text)) {
    throw new TypeError("not a hex string");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

export function toHex(bytes) {
  let s = "";
  for (const b of bytes) s += (b < 16 ? "0" : "") + b.toString(16);
  return s;
}

export function concatBytes(parts) {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equality of secret-dependent bytes (MACs, links, digests) in time independent of the content. */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

// ---- NAL units --------------------------------------------------------------------------------

/** Offsets of every 00 00 01 in buf (non-overlapping, left to right). */
function startCodes(buf) {
  const found = [];
  const n = buf.length;
  let i = 0;
  while (i + 2 < n) {
    const third = buf[i + 2];
    if (third > 1) { i += 3; continue; }
    if (third === 1 && buf[i] === 0 && buf[i + 1] === 0) { found.push(i); i += 3; continue; }
    i += 1;
  }
  return found;
}

/**
 * The NAL units of Annex-B bytes (views, nothing copied): between start codes (3 or 4
 * bytes), trailing zero bytes dropped, empty units skipped. `leading` is true when bytes
 * other than zeros come before the first start code (they are no NAL unit).
 */
export function annexbUnits(buf) {
  const codes = startCodes(buf);
  const head = codes.length ? codes[0] : buf.length;
  let leading = false;
  for (let i = 0; i < head; i++) if (buf[i] !== 0) { leading = true; break; }
  const units = [];
  for (let k = 0; k < codes.length; k++) {
    const s = codes[k] + 3;
    let e = k + 1 < codes.length ? codes[k + 1] : buf.length;
    while (e > s && buf[e - 1] === 0) e--;
    if (e > s) units.push(buf.subarray(s, e));
  }
  return { units, leading };
}

/** The RBSP of escaped bytes: every 03 that follows two zero bytes removed. */
export function unescapeRbsp(ebsp) {
  const out = new Uint8Array(ebsp.length);
  let n = 0;
  let zeros = 0;
  for (const b of ebsp) {
    if (zeros >= 2 && b === 3) { zeros = 0; continue; }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

/** What the codec's NAL header says a unit is: the kinds the regrouping rule needs. */
function nalKind(unit, codec) {
  return codec === CODEC_H265 ? (unit[0] >> 1) & 0x3f : unit[0] & 0x1f;
}
const KINDS = {
  // openers: the non-picture units that, after a picture, begin the next access unit
  // (H.264 7.4.1.2.3, H.265 7.4.2.4.4; segbind/framing.py).
  [CODEC_H264]: { vcl: (k) => k >= 1 && k <= 5, aud: 9, sets: [7, 8], openers: [6, 7, 8, 9, 14, 15, 16, 17, 18] },
  [CODEC_H265]: { vcl: (k) => k <= 31, aud: 35, sets: [32, 33, 34],
    openers: [32, 33, 34, 35, 39, 41, 42, 43, 44, 48, 49, 50, 51, 52, 53, 54, 55] },
};

/**
 * The codec of a segbind tag NAL unit (CODEC_H264, CODEC_H265), or 0 when it is none.
 * FORMAT.md 3: the header is exactly the codec's, the first SEI message is type 5 and
 * the 16 bytes after its ff-coded size are segbind's UUID (no emulation prevention can
 * sit among those bytes: none of them holds two zeros in a row).
 */
export function tagCodec(unit) {
  const n = unit.length;
  if (n < 19) return 0;
  let codec;
  let pos;
  if (unit[0] === 0x06) { codec = CODEC_H264; pos = 1; }
  else if (unit[0] === 0x4e && unit[1] === 0x01) { codec = CODEC_H265; pos = 2; }
  else return 0;
  if (unit[pos] !== 5) return 0;
  pos += 1;
  while (pos < n && unit[pos] === 0xff) pos++;
  pos += 1;
  if (pos + 16 > n) return 0;
  for (let i = 0; i < 16; i++) if (unit[pos + i] !== SEGBIND_UUID[i]) return 0;
  return codec;
}

class TagError extends Error {
  constructor(reason, message) { super(message); this.reason = reason; }
}

function readFF(rbsp, pos, end) {
  let value = 0;
  for (;;) {
    if (pos >= end) throw new TagError(Reason.MALFORMED_TAG, "SEI message header runs past the end of the NAL unit");
    const b = rbsp[pos++];
    value += b;
    if (b !== 0xff) return [value, pos];
  }
}

/** The tag body of a tag NAL unit: the SEI must hold exactly one message, segbind's. */
function tagBody(unit, codec) {
  if (!codec) throw new TagError(Reason.MALFORMED_TAG, "not a segbind SEI NAL unit");
  const rbsp = unescapeRbsp(unit.subarray(SEI_HEADER[codec].length));
  if (!rbsp.length || rbsp[rbsp.length - 1] !== 0x80) {
    throw new TagError(Reason.MALFORMED_TAG, "SEI NAL unit does not end with rbsp_trailing_bits");
  }
  const end = rbsp.length - 1;
  const messages = [];
  let pos = 0;
  while (pos < end) {
    let kind, size;
    [kind, pos] = readFF(rbsp, pos, end);
    [size, pos] = readFF(rbsp, pos, end);
    if (pos + size > end) throw new TagError(Reason.MALFORMED_TAG, "SEI payload runs past the end of the NAL unit");
    messages.push([kind, rbsp.subarray(pos, pos + size)]);
    pos += size;
  }
  if (messages.length !== 1) throw new TagError(Reason.MALFORMED_TAG, "a segbind SEI must hold exactly one message");
  const [kind, payload] = messages[0];
  if (kind !== 5 || !sameBytes(payload.subarray(0, 16), SEGBIND_UUID)) {
    throw new TagError(Reason.MALFORMED_TAG, "SEI message is not segbind user data");
  }
  if (payload.length > 16 + MAX_BODY) throw new TagError(Reason.MALFORMED_TAG, "segbind SEI payload is oversized");
  return payload.subarray(16);
}

// ---- the tag body (FORMAT.md 5) ----------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

function readUvarint(body, pos, limit) {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= body.length) throw new TagError(Reason.MALFORMED_TAG, "tag truncated inside an integer field");
    const b = body[pos++];
    value |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (b === 0 && shift) throw new TagError(Reason.MALFORMED_TAG, "integer field is not minimally encoded");
      if (value > limit) throw new TagError(Reason.MALFORMED_TAG, "integer field out of range");
      return [value, pos];
    }
    shift += 7n;
    if (shift > 63n) throw new TagError(Reason.MALFORMED_TAG, "integer field too long");
  }
}

function readId(body, pos, what) {
  if (pos >= body.length) throw new TagError(Reason.MALFORMED_TAG, `tag truncated before the ${what} id`);
  const size = body[pos++];
  if (size < 1 || size > MAX_ID_BYTES || pos + size > body.length) {
    throw new TagError(Reason.MALFORMED_TAG, `${what} id has a bad length`);
  }
  const raw = body.subarray(pos, pos + size);
  if (raw.includes(0)) throw new TagError(Reason.MALFORMED_TAG, `${what} id contains a zero byte`);
  let text;
  try { text = utf8.decode(raw); } catch { throw new TagError(Reason.MALFORMED_TAG, `${what} id is not UTF-8`); }
  return [text, pos + size];
}

/**
 * {tag, signed} of a tag body; TagError(unknown_version | malformed_tag) on any defect.
 * stream_id, seq and capture_ms are BigInts (64-bit fields); the 32-bit ones are Numbers.
 */
export function decodeTag(body) {
  if (body.length < 1) throw new TagError(Reason.MALFORMED_TAG, "empty tag");
  if (body[0] !== VERSION) throw new TagError(Reason.UNKNOWN_VERSION, `tag format version ${body[0]} is not supported`);
  if (body.length < 3) throw new TagError(Reason.MALFORMED_TAG, "tag truncated after the version");
  if (body[1] !== ALG) throw new TagError(Reason.UNKNOWN_VERSION, `tag algorithm ${body[1]} is not supported`);
  if (body[2] !== CODEC_H264 && body[2] !== CODEC_H265) {
    throw new TagError(Reason.UNKNOWN_VERSION, `tag codec ${body[2]} is not supported`);
  }
  const codec = body[2];
  let pos = 3;
  let owner, camera, epoch, streamId, seq, captureMs, durationMs, pictures, units;
  [owner, pos] = readId(body, pos, "owner");
  [camera, pos] = readId(body, pos, "camera");
  [epoch, pos] = readUvarint(body, pos, MAX_U32);
  if (epoch === 0n) throw new TagError(Reason.MALFORMED_TAG, "epoch 0 is not an epoch");
  [streamId, pos] = readUvarint(body, pos, MAX_U64);
  [seq, pos] = readUvarint(body, pos, MAX_U64);
  [captureMs, pos] = readUvarint(body, pos, MAX_U64);
  [durationMs, pos] = readUvarint(body, pos, MAX_U32);
  [pictures, pos] = readUvarint(body, pos, MAX_U32);
  [units, pos] = readUvarint(body, pos, MAX_U32);
  if (!pictures || !units) throw new TagError(Reason.MALFORMED_TAG, "a segment has at least one picture and one NAL unit");
  if (body.length < pos + 1 + LINK_SIZE + HINT_SIZE + 1) throw new TagError(Reason.MALFORMED_TAG, "tag truncated before its MACs");
  const flags = body[pos];
  if (flags & ~1) throw new TagError(Reason.MALFORMED_TAG, `unknown flags ${flags}`);
  const link = body.slice(pos + 1, pos + 1 + LINK_SIZE);
  pos += 1 + LINK_SIZE;
  const hint = body.slice(pos, pos + HINT_SIZE);
  const slots = body[pos + HINT_SIZE];
  pos += HINT_SIZE + 1;
  if (slots < 1 || slots > MAX_SLOTS) throw new TagError(Reason.MALFORMED_TAG, `tag has ${slots} slots`);
  if (body.length - pos !== slots * MAC_SIZE) {
    throw new TagError(Reason.MALFORMED_TAG, `tag has ${body.length - pos} bytes of MACs for ${slots} slots`);
  }
  const macs = [];
  for (let s = 0; s < slots; s++) macs.push(body.slice(pos + s * MAC_SIZE, pos + (s + 1) * MAC_SIZE));
  const tag = {
    codec, owner, camera, epoch: Number(epoch), streamId, seq, captureMs,
    durationMs: Number(durationMs), pictures: Number(pictures), units: Number(units),
    endOfStream: Boolean(flags & 1), link, hint, slots, macs,
  };
  return { tag, signed: body.slice(0, pos) };
}

/** The public fields of a tag (never key material), as JSON-friendly values. */
export function tagInfo(tag) {
  if (!tag) return null;
  const big = (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());
  return {
    owner: tag.owner, camera: tag.camera, epoch: tag.epoch, stream_id: big(tag.streamId), seq: big(tag.seq),
    capture_ms: big(tag.captureMs), duration_ms: tag.durationMs, pictures: tag.pictures,
    codec: CODEC_NAMES[tag.codec], end_of_stream: tag.endOfStream,
  };
}

// ---- verdicts -----------------------------------------------------------------------------------

export class Verdict {
  constructor(reason, detail = "", tag = null, missing = 0) {
    this.reason = reason;
    this.detail = detail;
    this.tag = tag;          // the decoded tag (authenticated only when accepted), or null
    this.missing = missing;  // segments lost just before this one (gap, missing)
    this.verified = null;    // accepted: the verified units in canonical form (FORMAT.md 7.4)
  }

  get accepted() { return ACCEPTED.has(this.reason); }

  toString() { return this.reason + (this.detail ? ": " + this.detail : ""); }

  toJSON() {
    return { accepted: this.accepted, reason: this.reason, detail: this.detail, missing: this.missing,
             tag: tagInfo(this.tag) };
  }
}

/** Why a segment is refused (inside the verifier; callers get Verdicts). */
class Refusal extends Error {
  constructor(reason, detail, tag = null) { super(`${reason}: ${detail}`); this.reason = reason; this.detail = detail; this.tag = tag; }
}

// ---- keys -----------------------------------------------------------------------------------------

/**
 * A viewer's grants: (owner, camera, epoch) -> its slot and HMAC key, and the epochs
 * revoked here. Keys are imported into WebCrypto, not extractable.
 */
export class Keyring {
  constructor() {
    this._keys = new Map();
    this._revoked = new Set();
  }

  static id(owner, camera, epoch) { return JSON.stringify([owner, camera, Number(epoch)]); }

  /** A keyring from grants [{owner, camera, epoch, slot, key: hex or bytes}, ...]. */
  static async of(grants, revoked = []) {
    const ring = new Keyring();
    for (const [owner, camera, epoch] of revoked) ring.markRevoked(owner, camera, epoch);
    for (const g of grants) await ring.grant(g);
    return ring;
  }

  get size() { return this._keys.size; }

  async grant({ owner, camera, epoch, slot = 0, key }) {
    const id = Keyring.id(owner, camera, epoch);
    if (this._revoked.has(id)) throw new Error(`epoch ${epoch} of camera ${JSON.stringify(camera)} was revoked`);
    const raw = typeof key === "string" ? fromHex(key) : key;
    if (raw.length !== 32) throw new Error("a slot key is 32 bytes");
    const hmac = await subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    this._keys.set(id, { owner, camera, epoch: Number(epoch), slot: Number(slot), hmac });
  }

  markRevoked(owner, camera, epoch) {
    const id = Keyring.id(owner, camera, epoch);
    this._keys.delete(id);
    this._revoked.add(id);
  }

  /** The cameras granted: [{owner, camera, epoch, slot}] (no keys). */
  grants() {
    return [...this._keys.values()].map(({ owner, camera, epoch, slot }) => ({ owner, camera, epoch, slot }));
  }

  binding(owner, camera, epoch) {
    const id = Keyring.id(owner, camera, epoch);
    const found = this._keys.get(id);
    if (found) return found;
    if (this._revoked.has(id)) throw new Refusal(Reason.NO_GRANT, `epoch ${epoch} of camera ${camera} was revoked`);
    throw new Refusal(Reason.NO_GRANT, `no grant for owner ${owner}, camera ${camera}, epoch ${epoch}`);
  }
}

// ---- canonical form (FORMAT.md 4) ------------------------------------------------------------------

/**
 * A segment in canonical form: `data` is Annex-B with 4-byte start codes, the tag
 * included; tagStart/tagEnd delimit the tag unit with its start code. `units` counts the
 * NAL units other than the tag when a reader split them (null: bytes taken as the camera
 * emits them, hashed as they are). `timing` and `problem` are what a container told.
 */
class Canonical {
  constructor(data, tagStart, tagEnd, units = null, timing = null, problem = "", variants = []) {
    Object.assign(this, { data, tagStart, tagEnd, units, timing, problem, variants });
  }

  /** From NAL units found in any framing; Refusal unless exactly one of them is a tag. */
  static ofUnits(units, timing = null, problem = "", variants = []) {
    const tags = [];
    units.forEach((u, i) => { if (u.length && tagCodec(u)) tags.push(i); });
    if (!tags.length) throw new Refusal(Reason.NO_TAG, units.length ? "segment carries no segbind tag" : "no NAL units in segment");
    if (tags.length > 1) throw new Refusal(Reason.MALFORMED_TAG, `segment carries ${tags.length} segbind tags`);
    const parts = [];
    let tagStart = 0;
    let tagEnd = 0;
    let at = 0;
    units.forEach((u, i) => {
      if (i === tags[0]) tagStart = at;
      parts.push(START_CODE, u);
      at += 4 + u.length;
      if (i === tags[0]) tagEnd = at;
    });
    return new Canonical(concatBytes(parts), tagStart, tagEnd, units.length - 1, timing, problem, variants);
  }

  /** From Annex-B bytes in any framing; bytes other than zeros before the first start code are refused. */
  static ofAnnexB(buf) {
    const { units, leading } = annexbUnits(buf);
    if (leading) throw new Refusal(Reason.FRAMING, "bytes before the first NAL unit");
    return Canonical.ofUnits(units);
  }
}

function startsWithStartCode(buf, at) {
  return buf[at] === 0 && buf[at + 1] === 0 && buf[at + 2] === 0 && buf[at + 3] === 1;
}

function findStartCode(buf, from, until = buf.length) {
  for (let i = from; i + 4 <= until; i++) if (startsWithStartCode(buf, i)) return i;
  return -1;
}

/**
 * The tag's place when `buf` is a segment as the camera emits it (4-byte start codes, the
 * tag first or right after a delimiter): its bytes are then the canonical form already and
 * are hashed as they are, two ranges, no parsing (FORMAT.md 4). Else null.
 */
function asCameraEmits(buf) {
  if (buf.length < 24 || !startsWithStartCode(buf, 0)) return null;
  let start = 0;
  if (!tagCodec(buf.subarray(4, 48))) {
    const first = buf[4];
    if ((first & 0x1f) !== 9 && ((first >> 1) & 0x3f) !== 35) return null;  // an H.264 or H.265 delimiter
    start = findStartCode(buf, 5, 12);
    if (start < 0 || !tagCodec(buf.subarray(start + 4, start + 48))) return null;
  }
  const end = findStartCode(buf, start + 4);
  return new Canonical(buf, start, end >= 0 ? end : buf.length);
}

// ---- checks 1 to 8 of FORMAT.md 7.1 --------------------------------------------------------------------

function checkTiming(tag, timing) {
  if (timing.samples !== tag.pictures) {
    throw new Refusal(Reason.TIMING, `${timing.samples} pictures where the camera tagged ${tag.pictures}`, tag);
  }
  const slack = Math.max(timing.frameMs, tag.pictures ? tag.durationMs / tag.pictures : 0, 0.1 * tag.durationMs) + 1;
  if (Math.abs(timing.durationMs - tag.durationMs) > slack) {
    throw new Refusal(Reason.TIMING, `the container plays it in ${Math.round(timing.durationMs)} ms; the camera captured ${tag.durationMs} ms`, tag);
  }
}

function checkWindow(window, tag, nowS) {
  const age = nowS - Number(tag.captureMs) / 1000;
  if (window.maxAgeS != null && age > window.maxAgeS) {
    throw new Refusal(Reason.TIME_WINDOW, `captured ${age.toFixed(1)} s ago, more than ${window.maxAgeS} s`, tag);
  }
  if (window.maxFutureS != null && -age > window.maxFutureS) {
    throw new Refusal(Reason.TIME_WINDOW, `captured ${(-age).toFixed(1)} s in the future, more than ${window.maxFutureS} s`, tag);
  }
}

/** Checks 1 to 8 on canonical segments, against a keyring; no stream state. */
export class Authenticator {
  constructor(keyring, window = null) {
    this.keyring = keyring;
    this.window = window;
  }

  tagOf(seg) {
    const unit = seg.data.subarray(seg.tagStart + 4, seg.tagEnd);
    const codec = tagCodec(unit);
    let decoded;
    try {
      decoded = decodeTag(tagBody(unit, codec));
    } catch (exc) {
      if (exc instanceof TagError) throw new Refusal(exc.reason, exc.message);
      throw exc;
    }
    if (decoded.tag.codec !== codec) {
      throw new Refusal(Reason.MALFORMED_TAG, `a ${CODEC_NAMES[decoded.tag.codec]} tag in an ${CODEC_NAMES[codec] || "unknown"} SEI`, decoded.tag);
    }
    return decoded;
  }

  async authenticate(seg, nowS) {
    const { tag, signed } = this.tagOf(seg);
    let grant;
    try {
      grant = this.keyring.binding(tag.owner, tag.camera, tag.epoch);
    } catch (exc) {
      if (exc instanceof Refusal) throw new Refusal(exc.reason, exc.detail, tag);
      throw exc;
    }
    if (grant.slot >= tag.slots) throw new Refusal(Reason.NO_GRANT, `the tag has no slot ${grant.slot} for this viewer (${tag.slots} slots)`, tag);
    if (seg.problem) throw new Refusal(Reason.FRAMING, seg.problem, tag);
    if (seg.units !== null && seg.units !== tag.units) {
      throw new Refusal(Reason.CONTENT_MISMATCH, `${seg.units} NAL units where the camera tagged ${tag.units}`, tag);
    }
    const digest = await sha256(concatBytes([seg.data.subarray(0, seg.tagStart), seg.data.subarray(seg.tagEnd)]));
    const full = new Uint8Array(await subtle.sign("HMAC", grant.hmac, concatBytes([signed, digest])));
    const mac = full.subarray(0, MAC_SIZE);
    if (!constantTimeEqual(mac, tag.macs[grant.slot])) {
      if (!constantTimeEqual(digest.subarray(0, HINT_SIZE), tag.hint)) {
        throw new Refusal(Reason.CONTENT_MISMATCH, "video content differs from what the camera tagged", tag);
      }
      throw new Refusal(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key", tag);
    }
    if (seg.timing) checkTiming(tag, seg.timing);
    if (this.window) checkWindow(this.window, tag, nowS);
    return { tag, digest, mac: mac.slice(), verified: seg.data };
  }

  /** authenticate, then the segment's other heads (what remuxers moved put back) when only its content mismatched. */
  async authenticateAny(seg, nowS) {
    try {
      return await this.authenticate(seg, nowS);
    } catch (exc) {
      if (!(exc instanceof Refusal) || exc.reason !== Reason.CONTENT_MISMATCH || !seg.variants.length) throw exc;
      for (const other of seg.variants) {
        try {
          return await this.authenticate(other, nowS);
        } catch (again) {
          if (!(again instanceof Refusal) || again.reason !== Reason.CONTENT_MISMATCH) throw again;
        }
      }
      throw exc;
    }
  }

  /** A segment given as Annex-B bytes: as the camera emits it (no parsing), else read into canonical form. */
  async authenticateAnnexB(buf, nowS) {
    const fast = asCameraEmits(buf);
    if (fast) {
      try {
        return await this.authenticate(fast, nowS);
      } catch (exc) {
        if (!(exc instanceof Refusal) || exc.reason !== Reason.CONTENT_MISMATCH) throw exc;
        const slow = Canonical.ofAnnexB(buf);
        if (sameBytes(slow.data, buf)) throw exc;
        return this.authenticate(slow, nowS);
      }
    }
    return this.authenticate(Canonical.ofAnnexB(buf), nowS);
  }
}

// ---- the regrouping rule: NAL units in order -> tagged segments ---------------------------------------

/** The (kind, id) of a parameter set, to keep the latest of each; null when unreadable. */
function parameterSetKey(unit, codec) {
  const kind = nalKind(unit, codec);
  try {
    if (codec === CODEC_H264) {
      const bits = new BitReader(unescapeRbsp(unit.subarray(1, 40)));
      if (kind === 7) { bits.u(24); const id = bits.ue(); return id > 31 ? null : [kind, id]; }
      const id = bits.ue();
      return id > 255 ? null : [kind, id];
    }
    const bits = new BitReader(unescapeRbsp(unit.subarray(2, 200)));
    if (kind === 32) return [kind, bits.u(4)];
    if (kind === 34) { const id = bits.ue(); return id > 63 ? null : [kind, id]; }
    bits.u(4);                      // sps_video_parameter_set_id
    const subLayers = bits.u(3);    // sps_max_sub_layers_minus1
    bits.u(1);
    skipProfileTierLevel(bits, subLayers);
    const id = bits.ue();
    return id > 15 ? null : [kind, id];
  } catch {
    return null;
  }
}

function skipProfileTierLevel(bits, maxSubLayersMinus1) {
  bits.u(96);  // general profile (88 bits) and level (8 bits)
  const profile = [];
  const level = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) { profile.push(bits.u(1)); level.push(bits.u(1)); }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) bits.u(2);
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profile[i]) bits.u(88);
    if (level[i]) bits.u(8);
  }
}

class BitReader {
  constructor(data) { this.data = data; this.pos = 0; }

  u(n) {
    let value = 0;
    for (let i = 0; i < n; i++) {
      const at = this.pos >> 3;
      if (at >= this.data.length) throw new RangeError("past the end");
      value = value * 2 + ((this.data[at] >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return value;
  }

  ue() {
    let zeros = 0;
    while (!this.u(1)) if (++zeros > 31) throw new RangeError("Exp-Golomb code too long");
    return 2 ** zeros - 1 + this.u(zeros);
  }
}

/**
 * One tagged segment as a reader found it: its NAL units in order, the parameter sets in
 * force at its start (to put back where a packager stripped them), a container's timing,
 * and a framing defect that refuses it whatever its tag says.
 */
export class Segment {
  constructor(units, codec, restore = [], timing = null, problem = "") {
    Object.assign(this, { units, codec, restore, timing, problem });
  }

  canonical() {
    const variants = this._heads().map((units) => Canonical.ofUnits(units, this.timing, this.problem));
    return Canonical.ofUnits(this.units, this.timing, this.problem, variants);
  }

  /**
   * The segment with the other heads remuxers are seen to make undone, at most one
   * (docs/CONTAINERS.md): parameter sets present in the head but not right after the tag
   * are put there; absent ones are put back from those in force.
   */
  _heads() {
    const { units, codec } = this;
    const kinds = KINDS[codec];
    const kindOf = units.map((u) => nalKind(u, codec));
    const firstVcl = kindOf.findIndex((k) => kinds.vcl(k));
    let tag = -1;
    for (let i = 0; i < Math.max(firstVcl, 0); i++) if (tagCodec(units[i])) { tag = i; break; }
    if (tag < 0) return [];
    const isSet = (i) => kinds.sets.includes(kindOf[i]);
    const head = units.slice(0, firstVcl);
    const rest = units.slice(firstVcl);
    const sets = head.filter((_, i) => isSet(i));
    const others = head.filter((_, i) => !isSet(i));
    const at = others.indexOf(units[tag]) + 1;
    if (sets.length) {
      const moved = [...others.slice(0, at), ...sets, ...others.slice(at), ...rest];
      return moved.every((u, i) => u === units[i]) ? [] : [moved];
    }
    if (!this.restore.length) return [];
    return [[...others.slice(0, at), ...this.restore, ...others.slice(at), ...rest]];
  }
}

/**
 * Cuts NAL units, given in order, back into the segments the camera tagged: a segment
 * begins with the access unit that holds its tag (docs/CONTAINERS.md); units before the first tag
 * form a segment of their own (refused as untagged: nothing goes unjudged).
 */
export class Regrouper {
  constructor(codec, initialSets = []) {
    this.codec = codec;
    this.kinds = KINDS[codec];
    this._initial = initialSets.filter((u) => u.length && this.kinds.sets.includes(nalKind(u, codec)));
    this._latest = new Map();
    this._units = [];
    this._size = 0;
    this._problem = "";
    this._lastVcl = -1;
    this._restore = [];
    this._tagged = false;
    this.meta = {};        // what a reader keeps for the segment in progress (its samples)
    this.closedMeta = {};  // ... for the segment the last add() or finish() closed
  }

  problem(text) { if (!this._problem) this._problem = text; }

  add(unit) {
    const kind = unit.length ? nalKind(unit, this.codec) : -1;
    let closed = null;
    if (unit.length && tagCodec(unit)) {
      // The tag's access unit begins at the delimiter right before the tag, as the camera
      // emits it; else at the first of the units after the last picture that open an
      // access unit; else at the tag (segbind/framing.py access_unit_start).
      const units = this._units;
      let begin = units.length;
      const last = units.length ? units[units.length - 1] : null;
      if (last && last.length === (this.codec === CODEC_H264 ? 2 : 3) && nalKind(last, this.codec) === this.kinds.aud) {
        begin -= 1;
      } else {
        while (begin - 1 > this._lastVcl && this.kinds.openers.includes(nalKind(units[begin - 1], this.codec))) begin -= 1;
      }
      const moved = units.splice(begin);
      closed = this._close();
      for (const u of moved) this._keep(u);
      this._tagged = true;
      const latest = [...this._latest.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
      this._restore = latest.length ? latest : this._initial;
    } else if (this.kinds.vcl(kind)) {
      this._lastVcl = this._units.length;
    } else if (this.kinds.sets.includes(kind)) {
      const key = parameterSetKey(unit, this.codec);
      if (key) this._latest.set(key[0] * 256 + key[1], unit);
    }
    this._keep(unit);
    return closed;
  }

  _keep(unit) {
    this._size += unit.length + 4;
    if (this._size > MAX_SEGMENT_BYTES || this._units.length >= MAX_SEGMENT_UNITS) {
      this.problem(`segment larger than ${MAX_SEGMENT_BYTES >> 20} MiB or ${MAX_SEGMENT_UNITS} NAL units`);
      return;
    }
    this._units.push(unit);
  }

  _close() {
    if (!this._units.length && !this._problem) return null;
    const segment = new Segment(this._units, this.codec, this._tagged ? this._restore : [], null, this._problem);
    this.closedMeta = this.meta;
    this.meta = {};
    this._units = [];
    this._size = 0;
    this._problem = "";
    this._lastVcl = -1;
    return segment;
  }

  finish() { return this._close(); }
}

/** The codec of the first tag among Annex-B units (H.264 when there is none). */
function codecOfUnits(units) {
  for (const u of units) { const c = tagCodec(u); if (c) return c; }
  return CODEC_H264;
}

/** The tagged segments of an Annex-B stream (H.264 or H.265, told by its tags). */
export function annexbSegments(buf) {
  const { units, leading } = annexbUnits(buf);
  const rule = new Regrouper(codecOfUnits(units));
  if (leading) rule.problem("bytes before the first start code");
  const out = [];
  for (const u of units) { const closed = rule.add(u); if (closed) out.push(closed); }
  const last = rule.finish();
  if (last) out.push(last);
  return out;
}

// ---- fragmented MP4 (CMAF): init segments and moof/mdat fragments ------------------------------------------

class FramingError extends Error {}

function u32(buf, at) {
  if (at + 4 > buf.length) throw new FramingError("a box is cut short");
  return ((buf[at] << 24) >>> 0) + (buf[at + 1] << 16) + (buf[at + 2] << 8) + buf[at + 3];
}

function u64(buf, at) { return u32(buf, at) * 2 ** 32 + u32(buf, at + 4); }

function u16(buf, at) {
  if (at + 2 > buf.length) throw new FramingError("a box is cut short");
  return (buf[at] << 8) | buf[at + 1];
}

function fourcc(buf, at) { return String.fromCharCode(buf[at], buf[at + 1], buf[at + 2], buf[at + 3]); }

/** The boxes in buf[start:end]: {type, start, end, body}; FramingError when they do not tile it. */
function boxes(buf, start = 0, end = buf.length) {
  const out = [];
  let pos = start;
  while (pos < end) {
    if (end - pos < 8) throw new FramingError("a box header runs past its parent");
    let size = u32(buf, pos);
    const type = fourcc(buf, pos + 4);
    let header = 8;
    if (size === 1) { if (end - pos < 16) throw new FramingError("a box header runs past its parent"); size = u64(buf, pos + 8); header = 16; }
    else if (size === 0) size = end - pos;
    if (size < header || pos + size > end) throw new FramingError(`box ${type} runs past its parent`);
    out.push({ type, start: pos, end: pos + size, body: pos + header });
    pos += size;
  }
  return out;
}

function child(buf, box, type) { return boxes(buf, box.body, box.end).find((b) => b.type === type) || null; }

function children(buf, box, type) { return boxes(buf, box.body, box.end).filter((b) => b.type === type); }

function path(buf, box, ...types) {
  let at = box;
  for (const t of types) { at = child(buf, at, t); if (!at) return null; }
  return at;
}

const SAMPLE_ENTRIES = { avc1: CODEC_H264, avc3: CODEC_H264, hvc1: CODEC_H265, hev1: CODEC_H265 };

/** {lengthSize, sets} of an avcC or hvcC record: the NAL length size and its parameter sets. */
function decoderConfig(buf, box, codec) {
  const rec = buf.subarray(box.body, box.end);
  const sets = [];
  if (codec === CODEC_H264) {
    if (rec.length < 7 || rec[0] !== 1) throw new FramingError("invalid avcC record");
    let pos = 5;
    for (const mask of [0x1f, 0xff]) {
      if (pos >= rec.length) throw new FramingError("truncated avcC record");
      const count = rec[pos++] & mask;
      for (let i = 0; i < count; i++) {
        const size = u16(rec, pos);
        pos += 2;
        if (!size || pos + size > rec.length) throw new FramingError("truncated avcC record");
        sets.push(rec.subarray(pos, pos + size));
        pos += size;
      }
    }
    return { lengthSize: (rec[4] & 3) + 1, sets };
  }
  if (rec.length < 23 || rec[0] !== 1) throw new FramingError("invalid hvcC record");
  let pos = 23;
  for (let a = 0; a < rec[22]; a++) {
    if (pos + 3 > rec.length) throw new FramingError("truncated hvcC record");
    const count = u16(rec, pos + 1);
    pos += 3;
    for (let i = 0; i < count; i++) {
      const size = u16(rec, pos);
      pos += 2;
      if (!size || pos + size > rec.length) throw new FramingError("truncated hvcC record");
      sets.push(rec.subarray(pos, pos + size));
      pos += size;
    }
  }
  return { lengthSize: (rec[21] & 3) + 1, sets };
}

function fullBoxVersion(buf, box) { return buf[box.body]; }

/** The NAL units of a length-prefixed sample, and a defect ("" when none) (FORMAT.md 7.3). */
export function prefixedUnits(data, lengthSize) {
  const units = [];
  let pos = 0;
  while (pos < data.length) {
    if (pos + lengthSize > data.length) return [units, "a sample ends inside a NAL length prefix"];
    let size = 0;
    for (let i = 0; i < lengthSize; i++) size = size * 256 + data[pos + i];
    pos += lengthSize;
    if (!size) return [units, "a sample holds an empty NAL unit"];
    if (pos + size > data.length) return [units, `a NAL length runs ${pos + size - data.length} bytes past the end of its sample`];
    let end = pos + size;  // zero bytes ending a unit are framing, as in Annex-B (FORMAT.md 7.3)
    while (end > pos && data[end - 1] === 0) end--;
    if (end === pos) return [units, "a sample holds a NAL unit of zero bytes only"];
    units.push(data.subarray(pos, end));
    pos += size;
  }
  return [units, ""];
}

/** A segment's samples as a container times them (count, presentation span, hidden ones). */
class Samples {
  constructor() { this.count = 0; this.hidden = 0; this.first = null; this.end = null; this.frame = 0; }

  add(pts, duration, hidden) {
    this.count++;
    if (hidden) this.hidden++;
    if (duration) this.frame = duration;
    this.first = this.first === null ? pts : Math.min(this.first, pts);
    const end = pts + (duration || this.frame);
    this.end = this.end === null ? end : Math.max(this.end, end);
  }

  timing() {
    if (!this.count) return null;
    let span = this.first !== null ? this.end - this.first : 0;
    if (span && !this.frame) span += this.frame;
    return { samples: this.count, durationMs: span, hidden: this.hidden, frameMs: this.frame };
  }
}

/**
 * Reads a fragmented MP4 stream: its init segment (one video track, avcC or hvcC), then
 * fragments, each cut into the segments it holds. The video must be the only track; a
 * fragment that cannot be read gives one refused segment (framing), never an exception.
 */
export class Mp4Reader {
  /** Throws FramingError (a message saying why) when the init segment is unusable. */
  constructor(init) {
    this.init = init;
    this.problem = "";
    const top = boxes(init);
    const moov = top.find((b) => b.type === "moov");
    if (!moov) throw new FramingError("the init segment has no moov box");
    const traks = children(init, moov, "trak");
    const video = [];
    const others = [];
    for (const trak of traks) {
      const hdlr = path(init, trak, "mdia", "hdlr");
      const handler = hdlr ? fourcc(init, hdlr.body + 8) : "?";
      const stsd = path(init, trak, "mdia", "minf", "stbl", "stsd");
      const entry = stsd ? boxes(init, stsd.body + 8, stsd.end)[0] : null;
      const codec = entry ? SAMPLE_ENTRIES[entry.type] : 0;
      if (handler === "vide" && codec) video.push({ trak, entry, codec });
      else others.push(`${handler} (${entry ? entry.type : "?"})`);
    }
    if (!video.length) throw new FramingError(`no H.264 or H.265 video track (${others.join(", ") || "no tracks"})`);
    if (video.length > 1) others.push("a second video track");
    if (others.length) this.problem = `the container holds other tracks, never verified: ${others.join(", ")}`;
    const { trak, entry, codec } = video[0];
    this.codec = codec;
    const tkhd = child(init, trak, "tkhd");
    this.trackId = tkhd ? u32(init, tkhd.body + (fullBoxVersion(init, tkhd) === 1 ? 20 : 12)) : 1;
    const mdhd = path(init, trak, "mdia", "mdhd");
    if (!mdhd) throw new FramingError("the video track has no mdhd box");
    this.timescale = u32(init, mdhd.body + (fullBoxVersion(init, mdhd) === 1 ? 20 : 12));
    if (!this.timescale) throw new FramingError("the video track's timescale is 0");
    const config = boxes(init, entry.body + 78, entry.end).find((b) => b.type === (codec === CODEC_H264 ? "avcC" : "hvcC"));
    if (!config) throw new FramingError(`the ${entry.type} sample entry has no decoder configuration`);
    Object.assign(this, decoderConfig(init, config, codec));
    this.mediaTime = 0;
    const elst = path(init, trak, "edts", "elst");
    if (elst) {
      const v1 = fullBoxVersion(init, elst) === 1;
      if (u32(init, elst.body + 4) >= 1) {
        const t = v1 ? u64(init, elst.body + 16) : u32(init, elst.body + 12);
        const empty = v1 ? t === 2 ** 64 - 1 : t === 0xffffffff;  // -1: an empty edit (a delay)
        if (!empty) this.mediaTime = t;
      }
    }
    this.defaults = { duration: 0, size: 0, flags: 0 };
    const mvex = child(init, moov, "mvex");
    for (const trex of mvex ? children(init, mvex, "trex") : []) {
      if (u32(init, trex.body + 4) === this.trackId) {
        this.defaults = { duration: u32(init, trex.body + 12), size: u32(init, trex.body + 16), flags: u32(init, trex.body + 20) };
      }
    }
  }

  /** The samples of a fragment: [{data, pts, duration}] in decoding order (times in ms). */
  samples(frag) {
    const top = boxes(frag);
    const mdats = top.filter((b) => b.type === "mdat");
    const out = [];
    let problem = "";
    for (const moof of top.filter((b) => b.type === "moof")) {
      for (const traf of children(frag, moof, "traf")) {
        const tfhd = child(frag, traf, "tfhd");
        if (!tfhd) throw new FramingError("a traf box without tfhd");
        const flags = u32(frag, tfhd.body) & 0xffffff;
        const trackId = u32(frag, tfhd.body + 4);
        if (trackId !== this.trackId) { problem = `the fragment holds samples of track ${trackId}, never verified`; continue; }
        let at = tfhd.body + 8;
        let base = moof.start;
        if (flags & 0x1) { base = u64(frag, at); at += 8; }
        if (flags & 0x2) at += 4;
        const dflt = { ...this.defaults };
        if (flags & 0x8) { dflt.duration = u32(frag, at); at += 4; }
        if (flags & 0x10) { dflt.size = u32(frag, at); at += 4; }
        if (flags & 0x20) { dflt.flags = u32(frag, at); at += 4; }
        const tfdt = child(frag, traf, "tfdt");
        let dts = tfdt ? (fullBoxVersion(frag, tfdt) === 1 ? u64(frag, tfdt.body + 4) : u32(frag, tfdt.body + 4)) : 0;
        let offset = base;
        for (const trun of children(frag, traf, "trun")) {
          const version = fullBoxVersion(frag, trun);
          const tf = u32(frag, trun.body) & 0xffffff;
          const count = u32(frag, trun.body + 4);
          let p = trun.body + 8;
          if (tf & 0x1) { offset = base + (u32(frag, p) | 0); p += 4; }
          if (tf & 0x4) p += 4;
          for (let i = 0; i < count; i++) {
            let duration = dflt.duration;
            let size = dflt.size;
            let cto = 0;
            if (tf & 0x100) { duration = u32(frag, p); p += 4; }
            if (tf & 0x200) { size = u32(frag, p); p += 4; }
            if (tf & 0x400) p += 4;
            if (tf & 0x800) { cto = version ? u32(frag, p) | 0 : u32(frag, p); p += 4; }
            if (p > trun.end) throw new FramingError("a trun box is cut short");
            if (!mdats.some((m) => offset >= m.body && offset + size <= m.end)) {
              throw new FramingError("a sample lies outside the fragment's media data");
            }
            const pts = dts + cto;
            out.push({
              data: frag.subarray(offset, offset + size),
              pts: (pts / this.timescale) * 1000,
              duration: (duration / this.timescale) * 1000,
              hidden: pts < this.mediaTime,
            });
            offset += size;
            dts += duration;
          }
        }
      }
    }
    return { samples: out, problem };
  }

  /** The tagged segments of one fragment (a fragment holds whole segments). */
  segments(frag) {
    const rule = new Regrouper(this.codec, this.sets);
    let samples;
    try {
      const found = this.samples(frag);
      samples = found.samples;
      if (found.problem) rule.problem(found.problem);
    } catch (exc) {
      if (!(exc instanceof FramingError)) throw exc;
      return [new Segment([], this.codec, [], null, `the fragment cannot be read (${exc.message})`)];
    }
    const out = [];
    const close = (segment) => {
      segment.timing = rule.closedMeta.samples ? rule.closedMeta.samples.timing() : null;
      if (this.problem && !segment.problem) segment.problem = this.problem;
      out.push(segment);
    };
    rule.meta.samples = new Samples();
    const aud = KINDS[this.codec].aud;
    for (const sample of samples) {
      const [units, defect] = prefixedUnits(sample.data, this.lengthSize);
      if (defect) { rule.problem(defect); continue; }
      // A sample is one whole access unit as the camera emitted it (docs/CONTAINERS.md): it
      // begins with its delimiter and holds no other.
      const delimiters = units.filter((u) => nalKind(u, this.codec) === aud).length;
      let notOneAccessUnit = "";
      if (!units.length || nalKind(units[0], this.codec) !== aud) {
        notOneAccessUnit = "a sample does not begin with an access unit delimiter: it is not one whole access unit as the camera emitted it";
      } else if (delimiters > 1) {
        notOneAccessUnit = `a sample holds ${delimiters} access units (a sample is one access unit, or the two fields of one frame)`;
      }
      for (const unit of units) {
        const closed = rule.add(unit);
        if (closed) { close(closed); rule.meta.samples = new Samples(); }
      }
      if (notOneAccessUnit && rule._tagged) rule.problem(notOneAccessUnit);  // untagged runs are refused as such
      rule.meta.samples.add(sample.pts, sample.duration, sample.hidden);
    }
    const last = rule.finish();
    if (last) close(last);
    if (!out.length) out.push(new Segment([], this.codec, [], null, "the fragment holds no video samples"));
    return out;
  }
}

// ---- stream order (FORMAT.md 7.2) -----------------------------------------------------------------------

class CameraState {
  constructor(found) {
    this.streamId = found.tag.streamId;
    this.epoch = found.tag.epoch;
    this.highest = found.tag.seq;
    this.recent = new Map();  // seq -> {digest, link, mac}, in the order accepted
    this.last = found.tag;    // the latest accepted in stream order
    this.accept(found);
  }

  accept(found) {
    const { tag } = found;
    this.recent.set(tag.seq, { digest: found.digest, link: tag.link, mac: found.mac });
    if (tag.seq >= this.highest) {
      this.highest = tag.seq;
      this.epoch = tag.epoch;
      this.last = tag;
    }
    const floor = this.highest - REPLAY_WINDOW;
    for (const seq of this.recent.keys()) {
      if (seq >= floor) break;
      this.recent.delete(seq);
    }
  }
}

function linkOf(digest) { return digest.subarray(0, LINK_SIZE); }

/**
 * Verifies segments in arrival order, keeping each camera's stream state. With `camera`
 * set, a segment of any other camera is a chain_break (the stream is that camera's alone).
 * With `recording`, gaps, streams that do not follow a clean end and discontinuous capture
 * times are refused, and finish() says whether the recording ends cleanly. Verdicts come
 * in the order segments were given, whatever WebCrypto's timing.
 */
export class StreamVerifier {
  constructor(keyring, { camera = null, window = null, recording = false, clock = () => Date.now() / 1000 } = {}) {
    this.auth = new Authenticator(keyring, window);
    this.camera = camera;
    this.recording = recording;
    this.clock = clock;
    this._cameras = new Map();
    this._queue = Promise.resolve();
  }

  get keyring() { return this.auth.keyring; }

  /** A new keyring (new grants); the stream state is kept. */
  set keyring(keyring) { this.auth.keyring = keyring; }

  /** The verdict on one segment given as Annex-B bytes (as the camera emits it, or any Annex-B framing). */
  verifyAnnexB(bytes) {
    return this._serial(async () => {
      if (!(bytes instanceof Uint8Array)) return new Verdict(Reason.FRAMING, "a segment is bytes");
      return this._judge(() => this.auth.authenticateAnnexB(bytes, this._now()));
    });
  }

  /** The verdict on a segment a reader found (annexbSegments, Mp4Reader.segments). */
  verifySegment(segment) {
    return this._serial(async () => {
      let canonical;
      try {
        canonical = segment.canonical();
      } catch (exc) {
        if (!(exc instanceof Refusal)) throw exc;
        if (segment.problem) return new Verdict(Reason.FRAMING, segment.problem);
        return new Verdict(exc.reason, exc.detail, exc.tag);
      }
      return this._judge(() => this.auth.authenticateAny(canonical, this._now()));
    });
  }

  /** Recording mode, at the end of the input: a refusal when a stream did not end cleanly (else null). */
  finish() {
    if (!this.recording) return null;
    for (const [camera, state] of [...this._cameras.entries()].sort()) {
      if (!state.last.endOfStream) {
        return new Verdict(Reason.INCOMPLETE, `the recording of camera ${camera} ends at segment ${state.highest} of stream ${state.streamId}, without its end of stream`, state.last);
      }
    }
    if (!this._cameras.size) return new Verdict(Reason.INCOMPLETE, "no segment was accepted");
    return null;
  }

  _serial(job) {
    const run = this._queue.then(job);
    this._queue = run.catch(() => undefined);
    return run;
  }

  _now() { return this.auth.window ? this.clock() : null; }

  async _judge(authenticate) {
    let found;
    try {
      found = await authenticate();
    } catch (exc) {
      if (exc instanceof Refusal) return new Verdict(exc.reason, exc.detail, exc.tag);
      throw exc;
    }
    const verdict = this._sequence(found);
    if (verdict.accepted) verdict.verified = found.verified;
    return verdict;
  }

  _sequence(found) {
    const { tag } = found;
    if (this.camera !== null && tag.camera !== this.camera) {
      return new Verdict(Reason.CHAIN_BREAK, `segment of camera ${tag.camera} in the stream of camera ${this.camera}`, tag);
    }
    const state = this._cameras.get(tag.camera);
    if (!state) {
      if (tag.seq === 0n && !sameBytes(tag.link, GENESIS_LINK)) {
        return new Verdict(Reason.CHAIN_BREAK, "first segment of a stream without the genesis link", tag);
      }
      if (this.recording && tag.seq) {
        return new Verdict(Reason.MISSING, `the recording starts at segment ${tag.seq} of stream ${tag.streamId}`, tag, Number(tag.seq));
      }
      this._cameras.set(tag.camera, new CameraState(found));
      return new Verdict(Reason.OK, `first segment seen of stream ${tag.streamId}`, tag);
    }
    if (tag.streamId < state.streamId) {
      return new Verdict(Reason.CHAIN_BREAK, `stream ${tag.streamId} is older than stream ${state.streamId} already seen`, tag);
    }
    if (tag.streamId > state.streamId) {
      if (tag.seq === 0n && !sameBytes(tag.link, GENESIS_LINK)) {
        return new Verdict(Reason.CHAIN_BREAK, "new stream does not start with the genesis link", tag);
      }
      if (this.recording && (tag.seq || !state.last.endOfStream)) {
        return new Verdict(Reason.MISSING, `stream ${tag.streamId} begins before stream ${state.streamId} ended cleanly`, tag, Number(tag.seq));
      }
      this._cameras.set(tag.camera, new CameraState(found));
      if (tag.seq) return new Verdict(Reason.GAP, `new stream ${tag.streamId} joined at segment ${tag.seq}`, tag, Number(tag.seq));
      return new Verdict(Reason.OK, `new stream ${tag.streamId}`, tag);
    }
    if (tag.epoch < state.epoch && tag.seq > state.highest) {
      return new Verdict(Reason.CHAIN_BREAK, `epoch went back from ${state.epoch} to ${tag.epoch}`, tag);
    }
    if (tag.seq <= state.highest) return this._earlier(state, found);
    if (tag.seq === state.highest + 1n) {
      if (!constantTimeEqual(tag.link, linkOf(state.recent.get(state.highest).digest))) {
        return new Verdict(Reason.CHAIN_BREAK, `segment ${tag.seq} does not follow segment ${state.highest}`, tag);
      }
      if (this.recording) {
        const expected = state.last.captureMs + BigInt(state.last.durationMs);
        const off = tag.captureMs - expected;
        if (off > BigInt(CONTINUITY_MS) || -off > BigInt(CONTINUITY_MS)) {
          return new Verdict(Reason.TIMING, `captured at ${tag.captureMs} ms, ${off} ms from where segment ${state.last.seq} ended`, tag);
        }
      }
      state.accept(found);
      return new Verdict(Reason.OK, "", tag);
    }
    const missing = Number(tag.seq - state.highest - 1n);
    if (this.recording) return new Verdict(Reason.MISSING, `${missing} segment(s) missing before segment ${tag.seq}`, tag, missing);
    state.accept(found);
    return new Verdict(Reason.GAP, `${missing} segment(s) lost before segment ${tag.seq}`, tag, missing);
  }

  /** A segment at or below the highest seq: a copy, a replay, or an intact late one. */
  _earlier(state, found) {
    const { tag } = found;
    const seen = state.recent.get(tag.seq);
    if (seen) {
      if (constantTimeEqual(seen.digest, found.digest) && constantTimeEqual(seen.mac, found.mac)) {
        return new Verdict(Reason.DUPLICATE, `segment ${tag.seq} already accepted`, tag);
      }
      return new Verdict(Reason.REPLAY, `sequence number ${tag.seq} already used`, tag);
    }
    if (tag.seq < state.highest - REPLAY_WINDOW) {
      return new Verdict(Reason.REPLAY, `segment ${tag.seq} is older than the window (${REPLAY_WINDOW})`, tag);
    }
    const before = state.recent.get(tag.seq - 1n);
    if (tag.seq === 0n) {
      if (!sameBytes(tag.link, GENESIS_LINK)) return new Verdict(Reason.CHAIN_BREAK, "segment 0 without the genesis link", tag);
    } else if (before && !constantTimeEqual(tag.link, linkOf(before.digest))) {
      return new Verdict(Reason.CHAIN_BREAK, `late segment ${tag.seq} does not follow segment ${tag.seq - 1n}`, tag);
    }
    const after = state.recent.get(tag.seq + 1n);
    if (after && !constantTimeEqual(after.link, linkOf(found.digest))) {
      return new Verdict(Reason.CHAIN_BREAK, `segment ${tag.seq} does not lead to segment ${tag.seq + 1n}`, tag);
    }
    if (tag.epoch > state.epoch) {
      return new Verdict(Reason.CHAIN_BREAK, `a late segment of epoch ${tag.epoch} after epoch ${state.epoch}`, tag);
    }
    if (this.recording) return new Verdict(Reason.MISSING, `segment ${tag.seq} arrived after segment ${state.highest}`, tag);
    state.accept(found);
    return new Verdict(Reason.LATE, `segment ${tag.seq} arrived after segment ${state.highest}`, tag);
  }
}

// ---- a gate in front of a decoder -------------------------------------------------------------------------

/**
 * Verifies the fragments of one fMP4 feed before they reach a decoder (what a display's
 * fragment loader calls). `init(bytes)` takes the init segment; `fragment(bytes)` returns
 * {pass, verdicts}: pass is true only when the fragment holds at least one segment and
 * every segment in it is accepted, and the parameter sets in the init segment (which the
 * decoder also reads) are among the verified units. A refused fragment must not be
 * appended. (Each segment's verdict counts for the stream as given: a fragment whose first
 * segment is accepted and second refused is held whole, its first segment still seen.)
 */
export class FragmentGate {
  constructor(verifier) {
    this.verifier = verifier;
    this.reader = null;
    this.initProblem = "no init segment yet";
  }

  init(bytes) {
    try {
      this.reader = new Mp4Reader(bytes);
      this.initProblem = "";
    } catch (exc) {
      if (!(exc instanceof FramingError) && !(exc instanceof RangeError)) throw exc;
      this.reader = null;
      this.initProblem = `the init segment cannot be used (${exc.message})`;
    }
    return this.initProblem;
  }

  async fragment(bytes) {
    if (!this.reader) return { pass: false, verdicts: [new Verdict(Reason.FRAMING, this.initProblem)] };
    const verdicts = [];
    const inBand = [];
    for (const segment of this.reader.segments(bytes)) {
      const verdict = await this.verifier.verifySegment(segment);
      verdicts.push(verdict);
      if (verdict.accepted) inBand.push(...annexbUnits(verdict.verified).units);
    }
    let pass = verdicts.length > 0 && verdicts.every((v) => v.accepted);
    if (pass) {
      const foreign = this.reader.sets.filter((s) => !inBand.some((u) => sameBytes(u, s)));
      if (foreign.length) {
        pass = false;
        verdicts.push(new Verdict(Reason.FRAMING, "the init segment's parameter sets are not the camera's (the decoder would read them)"));
      }
    }
    return { pass, verdicts };
  }
}
