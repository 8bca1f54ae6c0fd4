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
import time

import httpx

from bench import executions as ex
from bench.fanout_result import (
    BLOCKER_LLM,
    CONNECT_TIMEOUT_S,
    FanoutResult,
    Measured,
    results_table,
    verdicts,
)
from bench.output import finish, now, say
from bench.procs import Server
from bench.procstat import Phase, connections_on_port, machine_busy, peak_rss_mb
from bench.profile import Profiler
from bench.seed import BenchError
from bench.session import Child, Session, crewql_env, postgres_name

# The server's cap on unacknowledged sockets per address, for the bench's one address: its
# process-wide cap (1,000) stays, above the load processes' connects in flight (100 each).
UNACKED_PER_ADDRESS = 1000
# The --many-subscribers run's live phase may take this many times --live-timeout.
MANY_LIVE_FACTOR = 2


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
        "--many-subscribers",
        type=int,
        default=5000,
        help="then one more run with this many subscribers, on the first database, sharing on "
        "(issue #13's second target); 0: none",
    )
    group.add_argument(
        "--many-load-processes",
        type=int,
        default=4,
        help="load processes of the --many-subscribers run",
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


def _many(args: argparse.Namespace) -> argparse.Namespace | None:
    """The shape of the extra run at --many-subscribers, or None when there is none to do."""
    if not args.many_subscribers or args.many_subscribers <= args.subscribers:
        return None
    return argparse.Namespace(
        **{
            **vars(args),
            "subscribers": args.many_subscribers,
            "load_processes": args.many_load_processes,
            "live_timeout": args.live_timeout * MANY_LIVE_FACTOR,
        }
    )


def _counts(args: argparse.Namespace, many: argparse.Namespace | None) -> str:
    return (
        f"{args.subscribers:,}"
        if many is None
        else f"{args.subscribers:,} and {many.subscribers:,}"
    )


def _connections_back_to(port: int, baseline: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = connections_on_port(port)
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        count = connections_on_port(port)
    return count


def run_one(
    session: Session, database: str, sharing: bool = True, args: argparse.Namespace | None = None
) -> FanoutResult:
    """One run on a fresh server: `args` (the session's by default) give its shape."""
    args = args or session.args
    database_url = session.database_url(database)
    env = crewql_env(
        database_url,
        {
            "CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": f"{args.flush_interval:g}",
            "CREWQL_RUNNER_CONCURRENCY": "1",
            "CREWQL_SUBSCRIPTION_SHARING": "true" if sharing else "false",
            # Every subscriber comes from 127.0.0.1, which the server would otherwise treat as
            # one client: its cap on unacknowledged sockets per address (100) is for that.
            "CREWQL_WS_MAX_UNAUTHENTICATED_PER_ADDRESS": str(UNACKED_PER_ADDRESS),
        },
    )
    label = f"crewql-{database}-fanout{'' if sharing else '-unshared'}"
    label += "" if args is session.args else f"-{args.subscribers}"
    server = session.start(label, "crewql", env)
    try:
        return _measure(session, args, database, server, postgres_name(database_url), sharing)
    finally:
        server.stop()  # the next run gets the machine to itself


def _measure(
    session: Session,
    args: argparse.Namespace,
    database: str,
    server: Server,
    pg_name: str | None,
    sharing: bool,
) -> FanoutResult:
    with httpx.Client(timeout=30.0) as client:
        url = server.url
        crew = ex.create_crew(client, url, "fanout-watched", args.fanout_llm, args.fanout_tasks)
        blocker_crew = ex.create_crew(client, url, "fanout-blocker", BLOCKER_LLM, 1)
        blocker = ex.launch(client, url, blocker_crew)
        ex.wait_status(client, url, blocker["id"], "RUNNING", 15.0)
        watched = ex.launch(client, url, crew)
        if watched["status"] != "QUEUED":
            raise BenchError(f"the watched execution is {watched['status']}, not QUEUED")
        sockets = [connections_on_port(server.port)]
        loads = _start_loads(session, args, server, watched["id"])
        connect_s = max(float(load.expect("READY", CONNECT_TIMEOUT_S + 10.0)[1]) for load in loads)
        sockets.append(connections_on_port(server.port))
        busy = machine_busy()
        say(
            f"  {args.subscribers} subscribers ready in {connect_s:.1f} s "
            f"({len(loads)} load process(es)); releasing the execution"
        )
        profiler = Profiler(args.py_spy, server.label, args.py_spy_native)
        session.cleanup.callback(profiler.close)
        profiler.start(server.pid)
        phase = Phase({"server": server.pid, **{load.label: load.pid for load in loads}}, pg_name)
        phase.start()
        ex.cancel(client, url, blocker["id"])
        for load in loads:
            load.expect("ENDED", args.live_timeout + 15.0)
        phase.stop()
        profiler.stop()
        for load in loads:
            load.expect("DONE", 60.0)
        final = ex.execution(client, url, watched["id"])
    sockets.append(_connections_back_to(server.port, sockets[0]))
    outs = [session.workdir / f"{load.label}.json" for load in loads]
    measured = Measured(database, sharing, outs, final, connect_s, phase, sockets, busy)
    return measured.result(args, peak_rss_mb(server.pid))


def _start_loads(
    session: Session, args: argparse.Namespace, server: Server, execution_id: str
) -> list[Child]:
    loads = []
    for i, count in enumerate(_split(args.subscribers, args.load_processes)):
        out = session.workdir / f"{server.label}-load-{i}.json"
        argv = [server.ws_url, execution_id, "--subscribers", str(count), "--out", str(out)]
        argv += ["--timeout", str(args.live_timeout), "--connect-timeout", str(CONNECT_TIMEOUT_S)]
        argv += ["--deflate"] if args.deflate else []
        loads.append(session.spawn(f"{server.label}-load-{i}", "bench.wsload", argv))
    return loads


def run(session: Session) -> tuple[list[FanoutResult], dict[str, str]]:
    """A result per database that ran to the end, and the error of each one that did not."""
    args = session.args
    started_at = now()
    started = time.monotonic()
    results = []
    failures: dict[str, str] = {}
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.sharing]
    shapes = [(database, sharing, args) for database in session.databases() for sharing in modes]
    many = _many(args)
    if many is not None:  # the 5,000 target, once: on SQLite, shared
        shapes.append((session.databases()[0], True, many))
    for database, sharing, shape in shapes:
        name = database if sharing else f"{database} (sharing off)"
        if shape is not args:
            name = f"{name} ({shape.subscribers:,})"
        say(f"fanout on {name}: {shape.subscribers} subscribers, llm {args.fanout_llm!r}")
        try:
            results.append(run_one(session, database, sharing, shape))
        except (BenchError, RuntimeError, OSError) as exc:  # the others still run
            failures[name] = f"{type(exc).__name__}: {exc}"
            say(f"  fanout on {name} failed: {failures[name]}")
    say("")
    say(
        f"fan-out: {_counts(args, many)} graphql-transport-ws subscribers to one execution "
        f"({args.fanout_tasks} tasks, {args.fanout_llm}, flush {args.flush_interval:g} s); "
        "latency = receipt - createdAt over live events"
    )
    say(results_table(results))
    say("")
    say(verdicts(results))
    for database, error in failures.items():
        say(f"FAIL  fan-out                        {database:<9} did not complete: {error[:300]}")
    settings = {
        "subscribers": args.subscribers,
        "llm": args.fanout_llm,
        "tasks": args.fanout_tasks,
        "output_flush_interval_s": args.flush_interval,
        "runner_concurrency": 1,
        "load_processes": args.load_processes,
        "many_subscribers": many.subscribers if many else None,
        "many_load_processes": many.load_processes if many else None,
        "deflate": bool(args.deflate),
        "sharing": args.sharing,
    }
    finish(
        "fanout",
        started_at,
        time.monotonic() - started,
        session.notes,
        {"settings": settings, "results": [r.as_dict() for r in results], "failures": failures},
    )
    return results, failures
