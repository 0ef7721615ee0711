"""The browser display's own origin: a static server of its bundle, which the cloud does not control.

In deployment the display's code is installed from the project's release, or served from an
origin its owner (or the project) controls, never by the cloud whose mix-ups it defends
against (docs/THREAT_MODEL.md). Here it is a second HTTP server on loopback (another port is
another origin), serving the bundle ``segbind.web.bundle`` builds: the loader page pins every
script by its Subresource Integrity hash, and the page asks the reference cloud
(``host_sim.web``) for data only, across origins.

    with DisplayHost() as site, WebCloud(world.cloud) as web:
        url = site.page(web.url, "alice", "tv-1")     # index.html?cloud=...&account=alice&display=tv-1

``DisplayHost(overrides={"segbind-verify.js": ...})`` serves a tampered copy of one file under the
pinned loader page (a mirror that was tampered with): the browser refuses to run it.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from host_sim.app_thread import AppThread
from segbind.web import bundle

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json"}


class DisplayHost:
    """The display bundle on a loopback port of its own, from a thread (tests, demos)."""

    def __init__(self, directory: Optional[Path] = None, overrides: Optional[Mapping[str, bytes]] = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._temporary = directory is None
        self.directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="segbind-display-"))
        self.manifest: Dict[str, Any] = bundle.build(self.directory, overrides)
        self.host, self.port = host, port
        self.requests: List[str] = []  # the paths asked for, in order
        self._server: Optional[AppThread] = None

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def page(self, cloud: str, account: str, display: str, **query: str) -> str:
        """The display page's URL for ``account``'s display ``display``, fetching data from ``cloud``."""
        return "%s/%s?%s" % (self.url, bundle.LOADER, urllib.parse.urlencode(
            {"cloud": cloud, "account": account, "display": display, **query}))

    def start(self) -> "DisplayHost":
        from aiohttp import web

        served = set(self.manifest["files"]) | {bundle.MANIFEST}  # type: ignore[arg-type]

        async def handle(request: Any) -> Any:
            name = request.match_info.get("name") or bundle.LOADER
            self.requests.append(name)
            if name not in served:
                raise web.HTTPNotFound()
            return web.FileResponse(self.directory / name, headers={
                "Content-Type": TYPES.get(Path(name).suffix, "application/octet-stream"), "Cache-Control": "no-cache"})

        def make_app() -> Any:
            app = web.Application()
            app.add_routes([web.get("/", handle), web.get("/{name}", handle)])
            return app

        self._server = AppThread(make_app, self.host, self.port, "segbind-display-host")
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "DisplayHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DisplayHost"]
