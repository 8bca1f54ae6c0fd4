"""Runner overhead of the agent runtime: CPU per model request and per tool call.

One process, the real app (embedded runner, SQLite in a temporary directory, batched progress
writes, the in-memory bus), driven in-process through its ASGI interface; the `simulated` model
with zero delay, so what is measured is crewql and PydanticAI, not a model. CPU is this process's
(`time.process_time`): the API, the runner, PydanticAI, the event log's writes, everything.

- per model request: crews of 1 and of `--agent-tasks` tasks, each task one model request and no
  tool; (CPU(n) - CPU(1)) / (n - 1) is the cost of one more task with its request, its events
  (TASK_STARTED, TASK_OUTPUT, LLM_REQUEST, TASK_COMPLETED) and their writes: an upper bound of a
  model request's own cost.
- per tool call: one task whose script calls `current_time` `--agent-calls` times, against the
  same task without calls; the difference over the calls is one tool call with the model request
  that makes it and their events (TOOL_CALL_STARTED, TOOL_CALL_COMPLETED, LLM_REQUEST).

The same requests and tool calls are also run by PydanticAI alone (an `Agent.iter` over the same
simulated model and a trivial tool, no crewql around it): the difference is the runner's overhead.
Target: runner overhead at most 1 ms each (issue #9). Figures are medians of `--agent-repeat`
runs each.

Tasks without tools are asked in one direct model request (CREWQL_AGENT_DIRECT_REQUESTS): the
per-request figures are measured with it on and, in the same run, off (every task an agent run),
so the two can be compared on the same machine under the same load; so is the CPU of one
execution of the `--agent-tasks` crew.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.seed import graphql

TARGET_MS = 1.0
AGENT = (
    """mutation($input: AgentCreateInput!) { createAgent(input: $input) { ... on Agent { id } } }"""
)
TASK = """mutation($input: TaskCreateInput!) { createTask(input: $input) { ... on Task { id } } }"""
CREW = """mutation($input: CrewCreateInput!) { createCrew(input: $input) { ... on Crew { id } } }"""
LAUNCH = """mutation($crew: ID!) { createExecution(input: {crewId: $crew}) {
  ... on Execution { id } } }"""
STATUS = """query($id: ID!) { execution(id: $id) { status } }"""


@dataclass(frozen=True)
class AgentBenchResult:
    per_request_ms: float
    per_tool_call_ms: float
    execution_ms: float  # one execution of the crew of `tasks` tasks
    # The same with CREWQL_AGENT_DIRECT_REQUESTS=false: every task an agent run.
    agent_loop_request_ms: float
    agent_loop_execution_ms: float
    # The agent runtime alone, per task (the engine with a reporter that keeps nothing): no API,
    # no database; direct request and agent run.
    runtime_task_ms: float
    agent_loop_runtime_task_ms: float
    # The same model requests and tool calls run by PydanticAI alone (no crewql around them):
    # a task's request as a direct request and as an agent run, a tool call in an agent run.
    library_request_ms: float
    library_agent_request_ms: float
    library_tool_call_ms: float
    tasks: int
    calls: int
    repeat: int

    @property
    def overhead_request_ms(self) -> float:
        return self.per_request_ms - self.library_request_ms

    @property
    def overhead_agent_loop_request_ms(self) -> float:
        return self.agent_loop_request_ms - self.library_agent_request_ms

    @property
    def overhead_tool_call_ms(self) -> float:
        return self.per_tool_call_ms - self.library_tool_call_ms

    @property
    def passed(self) -> bool:
        return self.overhead_request_ms <= TARGET_MS and self.overhead_tool_call_ms <= TARGET_MS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent-tasks", type=int, default=10, help="tasks of the larger crew")
    parser.add_argument(
        "--agent-calls", type=int, default=10, help="tool calls of one task (its llm: 200 chars)"
    )
    parser.add_argument("--agent-repeat", type=int, default=15, help="executions per figure")


class _Client:
    """GraphQL over the app's ASGI interface, in this process."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        return await graphql(self.http, "/graphql", query, variables)


async def _crew(gql: _Client, name: str, llm: str, tasks: int, tools: list[str]) -> str:
    values = {"name": name, "role": "clerk", "goal": "time", "llm": llm, "tools": tools}
    created = (await gql(AGENT, input=values))["createAgent"]
    if "id" not in created:
        raise RuntimeError(f"createAgent refused the bench agent: {created}")
    agent = created["id"]
    ids = []
    for index in range(tasks):
        task = await gql(
            TASK,
            input={
                "name": f"{name} {index}",
                "description": "What time is it?",
                "expectedOutput": "a time",
                "agentId": agent,
            },
        )
        ids.append(task["createTask"]["id"])
    return str((await gql(CREW, input={"name": name, "taskIds": ids}))["createCrew"]["id"])


