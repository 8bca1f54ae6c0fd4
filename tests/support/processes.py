"""Real crewql processes for end-to-end tests of the scaled mode.

`crewql serve`, `crewql worker` and `crewql migrate` run as OS processes, exactly as an operator
starts them, with their settings in the environment. Each process writes its log (stderr and
stdout) to a file of its own, which a test reads to wait for a line ("ready", "listening again")
and which is printed when a test fails. Every wait here is bounded, and `ScaledCluster` kills
whatever it started when it exits, however the test ends.

The environment of a child is the parent's without any `CREWQL_*` variable, plus what the test
gives, and its working directory is a temporary one: a developer's `.env` or shell never leaks in.

Also here: which local TCP ports a process has open (from /proc), to tell which PostgreSQL
backend in `pg_stat_activity` belongs to which crewql process, so a test can cut the event bus's
listening connection of one replica and not the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from backend.events.postgres import APPLICATION_NAME as BUS_APPLICATION_NAME
from backend.events.postgres import asyncpg_dsn
from tests.support.databases import create_postgres_database, drop_postgres_database

START_TIMEOUT = 30.0  # seconds for a process to become ready on a busy two-core machine
STOP_TIMEOUT = 10.0

# Runs the `crewql` command with `socket.gethostname()` answering a name of the test's choosing:
# a worker so started looks, to the others, like one on another machine (its worker id starts
# with that name, and the others cannot check its process id). The rest is the real CLI.
_HOSTNAME_SHIM = (
    "import socket, sys\n"
    "name = sys.argv.pop(1)\n"
    "socket.gethostname = lambda: name\n"
    "from backend.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)


def crewql_command(*args: str, hostname: str | None = None) -> list[str]:
    """The argv that runs `crewql <args>` from the interpreter running the tests."""
    if hostname is not None:
        return [sys.executable, "-c", _HOSTNAME_SHIM, hostname, *args]
    script = Path(sys.executable).with_name("crewql")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "backend.cli", *args]


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWQL_")}
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessFailed(AssertionError):
    """A process exited, or did not do what a test waited for in time; carries its log."""


@dataclass
class CrewqlProcess:
    """One running crewql command and the file its output goes to."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no HTTP"
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def fail(self, what: str) -> ProcessFailed:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return ProcessFailed(f"{self.name} ({state}): {what}\n--- log tail ---\n{self.tail()}")

    async def wait_for_log(
        self, pattern: str, *, within: float, count: int = 1, since: int = 0
    ) -> list[re.Match[str]]:
        """Waits until the log (from character `since` on) matches `pattern` `count` times."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while True:
            found = list(regex.finditer(self.log()[since:]))
            if len(found) >= count:
                return found
            if not self.alive():
                # One last read: the line may have been written just before the exit.
                found = list(regex.finditer(self.log()[since:]))
                if len(found) >= count:
                    return found
                raise self.fail(f"exited before logging {pattern!r}")
            if time.monotonic() > deadline:
                raise self.fail(f"no {pattern!r} (x{count}) in the log within {within:g}s")
            await asyncio.sleep(0.05)

    def log_size(self) -> int:
        return len(self.log())

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    async def wait_exit(self, within: float) -> int:
        deadline = time.monotonic() + within
        while self.popen.poll() is None:
            if time.monotonic() > deadline:
                raise self.fail(f"still running {within:g}s later")
            await asyncio.sleep(0.05)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL, and reap it (idempotent)."""
        if self.popen.poll() is None:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a kernel that ignores SIGKILL
            self.popen.wait(timeout=STOP_TIMEOUT)


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    directory: Path,
    *,
    port: int | None = None,
) -> CrewqlProcess:
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv),
            env=child_environment(env),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C in the terminal reaches pytest, not the children
        )
    return CrewqlProcess(name, list(argv), popen, log_path, port)


