"""What a stranger sees: the bytes a stranger was handed, decoded by FFmpeg's own decoder
(libavcodec, through PyAV: what ``ffmpeg -i x.h264 x.png`` runs) and compared with the
camera's own pictures.

The measure is PSNR on luma: each picture the decoder makes against every picture of the
camera's scene (no alignment assumed: any picture of it counts), the best match kept. A picture
shows the camera's scene when it is within ``THRESHOLD_DB`` of one of the camera's frames.
Calibration, on the fleet's scenes (128x72, libx264 and libx265; tests/sim/test_stranger.py
measures it every run):

- what the camera's encoder made, decoded from a plain segment: identical (infinite PSNR,
  reported as ``IDENTICAL_DB``);
- another household's scene: at most about 22 dB; a flat mid-grey picture: about 11 dB;
- an encrypted segment, decoded without its key: 3 to 12 dB (FFmpeg conceals the slices it
  cannot decode);

so ``THRESHOLD_DB`` = 30 dB sits far above every wrong-key decode and every other scene, and
far below the camera's own pictures. Decoding is deterministic (one thread).
"""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Sequence, Tuple

THRESHOLD_DB = 30.0
IDENTICAL_DB = 99.0
DECODERS = {1: "h264", 2: "hevc"}


def decode_luma(data: bytes, codec: int) -> List["object"]:
    """Every picture FFmpeg's decoder makes of ``data`` (Annex-B), as luma rows (a numpy array
    each); whatever it makes of damaged or encrypted bytes, errors included, never raises."""
    import av
    import numpy as np

    av.logging.set_level(av.logging.PANIC)  # a stranger's decoder complains about ciphertext: it may
    out = []
    try:
        ctx = av.CodecContext.create(DECODERS[codec], "r")
        ctx.thread_type = "NONE"
        frames = []
        for packet in ctx.parse(data) + ctx.parse(None):
            try:
                frames += ctx.decode(packet)
            except av.error.FFmpegError:
                continue
        try:
            frames += ctx.decode(None)
        except av.error.FFmpegError:
            pass
        for frame in frames:
            plane = frame.planes[0]
            rows = np.frombuffer(bytes(plane), np.uint8).reshape(-1, plane.line_size)
            out.append(rows[:frame.height, :frame.width])
    except (av.error.FFmpegError, ValueError):
        pass
    return out


def best_psnr(pictures: Sequence["object"], frames: "object") -> float:
    """The PSNR (dB) of the best-matching pair of one of ``pictures`` and one of ``frames``
    (luma, one size); 0 when nothing was decoded or sizes differ; ``IDENTICAL_DB`` when identical."""
    import numpy as np

    if not len(pictures):
        return 0.0
    size = frames.shape[1]  # type: ignore[attr-defined]
    flat = [p.astype(np.float64).ravel() for p in pictures]  # type: ignore[attr-defined]
    flat = [p for p in flat if p.size == size]
    if not flat:
        return 0.0
    p = np.stack(flat)
    f = frames  # (n, size) float64
    distances = (p * p).sum(1)[:, None] + (f * f).sum(1)[None, :] - 2.0 * p @ f.T  # type: ignore[operator]
    mse = max(float(distances.min()), 0.0) / size
    return IDENTICAL_DB if mse < 1e-6 else min(IDENTICAL_DB, 10.0 * float(np.log10(255.0 ** 2 / mse)))


class StrangersEye:
    """Judges payloads against the scenes they were made of: ``shows_scene(payload, scene)``.

    ``clips`` maps a scene, (codec, clip), to the segments the camera's encoder made of it (its
    plaintext); their decoded pictures are what the camera saw. Verdicts are cached by payload
    (a segment delivered to three strangers is decoded once). Thread-safe."""

    def __init__(self, clips: Dict[Tuple[int, int], List[bytes]], threshold_db: float = THRESHOLD_DB) -> None:
        self.clips = clips
        self.threshold_db = threshold_db
        self._frames: Dict[Tuple[int, int], object] = {}
        self._verdicts: Dict[bytes, float] = {}
        self._lock = threading.Lock()
        self.decoded = 0

    def frames(self, scene: Tuple[int, int]) -> "object":
        """The camera's own pictures of ``scene``, luma, one row each (float64)."""
        import numpy as np

        with self._lock:
            found = self._frames.get(scene)
        if found is None:
            pictures = decode_luma(b"".join(self.clips[scene]), scene[0])
            found = np.stack([p.astype(np.float64).ravel() for p in pictures])  # type: ignore[attr-defined]
            with self._lock:
                self._frames[scene] = found
        return found

    def resemblance(self, payload: bytes, scene: Tuple[int, int], key: Optional[bytes] = None) -> float:
        """How close (PSNR, dB) the best picture a decoder makes of ``payload`` comes to the scene."""
        cache_key = key if key is not None else payload
        with self._lock:
            known = self._verdicts.get(cache_key)
        if known is not None:
            return known
        value = best_psnr(decode_luma(payload, scene[0]), self.frames(scene))
        with self._lock:
            self._verdicts[cache_key] = value
            self.decoded += 1
        return value

    def shows_scene(self, payload: bytes, scene: Tuple[int, int], key: Optional[bytes] = None) -> bool:
        """Whether a stranger's decoder makes of ``payload`` a picture of the scene."""
        return self.resemblance(payload, scene, key) >= self.threshold_db
