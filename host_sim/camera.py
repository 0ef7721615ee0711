"""A simulated camera: the real agent process, fed a real H.264 clip through a FIFO.

The agent runs as on a camera: ``python3 -S`` (no site-packages) with only
``firmware/`` and a vendored paho-mqtt on its path, and the ``hmac`` module
made unimportable (python3-minimal and MicroPython have none), so it can use
nothing the camera image lacks. An "encoder" thread writes the clip into the
FIFO picture by picture at the clip's frame rate times ``speed``.

    cam = Camera("cam-1", device_file, workdir, broker.host, broker.port)
    cam.start()                 # the agent process, waiting on its FIFO
    cam.handover(offer)         # the owner's pairing offer, read by its lens (out of band)
    cam.feed(clip, fps=25, speed=4, repeat=2)   # returns the encoder thread
    cam.stop()                  # SIGTERM; returns the exit status
    cam.kill()                  # kill -9
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from host_sim.broker import _die_with_parent

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"

# Start the agent the way the camera does, minus the modules it must not rely on.
BOOT = ("import sys\n"
        "for name in sys.argv[1].split(','):\n"
        "    if name: sys.modules[name] = None\n"
        "del sys.argv[1]\n"
        "import runpy\n"
        "runpy.run_module('segbind_agent', run_name='__main__', alter_sys=True)\n")


def vendor_dir(base: Path) -> Path:
    """A directory holding only paho-mqtt (a symlink), as the camera bundle vendors it."""
    import paho

    vendor = base / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    link = vendor / "paho"
    if not link.exists():
        link.symlink_to(Path(paho.__file__).resolve().parent)
    return vendor


def picture_chunks(clip: bytes) -> List[bytes]:
    """The clip cut before each picture's first NAL unit (its AUD/SPS/PPS/SEI included)."""
    from segbind_core.h264 import first_slice_of_picture, is_vcl
    from segbind_core.nal import annexb_units

    units = annexb_units(clip)
    cuts, pending = [0], None
    for unit in units:
        kind = clip[unit[0]] & 0x1F
        if not is_vcl(kind):
            if pending is None:
                pending = unit[0]
            continue
        if first_slice_of_picture(clip[unit[0]:min(unit[1], unit[0] + 2)]):
            at = pending if pending is not None else unit[0]
            # back up over the start code (3 or 4 bytes)
            at -= 4 if at >= 4 and clip[at - 4:at] == b"\x00\x00\x00\x01" else 3
            if at > cuts[-1]:
                cuts.append(at)
        pending = None
    cuts.append(len(clip))
    return [clip[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]


class Camera:
    def __init__(self, camera_id: str, device_file: str, workdir, broker_host: str, broker_port: int,
                 *, input_mode: str = "fifo", on_eof: Optional[str] = None, config: Optional[dict] = None,
                 block_modules=("hmac", "segbind"), env: Optional[dict] = None) -> None:
        self.camera_id = camera_id
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.input_path = self.dir / ("video.fifo" if input_mode == "fifo" else "video.h264")
        self.input_mode = input_mode
        self.log_path = self.dir / "agent.log"
        self.config_path = self.dir / "agent.json"
        cfg = {
            "camera_id": camera_id,
            "device_secret_file": str(Path(device_file).resolve()),
            "state_dir": str(self.state_dir),
            "input": str(self.input_path),
            "broker": {"host": broker_host, "port": broker_port, "reconnect_min_s": 0.2,
                       "reconnect_max_s": 1.0, "keepalive": 10},
            "segment": {"max_duration_s": 4.0, "fps": None},
            "health_interval_s": 1.0,
            "log_level": "INFO",
        }
        if on_eof:
            cfg["on_eof"] = on_eof
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = dict(cfg[key], **value)
            else:
                cfg[key] = value
        if "source" in cfg:  # another source (the streamer's rtsp://): no FIFO
            del cfg["input"]
            self.input_mode = "source"
        self.config = cfg
        self.config_path.write_text(json.dumps(cfg, indent=1))
        self.block_modules = ",".join(block_modules)
        self.extra_env = env or {}
        self.proc: Optional[subprocess.Popen] = None
        self._log = None
        self.encoder: Optional[threading.Thread] = None

    # -- the agent process ---------------------------------------------------------------------

    def start(self, crash_at: Optional[str] = None) -> "Camera":
        if self.input_mode == "fifo" and not self.input_path.exists():
            os.mkfifo(self.input_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = os.pathsep.join([str(FIRMWARE), str(vendor_dir(self.dir))])
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("SEGBIND_AGENT_CRASH_AT", None)
        if crash_at:
            env["SEGBIND_AGENT_CRASH_AT"] = crash_at
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", BOOT, self.block_modules, "--config", str(self.config_path)],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=str(self.dir), preexec_fn=_die_with_parent)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        """SIGTERM and wait: the agent tags what it has, tries to deliver, says goodbye."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._finish()

    def kill(self) -> Optional[int]:
        """kill -9, as a power cut or the OOM killer would."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return self._finish()

    def wait(self, timeout: float = 30.0) -> Optional[int]:
        if self.proc is None:
            return None
        self.proc.wait(timeout)
        return self._finish()

    def _finish(self) -> Optional[int]:
        code = self.proc.returncode if self.proc else None
        if self._log:
            self._log.close()
            self._log = None
        if self.encoder is not None:
            self.encoder.join(5)
        return code

    # -- the local hand-over (never the broker) ---------------------------------------------

    def handover(self, offer: bytes) -> None:
        """The owner's pairing offer reaches the camera out of band (``segbind-agent pair``)."""
        from segbind_agent.inbox import Inbox
        Inbox(str(self.state_dir / "inbox")).put_offer(offer)

    def press_reset(self) -> None:
        """The reset button (``segbind-agent reset``): a running agent acts at once, a stopped
        one when it starts."""
        from segbind_agent.inbox import Inbox
        Inbox(str(self.state_dir / "inbox")).put_reset()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def state(self) -> Optional[dict]:
        path = self.state_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def spooled(self) -> int:
        spool = self.state_dir / "spool"
        return len([n for n in os.listdir(spool) if n.endswith(".seg")]) if spool.exists() else 0

    # -- the encoder ---------------------------------------------------------------------------

    def write_file(self, clip: bytes) -> None:
        """File input mode: the whole clip at once (written before start)."""
        self.input_path.write_bytes(clip)

    def feed(self, clip: bytes, fps: float = 25.0, speed: float = 1.0, repeat: int = 1,
             close: bool = True, paused: Optional[threading.Event] = None) -> threading.Thread:
        """Write ``clip`` ``repeat`` times into the FIFO, one picture every 1/(fps*speed) s."""
        chunks = picture_chunks(clip)
        period = 1.0 / (fps * speed)

        def run() -> None:
            try:
                fd = os.open(str(self.input_path), os.O_WRONLY)
            except OSError:
                return
            try:
                start = time.monotonic()
                n = 0
                for _ in range(repeat):
                    for chunk in chunks:
                        while paused is not None and paused.is_set():
                            time.sleep(0.01)
                        delay = start + n * period - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        os.write(fd, chunk)
                        n += 1
            except BrokenPipeError:
                pass
            finally:
                if close:
                    os.close(fd)

        self.encoder = threading.Thread(target=run, name="encoder-%s" % self.camera_id, daemon=True)
        self.encoder.start()
        return self.encoder
