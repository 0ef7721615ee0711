// The browser's fMP4 reader (src/segbind/web/segbind-mp4.js) alone, under Node's test runner:
//     node --test tests/web/mp4.test.mjs
// On a small fMP4 built here box by box (an avc1 track whose samples are opaque bytes: the
// reader parses no NAL unit), each rule's refusal, the samples as subarrays of the input, and
// entry points that return events and never throw whatever the bytes. tests/web/test_js_mp4.py
// runs it, and compares this reader with segbind.read.mp4 on real files from real muxers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Mp4Reader } from "../../src/segbind/web/segbind-mp4.js";

// ---- a small builder ------------------------------------------------------------------------

const enc = new TextEncoder();

function cat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32(v) { return new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]); }
function u16(v) { return new Uint8Array([v >>> 8, v & 255]); }
function u64(v) { return cat(u32(Math.floor(v / 2 ** 32)), u32(v % 2 ** 32)); }
function box(type, ...payload) { const body = cat(...payload); return cat(u32(8 + body.length), enc.encode(type), body); }
function full(type, version, flags, ...payload) { return box(type, u32(((version << 24) | flags) >>> 0), ...payload); }

const SPS = new Uint8Array([0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84]);
const PPS = new Uint8Array([0x68, 0xce, 0x3c, 0x80]);

function avc1() {
  const avcc = box("avcC", new Uint8Array([1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]), u16(SPS.length), SPS,
    new Uint8Array([1]), u16(PPS.length), PPS);
  const fields = new Uint8Array(78);
  fields.set(u16(1), 6);          // data_reference_index
  fields.set(u16(64), 24);        // width
  fields.set(u16(48), 26);        // height
  fields.set(u16(0x18), 74);      // depth
  fields.set(u16(0xffff), 76);
  return box("avc1", fields, avcc);
}

function init({ elst = null } = {}) {
  const stbl = box("stbl", full("stsd", 0, 0, u32(1), avc1()), full("stts", 0, 0, u32(0)),
    full("stsc", 0, 0, u32(0)), full("stsz", 0, 0, u32(0), u32(0)), full("stco", 0, 0, u32(0)));
  const minf = box("minf", full("vmhd", 0, 1, new Uint8Array(8)),
    box("dinf", full("dref", 0, 0, u32(1), full("url ", 0, 1))), stbl);
  const mdia = box("mdia", full("mdhd", 0, 0, u32(0), u32(0), u32(90000), u32(0), u16(0x55c4), u16(0)),
    full("hdlr", 0, 0, u32(0), enc.encode("vide"), new Uint8Array(12), enc.encode("video\0")), minf);
  const tkhd = full("tkhd", 0, 3, u32(0), u32(0), u32(1), u32(0), u32(0), new Uint8Array(60));
  const edts = elst ? [box("edts", full("elst", 0, 0, u32(elst.length), ...elst.map(([d, t, r]) => cat(u32(d), u32(t >>> 0), u32(r)))))] : [];
  const trak = box("trak", tkhd, ...edts, mdia);
  const mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), new Uint8Array(80));
  const mvex = box("mvex", full("trex", 0, 0, u32(1), u32(1), u32(3600), u32(0), u32(0x01010000)));
  return cat(box("ftyp", enc.encode("isom"), u32(512), enc.encode("isomiso6")), box("moov", mvhd, trak, mvex));
}

const SYNC = 0x02000000;

/** A fragment: moof + mdat; samples are [size, cto]. Options change one rule's field. */
function fragment(seq, dts, samples, o = {}) {
  const count = samples.length;
  const datas = samples.map(([size], k) => new Uint8Array(size).fill((seq * 16 + k) & 255));
  const tfhdFlags = o.tfhdFlags ?? 0x20000;
  const trunFlags = o.trunFlags ?? (0x1 | 0x4 | 0x200 | 0x800);
  const trun = (offset) => {
    const entries = samples.map(([size, cto]) => cat(...(trunFlags & 0x100 ? [u32(3600)] : []), u32(size),
      ...(trunFlags & 0x800 ? [u32(cto)] : [])));
    return full("trun", o.trunVersion ?? 0, trunFlags, u32(count), ...(trunFlags & 1 ? [u32(offset)] : []),
      ...(trunFlags & 4 ? [u32(SYNC)] : []), ...entries);
  };
  const tfhd = full("tfhd", 0, tfhdFlags, u32(o.trackId ?? 1), ...(tfhdFlags & 1 ? [u64(0)] : []),
    ...(tfhdFlags & 2 ? [u32(o.sdi ?? 1)] : []));
  const tfdt = o.noTfdt ? [] : [full("tfdt", 1, 0, u64(dts))];
  const moof = (offset) => box("moof", full("mfhd", 0, 0, u32(seq)), box("traf", tfhd, ...tfdt, trun(offset)),
    ...(o.extraTraf ? [box("traf", tfhd, ...tfdt, trun(offset))] : []));
  const size = moof(0).length;
  const body = cat(...datas, o.extra ?? new Uint8Array(0));
  return cat(moof(size + 8 + (o.shift ?? 0)), box("mdat", body));
}

