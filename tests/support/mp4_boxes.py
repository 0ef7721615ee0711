"""ISO BMFF for tests: a small box reader, editor and builder; real MP4 and fMP4 files made by real
muxers (Debian's ffmpeg, PyAV) from real x264/x265 clips; and the mutations of them that segbind's
MP4 readers (segbind.read.mp4, segbind-mp4.js) must refuse, each with the text of its refusal."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from host_sim import clips
from tests.support.media import ffmpeg

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"moof", b"traf",
              b"sinf", b"schi", b"udta"}
# Boxes whose children follow a fixed prefix (the sample description's count, a sample entry's fields).
PREFIX = {b"stsd": 8, b"dref": 8, b"avc1": 78, b"avc3": 78, b"hvc1": 78, b"hev1": 78, b"encv": 78, b"mp4a": 28}


class Box:
    """One box: a leaf holds ``data`` (its body), a container ``prefix`` then ``children``."""

    def __init__(self, kind: bytes, data: bytes = b"", children: Optional[List["Box"]] = None,
                 prefix: bytes = b"") -> None:
        self.kind = kind
        self.data = data
        self.children = children
        self.prefix = prefix

    def body(self) -> bytes:
        if self.children is None:
            return self.data
        return self.prefix + b"".join(c.encode() for c in self.children)

    def encode(self) -> bytes:
        body = self.body()
        return struct.pack(">I", 8 + len(body)) + self.kind + body

    def find(self, *path: bytes) -> List["Box"]:
        """The descendants along ``path`` (box types), in order."""
        level = [self]
        for kind in path:
            level = [c for b in level for c in (b.children or []) if c.kind == kind]
        return level

    def first(self, *path: bytes) -> "Box":
        found = self.find(*path)
        assert found, "no %r in %r" % (path, self.kind)
        return found[0]

    # full boxes
    @property
    def version(self) -> int:
        return self.data[0]

    @property
    def flags(self) -> int:
        return struct.unpack(">I", self.data[:4])[0] & 0xFFFFFF

    def set_flags(self, flags: int, version: Optional[int] = None) -> None:
        self.data = bytes([self.version if version is None else version]) + flags.to_bytes(3, "big") + self.data[4:]

    def u32(self, offset: int) -> int:
        return struct.unpack_from(">I", self.data, offset)[0]

    def set_u32(self, offset: int, value: int) -> None:
        self.data = self.data[:offset] + struct.pack(">I", value & 0xFFFFFFFF) + self.data[offset + 4:]

    def __repr__(self) -> str:
        return "Box(%s, %d bytes)" % (self.kind.decode("latin-1"), len(self.body()))


def parse(data: bytes, start: int = 0, end: Optional[int] = None) -> List[Box]:
    """The boxes of ``data`` (64-bit and 'to the end' sizes read; written back as 32-bit)."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        body, stop = pos + head, min(pos + size, end)
        if kind in CONTAINERS or kind in PREFIX:
            skip = PREFIX.get(kind, 0)
            out.append(Box(kind, children=parse(data, body + skip, stop), prefix=data[body:body + skip]))
        else:
            out.append(Box(kind, data[body:stop]))
        pos += max(size, 8)
    return out


def encode(boxes: Sequence[Box]) -> bytes:
    return b"".join(b.encode() for b in boxes)


def box(kind: bytes, body: bytes) -> Box:
    return Box(kind, body)


def full(kind: bytes, version: int, flags: int, body: bytes) -> Box:
    return Box(kind, struct.pack(">I", (version << 24) | flags) + body)


def top(data: bytes, kind: bytes) -> List[Box]:
    return [b for b in parse(data) if b.kind == kind]


# ---- 'trun' as fields ------------------------------------------------------------------------

class Run(NamedTuple):
    version: int
    flags: int
    data_offset: Optional[int]
    first_flags: Optional[int]
    samples: List[Dict[str, int]]  # duration, size, flags, cto as present


_FIELDS = ((0x100, "duration"), (0x200, "size"), (0x400, "flags"), (0x800, "cto"))


