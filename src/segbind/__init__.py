"""segbind: bind camera video to its owner, and refuse any segment that is not bound to the viewer.

Verifying (cloud services, displays)::

    keyring = segbind.Keyring.load("keyring.json")     # or from the owner's sealed grants
    verifier = segbind.StreamVerifier(keyring, window=segbind.LIVE)
    verdict = verifier.verify(segment_bytes)           # never raises
    if verdict.accepted: show(segment_bytes)

    segbind.verify_segment(segment_bytes, keyring)      # one segment; raises InvalidSegment

    with segbind.open("live.m3u8", keyring) as media:  # a path, an http(s) URL, a pipe or bytes
        for segment in media:                          # verdicts as segments arrive
            if segment.accepted: decoder.feed(segment.data)   # exactly the verified NAL units
"""

from segbind_core import __version__
from segbind_core.keys import Epoch, command_key, epoch_root, slot_key
from segbind_core.tag import VERSION as FORMAT_VERSION

from .errors import InputError, InvalidSegment, KeyringError, SegbindError
from .keyring import Binding, EpochFile, Keyring
from .media import Input, SegmentResult, open
from .read.annexb import tagged_segments
from .verdict import Reason, TagInfo, Verdict
from .verifier import LIVE, Canonical, StreamVerifier, TimeWindow, verify_segment

__all__ = [
    "__version__",
    "Binding", "Canonical", "Epoch", "EpochFile", "FORMAT_VERSION", "Input", "InputError", "InvalidSegment",
    "Keyring", "KeyringError", "LIVE", "Reason", "SegbindError", "SegmentResult", "StreamVerifier", "TagInfo",
    "TimeWindow", "Verdict", "command_key", "epoch_root", "open", "slot_key", "tagged_segments",
    "verify_segment",
]
