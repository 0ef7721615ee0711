"""Reading tagged segments out of containers with PyAV: MPEG-TS, MP4, fragmented MP4, Matroska, FLV;
H.264 and H.265 tracks.

Each sample (a packet: one access unit) is put into canonical form as it is read
(length prefixes checked to tile it, ``framing.canonical_prefixed``; Annex-B in
MPEG-TS, ``framing.canonical_annexb``) and handed to ``split.SampleSplitter`` with
its timing; segments come out as soon as they are complete. The video must be the
container's only track (others are refused unless the caller asks for the video
alone; another video track is always refused; a segment of the other codec is refused),
the units of its sample description (``avcC``; ``hvcC``, H.265 as ``hvc1`` or ``hev1``)
must be ones the camera tagged, and a container's timing must agree with the tag
(docs/FORMAT.md 7.3, docs/CONTAINERS.md).
"""

from __future__ import annotations

import io
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from segbind_core.tag import CODEC_H264, CODEC_H265, CODEC_NAMES

from ..errors import InputError
from ..framing import canonical_annexb, canonical_prefixed, is_parameter_set
from ..verifier import Canonical
from .decoder_config import parse_avcc, parse_hvcc
from .sniff import NAMES
from .split import MAX_SEGMENT_BYTES, Sample, SampleSplitter

# What PyAV opens: a path, or a binary file object (BytesIO, ConcatReader, ...).
Source = Union[str, IO[bytes], io.RawIOBase]

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
    except InputError:
        raise
    except av.error.FFmpegError as exc:
        raise InputError("%s: cannot read as %s (%s)" % (name, fmt or "media", av_reason(exc))) from None
    except Exception as exc:  # noqa: BLE001 - PyAV on hostile bytes: one line, never a traceback
        raise InputError("%s: cannot read (%s)" % (name, av_reason(exc))) from None


def av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


# -- codec-specific pieces ---------------------------------------------------------------------

_CODECS = {"h264": CODEC_H264, "hevc": CODEC_H265}


def codec_name(stream: Any) -> str:
    context = getattr(stream, "codec_context", None)
    return str(getattr(context, "name", None) or "unknown")


def video_codec(stream: Any) -> int:
    """segbind's codec number of a PyAV video stream, or 0 when segbind cannot verify it."""
    return _CODECS.get(codec_name(stream), 0)


def video_stream(container: Any, name: str) -> Any:
    """The video stream segbind verifies (H.264 or H.265); InputError when there is none."""
    videos = list(container.streams.video)
    for stream in videos:
        if video_codec(stream):
            return stream
    if videos:
        raise InputError("%s: no H.264 or H.265 video (video is %s)" % (name, codec_name(videos[0])))
    audio = [codec_name(s) for s in container.streams.audio]
    if audio:
        raise InputError("%s: no H.264 or H.265 video (audio only: %s)" % (name, ", ".join(audio)))
    raise InputError("%s: no H.264 or H.265 video stream" % name)


def sample_description(extradata: bytes, codec: int = CODEC_H264) -> Tuple[int, List[bytes], List[bytes]]:
    """(NAL length size, or 0 for Annex-B samples; the parameter sets; every unit a decoder
    reads from it) of a stream's extradata (``avcC``, ``hvcC`` or Annex-B)."""
    if extradata[:1] == b"\x01":
        if codec == CODEC_H265:
            length_size, units = parse_hvcc(extradata)
        else:
            length_size, sps, others = parse_avcc(extradata)
            units = sps + others
        # Zero bytes after a unit's last byte are not part of it (muxers copy the encoder's
        # trailing_zero_8bits into avcC/hvcC); decoders read the unit without them.
        units = [u.rstrip(b"\x00") for u in units]
    else:
        out = bytearray()
        canonical_annexb(extradata, out)
        length_size, units = 0, [bytes(u) for u in bytes(out).split(b"\x00\x00\x00\x01") if u]
    # avcC holds parameter sets only; hvcC and Annex-B extradata may hold SEI too
    sets = [u for u in units if is_parameter_set(u[0], codec)] if codec == CODEC_H265 or not length_size else units
    return length_size, sets, units


