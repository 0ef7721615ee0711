#!/usr/bin/env node
// The browser gate's speed on fMP4 in Node: FragmentGate (segbind-verify.js) over the fragments
// of ~10 s of 1080p H.264 as `segbind hls --type fmp4` writes them ('cenc', FORMAT.md 4.4),
// against node:crypto's HMAC-SHA256 over the same bytes, measured in the same run (CPU time of
// the whole process, WebCrypto's worker threads included; rounds interleaved, best of each
// kept). Target: 0.5. Then the same gate decrypting what it passed for a decoder (a display's
// `decrypt`: WebCrypto AES-128-CTR, a clear fMP4 written): its ratio, and what the decryption
// alone costs (MB/s of the fragments' bytes), next to node:crypto's AES-128-CTR over them.
//
//     node tools/bench_js_gate.mjs                      # 1080p, 10 s (the clip is cached)
//     node tools/bench_js_gate.mjs --seconds 1 --size 320x180 --rounds 2   # a quick smoke run
//
// The material is made by the Python side, once: host_sim.clips encodes libx264 (PyAV), the
// camera's Segmenter and Tagger cut and tag it, segbind.write.write_hls packages it (what
// `segbind hls --type fmp4` runs). Python: $SEGBIND_PYTHON, else .venv/bin/python, else python3.
// Prints one line: the ratio and whether the target is "met" or "not met".

import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { PeriodKeyring } from "../src/segbind/web/segbind-grants.js";
import { FragmentGate, StreamVerifier, fromHex } from "../src/segbind/web/segbind-verify.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TARGET = 0.5;

function options(argv) {
  const out = { seconds: 10, size: "1920x1080", rounds: 25, fps: 25 };
  for (let k = 0; k < argv.length; k += 2) {
    const name = argv[k].replace(/^--/, "");
    if (!(name in out) || argv[k + 1] === undefined) {
      process.stderr.write("usage: node tools/bench_js_gate.mjs [--seconds S] [--size WxH] [--rounds N]\n");
      process.exit(2);
    }
    out[name] = name === "size" ? argv[k + 1] : Number(argv[k + 1]);
  }
  return out;
}

