"""segbind's own MPEG-TS reader (segbind.read.mpegts) against real transport streams.

- Real TS from PyAV's muxer and from Debian's ffmpeg (``-c copy`` from MP4 and from raw
  Annex-B, HLS segments concatenated), H.264 and H.265, with AAC audio: the reader's samples
  (bytes, PTS, DTS) are PyAV's packets of the video stream, and its fast path (bulk) gives
  exactly the events of its per-packet path.
- Every refusal as a hand-made mutation of a real file (``Ts``, a small packet editor),
  asserting the Defect (or InputError) it gives; the forms every client reads one way
  (a PES header split across packets, stuffing, null packets, a 33-bit wrap, an exact
  PES_packet_length, a discontinuity_indicator) are accepted with the same samples.
- Where a rule rests on how FFmpeg reads a packet, PyAV shows it (a repeated packet's payload
  read twice, a reserved adaptation_field_control dropped).
- Hypothesis mutations of real files: events or InputError, never another exception; the
  fast path equals the per-packet path; memory stays bounded.
- A pipe giving a few bytes per read gives the events of the file.
"""

from __future__ import annotations

import fractions
import io
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind.errors import InputError
from segbind.read import mpegts
from segbind.read.events import TIMING, Defect, Event, Sample, TrackInfo
from segbind.read.mpegts import mpeg2_crc32, mpegts_events
from segbind.write import remux_annexb

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


# -- real transport streams ---------------------------------------------------------------------

def pyav_ts(codec: str, frames: int = 50, bframes: int = 0, audio: bool = True, seed: int = 1) -> bytes:
    """H.264 or H.265 (and AAC) encoded and muxed into MPEG-TS by PyAV."""
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        encoder = "libx264" if codec == "h264" else "libx265"
        video = container.add_stream(encoder, rate=25)
        video.width, video.height, video.pix_fmt = 192, 112, "yuv420p"
        if codec == "h264":
            video.options = {"x264-params": "keyint=25:min-keyint=25:scenecut=0:bframes=%d" % bframes}
        else:
            video.options = {"x265-params": "keyint=25:min-keyint=25:scenecut=0:bframes=%d:log-level=error" % bframes}
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        samples = 0
        for i in range(frames + 1):
            if i < frames:
                picture = av.VideoFrame.from_ndarray(clips._frame_rgb(i, 192, 112, seed), format="rgb24")
                picture = picture.reformat(format="yuv420p")
                picture.pts = i
                packets = video.encode(picture)
            else:
                packets = video.encode(None)
            for packet in packets:
                container.mux(packet)
            while sound is not None and samples < (i + 1) * 48000 // 25:
                tone = np.sin(np.arange(samples, samples + 1024) * 2 * np.pi * 440 / 48000).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 48000, samples, fractions.Fraction(1, 48000)
                for packet in sound.encode(frame):
                    container.mux(packet)
                samples += 1024
        if sound is not None:
            for packet in sound.encode(None):
                container.mux(packet)
    return out.getvalue()


def run_ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True, timeout=300)


SINE = ("-f", "lavfi", "-t", "3", "-i", "sine=frequency=440:sample_rate=48000")


def ffmpeg_files(work: Path) -> Dict[str, bytes]:
    """TS from Debian's ffmpeg: raw Annex-B (no B-frames) and MP4 ``-c copy``, with and without
    AAC audio, and HLS MPEG-TS segments concatenated."""
    files: Dict[str, bytes] = {}
    h264 = work / "raw.h264"
    h264.write_bytes(clips.encode_pyav(frames=60, gop=25))
    h265 = work / "raw.h265"
    h265.write_bytes(clips.encode_pyav_h265(frames=60, gop=25))
    bframes = work / "bframes.h264"
    bframes.write_bytes(clips.encode_ffmpeg(frames=60, gop=25, extra=("-bf", "2")))
    for name, raw in (("h264", h264), ("h265", h265)):
        run_ffmpeg("-r", "25", "-i", str(raw), "-c", "copy", "-f", "mpegts", str(work / (name + ".ts")))
        files["ffmpeg-annexb-" + name] = (work / (name + ".ts")).read_bytes()
        run_ffmpeg("-r", "25", "-i", str(raw), *SINE, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                   "-f", "mpegts", str(work / (name + "-aac.ts")))
        files["ffmpeg-annexb-aac-" + name] = (work / (name + "-aac.ts")).read_bytes()
    # MP4 with B-frames (segbind.write gives them times from the picture order), then ffmpeg -c copy
    mp4 = work / "bframes.mp4"
    remux_annexb(str(bframes), str(mp4), "mp4")
    run_ffmpeg("-i", str(mp4), *SINE, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-f", "mpegts",
               str(work / "mp4.ts"))
    files["ffmpeg-mp4-aac-h264"] = (work / "mp4.ts").read_bytes()
    hevc = work / "bframes.h265"
    hevc.write_bytes(clips.encode_pyav_h265(frames=60, gop=24, bframes=3, open_gop=True))
    remux_annexb(str(hevc), str(work / "hevc.mp4"), "mp4")
    run_ffmpeg("-i", str(work / "hevc.mp4"), "-c", "copy", "-f", "mpegts", str(work / "hevc-mp4.ts"))
    files["ffmpeg-mp4-h265"] = (work / "hevc-mp4.ts").read_bytes()
    for name, raw in (("h264", h264), ("h265", h265)):
        hls = work / ("hls-" + name)
        hls.mkdir()
        run_ffmpeg("-r", "25", "-i", str(raw), *SINE, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                   "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_segment_type", "mpegts",
                   "-hls_segment_filename", str(hls / "s%03d.ts"), str(hls / "live.m3u8"))
        segments = sorted(hls.glob("s*.ts"))
        assert len(segments) >= 2
        files["ffmpeg-hls-aac-" + name] = b"".join(s.read_bytes() for s in segments)
    return files


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, bytes]:
    files = ffmpeg_files(tmp_path_factory.mktemp("ts"))
    files["pyav-aac-h264"] = pyav_ts("h264")
    files["pyav-aac-bframes-h264"] = pyav_ts("h264", bframes=2)
    files["pyav-aac-h265"] = pyav_ts("h265")
    files["pyav-aac-bframes-h265"] = pyav_ts("h265", bframes=3)
    files["pyav-h264"] = pyav_ts("h264", audio=False)
    return files


