"""Cutting a stream back into the segments the camera tagged (sans-I/O: bytes in, segments out).

A segment begins with the access unit that holds its tag (at the delimiter right
before the tag, as the camera emits it; docs/FORMAT.md section 3) and ends where
the next one begins. Bytes before the first tag, or between a segment found
complete and the next tag, hold no tag: they come out as a segment of their own,
which a verifier refuses, so nothing in a stream goes unjudged.

``AnnexBSplitter`` reads Annex-B bytes as they arrive, in pieces of any size. It
finds tags by their UUID (``bytes.find``, no scan of every start code) and hashes
the bytes as they come, so a segment as the camera emits it is hashed once, and
handed on as soon as its digest matches its tag's hint: a verdict per segment as
it arrives, not one segment later (a container's samples are cut by ``read.cut``).
It holds one segment and a constant, and does work linear in its input.
"""

from __future__ import annotations

import hashlib
from typing import Any, List, Optional, Sequence

from segbind_core.h264 import SeiError
from segbind_core.sei import SEGBIND_UUID, segbind_payload, tag_codec
from segbind_core.tag import DIGEST_HINT_SIZE, TagError, decode_tag

from ..framing import (
    access_unit_start,
    code_start,
    delimiter_before,
    head_parameter_sets,
    leading_garbage,
    tag_unit_before,
)
from ..verifier import Canonical

# Bound on one segment (a 4K camera's 4-second segment is about 25 MB): beyond it the
# segment is refused and its bytes are not kept (``segbind.open(max_segment_bytes=...)``).
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
# Bytes holding no tag are refused as they come, a MiB at a time; the last 64 KiB wait, as
# the head of the access unit of a tag that may follow.
UNTAGGED_HOLD = 1024 * 1024
UNTAGGED_KEEP = 64 * 1024
# A tag NAL unit is under 600 bytes (docs/FORMAT.md section 5); past this it is malformed.
MAX_TAG_BYTES = 1024
# How far behind the newest byte the running hash stays: a new tag's segment never begins
# earlier than this (its delimiter and header sit right before its UUID).
_HASH_LAG = 64
_UUID = len(SEGBIND_UUID)


def _hint(nal: bytes) -> Optional[bytes]:
    """The digest hint of a tag NAL unit, or None when it cannot be read."""
    try:
        return decode_tag(segbind_payload(nal))[0].digest_hint
    except (SeiError, TagError):
        return None


def units_in_tag(nal: bytes) -> int:
    """The units a tag NAL unit says its segment holds (but the tag), -1 when it cannot be read."""
    try:
        return decode_tag(segbind_payload(nal))[0].units
    except (SeiError, TagError):
        return -1


class _Sets:
    """The parameter sets in force: those of the latest segment head that had any, else the
    container's (``avcC``): what a packager that stripped them would have had to keep."""

    def __init__(self, initial: Sequence[bytes] = ()) -> None:
        self.current: Sequence[bytes] = [bytes(u) for u in initial]

    def seen(self, data: bytes, codec: int) -> Sequence[bytes]:
        """The sets in force before this segment; then this segment's head, if it has any."""
        before = self.current
        found = head_parameter_sets(data, codec)
        if found:
            self.current = found
        return before


