"""Scaled mode on PostgreSQL: runner throughput with 1, 2 and 4 `crewql worker` processes, and
event fan-out with the subscribers spread over two `crewql serve` replicas.

Every process is a real `crewql` command (`python -m backend.cli serve|worker|migrate`) with
`CREWQL_MODE=scaled`, auth off, logs to stderr at WARNING. Each configuration gets a fresh
database, migrated once by `crewql migrate` before anything starts. A worker counts as ready when
its bus connection (application_name `crewql-bus`) shows in `pg_stat_activity`.

Throughput: one API replica (`CREWQL_RUNNER_ENABLED=false`) and N workers
(`CREWQL_RUNNER_CONCURRENCY`, 8 by default). Through the replica, the bench creates a crew of
three tasks (llm `simulated/delay=0,chunk=10000`) and 1,000 executions (the throughput suite's
client: aliased mutations, several requests in flight), waits until none is QUEUED or RUNNING,
and checks every one is COMPLETED, ran exactly once (one EXECUTION_STARTED) and names a worker.
Rate = completed / (last `finishedAt` - first `createdAt`). Scaling = rate(N) / rate(1); the
target is rate(2) >= 1.6 x rate(1). CPU is measured per process over the run: the replica, each
worker, every PostgreSQL process (live ones, plus what exited children left in the postmaster's
cutime), the bench's own client, and the whole machine, so that the limiting resource can be named.

Fan-out: two replicas and one worker (concurrency 1, output flush 0.05 s). As in the fanout suite,
a blocker execution holds the worker's only slot while the watched one (2 tasks of
`simulated/delay=2,chunk=8`) waits QUEUED; two `bench.wsload` processes subscribe half of the
subscribers each, one process per replica; the blocker is force-cancelled through replica A and
the worker runs the watched execution. Checked: every subscriber got seq 1..lastSeq, gapless, in
order, ending EXECUTION_COMPLETED. Measured: commit (`createdAt`) to receipt, live events only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench import executions as ex
from bench.procs import REPO_ROOT, free_port, stop_process
from bench.procstat import CpuMeter, machine_busy
from bench.report import machine, now, write_json
from bench.seed import BenchError
from bench.session import Child, Session, crewql_env, say
from bench.throughput import _create_all, _read_all, _wait_finished
from bench.wsload import read_latencies

TARGET_SCALING = 1.6  # rate(2 workers) / rate(1 worker)
TARGET_P99_MS = 250.0
START_TIMEOUT_S = 45.0
BLOCKER_LLM = "simulated/delay=600"
FANOUT_LLM = "simulated/delay=2,chunk=8"
BUS_APPLICATION_NAME = "crewql-bus"


# ---------------------------------------------------------------------------- processes


@dataclass
class Crewql:
    """One `crewql serve|worker` process; its output goes to a log file in the working dir."""

    label: str
    command: str  # "serve" or "worker"
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.label}.log"

    def start(self) -> None:
        env = _child_env({**self.env, "CREWQL_HOST": "127.0.0.1", "CREWQL_PORT": str(self.port)})
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backend.cli", self.command],
                cwd=self.workdir,  # away from the repository's .env and logs/
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches only the bench, which stops it
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            content = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(content.splitlines()[-lines:])

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def _child_env(settings: dict[str, str]) -> dict[str, str]:
    """Only the CREWQL_* settings the bench chose: none leak in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWQL_")}
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def scaled_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = crewql_env(
        database_url,
        {
            "CREWQL_MODE": "scaled",
            "CREWQL_AUTH_ENABLED": "false",
            "CREWQL_LOG_TO_FILES": "false",
            "CREWQL_LOG_LEVEL": "WARNING",
            "CREWQL_MIGRATE_ON_START": "false",  # `crewql migrate` ran once before
            "CREWQL_SHUTDOWN_GRACE_SECONDS": "1",
            # 1 replica + 4 workers, each up to 2 x pool + 1 connections: well under 100.
            "CREWQL_DATABASE_POOL_SIZE": "8",
        },
    )
    env.update(extra or {})
    return env


