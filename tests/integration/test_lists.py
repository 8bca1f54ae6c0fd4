"""Relay connections: newest first, opaque cursors, capped pages, filters by name and time."""

from __future__ import annotations

import base64

from backend.config.settings import Settings
from tests.support.factories import create_agent, create_task
from tests.support.graphql import GraphQLClient

PAGE = """
query($first: Int, $after: String, $filter: NameTimeFilter) {
  agents(first: $first, after: $after, filter: $filter) {
    edges { cursor node { name createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_pages_walk_newest_first_without_gaps(client: GraphQLClient) -> None:
    names = [f"agent-{i:02d}" for i in range(7)]
    for name in names:
        await create_agent(client, name)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await client.execute(PAGE, {"first": 3, "after": after}))["agents"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(names))
    assert pages == 3


async def test_cursors_are_opaque_and_bad_ones_are_rejected(client: GraphQLClient) -> None:
    await create_agent(client, "a")
    page = (await client.execute(PAGE, {"first": 1}))["agents"]
    cursor = page["edges"][0]["cursor"]
    assert "-" not in cursor  # not a raw UUID
    for bad in ("garbage", base64.urlsafe_b64encode(b"c1:nope").decode(), ""):
        response = await client.post(PAGE, {"after": bad})
        errors = response.json()["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "cursor" in errors[0]["message"]


async def test_page_size_is_capped(client: GraphQLClient, settings: Settings) -> None:
    response = await client.post(PAGE, {"first": settings.max_page_size + 1})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert str(settings.max_page_size) in error["message"]
    assert (await client.post(PAGE, {"first": -1})).json()["errors"]
    ok = await client.execute(PAGE, {"first": settings.max_page_size})
    assert ok["agents"]["edges"] == []


async def test_filters_by_name_and_time(client: GraphQLClient) -> None:
    for name in ("Alpha Analyst", "beta analyst", "Gamma 100%_done"):
        await create_agent(client, name)
    by_name = await client.execute(PAGE, {"filter": {"nameContains": "ANALYST"}})
    assert sorted(e["node"]["name"] for e in by_name["agents"]["edges"]) == [
        "Alpha Analyst",
        "beta analyst",
    ]
    literal = await client.execute(PAGE, {"filter": {"nameContains": "%_"}})
    assert [e["node"]["name"] for e in literal["agents"]["edges"]] == ["Gamma 100%_done"]
    everything = (await client.execute(PAGE, {}))["agents"]["edges"]
    middle = everything[1]["node"]["createdAt"]
    newer = await client.execute(PAGE, {"filter": {"createdAfter": middle}})
    assert [e["node"]["name"] for e in newer["agents"]["edges"]] == [
        e["node"]["name"] for e in everything[:2]
    ]
    older = await client.execute(PAGE, {"filter": {"createdBefore": middle}})
    assert [e["node"]["name"] for e in older["agents"]["edges"]] == [everything[2]["node"]["name"]]


async def test_tasks_filter_by_agent(client: GraphQLClient) -> None:
    first = await create_agent(client, "first")
    second = await create_agent(client, "second")
    await create_task(client, "one", first)
    await create_task(client, "two", second)
    result = await client.execute(
        "query($a: ID!) { tasks(filter: {agentId: $a}) { nodes { name agent { name } } } }",
        {"a": second},
    )
    assert result["tasks"]["nodes"] == [{"name": "two", "agent": {"name": "second"}}]
