"""Helpers for execution tests: launching through GraphQL and waiting for a status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support.graphql import GraphQLClient

LAUNCH = """
mutation($input: ExecutionCreateInput!) {
  createExecution(input: $input) {
    __typename
    ... on Execution { id name status crewId parentId inputs }
    ... on Error { code message }
    ... on ValidationError { fields { field message } }
  }
}"""
CANCEL = """
mutation($id: ID!, $force: Boolean!) {
  cancelExecution(id: $id, force: $force) {
    __typename
    ... on Execution { id status }
    ... on Error { code message }
    ... on InvalidTransitionError { currentStatus }
  }
}"""
RETRY = """
mutation($id: ID!) {
  retryExecution(id: $id) {
    __typename
    ... on Execution { id status parentId }
    ... on Error { code message }
    ... on InvalidTransitionError { currentStatus }
  }
}"""
DETAIL = """
query($id: ID!) {
  execution(id: $id) {
    id name status error result crewId inputs parentId startedAt finishedAt
    tasks { position name agentName status output error }
    events(first: 1000) { seq type status taskPosition message data createdAt }
    parent { id }
    retries { id }
  }
}"""
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


async def launch(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await client.execute(LAUNCH, {"input": values}))["createExecution"]
    return result


async def detail(client: GraphQLClient, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.execute(DETAIL, {"id": execution_id}))["execution"]
    return found


async def wait_for(
    client: GraphQLClient,
    execution_id: str,
    statuses: set[str] | None = None,
    *,
    within: float = 15.0,
    event_type: str | None = None,
) -> dict[str, Any]:
    """Polls until the execution reaches one of `statuses` (default: any terminal one), or
    until an event of `event_type` is stored."""
    wanted = statuses or TERMINAL
    deadline = time.monotonic() + within
    while True:
        found = await detail(client, execution_id)
        if event_type is not None:
            if any(e["type"] == event_type for e in found["events"]):
                return found
        elif found["status"] in wanted:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last seen {found['status']}: {found}")
        await asyncio.sleep(0.02)


def assert_gapless(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
