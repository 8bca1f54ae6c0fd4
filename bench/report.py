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


def rows_table(rows: list[Row]) -> str:
    head = ("server", "database", "query", "req/s", "p50 ms", "p99 ms", "errors", "bytes")
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
        for r in found
    )
