"""Helpers shared by the core tests; plain Python that CPython and MicroPython both run.

The tests in this directory use no pytest feature (plain ``test_*`` functions
and ``assert``), so ``tests/micropython/run.mjs`` runs the very same files on
the real MicroPython VM and pytest collects them on CPython.
"""

import json
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

# tests/core/_support.py -> tests/vectors (the harness mirrors the repo layout)
_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0]
VECTORS_DIR = _HERE.rsplit("/", 1)[0] + "/vectors"


def load_vectors(name: str) -> dict:
    with open(VECTORS_DIR + "/" + name) as f:
        return json.load(f)


def h(text: str) -> bytes:
    """bytes from hex; spaces allowed for readability."""
    return bytes.fromhex(text.replace(" ", ""))


def raises(exc_type, fn, *args):
    """Call ``fn(*args)``; return the exception it raised, fail if it raised none."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


class patched:
    """Context manager: set ``obj.name = value`` for the block, then restore it."""

    def __init__(self, obj, name: str, value) -> None:
        self.obj = obj
        self.name = name
        self.value = value
        self.saved = None

    def __enter__(self):
        self.saved = getattr(self.obj, self.name)
        setattr(self.obj, self.name, self.value)
        return self

    def __exit__(self, *exc):
        setattr(self.obj, self.name, self.saved)
        return False
