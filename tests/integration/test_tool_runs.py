"""Crews whose agents call tools, end to end through GraphQL and the embedded runner, on SQLite
and PostgreSQL: the simulated model's script against the built-in tools and a local HTTP server;
the fake OpenAI-compatible server streaming tool calls to a real MCP server (one tool fails),
its key read from a workspace secret; cancelling during a slow tool call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from backend.config.settings import Settings
from backend.core.secret_box import generate_key
from tests.support.apps import serving
from tests.support.executions import CANCEL, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.fake_openai import Answer, FakeOpenAI, ToolCall, ToolCalls
from tests.support.graphql import GraphQLClient
from tests.support.http_target import HttpTarget, http_target
from tests.support.mcp_server import RunningMcpServer, mcp_server

KEY = "sk-from-a-workspace-secret-5150"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
SET_SECRET = """mutation($name: String!, $value: String!) { setSecret(name: $name, value: $value) {
  __typename } }"""
ALLOW = """mutation($hosts: [String!]!) { setHttpAllowlist(hosts: $hosts) { __typename } }"""
MCP = (
    """mutation($input: McpServerCreateInput!) { createMcpServer(input: $input) { __typename } }"""
)
USAGE = """query($id: ID!) { execution(id: $id) { errorCode
  usage { inputTokens outputTokens requests } } }"""


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.fixture(scope="module")
def calc() -> Iterator[RunningMcpServer]:
    with mcp_server() as server:
        yield server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(
    settings: Settings, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GraphQLClient]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake.reset()
    update = {
        "simulated_delay_seconds": 0,
        "secrets_key": SecretStr(generate_key()),
        "http_tool_allow_private_addresses": True,
        "openai_base_url": fake.base_url,
        "cancel_timeout_seconds": 2.0,
    }
    async with serving(settings.model_copy(update=update)) as client:
        yield client


async def run_crew(
    client: GraphQLClient, llm: str, tools: list[str], **agent: Any
) -> dict[str, Any]:
    agent_id = await create_agent(client, "Clerk", llm=llm, tools=tools, **agent)
    task = await create_task(client, "Look it up", agent_id, description="Look up {what}")
    crew = await create_crew(client, "Lookup crew", [task])
    launched = await launch(client, crewId=crew, inputs={"what": "the time"})
    assert launched["__typename"] == "Execution", launched
    return launched


def tool_events(done: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in done["events"] if e["type"].startswith(("TOOL_CALL_", "LLM_REQUEST"))]


async def test_a_simulated_agent_calls_built_in_tools(
    client: GraphQLClient, target: HttpTarget
) -> None:
    await client.execute(ALLOW, {"hosts": [target.host]})
    url = target.url("/echo")
    llm = f'simulated/call=current_time,call=http_request{{"url":"{url}"}}'
    launched = await run_crew(client, llm, ["current_time", "http_request"])
    done = await wait_for(client, launched["id"])
    assert done["status"] == "COMPLETED", done["error"]
    events = tool_events(done)
    assert [e["type"] for e in events] == [
        "LLM_REQUEST",
        "TOOL_CALL_STARTED",
        "TOOL_CALL_COMPLETED",
        "LLM_REQUEST",
        "TOOL_CALL_STARTED",
        "TOOL_CALL_COMPLETED",
        "LLM_REQUEST",
    ]
    http_started, http_done = events[4]["data"], events[5]["data"]
    assert http_started["tool"] == "http_request"
    assert json.loads(http_started["args"]) == {"url": url}
    answered = json.loads(http_done["result"])
    assert (answered["status"], json.loads(answered["body"])["method"]) == (200, "GET")
    assert all(e["taskPosition"] == 0 for e in events)
    output = done["tasks"][0]["output"]
    assert "Tool current_time returned: " in output
    assert "Tool http_request returned: " in output


async def test_openai_model_calls_mcp_tools_with_a_key_from_secrets(
    client: GraphQLClient, fake: FakeOpenAI, calc: RunningMcpServer
) -> None:
    assert (await client.execute(SET_SECRET, {"name": "OPENAI_API_KEY", "value": KEY}))[
        "setSecret"
    ]["__typename"] == "Secret"
    created = await client.execute(MCP, {"input": {"name": "calc", "url": calc.url}})
    assert created["createMcpServer"]["__typename"] == "McpServer", created
    fake.enqueue(
        ToolCalls(
            [
                ToolCall("mcp_calc__add", '{"a": 2, "b": 3}'),
                ToolCall("mcp_calc__explode", '{"reason": "on purpose"}'),
            ]
        ),
        Answer("2 + 3 is 5; the other tool exploded."),
    )
    launched = await run_crew(
        client, "openai/fake-model", ["mcp:calc/add", "mcp:calc/explode"], temperature=0
    )
    done = await wait_for(client, launched["id"])
    assert done["status"] == "COMPLETED", done["error"]
    assert done["tasks"][0]["output"] == "2 + 3 is 5; the other tool exploded."
    events = tool_events(done)
    started = {e["data"]["tool"]: e["data"] for e in events if e["type"] == "TOOL_CALL_STARTED"}
    assert set(started) == {"mcp:calc/add", "mcp:calc/explode"}
    [completed] = [e["data"] for e in events if e["type"] == "TOOL_CALL_COMPLETED"]
    assert (completed["tool"], completed["result"]) == ("mcp:calc/add", "5")
    [failed] = [e["data"] for e in events if e["type"] == "TOOL_CALL_FAILED"]
    assert failed["tool"] == "mcp:calc/explode"
    assert "Error executing tool explode" in failed["error"]
    # The failure went back to the model as a tool result, and the run went on.
    second = fake.requests[1]
    results = [m for m in second.messages if m["role"] == "tool"]
    assert len(results) == 2
    assert any("Error executing tool explode" in str(m["content"]) for m in results)
    # The key came from the workspace secret, and went only where it belongs.
    assert {r.authorization for r in fake.requests} == {f"Bearer {KEY}"}
    assert KEY not in json.dumps(done)
    usage = (await client.execute(USAGE, {"id": launched["id"]}))["execution"]["usage"]
    assert usage["requests"] == 2
    assert (usage["inputTokens"], usage["outputTokens"]) == (
        sum(r.usage_sent[0] for r in fake.requests if r.usage_sent),
        sum(r.usage_sent[1] for r in fake.requests if r.usage_sent),
    )


async def test_a_missing_key_secret_fails_before_the_first_model_call(
    client: GraphQLClient, fake: FakeOpenAI
) -> None:
    assert (await client.execute(SET_SECRET, {"name": "OTHER_KEY", "value": "x" * 12}))[
        "setSecret"
    ]["__typename"] == "Secret"
    launched = await run_crew(client, "openai/fake-model", [], apiKeySecret="OTHER_KEY")
    done = await wait_for(client, launched["id"])
    assert done["status"] == "COMPLETED", done["error"]
    assert [r.authorization for r in fake.requests] == ["Bearer " + "x" * 12]

    missing = await create_agent(client, "Keyless", llm="openai/fake-model")
    task = await create_task(client, "Keyless task", missing)
    crew = await create_crew(client, "Keyless crew", [task])
    fake.reset()
    launched = await launch(client, crewId=crew)
    done = await wait_for(client, launched["id"])
    assert done["status"] == "FAILED"
    assert "Secret OPENAI_API_KEY is not set in this workspace" in done["error"]
    assert (await client.execute(USAGE, {"id": launched["id"]}))["execution"]["errorCode"] == (
        "SECRET_MISSING"
    )
    assert fake.requests == []


async def test_cancel_during_a_slow_tool_call(client: GraphQLClient, target: HttpTarget) -> None:
    await client.execute(ALLOW, {"hosts": [target.host]})
    # Graceful: the call in flight (one second) finishes and is recorded, then the run stops.
    url = target.url("/slow?seconds=1")
    launched = await run_crew(
        client, f'simulated/call=http_request{{"url":"{url}"}}', ["http_request"]
    )
    await wait_for(client, launched["id"], event_type="TOOL_CALL_STARTED")
    await client.execute(CANCEL, {"id": launched["id"], "force": False})
    done = await wait_for(client, launched["id"], within=10)
    assert done["status"] == "CANCELLED"
    kinds = [e["type"] for e in done["events"]]
    assert kinds.index("TOOL_CALL_COMPLETED") < kinds.index("EXECUTION_CANCELLED")
    assert "LLM_REQUEST" not in kinds[kinds.index("TOOL_CALL_COMPLETED") :]

    # A call that outlives the cancel timeout (2 s) is stopped by force; so is a forced cancel.
    for name, force in (("Slow", False), ("Forced", True)):
        agent = await create_agent(
            client,
            name,
            llm=f'simulated/call=http_request{{"url":"{target.url("/slow?seconds=30")}"}}',
            tools=["http_request"],
        )
        crew = await create_crew(client, f"{name} crew", [await create_task(client, name, agent)])
        launched = await launch(client, crewId=crew)
        await wait_for(client, launched["id"], event_type="TOOL_CALL_STARTED")
        await client.execute(CANCEL, {"id": launched["id"], "force": force})
        done = await wait_for(client, launched["id"], within=10)
        assert done["status"] == "CANCELLED", name
        assert "forced" in done["error"] if force else "did not stop within" in done["error"]
        kinds = [e["type"] for e in done["events"]]
        assert "TOOL_CALL_COMPLETED" not in kinds
