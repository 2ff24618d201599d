"""The rest of issue 12's traps, each reproduced as a newcomer hit it and shown fixed, with real parts.

1. ``demo --keep-running`` printed a metrics URL nothing listened on.
6. ``produce-samples`` against a dead broker took 61 s and printed 324 lines.
7. The helm ``make helm`` builds refused the chart (``kubeVersion … incompatible with Kubernetes v1.20.0``).
8. SIGTERM to ``python -m connector.devkafka.broker`` left the JVM running and its temp dir behind.
9. A 401 did not say which key source was used.
10. Noise: setuptools licence warnings, librdkafka ``FAIL`` lines before the first useful line, reST markup in
    ``--help``.
(3, 4: tests/integration/test_replay_guards.py; 5, 9: tests/unit/test_config_env_and_keys.py; 6 for ``run``:
tests/unit/test_broker_down_logs.py; 2 and the local stack: tests/integration/test_dev_stack.py.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from connector.devkafka.broker import free_port
from tests.support import REPO, SandboxProcess, connector_env, run_cli, wait_for

pytestmark = pytest.mark.integration

NOISE = re.compile(r"%\d\|\d+\.\d+\||\bFAIL\b|Connection refused|SetuptoolsDeprecationWarning|Traceback")


def test_demo_keep_running_serves_what_it_prints_and_starts_quietly(kafka_bootstrap: str) -> None:
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "demo", "--count", "5", "--bad", "1", "--keep-running",
         "--metrics-port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "press Ctrl-C to stop" in line or proc.poll() is not None:
                break
        assert any("press Ctrl-C to stop" in x for x in lines), "\n".join(lines[-30:])
        printed = f"http://127.0.0.1:{port}/metrics"
        assert any(printed in x for x in lines), lines
        metrics = httpx.get(printed, timeout=10)
        assert metrics.status_code == 200
        assert "attentive_connector_records_processed_total" in metrics.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    lines += rest.splitlines()
    assert proc.returncode == 0, "\n".join(lines[-30:])
    assert lines[-1].startswith("demo: produced=") and lines[-1].endswith("pending=0")
    # Quiet start: the first line is the demo's own, and no expected-connection noise anywhere.
    assert lines[0].startswith("demo: "), lines[:5]
    assert not [x for x in lines if NOISE.search(x)], [x for x in lines if NOISE.search(x)]


def test_produce_samples_against_a_dead_broker_fails_fast_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "connector.yaml"
    cfg.write_text(yaml.safe_dump({"topics": {"signups": {"schema": str(REPO / "schemas" / "signups.avsc")}},
                                   "rules": str(REPO / "config" / "rules.yaml")}))  # fmt: skip
    dead = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ATTENTIVE_"))}
    started = time.monotonic()
    result = run_cli(["produce-samples", "--config", str(cfg), "--count", "5"],
                     env={**env, "KAFKA_BOOTSTRAP_SERVERS": dead}, timeout=90)  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert (result.stdout + result.stderr).strip().splitlines() == [
        f"error: cannot reach Kafka at {dead} within 10s "
        "(check KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers and that the broker is up)"
    ]
    assert elapsed < 30, elapsed  # bounds a failure path that used to take 61 s; not a speed test


def _helm() -> str:
    for candidate in (os.environ.get("HELM"), str(REPO / ".cache" / "bin" / "helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("helm not built: `make helm`")


def test_the_helm_the_project_builds_accepts_the_chart_as_the_readme_installs_it() -> None:
    helm = _helm()
    makefile = (REPO / "Makefile").read_text()
    wanted = re.search(r"^HELM_VERSION := (\S+)$", makefile, re.M)
    assert wanted is not None
    version = subprocess.run(
        [helm, "version", "--template", "{{.Version}}"], capture_output=True, text=True, check=False
    )
    assert version.stdout.strip() == wanted.group(1), "helm is unstamped: rebuild it with `make helm`"
    # The README's install flags, rendered without --kube-version (what `helm install` checks first).
    rendered = subprocess.run(
        [helm, "template", "shop", str(REPO / "helm" / "attentive-connector"),
         "--set", "attentive.existingSecret=attentive-api-key",
         "--set", "config.kafka.bootstrap_servers=kafka:9092",
         "--set-file", f"rules={REPO / 'config' / 'rules.yaml'}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: Deployment" in rendered.stdout


def test_sigterm_to_the_broker_launcher_stops_the_jvm_and_removes_its_data() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.devkafka.broker"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
    )  # fmt: skip
    assert proc.stdout is not None
    listening = None
    for line in proc.stdout:
        if line.startswith("kafka listening on"):
            listening = line
            break
    assert listening is not None, proc.communicate(timeout=30)[0]
    m = re.search(r"\(pid (\d+), data (\S+), log:", listening)
    assert m, listening
    jvm, data = int(m.group(1)), Path(m.group(2))
    assert data.is_dir()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest

    def jvm_gone() -> bool:
        try:
            os.kill(jvm, 0)
        except ProcessLookupError:
            return True
        # Reparented to init once our child exited; a zombie until init reaps it.
        stat = Path(f"/proc/{jvm}/stat")
        return stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z")

    wait_for(jvm_gone, timeout_s=30, what="the broker JVM to exit")
    assert not data.exists()


def test_a_refused_key_names_its_source(sandbox: SandboxProcess) -> None:
    env = connector_env("127.0.0.1:1", sandbox, ATTENTIVE_API_KEY="not-the-sandbox-key-42")
    result = run_cli(["check-auth"], env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Attentive rejected the API key from ATTENTIVE_API_KEY (401): fix that key, "
        "or create a new one in Attentive (Integrations > Custom apps)"
    ]
    assert "not-the-sandbox-key-42" not in result.stderr + result.stdout


def test_help_is_plain_text() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    assert "``" not in result.stdout and ":class:" not in result.stdout
    assert "dev" in result.stdout


def test_building_the_package_gives_no_licence_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert not re.search(r"(?i)licen[cs]e", out.replace("attentive_connector", "")), [
        x for x in out.splitlines() if re.search(r"(?i)licen[cs]e", x)
    ]
