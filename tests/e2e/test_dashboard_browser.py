"""The dashboard in headless Chromium against a live crewql, offline (every request to another
host is refused): launch a crew from the page and watch it complete, cancel one, 200 executions
in the table (screenshots for docs/dashboard.md), a killed websocket caught up without gaps or
duplicates, HTTP streams when websockets do not get through, and the key prompt and roles.

Timings (200 rows rendered, 50 output events a second) are measured and printed (`pytest -s`);
they are figures for docs/dashboard.md, never assertions.

Needs Debian's chromium and the playwright package; skipped otherwise. On SQLite always, on
PostgreSQL too when CREWQL_TEST_POSTGRES_URL is set: the catch-up test, the one whose outcome
depends on the database (the page itself is the same on both).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from backend.core.identity import Role
from backend.db.migrate import upgrade
from backend.models import DEFAULT_WORKSPACE_ID
from backend.schemas import ApiKeyCreate
from tests.support.browser import CHROMIUM, chromium
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    make_settings,
    postgres_server_url,
    sqlite_url,
)
from tests.support.live_server import LoopLiveServer

try:
    from playwright.sync_api import Browser, Page, Route, WebSocketRoute, expect
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("playwright is not installed", allow_module_level=True)

TIMEOUT_MS = 20_000
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"
    ),
]

SLOW = "simulated/delay=30,chunk=4"
FAST = "simulated/delay=0.3"
INSTANT = "simulated/delay=0,chunk=100000"
CREATE_AGENT = (
    """mutation($input: AgentCreateInput!) { createAgent(input: $input) { ... on Agent { id } } }"""
)
CREATE_TASK = (
    """mutation($input: TaskCreateInput!) { createTask(input: $input) { ... on Task { id } } }"""
)
CREATE_CREW = (
    """mutation($input: CrewCreateInput!) { createCrew(input: $input) { ... on Crew { id } } }"""
)
LAUNCH = """mutation($input: ExecutionCreateInput!) {
  createExecution(input: $input) { ... on Execution { id } } }"""
STATUS = """query($id: ID!) { execution(id: $id) { status } }"""
CANCEL = """mutation($id: ID!) { cancelExecution(id: $id, force: true) { __typename } }"""


def gql(
    url: str, query: str, variables: dict[str, Any] | None = None, key: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def make_crew(url: str, name: str, llm: str, key: str | None = None) -> str:
    agent = gql(
        url,
        CREATE_AGENT,
        {
            "input": {
                "name": f"{name} writer",
                "role": "writer on {topic}",
                "goal": "write",
                "llm": llm,
            }
        },
        key,
    )
    task = gql(
        url,
        CREATE_TASK,
        {
            "input": {
                "name": f"{name} draft",
                "description": "Write about {topic} for {audience}",
                "expectedOutput": "text",
                "agentId": agent["createAgent"]["id"],
            }
        },
        key,
    )
    crew = gql(
        url, CREATE_CREW, {"input": {"name": name, "taskIds": [task["createTask"]["id"]]}}, key
    )
    return str(crew["createCrew"]["id"])


def launch(url: str, crew_id: str, key: str | None = None) -> str:
    made = gql(
        url,
        LAUNCH,
        {"input": {"crewId": crew_id, "inputs": {"topic": "tides", "audience": "sailors"}}},
        key,
    )
    return str(made["createExecution"]["id"])


def wait_status(url: str, execution_id: str, wanted: set[str], within: float = 30) -> str:
    deadline = time.monotonic() + within
    while True:
        status = str(gql(url, STATUS, {"id": execution_id})["execution"]["status"])
        if status in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def record(name: str, figures: dict[str, Any]) -> None:
    """Prints a measurement (`pytest -s` shows it); docs/dashboard.md quotes them."""
    print(f"\n[dashboard] {name}: {json.dumps(figures)}")  # noqa: T201 - the figure is the output


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def in_thread(function: Any, *args: Any) -> Any:
    """Runs code that starts its own event loop (Alembic, asyncpg set-up) off this thread: the
    browser's driver holds one here, so no async fixture may start after it either."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


