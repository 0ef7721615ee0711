"""The encoder's Annex-B output: a pipe (stdin), a FIFO or a file, read on a thread.

The reader thread only moves bytes into a bounded queue (``chunks``, or the
caller's ``sink``); blocking opens and reads (a FIFO waits for its writer)
never hold up command handling or publishing on the agent's thread. At end of
input it queues ``EOF``; for a FIFO in "reopen" mode it then waits for the next
writer (an encoder restart).
"""

import os
import queue
import stat
import sys
import threading
import time

EOF = None
CHUNK = 64 * 1024


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class InputReader(threading.Thread):
    """``sink(chunk)`` gets each chunk read, then ``EOF``; it may block (backpressure)."""

    def __init__(self, path: str, reopen: bool, max_chunks: int = 256, sink=None) -> None:
        threading.Thread.__init__(self, name="segbind-input", daemon=True)
        self.path = path
        self.reopen = reopen and path != "-"
        self.chunks = queue.Queue(max_chunks)
        self.sink = sink or self.chunks.put
        self.bytes_read = 0
        self.opens = 0
        self.error = None
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> None:
        while not self._stopping:
            if self.path == "-":
                stream = sys.stdin.buffer.raw
            else:
                try:
                    stream = open(self.path, "rb", buffering=0)
                except OSError as exc:
                    self.error = "%s: %s" % (self.path, exc.strerror or exc)
                    if not self.reopen:
                        self.sink(EOF)
                        return
                    time.sleep(1.0)  # the encoder has not created its FIFO yet
                    continue
            self.error = None
            self.opens += 1
            try:
                while not self._stopping:
                    data = stream.read(CHUNK)
                    if not data:
                        break
                    self.bytes_read += len(data)
                    self.sink(data)
            except OSError as exc:
                self.error = "%s: %s" % (self.path, exc.strerror or exc)
            finally:
                if self.path != "-":
                    stream.close()
            self.sink(EOF)
            if not self.reopen or not is_fifo(self.path):
                return  # a regular file is read once, never again from its start