async def _cpu_of_run(gql: _Client, runner: Any, crew: str) -> float:
    """CPU seconds this process spent from the launch to COMPLETED. Waiting looks at the
    runner's count of running executions (no queries meanwhile: they would be measured too)."""
    began = time.process_time()
    execution = (await gql(LAUNCH, crew=crew))["createExecution"]["id"]
    # Polling in memory: the runner offers no event to wait on, and a GraphQL poll would be
    # measured as runner CPU.
    while runner.active == 0:  # noqa: ASYNC110 (not claimed yet)
        await asyncio.sleep(0.001)
    while runner.active:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    spent = time.process_time() - began
    status = (await gql(STATUS, id=execution))["execution"]["status"]
    if status != "COMPLETED":
        raise RuntimeError(f"bench execution {execution} ended {status}")
    return spent


async def _library_run(script: str) -> float:
    """CPU of one agent run by PydanticAI alone: the simulated model, a trivial tool."""
    from pydantic_ai import Agent, FunctionToolset

    from backend.runner.agent.simulated import simulated_model

    def current_time() -> str:
        """The time now."""
        return "12:00"

    began = time.process_time()
    agent = Agent(simulated_model(script, 0.0, 10_000), instructions="You are a clerk.")
    async with agent.iter(
        "Task: What time is it?", toolsets=[FunctionToolset([current_time])]
    ) as run:
        async for node in run:
            if Agent.is_model_request_node(node) or Agent.is_call_tools_node(node):
                async with node.stream(run.ctx) as stream:
                    async for _event in stream:
                        pass
    return time.process_time() - began


async def _library_direct() -> float:
    """CPU of one direct model request by PydanticAI alone, over the simulated model."""
    from pydantic_ai.direct import model_request_stream
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    from backend.runner.agent.simulated import simulated_model

    began = time.process_time()
    ask = ModelRequest(parts=[UserPromptPart("Task: What time is it?")], instructions="A clerk.")
    async with model_request_stream(simulated_model("", 0.0, 10_000), [ask]) as stream:
        async for _event in stream:
            pass
    return time.process_time() - began


class _Discard:
    """A Reporter that keeps nothing: what is measured is the engine and the agent runtime."""

    async def task_started(self, position: int) -> None: ...

    async def output(self, position: int, chunk: str) -> None: ...

    async def model_request(self, position: int, task_usage: Any, data: dict[str, Any]) -> None: ...

    async def tool_call(self, position: int, ok: bool | None, data: dict[str, Any]) -> None: ...

    async def task_completed(self, position: int, output: str, output_json: Any = None) -> None: ...

    async def task_failed(self, position: int, error: str, output: str) -> None: ...

    def check_cancelled(self) -> None: ...


async def _runtime_task(direct: bool, tasks: int, repeat: int) -> float:
    """CPU seconds per task of the engine running a crew of `tasks` simulated tasks."""
    import uuid

    from backend.config.settings import load_settings
    from backend.runner.agent.models import ModelFactory
    from backend.runner.agent.setup import TaskSetup
    from backend.runner.engine import Job, SequentialEngine
    from backend.schemas import CrewConfig

    settings = load_settings(
        log_to_files=False,
        simulated_delay_seconds=0,
        simulated_chunk_chars=10_000,
        agent_direct_requests=direct,
    )
    engine = SequentialEngine(TaskSetup(ModelFactory(settings), settings))
    agent = {"name": "Clerk", "role": "clerk", "goal": "time", "llm": "simulated"}
    task = {"description": "What time is it?", "expected_output": "a time", "agent": "Clerk"}
    config = CrewConfig.model_validate(
        {
            "name": "Bench",
            "agents": [agent],
            "tasks": [{**task, "name": f"T{i}"} for i in range(tasks)],
        }
    )
    job = Job(uuid.uuid4(), config, {})

    async def once() -> float:
        began = time.process_time()
        await engine.run(job, _Discard())
        return (time.process_time() - began) / tasks

    return await _median(once, repeat)


async def _median(run: Callable[[], Awaitable[float]], repeat: int) -> float:
    await run()  # warm-up: first-use imports and caches
    return statistics.median([await run() for _ in range(repeat)])


