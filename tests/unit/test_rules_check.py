"""Static checks of rules against the topic's Avro schema: field paths, types Attentive expects, enums."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.rules.router import load_topic_schemas
from connector.rules.table import check_rule_table
from tests.unit.avro_rules_support import config_for


def problems(
    tmp_path: Path, rule_body: str, *, api: str = "custom_event", topic: str = "orders"
) -> list[str]:
    rules = f"rules:\n  - name: r\n    topics: [{topic}]\n    api: {api}\n{rule_body}"
    config = config_for(tmp_path, rules)
    _, found = check_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    return [line.split(": ", 1)[1] for line in found]


EVENT = """    user: {phone: customer.phone}
    fields:
      type: {literal: X}
"""


def test_misspelled_field_names_the_schema_and_the_fix(tmp_path: Path) -> None:
    found = problems(tmp_path, EVENT.replace("customer.phone", "customer.phon"))
    assert found == [
        "rule 'r': user.phone: 'customer.phon': field 'phon' is not in record Customer of orders.avsc "
        "(fields: id, phone, email); did you mean 'phone'?"
    ]


def test_quoted_identifier_instead_of_text(tmp_path: Path) -> None:
    found = problems(tmp_path, '    when: kind == "ORDER_SHIPPED"\n' + EVENT)
    assert len(found) == 1
    assert found[0].startswith(
        "rule 'r': when: 'kind == \"ORDER_SHIPPED\"': field 'ORDER_SHIPPED' is not in record"
    )
    assert found[0].endswith(
        "to compare with the text ORDER_SHIPPED, quote it with single quotes: 'ORDER_SHIPPED'"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("kind.name", "'kind.name': enum OrderEventKind has no field 'name'"),
        ("items.name", "'items.name': array<record LineItem> has no field 'name'"),
        ("items[0].nam", "field 'nam' is not in record LineItem of orders.avsc"),
        ("items[].unit_price.amout", "field 'amout' is not in record Money of orders.avsc"),
        ("items[?quantiy > `1`].name", "field 'quantiy' is not in record LineItem"),
        ("shipment.carier", "field 'carier' is not in record Shipment of orders.avsc"),
        ("customer[0]", "'customer[0]': record Customer cannot be indexed (not a list)"),
        ("customer[].id", "'customer[].id': record Customer is not a list, cannot project over it"),
        ("totals.total.amount || refund_amount.amont", "field 'amont' is not in record Money"),
        ("sort_by(items, &nme)[0].name", "field 'nme' is not in record LineItem"),
        ("map(&nme, items)", "field 'nme' is not in record LineItem"),
        ("lenght(items)", "'lenght(items)': unknown function lenght(); did you mean length()?"),
        ("{a: order_idd}", "field 'order_idd' is not in record OrderEvent"),
        ("[order_id, customer.idd]", "field 'idd' is not in record Customer"),
        ("order_id | customer", "'order_id | customer': string has no field 'customer'"),
    ],
)
def test_paths_are_walked_through_every_kind_of_expression(tmp_path: Path, source: str, message: str) -> None:
    found = problems(tmp_path, EVENT + f'      properties:\n        x: "{source}"\n')
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(
    "source",
    [
        "items[].unit_price.amount",
        "sum(items[].quantity)",
        "items[*].name",
        "shipment.*",
        "merge(totals, `{}`)",
        "not_null(order_id, customer.id)",
        "to_string(occurred_at)",
        "@",
        "max_by(items, &quantity).name",
        "items[-1].product_url",
        "items[0:2].name",
        '`{"a": 1}`.a',
        "keys(customer)",
    ],
)
def test_valid_expressions_pass(tmp_path: Path, source: str) -> None:
    assert problems(tmp_path, EVENT + f"      properties:\n        x: '{source}'\n") == []


ITEMS = """    user: {email: customer.email}
    items:
      from: items
      product_id: product_id
      variant_id: variant_id
      price: unit_price.amount
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("price: unit_price.amount", "price: name"),
            "items.price: 'name' is string in orders.avsc; Attentive expects a number (decimal, int, long, float or "
            "double)",
        ),
        (
            ("price: unit_price.amount", "price: unit_price"),
            "items.price: 'unit_price' is record Money in orders.avsc; Attentive expects a number",
        ),
        (
            ("price: unit_price.amount", "price: {literal: '19.99'}"),
            "items.price: the literal is string; Attentive expects a number",
        ),
        (
            ("price: unit_price.amount", "price: unit_price.amount\n      quantity: name"),
            "items.quantity: 'name' is string in orders.avsc; Attentive expects a whole number (int or long)",
        ),
        (
            ("price: unit_price.amount", "price: unit_price.amount\n      currency: unit_price"),
            "items.currency: 'unit_price' is record Money in orders.avsc; Attentive expects an ISO 4217",
        ),
        (("from: items", "from: customer"), "items.from: 'customer' is record Customer, not a list"),
        (
            ("product_id: product_id", "product_id: unit_price"),
            "items.product_id: 'unit_price' is record Money in orders.avsc; Attentive expects an identifier",
        ),
        (
            ("user: {email: customer.email}", "user: {email: items}"),
            "user.email: 'items' is array<record LineItem> in orders.avsc; Attentive expects an email address",
        ),
    ],
)
def test_item_and_user_types(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    found = problems(tmp_path, ITEMS.replace(*change), api="ecommerce.purchase")
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (
            "        Interests: interests\n",
            "fields.properties.Interests: 'interests' is array<string> in signups.avsc; Attentive expects a single "
            "value (text, number, boolean, date)",
        ),
        (
            "        Profile: customer\n",
            "'customer' is record Customer in signups.avsc; Attentive expects a single value",
        ),
        ("        Tags: {literal: [a, b]}\n", "the literal is array; Attentive expects a single value"),
    ],
)
def test_custom_attribute_values_must_be_scalars(tmp_path: Path, properties: str, message: str) -> None:
    body = "    user: {email: customer.email}\n    fields:\n      properties:\n" + properties
    found = problems(tmp_path, body, api="custom_attributes", topic="signups")
    assert len(found) == 1 and message in found[0], found


