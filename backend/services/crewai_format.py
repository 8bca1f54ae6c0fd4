"""CrewAI's `agents.yaml` and `tasks.yaml`, read into a crew config (`crewai_export` writes them).

CrewAI keys agents and tasks by name in two YAML mappings (`crewai create crew` writes them to
`src/<project>/config/`); the order of `tasks.yaml` is the order a sequential crew runs. Reading
keeps `{placeholders}` as they are (a launch's inputs fill them, as `kickoff(inputs=...)` does),
maps every key crewql has a field for, and reports every other key as a warning with its line:
nothing is dropped silently. Export writes the same keys back, so reading an export yields the
same config.

Two CrewAI rules are kept on import: a task without `context` reads every earlier task's output
(CrewAI's sequential process gives it all of them), and an agent without `llm` gets crewql's
default model, said in a warning. PyYAML's `safe_load` machinery reads the text (no Python
objects, no code); its node tree gives the line numbers that errors and warnings name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from backend.core.errors import FieldProblem, ValidationFailed
from backend.schemas import AgentConfig, CrewConfig, TaskConfig
from backend.schemas.crewai import CrewaiWarning
from backend.schemas.tool.names import BUILTIN_TOOLS, parse_tool_name
from backend.services.execution_config import PLACEHOLDER

AGENTS_FILE = "agents.yaml"
TASKS_FILE = "tasks.yaml"

# CrewAI key -> crewql config field, in the order export writes them. `temperature` is not a
# CrewAI agent key (CrewAI sets it on the LLM object); CrewAI ignores it, crewql keeps it.
AGENT_KEYS = {
    "role": "role",
    "goal": "goal",
    "backstory": "backstory",
    "llm": "llm",
    "temperature": "temperature",
    "max_iter": "max_iterations",
    # crewql's names: the catalog's tools (CrewAI's `tools:` names Python objects of crew.py;
    # names crewql knows are kept, the others are warnings) and the provider key's secret.
    "tools": "tools",
    "api_key_secret": "api_key_secret",
}
TASK_KEYS = {
    "description": "description",
    "expected_output": "expected_output",
    "agent": "agent",
    "context": "context",
    "human_input": "human_input",
    "tools": "tools",
    # Not a CrewAI key: CrewAI's `output_json` names a Python class, which YAML cannot carry.
    # A JSON Schema given as `output_json` (a mapping) is read too.
    "output_schema": "output_schema",
}

# Why common keys have no crewql counterpart; any other unknown key gets a generic warning.
WHY_NOT = {
    "verbose": "crewql records every step as events anyway",
    "allow_delegation": "crewql agents do not delegate to each other",
    "output_file": "crewql keeps outputs with the execution; read them through the API",
    "async_execution": "crewql runs a crew's tasks one after another",
    "output_pydantic": "crewql cannot load Python classes; give output_schema, a JSON Schema",
    "output_json": "crewql cannot load Python classes; give output_schema, a JSON Schema",
    "callback": "crewql cannot load Python code",
}


@dataclass
class _Document:
    """One YAML file as a mapping of entries (agents or tasks), with the line of every key."""

    file: str
    input_field: str
    entries: dict[str, dict[str, Any]]
    lines: dict[tuple[str, ...], int]

    def line(self, *path: str) -> int | None:
        return self.lines.get(path) or self.lines.get(path[:1])

    def problem(self, message: str, *path: str) -> FieldProblem:
        line = self.line(*path)
        where = f"line {line}: " if line is not None else ""
        return FieldProblem(self.input_field, f"{self.file} {where}{message}")


@dataclass
class ParsedProject:
    config: CrewConfig
    warnings: list[CrewaiWarning] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    # (file, entry key, setting) -> line, for warnings raised after parsing.
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)


def _mark(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _read(text: str, file: str, input_field: str) -> _Document:
    """The file as a mapping of mappings; any other shape is a ValidationFailed naming the
    line. Duplicate keys are refused too (PyYAML would silently keep the last)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ValidationFailed.single(input_field, f"{file} is empty")
        document = _Document(file, input_field, {}, {})
        problems = _shape(node, document)
        if problems:
            raise ValidationFailed(problems, f"{file} is not a CrewAI {file[:-5]} file.")
        data = loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ValidationFailed.single(
            input_field, f"{file} is not valid YAML: {_mark(error)}"
        ) from None
    finally:
        loader.dispose()
    problems = []
    for key, entry in data.items():
        if entry is None:
            problems.append(document.problem(f"{key!r} has no settings", key))
        elif any(not isinstance(k, str) for k in entry):
            problems.append(document.problem(f"{key!r} has a key that is not a name", key))
        else:
            document.entries[key] = entry
    if problems:
        raise ValidationFailed(problems)
    return document


