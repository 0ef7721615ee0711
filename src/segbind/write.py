"""Writing a tagged Annex-B stream (H.264 or H.265) into containers and HLS, with timestamps
from the picture order.

NAL units are copied unchanged (the tag stays in-band; picture data in the camera's protected
form), but for HLS with fMP4 segments, which is Common Encryption 'cenc' (docs/FORMAT.md 4.4,
``segbind.web.fmp4``): the same units with each picture unit's ciphertext unescaped, so that a
ClearKey player decrypts them; written here, without keys. Raw H.264 and H.265 have no
timestamps, so ``PocClock`` derives presentation order from the picture order counts
(``segbind_core.h264.PocCounter``, ``segbind_core.h265.PocCounter``).
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
from .web import fmp4

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
    segments, without keys.

    fMP4 segments are Common Encryption 'cenc' (docs/FORMAT.md 4.4, ``segbind.web.fmp4``): a
    ClearKey player given the period's content key plays them, a segbind verifier puts them back
    into the camera's protected form. Each tagged segment is one fragment, one sample per access
    unit; each media segment holds whole tagged segments (about ``target_s`` seconds), and a new
    init segment (``EXT-X-MAP``) begins wherever the key id or the parameter sets change. MPEG-TS
    segments carry the protected form as it is (FFmpeg's muxer). Either way, exactly the access
    units that begin a tagged segment are marked as keyframes, and pictures get timestamps from
    their picture order (raw video has none) at ``fps`` (default: the SPS timing info, else 25).

    Files go next to the playlist: NAME_00000.m4s or .ts, and NAME_init.mp4 (then
    NAME_init_00001.mp4, ...) for fMP4. Bytes before the first tag, and segments whose tag
    cannot be read, cannot be packaged as 'cenc' and are left out (counted). Returns counts for
    the caller to report.
    """
    if segment_type not in ("fmp4", "ts"):
        raise InputError("HLS segment type is fmp4 or ts")
    out_dir = os.path.dirname(os.path.abspath(playlist))
    stem = os.path.splitext(os.path.basename(playlist))[0]
    if segment_type == "fmp4":
        return CencHlsWriter(out_dir, stem, playlist, target_s, fps).write(source)
    options = {
        "hls_time": "%g" % target_s,
        "hls_playlist_type": "vod",
        "hls_segment_type": "mpegts",
        "hls_segment_filename": os.path.join(out_dir, "%s_%%05d.ts" % stem),
    }
    return remux_annexb(source, playlist, "hls", options, fps, keys="tags")


class _Fragment:
    """A tagged segment being packaged: its samples, waiting for their timestamps."""

    __slots__ = ("fields", "sets", "samples", "times", "waiting")

    def __init__(self, fields: fmp4.TagFields, sets: List[bytes], samples: List[Tuple[bytes, bytes, Any]]) -> None:
        self.fields = fields
        self.sets = sets            # the parameter sets of its head: its init segment's
        self.samples = samples      # (data, iv, subsamples) per access unit
        self.times: List[Tuple[int, int]] = [(0, 0)] * len(samples)  # (dts, pts) in ticks
        self.waiting = len(samples)


