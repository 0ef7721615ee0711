"""What a container reader hands on: the one video track's description, its samples, and the
defects it found. The contract every reader (``mp4``, ``mpegts``, ``matroska``) keeps.

A reader is a generator over a binary stream (``stream.read(n)``: up to ``n`` bytes, ``b""`` at
the end; a pipe gives what has arrived). It yields, in order:

- one ``TrackInfo`` before the first sample, and another whenever the container describes the
  track anew (an HLS init segment after a discontinuity, a new ``EXT-X-MAP``);
- a ``Sample`` per sample of the video track, in decoding order, exactly as every decoder
  (FFmpeg, Chromium, hls.js) reads that sample's bytes and times;
- a ``Defect`` wherever the container could be read more than one way, or holds something a
  decoder reads that the rules refuse (docs/CONTAINERS.md); the samples the defect touches are
  not yielded, and the segment in progress is refused (``framing``, or ``timing`` when the
  defect's ``reason`` says so). A reader that cannot go on yields a last Defect and stops.

It raises ``InputError`` (one line) only when the input cannot be read as video at all (no
video track, not the container it was sniffed as, cut short before its first sample).

Readers keep nothing but the sample being read and a bounded index (a box tree of at most
``MAX_INDEX_BYTES``): memory is one sample plus a constant, time is linear in the input.
"""

from __future__ import annotations

from typing import IO, Optional, Sequence, Tuple, Union

Buffer = Union[bytes, bytearray, memoryview]

# The largest index a reader keeps in memory (an MP4 'moov', a fragment's 'moof', Matroska's
# Tracks): beyond it the input is refused (InputError), never read into memory.
MAX_INDEX_BYTES = 32 * 1024 * 1024
# The largest sample a reader reads into memory; a larger one is a Defect and is skipped.
MAX_SAMPLE_BYTES = 64 * 1024 * 1024


class Protection:
    """Common Encryption (ISO/IEC 23001-7) of a track, as its sample entry ('encv' + 'sinf')
    describes it: the scheme ('cenc', 'cbcs', ...), the default key id, the per-sample IV size
    (0: a constant IV), and the constant IV when there is one."""

    __slots__ = ("scheme", "default_kid", "iv_size", "constant_iv", "crypt_byte_block", "skip_byte_block")

    def __init__(self, scheme: str, default_kid: bytes, iv_size: int, constant_iv: bytes = b"",
                 crypt_byte_block: int = 0, skip_byte_block: int = 0) -> None:
        self.scheme = scheme
        self.default_kid = default_kid
        self.iv_size = iv_size
        self.constant_iv = constant_iv
        self.crypt_byte_block = crypt_byte_block
        self.skip_byte_block = skip_byte_block

    def __repr__(self) -> str:
        return "Protection(%s, kid=%s, iv %d)" % (self.scheme, self.default_kid.hex(), self.iv_size)


class TrackInfo:
    """The video track as the container describes it, before its samples.

    ``codec``: segbind's codec number (1 H.264, 2 H.265), or 0 for a video codec segbind does
    not verify (``codec_name`` says which). ``length_size``: the NAL length size of the samples
    (1, 2 or 4), 0 when samples are Annex-B (MPEG-TS). ``config_units``: every NAL unit of the
    decoder configuration record ('avcC', 'hvcC', Matroska's CodecPrivate), as stored, in order:
    decoders read them before any sample. ``timescale``: ticks per second of the samples' times.
    ``others``: a line for each other track ("audio (aac)", "video (vp9)", "data (timed_id3)");
    ``other_video``: whether any of them is video (a player could pick it: always refused).
    ``protection``: the track's Common Encryption, None when clear.
    """

    __slots__ = ("codec", "codec_name", "length_size", "config_units", "timescale", "others", "other_video",
                 "protection")

    def __init__(self, codec: int, codec_name: str, length_size: int, config_units: Sequence[bytes],
                 timescale: int, others: Sequence[str] = (), other_video: bool = False,
                 protection: Optional[Protection] = None) -> None:
        self.codec = codec
        self.codec_name = codec_name
        self.length_size = length_size
        self.config_units = tuple(config_units)
        self.timescale = timescale
        self.others = tuple(others)
        self.other_video = other_video
        self.protection = protection

    def __repr__(self) -> str:
        return "TrackInfo(%s, length %d, %d config units, 1/%d s%s%s)" % (
            self.codec_name, self.length_size, len(self.config_units), self.timescale,
            ", others: " + ", ".join(self.others) if self.others else "",
            ", %r" % self.protection if self.protection else "")


