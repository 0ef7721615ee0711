"""A streamer's side of RTP: what prudynt, majestic or gst-rtsp-server do between the encoder and
the camera's agent, for the benchmarks and the tests that mutate packets.

``access_units`` cuts an encoder's Annex-B output into access units; ``packetize`` sends one
as RTP the way RFC 6184 (H.264) and RFC 7798 (H.265) allow and real packetizers do: units
that fit go alone or aggregated (STAP-A / AP) with their neighbours, larger ones in
fragments (FU-A / FU), the marker bit on the access unit's last packet. The tests against
a real server use GStreamer's own packetizers (tests/support/rtsp.py); this one gives the
same shapes without a server.
"""

from __future__ import annotations

import struct
from typing import List, Sequence, Tuple

from segbind_core import h264, h265
from segbind_core.nal import annexb_units
from segbind_core.tag import CODEC_H264

MTU_PAYLOAD = 1400
SSRC = 0x5E6B1D


def _kind(unit: bytes, codec: int) -> int:
    return unit[0] & 0x1F if codec == CODEC_H264 else (unit[0] >> 1) & 0x3F


def access_units(annexb: bytes, codec: int) -> List[List[bytes]]:
    """The stream's access units, each a list of its NAL units (escaped, no start codes)."""
    syntax = h264 if codec == CODEC_H264 else h265
    view = memoryview(annexb)
    out: List[List[bytes]] = []
    current: List[bytes] = []
    has_picture = False
    for s, e in annexb_units(annexb):
        unit = bytes(view[s:e])
        kind = _kind(unit, codec)
        vcl = syntax.is_vcl(kind)
        opens = kind in syntax.AU_OPENERS or (vcl and syntax.first_slice_of_picture(unit))
        if has_picture and opens:
            out.append(current)
            current, has_picture = [], False
        current.append(unit)
        has_picture = has_picture or vcl
    if current:
        out.append(current)
    return out


def _header(seq: int, ts: int, marker: bool, pt: int, ssrc: int) -> bytes:
    return bytes([0x80, (0x80 if marker else 0) | pt]) + struct.pack("!HII", seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)


def payloads(units: Sequence[bytes], codec: int, mtu: int = MTU_PAYLOAD) -> List[bytes]:
    """The RTP payloads of one access unit: single units, aggregations, fragments."""
    out: List[bytes] = []
    group: List[bytes] = []
    header = 1 if codec == CODEC_H264 else 2

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            if codec == CODEC_H264:
                nri = max(u[0] & 0x60 for u in group)
                head = bytes([nri | 24])
            else:
                tid = min(u[1] & 0x07 for u in group)
                head = bytes([48 << 1, tid])
            out.append(head + b"".join(struct.pack("!H", len(u)) + u for u in group))
        group.clear()

    for unit in units:
        if len(unit) > mtu:
            flush()
            body = unit[header:]
            step = mtu - header - 1
            pieces = [body[k:k + step] for k in range(0, len(body), step)]
            for k, piece in enumerate(pieces):
                flags = (0x80 if k == 0 else 0) | (0x40 if k == len(pieces) - 1 else 0)
                if codec == CODEC_H264:
                    out.append(bytes([(unit[0] & 0xE0) | 28, flags | (unit[0] & 0x1F)]) + piece)
                else:
                    out.append(bytes([(unit[0] & 0x81) | (49 << 1), unit[1], flags | _kind(unit, codec)]) + piece)
            continue
        if group and sum(2 + len(u) for u in group) + 2 + len(unit) + header > mtu:
            flush()
        group.append(unit)
    flush()
    return out


def packetize(aus: Sequence[Sequence[bytes]], codec: int, fps: float = 25.0, seq: int = 0, ts: int = 0,
              pt: int = 96, ssrc: int = SSRC, mtu: int = MTU_PAYLOAD) -> List[bytes]:
    """RTP packets of access units at ``fps`` (90 kHz timestamps), sequence numbers from ``seq``."""
    packets: List[bytes] = []
    for n, au in enumerate(aus):
        stamp = ts + int(round(n * 90000 / fps))
        parts = payloads(au, codec, mtu)
        for k, part in enumerate(parts):
            packets.append(_header(seq + len(packets), stamp, k == len(parts) - 1, pt, ssrc) + part)
    return packets


def rtp_stream(annexb: bytes, codec: int, fps: float = 25.0, seq: int = 0, ts: int = 0,
               mtu: int = MTU_PAYLOAD) -> Tuple[List[bytes], List[List[bytes]]]:
    """(packets, access units) of a whole Annex-B clip."""
    aus = access_units(annexb, codec)
    return packetize(aus, codec, fps, seq, ts, mtu=mtu), aus
