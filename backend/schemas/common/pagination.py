"""Keyset pagination shared by every list: newest first, cursors are opaque to clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    first: int
    after: uuid.UUID | None = None


@dataclass(frozen=True)
class ListFilter:
    """What every list may be narrowed by: part of the name (any case), and when the item was
    created (`created_after` inclusive, `created_before` exclusive). A repository's own filters
    (a task's agent, an execution's statuses) are typed keyword arguments of its `list`."""

    name_contains: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


EVERYTHING = ListFilter()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool
    has_previous_page: bool
