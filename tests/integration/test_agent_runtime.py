"""The agent runtime (one PydanticAI run per task) driven by the sequential engine, with real
PydanticAI tools, the simulated model and the fake OpenAI-compatible server over real HTTP.

The reporter here records what the engine reports, in order; the event log it feeds is tested
end to end in test_usage_budgets.py and test_executions_openai.py.
"""

from __future__ import annotations

import asyncio

import pytest

from backend.config.settings import ModelPrice
from backend.runner.agent.usage import Budget
from backend.runner.engine import Cancelled, TaskFailed
from tests.support.agent_runs import (
    KEY,
    Recorder,
    clock_tools,
    crew,
    engine_for,
    job,
    settings_for,
)
from tests.support.fake_openai import Answer, Fail, FakeOpenAI, ToolCall, ToolCalls

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
