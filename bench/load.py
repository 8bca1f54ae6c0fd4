"""Drives one server with one request body: wrk when installed, else a Python fallback.

wrk gets the POST body through a Lua script whose `done` hook prints the exact counts and the
latency percentiles on one line, so nothing depends on wrk's human-readable units.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT, stop_process

MARKER = "BENCH_RESULT"

LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{marker} %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class LoadSettings:
    duration: float
    warmup: float
    connections: int
    threads: int = 1


@dataclass(frozen=True)
class LoadResult:
    tool: str  # "wrk" or "python-fallback"
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors and non-2xx answers
    bytes_per_response: float
    # The server's CPU (all threads) over the measured run per answered request; the bench's
    # figure that holds up on a loaded machine, where req/s swings with what else runs.
    server_cpu_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _run(argv: list[str], timeout: float) -> str:
    # Its own session, like the servers: on Ctrl-C the bench stops it (see procs.stop_process).
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop_process(proc, grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return out.decode(errors="replace")


def parse_wrk(output: str) -> LoadResult:
    line = next((ln for ln in output.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"no {MARKER} line in wrk output:\n{output}")
    fields = [float(x) for x in line.split()[1:]]
    duration_us, requests, size, connect, read, write, status, timeout = fields[:8]
    p50, p90, p99, worst = fields[8:]
    # Cross-check with wrk's own summary line when present.
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    rate = requests / (duration_us / 1e6)
    if match and abs(float(match.group(1)) - rate) > 0.01 * rate + 1:
        raise RuntimeError(f"wrk rates disagree: {match.group(1)} vs {rate:.1f}")
    return LoadResult(
        tool="wrk",
        requests=int(requests),
        duration_s=duration_us / 1e6,
        requests_per_s=rate,
        p50_ms=p50 / 1000,
        p90_ms=p90 / 1000,
        p99_ms=p99 / 1000,
        max_ms=worst / 1000,
        errors=int(connect + read + write + status + timeout),
        bytes_per_response=size / requests if requests else 0.0,
    )


def _wrk(url: str, script: Path, settings: LoadSettings, seconds: float) -> str:
    wrk = wrk_path()
    assert wrk is not None
    argv = [
        wrk,
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    return _run(argv, timeout=seconds + 30)


def _python(url: str, body_file: Path, settings: LoadSettings, seconds: float) -> str:
    argv = [
        sys.executable,
        "-m",
        "bench.pyload",
        url,
        str(body_file),
        "--duration",
        str(seconds),
        "--connections",
        str(settings.connections),
    ]
    return _run(argv, timeout=seconds + 30)


def measure(
    url: str, body: dict[str, Any], settings: LoadSettings, workdir: Path, tool: str
) -> LoadResult:
    """A warm-up run (discarded), then the measured run, with the same tool and settings."""
    payload = json.dumps(body, separators=(",", ":"))
    if "]==]" in payload:
        raise ValueError("request body cannot be quoted for Lua")
    name = f"body-{abs(hash(payload)):x}"
    if tool == "wrk":
        script = workdir / f"{name}.lua"
        script.write_text(LUA_TEMPLATE.format(body=payload, marker=MARKER), encoding="utf-8")
        if settings.warmup > 0:
            _wrk(url, script, settings, settings.warmup)
        return parse_wrk(_wrk(url, script, settings, settings.duration))
    body_file = workdir / f"{name}.json"
    body_file.write_text(payload, encoding="utf-8")
    if settings.warmup > 0:
        _python(url, body_file, settings, settings.warmup)
    data = json.loads(_python(url, body_file, settings, settings.duration).strip().splitlines()[-1])
    return LoadResult(**data)
