"""Who may share a subscription event's result (api/graphql/shared_events.py).

The real schema and the real executor class run each event here; only the context is a plain
object with the two attributes the executor reads (who is asking, and the process's memo), so
that principals of other roles and workspaces can be set side by side without a server.
(Delivery over websockets, both protocols and databases: tests/e2e/test_websocket_executions.py.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import ExecutionResult, Executor, parse

from backend.api.graphql.schema import build_schema
from backend.api.graphql.shared_events import SharedEvents, SharingExecutionContext
from backend.api.graphql.types.execution import event_type
from backend.config.settings import load_settings
from backend.core.identity import Principal, Role
from backend.schemas import ExecutionEventResponse

EXECUTION = uuid.uuid4()
WORKSPACE_A, WORKSPACE_B = uuid.uuid4(), uuid.uuid4()
EVENTS = """
subscription Events($id: ID!, $after: Int) {
  executionEvents(executionId: $id, after: $after) { executionId seq type message data }
}"""


@dataclass
class Ctx:
    principal: Principal | None
    shared_events: SharedEvents | None


def principal(workspace: uuid.UUID, role: Role) -> Principal:
    return Principal(workspace_id=workspace, key_id=None, key_prefix="cq_test", role=role)


def event(seq: int, message: str = "hello") -> Any:
    return event_type(
        ExecutionEventResponse(
            execution_id=EXECUTION,
            seq=seq,
            type="TASK_OUTPUT",
            status="RUNNING",
            task_position=0,
            message=message,
            data={"text": message},
            created_at=datetime.now(UTC),
        )
    )


@pytest.fixture(scope="module")
def graphql_schema() -> Any:
    return build_schema(load_settings(log_to_files=False))._schema


def run(
    schema: Any, ctx: Ctx, payload: Any, document: str = EVENTS, **variables: Any
) -> dict[str, Any]:
    executor = SharingExecutionContext.build(
        schema,
        parse(document),
        context_value=ctx,
        raw_variable_values={"id": str(EXECUTION), **variables},
    )
    assert isinstance(executor, Executor), executor
    result = executor.build_per_event_executor(payload).execute_operation(False)
    assert isinstance(result, ExecutionResult), result  # no field of an event awaits
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


def test_same_selection_and_visibility_share_whatever_the_cursor(graphql_schema: Any) -> None:
    shared = SharedEvents()
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    first = run(graphql_schema, Ctx(viewer, shared), event(3), after=0)
    again = run(graphql_schema, Ctx(viewer, shared), event(3), after=2)
    assert again is first  # one execution: the second subscriber got the first one's result
    assert (shared.hits, len(shared)) == (1, 1)
    assert first["executionEvents"]["seq"] == 3
    other_event = run(graphql_schema, Ctx(viewer, shared), event(4), after=0)
    assert other_event["executionEvents"]["seq"] == 4
    assert len(shared) == 2


@pytest.mark.parametrize(
    "who",
    [principal(WORKSPACE_A, Role.ADMIN), principal(WORKSPACE_B, Role.VIEWER)],
    ids=["other role", "other workspace"],
)
def test_other_roles_and_workspaces_never_share(graphql_schema: Any, who: Principal) -> None:
    shared = SharedEvents()
    mine = run(graphql_schema, Ctx(principal(WORKSPACE_A, Role.VIEWER), shared), event(1))
    theirs = run(graphql_schema, Ctx(who, shared), event(1))
    assert theirs is not mine
    assert theirs == mine  # same event, same selection: same answer, computed separately
    assert (shared.hits, len(shared)) == (0, 2)


def test_other_selections_and_their_variables_never_share(graphql_schema: Any) -> None:
    shared = SharedEvents()
    ctx = Ctx(principal(WORKSPACE_A, Role.VIEWER), shared)
    full = run(graphql_schema, ctx, event(1))
    fewer = run(graphql_schema, ctx, event(1), document=EVENTS.replace(" message data", ""))
    assert set(fewer["executionEvents"]) == {"executionId", "seq", "type"}
    aliased = run(
        graphql_schema,
        ctx,
        event(1),
        document=EVENTS.replace("executionEvents(", "e: executionEvents("),
    )
    assert set(aliased) == {"e"}
    gated = EVENTS.replace("$after: Int)", "$after: Int, $more: Boolean!)").replace(
        " message data", " message @include(if: $more)"
    )
    shown = run(graphql_schema, ctx, event(1), document=gated, more=True)
    hidden = run(graphql_schema, ctx, event(1), document=gated, more=False)
    assert "message" in shown["executionEvents"]
    assert "message" not in hidden["executionEvents"]
    assert full["executionEvents"]["message"] == "hello"
    assert (shared.hits, len(shared)) == (0, 5)


def test_nothing_is_shared_when_sharing_is_off_or_nobody_is_known(graphql_schema: Any) -> None:
    off = SharedEvents(enabled=False)
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    run(graphql_schema, Ctx(viewer, off), event(1))
    run(graphql_schema, Ctx(viewer, off), event(1))
    assert (off.hits, len(off)) == (0, 0)
    anonymous = SharedEvents()
    run(graphql_schema, Ctx(None, anonymous), event(1))
    assert len(anonymous) == 0


def test_the_memo_is_bounded_and_encodes_each_payload_once() -> None:
    shared = SharedEvents(capacity=2)
    results = [ExecutionResult(data={"n": n}) for n in range(3)]
    for n, result in enumerate(results):
        shared.put(("g", n), result)
    assert len(shared) == 2
    assert shared.get(("g", 0)) is None  # the oldest went first
    calls: list[object] = []

    def encode(value: object) -> str:
        calls.append(value)
        return repr(value)

    assert shared.encoded_payload(results[0].data, encode) is None  # evicted: not shared
    assert shared.encoded_payload(results[2].data, encode) == "{'data': {'n': 2}}"
    assert shared.encoded_payload(results[2].data, encode) == "{'data': {'n': 2}}"
    assert shared.encoded_payload({"n": 2}, encode) is None  # equal is not the same object
    assert len(calls) == 1
    shared.put(("g", 9), ExecutionResult(data=None, errors=[]))
    assert shared.get(("g", 9)) is None
