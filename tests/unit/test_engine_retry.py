"""Retry decisions, the circuit in the engine (outage vs. one bad record), and the in-flight bound."""

from __future__ import annotations

import asyncio

import pytest

from connector.config import CircuitSettings, RetrySettings
from connector.delivery.retry import CallAttempts, RetryPolicy, Verdict
from connector.errors import (
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
)
from connector.source.offsets import TP
from tests.unit.engine_fakes import (
    FakeSender,
    PacedSender,
    QuickBackoff,
    Rigs,
    delivery_settings,
    eventually,
    rec,
    sample,
)

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

T0 = TP("orders", 0)


def err503() -> ApiTransientError:
    return ApiTransientError("503", endpoint="custom_event", status=503, body="down")


def policy(max_attempts: int = 3, max_age_s: float = 60) -> tuple[RetryPolicy, QuickBackoff]:
    b = QuickBackoff()
    return RetryPolicy(RetrySettings(max_attempts=max_attempts, max_age_s=max_age_s), b), b


def test_permanent_error_dead_letters_at_once() -> None:
    p, _ = policy()
    st = CallAttempts()
    d = p.on_failure(
        st, ApiPermanentError("400", endpoint="e", status=400), now=0, circuit_open=False, circuit_epoch=0
    )
    assert d.verdict is Verdict.DEAD_LETTER
    assert d.reason == "rejected"
    assert st.attempts == 1


def test_transient_errors_retry_until_max_attempts_while_the_circuit_is_closed() -> None:
    p, b = policy(max_attempts=3)
    st = CallAttempts()
    verdicts = [
        p.on_failure(st, err503(), now=i, circuit_open=False, circuit_epoch=0).verdict for i in range(3)
    ]
    assert verdicts == [Verdict.RETRY, Verdict.RETRY, Verdict.DEAD_LETTER]
    assert [a for a, _ in b.calls] == [1, 2]  # backoff grows with the strike count
    assert (st.first_failure, st.last_failure) == (0, 2)


def test_transient_errors_dead_letter_after_max_age() -> None:
    p, _ = policy(max_attempts=100, max_age_s=10)
    st = CallAttempts()
    assert (
        p.on_failure(
            st, NetworkError("timeout", endpoint="e"), now=0, circuit_open=False, circuit_epoch=0
        ).verdict
        is Verdict.RETRY
    )
    assert (
        p.on_failure(
            st, NetworkError("timeout", endpoint="e"), now=9, circuit_open=False, circuit_epoch=0
        ).verdict
        is Verdict.RETRY
    )
    d = p.on_failure(st, NetworkError("timeout", endpoint="e"), now=10, circuit_open=False, circuit_epoch=0)
    assert d.verdict is Verdict.DEAD_LETTER and d.reason == "network"


def test_rate_limits_never_count_and_honour_retry_after() -> None:
    p, b = policy(max_attempts=2)
    st = CallAttempts()
    for i in range(10):
        d = p.on_failure(
            st,
            RateLimitedError("429", endpoint="e", status=429, retry_after=0.03),
            now=i,
            circuit_open=False,
            circuit_epoch=0,
        )
        assert d.verdict is Verdict.RETRY
        assert d.delay_s == 0.03
    assert st.strikes == 0 and st.attempts == 10


def test_an_open_circuit_holds_without_strikes_and_a_new_epoch_resets_the_budget() -> None:
    p, _ = policy(max_attempts=2, max_age_s=5)
    st = CallAttempts()
    assert p.on_failure(st, err503(), now=0, circuit_open=False, circuit_epoch=0).verdict is Verdict.RETRY
    for i in range(1, 100):  # a long outage: never dead-lettered, no delay of its own
        d = p.on_failure(st, err503(), now=i, circuit_open=True, circuit_epoch=0)
        assert d.verdict is Verdict.RETRY and d.delay_s == 0
    # The circuit closed (epoch 1): the strike from before the outage and its age are forgotten.
    assert p.on_failure(st, err503(), now=200, circuit_open=False, circuit_epoch=1).verdict is Verdict.RETRY
    assert (
        p.on_failure(st, err503(), now=201, circuit_open=False, circuit_epoch=1).verdict
        is Verdict.DEAD_LETTER
    )


def test_unexpected_exceptions_are_strikes() -> None:
    p, _ = policy(max_attempts=1)
    d = p.on_failure(CallAttempts(), RuntimeError("bug"), now=0, circuit_open=False, circuit_epoch=0)
    assert d.verdict is Verdict.DEAD_LETTER and d.reason == "internal_error"  # a bug, not a ConnectorError


