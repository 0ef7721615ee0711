"""Live HLS over HTTP from the reference cloud, and the browser display it serves.

For each account, every camera the cloud routes to it is served as live CMAF
HLS (a sliding media playlist, init segments, one fMP4 fragment per tagged
segment) and its recording as VOD, and each display's sealed grants, opaque JSON
the cloud cannot open: data only, to any origin (CORS). The display's code is not
the cloud's to serve: the browser display is a static bundle from an origin the
cloud does not control (``host_sim.display_host``, ``segbind.web.bundle``). Fragments are the
camera's tagged segments packaged as Common Encryption 'cenc' (``segbind.web.fmp4``,
docs/FORMAT.md 4.4): a ClearKey player given the content key plays them, a verifier
checks them; the cloud holds no key and needs none.

The cloud's side is an interface, ``host_sim.live.LiveSource``, which the reference cloud
(``host_sim.cloud.Cloud``) implements from what its cameras send it.

An edge cache sits between the origin and the viewers, as a CDN does; the
origin pushes each fragment to it as it is published. ``Faults(cache_2020=True)``
switches on the January 2020 mistake in this HTTP path: entries keyed without
the account and with the camera hashed into a few slots (the key a careless
optimisation makes), so one household's fragment is served for another's URL
whenever their cameras share a slot and the stranger's push came last. Only the
display's verifier can tell.

    world = Households(RealTimeScheduler().start()).start()   # host_sim.households, host_sim.scheduler
    with WebCloud(world.cloud, Faults(cache_2020=True)) as web, DisplayHost() as site:
        print(site.page(web.url, "alice", "tv-1"))            # the display, from an origin of its own

``python3 -m host_sim.demo --port 8080 [--bug]`` serves the demo's households, and the display
from an origin of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

from host_sim.app_thread import AppThread
from host_sim.live import LiveSource, Published
from segbind.web import fmp4
from segbind_core.nal import annexb_units

__all__ = ["EdgeCache", "EdgeStats", "Faults", "LiveSource", "Origin", "Published", "WINDOW", "WebCloud", "make_app"]

WINDOW = 6            # fragments a live playlist lists


# ---- the edge cache, with the 2020 fault -------------------------------------------------------

@dataclass
class Faults:
    """Faults switched on in the HTTP path (for demonstrations and tests; never on in service).

    ``cache_2020``: the edge cache keys fragments by (crc32(camera) % ``slots``, kind, number),
    without the account: a stranger's fragment is served for an own URL when their cameras
    share a slot and the stranger's was stored last (with ``slots=1``, every camera collides).
    """

    cache_2020: bool = False
    slots: int = 4
    seed: int = 2020
    # A hostile cloud that serves code: these files (name -> bytes) at /static/NAME, and a page
    # loading them at /a/ACCOUNT/display, where a display's code came from before it was pinned.
    code: Optional[Dict[str, bytes]] = None


class Entry(NamedTuple):
    account: str
    camera: str
    data: bytes


@dataclass
class EdgeStats:
    served: Dict[str, int] = field(default_factory=dict)   # "account/camera" -> fragments served
    foreign: Dict[str, int] = field(default_factory=dict)  # ... of which were another camera's
    code: Dict[str, int] = field(default_factory=dict)     # path -> code (a page, a script) served

    @property
    def foreign_total(self) -> int:
        return sum(self.foreign.values())

    def as_dict(self) -> Dict[str, Any]:
        return {"served": dict(self.served), "foreign": dict(self.foreign), "foreign_total": self.foreign_total,
                "code": dict(self.code)}


class EdgeCache:
    """Packaged fragments and init segments, as a CDN edge keeps them (bounded, oldest dropped)."""

    def __init__(self, faults: Faults, capacity: int = 4096) -> None:
        self.faults = faults
        self.capacity = capacity
        self.stats = EdgeStats()
        self._entries: Dict[Tuple[Any, ...], Entry] = {}
        self._lock = threading.Lock()

    def slot_of(self, camera: str) -> int:
        return zlib.crc32(camera.encode()) % self.faults.slots

    def key(self, account: str, camera: str, kind: str, name: str) -> Tuple[Any, ...]:
        if self.faults.cache_2020:
            return (self.slot_of(camera), kind, name)  # 2020: no account, the camera hashed away
        return (account, camera, kind, name)

    def push(self, account: str, camera: str, kind: str, name: str, data: bytes) -> None:
        with self._lock:
            key = self.key(account, camera, kind, name)
            self._entries.pop(key, None)
            self._entries[key] = Entry(account, camera, data)
            while len(self._entries) > self.capacity:
                del self._entries[next(iter(self._entries))]

    def get(self, account: str, camera: str, kind: str, name: str) -> Optional[Entry]:
        with self._lock:
            entry = self._entries.get(self.key(account, camera, kind, name))
            if entry is not None and kind != "init":
                who = "%s/%s" % (account, camera)
                self.stats.served[who] = self.stats.served.get(who, 0) + 1
                if entry.camera != camera:
                    self.stats.foreign[who] = self.stats.foreign.get(who, 0) + 1
            return entry


# ---- the origin: packaging, playlists, the edge kept warm ---------------------------------------

class Origin:
    """Packages what the source publishes and keeps the edge warm; builds the playlists.

    A live playlist lists only fragments already pushed to the edge, so viewers never ask
    the edge for one before it has it.
    """

    def __init__(self, source: LiveSource, edge: EdgeCache, window: int = WINDOW) -> None:
        self.source = source
        self.edge = edge
        self.window = window
        self._warm: Dict[Tuple[str, str], int] = {}   # (account, camera) -> highest number pushed
        self._inits: Dict[str, bytes] = {}            # init name -> bytes
        self._init_of: Dict[bytes, str] = {}          # parameter sets and key id -> init name
        self._rng = random.Random(edge.faults.seed)
        self._lock = threading.Lock()

    def init_name(self, segment: bytes) -> str:
        """The init segment's name for a segment: named by its parameter sets and key id, so it
        stays the same while they do (a player loads it once; a new period or epoch, whose key
        id is another, gets a new one)."""
        key = fmp4.init_key(segment)
        with self._lock:
            name = self._init_of.get(key)
            if name is None:
                name = hashlib.sha256(key).hexdigest()[:16]
                self._init_of[key] = name
                self._inits[name] = fmp4.init_segment(segment)
            return name

    def init_bytes(self, name: str) -> Optional[bytes]:
        with self._lock:
            return self._inits.get(name)

    def warm(self) -> int:
        """Push every newly published fragment (and its init segment) to the edge, in the
        arbitrary order a busy origin does; returns how many were pushed."""
        todo = []
        for account in self.source.accounts():
            for camera in self.source.cameras(account):
                done = self._warm.get((account, camera), -1)
                for item in self.source.segments(account, camera):
                    if item.number > done:
                        todo.append((account, camera, item))
        self._rng.shuffle(todo)
        for account, camera, item in todo:
            try:
                name = self.init_name(item.data)
                self.edge.push(account, camera, "init", name, self.init_bytes(name) or b"")
                self.edge.push(account, camera, "live", str(item.number), fmp4.fragment(item.data, item.number))
            except fmp4.PackagingError:
                continue  # nothing the origin can package (no tag to time it by): never listed
            key = (account, camera)
            self._warm[key] = max(self._warm.get(key, -1), item.number)
        return len(todo)

    def live_playlist(self, account: str, camera: str) -> str:
        done = self._warm.get((account, camera), -1)
        items = [i for i in self.source.segments(account, camera) if i.number <= done][-self.window:]
        return self._playlist(items, "live", live=True)

    def recording_playlist(self, account: str, camera: str) -> str:
        return self._playlist(self.source.recording(account, camera), "rec", live=False)

    def _playlist(self, items: Sequence[Published], kind: str, live: bool) -> str:
        entries = []
        for item in items:
            try:
                timing = fmp4.segment_fields([item.data[s:e] for s, e in annexb_units(item.data)])
                entries.append((item, self.init_name(item.data), timing.duration_ms / 1000.0))
            except fmp4.PackagingError:
                continue
        target = max([1] + [int(d + 0.999) for _i, _n, d in entries])
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:%d" % target,
                 "#EXT-X-MEDIA-SEQUENCE:%d" % (entries[0][0].number if entries else 0)]
        if not live:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        init = None
        for item, name, duration in entries:
            if name != init:
                lines.append('#EXT-X-MAP:URI="init/%s.mp4"' % name)
                init = name
            lines += ["#EXTINF:%.3f," % duration, "%s/%d.m4s" % (kind, item.number)]
        if not live:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def recorded_fragment(self, account: str, camera: str, number: int) -> Optional[bytes]:
        for item in self.source.recording(account, camera):
            if item.number == number:
                return fmp4.fragment(item.data, item.number)
        return None


# ---- the HTTP server (aiohttp) -------------------------------------------------------------------------

def make_app(source: LiveSource, edge: Optional[EdgeCache] = None, warm_every_s: float = 0.1) -> Any:
    """The aiohttp application: routing, playlists, fragments, init segments, grants. Data only,
    readable from any origin (a display's page is not the cloud's: ``host_sim.display_host``)."""
    from aiohttp import web

    edge = edge or EdgeCache(Faults())
    origin = Origin(source, edge)

    @web.middleware
    async def cors(request: Any, handler: Any) -> Any:
        """Every response readable across origins: the display's page asks for data from its own origin."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["Access-Control-Allow-Origin"] = "*"
            raise
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    app = web.Application(middlewares=[cors])

    def routed(request: Any) -> Tuple[str, str]:
        account, camera = request.match_info["account"], request.match_info["camera"]
        if camera not in source.cameras(account):
            raise web.HTTPNotFound(text="no such camera for this account\n")
        return account, camera

    def m3u8(text: str) -> Any:
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl",
                            headers={"Cache-Control": "no-cache"})

    def mp4(data: bytes) -> Any:
        return web.Response(body=data, content_type="video/mp4", headers={"Cache-Control": "max-age=60"})

    async def index(request: Any) -> Any:
        return web.json_response({"accounts": source.accounts()})

    async def code(request: Any) -> Any:
        """A hostile cloud's code (``Faults.code``): served, and counted, for whoever asks."""
        files = edge.faults.code or {}
        name = request.match_info.get("name", "display.html")
        if name not in files:
            raise web.HTTPNotFound()
        edge.stats.code[request.path] = edge.stats.code.get(request.path, 0) + 1
        kind = "text/html" if name.endswith(".html") else "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=files[name], headers={"Content-Type": kind, "Cache-Control": "no-cache"})

    async def cameras(request: Any) -> Any:
        account = request.match_info["account"]
        base = "/a/%s/cam/" % account
        return web.json_response({"account": account, "cameras": [
            {"camera": c, "live": base + c + "/live.m3u8", "recording": base + c + "/recording.m3u8"}
            for c in source.cameras(account)]}, headers={"Cache-Control": "no-cache"})

    async def live(request: Any) -> Any:
        return m3u8(origin.live_playlist(*routed(request)))

    async def recording(request: Any) -> Any:
        return m3u8(origin.recording_playlist(*routed(request)))

    async def init(request: Any) -> Any:
        account, camera = routed(request)
        name = request.match_info["name"]
        entry = edge.get(account, camera, "init", name)
        data = entry.data if entry is not None else origin.init_bytes(name)
        if data is None:
            raise web.HTTPNotFound()
        return mp4(data)

    async def live_fragment(request: Any) -> Any:
        account, camera = routed(request)
        entry = edge.get(account, camera, "live", request.match_info["number"])
        if entry is None:
            raise web.HTTPNotFound(text="not at the edge (not published, or gone)\n")
        return mp4(entry.data)

    async def recorded(request: Any) -> Any:
        account, camera = routed(request)
        data = origin.recorded_fragment(account, camera, int(request.match_info["number"]))
        if data is None:
            raise web.HTTPNotFound()
        return mp4(data)

    async def grants(request: Any) -> Any:
        sealed = source.sealed_grants(request.match_info["display"])
        if sealed is None:
            raise web.HTTPNotFound(text="no grants for this display yet\n")
        return web.json_response(sealed, headers={"Cache-Control": "no-cache"})

    async def stats(request: Any) -> Any:
        return web.json_response(edge.stats.as_dict())

    async def keep_warm(app: Any) -> Any:
        async def loop() -> None:
            while True:
                origin.warm()
                await asyncio.sleep(warm_every_s)

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app.cleanup_ctx.append(keep_warm)
    app.add_routes([
        web.get("/", index),
        web.get("/a/{account}/cameras.json", cameras),
        web.get("/a/{account}/cam/{camera}/live.m3u8", live),
        web.get("/a/{account}/cam/{camera}/recording.m3u8", recording),
        web.get("/a/{account}/cam/{camera}/init/{name}.mp4", init),
        web.get("/a/{account}/cam/{camera}/live/{number:\\d+}.m4s", live_fragment),
        web.get("/a/{account}/cam/{camera}/rec/{number:\\d+}.m4s", recorded),
        web.get("/displays/{display}/grants", grants),
        web.get("/stats.json", stats),
    ])
    if edge.faults.code is not None:
        app.add_routes([web.get("/a/{account}/display", code), web.get("/static/{name}", code)])
    return app


class WebCloud:
    """The HTTP front end on a loopback port, served from a thread of its own (tests, demos)."""

    def __init__(self, source: LiveSource, faults: Optional[Faults] = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.source = source
        self.faults = faults or Faults()
        self.edge = EdgeCache(self.faults)
        self.host, self.port = host, port
        self._server: Optional[AppThread] = None

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    @property
    def stats(self) -> EdgeStats:
        return self.edge.stats

    def start(self) -> "WebCloud":
        self._server = AppThread(lambda: make_app(self.source, self.edge), self.host, self.port, "segbind-web")
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "WebCloud":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
