"""The agent runtime (one PydanticAI run per task) driven by the sequential engine, with real
PydanticAI tools, the simulated model and the fake OpenAI-compatible server over real HTTP.

The reporter here records what the engine reports, in order; the event log it feeds is tested
end to end in test_usage_budgets.py and test_executions_openai.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pydantic_ai import FunctionToolset, ModelRetry
from pydantic_ai.toolsets import AbstractToolset

from backend.config.settings import ModelPrice, Settings, load_settings
from backend.core.usage import Usage
from backend.runner.agent.models import ModelFactory
from backend.runner.agent.setup import TaskSetup
from backend.runner.agent.usage import Budget
from backend.runner.engine import Cancelled, Job, SequentialEngine, TaskFailed
from backend.runner.tools import Toolbox
from backend.schemas import CrewConfig
from tests.support.fake_openai import Answer, Fail, FakeOpenAI, ToolCall, ToolCalls

KEY = "sk-runtime-SECRET-7731"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


class Recorder:
    """A Reporter that keeps what it is told, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int, Any]] = []
        self.cancel_requested = False

    async def task_started(self, position: int) -> None:
        self.steps.append(("started", position, None))

    async def output(self, position: int, chunk: str) -> None:
        self.steps.append(("output", position, chunk))

    async def model_request(self, position: int, task_usage: Usage, data: dict[str, Any]) -> None:
        self.steps.append(("model_request", position, {**data, "task": task_usage}))

    async def tool_call(self, position: int, ok: bool | None, data: dict[str, Any]) -> None:
        kind = "tool_started" if ok is None else "tool_completed" if ok else "tool_failed"
        self.steps.append((kind, position, data))

    async def task_completed(self, position: int, output: str, output_json: Any = None) -> None:
        self.steps.append(("completed", position, output))

    async def task_failed(self, position: int, error: str, output: str) -> None:
        self.steps.append(("failed", position, error))

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise Cancelled("Cancelled on request.")

    def kinds(self) -> list[str]:
        merged: list[str] = []
        for kind, _, _ in self.steps:
            if not (kind == "output" and merged and merged[-1] == "output"):
                merged.append(kind)
        return merged

    def of(self, kind: str) -> list[Any]:
        return [data for k, _, data in self.steps if k == kind]


def crew(llm: str, max_iterations: int | None = None, tasks: int = 1) -> CrewConfig:
    return CrewConfig.model_validate(
        {
            "name": "Crew",
            "agents": [
                {
                    "name": "Clerk",
                    "role": "clerk",
                    "goal": "answer",
                    "llm": llm,
                    "max_iterations": max_iterations,
                }
            ],
            "tasks": [
                {
                    "name": f"T{i}",
                    "description": "What time is it in {city}?",
                    "expected_output": "a time",
                    "agent": "Clerk",
                    "context": [f"T{i - 1}"] if i else [],
                }
                for i in range(tasks)
            ],
        }
    )


def clock_tools(slow: float = 0.0, started: asyncio.Event | None = None) -> FunctionToolset[Any]:
    async def current_time(zone: str = "UTC") -> str:
        """The time now."""
        if started is not None:
            started.set()
        if slow:
            await asyncio.sleep(slow)
        return f"12:00 in {zone}"

    def flaky(question: str) -> str:
        """Always fails, politely."""
        raise ModelRetry(f"cannot answer {question!r} today")

    return FunctionToolset([current_time, flaky])


def engine_for(
    settings: Settings, toolset: AbstractToolset[Any] | None = None
) -> tuple[SequentialEngine, ModelFactory]:
    async def toolbox(workspace_id: uuid.UUID, names: Sequence[str]) -> Toolbox:
        return Toolbox([toolset] if toolset is not None else [])

    models = ModelFactory(settings)
    return SequentialEngine(TaskSetup(models, settings, toolbox)), models


def job(config: CrewConfig, budget: Budget | None = None) -> Job:
    return Job(uuid.uuid4(), config, {"city": "Oslo"}, budget or Budget())


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    server.reset()
    return server


def settings_for(fake: FakeOpenAI | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "simulated_delay_seconds": 0,
        "log_to_files": False,
        "llm_max_retries": 1,
        "llm_timeout_seconds": 2.0,
        "model_prices": {"openai/fake-model": ModelPrice(input=1.0, output=2.0)},
    }
    if fake is not None:
        values.update(openai_base_url=fake.base_url, openai_api_key=KEY)
    return load_settings(**{**values, **overrides})


