"""Session fixtures: one real Kafka broker and one real Schema Registry per test session, unique topics per
test, the Attentive sandbox.

The broker comes from :func:`connector.devkafka.broker.kafka_cluster` (``KAFKA_BOOTSTRAP_SERVERS``, Docker via
testcontainers, or a local KRaft broker fetched from Maven Central). The registry is Apicurio Registry with its
Confluent-compatible API (:mod:`connector.devkafka.apicurio`), started on first use. When a test fails, its
report carries the tails of the local broker's and registry's logs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Generator, Iterator

import pytest

from connector.devkafka import apicurio
from connector.devkafka import broker as devkafka
from tests.support import SandboxProcess

_local_brokers: list[devkafka.LocalKafka] = []
_local_registries: list[apicurio.LocalApicurio] = []


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker, started once per session (see module docstring)."""
    original = devkafka.start_local_kafka

    def _tracked(**kw: object) -> devkafka.LocalKafka:
        b = original(**kw)  # type: ignore[arg-type]
        _local_brokers.append(b)
        return b

    devkafka.start_local_kafka = _tracked  # type: ignore[assignment]
    try:
        with devkafka.kafka_cluster() as bootstrap:
            yield bootstrap
    finally:
        devkafka.start_local_kafka = original  # type: ignore[assignment]


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The Confluent-compatible URL of a real Apicurio Registry (global compatibility BACKWARD), one per session.

    Tests share it, so each test uses subjects of its own (its unique topics' ``<topic>-value``).
    """
    registry = apicurio.start_apicurio()
    _local_registries.append(registry)
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture
def make_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """``make_topic(partitions=3, prefix=None) -> name``: creates a uniquely named topic for this test."""

    def _make(partitions: int = 3, prefix: str | None = None) -> str:
        base = prefix or request.node.name.split("[")[0][:40]
        name = f"{base}-{uuid.uuid4().hex[:8]}".replace("_", "-")
        devkafka.create_topics(kafka_bootstrap, [name], partitions=partitions)
        return name

    return _make


@pytest.fixture(scope="session")
def _sandbox_process() -> Iterator[SandboxProcess]:
    sb = SandboxProcess("--no-rate-limit")
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def sandbox(_sandbox_process: SandboxProcess) -> SandboxProcess:
    """The shared sandbox subprocess (no rate limits), with faults cleared and the journal emptied."""
    _sandbox_process.reset()
    return _sandbox_process


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxProcess]]:
    """Start extra sandboxes with their own flags (e.g. Attentive's rate limits); stopped after the test."""
    started: list[SandboxProcess] = []

    def _start(*flags: str) -> SandboxProcess:
        sb = SandboxProcess(*flags)
        started.append(sb)
        return sb

    yield _start
    for sb in started:
        with contextlib.suppress(Exception):
            sb.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report carries the tails of this worker's broker and registry logs.

    Attached to the report (not printed at the end of the session) so that they reach the terminal from
    pytest-xdist's workers too, each next to the failure it may explain.
    """
    report = yield
    if report.failed:
        for b in _local_brokers:
            report.sections.append((f"local Kafka broker log tail ({b.log_path})", b.log_tail(80)))
        for r in _local_registries:
            report.sections.append((f"Apicurio Registry log tail ({r.log_path})", r.log_tail(40)))
    return report
