"""An aiohttp application on a loopback port, served from a thread with its own event loop.

The reference cloud's HTTP front end (``host_sim.web.WebCloud``) and the display's own origin
(``host_sim.display_host.DisplayHost``) run this way in the tests and the demos, beside code
that is not asynchronous.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, List, Optional


class AppThread:
    """``make_app()`` served on ``host:port`` (0: any free port) once ``start()`` returns; the
    port it took is ``port``. A failure to listen is raised from ``start()``."""

    def __init__(self, make_app: Callable[[], Any], host: str, port: int, name: str) -> None:
        self.make_app = make_app
        self.host, self.port, self.name = host, port, name
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> int:
        from aiohttp import web

        ready = threading.Event()
        failure: List[BaseException] = []
        runner: List[Any] = []

        async def serve() -> None:
            runner.append(web.AppRunner(self.make_app(), access_log=None))
            await runner[0].setup()
            await web.TCPSite(runner[0], self.host, self.port).start()
            self.port = int(runner[0].addresses[0][1])

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner[0].cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None


__all__ = ["AppThread"]
