"""JMESPath expressions for rules: compiled once at start-up, evaluated per record on the hot path.

Most rule expressions are plain field paths (``customer.phone``) or simple tests (``kind == 'ORDER_PLACED'``).
Those are compiled from JMESPath's own syntax tree into small Python closures that give exactly JMESPath's
result (property-tested against :mod:`jmespath`) at a fraction of the cost; anything else is evaluated by
:mod:`jmespath` itself with the extra functions below.

Extra functions (on top of JMESPath's built-ins):

* ``lower(s)``, ``upper(s)``, ``trim(s)``;
* ``title(s)`` — ``'ORDER_SHIPPED'`` → ``'Order Shipped'`` (underscores become spaces; for event names);
* ``split(s, sep)`` — ``split(locale, '-')[0]`` → ``'en'``;
* ``replace(s, old, new)``.

Decoded records carry ``Decimal`` (exact money), ``datetime`` and ``date`` values (see
:mod:`connector.avro.decoder`): here ``Decimal`` counts as a JMESPath number (``sum``, ``max``, comparisons
work), ``to_string`` writes decimals exactly and dates/timestamps as ISO 8601, and ``to_number`` keeps a
``Decimal`` exact.
"""

from __future__ import annotations

import datetime as _dt
import operator
from collections.abc import Callable
from decimal import Decimal
from numbers import Number
from typing import Any, cast

import jmespath
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions

from connector.errors import ExpressionError
from connector.formats import rfc3339

Evaluator = Callable[[Any], Any]


class _Functions(jp_functions.Functions):
    """JMESPath built-ins, made aware of decoded Avro values, plus a few string helpers."""

    # The private hooks below are not in the jmespath stubs, hence the attr-defined ignores.
    def _get_allowed_pytypes(self, types: Any) -> Any:
        allowed, subtypes = super()._get_allowed_pytypes(types)  # type: ignore[misc]
        if "float" in allowed:
            allowed = [*allowed, "Decimal"]
        subtypes = [(*s, "Decimal") if "float" in s else s for s in subtypes]
        return allowed, subtypes

    @jp_functions.signature({"types": []})
    def _func_to_string(self, arg: Any) -> Any:
        if isinstance(arg, str):
            return arg
        if isinstance(arg, Decimal):
            return str(arg)
        if isinstance(arg, _dt.datetime):
            return rfc3339(arg)
        if isinstance(arg, _dt.date):
            return arg.isoformat()
        return super()._func_to_string(arg)  # type: ignore[misc]

    @jp_functions.signature({"types": []})
    def _func_to_number(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return arg
        if isinstance(arg, str):
            try:
                return int(arg)
            except ValueError:
                try:
                    return (
                        Decimal(arg)
                        if arg.strip().lower() not in ("nan", "inf", "-inf", "infinity")
                        else None
                    )
                except ArithmeticError:
                    return None
        return super()._func_to_number(arg)  # type: ignore[misc]

    @jp_functions.signature({"types": ["string"]})
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @jp_functions.signature({"types": ["string"]})
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @jp_functions.signature({"types": ["string"]})
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @jp_functions.signature({"types": ["string"]})
    def _func_title(self, s: str) -> str:
        return " ".join(w.capitalize() for w in s.replace("_", " ").split())

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, s: str, sep: str) -> list[str]:
        return s.split(sep) if sep else list(s)

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, s: str, old: str, new: str) -> str:
        return s.replace(old, new)


_FUNCTIONS = _Functions()
OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)

# name -> (min args, max args or None for variadic); used by the static checker.
FUNCTION_NAMES = frozenset(name for name in _Functions.FUNCTION_TABLE)


