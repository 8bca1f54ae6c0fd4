"""Process-wide settings, read once from `CREWQL_*` environment variables and an optional `.env`.

Everything that differs between a laptop and a fleet lives here, so that the same code runs
both ways and a deployment is described by its environment alone.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError


class StdioServer(BaseModel):
    """An MCP server this deployment starts as a process (from settings only)."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


# Names of MCP servers (registered or from settings): they appear in tool names, `mcp:<name>/x`.
MCP_SERVER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]


class ModelPrice(BaseModel):
    """USD per million input and output tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CREWQL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    database_url: str = Field(
        default="sqlite+aiosqlite:///./crewql.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_echo: bool = False
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # None: migrate at start-up on SQLite (the embedded quick start), not on PostgreSQL, where
    # several replicas start at once and `crewql migrate` is a deployment step of its own.
    migrate_on_start: bool | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    service_name: str = Field(default="api", pattern=r"^[A-Za-z0-9_.-]+$")
    log_level: LogLevel = "INFO"
    log_dir: Path = Path("logs")
    log_to_files: bool = True
    # text: human-readable lines; json: one JSON object per line with the request/execution
    # context (docs/operations.md). CREWQL_LOG_JSON=true is the older spelling of json.
    log_format: Literal["text", "json"] = "text"
    log_json: bool = False

    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    # Field selections of one operation, each fragment spread counted in full (docs/security.md).
    max_fields: int = Field(default=500, ge=1)
    max_tokens: int = Field(default=2_000, ge=10)
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)
    # Every text in any argument, JSON values included, and inside `filter` arguments
    # (backend/api/graphql/storable.py; BAD_USER_INPUT or a ValidationError beyond).
    max_string_chars: int = Field(default=500_000, ge=1_000)
    max_filter_chars: int = Field(default=200, ge=10, le=10_000)
    # Every request and websocket handshake (backend/api/transport.py): 431 beyond either.
    max_headers: int = Field(default=100, ge=10)
    max_header_bytes: int = Field(default=32_768, ge=1_024)
    max_page_size: int = Field(default=100, ge=1, le=1_000)
    default_page_size: int = Field(default=20, ge=1)

    # embedded: one process (API + runner), events in memory. scaled: any number of API
    # replicas and `crewql worker` processes sharing one PostgreSQL, events over LISTEN/NOTIFY.
    mode: Literal["embedded", "scaled"] = "embedded"

    # Executions: the runner (in `crewql serve` unless disabled, and in `crewql worker`)
    runner_enabled: bool = True
    runner_concurrency: int = Field(default=8, ge=1, le=1_000)
    runner_poll_interval_seconds: float = Field(default=1.0, gt=0)
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0)
    # A running execution whose runner has not renewed its lease for this long is CRASHED.
    lease_seconds: float = Field(default=30.0, gt=0)
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    cancel_timeout_seconds: float = Field(default=10.0, gt=0)
    output_flush_interval_seconds: float = Field(default=0.25, ge=0)
    subscriber_buffer: int = Field(default=256, ge=1)
    # Human input: how long an execution waits for a response (a launch may set its own
    # `inputTimeoutSeconds`), and what the end of a wait does: fail it (INPUT_TIMEOUT) or approve.
    input_timeout_seconds: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    input_timeout_action: Literal["fail", "approve"] = "fail"

    # The simulated model (llm "simulated[/options]"): no network, deterministic (docs/agents.md).
    simulated_delay_seconds: float = Field(default=0.5, ge=0)
    simulated_chunk_chars: int = Field(default=24, ge=1)

    # Model providers (docs/agents.md). OpenAI-compatible chat completions (llm "openai/<model>"):
    # OpenAI, vLLM, Ollama, LM Studio, a LiteLLM proxy ...
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    # Anthropic (llm "anthropic/<model>"); no base URL: Anthropic's own.
    anthropic_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    # Per model request; 408, 429, 5xx, broken connections and timeouts are retried by the
    # provider's SDK with exponential backoff (or the server's Retry-After).
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)

    # Agent runs: one per task. An agent without maxIterations may make this many model
    # requests in one task; a task running longer than the timeout fails.
    agent_max_requests: int = Field(default=20, ge=1, le=1_000)
    task_timeout_seconds: float = Field(default=600.0, gt=0)
    # A task with an output schema: answers that do not validate are sent back at most this often.
    output_retries: int = Field(default=2, ge=0, le=10)
    # A task without tools or output schema is asked in one direct model request instead of an
    # agent run (same events, usage and failures, a tenth of the CPU); false: always the agent.
    agent_direct_requests: bool = True
    # What a TOOL_CALL_* event keeps of a tool's arguments and result.
    tool_event_preview_chars: int = Field(default=500, ge=0, le=100_000)
    # USD per million tokens, by model as in an agent's llm ("openai/gpt-4o-mini", "simulated"):
    # CREWQL_MODEL_PRICES='{"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}'. A model not
    # in the table has an unknown cost (null), never 0.
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)

    # Workspace secrets (docs/security.md): Fernet keys, comma-separated, newest first. Values
    # are encrypted with the first and decrypted with any; `crewql secrets rotate-key`
    # re-encrypts every value with the first, after which older keys can be dropped.
    secrets_key: SecretStr | None = None

    # Tools (docs/agents.md). Every call has a timeout and an output cap; a failure goes back to
    # the model as a failed tool result and the run goes on.
    tool_timeout_seconds: float = Field(default=30.0, gt=0, le=3_600)
    tool_output_max_chars: int = Field(default=20_000, ge=100, le=10_000_000)
    # http_request: response size, time and redirect caps; private, loopback and link-local
    # addresses are refused unless allowed here (a deployment that calls its own services).
    http_tool_max_response_bytes: int = Field(default=1_000_000, ge=1_024)
    http_tool_timeout_seconds: float = Field(default=15.0, gt=0)
    http_tool_max_redirects: int = Field(default=3, ge=0, le=20)
    http_tool_allow_private_addresses: bool = False
    # MCP servers: how long a server's tool list is kept, and how long connecting may take.
    mcp_tools_cache_seconds: float = Field(default=30.0, ge=0)
    mcp_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # MCP servers that run as local processes (stdio), offered to every workspace; JSON object
    # {"name": {"command": "...", "args": [...], "env": {...}}}. Never registrable over the API.
    mcp_stdio_servers: dict[str, StdioServer] = Field(default_factory=dict)

    graphiql: bool = True
    introspection: bool = True

    # Authentication (docs/security.md). Off only for the embedded quick start on a loopback
    # address: then every request acts as the admin of the default workspace.
    auth_enabled: bool = True
    # How long a process trusts what it read about a key; also how long a revoked key keeps
    # working in the processes that did not revoke it.
    auth_cache_seconds: float = Field(default=2.0, ge=0, le=2.0)
    # Per key and process: requests a second (0: no limit) and how many may come at once.
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    max_subscriptions_per_key: int = Field(default=100, ge=0)
    # Subscribers of the same selection, workspace and role share each event's execution and
    # encoded payload (api/graphql/shared_events.py); off only to measure what it saves.
    subscription_sharing: bool = True
    # Across every worker: further executions of the key stay QUEUED (0: no cap).
    max_running_executions_per_key: int = Field(default=10, ge=0)
    # Comma-separated browser origins allowed to open websockets, e.g. http://localhost:5173
    allowed_origins: str = ""
    # Per client address and process (docs/security.md): failed key checks (a burst, then a
    # rate), before every further attempt is answered 429 without looking at the key.
    auth_failure_rate_per_second: float = Field(default=1.0, gt=0)
    auth_failure_burst: int = Field(default=20, ge=1)

    # Websockets (both protocols; docs/security.md). A socket is unauthenticated until its
    # connection_init is acknowledged.
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    ws_max_unauthenticated_per_address: int = Field(default=100, ge=1)
    ws_max_unauthenticated: int = Field(default=1_000, ge=1)
    ws_max_message_bytes: int = Field(default=1_000_000, ge=1_024)
    ws_messages_per_second: float = Field(default=50.0, gt=0)
    ws_message_burst: int = Field(default=100, ge=1)

    # Run only the documents an operator loaded with `crewql documents add` (GraphQL's "trusted
    # documents"); any other text is refused and APQ stops registering (docs/clients.md).
    trusted_documents_only: bool = False
    # Automatic persisted queries stored at most (trusted documents do not count); past it, new
    # hashes are not stored and clients keep sending the text: nobody can fill the database.
    apq_max_documents: int = Field(default=10_000, ge=0)

    # Observability (docs/operations.md). With authentication on, /metrics answers an admin key
    # or this token (Authorization: Bearer <token>); `crewql worker --metrics-port` likewise.
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # OpenTelemetry (the `otel` extra, configured by the standard OTEL_* variables). None: on
    # when OTEL_TRACES_EXPORTER or an OTLP endpoint is set. Prompt bodies, outputs and inputs go
    # into spans only with CREWQL_TRACE_CONTENT=true.
    tracing: bool | None = None
    trace_content: bool = False

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """Each key must be a Fernet key (32 url-safe base64 bytes); the message never shows one."""
        if value is None or not value.get_secret_value().strip():
            return None
        for position, key in enumerate(value.get_secret_value().split(","), start=1):
            try:
                Fernet(key.strip())
            except ValueError:
                raise ValueError(
                    f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `crewql secrets generate-key`"
                ) from None
        return value

    @field_validator("mcp_stdio_servers")
    @classmethod
    def _stdio_names(cls, value: dict[str, StdioServer]) -> dict[str, StdioServer]:
        for name in value:
            if not re.fullmatch(MCP_SERVER_NAME_PATTERN, name):
                raise ValueError(
                    f"server name {name!r} must be 1 to 40 lowercase letters, digits, '_' or '-'"
                )
        return value

    @property
    def secrets_keys(self) -> list[str]:
        """The Fernet keys, newest first (empty when none is set)."""
        if self.secrets_key is None:
            return []
        return comma_list(self.secrets_key.get_secret_value())

    @property
    def allowed_origin_list(self) -> list[str]:
        return comma_list(self.allowed_origins)

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, value: str) -> str:
        for origin in comma_list(value):
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://app.example or "
                    "http://localhost:5173 (comma-separate several, or use *)"
                )
        return value

    @model_validator(mode="after")
    def _scaled_needs_postgres(self) -> Settings:
        if self.mode == "scaled" and self.is_sqlite:
            raise ValueError(
                "CREWQL_MODE=scaled needs PostgreSQL: set CREWQL_DATABASE_URL to a "
                "postgresql+asyncpg:// URL, or use CREWQL_MODE=embedded with SQLite"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.heartbeat_interval_seconds >= self.lease_seconds:
            raise ValueError(
                "CREWQL_HEARTBEAT_INTERVAL_SECONDS must be shorter than CREWQL_LEASE_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _page_sizes_agree(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise ValueError(
                f"CREWQL_DEFAULT_PAGE_SIZE ({self.default_page_size}) exceeds "
                f"CREWQL_MAX_PAGE_SIZE ({self.max_page_size})"
            )
        return self

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> Settings:
        if not self.auth_enabled and not is_loopback(self.host):
            raise ValueError(
                "CREWQL_AUTH_ENABLED=false is only allowed on a loopback address, and "
                f"CREWQL_HOST is {self.host}: set CREWQL_HOST=127.0.0.1, or turn "
                "authentication on (CREWQL_AUTH_ENABLED=true, keys: `crewql apikey create`)"
            )
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or self.log_json

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_migrate_on_start(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start


def comma_list(value: str) -> list[str]:
    """The items of a comma-separated setting, trimmed; empty items are ignored."""
    return [item.strip() for item in value.split(",") if item.strip()]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and `localhost`.

    Anything else (0.0.0.0, a LAN address, a host name) may be reachable from elsewhere, which is
    where a server without authentication must not listen.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class SettingsError(Exception):
    """A setting could not be read; the message names it in one line for the operator."""


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's multi-line report into one line per bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except PydanticSettingsError as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"])
            label = f"CREWQL_{name.upper()}: " if name else ""
            problems.append(f"{label}{err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
