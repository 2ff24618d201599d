"""``dev up`` / ``dev down`` error paths (no broker started): one line each, exit 2, nothing left behind."""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from pathlib import Path

from connector.pipeline.replay import _show
from tests.support import run_cli


def env_for(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEV_", "PYTEST_"))}
    return {**env, "ATTENTIVE_DEV_STATE": str(state), **extra}


def test_a_taken_port_is_one_line_naming_it_and_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["dev", "up"], env=env_for(tmp_path / "s", DEV_REGISTRY_PORT=str(port)), timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: registry port {port} is taken on 127.0.0.1: stop what uses it, or pick another with "
        "--registry-port / DEV_REGISTRY_PORT"
    )
    assert result.stdout == ""  # no exports for a stack that is not there
    assert not (tmp_path / "s").exists()


def test_a_bad_port_variable_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["dev", "up"], env=env_for(tmp_path / "s", DEV_KAFKA_PORT="kafka"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: environment variable DEV_KAFKA_PORT: expected a port number from 1 to 65535"
    ]


def test_down_when_nothing_runs_is_fine(tmp_path: Path) -> None:
    result = run_cli(["dev", "down"], env=env_for(tmp_path / "s"), timeout=60)
    assert result.returncode == 0
    assert result.stderr.strip() == "dev: not running"


def test_replay_progress_is_whole_lines_that_log_lines_never_cut_into() -> None:
    # Before: "\rreplay …" updates in place, so a log line written meanwhile landed in the middle of one.
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("t.progress")
    log.addHandler(handler)
    log.propagate = False
    stats = {
        "consumed": 3,
        "pending": 1,
        "delivered": 1,
        "dead_lettered": 1,
        "skipped": 0,
        "stale": 0,
        "filtered": 0,
    }

    def logs() -> None:
        for i in range(200):
            log.warning("dead-lettered orders/0/%d", i)

    t = threading.Thread(target=logs)
    t.start()
    for _ in range(200):
        _show(out, "orders.dlq", stats, 5)
    t.join()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    progress = [x for x in lines if x.startswith("replay ")]
    assert len(progress) == 200
    assert set(progress) == {
        "replay orders.dlq: 2/5 (delivered 1, dead-lettered again 1, skipped 0, filtered out 0)"
    }
    assert all(x.startswith(("replay ", "dead-lettered ")) for x in lines)
