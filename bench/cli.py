"""`python -m bench [crews|fanout|throughput|all …]`: choose the suites, run them in order.

- crews: our server against a bare Strawberry app on two read queries (bench/run.py);
- fanout: 1,000 websocket subscribers to one execution, commit-to-receipt latency (bench/fanout.py);
- throughput: 1,000 executions through the embedded runner, executions a second
  (bench/throughput.py);
- agents: CPU per model request and per tool call of the agent runtime, crewql's runner against
  PydanticAI alone (bench/agents.py);
- converter: CPU per object of the response-schema → Strawberry converter (bench/converter.py);
- scaled: PostgreSQL only: 1, 2, 4 `crewql worker` processes behind an API replica, and fan-out
  over two replicas (bench/scaled.py; skipped, saying so, without PostgreSQL).

Each suite starts its own servers and cleans up after itself, on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from bench import agents, converter, fanout, pg, run, scaled, targets, throughput
from bench.session import run_guarded, say

SUITES = ("crews", "fanout", "throughput", "agents", "scaled", "converter")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="crewql benchmarks (see docs/performance.md).",
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="suite",
        help="crews, fanout, throughput, agents, scaled or all (the default); several run in order",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", pg.DEFAULT_SERVER_URL),
        help="a PostgreSQL server to create temporary databases on (BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="fanout/throughput: sample the server with py-spy during each measured phase",
    )
    parser.add_argument(
        "--py-spy-native", action="store_true", help="with --py-spy: include C frames (slower)"
    )
    run.add_arguments(parser)
    fanout.add_arguments(parser)
    throughput.add_arguments(parser)
    scaled.add_arguments(parser)
    agents.add_arguments(parser)
    args = parser.parse_args(argv)
    chosen: list[str] = []
    for name in args.suites or ["all"]:
        if name not in (*SUITES, "all"):
            parser.error(f"unknown suite {name!r}: choose from {', '.join(SUITES)} or all")
        for suite in SUITES if name == "all" else (name,):
            if suite not in chosen:
                chosen.append(suite)
    args.suites = chosen
    if "crews" in chosen:
        run.check_arguments(parser, args)
    if "fanout" in chosen and (args.subscribers < 1 or args.load_processes < 1):
        parser.error("--subscribers and --load-processes must be at least 1")
    if "throughput" in chosen or "scaled" in chosen:
        throughput.check_arguments(parser, args)
    if "scaled" in chosen:
        scaled.check_arguments(parser, args)
    return args


def _fanout(args: argparse.Namespace, reports: targets.Reports) -> int:
    code, report = run_guarded("fanout", args, fanout.run)
    if code or report is None:
        return code or 1
    results, failures = report
    reports.fanout = results
    passed = not failures and all(r.passed for r in results)
    return 1 if args.strict and not passed else 0


def _throughput(args: argparse.Namespace, reports: targets.Reports) -> int:
    """Passed: on each database, the best runner concurrency reaches the target."""
    code, report = run_guarded("throughput", args, throughput.run)
    if code or report is None:
        return code or 1
    results, failures = report
    reports.throughput = results
    passed = not failures and all(
        any(r.passed for r in results if r.database == database)
        for database in {r.database for r in results}
    )
    return 1 if args.strict and not passed else 0


def _scaled(args: argparse.Namespace, reports: targets.Reports) -> int:
    """Passed: 2 workers >= 1.6 x one, every run complete, fan-out gapless within target."""
    code, report = run_guarded("scaled", args, scaled.run)
    if code or report is None:
        return code or 1
    reports.scaled = report
    return 1 if args.strict and report.skipped is None and not report.passed else 0


def _agents(args: argparse.Namespace) -> int:
    code, result = run_guarded("agents", args, lambda _session: agents.run(args))
    if code or result is None:
        return code or 1
    return 1 if args.strict and not result.passed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    worst = 0
    reports = targets.Reports()
    for index, name in enumerate(args.suites):
        if index:
            say("")
        say(f"=== {name}")
        if name == "crews":
            code = run.suite(args)
        elif name == "fanout":
            code = _fanout(args, reports)
        elif name == "throughput":
            code = _throughput(args, reports)
        elif name == "agents":
            code = _agents(args)
        elif name == "converter":
            code = converter.suite()
        else:
            code = _scaled(args, reports)
        if code == 130:
            return 130  # interrupted: the remaining suites do not run
        worst = max(worst, code)
    if set(args.suites) & {"fanout", "throughput", "scaled"}:
        say("")
        say(targets.summary(reports))
    return worst