async def test_one_record_failing_while_the_endpoint_is_healthy_is_dead_lettered_after_max_attempts(
    make_rig: Rigs,
) -> None:
    sender = FakeSender()
    sender.default = lambda call: err503() if call.record_id == "orders/0/3" else None
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(20)])
    await asyncio.wait_for(rig.engine.wait_idle(5), 6)
    assert rig.engine.stats()["dead_lettered"] == 1
    assert rig.engine.stats()["delivered"] == 19
    [dl] = rig.producer.written
    assert dl["headers"]["dlq.original.offset"] == b"3"
    assert dl["headers"]["dlq.attempts"] == b"3"
    assert dl["headers"]["dlq.http.status"] == b"503"
    assert sample(rig.metrics, rig.metrics.api_retries, endpoint="custom_event", reason="server_error") == 2


async def test_an_outage_opens_the_circuit_holds_everything_and_delivers_after_recovery(
    make_rig: Rigs,
) -> None:
    sender = FakeSender(latency_s=0.001)
    outage = True
    sender.default = lambda call: err503() if outage else None
    settings = delivery_settings(
        retry=RetrySettings(max_attempts=2, max_age_s=0.2, backoff_base_s=0.001, backoff_cap_s=0.01),
        circuit=CircuitSettings(failure_ratio=0.5, window_s=5, min_calls=5, open_s=0.05),
    )
    rig = await make_rig(settings=settings, sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(30)])
    # Until the circuit opens, and then well past max_age and max_attempts (0.2 s, 2).
    await eventually(lambda: rig.circuits.open_endpoints() == ["custom_event"])
    await asyncio.sleep(0.4)  # sleep-ok: the budget must run out while the circuit is open
    assert rig.circuits.open_endpoints() == ["custom_event"]
    assert sample(rig.metrics, rig.metrics.circuit_open, endpoint="custom_event") == 1
    assert rig.engine.stats()["dead_lettered"] == 0
    # While open, only probes reach the endpoint (one per open_s: 6 in 0.3 s of virtual time, +1 for where
    # the interval starts), not 30 records' retries.
    before = len(sender.sent)
    await asyncio.sleep(0.3)
    assert len(sender.sent) - before <= 7
    outage = False
    await asyncio.wait_for(rig.engine.wait_idle(5), 6)
    assert rig.engine.stats()["delivered"] == 30
    assert rig.engine.stats()["dead_lettered"] == 0
    assert rig.producer.written == []
    assert sample(rig.metrics, rig.metrics.circuit_open, endpoint="custom_event") == 0


async def test_in_flight_bound_counts_requests_not_waiting_retries(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.01)
    flaky = {f"orders/0/{i}" for i in range(0, 40, 2)}
    sender.script = {
        rid: [RateLimitedError("429", endpoint="custom_event", status=429, retry_after=0.02)] for rid in flaky
    }
    rig = await make_rig(settings=delivery_settings(max_in_flight=5), sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(40)])
    await asyncio.wait_for(rig.engine.wait_idle(5), 6)
    assert sender.max_in_flight <= 5
    assert rig.engine.stats()["delivered"] == 40


async def test_a_slow_endpoint_cannot_take_every_request_slot(make_rig: Rigs) -> None:
    from connector.attentive.endpoints import Endpoint
    from connector.types import Call

    sender = FakeSender()
    sender.slow = {f"s{i}": 0.2 for i in range(10)}
    rig = await make_rig(
        settings=delivery_settings(max_in_flight=4), sender=sender, endpoint_limits={"subscribe": 2}
    )
    deliverer = rig.deliverer
    subs = [
        asyncio.ensure_future(deliverer.deliver(Call(Endpoint.SUBSCRIBE, {}, f"s{i}", "r")))
        for i in range(10)
    ]
    await eventually(lambda: sender.in_flight == 2)
    assert sender.in_flight == 2  # subscribe is capped at 2 of the 4 slots
    t0 = asyncio.get_running_loop().time()
    await deliverer.deliver(Call(Endpoint.CUSTOM_EVENT, {}, "c0", "r"))
    assert asyncio.get_running_loop().time() - t0 < 0.1  # not queued behind the slow subscribes
    await asyncio.gather(*subs)


