"""segbind's own ISO BMFF reader: progressive MP4 and fragmented MP4 (CMAF, HLS-fMP4, DASH),
H.264 ('avc1', 'avc3') and H.265 ('hvc1', 'hev1'), clear or Common-Encryption protected ('encv').

Where the ISO BMFF spec allows two readings of a file, or the readers that matter read it
differently (FFmpeg's libavformat/mov.c, which also plays progressive MP4 in Chromium;
Chromium's media/formats/mp4 for Media Source Extensions; hls.js's src/utils/mp4-tools.ts,
which reads fMP4 timing and SEI captions before handing it to MSE), a stranger's pictures could
pass the verifier and still play. This reader accepts only the form all of them read one way and
yields a ``Defect`` for the rest (docs/readers/mp4.md lists every rule and the source it
comes from). It keeps the contract of ``segbind.read.events``: one pass over a stream, memory one
sample plus the index ('moov', one 'moof'), samples read with ``stream.read`` and handed on as read.

src/segbind/web/segbind-mp4.js is the same reader for fragments in the browser: same rules, same
texts; keep them in step (tests/web/test_js_mp4.py runs both over the same files).
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import IO, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from segbind_core.tag import CODEC_H264, CODEC_H265

from ..errors import InputError
from .decoder_config import parse_avcc, parse_hvcc
from .events import (
    FRAMING,
    MAX_INDEX_BYTES,
    MAX_SAMPLE_BYTES,
    TIMING,
    Defect,
    Event,
    Protection,
    Sample,
    TrackInfo,
    read_exactly,
    read_sample,
)

_HEAD = struct.Struct(">I4s")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_SKIP_CHUNK = 1 << 20
# Times at or past 2^53 ticks: hls.js reads tfdt and sums durations as doubles
# (mp4-tools.ts parseSampleData), exact only below 2^53.
MAX_TIME = 1 << 53
# Composition offsets and sample deltas at or past 2^31: FFmpeg reads them as int32 whatever the
# box version (mov_read_trun, mov_read_ctts: negative values shift every dts by 'dts_shift';
# mov_read_stts clips large deltas), Chromium reads trun offsets as int32 (Read4s), hls.js as
# uint32 in version 0.
MAX_OFFSET = 1 << 31

VIDEO_ENTRIES = {b"avc1": CODEC_H264, b"avc3": CODEC_H264, b"hvc1": CODEC_H265, b"hev1": CODEC_H265}
_CONFIG = {CODEC_H264: b"avcC", CODEC_H265: b"hvcC"}
_CODEC_NAMES = {CODEC_H264: "h264", CODEC_H265: "hevc"}
# Sample entries FFmpeg decodes as video whatever the handler says (its codec tag decides).
_OTHER_VIDEO_ENTRIES = {b"avc2", b"avc4", b"dvh1", b"dvhe", b"dva1", b"dvav", b"vp08", b"vp09", b"av01", b"mp4v",
                        b"s263", b"jpeg", b"mjp2", b"vvc1", b"vvi1", b"evc1", b"apv1", b"hvc2", b"hev2", b"lhv1",
                        b"lhe1", b"encv", b"resv", b"dav1"}
# PIFF 1.1 boxes ('uuid'): sample encryption, tfxd and tfrf. ExoPlayer (FragmentedMp4Extractor)
# and PlayReady clients read the first as 'senc'; segbind refuses all three.
_PIFF = {bytes.fromhex("a2394f525a9b4f14a2446c427c648df4"), bytes.fromhex("6d1d9b0542d544e680e2141daff757b2"),
         bytes.fromhex("d4807ef2ca3946958e5426cb9e46a79f")}

ONE, OPT, ANY = "1", "?", "*"
# The boxes each container may hold (ONE: exactly one, OPT: at most one, ANY: any number). A box
# not listed is refused: FFmpeg reads boxes wherever they are ('cmov' is a zlib-compressed moov,
# 'trak' or 'mdat' below the top level ends the parent early in mov_read_default), Chromium reads
# the first of each type and ignores the rest (box_reader.cc ReadChild), hls.js the first too.
_MOOV = {b"mvhd": ONE, b"trak": ANY, b"mvex": OPT, b"udta": OPT, b"pssh": ANY, b"iods": OPT, b"free": ANY,
         b"skip": ANY}
_TRAK = {b"tkhd": ONE, b"mdia": ONE, b"edts": OPT, b"udta": OPT, b"tref": OPT, b"free": ANY, b"skip": ANY}
_EDTS = {b"elst": ONE}
_MDIA = {b"mdhd": ONE, b"hdlr": ONE, b"minf": ONE, b"udta": OPT, b"elng": OPT, b"free": ANY, b"skip": ANY}
_MINF = {b"vmhd": OPT, b"smhd": OPT, b"nmhd": OPT, b"hmhd": OPT, b"sthd": OPT, b"gmhd": OPT, b"dinf": OPT,
         b"stbl": ONE, b"free": ANY, b"skip": ANY}
_DINF = {b"dref": ONE}
_STBL = {b"stsd": ONE, b"stts": ONE, b"ctts": OPT, b"cslg": OPT, b"stss": OPT, b"sdtp": OPT, b"stsc": ONE,
         b"stsz": OPT, b"stz2": OPT, b"stco": OPT, b"co64": OPT, b"sgpd": ANY, b"sbgp": ANY, b"subs": OPT,
         b"free": ANY, b"skip": ANY}
_MVEX = {b"mehd": OPT, b"trex": ANY, b"free": ANY, b"skip": ANY}
_MOOF = {b"mfhd": ONE, b"traf": ANY, b"pssh": ANY, b"free": ANY, b"skip": ANY}
_TRAF = {b"tfhd": ONE, b"tfdt": ONE, b"trun": ANY, b"senc": OPT, b"saiz": OPT, b"saio": OPT, b"sbgp": ANY,
         b"sgpd": ANY, b"sdtp": OPT, b"subs": OPT, b"free": ANY, b"skip": ANY}
_ENTRY = {b"pasp": OPT, b"btrt": OPT, b"colr": ANY, b"clap": OPT, b"fiel": OPT, b"mdcv": OPT, b"clli": OPT,
          b"sinf": OPT, b"free": ANY}
_SINF = {b"frma": ONE, b"schm": ONE, b"schi": ONE}
_SCHI = {b"tenc": ONE}
# Top-level boxes. Fragmented: those Chromium accepts (box_reader.cc IsValidTopLevelBox) less the
# ones FFmpeg reads as something else ('meta': HEIF items); progressive: what muxers write.
_TOP_FRAGMENTED = {b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"sidx", b"prft", b"emsg",
                   b"uuid", b"mfra"}
_TOP_PROGRESSIVE = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid"}
_TOP_BEFORE_MOOV = {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"sidx"}

# tfhd and trun flags (ISO/IEC 14496-12 8.8.7, 8.8.8; FFmpeg isom.h MOV_TFHD_*, MOV_TRUN_*)
_TFHD_BASE = 0x1
_TFHD_SDI = 0x2
_TFHD_DURATION = 0x8
_TFHD_SIZE = 0x10
_TFHD_FLAGS = 0x20
_TFHD_EMPTY = 0x10000
_TFHD_BASE_IS_MOOF = 0x20000
_TRUN_OFFSET = 0x1
_TRUN_FIRST_FLAGS = 0x4
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTO = 0x800
_NON_SYNC = 0x10000


class Refusal(Exception):
    """A form of the file that is refused: ``text`` one line, ``reason`` framing or timing."""

    def __init__(self, text: str, reason: str = FRAMING) -> None:
        super().__init__(text)
        self.text = text
        self.reason = reason


def fourcc(kind: bytes) -> str:
    """A box type as text: its four letters when printable, else its hex."""
    if all(0x20 <= b < 0x7F for b in kind):
        return kind.decode("ascii")
    return "0x" + kind.hex()


Box = Tuple[bytes, int, int, int]  # (type, start, body start, end), offsets in one buffer


def scan(buf: bytes, start: int, end: int, parent: str, wide: bool) -> List[Box]:
    """The boxes from ``start`` to ``end`` of an index buffer, which they must fill exactly."""
    out: List[Box] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise Refusal("%d bytes after the last box in '%s'" % (end - pos, parent))
        size, kind = _HEAD.unpack_from(buf, pos)
        head = 8
        if size == 1:
            if not wide:
                raise Refusal("'%s' has a 64-bit size (hls.js reads size 1 as 'to the end of the parent')"
                              % fourcc(kind))
            if end - pos < 16:
                raise Refusal("'%s' box header runs past the end of '%s'" % (fourcc(kind), parent))
            size = _U64.unpack_from(buf, pos + 8)[0]
            head = 16
        elif size == 0:
            raise Refusal("'%s' in '%s' has size 0 ('to the end'): only a last top-level 'mdat' may"
                          % (fourcc(kind), parent))
        if size < head:
            raise Refusal("'%s' box smaller than its header" % fourcc(kind))
        if size > end - pos:
            raise Refusal("'%s' box runs past the end of '%s'" % (fourcc(kind), parent))
        if kind == b"uuid" and size >= head + 16 and buf[pos + head:pos + head + 16] in _PIFF:
            raise Refusal("a PIFF 'uuid' box in '%s' (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')"
                          % parent)
        out.append((kind, pos, pos + head, pos + size))
        pos += size
    return out


def children(buf: bytes, box: Box, rules: Dict[bytes, str], wide: bool, start: int = -1) -> Dict[bytes, List[Box]]:
    """A container's children by type, each allowed by ``rules`` and as many times as they say."""
    name = fourcc(box[0])
    found: Dict[bytes, List[Box]] = {}
    for child in scan(buf, box[2] if start < 0 else start, box[3], name, wide):
        rule = rules.get(child[0])
        if rule is None:
            raise Refusal("a '%s' box inside '%s' (not one every reader reads the same way)"
                          % (fourcc(child[0]), name))
        same = found.setdefault(child[0], [])
        if same and rule != ANY:
            raise Refusal("two '%s' boxes in '%s' (readers differ on which counts)" % (fourcc(child[0]), name))
        same.append(child)
    for kind, rule in rules.items():
        if rule == ONE and kind not in found:
            raise Refusal("'%s' has no '%s' box" % (name, fourcc(kind)))
    return found


