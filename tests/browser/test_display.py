"""The browser display in Debian's chromium (headless, Selenium, nothing downloaded).

The reference cloud (host_sim.cloud) runs with the owners' apps of alice and eve and
their cameras, each the agent core on a real-time scheduler, paired by its owner's app
(host_sim.households). Its HTTP path serves alice's two cameras (a red and a blue scene)
with the 2020 cache fault on, so that a stranger's fragments (eve's green and yellow
scenes) are served for alice's URLs. The display is enrolled by alice's app from its
card and gets its grants from her app through the cloud. The page must append none of them: its state
says what each tile appended and refused, a hook on SourceBuffer.appendBuffer
(installed before the page's own scripts) sees every byte that reaches Media Source
Extensions, and the screenshot's tiles show only alice's colours. Meanwhile alice's
video plays: its time and decoded frames advance.

The display's gate also runs on HLS fMP4 as the owner's ``segbind hls --type fmp4`` and ffmpeg's
HLS muxer write it: H.264 through hls.js into chromium's decoder (the owner's plays to its end, a
stranger's never reaches it), H.265 through the gate alone in the page (no HEVC decoder here).
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import pytest

from host_sim.browser import CHROMEDRIVER, CHROMIUM, DisplayPage, Progress, chromium, enroll
from host_sim.cloud import CloudFaults
from host_sim.fleet import RealTimeScheduler
from host_sim.households import BLUE, GREEN, RECORDING, RED, YELLOW, Households
from host_sim.web import Faults, WebCloud

pytestmark = pytest.mark.browser

# Records every buffer handed to Media Source Extensions: its size and which camera ids
# appear in its bytes (a tag carries its owner and camera in clear, inside the first sample).
APPEND_HOOK = r"""
window.__appends = [];
const append = SourceBuffer.prototype.appendBuffer;
SourceBuffer.prototype.appendBuffer = function (data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
                                            : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const text = new TextDecoder("latin1").decode(bytes);
  window.__appends.push({size: bytes.length, media: text.includes("moof"),
                         ids: [...new Set(text.match(/(alice|eve)-[a-z]+(-[0-9]+)?/g) || [])]});
  return append.call(this, data);
};
"""


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


def open_display(driver: Any, web: WebCloud, households: Households, name: str, query: str = "") -> DisplayPage:
    """Alice's display page, enrolled by her app (out of band) and sent her grants through the cloud."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": APPEND_HOOK})
    page = DisplayPage(driver, "%s/a/alice/display?display=%s%s" % (web.url, name, query)).open()
    assert page.state()["enrolled"] is False
    enroll(page, households.alice.app)
    households.alice.app.push_grants()
    return page


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
    strangers = set(eve.colours)
    with WebCloud(households.cloud, Faults(cache_2020=True)) as web, chromium() as driver:
        page = open_display(driver, web, households, "tv-bug")
        progress = Progress()
        page.wait(lambda: progress.playing(page.state(), 2, 2.0), 60, "alice's two cameras to play")
        first = page.state()

        def injected() -> bool:  # every tile has refused a stranger's fragment the cache served it
            tiles = page.state()["tiles"]
            return all(any(r["tag"] and r["tag"]["owner"] == "eve" for r in t["refused"]) for t in tiles)

        page.wait(injected, 60, "the buggy cache to serve eve's fragments into both tiles")

        def played_on() -> Dict[str, Any]:
            """The state once both own videos have played on (4 s more, a second's frames decoded)
            and neither is flagged. Played time comes in bursts: a refused fragment is asked for
            again three times before the player skips it, and a run of them (half the fragments
            are a stranger's) stalls the video until it catches up with the live edge. A fixed
            wait made this test fail on a loaded machine."""
            state = page.state()
            done = all(t["currentTime"] - b["currentTime"] >= 4.0 and t["decodedFrames"] >= b["decodedFrames"] + 25
                       and not t["stale"] and not t["frozen"] for t, b in zip(state["tiles"], first["tiles"]))
            return state if done else {}

        state = page.wait(played_on, 90, "alice's videos to play on through the stranger's fragments")
        png = driver.get_screenshot_as_png()
        (tmp_path / "display.png").write_bytes(png)
        print("screenshot:", tmp_path / "display.png")
        appends = driver.execute_script("return window.__appends")

    # The fault fired in the HTTP path: alice's URLs were served eve's fragments.
    assert web.stats.foreign_total > 0
    assert state["errors"] == []
    tiles = state["tiles"]
    assert sorted(t["camera"] for t in tiles) == sorted(own)  # one tile per own camera, told by the tag
    for tile, before in zip(tiles, first["tiles"]):
        camera = tile["camera"]
        # Appended: only this camera's own segments, every one through the gate.
        assert tile["unverifiedAppends"] == 0
        assert len(tile["appended"]) >= 3
        assert {(t["owner"], t["camera"]) for t in tags(tile)} == {("alice", camera)}
        # Refused: the stranger's fragments, with their reason.
        refused = {(r["reason"], r["tag"]["owner"] if r["tag"] else None) for r in tile["refused"]}
        assert ("no_grant", "eve") in refused
        assert all(r["reason"] != "ok" for r in tile["refused"])
        # The video plays: its time and its decoded frames advance.
        assert tile["currentTime"] - before["currentTime"] >= 4.0
        assert tile["decodedFrames"] >= before["decodedFrames"] + 25  # at least one more second decoded
        assert not tile["stale"] and not tile["frozen"]
    # What reached Media Source Extensions: alice's fragments only, never an id of eve's cameras.
    media = [a for a in appends if a["media"]]
    assert len(media) >= sum(len(t["appended"]) for t in tiles)
    assert all(set(a["ids"]) <= set(own) and a["ids"] for a in media), media
    assert not any(set(a["ids"]) & strangers for a in appends)
    # The screenshot: each tile shows its own camera's scene, and no pixel of a stranger's.
    for tile in tiles:
        expected = "red" if own[tile["camera"]] == RED else "blue"
        assert nearest(colour_of(png, tile["rect"])) == expected, tile["camera"]
        assert stranger_pixels(png, tile["rect"]) == 0


