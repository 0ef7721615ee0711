"""PyAV (FFmpeg's demuxers) as a reader: the reference the project's own readers are checked
against, and what ``segbind.write`` remuxes with. ``segbind.open`` never reads through it.

``pyav_events`` yields the same events as the project's readers (``read.events``), as FFmpeg
reads the container: what a player built on FFmpeg would decode.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import IO, Any, Iterator, List, Optional, Union

from segbind_core.tag import CODEC_H264, CODEC_H265

from ..errors import InputError
from .decoder_config import parse_avcc, parse_hvcc
from .events import Defect, Event, Sample, TrackInfo

# What PyAV opens: a path, or a binary file object (BytesIO, ConcatReader, ...).
Source = Union[str, IO[bytes], io.RawIOBase]

PYAV_FORMAT = {"mpegts": "mpegts", "mp4": "mov", "matroska": "matroska", "flv": "flv"}
_CODECS = {"h264": CODEC_H264, "hevc": CODEC_H265}


# PyAV (optional) and its objects (containers, streams, packets) are typed Any: its stubs
# differ between the versions segbind supports (av>=12), and may be absent.
def av_module() -> Any:
    try:
        import av
        import av.error  # noqa: F401
    except ImportError:
        raise InputError("this needs PyAV (pip install 'segbind[media]')") from None
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


def _track(container: Any, stream: Any) -> TrackInfo:
    codec = video_codec(stream)
    extradata = bytes(getattr(stream.codec_context, "extradata", None) or b"")
    length_size = 0
    units: List[bytes] = []
    if extradata[:1] == b"\x01":
        if codec == CODEC_H265:
            length_size, units = parse_hvcc(extradata)
        else:
            length_size, sps, others = parse_avcc(extradata)
            units = sps + others
    base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    tracks = [s for s in container.streams if s.index != stream.index]
    return TrackInfo(codec, codec_name(stream), length_size, units, base.denominator if base.numerator == 1 else 0,
                     ["%s (%s)" % (s.type, codec_name(s)) for s in tracks],
                     any(s.type == "video" for s in tracks))


def pyav_events(source: Source, fmt: str, name: str) -> Iterator[Event]:
    """The video track's events as FFmpeg's demuxer reads ``fmt`` ("mp4", "mpegts", "matroska",
    "flv"): one TrackInfo, then a Sample per packet (times in the stream's time base, whose
    numerator must be 1), a fatal Defect where FFmpeg stops reading."""
    container = open_av(source, PYAV_FORMAT.get(fmt, fmt), name)
    try:
        stream = video_stream(container, name)
        info = _track(container, stream)
        if not info.timescale:
            raise InputError("%s: a time base of %s is not ticks per second" % (name, stream.time_base))
        yield info
        demuxed = container.demux(stream)
        while True:
            try:
                packet = next(demuxed)
            except StopIteration:
                break
            except InputError:  # the bytes under it could not be read (a playlist's missing segment)
                raise
            except Exception as exc:  # noqa: BLE001 - PyAV on hostile bytes: FFmpegError, and at times
                # an IndexError or ValueError of its own bookkeeping; what was read is judged
                yield Defect("the container cannot be read past here (%s)" % av_reason(exc), fatal=True)
                return
            if packet.size == 0:
                continue
            try:
                if packet.has_sidedata("new_extradata"):
                    yield Defect("the sample description changes inside the stream")
            except (AttributeError, TypeError, ValueError, KeyError):
                pass
            dts = packet.dts if packet.dts is not None else packet.pts
            pts = packet.pts if packet.pts is not None else dts
            yield Sample(bytes(packet), pts if pts is not None else 0, dts if dts is not None else 0,
                         packet.duration or 0, bool(getattr(packet, "is_discard", False)),
                         bool(packet.is_keyframe))
    finally:
        container.close()


__all__ = ["PYAV_FORMAT", "Source", "av_module", "av_reason", "codec_name", "open_av", "pyav_events",
           "video_codec", "video_stream"]
