"""Chooses a provider from an agent's `llm` string (`provider` or `provider/model`)."""

from __future__ import annotations

from backend.config.settings import Settings
from backend.runner.providers.base import Provider, ProviderError
from backend.runner.providers.simulated import SimulatedProvider

KNOWN_PROVIDERS = ("simulated", "openai")


class ProviderRegistry:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._providers: dict[str, Provider] = {
            "simulated": SimulatedProvider(
                settings.simulated_delay_seconds, settings.simulated_chunk_chars
            )
        }

    @staticmethod
    def known() -> tuple[str, ...]:
        return KNOWN_PROVIDERS

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None and name == "openai":
            from backend.runner.providers.openai import OpenAICompatibleProvider

            provider = OpenAICompatibleProvider(self._settings)
            self._providers[name] = provider
        if provider is None:
            raise ProviderError(f"unknown llm provider {name!r}")
        return provider

    async def aclose(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
