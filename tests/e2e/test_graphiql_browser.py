"""GraphiQL served by crewql works in a real browser without any network access.

Opens ``/graphql`` in headless Debian Chromium (driven by the ``playwright``
PyPI package, without ``playwright install``), aborts every request that is
not addressed to the live server, runs a query from the GraphiQL UI and checks
the result. This proves the self-hosted assets in
``backend/api/graphiql/static`` are complete and nothing is fetched from a CDN.

Needs: ``apt-get install chromium`` and ``pip install playwright``; skipped
otherwise. The ``live_server_url`` fixture (tests/conftest.py) must serve the
app from another thread or process, since these tests block while the browser
runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.support.browser import CHROMIUM, chromium

try:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Page,
        Response,
        Route,
        WebSocket,
        expect,
    )
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "playwright is not installed (pip install playwright; no `playwright install` needed)",
        allow_module_level=True,
    )

TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} not found (apt-get install chromium)",
    ),
]

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESPONSE_PANE = ".graphiql-response"


@dataclass
class GraphiQLPage:
    """A browser page confined to the live server, plus what it tried to do."""

    page: Page
    origin_netloc: str
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def on_route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.origin_netloc:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def on_websocket(self, ws: WebSocket) -> None:
        self.websockets.append(ws.url)

    def editor_value(self, selector: str) -> str:
        """Text of the CodeMirror 5 editor matched by ``selector``."""
        value = self.page.locator(selector).first.evaluate("el => el.CodeMirror.getValue()")
        assert isinstance(value, str)
        return value

    def assert_offline_clean(self) -> None:
        assert self.blocked == [], f"page tried to reach other hosts (CDN?): {self.blocked}"
        assert self.failed == [], f"requests failed: {self.failed}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def graphiql(browser: Browser, live_server_url: str) -> Iterator[GraphiQLPage]:
    context = browser.new_context()  # fresh localStorage: no remembered tabs
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    session = GraphiQLPage(page=page, origin_netloc=urlsplit(live_server_url).netloc)
    context.route("**/*", session.on_route)
    page.on("response", session.on_response)
    page.on("pageerror", lambda exc: session.page_errors.append(str(exc)))
    page.on("console", session.on_console)
    page.on("websocket", session.on_websocket)
    try:
        yield session
    finally:
        context.close()


def open_graphiql(graphiql: GraphiQLPage, url: str) -> None:
    response = graphiql.page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 200
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("text/html"), (
        f"GET {url} (Accept: text/html) returned {content_type!r}, not the GraphiQL page; "
        "the GraphQL view must render the IDE for browser navigations even with ?query="
    )
    # "load" means every <script>/<link> has been fetched (or refused by on_route).
    assert graphiql.blocked == [], f"page tried to reach other hosts (CDN?): {graphiql.blocked}"
    expect(graphiql.page.locator(".graphiql-container")).to_be_visible(timeout=TIMEOUT_MS)
    expect(graphiql.page.locator(QUERY_EDITOR)).to_be_visible(timeout=TIMEOUT_MS)


def test_graphiql_runs_query_without_cdn(graphiql: GraphiQLPage, live_server_url: str) -> None:
    query = "{ __typename }"
    open_graphiql(graphiql, f"{live_server_url}/graphql?query={quote(query)}")

    # The ?query= URL parameter becomes the editor content.
    assert graphiql.editor_value(QUERY_EDITOR) == query

    graphiql.page.locator(".graphiql-execute-button").click()
    expect(graphiql.page.locator(RESPONSE_PANE)).to_contain_text(
        '"__typename": "Query"', timeout=TIMEOUT_MS
    )
    assert '"__typename": "Query"' in graphiql.editor_value(f"{RESPONSE_PANE} .CodeMirror")

    graphiql.assert_offline_clean()
    # Queries go over HTTP; any WebSocket must target the live server too.
    for ws_url in graphiql.websockets:
        assert urlsplit(ws_url).netloc == graphiql.origin_netloc, ws_url


def test_graphiql_default_page_and_schema(graphiql: GraphiQLPage, live_server_url: str) -> None:
    open_graphiql(graphiql, f"{live_server_url}/graphql")

    # Without ?query= the welcome text is shown, and it is a runnable document.
    default_query = graphiql.editor_value(QUERY_EDITOR)
    assert "crewql" in default_query
    assert "__typename" in default_query

    # Introspection over the fetcher worked: the docs explorer lists the Query root
    # type (without a schema it would say "Error fetching schema").
    graphiql.page.get_by_role("button", name=re.compile("documentation explorer", re.I)).click()
    expect(graphiql.page.locator(".graphiql-doc-explorer")).to_contain_text(
        "query: Query", timeout=TIMEOUT_MS
    )

    graphiql.assert_offline_clean()


def _launch_finished_execution(live_server_url: str) -> str:
    """An execution run to the end on the live server, through its HTTP API."""

    def gql(query: str, variables: dict[str, object] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{live_server_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=10,
        )
        payload: dict[str, Any] = response.json()
        assert "errors" not in payload, payload
        data: dict[str, Any] = payload["data"]
        return data

    suffix = str(time.monotonic_ns())
    agent = gql(
        "mutation($n: String!) { createAgent(input: {name: $n, role: 'r', goal: 'g', "
        "llm: 'simulated/delay=0'}) { ... on Agent { id } } }".replace("'", '"'),
        {"n": f"browser {suffix}"},
    )["createAgent"]["id"]
    task = gql(
        'mutation($n: String!, $a: ID!) { createTask(input: {name: $n, description: "d", '
        'expectedOutput: "e", agentId: $a}) { ... on Task { id } } }',
        {"n": f"browser task {suffix}", "a": agent},
    )["createTask"]["id"]
    crew = gql(
        "mutation($n: String!, $t: ID!) { createCrew(input: {name: $n, taskIds: [$t]}) "
        "{ ... on Crew { id } } }",
        {"n": f"browser crew {suffix}", "t": task},
    )["createCrew"]["id"]
    execution: str = gql(
        "mutation($c: ID!) { createExecution(input: {crewId: $c}) { ... on Execution { id } } }",
        {"c": crew},
    )["createExecution"]["id"]
    deadline = time.monotonic() + 15
    while (
        gql("query($id: ID!) { execution(id: $id) { status } }", {"id": execution})["execution"][
            "status"
        ]
        != "COMPLETED"
    ):
        assert time.monotonic() < deadline, "execution did not complete"
        time.sleep(0.05)
    return execution


def test_graphiql_subscription_over_websocket(graphiql: GraphiQLPage, live_server_url: str) -> None:
    """A subscription typed into GraphiQL streams over the websocket (text frames that the
    browser's graphql-ws client can read) and shows the execution's last event."""
    execution = _launch_finished_execution(live_server_url)
    query = f'subscription {{ executionEvents(executionId: "{execution}") {{ seq type }} }}'
    open_graphiql(graphiql, f"{live_server_url}/graphql?query={quote(query)}")
    graphiql.page.locator(".graphiql-execute-button").click()
    expect(graphiql.page.locator(RESPONSE_PANE)).to_contain_text(
        "EXECUTION_COMPLETED", timeout=TIMEOUT_MS
    )
    assert graphiql.websockets, "the subscription did not use a websocket"
    graphiql.assert_offline_clean()
