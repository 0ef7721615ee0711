"""The camera's tagger: a segment in, the tagged segment out.

Holds one stream's state (the epoch's slot keys, the next sequence number, the
chain link, the signed fields every segment of the stream shares), so one
Tagger tags one stream. Pure code: the agent's core feeds it the segments its
segmenter cut. Nothing is copied to tag a segment: it is hashed where it lies,
in one call when it is in canonical form (``tag_parts``) or unit by unit
(``tag_units``), and the tagged segment comes out as parts to write one after
the other; ``tag`` joins them for callers that want one bytes object.
"""

import hashlib

from .crypto import MacKey
from .nal import START_CODE, annexb_units
from .sei import build_sei_nal
from .tag import CODEC_H264, DIGEST_HINT_SIZE, FLAG_END_OF_STREAM, GENESIS_LINK, LINK_SIZE, MAC_SIZE, Tag

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Sequence

    from .keys import Epoch
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
        self.rebind(epoch)

    def rebind(self, epoch: "Epoch") -> None:
        """Switch to another epoch (or owner); applies from the next segment on."""
        if epoch.camera != self.camera:
            raise ValueError("an epoch of another camera")
        self.owner = epoch.owner
        self.epoch = epoch.epoch
        self._keys = [MacKey(key) for _holder, key in epoch.slot_keys()]
        self._prefix = b""  # the signed fields up to the stream id, encoded at the next segment
        self._prefix_of = (0, 0)  # the (stream id, codec) they were encoded for

    def tag(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
            end_of_stream: bool = False) -> "tuple[bytes, Tag]":
        """(tagged segment, Tag) for one segment as the segmenter cut it.

        ``data`` is Annex-B with 4-byte start codes and no trailing zeros (the
        canonical form, FORMAT.md section 4) holding ``units`` NAL units; the
        tag goes right after its first unit when that is an access unit
        delimiter, else first. Advances the sequence number and the chain.
        """
        at, sei, tag = self._tag_canonical(data, units, capture_ms, duration_ms, pictures, end_of_stream)
        return data[:at] + sei + data[at:], tag

    def tag_parts(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
                  end_of_stream: bool = False) -> "tuple[list[Buffer], Tag]":
        """``tag``, with the tagged segment as parts (views of ``data`` and the tag): nothing copied."""
        at, sei, tag = self._tag_canonical(data, units, capture_ms, duration_ms, pictures, end_of_stream)
        view = memoryview(data)
        return [view[:at], sei, view[at:]], tag

    def tag_units(self, units: "Sequence[Buffer]", capture_ms: int, duration_ms: int, pictures: int,
                  end_of_stream: bool = False) -> "tuple[list[Buffer], Tag]":
        """(parts, Tag) for a segment given as its NAL units (escaped, without start codes, in
        order: what an encoder SDK hands over), hashed where they lie."""
        if not units:
            raise ValueError("a segment holds at least one NAL unit")
        h = hashlib.sha256()
        for unit in units:
            h.update(START_CODE)
            h.update(unit)
        sei, tag = self._seal(h.digest(), len(units), capture_ms, duration_ms, pictures, end_of_stream)
        parts: "list[Buffer]" = []
        for k, unit in enumerate(units):
            if k == 0 and not _is_delimiter(unit, self.codec):
                parts.append(sei)
            parts.append(START_CODE)
            parts.append(unit)
            if k == 0 and _is_delimiter(unit, self.codec):
                parts.append(sei)
        return parts, tag

    def tag_annexb(self, data: bytes, capture_ms: int, duration_ms: int, pictures: int,
                   end_of_stream: bool = False) -> "tuple[list[Buffer], Tag]":
        """(parts, Tag) for a segment given as Annex-B bytes in any framing: its start codes
        scanned, hashed in one call when its framing is canonical, else unit by unit."""
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

    def _tag_canonical(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
                       end_of_stream: bool) -> "tuple[int, bytes, Tag]":
        if not data.startswith(START_CODE) or units < 1:
            raise ValueError("a segment is Annex-B NAL units with 4-byte start codes")
        sei, tag = self._seal(hashlib.sha256(data).digest(), units, capture_ms, duration_ms, pictures,
                              end_of_stream)
        at = data.find(START_CODE, 4) if _is_delimiter(data[4:5], self.codec) else 0
        return at if at >= 0 else len(data), sei, tag

    def _seal(self, digest: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
              end_of_stream: bool) -> "tuple[bytes, Tag]":
        """The tag SEI (start code included) for a segment of that digest; advances the chain."""
        tag = Tag(self.codec, self.owner, self.camera, self.epoch, self.stream_id, self.seq,
                  capture_ms, duration_ms, pictures, units, self.link, digest[:DIGEST_HINT_SIZE],
                  len(self._keys), flags=FLAG_END_OF_STREAM if end_of_stream else 0)
        if not self._prefix or self._prefix_of != (self.stream_id, self.codec):
            tag.check()
            self._prefix = tag.stream_prefix()
            self._prefix_of = (self.stream_id, self.codec)
        else:
            tag.check_segment()
        signed = self._prefix + tag.segment_fields()
        message = signed + digest
        tag.macs = [key.mac(message)[:MAC_SIZE] for key in self._keys]
        body = signed
        for mac in tag.macs:
            body += mac
        self.seq += 1
        self.link = digest[:LINK_SIZE]
        return START_CODE + build_sei_nal(body, self.codec), tag


def _is_delimiter(unit: "Buffer", codec: int) -> bool:
    """True when a NAL unit (its first bytes suffice) is an access unit delimiter."""
    if len(unit) < 1:
        return False
    if codec == CODEC_H264:
        return unit[0] & 0x1F == 9
    return (unit[0] >> 1) & 0x3F == 35

