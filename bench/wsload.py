"""The fan-out load: N graphql-transport-ws subscribers to one execution, in one process.

`python -m bench.wsload URL EXECUTION_ID --subscribers N --out FILE` opens N websockets
(bench/wsproto.py), subscribes each to `executionEvents(executionId:, after: 0)` and, once every
one of them has received the stored history (seq 1, EXECUTION_QUEUED, which also proves that the
server has registered its live subscription), prints `READY n` on stdout. The parent then lets
the execution run; every subscriber records each event's seq and latency (receipt minus the
event's `createdAt`, which the server stamps just before the commit: same machine, same clock).
When every subscription has completed (or `--timeout` passed), the sockets are closed with a
close handshake, the figures go to FILE (JSON) and, binary, to FILE with the suffix `.lat`; the
process prints `ENDED` when the live phase is over and `DONE` at the end. `read_loads` reads and
checks those files for the suites.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.wsproto import TERMINAL, ProtocolFailure, Subscriber


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.variables = {"id": args.execution_id}
        self.subscribers: list[Subscriber] = []
        self.ready = 0
        self.ended = 0
        self.all_ready = asyncio.Event()
        self.all_ended = asyncio.Event()

    def first_event(self, subscriber: Subscriber) -> None:
        self.ready += 1
        if self.ready == self.args.subscribers:
            self.all_ready.set()

    def end(self, subscriber: Subscriber) -> None:
        if subscriber.counted_end:
            return
        subscriber.counted_end = True
        self.ended += 1
        if self.ended == self.args.subscribers:
            self.all_ended.set()

    async def open_one(self, limit: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        async with limit:
            subscriber = Subscriber(
                f"{self.host}:{self.port}",
                self.path,
                self.variables,
                self.args.deflate,
                self.first_event,
                self.end,
            )
            self.subscribers.append(subscriber)
            await loop.create_connection(lambda: subscriber, self.host, self.port)
            await subscriber.acked

    def stages(self) -> str:
        """How far the subscribers got, to tell where a slow or stuck subscribe waits."""
        subs = self.subscribers
        errors = [s.stats.errors[0] for s in subs if s.stats.errors]
        acked = sum(s.acked.done() and s.acked.exception() is None for s in subs)
        return (
            f"{len(subs)} started, {sum(s.transport is not None for s in subs)} connected, "
            f"{sum(s.upgraded for s in subs)} upgraded, {acked} "
            f"acknowledged, {self.ready} got seq 1; errors: {errors[:2]}"
        )

    async def run(self) -> dict[str, Any]:
        limit = asyncio.Semaphore(self.args.connect_concurrency)
        started = time.monotonic()
        opening = asyncio.gather(*(self.open_one(limit) for _ in range(self.args.subscribers)))
        try:
            await asyncio.wait_for(opening, self.args.connect_timeout)
            await asyncio.wait_for(
                self.all_ready.wait(), self.args.connect_timeout - (time.monotonic() - started)
            )
        except (TimeoutError, ProtocolFailure, OSError) as exc:
            failures = [s.failure for s in self.subscribers if s.failure]
            raise SystemExit(
                f"ERROR subscribing: {type(exc).__name__} {exc}; {self.ready} of "
                f"{self.args.subscribers} ready; {self.stages()}; failures: {failures[:3]}"
            ) from None
        connect_s = time.monotonic() - started
        print(f"READY {self.ready} {connect_s:.3f}", flush=True)

        cpu_before = time.process_time()
        live_started = time.monotonic()
        timed_out = False
        try:
            await asyncio.wait_for(self.all_ended.wait(), self.args.timeout)
        except TimeoutError:
            timed_out = True
        live_s = time.monotonic() - live_started
        cpu_live = time.process_time() - cpu_before
        print(f"ENDED {self.ended} {live_s:.3f}", flush=True)

        closing_started = time.monotonic()
        for subscriber in self.subscribers:
            subscriber.close()
        lost = [s.lost for s in self.subscribers]
        _, pending = await asyncio.wait(lost, timeout=self.args.close_timeout)
        for subscriber in self.subscribers:
            if not subscriber.lost.done() and subscriber.transport is not None:
                subscriber.transport.abort()
        close_s = time.monotonic() - closing_started
        return self.summary(connect_s, live_s, cpu_live, close_s, len(pending), timed_out)

    def summary(
        self,
        connect_s: float,
        live_s: float,
        cpu_live: float,
        close_s: float,
        not_closed: int,
        timed_out: bool,
    ) -> dict[str, Any]:
        seqs = array("i")
        latencies = array("d")
        per_subscriber = []
        for s in self.subscribers:
            seqs.extend(s.stats.seqs)
            latencies.extend(s.stats.latencies)
            per_subscriber.append(
                {
                    "events": len(s.stats.seqs),
                    "last_seq": s.stats.seqs[-1] if s.stats.seqs else 0,
                    "ordered": s.stats.ordered,
                    "last_type": s.stats.types[-1] if s.stats.types else None,
                    "terminal_events": sum(t in TERMINAL for t in s.stats.types),
                    "ended_by": s.stats.ended_by,
                    "errors": s.stats.errors[:3],
                    "failure": s.failure,
                }
            )
        out = Path(self.args.out)
        with out.with_suffix(".lat").open("wb") as binary:
            seqs.tofile(binary)
            latencies.tofile(binary)
        return {
            "subscribers": len(self.subscribers),
            "connect_s": connect_s,
            "live_s": live_s,
            "cpu_live_s": cpu_live,
            "close_s": close_s,
            "not_closed": not_closed,
            "timed_out": timed_out,
            "samples": len(seqs),
            "deflate_negotiated": sum(s.inflater is not None for s in self.subscribers),
            # What each seq is (as the first subscriber saw it), to name the slow events.
            "types": self.subscribers[0].stats.types if self.subscribers else [],
            "per_subscriber": per_subscriber,
        }


def read_latencies(path: Path) -> tuple[array[int], array[float]]:
    """The (seq, latency) pairs a load process wrote next to its JSON file."""
    raw = path.with_suffix(".lat").read_bytes()
    count = len(raw) // (array("i").itemsize + array("d").itemsize)
    seqs = array("i")
    seqs.frombytes(raw[: count * seqs.itemsize])
    latencies = array("d")
    latencies.frombytes(raw[count * seqs.itemsize :])
    return seqs, latencies


def subscriber_ok(s: dict[str, Any], last_seq: int) -> bool:
    """Got seq 1..last_seq in order, no gap, no duplicate, one terminal event (the last one,
    EXECUTION_COMPLETED), then `complete`."""
    return (
        s["failure"] is None
        and not s["errors"]
        and s["ordered"]
        and s["ended_by"] == "complete"
        and s["events"] == last_seq
        and s["last_seq"] == last_seq
        and s["last_type"] == "EXECUTION_COMPLETED"
        and s["terminal_events"] == 1
    )


@dataclass
class Loads:
    """What the load processes of one run saw, checked against the execution's `lastSeq`."""

    subscribers: int = 0
    verified: int = 0  # subscribers for which `subscriber_ok` holds
    problems: list[str] = field(default_factory=list)
    by_seq: dict[int, list[float]] = field(default_factory=dict)  # live events: latencies (s)
    types: list[str] = field(default_factory=list)  # the type of each seq
    summaries: list[dict[str, Any]] = field(default_factory=list)

    def latencies_ms(self) -> list[float]:
        return sorted(v * 1000 for values in self.by_seq.values() for v in values)


