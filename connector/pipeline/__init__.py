"""The orchestration above the stages: the only package that knows every stage.

source (poll thread) → decode and route (rules) → deliver (lanes, retries, circuits) → finish (commit
watermark, or dead-letter). :class:`Engine` runs a record through those stages; :class:`DeliveryRuntime`
builds the parts from the config and starts and stops them in order; :class:`Connector` is the ``run``
command's core; :mod:`connector.pipeline.replay` is ``dlq replay``. Stages never import from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.pipeline.connector import Connector
    from connector.pipeline.engine import Engine
    from connector.pipeline.runtime import DeliveryRuntime, build_client, build_router

__all__ = ["Connector", "DeliveryRuntime", "Engine", "build_client", "build_router"]

# Imported on first use (PEP 562), so a command that needs one module of the package (``run --help``,
# ``dlq replay``) does not load them all.
_HOME = {
    "Connector": "connector.pipeline.connector",
    "Engine": "connector.pipeline.engine",
    "DeliveryRuntime": "connector.pipeline.runtime",
    "build_client": "connector.pipeline.runtime",
    "build_router": "connector.pipeline.runtime",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'connector.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
