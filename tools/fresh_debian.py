#!/usr/bin/env python3
"""Prove the README's two commands on a fresh Debian bookworm machine, in a chroot.

    sudo python3 tools/fresh_debian.py                      # run.sh, then test.sh (every test)
    sudo python3 tools/fresh_debian.py --tests "-x -q"      # pytest arguments for test.sh
    sudo python3 tools/fresh_debian.py --run-only           # only bash tools/run.sh
    sudo python3 tools/fresh_debian.py --keep               # keep the root to look around in
    sudo python3 tools/fresh_debian.py --run="--broker local --cameras 8"   # arguments for run.sh

What it does, each time from scratch:

1. The fresh machine.  Once, and cached: ``debootstrap --variant=minbase
   --include=python3,ca-certificates bookworm ROOT MIRROR`` (amd64, the host's own
   architecture: no emulation), its apt sources set to the mirror's ``bookworm``,
   ``bookworm-updates`` and (when the host has one) ``bookworm-security``, packed into a
   tarball, the pristine copy: ``~/.cache/segbind/fresh-bookworm/bookworm-<hash>.tar``
   ($SEGBIND_FRESH_CACHE overrides the directory; ``--rebuild`` makes it again).  Every
   proof unpacks it into a new directory next to it and deletes that at the end.

   Why python3 and ca-certificates and nothing else: minbase is Debian's smallest root (no
   python3 at all), while a Debian server installed from the installer has Debian's python3
   (the "standard" task) and the CA certificates; the README's commands are started with
   bash and need a python3 to exist.  That python3 is Debian's, "externally managed"
   (PEP 668), so ``pip install`` into it fails, as on a real machine.  Everything else
   (python3-venv, ffmpeg, mosquitto, nodejs, npm, qemu-user-static, debootstrap, the PyPI
   and npm packages) the scripts must install themselves.  git is not installed: the
   repository is cloned on the host.

2. The repository: a fresh ``git clone`` of the given commit (default HEAD of the repository
   this script is in), never the working tree, so uncommitted changes, untracked files,
   .venv, node_modules and caches are not carried over.  It lands in ``/root/segbind``.

3. The commands, each as root in the root (``chroot``), in a private mount and PID namespace
   (``unshare --mount --pid --fork``) where /proc, /sys, /dev, /dev/pts, a /dev/shm and /run
   tmpfs and binfmt_misc are mounted: they vanish with the namespace, nothing stays mounted
   on the host (checked in /proc/mounts at the end).  PID 1 there is a small init (this
   script's ``_init``) that reaps orphans as a machine's init does: the camera tests' init
   script checks a daemon is gone with ``kill -0``, which an unreaped zombie would fail.  The environment is a login's
   (PATH, HOME=/root, LANG=C.UTF-8), not the host's (no pip configuration, no proxies but
   http(s)_proxy).  The network is the host's: /etc/resolv.conf is copied, and CA certificates
   the host trusts beyond Debian's bundle (a TLS-intercepting proxy's, as on this development
   network) are added the Debian way (/usr/local/share/ca-certificates, update-ca-certificates),
   as an administrator of such a network does on any new machine.  ``/usr/sbin/policy-rc.d`` exits 101 so
   apt never starts services in the chroot (there is no init in it).  In order:
   ``bash tools/run.sh --help`` (must answer at once, installing nothing),
   ``bash tools/run.sh``, ``bash tools/test.sh [ARGS]``.

   The ARM-image tests build camera images with debootstrap + qemu-user inside the root.
   binfmt_misc is the host kernel's, shared by every chroot: when the host has
   qemu-user-static, its qemu-arm/qemu-aarch64 entries are registered on the host first
   (flag F: the kernel holds the interpreter open, so it runs in any chroot); otherwise the
   test suite registers them from inside the root.

Output: each command's log in ``~/.cache/segbind/fresh-bookworm/logs/``, the tail of a failing
one on stderr, and a short report (exit status and duration of each step).  Exit status 0
when every command succeeded, 1 when one failed, 2 when the proof itself could not run.
Needs: root, debootstrap, git, unshare/mount/chroot (util-linux, coreutils), tar.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
SUITE = "bookworm"
INCLUDE = ["python3", "ca-certificates"]
GUEST_REPO = "/root/segbind"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_VERSION = 1  # bump when the way the pristine root is made changes
TAIL_LINES = 60
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


_LOCKS: list = []  # open lock files of this proof's run directories


class ProofError(Exception):
    """The proof could not be carried out (not a failure of the commands under test)."""


def log(msg: str) -> None:
    print(f"fresh-debian: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    env = os.environ.get("SEGBIND_FRESH_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "segbind" / "fresh-bookworm"


@functools.lru_cache(maxsize=None)
def _camera_image():
    """tools/camera_image.py, loaded once: its mirror, mount and process helpers are the proof's too."""
    spec = importlib.util.spec_from_file_location("camera_image", HERE.parent / "camera_image.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def apt_sources(mirror: str | None) -> tuple[str, str]:
    """(main mirror, sources.list text), found as tools/camera_image.py's find_mirror() does."""
    ci = _camera_image()
    try:
        main = (mirror or ci.find_mirror(SUITE)).rstrip("/")
    except ci.ImageError as e:
        raise ProofError(str(e)) from None
    lines = [f"deb {main} {SUITE} main", f"deb {main} {SUITE}-updates main"]
    with contextlib.suppress(ci.ImageError):
        lines.append(f"deb {ci.find_mirror(SUITE + '-security', environ={})} {SUITE}-security main")
    return main, "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- processes


def run_logged(argv: list[str], log_path: Path, *, verbose: bool, env: dict | None = None,
               timeout: float | None = None, title: str | None = None) -> int:
    """Run argv, its output (stdout and stderr) appended to log_path (and echoed if verbose).
    Killed, with its whole process group, when the proof is interrupted or times out."""
    with open(log_path, "ab") as logf:
        logf.write(f"$ {title or shlex.join(argv)}\n".encode())
        logf.flush()
        image = _camera_image()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                preexec_fn=image._die_with_parent)
        expired = threading.Event()

        def _expire() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _expire) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            with image.group_killed_if_interrupted(proc):
                assert proc.stdout is not None
                for line in proc.stdout:
                    logf.write(line)
                    logf.flush()
                    if verbose:
                        sys.stdout.buffer.write(line)
                        sys.stdout.flush()
                rc = proc.wait()
        finally:
            if timer:
                timer.cancel()
        if expired.is_set():
            logf.write(f"\n[fresh_debian.py: killed after {timeout:.0f} s]\n".encode())
            raise subprocess.TimeoutExpired(argv, timeout)
        return rc