class CencHlsWriter:
    """``write_hls`` for fMP4: tagged segments in, 'cenc' fragments, init segments and the
    playlist out, one media segment in memory at a time."""

    def __init__(self, out_dir: str, stem: str, playlist: str, target_s: float, fps: Optional[float]) -> None:
        self.out_dir = out_dir
        self.stem = stem
        self.playlist = playlist
        self.target_ticks = int(target_s * fmp4.TIMESCALE)
        self.fps = fps
        self.counts = {"packets": 0, "tagged_segments": 0, "media_segments": 0, "init_segments": 0,
                       "left_out_units": 0, "left_out_segments": 0}
        self._lines: List[str] = []
        self._longest = 0.0
        self._pending: List[_Fragment] = []   # in decoding order, waiting for timestamps
        self._media: List[bytes] = []         # fragments of the media segment being filled
        self._media_ticks = 0
        self._init: Optional[Tuple[Any, ...]] = None  # what the init segment in force holds
        self._frame: Optional[fractions.Fraction] = None  # seconds per picture
        self._offset = 0                      # the pictures B-frames delay presentation by
        self._number = 0                      # fragments written (mfhd sequence numbers from 1)

    def write(self, source: Source) -> Dict[str, int]:
        name = source if isinstance(source, str) else "input"
        codec = _annexb_codec(source)
        clock = PocClock(codec)
        for segment in self._segments(source, name):
            data = segment.data
            found = annexb_units(data)
            units = [bytes(data[s:e]) for s, e in found]
            try:
                fields = fmp4.segment_fields(units)
                if fields.codec != codec:
                    raise fmp4.PackagingError("an %s segment in an %s stream" % (
                        CODEC_NAMES[fields.codec], CODEC_NAMES[codec]))
                sets = fmp4.head_parameter_sets(units, codec)
            except fmp4.PackagingError:
                self.counts["left_out_units"] += len(units)
                self.counts["left_out_segments"] += segment.tag_start >= 0
                continue
            aus = fmp4.delimited_access_units(units, codec)
            fragment = _Fragment(fields, sets, fmp4.cenc_samples(aus, fields))
            self._pending.append(fragment)
            self.counts["tagged_segments"] += 1
            at = 0
            for index, au in enumerate(aus):
                offsets = found[at:at + len(au)]
                at += len(au)
                self._timed(clock.push((fragment, index), data, offsets), clock)
        self._timed(clock.flush(), clock)
        self._flush_media()
        if not self.counts["packets"]:
            raise InputError("%s: no tagged %s access units" % (name, CODEC_NAMES[codec]))
        target = max(1, int(self._longest + 0.5))
        head = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:%d" % target, "#EXT-X-MEDIA-SEQUENCE:0",
                "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS"]
        self._save(self.playlist, ("\n".join(head + self._lines + ["#EXT-X-ENDLIST"]) + "\n").encode())
        return self.counts

    @staticmethod
    def _segments(source: Source, name: str) -> Any:
        from .read.annexb import annexb_segments

        if isinstance(source, str):
            try:
                with open(source, "rb") as f:
                    yield from annexb_segments(f, name)
            except OSError as exc:
                raise InputError("%s: cannot read (%s)" % (source, exc.strerror)) from None
        else:
            yield from annexb_segments(source, name)

    def _timed(self, released: List[Tuple[Any, int, int]], clock: PocClock) -> None:
        """Timestamps for the access units the picture order placed; fragments whose every sample
        has one are written, in decoding order."""
        for (fragment, index), display, decode in released:
            if self._frame is None:
                self._frame = 1 / fractions.Fraction(self.fps or clock.fps or 25).limit_denominator(1001)
                self._offset = clock.reorder or 0
            tick = self._frame * fmp4.TIMESCALE
            fragment.times[index] = (int(decode * tick), int(max(display + self._offset, decode) * tick))
            fragment.waiting -= 1
        while self._pending and not self._pending[0].waiting:
            self._fragment(self._pending.pop(0))

    def _fragment(self, fragment: _Fragment) -> None:
        assert self._frame is not None
        duration = int(self._frame * fmp4.TIMESCALE)
        init = (fragment.fields.key_id, tuple(fragment.sets))
        if self._media and (self._media_ticks >= self.target_ticks or init != self._init):
            self._flush_media()
        if init != self._init:
            self._new_init(fragment)
            self._init = init
        self._number += 1
        samples = [fmp4.Sample(data, duration, pts - dts, i == 0, iv, subsamples)
                   for i, ((data, iv, subsamples), (dts, pts)) in enumerate(zip(fragment.samples, fragment.times))]
        self._media.append(fmp4.movie_fragment(self._number, fragment.times[0][0], samples))
        self._media_ticks += duration * len(samples)
        self.counts["packets"] += len(samples)

    def _new_init(self, fragment: _Fragment) -> None:
        """An init segment for the fragment's key id and parameter sets, and its EXT-X-MAP."""
        assert self._frame is not None
        count = self.counts["init_segments"]
        name = "%s_init.mp4" % self.stem if not count else "%s_init_%05d.mp4" % (self.stem, count)
        media_time = int(self._offset * self._frame * fmp4.TIMESCALE)
        movie = fmp4.movie(fragment.fields.codec, fragment.sets, fragment.fields.key_id, media_time)
        self._save(os.path.join(self.out_dir, name), movie)
        self._lines.append('#EXT-X-MAP:URI="%s"' % name)
        self.counts["init_segments"] += 1

    def _flush_media(self) -> None:
        if not self._media:
            return
        name = "%s_%05d.m4s" % (self.stem, self.counts["media_segments"])
        self._save(os.path.join(self.out_dir, name), b"".join(self._media))
        seconds = self._media_ticks / fmp4.TIMESCALE
        self._longest = max(self._longest, seconds)
        self._lines += ["#EXTINF:%.6f," % seconds, name]
        self.counts["media_segments"] += 1
        self._media, self._media_ticks = [], 0

    @staticmethod
    def _save(path: str, data: bytes) -> None:
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise InputError("%s: cannot write (%s)" % (path, exc.strerror)) from None


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
