"""segbind's own Matroska reader (segbind.read.matroska) against real files and hand-made mutants.

Real files come from PyAV's and Debian ffmpeg 5.1's muxers (``-c copy`` from MP4 and from raw
Annex-B, B-frames on and off, an audio track, H.264 and H.265, a live file of unknown sizes):
the reader's samples are PyAV's packets, byte for byte and time for time. Each refusal is a
mutation of such a file made with a small EBML editor (``Doc``), asserting the InputError or
Defect it gives. Hypothesis mutates real files: only events or InputError come out, in bounded
memory. A pipe that gives a few bytes per read gives the same events as the file.
"""

from __future__ import annotations

import fractions
import io
import math
import subprocess
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind.errors import InputError
from segbind.read import matroska
from segbind.read.events import Defect, Event, Sample, TrackInfo
from segbind.read.matroska import matroska_events
from segbind.write import remux_annexb
from tests.support.media import FFMPEG, ffmpeg

# -- a small EBML editor -------------------------------------------------------------------------

MASTERS = {0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0x55B0, 0x1F43B675,
           0xA0, 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x1C53BB6B, 0xBB, 0xB7, 0x1043A770, 0x45B9, 0xB6,
           0x1941A469, 0x61A7, 0x6D80, 0x6240, 0x5034, 0x75A1, 0xA6}
SEGMENT, CLUSTER, TRACKS, INFO, SEEKHEAD, TRACK_ENTRY = 0x18538067, 0x1F43B675, 0x1654AE6B, 0x1549A966, 0x114D9B74, 0xAE
SIMPLE_BLOCK, BLOCK_GROUP, TIMESTAMP, VOID, CUES = 0xA3, 0xA0, 0xE7, 0xEC, 0x1C53BB6B


def vint(value: int, length: int = 0) -> bytes:
    """An EBML variable-size integer, in ``length`` bytes (the fewest when 0)."""
    if not length:
        length = 1
        while value >= (1 << (7 * length)) - 1:
            length += 1
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def uint(value: int, length: int = 0) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


class El:
    """An element: its ID, and either its payload or its children; ``unknown``: written with
    the unknown size; ``size``: written as this size whatever the content (for lies)."""

    def __init__(self, eid: int, payload: bytes = b"", children: Optional[List["El"]] = None,
                 unknown: bool = False, size: Optional[int] = None, size_length: int = 0) -> None:
        self.id = eid
        self.payload = payload
        self.children = children
        self.unknown = unknown
        self.size = size
        self.size_length = size_length
        self.target: Optional[El] = None  # a Seek entry's element, a CueTrackPositions' Cluster

    def data(self) -> bytes:
        if self.children is None:
            return self.payload
        return b"".join(child.encode() for child in self.children)

    def encode(self) -> bytes:
        body = self.data()
        size = len(body) if self.size is None else self.size
        size_length = max(self.size_length or 8, len(vint(size)))
        if self.unknown:
            size = vint((1 << (7 * size_length)) - 1, size_length)
        else:
            return uint(self.id) + vint(size, size_length) + body
        return uint(self.id) + size + body

    def find(self, eid: int) -> List["El"]:
        return [child for child in self.children or [] if child.id == eid]

    def first(self, eid: int) -> "El":
        return self.find(eid)[0]


def parse(data: bytes, pos: int = 0, end: Optional[int] = None) -> List[El]:
    end = len(data) if end is None else end
    out = []
    while pos < end:
        first = data[pos]
        id_length = 9 - first.bit_length()
        eid = int.from_bytes(data[pos:pos + id_length], "big")
        lead = data[pos + id_length]
        size_length = 9 - lead.bit_length()
        mask = (1 << (7 * size_length)) - 1
        size = int.from_bytes(data[pos + id_length:pos + id_length + size_length], "big") & mask
        start = pos + id_length + size_length
        unknown = size == mask
        stop = end if unknown else start + size
        if eid in MASTERS:
            element = El(eid, children=parse(data, start, stop), unknown=unknown)
        else:
            element = El(eid, data[start:stop])
        element.size_length = size_length
        out.append(element)
        pos = stop
    return out


