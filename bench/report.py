"""The table, the two target ratios, and the JSON file under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import LoadResult
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
)


@dataclass(frozen=True)
class Row:
    server: str  # "crewql" or "bare"
    database: str  # "sqlite", "postgres" or "memory"
    query: str  # "a", "b", "hello", "a-shape", "b-shape"
    label: str
    result: LoadResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "database": self.database,
            "query": self.query,
            "label": self.label,
            **self.result.as_dict(),
        }


@dataclass(frozen=True)
class Ratio:
    name: str
    database: str
    ours: float
    reference: float

    @property
    def value(self) -> float:
        return self.ours / self.reference if self.reference else 0.0

    @property
    def passed(self) -> bool:
        return self.value >= 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "ours_rps": self.ours,
            "reference_rps": self.reference,
            "ratio": self.value,
            "target": 1.0,
            "passed": self.passed,
        }


def ratios(rows: list[Row]) -> list[Ratio]:
    def rate(server: str, database: str, query: str) -> float | None:
        for row in rows:
            if (row.server, row.database, row.query) == (server, database, query):
                return row.result.requests_per_s
        return None

    found = []
    hello = rate("bare", "memory", "hello")
    bare_b = rate("bare", "memory", "b-shape")
    for database in ("sqlite", "postgres"):
        a = rate("crewql", database, "a")
        b = rate("crewql", database, "b")
        if a is not None and hello is not None:
            found.append(Ratio("(a) crew(id) / bare { hello }", database, a, hello))
        if b is not None and bare_b is not None:
            found.append(Ratio("(b) crews(100) / bare in-memory (b)", database, b, bare_b))
    return found


def table(rows: list[Row]) -> str:
    head = ("server", "database", "query", "req/s", "p50 ms", "p99 ms", "errors", "bytes")
    lines = [
        (
            r.server,
            r.database,
            r.label,
            f"{r.result.requests_per_s:,.1f}",
            f"{r.result.p50_ms:.2f}",
            f"{r.result.p99_ms:.2f}",
            str(r.result.errors),
            f"{r.result.bytes_per_response:,.0f}",
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    right = {3, 4, 5, 6, 7}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def ratio_lines(found: list[Ratio]) -> str:
    return "\n".join(
        f"{'PASS' if r.passed else 'FAIL'}  {r.name:<38} {r.database:<9} "
        f"{r.value:5.2f}  ({r.ours:,.1f} / {r.reference:,.1f} req/s, target >= 1.00)"
        for r in found
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
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
    `<prefix>-latest.json` (the execution suites)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{prefix}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(payload, indent=2, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    latest = "latest.json" if prefix == "bench" else f"{prefix}-latest.json"
    (RESULTS_DIR / latest).write_text(text, encoding="utf-8")
    return path


def now() -> datetime:
    return datetime.now(UTC)
