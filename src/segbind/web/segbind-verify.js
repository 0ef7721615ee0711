// segbind verifier for browsers and Node, written from docs/FORMAT.md (format version 3).
//
// An ES module with no dependencies and no build step: SHA-256, HMAC and AES-CTR come from
// WebCrypto (globalThis.crypto.subtle: Node 20, chromium). It judges segments in
// every framing a web display meets:
//
//   - Annex-B H.264 and H.265, one segment (verifyAnnexB) or a stream cut back into
//     segments (annexbSegments);
//   - fragmented MP4 (CMAF, what hls.js hands to Media Source Extensions), clear or Common
//     Encryption 'cenc' (FORMAT.md 4.4), through a FragmentGate: read by segbind-mp4.js (the
//     strict reader, the same reading as segbind/read/mp4.py), cut into the camera's segments
//     by SampleCutter (the rules of segbind/read/cut.py with its texts; 'cenc' samples put back
//     into the camera's protected form as its CencSamples does), each picture placed in the
//     camera's order by segbind-syntax.js (the slice headers and picture order counts of
//     segbind_core), and judged as segbind/verifier.py judges it: one reading, the decoders';
//
// and keeps the stream rules of FORMAT.md 7.2 per stream, (owner, camera) as the keyring names
// a tag's key id (StreamVerifier). Keys come only from a keyring of period keys looked up by
// key id (PeriodKeyring, filled from the owner's sealed grants: segbind-grants.js). Picture
// data is decrypted only once its segment is accepted (Verdict.plaintext, FragmentGate's
// `decrypt` option: FORMAT.md 7.1, 7.4). Nothing here throws on bad input: every entry point
// that takes bytes gives a Verdict whose reason is one of Reason.

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
const VERSION = 3;
const ALG = 2;                       // MACs HMAC-SHA256/16, digest SHA-256, picture data AES-128-CTR
const MAC_SIZE = 16;
const LINK_SIZE = 8;
const HINT_SIZE = 4;
const KEY_ID_SIZE = 16;
const PREFIX_SIZE = 3 + KEY_ID_SIZE; // version, alg, codec, key id: then the stream id
const MAX_SLOTS = 8;
const MAX_ID_BYTES = 32;
const MAX_U32 = 0xffffffffn;
const MAX_U53 = (1n << 53n) - 1n;
const MAX_STREAM_ID = (1n << 48n) - 1n;
const MAX_PICTURES = 0xffffn;
const MAX_CLEAR_LEAD = 4096n;
const FLAG_END_OF_STREAM = 1;
const FLAG_STILL = 2;                // a one-picture segment taken for an event (FORMAT.md 10)
const KNOWN_FLAGS = FLAG_END_OF_STREAM | FLAG_STILL;
// seq, capture time, duration, pictures, units, clear lead (tag.py _TAIL_LIMITS)
const TAIL_LIMITS = [MAX_U32, MAX_U53, MAX_U32, MAX_PICTURES, MAX_U32, MAX_CLEAR_LEAD];
// The longest tag body of any version, so that an earlier version's tag is still found (and
// refused as such): format 2's, version, alg, codec, two ids, the varints at their longest,
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

/** Offsets of every 00 00 01 in buf (they never overlap), left to right. */
function startCodes(buf) {
  const found = [];
  for (let k = zeroPairAt(buf, 0, buf.length, 1, 1); k >= 0; k = zeroPairAt(buf, k + 3, buf.length, 1, 1)) found.push(k);
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
  if (messages.length !== 1) throw new TagError(Reason.MALFORMED_TAG, "a segbind SEI NAL unit must hold exactly one SEI message");
  const [kind, payload] = messages[0];
  if (kind !== 5 || !sameBytes(payload.subarray(0, 16), SEGBIND_UUID)) {
    throw new TagError(Reason.MALFORMED_TAG, "SEI message is not segbind user data");
  }
  if (payload.length > 16 + MAX_BODY) throw new TagError(Reason.MALFORMED_TAG, "segbind SEI payload is oversized");
  return payload.subarray(16);
}

// ---- the tag body (FORMAT.md 5) ----------------------------------------------------------------

