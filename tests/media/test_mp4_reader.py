"""segbind's own MP4 reader (segbind.read.mp4) on real files from real muxers, against PyAV, and
every form it refuses (docs/readers/mp4.md).

- Every accepted real file (progressive, moov first and last; fragmented from PyAV, the ffmpeg
  CLI and its HLS muxer; H.264 and H.265 as 'hvc1' and 'hev1'; with audio; CENC): the samples
  are PyAV's packets exactly (bytes, times, durations; the hidden flags are FFmpeg's discards).
- Real muxer outputs in a refused form, and hand-made mutations of real files, give the
  Defect (or InputError) that names the rule.
- Whatever the bytes (hypothesis), the reader gives events or InputError; memory stays bounded;
  a pipe giving a few bytes at a time gives the same events as a file.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import types
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import av
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segbind.errors import InputError
from segbind.read import mp4 as mp4_module
from segbind.read.decoder_config import parse_avcc, parse_hvcc
from segbind.read.events import TIMING, Defect, Event, Sample, TrackInfo
from segbind.read.mp4 import mp4_events
from segbind_core.tag import CODEC_H264, CODEC_H265
from tests.support.media import ffmpeg
from tests.support.mp4_boxes import (
    MUTATIONS,
    REFUSED_REAL,
    Box,
    as_cbcs,
    edit_moof,
    edit_moov,
    encode,
    full,
    parse,
    read_trun,
    real_files,
    write_trun,
)

Source = Union[Path, bytes]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return real_files(tmp_path_factory.mktemp("mp4-corpus"))


ACCEPTED = ["mp4-ffmpeg-bframes-edit", "mp4-ffmpeg-faststart", "mp4-ffmpeg-x264-bframes-audio",
            "mp4-ffmpeg-hvc1-audio-faststart", "mp4-pyav-bframes-ctts", "mp4-pyav-hev1-bframes-faststart",
            "fmp4-pyav-bframes", "fmp4-pyav-hev1-bframes", "fmp4-pyav-cenc", "fmp4-ffmpeg", "fmp4-ffmpeg-hvc1-audio",
            "fmp4-hls-x264-bframes", "fmp4-hls-hev1"]


class Trickle(io.RawIOBase):
    """A pipe: at most ``step`` bytes per read, and no seeking."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        super().__init__()
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def read_events(source: Source, seekable: bool = True, step: int = 0) -> List[Event]:
    """Every event of a file or bytes, read as a file (seekable) or as a pipe of ``step`` bytes."""
    data = source.read_bytes() if isinstance(source, Path) else source
    stream: Any = Trickle(data, step) if step else io.BytesIO(data)
    return list(mp4_events(stream, "input", seekable=seekable and not step))


def samples_of(events: List[Event]) -> List[Sample]:
    return [e for e in events if isinstance(e, Sample)]


def defects_of(events: List[Event]) -> List[Defect]:
    return [e for e in events if isinstance(e, Defect)]


def comparable(events: List[Event]) -> List[Tuple[Any, ...]]:
    """Events as plain values (two readings compare equal when they read the same)."""
    out: List[Tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, Sample):
            out.append(("sample", bytes(e.data), e.pts, e.dts, e.duration, e.hidden, e.sync, e.iv, e.subsamples))
        elif isinstance(e, Defect):
            out.append(("defect", e.text, e.reason, e.fatal))
        else:
            assert isinstance(e, TrackInfo)
            p = e.protection
            out.append(("track", e.codec, e.codec_name, e.length_size, e.config_units, e.timescale, e.others,
                        e.other_video, p and (p.scheme, p.default_kid, p.iv_size, p.constant_iv,
                                              p.crypt_byte_block, p.skip_byte_block)))
    return out


