"""Test-only fault injection: ``kill -9`` the agent at a named point.

Set ``SEGBIND_AGENT_CRASH_AT`` to a point name (for example
``ctl:state_renamed``) and the agent sends itself SIGKILL the first time it
reaches that point, exactly as a power cut or an OOM kill would stop it. Unset
(always, in production) it costs one dictionary look-up.
"""

import os
import signal

_AT = os.environ.get("SEGBIND_AGENT_CRASH_AT", "")

POINTS = (
    "ctl:received",        # a command arrived, nothing done yet
    "ctl:state_tmp",       # new state written and fsynced to the temporary file
    "ctl:state_renamed",   # temporary file renamed over the state file, directory not yet fsynced
    "ctl:persisted",       # state durable, tagger not yet switched
    "ctl:applied",         # tagger switched, result not yet published or acknowledged
    # and <write>:state_tmp, <write>:state_renamed, <write>:persisted for every other state write:
    "start:state_tmp", "start:state_renamed", "start:persisted",      # a new stream id chosen
    "pair:state_tmp", "pair:state_renamed", "pair:persisted",         # a pairing taken (offer spent)
    "reset:state_tmp", "reset:state_renamed", "reset:persisted",
    "stream:state_tmp", "stream:state_renamed", "stream:persisted",   # a stream whose seqs ran out
)


def crashpoint(name: str) -> None:
    if _AT and _AT == name:
        os.kill(os.getpid(), signal.SIGKILL)
