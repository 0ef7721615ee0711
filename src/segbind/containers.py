"""Reading tagged segments out of every container H.264 travels in, and writing HLS.

The tag covers NAL units, not container bytes (docs/FORMAT.md), so a segment
tagged as Annex-B verifies after any remux that keeps its NAL units. What each
remux keeps is documented in docs/CONTAINERS.md; in short:

- Annex-B: read directly (``segbind.stream``).
- MPEG-TS, MP4, fragmented MP4, Matroska: demuxed with PyAV; every packet's
  NAL units are copied once into one length-prefixed buffer per tagged segment.
  Units the muxers add (access unit delimiters) are outside the digest; if a
  muxer moved the parameter sets out of the samples into ``avcC``, they are
  put back where the camera tagged them (right after the tag).
- HLS playlists (.m3u8, local files): the init segment and media segments are
  read as one stream, so tagged segments may straddle media segment files.

Input type is decided by content (``sniff``), never by file name.
"""

from __future__ import annotations

import fractions
import io
import os
import re
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from segbind_core.nal import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, annexb_units, is_vcl
from segbind_core.segment import _Bits, parse_sps
from segbind_core.segment import parse_pps_ids as _parse_pps_ids
from segbind_core.nal import unescape_rbsp
from segbind_core.sei import is_segbind_sei

from .errors import InputError

if TYPE_CHECKING:
    from segbind_core.segment import SpsInfo

    from .verdict import Verdict
    from .verifier import Buffer, StreamVerifier

    # What PyAV opens: a path, or a binary file object (BytesIO, ConcatReader, ...).
    Source = Union[str, IO[bytes], io.RawIOBase]

Unit = Tuple[int, int]

# segbind_core runs on MicroPython and leaves this one unannotated; its documented
# contract: an escaped PPS NAL unit in, (pic_parameter_set_id, seq_parameter_set_id) out.
parse_pps_ids: Callable[[Buffer], Tuple[int, int]] = _parse_pps_ids

ANNEXB, MPEGTS, MP4, HLS, MATROSKA, FLV = "annexb", "mpegts", "mp4", "hls", "matroska", "flv"
NAMES = {ANNEXB: "H.264 Annex-B", MPEGTS: "MPEG-TS", MP4: "MP4", HLS: "HLS playlist",
         MATROSKA: "Matroska", FLV: "FLV"}
_PYAV_FORMAT = {MPEGTS: "mpegts", MP4: "mov", MATROSKA: "matroska", FLV: "flv"}
_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"free", b"mdat", b"sidx", b"skip", b"wide",
          b"pdin", b"uuid", b"prft", b"emsg")
SNIFF_BYTES = 1024


# -- what is this input? ---------------------------------------------------------------

