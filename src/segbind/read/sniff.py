"""What is this input? Decided by content (start codes, box types, sync bytes, ``#EXTM3U``),
never by file name."""

from __future__ import annotations

from segbind_core.segment import codec_of_unit
from segbind_core.tag import CODEC_H265

from ..errors import InputError

ANNEXB, MPEGTS, MP4, HLS, MATROSKA, FLV = "annexb", "mpegts", "mp4", "hls", "matroska", "flv"
NAMES = {ANNEXB: "Annex-B", MPEGTS: "MPEG-TS", MP4: "MP4", HLS: "HLS playlist",
         MATROSKA: "Matroska", FLV: "FLV"}
_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"free", b"mdat", b"sidx", b"skip", b"wide",
          b"pdin", b"uuid", b"prft", b"emsg")
SNIFF_BYTES = 1024


def sniff(head: bytes) -> str:
    """The kind of input from its first bytes; InputError for anything that is not H.264 or H.265 video.

    ``head`` should be the first ``SNIFF_BYTES`` bytes (fewer only when the input is shorter).
    """
    if not head:
        raise InputError("empty input")
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"#EXTM3U"):
        return HLS
    if len(head) >= 8 and head[4:8] in _BOXES:
        return MP4
    if head[0] == 0x47 and all(head[k] == 0x47 for k in range(188, min(len(head), 752), 188)):
        return MPEGTS
    if len(head) >= 196 and head[4] == 0x47 and head[196] == 0x47:
        return MPEGTS  # M2TS / BDAV: 192-byte packets
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MATROSKA
    if head.startswith(b"FLV\x01"):
        return FLV
    zeros = 0
    while zeros < len(head) and head[zeros] == 0:
        zeros += 1
    if zeros >= 2 and zeros < len(head) and head[zeros] == 1:
        first = head[zeros + 1:zeros + 3]
        if first and not first[0] & 0x80 and codec_of_unit(first) == CODEC_H265:
            return ANNEXB  # an H.265 stream's first unit: VPS, SPS, PPS, AUD, prefix SEI or IRAP
        if first and (first[0] & 0x80 or first[0] & 0x1F == 0):
            raise InputError("not an H.264 or H.265 Annex-B stream (invalid first NAL unit header)")
        return ANNEXB
    raise InputError("not an H.264 or H.265 stream (%s)" % _describe_other(head))


def _describe_other(head: bytes) -> str:
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio only: MP3 or ADTS AAC"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio only: WAV"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"fLaC"):
        return "audio only: FLAC"
    if head.startswith(b"RIFF"):
        return "RIFF/AVI, not supported"
    return "no start code, container or playlist signature"
