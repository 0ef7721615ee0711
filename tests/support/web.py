"""Shared pieces of the web tests: running the JavaScript verifier under Node on cases made in
Python (tests/web/harness.mjs), the Python verifier on the same cases, and the keyrings,
cases and fMP4 chunks they are made of."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

from host_sim import clips
from segbind import Binding, Epoch, Keyring, StreamVerifier, TimeWindow
from segbind.errors import InputError
from segbind.keyring import EpochName
from segbind.read.annexb import annexb_segments
from segbind.read.containers import container_segments
from segbind.read.events import TrackInfo
from segbind.read.mp4 import mp4_events
from segbind.verifier import Accepted
from segbind.write import remux_annexb
from segbind_core.nal import START_CODE, annexb_units
from segbind_core.segment import Segment, Segmenter
from segbind_core.sei import tag_codec
from segbind_core.tagger import Tagger
from tests.support import ROOT, run_cli
from tests.support.media import ffmpeg
from tests.support.tagged import PAIRING_CAM2, PAIRING_EVE, T0, epoch

NODE = shutil.which("node") or "node"
HARNESS = ROOT / "tests" / "web" / "harness.mjs"


def run_node(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# The periods the tests' keyrings hold: from an hour before T0 (the tests' capture times) to a few
# hours after (every stream, recording and clip of the tests is captured in between).
GRANT_FROM_MS, GRANT_TO_MS = T0 - 3_600_000, T0 + 4 * 3_600_000


def grant(ep: Epoch, holder: Optional[str] = None, from_ms: int = GRANT_FROM_MS,
          to_ms: int = GRANT_TO_MS) -> List[dict]:
    """``holder``'s period grants of ``ep`` (its slot; the owner's by default) for every period
    holding a capture time in [from_ms, to_ms), as keyring files hold them (segbind.Binding)."""
    return [b.to_json() for b in Binding.periods_of_epoch(ep, from_ms, to_ms, holder)]


# The viewers of the tests' streams (tests.support.tagged): alice (her two cameras, two epochs),
# bob (a share of cam-1) and eve (a stranger: her own camera only).
RINGS = {
    "alice": lambda: grant(epoch()) + grant(epoch(camera="cam-2", pairing=PAIRING_CAM2, shares=()))
    + grant(epoch(number=2)),
    "bob": lambda: grant(epoch(), "bob"),
    "eve": lambda: grant(epoch(owner="eve", pairing=PAIRING_EVE, shares=())),
}


def case(name: str, inputs: List[dict], ring: str = "alice", **options: Any) -> dict:
    """A ``verdicts`` case: ``inputs`` given to a StreamVerifier holding ``ring``'s grants
    (options: camera, owner, window, now, recording, revoked; details: True for every verdict's
    text, or the reasons whose texts are compared; plaintext: True for a digest of what each
    accepted segment decrypts to)."""
    return dict(name=name, keyring=RINGS[ring](), inputs=inputs, now=options.pop("now", T0 / 1000 + 10),
                **options)


def annexb(*segments: bytes) -> List[dict]:
    return [{"annexb": s.hex()} for s in segments]


def fmp4_chunks(data: bytes) -> List[bytes]:
    """A fragmented MP4 as HLS or DASH delivers it: the init segment (to its 'moov'), then media
    segments; a 'moof' always with the box after it. A stream that does not parse is one chunk."""
    pos, cuts, moov_seen = 0, [0], False
    kinds = []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if size < 8:
            return [data]
        kinds.append((kind, pos, pos + size))
        pos += size
    if pos != len(data):
        return [data]
    for k, (kind, start, end) in enumerate(kinds):
        if kind == b"moov" and not moov_seen:
            moov_seen = True
            cuts.append(end)
        elif moov_seen and k > 0 and kinds[k - 1][0] == b"moof":
            cuts.append(end)
    cuts = sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    return [data[a:b] for a, b in zip([0] + cuts[:-1], cuts)] if moov_seen else [data]


# Camera streams the gate is tested on: B-frames, several slices per picture, the encoder's own
# delimiters; H.265 with RADL pictures (host_sim.clips kinds).
CAMERA_KINDS = {"h264": "pyav-bframes-slices-aud", "h265": "x265-pyav-bframes-radl-slices-aud"}


@lru_cache(maxsize=None)
def tagged(kind: str) -> bytes:
    """A clip of ``kind`` cut and tagged as alice's camera cam-1 does (tests.support.tagged's
    epoch), each segment's capture time where the previous one ended."""
    segmenter = Segmenter(delimit=True)
    segments = segmenter.push(clips.make_kind(kind)) + segmenter.finish()
    tagger = Tagger(epoch(), T0, codec=segmenter.codec)
    out, at = bytearray(), T0
    for segment in segments:
        if isinstance(segment, Segment):
            out += tagger.tag(segment.data, segment.units, at, segment.duration_ms, segment.pictures)[0]
            at += segment.duration_ms
    return bytes(out)


