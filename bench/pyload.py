"""The fallback load generator when wrk is missing: `python -m bench.pyload URL BODY_FILE`.

asyncio + httpx in its own process: N connections, each sending the POST as soon as the previous
answer arrived, for a fixed duration. It prints one JSON line shaped like `load.LoadResult`.
It is much slower than wrk, so on fast servers it measures itself: figures are marked as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def drive(url: str, body: bytes, duration: float, connections: int) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    size = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"content-type": "application/json", "accept": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            nonlocal errors, size
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    reply = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                size += len(reply.content)
                if not 200 <= reply.status_code < 300:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return {
        "tool": "python-fallback",
        "requests": count,
        "duration_s": elapsed,
        "requests_per_s": count / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "errors": errors,
        "bytes_per_response": size / count if count else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pyload")
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args(argv)
    body = args.body_file.read_bytes()
    try:
        import uvloop
    except ImportError:  # uvloop is optional here
        result = asyncio.run(drive(args.url, body, args.duration, args.connections))
    else:
        result = uvloop.run(drive(args.url, body, args.duration, args.connections))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
