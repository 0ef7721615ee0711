"""Hypothesis over container mutations (issue 10 item 6): no mutant that changes what FFmpeg
decodes is accepted.

A tagged H.264 or H.265 stream in MP4, fragmented MP4, Matroska and MPEG-TS is mutated (bits flipped, bytes
overwritten, ranges deleted, duplicated or inserted, the file cut), most often inside the
container's own structures (boxes, elements, packet headers), where a mutant can change
timing, sample boundaries or parameter sets without touching a slice. For every mutant:

- whatever the bytes, ``segbind.open`` gives verdicts or InputError, nothing else;
- every accepted segment hands on exactly the camera's bytes for its sequence number;
- when every segment is accepted, PyAV decodes the mutant to exactly the pictures of those
  segments as the camera tagged them (a mutant may lose whole segments, as a cut file does:
  a live verifier takes that, a recording's is refused; it never shows other pictures).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import segbind
from host_sim import clips
from segbind.errors import InputError
from segbind.write import remux_annexb
from tests.support.media import decoded_frames, ffmpeg, rings, tag
from tests.support.mutants import MUTATION, mutate, structure

pytestmark = pytest.mark.slow

FORMATS = ["mp4", "fmp4", "mkv", "ts"]
CONTAINERS = FORMATS + ["hevc-" + fmt for fmt in FORMATS]  # H.265 (hvcC; MP4 to TS adds its sets)


class Files(dict):  # type: ignore[type-arg]
    """kind -> (bytes, structure ranges, decoded pictures); "camera" -> the camera's segments."""

    def __repr__(self) -> str:  # keep hypothesis' reports short
        return "Files(%s)" % ", ".join(sorted(self))


@pytest.fixture(scope="module")
def files(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("mutations")
    out = Files()
    for prefix, video, fmt in (("", clips.encode_pyav(frames=50, gop=25, seed=11), "h264"),
                               ("hevc-", clips.encode_pyav_h265(frames=50, gop=25, seed=11), "hevc")):
        tagged = tag(keys, video, d / (prefix + "t.annexb"))
        remux_annexb(str(tagged), str(d / (prefix + "a.mp4")), "mp4")
        remux_annexb(str(tagged), str(d / (prefix + "a.fmp4")), "mp4",
                     {"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        remux_annexb(str(tagged), str(d / (prefix + "a.mkv")), "matroska")
        ffmpeg("-i", str(d / (prefix + "a.mp4")), "-c", "copy", str(d / (prefix + "a.ts")))
        for kind in FORMATS:
            data = (d / (prefix + "a." + kind)).read_bytes()
            out[prefix + kind] = (data, structure(data, kind), decoded_frames(d / (prefix + "a." + kind)))
        camera = segbind.tagged_segments(tagged.read_bytes())
        out[prefix + "camera"] = (b"", [], camera)
        out[prefix + "pictures"] = (b"", [], [clips.decode_hashes_pyav(segment, fmt=fmt) for segment in camera])
    return out


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
    for result in results:
        if result.accepted:
            assert result.tag is not None and result.data == camera[result.tag.seq]
        else:
            assert result.data is None
    event("%s: %s" % (kind, "all accepted" if results and all(r.accepted for r in results) else
                      "some refused" if any(r.accepted for r in results) else "all refused"))
    if results and all(r.accepted for r in results):
        path = tmp_path / ("mutant." + kind[len(prefix):])
        path.write_bytes(mutant)
        try:
            shown = decoded_frames(path)
        except Exception as exc:  # noqa: BLE001 - PyAV refusing the file shows nothing at all
            shown = ["unreadable: %s" % type(exc).__name__]
        expected = [h for r in results if r.tag is not None for h in files[prefix + "pictures"][2][r.tag.seq]]
        assert shown == expected, mutations
