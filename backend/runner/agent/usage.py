"""Tokens, requests and their cost; launch budgets.

Cost comes from the price table in settings (USD per million tokens). A model missing from the
table has an unknown cost, `None`, which stays unknown when added to anything: a total that
silently counted it as free would understate what a run cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.config.settings import ModelPrice
from backend.core.usage import Usage

MILLION = 1_000_000


def priced(
    prices: dict[str, ModelPrice], model: str, input_tokens: int, output_tokens: int
) -> Usage:
    """One model request's usage with its cost (None when `model` has no price)."""
    price = prices.get(model)
    cost = (
        None
        if price is None
        else (input_tokens * price.input + output_tokens * price.output) / MILLION
    )
    return Usage(input_tokens, output_tokens, 1, cost)


@dataclass(frozen=True)
class BudgetExceeded:
    """Which limit a run crossed, and by how much."""

    limit: str  # "maxTokens" | "maxCostUsd"
    allowed: float
    used: float

    @property
    def over(self) -> float:
        return self.used - self.allowed

    def message(self) -> str:
        if self.limit == "maxTokens":
            return (
                f"budget exceeded: maxTokens is {int(self.allowed)}, the execution used "
                f"{int(self.used)} tokens ({int(self.over)} over)"
            )
        return (
            f"budget exceeded: maxCostUsd is {self.allowed:g}, the execution cost "
            f"{self.used:.6f} USD ({self.over:.6f} over)"
        )

    def as_data(self) -> dict[str, str | float]:
        return {
            "code": "BUDGET_EXCEEDED",
            "limit": self.limit,
            "allowed": self.allowed,
            "used": self.used,
            "over": self.over,
        }


@dataclass(frozen=True)
class Budget:
    """A launch's limits on what the whole execution may spend (None: no limit)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None

    def check(self, spent: Usage) -> BudgetExceeded | None:
        if self.max_tokens is not None and spent.total_tokens > self.max_tokens:
            return BudgetExceeded("maxTokens", self.max_tokens, spent.total_tokens)
        if (
            self.max_cost_usd is not None
            and spent.cost_usd is not None
            and spent.cost_usd > self.max_cost_usd
        ):
            return BudgetExceeded("maxCostUsd", self.max_cost_usd, spent.cost_usd)
        return None
