"""Shared pieces of the media tests: key material made through the CLI, tagging, ffmpeg."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from host_sim import clips
from segbind import Keyring, tagged_segments
from segbind_core.keys import Epoch
from segbind_core.segment import Segment, Segmenter
from segbind_core.tagger import Tagger
from tests.support import run_cli

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
# An AAC track's source for ffmpeg (3.2 s: the clips' 80 pictures at 25 fps).
SINE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3.2")


def rings(keys: Path) -> Tuple[Keyring, Keyring]:
    """(alice's keyring, bob's keyring) as library objects."""
    return Keyring.load(keys / "alice-ring.json"), Keyring.load(keys / "bob-ring.json")


def tag(keys: Path, data: bytes, out: Path, *extra: str) -> Path:
    """Tag Annex-B bytes with alice's binding through ``segbind tag`` (a pipe, as a camera would)."""
    result = run_cli("tag", "--epoch", str(keys / "alice.json"), "--stream-id", "42", *extra, "-", "-",
                     stdin=data)
    assert result.returncode == 0, result.stderr
    out.write_bytes(result.stdout)
    return out


def tagged_kinds(keys: Path, directory: Path, kinds: Sequence[str], suffix: str) -> Dict[str, Tuple[Path, Path, int]]:
    """kind -> (untagged Annex-B, tagged Annex-B, number of tagged segments), for each of the
    clip kinds ``host_sim.clips`` makes, written to ``directory`` as ``KIND.SUFFIX``."""
    out = {}
    for kind in kinds:
        plain = directory / ("%s.%s" % (kind, suffix))
        plain.write_bytes(clips.make_kind(kind))
        tagged = tag(keys, plain.read_bytes(), directory / ("%s.tagged.%s" % (kind, suffix)))
        out[kind] = (plain, tagged, len(tagged_segments(tagged.read_bytes())))
    return out


def verify(keys: Path, ring: str, *files: str) -> Tuple[int, List[dict]]:
    """(exit status, one dict per segment) of ``segbind verify --json`` with a keyring."""
    result = run_cli("verify", "--keyring", str(keys / ring), "--json", *files)
    assert b"Traceback" not in result.stderr
    if result.returncode == 2:
        raise AssertionError("verify failed: %s" % result.stderr.decode())
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "summary" in lines[-1]
    return result.returncode, lines[:-1]


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True, timeout=300)


def frame_hashes(path: Path) -> List[str]:
    """Per-frame hashes of a file (any container, or an HLS playlist) from the ffmpeg CLI."""
    return clips.decode_hashes_ffmpeg(b"", path=str(path))


def on_one_thread(stream) -> None:
    """Decode ``stream`` on one thread: with frame threads, how FFmpeg conceals damage (ciphertext
    decoded without keys) depends on timing, and two decodes of the same bytes differed in CI."""
    stream.codec_context.thread_type = "NONE"
    stream.codec_context.thread_count = 1


def decoded_frames(path: Path) -> List[str]:
    """MD5 of every picture PyAV's decoder outputs from a file (any container, or a playlist),
    in output order: what a player has to show (pictures an edit list hides are not output;
    unlike the ffmpeg CLI's framemd5, no frame is dropped or doubled for its timestamp)."""
    import av

    out = []
    # metadata_errors: PyAV decodes the container's metadata strings (an 'ftyp' brand, a handler
    # name) as strict UTF-8 and would refuse a file FFmpeg plays (tests/media/test_mutations.py)
    with av.open(str(path), metadata_errors="replace") as container:
        stream = container.streams.video[0]
        on_one_thread(stream)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # a decoder skips what it cannot read, as players do
            out.extend(clips.frame_md5(frame) for frame in frames)
    return out


def decrypted(source, keyring: Keyring, **options) -> bytes:
    """What ``segbind.open`` hands a decoder for ``source``, every segment accepted: the verified
    segments decrypted (``SegmentResult.data``), one after the other, as Annex-B."""
    import segbind

    out = []
    with segbind.open(source, keyring, **options) as media:
        for result in media:
            assert result.accepted, (result.index, result.verdict)
            assert result.data is not None
            out.append(result.data)
    assert out, "no segment"
    return b"".join(out)


