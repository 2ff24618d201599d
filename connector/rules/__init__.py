"""The rule table: which records become which Attentive calls (models, compiled rules, checks, router)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.rules.router import Router, load_topic_schemas
    from connector.rules.rule import Rule
    from connector.rules.table import RuleTable, check_rule_table, load_rule_table

__all__ = ["Router", "Rule", "RuleTable", "check_rule_table", "load_rule_table", "load_topic_schemas"]

__getattr__ = lazy_exports(
    __name__,
    {
        "Router": "connector.rules.router",
        "load_topic_schemas": "connector.rules.router",
        "RuleTable": "connector.rules.table",
        "check_rule_table": "connector.rules.table",
        "load_rule_table": "connector.rules.table",
        "Rule": "connector.rules.rule",
    },
)
