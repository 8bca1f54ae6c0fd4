"""Every tool call of a run goes through `GuardedToolset`: a time limit, a cap on what goes back
to the model, and any failure turned into a failed tool result, so a broken tool costs the model
one answer, never the run. Cancellation is not a failure: it goes through untouched.

A toolset that cannot be entered (an MCP server that went down since it was listed) is left
out of the run with a warning instead of failing it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pydantic_ai import RunContext
from pydantic_ai.exceptions import (
    ApprovalRequired,
    CallDeferred,
    ModelRetry,
    ToolFailed,
)
from pydantic_ai.toolsets import ToolsetTool, WrapperToolset
from pydantic_core import to_json

from backend.observability import metrics

# Raised by tools on purpose to steer the run (PydanticAI's control flow): passed through.
CONTROL_FLOW = (ModelRetry, ToolFailed, CallDeferred, ApprovalRequired)
TRUNCATION_NOTE = "\n[output truncated at {limit} characters]"
MAX_REASON = 500


def cap_output(result: Any, limit: int) -> Any:
    """The result, or its text cut at `limit` characters with a note saying so."""
    text = result if isinstance(result, str) else None
    if text is None:
        if isinstance(result, int | float | bool) or result is None:
            return result
        text = to_json(result, fallback=str).decode("utf-8", errors="replace")
        if len(text) <= limit:
            return result
    if len(text) <= limit:
        return result
    return text[:limit] + TRUNCATION_NOTE.format(limit=limit)


def failure_reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


@dataclass
class GuardedToolset(WrapperToolset[Any]):
    timeout: float = 30.0
    max_chars: int = 20_000
    source: str = "tools"  # for log lines: `built-in`, `mcp:docs`
    _down: bool = field(default=False, init=False)

    async def __aenter__(self) -> GuardedToolset:
        try:
            await self.wrapped.__aenter__()
        except Exception as error:
            self._down = True
            logger.warning(
                "tools of {} left out of the run: {}", self.source, failure_reason(error)
            )
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        if self._down:
            self._down = False
            return None
        return await self.wrapped.__aexit__(*args)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        if self._down:
            return {}
        try:
            return await self.wrapped.get_tools(ctx)
        except Exception as error:
            logger.warning("could not list the tools of {}: {}", self.source, failure_reason(error))
            return {}

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                result = await self.wrapped.call_tool(name, tool_args, ctx, tool)
        except CONTROL_FLOW:
            metrics.record_tool_call(name, "control")
            raise
        except TimeoutError:
            metrics.record_tool_call(name, "timeout")
            raise ToolFailed(f"tool {name} timed out after {self.timeout:g} s") from None
        except Exception as error:
            metrics.record_tool_call(name, "error")
            raise ToolFailed(f"tool {name} failed: {failure_reason(error)}") from None
        metrics.record_tool_call(name, "ok")
        return cap_output(result, self.max_chars)
