"""Static checks of a compiled rule against its topic's Avro schema.

Every expression is walked over the schema's type tree (:class:`~connector.avro.schema.AvroType`), the way
JMESPath would walk a record: a field that is not in the record (``customer.phon``) or a path through something
that has no fields is reported with the record's real fields and the closest match; unknown functions are
reported; and the type each expression yields is compared with what Attentive expects for the field it feeds
(a price from a string field, a record into a custom attribute, an enum whose symbols Attentive does not accept).

Where the type cannot be known statically (results of most functions, multi-selects), the check is silent rather
than wrong.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import IDENTIFIER_MAX
from connector.avro.schema import SCALAR_KINDS, AvroType, TopicSchema, short_name
from connector.rules.expressions import FUNCTION_NAMES, Expr
from connector.rules.model import RuleSpec
from connector.rules.problems import Problems
from connector.rules.rule import Rule
from connector.rules.targets import (
    CUSTOM_IDENTIFIER,
    EXTERNAL_EVENT_ID,
    FIELDS,
    ITEM_FIELDS,
    USER_FIELDS,
    Target,
)
from connector.rules.values import ExprNode, ListNode, LiteralNode, Node, ObjectNode, TemplateNode

ANY = AvroType("any")
_STRING = AvroType("string")
_BOOLEAN = AvroType("boolean")
_NUMBER = AvroType("number")
_INTEGER = AvroType("integer")

_STRING_FUNCS = frozenset({"to_string", "join", "lower", "upper", "title", "trim", "replace", "type"})
_NUMBER_FUNCS = frozenset({"abs", "avg", "sum", "to_number"})
_INTEGER_FUNCS = frozenset({"length", "ceil", "floor"})
_BOOL_FUNCS = frozenset({"contains", "starts_with", "ends_with"})


def check_rule(rule: Rule, topic: str, schema: TopicSchema, problems: Problems) -> None:
    """Add to ``problems`` everything wrong with ``rule`` when applied to ``topic``'s records."""
    ctx = _Ctx(rule.name, schema, problems)
    root = schema.type
    if rule.when is not None:
        ctx.infer_expr(rule.when, root, "when")
    for key, node in rule.user:
        ctx.check_node(node, root, USER_FIELDS[key], f"user.{key}")
    for ident, node in rule.custom_identifiers:
        ctx.check_node(node, root, CUSTOM_IDENTIFIER, f"user.custom_identifiers.{ident}")
    if rule.items is not None:
        source = ctx.infer_expr(rule.items.source, root, "items.from")
        element = _element_type(source)
        if element is None:
            ctx.problem("items.from", f"{rule.items.source.source!r} is {source.describe()}, not a list")
            element = ANY
        by_attentive = {attentive: (key, target) for key, (attentive, target) in ITEM_FIELDS.items()}
        for attentive_key, node in rule.items.fields:
            key, target = by_attentive[attentive_key]
            ctx.check_node(node, element, target, f"items.{key}")
        ctx.check_node(rule.items.price, element, ITEM_FIELDS["price"][1], "items.price")
        if rule.items.currency is not None:
            ctx.check_node(rule.items.currency, element, ITEM_FIELDS["currency"][1], "items.currency")
    targets = FIELDS[rule.api]
    for key, node in rule.fields:
        ctx.check_node(node, root, targets[key], f"fields.{key}")
    if rule.external_event_id is not None:
        ctx.check_node(rule.external_event_id, root, EXTERNAL_EVENT_ID, "external_event_id")


# --- identity and privacy.delete: what their user: section needs -----------------------------------------

_LINKED = ("client_user_id",)
_OTHER_IDENTIFIERS = ("phone", "email", "shopify_id", "klaviyo_id")
_LIMITED_KEYS = ("email", "shopify_id", "klaviyo_id", "client_user_id")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")


