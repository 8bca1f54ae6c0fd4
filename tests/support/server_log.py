"""What a server in this process logs at ERROR or above, for tests that assert it logs none.

Both logging systems are watched: loguru (the application) and the standard library's (uvicorn
and Strawberry report errors there when nothing routes them to loguru).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.ERROR)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def error_lines() -> Iterator[list[str]]:
    """Every ERROR (or worse) line logged inside the block, from any thread."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message).rstrip("\n")), level="ERROR")
    handler = _Collect(lines)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        logger.remove(sink)
