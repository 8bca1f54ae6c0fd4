"""Persisted documents: Apollo's automatic persisted queries, `documentId`, trusted documents.

What Apollo Client's PersistedQueryLink relies on: a hash the server does not know answers
PERSISTED_QUERY_NOT_FOUND (message `PersistedQueryNotFound`), the client then sends hash and text,
and from then on the hash alone works, by POST and by GET, on every replica (the documents are in
the database). A text that does not match its hash is refused and never stored; nor is one that
does not validate. With CREWQL_TRUSTED_DOCUMENTS_ONLY, only documents loaded with
`crewql documents add` run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from backend.services.document_service import ManifestError, parse_manifest
from tests.conftest import app_http
from tests.support.databases import make_settings
from tests.support.processes import run_crewql

GRAPHQL_RESPONSE = "application/graphql-response+json"


def document() -> str:
    """A valid query no other test sends (an alias makes it unique)."""
    return f"query Names {{ n{uuid.uuid4().hex[:8]}: agents {{ nodes {{ name }} }} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, *, include_query: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}
    }
    if include_query:
        body["query"] = text
    return body


def code(response: httpx.Response) -> str:
    errors = response.json().get("errors") or [{}]
    return str(errors[0].get("extensions", {}).get("code"))


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
async def replica(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A second application over the same database: another replica, with its own caches."""
    async with app_http(app.state.settings) as client:
        yield client


async def test_an_unknown_hash_gets_persisted_query_not_found(http: httpx.AsyncClient) -> None:
    body = apq(document(), include_query=False)
    response = await http.post("/graphql", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    strict = await http.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    assert strict.status_code == 404
    assert code(strict) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_registered_hash_works_alone_by_post_and_get_on_every_replica(
    http: httpx.AsyncClient, replica: httpx.AsyncClient
) -> None:
    text = document()
    registered = data(await http.post("/graphql", json=apq(text, include_query=True)))
    assert data(await http.post("/graphql", json=apq(text, include_query=False))) == registered
    extensions = json.dumps(apq(text, include_query=False)["extensions"])
    # Apollo's GET sends `Accept: */*`: it must get JSON, not GraphiQL's page
    got = await replica.get(
        "/graphql", params={"extensions": extensions}, headers={"accept": "*/*"}
    )
    assert data(got) == registered
    by_id = await replica.post("/graphql", json={"documentId": f"sha256:{sha256(text)}"})
    assert data(by_id) == registered


async def test_a_text_that_does_not_match_its_hash_is_refused_and_not_stored(
    http: httpx.AsyncClient,
) -> None:
    text, other = document(), document()
    body = {**apq(text, include_query=False), "query": other}
    response = await http.post("/graphql", json=body)
    assert response.status_code == 400
    assert code(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    for name in (text, other):
        unknown = await http.post("/graphql", json=apq(name, include_query=False))
        assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_that_does_not_validate_is_not_stored(http: httpx.AsyncClient) -> None:
    text = f"query {{ nope{uuid.uuid4().hex[:6]} }}"
    response = await http.post("/graphql", json=apq(text, include_query=True))
    assert code(response) == "GRAPHQL_VALIDATION_FAILED"
    unknown = await http.post("/graphql", json=apq(text, include_query=False))
    assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "claim",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "xyz"}, "hash"],
)
async def test_a_malformed_claim_is_a_bad_request(http: httpx.AsyncClient, claim: object) -> None:
    response = await http.post(
        "/graphql", json={"query": document(), "extensions": {"persistedQuery": claim}}
    )
    assert response.status_code == 400
    assert code(response) == "BAD_REQUEST"


# ----------------------------------------------------------------------------- trusted documents


def write_manifest(path: Path, documents: dict[str, str], apollo: bool) -> Path:
    if apollo:
        manifest: object = {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": doc_id, "body": text, "name": "Names", "type": "query"}
                for doc_id, text in documents.items()
            ],
        }
    else:
        manifest = documents
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


async def load(path: Path, database_url: str) -> int:
    """`crewql documents add`, run as an operator runs it."""
    result = await asyncio.to_thread(
        run_crewql,
        ["documents", "add", str(path)],
        {"CREWQL_DATABASE_URL": database_url, "CREWQL_LOG_TO_FILES": "false"},
        path.parent,
    )
    assert result.stderr.strip(), "every outcome is reported on standard error"
    return result.returncode


@pytest.mark.parametrize("apollo", [True, False], ids=["apollo-manifest", "relay-manifest"])
async def test_trusted_documents_only_runs_the_loaded_documents(
    database_url: str, tmp_path: Path, apollo: bool
) -> None:
    trusted, relay_style, other = document(), document(), document()
    documents = {sha256(trusted): trusted, f"md5-{uuid.uuid4().hex}": relay_style}
    manifest = write_manifest(tmp_path / "manifest.json", documents, apollo)
    assert await load(manifest, database_url) == 0

    async with app_http(make_settings(database_url, trusted_documents_only=True)) as http:
        data(await http.post("/graphql", json={"query": trusted}))
        data(await http.post("/graphql", json=apq(trusted, include_query=False)))
        (relay_id,) = [k for k in documents if k.startswith("md5-")]
        data(await http.post("/graphql", json={"documentId": relay_id}))
        data(await http.post("/graphql", json={"query": relay_style}))
        for body in ({"query": other}, apq(other, include_query=True)):
            refused = await http.post("/graphql", json=body)
            assert code(refused) == "PERSISTED_QUERY_NOT_IN_LIST", refused.text
            assert "crewql documents add" in refused.json()["errors"][0]["message"]
        # refused, and not registered by the attempt either
        unknown = await http.post("/graphql", json=apq(other, include_query=False))
        assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_manifest_with_an_invalid_document_loads_nothing(
    database_url: str, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    good, bad = document(), "query { agents { nope } }"
    manifest = write_manifest(
        tmp_path / "m.json", {sha256(good): good, sha256(bad): bad}, apollo=True
    )
    assert await load(manifest, database_url) == 1
    unknown = await http.post("/graphql", json=apq(good, include_query=False))
    assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "content",
    [
        [1, 2],
        {"format": "other", "version": 1},
        {"id": 5},
        {"x": ""},
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": "no"},
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "a"}]},
    ],
)
def test_what_is_not_a_manifest_is_refused(content: object) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(content)


async def test_a_file_that_is_not_json_is_refused(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("not json", encoding="utf-8")
    assert await load(path, database_url) == 1


async def test_registrations_stop_at_the_cap_and_the_text_still_runs(
    app: Starlette, database_url: str
) -> None:
    """CREWQL_APQ_MAX_DOCUMENTS: past it nothing more is stored, and nothing else changes."""
    first, second = document(), document()
    capped = make_settings(database_url, apq_max_documents=1)
    async with app_http(capped) as http:
        data(await http.post("/graphql", json=apq(first, include_query=True)))
        data(await http.post("/graphql", json=apq(second, include_query=True)))  # runs
        data(await http.post("/graphql", json=apq(first, include_query=False)))
        unknown = await http.post("/graphql", json=apq(second, include_query=False))
        assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
