"""Workspaces and API keys on SQLite and PostgreSQL: what is stored, authentication, revocation,
isolation between workspaces, and the migration that adds them (which must keep every
execution's events)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from backend.core.auth import Unauthenticated
from backend.core.errors import Conflict, NotFound
from backend.core.identity import Principal, Role
from backend.db.engine import create_engine, create_sessionmaker
from backend.db.migrate import downgrade, upgrade
from backend.models import DEFAULT_WORKSPACE_ID, ApiKey, Execution, ExecutionEvent, Workspace
from backend.repositories.unit_of_work import UnitOfWork
from backend.schemas import ApiKeyCreate, WorkspaceCreate
from backend.services import auth_service
from backend.services.auth_service import AuthService, make_token, parse_token
from backend.utils.time import utcnow
from tests.support.databases import make_settings

BEFORE_KEYS = "f610aef76589"  # the revision before api_keys


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def build_auth(engine: AsyncEngine, **options: Any) -> AuthService:
    """AuthService as the container will build it: a unit of work per call on the app's engine."""
    sessions = create_sessionmaker(engine)
    return AuthService(lambda: UnitOfWork(sessions), **options)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(app: Starlette, clock: Clock) -> AuthService:
    return build_auth(app.state.engine, clock=clock)


@pytest.fixture
def other_process(app: Starlette, clock: Clock) -> AuthService:
    """A second service with a cache of its own: another API replica, as far as keys go."""
    return build_auth(app.state.engine, clock=clock)


async def stored_key(app: Starlette, key_id: uuid.UUID) -> dict[str, Any]:
    async with app.state.engine.connect() as connection:
        row = (await connection.execute(select(ApiKey).where(ApiKey.id == key_id))).one()
    return dict(row._mapping)


# ============================================================================ workspaces


async def test_workspaces_are_created_listed_and_found_by_name(auth: AuthService) -> None:
    created = await auth.create_workspace(WorkspaceCreate(name="team-a"))
    names = [w.name for w in await auth.list_workspaces()]
    assert names == ["default", "team-a"]
    assert (await auth.workspace_by_name("team-a")).id == created.id
    assert (await auth.workspace_by_name("default")).id == DEFAULT_WORKSPACE_ID
    with pytest.raises(NotFound):
        await auth.workspace_by_name("team-b")
    with pytest.raises(Conflict):
        await auth.create_workspace(WorkspaceCreate(name="team-a"))


# ============================================================================ keys


async def test_a_key_is_shown_once_and_stored_only_as_a_hash(
    app: Starlette, auth: AuthService
) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.EDITOR))
    token = created.token
    parsed = parse_token(token)
    assert parsed is not None
    public_id, secret = parsed
    key = created.api_key
    assert key.prefix == f"cq_{public_id}" == token[:11]
    assert (key.name, key.role, key.last_used_at, key.revoked_at) == ("ci", Role.EDITOR, None, None)
    assert token not in repr(created)

    row = await stored_key(app, key.id)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())

    (listed,) = await auth.list_keys(DEFAULT_WORKSPACE_ID)
    assert listed == key
    assert "secret_hash" not in listed.model_dump()
    assert secret not in listed.model_dump_json()


async def test_a_key_authenticates_as_its_workspace_and_role(auth: AuthService) -> None:
    team = await auth.create_workspace(WorkspaceCreate(name="team-a"))
    created = await auth.create_key(team.id, ApiKeyCreate(name="ops", role=Role.ADMIN))
    principal = await auth.authenticate(created.token)
    assert principal == Principal(team.id, created.api_key.id, created.api_key.prefix, Role.ADMIN)


async def test_unknown_and_forged_keys_are_refused(auth: AuthService) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.VIEWER))
    forged = created.token[:12] + "A" * (len(created.token) - 12)
    with pytest.raises(Unauthenticated) as info:
        await auth.authenticate(forged)
    assert info.value.reason == "wrong_secret"
    with pytest.raises(Unauthenticated) as info:
        await auth.authenticate(make_token()[0])
    assert info.value.reason == "unknown"


