"""A first look: one camera tags real H.264 for its owner; the owner's display
shows it and a stranger's display refuses it. (The fleet simulation replaces
this as the main command.)"""

from __future__ import annotations

import os
import sys
import time

from host_sim import clips
from segbind import Binding, Keyring, StreamVerifier, derive_binding_key, tagged_segments
from segbind_core.nal import annexb_units
from segbind_core.segment import split_segments
from segbind_core.tagger import Tagger


def main() -> int:
    secret = os.urandom(32)
    owner = Binding("alice", "cam-1", 1, derive_binding_key(secret, "alice", "cam-1", 1))
    stranger = Binding("bob", "cam-1", 1, derive_binding_key(secret, "bob", "cam-1", 1))
    video = clips.encode_pyav(frames=100, gop=25)
    tagger = Tagger(owner.key, owner.owner, owner.camera, owner.epoch, int(time.time() * 1000))
    tagged = b"".join(tagger.tag_annexb(video, seg, int(time.time() * 1000))[0]
                      for seg in split_segments(video, annexb_units(video)))
    for name, ring in (("alice (owner)", Keyring([owner])), ("bob (stranger)", Keyring([stranger]))):
        verifier = StreamVerifier(ring)
        verdicts = [verifier.verify_units(tagged, seg) for seg in tagged_segments(tagged)]
        shown = sum(v.accepted for v in verdicts)
        reasons = sorted({v.reason.value for v in verdicts})
        print("%-15s shown %d of %d segments (%s)" % (name, shown, len(verdicts), ", ".join(reasons)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
