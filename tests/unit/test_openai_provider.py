"""The OpenAI-compatible provider against a real (fake) HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from loguru import logger

from backend.config.settings import Settings, load_settings
from backend.runner.providers.base import ChatMessage, ModelCall, Provider, ProviderError
from backend.runner.providers.openai import (
    MAX_RETRY_DELAY_SECONDS,
    OpenAICompatibleProvider,
    retry_after_seconds,
    retry_delay,
)
from tests.support.fake_openai import (
    ECHO_AUTHORIZATION,
    Answer,
    Behaviour,
    Disconnect,
    Fail,
    FakeOpenAI,
    Garbage,
    Hang,
    JSONAnswer,
    Malformed,
    Raw,
    split,
)

SECRET = "sk-test-SECRET123"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    for name in PROXY_VARIABLES:  # 127.0.0.1 must be reached directly
        monkeypatch.delenv(name, raising=False)
    server.reset()
    return server


def make_settings(fake: FakeOpenAI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_base_url": fake.base_url,
        "openai_api_key": SECRET,
        "openai_model": "default-model",
        "llm_timeout_seconds": 2.0,
        "llm_max_retries": 3,
        "llm_retry_backoff_seconds": 0.001,
        "log_to_files": False,
    }
    return load_settings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def provider_for(
    fake: FakeOpenAI, **overrides: Any
) -> AsyncIterator[OpenAICompatibleProvider]:
    async with OpenAICompatibleProvider(make_settings(fake, **overrides)) as provider:
        yield provider


def make_call(prompt: str = "Say hello.", **fields: Any) -> ModelCall:
    values: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-test",
        "messages": [ChatMessage("system", "You are terse."), ChatMessage("user", prompt)],
    }
    return ModelCall(**{**values, **fields})


async def collect(provider: Provider, call: ModelCall | None = None) -> list[str]:
    return [piece async for piece in provider.stream(call or make_call())]


async def collect_until_failure(provider: Provider, received: list[str]) -> None:
    async for piece in provider.stream(make_call()):
        received.append(piece)


async def failure(provider: Provider, call: ModelCall | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await collect(provider, call)
    return caught.value


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Everything loguru logs during the test, at every level."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE", format="{level} {message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


# ----------------------------------------------------------------------------- answers


async def test_streams_the_answer_in_order(fake: FakeOpenAI) -> None:
    text = "Hello from the fake model, in many small pieces."
    fake.enqueue(Answer(text, chunk_chars=5))
    async with provider_for(fake) as provider:
        pieces = await collect(provider)
    assert pieces == split(text, 5)
    assert "".join(pieces) == text


async def test_the_default_answer_follows_the_prompt(fake: FakeOpenAI) -> None:
    async with provider_for(fake) as provider:
        first = "".join(await collect(provider, make_call("Name three rivers.")))
        again = "".join(await collect(provider, make_call("Name three rivers.")))
        other = "".join(await collect(provider, make_call("Name three lakes.")))
    messages = fake.requests[0].messages
    assert first == again == FakeOpenAI.default_answer("gpt-test", messages)
    assert first.startswith("Fake answer from gpt-test")
    assert first.endswith("Name three rivers.")
    assert other != first


async def test_sends_model_messages_stream_temperature_and_key(fake: FakeOpenAI) -> None:
    async with provider_for(fake) as provider:
        await collect(provider, make_call("Hi", temperature=0.25))
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["content-type"] == "application/json"
    assert request.authorization == f"Bearer {SECRET}"
    assert request.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "temperature": 0.25,
    }


async def test_default_model_no_temperature_and_no_key(fake: FakeOpenAI) -> None:
    async with provider_for(fake, openai_api_key=None) as provider:
        await collect(provider, make_call(model=""))
    [request] = fake.requests
    assert request.model == "default-model"
    assert "temperature" not in request.body
    assert "authorization" not in request.headers


async def test_a_trailing_slash_in_the_base_url_is_fine(fake: FakeOpenAI) -> None:
    async with provider_for(fake, openai_base_url=fake.base_url + "/") as provider:
        await collect(provider)
    assert fake.requests[0].path == "/v1/chat/completions"


async def test_one_client_reuses_its_connection(fake: FakeOpenAI) -> None:
    async with provider_for(fake) as provider:
        await collect(provider)
        await collect(provider)
    first, second = fake.requests
    assert first.client == second.client


async def test_a_non_streaming_json_answer_is_accepted(fake: FakeOpenAI) -> None:
    fake.enqueue(JSONAnswer("The whole answer at once."))
    async with provider_for(fake) as provider:
        assert await collect(provider) == ["The whole answer at once."]


async def test_event_stream_corners(fake: FakeOpenAI) -> None:
    """Comments, CRLF, `data:` without a space, role-only and empty deltas, a usage chunk
    with no choices, and events split across writes."""

    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f'data: {{"object": "chat.completion.chunk", "choices": [{json.dumps(choice)}]}}'

    fake.enqueue(
        Raw(
            [
                ": keepalive\n\n",
                event({"role": "assistant"}) + "\r\n\r\n",
                event({"content": ""}) + "\n\n",
                event({"content": "Hel"})[:20],  # one event over three writes
                event({"content": "Hel"})[20:] + "\n",
                "\n",
                "event: message\nid: 7\n" + event({"content": "lo"}).replace("data: ", "data:"),
                "\n\n: another comment\n\n",
                event({}, "stop") + "\n\n",
                'data: {"object": "chat.completion.chunk", "choices": [], "usage": {}}\n\n',
                "data: [DONE]\n\n",
                "data: this is after the end and never read\n\n",
            ]
        )
    )
    async with provider_for(fake) as provider:
        assert await collect(provider) == ["Hel", "lo"]


async def test_an_answer_with_a_finish_reason_but_no_done_is_whole(fake: FakeOpenAI) -> None:
    fake.enqueue(
        Answer("No done marker.", done=False, usage=True), Answer("Keepalives", keepalive=True)
    )
    async with provider_for(fake) as provider:
        assert "".join(await collect(provider)) == "No done marker."
        assert "".join(await collect(provider)) == "Keepalives"


async def test_a_stream_that_just_ends_is_an_error(fake: FakeOpenAI) -> None:
    fake.enqueue(Raw(['data: {"choices": [{"index": 0, "delta": {"content": "Half"}}]}\n\n']))
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert "ended the stream before the answer was complete" in str(error)
    assert len(fake.requests) == 1


async def test_stopping_early_closes_the_connection(fake: FakeOpenAI) -> None:
    fake.enqueue(Answer("x" * 200, chunk_chars=1, delay=0.02))
    async with provider_for(fake) as provider:
        stream = provider.stream(make_call())
        async with contextlib.aclosing(stream):
            async for _piece in stream:
                break
    assert fake.requests[0].client_disconnected.wait(timeout=2)


# ----------------------------------------------------------------------------- retries


async def test_retries_429_and_500_then_succeeds(fake: FakeOpenAI, log_lines: list[str]) -> None:
    fake.enqueue(Fail(429, retry_after=0.2), Fail(500), Answer("Third time lucky."))
    started = time.monotonic()
    async with provider_for(fake) as provider:
        assert "".join(await collect(provider)) == "Third time lucky."
    assert time.monotonic() - started >= 0.2  # Retry-After was honoured (backoff is 1 ms)
    assert len(fake.requests) == 3
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert len(warnings) == 2
    assert "429 Too Many Requests: fake Too Many Requests; retry 1 of 3 in 0.20s" in warnings[0]
    assert "500 Internal Server Error: fake Internal Server Error; retry 2 of 3" in warnings[1]


async def test_retries_a_connection_broken_before_any_output(fake: FakeOpenAI) -> None:
    fake.enqueue(Disconnect(after_chunks=0), Answer("Recovered."))
    async with provider_for(fake) as provider:
        assert "".join(await collect(provider)) == "Recovered."
    assert len(fake.requests) == 2


async def test_gives_up_after_the_last_retry(fake: FakeOpenAI) -> None:
    fake.enqueue(*[Fail(503)] * 5)
    async with provider_for(fake, llm_max_retries=2) as provider:
        error = await failure(provider)
    assert str(error).startswith("gave up after 3 attempts: model endpoint answered 503")
    assert str(error).endswith("503 Service Unavailable: fake Service Unavailable")
    assert len(fake.requests) == 3


async def test_without_retries_the_first_failure_is_final(fake: FakeOpenAI) -> None:
    fake.enqueue(Fail(502), Answer())
    async with provider_for(fake, llm_max_retries=0) as provider:
        error = await failure(provider)
    assert str(error).startswith("model endpoint answered 502 Bad Gateway")
    assert len(fake.requests) == 1


async def test_an_unreachable_endpoint_is_retried_then_reported(fake: FakeOpenAI) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    settings = make_settings(fake, openai_base_url=url, llm_max_retries=1)
    async with OpenAICompatibleProvider(settings) as provider:
        error = await failure(provider)
    assert str(error).startswith(
        f"gave up after 2 attempts: could not connect to model endpoint {url}/chat/completions: "
        "ConnectError"
    )


async def test_no_retry_once_output_has_started(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.enqueue(Disconnect(after_chunks=2, text="abcdefghijkl", chunk_chars=3), Answer())
    received: list[str] = []
    async with provider_for(fake) as provider:
        with pytest.raises(ProviderError) as caught:
            await collect_until_failure(provider, received)
    assert received == ["abc", "def"]
    assert str(caught.value) == (
        "connection to model endpoint broke mid-answer, after 2 chunks: RemoteProtocolError: "
        "peer closed connection without sending complete message body (incomplete chunked read)"
    )
    assert len(fake.requests) == 1
    assert "Exception in ASGI application" not in caplog.text  # the fake drops quietly


async def test_a_hanging_endpoint_times_out_quickly(fake: FakeOpenAI) -> None:
    fake.enqueue(Hang(seconds=10), Answer())
    started = time.monotonic()
    async with provider_for(fake, llm_timeout_seconds=0.3) as provider:
        error = await failure(provider)
    assert time.monotonic() - started < 1.5
    assert str(error) == "model endpoint timed out after 0.3s without answering"
    assert len(fake.requests) == 1  # a read timeout is not retried
    assert fake.requests[0].client_disconnected.wait(timeout=2)


async def test_a_stall_mid_answer_times_out(fake: FakeOpenAI) -> None:
    fake.enqueue(Hang(seconds=10, after_chunks=2, text="abcdefgh", chunk_chars=2))
    received: list[str] = []
    async with provider_for(fake, llm_timeout_seconds=0.3) as provider:
        with pytest.raises(ProviderError, match=r"timed out after 0\.3s mid-answer, after 2"):
            await collect_until_failure(provider, received)
    assert received == ["ab", "cd"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "600"}, MAX_RETRY_DELAY_SECONDS),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == expected


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [retry_delay(n, 0.5, None) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(20, 0.5, None) == MAX_RETRY_DELAY_SECONDS
    assert retry_delay(3, 0.5, 0.0) == 0.0  # the server's word wins


# ----------------------------------------------------------------------------- failures


async def test_401_is_reported_and_not_retried(fake: FakeOpenAI) -> None:
    fake.enqueue(Fail(401, body={"error": {"message": "Invalid API key."}}), Answer())
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert str(error) == "model endpoint answered 401 Unauthorized: Invalid API key."
    assert len(fake.requests) == 1


async def test_a_long_plain_error_body_is_cut_short(fake: FakeOpenAI) -> None:
    fake.enqueue(Fail(404, body="no such route\n" + "x" * 10_000))
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert str(error).startswith("model endpoint answered 404 Not Found: no such route xxx")
    assert len(str(error)) < 400


async def test_garbage_is_not_a_chat_completion(fake: FakeOpenAI) -> None:
    fake.enqueue(Garbage())
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert str(error).startswith(
        "model endpoint answered something that is not a chat completion stream: "
        "content type 'text/html': <html>"
    )
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Malformed(), "invalid JSON in a data line: {this is not json"),
        (Malformed(line='data: {"id": "x"}'), 'a chunk has no choices: {"id": "x"}'),
        (Malformed(line="data: [1, 2]"), "a data line is not a JSON object"),
        (
            Malformed(line='data: {"choices": [{"delta": {"content": 5}}]}'),
            "a chunk's content is not text",
        ),
        (Garbage("{not json", content_type="application/json"), "invalid JSON: {not json"),
        (Garbage('{"id": 1}', content_type="application/json"), "JSON without choices[0]"),
    ],
)
async def test_malformed_answers(fake: FakeOpenAI, behaviour: Behaviour, message: str) -> None:
    fake.enqueue(behaviour)
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert "not a chat completion stream" in str(error)
    assert message in str(error)
    assert len(fake.requests) == 1


async def test_an_error_event_mid_stream(fake: FakeOpenAI) -> None:
    fake.enqueue(Malformed(line='data: {"error": {"message": "model overloaded"}}'))
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert str(error) == "model endpoint reported an error mid-stream: model overloaded"


async def test_a_redirect_is_reported_with_its_target(fake: FakeOpenAI) -> None:
    fake.enqueue(Fail(301, body="", headers={"location": "https://elsewhere.example/v1"}))
    async with provider_for(fake) as provider:
        error = await failure(provider)
    assert str(error) == (
        "model endpoint answered 301 Moved Permanently "
        "(redirecting to https://elsewhere.example/v1)"
    )


# ----------------------------------------------------------------------------- the API key


ECHOED = f"Incorrect API key provided: {ECHO_AUTHORIZATION}"


@pytest.mark.parametrize(
    "behaviours",
    [
        [Fail(401, body={"error": {"message": ECHOED}})],
        [Fail(401, body="." * 280 + f" you sent {ECHO_AUTHORIZATION}")],  # cut in the key
        [Fail(500, body={"error": {"message": ECHOED}})] * 4,  # retried: logged as warnings
        [Fail(429, body=ECHOED, retry_after=0)] * 4,
        [Garbage(f"<p>{ECHO_AUTHORIZATION}</p>")],
        [Garbage(f'{{"error": "{ECHO_AUTHORIZATION}"}}', content_type="application/json")],
        [Malformed(line=f"data: {{{ECHO_AUTHORIZATION}")],
        [Malformed(line=f'data: {{"error": {{"message": "{ECHO_AUTHORIZATION}"}}}}')],
        [Malformed(line=f'data: {{"choices": "{ECHO_AUTHORIZATION}"}}')],
        [Raw([f"data: {{bad {ECHO_AUTHORIZATION}\n\n"], content_type="text/event-stream")],
    ],
    ids=[
        "401-json",
        "401-long-text",
        "500-retried",
        "429-retried",
        "html",
        "json-error",
        "bad-data-line",
        "error-event",
        "bad-choices",
        "bad-first-line",
    ],
)
async def test_the_api_key_never_leaks(
    fake: FakeOpenAI,
    behaviours: list[Behaviour],
    log_lines: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.enqueue(*behaviours)
    async with provider_for(fake) as provider:
        error = await failure(provider)
        shown = [repr(provider), *log_lines, caplog.text]
    chained: BaseException | None = error
    while chained is not None:  # whatever a traceback printer might show, suppressed or not
        shown += [str(chained), repr(chained)]
        chained = chained.__cause__ or chained.__context__
    shown.append("".join(traceback.format_exception(error)))
    assert any(SECRET in (r.authorization or "") for r in fake.requests)  # it was sent
    for text in shown:
        assert SECRET[:10] not in text  # not even a cut-off start of it
        assert "SECRET123" not in text


async def test_a_provider_is_a_provider(fake: FakeOpenAI) -> None:
    provider: Provider = OpenAICompatibleProvider(make_settings(fake))
    assert "SECRET" not in repr(provider)
    assert isinstance(provider, OpenAICompatibleProvider)
    await provider.aclose()