@pytest.fixture(scope="module")
def base(real: Dict[str, bytes]) -> bytes:
    """The file the mutations start from: ffmpeg's TS of x264 with AAC audio."""
    return real["ffmpeg-annexb-aac-h264"]


REAL = ["ffmpeg-annexb-h264", "ffmpeg-annexb-h265", "ffmpeg-annexb-aac-h264", "ffmpeg-annexb-aac-h265",
        "ffmpeg-mp4-aac-h264", "ffmpeg-mp4-h265", "ffmpeg-hls-aac-h264", "ffmpeg-hls-aac-h265", "pyav-aac-h264",
        "pyav-aac-bframes-h264", "pyav-aac-h265", "pyav-aac-bframes-h265", "pyav-h264"]


# -- reading ------------------------------------------------------------------------------------

class Trickle(io.RawIOBase):
    """A pipe: each read gives a few bytes (1 to ``most``), never what was asked."""

    def __init__(self, data: bytes, most: int = 300, seed: int = 0) -> None:
        self.data, self.at, self.most, self.random = data, 0, most, random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = self.random.randint(1, self.most)
        if size >= 0:
            take = min(take, size)
        chunk = self.data[self.at:self.at + take]
        self.at += len(chunk)
        return chunk


def events(data: bytes, bulk: bool = True, stream: Optional[io.RawIOBase] = None) -> List[Event]:
    reader = mpegts._TsReader("test.ts", bulk=bulk)
    return list(reader.events(stream if stream is not None else io.BytesIO(data)))  # type: ignore[arg-type]


def samples(found: Sequence[Event]) -> List[Tuple[bytes, int, int]]:
    return [(bytes(e.data), e.pts, e.dts) for e in found if isinstance(e, Sample)]


def defects(found: Sequence[Event]) -> List[Defect]:
    return [e for e in found if isinstance(e, Defect)]


def pyav_packets(data: bytes) -> List[Tuple[bytes, int, int]]:
    """The video stream's packets as FFmpeg (PyAV) demuxes them: bytes, pts, dts."""
    with av.open(io.BytesIO(data), format="mpegts") as container:
        stream = container.streams.video[0]
        return [(bytes(p), int(p.pts), int(p.dts)) for p in container.demux(stream) if p.size]


def shape(found: Sequence[Event]) -> List[object]:
    """Events as comparable values."""
    out: List[object] = []
    for e in found:
        if isinstance(e, Sample):
            out.append(("sample", bytes(e.data), e.pts, e.dts, e.sync))
        elif isinstance(e, Defect):
            out.append(("defect", e.text, e.reason, e.fatal))
        else:
            out.append(("track", e.codec, e.codec_name, e.length_size, e.config_units, e.timescale, e.others,
                        e.other_video))
    return out


@pytest.mark.parametrize("kind", REAL)
def test_samples_are_pyav_packets(real: Dict[str, bytes], kind: str) -> None:
    data = real[kind]
    found = events(data)
    assert not defects(found), defects(found)
    track = found[0]
    assert isinstance(track, TrackInfo)
    assert (track.codec_name, track.length_size, track.config_units, track.timescale) == (
        "hevc" if kind.endswith("h265") else "h264", 0, (), 90000)
    assert track.others == (("audio (aac, PID 0x0101)",) if "aac" in kind else ())
    assert not track.other_video
    ours, theirs = samples(found), pyav_packets(data)
    assert len(ours) == len(theirs) >= 50
    assert ours == theirs
    assert shape(events(data, bulk=False)) == shape(found)
    assert any(e.sync for e in found if isinstance(e, Sample))


@pytest.mark.parametrize("kind", ["ffmpeg-hls-aac-h264", "pyav-aac-bframes-h265"])
def test_a_pipe_gives_the_events_of_the_file(real: Dict[str, bytes], kind: str) -> None:
    data = real[kind]
    assert shape(events(data, stream=Trickle(data, most=97))) == shape(events(data))
    assert shape(events(data, stream=Trickle(data, most=5000, seed=3))) == shape(events(data))


# -- a small packet editor ----------------------------------------------------------------------

