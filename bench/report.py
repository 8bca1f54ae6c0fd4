"""The crews suite's table and its two target ratios."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.load import LoadResult
from bench.output import table


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
    ours_cpu_ms: float | None = None
    reference_cpu_ms: float | None = None

    @property
    def value(self) -> float:
        return self.ours / self.reference if self.reference else 0.0

    @property
    def cpu_value(self) -> float | None:
        """The same comparison by the servers' CPU per request (reference / ours): what the
        ratio would be with a core each, steadier than req/s when other work loads the machine."""
        if not self.ours_cpu_ms or self.reference_cpu_ms is None:
            return None
        return self.reference_cpu_ms / self.ours_cpu_ms

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
            "ours_cpu_ms": self.ours_cpu_ms,
            "reference_cpu_ms": self.reference_cpu_ms,
            "cpu_ratio": self.cpu_value,
            "target": 1.0,
            "passed": self.passed,
        }


def ratios(rows: list[Row]) -> list[Ratio]:
    def result(server: str, database: str, query: str) -> LoadResult | None:
        for row in rows:
            if (row.server, row.database, row.query) == (server, database, query):
                return row.result
        return None

    def ratio(name: str, database: str, ours: LoadResult, reference: LoadResult) -> Ratio:
        return Ratio(
            name,
            database,
            ours.requests_per_s,
            reference.requests_per_s,
            ours.server_cpu_ms,
            reference.server_cpu_ms,
        )

    found = []
    hello = result("bare", "memory", "hello")
    bare_b = result("bare", "memory", "b-shape")
    for database in ("sqlite", "postgres"):
        a = result("crewql", database, "a")
        b = result("crewql", database, "b")
        if a is not None and hello is not None:
            found.append(ratio("(a) crew(id) / bare { hello }", database, a, hello))
        if b is not None and bare_b is not None:
            found.append(ratio("(b) crews(100) / bare in-memory (b)", database, b, bare_b))
    return found


def rows_table(rows: list[Row]) -> str:
    head = (
        "server",
        "database",
        "query",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/req",
        "errors",
        "bytes",
    )
    return table(
        head,
        [
            (
                r.server,
                r.database,
                r.label,
                f"{r.result.requests_per_s:,.1f}",
                f"{r.result.p50_ms:.2f}",
                f"{r.result.p99_ms:.2f}",
                "-" if r.result.server_cpu_ms is None else f"{r.result.server_cpu_ms:.3f}",
                str(r.result.errors),
                f"{r.result.bytes_per_response:,.0f}",
            )
            for r in rows
        ],
        left=3,
    )


def ratio_lines(found: list[Ratio]) -> str:
    return "\n".join(
        f"{'PASS' if r.passed else 'FAIL'}  {r.name:<38} {r.database:<9} "
        f"{r.value:5.2f}  ({r.ours:,.1f} / {r.reference:,.1f} req/s, target >= 1.00)"
        + ("" if r.cpu_value is None else f"; by CPU per request {r.cpu_value:.2f}")
        for r in found
    )
