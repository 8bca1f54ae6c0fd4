"""What an execution runs: the crew snapshot, its {placeholders}, and a readable name."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from backend.core.errors import FieldProblem
from backend.schemas import AgentResponse, CrewConfig, CrewResponse, TaskResponse
from backend.schemas.execution.config import AgentConfig, TaskConfig

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# An agent's and a task's own fields, stored and snapshotted alike, as the config declares them
# (a task's agent and context are names in a config, ids in the tables).
AGENT_FIELDS = tuple(AgentConfig.model_fields)
TASK_FIELDS = tuple(f for f in TaskConfig.model_fields if f not in ("agent", "context"))


def snapshot_of(
    crew: CrewResponse, tasks: dict[Any, TaskResponse], agents: dict[Any, AgentResponse]
) -> CrewConfig:
    """A stored crew as the self-contained config an execution keeps."""
    ordered = [tasks[tid] for tid in crew.task_ids]
    agent_ids = list(dict.fromkeys(t.agent_id for t in ordered))
    names = {tid: tasks[tid].name for tid in crew.task_ids}
    return CrewConfig.model_validate(
        {
            "name": crew.name,
            "description": crew.description,
            "process": crew.process,
            "agents": [{f: getattr(agents[aid], f) for f in AGENT_FIELDS} for aid in agent_ids],
            "tasks": [
                {
                    **{f: getattr(t, f) for f in TASK_FIELDS},
                    "agent": agents[t.agent_id].name,
                    "context": [names[c] for c in t.context_task_ids],
                }
                for t in ordered
            ],
        }
    )


def missing_inputs(config: CrewConfig, inputs: dict[str, Any]) -> list[FieldProblem]:
    # Agents' texts too: CrewAI fills {placeholders} in role, goal and backstory as well.
    texts = [(f"agent {a.name!r}", t) for a in config.agents for t in (a.role, a.goal, a.backstory)]
    texts += [
        (f"task {t.name!r}", text)
        for t in config.tasks
        for text in (t.description, t.expected_output)
    ]
    problems = [
        FieldProblem(f"inputs.{key}", f"missing input {key!r} used by {user}")
        for user, text in texts
        for key in PLACEHOLDER.findall(text)
        if key not in inputs
    ]
    first: dict[str, FieldProblem] = {}
    for problem in problems:
        first.setdefault(problem.field, problem)
    return list(first.values())


def fill(text: str, inputs: dict[str, Any]) -> str:
    """Replaces {key} with its input; other braces are left alone (no str.format surprises)."""
    return PLACEHOLDER.sub(
        lambda m: _as_text(inputs[m.group(1)]) if m.group(1) in inputs else m.group(0), text
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def descriptive_name(config: CrewConfig, inputs: dict[str, Any], limit: int = 80) -> str:
    """e.g. "Blog crew · Research · topic=AI agents": crew, first task, the first inputs."""
    parts = [config.name, config.tasks[0].name]
    shown = [f"{k}={_as_text(v)}" for k, v in list(inputs.items())[:2]]
    if shown:
        parts.append(", ".join(shown))
    name = " · ".join(parts)
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def request_hash(
    crew_id: Any, config: CrewConfig | None, inputs: dict[str, Any], name: str | None
) -> str:
    """Identifies a launch request, so a reused idempotency key with other content is caught."""
    payload = {
        "crew_id": str(crew_id) if crew_id else None,
        "crew": config.model_dump(mode="json") if config else None,
        "inputs": inputs,
        "name": name,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()
