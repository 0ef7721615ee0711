"""The proof of confidentiality (issue 19, "Done when"): segments refused to a stranger, handed
to Debian's ffmpeg and to Chromium's decoder, give nothing that resembles the camera's scene,
measured against the camera's own frames; the same segments unencrypted (format 2's plaintext,
the tag in clear), through the very same path, give the scene back.

Material: a real scene (host_sim.scenes: the kitchen of household 1, its window, a moving
object, its number in the frame) encoded by libx264 and libx265, cut and encrypted and tagged by
the camera's own segmenter and tagger under alice's keys. A stranger (bob, who holds keys, for
his own camera) gets them, as a misrouting cloud would hand them over: his verifier refuses
every one (``no_grant``) and decrypts none. What he can still do is decode the bytes himself:
ffmpeg on the Annex-B, on the MPEG-TS and on the MP4 that a keyless remux (``ffmpeg -c copy``)
makes of them; Chromium (Debian's, headless) through WebCodecs' VideoDecoder, fed that MP4's
samples and its avcC, as a web page would.

The measure: SSIM (Wang et al. 2004) on luma (the Y plane as each decoder makes it, no range
conversion), over 8x8 blocks with the usual constants (C1 = (0.01 x 255)^2, C2 = (0.03 x 255)^2),
averaged over the picture; a decoder's output resembles the scene as much as its best-matching
picture matches any of the camera's frames (every output picture against every camera frame:
no alignment assumed). Numbers measured here (printed; ``-s`` shows them):

- the camera's frames against themselves: 1.0; the plaintext through each path, ffmpeg's and
  Chromium's: 1.0;
- a flat mid-grey picture: about 0.83 (the scene is mostly smooth gradients, where SSIM's
  luminance and contrast terms are high for any flat picture of similar brightness);
- another household's scene (host_sim.scenes 9: the garden, its colours swapped), decoded
  from its own stream: about 0.77;
- what the stranger's decoders make: H.264 0.83, exactly the grey picture's (FFmpeg conceals
  what it cannot decode with mid-grey), H.265 0.1 to 0.2 (FFmpeg's HEVC decoder leaves a
  picture black after a damaged slice), Chromium nothing at all (its decoder stops at the first
  picture: 0).

So the test asserts: the plaintext through the path resembles the scene (>= 0.99: the measure
can fail); what the stranger gets resembles it no more than a flat grey picture does (at most
0.03 above); and it is no closer to the camera's scene than to the other household's by more
than half what the plaintext is (the plaintext: about 0.22 closer; the stranger's pictures:
within 0.04 either way, over runs with fresh keys). Normalised cross-correlation is not the
measure: a picture that is garbage in its top rows and black below (FFmpeg's HEVC output here)
correlates up to about 0.35 with any scene brighter at the top, without holding anything of it.
"""

from __future__ import annotations

import base64
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest

import segbind
from host_sim.scenes import scene_clip
from segbind import Epoch, Reason
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger
from tests.support.media import FFMPEG, cut
from tests.support.tagged import keyring_of

WIDTH, HEIGHT, FRAMES, FPS = 256, 144, 50, 25
CAMERA_SCENE, OTHER_SCENE = 0, 9  # the kitchen of household 1; household 10's garden
T0 = 1_795_000_000_000
CODECS = {CODEC_H264: "h264", CODEC_H265: "hevc"}
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
GREY_MARGIN = 0.03


# ---- the measure ----------------------------------------------------------------------------

def ssim(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """SSIM of two luma pictures: the mean over non-overlapping ``block`` x ``block`` windows."""
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block

    def windows(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(-1, block * block)

    x, y = windows(a.astype(np.float64)), windows(b.astype(np.float64))
    mx, my = x.mean(1), y.mean(1)
    vx, vy = x.var(1), y.var(1)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(1)
    return float((((2 * mx * my + C1) * (2 * cov + C2)) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2))).mean())


def resemblance(pictures: Sequence[np.ndarray], frames: Sequence[np.ndarray]) -> float:
    """How much the best of ``pictures`` resembles any of ``frames`` (0 when nothing came out)."""
    return max((max(ssim(p, f) for f in frames) for p in pictures), default=0.0)


