"""The verifying service's test harness: tools/service_faults.py (deployments, worker processes,
the audit of verdicts and recordings, the named faults), loaded from tools/ as the people who
run them do."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from . import ROOT


def tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (tools/ also on sys.path: the tools import each other)."""
    if name in sys.modules:
        return sys.modules[name]
    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / ("%s.py" % name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
