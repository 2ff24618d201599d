"""An endpoint-wide outage: the sandbox answers 503 to everything; nothing is dead-lettered, the backlog is
held (circuit open, partitions paused by backpressure) and everything is delivered once it recovers.

Timing is scaled down so the test runs in CI: the outage lasts 10 s instead of a minute, and the engine's
dead-letter budget is scaled down much further (``max_attempts: 3``, ``max_age_s: 2``), so without the
circuit the backlog would be dead-lettered within seconds of the outage starting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.engine_support import (
    ConnectorProcess,
    JournalView,
    all_accounted,
    expected_calls,
    make_stack,
    produce_samples,
    read_all,
    wait_until,
)
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration

OUTAGE_S = 10
MAX_BUFFERED = 200
SCALED = {
    "max_buffered_records": MAX_BUFFERED,
    "retry": {"max_attempts": 3, "max_age_s": 2, "backoff_base_s": 0.05, "backoff_cap_s": 0.5},
    "circuit": {"failure_ratio": 0.5, "window_s": 2, "min_calls": 5, "open_s": 0.5},
}


def test_outage_holds_the_backlog_and_delivers_everything_after(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(
        tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["orders", "loyalty"], delivery=SCALED
    )
    produce_samples(stack, "orders", 600, seed=31)
    produce_samples(stack, "loyalty", 400, seed=32)
    messages = read_all(kafka_bootstrap, stack.topics["orders"]) + read_all(
        kafka_bootstrap, stack.topics["loyalty"]
    )
    calls = expected_calls(stack, messages)
    sandbox.set_faults({"error_rates": {"503": 1.0}, "latency_ms": 5})
    proc = ConnectorProcess(stack)
    try:
        proc.wait_health_url()
        t0 = time.monotonic()
        saw_open = saw_paused = saw_lag = False
        while time.monotonic() - t0 < OUTAGE_S:
            saw_open = saw_open or proc.metric("attentive_connector_circuit_open") >= 1
            saw_paused = saw_paused or proc.metric("attentive_connector_paused_partitions") >= 1
            saw_lag = saw_lag or proc.metric("attentive_connector_consumer_lag") > 0
            assert proc.metric("attentive_connector_dlq_records_total") == 0
            time.sleep(0.5)
        assert saw_open, "no circuit opened during the outage"
        assert saw_paused, "backpressure never paused the partitions"
        assert saw_lag, "consumer lag (high watermark - committed) never showed the held backlog"
        assert proc.metric("attentive_connector_buffered_records") <= MAX_BUFFERED + 500
        during = len(JournalView.of(sandbox).entries)
        sandbox.set_faults({"latency_ms": 5})
        wait_until(
            lambda: not all_accounted(JournalView.of(sandbox), calls, set()),
            timeout_s=90,
            what="everything delivered after the outage",
            interval_s=1.0,
        )
        assert proc.metric("attentive_connector_dlq_records_total") == 0
        assert proc.metric("attentive_connector_circuit_open") == 0
        assert proc.terminate() == 0
    finally:
        proc.stop_quietly()
    assert read_all(kafka_bootstrap, stack.dlq("orders")) == []
    assert read_all(kafka_bootstrap, stack.dlq("loyalty")) == []
    print(f"\noutage: {during} requests during {OUTAGE_S}s of 503s (probes and first failures)")
