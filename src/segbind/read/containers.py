"""Reading tagged segments out of containers with PyAV: MPEG-TS, MP4, fragmented MP4, Matroska, FLV.

Every packet's NAL units go to the regrouping rule (``regroup.Regrouper``),
with each sample's timing; the segments come out in canonical form for the
verifier. Length prefixes must tile each sample, the video must be the
container's only track (unless the caller asks for the video alone), and a
container's timing must agree with the tag (docs/FORMAT.md 7.3). If a muxer
moved the parameter sets out of the samples into ``avcC``, they are put back
where the camera tagged them (docs/CONTAINERS.md).
"""

from __future__ import annotations

import io
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from segbind_core.nal import annexb_units

from ..errors import InputError
from ..verifier import Timing
from .regroup import Regrouper, Segment
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


def prefixed_units(data: bytes, length_size: int) -> Tuple[List[bytes], str]:
    """The units of a length-prefixed sample, and a defect ("" when none): the lengths must
    tile the sample exactly, with no empty unit and no unit ending in a zero byte."""
    units: List[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + length_size > end:
            return units, "a sample ends inside a NAL length prefix"
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        if size == 0:
            return units, "a sample holds an empty NAL unit"
        if pos + size > end:
            return units, "a NAL length runs %d bytes past the end of its sample" % (pos + size - end)
        unit = data[pos:pos + size]
        if unit[-1] == 0:
            return units, "a NAL unit ends with a zero byte (it would not split back the same)"
        units.append(unit)
        pos += size
    return units, ""


def _streams(container: Any, name: str, video_only: bool) -> Tuple[Any, str]:
    """(the H.264 video stream, a defect): a container must hold that stream alone, unless
    the caller asked for the verified video alone (the other tracks are then not read)."""
    stream = h264_stream(container, name)
    others = [s for s in container.streams if s.index != stream.index]
    if others and not video_only:
        kinds = ", ".join("%s (%s)" % (s.type, getattr(s.codec_context, "name", "?")) for s in others)
        return stream, "the container holds other tracks, never verified: %s" % kinds
    return stream, ""


class _Samples:
    """A segment's samples as the container times them."""

    def __init__(self) -> None:
        self.count = 0
        self.hidden = 0
        self.first: Optional[float] = None
        self.end: Optional[float] = None
        self.frame = 0.0

    def add(self, packet: Any) -> None:
        self.count += 1
        if getattr(packet, "is_discard", False):
            self.hidden += 1
        base = packet.time_base
        duration = float(packet.duration * base) * 1000.0 if packet.duration and base else 0.0
        if duration:
            self.frame = duration
        if packet.pts is None or base is None:
            return
        start = float(packet.pts * base) * 1000.0
        self.first = start if self.first is None else min(self.first, start)
        end = start + (duration or self.frame)
        self.end = end if self.end is None else max(self.end, end)

    def timing(self, frame_ms: float) -> Optional[Timing]:
        if not self.count:
            return None
        frame = self.frame or frame_ms
        span = (self.end - self.first) if self.first is not None and self.end is not None else 0.0
        if span and not self.frame:
            span += frame  # the last sample's own duration, when packets do not say it
        return Timing(self.count, span, self.hidden, frame)


def container_segments(source: Source, fmt: str, name: str, stats: Optional[Dict[str, Any]] = None,
                       video_only: bool = False) -> Iterator[Segment]:
    """Each tagged segment of a container (MPEG-TS, MP4, fMP4, Matroska), in stream order.

    Units before the first tag form a segment of their own (a verifier refuses
    it as untagged). A sample whose length prefixes do not tile it, and a
    container holding other tracks (unless ``video_only``), refuse the segments
    they touch (``framing``). A container cut short ends with what could be read:
    its last segment is then incomplete and refused, never silently dropped.
    """
    av = av_module()
    container = open_av(source, _PYAV_FORMAT.get(fmt, fmt), name)
    try:
        stream, problem = _streams(container, name, video_only)
        length_size, sets = _extradata_sets(bytes(stream.codec_context.extradata or b""))
        rate = stream.average_rate or stream.guessed_rate
        frame_ms = 1000.0 / float(rate) if rate else 0.0
        rule = Regrouper(sets)
        if problem:
            rule.problem(problem)
        rule.meta["samples"] = _Samples()
        packets = 0

        def closed_segment(segment: Segment) -> Segment:
            samples = rule.closed_meta.get("samples")
            segment.timing = samples.timing(frame_ms) if samples is not None else None
            if problem and not segment.problem:
                segment.problem = problem
            return segment

        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                data = bytes(packet)
                if length_size:
                    units, defect = prefixed_units(data, length_size)
                else:
                    units, defect = [data[s:e] for s, e in annexb_units(data)], ""
                if defect:
                    rule.problem(defect)
                    continue  # a sample whose units cannot be told apart is not kept
                for unit in units:
                    closed = rule.add(unit)
                    if closed is not None:
                        yield closed_segment(closed)
                        rule.meta["samples"] = _Samples()
                rule.meta["samples"].add(packet)
        except av.error.FFmpegError as exc:
            if stats is not None:
                stats["error"] = av_reason(exc)
            rule.problem("the container cannot be read past here (%s)" % av_reason(exc))
        last = rule.finish()
        if last is not None:
            yield closed_segment(last)
        elif packets == 0:
            raise InputError("%s: no H.264 packets in the %s" % (name, NAMES.get(fmt, fmt)))
        if stats is not None:
            stats["packets"] = packets
    finally:
        container.close()
