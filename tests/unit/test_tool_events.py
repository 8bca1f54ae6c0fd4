"""What TOOL_CALL_* events keep of a call: arguments with secret values redacted and capped,
a result preview, a failure's error, and the catalog name of an MCP tool."""

from __future__ import annotations

from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ToolCallPart,
    ToolReturnPart,
)

from backend.runner.agent.errors import Redactor
from backend.runner.agent.tool_events import ToolCallTracker

SECRET = "hdr-secret-value-991"


def test_arguments_are_redacted_and_results_capped() -> None:
    tracker = ToolCallTracker(Redactor([SECRET]), 40, {"mcp_docs__search": "mcp:docs/search"})
    call = ToolCallPart("mcp_docs__search", {"q": "x", "token": SECRET}, tool_call_id="c1")
    started = tracker.started(FunctionToolCallEvent(call))
    assert started["tool"] == "mcp:docs/search"
    assert SECRET not in started["args"]
    assert "[redacted]" in started["args"]
    result = ToolReturnPart("mcp_docs__search", "y" * 100 + SECRET, tool_call_id="c1")
    ok, data = tracker.finished(FunctionToolResultEvent(result))
    assert ok
    assert data["tool"] == "mcp:docs/search"
    assert data["result"] == "y" * 40 + "…"
    assert (data["resultChars"], data["truncated"]) == (100 + len("[redacted]"), True)


def test_a_failed_call_carries_its_error() -> None:
    tracker = ToolCallTracker(Redactor(), 500, {})
    tracker.started(FunctionToolCallEvent(ToolCallPart("flaky", "{}", tool_call_id="c2")))
    failed = ToolReturnPart("flaky", "boom", tool_call_id="c2", outcome="failed")
    ok, data = tracker.finished(FunctionToolResultEvent(failed))
    assert not ok
    assert (data["tool"], data["outcome"], data["error"]) == ("flaky", "failed", "boom")
    assert data["durationMs"] >= 0