class Doc:
    """A Matroska file as an element tree: edit ``segment.children``, then ``bytes()``; Seek
    entries keep pointing at the elements they pointed at."""

    def __init__(self, data: bytes) -> None:
        self.top = parse(data)
        self.segment = next(e for e in self.top if e.id == SEGMENT)
        self.segment.size_length = 8
        offsets = {}
        pos = 0
        for child in self.segment.children or []:
            offsets[pos] = child
            pos += len(child.encode())
        for seekhead in self.segment.find(SEEKHEAD):
            for seek in seekhead.find(0x4DBB):
                position = seek.first(0x53AC)
                seek.target = offsets.get(int.from_bytes(position.payload, "big"))
                position.payload = bytes(8)
        for cues in self.segment.find(CUES):
            for point in cues.find(0xBB):
                for where in point.find(0xB7):
                    position = where.first(0xF1)
                    where.target = offsets.get(int.from_bytes(position.payload, "big"))
                    position.payload = bytes(8)

    def element(self, eid: int, index: int = 0) -> El:
        return self.segment.find(eid)[index]

    def clusters(self) -> List[El]:
        return self.segment.find(CLUSTER)

    def track_entry(self, index: int = 0) -> El:
        return self.element(TRACKS).find(TRACK_ENTRY)[index]

    def __bytes__(self) -> bytes:
        offsets: Dict[int, int] = {}
        pos = 0
        for child in self.segment.children or []:
            offsets[id(child)] = pos
            pos += len(child.encode())
        for seekhead in self.segment.find(SEEKHEAD):
            for seek in seekhead.find(0x4DBB):
                if seek.target is None:
                    continue
                if id(seek.target) not in offsets:  # its element was removed: so is the entry
                    seekhead.children.remove(seek)
                    return self.__bytes__()
                seek.first(0x53AC).payload = offsets[id(seek.target)].to_bytes(8, "big")
        for cues in self.segment.find(CUES):
            for point in cues.find(0xBB):
                for where in point.find(0xB7):
                    if where.target is not None and id(where.target) not in offsets:  # its Cluster was removed
                        cues.children.remove(point)
                        return self.__bytes__()
                    if where.target is not None:
                        where.first(0xF1).payload = offsets[id(where.target)].to_bytes(8, "big")
        return b"".join(e.encode() for e in self.top)


def block_flags(block: El, set_bits: int = 0, clear_bits: int = 0) -> None:
    payload = bytearray(block.payload)
    payload[3] = (payload[3] | set_bits) & ~clear_bits & 0xFF
    block.payload = bytes(payload)


def video_blocks(doc: Doc) -> List[El]:
    return [e for cluster in doc.clusters() for e in cluster.children or [] if e.id == SIMPLE_BLOCK]


# -- real files ------------------------------------------------------------------------------------

def run_ffmpeg_to_pipe(*args: str) -> bytes:
    """ffmpeg writing Matroska to a pipe: a Segment of unknown size, as a live stream."""
    return subprocess.run([FFMPEG, "-v", "error", *args, "-f", "matroska", "-"], check=True,
                          capture_output=True, timeout=300).stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """name -> a real Matroska file (each from a real encoder and a real muxer)."""
    work = tmp_path_factory.mktemp("mkv")
    raw = {
        "h264": clips.encode_pyav(frames=50, gop=25),
        "h264-b": clips.encode_pyav(frames=50, gop=25, bframes=2),
        "h265": clips.encode_pyav_h265(frames=50, gop=25),
        "h265-b": clips.encode_pyav_h265(frames=50, gop=25, bframes=2),
    }
    out = {}
    for kind, data in raw.items():
        suffix = "h264" if kind.startswith("h264") else "h265"
        (work / ("%s.%s" % (kind, suffix))).write_bytes(data)
    for kind in raw:
        suffix = "h264" if kind.startswith("h264") else "h265"
        source = str(work / ("%s.%s" % (kind, suffix)))
        mp4 = work / ("%s.mp4" % kind)
        remux_annexb(source, str(mp4), "mp4")  # B-frames with their real presentation times
        out["pyav-" + kind] = work / ("pyav-%s.mkv" % kind)
        remux_annexb(source, str(out["pyav-" + kind]), "matroska")
        out["ffmpeg-mp4-" + kind] = work / ("ffmpeg-mp4-%s.mkv" % kind)
        ffmpeg("-i", str(mp4), "-c", "copy", str(out["ffmpeg-mp4-" + kind]))
        if not kind.endswith("-b"):  # ffmpeg 5.1 cannot time raw B-frames ("unknown timestamp")
            out["ffmpeg-raw-" + kind] = work / ("ffmpeg-raw-%s.mkv" % kind)
            ffmpeg("-r", "25", "-i", source, "-c", "copy", str(out["ffmpeg-raw-" + kind]))
    out["ffmpeg-cues-first"] = work / "ffmpeg-cues-first.mkv"  # Cues before the Clusters
    ffmpeg("-i", str(work / "h264-b.mp4"), "-c", "copy", "-reserve_index_space", "2000", str(out["ffmpeg-cues-first"]))
    out["ffmpeg-aac"] = work / "ffmpeg-aac.mkv"
    ffmpeg("-r", "25", "-i", str(work / "h264.h264"), "-f", "lavfi", "-i", "sine=d=2", "-c:v", "copy",
           "-c:a", "aac", "-shortest", str(out["ffmpeg-aac"]))
    for kind in ("h264-b", "h265-b"):
        out["live-" + kind] = work / ("live-%s.mkv" % kind)
        out["live-" + kind].write_bytes(run_ffmpeg_to_pipe("-i", str(work / ("%s.mp4" % kind)), "-c", "copy",
                                                           "-live", "1"))
    return out


