"""A local NATS cluster for segbind's verifying service: Debian's nats-server, N nodes (3 by
default) on loopback, JetStream on every node, each with its own store, config and log.

For people::

    python3 tools/nats_cluster.py start --dir /tmp/segbind-nats     # prints the servers' URLs
    python3 tools/nats_cluster.py status --dir /tmp/segbind-nats
    python3 tools/nats_cluster.py stop-node 2 --dir /tmp/segbind-nats  # one node down (SIGTERM)
    python3 tools/nats_cluster.py start-node 2 --dir /tmp/segbind-nats
    python3 tools/nats_cluster.py stop --dir /tmp/segbind-nats
    python3 tools/nats_cluster.py run                                 # in the foreground, Ctrl-C stops it

(``python3 -m host_sim.nats_cluster`` is the same command.)

``start`` leaves the servers running after it exits (their pids in DIR/cluster.json); ``run``
and the tests' ``NatsCluster`` own theirs: the servers die with the thread that started them
(PR_SET_PDEATHSIG), so a test session never leaves one behind::

    with NatsCluster() as cluster:          # three nodes, free ports, a temporary directory
        cluster.urls                        # ["nats://127.0.0.1:41021", ...]
        cluster.stop_node(1); cluster.start_node(1)

``--mqtt`` also opens NATS's MQTT listener on every node (MQTT 3.1.1 only: docs/SERVICE.md says
why the cameras' MQTT 5 goes through Mosquitto and a bridge instead).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

NATS_SERVER = os.environ.get("SEGBIND_NATS_SERVER", "nats-server")
CLUSTER_NAME = "segbind"


class ClusterError(RuntimeError):
    pass


def free_ports(count: int, host: str = "127.0.0.1") -> List[int]:
    """``count`` distinct free TCP ports (held open together while chosen)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def term_when_parent_exits() -> None:
    """In the child, before exec: SIGTERM when the thread that started it exits (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _find_binary(binary: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None and not os.path.exists(binary):
        raise ClusterError("nats-server not found (Debian: apt-get install nats-server; tools/setup.sh test "
                           "installs it)")
    return found or binary


class Node:
    """One nats-server: its ports (client, cluster routes, monitoring, MQTT) and process."""

    def __init__(self, index: int, ports: List[int], directory: Path) -> None:
        self.index = index
        self.port, self.cluster_port, self.http_port, self.mqtt_port = ports
        self.dir = directory
        self.proc: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None  # also for servers this object did not start (from cluster.json)
        self.starts = 0  # by this object

    @property
    def name(self) -> str:
        return "n%d" % (self.index + 1)

    @property
    def url(self) -> str:
        return "nats://127.0.0.1:%d" % self.port

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        # a zombie or a recycled pid is not our server
        try:
            return "nats-server" in Path("/proc/%d/cmdline" % self.pid).read_bytes().decode(errors="replace")
        except OSError:
            return False

    def to_json(self) -> Dict[str, int]:
        return {"port": self.port, "cluster_port": self.cluster_port, "http_port": self.http_port,
                "mqtt_port": self.mqtt_port, "pid": self.pid or 0}


class NatsCluster:
    """``nodes`` nats-servers on 127.0.0.1, routed to each other, JetStream on each."""

    def __init__(self, directory: Optional[str] = None, nodes: int = 3, mqtt: bool = False,
                 die_with_parent: bool = True, binary: str = NATS_SERVER,
                 max_memory: str = "1G", max_file: str = "8G") -> None:
        self.binary = _find_binary(binary)
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="segbind-nats-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mqtt = mqtt
        self.die_with_parent = die_with_parent
        self.max_memory, self.max_file = max_memory, max_file
        state = self.dir / "cluster.json"
        if state.exists():  # the same directory again: the same ports (a node keeps its identity)
            data = json.loads(state.read_text())
            self.nodes = [Node(i, [n["port"], n["cluster_port"], n["http_port"], n["mqtt_port"]],
                               self.dir / ("n%d" % (i + 1))) for i, n in enumerate(data["nodes"])]
            for node, n in zip(self.nodes, data["nodes"]):
                node.pid = n.get("pid") or None
            self.mqtt = bool(data.get("mqtt", mqtt))
        else:
            ports = free_ports(4 * nodes)
            self.nodes = [Node(i, ports[4 * i:4 * i + 4], self.dir / ("n%d" % (i + 1))) for i in range(nodes)]

    # -- configuration ---------------------------------------------------------------------------

    @property
    def urls(self) -> List[str]:
        return [n.url for n in self.nodes]

    @property
    def servers(self) -> str:
        """The URLs comma-separated: what ``segbind serve --nats`` takes."""
        return ",".join(self.urls)

    def _config(self, node: Node) -> Path:
        node.dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join("nats-route://127.0.0.1:%d" % n.cluster_port for n in self.nodes if n is not node)
        lines = [
            "server_name: %s" % node.name,
            "host: 127.0.0.1",
            "port: %d" % node.port,
            "http_port: %d" % node.http_port,
            "max_payload: 8MB",
            "jetstream {",
            "  store_dir: %s" % json.dumps(str(node.dir / "js")),
            "  max_memory_store: %s" % self.max_memory,
            "  max_file_store: %s" % self.max_file,
            "}",
        ]
        if len(self.nodes) > 1:
            lines += ["cluster {", "  name: %s" % CLUSTER_NAME, "  host: 127.0.0.1", "  port: %d" % node.cluster_port,
                      "  routes: [%s]" % routes, "}"]
        if self.mqtt:
            lines += ["mqtt {", "  host: 127.0.0.1", "  port: %d" % node.mqtt_port, "}"]
        conf = node.dir / "nats.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _save(self) -> None:
        data = {"segbind": "nats-cluster", "mqtt": self.mqtt, "nodes": [n.to_json() for n in self.nodes],
                "servers": self.servers}
        tmp = self.dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.dir / "cluster.json")

    # -- processes -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "NatsCluster":
        for node in self.nodes:
            self._spawn(node)
        self._save()
        self.wait_ready(timeout)
        return self

    def _spawn(self, node: Node) -> None:
        if node.running:
            return
        conf = self._config(node)
        log = open(node.dir / "nats.log", "ab")
        try:
            node.proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=term_when_parent_exits if self.die_with_parent else None,
                start_new_session=not self.die_with_parent)
        finally:
            log.close()
        node.pid = node.proc.pid
        node.starts += 1

    def _health(self, node: Node) -> bool:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % node.http_port, timeout=1.0) as r:
                return json.loads(r.read()).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def meta_leader(self) -> Optional[str]:
        """The JetStream meta leader's server name, as a running node sees it (None when none)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/jsz" % node.http_port, timeout=1.0) as r:
                    leader = (json.loads(r.read()).get("meta_cluster") or {}).get("leader")
                if leader:
                    return str(leader)
            except (OSError, ValueError):
                continue
        return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running node healthy (JetStream current) and a meta leader elected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n in self.nodes if n.proc is not None and n.proc.poll() is not None]
            if dead:
                raise ClusterError("nats-server %s exited: %s" % (dead[0].name, self.log_tail(dead[0])))
            running = [n for n in self.nodes if n.running]
            if running and all(self._health(n) for n in running) and (len(self.nodes) == 1 or self.meta_leader()):
                return
            time.sleep(0.1)
        raise ClusterError("the NATS cluster was not ready within %.0f s" % timeout)

    def log_tail(self, node: Node, size: int = 600) -> str:
        try:
            return (node.dir / "nats.log").read_bytes()[-size:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop_node(self, index: int, kill: bool = False, timeout: float = 15.0) -> None:
        """One node down: SIGTERM (a clean shutdown) or, with ``kill``, SIGKILL."""
        node = self.nodes[index]
        if not node.running or node.pid is None:
            return
        os.kill(node.pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while node.running and time.monotonic() < deadline:
            if node.proc is not None:
                try:
                    node.proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.05)
        if node.running:
            os.kill(node.pid, signal.SIGKILL)
            if node.proc is not None:
                node.proc.wait()
        node.proc = None
        node.pid = None
        self._save()

    def start_node(self, index: int, timeout: float = 30.0) -> None:
        """Start a node that was stopped, with its store: it catches up and rejoins its groups."""
        self._spawn(self.nodes[index])
        self._save()
        self.wait_ready(timeout)

    def pids(self) -> List[int]:
        return [n.pid for n in self.nodes if n.pid is not None and n.running]

    def stop(self) -> None:
        for i in range(len(self.nodes)):
            self.stop_node(i)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "NatsCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="a local NATS cluster (JetStream) for segbind's service")
    parser.add_argument("command", choices=("start", "stop", "status", "stop-node", "start-node", "run"))
    parser.add_argument("node", nargs="?", type=int, help="stop-node, start-node: the node's number, from 1")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "segbind-nats"),
                        help="configs, stores, logs and cluster.json (default %(default)s)")
    parser.add_argument("--nodes", type=int, default=3, help="how many servers (default 3)")
    parser.add_argument("--mqtt", action="store_true", help="also open NATS's MQTT 3.1.1 listener on each node")
    parser.add_argument("--kill", action="store_true", help="stop-node: SIGKILL instead of SIGTERM")
    args = parser.parse_args(argv)
    try:
        if args.command in ("stop-node", "start-node") and args.node is None:
            parser.error("%s needs the node's number (1 to %d)" % (args.command, args.nodes))
        if args.command == "run":
            cluster = NatsCluster(args.dir, args.nodes, args.mqtt, die_with_parent=True).start()
            print(cluster.servers, flush=True)
            print("nats cluster in %s; Ctrl-C stops it" % cluster.dir, file=sys.stderr)
            signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
            try:
                while True:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                cluster.stop()
            return 0
        cluster = NatsCluster(args.dir, args.nodes, args.mqtt, die_with_parent=False)
        if args.command == "start":
            cluster.start()
            print(cluster.servers)
            print("nats cluster in %s (stop it with: %s stop --dir %s)" % (cluster.dir, sys.argv[0], cluster.dir),
                  file=sys.stderr)
        elif args.command == "stop":
            cluster.stop()
        elif args.command == "status":
            for node in cluster.nodes:
                print("%s %s %s" % (node.name, node.url, "running" if node.running else "stopped"))
            print("meta leader: %s" % (cluster.meta_leader() or "none"))
        else:
            if not 1 <= args.node <= len(cluster.nodes):
                parser.error("node must be 1 to %d" % len(cluster.nodes))
            if args.command == "stop-node":
                cluster.stop_node(args.node - 1, kill=args.kill)
            else:
                cluster.start_node(args.node - 1)
        return 0
    except ClusterError as exc:
        print("nats_cluster: error: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
