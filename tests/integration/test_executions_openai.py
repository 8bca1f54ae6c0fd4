"""Executions whose agents use `openai/<model>` (PydanticAI's OpenAI model), against the local
fake server that speaks the real streaming protocol: answers, usage, retries with backoff,
timeouts, answers that are not chat completions. The API key must appear nowhere we store.
(A real `crewql serve` with log files: tests/e2e/test_model_keys.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from loguru import logger
from pydantic import SecretStr
from sqlalchemy import text

from backend.config.settings import ModelPrice, Settings
from backend.main import create_app
from tests.support.apps import serving
from tests.support.executions import detail, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.fake_openai import Answer, Fail, FakeOpenAI, Garbage, Hang
from tests.support.graphql import GraphQLClient

SECRET = "sk-test-NEVER-SHOWN-42"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
USAGE = """
query($id: ID!) {
  execution(id: $id) {
    errorCode
    usage { inputTokens outputTokens totalTokens requests costUsd }
    tasks { model usage { inputTokens outputTokens requests costUsd } }
  }
}"""


@pytest.fixture
async def client(
    settings: Settings, fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GraphQLClient]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake_server.reset()
    update = {
        "openai_base_url": fake_server.base_url,
        "openai_api_key": SecretStr(SECRET),
        "llm_timeout_seconds": 0.5,
        "llm_max_retries": 1,
        "model_prices": {"openai/fake-model": ModelPrice(input=2.0, output=8.0)},
    }
    async with serving(settings.model_copy(update=update)) as client:
        yield client


async def launch_one(
    client: GraphQLClient, llm: str = "openai/fake-model", name: str = "Analyst"
) -> str:
    agent = await create_agent(client, name, llm=llm, temperature=0.2)
    task = await create_task(
        client, f"Summarise for {name}", agent, description="Summarise {topic}"
    )
    crew = await create_crew(client, f"Crew of {name}", [task])
    launched = await launch(client, crewId=crew, inputs={"topic": "moon"})
    return str(launched["id"])


async def test_streams_the_answer_and_stores_its_usage(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Answer("The moon is a rock. " * 5, chunk_chars=7))
    execution_id = await launch_one(client)
    done = await wait_for(client, execution_id)
    assert done["status"] == "COMPLETED", done
    assert done["tasks"][0]["output"] == "The moon is a rock. " * 5
    [request] = fake_server.requests
    assert request.model == "fake-model"
    assert request.authorization == f"Bearer {SECRET}"
    assert request.body["stream"] is True
    assert request.body["temperature"] == 0.2
    assert "Summarise moon" in request.messages[-1]["content"]
    # What the server said it used is what the LLM_REQUEST event, the task and the execution say.
    prompt_tokens, completion_tokens = request.usage_sent or (0, 0)
    [event] = [e for e in done["events"] if e["type"] == "LLM_REQUEST"]
    assert (event["data"]["inputTokens"], event["data"]["outputTokens"]) == (
        prompt_tokens,
        completion_tokens,
    )
    cost = (prompt_tokens * 2.0 + completion_tokens * 8.0) / 1_000_000
    assert event["data"]["costUsd"] == pytest.approx(cost)
    usage = (await client.execute(USAGE, {"id": execution_id}))["execution"]
    expected = {
        "inputTokens": prompt_tokens,
        "outputTokens": completion_tokens,
        "requests": 1,
        "costUsd": pytest.approx(cost),
    }
    assert usage["usage"] == {**expected, "totalTokens": prompt_tokens + completion_tokens}
    assert usage["tasks"] == [{"model": "openai/fake-model", "usage": expected}]


async def test_server_errors_are_retried_then_fail_the_execution_clearly(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Fail(500), Fail(503, body=f"upstream said {SECRET}"))
    captured: list[str] = []
    sink = logger.add(lambda message: captured.append(str(message)), level="TRACE")
    try:
        execution_id = await launch_one(client)
        done = await wait_for(client, execution_id)
    finally:
        logger.remove(sink)
    assert done["status"] == "FAILED"
    assert len(fake_server.requests) == 2  # one retry (llm_max_retries=1)
    assert "answered 503 after 2 attempts: upstream said [redacted]" in done["error"]
    assert [e["type"] for e in done["events"]][-2:] == ["TASK_FAILED", "EXECUTION_FAILED"]
    assert done["events"][-1]["data"]["code"] == "MODEL_ERROR"
    assert (await client.execute(USAGE, {"id": execution_id}))["execution"]["errorCode"] == (
        "MODEL_ERROR"
    )
    assert SECRET not in repr(done)
    assert all(SECRET not in line for line in captured)


async def test_a_retry_that_succeeds_completes(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Fail(429, retry_after="0.01"), Answer("second time lucky"))
    done = await wait_for(client, await launch_one(client))
    assert done["status"] == "COMPLETED", done["error"]
    assert done["tasks"][0]["output"] == "second time lucky"


async def test_timeouts_and_garbage_fail_not_hang(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Hang(5), Hang(5))
    timed_out = await wait_for(client, await launch_one(client), within=10)
    assert timed_out["status"] == "FAILED"
    assert "timed out after 2 attempts" in timed_out["error"]

    fake_server.enqueue(Garbage())
    garbage = await wait_for(client, await launch_one(client, name="Second"), within=10)
    assert garbage["status"] == "FAILED"
    assert "could not be used" in garbage["error"]


async def test_a_rejected_key_is_not_retried(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Fail(401, body={"error": {"message": "bad key <<authorization>>"}}))
    done = await wait_for(client, await launch_one(client))
    assert done["status"] == "FAILED"
    assert len(fake_server.requests) == 1
    assert "answered 401: bad key Bearer [redacted]" in done["error"]


async def test_key_is_not_stored(
    client: GraphQLClient, fake_server: FakeOpenAI, app_db_text: Any
) -> None:
    fake_server.enqueue(Fail(400, body=f"you sent {SECRET}"))
    execution_id = await launch_one(client)
    await wait_for(client, execution_id)
    dumped = await app_db_text()
    assert "you sent [redacted]" in dumped
    assert SECRET not in dumped


@pytest.fixture
def app_db_text(settings: Settings) -> Any:
    async def dump() -> str:
        app = create_app(settings)
        try:
            async with app.state.engine.connect() as connection:
                rows = await connection.execute(
                    text("SELECT config, inputs, result, error FROM executions")
                )
                tasks = await connection.execute(text("SELECT output, error FROM execution_tasks"))
                events = await connection.execute(
                    text("SELECT message, data FROM execution_events")
                )
                return repr(rows.all()) + repr(tasks.all()) + repr(events.all())
        finally:
            await app.state.engine.dispose()

    return dump


async def test_unknown_provider_is_refused_at_launch(client: GraphQLClient) -> None:
    agent = await create_agent(client, "Odd", llm="nosuch/model")
    task = await create_task(client, "T", agent)
    crew = await create_crew(client, "C", [task])
    result = await launch(client, crewId=crew)
    assert result["__typename"] == "ValidationError"
    assert "nosuch" in result["fields"][0]["message"]
    assert (await detail(client, "01900000-0000-7000-8000-000000000000")) is None
