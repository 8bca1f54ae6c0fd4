"""Driving the sequential engine without a server: a Reporter that records what it is told, crews
of one agent, settings for the simulated model or the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic_ai import FunctionToolset, ModelRetry
from pydantic_ai.toolsets import AbstractToolset

from backend.config.settings import ModelPrice, Settings, load_settings
from backend.core.usage import Usage
from backend.runner.agent.models import ModelFactory
from backend.runner.agent.setup import TaskSetup
from backend.runner.agent.usage import Budget
from backend.runner.engine import Cancelled, Job, SequentialEngine
from backend.runner.tools import Toolbox
from backend.schemas import CrewConfig
from tests.support.fake_openai import FakeOpenAI

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