def test_custom_attributes_from_a_whole_record_or_map(tmp_path: Path) -> None:
    body = "    user: {email: customer.email}\n    fields:\n      properties: {properties}\n"
    assert (
        problems(
            tmp_path, body.replace("{properties}", "attributes"), api="custom_attributes", topic="signups"
        )
        == []
    )
    assert (
        problems(
            tmp_path,
            body.replace("{properties}", "'merge(attributes, {First: first_name})'"),
            api="custom_attributes",
            topic="signups",
        )
        == []
    )
    found = problems(
        tmp_path, body.replace("{properties}", "consent"), api="custom_attributes", topic="signups"
    )
    assert found == []  # a record of scalars is fine
    found = problems(
        tmp_path, body.replace("{properties}", "'{a: interests}'"), api="custom_attributes", topic="signups"
    )
    assert found == [
        "rule 'r': fields.properties: custom attribute 'a' would be array<string>; attribute values must be single "
        "values (text, number, boolean, date)"
    ]
    found = problems(
        tmp_path, body.replace("{properties}", "first_name"), api="custom_attributes", topic="signups"
    )
    assert "Attentive expects an object of attribute values" in found[0]


SUB = """    user: {phone: customer.phone}
    fields:
      locale: locale
      subscriptionType: consent.type
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("consent.type", "consent.status"),
            "fields.subscriptionType: enum ConsentStatus has symbols Attentive does not accept: OPT_IN, OPT_OUT "
            "(accepted: MARKETING, TRANSACTIONAL)",
        ),
        (
            ("consent.type", "{literal: MARKETNG}"),
            "fields.subscriptionType: 'MARKETNG' is not accepted; use one of MARKETING, TRANSACTIONAL",
        ),
        (
            ("locale: locale", "locale: interests"),
            "fields.locale: 'interests' is array<string> in signups.avsc; Attentive expects a locale",
        ),
        (
            ("locale: locale", "locale: {language: locale, county: locale}"),
            "fields.locale.county: unknown key (Attentive expects language, country); did you mean 'country'?",
        ),
        (
            ("subscriptionType: consent.type", "subscriptionType: consent.type\n      singleOptIn: channel"),
            "fields.singleOptIn: 'channel' is enum SignupChannel in signups.avsc; Attentive expects true or false",
        ),
        (("subscriptionType: consent.type", "subscriptionType: {template: 'x {{ channel }}'}"), None),
        (
            (
                "subscriptionType: consent.type",
                "subscriptionType: consent.type\n      singleOptIn: {template: x}",
            ),
            "fields.singleOptIn: a template makes text; Attentive expects true or false here",
        ),
        (
            ("subscriptionType: consent.type", "subscriptionType: [consent.type]"),
            "fields.subscriptionType: a list is not accepted here; Attentive expects a subscription type",
        ),
        (
            ("subscriptionType: consent.type", "subscriptionType: {a: consent.type}"),
            "fields.subscriptionType: a mapping makes an object; Attentive expects a subscription type here",
        ),
    ],
)
def test_subscribe_field_types(tmp_path: Path, change: tuple[str, str], message: str | None) -> None:
    found = problems(tmp_path, SUB.replace(*change), api="subscribe", topic="signups")
    if message is None:
        assert found == []
    else:
        assert len(found) == 1 and message in found[0], found


def test_unsubscribe_nested_lists_and_literals(tmp_path: Path) -> None:
    body = """    user: {email: customer.email}
    fields:
      subscriptions:
        - {type: consent.type, channel: {literal: EMAIL}}
        - {type: {literal: CHECKOUT_ABANDONED}, channel: {literal: SMS}}
      notification: {literal: {language: en-GB, disabled: true}}
