"""The strict HLS media playlist reader (segbind.read.playlist) and the live playlist tracker.

Every rule has a small playlist that exercises it: accepted ones parse to their exact
segments, refused ones raise InputError with their reason. Real playlists from
``segbind hls`` and ffmpeg's hls muxer parse. Then segbind's reading is held against the
readers it must agree with: hls.js's own parser (its ESM build, under Node) on every text
here and on random ones, and FFmpeg (Debian's 5.1 CLI and PyAV's) through the requests it
makes to a local HTTP server; on the texts they read differently from RFC 8216, segbind
refuses.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_sim import clips
from segbind import Epoch
from segbind.errors import InputError
from segbind.read.playlist import (
    MediaPlaylist,
    MediaSegment,
    PlaylistMovedBackwards,
    PlaylistTracker,
    check_init_for,
    parse_media_playlist,
)
from segbind.read.sniff import MP4, MPEGTS
from segbind.read.sources import MAX_PLAYLIST_BYTES
from segbind.write import write_hls
from tests.support import ROOT
from tests.support.media import FFMPEG, ffmpeg, tag_recording
from tests.support.tagged import T0
from tests.support.web import run_node

BASE = "http://127.0.0.1:8000/cam/"
LOCATION = BASE + "live.m3u8"
HLSJS = ROOT / "tests" / "web" / "hlsjs_playlist.mjs"


def text(*lines: str, target: Optional[int] = 4, end: bool = True) -> bytes:
    """A playlist: #EXTM3U, EXT-X-TARGETDURATION, ``lines``, EXT-X-ENDLIST."""
    head = ["#EXTM3U"] + (["#EXT-X-TARGETDURATION:%d" % target] if target is not None else [])
    return ("\n".join(head + list(lines) + (["#EXT-X-ENDLIST"] if end else [])) + "\n").encode()


def parse(raw: bytes, location: str = LOCATION) -> MediaPlaylist:
    return parse_media_playlist(raw, location)


def seg(uri: str, sequence: int, offset: int = 0, length: Optional[int] = None, init: Optional[Tuple] = None,
        discontinuity: bool = False, dsn: int = 0, duration: float = 1.0) -> MediaSegment:
    return MediaSegment((uri, offset, length), init, discontinuity, sequence, dsn, duration)


# -- accepted: exact segments --------------------------------------------------------------------

ACCEPTED: List[Tuple[str, bytes, List[MediaSegment]]] = [
    ("relative, absolute-path, network-path and absolute URLs",
     text("#EXTINF:1,", "a.ts", "#EXTINF:1,", "/x/b.ts", "#EXTINF:1,", "//127.0.0.1:8000/y/c.ts",
          "#EXTINF:1,", "https://cdn.example.com/z/d.ts?token=abc&x=1"),
     [seg(BASE + "a.ts", 0), seg("http://127.0.0.1:8000/x/b.ts", 1), seg("http://127.0.0.1:8000/y/c.ts", 2),
      seg("https://cdn.example.com/z/d.ts?token=abc&x=1", 3)]),
    ("a query of its own (empty too), empty path segments and percent-escapes kept as they are",
     text("#EXTINF:1,", "s/a.ts?q=1", "#EXTINF:1,", "a//b.ts", "#EXTINF:1,", "%41b.ts", "#EXTINF:1,", "c.ts?"),
     [seg(BASE + "s/a.ts?q=1", 0), seg(BASE + "a//b.ts", 1), seg(BASE + "%41b.ts", 2), seg(BASE + "c.ts?", 3)]),
    ("byte ranges: explicit, and without an offset after a range of the same resource",
     text("#EXTINF:1,", "#EXT-X-BYTERANGE:100@0", "all.ts", "#EXT-X-BYTERANGE:50", "#EXTINF:1,", "all.ts",
          "#EXTINF:1,", "#EXT-X-BYTERANGE:20@1000", "all.ts"),
     [seg(BASE + "all.ts", 0, 0, 100), seg(BASE + "all.ts", 1, 100, 50), seg(BASE + "all.ts", 2, 1000, 20)]),
    ("maps with and without BYTERANGE, a new map after a discontinuity, sequence numbers",
     text("#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-DISCONTINUITY-SEQUENCE:5", '#EXT-X-MAP:URI="all.mp4",BYTERANGE="100@0"',
          "#EXTINF:1,", "#EXT-X-BYTERANGE:200@100", "all.mp4", "#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="i.mp4"',
          "#EXTINF:2.5,", "b.m4s"),
     [seg(BASE + "all.mp4", 7, 100, 200, (BASE + "all.mp4", 0, 100), dsn=5),
      seg(BASE + "b.m4s", 8, init=(BASE + "i.mp4", 0, None), discontinuity=True, dsn=6, duration=2.5)]),
    ("CRLF, a last line without its terminator, blank lines, comments, a lowercase tag is a comment",
     b"#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n\r\n# a comment\r\n#ext-x-endlist\r\n#EXTINF:1,\r\na.ts\r\n"
     b"#EXTINF:1,\nb.ts",
     [seg(BASE + "a.ts", 0), seg(BASE + "b.ts", 1)]),
    ("titles hold anything printable; durations are decimal; 4.49 rounds to the target 4",
     text("#EXTINF:4.49,Caf\u00e9, a \"title\" # with {braces}", "a.ts", "#EXTINF:0.001,", "b.ts"),
     [seg(BASE + "a.ts", 0, duration=4.49), seg(BASE + "b.ts", 1, duration=0.001)]),
    ("tags accepted and not acted on, KEY METHOD=NONE",
     text("#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-START:TIME-OFFSET=-3.5,PRECISE=YES",
          "#EXT-X-ALLOW-CACHE:NO", "#EXT-X-KEY:METHOD=NONE", "#EXT-X-BITRATE:800", "#EXTINF:1,",
          "#EXT-X-PROGRAM-DATE-TIME:2026-12-04T16:00:19.262+0000", "a.ts"),
     [seg(BASE + "a.ts", 0)]),
    ("segments after EXT-X-ENDLIST are read, as hls.js and FFmpeg read them",
     b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:1,\na.ts\n#EXT-X-ENDLIST\n#EXTINF:1,\nb.ts\n",
     [seg(BASE + "a.ts", 0), seg(BASE + "b.ts", 1)]),
    ("an IPv6 host in canonical form",
     text("#EXTINF:1,", "http://[::1]:8080/a.ts"), [seg("http://[::1]:8080/a.ts", 0)]),
]


