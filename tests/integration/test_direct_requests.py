"""A task without tools or output schema asked in one direct model request reports exactly what
its agent run reports: the same events in the same order, usage and cost per request, task and
execution, the same failures (codes, messages, redaction), budgets, retries and timeouts, and the
model is asked the same things (the fake server's recorded request bodies). Each case runs the
engine twice on the same script, with `CREWQL_AGENT_DIRECT_REQUESTS` on and off, and compares;
`crewql_task_runs_total` says which path ran, so a case cannot pass by taking the agent twice.
(Through the API and the event log on both databases: test_direct_requests_log.py.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from backend.config.settings import ModelPrice
from backend.observability.metrics import REGISTRY
from backend.runner.agent.usage import Budget
from backend.runner.engine import Cancelled, Job, TaskFailed
from backend.schemas import CrewConfig
from backend.services.execution_resume import Redo, Resume
from tests.support.agent_runs import KEY, Recorder, crew, engine_for, job
from tests.support.agent_runs import settings_for as base_settings
from tests.support.fake_openai import (
    Answer,
    Behaviour,
    Disconnect,
    Fail,
    FakeOpenAI,
    Garbage,
    Hang,
    Malformed,
    ToolCall,
    ToolCalls,
)

OPENAI = "openai/fake-model"
PATHS = ("direct", "replayed", "agent")


@dataclass
class Outcome:
    steps: list[tuple[str, int, Any]]
    result: dict[str, Any] | None
    failure: tuple[str, str, dict[str, Any]] | None  # code, message, data
    bodies: list[Any]  # what the fake server was asked, in order
    paths: dict[str, float]  # crewql_task_runs_total added, by path


def _runs() -> dict[str, float]:
    return {
        path: REGISTRY.get_sample_value("crewql_task_runs_total", {"path": path}) or 0.0
        for path in PATHS
    }


def _step(kind: str, position: int, data: Any) -> tuple[str, int, Any]:
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "durationMs"}  # a time: not compared
    return kind, position, data


class CancelsAtFirstText(Recorder):
    """Asks for a graceful cancel as soon as the first text arrives."""

    async def output(self, position: int, chunk: str) -> None:
        await super().output(position, chunk)
        self.cancel_requested = True


async def _run(
    direct: bool,
    the_job: Job,
    fake: FakeOpenAI | None,
    script: tuple[Behaviour, ...],
    reporter: Recorder,
    **settings: Any,
) -> Outcome:
    if fake is not None:
        fake.reset()
        fake.enqueue(*script)
    engine, models = engine_for(base_settings(fake, agent_direct_requests=direct, **settings))
    before = _runs()
    result: dict[str, Any] | None = None
    failure = None
    try:
        result = await engine.run(the_job, reporter)
    except TaskFailed as failed:
        failure = (failed.code, str(failed), failed.data)
    except Cancelled as cancelled:
        failure = ("CANCELLED", str(cancelled), {})
    finally:
        await models.aclose()
    after = _runs()
    return Outcome(
        steps=[_step(*step) for step in reporter.steps],
        result=result,
        failure=failure,
        bodies=[r.body for r in fake.requests] if fake is not None else [],
        paths={p: after[p] - before[p] for p in PATHS if after[p] != before[p]},
    )


async def both(
    the_job: Job,
    fake: FakeOpenAI | None = None,
    *script: Behaviour,
    reporter: type[Recorder] = Recorder,
    **settings: Any,
) -> tuple[Outcome, Outcome]:
    """The run on the direct path and on the agent path; asserts that they are the same."""
    direct = await _run(True, the_job, fake, script, reporter(), **settings)
    agent = await _run(False, the_job, fake, script, reporter(), **settings)
    assert direct.steps == agent.steps
    assert direct.result == agent.result
    assert direct.failure == agent.failure
    assert direct.bodies == agent.bodies
    tasks_run = sum(1 for kind, _, _ in agent.steps if kind == "started")
    assert agent.paths == {"agent": tasks_run}
    return direct, agent


def texts(outcome: Outcome) -> str:
    return "".join(data for kind, _, data in outcome.steps if kind == "output")


# ------------------------------------------------------------------------- simulated


async def test_a_crew_of_plain_tasks_is_asked_directly_with_the_same_events() -> None:
    direct, _ = await both(job(crew("simulated/chunk=16", tasks=3)))
    assert direct.paths == {"direct": 3}
    assert direct.result is not None
    kinds = [kind for kind, _, _ in direct.steps]
    assert kinds.count("model_request") == 3
    assert kinds.count("completed") == 3
    assert texts(direct) == "".join(task["output"] for task in direct.result["tasks"])
    requests = [data for kind, _, data in direct.steps if kind == "model_request"]
    assert [r["request"] for r in requests] == [1, 1, 1]
    assert all(r["inputTokens"] > 0 and r["outputTokens"] > 0 for r in requests)


async def test_a_simulated_failure_mid_answer_fails_the_same_way() -> None:
    direct, _ = await both(job(crew("simulated/fail,chunk=8")))
    assert direct.paths == {"direct": 1}
    assert direct.failure is not None
    code, message, _ = direct.failure
    assert (code, message) == (
        "MODEL_ERROR",
        "task 'T0' failed: simulated failure (llm option 'fail')",
    )
    assert texts(direct)  # the half before it broke off was streamed


async def test_a_token_budget_stops_the_same_task_after_the_same_request() -> None:
    direct, _ = await both(job(crew("simulated", tasks=3), Budget(max_tokens=150)))
    assert direct.failure is not None
    code, message, data = direct.failure
    assert code == "BUDGET_EXCEEDED"
    assert data["limit"] == "maxTokens"
    assert "budget exceeded: maxTokens is 150" in message
    assert direct.steps[-1][0] == "failed"
    assert sum(direct.paths.values()) == direct.steps[-1][1] + 1


async def test_a_cost_budget_counts_the_same_cost() -> None:
    prices = {"simulated": ModelPrice(input=1000.0, output=1000.0)}
    direct, _ = await both(
        job(crew("simulated", tasks=2), Budget(max_cost_usd=0.1)), model_prices=prices
    )
    assert direct.failure is not None
    assert direct.failure[0] == "BUDGET_EXCEEDED"
    assert direct.failure[2]["limit"] == "maxCostUsd"
    costs = [data["costUsd"] for kind, _, data in direct.steps if kind == "model_request"]
    assert all(cost > 0 for cost in costs)


async def test_a_redone_task_continues_its_conversation_the_same_way() -> None:
    config = crew("simulated", tasks=2)
    redo = Resume(outputs={0: "first answer"}, redo=Redo(1, "a poor answer", "Say more."))
    direct, _ = await both(Job(job(config).workspace_id, config, {"city": "Oslo"}, resume=redo))
    assert direct.paths == {"direct": 1}
    assert direct.result is not None
    assert direct.result["tasks"][0]["output"] == "first answer"


async def test_a_graceful_cancel_stops_at_the_same_piece_of_text() -> None:
    direct, _ = await both(job(crew("simulated/chunk=10", tasks=2)), reporter=CancelsAtFirstText)
    assert direct.failure is not None
    assert direct.failure[0] == "CANCELLED"
    assert [kind for kind, _, _ in direct.steps] == ["started", "output"]
    assert direct.paths == {"direct": 1}


async def test_a_forced_cancel_stops_a_direct_request_at_once() -> None:
    engine, models = engine_for(base_settings())
    reporter = Recorder()
    run = asyncio.create_task(engine.run(job(crew("simulated/delay=30,chunk=8")), reporter))
    async with asyncio.timeout(10):
        while not reporter.of("output"):  # noqa: ASYNC110 (the recorder has nothing to wait on)
            await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 2)
    await models.aclose()
    assert reporter.kinds() == ["started", "output"]


# --------------------------------------------------------------- OpenAI-compatible


async def test_an_openai_answer_is_streamed_priced_and_asked_the_same(fake: FakeOpenAI) -> None:
    config = CrewConfig.model_validate(
        {
            **crew(OPENAI, tasks=2).model_dump(),
            "agents": [{**crew(OPENAI).agents[0].model_dump(), "temperature": 0.3}],
        }
    )
    direct, _ = await both(
        job(config), fake, Answer("Noon in Oslo.", chunk_chars=4), Answer("Late.")
    )
    assert direct.paths == {"direct": 2}
    assert direct.result is not None
    assert direct.result["final"] == "Late."
    first = direct.bodies[0]
    assert first["stream"] is True
    assert first["temperature"] == 0.3
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert "tools" not in first
    [one, two] = [data for kind, _, data in direct.steps if kind == "model_request"]
    assert two["task"].cost_usd == pytest.approx(
        (two["inputTokens"] * 1.0 + two["outputTokens"] * 2.0) / 1_000_000
    )
    assert [c for k, _, c in direct.steps if k == "output"][:3] == ["Noon", " in ", "Oslo"]
    assert one["request"] == two["request"] == 1


async def test_server_errors_are_retried_then_reported_without_the_key(fake: FakeOpenAI) -> None:
    direct, _ = await both(job(crew(OPENAI)), fake, Fail(500), Answer("fine after one retry"))
    assert direct.result is not None
    assert direct.result["final"] == "fine after one retry"
    assert len(direct.bodies) == 2
    failed, _ = await both(
        job(crew(OPENAI)),
        fake,
        Fail(503, body=f"upstream said {KEY}"),
        Fail(503, body="upstream said <<authorization>>"),
    )
    assert failed.failure is not None
    assert failed.failure[0] == "MODEL_ERROR"
    assert "answered 503 after 2 attempts: upstream said Bearer [redacted]" in failed.failure[1]
    assert KEY not in failed.failure[1]


@pytest.mark.parametrize(
    "broken",
    [
        Garbage(),
        Malformed(after_chunks=2),
        Disconnect(after_chunks=2),
        Hang(seconds=5),  # past the request's timeout, on both attempts
        Fail(400),  # not retried
    ],
    ids=["garbage", "malformed", "disconnect", "hang", "bad-request"],
)
async def test_broken_answers_fail_the_task_the_same_way(
    fake: FakeOpenAI, broken: Behaviour
) -> None:
    direct, _ = await both(
        job(crew(OPENAI)), fake, broken, broken, llm_timeout_seconds=0.3, llm_max_retries=1
    )
    assert direct.failure is not None
    assert direct.failure[0] == "MODEL_ERROR"
    assert direct.paths == {"direct": 1}


async def test_the_task_timeout_cuts_the_answer_off_the_same_way(fake: FakeOpenAI) -> None:
    hang = Hang(seconds=5, after_chunks=2, text="one two three four", chunk_chars=4)
    direct, _ = await both(
        job(crew(OPENAI)), fake, hang, task_timeout_seconds=0.5, llm_timeout_seconds=3
    )
    assert direct.failure is not None
    assert direct.failure[:2] == (
        "TASK_TIMEOUT",
        "task 'T0' failed: the task did not finish within 0.5s (CREWQL_TASK_TIMEOUT_SECONDS)",
    )
    assert texts(direct) == "one two "


async def test_an_empty_answer_is_sent_back_by_the_agent_loop_not_asked_twice(
    fake: FakeOpenAI,
) -> None:
    direct, _ = await both(job(crew(OPENAI)), fake, Answer(""), Answer("Now an answer."))
    assert direct.paths == {"replayed": 1}
    assert direct.result is not None
    assert direct.result["final"] == "Now an answer."
    requests = [data for kind, _, data in direct.steps if kind == "model_request"]
    assert [r["request"] for r in requests] == [1, 2]
    assert len(direct.bodies) == 2  # the empty answer went back with the agent's feedback
    assert len(direct.bodies[1]["messages"]) > len(direct.bodies[0]["messages"])


async def test_a_tool_call_without_tools_is_handled_by_the_agent_loop(fake: FakeOpenAI) -> None:
    call = ToolCalls([ToolCall("current_time", '{"zone": "CET"}')], text="Let me check. ")
    direct, _ = await both(job(crew(OPENAI)), fake, call, Answer("No tool, then: noon."))
    assert direct.paths == {"replayed": 1}
    assert direct.result is not None
    assert direct.result["final"] == "No tool, then: noon."
    assert texts(direct) == "Let me check. No tool, then: noon."
    roles = [m["role"] for m in direct.bodies[1]["messages"]]
    assert roles[:3] == ["system", "user", "assistant"]
    assert "tool" in roles


async def test_max_iterations_counts_the_direct_request(fake: FakeOpenAI) -> None:
    call = ToolCalls([ToolCall("current_time")])
    direct, _ = await both(job(crew(OPENAI, max_iterations=1)), fake, call, Answer("late"))
    assert direct.failure is not None
    assert direct.failure[0] == "MAX_ITERATIONS"
    assert len(direct.bodies) == 1


async def test_a_budget_crossed_by_an_odd_answer_stops_before_the_agent_loop(
    fake: FakeOpenAI,
) -> None:
    call = ToolCalls([ToolCall("current_time")])
    direct, _ = await both(job(crew(OPENAI), Budget(max_tokens=1)), fake, call, Answer("late"))
    assert direct.failure is not None
    assert direct.failure[0] == "BUDGET_EXCEEDED"
    assert direct.paths == {"direct": 1}  # it ended there
    assert len(direct.bodies) == 1


async def test_an_answer_cut_off_at_the_length_limit_is_taken_the_same_way(
    fake: FakeOpenAI,
) -> None:
    direct, _ = await both(job(crew(OPENAI)), fake, Answer("Half an ans", finish_reason="length"))
    assert direct.paths == {"direct": 1}
    assert direct.result is not None
    assert direct.result["final"] == "Half an ans"