# ------------------------------------------------------------------------- simulated


async def test_simulated_script_calls_tools_in_order() -> None:
    engine, models = engine_for(settings_for(), clock_tools())
    reporter = Recorder()
    llm = 'simulated/call=current_time{"zone":"CET"},call=flaky{"question":"why"},chunk=16'
    result = await engine.run(job(crew(llm)), reporter)
    await models.aclose()
    assert reporter.kinds() == [
        "started",
        "model_request",
        "tool_started",
        "tool_completed",
        "model_request",
        "tool_started",
        "tool_failed",
        "output",
        "model_request",
        "completed",
    ]
    started = reporter.of("tool_started")
    assert [(s["tool"], s["args"]) for s in started] == [
        ("current_time", '{"zone":"CET"}'),
        ("flaky", '{"question":"why"}'),
    ]
    [completed] = reporter.of("tool_completed")
    assert completed["result"] == "12:00 in CET"
    [failed] = reporter.of("tool_failed")
    assert "cannot answer 'why' today" in failed["error"]
    output = result["final"]
    assert "Tool current_time returned: 12:00 in CET" in output
    assert "Tool flaky failed" in output
    assert "".join(reporter.of("output")) == output
    requests = reporter.of("model_request")
    assert [r["request"] for r in requests] == [1, 2, 3]
    assert all(r["model"] == "simulated" and r["costUsd"] is None for r in requests)
    total = requests[-1]["task"]
    assert total.requests == 3
    assert total.input_tokens == sum(r["inputTokens"] for r in requests)
    assert total.output_tokens == sum(r["outputTokens"] for r in requests)


async def test_a_script_calling_a_tool_the_agent_lacks_fails_the_task() -> None:
    engine, models = engine_for(settings_for())
    reporter = Recorder()
    with pytest.raises(TaskFailed) as failed:
        await engine.run(job(crew("simulated/call=current_time")), reporter)
    await models.aclose()
    assert failed.value.code == "MODEL_ERROR"
    assert "calls tool 'current_time', which this agent does not have" in str(failed.value)


async def test_max_iterations_bounds_model_requests() -> None:
    engine, models = engine_for(settings_for(), clock_tools())
    reporter = Recorder()
    llm = "simulated/call=current_time,call=current_time,call=current_time"
    with pytest.raises(TaskFailed) as failed:
        await engine.run(job(crew(llm, max_iterations=2)), reporter)
    await models.aclose()
    assert failed.value.code == "MAX_ITERATIONS"
    assert "limit of 2 model requests" in str(failed.value)
    assert len(reporter.of("model_request")) == 2


async def test_budget_in_tokens_stops_the_run_after_the_request_that_crossed_it() -> None:
    engine, models = engine_for(settings_for(), clock_tools())
    reporter = Recorder()
    llm = "simulated/call=current_time,call=current_time"
    with pytest.raises(TaskFailed) as failed:
        await engine.run(job(crew(llm, tasks=2), Budget(max_tokens=60)), reporter)
    await models.aclose()
    requests = [r["inputTokens"] + r["outputTokens"] for r in reporter.of("model_request")]
    used = sum(requests)
    assert used > 60 >= used - requests[-1]  # the last request crossed it, and no other ran
    assert failed.value.code == "BUDGET_EXCEEDED"
    assert failed.value.data == {
        "code": "BUDGET_EXCEEDED",
        "limit": "maxTokens",
        "allowed": 60,
        "used": used,
        "over": used - 60,
    }
    assert f"maxTokens is 60, the execution used {used} tokens ({used - 60} over)" in str(
        failed.value
    )
    assert reporter.kinds()[-1] == "failed"


