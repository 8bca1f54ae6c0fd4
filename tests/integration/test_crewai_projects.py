"""CrewAI projects in and out: the YAML `crewai create crew` writes, imported, launched,
exported and imported again unchanged; malformed files refused with their line; unmappable keys
reported, never dropped silently; an import is all or nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette

from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas import WorkspaceCreate
from backend.schemas.crewai import CrewaiImport
from backend.services.bundle import Services
from tests.support.executions import launch, wait_for
from tests.support.graphql import GraphQLClient

PROJECT = Path(__file__).parents[1] / "fixtures/crewai/latest_ai_development"
CONFIG = PROJECT / "src/latest_ai_development/config"
AGENTS = (CONFIG / "agents.yaml").read_text()
TASKS = (CONFIG / "tasks.yaml").read_text()

IMPORT = """
mutation($input: CrewaiImportInput!) {
  importCrewaiProject(input: $input) {
    __typename
    ... on CrewaiImport {
      inputs
      warnings { file path line message }
      crew { id name tasks { name description context { name } agent { name role llm } } }
    }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
    ... on ConflictError { field }
  }
}"""
EXPORT = """
query($id: ID!) { exportCrewai(crewId: $id) { agentsYaml tasksYaml warnings { path message } } }
"""
COUNTS = "{ agents { nodes { name } } tasks { nodes { name } } crews { nodes { name } } }"


async def import_project(
    client: GraphQLClient, agents: str = AGENTS, tasks: str = TASKS, **values: Any
) -> dict[str, Any]:
    variables = {"input": {"name": "AI news", "agentsYaml": agents, "tasksYaml": tasks, **values}}
    result: dict[str, Any] = (await client.execute(IMPORT, variables))["importCrewaiProject"]
    return result


def problems(result: dict[str, Any]) -> list[tuple[str, str]]:
    assert result["__typename"] == "ValidationError", result
    return [(f["field"], f["message"]) for f in result["fields"]]


async def test_the_generated_project_imports_with_its_rules(client: GraphQLClient) -> None:
    result = await import_project(client)
    assert result["__typename"] == "CrewaiImport", result
    assert result["inputs"] == ["topic", "current_year"]
    tasks = result["crew"]["tasks"]
    assert [t["name"] for t in tasks] == ["research_task", "reporting_task"]
    # Folded text as CrewAI reads it, placeholders kept for the launch's inputs.
    assert tasks[0]["description"].startswith("Conduct a thorough research about {topic} Make")
    assert tasks[0]["agent"]["role"] == "{topic} Senior Data Researcher"
    # No `context` in CrewAI's sequential process means every earlier task's output.
    assert tasks[0]["context"] == []
    assert tasks[1]["context"] == [{"name": "research_task"}]
    assert {t["agent"]["llm"] for t in tasks} == {"simulated"}
    warnings = {(w["file"], w["path"], w["line"]) for w in result["warnings"]}
    assert warnings == {
        ("tasks.yaml", "reporting_task.output_file", 18),
        ("agents.yaml", "researcher", 1),
        ("agents.yaml", "reporting_analyst", 11),
    }


async def test_imported_project_launches_and_fills_its_inputs(
    running_app: Starlette, client: GraphQLClient
) -> None:
    crew_id = (await import_project(client))["crew"]["id"]
    missing = await launch(client, crewId=crew_id, inputs={"topic": "AI agents"})
    assert missing["__typename"] == "ValidationError"
    assert [f["field"] for f in missing["fields"]] == ["inputs.currentYear"]
    inputs = {"topic": "AI agents", "current_year": "2026"}
    execution = await launch(client, crewId=crew_id, inputs=inputs)
    done = await wait_for(client, execution["id"], within=30)
    assert done["status"] == "COMPLETED", done
    assert "Conduct a thorough research about AI agents" in done["tasks"][0]["output"]


async def test_export_then_import_yields_the_same_crew(
    client: GraphQLClient, services: Services
) -> None:
    crew_id = (await import_project(client))["crew"]["id"]
    exported = (await client.execute(EXPORT, {"id": crew_id}))["exportCrewai"]
    assert exported["warnings"] == []
    agents, tasks = yaml.safe_load(exported["agentsYaml"]), yaml.safe_load(exported["tasksYaml"])
    assert list(agents) == ["researcher", "reporting_analyst"]
    assert agents["researcher"]["llm"] == "simulated"
    assert "context" not in tasks["reporting_task"]  # CrewAI's default says it already
    assert tasks["reporting_task"]["agent"] == "reporting_analyst"

    # Into another workspace (names are per workspace), and out again: nothing changed.
    other = await services.auth.create_workspace(WorkspaceCreate(name="elsewhere"))
    again = await services.crewai.import_project(
        other.id,
        CrewaiImport(
            name="AI news", agents_yaml=exported["agentsYaml"], tasks_yaml=exported["tasksYaml"]
        ),
    )
    assert again.warnings == []
    first = await services.crews.crew_config(DEFAULT_WORKSPACE_ID, uuid.UUID(crew_id))
    second = await services.crews.crew_config(other.id, again.crew.id)
    assert first == second
    round_trip = await services.crewai.export_crew(other.id, again.crew.id)
    assert (round_trip.agents_yaml, round_trip.tasks_yaml) == (
        exported["agentsYaml"],
        exported["tasksYaml"],
    )


async def test_every_mapped_setting_survives_the_round_trip(client: GraphQLClient) -> None:
    agents = """
