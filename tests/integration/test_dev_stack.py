"""The local stack (issue 12, item 2): README's "Next: run it yourself", command by command, then nothing left.

Before: outside the demo nothing started a Schema Registry, so with the shipped config
``produce-samples --count 5`` ended in ``error: orders: schema registry unreachable``. Here ``dev up`` starts
a real Kafka broker, the registry and the sandbox; every command of the README block runs with the shipped
``config/connector.yaml`` exactly as written, ``/metrics`` is scraped while ``run`` runs, and ``dev down``
leaves no process and no temporary folder. The only difference from a person's terminal: the stack's ports
are free ones (``DEV_*_PORT``; the machine is shared) and its state folder is the test's (``ATTENTIVE_DEV_STATE``);
the exports follow them, and the README commands are unchanged.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest

from connector.devkafka.broker import free_port
from tests.support import REPO, wait_for

pytestmark = pytest.mark.integration

CONFIG = "--config config/connector.yaml"
COMMANDS = [
    'eval "$(attentive-connector dev up)"',
    f"attentive-connector validate {CONFIG}",
    f"attentive-connector produce-samples {CONFIG} --count 20 --invalid-ratio 0.3",
    f"attentive-connector route {CONFIG} --topic signups --input config/examples/signups.jsonl --format json",
    f"attentive-connector check-auth {CONFIG}",
    f"attentive-connector run {CONFIG}",
    "curl -s localhost:$METRICS_PORT/metrics | grep records_processed_total",
    f"attentive-connector dlq replay {CONFIG} --topic orders.dlq --dry-run",
    f"attentive-connector dlq replay {CONFIG} --topic orders.dlq",
    "attentive-connector dev down",
]


def readme_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Next: run it yourself", 1)[1]
    block = section.split("```\n", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_block_is_what_this_test_runs() -> None:
    assert readme_block() == COMMANDS


def cli(line: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    args = shlex.split(line)
    assert args[0] == "attentive-connector"
    return subprocess.run(
        [sys.executable, "-m", "connector", *args[1:]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), so the test can check each is gone after ``dev down``."""
    out: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            with_children = task / "children"
            if with_children.exists():
                kids = [int(x) for x in with_children.read_text().split()]
                out += kids
                stack += kids
    return out


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ", 1)[1].startswith("Z")  # a zombie awaiting init's reaping
    except (OSError, IndexError):
        return True


def processed(metrics_url: str) -> dict[str, float]:
    body = httpx.get(metrics_url, timeout=5).text
    totals: dict[str, float] = {}
    for m in re.finditer(r"^attentive_connector_records_processed_total\{([^}]*)\} (\S+)$", body, re.M):
        outcome = re.search(r'outcome="([^"]+)"', m.group(1))
        topic = re.search(r'topic="([^"]+)"', m.group(1))
        assert outcome and topic
        key = f"{topic.group(1)}:{outcome.group(1)}"
        totals[key] = totals.get(key, 0) + float(m.group(2))
    return totals


