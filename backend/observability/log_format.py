"""One JSON object per log line (CREWQL_LOG_FORMAT=json), for ELK, Datadog, Loki and the like.

loguru's own `serialize=True` writes its whole record (nested, with file paths, process and
thread objects) under a `record` key, which log shippers do not map to their standard fields. This
formatter writes a flat object with the names those tools expect (`timestamp`, `level`, `logger`,
`message`) plus the context of the work the line belongs to, when known: `request_id`,
`operation`, `workspace_id`, `execution_id`, `worker_id` (bound with `logger.contextualize`)
and `trace_id`/`span_id` of the current OpenTelemetry span (when tracing is on).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson

from backend.observability.tracing_context import current_trace_ids

# Context keys copied from `extra` when present, in this order.
CONTEXT_KEYS = (
    "request_id",
    "operation",
    "workspace_id",
    "execution_id",
    "worker_id",
    "trace_id",
    "span_id",
)
_JSON_KEY = "_crewql_json"


def json_payload(record: Any, service: str) -> dict[str, Any]:
    """The object written for one loguru record."""
    payload: dict[str, Any] = {
        "timestamp": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "logger": record["name"],
        "message": record["message"],
        "service": service,
        "function": record["function"],
        "line": record["line"],
        "process": record["process"].id,
    }
    extra = record["extra"]
    for key in CONTEXT_KEYS:
        value = extra.get(key)
        if value is not None:
            payload[key] = str(value)
    if "trace_id" not in payload:
        ids = current_trace_ids()
        if ids is not None:
            payload["trace_id"], payload["span_id"] = ids
    for key, value in extra.items():  # anything else bound (e.g. audit=True), if plain
        plain = isinstance(value, str | int | float | bool)
        if plain and key not in payload and not key.startswith("_") and key not in CONTEXT_KEYS:
            payload[key] = value
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        import traceback

        payload["exception"] = "".join(
            traceback.format_exception(exception.type, exception.value, exception.traceback)
        )
    return payload


def json_formatter(service: str) -> Any:
    """A loguru `format` callable writing `json_payload` as one line. loguru treats the string a
    format callable returns as a template, so the JSON goes through `extra` and is referenced,
    never interpolated (braces in a message would otherwise be read as fields)."""

    def format_record(record: Any) -> str:
        record["extra"][_JSON_KEY] = orjson.dumps(
            json_payload(record, service), default=str
        ).decode()
        return "{extra[" + _JSON_KEY + "]}\n"

    return format_record
