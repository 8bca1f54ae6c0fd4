"""The crew configuration an execution runs: stored crews are snapshotted into it, and inline
configs are validated by it, so both paths meet the same rules."""

from __future__ import annotations

from pydantic import Field, model_validator

from backend.schemas.agent.base import AgentBase
from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText, Text
from backend.schemas.crew.base import CrewProcess
from backend.schemas.task.base import OutputSchema
from backend.schemas.tool.names import ToolList


class AgentConfig(AgentBase):
    pass


class TaskConfig(InputSchema):
    name: Name
    description: Text
    expected_output: Text
    agent: Name = Field(description="The name of one of the config's agents.")
    context: list[Name] = Field(
        default_factory=list, max_length=50, description="Names of earlier tasks it reads."
    )
    human_input: bool = Field(default=False, description="Wait for a person's approval.")
    output_schema: OutputSchema | None = Field(
        default=None, description="A JSON Schema (of an object) the answer must validate against."
    )
    tools: ToolList = Field(
        default_factory=list, description="Tools it may use besides its agent's."
    )


class CrewConfig(InputSchema):
    name: Name
    description: OptionalText = ""
    process: CrewProcess = CrewProcess.SEQUENTIAL
    agents: list[AgentConfig] = Field(min_length=1, max_length=50)
    tasks: list[TaskConfig] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _references_resolve(self) -> CrewConfig:
        agent_names = [a.name for a in self.agents]
        if len(set(agent_names)) != len(agent_names):
            raise ValueError("agent names must be unique within a crew config")
        task_names = [t.name for t in self.tasks]
        if len(set(task_names)) != len(task_names):
            raise ValueError("task names must be unique within a crew config")
        problems = []
        for position, task in enumerate(self.tasks):
            if task.agent not in agent_names:
                problems.append(f"task {task.name!r} uses agent {task.agent!r}, which is missing")
            earlier = set(task_names[:position])
            for name in task.context:
                if name not in earlier:
                    problems.append(
                        f"task {task.name!r} reads {name!r} as context, which must be an "
                        "earlier task of this crew"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def agent(self, name: str) -> AgentConfig:
        return next(a for a in self.agents if a.name == name)
