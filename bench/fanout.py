"""Fan-out: a thousand websocket subscribers watching one execution, on one server process.

Per database, a fresh server runs with `CREWQL_RUNNER_CONCURRENCY=1` and
`CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS=0.05`. The bench creates a crew whose agent uses
`simulated/delay=2,chunk=8` (a stream of TASK_OUTPUT events, about 20 a second, for 2 s a task)
and, so that the watched execution can exist before it runs, first launches a "blocker" execution
(`simulated/delay=600`) that holds the runner's only slot. The watched execution then waits in
QUEUED while the load process (`bench/wsload.py`, a separate process) subscribes N websockets to it
with `after: 0`; each receives the stored EXECUTION_QUEUED event, which proves its live
subscription is registered. Then the blocker is cancelled (force), the runner claims the watched
execution, and every event from EXECUTION_STARTED on is live.

Checked: every subscriber received every event, seq 1..lastSeq with no gap, no duplicate, in order,
the last one EXECUTION_COMPLETED, then `complete`; after the close handshakes the server holds no
more sockets than before. Measured: latency from commit (`createdAt`) to receipt, per event per
subscriber, over the live events; the server's and the load's CPU over the live phase.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench import executions as ex
from bench.procs import Server
from bench.procstat import (
    CpuMeter,
    MachineMeter,
    connections_on_port,
    machine_busy,
    peak_rss_mb,
)
from bench.profile import Profiler
from bench.report import machine, now, write_json
from bench.seed import BenchError
from bench.session import Child, Session, crewql_env, postgres_name, say
from bench.wsload import read_latencies

# Issue #13: p99 < 100 ms at 1,000 subscribers, < 250 ms at 5,000 (over several load processes).
TARGET_P99_MS = 100.0
TARGET_P99_MS_MANY = 250.0
MANY_SUBSCRIBERS = 5000
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fanout")
    group.add_argument("--subscribers", type=int, default=1000, help="websockets (fanout)")
    group.add_argument(
        "--fanout-llm", default="simulated/delay=2,chunk=8", help="the watched crew's llm"
    )
    group.add_argument("--fanout-tasks", type=int, default=2, help="tasks of the watched crew")
    group.add_argument(
        "--flush-interval", type=float, default=0.05, help="CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS"
    )
    group.add_argument(
        "--load-processes", type=int, default=1, help="processes the subscribers are split over"
    )
    group.add_argument(
        "--deflate", action="store_true", help="subscribers offer permessage-deflate"
    )
    group.add_argument(
        "--live-timeout", type=float, default=45.0, help="seconds allowed for the live phase"
    )
    group.add_argument(
        "--sharing",
        choices=("on", "off", "both"),
        default="on",
        help="CREWQL_SUBSCRIPTION_SHARING of the fanout server; both: off (the reference) "
        "then on, per database, in one run",
    )


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _wait_status(
    client: httpx.Client, url: str, execution_id: str, wanted: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = ex.execution(client, url, execution_id)
        if found["status"] == wanted:
            return found
        if time.monotonic() > deadline:
            raise BenchError(f"execution {execution_id} is {found['status']}, not {wanted}")
        time.sleep(0.1)


def _connections_back_to(port: int, baseline: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = connections_on_port(port)
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        count = connections_on_port(port)
    return count


class Fanout:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.args = session.args
        self._server_cpu_s: float | None = None

    def run_one(self, database: str, sharing: bool = True) -> FanoutResult:
        args = self.args
        database_url = self.session.database_url(database)
        env = crewql_env(
            database_url,
            {
                "CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": f"{args.flush_interval:g}",
                "CREWQL_RUNNER_CONCURRENCY": "1",
                "CREWQL_SUBSCRIPTION_SHARING": "true" if sharing else "false",
            },
        )
        label = f"crewql-{database}-fanout{'' if sharing else '-unshared'}"
        server = self.session.start(label, "crewql", env)
        try:
            result = self._measure(database, server, postgres_name(database_url))
            per = (
                server_cpu_s / result.deliveries * 1e6
                if (server_cpu_s := self._server_cpu_s) is not None and result.deliveries
                else None
            )
            return replace(result, sharing=sharing, server_cpu_us_per_delivery=per)
        finally:
            server.stop()  # the next run gets the machine to itself

    def _measure(self, database: str, server: Server, pg_name: str | None) -> FanoutResult:
        args = self.args
        assert server.pid is not None
        with httpx.Client(timeout=30.0) as client:
            url = server.url
            crew = ex.create_crew(client, url, "fanout-watched", args.fanout_llm, args.fanout_tasks)
            blocker_crew = ex.create_crew(client, url, "fanout-blocker", BLOCKER_LLM, 1)
            blocker = ex.launch(client, url, blocker_crew)
            _wait_status(client, url, blocker["id"], "RUNNING", 15.0)
            watched = ex.launch(client, url, crew)
            if watched["status"] != "QUEUED":
                raise BenchError(f"the watched execution is {watched['status']}, not QUEUED")
            sockets_before = connections_on_port(server.port)

            loads = self._start_loads(server, watched["id"])
            connect_s = 0.0
            for load in loads:
                words = load.expect("READY", CONNECT_TIMEOUT_S + 10.0)
                connect_s = max(connect_s, float(words[1]))
            sockets_subscribed = connections_on_port(server.port)
            busy = machine_busy()
            say(
                f"  {args.subscribers} subscribers ready in {connect_s:.1f} s "
                f"({len(loads)} load process(es)); releasing the execution"
            )
            profiler = Profiler(args.py_spy, server.label, args.py_spy_native)
            self.session.cleanup.callback(profiler.close)
            profiler.start(server.pid)
            server_cpu = CpuMeter(server.pid)
            load_cpu = [CpuMeter(load.proc.pid) for load in loads if load.proc is not None]
            started = time.monotonic()
            server_cpu.start(started)
            machine_meter = MachineMeter(pg_name)
            machine_meter.start(started)
            for meter in load_cpu:
                meter.start(started)
            ex.cancel(client, url, blocker["id"])
            for load in loads:
                load.expect("ENDED", args.live_timeout + 15.0)
            ended = time.monotonic()
            server_cpu.stop(ended)
            machine_meter.stop(ended)
            for meter in load_cpu:
                meter.stop(ended)
            profiler.stop()
            for load in loads:
                load.expect("DONE", 60.0)
            final = ex.execution(client, url, watched["id"])
        sockets_after = _connections_back_to(server.port, sockets_before)
        rss = peak_rss_mb(server.pid)
        self._server_cpu_s = server_cpu.cpu_s
        ours = (server_cpu.cpu_s or 0.0) + sum(m.cpu_s or 0.0 for m in load_cpu)
        others = machine_meter.others(ours)
        return self._result(
            database,
            loads,
            final,
            connect_s,
            server_cpu,
            load_cpu,
            (sockets_before, sockets_subscribed, sockets_after),
            rss,
            busy,
            others,
        )

    def _start_loads(self, server: Server, execution_id: str) -> list[Child]:
        args = self.args
        ws_url = server.url.replace("http://", "ws://", 1)
        loads = []
        for i, count in enumerate(_split(args.subscribers, args.load_processes)):
            out = self.session.workdir / f"{server.label}-load-{i}.json"
            argv = [
                ws_url,
                execution_id,
                "--subscribers",
                str(count),
                "--out",
                str(out),
                "--timeout",
                str(args.live_timeout),
                "--connect-timeout",
                str(CONNECT_TIMEOUT_S),
            ]
            if args.deflate:
                argv.append("--deflate")
            loads.append(self.session.spawn(f"{server.label}-load-{i}", "bench.wsload", argv))
        return loads

    def _result(
        self,
        database: str,
        loads: list[Child],
        final: dict[str, Any],
        connect_s: float,
        server_cpu: CpuMeter,
        load_cpu: list[CpuMeter],
        sockets: tuple[int, int, int],
        rss: float | None,
        busy: float | None,
        others: float | None,
    ) -> FanoutResult:
        args = self.args
        problems: list[str] = []
        last_seq = int(final["lastSeq"])
        if final["status"] != "COMPLETED":
            problems.append(f"the watched execution ended {final['status']}: {final['error']}")
        latencies: list[float] = []
        worst: dict[int, float] = {}
        by_seq: dict[int, list[float]] = {}
        types: list[str] = []
        verified = 0
        subscribers = 0
        for i, load in enumerate(loads):
            out = self.session.workdir / f"{load.label}.json"
            summary = json.loads(out.read_text(encoding="utf-8"))
            types = types or summary["types"]
            if summary["timed_out"]:
                problems.append(f"load {i}: not every subscription completed in time")
            if args.deflate and summary["deflate_negotiated"] != len(summary["per_subscriber"]):
                problems.append(f"load {i}: permessage-deflate not negotiated on every socket")
            if summary["not_closed"]:
                problems.append(f"load {i}: {summary['not_closed']} sockets not closed in time")
            for s in summary["per_subscriber"]:
                subscribers += 1
                ok = (
                    s["failure"] is None
                    and not s["errors"]
                    and s["ordered"]
                    and s["ended_by"] == "complete"
                    and s["events"] == last_seq
                    and s["last_seq"] == last_seq
                    and s["last_type"] == "EXECUTION_COMPLETED"
                    and s["terminal_events"] == 1
                )
                verified += ok
                if not ok and len(problems) < 5:
                    problems.append(f"subscriber: {s}")
            seqs, lats = read_latencies(out)
            for seq, latency in zip(seqs, lats, strict=True):
                if seq >= 2:  # seq 1 (EXECUTION_QUEUED) was history, not live
                    latencies.append(latency)
                    by_seq.setdefault(seq, []).append(latency)
                    if latency > worst.get(seq, -1.0):
                        worst[seq] = latency
        latencies.sort()
        ms = [v * 1000 for v in latencies]
        medians = {seq: sorted(values)[len(values) // 2] * 1000 for seq, values in by_seq.items()}
        slowest = [
            {
                "seq": seq,
                "type": types[seq - 1] if seq <= len(types) else None,
                "median_ms": round(medians[seq], 1),
                "max_ms": round(worst[seq] * 1000, 1),
            }
            for seq in sorted(medians, key=lambda q: -medians[q])[:5]
        ]
        worst_sorted = sorted(v * 1000 for v in worst.values())
        started_at = ex.timestamp(final["startedAt"])
        finished_at = ex.timestamp(final["finishedAt"])
        run_s = (finished_at - started_at) if started_at and finished_at else 0.0
        before, subscribed, after = sockets
        if after > before:
            problems.append(f"the server still holds {after - before} more connections than before")
        if subscribers != args.subscribers:
            problems.append(f"{subscribers} subscribers reported, {args.subscribers} started")
        load_shares = [m.share for m in load_cpu if m.share is not None]
        return FanoutResult(
            database=database,
            subscribers=subscribers,
            events=last_seq,
            live_events=last_seq - 1,
            deliveries=len(latencies),
            verified=verified,
            p50_ms=ex.percentile(ms, 50),
            p90_ms=ex.percentile(ms, 90),
            p99_ms=ex.percentile(ms, 99),
            p999_ms=ex.percentile(ms, 99.9),
            max_ms=ms[-1] if ms else 0.0,
            worst_per_event_median_ms=ex.percentile(worst_sorted, 50),
            slowest_events=slowest,
            run_s=run_s,
            deliveries_per_s=len(latencies) / run_s if run_s else 0.0,
            connect_s=connect_s,
            server_cpu=server_cpu.share,
            loop_cpu=server_cpu.main_share,
            load_cpu=sum(load_shares) if load_shares else None,
            server_connections_before=before,
            server_connections_subscribed=subscribed,
            server_connections_after=after,
            server_peak_rss_mb=rss,
            machine_busy=busy,
            others_cores=others,
            load_processes=len(loads),
            deflate=bool(args.deflate),
            problems=problems,
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def table(results: list[FanoutResult]) -> str:
    head = (
        "database",
        "subs",
        "events",
        "deliveries",
        "verified",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "run s",
        "deliv/s",
        "server CPU",
        "CPU us/deliv",
        "loop CPU",
        "load CPU",
        "busy before",
        "others",
    )
    lines = [
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
            _pct(r.server_cpu),
            "-" if r.server_cpu_us_per_delivery is None else f"{r.server_cpu_us_per_delivery:.0f}",
            _pct(r.loop_cpu),
            _pct(r.load_cpu),
            _pct(r.machine_busy),
            "-" if r.others_cores is None else f"{r.others_cores:.2f}",
        )
        for r in results
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


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


def run(session: Session) -> tuple[list[FanoutResult], dict[str, str]]:
    """A result per database that ran to the end, and the error of each one that did not."""
    args = session.args
    started_at = now()
    started = time.monotonic()
    fanout = Fanout(session)
    results = []
    failures: dict[str, str] = {}
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.sharing]
    for database in session.databases():
        for sharing in modes:
            name = database if sharing else f"{database} (sharing off)"
            say(f"fanout on {name}: {args.subscribers} subscribers, llm {args.fanout_llm!r}")
            try:
                results.append(fanout.run_one(database, sharing))
            except (BenchError, RuntimeError, OSError) as exc:  # the others still run
                failures[name] = f"{type(exc).__name__}: {exc}"
                say(f"  fanout on {name} failed: {failures[name]}")
    say("")
    say(
        f"fan-out: {args.subscribers} graphql-transport-ws subscribers to one execution "
        f"({args.fanout_tasks} tasks, {args.fanout_llm}, flush {args.flush_interval:g} s); "
        "latency = receipt - createdAt over live events"
    )
    say(table(results))
    say("")
    say(verdicts(results))
    for database, error in failures.items():
        say(f"FAIL  fan-out                        {database:<9} did not complete: {error[:300]}")
    for note in session.notes:
        say(f"note: {note}")
    path = write_json(
        {
            "suite": "fanout",
            "started_at": started_at.isoformat(),
            "elapsed_s": round(time.monotonic() - started, 1),
            "machine": machine(),
            "settings": {
                "subscribers": args.subscribers,
                "llm": args.fanout_llm,
                "tasks": args.fanout_tasks,
                "output_flush_interval_s": args.flush_interval,
                "runner_concurrency": 1,
                "load_processes": args.load_processes,
                "deflate": bool(args.deflate),
                "sharing": args.sharing,
            },
            "results": [r.as_dict() for r in results],
            "failures": failures,
            "notes": session.notes,
        },
        started_at,
        prefix="fanout",
    )
    say(f"results: {_shown(path)}")
    return results, failures


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
