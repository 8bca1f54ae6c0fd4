"""The reference: a bare Strawberry app, no extensions, no caches, no database.

It serves `{ hello }` and the shape of query (b), `crews(first:) { edges { node { ... } } }`, from
plain dataclasses built once at start-up. `create_app` is the factory uvicorn runs (bench.serve).
"""

from __future__ import annotations

import uuid

import strawberry
from strawberry.asgi import GraphQL

from bench.data import crew_spec

CREW_COUNT = 110


@strawberry.type
class Agent:
    id: strawberry.ID
    name: str
    role: str


@strawberry.type
class Task:
    id: strawberry.ID
    name: str
    description: str
    expected_output: str
    agent: Agent


@strawberry.type
class Crew:
    id: strawberry.ID
    name: str
    description: str
    tasks: list[Task]
    agents: list[Agent]


@strawberry.type
class CrewEdge:
    node: Crew


@strawberry.type
class CrewConnection:
    edges: list[CrewEdge]


def _new_id() -> strawberry.ID:
    return strawberry.ID(str(uuid.uuid4()))


def build_crews(count: int = CREW_COUNT) -> list[Crew]:
    crews = []
    for n in range(count):
        spec = crew_spec(n)
        agents = [Agent(id=_new_id(), name=a.name, role=a.role) for a in spec.agents]
        tasks = [
            Task(
                id=_new_id(),
                name=t.name,
                description=t.description,
                expected_output=t.expected_output,
                agent=agents[t.agent],
            )
            for t in spec.tasks
        ]
        crews.append(
            Crew(
                id=_new_id(),
                name=spec.name,
                description=spec.description,
                tasks=tasks,
                agents=agents,
            )
        )
    return crews


CREWS = build_crews()
CREWS_BY_ID = {crew.id: crew for crew in CREWS}
_PAGES: dict[int, CrewConnection] = {}


def page(first: int) -> CrewConnection:
    """The connection for a page size, built on first use and kept (in practice: one, 100)."""
    found = _PAGES.get(first)
    if found is None:
        found = _PAGES[first] = CrewConnection(edges=[CrewEdge(node=c) for c in CREWS[:first]])
    return found


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "Hello World"

    @strawberry.field
    def crews(self, first: int = 20) -> CrewConnection:
        return page(first)

    @strawberry.field
    def crew(self, id: strawberry.ID) -> Crew | None:
        return CREWS_BY_ID.get(id)


def create_app() -> GraphQL[None, None]:
    return GraphQL(strawberry.Schema(query=Query))
