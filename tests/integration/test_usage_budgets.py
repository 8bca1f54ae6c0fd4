"""Usage and cost through GraphQL: per model request (LLM_REQUEST events), per task, per
execution and over the workspace (`usage`); launch budgets (maxTokens, maxCostUsd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.config.settings import ModelPrice, Settings
from tests.support.apps import serving
from tests.support.executions import RETRY, launch, wait_for
from tests.support.factories import create_agent, create_crew, create_task
from tests.support.graphql import GraphQLClient

PRICES = {"simulated": ModelPrice(input=3.0, output=15.0)}
USAGE_OF = """
query($id: ID!) {
  execution(id: $id) {
    id status errorCode maxTokens maxCostUsd
    usage { inputTokens outputTokens totalTokens requests costUsd }
    tasks { name status model usage { inputTokens outputTokens requests costUsd } }
    events(first: 1000) { type taskPosition message data }
  }
}"""
USAGE = """
query($filter: UsageFilter, $groupBy: UsageGroupBy!) {
  usage(filter: $filter, groupBy: $groupBy) {
    key day model crewId crewName executions
    usage { inputTokens outputTokens requests costUsd }
  }
}"""


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[GraphQLClient]:
    update = {"simulated_delay_seconds": 0, "model_prices": PRICES}
    async with serving(settings.model_copy(update=update)) as client:
        yield client


async def crew_of(client: GraphQLClient, name: str, llms: list[str]) -> str:
    tasks = []
    for index, llm in enumerate(llms):
        agent = await create_agent(client, f"{name} agent {index}", llm=llm)
        tasks.append(await create_task(client, f"{name} task {index}", agent))
    return await create_crew(client, name, tasks)


async def run(client: GraphQLClient, crew: str, **launch_values: Any) -> dict[str, Any]:
    launched = await launch(client, crewId=crew, **launch_values)
    assert launched["__typename"] == "Execution", launched
    await wait_for(client, launched["id"])
    found: dict[str, Any] = (await client.execute(USAGE_OF, {"id": launched["id"]}))["execution"]
    return found


def summed(events: list[dict[str, Any]], position: int | None = None) -> dict[str, Any]:
    requests = [
        e["data"]
        for e in events
        if e["type"] == "LLM_REQUEST" and position in (None, e["taskPosition"])
    ]
    costs = [r["costUsd"] for r in requests]
    return {
        "inputTokens": sum(r["inputTokens"] for r in requests),
        "outputTokens": sum(r["outputTokens"] for r in requests),
        "requests": len(requests),
        "costUsd": None if None in costs else pytest.approx(sum(costs)),
    }


async def test_usage_totals_are_the_sum_of_the_model_requests(client: GraphQLClient) -> None:
    priced = await crew_of(client, "Priced", ["simulated", "simulated"])
    done = await run(client, priced)
    assert done["status"] == "COMPLETED"
    events = done["events"]
    requests = [e for e in events if e["type"] == "LLM_REQUEST"]
    assert len(requests) == 2
    assert requests[0]["message"].startswith("Model request 1 to simulated: ")
    for position, task in enumerate(done["tasks"]):
        assert task["model"] == "simulated"
        assert task["usage"] == summed(events, position)
    total = summed(events)
    assert done["usage"] == {**total, "totalTokens": total["inputTokens"] + total["outputTokens"]}
    expected_cost = (total["inputTokens"] * 3.0 + total["outputTokens"] * 15.0) / 1_000_000
    assert done["usage"]["costUsd"] == pytest.approx(expected_cost)


async def test_a_model_without_a_price_has_a_null_cost_not_zero(
    client: GraphQLClient, settings: Settings
) -> None:
    async with serving(settings.model_copy(update={"simulated_delay_seconds": 0})) as unpriced:
        done = await run(unpriced, await crew_of(unpriced, "Free?", ["simulated"]))
    assert done["usage"]["requests"] == 1
    assert done["usage"]["inputTokens"] > 0
    assert done["usage"]["costUsd"] is None
    assert done["tasks"][0]["usage"]["costUsd"] is None


async def test_max_tokens_stops_the_run_and_says_by_how_much(client: GraphQLClient) -> None:
    crew = await crew_of(client, "Thrifty", ["simulated", "simulated", "simulated"])
    first = await run(client, crew)
    one_task = first["tasks"][0]["usage"]
    limit = one_task["inputTokens"] + one_task["outputTokens"] + 5  # the second task crosses it
    done = await run(client, crew, maxTokens=limit)
    assert done["status"] == "FAILED"
    assert done["errorCode"] == "BUDGET_EXCEEDED"
    assert done["maxTokens"] == limit
    assert [t["status"] for t in done["tasks"]] == ["COMPLETED", "FAILED", "SKIPPED"]
    used = done["usage"]["inputTokens"] + done["usage"]["outputTokens"]
    failed = done["events"][-1]
    assert failed["type"] == "EXECUTION_FAILED"
    assert failed["data"] == {
        "code": "BUDGET_EXCEEDED",
        "limit": "maxTokens",
        "allowed": limit,
        "used": used,
        "over": used - limit,
    }
    assert f"maxTokens is {limit}, the execution used {used} tokens" in failed["message"]
    task_failed = done["events"][-2]
    assert task_failed["type"] == "TASK_FAILED"
    assert task_failed["taskPosition"] == 1
    # A retry keeps the budget, and stops where its parent did.
    retried = (await client.execute(RETRY, {"id": done["id"]}))["retryExecution"]
    await wait_for(client, retried["id"])
    again = (await client.execute(USAGE_OF, {"id": retried["id"]}))["execution"]
    assert (again["maxTokens"], again["errorCode"]) == (limit, "BUDGET_EXCEEDED")


async def test_max_cost_stops_the_run(client: GraphQLClient) -> None:
    crew = await crew_of(client, "Costly", ["simulated", "simulated"])
    first = await run(client, crew)
    one_task = first["tasks"][0]["usage"]["costUsd"]
    done = await run(client, crew, maxCostUsd=one_task * 1.2)
    assert done["status"] == "FAILED"
    assert done["errorCode"] == "BUDGET_EXCEEDED"
    data = done["events"][-1]["data"]
    assert data["limit"] == "maxCostUsd"
    assert data["over"] == pytest.approx(data["used"] - one_task * 1.2)
    assert data["used"] == pytest.approx(done["usage"]["costUsd"])


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"maxTokens": 0}, "maxTokens", "greater than or equal to 1"),
        ({"maxTokens": -5}, "maxTokens", "greater than or equal to 1"),
        ({"maxCostUsd": 0}, "maxCostUsd", "greater than 0"),
        ({"maxCostUsd": -1.5}, "maxCostUsd", "greater than 0"),
    ],
)
async def test_bad_budgets_are_validation_errors(
    client: GraphQLClient, values: dict[str, Any], field: str, message: str
) -> None:
    crew = await crew_of(client, "Budgeted", ["simulated"])
    result = await launch(client, crewId=crew, **values)
    assert result["__typename"] == "ValidationError", result
    assert result["fields"][0]["field"] == field
    assert message in result["fields"][0]["message"]


async def test_max_cost_needs_a_price_for_every_model(client: GraphQLClient) -> None:
    crew = await crew_of(client, "Unpriced", ["simulated", "openai/no-price-here"])
    result = await launch(client, crewId=crew, maxCostUsd=1.0)
    assert result["__typename"] == "ValidationError", result
    [problem] = result["fields"]
    assert problem["field"] == "maxCostUsd"
    assert "openai/no-price-here, which has no price" in problem["message"]


async def test_a_bad_simulated_script_is_refused_at_launch(client: GraphQLClient) -> None:
    crew = await crew_of(client, "Scripted", ["simulated/call=x{not-json"])
    result = await launch(client, crewId=crew)
    assert result["__typename"] == "ValidationError", result
    assert "are not JSON" in result["fields"][0]["message"]


async def test_usage_over_the_workspace_by_day_model_and_crew(client: GraphQLClient) -> None:
    alpha = await crew_of(client, "Alpha", ["simulated"])
    beta = await crew_of(client, "Beta", ["simulated", "simulated"])
    runs = [await run(client, alpha), await run(client, beta), await run(client, beta)]
    total_in = sum(r["usage"]["inputTokens"] for r in runs)
    total_out = sum(r["usage"]["outputTokens"] for r in runs)
    total_cost = sum(r["usage"]["costUsd"] for r in runs)

    by_day = (await client.execute(USAGE, {"groupBy": "DAY"}))["usage"]
    today = datetime.now(UTC).date().isoformat()
    assert [g["key"] for g in by_day] == [today]  # (a run across midnight would make two)
    assert by_day[0]["day"] == today
    assert by_day[0]["executions"] == 3
    assert by_day[0]["usage"]["requests"] == 5
    assert by_day[0]["usage"]["inputTokens"] == total_in
    assert by_day[0]["usage"]["outputTokens"] == total_out
    assert by_day[0]["usage"]["costUsd"] == pytest.approx(total_cost)

    by_model = (await client.execute(USAGE, {"groupBy": "MODEL"}))["usage"]
    assert [(g["model"], g["usage"]["requests"]) for g in by_model] == [("simulated", 5)]

    by_crew = (await client.execute(USAGE, {"groupBy": "CREW"}))["usage"]
    assert sorted((g["crewName"], g["executions"], g["usage"]["requests"]) for g in by_crew) == [
        ("Alpha", 1, 1),
        ("Beta", 2, 4),
    ]
    beta_group = next(g for g in by_crew if g["crewName"] == "Beta")
    assert beta_group["crewId"] == beta == beta_group["key"]

    only_beta = await client.execute(
        USAGE, {"groupBy": "CREW", "filter": {"crewId": beta, "model": "simulated"}}
    )
    assert [g["crewName"] for g in only_beta["usage"]] == ["Beta"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await client.execute(USAGE, {"groupBy": "DAY", "filter": {"from": future}})
    assert later["usage"] == []
    earlier = await client.execute(USAGE, {"groupBy": "DAY", "filter": {"to": future}})
    assert earlier["usage"][0]["executions"] == 3
    none = await client.execute(USAGE, {"groupBy": "MODEL", "filter": {"model": "openai/x"}})
    assert none["usage"] == []


async def test_usage_filter_errors_are_client_errors(client: GraphQLClient) -> None:
    response = await client.post(
        USAGE,
        {
            "groupBy": "DAY",
            "filter": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        },
    )
    payload = response.json()
    assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = await client.post(USAGE, {"groupBy": "DAY", "filter": {"crewId": "nope"}})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
