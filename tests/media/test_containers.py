"""segbind.containers on real files: content sniffing, HLS playlists, several files read as
one stream, the head variants that undo remuxers (and never let changed video through),
and the POC clock that gives raw H.264 its timestamps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from host_sim import clips
from segbind import StreamVerifier
from segbind.errors import InputError
from segbind.read import (
    ANNEXB,
    FLV,
    HLS,
    MATROSKA,
    MP4,
    MPEGTS,
    ConcatReader,
    Segment,
    SegmentBuilder,
    annexb_segments,
    container_segments,
    read_playlist,
    sniff,
)
from segbind.write import PocClock, remux_annexb
from segbind_core.nal import annexb_units
from tests.support.media import ffmpeg, rings, tag


@pytest.fixture(scope="module")
def tagged(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("containers")
    return tag(keys, clips.make_kind("pyav-once"), d / "tagged.h264")


def test_sniff_tells_inputs_apart_by_content_not_name(tagged: Path, tmp_path: Path) -> None:
    made = {"a.ts": MPEGTS, "a.mp4": MP4, "a.mkv": MATROSKA, "a.flv": FLV}
    ffmpeg("-i", str(tagged), "-c", "copy", str(tmp_path / "a.mp4"))
    for name in ("a.ts", "a.mkv", "a.flv"):
        ffmpeg("-i", str(tmp_path / "a.mp4"), "-c", "copy", str(tmp_path / name))
    for name, kind in made.items():
        # Named like something else: the content decides.
        wrong = tmp_path / (name + ".h264")
        wrong.write_bytes((tmp_path / name).read_bytes())
        assert sniff(wrong.read_bytes()[:1024]) == kind
    assert sniff(tagged.read_bytes()[:1024]) == ANNEXB
    assert sniff(b"\xef\xbb\xbf  #EXTM3U\n") == HLS
    for head, why in ((b"", "empty"), (b"\x00\x00\x00\x01\x40\x01\x0c", "HEVC"),
                      (b"ID3\x04" + bytes(100), "audio only"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "WAV"),
                      (b"\x00\x00\x01\x00\x00", "invalid first NAL"), (b"hello", "not an H.264 stream")):
        with pytest.raises(InputError, match=why):
            sniff(head)


def test_playlists_byte_ranges_and_runs(tmp_path: Path) -> None:
    (tmp_path / "all.mp4").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "b.ts").write_bytes(b"x" * 10)
    text = "\n".join([
        "#EXTM3U", '#EXT-X-MAP:URI="all.mp4",BYTERANGE="100@0"',
        "#EXT-X-BYTERANGE:200@100", "#EXTINF:1,", "all.mp4",
        "#EXT-X-BYTERANGE:50", "#EXTINF:1,", "all.mp4",
        '#EXT-X-MAP:URI="other.mp4"', "#EXTINF:1,", "sub/../b.ts", "#EXT-X-ENDLIST", ""])
    (tmp_path / "p.m3u8").write_text(text)
    runs = read_playlist(str(tmp_path / "p.m3u8"))
    base = str(tmp_path)
    assert runs == [[(base + "/all.mp4", 0, 100), (base + "/all.mp4", 100, 200), (base + "/all.mp4", 300, 50)],
                    [(base + "/other.mp4", 0, None), (base + "/sub/../b.ts", 0, None)]]
    reader = io.BufferedReader(ConcatReader(runs[0]), 7)
    assert reader.read() == ((bytes(range(256)) * 4)[:100] + (bytes(range(256)) * 4)[100:300]
                             + (bytes(range(256)) * 4)[300:350])


def test_several_files_read_as_one_stream(tagged: Path, keys: Path, tmp_path: Path) -> None:
    ffmpeg("-i", str(tagged), "-c", "copy", str(tmp_path / "a.mp4"))
    ffmpeg("-i", str(tmp_path / "a.mp4"), "-c", "copy", str(tmp_path / "a.ts"))
    data = (tmp_path / "a.ts").read_bytes()
    cut = len(data) // 188 // 3 * 188
    (tmp_path / "p1.ts").write_bytes(data[:cut])
    (tmp_path / "p2.ts").write_bytes(data[cut:])
    parts = [(str(tmp_path / "p1.ts"), 0, None), (str(tmp_path / "p2.ts"), 0, None)]
    verifier = StreamVerifier(rings(keys)[0])
    verdicts = [s.verify(verifier).reason.value for s in container_segments(ConcatReader(parts), MPEGTS, "x")]
    assert verdicts == ["ok"] * 4


def units_of(segment: Segment) -> list:
    return [bytes(segment.buf[s:e]) for s, e in segment.units]


def test_head_variants_undo_remuxers_but_not_changes(tagged: Path, keys: Path) -> None:
    """Build the heads remuxers were seen to produce, from the tagged stream's own units."""
    data = tagged.read_bytes()
    alice = rings(keys)[0]
    segments = list(annexb_segments(data))
    head_sets = [u for u in units_of(segments[0]) if u[0] & 0x1F in (7, 8)]

    def rebuilt(order) -> list:
        builder = SegmentBuilder(head_sets)
        out = []
        for seg in segments:
            for unit in order(units_of(seg)):
                closed = builder.add(unit)
                if closed is not None:
                    out.append(closed)
        out.append(builder.finish())
        return out

    def sets_behind_seis(units):  # mp4toannexb: parameter sets right before the slice
        head = [u for u in units if u[0] & 0x1F in (6, 9)][:2]
        rest = [u for u in units if u not in head]
        return head + rest if len(head) == 2 else units

    def stripped(units):  # avcC-only packagers
        return [u for u in units if u[0] & 0x1F not in (7, 8)]

    def sets_first(units):  # the TS muxer's extradata insertion, ahead of the tag
        sets = [u for u in units if u[0] & 0x1F in (7, 8)]
        return sets + [u for u in units if u not in sets]

    def with_aud(units):  # the TS muxer's access unit delimiter
        return [b"\x09\xf0"] + units

    for order in (sets_behind_seis, stripped, sets_first, with_aud):
        rebuilt_segments = rebuilt(order)
        assert len(rebuilt_segments) == len(segments)
        plain = StreamVerifier(alice)
        fixed = StreamVerifier(alice)
        as_found = [plain.verify_units(s.buf, s.units, prefixed=True).reason.value for s in rebuilt_segments]
        assert [s.verify(fixed).reason.value for s in rebuilt_segments] == ["ok"] * len(segments), order
        if order in (sets_behind_seis, stripped):
            assert "content_mismatch" in as_found, order
        else:  # the builder gave the units ahead of the tag to the tag's segment
            assert as_found == ["ok"] * len(segments)
    # Changed video never passes through a variant.
    for order in (sets_behind_seis, stripped, sets_first):
        segs = rebuilt(order)
        seg = segs[1]
        s, e = [u for u in seg.units if seg.buf[u[0]] & 0x1F == 1][1]
        seg.buf[e - 3] ^= 1
        verifier = StreamVerifier(alice)
        assert [x.verify(verifier).reason.value for x in segs][:3] == ["ok", "content_mismatch", "gap"]


