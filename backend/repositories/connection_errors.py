"""Which database errors mean "the connection went away" (retry on a new one) rather than "this
statement is wrong" (do not). Shared by the runner's writes and the subscriptions' reads."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

CONNECTION_ERRORS = (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, CONNECTION_ERRORS)
