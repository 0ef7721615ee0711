"""The core and its unit tests on the real MicroPython VM (tests/micropython/run.mjs).

tests/core/ runs there exactly as pytest runs it here; the expected number of
tests is counted from the files, so a run that collects nothing cannot pass.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support import ROOT

pytestmark = pytest.mark.slow

RUNNER = ROOT / "tests" / "micropython" / "run.mjs"
CORE_TESTS = sorted((ROOT / "tests" / "core").glob("test_*.py"))
SUMMARY = "SEGBIND_MP_SUMMARY "


def run(*args: str, stdin: bytes = b"", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(RUNNER), *args], input=stdin, capture_output=True,
                          timeout=timeout, cwd=ROOT)


def summary(proc: subprocess.CompletedProcess) -> dict:
    lines = [l for l in proc.stdout.decode().splitlines() if l.startswith(SUMMARY)]
    assert len(lines) == 1, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
    return json.loads(lines[0][len(SUMMARY):])


def expected_tests(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add("%s.%s" % (path.stem, node.name))
    return names


def test_core_tests_pass_on_micropython():
    expected = expected_tests(CORE_TESTS)
    assert len(CORE_TESTS) >= 6 and len(expected) >= 60
    proc = run("test", *map(str, CORE_TESTS))
    out = proc.stdout.decode()
    s = summary(proc)
    assert s["implementation"] == "micropython", s
    assert s["failed"] == 0, out[-5000:]
    assert s["passed"] == s["total"] == len(expected), s
    passed = {l.split()[1] for l in out.splitlines() if l.startswith("PASS ")}
    assert passed == expected
    assert proc.returncode == 0


def test_harness_reports_failures(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_ok():\n    assert 1 + 1 == 2\n\n"
                     "def test_bad():\n    assert [1] == [2], 'as intended'\n\n"
                     "def helper():\n    raise RuntimeError('never run')\n")
    proc = run("test", str(probe))
    s = summary(proc)
    assert proc.returncode == 1
    assert (s["passed"], s["failed"], s["total"]) == (1, 1, 2)
    assert s["failures"] == ["test_probe.test_bad"]
    assert "FAIL test_probe.test_bad: AssertionError: as intended" in proc.stdout.decode()


def test_harness_fails_when_nothing_ran(tmp_path):
    empty = tmp_path / "test_empty.py"
    empty.write_text("X = 1\n")
    proc = run("test", str(empty))
    assert summary(proc)["total"] == 0
    assert proc.returncode == 1


def test_harness_exec_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "from segbind_core.tag import encode_uvarint\n"
        "print(sys.implementation.name, sys.argv[1:], __name__)\n"
        "print(encode_uvarint(300).hex())\n"
        "print(open('/data/in.bin', 'rb').read())\n"
        "sys.exit(int(sys.argv[1]))\n")
    data = tmp_path / "in.bin"
    data.write_bytes(b"\x00\x01payload")
    proc = run("exec", str(script), "--file", "/data/in.bin=%s" % data, "--", "7")
    assert proc.returncode == 7, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == [
        "micropython ['7'] __main__", "ac02", "b'\\x00\\x01payload'"]
    proc = run("exec", "-", stdin=b"print('from stdin')\nraise ValueError('boom')\n")
    assert proc.returncode == 1
    assert proc.stdout.decode() == "from stdin\n"
    assert "ValueError: boom" in proc.stderr.decode()


# Every id byte string of 1-2 bytes, and 3-4 byte ones built from boundary values:
# segbind must accept exactly the strict UTF-8 that CPython accepts, without NUL, and (ids are
# MQTT topic levels) without "/", "+" or "#". Format 3 tags carry no ids: the camera reads them
# from its owner's pairing offer and commands (FORMAT.md 8), so the offer is where they are decoded.
UTF8_CASES = """
def utf8_cases():
    edges = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    for a in range(256):
        yield bytes((a,))
    for a in range(256):
        for b in range(256):
            yield bytes((a, b))
    for a in range(0xC0, 0x100):
        for b in edges:
            for c in edges:
                yield bytes((a, b, c))
                for d in edges:
                    yield bytes((a, b, c, d))
"""

UTF8_SCRIPT = UTF8_CASES + """
from segbind_core.control import ControlError, decode_pairing
# a format 3 pairing offer whose owner id is the case: camera "c", a secret, expiry 1, period 1800
head = b"SBP3"
tail = b"\\x01c" + bytes(32) + b"\\x01\\x88\\x0e"
decode_pairing(head + b"\\x01a" + tail)  # the frame itself is a valid offer
out = []
for raw in utf8_cases():
    try:
        decode_pairing(head + bytes((len(raw),)) + raw + tail)
        out.append("1")
    except ControlError:
        out.append("0")
