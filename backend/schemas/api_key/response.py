"""What anyone may see of a key: never its secret or its hash, except `token` once at creation."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from backend.core.identity import Role
from backend.schemas.base import ResponseSchema


class ApiKeyResponse(ResponseSchema):
    id: uuid.UUID
    name: str
    role: Role
    # The public start of the key (`cq_ab12cd34`): how people tell keys apart and name one to
    # revoke; audit lines carry it too.
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ResponseSchema):
    """A key just made. `token` is the whole key, shown this once: only its hash is stored."""

    api_key: ApiKeyResponse
    # Left out of repr, so that a log line or a traceback that shows this object hides it.
    token: str = Field(repr=False)
