"""The benchmark's arithmetic: backlog planning, journal analysis, targets, /proc readings."""

from __future__ import annotations

import os
import time

import pytest

from bench import report, shaped
from bench.backlog import plan_counts
from bench.procstats import ProcessSampler, Sample, cpu_seconds, memory_kb
from connector.attentive.endpoints import Endpoint

E = Endpoint


def test_plan_counts_saturates_every_endpoint_without_starving_the_slow_ones() -> None:
    sigs = {
        (E.PRODUCT_VIEW,): 50,
        (E.PURCHASE,): 50,
        (E.SUBSCRIBE, E.CUSTOM_ATTRIBUTES): 20,
        (E.UNSUBSCRIBE,): 5,
        (E.CUSTOM_ATTRIBUTES,): 30,
    }
    need = {
        E.PRODUCT_VIEW: 300.0,
        E.PURCHASE: 300.0,
        E.SUBSCRIBE: 20.0,
        E.UNSUBSCRIBE: 10.0,
        E.CUSTOM_ATTRIBUTES: 300.0,
    }
    counts = plan_counts(sigs, need)
    calls: dict[Endpoint, int] = {}
    for sig, n in counts.items():
        for e in sig:
            calls[e] = calls.get(e, 0) + n
    assert calls[E.SUBSCRIBE] == 20
    assert calls[E.UNSUBSCRIBE] == 10
    # The signups' custom-attribute calls count towards that endpoint's need: no double booking.
    assert calls[E.CUSTOM_ATTRIBUTES] == 300
    assert counts[(E.CUSTOM_ATTRIBUTES,)] == 280
    assert calls[E.PRODUCT_VIEW] == 300


def test_plan_counts_does_not_double_an_endpoint_reached_only_beside_another() -> None:
    # The shipped rule table's shapes: custom attributes only come with a loyalty event or a subscribe.
    sigs = {
        (E.CUSTOM_EVENT,): 500,
        (E.CUSTOM_ATTRIBUTES, E.CUSTOM_EVENT): 2000,
        (E.SUBSCRIBE, E.CUSTOM_ATTRIBUTES): 1600,
        (E.SUBSCRIBE,): 30,
        (E.UNSUBSCRIBE,): 300,
    }
    need = {E.CUSTOM_EVENT: 3000.0, E.CUSTOM_ATTRIBUTES: 3000.0, E.SUBSCRIBE: 200.0, E.UNSUBSCRIBE: 100.0}
    counts = plan_counts(sigs, need)
    calls: dict[Endpoint, int] = {}
    for sig, n in counts.items():
        for e in sig:
            calls[e] = calls.get(e, 0) + n
    assert calls == {E.CUSTOM_EVENT: 3000, E.CUSTOM_ATTRIBUTES: 3000, E.SUBSCRIBE: 200, E.UNSUBSCRIBE: 100}


def test_plan_counts_skips_endpoints_no_record_reaches() -> None:
    counts = plan_counts({(E.PURCHASE,): 1}, {E.PURCHASE: 5.0, E.UNSUBSCRIBE: 5.0})
    assert counts == {(E.PURCHASE,): 5}


def _entry(path: str, status: int, t: float, rid: str = "") -> dict[str, object]:
    return {"method": "POST", "path": path, "status": status, "time": t, "record_id": rid}


def test_saturation_rate_is_over_the_busy_window_and_counts_429s() -> None:
    sub = Endpoint.SUBSCRIBE.path
    journal = [_entry(sub, 202, 1000.0 + i / 10) for i in range(101)]  # 10/s for 10 s
    journal.append(_entry(sub, 429, 1005.0))
    journal.append(_entry("/v1/me", 200, 1003.0))
    out = shaped.saturation(journal, {Endpoint.SUBSCRIBE: 10.0, Endpoint.UNSUBSCRIBE: 5.0})
    assert out["subscribe"]["achieved_per_s"] == pytest.approx(10.0)
    assert out["subscribe"]["share_429"] == pytest.approx(1 / 102, abs=1e-4)
    assert out["subscribe"]["limit"] == 10.0
    assert out["unsubscribe"]["achieved_per_s"] is None  # no window to rate it over: not a made-up number
    assert out["unsubscribe"]["share_429"] is None
    starved = shaped.saturation(journal, {Endpoint.UNSUBSCRIBE: 5.0}, window_s=30.0)
    assert starved["unsubscribe"]["achieved_per_s"] == 0.0  # waited the whole window: a miss, not a blank


def test_journal_time_accepts_seconds_milliseconds_and_rfc3339() -> None:
    assert shaped.journal_time_ms({"time": 1700000000.5}) == 1700000000500
    assert shaped.journal_time_ms({"time": 1700000000500}) == 1700000000500
    assert shaped.journal_time_ms({"time": "2023-11-14T22:13:20.5+00:00"}) == 1700000000500


