"""The camera's tagger: a segment in, the tagged segment out.

Holds one stream's state (the epoch's slot keys, the next sequence number, the
chain link), so one Tagger tags one stream. Pure code: the agent's core feeds
it the segments its segmenter cut.
"""

import hashlib

from .crypto import MacKey
from .nal import START_CODE
from .sei import build_sei_nal
from .tag import CODEC_H264, DIGEST_HINT_SIZE, FLAG_END_OF_STREAM, GENESIS_LINK, LINK_SIZE, Tag, compute_mac

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from .keys import Epoch
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

    def tag(self, data: bytes, units: int, capture_ms: int, duration_ms: int, pictures: int,
            end_of_stream: bool = False) -> "tuple[bytes, Tag]":
        """(tagged segment, Tag) for one segment as the segmenter cut it.

        ``data`` is Annex-B with 4-byte start codes and no trailing zeros (the
        canonical form, FORMAT.md section 4) holding ``units`` NAL units; the
        tag goes right after its first unit when that is an access unit
        delimiter, else first. Advances the sequence number and the chain.
        """
        if not data.startswith(START_CODE) or units < 1:
            raise ValueError("a segment is Annex-B NAL units with 4-byte start codes")
        digest = hashlib.sha256(data).digest()
        tag = Tag(self.codec, self.owner, self.camera, self.epoch, self.stream_id, self.seq,
                  capture_ms, duration_ms, pictures, units, self.link, digest[:DIGEST_HINT_SIZE],
                  len(self._keys), flags=FLAG_END_OF_STREAM if end_of_stream else 0)
        signed = tag.signed_fields()
        tag.macs = [compute_mac(key, signed, digest) for key in self._keys]
        sei = START_CODE + build_sei_nal(tag.encode(), self.codec)
        at = data.find(START_CODE, 4) if _is_delimiter(data, self.codec) else 0
        if at < 0:
            at = len(data)
        self.seq += 1
        self.link = digest[:LINK_SIZE]
        return data[:at] + sei + data[at:], tag


def _is_delimiter(data: bytes, codec: int) -> bool:
    """True when the segment's first NAL unit is an access unit delimiter."""
    if len(data) < 5:
        return False
    if codec == CODEC_H264:
        return data[4] & 0x1F == 9
    return (data[4] >> 1) & 0x3F == 35