def read_trun(trun: Box) -> Run:
    flags, count = trun.flags, trun.u32(4)
    pos = 8
    offset = first = None
    if flags & 1:
        offset = struct.unpack_from(">i", trun.data, pos)[0]
        pos += 4
    if flags & 4:
        first = trun.u32(pos)
        pos += 4
    samples = []
    for _ in range(count):
        sample = {}
        for bit, name in _FIELDS:
            if flags & bit:
                sample[name] = trun.u32(pos)
                pos += 4
        samples.append(sample)
    return Run(trun.version, flags, offset, first, samples)


def write_trun(run: Run) -> Box:
    flags = run.flags & ~0xF05
    flags |= 1 if run.data_offset is not None else 0
    flags |= 4 if run.first_flags is not None else 0
    for bit, name in _FIELDS:
        if run.samples and name in run.samples[0]:
            flags |= bit
    body = struct.pack(">I", len(run.samples))
    if run.data_offset is not None:
        body += struct.pack(">i", run.data_offset)
    if run.first_flags is not None:
        body += struct.pack(">I", run.first_flags)
    for sample in run.samples:
        for bit, name in _FIELDS:
            if flags & bit:
                body += struct.pack(">I", sample[name] & 0xFFFFFFFF)
    return full(b"trun", run.version, flags, body)


def shift_data_offsets(moof: Box, delta: int) -> None:
    """Move every run of a 'moof' by ``delta`` bytes (after the 'moof' itself grew or shrank)."""
    for trun in moof.find(b"traf", b"trun"):
        if trun.flags & 1:
            trun.data = trun.data[:8] + struct.pack(">i", struct.unpack_from(">i", trun.data, 8)[0] + delta) + \
                trun.data[12:]


def point_saio_at_senc(moof: Box) -> None:
    """Each traf's 'saio' set to where its 'senc' entries are in the 'moof' (as a muxer writes it)."""
    at = 8 + len(moof.prefix)
    for child in moof.children or []:
        if child.kind == b"traf":
            inner = at + 8
            senc_at = None
            for box in child.children or []:
                if box.kind == b"senc":
                    senc_at = inner + 8 + 8
                inner += len(box.encode())
            for saio in child.find(b"saio"):
                if senc_at is not None and not saio.version:
                    saio.set_u32(8 + (8 if saio.flags & 1 else 0), senc_at)
        at += len(child.encode())


def edit_moof(data: bytes, change: Callable[[Box], None], which: int = 0, keep_offsets: bool = False) -> bytes:
    """The file with its ``which``-th 'moof' changed; when its size changed, its runs moved by as
    much and its 'saio' pointed at its 'senc' again (unless ``keep_offsets``)."""
    boxes = parse(data)
    moofs = [b for b in boxes if b.kind == b"moof"]
    moof = moofs[which]
    before = len(moof.encode())
    change(moof)
    delta = len(moof.encode()) - before
    if delta and not keep_offsets:
        shift_data_offsets(moof, delta)
        point_saio_at_senc(moof)
    return encode(boxes)


def edit_moov(data: bytes, change: Callable[[Box], None]) -> bytes:
    """The file with its 'moov' changed (for progressive files, chunk offsets after it move: fixed)."""
    boxes = parse(data)
    moov = next(b for b in boxes if b.kind == b"moov")
    before = len(moov.encode())
    change(moov)
    delta = len(moov.encode()) - before
    moov_at = sum(len(b.encode()) for b in boxes[:boxes.index(moov)])
    if delta:
        for stco in moov.find(b"trak", b"mdia", b"minf", b"stbl", b"stco"):
            count = stco.u32(4)
            for k in range(count):
                offset = stco.u32(8 + 4 * k)
                if offset > moov_at:
                    stco.set_u32(8 + 4 * k, offset + delta)
    return encode(boxes)


# ---- real files ------------------------------------------------------------------------------

