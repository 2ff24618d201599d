"""A running connector's /metrics, /healthz and /readyz, as Prometheus and Kubernetes see them.

Every metric the shipped dashboard and alert rules query must be exported by the real process; no label may
carry a per-record value; readiness flips false while Attentive refuses the key and back by itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.engine_support import (
    ConnectorProcess,
    JournalView,
    make_stack,
    produce_raw,
    produce_samples,
    wait_until,
)
from tests.metric_catalog import exported_metric_names, queried_metric_names
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration

_PHONE = re.compile(r"\+\d{10,15}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def test_metrics_health_and_readiness_of_a_running_connector(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox)
    produced = sum(produce_samples(stack, kind, 60, seed=5) for kind in stack.topics)
    produce_raw(kafka_bootstrap, stack.topics["orders"], [(b"k", b"\x00\x00\x00\x00\x07not avro")])
    produced += 1
    sandbox.set_faults({"error_rates": {"503": 0.05}, "latency_ms": 5})  # touches retries and 5xx
    proc = ConnectorProcess(stack)
    try:
        url = proc.wait_health_url()
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        wait_until(proc.ready, timeout_s=30, what="ready")
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        wait_until(
            lambda: proc.metric("attentive_connector_records_consumed_total") >= produced,
            timeout_s=90,
            what="every record consumed",
        )
        wait_until(
            lambda: proc.metric("attentive_connector_buffered_records") == 0,
            timeout_s=90,
            what="every record finished",
        )

        text = httpx.get(f"{url}/metrics", timeout=5).text
        missing = queried_metric_names() - exported_metric_names(text)
        assert not missing, f"the dashboard/alerts query metrics the connector does not export: {missing}"
        assert proc.metric("attentive_connector_ready") == 1
        assert proc.metric("attentive_connector_build_info") == 1
        assert proc.metric("attentive_connector_dlq_records_total") >= 1
        assert proc.metric("attentive_connector_decode_errors_total", topic=stack.topics["orders"]) >= 1
        assert proc.metric("attentive_connector_api_requests_total", status_class="2xx") > 0
        assert proc.metric("attentive_connector_last_poll_timestamp_seconds") > 0

        # No per-record values in labels: no phone, email, offset-like id or the API key.
        series = [line for line in text.splitlines() if line and not line.startswith("#")]
        labels = " ".join(line.split("{", 1)[1].rsplit("}", 1)[0] for line in series if "{" in line)
        assert not _PHONE.search(labels), "a phone number in a metric label"
        assert not _EMAIL.search(labels), "an email in a metric label"
        assert sandbox.api_key not in text
        label_names = set(re.findall(r'(\w+)="', labels))
        allowed = {"topic", "partition", "rule", "outcome", "endpoint", "status_class", "reason", "kind"}
        allowed |= {"result", "version", "le", "quantile"}
        assert label_names <= allowed, label_names - allowed

        # Readiness flips false while Attentive refuses the key, liveness does not, and both recover.
        sandbox.set_faults({"unauthorized_for_s": 4})
        produce_samples(stack, "loyalty", 20, seed=6)  # work that hits the 401 window
        # Not-ready lasts only until the window ends: /readyz and the gauge are read in the same poll that sees
        # it (read afterwards, they could already show the recovery on a loaded machine).
        refused: list[httpx.Response] = []

        def not_ready_seen() -> bool:
            try:
                answer = httpx.get(f"{url}/readyz", timeout=5)
            except httpx.HTTPError:
                return False
            if answer.status_code == 503 and proc.metric("attentive_connector_ready") == 0:
                refused.append(answer)
            return bool(refused)

        wait_until(not_ready_seen, timeout_s=20, what="not ready (/readyz 503, ready 0) in the 401 window")
        assert "auth" in refused[0].text.lower()
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        wait_until(proc.ready, timeout_s=30, what="ready again")
        assert proc.metric("attentive_connector_dlq_records_total") == 1  # only the not-Avro record
        assert JournalView.of(sandbox).entries
        assert proc.terminate() == 0
    finally:
        proc.stop_quietly()
    assert sandbox.api_key not in proc.log_text()
