"""The browser display in Debian's chromium (headless, Selenium, nothing downloaded).

The reference cloud (host_sim.cloud) runs with the owners' apps of alice and eve and
their cameras, each the agent core on a real-time scheduler, paired by its owner's app
(host_sim.households). Its HTTP path serves alice's two cameras (a red and a blue scene)
with the 2020 cache fault on, so that a stranger's fragments (eve's green and yellow
scenes) are served for alice's URLs. The display's page is not the cloud's: its bundle comes
from an origin of its own (host_sim.display_host), its loader page pinning every script by
Subresource Integrity, and it asks the cloud for data only, across origins. It is enrolled by
alice's app from its card and gets its grants from her app through the cloud. The page must
append none of eve's fragments and decrypt none of them: its state says what each tile
appended and refused, a hook on SourceBuffer.appendBuffer (installed before the page's own
scripts) sees every byte that reaches Media Source Extensions, another every AES-CTR
decryption the page asks WebCrypto for, and the screenshot's tiles show only alice's colours.
Meanwhile alice's video plays: its time and decoded frames advance.

A hostile cloud that serves a tampered verifier (one that passes everything) finds no display
that runs it: the display loads nothing from the cloud, and a tampered copy of a pinned file on
the display's own origin is refused by the browser (its hash is not the loader page's).

The display's gate also runs on HLS fMP4 as the owner's ``segbind hls --type fmp4`` ('cenc') and
ffmpeg's HLS muxer (the protected form in a clear track) write it: H.264 through hls.js into
chromium's decoder, decrypted by the gate (the owner's plays to its end, a stranger's never
reaches it and is never decrypted), H.265 through the gate alone in the page (no HEVC decoder here).
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Set, Tuple

import pytest

from host_sim.browser import CHROMEDRIVER, CHROMIUM, DisplayPage, Progress, chromium, enroll
from host_sim.cloud import CloudFaults
from host_sim.display_host import DisplayHost
from host_sim.fleet import RealTimeScheduler
from host_sim.households import BLUE, GREEN, RECORDING, RED, YELLOW, Household, Households
from host_sim.web import Faults, WebCloud
from segbind_core.keys import DEFAULT_PERIOD_S

pytestmark = pytest.mark.browser

# Records every buffer handed to Media Source Extensions (its size, whether it holds a fragment,
# the key ids of the tags in it: a tag names its keys, never its owner or camera) and the counter
# block of every AES-CTR decryption the page asks WebCrypto for.
APPEND_HOOK = r"""
window.__appends = [];
window.__decrypts = [];
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const UUID = [0xb5, 0x31, 0xd1, 0xf0, 0x07, 0xfb, 0x84, 0x25, 0xd1, 0x94, 0x79, 0xee, 0x86, 0x2d, 0x84, 0x5d];
const keyIds = (bytes) => {
  const out = new Set();
  next: for (let i = 0; i + 40 <= bytes.length; i++) {
    for (let k = 0; k < 16; k++) if (bytes[i + k] !== UUID[k]) continue next;
    const body = [];  // the tag body, emulation prevention undone
    let zeros = 0;
    for (let j = i + 16; j < bytes.length && body.length < 19; j++) {
      const b = bytes[j];
      if (zeros >= 2 && b === 3) { zeros = 0; continue; }
      body.push(b);
      zeros = b === 0 ? zeros + 1 : 0;
    }
    if (body[0] === 3) out.add(hex(body.slice(3, 19)));
  }
  return [...out];
};
const append = SourceBuffer.prototype.appendBuffer;
SourceBuffer.prototype.appendBuffer = function (data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
                                            : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const text = new TextDecoder("latin1").decode(bytes);
  window.__appends.push({size: bytes.length, media: text.includes("moof"), keyIds: keyIds(bytes),
                         protection: ["encv", "senc", "pssh"].filter((box) => text.includes(box))});
  return append.call(this, data);
};
const decrypt = crypto.subtle.decrypt.bind(crypto.subtle);
crypto.subtle.decrypt = function (algorithm, key, data) {
  if (algorithm && algorithm.name === "AES-CTR") window.__decrypts.push(hex(new Uint8Array(algorithm.counter)));
  return decrypt(algorithm, key, data);
};
"""


def counter_block(tag: Dict[str, Any]) -> str:
    """The initial counter block of a tagged segment's keystream (FORMAT.md 4.3), as the hook records it."""
    return (bytes([1 if tag["still"] else 0]) + int(tag["stream_id"]).to_bytes(6, "big")
            + int(tag["seq"]).to_bytes(4, "big") + bytes(5)).hex()