"""
    found = problems(tmp_path, body, api="unsubscribe", topic="signups")
    assert found == [
        "rule 'r': fields.subscriptions[1].channel: 'SMS' is not accepted; use one of TEXT, EMAIL",
        "rule 'r': fields.notification.language: 'en-GB' is not accepted; use one of en-US, fr-CA",
    ]


def test_purchase_sales_channel_enum_matches_attentive(tmp_path: Path) -> None:
    body = ITEMS + "    fields:\n      salesChannel: {channelType: channel}\n"
    assert problems(tmp_path, body, api="ecommerce.purchase") == []
    bad = ITEMS + "    fields:\n      salesChannel: {channelType: kind}\n"
    found = problems(tmp_path, bad, api="ecommerce.purchase")
    assert (
        len(found) == 1
        and "enum OrderEventKind has symbols Attentive does not accept: PRODUCT_VIEWED" in found[0]
    )


def test_occurred_at_and_ids_accept_their_natural_types(tmp_path: Path) -> None:
    body = EVENT + "      occurredAt: occurred_at\n    external_event_id: event_id\n"
    assert problems(tmp_path, body) == []
    found = problems(tmp_path, EVENT + "      occurredAt: totals\n")
    assert "Attentive expects a timestamp (timestamp-millis, RFC 3339 text or epoch millis)" in found[0]
    found = problems(tmp_path, EVENT + "    external_event_id: items\n")
    assert "external_event_id: 'items' is array<record LineItem>" in found[0]
    # custom identifiers: numbers become text
    body = "    user: {custom_identifiers: {points: points_delta, who: customer}}\n    fields: {type: {literal: X}}\n"
    found = problems(tmp_path, body, topic="loyalty")
    assert found == [
        "rule 'r': user.custom_identifiers.who: 'customer' is record Customer in loyalty.avsc; Attentive expects an "
        "identifier (text or integer)"
    ]


def test_rule_on_several_topics_is_checked_against_each_schema(tmp_path: Path) -> None:
    rules = """rules:
  - name: r
    topics: [orders, signups]
    api: custom_event
    user: {phone: customer.phone}
    fields:
      type: {literal: X}
      properties: {o: order_id}
"""
    config = config_for(tmp_path, rules)
    _, found = check_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    assert len(found) == 1 and "field 'order_id' is not in record SignupEvent of signups.avsc" in found[0]
