"""Scaled mode's processes: real `crewql serve|worker|migrate` commands (`python -m
backend.cli …`) with `CREWQL_MODE=scaled`, auth off, logs to stderr at WARNING, on one fresh
PostgreSQL database per configuration, migrated once by `crewql migrate` before anything starts.
A process counts as ready when every replica answers /readyz and every process's bus connection
(application_name `crewql-bus`) shows in `pg_stat_activity`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.procs import Process, child_env
from bench.seed import BenchError
from bench.session import Session, crewql_env

START_TIMEOUT_S = 45.0
BUS_APPLICATION_NAME = "crewql-bus"


@dataclass
class Crewql(Process):
    """One `crewql serve|worker` process."""

    command: str = "serve"  # or "worker"

    def start(self) -> None:
        settings = {**self.env, "CREWQL_HOST": "127.0.0.1", "CREWQL_PORT": str(self.port)}
        self.spawn([sys.executable, "-m", "backend.cli", self.command], settings)


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
        env = child_env(scaled_env(self.database_url))
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
            f"{self.name}-{label}", scaled_env(self.database_url, extra), self.session.workdir
        )
        process.command = command
        self.session.cleanup.callback(process.stop)
        self.processes.append(process)
        process.start()
        return process

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Every replica answers /readyz; every process has its bus connection listening."""
        deadline = time.monotonic() + timeout
        for replica in (p for p in self.processes if p.command == "serve"):
            replica.wait_answering("/readyz", max(1.0, deadline - time.monotonic()))
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

    @property
    def database(self) -> str:
        name = make_url(self.database_url).database
        assert name is not None
        return name

    def pids(self) -> dict[str, int]:
        """Each process's pid by its label without the configuration's prefix."""
        return {p.label.removeprefix(f"{self.name}-"): p.pid for p in self.processes}

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return sql(self.database_url, statement)
