"""Common Encryption ('cenc') fMP4, packaged without keys (docs/FORMAT.md 4.4): `segbind hls
--type fmp4` and the cloud's packaging (segbind.web.fmp4), read back by the strict MP4 reader and
the verifier, decrypted by Debian's ffmpeg given the content key.

Real x264 and x265 clips (B-frames, several slices, delimiters) are tagged as a camera tags them,
across a period boundary (two key ids: two init segments), then packaged:

- keyless round trip: Annex-B -> 'cenc' fMP4 -> the camera's protected form again, with no key
  anywhere on the way (the cutter's own output is the camera's bytes);
- the strict reader reads what the packager writes (one 'traf', default-base-is-moof, a
  data_offset, runs tiling the 'mdat', senc/saiz/saio, 16-byte IVs), keyframes exactly where
  tagged segments begin;
- `segbind verify` accepts the playlist for its owner and refuses it for a stranger; accepted
  segments decrypt exactly as the Annex-B they came from;
- Debian's ffmpeg with -decryption_key gives exactly the untagged source's frames; without the
  key, nothing that resembles the scene;
- every refusal of FORMAT.md 4.4 (subsamples, IVs, the scheme, default_KID) as a mutation of a
  real packaged file, and hypothesis over the subsample and IV mutations.

Debian's ffmpeg 5.1 decrypts fragmented CENC read from a pipe; from a seekable file (and through
its HLS demuxer) it applies one fragment's encryption info to another's samples, FFmpeg's own
'cenc-aes-ctr' fragments included, so the pipe is what is tested here (FFmpeg 8.1, in PyAV, reads
both: the readers test covers it).
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segbind
from host_sim import clips
from segbind import Binding, Epoch, Keyring
from segbind.read.cut import cut
from segbind.read.events import Defect, Sample, TrackInfo
from segbind.read.mp4 import mp4_events
from segbind.web import fmp4
from segbind_core.protect import DOMAIN_SEGMENT, counter_block
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import tag_codec
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger
from tests.support import run_cli
from tests.support.media import FFMPEG
from tests.support.mp4_boxes import Box, as_cbcs, edit_moof, edit_moov, parse, point_saio_at_senc, read_trun

PERIOD_S = 60
PERIOD = 1_795_000_000_000 // (PERIOD_S * 1000)
T0 = (PERIOD + 1) * PERIOD_S * 1000 - 1500  # segments 0 and 1 in one period, 2 and 3 in the next
STREAM_ID = 7_000
CLIPS = {"h264": ("pyav-bframes-slices-aud", CODEC_H264, "h264"),
         "h265": ("x265-pyav-bframes-radl-slices-aud", CODEC_H265, "hevc")}


class Packaged(NamedTuple):
    """One clip, tagged across a period boundary and packaged by `segbind hls --type fmp4`."""

    codec: int
    demuxer: str                 # ffmpeg's name for the raw codec
    plain: bytes                 # the untagged source, Annex-B
    raw: List[Segment]           # its segments as the camera's segmenter cut them (plaintext)
    segments: List[bytes]        # the tagged segments, as the camera emits them
    owner: Keyring
    directory: Path
    playlist: Path
    owner_ring: Path
    stranger_ring: Path

    def groups(self) -> List[Tuple[Path, List[Path]]]:
        """(init segment, its media segments) in playlist order."""
        out: List[Tuple[Path, List[Path]]] = []
        for line in self.playlist.read_text().splitlines():
            if line.startswith("#EXT-X-MAP:URI="):
                out.append((self.directory / line.split('"')[1], []))
            elif line and not line.startswith("#"):
                out[-1][1].append(self.directory / line)
        return out

    def key_of(self, init: Path) -> bytes:
        return self.owner.binding(default_kid(init.read_bytes())).content_key

    def __repr__(self) -> str:
        return "Packaged(%s, %s)" % ("H.264" if self.codec == CODEC_H264 else "H.265", self.directory)


def keyring(epoch: Epoch) -> Keyring:
    return Keyring(Binding.periods_of_epoch(epoch, T0 - 3_600_000, T0 + 3_600_000))


@pytest.fixture(scope="module", params=sorted(CLIPS))
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    kind, codec, demuxer = CLIPS[request.param]
    d = tmp_path_factory.mktemp("cenc-" + request.param)
    plain = clips.make_kind(kind)
    pairing = bytes(range(32))
    epoch = Epoch.of_pairing(pairing, "alice", "cam-1", 1, [], period_s=PERIOD_S)
    stranger = Epoch.of_pairing(bytes(32), "eve", "cam-1", 1, [], period_s=PERIOD_S)
    segmenter = Segmenter(delimit=True, codec=codec)
    raw = [s for s in segmenter.push(plain) + segmenter.finish() if isinstance(s, Segment)]
    tagger = Tagger(epoch, STREAM_ID, codec)
    segments, at = [], T0
    for i, segment in enumerate(raw):  # as the camera tags a recording: each where the one before ended
        segments.append(tagger.tag(segment.data, segment.units, at, segment.duration_ms, segment.pictures,
                                   i == len(raw) - 1)[0])
        at += segment.duration_ms
    (d / "tagged.annexb").write_bytes(b"".join(segments))
    owner = keyring(epoch)
    owner.save(d / "owner.json")
    keyring(stranger).save(d / "stranger.json")
    (d / "hls").mkdir()
    result = run_cli("hls", "--type", "fmp4", "--segment-duration", "1", str(d / "tagged.annexb"),
                     str(d / "hls" / "live.m3u8"))
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    return Packaged(codec, demuxer, plain, raw, segments, owner, d / "hls", d / "hls" / "live.m3u8",
                    d / "owner.json", d / "stranger.json")


# ---- reading boxes -----------------------------------------------------------------------------

def default_kid(init: bytes) -> bytes:
    tenc = _moov(init).first(b"trak", b"mdia", b"minf", b"stbl", b"stsd").children[0].first(b"sinf", b"schi", b"tenc")
    return tenc.data[8:24]


def _moov(data: bytes) -> Box:
    return next(b for b in parse(data) if b.kind == b"moov")


class Entry(NamedTuple):
    iv: bytes
    subsamples: List[Tuple[int, int]]


def senc_entries(traf: Box, iv_size: int = 16) -> List[Entry]:
    senc = traf.first(b"senc")
    count, pos, out = senc.u32(4), 8, []
    for _ in range(count):
        iv = senc.data[pos:pos + iv_size]
        pos += iv_size
        n = struct.unpack_from(">H", senc.data, pos)[0]
        pos += 2
        out.append(Entry(iv, [struct.unpack_from(">HI", senc.data, pos + 6 * k) for k in range(n)]))
        pos += 6 * n
    return out


def set_senc(moof: Box, entries: List[Entry], subsampled: bool = True) -> None:
    """The video traf's 'senc' written anew from ``entries``, its 'saiz' with their sizes."""
    traf = moof.first(b"traf")
    body = struct.pack(">I", len(entries))
    sizes = []
    for entry in entries:
        item = entry.iv
        if subsampled:
            item += struct.pack(">H", len(entry.subsamples)) + b"".join(struct.pack(">HI", c, p)
                                                                        for c, p in entry.subsamples)
        body += item
        sizes.append(len(item))
    traf.first(b"senc").data = struct.pack(">I", 2 if subsampled else 0) + body
    traf.first(b"saiz").data = struct.pack(">I", 0) + bytes([0]) + struct.pack(">I", len(sizes)) + bytes(sizes)


