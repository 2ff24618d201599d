"""The real client against the real sandbox over loopback HTTP: every endpoint, every error class,
Retry-After, the rate limiter at Attentive's limits, the header-driven slow-down between replicas, and the
check-auth command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from connector.attentive.client import AttentiveClient
from connector.attentive.endpoints import Endpoint
from connector.attentive.jsonio import dumps, loads
from connector.attentive.models import build_body, external_event_id
from connector.attentive.ratelimit import RateLimiter
from connector.config import AttentiveSettings
from connector.errors import (
    ApiAuthError,
    ApiError,
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
)
from connector.observability.metrics import Metrics
from connector.sandbox.app import SANDBOX_KEY, Sandbox, SandboxSettings, make_app
from connector.types import Call
from tests.support import SandboxProcess, run_cli
from tests.unit.attentive_examples import DOC_SAMPLES

pytestmark = pytest.mark.integration

KEY = "integration-key-7f3e"
PHONE = "+14155550123"


class Running:
    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.url = url

    @property
    def sandbox(self) -> Sandbox:
        return self.runner.app[SANDBOX_KEY]  # type: ignore[index]


StartSandbox = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_sandbox() -> AsyncIterator[StartSandbox]:
    runners: list[web.AppRunner] = []

    async def _start(**kw: Any) -> Running:
        runner = web.AppRunner(make_app(SandboxSettings(api_key=KEY, **kw)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return Running(runner, f"http://127.0.0.1:{runner.addresses[0][1]}")

    yield _start
    for r in runners:
        await r.cleanup()


def client_for(url: str, key: str = KEY, limiter: RateLimiter | None = None, **kw: Any) -> AttentiveClient:
    settings = AttentiveSettings(base_url=url, api_key=key, **kw)  # type: ignore[arg-type]
    return AttentiveClient(settings, metrics=Metrics(CollectorRegistry()), limiter=limiter)


@pytest.mark.parametrize(("name", "endpoint", "sample"), DOC_SAMPLES, ids=[s[0] for s in DOC_SAMPLES])
async def test_every_endpoint_built_by_the_models_is_accepted(
    start_sandbox: StartSandbox, name: str, endpoint: Endpoint, sample: dict[str, Any]
) -> None:
    sb = await start_sandbox()
    data = json.loads(json.dumps(sample).replace("+13115552368", PHONE))
    if endpoint is Endpoint.CUSTOM_EVENT:
        data["externalEventId"] = external_event_id("loyalty", 3, 99, name)
    body = build_body(endpoint, data)
    async with client_for(sb.url) as client:
        resp = await client.send(Call(endpoint, body, "loyalty/3/99/1", name))
    accepted = (Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE, Endpoint.IDENTITY)
    assert resp.status == (202 if endpoint in accepted else 200)
    [entry] = sb.sandbox.journal.entries()
    assert entry["record_id"] == "loyalty/3/99/1" and entry["status"] == resp.status
    assert entry["body"] == loads(dumps(body))


async def test_prices_arrive_exact(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox()
    body = build_body(
        Endpoint.PURCHASE,
        {
            "items": [
                {"productId": "p", "productVariantId": "v", "price": [{"value": Decimal("1234567.895")}]},
                {"productId": "q", "productVariantId": "w", "price": [{"value": 0.1 + 0.2}]},
            ],
            "user": {"phone": PHONE},
        },
    )
    async with client_for(sb.url) as client:
        await client.send(Call(Endpoint.PURCHASE, body, "orders/0/1", "r"))
    prices = [i["price"][0]["value"] for i in sb.sandbox.journal.entries()[0]["body"]["items"]]
    assert prices == [Decimal("1234567.895"), Decimal("0.30000000000000004")]


async def test_subscribe_twice_is_success_both_times(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox()
    body = build_body(Endpoint.SUBSCRIBE, {"user": {"phone": PHONE}, "signUpSourceId": "42"})
    async with client_for(sb.url) as client:
        first = await client.send(Call(Endpoint.SUBSCRIBE, body, "signups/0/1", "r"))
        second = await client.send(Call(Endpoint.SUBSCRIBE, body, "signups/0/1", "r"))
        await client.limiter.acquire(Endpoint.SUBSCRIBE)
        await sb_faults(sb, {"error_rates": {"409": 1.0}})
        third = await client.send(Call(Endpoint.SUBSCRIBE, body, "signups/0/1", "r"))
    assert (first.already_done, second.already_done, third.already_done) == (False, True, True)
    assert third.status == 409


async def sb_faults(sb: Running, doc: dict[str, Any]) -> None:
    from connector.sandbox.faults import Faults

    sb.sandbox.faults = Faults.parse(doc, now=time.time())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ApiPermanentError),
        (404, ApiPermanentError),
        (413, ApiPermanentError),
        (422, ApiPermanentError),
        (401, ApiAuthError),
        (403, ApiAuthError),
        (429, RateLimitedError),
        (500, ApiTransientError),
        (502, ApiTransientError),
        (503, ApiTransientError),
    ],
)
async def test_every_injected_status_maps_to_its_error_class(
    start_sandbox: StartSandbox, status: int, error: type[ApiError]
) -> None:
    sb = await start_sandbox(faults={"error_rates": {str(status): 1.0}})
    body = build_body(Endpoint.CUSTOM_EVENT, {"type": "Signed Up", "user": {"phone": PHONE}})
    async with client_for(sb.url) as client:
        with pytest.raises(error) as info:
            await client.send(Call(Endpoint.CUSTOM_EVENT, body, "t/0/1", "r"))
    assert type(info.value) is error and info.value.status == status
    assert f"injected fault: HTTP {status}" in info.value.body


async def test_real_validation_error_is_permanent_with_the_sandbox_message(
    start_sandbox: StartSandbox,
) -> None:
    sb = await start_sandbox()
    async with client_for(sb.url) as client:
        with pytest.raises(ApiPermanentError) as info:
            await client.send(
                Call(
                    Endpoint.CUSTOM_ATTRIBUTES,
                    {"properties": {"cities": ["a", "b"]}, "user": {"phone": PHONE}},
                    "t/0/2",
                    "r",
                )
            )
    assert info.value.status == 400 and "$.properties.cities" in info.value.body


async def test_wrong_key_and_unauthorized_window_are_auth_errors(start_sandbox: StartSandbox) -> None:
    sb = await start_sandbox()
    async with client_for(sb.url, key="not-the-key") as client:
        with pytest.raises(ApiAuthError) as info:
            await client.me()
        assert info.value.status == 401
    await sb_faults(sb, {"unauthorized_for_s": 60})
    async with client_for(sb.url) as client:
        with pytest.raises(ApiAuthError):
            await client.me()
        with pytest.raises(ApiAuthError):
            await client.send(
                Call(Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"phone": PHONE}}, "t/0/3", "r")
            )
        await sb_faults(sb, {})
        me = await client.me()
    assert (me.companyName, me.applicationName) == ("Sandbox Retail", "attentive-connector sandbox")


@pytest.mark.serial  # real-time bounds
async def test_network_errors_connection_refused_and_timeout(start_sandbox: StartSandbox) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    async with client_for(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(NetworkError, match="cannot reach Attentive"):
            await client.send(Call(Endpoint.CUSTOM_EVENT, {"type": "x"}, "t/0/4", "r"))
    sb = await start_sandbox(faults={"latency_ms": 1500})
    async with client_for(sb.url, timeout_s=0.3) as client:
        t0 = time.monotonic()
        with pytest.raises(NetworkError, match="timed out") as info:
            await client.send(
                Call(Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"phone": PHONE}}, "t/0/5", "r")
            )
        assert time.monotonic() - t0 < 1.4  # the timeout, not the server, ended the attempt
    assert info.value.retriable and info.value.reason == "timeout"


@pytest.mark.serial  # real-time bounds
async def test_natural_429_carries_retry_after_and_holds_the_endpoint(start_sandbox: StartSandbox) -> None:
    """Another replica (here: raw requests) used up this second's budget; ours gets 429 + Retry-After."""
    sb = await start_sandbox(rate_limits={Endpoint.UNSUBSCRIBE: 2})
    body = {"user": {"phone": PHONE}}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with client_for(sb.url) as ours, httpx.AsyncClient(base_url=sb.url, headers=headers) as other:
        await asyncio.sleep(
            1.02 - time.time() % 1
        )  # start of a wall-clock second: all of it fits in one window
        statuses = [(await other.post(Endpoint.UNSUBSCRIBE.path, json=body)).status_code for _ in range(2)]
        assert statuses == [202, 202]
        with pytest.raises(RateLimitedError) as info:
            await ours.send(Call(Endpoint.UNSUBSCRIBE, body, "t/0/6", "r"))
        assert info.value.retry_after == 1.0
        assert (
            0.9 < ours.limiter[Endpoint.UNSUBSCRIBE].delay() <= 1.01
        )  # held for Retry-After (+ window margin)
        t0 = time.monotonic()
        resp = await ours.send(Call(Endpoint.UNSUBSCRIBE, body, "t/0/6", "r"))  # waits out the hold, then ok
        assert resp.status == 202 and time.monotonic() - t0 >= 0.9