def sniff(head: bytes) -> str:
    """The kind of input from its first bytes; InputError for anything that is not H.264 video.

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
        if len(first) == 2 and first[1] == 0x01 and (first[0] >> 1) & 0x3F in (32, 33, 34, 35, 39):
            raise InputError("HEVC (H.265) Annex-B stream, not H.264")
        if first and (first[0] & 0x80 or first[0] & 0x1F == 0):
            raise InputError("not an H.264 Annex-B stream (invalid first NAL unit header)")
        return ANNEXB
    raise InputError("not an H.264 stream (%s)" % _describe_other(head))


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


# -- NAL units of one packet -------------------------------------------------------------

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


def _prefixed_units(data: Buffer, length_size: int) -> List[Unit]:
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


class Segment:
    """One tagged segment read from any input: its NAL units as (start, end) offsets in ``buf``.

    ``units`` are the NAL units as found, in order; with ``prefixed`` each follows
    its own 4-byte length in ``buf`` (containers), else ``buf`` is Annex-B. When
    they do not match the tag's content digest, ``verify`` also tries what undoes
    the changes remuxers are seen to make to a segment's head (docs/CONTAINERS.md):
    the SPS/PPS moved behind other SEIs or before the tag, or stripped into
    ``avcC`` (``restore``: the parameter sets in force, put back after the tag).
    """

    __slots__ = ("buf", "units", "prefixed", "restore")

    def __init__(self, buf: Buffer, units: List[Unit], prefixed: bool, restore: Sequence[bytes] = ()) -> None:
        self.buf = buf
        self.units = units
        self.prefixed = prefixed
        self.restore = restore

    def verify(self, verifier: StreamVerifier) -> Verdict:
        """The verifier's verdict on this segment (a ``StreamVerifier``)."""
        verdict = verifier.verify_units(self.buf, self.units, prefixed=self.prefixed)
        if verdict.reason.value == "content_mismatch":
            for buf, units, prefixed in self.variants():
                other = verifier.verify_units(buf, units, prefixed=prefixed)
                if other.reason.value != "content_mismatch":
                    return other
        return verdict

    def variants(self) -> List[Tuple[Buffer, List[Unit], bool]]:
        """(buf, units, prefixed) of the other heads to try, in order."""
        buf, units = self.buf, self.units
        kinds = [buf[s] & 0x1F for s, _ in units]
        first_vcl = next((i for i, k in enumerate(kinds) if is_vcl(k)), -1)
        view = memoryview(buf)
        tag = next((i for i in range(max(first_vcl, 0)) if kinds[i] == 6
                    and is_segbind_sei(view[units[i][0]:units[i][1]])), -1)
        if tag < 0:
            return []
        head, rest = units[:first_vcl], units[first_vcl:]
        sets = [u for u, k in zip(head, kinds) if k in (NAL_SPS, NAL_PPS)]
        others = [u for u, k in zip(head, kinds) if k not in (NAL_SPS, NAL_PPS)]
        at = others.index(units[tag]) + 1
        if sets:
            moved = others[:at] + sets + others[at:] + rest
            return [(buf, moved, self.prefixed)] if moved != units else []
        if not self.restore:
            return []
        out = bytearray()
        new_units: List[Unit] = []

        def put(unit: Buffer) -> None:
            start = len(out) + 4
            out.extend(len(unit).to_bytes(4, "big"))
            out.extend(unit)
            new_units.append((start, len(out)))

        for s, e in others[:at]:
            put(view[s:e])
        for unit in self.restore:
            put(unit)
        for s, e in others[at:] + rest:
            put(view[s:e])
        return [(out, new_units, True)]


class SegmentBuilder:
    """Collects NAL units, in stream order, into one ``Segment`` per tagged segment.

    ``add`` returns the previous segment when a unit starts a new one (a segbind
    SEI). Units before the first tag form a segment of their own. ``restore`` are
    parameter sets (SPS then PPS) a muxer may have moved out of the samples.
    """

    def __init__(self, restore: Sequence[bytes] = ()) -> None:
        self.extradata = [bytes(u) for u in restore if u and u[0] & 0x1F in (NAL_SPS, NAL_PPS)]
        self.latest: Dict[Tuple[int, int], bytes] = {}  # (7 or 8, id) -> the latest SPS/PPS seen in the stream
        self.restore = self.extradata
        self._new()

    def _track(self, unit: Buffer, kind: int) -> None:
        try:
            key = (kind, parse_sps(unit).sps_id if kind == NAL_SPS else parse_pps_ids(unit)[0])
        except (ValueError, IndexError):
            return
        self.latest[key] = bytes(unit)

    def _new(self) -> None:
        self.buf = bytearray()
        self.units: List[Unit] = []
        self.last_vcl = -1
        self.first_vcl = -1
        self.tag = -1

    def _put(self, unit: Buffer) -> None:
        start = len(self.buf) + 4
        self.buf += len(unit).to_bytes(4, "big")
        self.buf += unit
        self.units.append((start, len(self.buf)))

    def add(self, unit: Buffer) -> Optional[Segment]:
        kind = unit[0] & 0x1F
        closed = None
        if kind == 6 and is_segbind_sei(unit):
            moved: List[bytes] = []
            # Parameter sets and AUDs after the last picture belong to the next
            # segment's head: the camera's segmenter never leaves them behind.
            keep = []
            for i in range(self.last_vcl + 1, len(self.units)):
                s, e = self.units[i]
                if self.buf[s] & 0x1F in (NAL_SPS, NAL_PPS, NAL_AUD):
                    moved.append(bytes(self.buf[s:e]))
                else:
                    keep.append(bytes(self.buf[s:e]))
            if moved:
                cut = self.units[self.last_vcl][1] if self.last_vcl >= 0 else 0
                del self.buf[cut:]
                del self.units[self.last_vcl + 1:]
                for u in keep:
                    self._put(u)
            if self.units:
                closed = self._segment()
            self._new()
            # Parameter sets in force at this segment's start: the stream's latest, else
            # the container's (avcC or extradata).
            if self.latest:
                self.restore = [self.latest[k] for k in sorted(self.latest)]
            for u in moved:
                self._put(u)
            self.tag = len(self.units)
        elif is_vcl(kind):
            if self.first_vcl < 0:
                self.first_vcl = len(self.units)
            self.last_vcl = len(self.units)
        elif kind in (NAL_SPS, NAL_PPS):
            self._track(unit, kind)
        self._put(unit)
        return closed

    def finish(self) -> Optional[Segment]:
        if not self.units:
            return None
        seg = self._segment()
        self._new()
        return seg

    def _segment(self) -> Segment:
        return Segment(self.buf, self.units, True, self.restore if self.tag >= 0 else ())


