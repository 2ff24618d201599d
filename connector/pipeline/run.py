"""The ``run`` command: load the config, start the health server, run the :class:`Connector` until a signal.

Kept apart from :mod:`connector.pipeline.connector` and importing it only when it runs, so ``run --help``
does not load Kafka, HTTP and the rule engine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from connector import __version__

if TYPE_CHECKING:
    from connector.config import ConnectorConfig
    from connector.observability.metrics import Metrics
    from connector.pipeline.connector import Connector

__all__ = ["add_arguments", "main"]

log = logging.getLogger("connector.pipeline.connector")  # the run's log lines keep their logger name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="config/connector.yaml",
        metavar="FILE",
        help="connector config file (default: %(default)s); env vars override deployment values",
    )


def main(args: argparse.Namespace) -> int:
    from connector.config import load_config
    from connector.observability.logs import configure_logging, register_secret
    from connector.observability.metrics import Metrics
    from connector.pipeline.connector import Connector
    from connector.pipeline.runtime import settle_heap

    config = load_config(args.config)  # ConfigError → exit 2 (cli.main), environment variables included
    configure_logging(config.logging.format, config.logging.level)
    # A missing, empty or unreadable key is a configuration error (exit 2); a refused one is the auth gate's.
    register_secret(config.attentive.resolved_api_key().get_secret_value())
    metrics = Metrics()
    connector = Connector(config, metrics=metrics)  # bad rule table: ConfigError → exit 2
    log.info(
        "attentive-connector %s starting: topics %s; Attentive %s with the API key from %s",
        __version__,
        ", ".join(sorted(config.topics)),
        config.attentive.base_url,
        config.attentive.key_source,
    )
    settle_heap()
    try:
        asyncio.run(_serve(connector, config, metrics))
    except Exception:
        # The last word of a crashed run: with its traceback, so the bug can be found.
        log.exception("connector failed")
        return 1
    return 0


async def _serve(connector: Connector, config: ConnectorConfig, metrics: Metrics) -> None:
    from connector.observability.health import HealthServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = HealthServer(metrics, connector.health, host=config.metrics.host, port=config.metrics.port)
    await server.start()
    log.info("health and metrics on %s (/metrics, /healthz, /readyz)", server.url)
    try:
        await connector.run(stop)
    finally:
        await server.stop()
