"""Tests read metrics the way Prometheus does — ``registry.get_sample_value(name, labels)`` — never through
prometheus_client's private ``._value.get()`` (a rename of the library's internals would break them, and they
skip the name and labels that a scrape sees)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PRIVATE_READ = re.compile(r"\._(value|sum|count|buckets)\.get\(\)")


def private_reads(text: str) -> list[int]:
    """Line numbers that read a metric's private value."""
    return [n for n, line in enumerate(text.splitlines(), 1) if PRIVATE_READ.search(line)]


def test_no_test_reads_a_metric_privately() -> None:
    offenders = [
        f"tests/{path.relative_to(TESTS).as_posix()}:{n}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for n in private_reads(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "read it with registry.get_sample_value(name, labels):\n" + "\n".join(offenders)


def test_the_rule_finds_a_private_read() -> None:
    sample = "x = m.records.labels('t')._value.get()\ny = registry.get_sample_value('n', {})\n"
    assert private_reads(sample) == [1]
