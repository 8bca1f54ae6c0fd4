"""The bench run: start every server, seed, then measure references and ours side by side.

All servers are started (and ours seeded) before any measurement, then each reference is measured
right before the figures that are divided by it: `{ hello }`, then (a) on each database; the bare
(b), then (b) on each database. Idle servers cost nothing, and a reference and its ratio's
numerator are never minutes apart, which keeps drift on a shared machine out of the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bench.load import LoadResult, LoadSettings, measure, wrk_path
from bench.output import finish, now, say
from bench.procs import Server
from bench.procstat import cpu_seconds
from bench.queries import CREW_BY_ID, CREWS_PAGE, HELLO
from bench.report import Row, ratio_lines, ratios, rows_table
from bench.seed import BenchError, check_answers, first_crew_id, seed
from bench.session import Session, crewql_env, run_guarded

WRK_MISSING = (
    "wrk is not installed (Debian/Ubuntu: apt-get install -y wrk); using the Python fallback "
    "load generator, whose figures are marked 'python-fallback' and are not comparable to wrk's."
)


def body(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"query": query}
    if variables:
        found["variables"] = variables
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("crews")
    group.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    group.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    group.add_argument("--connections", type=int, default=20, help="open connections")
    group.add_argument(
        "--repeat", type=int, default=1, help="measure every case N times, report the median"
    )
    group.add_argument("--crews", type=int, default=110, help="crews to seed (at least 100)")
    group.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.crews < 100:
        parser.error("--crews must be at least 100: query (b) reads a page of 100")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")


@dataclass(frozen=True)
class Case:
    server: Server
    database: str  # "sqlite", "postgres" or "memory"
    query: str  # "a", "b", "hello", "a-shape", "b-shape"
    label: str
    payload: dict[str, Any]


class Bench:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.args = args = session.args
        self.workdir = session.workdir
        self.results: dict[tuple[str, str, str], list[LoadResult]] = {}
        self.labels: dict[tuple[str, str, str], str] = {}
        self.notes = session.notes
        self.settings = LoadSettings(
            duration=args.duration, warmup=args.warmup, connections=args.connections
        )
        self.tool = "wrk"
        if args.load == "python" or (args.load == "auto" and wrk_path() is None):
            self.tool = "python"
        elif args.load == "wrk" and wrk_path() is None:
            raise BenchError("--load wrk, but wrk is not installed (apt-get install -y wrk)")

    # ------------------------------------------------------------------ set-up

    def bare(self) -> dict[str, Case]:
        server = self.session.start("bare", "bare")
        crew_id = first_crew_id(server.url)
        check_answers(server.url, crew_id)
        return {
            "hello": Case(server, "memory", "hello", "{ hello }", body(HELLO)),
            "b": Case(server, "memory", "b-shape", "(b) shape from memory", body(CREWS_PAGE)),
            "a": Case(
                server,
                "memory",
                "a-shape",
                "(a) shape from memory",
                body(CREW_BY_ID, {"id": crew_id}),
            ),
        }

    def crewql(self, database: str, url: str) -> dict[str, Case]:
        server = self.session.start(f"crewql-{database}", "crewql", crewql_env(url))
        started = time.monotonic()
        seed(server.url, self.args.crews)
        took = time.monotonic() - started
        say(f"  seeded {self.args.crews} crews through GraphQL in {took:.1f} s")
        crew_id = first_crew_id(server.url)
        check_answers(server.url, crew_id)
        return {
            "a": Case(server, database, "a", "(a) crew(id)", body(CREW_BY_ID, {"id": crew_id})),
            "b": Case(server, database, "b", "(b) crews(first: 100)", body(CREWS_PAGE)),
        }

    def databases(self) -> list[dict[str, Case]]:
        return [
            self.crewql(name, self.session.database_url(name)) for name in self.session.databases()
        ]

    # ------------------------------------------------------------------ measuring

    def measure(self, case: Case) -> None:
        total = self.settings.warmup + self.settings.duration
        say(
            f"  {case.server.label:<15} {case.label:<24} "
            f"{self.tool}, {self.settings.connections} connections, {total:.0f} s"
        )
        url, payload, s = case.server.url, case.payload, self.settings
        if s.warmup > 0:  # apart, so that the CPU read below covers the measured run alone
            measure(url, payload, replace(s, duration=s.warmup, warmup=0), self.workdir, self.tool)
        cpu_before = cpu_seconds(case.server.pid)
        result = measure(url, payload, replace(s, warmup=0), self.workdir, self.tool)
        cpu_after = cpu_seconds(case.server.pid)
        if cpu_before is not None and cpu_after is not None and result.requests:
            cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
            result = replace(result, server_cpu_ms=cpu_ms)
        if result.errors:
            self.notes.append(
                f"{case.server.label} {case.label}: {result.errors} errors or non-2xx answers"
            )
        say(
            f"  {'':<15} {'':<24} {result.requests_per_s:,.1f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"server CPU {result.server_cpu_ms or 0:.2f} ms/request"
        )
        key = (case.server.app, case.database, case.query)
        self.labels[key] = case.label
        self.results.setdefault(key, []).append(result)

    def rows(self) -> list[Row]:
        """One row per case: the run with the median requests/s (the middle one of an odd count)."""
        rows = []
        for key, runs in self.results.items():
            median = statistics.median_low(r.requests_per_s for r in runs)
            chosen = next(r for r in runs if r.requests_per_s == median)
            rows.append(Row(*key, self.labels[key], chosen))
        return rows


def run(bench: Bench) -> None:
    bare = bench.bare()
    ours = bench.databases()
    say("measuring")
    for round_ in range(bench.args.repeat):
        if bench.args.repeat > 1:
            say(f" round {round_ + 1} of {bench.args.repeat}")
        bench.measure(bare["hello"])
        for cases in ours:
            bench.measure(cases["a"])
        bench.measure(bare["b"])
        for cases in ours:
            bench.measure(cases["b"])
        bench.measure(bare["a"])


def measure_all(session: Session) -> Bench:
    bench = Bench(session)
    if bench.tool == "python":
        say(WRK_MISSING if session.args.load == "auto" else "using the Python load generator")
    run(bench)
    return bench


def report(bench: Bench, started_at: datetime, started: float) -> bool:
    """Prints the table and the ratios, writes the JSON; True when every ratio passes."""
    args = bench.args
    rows = bench.rows()
    found = ratios(rows)
    s = bench.settings
    tool = (
        f"wrk -t{s.threads} -c{s.connections} -d{s.duration:g}s --latency"
        if bench.tool == "wrk"
        else f"python-fallback (asyncio+httpx), {s.connections} connections, {s.duration:g} s: "
        "the generator, not the server, may be the limit"
    )
    say("")
    say(f"load: {tool}, after {s.warmup:g} s of warm-up; median of {args.repeat} run(s)")
    say(rows_table(rows))
    say("")
    say(ratio_lines(found))
    load = {
        "tool": "wrk" if bench.tool == "wrk" else "python-fallback",
        "threads": s.threads,
        "connections": s.connections,
        "duration_s": s.duration,
        "warmup_s": s.warmup,
        "repeat": args.repeat,
    }
    runs = {"/".join(key): [r.as_dict() for r in runs] for key, runs in bench.results.items()}
    body = {"load": load, "crews_seeded": args.crews, "rows": [row.as_dict() for row in rows]}
    body |= {"runs": runs, "ratios": [r.as_dict() for r in found]}
    finish("crews", started_at, time.monotonic() - started, bench.notes, body)
    say(f"total {time.monotonic() - started:.0f} s")
    return all(r.passed for r in found)


def suite(args: argparse.Namespace) -> int:
    """The crews suite: start, seed, measure; servers are stopped before the report."""
    started_at = now()
    started = time.monotonic()
    code, bench = run_guarded("crews", args, measure_all)
    if bench is None:
        return code
    passed = report(bench, started_at, started)
    return 1 if args.strict and not passed else 0
