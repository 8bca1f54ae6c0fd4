"""Human input end to end, with real `crewql` processes and a dashboard on `executionUpdates`.

A crew's second task needs approval. The dashboard sees WAITING_FOR_INPUT; feedback makes the
task run again; approval lets the crew complete. The wait holds nothing, so it survives what
would crash a running execution: the server SIGKILLed while it waits (embedded mode, SQLite),
and, in the scaled mode, the worker that ran the first task killed; any worker resumes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_scaled_mode import (
    BASE_ENV,
    RECV_TIMEOUT,
    UPDATES,
    Feed,
    dashboard_registered,
    feed,
    statuses_of,
)
from tests.e2e.test_scaled_mode import Api as ScaledApi
from tests.support.databases import postgres_server_url, sqlite_url
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient
from tests.support.operations import CREATE_EXECUTION
from tests.support.processes import (
    CrewqlProcess,
    crewql_command,
    free_port,
    scaled_cluster,
    start_process,
    wait_ready,
)

pytestmark = pytest.mark.timeout(150)

LLM = "simulated/delay=0.3,chunk=40"
RESPOND = """
mutation Respond($id: ID!, $approve: Boolean!, $feedback: String) {
  respondToExecution(id: $id, approve: $approve, feedback: $feedback) {
    __typename ... on Execution { status } ... on Error { code message }
  }
}"""
EXECUTION = """
query Execution($id: ID!) {
  execution(id: $id) {
    status error result
    tasks { name status output }
    events(first: 1000) { seq type status taskPosition data }
  }
}"""


class Api:
    def __init__(self, process: CrewqlProcess, http: httpx.AsyncClient) -> None:
        self.client = GraphQLClient(http)
        self.scaled = ScaledApi(process, http)  # what the scaled-mode suite's helpers take

    @classmethod
    @contextlib.asynccontextmanager
    async def of(cls, process: CrewqlProcess) -> AsyncIterator[Api]:
        async with httpx.AsyncClient(base_url=process.url, trust_env=False, timeout=15) as http:
            yield cls(process, http)

    async def review_crew(self) -> str:
        agent = await create_agent(self.client, "writer", llm=LLM)
        research = await create_task(self.client, "research", agent)
        draft = await create_task(self.client, "draft", agent, [research], humanInput=True)
        return await create_crew(self.client, "review", [research, draft])

    async def launch(self, crew: str) -> str:
        data = await self.client.execute(CREATE_EXECUTION, {"input": {"crewId": crew}})
        return str(data["createExecution"]["id"])

    async def respond(self, execution_id: str, approve: bool, feedback: str | None = None) -> str:
        variables = {"id": execution_id, "approve": approve, "feedback": feedback}
        result = (await self.client.execute(RESPOND, variables))["respondToExecution"]
        assert result["__typename"] == "Execution", result
        return str(result["status"])

    async def execution(self, execution_id: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self.client.execute(EXECUTION, {"id": execution_id}))[
            "execution"
        ]
        return found


def count(board: Feed, execution_id: str, status: str) -> int:
    return statuses_of(board.items, execution_id).count(status)


async def until(board: Feed, execution_id: str, status: str, times: int = 1) -> dict[str, Any]:
    """The `times`-th update of the execution into `status` (from the dashboard)."""
    await board.wait_for(
        lambda _: count(board, execution_id, status) >= times,
        RECV_TIMEOUT,
        f"{status} #{times}",
    )
    return [i for i in board.items if i["executionId"] == execution_id and i["status"] == status][
        times - 1
    ]


def assert_reviewed_run(stored: dict[str, Any]) -> None:
    """Feedback once, then approval: the draft ran twice, the research once, all gapless."""
    assert stored["status"] == "COMPLETED", stored["error"]
    events = stored["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started = [e["taskPosition"] for e in events if e["type"] == "TASK_STARTED"]
    assert started == [0, 1, 1]
    kinds = [e["type"] for e in events if e["type"].startswith(("INPUT_", "EXECUTION_"))]
    assert kinds == [
        "EXECUTION_QUEUED",
        "EXECUTION_STARTED",
        "INPUT_REQUESTED",
        "INPUT_RECEIVED",
        "EXECUTION_QUEUED",
        "EXECUTION_STARTED",
        "INPUT_REQUESTED",
        "INPUT_RECEIVED",
        "EXECUTION_QUEUED",
        "EXECUTION_STARTED",
        "EXECUTION_COMPLETED",
    ]
    assert [t["status"] for t in stored["tasks"]] == ["COMPLETED", "COMPLETED"]


async def test_waiting_survives_a_killed_server(tmp_path: Path) -> None:
    """Embedded mode on SQLite: SIGKILL the server while the execution waits, start another on
    the same database, and answer there."""
    env = {
        "CREWQL_DATABASE_URL": sqlite_url(tmp_path),
        "CREWQL_AUTH_ENABLED": "false",
        "CREWQL_LOG_TO_FILES": "false",
        "CREWQL_RATE_LIMIT_PER_SECOND": "0",
        "CREWQL_OUTPUT_FLUSH_INTERVAL_SECONDS": "0.05",
    }

    def serve(name: str) -> CrewqlProcess:
        port = free_port()
        return start_process(
            name, crewql_command("serve", "--port", str(port)), env, tmp_path, port=port
        )

    first = serve("first")
    try:
        await wait_ready(first)
        async with Api.of(first) as api:
            crew = await api.review_crew()
            async with feed(first, UPDATES, {"filter": {"crewId": crew}}, "executionUpdates") as b:
                await dashboard_registered([b], api.scaled, crew)
                execution_id = await api.launch(crew)
                asked = await until(b, execution_id, "WAITING_FOR_INPUT")
                assert asked["type"] == "INPUT_REQUESTED"
                assert asked["data"]["task"] == "draft"
                assert await api.respond(execution_id, False, "More detail.") == "QUEUED"
                resumed = await until(b, execution_id, "RUNNING", times=2)
                assert resumed["data"]["resumed"] is True
                await until(b, execution_id, "WAITING_FOR_INPUT", times=2)
            waiting = await api.execution(execution_id)
        first.kill()  # SIGKILL: no shutdown, no goodbye
    finally:
        first.kill()
    assert waiting["status"] == "WAITING_FOR_INPUT"

    second = serve("second")
    try:
        await wait_ready(second)
        async with Api.of(second) as api:
            # The new process's reaper has run (at start-up): the wait is no crash.
            assert (await api.execution(execution_id))["status"] == "WAITING_FOR_INPUT"
            async with feed(
                second, UPDATES, {"filter": {"crewId": crew}, "after": 0}, "executionUpdates"
            ) as board:
                assert await api.respond(execution_id, True) == "QUEUED"
                await until(board, execution_id, "COMPLETED")
            stored = await api.execution(execution_id)
    finally:
        second.kill()
    assert_reviewed_run(stored)
    drafts = [e for e in waiting["events"] if e["type"] == "INPUT_REQUESTED"]
    assert drafts[0]["data"]["answer"] != drafts[1]["data"]["answer"]  # the redo saw feedback
    assert stored["result"]["tasks"][1]["output"] == drafts[1]["data"]["answer"]


@pytest.mark.postgres
async def test_any_worker_resumes_after_the_first_one_is_killed(tmp_path: Path) -> None:
    """Scaled mode: the worker that ran the first task is SIGKILLed while the execution waits;
    the response is taken up by the other worker, and nothing is CRASHED."""
    server = postgres_server_url()
    assert server is not None
    async with scaled_cluster(server, tmp_path, BASE_ENV) as cluster:
        replica = cluster.start_replica()
        cluster.start_worker(CREWQL_RUNNER_CONCURRENCY="2")
        cluster.start_worker(CREWQL_RUNNER_CONCURRENCY="2")
        await cluster.ready()
        async with Api.of(replica) as api:
            crew = await api.review_crew()
            async with feed(
                replica, UPDATES, {"filter": {"crewId": crew}}, "executionUpdates"
            ) as b:
                await dashboard_registered([b], api.scaled, crew)
                execution_id = await api.launch(crew)
                started = await until(b, execution_id, "RUNNING")
                await until(b, execution_id, "WAITING_FOR_INPUT")
                first_worker = cluster.worker_named(started["data"]["worker"])
                first_worker.kill()
                survivor = next(w for w in cluster.workers if w is not first_worker)

                assert await api.respond(execution_id, False, "More detail.") == "QUEUED"
                resumed = await until(b, execution_id, "RUNNING", times=2)
                assert resumed["data"]["worker"] == cluster.worker_id(survivor)
                await until(b, execution_id, "WAITING_FOR_INPUT", times=2)
                assert await api.respond(execution_id, True) == "QUEUED"
                await until(b, execution_id, "COMPLETED")
                assert "CRASHED" not in statuses_of(b.items, execution_id)
            stored = await api.execution(execution_id)
    assert_reviewed_run(stored)