def test_poc_clock_gives_display_order(tmp_path: Path) -> None:
    """Frames decoded from a PyAV remux come out with strictly increasing, evenly spaced
    timestamps, and the clock's display order matches the decoder's output order."""
    import av

    for kind in ("pyav-once", "ffmpeg-bframes-slices-aud", "pyav-interlaced", "pyav-baseline"):
        data = clips.make_kind(kind)
        clock = PocClock()
        order = []
        au_units = []
        for seg in annexb_segments(data):
            au_units.extend(seg.units)
        # One access unit per picture: feed the clock picture by picture.
        pictures, current = [], []
        for s, e in annexb_units(data):
            if data[s] & 0x1F in (1, 5) and data[s + 1] & 0x80 and current and any(
                    data[a] & 0x1F in (1, 5) for a, _ in current):
                pictures.append(current)
                current = []
            current.append((s, e))
        pictures.append(current)
        for index, units in enumerate(pictures):
            order += clock.push(index, data, units)
        order += clock.flush()
        assert [item for item, _, _ in order] == list(range(len(pictures)))  # decoding order kept
        display = {item: d for item, d, _ in order}
        remux_annexb(io.BytesIO(data), str(tmp_path / "o.mkv"), "matroska")
        with av.open(str(tmp_path / "o.mkv")) as c:
            pts = [f.pts for f in c.decode(video=0)]
        assert pts == sorted(pts) and len(set(pts)) == len(pts) == len(pictures)
        assert sorted(display.values()) == list(range(len(pictures)))
