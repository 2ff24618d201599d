"""Load ``rules.yaml``: parse, validate the shape, compile every expression, check against the topic schemas.

:func:`load_rule_table` either returns a ready :class:`RuleTable` or raises :class:`ConfigError` listing every
problem, one per line, each naming the file, the rule and what to change. :func:`check_rule_table` returns
the problems instead (for ``attentive-connector validate``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.attentive.endpoints import Endpoint
from connector.avro.schema import TopicSchema
from connector.errors import ConfigError, ExpressionError, NodeError
from connector.rules.check import check_identity_rule, check_rule
from connector.rules.expressions import Expr
from connector.rules.model import RuleSpec, RuleTableSpec
from connector.rules.problems import Problems
from connector.rules.rule import ItemsPlan, Rule
from connector.rules.targets import (
    ECOMMERCE,
    FIELDS,
    ITEM_FIELDS,
    MOVED,
    SHOPIFY_KLAVIYO_APIS,
    SUBSCRIBER_APIS,
)
from connector.rules.values import Node, parse_node


@dataclass(frozen=True)
class RuleTable:
    """The compiled rules, in file order, and an index by topic."""

    source: Path
    rules: tuple[Rule, ...]
    by_topic: Mapping[str, tuple[Rule, ...]]

    def for_topic(self, topic: str) -> tuple[Rule, ...]:
        return self.by_topic.get(topic, ())


def load_rule_table(path: Path, schemas: Mapping[str, TopicSchema]) -> RuleTable:
    """Load and fully check the rule table for the configured topics (``schemas``: topic → reader schema)."""
    table, problems = check_rule_table(path, schemas)
    if problems or table is None:
        raise ConfigError("\n".join(problems) or f"{path}: rule table is empty")
    return table


def check_rule_table(path: Path, schemas: Mapping[str, TopicSchema]) -> tuple[RuleTable | None, list[str]]:
    """Everything :func:`load_rule_table` checks, returned as problem lines (empty when clean)."""
    problems = Problems(path)
    spec = _read_spec(path, problems)
    if spec is None:
        return None, problems.lines
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, rule_spec in enumerate(spec.rules):
        if rule_spec.name in seen:
            problems.add("duplicate rule name (names must be unique)", rule=rule_spec.name)
        seen.add(rule_spec.name)
        rule = compile_rule(rule_spec, index, schemas, problems)
        for topic in rule.topics:
            if topic in schemas:
                check_rule(rule, topic, schemas[topic], problems)
        rules.append(rule)
    if problems.lines:
        return None, problems.lines
    by_topic = {t: tuple(r for r in rules if t in r.topics) for t in schemas}
    return RuleTable(source=path, rules=tuple(rules), by_topic=by_topic), []


def _read_spec(path: Path, problems: Problems) -> RuleTableSpec | None:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.add(f"cannot read the rule table: {exc.strerror}")
        return None
    except yaml.YAMLError as exc:
        problems.add(f"not valid YAML: {exc}")
        return None
    if not isinstance(raw, dict):
        problems.add("the rule table must be a mapping with a 'rules:' list")
        return None
    # Top-level keys starting with "x-" hold YAML anchors for reuse (as in docker-compose files).
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        return RuleTableSpec.model_validate(raw)
    except ValidationError as exc:
        _report_validation(exc, raw, problems)
        return None


def _report_validation(exc: ValidationError, raw: dict[str, Any], problems: Problems) -> None:
    rules_raw: list[Any] = raw["rules"] if isinstance(raw.get("rules"), list) else []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        rule_name: str | None = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            idx = loc[1]
            entry = rules_raw[idx] if idx < len(rules_raw) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            rule_name = str(name) if name is not None else f"#{idx + 1}"
            loc = loc[2:]
        where = ".".join(str(x) for x in loc) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key_message(err["loc"])
        elif err["type"] == "enum" and loc and loc[-1] == "api":
            msg = f"unknown api; use one of: {', '.join(e.value for e in Endpoint)}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.add(msg, rule=rule_name, where=where)


_KEYS = {
    "rule": list(RuleSpec.model_fields),
    "user": ["phone", "email", "client_user_id", "shopify_id", "klaviyo_id", "custom_identifiers"],
    "items": ["from", *ITEM_FIELDS],
    "top": ["rules", "x-… (YAML anchors)"],
}


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1])
    parent = loc[-2] if len(loc) >= 2 else None
    section = "top" if len(loc) == 1 else "rule" if isinstance(parent, int) else str(parent)
    allowed = _KEYS.get(section, [])
    hint = difflib.get_close_matches(key, allowed, n=1)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"unknown key (allowed here: {', '.join(allowed)}){did_you_mean}"


def compile_rule(spec: RuleSpec, index: int, schemas: Mapping[str, TopicSchema], problems: Problems) -> Rule:
    """Compile one rule; structural problems go to ``problems``."""
    name = spec.name

    def node(raw: Any, where: str) -> Node | None:
        try:
            return parse_node(raw, where)
        except NodeError as exc:
            problems.add(exc.detail, rule=name, where=exc.where)
            return None

    for topic in spec.topics:
        if topic not in schemas:
            problems.add(
                f"topic {topic!r} is not configured (configured topics: {', '.join(sorted(schemas))})",
                rule=name,
                where="topics",
            )
    when: Expr | None = None
    if spec.when is not None:
        try:
            when = Expr(spec.when)
        except ExpressionError as exc:
            problems.add(str(exc), rule=name, where="when")

    api = spec.api
    # --- user
    user: list[tuple[str, Node]] = []
    for key in ("phone", "email", "client_user_id", "shopify_id", "klaviyo_id"):
        raw = getattr(spec.user, key)
        if raw is None:
            continue
        if key in ("shopify_id", "klaviyo_id") and api not in SHOPIFY_KLAVIYO_APIS:
            problems.add(f"{key} is only accepted by subscribe and identity", rule=name, where=f"user.{key}")
            continue
        if key == "client_user_id" and api is Endpoint.UNSUBSCRIBE:
            problems.add(
                "unsubscribe identifies the user by phone or email only",
                rule=name,
                where="user.client_user_id",
            )
            continue
        n = node(raw, f"user.{key}")
        if n is not None:
            user.append((key, n))
    custom: list[tuple[str, Node]] = []
    if spec.user.custom_identifiers and api is Endpoint.UNSUBSCRIBE:
        problems.add(
            "unsubscribe identifies the user by phone or email only",
            rule=name,
            where="user.custom_identifiers",
        )
    elif spec.user.custom_identifiers and api is Endpoint.PRIVACY_DELETE:
        problems.add(
            "privacy.delete identifies the person by phone or email, else client_user_id",
            rule=name,
            where="user.custom_identifiers",
        )
    else:
        for ident, raw in spec.user.custom_identifiers.items():
            n = node(raw, f"user.custom_identifiers.{ident}")
            if n is not None:
                custom.append((str(ident), n))
    keys = {k for k, _ in user}
    if api in SUBSCRIBER_APIS:
        if not keys & {"phone", "email"}:
            problems.add(
                f"{api.value} needs user.phone (SMS) or user.email (email) mapped", rule=name, where="user"
            )
    elif not keys and not spec.user.custom_identifiers:
        problems.add(
            "map at least one of user.phone, user.email, user.client_user_id, user.custom_identifiers",
            rule=name,
            where="user",
        )

    # --- items
    items: ItemsPlan | None = None
    if api in ECOMMERCE:
        if spec.items is None:
            problems.add(
                f"{api.value} needs an items: section (from, product_id, variant_id, price)", rule=name
            )
        else:
            items = _compile_items(spec, problems, node)
    elif spec.items is not None:
        problems.add(f"items: only eCommerce calls take items, not {api.value}", rule=name, where="items")

    # --- fields
    allowed = FIELDS[api]
    fields: list[tuple[str, Node]] = []
    for field_name, raw in spec.fields.items():
        key = str(field_name)
        if key in MOVED:
            problems.add(f"write this in {MOVED[key]}, not in fields", rule=name, where=f"fields.{key}")
            continue
        if key not in allowed:
            hint = difflib.get_close_matches(key, list(allowed), n=1)
            problems.add(
                f"{api.value} has no field {key!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" (fields: {', '.join(allowed) or 'none: the identifiers come from user:'})",
                rule=name,
                where=f"fields.{key}",
            )
            continue
        n = node(raw, f"fields.{key}")
        if n is not None:
            fields.append((key, n))
    if api is Endpoint.CUSTOM_EVENT and "type" not in spec.fields:
        problems.add(
            "custom_event needs fields.type (the event name, e.g. {literal: Order Shipped})", rule=name
        )
    if api is Endpoint.CUSTOM_ATTRIBUTES and "properties" not in spec.fields:
        problems.add("custom_attributes needs fields.properties (the attributes to set)", rule=name)
    if (
        api is Endpoint.SUBSCRIBE
        and "signUpSourceId" not in spec.fields
        and not ({"locale", "subscriptionType"} <= set(spec.fields))
    ):
        problems.add(
            "subscribe needs fields.signUpSourceId, or both fields.locale and fields.subscriptionType",
            rule=name,
        )

    check_identity_rule(spec, problems)  # identity, privacy.delete: what their user: needs (no-op otherwise)

    # --- external event id
    external_event_id: Node | None = None
    if spec.external_event_id is not None:
        if api is not Endpoint.CUSTOM_EVENT:
            problems.add(f"only custom_event takes an external_event_id, not {api.value}", rule=name)
        else:
            external_event_id = node(spec.external_event_id, "external_event_id")

    # A rule with problems is still returned (with the parts that compiled) so the schema checks can report
    # everything in one pass; the table is not built when there are problems.
    return Rule(
        name=name,
        index=index,
        topics=tuple(spec.topics),
        api=api,
        when=when,
        user=tuple(user),
        custom_identifiers=tuple(custom),
        items=items,
        fields=tuple(fields),
        external_event_id=external_event_id,
        max_age_s=spec.max_age,
    )


def _compile_items(spec: RuleSpec, problems: Problems, node: Any) -> ItemsPlan | None:
    assert spec.items is not None
    try:
        source = Expr(spec.items.from_)
    except ExpressionError as exc:
        problems.add(str(exc), rule=spec.name, where="items.from")
        return None
    fields: list[tuple[str, Node]] = []
    price: Node | None = None
    currency: Node | None = None
    for key, (attentive_key, _target) in ITEM_FIELDS.items():
        raw = getattr(spec.items, key)
        if raw is None:
            continue
        n = node(raw, f"items.{key}")
        if n is None:
            continue
        if key == "price":
            price = n
        elif key == "currency":
            currency = n
        else:
            fields.append((attentive_key, n))
    if price is None:
        return None
    return ItemsPlan(source=source, fields=tuple(fields), price=price, currency=currency)
