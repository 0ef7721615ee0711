"""The ``segbind`` command: provision keys, tag streams, verify and inspect them.

Exit status: 0 success (verify: every segment accepted), 1 verify refused a
segment, 2 usage or input error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from segbind_core import __version__

from .errors import InputError, InvalidSegment, SegbindError

if TYPE_CHECKING:  # each command imports what it needs when it runs: `segbind --version` stays cheap
    from . import media
    from .keyring import Keyring
    from .verdict import Verdict

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line error for the user; exit status 2."""


def _read_input(path: str) -> bytes:
    """A whole input file; CliError (one line) when it cannot be read or is empty."""
    src, name = _open_source(path)
    try:
        data = src.read()
    except OSError as exc:
        raise CliError("%s: cannot read (%s)" % (name, exc.strerror)) from None
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    if not data:
        raise CliError("%s: file is empty" % name)
    return data


def _open_output(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise CliError("%s: cannot write (%s)" % (path, exc.strerror)) from None


def _load_device(path: str) -> Tuple[str, bytes]:
    from segbind_core.device import DeviceFileError, parse_device

    from .keyring import read_json

    try:
        camera, secret, _test_only = parse_device(read_json(path, "device"))
    except DeviceFileError as exc:
        raise CliError("%s: %s" % (path, exc)) from None
    return camera, secret


def cmd_keys_device(args: argparse.Namespace) -> int:
    from segbind_core.device import device_json
    from segbind_core.keys import KEY_SIZE

    from .keyring import write_json

    try:
        data = device_json(args.device_id, os.urandom(KEY_SIZE), args.test_only)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    write_json(args.out, data)
    print("wrote device secret for %s to %s" % (args.device_id, args.out), file=sys.stderr)
    return EXIT_OK


def cmd_keys_pair(args: argparse.Namespace) -> int:
    """The owner's side of a claim: a fresh pairing secret (what the app hands the camera)."""
    from segbind_core.keys import KEY_SIZE, Epoch

    from .keyring import write_json

    try:
        Epoch.of_pairing(bytes(KEY_SIZE), args.owner, args.camera, 1, [])  # validates the ids
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data: Dict[str, Any] = {"segbind": "pairing", "version": 3, "owner": args.owner,
                            "camera": args.camera, "secret": os.urandom(KEY_SIZE).hex()}
    if args.test_only:
        data["test_only"] = True
    write_json(args.out, data)
    print("wrote a pairing of %s with %s to %s (keep it private)" % (args.camera, args.owner, args.out),
          file=sys.stderr)
    return EXIT_OK


def _load_pairing(path: str) -> Tuple[str, str, bytes]:
    from segbind_core.keys import KEY_SIZE

    from .keyring import read_json

    data = read_json(path, "pairing")
    owner, camera, secret = data.get("owner"), data.get("camera"), data.get("secret")
    if not isinstance(owner, str) or not isinstance(camera, str) or not isinstance(secret, str):
        raise CliError("%s: owner, camera and secret are required" % path)
    try:
        raw = bytes.fromhex(secret)
    except ValueError:
        raise CliError("%s: secret is not valid hex" % path) from None
    if len(raw) != KEY_SIZE:
        raise CliError("%s: secret must be %d bytes" % (path, KEY_SIZE))
    return owner, camera, raw


def cmd_keys_epoch(args: argparse.Namespace) -> int:
    from segbind_core.keys import Epoch

    from .keyring import EpochFile

    owner, camera, secret = _load_pairing(args.pairing)
    try:
        epoch = Epoch.of_pairing(secret, owner, camera, args.epoch, args.share or [], args.period)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    EpochFile.save(epoch, args.out)
    print("wrote epoch %d of %s/%s (%d slot(s), %d s periods) to %s" % (
        args.epoch, owner, camera, len(epoch.holders()), epoch.period_s, args.out), file=sys.stderr)
    return EXIT_OK


def cmd_keys_grant(args: argparse.Namespace) -> int:
    import time

    from segbind_core.tag import MAX_U53

    from .keyring import Binding, EpochFile, Keyring

    epoch = EpochFile.load(args.epoch)
    start_ms = int((time.time() - 86400) * 1000) if args.start is None else args.start
    if not 0 <= start_ms <= MAX_U53 or not 0 < args.hours <= 24 * 366:
        raise CliError("--from must be a time in ms since 1970 and --hours from 1 to %d" % (24 * 366))
    bindings = Binding.periods_of_epoch(epoch, start_ms, start_ms + int(args.hours * 3600 * 1000), args.holder)
    ring = Keyring.load(args.keyring) if os.path.exists(args.keyring) else Keyring()
    ring.grant_all(bindings)
    ring.save(args.keyring)
    first = bindings[0]
    print("granted %s slot %d of %s/%s epoch %d, %d periods of %d s from %d ms, in %s (%d grants)"
          % (epoch.holders()[first.slot], first.slot, epoch.owner, epoch.camera, epoch.epoch, len(bindings),
             epoch.period_s, first.start_ms, args.keyring, len(ring)),
          file=sys.stderr)
    return EXIT_OK


CHUNK = 1 << 16
MAX_CODEC_READ_AHEAD = 16 << 20


def _open_source(path: str) -> Tuple[IO[bytes], str]:
    """A binary stream to read incrementally and the name to use in messages."""
    from .read.sources import open_file

    if path == "-":
        return sys.stdin.buffer, "stdin"
    return open_file(path), path


def _read_some(src: IO[bytes], name: str) -> bytes:
    try:
        read1 = getattr(src, "read1", None)
        return read1(CHUNK) if read1 is not None else src.read(CHUNK)
    except OSError as exc:
        raise CliError("%s: cannot read (%s)" % (name, exc.strerror)) from None


def _read_head(src: IO[bytes], name: str) -> bytes:
    """The first bytes of an input (enough to tell what it is); CliError when empty."""
    from .read.sniff import SNIFF_BYTES

    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = _read_some(src, name)
        if not chunk:
            break
        head += chunk
    if not head:
        raise CliError("%s: file is empty" % name if name != "stdin" else "stdin: no input")
    return head


def _kind_of(head: bytes, name: str) -> str:
    """What the input is (``read.sniff``), as a one-line CliError when it is no video segbind reads."""
    from segbind_core.segment import detect_codec
    from segbind_core.tag import CODEC_H265

    from .read.sniff import ANNEXB, SNIFF_BYTES, sniff

    try:
        return sniff(head[:SNIFF_BYTES])
    except InputError as exc:
        if not (_starts_with_start_code(head) and detect_codec(head[:SNIFF_BYTES]) == CODEC_H265):
            raise CliError("%s: %s" % (name, exc)) from None
        return ANNEXB


def _starts_with_start_code(head: bytes) -> bool:
    zeros = len(head) - len(head.lstrip(b"\x00"))
    return zeros >= 2 and head[zeros:zeros + 1] == b"\x01"


def _stream_codec(src: IO[bytes], name: str, head: bytes) -> Tuple[int, bytes]:
    """(the codec the segmenter will read an Annex-B stream as, the bytes read so far).

    Reads ahead until the stream's units tell (``segment.detect_codec``: normally its
    first unit); a stream that ends first is H.264, as the segmenter takes it.
    """
    from segbind_core.segment import detect_codec
    from segbind_core.tag import CODEC_H264

    while True:
        codec = detect_codec(head)
        if codec:
            return codec, head
        if len(head) > MAX_CODEC_READ_AHEAD:
            raise CliError("%s: no H.264 or H.265 NAL unit header in the first %d MiB"
                           % (name, MAX_CODEC_READ_AHEAD >> 20))
        chunk = _read_some(src, name)
        if not chunk:
            return CODEC_H264, head
        head += chunk


def _open_annexb(path: str, purpose: str) -> Tuple[IO[bytes], str, bytes]:
    """An Annex-B input, open, with its first bytes read; any other container is a CliError."""
    from .read.sniff import ANNEXB
    from .read.sniff import NAMES as CONTAINER_NAMES

    src, name = _open_source(path)
    try:
        head = _read_head(src, name)
        kind = _kind_of(head, name)
        if kind != ANNEXB:
            raise CliError("%s: %s input; %s" % (name, CONTAINER_NAMES[kind], purpose))
    except BaseException:
        if src is not sys.stdin.buffer:
            src.close()
        raise
    return src, name, head


class _Stopped(Exception):
    """Ctrl-C (or SIGTERM) while ``segbind tag`` waited for input."""


class _StopRequest:
    """SIGINT and SIGTERM while tagging: stop at the next safe point, every closed segment
    written. A wait for input is cut at once (``waiting``); a segment being written never is."""

    def __init__(self) -> None:
        self.asked = False
        self.waiting = False
        self._saved: List[Any] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.asked = True
        if self.waiting:
            raise _Stopped()

    def __enter__(self) -> "_StopRequest":
        import signal

        self._saved = [(sig, signal.signal(sig, self)) for sig in (signal.SIGINT, signal.SIGTERM)]
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._saved:
            signal.signal(sig, handler)


def _read_until(src: IO[bytes], name: str, stop: _StopRequest, deadline: Optional[float]) -> bytes:
    """The next bytes of an input; b"" at its end, when asked to stop, or at the deadline."""
    import io
    import select
    import time

    if stop.asked:
        return b""
    stop.waiting = True
    try:
        if deadline is not None:
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not select.select([src], [], [], left)[0]:
                    return b""
            except (ValueError, OSError, io.UnsupportedOperation):
                pass  # not a file descriptor select takes: read as it comes
        return _read_some(src, name)
    except _Stopped:
        return b""
    finally:
        stop.waiting = False


class _SegmentWriter:
    """Carries out the agent core's actions for ``segbind tag``: a "published" segment is
    written at once, whole."""

    def __init__(self, core: Any, out: IO[bytes], name: str) -> None:
        self.core = core
        self.out = out
        self.name = name
        self.written = 0
        self.gaps = 0
        self._kept: Dict[int, bytes] = {}

    def carry_out(self, actions: List[Any]) -> None:
        """The core's actions, in order; what a delivery brings comes after them."""
        from segbind_agent.core import ERROR, Log, Send, Store

        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Store):
                self._kept[action.entry.index] = action.payload
            elif isinstance(action, Send):  # "published": written out, at once
                self.out.write(self._kept.pop(action.entry.index))
                self.out.flush()
                self.written += 1
                queue += self.core.delivered(action.entry.index, True)
            elif isinstance(action, Log) and action.level >= ERROR:
                raise CliError("%s: %s" % (self.name, action.message))


