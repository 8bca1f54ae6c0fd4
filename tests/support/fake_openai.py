"""A fake OpenAI-compatible chat completions server: real HTTP on 127.0.0.1, scriptable per test.

It is a Starlette app on uvicorn in a background thread (its own event loop) on an ephemeral
port, speaking the real streaming protocol: `text/event-stream` with one
`data: {"object": "chat.completion.chunk", ...}` event per piece, a last chunk with
`finish_reason: "stop"`, then `data: [DONE]`.

    with FakeOpenAI() as fake:
        fake.enqueue(Fail(429, retry_after=0.1), Answer("Hello there", chunk_chars=4))
        settings = load_settings(openai_base_url=fake.base_url, openai_api_key="sk-test")
        ...  # the first call is rate limited, the second streams "Hell", "o th", "ere"
        assert fake.requests[0].body["stream"] is True

Each POST to `/v1/chat/completions` takes the next behaviour from the queue (`enqueue`), or
`default` when the queue is empty: by default an `Answer` made from the prompt by
`FakeOpenAI.default_answer`, so that any test can predict the text. Every request is recorded
(path, lower-cased headers, JSON body, client address, and whether the client went away before
the answer was complete). Bodies without `model` or `messages` get a 400, as from OpenAI.

When a request asks for usage (`stream_options: {"include_usage": true}`, as PydanticAI does), a
streamed answer ends with a usage chunk, as OpenAI's does: `prompt_tokens` is a count made from
the request's messages, `completion_tokens` the number of pieces sent; each request records what
it was told (`usage_sent`), so a test can add up the calls. `ToolCalls` streams a tool call in
`delta.tool_calls` pieces, as a model that calls tools does.

Text a behaviour sends may contain `ECHO_AUTHORIZATION`, which is replaced by the request's
`Authorization` header: servers do echo keys back, and a provider must not pass them on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

ECHO_AUTHORIZATION = "<<authorization>>"


# ----------------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None
    client: tuple[str, int] | None  # the client's address: equal ports mean a reused connection
    behaviour: Behaviour | None = None
    usage_sent: tuple[int, int] | None = None  # (prompt, completion) tokens in the usage chunk
    # Set when the client closed the connection before the answer was complete.
    client_disconnected: threading.Event = field(default_factory=threading.Event)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def model(self) -> Any:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> Any:
        return self.body.get("messages") if isinstance(self.body, dict) else None

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options") if isinstance(self.body, dict) else None
        return isinstance(options, dict) and options.get("include_usage") is True


# ------------------------------------------------------------------------------- behaviours


class _Aborted(Exception):
    """The client went away, or the server is stopping: stop answering."""


class _Dropped(Exception):
    """Raised to make uvicorn close the connection mid-response (and silenced in its log)."""


class _Exchange:
    """One request being answered: sends, pauses that end early on disconnect or shutdown."""

    def __init__(
        self,
        fake: FakeOpenAI,
        record: RecordedRequest,
        receive: Receive,
        send: Send,
        abort: asyncio.Event,
    ) -> None:
        self.fake = fake
        self.record = record
        self._receive = receive
        self._send = send
        self.abort = abort
        self.started = False
        self.finishing = False
        self.model = str(record.model or "fake-model")
        self.completion_id = f"chatcmpl-fake-{len(fake.requests)}"
        self.created = int(time.time())

    async def watch_disconnect(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.finishing:
                    self.record.client_disconnected.set()
                self.abort.set()
                return

    def _text(self, data: str | bytes) -> bytes:
        if isinstance(data, str):
            data = data.replace(ECHO_AUTHORIZATION, self.record.authorization or "")
            return data.encode()
        return data.replace(ECHO_AUTHORIZATION.encode(), (self.record.authorization or "").encode())

    async def start(
        self, status: int, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """Starts a response of unknown length (chunked): it can be cut off mid-way."""
        raw = [(b"content-type", content_type.encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def write(self, data: str | bytes) -> None:
        if self.abort.is_set():
            raise _Aborted
        await self._send(
            {"type": "http.response.body", "body": self._text(data), "more_body": True}
        )

    async def finish(self) -> None:
        self.finishing = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def respond(
        self,
        status: int,
        body: str | bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """A whole response with a Content-Length."""
        data = self._text(body)
        raw = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(data))]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True
        self.finishing = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.abort.wait(), timeout=seconds)
        if self.abort.is_set():
            raise _Aborted

    # chat.completion.chunk events

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        event = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(event)}\n\n"

    def answer_text(self, text: str | None) -> str:
        if text is not None:
            return text
        return FakeOpenAI.default_answer(self.model, self.record.messages or [])

    async def open_stream(self) -> None:
        await self.start(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
        await self.write(self.chunk({"role": "assistant", "content": ""}))

    async def stream_pieces(
        self, pieces: Sequence[str], delay: float = 0.0, keepalive: bool = False
    ) -> None:
        for piece in pieces:
            await self.pause(delay)
            if keepalive:
                await self.write(": keepalive\n\n")
            await self.write(self.chunk({"content": piece}))

    async def send_usage(self, completion_tokens: int, force: bool = False) -> None:
        """The usage chunk (no choices), if the request asked for one (or `force`)."""
        if not (force or self.record.wants_usage):
            return
        prompt_tokens = len(json.dumps(self.record.messages or [])) // 4
        self.record.usage_sent = (prompt_tokens, completion_tokens)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        event = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }
        await self.write(f"data: {json.dumps(event)}\n\n")


def split(text: str, chunk_chars: int) -> list[str]:
    """The pieces an `Answer` streams `text` in."""
    return [text[i : i + chunk_chars] for i in range(0, len(text), max(1, chunk_chars))]


class Behaviour:
    """How the fake answers one chat completion request."""

    async def serve(self, ex: _Exchange) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Answer(Behaviour):
    """A normal streamed answer: a role chunk, `text` in `chunk_chars` pieces (`delay` before
    each), a last chunk with `finish_reason`, a usage chunk (when asked for, or `usage`), then
    `[DONE]` (if `done`). `text=None` answers with `FakeOpenAI.default_answer` for the request."""

    text: str | None = None
    chunk_chars: int = 8
    delay: float = 0.0
    finish_reason: str = "stop"
    done: bool = True
    keepalive: bool = False
    usage: bool = False

    async def serve(self, ex: _Exchange) -> None:
        await ex.open_stream()
        pieces = split(ex.answer_text(self.text), self.chunk_chars)
        await ex.stream_pieces(pieces, self.delay)
        await ex.write(ex.chunk({}, self.finish_reason))
        await ex.send_usage(len(pieces), force=self.usage)
        if self.done:
            await ex.write("data: [DONE]\n\n")
        await ex.finish()


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str = "{}"  # JSON, streamed in pieces of `ToolCalls.chunk_chars`


@dataclass(frozen=True)
class ToolCalls(Behaviour):
    """A streamed answer that calls tools: for each call, a `delta.tool_calls` chunk with its
    index, id, type and name, then its arguments in pieces; `finish_reason: "tool_calls"`, the
    usage chunk (when asked for), `[DONE]`. `text` is said before the calls, if given."""

    calls: Sequence[ToolCall]
    chunk_chars: int = 6
    text: str = ""
    delay: float = 0.0

    async def serve(self, ex: _Exchange) -> None:
        await ex.open_stream()
        sent = 0
        if self.text:
            await ex.stream_pieces(split(self.text, self.chunk_chars), self.delay)
            sent += len(split(self.text, self.chunk_chars))
        for index, call in enumerate(self.calls):
            await ex.pause(self.delay)
            call_id = f"call_fake_{len(ex.fake.requests)}_{index}"
            head = {"index": index, "id": call_id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            await ex.write(ex.chunk({"tool_calls": [head]}))
            for piece in split(call.arguments, self.chunk_chars):
                delta = {"index": index, "function": {"arguments": piece}}
                await ex.write(ex.chunk({"tool_calls": [delta]}))
                sent += 1
        await ex.write(ex.chunk({}, "tool_calls"))
        await ex.send_usage(sent + len(self.calls))
        await ex.write("data: [DONE]\n\n")
        await ex.finish()


@dataclass(frozen=True)
class JSONAnswer(Behaviour):
    """A non-streaming `chat.completion` (a server that ignores `stream: true`)."""

    text: str | None = None

    async def serve(self, ex: _Exchange) -> None:
        completion = {
            "id": ex.completion_id,
            "object": "chat.completion",
            "created": ex.created,
            "model": ex.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ex.answer_text(self.text)},
                    "finish_reason": "stop",
                }
            ],
        }
        await ex.respond(200, json.dumps(completion), "application/json")


@dataclass(frozen=True)
class Fail(Behaviour):
    """An error status with an OpenAI-style JSON error body (or `body` as given), and
    `Retry-After` when `retry_after` is set."""

    status: int
    body: str | dict[str, Any] | None = None
    retry_after: float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    async def serve(self, ex: _Exchange) -> None:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        body: str | dict[str, Any] | None = self.body
        if body is None:
            try:
                phrase = HTTPStatus(self.status).phrase
            except ValueError:
                phrase = "Error"
            body = {"error": {"message": f"fake {phrase}", "type": "fake_error", "code": None}}
        if isinstance(body, dict):
            await ex.respond(self.status, json.dumps(body), "application/json", headers)
        else:
            await ex.respond(self.status, body, "text/plain; charset=utf-8", headers)


@dataclass(frozen=True)
class Hang(Behaviour):
    """Says nothing for `seconds` (ending early if the client goes away): before the response
    headers when `after_chunks` is None, else after that many pieces of the answer."""

    seconds: float = 30.0
    after_chunks: int | None = None
    text: str | None = None
    chunk_chars: int = 8

    async def serve(self, ex: _Exchange) -> None:
        if self.after_chunks is None:
            await ex.pause(self.seconds)
            await Answer(self.text, self.chunk_chars).serve(ex)
            return
        pieces = split(ex.answer_text(self.text), self.chunk_chars)
        await ex.open_stream()
        await ex.stream_pieces(pieces[: self.after_chunks])
        await ex.pause(self.seconds)
        await ex.stream_pieces(pieces[self.after_chunks :])
        await ex.write(ex.chunk({}, "stop"))
        await ex.write("data: [DONE]\n\n")
        await ex.finish()


@dataclass(frozen=True)
class Disconnect(Behaviour):
    """Streams `after_chunks` pieces of the answer, then drops the connection (no end of the
    chunked body, no [DONE]): the client sees a broken connection mid-stream."""

    after_chunks: int = 1
    text: str | None = None
    chunk_chars: int = 8

    async def serve(self, ex: _Exchange) -> None:
        pieces = split(ex.answer_text(self.text), self.chunk_chars)
        await ex.open_stream()
        await ex.stream_pieces(pieces[: self.after_chunks])
        raise _Dropped


@dataclass(frozen=True)
class Malformed(Behaviour):
    """Streams `after_chunks` pieces, then `line` (by default a data line that is not JSON),
    then the rest of the answer as if nothing happened."""

    line: str = "data: {this is not json"
    after_chunks: int = 1
    text: str | None = None
    chunk_chars: int = 8

    async def serve(self, ex: _Exchange) -> None:
        pieces = split(ex.answer_text(self.text), self.chunk_chars)
        await ex.open_stream()
        await ex.stream_pieces(pieces[: self.after_chunks])
        await ex.write(self.line.rstrip("\n") + "\n\n")
        await ex.stream_pieces(pieces[self.after_chunks :])
        await ex.write(ex.chunk({}, "stop"))
        await ex.write("data: [DONE]\n\n")
        await ex.finish()


@dataclass(frozen=True)
class Garbage(Behaviour):
    """Something that is not a chat completion at all (a captive portal, a proxy's page)."""

    body: str = "<html><body><h1>Welcome to the guest network</h1></body></html>"
    content_type: str = "text/html; charset=utf-8"
    status: int = 200

    async def serve(self, ex: _Exchange) -> None:
        await ex.respond(self.status, self.body, self.content_type)


@dataclass(frozen=True)
class Raw(Behaviour):
    """Exactly these body pieces, each its own write (`delay` before each), in a chunked
    response: for the corners of the event-stream format (comments, CRLF, split lines)."""

    pieces: Sequence[str | bytes]
    content_type: str = "text/event-stream"
    status: int = 200
    delay: float = 0.0

    async def serve(self, ex: _Exchange) -> None:
        await ex.start(self.status, self.content_type)
        for piece in self.pieces:
            await ex.pause(self.delay)
            await ex.write(piece)
        await ex.finish()


# ----------------------------------------------------------------------------------- server


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging the tracebacks of connections dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc: BaseException | None = record.exc_info[1] if record.exc_info else None
        seen = 0
        while exc is not None and seen < 10:
            if isinstance(exc, _Dropped):
                return False
            exc = exc.__cause__ or exc.__context__
            seen += 1
        return True


_quiet_drops = _QuietDrops()


class _ChatCompletions:
    """The `/v1/chat/completions` endpoint, at the ASGI level so it can break connections."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        client = (scope["client"][0], scope["client"][1]) if scope.get("client") else None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            client=client,
        )
        if not (isinstance(body, dict) and body.get("model") and "messages" in body):
            self.fake._record(record)
            error = {"message": "body must be JSON with model and messages", "type": "invalid"}
            await JSONResponse({"error": error}, status_code=400)(scope, receive, send)
            return
        record.behaviour = self.fake._next_behaviour()
        self.fake._record(record)

        abort = asyncio.Event()
        exchange = _Exchange(self.fake, record, receive, send, abort)
        self.fake._aborts.add(abort)
        watcher = asyncio.create_task(exchange.watch_disconnect())
        try:
            await record.behaviour.serve(exchange)
        except _Aborted:
            if exchange.started and not record.client_disconnected.is_set():
                raise _Dropped from None  # stopping mid-answer: cut the connection
        finally:
            self.fake._aborts.discard(abort)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})


class FakeOpenAI:
    """The fake server; use as a context manager, or `start()` / `stop()`."""

    def __init__(self, *, default: Behaviour | None = None) -> None:
        self.default: Behaviour = default or Answer()
        self.port = 0
        self._queue: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._aborts: set[asyncio.Event] = set()  # touched only on the server's loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", _ChatCompletions(self), methods=["POST"]),
                Route("/v1/models", _models, methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        """What `openai_base_url` should be: `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Behaviours enqueued and not used yet."""
        with self._lock:
            return len(self._queue)

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        """Forgets queued behaviours and recorded requests (between tests sharing a server)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @staticmethod
    def default_answer(model: str, messages: Sequence[dict[str, Any]]) -> str:
        """The default answer: names the model, a digest of the messages and the start of the
        last one, so that it is deterministic and differs between prompts."""
        digest = hashlib.sha256(json.dumps(list(messages), sort_keys=True).encode()).hexdigest()
        last = str(messages[-1].get("content", "")) if messages else ""
        gist = " ".join(last.split()[:12])
        return f"Fake answer from {model} ({digest[:8]}) to: {gist}"

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    # lifecycle

    def start(self) -> FakeOpenAI:
        logger = logging.getLogger("uvicorn.error")
        if _quiet_drops not in logger.filters:
            logger.addFilter(_quiet_drops)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, args=(self._server, sock), name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.005)
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        finally:
            sock.close()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may just have stopped
                self._loop.call_soon_threadsafe(self._abort_all)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = self._loop = None

    def _abort_all(self) -> None:
        for abort in self._aborts:
            abort.set()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def fake_openai(*behaviours: Behaviour, default: Behaviour | None = None) -> Iterator[FakeOpenAI]:
    """`with fake_openai(Fail(500), Answer("hi")) as fake:` a started server with a script."""
    with FakeOpenAI(default=default) as fake:
        fake.enqueue(*behaviours)
        yield fake