def only(found: Dict[bytes, List[Box]], kind: bytes) -> Optional[Box]:
    boxes = found.get(kind)
    return boxes[0] if boxes else None


def need(buf: bytes, box: Box, size: int) -> int:
    """The body start of a box whose body must hold at least ``size`` bytes."""
    if box[3] - box[2] < size:
        raise Refusal("'%s' box too short (%d bytes)" % (fourcc(box[0]), box[3] - box[2]))
    return box[2]


def full_box(buf: bytes, box: Box, versions: Sequence[int] = (0,)) -> Tuple[int, int]:
    """(version, flags) of a full box, refused when its version is not one readers agree on."""
    body = need(buf, box, 4)
    version = buf[body]
    if version not in versions:
        raise Refusal("'%s' box of version %d" % (fourcc(box[0]), version))
    return version, _U32.unpack_from(buf, body)[0] & 0xFFFFFF


def exact(box: Box, end: int) -> None:
    """A box's fields must fill it: bytes left over are refused (a reader could read them)."""
    if end != box[3]:
        raise Refusal("'%s' box holds %d bytes %s its fields" % (
            fourcc(box[0]), abs(box[3] - end), "past" if box[3] > end else "short of"))


def u32_array(buf: bytes, start: int, count: int, width: int = 4) -> "array[int]":
    """``count`` big-endian unsigned integers of ``width`` bytes (2, 4 or 8) from ``buf``."""
    table = array({2: "H", 4: "I", 8: "Q"}[width])
    if table.itemsize != width:
        table = array("L" if width == 4 else "Q")
    table.frombytes(buf[start:start + count * width])
    if sys.byteorder == "little":
        table.byteswap()
    return table


# ---- the movie ('moov') ------------------------------------------------------------------------

class Track:
    """One 'trak' as segbind needs it."""

    __slots__ = ("track_id", "handler", "timescale", "entry", "stbl", "kids")

    def __init__(self, track_id: int, handler: bytes, timescale: int, entry: Optional[Box],
                 stbl: Dict[bytes, List[Box]], kids: Dict[bytes, List[Box]]) -> None:
        self.track_id = track_id
        self.handler = handler
        self.timescale = timescale
        self.entry = entry
        self.stbl = stbl
        self.kids = kids

    def entry_type(self) -> bytes:
        return self.entry[0] if self.entry is not None else b""

    def line(self) -> str:
        kind = {b"vide": "video", b"soun": "audio"}.get(self.handler, "data")
        return "%s (%s)" % (kind, fourcc(self.entry_type()) if self.entry is not None else "none")

    def is_video(self) -> bool:
        return self.handler == b"vide" or self.entry_type() in VIDEO_ENTRIES or \
            self.entry_type() in _OTHER_VIDEO_ENTRIES


