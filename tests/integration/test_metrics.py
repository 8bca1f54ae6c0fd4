"""GET /metrics: the families operators alert on move with real traffic, on both databases.

Counters are process-wide (one registry per process, as Prometheus expects), so each test reads
the value before and after what it does and checks the difference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.core.identity import Role
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID
from backend.observability import metrics
from tests.conftest import _clean
from tests.support.auth import bearer, make_key
from tests.support.executions import launch, wait_for
from tests.support.graphql import GraphQLClient

CREW = {
    "name": "Metered",
    "agents": [{"name": "Solo", "role": "r", "goal": "g", "llm": "simulated"}],
    "tasks": [
        {"name": "Answer", "description": "Answer {q}", "expectedOutput": "text", "agent": "Solo"}
    ],
}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def scrape(http: httpx.AsyncClient, **headers: str) -> str:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture
async def app_with(settings: Settings) -> AsyncIterator[Any]:
    made: list[Starlette] = []

    def build(**overrides: Any) -> Starlette:
        app = create_app(settings.model_copy(update={"simulated_delay_seconds": 0, **overrides}))
        made.append(app)
        return app

    yield build
    for app in made:
        await _clean(app)
        await app.state.engine.dispose()


async def test_http_requests_errors_and_latency(http: httpx.AsyncClient) -> None:
    client = GraphQLClient(http)
    before = await scrape(http)
    await client.post("query Crews { crews { nodes { id } } }", operation_name="Crews")
    await client.post("query Bad { nope }")
    refused = await http.post("/graphql", content=b"{}", headers={"content-type": "text/plain"})
    assert refused.status_code == 415
    after = await scrape(http)
    ok = {"operation_type": "query", "operation_name": "Crews", "status": "200"}
    assert (
        sample(after, "crewql_http_requests_total", **ok)
        == sample(before, "crewql_http_requests_total", **ok) + 1
    )
    for code in ("GRAPHQL_VALIDATION_FAILED", "UNSUPPORTED_MEDIA_TYPE"):
        grown = sample(after, "crewql_graphql_errors_total", code=code) - sample(
            before, "crewql_graphql_errors_total", code=code
        )
        assert grown == 1, code
    count = "crewql_http_request_duration_seconds_count"
    assert (
        sample(after, count, operation_type="query")
        >= sample(before, count, operation_type="query") + 2
    )
    assert sample(after, "crewql_db_pool_size") >= 1
    assert refused.headers["x-request-id"]


async def test_executions_queue_and_runner(app_with: Any) -> None:
    app = app_with(runner_concurrency=3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        client = GraphQLClient(http)
        queued = await launch(client, crew=CREW, inputs={"q": "why"})  # no runner yet
        waiting = await scrape(http)
        assert sample(waiting, "crewql_queue_depth") == 1
        assert sample(waiting, "crewql_queue_oldest_age_seconds") > 0
        before = waiting
        async with app.router.lifespan_context(app):
            assert sample(await scrape(http), "crewql_runner_slots") >= 3
            await wait_for(client, queued["id"])
            after = await scrape(http)
    assert sample(after, "crewql_queue_depth") == 0
    assert sample(after, "crewql_queue_oldest_age_seconds") == 0
    assert (
        sample(after, "crewql_executions_started_total")
        == sample(before, "crewql_executions_started_total") + 1
    )
    done = {"status": "COMPLETED"}
    assert (
        sample(after, "crewql_executions_finished_total", **done)
        == sample(before, "crewql_executions_finished_total", **done) + 1
    )
    # The run's model requests are counted under the model's name (the simulated model
    # reports the tokens it estimates), so tokens by model move with real runs.
    tokens = {"model": "simulated", "direction": "output"}
    assert sample(after, "crewql_model_tokens_total", **tokens) > sample(
        before, "crewql_model_tokens_total", **tokens
    )


async def test_metrics_need_an_admin_key_or_the_token(app_with: Any) -> None:
    app = app_with(auth_enabled=True, metrics_token=SecretStr("scrape-me-0123456789"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        services = app.state.services
        viewer = await make_key(services, DEFAULT_WORKSPACE_ID, Role.VIEWER)
        admin = await make_key(services, DEFAULT_WORKSPACE_ID, Role.ADMIN)
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer("wrong"))).status_code == 401
        assert (await http.get("/metrics", headers=bearer(viewer))).status_code == 403
        await scrape(http, **bearer(admin))
        await scrape(http, **bearer("scrape-me-0123456789"))


def test_client_chosen_labels_are_bounded() -> None:
    assert metrics.bounded_operation_name(None) == "anonymous"
    assert metrics.bounded_operation_name("not a name!") == "other"
    assert metrics.bounded_operation_name("x" * 65) == "other"
    bound = metrics.BoundedLabel(10)
    names = {bound(f"Op{i}") for i in range(50)}
    assert len(names) == 11
    assert "other" in names
    assert bound("Op3") == "Op3"


def test_usage_hooks_for_the_agents_and_tools_runtimes() -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    tokens = value("crewql_model_tokens_total", model="m-test", direction="input")
    metrics.record_model_usage("m-test", input_tokens=12, output_tokens=3, cost_usd=0.5)
    metrics.record_tool_call("search", "ok")
    assert value("crewql_model_tokens_total", model="m-test", direction="input") == tokens + 12
    assert value("crewql_model_cost_usd_total", model="m-test") >= 0.5
    assert value("crewql_tool_calls_total", tool="search", outcome="ok") >= 1


async def test_tool_calls_are_counted_by_tool_and_outcome() -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import FunctionToolset

    from backend.runner.tools.guard import GuardedToolset

    def add(a: int, b: int) -> int:
        return a + b

    def explode() -> str:
        raise RuntimeError("on purpose")

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(
                parts=[ToolCallPart("add", {"a": 1, "b": 2}), ToolCallPart("explode", {})]
            )
        return ModelResponse(parts=[TextPart("done")])

    def value(tool: str, outcome: str) -> float:
        labels = {"tool": tool, "outcome": outcome}
        return metrics.REGISTRY.get_sample_value("crewql_tool_calls_total", labels) or 0.0

    before = value("add", "ok"), value("explode", "error")
    guarded = GuardedToolset(FunctionToolset([add, explode]), timeout=5)
    result = await Agent(FunctionModel(model), toolsets=[guarded]).run("go")
    assert result.output == "done"
    assert (value("add", "ok"), value("explode", "error")) == (before[0] + 1, before[1] + 1)