def keyless_hashes(data: bytes, fmt: str = "h264") -> List[str]:
    """MD5 of every picture PyAV's decoder outputs from bytes it cannot make sense of (an encrypted
    stream, without keys): a packet it refuses is skipped, as players do."""
    import io

    import av

    out = []
    with av.open(io.BytesIO(data), format=fmt) as container:
        stream = container.streams.video[0]
        on_one_thread(stream)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            out.extend(clips.frame_md5(frame) for frame in frames)
    return out


def keyless_garbage(tagged: List[str], plain: List[str]) -> None:
    """A decoder without keys makes nothing of a tagged stream: not one of the pictures it outputs
    (frame hashes) is a picture of the untagged stream. (tests/media/test_confidentiality.py
    measures how little resembles the scene.)"""
    assert plain, "the reference decoded to nothing"
    assert not set(tagged) & set(plain), "a keyless decoder output %d of the camera's own pictures" % len(
        set(tagged) & set(plain))


def owner_accepts_stranger_refuses(keys: Path, *files: str, segments: int) -> None:
    code, verdicts = verify(keys, "alice-ring.json", *files)
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * segments, verdicts
    assert [v["tag"]["seq"] for v in verdicts] == list(range(segments))
    code, verdicts = verify(keys, "bob-ring.json", *files)
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * segments, verdicts


def cut(video: bytes) -> List[Segment]:
    """The segments the camera's segmenter cuts ``video`` into, untagged (delimited as it emits them)."""
    segmenter = Segmenter(delimit=True)
    return [s for s in segmenter.push(video) + segmenter.finish() if isinstance(s, Segment)]


def tag_recording(epoch: Epoch, video: bytes, stream_id: int, t0_ms: int, end: bool = True) -> List[bytes]:
    """A camera's recording, segment by segment: cut, encrypted and tagged as the camera does, each
    segment's capture time where the previous one ended; the last marked end of stream. (The
    plaintext of segment i is ``cut(video)[i].data``.)"""
    segments = cut(video)
    tagger = Tagger(epoch, stream_id)
    out, at = [], t0_ms
    for i, segment in enumerate(segments):
        out.append(tagger.tag(segment.data, segment.units, at, segment.duration_ms, segment.pictures,
                              end and i == len(segments) - 1)[0])
        at += segment.duration_ms
    return out


def length_prefixed_units(sample: bytes, size: int = 4) -> List[bytes]:
    """The NAL units of an MP4 sample (lengths trusted: for building attacks)."""
    units, pos = [], 0
    while pos + size <= len(sample):
        n = int.from_bytes(sample[pos:pos + size], "big")
        units.append(sample[pos + size:pos + size + n])
        pos += size + n
    return units


def prefixed(units: Sequence[bytes]) -> bytes:
    return b"".join(len(u).to_bytes(4, "big") + u for u in units)


Edit = Callable[[int, bytes], bytes]


