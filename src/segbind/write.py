"""Writing a tagged Annex-B stream (H.264 or H.265) into containers and HLS, with timestamps
from the picture order.

NAL units are copied unchanged (the tag stays in-band); raw H.264 and H.265 have no
timestamps, so ``PocClock`` derives presentation order from the picture order
counts (``segbind_core.h264.PocCounter``, ``segbind_core.h265.PocCounter``).
"""

from __future__ import annotations

import fractions
import os
from typing import Any, Dict, List, Optional, Tuple, Union

from segbind_core import h264, h265
from segbind_core.nal import annexb_units
from segbind_core.segment import detect_codec
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265, CODEC_NAMES

from .errors import InputError
from .read.pyav import Source, av_module, av_reason, open_av, video_stream

Unit = Tuple[int, int]


class PocClock:
    """Presentation order of an Annex-B stream's pictures, from their picture order counts.

    ``push`` takes each access unit in decoding order (any object, with its NAL
    units' bytes and offsets) and returns, still in decoding order, the access
    units whose display index is now known, as (item, display index, decode
    index). Display order comes from the POC (types 0 and 2; type 1 is taken as
    decoding order); at most the stream's max_num_reorder_frames pictures (16
    when the SPS does not say) are held back. ``codec``: CODEC_H264 or CODEC_H265 (the
    syntax module with the same names, ``segbind_core.h264`` or ``h265``).
    """

    def __init__(self, codec: int = CODEC_H264) -> None:
        self._syntax: Any = h265 if codec == CODEC_H265 else h264
        self._header = 2 if codec == CODEC_H265 else 1
        self.params = self._syntax.ParameterSets()
        self._counter = self._syntax.PocCounter(self.params)
        self._queue: List[List[Any]] = []  # [order, decode index, item, display or None], decode order
        self._waiting = 0  # entries of the queue without a display index
        self._decoded = 0
        self._displayed = 0
        self.reorder: Optional[int] = None  # pictures held back; known from the first SPS

    @property
    def fps(self) -> Optional[float]:
        """The frame rate of the stream's SPS timing info, when one has it."""
        for sps, _nal in self.params.sps.values():
            if sps.fps:
                return float(sps.fps)
        return None

    def push(self, item: Any, payload: Any, units: List[Unit]) -> List[Tuple[Any, int, int]]:
        poc = None
        idr = False
        syntax = self._syntax
        for s, e in units:
            kind = syntax.nal_type(payload[s])
            if syntax.is_vcl(kind):
                if poc is None and syntax.first_slice_of_picture(payload[s:min(e, s + self._header + 1)]):
                    idr = (h265.is_idr(kind) or h265.is_bla(kind)) if syntax is h265 else kind == h264.NAL_IDR
                    poc = self._counter.poc(bytes(payload[s:min(e, s + 64)]))
                    sps = self._counter.sps
                    if self.reorder is None and sps is not None:
                        if sps.max_num_reorder is not None:
                            self.reorder = min(16, sps.max_num_reorder)
                        elif getattr(sps, "poc_type", 0) == 2:
                            self.reorder = 0
            elif syntax is h265 and kind == h265.NAL_END_OF_SEQUENCE:
                self._counter.end_of_sequence()
            else:
                self.params.add(payload[s:e])
        if idr:  # POC restarts: everything before is displayed first
            while self._waiting:
                self._bump()
        self._queue.append([self._decoded if poc is None else poc, self._decoded, item, None])
        self._decoded += 1
        self._waiting += 1
        while self._waiting > (self.reorder if self.reorder is not None else 16):
            self._bump()
        return self._release()

    def flush(self) -> List[Tuple[Any, int, int]]:
        while self._waiting:
            self._bump()
        return self._release()

    def _bump(self) -> None:
        best: List[Any] = []
        for entry in self._queue:
            if entry[3] is None and (not best or entry[0] < best[0]):
                best = entry
        best[3] = self._displayed
        self._displayed += 1
        self._waiting -= 1

    def _release(self) -> List[Tuple[Any, int, int]]:
        out: List[Tuple[Any, int, int]] = []
        while self._queue and self._queue[0][3] is not None:
            _, decode_index, item, display = self._queue.pop(0)
            out.append((item, display, decode_index))
        return out


def _has_tag(payload: bytes, units: List[Unit]) -> bool:
    view = memoryview(payload)
    return any(tag_codec(view[s:e]) for s, e in units)


def _annexb_codec(source: Source) -> int:
    """The codec of an Annex-B source (``segment.detect_codec`` on its first MiB); a file
    object is read from where it is and put back there."""
    if isinstance(source, str):
        try:
            with open(source, "rb") as f:
                head = f.read(1 << 20)
        except OSError as exc:
            raise InputError("%s: cannot read (%s)" % (source, exc.strerror)) from None
    else:
        at = source.tell()
        head = source.read(1 << 20) or b""
        source.seek(at)
    return detect_codec(head) or CODEC_H264


