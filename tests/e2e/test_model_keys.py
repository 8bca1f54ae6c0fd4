"""A model key stored as a workspace secret, through a real `crewql serve` (SQLite, log files
under its `logs/`, DEBUG level): it reaches the fake OpenAI-compatible server in the
Authorization header, and appears nowhere else: not in any response, event or stored row, not
in any log line, even when the server echoes it back in an error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.secret_box import generate_key
from tests.support.executions import DETAIL, LAUNCH
from tests.support.fake_openai import ECHO_AUTHORIZATION, Answer, Fail, FakeOpenAI
from tests.support.processes import crewql_command, free_port, start_process, wait_ready

KEY = "sk-e2e-workspace-secret-8086"
AGENT = (
    """mutation($input: AgentCreateInput!) { createAgent(input: $input) { ... on Agent { id } } }"""
)
TASK = """mutation($input: TaskCreateInput!) { createTask(input: $input) { ... on Task { id } } }"""
CREW = """mutation($input: CrewCreateInput!) { createCrew(input: $input) { ... on Crew { id } } }"""
SET_SECRET = """mutation($name: String!, $value: String!) { setSecret(name: $name, value: $value) {
  __typename } }"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def test_a_secret_key_reaches_the_model_and_nothing_else(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    port = free_port()
    env = {
        "CREWQL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'crewql.db'}",
        "CREWQL_AUTH_ENABLED": "false",
        "CREWQL_SECRETS_KEY": generate_key(),
        "CREWQL_OPENAI_BASE_URL": fake.base_url,
        "CREWQL_LLM_MAX_RETRIES": "0",
        "CREWQL_LOG_LEVEL": "DEBUG",
        "CREWQL_LOG_TO_FILES": "true",
        "NO_PROXY": "127.0.0.1",
    }
    server = start_process(
        "api", crewql_command("serve", "--port", str(port)), env, tmp_path, port=port
    )
    answers: list[str] = []
    try:
        await wait_ready(server)
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:

            async def gql(query: str, **variables: Any) -> dict[str, Any]:
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                answers.append(response.text)
                payload: dict[str, Any] = response.json()
                assert "errors" not in payload, payload
                data: dict[str, Any] = payload["data"]
                return data

            assert (await gql(SET_SECRET, name="OPENAI_API_KEY", value=KEY))["setSecret"] == {
                "__typename": "Secret"
            }
            agent = (
                await gql(
                    AGENT, input={"name": "A", "role": "r", "goal": "g", "llm": "openai/fake-model"}
                )
            )["createAgent"]["id"]
            task = (
                await gql(
                    TASK,
                    input={
                        "name": "T",
                        "description": "d",
                        "expectedOutput": "o",
                        "agentId": agent,
                    },
                )
            )["createTask"]["id"]
            crew = (await gql(CREW, input={"name": "C", "taskIds": [task]}))["createCrew"]["id"]
            fake.enqueue(
                Fail(401, body={"error": {"message": f"bad key {ECHO_AUTHORIZATION}"}}),
                Answer("fine"),
            )
            statuses = []
            for _ in range(2):
                launched = (await gql(LAUNCH, input={"crewId": crew}))["createExecution"]
                for _ in range(200):
                    found = (await gql(DETAIL, id=launched["id"]))["execution"]
                    if found["status"] in ("COMPLETED", "FAILED"):
                        break
                    await asyncio.sleep(0.1)
                statuses.append((found["status"], found["error"]))
    finally:
        server.kill()
    assert statuses[0][0] == "FAILED"
    assert "bad key Bearer [redacted]" in (statuses[0][1] or "")
    assert statuses[1] == ("COMPLETED", None)
    assert [r.authorization for r in fake.requests] == [f"Bearer {KEY}"] * 2
    # Nowhere else: every answer the API gave (events included), every log file, the database.
    assert KEY not in "".join(answers)
    logs = sorted((tmp_path / "logs").glob("*.log"))
    assert logs, "crewql serve wrote no log file"
    text = "\n".join(path.read_text() for path in logs)
    assert "model endpoint" in text or "failed" in text  # the failure was logged
    assert KEY not in text
    assert KEY not in server.log()
    assert KEY.encode() not in (tmp_path / "crewql.db").read_bytes()
    assert json.dumps(KEY) not in text
