"""OpenAI-compatible chat completions (llm "openai/<model>"): OpenAI, vLLM, Ollama, LiteLLM.

One `httpx.AsyncClient` per provider, so connections are reused across calls; close it with
`aclose()` (or use the provider as an async context manager) when the runner stops.

`stream()` POSTs `{base_url}/chat/completions` with `stream: true` and yields the
`choices[0].delta.content` pieces of the server-sent events as they arrive. A server that ignores
`stream` and answers one JSON chat completion is accepted too.

Failures:
- 408, 429, 5xx and connection errors are retried with exponential backoff (or the server's
  `Retry-After`), but only while nothing has been yielded: output is never duplicated.
- Everything else, and a failure once output has started, is a `ProviderError` at once.
- A read timeout is not retried: with minute-long timeouts, retries would stall a task for
  minutes on a server that accepts connections but does not answer.

The API key is sent in the `Authorization` header only. It is scrubbed from every error message
and log line (servers do echo it back in error bodies), and never logged or shown in a repr.
Consumers should close the generator when they stop early (`contextlib.aclosing`), so that the
HTTP response is released at once rather than when the generator is garbage-collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import httpx
from loguru import logger

from backend.config.settings import Settings
from backend.runner.providers.base import ModelCall, ProviderError

MAX_RETRY_DELAY_SECONDS = 30.0
ERROR_BODY_BYTES = 4_096
EXCERPT_CHARS = 300
DRAIN_SECONDS = 1.0
REDACTED = "[redacted]"
USER_AGENT = "crewql"

_WHITESPACE = re.compile(r"\s+")


class _Retryable(Exception):
    """An attempt failed before yielding anything, in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The server's numeric `retry-after-ms` / `Retry-After`, capped; None if absent or a date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value.strip()) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, MAX_RETRY_DELAY_SECONDS)
    return None


