"""Runner throughput: how many executions a second one server process with the embedded runner
carries through QUEUED → RUNNING → COMPLETED.

For each database and each runner concurrency, a fresh server (fresh database) gets a crew of
three tasks done by one agent with llm `simulated/delay=0,chunk=10000` (each task one chunk, no
waiting), then 1,000 `createExecution(crewId)` mutations as fast as the server takes them (several
aliased mutations a request, several requests in flight). The bench polls sparingly until nothing
is QUEUED or RUNNING, then reads every execution back and checks that all are COMPLETED.

Rate = completed / (last `finishedAt` - first `createdAt`), both stamped by the server: the window
includes creating them, which competes with the runner for the same process, as it would in use.
Each run has a deadline (`--run-timeout`, and a share of `--throughput-budget`); a run cut short
reports what completed, and fails.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench import executions as ex
from bench.output import finish, now, num, pct, say, table
from bench.procstat import Phase, machine_busy
from bench.profile import Profiler
from bench.seed import BenchError
from bench.session import Session, crewql_env, postgres_name

TARGET_PER_S = 150.0  # issue #13: >= 150 exec/s on one process, <= 5 ms CPU each
SETUP_S = 6.0  # about: start a server, migrate, create the crew; stop it
MIN_RUN_S = 10.0


@dataclass(frozen=True)
class ThroughputResult:
    database: str
    concurrency: int
    executions: int
    completed: int
    other: dict[str, int]  # statuses other than COMPLETED, counted
    window_s: float  # first createdAt .. last finishedAt (server clock)
    per_s: float
    create_s: float | None  # client: first request sent .. last answer (None: cut short)
    create_per_s: float
    queue_wait_p50_ms: float  # createdAt .. startedAt
    run_p50_ms: float  # startedAt .. finishedAt
    run_p99_ms: float
    server_cpu: float | None  # share of one core, first request .. all finished (all threads)
    loop_cpu: float | None  # the same, of the event-loop thread alone
    cpu_ms_per_execution: float | None  # server CPU (all threads) / completed
    machine_busy: float | None  # share of all cores busy just before the run (others' work)
    others_cores: float | None  # CPU other processes used during the run, in cores
    database_cpu_ms_per_execution: float | None  # PostgreSQL's own processes, per completed
    problems: list[str]
    direct_requests: bool = True  # CREWQL_AGENT_DIRECT_REQUESTS of the server

    @property
    def passed(self) -> bool:
        return not self.problems and self.per_s >= TARGET_PER_S

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_per_s": TARGET_PER_S, "passed": self.passed}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("throughput")
    group.add_argument("--executions", type=int, default=1000, help="executions per run")
    group.add_argument(
        "--concurrency",
        default="4",
        help="CREWQL_RUNNER_CONCURRENCY values to run, comma-separated",
    )
    group.add_argument(
        "--throughput-llm", default="simulated/delay=0,chunk=10000", help="the crew's llm"
    )
    group.add_argument(
        "--direct-requests",
        choices=("on", "off", "both"),
        default="on",
        help="CREWQL_AGENT_DIRECT_REQUESTS of the server; both: each run twice, off then on",
    )
    group.add_argument(
        "--create-batch", type=int, default=10, help="createExecution mutations per request"
    )
    group.add_argument(
        "--create-requests", type=int, default=4, help="create requests in flight at once"
    )
    group.add_argument(
        "--run-timeout", type=float, default=60.0, help="at most this many seconds a run"
    )
    group.add_argument(
        "--throughput-budget",
        type=float,
        default=120.0,
        help="seconds for all throughput runs together; each run gets an equal share of what "
        "is left (at most --run-timeout), so the suite ends in time on a slow machine too",
    )


def run_one(
    session: Session, database: str, concurrency: int, timeout: float, direct: bool = True
) -> ThroughputResult:
    args = session.args
    database_url = session.database_url(database)
    env = crewql_env(
        database_url,
        # A short grace period: a run cut short by its deadline stops at once.
        {
            "CREWQL_RUNNER_CONCURRENCY": str(concurrency),
            "CREWQL_SHUTDOWN_GRACE_SECONDS": "1",
            "CREWQL_AGENT_DIRECT_REQUESTS": str(direct).lower(),
        },
    )
    server = session.start(f"crewql-{database}-c{concurrency}", "crewql", env)
    try:
        with httpx.Client(timeout=30.0) as client:
            crew_id = ex.create_crew(client, server.url, "throughput", args.throughput_llm, 3)
        busy = machine_busy()
        profiler = Profiler(args.py_spy, server.label, args.py_spy_native)
        session.cleanup.callback(profiler.close)
        phase = Phase({"server": server.pid}, postgres_name(database_url))

        def start() -> None:
            profiler.start(server.pid)
            phase.start()

        def stop() -> None:
            phase.stop()
            profiler.stop()

        shape = (args.create_batch, args.create_requests, 0.0)
        drive = ex.drive(server.url, crew_id, args.executions, shape, timeout, (start, stop))
    finally:
        server.stop()  # the next run gets the machine to itself
    rows = drive.rows
    completed, statuses = ex.tally(rows)
    created = [ex.timestamp(r["createdAt"]) for r in rows]
    started = [ex.timestamp(r["startedAt"]) for r in rows]
    finished = [ex.timestamp(r["finishedAt"]) for r in rows]
    window = ex.span(rows, "createdAt", "finishedAt")
    # Both stamped by the server, but `startedAt` when the claim began: an execution created
    # while a claim was under way may show a start a moment before its creation.
    waits = [max(0.0, s - c) for c, s in zip(created, started, strict=True) if c and s]
    runs = [f - s for s, f in zip(started, finished, strict=True) if s and f]
    meter = phase.meters["server"]
    return ThroughputResult(
        database=database,
        concurrency=concurrency,
        executions=args.executions,
        completed=completed,
        other=statuses,
        window_s=window,
        per_s=completed / window if window else 0.0,
        create_s=drive.create_s,
        create_per_s=drive.created / drive.create_s if drive.create_s else 0.0,
        queue_wait_p50_ms=ex.ms(waits, 50),
        run_p50_ms=ex.ms(runs, 50),
        run_p99_ms=ex.ms(runs, 99),
        server_cpu=meter.share,
        loop_cpu=meter.main_share,
        cpu_ms_per_execution=(
            meter.cpu_s / completed * 1000 if meter.cpu_s is not None and completed else None
        ),
        machine_busy=busy,
        others_cores=phase.others(),
        database_cpu_ms_per_execution=(
            phase.cpu_s()["postgres"] / completed * 1000
            if database == "postgres" and completed
            else None
        ),
        problems=ex.drive_problems(drive, args.executions, timeout),
        direct_requests=direct,
    )


def results_table(results: list[ThroughputResult]) -> str:
    head: tuple[str, ...] = (
        "database",
        "runner conc.",
        "direct",
        "completed",
        "window s",
        "exec/s",
        "create s",
    )
    head += ("queue p50 ms", "run p50 ms", "run p99 ms", "server CPU", "loop CPU")
    head += ("CPU ms/exec", "PG ms/exec", "busy before", "others")
    rows = [
        (
            r.database,
            str(r.concurrency),
            "on" if r.direct_requests else "off",
            f"{r.completed:,}/{r.executions:,}",
            f"{r.window_s:.2f}",
            f"{r.per_s:,.1f}",
            num(r.create_s, 2),
            f"{r.queue_wait_p50_ms:,.0f}",
            f"{r.run_p50_ms:,.1f}",
            f"{r.run_p99_ms:,.1f}",
            pct(r.server_cpu),
            pct(r.loop_cpu),
            num(r.cpu_ms_per_execution),
            num(r.database_cpu_ms_per_execution),
            pct(r.machine_busy),
            num(r.others_cores, 2),
        )
        for r in results
    ]
    return table(head, rows)


def verdicts(results: list[ThroughputResult]) -> str:
    lines = []
    for database in dict.fromkeys(r.database for r in results):
        mine = [r for r in results if r.database == database]
        best = max(mine, key=lambda r: (r.passed or not r.problems, r.per_s))
        lines.append(
            f"{'PASS' if best.passed else 'FAIL'}  runner throughput (best)      {database:<9} "
            f"{best.per_s:8.1f} /s  (target >= {TARGET_PER_S:.0f}/s; "
            f"runner concurrency {best.concurrency})"
        )
        for r in mine:
            for problem in r.problems:
                lines.append(f"      problem ({database}, concurrency {r.concurrency}): {problem}")
    return "\n".join(lines)


def run(session: Session) -> tuple[list[ThroughputResult], dict[str, str]]:
    """A result per run that ran to the end, and the error of each one that did not."""
    args = session.args
    values = ex.int_list(args.concurrency, "--concurrency")
    started_at = now()
    started = time.monotonic()
    results = []
    directs = {"on": [True], "off": [False], "both": [False, True]}[args.direct_requests]
    runs = [
        (database, concurrency, direct)
        for database in session.databases()
        for concurrency in values
        for direct in directs
    ]
    failures: dict[str, str] = {}
    budget_ends = started + args.throughput_budget
    for index, (database, concurrency, direct) in enumerate(runs):
        # Each run: its share of the time left, less about 6 s to start and stop a server.
        share = (budget_ends - time.monotonic()) / (len(runs) - index) - SETUP_S
        timeout = max(MIN_RUN_S, min(args.run_timeout, share))
        say(
            f"throughput on {database}: {args.executions} executions, "
            f"runner concurrency {concurrency}, direct requests {'on' if direct else 'off'} "
            f"(at most {timeout:.0f} s)"
        )
        name = f"{database}/{concurrency}" + ("" if direct else "/no-direct")
        try:
            result = run_one(session, database, concurrency, timeout, direct)
        except (BenchError, RuntimeError, OSError) as exc:  # the other runs still happen
            failures[name] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {failures[name]}")
            continue
        say(
            f"  {result.completed:,} completed in {result.window_s:.2f} s: "
            f"{result.per_s:,.1f}/s"
            + ("" if result.create_s is None else f" (created in {result.create_s:.2f} s)")
        )
        results.append(result)
    say("")
    say(
        f"runner throughput: {args.executions} executions of a 3-task crew "
        f"({args.throughput_llm}) per run, one server process; "
        "rate = completed / (last finishedAt - first createdAt)"
    )
    say(results_table(results))
    say("")
    say(verdicts(results))
    for run_name, error in failures.items():
        say(f"FAIL  runner throughput              {run_name:<9} did not complete: {error[:300]}")
    settings = {
        "executions": args.executions,
        "llm": args.throughput_llm,
        "tasks": 3,
        "concurrency": values,
        "direct_requests": args.direct_requests,
        "create_batch": args.create_batch,
        "create_requests": args.create_requests,
        "run_timeout_s": args.run_timeout,
        "budget_s": args.throughput_budget,
    }
    finish(
        "throughput",
        started_at,
        time.monotonic() - started,
        session.notes,
        {"settings": settings, "results": [r.as_dict() for r in results], "failures": failures},
    )
    return results, failures


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        ex.int_list(args.concurrency, "--concurrency")
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.executions < 1:
        parser.error("--executions must be at least 1")
    if not 1 <= args.create_batch <= 25:
        parser.error("--create-batch must be between 1 and 25 (the server limits aliases)")
    if args.create_requests < 1:
        parser.error("--create-requests must be at least 1")