def test_dev_up_then_every_readme_command_with_the_shipped_config_then_dev_down(tmp_path: Path) -> None:
    state = tmp_path / "dev-state"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "ATTENTIVE_", "SCHEMA_", "METRICS_", "LOG_", "PYTEST_"))
    }
    env.update(
        ATTENTIVE_DEV_STATE=str(state),
        DEV_KAFKA_PORT=str(free_port()),
        DEV_REGISTRY_PORT=str(free_port()),
        DEV_SANDBOX_PORT=str(free_port()),
        DEV_METRICS_PORT=str(free_port()),
    )
    steps = iter(COMMANDS)
    up = cli(next(steps).removeprefix('eval "$(').removesuffix(')"'), env, timeout=400)
    assert up.returncode == 0, up.stderr[-3000:]
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", up.stdout, re.M))
    assert up.stdout.strip().splitlines() == [f"export {k}={v}" for k, v in exports.items()]  # eval-able
    assert exports["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{env['DEV_KAFKA_PORT']}"
    assert exports["SCHEMA_REGISTRY_URL"] == f"http://127.0.0.1:{env['DEV_REGISTRY_PORT']}/apis/ccompat/v7"
    assert exports["ATTENTIVE_API_BASE_URL"] == f"http://127.0.0.1:{env['DEV_SANDBOX_PORT']}"
    assert exports["METRICS_PORT"] == env["DEV_METRICS_PORT"]
    env.update(exports)
    server = int((state / "pid").read_text())
    parts = children(server)
    assert len(parts) >= 2, parts  # the broker's JVM and the sandbox
    jvm_dirs = [
        Path(a.split("=", 1)[1])
        for pid in parts
        for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if a.startswith("-Dkafka.logs.dir=")
    ]
    assert len(jvm_dirs) == 1 and jvm_dirs[0].is_dir()
    # Running it again while up says so and prints the same exports.
    again = cli("attentive-connector dev up", env)
    assert again.returncode == 0 and again.stdout == up.stdout, again.stderr
    try:
        validate = cli(next(steps), env)
        assert validate.returncode == 0 and validate.stdout.startswith("ok: "), (
            validate.stdout + validate.stderr
        )

        produce = cli(next(steps), env)
        assert produce.returncode == 0, produce.stderr[-3000:]
        assert produce.stdout.splitlines() == [
            f"produced 20 records to {t}" for t in ("orders", "loyalty", "signups", "privacy")
        ]
        assert produce.stderr == ""  # quiet: no librdkafka lines, no warnings

        route = cli(next(steps), env)
        assert route.returncode == 0, route.stderr[-3000:]
        assert route.stdout.splitlines() and all(line.startswith("{") for line in route.stdout.splitlines())

        auth = cli(next(steps), env)
        assert auth.returncode == 0 and auth.stdout.startswith("ok: company="), auth.stdout + auth.stderr

        run_line = next(steps)
        run = subprocess.Popen(
            [sys.executable, "-m", "connector", *shlex.split(run_line)[1:]],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        metrics_url = f"http://localhost:{env['METRICS_PORT']}/metrics"
        assert next(steps) == "curl -s localhost:$METRICS_PORT/metrics | grep records_processed_total"
        try:

            def all_in() -> bool:
                try:
                    return sum(processed(metrics_url).values()) >= 80
                except httpx.HTTPError:
                    return False

            wait_for(all_in, timeout_s=120, what="the 80 sample records to be processed")
            totals = processed(metrics_url)
        finally:
            run.send_signal(signal.SIGINT)
            run_out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, run_out[-3000:]
        assert sum(totals.values()) == 80, totals
        orders_dead = int(totals.get("orders:dead_lettered", 0))
        assert orders_dead >= 1, totals  # --invalid-ratio 0.3
        assert "'pending': 0" in run_out

        dry = cli(next(steps), env)
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert f"read={orders_dead} would_replay={orders_dead}" in dry.stdout, dry.stdout
        replay = cli(next(steps), env)
        assert replay.returncode == 0, replay.stderr[-3000:]
        assert f"read={orders_dead} delivered=0 dead_lettered={orders_dead}" in replay.stdout, replay.stdout
    finally:
        down = cli(next(steps, "attentive-connector dev down"), env, timeout=180)
    assert down.returncode == 0, down.stderr
    assert not state.exists()
    for pid in [server, *parts]:
        wait_for(partial(gone, pid), timeout_s=30, what=f"process {pid} to exit")
    assert not jvm_dirs[0].exists()
    for name in ("DEV_KAFKA_PORT", "DEV_REGISTRY_PORT", "DEV_SANDBOX_PORT"):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", int(env[name])))  # free again


def test_dev_down_while_the_stack_is_still_starting_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "dev-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "PYTEST_"))}
    env.update(ATTENTIVE_DEV_STATE=str(state), DEV_KAFKA_PORT=str(free_port()),
               DEV_REGISTRY_PORT=str(free_port()), DEV_SANDBOX_PORT=str(free_port()))  # fmt: skip
    up = subprocess.Popen(
        [sys.executable, "-m", "connector", "dev", "up"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (state / "pid").exists(), timeout_s=60, what="the background process")
        server = int((state / "pid").read_text())

        def jvm() -> list[int]:
            return [p for p in children(server) if b"kafka.Kafka" in Path(f"/proc/{p}/cmdline").read_bytes()]

        wait_for(lambda: bool(jvm()), timeout_s=120, what="the broker JVM to start")
        [broker] = jvm()
        data = next(
            Path(a.split("=", 1)[1])
            for a in Path(f"/proc/{broker}/cmdline").read_bytes().decode().split("\0")
            if a.startswith("-Dkafka.logs.dir=")
        )
        down = cli("attentive-connector dev down", env, timeout=180)
        assert down.returncode == 0, down.stderr
    finally:
        out, err = up.communicate(timeout=120)
    assert up.returncode != 0 and out == "", (out, err)  # no exports for a stack that never came up
    for pid in (server, broker):
        wait_for(partial(gone, pid), timeout_s=60, what=f"process {pid} to exit")
    assert not data.exists() and not state.exists()