def pyav_packets(path: Path) -> Tuple[Any, List[Tuple[bytes, int, int, int, bool, bool]]]:
    """(what PyAV says of the video stream, its packets). The stream's fields are copied while
    the container is open: a PyAV stream read after its container closed reads freed memory."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        stream = types.SimpleNamespace(
            codec_context=types.SimpleNamespace(name=video.codec_context.name,
                                                extradata=bytes(video.codec_context.extradata or b"")),
            time_base=video.time_base)
        packets = [(bytes(p), int(p.pts), int(p.dts), int(p.duration), bool(p.is_discard), bool(p.is_keyframe))
                   for p in container.demux(video) if p.size]
        return stream, packets


def ffmpeg_shift(path: Path) -> int:
    """How far FFmpeg moves the video's times back: the media time of its one edit (read here with
    the test's own box parser), 0 with none or with an empty edit as long as that media time."""
    moov = next(b for b in parse(path.read_bytes()) if b.kind == b"moov")
    elst = moov.find(b"trak", b"edts", b"elst")
    if not elst:
        return 0
    entries = [struct.unpack_from(">Ii", elst[0].data, 8 + 12 * k) for k in range(elst[0].u32(4))]
    return 0 if entries[0][1] == -1 else entries[0][1]


# ---- real files --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ACCEPTED)
def test_real_files_read_as_pyav_reads_them(corpus: Dict[str, Path], name: str) -> None:
    path = corpus[name]
    events = read_events(path)
    assert isinstance(events[0], TrackInfo) and not defects_of(events), events[:3]
    info = events[0]
    stream, packets = pyav_packets(path)
    ours = samples_of(events)
    assert len(ours) == len(packets) == len(events) - 1
    shift = ffmpeg_shift(path)
    fragmented = name.startswith("fmp4")
    for sample, (data, pts, dts, duration, discard, key) in zip(ours, packets):
        assert (bytes(sample.data), sample.pts - shift, sample.dts - shift, sample.duration) == (data, pts, dts,
                                                                                                 duration)
        if not fragmented:  # FFmpeg flags an edit's hidden samples in progressive MP4 alone
            assert sample.hidden == discard
        else:
            assert sample.hidden == (sample.pts < shift) and not discard
        if info.protection is None:  # PyAV's parser guesses key frames in encrypted samples
            assert sample.sync == key
    codec = {"h264": CODEC_H264, "hevc": CODEC_H265}[stream.codec_context.name]
    extradata = bytes(stream.codec_context.extradata)
    if codec == CODEC_H264:
        length, sps, others = parse_avcc(extradata)
        units = sps + others
    else:
        length, units = parse_hvcc(extradata)
    assert (info.codec, info.length_size, list(info.config_units)) == (codec, length, units)
    assert stream.time_base.numerator == 1 and info.timescale == stream.time_base.denominator
    assert info.others == (("audio (mp4a)",) if "audio" in name else ())
    assert not info.other_video
    if "cenc" in name:
        assert info.protection is not None
        assert (info.protection.scheme, info.protection.default_kid.hex(), info.protection.iv_size) == (
            "cenc", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 8)
        for sample in ours:
            assert len(sample.iv) == 8 and sample.subsamples
            assert sum(clear + protected for clear, protected in sample.subsamples) == len(sample.data)
    else:
        assert info.protection is None and all(s.iv == b"" and s.subsamples is None for s in ours)


def test_ffmpeg_remux_of_bframes_hides_what_its_edit_list_hides(corpus: Dict[str, Path]) -> None:
    """`ffmpeg -r 30 -i raw.h264 -c copy x.mp4` on a B-frame stream: pts = dts, and an edit list
    whose media time hides the first two samples (PyAV flags them discarded)."""
    path = corpus["mp4-ffmpeg-bframes-edit"]
    ours = samples_of(read_events(path))
    _, packets = pyav_packets(path)
    assert [s.hidden for s in ours] == [p[4] for p in packets] == [True, True] + [False] * (len(ours) - 2)
    assert all(s.pts == s.dts for s in ours)


@pytest.mark.parametrize("name", sorted(REFUSED_REAL))
def test_real_muxer_outputs_in_a_refused_form(corpus: Dict[str, Path], name: str) -> None:
    events = read_events(corpus[name])
    assert isinstance(events[0], TrackInfo)
    defects = defects_of(events)
    assert defects and REFUSED_REAL[name] in defects[0].text, defects[:1]


@pytest.mark.parametrize("name", ACCEPTED)
def test_a_pipe_gives_the_events_of_a_file(corpus: Dict[str, Path], name: str) -> None:
    path = corpus[name]
    moov_last = [b.kind for b in parse(path.read_bytes())].index(b"moov") > \
        [b.kind for b in parse(path.read_bytes())].index(b"mdat")
    if moov_last:
        with pytest.raises(InputError, match="spooled to a file first"):
            read_events(path, step=5)
        return
    assert comparable(read_events(path, step=5)) == comparable(read_events(path))


