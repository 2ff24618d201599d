"""A real Prometheus server for tests: Debian's ``prometheus`` (installed by ``make promtool``) on loopback.

:func:`start_prometheus` writes a config that scrapes the given targets every second and evaluates the given
rule files every second, starts the server on a free loopback port with its data in a temporary folder, and
waits for ``/-/ready``. :class:`PrometheusServer` wraps the HTTP API the tests assert through
(``/api/v1/query``, ``query_range``, ``rules``, ``alerts``) and stops the server by its own pid.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from connector.devkafka.broker import free_port
from connector.devkafka.jvm import end_process


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    http: httpx.Client

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>``'s ``data``; fails the test on an API error."""
        resp = self.http.get(f"/api/v1/{path}", params=params)
        body = resp.json()
        assert resp.status_code == 200 and body.get("status") == "success", f"{path} {params}: {resp.text}"
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts now pending or firing (``/api/v1/alerts``)."""
        return list(self.api("alerts")["alerts"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no prometheus log)"

    def stop(self) -> None:
        self.http.close()
        end_process(self.process)


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise AssertionError(
            "the prometheus server is not on PATH: run `make promtool` (Debian's prometheus)"
        )
    return found


def start_prometheus(
    workdir: Path,
    *,
    targets: list[str],
    job: str,
    target_labels: dict[str, str],
    rule_files: list[Path],
    interval: str = "1s",
    start_timeout_s: float = 30.0,
) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` as ``job`` (with ``target_labels``), evaluating ``rule_files``."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets, "labels": target_labels}]},
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    server = PrometheusServer(url, proc, log_path, httpx.Client(base_url=url, timeout=10))
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited {proc.returncode}:\n{server.log_tail()}")
        try:
            if server.http.get("/-/ready").status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"prometheus was not ready within {start_timeout_s}s:\n{server.log_tail()}")
