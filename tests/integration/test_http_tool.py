"""The `http_request` tool against a real local HTTP server: the workspace's allowlist, private
and loopback addresses refused unless allowed, and caps on size, time and redirects."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from backend.config.settings import Settings
from backend.core.tools.builtin import builtin_toolset
from backend.core.tools.http_fetch import HttpLimits, host_allowed, is_public
from backend.models import DEFAULT_WORKSPACE_ID
from backend.runner.tools import build_toolsets
from backend.services.bundle import Services
from tests.support.databases import make_settings
from tests.support.http_target import HttpTarget, http_target

LIMITS = HttpLimits(
    max_response_bytes=1_000, timeout_seconds=1.0, max_redirects=2, allow_private_addresses=True
)


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


async def call(toolset: Any, **args: Any) -> tuple[str, Any]:
    """(outcome, content) of one http_request call made by a scripted model."""
    seen: list[ModelRequest] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("http_request", args)])
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        seen.append(last)
        return ModelResponse(parts=[TextPart("done")])

    await Agent(FunctionModel(model), toolsets=[toolset]).run("go")
    (part,) = seen[0].parts
    return str(getattr(part, "outcome", "retry")), getattr(part, "content", None)


def tools(target: HttpTarget, **limits: Any) -> Any:
    chosen = dataclasses.replace(LIMITS, **limits)
    return builtin_toolset(["http_request"], allowlist=[target.host], limits=chosen)


async def test_get_post_and_redirects(target: HttpTarget) -> None:
    outcome, content = await call(tools(target), url=target.url("/echo"))
    assert outcome == "success"
    assert content["status"] == 200
    assert '"method":"GET"' in content["body"]
    outcome, content = await call(
        tools(target), url=target.url("/echo"), method="POST", body="hello"
    )
    assert '"body":"hello"' in content["body"]
    outcome, content = await call(tools(target), url=target.url("/redirect?hops=2"))
    assert content["status"] == 200
    assert content["url"] == target.url("/echo")
    outcome, content = await call(tools(target), url=target.url("/redirect?hops=3"))
    assert outcome == "failed"
    assert "more than 2 redirects" in content


async def test_size_and_time_caps(target: HttpTarget) -> None:
    outcome, content = await call(tools(target), url=target.url("/big?size=5000"))
    assert outcome == "success"
    assert content["truncated"] is True
    assert len(content["body"]) == 1_000
    outcome, content = await call(tools(target), url=target.url("/slow?seconds=5"))
    assert outcome == "failed"
    assert "timed out after 1 s" in content


async def test_hosts_off_the_allowlist_and_private_addresses_are_refused(
    target: HttpTarget,
) -> None:
    other_port = f"http://127.0.0.1:{target.port + 1 if target.port < 65535 else 1}/echo"
    outcome, content = await call(tools(target), url=other_port)
    assert outcome == "failed"
    assert "not on this workspace's HTTP allowlist" in content
    strict = tools(target, allow_private_addresses=False)
    outcome, content = await call(strict, url=target.url("/echo"))
    assert outcome == "failed"
    assert "non-public address" in content
    local_name = builtin_toolset(
        ["http_request"],
        allowlist=[f"localhost:{target.port}", "169.254.169.254"],
        limits=HttpLimits(1_000, 1.0, 2, allow_private_addresses=False),
    )
    outcome, content = await call(local_name, url=f"http://localhost:{target.port}/echo")
    assert outcome == "failed"
    assert "non-public address" in content
    outcome, content = await call(local_name, url="http://169.254.169.254/latest/meta-data")
    assert outcome == "failed"
    assert "non-public address" in content
    outcome, content = await call(tools(target), url="file:///etc/passwd")
    assert outcome == "failed"
    assert "only http and https" in content


def test_allowlist_patterns() -> None:
    assert host_allowed("api.example.com", 443, ["api.example.com"])
    assert host_allowed("a.b.example.com", 443, ["*.example.com"])
    assert not host_allowed("example.com", 443, ["*.example.com"])
    assert not host_allowed("evilexample.com", 443, ["*.example.com"])
    assert host_allowed("h.test", 8080, ["h.test:8080"])
    assert not host_allowed("h.test", 8081, ["h.test:8080"])
    assert host_allowed("::1", 8080, ["[::1]:8080"])
    assert not host_allowed("api.example.com", 443, [])


def test_public_addresses() -> None:
    for private in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "::1", "fe80::1"):
        assert not is_public(ipaddress.ip_address(private)), private
    assert not is_public(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not is_public(ipaddress.ip_address("224.0.0.1"))
    assert is_public(ipaddress.ip_address("93.184.216.34"))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, http_tool_allow_private_addresses=True)


async def test_the_workspace_allowlist_reaches_the_run(
    services: Services, settings: Settings, target: HttpTarget
) -> None:
    workspace = DEFAULT_WORKSPACE_ID
    toolbox = await build_toolsets(
        workspace, ["http_request"], source=services.tools, settings=settings
    )
    outcome, content = await call(toolbox.toolsets[0], url=target.url("/echo"))
    assert outcome == "failed"
    assert "allowlist" in content
    await services.tools.set_http_allowlist(workspace, [target.host])
    toolbox = await build_toolsets(
        workspace, ["http_request"], source=services.tools, settings=settings
    )
    outcome, content = await call(toolbox.toolsets[0], url=target.url("/echo"))
    assert outcome == "success"
    assert content["status"] == 200


async def test_credentials_do_not_follow_a_redirect_to_another_host(target: HttpTarget) -> None:
    both = builtin_toolset(
        ["http_request"],
        allowlist=[target.host, f"localhost:{target.port}"],
        limits=LIMITS,
    )
    auth = {"Authorization": "Bearer for-127-only"}
    same = target.url(f"/away?to={target.url('/echo')}")
    _, content = await call(both, url=same, headers=auth)
    assert '"authorization":"Bearer for-127-only"' in content["body"]
    other = target.url(f"/away?to=http://localhost:{target.port}/echo")
    _, content = await call(both, url=other, headers=auth)
    assert content["url"] == f"http://localhost:{target.port}/echo"
    assert '"authorization":null' in content["body"]