def test_without_the_fault_nothing_is_refused(households) -> None:
    with WebCloud(households.cloud, Faults(cache_2020=False)) as web, chromium() as driver:
        page = open_display(driver, web, households, "tv-nobug")
        progress = Progress()
        page.wait(lambda: progress.playing(page.state(), 2, 4.0), 60, "alice's two cameras to play")
        state = page.state()
    assert web.stats.foreign_total == 0
    for tile in state["tiles"]:
        assert tile["refused"] == [] and tile["unverifiedAppends"] == 0
        assert {t["owner"] for t in tags(tile)} == {"alice"}


def test_stale_and_frozen_feeds_are_flagged_and_a_strangers_feed_shows_nothing() -> None:
    """The cloud also sends eve's cameras to alice (a leak, with its second line off): their tiles
    show nothing and go stale; one of alice's cameras stops sending video (stale), another's clock
    sticks (frozen: its capture time stops advancing)."""
    households = world(faults=CloudFaults(leak_to=("alice",)), second_line=False, recording=0)
    alice, eve = households.alice, households.eve
    try:
        with WebCloud(households.cloud, Faults()) as web, chromium(height=900) as driver:
            page = open_display(driver, web, households, "tv-flags", "&stale=3&frozen=3")
            progress = Progress()
            page.wait(lambda: progress.playing(page.state(), 2, 1.0), 60, "alice's cameras to play")
            front, garden = alice.cameras
            front.stop_video()
            garden.hold_clock()

            def flagged() -> Dict[str, Any]:
                tiles = {t["camera"] or t["feed"]: t for t in page.state()["tiles"]}
                done = tiles[front.name]["stale"] and tiles[garden.name]["frozen"]
                return tiles if done else {}

            tiles = page.wait(flagged, 30, "the stale and frozen flags")
    finally:
        households.stop()
    assert sorted(tiles) == sorted(c.name for c in alice.cameras + eve.cameras)
    for intruder in (tiles[cam.name] for cam in eve.cameras):
        assert intruder["camera"] is None and intruder["appended"] == [] and intruder["stale"]
        assert {r["reason"] for r in intruder["refused"]} == {"no_grant"}
    assert not tiles[front.name]["frozen"] and not tiles[garden.name]["stale"]


def test_the_recording_plays_as_vod_and_is_complete(households) -> None:
    with WebCloud(households.cloud, Faults()) as web, chromium() as driver:
        page = open_display(driver, web, households, "tv-rec", "&mode=recording")
        state = page.wait(lambda: (lambda s: s if all(t["finished"] for t in s["tiles"]) and s["tiles"] else None)(
            page.state()), 60, "the recordings to end")
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
        with WebCloud(households.cloud, Faults()) as web, chromium() as driver:
            page = DisplayPage(driver, "%s/a/alice/display?display=tv-pinned" % web.url).open()
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
    assert sorted(g["camera"] for g in state["granted"]) == sorted(c.name for c in alice.cameras)
    assert state["serial"] == "2" and state["grantRefusals"] == ["not_from_owner"]
    assert re.fullmatch(r"[A-Z2-7]{8}", state["code"] or "")