def events_of(data: bytes, name: str = "test.mkv") -> List[Event]:
    return list(matroska_events(io.BytesIO(data), name))


def split(events: List[Event]) -> Tuple[List[TrackInfo], List[Sample], List[Defect]]:
    return ([e for e in events if isinstance(e, TrackInfo)], [e for e in events if isinstance(e, Sample)],
            [e for e in events if isinstance(e, Defect)])


def pyav_packets(path: Path) -> Tuple[fractions.Fraction, List[Tuple[bytes, int, Optional[int], int, bool]]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(bytes(p), p.pts, p.dts, p.duration, p.is_keyframe) for p in container.demux(stream) if p.size]
        return stream.time_base, packets


def assert_same_as_pyav(data: bytes, path: Path) -> None:
    infos, samples, defects = split(events_of(data, path.name))
    assert not defects, defects
    assert len(infos) == 1
    time_base, packets = pyav_packets(path)
    ticks = fractions.Fraction(1, infos[0].timescale)
    assert [bytes(s.data) for s in samples] == [p[0] for p in packets]
    assert [s.pts * ticks for s in samples] == [p[1] * time_base for p in packets]
    assert [s.duration * ticks for s in samples] == [p[3] * time_base for p in packets]
    assert [s.sync for s in samples] == [p[4] for p in packets]
    assert all(s.dts == s.pts for s in samples)  # Matroska stores no decoding time
    if all(p[1] == p[2] for p in packets):  # no reordering: PyAV's dts is the pts too
        assert [s.dts * ticks for s in samples] == [p[2] * time_base for p in packets]


REAL = ["pyav-h264", "pyav-h264-b", "pyav-h265", "pyav-h265-b", "ffmpeg-mp4-h264", "ffmpeg-mp4-h264-b",
        "ffmpeg-mp4-h265", "ffmpeg-mp4-h265-b", "ffmpeg-raw-h264", "ffmpeg-raw-h265", "ffmpeg-aac",
        "live-h264-b", "live-h265-b", "ffmpeg-cues-first"]


@pytest.mark.parametrize("kind", REAL)
def test_real_files_read_as_pyav_reads_them(files: Dict[str, Path], kind: str) -> None:
    assert_same_as_pyav(files[kind].read_bytes(), files[kind])


def test_track_description(files: Dict[str, Path]) -> None:
    info = split(events_of(files["pyav-h265-b"].read_bytes()))[0][0]
    assert (info.codec, info.codec_name, info.length_size, info.timescale) == (2, "hevc", 4, 1000)
    assert [u[0] >> 1 & 0x3F for u in info.config_units] == [32, 33, 34]  # VPS, SPS, PPS from hvcC
    info = split(events_of(files["ffmpeg-aac"].read_bytes()))[0][0]
    assert (info.codec, info.codec_name, info.others, info.other_video) == (1, "h264", ("audio (A_AAC)",), False)
    assert [u[0] & 0x1F for u in info.config_units] == [7, 8]


def test_the_live_file_has_unknown_sizes(files: Dict[str, Path]) -> None:
    doc = Doc(files["live-h264-b"].read_bytes())
    assert doc.segment.unknown


def test_clusters_of_unknown_size_read_as_known_ones(files: Dict[str, Path]) -> None:
    doc = Doc(files["live-h264-b"].read_bytes())
    for cluster in doc.clusters():
        cluster.unknown = True
    assert_same_as_pyav(bytes(doc), files["live-h264-b"])


def test_blockgroups_read_as_pyav_reads_them(files: Dict[str, Path], tmp_path: Path) -> None:
    """Blocks in BlockGroups, with BlockDuration and ReferenceBlock for the non-key frames."""
    doc = Doc(files["pyav-h264-b"].read_bytes())
    for cluster in doc.clusters():
        for k, element in enumerate(cluster.children or []):
            if element.id == SIMPLE_BLOCK:
                flags = element.payload[3]
                block = El(0xA1, element.payload[:3] + bytes([flags & 0x0F]) + element.payload[4:])
                children = [block, El(0x9B, uint(40))]
                if not flags & 0x80:
                    children.append(El(0xFB, b"\xd8"))  # ReferenceBlock -40
                cluster.children[k] = El(BLOCK_GROUP, children=children)
    path = tmp_path / "groups.mkv"
    path.write_bytes(bytes(doc))
    assert_same_as_pyav(path.read_bytes(), path)