def prefixed_units(data: bytes, length_size: int) -> Tuple[List[bytes], str]:
    """The units of a length-prefixed sample, and a defect ("" when none): the lengths must
    tile the sample exactly, with no empty unit (zero bytes ending a unit dropped)."""
    out = bytearray()
    count, defect = canonical_prefixed(data, length_size, out)
    if defect:
        return [], defect
    units = bytes(out).split(b"\x00\x00\x00\x01")[1:]
    return units if len(units) == count else [], "" if len(units) == count else "a NAL unit holds a start code"


def _tracks(container: Any, stream: Any, video_only: bool) -> str:
    """A defect when the container holds other tracks: another video track always (a player
    could pick it), audio and data unless the caller asked for the verified video alone."""
    others = [s for s in container.streams if s.index != stream.index]
    videos = [s for s in others if s.type == "video"]
    if videos:
        return "the container holds another video track, never verified: %s" % ", ".join(
            codec_name(s) for s in videos)
    if others and not video_only:
        kinds = ", ".join("%s (%s)" % (s.type, codec_name(s)) for s in others)
        return "the container holds other tracks, never verified: %s" % kinds
    return ""


def _sample(packet: Any) -> Sample:
    base = packet.time_base
    duration = float(packet.duration * base) * 1000.0 if packet.duration and base else 0.0
    pts = float(packet.pts * base) * 1000.0 if packet.pts is not None and base else None
    return Sample(pts, duration, bool(getattr(packet, "is_discard", False)))


def _new_extradata(packet: Any) -> bool:
    try:
        return bool(packet.has_sidedata("new_extradata"))
    except (AttributeError, TypeError, ValueError, KeyError):
        return False


def container_segments(source: Source, fmt: str, name: str, stats: Optional[Dict[str, Any]] = None,
                       video_only: bool = False,
                       max_segment_bytes: int = MAX_SEGMENT_BYTES) -> Iterator[Canonical]:
    """Each tagged segment of a container (MPEG-TS, MP4, fMP4, Matroska, FLV), in stream
    order, as soon as it is complete.

    Units before the first tag form a segment of their own (refused as untagged). A
    sample whose length prefixes do not tile it, and a container holding tracks it must
    not, refuse the segments they touch (``framing``). A container cut short ends with
    what could be read: its last segment is then incomplete and refused, never dropped.
    """
    container = open_av(source, _PYAV_FORMAT.get(fmt, fmt), name)
    try:
        stream = video_stream(container, name)
        codec = video_codec(stream)
        problem = _tracks(container, stream, video_only)
        length_size, sets, described = sample_description(
            bytes(getattr(stream.codec_context, "extradata", None) or b""), codec)
        rate = stream.average_rate or stream.guessed_rate
        splitter = SampleSplitter(sets, 1000.0 / float(rate) if rate else 0.0, max_segment_bytes)
        required = described if length_size else []  # a decoder reads avcC's/hvcC's units: they must be tagged
        packets = 0

        def judged(segments: List[Canonical]) -> Iterator[Canonical]:
            for segment in segments:
                if problem and not segment.problem:
                    segment.problem = problem
                if segment.codec and segment.codec != codec and not segment.problem:
                    segment.problem = "an %s segment in an %s track (a decoder reads it as %s)" % (
                        CODEC_NAMES[segment.codec], CODEC_NAMES[codec], CODEC_NAMES[codec])
                segment.required = required
                yield segment

        demuxed = container.demux(stream)
        while True:
            try:
                packet = next(demuxed)
            except StopIteration:
                break
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - PyAV on hostile bytes: FFmpegError, and at times
                # an IndexError or ValueError of its own bookkeeping; what was read is judged
                if stats is not None:
                    stats["error"] = av_reason(exc)
                splitter.defect("the container cannot be read past here (%s)" % av_reason(exc))
                break
            if packet.size == 0:
                continue
            packets += 1
            if _new_extradata(packet):
                splitter.defect("the sample description changes inside the stream")
            yield from judged(splitter.add_sample(memoryview(packet), length_size, _sample(packet)))
        last = splitter.finish()
        if not last and packets == 0:
            raise InputError("%s: no %s packets in the %s" % (name, CODEC_NAMES[codec], NAMES.get(fmt, fmt)))
        yield from judged(last)
        if stats is not None:
            stats["packets"] = packets
    finally:
        container.close()
