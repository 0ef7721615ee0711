"""Installing the flashable bundle into the ARM camera images, the way firmware and Docker do.

The bundle's tarball is extracted by the guest's own tar into a throwaway
overlay (the cached image is never modified); the Dockerfile's install steps
are replayed in the same image, so the Docker image and the QEMU one are built
the same way from the same bundle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import ROOT as REPO
from tests.support.qemu import BUNDLE_MOUNT, bt, built_bundle, ci, install_bundle, parse_dockerfile

pytestmark = pytest.mark.qemu

ARCHES = ["armhf", "arm64"]


def _in_upper(upper, path):
    """Where a bundle path lands in the overlay's upper layer (merged /usr: /lib is usr/lib)."""
    return upper / ("usr/" + path if path.startswith(("lib/", "bin/", "sbin/")) else path)


def _snapshot(root):
    """What the cached image holds where the bundle installs (must never change)."""
    paths = ["opt/segbind", "etc/segbind", "etc/init.d/segbind-agent",
             "usr/lib/systemd/system/segbind-agent.service", "etc/segbind-image.json"]
    return {p: (os.path.lexists(root / p),
                (root / p).read_bytes() if (root / p).is_file() else None) for p in paths}


@pytest.mark.parametrize("arch", ARCHES)
def test_bundle_installs_into_the_image_with_its_own_tar(arch, tmp_path):
    root = ci.ensure_image(arch)
    before = _snapshot(root)
    assert not before["opt/segbind"][0]
    assert install_bundle(arch, tmp_path / "layer") == ""  # sha256sum -c: every file OK
    b = built_bundle()
    listing = ci.run_in_image(arch, ["sh", "-c", (
        "stat -c '%a %U:%G %n' /opt/segbind/bin/segbind-agent /etc/init.d/segbind-agent "
        "/lib/systemd/system/segbind-agent.service /etc/segbind/agent.example.json "
        "/opt/segbind/mpy/segbind_core/tag.mpy; readlink /lib; "
        "/opt/segbind/bin/segbind-agent --help | head -1")],
        capture=True, timeout=120, overlay=tmp_path / "layer")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[:5] == [
        "755 root:root /opt/segbind/bin/segbind-agent",
        "755 root:root /etc/init.d/segbind-agent",
        "644 root:root /lib/systemd/system/segbind-agent.service",
        "644 root:root /etc/segbind/agent.example.json",
        "644 root:root /opt/segbind/mpy/segbind_core/tag.mpy"]
    assert lines[5] == "usr/lib"  # the merged-/usr symlink survived the extraction
    assert lines[6].startswith("usage: segbind-agent")
    # the guest's files are the bundle's, byte for byte
    upper = tmp_path / "layer" / "upper"
    for e in b.entries:
        assert _in_upper(upper, e.path).read_bytes() == e.data, e.path
    assert _snapshot(root) == before  # the cached image is untouched


@pytest.mark.parametrize("arch", ARCHES)
def test_dockerfile_install_steps_replayed_in_the_image(arch, tmp_path):
    """The final stage's COPY and RUN steps, run in the QEMU image, give the same install.

    apt-get lines are the one thing not replayed (the image already holds the
    recipe's packages; tests/test_bundle.py checks the lists are equal).
    """
    b = built_bundle()
    final = parse_dockerfile((REPO / "Dockerfile").read_text())[-1]
    layer = tmp_path / "layer"
    replayed = []
    for op, args in final["instructions"]:
        if op == "COPY":
            words = args.split()
            src, dest = words[-2], words[-1]
            assert src.endswith("/" + bt.TARBALL)  # the builder stage's bundle output
            cmd = f"mkdir -p $(dirname {dest}) && cp {BUNDLE_MOUNT}/{bt.TARBALL} {dest}"
        elif op == "RUN":
            if "apt-get" in args:
                continue
            cmd = args
        else:
            continue
        res = ci.run_in_image(arch, ["/bin/sh", "-c", cmd], capture=True, timeout=300,
                              binds=[(str(b.tarball.parent), BUNDLE_MOUNT, True)], overlay=layer)
        assert res.returncode == 0, (op, args, res.stderr)
        replayed.append(op)
    assert replayed == ["COPY", "RUN"]
    upper = layer / "upper"
    for e in b.entries:
        assert _in_upper(upper, e.path).read_bytes() == e.data, e.path
    assert not (upper / "tmp" / bt.TARBALL).exists()  # the RUN step removed it
    entry = json.loads(dict(final["instructions"])["ENTRYPOINT"])
    cmd = json.loads(dict(final["instructions"])["CMD"])
    # ENTRYPOINT with CMD: the agent itself starts and wants its configuration
    res = ci.run_in_image(arch, entry + cmd, capture=True, timeout=120, overlay=layer)
    assert res.returncode == 2
    assert res.stderr.strip() == "segbind-agent: error: /etc/segbind/agent.json: no such file"
    res = ci.run_in_image(arch, entry + ["--help"], capture=True, timeout=120, overlay=layer)
    assert res.returncode == 0 and "--config" in res.stdout


def test_overlay_is_exclusive_and_leaves_no_mounts(tmp_path):
    layer = tmp_path / "layer"
    root = ci.ensure_image("armhf")
    proc = ci.popen_in_image("armhf", ["sh", "-c", "echo up; sleep 60"], overlay=layer,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        second = ci.run_in_image("armhf", ["true"], capture=True, timeout=60, overlay=layer)
        assert second.returncode == 125 and "in use by another guest" in second.stderr
        proc.terminate()  # the shell ends; its sleep still holds the layer
        proc.wait(timeout=30)
        third = ci.run_in_image("armhf", ["true"], capture=True, timeout=60, overlay=layer)
        assert third.returncode == 125
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the shell and the sleep
        proc.wait(timeout=30)
        proc.stdout.close()
    for _ in range(100):  # SIGKILL is delivered asynchronously: the lock goes with the sleep
        rc = ci.run_in_image("armhf", ["true"], capture=True, timeout=60, overlay=layer).returncode
        if rc != 125:
            break
        time.sleep(0.1)
    assert rc == 0
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    assert not [m for m in mounts if m.startswith((str(layer), str(root)))]


def test_cli_overlay_keeps_writes_between_runs_and_out_of_the_cache(tmp_path):
    root = ci.ensure_image("armhf")
    tool = [sys.executable, str(REPO / "tools" / "camera_image.py"), "run", "--arch", "armhf",
            "--overlay", str(tmp_path / "layer"), "--"]
    r = subprocess.run(tool + ["sh", "-c", "echo flashed > /etc/segbind-test-marker"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(tool + ["cat", "/etc/segbind-test-marker"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout == "flashed\n", r.stderr
    assert not (root / "etc" / "segbind-test-marker").exists()
    r = subprocess.run([sys.executable, str(REPO / "tools" / "camera_image.py"), "run", "--arch",
                        "armhf", "--", "cat", "/etc/segbind-test-marker"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1  # the pristine image never saw it
