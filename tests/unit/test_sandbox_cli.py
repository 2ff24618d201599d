"""``attentive-connector sandbox``: flag parsing and the real subprocess (listening line, flags, shutdown)."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from connector.attentive.endpoints import Endpoint
from connector.sandbox.cli import add_arguments, settings_from_args
from tests.support import REPO

KEY = "cli-test-key"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_flags_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_from_args(
        parse(
            "--api-key",
            KEY,
            "--no-validate",
            "--lenient",
            "--rate-limit",
            "subscribe=3",
            "--rate-limit",
            "custom_event=40",
            "--latency-ms",
            "20",
            "--jitter-ms",
            "5",
            "--error-rate",
            "503=0.25",
            "--journal-max",
            "10",
            "--seed",
            "9",
        )
    )
    assert (s.api_key, s.validate, s.strict_top_level, s.rate_limit, s.journal_max, s.seed) == (
        KEY,
        False,
        False,
        True,
        10,
        9,
    )
    assert s.rate_limits == {Endpoint.SUBSCRIBE: 3, Endpoint.CUSTOM_EVENT: 40}
    assert s.limit(Endpoint.SUBSCRIBE) == 3 and s.limit(Endpoint.UNSUBSCRIBE) == 5
    assert s.faults == {"error_rates": {"503": 0.25}, "latency_ms": 20.0, "jitter_ms": 5.0}
    monkeypatch.setenv("ATTENTIVE_API_KEY", "from-env")
    assert settings_from_args(parse()).api_key == "from-env"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ((), "--api-key is required"),
        (("--api-key", KEY, "--rate-limit", "purchase=5"), "unknown endpoint 'purchase'"),
        (("--api-key", KEY, "--rate-limit", "subscribe"), "expected KEY=VALUE"),
        (("--api-key", KEY, "--rate-limit", "subscribe=0"), "at least 1"),
        (("--api-key", KEY, "--rate-limit", "subscribe=fast"), "not a number"),
        (("--api-key", KEY, "--error-rate", "503=2"), "between 0 and 1"),
        (("--api-key", KEY, "--error-rate", "200=0.1"), "not a 4xx/5xx"),
        (("--api-key", KEY, "--latency-ms", "-5"), "must not be negative"),
        (("--api-key", KEY, "--journal-max", "-1"), "must not be negative"),
    ],
)
def test_bad_flags(argv: tuple[str, ...], fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTENTIVE_API_KEY", raising=False)
    with pytest.raises(ValueError, match=fragment):
        settings_from_args(parse(*argv))


StartSandbox = Callable[..., tuple[subprocess.Popen[str], str]]


@pytest.fixture
def start() -> Iterator[StartSandbox]:
    """``start(*flags) -> (process, url)``: ``attentive-connector sandbox`` on a free port, once it says where it
    listens; every process still running when the test ends is killed."""
    procs: list[subprocess.Popen[str]] = []

    def _start(*flags: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "sandbox", "--port", "0", "--api-key", KEY, *flags],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:"), line + (
            proc.stderr.read() if proc.stderr else ""
        )
        return proc, line.split(" on ", 1)[1].strip()

    try:
        yield _start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


def test_subprocess_serves_and_stops_cleanly_on_sigterm(start: StartSandbox) -> None:
    proc, url = start("--rate-limit", "custom_event=2", "--error-rate", "500=0", "--seed", "1")
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            assert http.get("/v1/me").json()["companyName"] == "Sandbox Retail"
            body = {"type": "Signed Up", "user": {"email": "a@b.co"}}
            t0 = time.monotonic()
            statuses = [http.post(Endpoint.CUSTOM_EVENT.path, json=body).status_code for _ in range(5)]
            assert time.monotonic() - t0 < 1.0  # so they span at most two one-second windows: 4 allowed
            assert statuses.count(429) >= 1 and set(statuses) <= {200, 429}
            assert http.get("/__sandbox/stats").json()["total"] == 6
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_bad_flag_exits_2_and_busy_port_exits_1() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "connector", "sandbox", "--api-key", KEY, "--rate-limit", "nope=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown endpoint 'nope'" in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "connector", "sandbox", "--api-key", KEY, "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
