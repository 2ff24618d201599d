"""Tests wait for conditions, not for time: no ``sleep(x)`` directly followed by an ``assert``.

A sleep followed by an assert passes on a quiet machine and fails on a loaded one (or, worse, the other way
round for "nothing happened" checks). Wait for the condition instead (``tests.unit.engine_fakes.eventually``,
``wait_idle``, an event) or drive a virtual clock. A module on virtual time (``pytestmark =
pytest.mark.looptime``: the engine, retry and circuit tests) may sleep: there a sleep advances the loop's
virtual clock by exactly that much and takes no real time, so what it shows does not depend on the machine's
load. Elsewhere a sleep that really must let time pass — to show that something does *not* happen within an
interval, or a driver loop against a real process — says so on its line with ``# sleep-ok: <why>``, or is in
ALLOWED below with its reason.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLEEP = re.compile(r"\bsleep\(\s*(?P<arg>[^)]*)\)")
VIRTUAL_TIME = re.compile(r"^pytestmark = .*\bpytest\.mark\.looptime\b", re.MULTILINE)

# (file relative to tests/, the sleep line's text) -> why it may sleep before asserting
ALLOWED: dict[tuple[str, str], str] = {
    ("unit/test_lanes.py", "await asyncio.sleep(0.01)"): "shows the scope is NOT idle within the interval",
    (
        "integration/test_engine_auth.py",
        "time.sleep(0.5)",
    ): "a real connector process: nothing resumes while refused",
    (
        "integration/test_engine_bad_input.py",
        "await asyncio.sleep(0.1)",
    ): "a deadline loop polling a real broker",
    (
        "integration/test_engine_outage.py",
        "time.sleep(0.5)",
    ): "a driver loop sampling a real process's metrics",
}


def sleep_then_assert(path: Path) -> list[tuple[int, str]]:
    """``(line number, sleep line)`` of every non-zero sleep whose next statement is an ``assert`` (none in a
    module on virtual time)."""
    text = path.read_text(encoding="utf-8")
    if VIRTUAL_TIME.search(text):
        return []
    lines = text.splitlines()
    found: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        text = line.strip()
        m = SLEEP.search(text)
        if m is None or text.startswith(("#", "def ", "async def ")) or "sleep-ok:" in text:
            continue
        if m.group("arg").strip() in ("", "0", "0.0"):
            continue  # one loop turn, not a wait
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].strip().startswith("#")):
            j += 1
        if j < len(lines) and lines[j].strip().startswith("assert"):
            found.append((i + 1, text.split("  #")[0].strip()))
    return found


def test_no_test_sleeps_then_asserts() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS).as_posix()
        for number, text in sleep_then_assert(path):
            if (rel, text) not in ALLOWED:
                offenders.append(f"tests/{rel}:{number}: {text}")
    assert offenders == [], "wait for the condition instead of sleeping:\n" + "\n".join(offenders)


def test_the_rule_finds_a_sleep_then_assert(tmp_path: Path) -> None:
    sample = tmp_path / "test_x.py"
    sample.write_text(
        "async def t():\n"
        "    await asyncio.sleep(0.2)\n\n"
        "    # a comment\n"
        "    assert done\n"
        "    await asyncio.sleep(0)\n"
        "    assert turn\n"
        "    await asyncio.sleep(1)  # sleep-ok: an interval\n"
        "    assert nothing\n",
        encoding="utf-8",
    )
    assert sleep_then_assert(sample) == [(2, "await asyncio.sleep(0.2)")]
    virtual = tmp_path / "test_v.py"
    virtual.write_text("import pytest\n\npytestmark = pytest.mark.looptime\n\n" + sample.read_text())
    assert sleep_then_assert(virtual) == []


def test_the_virtual_time_modules_are_the_engine_retry_and_circuit_tests() -> None:
    """The exemption is for modules that really run on virtual time: each one's rig or board takes the loop's
    clock (tests/unit/engine_fakes.py ``loop_clocks``), so its retry budgets and cool-downs are virtual too."""
    marked = {
        path.relative_to(TESTS).as_posix()
        for path in TESTS.rglob("test_*.py")
        if VIRTUAL_TIME.search(path.read_text(encoding="utf-8"))
    }
    assert marked == {
        "unit/test_circuit.py",
        "unit/test_deliverer_order.py",
        "unit/test_engine.py",
        "unit/test_engine_accounting.py",
        "unit/test_engine_auth.py",
        "unit/test_engine_backpressure.py",
        "unit/test_engine_commit_retry.py",
        "unit/test_engine_retry.py",
    }


def test_every_allowed_entry_is_still_there() -> None:
    """A stale allow-list entry would silently allow the next sleep written on such a line."""
    present = {
        (path.relative_to(TESTS).as_posix(), text)
        for path in TESTS.rglob("*.py")
        for _, text in sleep_then_assert(path)
    }
    assert set(ALLOWED) - present == set()