def test_webm_doctype_and_exact_timescales(files: Dict[str, Path], tmp_path: Path) -> None:
    """DocType webm reads the same; TimestampScale gives the timescale exactly, whatever it is."""
    for scale, doctype in ((100000, b"webm"), (40000000, b"matroska"), (3, b"matroska")):
        doc = Doc(files["ffmpeg-raw-h264"].read_bytes())
        doc.top[0].first(0x4282).payload = doctype
        doc.element(INFO).first(0x2AD7B1).payload = uint(scale, 4)
        for cluster in doc.clusters():  # cluster times in the new ticks; block offsets 0
            for element in cluster.children or []:
                if element.id == SIMPLE_BLOCK:
                    element.payload = element.payload[:1] + b"\x00\x00" + element.payload[3:]
        path = tmp_path / "scale.mkv"
        path.write_bytes(bytes(doc))
        infos, samples, defects = split(events_of(path.read_bytes()))
        assert not defects
        assert infos[0].timescale == 10 ** 9 // math.gcd(scale, 10 ** 9)
        time_base, packets = pyav_packets(path)
        assert [s.pts * fractions.Fraction(1, infos[0].timescale) for s in samples] == \
            [p[1] * time_base for p in packets]


def test_a_pipe_gives_the_same_events_as_a_file(files: Dict[str, Path]) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data, self.pos = data, 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk = self.data[self.pos:self.pos + min(size if size >= 0 else 7, 7)]
            self.pos += len(chunk)
            return chunk

    for kind in ("live-h265-b", "ffmpeg-aac"):
        data = files[kind].read_bytes()
        with open(files[kind], "rb") as stream:
            from_file = [repr(e) + (bytes(e.data).hex() if isinstance(e, Sample) else "")
                         for e in matroska_events(stream, kind)]
        from_pipe = [repr(e) + (bytes(e.data).hex() if isinstance(e, Sample) else "")
                     for e in matroska_events(Trickle(data), kind)]  # type: ignore[arg-type]
        assert from_pipe == from_file and len(from_file) == 51


# -- refusals: each a hand-made mutation of a real file --------------------------------------------

def refused(data: bytes) -> str:
    with pytest.raises(InputError) as error:
        events_of(data)
    return str(error.value)


def last_defect(data: bytes) -> Defect:
    infos, samples, defects = split(events_of(data))
    assert infos and defects
    return defects[-1]


@pytest.fixture()
def doc(files: Dict[str, Path]) -> Doc:
    return Doc(files["ffmpeg-aac"].read_bytes())


def test_the_editor_round_trips(doc: Doc, files: Dict[str, Path]) -> None:
    _, samples, defects = split(events_of(bytes(doc)))
    assert len(samples) == 50 and not defects


@pytest.mark.parametrize("edit, why", [
    (lambda d: setattr(d.top[0].first(0x4282), "payload", b"mkv2"), "DocType"),
    (lambda d: setattr(d.top[0].first(0x42F2), "payload", b"\x08"), "EBMLMaxIDLength"),
    (lambda d: setattr(d.top[0].first(0x4285), "payload", b"\x04"), "DocTypeReadVersion 4"),
    (lambda d: setattr(d.top[0].first(0x42F3), "payload", b"\x04"), "EBMLMaxSizeLength 4"),
    (lambda d: d.top.insert(1, El(VOID, bytes(4))), "not a Segment"),
    (lambda d: d.top[0].children.append(El(0x4281, children=[])), "neither FFmpeg nor RFC 9559"),
])
def test_ebml_header_refusals(doc: Doc, edit: Callable[[Doc], None], why: str) -> None:
    edit(doc)
    assert why in refused(bytes(doc))


def tracks_after_first_cluster(d: Doc) -> None:
    tracks = d.element(TRACKS)
    d.segment.children.remove(tracks)
    d.segment.children.insert(d.segment.children.index(d.clusters()[0]) + 1, tracks)


def duplicate(eid: int) -> Callable[[Doc], None]:
    def edit(d: Doc) -> None:
        original = d.element(eid)
        d.segment.children.insert(d.segment.children.index(original) + 1, Doc(bytes(d)).element(eid))
    return edit


def entry_edit(edit: Callable[[El], None], index: int = 0) -> Callable[[Doc], None]:
    return lambda d: edit(d.track_entry(index))


