"""The websocket client of the fan-out load (bench/wsload.py): one asyncio Protocol per
subscriber, speaking just enough RFC 6455 and graphql-transport-ws for the measurement.

Not the `websockets` library: at 20,000 messages a second on a 2-core machine that the server
shares, the load generator's own cost is what a library would add to the latency being measured.
Covered: the opening handshake (checked: status 101, Sec-WebSocket-Accept, the subprotocol),
masked client frames, unmasked server frames (fragmented or not), ping/pong, close, and
optionally permessage-deflate, which browsers offer by default. Each event's latency is the time
its bytes were read minus its `createdAt`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson

_c_apply_mask: Callable[[bytes, bytes], bytes] | None
try:
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pure Python fallback
    _c_apply_mask = None

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "graphql-transport-ws"
OPERATION_ID = "1"

# What a live log view selects: every field of the event.
SUBSCRIPTION = (
    "subscription Watch($id: ID!) { executionEvents(executionId: $id, after: 0) "
    "{ executionId seq type status taskPosition message data createdAt } }"
)
TERMINAL = frozenset(
    {"EXECUTION_COMPLETED", "EXECUTION_FAILED", "EXECUTION_CANCELLED", "EXECUTION_CRASHED"}
)


def apply_mask(data: bytes, mask: bytes) -> bytes:
    if _c_apply_mask is not None:
        result: bytes = _c_apply_mask(data, mask)
        return result
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    head = bytearray([0x80 | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += n.to_bytes(8, "big")
    mask = os.urandom(4)
    return bytes(head) + mask + apply_mask(payload, mask)


def parse_created_at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class ProtocolFailure(Exception):
    pass


@dataclass
class Stats:
    """What one subscriber saw."""

    seqs: array[int] = field(default_factory=lambda: array("i"))
    latencies: array[float] = field(default_factory=lambda: array("d"))  # seconds, same order
    types: list[str] = field(default_factory=list)
    ordered: bool = True  # every seq was exactly the previous one + 1, starting at 1
    ended_by: str | None = None  # "complete", "error", or None (still open)
    errors: list[Any] = field(default_factory=list)


class Subscriber(asyncio.Protocol):
    def __init__(
        self,
        host: str,
        path: str,
        variables: dict[str, Any],
        deflate: bool,
        on_first_event: Callable[[Subscriber], None],
        on_end: Callable[[Subscriber], None],
    ) -> None:
        self.host = host
        self.path = path
        self.variables = variables
        self.offer_deflate = deflate
        self.on_first_event = on_first_event
        self.on_end = on_end
        self.stats = Stats()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.inflater: Any = None  # zlib decompress object when permessage-deflate is on
        self.fresh_inflater_per_message = False
        self.fragments: list[bytes] = []
        self.fragments_compressed = False
        self.close_sent = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failure: str | None = None
        self.counted_end = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
        ]
        if self.offer_deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.buffer += data
        try:
            if not self.upgraded and not self._handshake():
                return
            self._frames(received)
        except ProtocolFailure as exc:
            self.fail(str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if self.stats.ended_by is None and self.failure is None:
            self.fail(f"connection lost: {exc or 'closed by the server'}")

    # ------------------------------------------------------------------ protocol

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        if not self.acked.done():
            self.acked.set_exception(ProtocolFailure(reason))
        self.on_end(self)
        if self.transport is not None:
            self.transport.abort()

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        if not head[0].startswith("HTTP/1.1 101"):
            raise ProtocolFailure(f"handshake refused: {head[0]}")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise ProtocolFailure("bad Sec-WebSocket-Accept")
        if headers.get("sec-websocket-protocol") != SUBPROTOCOL:
            raise ProtocolFailure(f"server chose {headers.get('sec-websocket-protocol')!r}")
        extensions = headers.get("sec-websocket-extensions", "")
        if "permessage-deflate" in extensions:
            if not self.offer_deflate:
                raise ProtocolFailure("server enabled permessage-deflate unasked")
            self.inflater = zlib.decompressobj(wbits=-15)
            self.fresh_inflater_per_message = "server_no_context_takeover" in extensions
        self.upgraded = True
        self.send_json({"type": "connection_init", "payload": {}})
        return True

    def _frames(self, received: float) -> None:
        buf = self.buffer
        while True:
            n = len(buf)
            if n < 2:
                return
            b0, b1 = buf[0], buf[1]
            if b1 & 0x80:
                raise ProtocolFailure("the server masked a frame")
            length = b1 & 0x7F
            start = 2
            if length == 126:
                if n < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                start = 4
            elif length == 127:
                if n < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                start = 10
            end = start + length
            if n < end:
                return
            payload = bytes(buf[start:end])
            del buf[:end]
            self._frame(b0, payload, received)

    def _frame(self, b0: int, payload: bytes, received: float) -> None:
        opcode = b0 & 0x0F
        final = b0 & 0x80
        if opcode in (0x1, 0x2, 0x0):
            if opcode != 0x0:
                self.fragments_compressed = bool(b0 & 0x40)
            self.fragments.append(payload)
            if not final:
                return
            message = b"".join(self.fragments)
            self.fragments = []
            if self.fragments_compressed:
                if self.inflater is None:
                    raise ProtocolFailure("compressed frame without permessage-deflate")
                if self.fresh_inflater_per_message:
                    self.inflater = zlib.decompressobj(wbits=-15)
                message = self.inflater.decompress(message + b"\x00\x00\xff\xff")
            self._message(orjson.loads(message), received)
        elif opcode == 0x8:  # close: answer it; the server then closes the TCP connection
            if not self.close_sent:
                self.close_sent = True
                assert self.transport is not None
                self.transport.write(frame(0x8, payload[:2]))
        elif opcode == 0x9:
            assert self.transport is not None
            self.transport.write(frame(0xA, payload))
        elif opcode == 0xA:
            pass
        else:
            raise ProtocolFailure(f"unknown opcode {opcode}")

    def _message(self, message: dict[str, Any], received: float) -> None:
        kind = message.get("type")
        if kind == "next":
            payload = message.get("payload") or {}
            data = payload.get("data") or {}
            event = data.get("executionEvents")
            if payload.get("errors") or event is None:
                self.stats.errors.append(payload.get("errors") or payload)
                return
            self._event(event, received)
        elif kind == "connection_ack":
            self.send_json(
                {
                    "id": OPERATION_ID,
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": self.variables},
                }
            )
            if not self.acked.done():
                self.acked.set_result(None)
        elif kind == "complete":
            self.stats.ended_by = "complete"
            self.on_end(self)
        elif kind == "error":
            self.stats.ended_by = "error"
            self.stats.errors.append(message.get("payload"))
            self.on_end(self)
        elif kind == "ping":
            self.send_json({"type": "pong"})
        elif kind != "pong":
            raise ProtocolFailure(f"unexpected message {message}")

    def _event(self, event: dict[str, Any], received: float) -> None:
        stats = self.stats
        seq = event["seq"]
        previous = stats.seqs[-1] if stats.seqs else 0
        if seq != previous + 1:
            stats.ordered = False
        stats.seqs.append(seq)
        stats.latencies.append(received - parse_created_at(event["createdAt"]))
        stats.types.append(event["type"])
        if seq == 1:
            self.on_first_event(self)

    def send_json(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(frame(0x1, orjson.dumps(message)))

    def close(self) -> None:
        """Starts the close handshake (1000, normal closure)."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(frame(0x8, (1000).to_bytes(2, "big")))