def retry_delay(attempt: int, backoff_seconds: float, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt `attempt` (0-based): the server's word, else 2^n."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_DELAY_SECONDS)
    return float(min(backoff_seconds * 2**attempt, MAX_RETRY_DELAY_SECONDS))


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(body: str) -> str:
    """The human part of a JSON error body (OpenAI, vLLM, Ollama, FastAPI), else the body."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return body
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            value = parsed.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
            if isinstance(value, str):
                return value
    return body


class OpenAICompatibleProvider:
    """Streams chat completions from an OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        base_url = settings.openai_base_url.rstrip("/")
        self._url = f"{base_url}/chat/completions"
        self._model = settings.openai_model
        self._timeout = settings.llm_timeout_seconds
        self._max_retries = settings.llm_max_retries
        self._backoff = settings.llm_retry_backoff_seconds
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self._has_key = bool(key)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

        secrets = [key]
        try:
            url = httpx.URL(self._url)
            secrets.append(url.password or "")
            self._display_url = str(url.copy_with(username=None, password=None))
        except httpx.InvalidURL:
            self._display_url = self._url
        self._secrets = self._secret_forms(s for s in secrets if s)
        self._display_url = self._scrub(self._display_url)

        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout),
            limits=httpx.Limits(max_connections=max(100, settings.runner_concurrency)),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        key = "set" if self._has_key else "none"
        return (
            f"OpenAICompatibleProvider(url={self._display_url!r}, model={self._model!r}, "
            f"api_key={key})"
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAICompatibleProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------ streaming

    async def stream(self, call: ModelCall) -> AsyncGenerator[str, None]:
        payload = self._payload(call)
        attempts = self._max_retries + 1
        started = time.monotonic()
        chunks = 0
        for attempt in range(attempts):
            try:
                async with contextlib.aclosing(self._attempt(payload)) as pieces:
                    async for piece in pieces:
                        chunks += 1
                        yield piece
            except _Retryable as failure:
                reason = self._scrub(failure.reason)
                if attempt + 1 >= attempts:
                    prefix = f"gave up after {attempts} attempts: " if attempts > 1 else ""
                    raise self._error(prefix + reason) from None
                delay = retry_delay(attempt, self._backoff, failure.retry_after)
                logger.warning(
                    "model call to {} (model {}) failed: {}; retry {} of {} in {:.2f}s",
                    self._display_url,
                    payload["model"],
                    reason,
                    attempt + 1,
                    self._max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                logger.debug(
                    "model call to {} (model {}) answered in {} chunks, {:.2f}s, {} attempt(s)",
                    self._display_url,
                    payload["model"],
                    chunks,
                    time.monotonic() - started,
                    attempt + 1,
                )
                return

    def _payload(self, call: ModelCall) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": call.model or self._model,
            "messages": [{"role": m.role, "content": m.content} for m in call.messages],
            "stream": True,
        }
        if call.temperature is not None:
            payload["temperature"] = call.temperature
        return payload

    async def _attempt(self, payload: dict[str, Any]) -> AsyncGenerator[str, None]:
        """One request. Raises `_Retryable` only before its first piece, else ProviderError."""
        chunks = 0
        try:
            async with self._client.stream(
                "POST", self._url, json=payload, headers=self._headers
            ) as response:
                await self._check_status(response)
                async with contextlib.aclosing(self._read_answer(response)) as pieces:
                    async for piece in pieces:
                        chunks += 1
                        yield piece
        except httpx.ConnectTimeout:
            raise _Retryable(
                f"could not connect to model endpoint {self._display_url} "
                f"within {_seconds(self._timeout)}"
            ) from None
        except httpx.TimeoutException as exc:
            raise self._error(self._timeout_message(exc, chunks)) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            if isinstance(exc, httpx.ConnectError):
                raise _Retryable(
                    f"could not connect to model endpoint {self._display_url}: {_describe(exc)}"
                ) from None
            if chunks == 0:
                raise _Retryable(
                    f"connection to model endpoint broke before the answer: {_describe(exc)}"
                ) from None
            raise self._error(
                f"connection to model endpoint broke mid-answer, after {chunks} chunks: "
                f"{_describe(exc)}"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._error(
                f"model endpoint {self._display_url} could not be called: {_describe(exc)}"
            ) from None

    def _timeout_message(self, exc: httpx.TimeoutException, chunks: int) -> str:
        after = f"model endpoint timed out after {_seconds(self._timeout)}"
        if isinstance(exc, httpx.WriteTimeout):
            return f"{after} while sending the request"
        if isinstance(exc, httpx.PoolTimeout):
            return f"no free connection to the model endpoint within {_seconds(self._timeout)}"
        if chunks:
            return f"{after} mid-answer, after {chunks} chunks"
        return f"{after} without answering"

    async def _check_status(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        status = response.status_code
        phrase = response.reason_phrase
        if not phrase:
            with contextlib.suppress(ValueError):
                phrase = HTTPStatus(status).phrase
        reason = f"model endpoint answered {status} {phrase}".rstrip()
        location = response.headers.get("location")
        if response.is_redirect and location:
            reason += f" (redirecting to {_short(location, 200)})"
        excerpt = _short(_error_text(await self._body_start(response)))
        if excerpt:
            reason += f": {excerpt}"
        if is_retryable_status(status):
            raise _Retryable(reason, retry_after_seconds(response.headers))
        raise self._error(reason)

    async def _body_start(self, response: httpx.Response) -> str:
        """The first few KB of a body we will not use, scrubbed before anyone can cut a key."""
        data = b""
        async for block in response.aiter_bytes():
            data += block
            if len(data) >= ERROR_BODY_BYTES:
                break
        return self._scrub(data[:ERROR_BODY_BYTES].decode("utf-8", errors="replace"))

    async def _read_answer(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        content_type = response.headers.get("content-type", "")
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == "text/event-stream":
            response.encoding = "utf-8"  # server-sent events are always UTF-8
            lines = cast(AsyncGenerator[str, None], response.aiter_lines())
            async with (
                contextlib.aclosing(lines),
                contextlib.aclosing(self._read_events(lines)) as pieces,
            ):
                async for piece in pieces:
                    yield piece
                await self._drain(lines)
        elif media_type == "application/json" or media_type.endswith("+json"):
            content = self._parse_completion(await response.aread())
            if content:
                yield content
        else:
            described = f"content type {media_type!r}" if media_type else "no content type"
            excerpt = _short(await self._body_start(response))
            raise self._not_a_stream(f"{described}: {excerpt}" if excerpt else described)

    async def _drain(self, lines: AsyncIterator[str]) -> None:
        """Reads what follows `[DONE]` (the end of the chunked body), briefly: only a body read
        to its end lets the connection go back to the pool for the next call."""
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(min(DRAIN_SECONDS, self._timeout)):
                async for _line in lines:
                    pass

    async def _read_events(self, lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
        """Server-sent events: `data:` lines, blank-line separated, until `data: [DONE]`."""
        data_lines: list[str] = []
        finished = False  # a choice said why it stopped: the answer is whole without [DONE]
        first = True
        async for raw_line in lines:
            line = raw_line.lstrip("\ufeff") if first else raw_line
            first = False
            if line:
                if line.startswith(":"):  # a comment, e.g. a keepalive
                    continue
                field, _, value = line.partition(":")
                if field == "data":
                    data_lines.append(value[1:] if value.startswith(" ") else value)
                continue  # event, id, retry: nothing we need
            if not data_lines:
                continue
            data, data_lines = "\n".join(data_lines), []
            if data.strip() == "[DONE]":
                return
            piece, stop = self._parse_chunk(data)
            finished = finished or stop
            if piece:
                yield piece
        if data_lines:  # a last event without its blank line
            data = "\n".join(data_lines)
            if data.strip() == "[DONE]":
                return
            piece, stop = self._parse_chunk(data)
            finished = finished or stop
            if piece:
                yield piece
        if not finished:
            raise self._error("model endpoint ended the stream before the answer was complete")

    def _parse_chunk(self, data: str) -> tuple[str | None, bool]:
        """One `chat.completion.chunk` → (its content piece, whether a choice finished)."""
        try:
            chunk: Any = json.loads(data)
        except ValueError:
            raise self._not_a_stream(f"invalid JSON in a data line: {_short(data)}") from None
        if not isinstance(chunk, dict):
            raise self._not_a_stream(f"a data line is not a JSON object: {_short(data)}")
        if "error" in chunk:
            message = _short(_error_text(json.dumps({"error": chunk["error"]})))
            raise self._error(f"model endpoint reported an error mid-stream: {message}")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise self._not_a_stream(f"a chunk has no choices: {_short(data)}")
        if not choices:  # e.g. the usage chunk at the end
            return None, False
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(delta, (dict, type(None))):
            raise self._not_a_stream(f"a chunk's choice has no delta: {_short(data)}")
        content = (delta or {}).get("content")
        if content is not None and not isinstance(content, str):
            raise self._not_a_stream(f"a chunk's content is not text: {_short(data)}")
        return content or None, bool(choice.get("finish_reason"))

    def _parse_completion(self, body: bytes) -> str:
        """A whole (non-streaming) chat completion → its message content."""
        text = self._scrub(body.decode("utf-8", errors="replace"))
        try:
            completion: Any = json.loads(text)
        except ValueError:
            raise self._not_a_stream(f"invalid JSON: {_short(text)}") from None
        if isinstance(completion, dict) and "error" in completion:
            raise self._error(f"model endpoint reported an error: {_short(_error_text(text))}")
        try:
            content = completion["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._not_a_stream(f"JSON without choices[0].message: {_short(text)}") from None
        if content is not None and not isinstance(content, str):
            raise self._not_a_stream(f"a message content that is not text: {_short(text)}")
        return content or ""

    # ------------------------------------------------------------------------------ secrets

    @staticmethod
    def _secret_forms(secrets: Iterable[str]) -> list[str]:
        """Each secret as sent, JSON-escaped and URL-quoted (echoes come in all three), longest
        first so that a longer form is not half-replaced by a shorter one."""
        forms = set()
        for secret in secrets:
            forms.update({secret, json.dumps(secret)[1:-1], quote(secret, safe="")})
        return sorted(forms, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _error(self, message: str) -> ProviderError:
        return ProviderError(self._scrub(message))

    def _not_a_stream(self, detail: str) -> ProviderError:
        return self._error(
            f"model endpoint answered something that is not a chat completion stream: {detail}"
        )
