"""The provider interface the engine talks to.

A provider turns a prompt into a stream of text chunks. It raises `ProviderError` with a message
fit for an operator (and for the TASK_FAILED event) on any failure it cannot recover from, and
must never put a secret such as an API key in that message.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol


class ProviderError(Exception):
    """A model call failed for good; the message is safe to store and show."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user"
    content: str


@dataclass(frozen=True)
class ModelCall:
    """One request to a model: which model, what to say, and the agent's sampling settings."""

    provider: str
    model: str
    messages: list[ChatMessage]
    temperature: float | None = None
    options: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    def stream(self, call: ModelCall) -> AsyncGenerator[str, None]:
        """Yields the answer in chunks as they arrive; raises ProviderError on failure."""
        ...


def parse_llm(llm: str) -> tuple[str, str]:
    """`provider/model` → (provider, model); a bare `provider` has an empty model."""
    provider, _, model = llm.partition("/")
    return provider, model
