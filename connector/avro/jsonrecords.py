"""Decoded records as JSON, and back: for ``route --format json``, ``config/examples/*.jsonl`` and DLQ tools.

**JSON form of a record** (what :func:`from_json` accepts) — the decoded record with JSON-friendly logical types:

* ``timestamp-millis``/``-micros``: an RFC 3339 / ISO 8601 string with an offset (``"2024-05-01T12:00:00Z"``)
  or epoch milliseconds (an integer);
* ``decimal``: a JSON number or a string (``19.99`` or ``"19.99"``) — read exactly, never through a float;
* ``date``: ``"YYYY-MM-DD"`` (or days since the epoch);
* enums: the symbol string; ``uuid``: the string; other types as in JSON.

Fields with a default may be left out. A key that is not a field of the schema is an error (it is almost always a
typo). The result is exactly what :class:`~connector.avro.decoder.Decoder` would produce for the same record,
because the value is converted, written with fastavro and read back through the topic's reader schema.

:func:`jsonable` goes the other way for values put into Attentive bodies (custom event / attribute properties):
``datetime`` → RFC 3339 string, ``date`` → ``YYYY-MM-DD``; ``Decimal`` stays exact (see
:func:`connector.attentive.jsonio.dumps`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import fastavro
from fastavro.validation import ValidationError, validate

from connector.avro.schema import TopicSchema
from connector.errors import DecodeError, Reason
from connector.formats import rfc3339

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Mismatch(Exception):
    """Internal: a JSON value does not fit a schema node (message names the path)."""


def from_json(schema: TopicSchema, obj: Any) -> dict[str, Any]:
    """Convert a JSON-form record to the decoded representation. Raises :class:`DecodeError`
    (``incompatible``) naming the field that does not fit."""
    if not isinstance(obj, Mapping):
        raise DecodeError(
            f"a {schema.label} record must be a JSON object, not {_json_type(obj)}",
            reason=Reason.INCOMPATIBLE,
        )
    named: dict[str, Any] = {}
    try:
        datum = _convert(schema.raw, obj, "", named, None)
    except _Mismatch as exc:
        raise DecodeError(f"record does not fit {schema.label}: {exc}", reason=Reason.INCOMPATIBLE) from None
    writer = schema.writable
    try:
        validate(datum, writer, raise_errors=True)
    except ValidationError as exc:
        raise DecodeError(
            f"record does not fit {schema.label}: {validation_problems(exc)}", reason=Reason.INCOMPATIBLE
        ) from None
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, datum)
    buf.seek(0)
    # Written with the uuid-checking form, read with the reading form (same bytes; uuids come back as str).
    return cast(dict[str, Any], fastavro.schemaless_reader(buf, schema.parsed, None))


_NAMESPACE = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)+")


def validation_problems(exc: ValidationError) -> str:
    """fastavro's validation errors without the values (they may be phone numbers or emails)."""
    parts = []
    for err in getattr(exc, "errors", ()) or ():
        # "com.retailer.events.LoyaltyEvent.points_delta" -> "LoyaltyEvent.points_delta"
        field = _NAMESPACE.sub("", str(getattr(err, "field", None) or "(record)"))
        expected = getattr(err, "schema", None)
        if isinstance(expected, dict):
            expected = expected.get("name") or expected.get("type")
        datum = getattr(err, "datum", None)
        parts.append(f"{field}: a {type(datum).__name__} does not fit {expected}")
    return "; ".join(parts) or "the value does not fit the schema"


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float | Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    return type(v).__name__


def _where(path: str) -> str:
    return path or "(record)"


def _full(name: str, ns: str | None) -> str:
    return name if "." in name or not ns else f"{ns}.{name}"


