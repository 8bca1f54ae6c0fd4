"""Expected failures of mutations, as types of the schema (clients switch on `__typename`)."""

from __future__ import annotations

import uuid

import strawberry

from backend.api.graphql.types.enums import ExecutionStatus


@strawberry.interface(description="Something the caller can fix; `code` is stable.")
class Error:
    code: str
    message: str


@strawberry.type
class FieldError:
    field: str = strawberry.field(description="Path of the input field, camelCase, dot-separated.")
    message: str


@strawberry.type(description="The input broke a rule; every bad field is listed.")
class ValidationError(Error):
    fields: list[FieldError]


@strawberry.type(description="No object with this id exists in your workspace.")
class NotFoundError(Error):
    entity: str
    id: strawberry.ID


@strawberry.type(description="The change collides with stored data, e.g. a name already taken.")
class ConflictError(Error):
    field: str | None


@strawberry.type(description="The object is still referenced and was left in place.")
class InUseError(Error):
    used_by: list[str]


@strawberry.type(description="The object was deleted.")
class Deleted:
    id: strawberry.ID

    @classmethod
    def of(cls, deleted: uuid.UUID) -> Deleted:
        return cls(id=strawberry.ID(str(deleted)))


@strawberry.type(description="The execution is not in a status that allows this.")
class InvalidTransitionError(Error):
    current_status: ExecutionStatus = strawberry.field(
        description="The execution's status right now."
    )
