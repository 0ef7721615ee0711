"""The browser's fMP4 reader (src/segbind/web/segbind-mp4.js) against segbind.read.mp4 under Node:
the same real files (PyAV, the ffmpeg CLI, its HLS muxer; H.264 and H.265; audio; CENC), the same
refused muxer outputs, every mutation of tests/support/mp4_boxes.py and seeded random mutants, read
by both: the same track, the same samples (bytes, times, flags, encryption), the same refusals,
text for text. Its own tests (tests/web/mp4.test.mjs) run under ``node --test``.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from segbind.errors import InputError
from segbind.read.events import Defect, Sample, TrackInfo
from segbind.read.mp4 import mp4_events
from tests.support import ROOT
from tests.support.mp4_boxes import MUTATIONS, REFUSED_REAL, as_cbcs, real_files
from tests.support.web import fmp4_chunks as chunks
from tests.support.web import run_node

MODULE = ROOT / "src" / "segbind" / "web" / "segbind-mp4.js"

# Node reads each case's chunks (files) in turn: the first through init(), the rest through
# fragment(), and prints the events as the Python side does below.
HARNESS = """
import fs from "node:fs";
import crypto from "node:crypto";
import { Mp4Reader } from %(module)s;
const hex = (b) => Buffer.from(b).toString("hex");
const cases = JSON.parse(fs.readFileSync(%(cases)s, "utf8"));
const out = {};
for (const c of cases) {
  const reader = new Mp4Reader();
  const events = [];
  c.chunks.forEach((file, k) => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    for (const e of (k === 0 ? reader.init(bytes) : reader.fragment(bytes))) {
      if (e.type === "sample") {
        if (e.data.buffer !== bytes.buffer) throw new Error("a sample's data is a copy");
        events.push(["sample", e.data.length, crypto.createHash("sha256").update(e.data).digest("hex"), e.pts,
                     e.dts, e.duration, e.hidden, e.sync, hex(e.iv), e.subsamples]);
      } else if (e.type === "track") {
        const p = e.protection;
        events.push(["track", e.codec, e.codecName, e.lengthSize, e.configUnits.map(hex), e.timescale, e.others,
                     e.otherVideo, p && [p.scheme, hex(p.defaultKid), p.ivSize, hex(p.constantIv), p.cryptByteBlock,
                                         p.skipByteBlock]]);
      } else if (e.type === "defect") {
        events.push(["defect", e.text, e.reason, e.fatal]);
      } else {
        events.push(["error", e.text]);
      }
    }
  });
  out[c.name] = events;
}
process.stdout.write(JSON.stringify(out));
"""


def python_events(data: bytes) -> List[List[Any]]:
    """segbind.read.mp4's events over the whole stream (as a pipe), in the harness's terms."""
    out: List[List[Any]] = []
    try:
        for e in mp4_events(io.BytesIO(data), "input", seekable=False):
            if isinstance(e, Sample):
                subsamples = [list(p) for p in e.subsamples] if e.subsamples is not None else None
                out.append(["sample", len(e.data), hashlib.sha256(e.data).hexdigest(), e.pts, e.dts, e.duration,
                            e.hidden, e.sync, e.iv.hex(), subsamples])
            elif isinstance(e, TrackInfo):
                p = e.protection
                out.append(["track", e.codec, e.codec_name, e.length_size, [u.hex() for u in e.config_units],
                            e.timescale, list(e.others), e.other_video,
                            p and [p.scheme, p.default_kid.hex(), p.iv_size, p.constant_iv.hex(), p.crypt_byte_block,
                                   p.skip_byte_block]])
            else:
                assert isinstance(e, Defect)
                out.append(["defect", e.text, e.reason, e.fatal])
    except InputError as exc:
        out.append(["error", str(exc)[len("input: "):]])
    return out


def agree(cases: Dict[str, List[bytes]], tmp_path: Path) -> Dict[str, List[List[Any]]]:
    """Both readers over every case; asserts they agree event for event and returns the events."""
    listing = []
    for n, (name, parts) in enumerate(sorted(cases.items())):
        files = []
        for k, part in enumerate(parts):
            path = tmp_path / ("case%d-%d.bin" % (n, k))
            path.write_bytes(part)
            files.append(str(path))
        listing.append({"name": name, "chunks": files})
    (tmp_path / "cases.json").write_text(json.dumps(listing))
    script = HARNESS % {"module": json.dumps(MODULE.as_uri()), "cases": json.dumps(str(tmp_path / "cases.json"))}
    proc = run_node("--input-type=module", "-e", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    js = json.loads(proc.stdout)
    py = {name: python_events(b"".join(parts)) for name, parts in cases.items()}
    differ = {}
    for name in py:
        if py[name] != js.get(name):
            first = next((k for k, (a, b) in enumerate(zip(py[name], js.get(name) or [])) if a != b),
                         min(len(py[name]), len(js.get(name) or [])))
            differ[name] = {"at": first, "python": py[name][first:first + 2], "javascript": (js.get(name) or [])[
                first:first + 2]}
    assert not differ, "the readers differ: %s" % json.dumps(differ, indent=1)[:6000]
    return py


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return real_files(tmp_path_factory.mktemp("mp4-corpus"))


FRAGMENTED = ["fmp4-pyav-bframes", "fmp4-pyav-hev1-bframes", "fmp4-pyav-cenc", "fmp4-ffmpeg",
              "fmp4-ffmpeg-hvc1-audio", "fmp4-hls-x264-bframes", "fmp4-hls-hev1"]


def test_node_tests_of_the_reader_pass() -> None:
    suite = ROOT / "tests" / "web" / "mp4.test.mjs"
    proc = run_node("--test", "--test-reporter=tap", str(suite))
    expected = str(suite.read_text().count("\ntest("))
    counts = dict(re.findall(r"^# (pass|fail|tests) (\d+)$", proc.stdout, re.M))
    assert counts == {"tests": expected, "pass": expected, "fail": "0"}, proc.stdout[-3000:]
    assert proc.returncode == 0


def test_real_files_read_alike(corpus: Dict[str, Path], tmp_path: Path) -> None:
    cases = {name: chunks(corpus[name].read_bytes()) for name in FRAGMENTED + sorted(REFUSED_REAL)}
    assert all(len(parts) > 2 for parts in cases.values())  # an init segment and media segments
    cases["cbcs 1:9 (the CENC file's sample entry rewritten)"] = chunks(as_cbcs(corpus["fmp4-pyav-cenc"].read_bytes()))
    events = agree(cases, tmp_path)
    assert events["cbcs 1:9 (the CENC file's sample entry rewritten)"][0][-1][:1] == ["cbcs"]
    for name in FRAGMENTED:
        assert events[name][0][0] == "track" and not [e for e in events[name] if e[0] != "sample"][1:]
        assert len(events[name]) > 40
    for name, refusal in REFUSED_REAL.items():
        assert any(e[0] == "defect" and refusal in e[1] for e in events[name]), events[name][:3]


def test_every_mutation_is_refused_alike(corpus: Dict[str, Path], tmp_path: Path) -> None:
    cases = {}
    for name, mutation in MUTATIONS.items():
        if mutation.base.startswith("fmp4"):
            cases[name] = chunks(mutation.change(corpus[mutation.base].read_bytes()))
    events = agree(cases, tmp_path)
    for name, found in events.items():
        refusal = MUTATIONS[name].refusal
        assert any(e[0] in ("defect", "error") and refusal in e[1] for e in found), (name, found[:3])


def _mutant(data: bytes, rng: random.Random) -> bytes:
    """A few random changes, most in the index boxes (where readers differ), some anywhere."""
    out = bytearray(data)
    structure = [k for k in range(len(data) - 8) if data[k + 4:k + 8] in (
        b"moov", b"trak", b"moof", b"traf", b"tfhd", b"tfdt", b"trun", b"senc", b"saiz", b"saio", b"elst", b"mdat",
        b"stsd", b"avcC", b"hvcC", b"trex", b"tenc")]
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.6 and structure:
            at = rng.choice(structure) + rng.randint(0, 40)
        else:
            at = rng.randrange(len(out))
        if at >= len(out):
            continue
        if choice < 0.8:
            out[at] ^= 1 << rng.randrange(8)
        else:
            out[at] = rng.choice([0, 1, 0xFF, 0x7F, 0x80])
    if rng.random() < 0.15:
        del out[rng.randrange(len(out)):]
    return bytes(out)


def test_random_mutants_read_alike(corpus: Dict[str, Path], tmp_path: Path) -> None:
    """Seeded mutants of every fragmented file, each given whole (init() then its fragments, in
    one call: exactly the bytes Python reads as one stream)."""
    rng = random.Random(20261204)
    cases = {}
    for name in FRAGMENTED:
        data = corpus[name].read_bytes()
        for k in range(60):
            cases["%s #%d" % (name, k)] = [_mutant(data, rng)]
    events = agree(cases, tmp_path)
    kinds = {e[0][0] if e else "none" for e in events.values()}
    assert {"track", "error"} <= kinds  # some mutants read, some refused whole
    assert any(any(e[0] == "defect" for e in found) for found in events.values())
