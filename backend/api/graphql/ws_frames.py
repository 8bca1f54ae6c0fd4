"""The client frames of both websocket protocols, checked before Strawberry's handlers see them.

Strawberry indexes into each frame as if it were well formed: `[]`, `5`, `{"type": "start"}`
without a payload, or an object as `id` raised inside its handlers (a traceback per frame, and a
socket dropped without a close code). Every frame is checked here against its protocol's shape
first; what each protocol answers to a bad one is up to its handler (websocket.py):
graphql-transport-ws closes with 4400 and the reason, as its protocol says; the legacy protocol
answers `connection_error` (not JSON) or `error` (a bad message), as subscriptions-transport-ws
servers do, and keeps the socket.

Payloads may carry more than the protocols name (clients add their own keys); those are kept.
Frames are read by GuardedWebSocket (the view's websocket adapter), which yields NotJson for text
that does not parse and enforces the per-socket message rate.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, TypeAdapter, ValidationError
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonTextMessageReceived, WebSocketDisconnected

from backend.api.graphql.direct import frame_head
from backend.api.transport import ASGI_SEND
from backend.core.rate_limit import TokenBucketLimiter

# A close frame's reason is at most 123 bytes (RFC 6455 §5.5).
MAX_REASON_BYTES = 123
POLICY_CLOSE = 1008


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


class GuardedWebSocket(ASGIWebSocketAdapter):
    """Yields each text frame as JSON, or NotJson for text that is not (handlers answer it as
    their protocol says); closes the socket with 1008 past the per-socket message rate."""

    def __init__(self, view: Any, request: Any, response: Any) -> None:
        super().__init__(view, request, response)
        settings = view.settings
        self.bucket = TokenBucketLimiter(settings.ws_messages_per_second, settings.ws_message_burst)
        self.rate = settings.ws_messages_per_second
        self._asgi_send: Callable[[Message], Awaitable[None]] | None = self.ws.scope.get(ASGI_SEND)

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                except KeyError as error:  # a binary frame
                    raise NonTextMessageReceived from error
                if self.bucket.acquire("socket") > 0:
                    await self.close(POLICY_CLOSE, f"Too many messages: at most {self.rate:g}/s")
                    return
                try:
                    frame = self.view.decode_json(text)
                except JSONDecodeError as error:
                    frame = NotJson(error.msg)
                yield frame
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        """A `next`/`data` message whose payload is a result other subscribers share
        (shared_events.py) goes out with the payload encoded once for all of them; any other
        message is encoded as Strawberry does."""
        payload = message.get("payload")
        view: Any = self.view
        if isinstance(payload, dict) and len(payload) == 1 and "data" in payload:
            shared = view.shared_events.encoded_payload(payload["data"], view.encode_json)
            if shared is not None:
                rest = {k: v for k, v in message.items() if k != "payload"}
                try:
                    await self.send_text(f"{frame_head(view.encode_json, rest)}{shared}}}")
                except WebSocketDisconnect as exc:  # as Strawberry's send_json reports it
                    raise WebSocketDisconnected from exc
                return
        await super().send_json(message)

    async def send_text(self, text: str) -> None:
        """A frame encoded already (direct.py); raises WebSocketDisconnect when the client has
        gone.

        While the socket is open it goes straight to the server's ASGI `send` (kept by
        transport.KeepAsgiSend) with what Starlette's WebSocket.send does for a `websocket.send`
        message in that state: an OSError from the server (the client went away) marks the
        socket disconnected and raises WebSocketDisconnect(1006). In any other state, or
        without the kept `send`, Starlette's WebSocket sends it, with its own checks."""
        ws = self.ws
        send = self._asgi_send
        if send is None or ws.application_state is not WebSocketState.CONNECTED:
            await ws.send_text(text)
            return
        try:
            await send({"type": "websocket.send", "text": text})
        except OSError:
            ws.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from None


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
