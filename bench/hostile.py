"""What hostile requests cost a real `crewql serve`: `python -m bench.hostile`.

Starts `crewql serve` (SQLite, authentication off, loopback) on a free port and measures, over
HTTP and both websocket protocols: the round trip of fragment bombs of 20/30/60 levels next to
`{ __typename }`, and /healthz while a bomb is in flight. Figures are medians of `--repeat`
runs, in milliseconds; they go to docs/security.md. The regression suite (tests/) asserts the
answers, never these times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench.cluster import Crewql

LEVELS = (20, 30, 60)


_sent = 0


def fragment_bomb(levels: int, root: str = "Query", operation: str = "query") -> str:
    """A new operation name each time: every bomb misses the parse and validation caches."""
    global _sent
    _sent += 1
    parts = [f"{operation} Bomb{_sent} {{ ...F0 }}"]
    parts += [f"fragment F{i} on {root} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on {root} {{ __typename }}")
    return " ".join(parts)


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def ws_round_trip(url: str, protocol: str, query: str) -> None:
    async with connect(url, subprotocols=[Subprotocol(protocol)], proxy=None) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        json.loads(await ws.recv())
        kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"type": kind, "id": "1", "payload": {"query": query}}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") in ("error", "next", "data", "complete"):
                return


async def measure(base: str, repeat: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    ws_url = base.replace("http", "ws", 1) + "/graphql"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def post(query: str) -> None:
            response = await http.post("/graphql", json={"query": query})
            assert "errors" in response.json() or "data" in response.json()

        figures["http {__typename}"] = await timed(lambda: post("{ __typename }"), repeat)
        for levels in LEVELS:
            figures[f"http bomb {levels}"] = await timed(
                lambda n=levels: post(fragment_bomb(n)),  # type: ignore[misc]
                repeat,
            )
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            figures[f"{protocol} {{__typename}} (incl. connect)"] = await timed(
                lambda p=protocol: ws_round_trip(ws_url, p, "subscription { __typename }"),  # type: ignore[misc]
                repeat,
            )
            for levels in LEVELS:
                figures[f"{protocol} bomb {levels} (incl. connect)"] = await timed(
                    lambda n=levels, p=protocol: ws_round_trip(  # type: ignore[misc]
                        ws_url, p, fragment_bomb(n, "Subscription", "subscription")
                    ),
                    repeat,
                )

        async def health_during_bomb() -> None:
            await asyncio.gather(post(fragment_bomb(60)), http.get("/healthz"))

        figures["healthz alone"] = await timed(lambda: http.get("/healthz"), repeat)
        figures["healthz + bomb 60 together"] = await timed(health_during_bomb, repeat)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        env = {
            "CREWQL_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "CREWQL_AUTH_ENABLED": "false",
            "CREWQL_LOG_TO_FILES": "false",
            "CREWQL_LOG_LEVEL": "WARNING",
        }
        server = Crewql("hostile", env, workdir)
        server.start()
        try:
            server.wait_answering("/healthz", 30.0)
            figures = asyncio.run(measure(server.url.removesuffix("/graphql"), args.repeat))
        finally:
            server.stop()
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
    for name, value in figures.items():
        print(f"{name:45} {value:8.2f} ms")
    print(f"server log: {log.count('Traceback')} tracebacks, {log.count('| ERROR')} ERROR lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
