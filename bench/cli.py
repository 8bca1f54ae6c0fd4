"""`python -m bench [crews|fanout|throughput|all …]`: choose the suites, run them in order.

- crews: our server against a bare Strawberry app on two read queries (bench/run.py);
- fanout: 1,000 websocket subscribers to one execution, commit-to-receipt latency (bench/fanout.py);
- throughput: 1,000 executions through the embedded runner, executions a second
  (bench/throughput.py);
- agents: CPU per model request and per tool call of the agent runtime, crewql's runner against
  PydanticAI alone (bench/agents.py);
- converter: CPU per object of the response-schema → Strawberry converter (bench/converter.py);
- scaled: PostgreSQL only: total CPU per execution with 1, 2, 4 `crewql worker` processes behind
  an API replica, claim latency, executions run twice; fan-out over two replicas (bench/scaled.py;
  skipped, saying so, without PostgreSQL).

Each suite starts its own servers and cleans up after itself, on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import agents, converter, fanout, pg, run, scaled, targets, throughput
from bench.output import say
from bench.session import Session, run_guarded

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
        help=f"{', '.join(SUITES)} or all (the default); several run in order",
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
    if "fanout" in chosen and (
        args.subscribers < 1 or args.load_processes < 1 or args.many_load_processes < 1
    ):
        parser.error("--subscribers and --(many-)load-processes must be at least 1")
    if "fanout" in chosen and args.many_subscribers < 0:
        parser.error("--many-subscribers must be 0 (none) or more")
    if "throughput" in chosen or "scaled" in chosen:
        throughput.check_arguments(parser, args)
    if "scaled" in chosen:
        scaled.check_arguments(parser, args)
    return args


def _suite(name: str, args: argparse.Namespace, reports: targets.Reports) -> int:
    """Runs one suite; its exit code (with --strict, 1 when its target fails)."""
    if name == "crews":
        return run.suite(args)
    if name == "converter":
        return converter.suite()
    bodies: dict[str, Callable[[Session], Any]] = {
        "fanout": fanout.run,
        "throughput": throughput.run,
        "scaled": scaled.run,
        "agents": lambda _session: agents.run(args),
    }
    code, report = run_guarded(name, args, bodies[name])
    if code or report is None:
        return code or 1
    if name == "fanout":
        reports.fanout, failures = report
        passed = not failures and all(r.passed for r in reports.fanout)
    elif name == "throughput":  # on each database, the best runner concurrency passes
        reports.throughput, failures = report
        databases = {r.database for r in reports.throughput}
        passed = not failures and all(
            any(r.passed for r in reports.throughput if r.database == d) for d in databases
        )
    elif name == "scaled":
        reports.scaled = report
        passed = report.skipped is not None or targets.scaled_passed(report)
    else:
        passed = report.passed
    return 1 if args.strict and not passed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    worst = 0
    reports = targets.Reports()
    for index, name in enumerate(args.suites):
        if index:
            say("")
        say(f"=== {name}")
        code = _suite(name, args, reports)
        if code == 130:
            return 130  # interrupted: the remaining suites do not run
        worst = max(worst, code)
    if set(args.suites) & {"fanout", "throughput", "scaled"}:
        say("")
        say(targets.summary(reports))
    return worst
