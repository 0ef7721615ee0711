// segbind-mp4.js: segbind's fragmented MP4 reader for the browser (CMAF, HLS-fMP4, DASH), the
// same reader as src/segbind/read/mp4.py for fragments: the same rules, in the same order, with
// the same one-line texts (tests/web/test_js_mp4.py runs both over the same files and mutations).
//
// Where the ISO BMFF spec allows two readings, or FFmpeg (libavformat/mov.c), Chromium
// (media/formats/mp4) and hls.js (src/utils/mp4-tools.ts) read a file differently, a stranger's
// pictures could pass the verifier and still play: this reader accepts only the form all of
// them read one way, and returns a Defect for the rest (docs/readers/mp4.md lists every rule).
//
// An ES module, no dependencies, no build step. Bytes in (Uint8Array), events out, never an
// exception out of an entry point:
//
//   const reader = new Mp4Reader();
//   let events = reader.init(initSegment);      // [{type: "track", ...}, ...] or [{type: "error", text}]
//   events = reader.fragment(mediaSegment);     // [{type: "sample", ...} | {type: "defect", ...}]
//
// Each call takes whole boxes (a media segment: 'styp', 'sidx', 'moof' + 'mdat' pairs...); a
// 'moof' and its 'mdat' come in the same call. Events, as in segbind/read/events.py:
//   {type: "track", codec, codecName, lengthSize, configUnits, timescale, others, otherVideo, protection}
//   {type: "sample", data, pts, dts, duration, hidden, sync, iv, subsamples}
//     data is a subarray of the bytes given (no copy); times are Numbers (below 2^53, a rule)
//   {type: "defect", text, reason: "framing" | "timing", fatal}
//   {type: "error", text}   the input cannot be read as video at all (Python's InputError)
// After an error or a fatal defect the reader returns nothing more.

export const MAX_INDEX_BYTES = 32 * 1024 * 1024;
export const MAX_SAMPLE_BYTES = 64 * 1024 * 1024;
export const CODEC_H264 = 1;
export const CODEC_H265 = 2;
export const FRAMING = "framing";
export const TIMING = "timing";

// Times at or past 2^53 ticks: hls.js reads tfdt and sums durations as doubles (parseSampleData).
const MAX_TIME = 2 ** 53;
// Composition offsets at or past 2^31: FFmpeg and Chromium read them as int32 (mov_read_trun, Read4s).
const MAX_OFFSET = 2 ** 31;

const VIDEO_ENTRIES = new Map([["avc1", CODEC_H264], ["avc3", CODEC_H264], ["hvc1", CODEC_H265], ["hev1", CODEC_H265]]);
const CONFIG = new Map([[CODEC_H264, "avcC"], [CODEC_H265, "hvcC"]]);
const CODEC_NAMES = new Map([[CODEC_H264, "h264"], [CODEC_H265, "hevc"]]);
const OTHER_VIDEO_ENTRIES = new Set(["avc2", "avc4", "dvh1", "dvhe", "dva1", "dvav", "vp08", "vp09", "av01", "mp4v",
  "s263", "jpeg", "mjp2", "vvc1", "vvi1", "evc1", "apv1", "hvc2", "hev2", "lhv1", "lhe1", "encv", "resv", "dav1"]);
// PIFF 1.1 'uuid' boxes: sample encryption (ExoPlayer, PlayReady read it as 'senc'), tfxd, tfrf.
const PIFF = new Set(["a2394f525a9b4f14a2446c427c648df4", "6d1d9b0542d544e680e2141daff757b2",
  "d4807ef2ca3946958e5426cb9e46a79f"]);

const ONE = "1";
const OPT = "?";
const ANY = "*";
// The boxes each container may hold, in mp4.py's order (the first missing one is named).
const MOOV = [["mvhd", ONE], ["trak", ANY], ["mvex", OPT], ["udta", OPT], ["pssh", ANY], ["iods", OPT],
  ["free", ANY], ["skip", ANY]];
const TRAK = [["tkhd", ONE], ["mdia", ONE], ["edts", OPT], ["udta", OPT], ["tref", OPT], ["free", ANY], ["skip", ANY]];
const EDTS = [["elst", ONE]];
const MDIA = [["mdhd", ONE], ["hdlr", ONE], ["minf", ONE], ["udta", OPT], ["elng", OPT], ["free", ANY], ["skip", ANY]];
const MINF = [["vmhd", OPT], ["smhd", OPT], ["nmhd", OPT], ["hmhd", OPT], ["sthd", OPT], ["gmhd", OPT], ["dinf", OPT],
  ["stbl", ONE], ["free", ANY], ["skip", ANY]];
const DINF = [["dref", ONE]];
const STBL = [["stsd", ONE], ["stts", ONE], ["ctts", OPT], ["cslg", OPT], ["stss", OPT], ["sdtp", OPT], ["stsc", ONE],
  ["stsz", OPT], ["stz2", OPT], ["stco", OPT], ["co64", OPT], ["sgpd", ANY], ["sbgp", ANY], ["subs", OPT],
  ["free", ANY], ["skip", ANY]];
const MVEX = [["mehd", OPT], ["trex", ANY], ["free", ANY], ["skip", ANY]];
const MOOF = [["mfhd", ONE], ["traf", ANY], ["pssh", ANY], ["free", ANY], ["skip", ANY]];
const TRAF = [["tfhd", ONE], ["tfdt", ONE], ["trun", ANY], ["senc", OPT], ["saiz", OPT], ["saio", OPT], ["sbgp", ANY],
  ["sgpd", ANY], ["sdtp", OPT], ["subs", OPT], ["free", ANY], ["skip", ANY]];
const ENTRY = [["pasp", OPT], ["btrt", OPT], ["colr", ANY], ["clap", OPT], ["fiel", OPT], ["mdcv", OPT], ["clli", OPT],
  ["sinf", OPT], ["free", ANY]];
const SINF = [["frma", ONE], ["schm", ONE], ["schi", ONE]];
const SCHI = [["tenc", ONE]];
const TOP_FRAGMENTED = new Set(["ftyp", "styp", "moov", "moof", "mdat", "free", "skip", "sidx", "prft", "emsg", "uuid",
  "mfra"]);
