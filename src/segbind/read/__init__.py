"""Readers: tagged segments out of every input H.264 travels in.

- ``sniff``: what an input is, by content.
- ``regroup``: the one rule that cuts NAL units back into tagged segments, and ``Segment``.
- ``annexb``: Annex-B streams (as cameras write them).
- ``containers``: MPEG-TS, MP4, fragmented MP4, Matroska, FLV, through PyAV.
- ``hls``: local HLS playlists, and several files read as one stream.
"""

from .annexb import annexb_segments, tagged_segments
from .containers import container_segments
from .hls import ConcatReader, hls_segments, read_playlist
from .regroup import Regrouper, Segment
from .sniff import ANNEXB, FLV, HLS, MATROSKA, MP4, MPEGTS, NAMES, SNIFF_BYTES, sniff

__all__ = [
    "ANNEXB", "FLV", "HLS", "MATROSKA", "MP4", "MPEGTS", "NAMES", "SNIFF_BYTES", "ConcatReader",
    "Regrouper", "Segment", "annexb_segments", "container_segments", "hls_segments",
    "read_playlist", "sniff", "tagged_segments",
]
