"""segbind: bind camera video to its owner, and refuse any segment that is not bound to the viewer.

Verifying (cloud services, displays)::

    keyring = segbind.Keyring.load("keyring.json")
    verifier = segbind.StreamVerifier(keyring)
    verdict = verifier.verify(segment_bytes)       # never raises
    if verdict.accepted: show(segment_bytes)

    segbind.verify_segment(segment_bytes, keyring)  # one segment; raises InvalidSegment
"""

from segbind_core import __version__
from segbind_core.keys import derive_binding_key, derive_control_key
from segbind_core.tag import VERSION as FORMAT_VERSION

from .errors import InputError, InvalidSegment, KeyringError, SegbindError
from .keyring import Binding, Keyring
from .read.annexb import tagged_segments
from .verdict import Reason, TagInfo, Verdict
from .verifier import StreamVerifier, TimeWindow, verify_segment

__all__ = [
    "__version__",
    "Binding", "FORMAT_VERSION", "InputError", "InvalidSegment", "Keyring", "KeyringError",
    "Reason", "SegbindError", "StreamVerifier", "TagInfo", "TimeWindow", "Verdict",
    "derive_binding_key", "derive_control_key", "tagged_segments", "verify_segment",
]