writer:
  role: Writer
  goal: Write about {topic}
  llm: openai/gpt-4o-mini
  temperature: 0.3
  max_iter: 7
  tools: [http_request, SerperDevTool, mcp:nowhere/search]
  api_key_secret: WRITER_KEY
editor:
  role: Editor
  goal: Edit
  backstory: |
    Two lines
    of backstory.
  llm: gpt-4o
"""
    tasks = """
draft:
  description: Draft it
  expected_output: A draft
  agent: writer
notes:
  description: Take notes
  expected_output: Notes
  agent: writer
  context: []
  tools: [current_time]
edit:
  description: Edit the draft
  expected_output: The article
  agent: editor
  context: [draft]
  human_input: true
  output_json:
    type: object
    properties: {title: {type: string}}
score:
  description: Score it
  expected_output: A score
  agent: editor
  output_json: ArticleScore
"""
    result = await import_project(client, agents, tasks)
    assert result["__typename"] == "CrewaiImport", result
    messages = {w["path"]: w["message"] for w in result["warnings"]}
    assert "imported as 'openai/gpt-4o'" in messages["editor.llm"]
    assert "gives it none" in messages["notes.context"]
    assert "cannot load Python classes" in messages["score.output_json"]
    tools = [w["message"] for w in result["warnings"] if w["path"] == "writer.tools"]
    assert len(tools) == 2
    assert "'SerperDevTool', 'mcp:nowhere/search'" not in tools[0]  # the MCP name is well-formed
    assert "'SerperDevTool' not imported" in tools[0]
    assert "no MCP server named 'nowhere'" in tools[1]
    exported = (await client.execute(EXPORT, {"id": result["crew"]["id"]}))["exportCrewai"]
    assert sorted(w["path"] for w in exported["warnings"]) == [
        "notes.context",
        "notes.tools",
        "writer.tools",
    ]
    agent_map = yaml.safe_load(exported["agentsYaml"])
    assert agent_map["writer"] == {
        "role": "Writer",
        "goal": "Write about {topic}",
        "llm": "openai/gpt-4o-mini",
        "temperature": 0.3,
        "max_iter": 7,
        "tools": ["http_request"],
        "api_key_secret": "WRITER_KEY",
    }
    assert agent_map["editor"]["backstory"] == "Two lines\nof backstory."
    assert "backstory: |-" in exported["agentsYaml"]
    task_map = yaml.safe_load(exported["tasksYaml"])
    assert task_map["notes"]["context"] == []
    assert task_map["notes"]["tools"] == ["current_time"]
    assert task_map["edit"]["context"] == ["draft"]
    assert task_map["edit"]["human_input"] is True
    assert task_map["edit"]["output_schema"] == {
        "type": "object",
        "properties": {"title": {"type": "string"}},
    }
    assert "human_input" not in task_map["draft"]
    copy = await import_project(
        client, exported["agentsYaml"], exported["tasksYaml"], name="copy", namePrefix="v2-"
    )
    assert copy["__typename"] == "CrewaiImport", copy
    assert [(t["name"], [c["name"] for c in t["context"]]) for t in copy["crew"]["tasks"]] == [
        ("v2-draft", []),
        ("v2-notes", []),
        ("v2-edit", ["v2-draft"]),
        ("v2-score", ["v2-draft", "v2-notes", "v2-edit"]),
    ]


async def test_unmappable_keys_are_warnings_with_their_line(client: GraphQLClient) -> None:
    agents = AGENTS.replace(
        "reporting_analyst:\n", "reporting_analyst:\n  verbose: true\n  allow_delegation: false\n"
    )
    tasks = TASKS + "  async_execution: false\n  guardrail: check_it\n"
    result = await import_project(client, agents + "idle:\n  role: r\n  goal: g\n", tasks)
    found = {w["path"]: (w["line"], w["message"]) for w in result["warnings"]}
    assert found["reporting_analyst.verbose"][0] == 12
    assert "do not delegate" in found["reporting_analyst.allow_delegation"][1]
    assert found["reporting_task.async_execution"][0] == 19
    assert "no such setting" in found["reporting_task.guardrail"][1]
    assert "no task uses it" in found["idle"][1]
    listed = await client.execute(COUNTS)
    assert sorted(a["name"] for a in listed["agents"]["nodes"]) == [
        "reporting_analyst",
        "researcher",
    ]


@pytest.mark.parametrize(
    ("agents", "tasks", "expected"),
    [
        ("researcher: [unclosed\n", TASKS, ("agentsYaml", "not valid YAML: line 2, column 1")),
        (AGENTS, "research_task:\n  description: x\n   bad: indent\n", ("tasksYaml", "line 3")),
        ("- researcher\n- writer\n", TASKS, ("agentsYaml", "line 1: expected a mapping")),
        (AGENTS + "researcher:\n  role: again\n", TASKS, ("agentsYaml", "line 20: 'researcher'")),
        (AGENTS, TASKS.replace("agent: researcher", "agent: nobody"), ("tasksYaml", "line 8")),
        (AGENTS, TASKS + "  context: [later]\nlater:\n  description: d\n", ("tasksYaml", "later")),
        (
            AGENTS.replace("  role: >\n    {topic} Senior Data Researcher\n", ""),
            TASKS,
            (
                "agentsYaml",
                "line 1: 'researcher' needs 'role'",
            ),
        ),
        (AGENTS, "research_task:\n  description: [1, 2]\n", ("tasksYaml", "line 2")),
        ("# only a comment\n", TASKS, ("agentsYaml", "agents.yaml is empty")),
        (AGENTS, TASKS + "  output_schema: {type: string}\n", ("tasksYaml", "line 19: report")),
        ("a: 1\n---\nb: 2\n", TASKS, ("agentsYaml", "line 2")),
    ],
)
async def test_malformed_files_are_refused_with_their_line(
    client: GraphQLClient, agents: str, tasks: str, expected: tuple[str, str]
) -> None:
    result = await import_project(client, agents, tasks)
    found = problems(result)
    assert any(f == expected[0] and expected[1] in m for f, m in found), found
    listed = await client.execute(COUNTS)
    assert listed == {"agents": {"nodes": []}, "tasks": {"nodes": []}, "crews": {"nodes": []}}


async def test_a_name_collision_imports_nothing(client: GraphQLClient) -> None:
    assert (await import_project(client))["__typename"] == "CrewaiImport"
    again = await import_project(client, name="AI news 2")
    assert again["__typename"] == "ConflictError"
    assert "agent 'researcher'" in again["message"]
    assert "task 'reporting_task'" in again["message"]
    assert again["field"] == "namePrefix"
    listed = await client.execute(COUNTS)
    assert len(listed["agents"]["nodes"]) == 2
    assert [c["name"] for c in listed["crews"]["nodes"]] == ["AI news"]
    prefixed = await import_project(client, name="AI news 2", namePrefix="b-")
    assert prefixed["__typename"] == "CrewaiImport"


async def test_export_of_an_unknown_crew_is_null(client: GraphQLClient) -> None:
    for crew_id in ("01900000-0000-7000-8000-000000000000", "not-an-id"):
        assert (await client.execute(EXPORT, {"id": crew_id}))["exportCrewai"] is None
