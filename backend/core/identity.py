"""Who is calling: a key's role and the principal a request acts as.

The bottom of the import graph (the standard library and `core.errors` only), so schemas,
services and the API layer may all name a `Role` or a `Principal`. How a key becomes a principal
is `services/auth_service.py`; which role an operation needs is `core/auth.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from backend.core.errors import DomainError

# Created by the first migration; the workspace of every request when authentication is off.
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-7000-8000-000000000001")


class Role(StrEnum):
    """A key's role. Each role may do everything the roles below it may (viewer < editor < admin),
    so one comparison answers "may this key run that operation"."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    # str's own comparisons would order the roles alphabetically (admin < editor < viewer).
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank


_RANKS = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as authentication established it.

    `key_prefix` is the key's public part (`cq_ab12cd34`): safe to log and to show, and what an
    operator sees in `crewql apikey list`. `key_id` is None only when authentication is off.
    """

    workspace_id: uuid.UUID
    key_id: uuid.UUID | None
    key_prefix: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role >= role

    def require(self, role: Role, operation: str | None = None) -> None:
        """Raises Forbidden unless this principal's role is at least `role`."""
        if not self.may(role):
            raise Forbidden(role, self.role, operation)

    @property
    def limit_key(self) -> str:
        """What per-key limits count by: the key, or one shared bucket when auth is off."""
        return str(self.key_id) if self.key_id is not None else self.key_prefix


# With authentication off (the embedded quick start on a loopback address), every request acts
# as the admin of the default workspace; the prefix names that mode in audit lines.
LOCAL_PRINCIPAL = Principal(
    workspace_id=DEFAULT_WORKSPACE_ID, key_id=None, key_prefix="local", role=Role.ADMIN
)


class Forbidden(DomainError):
    code = "FORBIDDEN"

    def __init__(self, required: Role, actual: Role, operation: str | None = None) -> None:
        what = f"`{operation}`" if operation else "this operation"
        super().__init__(f"A key with role {required} or higher is required for {what}.")
        self.required = required
        self.actual = actual
