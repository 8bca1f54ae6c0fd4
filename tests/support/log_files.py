"""Log files of a test app, to check that a secret is not in them: settings that log to files at
DEBUG under a temporary logs/ directory, the logging set up that way for a test, and reading
every file back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from backend.config.logging import configure_logging
from backend.config.settings import Settings, load_settings
from tests.support.databases import make_settings


def file_logging_settings(database_url: str, log_dir: Path, **overrides: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        log_to_files=True,
        log_dir=log_dir,
        log_level="DEBUG",
        **overrides,
    )


@asynccontextmanager
async def logging_to_files(settings: Settings) -> AsyncIterator[Path]:
    """Every log line inside the block goes to files under `settings.log_dir`, as a
    deployment's would; the usual test logging is back afterwards."""
    configure_logging(settings)
    try:
        yield settings.log_dir
    finally:
        await logger.complete()
        configure_logging(make_settings(settings.database_url))


def read_logs(directory: Path) -> str:
    files = list(directory.glob("*.log"))
    assert files, f"no log file in {directory}"
    return "\n".join(f.read_text() for f in files)
