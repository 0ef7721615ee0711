"""Readers: tagged segments out of every input H.264 and H.265 travel in, as ``Canonical`` segments.

    source -> sniff -> the one reader of its kind -> cut -> segments -> the verifier

- ``sources``: bytes of files, URLs, pipes and several files read as one stream.
- ``sniff``: what an input is, by content.
- ``annexb`` and ``split``: Annex-B streams (as cameras write them), cut back into the camera's segments.
- ``containers``: MPEG-TS, MP4, fragmented MP4, Matroska, FLV: the one reader of each kind
  (``events``: what readers hand on), cut into segments by ``cut``.
- ``hls``: HLS playlists (local or http(s), finished or live).

Names are imported when first used (PEP 562): a command pays only for the readers it needs.
"""

from typing import TYPE_CHECKING, Any

# Every path needs these; and the function ``sniff`` must not be shadowed by its module.
from .sniff import ANNEXB, FLV, HLS, MATROSKA, MP4, MPEGTS, NAMES, SNIFF_BYTES, sniff

_HOMES = {
    "annexb_segments": "annexb", "tagged_segments": "annexb",
    "container_segments": "containers", "prefixed_units": "containers",
    "SampleCutter": "cut",
    "PlaylistFeed": "hls", "hls_segments": "hls", "parse_playlist": "hls",
    "ConcatReader": "sources",
    "AnnexBSplitter": "split",
}

if TYPE_CHECKING:
    from .annexb import annexb_segments as annexb_segments
    from .annexb import tagged_segments as tagged_segments
    from .containers import container_segments as container_segments
    from .containers import prefixed_units as prefixed_units
    from .cut import SampleCutter as SampleCutter
    from .hls import PlaylistFeed as PlaylistFeed
    from .hls import hls_segments as hls_segments
    from .hls import parse_playlist as parse_playlist
    from .sniff import ANNEXB as ANNEXB
    from .sniff import FLV as FLV
    from .sniff import HLS as HLS
    from .sniff import MATROSKA as MATROSKA
    from .sniff import MP4 as MP4
    from .sniff import MPEGTS as MPEGTS
    from .sniff import NAMES as NAMES
    from .sniff import SNIFF_BYTES as SNIFF_BYTES
    from .sniff import sniff as sniff
    from .sources import ConcatReader as ConcatReader
    from .split import AnnexBSplitter as AnnexBSplitter


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError("module 'segbind.read' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module("." + home, __name__), name)
    globals()[name] = value
    return value


__all__ = sorted(list(_HOMES) + ["ANNEXB", "FLV", "HLS", "MATROSKA", "MP4", "MPEGTS", "NAMES", "SNIFF_BYTES",
                                   "sniff"])