def tail(path: Path, n: int = TAIL_LINES) -> str:
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def mounts_under(path: Path) -> list[str]:
    """The mount points at or below ``path`` (camera_image.py's, one home)."""
    return _camera_image().mounts_under(path)


def safe_rmtree(path: Path) -> None:
    """Delete ``path``, refusing while anything is still mounted below it."""
    ci = _camera_image()
    try:
        ci.safe_rmtree(path)
    except ci.ImageError as e:
        raise ProofError(str(e)) from None


# ----------------------------------------------------------------------------- the pristine root


def pristine_key(mirror: str, sources: str) -> str:
    blob = json.dumps({"suite": SUITE, "variant": "minbase", "include": INCLUDE, "mirror": mirror,
                       "sources": sources, "version": BUILD_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_pristine(mirror: str, sources: str, *, rebuild: bool, verbose: bool) -> tuple[Path, float]:
    """The pristine root's tarball, built under a lock if missing; (path, seconds spent building)."""
    cdir = cache_dir()
    cdir.mkdir(parents=True, exist_ok=True)
    tarball = cdir / f"{SUITE}-{pristine_key(mirror, sources)}.tar"
    with open(cdir / ".build.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if tarball.is_file() and not rebuild:
            return tarball, 0.0
        t0 = time.monotonic()
        build_log = cdir / "build.log"
        build_log.write_text(f"mirror: {mirror}\n{sources}")
        log(f"building the pristine {SUITE} root from {mirror} (log: {build_log})")
        tmp = Path(tempfile.mkdtemp(prefix="build.tmp-", dir=cdir))
        root = tmp / "root"
        try:
            # A private mount + PID namespace: debootstrap's /proc and /sys mounts die with it.
            rc = run_logged(["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                             "--kill-child", "debootstrap", "--variant=minbase",
                             "--include=" + ",".join(INCLUDE), SUITE, str(root), mirror],
                            build_log, verbose=verbose, env=host_env())
            if rc != 0:
                raise ProofError(f"debootstrap failed (exit {rc}); see {build_log}")
            if mounts_under(root):
                raise ProofError(f"debootstrap left mounts under {root}")
            (root / "etc/apt/sources.list").write_text(sources)
            for pat in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"):
                for p in root.glob(pat):
                    p.unlink()
            if not (root / "usr/bin/python3").exists():
                raise ProofError(f"no /usr/bin/python3 in the new root; see {build_log}")
            (root / "etc/segbind-fresh.json").write_text(json.dumps(
                {"suite": SUITE, "variant": "minbase", "include": INCLUDE, "mirror": mirror,
                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1) + "\n")
            part = tmp / "root.tar"
            rc = run_logged(["tar", "--numeric-owner", "--xattrs", "-cf", str(part), "-C", str(root), "."],
                            build_log, verbose=verbose)
            if rc != 0:
                raise ProofError(f"tar failed (exit {rc}); see {build_log}")
            os.chmod(part, 0o444)
            os.replace(part, tarball)  # atomic: the tarball appears only when complete
            for old in cdir.glob(f"{SUITE}-*.tar"):
                if old != tarball:
                    old.unlink()
        finally:
            safe_rmtree(tmp)
        return tarball, time.monotonic() - t0


def host_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(PATH=PATH, LANG="C.UTF-8", HOME="/root", DEBIAN_FRONTEND="noninteractive")
    return env


# ----------------------------------------------------------------------------- the proof's root


def new_root(tarball: Path, commit: str, log_path: Path, *, verbose: bool) -> tuple[Path, Path]:
    """A fresh root unpacked from the tarball, the repository cloned into it; (run dir, root)."""
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    clean_stale_runs(runs)
    rundir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    lock = open(rundir.with_suffix(".lock"), "w")  # held while this proof lives
    fcntl.flock(lock, fcntl.LOCK_EX)
    _LOCKS.append(lock)
    root = rundir / "root"
    root.mkdir()
    rc = run_logged(["tar", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(root)],
                    log_path, verbose=verbose)
    if rc != 0:
        raise ProofError(f"cannot unpack {tarball} (exit {rc}); see {log_path}")
    # What the proof needs that is not part of the machine under test.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# fresh_debian.py: no service starts in this chroot\nexit 101\n")
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    with contextlib.suppress(OSError):
        shutil.copyfile("/etc/resolv.conf", resolv)
    extra = host_only_cas(root)
    if extra:
        cadir = root / "usr/local/share/ca-certificates"
        cadir.mkdir(parents=True, exist_ok=True)
        for i, pem in enumerate(extra):
            (cadir / f"fresh-debian-host-{i}.crt").write_text(pem + "\n")
        rc = run_logged(guest_argv(root, "update-ca-certificates", cwd="/"), log_path,
                        verbose=verbose, env=host_env(), title="(in the root) update-ca-certificates")
        if rc != 0:
            raise ProofError(f"update-ca-certificates failed in the root (exit {rc}); see {log_path}")
    hosts = root / "etc/hosts"
    if not hosts.exists() or "localhost" not in hosts.read_text():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    # The repository: a fresh clone of the commit, not the working tree.
    dest = root / GUEST_REPO.lstrip("/")
    for argv in (["git", "clone", "--quiet", "--no-hardlinks", "--no-checkout", str(REPO), str(dest)],
                 ["git", "-C", str(dest), "checkout", "--quiet", "--detach", commit]):
        rc = run_logged(argv, log_path, verbose=verbose)
        if rc != 0:
            raise ProofError(f"{shlex.join(argv)} failed (exit {rc}); see {log_path}")
    return rundir, root


def _pem_blocks(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)


def host_only_cas(root: Path) -> list[str]:
    """The CA certificates the host trusts and a fresh Debian does not (e.g. the CA of a
    TLS-intercepting proxy on this network): without them nothing reaches PyPI or npm."""
    fresh = set(_pem_blocks(root / CA_BUNDLE.lstrip("/")))
    return [pem for pem in dict.fromkeys(_pem_blocks(Path(CA_BUNDLE))) if pem not in fresh]


def clean_stale_runs(runs: Path) -> None:
    """Delete the roots of earlier proofs that died (not --keep ones, not live ones)."""
    for d in runs.glob("run-*"):
        if not d.is_dir() or (d / "KEPT").exists():
            continue
        with open(d.with_suffix(".lock"), "w") as lk:
            try:
                fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live proof
            with contextlib.suppress(ProofError):
                safe_rmtree(d)
                d.with_suffix(".lock").unlink()


def guest_argv(root: Path, command: str, cwd: str = GUEST_REPO, images: str | None = None) -> list[str]:
    """Host argv that runs the shell command *command* as root in *root*, in new mount and PID
    namespaces whose PID 1 is this script's ``_init`` (mounts, then an init that reaps)."""
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root",
           "LOGNAME": "root", "SHELL": "/bin/bash"}
    env.update({k: v for k, v in os.environ.items() if k in ("http_proxy", "https_proxy", "no_proxy")})
    spec = {"root": str(root), "cwd": cwd, "env": env, "images": images,
            "argv": ["/bin/bash", "-c", command]}
    return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
            "--", sys.executable, "-I", str(HERE), "_init", json.dumps(spec)]


def _init(spec: dict) -> int:
    """PID 1 of the proof's namespaces: mount what a booted machine has, run the command
    chrooted, and reap every orphan meanwhile, as a machine's init does (daemons started with
    start-stop-daemon --background are orphans: unreaped, they stay zombies that `kill -0`
    still sees).  When the command ends, so does the namespace and everything left in it."""
    root = spec["root"]

    def mount(*args: str, check: bool = True) -> None:
        r = subprocess.run(["mount", *args], capture_output=True, text=True)
        if r.returncode != 0 and check:
            sys.stderr.write(f"fresh_debian: mount {' '.join(args)}: {r.stderr.strip()}\n")
            os._exit(125)

    # The root must be a mount point, as / is on a real machine: `unshare --propagation
    # private` inside it (tools/camera_image.py's builds) fails with EINVAL on a plain directory.
    mount("--bind", root, root)
    mount("-t", "proc", "proc", f"{root}/proc")
    mount("-t", "sysfs", "sysfs", f"{root}/sys")
    mount("--bind", "/dev", f"{root}/dev")
    mount("--bind", "/dev/pts", f"{root}/dev/pts")
    mount("-t", "tmpfs", "-o", "mode=1777,size=1g", "shm", f"{root}/dev/shm")
    mount("-t", "tmpfs", "-o", "mode=755", "run", f"{root}/run")
    mount("-t", "binfmt_misc", "binfmt_misc", f"{root}/proc/sys/fs/binfmt_misc", check=False)
    if spec.get("images"):
        target = f"{root}/root/.cache/segbind/images"
        os.makedirs(target, exist_ok=True)
        mount("--bind", spec["images"], target)
    child = os.fork()
    if child == 0:
        try:
            os.chroot(root)
            os.chdir(spec["cwd"])
            os.execve(spec["argv"][0], spec["argv"], spec["env"])
        except OSError as e:
            sys.stderr.write(f"fresh_debian: cannot run {spec['argv']} in the root: {e}\n")
        os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(child, signum))
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 125
        if pid == child:
            rc = os.waitstatus_to_exitcode(status)
            return rc if rc >= 0 else 128 - rc


def register_binfmt() -> str:
    """Register the host's qemu-user-static with binfmt_misc for ARM (if the host has it)."""
    bdir = Path("/proc/sys/fs/binfmt_misc")
    if not (bdir / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(bdir)], capture_output=True)
    notes = []
    for name in ("qemu-arm", "qemu-aarch64"):
        if (bdir / name).exists():
            notes.append(f"{name}: registered")
            continue
        conf = Path("/usr/lib/binfmt.d") / f"{name}.conf"
        if not conf.is_file() or not (bdir / "register").exists():
            notes.append(f"{name}: left to the test suite in the root")
            continue
        try:
            with open(bdir / "register", "w") as f:
                f.write(conf.read_text().strip().splitlines()[0])
            notes.append(f"{name}: registered from the host's {conf}")
        except OSError as e:
            notes.append(f"{name}: cannot register ({e.strerror}); left to the test suite")
    return "; ".join(notes)


