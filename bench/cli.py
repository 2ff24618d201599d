"""``python -m bench [--quick] [--out PATH]``: every benchmark figure in one run, on the real local broker and
the sandbox, printed as a table and written as JSON (``bench/results/latest.json`` by default).

Phases, in order (each one's failure is recorded and the others still run; the exit code is then 1):

1. ceilings — consume + decode; bare HTTP client to the sandbox (no validation, no limits, no latency)
2. naive baseline — consume → POST → commit-each-record, on the same data and sandbox
3. end to end — the connector subprocess drains a backlog against that sandbox
4. backlog — a large backlog (1M records; a few thousand with ``--quick``), RSS sampled throughout
5. Attentive-shaped — Attentive's limits and 100 ± 50 ms: per-endpoint achieved rate and 429s, then the
   added latency at half the limits
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import backlog as bl
from bench import ceilings, report, shaped
from bench.connector_proc import ConnectorProcess
from bench.e2e import drain, finish
from bench.machine import machine_info
from bench.naive import naive_loop
from bench.stack import FAST_SANDBOX_FLAGS, REPO, SHAPED_SANDBOX_FLAGS, TOPICS, Stack, running_stack
from connector.attentive.endpoints import Endpoint
from connector.config import ConnectorConfig, load_config
from connector.devkafka.broker import free_port

PHASES = ("consume_decode", "bare_http", "naive", "e2e", "backlog", "attentive_shaped")
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does. ``--quick`` keeps the whole run under a minute."""

    pool_per_topic: int
    e2e_records: int
    bare_http_s: float
    naive_records: int
    naive_max_s: float
    backlog_records: int
    shaped_busy_s: float  # each endpoint saturated for about this long
    latency_s: float  # records produced at half the limits for this long
    transports: bool  # also measure httpx's default transport and raw aiohttp (for the README's choice)


FULL = Sizes(
    pool_per_topic=2000,
    e2e_records=100_000,
    bare_http_s=10,
    naive_records=3000,
    naive_max_s=15,
    backlog_records=1_000_000,
    shaped_busy_s=20,
    latency_s=30,
    transports=True,
)
QUICK = Sizes(
    pool_per_topic=200,
    e2e_records=3000,
    bare_http_s=2,
    naive_records=300,
    naive_max_s=3,
    backlog_records=5000,
    shaped_busy_s=4,
    latency_s=4,
    transports=False,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"results JSON (default {DEFAULT_OUT.relative_to(REPO)})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample every connector subprocess with py-spy; collapsed stacks and a summary go to DIR",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated phases to run (default: all; for working on one phase)",
    )
    parser.add_argument(
        "--backlog-records", type=int, default=None, help="override the backlog size (default 1M, quick 5k)"
    )


