"""A real Mosquitto broker on a free loopback port, with its own temporary config.

    with Broker() as broker:               # starts /usr/sbin/mosquitto -c <tmp>/mosquitto.conf
        print(broker.host, broker.port)
        broker.restart()                    # graceful stop (persistence saved), start on the same port
        broker.stop(kill=True)              # or kill -9

Persistence is on by default (saved at every change and at shutdown), so a
restart keeps persistent sessions, queued QoS-1 messages and retained
messages, as a production broker would. Never a system service: each broker
belongs to the process that started it and dies with it (PR_SET_PDEATHSIG:
start it from a thread that lives as long as the broker should, e.g. the main one).

``python3 -m host_sim.broker [--port N]`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

MOSQUITTO = os.environ.get("SEGBIND_MOSQUITTO", "/usr/sbin/mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class BrokerError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the thread that started us exits (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Broker:
    def __init__(self, port: Optional[int] = None, host: str = "127.0.0.1",
                 workdir: Optional[str] = None, persistence: bool = True,
                 binary: str = MOSQUITTO, extra_config: str = "", die_with_parent: bool = True) -> None:
        if shutil.which(binary) is None and not os.path.exists(binary):
            raise BrokerError("mosquitto not found at %s (tools/setup.sh installs it)" % binary)
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="segbind-mosquitto-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.extra_config = extra_config
        self.die_with_parent = die_with_parent  # never outlive the process that started it
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    @property
    def url(self) -> str:
        return "mqtt://%s:%d" % (self.host, self.port)

    @property
    def log_path(self) -> Path:
        return self.dir / "mosquitto.log"

    def _write_config(self) -> Path:
        lines = [
            "listener %d %s" % (self.port, self.host),
            "allow_anonymous true",
            "log_dest file %s" % (self.dir / "mosquitto.log"),
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
            "max_queued_bytes 0",
            "max_inflight_messages 20",
            "persistent_client_expiration 1d",
        ]
        if self.persistence:
            lines += ["persistence true", "persistence_location %s/" % self.dir,
                      "autosave_interval 1", "autosave_on_changes true"]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to "mosquitto" and cannot write here
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n" + self.extra_config)
        return conf

    def start(self, timeout: float = 10.0) -> "Broker":
        if self.running:
            return self
        conf = self._write_config()
        deadline = time.time() + timeout
        while True:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE,
                                         preexec_fn=_die_with_parent if self.die_with_parent else None)
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_open(self.host, self.port):
                    self.starts += 1
                    return self
                time.sleep(0.02)
            err = b""
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else b""
            else:
                self.proc.kill()
                self.proc.wait()
            if time.time() >= deadline:
                raise BrokerError("mosquitto did not start on port %d: %s"
                                  % (self.port, err.decode(errors="replace").strip()))
            time.sleep(0.2)  # the port may still be held by the previous instance: retry

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file) or, with ``kill``, SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, down_s: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        if down_s:
            time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="run a local Mosquitto for segbind")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--dir", help="working directory (config, persistence, log)")
    args = parser.parse_args(argv)
    broker = Broker(port=args.port, workdir=args.dir).start()
    print("mosquitto listening on %s:%d (log %s); Ctrl-C stops it"
          % (broker.host, broker.port, broker.log_path), file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *a: broker.stop())
    try:
        while broker.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