def stop_all(processes: list[Crewql]) -> None:
    """SIGTERM to all at once, then wait for each (SIGKILL after its grace)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


async def _sql(database_url: str, statement: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(database_url, connect_args={"timeout": 10})
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement))
            return [tuple(row) for row in result.fetchall()]
    finally:
        await engine.dispose()


def sql(database_url: str, statement: str) -> list[tuple[Any, ...]]:
    return asyncio.run(_sql(database_url, statement))


class Cluster:
    """The processes of one configuration on one fresh database; stopped by `close()` (and by
    the session's cleanup, whatever happens)."""

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.name = name
        self.database_url = session.postgres_url()
        self.processes: list[Crewql] = []
        self._migrate()

    def _migrate(self) -> None:
        env = _child_env(scaled_env(self.database_url))
        done = subprocess.run(
            [sys.executable, "-m", "backend.cli", "migrate"],
            cwd=self.session.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=90,
            start_new_session=True,
        )
        if done.returncode:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise BenchError(f"crewql migrate exited with {done.returncode}:\n{output}")

    def start(self, label: str, command: str, extra: dict[str, str]) -> Crewql:
        process = Crewql(
            f"{self.name}-{label}",
            command,
            scaled_env(self.database_url, extra),
            self.session.workdir,
        )
        self.session.cleanup.callback(process.stop)
        self.processes.append(process)
        process.start()
        return process

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Every replica answers /readyz; every process has its bus connection listening."""
        deadline = time.monotonic() + timeout
        replicas = [p for p in self.processes if p.command == "serve"]
        pending = list(replicas)
        while pending:
            for process in self.processes:
                process.check_alive()
            for replica in list(pending):
                try:
                    reply = httpx.get(replica.url.replace("/graphql", "/readyz"), timeout=2.0)
                    if reply.status_code == 200:
                        pending.remove(replica)
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                raise BenchError(f"{pending[0].label} not ready in {timeout:.0f} s")
            if pending:
                time.sleep(0.2)
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            f"AND application_name = '{BUS_APPLICATION_NAME}'"
        )
        while int(sql(self.database_url, query)[0][0]) < len(self.processes):
            for process in self.processes:
                process.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: not every process listens on the bus in time")
            time.sleep(0.2)
        time.sleep(0.5)  # the runner starts right after the bus

    def close(self) -> None:
        stop_all(self.processes)


# ---------------------------------------------------------------------------- CPU


def _proc_stat(pid: int) -> list[str] | None:
    try:
        content = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return content.rpartition(")")[2].split()


def postgres_cpu_seconds() -> float | None:
    """CPU of every `postgres` process so far, plus what its exited backends left in the
    postmaster's children counters. None when no PostgreSQL process is visible (another host)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
        except OSError:
            continue
        if comm != "postgres" and not comm.startswith("postgres"):
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None:
            continue
        found = True
        total += int(fields[11]) + int(fields[12])
        parent = Path(f"/proc/{fields[1]}/comm")
        try:
            parent_is_postgres = parent.read_text().strip().startswith("postgres")
        except OSError:
            parent_is_postgres = False
        if not parent_is_postgres:  # the postmaster: its reaped children's CPU
            total += int(fields[13]) + int(fields[14])
    return total / ticks if found else None


def _machine_times() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values), values[3] + values[4]