def test_added_latency_uses_each_records_first_successful_first_call() -> None:
    path = Endpoint.CUSTOM_EVENT.path
    produced = {"orders/0/5": 1_000_000, "signups/1/7": 2_000_000}
    journal = [
        _entry(path, 429, 1_000.010, "orders/0/5"),  # rate limited: not delivered yet
        _entry(path, 200, 1_000.030, "orders/0/5"),
        _entry(path, 202, 2_000.020, "signups/1/7/0"),
        _entry(path, 200, 2_000.200, "signups/1/7/1"),  # after the first call's answer: excluded
        _entry(path, 200, 3_000.000, "orders/0/99"),  # not produced in this phase
    ]
    got = shaped.added_latencies_ms(journal, produced)
    assert got == pytest.approx({"orders/0/5": 30.0, "signups/1/7": 20.0})


def test_calls_per_record_counts_a_fan_outs_calls() -> None:
    path = Endpoint.CUSTOM_EVENT.path
    journal = [
        _entry(path, 200, 1.0, "orders/0/5"),
        _entry(path, 429, 1.0, "signups/1/7/0"),
        _entry(path, 202, 1.1, "signups/1/7/0"),  # the same call again after a 429: still one call
        _entry(path, 200, 1.3, "signups/1/7/1"),
    ]
    assert shaped.calls_per_record(journal) == {"orders/0/5": 1, "signups/1/7": 2}


def test_ordering_floor_is_the_wait_for_the_keys_previous_record() -> None:
    produced = {
        "orders/0/1": 1_000,  # first of key a: free to go
        "orders/0/2": 1_030,  # key a again, 30 ms later: the first's answer comes at 1,100 at the earliest
        "orders/0/3": 1_040,  # key a: behind the second (2 calls), which can start at 1,100: 1,300 - 1,040
        "orders/0/4": 1_050,  # key b: its own chain
        "orders/1/1": 1_060,  # key a on another partition: not ordered with partition 0
        "orders/0/5": 1_070,  # keyless: never waits
        "orders/0/6": 2_000,  # key a, long after its chain ended
    }
    keys: dict[str, bytes | None] = dict.fromkeys(produced, b"a")
    keys.update({"orders/0/4": b"b", "orders/0/5": None})
    calls = {"orders/0/2": 2}
    got = shaped.ordering_floor_ms(produced, keys, calls, min_answer_ms=100)
    assert got == pytest.approx(
        {
            "orders/0/1": 0.0,
            "orders/0/2": 70.0,
            "orders/0/3": 260.0,
            "orders/0/4": 0.0,
            "orders/1/1": 0.0,
            "orders/0/5": 0.0,
            "orders/0/6": 0.0,
        }
    )


def test_answer_ms_per_record_sums_each_calls_successful_answer() -> None:
    path = Endpoint.CUSTOM_EVENT.path
    journal = [
        {**_entry(path, 200, 1.000, "orders/0/5"), "answered": 1.120},
        {**_entry(path, 429, 1.000, "signups/1/7/0"), "answered": 1.001},  # refused: its retry counts
        {**_entry(path, 202, 1.100, "signups/1/7/0"), "answered": 1.170},
        {**_entry(path, 200, 1.300, "signups/1/7/1"), "answered": 1.390},
        _entry(path, 200, 1.400, "orders/0/6"),  # a journal without answer times: nothing to sum
        {"time": 1.5, "answered": 1.6, "path": "/v1/me", "status": 200, "record_id": None},
    ]
    assert shaped.answer_ms_per_record(journal) == pytest.approx({"orders/0/5": 120.0, "signups/1/7": 160.0})


def test_ordering_floor_with_drawn_answers_waits_for_each_predecessors_real_answer() -> None:
    produced = {"orders/0/1": 1_000, "orders/0/2": 1_030, "orders/0/3": 1_040, "orders/0/4": 1_050}
    keys: dict[str, bytes | None] = {"orders/0/1": b"a", "orders/0/2": b"a", "orders/0/3": b"a"}
    keys["orders/0/4"] = b"b"
    # The first answer took 140 ms (not the 50 ms minimum); the second's answer time is unknown: minimum.
    answers = {"orders/0/1": 140.0, "orders/0/4": 300.0}
    got = shaped.ordering_floor_ms(produced, keys, {}, min_answer_ms=50, answers_ms=answers)
    assert got == pytest.approx(
        {"orders/0/1": 0.0, "orders/0/2": 110.0, "orders/0/3": 150.0, "orders/0/4": 0.0}
    )


def test_percentile() -> None:
    values = [float(i) for i in range(1, 101)]
    assert shaped.percentile(values, 0.5) == pytest.approx(50.5)
    assert shaped.percentile(values, 0.99) == pytest.approx(99.01)  # inclusive: 1 + 0.99 × 99
    assert shaped.percentile([], 0.5) is None
    assert shaped.percentile([7.0], 0.99) == 7.0