const GOP = [[900, 3600], [200, 10800], [150, 0], [170, 3600]];

function read(...parts) {
  const reader = new Mp4Reader();
  return parts.flatMap((part, k) => (k === 0 ? reader.init(part) : reader.fragment(part)));
}

function defects(events) { return events.filter((e) => e.type === "defect"); }
function samples(events) { return events.filter((e) => e.type === "sample"); }

// ---- tests -----------------------------------------------------------------------------------

test("the track and its samples, as subarrays of the bytes given", () => {
  const second = fragment(2, 14400, GOP);
  const reader = new Mp4Reader();
  const [track, ...rest] = reader.init(init());
  assert.equal(rest.length, 0);
  assert.deepEqual([track.type, track.codec, track.codecName, track.lengthSize, track.timescale, track.others,
    track.otherVideo, track.protection], ["track", 1, "h264", 4, 90000, [], false, null]);
  assert.deepEqual(track.configUnits.map((u) => Array.from(u)), [Array.from(SPS), Array.from(PPS)]);
  const first = reader.fragment(fragment(1, 0, GOP));
  const more = reader.fragment(second);
  assert.deepEqual(first.map((e) => [e.type, e.data.length, e.dts, e.pts, e.duration, e.sync, e.hidden]), [
    ["sample", 900, 0, 3600, 3600, true, false], ["sample", 200, 3600, 14400, 3600, false, false],
    ["sample", 150, 7200, 7200, 3600, false, false], ["sample", 170, 10800, 14400, 3600, false, false]]);
  assert.equal(more.length, 4);
  for (const e of more) assert.equal(e.data.buffer, second.buffer);
  assert.equal(more[0].data[0], 32);
});

const refusals = {
  "a trun without data_offset": [{ trunFlags: 0x4 | 0x200 | 0x800 }, "a 'trun' without data_offset"],
  "an explicit base_data_offset": [{ tfhdFlags: 0x20001 }, "a 'tfhd' with an explicit base_data_offset"],
  "no default-base-is-moof": [{ tfhdFlags: 0 }, "a 'tfhd' without default-base-is-moof"],
  "two trafs of the track": [{ extraTraf: true }, "two 'traf' boxes of track 1 in one 'moof'"],
  "a gap before the samples": [{ shift: 4 }, "gap or overlap of 4 bytes"],
  "bytes left over": [{ extra: new Uint8Array(3) }, "the fragment's samples fill 1420 bytes of its 'mdat' body of 1423 (bytes left over)"],
  "no tfdt": [{ noTfdt: true }, "'traf' has no 'tfdt' box"],
  "sample description 2": [{ tfhdFlags: 0x20002, sdi: 2 }, "a 'tfhd' with sample description index 2, not 1"],
  "a traf of another track": [{ trackId: 7 }, "a 'traf' of track 7, which the movie does not hold"],
};

test("each rule's refusal costs only its fragment", () => {
  for (const [name, [options, text]] of Object.entries(refusals)) {
    const events = read(init(), fragment(1, 0, GOP, options), fragment(2, 14400, GOP));
    assert.deepEqual(defects(events).map((e) => [e.text.includes(text) ? text : e.text, e.fatal]), [[text, false]], name);
    assert.equal(samples(events).length, 4, name);
  }
});

test("timing refusals: a negative composition offset, decode times going back, past 2^53", () => {
  let events = read(init(), fragment(1, 0, [[900, 0], [200, 0xfffffe00]], { trunVersion: 1 }));
  assert.equal(defects(events)[0].text.split(" (")[0], "a negative composition offset");
  assert.equal(defects(events)[0].reason, "timing");
  events = read(init(), fragment(1, 7200, GOP), fragment(2, 3600, GOP));
  assert.deepEqual(defects(events).map((e) => e.text), ["a decode time not after the one before (FFmpeg discards the sample)"]);
  events = read(init(), fragment(1, 2 ** 53, GOP));
  assert.deepEqual(defects(events).map((e) => e.text), ["a decode time past 2^53 ticks (hls.js reads it as a double)"]);
});