def edit_senc(data: bytes, change, which: int = 0) -> bytes:
    """A media segment with the senc entries of its ``which``-th fragment changed by ``change``
    (entries in, entries out), saiz and saio kept consistent."""
    def apply(moof: Box) -> None:
        set_senc(moof, change(senc_entries(moof.first(b"traf"))))
        point_saio_at_senc(moof)
    return edit_moof(data, apply, which)


# ---- the packager's output ---------------------------------------------------------------------------

def test_two_periods_two_init_segments(packaged: Packaged) -> None:
    """A new key id (the next period) begins a new init segment: 'tenc' default_KID and the
    ClearKey 'pssh' name the key id of the tags of its segments; each media segment holds whole
    tagged segments, each fragment its 'senc', 'saiz' and 'saio'."""
    groups = packaged.groups()
    assert len(groups) == 2
    key_ids = [fmp4.segment_fields(_units(s)).key_id for s in packaged.segments]
    assert key_ids[0] == key_ids[1] != key_ids[2] == key_ids[3]
    for (init, media), key_id in zip(groups, (key_ids[0], key_ids[2])):
        data = init.read_bytes()
        assert default_kid(data) == key_id
        entry = _moov(data).first(b"trak", b"mdia", b"minf", b"stbl", b"stsd").children[0]
        assert entry.kind == b"encv"
        assert entry.first(b"sinf", b"frma").data == (b"avc1" if packaged.codec == CODEC_H264 else b"hev1")
        assert entry.first(b"sinf", b"schm").data[4:] == b"cenc" + struct.pack(">I", 0x00010000)
        tenc = entry.first(b"sinf", b"schi", b"tenc").data
        assert tenc[6:8] == bytes([1, 16])  # default_isProtected, Per_Sample_IV_Size 16
        pssh = _moov(data).first(b"pssh").data
        assert pssh[4:20] == fmp4.CLEARKEY_SYSTEM_ID and pssh[20:24] == struct.pack(">I", 1) and pssh[24:40] == key_id
        moofs = [[b for b in parse(path.read_bytes()) if b.kind == b"moof"] for path in media]
        assert sum(len(m) for m in moofs) == 2  # a fragment per tagged segment
        for moof in sum(moofs, []):
            traf = moof.first(b"traf")
            assert [c.kind for c in traf.children] == [b"tfhd", b"tfdt", b"trun", b"senc", b"saiz", b"saio"]
        # whole tagged segments of about the target duration (1 s) per media segment: one closes
        # at 1 s or more, or where a new init segment or the end follows
        ticks = [sum(s["duration"] for m in ms for s in read_trun(m.first(b"traf", b"trun")).samples) for ms in moofs]
        assert all(t >= fmp4.TIMESCALE for t in ticks[:-1]), ticks


