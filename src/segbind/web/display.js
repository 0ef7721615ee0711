// The browser display: every camera of the account in its own tile, played with hls.js,
// and every fragment verified before it reaches Media Source Extensions.
//
// - Keys come only from the owner's sealed grants, opened here with this display's own
//   X25519 key (made in WebCrypto, never exported) and checked against the owner's card
//   pinned at enrollment (an out-of-band hand-over: window.segbind.outOfBand).
// - The cloud's camera list only says which playlists to load. What a tile shows is
//   decided by the authenticated tag: a tile takes the camera of the first segment that
//   verifies, and from then on refuses any other camera's (chain_break).
// - hls.js's fragment loader (fLoader) hands each fragment to a FragmentGate: a fragment
//   that is refused is reported to hls.js as a load error and never appended; its tile
//   shows the reason. A tile with no accepted segment for STALE_S seconds is flagged
//   stale; one whose capture time or video time stops advancing, frozen.
//
// window.segbind.state() exposes what each tile appended and refused (the tests read it).
// URL: /a/ACCOUNT/display?display=ID[&mode=recording][&stale=S][&frozen=S]

import { FragmentGate, LIVE, StreamVerifier, tagInfo } from "./segbind-verify.js";
import { DisplayGrants, DisplayIdentity, GrantError, parseStrictJson } from "./segbind-grants.js";

const params = new URLSearchParams(location.search);
const account = decodeURIComponent(location.pathname.split("/")[2] || "");
const displayId = params.get("display") || `${account}-display`;
const mode = params.get("mode") === "recording" ? "recording" : "live";
const STALE_S = Number(params.get("stale") || 6);
const FROZEN_S = Number(params.get("frozen") || 5);
const GRANTS_EVERY_MS = 2000;
const REFUSED = 460;  // the error code the loader reports for a refused fragment (not an HTTP status)

const $ = (id) => document.getElementById(id);
const now = () => performance.now() / 1000;

