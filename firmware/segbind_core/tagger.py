"""The camera's tagger: a segment in, the encrypted, tagged segment out.

Holds one stream's state (the epoch and its period keys, the next sequence number, the
chain link), so one Tagger tags one stream. Pure code: the agent's core feeds it the
segments its segmenter cut. For each segment (docs/FORMAT.md sections 4 to 6): the clear
lead from its slice headers, its picture data encrypted under the content key of the
period of its capture time (``protect``), the content digest of that protected form, and
one MAC per slot under the period's slot keys. Nothing but the ciphertext is copied: the
tagged segment comes out as parts to write one after the other; ``tag`` joins them.
"""

import hashlib

from .aes import CtrKey
from .crypto import MacKey
from .nal import START_CODE, annexb_units
from .protect import DOMAIN_SEGMENT, DOMAIN_STILL, clear_lead, protect
from .sei import build_sei_nal
from .tag import (
    CODEC_H264,
    DIGEST_HINT_SIZE,
    FLAG_END_OF_STREAM,
    FLAG_STILL,
    GENESIS_LINK,
    LINK_SIZE,
    MAC_SIZE,
    Tag,
)

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import List, Optional, Sequence, Tuple

    from .keys import Epoch, PeriodKeys
    from .nal import Buffer
except ImportError:
    pass


class Tagger:
    """Tags the segments of one stream, in order, under one epoch at a time."""

    def __init__(self, epoch: "Epoch", stream_id: int, codec: int = CODEC_H264, seq: int = 0,
                 link: bytes = GENESIS_LINK) -> None:
        self.camera = epoch.camera
        self.codec = codec
        self.stream_id = stream_id
        self.seq = seq
        self.link = link
        self._last_digest = b""
        self._scratch = bytearray()  # tag()'s ciphertext, reused from segment to segment
        self.rebind(epoch)

    def rebind(self, epoch: "Epoch") -> None:
        """Switch to another epoch (or owner); applies from the next segment on."""
        if epoch.camera != self.camera:
            raise ValueError("an epoch of another camera")
        self.owner = epoch.owner
        self.epoch = epoch.epoch
        self._epoch = epoch
        self._period: "Optional[PeriodKeys]" = None
        self._macs: "List[MacKey]" = []
        self._ctr: "Optional[CtrKey]" = None  # the period's content key, its AES key schedule done
        self._prefix = b""  # the signed fields up to the stream id, for (period, stream id, codec)
        self._prefix_of: "Tuple[int, int, int]" = (-1, 0, 0)

    def _keys(self, capture_ms: int) -> "PeriodKeys":
        period = self._epoch.period_of(capture_ms)
        keys = self._period
        if keys is None or keys.period != period:
            keys = self._period = self._epoch.period_keys(period)
            self._macs = [MacKey(key) for _holder, key in keys.slot_keys]
            self._ctr = CtrKey(keys.content_key)
        return keys

    def tag(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
            end_of_stream: bool = False, bounds: "Optional[Sequence[Tuple[int, int]]]" = None) -> "Tuple[bytes, Tag]":
        """(tagged segment, Tag) for one segment as the segmenter cut it.

        ``data`` is Annex-B with 4-byte start codes and no trailing zeros (the canonical
        form, FORMAT.md section 4.5) holding ``units`` NAL units in clear, each access unit
        beginning with its delimiter; the tag goes right after its first unit when that is a
        delimiter, else first. ``bounds``: where those units are (``Segment.bounds``: the
        segmenter found them; else they are looked for). Advances the sequence number and the
        chain.
        """
        if len(self._scratch) < len(data) + 4 * units:
            self._scratch = bytearray(len(data) + 4 * units)
        parts, tag = self._tag(data, units, capture_ms, duration_ms, pictures, end_of_stream, bounds, self._scratch)
        return _join(parts), tag

    def tag_parts(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
                  end_of_stream: bool = False,
                  bounds: "Optional[Sequence[Tuple[int, int]]]" = None) -> "Tuple[List[Buffer], Tag]":
        """``tag``, with the tagged segment as parts (views of ``data``, the ciphertext and the
        tag), to write one after the other."""
        return self._tag(data, units, capture_ms, duration_ms, pictures, end_of_stream, bounds, None)

    def _tag(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int, end_of_stream: bool,
             bounds: "Optional[Sequence[Tuple[int, int]]]",
             scratch: "Optional[bytearray]") -> "Tuple[List[Buffer], Tag]":
        flags = FLAG_END_OF_STREAM if end_of_stream else 0
        parts, tag = self._seal(data, units, capture_ms, duration_ms, pictures, flags, self.seq, self.link,
                                DOMAIN_SEGMENT, bounds, scratch)
        self.seq += 1
        self.link = self._last_digest[:LINK_SIZE]
        return parts, tag

    def tag_still(self, data: bytes, units: int, capture_ms: int, seq: int) -> "Tuple[bytes, Tag]":
        """An event's thumbnail: one access unit that begins a segment (a random access point
        with its parameter sets), tagged as a still (FORMAT.md 10) with the seq of the segment
        it was taken from. It joins no chain: the stream's seq and link do not move."""
        parts, tag = self._seal(data, units, capture_ms, 0, 1, FLAG_STILL, seq, GENESIS_LINK, DOMAIN_STILL)
        return _join(parts), tag

    def tag_units(self, units: "Sequence[Buffer]", capture_ms: int, duration_ms: int, pictures: int,
                  end_of_stream: bool = False) -> "Tuple[List[Buffer], Tag]":
        """(parts, Tag) for a segment given as its NAL units (escaped, without start codes, in
        order: what an encoder SDK hands over)."""
        if not units:
            raise ValueError("a segment holds at least one NAL unit")
        joined = bytearray()
        bounds = []
        for unit in units:
            if not len(unit):
                raise ValueError("an empty NAL unit")
            joined += START_CODE
            start = len(joined)
            joined += unit
            bounds.append((start, len(joined)))
        return self.tag_parts(joined, len(units), capture_ms, duration_ms, pictures,  # type: ignore[arg-type]
                              end_of_stream, bounds)

    def tag_annexb(self, data: bytes, capture_ms: int, duration_ms: int, pictures: int,
                   end_of_stream: bool = False) -> "Tuple[List[Buffer], Tag]":
        """(parts, Tag) for a segment given as Annex-B bytes in any framing (3-byte start codes,
        zero bytes between units): put into canonical form first when it is not."""
        found = annexb_units(data)
        if not found:
            raise ValueError("a segment holds at least one NAL unit")
        canonical = found[0][0] == 4 and found[-1][1] == len(data)
        before = 0
        for s, e in found:
            if not canonical:
                break
            canonical = data[s - 4] == 0 and (before == 0 or s == before + 4)
            before = e
        if canonical:
            return self.tag_parts(data, len(found), capture_ms, duration_ms, pictures, end_of_stream)
        view = memoryview(data)
        return self.tag_units([view[s:e] for s, e in found], capture_ms, duration_ms, pictures, end_of_stream)

    def _seal(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int, flags: int,
              seq: int, link: bytes, domain: int, bounds: "Optional[Sequence[Tuple[int, int]]]" = None,
              scratch: "Optional[bytearray]" = None) -> "Tuple[List[Buffer], Tag]":
        if not data.startswith(START_CODE) or units < 1:
            raise ValueError("a segment is Annex-B NAL units with 4-byte start codes")
        if bounds is None:
            bounds = annexb_units(data)
        elif len(bounds) != units:
            raise ValueError("%d unit bounds for %d units" % (len(bounds), units))
        keys = self._keys(capture_ms)
        lead = clear_lead(data, self.codec, bounds)
        protected = protect(data, self.codec, lead, self._ctr or keys.content_key, self.stream_id, seq, domain,
                            bounds, scratch)
        h = hashlib.sha256()
        for part in protected:
            h.update(part)
        digest = h.digest()
        self._last_digest = digest
        tag = Tag(self.codec, keys.key_id, self.stream_id, seq, capture_ms, duration_ms, pictures, units, lead,
                  link, digest[:DIGEST_HINT_SIZE], len(self._macs), flags=flags)
        prefix_of = (keys.period, self.stream_id, self.codec)
        if not self._prefix or self._prefix_of != prefix_of:
            tag.check()
            self._prefix = tag.stream_prefix()
            self._prefix_of = prefix_of
        else:
            tag.check_segment()
        signed = self._prefix + tag.segment_fields()
        message = signed + digest
        tag.macs = [key.mac(message)[:MAC_SIZE] for key in self._macs]
        body = signed
        for mac in tag.macs:
            body += mac
        sei = START_CODE + build_sei_nal(body, self.codec)
        return _with_tag(protected, sei, self.codec), tag