class Expr:
    """A compiled expression. ``search(value)`` evaluates it; ``ast`` is JMESPath's syntax tree."""

    __slots__ = ("_parsed", "ast", "fast", "search", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._parsed = jmespath.compile(source)
        except jp_exceptions.JMESPathError as exc:
            raise ExpressionError(_parse_message(source, exc)) from None
        self.ast: dict[str, Any] = cast(dict[str, Any], self._parsed.parsed)
        fast = _compile_fast(self.ast)
        self.fast = fast is not None
        self.search: Evaluator = fast if fast is not None else self._slow

    def _slow(self, value: Any) -> Any:
        return self._parsed.search(value, options=OPTIONS)

    def field_path(self) -> tuple[str, ...] | None:
        """The dotted path when the expression is a plain field path (``a.b.c`` → ``('a','b','c')``)."""
        return _field_path(self.ast)

    def guard(self) -> tuple[tuple[str, ...], str] | None:
        """``(path, text)`` when the expression can only be true if ``path == 'text'``: it is that comparison,
        or an ``&&`` chain starting with it (``kind == 'ORDER_PLACED' && ...``). The router uses it to test
        rules sharing a discriminator field with one lookup."""
        node = self.ast
        while node["type"] == "and_expression":
            node = node["children"][0]
        if node["type"] != "comparator" or node["value"] != "eq":
            return None
        a, b = node["children"]
        if a["type"] == "literal":
            a, b = b, a
        path = _field_path(a)
        if path is None or b["type"] != "literal" or not isinstance(b["value"], str):
            return None
        return path, b["value"]

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def _parse_message(source: str, exc: Exception) -> str:
    # jmespath's errors carry what went wrong in `message` (lexer) or `msg` (parser) and where in
    # `lex_position`; its str() adds an ASCII drawing that does not fit a one-line problem report.
    detail = getattr(exc, "message", None) or getattr(exc, "msg", None) or str(exc).splitlines()[0]
    if isinstance(exc, jp_exceptions.IncompleteExpressionError):
        detail = "Incomplete expression"
    lex_pos = getattr(exc, "lex_position", None)
    where = f" at column {lex_pos + 1}" if isinstance(lex_pos, int) and lex_pos >= 0 else ""
    hint = ""
    if "Unknown token '='" in detail:
        hint = " (JMESPath compares with ==)"
    elif '"' in source and "'" not in source:
        hint = " (JMESPath string literals use single quotes: kind == 'ORDER_PLACED')"
    return f"invalid JMESPath {source!r}: {detail}{where}{hint}"


def is_true(value: Any) -> bool:
    """JMESPath truthiness: false for ``''``, ``[]``, ``{}``, ``None`` and ``False`` (``0`` is true)."""
    return not (value is None or value is False or value in ("", [], {}))


# --- the fast path -----------------------------------------------------------------------------------


def _field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression" and all(c["type"] == "field" for c in node["children"]):
        return tuple(c["value"] for c in node["children"])
    return None


def getter(path: tuple[str, ...]) -> Evaluator:
    """A fast evaluator of the field path ``path`` with JMESPath's result (``None`` when missing)."""
    return _getter(path)


def _getter(path: tuple[str, ...]) -> Evaluator:
    if len(path) == 1:
        (a,) = path

        def get1(v: Any) -> Any:
            return v.get(a) if isinstance(v, dict) else None

        return get1
    if len(path) == 2:
        a, b = path

        def get2(v: Any) -> Any:
            v = v.get(a) if isinstance(v, dict) else None
            return v.get(b) if isinstance(v, dict) else None

        return get2

    def get_n(v: Any) -> Any:
        for k in path:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v

    return get_n


def _compile_projection(node: dict[str, Any]) -> Evaluator | None:
    maybe_base = _compile_fast(node["children"][0])
    if maybe_base is None:
        return None
    base: Evaluator = maybe_base
    if node["type"] == "flatten":

        def flatten(v: Any) -> Any:
            got = base(v)
            if not isinstance(got, list):
                return None
            merged: list[Any] = []
            for element in got:
                if isinstance(element, list):
                    merged.extend(element)
                else:
                    merged.append(element)
            return merged

        return flatten
    maybe_each = _compile_fast(node["children"][1])
    if maybe_each is None:
        return None
    each: Evaluator = maybe_each

    def project(v: Any) -> Any:
        got = base(v)
        if not isinstance(got, list):
            return None
        return [r for r in map(each, got) if r is not None]

    return project


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _is_actual_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, Number)


def _is_special_number_case(x: Any, y: Any) -> bool:
    # As JMESPath: 0/1 never equal false/true (Python says they do).
    if _is_actual_number(x) and x in (0, 1):
        return isinstance(y, bool)
    if _is_actual_number(y) and y in (0, 1):
        return isinstance(x, bool)
    return False


