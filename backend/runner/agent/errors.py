"""Why a task's agent run failed, in words fit for the TASK_FAILED event, with no secret in them.

PydanticAI raises typed errors (the provider SDK's own error is their `__cause__`); servers echo
keys back in error bodies, so every message goes through `Redactor` before anyone sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelTimeoutError,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from backend.runner.agent.simulated import SimulatedFailure

REDACTED = "[redacted]"
EXCERPT_CHARS = 300
_WHITESPACE = re.compile(r"\s+")


class Redactor:
    """Replaces known secret values (and their `Bearer` forms) in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])


def short(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cause(exc: BaseException) -> str:
    """The lowest-level reason given (e.g. httpx's ConnectError text), if any."""
    inner = exc.__cause__
    while inner is not None and inner.__cause__ is not None:
        inner = inner.__cause__
    if inner is None or not str(inner).strip():
        return ""
    return f" ({type(inner).__name__}: {short(str(inner), 200)})"


def _body(value: object) -> str:
    if isinstance(value, dict):
        for key in ("error", "detail", "message"):
            found = value.get(key)
            if isinstance(found, dict) and isinstance(found.get("message"), str):
                return str(found["message"])
            if isinstance(found, str):
                return found
    return "" if value is None else str(value)


def describe_failure(
    exc: BaseException, *, endpoint: str, retries: int, max_requests: int, timeout: float
) -> str | None:
    """The message for a failure of the agent run, or None if `exc` is not one we expect (a bug,
    which the runner logs and reports as an internal error)."""
    attempts = f" after {retries + 1} attempts" if retries else ""
    if isinstance(exc, SimulatedFailure):
        return str(exc)
    if isinstance(exc, RunTimedOut):
        return f"the task did not finish within {timeout:g}s (CREWQL_TASK_TIMEOUT_SECONDS)"
    if isinstance(exc, UsageLimitExceeded):
        return (
            f"the agent reached its limit of {max_requests} model requests (maxIterations) "
            "without a final answer"
        )
    if isinstance(exc, ModelHTTPError):
        body = short(_body(exc.body))
        retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return (
            f"model endpoint {endpoint} answered {exc.status_code}"
            + (attempts if retried else "")
            + (f": {body}" if body else "")
        )
    if isinstance(exc, ModelTimeoutError):
        return f"model endpoint {endpoint} timed out{attempts}{_cause(exc)}"
    if isinstance(exc, ModelConnectionError):
        return f"could not reach model endpoint {endpoint}{attempts}{_cause(exc)}"
    # Before the generic ModelAPIError: since pydantic-ai 2.7x an empty or malformed response
    # raises an error that is both (ModelEmptyResponseError), and it is the answer that is wrong.
    if isinstance(exc, UnexpectedModelBehavior):
        return f"the answer from {endpoint} could not be used: {short(str(exc))}"
    if isinstance(exc, ModelAPIError):
        return f"model endpoint {endpoint} failed: {short(str(exc))}{_cause(exc)}"
    return None
