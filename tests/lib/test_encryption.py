"""The core's encryption and tags on real encoders' streams, checked by an implementation of
docs/FORMAT.md written apart from it (tests/support/format_v3.py: ``cryptography``'s HKDF and
AES-CTR, hmac, hashlib), with the clear lead taken from FFmpeg's trace_headers (where each
slice header ends): x264 and x265 in the settings that stress slice headers (CABAC, CAVLC,
slices, MBAFF, sixteen references and emulation prevention inside the header, WPP, headers
over 64 bytes), cut by the camera's segmenter and tagged by the camera's tagger.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import pytest

from host_sim import clips
from segbind import StreamVerifier
from segbind_core.segment import Segment, Segmenter
from segbind_core.tag import CODEC_H264, CODEC_H265
from segbind_core.tagger import Tagger
from tests.support import format_v3 as F
from tests.support.tagged import PAIRING, T0, epoch, keyring_of, strip_tag
from tests.support.trace_headers import lead_by_ffmpeg

STREAMS = {
    "x264 cabac b-pyramid": lambda: clips.encode_ffmpeg(frames=24, extra=("-x264-params",
                                                                          "bframes=3:b-pyramid=normal:keyint=12")),
    "x264 cavlc baseline": lambda: clips.encode_ffmpeg(frames=24, extra=("-profile:v", "baseline", "-g", "12")),
    "x264 four slices": lambda: clips.encode_ffmpeg(frames=24, extra=("-x264-params", "slices=4:bframes=2:keyint=12")),
    "x264 mbaff": lambda: clips.encode_ffmpeg(frames=24, extra=("-x264-params", "interlaced=1:bframes=2:keyint=12")),
    "x264 16 references": lambda: clips.encode_ffmpeg(frames=24, extra=("-x264-params", "ref=16:bframes=0:keyint=12")),
    "pyav x264": lambda: clips.encode_pyav(frames=24, gop=12, bframes=2, slices=2),
    "x265 closed gop": lambda: clips.encode_ffmpeg_h265(frames=24, gop=12, bframes=3),
    "x265 open gop": lambda: clips.encode_pyav_h265(frames=24, gop=8, bframes=3, open_gop=True, slices=2, ctu=16),
    "x265 three slices": lambda: clips.encode_ffmpeg_h265(frames=24, gop=12, bframes=2, slices=3, ctu=16),
    "x265 720p wpp": lambda: clips.encode_ffmpeg_h265(frames=4, width=1280, height=720, bframes=1, ctu=16,
                                                      x265="wpp=1"),
}


@lru_cache(maxsize=None)
def segments(name: str) -> Tuple[int, Tuple[Segment, ...]]:
    data = STREAMS[name]()
    codec = CODEC_H265 if name.startswith("x265") else CODEC_H264
    segmenter = Segmenter(delimit=True, codec=codec)
    return codec, tuple(s for s in segmenter.push(data) + segmenter.finish() if isinstance(s, Segment))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_real_segments_are_encrypted_and_tagged_as_format_3_says(name: str) -> None:
    codec, cut = segments(name)
    assert len(cut) >= 2 or name == "x265 720p wpp"
    ep = epoch(shares=("bob", "carol"))
    tagger = Tagger(ep, T0, codec=codec)
    link = F.GENESIS
    verifier = StreamVerifier(keyring_of(ep, holder="carol"))
    for i, seg in enumerate(cut):
        capture = T0 + 1000 * i
        tagged, _ = tagger.tag(seg.data, seg.units, capture, seg.duration_ms, seg.pictures)
        units = F.split_annexb(seg.data)
        lead = lead_by_ffmpeg(units, codec, readable=True)
        assert lead > (1 if codec == CODEC_H264 else 2), name  # every slice header was read: all kept clear
        keys = F.period_keys(PAIRING, "alice", "cam-1", 1, ep.period_s, ["bob", "carol"], capture)
        made = F.tag(units, codec, lead, keys, T0, i, capture, seg.duration_ms, seg.pictures, link)
        assert tagged == made.segment, (name, i)  # so the core's clear lead is FFmpeg's too
        for unit in made.protected:
            assert F.start_code_emulations(unit) == []
        # every byte of picture data past the lead, but the last of each unit, is encrypted
        protected = [u for u in made.protected if F.is_picture(u, codec)]
        plain = [u for u in units if F.is_picture(u, codec)]
        hidden = sum(len(F.ciphertext(p, lead)) for p in protected)
        assert hidden == sum(max(0, len(u) - 1 - lead) for u in plain)
        assert hidden > 0.9 * sum(len(u) for u in plain), name
        verdict = verifier.verify(tagged)
        assert verdict.accepted, (name, i, verdict)
        assert strip_tag(verifier.verified or b"") == seg.data
        link = made.digest[:8]
