"""FFmpeg as the oracle for slice headers and picture order (CPython only: it runs Debian's ffmpeg).

- ``traced_units``: every NAL unit FFmpeg's ``trace_headers`` bitstream filter reads
  (``ffmpeg -c copy -bsf:v trace_headers``), with each syntax element's bit position,
  bits and value. For a slice, ``end_bit`` is where slice_data() begins: the end of its
  last element (byte_alignment() in H.265, cabac_alignment_one_bit in H.264 with CABAC).
  Positions count from the first bit of the NAL header, in RBSP bits, as segbind's
  ``header_bits`` does.
- ``decoded_pocs``: the picture order counts FFmpeg's own decoder derives, per picture in
  decoding order (H.264: ``-debug pict`` prints each slice's field POCs; H.265: its debug
  log says "Decoded frame with POC n").
- ``output_order``: for each frame PyAV's decoder outputs, in output order, the decoding
  index of the access unit it came from.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

_LINE = re.compile(r"^\[trace_headers @ 0x[0-9a-f]+\] (.*)$")
_ELEMENT = re.compile(r"^(\d+)\s+(\S+)\s+([01]+) = (-?\d+)$")
SLICE_HEADINGS = ("Slice Header", "Slice Segment Header")


@dataclass
class TracedUnit:
    """One NAL unit as trace_headers reads it."""

    heading: str  # "Slice Header", "Sequence Parameter Set", ...
    elements: List[Tuple[int, str, str, int]] = field(default_factory=list)  # (bit, name, bits, value)

    @property
    def is_slice(self) -> bool:
        return self.heading in SLICE_HEADINGS

    @property
    def end_bit(self) -> int:
        """The bit after the unit's last element read."""
        return max(pos + len(bits) for pos, _name, bits, _value in self.elements)

    def value(self, name: str, default: Optional[int] = None) -> Optional[int]:
        """The first value of an element (subscripts written as FFmpeg does: ``name[0]``)."""
        for _pos, element, _bits, value in self.elements:
            if element == name:
                return value
        return default

    def values(self) -> Dict[str, int]:
        """Every element's first value, by name."""
        out: Dict[str, int] = {}
        for _pos, name, _bits, value in self.elements:
            out.setdefault(name, value)
        return out


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise RuntimeError("Debian's ffmpeg is not installed (tools/setup.sh installs it)")
    return path


def _demuxer(codec: str) -> str:
    if codec not in ("h264", "hevc"):
        raise ValueError("codec is h264 or hevc")
    return codec


