"""GraphQL calls the execution suites share: a crew of simulated agents, launching, cancelling,
reading executions. Everything goes through the server's public API, as a client would."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from bench.seed import CREATE_CREW, CREATE_TASK, RESULT, BenchError, data_of, graphql

CREATE_AGENT = f"""
mutation CreateAgent($input: AgentCreateInput!) {{
  createAgent(input: $input) {{ {RESULT} ... on Agent {{ id }} }}
}}"""
EXECUTION_FIELDS = "id status lastSeq createdAt startedAt finishedAt error"
CREATE_EXECUTION = f"""
mutation Launch($input: ExecutionCreateInput!) {{
  createExecution(input: $input) {{ {RESULT} ... on Execution {{ {EXECUTION_FIELDS} }} }}
}}"""
CANCEL_EXECUTION = f"""
mutation Cancel($id: ID!) {{
  cancelExecution(id: $id, force: true) {{ {RESULT} ... on Execution {{ {EXECUTION_FIELDS} }} }}
}}"""
PENDING_QUERY = (
    "query Pending { executions(first: 1, filter: {statuses: [QUEUED, RUNNING, CANCELLING]}) "
    "{ edges { node { id } } } }"
)
PAGE_QUERY = (
    "query Page($after: String) { executions(first: 100, after: $after) { edges { node "
    "{ id status createdAt startedAt finishedAt } } pageInfo { hasNextPage endCursor } } }"
)
EXECUTION = f"query Execution($id: ID!) {{ execution(id: $id) {{ {EXECUTION_FIELDS} }} }}"


def call(
    client: httpx.Client, url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    return data_of(url, client.post(url, json={"query": query, "variables": variables or {}}))


def created(result: dict[str, Any], kind: str) -> dict[str, Any]:
    if result["__typename"] != kind:
        raise BenchError(f"create {kind} failed: {result}")
    return result


def create_crew(client: httpx.Client, url: str, name: str, llm: str, tasks: int) -> str:
    """A crew of `tasks` tasks in a row, all done by one agent that uses `llm`."""
    agent = created(
        call(
            client,
            url,
            CREATE_AGENT,
            {
                "input": {
                    "name": f"{name}-agent",
                    "role": "Analyst",
                    "goal": "Answer each task briefly",
                    "llm": llm,
                }
            },
        )["createAgent"],
        "Agent",
    )
    task_ids: list[str] = []
    for n in range(tasks):
        task = created(
            call(
                client,
                url,
                CREATE_TASK,
                {
                    "input": {
                        "name": f"{name}-task-{n + 1}",
                        "description": f"Step {n + 1} of {tasks}: summarise what is known.",
                        "expectedOutput": "A short paragraph.",
                        "agentId": agent["id"],
                        "contextTaskIds": task_ids[-1:],
                    }
                },
            )["createTask"],
            "Task",
        )
        task_ids.append(task["id"])
    crew = created(
        call(client, url, CREATE_CREW, {"input": {"name": name, "taskIds": task_ids}})[
            "createCrew"
        ],
        "Crew",
    )
    crew_id: str = crew["id"]
    return crew_id


def launch(client: httpx.Client, url: str, crew_id: str) -> dict[str, Any]:
    data = call(client, url, CREATE_EXECUTION, {"input": {"crewId": crew_id}})
    return created(data["createExecution"], "Execution")


def cancel(client: httpx.Client, url: str, execution_id: str) -> dict[str, Any]:
    data = call(client, url, CANCEL_EXECUTION, {"id": execution_id})
    return created(data["cancelExecution"], "Execution")


def execution(client: httpx.Client, url: str, execution_id: str) -> dict[str, Any]:
    found = call(client, url, EXECUTION, {"id": execution_id})["execution"]
    if found is None:
        raise BenchError(f"execution {execution_id} not found")
    result: dict[str, Any] = found
    return result


def timestamp(value: str | None) -> float | None:
    """A GraphQL DateTime as seconds since the epoch."""
    return None if value is None else datetime.fromisoformat(value).timestamp()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, -(-len(sorted_values) * q // 100) - 1))
    return sorted_values[int(index)]


def wait_status(
    client: httpx.Client, url: str, execution_id: str, wanted: str, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (found := execution(client, url, execution_id))["status"] != wanted:
        if time.monotonic() > deadline:
            raise BenchError(f"execution {execution_id} is {found['status']}, not {wanted}")
        time.sleep(0.1)
    return found


def launch_document(batch: int) -> str:
    fields = " ".join(
        f"e{i}: createExecution(input: {{crewId: $crew}}) "
        f"{{ {RESULT} ... on Execution {{ id createdAt }} }}"
        for i in range(batch)
    )
    return f"mutation Launch($crew: ID!) {{ {fields} }}"


async def create_all(
    client: httpx.AsyncClient,
    url: str,
    crew_id: str,
    count: int,
    out: list[dict[str, Any]],
    batch: int = 10,
    in_flight: int = 4,
    rate: float = 0.0,
) -> None:
    """Creates `count` executions (`batch` aliased mutations a request, at most `in_flight`
    requests at once), appending each to `out` as its answer comes, so that a run cut short by
    its deadline still knows what it created. With `rate` > 0 the requests are paced to that
    many executions a second (an offered load), else sent as fast as the server answers."""
    sizes = [min(batch, count - start) for start in range(0, count, batch)]
    documents = {size: launch_document(size) for size in set(sizes)}
    limit = asyncio.Semaphore(in_flight)
    began = time.monotonic()

    async def one(index: int, size: int) -> None:
        if rate > 0:
            await asyncio.sleep(max(0.0, began + index * batch / rate - time.monotonic()))
        async with limit:
            data = await graphql(client, url, documents[size], {"crew": crew_id})
        out.extend(created(data[f"e{i}"], "Execution") for i in range(size))

    await asyncio.gather(*(one(index, size) for index, size in enumerate(sizes)))


@dataclass
class Drive:
    created: int
    create_s: float | None  # None: not all were created before the deadline
    finished: bool  # nothing queued or running any more
    rows: list[dict[str, Any]]  # the executions it created, read back afterwards


def drive(
    url: str,
    crew_id: str,
    count: int,
    shape: tuple[int, int, float],
    seconds: float,
    measured: tuple[Callable[[], None], Callable[[], None]],
) -> Drive:
    """Creates `count` executions of the crew (`shape`: per request, requests in flight,
    executions offered a second or 0), waits until none is queued or running, all within
    `seconds`; `measured` (start, stop) is called around that phase, before the read-back."""

    async def go() -> Drive:
        batch, in_flight, rate = shape
        limits = httpx.Limits(max_connections=in_flight + 2)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            created: list[dict[str, Any]] = []
            measured[0]()
            began = time.monotonic()
            create_s, finished = None, False
            try:
                creating = create_all(client, url, crew_id, count, created, batch, in_flight, rate)
                await asyncio.wait_for(creating, seconds)
                create_s = time.monotonic() - began
                # Paced runs last longer: poll less, so the polls cost little of what is measured.
                every = 1.0 if rate else 0.25
                finished = await wait_finished(client, url, began + seconds, every)
            except TimeoutError:
                pass
            measured[1]()
            ids = {c["id"] for c in created}
            rows = [r for r in await read_all(client, url) if r["id"] in ids]
            return Drive(len(created), create_s, finished, rows)

    return asyncio.run(go())


def drive_problems(drive: Drive, count: int, seconds: float) -> list[str]:
    rows = drive.rows
    statuses = tally(rows)[1]
    problems = [f"not COMPLETED: {statuses}"] if statuses else []
    if drive.create_s is None:
        problems.append(f"only {drive.created} of {count} created within {seconds:.0f} s")
    elif not drive.finished:
        problems.append(f"not all finished within {seconds:.0f} s")
    if len(rows) != count:
        problems.append(f"{len(rows)} executions in the database, {count} sent")
    return problems


async def wait_finished(
    client: httpx.AsyncClient, url: str, deadline: float, every: float = 0.25
) -> bool:
    """Polls (one small query `every` seconds) until nothing is queued or running."""
    while time.monotonic() < deadline:
        if not (await graphql(client, url, PENDING_QUERY))["executions"]["edges"]:
            return True
        await asyncio.sleep(every)
    return False


async def read_all(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = (await graphql(client, url, PAGE_QUERY, {"after": after}))["executions"]
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def tally(rows: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
    """(COMPLETED, the other statuses counted)."""
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return statuses.pop("COMPLETED", 0), statuses


def span(rows: list[dict[str, Any]], first: str, last: str) -> float:
    """Seconds from the earliest `first` stamp to the latest `last` stamp (server clock)."""
    begun = [t for t in (timestamp(r[first]) for r in rows) if t is not None]
    ended = [t for t in (timestamp(r[last]) for r in rows) if t is not None]
    return max(0.0, max(ended) - min(begun)) if begun and ended else 0.0


def ms(values: list[float], q: float) -> float:
    """The q-th percentile of seconds, in milliseconds."""
    return percentile(sorted(values), q) * 1000


def int_list(text: str, option: str, minimum: int = 1, empty: bool = False) -> list[int]:
    """A comma-separated option of integers; argparse.ArgumentTypeError saying what is wrong."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option}: not integers: {text!r}") from None
    if (not values and not empty) or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{option}: give integers >= {minimum}, e.g. 1,2,4")
    return values
