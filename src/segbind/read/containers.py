"""Reading tagged segments out of containers with PyAV: MPEG-TS, MP4, fragmented MP4, Matroska, FLV.

Every packet's NAL units are copied once into one length-prefixed buffer per
tagged segment (``regroup.SegmentBuilder``). If a muxer moved the parameter
sets out of the samples into ``avcC``, the segment's verification puts them
back where the camera tagged them (docs/CONTAINERS.md).
"""

from __future__ import annotations

import io
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from segbind_core.nal import annexb_units

from ..errors import InputError
from .regroup import Segment, SegmentBuilder
from .sniff import NAMES

# What PyAV opens: a path, or a binary file object (BytesIO, ConcatReader, ...).
Source = Union[str, IO[bytes], io.RawIOBase]
Unit = Tuple[int, int]

_PYAV_FORMAT = {"mpegts": "mpegts", "mp4": "mov", "matroska": "matroska", "flv": "flv"}


# PyAV (optional) and its objects (containers, streams, packets) are typed Any: its stubs
# differ between the versions segbind supports (av>=12), and may be absent.
def av_module() -> Any:
    try:
        import av
        import av.error  # noqa: F401
    except ImportError:
        raise InputError("reading containers needs PyAV (pip install 'segbind[media]')") from None
    return av


def open_av(source: Source, fmt: Optional[str], name: str) -> Any:
    av = av_module()
    try:
        return av.open(source, mode="r", format=fmt)
    except av.error.FFmpegError as exc:
        raise InputError("%s: cannot read as %s (%s)" % (name, fmt or "media", av_reason(exc))) from None
    except (OSError, ValueError) as exc:
        raise InputError("%s: cannot read (%s)" % (name, exc)) from None


def av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def h264_stream(container: Any, name: str) -> Any:
    videos = list(container.streams.video)
    for stream in videos:
        if stream.codec_context.name == "h264":
            return stream
    if videos:
        raise InputError("%s: no H.264 video (video is %s)" % (name, videos[0].codec_context.name))
    audio = [s.codec_context.name for s in container.streams.audio]
    if audio:
        raise InputError("%s: no H.264 video (audio only: %s)" % (name, ", ".join(audio)))
    raise InputError("%s: no H.264 video stream" % name)


def parse_avcc(extradata: bytes) -> Tuple[int, List[bytes], List[bytes]]:
    """(NAL length size, SPS list, PPS list) of an AVCDecoderConfigurationRecord."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise InputError("invalid avcC record")
    length_size = (extradata[4] & 3) + 1
    pos = 5
    sets: List[List[bytes]] = [[], []]
    for which in (0, 1):
        if pos >= len(extradata):
            raise InputError("truncated avcC record")
        count = extradata[pos] & (0x1F if which == 0 else 0xFF)
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos:pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > len(extradata):
                raise InputError("truncated avcC record")
            sets[which].append(bytes(extradata[pos:pos + size]))
            pos += size
    return length_size, sets[0], sets[1]


def _extradata_sets(extradata: bytes) -> Tuple[int, List[bytes]]:
    """(NAL length size or 0 for Annex-B, parameter sets) of a stream's extradata."""
    if extradata[:1] == b"\x01":
        length_size, sps, pps = parse_avcc(extradata)
        return length_size, sps + pps
    return 0, [extradata[s:e] for s, e in annexb_units(extradata)]


def _prefixed_units(data: bytes, length_size: int) -> List[Unit]:
    """Units of a length-prefixed packet; a length running past the end keeps what is there."""
    units: List[Unit] = []
    pos, end = 0, len(data)
    while pos + length_size <= end:
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        if size == 0:
            continue
        stop = min(pos + size, end)
        units.append((pos, stop))
        pos = stop
    return units


def container_segments(source: Source, fmt: str, name: str, stats: Optional[Dict[str, Any]] = None
                       ) -> Iterator[Segment]:
    """Each tagged segment of a container (MPEG-TS, MP4, fMP4, Matroska), in stream order.

    Units before the first tag form a segment of their own (a verifier refuses
    it as untagged). A container cut short ends with what could be read: its last
    segment is then incomplete and refused, never silently dropped.
    """
    av = av_module()
    container = open_av(source, _PYAV_FORMAT.get(fmt, fmt), name)
    try:
        stream = h264_stream(container, name)
        length_size, sets = _extradata_sets(bytes(stream.codec_context.extradata or b""))
        builder = SegmentBuilder(sets)
        packets = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                data = bytes(packet)
                units = _prefixed_units(data, length_size) if length_size else annexb_units(data)
                view = memoryview(data)
                for s, e in units:
                    closed = builder.add(view[s:e])
                    if closed is not None:
                        yield closed
        except av.error.FFmpegError as exc:
            if stats is not None:
                stats["error"] = av_reason(exc)
        last = builder.finish()
        if last is not None:
            yield last
        elif packets == 0:
            raise InputError("%s: no H.264 packets in the %s" % (name, NAMES.get(fmt, fmt)))
        if stats is not None:
            stats["packets"] = packets
    finally:
        container.close()
