from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText, Text

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
