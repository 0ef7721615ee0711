"""Real H.264 and H.265 clips from real encoders: PyAV's libx264 and libx265, Debian's ffmpeg CLI.

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
from typing import Any, Callable, Dict, List, Optional, Tuple

CACHE = Path(os.environ.get("SEGBIND_CLIP_CACHE", Path.home() / ".cache" / "segbind" / "clips"))


def _cached(params: dict, make, suffix: str = ".h264") -> bytes:
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / ("%s-%s%s" % (params["encoder"], key, suffix))
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
        x264_params = "keyint=%d:min-keyint=%d:scenecut=0:bframes=%d:slices=%d" % (
            gop, gop, bframes, slices)
        if x264:
            x264_params += ":" + x264
        return _pyav_encode("libx264", frames, width, height, fps, dict(
            {"x264-params": x264_params, "preset": "veryfast"}, **(options or {})), headers,
            lambda i: frame_source(i) if frame_source else _frame_rgb(i, width, height, seed), profile)

    return _cached(params, make)


def _pyav_encode(encoder: str, frames: int, width: int, height: int, fps: int, options: Dict[str, str],
                 headers: str, frame_at: Callable[[int], Any], profile: Optional[str] = None) -> bytes:
    """Annex-B from one of PyAV's encoders; ``headers="once"``: parameter sets only at the start."""
    extradata, packets = pyav_packets(encoder, frames, width, height, fps, options, headers, frame_at,
                                      profile)
    return extradata + b"".join(data for _pts, data in packets)


