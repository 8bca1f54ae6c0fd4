"""A crew config written as CrewAI's `agents.yaml` and `tasks.yaml`.

The keys are those `crewai_format` reads (its AGENT_KEYS and TASK_KEYS), so importing an export
yields the same config. Defaults are left out, as a person writing the files would; so is a
task's `context` when it is CrewAI's default (every earlier task).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import BaseModel

from backend.schemas import CrewConfig
from backend.schemas.crewai import CrewaiWarning
from backend.services.crewai_format import AGENT_KEYS, AGENTS_FILE, TASK_KEYS, TASKS_FILE


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks, as people write them in CrewAI projects."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _entry(config: BaseModel, keys: dict[str, str], skip: Iterable[str] = ()) -> dict[str, Any]:
    values = {}
    for key, name in keys.items():
        value = getattr(config, name)
        if key in skip or value is None or value in ("", []) or value is False:
            continue  # a default: CrewAI's own, or crewql's
        values[key] = value
    return values


def dump_project(config: CrewConfig) -> tuple[str, str, list[CrewaiWarning]]:
    """The crew as agents.yaml and tasks.yaml text, and what CrewAI will read differently."""
    warnings = [
        CrewaiWarning(
            file,
            f"{item.name}.tools",
            None,
            f"names crewql's tools ({', '.join(item.tools)}); CrewAI loads a project only when "
            "its crew.py defines tools of these names.",
        )
        for file, items in ((AGENTS_FILE, config.agents), (TASKS_FILE, config.tasks))
        for item in items
        if item.tools
    ]
    agents = {a.name: _entry(a, AGENT_KEYS) for a in config.agents}
    tasks: dict[str, dict[str, Any]] = {}
    for position, task in enumerate(config.tasks):
        earlier = [t.name for t in config.tasks[:position]]
        # No `context` key means "every earlier task" in CrewAI; write it only when it differs.
        entry = _entry(task, TASK_KEYS, skip=("context",))
        if task.context != earlier:
            entry["context"] = list(task.context)
        if earlier and not task.context:
            warnings.append(
                CrewaiWarning(
                    TASKS_FILE,
                    f"{task.name}.context",
                    None,
                    "reads no earlier output in crewql; CrewAI gives a task with an empty "
                    "context every earlier output.",
                )
            )
        tasks[task.name] = entry
    return _dump(agents), _dump(tasks), warnings


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