def set_child(eid: int, payload: bytes) -> Callable[[El], None]:
    def edit(entry: El) -> None:
        found = entry.find(eid)
        if found:
            found[0].payload = payload
        else:
            entry.children.append(El(eid, payload))
    return edit


@pytest.mark.parametrize("edit, why", [
    (tracks_after_first_cluster, "no Tracks before the first Cluster"),
    (lambda d: d.segment.children.remove(d.element(INFO)), "no Info before the first Cluster"),
    (duplicate(TRACKS), "a second Tracks"),
    (duplicate(INFO), "a second Info"),
    (entry_edit(set_child(0xD7, b"\x01"), 1), "two TrackEntries numbered 1"),
    (entry_edit(set_child(0x86, b"V_MPEG4/ISO/AVCX")), "no H.264 or H.265 video track"),
    (entry_edit(lambda e: e.children.append(El(0x6D80, children=[El(0x6240, children=[
        El(0x5034, children=[El(0x4254, b"\x03"), El(0x4255, b"\x00\x00\x00\x01")])])]))), "ContentEncodings"),
    (entry_edit(lambda e: e.children.append(El(0x6D80, children=[El(0x6240, children=[
        El(0x5033, b"\x01"), El(0x5035, children=[El(0x47E1, b"\x05")])])]))), "ContentEncodings"),
    (entry_edit(set_child(0x56AA, uint(1000000))), "CodecDelay"),
    (entry_edit(set_child(0x23314F, b"\x40\x00\x00\x00")), "TrackTimestampScale 2.0"),
    (entry_edit(set_child(0xB9, b"\x00")), "disabled"),
    (entry_edit(lambda e: e.children.remove(e.first(0x63A2))), "no CodecPrivate"),
    (entry_edit(lambda e: e.children.append(El(0x6FAB, uint(2)))), "neither FFmpeg nor RFC 9559"),  # TrackOverlay
    (entry_edit(lambda e: e.children.extend(El(0x22B59D, b"en") for _ in range(4))), "4 in a row unknown"),
    (entry_edit(lambda e: e.children.append(El(0x41E4, children=[El(0x41E7, uint(0x64766343))]))),
     "BlockAdditionMapping"),
    (entry_edit(lambda e: e.first(0xE0).children.remove(e.first(0xE0).first(0xBA))), "PixelHeight"),
    (lambda d: setattr(d.element(INFO).first(0x2AD7B1), "payload", b"\x00"), "TimestampScale 0"),
    (lambda d: setattr(d.element(TRACKS), "unknown", True), "unknown size"),
    (lambda d: setattr(d.element(TRACKS).find(TRACK_ENTRY)[1], "size", 10 ** 6), "running past its parent"),
    (lambda d: d.segment.children.insert(2, El(0x1C53BB6C, bytes(8))), "in the Segment"),
    (lambda d: d.segment.children.insert(2, El(0x1043A770, children=[El(0x45B9, children=[El(0x45DD, b"\x01")])])),
     "ordered edition"),
])
def test_refused_before_the_first_sample(doc: Doc, edit: Callable[[Doc], None], why: str) -> None:
    edit(doc)
    assert why in refused(bytes(doc))


def test_a_tolerated_element_is_read_past(doc: Doc) -> None:
    doc.track_entry().children.append(El(0x22B59D, b"en-US"))  # LanguageBCP47: unknown to FFmpeg, harmless
    infos, samples, defects = split(events_of(bytes(doc)))
    assert len(samples) == 50 and not defects


def test_an_image_attachment_is_another_video_track(doc: Doc) -> None:
    attachment = El(0x1941A469, children=[El(0x61A7, children=[
        El(0x466E, b"cover.jpg"), El(0x4660, b"image/jpeg"), El(0x465C, b"\xff\xd8\xff\xd9"), El(0x46AE, uint(7))])])
    before = Doc(bytes(doc))
    before.segment.children.insert(before.segment.children.index(before.clusters()[0]), attachment)
    info = split(events_of(bytes(before)))[0][0]
    assert info.other_video and "attached picture, image/jpeg" in info.others[-1]
    doc.segment.children.append(attachment)  # after the Clusters
    assert "attached picture" in last_defect(bytes(doc)).text