def write_hls(source: Source, playlist: str, segment_type: str = "fmp4", target_s: float = 4.0,
              fps: Optional[float] = None) -> Dict[str, int]:
    """Write a tagged Annex-B stream (H.264 or H.265) as an HLS playlist with fMP4 or MPEG-TS
    segments.

    NAL units are copied unchanged; packets get timestamps from the POC (raw video
    has none) at ``fps`` (default: the SPS timing info, else 25). Only access units
    that begin a tagged segment are marked as keyframes, so every media segment
    starts at a tagged segment (each holds whole tagged segments, about
    ``target_s`` seconds). Files go next to the playlist: NAME_00000.m4s or .ts,
    and NAME_init.mp4 for fMP4. Returns counts for the caller to report.
    """
    if segment_type not in ("fmp4", "ts"):
        raise InputError("HLS segment type is fmp4 or ts")
    out_dir = os.path.dirname(os.path.abspath(playlist))
    stem = os.path.splitext(os.path.basename(playlist))[0]
    ext = "m4s" if segment_type == "fmp4" else "ts"
    options = {
        "hls_time": "%g" % target_s,
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4" if segment_type == "fmp4" else "mpegts",
        "hls_segment_filename": os.path.join(out_dir, "%s_%%05d.%s" % (stem, ext)),
    }
    if segment_type == "fmp4":
        options["hls_fmp4_init_filename"] = "%s_init.mp4" % stem
    return remux_annexb(source, playlist, "hls", options, fps, keys="tags")


def remux_annexb(source: Source, dest: str, fmt: str, options: Optional[Dict[str, str]] = None,
                 fps: Optional[float] = None, keys: str = "stream") -> Dict[str, int]:
    """Copy an Annex-B H.264 or H.265 stream (path or file object) into a container with PyAV
    (H.265 in MP4 as FFmpeg writes it: ``hev1``, parameter sets in ``hvcC`` and in-band).

    The packets (access units, as FFmpeg's parser cuts them) are copied
    unchanged, with timestamps from the POC. ``keys="stream"`` keeps the parser's
    keyframe flags; ``keys="tags"`` marks exactly the access units that begin a
    tagged segment (before the first tag: the parser's flags).
    """
    av = av_module()
    name = source if isinstance(source, str) else "input"
    codec = _annexb_codec(source)
    inp = open_av(source, "hevc" if codec == CODEC_H265 else "h264", name)
    counts = {"packets": 0, "tagged_segments": 0}
    try:
        stream = video_stream(inp, name)
        time_base = fractions.Fraction(1, 90000)
        try:
            out = av.open(dest, mode="w", format=fmt, options=options or {})
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError("%s: cannot write (%s)" % (dest, av_reason(exc))) from None
        try:
            ost = out.add_stream_from_template(stream)
            ost.time_base = time_base
            clock = PocClock(codec)
            seen_tag = False
            state: Dict[str, Union[fractions.Fraction, int]] = {}  # frame duration, pts offset

            def mux(released: List[Tuple[Any, int, int]]) -> None:
                for (packet, key), display, decode in released:
                    if "frame" not in state:
                        rate = fps or clock.fps or 25
                        state["frame"] = 1 / fractions.Fraction(rate).limit_denominator(1001)
                        state["offset"] = clock.reorder or 0
                    frame = state["frame"]
                    pts = max(display + state["offset"], decode)
                    packet.stream = ost
                    packet.time_base = time_base
                    packet.dts = int(decode * frame / time_base)
                    packet.pts = int(pts * frame / time_base)
                    packet.duration = int(frame / time_base)
                    packet.is_keyframe = key
                    out.mux(packet)
                    counts["packets"] += 1

            for packet in inp.demux(stream):
                if packet.size == 0:
                    continue
                data = bytes(packet)
                units = annexb_units(data)
                tagged = _has_tag(data, units)
                seen_tag = seen_tag or tagged
                counts["tagged_segments"] += tagged
                if keys == "tags" and seen_tag:
                    key = tagged
                else:
                    key = bool(packet.is_keyframe)
                mux(clock.push((packet, key), data, units))
            mux(clock.flush())
        finally:
            out.close()
    except av.error.FFmpegError as exc:
        raise InputError("%s: cannot convert (%s)" % (name, av_reason(exc))) from None
    finally:
        inp.close()
    if not counts["packets"]:
        raise InputError("%s: no %s access units" % (name, CODEC_NAMES[codec]))
    return counts
