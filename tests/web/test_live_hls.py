"""The reference cloud's HTTP path (host_sim.web), without a browser: playlists, fragments
and grants over real HTTP (aiohttp), the 2020 cache fault in the edge, and what both
verifiers say of the bytes it serves (``segbind verify`` reads the fragments as served).

What is served is what the reference cloud (host_sim.cloud.Cloud) received from cameras
running the agent core, paired by their owners' apps (host_sim.households), here on
simulated time: twelve seconds, a recorded stream of four segments, then eight live ones.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from host_sim.households import RECORDING, Household, Households
from host_sim.netem import Clock
from host_sim.web import WINDOW, Faults, WebCloud
from segbind import Keyring, StreamVerifier
from segbind.errors import InputError
from segbind.grants import Display as DisplayIdentity
from segbind.grants import DisplayGrants
from segbind.read.containers import container_segments
from segbind_core import topics
from tests.support import run_cli
from tests.support.web import js_results, python_verdicts

LIVE = 8  # live segments of every camera, after its recording


@pytest.fixture(scope="module")
def households() -> Iterator[Households]:
    clock = Clock()
    seconds = RECORDING + LIVE  # a piece a second from t = 0; the piece at t = 12 s closes the 8th live segment
    world = Households(clock, base_ms=int(time.time() * 1000) - 1000 * seconds).start()
    clock.run(1000 * seconds)  # no clock thread: the cloud holds what the cameras sent by then
    yield world
    world.stop()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as response:
        return bytes(response.read())


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def download(cloud: WebCloud, account: str, camera: str, playlist: str, into: Path) -> Path:
    """A playlist and everything it lists, saved with the same relative paths."""
    base = "%s/a/%s/cam/%s/" % (cloud.url, account, camera)
    text = get(base + playlist).decode()
    for uri in re.findall(r'URI="([^"]+)"', text) + [l for l in text.splitlines() if l and not l.startswith("#")]:
        (into / uri).parent.mkdir(parents=True, exist_ok=True)
        (into / uri).write_bytes(get(base + uri))
    (into / playlist).write_text(text)
    return into / playlist


def wait_warm(cloud: WebCloud, account: str, camera: str) -> str:
    for _ in range(100):
        text = get("%s/a/%s/cam/%s/live.m3u8" % (cloud.url, account, camera)).decode()
        if text.count("#EXTINF") >= 6:
            return text
        time.sleep(0.05)
    raise AssertionError("the edge was never warmed")


def owner_keyring(household: Household) -> Keyring:
    """The owner's own keys over the time its cameras streamed (what its app grants its displays,
    period by period)."""
    now = int(time.time() * 1000)
    return household.app.owner.keyring(now - 3_600_000, now + 3_600_000)


def keyring_file(household: Household, path: Path) -> Path:
    """The owner's keys as a keyring file for ``segbind verify``."""
    owner_keyring(household).save(path)
    return path


def fragment_verdicts(keyring: Keyring, init: bytes, fragments: List[bytes]) -> List[List[str]]:
    """What a display's verifier says of each fragment, read as HLS delivers it (the init segment
    the playlist names, then the fragment): the reasons of its segments, in order."""
    verifier = StreamVerifier(keyring)
    out = []
    for fragment in fragments:
        try:
            segments = list(container_segments(io.BytesIO(init + fragment), "mp4", "fragment"))
        except InputError:
            out.append(["unreadable"])
            continue
        out.append([str(verifier.verify_canonical(s).reason) for s in segments])
    return out


@pytest.mark.slow  # runs `segbind verify` on live playlists and the recording over HTTP: most of a minute
def test_live_playlists_list_fragments_that_segbind_verify_accepts(households, tmp_path: Path) -> None:
    alice, eve = households.alice, households.eve
    numbers = [p.number for p in households.cloud.segments("alice", "alice-front")]
    assert numbers == list(range(RECORDING + LIVE))  # every segment the camera sent, numbered by the cloud
    with WebCloud(households.cloud) as cloud:
        routing = json.loads(get(cloud.url + "/a/alice/cameras.json"))
        assert [c["camera"] for c in routing["cameras"]] == [c.name for c in alice.cameras]
        text = wait_warm(cloud, "alice", "alice-front")
        assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" not in text
        assert re.search(r'#EXT-X-MAP:URI="init/[0-9a-f]{16}\.mp4"', text)
        window = [str(n) for n in numbers[-WINDOW:]]  # the newest six
        assert re.findall(r"^live/(\d+)\.m4s$", text, re.M) == window
        playlist = download(cloud, "alice", "alice-front", "live.m3u8", tmp_path)
        recording = download(cloud, "alice", "alice-front", "recording.m3u8", tmp_path)
        assert status(cloud.url + "/a/alice/cam/%s/live.m3u8" % eve.cameras[0].name) == 404  # not routed to alice
        assert status(cloud.url + "/a/alice/cam/alice-front/live/999.m4s") == 404
    ring = keyring_file(alice, tmp_path / "alice.json")
    live = run_cli("verify", "--keyring", str(ring), "--json", str(playlist))
    reasons = [json.loads(line)["reason"] for line in live.stdout.splitlines()[:-1]]
    assert live.returncode == 0 and reasons == ["ok"] * 6, live.stdout + live.stderr
    rec = run_cli("verify", "--keyring", str(ring), "--recording", str(recording))
    assert rec.returncode == 0 and b"ACCEPTED: 4 ok" in rec.stdout, rec.stdout + rec.stderr
    stranger = run_cli("verify", "--keyring", str(keyring_file(eve, tmp_path / "eve.json")), str(playlist))
    assert stranger.returncode == 1 and stranger.stdout.count(b"): no_grant") == 6


