"""Who is calling, what their key may do, and the errors that refuse a request.

This module knows nothing of GraphQL or HTTP: the API layer asks `required_role` for the role an
operation needs (from its type and root field names, once per operation, never per list item)
and turns the errors below into `extensions.code` values, HTTP statuses and websocket close codes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from backend.core.errors import DomainError
from backend.models.workspace import DEFAULT_WORKSPACE_ID


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

OperationKind = Literal["query", "mutation", "subscription"]

# What each kind of operation needs unless a root field is listed in FIELD_ROLES. Reading and
# watching is for every key; any change to crews, agents, tasks or executions needs an editor.
KIND_ROLES: dict[OperationKind, Role] = {
    "query": Role.VIEWER,
    "subscription": Role.VIEWER,
    "mutation": Role.EDITOR,
}

# Root fields that need more than their operation kind: managing a workspace's keys is for
# admins, and so is listing them (a list of who holds which role is itself sensitive).
FIELD_ROLES: dict[str, Role] = {
    "apiKeys": Role.ADMIN,
    "createApiKey": Role.ADMIN,
    "revokeApiKey": Role.ADMIN,
    # Secrets: admins set and delete them; their names (never values) are for editors, who
    # attach them to agents. MCP servers and the HTTP allowlist decide what tools can reach.
    "secrets": Role.EDITOR,
    "setSecret": Role.ADMIN,
    "deleteSecret": Role.ADMIN,
    "createMcpServer": Role.ADMIN,
    "updateMcpServer": Role.ADMIN,
    "deleteMcpServer": Role.ADMIN,
    "setHttpAllowlist": Role.ADMIN,
}


def required_role(kind: OperationKind, root_fields: Iterable[str]) -> Role:
    """The least role that may run an operation of `kind` selecting these root fields.

    Introspection (`__schema`, `__type`, `__typename`) needs what the operation kind needs;
    whether introspection is allowed at all is a separate setting.
    """
    needed = KIND_ROLES[kind]
    for name in root_fields:
        role = FIELD_ROLES.get(name)
        if role is not None and role > needed:
            needed = role
    return needed


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


class Unauthenticated(DomainError):
    """No key, a malformed one, an unknown one or a revoked one.

    The caller always reads the same message, so that probing cannot tell an unknown key from a
    revoked one; `reason` says which it was, for the audit log only.
    """

    code = "UNAUTHENTICATED"
    MESSAGE = "A valid API key is required: send `Authorization: Bearer <key>`."

    def __init__(self, reason: str, key_prefix: str | None = None) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason
        self.key_prefix = key_prefix


class Forbidden(DomainError):
    code = "FORBIDDEN"

    def __init__(self, required: Role, actual: Role, operation: str | None = None) -> None:
        what = f"`{operation}`" if operation else "this operation"
        super().__init__(f"A key with role {required} or higher is required for {what}.")
        self.required = required
        self.actual = actual


class RateLimited(DomainError):
    """Too many requests for one key; `retry_after` is when the next one would be let through."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Too many requests for this API key; retry after {self.retry_after_seconds} s."
        )

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds, rounded up, for the `Retry-After` header (RFC 9110 §10.2.3)."""
        return max(1, math.ceil(self.retry_after))


def bearer_token(value: object) -> str | None:
    """The key in an `Authorization` value (`Bearer <key>`, scheme case-insensitive, RFC 9110
    §11.1), or None. Websockets pass the same value in `connection_init`'s `authorization`, so
    one function reads both; anything that is not a string is no credential at all."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