@contextmanager
def live_server(
    tmp_path_factory: pytest.TempPathFactory, backend: str = "sqlite", **overrides: Any
) -> Iterator[LoopLiveServer]:
    """A server over its own migrated database (SQLite as `make run` serves it, or PostgreSQL)."""
    pg_server = postgres_server_url() if backend == "postgres" else None
    if pg_server is not None:
        url = in_thread(asyncio.run, create_postgres_database(pg_server))
    else:
        url = sqlite_url(tmp_path_factory.mktemp("dashboard"))
    try:
        in_thread(upgrade, url)
        with LoopLiveServer(make_settings(url, **overrides)) as live:
            yield live
    finally:
        if pg_server is not None:
            in_thread(asyncio.run, drop_postgres_database(pg_server, url))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopLiveServer]:
    """Output flushed every 20 ms (not 250): up to 50 output events a second per execution."""
    with live_server(
        tmp_path_factory,
        simulated_delay_seconds=0.2,
        output_flush_interval_seconds=0.02,
        runner_concurrency=20,
        rate_limit_per_second=0,
    ) as live:
        yield live


class Offline:
    """A page that may reach the live server only; what it tried elsewhere, and its errors."""

    def __init__(self, browser: Browser, base: str, viewport: dict[str, int] | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or {"width": 1440, "height": 900})  # type: ignore[arg-type]
        self.context.set_default_timeout(TIMEOUT_MS)
        self.netloc = urlsplit(base).netloc
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(m.text) if m.type == "error" and "401" not in m.text else None
            ),
        )

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.netloc:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def close(self) -> None:
        self.context.close()
        assert self.blocked == [], f"the page tried other hosts: {self.blocked}"
        assert self.errors == [], f"page errors: {self.errors}"


@pytest.fixture(scope="module")
def any_server(
    backend: str, server: LoopLiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopLiveServer]:
    """`server` on SQLite; on PostgreSQL (when configured) a second one like it."""
    if backend == "sqlite":
        yield server
        return
    with live_server(tmp_path_factory, backend, simulated_delay_seconds=0.2) as live:
        yield live


@pytest.fixture
def offline(browser: Browser, server: LoopLiveServer) -> Iterator[Offline]:
    session = Offline(browser, server.url)
    try:
        yield session
    finally:
        session.close()


def rows(page: Page) -> Any:
    return page.locator('[data-testid="execution-row"]')


# ------------------------------------------------------------------------------------ tests


