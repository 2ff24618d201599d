"""Value mappings in a rule: how one request field is computed from the decoded record.

The syntax a retailer writes in ``rules.yaml`` (every place a rule maps a value uses it):

* ``customer.email`` — a **string is a JMESPath expression** over the record (for item fields: over the item);
* ``{literal: USD}`` — a **literal** value (any YAML: text, number, true/false, list, mapping);
  numbers and ``true``/``false`` may also be written bare (``singleOptIn: false``);
* ``{template: "Order {{ title(kind) }}"}`` — **text with JMESPath placeholders** in ``{{ }}``;
  if any placeholder is null the whole value is null (a missing value, not ``"Order "``);
* a mapping (``{language: "split(locale, '-')[0]", country: ...}``) — a **nested object**, each value in
  this same syntax; nulls are left out;
* a list — a list of values in this syntax.

Nodes are parsed and their expressions compiled once; :meth:`Node.evaluate` runs per record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connector.avro.jsonrecords import jsonable
from connector.errors import ExpressionError, NodeError
from connector.formats import rfc3339
from connector.rules.expressions import Expr

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


class Node:
    """A compiled value mapping."""

    def evaluate(self, value: Any) -> Any:
        raise NotImplementedError

    def expressions(self) -> Iterator[Expr]:
        """Every expression inside (for the static checker)."""
        return iter(())


@dataclass(frozen=True, slots=True)
class ExprNode(Node):
    expr: Expr

    def evaluate(self, value: Any) -> Any:
        return self.expr.search(value)

    def expressions(self) -> Iterator[Expr]:
        yield self.expr


@dataclass(frozen=True, slots=True)
class LiteralNode(Node):
    value: Any

    def evaluate(self, value: Any) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class TemplateNode(Node):
    """``parts`` alternates text and expressions: ``["Order ", Expr(kind), ""]``."""

    source: str
    parts: tuple[str | Expr, ...]

    def evaluate(self, value: Any) -> Any:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            got = part.search(value)
            if got is None:
                return None
            out.append(template_text(got))
        return "".join(out)

    def expressions(self) -> Iterator[Expr]:
        for part in self.parts:
            if isinstance(part, Expr):
                yield part


@dataclass(frozen=True, slots=True)
class ObjectNode(Node):
    fields: tuple[tuple[str, Node], ...]

    def evaluate(self, value: Any) -> Any:
        out = {}
        for key, node in self.fields:
            got = node.evaluate(value)
            if got is not None:
                out[key] = got
        return out

    def expressions(self) -> Iterator[Expr]:
        for _, node in self.fields:
            yield from node.expressions()


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    items: tuple[Node, ...]

    def evaluate(self, value: Any) -> Any:
        return [node.evaluate(value) for node in self.items]

    def expressions(self) -> Iterator[Expr]:
        for node in self.items:
            yield from node.expressions()


def template_text(value: Any) -> str:
    """How a placeholder's value is written into a template."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | Decimal | float):
        return str(value)
    return json.dumps(jsonable(value), separators=(",", ":"), default=str)


def evaluator(node: Node) -> Callable[[Any], Any]:
    """The fastest callable computing ``node`` (used on the hot path instead of ``node.evaluate``)."""
    if isinstance(node, ExprNode):
        return node.expr.search
    if isinstance(node, LiteralNode):
        const = node.value
        return lambda _v: const
    if isinstance(node, ObjectNode):
        fields = tuple((key, evaluator(sub)) for key, sub in node.fields)

        def obj(value: Any) -> dict[str, Any]:
            out = {}
            for key, fn in fields:
                got = fn(value)
                if got is not None:
                    out[key] = got
            return out

        return obj
    if isinstance(node, ListNode):
        items = tuple(evaluator(sub) for sub in node.items)
        return lambda value: [fn(value) for fn in items]
    return node.evaluate


def parse_node(raw: Any, where: str) -> Node:
    """Compile a YAML value mapping. Raises :class:`NodeError` naming ``where``."""
    if isinstance(raw, str):
        if not raw.strip():
            raise NodeError(where, "empty expression (to send empty text, leave the field out)")
        try:
            return ExprNode(Expr(raw))
        except ExpressionError as exc:
            raise NodeError(where, f"{exc} (to send this text as is, write {{literal: ...}})") from None
    if raw is None:
        raise NodeError(where, "empty value (remove the key, or write {literal: ...})")
    if isinstance(raw, bool | int | float):
        return LiteralNode(raw)
    if isinstance(raw, list):
        return ListNode(tuple(parse_node(x, f"{where}[{i}]") for i, x in enumerate(raw)))
    if isinstance(raw, dict):
        if "literal" in raw or "template" in raw:
            if len(raw) != 1:
                raise NodeError(
                    where,
                    "{literal: ...} and {template: ...} take exactly one key (found: "
                    + ", ".join(map(str, raw))
                    + ")",
                )
            if "literal" in raw:
                return LiteralNode(raw["literal"])
            return parse_template(raw["template"], where)
        if not raw:
            raise NodeError(where, "empty mapping")
        return ObjectNode(tuple((str(k), parse_node(v, f"{where}.{k}")) for k, v in raw.items()))
    raise NodeError(where, f"unsupported value of type {type(raw).__name__}")


def parse_template(text: Any, where: str) -> TemplateNode:
    if not isinstance(text, str):
        raise NodeError(where, 'template must be text, e.g. {template: "Order {{ title(kind) }}"}')
    parts: list[str | Expr] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[pos : m.start()])
        inner = m.group(1).strip()
        if not inner:
            raise NodeError(where, f"empty placeholder {{{{ }}}} in template {text!r}")
        try:
            parts.append(Expr(inner))
        except ExpressionError as exc:
            raise NodeError(where, f"in template {text!r}: {exc}") from None
        pos = m.end()
    rest = text[pos:]
    if "{{" in rest or "}}" in rest:
        raise NodeError(where, f"unbalanced {{{{ }}}} in template {text!r}")
    parts.append(rest)
    return TemplateNode(text, tuple(p for p in parts if p != ""))