@pytest.mark.parametrize("name, raw, segments", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_playlists_give_their_exact_segments(name: str, raw: bytes, segments: List[MediaSegment]) -> None:
    assert list(parse(raw).segments) == segments


def test_the_playlist_reports_type_end_target_and_what_it_does_not_act_on() -> None:
    vod = parse(text("#EXT-X-PLAYLIST-TYPE:VOD", "#EXTINF:1,", "a.ts"))
    assert (vod.playlist_type, vod.ended, vod.target_duration_s, vod.media_sequence) == ("VOD", True, 4, 0)
    assert vod.notes == ()
    event = parse(text("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXTINF:1,", "a.ts", end=False))
    assert (event.playlist_type, event.ended, event.next_sequence) == ("EVENT", False, 1)
    empty = parse(text(end=False))  # a live playlist before its first segment
    assert (empty.segments, empty.ended) == ((), False)
    noted = parse(ACCEPTED[6][1]).notes
    assert [n.split(":")[0] for n in noted] == ["EXT-X-VERSION", "EXT-X-INDEPENDENT-SEGMENTS", "EXT-X-START",
                                               "EXT-X-ALLOW-CACHE", "EXT-X-BITRATE", "EXT-X-PROGRAM-DATE-TIME"]


def test_a_local_playlist_names_files_relative_to_it(tmp_path: Path) -> None:
    raw = text('#EXT-X-MAP:URI="sub/init.mp4"', "#EXTINF:1,", "sub/a.m4s", "#EXTINF:1,", "b%20c.m4s")
    got = parse(raw, str(tmp_path / "p.m3u8"))
    assert [s.media[0] for s in got.segments] == [str(tmp_path / "sub/a.m4s"), str(tmp_path / "b%20c.m4s")]
    assert got.segments[0].init == (str(tmp_path / "sub/init.mp4"), 0, None)
    cwd = os.getcwd()
    assert parse(raw, "-").segments[0].media[0] == os.path.join(cwd, "sub/a.m4s")
    assert parse(raw, "d/p.m3u8").segments[0].media[0] == os.path.join(cwd, "d", "sub/a.m4s")


# -- refused: the reason ------------------------------------------------------------------------

REFUSED: List[Tuple[bytes, str]] = [
    # The text: bytes, characters, lines (RFC 8216 4.1).
    (b"", "not an HLS playlist"),
    (b"\xef\xbb\xbf" + text("#EXTINF:1,", "a.ts"), "byte order mark"),
    (b"#EXTM3U \n#EXT-X-TARGETDURATION:4\n", "not an HLS playlist"),
    (b"\n#EXTM3U\n#EXT-X-TARGETDURATION:4\n", "not an HLS playlist"),
    (text("#EXTINF:1,\xff", "a.ts").replace(b"\xc3\xbf", b"\xff"), "line 3: not UTF-8"),
    (text("#EXTINF:1,", "a.ts\rb.ts"), "line 4: a carriage return not followed by a line feed"),
    (text("#EXTINF:1,", "a.ts\r\r"), "carriage return"),
    (text("#EXTINF:1,", "a.ts\x00b.ts"), "NUL character (FFmpeg ends the line there"),
    (text("#EXTINF:1,t\u2028b.ts", "a.ts"), "U+2028 (hls.js ends a tag's line there"),
    (text("#EXTINF:1,\tt", "a.ts"), "control character U+0009"),
    (text("#EXTINF:1,t\u0085", "a.ts"), "control character U+0085"),
    (text("#EXTINF:1,", "{$dir}/a.ts"), "variable reference {$dir}"),
    (text("#EXTINF:1,t{$x}", "a.ts"), "variable reference"),
    (text('#EXT-X-DEFINE:NAME="a",VALUE="b"', "#EXTINF:1,", "a.ts"), "EXT-X-DEFINE: variables"),
    (text("#EXTINF:1,", "a" * 4100 + ".ts"), "longer than 4095 bytes"),
    (text("#EXTINF:1," + "\u00e9" * 2100, "a.ts"), "longer than 4095 bytes"),
    (text("#EXTINF:1,", " a.ts"), "white space at the start or end of a line"),
    (text("#EXTINF:1,", "a.ts "), "white space"),
    (text("#EXTINF:1, ", "a.ts"), "white space"),
    (text("#EXTM3U", "#EXTINF:1,", "a.ts"), "EXTM3U again"),
    # Segments: EXTINF (4.3.2.1), URIs.
    (text("a.ts"), "URI 'a.ts' without EXTINF"),
    (text("#EXTINF:1,", "a.ts", "b.ts"), "URI 'b.ts' without EXTINF"),
    (text("#EXTINF:1,", "#EXTINF:2,", "a.ts"), "a second EXTINF"),
    (text("#EXTINF:1", "a.ts"), "not <duration>,[<title>]"),
    (text("#EXTINF:1.5e3,", "a.ts"), "not <duration>,[<title>]"),
    (text("#EXTINF:1.,", "a.ts"), "not <duration>"),
    (text("#EXTINF:.5,", "a.ts"), "not <duration>"),
    (text("#EXTINF:-1,", "a.ts"), "not <duration>"),
    (text("#EXTINF: 1,", "a.ts"), "not <duration>"),
    (text("#EXTINF:0,", "a.ts"), "must last more than 0 s"),
    (text("#EXTINF:0.000,", "a.ts"), "more than 0 s"),
    (text("#EXTINF:4.5,", "a.ts"), "EXTINF 4.5 on line 3 rounds above EXT-X-TARGETDURATION 4"),
    (text("#EXTINF:" + "9" * 400 + ",", "a.ts"), "hls.js reads it as Infinity"),
    (text("#EXTINF:" + "9" * 300 + ",", "a.ts"), "rounds above"),
    (text("#EXTINF:1,", "a.ts", end=False) + b"#EXTINF:1,\n", "EXTINF on line 5 applies to no media segment"),
    # Media playlist tags (4.3.3).
    (text("#EXTINF:1,", "a.ts", target=None), "no EXT-X-TARGETDURATION"),
    (text("#EXTINF:1,", "a.ts", target=0), "EXT-X-TARGETDURATION 0 (hls.js reads it as 1"),
    (text("#EXT-X-TARGETDURATION:4", "#EXTINF:1,", "a.ts"), "EXT-X-TARGETDURATION again (first on line 2)"),
    (text("#EXT-X-TARGETDURATION: 4", target=None), "is not a decimal integer"),
    (text("#EXT-X-TARGETDURATION:4.0", target=None), "is not a decimal integer"),
    (text("#EXT-X-TARGETDURATION:99999999999999", target=None), "not within 1 to"),
    (text("#EXTINF:1,", "a.ts", "#EXT-X-MEDIA-SEQUENCE:3"), "EXT-X-MEDIA-SEQUENCE after the first media segment"),
    (text("#EXT-X-MEDIA-SEQUENCE:9007199254740992", "#EXTINF:1,", "a.ts"), "not within 0 to 9007199254740991"),
    (text("#EXT-X-MEDIA-SEQUENCE:9007199254740991", "#EXTINF:1,", "a.ts", "#EXTINF:1,", "b.ts"),
     "media or discontinuity sequence number past"),
    (text("#EXT-X-MEDIA-SEQUENCE:0x10", "#EXTINF:1,", "a.ts"), "not a decimal integer"),
    (text("#EXT-X-MEDIA-SEQUENCE:1", "#EXT-X-MEDIA-SEQUENCE:1"), "EXT-X-MEDIA-SEQUENCE again"),
    (text("#EXT-X-DISCONTINUITY", "#EXT-X-DISCONTINUITY-SEQUENCE:2", "#EXTINF:1,", "a.ts"),
     "EXT-X-DISCONTINUITY-SEQUENCE after an EXT-X-DISCONTINUITY"),
    (text("#EXTINF:1,", "a.ts", "#EXT-X-DISCONTINUITY-SEQUENCE:2"), "after the first media segment"),
    (text("#EXT-X-PLAYLIST-TYPE:vod", "#EXTINF:1,", "a.ts"), "EVENT or VOD (hls.js upper-cases it"),
    (text("#EXT-X-PLAYLIST-TYPE:VOD", "#EXTINF:1,", "a.ts", end=False), "VOD without EXT-X-ENDLIST"),
    (text("#EXTINF:1,", "a.ts", "#EXT-X-ENDLIST"), "EXT-X-ENDLIST again"),
    (b"#EXTM3U\n#EXT-X-ENDLIST\n#EXT-X-TARGETDURATION:4\n#EXTINF:1,\na.ts\n",
     "EXT-X-ENDLIST on line 2 comes before any media segment, EXT-X-TARGETDURATION"),
    (b"#EXTM3U\n#EXT-X-ENDLIST\n", "playlist lists no media segments"),
    (text("#EXT-X-ENDLIST:YES", end=False), "EXT-X-ENDLIST takes no value"),
    (text("#EXT-X-ENDLISTED", end=False), "unknown tag EXT-X-ENDLISTED: hls.js reads it as EXT-X-ENDLIST"),
    (text("#EXT-X-DISCONTINUITYX", "#EXTINF:1,", "a.ts"), "hls.js reads it as EXT-X-DISCONTINUITY"),
    (text("#EXT-X-GAPS", "#EXTINF:1,", "a.ts"), "hls.js reads it as EXT-X-GAP"),
    (text("#EXT-X-PREFETCH:a.ts"), "unknown tag EXT-X-PREFETCH: a player may act on it"),
    (text("#EXT-X-CUE-OUT:30"), "unknown tag EXT-X-CUE-OUT"),
    (text("#EXT-X-VERSION:3", "#EXT-X-VERSION:3"), "EXT-X-VERSION again"),
    (text("#EXT-X-INDEPENDENT-SEGMENTS:YES"), "takes no value"),
    (text("#EXT-X-START:PRECISE=YES"), "EXT-X-START without a decimal TIME-OFFSET"),
    (text("#EXT-X-START:TIME-OFFSET=1,FOO=2"), "EXT-X-START: unknown attribute FOO"),
    (text("#EXT-X-PROGRAM-DATE-TIME:yesterday", "#EXTINF:1,", "a.ts"), "not an ISO 8601 date"),
    (text("#EXT-X-BITRATE:fast"), "EXT-X-BITRATE"),
    (text("#EXT-X-ALLOW-CACHE:MAYBE"), "EXT-X-ALLOW-CACHE is YES or NO"),
    # Tags a player acts on and segbind does not.
    (text("#EXTINF:1,", "#EXT-X-GAP", "a.ts"), "EXT-X-GAP: a gap segment: hls.js skips it, FFmpeg plays it"),
    (text('#EXT-X-PART:DURATION=1,URI="p.ts"'), "EXT-X-PART: low-latency partial segments"),
    (text("#EXT-X-PART-INF:PART-TARGET=1"), "EXT-X-PART-INF"),
    (text('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p.ts"'), "EXT-X-PRELOAD-HINT"),
    (text("#EXT-X-SKIP:SKIPPED-SEGMENTS=3"), "EXT-X-SKIP: a delta update"),
    (text("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"), "EXT-X-SERVER-CONTROL"),
    (text('#EXT-X-RENDITION-REPORT:URI="b.m3u8",LAST-MSN=3'), "EXT-X-RENDITION-REPORT"),
    (text('#EXT-X-DATERANGE:ID="ad",CLASS="com.apple.hls.interstitial",START-DATE="2026-01-01T00:00:00Z",'
          'X-ASSET-URI="http://evil.example/other.m3u8"'), "EXT-X-DATERANGE: date ranges: hls.js acts on them"),
    (text("#EXT-X-I-FRAMES-ONLY"), "EXT-X-I-FRAMES-ONLY: an I-frame playlist"),
    (text('#EXT-X-KEY:METHOD=AES-128,URI="k"', "#EXTINF:1,", "a.ts"), "encrypted segments (EXT-X-KEY METHOD=AES-128)"),
    (text("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"k\""), "encrypted"),
    (text('#EXT-X-KEY:METHOD=NONE,URI="k"'), "METHOD=NONE with other attributes"),
    (text('#EXT-X-KEY:METHOD="NONE"'), "or quoted"),
    (text("#EXT-X-KEY:URI=\"k\""), "EXT-X-KEY without METHOD"),
    # Master playlist tags: FFmpeg loads the variants and renditions they name.
    (b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhigh.m3u8\n",
     "master playlist (EXT-X-STREAM-INF); verify one of its media playlists: low.m3u8, high.m3u8"),
    (text('#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="v",NAME="x",URI="other.m3u8"', "#EXTINF:1,", "a.ts"),
     "master playlist (EXT-X-MEDIA)"),
    (text('#EXT-X-SESSION-KEY:METHOD=AES-128,URI="k"'), "master playlist (EXT-X-SESSION-KEY)"),
    (text('#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="y"'), "master playlist"),
    (text('#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="i.m3u8"'), "master playlist"),
    (text('#EXT-X-CONTENT-STEERING:SERVER-URI="s.json"'), "master playlist"),
    # Byte ranges (4.3.2.2).
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:100", "a.ts"), "without an offset on the first media segment"),
    (text("#EXTINF:1,", "a.ts", "#EXTINF:1,", "#EXT-X-BYTERANGE:100", "a.ts"),
     "without an offset after a segment without a byte range"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:100@0", "a.ts", "#EXTINF:1,", "#EXT-X-BYTERANGE:50", "b.ts"),
     "without an offset after a range of another resource (http://127.0.0.1:8000/cam/a.ts): hls.js and FFmpeg "
     "continue after it whatever its URI"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:0@0", "a.ts"), "EXT-X-BYTERANGE length: 0 is not within 1"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@", "a.ts"), "not <length>[@<offset>]"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@20@30", "a.ts"), "not <length>[@<offset>]"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@9007199254740990", "a.ts"), "ends past byte 9007199254740991"),
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@0", "#EXT-X-BYTERANGE:10@0", "a.ts"), "a second EXT-X-BYTERANGE"),
    (text("#EXTINF:1,", "a.ts", "#EXT-X-BYTERANGE:10@0"), "EXT-X-BYTERANGE on line 5 applies to no media segment"),
    (text("#EXTINF:1,", "a.ts", "#EXT-X-DISCONTINUITY"), "EXT-X-DISCONTINUITY on line 5 applies to no media"),
    (text("#EXT-X-DISCONTINUITY", "#EXT-X-DISCONTINUITY", "#EXTINF:1,", "a.ts"), "a second EXT-X-DISCONTINUITY"),
    # Maps (4.3.2.5) and attribute lists (4.2).
    (text("#EXTINF:1,", '#EXT-X-MAP:URI="i.mp4"', "a.ts"), "EXT-X-MAP between a media segment's EXTINF"),
    (text("#EXT-X-BYTERANGE:10@0", '#EXT-X-MAP:URI="i.mp4"', "#EXTINF:1,", "a.ts"),
     "between a media segment's EXT-X-BYTERANGE"),
    (text('#EXT-X-MAP:BYTERANGE="10@0"'), "EXT-X-MAP without URI"),
    (text("#EXT-X-MAP:URI=i.mp4"), "EXT-X-MAP: URI must be quoted"),
    (text('#EXT-X-MAP:URI="i.mp4",BYTERANGE=10@0'), "BYTERANGE must be quoted"),
    (text('#EXT-X-MAP:URI="i.mp4",BYTERANGE="10"'), "EXT-X-MAP BYTERANGE without an offset"),
    (text('#EXT-X-MAP:URI="i.mp4",BYTERANGE="10@' + "0" * 30 + '"'), "longer than 31 characters (FFmpeg cuts"),
    (text('#EXT-X-MAP:URI="i.mp4",FOO="x"'), "EXT-X-MAP: unknown attribute FOO"),
    (text('#EXT-X-MAP:URI="i.mp4",URI="j.mp4"'), "attribute URI twice"),
    (text('#EXT-X-MAP:URI="i.mp4", BYTERANGE="10@0"'), "without white space"),
    (text('#EXT-X-MAP:URI="i.mp4",'), "attribute list ends with a comma"),
    (text('#EXT-X-MAP:URI="i.mp4"x'), "is not NAME=value"),
    (text('#EXT-X-MAP:uri="i.mp4"'), "is not NAME=value"),
    (text('#EXT-X-MAP:URI="i\\.mp4"'), "a backslash in URI (FFmpeg reads it as an escape"),
    (text("#EXT-X-MAP:"), "EXT-X-MAP without a value"),
    (text('#EXT-X-MAP:URI=""'), "URI '': empty"),
    (text("#EXT-X-START:TIME-OFFSET=1 "), "white space"),
    # URIs (RFC 3986, and what browsers, hls.js, FFmpeg and Python request).
    (text("#EXTINF:1,", "a.ts#t=1"), "a fragment"),
    (text("#EXTINF:1,", "a\\b.ts"), "'\\\\' is not allowed"),
    (text("#EXTINF:1,", "a b.ts"), "' ' is not allowed"),
    (text("#EXTINF:1,", "caf\u00e9.ts"), "is not allowed"),
    (text("#EXTINF:1,", "a.ts?x='1'"), "\"'\" (browsers escape it in a query"),
    (text("#EXTINF:1,", "a%zz.ts"), "% not followed by two hexadecimal digits"),
    (text("#EXTINF:1,", "../a.ts"), "a dot segment '..'"),
    (text("#EXTINF:1,", "./a.ts"), "a dot segment '.'"),
    (text("#EXTINF:1,", "x/%2e%2E/a.ts"), "a dot segment '%2e%2E'"),
    (text("#EXTINF:1,", "/x/../a.ts"), "dot segment"),
    (text("#EXTINF:1,", "file:///etc/passwd"), "file:///etc/passwd is not an http(s) URL"),
    (text("#EXTINF:1,", "data:video/mp2t;base64,R0dHRw=="), "is not an http(s) URL"),
    (text("#EXTINF:1,", "crypto+http://127.0.0.1:8000/a.ts"), "not an http(s) URL"),
    (text("#EXTINF:1,", "HTTP://127.0.0.1:8000/a.ts"), "not an http(s) URL"),
    (text("#EXTINF:1,", "http:a.ts"), "not an http(s) URL"),
    (text("#EXTINF:1,", "1:a.ts"), "not an http(s) URL"),
    (text("#EXTINF:1,", "http://user:pw@127.0.0.1:8000/a.ts"), "user information"),
    (text("#EXTINF:1,", "//user@127.0.0.1:8000/a.ts"), "user information"),
    (text("#EXTINF:1,", "http://Example.com/a.ts"), "host 'Example.com': lowercase"),
    (text("#EXTINF:1,", "http://example.com:80/a.ts"), "the default port written out"),
    (text("#EXTINF:1,", "https://example.com:443/a.ts"), "the default port"),
    (text("#EXTINF:1,", "http://example.com:/a.ts"), "an empty port"),
    (text("#EXTINF:1,", "http://example.com:0080/a.ts"), "without leading zeros"),
    (text("#EXTINF:1,", "http://example.com:70000/a.ts"), "from 1 to 65535"),
    (text("#EXTINF:1,", "http://127.1/a.ts"), "not a dotted-decimal IPv4 address"),
    (text("#EXTINF:1,", "http://0x7f.0.0.1/a.ts"), "not a dotted-decimal IPv4 address"),
    (text("#EXTINF:1,", "http://127.0.0.01/a.ts"), "not a dotted-decimal"),
    (text("#EXTINF:1,", "http://[0:0::1]/a.ts"), "IPv6 host not in its canonical form ::1"),
    (text("#EXTINF:1,", "http://[::1/a.ts"), "a malformed IPv6 host"),
    (text("#EXTINF:1,", "http://example.com"), "no path"),
    (text("#EXTINF:1,", "http://example.com?x=1"), "no path"),
    (text('#EXT-X-MAP:URI="../i.mp4"'), "dot segment"),
    (text('#EXT-X-MAP:URI="ftp://h/i.mp4"'), "not an http(s) URL"),
    (text("#EXTINF:1,", "a.ts") * 0 + b"#EXTM3U\n" + b"#" * MAX_PLAYLIST_BYTES, "playlist larger than 4 MiB"),
]


