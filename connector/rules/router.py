"""The router: one Kafka record in, the Attentive calls it becomes (or why none) out.

``Router.from_config(config)`` loads each topic's schema, builds its decoder and loads the rule table — every
check runs there, so a broken table stops start-up with :class:`ConfigError`. ``route(record)`` then runs per
record: decode → match rules (in file order) → build each matching rule's request. Routing is all-or-nothing:
if any matching rule cannot build a valid request, the record gets an error and no calls (a replay after a fix
never half-repeats a fan-out).

What ``route`` returns (:class:`~connector.types.RouteResult`):

* ``calls`` (non-empty) — in rule order; ``record_id`` is ``topic/partition/offset``, or with ``/0``, ``/1`` …
  when the record fans out to more than one call; ``rule`` is the first matching rule;
* ``skipped="no_rule"`` — no rule matched (or ``error=UnroutableError`` with ``delivery.unmatched: dead_letter``);
* ``skipped="stale"`` — every matching rule has a ``max_age`` the record is older than (a rule's age is measured
  from the ``occurredAt`` it maps, else from the Kafka timestamp);
* ``error`` — a :class:`DecodeError` or :class:`RoutingError` (``rule`` names the rule): dead-letter it.

``RegistryUnavailableError`` is *raised*, not returned: it is transient, the engine keeps the record and retries.
``ordering_key`` is set in every case (the topic's ``key_field`` over the decoded record, else the Kafka key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jmespath.exceptions

from connector.attentive.endpoints import Endpoint
from connector.attentive.models import build_body, external_event_id
from connector.avro.decoder import Decoder
from connector.avro.registry import RegistryClient, WriterSchemas, make_registry_client
from connector.avro.schema import TopicSchema, load_schema
from connector.config import ConnectorConfig, Encoding
from connector.errors import ConfigError, DecodeError, ExpressionError, Reason, RoutingError, UnroutableError
from connector.rules.expressions import Expr
from connector.rules.rule import Rule
from connector.rules.table import RuleTable, load_rule_table
from connector.types import Call, RouteResult, SourceRecord

# Failures a rule's expressions or the body builder may raise on odd data; they become a RoutingError for the
# record (dead-lettered with the message), never a crash of the pipeline.
_DATA_ERRORS = (
    jmespath.exceptions.JMESPathError,
    ValueError,
    TypeError,
    ArithmeticError,
    KeyError,
    AttributeError,
)


def load_topic_schemas(config: ConnectorConfig) -> dict[str, TopicSchema]:
    """Every configured topic's reader schema (paths relative to the config file)."""
    schemas: dict[str, TopicSchema] = {}
    problems: list[str] = []
    for topic, settings in config.topics.items():
        try:
            schemas[topic] = load_schema(config.resolve(settings.schema_file))
        except ConfigError as exc:
            problems.append(f"topics.{topic}.schema: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return schemas


class Router:
    """Decodes and routes records of the configured topics. Build with :meth:`from_config`."""

    def __init__(
        self,
        *,
        table: RuleTable,
        decoders: Mapping[str, Decoder],
        schemas: Mapping[str, TopicSchema] | None = None,
        unmatched: str = "skip",
        default_region: str = "US",
        key_fields: Mapping[str, str | None] | None = None,
        clock: Callable[[], float] = time.time,
        apply_max_age: bool = True,
    ) -> None:
        self.decoders = dict(decoders)
        self.schemas = (
            dict(schemas) if schemas is not None else {t: d.schema for t, d in self.decoders.items()}
        )
        self.table = table
        self.unmatched = unmatched
        self.default_region = default_region
        self.apply_max_age = apply_max_age
        self._clock = clock
        self._rules: dict[str, tuple[Rule, ...]] = {t: table.for_topic(t) for t in self.schemas}
        self._key_exprs: dict[str, Expr] = {}
        for topic, source in (key_fields or {}).items():
            if source:
                try:
                    self._key_exprs[topic] = Expr(source)
                except ExpressionError as exc:
                    raise ConfigError(f"topics.{topic}.key_field: {exc}") from None

    @classmethod
    def from_config(
        cls,
        config: ConnectorConfig,
        *,
        registry_client: RegistryClient | None = None,
        clock: Callable[[], float] = time.time,
        offline: bool = False,
        apply_max_age: bool = True,
    ) -> Router:
        """Load schemas and rules, build decoders. Raises :class:`ConfigError` listing every problem.

        ``offline=True`` builds no decoders and no registry client: only :meth:`route_decoded` works (the
        ``route`` dry-run tool). ``apply_max_age=False`` never skips records as stale.
        """
        schemas = load_topic_schemas(config)
        table = load_rule_table(config.resolve(config.rules_file), schemas)
        decoders: dict[str, Decoder] = {}
        if not offline:
            writer_schemas: WriterSchemas | None = None
            confluent = [t for t, s in config.topics.items() if s.encoding is Encoding.CONFLUENT]
            if confluent:
                if registry_client is None:
                    if config.kafka.schema_registry is None:
                        raise ConfigError(
                            f"topics.{confluent[0]}.encoding is confluent but kafka.schema_registry.url is not "
                            "set (set it, or SCHEMA_REGISTRY_URL; or use encoding: raw)"
                        )
                    registry_client = make_registry_client(config.kafka.schema_registry)
                writer_schemas = WriterSchemas(registry_client)
            decoders = {
                topic: Decoder(topic, schemas[topic], settings.encoding, writer_schemas=writer_schemas)
                for topic, settings in config.topics.items()
            }
        return cls(
            table=table,
            decoders=decoders,
            schemas=schemas,
            unmatched=config.delivery.unmatched,
            default_region=config.attentive.default_region,
            key_fields={t: s.key_field for t, s in config.topics.items()},
            clock=clock,
            apply_max_age=apply_max_age,
        )

    @property
    def topics(self) -> list[str]:
        return list(self._rules)

    def rule_names(self) -> list[str]:
        """The names of the rule table's rules, in order."""
        return [rule.name for rule in self.table.rules]

    def needs_registry(self, record: SourceRecord) -> bool:
        """True when routing ``record`` would first fetch a writer schema (a blocking HTTP call)."""
        decoder = self.decoders.get(record.topic)
        return decoder is not None and decoder.needs_registry(record.value)

    def route(self, record: SourceRecord) -> RouteResult:
        """Decode and route one record (see the module doc). Raises only ``RegistryUnavailableError``."""
        decoder = self.decoders.get(record.topic)
        if decoder is None:
            why = (
                "has no decoder (router built offline)"
                if record.topic in self._rules
                else "is not configured"
            )
            return RouteResult(
                error=UnroutableError(f"topic {record.topic!r} {why}"),
                ordering_key=_kafka_key(record.key),
            )
        try:
            decoded = decoder.decode(record.value)
        except DecodeError as exc:
            return RouteResult(error=exc, ordering_key=_kafka_key(record.key))
        return self.route_decoded(
            record.topic,
            decoded,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            key=record.key,
        )

    def route_decoded(
        self,
        topic: str,
        decoded: dict[str, Any],
        *,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
        key: bytes | None = None,
    ) -> RouteResult:
        """Route an already-decoded record (``route --format json``, DLQ replay, tests)."""
        ordering_key = self._ordering_key(topic, decoded, key)
        rules = self._rules.get(topic)
        if rules is None:
            return RouteResult(
                error=UnroutableError(f"topic {topic!r} is not configured"), ordering_key=ordering_key
            )
        built: list[tuple[Rule, dict[str, Any]]] = []
        stale: Rule | None = None
        guards: dict[tuple[str, ...], Any] = {}
        for rule in rules:
            guard = rule.guard
            if guard is not None:
                # Rules that start with `field == 'text'` are ruled out with one lookup per distinct field.
                path, text, get = guard
                try:
                    value = guards[path]
                except KeyError:
                    value = guards[path] = get(decoded)
                if value != text:
                    continue
            try:
                if not rule.matches(decoded):
                    continue
                data = rule.build_data(decoded)
                if (
                    rule.max_age_s is not None
                    and self.apply_max_age
                    and self._is_stale(rule, data, timestamp_ms)
                ):
                    stale = stale or rule
                    continue
                if rule.api is Endpoint.CUSTOM_EVENT and "externalEventId" not in data:
                    data["externalEventId"] = external_event_id(topic, partition, offset, rule.name)
                body = build_body(rule.api, data, default_region=self.default_region, rule=rule.name)
            except RoutingError as exc:
                if exc.rule is None:
                    exc.rule = rule.name
                return RouteResult(rule=rule.name, error=exc, ordering_key=ordering_key)
            except _DATA_ERRORS as exc:
                error = RoutingError(
                    f"rule {rule.name!r} failed on this record: {_describe_failure(exc)}",
                    rule=rule.name,
                    reason=Reason.EXPRESSION,
                )
                return RouteResult(rule=rule.name, error=error, ordering_key=ordering_key)
            built.append((rule, body))
        if not built:
            if stale is not None:
                return RouteResult(skipped="stale", rule=stale.name, ordering_key=ordering_key)
            if self.unmatched == "dead_letter":
                return RouteResult(
                    error=UnroutableError(f"no rule matches this {topic} record"), ordering_key=ordering_key
                )
            return RouteResult(skipped="no_rule", ordering_key=ordering_key)
        base = f"{topic}/{partition}/{offset}"
        if len(built) == 1:
            rule, body = built[0]
            calls = [Call(endpoint=rule.api, body=body, record_id=base, rule=rule.name)]
        else:
            calls = [
                Call(endpoint=rule.api, body=body, record_id=f"{base}/{n}", rule=rule.name)
                for n, (rule, body) in enumerate(built)
            ]
        return RouteResult(calls=calls, rule=built[0][0].name, ordering_key=ordering_key)

    def _is_stale(self, rule: Rule, data: dict[str, Any], timestamp_ms: int | None) -> bool:
        assert rule.max_age_s is not None
        event_ms = rule.event_time_ms(data, timestamp_ms)
        if event_ms is None:
            return False
        return self._clock() * 1000.0 - event_ms > rule.max_age_s * 1000.0

    def _ordering_key(self, topic: str, decoded: dict[str, Any], key: bytes | None) -> str | None:
        expr = self._key_exprs.get(topic)
        if expr is not None:
            try:
                value = expr.search(decoded)
            except jmespath.exceptions.JMESPathError:
                value = None
            if value is not None and value != "":
                return value if isinstance(value, str) else str(value)
        return _kafka_key(key)


def _kafka_key(key: bytes | None) -> str | None:
    """The Kafka key as text (UTF-8, else hex), or ``None`` for keyless records."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.hex()


def _describe_failure(exc: BaseException) -> str:
    """What went wrong, without the record's values (they may be phone numbers or emails)."""
    if isinstance(exc, jmespath.exceptions.JMESPathTypeError):
        return (
            f"JMESPathTypeError: {exc.function_name}() got a {exc.actual_type} value, "
            f"expected {', '.join(exc.expected_types)}"
        )
    if isinstance(exc, jmespath.exceptions.JMESPathError):
        return f"{type(exc).__name__} in an expression"
    return f"{type(exc).__name__} while building the request"