def test_root_redirects_and_assets_are_local(server: LoopLiveServer) -> None:
    response = httpx.get(f"{server.url}/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"
    page = httpx.get(f"{server.url}/dashboard").text
    assert "/dashboard/static/dashboard.js" in page
    assert httpx.get(f"{server.url}/dashboard/static/dashboard.js").status_code == 200


def test_launch_watch_complete_then_cancel_another(
    offline: Offline, server: LoopLiveServer
) -> None:
    page = offline.page
    quick = make_crew(server.url, "Quick crew", FAST)
    slow = make_crew(server.url, "Slow crew", SLOW)
    page.goto(f"{server.url}/dashboard#/launch")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    page.get_by_test_id("launch-crew").select_option(quick)
    page.get_by_test_id("input-topic").fill("tides")
    page.get_by_test_id("input-audience").fill("sailors")
    page.get_by_test_id("launch").click()
    page.wait_for_url("**/dashboard#/e/*")
    head = page.locator(".head h2 .badge")
    expect(head).to_have_text("COMPLETED")
    expect(page.get_by_test_id("output-0")).to_contain_text("simulated answer")
    expect(page.get_by_test_id("event-log")).to_contain_text("EXECUTION_COMPLETED")
    expect(page.get_by_test_id("retry")).to_be_visible()

    page.goto(f"{server.url}/dashboard#/launch?crew={slow}")
    page.get_by_test_id("input-topic").fill("storms")
    page.get_by_test_id("input-audience").fill("pilots")
    page.get_by_test_id("launch").click()
    page.wait_for_url("**/dashboard#/e/*")
    expect(page.get_by_test_id("task").first).to_have_attribute("data-status", "RUNNING")
    expect(page.get_by_test_id("output-0")).not_to_be_empty()  # output streams in
    page.get_by_test_id("cancel").click()
    expect(head).to_have_text("CANCELLED")
    expect(page.get_by_test_id("event-log")).to_contain_text("EXECUTION_CANCELLING")
    cancelled_id = page.url.rsplit("/", 1)[1]
    page.goto(f"{server.url}/dashboard#/")
    expect(page.locator(f'tr[data-id="{cancelled_id}"]')).to_have_attribute(
        "data-status", "CANCELLED"
    )


def test_two_hundred_executions_screenshot_and_timings(
    offline: Offline, server: LoopLiveServer
) -> None:
    page = offline.page
    # Instant answers (one output event each), and a crew that fails, for a telling screenshot.
    llms = [INSTANT, INSTANT, "simulated/fail,delay=0"]
    crews = [make_crew(server.url, f"Fleet {n}", llm) for n, llm in zip("ABC", llms, strict=True)]
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(lambda i: launch(server.url, crews[i % 3]), range(200)))
    wait_status(server.url, ids[-1], {"COMPLETED", "FAILED"}, within=60)
    page.goto(f"{server.url}/dashboard#/")
    expect(rows(page)).to_have_count(50)
    first_page_ms = page.evaluate("window.crewqlDashboard.page().rendered.at")
    began = time.perf_counter()
    for shown in (100, 150, 200):
        page.get_by_role("button", name="Load older").click()
        expect(rows(page)).to_have_count(shown)
    paging_ms = (time.perf_counter() - began) * 1000
    # All 200 at once, as a wall monitor would render them: merge and draw in one frame.
    render_ms = page.evaluate(
        """async () => {
          const p = window.crewqlDashboard.page();
          const rows = [...p.rows.values()];
          p.trs.forEach(tr => tr.remove()); p.trs.clear();
          const t0 = performance.now();
          for (const r of rows) p.pending.add(r.id);
          p.flush();
          await new Promise(r => requestAnimationFrame(() => setTimeout(r)));
          return performance.now() - t0;
        }"""
    )
    expect(rows(page)).to_have_count(200)
    page.locator('[data-testid="counts"] [data-status="FAILED"]').click()  # only the failed
    expect(page).to_have_url(re.compile(r"status=FAILED"))
    expect(rows(page).first).to_be_visible()
    assert set(rows(page).evaluate_all("trs => trs.map(t => t.dataset.status)")) == {"FAILED"}
    page.goto(f"{server.url}/dashboard#/")
    for shown in (100, 150, 200):
        page.get_by_role("button", name="Load older").click()
        expect(rows(page)).to_have_count(shown)
    live_slow = launch(server.url, make_crew(server.url, "Live one", SLOW))
    expect(page.locator(f'tr[data-id="{live_slow}"]')).to_have_attribute("data-status", "RUNNING")
    expect(page.get_by_test_id("counts").locator('[data-status="RUNNING"] b')).to_have_text("1")
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(IMAGES / "dashboard-executions.png"))
    page.set_viewport_size({"width": 2560, "height": 1440})  # a wall monitor
    page.screenshot(path=str(IMAGES / "dashboard-wall.png"))
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{server.url}/dashboard#/e/{live_slow}")
    expect(page.get_by_test_id("output-0")).not_to_be_empty()
    page.screenshot(path=str(IMAGES / "dashboard-execution.png"))
    gql(server.url, CANCEL, {"id": live_slow})
    record(
        "render_200_rows",
        {
            "first_page_50_rows_ms": round(first_page_ms, 1),
            "paging_to_200_ms": round(paging_ms, 1),
            "redraw_200_rows_ms": round(render_ms, 1),
        },
    )


def test_human_input_from_the_page(offline: Offline, server: LoopLiveServer) -> None:
    page = offline.page
    agent = gql(
        server.url,
        CREATE_AGENT,
        {"input": {"name": "Reviewed writer", "role": "w", "goal": "g", "llm": FAST}},
    )
    task = gql(
        server.url,
        CREATE_TASK,
        {
            "input": {
                "name": "Reviewed draft",
                "description": "Write about {topic} for {audience}",
                "expectedOutput": "text",
                "agentId": agent["createAgent"]["id"],
                "humanInput": True,
            }
        },
    )
    crew = gql(
        server.url,
        CREATE_CREW,
        {"input": {"name": "Reviewed", "taskIds": [task["createTask"]["id"]]}},
    )
    execution_id = launch(server.url, crew["createCrew"]["id"])
    page.goto(f"{server.url}/dashboard#/e/{execution_id}")
    head = page.locator(".head h2 .badge")
    expect(head).to_have_text("WAITING FOR INPUT")
    expect(page.get_by_test_id("waiting")).to_contain_text("Reviewed draft")
    page.get_by_test_id("feedback").fill("Shorter, please.")
    page.get_by_test_id("send-feedback").click()  # the task runs again with the feedback
    expect(page.locator(".log li", has_text="INPUT_REQUESTED")).to_have_count(2)
    expect(head).to_have_text("WAITING FOR INPUT")
    page.get_by_test_id("approve").click()
    expect(head).to_have_text("COMPLETED")