test("edit lists: a picture one edit hides in a fragment is a timing refusal; two edits refuse the track", () => {
  let events = read(init({ elst: [[0, 7200, 0x10000]] }), fragment(1, 0, GOP));  // pts 3600 (hidden), 14400, 7200, 14400
  assert.deepEqual(events.slice(1).map((e) => (e.type === "sample" ? [e.type, e.pts, e.hidden] : [e.type, e.text, e.reason, e.fatal])), [
    ["defect", "an edit list hides a picture of a fragment (FFmpeg shows it)", "timing", false],
    ["sample", 14400, false], ["sample", 7200, false], ["sample", 14400, false]]);  // FFmpeg shows it: never handed on
  events = read(init({ elst: [[10, 0, 0x10000], [10, 0, 0x10000]] }), fragment(1, 0, GOP));
  assert.deepEqual(events.slice(1).map((e) => [e.type, e.text, e.reason, e.fatal]),
    [["defect", "an edit list of 2 entries", "timing", true]]);
  events = read(init({ elst: [[80, -1, 0x10000], [0, 7200, 0x10000]] }), fragment(1, 0, GOP));
  assert.equal(samples(events).length, 3, "an empty edit as long as the media time it skips: a net shift of 0");
  assert.deepEqual(defects(events).map((e) => e.text), ["an edit list hides a picture of a fragment (FFmpeg shows it)"]);
});

test("box sizes: 64-bit and 'to the end' refused in fragments, a second moov is fatal", () => {
  const frag = fragment(1, 0, GOP);
  const mdatAt = frag.length - 1420 - 8;
  const wide = cat(frag.subarray(0, mdatAt), u32(1), enc.encode("mdat"), u64(16 + 1420), frag.subarray(mdatAt + 8));
  assert.equal(defects(read(init(), wide))[0].text, "'mdat' has a 64-bit size (hls.js reads size 1 as 'to the end of the parent')");
  const toEnd = cat(frag.subarray(0, mdatAt), u32(0), frag.subarray(mdatAt + 4));
  assert.equal(defects(read(init(), toEnd))[0].text, "'mdat' has size 0 ('to the end') in a fragmented MP4 (Chromium refuses it)");
  const moov = init().subarray(24);  // after the ftyp
  const events = read(init(), frag, moov, fragment(2, 14400, GOP));
  assert.deepEqual(defects(events).map((e) => [e.text, e.fatal]), [["a second movie header ('moov')", true]]);
  assert.equal(samples(events).length, 4);
});

test("the init segment: errors, never exceptions", () => {
  assert.deepEqual(read(new Uint8Array(0)), [{ type: "error", text: "no 'moov' box (not an MP4 movie)" }]);
  assert.deepEqual(read(cat(fragment(1, 0, GOP), init())),
    [{ type: "error", text: "a movie fragment before the movie header ('moov')" }]);
  const reader = new Mp4Reader();
  assert.deepEqual(reader.fragment(fragment(1, 0, GOP)), [{ type: "error", text: "no 'moov' box (not an MP4 movie)" }]);
  assert.deepEqual(reader.fragment(fragment(1, 0, GOP)), []);
});

function prng(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

function shape(events) {
  for (const e of events) {
    assert.ok(["track", "sample", "defect", "error"].includes(e.type), e.type);
    if (e.type === "defect" || e.type === "error") assert.ok(e.text && !e.text.includes("\n"), e.text);
  }
  const fatal = events.findIndex((e) => (e.type === "defect" && e.fatal) || e.type === "error");
  assert.ok(fatal < 0 || fatal === events.length - 1, "nothing after a fatal defect or an error");
}

test("whatever the bytes: events, never an exception (truncations, flips, random bytes)", () => {
  const stream = cat(init(), fragment(1, 0, GOP), fragment(2, 14400, GOP));
  for (let cut = 0; cut <= stream.length; cut += 7) shape(read(stream.subarray(0, cut)));
  const random = prng(0x5e6b1d);
  for (let k = 0; k < 3000; k++) {
    const mutant = stream.slice();
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
      const at = random() < 0.7 ? Math.floor(random() * 1500) : Math.floor(random() * mutant.length);
      mutant[at] ^= 1 << Math.floor(random() * 8);
    }
    shape(read(mutant));
    const split = 1000 + Math.floor(random() * 600);
    shape(read(mutant.subarray(0, split), mutant.subarray(split)));
  }
  for (let k = 0; k < 300; k++) {
    const noise = new Uint8Array(1 + Math.floor(random() * 400)).map(() => Math.floor(random() * 256));
    shape(read(noise));
    shape(read(init(), noise));
  }
});