# ----------------------------------------------------------------------------- main


def resolve_commit(rev: str) -> str:
    r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", rev + "^{commit}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ProofError(f"not a commit in {REPO}: {rev}")
    return r.stdout.strip()


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_init"] and len(argv) == 2:
        return _init(json.loads(argv[1]))
    p = argparse.ArgumentParser(
        prog="fresh_debian.py",
        description="Run the README's `bash tools/run.sh` and `bash tools/test.sh` on a fresh "
                    "Debian bookworm root (debootstrap + chroot), from a clean clone.")
    p.add_argument("--commit", default="HEAD", help="commit to clone and test (default HEAD)")
    p.add_argument("--run-only", action="store_true", help="only bash tools/run.sh")
    p.add_argument("--tests-only", action="store_true", help="only bash tools/test.sh")
    p.add_argument("--run", default="", metavar="ARGS",
                   help='arguments for tools/run.sh, one string (e.g. "--broker local --cameras 8")')
    p.add_argument("--tests", default="", metavar="ARGS",
                   help='pytest arguments for tools/test.sh, one string (e.g. "-x -q" or "-k fleet")')
    p.add_argument("--keep", action="store_true", help="keep the root afterwards (prints its path)")
    p.add_argument("--rebuild", action="store_true", help="make the pristine root again")
    p.add_argument("--mirror", help="Debian mirror (default: the host's apt sources, "
                   "else $SEGBIND_DEBIAN_MIRROR)")
    p.add_argument("--reuse-arm-images", action="store_true",
                   help="bind the host's ~/.cache/segbind/images into the root (skips building "
                        "the ARM camera images; not a fresh machine any more, for iterating)")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="per command, seconds (3 h)")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the commands' output")
    args = p.parse_args(argv)
    if args.run_only and args.tests_only:
        p.error("--run-only and --tests-only exclude each other")

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally clauses clean up.
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    steps: list[tuple[str, str, float]] = []  # (what, status, seconds)
    failed = False
    rundir = None
    commit = args.commit
    try:
        if os.geteuid() != 0:
            raise ProofError("must run as root (debootstrap, chroot and mount need it)")
        for tool in ("debootstrap", "git", "unshare", "chroot", "mount", "tar"):
            if not shutil.which(tool, path=os.environ.get("PATH", "") + ":" + PATH):
                raise ProofError(f"'{tool}' not found on the host")
        os.environ["PATH"] = os.environ.get("PATH", "") + ":" + PATH
        commit = resolve_commit(args.commit)
        mirror, sources = apt_sources(args.mirror)
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log(f"commit {commit[:12]} of {REPO}; mirror {mirror}")

        t0 = time.monotonic()
        tarball, built = ensure_pristine(mirror, sources, rebuild=args.rebuild, verbose=args.verbose)
        if built:
            steps.append(("fresh root: debootstrap + pack (once, then cached)", "ok", built))
        t0 = time.monotonic()
        prep_log = logs / f"{stamp}-prepare.log"
        rundir, root = new_root(tarball, commit, prep_log, verbose=args.verbose)
        steps.append(("fresh root: unpack + clone", "ok", time.monotonic() - t0))
        log(f"root {root}")
        log("binfmt_misc: " + register_binfmt())

        commands = [("help", "bash tools/run.sh --help >/dev/null && test ! -e .venv")]
        if not args.tests_only:
            commands.append(("run", shlex.join(["bash", "tools/run.sh", *shlex.split(args.run)])))
        if not args.run_only:
            commands.append(("test", shlex.join(["bash", "tools/test.sh", *shlex.split(args.tests)])))
        env = host_env()
        images = None
        if args.reuse_arm_images:
            images = Path.home() / ".cache" / "segbind" / "images"
            images.mkdir(parents=True, exist_ok=True)
            images = str(images)
        for name, command in commands:
            log_path = logs / f"{stamp}-{name}.log"
            shown = command.split(" >/dev/null")[0].strip()
            log(f"{shown}  (log: {log_path})")
            t0 = time.monotonic()
            try:
                rc = run_logged(guest_argv(root, command, images=images), log_path, verbose=args.verbose,
                                env=env, timeout=args.timeout,
                                title=f"(in the root, {GUEST_REPO}) {command}")
            except subprocess.TimeoutExpired:
                rc = 124
            dt = time.monotonic() - t0
            steps.append((shown, "ok" if rc == 0 else f"FAILED (exit {rc})", dt))
            if rc != 0:
                failed = True
                print(f"\n---- {shown}: exit {rc}; last lines of {log_path}:\n{tail(log_path)}\n----\n",
                      file=sys.stderr)
                if name == "help":
                    continue
            elif name != "help":
                last = [l for l in tail(log_path, 6).splitlines() if l.strip()]
                if last:
                    log(f"  ... {last[-1]}")
        left = mounts_under(root)
        if left:
            raise ProofError(f"mounts left behind under {root}: {', '.join(left)}")
    except ProofError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if rundir is not None:
            if args.keep:
                (rundir / "KEPT").touch()
                log(f"kept: {rundir}/root  (enter: unshare --mount --pid --fork "
                    f"sh -c 'mount -t proc proc {rundir}/root/proc && exec chroot {rundir}/root bash')")
            else:
                try:
                    safe_rmtree(rundir)
                    rundir.with_suffix(".lock").unlink(missing_ok=True)
                except ProofError as e:
                    log(f"error: {e}")
                    failed = True
        leftover = [m for m in mounts_under(cache_dir())]
        if leftover:
            log(f"error: mounts left behind: {', '.join(leftover)}")
            failed = True
        if steps:
            print(f"\nfresh Debian {SUITE} proof, commit {commit[:12]}:")
            width = max(len(s[0]) for s in steps)
            for what, status, secs in steps:
                print(f"  {what:<{width}}  {status:<18} {fmt_s(secs):>8}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
