"""Direct delivery of shared frames (api/graphql/direct.py), with the real schema and executor.

A DirectSink is put in the context variable as the websocket handlers do; the executor is built
in that context, as Strawberry builds it in the operation's task, and must tell the sink its
group. What a sink sends, and when it declines (so the event takes the ordinary path), is
checked against frames recorded instead of a socket.
(Over real websockets, both protocols and databases: tests/e2e/test_websocket_direct.py.)
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import ExecutionResult, Executor, parse
from starlette.websockets import WebSocketDisconnect

from backend.api.graphql.direct import DIRECT, DirectSink, event_key, frame_head
from backend.api.graphql.schema import build_schema
from backend.api.graphql.shared_events import SharedEvents, SharingExecutionContext
from backend.api.graphql.types.execution import ExecutionEvent, event_type
from backend.config.settings import load_settings
from backend.core.identity import Principal, Role
from backend.schemas import ExecutionEventResponse

EXECUTION = uuid.uuid4()
WORKSPACE_A, WORKSPACE_B = uuid.uuid4(), uuid.uuid4()
EVENTS = """
subscription Events($id: ID!, $after: Int) {
  executionEvents(executionId: $id, after: $after) { executionId seq type message data }
}"""


def encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Ctx:
    principal: Principal | None
    shared_events: SharedEvents | None


class Socket:
    """Records the frames a sink sends."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))


def principal(workspace: uuid.UUID, role: Role) -> Principal:
    return Principal(workspace_id=workspace, key_id=None, key_prefix="cq_test", role=role)


def stored(seq: int) -> ExecutionEventResponse:
    return ExecutionEventResponse(
        execution_id=EXECUTION,
        seq=seq,
        type="TASK_OUTPUT",
        status="RUNNING",
        task_position=0,
        message=f"chunk {seq}",
        data={"text": f"chunk {seq}"},
        created_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def graphql_schema() -> Any:
    return build_schema(load_settings(log_to_files=False))._schema


def subscriber(
    schema: Any, ctx: Ctx, socket: Socket, operation_id: str = "1"
) -> tuple[Executor[Any], DirectSink]:
    """What a websocket operation's task holds: its sink, and the executor Strawberry builds in
    the same task (a copied context here, as each operation's task has its own)."""
    assert ctx.shared_events is not None
    head = frame_head(encode, {"id": operation_id, "type": "next"})
    sink = DirectSink(socket.send_text, head, ctx.shared_events, encode)

    def build() -> Executor[Any]:
        DIRECT.set(sink)
        built = SharingExecutionContext.build(
            schema, parse(EVENTS), context_value=ctx, raw_variable_values={"id": str(EXECUTION)}
        )
        assert isinstance(built, Executor), built
        return built

    return contextvars.copy_context().run(build), sink


def execute(executor: Executor[Any], payload: Any) -> ExecutionResult:
    result = executor.build_per_event_executor(payload).execute_operation(False)
    assert isinstance(result, ExecutionResult), result
    return result


async def test_a_group_member_gets_the_frame_another_one_executed(graphql_schema: Any) -> None:
    shared = SharedEvents()
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    first_socket, second_socket = Socket(), Socket()
    first, first_sink = subscriber(graphql_schema, Ctx(viewer, shared), first_socket, "a")
    _, second_sink = subscriber(graphql_schema, Ctx(viewer, shared), second_socket, "b")
    assert first_sink.group is not None
    assert first_sink.group == second_sink.group

    # Nobody executed event 3 yet: the sink declines, the event takes the ordinary path.
    assert not await second_sink.offer(EXECUTION, 3)
    assert second_socket.frames == []
    result = execute(first, event_type(stored(3)))
    assert await second_sink.offer(EXECUTION, 3)
    assert second_socket.frames == [{"id": "b", "type": "next", "payload": {"data": result.data}}]
    assert shared.direct == 1
    # Each sink names its own operation; the payload is encoded once for both.
    assert await first_sink.offer(EXECUTION, 3)
    assert first_socket.frames[0]["id"] == "a"
    assert first_socket.frames[0]["payload"] == second_socket.frames[0]["payload"]
    assert not await second_sink.offer(EXECUTION, 4)  # another event: not executed yet


@pytest.mark.parametrize(
    "who",
    [principal(WORKSPACE_A, Role.ADMIN), principal(WORKSPACE_B, Role.VIEWER)],
    ids=["other role", "other workspace"],
)
async def test_other_roles_and_workspaces_never_get_the_frame(
    graphql_schema: Any, who: Principal
) -> None:
    shared = SharedEvents()
    mine, _ = subscriber(graphql_schema, Ctx(principal(WORKSPACE_A, Role.VIEWER), shared), Socket())
    socket = Socket()
    _, theirs = subscriber(graphql_schema, Ctx(who, shared), socket)
    execute(mine, event_type(stored(1)))
    assert theirs.group is not None
    assert not await theirs.offer(EXECUTION, 1)
    assert socket.frames == []


async def test_an_error_result_is_never_sent_directly(graphql_schema: Any) -> None:
    shared = SharedEvents()
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    first, _ = subscriber(graphql_schema, Ctx(viewer, shared), Socket())
    socket = Socket()
    _, other = subscriber(graphql_schema, Ctx(viewer, shared), socket)
    broken = event_type(stored(5))
    broken.message = None  # type: ignore[attr-defined]  # a non-null field without a value
    result = execute(first, broken)
    assert result.errors
    assert not await other.offer(EXECUTION, 5)  # it executes the event itself, and errs itself
    assert socket.frames == []
    assert len(shared) == 0


async def test_nothing_is_sent_when_the_operation_does_not_share(graphql_schema: Any) -> None:
    off = SharedEvents(enabled=False)
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    executor, sink = subscriber(graphql_schema, Ctx(viewer, off), Socket())
    execute(executor, event_type(stored(1)))
    assert sink.group is None
    assert not await sink.offer(EXECUTION, 1)
    assert off.direct == 0


def test_the_executor_and_the_sink_key_an_event_alike() -> None:
    group: Hashable = ("shape", "values")
    as_graphql = event_type(stored(2))
    assert isinstance(as_graphql, ExecutionEvent)
    assert event_key(group, as_graphql.execution_id, 2) == event_key(group, EXECUTION, 2)


async def test_a_socket_gone_ends_the_operation_as_a_cancellation(graphql_schema: Any) -> None:
    shared = SharedEvents()
    viewer = principal(WORKSPACE_A, Role.VIEWER)
    first, _ = subscriber(graphql_schema, Ctx(viewer, shared), Socket())
    execute(first, event_type(stored(1)))

    async def gone(_: str) -> None:
        raise WebSocketDisconnect(1006)

    sink = DirectSink(gone, frame_head(encode, {"id": "1", "type": "next"}), shared, encode)
    sink.group = first._group  # type: ignore[attr-defined]
    task = asyncio.create_task(sink.offer(EXECUTION, 1))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
