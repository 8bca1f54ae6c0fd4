"""Everything one task's agent run needs, gathered before its first model request: the model
(with the provider key from the workspace's secrets), the toolsets of the tools its agent and the
task list, the prompt, the limits, and what must never be shown (the secret values in play)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from backend.config.settings import Settings
from backend.runner.agent.errors import Redactor
from backend.runner.agent.llm import LlmRef
from backend.runner.agent.models import ModelFactory
from backend.runner.agent.prompt import instructions, task_prompt
from backend.runner.agent.task_spec import TaskLimits, TaskRun
from backend.runner.tools import Toolbox, ToolSource, build_toolsets
from backend.schemas import AgentConfig, TaskConfig
from backend.services.secret_service import SecretMissing, provider_secret_name

# The toolsets for the tools a task names (its agent's, then its own).
ToolboxSource = Callable[[uuid.UUID, Sequence[str]], Awaitable[Toolbox]]


class SecretReader(Protocol):
    async def values(self, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, str]: ...


async def no_tools(workspace_id: uuid.UUID, names: Sequence[str]) -> Toolbox:
    return Toolbox([])


def catalog_tools(source: ToolSource, settings: Settings) -> ToolboxSource:
    """The tool catalog's toolsets (built-ins and MCP servers), each call guarded."""

    async def toolbox(workspace_id: uuid.UUID, names: Sequence[str]) -> Toolbox:
        return await build_toolsets(workspace_id, names, source=source, settings=settings)

    return toolbox


def tool_names(agent: AgentConfig, task: TaskConfig) -> list[str]:
    return list(dict.fromkeys([*agent.tools, *task.tools]))


class TaskSetup:
    def __init__(
        self,
        models: ModelFactory,
        settings: Settings,
        tools: ToolboxSource = no_tools,
        secrets: SecretReader | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.tools = tools
        self.secrets = secrets

    async def provider_key(self, workspace_id: uuid.UUID, agent: AgentConfig) -> str | None:
        """The agent's provider key: the workspace secret it names (by default the provider's,
        e.g. OPENAI_API_KEY), else the server's key from settings. Raises SecretMissing when
        neither is there (and the provider needs a key)."""
        name = provider_secret_name(agent.llm, agent.api_key_secret)
        if name is None:
            return None
        if self.secrets is not None:
            try:
                return (await self.secrets.values(workspace_id, [name]))[name]
            except SecretMissing:
                if agent.api_key_secret:  # named on purpose: no silent fallback
                    raise
        key = self.models.default_key(LlmRef.parse(agent.llm).provider)
        if key is None:
            raise SecretMissing(name)
        return key

    async def build(
        self,
        workspace_id: uuid.UUID,
        agent: AgentConfig,
        task: TaskConfig,
        inputs: dict[str, Any],
        context: list[tuple[str, str]],
        again: tuple[str, str] | None = None,
    ) -> TaskRun:
        """`again`: the task is redone, (its previous answer, what the model is told about it)."""
        settings = self.settings
        key = await self.provider_key(workspace_id, agent)
        model = self.models.resolve(agent.llm, key)
        toolbox = await self.tools(workspace_id, tool_names(agent, task))
        return TaskRun(
            agent_name=agent.name,
            instructions=instructions(agent, inputs),
            prompt=task_prompt(task, inputs, context),
            again=again,
            output_schema=task.output_schema,
            model=model,
            temperature=agent.temperature,
            toolsets=toolbox.toolsets,
            tool_names=toolbox.names,
            limits=TaskLimits(
                max_requests=agent.max_iterations or settings.agent_max_requests,
                timeout_seconds=settings.task_timeout_seconds,
                tool_preview_chars=settings.tool_event_preview_chars,
                output_retries=settings.output_retries,
            ),
            prices=settings.model_prices,
            redact=Redactor([*model.secrets, *toolbox.secret_values]),
            direct=settings.agent_direct_requests,
        )
