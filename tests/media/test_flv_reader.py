"""segbind's own FLV reader (segbind.read.flv) against real files and hand-made mutants.

Real files: Debian ffmpeg 5.1 ``-c copy`` from raw Annex-B and from MP4 (B-frames on and off,
with an AAC track) and PyAV's FLV muxer, H.264 (codec 7) and H.265 (enhanced RTMP 'hvc1', which
PyAV's FFmpeg 8 writes and ffmpeg 5.1 cannot): the reader's samples are PyAV's packets, byte for
byte, pts and dts. Each refusal is a mutation made with a small tag editor (``Flv``).
Hypothesis mutates real files: only events or InputError, in bounded memory. A pipe that gives
a few bytes per read gives the same events as the file.
"""

from __future__ import annotations

import fractions
import io
import struct
import subprocess
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind.errors import InputError
from segbind.read.events import Defect, Event, Sample, TrackInfo
from segbind.read.flv import amf_end, colour_info_problem, flv_events, keyframe_positions
from segbind.write import remux_annexb
from tests.support.media import FFMPEG, ffmpeg

AUDIO, VIDEO, SCRIPT = 8, 9, 18


class Tag:
    """One FLV tag: its first byte (type and flags), timestamp (with the extended byte), stream
    ID and body; ``trailer``: its PreviousTagSize when it is to lie."""

    def __init__(self, first: int, timestamp: int, body: bytes, extended: int = 0, stream_id: int = 0) -> None:
        self.first = first
        self.timestamp = timestamp
        self.extended = extended
        self.stream_id = stream_id
        self.body = body
        self.trailer: Optional[int] = None

    @property
    def kind(self) -> int:
        return self.first & 0x1F

    def encode(self) -> bytes:
        head = (bytes([self.first]) + len(self.body).to_bytes(3, "big") + self.timestamp.to_bytes(3, "big")
                + bytes([self.extended]) + self.stream_id.to_bytes(3, "big"))
        trailer = len(self.body) + 11 if self.trailer is None else self.trailer
        return head + self.body + trailer.to_bytes(4, "big")


class Flv:
    """An FLV file as its header and tags: edit ``tags``, then ``bytes()``."""

    def __init__(self, data: bytes) -> None:
        self.header = data[:13]
        self.tags: List[Tag] = []
        pos = 13
        while pos + 11 <= len(data):
            size = int.from_bytes(data[pos + 1:pos + 4], "big")
            self.tags.append(Tag(data[pos], int.from_bytes(data[pos + 4:pos + 7], "big"),
                                 data[pos + 11:pos + 11 + size], data[pos + 7]))
            pos += 11 + size + 4

    def video(self) -> List[Tag]:
        return [t for t in self.tags if t.kind == VIDEO]

    def frames(self) -> List[Tag]:
        """The video tags carrying coded frames (not sequence headers or metadata)."""
        return [t for t in self.video() if (t.body[1] == 1 if not t.body[0] & 0x80 else t.body[0] & 0x0F in (1, 3))]

    def __bytes__(self) -> bytes:
        return self.header + b"".join(t.encode() for t in self.tags)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    work = tmp_path_factory.mktemp("flv")
    out = {}
    raw = {"h264": clips.encode_pyav(frames=50, gop=25), "h264-b": clips.encode_pyav(frames=50, gop=25, bframes=2),
           "h265": clips.encode_pyav_h265(frames=50, gop=25),
           "h265-b": clips.encode_pyav_h265(frames=50, gop=25, bframes=2)}
    for kind, data in raw.items():
        source = work / ("%s.%s" % (kind, "h264" if kind.startswith("h264") else "h265"))
        source.write_bytes(data)
        out["pyav-" + kind] = work / ("pyav-%s.flv" % kind)
        remux_annexb(str(source), str(out["pyav-" + kind]), "flv")
        if kind.startswith("h264"):
            mp4 = work / ("%s.mp4" % kind)
            remux_annexb(str(source), str(mp4), "mp4")
            out["ffmpeg-mp4-" + kind] = work / ("ffmpeg-mp4-%s.flv" % kind)
            ffmpeg("-i", str(mp4), "-c", "copy", str(out["ffmpeg-mp4-" + kind]))
    out["raw-h265"] = work / "h265.h265"
    out["ffmpeg-keyframe-index"] = work / "ffmpeg-keyframe-index.flv"  # onMetaData with a keyframes index
    ffmpeg("-r", "25", "-i", str(work / "h264.h264"), "-c", "copy", "-flvflags", "add_keyframe_index",
           str(out["ffmpeg-keyframe-index"]))
    out["ffmpeg-raw-h264"] = work / "ffmpeg-raw-h264.flv"
    ffmpeg("-r", "25", "-i", str(work / "h264.h264"), "-c", "copy", str(out["ffmpeg-raw-h264"]))
    out["ffmpeg-aac"] = work / "ffmpeg-aac.flv"
    ffmpeg("-r", "25", "-i", str(work / "h264.h264"), "-f", "lavfi", "-i", "sine=d=2", "-c:v", "copy", "-c:a", "aac",
           "-shortest", str(out["ffmpeg-aac"]))
    return out