def key_ids(household: Household) -> Set[str]:
    """Every key id of the household's own cameras over the last and next hour."""
    now = int(time.time() * 1000)
    return {b.key_id.hex() for b in household.app.owner.keyring(now - 3_600_000, now + 3_600_000).bindings()}


def world(**cloud: Any) -> Households:
    """The households, their cameras live for a few seconds after recording (real time)."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "Debian's chromium and chromium-driver are needed (tools/setup.sh installs them)"
    households = Households(RealTimeScheduler().start(), **cloud).start()
    try:
        return households.wait_live(3)
    except BaseException:
        households.stop()
        raise


@pytest.fixture(scope="module")
def households() -> Iterator[Households]:
    households = world()
    yield households
    households.stop()


def open_display(driver: Any, site: DisplayHost, web: WebCloud, households: Households, name: str,
                 **query: str) -> DisplayPage:
    """Alice's display page, from its own origin, enrolled by her app (out of band) and sent her
    grants through the cloud."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": APPEND_HOOK})
    page = DisplayPage(driver, site.page(web.url, "alice", name, **query)).open()
    assert page.state()["enrolled"] is False
    enroll(page, households.alice.app)
    households.alice.app.push_grants()
    return page


def observed(driver: Any) -> Dict[str, Any]:
    """The page's state, what reached Media Source Extensions and what it decrypted, read at once."""
    return json.loads(driver.execute_script(
        "return JSON.stringify({state: window.segbind.state(), appends: window.__appends, "
        "decrypts: window.__decrypts})"))


def decrypted_only_what_passed(seen: Dict[str, Any]) -> None:
    """Every AES-CTR decryption the page made was of a segment of a fragment its gate passed, one
    each: the keystreams of the segments the tiles took, none of a refused one."""
    passed = [tag for tile in seen["state"]["tiles"] for fragment in tile["passed"] for tag in fragment["tags"]]
    assert len(seen["decrypts"]) == len(passed) == sum(t["decrypted"] for t in seen["state"]["tiles"])
    assert sorted(seen["decrypts"]) == sorted(counter_block(t) for t in passed)


