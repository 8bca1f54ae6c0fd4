"""Prometheus metric families of crewql, and the small functions code calls to record into them.

One registry per process (`REGISTRY`): the API serves it on `/metrics`, `crewql worker` on
`--metrics-port`. In scaled mode every process reports its own counters and Prometheus adds them
up; the database-wide gauges (queue depth, oldest queued age) are read from the database at
scrape time, so any one process's value is the whole figure (use `max` across processes).

Cardinality is bounded on purpose: no label ever holds an id, a workspace or free text a client
chose. Operation names are the one client-chosen label; `bounded_operation_name` keeps the first
`MAX_OPERATION_NAMES` distinct well-formed names and files the rest under "other".

Callers outside the API (the agents runtime, tools) record through `record_model_usage`,
`record_task_run` and `record_tool_call`; they need nothing else from this module.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Seconds; from a cached read (~1 ms) to a long subscription handshake.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Seconds between an event's commit and its delivery to a subscriber.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "crewql_http_requests",
    "GraphQL HTTP requests answered, by operation and HTTP status.",
    ["operation_type", "operation_name", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "crewql_http_request_duration_seconds",
    "Time to answer a GraphQL HTTP request, from its first byte to the end of the response.",
    ["operation_type"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
GRAPHQL_ERRORS = Counter(
    "crewql_graphql_errors",
    "GraphQL errors answered, by extensions.code (HTTP and websocket alike).",
    ["code"],
    registry=REGISTRY,
)
WEBSOCKET_OPERATIONS = Counter(
    "crewql_websocket_operations",
    "Operations started over websockets.",
    ["operation_type", "operation_name"],
    registry=REGISTRY,
)
WEBSOCKETS_OPEN = Gauge(
    "crewql_websocket_connections", "Websocket connections open now.", registry=REGISTRY
)
SUBSCRIPTIONS_OPEN = Gauge(
    "crewql_subscriptions_open",
    "Subscriptions running now, by root field.",
    ["kind"],
    registry=REGISTRY,
)
DELIVERY_LAG = Histogram(
    "crewql_event_delivery_lag_seconds",
    "From an event's commit to its delivery to a subscriber (live events only, not history).",
    ["kind"],
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
EXECUTIONS_STARTED = Counter(
    "crewql_executions_started",
    "Executions this process moved from QUEUED to RUNNING (claimed by its runner).",
    registry=REGISTRY,
)
EXECUTIONS_FINISHED = Counter(
    "crewql_executions_finished",
    "Executions that reached a terminal status in this process, by that status.",
    ["status"],
    registry=REGISTRY,
)
EXECUTIONS_REAPED = Counter(
    "crewql_executions_reaped",
    "Executions this process's reaper marked CRASHED (their runner died).",
    registry=REGISTRY,
)
RUNNER_SLOTS_BUSY = Gauge(
    "crewql_runner_slots_busy", "Executions this process's runner runs now.", registry=REGISTRY
)
RUNNER_SLOTS = Gauge(
    "crewql_runner_slots", "Executions this process's runner may run at once.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "crewql_queue_depth",
    "QUEUED executions in the database (all workspaces), read at scrape time.",
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "crewql_queue_oldest_age_seconds",
    "Age of the oldest QUEUED execution (0 when none), read at scrape time.",
    registry=REGISTRY,
)
DB_POOL_IN_USE = Gauge(
    "crewql_db_pool_connections_in_use",
    "Database connections checked out of this process's pool.",
    registry=REGISTRY,
)
DB_POOL_SIZE = Gauge(
    "crewql_db_pool_size", "Connections this process's pool keeps.", registry=REGISTRY
)
MODEL_TOKENS = Counter(
    "crewql_model_tokens",
    "Tokens used by model requests, by model and direction (input or output).",
    ["model", "direction"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "crewql_model_cost_usd",
    "Estimated cost of model requests in US dollars, by model.",
    ["model"],
    registry=REGISTRY,
)
TASK_RUNS = Counter(
    "crewql_task_runs",
    "Tasks run by agents, by how: one direct model request ('direct'), a direct request whose "
    "answer the agent loop took over ('replayed'), or an agent run from the start ('agent').",
    ["path"],
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "crewql_tool_calls",
    "Tool calls made by agents, by tool and outcome (ok, error, denied, timeout ...).",
    ["tool", "outcome"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------- bounded labels

MAX_OPERATION_NAMES = 200
MAX_LABEL_VALUES = 100
OTHER = "other"
ANONYMOUS = "anonymous"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")


class BoundedLabel:
    """Admits the first `limit` distinct values of a label; any later one reads "other"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
        return value