def events_of(data: bytes, name: str = "test.flv") -> List[Event]:
    return list(flv_events(io.BytesIO(data), name))


def split(events: List[Event]) -> Tuple[List[TrackInfo], List[Sample], List[Defect]]:
    return ([e for e in events if isinstance(e, TrackInfo)], [e for e in events if isinstance(e, Sample)],
            [e for e in events if isinstance(e, Defect)])


def pyav_packets(path: Path) -> List[Tuple[bytes, int, int, bool]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == fractions.Fraction(1, 1000)
        return [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size]


REAL = ["pyav-h264", "pyav-h264-b", "pyav-h265", "pyav-h265-b", "ffmpeg-mp4-h264", "ffmpeg-mp4-h264-b",
        "ffmpeg-raw-h264", "ffmpeg-aac", "ffmpeg-keyframe-index"]


@pytest.mark.parametrize("kind", REAL)
def test_real_files_read_as_pyav_reads_them(files: Dict[str, Path], kind: str) -> None:
    infos, samples, defects = split(events_of(files[kind].read_bytes()))
    assert not defects and len(infos) == 1 and infos[0].timescale == 1000
    assert [(bytes(s.data), s.pts, s.dts, s.sync) for s in samples] == pyav_packets(files[kind])
    if kind.endswith("-b"):
        assert any(s.pts != s.dts for s in samples)  # the composition times are read


def test_track_description(files: Dict[str, Path]) -> None:
    info = split(events_of(files["pyav-h265-b"].read_bytes()))[0][0]
    assert (info.codec, info.codec_name, info.length_size) == (2, "hevc", 4)
    assert [u[0] >> 1 & 0x3F for u in info.config_units] == [32, 33, 34]
    info = split(events_of(files["ffmpeg-aac"].read_bytes()))[0][0]
    assert (info.codec, info.others, info.other_video) == (1, ("audio (aac)",), False)


def test_ffmpeg_5_1_cannot_write_h265_flv(files: Dict[str, Path], tmp_path: Path) -> None:
    """Why H.265 FLV comes from PyAV (enhanced RTMP 'hvc1') in these tests; and ffmpeg 5.1, which
    predates enhanced FLV, reads PyAV's as codec 0 (the packet type's nibble) and decodes nothing."""
    result = subprocess.run([FFMPEG, "-v", "error", "-y", "-r", "25", "-i", str(files["raw-h265"]), "-c", "copy",
                             str(tmp_path / "x.flv")], capture_output=True, timeout=60)
    assert result.returncode != 0 and b"not compatible with flv" in result.stderr
    probe = subprocess.run([FFMPEG.replace("ffmpeg", "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(files["pyav-h265"])], capture_output=True, timeout=60)
    assert probe.stdout.strip() != b"hevc"


def test_a_pipe_gives_the_same_events_as_a_file(files: Dict[str, Path]) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data, self.pos = data, 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk = self.data[self.pos:self.pos + min(size if size >= 0 else 5, 5)]
            self.pos += len(chunk)
            return chunk

    for kind in ("ffmpeg-aac", "pyav-h265-b"):
        def text(events: List[Event]) -> List[str]:
            return [repr(e) + (bytes(e.data).hex() if isinstance(e, Sample) else "") for e in events]
        with open(files[kind], "rb") as stream:
            from_file = text(list(flv_events(stream, kind)))
        from_pipe = text(list(flv_events(Trickle(files[kind].read_bytes()), kind)))  # type: ignore[arg-type]
        assert from_pipe == from_file and len(from_file) == 51


# -- refusals ------------------------------------------------------------------------------------

@pytest.fixture()
def flv(files: Dict[str, Path]) -> Flv:
    return Flv(files["ffmpeg-aac"].read_bytes())


@pytest.fixture()
def hevc(files: Dict[str, Path]) -> Flv:
    return Flv(files["pyav-h265-b"].read_bytes())


def refused(data: bytes) -> str:
    with pytest.raises(InputError) as error:
        events_of(data)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_the_editor_round_trips(flv: Flv, files: Dict[str, Path]) -> None:
    assert bytes(flv) == files["ffmpeg-aac"].read_bytes()


def sequence_header(f: Flv) -> Tag:
    return next(t for t in f.video() if t.body[1] == 0)


def changed_avcc(f: Flv) -> bytes:
    body = bytearray(sequence_header(f).body)
    body[8] ^= 0x01  # avcC's level
    return bytes(body)


def insert_at(f: Flv, index: int, tag: Tag) -> None:
    frame = f.frames()[index]
    f.tags.insert(f.tags.index(frame), tag)


def script(name: bytes, timestamp: int = 0) -> Tag:
    return Tag(SCRIPT, timestamp, b"\x02" + len(name).to_bytes(2, "big") + name + b"\x08\x00\x00\x00\x00\x00\x00\x09")


@pytest.mark.parametrize("edit, why", [
    (lambda f: setattr(f, "header", f.header[:5] + b"\x00\x00\x00\x0d" + f.header[9:]), "DataOffset of 13"),
    (lambda f: setattr(f, "header", f.header[:9] + b"\x00\x00\x00\x0b"), "first PreviousTagSize"),
    (lambda f: setattr(f, "header", f.header[:4] + b"\x0d" + f.header[5:]), "reserved FLV header flag bits"),
    (lambda f: setattr(f.frames()[0], "body", b"\x17\x01\x00\x00\x00" + f.frames()[0].body[5:]) or f.tags.remove(
        sequence_header(f)), "a coded frame before the sequence header"),
    (lambda f: [setattr(t, "body", bytes([t.body[0] & 0xF0 | 12]) + t.body[1:]) for t in f.video()],
     "hevc (non-standard codec id 12)"),
    (lambda f: [setattr(t, "body", bytes([t.body[0] & 0xF0 | 2]) + t.body[1:]) for t in f.video()], "h263"),
    (lambda f: setattr(sequence_header(f), "body", sequence_header(f).body[:5] + b"\x02"), "invalid avcC"),
    (lambda f: setattr(f.tags[1], "trailer", 7), "a PreviousTagSize of 7"),
    (lambda f: setattr(f.tags[0], "extended", 1), "extended byte"),
    (lambda f: setattr(f.tags[0], "first", 0x32), "filtered"),
])
def test_refused_before_the_first_sample(flv: Flv, edit: Callable[[Flv], None], why: str) -> None:
    edit(flv)
    assert why in refused(bytes(flv))


@pytest.mark.parametrize("edit, why, fatal, reason", [
    (lambda f: insert_at(f, 10, Tag(VIDEO, 400, changed_avcc(f))), "sequence header changes mid-stream", True,
     "framing"),
    (lambda f: setattr(f.frames()[10], "trailer", 3), "PreviousTagSize of 3", True, "framing"),
    (lambda f: setattr(f.frames()[10], "trailer", len(f.frames()[10].body) + 10), "PreviousTagSize", True,
     "framing"),
    (lambda f: setattr(f.frames()[10], "extended", 1), "extended byte", False, "timing"),
    (lambda f: setattr(f.frames()[10], "stream_id", 1), "StreamID 1", False, "framing"),
    (lambda f: setattr(f.frames()[10], "first", 0x29), "filtered", False, "framing"),
    (lambda f: insert_at(f, 10, Tag(15, 400, b"\x00\x01")), "a tag of type 15", False, "framing"),
    (lambda f: insert_at(f, 10, Tag(VIDEO, 400, b"\x22" + bytes(8))), "another codec", True, "framing"),
    (lambda f: insert_at(f, 10, Tag(VIDEO, 400, b"\x27\x02\x00\x00\x00\x00\x00\x00\x02\x09\xf0")),
     "end of sequence tag carrying 6 bytes", False, "framing"),
    (lambda f: insert_at(f, 10, Tag(VIDEO, 400, b"\x27\x03\x00\x00\x00\x00\x00\x00\x02\x09\xf0")),
     "video packet type of 3", False, "framing"),
    (lambda f: setattr(f.frames()[10], "body", b"\x37" + f.frames()[10].body[1:]), "video frame type of 3", False,
     "framing"),
    (lambda f: setattr(f.frames()[10], "body", f.frames()[10].body[:2] + b"\x0d\xbb\xa1" + f.frames()[10].body[5:]),
     "composition time of 900001", False, "framing"),
    (lambda f: setattr(f.frames()[10], "body", f.frames()[10].body[:3]), "too short for its header", True,
     "framing"),
    (lambda f: insert_at(f, 10, script(b"onTextData", 400)), "a script tag FFmpeg reads as a stream", True, "framing"),
    (lambda f: insert_at(f, 10, script(b"onMetaData", 400)), "a script tag FFmpeg reads as a stream", True, "framing"),
])
def test_refused_after_the_first_sample(flv: Flv, edit: Callable[[Flv], None], why: str, fatal: bool,
                                        reason: str) -> None:
    edit(flv)
    infos, samples, defects = split(events_of(bytes(flv)))
    assert infos and samples and defects
    assert why in defects[0].text, defects
    assert defects[0].fatal == fatal
    if fatal:
        assert len(defects) == 1 and isinstance(events_of(bytes(flv))[-1], Defect)


def test_what_is_read_past(flv: Flv) -> None:
    """The same sequence header again, an empty end of sequence, a command frame, metadata at 0:
    every reader reads past them alike."""
    insert_at(flv, 10, Tag(VIDEO, 400, sequence_header(flv).body))
    insert_at(flv, 12, Tag(VIDEO, 480, b"\x17\x02\x00\x00\x00"))
    insert_at(flv, 14, Tag(VIDEO, 560, b"\x57\x00"))
    flv.tags.insert(1, script(b"onCuePoint"))
    infos, samples, defects = split(events_of(bytes(flv)))
    assert len(samples) == 50 and not defects


def test_other_tracks_are_reported(files: Dict[str, Path]) -> None:
    f = Flv(files["ffmpeg-raw-h264"].read_bytes())
    f.tags.insert(1, script(b"onCaption"))
    f.tags.insert(1, script(b"onCaption", 0))
    assert split(events_of(bytes(f)))[0][0].others == ("data (script tag 'onCaption')",)
    for k in range(70):
        f.tags.insert(1, script(b"name%d" % k))
    assert "more than 64 other streams" in refused(bytes(f))
    f = Flv(files["ffmpeg-raw-h264"].read_bytes())
    f.header = f.header[:4] + b"\x05" + f.header[5:]  # announces audio, which never comes
    assert split(events_of(bytes(f)))[0][0].others == ("audio (flv)",)
    f = Flv(files["ffmpeg-raw-h264"].read_bytes())
    insert_at(f, 20, Tag(AUDIO, 800, b"\xaf\x01\x21\x00"))
    defects = split(events_of(bytes(f)))[2]
    assert defects[-1].fatal and "audio tag after the video began" in defects[-1].text


def test_enhanced_h265_refusals(hevc: Flv) -> None:
    original = bytes(hevc)
    frame = hevc.frames()[5]
    frame.body = bytes([frame.body[0] & 0xF0 | 7]) + b"\x02\x00\x00\x00" + frame.body[1:]  # ModEx
    assert "ModEx" in split(events_of(bytes(hevc)))[2][-1].text
    hevc = Flv(original)
    hevc.frames()[5].body = bytes([0x96]) + hevc.frames()[5].body[1:]  # Multitrack
    assert "Multitrack" in split(events_of(bytes(hevc)))[2][-1].text


def test_colour_info_is_checked_as_ffmpeg_reads_it(hevc: Flv) -> None:
    metadata = next(t for t in hevc.video() if t.body[0] == 0xD4)
    assert metadata.body[5:] == b"\x02\x00\x09colorInfo\x03\x00\x0bcolorConfig\x03\x00\x00\x09\x00\x00\x09"
    assert colour_info_problem(metadata.body[5:]) == ""
    metadata.body = metadata.body[:-1]  # the outer object loses its end marker
    assert "end marker" in refused(bytes(hevc))
    assert amf_end(b"\x0a\x00\x00\x00\x02\x00" + bytes(8) + b"\x01\x01", 0, 0) == 16
    with pytest.raises(ValueError):
        amf_end(b"\x02\x04\x00" + bytes(4), 0, 0)  # a string past FFmpeg's 1024-byte buffer


def test_the_keyframes_index_must_point_at_video_tags_this_reading_sees(files: Dict[str, Path]) -> None:
    """A player seeking through onMetaData's keyframes index (FFmpeg, on a file) starts reading
    where it points: each position must be a video tag's start."""
    f = Flv(files["ffmpeg-keyframe-index"].read_bytes())
    metadata = f.tags[0]
    at = metadata.body.index(b"filepositions") + len(b"filepositions")
    positions = keyframe_positions(metadata.body, 13)
    starts, pos = [], 13
    for tag in f.tags:
        starts.append((pos, tag.kind))
        pos += len(tag.encode())
    assert len(positions) == 2 and all((p, VIDEO) in starts for p in positions)
    body = bytearray(metadata.body)
    body[at + 15:at + 23] = struct.pack(">d", positions[1] + 1)  # the second position, one byte off
    metadata.body = bytes(body)
    defects = split(events_of(bytes(f)))[2]
    assert defects[-1].fatal and "keyframes index points at byte %d" % (positions[1] + 1) in defects[-1].text
    body[at + 15:at + 23] = struct.pack(">d", 20)  # behind the metadata
    metadata.body = bytes(body)
    assert "points behind it" in refused(bytes(f))
    metadata.body = metadata.body[:-3]  # its value no longer reads whole: FFmpeg fails on it
    assert "onMetaData tag FFmpeg cannot read" in refused(bytes(f))


def test_cut_short(files: Dict[str, Path]) -> None:
    data = files["ffmpeg-raw-h264"].read_bytes()
    assert "the input ends" in refused(data[:200])
    infos, samples, defects = split(events_of(data[:len(data) // 2]))
    assert 0 < len(samples) < 50 and defects[-1].fatal


def test_a_size_field_that_lies_allocates_nothing(files: Dict[str, Path]) -> None:
    f = Flv(files["ffmpeg-raw-h264"].read_bytes())
    data = bytearray(bytes(f))
    at = data.index(f.frames()[3].encode())
    data[at + 1:at + 4] = (0xFFFFFF).to_bytes(3, "big")  # a 16 MiB tag in a 30 KiB file
    tracemalloc.start()
    try:
        defects = split(events_of(bytes(data)))[2]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert defects[-1].fatal and peak < 4 * 1024 * 1024


# -- hypothesis ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeds(files: Dict[str, Path]) -> List[bytes]:
    return [files[kind].read_bytes() for kind in ("ffmpeg-aac", "pyav-h265-b", "pyav-h264-b")]


def mutate(data: bytes, edits: List[Tuple[int, int, int]], tags_only: bool) -> bytes:
    out = bytearray(data)
    starts = [13]
    while tags_only and starts[-1] + 11 < len(data):
        starts.append(starts[-1] + 15 + int.from_bytes(data[starts[-1] + 1:starts[-1] + 4], "big"))
    for kind, where, value in edits:
        if not out:
            break
        at = (starts[where % len(starts)] + value % 16) % len(out) if tags_only else where % len(out)
        if kind == 0:
            out[at] = value
        elif kind == 1:
            out[at:at] = bytes([value])
        elif kind == 2:
            del out[at:at + 1 + value % 16]
        else:
            del out[at:]
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), tags_only=st.booleans(),
       edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1,
                      max_size=6))
def test_mutants_give_events_or_input_error(seeds: List[bytes], which: int, tags_only: bool,
                                            edits: List[Tuple[int, int, int]]) -> None:
    mutant = mutate(seeds[which], edits, tags_only)
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
    assert all(isinstance(e, (TrackInfo, Sample, Defect)) for e in events)
    assert not events or isinstance(events[0], TrackInfo)
    fatal = [k for k, e in enumerate(events) if isinstance(e, Defect) and e.fatal]
    assert not fatal or fatal[0] == len(events) - 1


def test_cut_at_every_tag_boundary(files: Dict[str, Path]) -> None:
    """The input ending anywhere in or around a tag's header and trailer: events or InputError."""
    data = files["ffmpeg-aac"].read_bytes()
    starts, pos = [], 13
    while pos + 11 <= len(data):
        starts.append(pos)
        pos += 15 + int.from_bytes(data[pos + 1:pos + 4], "big")
    for start in starts:
        size = int.from_bytes(data[start + 1:start + 4], "big")
        for cut in list(range(start, start + 16)) + list(range(start + 11 + size - 2, start + 15 + size)):
            try:
                events = events_of(data[:cut])
            except InputError:
                continue
            if cut not in starts:  # a clean end is at a tag's start; anywhere else the input is cut short
                assert isinstance(events[-1], Defect) and events[-1].fatal
