"""Topic schemas: loaded and parsed once, and described as a small type tree for the rule checker.

A topic's ``.avsc`` file is the *reader* schema: records are always decoded into its shape, whatever (compatible)
writer schema a producer used. Parsing with :func:`fastavro.parse_schema` happens here, once per schema, never per
record.

One adjustment is made to every schema used for *reading*: the ``uuid`` logical type is dropped, so uuids decode
as plain ``str`` (fastavro would return ``uuid.UUID`` objects, which JMESPath cannot compare with a string and
JSON cannot carry). See :mod:`connector.avro.decoder` for the full decoded-value representation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from connector.errors import ConfigError

# What a rule can read from a field, as far as the Attentive mapping cares.
#   string, integer, number (float/double/decimal), boolean, timestamp, date, time, bytes, null,
#   enum (a string with known symbols), record, array, map, union (of the others), any (unknown).
PRIMITIVE_KINDS = {
    "string": "string",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bytes": "bytes",
    "null": "null",
}
_LOGICAL_KINDS = {
    "decimal": "number",
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
    "date": "date",
    "time-millis": "time",
    "time-micros": "time",
    "uuid": "string",
}
SCALAR_KINDS = frozenset({"string", "enum", "integer", "number", "boolean", "timestamp", "date", "time"})


@dataclass(eq=False)
class AvroType:
    """A node of a schema's type tree (records may refer to themselves, so this is a graph).

    ``kind`` is one of the labels listed above; ``name`` is the full name of a named type (record, enum,
    fixed); ``fields`` (record), ``items`` (array items or map values), ``options`` (union branches) and
    ``symbols`` (enum) are set for their kinds.
    """

    kind: str
    name: str | None = None
    fields: dict[str, AvroType] = field(default_factory=dict)
    items: AvroType | None = None
    options: tuple[AvroType, ...] = ()
    symbols: tuple[str, ...] = ()

    def non_null(self) -> AvroType:
        """The type without its ``null`` branch: ``["null", T]`` → ``T``; other unions stay unions."""
        if self.kind != "union":
            return self
        rest = tuple(o for o in self.options if o.kind != "null")
        if len(rest) == 1:
            return rest[0]
        return AvroType("union", options=rest) if rest else AvroType("null")

    @property
    def nullable(self) -> bool:
        return self.kind == "null" or (self.kind == "union" and any(o.kind == "null" for o in self.options))

    def kinds(self) -> set[str]:
        """The set of kinds a value of this type can have (``null`` included for optional fields)."""
        if self.kind == "union":
            out: set[str] = set()
            for o in self.options:
                out |= o.kinds()
            return out
        return {self.kind}

    def describe(self) -> str:
        """Short human description, e.g. ``record Customer``, ``array<record LineItem>``, ``null|string``."""
        if self.kind == "record":
            return f"record {short_name(self.name)}"
        if self.kind == "enum":
            return f"enum {short_name(self.name)}"
        if self.kind in ("array", "map") and self.items is not None:
            return f"{self.kind}<{self.items.describe()}>"
        if self.kind == "union":
            return "|".join(o.describe() for o in self.options)
        return self.kind


def short_name(name: str | None) -> str:
    return (name or "?").rsplit(".", 1)[-1]


@dataclass(frozen=True, eq=False)
class TopicSchema:
    """A topic's reader schema: the file it came from, the JSON as written, and fastavro's parsed forms.

    ``parsed`` is the reading form (uuid as plain string), ``writable`` the form as written (for encoders).
    """

    path: Path
    raw: Any = field(repr=False)
    parsed: Any = field(repr=False)
    writable: Any = field(repr=False)
    type: AvroType = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.raw.get("name", "?")) if isinstance(self.raw, dict) else "?"

    @property
    def label(self) -> str:
        """How messages name the schema: the file name (``orders.avsc``)."""
        return self.path.name


def load_schema(path: Path) -> TopicSchema:
    """Read and parse an ``.avsc`` file. Raises :class:`ConfigError` naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read Avro schema: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    return schema_from_json(raw, path)


def schema_from_json(raw: Any, path: Path) -> TopicSchema:
    """Parse an already-loaded schema; ``path`` is only used in messages."""
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise ConfigError(f'{path}: a topic schema must be an Avro record ("type": "record")')
    try:
        parsed = parse_for_reading(raw)
        writable = parse_for_writing(raw)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from None
    return TopicSchema(path=path, raw=raw, parsed=parsed, writable=writable, type=type_tree(raw))


def parse_for_reading(raw: Any) -> Any:
    """``fastavro.parse_schema`` of ``raw`` with ``uuid`` logical types removed (uuids decode as ``str``)."""
    return fastavro.parse_schema(without_uuid(raw))


def parse_for_writing(raw: Any) -> Any:
    """``fastavro.parse_schema`` of ``raw`` as written (the writer checks uuid strings)."""
    return fastavro.parse_schema(raw)


def without_uuid(node: Any) -> Any:
    if isinstance(node, list):
        return [without_uuid(x) for x in node]
    if isinstance(node, dict):
        if node.get("logicalType") == "uuid":
            return {k: without_uuid(v) for k, v in node.items() if k != "logicalType"}
        return {k: without_uuid(v) for k, v in node.items()}
    return node


def type_tree(raw: Any) -> AvroType:
    """Describe a schema (JSON form) as an :class:`AvroType` graph."""
    return _TreeBuilder().build(raw, namespace=None)


class _TreeBuilder:
    def __init__(self) -> None:
        self.named: dict[str, AvroType] = {}

    def _full(self, name: str, namespace: str | None) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def build(self, node: Any, namespace: str | None) -> AvroType:
        if isinstance(node, list):
            return AvroType("union", options=tuple(self.build(o, namespace) for o in node))
        if isinstance(node, str):
            if node in PRIMITIVE_KINDS:
                return AvroType(PRIMITIVE_KINDS[node])
            ref = self.named.get(self._full(node, namespace)) or self.named.get(node)
            return ref if ref is not None else AvroType("any", name=node)
        if not isinstance(node, Mapping):
            return AvroType("any")
        type_ = node.get("type")
        logical = node.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL_KINDS:
            return AvroType(_LOGICAL_KINDS[logical])
        if type_ in {"record", "error"}:
            full = self._full(str(node["name"]), node.get("namespace", namespace))
            rec = AvroType("record", name=full)
            self.named[full] = rec
            ns = full.rsplit(".", 1)[0] if "." in full else None
            for f in node.get("fields", []):
                rec.fields[str(f["name"])] = self.build(f["type"], ns)
            return rec
        if type_ == "enum":
            full = self._full(str(node["name"]), node.get("namespace", namespace))
            enum = AvroType("enum", name=full, symbols=tuple(node.get("symbols", ())))
            self.named[full] = enum
            return enum
        if type_ == "fixed":
            full = self._full(str(node["name"]), node.get("namespace", namespace))
            fixed = AvroType("bytes", name=full)
            self.named[full] = fixed
            return fixed
        if type_ == "array":
            return AvroType("array", items=self.build(node.get("items"), namespace))
        if type_ == "map":
            return AvroType("map", items=self.build(node.get("values"), namespace))
        return self.build(type_, namespace)
