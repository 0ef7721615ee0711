// segbind verifier for browsers and Node, written from docs/FORMAT.md (format version 2).
//
// An ES module with no dependencies and no build step: SHA-256 and HMAC come from
// WebCrypto (globalThis.crypto.subtle: Node 20, chromium). It judges segments in
// every framing a web display meets:
//
//   - Annex-B H.264 and H.265, one segment (verifyAnnexB) or a stream cut back into
//     segments (annexbSegments);
//   - fragmented MP4 (CMAF, what hls.js hands to Media Source Extensions), through a
//     FragmentGate: read by segbind-mp4.js (the strict reader, the same reading as
//     segbind/read/mp4.py), cut into the camera's segments by SampleCutter (the rules of
//     segbind/read/cut.py, with its texts), each picture placed in the camera's order by
//     segbind-syntax.js (the slice headers and picture order counts of segbind_core), and
//     judged as segbind/verifier.py judges it: one reading, the decoders';
//
// and keeps the stream rules of FORMAT.md 7.2 per camera (StreamVerifier). Keys come
// only from a Keyring (filled from the owner's sealed grants: segbind-grants.js).
// Nothing here throws on bad input: every entry point that takes bytes gives a
// Verdict whose reason is one of Reason.

import { Mp4Reader } from "./segbind-mp4.js";
import { PastEnd, PictureClock, SyntaxFault, UNREADABLE, h264, h265 } from "./segbind-syntax.js";

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
// Bounds on one segment read from an Annex-B stream: beyond them it is refused and not kept
// (a container's: MAX_CUT_SEGMENT_BYTES, as Python's).
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
    this._form = null;       // accepted: the form that authenticated
  }

  get accepted() { return ACCEPTED.has(this.reason); }

  /** Accepted: the verified units in canonical form, the tag where the camera puts it (FORMAT.md 7.4). */
  get verified() { return this._form ? this._form.output() : null; }

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

const EMPTY = new Uint8Array(0);

function startsWithStartCode(buf, at) {
  return buf[at] === 0 && buf[at + 1] === 0 && buf[at + 2] === 0 && buf[at + 3] === 1;
}

/** Where 00 00 00 01 begins in buf[from:until], -1 when nowhere (Python's bytes.find). */
function findStartCode(buf, from, until = buf.length) {
  for (let i = Math.max(from, 0); i + 4 <= until; i++) {
    if (buf[i + 3] > 1) { i += 3; continue; }
    if (buf[i + 3] === 1 && buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 0) return i;
  }
  return -1;
}

/** Whether a unit is a segbind tag, read as every reader reads it: its first 24 bytes. */
function tagCodecOf(unit) { return tagCodec(unit.subarray(0, 24)); }

/**
 * A segment to verify in canonical form (FORMAT.md 4), its tag at [tagStart, tagEnd) with its
 * start code (tagStart -1: bytes holding no tag). Its bytes are kept as `data` (the whole form,
 * as an Annex-B caller gave it) or as `rest` and `tagBytes` (every byte but the tag's, which is
 * what the content digest covers: a container's segment is built so and hashed with no further
 * copy). As segbind/verifier.py Canonical:
 *   units     the NAL units other than the tag as the framing delimits them (null: unknown);
 *   exact     the bytes are in canonical form (false: taken as they arrived, hashed as they are);
 *   timing    what a container says of its timing (FORMAT.md 7.5), or null (Annex-B);
 *   problem   a framing defect that refuses it whatever its tag (problemReason: framing | timing);
 *   restore   the parameter sets in force, to put back where a packager stripped them;
 *   required  units a container hands decoders apart from the samples (its avcC/hvcC): each
 *             must be one the camera tagged in this segment's head.
 */
class Canonical {
  constructor({ data = null, rest = null, tagBytes = EMPTY, tagStart, tagEnd, units = null, timing = null,
    problem = "", problemReason = Reason.FRAMING, restore = [], codec = 0, required = [], exact = true }) {
    this._data = data;
    this._rest = rest;
    this._tagBytes = tagBytes;
    this._head = null;
    Object.assign(this, { tagStart, tagEnd, units, timing, problem, problemReason, restore, codec, required, exact });
  }

  /** The whole canonical form, the tag included. */
  get data() {
    if (this._data === null) {
      const at = this.tagStart;
      this._data = at < 0 ? this._rest : concatBytes([this._rest.subarray(0, at), this._tagBytes, this._rest.subarray(at)]);
    }
    return this._data;
  }

  /** Every byte but the tag's: what the content digest covers. */
  get rest() {
    if (this._rest === null) {
      const data = this._data;
      this._rest = this.tagStart < 0 ? data : concatBytes([data.subarray(0, this.tagStart), data.subarray(this.tagEnd)]);
    }
    return this._rest;
  }

  /** The first bytes (where the head's parameter sets are), without joining the rest. */
  head(limit = 65536) {
    if (this._data !== null || this.tagStart < 0) return this.data.subarray(0, limit);
    if (this._head && this._head[0] === limit) return this._head[1];  // read twice: sets in force, then required units
    const rest = this._rest;
    const at = Math.min(this.tagStart, limit);
    const head = concatBytes([rest.subarray(0, at), this._tagBytes.subarray(0, limit - at),
      rest.subarray(at, Math.max(at, limit - this._tagBytes.length))]);
    this._head = [limit, head];
    return head;
  }

  /** The tag's NAL unit, without its start code and any zero bytes after it. */
  get tagNal() {
    const unit = this._data !== null ? this._data.subarray(this.tagStart, this.tagEnd) : this._tagBytes;
    const nal = startsWithStartCode(unit, 0) ? unit.subarray(4) : unit.subarray(3);
    let end = nal.length;
    while (end > 0 && nal[end - 1] === 0) end--;
    return nal.subarray(0, end);
  }