@dataclass
class Meters:
    """CPU of the cluster's processes, PostgreSQL, the bench itself and the machine."""

    processes: list[Crewql]
    meters: list[CpuMeter] = field(default_factory=list)
    t0: float = 0.0
    wall_s: float = 0.0
    pg0: float | None = None
    pg_s: float | None = None
    self0: float = 0.0
    self_s: float = 0.0
    machine0: tuple[int, int] = (0, 0)
    machine_busy: float | None = None  # share of all cores busy over the interval

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.meters = [CpuMeter(p.pid) for p in self.processes]
        for meter in self.meters:
            meter.start(self.t0)
        self.pg0 = postgres_cpu_seconds()
        self.self0 = time.process_time()
        self.machine0 = _machine_times()

    def stop(self) -> None:
        t1 = time.monotonic()
        for meter in self.meters:
            meter.stop(t1)
        self.wall_s = t1 - self.t0
        pg1 = postgres_cpu_seconds()
        if self.pg0 is not None and pg1 is not None:
            self.pg_s = pg1 - self.pg0
        self.self_s = time.process_time() - self.self0
        total, idle = _machine_times()
        if total > self.machine0[0]:
            self.machine_busy = 1.0 - (idle - self.machine0[1]) / (total - self.machine0[0])

    def shares(self) -> dict[str, float | None]:
        """Cores used over the interval, by process label (1.0 = one core)."""
        wall = self.wall_s or 1.0
        result: dict[str, float | None] = {
            p.label.rpartition("-")[2]: m.share
            for p, m in zip(self.processes, self.meters, strict=True)
        }
        result["postgres"] = None if self.pg_s is None else self.pg_s / wall
        result["bench client"] = self.self_s / wall
        return result


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def limiting_resource(shares: dict[str, float | None], busy: float | None) -> str:
    cores = os.cpu_count() or 1
    used = {k: v for k, v in shares.items() if v is not None}
    groups = {
        "workers": sum(v for k, v in used.items() if k.startswith("worker")),
        "API replica(s)": sum(v for k, v in used.items() if k.startswith("api")),
        "PostgreSQL": used.get("postgres", 0.0),
        "bench client": used.get("bench client", 0.0),
    }
    ranked = ", ".join(f"{k} {v:.2f}" for k, v in sorted(groups.items(), key=lambda i: -i[1]))
    if busy is not None and busy >= 0.85:
        return f"CPU: the machine was {busy * 100:.0f}% busy ({cores} cores); cores used: {ranked}"
    top = max(used.items(), key=lambda i: i[1], default=("-", 0.0))
    if top[1] >= 0.85:
        return f"one process's CPU ({top[0]} at {top[1]:.2f} cores); cores used: {ranked}"
    return (
        f"not CPU-bound ({'-' if busy is None else f'{busy * 100:.0f}%'} busy): "
        f"waits (database round trips, polling); cores used: {ranked}"
    )


# ---------------------------------------------------------------------------- throughput


@dataclass(frozen=True)
class ThroughputRun:
    workers: int
    concurrency: int
    executions: int
    completed: int
    other: dict[str, int]
    window_s: float
    per_s: float
    create_s: float | None
    per_worker: list[int]  # executions each worker ran, most first
    cpu_cores: dict[str, float | None]  # by process, cores used over the run
    machine_busy_before: float | None
    machine_busy_during: float | None
    limiting: str
    drain: DrainRun | None
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Drive:
    created: int
    create_s: float | None
    finished: bool
    rows: list[dict[str, Any]]


async def _drive(args: argparse.Namespace, url: str, crew_id: str, seconds: float) -> Drive:
    limits = httpx.Limits(max_connections=args.create_requests + 2)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        created: list[dict[str, Any]] = []
        started = time.monotonic()
        create_s: float | None = None
        finished = False
        try:
            await asyncio.wait_for(_create_all(client, url, crew_id, args, created), seconds)
            create_s = time.monotonic() - started
            finished = await _wait_finished(client, url, started + seconds)
        except TimeoutError:
            pass
        rows = await _read_all(client, url)
    return Drive(len(created), create_s, finished, rows)


