"""`crewql documents add MANIFEST`: load a client's persisted-query manifest as trusted documents.

Apollo's manifest (`generate-persisted-query-manifest`) and Relay's (`{id: text}`) are read. Every
document is validated against this server's schema first; if any does not validate, nothing is
loaded and each failure is reported, so a manifest from a client built against another schema
version never half-lands. Loading is idempotent: documents already stored are made trusted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from graphql import GraphQLError, GraphQLSchema, build_schema, parse, validate

from backend.cli_auth import (
    CliError,
    SubParsers,
    add_command,
    command_group,
    migrated_database,
    say,
)
from backend.config.settings import Settings
from backend.services.document_service import (
    DocumentService,
    ManifestError,
    TrustedDocument,
    parse_manifest,
)


def add_document_commands(sub: SubParsers) -> None:  # type: ignore[type-arg]
    documents_sub = command_group(sub, "documents", "trusted documents (persisted queries)")
    add = add_command(
        documents_sub,
        "add",
        "load an Apollo or Relay persisted-query manifest as trusted documents",
        documents_add,
    )
    add.add_argument("manifest", type=Path, help="the manifest's JSON file")


def documents_add(settings: Settings, args: argparse.Namespace) -> None:
    documents = read_manifest(args.manifest, settings)
    asyncio.run(_store(settings, documents))
    say(
        f"Loaded {len(documents)} trusted documents from {args.manifest}. They run when "
        "CREWQL_TRUSTED_DOCUMENTS_ONLY=true (and always by hash)."
    )


def read_manifest(path: Path, settings: Settings) -> list[TrustedDocument]:
    try:
        documents = parse_manifest(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from exc
    except ManifestError as exc:
        raise CliError(f"{path}: {exc}") from exc
    schema = _schema(settings)
    problems = [
        f"{item.document_id or item.sha256[:12]}: {error.message}"
        for item in documents
        for error in _errors(schema, item.document)
    ]
    if problems:
        raise CliError(
            f"{len(problems)} problem(s) against this server's schema, nothing loaded: "
            + "; ".join(problems)
        )
    return documents


def _schema(settings: Settings) -> GraphQLSchema:
    from backend.api.graphql.schema import build_schema as build_crewql_schema

    return build_schema(build_crewql_schema(settings).as_str())


def _errors(schema: GraphQLSchema, document: str) -> list[GraphQLError]:
    try:
        return list(validate(schema, parse(document)))
    except GraphQLError as error:
        return [error]


async def _store(settings: Settings, documents: list[TrustedDocument]) -> None:
    from backend.repositories.unit_of_work import UnitOfWork

    async with migrated_database(settings) as sessions:
        service = DocumentService(lambda: UnitOfWork(sessions), lambda: UnitOfWork(sessions))
        await service.add_trusted(documents)
