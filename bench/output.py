"""What every suite prints and keeps: aligned tables, the machine and package versions, and the
JSON file under bench/results/ (`<suite>-<UTC time>.json`, copied to `<suite>-latest.json`)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
PACKAGES = (
    "strawberry-graphql",
    "graphql-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "orjson",
    "pydantic",
    "pydantic-ai-slim",
)


def say(message: str) -> None:
    print(message, flush=True)


def now() -> datetime:
    return datetime.now(UTC)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Columns padded to their widest cell; the first `left` columns flush left."""
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _cpu_model() -> str:
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise OSError(done.stderr)
    return done.stdout.strip()


def _git_revision() -> str:
    try:
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _git_revision(),
        "packages": versions,
    }


def write_json(payload: dict[str, Any], started: datetime, prefix: str = "bench") -> Path:
    """`<prefix>-<UTC time>.json`, also copied to `latest.json` (crews: prefix "bench") or
    `<prefix>-latest.json` (the other suites)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{prefix}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(payload, indent=2, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    latest = "latest.json" if prefix == "bench" else f"{prefix}-latest.json"
    (RESULTS_DIR / latest).write_text(text, encoding="utf-8")
    return path


def finish(
    suite: str, started_at: datetime, elapsed_s: float, notes: list[str], body: dict[str, Any]
) -> Path:
    """The end of every suite: its notes, then the JSON file (suite, start, machine, `body`)."""
    for note in notes:
        say(f"note: {note}")
    payload = {
        "suite": suite,
        "started_at": started_at.isoformat(),
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine(),
        **body,
        "notes": notes,
    }
    path = write_json(payload, started_at, "bench" if suite == "crews" else suite)
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    say(f"results: {shown}")
    return path
