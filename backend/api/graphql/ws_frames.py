"""The client frames of both websocket protocols, checked before Strawberry's handlers see them.

Strawberry indexes into each frame as if it were well formed: `[]`, `5`, `{"type": "start"}`
without a payload, or an object as `id` raised inside its handlers (a traceback per frame, and a
socket dropped without a close code). Every frame is checked here against its protocol's shape
first; what each protocol answers to a bad one is up to its handler (websocket.py):
graphql-transport-ws closes with 4400 and the reason, as its protocol says; the legacy protocol
answers `connection_error` (not JSON) or `error` (a bad message), as subscriptions-transport-ws
servers do, and keeps the socket.

Payloads may carry more than the protocols name (clients add their own keys); those are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, TypeAdapter, ValidationError

# A close frame's reason is at most 123 bytes (RFC 6455 §5.5).
MAX_REASON_BYTES = 123


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class OperationPayload(_Strict):
    query: StrictStr
    operationName: StrictStr | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None


class _Init(_Strict):
    type: Literal["connection_init"]
    payload: Any = None  # the handlers answer a payload that is not an object themselves


class _Ping(_Strict):
    type: Literal["ping", "pong"]
    payload: dict[str, Any] | None = None


class _Subscribe(_Strict):
    type: Literal["subscribe", "start"]
    id: StrictStr
    payload: OperationPayload


class _Stop(_Strict):
    type: Literal["complete", "stop"]
    id: StrictStr


class _Terminate(_Strict):
    type: Literal["connection_terminate"]


TRANSPORT_FRAMES: dict[str, type[_Strict]] = {
    "connection_init": _Init,
    "ping": _Ping,
    "pong": _Ping,
    "subscribe": _Subscribe,
    "complete": _Stop,
}
LEGACY_FRAMES: dict[str, type[_Strict]] = {
    "connection_init": _Init,
    "connection_terminate": _Terminate,
    "start": _Subscribe,
    "stop": _Stop,
}


@dataclass(frozen=True)
class BadFrame:
    """Why a frame was refused, and the operation it named if its `id` was a string."""

    reason: str
    operation_id: str | None = None
    not_an_object: bool = False

    @property
    def close_reason(self) -> str:
        encoded = self.reason.encode()
        if len(encoded) <= MAX_REASON_BYTES:
            return self.reason
        return encoded[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


@dataclass(frozen=True)
class NotJson:
    """A text frame that does not parse as JSON (the adapter yields this instead of raising)."""

    reason: str


_OBJECT = TypeAdapter(dict[str, Any])


def check_frame(frame: object, shapes: dict[str, type[_Strict]]) -> BadFrame | None:
    """None when `frame` is a message of the protocol whose `shapes` are given."""
    if isinstance(frame, NotJson):
        return BadFrame(f"Message is not valid JSON: {frame.reason}", not_an_object=True)
    try:
        message = _OBJECT.validate_python(frame, strict=True)
    except ValidationError:
        return BadFrame("Message must be a JSON object with a `type`.", not_an_object=True)
    kind = message.get("type")
    operation_id = message.get("id") if isinstance(message.get("id"), str) else None
    shape = shapes.get(kind) if isinstance(kind, str) else None
    if shape is None:
        known = ", ".join(shapes)
        what = "no `type`" if kind is None else f"the unknown type {kind!r}"
        return BadFrame(f"Message has {what}; expected one of {known}.", operation_id)
    try:
        shape.model_validate(message)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        return BadFrame(f"Invalid {kind} message: {where}: {first['msg']}.", operation_id)
    return None
