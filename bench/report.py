"""The results: ratios, targets with pass/miss, the JSON file and the table printed to stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Keys every results file has (``None`` when a phase could not measure; the run then fails).
REQUIRED_KEYS = (
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
    "attentive_shaped",
    "attentive_shaped_realistic",
    "p50_added_latency_ms",
    "p99_added_latency_ms",
    "p50_added_latency_ms_realistic",
    "p99_added_latency_ms_realistic",
    "p99_ordering_floor_ms",
    "p99_ordering_floor_ms_realistic",
    "p99_ordering_floor_drawn_ms",
    "p99_ordering_floor_drawn_ms_realistic",
    "backlog_peak_rss_mb",
    "machine",
    "date",
    "command",
    "quick",
    "e2e_vs_bare_http",
    "e2e_vs_naive",
    "targets",
)

RSS_LIMIT_MB = 200.0
MIN_SHARE_OF_LIMIT = 0.97
# One shaped run per key distribution (bench/keys.py): results key -> label in the tables.
SHAPED_RUNS = {"attentive_shaped": "samples", "attentive_shaped_realistic": "realistic"}
MAX_SHARE_429 = 0.005
MAX_P99_ADDED_MS = 50.0
MIN_E2E_VS_BARE = 0.60
MIN_E2E_VS_NAIVE = 15.0
# Issue 11, the hot path: CPU per Attentive request, and the ratios to the clients measured in the same run.
MAX_CPU_MS_PER_REQUEST = 0.2
MAX_CPU_VS_BARE = 2.0
MIN_E2E_REQUESTS_VS_BARE = 0.8
MIN_BARE_VS_RAW_AIOHTTP = 0.7
FULL_BUDGET_S = 600.0  # make bench
QUICK_BUDGET_S = 60.0  # make bench ARGS=--quick


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _target(value: float | None, op: str, bound: float, what: str) -> dict[str, Any]:
    ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
    return {"target": f"{op} {bound:g}", "value": value, "pass": ok, "what": what}


def shaped_endpoints(run: Any) -> list[tuple[str, dict[str, Any]]]:
    """The per-endpoint figures of one shaped run (its other keys, like ``key_distribution``, left out)."""
    return [(k, v) for k, v in (run or {}).items() if isinstance(v, dict)]


def add_derived(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios and targets from the measured figures (in place; also returned)."""
    results["e2e_vs_bare_http"] = _ratio(
        results.get("e2e_records_per_s"), results.get("bare_http_requests_per_s")
    )
    # The same comparison in requests (what the HTTP ceiling counts); a record makes 1.6 calls on average.
    results["e2e_requests_vs_bare_http"] = _ratio(
        results.get("e2e_requests_per_s"), results.get("bare_http_requests_per_s")
    )
    results["e2e_vs_naive"] = _ratio(results.get("e2e_records_per_s"), results.get("naive_records_per_s"))
    results["cpu_vs_bare_cpu"] = _ratio(
        results.get("cpu_ms_per_request"), results.get("bare_cpu_ms_per_request")
    )
    results["bare_http_vs_raw_aiohttp"] = _ratio(
        results.get("bare_http_requests_per_s"), results.get("raw_aiohttp_requests_per_s")
    )
    targets: dict[str, Any] = {
        "e2e_vs_bare_http": _target(
            results["e2e_vs_bare_http"], ">=", MIN_E2E_VS_BARE, "e2e records/s ÷ bare HTTP requests/s"
        ),
        "e2e_vs_naive": _target(
            results["e2e_vs_naive"], ">=", MIN_E2E_VS_NAIVE, "e2e records/s ÷ naive records/s"
        ),
        "cpu_ms_per_request": _target(
            results.get("cpu_ms_per_request"), "<=", MAX_CPU_MS_PER_REQUEST, "connector CPU ms per request"
        ),
        "cpu_vs_bare_cpu": _target(
            results["cpu_vs_bare_cpu"], "<=", MAX_CPU_VS_BARE, "connector CPU ÷ bare client CPU, per request"
        ),
        "e2e_requests_vs_bare_http": _target(
            results["e2e_requests_vs_bare_http"],
            ">=",
            MIN_E2E_REQUESTS_VS_BARE,
            "e2e requests/s ÷ bare HTTP requests/s",
        ),
        "bare_http_vs_raw_aiohttp": _target(
            results["bare_http_vs_raw_aiohttp"],
            ">=",
            MIN_BARE_VS_RAW_AIOHTTP,
            "bare HTTP ÷ raw aiohttp, req/s",
        ),
        "p99_added_latency_ms": _target(
            results.get("p99_added_latency_ms"), "<=", MAX_P99_ADDED_MS, "p99 added latency at half the limit"
        ),
        "p99_added_latency_ms_realistic": _target(
            results.get("p99_added_latency_ms_realistic"),
            "<=",
            MAX_P99_ADDED_MS,
            "p99 added latency at half the limit, realistic keys",
        ),
        "peak_rss_mb": _target(
            results.get("peak_rss_mb"), "<=", RSS_LIMIT_MB, "connector peak RSS, end to end"
        ),
        "backlog_peak_rss_mb": _target(
            results.get("backlog_peak_rss_mb"), "<=", RSS_LIMIT_MB, "connector peak RSS draining the backlog"
        ),
    }
    for run_key, label in SHAPED_RUNS.items():
        prefix = "shaped" if label == "samples" else f"shaped_{label}"
        for endpoint, figs in shaped_endpoints(results.get(run_key)):
            limit, achieved, share = figs.get("limit"), figs.get("achieved_per_s"), figs.get("share_429")
            share_of_limit = None if achieved is None or not limit else round(achieved / limit, 3)
            targets[f"{prefix}.{endpoint}.share_of_limit"] = _target(
                share_of_limit, ">=", MIN_SHARE_OF_LIMIT, f"{endpoint} ({label} keys): achieved ÷ limit"
            )
            targets[f"{prefix}.{endpoint}.share_429"] = _target(
                share, "<=", MAX_SHARE_429, f"{endpoint} ({label} keys): share of 429s"
            )
    backlog = (results.get("details") or {}).get("backlog") or {}
    if "drained" in backlog:
        targets["backlog_drained"] = {
            "target": "the whole backlog drains within the cap",
            "value": f"{backlog.get('finished', 0):,} of {backlog.get('records', 0):,}",
            "pass": bool(backlog["drained"]),
            "what": "backlog drained",
        }
    budget = QUICK_BUDGET_S if results.get("quick") else FULL_BUDGET_S
    targets["duration_s"] = _target(results.get("duration_s"), "<=", budget, "the whole benchmark run")
    results["targets"] = targets
    return results


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3f}"
    else:
        text = str(v)
    return f"{text}{unit}"


