"""Persisted documents: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ: a client sends only the SHA-256 of its document; the server answers with the document it
stored under that hash, or PERSISTED_QUERY_NOT_FOUND, and the client then sends hash and text
together, which registers the text. Trusted documents: an operator loads a client's manifest
(`crewql documents add`); with CREWQL_TRUSTED_DOCUMENTS_ONLY the server runs nothing else.

Everything is stored in the database (every replica knows what one was told) and cached in each
process. A hash names one text forever, so a cached document never goes stale, and neither does a
cached "trusted" (documents are made trusted, never untrusted); only misses go to the database.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger

from backend.repositories.unit_of_work import UnitOfWorkFactory

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SHA256_PREFIX = "sha256:"  # how GraphQL-over-HTTP's persisted documents spell a hash id
CACHE_SIZE = 2_000


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrustedDocument:
    document: str
    # The manifest's id when it is not the document's SHA-256 (Relay's are often MD5).
    document_id: str | None = None

    @property
    def sha256(self) -> str:
        return sha256_hex(self.document)


class _Recent:
    """A bounded map that forgets the least recently used entry (hand-written: an OrderedDict
    does it in a few lines, and functools' caches cannot hold results of coroutines)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class DocumentService:
    def __init__(
        self,
        write_uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory,
        cache_size: int = CACHE_SIZE,
        max_registered: int = 10_000,
    ) -> None:
        self._write_uow = write_uow
        self._read_uow = read_uow
        self._max_registered = max_registered
        self._documents = _Recent(cache_size)  # sha256 -> text
        self._ids = _Recent(cache_size)  # a manifest's document id -> sha256
        self._trusted = _Recent(cache_size)  # sha256 -> "" for each known-trusted document

    async def find(self, sha256: str) -> str | None:
        """The document stored under this hash, if any."""
        cached = self._documents.get(sha256)
        if cached is not None:
            return cached
        stored = await self._load(sha256)
        return None if stored is None else stored[0]

    async def find_by_id(self, document_id: str) -> str | None:
        """A `documentId`: `sha256:<hex>`, or a manifest's own id."""
        if document_id.startswith(SHA256_PREFIX):
            return await self.find(document_id.removeprefix(SHA256_PREFIX))
        sha256 = self._ids.get(document_id)
        if sha256 is not None:
            return await self.find(sha256)
        async with self._read_uow() as uow:
            row = await uow.documents.get_by_document_id(document_id)
        if row is None:
            return None
        self._ids.put(document_id, row.sha256)
        self._remember(row.sha256, row.document, row.trusted)
        return str(row.document)

    async def register(self, sha256: str, document: str) -> None:
        """Stores an APQ registration (the caller checked that `sha256` is the text's hash)."""
        if self._documents.get(sha256) is not None:
            return
        async with self._write_uow() as uow:
            if await uow.documents.count_registered() >= self._max_registered:
                logger.warning(
                    "not storing persisted query {}: CREWQL_APQ_MAX_DOCUMENTS ({}) are stored",
                    sha256[:12],
                    self._max_registered,
                )
                return
            await uow.documents.add(sha256, document)
        self._documents.put(sha256, document)

    async def is_trusted(self, sha256: str) -> bool:
        if self._trusted.get(sha256) is not None:
            return True
        stored = await self._load(sha256)
        return stored is not None and stored[1]

    async def _load(self, sha256: str) -> tuple[str, bool] | None:
        """(text, trusted) from the database, remembered."""
        async with self._read_uow() as uow:
            row = await uow.documents.get(sha256)
        if row is None:
            return None
        self._remember(row.sha256, row.document, row.trusted)
        return str(row.document), bool(row.trusted)

    async def add_trusted(self, documents: Sequence[TrustedDocument]) -> None:
        """Stores a manifest's documents as trusted, all or none."""
        async with self._write_uow() as uow:
            for item in documents:
                await uow.documents.add_trusted(item.sha256, item.document, item.document_id)
        for item in documents:
            self._remember(item.sha256, item.document, trusted=True)

    def _remember(self, sha256: str, document: str, trusted: bool) -> None:
        self._documents.put(sha256, document)
        if trusted:
            self._trusted.put(sha256, "")


class ManifestError(ValueError):
    """A manifest that is neither Apollo's format nor Relay's id-to-text map."""


def parse_manifest(data: object) -> list[TrustedDocument]:
    """The documents of a persisted-query manifest: Apollo's
    (`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body"}]}`)
    or Relay's (`{"<id>": "<document>"}`)."""
    if not isinstance(data, dict):
        raise ManifestError("a manifest is a JSON object")
    if "format" in data:
        if data.get("format") != "apollo-persisted-query-manifest" or data.get("version") != 1:
            raise ManifestError(
                "unknown manifest format: expected apollo-persisted-query-manifest version 1, "
                "or Relay's {id: document} map"
            )
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError("`operations` must be a list")
        pairs = [(op.get("id"), op.get("body")) for op in operations if isinstance(op, dict)]
        if len(pairs) != len(operations):
            raise ManifestError("each operation must be an object with `id` and `body`")
    else:
        pairs = list(data.items())
    documents = []
    for document_id, body in pairs:
        if not isinstance(document_id, str) or not isinstance(body, str) or not body.strip():
            raise ManifestError(f"entry {document_id!r}: an id and a document text are needed")
        if len(document_id) > 200:
            raise ManifestError(f"entry {document_id[:40]!r}…: ids are at most 200 characters")
        sha256 = sha256_hex(body)
        same = document_id in (sha256, SHA256_PREFIX + sha256)
        documents.append(TrustedDocument(body, None if same else document_id))
    return documents
