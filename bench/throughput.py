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
import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import executions as ex
from bench.procstat import CpuMeter, MachineMeter, machine_busy
from bench.profile import Profiler
from bench.report import machine, now, write_json
from bench.seed import RESULT, BenchError, graphql
from bench.session import Session, crewql_env, postgres_name, say

TARGET_PER_S = 150.0  # issue #13: >= 150 exec/s on one process, <= 5 ms CPU each
SETUP_S = 6.0  # about: start a server, migrate, create the crew; stop it
MIN_RUN_S = 10.0
PENDING_QUERY = (
    "query Pending { executions(first: 1, filter: {statuses: [QUEUED, RUNNING, CANCELLING]}) "
    "{ edges { node { id } } } }"
)
PAGE_QUERY = (
    "query Page($after: String) { executions(first: 100, after: $after) { edges { node "
    "{ id status createdAt startedAt finishedAt } } pageInfo { hasNextPage endCursor } } }"
)


def launch_document(batch: int) -> str:
    fields = " ".join(
        f"e{i}: createExecution(input: {{crewId: $crew}}) "
        f"{{ {RESULT} ... on Execution {{ id createdAt }} }}"
        for i in range(batch)
    )
    return f"mutation Launch($crew: ID!) {{ {fields} }}"


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
        default="4,16",
        help="CREWQL_RUNNER_CONCURRENCY values to run, comma-separated",
    )
    group.add_argument(
        "--throughput-llm", default="simulated/delay=0,chunk=10000", help="the crew's llm"
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
        default=200.0,
        help="seconds for all throughput runs together; each run gets an equal share of what "
        "is left (at most --run-timeout), so the suite ends in time on a slow machine too",
    )


