"""`crewql import crewai DIR` and `crewql export crewai CREW_ID DIR`.

They talk to the database through the same services as the API (CrewaiService), so a project
imported here is what `importCrewaiProject` would have made. Like the key commands, the result a
script wants goes to standard output (the crew's id on import, the files written on export) and
everything said to a person goes to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError

from backend.cli_auth import (
    CliError,
    SubParsers,
    add_command,
    command_group,
    migrated_engine,
    one_line,
    say,
)
from backend.config.settings import Settings
from backend.core.errors import DomainError, ValidationFailed
from backend.schemas.crewai import CrewaiImport, CrewaiImportResult, CrewaiProject, CrewaiWarning
from backend.services.crewai_format import AGENTS_FILE, TASKS_FILE
from backend.services.crewai_service import CrewaiService


def add_crewai_commands(sub: SubParsers) -> None:  # type: ignore[type-arg]
    """Registers `import crewai` and `export crewai` on the `crewql` parser."""
    import_sub = command_group(
        sub, "import", "import a project made with another tool", dest="import_format"
    )
    crewai_in = add_command(
        import_sub,
        "crewai",
        "a CrewAI project: its agents, tasks and a crew, all or nothing",
        import_crewai,
        workspace=True,
    )
    crewai_in.add_argument(
        "directory",
        help="the project (as `crewai create crew` makes it), or a folder holding "
        f"{AGENTS_FILE} and {TASKS_FILE}",
    )
    crewai_in.add_argument("--name", help="the crew's name (default: the project's name)")
    crewai_in.add_argument("--prefix", help="put before every agent and task name")

    export_sub = command_group(
        sub, "export", "export a crew for another tool", dest="export_format"
    )
    crewai_out = add_command(
        export_sub,
        "crewai",
        f"write a crew as CrewAI's {AGENTS_FILE} and {TASKS_FILE}",
        export_crewai,
        workspace=True,
    )
    crewai_out.add_argument("crew_id", help="the crew's id")
    crewai_out.add_argument("directory", help="where to write the two files (created if needed)")
    crewai_out.add_argument("--force", action="store_true", help="overwrite existing files")


def find_config(directory: Path) -> tuple[Path, str]:
    """The folder holding both files, and the project's name: DIR itself, DIR/config, or the
    single DIR/src/<name>/config of a `crewai create crew` project."""
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    candidates = [directory, directory / "config", *sorted(directory.glob("src/*/config"))]
    found = [c for c in candidates if (c / AGENTS_FILE).is_file() and (c / TASKS_FILE).is_file()]
    if not found:
        raise CliError(f"no {AGENTS_FILE} and {TASKS_FILE} in {directory}, its config/ or src/*/")
    if len(found) > 1 and found[0] != directory:
        raise CliError(f"several projects in {directory}: name one of {', '.join(map(str, found))}")
    config = found[0].resolve()
    project = config.parent if config.name == "config" else config
    return config, project.name


def import_crewai(settings: Settings, args: argparse.Namespace) -> None:
    config, project = find_config(Path(args.directory))
    try:
        data = CrewaiImport(
            name=args.name or project,
            agents_yaml=(config / AGENTS_FILE).read_text(encoding="utf-8"),
            tasks_yaml=(config / TASKS_FILE).read_text(encoding="utf-8"),
            name_prefix=args.prefix,
        )
    except ValidationError as exc:
        raise CliError(one_line(exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the project: {exc}") from exc
    try:
        result = asyncio.run(_import(settings, args, data))
    except ValidationFailed as exc:
        for problem in exc.problems:
            say(f"  {problem.message}")
        raise CliError(f"{config} was not imported ({len(exc.problems)} problem(s))") from exc
    crew = result.crew
    sys.stdout.write(f"{crew.id}\n")
    sys.stdout.flush()
    say(
        f"Imported crew {crew.name!r} ({len(crew.task_ids)} tasks) from {config} into "
        f"workspace {args.workspace!r}."
        + (f" A launch gives inputs: {', '.join(result.inputs)}." if result.inputs else "")
    )
    _warn(result.warnings, config)


async def _import(
    settings: Settings, args: argparse.Namespace, data: CrewaiImport
) -> CrewaiImportResult:
    async with _services(settings, args) as (service, workspace_id):
        return await service.import_project(workspace_id, data)


def export_crewai(settings: Settings, args: argparse.Namespace) -> None:
    try:
        crew_id = uuid.UUID(args.crew_id)
    except ValueError as exc:
        raise CliError(f"{args.crew_id!r} is not a crew id") from exc
    target = Path(args.directory)
    paths = (target / AGENTS_FILE, target / TASKS_FILE)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not args.force:
        raise CliError(f"{', '.join(existing)} exist: pass --force to overwrite")
    project = asyncio.run(_export(settings, args, crew_id))
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, (project.agents_yaml, project.tasks_yaml), strict=True):
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write the project: {exc}") from exc
    for path in paths:
        sys.stdout.write(f"{path}\n")
    _warn(project.warnings, target)


async def _export(
    settings: Settings, args: argparse.Namespace, crew_id: uuid.UUID
) -> CrewaiProject:
    async with _services(settings, args) as (service, workspace_id):
        return await service.export_crew(workspace_id, crew_id)


def _warn(warnings: list[CrewaiWarning], folder: Path) -> None:
    for warning in warnings:
        where = f"{warning.file}:{warning.line}" if warning.line else warning.file
        say(f"  warning: {folder / where} {warning.path}: {warning.message}")


@asynccontextmanager
async def _services(
    settings: Settings, args: argparse.Namespace
) -> AsyncIterator[tuple[CrewaiService, uuid.UUID]]:
    """CrewaiService as the server builds it (tool names checked the same way), over the
    configured database, and the workspace --workspace names."""
    from backend.container import build_services

    async with migrated_engine(settings) as engine:
        services = build_services(engine, settings)
        try:
            workspace = await services.auth.workspace_by_name(args.workspace)
            yield services.crewai, workspace.id
        except ValidationFailed:
            raise  # the command lists its problems
        except DomainError as exc:
            raise CliError(exc.message) from exc
