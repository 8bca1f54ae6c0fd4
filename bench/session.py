"""What every suite shares: a temporary directory, the servers and databases it started, and the
guarantee that all of them are gone when it ends, whether it succeeded, failed or was interrupted.

A suite is a function of a `Session`; `run_guarded` runs it with SIGINT and SIGTERM turned into
KeyboardInterrupt, and unwinds the session's ExitStack (in reverse order: load processes, then
servers, then databases, then the directory) with further interrupts ignored.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TypeVar

from sqlalchemy.engine import make_url

from bench import pg
from bench.output import say
from bench.procs import REPO_ROOT, Server, stop_process
from bench.seed import BenchError

T = TypeVar("T")


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def ignore_interrupts() -> None:
    """Once cleanup has begun, a second Ctrl-C must not leave a server or a database behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def drop_quietly(server_url: str, database_url: str) -> None:
    try:
        pg.drop_database(server_url, database_url)
    except Exception as exc:  # cleanup goes on; the user learns what is left behind
        say(f"could not drop the temporary database {database_url}: {exc}")


def crewql_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The settings every crewql server of the bench runs with, plus a suite's own.

    The bench measures what one process can serve, so the per-key guards are off: no API key
    (allowed on a loopback address; every request acts as the local admin), no request rate
    limit, no cap on open subscriptions or running executions per key. With the defaults, one
    key gets 20 requests a second, 100 subscriptions and 10 running executions.
    """
    env = {
        "CREWQL_DATABASE_URL": database_url,
        "CREWQL_LOG_TO_FILES": "false",
        "CREWQL_LOG_LEVEL": "WARNING",
        "CREWQL_MIGRATE_ON_START": "true",
        "CREWQL_AUTH_ENABLED": "false",
        "CREWQL_RATE_LIMIT_PER_SECOND": "0",
        "CREWQL_MAX_SUBSCRIPTIONS_PER_KEY": "0",
        "CREWQL_MAX_RUNNING_EXECUTIONS_PER_KEY": "0",
    }
    env.update(extra or {})
    return env


class Child:
    """A helper process that reports progress as lines on stdout; stderr goes to a file."""

    def __init__(self, label: str, module: str, argv: Sequence[str], stderr_path: Path) -> None:
        self.label = label
        self.argv = [sys.executable, "-m", module, *argv]
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def start(self) -> None:
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C reaches only the bench, which stops it
            )

    def read_line(self, timeout: float) -> str:
        """The next line of stdout; BenchError on timeout or when the process ends first."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.label}: no progress within {timeout:g} s{self._stderr()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait(timeout=5)
                raise BenchError(f"{self.label} exited with {self.proc.returncode}{self._stderr()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace").strip()

    def expect(self, word: str, timeout: float) -> list[str]:
        """Waits for a line starting with `word`; returns the words after it."""
        line = self.read_line(timeout)
        parts = line.split()
        if not parts or parts[0] != word:
            raise BenchError(f"{self.label}: expected {word}, got {line!r}{self._stderr()}")
        return parts[1:]

    def _stderr(self) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""
        return f":\n{text[-2000:]}" if text else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=3.0)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


class Session:
    """One suite's working directory and everything it started, undone in reverse on exit."""

    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: ExitStack) -> None:
        self.args = args
        self.workdir = workdir
        self.cleanup = cleanup
        self.notes: list[str] = []
        self._sqlite_files = 0
        self._postgres_problem: str | None = None
        self._postgres_checked = False

    def start(self, label: str, app: str, env: dict[str, str] | None = None) -> Server:
        server = Server(label=label, app=app, env=env or {}, workdir=self.workdir)
        self.cleanup.callback(server.stop)
        say(f"starting {label} on port {server.port}")
        server.start()
        return server

    def spawn(self, label: str, module: str, argv: Sequence[str]) -> Child:
        """`python -m module argv…` in its own session, stopped when the session ends."""
        child = Child(label, module, argv, self.workdir / f"{label}.err")
        self.cleanup.callback(child.stop)
        child.start()
        return child

    # ------------------------------------------------------------------ databases

    def sqlite_url(self) -> str:
        """A new SQLite file in the working directory (removed with it)."""
        self._sqlite_files += 1
        return f"sqlite+aiosqlite:///{self.workdir / f'bench-{self._sqlite_files}.db'}"

    def postgres_available(self) -> bool:
        """Whether PostgreSQL takes part; the reason it does not is noted once."""
        if self.args.no_postgres:
            if not self._postgres_checked:
                self.notes.append("PostgreSQL skipped (--no-postgres)")
                self._postgres_checked = True
            return False
        if not self._postgres_checked:
            self._postgres_checked = True
            self._postgres_problem = pg.unreachable_reason(self.args.postgres_url)
            if self._postgres_problem is not None:
                note = (
                    f"PostgreSQL skipped: {self.args.postgres_url} unreachable "
                    f"({self._postgres_problem}); set BENCH_POSTGRES_URL or --postgres-url"
                )
                say(note)
                self.notes.append(note)
        return self._postgres_problem is None

    def postgres_url(self) -> str:
        """A fresh `crewql_bench_<random>` database, dropped when the session ends."""
        server_url = self.args.postgres_url
        url = pg.new_database_url(server_url)
        # Registered before the create (an interrupt in between leaves nothing behind) and before
        # the server's stop, so it runs after that (ExitStack unwinds LIFO).
        self.cleanup.callback(drop_quietly, server_url, url)
        pg.create_database(server_url, url)
        return url

    def database_url(self, database: str) -> str:
        return self.sqlite_url() if database == "sqlite" else self.postgres_url()

    def databases(self) -> list[str]:
        return ["sqlite", "postgres"] if self.postgres_available() else ["sqlite"]


def run_guarded(
    name: str, args: argparse.Namespace, body: Callable[[Session], T]
) -> tuple[int, T | None]:
    """Runs one suite; returns (exit code, its result). Cleanup happens before this returns."""
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix=f"crewql-bench-{name}-"))
    code, result = 1, None
    try:
        with ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
            try:
                result = body(Session(args, workdir, cleanup))
                code = 0
            except KeyboardInterrupt:
                code = 130
            except (BenchError, RuntimeError, OSError) as exc:
                say(f"bench {name} failed: {type(exc).__name__}: {exc}")
            finally:
                # Before the stack unwinds: a second Ctrl-C must not interrupt the cleanup.
                ignore_interrupts()
                if code == 130:
                    say("\ninterrupted: stopping servers and dropping temporary databases")
                else:
                    say("stopping servers")
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return code, result


def postgres_name(database_url: str) -> str | None:
    """The PostgreSQL database a URL names (None for SQLite): whose server processes the
    execution suites count as part of the measured system."""
    url = make_url(database_url)
    return url.database if url.get_backend_name() == "postgresql" else None
