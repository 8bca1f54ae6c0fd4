"""Domain errors: what a caller did wrong, with a stable code, raised by services.

The API layer turns each into a typed result of the schema (mutations) or a GraphQL error carrying
`extensions.code` (queries); anything that is not a DomainError is a bug, logged and masked.
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    code = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"

    def __init__(self, problems: list[FieldProblem], message: str = "Input is not valid.") -> None:
        super().__init__(message)
        self.problems = problems

    @classmethod
    def single(cls, field_name: str, message: str) -> ValidationFailed:
        return cls([FieldProblem(field_name, message)], message)


class Unavailable(DomainError):
    """The database could not be reached for longer than a caller should wait."""

    code = "UNAVAILABLE"


class NotFound(DomainError):
    code = "NOT_FOUND"

    def __init__(self, entity: str, entity_id: object) -> None:
        super().__init__(f"{entity} {entity_id} does not exist.")
        self.entity = entity
        self.entity_id = str(entity_id)


class Conflict(DomainError):
    code = "CONFLICT"

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field = field_name


class InUse(DomainError):
    code = "IN_USE"

    def __init__(self, entity: str, entity_id: object, used_by: list[str]) -> None:
        super().__init__(f"{entity} {entity_id} is still used by {', '.join(used_by)}.")
        self.entity = entity
        self.entity_id = str(entity_id)
        self.used_by = used_by


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"

    def __init__(self, entity_id: object, current: str, action: str) -> None:
        super().__init__(f"Cannot {action} execution {entity_id}: it is {current}.")
        self.entity_id = str(entity_id)
        self.current_status = current
        self.action = action