async def drive(
    clients: list[AttentiveClient], endpoint: Endpoint, seconds: float, workers: int = 32
) -> dict[str, int]:
    """Each client sends as fast as its limiter lets it, with ``workers`` in flight, for ``seconds``."""
    counts = {"ok": 0, "429": 0}
    body = build_body(
        endpoint,
        {"type": "Viewed", "user": {"phone": PHONE}}
        if endpoint is Endpoint.CUSTOM_EVENT
        else {"user": {"phone": PHONE}, "signUpSourceId": "1"},
    )
    deadline = time.monotonic() + seconds

    async def worker(client: AttentiveClient, n: int) -> None:
        while time.monotonic() < deadline:
            try:
                await client.send(Call(endpoint, body, f"t/{n}/0", "r"))
                counts["ok"] += 1
            except RateLimitedError:
                counts["429"] += 1

    await asyncio.gather(*(worker(c, n) for c in clients for n in range(workers)))
    return counts


# The throughput tests use a sandbox subprocess (conftest's ``sandbox_factory``, Attentive's default limits), so
# the server's CPU is not on the clients' event loop — as with the real Attentive.


@pytest.mark.serial  # a 429 share and a rate against the real clock
@pytest.mark.parametrize(
    ("endpoint", "limit", "seconds"), [(Endpoint.CUSTOM_EVENT, 150, 4.0), (Endpoint.SUBSCRIBE, 10, 4.0)]
)
async def test_full_throughput_at_attentive_limits_without_429s(
    sandbox_factory: Callable[..., SandboxProcess], endpoint: Endpoint, limit: int, seconds: float
) -> None:
    sb = sandbox_factory()
    async with client_for(sb.url, key=sb.api_key) as client:
        counts = await drive([client], endpoint, seconds)
    total = counts["ok"] + counts["429"]
    assert counts["429"] <= 0.005 * total, counts
    # Not a speed test (the benchmark measures >= 95% of each limit; the unit simulation asserts it in virtual
    # time): this floor only catches a limiter that starves the endpoint, with room for a loaded CI machine.
    assert counts["ok"] >= 0.6 * limit * seconds, counts
    assert sb.stats()["by_path"][endpoint.path].get("429", 0) == counts["429"]