class Movie:
    """What the 'moov' says: the video track, its description, the other tracks, fragments' defaults."""

    def __init__(self, buf: bytes, wide: bool) -> None:
        self.buf = buf
        top = scan(buf, 0, len(buf), "file", wide)
        moov = top[0]
        kids = children(buf, moov, _MOOV, wide)
        mvhd = kids[b"mvhd"][0]
        version, _ = full_box(buf, mvhd, (0, 1))
        body = need(buf, mvhd, 24 if version else 16)
        self.timescale = _U32.unpack_from(buf, body + (20 if version else 12))[0]
        if not self.timescale:
            raise Refusal("the movie header's timescale is 0")
        self.fragmented = b"mvex" in kids
        self.tracks: List[Track] = []
        seen = set()
        for trak in kids.get(b"trak", []):
            track = self._track(trak, wide)
            if track.track_id in seen:
                raise Refusal("two tracks with id %d" % track.track_id)
            seen.add(track.track_id)
            self.tracks.append(track)
        self.trex: Dict[int, Tuple[int, int, int, int]] = {}
        if self.fragmented:
            mvex = children(buf, kids[b"mvex"][0], _MVEX, wide)
            for trex in mvex.get(b"trex", []):
                full_box(buf, trex)
                body = need(buf, trex, 24)
                exact(trex, body + 24)
                track_id, sdi, duration, size, flags = struct.unpack_from(">5I", buf, body + 4)
                if track_id in self.trex:
                    # Chromium keeps the last of them (TrackRunIterator::Init), FFmpeg the first
                    raise Refusal("two 'trex' boxes for track %d" % track_id)
                self.trex[track_id] = (sdi, duration, size, flags)
            for track in self.tracks:
                defaults = self.trex.get(track.track_id)
                if defaults is None:  # Chromium's ParseMoov refuses it, FFmpeg plays it
                    raise Refusal("track %d has no 'trex' box" % track.track_id)
                if defaults[0] != 1:
                    raise Refusal("track %d's default sample description index is %d, not 1 (Chromium falls "
                                  "back to the first, FFmpeg skips the fragments)" % (track.track_id, defaults[0]))

    def _track(self, trak: Box, wide: bool) -> Track:
        buf = self.buf
        kids = children(buf, trak, _TRAK, wide)
        tkhd = kids[b"tkhd"][0]
        version, _ = full_box(buf, tkhd, (0, 1))
        body = need(buf, tkhd, 24 if version else 16)
        track_id = _U32.unpack_from(buf, body + (20 if version else 12))[0]
        if not track_id:
            raise Refusal("a track with id 0")
        mdia = children(buf, kids[b"mdia"][0], _MDIA, wide)
        mdhd = mdia[b"mdhd"][0]
        version, _ = full_box(buf, mdhd, (0, 1))
        body = need(buf, mdhd, 24 if version else 16)
        timescale = _U32.unpack_from(buf, body + (20 if version else 12))[0]
        if not timescale:
            raise Refusal("track %d's timescale is 0" % track_id)
        hdlr = mdia[b"hdlr"][0]
        full_box(buf, hdlr, range(256))  # neither FFmpeg nor Chromium reads its version
        body = need(buf, hdlr, 12)
        handler = bytes(buf[body + 8:body + 12])
        minf = children(buf, mdia[b"minf"][0], _MINF, wide)
        stbl = children(buf, minf[b"stbl"][0], _STBL, wide)
        stsd = stbl[b"stsd"][0]
        full_box(buf, stsd)
        body = need(buf, stsd, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        entries = scan(buf, body + 8, stsd[3], "stsd", wide)
        if count != len(entries):
            raise Refusal("'stsd' says %d sample entries and holds %d" % (count, len(entries)))
        entry = entries[0] if entries else None
        track = Track(track_id, handler, timescale, entry, stbl, kids)
        if track.is_video() and len(entries) != 1:
            # FFmpeg makes a stream per entry or switches extradata mid-track (mov_change_extradata),
            # Chromium falls back to the first (TrackRunIterator::Init)
            raise Refusal("video track %d has %d sample entries, not one" % (track_id, len(entries)))
        if track.is_video():
            dinf = only(minf, b"dinf")
            if dinf is not None:
                self._self_contained(dinf, wide)
        return track

    def _self_contained(self, dinf: Box, wide: bool) -> None:
        """Samples in another file ('dref' entry not self-contained) are read by some players."""
        buf = self.buf
        dref = children(buf, dinf, _DINF, wide)[b"dref"][0]
        full_box(buf, dref)
        body = need(buf, dref, 8)
        entries = scan(buf, body + 8, dref[3], "dref", wide)
        count = _U32.unpack_from(buf, body + 4)[0]
        if count != len(entries):  # FFmpeg reads that many (mov_read_dref) and fails the file past them
            raise Refusal("'dref' says %d entries and holds %d" % (count, len(entries)))
        if not entries or entries[0][0] not in (b"url ", b"urn ") or \
                not full_box(buf, entries[0], (0,))[1] & 1:
            raise Refusal("the video's data reference is not this file")


class Description:
    """The video track's sample entry: codec, length size, the record's units, protection."""

    def __init__(self, movie: Movie, track: Track, wide: bool) -> None:
        buf = movie.buf
        entry = track.entry
        assert entry is not None
        kind = entry[0]
        self.protection: Optional[Protection] = None
        body = need(buf, entry, 78)
        if _U16.unpack_from(buf, body + 6)[0] != 1:
            raise Refusal("the video sample entry's data reference index is not 1")
        depth = _U16.unpack_from(buf, body + 74)[0]
        if depth & 0x1F in (1, 2, 4, 8):
            # ff_get_qtpalette reads a colour table after such a depth: FFmpeg then reads the
            # entry's boxes from another offset than Chromium (mov_parse_stsd_video)
            raise Refusal("the video sample entry's depth is %d (FFmpeg reads a palette there)" % depth)
        rules = dict(_ENTRY)
        original = kind
        kids_pre = scan(buf, body + 78, entry[3], fourcc(kind), wide)
        if kind == b"encv":
            sinf_boxes = [b for b in kids_pre if b[0] == b"sinf"]
            if len(sinf_boxes) != 1:
                raise Refusal("an 'encv' entry with %d 'sinf' boxes, not one" % len(sinf_boxes))
            original, self.protection = self._protection(buf, sinf_boxes[0], wide)
            rules[b"sinf"] = ONE
        else:
            rules.pop(b"sinf")
        codec = VIDEO_ENTRIES.get(original, 0)
        self.codec = codec
        self.codec_name = _CODEC_NAMES.get(codec, fourcc(original))
        if not codec:
            self.length_size, self.units = 0, []
            return
        rules[_CONFIG[codec]] = ONE
        kids = children(buf, entry, rules, wide, body + 78)
        config = kids[_CONFIG[codec]][0]
        record = bytes(buf[config[2]:config[3]])
        if codec == CODEC_H264:
            self.length_size, sps, others = parse_avcc(record)
            self.units = sps + others
        else:
            self.length_size, self.units = parse_hvcc(record)
        if self.length_size == 3:  # Chromium's avcC and hvcC parsers refuse it (box_definitions.cc)
            raise Refusal("the decoder configuration's NAL length size is 3")

    @staticmethod
    def _protection(buf: bytes, sinf: Box, wide: bool) -> Tuple[bytes, Protection]:
        kids = children(buf, sinf, _SINF, wide)
        frma = kids[b"frma"][0]
        body = need(buf, frma, 4)
        exact(frma, body + 4)
        original = bytes(buf[body:body + 4])
        if original not in VIDEO_ENTRIES:
            raise Refusal("protected video of format '%s'" % fourcc(original))
        schm = kids[b"schm"][0]
        full_box(buf, schm)
        body = need(buf, schm, 12)
        scheme = bytes(buf[body + 4:body + 8])
        if scheme not in (b"cenc", b"cbcs"):  # the schemes Chromium plays (ProtectionSchemeInfo)
            raise Refusal("protection scheme '%s' (Chromium plays 'cenc' and 'cbcs')" % fourcc(scheme))
        tenc = children(buf, kids[b"schi"][0], _SCHI, wide)[b"tenc"][0]
        version, _ = full_box(buf, tenc, (0, 1))
        body = need(buf, tenc, 24)
        pattern, protected, iv_size = buf[body + 5], buf[body + 6], buf[body + 7]
        kid = bytes(buf[body + 8:body + 24])
        end = body + 24
        if protected != 1:
            # FFmpeg reads 'senc' of a track whose default is clear (get_current_encryption_info),
            # Chromium does not decrypt it (TrackRunIterator::IsSampleEncrypted)
            raise Refusal("'tenc' default_isProtected is %d, not 1" % protected)
        constant = b""
        if iv_size == 0:
            size = buf[end] if end < tenc[3] else 0
            if size not in (8, 16) or end + 1 + size > tenc[3]:
                raise Refusal("'tenc' with no per-sample IV and no 8- or 16-byte constant IV")
            constant = bytes(buf[end + 1:end + 1 + size])
            end += 1 + size
        elif iv_size not in (8, 16):
            raise Refusal("'tenc' per-sample IV size %d" % iv_size)
        exact(tenc, end)
        crypt, skip = (pattern >> 4, pattern & 15) if version else (0, 0)
        return original, Protection(scheme.decode("ascii"), kid, iv_size, constant, crypt, skip)


def edit_list(movie: Movie, track: Track) -> Tuple[int, Optional[int]]:
    """(media time the video's edit list starts the presentation at, media time it ends at), (0,
    None) without one. Two forms every reader reads one way: one edit (media_rate 1, media_time
    >= 0), or an empty edit exactly as long as the media time of the edit after it (a net shift
    of 0: FFmpeg's time_offset = start_time - empty_duration in mov_build_index, Chromium ignores
    an empty first edit in TrackRunIterator::Init, hls.js reads no edit list; FFmpeg's own muxer
    writes it for B-frame streams). The end matters to FFmpeg alone, in progressive MP4
    (mov_fix_index)."""
    buf = movie.buf
    edts = only(track.kids, b"edts")
    if edts is None:
        return 0, None
    elst = children(buf, edts, _EDTS, True)[b"elst"][0]
    version, _ = full_box(buf, elst, (0, 1))
    body = need(buf, elst, 8)
    count = _U32.unpack_from(buf, body + 4)[0]
    width = 20 if version else 12
    # FFmpeg takes the count from the box size when they disagree (mov_read_elst), Chromium the count
    exact(elst, body + 8 + count * width)
    edits = []
    for k in range(count):
        at = body + 8 + k * width
        if version:
            duration, media_time = _U64.unpack_from(buf, at)[0], _I64.unpack_from(buf, at + 8)[0]
        else:
            duration, media_time = _U32.unpack_from(buf, at)[0], _I32.unpack_from(buf, at + 4)[0]
        rate = _U32.unpack_from(buf, at + width - 4)[0]
        if rate != 0x10000:
            raise Refusal("an edit of media rate %d/65536 (a dwell or a speed change)" % rate, TIMING)
        if media_time < -1:
            raise Refusal("an edit of media time %d" % media_time, TIMING)
        # av_rescale (round to nearest) from the movie's timescale to the track's (get_edit_list_entry)
        edits.append(((duration * track.timescale + movie.timescale // 2) // movie.timescale, media_time))
    if not edits:
        return 0, None
    if len(edits) == 2 and edits[0][1] == -1 and edits[1][1] >= 0:
        if edits[0][0] != edits[1][1]:
            raise Refusal("an empty edit of %d ticks before media time %d (FFmpeg shifts the video by the "
                          "difference, Chromium ignores both)" % (edits[0][0], edits[1][1]), TIMING)
        edits = edits[1:]
    if len(edits) > 1:
        # FFmpeg follows every edit (mov_fix_index), Chromium the first alone (TrackRunIterator::Init)
        raise Refusal("an edit list of %d entries" % len(edits), TIMING)
    duration, media_time = edits[0]
    if media_time < 0:
        raise Refusal("an empty edit alone (FFmpeg delays the video, Chromium ignores it)", TIMING)
    return int(media_time), int(media_time + duration)


# ---- fragments ---------------------------------------------------------------------------------

class VideoRun:
    """A run of video samples as its 'trun' lists them, read sample by sample as the 'mdat' is."""

    __slots__ = ("count", "sizes", "size", "durations", "duration", "flags", "first_flags", "default_flags",
                 "ctos", "dts", "senc")

    def __init__(self, count: int, sizes: Optional[Sequence[int]], size: int, durations: Optional[Sequence[int]],
                 duration: int, flags: Optional[Sequence[int]], first_flags: int, default_flags: int,
                 ctos: Optional[Sequence[int]], dts: int, senc: Optional["SencCursor"]) -> None:
        self.count = count
        self.sizes = sizes
        self.size = size
        self.durations = durations
        self.duration = duration
        self.flags = flags
        self.first_flags = first_flags
        self.default_flags = default_flags
        self.ctos = ctos
        self.dts = dts
        self.senc = senc

    def sample_flags(self, i: int) -> int:
        if self.flags is not None:
            return self.flags[i]
        return self.first_flags if i == 0 else self.default_flags


class SencCursor:
    """The entries of a video traf's 'senc', read in step with its samples (shared by its runs)."""

    __slots__ = ("buf", "pos", "iv_size", "subsampled", "constant_iv")

    def __init__(self, buf: bytes, pos: int, iv_size: int, subsampled: bool, constant_iv: bytes) -> None:
        self.buf = buf
        self.pos = pos
        self.iv_size = iv_size
        self.subsampled = subsampled
        self.constant_iv = constant_iv

    def next(self, size: int) -> Tuple[bytes, Tuple[Tuple[int, int], ...]]:
        """(IV, subsamples) of the next sample (the entries were checked when the 'moof' was read)."""
        buf, pos = self.buf, self.pos
        iv = bytes(buf[pos:pos + self.iv_size]) if self.iv_size else self.constant_iv
        pos += self.iv_size
        if not self.subsampled:
            self.pos = pos
            return iv, ((0, size),)
        parts = _U16.unpack_from(buf, pos)[0]
        pairs = tuple(_SUBSAMPLE.iter_unpack(buf[pos + 2:pos + 2 + 6 * parts]))
        self.pos = pos + 2 + 6 * parts
        return iv, pairs


_SUBSAMPLE = struct.Struct(">HI")


class Plan:
    """What a 'moof' says its 'mdat' holds: runs of bytes in order, video runs with their samples."""

    __slots__ = ("runs", "total", "media_time")

    def __init__(self, media_time: int) -> None:
        self.runs: List[Tuple[int, Optional[VideoRun]]] = []  # (bytes, the video's samples or None)
        self.total = 0
        self.media_time = media_time

    def samples(self, run: VideoRun) -> Iterator[Tuple[int, int, int, int, bool, bool, bytes, Optional[
            Tuple[Tuple[int, int], ...]]]]:
        """(size, dts, pts, duration, sync, hidden, iv, subsamples) of each sample of a video run."""
        dts = run.dts
        sizes, durations, ctos, senc = run.sizes, run.durations, run.ctos, run.senc
        for i in range(run.count):
            size = sizes[i] if sizes is not None else run.size
            duration = durations[i] if durations is not None else run.duration
            pts = dts + (ctos[i] if ctos is not None else 0)
            flags = run.sample_flags(i)
            sync = not flags & _NON_SYNC and (flags >> 24) & 3 != 1
            iv, subsamples = senc.next(size) if senc is not None else (b"", None)
            yield size, dts, pts, duration, sync, pts < self.media_time, iv, subsamples
            dts += duration


class Fragments:
    """Reads each 'moof' of a fragmented stream into a Plan, with every rule of docs/readers/mp4.md.
    The checks cost at most a few operations per byte of the 'moof' (whose size is bounded), never
    per sample it merely claims: samples are made one at a time as the 'mdat' is read."""

    def __init__(self, movie: Movie, video: Track, protection: Optional[Protection], media_time: int) -> None:
        self.trex = movie.trex
        self.tracks = {t.track_id: t for t in movie.tracks}
        self.video_id = video.track_id
        self.protection = protection
        self.media_time = media_time
        self.last_dts = -1

    def plan(self, moof: bytes, body: int) -> Plan:
        """The plan of one fragment: ``moof`` is the whole 'moof' box, ``body`` the size of the body
        of the 'mdat' right after it. Refusal when refused."""
        top = scan(moof, 0, len(moof), "file", False)
        box = top[0]
        kids = children(moof, box, _MOOF, False)
        mfhd = kids[b"mfhd"][0]
        full_box(moof, mfhd)
        exact(mfhd, need(moof, mfhd, 8) + 8)
        plan = Plan(self.media_time)
        start = len(moof) + 8  # the first byte of the 'mdat' body right after this 'moof'
        at = start
        seen: Set[int] = set()
        last_dts = self.last_dts
        try:
            for traf in kids.get(b"traf", []):
                at = self._traf(moof, traf, plan, at, start + body, seen)
            plan.total = at - start
            if plan.total != body:
                raise Refusal("the fragment's samples fill %d bytes of its 'mdat' body of %d (bytes left over)"
                              % (plan.total, body))
        except Refusal:
            self.last_dts = last_dts  # a refused fragment is skipped whole
            raise
        return plan

    def _traf(self, buf: bytes, traf: Box, plan: Plan, at: int, limit: int, seen: Set[int]) -> int:
        kids = children(buf, traf, _TRAF, False)
        tfhd = kids[b"tfhd"][0]
        _, flags = full_box(buf, tfhd)
        body = need(buf, tfhd, 8)
        track_id = _U32.unpack_from(buf, body + 4)[0]
        track = self.tracks.get(track_id)
        if track is None:  # FFmpeg's mov_read_trun fails, Chromium's TrackRunIterator::Init too
            raise Refusal("a 'traf' of track %d, which the movie does not hold" % track_id)
        if track_id in seen:
            # implicit bases: FFmpeg chains to the end of the previous traf's data, Chromium uses the
            # moof start (mov_read_tfhd implicit_offset, TrackRunIterator::Init)
            raise Refusal("two 'traf' boxes of track %d in one 'moof'" % track_id)
        seen.add(track_id)
        if flags & _TFHD_BASE:  # Chromium refuses it (TrackFragmentHeader::Parse)
            raise Refusal("a 'tfhd' with an explicit base_data_offset")
        if not flags & _TFHD_BASE_IS_MOOF:
            # the base is then the moof's start (Chromium; FFmpeg for the first traf), the end of the
            # previous traf's data (FFmpeg mov_read_tfhd), or the segment's start (hls.js parseSampleData)
            raise Refusal("a 'tfhd' without default-base-is-moof")
        if flags & _TFHD_EMPTY:
            raise Refusal("a 'tfhd' with duration-is-empty")
        sdi, default_duration, default_size, default_flags = self.trex[track_id]
        pos = body + 8
        fields = []
        for bit in (_TFHD_SDI, _TFHD_DURATION, _TFHD_SIZE, _TFHD_FLAGS):
            if flags & bit:
                if pos + 4 > tfhd[3]:
                    raise Refusal("'tfhd' box too short (%d bytes)" % (tfhd[3] - tfhd[2]))
                fields.append(_U32.unpack_from(buf, pos)[0])
                pos += 4
            else:
                fields.append(-1)
        exact(tfhd, pos)
        tfhd_sdi, tfhd_duration, tfhd_size, tfhd_flags = fields
        if tfhd_sdi >= 0:
            sdi = tfhd_sdi
        if sdi != 1:
            raise Refusal("a 'tfhd' with sample description index %d, not 1" % sdi)
        # FFmpeg takes a tfhd default when its flag is set, Chromium only when it is not 0
        # (PopulateSampleInfo): both readings must agree (-1: they do not)
        duration = default_duration if tfhd_duration < 0 else tfhd_duration
        size = default_size if tfhd_size < 0 else tfhd_size
        if tfhd_duration == 0 and default_duration != 0:
            duration = -1
        if tfhd_size == 0 and default_size != 0:
            size = -1
        sample_flags = default_flags if tfhd_flags < 0 else tfhd_flags
        tfdt = kids[b"tfdt"][0]
        version, _ = full_box(buf, tfdt, (0, 1))
        body = need(buf, tfdt, 12 if version else 8)
        dts = (_U64 if version else _U32).unpack_from(buf, body + 4)[0]
        exact(tfdt, body + (12 if version else 8))
        if dts >= MAX_TIME:
            raise Refusal("a decode time past 2^53 ticks (hls.js reads it as a double)", TIMING)
        video = track_id == self.video_id
        groups(buf, kids)
        sdtp = b""
        if video and b"sdtp" in kids:
            box = kids[b"sdtp"][0]
            full_box(buf, box)
            sdtp = bytes(buf[box[2] + 4:box[3]])
        runs: List[VideoRun] = []
        count_all = 0
        for trun in kids.get(b"trun", []):
            at, dts, run = self._trun(buf, trun, plan, at, limit, dts, video, duration, size, sample_flags, sdtp,
                                      count_all)
            if run is not None:
                runs.append(run)
                count_all += run.count
        if video:
            cursor = self._encryption(buf, kids, runs, count_all)
            for run in runs:
                run.senc = cursor
        return at

    def _trun(self, buf: bytes, trun: Box, plan: Plan, at: int, limit: int, dts: int, video: bool,
              duration: int, size: int, default_flags: int, sdtp: bytes, index: int
              ) -> Tuple[int, int, Optional[VideoRun]]:
        version, flags = full_box(buf, trun, (0, 1))
        body = need(buf, trun, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        pos = body + 8
        if not flags & _TRUN_OFFSET:
            # the spec continues after the previous run; FFmpeg (mov_read_trun) and Chromium
            # (TrackFragmentRun::Parse: data_offset 0) start it at the base
            raise Refusal("a 'trun' without data_offset")
        if flags & _TRUN_FIRST_FLAGS and flags & _TRUN_FLAGS:
            # FFmpeg lets the per-sample flags win, Chromium the first-sample flags
            raise Refusal("a 'trun' with both first-sample flags and per-sample flags")
        step = sum(1 for bit in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTO) if flags & bit)
        end = pos + 4 + (4 if flags & _TRUN_FIRST_FLAGS else 0) + count * step * 4
        exact(trun, end)  # FFmpeg reads entries past the box's end (mov_read_trun), Chromium refuses
        offset = _I32.unpack_from(buf, pos)[0]
        pos += 4
        first_flags = default_flags
        if flags & _TRUN_FIRST_FLAGS:
            first_flags = _U32.unpack_from(buf, pos)[0]
            pos += 4
        if offset != at:
            raise Refusal("a 'trun' whose data does not follow the fragment's previous run in its 'mdat' "
                          "(gap or overlap of %d bytes)" % (offset - at))
        if count == 0:
            return at, dts, None
        table = u32_array(buf, pos, count * step)
        columns: List[Optional[Sequence[int]]] = []
        col = 0
        for bit in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTO):
            if flags & bit:
                columns.append(table[col::step] if step > 1 else table)
                col += 1
            else:
                columns.append(None)
        durations, sizes, sflags, ctos = columns
        if sizes is None and size <= 0:
            raise Refusal("samples of no size (FFmpeg refuses them, Chromium skips them)" if size == 0 else
                          "a 'tfhd' default sample size of 0 (Chromium takes trex's, FFmpeg 0)")
        if sizes is not None and min(sizes) == 0:
            raise Refusal("a sample of 0 bytes (FFmpeg refuses it, Chromium skips it)")
        total = sum(sizes) if sizes is not None else size * count
        if at + total > limit:
            raise Refusal("a 'trun' whose data runs past the end of its 'mdat'")
        if not video:
            plan.runs.append((total, None))
            return at + total, dts, None
        if durations is None and duration < 0:
            raise Refusal("a 'tfhd' default sample duration of 0 (Chromium takes trex's, FFmpeg 0)", TIMING)
        if ctos is not None and max(ctos) >= MAX_OFFSET:
            raise Refusal("a negative composition offset (FFmpeg shifts decode times by the most negative so far, "
                          "Chromium does not)", TIMING)
        run = VideoRun(count, sizes, size, durations, duration, sflags, first_flags, default_flags, ctos, dts, None)
        self._check_flags(run, sdtp, index, bool(flags & (_TRUN_FLAGS | _TRUN_FIRST_FLAGS)))
        # FFmpeg marks a sample whose decode time is not after the one before AVINDEX_DISCARD_FRAME
        # (mov_read_trun: fragments overlapping in time)
        if dts <= self.last_dts or (count > 1 and (min(durations[:-1]) if durations is not None else duration) == 0):
            raise Refusal("a decode time not after the one before (FFmpeg discards the sample)", TIMING)
        span = sum(durations) if durations is not None else duration * count
        if dts + span + (max(ctos) if ctos is not None else 0) >= MAX_TIME:
            raise Refusal("a time past 2^53 ticks (hls.js reads it as a double)", TIMING)
        self.last_dts = dts + span - (durations[-1] if durations is not None else duration)
        plan.runs.append((total, run))
        return at + total, dts + span, run

    @staticmethod
    def _check_flags(run: VideoRun, sdtp: bytes, index: int, hls_reads: bool) -> None:
        """The readers' sync samples must agree: FFmpeg (mov_read_trun: not non-sync, not depending
        on others), Chromium (PopulateSampleInfo: the same, with 'sdtp' when the flags do not say),
        hls.js (parseSampleData: not non-sync, in the flags it reads). Checked per listed flag, or
        for the two flags a run without per-sample flags uses."""
        listed = run.count if run.flags is not None else min(run.count, 2)
        with_sdtp = max(0, min(run.count, len(sdtp) - index))
        for i in range(max(listed, with_sdtp)):
            flag = run.sample_flags(i)
            depends = (flag >> 24) & 3
            chromium = depends or (sdtp[index + i] >> 4 & 3 if i < with_sdtp else 0)
            if depends == 3 or chromium == 3:
                raise Refusal("a sample's sample_depends_on is 3, reserved (Chromium refuses the fragment)")
            if (depends == 1) != (chromium == 1) and not flag & _NON_SYNC:
                raise Refusal("sample flags and 'sdtp' disagree on a sync sample")
            if hls_reads and (run.flags is not None or i == 0) and not flag & _NON_SYNC and depends == 1:
                raise Refusal("a sample marked sync that depends on others (hls.js reads it as a keyframe)")

    def _encryption(self, buf: bytes, kids: Dict[bytes, List[Box]], runs: List[VideoRun], count: int
                    ) -> Optional[SencCursor]:
        """The video traf's 'senc' (and 'saiz'/'saio', which must describe the same bytes)."""
        senc = only(kids, b"senc")
        protection = self.protection
        if protection is None:
            for kind in (b"senc", b"saiz", b"saio"):
                if kind in kids:
                    raise Refusal("a '%s' box in a clear video track" % fourcc(kind))
            return None
        if senc is None:
            if count:
                # FFmpeg reads 'saio' only when it can seek, Chromium reads it as it streams
                raise Refusal("protected samples without a 'senc' box")
            return None
        _, flags = full_box(buf, senc)
        body = need(buf, senc, 8)
        entries = _U32.unpack_from(buf, body + 4)[0]
        if entries != count:
            raise Refusal("'senc' holds %d entries for %d samples" % (entries, count))
        iv_size = protection.iv_size
        subsampled = bool(flags & 2)
        cursor = SencCursor(buf, body + 8, iv_size, subsampled, protection.constant_iv)
        pos = body + 8
        sizes: List[int] = []
        if iv_size or subsampled:  # each entry holds bytes: as many entries as the box holds at most
            for run in runs:
                for i in range(run.count):
                    start = pos
                    pos += iv_size
                    if subsampled:
                        if pos + 2 > senc[3]:
                            raise Refusal("'senc' box too short")
                        parts = _U16.unpack_from(buf, pos)[0]
                        pos += 2
                        if parts == 0:  # Chromium refuses it (SampleEncryptionEntry::Parse)
                            raise Refusal("a 'senc' entry with no subsamples")
                        if pos + 6 * parts > senc[3]:
                            raise Refusal("'senc' box too short")
                        covered = sum(c + p for c, p in _SUBSAMPLE.iter_unpack(buf[pos:pos + 6 * parts]))
                        pos += 6 * parts
                        if covered != (run.sizes[i] if run.sizes is not None else run.size):
                            # Chromium refuses the sample (GetDecryptConfig), FFmpeg decrypts what they cover
                            raise Refusal("subsample sizes that do not add up to their sample's")
                    elif pos > senc[3]:
                        raise Refusal("'senc' box too short")
                    sizes.append(pos - start)
        exact(senc, pos)
        saiz, saio = only(kids, b"saiz"), only(kids, b"saio")
        if (saiz is None) != (saio is None):
            raise Refusal("a 'saiz' without its 'saio', or the reverse")
        if saiz is not None and saio is not None:
            self._aux_info(buf, saiz, saio, senc, sizes, count, protection)
        return cursor

    @staticmethod
    def _aux_info(buf: bytes, saiz: Box, saio: Box, senc: Box, sizes: List[int], count: int,
                  protection: Protection) -> None:
        """'saiz' and 'saio' must describe exactly the 'senc' entries: FFmpeg reads the aux info at
        saio's offset when saiz and saio come first and it can seek (mov_parse_auxiliary_info),
        Chromium reads 'senc' (TrackRunIterator::Init)."""
        for box in (saiz, saio):
            _, box_flags = full_box(buf, box, (0, 1) if box is saio else (0,))
            pos = box[2] + 4
            if box_flags & 1:
                need(buf, box, 12)
                if buf[pos:pos + 4] != protection.scheme.encode("ascii") or _U32.unpack_from(buf, pos + 4)[0]:
                    raise Refusal("a '%s' of another aux_info_type" % fourcc(box[0]))
                pos += 8
            if box is saiz:
                if pos + 5 > saiz[3]:
                    raise Refusal("'saiz' box too short")
                default, listed = buf[pos], _U32.unpack_from(buf, pos + 1)[0]
                pos += 5
                exact(saiz, pos + (0 if default else listed))
                table = bytes(buf[pos:pos + listed]) if not default else b""
                if listed != count:
                    same = False
                elif default:
                    same = all(size == default for size in sizes) and (bool(sizes) or count == 0)
                else:
                    same = list(table) == sizes if sizes else not any(table)
                if not same:
                    raise Refusal("'saiz' and 'senc' disagree on the samples' encryption info")
            else:
                version = buf[saio[2]]
                width = 8 if version else 4
                if pos + 4 > saio[3]:
                    raise Refusal("'saio' box too short")
                offsets = _U32.unpack_from(buf, pos)[0]
                exact(saio, pos + 4 + offsets * width)
                if offsets != 1:  # FFmpeg: "Multiple auxiliary info chunks are not supported"
                    raise Refusal("a 'saio' of %d offsets, not one" % offsets)
                if (_U64 if version else _U32).unpack_from(buf, pos + 4)[0] != senc[2] + 8:
                    raise Refusal("'saio' does not point at the 'senc' entries")


def groups(buf: bytes, kids: Dict[bytes, List[Box]]) -> None:
    """Sample groups of type 'seig' (key rotation): Chromium reads per-sample keys and IVs from
    them (TrackRunIterator), FFmpeg ignores them."""
    for kind in (b"sbgp", b"sgpd"):
        for box in kids.get(kind, []):
            need(buf, box, 8)
            if buf[box[2] + 4:box[2] + 8] == b"seig":
                raise Refusal("a '%s' of grouping type 'seig' (per-sample keys: FFmpeg ignores them)" % fourcc(kind))


# ---- progressive samples -----------------------------------------------------------------------

class Table:
    """The video's sample table ('stsz'/'stz2', 'stsc', 'stco'/'co64', 'stts', 'ctts', 'stss'),
    checked whole, then read sample by sample without ever listing the samples."""

    def __init__(self, movie: Movie, track: Track) -> None:
        buf = movie.buf
        stbl = track.stbl
        groups(buf, stbl)
        self.constant, self.count, self.sizes, self.nibbles = self._sizes(buf, stbl)
        self.chunks = self._chunks(buf, stbl)
        self.stsc = self._stsc(buf, stbl[b"stsc"][0], len(self.chunks))
        self.stts = self._pairs(buf, stbl[b"stts"][0], "stts")
        ctts = only(stbl, b"ctts")
        self.ctts = self._pairs(buf, ctts, "ctts") if ctts is not None else None
        self.stss = self._stss(buf, only(stbl, b"stss"))

    def _sizes(self, buf: bytes, stbl: Dict[bytes, List[Box]]) -> Tuple[int, int, Sequence[int], bytes]:
        stsz, stz2 = only(stbl, b"stsz"), only(stbl, b"stz2")
        if (stsz is None) == (stz2 is None):
            raise Refusal("the video's sample table needs one 'stsz' or 'stz2'")
        if stsz is not None:
            full_box(buf, stsz)
            body = need(buf, stsz, 12)
            constant, count = struct.unpack_from(">II", buf, body + 4)
            if constant:
                exact(stsz, body + 12)
                if constant >= MAX_OFFSET:
                    raise Refusal(_HUGE_SAMPLE)
                return constant, count, (), b""
            exact(stsz, body + 12 + 4 * count)
            sizes = u32_array(buf, body + 12, count)
            if count and max(sizes) >= MAX_OFFSET:
                raise Refusal(_HUGE_SAMPLE)
            return 0, count, sizes, b""
        assert stz2 is not None
        full_box(buf, stz2)
        body = need(buf, stz2, 12)
        field, count = buf[body + 7], _U32.unpack_from(buf, body + 8)[0]
        if field not in (4, 8, 16):
            raise Refusal("'stz2' field size %d" % field)
        exact(stz2, body + 12 + (count * field + 7) // 8)
        if field == 4:
            return 0, count, (), bytes(buf[body + 12:stz2[3]])
        if field == 8:
            return 0, count, bytes(buf[body + 12:stz2[3]]), b""
        return 0, count, u32_array(buf, body + 12, count, 2), b""

    @staticmethod
    def _chunks(buf: bytes, stbl: Dict[bytes, List[Box]]) -> Sequence[int]:
        stco, co64 = only(stbl, b"stco"), only(stbl, b"co64")
        if (stco is None) == (co64 is None):
            raise Refusal("the video's sample table needs one 'stco' or 'co64'")
        box = stco if stco is not None else co64
        assert box is not None
        full_box(buf, box)
        body = need(buf, box, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        width = 4 if box is stco else 8
        exact(box, body + 8 + count * width)  # FFmpeg clamps the count to the box (mov_read_stco)
        return u32_array(buf, body + 8, count, width)

    @staticmethod
    def _stsc(buf: bytes, stsc: Box, chunks: int) -> List[Tuple[int, int]]:
        full_box(buf, stsc)
        body = need(buf, stsc, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        exact(stsc, body + 8 + 12 * count)
        out = []
        previous = 0
        for k in range(count):
            first, per_chunk, sdi = struct.unpack_from(">III", buf, body + 8 + 12 * k)
            # FFmpeg rewrites such entries in place (mov_read_stsc)
            if first <= previous or (k == 0 and first != 1) or first > chunks or per_chunk == 0:
                raise Refusal("an invalid 'stsc' entry (FFmpeg rewrites it)")
            if sdi != 1:
                raise Refusal("samples of sample description %d, not 1" % sdi)
            out.append((first, per_chunk))
            previous = first
        if not out and chunks:
            raise Refusal("chunks without an 'stsc' entry")
        return out

    @staticmethod
    def _pairs(buf: bytes, box: Box, name: str) -> Tuple[Sequence[int], Sequence[int]]:
        version, _ = full_box(buf, box, (0, 1) if name == "ctts" else (0,))
        body = need(buf, box, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        exact(box, body + 8 + 8 * count)
        table = u32_array(buf, body + 8, 2 * count)
        counts, values = table[0::2], table[1::2]
        if counts and min(counts) == 0:
            raise Refusal("an '%s' entry of no samples" % name)
        if values and max(values) >= MAX_OFFSET:
            raise Refusal("a negative or huge '%s' value (FFmpeg reads it as int32: %s)" % (
                name, "it shifts decode times" if name == "ctts" else "it clips it"), TIMING)
        return counts, values

    @staticmethod
    def _stss(buf: bytes, stss: Optional[Box]) -> Optional[Sequence[int]]:
        if stss is None:
            return None
        full_box(buf, stss)
        body = need(buf, stss, 8)
        count = _U32.unpack_from(buf, body + 4)[0]
        exact(stss, body + 8 + 4 * count)
        return u32_array(buf, body + 8, count)

    def check(self) -> None:
        """The tables must describe the same samples, all of them."""
        count = self.count
        if sum(self.stts[0]) != count:
            raise Refusal("'stts' and 'stsz' count different samples", TIMING)
        if self.ctts is not None and sum(self.ctts[0]) != count:
            raise Refusal("'ctts' and 'stsz' count different samples", TIMING)
        in_chunks = 0
        entries = self.stsc
        for k, (first, per_chunk) in enumerate(entries):
            last = entries[k + 1][0] if k + 1 < len(entries) else len(self.chunks) + 1
            in_chunks += (last - first) * per_chunk
        if in_chunks != count:
            raise Refusal("the chunks hold %d samples, 'stsz' counts %d" % (in_chunks, count))
        stss = self.stss
        if stss:
            previous = 0
            for number in stss:
                if number <= previous or number > count:
                    raise Refusal("an invalid 'stss' entry")
                previous = number
        if self.constant == 0 and not self.nibbles and count and min(self.sizes) == 0:
            raise Refusal("a sample of 0 bytes")

    def samples(self) -> Iterator[Tuple[int, int, int, int, int, bool]]:
        """(offset, size, dts, composition offset, duration, sync) of each sample, in decoding order."""
        constant, sizes, nibbles = self.constant, self.sizes, self.nibbles
        stts_counts, stts_deltas = self.stts
        ctts_counts, ctts_values = self.ctts if self.ctts is not None else ((), ())
        stss = self.stss
        all_sync = stss is None
        stss_at, next_sync = 0, (stss[0] if stss else 0)
        t_index, t_left = 0, (stts_counts[0] if stts_counts else 0)
        c_index, c_left = 0, (ctts_counts[0] if ctts_counts else 0)
        dts = 0
        number = 0
        entries = self.stsc
        for k, (first, per_chunk) in enumerate(entries):
            last = entries[k + 1][0] if k + 1 < len(entries) else len(self.chunks) + 1
            for chunk in range(first - 1, last - 1):
                offset = self.chunks[chunk]
                for _ in range(per_chunk):
                    if constant:
                        size = constant
                    elif nibbles:
                        size = nibbles[number >> 1] >> (0 if number & 1 else 4) & 15
                    else:
                        size = sizes[number]
                    number += 1
                    duration = stts_deltas[t_index]
                    t_left -= 1
                    if not t_left and t_index + 1 < len(stts_counts):
                        t_index += 1
                        t_left = stts_counts[t_index]
                    cto = 0
                    if ctts_counts:
                        cto = ctts_values[c_index]
                        c_left -= 1
                        if not c_left and c_index + 1 < len(ctts_counts):
                            c_index += 1
                            c_left = ctts_counts[c_index]
                    if all_sync:
                        sync = True
                    elif stss:
                        sync = number == next_sync
                        if sync and stss_at + 1 < len(stss):
                            stss_at += 1
                            next_sync = stss[stss_at]
                    else:  # an empty 'stss': FFmpeg takes the first sample alone as a key frame
                        sync = number == 1
                    yield offset, size, dts, cto, duration, sync
                    offset += size
                    dts += duration


# The most samples read ahead in the table (never in the stream) to find where FFmpeg starts an
# edit: a bound on work that no input byte pays for (about 9 hours at 30 frames a second).
MAX_EDIT_SCAN = 1 << 20


def _edit_first(table: Table, media_time: int) -> int:
    """The sample FFmpeg starts the edit from (mov_fix_index, find_prev_closest_index): the last
    sync sample presented at or before the edit's media time, or the first. Samples before it are
    never decoded by FFmpeg."""
    if media_time <= 0:
        return 0
    first = 0
    for number, (_offset, _size, dts, cto, _duration, sync) in enumerate(table.samples()):
        if dts > media_time:
            return first
        if number >= MAX_EDIT_SCAN:
            break
        if sync and dts + cto <= media_time:
            first = number
    else:
        return first
    raise Refusal("an edit list that starts more than %d samples in" % MAX_EDIT_SCAN, TIMING)


# FFmpeg reads 'stsz' entries as int32: one of 2^31 or more makes mov_build_index give up the edit
# list for the whole track (every picture moves, none is hidden): the file is refused whole.
_HUGE_SAMPLE = "a sample size of 2^31 bytes or more in 'stsz' (FFmpeg then drops the track's edit list)"


def _first_shown(table: Table, first: int, media_time: int) -> Optional[int]:
    """The presentation time of the first picture the edit list shows (the least at or after its
    media time), among the samples near its start; None when there is none there."""
    shown = None
    for number, (_offset, _size, dts, cto, _duration, _sync) in enumerate(table.samples()):
        if number < first:
            continue
        if number > first + 64 or number >= MAX_EDIT_SCAN:  # beyond any decoder's reordering
            break
        pts = dts + cto
        if pts >= media_time and (shown is None or pts < shown):
            shown = pts
    return shown


def negative_offset_ahead(source: "Source") -> bool:
    """Whether a 'trun' of the fragments from here on gives a sample a negative composition offset.
    FFmpeg, reading a file it can seek in, indexes every fragment when it opens the file and moves
    every presentation time by the most negative offset (dts_shift): a fragment late in the file
    changes how the earlier ones play. Read here before any sample, skipping media data; the
    stream is left where it was."""
    start = source.pos
    found = False
    try:
        while not found:
            header = source.header()
            if header is None:
                break
            kind, size, head = header
            if size < 0 or size > MAX_INDEX_BYTES and kind == b"moof":
                break  # refused when read for real
            if kind != b"moof":
                if not source.skip(size - head):
                    break
                continue
            moof = source.read(size - head)
            found = _negative_in_moof(moof)
    except (Refusal, struct.error, IndexError):
        pass  # whatever cannot be read here is refused when it is read for real
    source.seek(start)
    return found


def _negative_in_moof(moof: bytes) -> bool:
    pos = 0
    while pos + 8 <= len(moof):
        size, kind = _HEAD.unpack_from(moof, pos)
        if size < 8 or pos + size > len(moof):
            return False
        if kind == b"traf":
            at = pos + 8
            while at + 8 <= pos + size:
                inner, inner_kind = _HEAD.unpack_from(moof, at)
                if inner < 8:
                    return False
                if inner_kind == b"trun" and at + 16 <= pos + size:
                    flags = _U32.unpack_from(moof, at + 8)[0] & 0xFFFFFF
                    count = _U32.unpack_from(moof, at + 12)[0]
                    field = at + 16 + (4 if flags & _TRUN_OFFSET else 0) + (4 if flags & _TRUN_FIRST_FLAGS else 0)
                    before = sum(4 for bit in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS) if flags & bit)
                    width = before + (4 if flags & _TRUN_CTO else 0)
                    if flags & _TRUN_CTO and width and field + count * width <= at + inner:
                        for k in range(count):
                            if moof[field + k * width + before] & 0x80:
                                return True
                at += inner
        pos += size
    return False


# ---- the stream --------------------------------------------------------------------------------

class Source:
    """The input stream: reads, skips (seeking when it can), knows where it is."""

    def __init__(self, stream: IO[bytes], seekable: bool) -> None:
        self.stream = stream
        self.seekable = seekable
        self.pos = stream.tell() if seekable else 0
        self.origin = self.pos

    def read(self, size: int) -> bytes:
        data = read_exactly(self.stream, size)
        self.pos += len(data)
        return data

    def read_sample(self, size: int) -> bytearray:
        """A sample's bytes, in a bytearray of their own (``events.read_sample``)."""
        data = read_sample(self.stream, size)
        self.pos += len(data)
        return data

    def skip(self, size: int) -> bool:
        """Skip ``size`` bytes; False when the stream ends first (or for a negative size)."""
        if size <= 0:
            return size == 0
        if self.seekable:
            end = self.stream.seek(0, 2)
            target = self.pos + size
            self.stream.seek(min(target, end))
            self.pos = min(target, end)
            return target <= end
        while size:
            data = self.stream.read(min(size, _SKIP_CHUNK))
            if not data:
                return False
            self.pos += len(data)
            size -= len(data)
        return True

    def seek(self, pos: int) -> None:
        self.stream.seek(pos)
        self.pos = pos

    def header(self) -> Optional[Tuple[bytes, int, int]]:
        """(type, box size, header size) of the next top-level box; None at the end. Size 0 ('to
        the end') is returned as -1."""
        head = self.read(8)
        if not head:
            return None
        if len(head) < 8:
            raise Refusal("the stream ends inside a box header")
        size, kind = _HEAD.unpack(head)
        if size == 1:
            more = self.read(8)
            if len(more) < 8:
                raise Refusal("the stream ends inside a box header")
            size = _U64.unpack(more)[0]
            if size < 16:
                raise Refusal("'%s' box smaller than its header" % fourcc(kind))
            return kind, size, 16
        if size == 0:
            return kind, -1, 8
        if size < 8:
            raise Refusal("'%s' box smaller than its header" % fourcc(kind))
        return kind, size, 8


def mp4_events(stream: IO[bytes], name: str, *, seekable: bool = False) -> Iterator[Event]:
    """The events (events.py) of an MP4 or fragmented MP4 stream: one TrackInfo, then a Sample per
    video sample in decoding order, Defects wherever the file may be read more than one way.

    ``seekable``: the stream can seek (a file), so an index after the media ('moov' after 'mdat')
    can be read; a pipe with such a file is an InputError (the caller spools it to a file first).
    """
    source = Source(stream, seekable)
    reader = _Reader(source, name)
    yield from reader.run()


class _Reader:
    """One pass over the stream: the movie header, then fragments or the movie's samples."""

    def __init__(self, source: Source, name: str) -> None:
        self.source = source
        self.name = name

    def fail(self, text: str) -> InputError:
        return InputError("%s: %s" % (self.name, text))

    def run(self) -> Iterator[Event]:
        source = self.source
        mdat_first = False
        while True:
            try:
                header = source.header()
            except Refusal as exc:
                raise self.fail(exc.text) from None
            if header is None:
                raise self.fail("no 'moov' box (not an MP4 movie)" if not mdat_first else
                                "no 'moov' box after the media")
            kind, size, head = header
            if kind not in _TOP_BEFORE_MOOV:
                if kind == b"moof":
                    raise self.fail("a movie fragment before the movie header ('moov')")
                raise self.fail("a top-level '%s' box before the movie header" % fourcc(kind))
            if kind == b"moov":
                break
            if size < 0:
                raise self.fail("'%s' runs to the end of the stream before any 'moov'" % fourcc(kind))
            if kind == b"mdat":
                if not source.seekable:
                    raise self.fail("the index ('moov') comes after the media ('mdat'): read from a pipe, the "
                                    "stream must be spooled to a file first")
                mdat_first = True
            if kind == b"uuid":
                body = source.read(min(16, size - head))
                if body in _PIFF:
                    raise self.fail("a PIFF 'uuid' box (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')")
                size -= len(body)
            if not source.skip(size - head):
                raise self.fail("cut short inside '%s'" % fourcc(kind))
        moov_start = source.pos - head
        if size < 0:
            raise self.fail("'moov' runs to the end of the stream")
        if size > MAX_INDEX_BYTES:
            raise self.fail("its index ('moov', %d bytes) is larger than %d MiB" % (size, MAX_INDEX_BYTES >> 20))
        body = source.read(size - head)
        if len(body) < size - head:
            raise self.fail("cut short inside its 'moov'")
        moov = _HEAD.pack(size, b"moov") + body if head == 8 else struct.pack(">I4sQ", 1, b"moov", size) + body
        try:
            movie = Movie(moov, wide=True)
            if movie.fragmented:
                Movie(moov, wide=False)  # hls.js reads the init segment too: no 64-bit sizes there
        except Refusal as exc:
            raise self.fail(exc.text) from None
        if movie.fragmented and mdat_first:
            raise self.fail("media ('mdat') before the movie header of a fragmented MP4")
        info, track, description = self._describe(movie)
        yield info
        try:
            media_time, edit_end = edit_list(movie, track)
        except Refusal as exc:
            yield Defect(exc.text, exc.reason, fatal=True)  # every segment of the track is refused
            return
        if movie.fragmented:
            yield from self._fragments(movie, track, description, media_time)
        else:
            if description.protection is not None:
                yield Defect("protected samples in a progressive MP4 (only fragments carry their encryption "
                             "info here)", fatal=True)
                return
            yield from self._progressive(movie, track, media_time, edit_end, moov_start if mdat_first else -1)

    def _describe(self, movie: Movie) -> Tuple[TrackInfo, Track, Description]:
        video = None
        for track in movie.tracks:
            if track.handler == b"vide" and track.entry is not None and (
                    track.entry[0] in VIDEO_ENTRIES or track.entry[0] == b"encv"):
                try:
                    description = Description(movie, track, wide=not movie.fragmented)
                except Refusal as exc:
                    raise self.fail(exc.text) from None
                except InputError as exc:
                    raise self.fail(str(exc)) from None
                if description.codec:
                    video = (track, description)
                    break
        if video is None:
            videos = [t for t in movie.tracks if t.is_video()]
            if videos:
                raise self.fail("no H.264 or H.265 video (video is %s)" % fourcc(videos[0].entry_type()))
            audio = [fourcc(t.entry_type()) for t in movie.tracks if t.handler == b"soun"]
            if audio:
                raise self.fail("no H.264 or H.265 video (audio only: %s)" % ", ".join(audio))
            raise self.fail("no H.264 or H.265 video track")
        track, description = video
        others = [t for t in movie.tracks if t is not track]
        info = TrackInfo(description.codec, description.codec_name, description.length_size, description.units,
                         track.timescale, [t.line() for t in others], any(t.is_video() for t in others),
                         description.protection)
        return info, track, description

    # -- fragmented --

    def _fragments(self, movie: Movie, track: Track, description: Description, media_time: int) -> Iterator[Event]:
        source = self.source
        for other in movie.tracks:
            if any(other.stbl.get(kind) and self._entries(movie.buf, other.stbl[kind][0])
                   for kind in (b"stts", b"stsz", b"stz2", b"stco", b"co64")):
                # Chromium's MSE reads only fragments (Movie::Parse), FFmpeg the moov's samples too
                yield Defect("a fragmented MP4 whose 'moov' lists samples (Chromium ignores them)", fatal=True)
                return
        if source.seekable and negative_offset_ahead(source):
            yield Defect("a fragment gives a picture a negative composition offset (FFmpeg, which can seek, "
                         "moves every earlier picture by it when it opens the file)", TIMING, fatal=True)
            return
        fragments = Fragments(movie, track, description.protection, media_time)
        header: Optional[Tuple[bytes, int, int]] = None
        while True:
            try:
                if header is None:
                    header = source.header()
                if header is None:
                    return
                kind, size, head = header
                header = None
                if size < 0:
                    raise Refusal("'%s' has size 0 ('to the end') in a fragmented MP4 (Chromium refuses it)"
                                  % fourcc(kind))
                if head == 16:
                    raise Refusal("'%s' has a 64-bit size (hls.js reads size 1 as 'to the end of the parent')"
                                  % fourcc(kind))
            except Refusal as exc:
                yield Defect(exc.text, fatal=True)
                return
            if kind == b"moof":
                if size > MAX_INDEX_BYTES:
                    yield Defect("a 'moof' larger than %d MiB" % (MAX_INDEX_BYTES >> 20), fatal=True)
                    return
                moof = source.read(size - 8)
                if len(moof) < size - 8:
                    yield Defect("the stream ends inside a 'moof'", fatal=True)
                    return
                try:  # the 'mdat' right after it: its header first, so the runs are checked against it
                    header = source.header()
                except Refusal as exc:
                    yield Defect(exc.text, fatal=True)
                    return
                if header is not None and (header[1] < 0 or header[2] == 16):
                    continue  # refused at the top of the loop, for its size
                if header is None or header[0] != b"mdat":
                    yield Defect("a 'moof' not followed by its 'mdat'")
                    continue
                body = header[1] - 8
                header = None
                try:
                    plan = fragments.plan(_HEAD.pack(size, b"moof") + moof, body)
                except Refusal as exc:
                    yield Defect(exc.text, exc.reason)
                    if not source.skip(body):
                        yield Defect("the stream ends inside an 'mdat'", fatal=True)
                        return
                    continue
                for event in self._read_plan(plan):
                    yield event
                    if isinstance(event, Defect) and event.fatal:
                        return
                continue
            if kind == b"mdat":
                yield Defect("an 'mdat' that follows no 'moof'")
            elif kind == b"moov":
                yield Defect("a second movie header ('moov')", fatal=True)
                return
            elif kind not in _TOP_FRAGMENTED:
                yield Defect("a top-level '%s' box in a fragmented MP4 (Chromium refuses it)" % fourcc(kind))
            elif kind == b"uuid":
                start = source.read(min(16, size - 8))
                if start in _PIFF:
                    yield Defect("a PIFF 'uuid' box (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')")
                size -= len(start)
            if not source.skip(size - 8):
                yield Defect("the stream ends inside a '%s' box" % fourcc(kind), fatal=True)
                return

    def _read_plan(self, plan: Plan) -> Iterator[Event]:
        """The samples of a fragment's 'mdat', as they are read (other tracks' runs skipped)."""
        source = self.source
        ended = Defect("the stream ends inside an 'mdat'", fatal=True)
        for length, run in plan.runs:
            if run is None:
                if not source.skip(length):
                    yield ended
                    return
                continue
            for size, dts, pts, duration, sync, hidden, iv, subsamples in plan.samples(run):
                if size > MAX_SAMPLE_BYTES:
                    yield Defect("a sample of %d bytes (more than %d MiB)" % (size, MAX_SAMPLE_BYTES >> 20))
                    if not source.skip(size):
                        yield ended
                        return
                    continue
                if hidden:
                    # FFmpeg reads a fragment's samples without the edit list's discard flag: it shows
                    # what the edit list hides from Chromium
                    yield Defect("an edit list hides a picture of a fragment (FFmpeg shows it)", TIMING)
                    if not source.skip(size):
                        yield ended
                        return
                    continue
                data = source.read_sample(size)
                if len(data) < size:
                    yield ended
                    return
                yield Sample(data, pts, dts, duration, hidden, sync, iv, subsamples)

    @staticmethod
    def _entries(buf: bytes, box: Box) -> int:
        need(buf, box, 8)
        return int(_U32.unpack_from(buf, box[2] + (8 if box[0] in (b"stsz", b"stz2") else 4))[0])

    # -- progressive --

    def _progressive(self, movie: Movie, track: Track, media_time: int, edit_end: Optional[int], rewind: int
                     ) -> Iterator[Event]:
        source = self.source
        try:
            table = Table(movie, track)
            table.check()
        except Refusal as exc:
            yield Defect(exc.text, exc.reason, fatal=True)
            return
        if not table.count:
            raise self.fail("no video samples")
        try:
            first = _edit_first(table, media_time)
            shown = _first_shown(table, first, media_time) if edit_end is not None else media_time
            if shown != media_time:
                # FFmpeg puts the first picture it shows at the edit's start (mov_fix_index): the
                # whole timeline moves by the difference; Chromium's reading keeps it
                raise Refusal("the first picture shown is at %s, not at the edit list's media time %d (FFmpeg "
                              "moves the whole timeline to it)" % (shown, media_time), TIMING)
        except Refusal as exc:
            yield Defect(exc.text, exc.reason, fatal=True)
            return
        if rewind >= 0:
            source.seek(source.origin)
        samples = table.samples()
        upcoming = next(samples, None)
        number = 0
        prev_end = 0
        yielded = False
        ended = "the stream ends before the video's last sample"
        while True:  # every top-level box to the end: trailing boxes obey the same rules
            try:
                header = source.header()
            except Refusal as exc:
                yield Defect(exc.text, fatal=True)
                return
            if header is None:
                if upcoming is None:
                    return
                if not yielded:
                    raise self.fail("cut short before its first sample")
                yield Defect(ended, fatal=True)
                return
            kind, size, head = header
            start = source.pos - head
            end = start + size if size >= 0 else -1
            if kind == b"moov":
                if start != rewind:  # FFmpeg skips a second one (mov_read_moov)
                    yield Defect("a second movie header ('moov')", fatal=True)
                    return
            elif kind not in _TOP_PROGRESSIVE:
                yield Defect("a top-level '%s' box in an MP4 movie" % fourcc(kind), fatal=True)
                return
            if size < 0 and (kind != b"mdat" or rewind >= 0):
                yield Defect("'%s' runs to the end of the stream: only a last 'mdat' may" % fourcc(kind), fatal=True)
                return
            if kind != b"mdat":
                if upcoming is not None and upcoming[0] < end:
                    yield Defect("a video sample outside any 'mdat'", fatal=True)
                    return
                if kind == b"uuid":
                    piece = source.read(min(16, size - head))
                    if piece in _PIFF:
                        yield Defect("a PIFF 'uuid' box (ExoPlayer and PlayReady read it as 'senc' or 'tfxd')",
                                     fatal=True)
                        return
                if not source.skip(end - source.pos):
                    yield Defect("the stream ends inside a '%s' box" % fourcc(kind), fatal=True)
                    return
                continue
            while upcoming is not None and (end < 0 or upcoming[0] < end):
                offset, sample_size, dts, cto, duration, sync = upcoming
                if offset < source.pos or offset < prev_end:
                    yield Defect("video samples out of file order, overlapping, or outside the 'mdat'", fatal=True)
                    return
                if end >= 0 and offset + sample_size > end:
                    yield Defect("a video sample runs past the end of its 'mdat'", fatal=True)
                    return
                if not source.skip(offset - source.pos):
                    yield Defect(ended, fatal=True)
                    return
                pts = dts + cto
                defect = None
                if edit_end is not None and pts >= edit_end:
                    defect = Defect("a sample presented after the end of the edit list (FFmpeg discards it)", TIMING)
                elif sample_size > MAX_SAMPLE_BYTES:
                    defect = Defect("a sample of %d bytes (more than %d MiB)" % (sample_size, MAX_SAMPLE_BYTES >> 20))
                if defect is not None:
                    yield defect
                    if not source.skip(sample_size):
                        yield Defect(ended, fatal=True)
                        return
                else:
                    data = source.read_sample(sample_size)
                    if len(data) < sample_size:
                        if not yielded:
                            raise self.fail("cut short before its first sample")
                        yield Defect(ended, fatal=True)
                        return
                    yield Sample(data, pts, dts, duration, number < first or pts < media_time, sync)
                    yielded = True
                prev_end = offset + sample_size
                number += 1
                upcoming = next(samples, None)
            if end < 0:  # an 'mdat' to the end: the rest of the stream is its body
                if upcoming is not None:
                    yield Defect(ended, fatal=True)
                return
            if not source.skip(end - source.pos):
                yield Defect(ended, fatal=True)
                return


__all__ = ["mp4_events"]