def read_loads(outs: Sequence[Path], last_seq: int) -> Loads:
    loads = Loads()
    for out in outs:
        summary = json.loads(out.read_text(encoding="utf-8"))
        loads.summaries.append(summary)
        loads.types = loads.types or summary["types"]
        if summary["timed_out"]:
            loads.problems.append(f"{out.stem}: not every subscription completed in time")
        if summary["not_closed"]:
            loads.problems.append(f"{out.stem}: {summary['not_closed']} sockets not closed")
        for s in summary["per_subscriber"]:
            loads.subscribers += 1
            ok = subscriber_ok(s, last_seq)
            loads.verified += ok
            if not ok and len(loads.problems) < 5:
                loads.problems.append(f"subscriber: {s}")
        seqs, latencies = read_latencies(out)
        for seq, latency in zip(seqs, latencies, strict=True):
            if seq >= 2:  # seq 1 (EXECUTION_QUEUED) was history, not live
                loads.by_seq.setdefault(seq, []).append(latency)
    return loads


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wsload")
    parser.add_argument("url", help="ws://127.0.0.1:PORT/graphql")
    parser.add_argument("execution_id")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--out", required=True, help="JSON result file (and FILE.lat)")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--connect-timeout", type=float, default=90.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the live phase")
    parser.add_argument("--close-timeout", type=float, default=10.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(args.subscribers + 256)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(Load(args).run())
    else:
        result = uvloop.run(Load(args).run())
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