def rewrite_packets(src: Path, dst: Path, fmt: str, edit: Optional[Edit] = None,
                    options: Optional[Dict[str, str]] = None, time_scale: float = 1.0,
                    extra_video: Optional[Path] = None, audio: bool = False,
                    template: Optional[Path] = None,
                    retime: Optional[Callable[[List[Tuple[int, int]]], List[Tuple[int, int]]]] = None) -> Path:
    """What an attacker with FFmpeg does: the video packets of ``src`` muxed again into ``dst``
    (``fmt`` with ``options``), each packet's bytes through ``edit(index, data)``, timestamps
    multiplied by ``time_scale``, or all (pts, dts) pairs, in decoding order, replaced by
    ``retime(pairs)``; with ``extra_video`` another file's video as a second track, with
    ``audio`` a real AAC track; with ``template`` the track described as that file's video is
    (its codec and sample description: ``avcC``, ``hvcC``)."""
    import fractions

    import av

    with av.open(str(src)) as source, av.open(str(dst), "w", format=fmt, options=options or {}) as out:
        video = source.streams.video[0]
        if template is not None:
            with av.open(str(template)) as described:
                track = out.add_stream_from_template(described.streams.video[0])
        else:
            track = out.add_stream_from_template(video)
        packets = [p for p in source.demux(video) if p.size]
        times = [(p.pts, p.dts) for p in packets]
        if retime is not None:
            times = retime(times)
        second = None
        if extra_video is not None:
            other = av.open(str(extra_video))
            second = (other, out.add_stream_from_template(other.streams.video[0]))
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
        for index, packet in enumerate(packets):
            data = bytes(packet) if edit is None else edit(index, bytes(packet))
            copy = av.Packet(data)
            pts, dts = times[index]
            copy.pts = None if pts is None else int(pts * time_scale)
            copy.dts = None if dts is None else int(dts * time_scale)
            copy.duration = int(packet.duration * time_scale) if packet.duration else packet.duration
            copy.time_base = packet.time_base
            copy.is_keyframe = packet.is_keyframe
            copy.stream = track
            out.mux(copy)
        if second is not None:
            other, track2 = second
            for packet in other.demux(other.streams.video[0]):
                if packet.size:
                    packet.stream = track2
                    out.mux(packet)
            other.close()
        if sound is not None:
            import numpy as np

            frames = int(float(packets[-1].pts * packets[-1].time_base) * 48000 / 1024) + 1
            for i in range(frames):
                tone = (np.sin(np.arange(1024) * 0.05 + i) * 0.2).astype("float32").reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                frame.sample_rate = 48000
                frame.pts = i * 1024
                frame.time_base = fractions.Fraction(1, 48000)
                for encoded in sound.encode(frame):
                    out.mux(encoded)
            for encoded in sound.encode(None):
                out.mux(encoded)
    return dst


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """A real HTTP server (Python's http.server, in a thread) serving ``directory`` on a free
    loopback port; yields its base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def live_playlist(vod: Path, count: int, window: Optional[int] = None, ended: bool = False) -> str:
    """The first ``count`` media segments of a VOD playlist written by ``segbind hls``, as a live
    packager lists them: an EVENT playlist, or a sliding window of the last ``window``."""
    lines = vod.read_text().splitlines()
    header = [line for line in lines if line.startswith(("#EXT-X-VERSION", "#EXT-X-TARGETDURATION",
                                                          "#EXT-X-MAP"))]
    entries = []
    for k, line in enumerate(lines):
        if line and not line.startswith("#"):
            entries.append((lines[k - 1], line))
    first = 0 if window is None else max(0, count - window)
    text = ["#EXTM3U"] + header + ["#EXT-X-MEDIA-SEQUENCE:%d" % first]
    if window is None:
        text.append("#EXT-X-PLAYLIST-TYPE:EVENT")
    for info, uri in entries[first:count]:
        text += [info, uri]
    if ended:
        text.append("#EXT-X-ENDLIST")
    return "\n".join(text) + "\n"


def publish(path: Path, text: str) -> None:
    """Replace a file atomically, as a packager updates a live playlist."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ffmpeg's own remuxes of raw Annex-B, as users make them: `ffmpeg -r FPS -i raw -c copy x.mp4`
# (ffmpeg 5.1 gives raw B-frame video pts = dts, and an edit list hiding the B-frame delay), then
# from that MP4 to the other containers. Each: (files to verify, file to decode).
RAW_CHAIN = ("mp4", "mp4-to-ts", "mp4-to-mkv", "mp4-to-hls-fmp4")


def ffmpeg_raw_remux(step: str, src: Path, d: Path, fps: int = 25) -> Tuple[List[Path], Path]:
    """One step of ``RAW_CHAIN`` on the Annex-B file ``src``, written in ``d``: the MP4 from the
    raw stream, or that MP4 remuxed again (`-c copy`) into MPEG-TS, Matroska or HLS fMP4 as
    ffmpeg's HLS muxer writes it by default (`-f hls -hls_segment_type fmp4`)."""
    d.mkdir(parents=True, exist_ok=True)
    mp4 = d / "raw.mp4"
    ffmpeg("-r", str(fps), "-i", str(src), "-c", "copy", str(mp4))
    if step == "mp4":
        return [mp4], mp4
    if step in ("mp4-to-ts", "mp4-to-mkv"):
        out = d / ("out.ts" if step == "mp4-to-ts" else "out.mkv")
        ffmpeg("-i", str(mp4), "-c", "copy", str(out))
        return [out], out
    assert step == "mp4-to-hls-fmp4", step
    ffmpeg("-i", str(mp4), "-c", "copy", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
           "-hls_segment_filename", str(d / "seg_%03d.m4s"), str(d / "out.m3u8"))
    return [d / "out.m3u8"], d / "out.m3u8"


