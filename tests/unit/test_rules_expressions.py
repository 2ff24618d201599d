"""Rule expressions: the fast path gives exactly JMESPath's results; extra functions; decoded Avro values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import ExpressionError, NodeError
from connector.rules.expressions import OPTIONS, Expr, is_true
from connector.rules.values import TemplateNode, evaluator, parse_node

FAST = [
    "kind",
    "customer.phone",
    "a.b.c",
    "a.b.c.d",
    "@",
    "`true`",
    "'ORDER_PLACED'",
    "kind == 'ORDER_PLACED'",
    "'ORDER_PLACED' == kind",
    "kind != 'ORDER_PLACED'",
    "a == b",
    "a != b",
    "a == `1`",
    "a == `0`",
    "a == `true`",
    "a == `false`",
    "a == `null`",
    "kind == 'X' && a",
    "kind == 'X' || a.b",
    "!a",
    "!(a && b)",
    "a && b && c",
    "a || b || `0`",
    "!a == `false`",
    "!(kind == 'X')",
    "a[0]",
    "a[-1].b",
    "a[]",
    "a[].b",
    "a[*].b",
    "a[*]",
    "a[][]",
    "a.b[0].c",
    "a | b",
    "length(a)",
    "title(kind)",
    "join(', ', a)",
    "not_null(a, b, `1`)",
    "a > b",
    "a >= `1`",
    "a < 'b'",
    "length(a) <= `2`",
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, 1.0, 2.5]),
    st.sampled_from([Decimal("0"), Decimal("1"), Decimal("1.50")]),
    st.sampled_from(["", "X", "ORDER_PLACED", "a"]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=2),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d", "kind"]), children, max_size=3),
    ),
    max_leaves=8,
)
_records = st.dictionaries(st.sampled_from(["a", "b", "c", "kind", "customer"]), _values, max_size=5)
# The reference evaluates with the connector's function table (Decimal-aware), so both sides differ only in how
# they walk the tree.


@pytest.mark.parametrize("source", FAST)
def test_simple_expressions_take_the_fast_path(source: str) -> None:
    assert Expr(source).fast


def _outcome(fn: Any, record: Any) -> tuple[str, Any]:
    try:
        return "value", fn(record)
    except Exception as exc:  # noqa: BLE001 - the same failure is part of the equivalence
        return "raised", type(exc)


COMPILED = [(source, Expr(source)) for source in FAST]


@settings(max_examples=400, deadline=None)
@given(record=_records)
def test_fast_path_equals_jmespath(record: dict[str, Any]) -> None:
    for source, expr in COMPILED:
        reference = jmespath.compile(source)
        expected = _outcome(lambda r, ref=reference: ref.search(r, options=OPTIONS), record)
        got = _outcome(expr.search, record)
        assert got == expected and type(got[1]) is type(expected[1]), (source, record)


@pytest.mark.parametrize(
    ("source", "record", "expected"),
    [
        (
            "sum(items[].unit_price.amount)",
            {
                "items": [
                    {"unit_price": {"amount": Decimal("1.10")}},
                    {"unit_price": {"amount": Decimal("2.25")}},
                ]
            },
            Decimal("3.35"),
        ),
        ("max(items[].p)", {"items": [{"p": Decimal("3")}, {"p": Decimal("9.5")}]}, Decimal("9.5")),
        ("totals.total > `100`", {"totals": {"total": Decimal("100.01")}}, True),
        ("to_string(p)", {"p": Decimal("19.90")}, "19.90"),
        ("to_string(t)", {"t": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)}, "2025-01-02T03:04:05.000Z"),
        ("to_string(d)", {"d": date(2025, 1, 2)}, "2025-01-02"),
        ("to_string(n)", {"n": 5}, "5"),
        ("to_number(p)", {"p": Decimal("19.99")}, Decimal("19.99")),
        ("to_number(s)", {"s": "19.99"}, Decimal("19.99")),
        ("to_number(s)", {"s": "42"}, 42),
        ("to_number(s)", {"s": "NaN"}, None),
        ("to_number(s)", {"s": "abc"}, None),
        ("to_number(n)", {"n": 3}, 3),
        ("title(kind)", {"kind": "ORDER_SHIPPED"}, "Order Shipped"),
        ("lower(a)", {"a": "AbC"}, "abc"),
        ("upper(a)", {"a": "AbC"}, "ABC"),
        ("trim(a)", {"a": "  x "}, "x"),
        ("split(locale, '-')[1]", {"locale": "en-US"}, "US"),
        ("split(a, '')", {"a": "ab"}, ["a", "b"]),
        ("replace(a, '_', ' ')", {"a": "A_B"}, "A B"),
        ("join(', ', interests)", {"interests": ["yoga", "travel"]}, "yoga, travel"),
        ("length(items)", {"items": [1, 2, 3]}, 3),
        (
            "items[?quantity > `1`].name",
            {"items": [{"name": "a", "quantity": 2}, {"name": "b", "quantity": 1}]},
            ["a"],
        ),
    ],
)
def test_functions_on_decoded_values(source: str, record: dict[str, Any], expected: Any) -> None:
    assert Expr(source).search(record) == expected
    assert (
        jmespath.compile(source).search(record, options=OPTIONS) == expected
    )  # fast path or not, same answer


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a.[", r"invalid JMESPath 'a\.\[': Incomplete expression at column 4"),
        ("kind = 'x'", r"Unknown token '=' at column 6 \(JMESPath compares with ==\)"),
        ('kind == "X" &&', r"string literals use single quotes"),
    ],
)
def test_syntax_errors_say_where(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expr(source)


def test_guard_extraction() -> None:
    assert Expr("kind == 'ORDER_PLACED'").guard() == (("kind",), "ORDER_PLACED")
    assert Expr("'SMS' == channel && consent.status == 'OPT_IN' && x").guard() == (("channel",), "SMS")
    assert Expr("a.b == 'x' && c").guard() == (("a", "b"), "x")
    for no_guard in ("kind != 'X'", "a || kind == 'X'", "kind == `1`", "length(a) == 'x'", "kind"):
        assert Expr(no_guard).guard() is None
    assert Expr("a.b").field_path() == ("a", "b") and Expr("a[0]").field_path() is None


def test_jmespath_truthiness() -> None:
    falsy: list[Any] = ["", [], {}, None, False]
    assert [is_true(v) for v in falsy] == [False] * 5
    assert all(is_true(v) for v in (0, "x", [0], {"a": 1}, True, Decimal("0")))


def test_value_nodes() -> None:
    record = {
        "kind": "ORDER_SHIPPED",
        "n": 2,
        "s": None,
        "t": datetime(2025, 1, 2, tzinfo=UTC),
        "d": date(2025, 1, 3),
        "p": Decimal("1.5"),
        "ok": True,
        "l": [1, {"a": 2}],
    }
    assert evaluator(parse_node("kind", "x"))(record) == "ORDER_SHIPPED"
    assert evaluator(parse_node({"literal": "Order Shipped"}, "x"))(record) == "Order Shipped"
    assert evaluator(parse_node({"literal": {"a": [1]}}, "x"))(record) == {"a": [1]}
    assert evaluator(parse_node(5, "x"))(record) == 5 and evaluator(parse_node(False, "x"))(record) is False
    t = parse_node({"template": "{{ title(kind) }}: {{n}} at {{ t }} / {{d}} {{p}} {{ok}} {{l}}"}, "x")
    assert isinstance(t, TemplateNode)
    assert (
        evaluator(t)(record)
        == 'Order Shipped: 2 at 2025-01-02T00:00:00.000Z / 2025-01-03 1.5 true [1,{"a":2}]'
    )
    assert evaluator(parse_node({"template": "x {{ s }}"}, "x"))(record) is None  # a missing value is missing
    assert evaluator(parse_node({"template": "plain"}, "x"))(record) == "plain"
    nested = parse_node({"a": "n", "b": "s", "c": [{"literal": "L"}, "kind"]}, "x")
    assert evaluator(nested)(record) == {"a": 2, "c": ["L", "ORDER_SHIPPED"]}  # nulls left out
    assert nested.evaluate(record) == evaluator(nested)(record)
    assert [e.source for e in nested.expressions()] == ["n", "s", "kind"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty expression"),
        (None, r"empty value \(remove the key, or write \{literal: ...\}\)"),
        (
            "Order Shipped",
            r"invalid JMESPath 'Order Shipped'.*to send this text as is, write \{literal: ...\}",
        ),
        ({"literal": 1, "template": "x"}, "take exactly one key"),
        ({"template": 5}, "template must be text"),
        ({"template": "a {{ }} b"}, "empty placeholder"),
        ({"template": "a {{ kind "}, r"unbalanced \{\{ \}\}"),
        ({"template": "a {{ kind = 'x' }}"}, "in template"),
        ({}, "empty mapping"),
        (object(), "unsupported value of type object"),
    ],
)
def test_value_node_errors(raw: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message) as err:
        parse_node(raw, "fields.type")
    assert err.value.where.startswith("fields.type")


@pytest.mark.parametrize(
    "source", ["sort_by(a, &b)", "a[?b == `1`]", "{x: a}", "[a, b]", "a.*", "a[0:2]", "map(&b, a)"]
)
def test_other_expressions_use_jmespath_itself(source: str) -> None:
    expr = Expr(source)
    assert not expr.fast
    record = {"a": [{"b": 2}, {"b": 1}]}
    assert expr.search(record) == jmespath.compile(source).search(record, options=OPTIONS)
