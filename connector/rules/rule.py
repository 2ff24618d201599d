"""A compiled rule: decides whether a record matches and builds the Attentive request data from it.

The data is in Attentive's own JSON shape and goes through
:func:`connector.attentive.models.build_body`, which validates it, normalises phones and formats timestamps.
Here only the rule's own conventions are applied: identifiers that are numbers become text, ``None`` values are
left out (Attentive: "avoid sending null values or empty strings"), custom-event and custom-attribute
``properties`` become JSON-friendly (timestamps as RFC 3339, dates as ``YYYY-MM-DD``; decimals stay exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.attentive.identity import FLAT_USER_APIS, flat_user_fields
from connector.avro.jsonrecords import jsonable
from connector.errors import Reason, RoutingError
from connector.rules.expressions import Expr, getter, is_true
from connector.rules.values import Node, evaluator

_ID_KEYS = frozenset({"orderId", "signUpSourceId"})


def as_id(value: Any) -> Any:
    """Identifiers go to Attentive as text; an integer id (``12345``) becomes ``"12345"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class ItemsPlan:
    source: Expr
    fields: tuple[tuple[str, Node], ...]  # Attentive item key -> value (price/currency separate)
    price: Node
    currency: Node | None


Fn = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the table, compiled. ``index`` is its position in the file (rule order = fan-out order).

    The value nodes are kept for the static checks; the hot path uses the evaluators made from them once.
    """

    name: str
    index: int
    topics: tuple[str, ...]
    api: Endpoint
    when: Expr | None
    user: tuple[tuple[str, Node], ...]  # rule user key (phone, email, client_user_id, ...) -> value
    custom_identifiers: tuple[tuple[str, Node], ...]
    items: ItemsPlan | None
    fields: tuple[tuple[str, Node], ...]  # Attentive top-level key -> value
    external_event_id: Node | None
    max_age_s: float | None
    guard: tuple[tuple[str, ...], str, Fn] | None = field(init=False)  # (path, text, getter), see Expr.guard
    _fields: tuple[tuple[str, Fn, int], ...] = field(init=False, repr=False)
    _user: tuple[tuple[str, Fn], ...] = field(init=False, repr=False)
    _custom: tuple[tuple[str, Fn], ...] = field(init=False, repr=False)
    _items: tuple[Fn, tuple[tuple[str, Fn, bool], ...], Fn, Fn | None] | None = field(init=False, repr=False)
    _event_id: Fn | None = field(init=False, repr=False)
    _when: Fn | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        guard = self.when.guard() if self.when is not None else None
        put("guard", None if guard is None else (guard[0], guard[1], getter(guard[0])))
        put("_when", self.when.search if self.when is not None else None)
        # conversion: 0 = as is (occurredAt: build_body formats it), 1 = identifier, 2 = JSON-friendly
        put(
            "_fields",
            tuple(
                (key, evaluator(node), 0 if key == "occurredAt" else 1 if key in _ID_KEYS else 2)
                for key, node in self.fields
            ),
        )
        put("_user", tuple((key, evaluator(node)) for key, node in self.user))
        put("_custom", tuple((name, evaluator(node)) for name, node in self.custom_identifiers))
        plan = self.items
        put(
            "_items",
            None
            if plan is None
            else (
                plan.source.search,
                tuple((k, evaluator(n), k in ("productId", "productVariantId")) for k, n in plan.fields),
                evaluator(plan.price),
                evaluator(plan.currency) if plan.currency is not None else None,
            ),
        )
        put("_event_id", evaluator(self.external_event_id) if self.external_event_id is not None else None)

    def matches(self, record: Any) -> bool:
        return self._when is None or is_true(self._when(record))

    def build_data(self, record: Any) -> dict[str, Any]:
        """The request data for ``record`` (before :func:`build_body`). Raises :class:`RoutingError`."""
        data: dict[str, Any] = {}
        for key, fn, conversion in self._fields:
            value = fn(record)
            if value is None:
                continue
            if conversion == 1:
                value = as_id(value)
            elif conversion == 2:
                value = jsonable(value)
            data[key] = value
        self._add_user(record, data)
        if self._items is not None:
            data["items"] = self._build_items(record, self._items)
        if self._event_id is not None:
            event_id = as_id(self._event_id(record))
            if event_id is not None:
                data["externalEventId"] = event_id
        return data

    def _add_user(self, record: Any, data: dict[str, Any]) -> None:
        found: dict[str, Any] = {}
        for key, fn in self._user:
            value = fn(record)
            if value is not None and value != "":
                found[key] = as_id(value)
        custom = []
        for name, fn in self._custom:
            value = fn(record)
            if value is not None and value != "":
                custom.append({"name": name, "value": as_id(value)})
        user: dict[str, Any] = {k: found[k] for k in ("phone", "email") if k in found}
        external: dict[str, Any] = {}
        if "client_user_id" in found:
            external["clientUserId"] = found["client_user_id"]
        if "shopify_id" in found:
            external["shopifyId"] = found["shopify_id"]
        if "klaviyo_id" in found:
            external["klaviyoId"] = found["klaviyo_id"]
        if custom:
            external["customIdentifiers"] = custom
        if self.api in (Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE):
            if not user:
                raise RoutingError(
                    f"no phone or email for {self.api.value}: the mapped "
                    f"{' and '.join(k for k, _ in self.user if k in ('phone', 'email'))} "
                    "are empty in this record",
                    rule=self.name,
                    reason=Reason.NO_IDENTIFIER,
                )
            if external and self.api is Endpoint.SUBSCRIBE:
                data["externalIdentifiers"] = external
        else:
            if external:
                user["externalIdentifiers"] = external
            if not user:
                mapped = [k for k, _ in self.user] + [
                    f"custom_identifiers.{n}" for n, _ in self.custom_identifiers
                ]
                raise RoutingError(
                    f"no user identifier: the mapped {', '.join(mapped)} are all empty in this record",
                    rule=self.name,
                    reason=Reason.NO_IDENTIFIER,
                )
        if self.api in FLAT_USER_APIS:  # identity, privacy.delete take the identifiers as top-level fields
            data.update(flat_user_fields(self.api, user))
            return
        data["user"] = user

    def _build_items(
        self, record: Any, plan: tuple[Fn, tuple[tuple[str, Fn, bool], ...], Fn, Fn | None]
    ) -> list[dict[str, Any]]:
        source_fn, fields, price_fn, currency_fn = plan
        source = source_fn(record)
        if source is None:
            source = []
        if not isinstance(source, list):
            assert self.items is not None
            raise RoutingError(
                f"items.from {self.items.source.source!r} is not a list in this record",
                rule=self.name,
                reason=Reason.ITEMS,
            )
        out = []
        for element in source:
            item: dict[str, Any] = {}
            for key, fn, is_id in fields:
                value = fn(element)
                if value is not None:
                    item[key] = as_id(value) if is_id else value
            price = price_fn(element)
            if price is not None:
                entry = {"value": price}
                currency = currency_fn(element) if currency_fn is not None else None
                if currency is not None:
                    entry["currency"] = currency
                item["price"] = [entry]
            out.append(item)
        return out

    def event_time_ms(self, data: dict[str, Any], kafka_timestamp_ms: int | None) -> float | None:
        """When the event happened, for ``max_age``: the mapped ``occurredAt``, else the Kafka timestamp."""
        occurred = data.get("occurredAt")
        # Dates and naive datetimes (Avro's local-timestamp types) are UTC, never the host's time zone.
        if isinstance(occurred, datetime):
            aware = occurred if occurred.tzinfo is not None else occurred.replace(tzinfo=UTC)
            return aware.timestamp() * 1000.0
        if isinstance(occurred, date):
            return datetime(occurred.year, occurred.month, occurred.day, tzinfo=UTC).timestamp() * 1000.0
        if isinstance(occurred, int | float) and not isinstance(occurred, bool):
            return float(occurred)
        if isinstance(occurred, str):
            try:
                parsed = datetime.fromisoformat(occurred)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed.timestamp() * 1000.0
        return (
            float(kafka_timestamp_ms) if kafka_timestamp_ms is not None and kafka_timestamp_ms > 0 else None
        )
