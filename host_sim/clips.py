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
from typing import Any, Callable, Dict, Optional

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
                seed: int = 0, options: Optional[Dict[str, str]] = None, x264: str = "",
                headers: str = "every", frame_source: Optional[Callable[[int], Any]] = None,
                source_id: str = "") -> bytes:
    """Annex-B H.264 from libx264 through PyAV; ``gop`` frames between IDR pictures.

    Frames come from ``frame_source(i)`` (an RGB array) when given, named by
    ``source_id`` in the cache key; else from a moving test scene set by ``seed``.

    ``x264`` adds x264 parameters (``"intra-refresh=1"``, ``"aud=1"``, ``"interlaced=1"``...).
    ``headers="once"`` encodes with a global header, so SPS and PPS come once, at the
    start of the stream (the encoder's extradata), like a camera that sends them once.
    """
    if headers not in ("every", "once"):
        raise ValueError("headers is 'every' or 'once'")
    if frame_source is not None and not source_id:
        raise ValueError("a frame_source needs a source_id for the cache key")
    params = dict(encoder="pyav", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  bframes=bframes, slices=slices, profile=profile, seed=seed, options=options or {})
    if x264:
        params["x264"] = x264
    if headers != "every":
        params["headers"] = headers
    if source_id:
        params["source"] = source_id

    def make() -> bytes:
        import av

        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = fractions.Fraction(1, fps)
        ctx.framerate = fps
        ctx.profile = profile
        x264_params = "keyint=%d:min-keyint=%d:scenecut=0:bframes=%d:slices=%d" % (
            gop, gop, bframes, slices)
        if x264:
            x264_params += ":" + x264
        ctx.options = dict({"x264-params": x264_params, "preset": "veryfast"}, **(options or {}))
        if headers == "once":
            ctx.flags |= int(av.codec.context.Flags.global_header)
        ctx.open()
        out = bytearray()
        if headers == "once":
            out += bytes(ctx.extradata)  # Annex-B SPS and PPS
        for i in range(frames):
            rgb = frame_source(i) if frame_source else _frame_rgb(i, width, height, seed)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in ctx.encode(frame):
                out += bytes(packet)
        for packet in ctx.encode(None):
            out += bytes(packet)
        return bytes(out)

    return _cached(params, make)


def encode_ffmpeg(frames: int = 50, width: int = 192, height: int = 112, fps: int = 25,
                  gop: int = 25, extra: tuple = (), seed: int = 0, headers: str = "every") -> bytes:
    """Annex-B H.264 from Debian's ffmpeg CLI (its own libx264 build), from a test source.

    ``headers="once"``: the encoder runs with a global header, so its stream has no
    SPS/PPS; the SPS and PPS that the same settings produce (a one-frame run without
    the global header) are put once at the start, like a camera that sends them once.
    """
    if headers not in ("every", "once"):
        raise ValueError("headers is 'every' or 'once'")
    params = dict(encoder="ffmpeg", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  extra=list(extra), seed=seed)
    if headers != "every":
        params["headers"] = headers

    def run(count: int, *more: str) -> bytes:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("Debian's ffmpeg is not installed (tools/setup.sh installs it)")
        source = "testsrc2=size=%dx%d:rate=%d,hue=h=%d" % (width, height, fps, seed * 40)
        cmd = [ffmpeg, "-v", "error", "-f", "lavfi", "-i", source, "-frames:v", str(count),
               "-c:v", "libx264", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
               "-pix_fmt", "yuv420p", *extra, *more, "-f", "h264", "-"]
        return subprocess.run(cmd, check=True, capture_output=True).stdout

    def make() -> bytes:
        if headers == "every":
            return run(frames)
        from segbind_core.nal import annexb_units, to_annexb

        first = run(1)
        sets = [first[s:e] for s, e in annexb_units(first) if first[s] & 0x1F in (7, 8)]
        return to_annexb(sets) + run(frames, "-flags", "+global_header")

    return _cached(params, make)


def decode_hashes_pyav(data: bytes, fmt: str = "h264", show_all: bool = False) -> list:
    """MD5 of every decoded frame (YUV planes), in output order, decoded by PyAV from bytes.

    ``show_all``: also output the frames a decoder holds back while it has not
    reached a recovery point (FFmpeg's ``flags2=+showall``).
    """
    import io

    import av

    hashes = []
    with av.open(io.BytesIO(data), format=fmt) as container:
        stream = container.streams.video[0]
        if show_all:
            stream.codec_context.options = {"flags2": "+showall"}
        for frame in container.decode(stream):
            h = hashlib.md5()
            for plane in frame.planes:
                h.update(bytes(plane))
            hashes.append(h.hexdigest())
    return hashes


def decode_hashes_ffmpeg(data: bytes, fmt: str = "h264", path: Optional[str] = None) -> list:
    """MD5 of every decoded frame, in output order, from Debian's ffmpeg CLI (``-f framemd5``).

    Reads ``data`` from stdin, or the file ``path`` (for formats that need seeking, like MP4).
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("Debian's ffmpeg is not installed (tools/setup.sh installs it)")
    source = ["-i", path] if path else ["-f", fmt, "-i", "-"]
    cmd = [ffmpeg, "-v", "error", *source, "-map", "0:v:0", "-f", "framemd5", "-"]
    out = subprocess.run(cmd, input=b"" if path else data, check=True, capture_output=True,
                         timeout=300).stdout
    return [line.rsplit(b",", 1)[1].strip().decode() for line in out.splitlines()
            if line and not line.startswith(b"#")]


# The kinds of stream cameras emit, from each encoder: name -> (encoder, arguments).
KINDS = {
    "pyav-every": ("pyav", dict(frames=80, gop=25)),
    "pyav-once": ("pyav", dict(frames=80, gop=25, bframes=2, headers="once")),
    "pyav-intra-refresh": ("pyav", dict(frames=80, gop=25, x264="intra-refresh=1")),
    "pyav-bframes-slices-aud": ("pyav", dict(frames=80, gop=25, bframes=3, slices=4, x264="aud=1")),
    "pyav-baseline": ("pyav", dict(frames=60, gop=20, profile="baseline")),
    "pyav-interlaced": ("pyav", dict(frames=60, gop=25, bframes=2, x264="interlaced=1")),
    "ffmpeg-every": ("ffmpeg", dict(frames=80, gop=25)),
    "ffmpeg-once": ("ffmpeg", dict(frames=80, gop=25, headers="once")),
    "ffmpeg-intra-refresh": ("ffmpeg", dict(frames=80, gop=25, extra=("-x264-params", "intra-refresh=1"))),
    "ffmpeg-bframes-slices-aud": ("ffmpeg", dict(frames=80, gop=25, extra=(
        "-bf", "3", "-x264-params", "slices=3:aud=1", "-profile:v", "main"))),
}


def make_kind(kind: str) -> bytes:
    """A stream of one of ``KINDS``."""
    encoder, kwargs = KINDS[kind]
    return encode_pyav(**kwargs) if encoder == "pyav" else encode_ffmpeg(**kwargs)
