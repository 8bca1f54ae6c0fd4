"""`crewql import crewai DIR` and `crewql export crewai CREW_ID DIR` as a person runs them:
real processes against a migrated SQLite file, on the project layout `crewai create crew` makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.db.migrate import upgrade
from tests.support.databases import sqlite_url
from tests.unit.test_cli_auth import crewql

PROJECT = Path(__file__).parents[1] / "fixtures/crewai/latest_ai_development"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    database_url = sqlite_url(tmp_path_factory.mktemp("cli-crewai"))
    upgrade(database_url)
    return database_url


def test_import_export_and_import_again_unchanged(url: str, tmp_path: Path) -> None:
    imported = crewql("import", "crewai", str(PROJECT), url=url)
    assert imported.returncode == 0, imported.stderr
    crew_id = imported.stdout.strip()
    assert "Imported crew 'latest_ai_development' (2 tasks)" in imported.stderr
    assert "A launch gives inputs: topic, current_year." in imported.stderr
    assert "config/tasks.yaml:18 reporting_task.output_file" in imported.stderr

    first = tmp_path / "first"
    exported = crewql("export", "crewai", crew_id, str(first), url=url)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.split() == [str(first / "agents.yaml"), str(first / "tasks.yaml")]
    refused = crewql("export", "crewai", crew_id, str(first), url=url)
    assert refused.returncode == 1
    assert "pass --force" in refused.stderr

    # The exported folder imports into another workspace as the same crew.
    assert crewql("workspace", "create", "other", url=url).returncode == 0
    again = crewql("import", "crewai", str(first), "--name=copy", "--workspace=other", url=url)
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
    second = tmp_path / "second"
    out = crewql(
        "export", "crewai", again.stdout.strip(), str(second), "--workspace", "other", url=url
    )
    assert out.returncode == 0, out.stderr
    for name in ("agents.yaml", "tasks.yaml"):
        assert (second / name).read_text() == (first / name).read_text()


def test_a_malformed_project_is_refused_with_its_line(url: str, tmp_path: Path) -> None:
    (tmp_path / "agents.yaml").write_text("writer:\n  role: Writer\n  goal: [unclosed\n")
    (tmp_path / "tasks.yaml").write_text("draft:\n  description: d\n")
    result = crewql("import", "crewai", str(tmp_path), url=url)
    assert result.returncode == 1
    assert "agents.yaml is not valid YAML: line 4" in result.stderr
    assert "was not imported" in result.stderr
    assert result.stdout == ""
    missing = crewql("import", "crewai", str(tmp_path / "nowhere"), url=url)
    assert missing.returncode == 1
    assert "is not a directory" in missing.stderr
