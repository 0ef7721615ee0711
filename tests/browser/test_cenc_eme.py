"""segbind's Common Encryption in a real browser: Debian's chromium (headless, Selenium) plays what
`segbind hls --type fmp4` writes through Media Source Extensions and EME ClearKey, given the
owner's content keys as JSON Web Keys (docs/FORMAT.md 4.4).

A real x264 clip (B-frames: composition offsets and an edit list) of a blue scene with a white
square moving across it is tagged as the camera tags it, across a period boundary (two key ids,
two init segments), and packaged without keys. The page (tests/browser/cenc_eme.html, served on
localhost with the playlist) appends the init and media segments in order and answers each
ClearKey license request from the keys it is given:

- with the owner's keys (Binding.content_key for each key id of the playlist), the init
  segments' ClearKey 'pssh' ask for both key ids, the video plays through both periods (its
  time and decoded frames advance) and the screenshot shows the blue scene;
- with a wrong key for the same key ids, the browser decrypts and decodes noise: nothing of the
  scene is on the screen.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import pytest

from host_sim import clips
from host_sim.browser import CHROMEDRIVER, CHROMIUM, chromium
from segbind import Binding, Epoch, Keyring
from segbind_core.nal import annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger
from tests.support import run_cli
from tests.support.media import http_server

pytestmark = pytest.mark.browser

PAGE = Path(__file__).with_name("cenc_eme.html")
BLUE = (30, 60, 200)
WIDTH, HEIGHT = 320, 192
PERIOD_S = 60
T0 = (1_795_000_000_000 // 60_000 + 1) * 60_000 - 2_000  # two 1-second segments in each period


class Served(NamedTuple):
    url: str             # the page
    playlist: str        # the playlist, relative to the page
    codec: str           # 'avc1.PPCCLL', from the SPS
    owner: Keyring
    key_ids: List[bytes]  # of the init segments, in playlist order


def blue_scene() -> bytes:
    """Four seconds of a blue scene with a white square moving across it (libx264, B-frames)."""
    import numpy as np

    def frame(i: int) -> Any:
        rgb = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
        rgb[:] = BLUE
        x = (i * 6) % (WIDTH - 32)
        rgb[HEIGHT // 2 - 16:HEIGHT // 2 + 16, x:x + 32] = 255
        return rgb

    return clips.encode_pyav(frames=100, width=WIDTH, height=HEIGHT, gop=25, bframes=2, frame_source=frame,
                             source_id="cenc-eme-blue-v1")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "Debian's chromium and chromium-driver are needed (tools/setup.sh installs them)"
    d = tmp_path_factory.mktemp("cenc-eme")
    epoch = Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, [], period_s=PERIOD_S)
    segmenter = Segmenter(delimit=True)
    raw = [s for s in segmenter.push(blue_scene()) + segmenter.finish() if isinstance(s, Segment)]
    tagger = Tagger(epoch, 9_000)
    tagged, at = [], T0
    for i, segment in enumerate(raw):
        tagged.append(tagger.tag(segment.data, segment.units, at, segment.duration_ms, segment.pictures,
                                 i == len(raw) - 1)[0])
        at += segment.duration_ms
    (d / "camera.h264").write_bytes(b"".join(tagged))
    result = run_cli("hls", "--type", "fmp4", "--segment-duration", "1", str(d / "camera.h264"), str(d / "live.m3u8"))
    assert result.returncode == 0, result.stderr
    shutil.copy(PAGE, d / "index.html")
    inits = [line.split('"')[1] for line in (d / "live.m3u8").read_text().splitlines()
             if line.startswith("#EXT-X-MAP")]
    key_ids = [_default_kid((d / name).read_bytes()) for name in inits]
    units = [tagged[0][s:e] for s, e in annexb_units(tagged[0])]
    sps = next(u for u in units if u[0] & 0x1F == 7)
    owner = Keyring(Binding.periods_of_epoch(epoch, T0 - 3_600_000, T0 + 3_600_000))
    with http_server(d) as url:
        yield Served(url + "/index.html", "live.m3u8", "avc1.%02x%02x%02x" % (sps[1], sps[2], sps[3]), owner, key_ids)


def _default_kid(init: bytes) -> bytes:
    at = init.find(b"tenc")
    assert at > 0
    return init[at + 12:at + 28]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def json_web_keys(served: Served, wrong: bool = False) -> Dict[str, str]:
    """base64url key id -> base64url content key, for each key id of the playlist: the owner's
    content keys (Binding.content_key), or as many wrong ones."""
    out = {}
    for key_id in served.key_ids:
        key = served.owner.binding(key_id).content_key
        out[b64url(key_id)] = b64url(bytes(b ^ 0x5A for b in key) if wrong else key)
    return out


def start(driver: Any, served: Served, keys: Dict[str, str]) -> None:
    driver.get(served.url)
    driver.execute_script("window.cenc.play(arguments[0], arguments[1], arguments[2])", served.playlist,
                          served.codec, keys)


def state(driver: Any) -> Dict[str, Any]:
    return driver.execute_script("return window.cenc.state()")


def wait(driver: Any, predicate: Any, timeout: float, what: str) -> Dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        found = state(driver)
        if predicate(found):
            return found
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s: %r" % (what, found))
        time.sleep(0.2)


def scene_share(png: bytes, rect: Dict[str, float]) -> Tuple[float, Tuple[float, float, float]]:
    """(share of the video's pixels close to the scene's blue, the video's mean colour)."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
    x, y, w, h = (int(rect[k]) for k in ("x", "y", "width", "height"))
    pixels = image[y + 4:y + h - 4, x + 4:x + w - 4].reshape(-1, 3)
    close = ((pixels - np.array(BLUE)) ** 2).sum(axis=1) < 50 ** 2
    mean = pixels.mean(axis=0)
    return float(close.mean()), (float(mean[0]), float(mean[1]), float(mean[2]))


def test_the_owners_keys_play_both_periods(served: Served, tmp_path: Path) -> None:
    assert len(served.key_ids) == 2 and served.key_ids[0] != served.key_ids[1]
    with chromium() as driver:
        start(driver, served, json_web_keys(served))
        first = wait(driver, lambda s: s["currentTime"] >= 1.0 and s["frames"] >= 20 or s["errors"], 60,
                     "the video to play")
        later = wait(driver, lambda s: s["currentTime"] >= 3.0 or s["ended"] or s["errors"], 60,
                     "the video to play into the second period")
        driver.execute_script("document.getElementById('video').pause()")
        png = driver.get_screenshot_as_png()
        (tmp_path / "owner.png").write_bytes(png)
    assert later["errors"] == [] and later["mediaError"] is None, later
    # both init segments' ClearKey 'pssh' reached EME, each asked for its own key id, and got it
    assert later["encrypted"] == ["cenc", "cenc"]
    assert sorted(set(later["requested"])) == sorted(b64url(k) for k in served.key_ids)
    assert sorted(set(later["answered"])) == sorted(b64url(k) for k in served.key_ids)
    assert later["appended"][0] == "live_init.mp4" and "live_init_00001.mp4" in later["appended"]
    # frames advance, across the period boundary (2 s in)
    assert later["currentTime"] >= 3.0 and later["frames"] >= first["frames"] + 40, (first, later)
    share, mean = scene_share(png, later["rect"])
    assert share > 0.8, (share, mean)


def test_a_wrong_key_shows_nothing_of_the_scene(served: Served, tmp_path: Path) -> None:
    with chromium() as driver:
        start(driver, served, json_web_keys(served, wrong=True))
        # the player tried: the key was asked for and given; then it decodes noise, or fails
        asked = wait(driver, lambda s: s["answered"] or s["errors"], 60, "the license request")
        time.sleep(3.0)
        png = driver.get_screenshot_as_png()
        (tmp_path / "wrong-key.png").write_bytes(png)
        found = state(driver)
    assert asked["answered"], asked
    share, mean = scene_share(png, found["rect"])
    assert share < 0.02, (share, mean, found)