def traced_units(data: bytes, codec: str) -> List[TracedUnit]:
    """Every NAL unit of Annex-B ``data`` that trace_headers reads, in stream order (the
    extradata the demuxer reports first is left out). Raises when FFmpeg fails."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.bin"
        path.write_bytes(data)
        # the raw muxer, not null: it needs no picture size (FFmpeg's decoder may not know one)
        proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostats", "-v", "info", "-f", _demuxer(codec),
                               "-i", str(path), "-map", "0:v:0", "-c", "copy", "-bsf:v", "trace_headers",
                               "-f", _demuxer(codec), "-y", os.devnull], capture_output=True, timeout=300)
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError("ffmpeg trace_headers failed: " + text[-2000:])
    units: List[TracedUnit] = []
    heading = ""
    in_packets = False
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        body = m.group(1).strip()
        if body.startswith("Packet:"):
            in_packets = True
            continue
        if not in_packets:
            continue
        element = _ELEMENT.match(body)
        if element is None:
            heading = body
            continue
        pos, name, bits, value = int(element.group(1)), element.group(2), element.group(3), int(element.group(4))
        if pos == 0 and name == "forbidden_zero_bit":
            units.append(TracedUnit(heading))
        units[-1].elements.append((pos, name, bits, value))
    return units


def traced_slices(data: bytes, codec: str) -> List[TracedUnit]:
    """The slice units of ``traced_units``, in stream order."""
    return [unit for unit in traced_units(data, codec) if unit.is_slice]


def _debug_log(data: bytes, codec: str, *extra: str) -> Dict[str, List[str]]:
    """FFmpeg's debug log of one single-threaded decode of ``data``, by decoder context."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.bin"
        path.write_bytes(data)
        proc = subprocess.run([_ffmpeg(), "-hide_banner", "-nostats", "-v", "debug", "-threads", "1", *extra,
                               "-f", _demuxer(codec), "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                              capture_output=True, timeout=300)
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError("ffmpeg decode failed: " + text[-2000:])
    contexts: Dict[str, List[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^\[(h264|hevc) @ (0x[0-9a-f]+)\] (.*)$", line)
        if m:
            contexts.setdefault(m.group(2), []).append(m.group(3))
    return contexts


def decoded_pocs(data: bytes, codec: str) -> List[Tuple[int, int]]:
    """The POC FFmpeg's decoder gives each picture, in decoding order.

    H.264: (top, bottom) field POCs of each picture's first slice, as ``-debug pict`` prints
    them (a field's other entry is the other field's, or a placeholder when not decoded
    yet); FFmpeg adds 65536 to POC type 0 counts after an IDR. H.265: (poc, poc).
    The decoder that probes the stream is set apart: the context with the most lines wins.
    """
    if codec == "h264":
        contexts = _debug_log(data, codec, "-debug", "pict")
        pattern = re.compile(r"^slice:(\d+) .* mb:(\d+) .* poc:(-?\d+)/(-?\d+) ")
    else:
        contexts = _debug_log(data, codec)
        pattern = re.compile(r"^Decoded frame with POC (-?\d+)\.$")
    best: List[Tuple[int, int]] = []
    for lines in contexts.values():
        found: List[Tuple[int, int]] = []
        for line in lines:
            m = pattern.match(line)
            if m is None:
                continue
            if codec == "h264":
                if m.group(1) == "1":  # the first slice of each picture
                    found.append((int(m.group(3)), int(m.group(4))))
            else:
                poc = int(m.group(1))
                found.append((poc, poc))
        if len(found) > len(best):
            best = found
    return best


def output_order(data: bytes, codec: str) -> List[int]:
    """For each frame PyAV's decoder outputs (in output order), the decoding index of the
    access unit (packet of FFmpeg's parser) it came from: each packet is given its index as pts."""
    import av

    ctx = av.CodecContext.create(codec, "r")
    ctx.thread_count = 1
    packets = ctx.parse(data) + ctx.parse(None)
    order: List[int] = []
    for index, packet in enumerate(packets):
        packet.pts = packet.dts = index
        order += [int(frame.pts) for frame in ctx.decode(packet)]
    order += [int(frame.pts) for frame in ctx.decode(None)]
    return order


def stored_bytes(unit: bytes, bits: int, header: int) -> int:
    """How many bytes of a unit as stored hold its first ``bits`` RBSP bits (the NAL header's
    included): emulation-prevention bytes hold none."""
    count, have, zeros = header, 8 * header, 0
    for b in unit[header:]:
        if have >= bits:
            break
        count += 1
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        have += 8
        zeros = zeros + 1 if b == 0 else 0
    return count


def lead_by_ffmpeg(units: List[bytes], codec: int, readable: bool = False) -> int:
    """FORMAT.md 4.1's clear lead, from FFmpeg's trace_headers: the most stored bytes any picture
    unit needs for its NAL header and slice header; the NAL header alone when FFmpeg cannot read
    every slice header (``readable``: it must, else AssertionError)."""
    from tests.support import format_v3 as F

    header = 1 if codec == 1 else 2
    pictures = [u for u in units if F.is_picture(u, codec)]
    try:
        traced = traced_slices(F.canonical(units), "h264" if codec == 1 else "hevc")
    except RuntimeError:
        assert not readable, "FFmpeg cannot trace the slice headers"
        return header
    if len(traced) != len(pictures) or not all(t.value("slice_type") is not None or codec == 2 for t in traced):
        assert not readable, (len(traced), len(pictures))
        return header
    return max(stored_bytes(u, t.end_bit, header) for u, t in zip(pictures, traced))