def _flag(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    return {True: "met", False: "MISSED", None: "n/a"}[t["pass"]] + f" ({t['target']})"


def table(results: dict[str, Any]) -> str:
    """A plain-text table of every figure, with the target it is held to."""
    t = results.get("targets", {})
    rows: list[tuple[str, str, str]] = [
        ("consume + decode (ceiling)", _fmt(results.get("consume_decode_records_per_s"), " rec/s"), ""),
        (
            "raw aiohttp, 64 in flight (ceiling)",
            _fmt(results.get("raw_aiohttp_requests_per_s"), " req/s"),
            "",
        ),
        ("bare HTTP, 64 in flight (ceiling)", _fmt(results.get("bare_http_requests_per_s"), " req/s"), ""),
        (
            "  ÷ raw aiohttp",
            _fmt(results.get("bare_http_vs_raw_aiohttp")),
            _flag(t.get("bare_http_vs_raw_aiohttp")),
        ),
        ("  CPU per request", _fmt(results.get("bare_cpu_ms_per_request"), " ms"), ""),
        ("end to end", _fmt(results.get("e2e_records_per_s"), " rec/s"), ""),
        ("  ÷ bare HTTP", _fmt(results.get("e2e_vs_bare_http")), _flag(t.get("e2e_vs_bare_http"))),
        ("  requests", _fmt(results.get("e2e_requests_per_s"), " req/s"), ""),
        (
            "  requests/s ÷ bare HTTP",
            _fmt(results.get("e2e_requests_vs_bare_http")),
            _flag(t.get("e2e_requests_vs_bare_http")),
        ),
        (
            "  CPU per request",
            _fmt(results.get("cpu_ms_per_request"), " ms"),
            _flag(t.get("cpu_ms_per_request")),
        ),
        (
            "  CPU ÷ bare client CPU",
            _fmt(results.get("cpu_vs_bare_cpu"), "×"),
            _flag(t.get("cpu_vs_bare_cpu")),
        ),
        ("  CPU per 1,000 records", _fmt(results.get("cpu_s_per_1000"), " s"), ""),
        ("  peak RSS", _fmt(results.get("peak_rss_mb"), " MB"), _flag(t.get("peak_rss_mb"))),
        ("naive consume→POST→commit", _fmt(results.get("naive_records_per_s"), " rec/s"), ""),
        ("  end to end ÷ naive", _fmt(results.get("e2e_vs_naive"), "×"), _flag(t.get("e2e_vs_naive"))),
        ("added latency p50 (half limit)", _fmt(results.get("p50_added_latency_ms"), " ms"), ""),
        (
            "added latency p99 (half limit)",
            _fmt(results.get("p99_added_latency_ms"), " ms"),
            _flag(t.get("p99_added_latency_ms")),
        ),
        (
            "  realistic keys: p50 / p99",
            f"{_fmt(results.get('p50_added_latency_ms_realistic'))} / "
            f"{_fmt(results.get('p99_added_latency_ms_realistic'), ' ms')}",
            _flag(t.get("p99_added_latency_ms_realistic")),
        ),
        (
            "  per-key order's floor p99: samples / realistic",
            f"{_fmt(results.get('p99_ordering_floor_ms'))} / "
            f"{_fmt(results.get('p99_ordering_floor_ms_realistic'), ' ms')}",
            "",
        ),
        (
            "    with the answers drawn: samples / realistic",
            f"{_fmt(results.get('p99_ordering_floor_drawn_ms'))} / "
            f"{_fmt(results.get('p99_ordering_floor_drawn_ms_realistic'), ' ms')}",
            "",
        ),
        (
            "backlog peak RSS",
            _fmt(results.get("backlog_peak_rss_mb"), " MB"),
            _flag(t.get("backlog_peak_rss_mb")),
        ),
    ]
    details = results.get("details", {})
    if details.get("backlog"):
        b = details["backlog"]
        label = f"  backlog of {b.get('records', 0):,}: " + (
            "drained at" if b.get("drained") else f"{b.get('finished', 0):,} finished in cap at"
        )
        rows.append((label, _fmt(b.get("records_per_s"), " rec/s"), _flag(t.get("backlog_drained"))))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{name:<{w0}}  {value:>{w1}}  {flag}".rstrip() for name, value, flag in rows]
    for run_key, label in SHAPED_RUNS.items():
        run = results.get(run_key) or {}
        if not shaped_endpoints(run):
            continue
        prefix = "shaped" if label == "samples" else f"shaped_{label}"
        lines.append("")
        lines.append(f"key distribution: {run.get('key_distribution', label)}")
        lines.append(
            f"{'Attentive-shaped endpoint':<26} {'limit/s':>8} {'achieved/s':>11} {'share':>7} {'429s':>8}  target"
        )
        for endpoint, f in shaped_endpoints(run):
            limit, achieved = f.get("limit"), f.get("achieved_per_s")
            share = None if achieved is None or not limit else achieved / limit
            ok_rate = t.get(f"{prefix}.{endpoint}.share_of_limit", {}).get("pass")
            ok_429 = t.get(f"{prefix}.{endpoint}.share_429", {}).get("pass")
            verdict = "MISSED" if False in (ok_rate, ok_429) else "met" if ok_rate and ok_429 else "n/a"
            s429 = f.get("share_429")
            lines.append(
                f"{endpoint:<26} {_fmt(limit):>8} {_fmt(achieved):>11} "
                f"{'—' if share is None else f'{share:.1%}':>7} {'—' if s429 is None else f'{s429:.2%}':>8}  {verdict}"
            )
    head = [
        f"attentive-connector benchmark — {results.get('date')} — `{results.get('command')}`",
        "machine: {cores} cores, {memory_gb} GB, {cpu_model}, Python {python}".format(
            **results.get("machine", {})
        ),
        "",
    ]
    tail = [""]
    if results.get("duration_s") is not None:
        tail.append(f"run took {results['duration_s']:.0f} s")
    tail.extend(f"ERROR {err}" for err in results.get("errors", []))
    return "\n".join(head + lines + tail)


def markdown(results: dict[str, Any]) -> str:
    """The README's Performance section body: machine, date, command, and the table with targets."""
    t = results.get("targets", {})
    m = results.get("machine", {})

    def row(name: str, key: str, unit: str = "", target: str | None = None) -> str:
        flag = _flag(t.get(target or key)) if (target or key) in t else ""
        return f"| {name} | {_fmt(results.get(key), unit)} | {flag} |"

    lines = [
        f"Measured {results.get('date')} with `{results.get('command')}` on {m.get('cores')} cores, "
        f"{m.get('memory_gb')} GB, {m.get('cpu_model')}, Python {m.get('python')} "
        f"(run took {results.get('duration_s', 0):.0f} s). Method: `bench/README.md`.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        row("consume + decode (ceiling)", "consume_decode_records_per_s", " rec/s"),
        row("raw aiohttp, 64 in flight (ceiling)", "raw_aiohttp_requests_per_s", " req/s"),
        row(
            "bare HTTP client (the hot path's transport), 64 in flight", "bare_http_requests_per_s", " req/s"
        ),
        row("bare HTTP ÷ raw aiohttp", "bare_http_vs_raw_aiohttp"),
        row("bare HTTP client CPU per request", "bare_cpu_ms_per_request", " ms"),
        row("end to end", "e2e_records_per_s", " rec/s"),
        row("end to end ÷ bare HTTP", "e2e_vs_bare_http"),
        row("end to end, requests", "e2e_requests_per_s", " req/s"),
        row("end to end requests ÷ bare HTTP", "e2e_requests_vs_bare_http"),
        row("connector CPU per request", "cpu_ms_per_request", " ms"),
        row("connector CPU ÷ bare client CPU", "cpu_vs_bare_cpu", "×"),
        row("CPU per 1,000 records", "cpu_s_per_1000", " s"),
        row("peak RSS, end to end", "peak_rss_mb", " MB"),
        row("naive consume → POST → commit", "naive_records_per_s", " rec/s"),
        row("end to end ÷ naive", "e2e_vs_naive", "×"),
        row("added latency p50 at half the limits", "p50_added_latency_ms", " ms"),
        row("added latency p99 at half the limits", "p99_added_latency_ms", " ms"),
        row("added latency p99 at half the limits, realistic keys", "p99_added_latency_ms_realistic", " ms"),
        row(
            "per-key order's floor p99 (any order-keeping connector), sample keys",
            "p99_ordering_floor_ms",
            " ms",
        ),
        row("per-key order's floor p99, realistic keys", "p99_ordering_floor_ms_realistic", " ms"),
        row(
            "per-key order's floor p99 with the answer times drawn, sample keys",
            "p99_ordering_floor_drawn_ms",
            " ms",
        ),
        row(
            "per-key order's floor p99 with the answer times drawn, realistic keys",
            "p99_ordering_floor_drawn_ms_realistic",
            " ms",
        ),
        row("peak RSS draining the backlog", "backlog_peak_rss_mb", " MB"),
        "",
        "| Attentive-shaped endpoint | keys | limit/s | achieved/s | 429s | target |",
        "|---|---|---|---|---|---|",
    ]
    for run_key, label in SHAPED_RUNS.items():
        prefix = "shaped" if label == "samples" else f"shaped_{label}"
        for endpoint, f in shaped_endpoints(results.get(run_key)):
            ok_rate = t.get(f"{prefix}.{endpoint}.share_of_limit", {}).get("pass")
            ok_429 = t.get(f"{prefix}.{endpoint}.share_429", {}).get("pass")
            verdict = "MISSED" if False in (ok_rate, ok_429) else "met" if ok_rate and ok_429 else "n/a"
            s429 = f.get("share_429")
            lines.append(
                f"| {endpoint} | {label} | {_fmt(f.get('limit'))} | {_fmt(f.get('achieved_per_s'))} | "
                f"{'—' if s429 is None else f'{s429:.2%}'} | {verdict} (≥ 97 %, ≤ 0.5 % 429s) |"
            )
    b = (results.get("details") or {}).get("backlog") or {}
    if b:
        lines += [
            "",
            f"Backlog: {b.get('records', 0):,} records, {b.get('finished', 0):,} finished "
            f"({'drained' if b.get('drained') else 'not drained within the cap'}) at "
            f"{_fmt(b.get('records_per_s'), ' rec/s')}." + (f" {b['note']}." if b.get("note") else ""),
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """``python -m bench.report [FILE] [--markdown]``: show a results file as the table or as Markdown."""
    import argparse
    import json as _json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("file", type=Path, nargs="?", default=Path(__file__).with_name("results") / "latest.json")
    ap.add_argument("--markdown", action="store_true", help="Markdown for README's Performance section")
    args = ap.parse_args()
    results = _json.loads(args.file.read_text(encoding="utf-8"))
    print(markdown(results) if args.markdown else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