def test_seekhead_entries_must_point_at_what_this_reading_sees(doc: Doc) -> None:
    """A SeekHead entry FFmpeg follows on a file must land on an element of its ID: here, a
    Tracks hidden in a Void, which a reader going front to back never sees."""
    hidden = Doc(bytes(doc)).element(TRACKS).encode()
    void = El(VOID, bytes(16) + hidden)
    doc.segment.children.insert(doc.segment.children.index(doc.clusters()[0]), void)
    seek = El(0x4DBB, children=[El(0x53AB, uint(0x1254C367, 4)), El(0x53AC, bytes(8))])
    doc.element(SEEKHEAD).children.append(seek)
    data = bytes(doc)
    offset = data.index(hidden) - (data.index(b"\x18\x53\x80\x67") + 12)
    seek.first(0x53AC).payload = offset.to_bytes(8, "big")
    assert "SeekHead entry points at byte %d for Tags" % (data.index(hidden)) in refused(bytes(doc))
    seek.first(0x53AC).payload = (len(data) * 2).to_bytes(8, "big")  # past the end: known at the end
    defect = last_defect(bytes(doc))
    assert defect.fatal and "past the end of the input" in defect.text


def cue_at(doc: Doc, position: Optional[int] = None) -> El:
    """A CuePoint appended to the Cues, pointing at ``position`` (patched in by the caller when None)."""
    where = El(0xB7, children=[El(0xF7, b"\x01"), El(0xF1, bytes(8))])
    doc.element(CUES).children.append(El(0xBB, children=[El(0xB3, uint(99999)), where]))
    if position is not None:
        where.first(0xF1).payload = position.to_bytes(8, "big")
    return where


def test_cues_must_point_at_clusters_this_reading_sees(files: Dict[str, Path]) -> None:
    """A player seeking through the Cues starts reading where they point: here, a Cluster hidden
    in a Void, which a reader going front to back never sees."""
    doc = Doc(files["ffmpeg-aac"].read_bytes())
    hidden = Doc(bytes(doc)).clusters()[1].encode()
    doc.segment.children.insert(doc.segment.children.index(doc.element(CUES)), El(VOID, bytes(8) + hidden))
    where = cue_at(doc)
    data = bytes(doc)
    where.first(0xF1).payload = (data.rindex(hidden) - (data.index(b"\x18\x53\x80\x67") + 12)).to_bytes(8, "big")
    infos, samples, defects = split(events_of(bytes(doc)))
    assert len(samples) == 50 and defects[-1].fatal and "where this reading saw no Cluster" in defects[-1].text
    ahead = Doc(files["ffmpeg-cues-first"].read_bytes())  # Cues before the Clusters: checked as Clusters come
    where = cue_at(ahead)
    where.target = ahead.clusters()[1]
    assert len(split(events_of(bytes(ahead)))[1]) == 50
    where.target = None
    data = bytes(ahead)
    where.first(0xF1).payload = (data.index(ahead.clusters()[1].encode()) - (data.index(b"\x18\x53\x80\x67") + 12)
                                 - 1).to_bytes(8, "big")
    infos, samples, defects = split(events_of(bytes(ahead)))
    assert defects[-1].fatal and "where this reading saw no Cluster" in defects[-1].text and len(samples) < 50


def first_video_block(d: Doc, index: int = 0) -> El:
    return [b for b in video_blocks(d) if b.payload[0] == 0x81][index]


def lace(block: El, lacing: int, header: bytes) -> None:
    block.payload = block.payload[:3] + bytes([block.payload[3] | lacing << 1]) + header + block.payload[4:]


def uneven_fixed_lace(block: El) -> None:
    """Fixed-size lacing with a lace count that does not divide the frame: FFmpeg fails on it."""
    size = len(block.payload) - 4 + 1
    laces = next(n for n in range(2, 9) if (size - 1) % n)
    lace(block, 2, bytes([laces - 1]))


def cluster_blocks(d: Doc, cluster: int) -> List[El]:
    return [e for e in d.clusters()[cluster].children or [] if e.id == SIMPLE_BLOCK and e.payload[0] == 0x81]


def timestamp_after_first_block(d: Doc) -> None:
    children = d.clusters()[1].children or []
    timestamp = d.clusters()[1].first(TIMESTAMP)
    children.remove(timestamp)
    children.insert(children.index(cluster_blocks(d, 1)[0]) + 1, timestamp)