const TOP_BEFORE_MOOV = new Set(["ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "uuid", "sidx"]);

const TFHD_BASE = 0x1;
const TFHD_SDI = 0x2;
const TFHD_DURATION = 0x8;
const TFHD_SIZE = 0x10;
const TFHD_FLAGS = 0x20;
const TFHD_EMPTY = 0x10000;
const TFHD_BASE_IS_MOOF = 0x20000;
const TRUN_OFFSET = 0x1;
const TRUN_FIRST_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTO = 0x800;
const NON_SYNC = 0x10000;

/** A form of the file that is refused (text: one line; reason: framing or timing). */
class Refusal extends Error {
  constructor(text, reason = FRAMING) {
    super(text);
    this.text = text;
    this.reason = reason;
  }
}

// ---- bytes -----------------------------------------------------------------------------------

const u16 = (b, at) => (b[at] << 8) | b[at + 1];
const u32 = (b, at) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
const i32 = (b, at) => (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
const u64 = (b, at) => (BigInt(u32(b, at)) << 32n) | BigInt(u32(b, at + 4));
const i64 = (b, at) => BigInt.asIntN(64, u64(b, at));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function fourccAt(b, at) {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

/** A box type as text: its four letters when printable, else its hex (mp4.py fourcc). */
function fourcc(kind) {
  for (let k = 0; k < kind.length; k++) {
    const c = kind.charCodeAt(k);
    if (c < 0x20 || c >= 0x7f) {
      return "0x" + Array.from(kind, (ch) => ch.charCodeAt(0).toString(16).padStart(2, "0")).join("");
    }
  }
  return kind;
}

function sum(values) {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

// ---- boxes in an index buffer ('moov', 'moof') -------------------------------------------------

/** The boxes from start to end of a buffer, which they must fill exactly: [{type, start, body, end}]. */
function scan(buf, start, end, parent, wide) {
  const out = [];
  let pos = start;
  while (pos < end) {
    if (end - pos < 8) throw new Refusal(`${end - pos} bytes after the last box in '${parent}'`);
    let size = u32(buf, pos);
    const type = fourccAt(buf, pos + 4);
    let head = 8;
    if (size === 1) {
      if (!wide) throw new Refusal(`'${fourcc(type)}' has a 64-bit size (hls.js reads size 1 as 'to the end of the parent')`);
      if (end - pos < 16) throw new Refusal(`'${fourcc(type)}' box header runs past the end of '${parent}'`);
      const wideSize = u64(buf, pos + 8);
      if (wideSize > BigInt(end - pos)) throw new Refusal(`'${fourcc(type)}' box runs past the end of '${parent}'`);
      size = Number(wideSize);
      head = 16;
    } else if (size === 0) {
      throw new Refusal(`'${fourcc(type)}' in '${parent}' has size 0 ('to the end'): only a last top-level 'mdat' may`);
    }
    if (size < head) throw new Refusal(`'${fourcc(type)}' box smaller than its header`);
    if (size > end - pos) throw new Refusal(`'${fourcc(type)}' box runs past the end of '${parent}'`);
    if (type === "uuid" && size >= head + 16 && PIFF.has(hex(buf.subarray(pos + head, pos + head + 16)))) {
      throw new Refusal(`a PIFF 'uuid' box in '${parent}' (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')`);
    }
    out.push({ type, start: pos, body: pos + head, end: pos + size });
    pos += size;
  }
  return out;
}

/** A container's children by type, each allowed by rules and as many times as they say. */
function children(buf, box, rules, wide, start = -1) {
  const name = fourcc(box.type);
  const allowed = new Map(rules);
  const found = new Map();
  for (const child of scan(buf, start < 0 ? box.body : start, box.end, name, wide)) {
    const rule = allowed.get(child.type);
    if (rule === undefined) {
      throw new Refusal(`a '${fourcc(child.type)}' box inside '${name}' (not one every reader reads the same way)`);
    }
    const same = found.get(child.type) || [];
    if (same.length && rule !== ANY) {
      throw new Refusal(`two '${fourcc(child.type)}' boxes in '${name}' (readers differ on which counts)`);
    }
    same.push(child);
    found.set(child.type, same);
  }
  for (const [type, rule] of rules) {
    if (rule === ONE && !found.has(type)) throw new Refusal(`'${name}' has no '${fourcc(type)}' box`);
  }
  return found;
}

function only(found, type) {
  const boxes = found.get(type);
  return boxes && boxes.length ? boxes[0] : null;
}

function need(box, size) {
  if (box.end - box.body < size) throw new Refusal(`'${fourcc(box.type)}' box too short (${box.end - box.body} bytes)`);
  return box.body;
}

function fullBox(buf, box, versions = [0]) {
  const body = need(box, 4);
  const version = buf[body];
  if (!versions.includes(version)) throw new Refusal(`'${fourcc(box.type)}' box of version ${version}`);
  return [version, u32(buf, body) & 0xffffff];
}

function exact(box, end) {
  if (end !== box.end) {
    throw new Refusal(`'${fourcc(box.type)}' box holds ${Math.abs(box.end - end)} bytes ${box.end > end ? "past" : "short of"} its fields`);
  }
}

// ---- decoder configuration records (segbind/read/decoder_config.py) -----------------------------

function parseAvcc(record) {
  if (record.length < 7 || record[0] !== 1) throw new Refusal("invalid avcC record");
  const lengthSize = (record[4] & 3) + 1;
  let pos = 5;
  const sets = [[], []];
  for (let [which, mask] of [[0, 0x1f], [1, 0xff], [1, -1]]) {
    if (mask === -1) {
      if (![100, 110, 122, 144].includes(record[1]) || pos + 4 > record.length) break;
      pos += 3;
      mask = 0xff;
    }
    if (pos >= record.length) throw new Refusal("truncated avcC record");
    const count = record[pos] & mask;
    pos += 1;
    for (let k = 0; k < count; k++) {
      if (pos + 2 > record.length) throw new Refusal("truncated avcC record");
      const size = u16(record, pos);
      pos += 2;
      if (size === 0 || pos + size > record.length) throw new Refusal("truncated avcC record");
      sets[which].push(record.subarray(pos, pos + size));
      pos += size;
    }
  }
  return [lengthSize, sets[0].concat(sets[1])];
}

function parseHvcc(record) {
  if (record.length < 23 || record[0] !== 1) throw new Refusal("invalid hvcC record");
  const lengthSize = (record[21] & 3) + 1;
  let pos = 23;
  const units = [];
  for (let a = 0; a < record[22]; a++) {
    if (pos + 3 > record.length) throw new Refusal("truncated hvcC record");
    const kind = record[pos] & 0x3f;
    const count = u16(record, pos + 1);
    pos += 3;
    for (let k = 0; k < count; k++) {
      if (pos + 2 > record.length) throw new Refusal("truncated hvcC record");
      const size = u16(record, pos);
      pos += 2;
      if (size < 2 || pos + size > record.length) throw new Refusal("truncated hvcC record");
      const unit = record.subarray(pos, pos + size);
      const type = (unit[0] >> 1) & 0x3f;
      if (type !== kind) throw new Refusal(`hvcC array of type ${kind} holds a unit of type ${type}`);
      units.push(unit);
      pos += size;
    }
  }
  return [lengthSize, units];
}

// ---- the movie ('moov') ----------------------------------------------------------------------

class Track {
  constructor(trackId, handler, timescale, entry, stbl, kids) {
    Object.assign(this, { trackId, handler, timescale, entry, stbl, kids });
  }

  entryType() { return this.entry ? this.entry.type : ""; }

  line() {
    const kind = this.handler === "vide" ? "video" : this.handler === "soun" ? "audio" : "data";
    return `${kind} (${this.entry ? fourcc(this.entryType()) : "none"})`;
  }

  isVideo() {
    const type = this.entryType();
    return this.handler === "vide" || VIDEO_ENTRIES.has(type) || OTHER_VIDEO_ENTRIES.has(type);
  }
}

class Movie {
  constructor(buf, wide) {
    this.buf = buf;
    const moov = scan(buf, 0, buf.length, "file", wide)[0];
    const kids = children(buf, moov, MOOV, wide);
    const mvhd = kids.get("mvhd")[0];
    const [version] = fullBox(buf, mvhd, [0, 1]);
    const body = need(mvhd, version ? 24 : 16);
    this.timescale = u32(buf, body + (version ? 20 : 12));
    if (!this.timescale) throw new Refusal("the movie header's timescale is 0");
    this.fragmented = kids.has("mvex");
    this.tracks = [];
    const seen = new Set();
    for (const trak of kids.get("trak") || []) {
      const track = this.track(trak, wide);
      if (seen.has(track.trackId)) throw new Refusal(`two tracks with id ${track.trackId}`);
      seen.add(track.trackId);
      this.tracks.push(track);
    }
    this.trex = new Map();
    if (this.fragmented) {
      const mvex = children(buf, kids.get("mvex")[0], MVEX, wide);
      for (const trex of mvex.get("trex") || []) {
        fullBox(buf, trex);
        const at = need(trex, 24);
        exact(trex, at + 24);
        const trackId = u32(buf, at + 4);
        if (this.trex.has(trackId)) throw new Refusal(`two 'trex' boxes for track ${trackId}`);
        this.trex.set(trackId, [u32(buf, at + 8), u32(buf, at + 12), u32(buf, at + 16), u32(buf, at + 20)]);
      }
      for (const track of this.tracks) {
        const defaults = this.trex.get(track.trackId);
        if (!defaults) throw new Refusal(`track ${track.trackId} has no 'trex' box`);
        if (defaults[0] !== 1) {
          throw new Refusal(`track ${track.trackId}'s default sample description index is ${defaults[0]}, not 1 (Chromium falls back to the first, FFmpeg skips the fragments)`);
        }
      }
    }
  }

  track(trak, wide) {
    const buf = this.buf;
    const kids = children(buf, trak, TRAK, wide);
    const tkhd = kids.get("tkhd")[0];
    let [version] = fullBox(buf, tkhd, [0, 1]);
    let body = need(tkhd, version ? 24 : 16);
    const trackId = u32(buf, body + (version ? 20 : 12));
    if (!trackId) throw new Refusal("a track with id 0");
    const mdia = children(buf, kids.get("mdia")[0], MDIA, wide);
    const mdhd = mdia.get("mdhd")[0];
    [version] = fullBox(buf, mdhd, [0, 1]);
    body = need(mdhd, version ? 24 : 16);
    const timescale = u32(buf, body + (version ? 20 : 12));
    if (!timescale) throw new Refusal(`track ${trackId}'s timescale is 0`);
    const hdlr = mdia.get("hdlr")[0];
    fullBox(buf, hdlr, Array.from({ length: 256 }, (_, k) => k));
    body = need(hdlr, 12);
    const handler = fourccAt(buf, body + 8);
    const minf = children(buf, mdia.get("minf")[0], MINF, wide);
    const stbl = children(buf, minf.get("stbl")[0], STBL, wide);
    const stsd = stbl.get("stsd")[0];
    fullBox(buf, stsd);
    body = need(stsd, 8);
    const count = u32(buf, body + 4);
    const entries = scan(buf, body + 8, stsd.end, "stsd", wide);
    if (count !== entries.length) throw new Refusal(`'stsd' says ${count} sample entries and holds ${entries.length}`);
    const track = new Track(trackId, handler, timescale, entries.length ? entries[0] : null, stbl, kids);
    if (track.isVideo() && entries.length !== 1) {
      throw new Refusal(`video track ${trackId} has ${entries.length} sample entries, not one`);
    }
    if (track.isVideo()) {
      const dinf = only(minf, "dinf");
      if (dinf) this.selfContained(dinf, wide);
    }
    return track;
  }

  selfContained(dinf, wide) {
    const buf = this.buf;
    const dref = children(buf, dinf, DINF, wide).get("dref")[0];
    fullBox(buf, dref);
    const body = need(dref, 8);
    const entries = scan(buf, body + 8, dref.end, "dref", wide);
    if (!entries.length || !["url ", "urn "].includes(entries[0].type) || !(fullBox(buf, entries[0], [0])[1] & 1)) {
      throw new Refusal("the video's data reference is not this file");
    }
  }
}

/** The video track's sample entry: codec, length size, the record's units, protection. */
function describe(movie, track, wide) {
  const buf = movie.buf;
  const entry = track.entry;
  const kind = entry.type;
  let protection = null;
  const body = need(entry, 78);
  if (u16(buf, body + 6) !== 1) throw new Refusal("the video sample entry's data reference index is not 1");
  const depth = u16(buf, body + 74);
  if ([1, 2, 4, 8].includes(depth & 0x1f)) {
    throw new Refusal(`the video sample entry's depth is ${depth} (FFmpeg reads a palette there)`);
  }
  const rules = ENTRY.map(([t, r]) => [t, r]);
  let original = kind;
  const pre = scan(buf, body + 78, entry.end, fourcc(kind), wide);
  const sinfAt = rules.findIndex(([t]) => t === "sinf");
  if (kind === "encv") {
    const sinfs = pre.filter((b) => b.type === "sinf");
    if (sinfs.length !== 1) throw new Refusal(`an 'encv' entry with ${sinfs.length} 'sinf' boxes, not one`);
    [original, protection] = protectionOf(buf, sinfs[0], wide);
    rules[sinfAt] = ["sinf", ONE];
  } else {
    rules.splice(sinfAt, 1);
  }
  const codec = VIDEO_ENTRIES.get(original) || 0;
  const out = { codec, codecName: CODEC_NAMES.get(codec) || fourcc(original), lengthSize: 0, units: [], protection };
  if (!codec) return out;
  rules.push([CONFIG.get(codec), ONE]);
  const kids = children(buf, entry, rules, wide, body + 78);
  const config = kids.get(CONFIG.get(codec))[0];
  const record = buf.subarray(config.body, config.end);
  [out.lengthSize, out.units] = codec === CODEC_H264 ? parseAvcc(record) : parseHvcc(record);
  if (out.lengthSize === 3) throw new Refusal("the decoder configuration's NAL length size is 3");
  return out;
}

function protectionOf(buf, sinf, wide) {
  const kids = children(buf, sinf, SINF, wide);
  const frma = kids.get("frma")[0];
  let body = need(frma, 4);
  exact(frma, body + 4);
  const original = fourccAt(buf, body);
  if (!VIDEO_ENTRIES.has(original)) throw new Refusal(`protected video of format '${fourcc(original)}'`);
  const schm = kids.get("schm")[0];
  fullBox(buf, schm);
  body = need(schm, 12);
  const scheme = fourccAt(buf, body + 4);
  if (scheme !== "cenc" && scheme !== "cbcs") {
    throw new Refusal(`protection scheme '${fourcc(scheme)}' (Chromium plays 'cenc' and 'cbcs')`);
  }
  const tenc = children(buf, kids.get("schi")[0], SCHI, wide).get("tenc")[0];
  const [version] = fullBox(buf, tenc, [0, 1]);
  body = need(tenc, 24);
  const pattern = buf[body + 5];
  const isProtected = buf[body + 6];
  const ivSize = buf[body + 7];
  const kid = buf.slice(body + 8, body + 24);
  let end = body + 24;
  if (isProtected !== 1) throw new Refusal(`'tenc' default_isProtected is ${isProtected}, not 1`);
  let constantIv = new Uint8Array(0);
  if (ivSize === 0) {
    const size = end < tenc.end ? buf[end] : 0;
    if ((size !== 8 && size !== 16) || end + 1 + size > tenc.end) {
      throw new Refusal("'tenc' with no per-sample IV and no 8- or 16-byte constant IV");
    }
    constantIv = buf.slice(end + 1, end + 1 + size);
    end += 1 + size;
  } else if (ivSize !== 8 && ivSize !== 16) {
    throw new Refusal(`'tenc' per-sample IV size ${ivSize}`);
  }
  exact(tenc, end);
  return [original, {
    scheme, defaultKid: kid, ivSize, constantIv,
    cryptByteBlock: version ? pattern >> 4 : 0, skipByteBlock: version ? pattern & 15 : 0,
  }];
}

/** The media time the video's edit list starts the presentation at (mp4.py edit_list). */
function editStart(movie, track) {
  const buf = movie.buf;
  const edts = only(track.kids, "edts");
  if (!edts) return 0;
  const elst = children(buf, edts, EDTS, true).get("elst")[0];
  const [version] = fullBox(buf, elst, [0, 1]);
  const body = need(elst, 8);
  const count = u32(buf, body + 4);
  const width = version ? 20 : 12;
  exact(elst, body + 8 + count * width);
  let edits = [];
  const movieScale = BigInt(movie.timescale);
  for (let k = 0; k < count; k++) {
    const at = body + 8 + k * width;
    const duration = version ? u64(buf, at) : BigInt(u32(buf, at));
    const mediaTime = version ? i64(buf, at + 8) : BigInt(i32(buf, at + 4));
    const rate = u32(buf, at + width - 4);
    if (rate !== 0x10000) throw new Refusal(`an edit of media rate ${rate}/65536 (a dwell or a speed change)`, TIMING);
    if (mediaTime < -1n) throw new Refusal(`an edit of media time ${mediaTime}`, TIMING);
    edits.push([(duration * BigInt(track.timescale) + movieScale / 2n) / movieScale, mediaTime]);
  }
  if (!edits.length) return 0;
  if (edits.length === 2 && edits[0][1] === -1n && edits[1][1] >= 0n) {
    if (edits[0][0] !== edits[1][1]) {
      throw new Refusal(`an empty edit of ${edits[0][0]} ticks before media time ${edits[1][1]} (FFmpeg shifts the video by the difference, Chromium ignores both)`, TIMING);
    }
    edits = edits.slice(1);
  }
  if (edits.length > 1) throw new Refusal(`an edit list of ${edits.length} entries`, TIMING);
  const mediaTime = edits[0][1];
  if (mediaTime < 0n) throw new Refusal("an empty edit alone (FFmpeg delays the video, Chromium ignores it)", TIMING);
  return mediaTime < BigInt(MAX_TIME) ? Number(mediaTime) : MAX_TIME;
}

function entries(buf, box) {
  need(box, 8);
  return u32(buf, box.body + (box.type === "stsz" || box.type === "stz2" ? 8 : 4));
}

// ---- fragments ---------------------------------------------------------------------------------

function groups(buf, kids) {
  for (const kind of ["sbgp", "sgpd"]) {
    for (const box of kids.get(kind) || []) {
      need(box, 8);
      if (fourccAt(buf, box.body + 4) === "seig") {
        throw new Refusal(`a '${kind}' of grouping type 'seig' (per-sample keys: FFmpeg ignores them)`);
      }
    }
  }
}

class Fragments {
  constructor(movie, video, protection, mediaTime) {
    this.trex = movie.trex;
    this.tracks = new Map(movie.tracks.map((t) => [t.trackId, t]));
    this.videoId = video.trackId;
    this.protection = protection;
    this.mediaTime = mediaTime;
    this.lastDts = -1;
  }

  /** The plan of one fragment: moof is the whole 'moof' box, body the size of the next 'mdat' body. */
  plan(moof, body) {
    const box = scan(moof, 0, moof.length, "file", false)[0];
    const kids = children(moof, box, MOOF, false);
    const mfhd = kids.get("mfhd")[0];
    fullBox(moof, mfhd);
    exact(mfhd, need(mfhd, 8) + 8);
    const plan = { runs: [], total: 0 };
    const start = moof.length + 8;
    let at = start;
    const seen = new Set();
    const lastDts = this.lastDts;
    try {
      for (const traf of kids.get("traf") || []) at = this.traf(moof, traf, plan, at, start + body, seen);
      plan.total = at - start;
      if (plan.total !== body) {
        throw new Refusal(`the fragment's samples fill ${plan.total} bytes of its 'mdat' body of ${body} (bytes left over)`);
      }
    } catch (exc) {
      this.lastDts = lastDts;
      throw exc;
    }
    return plan;
  }

  traf(buf, traf, plan, at, limit, seen) {
    const kids = children(buf, traf, TRAF, false);
    const tfhd = kids.get("tfhd")[0];
    const [, flags] = fullBox(buf, tfhd);
    let body = need(tfhd, 8);
    const trackId = u32(buf, body + 4);
    if (!this.tracks.has(trackId)) throw new Refusal(`a 'traf' of track ${trackId}, which the movie does not hold`);
    if (seen.has(trackId)) throw new Refusal(`two 'traf' boxes of track ${trackId} in one 'moof'`);
    seen.add(trackId);
    if (flags & TFHD_BASE) throw new Refusal("a 'tfhd' with an explicit base_data_offset");
    if (!(flags & TFHD_BASE_IS_MOOF)) throw new Refusal("a 'tfhd' without default-base-is-moof");
    if (flags & TFHD_EMPTY) throw new Refusal("a 'tfhd' with duration-is-empty");
    let [sdi, defaultDuration, defaultSize, defaultFlags] = this.trex.get(trackId);
    let pos = body + 8;
    const fields = [];
    for (const bit of [TFHD_SDI, TFHD_DURATION, TFHD_SIZE, TFHD_FLAGS]) {
      if (flags & bit) {
        if (pos + 4 > tfhd.end) throw new Refusal(`'tfhd' box too short (${tfhd.end - tfhd.body} bytes)`);
        fields.push(u32(buf, pos));
        pos += 4;
      } else {
        fields.push(-1);
      }
    }
    exact(tfhd, pos);
    const [tfhdSdi, tfhdDuration, tfhdSize, tfhdFlags] = fields;
    if (tfhdSdi >= 0) sdi = tfhdSdi;
    if (sdi !== 1) throw new Refusal(`a 'tfhd' with sample description index ${sdi}, not 1`);
    let duration = tfhdDuration < 0 ? defaultDuration : tfhdDuration;
    let size = tfhdSize < 0 ? defaultSize : tfhdSize;
    if (tfhdDuration === 0 && defaultDuration !== 0) duration = -1;
    if (tfhdSize === 0 && defaultSize !== 0) size = -1;
    const sampleFlags = tfhdFlags < 0 ? defaultFlags : tfhdFlags;
    const tfdt = kids.get("tfdt")[0];
    const [version] = fullBox(buf, tfdt, [0, 1]);
    body = need(tfdt, version ? 12 : 8);
    const wide = version ? u64(buf, body + 4) : BigInt(u32(buf, body + 4));
    exact(tfdt, body + (version ? 12 : 8));
    if (wide >= BigInt(MAX_TIME)) throw new Refusal("a decode time past 2^53 ticks (hls.js reads it as a double)", TIMING);
    let dts = Number(wide);
    const video = trackId === this.videoId;
    groups(buf, kids);
    let sdtp = new Uint8Array(0);
    if (video && kids.has("sdtp")) {
      const box = kids.get("sdtp")[0];
      fullBox(buf, box);
      sdtp = buf.subarray(box.body + 4, box.end);
    }
    const runs = [];
    let countAll = 0;
    for (const trun of kids.get("trun") || []) {
      let run;
      [at, dts, run] = this.trun(buf, trun, plan, at, limit, dts, video, duration, size, sampleFlags, sdtp, countAll);
      if (run) {
        runs.push(run);
        countAll += run.count;
      }
    }
    if (video) this.encryption(buf, kids, runs, countAll);
    return at;
  }

  trun(buf, trun, plan, at, limit, dts, video, duration, size, defaultFlags, sdtp, index) {
    const [, flags] = fullBox(buf, trun, [0, 1]);
    const body = need(trun, 8);
    const count = u32(buf, body + 4);
    let pos = body + 8;
    if (!(flags & TRUN_OFFSET)) throw new Refusal("a 'trun' without data_offset");
    if (flags & TRUN_FIRST_FLAGS && flags & TRUN_FLAGS) {
      throw new Refusal("a 'trun' with both first-sample flags and per-sample flags");
    }
    const step = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO].filter((bit) => flags & bit).length;
    const end = pos + 4 + (flags & TRUN_FIRST_FLAGS ? 4 : 0) + count * step * 4;
    exact(trun, end);
    const offset = i32(buf, pos);
    pos += 4;
    let firstFlags = defaultFlags;
    if (flags & TRUN_FIRST_FLAGS) {
      firstFlags = u32(buf, pos);
      pos += 4;
    }
    if (offset !== at) {
      throw new Refusal(`a 'trun' whose data does not follow the fragment's previous run in its 'mdat' (gap or overlap of ${offset - at} bytes)`);
    }
    if (count === 0) return [at, dts, null];
    const columns = [];
    let col = 0;
    for (const bit of [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]) {
      if (flags & bit) {
        const values = new Array(count);
        for (let i = 0; i < count; i++) values[i] = u32(buf, pos + 4 * (i * step + col));
        columns.push(values);
        col += 1;
      } else {
        columns.push(null);
      }
    }
    const [durations, sizes, sflags, ctos] = columns;
    if (sizes === null && size <= 0) {
      throw new Refusal(size === 0 ? "samples of no size (FFmpeg refuses them, Chromium skips them)"
        : "a 'tfhd' default sample size of 0 (Chromium takes trex's, FFmpeg 0)");
    }
    if (sizes !== null && minOf(sizes) === 0) {
      throw new Refusal("a sample of 0 bytes (FFmpeg refuses it, Chromium skips it)");
    }
    const total = sizes !== null ? sum(sizes) : size * count;
    if (at + total > limit) throw new Refusal("a 'trun' whose data runs past the end of its 'mdat'");
    if (!video) {
      plan.runs.push([total, null]);
      return [at + total, dts, null];
    }
    if (durations === null && duration < 0) {
      throw new Refusal("a 'tfhd' default sample duration of 0 (Chromium takes trex's, FFmpeg 0)", TIMING);
    }
    if (ctos !== null && maxOf(ctos) >= MAX_OFFSET) {
      throw new Refusal("a negative composition offset (FFmpeg shifts decode times by the most negative so far, Chromium does not)", TIMING);
    }
    const run = { count, sizes, size, durations, duration, flags: sflags, firstFlags, defaultFlags, ctos, dts, senc: null };
    checkFlags(run, sdtp, index, Boolean(flags & (TRUN_FLAGS | TRUN_FIRST_FLAGS)));
    const inner = count > 1 ? (durations !== null ? minOf(durations.slice(0, -1)) : duration) : 1;
    if (dts <= this.lastDts || inner === 0) {
      throw new Refusal("a decode time not after the one before (FFmpeg discards the sample)", TIMING);
    }
    const span = durations !== null ? sum(durations) : duration * count;
    if (dts + span + (ctos !== null ? maxOf(ctos) : 0) >= MAX_TIME) {
      throw new Refusal("a time past 2^53 ticks (hls.js reads it as a double)", TIMING);
    }
    this.lastDts = dts + span - (durations !== null ? durations[count - 1] : duration);
    plan.runs.push([total, run]);
    return [at + total, dts + span, run];
  }

  encryption(buf, kids, runs, count) {
    const senc = only(kids, "senc");
    const protection = this.protection;
    if (!protection) {
      for (const kind of ["senc", "saiz", "saio"]) {
        if (kids.has(kind)) throw new Refusal(`a '${kind}' box in a clear video track`);
      }
      return;
    }
    if (!senc) {
      if (count) throw new Refusal("protected samples without a 'senc' box");
      return;
    }
    const [, flags] = fullBox(buf, senc);
    const body = need(senc, 8);
    const listed = u32(buf, body + 4);
    if (listed !== count) throw new Refusal(`'senc' holds ${listed} entries for ${count} samples`);
    const ivSize = protection.ivSize;
    const subsampled = Boolean(flags & 2);
    const cursor = { buf, pos: body + 8, ivSize, subsampled, constantIv: protection.constantIv };
    let pos = body + 8;
    const sizes = [];
    if (ivSize || subsampled) {
      for (const run of runs) {
        for (let i = 0; i < run.count; i++) {
          const start = pos;
          pos += ivSize;
          if (subsampled) {
            if (pos + 2 > senc.end) throw new Refusal("'senc' box too short");
            const parts = u16(buf, pos);
            pos += 2;
            if (parts === 0) throw new Refusal("a 'senc' entry with no subsamples");
            if (pos + 6 * parts > senc.end) throw new Refusal("'senc' box too short");
            let covered = 0;
            for (let k = 0; k < parts; k++) covered += u16(buf, pos + 6 * k) + u32(buf, pos + 6 * k + 2);
            pos += 6 * parts;
            if (covered !== (run.sizes !== null ? run.sizes[i] : run.size)) {
              throw new Refusal("subsample sizes that do not add up to their sample's");
            }
          } else if (pos > senc.end) {
            throw new Refusal("'senc' box too short");
          }
          sizes.push(pos - start);
        }
      }
    }
    exact(senc, pos);
    const saiz = only(kids, "saiz");
    const saio = only(kids, "saio");
    if (!saiz !== !saio) throw new Refusal("a 'saiz' without its 'saio', or the reverse");
    if (saiz && saio) auxInfo(buf, saiz, saio, senc, sizes, count, protection);
    for (const run of runs) run.senc = cursor;
  }
}

function minOf(values) {
  let least = Infinity;
  for (const v of values) if (v < least) least = v;
  return least;
}

function maxOf(values) {
  let most = -Infinity;
  for (const v of values) if (v > most) most = v;
  return most;
}

function sampleFlags(run, i) {
  if (run.flags !== null) return run.flags[i];
  return i === 0 ? run.firstFlags : run.defaultFlags;
}

/** The readers' sync samples must agree (mp4.py Fragments._check_flags). */
function checkFlags(run, sdtp, index, hlsReads) {
  const listed = run.flags !== null ? run.count : Math.min(run.count, 2);
  const withSdtp = Math.max(0, Math.min(run.count, sdtp.length - index));
  for (let i = 0; i < Math.max(listed, withSdtp); i++) {
    const flag = sampleFlags(run, i);
    const depends = (flag >>> 24) & 3;
    const chromium = depends || (i < withSdtp ? (sdtp[index + i] >> 4) & 3 : 0);
    if (depends === 3 || chromium === 3) {
      throw new Refusal("a sample's sample_depends_on is 3, reserved (Chromium refuses the fragment)");
    }
    if ((depends === 1) !== (chromium === 1) && !(flag & NON_SYNC)) {
      throw new Refusal("sample flags and 'sdtp' disagree on a sync sample");
    }
    if (hlsReads && (run.flags !== null || i === 0) && !(flag & NON_SYNC) && depends === 1) {
      throw new Refusal("a sample marked sync that depends on others (hls.js reads it as a keyframe)");
    }
  }
}

function auxInfo(buf, saiz, saio, senc, sizes, count, protection) {
  for (const box of [saiz, saio]) {
    const [, flags] = fullBox(buf, box, box === saio ? [0, 1] : [0]);
    let pos = box.body + 4;
    if (flags & 1) {
      need(box, 12);
      if (fourccAt(buf, pos) !== protection.scheme || u32(buf, pos + 4)) {
        throw new Refusal(`a '${box.type}' of another aux_info_type`);
      }
      pos += 8;
    }
    if (box === saiz) {
      if (pos + 5 > saiz.end) throw new Refusal("'saiz' box too short");
      const size = buf[pos];
      const listed = u32(buf, pos + 1);
      pos += 5;
      exact(saiz, pos + (size ? 0 : listed));
      let same;
      if (listed !== count) {
        same = false;
      } else if (size) {
        same = sizes.every((s) => s === size) && (sizes.length > 0 || count === 0);
      } else if (sizes.length) {
        same = sizes.every((s, k) => buf[pos + k] === s);
      } else {
        same = buf.subarray(pos, pos + listed).every((b) => b === 0);
      }
      if (!same) throw new Refusal("'saiz' and 'senc' disagree on the samples' encryption info");
    } else {
      const version = buf[saio.body];
      const width = version ? 8 : 4;
      if (pos + 4 > saio.end) throw new Refusal("'saio' box too short");
      const offsets = u32(buf, pos);
      exact(saio, pos + 4 + offsets * width);
      if (offsets !== 1) throw new Refusal(`a 'saio' of ${offsets} offsets, not one`);
      const offset = version ? u64(buf, pos + 4) : BigInt(u32(buf, pos + 4));
      if (offset !== BigInt(senc.body + 8)) throw new Refusal("'saio' does not point at the 'senc' entries");
    }
  }
}

function* runSamples(run, mediaTime) {
  let dts = run.dts;
  const senc = run.senc;
  for (let i = 0; i < run.count; i++) {
    const size = run.sizes !== null ? run.sizes[i] : run.size;
    const duration = run.durations !== null ? run.durations[i] : run.duration;
    const pts = dts + (run.ctos !== null ? run.ctos[i] : 0);
    const flag = sampleFlags(run, i);
    const sync = !(flag & NON_SYNC) && ((flag >>> 24) & 3) !== 1;
    let iv = new Uint8Array(0);
    let subsamples = null;
    if (senc) {
      const b = senc.buf;
      iv = senc.ivSize ? b.subarray(senc.pos, senc.pos + senc.ivSize) : senc.constantIv;
      senc.pos += senc.ivSize;
      if (senc.subsampled) {
        const parts = u16(b, senc.pos);
        subsamples = [];
        for (let k = 0; k < parts; k++) subsamples.push([u16(b, senc.pos + 2 + 6 * k), u32(b, senc.pos + 4 + 6 * k)]);
        senc.pos += 2 + 6 * parts;
      } else {
        subsamples = [[0, size]];
      }
    }
    yield { size, dts, pts, duration, sync, hidden: pts < mediaTime, iv, subsamples };
    dts += duration;
  }
}

// ---- the reader --------------------------------------------------------------------------------

/** A cursor over the bytes of one call, as Python's Source is over the stream. */
class Cursor {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  read(size) {
    const out = this.bytes.subarray(this.pos, Math.min(this.bytes.length, this.pos + size));
    this.pos += out.length;
    return out;
  }

  skip(size) {
    const target = this.pos + size;
    this.pos = Math.min(target, this.bytes.length);
    return target <= this.bytes.length;
  }

  /** [type, size (-1: to the end), header size] of the next box, or null at the end. */
  header() {
    const b = this.bytes;
    if (this.pos >= b.length) return null;
    if (b.length - this.pos < 8) {
      this.pos = b.length;
      throw new Refusal("the stream ends inside a box header");
    }
    let size = u32(b, this.pos);
    const type = fourccAt(b, this.pos + 4);
    this.pos += 8;
    if (size === 1) {
      if (b.length - this.pos < 8) {
        this.pos = b.length;
        throw new Refusal("the stream ends inside a box header");
      }
      const wide = u64(b, this.pos);
      this.pos += 8;
      if (wide < 16n) throw new Refusal(`'${fourcc(type)}' box smaller than its header`);
      size = wide > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(wide);
      return [type, size, 16, String(wide)];
    }
    if (size === 0) return [type, -1, 8, "0"];
    if (size < 8) throw new Refusal(`'${fourcc(type)}' box smaller than its header`);
    return [type, size, 8, String(size)];
  }
}

export class Mp4Reader {
  constructor() {
    this.fragments = null;
    this.done = false;
  }

  /** The init segment ('ftyp', 'moov'...; boxes after the 'moov' are read as fragments). */
  init(bytes) {
    const out = [];
    if (this.done || this.fragments) return this.done ? [] : [{ type: "error", text: "an init segment was read already" }];
    try {
      this._init(new Cursor(bytes), out);
    } catch (exc) {
      if (!(exc instanceof Refusal)) {
        out.push({ type: "error", text: `cannot read (${exc && exc.message ? exc.message : exc})` });
      } else {
        out.push({ type: "error", text: exc.text });
      }
      this.done = true;
    }
    return out;
  }

  /** A media segment: whole boxes, each 'moof' with its 'mdat'. */
  fragment(bytes) {
    const out = [];
    if (this.done) return out;
    if (!this.fragments) {
      this.done = true;
      return [{ type: "error", text: "no 'moov' box (not an MP4 movie)" }];
    }
    try {
      this._fragments(new Cursor(bytes), out);
    } catch (exc) {  // never expected: a defect rather than an exception out of here
      out.push({ type: "defect", text: `the fragment cannot be read (${exc && exc.message ? exc.message : exc})`, reason: FRAMING, fatal: true });
    }
    if (out.some((e) => e.type === "defect" && e.fatal)) this.done = true;
    return out;
  }

  _init(source, out) {
    let header;
    for (;;) {
      header = source.header();
      if (header === null) throw new Refusal("no 'moov' box (not an MP4 movie)");
      const [type, size, head] = header;
      if (!TOP_BEFORE_MOOV.has(type)) {
        if (type === "moof") throw new Refusal("a movie fragment before the movie header ('moov')");
        throw new Refusal(`a top-level '${fourcc(type)}' box before the movie header`);
      }
      if (type === "moov") break;
      if (size < 0) throw new Refusal(`'${fourcc(type)}' runs to the end of the stream before any 'moov'`);
      if (type === "mdat") {
        throw new Refusal("the index ('moov') comes after the media ('mdat'): read from a pipe, the stream must be spooled to a file first");
      }
      let left = size - head;
      if (type === "uuid") {
        const start = source.read(Math.min(16, left));
        if (PIFF.has(hex(start))) throw new Refusal("a PIFF 'uuid' box (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')");
        left -= start.length;
      }
      if (!source.skip(left)) throw new Refusal(`cut short inside '${fourcc(type)}'`);
    }
    const [, size, head, exactSize] = header;
    if (size < 0) throw new Refusal("'moov' runs to the end of the stream");
    if (size > MAX_INDEX_BYTES) throw new Refusal(`its index ('moov', ${exactSize} bytes) is larger than ${MAX_INDEX_BYTES >> 20} MiB`);
    const start = source.pos - head;
    if (source.read(size - head).length < size - head) throw new Refusal("cut short inside its 'moov'");
    const moov = source.bytes.subarray(start, start + size);
    let movie = new Movie(moov, true);
    if (!movie.fragmented) throw new Refusal("a progressive MP4 (no 'mvex'): the browser reads fragmented MP4 alone");
    movie = new Movie(moov, false);
    const [info, track, description] = this._describe(movie);
    out.push(info);
    let mediaTime;
    try {
      mediaTime = editStart(movie, track);
    } catch (exc) {
      if (!(exc instanceof Refusal)) throw exc;
      out.push({ type: "defect", text: exc.text, reason: exc.reason, fatal: true });
      this.done = true;
      return;
    }
    for (const other of movie.tracks) {
      if (["stts", "stsz", "stz2", "stco", "co64"].some((kind) => other.stbl.has(kind) && entries(moov, other.stbl.get(kind)[0]))) {
        out.push({ type: "defect", text: "a fragmented MP4 whose 'moov' lists samples (Chromium ignores them)", reason: FRAMING, fatal: true });
        this.done = true;
        return;
      }
    }
    this.fragments = new Fragments(movie, track, description.protection, mediaTime);
    this._fragments(source, out);
    if (out.some((e) => e.type === "defect" && e.fatal)) this.done = true;
  }

  _describe(movie) {
    let found = null;
    for (const track of movie.tracks) {
      if (track.handler === "vide" && track.entry && (VIDEO_ENTRIES.has(track.entry.type) || track.entry.type === "encv")) {
        const description = describe(movie, track, !movie.fragmented);
        if (description.codec) {
          found = [track, description];
          break;
        }
      }
    }
    if (!found) {
      const videos = movie.tracks.filter((t) => t.isVideo());
      if (videos.length) throw new Refusal(`no H.264 or H.265 video (video is ${fourcc(videos[0].entryType())})`);
      const audio = movie.tracks.filter((t) => t.handler === "soun").map((t) => fourcc(t.entryType()));
      if (audio.length) throw new Refusal(`no H.264 or H.265 video (audio only: ${audio.join(", ")})`);
      throw new Refusal("no H.264 or H.265 video track");
    }
    const [track, description] = found;
    const others = movie.tracks.filter((t) => t !== track);
    const info = {
      type: "track", codec: description.codec, codecName: description.codecName, lengthSize: description.lengthSize,
      configUnits: description.units, timescale: track.timescale, others: others.map((t) => t.line()),
      otherVideo: others.some((t) => t.isVideo()), protection: description.protection,
    };
    return [info, track, description];
  }

  _fragments(source, out) {
    const defect = (text, reason = FRAMING, fatal = false) => out.push({ type: "defect", text, reason, fatal });
    const fragments = this.fragments;
    let header = null;
    for (;;) {
      let type;
      let size;
      try {
        if (header === null) header = source.header();
        if (header === null) return;
        let head;
        [type, size, head] = header;
        header = null;
        if (size < 0) throw new Refusal(`'${fourcc(type)}' has size 0 ('to the end') in a fragmented MP4 (Chromium refuses it)`);
        if (head === 16) throw new Refusal(`'${fourcc(type)}' has a 64-bit size (hls.js reads size 1 as 'to the end of the parent')`);
      } catch (exc) {
        if (!(exc instanceof Refusal)) throw exc;
        defect(exc.text, FRAMING, true);
        return;
      }
      if (type === "moof") {
        if (size > MAX_INDEX_BYTES) {
          defect(`a 'moof' larger than ${MAX_INDEX_BYTES >> 20} MiB`, FRAMING, true);
          return;
        }
        const start = source.pos - 8;
        if (source.read(size - 8).length < size - 8) {
          defect("the stream ends inside a 'moof'", FRAMING, true);
          return;
        }
        try {
          header = source.header();
        } catch (exc) {
          if (!(exc instanceof Refusal)) throw exc;
          defect(exc.text, FRAMING, true);
          return;
        }
        if (header !== null && (header[1] < 0 || header[2] === 16)) continue;
        if (header === null || header[0] !== "mdat") {
          defect("a 'moof' not followed by its 'mdat'");
          continue;
        }
        const body = header[1] - 8;
        header = null;
        let plan;
        try {
          plan = fragments.plan(source.bytes.subarray(start, start + size), body);
        } catch (exc) {
          if (!(exc instanceof Refusal)) throw exc;
          defect(exc.text, exc.reason);
          if (!source.skip(body)) {
            defect("the stream ends inside an 'mdat'", FRAMING, true);
            return;
          }
          continue;
        }
        if (!this._readPlan(source, plan, out)) return;
        continue;
      }
      if (type === "mdat") {
        defect("an 'mdat' that follows no 'moof'");
      } else if (type === "moov") {
        defect("a second movie header ('moov')", FRAMING, true);
        return;
      } else if (!TOP_FRAGMENTED.has(type)) {
        defect(`a top-level '${fourcc(type)}' box in a fragmented MP4 (Chromium refuses it)`);
      } else if (type === "uuid") {
        const start = source.read(Math.min(16, size - 8));
        if (PIFF.has(hex(start))) defect("a PIFF 'uuid' box (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')");
        size -= start.length;
      }
      if (!source.skip(size - 8)) {
        defect(`the stream ends inside a '${fourcc(type)}' box`, FRAMING, true);
        return;
      }
    }
  }

  /** The samples of a fragment's 'mdat'; false when the bytes end first (a fatal defect). */
  _readPlan(source, plan, out) {
    const ended = () => {
      out.push({ type: "defect", text: "the stream ends inside an 'mdat'", reason: FRAMING, fatal: true });
      return false;
    };
    for (const [length, run] of plan.runs) {
      if (run === null) {
        if (!source.skip(length)) return ended();
        continue;
      }
      for (const s of runSamples(run, this.fragments.mediaTime)) {
        if (s.size > MAX_SAMPLE_BYTES) {
          out.push({ type: "defect", text: `a sample of ${s.size} bytes (more than ${MAX_SAMPLE_BYTES >> 20} MiB)`, reason: FRAMING, fatal: false });
          if (!source.skip(s.size)) return ended();
          continue;
        }
        if (s.hidden) {
          // FFmpeg reads a fragment's samples without the edit list's discard flag: it shows what
          // the edit list hides from Chromium (read/mp4.py _read_plan)
          out.push({ type: "defect", text: "an edit list hides a picture of a fragment (FFmpeg shows it)", reason: TIMING, fatal: false });
          if (!source.skip(s.size)) return ended();
          continue;
        }
        const data = source.read(s.size);
        if (data.length < s.size) return ended();
        out.push({
          type: "sample", data, pts: s.pts, dts: s.dts, duration: s.duration, hidden: s.hidden, sync: s.sync,
          iv: s.iv, subsamples: s.subsamples,
        });
      }
    }
    return true;
  }
}