def ffmpeg_fails(*args: str) -> str:
    """ffmpeg's error output for a command that must fail (asserted): what it says, in one string."""
    result = subprocess.run([FFMPEG, "-v", "error", "-y", *args], capture_output=True, timeout=300)
    assert result.returncode != 0, "ffmpeg succeeded: %s" % " ".join(args)
    return result.stderr.decode(errors="replace")


def discarded_packets(path: Path) -> int:
    """How many video packets FFmpeg's demuxer (PyAV) flags discarded: the pictures an edit list
    hides (decoded, never shown)."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size and p.is_discard)


def raw_remux_verifies_for_its_owner_only(keys: Path, step: str, plain: Path, tagged: Path, count: int,
                                          directory: Path) -> Tuple[int, List[str]]:
    """One step of ``RAW_CHAIN`` on a tagged stream and on the same stream untagged: without keys
    it decodes to as many pictures as the same remux of the untagged stream, none of them the
    camera's (PyAV and the ffmpeg CLI); what segbind.open hands the owner's decoder decodes to
    every picture of the untagged stream; every segment is accepted for its owner (the first
    saying how many pictures an edit list hides, where one does; no other says so) and refused
    for a stranger. Returns (pictures hidden, pictures PyAV decodes from the untagged remux: what
    the container shows)."""
    files, decodable = ffmpeg_raw_remux(step, tagged, directory / "tagged")
    _, plain_decodable = ffmpeg_raw_remux(step, plain, directory / "plain")
    pictures = decoded_frames(plain_decodable)
    keyless = decoded_frames(decodable)
    assert len(keyless) == len(pictures)
    keyless_garbage(keyless, pictures)
    keyless_garbage(frame_hashes(decodable), frame_hashes(plain_decodable))
    source = [str(f) for f in files] if len(files) > 1 else files[0]
    fmt = "hevc" if plain.suffix == ".h265" else "h264"
    assert clips.decode_hashes_pyav(decrypted(source, Keyring.load(keys / "alice-ring.json")), fmt) == \
        clips.decode_hashes_pyav(plain.read_bytes(), fmt)
    hidden = discarded_packets(decodable) if decodable.suffix == ".mp4" else 0
    assert hidden == (discarded_packets(plain_decodable) if decodable.suffix == ".mp4" else 0)
    code, verdicts = verify(keys, "alice-ring.json", *[str(f) for f in files])
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * count, verdicts
    assert [v["tag"]["seq"] for v in verdicts] == list(range(count))
    says = ["the container hides %d of its" % hidden in v.get("detail", "") for v in verdicts]
    assert says == [hidden > 0] + [False] * (count - 1), verdicts
    assert not any("hides" in v.get("detail", "") for v in verdicts[1:])
    code, verdicts = verify(keys, "bob-ring.json", *[str(f) for f in files])
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * count, verdicts
    return hidden, pictures


def sample_has_tag(sample: bytes) -> bool:
    """Whether an MP4 sample (4-byte length prefixes) holds a segbind tag: a segment's first."""
    from segbind_core.sei import tag_codec

    pos = 0
    while pos + 4 <= len(sample):
        size = int.from_bytes(sample[pos:pos + 4], "big")
        if tag_codec(sample[pos + 4:pos + 4 + min(size, 24)]):
            return True
        pos += 4 + size
    return False


def by_segment(starts: List[int], count: int) -> List[range]:
    """The sample numbers of each segment, from each segment's first sample and the count."""
    bounds = starts + [count]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]
