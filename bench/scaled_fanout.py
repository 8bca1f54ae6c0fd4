"""Scaled mode, fan-out: subscribers spread over two `crewql serve` replicas, one worker.

Two replicas and one worker (concurrency 1, output flush 0.05 s). As in the fanout suite, a
blocker execution holds the worker's only slot while the watched one (2 tasks of
`simulated/delay=2,chunk=8`) waits QUEUED; two `bench.wsload` processes subscribe half of the
subscribers each, one process per replica; the blocker is force-cancelled through replica A and
the worker runs the watched execution. Checked: every subscriber got seq 1..lastSeq, gapless, in
order, ending EXECUTION_COMPLETED. Measured: commit (`createdAt`) to receipt, live events only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import executions as ex
from bench.cluster import Cluster
from bench.output import say
from bench.procstat import Phase
from bench.seed import BenchError
from bench.session import Child, Session
from bench.wsload import read_loads

TARGET_P99_MS = 250.0
BLOCKER_LLM = "simulated/delay=600"
FANOUT_LLM = "simulated/delay=2,chunk=8"


@dataclass(frozen=True)
class FanoutRun:
    replicas: int
    subscribers: int
    per_replica: list[int]
    events: int  # per subscriber, seq 1..last
    deliveries: int  # live events received, all subscribers
    verified: int  # subscribers that got every event, gapless, in order, then `complete`
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_ms_by_replica: list[float]
    run_s: float
    connect_s: float
    cpu_cores: dict[str, float]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return (
            not self.problems and self.verified == self.subscribers and self.p99_ms < TARGET_P99_MS
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_p99_ms": TARGET_P99_MS, "passed": self.passed}

    def lines(self) -> list[str]:
        verdict = "PASS" if self.passed else "FAIL"
        cores = ", ".join(f"{k} {v:.2f}" for k, v in self.cpu_cores.items())
        found = [
            f"{verdict}  fan-out {self.subscribers:>4} subs / 2 replicas p99 {self.p99_ms:9.1f} ms"
            f"  (target < {TARGET_P99_MS:.0f} ms; p50 {self.p50_ms:.1f} ms; {self.verified:,}/"
            f"{self.subscribers:,} subscribers got all {self.events} events gapless)",
            f"      per replica {'/'.join(map(str, self.per_replica))} subscribers, p99 "
            + "/".join(f"{v:.1f}" for v in self.p99_ms_by_replica)
            + f" ms; ran {self.run_s:.1f} s; cores: {cores}",
        ]
        return found + [f"      problem (fan-out): {p[:300]}" for p in self.problems[:3]]


def fanout_run(session: Session, total: int) -> FanoutRun:
    split = [total // 2 + total % 2, total // 2]
    flush = {"CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": "0.05"}
    cluster = Cluster(session, f"fan{total}")
    try:
        a = cluster.start("apiA", "serve", {**flush, "CREWQL_RUNNER_ENABLED": "false"})
        b = cluster.start("apiB", "serve", {**flush, "CREWQL_RUNNER_ENABLED": "false"})
        cluster.start("worker1", "worker", {**flush, "CREWQL_RUNNER_CONCURRENCY": "1"})
        cluster.wait_ready()
        with httpx.Client(timeout=30.0) as client:
            crew = ex.create_crew(client, a.url, "fan-watched", FANOUT_LLM, 2)
            blocker_crew = ex.create_crew(client, a.url, "fan-blocker", BLOCKER_LLM, 1)
            blocker = ex.launch(client, a.url, blocker_crew)
            ex.wait_status(client, a.url, blocker["id"], "RUNNING")
            watched = ex.launch(client, b.url, crew)
            if watched["status"] != "QUEUED":
                raise BenchError(f"the watched execution is {watched['status']}, not QUEUED")
            loads: list[tuple[Child, Path]] = []
            for replica, count in zip((a, b), split, strict=True):
                out = session.workdir / f"{replica.label}-load.json"
                argv = [replica.ws_url, watched["id"], "--subscribers", str(count)]
                argv += ["--out", str(out), "--timeout", "45", "--connect-timeout", "60"]
                loads.append((session.spawn(f"{replica.label}-load", "bench.wsload", argv), out))
            connect_s = max(float(load.expect("READY", 75.0)[1]) for load, _ in loads)
            say(f"  {total} subscribers ready in {connect_s:.1f} s; releasing the execution")
            phase = Phase(cluster.pids(), cluster.database)
            phase.start()
            ex.cancel(client, a.url, blocker["id"])
            for load, _ in loads:
                load.expect("ENDED", 60.0)
            phase.stop()
            for load, _ in loads:
                load.expect("DONE", 60.0)
            final = ex.execution(client, b.url, watched["id"])
    finally:
        cluster.close()
    last_seq = int(final["lastSeq"])
    problems: list[str] = []
    if final["status"] != "COMPLETED":
        problems.append(f"the watched execution ended {final['status']}: {final['error']}")
    seen = [read_loads([out], last_seq) for _, out in loads]
    all_ms = sorted(v for one in seen for v in one.latencies_ms())
    per_replica = [one.subscribers for one in seen]
    for one in seen:
        problems += one.problems
    if sum(per_replica) != total:
        problems.append(f"{sum(per_replica)} subscribers reported, {total} started")
    started_at, finished_at = ex.timestamp(final["startedAt"]), ex.timestamp(final["finishedAt"])
    return FanoutRun(
        replicas=2,
        subscribers=sum(per_replica),
        per_replica=per_replica,
        events=last_seq,
        deliveries=len(all_ms),
        verified=sum(one.verified for one in seen),
        p50_ms=ex.percentile(all_ms, 50),
        p99_ms=ex.percentile(all_ms, 99),
        max_ms=all_ms[-1] if all_ms else 0.0,
        p99_ms_by_replica=[ex.percentile(one.latencies_ms(), 99) for one in seen],
        run_s=finished_at - started_at if started_at and finished_at else 0.0,
        connect_s=connect_s,
        cpu_cores=phase.cores(),
        problems=problems,
    )