print("VERDICTS " + "".join(out))
"""


def test_id_utf8_checks_match_cpython():
    proc = run("exec", "-", stdin=UTF8_SCRIPT.encode(), timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    line = next(l for l in proc.stdout.decode().splitlines() if l.startswith("VERDICTS "))
    on_micropython = line.split()[1]
    scope: dict = {}
    exec(UTF8_CASES, scope)

    def cpython_accepts(raw: bytes) -> str:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0"
        return "0" if any(c in raw for c in b"\x00/+#") else "1"

    expected = "".join(cpython_accepts(raw) for raw in scope["utf8_cases"]())
    assert len(on_micropython) == len(expected) > 130000
    assert 0 < expected.count("1") < len(expected)
    mismatches = [i for i, (a, b) in enumerate(zip(on_micropython, expected)) if a != b]
    assert mismatches == []


def test_vectors_file_matches_a_fresh_micropython_run():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "make_vectors.py"), "--check"],
                          capture_output=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"matches a fresh MicroPython run" in proc.stdout


def test_bench_camera_runs_on_micropython():
    """tools/bench_camera.py works on the real VM (its timings are for reading, never asserted);
    the tag sizes it measures are docs/FORMAT.md section 5's."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_camera.py"), "--arch", "none",
                           "--rounds", "1", "--size", "20000", "--json"], capture_output=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    result = json.loads(proc.stdout)["results"]["micropython"]
    assert result["implementation"] == "micropython"
    assert result["path"] == "pure"  # no hmac module on MicroPython
    assert all(result[key] > 0 for key in ("pair_us", "rotate_3_shares_us", "pairing_keys_us", "rotation_keys_us"))
    (segment,) = result["segments"]
    assert 20_000 <= segment["bytes"] < 40_000 and segment["units"] > 2
    assert all(segment[key] > 0 for key in ("sha256_us", "tag_1_slot_us", "tag_4_slots_us", "cut_and_tag_4_slots_us"))
    tag = result["tag_bytes"]
    assert (tag["pictures"], tag["duration_ms"]) == (100, 4000)
    # FORMAT.md section 5: 141 bytes for H.264 (142 for H.265, its NAL header 2 bytes), at most 150 with
    # emulation-prevention bytes; the tag's own unit only (the ciphertext's escapes are the segment's)
    both = tag["owner_and_3_shares"]
    assert 141 <= both["h264"] <= 150 and both["h265"] == both["h264"] + 1, both
    assert tag["owner_and_3_shares"]["h264"] - tag["owner"]["h264"] == 3 * 16  # 16 bytes a share


# Reads every slice header of each stream named in argv and counts picture order: the same
# script runs on CPython and on the VM, and every line it prints but TIME must be the same.
SLICE_HEADERS_SCRIPT = """
import sys, time
from segbind_core import h264, h265
from segbind_core.nal import annexb_units

def clock():
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.time() * 1000)

for path in sys.argv[1:]:
    syntax = h265 if path.endswith(".h265") else h264
    params = syntax.ParameterSets()
    counter = syntax.PocCounter(params)
    with open(path, "rb") as f:
        data = f.read()
    keys = []
    slices = []
    for s, e in annexb_units(data):
        unit = data[s:e]
        kind = syntax.nal_type(unit[0])
        if (kind in (1, 5)) if syntax is h264 else kind < 32:
            try:
                header = syntax.parse_slice_header(unit, params)
            except ValueError as error:
                print("REFUSED", type(error).__name__, error)
                continue
            slices.append(unit)
            line = [header.header_bits, header.header_bytes, header.slice_type, header.first_in_picture]
            if header.first_in_picture and header.slice_type is not None:
                line += [counter.count(header), counter.order_key]
                keys.append(counter.order_key)
            print("SLICE", line)
        elif syntax is h265 and kind == h265.NAL_END_OF_SEQUENCE:
            counter.end_of_sequence()
        else:
            params.add(unit)
    print("RANKS", syntax.output_ranks(keys))
    rounds = 0
    start = clock()
    while rounds < 3 or clock() - start < 300:
        for unit in slices:
            syntax.parse_slice_header(unit, params)
        rounds += 1
    elapsed = clock() - start
    print("TIME %s %d slices %.1f us/slice" % (path.rsplit("/", 1)[-1], len(slices),
                                              1000.0 * elapsed / max(1, rounds * len(slices))))
"""


