from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText, Text
from backend.schemas.secret import SecretName
from backend.schemas.tool.names import ToolList

# "provider" or "provider/model": simulated, openai/gpt-4o-mini, ollama/llama3.1:8b ...
LlmName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[a-z0-9_-]+(/\S+)?$"
    ),
]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
MaxIterations = Annotated[int, Field(ge=1, le=100)]


class AgentBase(InputSchema):
    name: Name
    role: Text
    goal: Text
    backstory: OptionalText = ""
    llm: LlmName = "simulated"
    temperature: Temperature | None = None
    max_iterations: MaxIterations | None = None
    tools: ToolList = Field(
        default_factory=list,
        description="Tools its tasks may use: http_request, current_time, mcp:<server>/<tool>.",
    )
    api_key_secret: SecretName | None = Field(
        default=None,
        description="The workspace secret holding its provider's key; null: the provider's "
        "default (OPENAI_API_KEY, ANTHROPIC_API_KEY).",
    )