def test_moov_last_reads_from_a_file_not_a_pipe(corpus: Dict[str, Path]) -> None:
    path = corpus["mp4-pyav-bframes-ctts"]
    assert len(samples_of(read_events(path))) == 50
    with pytest.raises(InputError, match=r"^input: the index \('moov'\) comes after the media"):
        read_events(path, seekable=False)


# ---- mutations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutations_are_refused_by_their_rule(corpus: Dict[str, Path], name: str) -> None:
    mutation = MUTATIONS[name]
    data = mutation.change(corpus[mutation.base].read_bytes())
    if mutation.at_init:
        with pytest.raises(InputError) as caught:
            read_events(data)
        assert mutation.refusal in str(caught.value)
        return
    piped = read_events(data, step=11)
    defects = defects_of(piped)
    assert defects and mutation.refusal in defects[0].text, (defects[:1], piped[:2])
    events = read_events(data)
    if "negative composition offset" in mutation.refusal:
        # FFmpeg, when it can seek, reads every fragment at open and moves the earlier ones by a
        # later negative offset: a file is refused whole, a pipe from that fragment on
        assert "moves every earlier picture" in defects_of(events)[0].text and defects_of(events)[0].fatal
        assert not [e for e in events if isinstance(e, Sample)]
        return
    assert comparable(piped) == comparable(events)


def test_refused_fragments_cost_only_themselves(corpus: Dict[str, Path]) -> None:
    """A fragment refused for its own reason is skipped with its 'mdat'; the next ones are read."""
    data = MUTATIONS["trun without data_offset"].change(corpus["fmp4-pyav-bframes"].read_bytes())
    events = read_events(data)
    assert [type(e).__name__ for e in events[:2]] == ["TrackInfo", "Defect"] and not events[1].fatal
    assert len(samples_of(events)) == 25 and len(defects_of(events)) == 1


def test_timing_refusals_say_timing(corpus: Dict[str, Path]) -> None:
    for name in ("two edits", "a dwell", "negative composition offset", "decode time going back"):
        mutation = MUTATIONS[name]
        defect = defects_of(read_events(mutation.change(corpus[mutation.base].read_bytes())))[0]
        assert defect.reason == TIMING, name


def _stbl(moov: Box) -> Box:
    return moov.first(b"trak", b"mdia", b"minf", b"stbl")


def _replace(parent: Box, old: bytes, new: Box) -> None:
    assert parent.children is not None
    parent.children = [new if c.kind == old else c for c in parent.children]


def _co64(moov: Box) -> None:
    stco = _stbl(moov).first(b"stco")
    count = stco.u32(4)
    offsets = [stco.u32(8 + 4 * k) for k in range(count)]
    _replace(_stbl(moov), b"stco", full(b"co64", 0, 0, struct.pack(">I", count) + b"".join(
        struct.pack(">Q", o + 4 * count) for o in offsets)))


def _stz2(moov: Box) -> None:
    stsz = _stbl(moov).first(b"stsz")
    count = stsz.u32(8)
    sizes = [stsz.u32(12 + 4 * k) for k in range(count)]
    assert max(sizes) < 1 << 16
    _replace(_stbl(moov), b"stsz", full(b"stz2", 0, 0, struct.pack(">I", 16) + struct.pack(">I", count)
                                        + b"".join(struct.pack(">H", s) for s in sizes)))


def _ctts_v1(moov: Box) -> None:
    ctts = _stbl(moov).first(b"ctts")
    ctts.set_flags(0, version=1)


def test_progressive_variants_read_alike(corpus: Dict[str, Path]) -> None:
    """'co64', 'stz2' and 'ctts' version 1 give the same samples; so does a 64-bit 'mdat' size."""
    path = corpus["mp4-pyav-hev1-bframes-faststart"]  # moov first: only chunk offsets after it move
    data = path.read_bytes()
    reference = comparable(read_events(data))
    for change in (_co64, _stz2, _ctts_v1):
        assert comparable(read_events(edit_moov(data, change))) == reference, change.__name__
    boxes = parse(data)
    at = next(k for k, b in enumerate(boxes) if b.kind == b"mdat")

    def later(moov: Box) -> None:  # the wider header moves the samples by 8
        stco = _stbl(moov).first(b"stco")
        for k in range(stco.u32(4)):
            stco.set_u32(8 + 4 * k, stco.u32(8 + 4 * k) + 8)

    moved = parse(edit_moov(data, later))
    body = moved[at].body()
    wide = encode(moved[:at]) + struct.pack(">I4sQ", 1, b"mdat", 16 + len(body)) + body + encode(moved[at + 1:])
    assert comparable(read_events(wide)) == reference
    to_end = encode(boxes[:at]) + struct.pack(">I4s", 0, b"mdat") + boxes[at].body()
    assert at == len(boxes) - 1 and comparable(read_events(to_end)) == reference