def _slice_streams(directory: Path) -> list[Path]:
    """Real x264 and x265 streams, hand-made ones (field pictures, POC type 1, MMCO 5), and a
    damaged copy of one (headers that must be refused the same way), as files."""
    import importlib.util

    from host_sim import clips

    spec = importlib.util.spec_from_file_location("_syntax_writer", ROOT / "tests" / "core" / "_syntax_writer.py")
    assert spec is not None and spec.loader is not None
    writer = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "firmware"))
    spec.loader.exec_module(writer)
    streams = {
        "cabac.h264": clips.encode_ffmpeg(frames=30, extra=("-x264-params", "bframes=3:b-pyramid=normal:slices=4")),
        "cavlc.h264": clips.encode_ffmpeg(frames=30, extra=("-profile:v", "baseline")),
        "mbaff.h264": clips.encode_ffmpeg(frames=30, extra=("-x264-params", "interlaced=1:bframes=2")),
        "refs.h264": clips.encode_ffmpeg(frames=30, extra=("-x264-params", "ref=16:bframes=0")),
        "open.h265": clips.encode_pyav_h265(frames=30, gop=8, bframes=3, open_gop=True, slices=2, ctu=16),
        "wpp.h265": clips.encode_ffmpeg_h265(frames=4, width=1280, height=720, bframes=1, ctu=16, x265="wpp=1"),
        "hrd.h265": clips.encode_ffmpeg_h265(frames=30, bframes=2, x265="hrd=1:vbv-bufsize=500:vbv-maxrate=500"),
    }
    I, P, B = writer.I, writer.P, writer.B
    fields = writer.H264Stream(frame_mbs_only=0, poc_type=1, offsets_for_ref_frame=(4, 2), offset_for_non_ref_pic=-2,
                               bottom_field_pic_order_in_frame_present=1)
    pictures = [(I, dict(idr=True, delta1=1)), (P, dict(frame_num=1, field="top", delta0=3)),
                (P, dict(frame_num=1, field="bottom")), (B, dict(frame_num=2, ref_idc=0, delta1=-1)),
                (P, dict(frame_num=2, mmcos=((5,),))), (P, dict(frame_num=1, weights=None))]
    streams["fields.h264"] = b"".join(
        b"\x00\x00\x00\x01" + unit for unit in [fields.sps(), fields.pps()]
        + [fields.slice(kind, **f)[0] for kind, f in pictures])
    damaged = bytearray(streams["cabac.h264"])
    for position in range(40, len(damaged), 397):  # a byte in every few hundred: some land in headers
        damaged[position] ^= 0x5A
    streams["damaged.h264"] = bytes(damaged)
    paths = []
    for name, data in streams.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_slice_headers_and_picture_order_on_micropython_match_cpython(tmp_path):
    """The core reads every slice header of real and hand-made streams, and counts their picture
    order, on the VM exactly as on CPython (where tests/core/test_core_slice_headers.py checks
    them against FFmpeg); damaged headers are refused with the same error."""
    paths = _slice_streams(tmp_path)
    script = tmp_path / "slices.py"
    script.write_text(SLICE_HEADERS_SCRIPT)
    files = []
    for path in paths:
        files += ["--file", "/data/%s=%s" % (path.name, path)]
    proc = run("exec", str(script), *files, "--", *["/data/" + p.name for p in paths], timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    on_vm = proc.stdout.decode().splitlines()
    here = subprocess.run([sys.executable, str(script), *map(str, paths)], capture_output=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "firmware")))
    assert here.returncode == 0, here.stderr.decode()[-3000:]
    on_cpython = here.stdout.decode().splitlines()
    assert [l for l in on_vm if not l.startswith("TIME")] == [l for l in on_cpython if not l.startswith("TIME")]
    assert sum(l.startswith("SLICE") for l in on_vm) > 400
    assert any(l.startswith("REFUSED SliceHeaderError") for l in on_vm)
    times = [l for l in on_vm if l.startswith("TIME")]
    assert len(times) == len(paths)
    print("\n".join(["MicroPython:"] + times + ["CPython:"] + [l for l in on_cpython if l.startswith("TIME")]))


# The core's AES-CTR on the VM, whose only backend is the pure AES (no cryptolib there): the
# pieces of each case alternately by xor and by xor_into in place, as a picture's ranges go.
AES_SCRIPT = """
import json
from segbind_core import aes
print("BACKENDS " + " ".join(aes.BACKENDS))
for case in json.loads(CASES):
    data = bytes.fromhex(case["data"])
    stream = aes.CtrKey(bytes.fromhex(case["key"])).keystream(bytes.fromhex(case["counter"]))
    buf = bytearray(data)
    view = memoryview(buf)
    edges = [0] + case["cuts"] + [len(data)]
    for j in range(len(edges) - 1):
        a, b = edges[j], edges[j + 1]
        if j % 2:
            stream.xor_into(view[a:b], view[a:b])
        else:
            view[a:b] = stream.xor(view[a:b])
    print("OUT " + bytes(buf).hex())
"""


def test_aes_ctr_on_the_vm_matches_cryptography():
    """Random keys, counter blocks (a third of them just below 2**128: the wrap inside the data),
    lengths and cut points; the expected bytes from OpenSSL through ``cryptography``."""
    cases = []
    for i in range(12):
        data = os.urandom(int.from_bytes(os.urandom(2), "big") % 700)
        counter = (1 << 128) - 1 - os.urandom(1)[0] % 5 if i % 3 == 0 else int.from_bytes(os.urandom(16), "big")
        cuts = sorted(int.from_bytes(os.urandom(2), "big") % (len(data) + 1) for _ in range(i % 5))
        cases.append({"key": os.urandom(16).hex(), "counter": counter.to_bytes(16, "big").hex(),
                      "data": data.hex(), "cuts": cuts})
    script = "CASES = %r\n" % json.dumps(cases) + AES_SCRIPT
    proc = run("exec", "-", stdin=script.encode())
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "BACKENDS pure"
    expected = ["OUT " + Cipher(algorithms.AES(bytes.fromhex(c["key"])), modes.CTR(bytes.fromhex(c["counter"])))
                .encryptor().update(bytes.fromhex(c["data"])).hex() for c in cases]
    assert lines[1:] == expected
