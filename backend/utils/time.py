"""One clock for the whole application: timezone-aware UTC, at microsecond precision."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
