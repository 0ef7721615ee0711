// The browser display: every stream of the account in its own tile, played with hls.js, every
// fragment verified before anything of it is decrypted, and only verified, decrypted video
// handed to Media Source Extensions.
//
// - This code is not the cloud's: it is a static bundle (tools/display_bundle.py) whose loader
//   page pins every script by its Subresource Integrity hash, installed from the project's
//   release or served from an origin the cloud does not control. The cloud is only asked for
//   data, across origins: its routing (cameras.json), playlists, fragments, sealed grants
//   (docs/THREAT_MODEL.md, "Who delivers a display's code").
// - Keys come only from the owner's sealed grants, opened here with this display's own X25519
//   key (made in WebCrypto, never exported) and checked against the owner's card pinned at
//   enrollment (an out-of-band hand-over: window.segbind.outOfBand). Period keys are looked up
//   by the tag's key id (PeriodKeyring: HMAC and AES-CTR keys, not extractable).
// - The cloud's camera list only says which playlists to load. What a tile shows is decided by
//   the authenticated tag: a tile takes the stream, (owner, camera) as the owner's grants name
//   the key id, of the first segment that verifies, and from then on refuses any other stream's
//   (chain_break); a stream is shown in one tile only.
// - hls.js's fragment loader (fLoader) hands each fragment to a FragmentGate with `decrypt`: a
//   fragment that is refused is reported to hls.js as a load error, never decrypted and never
//   appended; its tile shows the reason. A fragment that passes is replaced by a clear fMP4 of
//   its verified segments, decrypted with WebCrypto AES-CTR under the content key of each
//   segment's own key id (docs/DISPLAYS.md: why not EME ClearKey). A tile with no accepted
//   segment for STALE_S seconds is flagged stale; one whose capture time or video time stops
//   advancing, frozen. The owner's grants raise rotation_pending alarms and flag video tagged
//   under an epoch the owner superseded.
//
// window.segbind.state() exposes what each tile appended and refused (the tests read it).
// URL: index.html?cloud=URL&account=ACCOUNT&display=ID[&mode=recording][&stale=S][&frozen=S]

import { FragmentGate, LIVE, StreamVerifier, tagInfo } from "./segbind-verify.js";
import { DisplayGrants, DisplayIdentity, GrantError, parseStrictJson } from "./segbind-grants.js";

const params = new URLSearchParams(location.search);
const CLOUD = new URL(params.get("cloud") || location.origin);  // where the data comes from: trusted for nothing
const account = params.get("account") || "";
const displayId = params.get("display") || `${account}-display`;
const mode = params.get("mode") === "recording" ? "recording" : "live";
const STALE_S = Number(params.get("stale") || 6);
const FROZEN_S = Number(params.get("frozen") || 5);
const GRANTS_EVERY_MS = 2000;
const REFUSED = 460;  // the error code the loader reports for a refused fragment (not an HTTP status)

const $ = (id) => document.getElementById(id);
const now = () => performance.now() / 1000;
const cloudUrl = (path) => new URL(path, CLOUD).href;

const state = {
  display: displayId, account, cloud: CLOUD.origin, mode, enrolled: false, code: null, card: null,
  serial: "0", grantRefusals: [], granted: [], alarms: [], tiles: [], errors: [],
};

// ---- the display's identity, kept across reloads (IndexedDB: the key stays a CryptoKey) ----

