"""Turns an agent's `llm` into a PydanticAI model: `openai/<model>` (any OpenAI-compatible
server: the base URL is a setting), `anthropic/<model>`, `simulated[/options]`.

The providers' SDK clients are kept per key and reused (each holds a connection pool) until the
runner stops (`aclose`). Retries (408, 429, 5xx, broken connections, timeouts: exponential backoff
or the server's Retry-After) and timeouts are the SDKs' own, configured from settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic_ai.models import Model

from backend.config.settings import Settings
from backend.runner.agent.llm import LlmRef
from backend.runner.agent.simulated import simulated_model

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from openai import AsyncOpenAI

# The OpenAI SDK refuses to start without a key; local servers (Ollama, vLLM) need none.
NO_KEY = "none"
ANTHROPIC_URL = "https://api.anthropic.com"


class UnknownProvider(Exception):
    pass


@dataclass(frozen=True)
class ResolvedModel:
    model: Model
    price_key: str  # its name in usage and in the price table
    endpoint: str  # where it is served, for messages (no credentials)
    secrets: tuple[str, ...]  # values no message, event or log line may show


def _display(url: str) -> tuple[str, str]:
    """The URL without credentials, and the password it carried ('' if none)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url, ""
    return str(parsed.copy_with(username=None, password=None)), parsed.password or ""


class ModelFactory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], AsyncOpenAI | AsyncAnthropic] = {}

    def default_key(self, provider: str) -> str | None:
        """The key from settings (CREWQL_OPENAI_API_KEY, CREWQL_ANTHROPIC_API_KEY), if set."""
        secret = {
            "openai": self.settings.openai_api_key,
            "anthropic": self.settings.anthropic_api_key,
        }.get(provider)
        return secret.get_secret_value() if secret else None

    def resolve(self, llm: str, api_key: str | None = None) -> ResolvedModel:
        """The model for `llm`; `api_key` (a workspace secret) overrides the key in settings."""
        ref = LlmRef.parse(llm)
        settings = self.settings
        price_key = ref.price_key(settings)
        if ref.provider == "simulated":
            model = simulated_model(
                ref.model, settings.simulated_delay_seconds, settings.simulated_chunk_chars
            )
            return ResolvedModel(model, price_key, "simulated", ())
        key = api_key or self.default_key(ref.provider)
        # The SDKs are imported when first used: they take seconds to import, and a server
        # whose agents are all simulated (or a CLI command) should not pay for them.
        if ref.provider == "openai":
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai import OpenAIProvider

            endpoint, password = _display(settings.openai_base_url)
            chat = OpenAIChatModel(
                ref.model_name(settings),
                provider=OpenAIProvider(openai_client=self._client(ref.provider, key)),
            )
            return ResolvedModel(chat, price_key, endpoint, tuple(s for s in (key, password) if s))
        if ref.provider == "anthropic":
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            endpoint, password = _display(settings.anthropic_base_url or ANTHROPIC_URL)
            claude = AnthropicModel(
                ref.model_name(settings),
                provider=AnthropicProvider(anthropic_client=self._client(ref.provider, key)),
            )
            return ResolvedModel(
                claude, price_key, endpoint, tuple(s for s in (key, password) if s)
            )
        raise UnknownProvider(f"unknown llm provider {ref.provider!r}")

    def _client(self, provider: str, key: str | None) -> Any:
        """The SDK client of `provider` for `key` (AsyncOpenAI or AsyncAnthropic)."""
        # Keyed by a digest, so the cache's keys are not secrets lying around in memory dumps.
        cache_key = (provider, hashlib.sha256((key or "").encode()).hexdigest())
        client = self._clients.get(cache_key)
        if client is None:
            client = self._openai(key) if provider == "openai" else self._anthropic(key)
            self._clients[cache_key] = client
        return client

    def _openai(self, key: str | None) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key or NO_KEY,
            base_url=self.settings.openai_base_url,
            timeout=self.settings.llm_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
        )

    def _anthropic(self, key: str | None) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=key or NO_KEY,
            base_url=self.settings.anthropic_base_url,
            timeout=self.settings.llm_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