def throughput_run(session: Session, workers: int, timeout: float) -> ThroughputRun:
    args = session.args
    concurrency = args.worker_concurrency
    cluster = Cluster(session, f"tp{workers}w")
    try:
        api = cluster.start("api", "serve", {"CREWQL_RUNNER_ENABLED": "false"})
        for n in range(workers):
            cluster.start(
                f"worker{n + 1}", "worker", {"CREWQL_RUNNER_CONCURRENCY": str(concurrency)}
            )
        cluster.wait_ready()
        with httpx.Client(timeout=30.0) as client:
            crew_id = ex.create_crew(client, api.url, "scaled", args.throughput_llm, 3)
        busy_before = machine_busy()
        meters = Meters(cluster.processes)
        meters.start()
        drive = asyncio.run(_drive(args, api.url, crew_id, timeout))
        meters.stop()
        per_worker = [
            int(r[1])
            for r in sql(
                cluster.database_url,
                "SELECT worker_id, count(*) FROM executions GROUP BY worker_id ORDER BY 2 DESC",
            )
        ]
        unnamed = sql(
            cluster.database_url, "SELECT count(*) FROM executions WHERE worker_id IS NULL"
        )
        twice = sql(
            cluster.database_url,
            "SELECT count(*) FROM (SELECT execution_id FROM execution_events "
            "WHERE type = 'EXECUTION_STARTED' GROUP BY execution_id HAVING count(*) > 1) t",
        )
        drain = _drain(session, cluster, api, crew_id, workers, timeout) if args.drain else None
    finally:
        cluster.close()  # the next configuration gets the machine to itself
    problems: list[str] = [] if drain is None else [f"drain: {p}" for p in drain.problems]
    if drive.create_s is None:
        problems.append(f"only {drive.created} of {args.executions} created in {timeout:.0f} s")
    elif not drive.finished:
        problems.append(f"not all finished within {timeout:.0f} s")
    rows = drive.rows
    if len(rows) != args.executions:
        problems.append(f"{len(rows)} executions in the database, {args.executions} sent")
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    completed = statuses.pop("COMPLETED", 0)
    if statuses:
        problems.append(f"not COMPLETED: {statuses}")
    if int(unnamed[0][0]):
        problems.append(f"{unnamed[0][0]} executions name no worker")
    if int(twice[0][0]):
        problems.append(f"{twice[0][0]} executions started more than once")
    if len(per_worker) > workers:
        problems.append(f"executions name {len(per_worker)} workers, {workers} ran")
    created = [t for t in (ex.timestamp(r["createdAt"]) for r in rows) if t is not None]
    finished = [t for t in (ex.timestamp(r["finishedAt"]) for r in rows) if t is not None]
    window = max(finished) - min(created) if created and finished else 0.0
    shares = meters.shares()
    return ThroughputRun(
        workers=workers,
        concurrency=concurrency,
        executions=args.executions,
        completed=completed,
        other=statuses,
        window_s=window,
        per_s=completed / window if window > 0 else 0.0,
        create_s=drive.create_s,
        per_worker=per_worker,
        cpu_cores=shares,
        machine_busy_before=busy_before,
        machine_busy_during=meters.machine_busy,
        limiting=limiting_resource(shares, meters.machine_busy),
        drain=drain,
        problems=problems,
    )


@dataclass(frozen=True)
class DrainRun:
    """The runner alone: the queue filled while no worker ran, then the workers started."""

    completed: int
    window_s: float  # first startedAt .. last finishedAt
    per_s: float
    cpu_cores: dict[str, float | None]
    machine_busy: float | None
    limiting: str
    problems: list[str]