def _extradata_sets(extradata: bytes) -> Tuple[int, List[bytes]]:
    """(NAL length size or 0 for Annex-B, parameter sets) of a stream's extradata."""
    if extradata[:1] == b"\x01":
        length_size, sps, pps = parse_avcc(extradata)
        return length_size, sps + pps
    return 0, [extradata[s:e] for s, e in annexb_units(extradata)]


def annexb_segments(data: Buffer) -> Iterator[Segment]:
    """The tagged segments of an Annex-B buffer, as offsets into it (nothing is copied).

    Same rules as ``SegmentBuilder``: a segment begins at its tag; parameter sets and
    AUDs after the previous segment's last picture belong to it. InputError when the
    buffer holds no NAL unit.
    """
    units = annexb_units(data)
    if not units:
        raise InputError("not an H.264 Annex-B stream (no start code)")
    view = memoryview(data)
    latest: Dict[Tuple[int, int], bytes] = {}
    current: List[Unit] = []
    last_vcl = -1
    restore: List[bytes] = []
    tagged = False
    for s, e in units:
        kind = data[s] & 0x1F
        if kind == 6 and is_segbind_sei(view[s:e]):
            moved = [u for u in current[last_vcl + 1:] if data[u[0]] & 0x1F in (NAL_SPS, NAL_PPS, NAL_AUD)]
            if moved:
                current = current[:last_vcl + 1] + [u for u in current[last_vcl + 1:] if u not in moved]
            if current:
                yield Segment(data, current, False, restore if tagged else ())
            current, last_vcl, tagged = moved, -1, True
            restore = [latest[k] for k in sorted(latest)]
        elif is_vcl(kind):
            last_vcl = len(current)
        elif kind in (NAL_SPS, NAL_PPS):
            try:
                key = (kind, parse_sps(view[s:e]).sps_id if kind == NAL_SPS else parse_pps_ids(view[s:e])[0])
                latest[key] = bytes(view[s:e])
            except (ValueError, IndexError):
                pass
        current.append((s, e))
    if current:
        yield Segment(data, current, False, restore if tagged else ())


# -- containers through PyAV ---------------------------------------------------------------

# PyAV (optional) and its objects (containers, streams, packets) are typed Any: its stubs
# differ between the versions segbind supports (av>=12), and may be absent.
def _av() -> Any:
    try:
        import av
        import av.error  # noqa: F401
    except ImportError:
        raise InputError("reading containers needs PyAV (pip install 'segbind[media]')") from None
    return av


def _open_av(source: Source, fmt: Optional[str], name: str) -> Any:
    av = _av()
    try:
        return av.open(source, mode="r", format=fmt)
    except av.error.FFmpegError as exc:
        raise InputError("%s: cannot read as %s (%s)" % (name, fmt or "media", _av_reason(exc))) from None
    except (OSError, ValueError) as exc:
        raise InputError("%s: cannot read (%s)" % (name, exc)) from None


