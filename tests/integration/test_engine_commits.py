"""The commit rule on the real broker: offsets move only past finished records.

Issue 2's proof: a consumer restarted after a failed delivery gets the record again; restarted after a
successful delivery, it does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.pipeline.connector import Connector
from tests.integration.engine_support import (
    JournalView,
    Stack,
    committed,
    make_stack,
    produce_samples,
    read_all,
)
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration


async def run_until(connector: Connector, predicate: Callable[[], bool], timeout_s: float) -> None:
    """Run ``connector`` until ``predicate()`` holds (or time runs out), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not task.done():
            if predicate():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def one_record_stack(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> Stack:
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["loyalty"],
        partitions=1,
        # The outage below must not look like one record's fault, and must not open a circuit for long.
        delivery={
            "retry": {"max_attempts": 1000, "max_age_s": 600, "backoff_base_s": 0.05, "backoff_cap_s": 0.2}
        },
    )
    produce_samples(stack, "loyalty", 1, seed=3)
    return stack


async def test_restart_after_a_failed_delivery_gets_the_record_again(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = one_record_stack(tmp_path, kafka_bootstrap, make_topic, sandbox)
    topic = stack.topics["loyalty"]
    [msg] = read_all(kafka_bootstrap, topic)
    sandbox.set_faults({"error_rates": {"503": 1.0}})

    first = Connector(stack.config)
    await run_until(first, lambda: len(sandbox.journal()) >= 3, timeout_s=30)
    assert first.stats()["consumed"] == 1
    assert first.stats()["delivered"] == 0
    assert first.stats()["dead_lettered"] == 0
    assert committed(kafka_bootstrap, stack.group, topic, 1)[0] < 1  # not past the failed record

    sandbox.set_faults({})
    sandbox.clear()
    second = Connector(stack.config)
    await run_until(second, lambda: second.stats()["delivered"] == 1, timeout_s=30)
    assert second.stats()["consumed"] == 1  # it came back
    view = JournalView.of(sandbox)
    assert any(rid.startswith(msg.record_id) for rid in view.ok_by_call)
    assert committed(kafka_bootstrap, stack.group, topic, 1)[0] == 1


async def test_restart_after_a_successful_delivery_does_not_get_it_again(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = one_record_stack(tmp_path, kafka_bootstrap, make_topic, sandbox)
    topic = stack.topics["loyalty"]

    first = Connector(stack.config)
    await run_until(first, lambda: first.stats()["delivered"] == 1, timeout_s=30)
    assert first.stats()["delivered"] == 1
    assert committed(kafka_bootstrap, stack.group, topic, 1)[0] == 1
    requests_before = len(sandbox.journal())

    second = Connector(stack.config)
    await run_until(second, lambda: False, timeout_s=4)  # give it time to (wrongly) redeliver
    assert second.stats()["consumed"] == 0
    assert len(sandbox.journal()) == requests_before + 0 or all(
        e["path"] == "/v1/me" for e in sandbox.journal()[requests_before:]
    )