  /**
   * What a decoder is handed (FORMAT.md 7.4): the canonical form with the tag where the camera
   * puts it, right after the first unit when that is a delimiter, else first.
   */
  output() {
    const data = this.data;
    if (this.tagStart < 0) return data;
    const tag = concatBytes([START_CODE, this.tagNal]);
    const codec = this.codec || tagCodec(this.tagNal);
    const exactTag = this.tagEnd - this.tagStart === tag.length && sameBytes(data.subarray(this.tagStart, this.tagEnd), tag);
    if (exactTag && this.tagStart && findStartCode(data, 4, this.tagStart + 4) === this.tagStart
        && isDelimiter(data.subarray(4, this.tagStart), codec)) {
      return data;  // as the camera emits it: the tag right after the delimiter
    }
    const rest = this.rest;
    let first = findStartCode(rest, 4);
    if (first < 0) first = rest.length;
    const place = isDelimiter(rest.subarray(4, first), codec) ? first : 0;
    if (place === this.tagStart && exactTag) return data;
    return concatBytes([rest.subarray(0, place), tag, rest.subarray(place)]);
  }

  /** From NAL units found in any framing; Refusal unless exactly one of them is a tag. */
  static ofUnits(units, fields = {}) {
    const tags = [];
    units.forEach((u, i) => { if (tagCodecOf(u)) tags.push(i); });
    if (!tags.length) {
      if (fields.problem) throw new Refusal(Reason.FRAMING, fields.problem);
      throw new Refusal(Reason.NO_TAG, units.length ? "segment carries no segbind tag" : "no NAL units in segment");
    }
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
    return new Canonical({ ...fields, data: concatBytes(parts), tagStart, tagEnd, units: units.length - 1,
      codec: tagCodecOf(units[tags[0]]) });
  }

  /** From Annex-B bytes in any framing; bytes other than zeros before the first start code are refused. */
  static ofAnnexB(buf) {
    const { units, leading } = annexbUnits(buf);
    if (leading) throw new Refusal(Reason.FRAMING, "bytes before the first NAL unit");
    return Canonical.ofUnits(units);
  }
}

/** An access unit delimiter: H.264 `09 xx` (2 bytes), H.265 `46 01 xx` (3 bytes). */
function isDelimiter(unit, codec) {
  if (codec === CODEC_H264) return unit.length === 2 && (unit[0] & 0x1f) === 9;
  return unit.length === 3 && ((unit[0] >> 1) & 0x3f) === 35;
}

/**
 * The tag's place when `buf` looks as the camera emits a segment (4-byte start codes, the tag
 * first or right after a delimiter): it is then hashed as it is, two ranges, no parsing
 * (FORMAT.md 4); else null (verifier.py _camera_shape).
 */
function asCameraEmits(buf) {
  if (buf.length < 28 || !startsWithStartCode(buf, 0)) return null;
  let start = 0;
  if (!tagCodec(buf.subarray(4, 28))) {
    const first = buf[4];
    if ((first & 0x1f) !== 9 && ((first >> 1) & 0x3f) !== 35) return null;  // an H.264 or H.265 delimiter
    start = findStartCode(buf, 5, 12);
    if (start < 0 || !tagCodec(buf.subarray(start + 4, start + 28))) return null;
  }
  const end = findStartCode(buf, start + 4);
  return new Canonical({ data: buf, tagStart: start, tagEnd: end >= 0 ? end : buf.length, exact: false });
}

// ---- parameter sets in a segment's head (segbind/framing.py) -----------------------------------------

const syntaxOf = (codec) => (codec === CODEC_H264 ? h264 : h265);
const kindOf = (header, codec) => (codec === CODEC_H264 ? header & 0x1f : (header >> 1) & 0x3f);

function isPicture(header, codec) {
  const kind = kindOf(header, codec);
  return codec === CODEC_H264 ? kind >= 1 && kind <= 5 : kind <= 31;
}

function isParameterSet(header, codec) {
  const kind = kindOf(header, codec);
  return codec === CODEC_H264 ? kind === 7 || kind === 8 : kind >= 32 && kind <= 34;
}

/** The units before the first picture of Annex-B bytes in any framing, at most `limit` start codes. */
function headUnits(data, codec, limit = 64) {
  const units = [];
  let pos = findStart3(data, 0);
  for (let count = 0; pos >= 0 && count < limit; count++) {
    const begin = pos + 3;
    // a unit whose first byte is not zero is not empty: a picture ends the head before its bytes are scanned
    if (begin < data.length && data[begin] !== 0 && isPicture(data[begin], codec)) break;
    const next = findStart3(data, begin);
    let end = next >= 0 ? next : data.length;
    while (end > begin && data[end - 1] === 0) end--;
    if (end > begin) {
      if (isPicture(data[begin], codec)) break;
      units.push(data.subarray(begin, end));
    }
    pos = next;
  }
  return units;
}

function findStart3(buf, from) {
  for (let i = from; i + 3 <= buf.length; i++) {
    if (buf[i + 2] > 1) { i += 2; continue; }
    if (buf[i + 2] === 1 && buf[i] === 0 && buf[i + 1] === 0) return i;
  }
  return -1;
}

function headParameterSets(data, codec) {
  return headUnits(data, codec).filter((u) => isParameterSet(u[0], codec));
}

/** The distinct units among `units` (the first of each), by their bytes. */
function distinct(units) {
  const seen = new Set();
  const out = [];
  for (const u of units) {
    const key = toHex(u);
    if (!seen.has(key)) { seen.add(key); out.push(u); }
  }
  return out;
}

/**
 * Whether exact copies among a head's parameter sets can be dropped with nothing a decoder sees
 * changed: every set of one kind and id in the head is the same bytes (framing.py _copies_droppable).
 */
function copiesDroppable(sets, codec) {
  const unique = distinct(sets);
  if (unique.length === sets.length) return false;
  const keys = new Set();
  for (const unit of unique) {
    try {
      keys.add(syntaxOf(codec).parameterSetKey(unit).join("/"));
    } catch (exc) {
      if (exc instanceof SyntaxFault || exc instanceof PastEnd) return false;
      throw exc;
    }
  }
  return keys.size === unique.length;
}

/** How many parameter sets in the head of Annex-B bytes are copies that headVariants drops. */
function repeatedSets(data, codec) {
  const sets = headUnits(data, codec).filter((u) => isParameterSet(u[0], codec));
  return copiesDroppable(sets, codec) ? sets.length - distinct(sets).length : 0;
}

