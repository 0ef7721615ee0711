"""The fleet's video: each household's camera looks at its own scene (numbered in the frame),
so a person can tell them apart in a picture, and a test can by colour."""

from __future__ import annotations

from host_sim import clips

# Each household's camera looks at its own scene (numbered in the frame), so a person can
# tell them apart in the picture: (name, top colour, bottom colour, moving object's colour).
# Scenes 9 to 24 vary these eight. No pure red: the
# picture marks refused segments in red.
SCENES = [
    ("kitchen", (250, 222, 160), (196, 118, 60), (40, 60, 200)),
    ("garden", (125, 200, 255), (40, 140, 40), (255, 255, 255)),
    ("nursery", (255, 205, 225), (196, 120, 180), (60, 160, 60)),
    ("garage", (150, 160, 170), (60, 70, 80), (255, 200, 0)),
    ("porch at night", (12, 22, 64), (34, 34, 44), (255, 255, 170)),
    ("living room", (240, 240, 228), (160, 130, 100), (30, 120, 200)),
    ("office", (200, 230, 200), (90, 120, 90), (120, 0, 160)),
    ("hallway", (230, 200, 120), (120, 80, 40), (0, 170, 170)),
]
_SEGMENTS7 = {"0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd",
              "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg"}


def _digit(frame, ch: str, x: int, y: int, w: int, h: int, t: int, color) -> None:
    half = h // 2
    boxes = {"a": (x, y, x + w, y + t), "d": (x, y + h - t, x + w, y + h),
             "g": (x, y + half - t // 2, x + w, y + half - t // 2 + t),
             "f": (x, y, x + t, y + half), "b": (x + w - t, y, x + w, y + half),
             "e": (x, y + half, x + t, y + h), "c": (x + w - t, y + half, x + w, y + h)}
    for seg in _SEGMENTS7[ch]:
        x0, y0, x1, y1 = boxes[seg]
        frame[y0:y1, x0:x1] = color


def scene_frame(k: int, i: int, width: int, height: int):
    """Frame ``i`` of scene ``k``: its colours, a window, a moving object and its number."""
    import numpy as np

    _name, top, bottom, obj = SCENES[k % len(SCENES)]
    variant = (k // len(SCENES)) % 3
    if variant == 1:
        top, bottom = bottom, top
    elif variant == 2:
        bottom = SCENES[(k + 3) % len(SCENES)][2]
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    frame = (np.array(top) * (1 - ramp) + np.array(bottom) * ramp).repeat(width, axis=1)
    frame = frame.astype(np.uint8)
    wx, wy = (width * 5 // 8 if variant != 1 else width * 3 // 8), height // 8
    frame[wy:wy + height // 3, wx:wx + width // 4] = (235, 245, 255) if top != SCENES[4][1] else (60, 60, 90)
    r = max(3, height // 9)
    cx = int((i * 3 + k * 17) % (width + 2 * r)) - r
    cy = int(height * 0.65 + (height // 6) * np.sin(i / 7.0 + k))
    yy, xx = np.ogrid[0:height, 0:width]
    frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = obj
    dh = max(10, height // 3)
    dw, t = max(6, dh * 5 // 9), max(2, dh // 7)
    frame[2:dh + 6, 2:2 * dw + 12] = (20, 20, 20)
    for n, ch in enumerate("%02d" % (k + 1)):
        _digit(frame, ch, 5 + n * (dw + 4), 4, dw, dh, t, (255, 255, 255))
    rng = np.random.default_rng(k * 100_003 + i)
    noise = rng.integers(0, 10, size=frame.shape, dtype=np.uint8)
    return np.minimum(frame.astype(np.uint16) + noise, 255).astype(np.uint8)


def scene_clip(k: int, frames: int, width: int, height: int, fps: int, gop: int, codec: int = 1) -> bytes:
    """Annex-B of scene ``k``: H.264 from libx264 (``codec`` 1) or H.265 from libx265 (2), through
    PyAV (host_sim.clips, cached)."""
    source = lambda i: scene_frame(k, i, width, height)  # noqa: E731
    if codec == 2:
        return clips.encode_pyav_h265(frames=frames, width=width, height=height, fps=fps, gop=gop, ctu=16,
                                      frame_source=source, source_id="fleet-scene-v1-%d" % k)
    return clips.encode_pyav(frames=frames, width=width, height=height, fps=fps, gop=gop,
                             frame_source=source, source_id="fleet-scene-v1-%d" % k)