async def _crewql(
    directory: str, direct: bool, tasks: int, calls: int, repeat: int
) -> tuple[float, float, float]:
    """CPU seconds of one execution of a 1-task crew, an n-task crew and a task calling tools."""
    from backend.config.settings import load_settings
    from backend.main import create_app

    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{Path(directory) / f'bench-{direct}.db'}",
        auth_enabled=False,
        log_to_files=False,
        log_level="WARNING",
        simulated_delay_seconds=0,
        simulated_chunk_chars=10_000,
        runner_poll_interval_seconds=0.05,
        agent_direct_requests=direct,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
        app.router.lifespan_context(app),
    ):
        gql = _Client(http)
        runner = app.state.runner
        one = await _crew(gql, "one", "simulated", 1, [])
        many = await _crew(gql, "many", "simulated", tasks, [])
        script = ",".join(["call=current_time"] * calls)
        tools = await _crew(gql, "tools", f"simulated/{script}", 1, ["current_time"])
        cpu_one = await _median(lambda: _cpu_of_run(gql, runner, one), repeat)
        cpu_many = await _median(lambda: _cpu_of_run(gql, runner, many), repeat)
        cpu_tools = await _median(lambda: _cpu_of_run(gql, runner, tools), repeat)
    await app.state.engine.dispose()
    return cpu_one, cpu_many, cpu_tools


async def measure(tasks: int, calls: int, repeat: int) -> AgentBenchResult:
    with tempfile.TemporaryDirectory(prefix="crewql-bench-agents-") as directory:
        loop_one, loop_many, _ = await _crewql(directory, False, tasks, 1, repeat)
        cpu_one, cpu_many, cpu_tools = await _crewql(directory, True, tasks, calls, repeat)
    script = ",".join(["call=current_time"] * calls)
    loop_task = await _runtime_task(False, tasks, repeat)
    direct_task = await _runtime_task(True, tasks, repeat)
    lib_direct = await _median(_library_direct, repeat)
    lib_one = await _median(lambda: _library_run(""), repeat)
    lib_tools = await _median(lambda: _library_run(script), repeat)
    return AgentBenchResult(
        per_request_ms=(cpu_many - cpu_one) / (tasks - 1) * 1000,
        per_tool_call_ms=(cpu_tools - cpu_one) / calls * 1000,
        execution_ms=cpu_many * 1000,
        agent_loop_request_ms=(loop_many - loop_one) / (tasks - 1) * 1000,
        agent_loop_execution_ms=loop_many * 1000,
        runtime_task_ms=direct_task * 1000,
        agent_loop_runtime_task_ms=loop_task * 1000,
        library_request_ms=lib_direct * 1000,
        library_agent_request_ms=lib_one * 1000,
        library_tool_call_ms=(lib_tools - lib_one) / calls * 1000,
        tasks=tasks,
        calls=calls,
        repeat=repeat,
    )


def run(args: argparse.Namespace) -> AgentBenchResult:
    result = asyncio.run(measure(args.agent_tasks, args.agent_calls, args.agent_repeat))
    verdict = "PASS" if result.passed else "FAIL"
    print(
        f"agent runtime, CPU ms (median of {result.repeat} runs, SQLite, simulated, zero delay)\n"
        f"  per model request (a task with one): {result.per_request_ms:.3f} in all, "
        f"{result.library_request_ms:.3f} of it PydanticAI's direct request, "
        f"{result.overhead_request_ms:.3f} crewql's runner\n"
        f"    as agent runs (CREWQL_AGENT_DIRECT_REQUESTS=false): "
        f"{result.agent_loop_request_ms:.3f} in all, "
        f"{result.library_agent_request_ms:.3f} of it PydanticAI's run, "
        f"{result.overhead_agent_loop_request_ms:.3f} crewql's runner\n"
        f"  per execution of {result.tasks} tasks: {result.execution_ms:.3f} "
        f"(as agent runs: {result.agent_loop_execution_ms:.3f})\n"
        f"  per task, the engine and agent runtime alone (no API, no database): "
        f"{result.runtime_task_ms:.3f} (as agent runs: {result.agent_loop_runtime_task_ms:.3f})\n"
        f"  per tool call (with its request):    {result.per_tool_call_ms:.3f} in all, "
        f"{result.library_tool_call_ms:.3f} of it PydanticAI's run, "
        f"{result.overhead_tool_call_ms:.3f} crewql's runner\n"
        f"  target: runner overhead <= {TARGET_MS:g} ms each: {verdict}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__)
    add_arguments(parser)
    result = run(parser.parse_args())
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
