"""Tests for tools/camera_image.py: the ARM "camera" image under QEMU user emulation.

The first run builds the armhf and arm64 images (about 2-4 min each, cached in
~/.cache/segbind/images or $SEGBIND_IMAGE_CACHE); later runs take seconds.
Needs root, debootstrap and qemu-user-static.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import ROOT as REPO

pytestmark = pytest.mark.qemu

TOOL = REPO / "tools" / "camera_image.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("camera_image", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("camera_image", mod)
    spec.loader.exec_module(mod)
    return mod


ci = _load_tool()
ARCHES = ["armhf", "arm64"]


def guest_py(arch, code, **kw):
    res = ci.run_in_image(arch, ["python3", "-c", code], capture=True, timeout=120, **kw)
    assert res.returncode == 0, res.stderr
    return res.stdout


# ---------------------------------------------------------------- pure logic


def test_recipe_hash_is_in_cache_path_and_tracks_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGBIND_IMAGE_CACHE", str(tmp_path))
    h = ci.recipe_hash("armhf")
    assert ci.image_path("armhf") == tmp_path / f"armhf-{h}" / "rootfs"
    assert ci.recipe_hash("arm64") != h
    changed = json.loads(json.dumps(ci.RECIPE))
    changed["packages"].append("tzdata")
    assert ci.recipe_hash("armhf", changed) != h
    bumped = json.loads(json.dumps(ci.RECIPE))
    bumped["recipe_version"] += 1
    assert ci.recipe_hash("armhf", bumped) != h


def test_incomplete_build_is_never_taken_as_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGBIND_IMAGE_CACHE", str(tmp_path))
    idir = ci.image_dir("armhf")
    (idir / "rootfs.tmp-abc" / "etc").mkdir(parents=True)
    (idir / "rootfs.tmp-abc" / "etc" / "segbind-image.json").write_text("{}")
    assert not ci.is_cached("armhf")
    (idir / "rootfs" / "usr" / "bin").mkdir(parents=True)  # rootfs without marker
    assert not ci.is_cached("armhf")
    (idir / "rootfs" / "etc").mkdir()
    (idir / "rootfs" / "etc" / "segbind-image.json").write_text("{}")
    assert ci.is_cached("armhf")


def test_find_mirror_reads_apt_sources(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "other.list.disabled").write_text(
        "deb http://wrong.example/debian bookworm main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\n# comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n")
    assert ci.find_mirror("bookworm", apt, environ={}) == "http://mirror.example/debian"
    (apt / "sources.list").write_text(
        "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n")
    assert ci.find_mirror("bookworm", apt, environ={}) == "http://one.example/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"SEGBIND_DEBIAN_MIRROR": "http://env.example/debian"}
    assert ci.find_mirror("bookworm", empty, environ=env) == "http://env.example/debian"
    with pytest.raises(ci.ImageError):
        ci.find_mirror("bookworm", empty, environ={})


def test_bind_specs_are_validated(tmp_path):
    assert ci.parse_bind(f"{tmp_path}:/opt/x:ro") == (str(tmp_path), "/opt/x", True)
    assert ci.parse_bind(f"{tmp_path}:/opt/x") == (str(tmp_path), "/opt/x", False)
    for bad in ("nocolon", f"{tmp_path}:relative", f"{tmp_path}:/a/../etc",
                f"{tmp_path}/missing:/x", f"{tmp_path}:/x:rx"):
        with pytest.raises(ci.ImageError):
            ci.parse_bind(bad)


# ---------------------------------------------------------------- real images


@pytest.mark.parametrize("arch", ARCHES)
def test_image_builds_and_is_cached(arch):
    root = ci.ensure_image(arch)
    assert root == ci.image_path(arch)
    marker = json.loads((root / "etc" / "segbind-image.json").read_text())
    assert marker["recipe_hash"] == ci.recipe_hash(arch)
    assert marker["arch"] == arch and marker["packages"] == ci.RECIPE["packages"]
    assert not list(root.parent.glob("rootfs.tmp-*"))
    t0 = time.monotonic()
    assert ci.ensure_image(arch) == root
    assert time.monotonic() - t0 < 1.0  # cached: no rebuild
    # stripped: no package caches or docs
    assert not list((root / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    assert not any((root / "usr" / "share" / "doc").iterdir())


@pytest.mark.parametrize("arch", ARCHES)
def test_guest_really_is_arm(arch):
    out = guest_py(arch, "import json, platform, struct, sys; print(json.dumps("
                   "[platform.machine(), struct.calcsize('P'), sys.version_info[:2], sys.byteorder]))")
    machine, ptr, ver, order = json.loads(out)
    assert ver == [3, 11] and order == "little"
    if arch == "armhf":
        assert machine.startswith("arm") and ptr == 4
    else:
        assert machine == "aarch64" and ptr == 8


@pytest.mark.parametrize("arch", ARCHES)
def test_guest_modules_are_as_documented(arch):
    doc = ci.__doc__
    for name in ("hmac", "uuid", "http", "shutil", "cryptography", *ci.GUEST_MODULES_ABSENT):
        assert name in doc, f"{name} not documented in the module docstring"
    code = (
        "import importlib, json, sys\n"
        "res = {}\n"
        f"for m in {list(ci.GUEST_MODULES_PRESENT + ci.GUEST_MODULES_ABSENT)!r}:\n"
        "    try:\n"
        "        importlib.import_module(m); res[m] = True\n"
        "    except ImportError:\n"
        "        res[m] = False\n"
        "print(json.dumps(res))\n")
    res = json.loads(guest_py(arch, code))
    assert [m for m in ci.GUEST_MODULES_PRESENT if not res[m]] == []
    assert [m for m in ci.GUEST_MODULES_ABSENT if res[m]] == []


class _Server:
    """A TCP server on host 127.0.0.1; handler(conn) runs for the first client."""

    def __init__(self, handler):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(120)
        self.port = self.sock.getsockname()[1]
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._serve, args=(handler,), daemon=True)
        self.thread.start()

    def _serve(self, handler):
        try:
            conn, peer = self.sock.accept()
            with conn:
                conn.settimeout(60)
                self.result = (peer[0], handler(conn))
        except Exception as e:  # reported by join()
            self.error = e
        finally:
            self.sock.close()

    def join(self):
        self.thread.join(130)
        assert self.error is None, self.error
        return self.result


@pytest.mark.parametrize("arch", ARCHES)
def test_guest_connects_to_host_loopback(arch):
    def echo(conn):
        data = conn.recv(64)
        conn.sendall(b"pong:" + data)
        return data

    srv = _Server(echo)
    out = guest_py(arch, (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {srv.port}), timeout=60)\n"
        "s.sendall(b'ping-from-guest'); print(s.recv(64).decode())\n"
        "print(socket.getaddrinfo('localhost', 1, socket.AF_INET)[0][4][0])\n"))
    peer, received = srv.join()
    assert received == b"ping-from-guest" and peer == "127.0.0.1"
    assert out.split() == ["pong:ping-from-guest", "127.0.0.1"]


def test_vendored_paho_mqtt2_connects_from_armhf_guest():
    """The package choice exists for this: paho-mqtt 2.x (pure Python, vendored) runs."""
    import paho  # the host's copy is what the bundle vendors
    import paho.mqtt

    assert int(paho.mqtt.__version__.split(".")[0]) >= 2
    vendor = Path(paho.__file__).resolve().parent  # .../site-packages/paho

    def broker(conn):
        first = conn.recv(1024)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        conn.recv(1024)  # DISCONNECT (or EOF)
        return first

    srv = _Server(broker)
    out = guest_py("armhf", (
        "import sys; sys.path.insert(0, '/opt/vendor')\n"
        "import paho.mqtt, paho.mqtt.client as mc\n"
        "c = mc.Client(mc.CallbackAPIVersion.VERSION2, client_id='cam-1')\n"
        f"print(paho.mqtt.__version__, int(c.connect('127.0.0.1', {srv.port}, keepalive=30)))\n"
        "rc = c.loop(timeout=30)\n"
        "print(c.is_connected()); c.disconnect()\n"),
        binds=[(str(vendor), "/opt/vendor/paho", True)])
    _, connect = srv.join()
    assert connect[0] == 0x10 and b"MQTT" in connect and b"cam-1" in connect
    version, rc, connected = out.split()
    assert version == paho.mqtt.__version__ and rc == "0"
    assert connected == "True"


# ---------------------------------------------------------------- CLI


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True,
                          text=True, timeout=timeout)


def _host_mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(str(path))]


def test_cli_run_binds_exit_status_and_cleanup(tmp_path):
    root = ci.ensure_image("armhf")
    (tmp_path / "f.txt").write_text("hello from host\n")
    r = _cli("run", "--arch", "armhf", "--bind", f"{tmp_path}:/mnt/host:ro", "--env", "X=42",
             "--", "sh", "-c", 'cat /mnt/host/f.txt; echo "x=$X"; '
             'touch /mnt/host/new 2>/dev/null && echo writable; exit 7')
    assert r.returncode == 7, r.stderr
    assert r.stdout.splitlines() == ["hello from host", "x=42"]
    assert not (tmp_path / "new").exists()
    assert _host_mounts_under(root) == []  # /proc, /dev/shm, binds: nothing leaks
    r = _cli("path", "--arch", "arm64", "-q")
    assert r.returncode == 0 and r.stdout.strip() == str(ci.image_path("arm64"))


def test_cli_run_passes_a_kill_on_to_the_guest_command(tmp_path):
    """``kill`` of the tool (as a walkthrough stops the agent it started with ``run``) reaches the
    guest command, which cleans up and exits; the tool waits for it and leaves nothing running."""
    marker = tmp_path / "done"
    proc = subprocess.Popen([sys.executable, str(TOOL), "run", "--arch", "armhf", "--bind",
                             f"{tmp_path}:/mnt/host", "--", "sh", "-c",
                             'trap "echo stopped > /mnt/host/done; exit 7" TERM; echo up; '
                             'while :; do sleep 0.1; done'],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        proc.terminate()
        assert proc.wait(timeout=60) == 7
        assert marker.read_text() == "stopped\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert _host_mounts_under(tmp_path) == []


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    cases = [
        ("run", "--arch", "mips", "--", "true"),
        ("run", "--arch", "armhf", "--bind", "nocolon", "--", "true"),
        ("run", "--arch", "armhf", "--bind", f"{tmp_path}/missing:/x", "--", "true"),
        ("run", "--arch", "armhf"),
        ("frobnicate",),
    ]
    for args in cases:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = _cli("run", "--arch", "armhf", "--", "/no/such/program")
    assert r.returncode == 127 and "Traceback" not in r.stderr


def test_timeout_kills_the_guest():
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        ci.run_in_image("armhf", ["sleep", "60"], timeout=3)
    assert time.monotonic() - t0 < 20


def test_popen_in_image_signals_reach_the_guest_command():
    """A long-running guest process (the agent as a daemon) can be stopped."""
    proc = ci.popen_in_image("armhf", ["python3", "-c",
                                       "import sys, time; print('up', flush=True); time.sleep(120)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        proc.terminate()
        assert proc.wait(timeout=20) == -15
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
