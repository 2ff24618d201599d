"""Encode records the way the connector is configured to read them (for samples, tests and the benchmark).

``Encoder.for_topic(config, topic)`` follows the topic's ``encoding``: raw schemaless Avro, or the Confluent
wire format with the schema registered (once, lazily) under the subject ``<topic>-value`` — the
TopicNameStrategy that Confluent's serializers use by default.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.validation import ValidationError, validate

from connector.avro.jsonrecords import validation_problems
from connector.avro.registry import TRANSPORT_ERRORS, RegistryClient, make_registry_client
from connector.avro.schema import TopicSchema, load_schema, parse_for_writing
from connector.config import ConnectorConfig, Encoding
from connector.errors import ConfigError, EncodeError, RegistryUnavailableError


class Encoder:
    """Turns records (dicts in the decoded representation) into Kafka values for one schema."""

    def __init__(
        self,
        schema: TopicSchema | Mapping[str, Any],
        encoding: Encoding,
        *,
        registry_client: RegistryClient | None = None,
        subject: str | None = None,
        check: bool = True,
    ) -> None:
        raw = schema.raw if isinstance(schema, TopicSchema) else dict(schema)
        parsed = schema.writable if isinstance(schema, TopicSchema) else parse_for_writing(raw)
        if encoding is Encoding.CONFLUENT and (registry_client is None or not subject):
            raise ConfigError("confluent encoding needs a schema registry client and a subject")
        self._raw = raw
        self._parsed = parsed
        self.encoding = encoding
        self.subject = subject
        self._client = registry_client
        self._check = check
        self._header: bytes | None = None

    @classmethod
    def for_topic(
        cls,
        config: ConnectorConfig,
        topic: str,
        *,
        registry_client: RegistryClient | None = None,
        check: bool = True,
    ) -> Encoder:
        """An encoder for ``topic`` as configured (schema file, encoding, registry)."""
        try:
            settings = config.topics[topic]
        except KeyError:
            raise ConfigError(
                f"{config.source_file or 'config'}: topic {topic!r} is not configured "
                f"(configured: {', '.join(sorted(config.topics))})"
            ) from None
        schema = load_schema(config.resolve(settings.schema_file))
        if settings.encoding is Encoding.CONFLUENT and registry_client is None:
            if config.kafka.schema_registry is None:
                raise ConfigError(
                    f"topics.{topic}.encoding is confluent but kafka.schema_registry.url is not set"
                )
            registry_client = make_registry_client(config.kafka.schema_registry)
        return cls(
            schema,
            settings.encoding,
            registry_client=registry_client,
            subject=f"{topic}-value",
            check=check,
        )

    @property
    def schema_id(self) -> int | None:
        """The registry id (after the first :meth:`encode` or :meth:`register`), else ``None``."""
        return None if self._header is None else int.from_bytes(self._header[1:], "big")

    def register(self) -> int:
        """Register the schema under the subject (idempotent) and return its id."""
        if self._header is None:
            assert self._client is not None
            assert self.subject is not None
            try:
                schema_id = self._client.register_schema(
                    self.subject, Schema(json.dumps(self._raw), schema_type="AVRO")
                )
            except SchemaRegistryError as exc:
                if exc.http_status_code >= 500 or exc.http_status_code < 0:
                    raise RegistryUnavailableError(f"schema registry failed: {exc}") from None
                raise EncodeError(f"schema registry refused the schema for {self.subject}: {exc}") from None
            except TRANSPORT_ERRORS as exc:
                raise RegistryUnavailableError(f"schema registry unreachable: {type(exc).__name__}") from None
            self._header = b"\x00" + int(schema_id).to_bytes(4, "big")
        return int.from_bytes(self._header[1:], "big")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """``record`` as a Kafka value. Raises :class:`EncodeError` when it does not fit the schema."""
        if self._check:
            try:
                validate(record, self._parsed, raise_errors=True)
            except ValidationError as exc:
                raise EncodeError(f"record does not match the schema: {validation_problems(exc)}") from None
        buf = io.BytesIO()
        if self.encoding is Encoding.CONFLUENT:
            self.register()
            assert self._header is not None
            buf.write(self._header)
        try:
            fastavro.schemaless_writer(buf, self._parsed, dict(record))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # fastavro's own messages may quote the value; only the kind of failure is reported.
            raise EncodeError(f"record does not match the schema ({type(exc).__name__})") from None
        return buf.getvalue()
