"""Human input through the API with the embedded runner: a task that asks for approval stops the
execution (WAITING_FOR_INPUT, INPUT_REQUESTED with the answer); feedback reruns the task,
approval goes on, rejection fails with REJECTED, a timeout fails or approves as configured,
cancel works while waiting, and a wait holds no runner slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.main import create_app
from tests.conftest import _clean
from tests.support.executions import CANCEL, TERMINAL, detail, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient

Harness = Callable[..., AbstractAsyncContextManager[tuple[Starlette, GraphQLClient]]]

RESPOND = """
mutation($id: ID!, $approve: Boolean!, $feedback: String) {
  respondToExecution(id: $id, approve: $approve, feedback: $feedback) {
    __typename
    ... on Execution { id status inputDeadlineAt }
    ... on Error { code message }
    ... on InvalidTransitionError { currentStatus }
    ... on ValidationError { fields { field message } }
  }
}"""


@pytest.fixture
def harness(settings: Settings) -> Harness:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
        values = {"simulated_delay_seconds": 0, "reaper_interval_seconds": 0.2, **overrides}
        app = create_app(settings.model_copy(update=values))
        transport = httpx.ASGITransport(app=app)
        try:
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://t") as http,
                app.router.lifespan_context(app),
            ):
                yield app, GraphQLClient(http)
        finally:
            await _clean(app)
            await app.state.engine.dispose()

    return start


async def review_crew(client: GraphQLClient, prefix: str = "hi") -> str:
    """research → draft (needs approval, reads research) → polish (reads draft)."""
    agent = await create_agent(client, f"{prefix} writer")
    research = await create_task(client, f"{prefix} research", agent)
    draft = await create_task(client, f"{prefix} draft", agent, [research], humanInput=True)
    polish = await create_task(client, f"{prefix} polish", agent, [draft])
    return await create_crew(client, f"{prefix} crew", [research, draft, polish])


async def respond(
    client: GraphQLClient, execution_id: str, approve: bool, feedback: str | None = None
) -> dict[str, Any]:
    variables = {"id": execution_id, "approve": approve, "feedback": feedback}
    result: dict[str, Any] = (await client.execute(RESPOND, variables))["respondToExecution"]
    return result


def types(found: dict[str, Any]) -> list[str]:
    return [e["type"] for e in found["events"]]


async def waiting(client: GraphQLClient, execution_id: str, requests: int = 1) -> dict[str, Any]:
    """Until the execution waits with its `requests`-th INPUT_REQUESTED."""
    deadline = time.monotonic() + 15
    while True:
        found = await detail(client, execution_id)
        if found["status"] == "WAITING_FOR_INPUT" and types(found).count("INPUT_REQUESTED") >= (
            requests
        ):
            return found
        assert found["status"] not in TERMINAL, found
        assert time.monotonic() < deadline, f"no INPUT_REQUESTED #{requests}: {types(found)}"
        await asyncio.sleep(0.02)


async def test_feedback_reruns_the_task_then_approval_completes(harness: Harness) -> None:
    async with harness() as (app, client):
        crew = await review_crew(client)
        launched = await launch(client, crewId=crew)
        first = await waiting(client, launched["id"])
        assert [t["status"] for t in first["tasks"]] == ["COMPLETED", "COMPLETED", "PENDING"]
        asked = first["events"][-1]
        assert asked["type"] == "INPUT_REQUESTED"
        assert asked["status"] == "WAITING_FOR_INPUT"
        assert asked["taskPosition"] == 1
        assert asked["data"]["answer"] == first["tasks"][1]["output"]
        assert "hi draft" in asked["data"]["question"]
        assert asked["data"]["onTimeout"] == "fail"
        assert app.state.runner.active == 0  # the wait holds no slot

        answered = await respond(client, launched["id"], False, "Shorter, please.")
        assert answered["__typename"] == "Execution", answered
        assert answered["status"] == "QUEUED"
        second = await waiting(client, launched["id"], requests=2)
        events = second["events"]
        received = next(e for e in events if e["type"] == "INPUT_RECEIVED")
        assert received["data"] == {
            "task": "hi draft",
            "approve": False,
            "feedback": "Shorter, please.",
            "by": "local",
        }
        after = types(second)[types(second).index("INPUT_RECEIVED") :]
        assert after == [
            "INPUT_RECEIVED",
            "EXECUTION_QUEUED",
            "EXECUTION_STARTED",
            "TASK_STARTED",
            *["TASK_OUTPUT"] * after.count("TASK_OUTPUT"),
            "LLM_REQUEST",
            "TASK_COMPLETED",
            "INPUT_REQUESTED",
        ]
        resumed = events[types(second).index("INPUT_RECEIVED") + 2]
        assert resumed["data"]["resumed"] is True
        # The redo saw the feedback: the simulated model's answer depends on the whole prompt.
        assert second["tasks"][1]["output"] != first["tasks"][1]["output"]
        assert second["tasks"][0]["output"] == first["tasks"][0]["output"]  # not run again

        assert (await respond(client, launched["id"], True))["status"] == "QUEUED"
        done = await wait_for(client, launched["id"])
        assert done["status"] == "COMPLETED", done["error"]
        assert [t["status"] for t in done["tasks"]] == ["COMPLETED"] * 3
        assert done["result"]["tasks"][1]["output"] == second["tasks"][1]["output"]
        assert types(done).count("TASK_STARTED") == 4  # research, draft twice, polish


async def test_rejection_without_feedback_fails_with_rejected(harness: Harness) -> None:
    async with harness() as (_, client):
        launched = await launch(client, crewId=await review_crew(client))
        await waiting(client, launched["id"])
        for blank in (None, "   "):
            rejected = await respond(client, launched["id"], False, blank)
            if blank is None:
                assert rejected["status"] == "FAILED"
            else:
                assert rejected["__typename"] == "InvalidTransitionError"
                assert rejected["currentStatus"] == "FAILED"
        done = await detail(client, launched["id"])
        assert done["error"] == "A person rejected the answer of task 'hi draft'."
        failed = done["events"][-1]
        assert (failed["type"], failed["data"]["code"]) == ("EXECUTION_FAILED", "REJECTED")
        code = "query($id: ID!) { execution(id: $id) { errorCode } }"
        read = await client.execute(code, {"id": launched["id"]})
        assert read["execution"]["errorCode"] == "REJECTED"
        assert [t["status"] for t in done["tasks"]] == ["COMPLETED", "COMPLETED", "SKIPPED"]


async def test_cancel_while_waiting_and_respond_when_not_waiting(harness: Harness) -> None:
    async with harness() as (_, client):
        crew = await review_crew(client)
        launched = await launch(client, crewId=crew)
        early = await respond(client, launched["id"], True)
        assert early["__typename"] == "InvalidTransitionError"
        assert "Cannot respond to" in early["message"]
        await waiting(client, launched["id"])
        cancelled = (await client.execute(CANCEL, {"id": launched["id"], "force": False}))[
            "cancelExecution"
        ]
        assert cancelled["status"] == "CANCELLED"
        done = await detail(client, launched["id"])
        assert done["error"] == "Cancelled while waiting for input."
        assert [t["status"] for t in done["tasks"]] == ["COMPLETED", "COMPLETED", "CANCELLED"]
        late = await respond(client, launched["id"], True)
        assert late["currentStatus"] == "CANCELLED"
        missing = await respond(client, "01900000-0000-7000-8000-000000000000", True)
        assert missing["__typename"] == "NotFoundError"
        long = await respond(client, launched["id"], False, "x" * 20_001)
        assert long["__typename"] == "ValidationError"
        assert [f["field"] for f in long["fields"]] == ["feedback"]


async def test_a_timeout_fails_by_default(harness: Harness) -> None:
    async with harness() as (_, client):
        crew = await review_crew(client)
        launched = await launch(client, crewId=crew, inputTimeoutSeconds=0.3)
        found = await waiting(client, launched["id"])
        assert found["events"][-1]["data"]["deadline"]
        done = await wait_for(client, launched["id"], within=10)
        assert done["status"] == "FAILED"
        assert done["events"][-1]["data"]["code"] == "INPUT_TIMEOUT"
        code = "query($id: ID!) { execution(id: $id) { errorCode } }"
        read = await client.execute(code, {"id": launched["id"]})
        assert read["execution"]["errorCode"] == "INPUT_TIMEOUT"
        assert done["events"][-2]["data"]["by"] == "timeout"


async def test_a_timeout_approves_when_configured(harness: Harness) -> None:
    async with harness(input_timeout_seconds=0.3, input_timeout_action="approve") as (_, client):
        launched = await launch(client, crewId=await review_crew(client))
        done = await wait_for(client, launched["id"], within=10)
        assert done["status"] == "COMPLETED", done["error"]
        received = next(e for e in done["events"] if e["type"] == "INPUT_RECEIVED")
        assert received["data"]["approve"] is True
        assert received["data"]["by"] == "timeout"


async def test_a_waiting_execution_holds_no_slot(harness: Harness) -> None:
    async with harness(runner_concurrency=1) as (_, client):
        crew = await review_crew(client)
        waiter = await launch(client, crewId=crew)
        await waiting(client, waiter["id"])
        agent = await create_agent(client, "plain")
        plain = await create_crew(client, "plain", [await create_task(client, "plain", agent)])
        other = await launch(client, crewId=plain)
        assert (await wait_for(client, other["id"]))["status"] == "COMPLETED"
        assert (await detail(client, waiter["id"]))["status"] == "WAITING_FOR_INPUT"
