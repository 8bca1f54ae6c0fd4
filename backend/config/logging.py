"""Logging: loguru everywhere, with the standard library's loggers routed into it.

Files are named `{service_name}.{log_level}.{date}.log` under the log directory:
one file at the configured level and one for errors only, so an operator can tail either.
"""

from __future__ import annotations

import inspect
import logging
import sys
from types import FrameType

from loguru import logger

from backend.config.settings import Settings
from backend.observability.log_format import json_formatter

CONSOLE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
)
FILE_FORMAT = (
    "{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} | {level: <8} | {process} | {name}:{line} - {message}"
)

# Standard-library loggers whose records we want, and the level each starts at.
ROUTED_LOGGERS = {
    "uvicorn": logging.INFO,
    "uvicorn.error": logging.INFO,
    "uvicorn.access": logging.WARNING,
    "strawberry": logging.INFO,
    "strawberry.execution": logging.ERROR,
    "sqlalchemy": logging.WARNING,
    "alembic": logging.INFO,
    "alembic.runtime.migration": logging.WARNING,
    "asyncio": logging.WARNING,
    # aiosqlite logs two DEBUG records (with the SQL and its parameters) for every driver call.
    "aiosqlite": logging.WARNING,
}


# loguru's levels as standard-library levels (TRACE: everything; SUCCESS sits at 25 in loguru).
STD_LEVELS = {
    "TRACE": logging.NOTSET,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "SUCCESS": 25,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


class InterceptHandler(logging.Handler):
    """Forwards a standard-library record to loguru, keeping its level and call site."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings, *, service_name: str | None = None) -> None:
    """(Re)configure sinks; safe to call more than once (tests and the CLI both do)."""
    name = service_name or settings.service_name
    # JSON: every line one object with the request/execution context (observability/log_format).
    json_format = json_formatter(name) if settings.json_logs else None
    logger.remove()
    logger.add(
        sys.stderr,
        level=settings.log_level,
        format=json_format or CONSOLE_FORMAT,
        colorize=False if json_format else None,
        backtrace=False,
        diagnose=False,
    )
    if settings.log_to_files:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        for level in dict.fromkeys([settings.log_level, "ERROR"]):
            logger.add(
                str(settings.log_dir / f"{name}.{level}.{{time:YYYY-MM-DD}}.log"),
                level=level,
                format=json_format or FILE_FORMAT,
                rotation="00:00",
                retention="14 days",
                enqueue=True,
                backtrace=False,
                diagnose=False,
            )

    # The root level is the configured one, not 0: a record below it would be built, routed to
    # loguru and dropped there, which on SQLite cost a fifth of the CPU of a small query
    # (docs/performance.md). Loggers listed above keep their own levels.
    root_level = STD_LEVELS.get(settings.log_level, logging.NOTSET)
    logging.basicConfig(handlers=[InterceptHandler()], level=root_level, force=True)
    for logger_name, std_level in ROUTED_LOGGERS.items():
        std_logger = logging.getLogger(logger_name)
        std_logger.handlers = []
        std_logger.propagate = True
        std_logger.setLevel(std_level)
    if settings.database_echo:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
