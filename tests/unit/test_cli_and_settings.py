"""The command line and settings, as an operator meets them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli import main
from backend.config.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "migrate", "export-schema"])
def test_every_command_has_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage: crewql " + command in result.stdout


def test_bad_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"CREWQL_PORT": "eighty", "CREWQL_LOG_TO_FILES": "false", "PATH": "/usr/bin:/bin"}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CREWQL_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_refuses_auth_off_on_a_public_address() -> None:
    env = {
        "CREWQL_AUTH_ENABLED": "false",
        "CREWQL_LOG_TO_FILES": "false",
        "PATH": "/usr/bin:/bin",
    }
    result = run_cli("serve", "--host", "0.0.0.0", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CREWQL_AUTH_ENABLED" in lines[0]
    assert "CREWQL_HOST" in lines[0]


def test_settings_errors_name_each_setting() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(database_url="mysql://x", log_level="LOUD")
    message = str(info.value)
    assert "CREWQL_DATABASE_URL" in message
    assert "CREWQL_LOG_LEVEL" in message
    assert "\n" not in message


def test_schema_file_matches_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    """schema.graphql is committed; regenerate it with `make schema` when this fails."""
    assert main(["export-schema"]) == 0
    exported = capsys.readouterr().out
    assert exported == (ROOT / "schema.graphql").read_text(encoding="utf-8")


def test_export_schema_to_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(target)]) == 0
    assert "type Query" in target.read_text(encoding="utf-8")


def test_allowed_origins_are_checked_as_origins() -> None:
    with pytest.raises(SettingsError, match="CREWQL_ALLOWED_ORIGINS"):
        load_settings(allowed_origins="localhost:5173")
    settings = load_settings(allowed_origins="http://localhost:5173, https://app.example")
    assert settings.allowed_origin_list == ["http://localhost:5173", "https://app.example"]
