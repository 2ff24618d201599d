"""The orchestration above the stages: the only package that knows every stage.

source (poll thread) → decode and route (rules) → deliver (lanes, retries, circuits) → finish (commit
watermark, or dead-letter). :class:`Engine` runs a record through those stages; :class:`DeliveryRuntime`
builds the parts from the config and starts and stops them in order; :class:`Connector` is the ``run``
command's core; :mod:`connector.pipeline.replay` is ``dlq replay``. Stages never import from here.
"""

from connector.pipeline.connector import Connector
from connector.pipeline.engine import Engine
from connector.pipeline.runtime import DeliveryRuntime, build_client, build_router

__all__ = ["Connector", "DeliveryRuntime", "Engine", "build_client", "build_router"]
