"""CrewaiService: a CrewAI project becomes agents, tasks and a crew, and a crew becomes one.

Import writes everything in one transaction: a project that cannot be imported whole leaves
nothing behind. Names are unique per workspace while CrewAI's keys are unique per project, so a
collision is a Conflict that lists every taken name (`name_prefix` avoids it). The YAML itself
is read and written by `crewai_format`; this module owns the storage side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

from backend.core.errors import Conflict
from backend.repositories.unit_of_work import UnitOfWork, UnitOfWorkFactory
from backend.schemas import CrewConfig, CrewResponse
from backend.schemas.crewai import CrewaiImport, CrewaiImportResult, CrewaiProject, CrewaiWarning
from backend.schemas.execution.config import AgentConfig, TaskConfig
from backend.services.crew_service import CrewService, ToolNames
from backend.services.crewai_export import dump_project
from backend.services.crewai_format import AGENTS_FILE, TASKS_FILE, ParsedProject, parse_project
from backend.services.execution_config import AGENT_FIELDS, TASK_FIELDS

T = TypeVar("T", AgentConfig, TaskConfig)


class CrewaiService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        crews: CrewService,
        known_providers: Callable[[], Iterable[str]],
        tools: ToolNames | None = None,
    ) -> None:
        self._uow = uow
        self._crews = crews
        self._known_providers = known_providers
        self._tools = tools

    async def import_project(
        self, workspace_id: uuid.UUID, data: CrewaiImport
    ) -> CrewaiImportResult:
        parsed = parse_project(
            data.agents_yaml,
            data.tasks_yaml,
            name=data.name,
            description=data.description,
            prefix=data.name_prefix or "",
            known_providers=self._known_providers(),
        )
        config = await self._offered_tools_only(workspace_id, parsed, data.name_prefix or "")
        async with self._uow() as uow:
            await self._refuse_taken_names(uow, workspace_id, config)
            crew = await self._store(uow, workspace_id, config)
        return CrewaiImportResult(crew=crew, warnings=parsed.warnings, inputs=parsed.inputs)

    async def _offered_tools_only(
        self, workspace_id: uuid.UUID, parsed: ParsedProject, prefix: str
    ) -> CrewConfig:
        """MCP tools must be offered by a server of the workspace (asked live, before the
        transaction, as createAgent does); the ones that are not are left out, with a warning,
        rather than failing the whole project."""
        config, tools = parsed.config, self._tools
        if tools is None:
            return config

        async def keep(item: T, file: str, checker: ToolNames = tools) -> T:
            if not any(name.startswith("mcp:") for name in item.tools):
                return item
            problems = await checker.check_names(workspace_id, item.tools, "tools")
            bad = {int(p.field.rpartition(".")[2]) for p in problems}
            if not bad:
                return item
            key = item.name.removeprefix(prefix)
            parsed.warnings.append(
                CrewaiWarning(
                    file,
                    f"{key}.tools",
                    parsed.lines.get((file, key, "tools")),
                    "not imported: " + "; ".join(p.message for p in problems) + ".",
                )
            )
            return item.model_copy(
                update={"tools": [n for i, n in enumerate(item.tools) if i not in bad]}
            )

        agents = [await keep(a, AGENTS_FILE) for a in config.agents]
        tasks = [await keep(t, TASKS_FILE) for t in config.tasks]
        return config.model_copy(update={"agents": agents, "tasks": tasks})

    async def export_crew(self, workspace_id: uuid.UUID, crew_id: uuid.UUID) -> CrewaiProject:
        config = await self._crews.crew_config(workspace_id, crew_id)
        agents_yaml, tasks_yaml, warnings = dump_project(config)
        return CrewaiProject(agents_yaml=agents_yaml, tasks_yaml=tasks_yaml, warnings=warnings)

    @staticmethod
    async def _refuse_taken_names(
        uow: UnitOfWork, workspace_id: uuid.UUID, config: CrewConfig
    ) -> None:
        taken = [
            f"{kind} {name!r}"
            for kind, repository, names in (
                ("crew", uow.crews, [config.name]),
                ("agent", uow.agents, [a.name for a in config.agents]),
                ("task", uow.tasks, [t.name for t in config.tasks]),
            )
            for name in names
            if await repository.name_taken(workspace_id, name)
        ]
        if taken:
            field = "name" if taken == [f"crew {config.name!r}"] else "name_prefix"
            raise Conflict(
                f"Already in this workspace: {', '.join(taken)}. Import under another name "
                "or with a namePrefix.",
                field,
            )

    @staticmethod
    async def _store(uow: UnitOfWork, workspace_id: uuid.UUID, config: CrewConfig) -> CrewResponse:
        agent_ids: dict[str, uuid.UUID] = {}
        for agent in config.agents:
            row = await uow.agents.add(workspace_id, agent.model_dump(include=set(AGENT_FIELDS)))
            agent_ids[agent.name] = row.id
        task_ids: dict[str, uuid.UUID] = {}
        for task in config.tasks:
            values = task.model_dump(include=set(TASK_FIELDS))
            row = await uow.tasks.add(workspace_id, {**values, "agent_id": agent_ids[task.agent]})
            task_ids[task.name] = row.id
            await uow.tasks.set_context(workspace_id, row.id, [task_ids[c] for c in task.context])
        crew = await uow.crews.add(
            workspace_id,
            {"name": config.name, "description": config.description, "process": config.process},
        )
        ordered = [task_ids[t.name] for t in config.tasks]
        await uow.crews.set_tasks(workspace_id, crew.id, ordered)
        return CrewResponse.model_validate({**crew._mapping, "task_ids": ordered})
