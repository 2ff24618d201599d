"""Kafka unreachable (issue 12, item 6): one log line per interval with a count, and ``/readyz`` says why.

The reproduction is the real thing: librdkafka (a real ``confluent_kafka.Consumer`` built from the connector's
own ``consumer_config``) against a loopback port nothing listens on reports every reconnect attempt, ~40 lines
a second before the fix. The poll thread here is the connector's :class:`Poller`; only the engine is faked.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from connector.config import load_config
from connector.devkafka.broker import free_port
from connector.observability.health import HealthState
from connector.observability.logs import RateLimitedLog, RateLimitFilter, kafka_client_logger
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import default_consumer_factory
from connector.source import poller as poller_module
from connector.source.kafka import consumer_config
from connector.source.poller import Poller, PollSettings
from tests.support import REPO
from tests.unit.test_engine_poller import FakeLink, eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limited_log_writes_once_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t.limited"), interval_s=30, clock=clock)
    caplog.set_level(logging.WARNING, "t.limited")
    for _ in range(40):
        limited.warning("transport", "Kafka client error: %s", "Connection refused")
        clock.now += 0.025
    assert [r.getMessage() for r in caplog.records] == ["Kafka client error: Connection refused"]
    assert limited.held_back("transport") == 39
    assert limited.warning("other", "another condition")  # keys are independent
    clock.now += 30
    limited.warning("transport", "Kafka client error: %s", "Connection refused")
    assert caplog.records[-1].getMessage() == (
        "Kafka client error: Connection refused (39 more like this in the last 30s)"
    )
    assert limited.held_back("transport") == 0


def test_rate_limit_filter_keys_on_librdkafkas_facility_and_drops_its_retry_notes() -> None:
    clock = Clock()
    flt = RateLimitFilter(interval_s=10, clock=clock)

    def rec(fac: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord(
            "librdkafka", level, "x", 0, "%s [%s] %s", (fac, "rdkafka#consumer-1", msg), None
        )

    assert flt.filter(rec("FAIL", "Connect to ipv4#127.0.0.1:9 failed: Connection refused"))
    assert not flt.filter(rec("FAIL", "Connect to ipv4#127.0.0.1:9 failed: Connection refused"))
    assert flt.filter(rec("CONFWARN", "a different facility"))
    assert not flt.filter(rec("GETPID", "Failed to acquire idempotence PID: retrying", logging.WARNING))
    clock.now += 10
    again = rec("FAIL", "Connect failed")
    assert flt.filter(again)
    assert again.getMessage().endswith("(1 more like this in the last 10s)")


async def test_a_dead_broker_gives_a_line_per_interval_and_readyz_says_why(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fresh limiters: other tests in this process may have used the module-level ones.
    errors = RateLimitedLog(poller_module.log)
    monkeypatch.setattr(poller_module, "_errors", errors)
    monkeypatch.setattr(logging.getLogger("connector.kafka.librdkafka"), "filters", [])
    kafka_client_logger()
    caplog.set_level(logging.INFO)

    dead = f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "connector.yaml"
    cfg.write_text(f"topics:\n  orders:\n    schema: {REPO / 'schemas' / 'orders.avsc'}\n")
    conf = consumer_config(load_config(cfg, env={"KAFKA_BOOTSTRAP_SERVERS": dead}))
    health = HealthState()
    poller = Poller(
        default_consumer_factory,
        conf,
        link=FakeLink(),
        loop=asyncio.get_running_loop(),
        topics=["orders"],
        settings=PollSettings(timeout_s=0.05),
        metrics=Metrics(CollectorRegistry()),
        health=health,
    )
    poller.start()
    try:
        # Wait until librdkafka has reported the refused connection at least 20 times (~1 s of reconnects).
        await eventually(lambda: errors.held_back(f"client:{KafkaError._TRANSPORT}") >= 20, timeout=30)
    finally:
        poller.stop()
        await poller.wait()
    client_lines = [r for r in caplog.records if r.getMessage().startswith("Kafka client error")]
    transport_lines = [r for r in client_lines if "Connection refused" in r.getMessage()]
    assert len(transport_lines) == 1, [r.getMessage() for r in client_lines]
    librdkafka_lines = [r for r in caplog.records if r.name == "connector.kafka.librdkafka"]
    assert len([r for r in librdkafka_lines if "Connection refused" in r.getMessage()]) <= 1
    # Nothing raw from librdkafka on the process's stderr (it all went through logging).
    assert "%3|" not in capfd.readouterr().err
    ready, reasons = health.ready()
    assert not ready
    [broker] = [r for r in reasons if r.startswith("Kafka broker not reachable")]
    assert "Connection refused" in broker, reasons
    # Reachable again: the reason goes with it.
    health.broker_reachable = True
    assert not any(r.startswith("Kafka broker") for r in health.ready()[1])
    assert health.snapshot()["broker_error"] is None
