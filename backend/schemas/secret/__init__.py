"""Workspace secrets: a name and a value in; names, who set them and when out (never a value)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, field_validator

from backend.schemas.base import InputSchema, ResponseSchema

# Environment-variable style, the way providers name their keys: OPENAI_API_KEY, github_token.
SecretName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    ),
]
MAX_SECRET_CHARS = 10_000


class SecretSet(InputSchema):
    name: SecretName
    # SecretStr: a repr, a log line or a validation error shows `**********`, never the value.
    value: SecretStr

    @field_validator("value")
    @classmethod
    def _length(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value())
        if size == 0:
            raise ValueError("must not be empty")
        if size > MAX_SECRET_CHARS:
            raise ValueError(f"must be at most {MAX_SECRET_CHARS} characters")
        return value


class SecretResponse(ResponseSchema):
    name: str
    set_by: str = Field(
        description="Who stored the current value: an API key's prefix (cq_...), local or cli."
    )
    created_at: datetime
    updated_at: datetime = Field(description="When the current value was set.")


__all__ = ["MAX_SECRET_CHARS", "SecretName", "SecretResponse", "SecretSet"]
