"""Assembly of the delivery machinery shared by ``run`` and ``dlq replay``.

Both read Kafka on a poll thread and push records through the same engine (routing, lanes, retries,
circuits, auth gate, dead-letter writes, commits); they differ only in what they read and when they stop.
:class:`DeliveryRuntime` builds the parts from the config and the injected seams, starts them in order and
shuts them down in order: stop consuming → drain within the grace period → commit synchronously → close the
consumer → flush the dead-letter producer → close the HTTP client.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.attentive.retry import Backoff
from connector.config import ConnectorConfig
from connector.delivery.auth import AuthGate
from connector.delivery.circuit import CircuitBoard
from connector.delivery.dead_letter import DeadLetterWriter
from connector.delivery.deliverer import CallDeliverer
from connector.delivery.protocols import ApiSender, ProducerFactory, RecordRouter
from connector.delivery.retry import RetryPolicy
from connector.observability.health import HealthState
from connector.observability.metrics import Metrics
from connector.pipeline.engine import Engine
from connector.source.kafka import Inbound, consumer_config, inbound, producer_config
from connector.source.poller import Poller, PollSettings
from connector.source.protocols import ConsumerFactory, KafkaMessage

log = logging.getLogger(__name__)


def build_router(config: ConnectorConfig) -> RecordRouter:
    """The rule table's router (raises ``ConfigError`` for a bad table)."""
    from connector.rules.router import Router

    return Router.from_config(config)


def build_client(config: ConnectorConfig, metrics: Metrics) -> ApiSender:
    from connector.attentive.client import AttentiveClient

    return AttentiveClient(config.attentive, metrics=metrics, max_connections=config.delivery.max_in_flight)


# Full collections wait for this many collections of the middle generation (Python's default: 10). Under load
# the buffered records (about a hundred objects each) reach the old generation within a second, so with the
# default a full collection ran every 3-6 s and stopped the event loop for 40-70 ms each time, finding nothing
# to free (`collected=0`); every endpoint then lost its turns at once and the catch-up crowded the server's
# next second. Ten times rarer keeps cyclic garbage (rare here) bounded to well under a minute's worth.
_FULL_COLLECTION_EVERY = 100


def settle_heap() -> None:
    """Once start-up has built everything long-lived (modules, the spec's validators, compiled rules, Avro
    schemas): move it out of the garbage collector's scans with ``gc.freeze()``. Full collections otherwise
    walk that whole heap and stopped the event loop for 100-230 ms several times a minute under load (every
    endpoint's rate dipped at once; measured with ``bench.engine_probe``)."""
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, _FULL_COLLECTION_EVERY)


def default_consumer_factory(conf: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(conf)


def default_producer_factory(conf: dict[str, Any]) -> Any:
    from confluent_kafka import Producer

    return Producer(conf)


class DeliveryRuntime:
    """The engine with its poll thread, dead-letter writer, auth gate and circuits, for one process."""

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        router: RecordRouter,
        client: ApiSender,
        metrics: Metrics,
        health: HealthState | None,
        consumer_factory: ConsumerFactory | None = None,
        producer_factory: ProducerFactory | None = None,
        clock: Callable[[], float] = time.time,
        group_id: str | None = None,
        topics: list[str] | None = None,
        fixed_topic: str | None = None,
        transform: Callable[[KafkaMessage], Inbound] = inbound,
    ) -> None:
        self.config = config
        self.client = client
        self.metrics = metrics
        self.health = health
        d = config.delivery
        rng = random.Random()
        self.backoff = Backoff(d.retry.backoff_base_s, d.retry.backoff_cap_s, rng)
        self.circuits = CircuitBoard(d.circuit, metrics=metrics)
        self.auth = AuthGate(client.me, interval_s=d.auth_check_interval_s, on_change=self._auth_changed)
        self.deliverer = CallDeliverer(
            client,
            policy=RetryPolicy(d.retry, self.backoff),
            circuits=self.circuits,
            auth=self.auth,
            max_in_flight=d.max_in_flight,
            metrics=metrics,
            # A request takes ~100 ms, so an endpoint paced at N/s needs about N/10 slots; allow N (and at
            # least 4) so latency spikes never starve it, while a slow endpoint cannot hold every slot.
            endpoint_limits={str(e): max(4, math.ceil(config.attentive.rate_limit(e))) for e in Endpoint},
            clock=clock,
        )
        producer = (producer_factory or default_producer_factory)(producer_config(config))
        self.dead_letters = DeadLetterWriter(producer, metrics=metrics, backoff=self.backoff)
        self.engine = Engine(
            settings=d,
            router=router,
            deliverer=self.deliverer,
            dead_letters=self.dead_letters,
            dlq_topic=lambda t: config.dlq_topic(t) if t in config.topics else f"{t}.dlq",
            metrics=metrics,
            route_backoff=self.backoff,
            health=health,
            clock=clock,
        )
        self.engine.auth_changed(False)  # not ready and not consuming until /v1/me accepts the key
        self._consumer_factory = consumer_factory or default_consumer_factory
        self._consumer_config = consumer_config(config, group_id=group_id)
        self._topics = topics
        self._fixed_topic = fixed_topic
        self._transform = transform
        self.poller: Poller | None = None

    def _auth_changed(self, ok: bool) -> None:
        self.engine.auth_changed(ok)

    async def start(self) -> None:
        """Start checking auth, committing and polling (in the running loop)."""
        loop = asyncio.get_running_loop()
        self.poller = Poller(
            self._consumer_factory,
            self._consumer_config,
            link=self.engine,
            loop=loop,
            topics=self._topics,
            fixed_topic=self._fixed_topic,
            settings=PollSettings(revoke_timeout_s=self.config.delivery.revoke_timeout_s),
            metrics=self.metrics,
            health=self.health,
            transform=self._transform,
            room=self.engine.buffer,
        )
        self.engine.bind(self.poller)
        self.auth.start()
        self.engine.start()
        self.poller.start()

    async def wait_failed(self) -> None:
        """Returns (raising its error) only if the poll thread dies."""
        assert self.poller is not None
        await self.poller.wait()

    async def shutdown(self, grace_s: float) -> bool:
        """Drain within ``grace_s``, commit synchronously, close everything. True if all records finished."""
        if self.health is not None:
            self.health.shutting_down = True
        drained = await self.engine.drain(grace_s)
        positions = self.engine.positions()
        if self.poller is not None:
            self.poller.stop(positions)
            try:
                await self.poller.wait()
            except Exception:
                log.exception("the Kafka consumer did not close cleanly")
        await self.engine.close()
        await self.deliverer.aclose()
        await self.auth.close()
        remaining = await self.dead_letters.close()
        if remaining:
            log.error(
                "%d dead-letter write(s) unacknowledged at shutdown (their records stay uncommitted)",
                remaining,
            )
        await self.client.aclose()
        return drained
