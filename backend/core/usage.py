"""Tokens, requests and cost, added up.

A cost of None is unknown (the model has no price), and stays unknown when added to anything: a
total that silently counted it as free would understate what a run cost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
            cost,
        )

    def as_data(self) -> dict[str, int | float | None]:
        """The event payload form (camelCase, like every event's data)."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "requests": self.requests,
            "costUsd": self.cost_usd,
        }
