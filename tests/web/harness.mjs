// Feeds cases made in Python to the JavaScript verifier and prints its verdicts, so the
// tests can compare them with the Python verifier's on the same bytes.
//
//   node tests/web/harness.mjs verdicts CASES.json    -> {"NAME": [reason, ...], ...}
//   node tests/web/harness.mjs media CASES.json       -> {"NAME": {init, fragments}, ...}
//   node tests/web/harness.mjs grants CASES.json      -> {"NAME": "ok" | refusal, ...}
//
// verdicts: each case is {name, keyring: [BINDING, ...] (segbind.Binding.to_json: period keys
// by key id), revoked: [[owner, epoch id HEX]], camera, owner, window: {maxAgeS, maxFutureS} |
// null, now, recording, inputs: [...]}; each input is {annexb: HEX} (one segment), {stream: HEX}
// (an Annex-B stream cut into segments), {init: HEX} then {fragment: HEX} (fMP4, through the
// FragmentGate a display uses; a fragment also reports "pass" or "held"; {fragments: [HEX...]}
// gives them to the gate all at once), or {finish: true}.
// With `details: true`, each verdict is "reason: detail" (the texts must agree too); with a
// list of reasons, the verdicts of those reasons only. With `plaintext: true`, each accepted
// segment also reports "plaintext SHA256" of what it decrypts to (an Annex-B segment, a stream's
// segment; a fragment's segments only when the whole fragment passes, as the gate decrypts them).
//
// media: each case is {name, keyring, inputs: [{init: HEX}, {fragment: HEX}, ...]}: what a
// display that decrypts hands its decoder, {init: HEX (the init segment it appends), fragments:
// [HEX | null, ...] (each fragment's clear fMP4, null when held)}.
//
// grants: each case is {name, display: {id, secret}, owner: ACCOUNT CARD | null,
// messages: [SEALED, ...]}; the display opens the messages in turn and reports, for each,
// "ok SERIAL owner/camera/epoch/epoch id/period/slot,..." (every period it holds then) or the refusal.

import fs from "node:fs";

import { DisplayGrants, DisplayIdentity, GrantError, parseStrictJson } from "../../src/segbind/web/segbind-grants.js";
import { FragmentGate, StreamVerifier, annexbSegments, fromHex, sha256, toHex } from "../../src/segbind/web/segbind-verify.js";
import { keyringOf } from "./keyring.mjs";

async function verdicts(c) {
  const keyring = await keyringOf(c.keyring, c.revoked || []);
  const verifier = new StreamVerifier(keyring, {
    camera: c.camera ?? null,
    owner: c.owner ?? null,
    window: c.window ?? null,
    recording: Boolean(c.recording),
    clock: () => c.now,
  });
  const gate = new FragmentGate(verifier, { decrypt: Boolean(c.plaintext) });
  const detailed = (v) => c.details === true || (Array.isArray(c.details) && c.details.includes(v.reason));
  const say = (v) => (detailed(v) ? `${v.reason}: ${v.detail}` : v.reason);
  const out = [];
  const plain = async (v) => {  // an accepted segment's plaintext, when asked for
    if (c.plaintext && v.accepted) out.push(`plaintext ${toHex(await sha256(await v.plaintext()))}`);
  };
  const gated = async ({ pass, verdicts: found, media }) => {
    for (const v of found) {
      out.push(say(v));
      if (pass && c.plaintext && v.accepted) out.push(`plaintext ${toHex(await sha256(v.clear))}`);
    }
    out.push(pass ? "pass" : "held");
    if (c.plaintext && (media !== null) !== pass) throw new Error("the gate decrypted a fragment it held, or not one it passed");
  };
  for (const input of c.inputs) {
    if (input.annexb !== undefined) {
      const v = await verifier.verifyAnnexB(fromHex(input.annexb));
      out.push(say(v));
      await plain(v);
    } else if (input.stream !== undefined) {
      for (const segment of annexbSegments(fromHex(input.stream))) {
        const v = await verifier.verifySegment(segment);
        out.push(say(v));
        await plain(v);
      }
    } else if (input.init !== undefined) {
      if (gate.init(fromHex(input.init))) out.push("init refused");
    } else if (input.fragment !== undefined) {
      await gated(await gate.fragment(fromHex(input.fragment)));
    } else if (input.fragments !== undefined) {  // given to the gate all at once, as a loader may
      for (const result of await Promise.all(input.fragments.map((f) => gate.fragment(fromHex(f))))) await gated(result);
    } else if (input.finish) {
      const last = verifier.finish();
      if (last) out.push(say(last));
    }
  }
  return out;
}

async function media(c) {
  const gate = new FragmentGate(new StreamVerifier(await keyringOf(c.keyring)), { decrypt: true });
  const out = { init: null, fragments: [] };
  for (const input of c.inputs) {
    if (input.init !== undefined) {
      if (gate.init(fromHex(input.init))) throw new Error(`init refused: ${gate.initProblem}`);
      out.init ??= toHex(gate.initMedia);
    } else {
      const { media: clear } = await gate.fragment(fromHex(input.fragment));
      out.fragments.push(clear && toHex(clear));
    }
  }
  return out;
}

async function grants(c) {
  const identity = await DisplayIdentity.fromSecret(c.display.id, fromHex(c.display.secret));
  if (c.owner) await identity.pin(c.owner);
  const display = new DisplayGrants(identity);
  const out = [];
  for (const message of c.messages) {
    try {
      const sealed = parseStrictJson(typeof message === "string" ? message : JSON.stringify(message));
      const ring = await display.accept(sealed);
      out.push(`ok ${display.serial} ` + ring.grants().map((g) => `${g.owner}/${g.camera}/${g.epoch}/${g.epochId}/${g.period}/${g.slot}`).sort().join(","));
    } catch (exc) {
      if (!(exc instanceof GrantError)) throw exc;
      out.push(exc.reason);
    }
  }
  return out;
}

const [mode, file] = process.argv.slice(2);
const run = { verdicts, media, grants }[mode];
if (!run || !file) {
  process.stderr.write("usage: node harness.mjs verdicts|media|grants CASES.json\n");
  process.exit(2);
}
const cases = JSON.parse(fs.readFileSync(file, "utf8"));
const results = {};
for (const c of cases) results[c.name] = await run(c);
process.stdout.write(JSON.stringify(results) + "\n");
