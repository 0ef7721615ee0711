"""segbind.containers on real files: content sniffing, HLS playlists, several files read as
one stream, the head variants that undo remuxers (and never let changed video through),
and the POC clock that gives raw H.264 its timestamps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from host_sim import clips
from segbind import Canonical, InvalidSegment, StreamVerifier
from segbind.errors import InputError
from segbind.read import (
    ANNEXB,
    FLV,
    HLS,
    MATROSKA,
    MP4,
    MPEGTS,
    ConcatReader,
    SampleCutter,
    annexb_segments,
    container_segments,
    parse_playlist,
    sniff,
    tagged_segments,
)
from segbind.read.events import Sample, TrackInfo
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
    for first in (b"\x40\x01\x0c", b"\x46\x01\x50", b"\x4e\x01\x05", b"\x2a\x01\xaf"):  # H.265 VPS, AUD, SEI, CRA
        assert sniff(b"\x00\x00\x00\x01" + first) == ANNEXB
    for head, why in ((b"", "empty"),
                      (b"ID3\x04" + bytes(100), "audio only"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "WAV"),
                      (b"\x00\x00\x01\x00\x00", "invalid first NAL"), (b"hello", "not an H.264 or H.265 stream")):
        with pytest.raises(InputError, match=why):
            sniff(head)


def test_playlists_byte_ranges_and_runs(tmp_path: Path) -> None:
    """The byte ranges and init segments of a playlist read as one stream; the strict rules
    themselves are tested in test_playlist.py."""
    (tmp_path / "all.mp4").write_bytes(bytes(range(256)) * 4)
    text = "\n".join([
        "#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:7", '#EXT-X-MAP:URI="all.mp4",BYTERANGE="100@0"',
        "#EXT-X-BYTERANGE:200@100", "#EXTINF:1,", "all.mp4",
        "#EXT-X-BYTERANGE:50", "#EXTINF:1,", "all.mp4",
        '#EXT-X-MAP:URI="other.mp4"', "#EXT-X-DISCONTINUITY", "#EXTINF:1,", "sub/b.ts", "#EXT-X-ENDLIST", ""])
    (tmp_path / "p.m3u8").write_text(text)
    playlist = parse_playlist(text.encode(), str(tmp_path / "p.m3u8"))
    base = str(tmp_path)
    assert playlist.ended
    assert [(e.media, e.init, e.discontinuity, e.sequence) for e in playlist.segments] == [
        ((base + "/all.mp4", 100, 200), (base + "/all.mp4", 0, 100), False, 7),
        ((base + "/all.mp4", 300, 50), (base + "/all.mp4", 0, 100), False, 8),
        ((base + "/sub/b.ts", 0, None), (base + "/other.mp4", 0, None), True, 9)]
    first = playlist.segments[0]
    reader = io.BufferedReader(ConcatReader([first.init, first.media, playlist.segments[1].media]), 7)
    whole = bytes(range(256)) * 4
    assert reader.read() == whole[:100] + whole[100:300] + whole[300:350]
    remote = parse_playlist(text.encode(), "http://127.0.0.1:9/cam/p.m3u8")
    assert remote.segments[2].media == ("http://127.0.0.1:9/cam/sub/b.ts", 0, None)
    live = parse_playlist(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:1,\nb.ts\n",
                          base + "/p.m3u8")
    assert not live.ended and len(live.segments) == 1


def test_several_files_read_as_one_stream(tagged: Path, keys: Path, tmp_path: Path) -> None:
    ffmpeg("-i", str(tagged), "-c", "copy", str(tmp_path / "a.mp4"))
    ffmpeg("-i", str(tmp_path / "a.mp4"), "-c", "copy", str(tmp_path / "a.ts"))
    data = (tmp_path / "a.ts").read_bytes()
    cut = len(data) // 188 // 3 * 188
    (tmp_path / "p1.ts").write_bytes(data[:cut])
    (tmp_path / "p2.ts").write_bytes(data[cut:])
    parts = [(str(tmp_path / "p1.ts"), 0, None), (str(tmp_path / "p2.ts"), 0, None)]
    verifier = StreamVerifier(rings(keys)[0])
    verdicts = [verifier.verify_canonical(s).reason.value
                for s in container_segments(ConcatReader(parts), MPEGTS, "x")]
    assert verdicts == ["ok"] * 4


def test_head_variants_undo_remuxers_but_not_changes(tagged: Path, keys: Path) -> None:
    """Build the heads remuxers were seen to produce, from the tagged stream's own units, as a
    container's samples (one access unit each) and as an Annex-B stream."""
    alice = rings(keys)[0]
    segments = [[seg[s:e] for s, e in annexb_units(seg)] for seg in tagged_segments(tagged.read_bytes())]
    plaintexts = []
    owner = StreamVerifier(alice)
    for seg in tagged_segments(tagged.read_bytes()):
        assert owner.verify(seg).accepted
        plaintexts.append(owner.verified)
    head_sets = [u for u in segments[0] if u[0] & 0x1F in (7, 8)]

    def access_units(units):  # a picture's first slice begins an access unit, with what leads it
        out, current = [], []
        for unit in units:
            if unit[0] & 0x1F in (1, 5) and unit[1] & 0x80 and any(u[0] & 0x1F in (1, 5) for u in current):
                lead = []
                while current and current[-1][0] & 0x1F not in (1, 5):
                    lead.insert(0, current.pop())
                out.append(current)
                current = lead
            current.append(unit)
        return out + [current]

    def as_samples(order):
        cutter = SampleCutter()
        out = cutter.feed(TrackInfo(1, "h264", 0, head_sets, 1000))  # Annex-B samples, times in ms
        pictures = 0
        for seg in segments:
            for au in access_units(order(seg)):
                data = b"".join(b"\x00\x00\x00\x01" + u for u in au)
                out += cutter.feed(Sample(data, 40 * pictures, 40 * pictures, 40))  # 25 fps, decoding order
                pictures += 1
        return out + cutter.finish()

    def as_annexb(order):
        return list(annexb_segments(b"".join(b"\x00\x00\x00\x01" + u for seg in segments for u in order(seg))))

    def head_of(units):  # the units before the first picture, and the rest
        first = next(i for i, u in enumerate(units) if u[0] & 0x1F in (1, 5))
        return units[:first], units[first:]

    def sets_behind_seis(units):  # mp4toannexb: parameter sets right before the slice
        head, rest = head_of(units)
        return [u for u in head if u[0] & 0x1F not in (7, 8)] + [u for u in head if u[0] & 0x1F in (7, 8)] + rest

    def stripped(units):  # avcC-only packagers
        head, rest = head_of(units)
        return [u for u in head if u[0] & 0x1F not in (7, 8)] + rest

    def sets_first(units):  # the TS muxer's extradata insertion: after the delimiter, ahead of the tag
        head, rest = head_of(units)
        sets = [u for u in head if u[0] & 0x1F in (7, 8)]
        others = [u for u in head if u[0] & 0x1F not in (7, 8)]
        return others[:1] + sets + others[1:] + rest

    for rebuild in (as_samples, as_annexb):
        for order in (sets_behind_seis, stripped, sets_first):
            if rebuild is as_annexb and order is stripped:
                continue  # an Annex-B stream has no avcC to restore its first segment's sets from
            rebuilt = rebuild(order)
            assert len(rebuilt) == len(segments), (rebuild, order)
            plain, fixed = StreamVerifier(alice), StreamVerifier(alice)
            as_found = []
            for seg in rebuilt:
                try:
                    plain.auth.authenticate(seg)
                    as_found.append("ok")
                except InvalidSegment as exc:
                    as_found.append(exc.reason.value)
            assert [fixed.verify_canonical(s).reason.value for s in rebuilt] == ["ok"] * len(segments), order
            if order is sets_first:  # the digest leaves the tag out: units moved across it hash the same
                assert as_found == ["ok"] * len(segments)
            else:
                assert "content_mismatch" in as_found, order
            # What is handed on is the camera's segment, byte for byte, and a decoder gets it decrypted.
            assert [fixed.judge(s)[1] for s in rebuilt] == [None] * len(segments)  # duplicates now
            again = StreamVerifier(alice)
            accepted = [again.judge(s)[1] for s in rebuilt]
            assert [a.protected() for a in accepted] == tagged_segments(tagged.read_bytes())
            assert [a.plaintext() for a in accepted] == plaintexts
        # Changed video never passes through a variant.
        for order in (sets_behind_seis, stripped, sets_first):
            if rebuild is as_annexb and order is stripped:
                continue
            segs = rebuild(order)
            data = bytearray(segs[1].data)
            s, e = [u for u in annexb_units(bytes(data)) if data[u[0]] & 0x1F == 1][1]
            data[e - 3] ^= 1
            segs[1] = Canonical(bytes(data), segs[1].tag_start, segs[1].tag_end, segs[1].units, None, "",
                                segs[1].restore, None, segs[1].exact, segs[1].codec)
            verifier = StreamVerifier(alice)
            assert [verifier.verify_canonical(x).reason.value for x in segs][:3] == ["ok", "content_mismatch",
                                                                                       "gap"]


def test_poc_clock_gives_display_order(tmp_path: Path) -> None:
    """Frames decoded from a PyAV remux come out with strictly increasing, evenly spaced
    timestamps, and the clock's display order matches the decoder's output order."""
    import av

    for kind in ("pyav-once", "ffmpeg-bframes-slices-aud", "pyav-interlaced", "pyav-baseline"):
        data = clips.make_kind(kind)
        clock = PocClock()
        order = []
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
