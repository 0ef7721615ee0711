"""What the cloud's HTTP front end (``host_sim.web``) reads, and the reference cloud
(``host_sim.cloud.Cloud``) provides: the interface between them, so that neither imports the
other. Nothing here is trusted by a display: every byte is verified with its owner's keys."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Protocol


class Published(NamedTuple):
    """One segment as the cloud received it: its number is the cloud's own count of the
    camera's segments (the HLS media sequence number); its bytes are the camera's."""

    number: int
    data: bytes


class LiveSource(Protocol):
    """What the HTTP front end needs from the cloud. ``cameras`` is the cloud's routing; every
    byte is verified by the display's keys."""

    def accounts(self) -> List[str]:
        """Every account the cloud serves: a camera is routed to it, or it has a display."""

    def cameras(self, account: str) -> List[str]:
        """The cameras the cloud routes to ``account`` (its own, and those shared with it)."""

    def segments(self, account: str, camera: str) -> List[Published]:
        """Recent tagged Annex-B segments of the camera as published, oldest first."""

    def recording(self, account: str, camera: str) -> List[Published]:
        """The camera's recording (a finished stream), oldest first."""

    def sealed_grants(self, display: str) -> Optional[Dict[str, Any]]:
        """The sealed grants message the owner's app left for ``display`` (opaque), or None."""
