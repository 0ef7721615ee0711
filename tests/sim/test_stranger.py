"""The measure behind the fleet's "a stranger sees the scene" (host_sim.stranger), calibrated on
the fleet's own scenes: the camera's plaintext decodes to its own pictures; what the camera sends
with segbind, decoded without the key, comes nowhere near them; other households' scenes and a
flat picture stay far below the threshold too. Debian's ffmpeg, as a stranger would run it, agrees
with the in-process decoder."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from typing import Dict, List, Tuple

import numpy as np
import pytest

from host_sim.plan import BASE_MS, FleetConfig, clip_templates
from host_sim.stranger import IDENTICAL_DB, THRESHOLD_DB, StrangersEye, best_psnr, decode_luma
from segbind import Epoch
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
CFG = FleetConfig(cameras=8, seconds=10)
FAR_BELOW = THRESHOLD_DB - 8   # what must never come near the threshold


@lru_cache(maxsize=None)
def templates() -> Dict[Tuple[int, int], List[bytes]]:
    return clip_templates(CFG)


@lru_cache(maxsize=None)
def encrypted(scene: Tuple[int, int]) -> Tuple[List[bytes], List[bytes]]:
    """The scene's segments as the camera sends them with segbind (tagged, encrypted), and a still."""
    codec = scene[0]
    epoch = Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, [], 60)
    tagger = Tagger(epoch, BASE_MS, codec=codec)
    segmenter = Segmenter(delimit=True)
    cut = [s for t in templates()[scene] for s in segmenter.push(t) if isinstance(s, Segment)]
    segments = [tagger.tag(s.data, s.units, BASE_MS + 1000 * i, s.duration_ms, s.pictures)[0]
                for i, s in enumerate(cut)]
    stills = [tagger.tag_still(s.data, s.units, BASE_MS + 1000 * i, i)[0] for i, s in enumerate(cut[:3])]
    return segments, stills


def test_the_plaintext_decodes_to_the_cameras_own_pictures() -> None:
    eye = StrangersEye(templates())
    for scene, segments in templates().items():
        for segment in segments[:3]:
            assert eye.resemblance(segment, scene) == IDENTICAL_DB, scene


def test_without_the_key_nothing_comes_near_the_scene() -> None:
    eye = StrangersEye(templates())
    worst = {}
    for scene in templates():
        segments, stills = encrypted(scene)
        values = [eye.resemblance(p, scene) for p in segments + stills]
        worst[scene] = max(values)
        assert max(values) < FAR_BELOW, (scene, values)
    print("encrypted, decoded without the key, best PSNR per scene (dB):", worst)


def test_other_scenes_and_a_flat_picture_stay_far_below_the_threshold() -> None:
    eye = StrangersEye(templates())
    scenes = sorted(templates())
    for scene in scenes:
        frames = eye.frames(scene)
        grey = best_psnr([np.full((CFG.height, CFG.width), 128, np.uint8)], frames)
        assert grey < FAR_BELOW
        for other in scenes:
            if other[1] != scene[1]:
                assert best_psnr(decode_luma(templates()[other][0], other[0]), frames) < THRESHOLD_DB - 5, \
                    (scene, other)


def test_the_measure_can_say_yes_for_a_picture_a_little_damaged() -> None:
    """Not only identical pictures pass: the camera's scene with noise on it is still its scene."""
    eye = StrangersEye(templates())
    scene = sorted(templates())[0]
    frames = eye.frames(scene)
    picture = frames[7].reshape(CFG.height, CFG.width) + np.random.default_rng(1).normal(0, 4, (CFG.height, CFG.width))
    assert THRESHOLD_DB < best_psnr([np.clip(picture, 0, 255)], frames) < IDENTICAL_DB


def ffmpeg_luma(data: bytes, codec: int) -> List[np.ndarray]:
    """Every picture Debian's ffmpeg makes of ``data``, as a stranger runs it: the luma plane as the
    decoder made it (4:2:0 out, no range conversion)."""
    done = subprocess.run([FFMPEG, "-v", "quiet", "-f", {1: "h264", 2: "hevc"}[codec], "-i", "-", "-f", "rawvideo",
                           "-pix_fmt", "yuv420p", "-"], input=data, capture_output=True, timeout=120)
    luma, size = CFG.width * CFG.height, CFG.width * CFG.height * 3 // 2
    return [np.frombuffer(done.stdout[k * size:k * size + luma], np.uint8).reshape(CFG.height, CFG.width)
            for k in range(len(done.stdout) // size)]


@pytest.mark.skipif(not os.path.exists(FFMPEG), reason="Debian's ffmpeg (tools/setup.sh installs it)")
def test_debians_ffmpeg_agrees() -> None:
    eye = StrangersEye(templates())
    for scene in sorted(templates()):
        frames = eye.frames(scene)
        plain = templates()[scene][2]
        assert best_psnr(ffmpeg_luma(plain, scene[0]), frames) >= THRESHOLD_DB
        segments, stills = encrypted(scene)
        for payload in (segments[2], stills[0]):
            assert best_psnr(ffmpeg_luma(payload, scene[0]), frames) < FAR_BELOW
            assert eye.shows_scene(payload, scene) is False