def _units(segment: bytes) -> List[bytes]:
    from segbind_core.nal import annexb_units

    return [segment[s:e] for s, e in annexb_units(segment)]


def test_keyless_round_trip_gives_back_the_cameras_bytes(packaged: Packaged) -> None:
    """Annex-B -> 'cenc' fMP4 -> the protected form again, with no key on the way: the cutter puts
    each sample's ciphertext back where the camera put it, byte for byte."""
    back: List[bytes] = []
    for init, media in packaged.groups():
        stream = io.BytesIO(init.read_bytes() + b"".join(m.read_bytes() for m in media))
        for seg in cut(mp4_events(stream, "cenc")):
            assert not seg.problem, seg.problem
            back.append(seg.output())
    assert back == packaged.segments


def test_the_strict_reader_reads_the_packagers_output(packaged: Packaged) -> None:
    spans: List[Tuple[int, int]] = []
    for (init, media), first in zip(packaged.groups(), (0, 2)):
        stream = io.BytesIO(init.read_bytes() + b"".join(m.read_bytes() for m in media))
        events = list(mp4_events(stream, "cenc"))
        assert not [e for e in events if isinstance(e, Defect)]
        info = events[0]
        assert isinstance(info, TrackInfo) and info.codec == packaged.codec and info.length_size == 4
        assert info.protection is not None and info.protection.scheme == "cenc" and info.protection.iv_size == 16
        samples = [e for e in events if isinstance(e, Sample)]
        tagged = packaged.segments[first:first + 2]
        pictures = [fmp4.segment_fields(_units(s)).pictures for s in tagged]
        assert len(samples) == sum(pictures)
        # keyframes: exactly the first access unit of each tagged segment; nothing hidden
        assert [i for i, s in enumerate(samples) if s.sync] == [0, pictures[0]]
        assert not any(s.hidden for s in samples)
        for s in samples:
            assert len(s.iv) == 16 and sum(c + p for c, p in s.subsamples) == len(s.data)
        # timestamps from the picture order: in presentation order, one frame apart, on one
        # timeline across init segments (the second period goes on where the first ended)
        times = sorted(s.pts for s in samples)
        assert {b - a for a, b in zip(times, times[1:])} == {samples[0].duration}
        spans.append((times[0], times[-1] + samples[0].duration))
        # the first sample's IV is its segment's initial counter block (FORMAT.md 4.3)
        seq = first
        assert samples[0].iv == counter_block(DOMAIN_SEGMENT, STREAM_ID, seq)
    assert spans[1][0] == spans[0][1], spans