def test_fifty_output_events_a_second(offline: Offline, server: LoopLiveServer) -> None:
    """Two figures: the page fed 50 TASK_OUTPUT events a second for 5 s (its own capacity:
    the worst main-thread stall meanwhile), and the events a live server streamed to it."""
    page = offline.page
    crew = make_crew(server.url, "Chatty", "simulated/delay=4,chunk=1")  # ~300 chunks in 4 s
    execution_id = launch(server.url, crew)
    page.goto(f"{server.url}/dashboard#/e/{execution_id}")
    expect(page.locator(".head h2 .badge")).to_have_text("COMPLETED", timeout=30_000)
    streamed = page.evaluate("window.crewqlDashboard.page().outputStats")
    streamed_seconds = (streamed["last"] - streamed["first"]) / 1000

    held = launch(server.url, make_crew(server.url, "Held", SLOW))
    page.goto(f"{server.url}/dashboard#/e/{held}")
    expect(page.get_by_test_id("task").first).to_have_attribute("data-status", "RUNNING")
    fed = page.evaluate(
        """async () => {
          const p = window.crewqlDashboard.page();
          const probe = { worst: 0, last: performance.now() };
          const timer = setInterval(() => {
            const now = performance.now();
            probe.worst = Math.max(probe.worst, now - probe.last - 10);
            probe.last = now;
          }, 10);
          const start = p.outputStats.events, t0 = performance.now();
          let seq = 1e6;
          await new Promise(done => {
            const feed = setInterval(() => {
              p.apply({ seq: ++seq, type: "TASK_OUTPUT", status: "RUNNING",
                        taskPosition: 0, message: "", data: { text: "token " },
                        createdAt: new Date().toISOString() });
              if (seq >= 1e6 + 250) { clearInterval(feed); done(); }
            }, 20);
          });
          await new Promise(r => requestAnimationFrame(() => setTimeout(r)));
          clearInterval(timer);
          const events = p.outputStats.events - start;
          return { events, ms: performance.now() - t0, worst: probe.worst };
        }"""
    )
    gql(server.url, CANCEL, {"id": held})
    record(
        "output_events",
        {
            "fed_events": fed["events"],
            "fed_events_per_second": round(fed["events"] * 1000 / fed["ms"], 1),
            "fed_worst_main_thread_stall_ms": round(fed["worst"], 1),
            "live_server_events": streamed["events"],
            "live_server_events_per_second": round(
                streamed["events"] / max(streamed_seconds, 0.001), 1
            ),
        },
    )
    assert fed["events"] == 250
    assert streamed["events"] > 50  # the output arrived as a stream of events, not at the end


