// Feeds cases made in Python to the JavaScript verifier and prints its verdicts, so the
// tests can compare them with the Python verifier's on the same bytes.
//
//   node tests/web/harness.mjs verdicts CASES.json    -> {"NAME": [reason, ...], ...}
//   node tests/web/harness.mjs grants CASES.json      -> {"NAME": "ok" | refusal, ...}
//
// verdicts: each case is {name, keyring: [{owner, camera, epoch, slot, key}], revoked:
// [[owner, camera, epoch]], camera, window: {maxAgeS, maxFutureS} | null, now, recording,
// inputs: [...]}; each input is {annexb: HEX} (one segment), {stream: HEX} (an Annex-B
// stream cut into segments), {init: HEX} then {fragment: HEX} (fMP4, through the
// FragmentGate a display uses; a fragment also reports "pass" or "held"), or {finish: true}.
//
// grants: each case is {name, display: {id, secret}, owner: ACCOUNT CARD | null,
// messages: [SEALED, ...]}; the display opens the messages in turn and reports, for each,
// "ok SERIAL owner/camera/epoch/period/slot,..." (every period it holds then) or the refusal.

import fs from "node:fs";

import { DisplayGrants, DisplayIdentity, GrantError, parseStrictJson } from "../../src/segbind/web/segbind-grants.js";
import { FragmentGate, Keyring, StreamVerifier, annexbSegments, fromHex } from "../../src/segbind/web/segbind-verify.js";

async function verdicts(c) {
  const keyring = await Keyring.of(c.keyring, c.revoked || []);
  const verifier = new StreamVerifier(keyring, {
    camera: c.camera ?? null,
    window: c.window ?? null,
    recording: Boolean(c.recording),
    clock: () => c.now,
  });
  const gate = new FragmentGate(verifier);
  const out = [];
  for (const input of c.inputs) {
    if (input.annexb !== undefined) {
      out.push((await verifier.verifyAnnexB(fromHex(input.annexb))).reason);
    } else if (input.stream !== undefined) {
      for (const segment of annexbSegments(fromHex(input.stream))) out.push((await verifier.verifySegment(segment)).reason);
    } else if (input.init !== undefined) {
      const problem = gate.init(fromHex(input.init));
      if (problem) out.push(`init refused: ${problem}`);
    } else if (input.fragment !== undefined) {
      const { pass, verdicts: found } = await gate.fragment(fromHex(input.fragment));
      for (const v of found) out.push(v.reason);
      out.push(pass ? "pass" : "held");
    } else if (input.finish) {
      const last = verifier.finish();
      if (last) out.push(last.reason);
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
      const sealed = typeof message === "string" ? parseStrictJson(message) : message;
      const ring = await display.accept(sealed);
      out.push(`ok ${display.serial} ` + ring.grants().map((g) => `${g.owner}/${g.camera}/${g.epoch}/${g.period}/${g.slot}`).sort().join(","));
    } catch (exc) {
      if (!(exc instanceof GrantError)) throw exc;
      out.push(exc.reason);
    }
  }
  return out;
}

const [mode, file] = process.argv.slice(2);
const run = { verdicts, grants }[mode];
if (!run || !file) {
  process.stderr.write("usage: node harness.mjs verdicts|grants CASES.json\n");
  process.exit(2);
}
const cases = JSON.parse(fs.readFileSync(file, "utf8"));
const results = {};
for (const c of cases) results[c.name] = await run(c);
process.stdout.write(JSON.stringify(results) + "\n");