def test_owner_accepts_stranger_refused(packaged: Packaged) -> None:
    import json

    def verify(ring: Path, *files: Path) -> Tuple[int, List[dict]]:
        result = run_cli("verify", "--keyring", str(ring), "--json", *map(str, files))
        assert b"Traceback" not in result.stderr and result.returncode != 2, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        return result.returncode, lines[:-1]

    code, verdicts = verify(packaged.owner_ring, packaged.playlist)
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * 4, verdicts
    assert [v["tag"]["seq"] for v in verdicts] == [0, 1, 2, 3]
    assert len({v["tag"]["key_id"] for v in verdicts}) == 2
    code, verdicts = verify(packaged.stranger_ring, packaged.playlist)
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * 4, verdicts
    # each media segment verifies on its own after its init segment (it holds whole tagged segments)
    for init, media in packaged.groups():
        for path in media:
            code, verdicts = verify(packaged.owner_ring, init, path)
            assert code == 0 and len(verdicts) == sum(1 for b in parse(path.read_bytes()) if b.kind == b"moof")


def test_accepted_segments_decrypt_as_the_annexb_they_came_from(packaged: Packaged) -> None:
    with segbind.open(str(packaged.playlist), packaged.owner) as media:
        results = list(media)
    with segbind.open(b"".join(packaged.segments), packaged.owner) as annexb:
        expected = list(annexb)
    assert [r.verdict.reason.value for r in results] == ["ok"] * 4
    assert [r.data for r in results] == [r.data for r in expected]
    assert [r.protected for r in results] == packaged.segments
    for result, raw in zip(results, packaged.raw):  # the camera's plaintext: its encoder's units
        data = result.data
        assert data is not None
        tag = next(u for u in _units(data) if tag_codec(u))
        assert data.replace(b"\x00\x00\x00\x01" + tag, b"", 1) == raw.data


# ---- Debian's ffmpeg --------------------------------------------------------------------------------

def ffmpeg_frames(data: bytes, *before_input: str, raw_codec: Optional[str] = None, gray: bool = False) -> bytes:
    """What Debian's ffmpeg decodes from ``data`` on its stdin: framemd5 lines, or gray frames."""
    source = ["-f", raw_codec] if raw_codec else []
    # every decoded picture, whatever its time: the CLI's default drops pictures presented before
    # the first one it demuxed (the RADL pictures of an H.265 segment's IRAP, when an init segment
    # begins there)
    output = ["-fps_mode", "passthrough"] + (["-f", "rawvideo", "-pix_fmt", "gray"] if gray
                                             else ["-map", "0:v:0", "-f", "framemd5"])
    return subprocess.run([FFMPEG, "-v", "quiet", *before_input, *source, "-i", "-", *output, "-"], input=data,
                          capture_output=True, timeout=300).stdout