async def test_rate_limit_waits_happen_without_holding_a_request_slot(make_rig: Rigs) -> None:
    from connector.attentive.endpoints import Endpoint
    from connector.types import Call

    held_until = asyncio.get_running_loop().time() + 0.3  # e.g. a 429's Retry-After

    async def wait_turn(endpoint: Endpoint) -> None:
        if endpoint is Endpoint.SUBSCRIBE:
            await asyncio.sleep(max(0.0, held_until - asyncio.get_running_loop().time()))

    def try_turn(endpoint: Endpoint) -> bool:
        return endpoint is not Endpoint.SUBSCRIBE or asyncio.get_running_loop().time() >= held_until

    sender = FakeSender()
    sender.wait_turn = wait_turn  # type: ignore[method-assign]
    sender.try_turn = try_turn  # type: ignore[method-assign]
    rig = await make_rig(settings=delivery_settings(max_in_flight=1), sender=sender)
    deliverer = rig.deliverer
    held = asyncio.ensure_future(deliverer.deliver(Call(Endpoint.SUBSCRIBE, {}, "s0", "r")))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(
        deliverer.deliver(Call(Endpoint.CUSTOM_EVENT, {}, "c0", "r")), 0.2
    )  # the one slot is free
    assert not held.done()
    await asyncio.wait_for(held, 1)
    assert sender.delivered == ["c0", "s0"]


async def test_calls_racing_for_a_limiter_turn_do_not_wait_for_it_holding_a_slot(make_rig: Rigs) -> None:
    from connector.attentive.endpoints import Endpoint
    from connector.types import Call

    # Five subscribes all see the limiter ready, then queue for the one slot: only the first may take that
    # turn; the others must give the slot back and wait for theirs slot-free, so custom events keep flowing.
    sender = PacedSender(intervals={"subscribe": 0.1}, slow={"busy": 0.05})
    rig = await make_rig(settings=delivery_settings(max_in_flight=1), sender=sender)
    deliverer = rig.deliverer
    busy = asyncio.ensure_future(deliverer.deliver(Call(Endpoint.CUSTOM_EVENT, {}, "busy", "r")))
    await asyncio.sleep(0.01)  # "busy" holds the only slot; the subscribes below all see their limiter ready
    subs = [
        asyncio.ensure_future(deliverer.deliver(Call(Endpoint.SUBSCRIBE, {}, f"s{i}", "r"))) for i in range(5)
    ]
    await asyncio.wait_for(busy, 1)
    await asyncio.sleep(0.02)  # s0 took the turn; the others must not sit on the slot waiting for theirs
    for i in range(5):
        await asyncio.wait_for(deliverer.deliver(Call(Endpoint.CUSTOM_EVENT, {}, f"c{i}", "r")), 0.05)
    await asyncio.wait_for(asyncio.gather(*subs), 2)
    assert sender.limiter_waits == []  # no call ever slept in the limiter with a slot
    assert sorted(sender.delivered) == sorted(
        ["busy", *(f"s{i}" for i in range(5)), *(f"c{i}" for i in range(5))]
    )


async def test_limiter_waits_keep_the_per_endpoint_cap(make_rig: Rigs) -> None:
    from connector.attentive.endpoints import Endpoint
    from connector.types import Call

    sender = PacedSender(intervals={"subscribe": 0.01}, latency_s=0.05)
    rig = await make_rig(
        settings=delivery_settings(max_in_flight=8), sender=sender, endpoint_limits={"subscribe": 2}
    )
    calls = [rig.deliverer.deliver(Call(Endpoint.SUBSCRIBE, {}, f"s{i}", "r")) for i in range(12)]
    await asyncio.wait_for(asyncio.gather(*calls), 3)
    assert sender.max_in_flight <= 2
    assert sender.limiter_waits == []
    assert len(sender.delivered) == 12


async def test_waiting_calls_cost_one_look_at_the_limiter_each_not_one_per_turn(make_rig: Rigs) -> None:
    """One pump per endpoint: 200 calls queued behind a paced endpoint are let go in FIFO order, and the
    limiter is asked for exactly one turn per call (a herd of callers each polling it would ask ~200 times
    per turn)."""
    from connector.attentive.endpoints import Endpoint
    from connector.types import Call

    looks = {"n": 0, "refused": 0}

    class CountingSender(PacedSender):
        async def wait_turn(self, endpoint: object) -> None:
            looks["n"] += 1
            await super().wait_turn(endpoint)

        def try_turn(self, endpoint: object) -> bool:
            # The deliverer's fast path (nobody queued): a turn taken counts as a look; a refused one is the
            # call that then queues (once here: the calls after it find the queue and join it).
            taken = super().try_turn(endpoint)
            looks["n" if taken else "refused"] += 1
            return taken

    sender = CountingSender(intervals={"custom_event": 0.001})
    rig = await make_rig(settings=delivery_settings(max_in_flight=64), sender=sender)
    calls = [rig.deliverer.deliver(Call(Endpoint.CUSTOM_EVENT, {}, f"c{i}", "r")) for i in range(200)]
    await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert sender.delivered == [f"c{i}" for i in range(200)]  # FIFO
    assert sender.limiter_waits == []
    assert looks["n"] == 200
    assert looks["refused"] <= 1
