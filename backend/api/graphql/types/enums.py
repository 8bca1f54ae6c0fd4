"""The schema's enums, registered with Strawberry once, before any type refers to them.

Importing this module first keeps one definition per enum (a second, implicit one would make
Strawberry refuse the schema).
"""

from __future__ import annotations

import strawberry

from backend.schemas import CrewProcess, EventType, ExecutionStatus, TaskStatus

strawberry.enum(CrewProcess, description="How a crew runs its tasks.")
strawberry.enum(ExecutionStatus, description="Where an execution is in its lifecycle.")
strawberry.enum(EventType, description="What an execution event records.")
strawberry.enum(TaskStatus, description="Where one task of an execution is.")

__all__ = ["CrewProcess", "EventType", "ExecutionStatus", "TaskStatus"]
