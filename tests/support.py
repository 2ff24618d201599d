"""Test support shared by fixtures and tests: the sandbox subprocess handle and small helpers."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SANDBOX_API_KEY = "sandbox-test-key-3f9c2a"  # not a real key; tests assert it never leaks


class SandboxProcess:
    """``attentive-connector sandbox`` running as a subprocess on a free loopback port."""

    def __init__(self, *flags: str, api_key: str = SANDBOX_API_KEY) -> None:
        self.api_key = api_key
        cmd = [sys.executable, "-m", "connector", "sandbox", "--port", "0", "--api-key", api_key, *flags]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            text=True,
        )
        self.url = self._wait_for_url(timeout_s=30)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        for stream, sink in ((self.proc.stdout, None), (self.proc.stderr, self.stderr_tail)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _wait_for_url(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise RuntimeError(f"sandbox exited ({self.proc.returncode}) before listening:\n{err}")
                continue
            if line.startswith("sandbox listening on "):
                return line.split("sandbox listening on ", 1)[1].strip()
        raise RuntimeError("sandbox did not print its address in time")

    @staticmethod
    def _drain(stream: Any, sink: collections.deque[str] | None) -> None:
        # Keep reading so the child never blocks on a full pipe.
        for line in stream:
            if sink is not None:
                sink.append(line)

    def set_faults(self, faults: dict[str, Any]) -> None:
        r = self.http.post("/__sandbox/faults", json=faults)
        r.raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        r = self.http.get("/__sandbox/requests")
        r.raise_for_status()
        data = r.json()
        return list(data["requests"] if isinstance(data, dict) else data)

    def clear(self) -> None:
        self.http.delete("/__sandbox/requests").raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = self.http.get("/__sandbox/stats")
        r.raise_for_status()
        return dict(r.json())

    def reset(self) -> None:
        self.set_faults({})
        self.clear()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2, what: str = "") -> None:
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


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