class Run:
    """One benchmark run: the stack, the sizes, and the results as they come in."""

    def __init__(
        self, stack: Stack, sizes: Sizes, log: Callable[[str], None], profile_dir: Path | None = None
    ) -> None:
        self.profile_dir = profile_dir
        self.stack = stack
        self.sizes = sizes
        self.log = log
        self.results: dict[str, Any] = dict.fromkeys(report.REQUIRED_KEYS)
        self.details: dict[str, Any] = {}
        self.errors: list[str] = []
        self._groups = 0

    # ----------------------------------------------------------------------------------------- helpers

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        self.log(f"[bench] {name} …")
        t0 = time.monotonic()
        try:
            fn()
            self.log(f"[bench] {name} done in {time.monotonic() - t0:.1f}s")
        except Exception as exc:
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            self.log(f"[bench] {name} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
        self.details.setdefault("phase_seconds", {})[name] = round(time.monotonic() - t0, 1)

    def config(
        self, name: str, base_url: str, *, unlimited: bool = False
    ) -> tuple[Path, ConnectorConfig, int, str]:
        self._groups += 1
        group = f"bench-{name}-{self._groups}"
        port = free_port()
        path = self.stack.connector_config(
            name, base_url=base_url, group_id=group, metrics_port=port, unlimited=unlimited
        )
        return path, load_config(path, env={}), port, group

    def connector(
        self, name: str, base_url: str, start: dict[tuple[str, int], int], *, unlimited: bool = False
    ) -> ConnectorProcess:
        path, _, port, group = self.config(name, base_url, unlimited=unlimited)
        bl.start_group_at(self.stack.bootstrap, group, start)
        env = {"ATTENTIVE_API_KEY": self.stack.api_key}
        profile = self.profile_dir / f"{name}.collapsed.txt" if self.profile_dir else None
        return ConnectorProcess(path, port, env, profile_to=profile)

    def _save_journal(self, name: str, journal: list[dict[str, Any]]) -> None:
        """With ``--profile``, keep the sandbox's journal (without bodies) next to the profiles."""
        if self.profile_dir is None:
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        rows = [{k: e.get(k) for k in ("time", "path", "status", "record_id")} for e in journal]
        (self.profile_dir / f"{name}.journal.json").write_text(json.dumps(rows), encoding="utf-8")

    # ------------------------------------------------------------------------------------------ phases

    def prepare(self) -> None:
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        _, self.cfg, _, _ = self.config("pool", fast.url)
        self.pool = bl.build_pool(self.cfg, TOPICS, self.sizes.pool_per_topic)
        sigs = {"+".join(s): len(v) for s, v in self.pool.by_signature().items()}
        self.details["pool"] = {
            "records_per_topic": self.sizes.pool_per_topic,
            "calls_per_record": round(self.pool.calls_per_record(), 3),
            "signatures": sigs,
        }
        self.e2e_start = bl.end_offsets(self.stack.bootstrap, TOPICS)
        self.e2e_records = bl.natural_mix(self.pool, self.sizes.e2e_records)
        t0 = time.monotonic()
        bl.produce(self.stack.bootstrap, self.e2e_records)
        self.details["produce_records_per_s"] = round(len(self.e2e_records) / (time.monotonic() - t0))

    def consume_decode(self) -> None:
        rate = ceilings.consume_decode(self.cfg, self.e2e_start, len(self.e2e_records))
        self.results["consume_decode_records_per_s"] = round(rate.per_s, 1)

    def bare_http(self) -> None:
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        reqs = self.pool.requests
        rate, statuses = ceilings.bare_http(
            fast.url, self.stack.api_key, reqs, duration_s=self.sizes.bare_http_s
        )
        _require_2xx("bare HTTP", statuses)
        self.results["bare_http_requests_per_s"] = round(rate.per_s, 1)
        self.details["bare_http"] = {
            "transport": _transport_name(),
            "requests": rate.count,
            "statuses": statuses,
        }
        if self.sizes.transports:
            others: dict[str, float] = {}
            r, st = ceilings.bare_http(
                fast.url, self.stack.api_key, reqs, duration_s=self.sizes.bare_http_s / 2, transport="httpx"
            )
            _require_2xx("httpx default transport", st)
            others["httpx_default_transport"] = round(r.per_s, 1)
            others["aiohttp"] = round(
                ceilings.bare_aiohttp(
                    fast.url, self.stack.api_key, reqs, duration_s=self.sizes.bare_http_s / 2
                ).per_s,
                1,
            )
            self.details["bare_http"]["other_clients_requests_per_s"] = others

    def naive(self) -> None:
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        rate, statuses = naive_loop(
            self.cfg,
            self.e2e_start,
            base_url=fast.url,
            api_key=self.stack.api_key,
            max_records=self.sizes.naive_records,
            max_seconds=self.sizes.naive_max_s,
        )
        _require_2xx("naive", statuses)
        self.results["naive_records_per_s"] = round(rate.per_s, 1)
        self.details["naive"] = {
            "records": rate.count,
            "seconds": round(rate.seconds, 2),
            "statuses": statuses,
        }

    def e2e(self) -> None:
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        n = len(self.e2e_records)
        with self.connector("e2e", fast.url, self.e2e_start, unlimited=True) as cp:
            result = drain(cp, n, timeout_s=max(120.0, n / 200), log=self.log)
        finish(result, cp.sampler)
        self.results["e2e_records_per_s"] = round(result.records_per_s, 1)
        self.results["cpu_s_per_1000"] = round(result.cpu_s_per_1000, 3)
        self.results["peak_rss_mb"] = round(result.peak_rss_mb, 1)
        self.details["e2e"] = _drain_details(result)

    def backlog(self) -> None:
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        n = self.sizes.backlog_records
        start = bl.end_offsets(self.stack.bootstrap, TOPICS)
        t0 = time.monotonic()
        bl.produce(self.stack.bootstrap, bl.natural_mix(self.pool, n, seed=11))
        produce_s = time.monotonic() - t0
        with self.connector("backlog", fast.url, start, unlimited=True) as cp:
            result = drain(cp, n, timeout_s=max(300.0, n / 500), log=self.log)
        finish(result, cp.sampler)
        self.results["backlog_peak_rss_mb"] = round(result.peak_rss_mb, 1)
        self.details["backlog"] = {**_drain_details(result), "produce_s": round(produce_s, 1)}

    def attentive_shaped(self) -> None:
        self.stack.stop_sandbox(*FAST_SANDBOX_FLAGS)  # its CPU is no longer needed
        sb = self.stack.sandbox(*SHAPED_SANDBOX_FLAGS)
        limits = {e: self.cfg.attentive.rate_limit(e) for e in Endpoint}
        # 1. saturation: every endpoint has about limit × busy_s requests to make.
        busy = bl.shaped_mix(self.pool, {e: r * self.sizes.shaped_busy_s for e, r in limits.items()})
        start = bl.end_offsets(self.stack.bootstrap, TOPICS)
        bl.produce(self.stack.bootstrap, busy)
        sb.clear()
        planned = {str(e): n for e, n in bl.endpoint_calls(busy).items()}
        with self.connector("shaped", sb.url, start) as cp:
            cp.wait_processed(len(busy), timeout_s=self.sizes.shaped_busy_s * 4 + 90, log=self.log)
            journal = sb.journal()
            self.results["attentive_shaped"] = shaped.saturation(journal, limits)
            self._save_journal("shaped-saturation", journal)
            sb.clear()
            # 2. added latency: records at half of every limit, produced at a steady pace.
            steady = bl.shaped_mix(
                self.pool, {e: r / 2 * self.sizes.latency_s for e, r in limits.items()}, seed=5
            )
            produced = bl.produce_paced(self.stack.bootstrap, steady, duration_s=self.sizes.latency_s)
            cp.wait_processed(len(busy) + len(steady), timeout_s=self.sizes.latency_s * 3 + 60, log=self.log)
            journal = sb.journal()
            self._save_journal("shaped-latency", journal)
            lat = shaped.added_latencies_ms(journal, produced.timestamps)
        p50, p99 = shaped.percentile(lat, 0.50), shaped.percentile(lat, 0.99)
        self.results["p50_added_latency_ms"] = None if p50 is None else round(p50, 1)
        self.results["p99_added_latency_ms"] = None if p99 is None else round(p99, 1)
        self.details["attentive_shaped"] = {
            "sandbox_flags": list(SHAPED_SANDBOX_FLAGS),
            "saturation_records": len(busy),
            "planned_calls": planned,
            "latency_records": len(steady),
            "latency_samples": len(lat),
            "latency_max_ms": round(max(lat), 1) if lat else None,
        }


def _drain_details(r: Any) -> dict[str, Any]:
    return {
        "records": r.records,
        "seconds": round(r.seconds, 2),
        "records_per_s": round(r.records_per_s, 1),
        "requests_per_s": round(r.requests_per_s, 1),
        "cpu_s": round(r.cpu_s, 2),
        "outcomes": r.outcomes,
        "requests_2xx": r.requests_2xx,
        "requests_other": r.requests_other,
        "rss_mb_samples": r.rss_mb_samples,
    }


def _require_2xx(what: str, statuses: dict[int, int]) -> None:
    bad = {s: n for s, n in statuses.items() if not 200 <= s < 300}
    if bad:
        raise RuntimeError(f"{what}: non-2xx answers from the sandbox: {bad}")


def _transport_name() -> str:
    t = ceilings.make_transport()
    return f"httpx + {type(t).__module__}.{type(t).__name__}"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.backlog_records is not None:
        sizes = Sizes(**{**asdict(sizes), "backlog_records": args.backlog_records})

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.monotonic()
    # SIGTERM (CI's time-out, a ^C from make) unwinds like ^C, so the broker, sandboxes and connector stop.
    signal.signal(signal.SIGTERM, _terminate)
    command = "python -m bench" + (
        ""
        if argv is None and len(sys.argv) <= 1
        else " " + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    base: dict[str, Any] = {
        "machine": machine_info(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": bool(args.quick),
    }
    with tempfile.TemporaryDirectory(prefix="attentive-bench-") as tmp:
        log("[bench] starting the Kafka broker, schema registry and sandbox …")
        run: Run | None = None
        errors: list[str] = []
        try:
            with running_stack(Path(tmp)) as stack:
                run = Run(stack, sizes, log, args.profile)
                run.phase("prepare", run.prepare)
                wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
                unknown = sorted(set(wanted) - set(PHASES))
                if unknown:
                    parser.error(f"unknown phase(s): {', '.join(unknown)}; known: {', '.join(PHASES)}")
                for name in PHASES:
                    if name in wanted and not any(e.startswith("prepare") for e in run.errors):
                        run.phase(name, getattr(run, name))
        except Exception as exc:
            errors.append(f"stack: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
    results: dict[str, Any] = dict.fromkeys(report.REQUIRED_KEYS)
    if run is not None:
        results.update(run.results)
        errors = run.errors + errors
        details = run.details
    else:
        details = {}
    results.update(base)
    results["sizes"] = asdict(sizes)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["details"] = details
    results["errors"] = errors
    report.add_derived(results)
    report.write_json(results, args.out)
    print(report.table(results))
    print(f"\nwrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