def cmd_tag(args: argparse.Namespace) -> int:
    """Tag a stream as it arrives, with the camera agent's own core (segbind_agent.core): each
    segment is written as soon as it closes. Annex-B from a file, a FIFO or a pipe, or a
    streamer's RTSP; Ctrl-C or ``--seconds`` stop it cleanly (the last segment closed, marked
    as the stream's end)."""
    import time

    from segbind_agent.core import AgentCore, AgentSettings, BindingState
    from segbind_agent.rtsp import is_rtsp

    from .keyring import EpochFile

    epoch = EpochFile.load(args.epoch)
    if not args.max_duration > 0 or (args.fps is not None and not args.fps > 0):
        raise CliError("--max-duration and --fps must be positive")
    if args.seconds is not None and not args.seconds > 0:
        raise CliError("--seconds must be positive")
    try:
        core = AgentCore(epoch.camera, BindingState(epoch.camera), AgentSettings(
            max_duration_s=args.max_duration, fps=args.fps, spool_max_bytes=1 << 40,
            spool_max_segments=1 << 30, publish_window=1, codec=0), fixed_epoch=epoch)
    except (ValueError, SegbindError) as exc:
        raise CliError(str(exc)) from None
    deadline = time.monotonic() + args.seconds if args.seconds is not None else None
    stream_id = args.stream_id if args.stream_id is not None else int(time.time() * 1000)
    with _StopRequest() as stop:
        if is_rtsp(args.input):
            return _tag_rtsp(args, core, stream_id, stop, deadline)
        src, name, head = _open_annexb(args.input, "segbind tag reads H.264 or H.265 Annex-B, as "
                                       "encoders write it, or an rtsp:// URL")
        try:
            codec, head = _stream_codec(src, name, head)
            out = _open_output(args.output)
            writer = _SegmentWriter(core, out, name)
            try:
                writer.carry_out(core.start(_now_ms(), stream_id=stream_id))
                writer.carry_out(core.connection(True, _now_ms()))
                chunk = head
                while chunk:
                    writer.carry_out(core.encoder_bytes(chunk, _now_ms()))
                    chunk = _read_until(src, name, stop, deadline)
                writer.carry_out(core.encoder_end(_now_ms()))
            finally:
                if out is not sys.stdout.buffer:
                    out.close()
        finally:
            if src is not sys.stdin.buffer:
                src.close()
    if not writer.written:
        from segbind_core.tag import CODEC_NAMES

        raise CliError("%s: no %s pictures in the stream" % (name, CODEC_NAMES[codec]))
    print("tagged %d segments (stream %d)%s" % (writer.written, stream_id, " (stopped)" if stop.asked else ""),
          file=sys.stderr)
    return EXIT_OK


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _say_agent_logs() -> None:
    """The agent's RTSP input reports reconnects and losses in its log: on stderr, one line each."""
    import logging

    logger = logging.getLogger("segbind_agent")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("segbind tag: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _tag_rtsp(args: argparse.Namespace, core: Any, stream_id: int, stop: _StopRequest,
              deadline: Optional[float]) -> int:
    """``segbind tag rtsp://...``: the agent's RTSP input (segbind_agent.rtsp) feeding its core in
    this thread until the stream ends, ``--seconds`` pass or Ctrl-C. A session that fails
    before any video flowed is an error; once video flowed, a dropped session is a gap and
    the source is asked again."""
    import time

    from segbind_agent.rtsp import EOF, RtspReader, RtspSettings
    from segbind_core.rtp import AccessUnit
    from segbind_core.rtsp import RtspError

    password = None
    if args.password_file:
        try:
            with open(args.password_file, "r", encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as exc:
            raise CliError("%s: cannot read (%s)" % (args.password_file, exc.strerror)) from None
    out = _open_output(args.output)
    name = "rtsp"
    try:
        writer = _SegmentWriter(core, out, name)
        ended = [False]

        def sink(item: Any) -> None:
            if item is EOF:
                ended[0] = True
            elif isinstance(item, AccessUnit):
                for unit in item.units:
                    writer.carry_out(core.encoder_unit(unit, _now_ms(), item.capture_ms))
            else:
                writer.gaps += 1
                writer.carry_out(core.encoder_gap(_now_ms(), item.detail))

        try:
            reader = RtspReader(args.input, RtspSettings(transport=args.transport, password=password), sink,
                                reopen=False, give_up_before_video=True)
        except RtspError as exc:
            raise CliError(str(exc)) from None
        name = writer.name = reader.name_for_logs
        _say_agent_logs()
        print("segbind tag: reading %s (Ctrl-C to stop)" % name, file=sys.stderr)
        writer.carry_out(core.start(_now_ms(), stream_id=stream_id))
        writer.carry_out(core.connection(True, _now_ms()))
        reader.serve(lambda: stop.asked or ended[0] or (deadline is not None and time.monotonic() >= deadline))
        writer.carry_out(core.stop(_now_ms()))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if not writer.written:
        raise CliError("%s: %s" % (name, reader.error or "no pictures in the stream"))
    print("tagged %d segments (stream %d): %d RTP packets, %d lost, %d gap(s)%s"
          % (writer.written, stream_id, reader.packets, reader.lost, writer.gaps,
             " (stopped)" if stop.asked else ""), file=sys.stderr)
    return EXIT_OK


def _open_input(args: argparse.Namespace, keyring: "Keyring") -> "media.Input":
    """The files (one stream, in order), an http(s) URL, or - for stdin (read as it arrives)."""
    from . import media
    from .verifier import TimeWindow

    files: List[str] = args.files
    if "-" in files and len(files) > 1:
        raise CliError("stdin (-) cannot be combined with files")
    if any(media.is_url(f) for f in files) and len(files) > 1:
        raise CliError("give one URL at a time")
    window = None
    if getattr(args, "max_age", None) is not None or getattr(args, "max_future", None) is not None:
        window = TimeWindow(args.max_age, args.max_future)
    source: media.Source = sys.stdin.buffer if files == ["-"] else files if len(files) > 1 else files[0]
    return media.open(source, keyring, camera=getattr(args, "camera", None),
                      any_camera=getattr(args, "any_camera", False), recording=getattr(args, "recording", False),
                      window=window, video_only=getattr(args, "video_only", False),
                      idle_s=getattr(args, "idle", None), name="stdin" if files == ["-"] else None)


def _describe(index: int, verdict: "Verdict") -> str:
    where = "segment %d" % index
    if verdict.tag is not None:
        t = verdict.tag
        where += " (camera %s, owner %s, epoch %d, stream %d, seq %d)" % (
            t.camera, t.owner, t.epoch, t.stream_id, t.seq)
    text = "%s: %s" % (where, verdict.reason.value)
    return text + (" - " + verdict.detail if verdict.detail else "")


def _say_verdict(args: argparse.Namespace, index: int, verdict: "Verdict") -> None:
    import json

    if args.json:
        print(json.dumps(dict(verdict.as_dict(), segment=index), sort_keys=True), flush=True)
    else:
        print(_describe(index, verdict), flush=True)


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from .keyring import Keyring

    keyring = Keyring.load(args.keyring)
    counts: Dict[str, int] = {}
    worst = EXIT_OK
    out = None
    if args.out is not None:
        try:
            out = open(args.out, "wb")
        except OSError as exc:
            raise CliError("%s: cannot write (%s)" % (args.out, exc.strerror or exc)) from None
    try:
        with _open_input(args, keyring) as source:
            for result in source:
                verdict = result.verdict
                counts[verdict.reason.value] = counts.get(verdict.reason.value, 0) + 1
                if not verdict.accepted:
                    worst = EXIT_REFUSED
                elif out is not None and result.data is not None:
                    out.write(result.data)  # decrypted only once accepted; a refused segment never
                    out.flush()
                _say_verdict(args, result.index, verdict)
    finally:
        if out is not None:
            out.close()
    summary = ", ".join("%d %s" % (n, r) for r, n in sorted(counts.items()))
    if args.json:
        print(json.dumps({"summary": counts, "ok": worst == EXIT_OK}, sort_keys=True))
    else:
        print("%s: %s" % ("ACCEPTED" if worst == EXIT_OK else "REFUSED", summary or "no segment"))
    return worst


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from segbind_core.nal import annexb_units

    from .keyring import Keyring
    from .verifier import Authenticator

    reader = Authenticator(Keyring())  # reads tags; holds no key
    with _open_input(args, Keyring()) as source:
        for index, segment in enumerate(source.segments()):
            units = len(annexb_units(segment.data))
            try:
                tag, _signed = reader.tag_of(segment)
                entry: Dict[str, Any] = {"segment": index, "tag": {
                    "version": tag.version, "alg": tag.alg, "codec": tag.codec, "key_id": tag.key_id.hex(),
                    "stream_id": tag.stream_id, "seq": tag.seq, "capture_ms": tag.capture_ms,
                    "duration_ms": tag.duration_ms, "pictures": tag.pictures, "units": tag.units,
                    "clear_lead": tag.clear_lead, "end_of_stream": tag.end_of_stream, "still": tag.still,
                    "link": tag.link.hex(), "slots": tag.slots, "macs": [m.hex() for m in tag.macs]},
                    "nal_units": units}
            except InvalidSegment as exc:
                entry = {"segment": index, "tag": None, "problem": exc.reason.value,
                         "detail": exc.detail, "nal_units": units}
            if args.json:
                print(json.dumps(entry, sort_keys=True), flush=True)
            elif entry["tag"] is None:
                print("segment %d: %s (%s)" % (index, entry["problem"], entry["detail"]), flush=True)
            else:
                t = entry["tag"]
                print("segment %d: v%d key id %s stream %d seq %d capture_ms %d %d pictures %d ms%s%s, "
                      "%d slot(s)" % (
                          index, t["version"], t["key_id"], t["stream_id"], t["seq"], t["capture_ms"],
                          t["pictures"], t["duration_ms"], ", end of stream" if t["end_of_stream"] else "",
                          ", still" if t["still"] else "", t["slots"]), flush=True)
    return EXIT_OK


def cmd_hls(args: argparse.Namespace) -> int:
    import io

    from segbind_core.nal import annexb_units
    from segbind_core.sei import tag_codec

    from .write import write_hls

    if not args.segment_duration > 0 or (args.fps is not None and not args.fps > 0):
        raise CliError("--segment-duration and --fps must be positive")
    src, name, head = _open_annexb(args.input, "segbind hls reads a tagged H.264 or H.265 Annex-B stream")
    try:
        while len(head) < (1 << 20):
            chunk = _read_some(src, name)
            if not chunk:
                break
            head += chunk
        view = memoryview(head)
        if not any(tag_codec(view[s:e]) for s, e in annexb_units(head)):
            raise CliError("%s: carries no segbind tag (tag it first: segbind tag)" % name)
        if src is sys.stdin.buffer:
            source = io.BytesIO(head + src.read())
        else:
            source = args.input
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    out_dir = os.path.dirname(os.path.abspath(args.playlist))
    if not os.path.isdir(out_dir):
        raise CliError("%s: no such directory" % out_dir)
    counts = write_hls(source, args.playlist, args.type, args.segment_duration, args.fps)
    left_out = ""
    if counts.get("left_out_units"):
        left_out = "; left out, as no tag says how to package them: %d NAL units%s" % (
            counts["left_out_units"], " (%d segments whose tag cannot be read)" % counts["left_out_segments"]
            if counts.get("left_out_segments") else "")
    print("wrote %s: %d tagged segments, %d pictures, %s segments%s"
          % (args.playlist, counts["tagged_segments"], counts["packets"],
             "Common Encryption ('cenc') fMP4" if args.type == "fmp4" else "MPEG-TS", left_out), file=sys.stderr)
    return EXIT_OK


class _Formatter(argparse.HelpFormatter):
    """argparse's own, told the width (it would import shutil, and bz2 and lzma with it, to ask the
    terminal, on every run: help is rare, start-up is every time)."""

    def __init__(self, prog: str) -> None:
        try:
            width = int(os.environ.get("COLUMNS", "")) - 2
        except ValueError:
            width = 78
        super().__init__(prog, width=max(width, 40))


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit status 2, like every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> "NoReturn":
        print("segbind: error: %s (see %s --help)" % (message, self.prog), file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, that command alone (a run of one command need not build
    the others: start-up is every time, the full help rare)."""
    parser = _Parser(
        prog="segbind",
        description="Bind camera video to its owner: tag H.264 or H.265 segments on the camera, "
                    "refuse every segment not bound to the viewer.")
    parser.add_argument("--version", action="version",
                        version="segbind %s (format version 3)" % __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    if only in (None, 'keys'):
        keys = sub.add_parser("keys", help="device secrets, pairings, epochs and keyrings (files)")
        ksub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND")
        ksub.required = True
        p = ksub.add_parser("device", help="factory: make a new device secret for a camera")
        p.add_argument("--device-id", required=True, help="the camera's id (1-32 bytes)")
        p.add_argument("--out", required=True, metavar="DEVICE.json")
        p.add_argument("--test-only", action="store_true", help="mark the secret as test material")
        p.set_defaults(func=cmd_keys_device)
        p = ksub.add_parser("pair", help="the owner: a fresh pairing secret for a camera (a claim)")
        p.add_argument("--owner", required=True, metavar="ACCOUNT", help="owner account id (1-32 bytes)")
        p.add_argument("--camera", required=True, metavar="CAMERA", help="the camera's id")
        p.add_argument("--out", required=True, metavar="PAIRING.json")
        p.add_argument("--test-only", action="store_true", help="mark the secret as test material")
        p.set_defaults(func=cmd_keys_pair)
        p = ksub.add_parser("epoch", help="the owner: one epoch's keys, for segbind tag (a camera stand-in)")
        p.add_argument("--pairing", required=True, metavar="PAIRING.json")
        p.add_argument("--epoch", type=int, default=1, help="the epoch (default 1)")
        p.add_argument("--period", type=int, default=1800, metavar="S",
                       help="the epoch's key period in seconds, 60 to 86400 (default 1800): a holder not "
                            "renewed loses access when its last period ends")
        p.add_argument("--share", action="append", metavar="ACCOUNT",
                       help="an account this epoch is shared with (repeat, in slot order)")
        p.add_argument("--out", required=True, metavar="EPOCH.json")
        p.set_defaults(func=cmd_keys_epoch)
        p = ksub.add_parser("grant", help="add one slot's keys, period by period, to a holder's keyring "
                            "(created if missing)")
        p.add_argument("--epoch", required=True, metavar="EPOCH.json")
        p.add_argument("--holder", metavar="ACCOUNT", help="whose slot (default: the owner's)")
        p.add_argument("--from", dest="start", type=int, metavar="MS",
                       help="the first capture time to grant, ms since 1970 (default: a day ago)")
        p.add_argument("--hours", type=float, default=48.0,
                       help="how long from then, in hours (default 48: the periods that cover it)")
        p.add_argument("--keyring", required=True, metavar="KEYRING.json")
        p.set_defaults(func=cmd_keys_grant)

    if only in (None, 'tag'):
        p = sub.add_parser("tag", help="tag an Annex-B H.264 or H.265 stream as it arrives (a pipe filter "
                           "with - -); the codec is read from the stream")
        p.add_argument("--epoch", required=True, metavar="EPOCH.json", help="the epoch to tag with")
        p.add_argument("--stream-id", type=int, help="stream id (default: now in ms)")
        p.add_argument("--max-duration", type=float, default=4.0, metavar="S",
                       help="no segment longer than S seconds (default 4); segments are cut at IDR "
                            "(H.265: IRAP) pictures and recovery points, and here when there are none")
        p.add_argument("--fps", type=float, help="frame rate for --max-duration (default: from the SPS, else 25)")
        p.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (Ctrl-C stops it too; "
                       "either way every segment is closed and written)")
        p.add_argument("--transport", choices=("tcp", "udp"), default="tcp",
                       help="RTSP: RTP interleaved in the RTSP connection (default) or over UDP")
        p.add_argument("--password-file", metavar="FILE",
                       help="RTSP: the password, from a file (never on the command line)")
        p.add_argument("input", metavar="IN", help="Annex-B input (a file, a FIFO, - for stdin) or a streamer's "
                       "rtsp://[user:password@]host[:port]/path")
        p.add_argument("output", metavar="OUT", help="tagged Annex-B output, - for stdout")
        p.set_defaults(func=cmd_tag)

    if only in (None, 'verify'):
        p = sub.add_parser("verify", help="verify every segment against a viewer's keyring")
        p.add_argument("--keyring", required=True, metavar="KEYRING.json")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.add_argument("--camera", metavar="ID", help="the stream's camera; segments of any other "
                       "camera are refused (default: the camera of the first accepted segment)")
        p.add_argument("--any-camera", action="store_true",
                       help="accept several cameras in one input, each checked as its own stream")
        p.add_argument("--max-age", type=float, metavar="S", help="refuse segments captured over S seconds ago")
        p.add_argument("--max-future", type=float, metavar="S",
                       help="refuse segments captured over S seconds in the future")
        p.add_argument("--recording", action="store_true",
                       help="a finished recording, not a live feed: any gap, a stream that does not "
                            "end cleanly, or a capture time out of sequence is refused")
        p.add_argument("--video-only", action="store_true",
                       help="verify a container's video and ignore its other tracks (which a player "
                            "then must not play: they are never verified)")
        p.add_argument("--idle", type=float, metavar="S",
                       help="a live playlist that lists nothing new for S seconds has ended "
                            "(default: three target durations, at least 10 s)")
        p.add_argument("--out", metavar="OUT.h264",
                       help="write the accepted segments there, decrypted, as Annex-B (H.264 or H.265) "
                            "for a decoder; a refused segment is never decrypted or written")
        p.add_argument("files", nargs="+", metavar="FILE",
                       help="tagged stream: Annex-B, MPEG-TS, MP4, fragmented MP4 (init segment first, "
                            "then media segments), Matroska, FLV, or an HLS playlist (a file or an "
                            "http(s) URL, finished or live); - for stdin")
        p.set_defaults(func=cmd_verify)

    if only in (None, 'inspect'):
        p = sub.add_parser("inspect", help="list the tags in a stream (never key material)")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.add_argument("--idle", type=float, metavar="S", help="as for verify")
        p.add_argument("files", nargs="+", metavar="FILE", help="as for verify")
        p.set_defaults(func=cmd_inspect)

    if only in (None, 'hls'):
        p = sub.add_parser("hls", help="write a tagged Annex-B stream as an HLS playlist (fMP4 or TS segments), "
                                       "without keys")
        p.add_argument("--type", choices=("fmp4", "ts"), default="fmp4",
                       help="segment format (default fmp4: Common Encryption 'cenc', which a ClearKey player plays "
                            "given the content key; ts: the camera's protected form as it is)")
        p.add_argument("--segment-duration", type=float, default=4.0, metavar="S",
                       help="target media segment duration; segments hold whole tagged segments (default 4)")
        p.add_argument("--fps", type=float, help="frame rate (default: from the SPS, else 25)")
        p.add_argument("input", metavar="IN", help="tagged Annex-B stream, - for stdin")
        p.add_argument("playlist", metavar="OUT.m3u8", help="playlist to write; segments go next to it")
        p.set_defaults(func=cmd_hls)

    if only in (None, 'serve'):
        from .service.commands import add_parser

        add_parser(sub)  # the verifying service on NATS JetStream (docs/SERVICE.md)
    return parser


COMMANDS = ("keys", "tag", "verify", "inspect", "hls", "serve")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_in if not a.startswith("-")), None)
    helping = any(a in ("-h", "--help", "--version") for a in args_in)
    parser = build_parser(command if command in COMMANDS and not helping else None)
    args = parser.parse_args(args_in)
    try:
        return int(args.func(args))
    except (CliError, SegbindError) as exc:
        print("segbind: error: %s" % exc, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