function idb() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("segbind-display", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("displays");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function stored(key, value) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("displays", value === undefined ? "readonly" : "readwrite");
    const store = tx.objectStore("displays");
    const req = value === undefined ? store.get(key) : store.put(value, key);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function loadIdentity() {
  const saved = await stored(displayId).catch(() => null);
  if (saved && saved.privateKey) {
    const identity = new DisplayIdentity(displayId, saved.privateKey, saved.sealingPub, saved.owner || null);
    return { identity, grants: saved.grants || {} };
  }
  const identity = await DisplayIdentity.generate(displayId);
  await save(identity, {});
  return { identity, grants: {} };
}

async function save(identity, grants) {
  await stored(displayId, { privateKey: identity.privateKey, sealingPub: identity.sealingPub, owner: identity.owner, grants })
    .catch((e) => state.errors.push(`cannot keep the display's state: ${e}`));
}

// ---- tiles ------------------------------------------------------------------------------------

/** Which tile shows which stream: (owner, camera) -> tile. A stream is shown in one tile only. */
const streams = new Map();
const streamKey = (owner, camera) => JSON.stringify([owner, camera]);

class Tile {
  constructor(feed, display) {
    this.feed = feed;  // {camera (the cloud's word for it), live, recording}
    this.display = display;
    this.verifier = new StreamVerifier(display.keyring, mode === "live" ? { window: LIVE } : { recording: true });
    this.gate = new FragmentGate(this.verifier, { decrypt: true });
    this.owner = null;
    this.camera = null;        // the authenticated stream this tile shows, from the first verified tag
    this.passed = new Map();   // fragment sn -> the tags of its verified segments
    this.inits = new Map();    // init segment URL -> {promise, resolve, bytes}: hls.js loads a
                               // fragment and its init segment at once; a fragment waits for its init
    this.currentInit = null;
    this.appended = [];        // fragments hls.js appended to the SourceBuffer, with their tags
    this.refused = [];         // refused fragments: reason, detail, the tag's public fields
    this.decrypted = 0;        // segments decrypted (each of a fragment that passed)
    this.superseded = 0;       // segments shown under an epoch the owner superseded (flagged)
    this.unverifiedAppends = 0;
    this.lastAcceptedAt = null;
    this.lastCapture = null;
    this.captureAdvancedAt = now();
    this.lastVideoTime = 0;
    this.videoAdvancedAt = now();
    this.startedAt = now();
    this.stale = false;
    this.frozen = false;
    this.flagged = false;
    this.finished = null;
    this.build();
  }

  build() {
    const el = this.el = document.createElement("div");
    el.className = "tile";
    el.innerHTML = '<div class="label"></div><video muted playsinline autoplay></video><div class="verdict"></div>';
    this.video = el.querySelector("video");
    this.video.muted = true;
    $("tiles").appendChild(el);
    this.render();
  }

  initEntry(url) {
    let entry = this.inits.get(url);
    if (!entry) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      entry = { promise, resolve, bytes: null };
      this.inits.set(url, entry);
    }
    return entry;
  }

  /** The gate, for one loaded fragment or init segment: the bytes a decoder may have, or null. */
  async check(frag, bytes) {
    const url = frag.url || frag.relurl || "";
    if (frag.sn === "initSegment") {
      const entry = this.initEntry(url);
      const problem = this.gate.init(bytes);
      this.currentInit = url;
      entry.bytes = bytes;
      entry.resolve();
      if (problem) {
        this.refuse({ reason: "framing", detail: problem, tag: null }, url, "init");
        return null;
      }
      return this.gate.initMedia;  // its protection renamed away: what the decoder reads
    }
    const initUrl = frag.initSegment && frag.initSegment.url;
    if (initUrl) {
      const entry = this.initEntry(initUrl);
      await Promise.race([entry.promise, new Promise((r) => setTimeout(r, 10000))]);
      if (entry.bytes && this.currentInit !== initUrl) {
        this.gate.init(entry.bytes);
        this.currentInit = initUrl;
      }
    }
    const { pass, verdicts, media } = await this.gate.fragment(bytes);
    if (!pass) {
      const bad = verdicts.find((v) => !v.accepted) || verdicts[verdicts.length - 1];
      this.refuse(bad, url, frag.sn);
      return null;
    }
    this.decrypted += verdicts.length;  // the gate decrypted them: every segment of the fragment verified
    const tags = verdicts.map((v) => tagInfo(v.tag));
    if (this.camera === null) {
      const key = streamKey(tags[0].owner, tags[0].camera);
      const other = streams.get(key);
      if (other && other !== this) {
        this.refuse({ reason: "chain_break", detail: `the stream of camera ${tags[0].camera} of ${tags[0].owner} is shown in another tile`,
          tag: verdicts[0].tag }, url, frag.sn);
        return null;
      }
      streams.set(key, this);
      this.camera = tags[0].camera;
      this.owner = tags[0].owner;
      this.verifier.camera = this.camera;  // from now on this tile is this stream's alone
      this.verifier.owner = this.owner;
    }
    const flagged = tags.filter((t) => this.display.superseded(t.owner, t.camera, t.epoch, t.capture_ms)).length;
    this.superseded += flagged;
    this.flagged = flagged > 0;
    this.passed.set(frag.sn, tags);
    this.lastAcceptedAt = now();
    const capture = Math.max(...tags.map((t) => Number(t.capture_ms)));
    if (this.lastCapture === null || capture > this.lastCapture) {
      this.lastCapture = capture;
      this.captureAdvancedAt = now();
    }
    this.lastVerdict = verdicts.map((v) => v.reason).join(", ");
    this.render();
    return media;
  }

  refuse(verdict, url, sn) {
    const tag = verdict.tag ? tagInfo(verdict.tag) : null;
    this.refused.push({ sn, url, reason: verdict.reason, detail: verdict.detail, tag, at: Date.now() });
    this.lastRefusal = verdict;
    this.lastRefusalAt = now();
    this.render();
  }

  appendedFragment(frag) {
    if (frag.sn === "initSegment") {
      if (!this.gate.ready) {
        this.unverifiedAppends++;
        state.errors.push("an init segment was appended that the gate could not read");
      }
      return;
    }
    if (this.appended.length && this.appended[this.appended.length - 1].sn === frag.sn) return;  // one fragment, several appends
    const tags = this.passed.get(frag.sn);
    if (!tags) {
      this.unverifiedAppends++;  // never happens: every append went through the gate
      state.errors.push(`fragment ${frag.sn} was appended without a verdict`);
      return;
    }
    this.appended.push({ sn: frag.sn, tags });
  }

  start() {
    const tile = this;
    const Base = Hls.DefaultConfig.loader;
    class GateLoader extends Base {
      load(context, config, callbacks) {
        const frag = context.frag;
        if (frag.sn === "initSegment") tile.initEntry(frag.url);  // fragments of this init wait for it
        const gated = {
          ...callbacks,
          onSuccess: (response, stats, ctx, details) => {
            const bytes = new Uint8Array(response.data);
            tile.check(frag, bytes).then((media) => {
              if (this.gateAborted) return;
              // what the decoder gets: never the bytes served, only what the gate made of them
              if (media) callbacks.onSuccess({ ...response, data: media.buffer }, stats, ctx, details);
              else callbacks.onError({ code: REFUSED, text: `segbind refused: ${tile.lastRefusal.reason}` }, ctx, details, stats);
            }, (error) => {
              state.errors.push(`gate: ${error}`);
              if (!this.gateAborted) callbacks.onError({ code: REFUSED, text: "segbind gate failed" }, ctx, details, stats);
            });
          },
        };
        super.load(context, config, gated);
      }

      abort() { this.gateAborted = true; super.abort(); }
    }
    const retry = { maxNumRetry: 1000, retryDelayMs: 500, maxRetryDelayMs: 1000,
      // A refused fragment is asked for again a few times (a cache may serve the right one);
      // then hls.js treats it as a gap and goes on.
      shouldRetry: (cfg, count, timeout, response, retry) => (response && response.code === REFUSED ? count < 3 : retry) };
    const hls = this.hls = new Hls({
      fLoader: GateLoader,
      liveSyncDurationCount: 3,
      emeEnabled: false,  // decrypted here, after verification: no key ever reaches a CDM
      fragLoadPolicy: { default: { maxTimeToFirstByteMs: 10000, maxLoadTimeMs: 20000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 }, errorRetry: retry } },
    });
    hls.on(Hls.Events.BUFFER_APPENDING, (_e, data) => { if (data.frag && data.type !== "audio") this.appendedFragment(data.frag); });
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.video.play().catch(() => undefined));
    hls.on(Hls.Events.BUFFER_EOS, () => { if (mode === "recording") this.finish(); });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) {
        state.errors.push(`${this.feed.camera}: ${data.details}`);
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else setTimeout(() => hls.startLoad(-1), 1000);
      }
    });
    hls.loadSource(cloudUrl(mode === "live" ? this.feed.live : this.feed.recording));
    hls.attachMedia(this.video);
  }

  finish() {
    const last = this.verifier.finish();
    this.finished = last ? last.reason : "complete";
    this.render();
  }

  watch() {
    const t = now();
    if (!this.video.paused && this.video.currentTime > this.lastVideoTime) {
      this.lastVideoTime = this.video.currentTime;
      this.videoAdvancedAt = t;
    }
    if (mode === "live") {
      this.stale = t - (this.lastAcceptedAt ?? this.startedAt) > STALE_S;
      this.frozen = !this.stale && this.lastAcceptedAt !== null
        && (t - this.captureAdvancedAt > FROZEN_S || t - this.videoAdvancedAt > FROZEN_S + 2);
    }
    this.render();
  }

  render() {
    const label = this.el.querySelector(".label");
    const who = this.camera ? `${this.owner} / ${this.camera}` : "unverified feed";
    label.textContent = "";
    label.append(who, " ");
    const routing = document.createElement("span");
    routing.className = "routing";
    routing.textContent = `(the cloud calls it ${this.feed.camera})`;
    label.append(routing);
    const verdict = this.el.querySelector(".verdict");
    verdict.textContent = "";
    const line = document.createElement("div");
    const refusedFragments = new Set(this.refused.map((r) => r.url)).size;
    line.textContent = `${this.appended.length} fragments shown, ${refusedFragments} refused` + (this.lastVerdict ? `; last: ${this.lastVerdict}` : "");
    verdict.append(line);
    const recent = this.lastRefusal && now() - this.lastRefusalAt < 5;
    if (recent) {
      const r = document.createElement("div");
      r.className = "refused";
      const tag = this.lastRefusal.tag ? tagInfo(this.lastRefusal.tag) : null;
      const whose = tag && tag.owner ? ` (${tag.owner} / ${tag.camera})` : "";
      r.textContent = `refused: ${this.lastRefusal.reason}` + whose + (this.lastRefusal.detail ? ` - ${this.lastRefusal.detail}` : "");
      verdict.append(r);
    }
    const alarm = this.owner && state.alarms.find((a) => a.owner === this.owner && a.camera === this.camera);
    if (this.stale || this.frozen || this.finished || this.flagged || alarm) {
      const f = document.createElement("div");
      f.className = "flag";
      f.textContent = this.stale ? `STALE: no verified video for over ${STALE_S} s` : this.frozen ? "FROZEN: the picture is not advancing"
        : this.finished ? `recording: ${this.finished}` : alarm ? `ROTATION PENDING: epoch ${alarm.epoch} not confirmed by the camera`
          : "SUPERSEDED EPOCH: video under an epoch its owner replaced";
      verdict.append(f);
    }
    this.el.className = "tile" + (this.stale ? " stale" : this.frozen ? " frozen" : recent ? " refusing" : this.camera ? " ok" : "");
  }

  snapshot() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    const box = this.video.getBoundingClientRect();
    return {
      feed: this.feed.camera, owner: this.owner, camera: this.camera, appended: this.appended, refused: this.refused,
      passed: [...this.passed.entries()].map(([sn, tags]) => ({ sn, tags })),
      decrypted: this.decrypted, superseded: this.superseded, unverifiedAppends: this.unverifiedAppends,
      currentTime: this.video.currentTime, decodedFrames: q ? q.totalVideoFrames : null, stale: this.stale, frozen: this.frozen,
      finished: this.finished, rect: { x: box.x, y: box.y, width: box.width, height: box.height },
    };
  }
}