const state = {
  display: displayId, account, mode, enrolled: false, code: null, card: null,
  serial: "0", grantRefusals: [], granted: [], tiles: [], errors: [],
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

class Tile {
  constructor(feed, keyring) {
    this.feed = feed;  // {camera (the cloud's word for it), live, recording}
    this.verifier = new StreamVerifier(keyring, mode === "live" ? { window: LIVE } : { recording: true });
    this.gate = new FragmentGate(this.verifier);
    this.owner = null;
    this.camera = null;        // the authenticated camera this tile shows, from the first verified tag
    this.passed = new Map();   // fragment sn -> the tags of its verified segments
    this.inits = new Map();    // init segment URL -> {promise, resolve, bytes}: hls.js loads a
                               // fragment and its init segment at once; a fragment waits for its init
    this.currentInit = null;
    this.appended = [];        // fragments hls.js appended to the SourceBuffer, with their tags
    this.refused = [];         // refused fragments: reason, detail, the tag's public fields
    this.unverifiedAppends = 0;
    this.lastAcceptedAt = null;
    this.lastCapture = null;
    this.captureAdvancedAt = now();
    this.lastVideoTime = 0;
    this.videoAdvancedAt = now();
    this.startedAt = now();
    this.stale = false;
    this.frozen = false;
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

  /** The gate, for one loaded fragment or init segment: true to let it through. */
  async check(frag, bytes) {
    const url = frag.url || frag.relurl || "";
    if (frag.sn === "initSegment") {
      const entry = this.initEntry(url);
      const problem = this.gate.init(bytes);
      this.currentInit = url;
      entry.bytes = bytes;
      entry.resolve();
      if (problem) this.refuse({ reason: "framing", detail: problem, tag: null }, url, "init");
      return !problem;
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
    const { pass, verdicts } = await this.gate.fragment(bytes);
    if (!pass) {
      const bad = verdicts.find((v) => !v.accepted) || verdicts[verdicts.length - 1];
      this.refuse(bad, url, frag.sn);
      return false;
    }
    const tags = verdicts.map((v) => tagInfo(v.tag));
    if (this.camera === null) {
      this.camera = tags[0].camera;
      this.owner = tags[0].owner;
      this.verifier.camera = this.camera;  // from now on this tile is this camera's alone
    }
    this.passed.set(frag.sn, tags);
    this.lastAcceptedAt = now();
    const capture = Math.max(...tags.map((t) => Number(t.capture_ms)));
    if (this.lastCapture === null || capture > this.lastCapture) {
      this.lastCapture = capture;
      this.captureAdvancedAt = now();
    }
    this.lastVerdict = verdicts.map((v) => v.reason).join(", ");
    this.render();
    return true;
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
            tile.check(frag, bytes).then((pass) => {
              if (this.gateAborted) return;
              if (pass) callbacks.onSuccess(response, stats, ctx, details);
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
    hls.loadSource(mode === "live" ? this.feed.live : this.feed.recording);
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
    label.innerHTML = "";
    label.append(who, " ");
    const routing = document.createElement("span");
    routing.className = "routing";
    routing.textContent = `(the cloud calls it ${this.feed.camera})`;
    label.append(routing);
    const verdict = this.el.querySelector(".verdict");
    verdict.innerHTML = "";
    const line = document.createElement("div");
    const refusedFragments = new Set(this.refused.map((r) => r.url)).size;
    line.textContent = `${this.appended.length} fragments shown, ${refusedFragments} refused` + (this.lastVerdict ? `; last: ${this.lastVerdict}` : "");
    verdict.append(line);
    const recent = this.lastRefusal && now() - this.lastRefusalAt < 5;
    if (recent) {
      const r = document.createElement("div");
      r.className = "refused";
      const tag = this.lastRefusal.tag ? tagInfo(this.lastRefusal.tag) : null;
      r.textContent = `refused: ${this.lastRefusal.reason}` + (tag ? ` (${tag.owner} / ${tag.camera})` : "") + (this.lastRefusal.detail ? ` - ${this.lastRefusal.detail}` : "");
      verdict.append(r);
    }
    if (this.stale || this.frozen || this.finished) {
      const f = document.createElement("div");
      f.className = "flag";
      f.textContent = this.stale ? `STALE: no verified video for over ${STALE_S} s` : this.frozen ? "FROZEN: the picture is not advancing" : `recording: ${this.finished}`;
      verdict.append(f);
    }
    this.el.className = "tile" + (this.stale ? " stale" : this.frozen ? " frozen" : recent ? " refusing" : this.camera ? " ok" : "");
  }

  snapshot() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    const box = this.video.getBoundingClientRect();
    return {
      feed: this.feed.camera, owner: this.owner, camera: this.camera, appended: this.appended, refused: this.refused,
      unverifiedAppends: this.unverifiedAppends, currentTime: this.video.currentTime,
      decodedFrames: q ? q.totalVideoFrames : null, stale: this.stale, frozen: this.frozen, finished: this.finished,
      rect: { x: box.x, y: box.y, width: box.width, height: box.height },
    };
  }
}

// ---- grants --------------------------------------------------------------------------------------

async function pollGrants(display, tiles, identity) {
  let last = null;
  for (;;) {
    try {
      const response = await fetch(`/displays/${encodeURIComponent(displayId)}/grants`, { cache: "no-store" });
      if (response.ok) {
        const text = await response.text();
        if (text !== last) {
          last = text;
          try {
            const keyring = await display.accept(parseStrictJson(text));
            for (const tile of tiles) tile.verifier.keyring = keyring;
            state.serial = display.serial.toString();
            state.granted = keyring.grants();
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
  const cams = state.granted.map((g) => `${g.owner}/${g.camera} (epoch ${g.epoch})`).join(", ") || "none";
  $("grants").textContent = `grants serial ${state.serial}: ${cams}` + (state.grantRefusals.length ? `; refused: ${state.grantRefusals.join(", ")}` : "");
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
    const response = await fetch(`/a/${encodeURIComponent(account)}/cameras.json`, { cache: "no-store" });
    const routing = await response.json();
    for (const feed of routing.cameras) {
      const tile = new Tile(feed, display.keyring);
      tiles.push(tile);
      tile.start();
    }
  };
  setInterval(() => tiles.forEach((t) => t.watch()), 500);
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
