"""segbind core: the binding format and the camera's tagger.

Pure code with no dependencies and no I/O, the same files on CPython 3.9+ and
MicroPython 1.22+. The verifier library (``segbind``) builds on it, so the
format exists in one place.
"""

__version__ = "0.2.0"  # the one place segbind's version is written (pyproject reads it)

FORMAT_VERSION = 1
