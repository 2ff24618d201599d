"""A small, in-memory stand-in for Confluent Schema Registry.

Superseded by the real registry, :mod:`connector.devkafka.apicurio` (Apicurio Registry's Confluent-compatible
API), for the integration tests, the demo and the bench; outage tests put a proxy in front of the real one.
Kept while its remaining users (its own unit tests, the local dev stack) move over.

It serves the subset of the REST API that confluent-kafka's ``SchemaRegistryClient`` uses to register and look up
Avro schemas, with the same paths, response shapes and error codes:

========================================  ===========================================================
``POST /subjects/{s}/versions``           register (idempotent per subject) → ``{"id": n}``
``POST /subjects/{s}``                    look a schema up in a subject → ``{subject, id, version, schema}``
``GET /schemas/ids/{id}``                 → ``{"schema": "..."}`` (40403 when unknown)
``GET /schemas/ids/{id}/subjects``        / ``.../versions``
``GET /schemas/types``                    → ``["AVRO"]``
``GET /subjects``, ``GET /subjects/{s}/versions``, ``GET /subjects/{s}/versions/{v|latest}``
``DELETE /subjects/{s}``                  → the deleted versions
``GET|PUT /config``, ``GET|PUT /config/{s}``   compatibility level (stored, not enforced)
========================================  ===========================================================

Schema ids are global and a schema registered under two subjects keeps one id, as in the real registry. Schemas
are checked to be valid Avro (``42201`` otherwise); compatibility rules are *not* enforced.

``start_schema_registry()`` runs it on a loopback port in a background thread and returns a handle with ``.url``,
``.stop()`` and ``.fail_with(status)`` (answer every request with that HTTP status — for testing how clients
cope with a sick registry); it is also a context manager.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import fastavro
from aiohttp import web
from fastavro.schema import SchemaParseException, UnknownType

_JSON = "application/vnd.schemaregistry.v1+json"


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status, content_type=_JSON)


def _ok(body: Any) -> web.Response:
    return web.json_response(body, content_type=_JSON)


@dataclass
class _Stored:
    id: int
    text: str
    schema_type: str
    references: list[Any]


@dataclass
class RegistryState:
    """Everything the registry knows. Thread-safe through ``lock`` (handlers run on the server thread)."""

    schemas: dict[int, _Stored] = field(default_factory=dict)
    by_key: dict[str, int] = field(default_factory=dict)  # canonical text -> id
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids by version (1-based)
    compatibility: dict[str, str] = field(default_factory=dict)  # "" = global
    fail_status: int | None = None
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def build_app(state: RegistryState) -> web.Application:
    """The aiohttp application serving ``state``."""
    routes = web.RouteTableDef()

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        state.requests += 1
        if state.fail_status is not None:
            return _error(state.fail_status, state.fail_status * 100, "injected failure")
        resp: web.StreamResponse = await handler(request)
        return resp

    async def body_of(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(422, 42201, "request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            return _error(422, 42201, "request body needs a 'schema' string")
        return body

    def parse(body: dict[str, Any]) -> tuple[str, str] | web.Response:
        schema_type = body.get("schemaType") or "AVRO"
        text = body["schema"]
        if schema_type != "AVRO":
            return _error(422, 42201, f"this registry stand-in only stores AVRO schemas, not {schema_type}")
        try:
            fastavro.parse_schema(json.loads(text))
            return text, _canonical(text)
        except (ValueError, TypeError, KeyError, SchemaParseException, UnknownType) as exc:
            return _error(422, 42201, f"Invalid schema: {exc}")

    async def schema_of(request: web.Request) -> tuple[dict[str, Any], str, str] | web.Response:
        """The request body, its schema text and canonical key — or the error response to send."""
        body = await body_of(request)
        if isinstance(body, web.Response):
            return body
        parsed = parse(body)
        if isinstance(parsed, web.Response):
            return parsed
        return body, *parsed

    @routes.post("/subjects/{subject}/versions")
    async def register(request: web.Request) -> web.Response:
        got = await schema_of(request)
        if isinstance(got, web.Response):
            return got
        body, text, key = got
        subject = request.match_info["subject"]
        with state.lock:
            schema_id = state.by_key.get(key)
            if schema_id is None:
                schema_id = len(state.schemas) + 1
                state.schemas[schema_id] = _Stored(schema_id, text, "AVRO", body.get("references") or [])
                state.by_key[key] = schema_id
            versions = state.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
        return _ok({"id": schema_id})

    @routes.post("/subjects/{subject}")
    async def lookup(request: web.Request) -> web.Response:
        got = await schema_of(request)
        if isinstance(got, web.Response):
            return got
        _body, _text, key = got
        subject = request.match_info["subject"]
        with state.lock:
            versions = state.subjects.get(subject)
            if versions is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            schema_id = state.by_key.get(key)
            if schema_id is None or schema_id not in versions:
                return _error(404, 40403, "Schema not found")
            stored = state.schemas[schema_id]
            return _ok(
                {
                    "subject": subject,
                    "id": schema_id,
                    "version": versions.index(schema_id) + 1,
                    "schema": stored.text,
                }
            )

    @routes.get("/schemas/types")
    async def types(_request: web.Request) -> web.Response:
        return _ok(["AVRO"])

    def stored_or_404(raw_id: str) -> _Stored | web.Response:
        try:
            schema_id = int(raw_id)
        except ValueError:
            return _error(404, 40403, f"Schema {raw_id} not found")
        stored = state.schemas.get(schema_id)
        if stored is None:
            return _error(404, 40403, f"Schema {schema_id} not found")
        return stored

    @routes.get("/schemas/ids/{id}")
    async def by_id(request: web.Request) -> web.Response:
        with state.lock:
            stored = stored_or_404(request.match_info["id"])
        if isinstance(stored, web.Response):
            return stored
        # AVRO is the default schemaType and is left out, like the real registry does.
        return _ok({"schema": stored.text})

    @routes.get("/schemas/ids/{id}/subjects")
    async def id_subjects(request: web.Request) -> web.Response:
        with state.lock:
            stored = stored_or_404(request.match_info["id"])
            if isinstance(stored, web.Response):
                return stored
            return _ok(sorted(s for s, ids in state.subjects.items() if stored.id in ids))

    @routes.get("/schemas/ids/{id}/versions")
    async def id_versions(request: web.Request) -> web.Response:
        with state.lock:
            stored = stored_or_404(request.match_info["id"])
            if isinstance(stored, web.Response):
                return stored
            return _ok(
                [
                    {"subject": s, "version": ids.index(stored.id) + 1}
                    for s, ids in sorted(state.subjects.items())
                    if stored.id in ids
                ]
            )

    @routes.get("/subjects")
    async def subjects(_request: web.Request) -> web.Response:
        with state.lock:
            return _ok(sorted(state.subjects))

    @routes.get("/subjects/{subject}/versions")
    async def versions(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        with state.lock:
            ids = state.subjects.get(subject)
            if ids is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            return _ok(list(range(1, len(ids) + 1)))

    @routes.get("/subjects/{subject}/versions/{version}")
    async def version(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        raw = request.match_info["version"]
        with state.lock:
            ids = state.subjects.get(subject)
            if ids is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            try:
                number = len(ids) if raw in ("latest", "-1") else int(raw)
            except ValueError:
                return _error(422, 42202, f"Invalid version {raw}")
            if not 1 <= number <= len(ids):
                return _error(404, 40402, f"Version {raw} not found.")
            stored = state.schemas[ids[number - 1]]
            return _ok({"subject": subject, "version": number, "id": stored.id, "schema": stored.text})

    @routes.delete("/subjects/{subject}")
    async def delete_subject(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        with state.lock:
            ids = state.subjects.pop(subject, None)
        if ids is None:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        return _ok(list(range(1, len(ids) + 1)))

    @routes.get("/config")
    async def get_config(_request: web.Request) -> web.Response:
        return _ok({"compatibilityLevel": state.compatibility.get("", "BACKWARD")})

    @routes.put("/config")
    async def put_config(request: web.Request) -> web.Response:
        body = await request.json()
        level = str(body.get("compatibility", "BACKWARD")).upper()
        state.compatibility[""] = level
        return _ok({"compatibility": level})

    @routes.get("/config/{subject}")
    async def get_subject_config(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        level = state.compatibility.get(subject)
        if level is None:
            return _error(
                404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
            )
        return _ok({"compatibilityLevel": level})

    @routes.put("/config/{subject}")
    async def put_subject_config(request: web.Request) -> web.Response:
        body = await request.json()
        level = str(body.get("compatibility", "BACKWARD")).upper()
        state.compatibility[request.match_info["subject"]] = level
        return _ok({"compatibility": level})

    app = web.Application(middlewares=[faults])
    app.add_routes(routes)
    return app


class SchemaRegistryHandle:
    """A running stand-in: ``url`` to give clients, ``stop()`` when done (or use ``with``)."""

    def __init__(
        self,
        url: str,
        state: RegistryState,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        runner: web.AppRunner,
    ) -> None:
        self.url = url
        self.state = state
        self._loop = loop
        self._thread = thread
        self._runner = runner

    def fail_with(self, status: int | None) -> None:
        """Answer every request with HTTP ``status`` (``None`` to heal)."""
        self.state.fail_status = status

    @property
    def request_count(self) -> int:
        return self.state.requests

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> SchemaRegistryHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_schema_registry(host: str = "127.0.0.1", port: int = 0) -> SchemaRegistryHandle:
    """Start the stand-in on ``host:port`` (``0`` = a free port) in a daemon thread; returns once it listens."""
    state = RegistryState()
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def setup() -> None:
        runner = web.AppRunner(build_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        started["runner"] = runner
        started["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(setup())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, which raises it
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="schema-registry", daemon=True)
    thread.start()
    if not ready.wait(timeout=15):
        raise RuntimeError("schema registry stand-in did not start within 15s")
    if "error" in started:
        raise RuntimeError(f"schema registry stand-in failed to start: {started['error']}")
    url = f"http://{host}:{started['port']}"
    return SchemaRegistryHandle(url, state, loop, thread, started["runner"])