/**
 * The segment (canonical, its tag at data[tagStart:tagEnd]) with its parameter sets put back
 * where the camera puts them, right after the tag: moved there from elsewhere in the head,
 * exact copies dropped (hevc_mp4toannexb adds them), or `restore` put there when the head has
 * none. At most one variant, as {data, tagStart, tagEnd, added} (framing.py head_variants);
 * nothing else is ever inserted or moved.
 */
function headVariants(data, tagStart, tagEnd, restore, codec) {
  const head = [];
  let pos = 0;
  let body = -1;
  while (pos < data.length) {
    const next = findStartCode(data, pos + 4);
    const end = next >= 0 ? next : data.length;
    if (pos + 4 < end && isPicture(data[pos + 4], codec)) { body = pos; break; }
    head.push([pos, end]);
    pos = end;
  }
  if (body < 0 || !head.some(([s]) => s === tagStart)) return [];
  const isSet = ([s, e]) => e > s + 4 && isParameterSet(data[s + 4], codec);
  let sets = head.filter(isSet).map(([s, e]) => data.subarray(s, e));
  const others = head.filter((unit) => !isSet(unit));
  const at = others.findIndex(([s]) => s === tagStart) + 1;
  let added = 0;
  if (copiesDroppable(sets.map((u) => u.subarray(4)), codec)) {
    const unique = distinct(sets);
    added = unique.length - sets.length;
    sets = unique;
  }
  if (!sets.length) {
    if (!restore.length) return [];
    sets = restore.map((u) => concatBytes([START_CODE, u]));
    added = sets.length;
  }
  const before = concatBytes(others.slice(0, at).map(([s, e]) => data.subarray(s, e)));
  const moved = concatBytes([before, ...sets, ...others.slice(at).map(([s, e]) => data.subarray(s, e)), data.subarray(body)]);
  if (sameBytes(moved, data)) return [];
  const start = before.length - (tagEnd - tagStart);
  return [{ data: moved, tagStart: start, tagEnd: start + tagEnd - tagStart, added }];
}

// ---- checks 1 to 8 of FORMAT.md 7.1 --------------------------------------------------------------------

/** Python's "%.0f": the nearest integer, exact ties to even. */
function fixed0(x) {
  const floor = Math.floor(x);
  const d = x - floor;
  const n = d > 0.5 ? floor + 1 : d < 0.5 ? floor : floor % 2 === 0 ? floor : floor + 1;
  return String(n === 0 ? 0 : n);
}

/**
 * What a container says of a segment's timing (verifier.py Timing.of_pictures): its pictures,
 * their presentation span plus the last one's duration, how many it hides, one picture's
 * duration; per picture in decoding order its presentation time and its order key ([run,
 * count], null when not output, UNREADABLE). Times in ms from ticks of `timescale`.
 */
function timingOfPictures(pictures, timescale) {
  const scale = timescale ? 1000 / timescale : 0;
  const times = pictures.map((p) => p.pts * scale);
  let frame = 0;
  for (let k = pictures.length - 1; k >= 0; k--) if (pictures[k].duration) { frame = pictures[k].duration; break; }
  frame *= scale;
  let low = Infinity;
  let last = 0;
  times.forEach((t, k) => {
    if (t < low) low = t;
    if (t > times[last]) last = k;
  });
  if (!frame && times.length > 1) frame = (times[last] - low) / (times.length - 1);
  const span = times[last] - low + ((pictures[last].duration * scale) || frame);
  return { samples: pictures.length, durationMs: span, hidden: pictures.filter((p) => p.hidden).length, frameMs: frame,
    timesMs: times, order: pictures.map((p) => p.key) };
}

function compareKeys(a, b) { return a[0] - b[0] || a[1] - b[1]; }

function largest(values) {
  let most = -Infinity;
  for (const v of values) if (v > most) most = v;
  return most;
}

function smallest(values) {
  let least = Infinity;
  for (const v of values) if (v < least) least = v;
  return least;
}

/**
 * The picture a container presents farthest from its place, when beyond the tolerance:
 * [its rank in the camera's order, how far in ms, the tolerance]; null when every picture is
 * in place (verifier.py picture_displacement, FORMAT.md 7.5). Pictures not output take no place.
 */
export function pictureDisplacement(timing) {
  const times = [];
  const keys = [];
  timing.order.forEach((key, k) => { if (key !== null) { times.push(timing.timesMs[k]); keys.push(key); } });
  const n = times.length;
  if (n < 2) return null;
  const ranked = [...keys.keys()].sort((i, j) => compareKeys(keys[i], keys[j]) || i - j);
  const rank = new Array(n);
  ranked.forEach((index, position) => { rank[index] = position; });
  let depth = 0;
  for (let i = 0; i < n; i++) depth = Math.max(depth, Math.abs(i - rank[i]));
  const step = (largest(times) - smallest(times)) / (n - 1);
  const allowed = depth * step + Math.max(step / 2, 1.0);
  const offsets = times.map((t, i) => t - rank[i] * step);  // where each puts the segment's start
  const center = (largest(offsets) + smallest(offsets)) / 2;
  let worst = 0;
  for (let i = 1; i < n; i++) if (Math.abs(offsets[i] - center) > Math.abs(offsets[worst] - center)) worst = i;
  const off = Math.abs(offsets[worst] - center);
  return off > allowed ? [rank[worst], off, allowed] : null;
}

/**
 * FORMAT.md 7.5: the container presents the tagged number of pictures over the tagged duration,
 * each in its place in the camera's picture order; a note ("" when none) when it hides pictures
 * before its presentation begins (verifier.py _check_timing).
 */
