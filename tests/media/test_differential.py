"""Readers checked against each other (issue 18): every container file the media tests make, and
hypothesis mutants of them, read three ways: segbind's own reader
(``segbind.read.containers.reader(kind)``), PyAV (``segbind.read.pyav.pyav_events``, FFmpeg 8.1's
demuxers), and for fragmented MP4 the browser's reader (``src/segbind/web/segbind-mp4.js`` under
Node, fed the init segment then the media segments). The rule: any file that two of them read
differently must be refused by ours. Every segment whose samples differ between two readers gets a
refused verdict from ``segbind.open`` (or the whole input an InputError), and no accepted segment
hands on bytes that another reader reads differently (nor other bytes than the camera tagged).

What a reader reads (``tests.support.differential.Reading``): the decoder configuration it hands a
decoder first (the NAL length size and the units of 'avcC', 'hvcC' or CodecPrivate), then its video
samples in decoding order. Each sample is its bytes (SHA-256 and size), its presentation and
decoding times in seconds (ticks / timescale, exact fractions), and whether it is presented.
Put in the same terms, exactly so:

- MP4 edit lists. segbind's readers give times before any edit list and mark ``hidden`` the
  samples an edit puts before the presentation's start; FFmpeg moves every time by the duration
  of a leading empty edit less the media time of the edit after it (both forms segbind reads:
  ``ffmpeg_edit_shift``, computed from the file's own 'elst', 'mvhd' and 'mdhd') and flags the
  samples it will not present (its discard flag). PyAV's MP4 times are moved back by that shift;
  its discard flag is its ``hidden``, compared as it is. FFmpeg does not even return the samples
  before the sync sample it starts an edit from (mov_fix_index): our hidden samples before the
  first sample PyAV returns are not a difference.
- A sample both readers hide is presented by neither: its times are not compared (its bytes and
  its place in the decoding order are).
- Matroska stores no decoding time: PyAV's is FFmpeg's guess from the reordering delay (None for
  the first frames), segbind's the presentation time. Decoding times are not compared there; the
  decoding order is the order of the samples, which is compared.
- Zero-size samples are left out of every reading: PyAV drops zero-size packets, and no decoder
  reads anything from one. PyAV splits and merges nothing else for these containers (its MPEG-TS
  packets are what FFmpeg's parser makes of the PES stream, which is what a player decodes).
- Durations and key-frame flags are not compared: they change no picture and no presentation
  time of a sample.

Differ: the readings are aligned by the samples' bytes (difflib, no junk heuristic). Two aligned
samples differ when their times or presentation differ. Where the bytes differ, a sample of each
reader with the same presentation time is one sample read two ways (ours differs); a sample of ours
that the other skips while it reads on differs; samples only the other reads differ, and one of
the segments around them (holding our sample before or after them, or taking a Defect our reader
reported between those samples) must be refused. Our samples after the end of the other's reading
(it stopped on an error, or could not open the input at all) are not compared: that reader shows
nothing there. A different decoder configuration makes every sample differ. Any difference between
PyAV and the JavaScript reader is a difference of ours from one of them at the same place, so
comparing ours with each covers every pair.

The segments: segbind's cut (``read.cut.SampleCutter``, unchanged, traced) over our reader's
events says which samples each segment holds; ``segbind.open`` (the video alone: other tracks
dropped, the most it accepts) gives each segment's verdict, in the same order.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.support.differential import (
    File,
    JsReader,
    differences,
    our_reading,
    pyav_reading,
    remuxed_files,
    violations,
)
from tests.support.media import rings
from tests.support.mutants import structure

pytestmark = pytest.mark.slow

# The one real file segbind refuses: ffmpeg's HLS muxer delays video without B-frames by the AAC
# priming with an empty edit (docs/readers/mp4.md; test_media_remux has the variant it accepts).
REFUSED = {"h264-no-bframes/hls-fmp4+aac.mp4", "h265-no-bframes/hls-fmp4+aac.mp4"}


@pytest.fixture(scope="module")
def corpus(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, File]:
    return remuxed_files(keys, tmp_path_factory.mktemp("differential"))


@pytest.fixture(scope="module")
def js_reader() -> Iterator[JsReader]:
    reader = JsReader()
    yield reader
    reader.close()


def test_the_remuxes_users_make_are_read_alike_by_every_reader(corpus: Dict[str, File], keys: Path,
                                                               js_reader: JsReader, tmp_path: Path) -> None:
    assert len(corpus) == 78
    alice = rings(keys)[0]
    read_by_js = 0
    for name, file in sorted(corpus.items()):
        broken, info = violations(file.data, alice, file.camera, js_reader, tmp_path)
        assert not broken, (name, broken)
        reasons = [result[3] for result in info["verdicts"].results]
        ours = info["ours"]
        if name in REFUSED:
            assert not info["verdicts"].error and reasons == ["framing"]
            assert "an empty edit of" in ours.stopped and not ours.samples
            assert len(info["others"]["PyAV"].samples) == 80
            assert "an empty edit of" in info["others"]["segbind-mp4.js"].stopped
            continue
        # Accepted whole: then every reader reads every sample exactly as ours does.
        assert reasons == ["ok"] * 4, (name, reasons)
        assert len(ours.samples) == 80 and not ours.stopped
        for reader_name, found in info["differ"].items():
            assert found.ours == {} and found.only_theirs == [], (name, reader_name, found)
        read_by_js += "segbind-mp4.js" in info["others"]
        # The B-frame delay of ffmpeg's raw remux: an edit list hides the first two pictures, and
        # PyAV's discard flags (compared above) say the same.
        hidden = sum(sample.hidden for sample in ours.samples)
        raw_bframe_mp4 = name.split("/")[0] in ("h264-bframes", "h265-bframes") and "/mp4-ffmpeg-moov-last" in name
        assert hidden == (2 if raw_bframe_mp4 else 0), name
    assert read_by_js == sum(1 for name in corpus if "fmp4" in name) - len(REFUSED) == 22


def test_a_difference_is_found_where_the_readers_differ(corpus: Dict[str, File]) -> None:
    """The comparison finds what it looks for: a sample of PyAV's reading with another byte, another
    time, another presentation, one left out, one added, each shows where it is."""
    data = corpus["h264-bframes/mp4-ffmpeg-moov-last.mp4"].data
    ours = our_reading(data, "mp4").reading
    other = pyav_reading(data, "mp4")
    assert differences(ours, other) == ({}, [])
    samples = list(other.samples)
    samples[5] = samples[5]._replace(digest="0" * 64)
    samples[9] = samples[9]._replace(pts=samples[9].pts + 1)
    samples[1] = samples[1]._replace(hidden=not samples[1].hidden)
    del samples[30]
    samples.insert(50, samples[49]._replace(digest="1" * 64, pts=samples[49].pts + 99))
    found = differences(ours, other._replace(samples=samples))
    assert sorted(found.ours) == [1, 5, 9, 30]
    assert [(lo, hi) for lo, hi, _ in found.only_theirs] == [(50, 51)]
    # Ours read on after the other stopped: not a difference; the other reading on after ours stopped is.
    assert differences(ours, other._replace(samples=other.samples[:40])) == ({}, [])
    found = differences(ours._replace(samples=ours.samples[:40]), other)
    assert found.ours == {} and [(lo, hi) for lo, hi, _ in found.only_theirs] == [(39, 40)]


def _kind(name: str) -> str:
    return {"mp4": "mp4", "ts": "ts", "mkv": "mkv", "flv": "flv"}[name.rsplit(".", 1)[1]]


def test_every_container_of_the_corpus_is_mutated_where_its_structures_are(corpus: Dict[str, File]) -> None:
    kinds = Counter(_kind(name) for name in corpus)
    assert kinds == {"mp4": 40, "ts": 20, "mkv": 12, "flv": 6}
    for name, file in corpus.items():
        ranges = structure(file.data, _kind(name))
        assert len(ranges) >= 4 and all(0 <= a < b <= len(file.data) for a, b in ranges), name
