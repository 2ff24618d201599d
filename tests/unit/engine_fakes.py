"""Fakes for the delivery engine's seams (Attentive sender, router, Kafka producer, poll-thread commands).

Only the seams are fake; the engine, lanes, deliverer, retry policy, circuits, auth gate and dead-letter
writer under test are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from connector.attentive.endpoints import Endpoint
from connector.config import CircuitSettings, DeliverySettings, RetrySettings
from connector.delivery.auth import AuthGate
from connector.delivery.circuit import CircuitBoard
from connector.delivery.dead_letter import DeadLetterWriter
from connector.delivery.deliverer import CallDeliverer
from connector.delivery.retry import RetryPolicy
from connector.errors import ApiAuthError
from connector.observability.health import HealthState
from connector.observability.metrics import Metrics
from connector.pipeline.engine import Engine
from connector.source.flow import Hold, HoldReason
from connector.source.kafka import Inbound
from connector.source.offsets import TP, Commit
from connector.types import Call, Clock, RouteResult, SourceRecord


class QuickBackoff:
    """Tiny delays so tests run fast; honours retry_after (scaled down) like the real one."""

    def __init__(self, base: float = 0.001) -> None:
        self.base = base
        self.calls: list[tuple[int, float | None]] = []

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        self.calls.append((attempt, retry_after))
        return self.base if retry_after is None else min(retry_after, 0.05)


@dataclass
class FakeSender:
    """An Attentive stand-in: ``script[record_id]`` is a list of exceptions to raise before succeeding;
    ``default`` (a callable returning an exception or None) applies when no script is left."""

    latency_s: float = 0.0
    slow: dict[str, float] = field(default_factory=dict)  # record_id -> latency for that call only
    script: dict[str, list[BaseException]] = field(default_factory=dict)
    default: Callable[[Call], BaseException | None] = lambda call: None
    sent: list[tuple[str, str]] = field(default_factory=list)  # (record_id, outcome)
    delivered: list[str] = field(default_factory=list)
    me_error: BaseException | None = None
    me_calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    closed: bool = False

    def ready_in(self, endpoint: Any) -> float:
        return 0.0  # no rate limiter

    async def wait_turn(self, endpoint: Any) -> None:
        return None  # no rate limiter

    def try_turn(self, endpoint: Any) -> bool:
        return True  # no rate limiter: always due

    async def send(self, call: Call, *, turn_taken: bool = False) -> dict[str, Any]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            latency = self.slow.get(call.record_id, self.latency_s)
            if latency:
                await asyncio.sleep(latency)
            queued = self.script.get(call.record_id)
            err = queued.pop(0) if queued else self.default(call)
            if err is not None:
                self.sent.append((call.record_id, type(err).__name__))
                raise err
            self.sent.append((call.record_id, "ok"))
            self.delivered.append(call.record_id)
            return {"status": 200}
        finally:
            self.in_flight -= 1

    async def me(self) -> dict[str, str]:
        self.me_calls += 1
        if self.me_error is not None:
            raise self.me_error
        return {"companyName": "Test"}

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class PacedSender(FakeSender):
    """A FakeSender with a pacing limiter per endpoint, like the real client: ``ready_in(endpoint)`` says how
    long until the endpoint's next turn; ``send`` takes the next turn and sleeps until it (recording, in
    ``limiter_waits``, every wait it made while the deliverer held a request slot)."""

    intervals: dict[str, float] = field(default_factory=dict)  # endpoint -> seconds between requests
    next_turn: dict[str, float] = field(default_factory=dict)
    limiter_waits: list[tuple[str, float]] = field(default_factory=list)

    def ready_in(self, endpoint: Any) -> float:
        now = asyncio.get_running_loop().time()
        return max(0.0, self.next_turn.get(str(endpoint), now) - now)

    async def wait_turn(self, endpoint: Any) -> None:
        now = asyncio.get_running_loop().time()
        turn = max(now, self.next_turn.get(str(endpoint), now))
        self.next_turn[str(endpoint)] = turn + self.intervals.get(str(endpoint), 0.0)
        if turn > now:
            await asyncio.sleep(turn - now)  # slot-free: the deliverer takes its slots after the turn

    def try_turn(self, endpoint: Any) -> bool:
        now = asyncio.get_running_loop().time()
        turn = self.next_turn.get(str(endpoint), now)
        if turn > now:
            return False
        self.next_turn[str(endpoint)] = now + self.intervals.get(str(endpoint), 0.0)
        return True

    async def send(self, call: Call, *, turn_taken: bool = False) -> dict[str, Any]:
        if not turn_taken:
            endpoint = str(call.endpoint)
            now = asyncio.get_running_loop().time()
            turn = max(now, self.next_turn.get(endpoint, now))
            self.next_turn[endpoint] = turn + self.intervals.get(endpoint, 0.0)
            if turn > now:
                self.limiter_waits.append((call.record_id, turn - now))
                await asyncio.sleep(turn - now)
        return await super().send(call, turn_taken=True)


def auth_error() -> ApiAuthError:
    return ApiAuthError(
        "401 from attentive", endpoint="custom_event", status=401, body='{"error":"unauthorized"}'
    )


class JsonRouter:
    """Routes records whose value is JSON ``{"calls": n, "key": k, "skip": reason, "error": exc}``.

    Each call goes to ``endpoint`` (default custom_event). ``raise_first`` maps record ids to exceptions
    raised by ``route`` (once each) — e.g. the Schema Registry being down.
    """

    def __init__(self) -> None:
        self.raise_first: dict[str, list[BaseException]] = {}
        self.routed: list[str] = []
        self.errors: dict[str, Exception] = {}

    def needs_registry(self, record: SourceRecord) -> bool:
        return False

    def rule_names(self) -> list[str]:
        return []

    def route(self, record: SourceRecord) -> RouteResult:
        queued = self.raise_first.get(record.record_id)
        if queued:
            raise queued.pop(0)
        self.routed.append(record.record_id)
        if record.record_id in self.errors:
            return RouteResult(error=self.errors[record.record_id], rule="r1")
        spec = json.loads(record.value or b"{}")
        if spec.get("skip"):
            return RouteResult(skipped=spec["skip"], rule=None if spec["skip"] == "no_rule" else "r1")
        n = int(spec.get("calls", 1))
        endpoint = Endpoint(spec.get("endpoint", "custom_event"))
        calls = [
            Call(
                endpoint=endpoint,
                body={"i": i},
                record_id=record.record_id if n == 1 else f"{record.record_id}/{i}",
                rule="r1",
            )
            for i in range(n)
        ]
        return RouteResult(calls=calls, rule="r1", ordering_key=spec.get("key"))


class FakeProducer:
    """confluent-kafka Producer stand-in: ``fail_next`` delivery reports fail, the rest are acknowledged."""

    def __init__(self) -> None:
        self.fail_next = 0
        self.raise_next: list[BaseException] = []
        self.queued: list[tuple[Callable[[Any, Any], None], dict[str, Any]]] = []
        self.written: list[dict[str, Any]] = []
        self.attempts = 0

    def produce(self, topic: str, value: Any = None, key: Any = None, **kw: Any) -> None:
        self.attempts += 1
        if self.raise_next:
            raise self.raise_next.pop(0)
        msg = {"topic": topic, "key": key, "value": value, "headers": dict(kw.get("headers") or [])}
        self.queued.append((kw["on_delivery"], msg))

    def poll(self, timeout: float = -1) -> int:
        served = self.queued
        self.queued = []
        for cb, msg in served:
            if self.fail_next > 0:
                self.fail_next -= 1
                cb("KafkaError{code=_MSG_TIMED_OUT}", None)
            else:
                self.written.append(msg)
                cb(None, None)
        return len(served)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return 0


class FakeSource:
    """Records what the engine asks of the poll thread (the holds it states, the commits it asks for)."""

    def __init__(self) -> None:
        self.holds: dict[HoldReason, frozenset[TP] | None] = {}
        self.hold_log: list[Hold] = []
        self.commits: list[dict[TP, int]] = []
        self.metadata: list[dict[TP, str]] = []

    def hold(self, hold: Hold) -> None:
        self.hold_log.append(hold)
        if hold.partitions is not None and not hold.partitions:
            self.holds.pop(hold.reason, None)
        else:
            self.holds[hold.reason] = hold.partitions

    @property
    def paused(self) -> set[str]:
        """Reasons holding back every partition."""
        return {str(r) for r, tps in self.holds.items() if tps is None}

    @property
    def throttled(self) -> frozenset[TP]:
        return self.holds.get(HoldReason.OVER_SHARE) or frozenset()

    @property
    def throttle_log(self) -> list[frozenset[TP]]:
        return [h.partitions or frozenset() for h in self.hold_log if h.reason is HoldReason.OVER_SHARE]

    def commit(self, offsets: dict[TP, Commit]) -> None:
        self.commits.append({tp: c.offset for tp, c in offsets.items()})
        self.metadata.append({tp: c.metadata for tp, c in offsets.items()})

    def last_commit(self, tp: TP) -> int | None:
        for c in reversed(self.commits):
            if tp in c:
                return c[tp]
        return None


@dataclass
class Rig:
    engine: Engine
    sender: FakeSender
    router: JsonRouter
    producer: FakeProducer
    source: FakeSource
    metrics: Metrics
    health: HealthState
    auth: AuthGate
    circuits: CircuitBoard
    dead_letters: DeadLetterWriter
    deliverer: CallDeliverer
    closed: bool = False

    async def close(self) -> None:
        """Drain and close every part (once: the fixture closes what the test left open)."""
        if self.closed:
            return
        self.closed = True
        await self.engine.drain(0.5)
        await self.engine.close()
        await self.deliverer.aclose()
        await self.auth.close()
        await self.dead_letters.close(0.1)


def delivery_settings(**overrides: Any) -> DeliverySettings:
    base: dict[str, Any] = {
        "max_in_flight": 8,
        "max_buffered_records": 1000,
        "commit_interval_s": 0.05,
        "revoke_timeout_s": 1.0,
        "shutdown_grace_s": 1.0,
        "auth_check_interval_s": 0.05,
        "retry": RetrySettings(max_attempts=3, max_age_s=60, backoff_base_s=0.001, backoff_cap_s=0.01),
        "circuit": CircuitSettings(failure_ratio=0.5, window_s=10, min_calls=20, open_s=0.05),
    }
    base.update(overrides)
    return DeliverySettings(**base)


def loop_clocks() -> tuple[Clock, Clock]:
    """``(wall, monotonic)`` clocks that follow the running event loop's time, so a rig's retry budgets,
    circuit cool-downs and commit re-sends run on the same time as its sleeps and timers: virtual time under
    ``@pytest.mark.looptime`` (no real waiting), real time otherwise. The wall clock starts at the real one."""
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()
    return (lambda: offset + loop.time()), loop.time


class Rigs:
    """The ``make_rig`` fixture (tests/unit/conftest.py): builds started engines over the fakes, and closes
    every one it built when the test ends — passed or failed, so a failing test leaves no task running."""

    def __init__(self) -> None:
        self.built: list[Rig] = []

    async def __call__(
        self,
        *,
        settings: DeliverySettings | None = None,
        sender: FakeSender | None = None,
        auth_ok: bool = True,
        endpoint_limits: dict[str, int] | None = None,
        max_half_delivered: int | None = None,
    ) -> Rig:
        s = settings or delivery_settings()
        metrics = Metrics(CollectorRegistry())
        health = HealthState()
        sender = sender or FakeSender()
        router = JsonRouter()
        producer = FakeProducer()
        source = FakeSource()
        backoff = QuickBackoff()
        wall, monotonic = loop_clocks()
        circuits = CircuitBoard(s.circuit, metrics=metrics, clock=monotonic)
        engine_box: list[Engine] = []
        auth = AuthGate(
            sender.me, interval_s=s.auth_check_interval_s, on_change=lambda ok: engine_box[0].auth_changed(ok)
        )
        deliverer = CallDeliverer(
            sender,
            policy=RetryPolicy(s.retry, backoff),
            circuits=circuits,
            auth=auth,
            max_in_flight=s.max_in_flight,
            metrics=metrics,
            endpoint_limits=endpoint_limits,
            max_half_delivered=max_half_delivered,
            clock=wall,
        )
        dead_letters = DeadLetterWriter(producer, metrics=metrics, backoff=backoff, poll_interval_s=0.001)
        engine = Engine(
            settings=s,
            router=router,
            deliverer=deliverer,
            dead_letters=dead_letters,
            dlq_topic=lambda t: f"{t}.dlq",
            metrics=metrics,
            route_backoff=backoff,
            health=health,
            clock=wall,
            monotonic=monotonic,
        )
        engine_box.append(engine)
        rig = Rig(
            engine, sender, router, producer, source, metrics, health, auth, circuits, dead_letters, deliverer
        )
        self.built.append(rig)  # before anything starts: closed at teardown even if start-up fails
        engine.auth_changed(False)
        engine.bind(source)
        engine.start()
        auth.start()
        if auth_ok:
            await asyncio.wait_for(auth.wait_ok(), 2)
        return rig

    async def close_all(self) -> None:
        """Close every rig built, newest first; raise what failed once all were tried."""
        errors: list[Exception] = []
        for rig in reversed(self.built):
            try:
                await rig.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("closing the engine rigs", errors)


def rec(
    offset: int,
    *,
    topic: str = "orders",
    partition: int = 0,
    key: bytes | None = b"k",
    value: dict[str, Any] | None = None,
    timestamp_ms: int | None = None,
) -> Inbound:
    record = SourceRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=json.dumps(value or {}).encode(),
        headers=(("trace", b"abc"),),
        timestamp_ms=timestamp_ms,
    )
    return Inbound(TP(topic, partition), offset, record, record.size)


def sample(metrics: Metrics, metric: Any, **labels: str) -> float | None:
    """``metric``'s sample with ``labels``, read through the registry (``None`` when it was never set)."""
    family = metric.describe()[0]
    name = family.name + ("_total" if family.type == "counter" else "")
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (checked every loop turn, then every 5 ms); fail after ``timeout_s``.

    Tests wait for the condition they then assert, never for a fixed time (tests/test_no_sleep_waits.py).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    await asyncio.sleep(0)
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
