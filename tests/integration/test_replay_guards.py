"""``dlq replay`` cannot eat the DLQ by mistake (issue 12, items 3, 4 and 6), on the real broker and sandbox.

Each test first runs the command that used to mislead (the exact reproduction from the issue), then shows the
fixed behaviour: a typo'd ``--rule`` is an error that lists the rules and commits nothing; a source topic is
refused and a missing topic is one line; a run never reads its own re-dead-lettered copies, which carry a
replay count; ``--dry-run`` commits nothing; a dead broker fails within ~10 s with one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector import samples
from connector.devkafka.broker import free_port
from connector.pipeline.connector import Connector
from connector.pipeline.replay import REPLAY_COUNT_HEADER
from tests.integration.engine_support import Stack, committed, make_stack, read_all
from tests.integration.test_dlq_replay import run_until_idle
from tests.support import SandboxProcess, run_cli

pytestmark = pytest.mark.integration


def dead_lettered_stack(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess, n: int = 6
) -> tuple[Stack, str]:
    """A loyalty topic whose ``n`` records all have a phone that can never be normalised, run to the DLQ."""
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["loyalty"])
    records = list(samples.generate("loyalty", n, seed=3))
    for r in records:
        r["customer"] = {**r["customer"], "phone": "12345"}
    samples.produce(stack.config, stack.topics["loyalty"], records, bootstrap=kafka_bootstrap)
    asyncio.run(run_until_idle(Connector(stack.config), expected=n))
    dlq = stack.dlq("loyalty")
    assert len(read_all(kafka_bootstrap, dlq)) == n
    return stack, dlq


def replay_cmd(stack: Stack, topic: str, *extra: str) -> list[str]:
    return ["dlq", "replay", "--config", str(stack.config_path), "--topic", topic, *extra]


def test_a_typo_in_rule_is_an_error_listing_the_rules_and_commits_nothing(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack, dlq = dead_lettered_stack(tmp_path, kafka_bootstrap, make_topic, sandbox)
    group = f"{stack.group}.replay.{dlq}"
    # The reproduction (`--rule sms-optin` for sms-opt-in) used to exit 0 with read=N filtered=N
    # and commit the replay group past every record.
    typo = run_cli(replay_cmd(stack, dlq, "--rule", "loyalty-profil"), env=stack.env(), timeout=120)
    assert typo.returncode == 2, typo.stderr[-2000:]
    [line] = typo.stderr.strip().splitlines()
    assert "--rule 'loyalty-profil' is not a rule of the rule table" in line
    assert "loyalty-profile" in line and "loyalty-event" in line
    assert committed(kafka_bootstrap, group, dlq, 1)[0] < 0  # nothing committed
    # The correct command then finds every record.
    right = run_cli(replay_cmd(stack, dlq, "--rule", "loyalty-profile"), env=stack.env(), timeout=120)
    assert right.returncode == 0, right.stderr[-2000:]
    assert "read=6 " in right.stdout and "filtered=0" in right.stdout, right.stdout


def test_only_dead_letter_topics_and_only_existing_ones(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack, _dlq = dead_lettered_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, n=3)
    source = stack.topics["loyalty"]
    # `--topic orders` (not a DLQ) used to be accepted with a warning per record.
    refused = run_cli(replay_cmd(stack, source), env=stack.env(), timeout=60)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert f"--topic '{source}' is not a dead-letter topic" in line and "--force" in line
    # --force reads it, and --dry-run shows that nothing in it is a dead letter (and commits nothing).
    forced = run_cli(replay_cmd(stack, source, "--force", "--dry-run"), env=stack.env(), timeout=120)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "read=3 would_replay=0 filtered=0 not_dead_letters=3" in forced.stdout, forced.stdout
    # `--topic orders.dql` (a typo) used to end in a traceback: one line, exit 2.
    missing = run_cli(replay_cmd(stack, f"{source}.dql", "--force"), env=stack.env(), timeout=60)
    assert missing.returncode == 2
    [line] = missing.stderr.strip().splitlines()
    assert f"--topic '{source}.dql': no such topic" in line
    assert "Traceback" not in missing.stderr


def test_a_run_never_reads_its_own_copies_which_carry_a_replay_count(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack, dlq = dead_lettered_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, n=6)
    # --dry-run: what would be replayed, by rule, and the group stays where it was.
    dry = run_cli(replay_cmd(stack, dlq, "--dry-run"), env=stack.env(), timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "read=6 would_replay=6" in dry.stdout and "loyalty-profile=6" in dry.stdout, dry.stdout
    assert "nothing committed" in dry.stdout
    assert committed(kafka_bootstrap, f"{stack.group}.replay.{dlq}", dlq, 1)[0] < 0

    first = run_cli(replay_cmd(stack, dlq), env=stack.env(), timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    # It read the 6 it saw at start, not the 6 copies it wrote into the same topic while running.
    assert "read=6 delivered=0 dead_lettered=6" in first.stdout, first.stdout
    after_first = read_all(kafka_bootstrap, dlq)
    assert len(after_first) == 12
    assert all(REPLAY_COUNT_HEADER not in m.headers for m in after_first[:6])
    assert [m.headers[REPLAY_COUNT_HEADER] for m in after_first[6:]] == [b"1"] * 6
    # Same coordinates as the originals: still findable as the same records.
    originals = {
        (m.headers["dlq.original.partition"], m.headers["dlq.original.offset"]) for m in after_first[:6]
    }
    copies = {
        (m.headers["dlq.original.partition"], m.headers["dlq.original.offset"]) for m in after_first[6:]
    }
    assert copies == originals

    second = run_cli(replay_cmd(stack, dlq), env=stack.env(), timeout=120)
    assert "read=6 delivered=0 dead_lettered=6" in second.stdout, second.stdout
    after_second = read_all(kafka_bootstrap, dlq)
    assert [m.headers[REPLAY_COUNT_HEADER] for m in after_second[12:]] == [b"2"] * 6


def test_with_the_broker_down_replay_fails_fast_with_one_line(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["loyalty"])
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli(
        replay_cmd(stack, stack.dlq("loyalty")), env=stack.env(KAFKA_BOOTSTRAP_SERVERS=dead), timeout=60
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach Kafka at {dead} within 10s "
        "(check KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers and that the broker is up)"
    ], result.stderr[-2000:]
    assert elapsed < 30, elapsed  # a bound on a failure path (it used to take a minute), not a speed test
