"""`crewql workspace create|list` and `crewql apikey create|list|revoke`.

These are how the first key of a deployment comes to exist (GraphQL needs a key already), so
they talk to the database directly through AuthService, never through the API. Output is for
people and scripts alike: `apikey create` prints the key alone on standard output
(`KEY=$(crewql apikey create ci --role editor)`), and everything said to a person goes to
standard error. Every failure is one line on standard error and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.config.settings import Settings, load_settings
from backend.core.audit import audit
from backend.core.errors import DomainError
from backend.core.identity import Role
from backend.schemas import ApiKeyCreate, WorkspaceCreate
from backend.services.auth_service import AuthService

DEFAULT_WORKSPACE = "default"

Command = Callable[[AuthService, argparse.Namespace], Awaitable[None]]
SubParsers = argparse._SubParsersAction  # the type argparse gives `add_subparsers()`


class CliError(Exception):
    """A failure to report in one line, without a traceback."""


# ----------------------------------------------------------------------------- parsers


def add_auth_commands(sub: SubParsers) -> None:  # type: ignore[type-arg]
    """Registers `workspace` and `apikey` on the `crewql` parser."""
    workspace_sub = command_group(sub, "workspace", "create and list workspaces (tenants)")

    create = add_command(workspace_sub, "create", "create a workspace", _auth(workspace_create))
    create.add_argument("name", help="letters, digits, '.', '_' and '-'")
    add_command(workspace_sub, "list", "list workspaces", _auth(workspace_list))

    apikey_sub = command_group(sub, "apikey", "create, list and revoke API keys")

    create = add_command(
        apikey_sub,
        "create",
        "create a key and print it (the only time it is shown)",
        _auth(apikey_create),
        workspace=True,
    )
    create.add_argument("name", help="who or what holds the key, e.g. ci or status-dashboard")
    create.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="viewer: read and subscribe; editor: also change crews and run executions; "
        "admin: also manage keys",
    )
    add_command(
        apikey_sub,
        "list",
        "list a workspace's keys (never their secrets)",
        _auth(apikey_list),
        workspace=True,
    )
    revoke = add_command(
        apikey_sub,
        "revoke",
        "revoke a key; it stops working within seconds",
        _auth(apikey_revoke),
        workspace=True,
    )
    revoke.add_argument("key", help="the key's prefix (cq_...) or id, as `apikey list` shows")


def command_group(
    sub: SubParsers,  # type: ignore[type-arg]
    name: str,
    help: str,
    dest: str | None = None,
) -> SubParsers:  # type: ignore[type-arg]
    """`crewql NAME ...`: a command whose own subcommands (added to what is returned) do the
    work; `dest` names the missing word in argparse's error (default: NAME_command)."""
    group: argparse.ArgumentParser = sub.add_parser(name, help=help)
    return group.add_subparsers(dest=dest or f"{name}_command", required=True)


def add_command(
    sub: SubParsers,  # type: ignore[type-arg]
    name: str,
    help: str,
    command: SettingsCommand,
    *,
    workspace: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand run by `settings_command`, with `--database-url`, and `--workspace` when it
    acts in one workspace; the caller adds its own arguments to the parser returned."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    if workspace:
        workspace_option(parser)
    database_option(parser)
    parser.set_defaults(func=settings_command(command))
    return parser


def workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        default=DEFAULT_WORKSPACE,
        help=f"the workspace's name (default: {DEFAULT_WORKSPACE})",
    )


def database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="overrides CREWQL_DATABASE_URL")


# ----------------------------------------------------------------------------- running


SettingsCommand = Callable[[Settings, argparse.Namespace], None]


def settings_command(command: SettingsCommand) -> Callable[[argparse.Namespace], int]:
    """A command run with the settings (`--database-url` applied). What it fails with that a
    person can act on (a CliError, a domain error, input a schema refused) is one line on
    standard error and exit status 1; a SettingsError is reported by `crewql` itself."""

    def run(args: argparse.Namespace) -> int:
        overrides: dict[str, object] = {"service_name": "cli"}
        if args.database_url:
            overrides["database_url"] = args.database_url
        settings = load_settings(**overrides)
        try:
            command(settings, args)
        except CliError as exc:
            say(f"crewql: {exc}")
        except DomainError as exc:
            say(f"crewql: {exc.message}")
        except ValidationError as exc:
            say(f"crewql: {one_line(exc)}")
        else:
            return 0
        return 1

    return run


def _auth(command: Command) -> SettingsCommand:
    """`command` run with an AuthService on the migrated database."""

    def run(settings: Settings, args: argparse.Namespace) -> None:
        asyncio.run(_with_service(settings, command, args))

    return run


async def _with_service(settings: Settings, command: Command, args: argparse.Namespace) -> None:
    from backend.repositories.unit_of_work import UnitOfWork

    async with migrated_database(settings) as sessions:
        await command(AuthService(lambda: UnitOfWork(sessions), cache_seconds=0), args)


