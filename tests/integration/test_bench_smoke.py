"""`python -m bench --quick` runs end to end and writes its JSON with every key.

A smoke test only: it asserts the benchmark ran and measured something, never how fast anything was (speed
depends on the machine; the figures are for people, in README's Performance section).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import REQUIRED_KEYS
from tests.support import REPO

# serial: its bounds are real-time rates and timings, so it runs alone (see the marker in pyproject.toml)
pytestmark = [pytest.mark.integration, pytest.mark.serial]

NUMERIC_KEYS = (
    "consume_decode_records_per_s",
    "bare_http_requests_per_s",
    "raw_aiohttp_requests_per_s",
    "bare_cpu_ms_per_request",
    "e2e_records_per_s",
    "e2e_requests_per_s",
    "cpu_s_per_1000",
    "cpu_ms_per_request",
    "peak_rss_mb",
    "naive_records_per_s",
    "p50_added_latency_ms",
    "p99_added_latency_ms",
    "backlog_peak_rss_mb",
    "e2e_vs_bare_http",
    "e2e_vs_naive",
)
ENDPOINTS = (
    "ecommerce.product_view",
    "ecommerce.add_to_cart",
    "ecommerce.purchase",
    "custom_event",
    "subscribe",
    "unsubscribe",
    "custom_attributes",
    "identity",
    "privacy.delete",
)


def test_quick_bench_runs_and_writes_every_key(tmp_path: Path, kafka_bootstrap: str) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # Reuse the session's broker rather than starting a second one on a 2-core machine.
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"bench failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr[-4000:]}"
    results = json.loads(out.read_text())

    assert set(REQUIRED_KEYS) <= results.keys()
    assert results["quick"] is True
    assert results["command"].startswith("python -m bench --quick")
    assert results["errors"] == []
    for key in NUMERIC_KEYS:
        value = results[key]
        assert isinstance(value, int | float) and value > 0, f"{key} = {value!r}"
    assert set(results["machine"]) >= {"cores", "memory_gb", "python", "cpu_model"}
    for run in ("attentive_shaped", "attentive_shaped_realistic"):
        shaped = dict(results[run])
        assert shaped.pop("key_distribution").split(":")[0] in ("samples", "realistic")
        assert set(shaped) == set(ENDPOINTS)
        for endpoint, figs in shaped.items():
            assert set(figs) >= {"limit", "achieved_per_s", "share_429"}, endpoint
            # Rates, not speeds: an endpoint the connector starved is rated 0, never left blank.
            assert figs["limit"] > 0 and figs["achieved_per_s"] >= 0, (endpoint, figs)
            assert figs["share_429"] is None or 0 <= figs["share_429"] <= 1, (endpoint, figs)
    for name in (
        "e2e_vs_bare_http",
        "e2e_vs_naive",
        "cpu_ms_per_request",
        "cpu_vs_bare_cpu",
        "e2e_requests_vs_bare_http",
        "bare_http_vs_raw_aiohttp",
        "p99_added_latency_ms",
        "p99_added_latency_ms_realistic",
        "peak_rss_mb",
        "backlog_peak_rss_mb",
    ):
        assert results["targets"][name]["pass"] in (True, False), f"target {name} was not evaluated"
    # The backlog phase drained records, and the sample data was all deliverable (nothing dead-lettered).
    backlog = results["details"]["backlog"]
    assert backlog["finished"] > 0
    assert set(backlog["outcomes"]) <= {"delivered", "skipped", "stale"}, backlog["outcomes"]
    # The table went to stdout with the same figures.
    assert "end to end" in proc.stdout and "Attentive-shaped endpoint" in proc.stdout
