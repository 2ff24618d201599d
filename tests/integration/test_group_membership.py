"""Rolling restarts without rebalance storms, on the project's broker (Apache Kafka 4.1, KRaft).

* Static membership (KIP-345): two replicas with ``KAFKA_GROUP_INSTANCE_ID`` (the chart's StatefulSet sets the
  pod name). One is stopped (SIGTERM, as a rolling deploy does) and started again under the same name inside
  ``session.timeout.ms``: it gets its partitions back and the other replica sees no rebalance at all — its
  ``attentive_connector_rebalances_total`` counters do not move — while every record is delivered.
* KIP-848 (``group.protocol: consumer``): two replicas share the topic's partitions under the broker-driven
  protocol and deliver every record exactly as with the classic one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from tests.integration.engine_support import (
    ConnectorProcess,
    JournalView,
    committed,
    make_stack,
    produce_samples,
    read_all,
    wait_until,
)
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration

PARTITIONS = 4
REBALANCES = "attentive_connector_rebalances_total"


def rebalances(proc: ConnectorProcess) -> dict[str, float]:
    return {kind: proc.metric(REBALANCES, kind=kind) for kind in ("assigned", "revoked", "lost")}


def delivered(sandbox: SandboxProcess, topic: str) -> int:
    return len(
        {"/".join(r.split("/")[:3]) for r in JournalView.of(sandbox).ok_by_call if r.startswith(topic)}
    )


def assignment(bootstrap: str, group: str) -> dict[str, list[int]] | None:
    """Group instance id -> its partitions when the group is stable, as the broker sees it (else None)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if desc.state != ConsumerGroupState.STABLE:
        return None
    return {
        str(m.group_instance_id or m.member_id): sorted(tp.partition for tp in m.assignment.topic_partitions)
        for m in desc.members
    }


def set_client(stack_config: Path, **settings: object) -> None:
    cfg = yaml.safe_load(stack_config.read_text())
    cfg["kafka"]["client"].update(settings)
    stack_config.write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_a_static_member_restarted_inside_the_session_timeout_causes_no_rebalance(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(
        tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["loyalty"], partitions=PARTITIONS
    )
    set_client(stack.config_path, **{"session.timeout.ms": 45000})
    topic = stack.topics["loyalty"]
    a = ConnectorProcess(stack, name="member-a", extra_env={"KAFKA_GROUP_INSTANCE_ID": "member-a"})
    b = ConnectorProcess(stack, name="member-b", extra_env={"KAFKA_GROUP_INSTANCE_ID": "member-b"})
    a2: ConnectorProcess | None = None
    try:
        produce_samples(stack, "loyalty", 100, seed=1)
        wait_until(lambda: delivered(sandbox, topic) >= 100, timeout_s=90, what="the first 100 delivered")

        # The group settles: stable, both members own partitions (cooperative-sticky takes two rounds).
        def settled() -> bool:
            now = assignment(kafka_bootstrap, stack.group)
            return now is not None and len(now) == 2 and all(now.values())

        wait_until(settled, timeout_s=60, what="both members owning partitions")
        wait_until(lambda: a.ready() and b.ready(), timeout_s=30, what="both ready")
        owned = assignment(kafka_bootstrap, stack.group)
        before = rebalances(b)

        assert a.terminate() == 0  # a rolling deploy's SIGTERM: a static member does not leave the group
        a2 = ConnectorProcess(stack, name="member-a-again", extra_env={"KAFKA_GROUP_INSTANCE_ID": "member-a"})
        wait_until(
            lambda: a2 is not None and a2.metric(REBALANCES, kind="assigned") >= 1,
            timeout_s=60,
            what="the restarted member given its partitions back",
        )
        produce_samples(stack, "loyalty", 100, seed=2)
        wait_until(lambda: delivered(sandbox, topic) >= 200, timeout_s=90, what="all 200 delivered")
        # Both members delivered after the restart: b kept its partitions, a2 got a's back.
        messages = read_all(kafka_bootstrap, topic)
        assert len(messages) == 200
        assert rebalances(b) == before, "the other member saw a rebalance"
        assert assignment(kafka_bootstrap, stack.group) == owned  # same members, same partitions
        regained = [m["message"] for m in a2.messages() if str(m.get("message", "")).startswith("assigned: ")]
        assert regained and "(nothing new)" not in regained[0], regained
        assert a2.terminate() == 0 and b.terminate() == 0
        assert sum(committed(kafka_bootstrap, stack.group, topic, PARTITIONS).values()) == 200
    finally:
        for p in (a, b, a2):
            if p is not None:
                p.stop_quietly()


def test_the_kip848_consumer_protocol_shares_partitions_and_delivers_everything(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(
        tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["loyalty"], partitions=PARTITIONS
    )
    set_client(stack.config_path, **{"group.protocol": "consumer"})
    topic = stack.topics["loyalty"]
    produce_samples(stack, "loyalty", 200, seed=3)
    first = ConnectorProcess(stack, name="kip848-1")
    second: ConnectorProcess | None = None
    try:
        wait_until(lambda: delivered(sandbox, topic) >= 50, timeout_s=90, what="the first member delivering")
        second = ConnectorProcess(stack, name="kip848-2")
        wait_until(
            lambda: second is not None and second.metric(REBALANCES, kind="assigned") >= 1,
            timeout_s=60,
            what="the second member assigned partitions",
        )
        produce_samples(stack, "loyalty", 200, seed=4)
        wait_until(lambda: delivered(sandbox, topic) >= 400, timeout_s=90, what="all 400 delivered")
        assert first.metric(REBALANCES, kind="revoked") >= 1  # it handed partitions over, incrementally
        assert first.terminate() == 0 and second.terminate() == 0
        assert sum(committed(kafka_bootstrap, stack.group, topic, PARTITIONS).values()) == 400
        assert "partition.assignment.strategy" not in first.log_text()  # nothing refused by librdkafka
    finally:
        for p in (first, second):
            if p is not None:
                p.stop_quietly()