async def test_budget_counts_every_task_of_the_execution() -> None:
    prices = {"simulated": ModelPrice(input=1000.0, output=1000.0)}
    engine, models = engine_for(settings_for(model_prices=prices))
    first = Recorder()
    await engine.run(job(crew("simulated", tasks=1)), first)
    [one] = first.of("model_request")
    # Enough for one task, not for two: the second task's request crosses it.
    budget = Budget(max_cost_usd=one["costUsd"] * 1.5)
    reporter = Recorder()
    with pytest.raises(TaskFailed) as stopped:
        await engine.run(job(crew("simulated", tasks=2), budget), reporter)
    await models.aclose()
    assert stopped.value.code == "BUDGET_EXCEEDED"
    assert stopped.value.position == 1
    assert stopped.value.data["limit"] == "maxCostUsd"
    assert stopped.value.data["used"] > one["costUsd"] * 1.5


async def test_graceful_cancel_during_a_slow_tool_lets_it_finish_then_stops() -> None:
    started = asyncio.Event()
    engine, models = engine_for(settings_for(), clock_tools(slow=0.3, started=started))
    reporter = Recorder()
    run = asyncio.create_task(engine.run(job(crew("simulated/call=current_time")), reporter))
    await asyncio.wait_for(started.wait(), 5)
    reporter.cancel_requested = True
    with pytest.raises(Cancelled):
        await asyncio.wait_for(run, 5)
    await models.aclose()
    assert reporter.kinds()[-2:] == ["tool_started", "tool_completed"]
    assert not reporter.of("completed")


async def test_forced_cancel_during_a_slow_tool_stops_at_once() -> None:
    started = asyncio.Event()
    engine, models = engine_for(settings_for(), clock_tools(slow=30, started=started))
    reporter = Recorder()
    run = asyncio.create_task(engine.run(job(crew("simulated/call=current_time")), reporter))
    await asyncio.wait_for(started.wait(), 5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 2)
    await models.aclose()
    assert reporter.kinds()[-1] == "tool_started"


# --------------------------------------------------------------- OpenAI-compatible


async def test_openai_streams_tool_calls_and_usage(fake: FakeOpenAI) -> None:
    fake.enqueue(
        ToolCalls([ToolCall("current_time", '{"zone": "Asia/Tokyo"}')], text="Checking. "),
        Answer("It is noon in Tokyo.", chunk_chars=5),
    )
    engine, models = engine_for(settings_for(fake), clock_tools())
    reporter = Recorder()
    result = await engine.run(job(crew("openai/fake-model")), reporter)
    await models.aclose()
    assert result["final"] == "It is noon in Tokyo."
    assert reporter.kinds() == [
        "started",
        "output",
        "model_request",
        "tool_started",
        "tool_completed",
        "output",
        "model_request",
        "completed",
    ]
    assert reporter.of("tool_completed")[0]["result"] == "12:00 in Asia/Tokyo"
    first, second = fake.requests
    assert first.body["stream"] is True
    assert first.body["tools"][0]["function"]["name"] in {"current_time", "flaky"}
    tool_message = second.messages[-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "12:00 in Asia/Tokyo"
    # The usage reported per request is what the server said; the task's is their sum.
    requests = reporter.of("model_request")
    sent = [r.usage_sent for r in fake.requests]
    assert [(r["inputTokens"], r["outputTokens"]) for r in requests] == sent
    total = requests[-1]["task"]
    assert (total.input_tokens, total.output_tokens, total.requests) == (
        sum(p for p, _ in sent),  # type: ignore[misc]
        sum(c for _, c in sent),  # type: ignore[misc]
        2,
    )
    expected_cost = (total.input_tokens * 1.0 + total.output_tokens * 2.0) / 1_000_000
    assert total.cost_usd == pytest.approx(expected_cost)
    assert all(r.authorization == f"Bearer {KEY}" for r in fake.requests)


async def test_openai_errors_are_retried_then_reported_without_the_key(fake: FakeOpenAI) -> None:
    fake.enqueue(Fail(500), Answer("fine after one retry"))
    engine, models = engine_for(settings_for(fake))
    assert (await engine.run(job(crew("openai/fake-model")), Recorder()))["final"] == (
        "fine after one retry"
    )
    fake.enqueue(
        Fail(503, body=f"upstream said {KEY}"), Fail(503, body="upstream said <<authorization>>")
    )
    with pytest.raises(TaskFailed) as failed:
        await engine.run(job(crew("openai/fake-model")), Recorder())
    await models.aclose()
    assert failed.value.code == "MODEL_ERROR"
    assert "answered 503 after 2 attempts: upstream said Bearer [redacted]" in str(failed.value)
    assert KEY not in str(failed.value)
