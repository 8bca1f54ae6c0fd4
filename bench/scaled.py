"""Scaled mode on PostgreSQL: the total CPU one execution costs with 1, 2 and 4 `crewql worker`
processes behind one API replica, how long a queued execution waits for a worker's claim, and
that no execution runs twice; then event fan-out over two replicas (bench/scaled_fanout.py).

Cost: per worker count, a fresh database and processes (bench/cluster.py): one API replica
(`CREWQL_RUNNER_ENABLED=false`) and N workers (`CREWQL_RUNNER_CONCURRENCY`, 8 by default).
Through the replica the bench creates a crew of three tasks (llm `simulated/delay=0,chunk=10000`)
and then `--scaled-executions` executions, one a request, paced at `--scaled-rate` a second: an
offered load below capacity, the same for every worker count (0: as fast as the replica answers).
It waits until none is queued or running. Over that window (first request .. all finished) it
sums the CPU of the replica, of every worker and of the PostgreSQL backends serving the database
(/proc); total CPU per execution = that sum / completed. Target: at 2 and 4 workers within ±15 %
of 1 worker, so that workers add capacity, not overhead; then rate ≈ cores / total CPU per
execution on any machine.

Claim latency, per execution, from the event log: its EXECUTION_STARTED event's `created_at`
minus its EXECUTION_QUEUED event's. The server stamps each in the transaction that writes it, just
before its last statements and the commit (createExecution's; the worker's claim), so this is the
time from the execution committed QUEUED to a worker's claim committing, less each
transaction's short tail. Quoted as p50/p99/max over the run's executions.

Ran twice, from the database: executions with more than one EXECUTION_STARTED or
EXECUTION_COMPLETED event or a task with more than one TASK_STARTED, or whose `worker_id` is not
the worker its EXECUTION_STARTED names. Also checked through the API: every one COMPLETED.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench import executions as ex
from bench.cluster import Cluster
from bench.output import finish, now, num, say, table
from bench.procstat import Phase, machine_busy
from bench.scaled_fanout import FANOUT_LLM, FanoutRun, fanout_run
from bench.seed import BenchError
from bench.session import Session

TWICE = """
SELECT count(DISTINCT execution_id) FROM (
  SELECT execution_id FROM execution_events
   WHERE type IN ('EXECUTION_STARTED', 'EXECUTION_COMPLETED', 'TASK_STARTED')
   GROUP BY execution_id, type, task_position HAVING count(*) > 1
  UNION ALL
  SELECT e.id FROM executions e JOIN execution_events s ON s.execution_id = e.id
   WHERE s.type = 'EXECUTION_STARTED' AND (s.data ->> 'worker') IS DISTINCT FROM e.worker_id
) twice"""
CLAIMS = """
SELECT execution_id, extract(epoch FROM min(created_at) FILTER (WHERE type = 'EXECUTION_STARTED')
                       - min(created_at) FILTER (WHERE type = 'EXECUTION_QUEUED'))
  FROM execution_events WHERE type IN ('EXECUTION_QUEUED', 'EXECUTION_STARTED')
 GROUP BY execution_id"""
IDLE_S = 3.0
WARM_RUNS = 2
PER_WORKER = "SELECT worker_id, count(*) FROM executions GROUP BY worker_id ORDER BY 2 DESC"


@dataclass(frozen=True)
class CostRun:
    workers: int
    concurrency: int
    offered_per_s: float  # 0: as fast as the replica answered
    executions: int
    completed: int
    window_s: float  # first createdAt .. last finishedAt, server clock
    measured_s: float  # the CPU window: first request .. nothing queued or running
    cpu_s: dict[str, float]  # "api", "worker1".., "postgres"
    idle_cores: dict[str, float]  # the same processes with nothing to do, just before
    others_cores: float | None  # CPU other work on the machine used meanwhile, in cores
    busy_before: float | None
    claim_ms: dict[str, float]  # p50, p99, max
    twice: int  # executions that ran twice, by the event log
    per_worker: list[int]  # executions each worker ran, most first
    problems: list[str] = field(default_factory=list)

    def ms_per_execution(self, part: str, busy: bool = False) -> float:
        """CPU ms per completed execution of "api", "workers", "postgres" or "total"; `busy`:
        less what the same processes use idle over the same time (the per-execution work)."""
        cpu = self.cpu_s
        if busy:
            cpu = {k: v - self.idle_cores.get(k, 0.0) * self.measured_s for k, v in cpu.items()}
        spent = {
            "api": cpu.get("api", 0.0),
            "workers": sum(v for k, v in cpu.items() if k.startswith("worker")),
            "postgres": cpu.get("postgres", 0.0),
        }
        value = sum(spent.values()) if part == "total" else spent[part]
        return value / self.completed * 1000 if self.completed else 0.0

    def as_dict(self) -> dict[str, Any]:
        parts = ("api", "workers", "postgres", "total")
        found = asdict(self) | {"ms_per_execution": {p: self.ms_per_execution(p) for p in parts}}
        found["busy_ms_per_execution"] = {p: self.ms_per_execution(p, busy=True) for p in parts}
        return found


@dataclass
class ScaledReport:
    runs: list[CostRun]
    fanouts: list[FanoutRun]
    failures: dict[str, str]
    skipped: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scaled (also uses --throughput-llm)")
    group.add_argument(
        "--scaled-workers", default="1,2,4", help="worker process counts to run, comma-separated"
    )
    group.add_argument(
        "--worker-concurrency", type=int, default=8, help="CREWQL_RUNNER_CONCURRENCY per worker"
    )
    group.add_argument(
        "--scaled-executions", type=int, default=80, help="executions per worker count"
    )
    group.add_argument(
        "--scaled-rate",
        type=float,
        default=2.0,
        help="executions offered a second (keep it below capacity; 0: as fast as possible)",
    )
    group.add_argument(
        "--scaled-subscribers",
        default="100,500",
        help="fan-out runs: subscribers of each (half on each of 2 replicas), comma-separated",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        ex.int_list(args.scaled_workers, "--scaled-workers")
        ex.int_list(args.scaled_subscribers, "--scaled-subscribers", minimum=2, empty=True)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.worker_concurrency < 1 or args.scaled_executions < 1 or args.scaled_rate < 0:
        parser.error("--worker-concurrency, --scaled-executions >= 1; --scaled-rate >= 0")


def _warm_up(cluster: Cluster, url: str, crew: str, workers: int) -> None:
    """Until every worker has run WARM_RUNS executions: a process's first runs import and build
    the agent runtime and fill its statement caches, one-off costs that are not per execution.
    Paced, so that the workers' turns spread the executions over all of them (a burst goes to
    whoever has free slots first)."""
    for _ in range(5):
        ex.drive(url, crew, 4 * workers, (1, 4, 4.0), 60.0, (_nothing, _nothing))
        runs = [int(r[1]) for r in cluster.sql(PER_WORKER)]
        if len(runs) >= workers and min(runs) >= WARM_RUNS:
            return
    raise BenchError(f"not every one of {workers} workers ran {WARM_RUNS} warm-up executions")


def _nothing() -> None:
    pass


def cost_run(session: Session, workers: int) -> CostRun:
    args = session.args
    count, rate = args.scaled_executions, args.scaled_rate
    timeout = (count / rate if rate else 0.0) + args.run_timeout
    cluster = Cluster(session, f"cost{workers}w")
    concurrency = {"CREWQL_RUNNER_CONCURRENCY": str(args.worker_concurrency)}
    try:
        api = cluster.start("api", "serve", {"CREWQL_RUNNER_ENABLED": "false"})
        for n in range(workers):
            cluster.start(f"worker{n + 1}", "worker", concurrency)
        cluster.wait_ready()
        with httpx.Client(timeout=30.0) as client:
            crew = ex.create_crew(client, api.url, "scaled", args.throughput_llm, 3)
        _warm_up(cluster, api.url, crew, workers)
        busy = machine_busy()
        idle = Phase(cluster.pids(), cluster.database)
        idle.start()
        time.sleep(IDLE_S)
        idle.stop()
        phase = Phase(cluster.pids(), cluster.database)
        # Paced: one execution a request, so the offered load is smooth.
        shape = (1, 8, rate) if rate else (args.create_batch, args.create_requests, 0.0)
        drive = ex.drive(api.url, crew, count, shape, timeout, (phase.start, phase.stop))
        twice = int(cluster.sql(TWICE)[0][0])
        ids = {r["id"] for r in drive.rows}
        claims = sorted(
            float(r[1]) for r in cluster.sql(CLAIMS) if str(r[0]) in ids and r[1] is not None
        )
        per_worker = [int(r[1]) for r in cluster.sql(PER_WORKER)]
    finally:
        cluster.close()  # the next configuration gets the machine to itself
    rows = drive.rows
    problems = ex.drive_problems(drive, count, timeout)
    if rate and drive.create_s and drive.create_s > count / rate * 1.2 + 2:
        problems.append(f"created in {drive.create_s:.1f} s: slower than the offered rate")
    if len(per_worker) > workers or len(claims) != len(rows):
        problems.append(f"{len(rows)} rows, {len(claims)} claims, workers {per_worker}")
    return CostRun(
        workers=workers,
        concurrency=args.worker_concurrency,
        offered_per_s=rate,
        executions=count,
        completed=ex.tally(rows)[0],
        window_s=ex.span(rows, "createdAt", "finishedAt"),
        measured_s=phase.wall_s,
        cpu_s=phase.cpu_s(),
        idle_cores={k: v for k, v in idle.cores().items() if k != "bench client"},
        others_cores=phase.others(),
        busy_before=busy,
        claim_ms={q: ex.ms(claims, n) for q, n in (("p50", 50), ("p99", 99), ("max", 100))},
        twice=twice,
        per_worker=per_worker,
        problems=problems,
    )


def cost_table(runs: list[CostRun]) -> str:
    head: tuple[str, ...] = ("workers", "offered/s", "completed", "window s", "exec/s")
    head += ("CPU ms/exec: API", "workers", "PostgreSQL", "total", "less idle", "idle cores")
    head += ("claim p50/p99/max ms", "ran twice", "per worker", "others")
    rows = []
    for r in runs:
        idle = r.idle_cores
        workers_idle = sum(v for k, v in idle.items() if k.startswith("worker"))
        rows.append(
            (
                str(r.workers),
                f"{r.offered_per_s:g}" if r.offered_per_s else "max",
                f"{r.completed:,}/{r.executions:,}",
                f"{r.window_s:.1f}",
                f"{r.completed / r.window_s if r.window_s else 0:.1f}",
                *(f"{r.ms_per_execution(p):.1f}" for p in ("api", "workers", "postgres", "total")),
                f"{r.ms_per_execution('total', busy=True):.1f}",
                f"{idle.get('api', 0):.2f}/{workers_idle:.2f}/{idle.get('postgres', 0):.2f}",
                "/".join(f"{r.claim_ms[q]:.0f}" for q in ("p50", "p99", "max")),
                str(r.twice),
                "/".join(map(str, r.per_worker)),
                num(r.others_cores, 2),
            )
        )
    return table(head, rows)


def model_lines(runs: list[CostRun]) -> list[str]:
    """Rate ≈ cores / CPU per execution (idle subtracted), from the 1-worker run."""
    one = next((r for r in runs if r.workers == 1 and not r.problems), None)
    if one is None:
        return []
    busy = one.ms_per_execution("total", busy=True)
    parts = ("api", "workers", "postgres")
    split = ", ".join(f"{p} {one.ms_per_execution(p, busy=True):.1f}" for p in parts)
    rates = ", ".join(f"{c} cores {c * 1000 / busy:,.0f}/s" for c in (2, 8, 32))
    return [f"      model: rate ~ cores / {busy:.1f} ms ({split}): {rates}"]


def run(session: Session) -> ScaledReport:
    args = session.args
    started_at, started = now(), time.monotonic()
    if not session.postgres_available():
        note = session.notes[-1] if session.notes else "PostgreSQL unavailable"
        say(f"scaled: skipped, it needs PostgreSQL ({note})")
        return ScaledReport([], [], {}, skipped=note)
    report = ScaledReport([], [], {})
    for workers in ex.int_list(args.scaled_workers, "--scaled-workers"):
        say(
            f"scaled cost: {args.scaled_executions} executions offered at "
            f"{f'{args.scaled_rate:g}/s' if args.scaled_rate else 'full speed'}, "
            f"1 API replica, {workers} worker(s) x concurrency {args.worker_concurrency}"
        )
        try:
            result = cost_run(session, workers)
        except (BenchError, RuntimeError, OSError) as exc:
            report.failures[f"cost/{workers}w"] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {report.failures[f'cost/{workers}w']}")
            continue
        say(f"  {result.completed:,} completed; {result.ms_per_execution('total'):.1f} ms CPU each")
        report.runs.append(result)
    for total in ex.int_list(args.scaled_subscribers, "--scaled-subscribers", 2, empty=True):
        say(f"scaled fan-out: {total} subscribers over 2 replicas, 1 worker")
        try:
            report.fanouts.append(fanout_run(session, total))
        except (BenchError, RuntimeError, OSError) as exc:
            report.failures[f"fan-out/{total}"] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {report.failures[f'fan-out/{total}']}")
    say("")
    say(
        f"scaled mode: executions of a 3-task crew ({args.throughput_llm}); CPU of the API "
        "replica, the workers and the PostgreSQL backends per completed execution"
    )
    say(cost_table(report.runs))
    lines = model_lines(report.runs)
    for r in report.runs:
        lines += [f"      problem ({r.workers} workers): {p[:300]}" for p in r.problems]
    for f in report.fanouts:
        lines += f.lines()
    lines += [
        f"FAIL  {name} did not complete: {error[:300]}" for name, error in report.failures.items()
    ]
    for line in lines:
        say(line)
    settings = {
        "executions": args.scaled_executions,
        "offered_per_s": args.scaled_rate,
        "llm": args.throughput_llm,
        "tasks": 3,
        "worker_concurrency": args.worker_concurrency,
        "subscribers": args.scaled_subscribers,
        "fanout_llm": FANOUT_LLM,
    }
    body = {"settings": settings, "runs": [r.as_dict() for r in report.runs]}
    body |= {"fanout": [f.as_dict() for f in report.fanouts], "failures": report.failures}
    finish("scaled", started_at, time.monotonic() - started, session.notes, body)
    return report
