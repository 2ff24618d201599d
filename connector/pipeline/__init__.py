"""The orchestration above the stages: the only package that knows every stage.

source (poll thread) → decode and route (rules) → deliver (lanes, retries, circuits) → finish (commit
watermark, or dead-letter). :class:`Engine` runs a record through those stages; :class:`DeliveryRuntime`
builds the parts from the config and starts and stops them in order; :class:`Connector` is the ``run``
command's core; :mod:`connector.pipeline.replay` is ``dlq replay``. Stages never import from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.pipeline.connector import Connector
    from connector.pipeline.engine import Engine
    from connector.pipeline.runtime import DeliveryRuntime, build_client, build_router

__all__ = ["Connector", "DeliveryRuntime", "Engine", "build_client", "build_router"]

# Imported on first use, so a command that needs one module of the package (``run --help``) does not load all.
__getattr__ = lazy_exports(
    __name__,
    {
        "Connector": "connector.pipeline.connector",
        "Engine": "connector.pipeline.engine",
        "DeliveryRuntime": "connector.pipeline.runtime",
        "build_client": "connector.pipeline.runtime",
        "build_router": "connector.pipeline.runtime",
    },
)