def _join(parts: "List[Buffer]") -> bytes:
    """The parts as one bytes object (CPython joins views at once; MicroPython's join takes
    bytes only)."""
    try:
        return b"".join(parts)
    except TypeError:
        return b"".join(bytes(p) for p in parts)


def _with_tag(parts: "List[Buffer]", sei: bytes, codec: int) -> "List[Buffer]":
    """The parts with the tag's unit right after the first unit when that is a delimiter, else
    first (the parts begin with the segment's first unit, in clear: never a picture's bytes)."""
    first = bytes(parts[0][4:5]) if parts and len(parts[0]) > 4 else b""
    if not _is_delimiter(first, codec):
        return [sei] + parts
    head = parts[0]
    at = bytes(head[:64]).find(START_CODE, 4)  # a delimiter is 2 or 3 bytes: no need to copy the head
    if at < 0 and len(head) > 64:
        at = bytes(head).find(START_CODE, 4)
    if at < 0:  # the delimiter fills the first part: the tag goes before the second
        return [head, sei] + parts[1:]
    view = memoryview(head)
    out: "List[Buffer]" = [view[:at], sei, view[at:]]
    return out + parts[1:]


def _is_delimiter(unit: "Buffer", codec: int) -> bool:
    """True when a NAL unit (its first bytes suffice) is an access unit delimiter."""
    if len(unit) < 1:
        return False
    if codec == CODEC_H264:
        return unit[0] & 0x1F == 9
    return (unit[0] >> 1) & 0x3F == 35