def pyav_packets(encoder: str, frames: int, width: int, height: int, fps: int, options: Dict[str, str],
                 headers: str, frame_at: Callable[[int], Any],
                 profile: Optional[str] = None) -> Tuple[bytes, List[Tuple[int, bytes]]]:
    """(extradata, [(pts, Annex-B access unit)] in decoding order) from one of PyAV's encoders.

    Frame ``i`` is given pts ``i``: a packet's pts is its picture's place in
    presentation order. Not cached: for tests that need the encoder's own timing.
    """
    import av

    if encoder not in av.codecs_available:
        raise RuntimeError("this PyAV build has no %s encoder (pip install a PyAV wheel with it)" % encoder)
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fps
    if profile:
        ctx.profile = profile
    ctx.options = options
    if headers == "once":
        ctx.flags |= int(av.codec.context.Flags.global_header)
    ctx.open()
    packets = []
    for i in range(frames + 1):
        if i < frames:
            frame = av.VideoFrame.from_ndarray(frame_at(i), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out = ctx.encode(frame)
        else:
            out = ctx.encode(None)
        packets += [(int(packet.pts), bytes(packet)) for packet in out]
    # Annex-B parameter sets, when they are not in the packets
    return (bytes(ctx.extradata) if headers == "once" else b""), packets


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

    def make() -> bytes:
        return _ffmpeg_encode(["-c:v", "libx264", "-g", str(gop), "-keyint_min", str(gop),
                               "-sc_threshold", "0"], extra, "h264", (7, 8), lambda b: b & 0x1F,
                              frames, width, height, fps, seed, headers)

    return _cached(params, make)


def _ffmpeg_encode(encoder_args: list, extra: tuple, fmt: str, set_kinds: tuple, kind_of: Callable[[int], int],
                   frames: int, width: int, height: int, fps: int, seed: int, headers: str) -> bytes:
    """Annex-B from Debian's ffmpeg CLI, from a test source.

    ``headers="once"``: the encoder runs with a global header, so its stream has no
    parameter sets; the ones the same settings produce (``set_kinds``, read from a
    one-frame run without the global header) are put once at the start.
    """
    def run(count: int, *more: str) -> bytes:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("Debian's ffmpeg is not installed (tools/setup.sh installs it)")
        source = "testsrc2=size=%dx%d:rate=%d,hue=h=%d" % (width, height, fps, seed * 40)
        cmd = [ffmpeg, "-v", "error", "-f", "lavfi", "-i", source, "-frames:v", str(count),
               *encoder_args, "-pix_fmt", "yuv420p", *extra, *more, "-f", fmt, "-"]
        return subprocess.run(cmd, check=True, capture_output=True).stdout

    if headers == "every":
        return run(frames)
    from segbind_core.nal import annexb_units, to_annexb

    first = run(1)
    sets = [first[s:e] for s, e in annexb_units(first) if kind_of(first[s]) in set_kinds]
    return to_annexb(sets) + run(frames, "-flags", "+global_header")


def x265_params(gop: int, bframes: int, open_gop: bool, slices: int, ctu: int, x265: str) -> str:
    """libx265's x265-params for these settings (no scene cuts: IRAP pictures every ``gop``)."""
    text = "keyint=%d:min-keyint=%d:scenecut=0:bframes=%d:open-gop=%d:slices=%d:ctu=%d:log-level=error" % (
        gop, gop, bframes, int(open_gop), slices, ctu)
    return text + ":" + x265 if x265 else text


def encode_pyav_h265(frames: int = 50, width: int = 192, height: int = 112, fps: int = 25,
                     gop: int = 25, bframes: int = 0, open_gop: bool = False, slices: int = 1,
                     ctu: int = 64, seed: int = 0, x265: str = "", headers: str = "every",
                     frame_source: Optional[Callable[[int], Any]] = None, source_id: str = "") -> bytes:
    """Annex-B H.265 from libx265 through PyAV; an IRAP picture every ``gop`` frames.

    ``open_gop``: the IRAP pictures after the first are CRA (with RASL leading pictures
    when there are B-frames), else IDR (closed GOP). ``slices`` per picture: x265 cuts
    them at CTU rows, so small pictures need a small ``ctu`` (16 or 32); x265 has no tiles.
    ``x265`` adds x265 parameters (``"aud=1"``, ``"intra-refresh=1"``, ``"idr-recovery-sei=1"``...).
    ``headers="once"``: a global header, so VPS, SPS and PPS (and x265's SEI) come once, at
    the start. Frames as for ``encode_pyav``.
    """
    if headers not in ("every", "once"):
        raise ValueError("headers is 'every' or 'once'")
    if frame_source is not None and not source_id:
        raise ValueError("a frame_source needs a source_id for the cache key")
    params = dict(encoder="pyav-x265", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  bframes=bframes, open_gop=open_gop, slices=slices, ctu=ctu, seed=seed, x265=x265,
                  headers=headers, source=source_id)

    def make() -> bytes:
        return _pyav_encode("libx265", frames, width, height, fps, {
            "x265-params": x265_params(gop, bframes, open_gop, slices, ctu, x265),
            "preset": "veryfast"}, headers,
            lambda i: frame_source(i) if frame_source else _frame_rgb(i, width, height, seed))

    return _cached(params, make, ".h265")


def encode_ffmpeg_h265(frames: int = 50, width: int = 192, height: int = 112, fps: int = 25,
                       gop: int = 25, bframes: int = 0, open_gop: bool = False, slices: int = 1,
                       ctu: int = 64, x265: str = "", seed: int = 0, headers: str = "every") -> bytes:
    """Annex-B H.265 from Debian's ffmpeg CLI (its own libx265 build), from a test source.

    Settings as for ``encode_pyav_h265``; ``headers="once"`` as for ``encode_ffmpeg``.
    """
    if headers not in ("every", "once"):
        raise ValueError("headers is 'every' or 'once'")
    params = dict(encoder="ffmpeg-x265", frames=frames, width=width, height=height, fps=fps, gop=gop,
                  bframes=bframes, open_gop=open_gop, slices=slices, ctu=ctu, x265=x265, seed=seed,
                  headers=headers)

    def make() -> bytes:
        return _ffmpeg_encode(["-c:v", "libx265", "-preset", "veryfast", "-x265-params",
                               x265_params(gop, bframes, open_gop, slices, ctu, x265)], (), "hevc",
                              (32, 33, 34), lambda b: (b >> 1) & 0x3F, frames, width, height, fps,
                              seed, headers)

    return _cached(params, make, ".h265")


def _recovery_point_sei(recovery_poc_cnt: int) -> bytes:
    """An H.265 prefix SEI NAL unit holding one recovery point message (D.2.8)."""
    from segbind_core.nal import escape_rbsp

    code = (2 * recovery_poc_cnt - 1 if recovery_poc_cnt > 0 else -2 * recovery_poc_cnt) + 1
    bits = "0" * (code.bit_length() - 1) + format(code, "b")  # se(v)
    bits += "00"  # exact_match_flag, broken_link_flag
    if len(bits) % 8:
        bits += "1" + "0" * (7 - len(bits) % 8)  # payload alignment
    payload = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return b"\x4e\x01" + escape_rbsp(bytes([6, len(payload)]) + payload + b"\x80")


def mark_refresh_cycles(data: bytes, period: int) -> bytes:
    """An x265 intra-refresh stream with a recovery point SEI at the start of each refresh cycle.

    x265's intra refresh (``intra-refresh=1``) writes no recovery point SEI, but it
    repeats VPS, SPS and PPS where each refresh cycle begins; camera SoC encoders mark
    that picture with a recovery point SEI. This adds exactly that SEI (recovery after
    ``period`` pictures), before the picture's first slice, and changes nothing else:
    the stream decodes to the same frames. x265's refresh is not clean (decoded from a
    cycle start, its pictures never match the full decode exactly with PyAV's x265, and
    only after two cycles with Debian's x265 3.5), so the SEI says exact_match_flag 0.
    """
    from segbind_core import h265
    from segbind_core.nal import annexb_units, to_annexb

    units = [data[s:e] for s, e in annexb_units(data)]
    out = []
    cycle = False  # parameter sets seen since the last picture
    for unit in units:
        kind = h265.nal_type(unit[0])
        if kind == h265.NAL_VPS:
            cycle = True
        elif h265.is_vcl(kind) and h265.first_slice_of_picture(unit):
            if cycle and not h265.is_irap(kind):
                out.append(_recovery_point_sei(period))
            cycle = False
        out.append(unit)
    return to_annexb(out)


def decode_hashes_pyav(data: bytes, fmt: str = "h264", show_all: bool = False) -> list:
    """MD5 of every decoded frame (its YUV pixels), in output order, decoded by PyAV from bytes.

    ``fmt`` is the demuxer: ``h264``, ``hevc``, ``mp4``... Only the visible pixels are
    hashed: the padding at the end of each row is not written by every decoder (the
    HEVC decoder leaves it as it finds it). ``show_all``: also output the frames a
    decoder holds back while it has not reached a recovery point (FFmpeg's
    ``flags2=+showall``).
    """
    import io

    import av

    hashes = []
    with av.open(io.BytesIO(data), format=fmt) as container:
        stream = container.streams.video[0]
        if show_all:
            stream.codec_context.options = {"flags2": "+showall"}
        for frame in container.decode(stream):
            hashes.append(frame_md5(frame))
    return hashes


def frame_md5(frame) -> str:
    """MD5 of a decoded frame's visible pixels (not the row padding, which decoders differ in)."""
    import hashlib

    return hashlib.md5(frame.to_ndarray().tobytes()).hexdigest()


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


# The kinds of H.265 stream cameras emit, from x265 through each encoder: name -> (encoder,
# arguments). "recovery_points" marks x265's refresh cycles (``mark_refresh_cycles``).
HEVC_KINDS = {
    "x265-pyav-closed": ("pyav", dict(frames=80, gop=25)),
    "x265-pyav-open-gop": ("pyav", dict(frames=80, gop=24, bframes=3, open_gop=True)),
    "x265-pyav-bframes-radl-slices-aud": ("pyav", dict(frames=80, gop=25, bframes=3, slices=3, ctu=16,
                                                       x265="aud=1:radl=2")),
    "x265-pyav-once": ("pyav", dict(frames=80, gop=25, bframes=2, headers="once")),
    "x265-pyav-interlaced": ("pyav", dict(frames=60, gop=24, bframes=2, x265="interlace=tff")),
    "x265-pyav-intra-refresh": ("pyav", dict(frames=80, gop=25, x265="intra-refresh=1")),
    "x265-pyav-recovery-points": ("pyav", dict(frames=80, gop=25, x265="intra-refresh=1",
                                               recovery_points=True)),
    "x265-ffmpeg-closed-recovery-sei": ("ffmpeg", dict(frames=80, gop=25, x265="idr-recovery-sei=1")),
    "x265-ffmpeg-open-gop": ("ffmpeg", dict(frames=80, gop=24, bframes=3, open_gop=True)),
    "x265-ffmpeg-once-slices": ("ffmpeg", dict(frames=80, gop=25, slices=2, ctu=32, headers="once")),
    "x265-ffmpeg-intra-refresh": ("ffmpeg", dict(frames=80, gop=25, x265="intra-refresh=1")),
    # temporal sub-layers (TSA pictures of temporal id 1) and no IRAP picture after the first
    "x265-ffmpeg-temporal-layers-no-irap": ("ffmpeg", dict(frames=80, gop=250, bframes=3,
                                                           x265="temporal-layers=1")),
}


def make_kind(kind: str) -> bytes:
    """A stream of one of ``KINDS`` (H.264) or ``HEVC_KINDS`` (H.265)."""
    if kind in HEVC_KINDS:
        encoder, kwargs = HEVC_KINDS[kind]
        kwargs = dict(kwargs)
        mark = kwargs.pop("recovery_points", False)
        data = encode_pyav_h265(**kwargs) if encoder == "pyav" else encode_ffmpeg_h265(**kwargs)
        return mark_refresh_cycles(data, kwargs["gop"]) if mark else data
    encoder, kwargs = KINDS[kind]
    return encode_pyav(**kwargs) if encoder == "pyav" else encode_ffmpeg(**kwargs)