_operation_names = BoundedLabel(MAX_OPERATION_NAMES)
_models = BoundedLabel(MAX_LABEL_VALUES)
_tools = BoundedLabel(MAX_LABEL_VALUES)
_outcomes = BoundedLabel(20)


def bounded_operation_name(name: str | None) -> str:
    """The operation name as a label: a GraphQL name, among the first MAX_OPERATION_NAMES seen
    by this process, or "other" (a client could otherwise mint a new series per request)."""
    if not name:
        return ANONYMOUS
    if not _NAME.fullmatch(name):
        return OTHER
    return _operation_names(name)


# ---------------------------------------------------------------- recording


def record_http(operation_type: str, operation_name: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(operation_type, operation_name, str(status)).inc()
    HTTP_LATENCY.labels(operation_type).observe(seconds)


def record_error_codes(codes: list[str]) -> None:
    for code in codes:
        GRAPHQL_ERRORS.labels(code).inc()


@contextmanager
def websocket_open() -> Iterator[None]:
    WEBSOCKETS_OPEN.inc()
    try:
        yield
    finally:
        WEBSOCKETS_OPEN.dec()


@contextmanager
def subscription_open(kind: str) -> Iterator[None]:
    gauge = SUBSCRIPTIONS_OPEN.labels(kind)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


class DeliveryClock:
    """Observes the delivery lag of one subscription's live events. Events committed before the
    subscription opened are history being replayed, whose age says nothing about lag.

    Paid per subscriber per event, so in seconds since the epoch (`time.time()` and the aware
    datetime's `timestamp()`, both C) rather than by datetime arithmetic."""

    __slots__ = ("_histogram", "_opened")

    def __init__(self, kind: str) -> None:
        self._histogram = DELIVERY_LAG.labels(kind)
        self._opened = time.time()

    def delivered(self, created_at: datetime) -> None:
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        created = created_at.timestamp()
        if created < self._opened:
            return
        lag = time.time() - created
        self._histogram.observe(lag if lag > 0.0 else 0.0)


TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})


def execution_transition(before: str, after: str) -> None:
    """A committed status change (ExecutionService calls it after the commit)."""
    before, after = str(before).upper(), str(after).upper()
    if before == "QUEUED" and after == "RUNNING":
        EXECUTIONS_STARTED.inc()
    elif after in TERMINAL_STATUSES:
        EXECUTIONS_FINISHED.labels(after).inc()


def executions_reaped(count: int) -> None:
    if count:
        EXECUTIONS_REAPED.inc(count)


def runner_slots(*, busy: int = 0, capacity: int = 0) -> None:
    """Changes (not values): several runners may share a process (tests, or embedded + worker)."""
    if busy:
        RUNNER_SLOTS_BUSY.inc(busy)
    if capacity:
        RUNNER_SLOTS.inc(capacity)


def record_queue(depth: int, oldest_queued_at: datetime | None) -> None:
    QUEUE_DEPTH.set(depth)
    if oldest_queued_at is None:
        QUEUE_OLDEST_AGE.set(0)
        return
    if oldest_queued_at.tzinfo is None:
        oldest_queued_at = oldest_queued_at.replace(tzinfo=UTC)
    QUEUE_OLDEST_AGE.set(max((datetime.now(UTC) - oldest_queued_at).total_seconds(), 0.0))


def record_pool(in_use: int, size: int) -> None:
    DB_POOL_IN_USE.set(in_use)
    DB_POOL_SIZE.set(size)


def record_model_usage(
    model: str, *, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0
) -> None:
    """For the agents runtime: one model request's usage (any field may be 0 when unknown)."""
    label = _models(model[:64] or "unknown")
    if input_tokens:
        MODEL_TOKENS.labels(label, "input").inc(input_tokens)
    if output_tokens:
        MODEL_TOKENS.labels(label, "output").inc(output_tokens)
    if cost_usd:
        MODEL_COST.labels(label).inc(cost_usd)


def record_task_run(path: str) -> None:
    """For the agents runtime: one task run, by path ('direct', 'replayed' or 'agent')."""
    TASK_RUNS.labels(path).inc()


def record_tool_call(tool: str, outcome: str) -> None:
    """For the tools runtime: one call of `tool` and how it ended (ok, error, denied ...)."""
    TOOL_CALLS.labels(_tools(tool[:64] or "unknown"), _outcomes(outcome[:32] or "unknown")).inc()


def monotonic() -> float:
    return time.perf_counter()