def md5s(framemd5: bytes) -> List[str]:
    return [line.rsplit(b",", 1)[1].strip().decode() for line in framemd5.splitlines()
            if line and not line.startswith(b"#")]


def test_ffmpeg_decrypts_exactly_the_untagged_source(packaged: Packaged) -> None:
    decrypted: List[str] = []
    for init, media in packaged.groups():
        data = init.read_bytes() + b"".join(m.read_bytes() for m in media)
        decrypted += md5s(ffmpeg_frames(data, "-decryption_key", packaged.key_of(init).hex()))
    source = md5s(ffmpeg_frames(packaged.plain, raw_codec=packaged.demuxer))
    assert len(source) == 80 and decrypted == source


def test_without_the_key_ffmpeg_decodes_nothing_of_the_scene(packaged: Packaged) -> None:
    """A simple measure: the correlation of each decoded picture's luma with the source's. The
    source's consecutive pictures correlate near 1; what ffmpeg makes without the key, near 0
    (test_confidentiality.py measures it in full)."""
    width, height = 192, 112
    init, media = packaged.groups()[0]
    data = init.read_bytes() + b"".join(m.read_bytes() for m in media)
    size = width * height

    def pictures(raw: bytes) -> np.ndarray:
        n = len(raw) // size
        return np.frombuffer(raw[:n * size], np.uint8).reshape(n, height, width).astype(float)

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return 0.0 if norm == 0 else float((a * b).sum() / norm)

    source = pictures(ffmpeg_frames(packaged.plain, raw_codec=packaged.demuxer, gray=True))
    without = pictures(ffmpeg_frames(data, gray=True))
    with_key = pictures(ffmpeg_frames(data, "-decryption_key", packaged.key_of(init).hex(), gray=True))
    shown = sum(fmp4.segment_fields(_units(s)).pictures for s in packaged.segments[:2])
    assert len(with_key) == shown and np.array_equal(with_key, source[:shown])
    assert np.mean([correlation(a, b) for a, b in zip(source[:-1], source[1:])]) > 0.8
    assert len(without) > 0  # ffmpeg does decode something: its concealment of slices it cannot read
    assert max(abs(correlation(a, b)) for a, b in zip(source, without)) < 0.3


# ---- refusals (FORMAT.md 4.4), each a mutation of a real packaged file -----------------------------

def _shift_first_subsample(entries: List[Entry]) -> List[Entry]:
    first = entries[0]
    (c, p), rest = first.subsamples[0], first.subsamples[1:]
    return [Entry(first.iv, [(c + 1, p - 1)] + rest)] + entries[1:]


def _whole_sample(moof: Box) -> None:
    entries = senc_entries(moof.first(b"traf"))
    traf = moof.first(b"traf")
    set_senc(moof, entries, subsampled=False)
    traf.first(b"saiz").data = struct.pack(">I", 0) + bytes([16]) + struct.pack(">I", len(entries))
    point_saio_at_senc(moof)


def _iv(entries: List[Entry], k: int, iv: bytes) -> List[Entry]:
    return entries[:k] + [Entry(iv, entries[k].subsamples)] + entries[k + 1:]


def _kid(other: bytes):
    def change(moov: Box) -> None:
        tenc = moov.first(b"trak", b"mdia", b"minf", b"stbl", b"stsd").children[0].first(b"sinf", b"schi", b"tenc")
        tenc.data = tenc.data[:8] + other + tenc.data[24:]
    return change


def _pattern(moov: Box) -> None:
    """'tenc' version 1 with a 1:9 pattern, the scheme still 'cenc'."""
    tenc = moov.first(b"trak", b"mdia", b"minf", b"stbl", b"stsd").children[0].first(b"sinf", b"schi", b"tenc")
    tenc.set_flags(0, version=1)
    tenc.data = tenc.data[:5] + bytes([0x19]) + tenc.data[6:]