def _av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def _h264_stream(container: Any, name: str) -> Any:
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


def container_segments(source: Source, fmt: str, name: str, stats: Optional[Dict[str, Any]] = None
                       ) -> Iterator[Segment]:
    """Each tagged segment of a container (MPEG-TS, MP4, fMP4, Matroska), in stream order.

    Units before the first tag form a segment of their own (a verifier refuses
    it as untagged). A container cut short ends with what could be read: its last
    segment is then incomplete and refused, never silently dropped.
    """
    av = _av()
    container = _open_av(source, _PYAV_FORMAT.get(fmt, fmt), name)
    try:
        stream = _h264_stream(container, name)
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
                stats["error"] = _av_reason(exc)
        last = builder.finish()
        if last is not None:
            yield last
        elif packets == 0:
            raise InputError("%s: no H.264 packets in the %s" % (name, NAMES.get(fmt, fmt)))
        if stats is not None:
            stats["packets"] = packets
    finally:
        container.close()


# -- several files read as one stream ---------------------------------------------------------

class ConcatReader(io.RawIOBase):
    """Read-only, forward-only stream over byte ranges of several files, in order."""

    def __init__(self, parts: Sequence[Tuple[str, int, Optional[int]]]) -> None:
        super().__init__()
        self._parts = list(parts)  # (path, offset, length or None for to the end)
        self._file: Optional[IO[bytes]] = None
        self._left: Optional[int] = None

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._parts:
            return False
        path, offset, length = self._parts.pop(0)
        try:
            self._file = open(path, "rb")
        except OSError as exc:
            raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None
        self._file.seek(offset)
        self._left = length
        return True

    def readinto(self, b: Any) -> int:  # any writable buffer with len(): bytearray, memoryview
        while True:
            if self._file is None and not self._next():
                return 0
            current = self._file
            assert current is not None
            want = len(b) if self._left is None else min(len(b), self._left)
            n = current.readinto(memoryview(b)[:want]) if want else 0  # type: ignore[attr-defined]
            if n:
                if self._left is not None:
                    self._left -= n
                return n
            current.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


# -- HLS playlists ------------------------------------------------------------------------------

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(text: str) -> Dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


def _byterange(text: str, last_end: int) -> Tuple[int, int]:
    length, _, offset = text.partition("@")
    try:
        n = int(length)
        off = int(offset) if offset else last_end
    except ValueError:
        raise InputError("bad BYTERANGE %r" % text) from None
    return off, n


def read_playlist(path: str, text: Optional[str] = None) -> List[List[Tuple[str, int, Optional[int]]]]:
    """The byte ranges to read of a local HLS media playlist, as runs sharing one init segment.

    Each run is [init segment?, media segment, ...] as (path, offset, length). Remote
    URIs, encrypted segments and master playlists are refused with InputError.
    """
    if text is None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("%s: playlist is not UTF-8 text" % path) from None
    base = os.path.dirname(os.path.abspath(path)) if path != "-" else os.getcwd()

    def local(uri: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
            raise InputError("%s: %s is remote; segbind reads local HLS files only" % (path, uri))
        return uri if os.path.isabs(uri) else os.path.join(base, uri)

    runs: List[List[Tuple[str, int, Optional[int]]]] = []
    run: List[Tuple[str, int, Optional[int]]] = []
    init: Optional[Tuple[str, int, Optional[int]]] = None
    pending_range: Optional[str] = None
    last_end: Dict[str, int] = {}
    variants: List[Optional[str]] = []
    media = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-STREAM-INF"):
            variants.append(None)
            continue
        if line.startswith("#EXT-X-KEY"):
            method = _attrs(line.partition(":")[2]).get("METHOD", "NONE")
            if method != "NONE":
                raise InputError("%s: encrypted HLS (%s) is not supported" % (path, method))
            continue
        if line.startswith("#EXT-X-MAP"):
            attrs = _attrs(line.partition(":")[2])
            if "URI" not in attrs:
                raise InputError("%s: EXT-X-MAP without URI" % path)
            where = local(attrs["URI"])
            new_init: Tuple[str, int, Optional[int]] = (where, 0, None)
            if "BYTERANGE" in attrs:
                off, n = _byterange(attrs["BYTERANGE"], 0)
                new_init = (where, off, n)
            if new_init != init:
                if run:
                    runs.append(run)
                init = new_init
                run = [init]
            continue
        if line.startswith("#EXT-X-BYTERANGE"):
            pending_range = line.partition(":")[2]
            continue
        if line.startswith("#"):
            continue
        if variants and variants[-1] is None:
            variants[-1] = line
            continue
        where = local(line)
        media += 1
        if pending_range is not None:
            off, n = _byterange(pending_range, last_end.get(where, 0))
            last_end[where] = off + n
            run.append((where, off, n))
            pending_range = None
        else:
            run.append((where, 0, None))
    if variants:
        raise InputError("%s: master playlist; verify one of its media playlists: %s"
                         % (path, ", ".join(v for v in variants if v)))
    if run:
        runs.append(run)
    if not media:
        raise InputError("%s: playlist lists no media segments" % path)
    return runs


def _head_of(part: Tuple[str, int, Optional[int]]) -> bytes:
    path, offset, length = part
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(SNIFF_BYTES if length is None else min(length, SNIFF_BYTES))
    except FileNotFoundError:
        raise InputError("%s: no such file (listed in the playlist)" % path) from None
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (path, exc.strerror)) from None