def cli_audit(operation: str, workspace_id: uuid.UUID | None = None, detail: str = "") -> None:
    """The audit line of a change made with the CLI (it acts as `cli`; it succeeded)."""
    audit(
        operation=f"cli:{operation}",
        outcome="ok",
        workspace_id=workspace_id,
        key_prefix="cli",
        detail=detail or None,
    )


@asynccontextmanager
async def migrated_database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the configured database, once it is known to exist and be migrated."""
    from backend.db.engine import create_sessionmaker

    async with migrated_engine(settings) as engine:
        yield create_sessionmaker(engine)


@asynccontextmanager
async def migrated_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The configured database's engine, once it is known to exist and be migrated: a command
    should not report an empty or outdated database as if it were the mistake."""
    from backend.config.logging import configure_logging
    from backend.db.engine import create_engine
    from backend.db.migrate import current_revision, head_revision

    configure_logging(settings, service_name="cli")
    _require_sqlite_file(settings)
    engine = create_engine(settings)
    try:
        stored = await current_revision(engine)
        head = head_revision(settings.database_url)
        if stored != head:
            raise CliError(
                f"the database is at revision {stored or 'none'}, not {head}: "
                "run `crewql migrate` first"
            )
        yield engine
    finally:
        await engine.dispose()


def _require_sqlite_file(settings: Settings) -> None:
    """Opening a SQLite URL creates the file; a mistyped path would then report an empty,
    unmigrated database instead of the mistake."""
    if not settings.is_sqlite:
        return
    database = make_url(settings.database_url).database
    if database and database != ":memory:" and not Path(database).exists():
        raise CliError(
            f"no database at {database}: check CREWQL_DATABASE_URL, or create it with "
            "`crewql migrate`"
        )


def one_line(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        problems.append(f"{name}: {problem['msg']}")
    return "invalid " + "; ".join(problems)


def say(line: str) -> None:
    sys.stderr.write(line + "\n")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def _when(moment: datetime | None, empty: str = "-") -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else empty


# ----------------------------------------------------------------------------- commands


async def workspace_create(service: AuthService, args: argparse.Namespace) -> None:
    try:
        data = WorkspaceCreate(name=args.name)
    except ValidationError as exc:
        raise CliError(
            f"invalid workspace name {args.name!r}: use 1 to 100 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        ) from exc
    workspace = await service.create_workspace(data)
    cli_audit("workspace.create", workspace.id)
    sys.stdout.write(f"{workspace.id}\n")
    say(
        f"Created workspace {workspace.name!r}. Give it a key: "
        f"crewql apikey create NAME --role admin --workspace {workspace.name}"
    )


async def workspace_list(service: AuthService, args: argparse.Namespace) -> None:
    workspaces = await service.list_workspaces()
    _print_table(
        ("NAME", "ID", "CREATED"),
        [(w.name, str(w.id), _when(w.created_at)) for w in workspaces],
    )


async def apikey_create(service: AuthService, args: argparse.Namespace) -> None:
    workspace = await service.workspace_by_name(args.workspace)
    data = ApiKeyCreate(name=args.name, role=Role(args.role))
    created = await service.create_key(workspace.id, data)
    key = created.api_key
    cli_audit("apikey.create", workspace.id, key.prefix)
    sys.stdout.write(created.token + "\n")
    sys.stdout.flush()
    say(
        f"Created {key.role} key {key.name!r} ({key.prefix}) in workspace {workspace.name!r}. "
        "This is the only time the key is shown: store it now."
    )


async def apikey_list(service: AuthService, args: argparse.Namespace) -> None:
    workspace = await service.workspace_by_name(args.workspace)
    keys = await service.list_keys(workspace.id)
    _print_table(
        ("PREFIX", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED", "ID"),
        [
            (
                k.prefix,
                k.name,
                k.role.value,
                _when(k.created_at),
                _when(k.last_used_at, "never"),
                _when(k.revoked_at),
                str(k.id),
            )
            for k in keys
        ],
    )
    if not keys:
        say(
            f"Workspace {workspace.name!r} has no keys: "
            f"crewql apikey create NAME --role admin --workspace {workspace.name}"
        )


async def apikey_revoke(service: AuthService, args: argparse.Namespace) -> None:
    workspace = await service.workspace_by_name(args.workspace)
    key = await service.get_key(workspace.id, args.key)
    if key.revoked_at is not None:
        say(f"Key {key.prefix} ({key.name!r}) was already revoked at {_when(key.revoked_at)}.")
        return
    key = await service.revoke_key(workspace.id, key.id)
    cli_audit("apikey.revoke", workspace.id, key.prefix)
    say(
        f"Revoked key {key.prefix} ({key.name!r}). Every server refuses it within "
        "CREWQL_AUTH_CACHE_SECONDS (2 s by default)."
    )
