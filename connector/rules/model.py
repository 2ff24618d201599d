"""The rule table as written in ``rules.yaml`` (pydantic models: shape, names, allowed keys).

A rule::

    - name: order-placed                 # unique; used in metrics, logs and DLQ headers
      topics: [orders]
      when: "kind == 'ORDER_PLACED'"     # JMESPath predicate over the decoded record; absent = always
      api: ecommerce.purchase            # the Attentive call (see connector.attentive.endpoints.Endpoint)
      max_age: 12h                       # optional: older records are skipped as "stale"
      user:                              # who: phone, email, client_user_id, custom_identifiers
        phone: customer.phone            #      (+ shopify_id, klaviyo_id for subscribe)
        email: customer.email
        client_user_id: customer.id
      items:                             # eCommerce only: one entry per element of `from`
        from: items
        product_id: product_id           # item expressions are relative to the item
        variant_id: variant_id
        price: unit_price.amount
        currency: unit_price.currency
      fields:                            # other request fields, by Attentive's JSON name
        orderId: order_id
        occurredAt: occurred_at
      external_event_id: event_id        # custom_event only; default: derived from topic/partition/offset

Values use the syntax in :mod:`connector.rules.values` (expression / ``{literal: }`` / ``{template: }`` /
nested mapping). The semantic checks (fields exist in the Avro schema, types fit Attentive, required fields
mapped) live in :mod:`connector.rules.check`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.attentive.endpoints import Endpoint
from connector.formats import parse_duration

RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class UserSpec(_Strict):
    """Who the call is about. Each value is a value mapping (usually an expression)."""

    phone: Any = None
    email: Any = None
    client_user_id: Any = None
    shopify_id: Any = None
    klaviyo_id: Any = None
    custom_identifiers: dict[str, Any] = Field(default_factory=dict)


class ItemsSpec(_Strict):
    """eCommerce items: ``from`` is an expression giving a list; the rest are evaluated on each element."""

    from_: str = Field(alias="from")
    product_id: Any
    variant_id: Any
    price: Any
    currency: Any = None
    name: Any = None
    quantity: Any = None
    image_url: Any = None
    product_url: Any = None


class RuleSpec(_Strict):
    name: str
    topics: list[str] = Field(min_length=1)
    when: str | None = None
    api: Endpoint
    user: UserSpec
    items: ItemsSpec | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    external_event_id: Any = None
    max_age: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not RULE_NAME.match(v):
            raise ValueError(
                "a rule name is 1-64 characters: letters, digits and _ . : - (it is used as a metric label)"
            )
        return v

    @field_validator("topics", mode="before")
    @classmethod
    def _topics(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("max_age", mode="before")
    @classmethod
    def _max_age(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class RuleTableSpec(_Strict):
    rules: list[RuleSpec] = Field(min_length=1)
