"""``attentive-connector route``: a dry run showing the requests records would become. No network.

``--input F`` is an Avro object container file of the topic's records (``--format avro``, the default) or JSON
lines of decoded records (``--format json``; see :mod:`connector.avro.jsonrecords` for the JSON form). Output:
one JSON line per outcome, ``record`` being the record's 1-based position in the input (its line number for
JSON lines)::

    {"record": n, "rule": "...", "method": "POST", "path": "/v1/...", "body": {...}}   a request that would be sent
    {"record": n, "rule": "...", "error": "..."}     a matching rule cannot build a valid request
    {"record": n, "skipped": true}                   no rule matches
    {"record": n, "error": "..."}                    the input record does not fit the topic's schema
    {"record": n, "rule": "...", "skipped": true, "reason": "stale"}   only with --now: older than max_age

Records are taken as partition ``--partition`` (default 0) at offsets ``--offset`` (default 0), ``+1``, … — the
offsets only matter for default ``externalEventId`` s. ``max_age`` is applied only when ``--now`` is given, so the
output does not depend on when the command runs. Exit status: 0 when every record routed or was skipped, 1 when
any record had an error, 2 for a bad config or unreadable input.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import fastavro

from connector.attentive.jsonio import dumps, loads
from connector.avro.jsonrecords import from_json
from connector.avro.schema import TopicSchema
from connector.config import load_config
from connector.errors import ConfigError, ConnectorError, DecodeError, Reason, UnroutableError
from connector.rules.router import Router
from connector.rules.tools import DEFAULT_CONFIG
from connector.types import RouteResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"connector config file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--topic", required=True, help="the topic the records belong to")
    parser.add_argument("--input", required=True, metavar="F", help="Avro container file or JSON lines")
    parser.add_argument(
        "--format", choices=("avro", "json"), default="avro", help="input format (default: avro)"
    )
    parser.add_argument("--partition", type=int, default=0, help="partition to assume (default: 0)")
    parser.add_argument("--offset", type=int, default=0, help="offset of the first record (default: 0)")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="apply max_age as if it were TIME (RFC 3339, or epoch millis); default: max_age not applied",
    )


def _parse_now(text: str) -> float:
    try:
        return int(text) / 1000.0
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"--now: {text!r} is not RFC 3339 (2024-05-01T12:00:00Z) or epoch millis") from None
    if parsed.tzinfo is None:
        raise ConfigError("--now: add a UTC offset, e.g. 2024-05-01T12:00:00Z")
    return parsed.timestamp()


def read_json_lines(path: Path, schema: TopicSchema) -> Iterator[dict[str, Any] | DecodeError]:
    """Records of a JSON-lines file in decoded form; a line that does not fit yields its error. Blank lines
    and lines starting with ``#`` are ignored (and not counted)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                obj = loads(text)
            except ValueError as exc:
                yield DecodeError(f"not valid JSON: {exc}", reason=Reason.NOT_AVRO)
                continue
            try:
                yield from_json(schema, obj)
            except DecodeError as exc:
                yield exc


def read_avro_file(path: Path, schema: TopicSchema) -> Iterator[dict[str, Any] | DecodeError]:
    """Records of an Avro object container file, read through the topic's reader schema."""
    with path.open("rb") as fh:
        try:
            reader = fastavro.reader(fh, reader_schema=schema.parsed)
        except (ValueError, EOFError, OSError) as exc:
            raise ConfigError(f"{path}: not an Avro object container file ({exc})") from None
        records = iter(reader)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (ValueError, EOFError, KeyError, TypeError) as exc:
                yield DecodeError(
                    f"cannot read record: {type(exc).__name__}: {exc}", reason=Reason.INCOMPATIBLE
                )
                return
            yield _uuids_as_text(record)


def _uuids_as_text(value: Any) -> Any:
    # The file's writer schema may carry the uuid logical type; the connector's records hold uuids as text.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _uuids_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_uuids_as_text(v) for v in value]
    return value


def outcome_lines(n: int, result: RouteResult) -> list[dict[str, Any]]:
    """The output objects for record ``n`` (see the module doc for the contract)."""
    if result.calls:
        return [
            {
                "record": n,
                "rule": call.rule,
                "method": call.endpoint.method,
                "path": call.endpoint.path,
                "body": call.body,
            }
            for call in result.calls
        ]
    if result.error is not None and not isinstance(result.error, UnroutableError):
        rule = (result.error.rule if isinstance(result.error, ConnectorError) else None) or result.rule
        if rule is None:
            return [{"record": n, "error": str(result.error)}]
        return [{"record": n, "rule": rule, "error": str(result.error)}]
    if result.skipped == "stale":
        return [{"record": n, "rule": result.rule, "skipped": True, "reason": "stale"}]
    return [{"record": n, "skipped": True}]


def main(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    config = load_config(args.config)
    if args.topic not in config.topics:
        raise ConfigError(
            f"--topic {args.topic!r} is not configured (configured: {', '.join(config.topics)})"
        )
    now = _parse_now(args.now) if args.now else None
    router = Router.from_config(
        config,
        offline=True,
        apply_max_age=now is not None,
        clock=(lambda: now) if now is not None else (lambda: 0.0),
    )
    schema = router.schemas[args.topic]
    path = Path(args.input)
    if not path.is_file():
        raise ConfigError(f"--input {path}: no such file")
    records = read_avro_file(path, schema) if args.format == "avro" else read_json_lines(path, schema)
    try:
        return _print_outcomes(router, args, records, out)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _print_outcomes(
    router: Router, args: argparse.Namespace, records: Iterator[dict[str, Any] | DecodeError], out: TextIO
) -> int:
    failed = False
    for i, item in enumerate(records):
        n = i + 1
        if isinstance(item, DecodeError):
            result = RouteResult(error=item)
        else:
            result = router.route_decoded(
                args.topic, item, partition=args.partition, offset=args.offset + i, timestamp_ms=None
            )
        lines = outcome_lines(n, result)
        failed = failed or any("error" in line for line in lines)
        for line in lines:
            out.write(dumps(line).decode("ascii") + "\n")
    out.flush()
    return 1 if failed else 0
