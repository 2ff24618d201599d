"""A "sick registry" switch in front of the real Schema Registry, for fault-injection tests only.

The real registry (Apicurio, see :mod:`connector.devkafka.apicurio`) cannot be told to answer 503 on demand,
so tests that need a registry outage talk to it through this small reverse proxy: every request is forwarded
unchanged (method, path, query, body, content type) and the registry's answer comes back unchanged, until
``fail_with(status)`` makes the proxy answer every request itself with that status (in the registry's error
shape). ``stop()`` closes the port, so clients then see a refused connection — the registry "gone".
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from aiohttp import web

_JSON = "application/vnd.schemaregistry.v1+json"


class RegistryProxy:
    """A running proxy: ``url`` (same path layout as the upstream URL), ``fail_with``, ``request_count``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_status: int | None = None
        self.request_count = 0
        self.forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="registry-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=15):
            raise RuntimeError("registry proxy did not start within 15s")
        if self._error is not None:
            raise RuntimeError(f"registry proxy failed to start: {self._error}")

    def fail_with(self, status: int | None) -> None:
        """Answer every request with HTTP ``status`` (``None``: forward to the registry again)."""
        self.fail_status = status

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._client = httpx.AsyncClient(timeout=30)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        # Keep the upstream's path prefix (e.g. /apis/ccompat/v7) so the proxy URL drops in for it.
        prefix = httpx.URL(self.upstream).path.rstrip("/")
        self.url = f"http://127.0.0.1:{port}{prefix}"
        self._upstream_root = self.upstream[: len(self.upstream) - len(prefix)] if prefix else self.upstream

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.request_count += 1
        status = self.fail_status
        if status is not None:
            body: dict[str, Any] = {
                "error_code": status * 100,
                "message": "injected failure (registry proxy)",
            }
            return web.json_response(body, status=status, content_type=_JSON)
        upstream = await self._client.request(
            request.method,
            self._upstream_root + request.rel_url.path_qs,
            content=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")},
        )
        self.forwarded += 1
        return web.Response(
            body=upstream.content,
            status=upstream.status_code,
            headers={"Content-Type": upstream.headers.get("content-type", _JSON)},
        )

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            await self._client.aclose()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> RegistryProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