def _drain(
    session: Session, cluster: Cluster, api: Crewql, crew_id: str, workers: int, timeout: float
) -> DrainRun:
    args = session.args
    stop_all([p for p in cluster.processes if p.command == "worker"])
    cluster.processes = [api]

    async def create() -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = []
        limits = httpx.Limits(max_connections=args.create_requests + 2)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            await asyncio.wait_for(_create_all(client, api.url, crew_id, args, created), timeout)
        return created

    ids = {row["id"] for row in asyncio.run(create())}
    for n in range(workers):
        cluster.start(
            f"worker{n + 1}", "worker", {"CREWQL_RUNNER_CONCURRENCY": str(args.worker_concurrency)}
        )
    meters = Meters(cluster.processes)
    meters.start()

    async def finish() -> tuple[bool, list[dict[str, Any]]]:
        async with httpx.AsyncClient(timeout=60.0) as client:
            done = await _wait_finished(client, api.url, time.monotonic() + timeout)
            meters.stop()
            return done, await _read_all(client, api.url)

    finished, every = asyncio.run(finish())
    rows = [r for r in every if r["id"] in ids]
    problems = [] if finished else [f"not all finished within {timeout:.0f} s"]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    completed = statuses.pop("COMPLETED", 0)
    if statuses or len(rows) != args.executions:
        problems.append(f"{len(rows)} rows; not COMPLETED: {statuses}")
    begun = [t for t in (ex.timestamp(r["startedAt"]) for r in rows) if t is not None]
    ended = [t for t in (ex.timestamp(r["finishedAt"]) for r in rows) if t is not None]
    window = max(ended) - min(begun) if begun and ended else 0.0
    shares = meters.shares()
    return DrainRun(
        completed=completed,
        window_s=window,
        per_s=completed / window if window > 0 else 0.0,
        cpu_cores=shares,
        machine_busy=meters.machine_busy,
        limiting=limiting_resource(shares, meters.machine_busy),
        problems=problems,
    )


# ---------------------------------------------------------------------------- fan-out


