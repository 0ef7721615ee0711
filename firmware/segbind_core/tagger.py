"""The camera's tagger: a segment in, the tagged segment out.

Holds the stream's state (binding, next sequence number, the chain link), so
one Tagger tags one stream. Pure code: the agent and the CLI feed it bytes.
"""

from .h264 import NAL_AUD
from .nal import START_CODE
from .sei import build_sei_nal, is_segbind_sei
from .tag import DIGEST_HINT_SIZE, GENESIS_LINK, LINK_SIZE, Tag, compute_mac, content_digest

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Sequence

    from .nal import Buffer
except ImportError:
    pass


class Tagger:
    """Tags the segments of one stream, in order, under one binding at a time."""

    def __init__(self, binding_key: bytes, owner: str, camera: str, epoch: int,
                 stream_id: int, seq: int = 0, link: bytes = GENESIS_LINK) -> None:
        self.camera = camera
        self.stream_id = stream_id
        self.seq = seq
        self.link = link
        self.rebind(binding_key, owner, epoch)

    def rebind(self, binding_key: bytes, owner: str, epoch: int) -> None:
        """Switch owner or epoch; applies from the next segment on, never mid-segment."""
        self._key = binding_key
        self.owner = owner
        self.epoch = epoch

    def tag_units(self, buf: Buffer, units: Sequence[tuple[int, int]],
                  capture_ms: int) -> tuple[bytes, Tag]:
        """(SEI NAL unit, Tag) for the segment made of ``units`` of ``buf``.

        Advances the sequence number and the chain. Raises ValueError when the
        segment is empty or already carries a segbind tag.
        """
        if not units:
            raise ValueError("an empty segment cannot be tagged")
        view = memoryview(buf)
        for s, e in units:
            if is_segbind_sei(view[s:e]):
                raise ValueError("segment already carries a segbind tag")
        digest = content_digest(buf, units)
        tag = Tag(self.owner, self.camera, self.epoch, self.stream_id, self.seq,
                  capture_ms, self.link, digest[:DIGEST_HINT_SIZE])
        tag.mac = compute_mac(self._key, tag.signed_fields(), digest)
        self.seq += 1
        self.link = tag.mac[:LINK_SIZE]
        return build_sei_nal(tag.encode()), tag

    def tag_annexb(self, buf: Buffer, units: Sequence[tuple[int, int]],
                   capture_ms: int) -> tuple[bytes, Tag]:
        """(tagged Annex-B bytes, Tag): the segment with its SEI after any leading AUD."""
        sei, tag = self.tag_units(buf, units, capture_ms)
        at = 1 if buf[units[0][0]] & 0x1F == NAL_AUD else 0
        view = memoryview(buf)
        out = bytearray()
        for i, (s, e) in enumerate(units):
            if i == at:
                out += START_CODE
                out += sei
            out += START_CODE
            out += view[s:e]
        if at == len(units):
            out += START_CODE
            out += sei
        return bytes(out), tag
