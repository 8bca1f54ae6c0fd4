"""`crewql secrets generate-key | rotate-key | set | list`.

`generate-key` prints a new Fernet key for CREWQL_SECRETS_KEY. `rotate-key` re-encrypts every
stored secret with the first key of CREWQL_SECRETS_KEY (list the new key first and the old one
after it, rotate, then drop the old one). `set NAME` reads the value from standard input, so it
never appears in a shell's history or the process list; `list` shows names, never values.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from backend.cli_auth import (
    CliError,
    SubParsers,
    _print_table,
    add_command,
    cli_audit,
    command_group,
    migrated_database,
    say,
)
from backend.config.settings import Settings
from backend.core.secret_box import SecretBox, generate_key
from backend.schemas.secret import SecretSet


def add_secret_commands(sub: SubParsers) -> None:  # type: ignore[type-arg]
    secrets_sub = command_group(sub, "secrets", "workspace secrets and their encryption key")

    generate = secrets_sub.add_parser("generate-key", help="print a new key for CREWQL_SECRETS_KEY")
    generate.set_defaults(func=lambda _args: _print(generate_key()))

    add_command(
        secrets_sub,
        "rotate-key",
        "re-encrypt every secret with the first key of CREWQL_SECRETS_KEY (new,old)",
        secrets_rotate,
    )
    setter = add_command(
        secrets_sub,
        "set",
        "store a secret; the value is read from stdin",
        secrets_set,
        workspace=True,
    )
    setter.add_argument("name", help="e.g. OPENAI_API_KEY")
    add_command(
        secrets_sub,
        "list",
        "list a workspace's secrets (never values)",
        secrets_list,
        workspace=True,
    )


def _print(line: str) -> int:
    sys.stdout.write(line + "\n")
    return 0


async def _rotate(settings: Settings) -> int:
    from backend.repositories.unit_of_work import UnitOfWork
    from backend.services.secret_service import SecretService

    async with migrated_database(settings) as sessions:
        service = SecretService(
            lambda: UnitOfWork(sessions), None, SecretBox(settings.secrets_keys)
        )
        return await service.rotate_all()


def secrets_rotate(settings: Settings, args: argparse.Namespace) -> None:
    if not settings.secrets_keys:
        raise CliError("CREWQL_SECRETS_KEY is not set: list the new key first, then the old one")
    count = asyncio.run(_rotate(settings))
    cli_audit("secrets.rotate-key", detail=str(count))
    say(
        f"Re-encrypted {count} secret(s) with the first key of CREWQL_SECRETS_KEY. Keys after "
        "the first can now be removed."
    )


async def _set(settings: Settings, workspace: str, data: SecretSet) -> None:
    from backend.repositories.unit_of_work import UnitOfWork
    from backend.services.auth_service import AuthService
    from backend.services.secret_service import SecretService

    async with migrated_database(settings) as sessions:
        uow = lambda: UnitOfWork(sessions)  # noqa: E731 - one factory for both services
        found = await AuthService(uow, cache_seconds=0).workspace_by_name(workspace)
        service = SecretService(uow, None, SecretBox(settings.secrets_keys))
        stored = await service.set(found.id, data, "cli")
    cli_audit("secrets.set", found.id, stored.name)


def secrets_set(settings: Settings, args: argparse.Namespace) -> None:
    value = sys.stdin.read().rstrip("\r\n")
    data = SecretSet.model_validate({"name": args.name, "value": value})
    asyncio.run(_set(settings, args.workspace, data))
    say(f"Stored secret {data.name} in workspace {args.workspace!r}.")


async def _list(settings: Settings, workspace: str) -> list[tuple[str, str, str]]:
    from backend.repositories.unit_of_work import UnitOfWork
    from backend.services.auth_service import AuthService
    from backend.services.secret_service import SecretService

    async with migrated_database(settings) as sessions:
        uow = lambda: UnitOfWork(sessions)  # noqa: E731 - one factory for both services
        found = await AuthService(uow, cache_seconds=0).workspace_by_name(workspace)
        secrets = await SecretService(uow, None, SecretBox(settings.secrets_keys)).list(found.id)
    when = "%Y-%m-%d %H:%M:%S UTC"
    return [(s.name, s.set_by, s.updated_at.strftime(when)) for s in secrets]


def secrets_list(settings: Settings, args: argparse.Namespace) -> None:
    rows = asyncio.run(_list(settings, args.workspace))
    _print_table(("NAME", "SET BY", "SET AT"), rows)