def hls_segments(path: str, stats: Optional[Dict[str, Any]] = None) -> Iterator[Segment]:
    """(buffer, units) of each tagged segment of a local HLS playlist (TS or fMP4 segments)."""
    runs = read_playlist(path)
    for part in [part for run in runs for part in run]:
        if not os.path.isfile(part[0]):
            raise InputError("%s: no such file (listed in the playlist)" % part[0])
    for run in runs:
        kind = sniff(_head_of(run[0]))
        if kind not in (MPEGTS, MP4):
            raise InputError("%s: HLS segments are %s; expected MPEG-TS or fMP4"
                             % (path, NAMES.get(kind, kind)))
        yield from container_segments(ConcatReader(run), kind, path, stats)


# -- timestamps and HLS output ---------------------------------------------------------------

class PocClock:
    """Presentation order of an Annex-B stream's pictures, from their picture order counts.

    Raw H.264 carries no timestamps; muxers need them. ``push`` takes each access
    unit in decoding order (any object, with its NAL units' bytes and offsets) and
    returns, still in decoding order, the access units whose display index is now
    known, as (item, display index, decode index). Display order comes from the POC
    (types 0 and 2; type 1 is taken as decoding order); at most the stream's
    max_num_reorder_frames pictures (16 when the SPS does not say) are held back.
    """

    def __init__(self) -> None:
        self._sps: Dict[int, SpsInfo] = {}
        self._pps: Dict[int, int] = {}  # pps_id -> sps_id
        self._queue: List[List[Any]] = []  # [order, decode index, item, display or None], decode order
        self._waiting = 0  # entries of the queue without a display index
        self._decoded = 0
        self._displayed = 0
        self._prev_msb = 0
        self._prev_lsb = 0
        self._prev_frame_num = 0
        self._frame_num_offset = 0
        self.reorder: Optional[int] = None  # pictures held back; known from the first SPS

    def push(self, item: Any, payload: Buffer, units: List[Unit]) -> List[Tuple[Any, int, int]]:
        poc = None
        idr = False
        for s, e in units:
            kind = payload[s] & 0x1F
            if kind == NAL_SPS:
                try:
                    info = parse_sps(payload[s:e])
                    self._sps[info.sps_id] = info
                except (ValueError, IndexError):
                    pass
            elif kind == NAL_PPS:
                try:
                    pps_id, sps_id = parse_pps_ids(payload[s:e])
                    self._pps[pps_id] = sps_id
                except (ValueError, IndexError):
                    pass
            elif is_vcl(kind) and poc is None and e - s > 1 and payload[s + 1] & 0x80:
                idr = kind == NAL_IDR
                poc = self._poc(bytes(payload[s:min(e, s + 32)]), kind, payload[s] >> 5 & 3)
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

    def _poc(self, nal: bytes, kind: int, ref_idc: int) -> Optional[int]:
        try:
            bits = _Bits(unescape_rbsp(nal[1:]))
            bits.ue()
            bits.ue()
            sps = self._sps.get(self._pps.get(bits.ue(), -1))
            if sps is None or not sps.complete:
                return None
            if self.reorder is None:
                if sps.max_num_reorder is not None:
                    self.reorder = min(16, sps.max_num_reorder)
                elif sps.poc_type == 2:
                    self.reorder = 0
            if sps.separate_colour_plane:
                bits.u(2)
            frame_num = bits.u(sps.log2_max_frame_num)
            if not sps.frame_mbs_only and bits.u(1):
                bits.u(1)
            idr = kind == NAL_IDR
            if idr:
                bits.ue()
            if sps.poc_type == 0:
                lsb = bits.u(sps.log2_max_poc_lsb)
                top = 1 << sps.log2_max_poc_lsb
                if idr:
                    self._prev_msb = self._prev_lsb = 0
                if lsb < self._prev_lsb and self._prev_lsb - lsb >= top // 2:
                    msb = self._prev_msb + top
                elif lsb > self._prev_lsb and lsb - self._prev_lsb > top // 2:
                    msb = self._prev_msb - top
                else:
                    msb = self._prev_msb
                if ref_idc:
                    self._prev_msb, self._prev_lsb = msb, lsb
                return msb + lsb
            if sps.poc_type == 2:
                if idr:
                    self._frame_num_offset = 0
                elif self._prev_frame_num > frame_num:
                    self._frame_num_offset += 1 << sps.log2_max_frame_num
                self._prev_frame_num = frame_num
                return 2 * (self._frame_num_offset + frame_num) - (0 if ref_idc else 1)
            return None
        except (ValueError, IndexError):
            return None


