"""Workspace secrets over GraphQL on SQLite and PostgreSQL: admins set and delete them, editors
see their names, nobody ever sees a value; values are encrypted at rest (the raw column is
read), survive a key rotation, and appear in no response, event or log file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from loguru import logger
from sqlalchemy import select
from starlette.applications import Starlette

from backend.config.settings import Settings
from backend.core.identity import Role
from backend.core.secret_box import SecretBox, SecretUnreadable, generate_key
from backend.db.engine import create_sessionmaker
from backend.main import create_app
from backend.models import DEFAULT_WORKSPACE_ID, Secret
from backend.repositories.unit_of_work import UnitOfWork
from backend.services.bundle import Services
from backend.services.secret_service import SecretMissing, SecretService, SecretsKeyRequired
from tests.support.auth import bearer, make_key
from tests.support.log_files import file_logging_settings, logging_to_files, read_logs

KEY = generate_key()
VALUE = "sk-live-0123456789-do-not-leak"
SET = """mutation($name: String!, $value: String!) { setSecret(name: $name, value: $value) {
  __typename ... on Secret { name setBy createdAt updatedAt }
  ... on ValidationError { code fields { field message } } } }"""
LIST = "{ secrets { name setBy createdAt updatedAt } }"
DELETE = """mutation($name: String!) { deleteSecret(name: $name) { __typename
  ... on SecretDeleted { name } ... on Error { code message } } }"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return file_logging_settings(
        database_url,
        tmp_path / "logs",
        auth_enabled=True,
        rate_limit_per_second=0,
        secrets_key=KEY,
    )


@pytest.fixture
async def logs(settings: Settings) -> AsyncIterator[Path]:
    async with logging_to_files(settings) as directory:
        yield directory


def client(app: Starlette, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=bearer(token)
    )


async def gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


async def stored(app: Starlette) -> list[Any]:
    async with app.state.engine.connect() as connection:
        return list((await connection.execute(select(Secret))).all())


async def test_admins_set_editors_list_nobody_reads_a_value(
    app: Starlette, services: Services, logs: Path
) -> None:
    tokens = {role: await make_key(services, DEFAULT_WORKSPACE_ID, role) for role in Role}
    admin, editor, viewer = (client(app, tokens[r]) for r in (Role.ADMIN, Role.EDITOR, Role.VIEWER))
    responses: list[str] = []

    body = await gql(admin, SET, name="OPENAI_API_KEY", value=VALUE)
    responses.append(str(body))
    secret = body["data"]["setSecret"]
    assert secret["__typename"] == "Secret"
    assert secret["name"] == "OPENAI_API_KEY"
    assert secret["setBy"] == tokens[Role.ADMIN][:11]  # the key's public prefix, cq_xxxxxxxx

    # At rest: a Fernet token of the configured key, not the value.
    (row,) = await stored(app)
    assert VALUE not in row.ciphertext
    assert Fernet(KEY.encode()).decrypt(row.ciphertext.encode()).decode() == VALUE

    # Replacing keeps one row; the value changes, the creation time stays.
    body = await gql(admin, SET, name="OPENAI_API_KEY", value=VALUE + "-2")
    responses.append(str(body))
    (again,) = await stored(app)
    assert again.id == row.id
    assert again.ciphertext != row.ciphertext

    for who in (admin, editor):
        listed = await gql(who, LIST)
        responses.append(str(listed))
        assert [s["name"] for s in listed["data"]["secrets"]] == ["OPENAI_API_KEY"]
    refused = await gql(viewer, LIST)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for who in (editor, viewer):
        body = await gql(who, SET, name="X", value=VALUE)
        responses.append(str(body))
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await gql(who, DELETE, name="OPENAI_API_KEY")
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Bad names and values are typed errors that never echo the value.
    body = await gql(admin, SET, name="not a name", value=VALUE)
    responses.append(str(body))
    assert body["data"]["setSecret"]["__typename"] == "ValidationError"
    body = await gql(admin, SET, name="WRONG_TYPE", value=[VALUE])  # graphql-core quotes it back
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(admin, SET, name="BIG", value="v" * 10_001)
    assert body["data"]["setSecret"]["fields"][0]["field"] == "value"
    assert await services.secrets.value(DEFAULT_WORKSPACE_ID, "OPENAI_API_KEY") == VALUE + "-2"

    body = await gql(admin, DELETE, name="OPENAI_API_KEY")
    assert body["data"]["deleteSecret"] == {"__typename": "SecretDeleted", "name": "OPENAI_API_KEY"}
    body = await gql(admin, DELETE, name="OPENAI_API_KEY")
    assert body["data"]["deleteSecret"]["code"] == "NOT_FOUND"
    with pytest.raises(SecretMissing):
        await services.secrets.value(DEFAULT_WORKSPACE_ID, "OPENAI_API_KEY")

    await logger.complete()
    written = read_logs(logs)
    assert "setSecret" in written  # the audit lines are there ...
    assert VALUE not in written  # ... the value is not
    assert all(VALUE not in r for r in responses)


async def test_rotation_re_encrypts_under_the_new_key(app: Starlette, services: Services) -> None:
    from backend.schemas.secret import SecretSet

    await services.secrets.set(DEFAULT_WORKSPACE_ID, SecretSet(name="A", value=VALUE), "test")
    (before,) = await stored(app)
    new = generate_key()
    sessions = create_sessionmaker(app.state.engine)

    def rotating(*keys: str) -> SecretService:
        return SecretService(lambda: UnitOfWork(sessions), None, SecretBox(keys))

    assert await rotating(new, KEY).rotate_all() == 1
    (after,) = await stored(app)
    assert after.ciphertext != before.ciphertext
    assert after.updated_at == before.updated_at  # the value did not change
    assert await rotating(new).value(DEFAULT_WORKSPACE_ID, "A") == VALUE
    with pytest.raises(SecretUnreadable):
        await rotating(KEY).value(DEFAULT_WORKSPACE_ID, "A")
    # Start-up: the old key alone cannot read what is stored, no key at all is refused too.
    with pytest.raises(SecretsKeyRequired, match="cannot decrypt"):
        await rotating(KEY).check_key()
    with pytest.raises(SecretsKeyRequired, match="CREWQL_SECRETS_KEY is not set"):
        await rotating().check_key()
    await rotating(new).check_key()


async def test_start_up_refuses_stored_secrets_without_a_key(
    app: Starlette, services: Services, settings: Settings
) -> None:
    from backend.schemas.secret import SecretSet

    await services.secrets.set(DEFAULT_WORKSPACE_ID, SecretSet(name="A", value=VALUE), "test")
    keyless = create_app(settings.model_copy(update={"secrets_key": None}))
    try:
        with pytest.raises(SecretsKeyRequired):
            async with keyless.router.lifespan_context(keyless):
                pass
    finally:
        await keyless.state.engine.dispose()