@pytest.mark.parametrize("raw, why", REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_refused_playlists_say_why_in_one_line(raw: bytes, why: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(raw)
    message = str(caught.value)
    assert why in message and "\n" not in message and message.startswith(LOCATION), message


@pytest.mark.parametrize("uri, why", [
    ("http://127.0.0.1:8000/a.ts", "is remote; a local playlist's segments must be local files"),
    ("//127.0.0.1:8000/a.ts", "an absolute path"),
    ("/etc/passwd.ts", "is an absolute path"),
    ("a.ts?x=1", "has a query"),
    ("c:/a.ts", "has a scheme (c:)"),
    ("data:video/mp2t,x", "has a scheme (data:)"),
    ("../a.ts", "a dot segment"),
    ("a\\..\\b.ts", "is not allowed"),
])
def test_a_local_playlist_lists_relative_paths_only(uri: str, why: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(why)):
        parse(text("#EXTINF:1,", uri), str(tmp_path / "p.m3u8"))


@pytest.mark.parametrize("location, why", [
    ("http://127.0.0.1:8000/a/../p.m3u8", "a dot segment"),
    ("http://127.0.0.1:80/p.m3u8", "default port"),
    ("http://127.0.0.1:8000/p.m3u8#x", "a fragment"),
    ("https://Example.com/p.m3u8", "lowercase"),
    ("http://u@example.com/p.m3u8", "user information"),
])
def test_the_playlist_url_itself_follows_the_same_rules(location: str, why: str) -> None:
    with pytest.raises(InputError, match=re.escape(why)):
        parse(text("#EXTINF:1,", "a.ts"), location)


def test_a_map_before_an_mpegts_segment_is_refused_once_its_content_is_known() -> None:
    playlist = parse(ACCEPTED[3][1])
    check_init_for(playlist.segments[1], MP4, LOCATION)
    check_init_for(parse(ACCEPTED[0][1]).segments[0], MPEGTS, LOCATION)
    with pytest.raises(InputError, match=r"media segment 8 \(http://127.0.0.1:8000/cam/b.m4s\) is MPEG-TS after "
                                         r"an EXT-X-MAP \(http://127.0.0.1:8000/cam/i.mp4\): FFmpeg and hls.js"):
        check_init_for(playlist.segments[1], MPEGTS, LOCATION)


# -- real playlists -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Playlists written by ``segbind hls`` (fMP4 and TS) and by ffmpeg's hls muxer (TS and fMP4,
    one file per segment or one file of byte ranges: single_file), and ffmpeg's source video."""
    d = tmp_path_factory.mktemp("written")
    epoch = Epoch.of_pairing(os.urandom(32), "alice", "cam-5", 1, [])
    (d / "rec.h264").write_bytes(b"".join(tag_recording(epoch, clips.encode_pyav(frames=75, gop=25, seed=6), T0, T0)))
    for kind in ("fmp4", "ts"):
        (d / ("segbind-" + kind)).mkdir()
        write_hls(str(d / "rec.h264"), str(d / ("segbind-" + kind) / "vod.m3u8"), kind, 1.0)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "6", "-c:v", "libx264", "-g", "10",
           "-pix_fmt", "yuv420p", str(d / "src.mp4"))
    for kind in ("mpegts", "fmp4"):
        for single in (False, True):
            out = d / ("ffmpeg-%s%s" % (kind, "-single" if single else ""))
            out.mkdir()
            ffmpeg("-i", str(d / "src.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_segment_type", kind,
                   "-hls_playlist_type", "vod", *(["-hls_flags", "single_file"] if single else []),
                   str(out / "p.m3u8"))
    return d


@pytest.mark.parametrize("name, kind, ranges", [
    ("segbind-fmp4", "fmp4", False), ("segbind-ts", "ts", False), ("ffmpeg-mpegts", "ts", False),
    ("ffmpeg-mpegts-single", "ts", True), ("ffmpeg-fmp4", "fmp4", False), ("ffmpeg-fmp4-single", "fmp4", True)])
def test_real_playlists_parse_to_their_files(written: Path, name: str, kind: str, ranges: bool) -> None:
    location = written / name / ("vod.m3u8" if name.startswith("segbind") else "p.m3u8")
    playlist = parse(location.read_bytes(), str(location))
    assert playlist.ended and playlist.playlist_type == "VOD" and len(playlist.segments) >= 3
    assert [s.sequence for s in playlist.segments] == list(range(len(playlist.segments)))
    for segment in playlist.segments:
        path, offset, length = segment.media
        assert os.path.dirname(path) == str(written / name) and os.path.isfile(path)
        assert (length is not None) == ranges and (segment.init is not None) == (kind == "fmp4")
    if ranges:  # the ranges tile the one file, after the init segment's
        ends = [(s.media[1], s.media[1] + s.media[2]) for s in playlist.segments]
        start = playlist.segments[0].init[2] if kind == "fmp4" else 0
        assert ends[0][0] == start and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
        assert ends[-1][1] == os.path.getsize(playlist.segments[0].media[0])
    remote = parse(location.read_bytes(), "http://127.0.0.1:8000/x/" + location.name)
    assert [s.media[0] for s in remote.segments] == [
        "http://127.0.0.1:8000/x/" + os.path.basename(s.media[0]) for s in playlist.segments]


def live_versions(directory: Path, source: Path, kind: str, single: bool, ends: Sequence[int]) -> List[bytes]:
    """The live playlist ffmpeg's hls muxer writes (a window of three, no end) after ``n``
    seconds of ``source``, for each ``n`` of ``ends``; the last one ended."""
    versions = []
    for i, n in enumerate(ends):
        out = directory / ("%s-%d-%d" % (kind, single, n))
        out.mkdir()
        flags = (["single_file"] if single else []) + ([] if i == len(ends) - 1 else ["omit_endlist"])
        ffmpeg("-i", str(source), "-t", str(n), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "3",
               "-hls_segment_type", kind, *(["-hls_flags", "+".join(flags)] if flags else []), str(out / "p.m3u8"))
        versions.append((out / "p.m3u8").read_bytes())
    return versions


@pytest.mark.parametrize("kind", ["mpegts", "fmp4"])
def test_a_live_window_from_ffmpeg_is_tracked_segment_by_segment(written: Path, tmp_path: Path, kind: str) -> None:
    versions = [parse(raw) for raw in live_versions(tmp_path, written / "src.mp4", kind, False, [2, 3, 4, 5])]
    tracker = PlaylistTracker(LOCATION)
    names: List[str] = []
    for i, playlist in enumerate(versions):
        assert playlist.ended == (i == len(versions) - 1) and len(playlist.segments) == 3
        update = tracker.update(playlist)
        assert not update.missed and update.ended == playlist.ended
        names += [os.path.basename(s.media[0]) for s in update.new]
    ext = "ts" if kind == "mpegts" else "m4s"
    assert names == ["p%d.%s" % (n, ext) for n in range(len(names))] and len(names) >= 5
    # A reader that polls too slowly sees a gap: the segments that left the window unseen.
    tracker = PlaylistTracker(LOCATION)
    tracker.update(versions[0])
    last = versions[-1]
    update = tracker.update(last)
    assert list(update.missed) == list(range(versions[0].next_sequence, last.media_sequence))
    assert sequences(update.new) == list(range(max(versions[0].next_sequence, last.media_sequence), last.next_sequence))


def test_ffmpegs_live_single_file_window_moves_backwards(written: Path, tmp_path: Path) -> None:
    """ffmpeg's hls muxer writes EXT-X-MEDIA-SEQUENCE:0 in byte-range mode whatever its window
    (hlsenc.c hls_window: ``if (byterange_mode) sequence = 0``): once the window slides, media
    sequence 0 names another range of the same file. hls.js matches segments of successive
    versions by URI alone (level-helper.ts mapFragmentIntersection) and misses it; refused."""
    first, second = (parse(raw) for raw in live_versions(tmp_path, written / "src.mp4", "mpegts", True, [3, 4]))
    assert first.media_sequence == second.media_sequence == 0
    assert first.segments[0].media[0] == second.segments[0].media[0] and first.segments[0] != second.segments[0]
    tracker = PlaylistTracker(LOCATION)
    tracker.update(first)
    with pytest.raises(PlaylistMovedBackwards, match=r"media sequence 0 changed from http://127.0.0.1:8000/cam/p.ts "
                                                     r"\[\d+@\d+\] discontinuity sequence 0 to "):
        tracker.update(second)


# -- hls.js's own reading ------------------------------------------------------------------------

def hlsjs(raws: Sequence[bytes], base: str = LOCATION) -> List[Dict[str, Any]]:
    """hls.js's M3U8Parser on each text (tests/web/hlsjs_playlist.mjs), as a browser decodes it."""
    cases = [{"bytes": base64.b64encode(raw).decode(), "base": base} for raw in raws]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as path:
        json.dump(cases, path)
        path.flush()
        proc = run_node(str(HLSJS), path.name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: List[Dict[str, Any]] = json.loads(proc.stdout)
    return out


def as_hlsjs_reads(playlist: MediaPlaylist) -> Dict[str, Any]:
    """What hls.js must read for segbind's reading to be the same: every fragment's URL (as
    hls.js builds it and as the browser then requests it), range, init, numbers, duration."""

    def part(where: Tuple[str, int, Optional[int]]) -> Dict[str, Any]:
        uri, offset, length = where
        return {"url": uri, "href": uri, "range": None if length is None else [offset, offset + length]}

    return {
        "error": None, "ended": playlist.ended,
        "fragments": [dict(sn=s.sequence, cc=s.discontinuity_sequence, duration=s.duration_s, gap=False,
                           init=None if s.init is None else part(s.init), **part(s.media))
                      for s in playlist.segments]}


def segbind_reads(raw: bytes, location: str = LOCATION) -> Optional[MediaPlaylist]:
    try:
        return parse(raw, location)
    except InputError:
        return None


# Texts RFC 8216 reads one way and hls.js another: hls.js reads them without an error, and its
# fragments (URL, byte range) are not those of the RFC's reading (given here); segbind refuses.
HLSJS_DIFFERS: List[Tuple[bytes, List[Tuple[str, Optional[List[int]]]]]] = [
    (text("#EXTINF:1.5e3,", "a.ts"), [("a.ts", None)]),          # hls.js: "e3," is a URI, then a.ts
    (text("#EXTINF:1,", "a.ts", "b.ts"), [("a.ts", None)]),       # hls.js plays b.ts without EXTINF
    (text("#EXTINF:1,", "#EXT-X-BYTERANGE:100@0", "a.ts", "#EXTINF:1,", "#EXT-X-BYTERANGE:50", "b.ts"),
     [("a.ts", [0, 100])]),                                       # RFC: undefined; hls.js: b.ts at 100
    (text("#EXTINF:1,", "a.ts\rb.ts"), [("a.ts\rb.ts", None)]),    # one line to RFC 8216, two to hls.js
    (text("#EXTINF:1,t\u2028x.ts", "a.ts"), [("a.ts", None)]),     # hls.js: x.ts is a URI
    (text("#EXTINF:1,", "\u00a0#EXT-X-ENDLIST", "a.ts", end=False), [("\u00a0#EXT-X-ENDLIST", None)]),
    (text("#EXTINF:1,", "  a.ts"), [("  a.ts", None)]),           # FFmpeg: "  a.ts"; hls.js: a.ts
    (text("#EXTINF:1,", "a.ts", "  #EXT-X-ENDLIST", end=False), [("a.ts", None)]),  # hls.js: a URI
    (text("#EXT-X-DEFINE:NAME=\"d\",VALUE=\"x\"", "#EXTINF:1,", "{$d}.ts"), [("{$d}.ts", None)]),
    (text("#EXT-X-ENDLISTED", "#EXTINF:1,", "a.ts", end=False), [("a.ts", None)]),  # hls.js: ended
    (text("#EXTINF:1,", "#EXT-X-GAP", "a.ts"), [("a.ts", None)]),  # hls.js: a gap, never loaded
    (b"\xef\xbb\xbf" + text("#EXTINF:1,", "a.ts"), []),            # FFmpeg: not a playlist at all
]


def hlsjs_fragments(reading: Dict[str, Any]) -> List[Tuple[str, Optional[List[int]]]]:
    return [(f["url"], f["range"]) for f in reading["fragments"] if not f["gap"]]


def test_hlsjs_reads_every_accepted_text_as_segbind_does_and_the_others_differ() -> None:
    corpus = [raw for _, raw, _ in ACCEPTED] + [raw for raw, _ in REFUSED[:-1]] + [raw for raw, _ in HLSJS_DIFFERS]
    readings = hlsjs(corpus)
    accepted = 0
    for raw, theirs in zip(corpus, readings):
        ours = segbind_reads(raw)
        if ours is not None:
            accepted += 1
            assert theirs == as_hlsjs_reads(ours), raw
    assert accepted == len(ACCEPTED)
    for (raw, rfc), theirs in zip(HLSJS_DIFFERS, readings[-len(HLSJS_DIFFERS):]):
        assert segbind_reads(raw) is None
        rfc_reading = [(BASE + uri if uri else uri, rng) for uri, rng in rfc]
        assert theirs["error"] is None and (hlsjs_fragments(theirs) != rfc_reading or
                                            theirs["ended"] != (b"#EXT-X-ENDLIST\n" in raw)), (raw, theirs)


# Pieces of random playlists: mostly well formed, with the forms the rules are about.
DURATIONS = ["1", "1.5", "0.25", "4", "4.4", "4.5", "10", ".5", "1.", "1e1", "0", "3.000000", " 1", "-1", "1 "]
URIS = ["a.ts", "b.ts", "s/c.ts", "/x/d.ts", "//127.0.0.1:8000/y/e.ts", "http://127.0.0.1:8000/z/f.ts",
        "g.ts?q=1&r=2", "../h.ts", "i.ts#f", "j\\k.ts", "l m.ts", "%2e/n.ts", "o;p=1.ts", "HTTP://x/q.ts",
        "data:,r", "s.ts?", "t//u.ts", "%41.ts", "v:w.ts", "x/y:z.ts", "caf\u00e9.ts", "https://cdn.example.com/a"]
EXTRA = ["", "# comment", "#EXT-X-DISCONTINUITY", "#EXT-X-ENDLIST", "#EXT-X-MEDIA-SEQUENCE:3", "#EXT-X-GAP",
         "#EXT-X-BITRATE:500", "#EXT-X-KEY:METHOD=NONE", '#EXT-X-MAP:URI="i.mp4"', '#EXT-X-MAP:URI="i.mp4",'
         'BYTERANGE="10@0"', '#EXT-X-MAP:URI="i.mp4",BYTERANGE="10"', "#EXT-X-PLAYLIST-TYPE:EVENT",
         "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-DISCONTINUITY-SEQUENCE:2", "#EXT-X-ENDLISTX", "#EXT-X-VERSION:6",
         "#EXT-X-TARGETDURATION:10", "#EXT-X-PROGRAM-DATE-TIME:2026-12-04T16:00:19Z", "#EXT-X-START:TIME-OFFSET=2",
         "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-FOO:1", "\u00a0", "#EXTINF:2,"]


def random_playlist(rng: random.Random) -> bytes:
    lines = ["#EXTM3U"] if rng.random() < 0.97 else [rng.choice(["#EXTM3U ", "", "#EXTM3U:1"])]
    if rng.random() < 0.9:
        lines.append("#EXT-X-TARGETDURATION:%s" % rng.choice(["4"] * 7 + ["1", "0", "10"]))
    byte_at = 0
    for _ in range(rng.randrange(6)):
        block: List[str] = []
        if rng.random() < 0.2:
            block.append("#EXT-X-DISCONTINUITY")
        if rng.random() < 0.15:
            block.append(rng.choice(EXTRA[8:11]))
        if rng.random() < 0.3:
            length = rng.randrange(1, 300)
            block.append("#EXT-X-BYTERANGE:%d%s" % (length, "" if rng.random() < 0.4 else "@%d" % byte_at))
            byte_at += length
        if rng.random() < 0.1:
            block.append(rng.choice(EXTRA))
        duration = rng.choice(DURATIONS[:7] if rng.random() < 0.8 else DURATIONS)
        block.append("#EXTINF:%s,%s" % (duration, rng.choice(["", "t", "a,b", "\u00e9"])))
        rng.shuffle(block)
        block.append(rng.choice(URIS[:7]) if rng.random() < 0.7 else rng.choice(URIS))
        lines += block
    if rng.random() < 0.6:
        lines.append("#EXT-X-ENDLIST")
    newline = rng.choice(["\n"] * 15 + ["\r\n"] * 4 + ["\r"])
    return (newline.join(lines) + rng.choice([newline, ""])).encode()


def test_hlsjs_reads_random_accepted_playlists_as_segbind_does() -> None:
    rng = random.Random(20261204)
    corpus = [random_playlist(rng) for _ in range(3000)]
    readings = hlsjs(corpus)
    accepted = 0
    for raw, theirs in zip(corpus, readings):
        ours = segbind_reads(raw)
        if ours is not None:
            accepted += 1
            assert theirs == as_hlsjs_reads(ours), raw
    assert accepted >= 300, accepted  # enough of them are accepted for the comparison to mean something


# -- FFmpeg's own reading: the requests it makes -------------------------------------------------

@contextlib.contextmanager
def recording_server(media: bytes) -> Iterator[Tuple[str, Dict[str, bytes], List[Tuple[str, Optional[str]]]]]:
    """An HTTP server on a free loopback port (yields "127.0.0.1:PORT") that serves the playlists
    put in its dict and, for any other path, ``media`` (or the range asked of it), recording
    each request's path (with its query) and Range header ("PLAYLIST" for a playlist)."""
    playlists: Dict[str, bytes] = {}
    requests: List[Tuple[str, Optional[str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body, status = playlists.get(self.path), 200
            headers: Dict[str, str] = {}
            asked = self.headers.get("Range")
            requests.append((self.path, "PLAYLIST" if body is not None else asked))
            if body is None:
                body = media
                if asked:
                    first, _, last = asked[len("bytes="):].partition("-")
                    start, stop = int(first), (int(last) + 1 if last else len(media))
                    body, status = media[start:stop], 206
                    headers["Content-Range"] = "bytes %d-%d/%d" % (start, start + len(body) - 1, len(media))
                    if not body:
                        body, status, headers = b"", 416, {}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1:%d" % server.server_address[1], playlists, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


PlaylistText = Callable[[str], bytes]  # the playlist served, given the server's "127.0.0.1:PORT"


def ffmpeg_requests(build: PlaylistText, media: bytes) -> Tuple[str, Dict[str, List[Tuple[str, Optional[str]]]]]:
    """The requests FFmpeg makes reading the playlist ``build`` gives, served at /cam/live.m3u8:
    Debian's ffmpeg 5.1 (CLI) and PyAV's FFmpeg; with the server's host."""
    out = {}
    with recording_server(media) as (host, playlists, requests):
        playlists["/cam/live.m3u8"] = build(host)
        url = "http://%s/cam/live.m3u8" % host
        subprocess.run([FFMPEG, "-v", "error", "-http_persistent", "0", "-http_multiple", "0",
                        "-m3u8_hold_counters", "2", "-i", url, "-c", "copy", "-f", "null", "-"],
                       capture_output=True, timeout=120)
        out["ffmpeg " + subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout.split()[2]] = \
            list(requests)
        requests[:] = []
        with contextlib.suppress(av.FFmpegError):
            with av.open(url, options={"http_persistent": "0", "http_multiple": "0", "m3u8_hold_counters": "2"}) \
                    as container:
                for _packet in container.demux():
                    pass
        out["PyAV's FFmpeg %s" % av.ffmpeg_version_info] = list(requests)
    return host, out


def expected_requests(playlist: MediaPlaylist, host: str) -> List[Tuple[str, Optional[str]]]:
    """The requests segbind's reading makes FFmpeg send: the playlist, each init section when it
    changes (hls.c update_init_section), then each segment with its Range (all of it: bytes=0-)."""

    def request(where: Tuple[str, int, Optional[int]]) -> Tuple[str, Optional[str]]:
        uri, offset, length = where
        prefix = "http://" + host
        assert uri.startswith(prefix + "/"), uri
        return uri[len(prefix):], "bytes=%d-%s" % (offset, "" if length is None else offset + length - 1)

    out: List[Tuple[str, Optional[str]]] = [("/cam/live.m3u8", "PLAYLIST")]
    init = None
    for segment in playlist.segments:
        if segment.init is not None and segment.init != init:
            out.append(request(segment.init))
        init = segment.init
        out.append(request(segment.media))
    return out


@pytest.fixture(scope="module")
def ts_media(written: Path) -> bytes:
    return (written / "ffmpeg-mpegts-single" / "p.ts").read_bytes()


def with_host(raw: bytes) -> PlaylistText:
    return lambda host: raw.replace(b"HOST", host.encode())


FFMPEG_AGREES: List[PlaylistText] = [
    with_host(text("#EXTINF:1,", "#EXT-X-BYTERANGE:2000@0", "all.ts", "#EXT-X-BYTERANGE:1504", "#EXTINF:1,", "all.ts",
                   "#EXTINF:1,", "s/b.ts?q=1&r=2", "#EXTINF:1,", "/x/c.ts", "#EXTINF:1,", "//HOST/y/d.ts",
                   "#EXTINF:1,", "http://HOST/z/e.ts", "#EXTINF:1,", "a//f.ts", "#EXTINF:1,", "%41g.ts",
                   "#EXTINF:1,", "h.ts?")),
    with_host(b"#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n# comment\r\n#EXT-X-KEY:METHOD=NONE\r\n"
              b"#EXT-X-START:TIME-OFFSET=0\r\n#EXTINF:1,Caf\xc3\xa9\r\n"
              b"#EXT-X-PROGRAM-DATE-TIME:2026-12-04T16:00:19.262+0000\r\na.ts\r\n#EXT-X-DISCONTINUITY\r\n"
              b"#EXTINF:1,\r\nb.ts\r\n#EXT-X-ENDLIST"),
    with_host(text('#EXT-X-MAP:URI="init.ts",BYTERANGE="376@0"', "#EXTINF:1,", "#EXT-X-BYTERANGE:1880@376", "one.ts",
                   "#EXT-X-BYTERANGE:940", "#EXTINF:1,", "one.ts", '#EXT-X-MAP:URI="/i/two.ts"', "#EXTINF:1,",
                   "two.ts")),
]


@pytest.mark.parametrize("index", range(len(FFMPEG_AGREES)))
def test_ffmpeg_requests_what_segbind_reads(index: int, ts_media: bytes) -> None:
    host, got = ffmpeg_requests(FFMPEG_AGREES[index], ts_media)
    ours = parse(FFMPEG_AGREES[index](host), "http://%s/cam/live.m3u8" % host)
    for name, requests in got.items():
        assert requests == expected_requests(ours, host), name


def long_line(host: str) -> bytes:
    """A segment URL longer than FFmpeg's 4095-byte lines: its first 4095 bytes end in ".ts"."""
    start = "http://%s/cam/" % host
    return text("#EXTINF:1,", start + "a" * (4095 - len(start) - 3) + ".ts" + "b" * 100)


# Texts FFmpeg reads otherwise than RFC 8216 and hls.js: the exact requests it makes, all but
# the playlist's, and what the others read (segbind refuses every one).
FFMPEG_DIFFERS: List[Tuple[str, PlaylistText, Callable[[str], List[Tuple[str, Optional[str]]]]]] = [
    ("RFC: undefined; hls.js: the same", with_host(text(
        "#EXTINF:1,", "#EXT-X-BYTERANGE:2000@0", "a.ts", "#EXTINF:1,", "#EXT-X-BYTERANGE:940", "b.ts")),
     lambda host: [("/cam/a.ts", "bytes=0-1999"), ("/cam/b.ts", "bytes=2000-2939")]),
    ("hls.js: a.ts and b.ts", with_host(text("#EXTINF:1,", "a.ts", "b.ts")), lambda host: [("/cam/a.ts", "bytes=0-")]),
    ("hls.js: one URI holding a NUL", with_host(text("#EXTINF:1,", "a.ts\x00b.ts")),
     lambda host: [("/cam/a.ts", "bytes=0-")]),
    ("hls.js: the whole URL", long_line, lambda host: [("/cam/" + "a" * (4095 - len("http://%s/cam/" % host) - 3)
                                                       + ".ts", "bytes=0-")]),
    ("hls.js: i\\\"n.ts, a backslash", with_host(text('#EXT-X-MAP:URI="i\\"n.ts"', "#EXTINF:1,", "a.ts")),
     lambda host: [("/cam/i%22n.ts", "bytes=0-"), ("/cam/a.ts", "bytes=0-")]),
    ("hls.js: a.ts", with_host(b"\xef\xbb\xbf" + text("#EXTINF:1,", "a.ts")), lambda host: []),
    ("hls.js: ended, never reloaded",
     with_host(b"#EXTM3U\n#EXT-X-ENDLIST\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n"),
     lambda host: [("/cam/a.ts", "bytes=0-"), ("/cam/live.m3u8", "PLAYLIST")]),  # reloaded: live to FFmpeg
]


@pytest.mark.parametrize("index", range(len(FFMPEG_DIFFERS)), ids=[d[0] for d in FFMPEG_DIFFERS])
def test_ffmpeg_reads_these_otherwise_and_segbind_refuses_them(index: int, ts_media: bytes) -> None:
    _, build, expected = FFMPEG_DIFFERS[index]
    host, got = ffmpeg_requests(build, ts_media)
    assert segbind_reads(build(host), "http://%s/cam/live.m3u8" % host) is None
    for name, requests in got.items():
        first = requests[:1] == [("/cam/live.m3u8", "PLAYLIST")]
        assert first and requests[1:] == expected(host), (name, requests)


def test_ffmpeg_reads_a_local_playlist_as_segbind_does(written: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    source = written / "ffmpeg-mpegts" / "p0.ts"
    for name in ("sub/a.ts", "b.ts", "all.ts"):
        (tmp_path / name).write_bytes(source.read_bytes())
    size = source.stat().st_size
    raw = text("#EXTINF:1,", "sub/a.ts", "#EXTINF:1,", "#EXT-X-BYTERANGE:%d@0" % (size // 188 // 2 * 188), "all.ts",
               "#EXTINF:1,", "#EXT-X-BYTERANGE:%d" % (size - size // 188 // 2 * 188), "all.ts", "#EXTINF:1,", "b.ts")
    (tmp_path / "p.m3u8").write_bytes(raw)
    ours = parse(raw, str(tmp_path / "p.m3u8"))
    log = subprocess.run([FFMPEG, "-v", "verbose", "-i", str(tmp_path / "p.m3u8"), "-c", "copy", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120).stderr
    theirs = re.findall(r"HLS request for url '([^']*)', offset (\d+)", log)
    assert theirs == [(s.media[0], str(s.media[1])) for s in ours.segments]


# -- robustness: only InputError, in linear time ---------------------------------------------------

LINE_PIECES = [f for f in EXTRA + URIS + ["#EXTINF:%s," % d for d in DURATIONS]] + [
    "#EXT-X-BYTERANGE:10", "#EXT-X-BYTERANGE:10@0", "#EXTM3U", '#EXT-X-MAP:URI="a\\"b"', "#EXT-X-KEY:METHOD=AES-128",
    '#EXT-X-START:TIME-OFFSET=1,TIME-OFFSET=2', "#EXT-X-TARGETDURATION:4", "#EXT-X-TARGETDURATION:x", "{$a}",
    '#EXT-X-MAP:URI=""', '#EXT-X-MAP:URI="//"', '#EXT-X-MAP:URI="http://[::1"', "//", "?x", "http:///a.ts"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(LINE_PIECES), st.text(max_size=30)), max_size=30),
       st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.sampled_from([LOCATION, "/tmp/x/p.m3u8"]),
       st.binary(max_size=8))
def test_any_playlist_is_read_or_refused_with_input_error(lines: List[str], newline: str, header: bool,
                                                          location: str, noise: bytes) -> None:
    raw = newline.join((["#EXTM3U"] if header else []) + lines).encode("utf-8", "surrogatepass") + noise
    try:
        playlist = parse_media_playlist(raw, location)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    for i, segment in enumerate(playlist.segments):
        assert segment.sequence == playlist.media_sequence + i and segment.duration_s > 0
        uri, offset, length = segment.media
        assert offset >= 0 and (length is None or length > 0)
        assert uri.startswith(("http://", "https://")) if location == LOCATION else uri.startswith("/")
        assert round(segment.duration_s) <= playlist.target_duration_s + 1


def profile_events(work: Callable[[], object]) -> int:
    """Python and C function calls made by ``work``: a count, not a time."""
    count = 0

    def tally(frame: object, event: str, arg: object) -> None:
        nonlocal count
        count += 1

    sys.setprofile(tally)
    try:
        with contextlib.suppress(InputError):
            work()
    finally:
        sys.setprofile(None)
    return count


def fill(unit: bytes, size: int, head: bytes = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n") -> bytes:
    return head + unit * ((size - len(head)) // len(unit))


@pytest.mark.parametrize("name, build", [
    ("segments with byte ranges continuing one another", lambda size: fill(
        b"#EXTINF:1,\n#EXT-X-BYTERANGE:100\nall.ts\n", size,
        b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:1,\n#EXT-X-BYTERANGE:100@0\nall.ts\n")),
    ("segments with titles, maps and discontinuities", lambda size: fill(
        b'#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="i.mp4",BYTERANGE="10@0"\n#EXTINF:1.5,title\ns/a.ts?q=1\n', size)),
    ("blank lines", lambda size: fill(b"\n", size)),
    ("comments", lambda size: fill(b"# c\r\n", size)),
    ("one long line", lambda size: b"#EXTM3U\n" + b"a" * (size - 8)),
    ("variable-like braces", lambda size: fill(b"#{$a{$", size)),
    ("a master playlist", lambda size: fill(b"#EXT-X-STREAM-INF:BANDWIDTH=1\n", size)),
])
def test_parsing_work_grows_linearly_up_to_a_4_mib_playlist(name: str, build: Callable[[int], bytes]) -> None:
    small, large = build(MAX_PLAYLIST_BYTES // 4), build(MAX_PLAYLIST_BYTES)
    assert len(large) <= MAX_PLAYLIST_BYTES
    calls_small = profile_events(lambda: parse(small))
    calls_large = profile_events(lambda: parse(large))
    assert calls_large <= 4.2 * calls_small + 1000, (calls_small, calls_large)


# -- the live playlist tracker ---------------------------------------------------------------------

def window(first: int, count: int, ended: bool = False, target: int = 4, kind: Optional[str] = None,
           names: Callable[[int], str] = "s%d.ts".__mod__, head: Sequence[str] = ()) -> MediaPlaylist:
    lines = list(head) + ["#EXT-X-MEDIA-SEQUENCE:%d" % first] + (["#EXT-X-PLAYLIST-TYPE:" + kind] if kind else [])
    for n in range(first, first + count):
        lines += ["#EXTINF:1,", names(n)]
    return parse(text(*lines, target=target, end=ended))


def sequences(segments: Sequence[MediaSegment]) -> List[int]:
    return [s.sequence for s in segments]


def test_the_tracker_hands_out_each_segment_once_and_the_ones_missed() -> None:
    tracker = PlaylistTracker(LOCATION)
    assert sequences(tracker.update(window(0, 3)).new) == [0, 1, 2]
    assert tracker.update(window(0, 3)) == ((), range(0), False)     # nothing new
    update = tracker.update(window(1, 3))
    assert sequences(update.new) == [3] and not update.missed
    assert sequences(tracker.update(window(1, 5)).new) == [4, 5]      # a window may grow
    update = tracker.update(window(9, 3))                              # polled too slowly: 6, 7, 8 left unseen
    assert sequences(update.new) == [9, 10, 11] and list(update.missed) == [6, 7, 8]
    update = tracker.update(window(10, 3, ended=True))
    assert sequences(update.new) == [12] and update.ended
    assert tracker.update(window(10, 3, ended=True)) == ((), range(0), True)
    # A first version is taken whole, wherever its window starts; an empty live one too.
    assert sequences(PlaylistTracker(LOCATION).update(window(40, 2)).new) == [40, 41]
    tracker = PlaylistTracker(LOCATION)
    assert tracker.update(window(5, 0)).new == ()
    assert sequences(tracker.update(window(5, 2)).new) == [5, 6]


def discontinuous(first: int, count: int, sequence: Optional[int] = None, at: int = 2) -> MediaPlaylist:
    """A window of media sequence numbers first.., a discontinuity before segment ``at``."""
    lines = ["#EXT-X-MEDIA-SEQUENCE:%d" % first]
    if sequence is not None:
        lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:%d" % sequence)
    for n in range(first, first + count):
        lines += (["#EXT-X-DISCONTINUITY"] if n == at else []) + ["#EXTINF:1,", "s%d.ts" % n]
    return parse(text(*lines, end=False))


@pytest.mark.parametrize("before, after, why", [
    (window(5, 3), window(4, 3), "EXT-X-MEDIA-SEQUENCE went down from 5 to 4"),
    (window(5, 3), window(0, 2), "went down"),
    (window(0, 3), window(1, 3, names=lambda n: "x%d.ts" % n),
     "media sequence 1 changed from http://127.0.0.1:8000/cam/s1.ts discontinuity sequence 0 to "
     "http://127.0.0.1:8000/cam/x1.ts discontinuity sequence 0"),
    (parse(text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@0", "a.ts", end=False)),
     parse(text("#EXTINF:1,", "#EXT-X-BYTERANGE:10@5", "a.ts", end=False)), "a.ts [10@0] discontinuity"),
    (window(0, 2, head=['#EXT-X-MAP:URI="i.mp4"']), window(0, 2, head=['#EXT-X-MAP:URI="j.mp4"']), "(map"),
    # A discontinuity that left the window without EXT-X-DISCONTINUITY-SEQUENCE counting it: hls.js
    # refuses it too (level-helper.ts, "discontinuity sequence mismatch").
    (discontinuous(0, 4), discontinuous(3, 3, at=99), "media sequence 3 changed"),
    (window(0, 3, ended=True), window(0, 3), "it had ended (EXT-X-ENDLIST) and is no longer ended"),
    (window(0, 3, ended=True), window(0, 4, ended=True), "it changed after it ended"),
    (window(0, 3), window(1, 3, target=6), "EXT-X-TARGETDURATION changed from 4 to 6"),
    (window(0, 3, kind="EVENT"), window(1, 3, kind="EVENT"), "an EVENT playlist removed segments"),
    (window(0, 3, kind="EVENT"), window(0, 4), "EXT-X-PLAYLIST-TYPE changed from EVENT to None"),
    (window(0, 5), window(0, 3), "it ends before media sequence 4, which it listed before"),
    (discontinuous(0, 2, sequence=3), discontinuous(2, 2, sequence=1), "EXT-X-DISCONTINUITY-SEQUENCE went down"),
    (discontinuous(0, 4, sequence=0, at=2), discontinuous(9, 2, sequence=0, at=99),
     "discontinuity sequence 0 at media sequence 9, after 1"),
])
def test_a_playlist_that_moves_backwards_is_refused_in_one_line(before: MediaPlaylist, after: MediaPlaylist,
                                                                why: str) -> None:
    tracker = PlaylistTracker(LOCATION)
    tracker.update(before)
    with pytest.raises(PlaylistMovedBackwards) as caught:
        tracker.update(after)
    message = str(caught.value)
    assert message.startswith(LOCATION + ": the live playlist moved backwards: ") and "\n" not in message
    assert why in message, message
    assert isinstance(caught.value, InputError)
    assert tracker.latest is before  # the refused version is not taken


def test_a_discontinuity_leaving_the_window_increments_the_discontinuity_sequence() -> None:
    tracker = PlaylistTracker(LOCATION)
    tracker.update(discontinuous(0, 4))
    update = tracker.update(discontinuous(3, 3, sequence=1, at=99))  # s2 and its discontinuity left
    assert sequences(update.new) == [4, 5] and [s.discontinuity_sequence for s in update.new] == [1, 1]


def test_the_tracker_remembers_one_window_whatever_the_number_of_versions() -> None:
    def peak(versions: int) -> int:
        tracker = PlaylistTracker(LOCATION)
        tracemalloc.start()
        for n in range(versions):
            update = tracker.update(window(n, 6))
            assert sequences(update.new) == ([n + 5] if n else list(range(6)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short, long = peak(50), peak(1000)
    assert long < short * 1.2 + 16384, (short, long)