def _eight_byte_ivs(init: bytes, media: bytes) -> Tuple[bytes, bytes]:
    def tenc(moov: Box) -> None:
        box = moov.first(b"trak", b"mdia", b"minf", b"stbl", b"stsd").children[0].first(b"sinf", b"schi", b"tenc")
        box.data = box.data[:7] + bytes([8]) + box.data[8:]

    def senc(moof: Box) -> None:
        entries = senc_entries(moof.first(b"traf"))
        set_senc(moof, [Entry(e.iv[8:], e.subsamples) for e in entries])
        point_saio_at_senc(moof)
    for which in range(sum(1 for b in parse(media) if b.kind == b"moof")):
        media = edit_moof(media, senc, which)
    return edit_moov(init, tenc), media


class Refusal(NamedTuple):
    change: object        # (init, media) -> (init, media)
    detail: str           # what the one-line reason says
    whole_group: bool = False  # every segment of the init refused, not only the first


def refusals(packaged: Packaged) -> Dict[str, Refusal]:
    groups = packaged.groups()
    other_kid = default_kid(groups[1][0].read_bytes())

    def media(change):
        return lambda init, data: (init, change(data))

    return {
        "a subsample with one byte moved into the clear": Refusal(
            media(lambda d: edit_senc(d, _shift_first_subsample)), "subsample 0 is ("),
        "subsamples merged into one": Refusal(
            media(lambda d: edit_senc(d, lambda e: [Entry(e[0].iv, [(sum(c for c, _ in e[0].subsamples),
                                                                     sum(p for _, p in e[0].subsamples))])]
                                      + e[1:])), "subsamples where its units"),
        "whole-sample encryption": Refusal(media(lambda d: edit_moof(d, _whole_sample)), "1 subsamples where"),
        "an IV one block further": Refusal(
            media(lambda d: edit_senc(d, lambda e: _iv(e, 1, fmp4.counter_block_after(e[1].iv, 1)))),
            "the counter block its access unit begins at"),
        "the keystream restarted at the second access unit": Refusal(
            media(lambda d: edit_senc(d, lambda e: _iv(e, 1, e[0].iv))), "the counter block its access unit"),
        "the IVs of another segment": Refusal(
            media(lambda d: edit_senc(d, lambda e: [Entry(fmp4.counter_block_after(x.iv, 1 << 40), x.subsamples)
                                                    for x in e])), "a sample's IV"),
        "scheme 'cbcs'": Refusal(lambda init, data: (as_cbcs(init), data), "scheme 'cbcs'", True),
        "default_KID of the next period": Refusal(lambda init, data: (edit_moov(init, _kid(other_kid)), data),
                                                  "default_KID ('tenc') %s is not the tag's key id" % other_kid.hex(),
                                                  True),
        "8-byte IVs": Refusal(_eight_byte_ivs, "8-byte IVs", True),
        "a pattern on 'cenc'": Refusal(lambda init, data: (edit_moov(init, _pattern), data),
                                       "a 'cenc' track with an encryption pattern (1:9)", True),
    }


REFUSALS = ["a subsample with one byte moved into the clear", "subsamples merged into one",
            "whole-sample encryption", "an IV one block further", "the keystream restarted at the second access unit",
            "the IVs of another segment", "scheme 'cbcs'", "default_KID of the next period", "8-byte IVs",
            "a pattern on 'cenc'"]


def verdicts(packaged: Packaged, init: bytes, media: List[bytes], keyring: Optional[Keyring] = None) -> List:
    with segbind.open(init + b"".join(media), keyring or packaged.owner) as results:
        return [r.verdict for r in results]


