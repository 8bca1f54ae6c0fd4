"""`crewql workspace` and `crewql apikey` as an operator runs them: real processes against a
migrated SQLite file, and the refusal to serve without authentication on a public address."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.core.auth import Unauthenticated
from backend.core.identity import Role
from backend.db.engine import create_engine, create_sessionmaker
from backend.db.migrate import upgrade
from backend.repositories.unit_of_work import UnitOfWork
from backend.services.auth_service import AuthService
from tests.support.databases import make_settings, sqlite_url

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"^cq_[a-z0-9]{8}_[A-Za-z0-9_-]{43,}$")


def crewql(*args: str, url: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CREWQL_LOG_TO_FILES": "false",
        **env,
    }
    if url is not None:
        environment["CREWQL_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    database_url = sqlite_url(tmp_path_factory.mktemp("cli-auth"))
    upgrade(database_url)
    return database_url


def authenticate(url: str, token: str) -> Role:
    """What a server over this database would make of the key."""

    async def run() -> Role:
        engine = create_engine(make_settings(url))
        try:
            sessions = create_sessionmaker(engine)
            service = AuthService(lambda: UnitOfWork(sessions), cache_seconds=0)
            return (await service.authenticate(token)).role
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "command",
    ["workspace create", "workspace list", "apikey create", "apikey list", "apikey revoke"],
)
def test_every_command_has_help(command: str) -> None:
    result = crewql(*command.split(), "--help", url=None)
    assert result.returncode == 0
    assert f"usage: crewql {command}" in result.stdout


def test_create_prints_the_key_once_list_shows_its_prefix_revoke_ends_it(url: str) -> None:
    created = crewql("apikey", "create", "dashboard", "--role", "viewer", url=url)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1  # the key alone: KEY=$(crewql apikey create ...) works
    token = lines[0]
    assert KEY.match(token)
    prefix = token[:11]
    secret = token[12:]
    assert secret not in created.stderr
    assert prefix in created.stderr
    assert "only time" in created.stderr
    assert authenticate(url, token) is Role.VIEWER

    listed = crewql("apikey", "list", url=url)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout + listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(prefix)]
    assert "dashboard" in row
    assert "viewer" in row
    assert row.split()[-1] != "-"  # the id column
    assert "never" not in row  # used once above

    revoked = crewql("apikey", "revoke", prefix, url=url)
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked key {prefix}" in revoked.stderr
    with pytest.raises(Unauthenticated):
        authenticate(url, token)
    (row,) = [
        line for line in crewql("apikey", "list", url=url).stdout.splitlines() if prefix in line
    ]
    assert "UTC" in row.split("viewer", 1)[1]

    again = crewql("apikey", "revoke", prefix, url=url)
    assert again.returncode == 0
    assert "already revoked" in again.stderr


def test_workspaces_keep_their_keys_apart(url: str) -> None:
    made = crewql("workspace", "create", "team-cli", url=url)
    assert made.returncode == 0, made.stderr
    assert "team-cli" in crewql("workspace", "list", url=url).stdout

    created = crewql(
        "apikey", "create", "ops", "--role", "admin", "--workspace", "team-cli", url=url
    )
    assert created.returncode == 0, created.stderr
    prefix = created.stdout.strip()[:11]
    assert prefix in crewql("apikey", "list", "--workspace", "team-cli", url=url).stdout
    assert prefix not in crewql("apikey", "list", url=url).stdout

    # Named from the wrong workspace, a key is as missing as one that never existed.
    wrong = crewql("apikey", "revoke", prefix, url=url)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"crewql: ApiKey {prefix} does not exist."
    assert authenticate(url, created.stdout.strip()) is Role.ADMIN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apikey", "list", "--workspace", "nowhere"), "Workspace nowhere does not exist."),
        (("apikey", "revoke", "cq_zzzzzzzz"), "ApiKey cq_zzzzzzzz does not exist."),
        (("workspace", "create", "two words"), "invalid workspace name"),
        (("workspace", "create", "default"), "already exists"),
        (("apikey", "create", "   ", "--role", "viewer"), "invalid name"),
    ],
)
def test_failures_are_one_line(url: str, args: tuple[str, ...], message: str) -> None:
    result = crewql(*args, url=url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crewql: ")
    assert message in lines[0]
    assert result.stdout == ""


def test_a_role_is_required(url: str) -> None:
    result = crewql("apikey", "create", "ci", url=url)
    assert result.returncode == 2
    assert "--role" in result.stderr


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'typo.db'}"
    result = crewql("apikey", "list", url=url)
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    result = crewql("apikey", "list", url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1
    assert "crewql migrate" in result.stderr


def test_serving_without_authentication_on_a_public_address_is_refused(tmp_path: Path) -> None:
    result = crewql(
        "serve",
        url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        CREWQL_AUTH_ENABLED="false",
        CREWQL_HOST="0.0.0.0",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CREWQL_AUTH_ENABLED" in lines[0]
    assert "CREWQL_HOST" in lines[0]
    assert "Traceback" not in result.stderr