def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def real_files(directory: Path) -> Dict[str, Path]:
    """name -> a real MP4 or fMP4 file, made by Debian's ffmpeg or PyAV from x264/x265 clips, that
    segbind's MP4 readers must read as PyAV does. Names say the muxer, the form and the content."""
    from segbind.write import remux_annexb

    directory.mkdir(parents=True, exist_ok=True)
    h264 = _write(directory, "plain.h264", clips.encode_pyav(frames=50, gop=25))
    h264b = _write(directory, "bframes.h264", clips.encode_pyav(frames=50, gop=25, bframes=2))
    h264ff = _write(directory, "ffmpeg-b.h264", clips.encode_ffmpeg(frames=50, gop=25, extra=("-bf", "2")))
    h265b = _write(directory, "bframes.h265", clips.encode_pyav_h265(frames=50, gop=25, bframes=2))
    h265ff = _write(directory, "ffmpeg.h265", clips.encode_ffmpeg_h265(frames=40, gop=20))
    sine = ("-f", "lavfi", "-i", "sine=frequency=440:duration=2")
    frag = "frag_keyframe+empty_moov+default_base_moof"
    out: Dict[str, Path] = {}

    def cli(name: str, *args: str) -> None:
        out[name] = directory / (name + ".mp4")
        ffmpeg(*args, str(out[name]))

    def pyav(name: str, source: Path, options: Optional[Dict[str, str]] = None) -> None:
        out[name] = directory / (name + ".mp4")
        remux_annexb(str(source), str(out[name]), "mp4", options)

    cli("mp4-ffmpeg-bframes-edit", "-r", "30", "-i", str(h264b), "-c", "copy")
    cli("mp4-ffmpeg-faststart", "-r", "25", "-i", str(h264), "-c", "copy", "-movflags", "+faststart")
    cli("mp4-ffmpeg-x264-bframes-audio", "-r", "25", "-i", str(h264ff), *sine, "-c:v", "copy", "-c:a", "aac",
        "-shortest")
    cli("mp4-ffmpeg-hvc1-audio-faststart", "-r", "25", "-i", str(h265ff), *sine, "-c:v", "copy", "-tag:v", "hvc1",
        "-c:a", "aac", "-shortest", "-movflags", "+faststart")
    pyav("mp4-pyav-bframes-ctts", h264b)
    pyav("mp4-pyav-hev1-bframes-faststart", h265b, {"movflags": "+faststart"})
    pyav("fmp4-pyav-bframes", h264b, {"movflags": frag})
    pyav("fmp4-pyav-hev1-bframes", h265b, {"movflags": frag})
    pyav("fmp4-pyav-cenc", h264b, {"movflags": frag, "encryption_scheme": "cenc-aes-ctr",
                                   "encryption_key": "00112233445566778899aabbccddeeff",
                                   "encryption_kid": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"})
    cli("fmp4-ffmpeg", "-r", "25", "-i", str(h264), "-c", "copy", "-movflags", frag)
    cli("fmp4-ffmpeg-hvc1-audio", "-r", "25", "-i", str(h265ff), *sine, "-c:v", "copy", "-tag:v", "hvc1", "-c:a",
        "aac", "-shortest", "-movflags", frag)
    # HLS from MP4s (raw input gives ffmpeg's HLS muxer no timestamps: one segment, no durations)
    cli("hls-source-x264", "-r", "25", "-i", str(h264ff), "-c", "copy")
    cli("hls-source-x265", "-r", "25", "-i", str(h265ff), "-c", "copy")
    for name, source, extra in (("fmp4-hls-x264-bframes", out.pop("hls-source-x264"), ()),
                                ("fmp4-hls-hev1", out["hls-source-x265"], ()),
                                ("refused-hls-hev1-audio", out.pop("hls-source-x265"),
                                 (*sine, "-c:a", "aac", "-shortest"))):
        hls = directory / name
        hls.mkdir(exist_ok=True)
        ffmpeg("-i", str(source), *extra, "-c:v", "copy", "-f", "hls", "-hls_segment_type", "fmp4",
               "-hls_time", "0.5", "-hls_playlist_type", "vod", str(hls / "index.m3u8"))
        parts = [hls / "init.mp4"] + sorted(hls.glob("index*.m4s"), key=lambda p: int(p.stem[5:]))
        assert len(parts) > 2, "ffmpeg wrote one HLS segment"
        out[name] = _write(directory, name + ".mp4", b"".join(p.read_bytes() for p in parts))
    cli("refused-ffmpeg-base-data-offset", "-r", "25", "-i", str(h264), "-c", "copy", "-movflags",
        "frag_keyframe+empty_moov")
    cli("refused-ffmpeg-implicit-base", "-r", "25", "-i", str(h264), "-c", "copy", "-movflags",
        "frag_keyframe+empty_moov+omit_tfhd_offset")
    return out


# The real files their muxers wrote in a form segbind refuses, and the first refusal (the rest of
# ``real_files`` read as PyAV reads them, with no Defect).
REFUSED_REAL = {
    "refused-ffmpeg-base-data-offset": "a 'tfhd' with an explicit base_data_offset",
    "refused-ffmpeg-implicit-base": "a 'tfhd' without default-base-is-moof",
    # ffmpeg's HLS muxer delays the video by the AAC priming with an empty edit: FFmpeg shifts the
    # video by it (time_offset), Chromium ignores it
    "refused-hls-hev1-audio": "an empty edit of 294 ticks before media time 0",
}


# ---- mutations -------------------------------------------------------------------------------

class Mutation(NamedTuple):
    base: str                       # the real file it changes
    change: Callable[[bytes], bytes]
    refusal: str                    # the text of the Defect (or of the InputError, after the name)
    at_init: bool = False           # refused as an InputError: the movie header itself


def _video_traf(moof: Box) -> Box:
    return next(t for t in moof.find(b"traf") if t.first(b"tfhd").u32(4) == 1)


def _set_run(change: Callable[[Run], Run], traf_index: int = 0) -> Callable[[Box], None]:
    def apply(moof: Box) -> None:
        traf = moof.find(b"traf")[traf_index]
        trun = traf.first(b"trun")
        traf.children[traf.children.index(trun)] = write_trun(change(read_trun(trun)))
    return apply


def _no_data_offset(run: Run) -> Run:
    return run._replace(data_offset=None)


def _split_traf(moof: Box) -> None:
    """The video traf cut in two trafs of the same track (each with its own half of the run),
    offsets kept right: only the rule on one traf per track refuses it."""
    traf = _video_traf(moof)
    run = read_trun(traf.first(b"trun"))
    half = len(run.samples) // 2
    second = Box(b"traf", children=[Box(c.kind, c.data) for c in traf.children])
    tfdt = second.first(b"tfdt")
    start = struct.unpack_from(">Q", tfdt.data, 4)[0] if tfdt.version else tfdt.u32(4)
    span = sum(s.get("duration", 0) for s in run.samples[:half])
    tfdt.data = tfdt.data[:4] + (struct.pack(">Q", start + span) if tfdt.version else struct.pack(">I", start + span))
    size = sum(s["size"] for s in run.samples[:half])
    first = run._replace(samples=run.samples[:half])
    rest = run._replace(samples=run.samples[half:], data_offset=run.data_offset + size, first_flags=None)
    traf.children[traf.children.index(traf.first(b"trun"))] = write_trun(first)
    second.children[[c.kind for c in second.children].index(b"trun")] = write_trun(rest)
    moof.children.insert(moof.children.index(traf) + 1, second)


def _tfhd_flags(add: int = 0, remove: int = 0, extra: bytes = b"", where: int = 8) -> Callable[[Box], None]:
    def apply(moof: Box) -> None:
        tfhd = _video_traf(moof).first(b"tfhd")
        tfhd.data = tfhd.data[:where] + extra + tfhd.data[where:]
        tfhd.set_flags((tfhd.flags | add) & ~remove)
    return apply


def _video_second_without_base(data: bytes) -> bytes:
    """The first fragment's video traf put after the audio one, their data swapped in the mdat to
    match, and the video's default-base-is-moof cleared: every other rule holds."""
    boxes = parse(data)
    at = next(k for k, b in enumerate(boxes) if b.kind == b"moof")
    moof, mdat = boxes[at], boxes[at + 1]
    video, audio = moof.find(b"traf")[:2]
    first = len(moof.encode()) + 8
    runs = [read_trun(t.first(b"trun")) for t in (video, audio)]
    sizes = [sum(s["size"] for s in r.samples) for r in runs]
    body = mdat.body()
    mdat.data = body[sizes[0]:sizes[0] + sizes[1]] + body[:sizes[0]] + body[sizes[0] + sizes[1]:]
    for traf, run, offset in ((audio, runs[1], first), (video, runs[0], first + sizes[1])):
        traf.children[traf.children.index(traf.first(b"trun"))] = write_trun(run._replace(data_offset=offset))
    a, b = moof.children.index(video), moof.children.index(audio)
    moof.children[a], moof.children[b] = audio, video
    tfhd = video.first(b"tfhd")
    tfhd.set_flags(tfhd.flags & ~0x20000)
    return encode(boxes)


def _mdat_grown(data: bytes) -> bytes:
    boxes = parse(data)
    mdat = next(b for b in boxes if b.kind == b"mdat")
    mdat.data += b"\x00\x00\x00\x01\x09"
    return encode(boxes)


def _second_moov(data: bytes) -> bytes:
    boxes = parse(data)
    moov = next(b for b in boxes if b.kind == b"moov")
    at = next(k for k, b in enumerate(boxes) if b.kind == b"mdat") + 1
    return encode(boxes[:at] + [moov] + boxes[at:])


def _drop(kind: bytes, path: Tuple[bytes, ...] = (b"traf",)) -> Callable[[Box], None]:
    def apply(moof: Box) -> None:
        parent = _video_traf(moof) if path == (b"traf",) else moof
        parent.children = [c for c in parent.children if c.kind != kind]
    return apply


def _add_to_traf(child: Box, after: bytes = b"trun") -> Callable[[Box], None]:
    def apply(moof: Box) -> None:
        traf = _video_traf(moof)
        at = max(k for k, c in enumerate(traf.children) if c.kind == after) + 1
        traf.children.insert(at, child)
    return apply


_PIFF_SENC = bytes.fromhex("a2394f525a9b4f14a2446c427c648df4")


def _senc_change(change: Callable[[Box], None]) -> Callable[[Box], None]:
    def apply(moof: Box) -> None:
        change(_video_traf(moof).first(b"senc"))
    return apply


def _senc_count(senc: Box) -> None:
    senc.set_u32(4, senc.u32(4) - 1)


def _subsample_bytes(senc: Box) -> None:
    # the first entry: IV (8 bytes), count (2), then (clear u16, protected u32): one protected byte more
    pos = 8 + 8 + 2 + 2
    senc.set_u32(pos, senc.u32(pos) + 1)


def _saiz_size(moof: Box) -> None:
    saiz = _video_traf(moof).first(b"saiz")
    pos = 4 + (8 if saiz.flags & 1 else 0)
    if saiz.data[pos]:
        saiz.data = saiz.data[:pos] + bytes([saiz.data[pos] + 1]) + saiz.data[pos + 1:]
    else:
        saiz.data = saiz.data[:pos + 5] + bytes([saiz.data[pos + 5] + 1]) + saiz.data[pos + 6:]


def _saio_offset(moof: Box) -> None:
    saio = _video_traf(moof).first(b"saio")
    pos = 8 + (8 if saio.flags & 1 else 0)
    saio.set_u32(pos, saio.u32(pos) + 2)


def _sdi(moof: Box) -> None:
    _tfhd_flags(add=0x2, extra=struct.pack(">I", 2))(moof)


def _trex(change: Callable[[Box], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        def moov(box: Box) -> None:
            change(box.first(b"mvex", b"trex"))
        return edit_moov(data, moov)
    return apply


def _two_entries(moov: Box) -> None:
    stsd = moov.first(b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    entry = stsd.children[0]
    stsd.children.append(Box(entry.kind, children=list(entry.children or []), prefix=entry.prefix))
    stsd.prefix = stsd.prefix[:4] + struct.pack(">I", 2)


def _elst(entries: Sequence[Tuple[int, int, int]]) -> Callable[[Box], None]:
    """The video track's edit list replaced by ``entries`` (duration, media_time, rate 16.16)."""
    def apply(moov: Box) -> None:
        trak = moov.first(b"trak")
        body = struct.pack(">I", len(entries)) + b"".join(struct.pack(">IiI", d, t, r) for d, t, r in entries)
        edts = Box(b"edts", children=[full(b"elst", 0, 0, body)])
        trak.children = [c for c in trak.children if c.kind != b"edts"]
        trak.children.insert(1, edts)
    return apply


def _seig(kind: bytes) -> Box:
    if kind == b"sgpd":
        entry = bytes([0, 0, 1, 8]) + bytes(16)
        return full(b"sgpd", 1, 0, b"seig" + struct.pack(">II", 20, 1) + entry)
    return full(b"sbgp", 0, 0, b"seig" + struct.pack(">III", 1, 25, 1))


def _dts_backwards(moof: Box) -> None:
    tfdt = _video_traf(moof).first(b"tfdt")
    tfdt.data = tfdt.data[:4] + bytes(len(tfdt.data) - 4)


def _negative_cto(run: Run) -> Run:
    samples = [dict(s, cto=0xFFFFFE00) if k == 1 else dict(s, cto=s.get("cto", 0)) for k, s in enumerate(run.samples)]
    return run._replace(version=1, samples=samples)


def _zero_size(run: Run) -> Run:
    samples = [dict(s) for s in run.samples]
    samples[-1]["size"] = 0
    return run._replace(samples=samples)


def _gap(run: Run) -> Run:
    return run._replace(data_offset=run.data_offset + 1)


def _piff(moof: Box) -> None:
    _add_to_traf(box(b"uuid", _PIFF_SENC + bytes(8)))(moof)


def _sixty_four_bit(data: bytes) -> bytes:
    boxes = parse(data)
    at = next(k for k, b in enumerate(boxes) if b.kind == b"mdat")
    body = boxes[at].body()
    wide = struct.pack(">I4sQ", 1, b"mdat", 16 + len(body)) + body
    return encode(boxes[:at]) + wide + encode(boxes[at + 1:])


def _moof_first(data: bytes) -> bytes:
    boxes = parse(data)
    moov = next(k for k, b in enumerate(boxes) if b.kind == b"moov")
    moof = next(k for k, b in enumerate(boxes) if b.kind == b"moof")
    order = boxes[:moov] + boxes[moof:moof + 2] + [boxes[moov]] + boxes[moof + 2:]
    return encode(order)


def _on_moof(change: Callable[[Box], None], which: int = 0, keep: bool = False) -> Callable[[bytes], bytes]:
    return lambda data: edit_moof(data, change, which, keep)


def _on_moov(change: Callable[[Box], None]) -> Callable[[bytes], bytes]:
    return lambda data: edit_moov(data, change)


def as_cbcs(data: bytes) -> bytes:
    """The real CENC file described as 'cbcs' with a 1:9 pattern ('tenc' version 1), its samples
    and their encryption info unchanged: what the readers take from the sample entry."""
    def change(moov: Box) -> None:
        stsd = moov.first(b"trak", b"mdia", b"minf", b"stbl", b"stsd")
        sinf = stsd.children[0].first(b"sinf")
        schm = sinf.first(b"schm")
        schm.data = schm.data[:4] + b"cbcs" + schm.data[8:]
        tenc = sinf.first(b"schi", b"tenc")
        tenc.set_flags(0, version=1)
        tenc.data = tenc.data[:5] + bytes([0x19]) + tenc.data[6:]
    return edit_moov(data, change)


FMP4 = "fmp4-pyav-bframes"
AUDIO = "fmp4-ffmpeg-hvc1-audio"
CENC = "fmp4-pyav-cenc"
MP4 = "mp4-pyav-hev1-bframes-faststart"

MUTATIONS: Dict[str, Mutation] = {
    "trun without data_offset": Mutation(FMP4, _on_moof(_set_run(_no_data_offset)), "a 'trun' without data_offset"),
    "two trafs of the video track": Mutation(FMP4, _on_moof(_split_traf), "two 'traf' boxes of track 1 in one 'moof'"),
    "explicit base_data_offset": Mutation(FMP4, _on_moof(_tfhd_flags(add=1, extra=bytes(8))),
                                          "a 'tfhd' with an explicit base_data_offset"),
    "video traf second without default-base-is-moof": Mutation(AUDIO, _video_second_without_base,
                                                               "a 'tfhd' without default-base-is-moof"),
    "a gap before the first sample": Mutation(FMP4, _on_moof(_set_run(_gap)), "gap or overlap of 1 bytes"),
    "bytes left over in the mdat": Mutation(FMP4, _mdat_grown, "bytes left over"),
    "a sample of 0 bytes": Mutation(FMP4, _on_moof(_set_run(_zero_size)), "a sample of 0 bytes"),
    "two sample entries": Mutation(FMP4, _on_moov(_two_entries), "video track 1 has 2 sample entries", True),
    "sample description index 2 (tfhd)": Mutation(FMP4, _on_moof(_sdi), "sample description index 2, not 1"),
    "sample description index 2 (trex)": Mutation(FMP4, _trex(lambda t: t.set_u32(8, 2)),
                                                  "default sample description index is 2", True),
    "no tfdt": Mutation(FMP4, _on_moof(_drop(b"tfdt")), "'traf' has no 'tfdt' box"),
    "moov twice": Mutation(FMP4, _second_moov, "a second movie header ('moov')"),
    "moof before moov": Mutation(FMP4, _moof_first, "a movie fragment before the movie header", True),
    "PIFF senc uuid": Mutation(FMP4, _on_moof(_piff), "a PIFF 'uuid' box in 'traf'"),
    "sgpd seig": Mutation(FMP4, _on_moof(_add_to_traf(_seig(b"sgpd"))), "a 'sgpd' of grouping type 'seig'"),
    "sbgp seig": Mutation(FMP4, _on_moof(_add_to_traf(_seig(b"sbgp"))), "a 'sbgp' of grouping type 'seig'"),
    "senc count": Mutation(CENC, _on_moof(_senc_change(_senc_count)), "'senc' holds 24 entries for 25 samples"),
    "subsamples not adding up": Mutation(CENC, _on_moof(_senc_change(_subsample_bytes)),
                                         "subsample sizes that do not add up"),
    "saiz disagrees": Mutation(CENC, _on_moof(_saiz_size), "'saiz' and 'senc' disagree"),
    "saio elsewhere": Mutation(CENC, _on_moof(_saio_offset), "'saio' does not point at the 'senc' entries"),
    "protected without senc": Mutation(CENC, _on_moof(_drop(b"senc")), "protected samples without a 'senc' box"),
    "two edits": Mutation(FMP4, _on_moov(_elst([(1000, 0, 0x10000), (1000, 0, 0x10000)])),
                          "an edit list of 2 entries"),
    "an empty edit longer than the media time after it": Mutation(
        FMP4, _on_moov(_elst([(80, -1, 0x10000), (0, 3600, 0x10000)])),
        "an empty edit of 7200 ticks before media time 3600"),
    "a lone empty edit": Mutation(FMP4, _on_moov(_elst([(1000, -1, 0x10000)])), "an empty edit alone"),
    "a dwell": Mutation(FMP4, _on_moov(_elst([(1000, 0, 0)])), "an edit of media rate 0/65536"),
    "negative composition offset": Mutation(FMP4, _on_moof(_set_run(_negative_cto)), "a negative composition offset"),
    "decode time going back": Mutation(FMP4, _on_moof(_dts_backwards, which=1), "a decode time not after"),
    "64-bit mdat size in fragments": Mutation(FMP4, _sixty_four_bit, "'mdat' has a 64-bit size"),
    "progressive: two edits": Mutation(MP4, _on_moov(_elst([(500, 0, 0x10000), (500, 0, 0x10000)])),
                                       "an edit list of 2 entries"),
}


__all__ = ["Box", "MUTATIONS", "Mutation", "REFUSED_REAL", "Run", "as_cbcs", "box", "edit_moof", "edit_moov",
           "encode", "full", "parse", "point_saio_at_senc", "read_trun", "real_files", "shift_data_offsets", "top",
           "write_trun"]
