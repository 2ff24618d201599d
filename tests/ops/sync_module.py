"""``ops/sync.py`` loaded as a module (ops/ is a folder of scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support import REPO


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ops_sync", REPO / "ops" / "sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ops_sync"] = module
    spec.loader.exec_module(module)
    return module


sync = _load()