@pytest.mark.parametrize("case", ["stsz count", "stts count", "sample in the moov", "samples out of order",
                                  "stsc description 2", "moov twice", "edit ends early"])
def test_progressive_refusals(corpus: Dict[str, Path], case: str) -> None:
    data = corpus["mp4-pyav-hev1-bframes-faststart"].read_bytes()

    def stsz_count(moov: Box) -> None:
        stsz = _stbl(moov).first(b"stsz")
        stsz.set_u32(8, stsz.u32(8) - 1)
        stsz.data = stsz.data[:-4]

    def stts_count(moov: Box) -> None:
        stts = _stbl(moov).first(b"stts")
        stts.set_u32(8, stts.u32(8) + 1)

    def in_moov(moov: Box) -> None:
        stco = _stbl(moov).first(b"stco")
        stco.set_u32(8, 40)

    def out_of_order(moov: Box) -> None:  # one chunk a sample: the last two chunks swapped
        stbl = _stbl(moov)
        stsc = stbl.first(b"stsc")
        stsz, stco = stbl.first(b"stsz"), stbl.first(b"stco")
        count = stsz.u32(8)
        sizes = [stsz.u32(12 + 4 * k) for k in range(count)]
        base = stco.u32(8)
        offsets = [base + sum(sizes[:k]) for k in range(count)]
        offsets[-1], offsets[-2] = offsets[-2], offsets[-2] + sizes[-1]
        stsc.data = stsc.data[:4] + struct.pack(">IIII", 1, 1, 1, 1)
        stco.data = stco.data[:4] + struct.pack(">I", count) + b"".join(struct.pack(">I", o) for o in offsets)

    def description_2(moov: Box) -> None:
        stsc = _stbl(moov).first(b"stsc")
        stsc.set_u32(16, 2)

    def ends_early(moov: Box) -> None:
        trak = moov.first(b"trak")
        elst = trak.first(b"edts", b"elst")
        elst.set_u32(8 + 12, 1000)  # the second entry's duration: 1 s of 2
    expected = {
        "stsz count": "'stts' and 'stsz' count different samples",
        "stts count": "'stts' and 'stsz' count different samples",
        "sample in the moov": "a video sample outside any 'mdat'",
        "samples out of order": "video samples out of file order, overlapping, or outside the 'mdat'",
        "stsc description 2": "samples of sample description 2, not 1",
        "moov twice": "a second movie header ('moov')",
        "edit ends early": "a sample presented after the end of the edit list (FFmpeg discards it)",
    }[case]
    changes = {"stsz count": stsz_count, "stts count": stts_count, "sample in the moov": in_moov,
               "samples out of order": out_of_order, "stsc description 2": description_2, "edit ends early": ends_early}
    if case == "moov twice":
        boxes = parse(data)
        mutated = encode(boxes + [next(b for b in boxes if b.kind == b"moov")])
    else:
        mutated = edit_moov(data, changes[case])
    events = read_events(mutated)
    defects = defects_of(events)
    assert defects and defects[0].text == expected, defects[:1]
    if case == "edit ends early":  # the samples up to the edit's end are read; the rest refused
        assert 0 < len(samples_of(events)) < 50 and defects[0].reason == TIMING


def test_a_data_reference_count_ffmpeg_cannot_read_refuses_the_file(corpus: Dict[str, Path]) -> None:
    """A 'dref' whose entry count says more entries than it holds: FFmpeg reads that many
    (mov_read_dref) and gives up the whole header, so a player shows nothing; the reader refuses
    the file the same way, whole (found by tests/media/test_mutations.py: a flipped count byte)."""
    data = corpus["mp4-pyav-hev1-bframes-faststart"].read_bytes()

    def dref_count(moov: Box) -> None:
        dref = moov.first(b"trak", b"mdia", b"minf", b"dinf", b"dref")
        dref.prefix = dref.prefix[:4] + struct.pack(">I", 65537)

    mutated = edit_moov(data, dref_count)
    with pytest.raises(av.error.InvalidDataError):
        av.open(io.BytesIO(mutated)).close()
    with pytest.raises(InputError, match="'dref' says 65537 entries and holds 1"):
        read_events(mutated)