def _results(**over: object) -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(report.REQUIRED_KEYS)
    base.update(
        e2e_records_per_s=3000.0,
        bare_http_requests_per_s=4000.0,
        raw_aiohttp_requests_per_s=5000.0,
        bare_cpu_ms_per_request=0.1,
        e2e_requests_per_s=3000.0,
        cpu_ms_per_request=0.15,
        naive_records_per_s=200.0,
        p99_added_latency_ms=60.0,
        peak_rss_mb=120.0,
        backlog_peak_rss_mb=210.0,
        attentive_shaped={
            "subscribe": {"limit": 10.0, "achieved_per_s": 9.8, "share_429": 0.0},
            "key_distribution": "samples",
        },
        attentive_shaped_realistic={
            "subscribe": {"limit": 10.0, "achieved_per_s": 9.6, "share_429": 0.0},
            "key_distribution": "realistic",
        },
        quick=True,
        duration_s=50.0,
        machine={"cores": 2, "memory_gb": 24, "cpu_model": "x", "python": "3.11"},
    )
    base.update(over)
    return base


def test_targets_flag_met_and_missed() -> None:
    r = report.add_derived(_results())
    t = r["targets"]
    assert r["e2e_vs_bare_http"] == 0.75 and t["e2e_vs_bare_http"]["pass"] is True
    assert r["e2e_vs_naive"] == 15.0 and t["e2e_vs_naive"]["pass"] is True
    assert t["p99_added_latency_ms"]["pass"] is False
    assert t["peak_rss_mb"]["pass"] is True
    assert t["backlog_peak_rss_mb"]["pass"] is False
    assert t["shaped.subscribe.share_of_limit"]["pass"] is True  # 98% ≥ 97%
    assert t["shaped.subscribe.share_429"]["pass"] is True
    assert t["shaped_realistic.subscribe.share_of_limit"]["pass"] is False  # 96% < 97%
    assert "key_distribution" not in {k.split(".")[1] for k in t if k.startswith("shaped")}
    assert t["duration_s"]["pass"] is True  # quick: ≤ 60 s
    assert r["cpu_vs_bare_cpu"] == 1.5 and t["cpu_vs_bare_cpu"]["pass"] is True
    assert t["cpu_ms_per_request"]["pass"] is True
    assert r["e2e_requests_vs_bare_http"] == 0.75 and t["e2e_requests_vs_bare_http"]["pass"] is False
    assert r["bare_http_vs_raw_aiohttp"] == 0.8 and t["bare_http_vs_raw_aiohttp"]["pass"] is True
    text = report.table(r)
    assert "MISSED" in text and "subscribe" in text and "key distribution: realistic" in text


def test_a_figure_that_was_not_measured_is_not_a_pass() -> None:
    r = report.add_derived(_results(e2e_records_per_s=None))
    assert r["e2e_vs_bare_http"] is None
    assert r["targets"]["e2e_vs_bare_http"]["pass"] is None
    assert "—" in report.table(r)


def test_proc_readings_of_this_process() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1
    mem = memory_kb(os.getpid())
    assert mem["VmRSS"] > 1000 and mem["VmHWM"] >= mem["VmRSS"]


def test_sampler_interpolates_cpu_inside_a_window() -> None:
    s = ProcessSampler(pid=os.getpid())
    s.samples = [Sample(0.0, 1.0, 100), Sample(10.0, 3.0, 200)]
    assert s.cpu_between(2.5, 7.5) == pytest.approx(1.0)
    assert s.peak_rss_mb == pytest.approx(200 / 1024)


def test_markdown_for_the_readme_has_every_figure_and_verdict() -> None:
    r = report.add_derived(_results(date="2026-01-01T00:00:00+00:00", command="python -m bench"))
    md = report.markdown(r)
    assert "`python -m bench`" in md and "2 cores" in md
    assert "| end to end ÷ naive | 15.00× | met (>= 15) |" in md
    assert "| connector CPU per request | 0.150 ms | met (<= 0.2) |" in md
    assert "| subscribe | samples | 10.00 | 9.80 | 0.00% | met" in md
    assert "| subscribe | realistic | 10.00 | 9.60 | 0.00% | MISSED" in md
    assert "| added latency p99 at half the limits | 60.00 ms | MISSED (<= 50) |" in md


def test_issue_11_targets_miss_when_the_connector_spends_too_much_cpu() -> None:
    r = report.add_derived(_results(cpu_ms_per_request=0.25, bare_cpu_ms_per_request=0.1))
    t = r["targets"]
    assert t["cpu_ms_per_request"]["pass"] is False and t["cpu_vs_bare_cpu"]["pass"] is False
    assert r["cpu_vs_bare_cpu"] == 2.5


def test_http_client_ceiling_runs_in_its_own_process() -> None:
    """The seam client against a tiny local server: count, window and the subprocess's own /proc CPU."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench import ceilings
    from bench.backlog import Request

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers["Authorization"] == "Bearer k" and self.headers["X-Record-Id"]
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        reqs = [Request("/v1/events/custom", b'{"type":"x"}', "t/0/1")]
        for client in ("seam", "aiohttp"):
            run = ceilings.http_client(client, url, "k", reqs, duration_s=0.3, concurrency=2)
            assert run.count > 0 and run.statuses == {200: run.count}, (client, run)
            assert run.seconds >= 0.3 and run.cpu_s >= 0
        with pytest.raises(ValueError, match="unknown client"):
            ceilings.http_client("curl", url, "k", reqs, duration_s=0.1)
    finally:
        server.shutdown()
