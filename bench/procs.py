"""Server processes: start one on a free port, wait until it answers, stop it for sure."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE = b'{"query":"{ __typename }"}'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its CREWQL_* settings (none leak in from the shell),
    plus `settings`, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWQL_")}
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def stop_process(proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only this process (it leads its own session)."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


@dataclass
class Process:
    """A server-like process of the bench on a free port: its own session (a Ctrl-C reaches
    only the bench, which then stops it in order), output to a log file in the working
    directory (away from the repository's .env and logs/)."""

    label: str
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
    def log_path(self) -> Path:
        return self.workdir / f"{self.label}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=child_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_answering(self, path: str, timeout: float) -> None:
        """Until GET `path` answers 200 (RuntimeError when the process exits or time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                url = self.url.replace("/graphql", path)
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not ready in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            raise RuntimeError(f"{self.label} exited with {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM without waiting (several processes stop at once, then `stop` waits)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@dataclass
class Server(Process):
    """One `python -m bench.serve APP` process (APP: crewql or bare), ready once it answers."""

    app: str = "crewql"

    def start(self, timeout: float = 60.0) -> None:
        self.spawn(
            [sys.executable, "-m", "bench.serve", self.app, "--port", str(self.port)], self.env
        )
        deadline = time.monotonic() + timeout
        headers = {"content-type": "application/json"}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                reply = httpx.post(self.url, content=PROBE, headers=headers, timeout=2.0)
                if reply.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.label} did not answer within {timeout:.0f} s:\n{self.log_tail()}"
        )