class Sample:
    """One sample of the video track, in decoding order: its bytes as decoders read them and its
    times in the track's timescale.

    ``pts``: presentation time as players use it (composition time; MPEG-TS PTS; Matroska's
    block time), before any edit list. ``dts``: decoding time. ``duration``: 0 when the
    container does not say. ``hidden``: an edit list puts it before the presentation starts
    (decoded, never shown). ``sync``: the container marks it a random access point.
    ``iv`` and ``subsamples`` (``(clear bytes, protected bytes)`` pairs): its Common Encryption
    parameters ('senc'), when the track is protected.
    """

    __slots__ = ("data", "pts", "dts", "duration", "hidden", "sync", "iv", "subsamples")

    def __init__(self, data: Buffer, pts: int, dts: int, duration: int = 0, hidden: bool = False,
                 sync: bool = False, iv: bytes = b"",
                 subsamples: Optional[Sequence[Tuple[int, int]]] = None) -> None:
        self.data = data
        self.pts = pts
        self.dts = dts
        self.duration = duration
        self.hidden = hidden
        self.sync = sync
        self.iv = iv
        self.subsamples = subsamples

    def __repr__(self) -> str:
        return "Sample(%d bytes, pts %d, dts %d, dur %d%s%s)" % (
            len(self.data), self.pts, self.dts, self.duration, ", hidden" if self.hidden else "",
            ", sync" if self.sync else "")


TIMING = "timing"
FRAMING = "framing"


class Defect:
    """Something in the container that refuses the segment in progress: ``text`` says what
    (one line, no key material), ``reason`` is "framing" or "timing"; ``fatal`` when the
    reader cannot read past it (it stops after yielding it)."""

    __slots__ = ("text", "reason", "fatal")

    def __init__(self, text: str, reason: str = FRAMING, fatal: bool = False) -> None:
        self.text = text
        self.reason = reason
        self.fatal = fatal

    def __repr__(self) -> str:
        return "Defect(%r%s%s)" % (self.text, ", timing" if self.reason == TIMING else "",
                                   ", fatal" if self.fatal else "")


Event = Union[TrackInfo, Sample, Defect]


def read_exactly(stream: IO[bytes], size: int) -> bytes:
    """``size`` bytes from a stream that may give fewer per call (a pipe); fewer only at its end."""
    read = stream.read
    first = read(size)
    if len(first) == size or not first:
        return bytes(first)
    parts = [first]
    got = len(first)
    while got < size:
        more = read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_sample(stream: IO[bytes], size: int) -> bytearray:
    """``size`` bytes of a sample into a bytearray of its own, read straight into it where the
    stream can (``readinto``); fewer only at the stream's end. A bytearray lets ``read.cut`` put
    a sample of 4-byte lengths into canonical form in place: memory is the sample, once."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    readinto = getattr(stream, "readinto", None)
    while got < size:
        if readinto is not None:
            n = readinto(view[got:])
        else:
            piece = stream.read(size - got)
            n = len(piece)
            view[got:got + n] = piece
        if not n:
            del view
            del buf[got:]
            return buf
        got += n
    return buf


__all__ = ["Buffer", "Defect", "Event", "FRAMING", "MAX_INDEX_BYTES", "MAX_SAMPLE_BYTES", "Protection",
           "Sample", "TIMING", "TrackInfo", "read_exactly", "read_sample"]