@pytest.mark.parametrize("name", REFUSALS)
def test_each_refusal(packaged: Packaged, name: str) -> None:
    refusal = refusals(packaged)[name]
    init_path, media_paths = packaged.groups()[0]  # two tagged segments, in one media segment or two
    init, media = init_path.read_bytes(), [m.read_bytes() for m in media_paths]
    assert [v.reason.value for v in verdicts(packaged, init, media)] == ["ok", "ok"]
    changed_init, first = refusal.change(init, media[0])  # in its first fragment
    assert (changed_init, first) != (init, media[0])
    rest = media[1:]
    if refusal.whole_group:  # a change to the track: its every fragment follows it
        rest = [refusal.change(init, m)[1] for m in rest]
    found = verdicts(packaged, changed_init, [first] + rest)
    assert len(found) == 2
    refused = found if refusal.whole_group else found[:1]
    for verdict in refused:
        assert verdict.reason.value == "framing", (name, verdict)
        assert refusal.detail in verdict.detail and "\n" not in verdict.detail, (name, verdict.detail)
    if not refusal.whole_group:
        assert found[1].accepted  # the next tagged segment, untouched, still plays
    # a stranger learns nothing from it: refused before any framing is judged (FORMAT.md 7.1)
    stranger = Keyring.load(packaged.stranger_ring)
    assert {v.reason.value for v in verdicts(packaged, changed_init, [first] + rest, stranger)} == {"no_grant"}


def test_two_access_units_in_one_sample_are_refused(packaged: Packaged) -> None:
    """'cenc' continues the keystream across a sample; the camera begins each access unit's at a
    fresh counter block: two access units in one sample cannot decrypt both (the packager writes
    one sample per access unit)."""
    segment = packaged.segments[0]
    units = _units(segment)
    fields = fmp4.segment_fields(units)
    aus = fmp4.delimited_access_units(units, packaged.codec)
    merged = fmp4.fragment_of_samples([aus[0], aus[1] + aus[2]] + aus[3:], 1, fields)
    init = fmp4.init_segment(segment)
    found = verdicts(packaged, init, [merged])
    assert found[0].reason.value == "framing" and "access units" in found[0].detail, found[0]


# ---- hypothesis: any change to the subsamples or IVs is refused --------------------------------------

@st.composite
def senc_changes(draw: st.DrawFn) -> Tuple[str, int, int, int]:
    kind = draw(st.sampled_from(["shift", "split", "merge", "iv_bit", "iv_other", "drop_last_clear"]))
    return kind, draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000)), draw(st.integers(1, 4096))


def _apply(change: Tuple[str, int, int, int], entries: List[Entry]) -> List[Entry]:
    kind, a, b, amount = change
    k = a % len(entries)
    entry = entries[k]
    subs = list(entry.subsamples)
    j = b % len(subs)
    c, p = subs[j]
    iv = entry.iv
    if kind == "shift":  # move bytes between the clear and the protected count (the sum stays)
        moved = min(amount, p) if amount % 2 else -min(amount, c)
        subs[j] = (c + moved, p - moved)
    elif kind == "split":  # (c, p) -> (c, 0) (0, p): the same bytes, another description
        subs[j:j + 1] = [(c, 0), (0, p)]
    elif kind == "merge" and j + 1 < len(subs):
        subs[j:j + 2] = [(c + subs[j + 1][0], p + subs[j + 1][1])]
    elif kind == "iv_bit":
        bit = amount % 128
        iv = bytes(x ^ (1 << (bit % 8)) if i == bit // 8 else x for i, x in enumerate(iv))
    elif kind == "iv_other":
        iv = entries[(k + 1 + a) % len(entries)].iv
    elif kind == "drop_last_clear" and subs[-1][1] == 0 and len(subs) > 1:
        last = subs.pop()
        subs[-1] = (subs[-1][0], subs[-1][1] + last[0])
    return entries[:k] + [Entry(iv, subs)] + entries[k + 1:]


@pytest.fixture(scope="module")
def first_group(packaged: Packaged) -> Tuple[Packaged, bytes, bytes]:
    init, media = packaged.groups()[0]
    return packaged, init.read_bytes(), media[0].read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=senc_changes())