@dataclass(frozen=True)
class FanoutRun:
    replicas: int
    subscribers: int
    per_replica: list[int]
    events: int  # per subscriber, seq 1..last
    deliveries: int  # live events received, all subscribers
    verified: int  # subscribers that got every event, gapless, in order, then `complete`
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_ms_by_replica: list[float]
    run_s: float
    connect_s: float
    cpu_cores: dict[str, float | None]
    machine_busy_during: float | None
    problems: list[str]

    @property
    def passed(self) -> bool:
        return (
            not self.problems and self.verified == self.subscribers and self.p99_ms < TARGET_P99_MS
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_p99_ms": TARGET_P99_MS, "passed": self.passed}


def _wait_status(client: httpx.Client, url: str, execution_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 20.0
    while (found := ex.execution(client, url, execution_id))["status"] != wanted:
        if time.monotonic() > deadline:
            raise BenchError(f"execution {execution_id} is {found['status']}, not {wanted}")
        time.sleep(0.1)


def fanout_run(session: Session, total: int) -> FanoutRun:
    split = [total // 2 + total % 2, total // 2]
    flush = {"CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": "0.05"}
    cluster = Cluster(session, f"fan{total}")
    try:
        a = cluster.start("apiA", "serve", {**flush, "CREWQL_RUNNER_ENABLED": "false"})
        b = cluster.start("apiB", "serve", {**flush, "CREWQL_RUNNER_ENABLED": "false"})
        cluster.start("worker1", "worker", {**flush, "CREWQL_RUNNER_CONCURRENCY": "1"})
        cluster.wait_ready()
        with httpx.Client(timeout=30.0) as client:
            crew = ex.create_crew(client, a.url, "fan-watched", FANOUT_LLM, 2)
            blocker_crew = ex.create_crew(client, a.url, "fan-blocker", BLOCKER_LLM, 1)
            blocker = ex.launch(client, a.url, blocker_crew)
            _wait_status(client, a.url, blocker["id"], "RUNNING")
            watched = ex.launch(client, b.url, crew)
            if watched["status"] != "QUEUED":
                raise BenchError(f"the watched execution is {watched['status']}, not QUEUED")
            loads: list[tuple[Child, Path]] = []
            for replica, count in zip((a, b), split, strict=True):
                out = session.workdir / f"{replica.label}-load.json"
                argv = [replica.ws_url, watched["id"], "--subscribers", str(count)]
                argv += ["--out", str(out), "--timeout", "45", "--connect-timeout", "60"]
                loads.append((session.spawn(f"{replica.label}-load", "bench.wsload", argv), out))
            connect_s = max(float(load.expect("READY", 75.0)[1]) for load, _ in loads)
            say(f"  {total} subscribers ready in {connect_s:.1f} s; releasing the execution")
            meters = Meters(cluster.processes)
            meters.start()
            ex.cancel(client, a.url, blocker["id"])
            for load, _ in loads:
                load.expect("ENDED", 60.0)
            meters.stop()
            for load, _ in loads:
                load.expect("DONE", 60.0)
            final = ex.execution(client, b.url, watched["id"])
    finally:
        cluster.close()
    problems: list[str] = []
    last_seq = int(final["lastSeq"])
    if final["status"] != "COMPLETED":
        problems.append(f"the watched execution ended {final['status']}: {final['error']}")
    all_ms: list[float] = []
    p99_by_replica: list[float] = []
    verified = 0
    per_replica: list[int] = []
    for _, out in loads:
        summary = json.loads(out.read_text(encoding="utf-8"))
        if summary["timed_out"]:
            problems.append(f"{out.stem}: not every subscription completed in time")
        per_replica.append(len(summary["per_subscriber"]))
        for s in summary["per_subscriber"]:
            ok = (
                s["failure"] is None
                and not s["errors"]
                and s["ordered"]
                and s["ended_by"] == "complete"
                and s["events"] == last_seq
                and s["last_seq"] == last_seq
                and s["last_type"] == "EXECUTION_COMPLETED"
                and s["terminal_events"] == 1
            )
            verified += ok
            if not ok and len(problems) < 5:
                problems.append(f"subscriber: {s}")
        seqs, latencies = read_latencies(out)
        mine = sorted(lat * 1000 for seq, lat in zip(seqs, latencies, strict=True) if seq >= 2)
        p99_by_replica.append(ex.percentile(mine, 99))
        all_ms.extend(mine)
    all_ms.sort()
    if sum(per_replica) != total:
        problems.append(f"{sum(per_replica)} subscribers reported, {total} started")
    started_at, finished_at = ex.timestamp(final["startedAt"]), ex.timestamp(final["finishedAt"])
    return FanoutRun(
        replicas=2,
        subscribers=sum(per_replica),
        per_replica=per_replica,
        events=last_seq,
        deliveries=len(all_ms),
        verified=verified,
        p50_ms=ex.percentile(all_ms, 50),
        p99_ms=ex.percentile(all_ms, 99),
        max_ms=all_ms[-1] if all_ms else 0.0,
        p99_ms_by_replica=p99_by_replica,
        run_s=finished_at - started_at if started_at and finished_at else 0.0,
        connect_s=connect_s,
        cpu_cores=meters.shares(),
        machine_busy_during=meters.machine_busy,
        problems=problems,
    )


# ---------------------------------------------------------------------------- the suite


@dataclass
class ScaledReport:
    runs: list[ThroughputRun]
    fanouts: list[FanoutRun]
    failures: dict[str, str]
    skipped: str | None = None

    def rate(self, workers: int, drain: bool = False) -> float | None:
        for run in self.runs:
            if run.workers == workers and not run.problems:
                if not drain:
                    return run.per_s
                return None if run.drain is None else run.drain.per_s
        return None

    def scaling(self, workers: int, drain: bool = False) -> float | None:
        one, many = self.rate(1, drain), self.rate(workers, drain)
        return many / one if one and many is not None else None

    @property
    def passed(self) -> bool:
        factor = self.scaling(2)
        return (
            self.skipped is None
            and not self.failures
            and all(not r.problems for r in self.runs)
            and factor is not None
            and factor >= TARGET_SCALING
            and bool(self.fanouts)
            and all(f.passed for f in self.fanouts)
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scaled (also uses --executions, --create-batch, …)")
    group.add_argument(
        "--scaled-workers", default="1,2,4", help="worker process counts to run, comma-separated"
    )
    group.add_argument(
        "--worker-concurrency", type=int, default=8, help="CREWQL_RUNNER_CONCURRENCY per worker"
    )
    group.add_argument(
        "--scaled-subscribers",
        default="100,500",
        help="fan-out runs: subscribers of each (half on each of 2 replicas), comma-separated",
    )
    group.add_argument(
        "--no-drain",
        dest="drain",
        action="store_false",
        help="skip the second phase of each run (queue filled first, then the workers started)",
    )
    group.add_argument(
        "--scaled-budget",
        type=float,
        default=150.0,
        help="seconds for all scaled throughput runs together (each at most --run-timeout)",
    )


def worker_counts(text_value: str) -> list[int]:
    try:
        values = [int(part) for part in text_value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--scaled-workers: not integers: {text_value!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("--scaled-workers: give positive integers, e.g. 1,2,4")
    return values


def subscriber_counts(text_value: str) -> list[int]:
    try:
        values = [int(part) for part in text_value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--scaled-subscribers: not integers: {text_value!r}"
        ) from None
    if any(v < 2 for v in values):
        raise argparse.ArgumentTypeError("--scaled-subscribers: at least 2 each (or none: '')")
    return values


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        worker_counts(args.scaled_workers)
        subscriber_counts(args.scaled_subscribers)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.worker_concurrency < 1:
        parser.error("--worker-concurrency must be at least 1")


def throughput_table(runs: list[ThroughputRun]) -> str:
    """A row per run and phase: "e2e" (created while the workers run) and "drain" (the queue
    filled first; window from the first start)."""
    labels = sorted({k for r in runs for k in r.cpu_cores}, key=_label_order)
    head: tuple[str, ...] = ("workers", "phase", "completed", "window s", "exec/s", "create s")
    head = (*head, "per worker")
    head = (*head, *labels, "machine")
    lines: list[tuple[str, ...]] = []
    for r in runs:
        lines.append(
            (
                str(r.workers),
                "e2e",
                f"{r.completed:,}/{r.executions:,}",
                f"{r.window_s:.2f}",
                f"{r.per_s:.1f}",
                "-" if r.create_s is None else f"{r.create_s:.2f}",
                "/".join(str(n) for n in r.per_worker),
                *(_cores(r.cpu_cores[k]) if k in r.cpu_cores else "" for k in labels),
                _pct(r.machine_busy_during),
            )
        )
        d = r.drain
        if d is not None:
            lines.append(
                (
                    str(r.workers),
                    "drain",
                    f"{d.completed:,}/{r.executions:,}",
                    f"{d.window_s:.2f}",
                    f"{d.per_s:.1f}",
                    "",
                    "",
                    *(_cores(d.cpu_cores[k]) if k in d.cpu_cores else "" for k in labels),
                    _pct(d.machine_busy),
                )
            )
    return _format(head, lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _label_order(label: str) -> tuple[int, str]:
    order = ("api", "worker", "postgres", "bench")
    return next((i for i, p in enumerate(order) if label.startswith(p)), 9), label


def _format(head: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def summary_lines(report: ScaledReport) -> list[str]:
    lines = []
    for workers in sorted({r.workers for r in report.runs}):
        if workers == 1:
            continue
        factor = report.scaling(workers)
        shown = "-" if factor is None else f"{factor:.2f}x"
        drained = report.scaling(workers, drain=True)
        drain = "" if drained is None else f"; drain phase {drained:.2f}x"
        if workers == 2:
            verdict = "PASS" if factor is not None and factor >= TARGET_SCALING else "FAIL"
            target = f"(target >= {TARGET_SCALING:.1f}x{drain})"
        else:
            verdict, target = "    ", f"(no target{drain})"
        lines.append(f"{verdict}  scaling {workers} workers / 1 worker   {shown:>7}  {target}")
    for run in report.runs:
        lines.append(f"      {run.workers} worker(s), e2e: limiting resource: {run.limiting}")
        if run.drain is not None:
            lines.append(f"      {run.workers} worker(s), drain: {run.drain.limiting}")
        for problem in run.problems:
            lines.append(f"      problem ({run.workers} workers): {problem[:300]}")
    for f in report.fanouts:
        lines.append(
            f"{'PASS' if f.passed else 'FAIL'}  fan-out {f.subscribers:>4} subs / 2 replicas p99"
            f" {f.p99_ms:9.1f} ms  (target < {TARGET_P99_MS:.0f} ms; p50 {f.p50_ms:.1f} ms; "
            f"{f.verified:,}/{f.subscribers:,} subscribers got all {f.events} events gapless)"
        )
        cores = ", ".join(f"{k} {_cores(v)}" for k, v in f.cpu_cores.items())
        lines.append(
            f"      per replica {'/'.join(map(str, f.per_replica))} subscribers, p99 "
            + "/".join(f"{v:.1f}" for v in f.p99_ms_by_replica)
            + f" ms; ran {f.run_s:.1f} s; cores: {cores}"
        )
        for problem in f.problems[:3]:
            lines.append(f"      problem (fan-out): {problem[:300]}")
    for name, error in report.failures.items():
        lines.append(f"FAIL  {name} did not complete: {error[:300]}")
    return lines


def run(session: Session) -> ScaledReport:
    args = session.args
    started_at = now()
    started = time.monotonic()
    if not session.postgres_available():
        note = session.notes[-1] if session.notes else "PostgreSQL unavailable"
        say(f"scaled: skipped, it needs PostgreSQL ({note})")
        return ScaledReport([], [], {}, skipped=note)
    counts = worker_counts(args.scaled_workers)
    report = ScaledReport([], [], {})
    budget_ends = started + args.scaled_budget
    for index, workers in enumerate(counts):
        share = (budget_ends - time.monotonic()) / (len(counts) - index) - 8.0
        timeout = max(15.0, min(args.run_timeout, share))
        say(
            f"scaled throughput: {args.executions} executions, 1 API replica, {workers} worker(s) "
            f"x concurrency {args.worker_concurrency} (at most {timeout:.0f} s)"
        )
        try:
            result = throughput_run(session, workers, timeout)
        except (BenchError, RuntimeError, OSError) as exc:
            report.failures[f"throughput/{workers}w"] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {report.failures[f'throughput/{workers}w']}")
            continue
        say(f"  {result.completed:,} completed in {result.window_s:.2f} s: {result.per_s:.1f}/s")
        report.runs.append(result)
    for total in subscriber_counts(args.scaled_subscribers):
        say(f"scaled fan-out: {total} subscribers over 2 replicas, 1 worker")
        try:
            report.fanouts.append(fanout_run(session, total))
        except (BenchError, RuntimeError, OSError) as exc:
            report.failures[f"fan-out/{total}"] = f"{type(exc).__name__}: {exc}"
            say(f"  failed: {report.failures[f'fan-out/{total}']}")
    say("")
    say(
        f"scaled-mode throughput: {args.executions} executions of a 3-task crew "
        f"({args.throughput_llm}) per run; CPU in cores over the run (1.00 = one core)"
    )
    say(throughput_table(report.runs))
    say("")
    for line in summary_lines(report):
        say(line)
    for note in session.notes:
        say(f"note: {note}")
    path = write_json(
        {
            "suite": "scaled",
            "started_at": started_at.isoformat(),
            "elapsed_s": round(time.monotonic() - started, 1),
            "machine": machine(),
            "settings": {
                "executions": args.executions,
                "llm": args.throughput_llm,
                "tasks": 3,
                "workers": counts,
                "worker_concurrency": args.worker_concurrency,
                "create_batch": args.create_batch,
                "create_requests": args.create_requests,
                "subscribers": subscriber_counts(args.scaled_subscribers),
                "fanout_llm": FANOUT_LLM,
            },
            "throughput": [r.as_dict() for r in report.runs],
            "scaling_2w": report.scaling(2),
            "scaling_4w": report.scaling(4),
            "target_scaling": TARGET_SCALING,
            "scaling_2w_drain": report.scaling(2, drain=True),
            "scaling_4w_drain": report.scaling(4, drain=True),
            "fanout": [f.as_dict() for f in report.fanouts],
            "failures": report.failures,
            "passed": report.passed,
            "notes": session.notes,
        },
        started_at,
        prefix="scaled",
    )
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    say(f"results: {shown}")
    return report