def _equals(x: Any, y: Any) -> bool:
    if _is_special_number_case(x, y):
        return False
    return bool(x == y)


def _compile_fast(node: dict[str, Any]) -> Evaluator | None:
    """A closure equivalent to JMESPath for a small subset of expressions, else ``None``."""
    kind = node["type"]
    path = _field_path(node)
    if path is not None:
        return _getter(path)
    if kind == "literal":
        const = node["value"]
        return lambda _v: const
    if kind in ("current", "identity"):
        return lambda v: v
    if kind in ("subexpression", "index_expression", "pipe"):
        steps = [_compile_fast(child) for child in node["children"]]
        if any(step is None for step in steps):
            return None
        chain = tuple(step for step in steps if step is not None)

        def compose(v: Any) -> Any:
            for step in chain:
                v = step(v)
            return v

        return compose
    if kind == "index":
        i = node["value"]

        def index(v: Any) -> Any:
            if not isinstance(v, list):
                return None
            try:
                return v[i]
            except IndexError:
                return None

        return index
    if kind in ("projection", "flatten"):
        return _compile_projection(node)
    if kind == "function_expression":
        if any(child["type"] == "expref" for child in node["children"]):
            return None
        maybe_args = [_compile_fast(child) for child in node["children"]]
        if any(a is None for a in maybe_args):
            return None
        args = tuple(a for a in maybe_args if a is not None)
        name = node["value"]
        call = _FUNCTIONS.call_function  # type-checks arguments exactly as JMESPath does
        return lambda v: call(name, [a(v) for a in args])
    if kind == "comparator" and node["value"] in _ORDERING:
        maybe_a = _compile_fast(node["children"][0])
        maybe_b = _compile_fast(node["children"][1])
        if maybe_a is None or maybe_b is None:
            return None
        lhs: Evaluator = maybe_a
        rhs: Evaluator = maybe_b
        op = _ORDERING[node["value"]]

        def ordering(v: Any) -> Any:
            a, b = lhs(v), rhs(v)
            # As JMESPath: ordering only between numbers or strings, else null.
            if not (_is_actual_number(a) or isinstance(a, str)) or not (
                _is_actual_number(b) or isinstance(b, str)
            ):
                return None
            return op(a, b)

        return ordering
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        a, b = node["children"]
        if b["type"] != "literal" and a["type"] == "literal":
            a, b = b, a  # equality is symmetric: put the literal on the right
        maybe_left = _compile_fast(a)
        if maybe_left is None:
            return None
        left: Evaluator = maybe_left
        if b["type"] == "literal" and isinstance(b["value"], str):
            # Comparing with text: JMESPath's 0/1-vs-bool special case cannot apply, plain == is exact.
            text = b["value"]
            if node["value"] == "eq":
                return lambda v: left(v) == text
            return lambda v: left(v) != text
        maybe_right = _compile_fast(b)
        if maybe_right is None:
            return None
        right: Evaluator = maybe_right
        if node["value"] == "eq":
            return lambda v: _equals(left(v), right(v))
        return lambda v: not _equals(left(v), right(v))
    if kind in ("and_expression", "or_expression"):
        maybe_first = _compile_fast(node["children"][0])
        maybe_second = _compile_fast(node["children"][1])
        if maybe_first is None or maybe_second is None:
            return None
        first: Evaluator = maybe_first
        second: Evaluator = maybe_second
        if kind == "and_expression":

            def and_(v: Any) -> Any:
                matched = first(v)
                return second(v) if is_true(matched) else matched

            return and_

        def or_(v: Any) -> Any:
            matched = first(v)
            return matched if is_true(matched) else second(v)

        return or_
    if kind == "not_expression":
        maybe_inner = _compile_fast(node["children"][0])
        if maybe_inner is None:
            return None
        inner: Evaluator = maybe_inner

        def not_(v: Any) -> bool:
            result = inner(v)
            if _is_actual_number(result) and result == 0:
                return False  # JMESPath: !0 is false (0 is true)
            return not result

        return not_
    return None
