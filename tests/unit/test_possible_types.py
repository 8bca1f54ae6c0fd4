"""`crewql export-schema --possible-types`: Apollo Client's map of every union and interface."""

from __future__ import annotations

import json
from pathlib import Path

from graphql import build_schema

from backend.api.graphql.possible_types import possible_types
from tests.support.processes import run_crewql

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_writes_every_abstract_type_with_its_object_types(tmp_path: Path) -> None:
    result = run_crewql(
        ["export-schema", "--possible-types", "possible-types.json"],
        {"CREWQL_LOG_TO_FILES": "false"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "with --possible-types alone, no SDL on standard output"
    written = json.loads((tmp_path / "possible-types.json").read_text())

    schema = build_schema((ROOT / "schema.graphql").read_text())
    assert written == possible_types(schema)
    errors = set(written["Error"])
    assert {"ValidationError", "NotFoundError", "ConflictError"} <= errors
    # every typed mutation result: its object type and the errors it may be
    assert set(written["CreateAgentResult"]) == {"Agent", "ConflictError", "ValidationError"}
    for name, members in written.items():
        assert members == sorted(members), name
        assert all(not member.startswith("__") for member in members)
