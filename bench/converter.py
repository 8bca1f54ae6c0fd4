"""`python -m bench converter`: CPU per object of the one response-schema → Strawberry converter
(`mirror.to_type`), against the same mapping written as loops over field lists.

The read path converts every object it returns (600 on a page of 100 crews), so this is a cost
per request. Both are measured interleaved in one process, best of several rounds, so a busy
machine moves both alike; the ratio is the figure to compare.
"""

from __future__ import annotations

import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import BaseModel

from backend.api.graphql.mirror import to_type
from backend.api.graphql.types.task import Task
from backend.schemas import TaskResponse
from bench.output import say


def looped(gql_type: type[Any], schema: type[BaseModel]) -> Callable[[BaseModel], Any]:
    """The mapping as plain loops (what `to_type` was before it was compiled)."""
    ids = [n for n, f in schema.model_fields.items() if f.annotation is uuid.UUID]
    id_lists = [n for n, f in schema.model_fields.items() if f.annotation == list[uuid.UUID]]

    def convert(instance: BaseModel) -> Any:
        values = dict(instance.__dict__)
        for name in ids:
            values[name] = str(values[name])
        for name in id_lists:
            values[name] = [str(v) for v in values[name]]
        return gql_type(**values)

    return convert


def sample() -> TaskResponse:
    now = datetime.now(UTC)
    values: dict[str, Any] = dict.fromkeys(TaskResponse.model_fields)
    values |= {
        "id": uuid.uuid4(),
        "name": "n",
        "description": "d",
        "expected_output": "o",
        "agent_id": uuid.uuid4(),
        "context_task_ids": [uuid.uuid4(), uuid.uuid4()],
        "human_input": False,
        "created_at": now,
        "updated_at": now,
    }
    return TaskResponse.model_construct(**values)


def suite(rounds: int = 7, number: int = 20_000) -> int:
    instance = sample()
    converters = {"to_type": to_type(Task, TaskResponse), "loops": looped(Task, TaskResponse)}
    best = dict.fromkeys(converters, float("inf"))
    for _ in range(rounds):
        for label, convert in converters.items():
            seconds = timeit.timeit(partial(convert, instance), number=number)
            best[label] = min(best[label], seconds / number * 1e6)
    for label, micros in best.items():
        say(f"  {label:8s} {micros:6.2f} µs per object (best of {rounds} x {number:,})")
    say(f"  to_type / loops: {best['to_type'] / best['loops']:.2f}")
    return 0
