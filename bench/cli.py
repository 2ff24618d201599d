"""``python -m bench [--quick] [--out PATH]``: every benchmark figure in one run, on the real local broker and
the sandbox, printed as a table and written as JSON (``bench/results/latest.json`` by default).

Phases, in order (each one's failure is recorded and the others still run; the exit code is then 1):

1. ceilings — consume + decode; bare HTTP client to the sandbox (no validation, no limits, no latency)
2. naive baseline — consume → POST → commit-each-record, on the same data and sandbox
3. end to end — the connector subprocess drains a backlog against that sandbox
4. backlog — a large backlog (1M records; a few thousand with ``--quick``), RSS sampled throughout
5. Attentive-shaped — Attentive's limits and 100 ± 50 ms answers (50–150): per-endpoint achieved rate and 429s, then the
   added latency at half the limits
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import report
from bench.machine import machine_info
from bench.phases import PHASES, Run
from bench.sizes import FULL, QUICK, Sizes
from bench.stack import REPO, running_stack

DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"


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
        help="sample every connector subprocess with py-spy: collapsed stacks, summaries and the shaped "
        "phase's sandbox journals go to DIR",
    )
    parser.add_argument(
        "--kafka-client",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka setting added to the connector's kafka.client (repeatable; for tuning experiments)",
    )
    parser.add_argument(
        "--connector-set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="set a value in the connector's config, e.g. delivery.max_in_flight=128 (repeatable; YAML value)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated phases to run (default: all; for working on one phase)",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the sizes (e.g. backlog_records=200000, backlog_cap_s=60; see Sizes)",
    )


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The attentive-connector benchmark: ceilings, end to end, naive baseline, "
        "Attentive-shaped limits and a large backlog, in one run (see bench/README.md).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.size:
        fields = asdict(sizes)
        for item in args.size:
            name, _, value = item.partition("=")
            if name not in fields or not value:
                parser.error(f"--size {item}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
            fields[name] = (
                type(fields[name])(value) if not isinstance(fields[name], bool) else value == "true"
            )
        sizes = Sizes(**fields)

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
            t0 = time.monotonic()
            with running_stack(Path(tmp)) as stack:
                log(f"[bench] stack up in {time.monotonic() - t0:.1f}s")
                stack.kafka_client = dict(kv.split("=", 1) for kv in args.kafka_client)
                stack.overrides = {
                    k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.connector_set)
                }
                run = Run(stack, sizes, log, args.profile)
                run.phase("prepare", run.prepare)
                wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
                unknown = sorted(set(wanted) - set(PHASES))
                if unknown:
                    parser.error(f"unknown phase(s): {', '.join(unknown)}; known: {', '.join(PHASES)}")
                try:
                    for name in PHASES:
                        if name in wanted and not any(e.startswith("prepare") for e in run.errors):
                            run.phase(name, getattr(run, name))
                finally:
                    run.close()
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
    if args.kafka_client or args.connector_set:
        # Not the shipped config: say so in the results.
        results["config_overrides"] = {"kafka_client": args.kafka_client, "connector": args.connector_set}
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
