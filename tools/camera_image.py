#!/usr/bin/env python3
"""Minimal Debian ARM "camera" root filesystems, run under QEMU user emulation.

The segbind camera agent is tested on a real ARM userland: a Debian bookworm
rootfs built with ``debootstrap`` for ``armhf`` (32-bit ARMv7, the common
camera SoC) or ``arm64``, entered with ``chroot``; every ARM binary inside is
executed by ``qemu-<arch>-static`` through the kernel's binfmt_misc.

Commands (run as root; needs ``debootstrap``, ``qemu-user-static``, ``unshare``)::

    python3 tools/camera_image.py build --arch armhf
    python3 tools/camera_image.py path  --arch arm64
    python3 tools/camera_image.py run   --arch armhf --bind ./firmware:/opt/fw:ro -- \\
        python3 -c "import platform; print(platform.machine())"
    python3 tools/camera_image.py run   --arch armhf --overlay /tmp/cam1 \\
        --bind ./dist:/mnt/bundle:ro -- tar -xzf /mnt/bundle/segbind-bundle.tar.gz -C /

Importable API (no work is done at import time)::

    ensure_image(arch) -> Path                       # build if needed, return rootfs
    run_in_image(arch, argv, binds=(), env=None, timeout=None, capture=False)
        -> subprocess.CompletedProcess
    popen_in_image(arch, argv, binds=(), env=None, **popen_kwargs) -> Popen
    (run_in_image, popen_in_image and guest_command also take overlay=DIR: a
    throwaway writable layer over the cached image, see "Running")

Package set (``RECIPE["packages"]``): ``python3-minimal`` + ``libpython3.11-stdlib`` + ``python3-cryptography``
-------------------------------------------------------------------------------------------------------
The camera daemon needs only the interpreter and what the MQTT client library
paho-mqtt 2.x (pure Python, shipped vendored inside the agent's flashable
bundle, *not* from Debian, whose bookworm package is 1.6) imports at module
load.  paho-mqtt 2.1/2.2 ``client.py`` imports unconditionally: base64,
collections, enum, errno, functools, hashlib, logging, os, platform, select,
socket, string, struct, threading, time, typing, urllib.parse,
urllib.request, uuid, warnings (ssl, socks and dns.resolver are optional).
Found empirically in an armhf rootfs with ``python3-minimal`` alone:

* present: socket, select, ssl (with _ssl/_hashlib from OpenSSL), logging,
  threading, hashlib, base64, struct, platform, enum, urllib.parse, email;
* missing: ``uuid`` and ``http`` (so ``urllib.request``, which imports
  http.client, fails; ``tempfile`` also imports the missing ``shutil``).
  ``import paho.mqtt.client`` fails with "No module named 'http'".

All of uuid.py, http/, shutil.py live in Debian's ``libpython3.11-stdlib`` and
in no smaller package, so the recipe starts with
``python3-minimal,libpython3.11-stdlib``.

AES: the camera encrypts every picture's slice data with AES-128-CTR (the
format's CENC 'cenc' encryption, ``segbind_core.aes``), and a camera ships
OpenSSL, so the image has Debian's ``python3-cryptography`` (38.0.4 in
bookworm: AES-CTR through OpenSSL, the core's ``cryptography`` backend).
Without it the core falls back to its pure-Python AES, which runs at about
0.15 MB/s here under qemu-user: 0.3 times a 4 Mbit/s camera's real time,
against about 85 MB/s (170 times) with OpenSSL (``tools/bench_arm.py
--aes-only``). ``python3-cffi-backend`` is listed too: python3-cryptography
depends on it only through the virtual packages
``python3-cffi-backend-api-min``/``-max``, which debootstrap cannot resolve
(apt can). The cost, measured on the armhf image: 3.5 MB of packages
(python3-cryptography 2.6 MB, and the ``python3``/``python3.11`` interpreter
packages it depends on, 0.75 MB, plus python3-cffi-backend 0.15 MB), and
7.3 MB of standard-library bytecode that ``python3.11``'s configuration
compiles: the root filesystem grows from 93 to 104 MB on disk.

Consequence the firmware must know: ``libpython3.11-stdlib`` brings the rest of
the standard library, **including ``hmac``, ``json``, ``queue``, ``secrets``**.
This Linux camera image is therefore *not* the hmac-less target; the
hmac-less constraint is MicroPython's (see docs / NOTES).  The exact claims
are ``GUEST_MODULES_PRESENT`` and ``GUEST_MODULES_ABSENT`` below and are
checked by tests/test_camera_image.py.  Modules absent from the image (they are
separate Debian packages): tkinter, lib2to3, ensurepip, idlelib, dbm.gnu.
pip is not installed either.

Cache, atomicity, locking
-------------------------
Image: ``$SEGBIND_IMAGE_CACHE/<arch>-<recipehash>/rootfs`` (default cache
``~/.cache/segbind/images``).  The hash covers every field of ``RECIPE`` plus
the arch, so changing the recipe yields a new image.  A build runs in
``rootfs.tmp-*`` next to it under an ``fcntl.flock`` on ``.lock`` and is
renamed to ``rootfs`` only when complete: an interrupted build is never
taken as cached (stale temp dirs are removed by the next build).  Build logs
go to ``<arch>-<recipehash>/build.log``.

Mirror: the first enabled ``deb`` source for the recipe's suite with
component ``main`` in /etc/apt/sources.list, sources.list.d/*.list and
sources.list.d/*.sources (deb822); if none, the env var
``SEGBIND_DEBIAN_MIRROR``.  ``--mirror`` / ``mirror=`` overrides both.  No host
name is hard-coded.

Running
-------
Every guest command (and debootstrap's second stage) runs inside a private
mount namespace (``unshare --mount --propagation private``): /proc, a tmpfs on
/dev/shm and the ``--bind`` mounts exist only in that namespace and vanish when
the command ends, even if it is killed, so nothing stays mounted on the host
and deleting the cache can never reach host /dev.  /dev is the static minimal
set debootstrap created (null, zero, full, random, urandom, tty, ptmx).
The network namespace is the host's: a guest can reach a broker listening on
the host's 127.0.0.1.  Guest environment: PATH, HOME=/root, LANG=C.UTF-8
plus what ``env`` adds; the host environment is not passed through.

Throwaway writable layer (``overlay=DIR`` / ``--overlay DIR``): the cached
rootfs becomes the read-only lower layer of an overlayfs whose upper layer is
``DIR/upper`` on the host, so a guest can install software into its real paths
(``tar -xzf bundle.tar.gz -C /``, as a camera's firmware build or a Dockerfile
does) and later calls with the same DIR see it, while the cached image is
never modified (bind targets are created in the upper layer too).  One live
guest per DIR at a time (an flock on ``DIR/.lock``, held by the guest command
and whatever it leaves running; a second user gets exit 125).  Delete DIR to
start again from the pristine image.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

__all__ = [
    "RECIPE",
    "ARCHES",
    "GUEST_MODULES_PRESENT",
    "GUEST_MODULES_ABSENT",
    "ImageError",
    "Bind",
    "recipe_for",
    "recipe_hash",
    "cache_root",
    "image_dir",
    "image_path",
    "is_cached",
    "find_mirror",
    "ensure_binfmt",
    "ensure_image",
    "run_in_image",
    "popen_in_image",
    "guest_command",
    "host_env",
    "parse_bind",
    "main",
]

# --------------------------------------------------------------------------
# The image recipe: the ONE place that defines what a camera image is.
# Any change here changes recipe_hash() and therefore the cache path.
# Bump "recipe_version" when the build procedure below changes meaningfully.
# --------------------------------------------------------------------------
RECIPE: dict = {
    "recipe_version": 1,
    "suite": "bookworm",
    "variant": "minbase",
    "arches": {
        # debian arch: (binfmt_misc entry name, /usr/lib/binfmt.d conf file)
        "armhf": {"binfmt": "qemu-arm", "conf": "qemu-arm.conf"},
        "arm64": {"binfmt": "qemu-aarch64", "conf": "qemu-aarch64.conf"},
    },
    # python3-minimal: the interpreter; libpython3.11-stdlib: uuid, http,
    # shutil needed by paho-mqtt 2.x; python3-cryptography: OpenSSL's AES for
    # the core's AES-CTR, and python3-cffi-backend, which debootstrap does not
    # resolve for it (see module docstring).
    "packages": ["python3-minimal", "libpython3.11-stdlib", "python3-cryptography", "python3-cffi-backend"],
    # Removed after the build to keep the image small (paths inside rootfs).
    "strip": [
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*_*",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
    ],
    # Files written into the image (camera basics; "localhost" must resolve).
    "files": {
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "etc/hostname": "camera\n",
    },
}

ARCHES: tuple[str, ...] = tuple(RECIPE["arches"])

# Verified in the built images (tests/test_camera_image.py asserts both lists).
GUEST_MODULES_PRESENT: tuple[str, ...] = (
    # needed by paho-mqtt 2.x
    "base64", "collections", "enum", "errno", "functools", "hashlib", "logging",
    "os", "platform", "select", "socket", "ssl", "string", "struct", "threading",
    "time", "typing", "urllib.parse", "urllib.request", "http.client", "uuid",
    "warnings",
    # brought in by libpython3.11-stdlib as well (NOT hmac-less!)
    "hmac", "json", "queue", "secrets", "shutil", "tempfile", "binascii",
    "_hashlib",
    # python3-cryptography: the core's AES-CTR backend (segbind_core.aes)
    "cryptography", "cryptography.hazmat.primitives.ciphers", "_cffi_backend",
)
GUEST_MODULES_ABSENT: tuple[str, ...] = (
    "tkinter", "lib2to3", "ensurepip", "idlelib", "dbm.gnu", "pip",
)

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HERE = Path(__file__).resolve()
_MIRROR_ENV = "SEGBIND_DEBIAN_MIRROR"
_CACHE_ENV = "SEGBIND_IMAGE_CACHE"


class ImageError(Exception):
    """A camera image could not be built or used (one-line message)."""


# ------------------------------------------------------------------ recipe


def _check_arch(arch: str) -> str:
    if arch not in RECIPE["arches"]:
        raise ImageError(f"unknown arch {arch!r} (choose from {', '.join(ARCHES)})")
    return arch


def recipe_for(arch: str, recipe: Mapping | None = None) -> dict:
    """The recipe fields that define the image for *arch* (hashed)."""
    recipe = RECIPE if recipe is None else recipe
    if arch not in recipe["arches"]:
        raise ImageError(f"unknown arch {arch!r} (choose from {', '.join(recipe['arches'])})")
    out = {k: v for k, v in recipe.items() if k != "arches"}
    out["arch"] = arch
    return out


def recipe_hash(arch: str, recipe: Mapping | None = None) -> str:
    blob = json.dumps(recipe_for(arch, recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get(_CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "segbind" / "images"


def image_dir(arch: str) -> Path:
    return cache_root() / f"{_check_arch(arch)}-{recipe_hash(arch)}"


def image_path(arch: str) -> Path:
    """Path of the (possibly not yet built) rootfs for *arch*."""
    return image_dir(arch) / "rootfs"


def is_cached(arch: str) -> bool:
    root = image_path(arch)
    return (root / "etc" / "segbind-image.json").is_file()


# ------------------------------------------------------------------ mirror


def _deb822_stanzas(text: str) -> Iterable[dict]:
    stanza: dict = {}
    last = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if raw[0] in " \t" and last:
            stanza[last] += " " + raw.strip()
            continue
        key, sep, val = raw.partition(":")
        if sep:
            last = key.strip().lower()
            stanza[last] = val.strip()


def _one_line_entries(text: str) -> Iterable[tuple[str, list[str], list[str]]]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop [arch=... signed-by=...]
        parts = line.split()
        if len(parts) < 3 or parts[0] != "deb":
            continue
        yield parts[1], [parts[2]], parts[3:]


def find_mirror(suite: str | None = None, apt_dir: str | os.PathLike = "/etc/apt",
                environ: Mapping[str, str] | None = None) -> str:
    """Debian mirror URL apt uses for *suite*/main; else $SEGBIND_DEBIAN_MIRROR."""
    suite = suite or RECIPE["suite"]
    environ = os.environ if environ is None else environ
    apt_dir = Path(apt_dir)
    candidates: list[tuple[str, list[str], list[str]]] = []
    files: list[Path] = []
    if (apt_dir / "sources.list").is_file():
        files.append(apt_dir / "sources.list")
    d = apt_dir / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        if f.suffix == ".sources":
            for st in _deb822_stanzas(text):
                if st.get("enabled", "yes").lower() in ("no", "false", "0"):
                    continue
                if "deb" not in st.get("types", "").split():
                    continue
                for uri in st.get("uris", "").split():
                    candidates.append((uri, st.get("suites", "").split(),
                                       st.get("components", "").split()))
        else:
            candidates.extend(_one_line_entries(text))
    for uri, suites, comps in candidates:
        if suite in suites and "main" in comps:
            return uri.rstrip("/")
    env = environ.get(_MIRROR_ENV, "").strip()
    if env:
        return env.rstrip("/")
    raise ImageError(f"no apt source for '{suite} main' in {apt_dir} and ${_MIRROR_ENV} is not set")


# ------------------------------------------------------------------ host setup


def _require_host() -> None:
    if os.geteuid() != 0:
        raise ImageError("must run as root (debootstrap, chroot and mount need it)")
    for tool in ("debootstrap", "chroot", "unshare", "mount"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise ImageError(f"'{tool}' not found (apt-get install debootstrap qemu-user-static)")


def ensure_binfmt(arch: str) -> None:
    """Register qemu-user-static for *arch* with binfmt_misc if not yet done."""
    info = RECIPE["arches"][_check_arch(arch)]
    bdir = Path("/proc/sys/fs/binfmt_misc")
    if not (bdir / "register").exists():
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(bdir)],
                           capture_output=True, text=True)
        if r.returncode != 0 and not (bdir / "register").exists():
            raise ImageError(f"cannot mount binfmt_misc: {r.stderr.strip() or r.returncode}")
    entry = bdir / info["binfmt"]
    if not entry.exists():
        conf = Path("/usr/lib/binfmt.d") / info["conf"]
        if not conf.is_file():
            raise ImageError(f"{conf} missing (apt-get install qemu-user-static)")
        rule = conf.read_text().strip().splitlines()[0]
        try:
            with open(bdir / "register", "w") as f:
                f.write(rule)
        except OSError as e:
            if not entry.exists():  # EEXIST when a concurrent process won the race
                raise ImageError(f"cannot register {info['binfmt']} with binfmt_misc: {e}") from None
    state = entry.read_text().splitlines()[0].strip() if entry.exists() else "missing"
    if state != "enabled":
        raise ImageError(f"binfmt_misc entry {entry} is {state}")


# ------------------------------------------------------------------ building


def mounts_under(path: Path) -> list[str]:
    p = str(path.resolve())
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == p or mp.startswith(p + "/"):
                out.append(mp)
    return out


def safe_rmtree(path: Path) -> None:
    mounted = mounts_under(path)
    if mounted:
        raise ImageError(f"refusing to delete {path}: still mounted: {mounted[0]}")
    shutil.rmtree(path, ignore_errors=True)


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child if the builder dies (PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


# Build steps run in private mount + PID namespaces: their mounts never reach
# the host, and if the builder dies (even SIGKILL) PR_SET_PDEATHSIG kills
# unshare, --kill-child kills the namespace's PID 1, and the kernel then kills
# every process left in it (debootstrap forks dpkg pipelines that would
# otherwise run on as orphans, writing into a directory a later build deletes).
_BUILD_NS = ("unshare", "--mount", "--propagation", "private", "--pid", "--fork",
             "--kill-child")


def _run_logged(argv: Sequence[str], log, what: str, log_path: Path, lock_fd: int) -> None:
    """Run a build step.  It inherits the lock fd, so even if the builder is
    killed, nobody else starts building until every orphan has exited; and it
    runs in its own process group, killed as a whole if the builder is
    interrupted."""
    log.write(f"\n$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_host_env(), pass_fds=(lock_fd,),
                            start_new_session=True, preexec_fn=_die_with_parent)
    with group_killed_if_interrupted(proc):
        rc = proc.wait()
    if rc != 0:
        raise ImageError(f"{what} failed (exit {rc}); see {log_path}")


@contextlib.contextmanager
def group_killed_if_interrupted(proc: subprocess.Popen) -> Iterator[None]:
    """Around waiting on ``proc`` (started with ``start_new_session``): on any exception or
    interrupt, SIGKILL its whole process group and reap it, then re-raise."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _host_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(PATH=GUEST_PATH, LANG="C.UTF-8", HOME="/root", DEBIAN_FRONTEND="noninteractive")
    return env