// ---- grants --------------------------------------------------------------------------------------

async function pollGrants(display, tiles, identity) {
  let last = null;
  for (;;) {
    try {
      const response = await fetch(cloudUrl(`/displays/${encodeURIComponent(displayId)}/grants`), { cache: "no-store" });
      if (response.ok) {
        const text = await response.text();
        if (text !== last) {
          last = text;
          try {
            const keyring = await display.accept(parseStrictJson(text));
            for (const tile of tiles) tile.verifier.keyring = keyring;
            state.serial = display.serial.toString();
            state.granted = keyring.grants().map((g) => ({ ...g, period: g.period.toString() }));
            await save(identity, display.state());
            onGrants(keyring);
          } catch (exc) {
            if (!(exc instanceof GrantError) && !(exc instanceof SyntaxError)) throw exc;
            state.grantRefusals.push(exc instanceof GrantError ? exc.reason : "malformed");
          }
        }
      }
    } catch (exc) {
      state.errors.push(`grants: ${exc}`);
    }
    renderGrants();
    await new Promise((r) => setTimeout(r, GRANTS_EVERY_MS));
  }
}

function renderGrants() {
  const held = new Map();
  for (const g of state.granted) held.set(`${g.owner}/${g.camera} (epoch ${g.epoch})`, true);
  const alarms = state.alarms.map((a) => `rotation of ${a.owner}/${a.camera} to epoch ${a.epoch} pending`).join("; ");
  $("grants").textContent = `grants serial ${state.serial}: ${[...held.keys()].join(", ") || "none"}`
    + (alarms ? `; ALARM: ${alarms}` : "") + (state.grantRefusals.length ? `; refused: ${state.grantRefusals.join(", ")}` : "");
}

