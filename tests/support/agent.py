"""Drive an agent core by hand in tests: what it stores, sends and publishes, in order."""

from __future__ import annotations

from typing import List, Optional

from segbind_agent.core import AgentCore, AgentSettings, BindingState, Delete, Log, Persist, Publish, Send, Store
from segbind_core import topics


class CoreRunner:
    """One camera's ``AgentCore`` with its actions carried out in memory: ``segments`` holds the
    tagged segments in the order they were sent, ``results`` the command results it published."""

    def __init__(self, camera: str = "cam-1", state: Optional[BindingState] = None, **settings) -> None:
        settings.setdefault("health_interval_s", 10 ** 9)
        self.core = AgentCore(camera, state or BindingState(camera), AgentSettings(**settings))
        self.stored: dict = {}
        self.segments: List[bytes] = []
        self.results: List[bytes] = []
        self.events: List[bytes] = []
        self.persisted: List[BindingState] = []
        self.logs: List[str] = []

    def run(self, actions) -> "CoreRunner":
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Store):
                self.stored[action.entry.index] = action.payload
            elif isinstance(action, Delete):
                self.stored.pop(action.index, None)
            elif isinstance(action, Send):
                self.segments.append(self.stored[action.entry.index])
                pending += self.core.delivered(action.entry.index, True)
            elif isinstance(action, Publish):
                if action.leaf == topics.CTL_RESULT:
                    self.results.append(action.payload)
                elif action.leaf == topics.EVENT:
                    self.events.append(action.payload)
            elif isinstance(action, Persist):
                self.persisted.append(action.state.copy())
            elif isinstance(action, Log):
                self.logs.append(action.message)
        return self

    def start(self, now_ms: int) -> "CoreRunner":
        self.run(self.core.start(now_ms))
        return self.run(self.core.connection(True, now_ms))

    def feed(self, data: bytes, now_ms: int) -> List[bytes]:
        """Encoder bytes in; the segments sent because of them out."""
        before = len(self.segments)
        self.run(self.core.encoder_bytes(data, now_ms))
        return self.segments[before:]

    def end(self, now_ms: int) -> List[bytes]:
        before = len(self.segments)
        self.run(self.core.encoder_end(now_ms))
        return self.segments[before:]

    def pair(self, offer: bytes, now_ms: int) -> bytes:
        """The offer handed over; the result it published (the last one)."""
        self.run(self.core.pair(offer, now_ms))
        return self.results[-1]

    def command(self, payload: bytes, now_ms: int) -> bytes:
        self.run(self.core.command(payload, now_ms))
        return self.results[-1]
