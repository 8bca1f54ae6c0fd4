"""The figures of the performance issue (#13), each with PASS/FAIL against its target, printed at
the end of `python -m bench` from what the suites that ran measured (no measurement of its own).

A figure whose suite did not run, or which no suite measures yet, is printed as `n/a` with the
reason: it is not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.fanout_result import FanoutResult
    from bench.scaled import ScaledReport
    from bench.throughput import ThroughputResult

FANOUT_P99_MS = {1000: 100.0, 5000: 250.0}
CPU_MS_PER_EXECUTION = 5.0
EXECUTIONS_PER_S = 150.0
COST_SPREAD = 0.15  # total CPU per execution at 2 and 4 workers within ±15 % of 1


@dataclass
class Reports:
    fanout: list[FanoutResult] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    scaled: ScaledReport | None = None


def _line(verdict: str | None, what: str, value: str, target: str) -> str:
    shown = "n/a " if verdict is None else verdict
    return f"{shown}  {what:<52} {value:>14}  ({target})"


def _fanout_lines(results: list[FanoutResult]) -> list[str]:
    lines = []
    for subscribers, target in FANOUT_P99_MS.items():
        shared = [r for r in results if r.sharing and r.subscribers == subscribers]
        if not shared:
            why = f"not run: python -m bench fanout --subscribers {subscribers}"
            lines.append(_line(None, f"fan-out p99 at {subscribers:,}", "-", why))
        for r in shared:
            ok = r.passed
            lines.append(
                _line(
                    "PASS" if ok else "FAIL",
                    f"fan-out p99 at {subscribers:,}, {r.database}",
                    f"{r.p99_ms:.0f} ms",
                    f"< {target:.0f} ms; {r.verified:,}/{r.subscribers:,} gapless",
                )
            )
            if r.server_cpu_us_per_delivery is not None:
                lines.append(
                    f"      server CPU per delivered message {r.server_cpu_us_per_delivery:.0f} us"
                )
    return lines


def _throughput_lines(results: list[ThroughputResult]) -> list[str]:
    if not results:
        return [_line(None, "executions: CPU ms and exec/s", "-", "not run: bench throughput")]
    lines = []
    for database in sorted({r.database for r in results}):
        mine = [r for r in results if r.database == database and r.completed]
        if not mine:
            lines.append(_line("FAIL", f"executions on {database}", "-", "none completed"))
            continue
        cut = "" if any(not r.problems for r in mine) else "; run cut short, see above"
        cheapest = min(
            (r.cpu_ms_per_execution for r in mine if r.cpu_ms_per_execution is not None),
            default=None,
        )
        fastest = max(r.per_s for r in mine)
        if cheapest is not None:
            lines.append(
                _line(
                    "PASS" if cheapest <= CPU_MS_PER_EXECUTION and not cut else "FAIL",
                    f"server CPU per execution, {database}",
                    f"{cheapest:.1f} ms",
                    f"<= {CPU_MS_PER_EXECUTION:g} ms{cut}",
                )
            )
        lines.append(
            _line(
                "PASS" if fastest >= EXECUTIONS_PER_S and not cut else "FAIL",
                f"executions a second on one process, {database}",
                f"{fastest:.1f}/s",
                f">= {EXECUTIONS_PER_S:g}/s{cut}",
            )
        )
    return lines


def scaled_passed(report: ScaledReport) -> bool:
    """Every cost within the spread of 1 worker's, none ran twice, every run and fan-out clean."""
    lines = _scaled_lines(report)
    return (
        not report.failures
        and bool(report.runs)
        and all(not r.problems for r in report.runs)
        and all(f.passed for f in report.fanouts)
        and not any(line.startswith(("FAIL", "n/a")) for line in lines)
    )


def _scaled_lines(report: ScaledReport | None) -> list[str]:
    if report is None or report.skipped is not None:
        why = "not run: bench scaled" if report is None else f"skipped: {report.skipped}"
        return [_line(None, "cost per execution at 1, 2, 4 workers", "-", why)]
    costs = {r.workers: r.ms_per_execution("total") for r in report.runs if r.completed}
    one = costs.get(1)
    lines = []
    for workers, cost in sorted(costs.items()):
        if workers == 1 or one is None:
            what = f"total CPU per execution, {workers} worker(s)"
            lines.append(_line("    ", what, f"{cost:.1f} ms", "API + workers + PostgreSQL"))
            continue
        ratio = cost / one
        lines.append(
            _line(
                "PASS" if abs(ratio - 1) <= COST_SPREAD else "FAIL",
                f"total CPU per execution, {workers} workers / 1",
                f"{ratio:.2f}x",
                f"within ±{COST_SPREAD * 100:.0f} % ({cost:.1f} ms vs {one:.1f} ms)",
            )
        )
    if one is None:
        lines.append(_line("FAIL", "total CPU per execution, 1 worker", "-", "no run"))
    twice = sum(r.twice for r in report.runs)
    ran = sum(r.completed for r in report.runs)
    lines.append(
        _line(
            "PASS" if twice == 0 and report.runs else "FAIL",
            "executions run twice (event log)",
            str(twice),
            f"0 of {ran:,}",
        )
    )
    for r in report.runs:
        offered = f"{r.offered_per_s:g}/s offered" if r.offered_per_s else "no pacing"
        lines.append(
            _line(
                "    ",
                f"claim latency p99, {r.workers} worker(s) (QUEUED -> claimed)",
                f"{r.claim_ms['p99']:.0f} ms",
                f"quoted, no target; p50 {r.claim_ms['p50']:.0f} ms, {offered}",
            )
        )
    return lines


def summary(reports: Reports) -> str:
    lines = ["issue #13 figures (PASS/FAIL against its targets; n/a: not measured in this run)"]
    lines += _fanout_lines(reports.fanout)
    lines += _throughput_lines(reports.throughput)
    lines += _scaled_lines(reports.scaled)
    return "\n".join(lines)
