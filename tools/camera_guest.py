"""The camera under QEMU: segbind installed from the bundle in an ARM image, and run there.

Used by the tests that run segbind inside the ARM camera images (tests/device/test_qemu_*.py)
and by tools/bench_arm.py.

Everything that runs in a guest is installed from the flashable bundle
(tools/bundle.py), never from the source tree: the bundle's tarball is
extracted with the guest's own ``tar`` into a throwaway overlay over the
cached image (camera_image's ``overlay=``), exactly as the Dockerfile does it.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import bundle as bundle_tool  # siblings in tools/ (tests load them first, by path)
import camera_image as ci

REPO = Path(__file__).resolve().parents[1]
GUEST_LIB = "/opt/segbind/lib"
GUEST_ENV = {"PYTHONPATH": GUEST_LIB, "PYTHONDONTWRITEBYTECODE": "1"}
BUNDLE_MOUNT = "/mnt/bundle"


def _tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.lru_cache(maxsize=None)
def built_bundle():
    """The full bundle (agent, paho, .mpy), built once per session."""
    return bundle_tool.build(_tmpdir("segbind-bundle-"))


def install_bundle(arch: str, overlay: Path, bundle=None) -> str:
    """Extract the bundle's tarball into a fresh overlay of the *arch* image; check its MANIFEST.

    Returns the guest's ``sha256sum -c`` output (empty when all is well).
    """
    b = bundle or built_bundle()
    res = ci.run_in_image(
        arch, ["sh", "-c", f"tar -xzf {BUNDLE_MOUNT}/{b.tarball.name} -C / "
                           "&& cd / && sha256sum -c --strict --quiet opt/segbind/MANIFEST"],
        binds=[(str(b.tarball.parent), BUNDLE_MOUNT, True)], capture=True, timeout=300,
        overlay=overlay)
    assert res.returncode == 0, res.stderr + res.stdout
    return res.stdout


def guest_python(arch: str, code: str, *args: str, overlay: Path, binds=(), env=None,
                 timeout: float = 300, check: bool = True):
    """Run ``python3 -c code args...`` in the installed image; the CompletedProcess (text)."""
    genv = dict(GUEST_ENV, **(env or {}))
    res = ci.run_in_image(arch, ["python3", "-c", code, *args], binds=binds, env=genv,
                          capture=True, timeout=timeout, overlay=overlay)
    if check:
        assert res.returncode == 0, res.stderr
    return res


# ---------------------------------------------------------------- the agent in the image

INIT_SCRIPT = "/etc/init.d/segbind-agent"
GUEST_RUN = "/run/segbind"  # bind-mounted host directory: the encoder's FIFO and the stop flag

# The camera's boot and shutdown, in one guest shell: the init script starts the
# agent (daemonized by start-stop-daemon), and stops it when the host asks.
LIFECYCLE = f"""
{INIT_SCRIPT} start || exit 10
{INIT_SCRIPT} status || exit 11
while [ ! -e {GUEST_RUN}/stop ]; do sleep 0.2; done
{INIT_SCRIPT} stop; echo "stop-rc=$?"
{INIT_SCRIPT} status; echo "status-rc=$?"
"""


def read_vm_kb(pid: int, field: str = "VmHWM") -> int:
    """A /proc/PID/status figure in kB (for a guest process: QEMU plus the guest program)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class GuestCamera:
    """The bundle's agent, started by the bundle's init script, in a throwaway layer of the image.

    The camera's configuration and its device secret are provisioned into the
    layer (/etc/segbind/agent.json, /etc/segbind/device.json, mode 0600), as a
    factory would; the encoder's output reaches the agent through a FIFO in a
    host directory bind-mounted at /run/segbind.
    """

    def __init__(self, arch: str, workdir: Path, camera_id: str, secret: bytes,
                 broker_host: str, broker_port: int, config: dict | None = None) -> None:
        import json
        import os

        self.arch, self.camera_id = arch, camera_id
        self.dir = Path(workdir)
        self.layer = self.dir / "layer"
        self.run_dir = self.dir / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.fifo = self.run_dir / "video.fifo"
        os.mkfifo(self.fifo)
        assert install_bundle(arch, self.layer) == ""
        self.upper = self.layer / "upper"
        cfg = {
            "camera_id": camera_id,
            "device_secret_file": "/etc/segbind/device.json",
            "state_dir": "/var/lib/segbind",
            "input": f"{GUEST_RUN}/video.fifo",
            "on_eof": "reopen",
            "broker": {"host": broker_host, "port": broker_port, "reconnect_min_s": 0.2,
                       "reconnect_max_s": 1.0, "keepalive": 10},
            "health_interval_s": 1.0,
            "log_level": "INFO",
        }
        cfg.update(config or {})
        etc = self.upper / "etc" / "segbind"
        (etc / "agent.json").write_text(json.dumps(cfg, indent=1))
        device = etc / "device.json"
        fd = os.open(device, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"segbind": "device", "version": 1, "device_id": camera_id,
                       "secret": secret.hex(), "test_only": True}, f)
        self.proc = None
        self.output_path = self.dir / "lifecycle.out"
        self.encoder = None

    def start(self) -> "GuestCamera":
        import subprocess

        self._out = open(self.output_path, "wb")
        self.proc = ci.popen_in_image(self.arch, ["sh", "-c", LIFECYCLE],
                                      binds=[(str(self.run_dir), GUEST_RUN)], overlay=self.layer,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        return self

    def agent_pid(self) -> int | None:
        """The agent's pid (host pid namespace = guest's), from the init script's pidfile."""
        try:
            text = (self.upper / "run" / "segbind-agent.pid").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def peak_memory_kb(self) -> int:
        pid = self.agent_pid()
        assert pid is not None, "the agent is not running"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"segbind_agent" in f.read()  # the python3 process the launcher exec'd
        return read_vm_kb(pid)

    def feed(self, clip: bytes, fps: float = 25.0, speed: float = 4.0, repeat: int = 1):
        """The encoder: writes the clip into the FIFO picture by picture (a thread)."""
        import os
        import threading
        import time

        from host_sim.camera import picture_chunks

        chunks = picture_chunks(clip)
        period = 1.0 / (fps * speed)

        def run() -> None:
            fd = os.open(self.fifo, os.O_WRONLY)  # waits for the agent's reader
            try:
                start = time.monotonic()
                for n, chunk in enumerate(chunks * repeat):
                    delay = start + n * period - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    os.write(fd, chunk)
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

        self.encoder = threading.Thread(target=run, name="guest-encoder", daemon=True)
        self.encoder.start()
        return self.encoder

    def log(self) -> str:
        path = self.upper / "var" / "log" / "segbind-agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def stop(self, timeout: float = 120) -> int:
        """Ask the guest to run the init script's stop; the lifecycle shell's exit status."""
        (self.run_dir / "stop").touch()
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Whatever happened: nothing this camera started keeps running."""
        import os
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        pid = self.agent_pid()  # daemonized into its own session: not in the group above
        if pid is not None:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    ours = b"segbind_agent" in f.read()
                if ours:
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        if getattr(self, "_out", None):
            self._out.close()
            self._out = None
        if self.encoder is not None and self.encoder.is_alive():
            try:  # unblock an encoder still waiting to open the FIFO
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
            self.encoder.join(5)


def bare_python_peak_kb(arch: str) -> int:
    """VmHWM of an idle python3 in the image (QEMU + interpreter): the agent's baseline."""
    res = ci.run_in_image(arch, ["python3", "-c", (
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM:'): print(line.split()[1])\n")], capture=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.strip())