function checkTiming(tag, timing) {
  if (timing.samples !== tag.pictures) {
    throw new Refusal(Reason.TIMING, `${timing.samples} pictures where the camera tagged ${tag.pictures}`, tag);
  }
  const slack = Math.max(timing.frameMs, tag.pictures ? tag.durationMs / tag.pictures : 0, 0.1 * tag.durationMs) + 1;
  if (Math.abs(timing.durationMs - tag.durationMs) > slack) {
    throw new Refusal(Reason.TIMING, `the container plays it in ${fixed0(timing.durationMs)} ms; the camera captured ${tag.durationMs} ms`, tag);
  }
  const unreadable = timing.order.filter((key) => key === UNREADABLE).length;
  if (unreadable) {
    throw new Refusal(Reason.TIMING, `the picture order of ${unreadable} picture(s) cannot be read: where the container presents them cannot be checked`, tag);
  }
  const misplaced = pictureDisplacement(timing);
  if (misplaced) {
    const [picture, offMs, allowedMs] = misplaced;
    throw new Refusal(Reason.TIMING, `the container presents picture ${picture} of the camera's order ${fixed0(offMs)} ms from its place (${fixed0(allowedMs)} ms allowed)`, tag);
  }
  return timing.hidden ? `the container hides ${timing.hidden} of its ${timing.samples} pictures (an edit list)` : "";
}

