"""Through the API and the event log, on SQLite and PostgreSQL: an execution whose tasks are asked
directly stores the same events, usage and errors as one whose tasks are agent runs
(`CREWQL_AGENT_DIRECT_REQUESTS` on and off, same crew, same model script). The engine-level cases
(timeouts, broken answers, retries, replays) are in test_direct_requests.py."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from backend.config.settings import ModelPrice, Settings
from tests.support.apps import serving
from tests.support.executions import assert_gapless, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.fake_openai import Answer, Behaviour, Fail, FakeOpenAI, ToolCall, ToolCalls

PRICES = {
    "simulated": ModelPrice(input=3.0, output=15.0),
    "openai/fake-model": ModelPrice(input=2.0, output=8.0),
}
RESULT = """
query($id: ID!) {
  execution(id: $id) {
    status errorCode error result maxTokens
    usage { inputTokens outputTokens totalTokens requests costUsd }
    tasks { name status output error model usage { inputTokens outputTokens requests costUsd } }
    events(first: 1000) { seq type taskPosition message data }
  }
}"""


def _events(events: list[dict[str, Any]]) -> list[tuple[str, Any, Any, Any]]:
    """The log without what differs by nature: times, and where output was cut into events
    (each batch of writes merges the text that came meanwhile)."""
    merged: list[tuple[str, Any, Any, Any]] = []
    for event in events:
        if event["type"] == "EXECUTION_STARTED":  # names the runner, which differs
            merged.append(("EXECUTION_STARTED", None, None, None))
            continue
        data = event["data"]
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("durationMs", "executionId")}
        if event["type"] == "TASK_OUTPUT":
            text = data["text"]
            last = merged[-1] if merged else None
            if last is not None and last[0] == "TASK_OUTPUT" and last[1] == event["taskPosition"]:
                merged[-1] = (last[0], last[1], None, last[3] + text)
                continue
            merged.append(("TASK_OUTPUT", event["taskPosition"], None, text))
            continue
        merged.append((event["type"], event["taskPosition"], event["message"], data))
    return merged


async def _execution(
    settings: Settings,
    direct: bool,
    llm: str,
    fake: FakeOpenAI | None,
    script: tuple[Behaviour, ...],
    **launch_values: Any,
) -> dict[str, Any]:
    update: dict[str, Any] = {
        "simulated_delay_seconds": 0,
        "simulated_chunk_chars": 12,
        "model_prices": PRICES,
        "agent_direct_requests": direct,
    }
    if fake is not None:
        fake.reset()
        fake.enqueue(*script)
        update.update(
            openai_base_url=fake.base_url,
            openai_api_key=SecretStr("sk-log-SECRET-0042"),
            llm_max_retries=1,
            llm_timeout_seconds=2.0,
        )
    async with serving(settings.model_copy(update=update)) as client:
        researcher = await create_agent(client, "Researcher", llm=llm)
        writer = await create_agent(client, "Writer", llm=llm, temperature=0.1)
        research = await create_task(client, "Research", researcher, description="Study {topic}")
        outline = await create_task(client, "Outline", writer, [research])
        article = await create_task(client, "Article", writer, [research, outline])
        crew = await create_crew(client, "Desk", [research, outline, article])
        launched = await launch(client, crewId=crew, inputs={"topic": "tides"}, **launch_values)
        assert launched["__typename"] == "Execution", launched
        await wait_for(client, launched["id"])
        found: dict[str, Any] = (await client.execute(RESULT, {"id": launched["id"]}))["execution"]
    assert_gapless(found["events"])
    found["events"] = _events(found["events"])
    if fake is not None:
        found["asked"] = [r.body for r in fake.requests]
    return found


async def same_on_both_paths(
    settings: Settings,
    llm: str,
    fake: FakeOpenAI | None = None,
    *script: Behaviour,
    **launch_values: Any,
) -> dict[str, Any]:
    direct = await _execution(settings, True, llm, fake, script, **launch_values)
    agent = await _execution(settings, False, llm, fake, script, **launch_values)
    assert direct == agent
    return direct


async def test_a_simulated_crew_logs_the_same(settings: Settings) -> None:
    done = await same_on_both_paths(settings, "simulated")
    assert done["status"] == "COMPLETED"
    assert done["usage"]["requests"] == 3
    assert done["usage"]["costUsd"] > 0
    kinds = [e[0] for e in done["events"]]
    assert kinds.count("LLM_REQUEST") == 3
    assert kinds.count("TASK_OUTPUT") == 3
    outputs = [e[3] for e in done["events"] if e[0] == "TASK_OUTPUT"]
    assert outputs == [t["output"] for t in done["tasks"]]


async def test_a_budget_stops_the_same_task(settings: Settings) -> None:
    done = await same_on_both_paths(settings, "simulated", None, maxTokens=300)
    assert (done["status"], done["errorCode"]) == ("FAILED", "BUDGET_EXCEEDED")
    assert [t["status"] for t in done["tasks"]].count("COMPLETED") >= 1


async def test_an_openai_crew_with_a_retry_and_a_replayed_answer_logs_the_same(
    settings: Settings, fake: FakeOpenAI
) -> None:
    done = await same_on_both_paths(
        settings,
        "openai/fake-model",
        fake,
        Fail(500),
        Answer("The tides follow the moon.", chunk_chars=5),
        ToolCalls([ToolCall("lookup", '{"q": "tides"}')]),
        Answer("Outline: moon, sun."),
        Answer(""),
        Answer("Article about tides."),
    )
    assert done["status"] == "COMPLETED", done
    assert [t["usage"]["requests"] for t in done["tasks"]] == [1, 2, 2]
    assert [t["output"] for t in done["tasks"]] == [
        "The tides follow the moon.",
        "Outline: moon, sun.",
        "Article about tides.",
    ]
    assert len(done["asked"]) == 6  # the failed one, then one per request: nothing asked twice


async def test_a_failing_model_fails_the_execution_the_same_way(
    settings: Settings, fake: FakeOpenAI
) -> None:
    done = await same_on_both_paths(
        settings,
        "openai/fake-model",
        fake,
        Fail(503, body="down for sk-log-SECRET-0042"),
        Fail(503),
    )
    assert (done["status"], done["errorCode"]) == ("FAILED", "MODEL_ERROR")
    assert "answered 503 after 2 attempts" in done["error"]
    assert "sk-log-SECRET" not in str(done)