let onGrants = () => undefined;

// ---- start -------------------------------------------------------------------------------------

async function main() {
  $("display-id").textContent = `${displayId} (${account}, ${mode})`;
  const { identity, grants: kept } = await loadIdentity();
  const display = new DisplayGrants(identity, kept);
  state.card = identity.card();
  state.enrolled = Boolean(identity.owner);
  const tiles = [];
  state.tiles = tiles;

  // The out-of-band hand-over: what the owner's app and this screen exchange locally
  // (a QR code, the local network). Tests call it directly, as segbind.grants.OutOfBand does.
  window.segbind.outOfBand = {
    card: () => identity.card(),
    pinOwner: async (card) => {
      const code = await identity.pin(card);
      state.enrolled = true;
      state.code = code;
      $("code").textContent = code;
      await save(identity, display.state());
      showEnrollment(false);
      return code;
    },
  };
  const showEnrollment = (show) => {
    $("enroll").hidden = !show;
    $("card").textContent = JSON.stringify(identity.card(), null, 1);
  };
  showEnrollment(!state.enrolled);
  $("status").textContent = state.enrolled ? "waiting for grants" : "not enrolled";

  let started = false;
  onGrants = async () => {
    $("status").textContent = "verifying";
    if (started) return;
    started = true;
    // The cloud's routing says which feeds to load; it decides nothing about what they show.
    const response = await fetch(cloudUrl(`/a/${encodeURIComponent(account)}/cameras.json`), { cache: "no-store" });
    const routing = await response.json();
    for (const feed of routing.cameras) {
      const tile = new Tile(feed, display);
      tiles.push(tile);
      tile.start();
    }
  };
  setInterval(() => {
    state.alarms = display.rotationAlarms(Date.now());
    tiles.forEach((t) => t.watch());
    renderGrants();
  }, 500);
  pollGrants(display, tiles, identity);
}

window.segbind = {
  ready: false,
  state: () => ({ ...state, tiles: state.tiles.map((t) => t.snapshot()) }),
};
main().then(() => { window.segbind.ready = true; }, (exc) => {
  state.errors.push(`start: ${exc}`);
  $("status").textContent = `cannot start: ${exc}`;
});