@pytest.mark.parametrize("edit, why, fatal, reason", [
    (lambda d: lace(first_video_block(d, 3), 1, b"\x00"), "lacing on the video track", False, "framing"),
    (lambda d: lace(first_video_block(d, 3), 3, b"\x01\xff"), "lacing on the video track", False, "framing"),
    (lambda d: lace(first_video_block(d, 3), 3, b"\x01\x10\xff\xff\xff"), "EBML lace sizes", True, "framing"),
    (lambda d: uneven_fixed_lace(first_video_block(d, 3)), "fixed-size laces", True, "framing"),
    (lambda d: block_flags(first_video_block(d, 3), set_bits=0x08), "invisible frame", False, "framing"),
    (lambda d: block_flags(first_video_block(d, 3), set_bits=0x20), "reserved block flag bits", False, "framing"),
    (lambda d: setattr(first_video_block(d, 3), "payload", b"\x85" + first_video_block(d, 3).payload[1:]),
     "track 5, which no TrackEntry has", True, "framing"),
    (lambda d: setattr(first_video_block(d, 3), "size", 10 ** 6), "running past its Cluster", True, "framing"),
    (lambda d: setattr(first_video_block(d, 3), "unknown", True), "unknown size in a Cluster", True, "framing"),
    (lambda d: setattr(d.clusters()[1], "unknown", True), "Cluster of unknown size in a Segment of known size",
     True, "framing"),
    (lambda d: d.clusters()[1].children.append(El(TIMESTAMP, uint(5000))), "a second Timestamp", True, "framing"),
    (lambda d: setattr(d.clusters()[1].first(TIMESTAMP), "payload", uint(1 << 53, 8)), "through a double", True,
     "framing"),
    (timestamp_after_first_block, "before its Cluster's Timestamp", False, "timing"),
    (lambda d: setattr(d.clusters()[0].first(TIMESTAMP), "payload", b"\x00") or setattr(
        first_video_block(d, 0), "payload", b"\x81\xff\xff" + first_video_block(d, 0).payload[3:]),
     "before time 0", False, "timing"),
    (lambda d: d.clusters()[1].children.append(El(0xAF, bytes(8))), "in a Cluster", True, "framing"),
    (lambda d: d.clusters()[1].children.append(El(TRACKS, children=[])), "a Tracks inside a Cluster", True,
     "framing"),
    (lambda d: d.segment.children.append(Doc(bytes(d)).element(TRACKS)), "Tracks after the first Cluster", True,
     "framing"),
    (lambda d: d.top.append(El(0xEC, bytes(3))), "bytes after the end of the Segment", True, "framing"),
])
def test_refused_in_the_clusters(doc: Doc, edit: Callable[[Doc], None], why: str, fatal: bool, reason: str) -> None:
    edit(doc)
    infos, samples, defects = split(events_of(bytes(doc)))
    assert infos and samples and defects
    assert why in defects[0].text, defects
    assert (defects[0].fatal, defects[0].reason) == (fatal, reason)
    if fatal:
        assert len(defects) == 1  # it stops there


def group(block: El, *more: El) -> El:
    return El(BLOCK_GROUP, children=[El(0xA1, block.payload[:3] + bytes([block.payload[3] & 0x0F])
                                        + block.payload[4:]), *more])


@pytest.mark.parametrize("extra, why, reason", [
    ([El(0x9B, uint(0))], "BlockDuration of 0", "timing"),
    ([El(0x75A1, children=[El(0xA6, children=[El(0xEE, uint(4)), El(0xA5, b"\xb5\x00\x3c\x00\x01\x04")])])],
     "BlockAdditions", "framing"),
    ([El(0xA4, b"\x01\x02")], "CodecState", "framing"),
    ([El(0xA1, b"\x81\x00\x00\x00\x00\x00\x00\x01\x09")], "2 Blocks", "framing"),
])
def test_blockgroup_refusals(doc: Doc, extra: List[El], why: str, reason: str) -> None:
    cluster = doc.clusters()[1]
    block = cluster_blocks(doc, 1)[2]
    cluster.children[cluster.children.index(block)] = group(block, *extra)
    defect = last_defect(bytes(doc))
    assert why in defect.text and defect.reason == reason and not defect.fatal


def test_lacing_of_other_tracks_is_checked_as_ffmpeg_reads_it(doc: Doc) -> None:
    audio = [b for b in video_blocks(doc) if b.payload[0] == 0x82][4]
    lace(audio, 1, b"\x01\xff\xff\xff\xff")  # Xiph sizes adding up past the block
    defect = last_defect(bytes(doc))
    assert defect.fatal and "Xiph lace sizes" in defect.text


def test_lace_checks_follow_ffmpeg() -> None:
    assert matroska.lace_problem(b"\x02\x01\x01" + bytes(5), 1) == ""
    assert matroska.lace_problem(b"\x01\xff\x00" + bytes(255), 1) == ""
    assert "past" in matroska.lace_problem(b"\x01\xff\x00" + bytes(254), 1)
    assert matroska.lace_problem(b"\x02" + bytes(9), 2) == ""
    assert matroska.lace_problem(b"\x02\x82\xbf" + bytes(9), 3) == ""  # sizes 2, 2 (difference 0), 5
    assert "range" in matroska.lace_problem(b"\x02\x82\x80" + bytes(9), 3)  # a difference of -63


