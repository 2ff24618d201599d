"""The benchmark's phases, run in order by :func:`bench.cli.main` on one :class:`~bench.stack.Stack`.

Each phase writes its figures into ``Run.results`` (the JSON's top-level keys) and the supporting numbers into
``Run.details``; a phase that raises is recorded in ``Run.errors`` and the next one still runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backlog as bl
from bench import ceilings, keys, report, shaped
from bench.connector_proc import ConnectorProcess
from bench.e2e import drain
from bench.naive import naive_loop
from bench.procstats import cpu_seconds
from bench.sizes import FALLBACK_BACKLOG, Sizes
from bench.stack import FAST_SANDBOX_FLAGS, SHAPED_MIN_ANSWER_MS, SHAPED_SANDBOX_FLAGS, TOPICS, Stack
from connector.attentive.endpoints import Endpoint
from connector.config import ConnectorConfig, load_config
from connector.devkafka.broker import free_port

# The added-latency run is measured after this long at the same pace (see Run._shaped_run).
WARMUP_S = 3.0
PHASES = ("consume_decode", "bare_http", "naive", "e2e", "backlog", "attentive_shaped")


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
        self._exit = contextlib.ExitStack()  # connector processes still running
        self._fast_cp: ConnectorProcess | None = None
        self._fast_cp_above = 0

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
        rows = [{k: e.get(k) for k in ("time", "answered", "path", "status", "record_id")} for e in journal]
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
        # A ceiling is the best the client can do: the best of a few short runs, so a burst of load from
        # elsewhere on a shared machine does not lower the bar the connector is held to. The hot path's
        # transport and raw aiohttp alternate, each in a process of its own (CPU from its /proc).
        rounds = 3 if self.sizes.transports else 2
        each_s = self.sizes.bare_http_s / rounds
        runs: dict[str, list[ceilings.ClientRun]] = {"seam": [], "aiohttp": []}
        for _ in range(rounds):
            for client, done in runs.items():
                run = ceilings.http_client(client, fast.url, self.stack.api_key, reqs, duration_s=each_s)
                _require_2xx(f"bare HTTP ({client})", run.statuses)
                done.append(run)
        seam, raw = runs["seam"], runs["aiohttp"]
        self.results["bare_http_requests_per_s"] = round(max(r.per_s for r in seam), 1)
        self.results["raw_aiohttp_requests_per_s"] = round(max(r.per_s for r in raw), 1)
        self.results["bare_cpu_ms_per_request"] = round(min(r.cpu_ms_per_request for r in seam), 4)
        self.details["bare_http"] = {
            "transport": "connector.attentive.transport.AiohttpTransport",
            "runs_requests_per_s": [round(r.per_s, 1) for r in seam],
            "runs_cpu_ms_per_request": [round(r.cpu_ms_per_request, 4) for r in seam],
            "raw_aiohttp_runs_requests_per_s": [round(r.per_s, 1) for r in raw],
            "raw_aiohttp_cpu_ms_per_request": round(min(r.cpu_ms_per_request for r in raw), 4),
            "statuses": max(seam, key=lambda r: r.per_s).statuses,
        }
        if self.sizes.transports:
            others: dict[str, dict[str, float]] = {}
            for client in ("httpx-aiohttp", "httpx"):
                run = ceilings.http_client(client, fast.url, self.stack.api_key, reqs, duration_s=each_s)
                _require_2xx(client, run.statuses)
                others[client] = {
                    "requests_per_s": round(run.per_s, 1),
                    "cpu_ms_per_request": round(run.cpu_ms_per_request, 4),
                }
            self.details["bare_http"]["other_clients"] = others

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

    def _fast_connector(self) -> ConnectorProcess:
        """The connector against the fast sandbox, started once: e2e and backlog drain on the same process
        (one start-up less), the backlog after e2e's data."""
        if self._fast_cp is None:
            fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
            self._fast_cp = self._exit.enter_context(
                self.connector("e2e", fast.url, self.e2e_start, unlimited=True)
            )
            self._fast_cp_above = 0
        return self._fast_cp

    def e2e(self) -> None:
        cp = self._fast_connector()
        n = len(self.e2e_records)
        fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
        sb_cpu0 = cpu_seconds(fast.proc.pid)
        result = drain(cp, n, window_cap_s=self.sizes.e2e_cap_s, log=self.log)
        sb_cpu = cpu_seconds(fast.proc.pid) - sb_cpu0
        self._fast_cp_above += result.finished
        self.results["e2e_records_per_s"] = round(result.records_per_s, 1)
        self.results["e2e_requests_per_s"] = round(result.requests_per_s, 1)
        self.results["cpu_s_per_1000"] = round(result.cpu_s_per_1000, 3)
        # The connector's own CPU (all threads, from /proc) per Attentive request answered 2xx in the window.
        self.results["cpu_ms_per_request"] = (
            round(result.cpu_s / result.window_requests * 1000, 4) if result.window_requests else None
        )
        self.results["peak_rss_mb"] = round(result.peak_rss_mb, 1)
        self.details["e2e"] = {**result.details(), "sandbox_cpu_s": round(sb_cpu, 1)}
        if not result.complete:
            # The rest of e2e's data would be drained as part of the backlog: start a fresh process there.
            self._exit.close()
            self._fast_cp = None

    def backlog(self) -> None:
        n = self.sizes.backlog_records
        e2e_rate = self.results.get("e2e_records_per_s")
        note = None
        if e2e_rate and n > FALLBACK_BACKLOG and n / e2e_rate > self.sizes.backlog_cap_s:
            note = (
                f"{n:,} records would take ~{n / e2e_rate:.0f}s at the end-to-end rate "
                f"({e2e_rate:.0f}/s), over the {self.sizes.backlog_cap_s:.0f}s cap: backlog of {FALLBACK_BACKLOG:,}"
            )
            self.log(f"[bench]   {note}")
            n = FALLBACK_BACKLOG
        start = bl.end_offsets(self.stack.bootstrap, TOPICS)
        t0 = time.monotonic()
        bl.produce(self.stack.bootstrap, bl.natural_mix(self.pool, n, seed=11))
        produce_s = time.monotonic() - t0
        if self._fast_cp is None:
            fast = self.stack.sandbox(*FAST_SANDBOX_FLAGS)
            self._fast_cp = self._exit.enter_context(
                self.connector("backlog", fast.url, start, unlimited=True)
            )
            self._fast_cp_above = 0
        cp = self._fast_cp
        result = drain(cp, n, above=self._fast_cp_above, window_cap_s=self.sizes.backlog_cap_s, log=self.log)
        self._exit.close()
        self._fast_cp = None
        self.results["backlog_peak_rss_mb"] = round(result.peak_rss_mb, 1)
        self.details["backlog"] = {**result.details(), "produce_s": round(produce_s, 1), "note": note}
        if not result.complete:
            # A speed figure, not a failure of the run: reported as a missed target.
            self.log(f"[bench]   backlog NOT drained: {result.finished:,} of {n:,} within the cap")

    def attentive_shaped(self) -> None:
        """Saturation and added latency, once per key distribution (see :mod:`bench.keys`)."""
        self.stack.stop_sandbox(*FAST_SANDBOX_FLAGS)  # its CPU is no longer needed
        sb = self.stack.sandbox(*SHAPED_SANDBOX_FLAGS)
        for distribution, suffix in ((keys.SAMPLES, ""), (keys.REALISTIC, "_realistic")):
            self._shaped_run(sb, distribution, suffix)

    def _shaped_run(self, sb: Any, distribution: str, suffix: str) -> None:
        limits = {e: self.cfg.attentive.rate_limit(e) for e in Endpoint}
        busy_s, lat_s = self.sizes.shaped_busy_s, self.sizes.latency_s
        # 1. saturation: every endpoint has about limit × busy_s requests to make — and none more: a backlog
        # with more calls than an endpoint's share would trickle in after the others finished (a tail that
        # measured the mix, not the engine).
        need = {e: r * busy_s for e, r in limits.items()}
        busy = keys.rekey(self.pool, bl.shaped_mix(self.pool, need, at_most=True), distribution)
        start = bl.end_offsets(self.stack.bootstrap, TOPICS)
        bl.produce(self.stack.bootstrap, busy)
        sb.clear()
        planned = {str(e): n for e, n in bl.endpoint_calls(busy).items()}
        cp = self._exit.enter_context(self.connector(f"shaped{suffix}", sb.url, start))
        sb_cpu0 = cpu_seconds(sb.proc.pid)
        # A connector at the limits drains it in about busy_s; a slower one is measured over 1.5 × busy_s.
        first, end = cp.wait_processed(len(busy), window_cap_s=busy_s * 1.5, timeout_s=120, log=self.log)
        sb_cpu = cpu_seconds(sb.proc.pid) - sb_cpu0
        journal = sb.journal()
        window = end.t - first.t if first is not None else busy_s
        run: dict[str, Any] = dict(shaped.saturation(journal, limits, window_s=window))
        run["key_distribution"] = keys.DESCRIPTIONS[distribution]
        self.results[f"attentive_shaped{suffix}"] = run
        self._save_journal(f"shaped{suffix}-saturation", journal)
        journal_saturation = journal
        drained = end.processed >= len(busy)
        if not drained:
            # Skip the rest of the saturation backlog: the latency phase needs an idle connector.
            self.log(
                f"[bench]   saturation backlog not drained ({end.processed:,} of {len(busy):,}); restarting"
            )
            self._exit.close()
            start = bl.end_offsets(self.stack.bootstrap, TOPICS)
            cp = self._exit.enter_context(self.connector(f"shaped{suffix}-latency", sb.url, start))
            cp.wait_ready(timeout_s=60)
            above = 0
        else:
            above = end.processed
        # 2. added latency: records at half of every limit, produced at a steady pace — in the steady state:
        # a warm-up at the same pace first (a connector started a moment ago is still opening connections and
        # fetch sessions, and its limiter has not yet seen that it is alone), reported on its own.
        sb.clear()
        warm_s = min(WARMUP_S, lat_s)
        warm = self._half_limits(limits, warm_s, distribution, seeds=(6, 9))
        warm_produced = bl.produce_paced(self.stack.bootstrap, warm, duration_s=warm_s)
        cp.wait_processed(above + len(warm), above=above, timeout_s=60, log=self.log)
        above += len(warm)
        warm_lat = list(shaped.added_latencies_ms(sb.journal(), warm_produced.timestamps).values())
        sb.clear()
        steady = self._half_limits(limits, lat_s, distribution, seeds=(5, 8))
        produced = bl.produce_paced(self.stack.bootstrap, steady, duration_s=lat_s)
        _, end2 = cp.wait_processed(
            above + len(steady), above=above, window_cap_s=lat_s, timeout_s=60, log=self.log
        )
        journal = sb.journal()
        self._exit.close()
        self._save_journal(f"shaped{suffix}-latency", journal)
        by_record = shaped.added_latencies_ms(journal, produced.timestamps)
        # Records not delivered when the window closed are the slowest of all: they count with their age at
        # that moment, so a connector that falls behind cannot look fast by leaving them out.
        now_ms = time.time() * 1000
        unfinished = {rid: now_ms - ts for rid, ts in produced.timestamps.items() if rid not in by_record}
        lat = list(by_record.values()) + list(unfinished.values())
        # What per-key order alone costs at the sandbox's fixed latency: no connector that keeps it can do
        # better than these (reported beside the measured figures, so the two can be told apart).
        floor_of = functools.partial(
            shaped.ordering_floor_ms,
            produced.timestamps,
            produced.keys,
            shaped.calls_per_record(journal),
            min_answer_ms=SHAPED_MIN_ANSWER_MS,
        )
        floor = list(floor_of().values())
        floor_p99 = _percentile(floor, 0.99)
        self.results[f"p99_ordering_floor_ms{suffix}"] = floor_p99
        # The same with the answer times the sandbox drew in this run (100 ± 50 ms, not the 50 ms minimum):
        # a record behind its key waits for its predecessor's real answer, so this is the floor that applies.
        drawn = list(floor_of(answers_ms=shaped.answer_ms_per_record(journal)).values())
        drawn_p99 = _percentile(drawn, 0.99)
        self.results[f"p99_ordering_floor_drawn_ms{suffix}"] = drawn_p99
        self.results[f"p50_added_latency_ms{suffix}"] = _percentile(lat, 0.50)
        self.results[f"p99_added_latency_ms{suffix}"] = _percentile(lat, 0.99)
        self.details[f"attentive_shaped{suffix}"] = {
            "key_distribution": keys.DESCRIPTIONS[distribution],
            "saturation_keys": keys.spread(busy),
            "sandbox_flags": list(SHAPED_SANDBOX_FLAGS),
            "saturation_records": len(busy),
            "saturation_drained": drained,
            "saturation_window_s": round(end.t - first.t, 1) if first else None,
            # On a 2-core machine the sandbox (validating every body) competes with the connector for CPU.
            "saturation_cpu_s": {
                "connector": round(end.cpu_s - first.cpu_s, 1) if first else None,
                "sandbox": round(sb_cpu, 1),
            },
            "planned_calls": planned,
            "saturation_per_second": shaped.per_second(journal_saturation),
            "latency_records": len(steady),
            "latency_finished": end2.processed - above,
            "latency_samples": len(lat),
            "latency_unfinished_counted": len(unfinished),
            "latency_max_ms": round(max(lat), 1) if lat else None,
            "latency_by_first_endpoint": shaped.added_latency_by_endpoint(journal, by_record),
            "latency_ordering_floor": {
                "min_answer_ms": SHAPED_MIN_ANSWER_MS,
                "records_behind_their_key": sum(1 for f in floor if f > 0),
                "over_50_ms": sum(1 for f in floor if f > 50),
                "p50_ms": _percentile(floor, 0.5),
                "p99_ms": floor_p99,
                "p99_ms_with_drawn_answers": drawn_p99,
                "over_50_ms_with_drawn_answers": sum(1 for f in drawn if f > 50),
            },
            "latency_warmup": {
                "seconds": warm_s,
                "records": len(warm),
                "restarted_connector": not drained,
                "p99_ms": _percentile(warm_lat, 0.99),
            },
        }

    def _half_limits(
        self, limits: dict[Endpoint, float], seconds: float, distribution: str, *, seeds: tuple[int, int]
    ) -> list[bl.PoolRecord]:
        """Records for ``seconds`` at half of every limit (at most half for each endpoint), keyed by
        ``distribution``; ``seeds`` = (mix, keys)."""
        mix = bl.shaped_mix(
            self.pool, {e: r / 2 * seconds for e, r in limits.items()}, seed=seeds[0], at_most=True
        )
        return keys.rekey(self.pool, mix, distribution, seed=seeds[1])

    def close(self) -> None:
        self._exit.close()


def _percentile(values: list[float], q: float) -> float | None:
    """:func:`bench.shaped.percentile`, rounded to 0.1 as the results file keeps it."""
    p = shaped.percentile(values, q)
    return None if p is None else round(p, 1)


def _require_2xx(what: str, statuses: dict[int, int]) -> None:
    bad = {s: n for s, n in statuses.items() if not 200 <= s < 300}
    if bad:
        raise RuntimeError(f"{what}: non-2xx answers from the sandbox: {bad}")
