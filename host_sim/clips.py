"""Real H.264 clips from real encoders: PyAV's libx264 and Debian's ffmpeg CLI.

Clips are cached on disk by their parameters, so a test session or a fleet
simulation encodes each one once.
"""

from __future__ import annotations

import fractions
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

CACHE = Path(os.environ.get("SEGBIND_CLIP_CACHE", Path.home() / ".cache" / "segbind" / "clips"))


def _cached(params: dict, make) -> bytes:
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / ("%s-%s.h264" % (params["encoder"], key))
    if path.exists() and path.stat().st_size:
        return path.read_bytes()
    data = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp%d" % os.getpid())
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def _frame_rgb(i: int, width: int, height: int, seed: int):
    """A moving scene: a gradient, a bouncing box and some texture, different for each seed."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = ((x * 3 + y * 2 + i * 4 + seed * 37) % 256).astype(np.uint8)
    frame = np.stack([base, np.roll(base, seed * 11 + 5, axis=1), 255 - base], axis=-1)
    bw, bh = max(8, width // 6), max(8, height // 6)
    bx = (i * 7 + seed * 13) % max(1, width - bw)
    by = (i * 5 + seed * 29) % max(1, height - bh)
    frame[by:by + bh, bx:bx + bw] = (255, (seed * 50) % 256, 40)
    rng = np.random.default_rng(seed * 1000 + i)
    frame ^= rng.integers(0, 24, size=frame.shape, dtype=np.uint8)
    return frame


def encode_pyav(frames: int = 50, width: int = 192, height: int = 112, fps: int = 25,
                gop: int = 25, bframes: int = 0, slices: int = 1, profile: str = "high",
                seed: int = 0, options: Optional[Dict[str, str]] = None) -> bytes:
    """Annex-B H.264 from libx264 through PyAV; ``gop`` frames between IDR pictures."""
    params = dict(encoder="pyav", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  bframes=bframes, slices=slices, profile=profile, seed=seed, options=options or {})

    def make() -> bytes:
        import av

        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(1, fps)
        ctx.framerate = fps
        ctx.profile = profile
        x264 = "keyint=%d:min-keyint=%d:scenecut=0:bframes=%d:slices=%d" % (gop, gop, bframes, slices)
        ctx.options = dict({"x264-params": x264, "preset": "veryfast"}, **(options or {}))
        ctx.open()
        out = bytearray()
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame_rgb(i, width, height, seed), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in ctx.encode(frame):
                out += bytes(packet)
        for packet in ctx.encode(None):
            out += bytes(packet)
        return bytes(out)

    return _cached(params, make)


def encode_ffmpeg(frames: int = 50, width: int = 192, height: int = 112, fps: int = 25,
                  gop: int = 25, extra: tuple = (), seed: int = 0) -> bytes:
    """Annex-B H.264 from Debian's ffmpeg CLI (its own libx264 build), from a test source."""
    params = dict(encoder="ffmpeg", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  extra=list(extra), seed=seed)

    def make() -> bytes:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("Debian's ffmpeg is not installed (tools/setup.sh installs it)")
        source = "testsrc2=size=%dx%d:rate=%d,hue=h=%d" % (width, height, fps, seed * 40)
        cmd = [ffmpeg, "-v", "error", "-f", "lavfi", "-i", source, "-frames:v", str(frames),
               "-c:v", "libx264", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
               "-pix_fmt", "yuv420p", *extra, "-f", "h264", "-"]
        return subprocess.run(cmd, check=True, capture_output=True).stdout

    return _cached(params, make)