class DeafLimiter(RateLimiter):
    """Paces at the configured rate but ignores the server's headers and Retry-After (the control)."""

    def observe_headers(self, endpoint: Endpoint, headers: Any, *, sent_at: float | None = None) -> None:
        pass

    def hold(self, endpoint: Endpoint, seconds: float, *, sent_at: float | None = None) -> None:
        pass


@pytest.mark.serial  # real-time bounds
async def test_replicas_sharing_a_key_slow_down_before_429s(
    sandbox_factory: Callable[..., SandboxProcess],
) -> None:
    """Two replicas, each allowed Attentive's full 150/s, share one key: the headers make them split it."""
    sb = sandbox_factory()
    async with client_for(sb.url, key=sb.api_key) as a, client_for(sb.url, key=sb.api_key) as b:
        counts = await drive([a, b], Endpoint.CUSTOM_EVENT, 5.0, workers=16)
    total = counts["ok"] + counts["429"]
    assert counts["429"] <= 0.02 * total, counts
    # Starvation guard only (the tight bound is in the unit simulation and the benchmark); CPU contention on a
    # shared 2-core machine has cost up to 45% here.
    assert counts["ok"] >= 0.4 * 150 * 5.0, counts

    sb2 = sandbox_factory()
    deaf = [client_for(sb2.url, key=sb2.api_key, limiter=DeafLimiter(AttentiveSettings())) for _ in range(2)]
    try:
        control = await drive(deaf, Endpoint.CUSTOM_EVENT, 2.0, workers=16)
    finally:
        for c in deaf:
            await c.aclose()
    assert control["429"] >= 0.2 * (control["ok"] + control["429"]), control


def test_check_auth_command_against_the_sandbox_process() -> None:
    sb = SandboxProcess("--no-rate-limit", api_key=KEY)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTENTIVE_")}
        ok = run_cli(["check-auth", "--base-url", sb.url], env={**env, "ATTENTIVE_API_KEY": KEY})
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "ok: company=Sandbox Retail application=attentive-connector sandbox"
        bad = run_cli(["check-auth", "--base-url", sb.url], env={**env, "ATTENTIVE_API_KEY": "wrong-key-123"})
        assert (
            bad.returncode == 1
            and "Attentive rejected the API key from ATTENTIVE_API_KEY (401)" in bad.stderr
        )
        assert "wrong-key-123" not in bad.stderr + bad.stdout
        sb.set_faults({"unauthorized_for_s": 30})
        assert (
            run_cli(["check-auth", "--base-url", sb.url], env={**env, "ATTENTIVE_API_KEY": KEY}).returncode
            == 1
        )
        sb.set_faults({})
        assert [e["path"] for e in sb.journal()] == ["/v1/me"] * 3
    finally:
        sb.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = run_cli(
        ["check-auth", "--base-url", f"http://127.0.0.1:{port}"], env={**env, "ATTENTIVE_API_KEY": KEY}
    )
    assert down.returncode == 1 and f"cannot reach Attentive at http://127.0.0.1:{port}" in down.stderr


def test_shared_sandbox_fixture_journals_client_requests(sandbox: SandboxProcess) -> None:
    async def go() -> None:
        async with client_for(sandbox.url, key=sandbox.api_key) as client:
            body = build_body(Endpoint.CUSTOM_EVENT, {"type": "Fixture Check", "user": {"email": "a@b.co"}})
            await client.send(Call(Endpoint.CUSTOM_EVENT, body, "fixture/0/1", "r"))

    asyncio.run(go())
    [entry] = sandbox.journal()
    assert entry["record_id"] == "fixture/0/1" and entry["body"]["type"] == "Fixture Check"
    assert sandbox.stats()["by_path"] == {Endpoint.CUSTOM_EVENT.path: {"200": 1}}