def _has_tag(payload: Buffer, units: List[Unit]) -> bool:
    view = memoryview(payload)
    return any(payload[s] & 0x1F == 6 and is_segbind_sei(view[s:e]) for s, e in units)


def write_hls(source: Source, playlist: str, segment_type: str = "fmp4", target_s: float = 4.0,
              fps: Optional[float] = None) -> Dict[str, int]:
    """Write a tagged Annex-B stream as an HLS playlist with fMP4 or MPEG-TS segments.

    NAL units are copied unchanged; packets get timestamps from the POC (raw H.264
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
    """Copy an Annex-B H.264 stream (path or file object) into a container with PyAV.

    The packets (access units, as FFmpeg's parser cuts them) are copied
    unchanged, with timestamps from the POC. ``keys="stream"`` keeps the parser's
    keyframe flags; ``keys="tags"`` marks exactly the access units that begin a
    tagged segment (before the first tag: the parser's flags).
    """
    av = _av()
    name = source if isinstance(source, str) else "input"
    inp = _open_av(source, "h264", name)
    counts = {"packets": 0, "tagged_segments": 0}
    try:
        stream = _h264_stream(inp, name)
        time_base = fractions.Fraction(1, 90000)
        try:
            out = av.open(dest, mode="w", format=fmt, options=options or {})
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError("%s: cannot write (%s)" % (dest, _av_reason(exc))) from None
        try:
            ost = out.add_stream_from_template(stream)
            ost.time_base = time_base
            clock = PocClock()
            seen_tag = False
            state: Dict[str, Union[fractions.Fraction, int]] = {}  # frame duration, pts offset

            def mux(released: List[Tuple[Any, int, int]]) -> None:
                for (packet, key), display, decode in released:
                    if "frame" not in state:
                        rate = fps or clock_fps(clock) or 25
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
        raise InputError("%s: cannot convert (%s)" % (name, _av_reason(exc))) from None
    finally:
        inp.close()
    if not counts["packets"]:
        raise InputError("%s: no H.264 access units" % name)
    return counts


def clock_fps(clock: PocClock) -> Optional[float]:
    for sps in clock._sps.values():
        if sps.fps:
            return sps.fps
    return None