def test_invalid_input_is_refused_by_the_schemas() -> None:
    """Services take validated schemas, as CrewService does; the API and the CLI validate."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ApiKeyCreate(name="", role=Role.VIEWER)
    with pytest.raises(ValidationError):
        ApiKeyCreate.model_validate({"name": "x", "role": "owner"})
    with pytest.raises(ValidationError):
        WorkspaceCreate(name="two words")


async def test_keys_to_create_in_a_missing_workspace_are_refused(auth: AuthService) -> None:
    with pytest.raises(NotFound):
        await auth.create_key(uuid.uuid4(), ApiKeyCreate(name="ci", role=Role.VIEWER))


async def test_a_public_id_already_taken_is_drawn_again(
    auth: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="a", role=Role.VIEWER))
    taken = first.api_key.prefix.removeprefix("cq_")
    fresh = make_token()
    draws = iter([(f"cq_{taken}_{'x' * 43}", taken, "x" * 43), fresh])
    monkeypatch.setattr(auth_service, "make_token", lambda: next(draws))
    second = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="b", role=Role.VIEWER))
    assert second.token == fresh[0]
    assert (await auth.authenticate(first.token)).key_id == first.api_key.id


async def test_keys_are_found_by_id_prefix_or_public_id(auth: AuthService) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.VIEWER))
    key = created.api_key
    for reference in (str(key.id), key.prefix, key.prefix.removeprefix("cq_")):
        assert (await auth.get_key(DEFAULT_WORKSPACE_ID, reference)).id == key.id
    with pytest.raises(NotFound):
        await auth.get_key(DEFAULT_WORKSPACE_ID, "cq_zzzzzzzz")


# ============================================================================ revocation


async def test_revocation_takes_effect_on_the_next_request(
    app: Starlette, auth: AuthService, other_process: AuthService, clock: Clock
) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.EDITOR))
    here = await auth.authenticate(created.token)
    there = await other_process.authenticate(created.token)

    revoked = await auth.revoke_key(DEFAULT_WORKSPACE_ID, created.api_key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated) as info:
        await auth.authenticate(created.token)
    assert info.value.reason == "revoked"
    assert not await auth.is_active(here)

    # Another process trusts its cache for at most auth_cache_seconds (2 s).
    assert await other_process.is_active(there)
    clock.now += 2.01
    assert not await other_process.is_active(there)
    with pytest.raises(Unauthenticated):
        await other_process.authenticate(created.token)

    again = await auth.revoke_key(DEFAULT_WORKSPACE_ID, created.api_key.id)
    assert again.revoked_at == revoked.revoked_at  # the first revocation's time stays
    (listed,) = await auth.list_keys(DEFAULT_WORKSPACE_ID)
    assert listed.revoked_at == revoked.revoked_at  # revoked keys stay listed: access history
    assert (await stored_key(app, created.api_key.id))["revoked_at"] is not None


async def test_deleting_a_workspace_ends_its_keys(app: Starlette, clock: Clock) -> None:
    auth = build_auth(app.state.engine, clock=clock, cache_seconds=0)
    team = await auth.create_workspace(WorkspaceCreate(name="gone"))
    created = await auth.create_key(team.id, ApiKeyCreate(name="ops", role=Role.ADMIN))
    principal = await auth.authenticate(created.token)
    async with app.state.engine.begin() as connection:
        await connection.execute(delete(Workspace).where(Workspace.id == team.id))
    assert not await auth.is_active(principal)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(created.token)


# ============================================================================ isolation


async def test_another_workspaces_key_answers_like_a_missing_one(auth: AuthService) -> None:
    team_a = await auth.create_workspace(WorkspaceCreate(name="team-a"))
    team_b = await auth.create_workspace(WorkspaceCreate(name="team-b"))
    key_a = (await auth.create_key(team_a.id, ApiKeyCreate(name="a", role=Role.ADMIN))).api_key
    key_b = await auth.create_key(team_b.id, ApiKeyCreate(name="b", role=Role.ADMIN))

    assert [k.id for k in await auth.list_keys(team_b.id)] == [key_b.api_key.id]
    missing = uuid.uuid4()
    for key_id in (key_a.id, missing):
        with pytest.raises(NotFound) as info:
            await auth.revoke_key(team_b.id, key_id)
        assert (info.value.entity, info.value.entity_id) == ("ApiKey", str(key_id))
    for reference in (key_a.prefix, str(key_a.id)):
        with pytest.raises(NotFound):
            await auth.get_key(team_b.id, reference)
    assert (await auth.get_key(team_a.id, key_a.prefix)).revoked_at is None


# ============================================================================ last use


async def test_last_use_is_recorded_at_most_once_a_minute(app: Starlette, clock: Clock) -> None:
    first = build_auth(app.state.engine, clock=clock, cache_seconds=0)
    created = await first.create_key(
        DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.VIEWER)
    )
    before = utcnow()
    updated = (await stored_key(app, created.api_key.id))["updated_at"]
    await first.authenticate(created.token)
    row = await stored_key(app, created.api_key.id)
    used = row["last_used_at"]
    assert used is not None
    assert used >= before.replace(microsecond=0)
    assert row["updated_at"] == updated  # a use is not a change to the key

    # Another process, with no memory of that write: the UPDATE's own condition skips it.
    second = build_auth(app.state.engine, clock=clock, cache_seconds=0)
    await second.authenticate(created.token)
    assert (await stored_key(app, created.api_key.id))["last_used_at"] == used

    (listed,) = await first.list_keys(DEFAULT_WORKSPACE_ID)
    assert listed.last_used_at == used


async def test_concurrent_first_requests_all_authenticate(auth: AuthService) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.VIEWER))
    principals = await asyncio.gather(*(auth.authenticate(created.token) for _ in range(20)))
    assert {p.key_id for p in principals} == {created.api_key.id}


# ============================================================================ executions


async def test_an_execution_outlives_its_keys_record(app: Starlette, auth: AuthService) -> None:
    created = await auth.create_key(DEFAULT_WORKSPACE_ID, ApiKeyCreate(name="ci", role=Role.EDITOR))
    execution_id = uuid.uuid4()
    async with app.state.engine.begin() as connection:
        await connection.execute(
            insert(Execution).values(
                id=execution_id,
                workspace_id=DEFAULT_WORKSPACE_ID,
                name="e",
                status="QUEUED",
                crew_name="c",
                config={},
                inputs={},
                api_key_id=created.api_key.id,
            )
        )
    async with app.state.engine.begin() as connection:
        await connection.execute(delete(ApiKey).where(ApiKey.id == created.api_key.id))
        stored = await connection.scalar(
            select(Execution.api_key_id).where(Execution.id == execution_id)
        )
    assert stored is None


# ============================================================================ migration


async def test_the_migration_keeps_executions_and_their_events(empty_database_url: str) -> None:
    """On SQLite the executions table is rebuilt; with foreign keys on, dropping the old one
    would delete every event (ON DELETE CASCADE) and clear every parent link."""
    url = empty_database_url
    await asyncio.to_thread(upgrade, url, BEFORE_KEYS)
    engine = create_engine(make_settings(url))
    parent, child = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    columns = {
        "workspace_id": DEFAULT_WORKSPACE_ID,
        "name": "e",
        "status": "COMPLETED",
        "crew_name": "c",
        "config": {},
        "inputs": {},
        "last_seq": 1,
        "cancel_requested": False,
        "cancel_force": False,
        "created_at": now,
        "updated_at": now,
    }

    async def snapshot() -> tuple[int, dict[uuid.UUID, uuid.UUID | None]]:
        async with engine.connect() as connection:
            events = await connection.scalar(select(func.count()).select_from(ExecutionEvent))
            rows = await connection.execute(select(Execution.id, Execution.parent_id))
            return int(events or 0), {row.id: row.parent_id for row in rows}

    try:
        async with engine.begin() as connection:
            for execution_id, parent_id in ((parent, None), (child, parent)):
                await connection.execute(
                    insert(Execution).values(id=execution_id, parent_id=parent_id, **columns),
                )
                await connection.execute(
                    insert(ExecutionEvent).values(
                        execution_id=execution_id,
                        seq=1,
                        type="EXECUTION_QUEUED",
                        status="QUEUED",
                        message="",
                        data={},
                        created_at=now,
                    )
                )
        expected = (2, {parent: None, child: parent})
        assert await snapshot() == expected

        await asyncio.to_thread(upgrade, url)
        assert await snapshot() == expected
        async with engine.begin() as connection:  # the new column exists and is empty
            await connection.execute(update(Execution).values(api_key_id=None))

        await asyncio.to_thread(downgrade, url, BEFORE_KEYS)
        assert await snapshot() == expected
        await asyncio.to_thread(upgrade, url)
        assert await snapshot() == expected

        # Foreign keys still hold after the rebuild: deleting the parent cascades and clears.
        async with engine.begin() as connection:
            await connection.execute(delete(Execution).where(Execution.id == parent))
        assert await snapshot() == (1, {child: None})
    finally:
        await engine.dispose()