def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2, bit by bit (independent of the reader's table)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def timestamp(prefix: int, value: int) -> bytes:
    """A PES timestamp field: 4-bit prefix, 33 bits, three marker bits."""
    value %= 1 << 33
    return bytes(((prefix << 4) | ((value >> 29) & 0x0E) | 1, (value >> 22) & 0xFF, ((value >> 14) & 0xFE) | 1,
                  (value >> 7) & 0xFF, ((value << 1) & 0xFE) | 1))


class Ts:
    """A transport stream as a list of editable 188-byte packets."""

    def __init__(self, data: bytes) -> None:
        whole = len(data) - len(data) % 188
        self.packets = [bytearray(data[i:i + 188]) for i in range(0, whole, 188)]
        self.tail = data[whole:]
        self.video = next(self.pid(p) for p in self.packets if p[1] & 0x40 and p[self.at(p):self.at(p) + 4] ==
                          b"\x00\x00\x01\xe0")
        pat = self.section(self.find(0))
        self.pmt = ((pat[10] & 0x1F) << 8) | pat[11]

    def data(self) -> bytes:
        return b"".join(bytes(p) for p in self.packets) + self.tail

    @staticmethod
    def pid(p: bytearray) -> int:
        return ((p[1] & 0x1F) << 8) | p[2]

    @staticmethod
    def at(p: bytearray) -> int:
        """Where the payload begins."""
        return 4 + (1 + p[4] if p[3] & 0x20 else 0)

    def find(self, pid: int, nth: int = 0, start: Optional[bool] = None, control: Optional[int] = None) -> int:
        found = [k for k, p in enumerate(self.packets) if self.pid(p) == pid and
                 (start is None or bool(p[1] & 0x40) == start) and (control is None or (p[3] >> 4) & 3 == control)]
        return found[nth]

    def starts(self) -> List[int]:
        return [k for k, p in enumerate(self.packets) if self.pid(p) == self.video and p[1] & 0x40]

    def plain(self, nth: int) -> int:
        """A video packet in the middle of a PES: no start, payload only."""
        return self.find(self.video, nth, start=False, control=1)

    def pes(self, nth: int) -> Tuple[int, int]:
        """The nth PES start packet and where its PES header begins."""
        k = self.starts()[nth]
        return k, self.at(self.packets[k])

    def section(self, k: int) -> bytes:
        """The table section in packet k, without its CRC."""
        p = self.packets[k]
        at = self.at(p) + 1 + p[self.at(p)]
        length = ((p[at + 1] & 0x0F) << 8) | p[at + 2]
        return bytes(p[at:at + 3 + length - 4])

    def set_section(self, k: int, body: bytes, crc: Optional[int] = None) -> None:
        """Put a section (a CRC computed unless given) in packet k, pointer_field 0, 0xFF after it."""
        p = self.packets[k]
        body = body[:1] + bytes(((body[1] & 0xF0) | ((len(body) + 1) >> 8), (len(body) + 1) & 0xFF)) + body[3:]
        whole = body + (crc32_mpeg2(body) if crc is None else crc).to_bytes(4, "big")
        at = self.at(p)
        p[at:] = b"\x00" + whole + b"\xff" * (188 - at - 1 - len(whole))
        assert len(p) == 188

    def tables(self, pid: int) -> List[int]:
        return [k for k, p in enumerate(self.packets) if self.pid(p) == pid]

    def set_all_sections(self, pid: int, edit: Callable[[bytes], bytes], first: int = 0) -> None:
        for k in self.tables(pid)[first:]:
            self.set_section(k, edit(self.section(k)))

    def renumber(self) -> None:
        """Continuity counters of the video PID in sequence again (after inserting or deleting)."""
        cc = -1
        for p in self.packets:
            if self.pid(p) == self.video:
                if cc < 0:
                    cc = p[3] & 15
                elif p[3] & 0x10:
                    cc = (cc + 1) & 15
                p[3] = (p[3] & 0xF0) | cc

    def packet(self, pid: int, payload: bytes, start: bool = False, control: int = 1, cc: int = 0) -> bytearray:
        """A new packet: ``payload`` after an adaptation field of stuffing that fills the rest."""
        p = bytearray(b"\x47" + bytes(((0x40 if start else 0) | (pid >> 8), pid & 0xFF, (control << 4) | cc)))
        room = 184 - len(payload)
        if control & 2:
            p += bytes((room - 1,)) + (b"\x00" + b"\xff" * (room - 2) if room > 1 else b"")
        else:
            assert room == 0
        return p + payload

    def repack(self, nth: int, first: int, header_stuffing: int = 0) -> None:
        """Re-split the nth PES: ``first`` payload bytes in its first packet (its adaptation field
        kept, stuffing added), full packets after, stuffing in the last; ``header_stuffing`` 0xFF
        bytes added to its PES header."""
        starts = self.starts()
        k0 = starts[nth]
        k1 = starts[nth + 1] if nth + 1 < len(starts) else len(self.packets)
        mine = [k for k in range(k0, k1) if self.pid(self.packets[k]) == self.video]
        pes = bytearray(b"".join(bytes(self.packets[k][self.at(self.packets[k]):]) for k in mine))
        if header_stuffing:
            end = 9 + pes[8]
            pes[end:end] = b"\xff" * header_stuffing
            pes[8] += header_stuffing
        p0 = self.packets[k0]
        field = bytes(p0[5:5 + p0[4]]) if p0[3] & 0x20 and p0[4] else b"\x00"  # at least its flags
        head = bytearray(p0[:4])
        head[3] |= 0x20
        room = 184 - 1 - first
        assert room >= len(field)
        packets = [head + bytes((room,)) + field + b"\xff" * (room - len(field)) + bytes(pes[:first])]
        rest = bytes(pes[first:])
        while rest:
            piece, rest = rest[:184], rest[184:]
            packets.append(self.packet(self.video, piece, control=1 if len(piece) == 184 else 3))
        for k in reversed(mine):
            del self.packets[k]
        for offset, p in enumerate(packets):
            self.packets.insert(mine[0] + offset, bytearray(p))
        self.renumber()


def mutated(data: bytes, edit: Callable[[Ts], None]) -> bytes:
    ts = Ts(data)
    edit(ts)
    return ts.data()


def test_crc32_mpeg2() -> None:
    assert crc32_mpeg2(b"123456789") == mpeg2_crc32(b"123456789") == 0x0376E6E7
    ts = Ts(pyav_ts("h264", frames=3, audio=False))
    for pid in (0, ts.pmt):
        p = ts.packets[ts.find(pid)]
        at = ts.at(p) + 1
        assert mpeg2_crc32(bytes(p[at:at + 3 + (((p[at + 1] & 0x0F) << 8) | p[at + 2])])) == 0


# -- refusals: each a mutation of a real file ----------------------------------------------------

def _set(k_of: Callable[[Ts], int], at: int, value: Callable[[int], int]) -> Callable[[Ts], None]:
    """Change byte ``at`` of the packet ``k_of`` picks."""
    def edit(ts: Ts) -> None:
        p = ts.packets[k_of(ts)]
        p[at] = value(p[at])
    return edit


def _pes(nth: int, at: int, value: Callable[[int], int]) -> Callable[[Ts], None]:
    """Change byte ``at`` of the nth video PES header."""
    def edit(ts: Ts) -> None:
        k, head = ts.pes(nth)
        ts.packets[k][head + at] = value(ts.packets[k][head + at])
    return edit


def _plain(ts: Ts) -> int:
    return ts.plain(40)


def _stuffing(ts: Ts) -> int:
    """A video packet that ends a PES: an adaptation field of stuffing, then payload."""
    return ts.find(ts.video, 5, start=False, control=3)


def _delete_plain(ts: Ts) -> None:
    del ts.packets[ts.plain(40)]


def _duplicate_plain(ts: Ts) -> None:
    k = ts.plain(40)
    ts.packets.insert(k + 1, bytearray(ts.packets[k]))


def _swap_plain(ts: Ts) -> None:
    k = ts.plain(40)
    j = ts.plain(41)
    ts.packets[k], ts.packets[j] = ts.packets[j], ts.packets[k]


def _adaptation_only(ts: Ts) -> None:
    p = ts.packets[ts.plain(40)]
    p[3] = (p[3] & 0xC0) | 0x20 | (p[3] & 15)
    p[4], p[5] = 100, 0


def _field_overrun(ts: Ts) -> None:
    p = ts.packets[_stuffing(ts)]
    p[4], p[5] = 3, 0x10  # a PCR (6 bytes) announced in a field of 3


def _start_without_payload(ts: Ts) -> None:
    k = ts.plain(40)
    p = ts.packet(ts.video, b"", start=True, control=2, cc=ts.packets[k][3] & 15)
    ts.packets.insert(k + 1, p)


def _declared(extra: int) -> Callable[[Ts], None]:
    """PES_packet_length of the 5th PES: its true length plus ``extra``."""
    def edit(ts: Ts) -> None:
        starts = ts.starts()
        mine = [k for k in range(starts[5], starts[6]) if ts.pid(ts.packets[k]) == ts.video]
        size = sum(188 - ts.at(ts.packets[k]) for k in mine) - 6 + extra
        k, head = ts.pes(5)
        ts.packets[k][head + 4:head + 6] = size.to_bytes(2, "big")
    return edit


def _header_cut_short(ts: Ts) -> None:
    k = ts.starts()[6]
    ts.packets.insert(k, ts.packet(ts.video, b"\x00\x00\x01\xe0\x00", start=True, control=3))
    ts.renumber()


def _empty_pes(ts: Ts) -> None:
    k, head = ts.pes(6)
    header = bytes(ts.packets[k][head:head + 9 + ts.packets[k][head + 8]])
    ts.packets.insert(k, ts.packet(ts.video, header, start=True, control=3))
    ts.renumber()


def _payload_start(ts: Ts) -> None:
    k, head = ts.pes(5)
    p = ts.packets[k]
    at = head + 9 + p[head + 8]
    assert p[at:at + 4] == b"\x00\x00\x00\x01"
    p[at + 3] = 0x02


def _payload_end(ts: Ts) -> None:
    starts = ts.starts()
    last = max(k for k in range(starts[5], starts[6]) if ts.pid(ts.packets[k]) == ts.video)
    ts.packets[last][185:188] = b"\x00\x00\x01"


def _pts(nth: int, value: Callable[[Ts, int], int]) -> Callable[[Ts], None]:
    """Rewrite the nth PES's PTS (a PES with PTS only)."""
    def edit(ts: Ts) -> None:
        k, head = ts.pes(nth)
        p = ts.packets[k]
        assert p[head + 7] >> 6 == 2
        p[head + 9:head + 14] = timestamp(2, value(ts, nth))
    return edit


def pts_of(ts: Ts, nth: int) -> int:
    k, head = ts.pes(nth)
    b = ts.packets[k][head + 9:head + 14]
    return ((b[0] >> 1) & 7) << 30 | (((b[1] << 8) | b[2]) >> 1) << 15 | (((b[3] << 8) | b[4]) >> 1)


def _sync(k_of: Callable[[Ts], int]) -> Callable[[Ts], None]:
    return _set(k_of, 0, lambda b: 0x46)


def _orphans(ts: Ts) -> None:
    del ts.packets[ts.starts()[0]]
    ts.renumber()


def _tables_late(ts: Ts) -> None:
    first = ts.find(0)
    tables = [ts.packets[first], ts.packets[ts.find(ts.pmt)]]
    ts.packets = [p for k, p in enumerate(ts.packets) if k not in (first, ts.find(ts.pmt))]
    at = ts.starts()[1]
    ts.packets[at:at] = tables


def _insert(make: Callable[[Ts], bytearray], nth: int = 40) -> Callable[[Ts], None]:
    def edit(ts: Ts) -> None:
        ts.packets.insert(ts.plain(nth), make(ts))
    return edit


def _unlisted_pes(ts: Ts) -> bytearray:
    return ts.packet(0x0200, b"\x00\x00\x01\xe0\x00\x00\x80\x00\x00" + b"\x00\x00\x00\x01\x09\xf0", True, 3)


def _cat(ts: Ts) -> bytearray:
    body = bytes((0x01, 0xB0, 0, 0xFF, 0xFF, 0xC1, 0, 0))
    p = ts.packet(0x0001, b"\x00" + body + bytes(4), True, 3)
    return p


def _later(pid_of: Callable[[Ts], int], edit: Callable[[bytes], bytes]) -> Callable[[Ts], None]:
    """Change every table of that PID from the third one on."""
    def run(ts: Ts) -> None:
        ts.set_all_sections(pid_of(ts), edit, first=2)
    return run


def _all(pid_of: Callable[[Ts], int], edit: Callable[[bytes], bytes]) -> Callable[[Ts], None]:
    def run(ts: Ts) -> None:
        ts.set_all_sections(pid_of(ts), edit)
    return run


def _bad_crc(nth: int) -> Callable[[Ts], None]:
    def run(ts: Ts) -> None:
        k = ts.tables(0)[nth]
        ts.set_section(k, ts.section(k), crc=0x12345678)
    return run


def _pointer(ts: Ts) -> None:
    p = ts.packets[ts.find(0)]
    at = ts.at(p)
    p[at:] = b"\x01\xaa" + p[at + 1:187]


def _pat_continues(ts: Ts) -> None:
    ts.packets[ts.tables(0)[2]][1] &= 0xBF


def _trailing(ts: Ts) -> None:
    for k in ts.tables(0):
        ts.packets[k][-1] = 0x00


def _with(at: int, value: int) -> Callable[[bytes], bytes]:
    return lambda s: s[:at] + bytes((value,)) + s[at + 1:]


def _streams(edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Edit a PMT's stream loop (after program_info)."""
    def run(section: bytes) -> bytes:
        at = 12 + (((section[10] & 0x0F) << 8) | section[11])
        return section[:at] + edit(section[at:])
    return run


def _video_pid(pid: int) -> Callable[[bytes], bytes]:
    def edit(loop: bytes) -> bytes:
        assert loop[0] == 0x1B
        return loop[:1] + bytes((0xE0 | (pid >> 8), pid & 0xFF)) + loop[3:]
    return edit


def _added(entry: bytes) -> Callable[[bytes], bytes]:
    return lambda loop: loop + entry


def _pcr_on_pat(ts: Ts) -> None:
    ts.set_all_sections(ts.pmt, lambda s: s[:8] + b"\xe0\x00" + s[10:])
    _later(lambda ts: 0, _with(11, 0x01))(ts)


def _pcr_on_pmt(ts: Ts) -> None:
    ts.set_all_sections(ts.pmt, lambda s: s[:8] + bytes((0xE0 | ts.pmt >> 8, ts.pmt & 0xFF)) + s[10:])
    _later(lambda ts: ts.pmt, _streams(_video_pid(0x0102)))(ts)


REFUSED: Dict[str, Tuple[Callable[[Ts], None], str, str]] = {
    # name: (mutation, words in the refusal, "defect" | "timing" | "fatal" | "input")
    "tei on a video packet": (_set(_plain, 1, lambda b: b | 0x80), "transport_error_indicator", "defect"),
    "tei on an audio packet": (_set(lambda ts: ts.find(0x101, 3), 1, lambda b: b | 0x80),
                               "transport_error_indicator set on PID 0x0101", "defect"),
    "tei on a later PMT": (_set(lambda ts: ts.tables(ts.pmt)[3], 1, lambda b: b | 0x80),
                           "transport_error_indicator set on PID 0x1000", "fatal"),
    "transport scrambling": (_set(_plain, 3, lambda b: b | 0x80), "transport_scrambling_control 2", "defect"),
    "adaptation_field_control 00": (_set(_plain, 3, lambda b: b & 0xCF), "adaptation_field_control 00", "defect"),
    "adaptation field only, not 183 bytes": (_adaptation_only, "adaptation field of 100 bytes with no payload",
                                             "defect"),
    "adaptation field of 183 bytes before a payload": (_set(_stuffing, 4, lambda b: 183), "of 183 bytes before a "
                                                       "payload", "defect"),
    "adaptation field flags overrun": (_field_overrun, "need 7 bytes in 3", "defect"),
    "continuity: a lost packet": (_delete_plain, "lost or reordered", "defect"),
    "continuity: a repeated packet": (_duplicate_plain, "a repeated packet", "defect"),
    "continuity: packets swapped": (_swap_plain, "continuity counter", "defect"),
    "start flag on a packet without payload": (_start_without_payload, "payload_unit_start_indicator on a packet "
                                               "without payload", "defect"),
    "PES_packet_length beyond the next start": (_declared(50), "promises", "defect"),
    "PES_packet_length short of its payload": (_declared(-50), "promises", "defect"),
    "PES start code": (_pes(5, 2, lambda b: 2), "no 00 00 01 start code", "defect"),
    "stream_id padding": (_pes(5, 3, lambda b: 0xBE), "stream_id 0xbe", "defect"),
    "stream_id audio": (_pes(5, 3, lambda b: 0xC0), "stream_id 0xc0", "defect"),
    "stream_id private_stream_1": (_pes(5, 3, lambda b: 0xBD), "stream_id 0xbd", "defect"),
    "stream_id private_stream_2": (_pes(5, 3, lambda b: 0xBF), "stream_id 0xbf", "defect"),
    "stream_id reserved": (_pes(5, 3, lambda b: 0xF5), "Chromium drops the PES", "defect"),
    "MPEG-1 PES header": (_pes(5, 6, lambda b: 0x40), "'10' marker", "defect"),
    "PES_scrambling_control": (_pes(5, 6, lambda b: b | 0x10), "PES_scrambling_control 1", "defect"),
    "no PTS": (_pes(5, 7, lambda b: b & 0x3F), "no PTS", "defect"),
    "PTS_DTS_flags 01": (_pes(5, 7, lambda b: (b & 0x3F) | 0x40), "PTS_DTS_flags 01", "defect"),
    "PES_header_data_length short of its PTS": (_pes(5, 8, lambda b: 4), "PES_header_data_length 4", "defect"),
    "PTS marker bit": (_pes(5, 13, lambda b: b & 0xFE), "marker bit", "defect"),
    "PTS prefix": (_pes(5, 9, lambda b: (b & 0x0F) | 0x30), "prefix", "defect"),
    "PES header cut short": (_header_cut_short, "ends inside its header", "defect"),
    "PES without payload": (_empty_pes, "no payload", "defect"),
    "payload not beginning with a start code": (_payload_start, "does not begin with a start code", "defect"),
    "payload ending with a start code": (_payload_end, "ends with a start code", "defect"),
    "DTS repeated": (_pts(6, lambda ts, n: pts_of(ts, n - 1)), "repeated", "timing"),
    "DTS going back": (_pts(6, lambda ts, n: pts_of(ts, n - 1) - 3600), "goes back 3600 ticks", "timing"),
    "sync lost": (_sync(lambda ts: ts.plain(40)), "sync lost", "fatal"),
    "payload before any PES start": (_orphans, "before any PES start", "defect"),
    "video before the PAT and PMT": (_tables_late, "before the PMT", "defect"),
    "a PES on a PID the PMT does not list": (_insert(_unlisted_pes), "PID 0x0200, which the PMT does not list",
                                             "defect"),
    "a CAT": (_insert(_cat), "a CAT (PID 0x0001)", "defect"),
    "a later PAT with a wrong CRC": (_bad_crc(2), "CRC32", "fatal"),
    "a later PAT continuing a section": (_pat_continues, "without payload_unit_start_indicator", "fatal"),
    "the PMT changes the video PID": (_later(lambda ts: ts.pmt, _streams(_video_pid(0x0102))), "PMT changes",
                                      "fatal"),
    "the PMT's version changes": (_later(lambda ts: ts.pmt, _with(5, 0xC3)), "PMT changes", "fatal"),
    "the PAT changes the PMT PID": (_later(lambda ts: 0, _with(11, 0x01)), "PAT changes", "fatal"),
    "the PCR on PID 0, then the PAT changes": (_pcr_on_pat, "PAT changes", "fatal"),
    "the PCR on the PMT's PID, then the PMT changes": (_pcr_on_pmt, "PMT changes", "fatal"),
    "the first PAT's CRC": (_bad_crc(0), "CRC32", "input"),
    "pointer_field": (_pointer, "pointer_field 1", "input"),
    "bytes after the PAT section": (_trailing, "after the PAT section", "input"),
    "two programs": (_all(lambda ts: 0, lambda s: s + s[8:12]), "2 programs", "input"),
    "program 0": (_all(lambda ts: 0, _with(9, 0)), "program 0", "input"),
    "current_next_indicator 0": (_all(lambda ts: 0, _with(5, 0xC0)), "current_next_indicator 0", "input"),
    "several PAT sections": (_all(lambda ts: 0, _with(7, 1)), "several sections", "input"),
    "a PAT's table_id": (_all(lambda ts: 0, _with(0, 0x42)), "table_id 0x42", "input"),
    "section_syntax_indicator 0": (_all(lambda ts: 0, _with(1, 0x30)), "section_syntax_indicator", "input"),
    "no video stream": (_all(lambda ts: ts.pmt, _streams(lambda loop: loop[:1].replace(b"\x1b", b"\x02") + loop[1:])),
                        "no H.264 or H.265 video stream", "input"),
    "a PID listed twice": (_all(lambda ts: ts.pmt, _streams(lambda loop: loop + loop[:5])), "listed twice",
                           "input"),
    "ES_info_length past the section": (_all(lambda ts: ts.pmt, _streams(lambda loop: loop[:3] + b"\xf0\x40" +
                                                                         loop[5:])), "ES_info_length", "input"),
    "a stream on a reserved PID": (_all(lambda ts: ts.pmt, _streams(_added(b"\x0f\xe0\x11\xf0\x00"))),
                                   "reserved PID 0x0011", "input"),
    "sync lost before the tables": (_sync(lambda ts: 2), "sync lost", "input"),
}


def check(found: List[Event], words: str, mode: str) -> List[Defect]:
    bad = defects(found)
    assert bad, "no defect"
    assert any(words in d.text for d in bad), [d.text for d in bad]
    first = next(d for d in bad if words in d.text)
    assert first.reason == (TIMING if mode == "timing" else "framing")
    assert first.fatal == (mode == "fatal")
    assert "\n" not in first.text
    if mode == "fatal":
        assert found[-1] is first
    return bad


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(base: bytes, name: str) -> None:
    edit, words, mode = REFUSED[name]
    data = mutated(base, edit)
    if mode == "input":
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
            events(data)
        assert "\n" not in str(caught.value)
        with pytest.raises(InputError):
            events(data, bulk=False)
        return
    found = events(data)
    check(found, words, mode)
    assert shape(events(data, bulk=False)) == shape(found)
    assert shape(events(data, stream=Trickle(data, most=400))) == shape(found)
    # every sample the reader still gives is one of the original's, as it was
    good = samples(events(base))
    assert set(samples(found)) <= set(good)


# -- what every client reads one way is accepted ------------------------------------------------

def _discontinuity(ts: Ts) -> None:
    """The stuffing packet before a start deleted, and the start's adaptation field saying so."""
    k = next(k for k in ts.starts()[3:] if ts.packets[k][3] & 0x20 and ts.packets[k][4])
    last = max(j for j in range(k) if ts.pid(ts.packets[j]) == ts.video)
    del ts.packets[last]
    p = ts.packets[k - 1]
    assert p[1] & 0x40 and p[3] & 0x20 and p[4]
    p[5] |= 0x80


def _nulls(ts: Ts) -> None:
    for k in range(len(ts.packets) - 5, 0, -37):
        ts.packets.insert(k, ts.packet(0x1FFF, b"\xff" * 184))


def _priority(ts: Ts) -> None:
    for k in ts.starts()[3:6] + [ts.plain(n) for n in range(30, 60)]:
        ts.packets[k][1] |= 0x20


def _unlisted_sections(ts: Ts) -> None:
    for n in (10, 50, 90):
        ts.packets.insert(ts.plain(n), ts.packet(0x0014, b"\x00\x70\x70\x05" + bytes(5), True, 3))


def _times(shift: int) -> Callable[[Ts], None]:
    """Every PES's PTS and DTS moved by ``shift`` (33-bit)."""
    def edit(ts: Ts) -> None:
        for nth in range(len(ts.starts())):
            k, head = ts.pes(nth)
            p = ts.packets[k]
            flags = p[head + 7] >> 6
            for at, prefix in ((9, 2 if flags == 2 else 3), (14, 1)) if flags == 3 else ((9, 2),):
                b = p[head + at:head + at + 5]
                value = ((b[0] >> 1) & 7) << 30 | (((b[1] << 8) | b[2]) >> 1) << 15 | (((b[3] << 8) | b[4]) >> 1)
                p[head + at:head + at + 5] = timestamp(prefix, value + shift)
    return edit


ACCEPTED: Dict[str, Callable[[Ts], None]] = {
    "a PES header split across packets (5 bytes in the first)": lambda ts: ts.repack(5, 5),
    "a PES header split across packets (1 byte in the first)": lambda ts: ts.repack(6, 1),
    "a PES header with stuffing bytes, split": lambda ts: ts.repack(7, 12, header_stuffing=9),
    "a PES whose first packet holds only its header": lambda ts: ts.repack(8, 14),
    "PES_packet_length exact": _declared(0),
    "null packets": _nulls,
    "transport_priority": _priority,
    "sections on a PID the PMT does not list": _unlisted_sections,
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(base: bytes, name: str) -> None:
    data = mutated(base, ACCEPTED[name])
    assert data != base
    found = events(data)
    assert not defects(found), defects(found)
    assert samples(found) == samples(events(base)) == pyav_packets(data)
    assert shape(events(data, bulk=False)) == shape(found)
    assert shape(events(data, stream=Trickle(data, most=1000, seed=5))) == shape(found)


def test_a_discontinuity_indicator_takes_a_counter_jump(base: bytes) -> None:
    """Every client takes the jump (FFmpeg's and hls.js's continuity checks skip it, Chromium has
    none): the PES that lost its last packet is read short by all, as FFmpeg does."""
    data = mutated(base, _discontinuity)
    found = events(data)
    assert not defects(found)
    assert samples(found) == pyav_packets(data) != samples(events(base))


@pytest.mark.parametrize("kind", ["ffmpeg-annexb-aac-h264", "pyav-aac-bframes-h265"])
def test_timestamps_unwrap_across_the_33_bit_wrap(real: Dict[str, bytes], kind: str) -> None:
    data = real[kind]
    first = samples(events(data))
    shift = (1 << 33) - first[0][2] - 90000  # the wrap one second in
    wrapped = samples(events(mutated(data, _times(shift))))
    assert [(b, p + shift, d + shift) for b, p, d in first] == wrapped
    assert wrapped[-1][2] > 1 << 33


# -- FFmpeg reads these packets differently from hls.js: PyAV shows it ---------------------------

def test_ffmpeg_keeps_a_repeated_packet(base: bytes) -> None:
    """ISO 13818-1 2.4.3.3 lets a decoder drop a duplicate; FFmpeg's handle_packet only marks the
    PES corrupt and keeps the payload twice (hls.js too, unless configured to drop the PES)."""
    theirs, ours = pyav_packets(mutated(base, _duplicate_plain)), pyav_packets(base)
    assert len(theirs) == len(ours)
    assert [len(a) - len(b) for (a, _, _), (b, _, _) in zip(theirs, ours) if a != b] == [184]


def test_ffmpeg_drops_a_reserved_adaptation_field_control(base: bytes) -> None:
    """FFmpeg's handle_packet returns on adaptation_field_control 00; hls.js's demux and
    Chromium's TsPacket read 184 payload bytes from the same packet."""
    theirs, ours = pyav_packets(mutated(base, REFUSED["adaptation_field_control 00"][0])), pyav_packets(base)
    assert [len(b) - len(a) for (a, _, _), (b, _, _) in zip(theirs, ours) if a != b] == [184]


def test_ffmpeg_finds_video_in_a_stream_declared_audio(base: bytes) -> None:
    """FFmpeg probes the bytes of ADTS AAC (0x0F) and MPEG-2 audio (0x04) streams
    (mpegts_set_stream_info: request_probe 50) and of streams it cannot name: H.264 declared as
    AAC is video to it (hls.js reads 0x0F as AAC). The reader names such a stream audio, as
    declared; segbind never hands on another stream, only the verified video (docs/readers/mpegts.md)."""
    disguised = mutated(base, _all(lambda ts: ts.pmt, _streams(lambda loop: b"\x0f" + loop[1:])))
    with av.open(io.BytesIO(disguised), format="mpegts") as container:
        assert [(s.type, s.codec_context.name) for s in container.streams] == [("video", "h264"), ("audio", "aac")]
    with pytest.raises(InputError, match=r"no H\.264 or H\.265 video stream in the MPEG-TS \(streams: audio \(aac"):
        events(disguised)


# -- the track ----------------------------------------------------------------------------------

def track_of(data: bytes) -> TrackInfo:
    first = events(data)[0]
    assert isinstance(first, TrackInfo)
    return first


def test_other_streams(base: bytes) -> None:
    def with_streams(*entries: bytes) -> bytes:
        return mutated(base, _all(lambda ts: ts.pmt, _streams(lambda loop: loop + b"".join(entries))))

    video = track_of(with_streams(b"\x1b\xe1\x02\xf0\x00"))
    assert video.other_video and "video (h264, PID 0x0102)" in video.others
    private = track_of(with_streams(b"\x06\xe1\x03\xf0\x00"))
    assert private.other_video and "FFmpeg identifies by probing" in private.others[-1]
    id3 = b"\x26\x0d\xff\xff" + ID3_TAG + b"\xff" + ID3_TAG + b"\x00\x0f"
    metadata = track_of(with_streams(b"\x15\xe1\x04\xf0" + bytes((len(id3),)) + id3))
    assert not metadata.other_video and metadata.others[-1] == "data (timed_id3, PID 0x0104)"
    bare = track_of(with_streams(b"\x15\xe1\x04\xf0\x00"))
    assert bare.other_video  # no ID3 descriptor: FFmpeg probes the stream's bytes
    mp2 = track_of(with_streams(b"\x04\xe1\x05\xf0\x00"))
    assert not mp2.other_video and mp2.others == ("audio (aac, PID 0x0101)", "audio (mp3, PID 0x0105)")


ID3_TAG = b"ID3 "


def test_h265_track(real: Dict[str, bytes]) -> None:
    track = track_of(real["pyav-aac-h265"])
    assert (track.codec, track.codec_name) == (2, "hevc")


# -- inputs that are not a readable transport stream ---------------------------------------------

def test_not_transport_streams(real: Dict[str, bytes], tmp_path: Path) -> None:
    raw = tmp_path / "raw.h264"
    raw.write_bytes(clips.encode_pyav(frames=10, gop=10))
    run_ffmpeg("-r", "25", "-i", str(raw), "-c", "copy", "-f", "mpegts", "-mpegts_m2ts_mode", "1",
               str(tmp_path / "x.m2ts"))
    m2ts = (tmp_path / "x.m2ts").read_bytes()
    assert m2ts[4] == m2ts[196] == 0x47
    for variant in (m2ts, b"\x47" + m2ts[1:]):  # a TP_extra_header may begin with 0x47 too
        with pytest.raises(InputError, match=r"M2TS \(192-byte packets\): hls\.js cannot play it"):
            events(variant)
    for data, words in ((b"", "cut short"), (real["pyav-h264"][:100], "cut short"),
                        (b"\x00" * 400, "not MPEG-TS"), (raw.read_bytes(), "not MPEG-TS")):
        with pytest.raises(InputError, match=words):
            events(data)
    tables = b"".join(bytes(p) for p in Ts(real["pyav-h264"]).packets[:3])
    with pytest.raises(InputError, match="no H.264 samples"):
        events(tables)
    no_pat = b"".join(bytes(p) for p in Ts(real["pyav-h264"]).packets if Ts.pid(p))
    with pytest.raises(InputError, match="no PAT and PMT"):
        events(no_pat)


def test_the_input_ends_inside_a_packet(base: bytes) -> None:
    found = events(base + base[:100])
    assert samples(found) == samples(events(base))
    assert [d.text for d in defects(found)] == ["the input ends inside a TS packet (100 of 188 bytes): FFmpeg and "
                                                "hls.js drop it"]


def _both_times(nth: int, pts: Callable[[int, int], int]) -> Callable[[Ts], None]:
    """The nth PES (with PTS and DTS): its PTS from (pts, dts)."""
    def edit(ts: Ts) -> None:
        k, head = ts.pes(nth)
        p = ts.packets[k]
        assert p[head + 7] >> 6 == 3
        b = p[head + 14:head + 19]
        dts = ((b[0] >> 1) & 7) << 30 | (((b[1] << 8) | b[2]) >> 1) << 15 | (((b[3] << 8) | b[4]) >> 1)
        p[head + 9:head + 14] = timestamp(3, pts(pts_of(ts, nth), dts))
    return edit


@pytest.mark.parametrize("pts, words", [(lambda p, d: d - 1, "before DTS"),
                                        (lambda p, d: d + 60 * 90000 + 1, "more than 60 s after DTS")])
def test_pts_far_from_dts(real: Dict[str, bytes], pts: Callable[[int, int], int], words: str) -> None:
    data = mutated(real["pyav-aac-bframes-h264"], _both_times(7, pts))
    check(events(data), words, "timing")
    ok = mutated(real["pyav-aac-bframes-h264"], _both_times(7, lambda p, d: d + 60 * 90000))
    assert not defects(events(ok))


def test_a_sample_too_large(base: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    largest = max(len(s[0]) for s in samples(events(base)))
    monkeypatch.setattr(mpegts, "MAX_SAMPLE_BYTES", largest - 1)
    found = events(base)
    check(found, "longer than %d bytes" % (largest - 1), "defect")
    assert all(len(s[0]) < largest for s in samples(found))
    assert shape(events(base, bulk=False)) == shape(found)


# -- whatever the bytes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(real: Dict[str, bytes]) -> Dict[str, bytes]:
    """Short real files to mutate: PyAV's and ffmpeg's muxers, both codecs, audio, HLS."""
    return {"pyav-h264": pyav_ts("h264", frames=12, bframes=2), "pyav-h265": pyav_ts("h265", frames=10),
            "ffmpeg-hls": real["ffmpeg-hls-aac-h264"][:188 * 260]}


MUTATION = st.tuples(st.sampled_from(["flip", "byte", "delete", "duplicate", "insert", "swap", "shift", "cut",
                                      "table", "tables"]),
                     st.floats(0, 1), st.integers(0, 255), st.integers(0, 31))


def mutate(data: bytes, mutations: Sequence[Tuple[str, float, int, int]]) -> bytes:
    """Packet-level mutations, most of them in packet, adaptation field and PES headers (the first
    32 bytes of a packet); "table" and "tables" change a byte of one PAT or PMT section, or of
    every one from some point on, with a CRC that fits."""
    ts = Ts(data)
    tables = [k for k, p in enumerate(ts.packets) if ts.pid(p) in (0, ts.pmt) and p[1] & 0x40]
    for kind, where, value, offset in mutations:
        if kind in ("table", "tables") and tables:
            first = min(len(tables) - 1, int(where * len(tables)))
            for k in tables[first:first + 1] if kind == "table" else tables[first:]:
                section = bytearray(ts.section(k))
                at = 3 + offset % max(1, len(section) - 3)
                if at < len(section):
                    section[at] = value
                ts.set_section(k, bytes(section))
    data = ts.data()
    packets = [bytearray(data[i:i + 188]) for i in range(0, len(data) - len(data) % 188, 188)]
    tail = b""
    for kind, where, value, offset in mutations:
        if not packets:
            break
        k = min(len(packets) - 1, int(where * len(packets)))
        p = packets[k]
        if kind == "flip":
            p[offset] ^= 1 << (value & 7)
        elif kind == "byte":
            p[offset] = value
        elif kind == "delete":
            del packets[k]
        elif kind == "duplicate":
            packets.insert(k, bytearray(p))
        elif kind == "insert":  # a copy of a nearby packet with another start flag, field or counter
            q = bytearray(packets[(k + value) % len(packets)])
            q[1] ^= 0x40 if value & 1 else 0
            q[3] = (q[3] & 0xC0) | (value & 0x30) | (offset & 15)
            packets.insert(k, q)
        elif kind == "swap" and k + 1 < len(packets):
            packets[k], packets[k + 1] = packets[k + 1], p
        elif kind == "shift":  # bytes lost: sync goes
            del p[offset % 188:offset % 188 + 1 + value % 40]
        elif kind == "cut":
            tail = bytes(p[:value % 188])
            del packets[k:]
    return b"".join(bytes(p) for p in packets) + tail


def read_or_refuse(data: bytes, bulk: bool = True, stream: Optional[io.RawIOBase] = None) -> object:
    try:
        return shape(events(data, bulk, stream))
    except InputError as exc:
        assert "\n" not in str(exc)
        return ("input error", str(exc))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(st.sampled_from(["pyav-h264", "pyav-h265", "ffmpeg-hls"]), st.lists(MUTATION, min_size=1, max_size=8),
       st.integers(1, 3000))
def test_mutations(small: Dict[str, bytes], kind: str, mutations: List[Tuple[str, float, int, int]],
                   most: int) -> None:
    data = mutate(small[kind], mutations)
    tracemalloc.start()
    try:
        found = read_or_refuse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # a read, its payload slots, one sample: whatever the bytes
    assert read_or_refuse(data, bulk=False) == found
    assert read_or_refuse(data, stream=Trickle(data, most=most)) == found
    if isinstance(found, list):
        assert found and found[0][0] == "track"
        assert all(item[0] != "track" for item in found[1:])
        for item in found:
            if item[0] == "defect":
                assert "\n" not in item[1] and item[1]
            if item[0] == "sample":
                assert item[1] and item[2] >= item[3] >= 0
        assert all(item[0] != "defect" or not item[3] for item in found[:-1])  # a fatal defect is the last


def test_memory_stays_bounded_on_a_long_stream(tmp_path: Path) -> None:
    """Peak allocation reading a stream 8 times longer is the same: a read, its slots, one sample."""
    clip = clips.encode_pyav(frames=50, gop=25)
    peaks = []
    for copies in (16, 128):
        raw = tmp_path / ("x%d.h264" % copies)
        raw.write_bytes(clip * copies)
        run_ffmpeg("-r", "25", "-i", str(raw), "-c", "copy", "-f", "mpegts", str(tmp_path / "x.ts"))
        count = 0
        tracemalloc.start()
        try:
            with open(tmp_path / "x.ts", "rb") as stream:
                for event in mpegts_events(stream, "x.ts"):
                    assert not isinstance(event, Defect), event
                    count += isinstance(event, Sample)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert count == 50 * copies
    assert peaks[1] < peaks[0] * 1.25 + 64 * 1024, peaks
