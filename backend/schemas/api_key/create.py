from __future__ import annotations

from backend.core.identity import Role
from backend.schemas.base import InputSchema
from backend.schemas.common.fields import Name


class ApiKeyCreate(InputSchema):
    """A new key: a name that says who or what holds it (`ci`, `status-dashboard`), and a role."""

    name: Name
    role: Role
