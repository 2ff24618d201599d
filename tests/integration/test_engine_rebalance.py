"""No duplicates on a clean stop (SIGTERM) or a clean rebalance (a second member joins, then leaves).

In both cases in-flight records are finished and their offsets committed before the partitions are let
go, so no call is answered 2xx twice — and nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.engine_support import (
    KINDS,
    ConnectorProcess,
    JournalView,
    Stack,
    all_accounted,
    dead_letter_ids,
    expected_calls,
    make_stack,
    produce_samples,
    read_all,
    wait_until,
)
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration

# Slow enough that a stop or a rebalance lands mid-run, with some transient failures in the mix.
FAULTS = {"error_rates": {"503": 0.05}, "latency_ms": 40, "jitter_ms": 20}
SLOW = {"max_in_flight": 16}


def setup_records(stack: Stack, per_topic: int) -> dict[str, list[str]]:
    for i, kind in enumerate(KINDS):
        produce_samples(stack, kind, per_topic, seed=200 + i)
    messages = [m for kind in KINDS for m in read_all(stack.bootstrap, stack.topics[kind])]
    return expected_calls(stack, messages)


def delivered_fraction(sandbox: SandboxProcess, calls: dict[str, list[str]]) -> float:
    view = JournalView.of(sandbox)
    deliverable = [cs for cs in calls.values() if cs]
    return sum(1 for cs in deliverable if all(view.ok_by_call.get(c) for c in cs)) / len(deliverable)


def assert_complete_without_duplicates(stack: Stack, calls: dict[str, list[str]]) -> JournalView:
    view = JournalView.of(stack.sandbox)
    dead = dead_letter_ids(stack.bootstrap, [stack.dlq(k) for k in KINDS])
    assert all_accounted(view, calls, set(dead)) == []
    assert dead == {}
    dupes = {c: n for c, n in view.ok_by_call.items() if n > 1}
    if dupes:  # keep the evidence next to the connectors' logs
        (stack.config_path.parent / "journal.json").write_text(json.dumps(view.entries))
    assert dupes == {}, f"{len(dupes)} calls answered 2xx more than once, e.g. {list(dupes)[:5]}"
    return view


def test_no_duplicates_across_sigterm_and_restart(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, delivery=SLOW)
    calls = setup_records(stack, 400)
    sandbox.set_faults(FAULTS)
    first = ConnectorProcess(stack, name="first")
    try:
        wait_until(lambda: delivered_fraction(sandbox, calls) >= 0.3, timeout_s=120, what="30% delivered")
        t0 = time.monotonic()
        assert first.terminate() == 0
        stop_s = time.monotonic() - t0
        assert "stopped (drained)" in first.log_text(), first.log_text()[-6000:]
    finally:
        first.stop_quietly()
    assert delivered_fraction(sandbox, calls) < 1.0, "finished before the stop: the test proves nothing"
    second = ConnectorProcess(stack, name="second")
    try:
        wait_until(
            lambda: delivered_fraction(sandbox, calls) >= 1.0, timeout_s=120, what="everything delivered"
        )
        assert second.terminate() == 0
    finally:
        second.stop_quietly()
    assert_complete_without_duplicates(stack, calls)
    print(f"\nsigterm: stopped in {stop_s:.1f}s")


def test_no_duplicates_when_a_second_member_joins_and_leaves(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, delivery=SLOW)
    calls = setup_records(stack, 900)
    sandbox.set_faults(FAULTS)
    a = ConnectorProcess(stack, name="member-a")
    b: ConnectorProcess | None = None
    try:
        a.wait_health_url()
        wait_until(lambda: delivered_fraction(sandbox, calls) >= 0.15, timeout_s=120, what="15% delivered")
        b = ConnectorProcess(stack, name="member-b")
        b.wait_health_url()
        wait_until(
            lambda: b.metric("attentive_connector_records_consumed_total") > 0,
            timeout_s=60,
            what="b to get work",
        )
        wait_until(lambda: delivered_fraction(sandbox, calls) >= 0.6, timeout_s=120, what="60% delivered")
        assert delivered_fraction(sandbox, calls) < 1.0, "finished before b left: the test proves nothing"
        assert b.terminate() == 0  # leaves the group: its partitions go back to a
        wait_until(
            lambda: delivered_fraction(sandbox, calls) >= 1.0, timeout_s=120, what="everything delivered"
        )
        revoked = a.metric("attentive_connector_rebalances_total", kind="revoked")
        assigned = a.metric("attentive_connector_rebalances_total", kind="assigned")
        assert revoked >= 1, "member a never gave partitions away"
        assert assigned >= 2, "member a never got partitions back"
        assert a.terminate() == 0
    finally:
        a.stop_quietly()
        if b is not None:
            b.stop_quietly()
    assert_complete_without_duplicates(stack, calls)
