"""Random container mutations for hypothesis (tests/media/test_mutations.py, test_differential.py):
the mutation strategy, where each container keeps its own structures (the bytes most mutants
should hit: boxes, elements, packet and tag headers), and applying a mutation to bytes."""

from __future__ import annotations

import random
from typing import List, Tuple

from hypothesis import strategies as st

MUTATION = st.tuples(
    st.sampled_from(["flip", "byte", "delete", "duplicate", "insert", "truncate"]),
    st.booleans(),            # inside the container's structures (else anywhere)
    st.floats(0, 1, exclude_max=True),
    st.integers(1, 64),       # bytes deleted, duplicated or inserted
    st.integers(0, 255),
)


def structure(data: bytes, kind: str) -> List[Tuple[int, int]]:
    """Byte ranges of the container's own structures (not sample data); ``kind`` "ts", "mkv",
    "flv", or an MP4 kind ("mp4", "fmp4"): top-level boxes, 'moov' and 'moof' whole."""
    if kind == "ts":
        return [(k, min(len(data), k + 24)) for k in range(0, len(data), 188)]  # packet and PES headers
    if kind == "mkv":
        return [(0, min(len(data), 2048))] + [(k, min(len(data), k + 32)) for k in range(2048, len(data), 4096)]
    if kind == "flv":
        return _flv_structure(data)
    ranges, pos = [], 0
    while pos + 8 <= len(data):  # top-level boxes: moov and moof whole, mdat's header
        size = int.from_bytes(data[pos:pos + 4], "big")
        box = data[pos + 4:pos + 8]
        if size < 8:
            break
        ranges.append((pos, min(len(data), pos + (size if box in (b"moov", b"moof", b"ftyp") else 16))))
        pos += size
    return ranges


def _flv_structure(data: bytes) -> List[Tuple[int, int]]:
    """The FLV header, each tag's header with the first bytes of its body (a video tag's frame
    type, codec, packet type and composition time; a script tag's AMF) and its PreviousTagSize."""
    ranges = [(0, min(len(data), 13))]
    pos = 13
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ranges.append((pos, min(len(data), pos + 11 + min(size, 16))))
        end = pos + 11 + size
        if end + 4 > len(data):
            break
        ranges.append((end, end + 4))
        pos = end + 4
    return ranges


def mutate(data: bytes, ranges: List[Tuple[int, int]], mutation) -> bytes:
    """``data`` with one mutation (an element of ``MUTATION``) applied, inside ``ranges`` (each
    byte of them as likely as any other) when the mutation says so."""
    op, structural, where, size, value = mutation
    if not data:
        return data
    if structural and ranges:
        total = sum(end - start for start, end in ranges)
        at = int(where * total)
        for start, end in ranges:
            if at < end - start:
                pos = start + at
                break
            at -= end - start
    else:
        pos = int(where * len(data))
    pos = min(pos, len(data) - 1)
    if op == "flip":
        return data[:pos] + bytes([data[pos] ^ (1 << (value % 8))]) + data[pos + 1:]
    if op == "byte":
        return data[:pos] + bytes([value]) + data[pos + 1:]
    if op == "delete":
        return data[:pos] + data[pos + size:]
    if op == "duplicate":
        return data[:pos + size] + data[pos:pos + size] + data[pos + size:]
    if op == "insert":
        return data[:pos] + random.Random(value).randbytes(size) + data[pos:]
    return data[:pos]
