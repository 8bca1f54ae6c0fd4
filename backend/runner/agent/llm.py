"""An agent's `llm` string: `provider` or `provider/model` (for `simulated`, its options)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.config.settings import Settings
from backend.core.errors import FieldProblem
from backend.schemas import CrewConfig

KNOWN_PROVIDERS = ("simulated", "openai", "anthropic")


@dataclass(frozen=True)
class LlmRef:
    provider: str
    model: str  # empty: the provider's default; for `simulated`, its options

    @classmethod
    def parse(cls, llm: str) -> LlmRef:
        provider, _, model = llm.strip().partition("/")
        return cls(provider, model)

    def model_name(self, settings: Settings) -> str:
        """The model the provider is asked for (the configured default when none is named)."""
        if self.provider == "openai":
            return self.model or settings.openai_model
        if self.provider == "anthropic":
            return self.model or settings.anthropic_model
        return self.provider

    def price_key(self, settings: Settings) -> str:
        """The model's name in usage and in the price table: `openai/gpt-4o-mini`, `simulated`
        (whatever its options)."""
        if self.provider == "simulated":
            return "simulated"
        return f"{self.provider}/{self.model_name(settings)}"


class LlmCheck:
    """What a launch's agents ask of the models, checked before the execution is queued: a known
    provider, a simulated script that parses, and with `maxCostUsd` a price for every model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self, config: CrewConfig, max_cost_usd: float | None, field_prefix: str
    ) -> list[FieldProblem]:
        from backend.runner.agent.simulated import check_options

        problems = []
        for index, agent in enumerate(config.agents):
            field = f"{field_prefix}.agents.{index}.llm"
            ref = LlmRef.parse(agent.llm)
            if ref.provider not in KNOWN_PROVIDERS:
                problems.append(
                    FieldProblem(
                        field,
                        f"agent {agent.name!r} uses llm provider {ref.provider!r}, which this "
                        f"server does not know (known: {', '.join(sorted(KNOWN_PROVIDERS))})",
                    )
                )
                continue
            bad_script = check_options(ref.model) if ref.provider == "simulated" else None
            if bad_script is not None:
                problems.append(FieldProblem(field, f"agent {agent.name!r}: {bad_script}"))
            key = ref.price_key(self.settings)
            if max_cost_usd is not None and key not in self.settings.model_prices:
                problems.append(
                    FieldProblem(
                        "maxCostUsd",
                        f"agent {agent.name!r} uses {key}, which has no price "
                        "(CREWQL_MODEL_PRICES), so its cost cannot be held to maxCostUsd",
                    )
                )
        return problems
