"""Watches what a server logs while a test attacks it: no ERROR line, no traceback.

Both loguru (our code) and the standard library's loggers (asyncio's "Task exception was never
retrieved", uvicorn's "Exception in ASGI application", Strawberry's task logger) are watched: a
hostile client must not be able to write either, or it has found a route to flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from loguru import logger


@dataclass
class LogWatch:
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.problems, "the server logged:\n" + "\n".join(self.problems)


class _StdHandler(logging.Handler):
    def __init__(self, watch: LogWatch) -> None:
        super().__init__(level=logging.ERROR)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        self.watch.problems.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextmanager
def watching_logs() -> Iterator[LogWatch]:
    """Records every ERROR (or worse) line and every line carrying a traceback, at any level."""
    watch = LogWatch()

    def sink(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        if record["level"].no >= logger.level("ERROR").no or record["exception"] is not None:
            watch.problems.append(f"{record['level'].name} {record['message']}")

    sink_id = logger.add(sink, level="TRACE", format="{message}", catch=False)
    handler = _StdHandler(watch)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield watch
    finally:
        root.removeHandler(handler)
        logger.remove(sink_id)