def test_any_subsample_or_iv_change_is_refused(first_group: Tuple[Packaged, bytes, bytes],
                                               change: Tuple[str, int, int, int]) -> None:
    packaged, init, media = first_group
    original = senc_entries(next(b for b in parse(media) if b.kind == b"moof").first(b"traf"))
    changed_entries = _apply(change, original)
    if changed_entries == original:
        return  # nothing changed (a merge of the last subsample, a shift of nothing)
    changed = edit_senc(media, lambda _entries: changed_entries)
    found = verdicts(packaged, init, [changed])
    assert found and not found[0].accepted, (change, found)
    assert found[0].reason.value == "framing", (change, found[0])
    assert "subsample" in found[0].detail or "IV" in found[0].detail, (change, found[0].detail)


# ---- the cloud's packaging --------------------------------------------------------------------------

def test_the_clouds_fragments_verify_and_get_an_init_segment_per_key_id(packaged: Packaged) -> None:
    """host_sim.web packages each segment the moment it arrives (segbind.web.fmp4.fragment): the
    same 'cenc' samples; its init segments are named by key id and parameter sets."""
    from host_sim.web import EdgeCache, Faults, Origin

    origin = Origin(None, EdgeCache(Faults()))  # type: ignore[arg-type]  (init names need no source)
    names = [origin.init_name(s) for s in packaged.segments]
    assert names[0] == names[1] != names[2] == names[3]
    for first in (0, 2):
        init = origin.init_bytes(names[first])
        assert init is not None and default_kid(init) == fmp4.segment_fields(_units(packaged.segments[first])).key_id
        fragments = [fmp4.fragment(s, n) for n, s in enumerate(packaged.segments[first:first + 2], first)]
        found = verdicts(packaged, init, fragments)
        assert [v.reason.value for v in found] == ["ok", "ok"], found
    with segbind.open(fmp4.init_segment(packaged.segments[0]) + fmp4.fragment(packaged.segments[0], 0),
                      packaged.owner) as results, segbind.open(packaged.segments[0], packaged.owner) as annexb:
        assert [r.data for r in results] == [r.data for r in annexb]


def test_subsamples_of_long_clear_runs() -> None:
    """BytesOfClearData is 16 bits: a clear run past 65535 bytes begins with (65535, 0) subsamples."""
    sei = (0x06, 70_000)
    slice_unit = (0x65, 1_000)
    assert fmp4.subsamples_of([sei, slice_unit], CODEC_H264, 20) == ((65535, 0), (70_004 - 65535 + 24, 979), (1, 0))
    assert fmp4.subsamples_of([(0x09, 2)], CODEC_H264, 20) == ((6, 0),)
    assert fmp4.subsamples_of([(0x65, 21)], CODEC_H264, 20) == ((25, 0),)  # n - 1 <= L: all clear
    assert fmp4.subsamples_of([(0x65, 22)], CODEC_H264, 20) == ((24, 1), (1, 0))



def test_untagged_bytes_are_left_out_and_said(packaged: Packaged, tmp_path: Path) -> None:
    """Bytes before the first tag say nothing of how to package them ('cenc' needs the tag's
    clear lead and counter block): `segbind hls` leaves them out and says how many NAL units."""
    stream = tmp_path / "in.annexb"
    stream.write_bytes(packaged.raw[0].data + b"".join(packaged.segments))
    result = run_cli("hls", "--segment-duration", "1", str(stream), str(tmp_path / "out.m3u8"))
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert b"4 tagged segments" in result.stderr
    assert b"left out, as no tag says how to package them: %d NAL units" % packaged.raw[0].units in result.stderr
    with segbind.open(str(tmp_path / "out.m3u8"), packaged.owner) as media:
        assert [r.verdict.reason.value for r in media] == ["ok"] * 4
