"""The docs/AGENT.md walkthrough, command by command: broker, cloud, displays, agent, operator tool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_sim import clips
from host_sim.broker import free_port, port_open
from tests.support import ROOT

pytestmark = pytest.mark.broker



class Procs:
    def __init__(self, run: Path) -> None:
        self.run = run
        self.procs = {}
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")

    def start(self, name: str, *args: str, env=None) -> subprocess.Popen:
        log = open(self.run / ("%s.log" % name), "wb")
        proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                env=env or self.env)
        self.procs[name] = (proc, log)
        return proc

    def log(self, name: str) -> str:
        return (self.run / ("%s.log" % name)).read_text(errors="replace")

    def wait_log(self, name: str, text: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while self.log(name).count(text) < count:
            assert time.time() < deadline, "%s: %r not seen\n%s" % (name, text, self.log(name)[-3000:])
            time.sleep(0.05)

    def stop(self, name: str) -> int:
        proc, log = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        return proc.returncode

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture()
def procs(tmp_path: Path):
    p = Procs(tmp_path)
    yield p
    p.close()


def test_walkthrough(procs: Procs, tmp_path: Path) -> None:
    run, py = tmp_path, sys.executable
    port = free_port()
    broker = "127.0.0.1:%d" % port
    ops = [py, str(ROOT / "tools" / "segbind_ops.py"), "--registry", str(run / "cloud.json"),
           "--broker", broker]

    def op(*args: str, expect: int = 0) -> str:
        proc = subprocess.run(ops + list(args), capture_output=True, text=True, cwd=str(ROOT),
                              env=procs.env, timeout=60)
        assert proc.returncode == expect, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    procs.start("broker", py, "-m", "host_sim.broker", "--port", str(port), "--dir", str(run / "broker"))
    deadline = time.time() + 10
    while not port_open("127.0.0.1", port):
        assert time.time() < deadline
        time.sleep(0.05)
    assert "provisioned cam-1" in op("provision", "--camera", "cam-1", "--dir", str(run), "--test-only")
    assert oct((run / "cam-1.device.json").stat().st_mode & 0o777) == "0o600"
    procs.start("cloud", py, "-m", "host_sim.cloud", "--broker", broker, "--registry", str(run / "cloud.json"))
    for account in ("alice", "bob"):
        procs.start(account, py, "-m", "host_sim.display", "--broker", broker, "--account", account,
                    "--out", str(run / ("%s.h264" % account)))
    os.mkfifo(run / "cam-1.fifo")
    agent_env = dict(procs.env, PYTHONPATH=str(ROOT / "firmware"))
    procs.start("agent", py, "-m", "segbind_agent", "--config", str(run / "cam-1.agent.json"),
                env=agent_env)
    procs.wait_log("cloud", "cloud running")
    procs.wait_log("alice", "display of alice")
    procs.wait_log("bob", "display of bob")
    procs.wait_log("agent", "connected to")

    clip = clips.encode_pyav(frames=50, gop=10)  # five segments

    def encode() -> None:
        with open(run / "cam-1.fifo", "wb") as fifo:
            fifo.write(clip)

    assert "claim #1: ok; owner alice epoch 1" in op("claim", "--camera", "cam-1", "--owner", "alice")
    encode()
    procs.wait_log("alice", "SHOW", 5)
    assert "share" in op("share", "--camera", "cam-1", "--viewer", "bob")
    time.sleep(0.3)
    encode()
    procs.wait_log("alice", "SHOW", 10)
    procs.wait_log("bob", "SHOW", 5)
    assert "rotate #2: ok; owner alice epoch 2" in op("revoke", "--camera", "cam-1", "--viewer", "bob")
    encode()
    procs.wait_log("alice", "SHOW", 15)
    status = json.loads(op("status", "--camera", "cam-1").strip().splitlines()[-1])
    assert status["owner"] == "alice" and status["epoch"] == 2 and status["state"] == "online"
    op("keyring", "--account", "alice", "--out", str(run / "alice.keyring.json"))
    assert "transfer #3: ok; owner bob epoch 3" in op("transfer", "--camera", "cam-1", "--owner", "bob")
    encode()
    procs.wait_log("bob", "SHOW", 10)
    assert "reset #4: ok" in op("reset", "--camera", "cam-1")
    assert "not claimed" in op("rotate", "--camera", "cam-1", expect=1)
    encode()  # an unclaimed camera publishes nothing
    time.sleep(1.0)
    listing = op("list")
    assert '"owner": null' in listing and "secret" not in listing

    assert procs.stop("agent") == 0
    for account in ("alice", "bob"):
        assert procs.stop(account) == 0
    alice, bob = procs.log("alice"), procs.log("bob")
    assert alice.count("SHOW") == 15 and "REFUSE" not in alice
    assert bob.count("SHOW") == 10 and "REFUSE" not in bob
    assert '"shown": 15' in alice
    # what alice's display showed verifies with her keyring, one stream, one chain
    verify = subprocess.run([py, "-m", "segbind.cli", "verify", "--keyring", str(run / "alice.keyring.json"),
                             str(run / "alice.h264")], capture_output=True, text=True, cwd=str(ROOT))
    assert verify.returncode == 0 and "ACCEPTED: 15 ok" in verify.stdout, verify.stdout + verify.stderr
    agent_log = procs.log("agent")
    assert "TEST-ONLY" in agent_log and "command reset #4 applied" in agent_log
    secret = json.loads((run / "cam-1.device.json").read_text())["secret"]
    for name in ("agent", "cloud", "alice", "bob"):
        assert secret not in procs.log(name)