def test_killed_websocket_catches_up_without_gaps_or_duplicates(
    browser: Browser, any_server: LoopLiveServer
) -> None:
    server = any_server
    offline = Offline(browser, server.url)
    page = offline.page
    state: dict[str, Any] = {"block": False, "sockets": []}

    def proxy(ws: WebSocketRoute) -> None:
        if state["block"]:
            ws.close(code=1011, reason="network down")
            return
        ws.connect_to_server()
        state["sockets"].append(ws)

    page.route_web_socket("**/graphql", proxy)
    crew = make_crew(server.url, "Catch-up crew", FAST)
    page.goto(f"{server.url}/dashboard#/?crew={crew}")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    before = launch(server.url, crew)
    expect(page.locator(f'tr[data-id="{before}"]')).to_have_attribute("data-status", "COMPLETED")

    state["block"] = True
    for ws in state["sockets"]:
        ws.close(code=1011, reason="killed by the test")
    expect(page.get_by_test_id("connection")).to_have_text("reconnecting…")
    missed = [launch(server.url, crew) for _ in range(6)]
    for execution_id in missed:
        assert wait_status(server.url, execution_id, {"COMPLETED"}) == "COMPLETED"
    state["block"] = False

    expect(page.get_by_test_id("connection")).to_have_text("live", timeout=15_000)
    for execution_id in [before, *missed]:
        expect(page.locator(f'tr[data-id="{execution_id}"]')).to_have_attribute(
            "data-status", "COMPLETED"
        )
    ids = page.locator('[data-testid="execution-row"]').evaluate_all(
        "trs => trs.map(t => t.dataset.id)"
    )
    assert sorted(ids) == sorted({before, *missed})  # each once: no duplicate, none missing
    expect(page.get_by_test_id("counts").locator('[data-status="COMPLETED"] b')).to_have_text("7")
    offline.close()


def test_http_streams_when_websockets_never_connect(
    offline: Offline, server: LoopLiveServer
) -> None:
    page = offline.page
    page.route_web_socket("**/graphql", lambda ws: ws.close(code=1011, reason="no websockets here"))
    crew = make_crew(server.url, "Over HTTP", FAST)
    page.goto(f"{server.url}/dashboard#/?crew={crew}")
    expect(page.get_by_test_id("connection")).to_have_text("live (HTTP)", timeout=15_000)
    execution_id = launch(server.url, crew)
    expect(page.locator(f'tr[data-id="{execution_id}"]')).to_have_attribute(
        "data-status", "COMPLETED"
    )


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LoopLiveServer, dict[str, str]]]:
    with live_server(tmp_path_factory, auth_enabled=True, simulated_delay_seconds=0.2) as live:

        def key(role: Role) -> tuple[str, str]:
            # The app's services belong to the server's loop: create the key there.
            create = live.app.state.services.auth.create_key(
                DEFAULT_WORKSPACE_ID, ApiKeyCreate(name=f"dash-{role}", role=role)
            )
            assert live.loop is not None
            made = asyncio.run_coroutine_threadsafe(create, live.loop).result(timeout=10)
            return made.token, str(made.api_key.id)

        viewer, viewer_id = key(Role.VIEWER)
        editor, _ = key(Role.EDITOR)
        admin, _ = key(Role.ADMIN)
        yield live, {"viewer": viewer, "viewer_id": viewer_id, "editor": editor, "admin": admin}


def test_key_prompt_and_viewer_sees_no_mutating_buttons(
    browser: Browser, auth_server: tuple[LoopLiveServer, dict[str, str]]
) -> None:
    server, keys = auth_server
    session = Offline(browser, server.url)
    page = session.page
    try:
        crew = make_crew(server.url, "Guarded", FAST, keys["editor"])
        execution_id = launch(server.url, crew, keys["editor"])
        page.goto(f"{server.url}/dashboard#/e/{execution_id}")
        expect(page.get_by_role("alert")).to_contain_text("needs an API key")
        page.get_by_test_id("key-input").fill("cq_wrong_key")
        page.get_by_test_id("key-submit").click()
        expect(page.get_by_role("alert")).to_contain_text("refused")
        page.get_by_test_id("key-input").fill(keys["viewer"])
        page.get_by_test_id("key-submit").click()
        expect(page.locator(".head h2 .badge")).to_have_text("COMPLETED")
        expect(page.get_by_test_id("retry")).to_have_count(0)
        expect(page.get_by_test_id("nav-launch")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('crewql.key')") == keys["viewer"]
        page.reload()  # the key survives a reload of the tab
        expect(page.locator(".head h2 .badge")).to_have_text("COMPLETED")
        page.goto(f"{server.url}/dashboard#/")
        expect(page.get_by_test_id("connection")).to_have_text("live")
        # Revoked while the page is open: the server closes the socket with 4401.
        revoke = """mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }"""
        gql(server.url, revoke, {"id": keys["viewer_id"]}, keys["admin"])
        expect(page.get_by_role("alert")).to_contain_text("refused the key", timeout=10_000)
        expect(page.get_by_test_id("key-input")).to_be_visible()
    finally:
        session.close()
