"""Updates carry only the fields a caller sent (`model_fields_set`); null clears optional ones."""

from __future__ import annotations

from backend.schemas.agent.base import LlmName, MaxIterations, Temperature
from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name, OptionalText, Text
from backend.schemas.secret import SecretName
from backend.schemas.tool.names import ToolList


class AgentUpdate(InputSchema):
    name: Name | None = None
    role: Text | None = None
    goal: Text | None = None
    backstory: OptionalText | None = None
    llm: LlmName | None = None
    temperature: Temperature | None = None
    max_iterations: MaxIterations | None = None
    tools: ToolList | None = None
    api_key_secret: SecretName | None = None
