"""Hypothesis over container mutations (issue 10 item 6): no mutant that changes what FFmpeg
decodes is accepted.

A tagged H.264 or H.265 stream in MP4, fragmented MP4, Matroska and MPEG-TS is mutated (bits flipped, bytes
overwritten, ranges deleted, duplicated or inserted, the file cut), most often inside the
container's own structures (boxes, elements, packet headers), where a mutant can change
timing, sample boundaries or parameter sets without touching a slice. For every mutant:

- whatever the bytes, ``segbind.open`` gives verdicts or InputError, nothing else;
- every accepted segment hands on exactly the camera's bytes for its sequence number, and
  decrypted exactly the encoder's; a refused one hands on nothing;
- when every segment is accepted, PyAV decodes the mutant to exactly the pictures it decodes
  from a clean file of those segments, as the camera tagged them (a mutant may lose whole
  segments, as a cut file does: a live verifier takes that, a recording's is refused; it never
  shows other pictures). Format 3: those pictures are what a decoder without keys makes of the
  encrypted segments, deterministic for one bitstream (each decoded as one stream: a decoder
  conceals a garbled picture from the ones before it).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import segbind
from host_sim import clips
from segbind.errors import InputError
from segbind.write import remux_annexb
from tests.support.media import cut, decoded_frames, ffmpeg, rings, tag
from tests.support.mutants import MUTATION, mutate, structure
from tests.support.tagged import strip_tag

pytestmark = pytest.mark.slow

FORMATS = ["mp4", "fmp4", "mkv", "ts"]
CONTAINERS = FORMATS + ["hevc-" + fmt for fmt in FORMATS]  # H.265 (hvcC; MP4 to TS adds its sets)


class Files(dict):  # type: ignore[type-arg]
    """kind -> (bytes, structure ranges, decoded pictures); "camera" -> the camera's segments;
    "plain" -> their plaintexts (the encoder's, cut by the camera's segmenter)."""

    def __repr__(self) -> str:  # keep hypothesis' reports short
        return "Files(%s)" % ", ".join(sorted(self))


def containers(tagged: Path, d: Path, name: str) -> None:
    """The tagged Annex-B stream as name.mp4, .fmp4, .mkv (segbind's writer, PyAV) and .ts (the ffmpeg CLI)."""
    remux_annexb(str(tagged), str(d / (name + ".mp4")), "mp4")
    remux_annexb(str(tagged), str(d / (name + ".fmp4")), "mp4",
                 {"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    remux_annexb(str(tagged), str(d / (name + ".mkv")), "matroska")
    ffmpeg("-i", str(d / (name + ".mp4")), "-c", "copy", str(d / (name + ".ts")))


@pytest.fixture(scope="module")
def files(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("mutations")
    out = Files()
    out.directory = d  # type: ignore[attr-defined]
    for prefix, video in (("", clips.encode_pyav(frames=50, gop=25, seed=11)),
                          ("hevc-", clips.encode_pyav_h265(frames=50, gop=25, seed=11))):
        tagged = tag(keys, video, d / (prefix + "t.annexb"))
        containers(tagged, d, prefix + "a")
        for kind in FORMATS:
            data = (d / (prefix + "a." + kind)).read_bytes()
            out[prefix + kind] = (data, structure(data, kind), decoded_frames(d / (prefix + "a." + kind)))
        out[prefix + "camera"] = (b"", [], segbind.tagged_segments(tagged.read_bytes()))
        out[prefix + "plain"] = (b"", [], [s.data for s in cut(video)])
    return out


_CLEAN = {}  # (kind, seqs) -> pictures


def clean_pictures(files: Files, kind: str, seqs: Tuple[int, ...]) -> List[str]:
    """What PyAV decodes from the container ``kind`` made cleanly of the camera's segments ``seqs``."""
    prefix = "hevc-" if kind.startswith("hevc-") else ""
    if seqs == tuple(range(len(files[prefix + "camera"][2]))):
        return files[kind][2]
    if (kind, seqs) not in _CLEAN:
        d = files.directory / ("clean-" + "-".join(map(str, seqs)))  # type: ignore[attr-defined]
        d.mkdir(exist_ok=True)
        name = prefix + "c"
        if not (d / (name + ".ts")).exists():
            (d / (name + ".annexb")).write_bytes(b"".join(files[prefix + "camera"][2][i] for i in seqs))
            containers(d / (name + ".annexb"), d, name)
        _CLEAN[(kind, seqs)] = decoded_frames(d / (name + "." + kind[len(prefix):]))
    return _CLEAN[(kind, seqs)]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(CONTAINERS), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_no_mutant_that_changes_what_ffmpeg_decodes_is_accepted(kind: str, mutations, files, keys: Path,
                                                                 tmp_path: Path) -> None:
    data, structure, _ = files[kind]
    prefix = "hevc-" if kind.startswith("hevc-") else ""
    camera = files[prefix + "camera"][2]
    mutant = data
    for mutation in mutations:
        mutant = mutate(mutant, structure, mutation)
    try:
        with segbind.open(mutant, rings(keys)[0]) as media:
            results = list(media)
    except InputError:
        event("not readable as video")
        return  # not readable as video at all: nothing is handed on
    plain = files[prefix + "plain"][2]
    for result in results:
        if result.accepted:
            assert result.tag is not None and result.protected == camera[result.tag.seq]
            assert strip_tag(result.data or b"") == plain[result.tag.seq]
        else:
            assert result.data is None and result.protected is None
    event("%s: %s" % (kind, "all accepted" if results and all(r.accepted for r in results) else
                      "some refused" if any(r.accepted for r in results) else "all refused"))
    if results and all(r.accepted for r in results):
        path = tmp_path / ("mutant." + kind[len(prefix):])
        path.write_bytes(mutant)
        try:
            shown = decoded_frames(path)
        except Exception as exc:  # noqa: BLE001 - PyAV refusing the file shows nothing at all
            shown = ["unreadable: %s" % type(exc).__name__]
        expected = clean_pictures(files, kind, tuple(r.tag.seq for r in results if r.tag is not None))
        assert shown == expected, mutations