def segments_of(stream: bytes) -> List[bytes]:
    """The tagged segments of a tagged Annex-B stream, as the camera emitted them."""
    cuts = [s - 4 for s, e in annexb_units(stream) if tag_codec(memoryview(stream)[s:e])]
    starts = [stream.rfind(START_CODE, 0, c) for c in cuts]  # each segment begins at the delimiter before its tag
    return [stream[a:b] for a, b in zip(starts, starts[1:] + [len(stream)])]


def _tagged_file(kind: str, work: Path) -> Path:
    path = work / ("tagged-%s.es" % kind)
    if not path.exists():
        path.write_bytes(tagged(kind))
    return path


def owner_remux(kind: str, work: Path) -> Path:
    """The owner's MP4 of the tagged stream (segbind.write: timestamps from the picture order)."""
    path = work / ("own-%s.mp4" % kind)
    if not path.exists():
        remux_annexb(str(_tagged_file(kind, work)), str(path), "mp4")
    return path


def segbind_hls_of(kind: str, work: Path) -> Path:
    """``segbind hls --type fmp4 --segment-duration 1`` of the tagged stream: its playlist."""
    out = work / ("segbind-hls-%s" % kind)
    if not out.exists():
        out.mkdir()
        result = run_cli("hls", "--type", "fmp4", "--segment-duration", "1", str(_tagged_file(kind, work)),
                         str(out / "live.m3u8"))
        assert result.returncode == 0, result.stderr
    return out / "live.m3u8"


def ffmpeg_hls_of(kind: str, work: Path) -> Path:
    """ffmpeg's own HLS fMP4 of the owner's MP4 (``-c copy -f hls -hls_segment_type fmp4``): its playlist."""
    out = work / ("ffmpeg-hls-%s" % kind)
    if not out.exists():
        out.mkdir()
        ffmpeg("-i", str(owner_remux(kind, work)), "-c", "copy", "-f", "hls", "-hls_segment_type", "fmp4",
               "-hls_time", "1", "-hls_playlist_type", "vod", str(out / "index.m3u8"))
    return out / "index.m3u8"


def hls_chunks(playlist: Path) -> List[bytes]:
    """An fMP4 media playlist's init segment (its one EXT-X-MAP), then its media segments in order."""
    lines = playlist.read_text().splitlines()
    maps = [line.split('URI="', 1)[1].split('"', 1)[0] for line in lines if line.startswith("#EXT-X-MAP:")]
    assert len(maps) == 1, maps
    media = [line for line in lines if line and not line.startswith("#")]
    return [(playlist.parent / name).read_bytes() for name in maps + media]


def fmp4_inputs(init: bytes, *fragments: bytes) -> List[dict]:
    """A case's inputs: the init segment, then each fragment through the gate."""
    return [{"init": init.hex()}] + [{"fragment": f.hex()} for f in fragments]