def test_an_edit_far_into_the_table_is_refused_without_reading_it(corpus: Dict[str, Path]) -> None:
    """Work no input byte pays for is bounded: a table of four billion one-byte samples whose edit
    list starts past them is refused after a bounded look ahead (mp4.MAX_EDIT_SCAN)."""
    data = corpus["mp4-ffmpeg-faststart"].read_bytes()

    def endless(moov: Box) -> None:
        stbl = _stbl(moov)
        many = 0xFFFFFFF0
        _replace(stbl, b"stsz", full(b"stsz", 0, 0, struct.pack(">II", 1, many)))
        _replace(stbl, b"stts", full(b"stts", 0, 0, struct.pack(">III", 1, many, 0)))
        _replace(stbl, b"stsc", full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, many, 1)))
        stco = stbl.first(b"stco")
        stco.data = stco.data[:4] + struct.pack(">II", 1, stco.u32(8))
        stbl.children = [c for c in stbl.children if c.kind != b"stss"]
        trak = moov.first(b"trak")
        trak.children = [c for c in trak.children if c.kind != b"edts"]
        trak.children.insert(1, Box(b"edts", children=[full(b"elst", 0, 0, struct.pack(">IIiI", 1, 10, 5, 0x10000))]))
    events = read_events(edit_moov(data, endless))
    assert defects_of(events)[0].text == "an edit list that starts more than 1048576 samples in"


def test_samples_a_trun_merely_claims_cost_nothing(corpus: Dict[str, Path]) -> None:
    """A 'trun' of no per-sample fields may claim four billion samples in a few bytes: it is
    checked against its 'mdat' before any sample is made (a sample is made only as it is read)."""
    def claims(moof: Box) -> None:
        traf = moof.first(b"traf")
        tfhd = traf.first(b"tfhd")
        tfhd.data = tfhd.data[:4] + struct.pack(">IIII", 1, 3600, 1, 0x01010000)
        tfhd.set_flags(0x20000 | 0x38)
        run = read_trun(traf.first(b"trun"))
        traf.children = [write_trun(run._replace(samples=[], flags=1)) if c.kind == b"trun" else c
                         for c in traf.children]
        trun = traf.first(b"trun")
        trun.set_u32(4, 0xFFFFFFFF)
    events = read_events(edit_moof(corpus["fmp4-pyav-bframes"].read_bytes(), claims))
    assert defects_of(events)[0].text == "a 'trun' whose data runs past the end of its 'mdat'"


