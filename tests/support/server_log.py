"""What a server in this process logs at ERROR or above, for tests that assert it logs none.

Both logging systems are watched: loguru (the application) and the standard library's (uvicorn
and Strawberry report errors there when nothing routes them to loguru).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.ERROR)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def error_lines() -> Iterator[list[str]]:
    """Every ERROR (or worse) line logged inside the block, from any thread, and every line of
    any level that carries a traceback (a hostile client must not be able to write either)."""
    lines: list[str] = []
    error_level = logger.level("ERROR").no

    def keep(message: Any) -> None:
        record = message.record
        if record["level"].no >= error_level or record["exception"] is not None:
            lines.append(str(message).rstrip("\n"))

    sink = logger.add(keep, level="TRACE")
    handler = _Collect(lines)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        logger.remove(sink)
