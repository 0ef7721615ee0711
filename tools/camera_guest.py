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
LAUNCHER = "/" + bundle_tool.PREFIX + "/bin/segbind-agent"
CONFIG = bundle_tool.CONFIG_PATH
EXAMPLE_CONFIG = "/" + bundle_tool.EXAMPLE_CONFIG
GUEST_RUN = "/run/segbind"  # bind-mounted host directory: the encoder's FIFO, the lens, the button
LENS = "lens"               # in GUEST_RUN: pairing offers the camera's lens read (``NAME.offer``)
BUTTON = "button"           # in GUEST_RUN: present while the reset button is pressed

# The camera's boot, life and shutdown, in one guest shell: the init script starts the
# agent (daemonized by start-stop-daemon); while it runs, the camera's firmware hands
# what its lens read and its reset button to the init script's ``pair`` and ``reset``
# (``segbind-agent pair``, ``segbind-agent reset``: the local hand-over, never the
# broker); the init script stops it when the host asks.
LIFECYCLE = f"""
{INIT_SCRIPT} start || exit 10
{INIT_SCRIPT} status || exit 11
while [ ! -e {GUEST_RUN}/stop ]; do
    for offer in {GUEST_RUN}/{LENS}/*.offer; do
        [ -e "$offer" ] || continue
        {INIT_SCRIPT} pair "$offer"; echo "pair-rc=$?"
        rm -f "$offer"
    done
    if [ -e {GUEST_RUN}/{BUTTON} ]; then
        {INIT_SCRIPT} reset; echo "reset-rc=$?"
        rm -f {GUEST_RUN}/{BUTTON}
    fi
    sleep 0.2
done
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


def _is_guest_agent(pid: int) -> bool:
    """True when ``pid`` runs the launcher's ``python3 ... -m segbind_agent`` (a stale pidfile's
    number may belong to another process by now)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"\x00-m\x00segbind_agent\x00" in f.read()
    except OSError:
        return False


class GuestCamera:
    """The bundle's agent, started by the bundle's init script, in a throwaway layer of the image.

    The camera is provisioned into the layer as a factory would: its configuration
    (the bundle's ``agent.example.json`` with the broker filled in) and its device
    secret, its identity toward the cloud (/etc/segbind/device.json, mode 0600). The
    encoder's output reaches the agent through the FIFO the configuration names, in
    a host directory bind-mounted at /run/segbind; the owner's pairing offer reaches
    it through the camera's lens (``handover``), never through the broker.

        cam = GuestCamera("armhf", workdir, "cam-1", os.urandom(32), host, port).start()
        app.pair("cam-1", cam.handover)    # the guest runs `segbind-agent pair` on it
        cam.feed(clip)                     # the encoder thread
        cam.stop()                         # the init script's stop; the lifecycle's status
        cam.run_agent()                    # the agent in the foreground while the camera is off
    """

    def __init__(self, arch: str, workdir: Path, camera_id: str, secret: bytes,
                 broker_host: str, broker_port: int, config: dict | None = None) -> None:
        import json
        import os

        from segbind_core.device import device_json

        self.arch, self.camera_id = arch, camera_id
        self.dir = Path(workdir)
        self.layer = self.dir / "layer"
        self.run_dir = self.dir / "run"
        (self.run_dir / LENS).mkdir(parents=True, exist_ok=True)
        assert install_bundle(arch, self.layer) == ""
        self.upper = self.layer / "upper"
        etc = self.upper / "etc" / "segbind"
        cfg = json.loads((etc / "agent.example.json").read_text())  # the bundle's template
        assert cfg["source"].startswith(GUEST_RUN + "/"), cfg["source"]
        cfg.update({
            "camera_id": camera_id,
            "broker": {"host": broker_host, "port": broker_port, "reconnect_min_s": 0.2,
                       "reconnect_max_s": 1.0, "keepalive": 10},
            "health_interval_s": 1.0,
        })
        cfg.update(config or {})
        self.config = cfg
        (etc / "agent.json").write_text(json.dumps(cfg, indent=1))
        device = etc / "device.json"
        fd = os.open(device, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(device_json(camera_id, secret, test_only=True), f)
        self.fifo = None  # the encoder's FIFO, unless the source is the streamer's rtsp://
        if cfg["source"].startswith(GUEST_RUN + "/"):
            self.fifo = self.run_dir / cfg["source"][len(GUEST_RUN) + 1:]
            os.mkfifo(self.fifo)
        self.proc = None
        self._out = None
        self._offers = 0
        self.output_path = self.dir / "lifecycle.out"
        self.encoder = None

    def guest_path(self, path: str) -> Path:
        """Where a file the guest wrote at ``path`` lives on the host (the layer's upper dir)."""
        return self.upper / path.lstrip("/")

    @property
    def state_file(self) -> Path:
        return self.guest_path(self.config["state_dir"]) / "state.json"

    def start(self) -> "GuestCamera":
        """Power on: the lifecycle shell (init script start, lens and button, stop on request)."""
        import subprocess

        assert self.proc is None or self.proc.poll() is not None, "the camera is running"
        (self.run_dir / "stop").unlink(missing_ok=True)
        self._out = open(self.output_path, "ab")
        self.proc = ci.popen_in_image(self.arch, ["sh", "-c", LIFECYCLE],
                                      binds=[(str(self.run_dir), GUEST_RUN)], overlay=self.layer,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        return self

    def handover(self, offer: bytes) -> None:
        """The owner's pairing offer, read by the camera's lens (a QR code on the phone): the
        guest hands it to ``segbind-agent pair`` (while off, at the next power-on)."""
        import os

        self._offers += 1
        lens = self.run_dir / LENS
        tmp = lens / (".%06d.tmp" % self._offers)
        tmp.write_bytes(offer)
        os.replace(tmp, lens / ("%06d.offer" % self._offers))  # never half an offer

    def press_reset(self) -> None:
        """The reset button, on a running camera: the guest runs ``segbind-agent reset``."""
        (self.run_dir / BUTTON).touch()

    def run_agent(self, *args: str, timeout: float = 180):
        """``segbind-agent --config CONFIG ARGS...`` in the foreground while the camera is off
        (no action: the agent itself, as its init script would start it); the CompletedProcess."""
        assert self.proc is None or self.proc.poll() is not None, "the camera is running"
        return ci.run_in_image(self.arch, [LAUNCHER, "--config", CONFIG, *args],
                               binds=[(str(self.run_dir), GUEST_RUN)], capture=True,
                               timeout=timeout, overlay=self.layer)

    def agent_pid(self) -> int | None:
        """The agent's pid (host pid namespace = guest's), from the init script's pidfile."""
        try:
            text = (self.upper / "run" / "segbind-agent.pid").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def peak_memory_kb(self) -> int:
        pid = self.agent_pid()
        assert pid is not None and _is_guest_agent(pid), "the agent is not running"
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
        """Power off: the init script's stop; the lifecycle shell's exit status."""
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
        if pid is not None and _is_guest_agent(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.encoder is not None and self.encoder.is_alive() and self.fifo is not None:
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
