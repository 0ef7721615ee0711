"""Timing bound per picture (docs/FORMAT.md 7.5): a container that reverses the pictures of
every segment, or freezes one picture for half a second and squeezes the rest, presents the
camera's pictures where the camera did not put them. Refused in every container, both codecs;
the owner's own remux of the same packets is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from host_sim import clips
from segbind import Keyring
from segbind.verifier import Timing, picture_displacement
from segbind.write import remux_annexb
from segbind_core.nal import annexb_units
from segbind_core.tag import CODEC_H264, CODEC_H265
from tests.support.media import by_segment, rewrite_packets, sample_has_tag, tag

pytestmark = pytest.mark.slow

FRAG = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
CONTAINERS = {"mp4": ("mp4", {}, "x.mp4"), "fmp4": ("mp4", FRAG, "f.mp4"), "mkv": ("matroska", {}, "x.mkv"),
              "ts": ("mpegts", {}, "x.ts")}
KINDS = {"h264": "pyav-bframes-slices-aud", "h265": "x265-pyav-bframes-radl-slices-aud"}


@pytest.fixture(scope="module")
def remuxed(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[Path, List[int]]]:
    """codec -> (the owner's MP4, with timestamps from the picture order; the index of the
    first packet of each tagged segment)."""
    import av

    out = {}
    for codec, kind in KINDS.items():
        d = tmp_path_factory.mktemp(codec)
        tagged = tag(keys, clips.make_kind(kind), d / "tagged.es")
        remux_annexb(str(tagged), str(d / "own.mp4"), "mp4")
        with av.open(str(d / "own.mp4")) as container:
            packets = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
        starts = [i for i, data in enumerate(packets) if sample_has_tag(data)]
        assert len(starts) == 4 and starts[0] == 0
        out[codec] = (d / "own.mp4", starts)
    return out


def reversed_in_segments(starts: List[int]):
    """Each segment's pictures presented in reverse: the last one first."""
    def retime(times: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
        out = list(times)
        shift = max(p for p, _ in times) - min(p for p, _ in times)
        for seg in by_segment(starts, len(times)):
            low, high = min(times[i][0] for i in seg), max(times[i][0] for i in seg)
            for i in seg:
                out[i] = (low + high - times[i][0], times[i][1] - shift)  # decoding times moved back to stay first
        return out
    return retime


def frozen_in_segments(starts: List[int], freeze_ticks: int, changed: List[int]):
    """In each segment long enough, the third picture stays on screen ``freeze_ticks`` longer;
    the ones after it are squeezed into what is left, so the segment still ends on time. The
    segments changed are appended to ``changed``."""
    def retime(times: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
        out = list(times)
        for number, seg in enumerate(by_segment(starts, len(times))):
            order = sorted(seg, key=lambda i: times[i][0])
            t = [times[i][0] for i in order]
            k = 2
            after = t[k] + freeze_ticks
            rest = len(t) - 1 - (k + 1)
            if rest < 1 or t[-1] - after < 2 * freeze_ticks // 5:
                continue  # too short to freeze half a second in: left alone
            changed.append(number)
            for j, i in enumerate(order):
                if j > k:
                    out[i] = (round(after + (j - k - 1) * (t[-1] - after) / rest), times[i][1])
        return out
    return retime


def expected_verdicts(refused, count: int) -> List[str]:
    """timing for the segments changed; ok for the others, gap after a refused one (unless none
    was accepted before it: then it is the first seen)."""
    out: List[str] = []
    for k in range(count):
        seen = any(r != "timing" for r in out)
        out.append("timing" if k in refused else "gap" if seen and out[-1] == "timing" else "ok")
    return out


def verdicts(keys: Path, path: Path) -> List[Tuple[str, str]]:
    import segbind

    with segbind.open(str(path), Keyring.load(keys / "alice-ring.json")) as media:
        return [(r.reason.value, r.detail) for r in media]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("codec", sorted(KINDS))
def test_pictures_out_of_the_cameras_order_are_refused(codec: str, container: str, remuxed, keys: Path,
                                                       tmp_path: Path) -> None:
    own, starts = remuxed[codec]
    fmt, options, name = CONTAINERS[container]
    honest = rewrite_packets(own, tmp_path / ("own-" + name), fmt, options=options)
    assert [r for r, _ in verdicts(keys, honest)] == ["ok"] * 4
    import av

    with av.open(str(own)) as container_file:
        tick = container_file.streams.video[0].time_base
    half_second = int(0.5 / tick)
    frozen: List[int] = []
    for attack, retime in (("reversed", reversed_in_segments(starts)),
                           ("frozen", frozen_in_segments(starts, half_second, frozen))):
        path = rewrite_packets(own, tmp_path / (attack + "-" + name), fmt, options=options, retime=retime)
        got = verdicts(keys, path)
        changed = range(4) if attack == "reversed" else frozen
        assert attack == "reversed" or len(frozen) >= 3  # the last segment may be too short to freeze in
        if container == "mp4" and got and "edit list's media time" in got[0][1]:
            # moved back to keep decoding first, the decoding times make the muxer write an edit list
            # that does not start at the first picture shown: the file is refused whole, as timing
            assert [r for r, _ in got] == ["timing"], (attack, got)
            continue
        assert [r for r, _ in got] == expected_verdicts(changed, 4), (attack, got)
        assert all("from its place" in detail for r, detail in got if r == "timing"), (attack, got)


def test_the_tolerance_is_the_segments_own_reordering() -> None:
    """A picture may be presented as far from its place as the decoder's reordering takes it
    (decoding order against picture order), plus half a frame; not a frame more."""
    order = [(1, poc) for poc in (0, 6, 2, 4, 12, 8, 10)]  # I P B B P B B: reordered by up to 2
    in_place = [40.0 * rank for rank in (0, 3, 1, 2, 6, 4, 5)]
    decoding = [40.0 * i for i in range(7)]  # ffmpeg 5.1's raw B-frame remux: pts = dts
    assert picture_displacement(Timing(7, 280, 0, 40, in_place, order)) is None
    assert picture_displacement(Timing(7, 280, 0, 40, decoding, order)) is None
    # One picture moved: the segment's offset is the best fit, so it stands half its move away.
    late = list(in_place)
    late[2] += 2 * (2 * 40 + 20) + 10  # rank 1 shown more than twice the tolerance late
    found = picture_displacement(Timing(7, 280, 0, 40, late, order))
    assert found is not None and found[0] == 1 and 100 < found[2] < 105  # the container's frame, a little longer
    late[2] -= 20
    assert picture_displacement(Timing(7, 280, 0, 40, late, order)) is None
    no_b = [(1, 2 * k) for k in range(7)]  # no reordering: half a frame only
    assert picture_displacement(Timing(7, 280, 0, 40, [40.0 * k for k in range(7)], no_b)) is None
    shaken = [40.0 * k + (45 if k == 3 else 0) for k in range(7)]
    assert picture_displacement(Timing(7, 280, 0, 40, shaken, no_b)) is not None


def test_poc_order_is_read_from_real_streams(keys: Path, tmp_path: Path) -> None:
    """The order the verifier checks is the decoder's: on a real B-frame stream, the ranks from
    the picture order counts equal the order PyAV's decoder outputs the pictures in."""
    import av

    from segbind.read.cut import PictureClock

    data = clips.make_kind("pyav-bframes-slices-aud")
    clock = PictureClock(1)
    order = []
    units = annexb_units(data)
    first = True
    for s, e in units:
        kind = data[s] & 0x1F
        if kind in (7, 8):
            clock.parameter_set(data[s:e])
        elif kind in (1, 5) and data[s + 1] & 0x80:  # first_mb_in_slice == 0
            key, _field = clock.picture(data[s:e])
            order.append(key)
            first = False
    assert not first and all(isinstance(key, tuple) for key in order)
    ranks = sorted(range(len(order)), key=lambda i: order[i])
    codec = av.CodecContext.create("h264", "r")
    decoded = []
    for index, packet in enumerate(list(codec.parse(data)) + list(codec.parse(b""))):
        packet.pts = index
        decoded += [frame.pts for frame in codec.decode(packet)]
    decoded += [frame.pts for frame in codec.decode(None)]
    assert decoded == ranks


@pytest.mark.parametrize("codec", [CODEC_H264, CODEC_H265])
def test_a_decoder_record_unit_of_zero_bytes_is_no_parameter_set(codec: int) -> None:
    """An avcC/hvcC unit of zero bytes (stripped of its trailing zeros: empty) is kept as no
    parameter set, not an IndexError out of the reader (the JS gate refuses such a file as
    framing, through the record check; so does read.cut)."""
    from segbind.read.cut import UNREADABLE, PictureClock
    clock = PictureClock(codec, [b"\x00", b"", b"\x00\x00\x00"])
    clock.parameter_set(b"")
    assert clock.picture(b"\x41\x9a\x00")[0] == UNREADABLE