# ---- the gate on HLS fMP4 of the owner's own packaging and of ffmpeg's -----------------------------------

# The display's gate in a page of its own: hls.js with a fragment loader that hands every init
# segment and fragment to a FragmentGate before Media Source Extensions, as display.js does (a
# fragment waits for the init segment it names), on a static playlist; and the gate alone over a
# playlist's files (H.265: chromium has no HEVC decoder). APPEND_HOOK sees the bytes appended.
GATE_PAGE = r"""<!doctype html><meta charset="utf-8"><title>segbind gate</title>
<video muted playsinline></video>
<script src="static/hls.min.js"></script>
<script type="module">
import { FragmentGate, Keyring, StreamVerifier } from "./static/segbind-verify.js";

const REFUSED = 460;
const state = { passed: [], refused: [], appended: [], errors: [], ended: false };
const video = document.querySelector("video");

window.gateState = () => {
  const q = video.getVideoPlaybackQuality();
  return { ...state, frames: q.totalVideoFrames, time: video.currentTime };
};

window.play = async (grants, playlist) => {
  const gate = new FragmentGate(new StreamVerifier(await Keyring.of(grants)));
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
      return !problem;
    }
    const entry = initEntry(frag.initSegment.url);
    await entry.promise;
    if (current !== frag.initSegment.url) { gate.init(entry.bytes); current = frag.initSegment.url; }
    const { pass, verdicts } = await gate.fragment(bytes);
    if (pass) state.passed.push(frag.sn);
    else state.refused.push({ sn: frag.sn, reasons: verdicts.map((v) => v.reason) });
    return pass;
  };
  class GateLoader extends Hls.DefaultConfig.loader {
    load(context, config, callbacks) {
      const frag = context.frag;
      if (frag.sn === "initSegment") initEntry(frag.url);
      super.load(context, config, { ...callbacks, onSuccess: (response, stats, ctx, details) => {
        check(frag, new Uint8Array(response.data)).then((pass) => {
          if (pass) callbacks.onSuccess(response, stats, ctx, details);
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
  const gate = new FragmentGate(new StreamVerifier(await Keyring.of(grants)));
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
    for name in ("segbind-verify.js", "segbind-mp4.js", "segbind-syntax.js"):
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
    """H.264: the owner's gate passes every fragment and chromium plays them (its time and decoded
    frames advance to the end); a stranger's gate passes none, and no picture reaches Media Source
    Extensions."""
    playlist, init, fragments = _served(gate_site, gate_site.playlists[output + " h264"])
    assert len(fragments) >= 3
    with chromium() as driver:
        page = _open_gate_page(driver, gate_site)
        driver.execute_script("window.play(arguments[0], arguments[1])", _grants("alice"), playlist)
        owner = page.wait(lambda: (lambda s: s if s["ended"] and s["frames"] >= 60 and s["time"] >= 2.4 else None)(
            _gate_state(driver)), 60, "the owner's video to play to its end")
        owner_appends = driver.execute_script("return window.__appends")
        page = _open_gate_page(driver, gate_site)
        driver.execute_script("window.play(arguments[0], arguments[1])", _grants("eve"), playlist)
        page.wait(lambda: _gate_state(driver)["refused"], 30, "the stranger's gate to refuse a fragment")
        time.sleep(2)  # what hls.js would append after it, it appends in this time
        stranger = _gate_state(driver)
        stranger_appends = driver.execute_script("return window.__appends")
        judged = _judge(driver, "eve", init, fragments)
    assert owner["errors"] == [] and owner["refused"] == []
    assert owner["passed"] == owner["appended"] == list(range(len(fragments)))
    assert len([a for a in owner_appends if a["media"]]) >= len(fragments)
    assert stranger["passed"] == [] and stranger["appended"] == [] and stranger["frames"] == 0
    assert stranger["refused"] and all(r["reasons"] == ["no_grant"] for r in stranger["refused"]), stranger
    assert not [a for a in stranger_appends if a["media"]]  # the init segment at most: not a picture
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
            assert stranger["out"] == [[False, ["no_grant"]]] * len(fragments), (output, stranger)