def video_pixels(png: bytes, rect: Dict[str, float]) -> Any:
    """The screenshot's pixels (an RGB array) inside one tile's video element."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
    x, y, w, h = (int(rect[k]) for k in ("x", "y", "width", "height"))
    return image[y:y + h, x:x + w]


def colour_of(png: bytes, rect: Dict[str, float]) -> Tuple[float, float, float]:
    """The mean colour of the upper band of a video's picture (above the moving white square)."""
    pixels = video_pixels(png, rect)
    h, w = pixels.shape[:2]
    band = pixels[h // 8:h // 3, w // 4:3 * w // 4].reshape(-1, 3).mean(axis=0)
    return float(band[0]), float(band[1]), float(band[2])


def nearest(colour: Tuple[float, float, float]) -> str:
    scenes = {"red": RED, "blue": BLUE, "green": GREEN, "yellow": YELLOW, "black": (0, 0, 0)}
    return min(scenes, key=lambda n: sum((a - b) ** 2 for a, b in zip(colour, scenes[n])))


def stranger_pixels(png: bytes, rect: Dict[str, float]) -> int:
    """Pixels of a video's area close to a stranger's scene colour (green or yellow)."""
    import numpy as np

    pixels = video_pixels(png, rect)
    close = [((pixels - np.array(c)) ** 2).sum(axis=-1) < 40 ** 2 for c in (GREEN, YELLOW)]
    return int((close[0] | close[1]).sum())


def tags(tile: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [tag for fragment in tile["appended"] for tag in fragment["tags"]]


def test_own_cameras_play_and_no_stranger_fragment_reaches_the_decoder(households, tmp_path: Path) -> None:
    alice, eve = households.alice, households.eve
    own = alice.colours
    own_keys, strangers = key_ids(alice), key_ids(eve)
    with WebCloud(households.cloud, Faults(cache_2020=True)) as web, DisplayHost() as site, chromium() as driver:
        page = open_display(driver, site, web, households, "tv-bug")
        progress = Progress()
        page.wait(lambda: progress.playing(page.state(), 2, 2.0), 60, "alice's two cameras to play")
        first = page.state()

        def injected() -> bool:  # every tile has refused a stranger's fragment the cache served it
            tiles = page.state()["tiles"]
            return all(any(r["tag"] and r["tag"]["key_id"] in strangers for r in t["refused"]) for t in tiles)

        page.wait(injected, 60, "the buggy cache to serve eve's fragments into both tiles")

        def played_on() -> Dict[str, Any]:
            """The state once both own videos have played on (4 s more, a second's frames decoded)
            and neither is flagged. Played time comes in bursts: a refused fragment is asked for
            again three times before the player skips it, and a run of them (half the fragments
            are a stranger's) stalls the video until it catches up with the live edge. A fixed
            wait made this test fail on a loaded machine."""
            seen = observed(driver)
            done = all(t["currentTime"] - b["currentTime"] >= 4.0 and t["decodedFrames"] >= b["decodedFrames"] + 25
                       and not t["stale"] and not t["frozen"] for t, b in zip(seen["state"]["tiles"], first["tiles"]))
            return seen if done else {}

        seen = page.wait(played_on, 90, "alice's videos to play on through the stranger's fragments")
        png = driver.get_screenshot_as_png()
        (tmp_path / "display.png").write_bytes(png)
        print("screenshot:", tmp_path / "display.png")

    state, appends = seen["state"], seen["appends"]
    # The fault fired in the HTTP path: alice's URLs were served eve's fragments. No code came from the cloud.
    assert web.stats.foreign_total > 0 and web.stats.code == {}
    assert state["errors"] == []
    tiles = state["tiles"]
    assert sorted(t["camera"] for t in tiles) == sorted(own)  # one tile per own camera, told by the tag
    for tile, before in zip(tiles, first["tiles"]):
        camera = tile["camera"]
        # Appended: only this stream's own segments, every one through the gate.
        assert tile["owner"] == "alice" and tile["unverifiedAppends"] == 0
        assert len(tile["appended"]) >= 3
        assert {(t["owner"], t["camera"]) for t in tags(tile)} == {("alice", camera)}
        # Refused: the stranger's fragments, with their reason; the tag names no owner to a stranger.
        refused = {(r["reason"], r["tag"]["key_id"] in strangers if r["tag"] else None) for r in tile["refused"]}
        assert ("no_grant", True) in refused
        assert all(r["reason"] != "ok" for r in tile["refused"])
        assert all(r["tag"]["owner"] == "" for r in tile["refused"] if r["reason"] == "no_grant")
        # The video plays: its time and its decoded frames advance.
        assert tile["currentTime"] - before["currentTime"] >= 4.0
        assert tile["decodedFrames"] >= before["decodedFrames"] + 25  # at least one more second decoded
        assert not tile["stale"] and not tile["frozen"]
    # What reached Media Source Extensions: alice's fragments only, decrypted, never a key id of eve's.
    media = [a for a in appends if a["media"]]
    assert len(media) >= sum(len(t["appended"]) for t in tiles)
    assert all(set(a["keyIds"]) <= own_keys and a["keyIds"] for a in media), media
    assert not any(set(a["keyIds"]) & strangers for a in appends)
    assert not any(a["protection"] for a in appends)  # clear fMP4: no 'encv', 'senc', 'pssh'
    decrypted_only_what_passed(seen)
    # The screenshot: each tile shows its own camera's scene, and no pixel of a stranger's.
    for tile in tiles:
        expected = "red" if own[tile["camera"]] == RED else "blue"
        assert nearest(colour_of(png, tile["rect"])) == expected, tile["camera"]
        assert stranger_pixels(png, tile["rect"]) == 0


def test_without_the_fault_nothing_is_refused(households) -> None:
    with WebCloud(households.cloud, Faults(cache_2020=False)) as web, DisplayHost() as site, chromium() as driver:
        page = open_display(driver, site, web, households, "tv-nobug")
        progress = Progress()
        page.wait(lambda: progress.playing(page.state(), 2, 4.0), 60, "alice's two cameras to play")
        seen = observed(driver)
    assert web.stats.foreign_total == 0
    for tile in seen["state"]["tiles"]:
        assert tile["refused"] == [] and tile["unverifiedAppends"] == 0
        assert {t["owner"] for t in tags(tile)} == {"alice"}
    decrypted_only_what_passed(seen)


def test_stale_and_frozen_feeds_are_flagged_and_a_strangers_feed_shows_nothing() -> None:
    """The cloud also sends eve's cameras to alice (a leak, with its second line off): their tiles
    show nothing, decrypt nothing and go stale; one of alice's cameras stops sending video
    (stale), another's clock sticks (frozen: its capture time stops advancing)."""
    households = world(faults=CloudFaults(leak_to=("alice",)), second_line=False, recording=0)
    alice, eve = households.alice, households.eve
    try:
        with WebCloud(households.cloud, Faults()) as web, DisplayHost() as site, chromium(height=900) as driver:
            page = open_display(driver, site, web, households, "tv-flags", stale="3", frozen="3")
            progress = Progress()
            page.wait(lambda: progress.playing(page.state(), 2, 1.0), 60, "alice's cameras to play")
            front, garden = alice.cameras
            front.stop_video()
            garden.hold_clock()

            def flagged() -> Dict[str, Any]:
                seen = observed(driver)
                tiles = {t["camera"] or t["feed"]: t for t in seen["state"]["tiles"]}
                done = tiles[front.name]["stale"] and tiles[garden.name]["frozen"]
                return seen if done else {}

            seen = page.wait(flagged, 30, "the stale and frozen flags")
    finally:
        households.stop()
    tiles = {t["camera"] or t["feed"]: t for t in seen["state"]["tiles"]}
    assert sorted(tiles) == sorted(c.name for c in alice.cameras + eve.cameras)
    for intruder in (tiles[cam.name] for cam in eve.cameras):
        assert intruder["camera"] is None and intruder["appended"] == [] and intruder["stale"]
        assert intruder["decrypted"] == 0 and intruder["passed"] == []
        assert {r["reason"] for r in intruder["refused"]} == {"no_grant"}
    assert not tiles[front.name]["frozen"] and not tiles[garden.name]["stale"]
    decrypted_only_what_passed(seen)


def clear_of_a_period_boundary(margin_s: float = 120.0) -> None:
    """Wait, if need be, until the key period in progress has ``margin_s`` left. A browser display
    is granted the period in progress (and the next), never the last one (docs/DISPLAYS.md,
    Limits): a recording made before a boundary and played after it is ``no_grant``, by design.
    (The households' clock is the wall clock.)"""
    period_ms = DEFAULT_PERIOD_S * 1000
    left_ms = period_ms - int(time.time() * 1000) % period_ms
    if left_ms < margin_s * 1000:
        time.sleep(left_ms / 1000 + 1)


def test_the_recording_plays_as_vod_and_is_complete() -> None:
    """A display opened a few seconds after the cameras recorded plays each recording whole.
    Households of its own, made clear of a period boundary: the module's households recorded
    minutes ago, and a boundary since would leave this fresh display without their keys."""
    clear_of_a_period_boundary()
    households = world()
    try:
        with WebCloud(households.cloud, Faults()) as web, DisplayHost() as site, chromium() as driver:
            page = open_display(driver, site, web, households, "tv-rec", mode="recording")
            state = page.wait(lambda: (lambda s: s if all(t["finished"] for t in s["tiles"]) and s["tiles"] else None)(
                page.state()), 60, "the recordings to end")
    finally:
        households.stop()
    for tile in state["tiles"]:
        assert tile["finished"] == "complete"
        assert [t["seq"] for t in tags(tile)] == list(range(RECORDING))
        assert tags(tile)[-1]["end_of_stream"] and not any(t["end_of_stream"] for t in tags(tile)[:-1])
        assert tile["refused"] == []


def test_grants_from_anyone_but_the_pinned_owner_are_refused() -> None:
    """eve read the display's card off its screen and, the cloud's display registry being at fault,
    leaves it grants through the cloud: sealed to this display, signed by eve, for her cameras."""
    households = Households(RealTimeScheduler().start(), faults=CloudFaults(displays_unchecked=True), recording=0)
    alice, eve = households.alice, households.eve
    try:
        with WebCloud(households.cloud, Faults()) as web, DisplayHost() as site, chromium() as driver:
            page = DisplayPage(driver, site.page(web.url, "alice", "tv-pinned")).open()
            enroll(page, alice.app)
            eve.app.enroll_card(page.card())
            eve.app.push_grants()
            assert (households.cloud.sealed_grants("tv-pinned") or {}).get("from") == "eve"  # the cloud took them
            state = page.wait(lambda: (lambda s: s if s["grantRefusals"] else None)(page.state()), 20,
                              "the stranger's grants to be refused")
            assert state["grantRefusals"] == ["not_from_owner"] and state["granted"] == [] and state["tiles"] == []
            alice.app.push_grants()  # serial 1, as eve's was: her refused message left no trace
            state = page.wait(lambda: (lambda s: s if s["granted"] else None)(page.state()), 20, "alice's grants")
            assert state["serial"] == "1"
            alice.app.push_grants()  # and the next one replaces it
            state = page.wait(lambda: (lambda s: s if s["serial"] == "2" else None)(page.state()), 20,
                              "alice's second grants")
    finally:
        households.stop()
    assert sorted({g["camera"] for g in state["granted"]}) == sorted(c.name for c in alice.cameras)
    assert {g["owner"] for g in state["granted"]} == {"alice"}
    assert state["serial"] == "2" and state["grantRefusals"] == ["not_from_owner"]
    assert re.fullmatch(r"[A-Z2-7]{8}", state["code"] or "")


# ---- the display's code is not the cloud's (issue 20) -------------------------------------------------------

def tampered_verifier() -> bytes:
    """segbind-verify.js as a hostile cloud would serve it: it marks the page it runs in and passes
    every fragment to the decoder as it came (no key, no check)."""
    from segbind.web import ASSETS

    return (ASSETS / "segbind-verify.js").read_bytes() + b"""
globalThis.__tampered = "loaded";
FragmentGate.prototype.fragment = async function (bytes) {
  globalThis.__tampered = "ran";
  return { pass: true, verdicts: [], media: bytes };
};
"""


HOSTILE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>segbind display</title>
<script type="module" src="/static/segbind-verify.js"></script>
"""


def test_the_display_runs_only_its_pinned_code(households) -> None:
    """A hostile cloud serves a tampered verifier (and a page that loads it) where the display's code
    used to come from. The display, its bundle from its own origin, never asks the cloud for code:
    it plays alice's cameras and refuses eve's fragments with its own gate, and the tampered code
    never runs in it (the cloud's page shows that code would run, were it loaded). A tampered copy
    of the verifier on the display's own origin (a mirror gone bad) is refused by the browser: its
    hash is not the one the loader page pins, and the display starts nothing rather than run it."""
    from segbind.web import ASSETS

    strangers = key_ids(households.eve)
    code = {"display.html": HOSTILE_PAGE, "segbind-verify.js": tampered_verifier(),
            **{name: (ASSETS / name).read_bytes() for name in ("segbind-mp4.js", "segbind-syntax.js")}}
    with WebCloud(households.cloud, Faults(cache_2020=True, code=code)) as web, DisplayHost() as site, \
            DisplayHost(overrides={"segbind-verify.js": tampered_verifier()}) as mirror, chromium(log=True) as driver:
        # the attack is real: the cloud's page runs the tampered verifier
        driver.get(web.url + "/a/alice/display?display=tv-code")
        DisplayPage(driver, web.url).wait(lambda: driver.execute_script("return globalThis.__tampered"), 20,
                                          "the cloud's page to load its verifier")
        assert web.stats.code  # the cloud served its code, to a page that asked the cloud
        served = dict(web.stats.code)
        # the display: pinned code only, from its own origin
        page = open_display(driver, site, web, households, "tv-code")
        progress = Progress()

        def refused_and_played() -> Dict[str, Any]:
            seen = observed(driver)
            tiles = seen["state"]["tiles"]
            done = progress.playing(seen["state"], 2, 1.0) and all(
                any(r["tag"] and r["tag"]["key_id"] in strangers for r in t["refused"]) for t in tiles)
            return seen if done else {}

        seen = page.wait(refused_and_played, 90, "alice's cameras to play, and the display's own gate to refuse eve's")
        assert driver.execute_script("return globalThis.__tampered === undefined")
        scripts = driver.execute_script("return performance.getEntriesByType('resource')"
                                        ".filter((e) => e.initiatorType === 'script' || e.name.endsWith('.js'))"
                                        ".map((e) => e.name)")
        assert scripts and all(url.startswith(site.url + "/") for url in scripts), scripts
        assert web.stats.code == served  # the display asked the cloud for no code at all
        # a tampered copy on the display's own origin: fetched, refused by its hash, never run
        driver.get(mirror.page(web.url, "alice", "tv-mirror"))
        refused = DisplayPage(driver, mirror.url).wait(
            lambda: [e["message"] for e in driver.get_log("browser") if "integrity" in e["message"]
                     and "segbind-verify.js" in e["message"]], 20, "the browser to refuse the tampered verifier")
        assert driver.execute_script("return window.segbind === undefined && globalThis.__tampered === undefined")
        assert driver.execute_script("return window.__appends.length === 0 && window.__decrypts.length === 0")
        assert "segbind-verify.js" in mirror.requests
    assert refused
    tiles = seen["state"]["tiles"]
    assert tiles and all(t["unverifiedAppends"] == 0 and {tag["owner"] for tag in tags(t)} == {"alice"} for t in tiles)
    assert not any(set(a["keyIds"]) & strangers for a in seen["appends"])
    decrypted_only_what_passed(seen)


# ---- the gate on HLS fMP4 of the owner's own packaging and of ffmpeg's -----------------------------------

# The display's gate in a page of its own: hls.js with a fragment loader that hands every init
# segment and fragment to a FragmentGate before Media Source Extensions, as display.js does (a
# fragment waits for the init segment it names), on a static playlist; and the gate alone over a
# playlist's files (H.265: chromium has no HEVC decoder). APPEND_HOOK sees the bytes appended.
GATE_PAGE = r"""<!doctype html><meta charset="utf-8"><title>segbind gate</title>
<video muted playsinline></video>
<script src="static/hls.min.js"></script>
<script type="module">
import { FragmentGate, StreamVerifier, fromHex } from "./static/segbind-verify.js";
import { PeriodKeyring } from "./static/segbind-grants.js";

const keyringOf = async (grants) => {  // the period keys a display's grants would give it
  const ring = new PeriodKeyring();
  for (const g of grants) {
    await ring.grant({ keyId: fromHex(g.key_id), owner: g.owner, camera: g.camera, epoch: BigInt(g.epoch),
      epochId: g.epoch_id.toLowerCase(), period: BigInt(g.period), periodS: BigInt(g.period_s), slot: BigInt(g.slot),
      key: fromHex(g.key), contentKey: fromHex(g.content_key) });
  }
  return ring;
};

const REFUSED = 460;
const state = { passed: [], refused: [], appended: [], errors: [], ended: false };
const video = document.querySelector("video");

window.gateState = () => {
  const q = video.getVideoPlaybackQuality();
  return { ...state, frames: q.totalVideoFrames, time: video.currentTime };
};

window.play = async (grants, playlist) => {
  const gate = new FragmentGate(new StreamVerifier(await keyringOf(grants)), { decrypt: true });
  const inits = new Map();  // init segment URL -> {promise, resolve, bytes}
  let current = null;
  const initEntry = (url) => {
    if (!inits.has(url)) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      inits.set(url, { promise, resolve, bytes: null });
    }
    return inits.get(url);
  };
  const check = async (frag, bytes) => {
    if (frag.sn === "initSegment") {
      const entry = initEntry(frag.url);
      const problem = gate.init(bytes);
      current = frag.url;
      entry.bytes = bytes;
      entry.resolve();
      if (problem) state.refused.push({ sn: "init", reason: "framing", detail: problem });
      return problem ? null : gate.initMedia;
    }
    const entry = initEntry(frag.initSegment.url);
    await entry.promise;
    if (current !== frag.initSegment.url) { gate.init(entry.bytes); current = frag.initSegment.url; }
    const { pass, verdicts, media } = await gate.fragment(bytes);
    if (pass) state.passed.push(frag.sn);
    else state.refused.push({ sn: frag.sn, reasons: verdicts.map((v) => v.reason) });
    return media;  // the verified segments decrypted, or null
  };
  class GateLoader extends Hls.DefaultConfig.loader {
    load(context, config, callbacks) {
      const frag = context.frag;
      if (frag.sn === "initSegment") initEntry(frag.url);
      super.load(context, config, { ...callbacks, onSuccess: (response, stats, ctx, details) => {
        check(frag, new Uint8Array(response.data)).then((media) => {
          if (media) callbacks.onSuccess({ ...response, data: media.buffer }, stats, ctx, details);
          else callbacks.onError({ code: REFUSED, text: "segbind refused" }, ctx, details, stats);
        }, (error) => { state.errors.push(String(error)); });
      } });
    }
  }
  const none = { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 };
  const hls = new Hls({ fLoader: GateLoader, fragLoadPolicy: { default: { maxTimeToFirstByteMs: 10000,
    maxLoadTimeMs: 20000, timeoutRetry: none, errorRetry: none } } });
  hls.on(Hls.Events.BUFFER_APPENDING, (_e, data) => {
    const sn = data.frag && data.frag.sn;
    if (sn !== undefined && sn !== "initSegment" && !state.appended.includes(sn)) state.appended.push(sn);
  });
  hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) state.errors.push(data.details); });
  hls.on(Hls.Events.BUFFER_EOS, () => { state.ended = true; });
  hls.loadSource(playlist);
  hls.attachMedia(video);
  video.play().catch(() => undefined);
};

