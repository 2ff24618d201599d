"""``attentive-connector validate --config FILE``: check config, schemas and rule table without running.

Static checks only (no network): the config file parses, every topic's schema loads, every rule compiles, every
field path a rule reads exists in its topic's Avro schema, types fit what Attentive expects, every required
Attentive field is mapped, and each topic's ``key_field`` exists. Prints ``ok: N rules, M topics`` and exits 0
when clean; otherwise prints one line per problem (file, rule, field, what to change) and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from connector.config import ConnectorConfig, Encoding, load_config
from connector.errors import ConfigError, ExpressionError
from connector.rules.check import check_expression
from connector.rules.expressions import Expr
from connector.rules.problems import Problems
from connector.rules.router import load_topic_schemas
from connector.rules.table import check_rule_table

DEFAULT_CONFIG = "config/connector.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"connector config file (default: {DEFAULT_CONFIG})",
    )


def validate(config: ConnectorConfig) -> tuple[int, int, list[str]]:
    """``(rules, topics, problems)`` for an already-loaded config."""
    try:
        schemas = load_topic_schemas(config)
    except ConfigError as exc:
        return 0, len(config.topics), str(exc).splitlines()
    source = config.source_file or "config"
    extra = Problems(source)  # type: ignore[arg-type]
    for topic, settings in config.topics.items():
        if settings.encoding is Encoding.CONFLUENT and config.kafka.schema_registry is None:
            extra.add(
                f"topics.{topic}.encoding is confluent but kafka.schema_registry.url is not set "
                "(set it, or SCHEMA_REGISTRY_URL; or use encoding: raw)"
            )
        if settings.key_field:
            try:
                expr = Expr(settings.key_field)
            except ExpressionError as exc:
                extra.add(str(exc), where=f"topics.{topic}.key_field")
                continue
            check_expression(expr, schemas[topic], extra, f"topics.{topic}.key_field")
    table, problems = check_rule_table(config.resolve(config.rules_file), schemas)
    n_rules = len(table.rules) if table is not None else 0
    key_problems: list[str] = []
    if config.attentive.api_key is not None or config.attentive.api_key_file is not None:
        # What `run` reads at start (an empty or unreadable key file); no key at all is fine here, since
        # validate also runs where the secret is not mounted (CI).
        try:
            config.attentive.resolved_api_key()
        except ConfigError as exc:
            key_problems.append(str(exc))
    return n_rules, len(schemas), [*extra.lines, *problems, *key_problems]


def main(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(line, file=out)
        return 1
    n_rules, n_topics, problems = validate(config)
    if problems:
        for line in problems:
            print(line, file=out)
        return 1
    print(f"ok: {n_rules} rules, {n_topics} topics", file=out)
    return 0
