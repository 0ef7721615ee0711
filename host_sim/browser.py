"""The browser display in Debian's chromium, driven by Selenium: open it, enroll it, screenshot it.

Nothing is downloaded at run time: chromium and chromedriver are Debian's
(``apt-get install chromium chromium-driver``), Selenium is given the driver's
path. The owner's side of enrollment is the out-of-band hand-over a phone next
to the screen would do (here a local call into the page, like
``segbind.grants.OutOfBand``): the owner's app (``host_sim.app.OwnerApp``) reads
the display's card off the screen and enrolls it by that card alone, the page
pins the owner's card, and both compute the enrollment code. The app then sends
the display its sealed grants through the cloud, as for any display.

    path = demo_screenshot("out/display.png")          # what the main demo command calls
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from host_sim.display_host import DisplayHost
from segbind.grants import DisplayCard

if TYPE_CHECKING:
    from host_sim.app import OwnerApp

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class BrowserError(RuntimeError):
    """The browser or the page did not do what was expected in time (says what, and the page's errors)."""


@contextlib.contextmanager
def chromium(width: int = 1060, height: int = 720, log: bool = False) -> Iterator[Any]:
    """Headless chromium under Selenium, Debian's binaries only; quits on exit. With ``log``, the
    pages' console messages are kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=%d,%d" % (width, height),
                "--force-device-scale-factor=1", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class DisplayPage:
    """One display page in the browser, seen from outside: its card, its state, its pixels."""

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        self.url = url

    def open(self, timeout: float = 20) -> "DisplayPage":
        self.driver.get(self.url)
        self.wait(lambda: self.driver.execute_script("return window.segbind && window.segbind.ready"),
                  timeout, "the display page to start")
        return self

    def state(self) -> Dict[str, Any]:
        return json.loads(self.driver.execute_script("return JSON.stringify(window.segbind.state())"))

    def card(self) -> DisplayCard:
        """The display card, read off the screen (what the owner's app scans)."""
        return DisplayCard.from_json(self.driver.execute_script("return window.segbind.outOfBand.card()"))

    def pin_owner(self, card: Dict[str, Any]) -> str:
        """Hand the owner's account card to the display; the enrollment code it shows."""
        return str(self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.segbind.outOfBand.pinOwner(arguments[0]).then(done, (e) => done('error: ' + e));", card))

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while True:
            found = predicate()
            if found:
                return found
            if time.monotonic() > end:
                errors = []
                with contextlib.suppress(Exception):
                    errors = self.state().get("errors", [])
                raise BrowserError("timed out waiting for %s (page errors: %s)" % (what, errors[-5:]))
            time.sleep(0.25)

    def screenshot(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(path)):
            raise BrowserError("chromium could not write %s" % path)
        return path


def enroll(page: DisplayPage, app: "OwnerApp") -> str:
    """The out-of-band enrollment: the owner's app reads the display's card and enrolls it (the
    cloud learns its id), the display pins the owner's card; both compute the code, and the owner
    compares them (here: an exception if they differ)."""
    expected = app.enroll_card(page.card())
    shown = page.pin_owner(app.owner.account.card().to_json())
    if shown != expected:
        raise BrowserError("enrollment codes differ: the display shows %s, the app %s" % (shown, expected))
    return shown


class Progress:
    """How far each tile's video has played since the first look (a live video's currentTime
    starts wherever the live edge is): ``played(state)`` gives seconds per tile."""

    def __init__(self) -> None:
        self.start: Dict[int, float] = {}

    def played(self, state: Dict[str, Any]) -> List[float]:
        out = []
        for i, tile in enumerate(state["tiles"]):
            if tile["camera"] and tile["currentTime"] > 0:
                self.start.setdefault(i, tile["currentTime"])
            out.append(tile["currentTime"] - self.start.get(i, tile["currentTime"]))
        return out

    def playing(self, state: Dict[str, Any], tiles: int, seconds: float) -> bool:
        """True when ``tiles`` tiles each show an authenticated camera and have played ``seconds``."""
        played = self.played(state)
        return sum(1 for t, s in zip(state["tiles"], played) if t["camera"] and s >= seconds) >= tiles


def demo_screenshot(path: Path | str = "out/display.png", bug: bool = True, seconds: float = 4.0,
                    timeout: float = 60) -> Dict[str, Any]:
    """Run the demo households (``host_sim.households``: the reference cloud, the owners' apps,
    cameras on the agent core) and serve them with the 2020 cache fault on; open alice's
    display in chromium (its bundle from an origin of its own, ``host_sim.display_host``),
    enroll it, have her app grant it her cameras, let it play, and write the screenshot.
    Returns what each tile appended and refused, and the edge's mix-ups."""
    from host_sim.households import Households
    from host_sim.scheduler import RealTimeScheduler
    from host_sim.web import Faults, WebCloud

    world = Households(RealTimeScheduler().start()).start()
    try:
        world.wait_live(3, timeout)
        with WebCloud(world.cloud, Faults(cache_2020=bug)) as web, DisplayHost() as site, chromium() as driver:
            page = DisplayPage(driver, site.page(web.url, "alice", "alice-tv")).open()  # its own origin
            code = enroll(page, world.alice.app)
            world.alice.app.push_grants()
            progress = Progress()
            page.wait(lambda: progress.playing(page.state(), len(world.alice.cameras), seconds), timeout,
                      "alice's cameras to play")
            shot = page.screenshot(path)
            state = page.state()
            return {"screenshot": str(shot), "enrollment_code": code, "edge": web.stats.as_dict(),
                    "tiles": [summary(t) for t in state["tiles"]], "errors": state["errors"]}
    finally:
        world.stop()


def summary(tile: Dict[str, Any]) -> Dict[str, Any]:
    """One tile in a few numbers: its camera, fragments shown, refusals by reason, video seconds."""
    reasons: Dict[str, int] = {}
    for r in tile["refused"]:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    owners: List[str] = sorted({tag["owner"] + "/" + tag["camera"] for a in tile["appended"] for tag in a["tags"]})
    return {"camera": tile["camera"], "shown": len(tile["appended"]), "shown_from": owners, "refused": reasons,
            "video_s": round(tile["currentTime"], 1), "stale": tile["stale"], "frozen": tile["frozen"]}


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Open the browser display on the demo households and screenshot it")
    parser.add_argument("--out", default="out/display.png")
    parser.add_argument("--no-bug", action="store_true", help="serve without the 2020 cache fault")
    args = parser.parse_args(argv)
    print(json.dumps(demo_screenshot(args.out, bug=not args.no_bug), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
