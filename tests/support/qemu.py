"""The tools the device tests drive (tools/bundle.py, tools/camera_image.py, tools/camera_guest.py),
loaded as modules by their paths: the tools are scripts, not an installed package."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support import ROOT


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (one instance per session; siblings it imports come first)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ci = load_tool("camera_image")
bt = load_tool("bundle")
guest = load_tool("camera_guest")

BUNDLE_MOUNT = guest.BUNDLE_MOUNT
GuestCamera = guest.GuestCamera
bare_python_peak_kb = guest.bare_python_peak_kb
built_bundle = guest.built_bundle
guest_python = guest.guest_python
install_bundle = guest.install_bundle

def parse_dockerfile(text: str) -> list:
    """Stages: [{"from": image, "platform": str|None, "name": str|None, "instructions": [(OP, args)]}]."""
    logical, buf = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "dangling line continuation"
    stages = []
    for line in logical:
        op, _, args = line.strip().partition(" ")
        op, args = op.upper(), args.strip()
        if op == "FROM":
            words = args.split()
            platform = None
            while words and words[0].startswith("--"):
                flag = words.pop(0)
                if flag.startswith("--platform="):
                    platform = flag.split("=", 1)[1]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "platform": platform, "name": name,
                           "instructions": []})
        else:
            assert stages, f"{op} before FROM"
            stages[-1]["instructions"].append((op, args))
    return stages
