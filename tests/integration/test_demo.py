"""`make demo`'s command on the session broker: it ends by itself with the summary line and pending=0."""

from __future__ import annotations

import os
import re

import pytest

from tests.support import run_cli

pytestmark = pytest.mark.integration

SUMMARY = re.compile(
    r"^demo: produced=(\d+) delivered=(\d+) skipped=(\d+) dead_lettered=(\d+) pending=(\d+)$"
)


def test_demo_ends_with_the_summary_line_and_nothing_pending(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    done = run_cli(["demo", "--count", "20", "--bad", "1", "--metrics-port", "0"], env=env, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    match = SUMMARY.match(lines[-1])
    assert match, f"last line is not the summary: {lines[-1]!r}"
    produced, delivered, skipped, dead, pending = map(int, match.groups())
    assert pending == 0
    assert produced == delivered + skipped + dead + pending
    assert produced == 4 * 20 + 4 * 1  # orders, loyalty, signups, privacy
    assert dead >= 4  # the four records that are not Avro
    assert delivered > 0
    prefix = "demo: attentive calls answered 2xx: "
    assert lines[-2].startswith(prefix), lines[-2]
    calls = dict(pair.split("=") for pair in lines[-2].removeprefix(prefix).split())
    assert int(calls["identity"]) > 0 and int(calls["privacy.delete"]) > 0  # both exercised