def check_identity_rule(spec: RuleSpec, problems: Problems) -> None:
    """The rules of the Identity API and of privacy deletion requests that a rule table can break statically.

    identity: a client user id or custom identifier to associate, accompanied by at least one other identifier
    (Attentive's wording); values written in the rule (literals, a template's fixed text) and custom identifier
    names within the 100-character limit; no ``max_age`` (a link stays true however old the record, and the
    events relying on it would go unattributed). privacy.delete: no ``max_age`` (a deletion is never "stale").
    Whether a record actually carries the values is data: those records are dead-lettered with the reason.
    """
    api, name, user = spec.api, spec.name, spec.user
    if api not in (Endpoint.IDENTITY, Endpoint.PRIVACY_DELETE):
        return
    if spec.max_age is not None:
        why = (
            "a deletion request must never be skipped as stale"
            if api is Endpoint.PRIVACY_DELETE
            else "a link stays true however old the record is, and the events relying on it would go "
            "unattributed"
        )
        problems.add(f"{api.value} takes no max_age: {why}", rule=name, where="max_age")
    if api is not Endpoint.IDENTITY:
        return
    mapped = [k for k in (*_OTHER_IDENTIFIERS, *_LINKED) if getattr(user, k) is not None]
    customs = list(user.custom_identifiers)
    if mapped or customs:
        if "client_user_id" not in mapped and not customs:
            problems.add(
                "identity needs user.client_user_id or user.custom_identifiers: the identifiers to associate "
                "with the person",
                rule=name,
                where="user",
            )
        elif len(mapped) + len(customs) < 2:
            problems.add(
                "identity: a client user or custom identifier needs to be accompanied by at least one other "
                "identifier; map user.phone, user.email, user.shopify_id or user.klaviyo_id (or a second "
                "custom identifier)",
                rule=name,
                where="user",
            )
    for key in _LIMITED_KEYS:
        _check_fixed_length(getattr(user, key), f"user.{key}", name, problems)
    for ident, raw in user.custom_identifiers.items():
        where = f"user.custom_identifiers.{ident if len(str(ident)) <= 40 else str(ident)[:40] + '…'}"
        if len(str(ident)) > IDENTIFIER_MAX:
            problems.add(
                f"custom identifier name longer than {IDENTIFIER_MAX} characters (Attentive's limit)",
                rule=name,
                where=where,
            )
        _check_fixed_length(raw, where, name, problems)


def _check_fixed_length(raw: Any, where: str, rule: str, problems: Problems) -> None:
    """A value written in the rule itself that is always over the limit (a literal, a template's own text)."""
    if isinstance(raw, bool) or raw is None:
        return
    fixed: str | None = None
    if isinstance(raw, int | float):
        fixed = str(raw)
    elif isinstance(raw, dict) and len(raw) == 1 and isinstance(raw.get("literal"), str | int):
        fixed = str(raw["literal"])
    elif isinstance(raw, dict) and len(raw) == 1 and isinstance(raw.get("template"), str):
        fixed = _PLACEHOLDER.sub("", raw["template"])
    if fixed is not None and len(fixed) > IDENTIFIER_MAX:
        problems.add(
            f"always longer than {IDENTIFIER_MAX} characters (Attentive's limit for identifiers)",
            rule=rule,
            where=where,
        )


def _element_type(t: AvroType) -> AvroType | None:
    t = t.non_null()
    if t.kind == "any":
        return ANY
    if t.kind == "array":
        return t.items or ANY
    return None


def check_expression(expr: Expr, schema: TopicSchema, problems: Problems, where: str) -> AvroType:
    """Check a free-standing expression (e.g. a topic's ``key_field``) against ``schema``; returns its type."""
    return _Ctx(None, schema, problems).infer_expr(expr, schema.type, where)


