"""The bench's data set, described once: the seed sends it to our server, the bare app keeps it.

Both servers therefore answer query (b) with the same strings, so their responses have about the
same size (ids differ: ours are the server's UUIDs, the bare app makes its own).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentSpec:
    name: str
    role: str
    goal: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    expected_output: str
    agent: int  # index into CrewSpec.agents
    context: tuple[int, ...]  # indexes of earlier tasks of the same crew


@dataclass(frozen=True)
class CrewSpec:
    name: str
    description: str
    agents: tuple[AgentSpec, AgentSpec]
    tasks: tuple[TaskSpec, TaskSpec, TaskSpec]


def crew_spec(n: int) -> CrewSpec:
    """Crew number n: two agents, three tasks; task 2 reads task 1, task 3 reads tasks 1 and 2."""
    researcher = AgentSpec(
        name=f"bench-researcher-{n:04d}",
        role="Senior research analyst",
        goal=f"Find what matters about topic {n} and cite sources",
    )
    writer = AgentSpec(
        name=f"bench-writer-{n:04d}",
        role="Technical writer",
        goal=f"Explain topic {n} to a newcomer in plain words",
    )
    tasks = (
        TaskSpec(
            name=f"bench-research-{n:04d}",
            description=f"Collect the ten most relevant recent sources on topic {n}.",
            expected_output="A bullet list of sources, each with a one-line summary.",
            agent=0,
            context=(),
        ),
        TaskSpec(
            name=f"bench-outline-{n:04d}",
            description=f"Draft an outline for an article on topic {n} from the sources.",
            expected_output="An outline with five to seven sections.",
            agent=1,
            context=(0,),
        ),
        TaskSpec(
            name=f"bench-article-{n:04d}",
            description=f"Write the article on topic {n} following the outline.",
            expected_output="An article of about 800 words in Markdown.",
            agent=1,
            context=(0, 1),
        ),
    )
    return CrewSpec(
        name=f"bench-crew-{n:04d}",
        description=f"Researches topic {n} and writes an article about it.",
        agents=(researcher, writer),
        tasks=tasks,
    )
