"""The fanout suite's figures: what the load processes and the server's meters say about one
run (`Measured.result`), as a `FanoutResult`, a table and PASS/FAIL lines."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import executions as ex
from bench.output import num, pct, table
from bench.procstat import Phase
from bench.wsload import read_loads

# Issue #13: p99 < 100 ms at 1,000 subscribers, < 250 ms at 5,000 (over several load processes).
TARGET_P99_MS = 100.0
TARGET_P99_MS_MANY = 250.0
CONNECT_TIMEOUT_S = 60.0
BLOCKER_LLM = "simulated/delay=600"


@dataclass(frozen=True)
class FanoutResult:
    database: str
    subscribers: int
    events: int  # per subscriber, history included (seq 1..last)
    live_events: int  # per subscriber, measured
    deliveries: int  # live events received, all subscribers
    verified: int  # subscribers that got every event in order and then `complete`
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    worst_per_event_median_ms: float  # per event, the last subscriber's latency; its median
    slowest_events: list[dict[str, Any]]  # the events with the highest median latency
    run_s: float  # EXECUTION_STARTED .. EXECUTION_COMPLETED, server clock
    deliveries_per_s: float
    connect_s: float
    server_cpu: float | None  # share of one core over the live phase
    loop_cpu: float | None  # the same, of the event-loop thread alone
    load_cpu: float | None
    server_connections_before: int  # client connections the server holds
    server_connections_subscribed: int
    server_connections_after: int
    server_peak_rss_mb: float | None
    machine_busy: float | None  # share of all cores busy just before the release (others' work)
    others_cores: float | None  # CPU other processes used during the live phase, in cores
    load_processes: int
    deflate: bool
    problems: list[str]
    # CREWQL_SUBSCRIPTION_SHARING: off is the reference (each subscriber executes and encodes)
    sharing: bool = True
    server_cpu_us_per_delivery: float | None = None  # server CPU over the live phase / deliveries

    @property
    def target_p99_ms(self) -> float:
        return TARGET_P99_MS if self.subscribers <= 1000 else TARGET_P99_MS_MANY

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and self.verified == self.subscribers
            and self.p99_ms < self.target_p99_ms
        )

    @property
    def label(self) -> str:
        return f"{self.database}{'' if self.sharing else ' (sharing off)'}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_p99_ms": self.target_p99_ms, "passed": self.passed}


@dataclass
class Measured:
    """What one run left behind: the load files, the execution, the CPU, the server's sockets
    (before, subscribed, after closing)."""

    database: str
    sharing: bool
    outs: list[Path]
    final: dict[str, Any]
    connect_s: float
    phase: Phase
    sockets: list[int]
    busy: float | None

    def result(self, args: argparse.Namespace, rss: float | None) -> FanoutResult:
        final, server = self.final, self.phase.meters["server"]
        problems: list[str] = []
        last_seq = int(final["lastSeq"])
        if final["status"] != "COMPLETED":
            problems.append(f"the watched execution ended {final['status']}: {final['error']}")
        seen = read_loads(self.outs, last_seq)
        problems += seen.problems
        if args.deflate and any(
            r["deflate_negotiated"] != len(r["per_subscriber"]) for r in seen.summaries
        ):
            problems.append("permessage-deflate not negotiated on every socket")
        worst = {seq: max(values) * 1000 for seq, values in seen.by_seq.items()}
        medians = {s: sorted(v)[len(v) // 2] * 1000 for s, v in seen.by_seq.items()}
        slowest = [
            {
                "seq": seq,
                "type": seen.types[seq - 1] if seq <= len(seen.types) else None,
                "median_ms": round(medians[seq], 1),
                "max_ms": round(worst[seq], 1),
            }
            for seq in sorted(medians, key=lambda q: -medians[q])[:5]
        ]
        ms = seen.latencies_ms()
        started_at, finished_at = (
            ex.timestamp(final["startedAt"]),
            ex.timestamp(final["finishedAt"]),
        )
        run_s = (finished_at - started_at) if started_at and finished_at else 0.0
        before, subscribed, after = self.sockets
        if after > before:
            problems.append(f"the server still holds {after - before} more connections than before")
        if seen.subscribers != args.subscribers:
            problems.append(f"{seen.subscribers} subscribers reported, {args.subscribers} started")
        load_shares = [m.share for k, m in self.phase.meters.items() if k != "server" and m.share]
        return FanoutResult(
            database=self.database,
            subscribers=seen.subscribers,
            events=last_seq,
            live_events=last_seq - 1,
            deliveries=len(ms),
            verified=seen.verified,
            p50_ms=ex.percentile(ms, 50),
            p90_ms=ex.percentile(ms, 90),
            p99_ms=ex.percentile(ms, 99),
            p999_ms=ex.percentile(ms, 99.9),
            max_ms=ms[-1] if ms else 0.0,
            worst_per_event_median_ms=ex.percentile(sorted(worst.values()), 50),
            slowest_events=slowest,
            run_s=run_s,
            deliveries_per_s=len(ms) / run_s if run_s else 0.0,
            connect_s=self.connect_s,
            server_cpu=server.share,
            loop_cpu=server.main_share,
            load_cpu=sum(load_shares) if load_shares else None,
            server_connections_before=before,
            server_connections_subscribed=subscribed,
            server_connections_after=after,
            server_peak_rss_mb=rss,
            machine_busy=self.busy,
            others_cores=self.phase.others(),
            load_processes=len(self.outs),
            deflate=bool(args.deflate),
            problems=problems,
            sharing=self.sharing,
            server_cpu_us_per_delivery=(
                server.cpu_s / len(ms) * 1e6 if server.cpu_s is not None and ms else None
            ),
        )


def results_table(results: list[FanoutResult]) -> str:
    head: tuple[str, ...] = (
        "database",
        "subs",
        "events",
        "deliveries",
        "verified",
        "p50 ms",
        "p90 ms",
        "p99 ms",
    )
    head += ("max ms", "run s", "deliv/s", "server CPU", "CPU us/deliv", "loop CPU", "load CPU")
    head += ("busy before", "others")
    rows = [
        (
            r.label,
            f"{r.subscribers:,}",
            f"{r.live_events:,}",
            f"{r.deliveries:,}",
            f"{r.verified:,}",
            f"{r.p50_ms:.1f}",
            f"{r.p90_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.max_ms:.1f}",
            f"{r.run_s:.1f}",
            f"{r.deliveries_per_s:,.0f}",
            pct(r.server_cpu),
            num(r.server_cpu_us_per_delivery, 0),
            pct(r.loop_cpu),
            pct(r.load_cpu),
            pct(r.machine_busy),
            num(r.others_cores, 2),
        )
        for r in results
    ]
    return table(head, rows)


def verdicts(results: list[FanoutResult]) -> str:
    lines = []
    for r in results:
        verdict = ("PASS" if r.passed else "FAIL") if r.sharing else "ref "
        lines.append(
            f"{verdict}  fan-out p99 commit->receipt   {r.label:<9} "
            f"{r.p99_ms:8.1f} ms  (target < {r.target_p99_ms:.0f} ms at {r.subscribers:,}; "
            f"{r.verified:,}/{r.subscribers:,} subscribers got all {r.events} events in order)"
        )
        if r.server_cpu_us_per_delivery is not None:
            lines.append(
                f"      {r.label}: server CPU {r.server_cpu_us_per_delivery:.0f} us per delivered "
                "message"
            )
        sockets = (
            f"client connections held by the server: {r.server_connections_before} before, "
            f"{r.server_connections_subscribed} subscribed, {r.server_connections_after} after "
            "closing"
        )
        lines.append(f"      {r.label}: {sockets}; connect {r.connect_s:.1f} s")
        lines.append(
            f"      {r.label}: the execution ran {r.run_s:.1f} s "
            f"({r.live_events / r.run_s if r.run_s else 0:.1f} events/s); "
            f"per-event worst subscriber, median {r.worst_per_event_median_ms:.0f} ms"
        )
        slowest = ", ".join(
            f"#{e['seq']} {e['type']} {e['median_ms']:.0f}/{e['max_ms']:.0f}"
            for e in r.slowest_events[:3]
        )
        lines.append(f"      {r.label}: slowest events (median/max ms): {slowest}")
        for problem in r.problems:
            lines.append(f"      problem: {problem[:300]}")
    return "\n".join(lines)
