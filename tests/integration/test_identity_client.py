"""The client against the sandbox over real HTTP for identity and privacy.delete: answers, errors, labels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from connector.attentive.client import AttentiveClient
from connector.attentive.endpoints import Endpoint
from connector.attentive.models import build_body
from connector.attentive.spec import default_validator
from connector.config import AttentiveSettings
from connector.errors import ApiPermanentError
from connector.observability.metrics import Metrics
from connector.sandbox.app import SANDBOX_KEY, Sandbox, SandboxSettings, make_app
from connector.types import Call

pytestmark = pytest.mark.integration

KEY = "identity-client-key"


@pytest.fixture
async def sandbox_url() -> AsyncIterator[Callable[[], Awaitable[tuple[str, Sandbox]]]]:
    runners: list[web.AppRunner] = []

    async def _start() -> tuple[str, Sandbox]:
        app = make_app(SandboxSettings(api_key=KEY))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}", app[SANDBOX_KEY]

    yield _start
    for r in runners:
        await r.cleanup()


async def test_identity_and_privacy_calls_over_http(
    sandbox_url: Callable[[], Awaitable[tuple[str, Sandbox]]],
) -> None:
    url, sandbox = await sandbox_url()
    registry = CollectorRegistry()
    settings = AttentiveSettings(base_url=url, api_key=KEY)  # type: ignore[arg-type]
    async with AttentiveClient(settings, metrics=Metrics(registry)) as client:
        assert client.limiter[Endpoint.IDENTITY].rate == 10
        assert client.limiter[Endpoint.PRIVACY_DELETE].rate == 5
        link = build_body(Endpoint.IDENTITY, {"email": "ava@example.com", "clientUserId": "cust-1"})
        resp = await client.send(Call(Endpoint.IDENTITY, link, "signups/0/1/0", "link-customer-id"))
        assert resp.status == 202 and resp.body is None
        delete = build_body(Endpoint.PRIVACY_DELETE, {"clientUserId": "cust-1", "requestMsg": "DSR-1"})
        resp = await client.send(Call(Endpoint.PRIVACY_DELETE, delete, "privacy/0/4", "privacy-delete"))
        assert (
            resp.status == 200
            and default_validator().validate_component("PrivacyRequestDto", resp.body) == []
        )
        assert sandbox.privacy.get(resp.body["id"]) is not None
        # A body build_body would never produce: Attentive's (the sandbox's) 400 is permanent, body kept.
        with pytest.raises(ApiPermanentError) as info:
            await client.send(
                Call(Endpoint.PRIVACY_DELETE, {"requestMsg": "x"}, "privacy/0/5", "privacy-delete")
            )
        assert info.value.status == 400 and "needs subjectPhone or subjectEmail" in (info.value.body or "")
    assert sandbox.identities.is_linked("clientUserId", "cust-1")
    ok = {
        e: registry.get_sample_value(
            "attentive_connector_api_requests_total", {"endpoint": e, "status_class": "2xx"}
        )
        for e in ("identity", "privacy.delete")
    }
    assert ok == {"identity": 1.0, "privacy.delete": 1.0}
    bad = registry.get_sample_value(
        "attentive_connector_api_requests_total", {"endpoint": "privacy.delete", "status_class": "4xx"}
    )
    assert bad == 1.0