class _Ctx:
    def __init__(self, rule: str | None, schema: TopicSchema, problems: Problems) -> None:
        self.rule = rule
        self.schema = schema
        self.problems = problems

    def problem(self, where: str, message: str) -> None:
        self.problems.add(message, rule=self.rule, where=where)

    # --- value nodes against Attentive targets ---------------------------------------------------------

    def check_node(self, node: Node, scope: AvroType, target: Target, where: str) -> None:
        if isinstance(node, ExprNode):
            t = self.infer_expr(node.expr, scope, where)
            self.check_type(t, target, where, node.expr.source)
        elif isinstance(node, TemplateNode):
            for expr in node.expressions():
                self.infer_expr(expr, scope, where)
            if not target.kinds & {"string", "any"}:
                self.problem(where, f"a template makes text; Attentive expects {target.what} here")
        elif isinstance(node, LiteralNode):
            self.check_literal(node.value, target, where)
        elif isinstance(node, ObjectNode):
            if not target.kinds & {"record", "map", "any"}:
                self.problem(where, f"a mapping makes an object; Attentive expects {target.what} here")
                return
            for key, sub in node.fields:
                if target.fields:
                    sub_target = target.fields.get(key)
                    if sub_target is None:
                        hint = difflib.get_close_matches(key, list(target.fields), n=1)
                        self.problem(
                            f"{where}.{key}",
                            f"unknown key (Attentive expects {', '.join(target.fields)})"
                            + (f"; did you mean {hint[0]!r}?" if hint else ""),
                        )
                        continue
                elif target.scalar_values:
                    sub_target = Target(
                        frozenset(SCALAR_KINDS), "a single value (text, number, boolean, date)"
                    )
                else:
                    sub_target = Target(frozenset({"any"}), "any value")
                self.check_node(sub, scope, sub_target, f"{where}.{key}")
        elif isinstance(node, ListNode):
            if not target.kinds & {"array", "any"}:
                self.problem(where, f"a list is not accepted here; Attentive expects {target.what}")
                return
            item_target = target.items or Target(frozenset({"any"}), "any value")
            for i, sub in enumerate(node.items):
                self.check_node(sub, scope, item_target, f"{where}[{i}]")

    def check_literal(self, value: Any, target: Target, where: str) -> None:
        if "any" in target.kinds:
            return
        kind = _literal_kind(value)
        if kind == "null":
            return
        if kind not in target.kinds and not (kind == "string" and "enum" in target.kinds):
            self.problem(where, f"the literal is {kind}; Attentive expects {target.what}")
            return
        if target.choices and isinstance(value, str) and value not in target.choices:
            self.problem(where, f"{value!r} is not accepted; use one of {', '.join(target.choices)}")
        if isinstance(value, dict) and (target.fields or target.scalar_values):
            for k, v in value.items():
                sub = target.fields.get(str(k)) if target.fields else None
                if target.fields and sub is None:
                    self.problem(
                        f"{where}.{k}", f"unknown key (Attentive expects {', '.join(target.fields)})"
                    )
                elif sub is not None:
                    self.check_literal(v, sub, f"{where}.{k}")
                elif target.scalar_values and _literal_kind(v) not in (
                    "string",
                    "integer",
                    "number",
                    "boolean",
                ):
                    self.problem(
                        f"{where}.{k}", "custom attribute values must be single values, not lists or objects"
                    )
        if isinstance(value, list) and target.items is not None:
            for i, v in enumerate(value):
                self.check_literal(v, target.items, f"{where}[{i}]")

    def check_type(self, t: AvroType, target: Target, where: str, source: str) -> None:
        kinds = t.kinds() - {"null"}
        if not kinds or "any" in kinds or "any" in target.kinds:
            return
        bad = kinds - target.kinds
        if bad:
            self.problem(
                where,
                f"{source!r} is {t.non_null().describe()} in {self.schema.label}; Attentive expects {target.what}",
            )
            return
        if target.choices:
            for branch in _branches(t):
                if branch.kind == "enum":
                    extra = [s for s in branch.symbols if s not in target.choices]
                    if extra:
                        self.problem(
                            where,
                            f"enum {short_name(branch.name)} has symbols Attentive does not accept: "
                            f"{', '.join(extra)} (accepted: {', '.join(target.choices)}); "
                            "add a when: that excludes them or map with a literal",
                        )
        if target.scalar_values:
            for branch in _branches(t):
                values: Iterable[tuple[str, AvroType]]
                if branch.kind == "record":
                    values = branch.fields.items()
                elif branch.kind == "map" and branch.items is not None:
                    values = [("(map values)", branch.items)]
                else:
                    continue
                for name, vt in values:
                    vk = vt.kinds() - {"null"}
                    if vk and "any" not in vk and vk - SCALAR_KINDS:
                        self.problem(
                            where,
                            f"custom attribute {name!r} would be {vt.non_null().describe()}; "
                            "attribute values must be single values (text, number, boolean, date)",
                        )
        if target.fields:
            for branch in _branches(t):
                if branch.kind == "record":
                    for key, sub_target in target.fields.items():
                        if key in branch.fields:
                            self.check_type(
                                branch.fields[key], sub_target, f"{where}.{key}", f"{source}.{key}"
                            )

    # --- JMESPath type inference ------------------------------------------------------------------------

    def infer_expr(self, expr: Expr, scope: AvroType, where: str) -> AvroType:
        return self._infer(expr.ast, scope, where, expr.source)

    def _infer(self, node: dict[str, Any], t: AvroType, where: str, src: str) -> AvroType:
        kind = node["type"]
        children: list[dict[str, Any]] = node.get("children", [])
        if kind == "field":
            return self._field(t, node["value"], where, src)
        if kind in ("subexpression", "pipe"):
            cur = t
            for child in children:
                cur = self._infer(child, cur, where, src)
            return cur
        if kind == "index_expression":
            base = self._infer(children[0], t, where, src)
            if children[1]["type"] == "index":
                element = _element_type(base)
                if element is None:
                    self.problem(where, f"{src!r}: {base.describe()} cannot be indexed (not a list)")
                    return ANY
                return element
            return self._infer(children[1], base, where, src)
        if kind in ("index", "slice"):
            return t
        if kind in ("projection", "filter_projection"):
            base = self._infer(children[0], t, where, src)
            element = _element_type(base)
            if element is None:
                if base.non_null().kind not in ("any",):
                    self.problem(where, f"{src!r}: {base.describe()} is not a list, cannot project over it")
                return ANY
            if kind == "filter_projection":
                self._infer(children[2], element, where, src)
            return AvroType("array", items=self._infer(children[1], element, where, src))
        if kind == "value_projection":
            base = self._infer(children[0], t, where, src).non_null()
            if base.kind == "map" and base.items is not None:
                return AvroType("array", items=self._infer(children[1], base.items, where, src))
            if base.kind == "record":
                for ft in base.fields.values():
                    self._infer(children[1], ft, where, src)
            return AvroType("array", items=ANY)
        if kind == "flatten":
            base = self._infer(children[0], t, where, src)
            element = _element_type(base)
            if element is None:
                self.problem(where, f"{src!r}: {base.describe()} is not a list, cannot project over it")
                return ANY
            inner = _element_type(element)
            return AvroType("array", items=inner if inner is not None and element.kind != "any" else element)
        if kind in ("identity", "current"):
            return t
        if kind == "literal":
            return _literal_type(node["value"])
        if kind == "comparator":
            for child in children:
                self._infer(child, t, where, src)
            return _BOOLEAN
        if kind == "not_expression":
            self._infer(children[0], t, where, src)
            return _BOOLEAN
        if kind in ("and_expression", "or_expression"):
            left = self._infer(children[0], t, where, src)
            right = self._infer(children[1], t, where, src)
            if kind == "and_expression":
                return right
            return AvroType("union", options=(left, right))
        if kind == "multi_select_dict":
            rec = AvroType("record", name="(object)")
            for pair in children:
                rec.fields[pair["value"]] = self._infer(pair["children"][0], t, where, src)
            return rec
        if kind == "multi_select_list":
            opts = tuple(self._infer(c, t, where, src) for c in children)
            return AvroType("array", items=AvroType("union", options=opts) if opts else ANY)
        if kind == "function_expression":
            return self._function(node, t, where, src)
        if kind == "expref":
            return ANY
        return ANY

    def _field(self, t: AvroType, name: str, where: str, src: str) -> AvroType:
        base = t.non_null()
        if base.kind == "any":
            return ANY
        if base.kind == "map":
            return base.items or ANY
        if base.kind == "record":
            if name in base.fields:
                return base.fields[name]
            self._unknown_field(base, name, where, src)
            return ANY
        if base.kind == "union":
            found = [o.fields[name] for o in base.options if o.kind == "record" and name in o.fields]
            if found:
                return found[0] if len(found) == 1 else AvroType("union", options=tuple(found))
            records = [o for o in base.options if o.kind == "record"]
            if records:
                self._unknown_field(records[0], name, where, src)
                return ANY
        self.problem(where, f"{src!r}: {base.describe()} has no field {name!r}")
        return ANY

    def _unknown_field(self, record: AvroType, name: str, where: str, src: str) -> None:
        fields = list(record.fields)
        hint = difflib.get_close_matches(name, fields, n=1)
        msg = (
            f"{src!r}: field {name!r} is not in record {short_name(record.name)} of {self.schema.label} "
            f"(fields: {', '.join(fields)})"
        )
        if hint:
            msg += f"; did you mean {hint[0]!r}?"
        elif name.isupper():
            msg += f"; to compare with the text {name}, quote it with single quotes: '{name}'"
        self.problem(where, msg)

    def _function(self, node: dict[str, Any], t: AvroType, where: str, src: str) -> AvroType:
        name = node["value"]
        children: list[dict[str, Any]] = node.get("children", [])
        if name not in FUNCTION_NAMES:
            hint = difflib.get_close_matches(name, sorted(FUNCTION_NAMES), n=1)
            self.problem(
                where,
                f"{src!r}: unknown function {name}()" + (f"; did you mean {hint[0]}()?" if hint else ""),
            )
            return ANY
        # Exprefs (&name in sort_by(items, &name), map(&name, items)) run on the elements of the list argument.
        plain = [self._infer(c, t, where, src) if c["type"] != "expref" else None for c in children]
        lists = [a for a in plain if a is not None and _element_type(a) is not None]
        element = _element_type(lists[0]) if lists else None
        args: list[AvroType] = [
            a if a is not None else self._infer(c["children"][0], element or ANY, where, src)
            for a, c in zip(plain, children, strict=True)
        ]
        if name in _STRING_FUNCS:
            return _STRING
        if name in _NUMBER_FUNCS:
            return _NUMBER
        if name in _INTEGER_FUNCS:
            return _INTEGER
        if name in _BOOL_FUNCS:
            return _BOOLEAN
        if name in ("split", "keys"):
            return AvroType("array", items=_STRING)
        if name in ("max", "min") and args:
            return _element_type(args[0]) or ANY
        if name in ("sort", "reverse", "sort_by") and args:
            return args[0]
        if name in ("max_by", "min_by") and args:
            return _element_type(args[0]) or ANY
        if name == "not_null" and args:
            return AvroType("union", options=tuple(args))
        if name == "merge":
            values = []
            for a in args:
                b = a.non_null()
                if b.kind == "map" and b.items is not None:
                    values.append(b.items)
                elif b.kind == "record":
                    values.extend(b.fields.values())
                else:
                    return ANY
            return AvroType("map", items=AvroType("union", options=tuple(values)) if values else ANY)
        if name == "map" and len(args) == 2:
            return AvroType("array", items=args[0])  # args[0] is the expref's result on an element
        return ANY


def _branches(t: AvroType) -> list[AvroType]:
    b = t.non_null()
    return list(b.options) if b.kind == "union" else [b]


def _literal_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "record"
    return "any"


def _literal_type(value: Any) -> AvroType:
    kind = _literal_kind(value)
    if kind == "array":
        return AvroType("array", items=ANY)
    if kind == "record":
        return AvroType("map", items=ANY)
    return AvroType(kind)