function python() {
  if (process.env.SEGBIND_PYTHON) return process.env.SEGBIND_PYTHON;
  const venv = path.join(ROOT, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

// Writes key.json (the owner's period grants) and hls/ (init + media segments) into the directory.
const MAKE = `
import hashlib, json, sys
from pathlib import Path
from host_sim import clips
from segbind import Binding, Epoch
from segbind.write import write_hls
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger
out, frames, width, height, fps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
epoch = Epoch.of_pairing(hashlib.sha256(b"bench").digest(), "alice", "cam-1", 1, [])
video = clips.encode_pyav(frames=frames, width=width, height=height, fps=fps, gop=2 * fps, seed=3)
segmenter = Segmenter(delimit=True)
tagged, at, tagger = bytearray(), 1_795_000_000_000, None
for s in segmenter.push(video) + segmenter.finish():
    if isinstance(s, Segment):
        tagger = tagger or Tagger(epoch, at, codec=s.codec)
        tagged += tagger.tag(s.data, s.units, at, s.duration_ms, s.pictures)[0]
        at += s.duration_ms
(out / "tagged.h264").write_bytes(tagged)
(out / "hls").mkdir()
write_hls(str(out / "tagged.h264"), str(out / "hls" / "t.m3u8"), "fmp4", 2.0)
grants = Binding.periods_of_epoch(epoch, 1_795_000_000_000, at)
(out / "key.json").write_text(json.dumps([b.to_json() for b in grants]))
`;

/** The fragments and the owner's grant, made afresh in a temporary directory (the clip itself is cached). */
function material({ seconds, size, fps }) {
  const [width, height] = size.split("x").map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "segbind-bench-js-gate-"));
  try {
    const made = spawnSync(python(), ["-c", MAKE, dir, String(Math.round(seconds * fps)), String(width), String(height), String(fps)],
      { cwd: ROOT, env: { ...process.env, PYTHONPATH: ROOT }, encoding: "utf8" });
    if (made.status !== 0) {
      process.stderr.write(`the benchmark's material could not be made:\n${made.stderr}`);
      process.exit(2);
    }
    const hls = path.join(dir, "hls");
    const read = (name) => new Uint8Array(fs.readFileSync(path.join(hls, name)));
    const media = fs.readdirSync(hls).filter((n) => n.endsWith(".m4s")).sort();
    return { grants: JSON.parse(fs.readFileSync(path.join(dir, "key.json"), "utf8")), init: read("t_init.mp4"), fragments: media.map(read) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The owner's period keys as a display's grants give them (a PeriodKeyring: keys not extractable). */
async function keyringOf(grants) {
  const ring = new PeriodKeyring();
  for (const g of grants) {
    await ring.grant({ keyId: fromHex(g.key_id), owner: g.owner, camera: g.camera, epoch: BigInt(g.epoch), epochId: g.epoch_id,
      period: BigInt(g.period), periodS: BigInt(g.period_s), slot: BigInt(g.slot), key: fromHex(g.key), contentKey: fromHex(g.content_key) });
  }
  return ring;
}

async function main() {
  const opts = options(process.argv.slice(2));
  const { grants, init, fragments } = material(opts);
  const keyring = await keyringOf(grants);
  const key = Buffer.from(grants[0].key, "hex");
  const contentKey = Buffer.from(grants[0].content_key, "hex");
  const bytes = fragments.reduce((n, f) => n + f.length, 0);

  const baseline = async () => {
    for (const fragment of fragments) crypto.createHmac("sha256", key).update(fragment).digest();
  };
  const aes = async () => {  // node:crypto's AES-128-CTR over the same bytes: what decryption is near
    for (const fragment of fragments) crypto.createCipheriv("aes-128-ctr", contentKey, Buffer.alloc(16)).update(fragment);
  };
  const gate = (decrypt) => async () => {  // a display's gate, from its first fragment
    const g = new FragmentGate(new StreamVerifier(keyring), { decrypt });
    if (g.init(init)) throw new Error(`init refused: ${g.initProblem}`);
    for (const fragment of fragments) {
      const { pass, verdicts, media } = await g.fragment(fragment);
      if (!pass || (decrypt && !media)) throw new Error(`benchmark fragment refused (${verdicts.map(String).join("; ")}): the benchmark is broken`);
    }
  };
  const runs = { baseline, aes, gate: gate(false), decrypting: gate(true) };
  await runs.gate();  // warm up (and check) once
  await runs.decrypting();
  const best = Object.fromEntries(Object.keys(runs).map((name) => [name, Infinity]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const [name, run] of Object.entries(runs)) {
      const t0 = cpuSeconds();
      await run();
      best[name] = Math.min(best[name], cpuSeconds() - t0);
    }
  }
  const ratio = best.baseline / best.gate;
  const mbps = (seconds) => (bytes / seconds / 1e6).toFixed(0);
  process.stdout.write(`JavaScript gate on fMP4 (H.264 ${opts.size}, ${opts.seconds} s, ${(bytes / 1e6).toFixed(1)} MB in ` +
    `${fragments.length} fragments): ${ratio.toFixed(2)} of node:crypto HMAC-SHA256 over the same bytes ` +
    `(${mbps(best.gate)} MB/s against ${mbps(best.baseline)} MB/s, CPU time, best of ${opts.rounds}); ` +
    `target ${TARGET}: ${ratio >= TARGET ? "met" : "not met"}; decrypting for the decoder too: ` +
    `${(best.baseline / best.decrypting).toFixed(2)} (${mbps(best.decrypting)} MB/s; the decryption alone ` +
    `${mbps(Math.max(best.decrypting - best.gate, 1e-9))} MB/s, node:crypto AES-128-CTR ${mbps(best.aes)} MB/s)\n`);
}

await main();