def concurrency_values(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--concurrency: not a list of integers: {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("--concurrency: give positive integers, e.g. 4,16,64")
    return values


async def _create_all(
    client: httpx.AsyncClient,
    url: str,
    crew_id: str,
    args: argparse.Namespace,
    created: list[dict[str, Any]],
) -> None:
    """Creates `args.executions` executions, appending each to `created` as its answer comes
    (so that a run cut short by its deadline still knows what it created)."""
    count, batch = args.executions, args.create_batch
    sizes = [min(batch, count - start) for start in range(0, count, batch)]
    documents = {size: launch_document(size) for size in set(sizes)}
    limit = asyncio.Semaphore(args.create_requests)

    async def one(size: int) -> None:
        async with limit:
            data = await graphql(client, url, documents[size], {"crew": crew_id})
        created.extend(ex.created(data[f"e{i}"], "Execution") for i in range(size))

    await asyncio.gather(*(one(size) for size in sizes))


async def _wait_finished(client: httpx.AsyncClient, url: str, deadline: float) -> bool:
    """Polls (every 0.25 s: one small query) until nothing is queued or running."""
    while time.monotonic() < deadline:
        data = await graphql(client, url, PENDING_QUERY)
        if not data["executions"]["edges"]:
            return True
        await asyncio.sleep(0.25)
    return False


async def _read_all(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        data = await graphql(client, url, PAGE_QUERY, {"after": after})
        page = data["executions"]
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


@dataclass
class Drive:
    created: int
    create_s: float | None  # None: not all were created before the deadline
    finished: bool
    executions: list[dict[str, Any]]


async def _drive(
    args: argparse.Namespace,
    url: str,
    crew_id: str,
    seconds: float,
    meter: CpuMeter,
    profiler: Profiler,
    machine_meter: MachineMeter | None = None,
) -> Drive:
    limits = httpx.Limits(max_connections=args.create_requests + 2)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        created: list[dict[str, Any]] = []
        profiler.start(meter.pid)
        started = time.monotonic()
        deadline = started + seconds
        meter.start(started)
        if machine_meter is not None:
            machine_meter.start(started)
        create_s: float | None = None
        finished = False
        try:
            await asyncio.wait_for(_create_all(client, url, crew_id, args, created), seconds)
            create_s = time.monotonic() - started
            finished = await _wait_finished(client, url, deadline)
        except TimeoutError:
            pass
        stopped = time.monotonic()
        meter.stop(stopped)
        if machine_meter is not None:
            machine_meter.stop(stopped)
        profiler.stop()
        executions = await _read_all(client, url)
    return Drive(len(created), create_s, finished, executions)


def _ms(values: list[float], q: float) -> float:
    return ex.percentile(sorted(values), q) * 1000


class Throughput:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.args = session.args

    def run_one(self, database: str, concurrency: int, timeout: float) -> ThroughputResult:
        args = self.args
        database_url = self.session.database_url(database)
        env = crewql_env(
            database_url,
            # A short grace period: a run cut short by its deadline stops at once.
            {"CREWQL_RUNNER_CONCURRENCY": str(concurrency), "CREWQL_SHUTDOWN_GRACE_SECONDS": "1"},
        )
        server = self.session.start(f"crewql-{database}-c{concurrency}", "crewql", env)
        try:
            assert server.pid is not None
            with httpx.Client(timeout=30.0) as client:
                crew_id = ex.create_crew(client, server.url, "throughput", args.throughput_llm, 3)
            busy = machine_busy()
            meter = CpuMeter(server.pid)
            profiler = Profiler(args.py_spy, server.label, args.py_spy_native)
            self.session.cleanup.callback(profiler.close)
            machine_meter = MachineMeter(postgres_name(database_url))
            drive = asyncio.run(
                _drive(args, server.url, crew_id, timeout, meter, profiler, machine_meter)
            )
        finally:
            server.stop()  # the next run gets the machine to itself
        return self._result(database, concurrency, timeout, drive, meter, busy, machine_meter)

    def _result(
        self,
        database: str,
        concurrency: int,
        timeout: float,
        drive: Drive,
        meter: CpuMeter,
        busy: float | None,
        machine_meter: MachineMeter,
    ) -> ThroughputResult:
        args = self.args
        problems: list[str] = []
        rows = drive.executions  # a fresh database: every execution in it is one of this run's
        if drive.create_s is None:
            problems.append(
                f"only {drive.created} of {args.executions} created within {timeout:.0f} s"
            )
        elif not drive.finished:
            problems.append(f"not all finished within {timeout:.0f} s")
        if len(rows) != args.executions:
            problems.append(f"{len(rows)} executions in the database, {args.executions} sent")
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        completed = statuses.pop("COMPLETED", 0)
        if statuses:
            problems.append(f"not COMPLETED: {statuses}")
        created = [ex.timestamp(r["createdAt"]) for r in rows]
        started = [ex.timestamp(r["startedAt"]) for r in rows]
        finished = [ex.timestamp(r["finishedAt"]) for r in rows]
        first = min((t for t in created if t is not None), default=0.0)
        last = max((t for t in finished if t is not None), default=0.0)
        window = last - first if last > first else 0.0
        # Both stamped by the server, but `startedAt` when the claim began: an execution created
        # while a claim was under way may show a start a moment before its creation.
        waits = [max(0.0, s - c) for c, s in zip(created, started, strict=True) if c and s]
        runs = [f - s for s, f in zip(started, finished, strict=True) if s and f]
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
            queue_wait_p50_ms=_ms(waits, 50),
            run_p50_ms=_ms(runs, 50),
            run_p99_ms=_ms(runs, 99),
            server_cpu=meter.share,
            loop_cpu=meter.main_share,
            cpu_ms_per_execution=(
                meter.cpu_s / completed * 1000 if meter.cpu_s is not None and completed else None
            ),
            machine_busy=busy,
            others_cores=machine_meter.others(meter.cpu_s or 0.0),
            database_cpu_ms_per_execution=(
                machine_meter.database_cpu_s / completed * 1000
                if database == "postgres" and completed
                else None
            ),
            problems=problems,
        )


def table(results: list[ThroughputResult]) -> str:
    head = (
        "database",
        "runner conc.",
        "completed",
        "window s",
        "exec/s",
        "create s",
        "queue p50 ms",
        "run p50 ms",
        "run p99 ms",
        "server CPU",
        "loop CPU",
        "CPU ms/exec",
        "PG ms/exec",
        "busy before",
        "others",
    )
    lines = [
        (
            r.database,
            str(r.concurrency),
            f"{r.completed:,}/{r.executions:,}",
            f"{r.window_s:.2f}",
            f"{r.per_s:,.1f}",
            "-" if r.create_s is None else f"{r.create_s:.2f}",
            f"{r.queue_wait_p50_ms:,.0f}",
            f"{r.run_p50_ms:,.1f}",
            f"{r.run_p99_ms:,.1f}",
            "-" if r.server_cpu is None else f"{r.server_cpu * 100:.0f}%",
            "-" if r.loop_cpu is None else f"{r.loop_cpu * 100:.0f}%",
            "-" if r.cpu_ms_per_execution is None else f"{r.cpu_ms_per_execution:.1f}",
            "-"
            if r.database_cpu_ms_per_execution is None
            else f"{r.database_cpu_ms_per_execution:.1f}",
            "-" if r.machine_busy is None else f"{r.machine_busy * 100:.0f}%",
            "-" if r.others_cores is None else f"{r.others_cores:.2f}",
        )
        for r in results
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


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
    values = concurrency_values(args.concurrency)
    started_at = now()
    started = time.monotonic()
    throughput = Throughput(session)
    results = []
    runs = [(database, concurrency) for database in session.databases() for concurrency in values]
    failures: dict[str, str] = {}
    budget_ends = started + args.throughput_budget
    for index, (database, concurrency) in enumerate(runs):
        # Each run: its share of the time left, less about 6 s to start and stop a server.
        share = (budget_ends - time.monotonic()) / (len(runs) - index) - SETUP_S
        timeout = max(MIN_RUN_S, min(args.run_timeout, share))
        say(
            f"throughput on {database}: {args.executions} executions, "
            f"runner concurrency {concurrency} (at most {timeout:.0f} s)"
        )
        try:
            result = throughput.run_one(database, concurrency, timeout)
        except (BenchError, RuntimeError, OSError) as exc:  # the other runs still happen
            failures[f"{database}/{concurrency}"] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {failures[f'{database}/{concurrency}']}")
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
    say(table(results))
    say("")
    say(verdicts(results))
    for run_name, error in failures.items():
        say(f"FAIL  runner throughput              {run_name:<9} did not complete: {error[:300]}")
    for note in session.notes:
        say(f"note: {note}")
    path = write_json(
        {
            "suite": "throughput",
            "started_at": started_at.isoformat(),
            "elapsed_s": round(time.monotonic() - started, 1),
            "machine": machine(),
            "settings": {
                "executions": args.executions,
                "llm": args.throughput_llm,
                "tasks": 3,
                "concurrency": values,
                "create_batch": args.create_batch,
                "create_requests": args.create_requests,
                "run_timeout_s": args.run_timeout,
                "budget_s": args.throughput_budget,
            },
            "results": [r.as_dict() for r in results],
            "failures": failures,
            "notes": session.notes,
        },
        started_at,
        prefix="throughput",
    )
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    say(f"results: {shown}")
    return results, failures


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        concurrency_values(args.concurrency)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.executions < 1:
        parser.error("--executions must be at least 1")
    if not 1 <= args.create_batch <= 25:
        parser.error("--create-batch must be between 1 and 25 (the server limits aliases)")
    if args.create_requests < 1:
        parser.error("--create-requests must be at least 1")
