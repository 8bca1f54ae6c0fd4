"""The `crewql` command: serve the API, migrate the database, export the schema, manage keys.

Each command reads the same settings (environment and `.env`); flags override the few that people
change by hand. A bad setting ends the command with one line that names it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from backend.config.settings import Settings, SettingsError, load_settings


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    overrides = {k: v for k, v in extra.items() if v is not None}
    for name in ("host", "port", "log_level", "database_url", "metrics_port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.config.logging import configure_logging
    from backend.config.server import transport_options
    from backend.main import create_app, preflight

    settings = _settings(args)
    configure_logging(settings)
    asyncio.run(preflight(settings))
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        **transport_options(settings),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from backend.config.logging import configure_logging
    from backend.main import preflight
    from backend.worker import run_worker

    settings = _settings(args, service_name="worker")
    configure_logging(settings, service_name="worker")
    asyncio.run(preflight(settings))
    asyncio.run(run_worker(settings))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from loguru import logger

    from backend.config.logging import configure_logging
    from backend.db.migrate import downgrade, stored_revision, upgrade

    settings = _settings(args, service_name="migrate")
    configure_logging(settings, service_name="migrate")
    url = settings.database_url
    before = stored_revision(url)
    if args.downgrade:
        downgrade(url, args.revision or "base")
    else:
        upgrade(url, args.revision or "head")
    after = stored_revision(url)
    if before == after:
        logger.info("database already at revision {}; nothing to do", after or "base")
    else:
        logger.info("database migrated from {} to {}", before or "base", after or "base")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    import json

    from backend.api.graphql.possible_types import possible_types
    from backend.api.graphql.schema import build_schema

    schema = build_schema(load_settings(log_to_files=False))
    sdl = schema.as_str() + "\n"
    if args.output:
        Path(args.output).write_text(sdl, encoding="utf-8")
    elif not args.possible_types:
        sys.stdout.write(sdl)
    if args.possible_types:
        from graphql import build_schema as from_sdl

        mapping = possible_types(from_sdl(sdl))
        text = json.dumps(mapping, indent=2) + "\n"
        Path(args.possible_types).write_text(text, encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crewql",
        description="GraphQL API server for AI-agent crews. Settings come from CREWQL_* "
        "environment variables and .env (see docs/configuration.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the GraphQL API (and GraphiQL) over HTTP")
    serve.add_argument("--host", help="interface to bind (CREWQL_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (CREWQL_PORT, default 8000)")
    serve.add_argument("--log-level", help="TRACE, DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--database-url", help="overrides CREWQL_DATABASE_URL")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker", help="run executions only (no HTTP): the runner of the scaled mode"
    )
    worker.add_argument("--log-level", help="TRACE, DEBUG, INFO, WARNING or ERROR")
    worker.add_argument("--database-url", help="overrides CREWQL_DATABASE_URL")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics on this port (CREWQL_METRICS_PORT; default: none)",
    )
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    migrate.add_argument(
        "--revision", help="target revision (default: head, or base with --downgrade)"
    )
    migrate.add_argument("--downgrade", action="store_true", help="downgrade instead of upgrade")
    migrate.add_argument("--database-url", help="overrides CREWQL_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    export = sub.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", "-o", help="write to this file instead of standard output")
    export.add_argument(
        "--possible-types",
        metavar="FILE",
        help="also write Apollo Client's possibleTypes map (JSON) to FILE (docs/clients.md)",
    )
    export.set_defaults(func=cmd_export_schema)

    from backend.cli_auth import add_auth_commands
    from backend.cli_documents import add_document_commands
    from backend.cli_secrets import add_secret_commands

    add_auth_commands(sub)
    add_secret_commands(sub)
    add_document_commands(sub)

    from backend.cli_crewai import add_crewai_commands

    add_crewai_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SettingsError as exc:
        print(f"crewql: {exc}", file=sys.stderr)  # noqa: T201 - the one line an operator sees
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
