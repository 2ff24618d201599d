"""``attentive-connector run``: the long-running connector.

:class:`Connector` wires the delivery runtime (poll thread, engine, Attentive client, dead-letter producer)
from the config, with every I/O seam injectable. :func:`main` is the command: load the config (environment
overrides included), configure logging, build the router (a bad rule table exits 2 with the message),
serve ``/metrics``, ``/healthz`` and ``/readyz``, and run until SIGTERM/SIGINT — then stop consuming,
drain in-flight records within ``delivery.shutdown_grace_s``, commit, and close.

The connector is not ready, and consumes nothing, until Attentive's ``/v1/me`` accepts the API key; it
keeps checking rather than exiting, so a key fixed in the secret store is picked up without a restart
loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from connector.config import ConnectorConfig
from connector.delivery.protocols import ApiSender, ProducerFactory, RecordRouter
from connector.observability.health import HealthState
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import DeliveryRuntime, build_client, build_router
from connector.source.protocols import ConsumerFactory

log = logging.getLogger(__name__)


class Connector:
    """The connector process's core, without the CLI: ``await Connector(config).run(stop_event)``.

    Every seam is injectable for tests: ``router``, ``client`` (an :class:`ApiSender`), the Kafka
    ``consumer_factory``/``producer_factory`` (``dict -> Consumer/Producer``), ``metrics``, ``health`` and
    the wall ``clock``.
    """

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        router: RecordRouter | None = None,
        client: ApiSender | None = None,
        consumer_factory: ConsumerFactory | None = None,
        producer_factory: ProducerFactory | None = None,
        metrics: Metrics | None = None,
        health: HealthState | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.health = health if health is not None else HealthState()
        self._router = router if router is not None else build_router(config)
        self._client = client if client is not None else build_client(config, self.metrics)
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._clock = clock
        self.runtime: DeliveryRuntime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and deliver until ``stop`` is set, then shut down cleanly. Raises if the consumer dies."""
        runtime = DeliveryRuntime(
            self.config,
            router=self._router,
            client=self._client,
            metrics=self.metrics,
            health=self.health,
            consumer_factory=self._consumer_factory,
            producer_factory=self._producer_factory,
            clock=self._clock,
            topics=sorted(self.config.topics),
        )
        self.runtime = runtime
        self.health.config_loaded = True
        await runtime.start()
        stopped = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(runtime.wait_failed())
        try:
            await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            log.info(
                "stopping: draining in-flight records (up to %.0fs)", self.config.delivery.shutdown_grace_s
            )
            drained = await runtime.shutdown(self.config.delivery.shutdown_grace_s)
            log.info("stopped (%s): %s", "drained" if drained else "not fully drained", self.stats())
        error = failed.exception() if failed.done() and not failed.cancelled() else None
        if not failed.done():
            failed.cancel()
        if error is not None:
            raise error

    def stats(self) -> dict[str, int]:
        """Record counts {consumed, delivered, skipped, stale, dead_lettered, pending}."""
        if self.runtime is None:
            return dict.fromkeys(("consumed", "delivered", "skipped", "stale", "dead_lettered", "pending"), 0)
        s = self.runtime.engine.stats()
        s.pop("filtered", None)
        return s