/** tag.py decode_uvarint: (value, new pos); truncated, non-minimal and out-of-range varints refused. */
function readUvarint(body, pos, limit) {
  if (pos < body.length && body[pos] < 0x80) {  // one byte: most fields of most tags
    const value = BigInt(body[pos]);
    if (value > limit) throw new TagError(Reason.MALFORMED_TAG, "integer field out of range");
    return [value, pos + 1];
  }
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

const hex2 = (n) => (n < 16 ? "0" : "") + n.toString(16);

/**
 * {tag, signed} of a tag body (tag.py decode_tag, its texts); TagError(unknown_version |
 * malformed_tag) on any defect. stream_id, seq and capture_ms are BigInts; the other integers
 * are Numbers. The tag names its keys by key id alone: owner, camera and epoch are filled in
 * ("" and 0 until then) when a keyring holds the key id.
 */
export function decodeTag(body) {
  const n = body.length;
  if (n < 1) throw new TagError(Reason.MALFORMED_TAG, "empty tag");
  if (body[0] !== VERSION) {
    if (body[0] === 1 || body[0] === 2) {
      throw new TagError(Reason.UNKNOWN_VERSION, `a format ${body[0]} tag (unencrypted video, names in clear): this verifier `
        + `reads format ${VERSION} only; the camera needs its format ${VERSION} agent`);
    }
    throw new TagError(Reason.UNKNOWN_VERSION, `tag format version ${body[0]} is not supported`);
  }
  if (n < 3) throw new TagError(Reason.MALFORMED_TAG, "tag truncated after the version");
  if (body[1] !== ALG) throw new TagError(Reason.UNKNOWN_VERSION, `tag algorithm ${body[1]} is not supported`);
  if (body[2] !== CODEC_H264 && body[2] !== CODEC_H265) {
    throw new TagError(Reason.UNKNOWN_VERSION, `tag codec ${body[2]} is not supported`);
  }
  if (n < PREFIX_SIZE + 1) throw new TagError(Reason.MALFORMED_TAG, "tag truncated inside its key id");
  const codec = body[2];
  const keyId = body.slice(3, PREFIX_SIZE);
  let pos;
  let streamId;
  [streamId, pos] = readUvarint(body, PREFIX_SIZE, MAX_STREAM_ID);
  const values = [];
  for (const limit of TAIL_LIMITS) {
    let value;
    [value, pos] = readUvarint(body, pos, limit);
    values.push(value);
  }
  const [seq, captureMs, durationMs, pictures, units, clearLead] = values;
  if (!pictures || !units || !clearLead) {
    throw new TagError(Reason.MALFORMED_TAG, "a segment has at least one picture and one NAL unit, and a clear lead");
  }
  if (n < pos + 1 + LINK_SIZE + HINT_SIZE + 1) throw new TagError(Reason.MALFORMED_TAG, "tag truncated before its MACs");
  const flags = body[pos];
  if (flags & ~KNOWN_FLAGS) throw new TagError(Reason.MALFORMED_TAG, `unknown flags ${hex2(flags)}`);
  if (flags & FLAG_STILL && pictures !== 1n) throw new TagError(Reason.MALFORMED_TAG, `a still of ${pictures} pictures`);
  const link = body.slice(pos + 1, pos + 1 + LINK_SIZE);
  pos += 1 + LINK_SIZE;
  const hint = body.slice(pos, pos + HINT_SIZE);
  const slots = body[pos + HINT_SIZE];
  pos += HINT_SIZE + 1;
  if (slots < 1 || slots > MAX_SLOTS) throw new TagError(Reason.MALFORMED_TAG, `tag has ${slots} slots`);
  if (n - pos !== slots * MAC_SIZE) {
    throw new TagError(Reason.MALFORMED_TAG, `tag has ${n - pos} bytes of MACs for ${slots} slots`);
  }
  const macs = [];
  for (let s = 0; s < slots; s++) macs.push(body.slice(pos + s * MAC_SIZE, pos + (s + 1) * MAC_SIZE));
  const tag = {
    codec, keyId, keyIdHex: toHex(keyId), streamId, seq, captureMs, durationMs: Number(durationMs),
    pictures: Number(pictures), units: Number(units), clearLead: Number(clearLead), flags,
    endOfStream: Boolean(flags & FLAG_END_OF_STREAM), still: Boolean(flags & FLAG_STILL), link, hint, slots, macs,
    owner: "", camera: "", epoch: 0,  // whose the key id is: from the keyring (verifier.py _info)
  };
  return { tag, signed: body.slice(0, pos) };
}

/** The public fields of a tag (never key material), as JSON-friendly values (verdict.py TagInfo.as_dict). */
export function tagInfo(tag) {
  if (!tag) return null;
  const big = (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());
  return {
    owner: tag.owner, camera: tag.camera, epoch: tag.epoch, stream_id: big(tag.streamId), seq: big(tag.seq),
    capture_ms: big(tag.captureMs), duration_ms: tag.durationMs, pictures: tag.pictures,
    codec: CODEC_NAMES[tag.codec], end_of_stream: tag.endOfStream, key_id: tag.keyIdHex, still: tag.still,
  };
}


// ---- verdicts -----------------------------------------------------------------------------------

export class Verdict {
  constructor(reason, detail = "", tag = null, missing = 0) {
    this.reason = reason;
    this.detail = detail;
    this.tag = tag;          // the decoded tag (authenticated only when accepted), or null
    this.missing = missing;  // segments lost just before this one (gap, missing)
    this._accepted = null;   // accepted: {form, binding}: the form that authenticated, whose keys
  }

  get accepted() { return ACCEPTED.has(this.reason); }

  /** Accepted: the verified units in canonical form, still encrypted, the tag where the camera puts it (FORMAT.md 7.4). */
  get verified() { return this.accepted && this._accepted ? this._accepted.form.output() : null; }

  /**
   * Accepted: the verified units decrypted, as a decoder may be given them (FORMAT.md 7.4:
   * canonical form, each picture unit as the encoder made it); null otherwise. A refused
   * segment is never decrypted: its content key is never used.
   */
  async plaintext() {
    if (!this.accepted || !this._accepted) return null;
    const { form, binding } = this._accepted;
    return (await unprotect(form.output(), this.tag, binding.content)).plain;
  }

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

/** Python's repr() of a str, as verdict texts quote ids (`%r`). */
export function pyRepr(text) {
  const quote = text.includes("'") && !text.includes("\"") ? "\"" : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f || (code > 0x7f && ch !== " " && /[\p{C}\p{Z}]/u.test(ch))) {
      out += code < 0x100 ? "\\x" + hex2(code) : code < 0x10000 ? "\\u" + code.toString(16).padStart(4, "0")
        : "\\U" + code.toString(16).padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

// ---- picture data (FORMAT.md 4): the protected form and its keystream -------------------------

const DOMAIN_SEGMENT = 0;
const DOMAIN_STILL = 1;

/** The initial counter block of a segment's keystream (FORMAT.md 4.3): u8 domain, u48 stream id, u32 seq, u40 0. */
export function counterBlock(domain, streamId, seq) {
  const out = new Uint8Array(16);
  out[0] = domain;
  let s = BigInt(streamId);
  for (let i = 6; i >= 1; i--) { out[i] = Number(s & 0xffn); s >>= 8n; }
  let q = BigInt(seq);
  for (let i = 10; i >= 7; i--) { out[i] = Number(q & 0xffn); q >>= 8n; }
  return out;
}

/**
 * The first i in [begin, end - 1) where buf[i] and buf[i + 1] are both zero, -1 when nowhere:
 * what emulation prevention (and its undoing) looks at.
 */
function zeroPair(buf, begin, end) {
  for (let i = begin; i + 1 < end; i++) if (buf[i] === 0 && buf[i + 1] === 0) return i;
  return -1;
}

/** Whether 00 00 begins at buf[k], followed inside buf[..end] by a byte from `low` to `high`. */
function pairBefore(buf, k, end, low, high) {
  return buf[k + 1] === 0 && buf[k] === 0 && k + 2 < end && buf[k + 2] >= low && buf[k + 2] <= high;
}

/**
 * The first k in [begin, end - 2) where buf[k:k+3] is 00 00 and a byte from `low` to `high` (a
 * start code, where emulation prevention puts a 03, or where one was put); -1 when nowhere. A
 * word at a time, the masks never leaving int32: a word whose bytes 0-1, 1-2 or 2-3 are zero, or
 * whose first or last byte is (a pair across two words), has its bytes looked at: about one word
 * in a hundred of random ciphertext.
 */
function zeroPairAt(buf, begin, end, low, high) {
  const base = buf.byteOffset;
  let i = begin;
  const head = Math.min(end, begin + ((4 - ((base + begin) & 3)) & 3));
  for (; i < head; i++) if (pairBefore(buf, i, end, low, high)) return i;
  const words = (end - i) >> 2;
  if (words > 0) {
    const view = new Int32Array(buf.buffer, base + i, words);
    for (let w = 0; w < words; w++) {
      const v = view[w];  // little-endian or not, a zero pair inside it zeroes one of these masks
      if ((v & 0xffff) === 0 || (v & 0xffff00) === 0 || (v & 0xffff0000) === 0 || (v & 0xff000000) === 0 || (v & 0xff) === 0) {
        for (let k = i + 4 * w, last = k + 4; k < last; k++) if (pairBefore(buf, k, end, low, high)) return k;
      }
    }
    i += 4 * words;
  }
  for (; i < end; i++) if (pairBefore(buf, i, end, low, high)) return i;
  return -1;
}

/** Whether buf[begin:end] holds 00 00 followed by a byte from `low` to `high`. */
function zeroPairBefore(buf, begin, end, low, high) { return zeroPairAt(buf, begin, end, low, high) >= 0; }

/** How many zero bytes end buf[begin:end] (0, 1 or 2: what emulation prevention counts). */
function trailingZeros(buf, begin, end) {
  if (end <= begin || buf[end - 1]) return 0;
  return end - begin > 1 && !buf[end - 2] ? 2 : 1;
}

/**
 * protect.escape: `data` with a 03 byte after every two zero bytes followed by a byte 00 to 03,
 * `zerosBefore` zero bytes counted as preceding it and `next` as following it (FORMAT.md 4.2).
 */
function escapeCipher(data, zerosBefore, next) {
  const padded = new Uint8Array(zerosBefore + data.length + 1);
  padded.set(data, zerosBefore);
  padded[padded.length - 1] = next;
  const out = [];
  let start = 0;
  let pos = 0;
  for (;;) {
    const k = zeroPair(padded, pos, padded.length);
    if (k < 0 || k + 2 >= padded.length) break;
    if (padded[k + 2] <= 3) {
      out.push(padded.subarray(start, k + 2), Uint8Array.of(3));
      start = pos = k + 2;
    } else {
      pos = k + 1;
    }
  }
  out.push(padded.subarray(start));
  const joined = concatBytes(out);
  return joined.subarray(zerosBefore, joined.length - 1);
}

/** protect.unescape: every 03 after two zero bytes removed, `zerosBefore` zero bytes counted as preceding. */
function unescapeCipher(data, zerosBefore) {
  const padded = new Uint8Array(zerosBefore + data.length);
  padded.set(data, zerosBefore);
  const out = [];
  let start = 0;
  let pos = 0;
  for (;;) {
    let k = zeroPair(padded, pos, padded.length);
    while (k >= 0 && !(k + 2 < padded.length && padded[k + 2] === 3)) k = zeroPair(padded, k + 1, padded.length);
    if (k < 0) break;
    out.push(padded.subarray(start, k + 2));
    start = pos = k + 3;
  }
  out.push(padded.subarray(start));
  return concatBytes(out).subarray(zerosBefore);
}

/**
 * A picture unit's protected form (protect.protected_form) from the unit as a Common Encryption
 * sample stores it, unit = buf[begin:end] (its ciphertext in clear between its first `lead` bytes
 * and its last): the ciphertext escaped in the context of the bytes around it. The unit itself
 * (a view) when nothing needs escaping, which is almost always.
 */
function protectedForm(buf, begin, end, lead) {
  if (!zeroPairBefore(buf, Math.max(begin, begin + lead - 2), end, 0, 3)) return buf.subarray(begin, end);
  const cipher = escapeCipher(buf.subarray(begin + lead, end - 1), trailingZeros(buf, begin, begin + lead), buf[end - 1]);
  return concatBytes([buf.subarray(begin, begin + lead), cipher, buf.subarray(end - 1, end)]);
}

/** The kind of a NAL unit's header byte, and whether it is a picture unit (protect.py's reading). */
function isVcl(header, codec) {
  return codec === CODEC_H265 ? ((header >> 1) & 0x3f) <= 31 : (header & 0x1f) >= 1 && (header & 0x1f) <= 5;
}

function isAud(header, codec) {
  return codec === CODEC_H265 ? ((header >> 1) & 0x3f) === 35 : (header & 0x1f) === 9;
}

/**
 * protect.unprotect: an accepted segment's protected form (Annex-B, the tag in it or not)
 * decrypted under its period's content key (a WebCrypto AES-CTR key, not extractable): each
 * picture unit's bytes after the clear lead but its last, unescaped, are the segment's one
 * keystream, each access unit's from a fresh counter block. One AES-CTR call for the segment.
 * Returns {plain, units}: the plaintext (Annex-B, the same start codes) and where its units are
 * ([begin, end) of each, without its start code), as annexbUnits would find them.
 */
async function unprotect(data, tag, contentKey) {
  const codec = tag.codec;
  const lead = tag.clearLead;
  const { units } = annexbUnits(data);
  const pieces = [];   // [begin, end, cipher, offset]: each protected range, its ciphertext, where in the keystream
  let size = 0;        // the keystream's bytes so far (padded at each access unit that used it)
  let opened = false;
  for (const unit of units) {
    const begin = unit.byteOffset - data.byteOffset;
    const end = begin + unit.length;
    const header = data[begin];
    if (isAud(header, codec)) {
      if (opened) size = (size + 15) & ~15;
      opened = false;
      continue;
    }
    if (!isVcl(header, codec) || end - begin - 1 <= lead) continue;
    const from = begin + lead;
    let cipher = data.subarray(from, end - 1);
    if (zeroPairBefore(data, Math.max(begin, from - 2), end - 1, 3, 3)) cipher = unescapeCipher(cipher, trailingZeros(data, begin, from));
    pieces.push([from, end - 1, cipher, size]);
    size += cipher.length;
    opened = true;
  }
  const spans = units.map((u) => [u.byteOffset - data.byteOffset, u.byteOffset - data.byteOffset + u.length]);
  if (!pieces.length) return { plain: data.slice(), units: spans };
  const stream = new Uint8Array(size);
  for (const [, , cipher, at] of pieces) stream.set(cipher, at);
  const domain = tag.still ? DOMAIN_STILL : DOMAIN_SEGMENT;
  const clear = new Uint8Array(await subtle.decrypt({ name: "AES-CTR", counter: counterBlock(domain, tag.streamId, tag.seq), length: 128 },
    contentKey, stream));
  let length = data.length;
  for (const [begin, end, cipher] of pieces) length += cipher.length - (end - begin);
  const out = new Uint8Array(length);
  let at = 0;
  let from = 0;
  for (const [begin, end, cipher, offset] of pieces) {
    out.set(data.subarray(from, begin), at);
    at += begin - from;
    out.set(clear.subarray(offset, offset + cipher.length), at);
    at += cipher.length;
    from = end;
  }
  out.set(data.subarray(from), at);
  // each unit moves back by what the escapes removed before it, and ends earlier by its own
  let shift = 0;
  let p = 0;
  for (const span of spans) {
    for (; p < pieces.length && pieces[p][1] <= span[0]; p++) shift += pieces[p][1] - pieces[p][0] - pieces[p][2].length;
    span[0] -= shift;
    for (; p < pieces.length && pieces[p][1] <= span[1]; p++) shift += pieces[p][1] - pieces[p][0] - pieces[p][2].length;
    span[1] -= shift;
  }
  return { plain: out, units: spans };
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
 *             must be one the camera tagged in this segment's head;
 *   samples   a container's samples, in decoding order, with their times (what a display's
 *             decoder is given the decrypted segment in: FragmentGate's `decrypt`).
 */
class Canonical {
  constructor({ data = null, rest = null, tagBytes = EMPTY, tagStart, tagEnd, units = null, timing = null,
    problem = "", problemReason = Reason.FRAMING, restore = [], codec = 0, required = [], exact = true, samples = null }) {
    this._data = data;
    this._rest = rest;
    this._tagBytes = tagBytes;
    this._head = null;
    Object.assign(this, { tagStart, tagEnd, units, timing, problem, problemReason, restore, codec, required, exact, samples });
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

  /**
   * The binding the tag's key id names in the keyring (verifier.py _key): no_grant when the
   * keyring holds none, the tag carries no MAC for the holder's slot, or the key's period does
   * not hold the segment's capture time. The tag learns whose it is (owner, camera, epoch).
   */
  _key(tag) {
    const binding = this.keyring.binding(tag.keyIdHex);
    if (!binding) {
      throw new Refusal(Reason.NO_GRANT, `no grant for key id ${tag.keyIdHex} (${this.keyring.size} periods held)`, tag);
    }
    tag.owner = binding.owner;
    tag.camera = binding.camera;
    tag.epoch = binding.epoch;
    if (binding.slot >= tag.slots) throw new Refusal(Reason.NO_GRANT, `the tag has no slot ${binding.slot} for this viewer (${tag.slots} slots)`, tag);
    if (!(binding.startMs <= tag.captureMs && tag.captureMs < binding.endMs)) {
      throw new Refusal(Reason.NO_GRANT, `the key of period ${binding.period} does not cover a capture time of ${tag.captureMs} ms`, tag);
    }
    return binding;
  }

  /** Checks 1 to 8 on the segment as it is: {tag, digest, mac, note, form, binding}, or a Refusal. */
  async authenticate(seg, nowS) {
    const { tag, signed } = this.tagOf(seg);
    const binding = this._key(tag);
    if (seg.problem) throw new Refusal(seg.problemReason === Reason.TIMING ? Reason.TIMING : Reason.FRAMING, seg.problem, tag);
    const digest = await sha256(seg.rest);
    if (seg.units !== null && seg.units !== tag.units) {
      if (constantTimeEqual(digest.subarray(0, HINT_SIZE), tag.hint)) {
        throw new Refusal(Reason.FRAMING, `the framing delimits ${seg.units} NAL units where the camera tagged ${tag.units}`, tag);
      }
      throw new Refusal(Reason.CONTENT_MISMATCH, `${seg.units} NAL units where the camera tagged ${tag.units}`, tag);
    }
    const full = new Uint8Array(await subtle.sign("HMAC", binding.hmac, concatBytes([signed, digest])));
    const mac = full.subarray(0, MAC_SIZE);
    if (!constantTimeEqual(mac, tag.macs[binding.slot])) {
      if (!constantTimeEqual(digest.subarray(0, HINT_SIZE), tag.hint)) {
        throw new Refusal(Reason.CONTENT_MISMATCH, "video content differs from what the camera tagged", tag);
      }
      throw new Refusal(Reason.MAC_MISMATCH, "tag does not authenticate under the granted key", tag);
    }
    if (seg.required.length) checkRequired(tag, seg);
    const note = seg.timing ? checkTiming(tag, seg.timing) : "";
    if (this.window) checkWindow(this.window, tag, nowS);
    return { tag, digest, mac: mac.slice(), note, form: seg, binding };
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
        problemReason: seg.problemReason, required: seg.required, samples: seg.samples });
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
        problemReason: tried.problemReason, codec: tried.codec, required: tried.required, samples: tried.samples });
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

// ---- Common Encryption ('cenc') samples back into the protected form (read/cut.py CencSamples) -------
//
// FORMAT.md 4.4: one sample per access unit; each picture unit's length prefix and first L bytes
// clear, its ciphertext protected, its last byte clear; 16-byte IVs, the counter block the access
// unit begins at. What a sample's subsamples and IV must be is derived from its units and its
// segment's tag (read without a key), as segbind/web/fmp4.py derives them for the packager.

const IV_SIZE = 16;
const MAX_CLEAR_BYTES = 0xffff;  // BytesOfClearData is 16 bits: a longer clear run is split

/** (begin, end) of each unit of a length-prefixed sample; null when the lengths do not tile it. */
function prefixedUnits(data, lengthSize) {
  const units = [];
  const n = data.length;
  let pos = 0;
  while (pos < n) {
    const begin = pos + lengthSize;
    if (begin > n) return null;
    const end = begin + lengthAt(data, pos, lengthSize);
    if (end === begin || end > n) return null;
    units.push([begin, end]);
    pos = end;
  }
  return units;
}

/** fmp4.protected_size: how many bytes of a NAL unit 'cenc' protects (a picture unit's after the clear lead but its last). */
function protectedSize(header, size, codec, lead) {
  return isVcl(header, codec) && size - 1 > lead ? size - 1 - lead : 0;
}

/** fmp4.subsamples_of: the (clear, protected) byte counts of a sample whose units are [[header, size], ...]. */
function subsamplesOf(units, codec, lead, lengthSize) {
  const out = [];
  let clear = 0;
  for (const [header, size] of units) {
    const protectedBytes = protectedSize(header, size, codec, lead);
    if (protectedBytes) {
      clear += lengthSize + lead;
      while (clear > MAX_CLEAR_BYTES) { out.push([MAX_CLEAR_BYTES, 0]); clear -= MAX_CLEAR_BYTES; }
      out.push([clear, protectedBytes]);
      clear = 1;
    } else {
      clear += lengthSize + size;
    }
  }
  while (clear > MAX_CLEAR_BYTES) { out.push([MAX_CLEAR_BYTES, 0]); clear -= MAX_CLEAR_BYTES; }
  if (clear || !out.length) out.push([clear, 0]);
  return out;
}

/** The counter block `blocks` (< 2^53) blocks after `initial` (a 128-bit big-endian counter). */
function counterBlockAfter(initial, blocks) {
  const out = initial.slice();
  let carry = blocks;
  for (let i = 15; i >= 0 && carry; i--) {
    const sum = out[i] + (carry % 256);
    out[i] = sum & 255;
    carry = Math.floor(carry / 256) + (sum >> 8);
  }
  return out;
}

/** The public fields of a tag NAL unit that 'cenc' derives from (fmp4.segment_fields); null when it cannot be read. */
function cencFields(unit) {
  try {
    const { tag } = decodeTag(tagBody(unit, tagCodec(unit)));
    return { codec: tag.codec, keyId: tag.keyId, clearLead: tag.clearLead,
      initial: counterBlock(tag.still ? DOMAIN_STILL : DOMAIN_SEGMENT, tag.streamId, tag.seq) };
  } catch (exc) {
    if (exc instanceof TagError) return null;
    throw exc;
  }
}

function differs(given, derived, lead) {
  if (given.length !== derived.length) {
    return `a sample has ${given.length} subsamples where its units and the tag's clear lead ${lead} give ${derived.length} (FORMAT.md 4.4)`;
  }
  const k = given.findIndex((pair, i) => pair[0] !== derived[i][0] || pair[1] !== derived[i][1]);
  if (k < 0) return "";
  return `a sample's subsample ${k} is (${given[k][0]} clear, ${given[k][1]} protected) where its units and the tag's clear lead ${lead} give (${derived[k][0]}, ${derived[k][1]}) (FORMAT.md 4.4)`;
}

/**
 * Common Encryption ('cenc') samples of one track put back into the camera's protected form,
 * each checked against what FORMAT.md 4.4 derives from its units and its segment's tag
 * (read/cut.py CencSamples, its texts). `read(sample)` gives [the sample's units in protected
 * form (4-byte lengths), 4, what is wrong with its encryption ("" when nothing)]. Samples before
 * the first tag, or of a segment whose tag cannot be read, are left as they are.
 */
export class CencSamples {
  constructor(protection, lengthSize) {
    this.protection = protection;
    this.lengthSize = lengthSize;
    this.fields = null;  // the current segment's tag
    this.blocks = 0;     // keystream blocks its samples so far took
  }

  /** Why a track protected this way cannot carry segbind's ciphertext ("" when it can). */
  static trackProblem(p) {
    if (p.scheme !== "cenc") {
      return `the track is protected with scheme '${p.scheme}': segbind's ciphertext is AES-CTR, carried as 'cenc' only (FORMAT.md 4.4)`;
    }
    if (p.cryptByteBlock || p.skipByteBlock) {
      return `a 'cenc' track with an encryption pattern (${p.cryptByteBlock}:${p.skipByteBlock}): 'cenc' encrypts every protected byte`;
    }
    if (p.ivSize !== IV_SIZE) {
      const given = p.ivSize ? `${p.ivSize}-byte IVs` : `a constant ${p.constantIv.length}-byte IV`;
      return `the track's 'tenc' gives ${given}: a 'cenc' sample of segbind's carries the 16-byte counter block its access unit begins at (FORMAT.md 4.4)`;
    }
    return "";
  }

  read(sample) {
    const data = sample.data;
    const size = this.lengthSize;
    const units = prefixedUnits(data, size);
    if (units === null) return [data, size, ""];
    let found = null;
    for (const [begin, end] of units) {
      if ((data[begin] === 0x06 || data[begin] === 0x4e) && tagCodec(data.subarray(begin, begin + 24))) {
        found = cencFields(data.subarray(begin, end));
        this.fields = found;
        this.blocks = 0;
        break;
      }
    }
    const fields = this.fields;
    if (fields === null) return [data, size, ""];
    const lead = fields.clearLead;
    const codec = fields.codec;
    let problem = "";
    if (found !== null && !sameBytes(this.protection.defaultKid, fields.keyId)) {
      problem = `the track's default_KID ('tenc') ${toHex(this.protection.defaultKid)} is not the tag's key id ${toHex(fields.keyId)}: a ClearKey player asks for another key`;
    }
    const derived = subsamplesOf(units.map(([b, e]) => [data[b], e - b]), codec, lead, size);
    if (!problem) problem = differs(sample.subsamples || [], derived, lead);
    const iv = counterBlockAfter(fields.initial, this.blocks);
    if (!problem && !sameBytes(sample.iv || EMPTY, iv)) {
      problem = `a sample's IV ${toHex(sample.iv || EMPTY)} is not ${toHex(iv)}, the counter block its access unit begins at (FORMAT.md 4.3)`;
    }
    let total = 0;
    for (const [, p] of derived) total += p;
    this.blocks += Math.ceil(total / 16);
    // the protected form: the sample itself when its lengths are 4 bytes and nothing needs escaping
    let forms = null;
    for (let k = 0; k < units.length; k++) {
      const [begin, end] = units[k];
      if (!protectedSize(data[begin], end - begin, codec, lead)) continue;
      const form = protectedForm(data, begin, end, lead);
      if (form.length === end - begin && form.buffer === data.buffer) continue;  // the unit itself
      forms ??= units.map(([b, e]) => data.subarray(b, e));
      forms[k] = form;
    }
    if (forms === null && size === 4) return [data, 4, problem];
    forms ??= units.map(([b, e]) => data.subarray(b, e));
    const out = new Uint8Array(forms.reduce((n, f) => n + 4 + f.length, 0));
    let at = 0;
    for (const form of forms) {
      out[at] = form.length >>> 24; out[at + 1] = (form.length >>> 16) & 255; out[at + 2] = (form.length >>> 8) & 255; out[at + 3] = form.length & 255;
      out.set(form, at + 4);
      at += 4 + form.length;
    }
    return [out, 4, problem];
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
    this._cenc = null;        // the track's 'cenc' samples, back into the protected form
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
    } else if (info.protection) {
      this._trackProblem = CencSamples.trackProblem(info.protection);
    } else {
      this._trackProblem = "";
    }
    this._cenc = info.protection && info.lengthSize && !this._trackProblem ? new CencSamples(info.protection, info.lengthSize) : null;
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
    let data = sample.data;
    let lengthSize = info.lengthSize;
    if (!lengthSize) {  // Annex-B samples (MPEG-TS) come through no reader of this gate
      this.defect("a sample that is not length-prefixed");
      return;
    }
    let encryption = "";
    if (this._cenc !== null) [data, lengthSize, encryption] = this._cenc.read(sample);
    const scan = scanPrefixed(data, lengthSize, this._classes, clock);
    if (scan.defect) {
      this.defect(scan.defect);  // its units cannot be told apart: not kept
      return;
    }
    let skip = null;  // the tag's bytes, in this sample's canonical form: not in what is hashed
    if (scan.tags.length) skip = this._tagInSample(scan, data, lengthSize);
    if (this._tag >= 0) {  // a run before the first tag is refused as untagged, whatever it holds
      if (encryption) {
        this.defect(encryption);
      } else if (this._cenc !== null && scan.delimiters > 1) {
        this.defect(`a Common Encryption sample holds ${scan.delimiters} access units: the camera begins each one's keystream at a fresh counter block, 'cenc' continues it across a sample`);
      }
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
    this._pictures.push({ pts: sample.pts, duration: sample.duration, hidden: sample.hidden, key, dts: sample.dts,
      sync: sample.sync, aus: scan.delimiters });
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
        timing, problem, problemReason: reason, restore: this._sets, codec: this._codec, required: this._required,
        samples: this._pictures });
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

class StreamState {
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

  /** What was accepted at `seq`, when it lies in the window (verifier.py _StreamState.seen). */
  seen(seq) { return seq >= this.highest - REPLAY_WINDOW ? this.recent.get(seq) ?? null : null; }
}

function linkOf(digest) { return digest.subarray(0, LINK_SIZE); }

/** A stream's key in the verifier's state: (owner, camera), never a camera id alone. */
function streamKey(owner, camera) { return JSON.stringify([owner, camera]); }

/**
 * Verifies segments in arrival order, keeping the state of each stream: an (owner, camera), as
 * the keyring names the tag's key id (verifier.py StreamVerifier). With `camera` (and `owner`)
 * set, the stream is that one alone and a segment of any other is a chain_break; without them,
 * each (owner, camera) is its own stream. Stills (FORMAT.md 10) are judged alone and change no
 * stream. With `recording`, gaps, streams that do not follow a clean end and discontinuous
 * capture times are refused, and finish() says whether the recording ends cleanly. Verdicts
 * come in the order segments were given, whatever WebCrypto's timing. An accepted segment is
 * decrypted only when asked for (Verdict.plaintext); a refused one never is.
 */
export class StreamVerifier {
  constructor(keyring, { camera = null, owner = null, window = null, recording = false, clock = () => Date.now() / 1000 } = {}) {
    this.auth = new Authenticator(keyring, window);
    this.camera = camera;
    this.owner = owner;
    this.recording = recording;
    this.clock = clock;
    this._streams = new Map();
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
    const streams = [...this._streams.values()].sort((a, b) => compareText(a.last.owner, b.last.owner)
      || compareText(a.last.camera, b.last.camera));
    for (const state of streams) {
      if (!state.last.endOfStream) {
        return new Verdict(Reason.INCOMPLETE, `the recording of camera ${pyRepr(state.last.camera)} of ${pyRepr(state.last.owner)} `
          + `ends at segment ${state.highest} of stream ${state.streamId}, without its end of stream`, state.last);
      }
    }
    if (!this._streams.size) return new Verdict(Reason.INCOMPLETE, "no segment was accepted");
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
      verdict._accepted = { form: found.form, binding: found.binding };
      if (found.note) verdict.detail = [verdict.detail, found.note].filter(Boolean).join("; ");
    }
    return verdict;
  }

  _foreign(tag) {
    return (this.camera !== null && tag.camera !== this.camera) || (this.owner !== null && tag.owner !== this.owner);
  }

  _sequence(found) {
    const { tag } = found;
    if (this._foreign(tag)) {
      return new Verdict(Reason.CHAIN_BREAK, `segment of camera ${pyRepr(tag.camera)} of ${pyRepr(tag.owner)} in the stream `
        + `of camera ${this.camera === null ? "None" : pyRepr(this.camera)} of ${pyRepr(this.owner || "its owner")}`, tag);
    }
    if (tag.still) {  // a thumbnail: judged alone, chained to nothing (FORMAT.md 10)
      return new Verdict(Reason.OK, `a still (an event's thumbnail) of segment ${tag.seq} of stream ${tag.streamId}`, tag);
    }
    const key = streamKey(tag.owner, tag.camera);
    const state = this._streams.get(key);
    if (!state) {
      if (tag.seq === 0n && !sameBytes(tag.link, GENESIS_LINK)) {
        return new Verdict(Reason.CHAIN_BREAK, "first segment of a stream without the genesis link", tag);
      }
      if (this.recording && tag.seq) {
        return new Verdict(Reason.MISSING, `the recording starts at segment ${tag.seq} of stream ${tag.streamId}`, tag, Number(tag.seq));
      }
      this._streams.set(key, new StreamState(found));
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
      this._streams.set(key, new StreamState(found));
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

  /** A segment at or below the highest seq: a copy, a replay, or an intact late one (verifier.py _earlier). */
  _earlier(state, found) {
    const { tag } = found;
    if (tag.seq < state.highest - REPLAY_WINDOW) {
      return new Verdict(Reason.REPLAY, `segment ${tag.seq} is older than the window (${REPLAY_WINDOW})`, tag);
    }
    const seen = state.seen(tag.seq);
    if (seen) {
      if (constantTimeEqual(seen.digest, found.digest) && constantTimeEqual(seen.mac, found.mac)) {
        return new Verdict(Reason.DUPLICATE, `segment ${tag.seq} already accepted`, tag);
      }
      return new Verdict(Reason.REPLAY, `sequence number ${tag.seq} already used`, tag);
    }
    const before = state.seen(tag.seq - 1n);
    if (tag.seq === 0n) {
      if (!sameBytes(tag.link, GENESIS_LINK)) return new Verdict(Reason.CHAIN_BREAK, "segment 0 without the genesis link", tag);
    } else if (before && !constantTimeEqual(tag.link, linkOf(before.digest))) {
      return new Verdict(Reason.CHAIN_BREAK, `late segment ${tag.seq} does not follow segment ${tag.seq - 1n}`, tag);
    }
    const after = state.seen(tag.seq + 1n);
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

/** Python's ordering of str (code points), for sorting streams as verifier.py does. */
function compareText(a, b) {
  const x = [...a].map((c) => c.codePointAt(0));
  const y = [...b].map((c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

// ---- what a decoder is handed: the verified segments decrypted, in a clear fMP4 of their own ------------
//
// A display that decrypts (FragmentGate's `decrypt`) hands Media Source Extensions no byte of the
// fragment it was served: the init segment with its protection boxes renamed away ('encv' back to
// its original format, 'sinf' and 'pssh' to 'free'; nothing else changed), and for each fragment
// that passed, a fragment written here from what was verified: the accepted segments' units
// decrypted (Verdict.plaintext: FORMAT.md 7.4), one sample per sample of the container, each with
// the times and sync flag the container gave it and the verifier checked (FORMAT.md 7.5).

const u32be = (out, at, v) => { out[at] = v >>> 24; out[at + 1] = (v >>> 16) & 255; out[at + 2] = (v >>> 8) & 255; out[at + 3] = v & 255; };
const ascii = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** The boxes of buf[start:end]: [type, start, end, header size]; an Error when they do not tile it. */
function boxesIn(buf, start, end) {
  const out = [];
  let at = start;
  while (at < end) {
    if (at + 8 > end) throw new Error("a box header runs past its parent");
    let size = ((buf[at] << 24) >>> 0) + (buf[at + 1] << 16) + (buf[at + 2] << 8) + buf[at + 3];
    let head = 8;
    if (size === 1) {
      if (at + 16 > end) throw new Error("a box header runs past its parent");
      size = (((buf[at + 8] << 24) >>> 0) + (buf[at + 9] << 16) + (buf[at + 10] << 8) + buf[at + 11]) * 2 ** 32
        + ((buf[at + 12] << 24) >>> 0) + (buf[at + 13] << 16) + (buf[at + 14] << 8) + buf[at + 15];
      head = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < head || at + size > end) throw new Error("a box runs past its parent");
    out.push([String.fromCharCode(...buf.subarray(at + 4, at + 8)), at, at + size, head]);
    at += size;
  }
  return out;
}

const rename = (buf, at, type) => buf.set(ascii(type), at + 4);

/**
 * The init segment as the decoder is to read it (a copy): its protection renamed away, and the
 * video track's id. An Error when it does not hold one track as expected (the gate has read it).
 */
export function clearInit(init) {
  const out = init.slice();
  const moov = boxesIn(out, 0, out.length).find(([type]) => type === "moov");
  if (!moov) throw new Error("no 'moov'");
  const traks = [];
  for (const [type, start, end, head] of boxesIn(out, moov[1] + moov[3], moov[2])) {
    if (type === "pssh") rename(out, start, "free");
    if (type === "trak") traks.push([start + head, end]);
  }
  if (traks.length !== 1) throw new Error(`${traks.length} tracks`);
  const child = (range, type) => {
    const found = boxesIn(out, range[0], range[1]).find(([t]) => t === type);
    if (!found) throw new Error(`no '${type}'`);
    return found;
  };
  const inside = ([, start, end, head]) => [start + head, end];
  const tkhd = child(traks[0], "tkhd");
  const at = tkhd[1] + tkhd[3] + 4 + (out[tkhd[1] + tkhd[3]] === 1 ? 16 : 8);
  const trackId = ((out[at] << 24) >>> 0) + (out[at + 1] << 16) + (out[at + 2] << 8) + out[at + 3];
  const stbl = inside(child(inside(child(inside(child(traks[0], "mdia")), "minf")), "stbl"));
  const stsd = child(stbl, "stsd");
  for (const [type, start, end] of boxesIn(out, stsd[1] + stsd[3] + 8, stsd[2])) {
    if (type !== "encv") continue;
    const kids = boxesIn(out, start + 86, end);  // a visual sample entry's 78 bytes, then its boxes
    const sinf = kids.find(([t]) => t === "sinf");
    if (!sinf) throw new Error("an 'encv' entry without 'sinf'");
    const frma = boxesIn(out, sinf[1] + sinf[3], sinf[2]).find(([t]) => t === "frma");
    if (!frma || frma[2] - frma[1] < 12) throw new Error("no 'frma'");
    out.set(out.subarray(frma[1] + 8, frma[1] + 12), start + 4);
    rename(out, sinf[1], "free");
  }
  return { bytes: out, trackId };
}

/**
 * A segment's decrypted units grouped into its container's samples (each begins at its
 * delimiter): the [begin, end) of each sample's units in `plain`.
 */
function unitsBySample(plain, spans, samples, codec) {
  const out = samples.map(() => []);
  let k = -1;
  let left = 0;  // delimiters left in the current sample (an H.264 frame's two fields: two)
  for (const span of spans) {
    if (isAud(plain[span[0]], codec)) {
      if (left === 0) {
        k++;
        if (k >= samples.length) throw new Error("more access units than samples");
        left = Math.max(1, samples[k].aus);
      }
      left--;
    }
    if (k < 0) throw new Error("a unit before the first sample's delimiter");
    out[k].push(span);
  }
  if (k !== samples.length - 1) throw new Error("fewer access units than samples");
  return out;
}

/**
 * moof + mdat for each run of samples whose decode times follow on; samples are [{plain, units:
 * [[begin, end], ...], pts, dts, duration, sync}] (each unit in its segment's plaintext), written
 * behind `lengthSize`-byte lengths into one buffer.
 */
function clearFragment(samples, trackId, lengthSize, sequence) {
  const sizes = samples.map(({ units }) => units.reduce((n, [b, e]) => n + lengthSize + e - b, 0));
  const runs = [];
  for (let first = 0; first < samples.length;) {
    let last = first + 1;
    while (last < samples.length && samples[last].dts === samples[last - 1].dts + samples[last - 1].duration) last++;
    runs.push([first, last]);
    first = last;
  }
  const moofSize = (count) => 8 + 16 + 8 + 16 + 20 + 8 + 4 + 8 + 16 * count;  // moof, mfhd, traf, tfhd, tfdt, trun
  const total = runs.reduce((n, [a, z]) => n + moofSize(z - a) + 8 + sizes.slice(a, z).reduce((x, y) => x + y, 0), 0);
  const out = new Uint8Array(total);
  let at = 0;
  const put32 = (v) => { u32be(out, at, v >>> 0); at += 4; };
  const head = (size, type) => { put32(size); out.set(ascii(type), at); at += 4; };
  for (const [first, last] of runs) {
    const count = last - first;
    const media = sizes.slice(first, last).reduce((x, y) => x + y, 0);
    const negative = samples.slice(first, last).some((x) => x.pts < x.dts);
    const dts = samples[first].dts;
    head(moofSize(count), "moof");
    head(16, "mfhd"); put32(0); put32(sequence);
    head(moofSize(count) - 24, "traf");
    head(16, "tfhd"); put32(0x020000); put32(trackId);
    head(20, "tfdt"); put32(0x01000000); put32(Math.floor(dts / 2 ** 32)); put32(dts % 2 ** 32);
    head(20 + 16 * count, "trun"); put32(((negative ? 1 : 0) << 24) | 0x000f01); put32(count); put32(moofSize(count) + 8);
    for (let k = first; k < last; k++) {
      const x = samples[k];
      put32(x.duration); put32(sizes[k]); put32(x.sync ? 0x02000000 : 0x01010000); put32(x.pts - x.dts);
    }
    head(8 + media, "mdat");
    for (let k = first; k < last; k++) {
      const { plain, units } = samples[k];
      for (const [begin, end] of units) {
        const size = end - begin;
        if (size >= 2 ** (8 * lengthSize)) throw new Error(`a unit of ${size} bytes behind a ${lengthSize}-byte length`);
        for (let b = lengthSize - 1; b >= 0; b--) out[at + lengthSize - 1 - b] = Math.floor(size / 2 ** (8 * b)) & 255;
        out.set(plain.subarray(begin, end), at + lengthSize);
        at += lengthSize + size;
      }
    }
  }
  return out;
}

// ---- a gate in front of a decoder -------------------------------------------------------------------------

const errorText = (exc) => (exc && exc.message ? exc.message : String(exc));

/**
 * Verifies the fragments of one fMP4 feed before they reach a decoder (what a display's
 * fragment loader calls). `init(bytes)` takes the init segment and returns "" or why it cannot
 * be used; `fragment(bytes)` returns {pass, verdicts, media}: pass is true only when the fragment
 * holds at least one segment and every segment in it is accepted. A refused fragment must not be
 * appended. Each fragment is read as the init segment followed by that fragment (as
 * `segbind verify init.mp4 fragment.m4s` reads it): a fragment loaded again, or out of order,
 * is read the same way, with the init segment given last before the call. Fragments are judged
 * one after the other in the order of the calls, whatever WebCrypto's timing. Each segment's
 * verdict counts for the stream as given: a fragment whose first segment is accepted and second
 * refused is held whole, its first segment still seen. Never throws; the bytes given are never
 * changed.
 *
 * With `decrypt`, what a decoder is to be given instead of the bytes served: `initMedia` (the init
 * segment, its protection renamed away) and, for a fragment that passes and only then, `media`: a
 * clear fragment of its segments decrypted (each accepted verdict's `clear` holds its segment's
 * plaintext). Nothing of a held fragment is decrypted; a content key is used only for segments
 * its own MAC verified. Without `decrypt`, `media` is null.
 */
export class FragmentGate {
  constructor(verifier, { decrypt = false } = {}) {
    this.verifier = verifier;
    this.decrypt = decrypt;
    this._init = { bytes: null, problem: "no init segment yet", media: null, trackId: 0 };
    this._sequence = 0;
    this._scratch = { buf: null };  // one segment's canonical bytes, reused from fragment to fragment
    this._queue = Promise.resolve();  // one fragment at a time: they share the scratch buffer
  }

  /** Whether an init segment that can be read was given. */
  get ready() { return this._init.bytes !== null; }

  get initBytes() { return this._init.bytes; }

  get initProblem() { return this._init.problem; }

  /** With `decrypt`: the init segment a decoder is to be given (null until one can be used). */
  get initMedia() { return this._init.media; }

  init(bytes) {
    let problem = "";
    let kept = null;
    let media = null;
    let trackId = 0;
    try {
      if (!(bytes instanceof Uint8Array)) throw new TypeError("an init segment is bytes");
      const error = new Mp4Reader().init(bytes).find((e) => e.type === "error");
      if (error) {
        problem = `the init segment cannot be used (${error.text})`;
      } else {
        kept = bytes.slice();  // the loader's buffer is the player's
        if (this.decrypt) ({ bytes: media, trackId } = clearInit(kept));
      }
    } catch (exc) {
      problem = `the init segment cannot be used (${errorText(exc)})`;
      kept = media = null;
    }
    this._init = { bytes: kept, problem, media, trackId };
    return problem;
  }

  fragment(bytes) {
    const init = this._init;
    const run = this._queue.then(async () => {
      try {
        if (!(bytes instanceof Uint8Array)) return { pass: false, verdicts: [new Verdict(Reason.FRAMING, "a fragment is bytes")], media: null };
        if (!init.bytes) return { pass: false, verdicts: [new Verdict(Reason.FRAMING, init.problem)], media: null };
        const { verdicts, lengthSize, codec } = await this._verdicts(init.bytes, bytes);
        const pass = verdicts.length > 0 && verdicts.every((v) => v.accepted);
        if (!pass || !this.decrypt) {
          for (const v of verdicts) v._accepted = null;  // nothing of a held fragment is ever decrypted
          return { pass, verdicts, media: null };
        }
        try {
          return { pass, verdicts, media: await this._decrypted(verdicts, init.trackId, lengthSize, codec) };
        } catch (exc) {  // never expected: held rather than handed on
          for (const v of verdicts) { v._accepted = null; v.clear = null; }
          return { pass: false, verdicts: [...verdicts, new Verdict(Reason.FRAMING, `the verified fragment cannot be handed on (${errorText(exc)})`)], media: null };
        }
      } catch (exc) {  // never expected: a refusal rather than an exception out of the gate
        return { pass: false, verdicts: [new Verdict(Reason.FRAMING, `the fragment cannot be verified (${errorText(exc)})`)], media: null };
      }
    });
    this._queue = run;
    return run;
  }

  /** The clear fragment of a passed fragment's segments (FORMAT.md 7.4), each decrypted under its own key. */
  async _decrypted(verdicts, trackId, lengthSize, codec) {
    const samples = [];
    for (const verdict of verdicts) {
      const { form, binding } = verdict._accepted;
      const { plain, units } = await unprotect(form.output(), verdict.tag, binding.content);
      verdict.clear = plain;
      unitsBySample(plain, units, form.samples, verdict.tag.codec || codec)
        .forEach((spans, k) => samples.push({ ...form.samples[k], plain, units: spans }));
    }
    this._sequence = (this._sequence + 1) >>> 0;
    return clearFragment(samples, trackId, lengthSize, this._sequence);
  }

  async _verdicts(init, bytes) {
    const reader = new Mp4Reader();
    const events = [reader.init(init), reader.fragment(bytes)];  // as the init segment followed by the fragment
    const error = events.flatMap((list) => list.filter((e) => e.type === "error"))[0];
    if (error) return { verdicts: [new Verdict(Reason.FRAMING, error.text)] };
    const scratch = this._scratch;
    if (!scratch.buf || scratch.buf.length < bytes.length) {  // one segment's bytes fit its fragment's
      scratch.buf = new Uint8Array(Math.min(bytes.length, MAX_CUT_SEGMENT_BYTES));
    }
    const cutter = new SampleCutter(MAX_CUT_SEGMENT_BYTES, false, scratch);
    const verdicts = [];
    const judge = async (segment) => {
      const verdict = await this.verifier.verifyCanonical(segment);
      if (verdict._accepted) {  // its bytes are the scratch buffer's: the protected form kept (a copy) to decrypt
        const { form, binding } = verdict._accepted;
        const kept = this.decrypt ? form.output() : null;
        verdict._accepted = this.decrypt ? { form: { output: () => kept, samples: form.samples }, binding } : null;
      }
      verdicts.push(verdict);
    };
    let samples = 0;
    let codec = 0;
    let lengthSize = 4;
    for (const list of events) {
      for (const event of list) {
        if (event.type === "sample") samples++;
        else if (event.type === "track") [codec, lengthSize] = [event.codec, event.lengthSize];
        for (const segment of cutter.feed(event)) await judge(segment);
      }
    }
    for (const segment of cutter.finish()) await judge(segment);
    if (!verdicts.length && !samples) {
      return { verdicts: [new Verdict(Reason.FRAMING, `no ${CODEC_NAMES[codec] || "video"} samples in the MP4`)] };
    }
    return { verdicts, lengthSize, codec };
  }
}
