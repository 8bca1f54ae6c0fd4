"""Executions whose agents use the OpenAI-compatible provider, against the local fake server
that speaks the real streaming protocol. The API key must appear nowhere we store or log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from loguru import logger
from pydantic import SecretStr
from sqlalchemy import text

from backend.config.settings import Settings
from backend.main import create_app
from tests.conftest import _clean
from tests.support.executions import detail, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.fake_openai import Answer, Fail, FakeOpenAI, Hang
from tests.support.graphql import GraphQLClient

SECRET = "sk-test-NEVER-SHOWN-42"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def client(
    settings: Settings, fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GraphQLClient]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake_server.reset()
    app = create_app(
        settings.model_copy(
            update={
                "openai_base_url": fake_server.base_url,
                "openai_api_key": SecretStr(SECRET),
                "llm_timeout_seconds": 0.5,
                "llm_max_retries": 1,
                "llm_retry_backoff_seconds": 0.01,
            }
        )
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
            app.router.lifespan_context(app),
        ):
            yield GraphQLClient(http)
    finally:
        await _clean(app)
        await app.state.engine.dispose()


async def launch_one(client: GraphQLClient, llm: str = "openai/fake-model") -> str:
    agent = await create_agent(client, "Analyst", llm=llm, temperature=0.2)
    task = await create_task(client, "Summarise", agent, description="Summarise {topic}")
    crew = await create_crew(client, "Crew", [task])
    launched = await launch(client, crewId=crew, inputs={"topic": "moon"})
    return str(launched["id"])


async def test_streams_the_model_answer(client: GraphQLClient, fake_server: FakeOpenAI) -> None:
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


async def test_server_errors_fail_the_execution_clearly(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Fail(500), Fail(503, body=f"upstream said {SECRET}"))
    captured: list[str] = []
    sink = logger.add(lambda message: captured.append(str(message)), level="DEBUG")
    try:
        execution_id = await launch_one(client)
        done = await wait_for(client, execution_id)
    finally:
        logger.remove(sink)
    assert done["status"] == "FAILED"
    assert "gave up after 2 attempts" in done["error"]
    assert [e["type"] for e in done["events"]][-2:] == ["TASK_FAILED", "EXECUTION_FAILED"]
    stored = repr(done)
    assert SECRET not in stored
    assert all(SECRET not in line for line in captured)


async def test_timeouts_and_garbage_fail_not_hang(
    client: GraphQLClient, fake_server: FakeOpenAI
) -> None:
    fake_server.enqueue(Hang(5))
    timed_out = await wait_for(client, await launch_one(client), within=10)
    assert timed_out["status"] == "FAILED"
    assert "timed out" in timed_out["error"]


async def test_key_is_not_in_the_snapshot(client: GraphQLClient, app_db_text: Any) -> None:
    execution_id = await launch_one(client)
    await wait_for(client, execution_id)
    dumped = await app_db_text()
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
                events = await connection.execute(
                    text("SELECT message, data FROM execution_events")
                )
                return repr(rows.all()) + repr(events.all())
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
