"""Observability of real crewql processes: `crewql worker --metrics-port` and JSON log lines.

Both run as OS processes, as an operator starts them, on SQLite (no PostgreSQL needed): the
worker's metrics are scraped over HTTP, and a server's JSON console and file lines are parsed.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx

from backend.db.migrate import upgrade
from tests.support.databases import sqlite_url
from tests.support.processes import crewql_command, free_port, start_process, wait_ready

LAUNCH = {
    "query": "mutation L($input: ExecutionCreateInput!) { createExecution(input: $input) "
    "{ __typename ... on Execution { id } } }",
    "variables": {
        "input": {
            "crew": {
                "name": "Logged",
                "agents": [{"name": "Solo", "role": "r", "goal": "g", "llm": "simulated"}],
                "tasks": [
                    {"name": "T", "description": "Say {q}", "expectedOutput": "x", "agent": "Solo"}
                ],
            },
            "inputs": {"q": "hi"},
        }
    },
}


async def test_worker_serves_metrics_on_its_port(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await asyncio.to_thread(upgrade, url)
    port = free_port()
    worker = start_process(
        "worker",
        crewql_command("worker", "--metrics-port", str(port)),
        {"CREWQL_DATABASE_URL": url, "CREWQL_AUTH_ENABLED": "false", "CREWQL_LOG_TO_FILES": "0"},
        tmp_path,
    )
    try:
        await worker.wait_for_log(r"worker metrics on http://", within=90)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "crewql_queue_depth 0.0" in response.text
        assert "crewql_runner_slots 8.0" in response.text
        worker.send(signal.SIGTERM)
        assert await worker.wait_exit(within=30) == 0
    finally:
        worker.kill()


async def test_json_logs_carry_request_and_execution_context(tmp_path: Path) -> None:
    port = free_port()
    server = start_process(
        "api",
        crewql_command("serve", "--port", str(port)),
        {
            "CREWQL_DATABASE_URL": sqlite_url(tmp_path),
            "CREWQL_AUTH_ENABLED": "false",
            "CREWQL_LOG_FORMAT": "json",
            "CREWQL_LOG_LEVEL": "DEBUG",
            "CREWQL_LOG_DIR": str(tmp_path / "logs"),
            "CREWQL_SIMULATED_DELAY_SECONDS": "0",
        },
        tmp_path,
        port=port,
    )
    try:
        await wait_ready(server)
        async with httpx.AsyncClient(base_url=server.url) as http:
            launched = await http.post(
                "/graphql", json=LAUNCH, headers={"X-Request-ID": "req-abc-123"}
            )
            assert launched.status_code == 200, launched.text
            assert launched.headers["x-request-id"] == "req-abc-123"
            execution_id = launched.json()["data"]["createExecution"]["id"]
            await server.wait_for_log(rf"execution {execution_id} completed", within=30)
        server.send(signal.SIGTERM)
        await server.wait_exit(within=30)
    finally:
        server.kill()

    console = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    for record in console:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
    run_lines = [r for r in console if r.get("execution_id") == execution_id]
    assert run_lines, "no line of the run carries its execution_id"
    assert all(r.get("worker_id") for r in run_lines)
    request_lines = [r for r in console if r.get("request_id") == "req-abc-123"]
    assert request_lines, "no line of the request carries its request_id"
    assert any(r.get("operation") == "L" and r.get("workspace_id") for r in request_lines)

    files = sorted((tmp_path / "logs").glob("api.*.log"))
    assert sorted(f.name.split(".")[1] for f in files) == ["DEBUG", "ERROR"]
    for path in files:
        for line in path.read_text().splitlines():
            assert "timestamp" in json.loads(line)
