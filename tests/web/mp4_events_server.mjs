// The browser's fMP4 reader (src/segbind/web/segbind-mp4.js) as a process the Python tests ask:
// one request a line on stdin, {"chunks": ["/path/init.mp4", "/path/seg1.m4s", ...]}; the first
// chunk goes through init(), the others through fragment(), as a browser display feeds it. One
// line of JSON back per request: the reader's events, each sample as its length, the SHA-256 of
// its bytes and its times (tests/support/differential.py reads them). Ends at the end of stdin.
import fs from "node:fs";
import crypto from "node:crypto";
import readline from "node:readline";
import { Mp4Reader } from "../../src/segbind/web/segbind-mp4.js";

function events(chunks) {
  const reader = new Mp4Reader();
  const out = [];
  chunks.forEach((file, k) => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    for (const e of (k === 0 ? reader.init(bytes) : reader.fragment(bytes))) {
      if (e.type === "sample") {
        out.push({ type: "sample", size: e.data.length, sha256: crypto.createHash("sha256").update(e.data).digest("hex"),
                   pts: e.pts, dts: e.dts, duration: e.duration, hidden: e.hidden, sync: e.sync });
      } else if (e.type === "track") {
        out.push({ type: "track", codec: e.codec, lengthSize: e.lengthSize,
                   configUnits: e.configUnits.map((u) => Buffer.from(u).toString("hex")), timescale: e.timescale });
      } else if (e.type === "defect") {
        out.push({ type: "defect", text: e.text, reason: e.reason, fatal: e.fatal });
      } else {
        out.push({ type: "error", text: e.text });
      }
    }
  });
  return out;
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = { events: events(JSON.parse(line).chunks) };
  } catch (exc) {  // the reader promises never to throw: say so rather than die
    reply = { exception: String(exc && exc.stack ? exc.stack : exc) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