window.judge = async (grants, init, fragments) => {
  const gate = new FragmentGate(new StreamVerifier(await keyringOf(grants)));
  const get = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const problem = gate.init(await get(init));
  const out = [];
  for (const url of fragments) {
    const { pass, verdicts } = await gate.fragment(await get(url));
    out.push([pass, verdicts.map((v) => v.reason)]);
  }
  return { problem, out };
};
window.gateReady = true;
</script>
"""


class GateSite(NamedTuple):
    url: str                     # the site's base URL
    root: Path                   # its directory
    playlists: Dict[str, Path]   # "segbind hls h264"... -> the playlist


@pytest.fixture(scope="module")
def gate_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateSite]:
    """A static site served over HTTP on loopback: the gate page, the gate's modules and hls.js,
    and for each codec the HLS fMP4 of ``segbind hls --type fmp4`` and of ffmpeg's HLS muxer (the
    owner's remux in) of a camera's tagged stream with B-frames."""
    from segbind.web import ASSETS, hlsjs_path
    from tests.support.media import http_server
    from tests.support.web import CAMERA_KINDS, ffmpeg_hls_of, segbind_hls_of

    root = tmp_path_factory.mktemp("gate-site")
    (root / "static").mkdir()
    for name in ("segbind-verify.js", "segbind-mp4.js", "segbind-syntax.js", "segbind-grants.js"):
        (root / "static" / name).write_bytes((ASSETS / name).read_bytes())
    hlsjs = hlsjs_path()
    assert hlsjs is not None, "hls.js is needed (npm ci in src/segbind/web)"
    (root / "static" / "hls.min.js").write_bytes(hlsjs.read_bytes())
    (root / "gate.html").write_text(GATE_PAGE)
    playlists = {}
    for codec, kind in CAMERA_KINDS.items():
        playlists["segbind hls " + codec] = segbind_hls_of(kind, root)
        playlists["ffmpeg hls " + codec] = ffmpeg_hls_of(kind, root)
    with http_server(root) as url:
        yield GateSite(url, root, playlists)


def _served(site: GateSite, playlist: Path) -> Tuple[str, str, List[str]]:
    """The URL paths of a playlist, of its init segment and of its media segments."""
    lines = playlist.read_text().splitlines()
    init = next(line.split('URI="', 1)[1].split('"', 1)[0] for line in lines if line.startswith("#EXT-X-MAP:"))
    media = [line for line in lines if line and not line.startswith("#")]
    at = "/" + str(playlist.parent.relative_to(site.root)) + "/"
    return "/" + str(playlist.relative_to(site.root)), at + init, [at + m for m in media]


def _grants(ring: str) -> List[Dict[str, Any]]:
    from tests.support.web import RINGS

    return RINGS[ring]()


def _open_gate_page(driver: Any, site: GateSite) -> DisplayPage:
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": APPEND_HOOK})
    page = DisplayPage(driver, site.url + "/gate.html")
    driver.get(page.url)
    page.wait(lambda: driver.execute_script("return window.gateReady === true"), 20, "the gate page")
    return page


def _gate_state(driver: Any) -> Dict[str, Any]:
    return json.loads(driver.execute_script("return JSON.stringify(window.gateState())"))


def _judge(driver: Any, ring: str, init: str, fragments: List[str]) -> Dict[str, Any]:
    """The page's gate alone over the fragments (fetched by the page): {problem, out: [[pass, reasons]]}."""
    return dict(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.judge(arguments[0], arguments[1], arguments[2])"
        "  .then(done, (e) => done({problem: String(e), out: []}));",
        _grants(ring), init, fragments))


