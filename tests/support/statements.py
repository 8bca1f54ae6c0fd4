"""The SQL statements a piece of code sends, seen through SQLAlchemy's cursor events: how tests
count round trips without timing anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def watched_statements(target: Any, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """Statements (their SQL text) for which `keep` is true, sent through `target` (a sync
    Engine, or the Engine class for every engine) while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        if keep(args[2]):
            seen.append(args[2])

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)
