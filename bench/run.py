"""The bench run: reference app, our server on SQLite and PostgreSQL, table, ratios, JSON."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from bench import pg
from bench.load import LoadResult, LoadSettings, measure, wrk_path
from bench.procs import Server
from bench.queries import CREW_BY_ID, CREWS_PAGE, HELLO
from bench.report import Row, machine, now, ratio_lines, ratios, table, write_json
from bench.seed import BenchError, check_answers, first_crew_id, seed

WRK_MISSING = (
    "wrk is not installed (Debian/Ubuntu: apt-get install -y wrk); using the Python fallback "
    "load generator, whose figures are marked 'python-fallback' and are not comparable to wrk's."
)


def say(message: str) -> None:
    print(message, flush=True)


def body(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"query": query}
    if variables:
        found["variables"] = variables
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark crewql against a bare Strawberry app (see docs/performance.md).",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=20, help="open connections")
    parser.add_argument("--crews", type=int, default=110, help="crews to seed (at least 100)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", pg.DEFAULT_SERVER_URL),
        help="a PostgreSQL server to create the temporary database on (BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio fails")
    args = parser.parse_args(argv)
    if args.crews < 100:
        parser.error("--crews must be at least 100: query (b) reads a page of 100")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: ExitStack) -> None:
        self.args = args
        self.workdir = workdir
        self.cleanup = cleanup
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.settings = LoadSettings(
            duration=args.duration, warmup=args.warmup, connections=args.connections
        )
        self.tool = "wrk"
        if args.load == "python" or (args.load == "auto" and wrk_path() is None):
            self.tool = "python"
        elif args.load == "wrk" and wrk_path() is None:
            raise BenchError("--load wrk, but wrk is not installed (apt-get install -y wrk)")

    def server(self, label: str, app: str, env: dict[str, str] | None = None) -> Server:
        server = Server(label=label, app=app, env=env or {}, workdir=self.workdir)
        self.cleanup.callback(server.stop)
        say(f"starting {label} on port {server.port}")
        server.start()
        return server

    def run(self, server: Server, database: str, query: str, label: str, payload: Any) -> None:
        total = self.settings.warmup + self.settings.duration
        say(f"  {label:<24} {self.tool}, {self.settings.connections} connections, {total:.0f} s")
        result: LoadResult = measure(server.url, payload, self.settings, self.workdir, self.tool)
        if result.errors:
            self.notes.append(f"{server.label} {label}: {result.errors} errors or non-2xx answers")
        say(
            f"  {'':<24} {result.requests_per_s:,.1f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms"
        )
        self.rows.append(Row(server.app, database, query, label, result))

    def bare(self) -> None:
        server = self.server("bare", "bare")
        crew_id = first_crew_id(server.url)
        check_answers(server.url, crew_id)
        self.run(server, "memory", "hello", "{ hello }", body(HELLO))
        self.run(server, "memory", "b-shape", "(b) shape from memory", body(CREWS_PAGE))
        self.run(
            server, "memory", "a-shape", "(a) shape from memory", body(CREW_BY_ID, {"id": crew_id})
        )
        server.stop()

    def crewql(self, database: str, url: str) -> None:
        env = {
            "CREWQL_DATABASE_URL": url,
            "CREWQL_LOG_TO_FILES": "false",
            "CREWQL_LOG_LEVEL": "WARNING",
            "CREWQL_MIGRATE_ON_START": "true",
        }
        server = self.server(f"crewql-{database}", "crewql", env)
        started = time.monotonic()
        seed(server.url, self.args.crews)
        say(
            f"  seeded {self.args.crews} crews through GraphQL in {time.monotonic() - started:.1f} s"
        )
        crew_id = first_crew_id(server.url)
        check_answers(server.url, crew_id)
        self.run(server, database, "a", "(a) crew(id)", body(CREW_BY_ID, {"id": crew_id}))
        self.run(server, database, "b", "(b) crews(first: 100)", body(CREWS_PAGE))
        server.stop()

    def sqlite(self) -> None:
        path = self.workdir / "bench.db"
        self.crewql("sqlite", f"sqlite+aiosqlite:///{path}")

    def postgres(self) -> None:
        if self.args.no_postgres:
            self.notes.append("PostgreSQL skipped (--no-postgres)")
            return
        problem = pg.unreachable_reason(self.args.postgres_url)
        if problem is not None:
            note = (
                f"PostgreSQL skipped: {self.args.postgres_url} unreachable ({problem}); "
                "set BENCH_POSTGRES_URL or --postgres-url"
            )
            say(note)
            self.notes.append(note)
            return
        server_url = self.args.postgres_url
        url = pg.create_database(server_url)
        drop: Callable[[], None] = lambda: pg.drop_database(server_url, url)  # noqa: E731
        self.cleanup.callback(drop)
        self.crewql("postgres", url)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started_at = now()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="crewql-bench-"))
    code = 0
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            bench = Bench(args, workdir, cleanup)
            if bench.tool == "python":
                say(WRK_MISSING if args.load == "auto" else "using the Python load generator")
            bench.bare()
            bench.sqlite()
            bench.postgres()
        except KeyboardInterrupt:
            say("\ninterrupted: stopping servers and dropping temporary databases")
            return 130
        except (BenchError, RuntimeError) as exc:
            say(f"bench failed: {exc}")
            return 1
    found = ratios(bench.rows)
    say("")
    say(table(bench.rows))
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
            },
            "crews_seeded": args.crews,
            "rows": [row.as_dict() for row in bench.rows],
            "ratios": [r.as_dict() for r in found],
            "notes": bench.notes,
        },
        started_at,
    )
    say(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    say(f"total {time.monotonic() - started:.0f} s")
    if args.strict and not all(r.passed for r in found):
        code = 1
    return code