def test_the_2020_cache_fault_serves_a_strangers_fragments_for_own_urls(households, tmp_path: Path) -> None:
    alice = households.alice
    served: Dict[bool, List[bytes]] = {}
    for bug in (False, True):
        with WebCloud(households.cloud, Faults(cache_2020=bug)) as cloud:
            text = wait_warm(cloud, "alice", "alice-front")
            init = get(cloud.url + "/a/alice/cam/alice-front/" + re.findall(r'URI="([^"]+)"', text)[0])
            served[bug] = [init] + [get(cloud.url + "/a/alice/cam/alice-front/" + uri)
                                    for uri in re.findall(r"^live/\d+\.m4s$", text, re.M)]
            stats = cloud.stats.as_dict()
        if bug:
            assert stats["foreign"].get("alice/alice-front", 0) > 0, stats
        else:
            assert stats["foreign_total"] == 0
    # The same fragments, judged by both verifiers through the gate a display uses.
    ring = [b.to_json() for b in owner_keyring(alice).bindings()]
    cases = [{"name": "bug" if bug else "no bug", "keyring": ring, "camera": None, "window": None, "now": 0,
              "recording": False, "plaintext": True,
              "inputs": [{"init": frags[0].hex()}] + [{"fragment": f.hex()} for f in frags[1:]]}
             for bug, frags in served.items()]
    js = js_results("verdicts", cases, tmp_path)
    py = {c["name"]: python_verdicts(c) for c in cases}
    assert js == py
    judged = {name: [v for v in verdicts if not v.startswith("plaintext ")] for name, verdicts in py.items()}
    assert judged["no bug"][0] == "ok" and set(judged["no bug"]) == {"ok", "pass"}
    assert "no_grant" in judged["bug"] and judged["bug"].count("held") == judged["bug"].count("no_grant")
    # The same fragments, judged by alice's display's verifier as HLS hands them over. (The browser
    # display's gate judges the same bytes in tests/browser.)
    ring = owner_keyring(alice)
    clean = fragment_verdicts(ring, served[False][0], served[False][1:])
    buggy = fragment_verdicts(ring, served[True][0], served[True][1:])
    assert clean == [["ok"]] * len(clean)
    assert ["ok"] in buggy and all(v == ["ok"] or "ok" not in v for v in buggy)
    strangers = [v for v in buggy if v != ["ok"]]
    assert strangers and all(set(v) <= {"no_grant", "framing", "unreadable"} for v in strangers), strangers
    assert any("no_grant" in v for v in strangers)
    # Every fragment served carries its pictures encrypted (Common Encryption: its sample encryption box).
    for fragment in served[True][1:]:
        assert b"senc" in fragment


def test_grants_are_stored_and_served_as_the_owners_app_left_them(households) -> None:
    alice = households.alice
    left: List[Dict[str, Any]] = []  # the grants requests alice's app sends the cloud
    spy = households.bus.transport("spy").start()
    spy.subscribe(topics.account_topic("alice", topics.REQUESTS),
                  lambda m: left.append(json.loads(m.payload)) if b'"grants"' in m.payload else None)
    screen = DisplayIdentity.new("tv-9", test_only=True)
    alice.app.enroll_card(screen.card())  # a remote display: the app knows its card only
    alice.app.push_grants()
    sealed = [r["sealed"] for r in left if r["display"] == "tv-9"][-1]
    with WebCloud(households.cloud) as cloud:
        assert json.loads(get(cloud.url + "/displays/tv-9/grants")) == sealed
        assert status(cloud.url + "/displays/nobody/grants") == 404
        screen.pin(alice.account.card())  # what the display does at enrollment: the grants open for it
        ring = DisplayGrants(screen).accept(json.loads(get(cloud.url + "/displays/tv-9/grants")))
        assert sorted(c for _o, c, _e in ring.grants()) == sorted(c.name for c in alice.cameras)
        assert all(len(b.content_key) == 16 for b in ring.bindings())  # the period's keys, sealed to tv-9
        # data only, readable from the display's own origin; no page, no script: a display's code is not the cloud's
        with urllib.request.urlopen(cloud.url + "/displays/tv-9/grants", timeout=20) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
        for path in ("/a/alice/display?display=tv-9", "/static/segbind-verify.js", "/static/display.js",
                     "/static/hls.min.js"):
            assert status(cloud.url + path) == 404, path