def test_cut_short(files: Dict[str, Path]) -> None:
    data = files["ffmpeg-raw-h264"].read_bytes()
    cluster = data.index(b"\x1f\x43\xb6\x75")
    assert "the input ends" in refused(data[:cluster])
    infos, samples, defects = split(events_of(data[:len(data) // 2]))
    assert 0 < len(samples) < 50 and defects[-1].fatal and "ends" in defects[-1].text


def test_large_frames_and_indexes_are_refused_not_read(doc: Doc, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(doc)
    monkeypatch.setattr(matroska, "MAX_SAMPLE_BYTES", 3000)
    _, samples, defects = split(events_of(data))
    assert defects and all("over 3000" in d.text for d in defects) and len(samples) == 48
    monkeypatch.setattr(matroska, "MAX_INDEX_BYTES", 100)
    assert "over the 100 bytes an index may take" in refused(data)


def test_what_is_kept_of_an_element_is_bounded(doc: Doc, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many attachments, a long SeekHead: refused past a fixed budget, never kept whole."""
    files_ = [El(0x61A7, children=[El(0x466E, b"f%d" % k), El(0x4660, b"font/ttf"), El(0x465C, b"\x00")])
              for k in range(200)]
    doc.segment.children.insert(2, El(0x1941A469, children=files_))
    monkeypatch.setattr(matroska, "MAX_KEPT", 100)
    assert "more than 100 values to keep" in refused(bytes(doc))
    monkeypatch.setattr(matroska, "MAX_SEEKHEAD_BYTES", 16)
    assert "a SeekHead of" in refused(bytes(doc))


def test_a_size_field_that_lies_allocates_nothing(files: Dict[str, Path]) -> None:
    doc = Doc(files["ffmpeg-raw-h264"].read_bytes())
    first_video_block(doc, 1).size = 60 * 1024 * 1024  # a 60 MiB frame in a 30 KiB file
    doc.clusters()[0].size = 61 * 1024 * 1024
    doc.segment.size = 62 * 1024 * 1024
    tracemalloc.start()
    try:
        events = events_of(bytes(doc))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert split(events)[2][-1].fatal
    assert peak < 4 * 1024 * 1024


# -- hypothesis: whatever the bytes, events or InputError, in bounded memory ----------------------

@pytest.fixture(scope="module")
def seeds(files: Dict[str, Path]) -> List[bytes]:
    return [files[kind].read_bytes() for kind in ("ffmpeg-aac", "live-h265-b", "pyav-h264-b")]


def mutate(data: bytes, edits: List[Tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        if not out:
            break
        at = where % len(out)
        if kind == 0:
            out[at] = value
        elif kind == 1:
            out[at:at] = bytes([value])
        elif kind == 2:
            del out[at:at + 1 + value % 16]
        elif kind == 3:  # a size field: the byte after an element ID's first byte
            out[at] = 0x01 if value & 1 else 0xFF
        else:
            del out[at:]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), edits=EDITS, near_header=st.booleans())
def test_mutants_give_events_or_input_error(seeds: List[bytes], which: int, edits: List[Tuple[int, int, int]],
                                            near_header: bool) -> None:
    data = seeds[which]
    if near_header:  # most structure is in the first KiB: EBML header, SeekHead, Info, Tracks
        edits = [(kind, where % 1024, value) for kind, where, value in edits]
    mutant = mutate(data, edits)
    tracemalloc.start()
    try:
        try:
            events = events_of(mutant)
        except InputError as error:
            assert "\n" not in str(error)
            events = []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024 + 2 * len(mutant)
    for event in events:
        assert isinstance(event, (TrackInfo, Sample, Defect))
    assert isinstance(events[0], TrackInfo) if events else True
    fatal = [k for k, e in enumerate(events) if isinstance(e, Defect) and e.fatal]
    assert not fatal or fatal[0] == len(events) - 1


def test_cut_at_every_element_boundary(files: Dict[str, Path]) -> None:
    """The input ending anywhere in or around an element's header: events or InputError."""
    data = files["ffmpeg-aac"].read_bytes()
    starts: List[int] = []

    def collect(elements: List[El], pos: int) -> None:
        for element in elements:
            starts.append(pos)
            header = len(element.encode()) - len(element.data())
            if element.children is not None:
                collect(element.children, pos + header)
            pos += len(element.encode())

    collect(parse(data), 0)
    assert bytes(b"".join(e.encode() for e in parse(data))) == data
    for start in starts:
        for cut in range(start, min(len(data), start + 16)):
            try:
                events = events_of(data[:cut])
            except InputError:
                continue
            assert isinstance(events[-1], Defect) and events[-1].fatal
