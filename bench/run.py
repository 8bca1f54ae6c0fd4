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
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import pg
from bench.load import LoadResult, LoadSettings, measure, wrk_path
from bench.procs import Server
from bench.queries import CREW_BY_ID, CREWS_PAGE, HELLO
from bench.report import Row, machine, now, ratio_lines, ratios, table, write_json
from bench.seed import BenchError, check_answers, first_crew_id, seed
from bench.session import Session, crewql_env, drop_quietly, run_guarded, say

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
    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: ExitStack) -> None:
        self.args = args
        self.workdir = workdir
        self.cleanup = cleanup
        self.results: dict[tuple[str, str, str], list[LoadResult]] = {}
        self.labels: dict[tuple[str, str, str], str] = {}
        self.notes: list[str] = []
        self.settings = LoadSettings(
            duration=args.duration, warmup=args.warmup, connections=args.connections
        )
        self.tool = "wrk"
        if args.load == "python" or (args.load == "auto" and wrk_path() is None):
            self.tool = "python"
        elif args.load == "wrk" and wrk_path() is None:
            raise BenchError("--load wrk, but wrk is not installed (apt-get install -y wrk)")

    # ------------------------------------------------------------------ set-up

    def start(self, label: str, app: str, env: dict[str, str] | None = None) -> Server:
        server = Server(label=label, app=app, env=env or {}, workdir=self.workdir)
        self.cleanup.callback(server.stop)
        say(f"starting {label} on port {server.port}")
        server.start()
        return server

    def bare(self) -> dict[str, Case]:
        server = self.start("bare", "bare")
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
        server = self.start(f"crewql-{database}", "crewql", crewql_env(url))
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

    def sqlite(self) -> dict[str, Case]:
        return self.crewql("sqlite", f"sqlite+aiosqlite:///{self.workdir / 'bench.db'}")

    def postgres(self) -> dict[str, Case] | None:
        if self.args.no_postgres:
            self.notes.append("PostgreSQL skipped (--no-postgres)")
            return None
        server_url = self.args.postgres_url
        problem = pg.unreachable_reason(server_url)
        if problem is not None:
            note = (
                f"PostgreSQL skipped: {server_url} unreachable ({problem}); "
                "set BENCH_POSTGRES_URL or --postgres-url"
            )
            say(note)
            self.notes.append(note)
            return None
        url = pg.new_database_url(server_url)
        # Registered before the create (an interrupt in between leaves nothing behind) and before
        # the server's stop, so it runs after that (ExitStack unwinds LIFO).
        self.cleanup.callback(drop_quietly, server_url, url)
        pg.create_database(server_url, url)
        return self.crewql("postgres", url)

    # ------------------------------------------------------------------ measuring

    def measure(self, case: Case) -> None:
        total = self.settings.warmup + self.settings.duration
        say(
            f"  {case.server.label:<15} {case.label:<24} "
            f"{self.tool}, {self.settings.connections} connections, {total:.0f} s"
        )
        result = measure(case.server.url, case.payload, self.settings, self.workdir, self.tool)
        if result.errors:
            self.notes.append(
                f"{case.server.label} {case.label}: {result.errors} errors or non-2xx answers"
            )
        say(
            f"  {'':<15} {'':<24} {result.requests_per_s:,.1f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
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
    ours = [bench.sqlite()]
    on_postgres = bench.postgres()
    if on_postgres is not None:
        ours.append(on_postgres)
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
    bench = Bench(session.args, session.workdir, session.cleanup)
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
    say(table(rows))
    say("")
    say(ratio_lines(found))
    for note in bench.notes:
        say(f"note: {note}")
    path = write_json(
        {
            "started_at": started_at.isoformat(),
            "elapsed_s": round(time.monotonic() - started, 1),
            "machine": machine(),
            "load": {
                "tool": "wrk" if bench.tool == "wrk" else "python-fallback",
                "threads": bench.settings.threads,
                "connections": bench.settings.connections,
                "duration_s": bench.settings.duration,
                "warmup_s": bench.settings.warmup,
                "repeat": args.repeat,
            },
            "crews_seeded": args.crews,
            "rows": [row.as_dict() for row in rows],
            "runs": {
                "/".join(key): [r.as_dict() for r in runs] for key, runs in bench.results.items()
            },
            "ratios": [r.as_dict() for r in found],
            "notes": bench.notes,
        },
        started_at,
    )
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    say(f"results: {shown}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench crews …` (kept for callers of bench.run.main)."""
    from bench.cli import main as cli_main

    return cli_main(["crews", *(argv or [])])
