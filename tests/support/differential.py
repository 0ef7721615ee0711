"""Readers checked against each other (tests/media/test_differential.py): one container file read
by segbind's own reader, by PyAV and (fragmented MP4) by the browser's JavaScript reader, each
reading put in the same terms; where they differ, which of segbind's segments must be refused;
and the real files the remuxes users make give. The rule and the meaning of "differ" are in the
test module's docstring; this module computes them exactly that way.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
from difflib import SequenceMatcher
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import segbind
from segbind import Keyring
from segbind.errors import InputError
from segbind.read.containers import reader
from segbind.read.cut import SampleCutter
from segbind.read.events import Defect, Event, Sample, TrackInfo
from segbind.read.pyav import pyav_events
from segbind.read.sniff import ANNEXB, MATROSKA, MP4, sniff
from tests.support import ROOT
from tests.support.mp4_boxes import Box, parse
from tests.support.web import NODE

JS_SERVER = ROOT / "tests" / "web" / "mp4_events_server.mjs"


class Read(NamedTuple):
    """One video sample as a reader reads it: its bytes (SHA-256 and size), its presentation and
    decoding times in seconds (``dts`` None where the container stores none: Matroska), and
    whether it is presented (``hidden``: decoded, never shown)."""

    digest: str
    size: int
    pts: Fraction
    dts: Optional[Fraction]
    hidden: bool

    def __repr__(self) -> str:
        return "(%d bytes %s, pts %s, dts %s%s)" % (self.size, self.digest[:8], self.pts, self.dts,
                                                     ", hidden" if self.hidden else "")


class Reading(NamedTuple):
    """What one reader made of a file: the decoder configuration it hands a decoder first
    (NAL length size, the units of 'avcC'/'hvcC'/CodecPrivate; None when it found no track),
    its samples in decoding order (zero-size ones left out), and how it ended ("" when it read
    to the end; else the error that stopped it)."""

    config: Optional[Tuple[int, Tuple[str, ...]]]
    samples: List[Read]
    stopped: str


def _config(length_size: int, units: Sequence[Any]) -> Tuple[int, Tuple[str, ...]]:
    return length_size, tuple(bytes(u).hex() for u in units)


def _read(data: Any, pts: int, dts: Optional[int], timescale: int, hidden: bool) -> Read:
    return Read(hashlib.sha256(data).hexdigest(), len(data), Fraction(pts, timescale),
                None if dts is None else Fraction(dts, timescale), hidden)


# ---- segbind's own reader ----------------------------------------------------------------------

class OurReading(NamedTuple):
    reading: Reading
    events: List[Event]       # every event, in order (the cut is replayed over them)
    error: str                # InputError: the whole input refused


def our_reading(data: bytes, kind: str) -> OurReading:
    """segbind.read.containers.reader(kind) over the bytes (seekable, as segbind.open reads bytes)."""
    events: List[Event] = []
    samples: List[Read] = []
    config = None
    timescale = 1
    error = ""
    try:
        for event in reader(kind)(io.BytesIO(data), "input", True):
            events.append(event)
            if isinstance(event, TrackInfo):
                timescale = event.timescale
                if config is None:
                    config = _config(event.length_size, event.config_units)
            elif isinstance(event, Sample) and len(event.data):
                samples.append(_read(bytes(event.data), event.pts, None if kind == MATROSKA else event.dts,
                                     timescale, event.hidden))
    except InputError as exc:
        error = str(exc)
    fatal = next((e.text for e in events if isinstance(e, Defect) and e.fatal), "")
    return OurReading(Reading(config, samples, error or fatal), events, error)


# ---- PyAV ---------------------------------------------------------------------------------------

def video_trak(boxes: List[Box]) -> Optional[Box]:
    """The 'trak' FFmpeg and segbind take as the video: the first with a 'vide' handler and an
    H.264 or H.265 sample entry."""
    for moov in [b for b in boxes if b.kind == b"moov"][:1]:
        for trak in moov.find(b"trak"):
            handlers = trak.find(b"mdia", b"hdlr")
            entries = trak.find(b"mdia", b"minf", b"stbl", b"stsd")
            if handlers and handlers[0].data[8:12] == b"vide" and entries and entries[0].children and \
                    entries[0].children[0].kind in (b"avc1", b"avc3", b"hvc1", b"hev1", b"encv"):
                return trak
    return None


def ffmpeg_edit_shift(data: bytes) -> int:
    """How far FFmpeg moves an MP4 video track's times, in its ticks: by the duration of a
    leading empty edit (rescaled from the movie's timescale, av_rescale: to the nearest) less
    the media time of the edit after it (mov_fix_index for progressive files, time_offset for
    fragments). 0 without an edit list, or one segbind does not read (it refuses the track)."""
    try:
        boxes = parse(data)
        trak = video_trak(boxes)
        if trak is None:
            return 0
        mvhd = boxes and [b for b in boxes if b.kind == b"moov"][0].first(b"mvhd")
        mdhd = trak.first(b"mdia", b"mdhd")
        elsts = trak.find(b"edts", b"elst")
        if not elsts:
            return 0
        elst = elsts[0]
        wide = elst.version == 1
        count = elst.u32(4)
        entry = 20 if wide else 12
        edits = []
        for k in range(count):
            at = 8 + k * entry
            body = elst.data[at:at + entry]
            if len(body) < entry:
                return 0
            duration = int.from_bytes(body[:8 if wide else 4], "big")
            media = int.from_bytes(body[8 if wide else 4:16 if wide else 8], "big", signed=True)
            edits.append((duration, media))
        movie_ts = mvhd.u32(12 if mvhd.version == 0 else 20)
        track_ts = mdhd.u32(12 if mdhd.version == 0 else 20)
        if len(edits) == 1 and edits[0][1] >= 0:
            return -edits[0][1]
        if len(edits) == 2 and edits[0][1] == -1 and edits[1][1] >= 0 and movie_ts:
            empty = (edits[0][0] * track_ts + movie_ts // 2) // movie_ts
            return empty - edits[1][1]
    except (AssertionError, IndexError, ValueError, ZeroDivisionError, TypeError, struct.error):
        pass
    return 0


def pyav_reading(data: bytes, kind: str) -> Reading:
    """PyAV (FFmpeg's demuxer, segbind.read.pyav.pyav_events) over the same bytes; MP4 times put
    back before FFmpeg's edit-list shift (``ffmpeg_edit_shift``), so they compare with segbind's."""
    shift = ffmpeg_edit_shift(data) if kind == MP4 else 0
    samples: List[Read] = []
    config = None
    stopped = ""
    timescale = 1
    try:
        for event in pyav_events(io.BytesIO(data), kind, "input"):
            if isinstance(event, TrackInfo):
                timescale = event.timescale
                config = _config(event.length_size, event.config_units)
            elif isinstance(event, Sample) and len(event.data):
                samples.append(_read(event.data, event.pts - shift,
                                     None if kind == MATROSKA else event.dts - shift, timescale, event.hidden))
            elif isinstance(event, Defect) and event.fatal:
                stopped = event.text
    except InputError as exc:
        stopped = str(exc)
    except Exception as exc:  # noqa: BLE001 - PyAV on hostile bytes: what it read so far is its reading
        stopped = "PyAV: %s: %s" % (type(exc).__name__, exc)
    return Reading(config, samples, stopped)


# ---- the JavaScript reader ---------------------------------------------------------------------

def delivery_chunks(data: bytes) -> List[bytes]:
    """An fMP4 stream as HLS or DASH delivers it to a browser: the init segment (to the end of
    its 'moov'), then media segments, each ending with a 'moof' and its 'mdat' (boxes between
    go with the segment after them). A stream whose top-level boxes do not parse is one chunk."""
    pos, spans = 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if size < 8:
            return [data]
        spans.append((data[pos + 4:pos + 8], pos, pos + size))
        pos += size
    if pos != len(data):
        return [data]
    cuts = []
    moov = next((k for k, span in enumerate(spans) if span[0] == b"moov"), None)
    if moov is None:
        return [data]
    cuts.append(spans[moov][2])
    for k in range(moov + 1, len(spans)):
        if spans[k][0] == b"mdat" and spans[k - 1][0] == b"moof":
            cuts.append(spans[k][2])
    cuts = sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    return [data[a:b] for a, b in zip([0] + cuts[:-1], cuts)]


def is_fragmented(data: bytes) -> bool:
    """The movie has an 'mvex' (a fragmented MP4, which the JavaScript reader reads)."""
    try:
        return any(b.kind == b"moov" and b.find(b"mvex") for b in parse(data))
    except (AssertionError, IndexError, ValueError, struct.error):
        return False


class JsReader:
    """src/segbind/web/segbind-mp4.js under Node (tests/web/mp4_events_server.mjs), one process
    for many files: ``reading(chunks, directory)`` feeds it init() then fragment() per chunk."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([NODE, "--disable-warning=MODULE_TYPELESS_PACKAGE_JSON", str(JS_SERVER)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def reading(self, chunks: Sequence[bytes], directory: Path) -> Reading:
        paths = []
        for k, chunk in enumerate(chunks):
            path = directory / ("js-chunk-%d.bin" % k)
            path.write_bytes(chunk)
            paths.append(str(path))
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"chunks": paths}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the JavaScript reader's process ended"
        reply = json.loads(line)
        assert "exception" not in reply, "segbind-mp4.js threw: %s" % reply.get("exception")
        samples: List[Read] = []
        config = None
        stopped = ""
        timescale = 1
        for e in reply["events"]:
            if e["type"] == "track":
                timescale = e["timescale"]
                if config is None:
                    config = (e["lengthSize"], tuple(e["configUnits"]))
            elif e["type"] == "sample" and e["size"]:
                samples.append(Read(e["sha256"], e["size"], Fraction(e["pts"], timescale),
                                    Fraction(e["dts"], timescale), e["hidden"]))
            elif e["type"] == "error" or (e["type"] == "defect" and e["fatal"]):
                stopped = stopped or e["text"]
        return Reading(config, samples, stopped)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ---- segbind's segments, and which samples each holds -------------------------------------------

class TracingCutter(SampleCutter):
    """segbind's cut (read.cut.SampleCutter, unchanged) that also records, for each segment it
    gives, the samples it holds (numbers in the reader's order, zero-size ones included as the
    cutter sees them) and the reader's Defects it took. A sample whose units cannot be told apart
    refuses the segment in progress and belongs to it."""

    def __init__(self, video_only: bool) -> None:
        super().__init__(video_only=video_only)
        self.members: List[Tuple[List[int], List[int]]] = []   # per segment: (samples, defect events)
        self._held: List[int] = []
        self._defects: List[int] = []
        self._empty: set = set()     # zero-size samples (a segment of those alone is never made)
        self._index = -1
        self._placed = True          # the current sample is in a segment already
        self._closing_before = False  # a tag closes the segment before the current sample

    def feed_numbered(self, event: Event, sample_number: int, event_number: int) -> None:
        if isinstance(event, Sample):
            if not len(event.data):
                self._empty.add(sample_number)
            self._index, self._placed = sample_number, False
            self.feed(event)
            if not self._placed:
                self._held.append(sample_number)
            self._index, self._placed = -1, True
        else:
            if isinstance(event, Defect):
                self._defects.append(event_number)
            self.feed(event)

    def _tag_in_sample(self, scan: Any) -> None:
        self._closing_before = True
        try:
            super()._tag_in_sample(scan)
        finally:
            self._closing_before = False

    def _close(self) -> None:
        samples = self._held
        if not self._placed and not self._closing_before:
            samples = samples + [self._index]
            self._placed = True
        given = len(self._out)
        super()._close()
        if len(self._out) > given:
            self.members.append((samples, self._defects))
            self._held, self._defects = [], []
        else:
            assert set(samples) <= self._empty, "samples %s left the cut in no segment" % samples


def segment_members(events: Sequence[Event], video_only: bool = True) -> List[Tuple[List[int], List[int]]]:
    """For each segment segbind makes of a reader's events: (the numbers of the non-empty
    samples it holds, the numbers of the events of the Defects it took)."""
    cutter = TracingCutter(video_only)
    number = 0
    renumber: Dict[int, int] = {}  # sample number among all -> among the non-empty ones
    for k, event in enumerate(events):
        if isinstance(event, Sample):
            if len(event.data):
                renumber[number] = len(renumber)
            cutter.feed_numbered(event, number, k)
            number += 1
        else:
            cutter.feed_numbered(event, -1, k)
    cutter.finish()
    return [([renumber[s] for s in samples if s in renumber], defects) for samples, defects in cutter.members]


class Verdicts(NamedTuple):
    error: str                                  # InputError: the whole input refused
    results: List[Tuple[bool, Optional[int], Optional[bytes], str]]  # (accepted, seq, data, reason)


def verdicts(data: bytes, keyring: Keyring) -> Verdicts:
    """segbind.open over the bytes, verifying the video alone (other tracks dropped, the most
    it accepts): each segment's verdict, its tag's seq and what it hands on (the segment as the
    camera emitted it, encrypted: format 3; a decoder gets it decrypted, exactly when accepted)."""
    try:
        with segbind.open(data, keyring, video_only=True) as media:
            out = []
            for r in media:
                assert (r.data is not None) == (r.protected is not None) == r.accepted, r
                out.append((r.accepted, r.tag.seq if r.tag is not None else None, r.protected, str(r.reason)))
            return Verdicts("", out)
    except InputError as exc:
        return Verdicts(str(exc), [])


# ---- the rule ------------------------------------------------------------------------------------

class Differences(NamedTuple):
    """Where another reader reads differently from ours: ``ours`` maps each of our samples it reads
    otherwise (or skips while reading on) to a line saying how; ``only_theirs`` lists samples only
    it reads, as (lo, hi, line): they lie between our samples ``lo`` and ``hi`` (-1 and len for the
    ends)."""

    ours: Dict[int, str]
    only_theirs: List[Tuple[int, int, str]]


def differences(ours: Reading, other: Reading, skips_leading_hidden: bool = False) -> Differences:
    """``other``'s reading against ``ours``, exactly as the test module's docstring defines it:
    samples aligned by their bytes (difflib, no junk heuristic); aligned samples compared in
    times and presentation (the times of a sample both hide present nothing: not compared); where
    the bytes differ, a sample of each at the same presentation time is one sample read two ways;
    what is left is read by one reader only. Our samples after the end of the other's reading (it
    stopped, or could not open the input) are not compared, nor, when ``skips_leading_hidden``
    (FFmpeg's MP4 edit lists), our hidden samples before the first one it reads."""
    a, b = ours.samples, other.samples
    found = Differences({}, [])
    matcher = SequenceMatcher(None, [(r.digest, r.size) for r in a], [(r.digest, r.size) for r in b],
                              autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                if a[i] != b[j] and not (a[i].hidden and b[j].hidden):
                    found.ours[i] = "ours %d %r, the other %d %r" % (i, a[i], j, b[j])
            continue
        if op == "delete" and i1 == 0 and j1 == 0 and skips_leading_hidden and all(r.hidden for r in a[i1:i2]):
            continue
        trailing = i2 == len(a) and j2 == len(b)
        theirs = list(range(j1, j2))
        paired: Dict[int, int] = {}
        for i in range(i1, i2):
            same_time = next((j for j in theirs if b[j].pts == a[i].pts), None)
            if same_time is not None:
                theirs.remove(same_time)
                paired[i] = same_time
                found.ours[i] = "ours %d %r, the other %d %r" % (i, a[i], same_time, b[same_time])
            elif not trailing:
                found.ours[i] = "ours %d %r, which the other skips" % (i, a[i])
        places: Dict[Tuple[int, int], List[int]] = {}
        for j in theirs:  # between the nearest of our samples paired before and after it
            lo = max([i for i, k in paired.items() if k < j], default=i1 - 1)
            hi = min([i for i, k in paired.items() if k > j], default=lo + 1 if trailing else i2)
            places.setdefault((lo, hi), []).append(j)
        for (lo, hi), js in sorted(places.items()):
            found.only_theirs.append((lo, hi, "the other's %s, between our samples %d and %d" % (
                ", ".join("%d %r" % (j, b[j]) for j in js[:3]) + (" ..." if len(js) > 3 else ""), lo, hi)))
    return found


def sniffed(data: bytes) -> str:
    return sniff(data[:1024])


def violations(data: bytes, keyring: Keyring, camera: Sequence[bytes], js: Optional[JsReader],
               directory: Path) -> Tuple[List[str], Dict[str, Any]]:
    """Every breach of the rule on one file: a segment segbind accepts while another reader
    reads its samples (or the decoder configuration) differently, a difference next to which
    segbind accepts on both sides, an accepted segment that hands on other bytes than the
    camera tagged. Also returns what was found, for the test's statistics and messages."""
    found = verdicts(data, keyring)
    try:
        kind = sniffed(data)
    except InputError:
        assert found.error
        return [], {"kind": "", "verdicts": found, "differ": {}}
    if kind == ANNEXB:  # a mutant that lost its container's header: bytes, no container to read two ways
        broken = ["segment %d (seq %s) is accepted and hands on other bytes than the camera tagged" % (n, seq)
                  for n, (accepted, seq, handed, _) in enumerate(found.results)
                  if accepted and (seq is None or handed != camera[seq])]
        return broken, {"kind": kind, "verdicts": found, "differ": {}}
    ours = our_reading(data, kind)
    others: Dict[str, Reading] = {"PyAV": pyav_reading(data, kind)}
    if js is not None and kind == MP4 and is_fragmented(data):
        others["segbind-mp4.js"] = js.reading(delivery_chunks(data), directory)
    info: Dict[str, Any] = {"kind": kind, "ours": ours.reading, "others": others, "verdicts": found,
                            "differ": {}}
    if found.error:
        return [], info  # the whole input refused: nothing handed on
    members = segment_members(ours.events)
    assert len(members) == len(found.results), (
        "segbind.open gave %d segments, its cut over the reader's events %d" % (len(found.results), len(members)))
    broken = []
    for number, (accepted, seq, handed, reason) in enumerate(found.results):
        if accepted:
            assert seq is not None
            if handed != camera[seq]:
                broken.append("segment %d (seq %d) is accepted and hands on other bytes than the camera tagged"
                              % (number, seq))
            if len(members[number][0]) == 0:
                broken.append("segment %d (seq %d) is accepted and holds no sample" % (number, seq))
    of_sample = {s: n for n, (samples, _) in enumerate(members) for s in samples}
    event_of_sample = [k for k, e in enumerate(ours.events) if isinstance(e, Sample) and len(e.data)]

    def accepted(segment: Optional[int]) -> bool:
        return segment is not None and found.results[segment][0]

    for name, other in others.items():
        diffs = differences(ours.reading, other, skips_leading_hidden=name == "PyAV" and kind == MP4)
        if ours.reading.config is not None and other.config is not None and ours.reading.config != other.config:
            for i in range(len(ours.reading.samples)):
                diffs.ours.setdefault(i, "the decoder configuration: ours %r, the other %r" % (
                    ours.reading.config, other.config))
        info["differ"][name] = diffs
        by_segment: Dict[int, List[str]] = {}
        for i, what in sorted(diffs.ours.items()):
            segment = of_sample.get(i)
            if accepted(segment):
                by_segment.setdefault(segment, []).append(what)
        for segment, whats in sorted(by_segment.items()):
            broken.append("segment %d (seq %s) is accepted, and %s reads %d of its samples otherwise, e.g. %s" % (
                segment, found.results[segment][1], name, len(whats), whats[0]))
        for lo, hi, what in diffs.only_theirs:
            # one of the segments holding our samples lo..hi, or one that took a Defect between them,
            # must be refused
            before = event_of_sample[lo] if lo >= 0 else -1
            after = event_of_sample[hi] if hi < len(event_of_sample) else len(ours.events)
            around = {of_sample.get(i) for i in range(lo, hi + 1)}
            around |= {n for n, (_, defects) in enumerate(members) if any(before < d < after for d in defects)}
            around -= {None}
            if not around or all(accepted(n) for n in around):
                broken.append("%s reads samples segbind does not, and segbind accepts the segment(s) around them %s: "
                              "%s" % (name, sorted(around), what))
    return broken, info


# ---- the files: what the media tests' remuxes make ----------------------------------------------

# (codec, B-frames) -> a host_sim.clips kind: 80 pictures at 25 fps, an IRAP picture every 25.
STREAMS = {
    "h264-bframes": "ffmpeg-bframes-slices-aud",
    "h264-no-bframes": "pyav-every",
    "h265-bframes": "x265-pyav-bframes-radl-slices-aud",
    "h265-no-bframes": "x265-pyav-closed",
}
FRAG = "frag_keyframe+empty_moov+default_base_moof"
FPS = "25"


class File(NamedTuple):
    data: bytes
    camera: Tuple[bytes, ...]   # the camera's tagged segments, by seq


class Files(Dict[str, File]):
    """name -> File, shown by its names alone (hypothesis prints its arguments)."""

    def __repr__(self) -> str:
        return "Files(%d: %s ...)" % (len(self), ", ".join(sorted(self)[:3]))


def remuxed_files(keys: Path, directory: Path) -> Files:
    """name -> a container file the media tests' remuxes make of a tagged camera stream: for
    each stream of ``STREAMS`` (H.264 and H.265, B-frames on and off), without and with an AAC
    track: MP4 with its index last (``ffmpeg -r 25 -i tagged -c copy``, the most common remux)
    and first (PyAV, ``+faststart``), fMP4 from PyAV and from ffmpeg (default-base-is-moof),
    ffmpeg's HLS fMP4 and HLS-TS of that MP4 (media segments concatenated behind their init
    segment), and its MPEG-TS, Matroska and FLV; PyAV's own MPEG-TS and Matroska. H.265 FLV
    comes from PyAV only (ffmpeg 5.1: "not compatible with flv"), without audio."""
    from host_sim import clips
    from segbind.write import remux_annexb
    from tests.support.media import SINE, ffmpeg, tag

    out = Files()
    for stream, clip in STREAMS.items():
        d = directory / stream
        d.mkdir(parents=True, exist_ok=True)
        tagged = tag(keys, clips.make_kind(clip), d / "tagged.annexb")
        camera = tuple(segbind.tagged_segments(tagged.read_bytes()))
        h265 = stream.startswith("h265")
        files: Dict[str, Path] = {}

        def pyav(name: str, fmt: str, options: Optional[Dict[str, str]] = None) -> None:
            files[name] = d / name
            remux_annexb(str(tagged), str(files[name]), fmt, options)

        def cli(name: str, *args: str) -> None:
            files[name] = d / name
            ffmpeg(*args, str(files[name]))

        def hls(name: str, source: Path, segment_type: str, audio: bool) -> None:
            h = d / name.replace(".", "-")
            h.mkdir(exist_ok=True)
            ext = "m4s" if segment_type == "fmp4" else "ts"
            ffmpeg("-i", str(source), *(SINE + ("-c:a", "aac") if audio else ()), "-c:v", "copy", "-f", "hls",
                   "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", segment_type,
                   "-hls_segment_filename", str(h / ("seg_%03d." + ext)), str(h / "out.m3u8"))
            parts = ([h / "init.mp4"] if segment_type == "fmp4" else []) + sorted(h.glob("seg_*." + ext))
            files[name] = d / name
            files[name].write_bytes(b"".join(p.read_bytes() for p in parts))

        for audio in (False, True):
            a = "+aac" if audio else ""
            sound = SINE + ("-c:a", "aac") if audio else ()
            last = "mp4-ffmpeg-moov-last%s.mp4" % a
            cli(last, "-r", FPS, "-i", str(tagged), *sound, "-c:v", "copy")
            if audio:
                cli("mp4-pyav-moov-first+aac.mp4", "-i", str(files["mp4-pyav-moov-first.mp4"]), *sound, "-c:v", "copy",
                    "-movflags", "+faststart")
                cli("fmp4-pyav+aac.mp4", "-i", str(files["mp4-pyav-moov-first.mp4"]), *sound, "-c:v", "copy",
                    "-movflags", FRAG)
            else:
                pyav("mp4-pyav-moov-first.mp4", "mp4", {"movflags": "+faststart"})
                pyav("fmp4-pyav.mp4", "mp4", {"movflags": FRAG})
                pyav("ts-pyav.ts", "mpegts")
                pyav("mkv-pyav.mkv", "matroska")
                if h265:
                    pyav("flv-pyav.flv", "flv")
            cli("fmp4-ffmpeg%s.mp4" % a, "-r", FPS, "-i", str(tagged), *sound, "-c:v", "copy", "-movflags", FRAG)
            hls("hls-fmp4%s.mp4" % a, files["mp4-ffmpeg-moov-last.mp4"], "fmp4", audio)
            hls("hls-ts%s.ts" % a, files["mp4-ffmpeg-moov-last.mp4"], "mpegts", audio)
            cli("ts-ffmpeg%s.ts" % a, "-i", str(files[last]), "-c", "copy")
            cli("mkv-ffmpeg%s.mkv" % a, "-i", str(files[last]), "-c", "copy")
            if not h265:
                cli("flv-ffmpeg%s.flv" % a, "-i", str(files[last]), "-c", "copy")
        for name, path in files.items():
            out["%s/%s" % (stream, name)] = File(path.read_bytes(), camera)
    return out
