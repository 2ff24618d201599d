"""HealthState logic and the HealthServer over real loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from connector.observability.health import HealthServer, HealthState
from connector.observability.metrics import Metrics


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ready_state(clock: FakeClock | None = None, stale: float = 30.0) -> HealthState:
    s = HealthState(poll_stale_after_s=stale, clock=clock or FakeClock())
    s.config_loaded = True
    s.broker_reachable = True
    s.assignment_state = "assigned"
    s.auth_ok = True
    return s


# -- HealthState --------------------------------------------------------------------------------


def test_new_state_is_not_ready_and_names_every_missing_condition() -> None:
    ok, reasons = HealthState().ready()
    assert not ok
    assert reasons == [
        "config not loaded",
        "Kafka broker not reachable",
        "consumer not subscribed yet",
        "Attentive API key not accepted (auth check failed or pending)",
    ]


def test_ready_when_every_condition_holds() -> None:
    assert ready_state().ready() == (True, [])


def test_awaiting_assignment_counts_as_ready() -> None:
    # More replicas than partitions: an idle member is healthy, not a reason to be taken out of service.
    s = ready_state()
    s.assignment_state = "waiting"
    assert s.ready() == (True, [])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("config_loaded", False, "config not loaded"),
        ("broker_reachable", False, "Kafka broker not reachable"),
        ("assignment_state", "starting", "consumer not subscribed yet"),
        ("auth_ok", False, "Attentive API key not accepted (auth check failed or pending)"),
        ("shutting_down", True, "shutting down"),
    ],
)
def test_each_condition_alone_makes_it_unready(field: str, value: object, reason: str) -> None:
    s = ready_state()
    setattr(s, field, value)
    assert s.ready() == (False, [reason])


def test_unknown_assignment_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="assignment_state"):
        HealthState().assignment_state = "rebalancing"  # type: ignore[assignment]


@pytest.mark.parametrize("bad", [0, -1.0])
def test_stale_window_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        HealthState(poll_stale_after_s=bad)
    s = HealthState()
    with pytest.raises(ValueError, match="positive"):
        s.poll_stale_after_s = bad


def test_alive_follows_last_poll_age() -> None:
    clock = FakeClock()
    s = HealthState(poll_stale_after_s=10, clock=clock)
    # Before the first poll, start-up time counts as the last poll (start-up grace).
    clock.t += 9
    assert s.alive()
    clock.t += 2
    assert not s.alive()
    s.mark_poll()
    assert s.last_poll == clock.t
    assert s.alive()
    assert s.poll_age() == 0
    clock.t += 10.5
    assert not s.alive()
    assert s.poll_age() == pytest.approx(10.5)


def test_liveness_ignores_broker_and_auth() -> None:
    clock = FakeClock()
    s = HealthState(poll_stale_after_s=5, clock=clock)
    s.broker_reachable = False
    s.auth_ok = False
    s.mark_poll()
    assert s.alive()


def test_listener_sees_every_readiness_change_and_can_be_removed() -> None:
    s = ready_state()
    seen: list[bool] = []
    remove = s.add_listener(seen.append)
    assert seen == [True]  # called immediately with the current value
    s.auth_ok = False
    s.auth_ok = False  # no change, no call
    s.auth_ok = True
    assert seen == [True, False, True]
    remove()
    s.auth_ok = False
    assert seen == [True, False, True]


def test_state_is_safe_to_set_from_many_threads() -> None:
    s = ready_state()
    errors: list[BaseException] = []

    def flip(n: int) -> None:
        try:
            for i in range(2000):
                s.broker_reachable = bool((i + n) % 2)
                s.mark_poll()
                s.ready()
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s.broker_reachable = True
    assert s.ready() == (True, [])


# -- HealthServer over HTTP -----------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[HealthServer, HealthState, Metrics, FakeClock]]:
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    state = HealthState(poll_stale_after_s=30, clock=clock)
    server = HealthServer(metrics, state, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server, state, metrics, clock
    finally:
        await server.stop()


async def _get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def test_port_zero_binds_an_ephemeral_port(served: tuple[HealthServer, ...]) -> None:
    server = served[0]
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


async def test_healthz_alive_then_stale(served: tuple[HealthServer, HealthState, Metrics, FakeClock]) -> None:
    server, state, _, clock = served
    state.mark_poll()
    status, body, _ = await _get(server.url + "/healthz")
    assert status == 200
    assert '"status": "alive"' in body
    clock.t += 31
    status, body, _ = await _get(server.url + "/healthz")
    assert status == 503
    assert '"status": "stale"' in body
    assert '"last_poll_age_s": 31.0' in body


async def test_healthz_stays_200_during_a_broker_outage(
    served: tuple[HealthServer, HealthState, Metrics, FakeClock],
) -> None:
    server, state, _, _ = served
    state.broker_reachable = False
    state.mark_poll()
    status, _, _ = await _get(server.url + "/healthz")
    assert status == 200


async def test_readyz_lists_reasons_and_flips(
    served: tuple[HealthServer, HealthState, Metrics, FakeClock],
) -> None:
    server, state, metrics, _ = served
    status, body, headers = await _get(server.url + "/readyz")
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["ready"] is False
    assert "config not loaded" in doc["reasons"]
    assert doc["checks"]["assignment_state"] == "starting"
    assert metrics.registry.get_sample_value("attentive_connector_ready") == 0

    state.config_loaded = True
    state.broker_reachable = True
    state.assignment_state = "waiting"
    state.auth_ok = True
    assert metrics.registry.get_sample_value("attentive_connector_ready") == 1  # listener, no request needed
    status, body, _ = await _get(server.url + "/readyz")
    assert status == 200
    assert json.loads(body) == {
        "ready": True,
        "reasons": [],
        "checks": {
            "config_loaded": True,
            "broker_reachable": True,
            "broker_error": None,
            "assignment_state": "waiting",
            "auth_ok": True,
            "shutting_down": False,
        },
    }

    state.auth_ok = False  # a 401 window
    status, body, _ = await _get(server.url + "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["Attentive API key not accepted (auth check failed or pending)"]
    assert metrics.registry.get_sample_value("attentive_connector_ready") == 0


async def test_metrics_serves_the_registry_as_prometheus_text(
    served: tuple[HealthServer, HealthState, Metrics, FakeClock],
) -> None:
    server, _, metrics, _ = served
    metrics.records_consumed.labels(topic="orders").inc(3)
    status, body, headers = await _get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert 'attentive_connector_records_consumed_total{topic="orders"} 3.0' in body
    assert "attentive_connector_build_info{version=" in body
    assert "attentive_connector_ready 0.0" in body


async def test_unknown_path_is_404(served: tuple[HealthServer, ...]) -> None:
    status, _, _ = await _get(served[0].url + "/nope")
    assert status == 404


async def test_stop_releases_the_port_and_is_idempotent() -> None:
    server = HealthServer(Metrics(CollectorRegistry()), HealthState(), host="127.0.0.1", port=0)
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(f"http://127.0.0.1:{port}/healthz")
    # A stopped server no longer drives the gauge.
    again = HealthServer(Metrics(CollectorRegistry()), HealthState(), host="127.0.0.1", port=port)
    await again.start()
    assert again.port == port
    await again.stop()


async def test_port_in_use_raises_oserror(served: tuple[HealthServer, ...]) -> None:
    clash = HealthServer(Metrics(CollectorRegistry()), HealthState(), host="127.0.0.1", port=served[0].port)
    with pytest.raises(OSError):
        await clash.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = clash.port


async def test_double_start_is_refused(served: tuple[HealthServer, ...]) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await served[0].start()
