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
// FragmentGate a display uses; a fragment also reports "pass" or "held"; {fragments: [HEX...]}
// gives them to the gate all at once), or {finish: true}.
// With `details: true`, each verdict is "reason: detail" (the texts must agree too); with a
// list of reasons, the verdicts of those reasons only.
//
// grants: each case is {name, display: {id, secret}, owner: ACCOUNT CARD | null,
// messages: [SEALED, ...]}; the display opens the messages in turn and reports, for each,
// "ok SERIAL owner/camera/epoch/epoch id/period/slot,..." (every period it holds then) or the refusal.

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
  const detailed = (v) => c.details === true || (Array.isArray(c.details) && c.details.includes(v.reason));
  const say = (v) => (detailed(v) ? `${v.reason}: ${v.detail}` : v.reason);
  const out = [];
  for (const input of c.inputs) {
    if (input.annexb !== undefined) {
      out.push(say(await verifier.verifyAnnexB(fromHex(input.annexb))));
    } else if (input.stream !== undefined) {
      for (const segment of annexbSegments(fromHex(input.stream))) out.push(say(await verifier.verifySegment(segment)));
    } else if (input.init !== undefined) {
      if (gate.init(fromHex(input.init))) out.push("init refused");
    } else if (input.fragment !== undefined) {
      const { pass, verdicts: found } = await gate.fragment(fromHex(input.fragment));
      for (const v of found) out.push(say(v));
      out.push(pass ? "pass" : "held");
    } else if (input.fragments !== undefined) {  // given to the gate all at once, as a loader may
      for (const { pass, verdicts: found } of await Promise.all(input.fragments.map((f) => gate.fragment(fromHex(f))))) {
        for (const v of found) out.push(say(v));
        out.push(pass ? "pass" : "held");
      }
    } else if (input.finish) {
      const last = verifier.finish();
      if (last) out.push(say(last));
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
const run = { verdicts, grants }[mode];
if (!run || !file) {
  process.stderr.write("usage: node harness.mjs verdicts|grants CASES.json\n");
  process.exit(2);
}
const cases = JSON.parse(fs.readFileSync(file, "utf8"));
const results = {};
for (const c of cases) results[c.name] = await run(c);
process.stdout.write(JSON.stringify(results) + "\n");
