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
from segbind import Keyring
from tests.support import ROOT
from tests.support.media import decoded_frames

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

    def cmd(*args: str, expect: int = 0, env=None) -> str:
        proc = subprocess.run([py] + list(args), capture_output=True, text=True, cwd=str(ROOT),
                              env=env or procs.env, timeout=60)
        assert proc.returncode == expect, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def ops(*args: str, expect: int = 0) -> str:
        return cmd(str(ROOT / "tools" / "segbind_ops.py"), "--broker", broker, *args, expect=expect)

    def app(who: str, *args: str, expect: int = 0) -> str:
        return cmd("-m", "host_sim.app", "--owner", str(run / ("%s.owner" % who)), "--broker", broker, *args,
                   expect=expect)

    agent_env = dict(procs.env, PYTHONPATH=str(ROOT / "firmware"))

    def agent(*args: str) -> str:
        return cmd("-m", "segbind_agent", "--config", str(run / "cam-1.agent.json"), *args, env=agent_env)

    procs.start("broker", py, "-m", "host_sim.broker", "--port", str(port), "--dir", str(run / "broker"))
    deadline = time.time() + 10
    while not port_open("127.0.0.1", port):
        assert time.time() < deadline
        time.sleep(0.05)
    # the factory: the camera's identity and its agent configuration
    assert "provisioned cam-1" in ops("provision", "--camera", "cam-1", "--dir", str(run), "--test-only")
    assert oct((run / "cam-1.device.json").stat().st_mode & 0o777) == "0o600"
    procs.start("cloud", py, "-m", "host_sim.cloud", "--broker", broker, "--store", str(run / "routing.json"))
    procs.wait_log("cloud", "cloud running")
    # two owners, their cards exchanged out of band, a display each, enrolled next to it
    for who in ("alice", "bob"):
        app(who, "new", "--account", who, "--test-only")
        app(who, "card", "--out", str(run / ("%s.card" % who)))
        cmd("-m", "host_sim.display", "--display", str(run / ("%s-tv.json" % who)), "--new", who + "-tv",
            "--test-only")
        assert "enrolled; code" in app(who, "enroll", "--display", str(run / ("%s-tv.json" % who)))
    app("alice", "contact", "--card", str(run / "bob.card"))
    app("bob", "contact", "--card", str(run / "alice.card"))
    for who in ("alice", "bob"):
        procs.start(who, py, "-m", "host_sim.display", "--broker", broker, "--display",
                    str(run / ("%s-tv.json" % who)), "--out", str(run / who))
    os.mkfifo(run / "cam-1.fifo")
    procs.start("agent", py, "-m", "segbind_agent", "--config", str(run / "cam-1.agent.json"), env=agent_env)
    procs.wait_log("alice", "display alice-tv of alice")
    procs.wait_log("bob", "display bob-tv of bob")
    procs.wait_log("agent", "connected to")

    clip = clips.encode_pyav(frames=50, gop=10)  # five segments

    def encode() -> None:
        with open(run / "cam-1.fifo", "wb") as fifo:
            fifo.write(clip)

    # alice claims the camera: the offer goes to it out of band (segbind-agent pair)
    assert "pair: ok; owner alice epoch 1" in app("alice", "pair", "--camera", "cam-1", "--inbox",
                                                 str(run / "cam-1-state" / "inbox"))
    encode()
    procs.wait_log("alice", "SHOW", 5)
    assert "rotate: ok; owner alice epoch 2" in app("alice", "share", "--camera", "cam-1", "--viewer", "bob")
    app("bob", "sync")                     # bob's app takes alice's offer, grants bob's display
    time.sleep(0.5)
    encode()
    procs.wait_log("alice", "SHOW", 10)
    procs.wait_log("bob", "SHOW", 5)
    assert "rotate: ok; owner alice epoch 3" in app("alice", "revoke", "--camera", "cam-1", "--viewer", "bob")
    encode()
    procs.wait_log("alice", "SHOW", 15)
    status = json.loads(ops("status", "--camera", "cam-1").strip().splitlines()[-1])
    assert status["owner"] == "alice" and status["epoch"] == 3 and status["state"] == "online"
    app("alice", "keyring", "--out", str(run / "alice.keyring.json"))
    # resale: alice releases it, bob pairs it with the offer in a file, handed over by segbind-agent
    assert "release: ok" in app("alice", "release", "--camera", "cam-1")
    procs.start("bob-pairs", py, "-m", "host_sim.app", "--owner", str(run / "bob.owner"), "--broker", broker,
                "pair", "--camera", "cam-1", "--offer-out", str(run / "offer.bin"))
    deadline = time.time() + 10
    while not (run / "offer.bin").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    assert "pairing offer handed to camera cam-1" in agent("pair", str(run / "offer.bin"))
    procs.wait_log("bob-pairs", "pair: ok; owner bob epoch 1")   # a fresh pairing: epochs count from 1
    encode()
    procs.wait_log("bob", "SHOW", 10)
    assert "reset requested" in agent("reset")  # the button
    procs.wait_log("agent", "reset by its button")
    encode()  # an unclaimed camera publishes nothing
    time.sleep(1.0)
    routing = ops("routing", "--store", str(run / "routing.json"))
    assert '"camera": "cam-1"' not in routing and "secret" not in routing

    assert procs.stop("agent") == 0
    for account in ("alice", "bob"):
        assert procs.stop(account) == 0
    alice, bob = procs.log("alice"), procs.log("bob")
    assert alice.count("SHOW") == 15 and "REFUSE" not in alice
    assert bob.count("SHOW") == 10 and "REFUSE" not in bob
    # what each display showed is the camera's pictures, decrypted after verification, in each
    # stream's own file (a stream is (owner, camera)): alice's three epochs, bob's share, bob's own
    (run / "clip.h264").write_bytes(clip)
    pictures = decoded_frames(run / "clip.h264")
    assert len(pictures) == 50
    assert decoded_frames(run / "alice" / "alice" / "cam-1.h264") == pictures * 3
    assert decoded_frames(run / "bob" / "alice" / "cam-1.h264") == pictures
    assert decoded_frames(run / "bob" / "bob" / "cam-1.h264") == pictures
    assert Keyring.load(run / "alice.keyring.json").grants() == [("alice", "cam-1", e) for e in (1, 2, 3)]
    agent_log = procs.log("agent")
    assert "TEST-ONLY" in agent_log and "reset by its button" in agent_log
    secrets = [json.loads((run / "cam-1.device.json").read_text())["secret"]]
    secrets += [c["pairing"] for who in ("alice", "bob")
                for c in json.loads((run / ("%s.owner" % who)).read_text())["cameras"]]
    for name in ("agent", "cloud", "alice", "bob", "bob-pairs"):
        assert not any(secret in procs.log(name) for secret in secrets)
