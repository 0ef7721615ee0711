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

from typing import TYPE_CHECKING, Any

from segbind_core import __version__

# What each public name is, and where it lives: imported when first used, so that a command
# that needs little (``segbind --version``) pays for little (PEP 562).
_HOMES = {
    "Epoch": "segbind_core.keys", "command_key": "segbind_core.keys", "epoch_root": "segbind_core.keys",
    "slot_key": "segbind_core.keys",
    "InputError": "segbind.errors", "InvalidSegment": "segbind.errors", "KeyringError": "segbind.errors",
    "SegbindError": "segbind.errors",
    "Binding": "segbind.keyring", "EpochFile": "segbind.keyring", "Keyring": "segbind.keyring",
    "Input": "segbind.media", "SegmentResult": "segbind.media", "open": "segbind.media",
    "tagged_segments": "segbind.read.annexb",
    "Reason": "segbind.verdict", "TagInfo": "segbind.verdict", "Verdict": "segbind.verdict",
    "LIVE": "segbind.verifier", "Canonical": "segbind.verifier", "StreamVerifier": "segbind.verifier",
    "TimeWindow": "segbind.verifier", "verify_segment": "segbind.verifier",
}

if TYPE_CHECKING:
    from segbind_core.keys import Epoch, command_key, epoch_root, slot_key

    from .errors import InputError, InvalidSegment, KeyringError, SegbindError
    from .keyring import Binding, EpochFile, Keyring
    from .media import Input, SegmentResult, open
    from .read.annexb import tagged_segments
    from .verdict import Reason, TagInfo, Verdict
    from .verifier import LIVE, Canonical, StreamVerifier, TimeWindow, verify_segment


def __getattr__(name: str) -> Any:
    if name == "FORMAT_VERSION":
        from segbind_core.tag import VERSION

        return VERSION
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError("module 'segbind' has no attribute %r" % name)
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return sorted(__all__)


__all__ = [
    "__version__",
    "Binding", "Canonical", "Epoch", "EpochFile", "FORMAT_VERSION", "Input", "InputError", "InvalidSegment",
    "Keyring", "KeyringError", "LIVE", "Reason", "SegbindError", "SegmentResult", "StreamVerifier", "TagInfo",
    "TimeWindow", "Verdict", "command_key", "epoch_root", "open", "slot_key", "tagged_segments",
    "verify_segment",
]
