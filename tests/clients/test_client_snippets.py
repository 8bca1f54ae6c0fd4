"""The client programs of docs/clients.md, run exactly as printed, against a live crewql.

Apollo Client (HttpLink and PersistedQueryLink, then GraphQLWsLink), urql (persisted queries,
server-sent events, graphql-ws), graphql-ws and graphql-sse, gql (aiohttp multipart and
websockets) and curl each run a query, a mutation with a typed error, and an `executionEvents`
subscription to completion over HTTP and over a websocket. The server is a real uvicorn with
authentication on; every program gets an editor's key in CREWQL_KEY. No operation of any client
may make the server log an ERROR. graphql-http's audit runs here too.

Node packages come from tests/clients/node/package-lock.json (`npm ci`). Without node/npm (or
curl and jq, for the curl program) those tests are skipped with the reason, unless
CREWQL_TEST_REQUIRE_CLIENTS is set, as CI sets it: then they fail.

One server for the module, on SQLite only: what is under test is the HTTP and websocket
protocols, which do not depend on the database (both databases are covered by the e2e suites).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from backend.core.identity import Role
from backend.models import DEFAULT_WORKSPACE_ID
from tests.support.auth import make_key
from tests.support.live_server import LoopLiveServer, fresh_live_server
from tests.support.processes import run_crewql
from tests.support.server_log import error_lines

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENTS_DOC = ROOT / "docs" / "clients.md"
REQUIRE_ENV = "CREWQL_TEST_REQUIRE_CLIENTS"
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w.-]+) -->\n```\w*\n(?P<code>.*?)\n```", re.S)
RUN_TIMEOUT = 90  # seconds for one program; each takes one or two


def snippets() -> dict[str, str]:
    found = {m["name"]: m["code"] + "\n" for m in SNIPPET.finditer(CLIENTS_DOC.read_text())}
    assert found, f"no <!-- snippet: NAME --> blocks in {CLIENTS_DOC}"
    return found


def missing(*tools: str) -> None:
    """Skips (or, where CI requires the clients, fails) when a tool is not installed."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if not absent:
        return
    reason = f"{', '.join(absent)} not installed: the client examples that need it are not run"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """tests/clients/node/node_modules, installed from the lockfile when missing or stale."""
    missing("node", "npm")
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lockfile = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lockfile.stat().st_mtime:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoopLiveServer]:
    settings = {
        "auth_enabled": True,
        # graphql-http's audit sends a burst of requests with one key
        "rate_limit_per_second": 0,
        "simulated_delay_seconds": 0.1,
        "output_flush_interval_seconds": 0.05,
        "runner_poll_interval_seconds": 0.1,
        "log_level": "WARNING",
    }
    async with fresh_live_server("sqlite", tmp_path_factory, **settings) as live:
        yield live


@pytest.fixture(scope="module")
async def key(server: LoopLiveServer) -> str:
    assert server.loop is not None
    services = server.app.state.services
    created = asyncio.run_coroutine_threadsafe(
        make_key(services, DEFAULT_WORKSPACE_ID, Role.EDITOR, "client-examples"), server.loop
    )
    return await asyncio.wrap_future(created)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The programs as docs/clients.md prints them, and the possibleTypes file Apollo's reads."""
    directory = tmp_path_factory.mktemp("client-examples")
    for name, code in snippets().items():
        (directory / name).write_text(code, encoding="utf-8")
    exported = run_crewql(
        ["export-schema", "--possible-types", "possible-types.json", "--output", "schema.graphql"],
        {"CREWQL_LOG_TO_FILES": "false"},
        directory,
    )
    assert exported.returncode == 0, exported.stderr
    return directory


@pytest.fixture
def no_errors_logged() -> Iterator[None]:
    with error_lines() as lines:
        yield
    assert lines == [], "the server logged errors:\n" + "\n".join(lines)


def run(argv: list[str], cwd: Path, server: LoopLiveServer, key: str) -> str:
    env = {
        **os.environ,
        "CREWQL_URL": f"{server.url}/graphql",
        "CREWQL_KEY": key,
    }
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def assert_full_runs(output: str) -> None:
    assert "createAgent: ValidationError VALIDATION_FAILED" in output, output
    for transport in ("HTTP", "websocket"):
        line = f"subscription over {transport} completed after EXECUTION_COMPLETED"
        assert line in output, output


def link_node_modules(workdir: Path, node_modules: Path) -> None:
    """ES modules resolve packages from the importing file's folders upwards, not NODE_PATH."""
    link = workdir / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules, target_is_directory=True)


@pytest.mark.parametrize("name", ["apollo.mjs", "urql.mjs", "graphql-ws.mjs"])
async def test_node_client_example_runs_to_completion(
    name: str,
    node_modules: Path,
    server: LoopLiveServer,
    key: str,
    workdir: Path,
    no_errors_logged: None,
) -> None:
    link_node_modules(workdir, node_modules)
    output = await asyncio.to_thread(run, ["node", name], workdir, server, key)
    assert_full_runs(output)
    if name == "apollo.mjs":
        # PersistedQueryLink sent hashes: what it registered is stored, subscription included
        database = make_url(server.app.state.settings.database_url).database
        with sqlite3.connect(str(database)) as connection:
            stored = [
                row[0] for row in connection.execute("SELECT document FROM persisted_documents")
            ]
        for operation in ("query Agents", "mutation CreateAgent", "subscription Watch"):
            assert any(text.startswith(operation) for text in stored), stored


async def test_gql_example_runs_to_completion(
    server: LoopLiveServer, key: str, workdir: Path, no_errors_logged: None
) -> None:
    output = await asyncio.to_thread(run, [sys.executable, "gql_client.py"], workdir, server, key)
    assert_full_runs(output)


async def test_curl_example_runs_to_completion(
    server: LoopLiveServer, key: str, workdir: Path, no_errors_logged: None
) -> None:
    missing("curl", "jq")
    output = await asyncio.to_thread(
        run, ["bash", "-e", "-o", "pipefail", "curl.sh"], workdir, server, key
    )
    assert '"code":"VALIDATION_FAILED"' in output, output
    assert "--graphql--" in output, output  # the multipart stream ended
    assert output.rstrip().endswith("event: complete\ndata:"), output  # and the event stream
    assert output.count("EXECUTION_COMPLETED") == 2, output


async def test_graphql_http_audit_passes(
    node_modules: Path, server: LoopLiveServer, key: str, no_errors_logged: None
) -> None:
    output = await asyncio.to_thread(run, ["node", "audit.mjs"], NODE_DIR, server, key)
    summary = json.loads(output)
    assert summary["failed"] == [], summary["failed"]
    assert summary["MUST"] == {"ok": 13, "total": 13}, summary
    assert summary["SHOULD"] == {"ok": 23, "total": 23}, summary