@pytest.mark.parametrize("output", ["segbind hls", "ffmpeg hls"])
def test_hls_fmp4_plays_through_its_owners_gate_and_a_strangers_gate_refuses_it(gate_site: GateSite,
                                                                                 output: str) -> None:
    """H.264: the owner's gate passes every fragment, decrypts it and chromium plays it (its time and
    decoded frames advance to the end), whether 'cenc' (segbind hls) or the protected form in a clear
    track (ffmpeg's HLS muxer); a stranger's gate passes none, decrypts none, and no picture reaches
    Media Source Extensions."""
    playlist, init, fragments = _served(gate_site, gate_site.playlists[output + " h264"])
    assert len(fragments) >= 3
    with chromium() as driver:
        page = _open_gate_page(driver, gate_site)
        driver.execute_script("window.play(arguments[0], arguments[1])", _grants("alice"), playlist)
        owner = page.wait(lambda: (lambda s: s if s["ended"] and s["frames"] >= 60 and s["time"] >= 2.4 else None)(
            _gate_state(driver)), 60, "the owner's video to play to its end")
        owner_appends, owner_decrypts = driver.execute_script("return [window.__appends, window.__decrypts]")
        page = _open_gate_page(driver, gate_site)
        driver.execute_script("window.play(arguments[0], arguments[1])", _grants("eve"), playlist)
        page.wait(lambda: _gate_state(driver)["refused"], 30, "the stranger's gate to refuse a fragment")
        time.sleep(2)  # what hls.js would append after it, it appends in this time
        stranger = _gate_state(driver)
        stranger_appends, stranger_decrypts = driver.execute_script("return [window.__appends, window.__decrypts]")
        judged = _judge(driver, "eve", init, fragments)
    assert owner["errors"] == [] and owner["refused"] == []
    assert owner["passed"] == owner["appended"] == list(range(len(fragments)))
    owner_media = [a for a in owner_appends if a["media"]]
    assert len(owner_media) >= len(fragments) and not any(a["protection"] for a in owner_appends)  # decrypted, clear
    from tests.support.web import CAMERA_KINDS, segments_of, tagged

    assert len(owner_decrypts) == len(segments_of(tagged(CAMERA_KINDS["h264"])))  # one decryption a segment
    assert stranger["passed"] == [] and stranger["appended"] == [] and stranger["frames"] == 0
    assert stranger["refused"] and all(r["reasons"] == ["no_grant"] for r in stranger["refused"]), stranger
    assert not [a for a in stranger_appends if a["media"]]  # the init segment at most: not a picture
    assert stranger_decrypts == []  # nothing refused is ever decrypted
    assert judged == {"problem": "", "out": [[False, ["no_grant"]]] * len(fragments)}, judged


def test_h265_hls_fmp4_passes_its_owners_gate_in_the_page_and_not_a_strangers(gate_site: GateSite) -> None:
    """H.265 (chromium has no HEVC decoder): the page's gate, on chromium's own WebCrypto, passes
    every fragment of both packagings for the owner and none for a stranger."""
    with chromium() as driver:
        _open_gate_page(driver, gate_site)
        for output in ("segbind hls", "ffmpeg hls"):
            _playlist, init, fragments = _served(gate_site, gate_site.playlists[output + " h265"])
            assert len(fragments) >= 3
            owner, stranger = _judge(driver, "alice", init, fragments), _judge(driver, "eve", init, fragments)
            assert owner["problem"] == "" and [p for p, _ in owner["out"]] == [True] * len(fragments), (output, owner)
            assert {r for _p, rs in owner["out"] for r in rs} == {"ok"}, (output, owner)
            assert len(stranger["out"]) == len(fragments) and all(
                not p and rs and set(rs) == {"no_grant"} for p, rs in stranger["out"]), (output, stranger)