def js_results(mode: str, cases: List[Dict[str, Any]], tmp_path: Path) -> Dict[str, List[str]]:
    """What the JavaScript side says of each case (harness.mjs ``verdicts`` or ``grants``)."""
    path = tmp_path / ("%s-cases.json" % mode)
    path.write_text(json.dumps(cases))
    proc = run_node(str(HARNESS), mode, str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def agree(cases: List[dict], tmp_path: Path) -> Dict[str, List[str]]:
    """Both verifiers' verdicts on every case; asserts they are the same and returns them."""
    assert len({c["name"] for c in cases}) == len(cases)
    js = js_results("verdicts", cases, tmp_path)
    py = {c["name"]: python_verdicts(c) for c in cases}
    differ = {name: (py[name], js.get(name)) for name in py if py[name] != js.get(name)}
    assert not differ, "verdicts differ (python, javascript): %s" % json.dumps(differ, indent=1)[:4000]
    return py


def _init_readable(init: bytes) -> bool:
    """Whether segbind.read.mp4 reads an init segment alone as a video track (the gate's init())."""
    try:
        for event in mp4_events(io.BytesIO(init), "init", seekable=False):
            if isinstance(event, TrackInfo):
                return True
    except InputError:
        return False
    return False


def python_verdicts(case: Dict[str, Any]) -> List[str]:
    """The Python verifier's reasons for a ``verdicts`` case, in the harness's terms (fragments
    read with the container reader, each as the init segment followed by that fragment; "pass"
    when every segment of a fragment is accepted)."""
    keyring = Keyring([Binding.from_json(g) for g in case["keyring"]])
    for owner, epoch_id in case.get("revoked", []):
        keyring.mark_revoked(EpochName(owner, bytes.fromhex(epoch_id)))
    window = case.get("window")
    verifier = StreamVerifier(keyring, camera=case.get("camera"), owner=case.get("owner"),
                              recording=case.get("recording", False),
                              window=TimeWindow(window["maxAgeS"], window["maxFutureS"]) if window else None,
                              clock=lambda: case["now"])

    details = case.get("details")

    def say(verdict: Any) -> str:
        shown = details is True or (isinstance(details, list) and str(verdict.reason) in details)
        return "%s: %s" % (verdict.reason, verdict.detail) if shown else str(verdict.reason)

    out: List[str] = []
    init = b""
    inputs: List[dict] = []
    for item in case["inputs"]:
        if "fragments" in item:  # the gate takes them all at once and judges them in order: as one by one
            inputs += [{"fragment": f} for f in item["fragments"]]
        else:
            inputs.append(item)

    def plain(accepted: Optional[Accepted]) -> None:
        if case.get("plaintext") and accepted is not None:
            out.append("plaintext " + hashlib.sha256(accepted.plaintext()).hexdigest())

    for item in inputs:
        if "annexb" in item:
            verdict = verifier.verify(bytes.fromhex(item["annexb"]))
            out.append(say(verdict))
            plain(verifier.accepted)
        elif "stream" in item:
            for s in annexb_segments(bytes.fromhex(item["stream"])):
                verdict, accepted = verifier.judge(s)
                out.append(say(verdict))
                plain(accepted)
        elif "init" in item:
            init = bytes.fromhex(item["init"])
            if not _init_readable(init):
                out.append("init refused")
        elif "fragment" in item:
            data = io.BytesIO(init + bytes.fromhex(item["fragment"]))
            try:
                found = [verifier.judge(s) for s in container_segments(data, "mp4", "fragment")]
            except InputError as exc:  # a fragment that cannot be read at all: refused, as the gate refuses it
                text = str(exc)[len("fragment: "):]
                shown = details is True or (isinstance(details, list) and "framing" in details)
                out += ["framing: " + text if shown else "framing", "held"]
                continue
            passed = bool(found) and all(v.accepted for v, _a in found)
            for verdict, accepted in found:  # a fragment's segments are decrypted only when it passes
                out.append(say(verdict))
                if passed:
                    plain(accepted)
            out.append("pass" if passed else "held")
        elif item.get("finish"):
            last = verifier.finish()
            if last is not None:
                out.append(say(last))
    return out
