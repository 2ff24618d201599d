"""The per-endpoint circuit: opens on an outage, probes, closes on recovery; waits are asyncio-friendly."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from connector.config import CircuitSettings
from connector.delivery.circuit import Circuit, CircuitBoard, CircuitState
from connector.observability.metrics import Metrics

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SETTINGS = CircuitSettings(failure_ratio=0.5, window_s=10.0, min_calls=4, open_s=5.0)


def test_stays_closed_below_min_calls_even_if_all_fail() -> None:
    c = Circuit(SETTINGS, clock=FakeClock())
    for _ in range(3):
        c.record_failure()
    assert c.state is CircuitState.CLOSED


def test_stays_closed_when_failures_are_below_the_ratio() -> None:
    c = Circuit(SETTINGS, clock=FakeClock())
    for ok in (True, True, False, True, True, False, True):
        (c.record_success if ok else c.record_failure)()
    assert c.state is CircuitState.CLOSED


def test_opens_at_the_ratio_then_half_opens_one_probe_and_closes_on_success() -> None:
    clock = FakeClock()
    c = Circuit(SETTINGS, clock=clock)
    c.record_success()
    c.record_success()
    c.record_failure()
    assert c.state is CircuitState.CLOSED
    c.record_failure()  # 2 of 4 = 0.5
    assert c.state is CircuitState.OPEN  # type: ignore[comparison-overlap]  # mypy keeps the earlier narrowing
    permit = c.permit()
    assert not permit.go and permit.wait_s == 5.0
    clock.now += 5.0
    probe = c.permit()
    assert probe.go and probe.probe
    assert c.state is CircuitState.HALF_OPEN
    other = c.permit()
    assert not other.go  # one probe at a time
    epoch = c.epoch
    c.record_success(probe=True)
    assert c.state is CircuitState.CLOSED
    assert c.epoch == epoch + 1
    assert c.permit().go


def test_failed_probe_reopens_for_another_period() -> None:
    clock = FakeClock()
    c = Circuit(SETTINGS, clock=clock)
    for _ in range(4):
        c.record_failure()
    clock.now += 5.0
    assert c.permit().probe
    c.record_failure(probe=True)
    assert c.state is CircuitState.OPEN
    assert c.permit().wait_s == 5.0


def test_neutral_outcome_frees_the_probe_slot() -> None:
    clock = FakeClock()
    c = Circuit(SETTINGS, clock=clock)
    for _ in range(4):
        c.record_failure()
    clock.now += 5.0
    assert c.permit().probe
    c.record_neutral(probe=True)  # e.g. the probe got a 429 or was cancelled
    assert c.state is CircuitState.HALF_OPEN
    assert c.permit().probe


def test_old_outcomes_leave_the_window() -> None:
    clock = FakeClock()
    c = Circuit(SETTINGS, clock=clock)
    for _ in range(3):
        c.record_failure()
    clock.now += 11.0  # those three are out of the 10 s window
    c.record_success()
    c.record_success()
    c.record_success()
    c.record_failure()
    assert c.state is CircuitState.CLOSED


def test_success_while_open_from_an_older_call_does_not_close() -> None:
    c = Circuit(SETTINGS, clock=FakeClock())
    for _ in range(4):
        c.record_failure()
    c.record_success()  # a call sent before the circuit opened
    assert c.state is CircuitState.OPEN


async def test_board_waiters_are_released_when_the_probe_succeeds() -> None:
    metrics = Metrics(CollectorRegistry())
    board = CircuitBoard(
        CircuitSettings(failure_ratio=0.5, window_s=10, min_calls=2, open_s=0.05),
        metrics=metrics,
        clock=asyncio.get_running_loop().time,  # the cool-down runs on the loop's (virtual) time
    )
    board.failure("custom_event", probe=False)
    board.failure("custom_event", probe=False)
    assert board.open_endpoints() == ["custom_event"]
    assert (
        metrics.registry.get_sample_value("attentive_connector_circuit_open", {"endpoint": "custom_event"})
        == 1
    )

    loop = asyncio.get_running_loop()
    opened = loop.time()
    probe = await asyncio.wait_for(board.acquire("custom_event"), 1)
    assert probe is True
    assert loop.time() - opened == pytest.approx(0.05, abs=0.002)  # the probe went after the cool-down
    waiter = asyncio.ensure_future(board.acquire("custom_event"))
    await asyncio.sleep(0.1)
    assert not waiter.done()  # waits for the probe's answer
    board.success("custom_event", probe=True)
    assert await asyncio.wait_for(waiter, 1) is False
    assert (
        metrics.registry.get_sample_value("attentive_connector_circuit_open", {"endpoint": "custom_event"})
        == 0
    )
    # Other endpoints were never affected.
    assert await asyncio.wait_for(board.acquire("subscribe"), 1) is False


def test_board_says_closed_only_for_a_closed_circuit_it_knows() -> None:
    """``closed`` is the deliverer's check without a coroutine: an endpoint not seen yet, an open and a
    half-open circuit all answer False, so those calls take ``acquire`` (which creates, waits or probes)."""
    clock = FakeClock()
    board = CircuitBoard(
        CircuitSettings(failure_ratio=0.5, window_s=10, min_calls=2, open_s=5.0),
        metrics=Metrics(CollectorRegistry()),
        clock=clock,
    )
    assert not board.closed("custom_event")  # not seen yet
    board.success("custom_event", probe=False)
    assert board.closed("custom_event")
    board.failure("custom_event", probe=False)
    board.failure("custom_event", probe=False)
    board.failure("custom_event", probe=False)
    assert board.circuit("custom_event").state is CircuitState.OPEN
    assert not board.closed("custom_event")
    clock.now += 5.0
    assert board.circuit("custom_event").permit().probe  # half-open now, the probe out
    assert not board.closed("custom_event")
