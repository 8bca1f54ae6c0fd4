"""The PostgreSQL bus of the scaled mode: NOTIFY in the writing transaction, LISTEN on a
dedicated connection in every process.

The notification is sent by the same transaction that stores the events, so PostgreSQL delivers
it exactly when (and only if) they commit. Its payload is small (ids, seq, type, status);
subscribers read the events themselves from the table. When the listening connection drops,
the bus reconnects with backoff and tells every local subscriber to catch up from the table:
events are delayed, never lost.

Channels. Cancellation requests go out on `crewql_cancels` and every other event on
`crewql_events`; API replicas listen to both, on one connection, so PostgreSQL hands them every
notification in commit order. Workers serve no subscriber: they listen to `crewql_cancels`, to
their turns to claim (events/turns.py: the process that queues an execution wakes one worker,
on that worker's own channel) and to presence (`crewql_workers`: who is alive and has free
slots), which every process hears, since every process may queue executions. So a worker wakes
for its own work, not for every step of every execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
from loguru import logger
from sqlalchemy.engine import make_url

from backend.events.bus import BusEvent
from backend.events.fanout import LocalFanout
from backend.events.turns import TURNS_CHANNEL, TurnRouter, turn_channel
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import EventType, ExecutionEventResponse, ExecutionStatus
from backend.utils.time import utcnow

EventLoader = Callable[[uuid.UUID, uuid.UUID, int, int], Awaitable[list[ExecutionEventResponse]]]

CHANNEL = "crewql_events"  # every event but cancellation requests: API replicas
CANCELS_CHANNEL = "crewql_cancels"  # EXECUTION_CANCELLING: replicas and workers
TAKEN = frozenset({EventType.EXECUTION_STARTED, EventType.EXECUTION_CANCELLED})
PRESENCE_CHANNEL = "crewql_workers"
# A peer not heard from for this long is taken for gone (it announces itself every 10 s, and says
# when it leaves; this only matters for one that died without a word).
PRESENCE_TTL_SECONDS = 25.0
# The listening connection is pinged only after this long without a notification: anything heard
# proves it alive, so a busy bus is never pinged (each ping is a round trip and a wake-up).
PING_AFTER_SECONDS = 5.0
# How the listening connection shows in pg_stat_activity (operators, and tests that cut it).
APPLICATION_NAME = "crewql-bus"
RESYNC_MARGIN_SECONDS = 5.0


def encode(events: list[BusEvent]) -> str:
    first = events[0]
    return json.dumps(
        {
            "w": str(first.workspace_id),
            "c": str(first.crew_id) if first.crew_id else None,
            "e": str(first.execution_id),
            "ev": [[e.seq, e.type.value, e.status.value, int(e.force)] for e in events],
        },
        separators=(",", ":"),
    )


def decode(payload: str) -> list[BusEvent]:
    data = json.loads(payload)
    workspace_id = uuid.UUID(data["w"])
    crew_id = uuid.UUID(data["c"]) if data["c"] else None
    execution_id = uuid.UUID(data["e"])
    return [
        BusEvent(
            workspace_id=workspace_id,
            crew_id=crew_id,
            execution_id=execution_id,
            seq=seq,
            type=EventType(kind),
            status=ExecutionStatus(status),
            force=bool(force),
        )
        for seq, kind, status, force in data["ev"]
    ]


def notices(events: list[BusEvent]) -> list[tuple[str, str]]:
    """The (channel, payload) notifications for events in seq order: each run of cancellation
    requests on CANCELS_CHANNEL, each run of the rest on CHANNEL, in order; chunks of at most 50
    keep each payload far below PostgreSQL's 8000-byte limit."""
    out: list[tuple[str, str]] = []
    run: list[BusEvent] = []
    channel = CHANNEL
    for event in events:
        kind = CANCELS_CHANNEL if event.type == EventType.EXECUTION_CANCELLING else CHANNEL
        if run and (len(run) == 50 or kind != channel):
            out.append((channel, encode(run)))
            run = []
        run.append(event)
        channel = kind
    if run:
        out.append((channel, encode(run)))
    return out


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresEventBus(LocalFanout):
    def __init__(
        self,
        database_url: str,
        buffer_size: int,
        *,
        hears_events: bool = True,
        reconnect_max_seconds: float = 10.0,
    ) -> None:
        """`hears_events`: listen to every event (a process serving subscribers); without it,
        only to cancellation requests and this process's runner's turns (a worker)."""
        super().__init__(buffer_size)
        self._channels = (CHANNEL, CANCELS_CHANNEL) if hears_events else (CANCELS_CHANNEL,)
        # Hearing every EXECUTION_STARTED, a replica passes on the turns nobody took.
        self.turns = TurnRouter(self._notify_now, follows=hears_events)
        self._runners: list[str] = []  # whose turns this process listens for
        self._dsn = asyncpg_dsn(database_url)
        self._reconnect_max = reconnect_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._lost_at = utcnow()
        self._loader: EventLoader | None = None
        self._notices: asyncio.Queue[list[BusEvent]] = asyncio.Queue()
        self._hydrator: asyncio.Task[None] | None = None
        self._heard = time.monotonic()  # when the listening connection last proved alive
        self.reconnects = 0
        # The listening connection also pings and announces: one statement at a time on it.
        self._statement = asyncio.Lock()
        self._peers: dict[str, tuple[float, bool]] = {}  # name -> (heard at, available)

    async def stage(self, uow: UnitOfWork, events: list[BusEvent]) -> None:
        """The events' notifications and, for a queued execution, the first worker's turn."""
        sent = notices(events)
        for event in events:
            if event.type == EventType.EXECUTION_QUEUED:
                channel, rest = self.turns.first(event.execution_id, self.peers())
                sent.append((channel, str(event.execution_id)))
                uow.after_commit(partial(self.turns.follow, event.execution_id, rest))
        await uow.executions.notify(sent)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="event-bus-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=10)
        if not self._listening.is_set():
            logger.error("event bus: not listening yet; retrying in the background")

    async def stop(self) -> None:
        self.turns.close()  # no turn passed on by a process that is leaving
        if self._hydrator is not None:
            self._hydrator.cancel()
            await asyncio.gather(self._hydrator, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def _listen_forever(self) -> None:
        backoff = 0.1
        first = True
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                logger.warning("event bus: cannot connect ({}); retrying in {:.1f}s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max)
                continue
            self._connection = connection
            connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
            for channel in self._channels:
                await connection.add_listener(channel, self._on_notification)
            await connection.add_listener(PRESENCE_CHANNEL, self._on_presence)
            for name in self._runners:
                await self._listen_for_turns(connection, name)
            self._listening.set()
            self._heard = time.monotonic()
            if not first:
                self.reconnects += 1
                logger.warning("event bus: listening again; subscribers catch up from the table")
                self.resync_all(self._lost_at)
            first = False
            backoff = 0.1
            await self._wait_lost(connection, lost)
            self._listening.clear()
            # Notifications may have stopped any time after the connection last proved alive,
            # and an event is stamped before its transaction commits: resync from before both.
            silent = time.monotonic() - self._heard + RESYNC_MARGIN_SECONDS
            self._lost_at = utcnow() - timedelta(seconds=silent)
            logger.warning("event bus: listening connection lost; reconnecting")
            self.resync_all(self._lost_at)
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    async def _wait_lost(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Returns when the connection is gone; a ping after a silence notices silent drops."""
        while not lost.is_set():
            quiet = time.monotonic() - self._heard
            if quiet < PING_AFTER_SECONDS:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=PING_AFTER_SECONDS - quiet)
                continue
            try:
                asked = time.monotonic()
                async with self._statement:
                    await asyncio.wait_for(connection.execute("SELECT 1"), timeout=5)
                self._heard = max(self._heard, asked)
            except Exception:
                return

    async def announce(self, name: str, available: bool) -> None:
        """Tells every process on the bus (this one too) that `name` is alive and whether it
        takes work, and listens for its turns from now on. Best effort: without the listening
        connection it is skipped, and peers forget a name they have not heard from for
        PRESENCE_TTL_SECONDS."""
        await self._presence_notice(f"{int(available)}{name}")

    async def depart(self, name: str) -> None:
        """Tells the processes on the bus that `name` is leaving: they forget it at once."""
        await self._presence_notice(f"-{name}")

    async def _presence_notice(self, payload: str) -> None:
        name = payload[1:]
        connection = self._connection
        if payload[0] != "-" and name not in self._runners:
            self._runners.append(name)  # its turns, from now on and after each reconnection
            if connection is not None and self._listening.is_set():
                async with self._statement:
                    await self._listen_for_turns(connection, name)
        await self._notify_now(PRESENCE_CHANNEL, payload)

    async def _notify_now(self, channel: str, payload: str) -> None:
        """A notification outside any transaction, on the listening connection (skipped while
        it is down: turns and presence are best effort)."""
        connection = self._connection
        if connection is None or not self._listening.is_set():
            return
        async with self._statement:
            await asyncio.wait_for(
                connection.execute("SELECT pg_notify($1, $2)", channel, payload), timeout=5
            )

    async def _listen_for_turns(self, connection: asyncpg.Connection, name: str) -> None:
        await connection.add_listener(turn_channel(name), self._on_turn)
        if name == self._runners[0]:  # the turns for every worker, once per process
            await connection.add_listener(TURNS_CHANNEL, self._on_turn)

    def _on_turn(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._heard = time.monotonic()
        try:
            execution_id = uuid.UUID(payload)
        except ValueError:
            logger.error("event bus: ignoring a malformed turn: {!r}", payload[:200])
            return
        self.take_turn(execution_id)

    def peers(self) -> dict[str, bool]:
        """The names heard announcing lately, and whether each takes work."""
        oldest = time.monotonic() - PRESENCE_TTL_SECONDS
        for name in [n for n, (heard, _) in self._peers.items() if heard < oldest]:
            del self._peers[name]
        return {name: available for name, (_, available) in self._peers.items()}

    def _on_presence(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._heard = now = time.monotonic()
        if len(payload) < 2:
            return
        if payload[0] == "-":
            self._peers.pop(payload[1:], None)
        elif payload[0] in ("0", "1"):
            self._peers[payload[1:]] = (now, payload[0] == "1")

    def attach_loader(self, loader: EventLoader) -> None:
        """How to read events from the table: with it, each notice is read once per process and
        handed to every local subscriber, instead of once per subscriber."""
        self._loader = loader

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._heard = time.monotonic()
        try:
            events = decode(payload)
        except (ValueError, KeyError, TypeError):
            logger.error("event bus: ignoring a malformed notification: {!r}", payload[:200])
            return
        if self.turns.following:
            for event in events:
                if event.type in TAKEN:
                    self.turns.taken(event.execution_id)
        if self._loader is None or not self._wants_content(events):
            self.deliver(events)
            return
        self._notices.put_nowait(events)
        if self._hydrator is None or self._hydrator.done():
            self._hydrator = asyncio.create_task(self._hydrate(), name="event-bus-hydrator")

    def _wants_content(self, events: list[BusEvent]) -> bool:
        """Somebody here will read these events: a subscriber to the execution, or a feed."""
        return bool(self._by_execution.get(events[0].execution_id)) or bool(
            len(self._updates) - len(self._internal)
        )

    async def _hydrate(self) -> None:
        """Reads the notified events, one statement per execution per batch, in arrival order;
        on any failure the notices go out bare and subscribers read the table themselves."""
        assert self._loader is not None
        while not self._notices.empty():
            batch: list[BusEvent] = []
            while not self._notices.empty():
                batch.extend(self._notices.get_nowait())
            by_execution: dict[uuid.UUID, list[BusEvent]] = {}
            for item in batch:
                by_execution.setdefault(item.execution_id, []).append(item)
            for execution_id, items in by_execution.items():
                first, last = min(i.seq for i in items), max(i.seq for i in items)
                try:
                    stored = await self._loader(
                        items[0].workspace_id, execution_id, first - 1, last
                    )
                except Exception as exc:
                    logger.warning("event bus: reading notified events failed ({})", exc)
                    self.deliver(items)
                    continue
                content = {event.seq: event for event in stored}
                self.deliver([replace(item, event=content.get(item.seq)) for item in items])
