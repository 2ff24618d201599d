"""Test support shared by fixtures and tests: the sandbox subprocess handle and small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from connector.devkafka.sandbox_process import SandboxProcess as _SandboxProcess

REPO = Path(__file__).resolve().parents[1]
SANDBOX_API_KEY = "sandbox-test-key-3f9c2a"  # not a real key; tests assert it never leaks


class SandboxProcess(_SandboxProcess):
    """The sandbox subprocess with the test API key."""

    def __init__(self, *flags: str, api_key: str = SANDBOX_API_KEY) -> None:
        super().__init__(*flags, api_key=api_key)


def wait_for(
    predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2, what: str = ""
) -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")


def connector_env(bootstrap: str, sandbox: SandboxProcess, **extra: str) -> dict[str, str]:
    """Environment for a connector subprocess pointed at the test broker and sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ATTENTIVE_API_BASE_URL=sandbox.url,
        ATTENTIVE_API_KEY=sandbox.api_key,
        METRICS_PORT="0",
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