def test_the_measure_tells_the_scene_from_what_is_not_it() -> None:
    camera = camera_frames(CODEC_H264)
    assert resemblance(camera[:1], camera) == pytest.approx(1.0)
    grey, other = grey_baseline(CODEC_H264), other_baseline(CODEC_H264)
    print("baselines (H.264): mid-grey %.3f, another household's scene %.3f" % (grey, other))
    assert 0.5 < grey < 0.9 and 0.5 < other < 0.9
    # a picture of the scene, shifted by half its width, is not the scene either
    assert resemblance([np.roll(camera[0], WIDTH // 2, axis=1)], camera) < 0.95


# ---- the camera, the owner, the stranger --------------------------------------------------------

def luma(path: Path, fmt: str = "") -> List[np.ndarray]:
    """Every picture Debian's ffmpeg decodes from a file, as luma (whatever it makes of it): the Y
    plane as the decoder made it (4:2:0, no range conversion), as a browser's decoder gives it."""
    source = (["-f", fmt] if fmt else []) + ["-i", str(path)]
    proc = subprocess.run([FFMPEG, "-v", "quiet", *source, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt",
                           "yuv420p", "-"], capture_output=True, timeout=300)
    size = WIDTH * HEIGHT * 3 // 2
    count = len(proc.stdout) // size
    return [np.frombuffer(proc.stdout[k * size:k * size + WIDTH * HEIGHT], np.uint8).reshape(HEIGHT, WIDTH)
            for k in range(count)]


@lru_cache(maxsize=None)
def work() -> Path:
    """A directory for this module's files, removed when the test process ends."""
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="segbind-confidentiality-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@lru_cache(maxsize=None)
def camera(codec: int) -> Dict[str, object]:
    """The camera's stream: its plaintext (as its encoder made it), its segments encrypted and
    tagged for alice, what alice's verifier hands her decoder (the plaintext, the tag in clear:
    format 2's form) and bob's verdicts."""
    ext = CODECS[codec]
    video = scene_clip(CAMERA_SCENE, FRAMES, WIDTH, HEIGHT, FPS, 25, codec)
    alice = Epoch.of_pairing(os.urandom(32), "alice", "cam-1", 1, [])
    bob = Epoch.of_pairing(os.urandom(32), "bob", "cam-1", 1, [])  # bob's own camera, with the same id
    tagger = Tagger(alice, T0, codec=codec)
    segments = [tagger.tag(s.data, s.units, T0 + 1000 * i, s.duration_ms, s.pictures)[0]
                for i, s in enumerate(cut(video))]
    d = work()
    (d / ("plain." + ext)).write_bytes(video)
    (d / ("refused." + ext)).write_bytes(b"".join(segments))
    with segbind.open(b"".join(segments), keyring_of(bob)) as media:
        stranger = [(r.reason, r.data, r.protected) for r in media]
    with segbind.open(b"".join(segments), keyring_of(alice)) as media:
        owner = [(r.reason, r.data) for r in media]
    (d / ("unencrypted." + ext)).write_bytes(b"".join(data or b"" for _, data in owner))
    for name in ("refused", "unencrypted"):  # keyless remuxes, as anyone with ffmpeg makes them
        for container in ("ts", "mp4"):
            subprocess.run([FFMPEG, "-v", "error", "-y", "-f", ext, "-r", str(FPS), "-i", str(d / (name + "." + ext)),
                            "-c", "copy", str(d / ("%s.%s.%s" % (name, ext, container)))], check=True, timeout=300)
    return {"segments": segments, "stranger": stranger, "owner": owner}


@lru_cache(maxsize=None)
def camera_frames(codec: int) -> Tuple[np.ndarray, ...]:
    """The camera's own frames: what its encoder's stream decodes to."""
    camera(codec)
    frames = luma(work() / ("plain." + CODECS[codec]), CODECS[codec])
    assert len(frames) == FRAMES
    return tuple(frames)


@lru_cache(maxsize=None)
def grey_baseline(codec: int) -> float:
    return resemblance([np.full((HEIGHT, WIDTH), 128, np.uint8)], camera_frames(codec))


@lru_cache(maxsize=None)
def other_frames(codec: int) -> Tuple[np.ndarray, ...]:
    path = work() / ("other." + CODECS[codec])
    path.write_bytes(scene_clip(OTHER_SCENE, FRAMES, WIDTH, HEIGHT, FPS, 25, codec))
    return tuple(luma(path, CODECS[codec]))


@lru_cache(maxsize=None)
def other_baseline(codec: int) -> float:
    return resemblance(other_frames(codec), camera_frames(codec))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_stranger_refuses_every_segment_and_decrypts_none(codec: int) -> None:
    made = camera(codec)
    segments = made["segments"]
    assert len(segments) == 2
    assert [(reason, data) for reason, data, _ in made["stranger"]] == [(Reason.NO_GRANT, None)] * len(segments)
    assert [reason for reason, _ in made["owner"]] == [Reason.OK] * len(segments)


def judge(pictures: Sequence[np.ndarray], control: Sequence[np.ndarray], codec: int, path: str) -> None:
    """The stranger's pictures against the camera's frames, with the baselines and the control."""
    frames = camera_frames(codec)
    stranger, plain = resemblance(pictures, frames), resemblance(control, frames)
    grey, other = grey_baseline(codec), other_baseline(codec)
    closer = stranger - resemblance(pictures, other_frames(codec)) if pictures else 0.0
    closer_plain = plain - resemblance(control, other_frames(codec))
    print("%-34s stranger %.3f (%d pictures, %+.3f closer to the camera's scene than to another) | "
          "unencrypted %.3f (%+.3f) | mid-grey %.3f | another scene %.3f"
          % (path, stranger, len(pictures), closer, plain, closer_plain, grey, other))
    assert len(control) == FRAMES and plain >= 0.99, "the unencrypted segments must show the scene"
    assert stranger <= grey + GREY_MARGIN, "the stranger's decoder shows something of the camera's scene"
    assert closer <= closer_plain / 2, "the stranger's pictures are closer to the camera's scene than to another"


@pytest.mark.parametrize("container", ["annexb", "ts", "mp4"])
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_ffmpeg_makes_nothing_of_a_refused_segment(codec: int, container: str) -> None:
    camera(codec)
    ext = CODECS[codec]
    d = work()
    if container == "annexb":
        pictures, control = luma(d / ("refused." + ext), ext), luma(d / ("unencrypted." + ext), ext)
    else:
        pictures = luma(d / ("refused.%s.%s" % (ext, container)))
        control = luma(d / ("unencrypted.%s.%s" % (ext, container)))
    judge(pictures, control, codec, "ffmpeg, %s %s" % (ext, container))


# ---- Chromium: WebCodecs' VideoDecoder, fed the keyless MP4's samples ----------------------------

DECODE = r"""
const done = arguments[arguments.length - 1];
const [codec, description, samples, width, height] = arguments;
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const pictures = [], errors = [];
(async () => {
  const decoder = new VideoDecoder({
    output: async (frame) => {
      try {  // the luma plane, row by row (whatever the frame's layout)
        const buffer = new Uint8Array(frame.allocationSize());
        const layout = await frame.copyTo(buffer);
        const y = new Uint8Array(width * height);
        for (let r = 0; r < height; r++) {
          const at = layout[0].offset + r * layout[0].stride;
          y.set(buffer.subarray(at, at + width), r * width);
        }
        let text = "";
        for (let i = 0; i < y.length; i += 8192) text += String.fromCharCode.apply(null, y.subarray(i, i + 8192));
        pictures.push(btoa(text));
      } catch (e) { errors.push("copy: " + e); }
      frame.close();
    },
    error: (e) => errors.push("decoder: " + e),
  });
  const config = {codec, description: bytes(description), codedWidth: width, codedHeight: height};
  if (!(await VideoDecoder.isConfigSupported(config)).supported) {
    done({pictures, errors: ["unsupported " + codec], supported: false});
    return;
  }
  decoder.configure(config);
  for (const [data, key, timestamp] of samples) {
    try {
      decoder.decode(new EncodedVideoChunk({type: key ? "key" : "delta", timestamp, data: bytes(data)}));
    } catch (e) { errors.push("decode: " + e); }
  }
  try { await decoder.flush(); } catch (e) { errors.push("flush: " + e); }
  await new Promise((resolve) => setTimeout(resolve, 200));
  done({pictures, errors, supported: true});
})();
"""


def mp4_samples(path: Path) -> Tuple[str, str, List[Tuple[str, bool, int]]]:
    """(codec string, avcC, [(sample, key, pts)]) of an MP4's video track, as a page would get them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        avcc = bytes(stream.codec_context.extradata)
        samples = [(base64.b64encode(bytes(p)).decode(), bool(p.is_keyframe), int(p.pts or 0))
                   for p in container.demux(stream) if p.size]
    return "avc1.%02x%02x%02x" % (avcc[1], avcc[2], avcc[3]), base64.b64encode(avcc).decode(), samples


@pytest.mark.browser
def test_chromium_makes_nothing_of_a_refused_segment() -> None:
    """H.264 only: Debian's Chromium decodes no H.265 (docs: NOTES, 'Fresh Debian, browsers')."""
    from host_sim.browser import CHROMEDRIVER, CHROMIUM, chromium
    from tests.support.media import http_server

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "tools/setup.sh installs chromium"
    camera(CODEC_H264)
    d = work()
    (d / "page.html").write_text("<!doctype html><title>a stranger's page</title>\n")
    got = {}
    with http_server(d) as base, chromium() as driver:
        driver.get(base + "/page.html")  # http://127.0.0.1: a secure context, where WebCodecs lives
        driver.set_script_timeout(120)
        for name in ("refused", "unencrypted"):
            codec, avcc, samples = mp4_samples(d / ("%s.h264.mp4" % name))
            result = driver.execute_async_script(DECODE, codec, avcc, samples, WIDTH, HEIGHT)
            assert result["supported"], result["errors"]
            got[name] = ([np.frombuffer(base64.b64decode(p), np.uint8).reshape(HEIGHT, WIDTH)
                          for p in result["pictures"]], result["errors"])
    pictures, errors = got["refused"]
    control, control_errors = got["unencrypted"]
    print("Chromium on the refused segments: %d pictures, errors %s" % (len(pictures), errors[:2]))
    assert control_errors == []
    judge(pictures, control, CODEC_H264, "Chromium WebCodecs, h264 mp4")
