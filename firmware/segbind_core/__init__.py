"""segbind core: the binding format and the camera's tagger.

Pure code with no dependencies and no I/O, the same files on CPython 3.9+ and
MicroPython 1.22+. The verifier library (``segbind``) builds on it, so the
format exists in one place.
"""

FORMAT_VERSION = 1
