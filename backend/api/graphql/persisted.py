"""Persisted documents at the API: which document a request means, and which may run.

Over HTTP (`fill_query`, called by the view before Strawberry parses anything), a request may name
its document instead of sending it:
- Apollo's automatic persisted queries: `extensions.persistedQuery = {version: 1, sha256Hash}`.
  Hash alone: the stored text, or PERSISTED_QUERY_NOT_FOUND (message `PersistedQueryNotFound`,
  what Apollo Client and urql look for before sending the text). Hash and text: the hash must be
  the text's SHA-256 (PERSISTED_QUERY_HASH_MISMATCH otherwise); the text is registered once the
  operation validated (`TrustedDocuments` below), so a GET with the hash alone works from then on.
- `documentId` (GraphQL-over-HTTP's persisted documents): `sha256:<hex>` or a manifest's own id.

On every transport (`TrustedDocuments`, a schema extension, so websockets are covered too): with
CREWQL_TRUSTED_DOCUMENTS_ONLY, a document whose hash is not a trusted one is refused at validation
with PERSISTED_QUERY_NOT_IN_LIST (Apollo Router's code for its safelist), however it was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLRequestData

from backend.api.graphql.context import Context
from backend.api.graphql.errors import CodedHTTPException
from backend.api.graphql.negotiation import JSON
from backend.services.document_service import SHA256_HEX, DocumentService, sha256_hex

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
NOT_IN_LIST_MESSAGE = (
    "This server runs trusted documents only (CREWQL_TRUSTED_DOCUMENTS_ONLY), and this document "
    "is not one: add it to your client's manifest and load that with `crewql documents add`."
)


def claimed_hash(extensions: dict[str, Any] | None) -> str | None:
    """The SHA-256 an APQ request names (None when it names none); a malformed claim is refused."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    sha256 = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(sha256, str)
        or not SHA256_HEX.fullmatch(sha256)
    ):
        raise CodedHTTPException(
            400,
            "`extensions.persistedQuery` must be {version: 1, sha256Hash: <64 lower-case hex "
            "digits>}.",
            "BAD_REQUEST",
        )
    return sha256


async def fill_query(
    data: GraphQLRequestData,
    request: AsyncHTTPRequestAdapter,
    documents: DocumentService,
    media_type: str,
) -> None:
    """Sets `data.query` from the hash or id the request names, or refuses the request."""
    sha256 = claimed_hash(data.extensions)
    if sha256 is not None:
        if data.query is None:
            data.query = await documents.find(sha256)
            if data.query is None:
                raise _not_found(media_type)
        elif sha256_hex(data.query) != sha256:
            raise CodedHTTPException(
                400, "provided sha does not match query", PERSISTED_QUERY_HASH_MISMATCH
            )
        return
    if data.query is None:
        document_id = await _document_id(request)
        if document_id is not None:
            data.query = await documents.find_by_id(document_id)
            if data.query is None:
                raise _not_found(media_type)


def _not_found(media_type: str) -> CodedHTTPException:
    # The message is Apollo's, word for word: older clients look for it, not for the code.
    # 200 with JSON (GraphQL over HTTP), 404 with graphql-response+json, as Apollo Server does.
    status = 200 if media_type == JSON else 404
    return CodedHTTPException(status, "PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)


async def _document_id(request: AsyncHTTPRequestAdapter) -> str | None:
    if request.method == "GET":
        value: object = request.query_params.get("documentId")
    else:  # the view has checked that the body is a JSON object
        body = orjson.loads(await request.get_body())
        value = body.get("documentId") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


class TrustedDocuments(SchemaExtension):
    """Refuses untrusted documents when the server runs trusted ones only; registers an APQ
    document once it validated (a document that does not validate is never stored)."""

    async def on_validate(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context = execution.context
        query = execution.query
        trusted_only = context.settings.trusted_documents_only
        if (
            trusted_only
            and query
            and not await context.services.documents.is_trusted(sha256_hex(query))
        ):
            execution.pre_execution_errors = [
                GraphQLError(NOT_IN_LIST_MESSAGE, extensions={"code": PERSISTED_QUERY_NOT_IN_LIST})
            ]
        yield
        if trusted_only or not query or execution.pre_execution_errors:
            return
        try:
            sha256 = claimed_hash(execution.operation_extensions)
        except CodedHTTPException:
            return  # over HTTP the view refused it already; elsewhere it is only not stored
        if sha256 is not None and sha256 == sha256_hex(query):
            await context.services.documents.register(sha256, query)
