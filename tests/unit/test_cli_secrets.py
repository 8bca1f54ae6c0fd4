"""`crewql secrets` as an operator runs it, against a migrated SQLite file: storing a value from
standard input, listing names, rotating the key, and `crewql serve` refusing to start in one
line when secrets are stored and the key is missing, wrong or malformed. The commands run in
this process (`backend.cli.main`), as the `crewql` entry point calls it."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from backend.cli import main
from backend.config.logging import configure_logging
from backend.db.migrate import upgrade
from tests.support.databases import make_settings, sqlite_url

VALUE = "sk-cli-value-never-printed"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    database = sqlite_url(tmp_path)
    upgrade(database)
    for name in ("CREWQL_SECRETS_KEY", "CREWQL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREWQL_LOG_TO_FILES", "false")
    monkeypatch.setenv("CREWQL_DATABASE_URL", database)
    yield database
    monkeypatch.delenv("CREWQL_SECRETS_KEY", raising=False)
    configure_logging(make_settings(database))


def ciphertext(url: str) -> str:
    path = url.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as connection:
        (row,) = connection.execute("SELECT ciphertext FROM secrets").fetchall()
    return str(row[0])


def crewql(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, key: str | None
) -> tuple[int, str, str]:
    if key is None:
        monkeypatch.delenv("CREWQL_SECRETS_KEY", raising=False)
    else:
        monkeypatch.setenv("CREWQL_SECRETS_KEY", key)
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_set_list_rotate_and_refuse_to_start(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, _ = crewql(capsys, monkeypatch, "secrets", "generate-key", key=None)
    old = out.strip()
    Fernet(old)  # a real key
    monkeypatch.setattr("sys.stdin", io.StringIO(VALUE + "\n"))
    status, out, err = crewql(capsys, monkeypatch, "secrets", "set", "OPENAI_API_KEY", key=old)
    assert status == 0, err
    assert VALUE not in out + err
    assert Fernet(old).decrypt(ciphertext(url).encode()).decode() == VALUE

    status, out, err = crewql(capsys, monkeypatch, "secrets", "list", key=old)
    assert out.split("\n")[1].split()[:2] == ["OPENAI_API_KEY", "cli"]
    assert VALUE not in out + err

    new = Fernet.generate_key().decode()
    status, out, err = crewql(capsys, monkeypatch, "secrets", "rotate-key", key=f"{new},{old}")
    assert status == 0, err
    assert "Re-encrypted 1 secret(s)" in err
    assert Fernet(new).decrypt(ciphertext(url).encode()).decode() == VALUE

    for key, message in (
        (None, "1 workspace secret(s) are stored but CREWQL_SECRETS_KEY is not set"),
        (old, "CREWQL_SECRETS_KEY cannot decrypt the stored secrets"),
        ("not-a-key", "invalid setting CREWQL_SECRETS_KEY: key 1 is not a Fernet key"),
    ):
        status, out, err = crewql(capsys, monkeypatch, "serve", "--port", "0", key=key)
        assert status == 2
        lines = [line for line in err.splitlines() if line.startswith("crewql:")]
        assert len(lines) == 1, err
        assert message in lines[0]
        assert "Traceback" not in err
