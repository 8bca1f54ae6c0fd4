"""Structured output: a task's answer validates against its outputSchema (PydanticAI output
validation; a mismatch is sent back to the model, a bounded number of times), is stored as JSON
(`ExecutionTask.outputJson`, `Execution.result`), and is what a task reading it as context gets.

With the simulated model (offline) and with the fake OpenAI-compatible server (real HTTP, where
the retry message and the context can be read from the requests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr

from backend.config.settings import Settings
from tests.support.apps import serving
from tests.support.executions import launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.fake_openai import Answer, FakeOpenAI, ToolCall, ToolCalls
from tests.support.graphql import GraphQLClient

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "score", "tags"],
    "additionalProperties": False,
}
JSON_OF = """
query($id: ID!) { execution(id: $id) { errorCode tasks { name status output outputJson } } }
"""


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[GraphQLClient]:
    async with serving(settings.model_copy(update={"simulated_delay_seconds": 0})) as client:
        yield client


async def review_crew(client: GraphQLClient, llm: str) -> str:
    agent = await create_agent(client, "Critic", llm=llm)
    rate = await create_task(client, "rate", agent, outputSchema=SCHEMA)
    summary = await create_task(client, "summarise", agent, [rate])
    return await create_crew(client, "Review", [rate, summary])


async def structured(client: GraphQLClient, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.execute(JSON_OF, {"id": execution_id}))["execution"]
    return found


async def test_the_answer_validates_after_a_retry_and_is_stored_as_json(
    client: GraphQLClient,
) -> None:
    crew = await review_crew(client, "simulated/mismatch=1")
    launched = await launch(client, crewId=crew)
    done = await wait_for(client, launched["id"])
    assert done["status"] == "COMPLETED", done["error"]
    found = await structured(client, launched["id"])
    rated, summary = found["tasks"]
    jsonschema.validate(rated["outputJson"], SCHEMA)
    assert json.loads(rated["output"]) == rated["outputJson"]
    assert summary["outputJson"] is None  # no schema: plain text
    # The first answer (every property null) was sent back: two model requests for that task.
    requests = [e for e in done["events"] if e["type"] == "LLM_REQUEST" and e["taskPosition"] == 0]
    assert len(requests) == 2
    completed = next(e for e in done["events"] if e["type"] == "TASK_COMPLETED")
    assert completed["data"]["structured"] is True
    assert done["result"]["tasks"][0]["json"] == rated["outputJson"]
    assert "json" not in done["result"]["tasks"][1]


async def test_no_fitting_answer_within_the_retries_fails_the_task(client: GraphQLClient) -> None:
    crew = await review_crew(client, "simulated/mismatch=3")  # retries: 2 (the default)
    launched = await launch(client, crewId=crew)
    done = await wait_for(client, launched["id"])
    assert done["status"] == "FAILED"
    assert (await structured(client, launched["id"]))["errorCode"] == "OUTPUT_SCHEMA_MISMATCH"
    assert [t["status"] for t in done["tasks"]] == ["FAILED", "SKIPPED"]


# ----------------------------------------------------------------------------- real HTTP


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def openai_client(
    settings: Settings, fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GraphQLClient]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake_server.reset()
    update = {
        "openai_base_url": fake_server.base_url,
        "openai_api_key": SecretStr("sk-structured"),
        "llm_max_retries": 0,
    }
    async with serving(settings.model_copy(update=update)) as client:
        yield client


async def test_a_real_model_is_told_the_mismatch_and_the_next_task_reads_the_json(
    openai_client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    good = {"title": "Tide pools", "score": 4, "tags": ["sea", "rocks"]}
    fake_server.enqueue(
        ToolCalls([ToolCall("final_answer", json.dumps({"title": "Tide pools", "score": 9}))]),
        ToolCalls([ToolCall("final_answer", json.dumps(good))]),
        Answer("A fine review."),
    )
    crew = await review_crew(openai_client, "openai/fake-model")
    launched = await launch(openai_client, crewId=crew)
    done = await wait_for(openai_client, launched["id"])
    assert done["status"] == "COMPLETED", done["error"]
    first, retry, summary = fake_server.requests
    tool = first.body["tools"][0]["function"]
    assert tool["name"] == "final_answer"
    assert tool["parameters"]["required"] == ["title", "score", "tags"]
    told = json.dumps(retry.messages)
    assert "does not match the required JSON Schema" in told
    assert "score: 9 is greater than the maximum of 5" in told
    assert "the answer: 'tags' is a required property" in told
    found = await structured(openai_client, launched["id"])
    assert found["tasks"][0]["outputJson"] == good
    context = summary.messages[-1]["content"]
    assert "Context from task 'rate':" in context
    assert json.dumps(good, indent=2) in context
    assert "tools" not in summary.body  # a plain task asks for text
