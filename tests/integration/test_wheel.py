"""An installed crewql (a wheel, not this checkout) can migrate a database.

The migrations ship inside the package (`backend/migrations/`), so `pip install .` gives a
`crewql migrate` that works from any directory. This builds the wheel from a copy of the sources,
installs it without dependencies into a fresh virtual environment that borrows this one's
installed libraries (so nothing is downloaded), and migrates an empty SQLite file with the
installed `crewql` command, run from a directory with no sources in it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from backend.db.migrate import MIGRATIONS_DIR, head_revision

REPO = Path(__file__).resolve().parents[2]


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(tmp_path: Path) -> Path:
    """From a copy, so the build leaves no `build/` or `*.egg-info` in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "backend", source / "backend", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = tmp_path / "wheels"
    # No build isolation: the dev extras bring the setuptools the build needs (no download).
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", wheels, source, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("crewql-*.whl")
    return wheel


def fresh_venv(tmp_path: Path) -> Path:
    """A venv whose own site-packages come first, then this environment's libraries: a `.pth`
    line only appends a directory, so this environment's editable crewql is not activated."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=tmp_path).strip()  # fmt: skip
    libraries = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "borrowed.pth").write_text("\n".join(sorted(libraries)) + "\n")
    return venv


@pytest.mark.skipif(sys.platform == "win32", reason="the venv layout here is POSIX")
def test_the_installed_wheel_migrates_an_empty_database(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel, cwd=tmp_path)  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = elsewhere / "crewql.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREWQL_", "PYTHON"))}
    env["CREWQL_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    env["CREWQL_LOG_TO_FILES"] = "false"

    installed = run(python, "-c", "import backend; print(backend.__file__)", cwd=elsewhere, env=env)
    assert Path(installed.strip()).is_relative_to(venv), installed

    run(venv / "bin" / "crewql", "migrate", cwd=elsewhere, env=env)

    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert revision == head_revision(f"sqlite+aiosqlite:///{database}")
    assert {"workspaces", "agents", "tasks", "crews", "executions", "api_keys"} <= tables
    # Every revision of this checkout went into the wheel.
    shipped = Path(installed.strip()).parent / "migrations" / "versions"
    assert {p.name for p in shipped.glob("*.py")} == {
        p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")
    }
