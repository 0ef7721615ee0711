"""Readers: tagged segments out of every input H.264 and H.265 travel in, as ``Canonical`` segments.

- ``sniff``: what an input is, by content.
- ``split``: the one rule that cuts a stream back into the segments the camera tagged.
- ``annexb``: Annex-B streams (as cameras write them).
- ``containers``: MPEG-TS, MP4, fragmented MP4, Matroska, FLV: the one reader of each kind
  (``events``: what readers hand on), cut into segments by ``cut``.
- ``hls``: HLS playlists (local or http(s), finished or live), and several files read as one stream.
"""

from .annexb import annexb_segments, tagged_segments
from .containers import container_segments, prefixed_units
from .cut import SampleCutter
from .hls import PlaylistFeed, hls_segments, parse_playlist
from .sniff import ANNEXB, FLV, HLS, MATROSKA, MP4, MPEGTS, NAMES, SNIFF_BYTES, sniff
from .sources import ConcatReader
from .split import AnnexBSplitter

__all__ = [
    "ANNEXB", "FLV", "HLS", "MATROSKA", "MP4", "MPEGTS", "NAMES", "SNIFF_BYTES", "AnnexBSplitter",
    "ConcatReader", "PlaylistFeed", "SampleCutter", "annexb_segments", "container_segments",
    "hls_segments", "parse_playlist", "prefixed_units", "sniff", "tagged_segments",
]
