"""host_sim has no import circle: its modules form layers (``host_sim.LAYERS``), and each imports
only from layers below its own. Every import statement counts, lazy ones inside functions
included; only ``if TYPE_CHECKING:`` blocks (annotations, nothing at run time) are left out."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import host_sim
from tests.support import ROOT

HOST_SIM = ROOT / "host_sim"


def modules() -> Dict[str, Path]:
    """Every module of host_sim, by its name under host_sim ("fleet" for fleet/__init__.py)."""
    out = {}
    for path in sorted(HOST_SIM.rglob("*.py")):
        parts = list(path.relative_to(HOST_SIM).with_suffix("").parts)
        if parts == ["__init__"]:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _statements(node)


def imports(name: str, path: Path) -> Set[str]:
    """The host_sim modules ``name`` imports (absolute and relative, at any depth)."""
    known = modules()
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in _statements(ast.parse(path.read_text(), str(path))):
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["host_sim"] + package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [base] + ["%s.%s" % (base, a.name) for a in node.names]
        for target in targets:
            if target.startswith("host_sim."):
                module = target[len("host_sim."):]
                while module and module not in known:
                    module = module.rpartition(".")[0]
                if module and module != name:
                    found.add(module)
    return found


def test_every_module_is_in_exactly_one_layer() -> None:
    layered = [m for layer in host_sim.LAYERS for m in layer]
    assert len(layered) == len(set(layered))
    assert sorted(layered) == sorted(modules())


def test_each_module_imports_only_from_the_layers_below_it() -> None:
    level = {m: i for i, layer in enumerate(host_sim.LAYERS) for m in layer}
    upward = [(name, dep) for name, path in modules().items() for dep in sorted(imports(name, path))
              if level[dep] >= level[name] and not (name == "fleet" and dep.startswith("fleet."))
              and not (name == "fleet.__main__" and dep.startswith("fleet."))]
    assert upward == [], "imports from the same layer or above: %s" % upward


def test_the_walk_sees_lazy_imports() -> None:
    """The check can fail: it finds an import inside a function (scenarios' browser demo)."""
    found = imports("fleet.scenarios", modules()["fleet.scenarios"])
    assert "browser" in found and "fleet.world" in found and "report" in found


def test_every_module_imports_on_its_own() -> None:
    """Each module, first in a fresh interpreter: nothing depends on another being imported first."""
    names = sorted(m for m in modules() if m != "fleet.__main__")
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module('host_sim.' + name)\n"
    for name in names:
        done = subprocess.run([sys.executable, "-c", script, name], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (name, done.stderr[-2000:])