def test_an_index_past_the_bound_is_an_input_error(corpus: Dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data = corpus["mp4-ffmpeg-faststart"].read_bytes()
    moov = next(b for b in parse(data) if b.kind == b"moov")
    monkeypatch.setattr(mp4_module, "MAX_INDEX_BYTES", len(moov.encode()) - 1)
    with pytest.raises(InputError, match=r"its index \('moov', \d+ bytes\) is larger than"):
        read_events(data)
    monkeypatch.setattr(mp4_module, "MAX_INDEX_BYTES", len(moov.encode()))
    assert len(samples_of(read_events(data))) == 50


def test_cut_short(corpus: Dict[str, Path]) -> None:
    for name in ("fmp4-pyav-bframes", "mp4-ffmpeg-faststart"):
        data = corpus[name].read_bytes()
        whole = samples_of(read_events(data))
        events = read_events(data[:len(data) * 2 // 3])
        assert isinstance(events[-1], Defect) and events[-1].fatal
        assert comparable(samples_of(events)) == comparable(whole[:len(samples_of(events))])
        moov_end = data.index(b"moov") - 4 + int.from_bytes(data[data.index(b"moov") - 4:data.index(b"moov")], "big")
        with pytest.raises(InputError, match="cut short|'moov'"):
            read_events(data[:moov_end - 1])


def test_other_video_and_no_video(corpus: Dict[str, Path], tmp_path: Path) -> None:
    two = tmp_path / "two.mp4"
    a = corpus["mp4-ffmpeg-faststart"]
    ffmpeg("-i", str(a), "-i", str(a), "-map", "0:v", "-map", "1:v", "-c", "copy", str(two))
    info = read_events(two)[0]
    assert isinstance(info, TrackInfo) and info.other_video and info.others == ("video (avc1)",)
    audio = tmp_path / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio))
    with pytest.raises(InputError, match=r"no H.264 or H.265 video \(audio only: mp4a\)"):
        read_events(audio)


# ---- whatever the bytes ------------------------------------------------------------------------

def _mutant(data: bytes, action: Tuple[str, int, int]) -> bytes:
    """One mutation: a bit flipped (anywhere, or in the first bytes of a box: headers, index
    fields), a box's size changed, the file cut, four bytes of a box zeroed."""
    kind, where, value = action
    if not data:
        return data
    boxes = _box_starts(data)
    if kind in ("flip", "flip-box"):
        at = where % len(data) if kind == "flip" or not boxes else min(
            len(data) - 1, boxes[where % len(boxes)] + value % 40)
        return data[:at] + bytes([data[at] ^ (1 << (where % 8))]) + data[at + 1:]
    if kind == "resize" and boxes:
        at = boxes[where % len(boxes)]
        size = int.from_bytes(data[at:at + 4], "big")
        return data[:at] + ((size + value - 16) & 0xFFFFFFFF).to_bytes(4, "big") + data[at + 4:]
    if kind == "cut":
        return data[:len(data) - where % (len(data) // 4 + 1)]
    if kind == "zero" and boxes:
        at = boxes[where % len(boxes)] + 8 + value % 24
        return data[:at] + bytes(4) + data[at + 4:]
    return data


def _box_starts(data: bytes) -> List[int]:
    """Where every box of the file starts (containers descended), for mutations that hit headers."""
    out = []

    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size = int.from_bytes(data[pos:pos + 4], "big")
            kind = data[pos + 4:pos + 8]
            if size < 8 or pos + size > end:
                return
            out.append(pos)
            skip = {b"stsd": 8, b"avc1": 78, b"hev1": 78, b"hvc1": 78, b"encv": 78}.get(kind, 0)
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"moof", b"traf", b"sinf",
                        b"schi", b"stsd", b"avc1", b"hev1", b"hvc1", b"encv"):
                walk(pos + 8 + skip, pos + size)
            pos += size
    walk(0, len(data))
    return out


ACTIONS = st.lists(st.tuples(st.sampled_from(["flip", "flip-box", "resize", "cut", "zero"]), st.integers(0, 1 << 20),
                             st.integers(0, 32)), min_size=1, max_size=3)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(ACCEPTED), actions=ACTIONS, pipe=st.booleans())
def test_whatever_the_bytes_only_events_or_input_error(corpus: Dict[str, Path], name: str,
                                                       actions: List[Tuple[str, int, int]], pipe: bool) -> None:
    data = corpus[name].read_bytes()
    for action in actions:
        data = _mutant(data, action)
    try:
        events = read_events(data, step=13 if pipe else 0)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("input: ")
        event("InputError")
        return
    defects = defects_of(events)
    event("refused: " + defects[0].text[:40] if defects else "read clean")
    assert isinstance(events[0], TrackInfo)
    for e in events[1:]:
        assert isinstance(e, (Sample, Defect))
        if isinstance(e, Defect):
            assert e.text and "\n" not in e.text
    fatal = [k for k, e in enumerate(events) if isinstance(e, Defect) and e.fatal]
    assert not fatal or fatal[0] == len(events) - 1  # a fatal defect is the last event
    if not pipe:
        assert comparable(read_events(data, step=13)) == comparable(events) if b"moov" in data[:64] else True


def _long_fmp4(data: bytes, copies: int) -> bytes:
    """A real fMP4 with its fragments repeated, each copy's decode times moved on: a long stream."""
    boxes = parse(data)
    head = boxes[:[b.kind for b in boxes].index(b"moof")]
    pairs = [(boxes[k], boxes[k + 1]) for k, b in enumerate(boxes) if b.kind == b"moof"]
    samples = samples_of(read_events(data))
    span = samples[-1].dts + samples[-1].duration - samples[0].dts
    out = [encode(head)]
    for copy in range(copies):
        for moof, mdat in pairs:
            tfdt = moof.first(b"traf", b"tfdt")
            original = tfdt.data
            tfdt.data = original[:4] + struct.pack(">Q", struct.unpack_from(">Q", original, 4)[0] + copy * span)
            out.append(moof.encode() + mdat.encode())
            tfdt.data = original
    return b"".join(out)


def test_memory_is_bounded_on_long_inputs(corpus: Dict[str, Path], tmp_path: Path) -> None:
    big_fmp4 = tmp_path / "long.mp4"
    big_fmp4.write_bytes(_long_fmp4(corpus["fmp4-pyav-bframes"].read_bytes(), 400))
    big_mp4 = tmp_path / "long-progressive.mp4"
    ffmpeg("-stream_loop", "300", "-r", "25", "-i", str(corpus["mp4-ffmpeg-faststart"]), "-c", "copy",
           "-movflags", "+faststart", str(big_mp4))
    for path, count in ((big_fmp4, 400 * 50), (big_mp4, 301 * 50)):
        size = path.stat().st_size
        assert size > 8_000_000
        tracemalloc.start()
        try:
            with open(path, "rb") as stream:
                seen = 0
                for event in mp4_events(stream, "long", seekable=False):
                    assert not isinstance(event, Defect), event
                    seen += isinstance(event, Sample)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert seen == count
        assert peak < size // 20, (path.name, peak, size)


def test_cbcs_with_a_pattern(corpus: Dict[str, Path]) -> None:
    data = corpus["fmp4-pyav-cenc"].read_bytes()
    events = read_events(as_cbcs(data))
    info = events[0]
    assert isinstance(info, TrackInfo) and info.protection is not None and not defects_of(events)
    p = info.protection
    assert (p.scheme, p.crypt_byte_block, p.skip_byte_block, p.iv_size) == ("cbcs", 1, 9, 8)
    assert comparable(samples_of(events)) == comparable(samples_of(read_events(data)))


def test_boxes_that_carry_nothing_for_decoders_change_nothing(corpus: Dict[str, Path]) -> None:
    """'pssh' in the 'moov' and in a 'moof' (EME's init data), 'emsg', 'prft', 'free' and 'sidx'
    between fragments: the same events."""
    data = corpus["fmp4-pyav-cenc"].read_bytes()
    reference = comparable(read_events(data))
    pssh = full(b"pssh", 0, 0, bytes(range(16)) + struct.pack(">I", 4) + b"data")

    def moov(box: Box) -> None:
        assert box.children is not None
        box.children.append(pssh)

    def moof(box: Box) -> None:
        assert box.children is not None
        box.children.append(pssh)

    changed = edit_moof(edit_moov(data, moov), moof, which=1)
    boxes = parse(changed)
    at = [k for k, b in enumerate(boxes) if b.kind == b"moof"][1]
    extra = [full(b"emsg", 0, 0, b"urn:x\0v\0" + bytes(16)), full(b"prft", 0, 0, bytes(16)), Box(b"free", b"xx"),
             full(b"sidx", 0, 0, bytes(24))]
    changed = encode(boxes[:at] + extra + boxes[at:])
    assert comparable(read_events(changed)) == reference
    assert comparable(read_events(changed, step=9)) == reference


def test_dts_over_two_to_the_53_is_refused(corpus: Dict[str, Path]) -> None:
    def far(moof: Box) -> None:
        tfdt = moof.first(b"traf", b"tfdt")
        tfdt.data = tfdt.data[:4] + struct.pack(">Q", 1 << 53)
    events = read_events(edit_moof(corpus["fmp4-pyav-bframes"].read_bytes(), far))
    assert defects_of(events)[0].text == "a decode time past 2^53 ticks (hls.js reads it as a double)"


def test_size_zero_and_wide_boxes_in_fragments(corpus: Dict[str, Path]) -> None:
    data = corpus["fmp4-ffmpeg"].read_bytes()
    boxes = parse(data)
    last = boxes[-1]
    assert last.kind == b"mfra"
    cut = encode(boxes[:-2]) + struct.pack(">I4s", 0, b"mdat") + boxes[-2].body()
    defects = defects_of(read_events(cut))
    assert defects and defects[0].text.startswith("'mdat' has size 0") and defects[0].fatal