def _convert(node: Any, value: Any, path: str, named: dict[str, Any], ns: str | None) -> Any:
    if isinstance(node, list):
        errors = []
        for branch in node:
            if branch == "null":
                if value is None:
                    return None
                continue
            if value is None:
                continue
            try:
                return _convert(branch, value, path, named, ns)
            except _Mismatch as exc:
                errors.append(str(exc))
        if value is None:
            raise _Mismatch(f"{_where(path)}: null is not allowed here")
        raise _Mismatch(errors[0] if len(errors) == 1 else f"{_where(path)}: fits none of the union's types")
    if isinstance(node, str):
        if node in named:
            return _convert(named[node], value, path, named, ns)
        full = _full(node, ns)
        if full in named:
            return _convert(named[full], value, path, named, ns)
        return _primitive(node, value, path)
    if not isinstance(node, Mapping):
        raise _Mismatch(f"{_where(path)}: unsupported schema node")
    type_ = node.get("type")
    logical = node.get("logicalType")
    if logical in (
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    ):
        return _timestamp(value, path)
    if logical == "date":
        return _date(value, path)
    if logical == "decimal":
        return _decimal(value, path)
    if logical in ("time-millis", "time-micros"):
        return _time(value, path)
    if type_ in ("record", "error"):
        full = _full(str(node["name"]), node.get("namespace", ns))
        named[full] = node
        named.setdefault(str(node["name"]), node)
        inner_ns = full.rsplit(".", 1)[0] if "." in full else None
        if not isinstance(value, Mapping):
            raise _Mismatch(f"{_where(path)}: expected an object, got {_json_type(value)}")
        fields = {str(f["name"]): f for f in node.get("fields", [])}
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise _Mismatch(
                f"{_where(path)}: {', '.join(repr(k) for k in unknown)} is not a field of {node['name']} "
                f"(fields: {', '.join(fields)})"
            )
        out: dict[str, Any] = {}
        for name, f in fields.items():
            sub = f"{path}.{name}" if path else name
            if name in value:
                out[name] = _convert(f["type"], value[name], sub, named, inner_ns)
            elif "default" not in f:
                raise _Mismatch(f"{sub}: required field is missing (it has no default)")
        return out
    if type_ == "enum":
        full = _full(str(node["name"]), node.get("namespace", ns))
        named[full] = node
        named.setdefault(str(node["name"]), node)
        symbols = node.get("symbols", [])
        if value not in symbols:
            raise _Mismatch(f"{_where(path)}: expected one of {', '.join(symbols)}")
        return value
    if type_ == "fixed":
        full = _full(str(node["name"]), node.get("namespace", ns))
        named[full] = node
        return _primitive("bytes", value, path)
    if type_ == "array":
        if not isinstance(value, list):
            raise _Mismatch(f"{_where(path)}: expected an array, got {_json_type(value)}")
        return [_convert(node.get("items"), v, f"{path}[{i}]", named, ns) for i, v in enumerate(value)]
    if type_ == "map":
        if not isinstance(value, Mapping):
            raise _Mismatch(f"{_where(path)}: expected an object (map), got {_json_type(value)}")
        return {str(k): _convert(node.get("values"), v, f"{path}.{k}", named, ns) for k, v in value.items()}
    return _convert(type_, value, path, named, ns)


def _primitive(kind: str, value: Any, path: str) -> Any:
    ok: bool
    if kind == "null":
        ok = value is None
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind in ("int", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("float", "double"):
        if isinstance(value, Decimal):
            return float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "bytes":
        if isinstance(value, str):
            return value.encode("utf-8")
        ok = isinstance(value, bytes)
    else:
        raise _Mismatch(f"{_where(path)}: unknown type {kind!r}")
    if not ok:
        raise _Mismatch(f"{_where(path)}: expected {kind}, got {_json_type(value)}")
    return value


def _timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + timedelta(milliseconds=value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise _Mismatch(
                f"{_where(path)}: timestamp must be ISO 8601 with an offset or epoch millis"
            ) from None
        if parsed.tzinfo is None:
            raise _Mismatch(f"{_where(path)}: timestamp needs a UTC offset (e.g. 'Z' or '+00:00')")
        return parsed.astimezone(UTC)
    raise _Mismatch(f"{_where(path)}: expected a timestamp string or epoch millis, got {_json_type(value)}")


def _date(value: Any, path: str) -> date:
    if isinstance(value, int) and not isinstance(value, bool):
        return date(1970, 1, 1) + timedelta(days=value)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _Mismatch(f"{_where(path)}: date must be YYYY-MM-DD") from None
    raise _Mismatch(f"{_where(path)}: expected a date string, got {_json_type(value)}")


def _time(value: Any, path: str) -> time:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            raise _Mismatch(f"{_where(path)}: time must be HH:MM:SS[.fff]") from None
    raise _Mismatch(f"{_where(path)}: expected a time string, got {_json_type(value)}")


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Mismatch(f"{_where(path)}: expected a decimal number or string, got {_json_type(value)}")
    try:
        # str() first: a float 19.99 becomes Decimal('19.99'), not its binary expansion.
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _Mismatch(f"{_where(path)}: not a decimal number") from None
    if not d.is_finite():
        raise _Mismatch(f"{_where(path)}: not a finite decimal number")
    return d


_PLAIN = frozenset({str, int, float, bool, type(None), Decimal})


def jsonable(value: Any) -> Any:
    """``value`` with datetimes and dates as strings (recursively), ready for an Attentive body."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def to_json(record: Any) -> Any:
    """A decoded record in JSON form (the inverse of :func:`from_json`): decimals as strings, timestamps as
    RFC 3339 strings, dates as ``YYYY-MM-DD``. Suitable for ``json.dumps``."""
    if isinstance(record, Decimal):
        return str(record)
    if isinstance(record, dict):
        return {k: to_json(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [to_json(v) for v in record]
    return jsonable(record)
