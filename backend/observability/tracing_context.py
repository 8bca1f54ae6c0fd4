"""The current OpenTelemetry trace and span ids, when the optional `otel` extra is installed.

Kept apart from `tracing.py` (which configures the SDK) so that logging can ask for ids without
importing the SDK: only the API package is needed, and without it there are no ids to ask for.
"""

from __future__ import annotations

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - the otel extra is not installed
    _trace = None  # type: ignore[assignment]


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in W3C hex form while a recording span is current, else None."""
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
