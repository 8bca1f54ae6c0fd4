"""What the TOOL_CALL_* events say about a tool call: its arguments (secret values redacted,
capped) when it starts, a preview of its result (capped) or its error when it ends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import FunctionToolCallEvent, FunctionToolResultEvent

from backend.runner.agent.errors import Redactor


def _capped(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + "…", True)


@dataclass
class ToolCallTracker:
    """Turns PydanticAI's call/result events into event data, timing each call."""

    redact: Redactor
    preview_chars: int
    catalog_names: dict[str, str]  # mcp_docs__search -> mcp:docs/search
    _started: dict[str, tuple[str, float]] = field(default_factory=dict)

    def started(self, event: FunctionToolCallEvent) -> dict[str, Any]:
        part = event.part
        name = self.catalog_names.get(part.tool_name, part.tool_name)
        self._started[part.tool_call_id] = (name, time.monotonic())
        args = part.args if isinstance(part.args, str) else json.dumps(part.args or {})
        shown, cut = _capped(self.redact(args), self.preview_chars)
        return {
            "tool": name,
            "callId": part.tool_call_id,
            "args": shown,
            "argsTruncated": cut,
        }

    def finished(self, event: FunctionToolResultEvent) -> tuple[bool, dict[str, Any]]:
        """(whether the tool succeeded, the event data)."""
        part = event.part
        fallback = (self.catalog_names.get(part.tool_name, part.tool_name), time.monotonic())
        name, began = self._started.pop(part.tool_call_id, fallback)
        text = self.redact(part.model_response_str(wrap_if_error=False))
        shown, cut = _capped(text, self.preview_chars)
        data: dict[str, Any] = {
            "tool": name,
            "callId": part.tool_call_id,
            "durationMs": round((time.monotonic() - began) * 1000, 1),
        }
        if part.outcome == "success":
            return True, {**data, "result": shown, "resultChars": len(text), "truncated": cut}
        return False, {**data, "outcome": part.outcome, "error": shown}
