"""Executions end to end through GraphQL with the embedded runner: launch, run, read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.main import create_app
from backend.runner.worker_ids import pid_space
from tests.conftest import _clean
from tests.support.executions import (
    CANCEL,
    RETRY,
    assert_gapless,
    detail,
    launch,
    wait_for,
)
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient

Harness = Callable[..., AbstractAsyncContextManager[tuple[Starlette, GraphQLClient]]]


@pytest.fixture
def harness(settings: Settings) -> Harness:
    """Builds an app with setting overrides, runs its lifespan (runner on unless told)."""

    @asynccontextmanager
    async def start(
        *, lifespan: bool = True, **overrides: Any
    ) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
        app = create_app(settings.model_copy(update={"simulated_delay_seconds": 0, **overrides}))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                if lifespan:
                    async with app.router.lifespan_context(app):
                        yield app, GraphQLClient(http)
                else:
                    yield app, GraphQLClient(http)
        finally:
            await _clean(app)
            await app.state.engine.dispose()

    return start


async def blog_crew(client: GraphQLClient, llm: str = "simulated") -> dict[str, str]:
    researcher = await create_agent(client, "Researcher", llm=llm, role="analyst of {topic}")
    writer = await create_agent(client, "Writer", llm=llm)
    research = await create_task(
        client, "Research", researcher, description="Research {topic} for {audience}"
    )
    write = await create_task(client, "Write", writer, [research], expectedOutput="An article")
    crew = await create_crew(client, "Blog crew", [research, write])
    return {"crew": crew, "research": research, "write": write, "researcher": researcher}


async def test_stored_crew_runs_to_completion(harness: Harness) -> None:
    async with harness() as (_, client):
        made = await blog_crew(client)
        launched = await launch(
            client, crewId=made["crew"], inputs={"topic": "tides", "audience": "kids"}
        )
        assert launched["__typename"] == "Execution"
        assert launched["status"] == "QUEUED"
        assert launched["name"] == "Blog crew · Research · topic=tides, audience=kids"
        done = await wait_for(client, launched["id"])
        assert done["status"] == "COMPLETED", done
        events = done["events"]
        assert_gapless(events)
        types = [e["type"] for e in events]
        assert types[:3] == ["EXECUTION_QUEUED", "EXECUTION_STARTED", "TASK_STARTED"]
        assert types[-1] == "EXECUTION_COMPLETED"
        assert types.count("TASK_COMPLETED") == 2
        assert [e["status"] for e in events][-1] == "COMPLETED"
        tasks = done["tasks"]
        assert [t["status"] for t in tasks] == ["COMPLETED", "COMPLETED"]
        assert "Research tides for kids" in tasks[0]["output"]
        assert "simulated" in tasks[0]["output"].lower()
        assert done["result"]["final"] == tasks[1]["output"]
        assert [t["name"] for t in done["result"]["tasks"]] == ["Research", "Write"]
        outputs = "".join(e["data"]["text"] for e in events if e["type"] == "TASK_OUTPUT")
        assert outputs == tasks[0]["output"] + tasks[1]["output"]
        assert done["startedAt"]
        assert done["finishedAt"]


async def test_snapshot_ignores_later_edits(harness: Harness) -> None:
    async with harness(lifespan=False) as (_, client):
        made = await blog_crew(client)
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "a", "audience": "b"})
        await client.execute(
            'mutation($id: ID!) { updateTask(id: $id, input: {name: "Renamed"}) { __typename } }',
            {"id": made["research"]},
        )
        found = await detail(client, launched["id"])
        assert [t["name"] for t in found["tasks"]] == ["Research", "Write"]


async def test_inline_config(harness: Harness) -> None:
    crew = {
        "name": "Inline",
        "agents": [{"name": "Solo", "role": "generalist", "goal": "answer"}],
        "tasks": [
            {
                "name": "Answer",
                "description": "Answer {q}",
                "expectedOutput": "text",
                "agent": "Solo",
            },
            {
                "name": "Check",
                "description": "Check",
                "expectedOutput": "ok",
                "agent": "Solo",
                "context": ["Answer"],
            },
        ],
    }
    async with harness() as (_, client):
        launched = await launch(client, crew=crew, inputs={"q": "why"})
        assert launched["crewId"] is None
        done = await wait_for(client, launched["id"])
        assert done["status"] == "COMPLETED"
        assert "Answer why" in done["tasks"][0]["output"]


@pytest.mark.parametrize(
    ("values", "typename", "fields"),
    [
        ({"crewId": "01900000-0000-7000-8000-000000000000"}, "NotFoundError", None),
        ({}, "ValidationError", ["input"]),
        (
            {"inputs": [1, 2], "crewId": "01900000-0000-7000-8000-000000000000"},
            "ValidationError",
            ["inputs"],
        ),
        (
            {"crew": {"name": "x", "agents": [], "tasks": []}},
            "ValidationError",
            ["crew.agents", "crew.tasks"],
        ),
        (
            {
                "crew": {
                    "name": "x",
                    "agents": [{"name": "a", "role": "r", "goal": "g"}],
                    "tasks": [
                        {"name": "t", "description": "d", "expectedOutput": "e", "agent": "ghost"}
                    ],
                }
            },
            "ValidationError",
            ["crew"],
        ),
        (
            {
                "crew": {
                    "name": "x",
                    "agents": [{"name": "a", "role": "r", "goal": "g", "llm": "nosuch/model"}],
                    "tasks": [
                        {"name": "t", "description": "d", "expectedOutput": "e", "agent": "a"}
                    ],
                }
            },
            "ValidationError",
            ["crew.agents.0.llm"],
        ),
    ],
)
async def test_bad_launches_are_typed_and_write_nothing(
    harness: Harness, values: dict[str, Any], typename: str, fields: list[str] | None
) -> None:
    async with harness(lifespan=False) as (_, client):
        result = await launch(client, **values)
        assert result["__typename"] == typename, result
        if fields is not None:
            assert sorted(f["field"] for f in result["fields"]) == sorted(fields), result
        listed = await client.execute("{ executions { nodes { id } } }")
        assert listed["executions"]["nodes"] == []


async def test_missing_inputs_name_each_key(harness: Harness) -> None:
    async with harness(lifespan=False) as (_, client):
        made = await blog_crew(client)
        result = await launch(client, crewId=made["crew"], inputs={"topic": "x"})
        assert result["__typename"] == "ValidationError"
        assert [f["field"] for f in result["fields"]] == ["inputs.audience"]
        assert "Research" in result["fields"][0]["message"]
        both = await launch(client, crewId=made["crew"])
        assert sorted(f["field"] for f in both["fields"]) == ["inputs.audience", "inputs.topic"]
        listed = await client.execute("{ executions { nodes { id } } }")
        assert listed["executions"]["nodes"] == []


async def test_idempotency_key(harness: Harness) -> None:
    async with harness(lifespan=False) as (_, client):
        made = await blog_crew(client)
        request = {
            "crewId": made["crew"],
            "inputs": {"topic": "t", "audience": "a"},
            "idempotencyKey": "launch-1",
        }
        first = await launch(client, **request)
        again = await launch(client, **request)
        assert again["id"] == first["id"]
        concurrent = await asyncio.gather(*(launch(client, **request) for _ in range(5)))
        assert {c["id"] for c in concurrent} == {first["id"]}
        other = await launch(client, **{**request, "inputs": {"topic": "other", "audience": "a"}})
        assert other["__typename"] == "ConflictError"
        listed = await client.execute("{ executions { nodes { id } } }")
        assert len(listed["executions"]["nodes"]) == 1


async def test_failure_then_retry_links_both_ways(harness: Harness) -> None:
    async with harness() as (_, client):
        made = await blog_crew(client, llm="simulated/fail")
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        failed = await wait_for(client, launched["id"])
        assert failed["status"] == "FAILED"
        assert "simulated failure" in failed["error"]
        assert [t["status"] for t in failed["tasks"]] == ["FAILED", "SKIPPED"]
        types = [e["type"] for e in failed["events"]]
        assert types[-2:] == ["TASK_FAILED", "EXECUTION_FAILED"]
        retried = (await client.execute(RETRY, {"id": launched["id"]}))["retryExecution"]
        assert retried["__typename"] == "Execution"
        assert retried["parentId"] == launched["id"]
        child = await wait_for(client, retried["id"])
        assert child["parent"] == {"id": launched["id"]}
        parent = await detail(client, launched["id"])
        assert parent["retries"] == [{"id": retried["id"]}]
        assert child["inputs"] == {"topic": "t", "audience": "a"}


async def test_refused_transitions_say_the_current_status(harness: Harness) -> None:
    async with harness(lifespan=False) as (_, client):
        made = await blog_crew(client)
        queued = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        retry = (await client.execute(RETRY, {"id": queued["id"]}))["retryExecution"]
        assert retry["__typename"] == "InvalidTransitionError"
        assert retry["currentStatus"] == "QUEUED"
        cancelled = await client.execute(CANCEL, {"id": queued["id"], "force": False})
        assert cancelled["cancelExecution"]["status"] == "CANCELLED"
        found = await detail(client, queued["id"])
        assert [t["status"] for t in found["tasks"]] == ["CANCELLED", "CANCELLED"]
        again = await client.execute(CANCEL, {"id": queued["id"], "force": True})
        assert again["cancelExecution"]["__typename"] == "InvalidTransitionError"
        assert again["cancelExecution"]["currentStatus"] == "CANCELLED"
        unknown = await client.execute(CANCEL, {"id": "nope", "force": False})
        assert unknown["cancelExecution"]["__typename"] == "NotFoundError"


async def test_graceful_cancel_stops_at_next_step(harness: Harness) -> None:
    async with harness() as (app, client):
        made = await blog_crew(client, llm="simulated/delay=20,chunk=1")
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        await wait_for(client, launched["id"], event_type="TASK_STARTED")
        result = await client.execute(CANCEL, {"id": launched["id"], "force": False})
        assert result["cancelExecution"]["status"] == "CANCELLING"
        done = await wait_for(client, launched["id"], within=5)
        assert done["status"] == "CANCELLED"
        types = [e["type"] for e in done["events"]]
        assert types[-1] == "EXECUTION_CANCELLED"
        # Output the engine produced before it stopped is still recorded, after the request.
        after_request = types[types.index("EXECUTION_CANCELLING") + 1 : -1]
        assert set(after_request) <= {"TASK_OUTPUT"}
        assert done["tasks"][0]["status"] == "CANCELLED"
        outputs = "".join(e["data"]["text"] for e in done["events"] if e["type"] == "TASK_OUTPUT")
        assert outputs == done["tasks"][0]["output"]
        assert app.state.runner.active == 0


async def test_forced_cancel_stops_at_once(harness: Harness) -> None:
    async with harness() as (app, client):
        # One 30-second chunk: a graceful cancel would wait for it; force does not.
        made = await blog_crew(client, llm="simulated/delay=30,chunk=100000")
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        await wait_for(client, launched["id"], event_type="TASK_STARTED")
        await client.execute(CANCEL, {"id": launched["id"], "force": True})
        done = await wait_for(client, launched["id"], within=5)
        assert done["status"] == "CANCELLED"
        assert "forced" in done["error"]
        assert app.state.runner.active == 0


async def test_graceful_cancel_that_hangs_is_forced_after_timeout(harness: Harness) -> None:
    async with harness(cancel_timeout_seconds=0.3) as (_, client):
        made = await blog_crew(client, llm="simulated/delay=30,chunk=100000")
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        await wait_for(client, launched["id"], event_type="TASK_STARTED")
        await client.execute(CANCEL, {"id": launched["id"], "force": False})
        done = await wait_for(client, launched["id"], within=5)
        assert done["status"] == "CANCELLED"
        assert "did not stop within 0.3s" in done["error"]


async def test_finished_execution_cannot_be_cancelled(harness: Harness) -> None:
    async with harness() as (_, client):
        made = await blog_crew(client)
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        await wait_for(client, launched["id"])
        refused = await client.execute(CANCEL, {"id": launched["id"], "force": False})
        assert refused["cancelExecution"]["currentStatus"] == "COMPLETED"
        assert "COMPLETED" in refused["cancelExecution"]["message"]


async def test_cancel_racing_the_end_stays_consistent(harness: Harness) -> None:
    async with harness() as (_, client):
        made = await blog_crew(client, llm="simulated/delay=0.05")
        for _ in range(5):
            launched = await launch(
                client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"}
            )
            await wait_for(client, launched["id"], event_type="TASK_STARTED")
            await asyncio.sleep(0.05)
            await client.execute(CANCEL, {"id": launched["id"], "force": False})
            done = await wait_for(client, launched["id"])
            assert done["status"] in {"COMPLETED", "CANCELLED"}
            assert_gapless(done["events"])
            terminal = [
                e
                for e in done["events"]
                if e["type"].startswith("EXECUTION_") and e["status"] in {"COMPLETED", "CANCELLED"}
            ]
            assert len(terminal) == 1
            assert terminal[0]["status"] == done["status"]


async def test_runner_respects_its_concurrency(harness: Harness) -> None:
    async with harness(runner_concurrency=2) as (app, client):
        made = await blog_crew(client, llm="simulated/delay=0.3")
        ids = [
            (await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"}))[
                "id"
            ]
            for _ in range(5)
        ]
        finished = [await wait_for(client, i) for i in ids]
        assert all(f["status"] == "COMPLETED" for f in finished)
        # At no instant were more than two running: count overlaps of [startedAt, finishedAt].
        edges = sorted(
            [(f["startedAt"], 1) for f in finished] + [(f["finishedAt"], -1) for f in finished],
            key=lambda edge: (edge[0], edge[1]),
        )
        running = peak = 0
        for _, change in edges:
            running += change
            peak = max(peak, running)
        assert peak == 2
        assert app.state.runner.active == 0


async def test_shutdown_cancels_what_outlives_the_grace_period(harness: Harness) -> None:
    async with harness(lifespan=False, shutdown_grace_seconds=0.2) as (app, client):
        made = await blog_crew(client, llm="simulated/delay=30,chunk=100000")
        async with app.router.lifespan_context(app):
            launched = await launch(
                client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"}
            )
            await wait_for(client, launched["id"], event_type="TASK_STARTED")
        done = await detail(client, launched["id"])
        assert done["status"] == "CANCELLED"
        assert "shut down" in done["error"]


async def test_startup_marks_leftover_running_executions_crashed(harness: Harness) -> None:
    async with harness(lifespan=False) as (app, client):
        made = await blog_crew(client)
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        claimed = await app.state.services.lifecycle.claim(f"{pid_space()}:999999:dead", 10)
        assert [str(c.id) for c in claimed] == [launched["id"]]
        async with app.router.lifespan_context(app):
            found = await detail(client, launched["id"])
        assert found["status"] == "CRASHED"
        assert found["events"][-1]["type"] == "EXECUTION_CRASHED"
        assert found["events"][-1]["data"]["worker"] == f"{pid_space()}:999999:dead"
        assert_gapless(found["events"])


async def test_output_is_coalesced(harness: Harness) -> None:
    async with harness(output_flush_interval_seconds=0.25) as (_, client):
        made = await blog_crew(client, llm="simulated/delay=0.6,chunk=1")
        launched = await launch(client, crewId=made["crew"], inputs={"topic": "t", "audience": "a"})
        done = await wait_for(client, launched["id"])
        first_task = [
            e for e in done["events"] if e["type"] == "TASK_OUTPUT" and e["taskPosition"] == 0
        ]
        chars = len(done["tasks"][0]["output"])
        assert chars > 200
        # One write at most every 0.25 s while the task ran (however long a busy machine made
        # it), plus the last one: far fewer events than the chunks the model streamed.
        started = next(e for e in done["events"] if e["type"] == "EXECUTION_STARTED")
        ended = next(e for e in done["events"] if e["type"] == "TASK_COMPLETED")
        ran = (
            datetime.fromisoformat(ended["createdAt"])
            - datetime.fromisoformat(started["createdAt"])
        ).total_seconds()
        assert 1 <= len(first_task) <= ran / 0.25 + 2, (len(first_task), ran)
        assert len(first_task) < chars / 10
        assert "".join(e["data"]["text"] for e in first_task) == done["tasks"][0]["output"]


async def test_repeated_launch_is_answered_even_after_the_crew_is_gone(harness: Harness) -> None:
    async with harness(lifespan=False) as (_, client):
        made = await blog_crew(client)
        request = {
            "crewId": made["crew"],
            "inputs": {"topic": "t", "audience": "a"},
            "idempotencyKey": "k-solo",
        }
        first = await launch(client, **request)
        await client.execute(
            "mutation($id: ID!) { deleteCrew(id: $id) { __typename } }", {"id": made["crew"]}
        )
        again = await launch(client, **request)
        assert again["id"] == first["id"]