def _strip(root: Path, patterns: Sequence[str]) -> None:
    for pat in patterns:
        for p in root.glob(pat):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def ensure_image(arch: str, *, mirror: str | None = None, verbose: bool = False) -> Path:
    """Return the rootfs for *arch*, building (once, under a lock) if needed."""
    _check_arch(arch)
    root = image_path(arch)
    if is_cached(arch):
        return root
    _require_host()
    ensure_binfmt(arch)
    idir = image_dir(arch)
    idir.mkdir(parents=True, exist_ok=True)
    with open(idir / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if is_cached(arch):  # somebody else built it while we waited
            return root
        for stale in idir.glob("rootfs.tmp-*"):
            safe_rmtree(stale)
        if root.exists():  # incomplete/corrupt (no marker): never reuse
            safe_rmtree(root)
        _build(arch, idir, root, mirror or find_mirror(), verbose, lockf.fileno())
    return root


def _build(arch: str, idir: Path, root: Path, mirror: str, verbose: bool, lock_fd: int) -> None:
    recipe = recipe_for(arch)
    tmp = Path(tempfile.mkdtemp(prefix="rootfs.tmp-", dir=idir))
    log_path = idir / "build.log"
    t0 = time.monotonic()
    if verbose:
        print(f"building {arch} image in {tmp} from {mirror} (log: {log_path})", file=sys.stderr)
    try:
        with open(log_path, "w") as log:
            log.write(json.dumps(recipe, sort_keys=True) + f"\nmirror: {mirror}\n")
            _run_logged([*_BUILD_NS, "debootstrap", "--foreign", f"--variant={recipe['variant']}",
                         f"--arch={arch}", "--include=" + ",".join(recipe["packages"]),
                         recipe["suite"], str(tmp), mirror],
                        log, "debootstrap first stage", log_path, lock_fd)
            if verbose:
                print(f"  first stage done ({time.monotonic() - t0:.0f} s); second stage "
                      "under emulation...", file=sys.stderr)
            # Private mount namespace: debootstrap's /proc and /sys mounts die with it.
            _run_logged([*_BUILD_NS, "chroot", str(tmp),
                         "/debootstrap/debootstrap", "--second-stage"],
                        log, "debootstrap second stage (chroot)", log_path, lock_fd)
            _strip(tmp, recipe["strip"])
            for rel, content in recipe["files"].items():
                (tmp / rel).write_text(content)
            dev_null = tmp / "dev" / "null"
            if not (dev_null.exists() and dev_null.is_char_device()):
                raise ImageError(f"{dev_null} is not a device node after debootstrap")
            py = tmp / "usr" / "bin" / "python3"
            if not (py.exists() or py.is_symlink()):
                raise ImageError(f"{py} missing after debootstrap; see {log_path}")
            marker = dict(recipe, recipe_hash=recipe_hash(arch), mirror=mirror,
                          built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          build_seconds=round(time.monotonic() - t0, 1))
            (tmp / "etc" / "segbind-image.json").write_text(json.dumps(marker, indent=1) + "\n")
        if mounts_under(tmp):
            raise ImageError(f"something is still mounted under {tmp}")
        os.rename(tmp, root)  # atomic: rootfs appears only when complete
    except BaseException:
        with contextlib.suppress(Exception):
            safe_rmtree(tmp)
        raise
    if verbose:
        print(f"  built in {time.monotonic() - t0:.0f} s: {root}", file=sys.stderr)


# ------------------------------------------------------------------ running


class Bind(tuple):
    """(host, guest, readonly)."""

    def __new__(cls, host: str, guest: str, readonly: bool = False):
        return super().__new__(cls, (host, guest, readonly))


def parse_bind(spec: str) -> Bind:
    """'HOSTDIR:GUESTDIR[:ro|:rw]' -> Bind; raises ImageError on bad input."""
    parts = spec.split(":")
    ro = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        ro = parts[2] == "ro"
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ImageError(f"bad bind {spec!r}: expected HOSTPATH:GUESTPATH[:ro]")
    return _normalize_bind((parts[0], parts[1], ro))


def _normalize_bind(b) -> Bind:
    if isinstance(b, str):
        return parse_bind(b)
    if len(b) == 2:
        host, guest, ro = b[0], b[1], False
    elif len(b) == 3:
        host, guest, ro = b
    else:
        raise ImageError(f"bad bind {b!r}: expected (host, guest[, readonly])")
    host = os.path.abspath(os.fspath(host))
    guest = os.fspath(guest)
    if not os.path.exists(host):
        raise ImageError(f"bind source {host} does not exist")
    if not guest.startswith("/") or ".." in guest.split("/"):
        raise ImageError(f"bind target {guest!r} must be an absolute guest path without '..'")
    return Bind(host, os.path.normpath(guest), bool(ro))


def _guest_target(root: Path, guest: str, is_dir: bool) -> str:
    target = root / guest.lstrip("/")
    real_root = os.path.realpath(root)
    real = os.path.realpath(target)
    if real != real_root and not real.startswith(real_root + "/"):
        raise ImageError(f"bind target {guest} resolves outside the image ({real})")
    if is_dir:
        os.makedirs(real, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        if not os.path.exists(real):
            open(real, "a").close()
    return real


def _overlay_dirs(overlay: str | os.PathLike) -> dict:
    """Create DIR/{upper,work,merged} (host side) for an overlay guest."""
    base = Path(os.path.abspath(os.fspath(overlay)))
    if re.search(r"[,:\s]", str(base)):
        raise ImageError(f"overlay dir {str(base)!r}: no commas, colons or spaces (mount options)")
    layer = {k: str(base / k) for k in ("upper", "work", "merged")}
    try:
        for d in layer.values():
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise ImageError(f"overlay dir {base}: {e.strerror}") from None
    layer["lock"] = str(base / ".lock")
    return layer


def guest_command(arch: str, argv: Sequence[str], binds: Iterable = (),
                  env: Mapping[str, str] | None = None, *, cwd: str = "/",
                  overlay: str | os.PathLike | None = None) -> list[str]:
    """Host argv that runs *argv* in the *arch* image (building it if needed).

    Run it with the environment from host_env().  The chain is
    unshare -> python helper -> (mounts, chroot) -> exec argv: no extra
    process stays in between, so signals sent to the returned process reach
    the guest command itself.
    """
    if isinstance(argv, (str, bytes)) or not argv:
        raise ImageError("argv must be a non-empty sequence of strings")
    if not str(cwd).startswith("/"):
        raise ImageError(f"guest cwd {cwd!r} must be absolute")
    binds = [_normalize_bind(b) for b in binds]
    root = ensure_image(arch)
    layer = None
    if overlay is not None:
        layer = _overlay_dirs(overlay)
    mounts = []
    for host, guest, ro in binds:
        if layer is None:
            mounts.append([host, _guest_target(root, guest, os.path.isdir(host)), ro])
        else:  # resolved inside the namespace, against the merged tree
            mounts.append([host, guest, ro, os.path.isdir(host)])
    genv = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    if env:
        genv.update({str(k): str(v) for k, v in env.items()})
    spec = {"root": str(root), "mounts": mounts, "argv": [os.fspath(a) for a in argv],
            "env": genv, "cwd": str(cwd), "overlay": layer}
    return ["unshare", "--mount", "--propagation", "private", "--",
            sys.executable, "-I", str(_HERE), "_nsexec", json.dumps(spec)]


def host_env() -> dict:
    """Environment for the host side of guest_command() (guest env is separate)."""
    return _host_env()


def popen_in_image(arch: str, argv: Sequence[str], binds: Iterable = (),
                   env: Mapping[str, str] | None = None, *, cwd: str = "/",
                   overlay: str | os.PathLike | None = None,
                   **popen_kwargs) -> subprocess.Popen:
    """Start *argv* in the image without waiting (e.g. the agent as a daemon).

    Extra keyword arguments go to subprocess.Popen; start_new_session
    defaults to True so os.killpg(p.pid, ...) reaches everything it spawned.
    terminate()/kill() signal the guest command directly.
    """
    cmd = guest_command(arch, argv, binds, env, cwd=cwd, overlay=overlay)
    popen_kwargs.setdefault("start_new_session", True)
    popen_kwargs.setdefault("env", _host_env())
    return subprocess.Popen(cmd, **popen_kwargs)


def run_in_image(arch: str, argv: Sequence[str], binds: Iterable = (),
                 env: Mapping[str, str] | None = None, timeout: float | None = None,
                 capture: bool = False, *, cwd: str = "/", input: bytes | str | None = None,
                 text: bool = True, check: bool = False,
                 overlay: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run *argv* inside the *arch* image (building it if needed) and wait.

    binds: iterable of 'HOST:GUEST[:ro]' strings or (host, guest[, readonly]);
    GUEST directories/files are created in the image when missing.
    env: added to the guest's base environment (PATH, HOME, LANG); the host
    environment is not passed through.  timeout: seconds; on expiry the whole
    process group is killed and subprocess.TimeoutExpired is raised.
    capture: capture stdout/stderr (str when text=True, else bytes).
    overlay: host dir of a throwaway writable layer over the image (see the
    module docstring); None runs on the cached rootfs itself.
    Returns a CompletedProcess whose returncode is the guest command's
    (negative if killed by a signal, 127 if the command was not found in the
    guest, 125 if a mount failed).
    """
    new_session = timeout is not None
    kw: dict = {"start_new_session": new_session}
    if capture:
        kw.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        kw["stdin"] = subprocess.PIPE
    if text:
        kw.update(text=True, errors="replace")
    with popen_in_image(arch, argv, binds, env, cwd=cwd, overlay=overlay, **kw) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                if new_session:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            raise
    res = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
    if check:
        res.check_returncode()
    return res


def _nsexec(spec_json: str) -> None:
    """Inside the private mount namespace: mount, chroot, exec (never returns)."""
    spec = json.loads(spec_json)
    root = spec["root"]

    def mount(*args: str) -> None:
        r = subprocess.run(["mount", *args], capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(f"camera_image: mount {' '.join(args)}: {r.stderr.strip()}\n")
            os._exit(125)

    layer = spec.get("overlay")
    if layer:
        lock_fd = os.open(layer["lock"], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            sys.stderr.write(f"camera_image: overlay {os.path.dirname(layer['lock'])} "
                             "is in use by another guest\n")
            os._exit(125)
        os.set_inheritable(lock_fd, True)  # held by the guest command and its children
        mount("-t", "overlay", "overlay", "-o",
              f"lowerdir={root},upperdir={layer['upper']},workdir={layer['work']}",
              layer["merged"])
        root = layer["merged"]
    mount("-t", "proc", "proc", os.path.join(root, "proc"))
    mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "shm", os.path.join(root, "dev/shm"))
    for m in spec["mounts"]:
        host, target, ro = m[0], m[1], m[2]
        if layer:
            try:
                target = _guest_target(Path(root), target, m[3])
            except (ImageError, OSError) as e:
                sys.stderr.write(f"camera_image: bind target {m[1]}: {e}\n")
                os._exit(125)
        mount("--bind", host, target)
        if ro:
            mount("-o", "remount,bind,ro", target)
    os.chroot(root)
    try:
        os.chdir(spec["cwd"])
    except OSError as e:
        sys.stderr.write(f"camera_image: guest cwd {spec['cwd']}: {e.strerror}\n")
        os._exit(125)
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as e:
        sys.stderr.write(f"camera_image: cannot run {argv[0]!r} in guest: {e.strerror}\n")
        os._exit(127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126)


# ------------------------------------------------------------------ CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="camera_image.py",
        description="Build and use minimal Debian bookworm ARM 'camera' root filesystems "
                    "(debootstrap + qemu-user-static + chroot). Cache: "
                    f"${_CACHE_ENV} or ~/.cache/segbind/images.",
        epilog="example: camera_image.py run --arch armhf --bind ./firmware:/opt/fw:ro -- "
               "python3 -c 'import platform; print(platform.machine())'")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(sp):
        sp.add_argument("--arch", required=True, choices=ARCHES, help="guest architecture")
        sp.add_argument("--mirror", help="Debian mirror URL (default: from apt sources, "
                        f"else ${_MIRROR_ENV})")
        sp.add_argument("-q", "--quiet", action="store_true", help="no build progress on stderr")

    b = sub.add_parser("build", help="build the image (no-op if cached); print its rootfs path")
    common(b)
    pa = sub.add_parser("path", help="print the rootfs path (building if needed)")
    common(pa)
    r = sub.add_parser("run", help="run CMD inside the image; exit with CMD's status",
                       usage="%(prog)s --arch ARCH [--bind HOST:GUEST[:ro] ...] [--env K=V ...] "
                             "[--cwd DIR] [--overlay DIR] [--timeout S] -- CMD [ARG ...]")
    common(r)
    r.add_argument("--bind", action="append", default=[], metavar="HOST:GUEST[:ro]",
                   help="bind-mount a host path into the guest (repeatable)")
    r.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="extra guest environment variable (repeatable)")
    r.add_argument("--cwd", default="/", help="working directory inside the guest")
    r.add_argument("--overlay", metavar="DIR",
                   help="throwaway writable layer over the image, kept in DIR (reusable)")
    r.add_argument("--timeout", type=float, help="kill CMD after this many seconds (exit 124)")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD",
                   help="command and arguments (after --)")
    sub.add_parser("recipe", help="print the image recipe and per-arch hashes as JSON")
    return p


def _run_forwarding_signals(arch: str, cmd: Sequence[str], binds, env, timeout, cwd, overlay) -> int | None:
    """``run``: the guest command's exit status (None on timeout). SIGTERM, SIGHUP and SIGINT
    sent to this tool are passed on to the guest command, and the tool waits for it, as
    ``docker run`` does: a ``kill`` of the tool stops the agent cleanly, never orphans it."""
    new_session = timeout is not None  # the process group is killed on timeout
    proc = popen_in_image(arch, cmd, binds, env, cwd=cwd, overlay=overlay, start_new_session=new_session)

    def forward(signum, _frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, forward)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_nsexec"] and len(argv) == 2:
        _nsexec(argv[1])
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.cmd == "recipe":
            print(json.dumps({"recipe": RECIPE,
                              "images": {a: str(image_path(a)) for a in ARCHES}}, indent=1))
            return 0
        root = ensure_image(args.arch, mirror=args.mirror, verbose=not args.quiet)
        if args.cmd in ("build", "path"):
            print(root)
            return 0
        cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not cmd:
            parser.error("run: missing CMD (put it after --)")
        env = {}
        for kv in args.env:
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise ImageError(f"bad --env {kv!r}: expected K=V")
            env[k] = v
        binds = [parse_bind(s) for s in args.bind]
        rc = _run_forwarding_signals(args.arch, cmd, binds, env, args.timeout, args.cwd, args.overlay)
        if rc is None:
            print(f"camera_image: timed out after {args.timeout} s", file=sys.stderr)
            return 124
        return 128 - rc if rc < 0 else rc
    except ImageError as e:
        print(f"camera_image: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