class AnnexBSplitter:
    """Cuts Annex-B bytes, pushed as they arrive, into segments (``Canonical``, ``exact`` False).

    ``push(data)`` returns the segments it completed; ``finish()`` the rest at the end.
    """

    def __init__(self, max_segment_bytes: int = MAX_SEGMENT_BYTES) -> None:
        self.max_segment_bytes = max_segment_bytes
        self._chunks: List[bytes] = []   # the bytes from self._begin on
        self._starts: List[int] = []     # the stream offset of each chunk
        self._begin = 0                  # where the pending segment (or untagged run) begins
        self._end = 0                    # bytes received
        self._tag = -1                   # the pending segment's tag: its start code, or -1
        self._tag_unit = -1              # where the tag's NAL unit begins
        self._tag_end = -1               # where the unit after the tag begins (-1: not yet known)
        self._codec = 0
        self._hash: Any = None           # sha256 of the pending segment's bytes but the tag
        self._hashed = 0                 # fed to the hash up to here
        self._hint: Optional[bytes] = None
        self._leading = True             # nothing emitted yet: bytes before a start code are refused
        self._discarding = False         # an oversized run, already refused
        self._sets = _Sets()
        self._out: List[Canonical] = []

    # -- bytes --------------------------------------------------------------------------------

    def _slice(self, start: int, end: int) -> bytes:
        """The stream's bytes [start, end), from the chunks kept."""
        views = self._views(max(start, self._begin), min(end, self._end))
        return bytes(views[0]) if len(views) == 1 else b"".join(views)

    def _views(self, start: int, end: int) -> List[memoryview]:
        """Zero-copy views of the stream's bytes [start, end)."""
        views = []
        for chunk, at in zip(self._chunks, self._starts):
            stop = at + len(chunk)
            if stop <= start:
                continue
            if at >= end:
                break
            views.append(memoryview(chunk)[max(0, start - at):min(len(chunk), end - at)])
        return views

    def _feed(self, start: int, end: int) -> None:
        for view in self._views(start, end):
            self._hash.update(view)

    def _drop_before(self, position: int) -> None:
        while self._chunks and self._starts[0] + len(self._chunks[0]) <= position:
            self._chunks.pop(0)
            self._starts.pop(0)
        self._begin = position

    # -- input --------------------------------------------------------------------------------

    def push(self, data: bytes) -> List[Canonical]:
        if not data:
            return []
        data = bytes(data)
        at = self._end
        self._chunks.append(data)
        self._starts.append(at)
        self._end += len(data)
        # UUIDs across the junction with earlier bytes, then inside the new piece.
        found = []
        if at > self._begin:
            window_start = max(self._begin, at - _UUID + 1)
            window = self._slice(window_start, min(self._end, at + _UUID - 1))
            k = window.find(SEGBIND_UUID)
            while k >= 0 and window_start + k < at:
                found.append(window_start + k)
                k = window.find(SEGBIND_UUID, k + 1)
        k = data.find(SEGBIND_UUID)
        while k >= 0:
            found.append(at + k)
            k = data.find(SEGBIND_UUID, k + 1)
        self._resolve_tag_end()  # the pending tag's end may be in the new bytes
        for uuid_at in found:
            self._candidate(uuid_at)
        self._resolve_tag_end()
        self._advance_hash()
        self._bound()
        self._early_close()
        out, self._out = self._out, []
        return out

    def finish(self) -> List[Canonical]:
        """The end of the stream: the pending segment."""
        self._resolve_tag_end(final=True)
        self._close(self._end)
        self._chunks, self._starts = [], []
        self._begin = self._end
        out, self._out = self._out, []
        return out

    # -- tags and boundaries ------------------------------------------------------------------

    def _candidate(self, uuid_at: int) -> None:
        low = max(self._begin, uuid_at - 8)
        head = self._slice(low, uuid_at + _UUID)
        begin = tag_unit_before(head, uuid_at - low)
        if begin < 0:
            return  # a UUID inside some other unit: covered by the digest like any byte
        unit = low + begin
        if self._tag >= 0 and unit < self._tag_end:
            return
        codec = tag_codec(head[begin:])
        floor = max(self._tag_end, self._tag_unit) if self._tag >= 0 else self._begin
        near = max(floor, unit - 3 - 24)
        window = self._slice(near, unit)
        code = near + code_start(window, unit - near, floor - near)
        found = delimiter_before(window, 0, code - near, codec)
        if found >= 0:
            start = near + found
        else:  # a remuxer moved units ahead of the tag: walk back over them
            window = self._slice(floor, code)
            start = floor + access_unit_start(window, 0, code - floor, codec)
        self._close(start)
        self._drop_before(start)
        self._tag, self._tag_unit, self._tag_end, self._codec = code, unit, -1, codec
        self._hash = hashlib.sha256()
        self._feed(start, code)
        self._hashed = -1
        self._hint = None
        self._resolve_tag_end()

    def _resolve_tag_end(self, final: bool = False) -> None:
        if self._tag < 0 or self._tag_end >= 0:
            return
        window = self._slice(self._tag_unit, self._tag_unit + MAX_TAG_BYTES)
        nxt = window.find(b"\x00\x00\x01")
        if nxt >= 0:
            while nxt > 0 and window[nxt - 1] == 0:
                nxt -= 1
            end = self._tag_unit + nxt
        elif final or len(window) >= MAX_TAG_BYTES:
            end = self._tag_unit + len(window)  # a unit that long is no tag: refused as malformed
        else:
            return
        self._tag_end = end
        self._hashed = end

    def _advance_hash(self) -> None:
        if self._tag >= 0 and self._tag_end >= 0:
            upto = self._end - _HASH_LAG
            if upto > self._hashed:
                self._feed(self._hashed, upto)
                self._hashed = upto

    def _early_close(self) -> None:
        """A pending segment whose bytes so far hash to its tag's digest hint is complete."""
        if self._tag < 0 or self._tag_end < 0 or self._hashed > self._end:
            return
        if self._hint is None:
            self._hint = _hint(self._slice(self._tag_unit, self._tag_end).rstrip(b"\x00")) or b""
        if not self._hint:
            return
        probe = self._hash.copy()
        for view in self._views(self._hashed, self._end):
            probe.update(view)
        digest = probe.digest()
        if digest[:DIGEST_HINT_SIZE] == self._hint:
            self._emit(self._end, digest)
            self._after(self._end)

    def _bound(self) -> None:
        if self._tag < 0 and self._end - self._begin > UNTAGGED_HOLD:
            cut = self._end - UNTAGGED_KEEP  # refused as it comes; a tail kept for the next tag's head
            self._close(cut)
            self._drop_before(cut)
            return
        if self._end - self._begin <= self.max_segment_bytes:
            return
        if not self._discarding:
            self._out.append(Canonical(b"", -1, -1, problem="no segment boundary in %d MiB: a segment "
                                       "larger than that is refused" % (self.max_segment_bytes >> 20)))
        self._discarding = True
        self._tag = self._tag_unit = self._tag_end = -1
        self._hash = None
        self._drop_before(self._end - _UUID - 32)

    # -- closing ------------------------------------------------------------------------------

    def _close(self, end: int) -> None:
        """The pending segment (or untagged run) ends at ``end``."""
        if self._tag >= 0:
            if self._tag_end < 0 or self._tag_end > end:
                self._tag_end = end  # the tag runs to the end: a truncated tag, refused as malformed
                self._hashed = -1
            if 0 <= self._hashed <= end:
                self._feed(self._hashed, end)
            else:  # the hash ran past the end (a segment whose head a remuxer reordered)
                self._hash = hashlib.sha256()
                self._feed(self._begin, self._tag)
                self._feed(self._tag_end, end)
            self._emit(end, self._hash.digest())
        elif end > self._begin and not self._discarding:
            data = self._slice(self._begin, end)
            garbage = leading_garbage(data) if self._leading else 0
            if garbage:
                self._out.append(Canonical(data, -1, -1, problem="%d bytes before the first start code"
                                           % garbage))
                self._leading = False
            elif data.count(0) != len(data):
                self._out.append(Canonical(data, -1, -1))
                self._leading = False
        self._discarding = False

    def _emit(self, end: int, digest: bytes) -> None:
        begin = self._begin
        parts: List[Any] = self._views(begin, end)
        first = bytes(parts[0][:4096]) if parts else b""
        seg = Canonical(None, self._tag - begin, self._tag_end - begin, None, None, "", (), digest, False,
                        self._codec, parts)
        if len(first) < 4096 and len(parts) > 1:
            first = seg.data[:4096]
        seg.restore = self._sets.seen(first, self._codec)
        if self._leading and leading_garbage(first, self._tag - begin):
            seg.problem = "bytes before the first start code"
        self._leading = False
        self._out.append(seg)

    def _after(self, end: int) -> None:
        """Nothing pending: what follows until the next tag holds no tag."""
        self._drop_before(end)
        self._tag = self._tag_unit = self._tag_end = -1
        self._hash = None
