"""``max_age`` judges a record by its mapped ``occurredAt``: dates and naive datetimes are UTC, never the
host's local time zone (a pod's TZ must not change which records are stale)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.unit.avro_rules_support import SHIPPED_RULES, router_for

MIDNIGHT_UTC_MS = datetime(2025, 3, 14, tzinfo=UTC).timestamp() * 1000.0


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in America/New_York (UTC-4/-5) for the test, then back in its own zone."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    assert time.timezone != 0  # really not UTC, or the test could not fail
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_a_date_is_midnight_utc_whatever_the_host_time_zone(tmp_path: Path) -> None:
    rule = router_for(tmp_path, SHIPPED_RULES).table.rules[0]
    assert rule.event_time_ms({"occurredAt": date(2025, 3, 14)}, None) == MIDNIGHT_UTC_MS


@pytest.mark.usefixtures("new_york")
def test_a_naive_datetime_is_utc_whatever_the_host_time_zone(tmp_path: Path) -> None:
    rule = router_for(tmp_path, SHIPPED_RULES).table.rules[0]
    assert rule.event_time_ms({"occurredAt": datetime(2025, 3, 14)}, None) == MIDNIGHT_UTC_MS
    aware = datetime(2025, 3, 14, tzinfo=UTC)
    assert rule.event_time_ms({"occurredAt": aware}, None) == MIDNIGHT_UTC_MS