def run_crewql(
    args: Sequence[str], env: Mapping[str, str], directory: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs a crewql command to its end; stdout and stderr are kept apart."""
    return subprocess.run(
        crewql_command(*args),
        env=child_environment(env),
        cwd=directory,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def wait_ready(process: CrewqlProcess, within: float = START_TIMEOUT) -> None:
    """Until `GET /readyz` answers 200 (the database is reachable and migrated)."""
    deadline = time.monotonic() + within
    last = "no answer"
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        while True:
            if not process.alive():
                raise process.fail("exited before it was ready")
            try:
                response = await http.get(process.url + "/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise process.fail(f"/readyz not 200 within {within:g}s (last: {last})")
            await asyncio.sleep(0.1)


# ----------------------------------------------------------------------------- /proc and pg


def local_tcp_ports(pid: int) -> set[int]:
    """Local ports of the TCP sockets process `pid` holds (Linux: /proc/<pid>/fd and net/tcp)."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            columns = line.split()
            if len(columns) > 9 and columns[9] in inodes:
                ports.add(int(columns[1].rsplit(":", 1)[1], 16))
    return ports


async def bus_backends(database_url: str) -> dict[int, int]:
    """The event bus's listening connections to this database: {client port: backend pid}."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT pid, client_port FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            BUS_APPLICATION_NAME,
        )
    finally:
        await connection.close()
    return {int(row["client_port"]): int(row["pid"]) for row in rows}


async def terminate_bus_connections(
    database_url: str, owners: Sequence[CrewqlProcess] | None = None
) -> list[int]:
    """`pg_terminate_backend` on the bus's listening connection of each of `owners` (of every
    process using this database when None); returns the backend pids it terminated.

    Only this test's database is touched: other people's crewql processes on the same server
    keep their connections.
    """
    backends = await bus_backends(database_url)
    if owners is None:
        targets = sorted(backends.values())
    else:
        targets = []
        for owner in owners:
            mine = [pid for port, pid in backends.items() if port in local_tcp_ports(owner.pid)]
            if len(mine) != 1:
                raise owner.fail(f"expected one bus connection, found {mine} in {backends}")
            targets += mine
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for pid in targets:
            await connection.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()
    return targets


# ----------------------------------------------------------------------------- the cluster


@dataclass
class ScaledCluster:
    """A fresh PostgreSQL database, migrated by `crewql migrate`, and the processes using it."""

    database_url: str
    directory: Path
    env: dict[str, str]
    replicas: list[CrewqlProcess] = field(default_factory=list)
    workers: list[CrewqlProcess] = field(default_factory=list)
    worker_ids: dict[str, str] = field(default_factory=dict)  # process name -> worker id

    @property
    def processes(self) -> list[CrewqlProcess]:
        return [*self.replicas, *self.workers]

    def start_replica(self, **env: str) -> CrewqlProcess:
        port = free_port()
        name = f"api-{len(self.replicas) + 1}"
        process = start_process(
            name,
            crewql_command("serve", "--port", str(port)),
            {**self.env, "CREWQL_RUNNER_ENABLED": "false", **env},
            self.directory,
            port=port,
        )
        self.replicas.append(process)
        return process

    def start_worker(self, *, hostname: str | None = None, **env: str) -> CrewqlProcess:
        name = f"worker-{len(self.workers) + 1}"
        process = start_process(
            name, crewql_command("worker", hostname=hostname), {**self.env, **env}, self.directory
        )
        self.workers.append(process)
        return process

    async def ready(self, within: float = START_TIMEOUT) -> None:
        """Every replica answers /readyz 200 and every worker logged that it is ready."""

        async def worker_ready(worker: CrewqlProcess) -> None:
            found = await worker.wait_for_log(r"crewql worker (\S+) ready", within=within)
            self.worker_ids[worker.name] = found[0].group(1)

        await asyncio.gather(
            *(wait_ready(r, within) for r in self.replicas),
            *(worker_ready(w) for w in self.workers if w.name not in self.worker_ids),
        )

    def worker_id(self, worker: CrewqlProcess) -> str:
        return self.worker_ids[worker.name]

    def worker_named(self, worker_id: str) -> CrewqlProcess:
        for worker in self.workers:
            if self.worker_ids.get(worker.name) == worker_id:
                return worker
        raise KeyError(worker_id)

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"===== {p.name} (pid {p.pid}, exit {p.popen.returncode}) =====\n{p.tail(60)}"
            for p in self.processes
        )


@asynccontextmanager
async def scaled_cluster(
    server_url: str,
    directory: Path,
    env: Mapping[str, str],
) -> AsyncIterator[ScaledCluster]:
    """A new database on `server_url`, migrated with `crewql migrate`; the processes a test
    starts in it are SIGKILLed on exit and the database is dropped. Their logs stay in
    `directory` (`ScaledCluster.logs()` has the tail of each)."""
    database_url = await create_postgres_database(server_url)
    cluster = ScaledCluster(database_url, directory, {**env, "CREWQL_DATABASE_URL": database_url})
    try:
        migrated = await asyncio.to_thread(run_crewql, ["migrate"], cluster.env, directory)
        assert migrated.returncode == 0, migrated.stderr
        yield cluster
    finally:
        cluster.kill_all()
        await drop_postgres_database(server_url, database_url)
