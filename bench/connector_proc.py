"""The connector as a subprocess (``python -m connector run``), watched through its ``/metrics`` and ``/proc``.

A subprocess makes its CPU seconds and RSS its own. Progress is the sum of
``attentive_connector_records_processed_total`` over every label (one outcome per finished record).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.procstats import ProcessSampler
from bench.profile_summary import summarise
from bench.stack import REPO

PROCESSED = "attentive_connector_records_processed"
STOP_GRACE_S = 2.0


class ConnectorFailed(RuntimeError):
    """The connector exited, or made no progress in time. The message carries its stderr tail."""


def scrape(client: httpx.Client, url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` as {metric family name: {sorted label pairs: value}} (counters without ``_total``)."""
    r = client.get(url, timeout=5)
    r.raise_for_status()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(r.text):
        values = out.setdefault(fam.name, {})
        for s in fam.samples:
            if s.name.endswith(("_created", "_bucket")):
                continue
            values[tuple(sorted(s.labels.items()))] = s.value
    return out


def processed_by_outcome(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, int]:
    counts: dict[str, int] = collections.Counter()
    for labels, value in metrics.get(PROCESSED, {}).items():
        counts[dict(labels).get("outcome", "?")] += int(value)
    return dict(counts)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` attached to ``pid`` (all threads, native frames off), collapsed-stack output.

    py-spy samples from outside the process, so the profile costs the connector almost nothing.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    # py-spy writes its output when the target exits or on SIGINT.
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class Progress:
    """One observation of the connector: when, how many records finished, CPU seconds so far."""

    t: float
    processed: int
    cpu_s: float
    requests_2xx: int = 0


@dataclass
class ConnectorProcess:
    """A running connector subprocess. Use as a context manager; it is stopped (SIGTERM) on exit."""

    config: Path
    metrics_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    sampler: ProcessSampler | None = None
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))
    progress: list[Progress] = field(default_factory=list)
    last_metrics: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    # When set, py-spy samples the connector for its whole run and writes collapsed stacks here.
    profile_to: Path | None = None
    _profiler: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def __enter__(self) -> ConnectorProcess:
        env = {**os.environ, **self.env, "METRICS_PORT": str(self.metrics_port), "PYTHONUNBUFFERED": "1"}
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(self.config)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        self.sampler = ProcessSampler(self.proc.pid).start()
        self._http = httpx.Client()
        if self.profile_to is not None:
            self._profiler = start_profiler(self.proc.pid, self.profile_to)
        return self

    def _drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def _fail(self, what: str) -> ConnectorFailed:
        tail = "\n".join(self.stderr_tail)
        return ConnectorFailed(f"{what}\n--- connector stderr (tail) ---\n{tail}")

    def observe(self) -> Progress | None:
        """Scrape once; ``None`` while the metrics server is not up yet."""
        assert self.proc is not None
        assert self.sampler is not None
        if self.proc.poll() is not None:
            raise self._fail(f"the connector exited with code {self.proc.returncode}")
        try:
            metrics = scrape(self._http, self.metrics_url)
        except (httpx.HTTPError, OSError):
            return None
        sample = self.sampler.sample()
        self.last_metrics = metrics
        done = sum(processed_by_outcome(metrics).values())
        ok = sum(
            int(v)
            for labels, v in metrics.get("attentive_connector_api_requests", {}).items()
            if dict(labels).get("status_class") == "2xx"
        )
        p = Progress(time.monotonic(), done, sample.cpu_s if sample else 0.0, ok)
        self.progress.append(p)
        return p

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the connector serves metrics and reports itself ready (auth checked, consuming)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (
                self.observe() is not None
                and self.last_metrics.get("attentive_connector_ready", {}).get((), 0) == 1
            ):
                return
            time.sleep(0.2)
        raise self._fail(f"the connector was not ready within {timeout_s:.0f}s")

    def wait_processed(
        self,
        target: int,
        *,
        timeout_s: float,
        window_cap_s: float | None = None,
        above: int = 0,
        stall_s: float = 60.0,
        interval_s: float = 0.5,
        log: Callable[[str], None] | None = None,
    ) -> tuple[Progress | None, Progress]:
        """Wait until ``target`` records are finished; returns (first observation above ``above``, last).

        ``window_cap_s`` bounds the measured window (from the first observation with more than ``above``
        records finished): when it is reached the drain stops there and the last observation has fewer than
        ``target`` — the caller reports the drain as incomplete rather than blowing the time budget.
        Fails (:class:`ConnectorFailed`) when the connector exits, makes no progress for ``stall_s`` or
        does not start finishing records within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last_change = time.monotonic()
        last_count = -1
        next_log = time.monotonic() + 10
        first: Progress | None = None
        while True:
            p = self.observe()
            now = time.monotonic()
            if log is not None and now >= next_log:
                next_log = now + 10
                log(
                    f"[bench]   {0 if p is None else p.processed - above:,} of {target - above:,} records finished"
                )
            if p is not None:
                if first is None and p.processed > above:
                    first = p
                if p.processed >= target:
                    return first, p
                if first is not None and window_cap_s is not None and p.t - first.t >= window_cap_s:
                    return first, p
                if p.processed != last_count:
                    last_count, last_change = p.processed, now
            if first is None and now > deadline:
                raise self._fail(f"no record finished within {timeout_s:.0f}s")
            if now - last_change > stall_s:
                raise self._fail(
                    f"no progress for {stall_s:.0f}s at {max(last_count, 0) - above} of {target - above} records"
                )
            time.sleep(interval_s)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        assert self.sampler is not None
        if self.proc.poll() is None:
            # Each phase has its own consumer group, so how the connector shuts down is not measured and
            # need not be waited for: SIGTERM, a short grace, then SIGKILL.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.sampler.stop()
        self._http.close()
        if self._profiler is not None:
            stop_profiler(self._profiler)
            if self.profile_to is not None and self.profile_to.exists():
                summary = self.profile_to.with_name(
                    self.profile_to.name.replace(".collapsed.txt", ".summary.txt")
                )
                summary.write_text(summarise(self.profile_to) + "\n", encoding="utf-8")
