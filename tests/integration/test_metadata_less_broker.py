"""On a broker that keeps no offset commit metadata (tansu), the connector says so once and still loses nothing.

tansu (``tests/integration/tansu_broker.py``) is a real Kafka-protocol broker whose OffsetFetch answers no
metadata. Records finished above a partition's committed position then cannot be skipped after a restart, so
they are delivered again: the connector detects the broker's behaviour (one log line per process and
``attentive_connector_commit_metadata_stored`` 0) and keeps the window small by committing the watermark as soon
as it moves. 600 records go through while the sandbox fails 30 % of requests; the connector is SIGKILLed twice;
every record's calls end with a 2xx and the duplicates per kill are reported.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from connector.devkafka.broker import create_topics
from tests.integration.engine_support import (
    ConnectorProcess,
    JournalView,
    Message,
    expected_calls,
    make_stack,
    produce_samples,
    wait_until,
)
from tests.integration.tansu_broker import Tansu
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration

RECORDS = 600
PARTITIONS = 3
FAULTS = {"error_rates": {"500": 0.15, "503": 0.14, "429": 0.01}, "latency_ms": 15, "jitter_ms": 15}
DETECTED = "the broker does not keep offset commit metadata"


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path / "tansu.log")
    try:
        yield broker
    finally:
        broker.stop()


def read_n(bootstrap: str, topic: str, n: int, timeout_s: float = 30) -> list[Message]:
    """The first ``n`` records of ``topic`` from offset 0 (tansu's high watermarks are not to be trusted)."""
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen: dict[str, Message] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < n and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                msg = Message.of(m)
                seen[msg.record_id] = msg
        assert len(seen) == n, f"read {len(seen)} of {n} records from {topic}"
        return list(seen.values())
    finally:
        c.close()


def test_a_broker_without_commit_metadata_is_detected_once_and_nothing_is_lost(
    tmp_path: Path, tansu: Tansu, sandbox: SandboxProcess, record_property: Callable[[str, object], None]
) -> None:
    def make_topic(partitions: int = PARTITIONS, prefix: str | None = None) -> str:
        name = f"{prefix or 'tansu'}-{uuid.uuid4().hex[:8]}"
        create_topics(tansu.bootstrap, [name], partitions=partitions)
        return name

    stack = make_stack(
        tmp_path, tansu.bootstrap, make_topic, sandbox, kinds=["loyalty"], partitions=PARTITIONS
    )
    topic = stack.topics["loyalty"]
    assert produce_samples(stack, "loyalty", RECORDS, seed=21) == RECORDS
    calls = expected_calls(stack, read_n(tansu.bootstrap, topic, RECORDS))
    deliverable = [cs for cs in calls.values() if cs]
    sandbox.set_faults(FAULTS)

    def done_records() -> int:
        ok = JournalView.of(sandbox).ok_by_call
        return sum(1 for cs in deliverable if all(ok.get(c) for c in cs))

    def past(fraction: float) -> bool:
        return done_records() >= fraction * len(deliverable)

    def detected(proc: ConnectorProcess) -> bool:
        return DETECTED in proc.log_text()

    procs: list[ConnectorProcess] = []
    kills: list[tuple[float, int]] = []  # (unix time, 2xx answers so far)
    try:
        for n, fraction in enumerate((0.3, 0.65)):
            proc = ConnectorProcess(stack, name=f"tansu-{n}")
            procs.append(proc)
            wait_until(partial(detected, proc), timeout_s=60, what="the detection log line")
            assert proc.metric("attentive_connector_commit_metadata_stored") == 0
            wait_until(partial(past, fraction), timeout_s=120, what=f"{fraction:.0%}")
            proc.kill()
            kills.append((time.time(), len(JournalView.of(sandbox).entries)))
        final = ConnectorProcess(stack, name="tansu-final")
        procs.append(final)
        wait_until(
            lambda: done_records() == len(deliverable),
            timeout_s=180,
            interval_s=1.0,
            what="every record delivered",
        )
        wait_until(partial(detected, final), timeout_s=60, what="the detection log line")
        assert final.metric("attentive_connector_commit_metadata_stored") == 0
        assert final.terminate() == 0
    finally:
        for p in procs:
            p.stop_quietly()

    for p in procs:  # said once per process, not per commit
        assert p.log_text().count(DETECTED) == 1, p.name
    view = JournalView.of(sandbox)
    # Duplicates per kill: 2xx answers for calls already answered 2xx, between one kill and the next.
    seen: set[str] = set()
    per_kill = [0 for _ in kills]
    for e in view.entries:
        if not 200 <= int(e["status"]) < 300:
            continue
        rid = e["record_id"]
        if rid in seen:
            after = [i for i, (t, _n) in enumerate(kills) if t <= float(e["time"])]
            if after:
                per_kill[after[-1]] += 1
        seen.add(rid)
    duplicates = view.duplicates()
    record_property("duplicates", duplicates)
    record_property("duplicates_per_kill", per_kill)
    print(
        f"\ntansu: {RECORDS} records, {len(deliverable)} delivered, duplicates={duplicates} per kill={per_kill}"
    )
    assert sum(per_kill) == duplicates  # every duplicate follows a kill: clean stops resend nothing
