"""Writer schemas from a Confluent Schema Registry, fetched once per schema id and kept.

Wraps confluent-kafka's ``SchemaRegistryClient`` (any object with its ``get_schema(id)`` and
``register_schema(subject, schema)`` methods works, including the ``mock://`` client tests use) and turns its
failures into the connector's error tree:

* the id is not in the registry (404), or it names a non-Avro or unparsable schema → :class:`DecodeError`
  ``unknown_schema`` (permanent: this record will never decode);
* the registry cannot be reached, times out, answers 5xx/429, or refuses our credentials →
  :class:`RegistryUnavailableError` (transient: keep the record and retry later).

Unknown ids are remembered for ``negative_ttl_s`` so a burst of records with a bad id costs one request, not
one per record, while a schema registered a moment later is still found soon after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import SchemaParseException, UnknownType

from connector.avro.schema import parse_for_reading
from connector.config import SchemaRegistrySettings
from connector.errors import ConfigError, DecodeError, Reason, RegistryUnavailableError


class RegistryClient(Protocol):
    """The part of confluent-kafka's ``SchemaRegistryClient`` the connector uses."""

    def get_schema(self, schema_id: int) -> Any: ...

    def register_schema(self, subject_name: str, schema: Any) -> int: ...


# Client settings confluent-kafka wants as numbers (YAML or environment may hand them over as text).
_NUMERIC_SETTINGS = frozenset(
    {
        "max.retries",
        "retries.wait.ms",
        "retries.max.wait.ms",
        "cache.capacity",
        "cache.latest.ttl.sec",
        "timeout",
    }
)


# The connector retries a record whose writer schema cannot be fetched (RegistryUnavailableError holds the
# partition and backs off), so the client's own retry loop — which sleeps on the caller's thread — stays short.
_CLIENT_DEFAULTS: dict[str, Any] = {"max.retries": 1, "retries.wait.ms": 200, "retries.max.wait.ms": 1000}


def make_registry_client(settings: SchemaRegistrySettings) -> RegistryClient:
    """A ``SchemaRegistryClient`` (or the in-memory mock for ``mock://`` URLs) from the config section.

    ``kafka.schema_registry.client`` settings pass through (``basic.auth.user.info``, ``ssl.*``, ``timeout``…);
    unless set there, the client retries once after 200 ms (see ``_CLIENT_DEFAULTS``).
    """
    conf: dict[str, Any] = {"url": settings.url, **_CLIENT_DEFAULTS}
    for key, value in settings.client.items():
        if key in _NUMERIC_SETTINGS and isinstance(value, str):
            try:
                conf[key] = float(value) if "." in value else int(value)
            except ValueError:
                raise ConfigError(f"kafka.schema_registry.client.{key}: must be a number") from None
        else:
            conf[key] = value
    try:
        client: RegistryClient = SchemaRegistryClient.new_client(conf)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"kafka.schema_registry: {exc}") from None
    return client


def _transport_errors() -> tuple[type[BaseException], ...]:
    # confluent-kafka's client uses httpx2 when installed (its "maintained successor"), else httpx.
    errors: list[type[BaseException]] = [OSError, httpx.HTTPError]
    try:
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:  # pragma: no cover - depends on the installed confluent-kafka extras
        pass
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()
"""What the registry client raises when the registry cannot be reached (connection refused, timeout, TLS)."""

# Registry answers that mean "try again later" rather than "this id does not exist".
_TRANSIENT_STATUS = frozenset({408, 429, 401, 403})


class WriterSchemas:
    """Parsed writer schemas by registry id (shared by all topics: ids are global in a registry)."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        negative_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._parsed: dict[int, Any] = {}
        self._raw: dict[int, str] = {}
        self._unknown: dict[int, tuple[float, DecodeError]] = {}
        self._negative_ttl_s = negative_ttl_s
        self._clock = clock
        self._lock = threading.Lock()

    def cached(self, schema_id: int) -> bool:
        """True when :meth:`get` will not need the network for ``schema_id``."""
        if schema_id in self._parsed:
            return True
        hit = self._unknown.get(schema_id)
        return hit is not None and self._clock() - hit[0] < self._negative_ttl_s

    def schema_text(self, schema_id: int) -> str | None:
        return self._raw.get(schema_id)

    def get(self, schema_id: int) -> Any:
        """The parsed writer schema for ``schema_id`` (fetched on first use)."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        with self._lock:
            parsed = self._parsed.get(schema_id)
            if parsed is not None:
                return parsed
            hit = self._unknown.get(schema_id)
            if hit is not None and self._clock() - hit[0] < self._negative_ttl_s:
                raise hit[1]
            try:
                parsed = self._fetch(schema_id)
            except DecodeError as exc:
                self._unknown[schema_id] = (self._clock(), exc)
                raise
            self._unknown.pop(schema_id, None)
            self._parsed[schema_id] = parsed
            return parsed

    def _fetch(self, schema_id: int) -> Any:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            status = exc.http_status_code
            if status == 404:
                raise DecodeError(
                    f"schema id {schema_id} is not in the schema registry", reason=Reason.UNKNOWN_SCHEMA
                ) from None
            if status >= 500 or status in _TRANSIENT_STATUS or status < 0:
                raise RegistryUnavailableError(
                    f"schema registry answered HTTP {status} for schema id {schema_id}"
                ) from None
            raise DecodeError(
                f"schema registry refused schema id {schema_id} (HTTP {status})", reason=Reason.UNKNOWN_SCHEMA
            ) from None
        except TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(
                f"schema registry unreachable while fetching schema id {schema_id}: {type(exc).__name__}"
            ) from None
        schema_type = getattr(schema, "schema_type", "AVRO") or "AVRO"
        text = getattr(schema, "schema_str", None)
        if schema_type != "AVRO" or not isinstance(text, str):
            raise DecodeError(
                f"schema id {schema_id} is a {schema_type} schema, not Avro", reason=Reason.UNKNOWN_SCHEMA
            )
        try:
            parsed = parse_for_reading(json.loads(text))
        except (ValueError, TypeError, KeyError, SchemaParseException, UnknownType) as exc:
            raise DecodeError(
                f"schema id {schema_id} is not a valid Avro schema: {exc}", reason=Reason.UNKNOWN_SCHEMA
            ) from None
        self._raw[schema_id] = text
        return parsed
