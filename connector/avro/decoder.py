"""Decode a topic's Kafka values into Python records, the way producers really encode Avro.

Two encodings (``topics.<t>.encoding`` in the config):

* ``confluent`` — Confluent wire format: magic byte ``0``, a 4-byte big-endian schema id, then the Avro body.
  The *writer* schema comes from the Schema Registry (cached per id, see :mod:`connector.avro.registry`); the
  topic's ``.avsc`` is the *reader* schema, so producers can evolve (add fields with defaults, drop fields)
  and rules keep seeing the shape they were written for.
* ``raw`` — schemaless Avro body, no header; writer = reader = the topic's ``.avsc``.

**Decoded representation** (what rules and JMESPath see), chosen so that ``when`` predicates need no casts:

============================  ======================================================================
Avro                          Python value
============================  ======================================================================
record / map                  ``dict`` (every reader field present; defaults filled in)
array                         ``list``
enum                          ``str`` (the symbol: ``kind == 'ORDER_PLACED'``)
string, ``uuid``              ``str``
int / long / float / double   ``int`` / ``float``
``decimal`` (bytes/fixed)     ``decimal.Decimal`` — exact money; JMESPath compares it as a number
``timestamp-millis/micros``   timezone-aware ``datetime`` in UTC
``date``                      ``datetime.date``
boolean / null                ``bool`` / ``None``
============================  ======================================================================

Failures: a value that can never decode raises :class:`DecodeError` with ``reason`` one of ``empty``,
``bad_magic``, ``truncated``, ``not_avro``, ``unknown_schema``, ``incompatible`` (the engine dead-letters the
record); a registry that cannot be reached raises :class:`RegistryUnavailableError` (transient: retry).
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from connector.avro.registry import WriterSchemas
from connector.avro.schema import TopicSchema, without_uuid
from connector.config import Encoding
from connector.errors import ConfigError, DecodeError, Reason

MAGIC_BYTE = 0
HEADER_SIZE = 5


class _LengthWatch(io.BytesIO):
    """A buffer that notes a read of *negative* length: garbage read as Avro yields one (fastavro then raises
    EOFError as if the value were short). Used only to classify an EOFError, off the hot path."""

    negative = False

    def read(self, size: int | None = None, /) -> bytes:
        if size is not None and size < 0:
            self.negative = True
        return super().read(size)


def _negative_length(value: bytes, start: int, writer: Any, reader: Any) -> bool:
    """Whether reading ``value`` again fails on a negative length (not Avro) rather than on its end."""
    buf = _LengthWatch(value)
    buf.seek(start)
    # The first read's error is the one reported; this read only classifies it, whatever it raises.
    with contextlib.suppress(Exception):
        fastavro.schemaless_reader(buf, writer, reader)
    return buf.negative


def confluent_schema_id(value: bytes) -> int | None:
    """The schema id in a Confluent-framed value, or ``None`` when the value is not framed."""
    if len(value) < HEADER_SIZE or value[0] != MAGIC_BYTE:
        return None
    return int.from_bytes(value[1:HEADER_SIZE], "big")


class Decoder:
    """Decodes one topic's values. Built once at start-up; :meth:`decode` runs per record."""

    def __init__(
        self,
        topic: str,
        schema: TopicSchema,
        encoding: Encoding,
        *,
        writer_schemas: WriterSchemas | None = None,
    ) -> None:
        if encoding is Encoding.CONFLUENT and writer_schemas is None:
            raise ConfigError(
                f"topics.{topic}.encoding is confluent but no schema registry is configured: "
                "set kafka.schema_registry.url (or SCHEMA_REGISTRY_URL)"
            )
        self.topic = topic
        self.schema = schema
        self.encoding = encoding
        self._reader = schema.parsed
        self._reader_key = json.dumps(without_uuid(schema.raw), sort_keys=True)
        self._writer_schemas = writer_schemas
        # schema id -> reader schema to pass to fastavro (None when the writer is the reader: no resolution).
        self._resolution: dict[int, Any] = {}

    def needs_registry(self, value: bytes | None) -> bool:
        """True when decoding ``value`` would have to ask the registry (a blocking HTTP call).

        The engine can use it to run those rare decodes off its event loop.
        """
        if self.encoding is not Encoding.CONFLUENT or not value or self._writer_schemas is None:
            return False
        schema_id = confluent_schema_id(value)
        return schema_id is not None and not self._writer_schemas.cached(schema_id)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The record in ``value`` (see the module doc for the representation)."""
        if not value:
            raise DecodeError(f"{self.topic}: empty value (tombstone or empty message)", reason=Reason.EMPTY)
        if self.encoding is Encoding.RAW:
            return self._read(value, 0, self._reader, None)
        if value[0] != MAGIC_BYTE:
            raise DecodeError(
                f"{self.topic}: first byte is 0x{value[0]:02x}, not the Confluent magic byte 0x00 "
                "(is the producer using the Confluent Avro serializer? the topic is configured "
                "encoding: confluent)",
                reason=Reason.BAD_MAGIC,
            )
        if len(value) < HEADER_SIZE:
            raise DecodeError(
                f"{self.topic}: {len(value)} bytes, shorter than the 5-byte Confluent header",
                reason=Reason.TRUNCATED,
            )
        schema_id = int.from_bytes(value[1:HEADER_SIZE], "big")
        assert self._writer_schemas is not None  # checked in __init__
        writer = self._writer_schemas.get(schema_id)
        try:
            reader = self._resolution[schema_id]
        except KeyError:
            reader = self._reader_for(schema_id)
        return self._read(value, HEADER_SIZE, writer, reader)

    def _reader_for(self, schema_id: int) -> Any:
        assert self._writer_schemas is not None
        text = self._writer_schemas.schema_text(schema_id)
        same = (
            text is not None
            and json.dumps(without_uuid(json.loads(text)), sort_keys=True) == self._reader_key
        )
        reader = None if same else self._reader
        self._resolution[schema_id] = reader
        return reader

    def _read(self, value: bytes, start: int, writer: Any, reader: Any) -> dict[str, Any]:
        buf = io.BytesIO(value)
        if start:
            buf.seek(start)
        try:
            record = fastavro.schemaless_reader(buf, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"{self.topic}: the writer schema cannot be read as {self.schema.label}: {exc}",
                reason=Reason.INCOMPATIBLE,
            ) from None
        except EOFError:
            if _negative_length(value, start, writer, reader):
                raise DecodeError(
                    f"{self.topic}: not Avro of {self.schema.label} (negative length)", reason=Reason.NOT_AVRO
                ) from None
            raise DecodeError(
                f"{self.topic}: value ends before the record does ({len(value)} bytes)",
                reason=Reason.TRUNCATED,
            ) from None
        except (
            ValueError,
            IndexError,
            KeyError,
            TypeError,
            OverflowError,
            UnicodeDecodeError,
            MemoryError,
        ) as exc:
            raise DecodeError(
                f"{self.topic}: not Avro of {self.schema.label} ({type(exc).__name__})",
                reason=Reason.NOT_AVRO,
            ) from None
        end = buf.tell()
        if end != len(value):
            raise DecodeError(
                f"{self.topic}: not Avro of {self.schema.label} ({len(value) - end} bytes left after the record)",
                reason=Reason.NOT_AVRO,
            )
        if not isinstance(record, dict):  # pragma: no cover - topic schemas are records (checked at load)
            raise DecodeError(f"{self.topic}: decoded value is not a record", reason=Reason.NOT_AVRO)
        return record