/** The decoder configuration record's units are read by decoders: each must be one the camera tagged in the head. */
function checkRequired(tag, seg) {
  const head = headUnits(seg.head(), tag.codec);
  const untagged = seg.required.filter((unit) => !head.some((u) => sameBytes(u, unit))).length;
  if (untagged) {
    throw new Refusal(Reason.FRAMING, `the container's sample description holds ${untagged} unit(s) the camera did not tag in this segment's head`, tag);
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

/** Checks 1 to 8 on canonical segments, against a keyring; no stream state (verifier.py Authenticator). */
export class Authenticator {
  constructor(keyring, window = null) {
    this.keyring = keyring;
    this.window = window;
  }

  tagOf(seg) {
    if (seg.tagStart < 0) {  // refused as no tag, or for what its reader found (framing or timing)
      if (seg.problem) throw new Refusal(seg.problemReason === Reason.TIMING ? Reason.TIMING : Reason.FRAMING, seg.problem);
      throw new Refusal(Reason.NO_TAG, "segment carries no segbind tag");
    }
    const unit = seg.tagNal;
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

  /** Checks 1 to 8 on the segment as it is: {tag, digest, mac, note, form}, or a Refusal. */
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
    if (seg.problem) throw new Refusal(seg.problemReason === Reason.TIMING ? Reason.TIMING : Reason.FRAMING, seg.problem, tag);
    const digest = await sha256(seg.rest);
    if (seg.units !== null && seg.units !== tag.units) {
      if (constantTimeEqual(digest.subarray(0, HINT_SIZE), tag.hint)) {
        throw new Refusal(Reason.FRAMING, `the framing delimits ${seg.units} NAL units where the camera tagged ${tag.units}`, tag);
      }
      throw new Refusal(Reason.CONTENT_MISMATCH, `${seg.units} NAL units where the camera tagged ${tag.units}`, tag);
    }
    const full = new Uint8Array(await subtle.sign("HMAC", grant.hmac, concatBytes([signed, digest])));
    const mac = full.subarray(0, MAC_SIZE);
    if (!constantTimeEqual(mac, tag.macs[grant.slot])) {
      if (!constantTimeEqual(digest.subarray(0, HINT_SIZE), tag.hint)) {
        throw new Refusal(Reason.CONTENT_MISMATCH, "video content differs from what the camera tagged", tag);
      }
      throw new Refusal(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key", tag);
    }
    if (seg.required.length) checkRequired(tag, seg);
    const note = seg.timing ? checkTiming(tag, seg.timing) : "";
    if (this.window) checkWindow(this.window, tag, nowS);
    return { tag, digest, mac: mac.slice(), note, form: seg };
  }

  /**
   * authenticate, and when only the content mismatched: the segment read into canonical form
   * (when it was taken as it arrived), then with its parameter sets put back where the camera
   * put them (docs/CONTAINERS.md). The result's form is the one that passed (verifier.py judge).
   */
  async judge(seg, nowS) {
    let first;
    try {
      return await this.authenticate(seg, nowS);
    } catch (exc) {
      if (!(exc instanceof Refusal) || exc.reason !== Reason.CONTENT_MISMATCH) throw exc;
      first = exc;
    }
    let tried = seg;
    if (!seg.exact) {
      tried = Canonical.ofAnnexB(seg.data);  // several tags, once split, are malformed_tag
      Object.assign(tried, { timing: seg.timing, problem: seg.problem, restore: seg.restore,
        problemReason: seg.problemReason, required: seg.required });
      if (!sameBytes(tried.data, seg.data)) {
        try {
          return await this.authenticate(tried, nowS);
        } catch (exc) {
          if (!(exc instanceof Refusal) || exc.reason !== Reason.CONTENT_MISMATCH) throw exc;
        }
      }
    }
    for (const variant of headVariants(tried.data, tried.tagStart, tried.tagEnd, tried.restore, tried.codec || tagCodec(tried.tagNal))) {
      const other = new Canonical({ data: variant.data, tagStart: variant.tagStart, tagEnd: variant.tagEnd,
        units: tried.units === null ? null : tried.units + variant.added, timing: tried.timing, problem: tried.problem,
        problemReason: tried.problemReason, codec: tried.codec, required: tried.required });
      try {
        return await this.authenticate(other, nowS);
      } catch (exc) {
        if (!(exc instanceof Refusal) || exc.reason !== Reason.CONTENT_MISMATCH) throw exc;
      }
    }
    throw first;
  }

  /** A segment given as Annex-B bytes: hashed as it is when it looks as the camera emits it, else read into canonical form. */
  authenticateAnnexB(buf, nowS) {
    return this.judge(asCameraEmits(buf) ?? Canonical.ofAnnexB(buf), nowS);
  }
}

// ---- Annex-B streams: NAL units in order -> tagged segments ---------------------------------------------

/** The [kind, id] of a parameter set, to keep the latest of each; null when unreadable. */
function parameterSetKey(unit, codec) {
  try {
    return syntaxOf(codec).parameterSetKey(unit);
  } catch (exc) {
    if (exc instanceof SyntaxFault || exc instanceof PastEnd) return null;
    throw exc;
  }
}

/**
 * One tagged segment of an Annex-B stream as the Regrouper found it: its NAL units in order,
 * the parameter sets in force at its start (to put back where a packager stripped them), and a
 * framing defect that refuses it whatever its tag says.
 */
export class Segment {
  constructor(units, codec, restore = [], timing = null, problem = "") {
    Object.assign(this, { units, codec, restore, timing, problem });
  }

  canonical() {
    return Canonical.ofUnits(this.units, { timing: this.timing, problem: this.problem, restore: this.restore });
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

// ---- a container's samples -> the segments the camera tagged (segbind/read/cut.py) ----------------------------
//
// The rules every container's samples obey, with Python's texts: a sample is one whole access
// unit as the camera emitted it (it begins with its delimiter and holds no other; H.264: or the
// two fields of one frame), no start code hides in a unit other than a picture, a delimiter has
// its codec's length, the length prefixes tile the sample, the decoder configuration record's
// units must be ones the camera tagged in the head, a segment of the other codec in a track is
// refused, pictures hidden by an edit list are taken only before the presentation begins, and
// each picture's presentation time goes with its place in the camera's picture order.

// Bound on one segment read from a container (split.py MAX_SEGMENT_BYTES): beyond it the
// segment is refused and its bytes are not kept.
export const MAX_CUT_SEGMENT_BYTES = 64 * 1024 * 1024;
const TIMING = Reason.TIMING;
const FRAMING = Reason.FRAMING;

// What each NAL header byte is, per codec; a tag is looked for behind either codec's SEI header
// whatever the track's codec (a tag of the other codec in a track is found, and refused).
const OTHER_UNIT = 0;
const DELIMITER = 1;
const PICTURE = 2;
const PARAMETER_SET = 3;
const SEI_UNIT = 4;
const END_OF_SEQUENCE = 5;

function unitClasses(codec) {
  const table = new Uint8Array(256);
  for (let byte = 0; byte < 256; byte++) {
    if (codec === CODEC_H264) {
      const kind = byte & 0x1f;
      table[byte] = kind === 9 ? DELIMITER : kind >= 1 && kind <= 5 ? PICTURE : kind === 7 || kind === 8 ? PARAMETER_SET
        : byte === 0x06 ? SEI_UNIT : kind === 10 ? END_OF_SEQUENCE : OTHER_UNIT;
    } else {
      const kind = (byte >> 1) & 0x3f;
      table[byte] = kind === 35 ? DELIMITER : kind <= 31 ? PICTURE : kind >= 32 && kind <= 34 ? PARAMETER_SET
        : byte === 0x4e ? SEI_UNIT : kind === 36 ? END_OF_SEQUENCE : OTHER_UNIT;
    }
  }
  return table;
}

const CLASSES = { [CODEC_H264]: unitClasses(CODEC_H264), [CODEC_H265]: unitClasses(CODEC_H265) };

/** Where 00 00 00, 00 00 01 or 00 00 02 occurs in data[begin:end] (0 when nowhere: a unit never begins with a zero). */
function hiddenStartCode(data, begin, end) {
  for (let i = begin; i + 3 <= end; i++) {
    if (data[i + 2] > 2) { i += 2; continue; }
    if (data[i] === 0 && data[i + 1] === 0) return i;
  }
  return 0;
}

/** The length of the NAL unit at `pos` of a length-prefixed sample. */
function lengthAt(data, pos, lengthSize) {
  let size = 0;
  for (let k = 0; k < lengthSize; k++) size = size * 256 + data[pos + k];
  return size;
}

/** The end of a unit data[begin:end] without its trailing zero bytes (begin when it holds zeros only). */
function unitEnd(data, begin, end) {
  let last = end;
  while (last > begin && data[last - 1] === 0) last--;
  return last;
}

/**
 * What one length-prefixed sample holds, read once (cut.py scan_prefixed and _unit): its units,
 * where its tags begin (offsets in its canonical form, after the start code), its pictures
 * ([order key, field] from each access unit's first slice), its delimiters, whether pictures
 * come before its first tag, its canonical size, a `defect` when its units cannot be told apart
 * and the first `rule` it breaks ("" when none). The lengths must tile it exactly.
 */
function scanPrefixed(data, lengthSize, classes, clock) {
  const scan = { size: 0, units: 0, tags: [], pictures: [], delimiters: 0, beforeTag: false, defect: "", rule: "" };
  const n = data.length;
  const delimiterSize = clock.codec === CODEC_H264 ? 2 : 3;
  let pos = 0;
  let at = 0;
  let inAccessUnit = 0;  // picture units so far in the current access unit
  while (pos < n) {
    const begin = pos + lengthSize;
    if (begin > n) { scan.defect = "a sample ends inside a NAL length prefix"; return scan; }
    const size = lengthAt(data, pos, lengthSize);
    const end = begin + size;
    if (size === 0) { scan.defect = "a sample holds an empty NAL unit"; return scan; }
    if (end > n) { scan.defect = `a NAL length runs ${end - n} bytes past the end of its sample`; return scan; }
    const last = unitEnd(data, begin, end);
    if (last === begin) { scan.defect = "a sample holds a NAL unit of zero bytes only"; return scan; }
    pos = end;
    const header = data[begin];
    at += 4;
    if ((header === 0x06 || header === 0x4e) && last - begin > 20 && data[begin + (header === 0x06 ? 1 : 2)] === 5
        && tagCodec(data.subarray(begin, begin + 24))) {
      if (scan.pictures.length && !scan.tags.length) scan.beforeTag = true;
      if (scan.units === 0) scan.rule ||= "a sample begins with a tag, not with the delimiter the camera puts first";
      scan.tags.push(at);
      scan.units++;
      at += last - begin;
      continue;
    }
    const kind = classes[header];
    if (scan.units === 0 && kind !== DELIMITER) {
      scan.rule ||= "a sample does not begin with an access unit delimiter: it is not one whole access unit as the camera emitted it";
    }
    scan.units++;
    at += last - begin;
    if (kind === PICTURE) {
      if (inAccessUnit === 0) scan.pictures.push(clock.picture(data.subarray(begin, last)));
      inAccessUnit++;
      continue;
    }
    // Units other than pictures are small: a start code hidden in one (which emulation prevention
    // keeps out of every valid unit) would be split there by a decoder, or a transmuxer to Annex-B.
    const hidden = hiddenStartCode(data, begin, last);
    if (hidden) scan.rule ||= `a NAL unit holds a start code (00 00 0${data[hidden + 2]}): a decoder splits it there`;
    if (kind === DELIMITER) {
      scan.delimiters++;
      inAccessUnit = 0;
      if (last - begin !== delimiterSize) scan.rule ||= `an access unit delimiter of ${last - begin} bytes`;
    } else if (kind === PARAMETER_SET) {
      clock.parameterSet(data.subarray(begin, last));
    } else if (kind === END_OF_SEQUENCE) {
      clock.endOfSequence();
    }
  }
  scan.size = at;
  return scan;
}

/**
 * The first `limit` bytes of a (well-tiled) length-prefixed sample's canonical form; with
 * `classes`, only up to the header byte of its first picture unit (what the head is read from:
 * the rest would be scanned for nothing).
 */
function canonicalHead(data, lengthSize, limit, classes = null) {
  const out = new Uint8Array(Math.min(limit, 4 * data.length + 4));
  let at = 0;
  for (let pos = 0; pos < data.length && at < limit;) {
    const begin = pos + lengthSize;
    const end = begin + lengthAt(data, pos, lengthSize);
    const last = classes !== null && classes[data[begin]] === PICTURE ? begin + 1 : unitEnd(data, begin, end);
    const code = START_CODE.subarray(0, Math.min(4, limit - at));
    out.set(code, at);
    at += code.length;
    const unit = data.subarray(begin, Math.min(last, begin + limit - at));
    out.set(unit, at);
    at += unit.length;
    if (last === begin + 1 && classes !== null && classes[data[begin]] === PICTURE) break;
    pos = end;
  }
  return out.subarray(0, at);
}

/** The units a tag NAL unit says its segment holds (but the tag), -1 when it cannot be read. */
function unitsInTag(nal) {
  try {
    return decodeTag(tagBody(nal, tagCodec(nal))).tag.units;
  } catch (exc) {
    if (exc instanceof TagError) return -1;
    throw exc;
  }
}

/**
 * Cuts one container reader's events (segbind-mp4.js: track, sample, defect) into Canonical
 * segments, checking the rules above: feed(event) returns the segments it completed, finish()
 * the rest (cut.py SampleCutter). A segment is complete when it holds as many units as its tag
 * says (copies of its head's parameter sets a remuxer added not counted), else when the next
 * tag begins. Samples before the first tag form a segment of their own (refused: no tag).
 * Memory: the segment's canonical bytes, built once, the tag left out (what is hashed). With
 * `scratch` (an object the caller keeps: {buf}), every segment is built in one reused buffer:
 * a segment's bytes are then valid only until the next segment is cut (a gate that verifies each
 * segment before it reads on allocates, and the browser faults in, no fresh memory per segment).
 */
export class SampleCutter {
  constructor(maxSegmentBytes = MAX_CUT_SEGMENT_BYTES, videoOnly = false, scratch = null) {
    this.maxSegmentBytes = maxSegmentBytes;
    this.videoOnly = videoOnly;
    this._scratch = scratch;
    this.track = null;
    this._classes = CLASSES[CODEC_H264];
    this._clock = null;
    this._trackProblem = "";
    this._required = [];
    this._sets = [];        // the parameter sets in force (to restore a stripped head)
    this._presented = false;  // a sample of this track was presented (not hidden) already
    this._out = [];
    this._resetPending();
  }

  _resetPending() {
    this._buf = this._scratch ? this._scratch.buf || EMPTY : EMPTY;  // the canonical form but the tag's bytes, _restSize of them
    this._restSize = 0;
    this._size = 0;         // canonical bytes kept, the tag's included
    this._units = 0;
    this._pictures = [];
    this._samples = 0;
    this._tag = -1;
    this._tagEnd = -1;
    this._tagBytes = EMPTY;
    this._codec = 0;
    this._expect = -1;
    this._repeats = 0;
    this._problem = "";
    this._problemReason = FRAMING;
    this._oversized = false;
  }

  feed(event) {
    if (event.type === "sample") this._sample(event);
    else if (event.type === "track") this._track(event);
    else if (event.type === "defect") this.defect(event.text, event.reason);
    const out = this._out;
    this._out = [];
    return out;
  }

  /** The pending segment is refused, whatever its tag (reason: framing or timing). */
  defect(text, reason = FRAMING) {
    if (!this._problem) {
      this._problem = text;
      this._problemReason = reason;
    }
  }

  finish() {
    if (this._size || this._problem || this._samples) this._close();
    const out = this._out;
    this._out = [];
    return out;
  }

  _track(info) {
    if (this._size || this._samples) this._close();
    this.track = info;
    this._presented = false;
    if (!info.codec) {
      this._trackProblem = `the video track is ${info.codecName}, not H.264 or H.265`;
    } else if (info.otherVideo) {
      this._trackProblem = `the container holds another video track, never verified: ${info.others.filter((o) => o.startsWith("video")).join(", ")}`;
    } else if (info.others.length && !this.videoOnly) {
      this._trackProblem = `the container holds other tracks, never verified: ${info.others.join(", ")}`;
    } else {
      this._trackProblem = "";
    }
    const codec = info.codec || CODEC_H264;
    this._classes = CLASSES[codec];
    // the record's units as the camera tagged them: zero bytes after a unit are the muxer's
    const config = info.configUnits.map((u) => u.subarray(0, unitEnd(u, 0, u.length)));
    this._clock = new PictureClock(codec, config);
    this._required = info.lengthSize ? config : [];  // a decoder reads them before any sample
    const sets = config.filter((u) => u.length && this._classes[u[0]] === PARAMETER_SET);
    if (sets.length) this._sets = sets;
  }

  _sample(sample) {
    const info = this.track;
    const clock = this._clock;
    if (info === null || clock === null) throw new Error("a sample before its track");
    const data = sample.data;
    const lengthSize = info.lengthSize;
    if (!lengthSize) {  // Annex-B samples (MPEG-TS) come through no reader of this gate
      this.defect("a sample that is not length-prefixed");
      return;
    }
    const scan = scanPrefixed(data, lengthSize, this._classes, clock);
    if (scan.defect) {
      this.defect(scan.defect);  // its units cannot be told apart: not kept
      return;
    }
    let skip = null;  // the tag's bytes, in this sample's canonical form: not in what is hashed
    if (scan.tags.length) skip = this._tagInSample(scan, data, lengthSize);
    if (this._tag >= 0) {  // a run before the first tag is refused as untagged, whatever it holds
      if (scan.rule) {
        this.defect(scan.rule);
      } else if (scan.delimiters > 1 && !this._fieldPair(scan)) {
        this.defect(`a sample holds ${scan.delimiters} access units (a sample is one access unit, or the two fields of one frame)`);
      } else if (scan.pictures.length !== Math.max(1, scan.delimiters)) {
        this.defect(`a sample holds ${scan.pictures.length} pictures in ${scan.delimiters} access unit(s)`);
      }
    }
    if (this._size + scan.size > this.maxSegmentBytes) {
      if (!this._oversized) this.defect(`segment larger than ${this.maxSegmentBytes >> 20} MiB`);
      this._oversized = true;
    } else {
      this._keep(data, lengthSize, scan.size, skip);
      this._size += scan.size;
    }
    this._units += scan.units;
    this._samples++;
    if (sample.hidden && this._presented) {
      // An edit list hides the pictures before the presentation starts (the B-frame delay, a
      // cut): those are the camera's, decoded and not shown. Hidden after a shown one, a picture
      // vanishes from the middle of what the camera captured.
      this.defect("the container hides a picture after its presentation began", TIMING);
    }
    this._presented = this._presented || !sample.hidden;
    const key = scan.pictures.length ? scan.pictures[0][0] : UNREADABLE;
    this._pictures.push({ pts: sample.pts, duration: sample.duration, hidden: sample.hidden, key });
    if (this._tag >= 0 && this._expect >= 0 && this._expect < this._units - this._repeats) this._close();
  }

  /** Appends a sample's canonical form but the bytes in `skip` ([from, to) of it) to the segment. */
  _keep(data, lengthSize, size, skip) {
    const [from, to] = skip || [0, 0];
    const needed = this._restSize + size - (to - from);
    if (needed > this._buf.length) {
      const grown = new Uint8Array(Math.max(needed, Math.min(2 * this._buf.length, this.maxSegmentBytes), 4096));
      grown.set(this._buf.subarray(0, this._restSize));
      this._buf = grown;
      if (this._scratch) this._scratch.buf = grown;
    }
    const buf = this._buf;
    let out = this._restSize;
    let at = 0;  // in this sample's canonical form
    const put = (source, begin, end) => {  // source[begin:end] at `at`, but what falls in [from, to)
      const length = end - begin;
      if (at + length <= from || at >= to) {
        buf.set(source.subarray(begin, end), out);
        out += length;
      } else {
        const headLength = Math.max(0, from - at);
        buf.set(source.subarray(begin, begin + headLength), out);
        out += headLength;
        const tail = Math.max(0, at + length - to);
        buf.set(source.subarray(end - tail, end), out);
        out += tail;
      }
      at += length;
    };
    for (let pos = 0; pos < data.length;) {
      const begin = pos + lengthSize;
      const end = begin + lengthAt(data, pos, lengthSize);
      const last = unitEnd(data, begin, end);
      if (skip === null) {
        buf.set(START_CODE, out);
        buf.set(data.subarray(begin, last), out + 4);
        out += 4 + last - begin;
      } else {
        put(START_CODE, 0, 4);
        put(data, begin, last);
      }
      pos = end;
    }
    this._restSize = out;
  }

  /** Two access units of H.264 fields of opposite parity in one sample: one frame, one picture. */
  _fieldPair(scan) {
    return this.track !== null && this.track.codec === CODEC_H264 && scan.delimiters === 2 && scan.pictures.length === 2
      && scan.pictures[0][1] + scan.pictures[1][1] === 3 && scan.pictures[0][1] !== scan.pictures[1][1];
  }

  /** A sample holding a tag begins a segment; returns the tag's bytes' range in the sample's canonical form. */
  _tagInSample(scan, data, lengthSize) {
    const first = scan.tags[0];
    if (this._size || this._samples) this._close();
    if (scan.beforeTag) {
      this.defect("a sample holds picture units before its segment's tag (two access units in one sample, or units hidden behind start codes)");
    }
    if (scan.tags.length > 1) this.defect(`a sample holds ${scan.tags.length} segbind tags`);
    const head = canonicalHead(data, lengthSize, first + 1024);
    const next = findStartCode(head, first);
    this._tag = first - 4;
    this._tagEnd = next >= 0 ? next : head.length;
    this._codec = tagCodec(head.subarray(first, first + 24));
    this._expect = unitsInTag(head.subarray(first, this._tagEnd));
    // the head is read as framing.py reads it: a codec other than H.264 (none: 0) by H.265's unit types
    const headClasses = CLASSES[this._codec === CODEC_H264 ? CODEC_H264 : CODEC_H265];
    this._repeats = repeatedSets(canonicalHead(data, lengthSize, 65536, headClasses), this._codec);
    if (this._size + scan.size <= this.maxSegmentBytes) this._tagBytes = head.slice(this._tag, this._tagEnd);
    return [this._tag, this._tagEnd];
  }

  _close() {
    const problem = this._problem || this._trackProblem;
    const reason = this._problem ? this._problemReason : FRAMING;
    const info = this.track;
    const timing = this._pictures.length && info !== null ? timingOfPictures(this._pictures, info.timescale) : null;
    const rest = this._buf.subarray(0, this._restSize);
    let seg;
    if (this._tag >= 0) {
      seg = new Canonical({ rest, tagBytes: this._tagBytes, tagStart: this._tag, tagEnd: this._tagEnd, units: this._units - 1,
        timing, problem, problemReason: reason, restore: this._sets, codec: this._codec, required: this._required });
      const found = headParameterSets(seg.head(65536), this._codec);
      if (found.length) this._sets = found.map((u) => u.slice());
      if (info !== null && info.codec && this._codec && this._codec !== info.codec) {
        seg.problemReason = FRAMING;  // the root of whatever else was found in its samples
        seg.problem = `an ${CODEC_NAMES[this._codec]} segment in an ${CODEC_NAMES[info.codec]} track (a decoder reads it as ${CODEC_NAMES[info.codec]})`;
      }
    } else {
      seg = new Canonical({ rest, tagStart: -1, tagEnd: -1, units: this._units, timing, problem, problemReason: reason });
    }
    if (this._size || problem) this._out.push(seg);
    this._resetPending();
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

  /** The verdict on a segment of an Annex-B stream (annexbSegments). */
  verifySegment(segment) {
    return this._serial(async () => this._judge(() => this.auth.judge(segment.canonical(), this._now())));
  }

  /** The verdict on a segment a container's samples were cut into (SampleCutter). */
  verifyCanonical(canonical) {
    return this._serial(async () => this._judge(() => this.auth.judge(canonical, this._now())));
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
    if (verdict.accepted) {
      verdict._form = found.form;
      if (found.note) verdict.detail = [verdict.detail, found.note].filter(Boolean).join("; ");
    }
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

const errorText = (exc) => (exc && exc.message ? exc.message : String(exc));

// segbind/read/mp4.py refuses a sample an edit list hides in a fragment (FFmpeg reads fragments
// without the edit list's discard flag: it shows what Chromium hides) and does not hand it on.
// segbind-mp4.js still hands such a sample on, marked hidden: the gate reads it as read.mp4 does
// until the reader itself refuses it.
const HIDDEN_IN_FRAGMENT = Object.freeze({ type: "defect", text: "an edit list hides a picture of a fragment (FFmpeg shows it)",
  reason: Reason.TIMING, fatal: false });

/**
 * Verifies the fragments of one fMP4 feed before they reach a decoder (what a display's
 * fragment loader calls). `init(bytes)` takes the init segment and returns "" or why it cannot
 * be used; `fragment(bytes)` returns {pass, verdicts}: pass is true only when the fragment holds
 * at least one segment and every segment in it is accepted. A refused fragment must not be
 * appended. Each fragment is read as the init segment followed by that fragment (as
 * `segbind verify init.mp4 fragment.m4s` reads it): a fragment loaded again, or out of order,
 * is read the same way, with the init segment given last before the call. Fragments are judged
 * one after the other in the order of the calls, whatever WebCrypto's timing. Each segment's
 * verdict counts for the stream as given: a fragment whose first segment is accepted and second
 * refused is held whole, its first segment still seen. Never throws; the bytes given are never
 * changed.
 */
export class FragmentGate {
  constructor(verifier) {
    this.verifier = verifier;
    this.initBytes = null;
    this.initProblem = "no init segment yet";
    this._scratch = { buf: null };  // one segment's canonical bytes, reused from fragment to fragment
    this._queue = Promise.resolve();  // one fragment at a time: they share the scratch buffer
  }

  /** Whether an init segment that can be read was given. */
  get ready() { return this.initBytes !== null; }

  init(bytes) {
    this.initBytes = null;
    try {
      if (!(bytes instanceof Uint8Array)) throw new TypeError("an init segment is bytes");
      const error = new Mp4Reader().init(bytes).find((e) => e.type === "error");
      if (error) {
        this.initProblem = `the init segment cannot be used (${error.text})`;
      } else {
        this.initBytes = bytes.slice();  // the loader's buffer is the player's
        this.initProblem = "";
      }
    } catch (exc) {
      this.initProblem = `the init segment cannot be used (${errorText(exc)})`;
    }
    return this.initProblem;
  }

  fragment(bytes) {
    const [init, problem] = [this.initBytes, this.initProblem];
    const run = this._queue.then(async () => {
      try {
        if (!(bytes instanceof Uint8Array)) return { pass: false, verdicts: [new Verdict(Reason.FRAMING, "a fragment is bytes")] };
        if (!init) return { pass: false, verdicts: [new Verdict(Reason.FRAMING, problem)] };
        const verdicts = await this._verdicts(init, bytes);
        return { pass: verdicts.length > 0 && verdicts.every((v) => v.accepted), verdicts };
      } catch (exc) {  // never expected: a refusal rather than an exception out of the gate
        return { pass: false, verdicts: [new Verdict(Reason.FRAMING, `the fragment cannot be verified (${errorText(exc)})`)] };
      }
    });
    this._queue = run;
    return run;
  }

  async _verdicts(init, bytes) {
    const reader = new Mp4Reader();
    const events = [reader.init(init), reader.fragment(bytes)];  // as the init segment followed by the fragment
    const error = events.flatMap((list) => list.filter((e) => e.type === "error"))[0];
    if (error) return [new Verdict(Reason.FRAMING, error.text)];
    const scratch = this._scratch;
    if (!scratch.buf || scratch.buf.length < bytes.length) {  // one segment's bytes fit its fragment's
      scratch.buf = new Uint8Array(Math.min(bytes.length, MAX_CUT_SEGMENT_BYTES));
    }
    const cutter = new SampleCutter(MAX_CUT_SEGMENT_BYTES, false, scratch);
    const verdicts = [];
    const judge = async (segment) => {
      const verdict = await this.verifier.verifyCanonical(segment);
      verdict._form = null;  // its bytes are the scratch buffer's: the fragment is what a decoder gets
      verdicts.push(verdict);
    };
    let samples = 0;
    let codec = 0;
    for (const list of events) {
      for (let event of list) {
        if (event.type === "sample" && event.hidden) event = HIDDEN_IN_FRAGMENT;
        if (event.type === "sample") samples++;
        else if (event.type === "track") codec = event.codec;
        for (const segment of cutter.feed(event)) await judge(segment);
      }
    }
    for (const segment of cutter.finish()) await judge(segment);
    if (!verdicts.length && !samples) {
      return [new Verdict(Reason.FRAMING, `no ${CODEC_NAMES[codec] || "video"} samples in the MP4`)];
    }
    return verdicts;
  }
}