def _shape(node: yaml.Node, document: _Document) -> list[FieldProblem]:
    def at(n: yaml.Node, message: str) -> FieldProblem:
        line = n.start_mark.line + 1
        return FieldProblem(document.input_field, f"{document.file} line {line}: {message}")

    if not isinstance(node, yaml.MappingNode):
        return [at(node, "expected a mapping of names to settings")]
    problems = []
    for key_node, value in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            problems.append(at(key_node, "expected a name"))
            continue
        key = key_node.value
        if (key,) in document.lines:
            problems.append(at(key_node, f"{key!r} is defined twice"))
        document.lines[(key,)] = key_node.start_mark.line + 1
        if isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null":
            continue
        if not isinstance(value, yaml.MappingNode):
            problems.append(at(value, f"{key!r} must be a mapping of settings"))
            continue
        seen: set[str] = set()
        for sub_key, _ in value.value:
            if isinstance(sub_key, yaml.ScalarNode):
                if sub_key.value in seen:
                    problems.append(at(sub_key, f"{key}.{sub_key.value} is set twice"))
                seen.add(sub_key.value)
                document.lines[(key, sub_key.value)] = sub_key.start_mark.line + 1
    return problems


class _Reader:
    """Builds the crew config from both documents, collecting every problem and warning."""

    def __init__(self, agents: _Document, tasks: _Document, prefix: str, known: set[str]):
        self.agents, self.tasks, self.prefix, self.known = agents, tasks, prefix, known
        self.problems: list[FieldProblem] = []
        self.warnings: list[CrewaiWarning] = []

    def warn(self, document: _Document, message: str, *path: str) -> None:
        self.warnings.append(
            CrewaiWarning(document.file, ".".join(path), document.line(*path), message)
        )

    def mapped(self, document: _Document, key: str, keys: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in document.entries[key].items():
            target = keys.get(name)
            if name == "output_json" and isinstance(value, dict) and keys is TASK_KEYS:
                target = "output_schema"
            if target is None:
                why = WHY_NOT.get(name, "crewql has no such setting")
                self.warn(document, f"{name!r} is not imported: {why}.", key, name)
            elif target == "tools":
                values[target] = self.tools(document, key, value)
            else:
                values[target] = value
        return values

    def validated(
        self, model: type[BaseModel], values: dict[str, Any], document: _Document, key: str
    ) -> Any:
        back = {v: k for k, v in (AGENT_KEYS if model is AgentConfig else TASK_KEYS).items()}
        try:
            return model.model_validate(values)
        except PydanticValidationError as exc:
            for error in exc.errors():
                name = back.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else ""
                if error["type"] == "missing":
                    message = f"{key!r} needs {name!r}"
                else:
                    message = f"{key}.{name}: {error['msg'].removeprefix('Value error, ')}"
                self.problems.append(document.problem(message, key, name))
            return None

    def tools(self, document: _Document, key: str, names: Any) -> Any:
        """The names crewql's catalog has (built-ins, `mcp:<server>/<tool>`); CrewAI's own
        (Python tool objects such as SerperDevTool) cannot come along and are warnings."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return names  # validation says what is wrong
        known = [n for n in dict.fromkeys(names) if parse_tool_name(n.strip()) is not None]
        unknown = [n for n in names if n not in known]
        if unknown:
            self.warn(
                document,
                f"tool(s) {', '.join(map(repr, unknown))} not imported: crewql's tools are "
                f"{', '.join(BUILTIN_TOOLS)} and mcp:<server>/<tool>.",
                key,
                "tools",
            )
        return known

    def llm(self, key: str, values: dict[str, Any]) -> None:
        value = values.get("llm")
        if value is None:
            values.pop("llm", None)
            self.warn(
                self.agents,
                "no 'llm': it runs on crewql's default model, 'simulated'; set one to run a "
                "real model.",
                key,
            )
            return
        if not isinstance(value, str):
            return  # validation says so
        provider, slash, _ = value.partition("/")
        if not slash and value not in self.known:
            values["llm"] = f"openai/{value}"
            self.warn(
                self.agents,
                f"llm {value!r} names no provider; imported as {values['llm']!r} "
                "(LiteLLM, which CrewAI uses, takes a bare model name as OpenAI's).",
                key,
                "llm",
            )
        elif provider not in self.known:
            self.warn(
                self.agents,
                f"llm provider {provider!r} is not one this server runs "
                f"({', '.join(sorted(self.known))}); launching is refused until it is.",
                key,
                "llm",
            )

    def agent_configs(self, used: set[str]) -> list[AgentConfig]:
        configs = []
        for key in self.agents.entries:
            if key not in used:
                self.warn(self.agents, f"{key!r} is not imported: no task uses it.", key)
                continue
            values = self.mapped(self.agents, key, AGENT_KEYS)
            self.llm(key, values)
            config = self.validated(
                AgentConfig, {**values, "name": self.prefix + key}, self.agents, key
            )
            if config is not None:
                configs.append(config)
        return configs

    def task_configs(self) -> list[TaskConfig]:
        configs = []
        earlier: list[str] = []
        for key in self.tasks.entries:
            values = self.mapped(self.tasks, key, TASK_KEYS)
            agent = values.get("agent")
            if isinstance(agent, str):
                if agent not in self.agents.entries:
                    self.problems.append(
                        self.tasks.problem(
                            f"{key}.agent: no agent {agent!r} in agents.yaml", key, "agent"
                        )
                    )
                values["agent"] = self.prefix + agent
            values["context"] = self.context(key, values.get("context", earlier), earlier)
            config = self.validated(
                TaskConfig, {**values, "name": self.prefix + key}, self.tasks, key
            )
            if config is not None:
                configs.append(config)
            earlier = [*earlier, key]
        return configs

    def context(self, key: str, context: Any, earlier: list[str]) -> Any:
        if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
            return context  # validation says what is wrong
        if not context and earlier and "context" in self.tasks.entries[key]:
            self.warn(
                self.tasks,
                "an empty context: CrewAI gives such a task every earlier output, crewql "
                "gives it none.",
                key,
                "context",
            )
        for name in context:
            if name not in earlier:
                where = "a later task" if name in self.tasks.entries else "no task"
                self.problems.append(
                    self.tasks.problem(
                        f"{key}.context: {name!r} is {where}; context must name earlier tasks",
                        key,
                        "context",
                    )
                )
        return [self.prefix + name for name in context]


def parse_project(
    agents_yaml: str,
    tasks_yaml: str,
    *,
    name: str,
    description: str = "",
    prefix: str = "",
    known_providers: Iterable[str] = (),
) -> ParsedProject:
    """Both files as a crew config; every problem at once as a ValidationFailed."""
    problems: list[FieldProblem] = []
    documents = []
    for text, file, input_field in (
        (agents_yaml, AGENTS_FILE, "agents_yaml"),
        (tasks_yaml, TASKS_FILE, "tasks_yaml"),
    ):
        try:
            documents.append(_read(text, file, input_field))
        except ValidationFailed as error:
            problems += error.problems
    if problems:
        raise ValidationFailed(problems)
    agents, tasks = documents
    reader = _Reader(agents, tasks, prefix, set(known_providers))
    task_configs = reader.task_configs()
    used = {t.agent.removeprefix(prefix) for t in task_configs}
    agent_configs = reader.agent_configs(used)
    if reader.problems:
        raise ValidationFailed(reader.problems)
    try:
        config = CrewConfig(
            name=name, description=description, agents=agent_configs, tasks=task_configs
        )
    except PydanticValidationError as exc:
        raise ValidationFailed(
            [FieldProblem("input", e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
        ) from None
    warnings = sorted(reader.warnings, key=lambda w: (w.file != AGENTS_FILE, w.line or 0))
    lines = {(d.file, *path): n for d in (agents, tasks) for path, n in d.lines.items()}
    return ParsedProject(config, warnings, placeholders(config), lines)


def placeholders(config: CrewConfig) -> list[str]:
    """The {inputs} the crew's texts use, in order of first use (agents' texts too, as CrewAI's
    `fetch_inputs` reads them)."""
    texts = [t for a in config.agents for t in (a.role, a.goal, a.backstory)]
    texts += [t for task in config.tasks for t in (task.description, task.expected_output)]
    return list(dict.fromkeys(key for text in texts for key in PLACEHOLDER.findall(text)))
