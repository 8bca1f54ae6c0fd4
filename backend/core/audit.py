"""The audit trail: one log line per mutation and per authentication failure.

A line says which workspace, which key (by its public prefix), which operation and how it
ended; it never carries a key's secret or hash, which is why this function takes a prefix and
not a token. Lines go through loguru like every other log line, bound with `audit=True`, so a
deployment can route them to a sink of their own
(`logger.add(sink, filter=lambda r: r["extra"].get("audit"))`).
"""

from __future__ import annotations

import re
import uuid

from loguru import logger

from backend.core.identity import Principal

# Operation names and prefixes come from the client; a newline in one could forge a second line.
_UNSAFE = re.compile(r"[^\w.:/-]")
MAX_FIELD = 100


def _clean(value: object) -> str:
    text = _UNSAFE.sub("?", str(value))
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "…"


def audit(
    *,
    operation: str | None,
    outcome: str,
    principal: Principal | None = None,
    workspace_id: uuid.UUID | None = None,
    key_prefix: str | None = None,
    detail: str | None = None,
) -> None:
    """Logs one audit line.

    `principal` when the caller is known; otherwise `workspace_id`/`key_prefix` for what is known
    of a failed attempt (the prefix of a malformed or unknown key, from `public_prefix`).
    `outcome` is short and stable (`ok`, `unauthenticated`, `forbidden`, `rate_limited`, or an
    error code); `detail` adds a reason that is safe to log (`revoked`, `unknown key`).
    """
    if principal is not None:
        workspace_id = principal.workspace_id
        key_prefix = principal.key_prefix
    logger.bind(audit=True).info(
        "audit workspace={} key={} operation={} outcome={}{}",
        workspace_id or "-",
        _clean(key_prefix) if key_prefix else "-",
        _clean(operation) if operation else "-",
        _clean(outcome),
        f" detail={_clean(detail)}" if detail else "",
    )
