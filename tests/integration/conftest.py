"""The fake OpenAI-compatible server for the tests of this directory that talk to a model over
HTTP: one per test module (`fake_server`), its queue and records cleared for each test (`fake`),
with proxy variables unset so that requests to 127.0.0.1 go straight to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.agent_runs import PROXY_VARIABLES
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake_server.reset()
    return fake_server
