"""Cursor handling for every connection: opaque cursors, a capped page size."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from strawberry.dataloader import DataLoader

from backend.api.graphql.errors import ClientError
from backend.api.graphql.types.pagination import Connection, Edge, PageInfo
from backend.config.settings import Settings
from backend.core.errors import NotFound
from backend.schemas import ListFilter, PageRequest

NodeT = TypeVar("NodeT")
LoadedT = TypeVar("LoadedT")
_PREFIX = "c1:"


def encode_cursor(item_id: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
        if not raw.startswith(_PREFIX):
            raise ValueError(raw)
        return uuid.UUID(raw[len(_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ClientError(
            "`after` is not a cursor this server gave out; use pageInfo.endCursor."
        ) from None


def page_request(settings: Settings, first: int | None, after: str | None) -> PageRequest:
    size = settings.default_page_size if first is None else first
    if not 0 <= size <= settings.max_page_size:
        raise ClientError(
            f"`first` must be between 0 and {settings.max_page_size}.", argument="first"
        )
    return PageRequest(first=size, after=None if after is None else decode_cursor(after))


class PageFlags(Protocol):
    """What a connection's pageInfo needs from a page the service read (a `Page`, a crew graph)."""

    @property
    def has_next_page(self) -> bool: ...
    @property
    def has_previous_page(self) -> bool: ...


def connection(nodes: Sequence[NodeT], page: PageFlags) -> Connection[NodeT]:
    edges = [Edge(cursor=encode_cursor(node.id), node=node) for node in nodes]  # type: ignore[attr-defined]
    return Connection(
        edges=edges,
        nodes=list(nodes),
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


class CreatedBetween(Protocol):
    """Every list's filter input: these two, and `name_contains` on those with names."""

    created_after: datetime | None
    created_before: datetime | None


def list_filter(flt: CreatedBetween) -> ListFilter:
    """A list's `filter` argument as the service takes it: its name and time conditions (a
    filter without `nameContains` has none); a time without an offset is taken as UTC."""

    def utc(moment: datetime | None) -> datetime | None:
        if moment is None or moment.tzinfo is not None:
            return moment
        return moment.replace(tzinfo=UTC)

    return ListFilter(
        getattr(flt, "name_contains", None), utc(flt.created_after), utc(flt.created_before)
    )


def parse_id(value: str) -> uuid.UUID | None:
    """An id that is not a UUID names nothing: it is answered as an unknown id."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


async def load_by_id(loader: DataLoader[uuid.UUID, LoadedT | None], value: str) -> LoadedT | None:
    """What a query for one object by id finds: None for an id that names nothing."""
    parsed = parse_id(value)
    return None if parsed is None else await loader.load(parsed)


def known_id(value: str, entity: str) -> uuid.UUID:
    """The id of the `entity` a mutation acts on; one that is not an id names nothing, so the
    answer is the NotFound (a member of the mutation's result) of an unknown id."""
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound(entity, value)
    return parsed


def filter_id(value: str | None, field: str) -> uuid.UUID | None:
    """An id given in a filter: None when absent; one that is not an id is the caller's error."""
    return argument_id(value, f"filter.{field}", "filter")


def argument_id(value: str | None, path: str, argument: str) -> uuid.UUID | None:
    """An optional id that narrows what a query reads (`path` names it, within `argument`):
    None when absent; one that is not an id is the caller's error, not an empty answer."""
    if value is None:
        return None
    parsed = parse_id(value)
    if parsed is None:
        raise ClientError(f"`{path}` is not a valid id.", argument=argument)
    return parsed
