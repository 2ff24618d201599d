"""Loading the rule table: shape errors, compile errors and required fields, each named with file and rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.attentive.endpoints import Endpoint
from connector.attentive.identity import FLAT_USER_APIS, flat_user_fields
from connector.attentive.spec import load_spec
from connector.errors import ConfigError
from connector.formats import parse_duration
from connector.rules.router import Router, load_topic_schemas
from connector.rules.table import check_rule_table, load_rule_table
from connector.rules.targets import FIELDS, ITEM_FIELDS
from tests.unit.avro_rules_support import SHIPPED_RULES, config_for

GOOD = """
rules:
  - name: shipped
    topics: [orders]
    when: "kind == 'ORDER_SHIPPED'"
    api: custom_event
    user: {phone: customer.phone}
    fields:
      type: {literal: Order Shipped}
"""


def problems(tmp_path: Path, rules: str) -> list[str]:
    config = config_for(tmp_path, rules)
    table, found = check_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    assert (table is None) == bool(found)
    return [line.split(": ", 1)[1] for line in found]  # drop the file path (tmp) for readability


def test_shipped_rule_table_loads(tmp_path: Path) -> None:
    config = config_for(tmp_path, SHIPPED_RULES)
    table = load_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    assert [r.name for r in table.for_topic("orders")][:3] == [
        "product-viewed",
        "added-to-cart",
        "order-placed",
    ]
    assert {r.api for r in table.rules} == set(Endpoint)  # every Attentive call is used by the shipped table
    assert all(r.index == i for i, r in enumerate(table.rules))
    assert table.for_topic("nope") == ()


def test_a_broken_table_stops_start_up_with_every_problem(tmp_path: Path) -> None:
    config = config_for(
        tmp_path,
        """
        rules:
          - name: one
            topics: [orders]
            api: custom_event
            user: {phone: customer.phon}
            fields: {type: {literal: X}}
          - name: two
            topics: [orders]
            api: custom_event
            user: {phone: customer.phone}
        """,
    )
    with pytest.raises(ConfigError) as err:
        Router.from_config(config)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{config.resolve(config.rules_file)}: rule 'one': user.phone: ")
    assert lines[1].endswith(
        "rule 'two': custom_event needs fields.type (the event name, e.g. {literal: Order Shipped})"
    )


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            GOOD.replace("    when:", "    whenn:"),
            [
                "rule 'shipped': whenn: unknown key (allowed here: name, topics, when, api, user, items, fields, "
                "external_event_id, max_age); did you mean 'when'?"
            ],
        ),
        (
            GOOD.replace(
                "user: {phone: customer.phone}", "user: {phone: customer.phone, mobile: customer.phone}"
            ),
            [
                "rule 'shipped': user.mobile: unknown key (allowed here: phone, email, client_user_id, shopify_id, "
                "klaviyo_id, custom_identifiers)"
            ],
        ),
        (
            GOOD.replace("api: custom_event", "api: custom_events"),
            [
                "rule 'shipped': api: unknown api; use one of: ecommerce.product_view, ecommerce.add_to_cart, "
                "ecommerce.purchase, custom_event, subscribe, unsubscribe, custom_attributes, identity, "
                "privacy.delete"
            ],
        ),
        (GOOD.replace("    api: custom_event\n", ""), ["rule 'shipped': api: required key is missing"]),
        (
            GOOD.replace("name: shipped", "name: 'bad name!'"),
            [
                "rule 'bad name!': name: Value error, a rule name is 1-64 characters: letters, digits and _ . : - "
                "(it is used as a metric label)"
            ],
        ),
        (
            GOOD.replace("topics: [orders]", "topics: [order]"),
            [
                "rule 'shipped': topics: topic 'order' is not configured (configured topics: loyalty, orders, privacy, signups)"
            ],
        ),
        (
            GOOD.replace("topics: [orders]", "topics: []"),
            ["rule 'shipped': topics: List should have at least 1 item after validation, not 0"],
        ),
        (
            GOOD.replace("kind == 'ORDER_SHIPPED'", "kind = 'ORDER_SHIPPED'"),
            [
                "rule 'shipped': when: invalid JMESPath \"kind = 'ORDER_SHIPPED'\": Unknown token '=' at column 6 "
                "(JMESPath compares with ==)"
            ],
        ),
        (
            GOOD.replace("type: {literal: Order Shipped}", "type: Order Shipped"),
            [
                "rule 'shipped': fields.type: invalid JMESPath 'Order Shipped': Unexpected token: Shipped at column 7 "
                "(to send this text as is, write {literal: ...})"
            ],
        ),
        (
            GOOD.replace(
                "type: {literal: Order Shipped}",
                "type: {literal: Order Shipped}\n      occuredAt: occurred_at",
            ),
            [
                "rule 'shipped': fields.occuredAt: custom_event has no field 'occuredAt'; did you mean 'occurredAt'? "
                "(fields: type, properties, occurredAt)"
            ],
        ),
        (
            GOOD.replace(
                "type: {literal: Order Shipped}", "type: {literal: X}\n      externalEventId: event_id"
            ),
            [
                "rule 'shipped': fields.externalEventId: write this in the rule's external_event_id: key, not in fields"
            ],
        ),
        (
            GOOD + "    max_age: soon\n",
            [
                "rule 'shipped': max_age: Value error, 'soon' is not a duration; write e.g. 12h, 30m, 90s or 1h30m"
            ],
        ),
        (GOOD + GOOD.replace("rules:\n", ""), ["rule 'shipped': duplicate rule name (names must be unique)"]),
        ("rules: []\n", ["rules: List should have at least 1 item after validation, not 0"]),
        ("- a\n- b\n", ["the rule table must be a mapping with a 'rules:' list"]),
        ("rules: [\n", None),  # YAML error, checked below
        (GOOD + "extra: 1\n", ["extra: unknown key (allowed here: rules, x-… (YAML anchors))"]),
    ],
)
def test_shape_and_compile_errors(tmp_path: Path, rules: str, expected: list[str] | None) -> None:
    found = problems(tmp_path, rules)
    if expected is None:
        assert len(found) == 1 and found[0].startswith("not valid YAML")
    else:
        assert found == expected


@pytest.mark.parametrize(
    ("api", "body", "expected"),
    [
        (
            "custom_event",
            "user: {phone: customer.phone}",
            "custom_event needs fields.type (the event name, e.g. {literal: Order Shipped})",
        ),
        (
            "custom_attributes",
            "user: {phone: customer.phone}",
            "custom_attributes needs fields.properties (the attributes to set)",
        ),
        (
            "subscribe",
            "user: {phone: customer.phone}",
            "subscribe needs fields.signUpSourceId, or both fields.locale and fields.subscriptionType",
        ),
        (
            "subscribe",
            "user: {phone: customer.phone}\n    fields: {locale: {literal: en-US}}",
            "subscribe needs fields.signUpSourceId, or both fields.locale and fields.subscriptionType",
        ),
        (
            "subscribe",
            "user: {client_user_id: customer.id}\n    fields: {signUpSourceId: {literal: '1'}}",
            "user: subscribe needs user.phone (SMS) or user.email (email) mapped",
        ),
        (
            "unsubscribe",
            "user: {phone: customer.phone, client_user_id: customer.id}",
            "user.client_user_id: unsubscribe identifies the user by phone or email only",
        ),
        (
            "unsubscribe",
            "user: {email: customer.email, custom_identifiers: {x: customer.id}}",
            "user.custom_identifiers: unsubscribe identifies the user by phone or email only",
        ),
        (
            "custom_event",
            "user: {}\n    fields: {type: {literal: X}}",
            "user: map at least one of user.phone, user.email, user.client_user_id, user.custom_identifiers",
        ),
        (
            "custom_event",
            "user: {phone: customer.phone, shopify_id: customer.id}\n    fields: {type: {literal: X}}",
            "user.shopify_id: shopify_id is only accepted by subscribe and identity",
        ),
        (
            "ecommerce.purchase",
            "user: {phone: customer.phone}",
            "ecommerce.purchase needs an items: section (from, product_id, variant_id, price)",
        ),
        (
            "custom_event",
            "user: {phone: customer.phone}\n    fields: {type: {literal: X}}\n    items: {from: items, product_id: a, "
            "variant_id: b, price: c}",
            "items: items: only eCommerce calls take items, not custom_event",
        ),
        (
            "ecommerce.purchase",
            "user: {phone: customer.phone}\n    items: {from: items, product_id: product_id}",
            "items.variant_id: required key is missing",
        ),
        (
            "subscribe",
            "user: {phone: customer.phone}\n    fields: {signUpSourceId: {literal: '1'}}\n"
            "    external_event_id: event_id",
            "only custom_event takes an external_event_id, not subscribe",
        ),
    ],
)
def test_required_attentive_fields_are_mapped(tmp_path: Path, api: str, body: str, expected: str) -> None:
    rules = f"rules:\n  - name: r\n    topics: [orders]\n    api: {api}\n    {body}\n"
    found = problems(tmp_path, rules)
    assert f"rule 'r': {expected}" in found, found


def test_yaml_anchors_under_x_keys_are_allowed(tmp_path: Path) -> None:
    rules = """
    x-who: &who {phone: customer.phone, email: customer.email}
    rules:
      - name: a
        topics: orders
        api: custom_event
        user: *who
        fields: {type: {literal: A}}
    """
    assert problems(tmp_path, rules) == []


def test_unreadable_rule_file(tmp_path: Path) -> None:
    config = config_for(tmp_path, tmp_path / "missing.yaml")
    _, found = check_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    assert found == [f"{tmp_path / 'missing.yaml'}: cannot read the rule table: No such file or directory"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12h", 43200),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        (45, 45),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "h", "12x", "1h and more", "0s", -5, True])
def test_bad_durations(text: str | int | bool) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked in the table test above
        parse_duration(text)


def test_targets_match_the_vendored_spec() -> None:
    """Every field name the rule checker knows for an endpoint exists in Attentive's spec for it."""
    schemas = load_spec()["components"]["schemas"]

    def props(name: str) -> dict[str, object]:
        node = schemas[name]
        out: dict[str, object] = dict(node.get("properties", {}))
        for part in node.get("allOf", []):
            ref = part.get("$ref", "")
            out.update(props(ref.rsplit("/", 1)[-1]) if ref else part.get("properties", {}))
        return out

    for endpoint, fields in FIELDS.items():
        spec_fields = props(endpoint.schema_name)
        for name in fields:
            assert name in spec_fields, (endpoint, name)
        if endpoint in FLAT_USER_APIS:  # the person's identifiers are top-level fields
            user: dict[str, Any] = {
                "phone": "+13115552368",
                "email": "a@b.co",
                "externalIdentifiers": {"clientUserId": "c"},
            }
            if endpoint is Endpoint.IDENTITY:
                user["externalIdentifiers"].update(shopifyId="s", klaviyoId="k", customIdentifiers=[])
            assert set(flat_user_fields(endpoint, user)) <= set(spec_fields), endpoint
        else:
            assert "user" in spec_fields
    product = props("ProductRequest")
    for attentive, _ in ITEM_FIELDS.values():
        assert attentive in product or attentive == "currency", attentive
    assert "currency" in props("Price")
    assert json.dumps(sorted(props("UnsubscribeSubscriptionsRequestDto")))
